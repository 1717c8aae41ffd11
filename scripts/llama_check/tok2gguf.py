#!/usr/bin/env python3
"""tok2gguf.py TOKENIZER OUT.gguf — a vocab-only GGUF (arch llama, no tensors) holding a tern
tokenizer as llama.cpp's `llama` (SPM) vocab, so llama.cpp can load it with vocab_only and
tokenize. Used by check_llama_tokenizer.sh only (the real exporter is tern's C code)."""
import struct, sys

def read_tern_tokenizer(path):
    b = open(path, "rb").read()
    assert b[:8] == b"TERNTKZ\0", "not a tern tokenizer"
    version, vocab, flags, _ = struct.unpack_from("<IIII", b, 8)
    assert version == 1
    o, pieces = 24, []
    for _ in range(vocab):
        ty, score, n = struct.unpack_from("<BfH", b, o)
        o += 7
        pieces.append((b[o:o + n], score, ty))
        o += n
    assert o == len(b)
    return pieces, flags & 1

def gguf(path, pieces, space_prefix):
    kv = []
    def s(x): return struct.pack("<Q", len(x)) + x
    def add(key, typ, payload): kv.append(s(key.encode()) + struct.pack("<I", typ) + payload)
    U32, I32, F32, BOOL, STR, ARR = 4, 5, 6, 7, 8, 9
    add("general.architecture", STR, s(b"llama"))
    for k, v in [("context_length", 256), ("embedding_length", 64), ("block_count", 1),
                 ("feed_forward_length", 128), ("attention.head_count", 4), ("attention.head_count_kv", 4)]:
        add("llama." + k, U32, struct.pack("<I", v))
    add("llama.attention.layer_norm_rms_epsilon", F32, struct.pack("<f", 1e-5))
    add("tokenizer.ggml.model", STR, s(b"llama"))
    add("tokenizer.ggml.tokens", ARR, struct.pack("<IQ", STR, len(pieces)) + b"".join(s(p) for p, _, _ in pieces))
    add("tokenizer.ggml.scores", ARR, struct.pack("<IQ", F32, len(pieces)) + b"".join(struct.pack("<f", sc) for _, sc, _ in pieces))
    add("tokenizer.ggml.token_type", ARR, struct.pack("<IQ", I32, len(pieces)) + b"".join(struct.pack("<i", t) for _, _, t in pieces))
    for k, v in [("bos_token_id", 1), ("eos_token_id", 2), ("unknown_token_id", 0)]:
        add("tokenizer.ggml." + k, U32, struct.pack("<I", v))
    add("tokenizer.ggml.add_bos_token", BOOL, b"\1")
    add("tokenizer.ggml.add_space_prefix", BOOL, b"\1" if space_prefix else b"\0")
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv))

if __name__ == "__main__":
    pieces, sp = read_tern_tokenizer(sys.argv[1])
    gguf(sys.argv[2], pieces, sp)
