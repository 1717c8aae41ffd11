#!/usr/bin/env bash
# distill_wikitext.sh — ternary vs teacher on a real corpus: does distillation help a short fp -> ternary fine-tune?
#   1. a full-precision LLaMA-shaped model (no sub-norms, SwiGLU, GQA) trained on WikiText-2's train split
#      (BPE vocab 1024), written in the Hugging Face layout (scripts/torch_ref.py hf-export, BF16) and
#      imported back with tern-import: the "downloaded model";
#   2. fine-tuned to ternary (sub-norms inserted, λ ramp over the first quarter) FT_STEPS steps twice,
#      from the same start with the same data order: with the fp model as teacher (--distill-alpha 0.5)
#      and without (--distill-alpha 0: trains bit for bit as plain cross-entropy, tests/test_distill.c,
#      but still measures the KL);
#   3. prints, on WikiText-2's validation split: the teacher's loss, each student's loss before (naively
#      ternarized) and after, KL(teacher || student) and top-1 agreement.
# Usage: scripts/distill_wikitext.sh [BUILD_DIR]   (make distill-wikitext)
#   FP_STEPS (900), FT_STEPS (150), EVAL_BATCHES (20 x batch 8 x 128 tokens), OUT (runs/distill-wikitext),
#   TERN_DATA (../shared/data: needs wikitext-2/wiki.train.tokens and wiki.valid.tokens).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
FP_STEPS=${FP_STEPS:-900}
FT_STEPS=${FT_STEPS:-150}
EVAL_BATCHES=${EVAL_BATCHES:-20}
OUT=${OUT:-runs/distill-wikitext}
WIKI=${TERN_DATA:-../shared/data}/wikitext-2
PY=/usr/bin/python3
for f in wiki.train.tokens wiki.valid.tokens; do
    [ -f "$WIKI/$f" ] || { echo "distill_wikitext: $WIKI/$f not found (set TERN_DATA)" >&2; exit 1; }
done
mkdir -p "$OUT"
SHAPE="dim=128 n_layers=4 n_heads=4 n_kv_heads=2 ffn_dim=384 vocab_size=1024 seq_len=128 batch=8"
RUN="eval_interval=0 ckpt_interval=0 log_interval=25 eval_batches=$EVAL_BATCHES"
echo "# distill_wikitext: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); fp $FP_STEPS steps, fine-tunes $FT_STEPS steps of 8 x 128 tokens"

"$B/tern-tokenizer" train -o "$OUT/wiki.tkz" -v 1024 -q "$WIKI/wiki.train.tokens"
"$B/tern-tokenizer" encode -t "$OUT/wiki.tkz" -o "$OUT/train.tok" -q "$WIKI/wiki.train.tokens"
"$B/tern-tokenizer" encode -t "$OUT/wiki.tkz" -o "$OUT/val.tok" -q "$WIKI/wiki.valid.tokens"
t0=$(date +%s)
"$B/tern-train" $SHAPE $RUN ternary=0 sub_norms=0 lr=2e-3 schedule=cosine warmup=20 steps="$FP_STEPS" \
    train_data="$OUT/train.tok" val_data="$OUT/val.tok" tokenizer="$OUT/wiki.tkz" out_dir="$OUT/fp" --fresh > "$OUT/fp.log" 2>&1 \
    || { tail -5 "$OUT/fp.log" >&2; exit 1; }
echo "fp model: $(grep -m1 '^# parameters:' "$OUT/fp.log" | sed 's/# parameters: //') trained in $(( $(date +%s) - t0 )) s; $(grep '^done:' "$OUT/fp.log" | tail -1)"
"$PY" scripts/torch_ref.py hf-export "$OUT/fp/latest.h5" "$OUT/hf-llama" --dtype BF16 > /dev/null
"$B/tern-import" "$OUT/hf-llama" -o "$OUT/teacher.h5" > "$OUT/import.log" 2>&1 || { tail -5 "$OUT/import.log" >&2; exit 1; }

for mode in teacher plain; do
    alpha=0.5
    [ "$mode" = plain ] && alpha=0
    t0=$(date +%s)
    "$B/tern-finetune" --from "$OUT/teacher.h5" --to-ternary --teacher "$OUT/teacher.h5" --distill-alpha "$alpha" \
        steps="$FT_STEPS" warmup=10 $RUN train_data="$OUT/train.tok" val_data="$OUT/val.tok" out_dir="$OUT/ft-$mode" \
        > "$OUT/ft-$mode.log" 2>&1 || { tail -5 "$OUT/ft-$mode.log" >&2; exit 1; }
    echo "== fine-tune to ternary, distill_alpha $alpha ($([ "$mode" = plain ] && echo 'plain cross-entropy' || echo 'with the teacher')), $(( $(date +%s) - t0 )) s"
    grep -E '^before|^after' "$OUT/ft-$mode.log" | sed 's/^/   /'
done
s() { grep '^after: val loss student' "$OUT/ft-$1.log" | sed 's/.*student \([0-9.]*\).*KL(teacher||student) \([0-9.]*\); top-1 agreement \([0-9.]*%\).*/\1 \2 \3/'; }
read -r lt kt at <<< "$(s teacher)"
read -r lp kp ap <<< "$(s plain)"
teach=$(grep -m1 '^before (student' "$OUT/ft-teacher.log" | sed 's/.*teacher \([0-9.]*\).*/\1/')
naive=$(grep -m1 '^before (student' "$OUT/ft-teacher.log" | sed 's/.*student \([0-9.]*\),.*/\1/')
echo "== summary (WikiText-2 validation, $(( EVAL_BATCHES * 8 )) windows of 128 tokens)"
printf '   %-34s %8s %10s %8s\n' "model" "val loss" "KL(t||s)" "top-1"
printf '   %-34s %8s %10s %8s\n' "fp teacher" "$teach" "-" "-"
printf '   %-34s %8s %10s %8s\n' "ternarized, no fine-tune" "$naive" "$(grep -m1 '^before (student' "$OUT/ft-teacher.log" | sed 's/.*KL(teacher||student) \([0-9.]*\).*/\1/')" "$(grep -m1 '^before (student' "$OUT/ft-teacher.log" | sed 's/.*top-1 agreement \([0-9.]*%\).*/\1/')"
printf '   %-34s %8s %10s %8s\n' "ternary, fine-tuned without teacher" "$lp" "$kp" "$ap"
printf '   %-34s %8s %10s %8s\n' "ternary, fine-tuned with teacher" "$lt" "$kt" "$at"
