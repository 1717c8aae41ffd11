#!/usr/bin/env bash
# bench_tokenizer.sh [BUILD_DIR] — tokenizer figures on WikiText-2 train (10.8 MB):
#   training time for vocab 4096 (median of 3 runs), encoding MB/s on 1 and 2 threads (median of
#   5 runs each, in memory), bytes per token at vocab 4096.
set -euo pipefail
B=${1:-build}
W=../shared/data/wikitext-2/wiki.train.tokens
if [ ! -f "$W" ]; then echo "bench_tokenizer: $W not found; skipped"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
times=()
for i in 1 2 3; do
    t=$("$B/tern-tokenizer" train -v 4096 -o "$tmp/w.tkz" "$W" 2>/dev/null | sed -n 's/^trained vocab [0-9]* in \([0-9.]*\) s.*/\1/p')
    times+=("$t")
done
med=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)
echo "tokenizer train: vocab 4096 on $(basename "$W") ($(stat -c %s "$W") bytes): median ${med} s (runs: ${times[*]})"
for th in 1 2; do
    OMP_NUM_THREADS=$th "$B/tern-tokenizer" bench -t "$tmp/w.tkz" --reps 5 "$W" | sed 's/^/tokenizer /'
done
