// pretokenizer_pcre.c — see pretokenizer_pcre.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizers/pretokenizer_pcre.h"
#include "tokenizers/unicode.h"
#include "util.h"
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

struct tern_pre_pcre {
    int pre;
    char *pattern;
    pcre2_code *re, *digit; // digit: \p{N} (smollm's Digits step)
    pcre2_match_data *md;
    uint8_t *buf;           // the text with invalid bytes as U+FFFD
    size_t *orig;           // buf offset -> text offset
    size_t cap;
};

static char *replace_all(const char *s, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    for (const char *p = s; (p = strstr(p, from)); p += nf) n++;
    char *o = tern_xmalloc(strlen(s) + n * nt + 1), *q = o;
    for (const char *p = s;;) {
        const char *m = strstr(p, from);
        if (!m) {
            strcpy(q, p);
            break;
        }
        memcpy(q, p, (size_t)(m - p));
        q += m - p;
        memcpy(q, to, nt);
        q += nt;
        p = m + nf;
    }
    return o;
}

static pcre2_code *compile(const char *pat) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        tern_error("PCRE2 cannot compile \"%s\" at %zu: %s", pat, (size_t)off, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // falls back to the interpreter if JIT is missing
    return re;
}

tern_pre_pcre *tern_pre_pcre_new(int pre) {
    const char *re = tern_pre_regex(pre);
    if (!re) {
        tern_error("no regex for pre-tokenizer %d", pre);
        return NULL;
    }
    tern_pre_pcre *p = tern_xcalloc(1, sizeof *p);
    p->pre = pre;
    char *a = replace_all(re, "(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])");
    char *b = replace_all(a, "\\s", "\\p{White_Space}");
    p->pattern = replace_all(b, "\\S", "\\P{White_Space}");
    free(a);
    free(b);
    p->re = compile(p->pattern);
    if (pre == TERN_PRE_SMOLLM) p->digit = compile("\\p{N}");
    p->md = pcre2_match_data_create(1, NULL);
    if (!p->re || (pre == TERN_PRE_SMOLLM && !p->digit)) {
        tern_pre_pcre_free(p);
        return NULL;
    }
    return p;
}

void tern_pre_pcre_free(tern_pre_pcre *p) {
    if (!p) return;
    pcre2_code_free(p->re);
    pcre2_code_free(p->digit);
    pcre2_match_data_free(p->md);
    free(p->pattern);
    free(p->buf);
    free(p->orig);
    free(p);
}

const char *tern_pre_pcre_pattern(const tern_pre_pcre *p) { return p->pattern; }

// Isolated split of buf[a..b) by re: matches and gaps, as ends (in buf offsets)
static size_t split_range(tern_pre_pcre *p, pcre2_code *re, size_t a, size_t b, size_t *ends, size_t k) {
    size_t pos = a;
    while (pos < b) {
        int rc = pcre2_match(re, p->buf, b, pos, PCRE2_NO_UTF_CHECK, p->md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { // an empty match (none of the families can): step one character
            me = ms + 1;
            while (me < b && (p->buf[me] & 0xC0) == 0x80) me++;
            if (ms > pos) ends[k++] = ms;
            ends[k++] = me;
            pos = me;
            continue;
        }
        if (ms > pos) ends[k++] = ms;
        ends[k++] = me;
        pos = me;
    }
    if (pos < b) ends[k++] = b;
    return k;
}

size_t tern_pre_pcre_split(tern_pre_pcre *p, const void *text, size_t n, size_t *ends) {
    const uint8_t *s = text;
    if (3 * n + 1 > p->cap) {
        free(p->buf);
        free(p->orig);
        p->cap = 3 * n + 1;
        p->buf = tern_xmalloc(p->cap);
        p->orig = tern_xmalloc((p->cap + 1) * sizeof(size_t));
    }
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int L = tern_utf8_decode(s + i, n - i, &cp);
        if (cp == TERN_UC_INVALID) {
            p->orig[m] = i;
            p->buf[m++] = 0xEF;
            p->orig[m] = i;
            p->buf[m++] = 0xBF;
            p->orig[m] = i;
            p->buf[m++] = 0xBD;
        } else {
            for (int k = 0; k < L; k++) {
                p->orig[m] = i + (size_t)k;
                p->buf[m++] = s[i + (size_t)k];
            }
        }
        i += (size_t)L;
    }
    p->orig[m] = n;
    size_t *tmp = tern_xmalloc((m + 1) * sizeof(size_t)), k = 0;
    if (p->pre == TERN_PRE_SMOLLM) { // every \p{N} alone, the gpt2 regex between them
        size_t *dig = tern_xmalloc((m + 1) * sizeof(size_t));
        size_t nd = split_range(p, p->digit, 0, m, dig, 0), a = 0;
        for (size_t d = 0; d < nd; d++) {
            size_t b = dig[d];
            uint32_t cp;
            int one = b > a && tern_utf8_decode(p->buf + a, b - a, &cp) == (int)(b - a) &&
                      (tern_uc_class(cp) & TERN_UC_N);
            if (one) tmp[k++] = b;
            else k = split_range(p, p->re, a, b, tmp, k);
            a = b;
        }
        free(dig);
    } else {
        k = split_range(p, p->re, 0, m, tmp, 0);
    }
    // back to text offsets (an end inside a U+FFFD is after its byte)
    size_t out = 0;
    for (size_t i = 0; i < k; i++) {
        size_t e = tmp[i] >= m ? n : p->orig[tmp[i]];
        if (out == 0 || e > ends[out - 1]) ends[out++] = e;
    }
    free(tmp);
    return out;
}
