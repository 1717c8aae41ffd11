#!/usr/bin/env bash
# check_llama_tokenizer.sh [BUILD_DIR] [NODE_MODULES_DIR]
# Trains tern tokenizers on the bundled and benchmark texts — SentencePiece-style (vocab 512 /
# 2000 / 4096) and byte-level (LLaMA 3 and GPT-2 pre-tokenizers, vocab 4096) — writes each as a
# vocab-only GGUF (tern-tokenizer gguf: `llama` or `gpt2` vocab), and checks with llama.cpp itself
# (node-llama-cpp, vocab_only) that llama.cpp's token ids equal tern's on every text
# (tiny-shakespeare, TinyStories, WikiText-2 raw test, an edge-case string), and that llama.cpp
# detokenizes tern's ids to the text (SentencePiece-style only: for byte-level vocabularies
# llama.cpp's detokenizer cleans up spaces before punctuation, by design).
# Needs node and an installed node-llama-cpp (default: scripts/interop/node_modules, as
# `make interop` installs it); skips with a note when absent. Data: $TERN_DATA (default
# ../shared/data relative to the repository). Exit 1 on any difference.
set -euo pipefail
B=${1:-build}
NM=${2:-${NODE_LLAMA_MODULES:-scripts/interop/node_modules}}
here=$(cd "$(dirname "$0")" && pwd)
S=${TERN_DATA:-$here/../../shared/data}
if ! command -v node >/dev/null || [ ! -d "$NM/node-llama-cpp" ]; then
    echo "check_llama_tokenizer: node or $NM/node-llama-cpp missing; skipped"; exit 0
fi
NM=$(cd "$NM" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '  two leading spaces\n\n\n\ttabs\t\tand  runs   of    spaces  \n<s> literal </s> <unk> <0x41> ünïcödé ☃ 日本語 🎉🎉 café\r\nend with space \n \n  ' > "$tmp/edge.txt"
texts="$tmp/edge.txt data/tinyshakespeare/input.txt $S/tinystories-subset/tinystories_val_head.txt $S/wikitext-2-raw/wiki.test.raw"
"$B/tern-tokenizer" train -q -v 512 -o "$tmp/a.tkz" data/tinyshakespeare/input.txt
"$B/tern-tokenizer" train -q -v 2000 -o "$tmp/b.tkz" $S/tinystories-subset/tinystories_val_head.txt $S/wikitext-2-raw/wiki.test.raw
"$B/tern-tokenizer" train -q -v 4096 -o "$tmp/c.tkz" $S/wikitext-2/wiki.train.tokens
"$B/tern-tokenizer" train -q --kind bytelevel --pre llama3 -v 4096 -o "$tmp/d.tkz" $S/wikitext-2/wiki.train.tokens
"$B/tern-tokenizer" train -q --kind bytelevel --pre gpt2 -v 4096 -o "$tmp/e.tkz" data/tinyshakespeare/input.txt $S/tinystories-subset/tinystories_val_head.txt
rc=0
for tk in a b c d e; do
    "$B/tern-tokenizer" gguf -t "$tmp/$tk.tkz" -o "$tmp/$tk.gguf"
    args=()
    i=0
    for f in $texts; do
        "$B/tern-tokenizer" encode -q --no-bos -t "$tmp/$tk.tkz" -o "$tmp/$tk.$i.tok" "$f"
        args+=("$f" "$tmp/$tk.$i.tok"); i=$((i + 1))
    done
    echo "== tokenizer $("$B/tern-tokenizer" info "$tmp/$tk.tkz" | sed 's/.*: //')"
    bl=(); case $tk in d|e) bl=(--bytelevel) ;; esac
    node "$here/llama_check/check.mjs" "$NM" "$tmp/$tk.gguf" "${bl[@]}" "${args[@]}" 2> >(grep -v 'node-llama-cpp' >&2) || rc=1
done
[ $rc -eq 0 ] && echo "check_llama_tokenizer: llama.cpp and tern agree on every text" || echo "check_llama_tokenizer: DIFFERENCES"
exit $rc
