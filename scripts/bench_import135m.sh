#!/usr/bin/env bash
# bench_import135m.sh — a 135M-parameter LLaMA-shaped model end to end, with every figure printed:
#   SmolLM-135M's config (hidden 576, 30 layers, 9 heads / 3 KV heads, FFN 1536, vocab 49152, tied
#   head) with random BF16 weights, written in the Hugging Face layout by scripts/torch_ref.py
#   hf-random (a tern tokenizer trained on the bundled tiny-shakespeare as tokenizer.model), then
#     tern-import          wall time, peak RSS
#     tern-finetune        --to-ternary --teacher (its fp self), STEPS steps of BATCH x SEQ tokens:
#                          the memory estimate printed before starting vs the measured peak RSS,
#                          median tokens/s over the steps, val loss / KL before and after
#     tern-export          GGUF size, bits per parameter (576-wide rows: the exact-ternary Q8_0 fallback)
#     tern-generate        tokens/s;  tern-perplexity on held-out text
#   Usage: scripts/bench_import135m.sh [BUILD_DIR]   (make bench-import135m)
#   STEPS (20), BATCH (1), SEQ (128), EVAL_BATCHES (4), OUT (runs/bench135m). OMP_NUM_THREADS as usual.
#   Peak RSS is /usr/bin/time's maximum resident set size. Needs the reference deps (install-deps.sh ref).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
STEPS=${STEPS:-20}
BATCH=${BATCH:-1}
SEQ=${SEQ:-128}
EVAL_BATCHES=${EVAL_BATCHES:-4}
OUT=${OUT:-runs/bench135m}
PY=/usr/bin/python3
TEXT=data/tinyshakespeare/input.txt
mkdir -p "$OUT"
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench_import135m: needs GNU time (/usr/bin/time; Debian package 'time')" >&2; exit 1; }

# run LABEL CMD...: runs CMD, its output into $OUT/LABEL.log, and records wall seconds and peak RSS (MiB)
run() {
    local label=$1; shift
    "$TIME" -f "%e %M" -o "$OUT/$label.time" "$@" > "$OUT/$label.log" 2>&1 || { echo "bench_import135m: $label failed:" >&2; tail -5 "$OUT/$label.log" >&2; exit 1; }
}
wall() { awk '{print $1}' "$OUT/$1.time"; }
rss() { awk '{printf "%.0f", $2 / 1024}' "$OUT/$1.time"; }

echo "# bench_import135m: $(nproc) CPUs, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
"$B/tern-tokenizer" train -o "$OUT/shakespeare.tkz" -v 2048 -q "$TEXT"
run hf-random "$PY" scripts/torch_ref.py hf-random "$OUT/hf" --preset smollm-135m --dtype BF16 --tokenizer "$OUT/shakespeare.tkz"
echo "hf-random: $(grep -o '[0-9.]*M parameters' "$OUT/hf-random.log"), model.safetensors $(du -m "$OUT/hf/model.safetensors" | cut -f1) MiB (BF16)"

run import "$B/tern-import" "$OUT/hf" -o "$OUT/m135.h5" --save-tokenizer "$OUT/m135.tkz"
echo "import: $(wall import) s wall, peak RSS $(rss import) MiB, checkpoint $(du -m "$OUT/m135.h5" | cut -f1) MiB"

"$B/tern-tokenizer" encode -t "$OUT/m135.tkz" -o "$OUT/train.tok" --val "$OUT/val.tok" --val-frac 0.1 -q "$TEXT"
run finetune "$B/tern-finetune" --from "$OUT/m135.h5" --to-ternary --teacher "$OUT/m135.h5" steps="$STEPS" batch="$BATCH" \
    seq_len="$SEQ" warmup=2 eval_interval=0 ckpt_interval=0 log_interval=1 eval_batches="$EVAL_BATCHES" \
    train_data="$OUT/train.tok" val_data="$OUT/val.tok" out_dir="$OUT/ft"
L="$OUT/finetune.log"
est=$(grep -o '# memory: about [0-9.]* [GM]iB' "$L" | sed 's/# memory: about //')
tps=$(awk -F, 'NR > 1 && $6 != "" {print $6}' "$OUT/ft/train.csv" | sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
echo "finetune: $STEPS steps of $BATCH x $SEQ tokens, $(wall finetune) s wall; median $tps tokens/s"
echo "finetune memory: estimate $est (printed before starting), measured peak RSS $(rss finetune) MiB"
grep -m1 '^# OpenMP\|^# memory' "$L" | grep OpenMP || true
grep -E '^# compute|^# OpenMP|^before|^after|^teacher memory' "$L"
echo "finetune loss: step 1 $(awk -F, 'NR == 2 {print $3}' "$OUT/ft/train.csv"), step $STEPS $(awk -F, 'END {print $3}' "$OUT/ft/train.csv")"

run export "$B/tern-export" "$OUT/ft/latest.h5" -o "$OUT/m135.gguf"
bytes=$(stat -c %s "$OUT/m135.gguf")
nparams=$(grep -o '[0-9.]*M parameters' "$OUT/hf-random.log" | grep -o '^[0-9.]*')
echo "export: $(wall export) s, $(awk -v b="$bytes" 'BEGIN {printf "%.1f MiB", b / 1048576}'), $(awk -v b="$bytes" -v n="$nparams" 'BEGIN {printf "%.2f", 8 * b / (n * 1e6)}') bits per parameter over all ${nparams}M (embedding q8_0, BitLinears exact-ternary Q8_0: 576 is not a multiple of 256)"
grep -iE 'bits|fallback|q8_0' "$OUT/export.log" | head -5 || true

run generate "$B/tern-generate" -m "$OUT/m135.gguf" -p "ROMEO:" -n 64 --seed 1
echo "generate: $(wall generate) s wall, peak RSS $(rss generate) MiB"
grep -oE '(load|prefill|decode)[^|]*tok/s[^|]*' "$OUT/generate.log" | tail -3 || true
tail -c 8000 "$TEXT" > "$OUT/val-sample.txt"
run perplexity "$B/tern-perplexity" -m "$OUT/m135.gguf" -f "$OUT/val-sample.txt"
echo "perplexity: $(wall perplexity) s wall, peak RSS $(rss perplexity) MiB"
tail -3 "$OUT/perplexity.log"
echo "bench_import135m done: logs in $OUT/"
