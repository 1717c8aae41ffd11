#!/usr/bin/env bash
# quality_guard.sh — may precision=mixed (the approximate int8/bf16 products, docs/TRAINING.md)
# become the default? Trains the same model at the same token budget with precision=fp32 (exact)
# and precision=mixed, over several seeds, on tiny-shakespeare (bundled; 90/10 split) and on
# WikiText-2 (wiki.train / wiki.valid from ../shared/data; skipped when absent), and compares the
# final validation losses: mixed passes on a corpus when |mean(mixed) - mean(fp32)| is within the
# seed-to-seed spread (max - min) of the fp32 runs. Prints every run's loss, the means, spreads and
# a verdict per corpus; exits 0 if every corpus passed, 1 if one failed.
#   scripts/quality_guard.sh [BUILD_DIR=build] [OUT=runs/guard]
# Environment: TOKENS (per run, default 2000000), SEEDS (default "1 2"), CONFIG (default
# configs/demo.cfg: 3.7M params, vocab 1024, 16 x 128 tokens a step), EXTRA (more key=value).
# The full default (2M tokens x 2 seeds x 2 precisions x 2 corpora) takes hours on 2 cores; a
# smaller TOKENS gives a weaker but honest check (say which was run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/corpora.sh
B=${1:-build}
OUT=${2:-runs/guard}
TOKENS=${TOKENS:-2000000}
SEEDS=${SEEDS:-1 2}
CONFIG=${CONFIG:-configs/demo.cfg}
EXTRA=${EXTRA:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
mkdir -p "$OUT"
echo "quality guard: $CONFIG, $TOKENS tokens per run, seeds: $SEEDS, OMP_NUM_THREADS=$OMP_NUM_THREADS, $(date -u +%FT%TZ)"
fail=0
guard() {   # name train.tok val.tok tokenizer
  local name=$1 tr=$2 va=$3 tok=$4
  local -A vals=()
  for prec in fp32 mixed; do
    for seed in $SEEDS; do
      local dir="$OUT/$name-$prec-s$seed"
      # eval_interval=0: the one evaluation is the final one, over (up to) 32 batches
      # shellcheck disable=SC2086
      "$B/tern-train" "$CONFIG" precision=$prec seed="$seed" max_tokens="$TOKENS" warmup=auto eval_interval=0 eval_batches=32 \
          ckpt_interval=0 train_data="$tr" val_data="$va" tokenizer="$tok" out_dir="$dir" $EXTRA --fresh > "$dir.log" 2>&1 \
        || { echo "quality_guard: training failed, see $dir.log" >&2; exit 2; }
      local v
      v=$(sed -n 's/^done:.*val loss \([0-9.]*\).*/\1/p' "$dir.log" | tail -1)
      [ -n "$v" ] || { echo "quality_guard: no validation loss in $dir.log" >&2; exit 2; }
      echo "  $name precision=$prec seed=$seed: val loss $v  ($(grep -o '[0-9.]*k\? tok/s' "$dir.log" | tail -1 || true))"
      vals[$prec]="${vals[$prec]:-} $v"
    done
  done
  if ! awk -v name="$name" -v f="${vals[fp32]}" -v m="${vals[mixed]}" 'BEGIN {
      nf = split(f, a, " "); nm = split(m, b, " ");
      lo = hi = a[1]; sf = 0; for (i = 1; i <= nf; i++) { sf += a[i]; if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
      sm = 0; mlo = mhi = b[1]; for (i = 1; i <= nm; i++) { sm += b[i]; if (b[i] < mlo) mlo = b[i]; if (b[i] > mhi) mhi = b[i] }
      mf = sf / nf; mm = sm / nm; d = mm - mf; if (d < 0) d = -d
      ok = d <= hi - lo
      printf "%s: fp32 mean %.4f (spread %.4f over %d seeds), mixed mean %.4f (spread %.4f): |difference| %.4f %s the fp32 spread: %s\n",
             name, mf, hi - lo, nf, mm, mhi - mlo, d, ok ? "within" : "outside", ok ? "PASS" : "FAIL"
      exit ok ? 0 : 1 }'; then
    fail=1
  fi
}
for_each_corpus "$B" "$OUT" guard
echo "quality guard: $([ $fail = 0 ] && echo "PASS: mixed within the fp32 seed spread on every corpus" || echo "FAIL")"
exit $fail
