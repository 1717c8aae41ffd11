// text.c — see text.h.
#include "server/text.h"
#include "util.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void buf_reserve(srv_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) tern_fatal("out of memory (%zu bytes of text)", cap);
    b->p = p;
    b->cap = cap;
}

void srv_buf_add(srv_buf *b, const void *p, size_t n) {
    buf_reserve(b, n);
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void srv_buf_adds(srv_buf *b, const char *s) { srv_buf_add(b, s, strlen(s)); }

void srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof tmp) { srv_buf_add(b, tmp, (size_t)k); return; }
    buf_reserve(b, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}

void srv_buf_free(srv_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

// Length of the well-formed sequence at s[0..n) (1..4), 0 if s[0] does not begin one, or -k if
// the k bytes available are a well-formed but incomplete start of one (only when they end s).
// Unicode Table 3-7: the second byte's range depends on the first.
static int seq_len(const unsigned char *s, size_t n) {
    const unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;        // no overlong
        if (c == 0xED) hi = 0x9F;        // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;        // no overlong
        if (c == 0xF4) hi = 0x8F;        // <= U+10FFFF
    } else return 0;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -i;
        const unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    }
    return len;
}

int srv_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = seq_len(u + i, n - i);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

size_t srv_utf8_complete(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    // only the last 3 bytes can hold an incomplete start
    size_t from = n > 3 ? n - 3 : 0;
    for (size_t i = from; i < n; i++) {
        int k = seq_len(u + i, n - i);
        if (k < 0 && i + (size_t)(-k) == n) return i;
    }
    return n;
}

size_t srv_utf8_repair(srv_buf *out, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t bad = 0, run = 0;   // run: start of the current well-formed stretch
    for (size_t i = 0; i < n;) {
        int k = seq_len(u + i, n - i);
        if (k > 0) { i += (size_t)k; continue; }
        srv_buf_add(out, s + run, i - run);
        srv_buf_add(out, "\xEF\xBF\xBD", 3);
        bad++;
        i += 1;
        run = i;
    }
    srv_buf_add(out, s + run, n - run);
    return bad;
}

long srv_stop_find(const char *text, size_t n, size_t from, char *const *stops, const size_t *lens, int n_stops) {
    long best = -1;
    for (int k = 0; k < n_stops; k++) {
        const size_t L = lens[k];
        if (L == 0 || L > n) continue;
        // a match at i ends at i + L > from, so i > from - L
        size_t i0 = from >= L ? from - L + 1 : 0;
        for (size_t i = i0; i + L <= n; i++) {
            if (best >= 0 && (long)i >= best) break;
            if (text[i] == stops[k][0] && memcmp(text + i, stops[k], L) == 0) { best = (long)i; break; }
        }
    }
    return best;
}

size_t srv_stop_partial(const char *text, size_t n, char *const *stops, const size_t *lens, int n_stops) {
    size_t best = 0;
    for (int k = 0; k < n_stops; k++) {
        const size_t L = lens[k];
        for (size_t m = (L - 1 < n ? L - 1 : n); m > best; m--)   // proper prefixes, longest first
            if (memcmp(text + n - m, stops[k], m) == 0) { best = m; break; }
    }
    return best;
}
