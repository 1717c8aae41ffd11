// pretokenizer.c — see pretokenizer.h. Each matcher returns the end of the regex match that
// starts at i (every family's regex matches at every position, at least one character).
// libc only.
#include "tokenizers/pretokenizer.h"
#include "tokenizers/unicode.h"
#include <string.h>

#define CL_L TERN_UC_L
#define CL_N TERN_UC_N
#define CL_WS TERN_UC_WS

static const char RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// llama.cpp's spelling of the same two patterns (ASCII classes instead of (?i:...))
static const char RE_LLAMA3_ASCII[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                      "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2_ASCII[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                     "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char *tern_pre_name(int pre) {
    switch (pre) {
    case TERN_PRE_GPT2: return "gpt2";
    case TERN_PRE_LLAMA3: return "llama3";
    case TERN_PRE_SMOLLM: return "smollm";
    case TERN_PRE_QWEN2: return "qwen2";
    default: return "none";
    }
}

const char *tern_pre_gguf_name(int pre) {
    switch (pre) {
    case TERN_PRE_GPT2: return "gpt-2";
    case TERN_PRE_LLAMA3: return "llama-bpe";
    case TERN_PRE_SMOLLM: return "smollm";
    case TERN_PRE_QWEN2: return "qwen2";
    default: return "default";
    }
}

const char *tern_pre_names(void) { return "gpt2|llama3|smollm|qwen2"; }

int tern_pre_from_name(const char *s) {
    // llama.cpp (src/llama-vocab.cpp) maps these tokenizer.ggml.pre names to the same splitting
    static const char *const gpt2[] = {"gpt2", "gpt-2", "phi-2", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de",
                                       "mpt", "olmo", "jais", NULL};
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                         "midm-2.0", "lfm2", "dbrx", "smaug-bpe", NULL};
    static const char *const smollm[] = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone",
                                         "minerva-7b", NULL};
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", NULL};
    static const char *const *const all[4] = {gpt2, llama3, smollm, qwen2};
    static const int pre[4] = {TERN_PRE_GPT2, TERN_PRE_LLAMA3, TERN_PRE_SMOLLM, TERN_PRE_QWEN2};
    if (!s) return -1;
    for (int k = 0; k < 4; k++)
        for (int i = 0; all[k][i]; i++)
            if (!strcmp(s, all[k][i])) return pre[k];
    return -1;
}

const char *tern_pre_regex(int pre) {
    switch (pre) {
    case TERN_PRE_GPT2:
    case TERN_PRE_SMOLLM: return RE_GPT2;
    case TERN_PRE_LLAMA3: return RE_LLAMA3;
    case TERN_PRE_QWEN2: return RE_QWEN2;
    default: return NULL;
    }
}

int tern_pre_from_split_regex(const char *re) {
    if (!re) return -1;
    if (!strcmp(re, RE_LLAMA3) || !strcmp(re, RE_LLAMA3_ASCII)) return TERN_PRE_LLAMA3;
    if (!strcmp(re, RE_QWEN2) || !strcmp(re, RE_QWEN2_ASCII)) return TERN_PRE_QWEN2;
    return -1;
}

// class of the character at s[i] (i < n) and its length
static inline unsigned cls(const uint8_t *s, size_t i, size_t n, size_t *len) {
    uint8_t c = s[i];
    if (c < 0x80) {
        *len = 1;
        return tern_uc_ascii[c];
    }
    uint32_t cp;
    *len = (size_t)tern_utf8_decode(s + i, n - i, &cp);
    return cp == TERN_UC_INVALID ? 0 : tern_uc_class_slow(cp);
}

// end of the run of characters of class k starting at j
static inline size_t run(const uint8_t *s, size_t j, size_t n, unsigned k) {
    while (j < n) {
        uint8_t c = s[j];
        if (c < 0x80) {
            if (tern_uc_ascii[c] != k) break;
            j++;
            continue;
        }
        size_t L;
        if (cls(s, j, n, &L) != k) break;
        j += L;
    }
    return j;
}

static inline uint8_t lc(uint8_t x) { return x >= 'A' && x <= 'Z' ? (uint8_t)(x | 0x20) : x; }

// 's|'t|'re|'ve|'m|'ll|'d, case-sensitive (gpt2) or ASCII case-insensitive: match length or 0
static inline size_t contraction(const uint8_t *s, size_t i, size_t n, int fold) {
    if (s[i] != '\'' || i + 1 >= n) return 0;
    uint8_t d = fold ? lc(s[i + 1]) : s[i + 1];
    if (d == 's' || d == 't' || d == 'm' || d == 'd') return 2;
    if (i + 2 < n) {
        uint8_t e = fold ? lc(s[i + 2]) : s[i + 2];
        if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return 3;
    }
    return 0;
}

// the whitespace alternatives: (\s*[\r\n]+ when crlf)|\s+(?!\S)|\s+ at a whitespace character i
static inline size_t whitespace(const uint8_t *s, size_t i, size_t n, int crlf) {
    size_t j = i, last = i, crlf_end = 0;
    int cnt = 0;
    while (j < n) {
        size_t L;
        if (cls(s, j, n, &L) != CL_WS) break;
        if (s[j] == '\r' || s[j] == '\n') crlf_end = j + 1;
        last = j;
        j += L;
        cnt++;
    }
    if (crlf && crlf_end) return crlf_end; // \s*[\r\n]+: up to the last CR/LF of the run
    if (j == n || cnt == 1) return j;      // \s+ (the whole run; one character before \S)
    return last;                           // \s+(?!\S): all but the last whitespace character
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
static size_t match_gpt2(const uint8_t *s, size_t i, size_t n) {
    size_t k = contraction(s, i, n, 0);
    if (k) return i + k;
    size_t L0;
    unsigned c0 = cls(s, i, n, &L0);
    if (s[i] == ' ' && i + 1 < n) { // the optional space of the three classes
        size_t L1;
        unsigned c1 = cls(s, i + 1, n, &L1);
        if (c1 != CL_WS) return run(s, i + 1 + L1, n, c1);
    }
    if (c0 != CL_WS) return run(s, i + L0, n, c0);
    return whitespace(s, i, n, 0);
}

// LLaMA 3 (digits = 3) and Qwen2 (digits = 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
static size_t match_llama3(const uint8_t *s, size_t i, size_t n, int digits) {
    size_t k = contraction(s, i, n, 1);
    if (k) return i + k;
    size_t L0;
    unsigned c0 = cls(s, i, n, &L0);
    uint8_t c = s[i];
    if (c0 == CL_L) return run(s, i + L0, n, CL_L);
    if (c != '\r' && c != '\n' && c0 != CL_N && i + L0 < n) { // [^\r\n\p{L}\p{N}] then \p{L}+
        size_t L1;
        if (cls(s, i + L0, n, &L1) == CL_L) return run(s, i + L0 + L1, n, CL_L);
    }
    if (c0 == CL_N) {
        size_t j = i + L0;
        for (int d = 1; d < digits && j < n; d++) {
            size_t L;
            if (cls(s, j, n, &L) != CL_N) break;
            j += L;
        }
        return j;
    }
    size_t j = (size_t)-1;
    if (c == ' ' && i + 1 < n) {
        size_t L1;
        if (cls(s, i + 1, n, &L1) == 0) j = i + 1;
    }
    if (j == (size_t)-1 && c0 == 0) j = i;
    if (j != (size_t)-1) { // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        j = run(s, j, n, 0);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    return whitespace(s, i, n, 1);
}

void tern_pre_iter_init(tern_pre_iter *it, int pre, const void *s, size_t n) {
    it->s = s;
    it->n = n;
    it->pos = 0;
    it->lim = 0;
    it->pre = pre;
}

int tern_pre_iter_next(tern_pre_iter *it, size_t *a, size_t *b) {
    const uint8_t *s = it->s;
    size_t i = it->pos, n = it->n, e;
    if (i >= n) return 0;
    switch (it->pre) {
    case TERN_PRE_LLAMA3: e = match_llama3(s, i, n, 3); break;
    case TERN_PRE_QWEN2: e = match_llama3(s, i, n, 1); break;
    case TERN_PRE_SMOLLM:
        if (i >= it->lim) { // a digit alone, else find the stretch up to the next digit
            size_t L;
            if (cls(s, i, n, &L) == CL_N) {
                e = i + L;
                break;
            }
            size_t j = i + L;
            while (j < n && cls(s, j, n, &L) != CL_N) j += L;
            it->lim = j;
        }
        e = match_gpt2(s, i, it->lim);
        break;
    case TERN_PRE_GPT2: e = match_gpt2(s, i, n); break;
    default: e = n; break; // no pre-tokenizer: the whole text is one word
    }
    *a = i;
    *b = e;
    it->pos = e;
    return 1;
}

size_t tern_pre_split(int pre, const void *s, size_t n, size_t *ends) {
    tern_pre_iter it;
    tern_pre_iter_init(&it, pre, s, n);
    size_t a, b, k = 0;
    while (tern_pre_iter_next(&it, &a, &b)) ends[k++] = b;
    return k;
}
