# corpora.sh — sourced by the scripts that compare training runs on the field's two small corpora
# (compare_ternary_fp.sh, quality_guard.sh): tiny-shakespeare (bundled; a BPE vocabulary of 1024
# trained on it, 90/10 train/validation split) and WikiText-2 (wiki.train / wiki.valid from $WIKI,
# default ../shared/data/wikitext-2; skipped with a message when absent).
#   for_each_corpus BUILD_DIR OUT FN    calls FN NAME TRAIN.tok VAL.tok TOKENIZER for each corpus
for_each_corpus() {
  local B=$1 OUT=$2 fn=$3 wiki=${WIKI:-../shared/data/wikitext-2}
  local ts=data/tinyshakespeare/input.txt
  "$B/tern-tokenizer" train -o "$OUT/ts.tok" -v 1024 -q "$ts"
  "$B/tern-tokenizer" encode -t "$OUT/ts.tok" -o "$OUT/ts-train.tok" --val "$OUT/ts-val.tok" --val-frac 0.1 -q "$ts"
  "$fn" tinyshakespeare "$OUT/ts-train.tok" "$OUT/ts-val.tok" "$OUT/ts.tok"
  if [ -f "$wiki/wiki.train.tokens" ] && [ -f "$wiki/wiki.valid.tokens" ]; then
    "$B/tern-tokenizer" train -o "$OUT/wiki.tok" -v 1024 -q "$wiki/wiki.train.tokens"
    "$B/tern-tokenizer" encode -t "$OUT/wiki.tok" -o "$OUT/wiki-train.tok" -q "$wiki/wiki.train.tokens"
    "$B/tern-tokenizer" encode -t "$OUT/wiki.tok" -o "$OUT/wiki-val.tok" -q "$wiki/wiki.valid.tokens"
    "$fn" wikitext2 "$OUT/wiki-train.tok" "$OUT/wiki-val.tok" "$OUT/wiki.tok"
  else
    echo "$(basename "$0"): $wiki not found, WikiText-2 skipped"
  fi
}
