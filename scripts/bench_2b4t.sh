#!/usr/bin/env bash
# bench_2b4t.sh — tern against llama.cpp and bitnet.cpp on the BitNet b1.58 2B4T shape (n_embd
# 2560, n_ff 6912, 30 layers, 20/5 heads, vocab 128256) with random weights, every runtime on the
# same weights (tern-bench --random 2b4t --save writes them once per container):
#   2b4t-i2s-f16.gguf   I2_S + f16 embedding   (what bitnet.cpp's converter writes; bitnet.cpp, tern)
#   2b4t-tq2-f16.gguf   TQ2_0 + f16 embedding  (llama.cpp, bitnet.cpp, tern)
#   2b4t-tq2-q8.gguf    TQ2_0 + q8_0 embedding (tern's default export; llama.cpp, tern)
#   2b4t-tq2-q6k.gguf   TQ2_0 + q6_K embedding (llama-quantize's default for a tied embedding)
# For each: load time, prefill and decode tok/s (medians of ROUNDS rounds; the runtimes alternate
# back to back inside a round, so a noisy shared machine slows all of them alike), tern's bytes per
# token against the read bandwidth measured before each repeat, and tern's decode at depth 64
# and 4080 (int8 KV cache; 16 tokens decoded at each, so the deepest ends at the 4096-token context;
# `tern-bench --depths 64,4080`: both in one process, alternating within 3 repeats), as the ratio
# of the medians and as the median of the rounds' ratios (each the median of its repeats' own
# ratios: steadier when the host's bandwidth moves).
#   scripts/bench_2b4t.sh [BUILD_DIR=build] [DIR=/tmp/tern-2b4t] [ROUNDS=3]
# bitnet.cpp is not a package: build it yourself and set BITNET_BENCH=/path/to/its llama-bench.
# Its I2_S kernel (src/ggml-bitnet-mad.cpp) needs no code generation, only an empty LUT header:
#   git clone --recursive https://github.com/microsoft/BitNet && cd BitNet
#   touch include/bitnet-lut-kernels.h      # the TL1/TL2 kernels' header, unused without them
#   CC=clang CXX=clang++ cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF
#   cmake --build build --target llama-bench -j
# (it runs tern's I2_S and TQ2_0 files: arch "bitnet", f16 embedding).
# llama.cpp comes from node-llama-cpp (scripts/interop, installed on first use like make interop).
# Threads: OMP_NUM_THREADS (default 2) for every runtime.
set -uo pipefail
B=${1:-build}
dir=${2:-/tmp/tern-2b4t}
rounds=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$B" in /*) ;; *) B="$root/$B" ;; esac
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
t=$OMP_NUM_THREADS
mkdir -p "$dir"
echo "== 2B4T shape, $t threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%FT%TZ)"
mk() {   # file, --type, head
  [ -s "$dir/$1" ] || "$B/tern-bench" --random "2b4t,act=silu,head=$3" --type "$2" --save "$dir/$1" >/dev/null || exit 1
}
mk 2b4t-i2s-f16.gguf i2_s f16
mk 2b4t-tq2-f16.gguf tq2_0 f16
mk 2b4t-tq2-q8.gguf tq2_0 q8_0
mk 2b4t-tq2-q6k.gguf tq2_0 q6_k
have_node=0
if command -v node >/dev/null && [ -d scripts/interop/node_modules/node-llama-cpp ]; then have_node=1
else echo "(llama.cpp skipped: node-llama-cpp not installed; make interop installs it)"; fi
[ -n "${BITNET_BENCH:-}" ] || echo "(bitnet.cpp skipped: set BITNET_BENCH=/path/to/its llama-bench)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq 1 "$rounds"); do
  for f in 2b4t-i2s-f16 2b4t-tq2-f16 2b4t-tq2-q8 2b4t-tq2-q6k; do
    "$B/tern-bench" -m "$dir/$f.gguf" -p 64 -n 32 -r 1 2>&1 |
      awk -v f="$f" '/loaded in/ { for (i = 1; i <= NF; i++) if ($i == "in") l = $(i+1) }
                     /^prefill/ { p = $4 } /^decode/ { d = $4 } /of the read bandwidth/ { bw = $2 }
                     END { printf "tern %s load %s prefill %s decode %s bw %s\n", f, l, p, d, bw }' | tee -a "$log"
    if [ -n "${BITNET_BENCH:-}" ] && [ "$f" != 2b4t-tq2-q6k ] && [ "$f" != 2b4t-tq2-q8 ]; then
      "$BITNET_BENCH" -m "$dir/$f.gguf" -p 64 -n 32 -t "$t" -r 1 2>/dev/null |
        awk -v f="$f" -F'|' '/ pp64 / { gsub(/ /, "", $(NF-1)); split($(NF-1), a, "±"); p = a[1] }
                              / tg32 / { gsub(/ /, "", $(NF-1)); split($(NF-1), a, "±"); d = a[1] }
                              END { printf "bitnet.cpp %s prefill %s decode %s\n", f, p, d }' | tee -a "$log"
    fi
    if [ $have_node = 1 ] && [ "$f" != 2b4t-i2s-f16 ]; then
      node scripts/interop/bench_llama.mjs "$dir/$f.gguf" 64 32 "$t" 2>/dev/null |
        awk -v f="$f" '{ printf "llama.cpp %s load %s prefill %s decode %s\n", f, $3, $6, $9 }' | tee -a "$log"
    fi
  done
  # both depths in one process, alternating within each of 3 repeats (tern-bench --depths): the
  # ratio is the median of the per-repeat ratios, steadier than two processes minutes apart
  "$B/tern-bench" -m "$dir/2b4t-tq2-q8.gguf" --depths 64,4080 -n 16 -r 3 2>&1 |
    awk '$1 == 64 || $1 == 4080 { printf "tern depth %s decode %s\n", $1, $2 }
         $1 == 4080 { sub("%", "", $3); printf "tern depthratio %s\n", $3 }' | tee -a "$log"
done
echo "== medians over $rounds rounds"
awk '
  function med(k,   n, i, j, t, a) { n = split(vals[k], a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
                                      return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : "-" }
  /^(tern|bitnet.cpp|llama.cpp) 2b4t/ { key = $1 " " $2; seen[key] = 1
       for (i = 3; i < NF; i += 2) vals[key "|" $i] = vals[key "|" $i] " " $(i + 1) }
  /^tern depth / { vals["depth|" $3] = vals["depth|" $3] " " $5 }
  /^tern depthratio/ { vals["depth|ratio"] = vals["depth|ratio"] " " $3 }
  END {
    printf "%-30s %8s %12s %12s %10s\n", "runtime / file", "load s", "prefill t/s", "decode t/s", "% bw"
    for (k in seen) printf "%-30s %8s %12s %12s %10s\n", k, med(k "|load"), med(k "|prefill"), med(k "|decode"), med(k "|bw")
    d64 = med("depth|64"); d4k = med("depth|4080")
    if (d64 != "-") printf "tern 2b4t-tq2-q8 decode at depth 64: %s tok/s, at depth 4080: %s tok/s (%.0f%% of depth 64; the median of the rounds'"'"' own ratios: %.1f%%)\n", d64, d4k, 100 * d4k / d64, med("depth|ratio")
  }' "$log"
