// pretokenizer_pcre.h — the reference for the hand-written pre-tokenizers: PCRE2 (libpcre2-8,
// UTF + UCP, JIT) running each family's regex from tokenizer.json, the way Hugging Face's Split
// (Isolated) applies it: matches and the text between them are the words. libtern only (tests,
// fuzzing, benchmarks); the runtime never links PCRE2.
//
// Two documented rewrites keep the reference's semantics those of llama.cpp and Hugging Face:
// \s / \S become \p{White_Space} / \P{White_Space} (PCRE2's \s also matches U+180E), and the
// case-insensitive contractions (?i:'s|...) become ASCII classes ('[sS]|...; PCRE2 would also
// fold U+017F to s). Invalid UTF-8 is matched as U+FFFD, one per invalid byte (tern's rule).
#ifndef TERN_PRETOKENIZER_PCRE_H
#define TERN_PRETOKENIZER_PCRE_H
#include "tokenizers/pretokenizer.h"
#include <stddef.h>

typedef struct tern_pre_pcre tern_pre_pcre;
tern_pre_pcre *tern_pre_pcre_new(int pre); // NULL + tern_error
void tern_pre_pcre_free(tern_pre_pcre *p);
const char *tern_pre_pcre_pattern(const tern_pre_pcre *p); // the pattern PCRE2 runs
// Word ends of s[0..n) (ends[] holds n entries); returns the count.
size_t tern_pre_pcre_split(tern_pre_pcre *p, const void *s, size_t n, size_t *ends);

#endif
