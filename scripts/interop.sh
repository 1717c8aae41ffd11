#!/usr/bin/env bash
# interop.sh — tern against real implementations: llama.cpp (node-llama-cpp's prebuilt binaries
# and libraries) and Hugging Face's tokenizers.js (npm @huggingface/tokenizers).
#   scripts/interop.sh [BUILD_DIR=build] [ckpt.h5]
#   1. scripts/interop/ggml_check.c: tern's ggml block types (Q8_0, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0,
#      F16, BF16) decode bit for bit as llama.cpp's ggml library decodes them, both ways;
#   2. scripts/make_test_ggufs.sh writes every kind of file tern-export makes from one checkpoint
#      (without one, a small model is trained on tests/fixtures/parity.txt by the parity test;
#      SentencePiece-style tokenizer), the ternary Q8_0 BitLinears of the export fallback for
#      widths that are not a multiple of 256 among them;
#   3. scripts/interop/llama_quantize.c runs llama.cpp's own quantizer (llama_model_quantize) on
#      the f32 export: TQ2_0 and TQ1_0 with llama.cpp's default embedding type (q6_K) and with
#      q4_K, q5_K, q8_0, f16 embeddings — the files `llama-quantize` makes;
#   4. scripts/interop/interop.mjs compares tokenization, greedy continuations and perplexity
#      (within 0.1%) of tern and llama.cpp on every one of those files llama.cpp can run (all but
#      I2_S, bitnet.cpp's format: its perplexity must equal the TQ2_0 file's, same weights);
#   5. the same with a byte-level BPE (LLaMA 3 pre-tokenizer): tern-tokenizer train --kind
#      bytelevel, encode, tern-train (configs/tiny.cfg, 100 steps), tern-export, interop.mjs;
#   6. scripts/interop/tokenizers.mjs: every tokenizer fixture (tests/fixtures/tokenizers: gpt2,
#      llama3, smollm, qwen2, llama) on the edge-case set, ids against tokenizers.js and llama.cpp.
# Exits non-zero on any mismatch. The npm packages are installed into scripts/interop/node_modules
# on first use (~90 MB).
set -euo pipefail
B=${1:-build}
ckpt=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "$B" in /*) ;; *) B="$root/$B" ;; esac
command -v node >/dev/null || { echo "interop.sh: node not found (scripts/install-deps.sh interop)" >&2; exit 1; }
if [ ! -d scripts/interop/node_modules/node-llama-cpp ] || [ ! -d scripts/interop/node_modules/@node-llama-cpp/linux-x64 ] ||
   [ ! -d scripts/interop/node_modules/@huggingface/tokenizers ]; then
  echo "interop.sh: installing node-llama-cpp and @huggingface/tokenizers into scripts/interop/node_modules" >&2
  (cd scripts/interop && npm install --no-audit --no-fund --omit=optional >&2)
fi
work=$(mktemp -d /tmp/tern-interop-XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -z "$ckpt" ]; then
  bdir=$(basename "$B")
  [ -x "$B/tests/test_parity" ] || make -s BUILD="$bdir" "$bdir/tests/test_parity" >&2
  echo "interop.sh: training a small checkpoint (test_parity, 100 AdamW steps)" >&2
  TERN_PARITY_OUT="$work" TERN_PARITY_TRAIN_STEPS=100 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$B/tests/test_parity" >/dev/null 2>&1
  ckpt="$work/parity.h5"
fi
status=0
lib=$(ls -d scripts/interop/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64 2>/dev/null | head -1)
[ -n "$lib" ] || { echo "interop.sh: node-llama-cpp's libraries not found" >&2; exit 1; }
libllama=$(ls "$lib"/libllama*.so | grep -v common | head -1)
# 1. block types
gcc -O2 -fopenmp -Isrc scripts/interop/ggml_check.c "$B/libtern_rt.a" -ldl -lm -o "$work/ggml_check"
gcc -O2 scripts/interop/llama_quantize.c -ldl -o "$work/llama_quantize"
"$work/ggml_check" "$lib/libggml-base.so" || status=1
# 2. tern's files
g="$work/ggufs"
scripts/make_test_ggufs.sh "$B" "$ckpt" "$g" || status=1
# 3. llama.cpp's quantizer (ggml type numbers: q4_K 12, q5_K 13, q8_0 8, f16 1)
lq() {   # name, file type, [token_embd type]
  "$work/llama_quantize" "$libllama" "$g/float-f32.gguf" "$g/$1.gguf" "$2" ${3:-} >"$work/lq.log" 2>&1 ||
    { echo "interop.sh: llama_model_quantize $*:" >&2; tail -5 "$work/lq.log" >&2; status=1; }
}
lq llama-tq2_0 tq2_0
lq llama-tq1_0 tq1_0
lq llama-tq2_0-embd-q4_k tq2_0 12
lq llama-tq2_0-embd-q5_k tq2_0 13
lq llama-tq2_0-embd-q8_0 tq2_0 8
lq llama-tq1_0-embd-f16 tq1_0 1
# 4. agreement on every file llama.cpp runs
for f in "$g"/*.gguf; do
  case "$(basename "$f")" in bl-i2_s.gguf|i2s-*) continue ;; esac
  echo "== $(basename "$f")"
  node scripts/interop/interop.mjs "$B" "$f" tests/fixtures/parity.txt || status=1
done
# I2_S (llama.cpp cannot run it): same weights as the TQ2_0 file, so the same perplexity
p1=$("$B/tern-perplexity" -m "$g/bl-tq2_0.gguf" -f tests/fixtures/parity.txt -c 64 2>/dev/null)
p2=$("$B/tern-perplexity" -m "$g/bl-i2_s.gguf" -f tests/fixtures/parity.txt -c 64 2>/dev/null)
if [ "$p1" = "$p2" ]; then echo "ok   i2_s: perplexity identical to tq2_0's ($p1)"; else echo "FAIL i2_s: '$p2' vs tq2_0 '$p1'"; status=1; fi
# 5. a model trained with a byte-level tokenizer (GGUF "gpt2", pre "llama-bpe")
echo "interop.sh: training a small model with a byte-level BPE tokenizer (configs/tiny.cfg, 100 steps)" >&2
"$B/tern-tokenizer" train -q --kind bytelevel --pre llama3 -v 512 -o "$work/bl.tkz" tests/fixtures/parity.txt
"$B/tern-tokenizer" encode -q -t "$work/bl.tkz" -o "$work/bl-train.tok" --val "$work/bl-val.tok" tests/fixtures/parity.txt
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$B/tern-train" configs/tiny.cfg train_data="$work/bl-train.tok" val_data="$work/bl-val.tok" \
  tokenizer="$work/bl.tkz" out_dir="$work/bl" vocab_size=512 steps=100 log_interval=50 eval_interval=50 >/dev/null
"$B/tern-export" "$work/bl/latest.h5" "$work/model-bytelevel.gguf"
node scripts/interop/interop.mjs "$B" "$work/model-bytelevel.gguf" tests/fixtures/parity.txt || status=1
# 6. tokenizers: every family's fixture on the edge-case set, against tokenizers.js and llama.cpp
node scripts/interop/tokenizers.mjs "$B" tests/fixtures/tokenizers 2> >(grep -v 'node-llama-cpp' >&2) || status=1
exit $status
