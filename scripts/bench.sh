#!/usr/bin/env bash
# bench.sh — tern's speed and memory figures (make bench). Every section prints medians measured
# in this one run; ratios compare figures from the same run. Threads: OMP_NUM_THREADS (default 2).
# The machine may be shared and noisy: compare ratios, rerun for stable absolute numbers.
#   scripts/bench.sh [BUILD_DIR] [section ...]     sections: matmul train torch tokenizer kernels infer mpi
#                                                  memory threads
# BENCH_CORETYPES (default "default Haswell"): the OpenBLAS kernel sets train and torch run under.
# BENCH_ROUNDS (default 3): with train and torch, tern's mixed step and PyTorch's ternary step run
# alternately this many times per kernel set, and the median of the rounds' ratios is printed (on
# a shared host whose speed drifts over minutes it is steadier than one ratio of two runs made
# minutes apart).
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
shift || true
sections=${*:-matmul train torch tokenizer kernels infer mpi memory threads}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
echo "tern bench: $(nproc) CPUs, OMP_NUM_THREADS=$OMP_NUM_THREADS, $(date -u +%FT%TZ)"
want() { case " $sections " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if want matmul; then
  echo "== engine matmul (OpenBLAS sgemm through tern_matmul)"
  "$B/tern-bench_matmul" 1024 10 | tee -a "$log"
fi
# OpenBLAS kernel sets: its default choice for this CPU, and Haswell's (AVX2) kernels. The training
# and PyTorch figures run under both; ratios compare runs under the same set.
coretype_env() { if [ "$1" = default ]; then env -u OPENBLAS_CORETYPE "${@:2}"; else env OPENBLAS_CORETYPE="$1" "${@:2}"; fi; }
coretypes=${BENCH_CORETYPES:-default Haswell}
if want train || want torch; then
  for ct in $coretypes; do
    echo "coretype: $ct" >> "$log"
    if want train; then
      echo "== training step, config small (dim 256, 6 layers, ffn 768, vocab 4096, batch 8 x 256): fwd + bwd + clip + AdamW; OpenBLAS kernels: $ct"
      echo "-- ternary, precision=fp32 (exact backward), per-op profile"
      coretype_env "$ct" "$B/tern-bench_train" configs/small.cfg precision=fp32 --steps 10 --profile | tee -a "$log"
      echo "-- ternary, precision=mixed (int8 dx; bf16 dW, head and attention products; what precision=auto, the default, picks on CPUs with AVX512-BF16), per-op profile"
      coretype_env "$ct" "$B/tern-bench_train" configs/small.cfg precision=mixed --steps 10 --profile | tee -a "$log"
      coretype_env "$ct" "$B/tern-bench_train" configs/small.cfg ternary=0 --steps 10 | tee -a "$log"
    fi
    if want torch; then
      echo "== the same model in eager PyTorch (scripts/torch_ref.py bench); OpenBLAS kernels: $ct"
      coretype_env "$ct" scripts/bench_torch_ref.sh 2>&1 | grep "torch_ref bench" | tee -a "$log"
    fi
  done
fi
if want matmul && want train; then
  # sgemm again after the training runs: the GEMM ratio uses the faster of the two (conservative
  # on a shared machine whose speed drifts)
  echo "== engine matmul again"
  "$B/tern-bench_matmul" 1024 10 | tee -a "$log"
fi
if want train && want torch; then
  awk '
    /^coretype: / { ct = $2; cts[++nct] = ct }
    /^bench_train ternary:/       { for (i = 1; i <= NF; i++) { if ($i == "tokens/s,") tt[ct] = $(i-1); if ($i == "tokens/CPU-s") ctt[ct] = $(i-1) } }
    /^bench_train ternary mixed:/ { for (i = 1; i <= NF; i++) { if ($i == "tokens/s,") tm[ct] = $(i-1); if ($i == "tokens/CPU-s") ctm[ct] = $(i-1) } }
    /^bench_train fp/             { for (i = 1; i <= NF; i++) if ($i == "tokens/s,") tf[ct] = $(i-1) }
    /torch_ref bench: ternary tokens\/CPU-s/ { cpt[ct] = $NF }
    /^bench_matmul .*openblas sgemm/ { for (i = 1; i <= NF; i++) if ($i == "GFLOP/s" && $(i-1) > sg) sg = $(i-1) }
    /^bench_train ternary:/ { for (i = 1; i <= NF; i++) if ($i == "GFLOP/s,") gt = $(i-1) }
    /torch_ref bench: ternary tokens\/s/ { pt[ct] = $NF }
    /torch_ref bench: fp tokens\/s/      { pf[ct] = $NF }
    END {
      for (j = 1; j <= nct; j++) {
        c = cts[j]
        if (pt[c] > 0)
          printf "ratio (OpenBLAS %s): tern/PyTorch training tokens/s: ternary fp32 %.2fx, ternary mixed %.2fx, fp %.2fx\n",
                 c, tt[c] / pt[c], tm[c] / pt[c], tf[c] / pf[c]
        if (cpt[c] > 0)
          printf "ratio (OpenBLAS %s): tern/PyTorch ternary training tokens per CPU-second (the work a step does; the figure to use on a loaded machine, at OMP_NUM_THREADS=1): fp32 %.2fx, mixed %.2fx\n",
                 c, ctt[c] / cpt[c], ctm[c] / cpt[c]
      }
      if (sg > 0) printf "ratio: tern ternary training GFLOP/s vs OpenBLAS sgemm 1024^3 (the faster of 2 runs): %.0f%%\n", 100 * gt / sg
    }' "$log"
fi
if want train && want torch; then
  rounds=${BENCH_ROUNDS:-3}
  for ct in $coretypes; do
    echo "== tern precision=mixed vs PyTorch ternary, alternating, $rounds rounds; OpenBLAS kernels: $ct"
    rs=""
    for r in $(seq 1 "$rounds"); do
      t=$(coretype_env "$ct" "$B/tern-bench_train" configs/small.cfg precision=mixed --steps 10 | awk '/^bench_train ternary mixed:/ { for (i = 1; i <= NF; i++) if ($i == "tokens/s,") print $(i-1) }')
      p=$(coretype_env "$ct" scripts/bench_torch_ref.sh --which ternary 2>&1 | awk '/torch_ref bench: ternary tokens\/s =/ { print $NF }')
      if [ -z "$t" ] || [ -z "$p" ]; then echo "round $r: no figure (tern '$t', PyTorch '$p')"; continue; fi
      ratio=$(awk -v a="$t" -v b="$p" 'BEGIN { printf "%.2f", a / b }')
      echo "round $r: tern $t tok/s, PyTorch $p tok/s, ratio ${ratio}x"
      rs="$rs $ratio"
    done
    [ -n "$rs" ] && echo "$rs" | tr ' ' '\n' | grep . | sort -n | awk -v ct="$ct" '{ v[NR] = $1 } END {
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "ratio (OpenBLAS %s): tern mixed / PyTorch ternary training tokens/s, median of %d alternating rounds: %.2fx (range %.2f-%.2f)\n", ct, NR, m, v[1], v[NR] }'
  done
fi
if want tokenizer && [ -x scripts/bench_tokenizer.sh ]; then
  echo "== tokenizer (WikiText-2 train)"
  scripts/bench_tokenizer.sh "$B"
fi
if want kernels && [ -x scripts/bench_kernels.sh ]; then
  echo "== int8 x ternary kernels"
  scripts/bench_kernels.sh "$B"
fi
if want infer && [ -x scripts/bench_infer.sh ]; then
  echo "== inference runtime"
  scripts/bench_infer.sh "$B"
fi
if want mpi && [ -x scripts/bench_mpi.sh ]; then
  echo "== data-parallel training over MPI (1 rank x $OMP_NUM_THREADS threads vs $OMP_NUM_THREADS ranks x 1 thread)"
  scripts/bench_mpi.sh "$B"
fi
if want memory; then
  echo "== training memory: predicted (training/memory.h) vs measured peak RSS, recompute 0 and 1 (scripts/bench_memory.sh)"
  scripts/bench_memory.sh "$B" memory
fi
if want threads; then
  echo "== training tokens/s by threads (scripts/bench_memory.sh)"
  scripts/bench_memory.sh "$B" threads
fi
