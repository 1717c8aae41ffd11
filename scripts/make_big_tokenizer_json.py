#!/usr/bin/env python3
"""make_big_tokenizer_json.py OUT.json [VOCAB=128256] [MERGES=280000] [SEED=1] [--pairs]

Writes a synthetic byte-level (LLaMA 3 style) tokenizer.json the size of LLaMA 3's: VOCAB pieces
(256 byte characters, substrings of random words in GPT-2's byte alphabet, 256 special tokens at
the end) and MERGES merges (splits of pieces into two pieces, shorter pieces first), written as
Meta's file is (merges as "a b" strings, indent 2): about 10 MB. --pairs writes the merges as
["a", "b"] pairs (the format of newer tokenizers releases).
Used by scripts/bench_tokenizer.sh to time loading a tokenizer.json of that size. Standard
library only; deterministic for a seed."""
import json, random, sys

def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]

def main():
    pairs = "--pairs" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--pairs"]
    out = args[0]
    vocab_n = int(args[1]) if len(args) > 1 else 128256
    merges_n = int(args[2]) if len(args) > 2 else 280000
    rnd = random.Random(int(args[3]) if len(args) > 3 else 1)
    chars = byte_chars()
    # letters: ASCII and 2-byte characters of the byte alphabet (non-English byte-level pieces
    # look like "ĠÐ¿ÑĢÐ¾"), so pieces average about LLaMA 3's length in bytes
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz"] + [c for c in chars if 0xC0 <= ord(c) < 0x100][:26]
    specials = ["<|special_%d|>" % i for i in range(256)]
    target = vocab_n - 256 - len(specials)
    pieces, seen = [], set(chars)
    while len(pieces) < target: # every substring (2+ characters) of random words
        w = ("\u0120" if rnd.random() < 0.6 else "") + "".join(rnd.choice(letters) for _ in range(rnd.randint(3, 12)))
        for i in range(len(w)):
            for j in range(i + 2, len(w) + 1):
                s = w[i:j]
                if s not in seen and len(pieces) < target:
                    seen.add(s)
                    pieces.append(s)
    pieces.sort(key=lambda s: (len(s), s))
    vocab = {c: i for i, c in enumerate(chars)}
    for p in pieces:
        vocab[p] = len(vocab)
    merges = [] # every split of a piece into two pieces, shorter pieces first
    for p in pieces:
        for k in range(1, len(p)):
            if p[:k] in vocab and p[k:] in vocab:
                merges.append([p[:k], p[k:]])
    merges = merges[:merges_n]
    added = []
    for s in specials:
        added.append({"id": len(vocab), "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
        vocab[s] = len(vocab)
    regex = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges if pairs else [a + " " + b for a, b in merges]},
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
    print("%s: %d pieces, %d merges" % (out, len(vocab), len(merges)), file=sys.stderr)

if __name__ == "__main__":
    main()
