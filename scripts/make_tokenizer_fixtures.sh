#!/usr/bin/env bash
# make_tokenizer_fixtures.sh [BUILD_DIR=build] — regenerates the committed tokenizer fixtures
# tests/fixtures/tokenizers/<family>/tokenizer.json (+ tokenizer_config.json): tern trains each
# family on the bundled tiny-shakespeare (first 300 KB), tests/fixtures/tokenizers/multilingual.txt
# and the edge-case set, vocab 1200, and writes it as Hugging Face's tokenizer.json. Families:
# gpt2, llama3, smollm, qwen2 (byte-level), qwen2-nfc (qwen2 with Qwen2's NFC normalizer) and
# llama (SentencePiece-style). Deterministic: running
# it again gives byte-identical files. The interop test (scripts/interop/tokenizers.mjs) loads
# them into Hugging Face's tokenizers and llama.cpp and compares ids with tern's.
set -euo pipefail
B=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
F=tests/fixtures/tokenizers
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 300000 data/tinyshakespeare/input.txt > "$tmp/shakespeare.txt"
corpus="$tmp/shakespeare.txt $F/multilingual.txt $F/edge_cases.txt"
for pre in gpt2 llama3 smollm qwen2; do
  mkdir -p "$F/$pre"
  "$B/tern-tokenizer" train -q --kind bytelevel --pre "$pre" -v 1200 -o "$F/$pre/tokenizer.json" $corpus
done
mkdir -p "$F/qwen2-nfc"
"$B/tern-tokenizer" train -q --kind bytelevel --pre qwen2 --nfc -v 1200 -o "$F/qwen2-nfc/tokenizer.json" $corpus
mkdir -p "$F/llama"
"$B/tern-tokenizer" train -q -v 1200 -o "$F/llama/tokenizer.json" $corpus
for d in gpt2 llama3 smollm qwen2 qwen2-nfc llama; do "$B/tern-tokenizer" info "$F/$d/tokenizer.json" | head -1; done
