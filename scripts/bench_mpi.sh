#!/usr/bin/env bash
# bench_mpi.sh — data-parallel training on this machine (make bench, section mpi): 1 rank x T threads
# against T ranks x 1 thread under mpirun (shared memory), same global batch, for each config:
#   tokens/s (median over the measured steps), step time, communication the backward did not hide
#   (share of the step), the share of communication overlap hides (overlap=1 against overlap=0, where
#   nothing is hidden), ZeRO-1's speed, and rank 0's peak memory.
#   scripts/bench_mpi.sh [BUILD_DIR] [config ...]        default configs: small base50m
# T = OMP_NUM_THREADS (default 2). STEPS_small / STEPS_base50m (default 12 / 4) steps per run, the
# first 2 not measured. base50m runs with grad_accum=1 (8 x 512 tokens per step) to keep it short.
# MPIRUN_ARGS replaces the mpirun options (default: shared memory only, no binding).
# REPEAT=N (default 1) runs the four layouts N times in turn and keeps each layout's best run
# (highest tokens/s): on a machine shared with other work that is the least disturbed figure.
# Every run prints its own figures; ratios compare runs made minutes apart: rerun for stable numbers.
set -uo pipefail
# the whole script is one function, read before it runs: editing the file meanwhile is harmless
main() {
  cd "$(dirname "$0")/.."
  B=${1:-build}
  shift || true
  configs=${*:-small base50m}
  T=${OMP_NUM_THREADS:-2}
  MPIRUN_ARGS=${MPIRUN_ARGS:---oversubscribe --bind-to none --mca btl self,vader --mca pml ob1}
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # private copies of the programs: a rebuild during the (long) runs cannot change what is measured
  cp "$B/tern-train" "$B/tern-tokenizer" "$work/" || exit 1
  B=$work
  command -v mpirun >/dev/null || { echo "bench_mpi: mpirun not found (scripts/install-deps.sh installs openmpi-bin)" >&2; exit 1; }
  echo "bench_mpi: $(nproc) CPUs, 1 rank x $T threads vs $T ranks x 1 thread; mpirun $MPIRUN_ARGS; $(mpirun --version | head -1)"

  # median tokens/s of CSV rows with step >= 3
  csv_tps() { awk -F, 'NR > 1 && $1 >= 3 { print $6 }' "$1" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  # from rank 0's output: step ms and exposed communication ms
  comm_field() { sed -n 's/.*step \([0-9.]*\) ms, of which communication not hidden by the backward \([0-9.]*\) ms.*/\1 \2/p' "$1"; }
  # rank 0's peak, and the other ranks' (after a slash)
  peak_mib() { sed -n -e 's/^peak memory: \([0-9]*\) MiB on rank 0, at most \([0-9]*\) MiB on the others/\1\/\2/p' -e 's/^peak memory: \([0-9]*\) MiB$/\1/p' "$1"; }

  for c in $configs; do
    cfg=configs/$c.cfg
    [ -f "$cfg" ] || { echo "bench_mpi: no $cfg" >&2; continue; }
    V=$(sed -n 's/^vocab_size *= *\([0-9]*\).*/\1/p' "$cfg")
    steps_var="STEPS_$c"
    S=${!steps_var:-$([ "$c" = small ] && echo 12 || echo 4)}
    extra=""
    [ "$c" = base50m ] && extra="grad_accum=1"
    if [ ! -f "$work/data$V.tok" ]; then
      "$B/tern-tokenizer" train -o "$work/tok$V.tok" -v "$V" -q data/tinyshakespeare/input.txt >/dev/null &&
      "$B/tern-tokenizer" encode -t "$work/tok$V.tok" -o "$work/data$V.tok" -q data/tinyshakespeare/input.txt >/dev/null ||
        { echo "bench_mpi: could not make a token file with vocab $V" >&2; exit 1; }
    fi
    args=("$cfg" "train_data=$work/data$V.tok" "steps=$S" "warmup=0" "eval_interval=0" "ckpt_interval=0" "log_interval=1" $extra --fresh)
    echo "== $c ($S steps per run, first 2 not measured; best of ${REPEAT:-1})"
    run() { # name np threads [key=value ...]
      local name=$1 np=$2 th=$3
      shift 3
      if [ "$np" = 1 ]; then
        OMP_NUM_THREADS=$th "$B/tern-train" "${args[@]}" "threads=$th" "out_dir=$work/$c-$name" "$@" >"$work/$c-$name.log" 2>&1
      else
        mpirun $MPIRUN_ARGS -np "$np" "$B/tern-train" "${args[@]}" "threads=$th" "out_dir=$work/$c-$name" "$@" >"$work/$c-$name.log" 2>&1
      fi || { echo "bench_mpi: $c $name failed:" >&2; tail -5 "$work/$c-$name.log" >&2; return 1; }
    }
    # each layout REPEAT times, interleaved; keep the run with the highest tokens/s as $c-<name>
    ok=1
    for ((rep = 1; rep <= ${REPEAT:-1}; rep++)); do
      for spec in "one 1 $T" "ddp $T 1" "noovl $T 1 overlap=0" "zero $T 1 zero=1"; do
        set -- $spec
        name=$1
        shift
        run "$name-r$rep" "$@" || { ok=0; break 2; }
        t_new=$(csv_tps "$work/$c-$name-r$rep/train.csv")
        t_old=$( [ -f "$work/$c-$name/train.csv" ] && csv_tps "$work/$c-$name/train.csv" || echo 0)
        if awk -v a="$t_new" -v b="$t_old" 'BEGIN { exit !(a > b) }'; then
          rm -rf "$work/$c-$name" "$work/$c-$name.log"
          mv "$work/$c-$name-r$rep" "$work/$c-$name"
          mv "$work/$c-$name-r$rep.log" "$work/$c-$name.log"
        else
          rm -rf "$work/$c-$name-r$rep" "$work/$c-$name-r$rep.log"
        fi
      done
    done
    [ $ok = 1 ] || continue
    tps1=$(csv_tps "$work/$c-one/train.csv")
    eval "tps1_$c=$tps1"
    printf "%-34s %10s %9s %9s %22s %13s\n" "layout" "tokens/s" "vs 1 rank" "step ms" "comm not hidden ms (%)" "peak MiB 0/rest"
    printf "%-34s %10.0f %9s %9s %22s %13s\n" "1 rank x $T threads" "$tps1" "1.00x" "-" "-" "$(peak_mib "$work/$c-one.log")"
    declare -A exposed
    for name in ddp noovl zero; do
      label="$T ranks x 1 thread"
      case $name in noovl) label="$label, overlap=0" ;; zero) label="$label, zero=1" ;; esac
      tps=$(csv_tps "$work/$c-$name/train.csv")
      read -r step exp <<<"$(comm_field "$work/$c-$name.log")"
      exposed[$name]=$exp
      printf "%-34s %10.0f %8.2fx %9.1f %14.1f (%4.1f%%) %13s\n" "$label" "$tps" "$(echo "$tps / $tps1" | bc -l)" "$step" "$exp" \
        "$(echo "100 * $exp / $step" | bc -l)" "$(peak_mib "$work/$c-$name.log")"
      grep '^comm:' "$work/$c-$name.log" | sed 's/^/    /'
    done
    awk -v a="${exposed[ddp]}" -v b="${exposed[noovl]}" -v c="$c" 'BEGIN {
      if (b > 0) printf "bench_mpi %s: communication share hidden by overlap: %.0f%% (%.1f ms exposed with overlap, %.1f ms without)\n", c, 100 * (1 - a / b), a, b }'
    unset exposed
  done
  if [ -n "${tps1_small:-}" ] && [ -n "${tps1_base50m:-}" ]; then
    echo "== model of N machines from these 1-rank speeds (docs/DISTRIBUTED.md; scripts/mpi_scaling_model.sh)"
    scripts/mpi_scaling_model.sh "$tps1_small" "$tps1_base50m" 1 16
  fi
}
main "$@"
