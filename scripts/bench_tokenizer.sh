#!/usr/bin/env bash
# bench_tokenizer.sh [BUILD_DIR] — tokenizer figures on WikiText-2 train (10.8 MB of English):
#   SentencePiece-style (llama kind): training time for vocab 4096 (median of 3 runs), encoding
#     MB/s on 1 and 2 threads (median of 5 runs each, in memory), bytes per token;
#   byte-level BPE, LLaMA 3 pre-tokenizer (gpt2 kind): training time for vocab 16384, encoding
#     MB/s on 1 and 2 threads (median of 5), and the pre-tokenizer alone, tern's matcher against
#     PCRE2 (JIT) running the same regex, 1 thread (median of 5; the splits must be identical);
#   loading a LLaMA 3-sized tokenizer.json (128,256 pieces, 280,000 merges, ~8 MB, made by
#     scripts/make_big_tokenizer_json.py): median of 3 loads, wall and CPU seconds.
# Data: $TERN_DATA (default ../shared/data relative to the repository).
set -euo pipefail
B=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
D=${TERN_DATA:-$root/../shared/data}
W=$D/wikitext-2/wiki.train.tokens
if [ ! -f "$W" ]; then echo "bench_tokenizer: $W not found; skipped"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
train_times() { # kind args...: median of 3 training times
    local times=() t
    for i in 1 2 3; do
        t=$("$B/tern-tokenizer" train "$@" 2>/dev/null | sed -n 's/^trained vocab [0-9]* (.*) in \([0-9.]*\) s.*/\1/p')
        times+=("$t")
    done
    printf '%s\n' "${times[@]}" | median | tr '\n' ' '
    echo "(runs: ${times[*]})"
}
echo "tokenizer train: llama kind, vocab 4096 on $(basename "$W") ($(stat -c %s "$W") bytes): median $(train_times -v 4096 -o "$tmp/w.tkz" "$W")"
for th in 1 2; do
    OMP_NUM_THREADS=$th "$B/tern-tokenizer" bench -t "$tmp/w.tkz" --reps 5 "$W" | sed 's/^/tokenizer /'
done
echo "tokenizer train: byte-level llama3, vocab 16384: median $(train_times --kind bytelevel --pre llama3 -v 16384 -o "$tmp/b.tkz" "$W")"
for th in 1 2; do
    OMP_NUM_THREADS=$th "$B/tern-tokenizer" bench -t "$tmp/b.tkz" --reps 5 "$W" | sed 's/^/tokenizer /'
done
mkdir -p "$tmp/big"
python3 "$root/scripts/make_big_tokenizer_json.py" "$tmp/big/tokenizer.json" 2>/dev/null
printf 'x' > "$tmp/x.txt"
wall=(); cpu=()
for i in 1 2 3; do
    line=$(/usr/bin/env TIMEFORMAT='%U %S' bash -c "time '$B/tern-tokenizer' bench -t '$tmp/big/tokenizer.json' --reps 1 '$tmp/x.txt' >'$tmp/out.txt'" 2>&1)
    wall+=("$(sed -n 's/.*loaded in \([0-9.]*\) s.*/\1/p' "$tmp/out.txt" | head -1)")
    cpu+=("$(echo "$line" | awk '{print $1 + $2}')")
done
echo "tokenizer.json load: $(stat -c %s "$tmp/big/tokenizer.json") bytes, 128256 pieces, 280000 merges: median $(printf '%s\n' "${wall[@]}" | median | tr -d '\n') s wall (runs: ${wall[*]}); whole process CPU median $(printf '%s\n' "${cpu[@]}" | median | tr -d '\n') s (runs: ${cpu[*]})"
