// tokenizer_gguf.h — a tern tokenizer as GGUF tokenizer.ggml.* keys, written and read the way
// llama.cpp (src/llama-vocab.cpp) reads them. libc only (part of the standalone runtime).
//
// llama kind: model "llama", tokens, scores, token_type, bos/eos/unknown_token_id,
//   add_bos_token, add_eos_token, add_space_prefix.
// gpt2 kind: model "gpt2", pre (tern_pre_gguf_name: "gpt-2", "llama-bpe", "smollm", "qwen2"),
//   tokens, token_type (1 normal, 3 control for special added tokens, 4 user-defined), merges
//   ("left right", rank order), bos/eos_token_id (when the tokenizer has them), add_bos_token,
//   add_eos_token (and unknown_token_id when there is one).
// Reading applies llama.cpp's defaults for absent keys (llama: bos 1, eos 2, unk 0, add_bos,
// add_space_prefix; gpt2: no bos/eos, add_bos for the llama-bpe names) and its per-name rules
// (llama-bpe names ignore merges). tokenizer.ggml.pre names llama.cpp splits like one of tern's
// four families are accepted (pretokenizer.h); any other is refused with one line.
#ifndef TERN_TOKENIZER_GGUF_H
#define TERN_TOKENIZER_GGUF_H
#include "formats/gguf.h"
#include "tokenizers/tokenizer.h"

int tern_tokenizer_gguf_write(const tern_tokenizer *t, tern_gguf_writer *w);

// The scalar settings, with llama.cpp's defaults for absent keys, without building the
// tokenizer: 0; 1 when the file has no tokenizer; -1 + tern_error.
typedef struct {
    int kind, vocab_size, pre; // pre: TERN_PRE_* (gpt2 kind)
    int bos_id, eos_id, unk_id, add_bos, add_eos, add_space_prefix, ignore_merges;
} tern_tokenizer_gguf_meta;
int tern_tokenizer_gguf_read_meta(const tern_gguf *g, tern_tokenizer_gguf_meta *m, const char *what);
// 0; 1 when the file has no tokenizer (no tokenizer.ggml.tokens); -1 + tern_error("what: ...")
int tern_tokenizer_gguf_read(tern_tokenizer *t, const tern_gguf *g, const char *what);

#endif
