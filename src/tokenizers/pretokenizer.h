// pretokenizer.h — the regex pre-tokenizers of the byte-level BPE families, as hand-written,
// table-driven matchers (libc only: part of the standalone runtime). Each matcher follows its
// regex's leftmost-first alternation and backtracking exactly; tests and a fuzz target check
// them against PCRE2 running the regex itself (pretokenizer_pcre.h).
//
//   gpt2    GPT-2's ByteLevel regex (tokenizer.json: ByteLevel use_regex; GGUF pre "gpt-2"):
//           's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   llama3  LLaMA 3 / BitNet b1.58 2B4T (Split regex + ByteLevel; GGUF pre "llama-bpe"):
//           (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2   Qwen2: the llama3 regex with \p{N} (one digit) instead of \p{N}{1,3} (GGUF "qwen2")
//   smollm  SmolLM / StarCoder: Digits(individual_digits) — every \p{N} character alone — then
//           the gpt2 regex on the text between digits (GGUF "smollm")
//
// Semantics shared by all: \s is Unicode White_Space, \p{L} / \p{N} the general categories
// (unicode.h); the contractions of llama3/qwen2 are ASCII case-insensitive ('S, 'Ll, ...) as in
// llama.cpp and tokenizers.js (Oniguruma would also fold U+017F to s); an invalid UTF-8 byte is
// one character of no class (as U+FFFD, which the byte-level encoder keeps as the byte itself).
#ifndef TERN_PRETOKENIZER_H
#define TERN_PRETOKENIZER_H
#include <stddef.h>
#include <stdint.h>

enum { TERN_PRE_NONE = 0, TERN_PRE_GPT2 = 1, TERN_PRE_LLAMA3 = 2, TERN_PRE_SMOLLM = 3, TERN_PRE_QWEN2 = 4, TERN_PRE_COUNT };

const char *tern_pre_name(int pre);       // tern's name: "gpt2", "llama3", "smollm", "qwen2" ("none")
const char *tern_pre_gguf_name(int pre);  // tokenizer.ggml.pre: "gpt-2", "llama-bpe", "smollm", "qwen2"
// tern's names and the GGUF names llama.cpp treats identically (e.g. "llama3", "llama-v3",
// "falcon3", "starcoder", "deepseek-r1-qwen"); -1 if unknown.
int tern_pre_from_name(const char *name);
const char *tern_pre_names(void);         // "gpt2|llama3|smollm|qwen2" (for messages)
// The regex of the family exactly as tokenizer.json spells it (the Split pattern for llama3 /
// qwen2; the ByteLevel regex for gpt2 and smollm).
const char *tern_pre_regex(int pre);
// Family of a tokenizer.json Split regex: TERN_PRE_LLAMA3 / TERN_PRE_QWEN2 (also llama.cpp's
// ASCII-class spelling of the contractions), -1 for any other pattern.
int tern_pre_from_split_regex(const char *re);

// Word iterator over s[0..n): words are consecutive, non-empty and cover the text.
typedef struct {
    const uint8_t *s;
    size_t n, pos, lim; // lim: end of the current stretch between digits (smollm)
    int pre;
} tern_pre_iter;
void tern_pre_iter_init(tern_pre_iter *it, int pre, const void *s, size_t n);
// The next word [*a, *b); 0 when the text is done.
int tern_pre_iter_next(tern_pre_iter *it, size_t *a, size_t *b);
// All word ends at once (ends[] must hold n entries); returns the number of words.
size_t tern_pre_split(int pre, const void *s, size_t n, size_t *ends);

#endif
