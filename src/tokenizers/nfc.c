// nfc.c — see nfc.h. Decompose each stretch of non-ASCII text (with the character before it),
// order the combining marks by class, compose; ASCII is copied (it never decomposes, and only
// a following non-ASCII character can compose with it).
#include "tokenizers/nfc.h"
#include "tokenizers/unicode.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>
#include "tokenizers/nfc_tables.h"

#define NCOUNT(a) (sizeof(a) / sizeof((a)[0]))
// Hangul (UAX #15 / Unicode ch. 3.12)
#define S_BASE 0xAC00u
#define L_BASE 0x1100u
#define V_BASE 0x1161u
#define T_BASE 0x11A7u
#define L_COUNT 19u
#define V_COUNT 21u
#define T_COUNT 28u
#define N_COUNT (V_COUNT * T_COUNT)
#define S_COUNT (L_COUNT * N_COUNT)
#define RAW_BYTE 0x80000000u // an invalid byte b is kept as RAW_BYTE | b

const char *tern_nfc_version(void) { return TERN_NFC_VERSION; }

static unsigned ccc_of(uint32_t cp) {
    if (cp < 0x300 || (cp & RAW_BYTE)) return 0;
    size_t lo = 0, hi = NCOUNT(NFC_CCC);
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (cp < NFC_CCC[m].lo) hi = m;
        else if (cp > NFC_CCC[m].hi) lo = m + 1;
        else return NFC_CCC[m].ccc;
    }
    return 0;
}

static const uint32_t *decomp_of(uint32_t cp) {
    if (cp < 0xC0 || (cp & RAW_BYTE)) return NULL;
    size_t lo = 0, hi = NCOUNT(NFC_DECOMP);
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (cp < NFC_DECOMP[m][0]) hi = m;
        else if (cp > NFC_DECOMP[m][0]) lo = m + 1;
        else return NFC_DECOMP[m];
    }
    return NULL;
}

// the primary composite of a + b, or 0
static uint32_t compose(uint32_t a, uint32_t b) {
    if ((a | b) & RAW_BYTE) return 0;
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE && b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = NCOUNT(NFC_COMP);
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (a < NFC_COMP[m][0] || (a == NFC_COMP[m][0] && b < NFC_COMP[m][1])) hi = m;
        else if (a > NFC_COMP[m][0] || b > NFC_COMP[m][1]) lo = m + 1;
        else return NFC_COMP[m][2];
    }
    return 0;
}

typedef struct {
    uint32_t *a;
    size_t n, cap;
} cpvec;

static void push(cpvec *v, uint32_t c) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->a = realloc(v->a, v->cap * sizeof(uint32_t));
        if (!v->a) tern_fatal("out of memory (NFC)");
    }
    v->a[v->n++] = c;
}

static void decompose(uint32_t cp, cpvec *v) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        push(v, L_BASE + s / N_COUNT);
        push(v, V_BASE + (s % N_COUNT) / T_COUNT);
        if (s % T_COUNT) push(v, T_BASE + s % T_COUNT);
        return;
    }
    const uint32_t *d = decomp_of(cp);
    if (!d) {
        push(v, cp);
        return;
    }
    decompose(d[1], v);
    if (d[2]) decompose(d[2], v);
}

// decompose, order, compose s[0..n) (any bytes) and append the UTF-8 to out
static size_t nfc_piece(const uint8_t *s, size_t n, cpvec *v, uint8_t *out) {
    v->n = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int L = tern_utf8_decode(s + i, n - i, &cp);
        decompose(cp == TERN_UC_INVALID ? RAW_BYTE | s[i] : cp, v);
        i += (size_t)L;
    }
    uint32_t *a = v->a;
    size_t m = v->n;
    for (size_t i = 1; i < m; i++) { // canonical ordering: stable insertion sort of each run of non-starters
        unsigned c = ccc_of(a[i]);
        if (!c) continue;
        size_t j = i;
        uint32_t x = a[i];
        while (j > 0 && ccc_of(a[j - 1]) > c) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
    if (m > 0) { // canonical composition (UAX #15's algorithm)
        size_t starter = 0, w = 1;
        unsigned last = ccc_of(a[0]) ? 256 : 0;
        for (size_t i = 1; i < m; i++) {
            uint32_t ch = a[i];
            unsigned c = ccc_of(ch);
            uint32_t comp = compose(a[starter], ch);
            if (comp && (last < c || last == 0)) { // not blocked (last == 0: right after the starter)
                a[starter] = comp;
                continue;
            }
            if (c == 0) starter = w;
            last = c;
            a[w++] = ch;
        }
        m = w;
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (a[i] & RAW_BYTE) out[k++] = (uint8_t)a[i];
        else k += (size_t)tern_utf8_encode(a[i], out + k);
    }
    return k;
}

int tern_nfc_may_change(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC) return 1; // U+0300 and above start with 0xCC
    return 0;
}

uint8_t *tern_nfc(const uint8_t *s, size_t n, size_t *on) {
    uint8_t *out = tern_xmalloc(3 * n + 4);
    cpvec v = {0};
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            out[k++] = s[i++];
            continue;
        }
        // a stretch of non-ASCII bytes, with the ASCII character before it (it may compose)
        size_t a = i, b = i;
        while (b < n && s[b] >= 0x80) b++;
        if (a > 0 && k > 0) {
            a--;
            k--;
        }
        if (tern_nfc_may_change(s + a, b - a)) k += nfc_piece(s + a, b - a, &v, out + k);
        else {
            memcpy(out + k, s + a, b - a);
            k += b - a;
        }
        i = b;
    }
    free(v.a);
    *on = k;
    return out;
}
