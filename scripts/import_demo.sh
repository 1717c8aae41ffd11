#!/usr/bin/env bash
# import_demo.sh — Hugging Face models into ternary, end to end, from a fresh clone (make import-demo):
#   1. a full-precision LLaMA-shaped model trained briefly on the bundled tiny-shakespeare
#      (tern-train ternary=0 sub_norms=0) and written as a Hugging Face LlamaForCausalLM directory
#      by scripts/torch_ref.py hf-export (config.json, model.safetensors in BF16, tokenizer.model):
#      the stand-in for a downloaded model (TinyLlama, SmolLM, ... are read the same way);
#   2. LLaMA: tern-import; tern-finetune --to-ternary (sub-norms inserted) with the imported model as
#      teacher; tern-eval of teacher and student; tern-export (dim 128: the Q8_0 fallback);
#      tern-generate; tern-perplexity;
#   3. BitNet: a squared-ReLU ternary model trained briefly, written as a packed BitNetForCausalLM
#      directory (uint8 codes + weight_scale, as microsoft/bitnet-b1.58-2B-4T), imported, fine-tuned
#      with the LLaMA of step 1 as teacher, exported as bitnet-b1.58, generated from.
# Everything lands in runs/import/. STEPS (default 300) sets the training steps of step 1 and 3,
# FT_STEPS (default 120) the fine-tunes. Needs the reference deps (scripts/install-deps.sh ref).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
STEPS=${STEPS:-300}
FT_STEPS=${FT_STEPS:-120}
OUT=runs/import
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
mkdir -p "$OUT"
TEXT=data/tinyshakespeare/input.txt
SHAPE="dim=128 n_layers=4 n_heads=4 n_kv_heads=2 ffn_dim=384 vocab_size=1024 seq_len=128 batch=8"
RUN="eval_interval=0 ckpt_interval=0 log_interval=50 warmup=20"

echo "== 1/3 tokenizer and a full-precision LLaMA-shaped model, written in the Hugging Face layout"
"$B/tern-tokenizer" train -o "$OUT/tok.tkz" -v 1024 -q "$TEXT"
"$B/tern-tokenizer" encode -t "$OUT/tok.tkz" -o "$OUT/train.tok" --val "$OUT/val.tok" --val-frac 0.1 -q "$TEXT"
"$B/tern-train" $SHAPE $RUN ternary=0 sub_norms=0 lr=2e-3 schedule=cosine steps="$STEPS" \
    train_data="$OUT/train.tok" val_data="$OUT/val.tok" tokenizer="$OUT/tok.tkz" out_dir="$OUT/llama-train" --fresh
$PY scripts/torch_ref.py hf-export "$OUT/llama-train/latest.h5" "$OUT/hf-llama" --dtype BF16

echo "== 2/3 LlamaForCausalLM: import, fine-tune to ternary with the fp model as teacher, evaluate, export, run"
"$B/tern-import" "$OUT/hf-llama" -o "$OUT/llama.h5" --save-tokenizer "$OUT/llama.tkz"
"$B/tern-finetune" --from "$OUT/llama.h5" --to-ternary --teacher "$OUT/llama.h5" steps="$FT_STEPS" $RUN \
    train_data="$OUT/train.tok" val_data="$OUT/val.tok" out_dir="$OUT/llama-ternary"
"$B/tern-eval" "$OUT/llama.h5" --data "$OUT/val.tok"
"$B/tern-eval" "$OUT/llama-ternary/latest.h5" --data "$OUT/val.tok"
"$B/tern-export" "$OUT/llama-ternary/latest.h5" -o "$OUT/llama-ternary.gguf"
"$B/tern-generate" -m "$OUT/llama-ternary.gguf" -p "ROMEO:" -n 60 --seed 1
tail -c 20000 "$TEXT" > "$OUT/val-sample.txt"
"$B/tern-perplexity" -m "$OUT/llama-ternary.gguf" -f "$OUT/val-sample.txt"

echo "== 3/3 BitNetForCausalLM (packed): import, fine-tune with the LLaMA as teacher, evaluate, export (bitnet-b1.58), run"
"$B/tern-train" $SHAPE $RUN ternary=1 ffn_act=relu2 steps="$STEPS" \
    train_data="$OUT/train.tok" val_data="$OUT/val.tok" tokenizer="$OUT/tok.tkz" out_dir="$OUT/bitnet-train" --fresh
$PY scripts/torch_ref.py hf-export "$OUT/bitnet-train/latest.h5" "$OUT/hf-bitnet" --packed
"$B/tern-import" "$OUT/hf-bitnet" -o "$OUT/bitnet.h5"
"$B/tern-finetune" --from "$OUT/bitnet.h5" --teacher "$OUT/llama.h5" steps="$FT_STEPS" $RUN \
    train_data="$OUT/train.tok" val_data="$OUT/val.tok" out_dir="$OUT/bitnet-ft"
"$B/tern-eval" "$OUT/bitnet-ft/latest.h5" --data "$OUT/val.tok"
"$B/tern-export" "$OUT/bitnet-ft/latest.h5" -o "$OUT/bitnet.gguf"
"$B/tern-generate" -m "$OUT/bitnet.gguf" -p "ROMEO:" -n 60 --seed 1
"$B/tern-perplexity" -m "$OUT/bitnet.gguf" -f "$OUT/val-sample.txt"
echo "import demo done: everything is in $OUT/"
