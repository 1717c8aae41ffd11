#!/usr/bin/env bash
# demo.sh — tern's main job on the bundled default (run by `make demo`):
#   1. train a BPE tokenizer on data/tinyshakespeare and tokenize it (90% train / 10% validation)
#   2. train a small ternary (BitNet b1.58) model for a few minutes (configs/demo.cfg)
#   3. evaluate it (loss, perplexity, bits/byte) and plot the loss curves
#   4. export it to GGUF (TQ2_0), generate from it and measure perplexity with the bundled runtime
# Everything lands in runs/demo/. Pass key=value overrides for the training run, e.g.
#   scripts/demo.sh build steps=50
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
shift || true
OUT=runs/demo
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
mkdir -p "$OUT"
TEXT=data/tinyshakespeare/input.txt

echo "== 1/4 tokenizer: BPE vocab 1024 on $TEXT"
"$B/tern-tokenizer" train -o "$OUT/tokenizer.tok" -v 1024 -q "$TEXT"
"$B/tern-tokenizer" encode -t "$OUT/tokenizer.tok" -o "$OUT/train.tok" --val "$OUT/val.tok" --val-frac 0.1 -q "$TEXT"
"$B/tern-tokenizer" info "$OUT/train.tok"
"$B/tern-tokenizer" info "$OUT/val.tok"

echo "== 2/4 training a ternary model (configs/demo.cfg); Ctrl-C saves a checkpoint and stops"
"$B/tern-train" configs/demo.cfg train_data="$OUT/train.tok" val_data="$OUT/val.tok" \
    tokenizer="$OUT/tokenizer.tok" out_dir="$OUT" --fresh "$@"

echo "== 3/4 evaluation"
"$B/tern-eval" "$OUT/latest.h5" --data "$OUT/val.tok"
if command -v gnuplot >/dev/null 2>&1; then
    scripts/plot_loss.sh "$OUT/train.csv" "$OUT/loss.png" "tern demo: ternary model on tiny-shakespeare"
    echo "loss plot: $OUT/loss.png"
fi

if [ -x "$B/tern-export" ] && [ -x "$B/tern-generate" ]; then
    echo "== 4/4 export to GGUF and run it with the bundled runtime"
    "$B/tern-export" "$OUT/latest.h5" -o "$OUT/model-tq2_0.gguf"
    "$B/tern-generate" -m "$OUT/model-tq2_0.gguf" -p "ROMEO:" -n 120 --seed 1
    if [ -x "$B/tern-perplexity" ]; then
        tail -c 20000 "$TEXT" > "$OUT/val-sample.txt"
        "$B/tern-perplexity" -m "$OUT/model-tq2_0.gguf" -f "$OUT/val-sample.txt"
    fi
fi
echo "demo done: everything is in $OUT/"
