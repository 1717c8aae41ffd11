// tokenizer_json.h — Hugging Face tokenizer.json in and out (jansson; libtern only, not the
// runtime).
//
// Reading accepts a BPE `model` (vocab; merges as "a b" strings or [a, b] pairs; unk_token,
// byte_fallback, ignore_merges, fuse_unk; no dropout, no subword prefix/suffix) with
//   - byte-level families (-> TERN_TOK_GPT2): pre_tokenizer ByteLevel(use_regex) [gpt2],
//     Sequence[Split(Regex = the LLaMA 3 or Qwen2 pattern, Isolated), ByteLevel(use_regex
//     false)] [llama3 / qwen2], Sequence[Digits(individual_digits), ByteLevel(use_regex)]
//     [smollm]; no normalizer; decoder ByteLevel;
//   - SentencePiece style (-> TERN_TOK_LLAMA; LLaMA 2, TinyLlama, Mistral): byte_fallback, the
//     normalizer Sequence[Prepend("▁"), Replace(" ", "▁")] or the pre-tokenizer Metaspace;
//     scores are derived from the merges (a piece's first merge rank, earlier = higher);
//   - added_tokens (special -> control, else user-defined; lstrip/rstrip kept; single_word
//     refused), post_processor null / ByteLevel / TemplateProcessing (a leading special token
//     sets bos and add_bos, a trailing one eos and add_eos) or a Sequence of those.
// Anything else is refused with one line naming the part ("tokenizer.json: pre_tokenizer: Split
// regex \"...\" is not supported (...)").
//
// Writing produces the same structure from any tern tokenizer (the llama kind's merges are
// every split of a piece into two pieces, ordered by score as Hugging Face's SentencePiece
// converter does), so that reading it back gives the same tokenizer (same hash) and Hugging
// Face's tokenizers encode it identically; except what tokenizer.json cannot say: the llama
// kind's scores (read back derived from the merges) and the piece types it has no word for
// (tern_tokenizer_json_type).
#ifndef TERN_TOKENIZER_JSON_H
#define TERN_TOKENIZER_JSON_H
#include "tokenizers/tokenizer.h"
#include <stddef.h>

// tokenizer_config.json (optional: cfg NULL) names bos_token / eos_token when the post-processor
// does not (add_bos_token / add_eos_token then say whether they are added), as transformers does.
int tern_tokenizer_from_json(tern_tokenizer *t, const char *buf, size_t n, const char *cfg, size_t cfg_n,
                             const char *what);
// path, and tokenizer_config.json in the same directory when there is one
int tern_tokenizer_load_json(tern_tokenizer *t, const char *path);
// malloc'd, NUL-terminated JSON text; -1 with tern_error if a piece is not valid UTF-8
int tern_tokenizer_to_json(const tern_tokenizer *t, char **buf, size_t *n);
// The type piece i of t has once t is written as tokenizer.json and read back. tokenizer.json
// knows normal pieces, special added tokens (control) and non-special ones (user-defined), and
// one unk_token: unused pieces and unknown ones are written as special added tokens and read
// back as control, except the llama kind's unk, which is unknown whatever its type was
// (unless user-defined); the llama kind's "<0xXX>" pieces are byte pieces, the byte-level
// kind has none.
int tern_tokenizer_json_type(const tern_tokenizer *t, int i);
int tern_tokenizer_config_json(const tern_tokenizer *t, char **buf, size_t *n);
// writes path and tokenizer_config.json beside it (atomically, each)
int tern_tokenizer_save_json(const tern_tokenizer *t, const char *path);
// A tokenizer file of either format, told apart by its content (tern's magic, else JSON).
int tern_tokenizer_load_any(tern_tokenizer *t, const char *path);

#endif
