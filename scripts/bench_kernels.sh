#!/bin/sh
# bench_kernels.sh — ternary kernel micro-benchmark: memory read bandwidth, VNNI peak, and
# matvec (N=1) / matmul (N=64,128) speed of every kernel kind on BitNet-2B-shaped matrices,
# plus a 30-layer decode pass. Prints medians. Usage: scripts/bench_kernels.sh [BUILD_DIR] [args]
# (args go to tern-bench_kernels: --reps N, --quick, --kind plain|avx2|avxvnni|avx512|neon|dotprod|i8mm)
set -eu
BUILD=${1:-build}
[ $# -gt 0 ] && shift
BIN="$BUILD/tern-bench_kernels"
if [ ! -x "$BIN" ]; then
    echo "bench_kernels.sh: $BIN not found (run make first)" >&2
    exit 1
fi
echo "== kernels: OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$BIN" "$@"
