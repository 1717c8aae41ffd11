#!/usr/bin/env bash
# compare_ternary_fp.sh — the same fixed budget (configs/demo.cfg: 3.7M params, 250 steps x 16 x 128
# = 512k tokens, BPE vocab 1024) trained ternary (LR 2.4e-3) and full precision (LR 4e-4, the
# field's defaults), on tiny-shakespeare (bundled; 90/10 split) and on WikiText-2 (train on
# wiki.train, validate on wiki.valid; from ../shared/data, skipped when absent). Prints the final
# validation loss of each run. ~6 minutes on 2 cores.
#   scripts/compare_ternary_fp.sh [BUILD_DIR=build] [OUT=runs/compare]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/corpora.sh
B=${1:-build}
OUT=${2:-runs/compare}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
mkdir -p "$OUT"
results=()
run_pair() {   # name train.tok val.tok tokenizer
  local name=$1 tr=$2 va=$3 tok=$4
  for mode in ternary fp; do
    local t=1
    [ "$mode" = fp ] && t=0
    local dir="$OUT/$name-$mode"
    echo "== $name, $mode"
    "$B/tern-train" configs/demo.cfg ternary=$t lr=0 train_data="$tr" val_data="$va" tokenizer="$tok" \
        out_dir="$dir" --fresh > "$dir.log" 2>&1 || { echo "compare: training failed, see $dir.log" >&2; exit 1; }
    local line
    line=$(grep '^done:' "$dir.log" | tail -1)
    echo "$line"
    results+=("$name $mode: ${line#*train loss }")
  done
}
for_each_corpus "$B" "$OUT" run_pair
echo "== final losses (train loss, val loss) after 512k tokens"
printf '  %s\n' "${results[@]}"
