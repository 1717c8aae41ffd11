#!/usr/bin/env bash
# Install the Debian packages tern needs, only those that are missing.
# Idempotent; works as root or through sudo. Usage:
#   scripts/install-deps.sh            build + test deps (make, make test; h5dump checks checkpoint layout)
#   scripts/install-deps.sh demo       + gnuplot (loss plots in make demo; make test plots one)
#   scripts/install-deps.sh coverage   + lcov (make coverage)
#   scripts/install-deps.sh ref        + python3-torch, python3-h5py (reference scripts), time (peak RSS in bench_import135m.sh)
#   scripts/install-deps.sh interop    + nodejs, npm, curl (make interop: llama.cpp, tern-server's clients)
#   scripts/install-deps.sh arm        + the AArch64 cross compiler and qemu-user (make ARCH=aarch64, make test-arm)
#   scripts/install-deps.sh fuzz       + clang, libFuzzer, LLVM's OpenMP (make fuzz, make fuzz-smoke)
set -euo pipefail
pkgs="gcc make pkg-config libopenblas-openmp-dev libhdf5-dev hdf5-tools libcmocka-dev libjansson-dev libpcre2-dev openmpi-bin libopenmpi-dev libmicrohttpd-dev"
for group in "$@"; do
  case "$group" in
    build) ;;
    demo) pkgs="$pkgs gnuplot-nox" ;;
    coverage) pkgs="$pkgs lcov" ;;
    ref) pkgs="$pkgs python3-torch python3-h5py python3-numpy time" ;;
    interop) pkgs="$pkgs nodejs npm curl" ;;
    arm) pkgs="$pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" ;;
    fuzz) pkgs="$pkgs clang libclang-rt-14-dev libomp-dev" ;;
    *) echo "install-deps.sh: unknown group '$group' (known: build demo coverage ref interop arm fuzz)" >&2; exit 2 ;;
  esac
done
missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    # nodejs/npm may come from elsewhere (nvm, tarball): accept a working binary
    case "$p" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install-deps.sh: missing packages:$missing, and no apt-get here; install them by hand" >&2; exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: need root or sudo to install:$missing" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps.sh: installing$missing" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
