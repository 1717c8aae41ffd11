#!/usr/bin/env bash
# bench_infer.sh — runtime speed (make bench): measured memory read bandwidth, then prefill and
# decode tokens/s (medians), integer GOPS and effective GB/s of weights read per decoded token for
#   small: dim 256, 6 layers, 4 heads, ffn 768, vocab 4096 (random weights)
#   2b:    n_embd 2560, n_ff 6912, 30 layers, 20 heads / 5 kv heads, vocab 32000 (random weights,
#          the BitNet-b1.58-2B-4T shape; published llama.cpp TQ2_0 decode on 2 cores: ~23 tok/s)
# then the same 2b shape with every kernel level the CPU has, alternating (tern-bench --kernel all),
# and, if given, a model file. Threads: OMP_NUM_THREADS (default 2).
#   scripts/bench_infer.sh [BUILD_DIR=build] [model.gguf]
set -euo pipefail
B=${1:-build}
model=${2:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMP_PROC_BIND=${OMP_PROC_BIND:-close}
echo "== tern runtime bench ($OMP_NUM_THREADS threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
"$B/tern-bench" --bandwidth 1024
# tern-bench re-measures the read bandwidth and the VNNI peak before each repeat and prints the
# decode and prefill percentages against them
run() {
  local label=$1; shift
  echo "-- $label"
  "$B/tern-bench" "$@"
}
run "small (random weights)" --random small -p 128 -n 128 -r 5
run "2560/6912/30 layers, 20/5 heads (random weights)" --random 2b -p 64 -n 32 -r 3
# the kernel levels this CPU has (x86: avx2, avxvnni, avx512), alternating within each repeat:
# what a laptop without AVX-512 (AVX-VNNI) or an older CPU (AVX2) gets, as ratios to the first
run "2b shape, every kernel level of this CPU, alternating" --random 2b -p 64 -n 32 -r 3 --kernel all
[ -n "$model" ] && run "$model" -m "$model" -p 128 -n 64 -r 3
exit 0
