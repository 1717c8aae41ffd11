#!/usr/bin/env bash
# make_test_ggufs.sh — GGUF files of every kind tern reads, made with tern's own tools from one
# checkpoint (for the loader, the agreement checks and anyone who wants samples):
#   scripts/make_test_ggufs.sh [BUILD_DIR=build] [ckpt.h5] [OUT_DIR=test-ggufs]
# Without a checkpoint, a small model is trained on tests/fixtures/parity.txt by the parity test
# binary (as scripts/interop.sh does). Writes, into OUT_DIR:
#   bl-<type>.gguf     BitLinear weights as tq2_0, tq1_0, i2_s, q8_0 (exact ternary rows: the
#                      export fallback for widths not a multiple of 256), f16, bf16, f32
#                      (embedding q8_0)
#   embd-<type>.gguf   tq2_0 BitLinear, tied embedding as f32, f16, bf16, q8_0, q6_k, q5_k, q4_k
#   i2s-bitnetcpp.gguf i2_s with an f16 embedding (what bitnet.cpp's converter writes)
#   float-f32.gguf     f32 BitLinear and embedding: the input llama.cpp's quantizer takes
# (llama.cpp-quantized variants: scripts/interop.sh makes them with llama.cpp's own quantizer.)
# Each file is loaded by tern-perplexity on the parity text; the list and perplexities are printed.
set -euo pipefail
B=${1:-build}
ckpt=${2:-}
out=${3:-test-ggufs}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$B" in /*) ;; *) B="$root/$B" ;; esac
for p in tern-export tern-perplexity; do
  [ -x "$B/$p" ] || { echo "make_test_ggufs.sh: $B/$p not built (make)" >&2; exit 1; }
done
mkdir -p "$out"
if [ -z "$ckpt" ]; then
  bdir=$(basename "$B")
  [ -x "$B/tests/test_parity" ] || make -s BUILD="$bdir" "$bdir/tests/test_parity" >&2
  echo "make_test_ggufs.sh: training a small checkpoint (test_parity, 100 AdamW steps)" >&2
  TERN_PARITY_OUT="$out" TERN_PARITY_TRAIN_STEPS=100 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$B/tests/test_parity" >/dev/null 2>&1 || true
  ckpt="$out/parity.h5"
  [ -f "$ckpt" ] || { echo "make_test_ggufs.sh: the parity test wrote no checkpoint" >&2; exit 1; }
fi
text=tests/fixtures/parity.txt
status=0
make_one() {   # name, export options...
  local name=$1; shift
  if ! "$B/tern-export" "$ckpt" "$out/$name.gguf" "$@" >/dev/null; then
    echo "make_test_ggufs.sh: tern-export $* failed" >&2; status=1; return
  fi
  local ppl
  if ! ppl=$("$B/tern-perplexity" -m "$out/$name.gguf" -f "$text" -c 64 2>/dev/null | sed -n 's/.*perplexity: \([0-9.]*\).*/\1/p'); then
    echo "make_test_ggufs.sh: tern-perplexity failed on $out/$name.gguf" >&2; status=1; return
  fi
  printf '%-22s %-44s ppl %s\n' "$name.gguf" "$*" "$ppl"
}
for t in tq2_0 tq1_0 i2_s q8_0 f16 bf16 f32; do make_one "bl-$t" --type "$t" --embd q8_0; done
for e in f32 f16 bf16 q8_0 q6_k q5_k q4_k; do make_one "embd-$e" --type tq2_0 --embd "$e"; done
make_one i2s-bitnetcpp --type i2_s --embd f16
make_one float-f32 --type f32 --embd f32
exit $status
