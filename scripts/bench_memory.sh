#!/usr/bin/env bash
# bench_memory.sh — memory and threads of a training step (tern-bench_train: forward + backward +
# clip + AdamW of one micro-batch, random tokens), for make bench's `memory` and `threads` sections.
#
#   scripts/bench_memory.sh [BUILD_DIR] memory [config ...]    predicted vs measured peak RSS
#   scripts/bench_memory.sh [BUILD_DIR] threads [config ...]   tokens/s at 1, 2, 4, 8, 16 threads
#
# memory: for each config (default: small, base50m, base350m, each at its own batch x seq_len)
# with recompute = 0 and 1, the estimate of training/memory.h (what tern-train prints before its
# first step, for one micro-batch) beside the peak RSS the step really reached, their ratio, and
# the median step time, CPU seconds per step (all threads) and tokens/s; then the cost of
# recompute = 1 per config (ratios within this run; on a loaded machine the CPU-time ratio at
# threads=1, e.g. OMP_NUM_THREADS=1, is the steadier one). A row whose estimate exceeds MEM_BENCH_MAX (default 16G) is not run: "needs X".
# threads: small (recompute 0) and base50m (recompute 1) at each thread count up to the CPUs here;
# counts above that are listed as not measured (they need a machine with more cores).
# Medians of a few steps: on a shared machine compare ratios from one run.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
what=${2:-memory}
shift 2 2>/dev/null || shift $#
max=${MEM_BENCH_MAX:-16G}

# steps and warm-up per config: the large ones take seconds to minutes per step on 2 cores
steps_of() { case $1 in base350m) echo "1 1" ;; base50m) echo "2 1" ;; *) echo "5 1" ;; esac; }

# run CONFIG KEY=VALUE...: prints the bench_train line, or "refused: <why>"
run() {
  local c=$1; shift
  local sw; read -r -a sw <<< "$(steps_of "$c")"
  local out
  out=$("$B/tern-bench_train" "configs/$c.cfg" max_memory="$max" "$@" --steps "${sw[0]}" --warmup "${sw[1]}" 2>&1)
  if grep -q '^bench_train' <<< "$out"; then grep '^bench_train' <<< "$out"
  else echo "refused: $(sed -n 's/.*the run needs about \([^(]*\) (.*/needs \1/p' <<< "$out" | head -1)$(grep -v 'needs about' <<< "$out" | head -1)"; fi
}

# the numbers of a bench_train line: batch, step s, tokens/s, peak MiB, predicted MiB, CPU s per step
fields() {
  sed -n 's/.*batch \([0-9]* x [0-9]*\) tokens.* median step \([0-9.]*\) s, \([0-9]*\) tokens\/s.*peak RSS \([0-9]*\) MiB (predicted \([0-9]*\) MiB), CPU \([0-9.]*\) s per step.*/\1|\2|\3|\4|\5|\6/p' <<< "$1"
}

if [ "$what" = memory ]; then
  configs=${*:-small base50m base350m}
  printf "%-9s %-10s %-9s %12s %12s %8s %9s %9s %9s\n" config batch recompute "predicted" "peak RSS" "pred/RSS" "step s" "CPU s" "tokens/s"
  ratios=""
  for c in $configs; do
    s0=""
    for r in 0 1; do
      line=$(run "$c" recompute=$r)
      f=$(fields "$line")
      if [ -z "$f" ]; then
        printf "%-9s %-10s %-9s %s\n" "$c" "" "$r" "${line#refused: } (> MEM_BENCH_MAX=$max: not run)"
        continue
      fi
      IFS='|' read -r batch step tps peak pred cpu <<< "$f"
      printf "%-9s %-10s %-9s %8s MiB %8s MiB %7.2fx %9s %9s %9s\n" "$c" "${batch// /}" "$r" "$pred" "$peak" \
        "$(awk -v a="$pred" -v b="$peak" 'BEGIN { print a / b }')" "$step" "$cpu" "$tps"
      if [ "$r" = 0 ]; then s0=$step; c0=$cpu; elif [ -n "$s0" ]; then
        ratios="$ratios$(printf "ratio: %s recompute=1 / recompute=0: step time %.2fx, CPU time %.2fx" "$c" \
          "$(awk -v a="$step" -v b="$s0" 'BEGIN { print a / b }')" "$(awk -v a="$cpu" -v b="$c0" 'BEGIN { print a / b }')")"$'\n'
      fi
    done
  done
  printf "%s" "$ratios"
elif [ "$what" = threads ]; then
  configs=${*:-small base50m}
  ncpu=$(nproc)
  for c in $configs; do
    rc=0; [ "$c" = small ] || rc=1
    t1=""
    for t in 1 2 4 8 16; do
      if [ "$t" -gt "$ncpu" ]; then echo "threads: $c at $t threads: not measured ($ncpu CPUs here)"; continue; fi
      f=$(fields "$(run "$c" recompute=$rc threads=$t)")
      [ -n "$f" ] || { echo "threads: $c at $t threads: failed"; continue; }
      IFS='|' read -r batch step tps peak pred cpu <<< "$f"
      [ -n "$t1" ] || t1=$tps
      printf "threads: %s (batch %s, recompute %d) %2d thread(s): %s tokens/s, %.2fx of 1 thread\n" "$c" "${batch// /}" "$rc" "$t" "$tps" \
        "$(awk -v a="$tps" -v b="$t1" 'BEGIN { print a / b }')"
    done
  done
else
  echo "usage: scripts/bench_memory.sh [BUILD_DIR] memory|threads [config ...]" >&2
  exit 2
fi
