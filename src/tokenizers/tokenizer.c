// tokenizer.c — see tokenizer.h. libc + OpenMP only.
#include "tokenizers/tokenizer.h"
#include "util.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char TOK_MAGIC[8] = {'T', 'E', 'R', 'N', 'T', 'K', 'Z', 0};
#define TOK_VERSION 1u
#define TOK_HEADER 24
#define TOK_FLAG_SPACE_PREFIX 1u

static const uint8_t SPACE_MARK[3] = {0xE2, 0x96, 0x81}; // U+2581 "▁"
// llama.cpp's unicode_len_utf8: character length from the high nibble of the lead byte
static const uint8_t LEAD_LEN[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};

static inline int is_mark(const uint8_t *s) { return s[0] == 0xE2 && s[1] == 0x96 && s[2] == 0x81; }

// Length of the character starting at e[i] (of m bytes): llama.cpp's lead-byte rule, clipped at
// the end and — tern's one addition, for losslessness — clipped before an escaped space (▁), so
// that invalid UTF-8 right before a space cannot swallow part of its ▁ (llama.cpp would, and then
// decode the space as the bytes of "▁"). Valid UTF-8 is never clipped.
static inline size_t sym_len(const uint8_t *e, size_t i, size_t m) {
    size_t L = LEAD_LEN[e[i] >> 4];
    if (L > m - i) L = m - i;
    for (size_t k = 1; k < L; k++)
        if (e[i + k] == 0xE2 && i + k + 2 < m && e[i + k + 1] == 0x96 && e[i + k + 2] == 0x81) return k;
    return L;
}

uint64_t tern_fnv1a64(const void *buf, size_t n) {
    const uint8_t *p = buf;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// fast non-cryptographic hash of a short byte string (for hash tables only)
static inline uint64_t hbytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    if (n >= 4) { // two overlapping 4-byte loads
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        v = (uint64_t)lo | ((uint64_t)hi << 32);
    } else if (n > 0) {
        v = (uint64_t)p[0] | ((uint64_t)p[n / 2] << 8) | ((uint64_t)p[n - 1] << 16);
    }
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

// ------------------------------------------------------------------------------------------
// building, validation, serialization

int tern_tokenizer_piece_id(const tern_tokenizer *t, const char *s, size_t len) {
    if (len == 0 || len > TERN_TOK_MAX_PIECE) return -1;
    uint32_t mask = (uint32_t)t->map_cap - 1;
    uint32_t i = (uint32_t)hbytes((const uint8_t *)s, len) & mask;
    for (;;) {
        int id = t->map[i];
        if (id < 0) return -1;
        if ((size_t)t->piece_len[id] == len && memcmp(t->pieces[id], s, len) == 0) return id;
        i = (i + 1) & mask;
    }
}

void tern_tokenizer_free(tern_tokenizer *t) {
    if (!t) return;
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->types);
    free(t->map);
    free(t->blob);
    memset(t, 0, sizeof *t);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tern_tokenizer_to_bytes(const tern_tokenizer *t, void **buf, size_t *n) {
    size_t sz = TOK_HEADER;
    for (int i = 0; i < t->vocab_size; i++) sz += 7 + (size_t)t->piece_len[i];
    uint8_t *b = tern_xmalloc(sz), *p = b;
    uint32_t hdr[4] = {TOK_VERSION, (uint32_t)t->vocab_size, t->add_space_prefix ? TOK_FLAG_SPACE_PREFIX : 0u, 0u};
    memcpy(p, TOK_MAGIC, 8);
    memcpy(p + 8, hdr, 16);
    p += TOK_HEADER;
    for (int i = 0; i < t->vocab_size; i++) {
        uint16_t len = (uint16_t)t->piece_len[i];
        *p++ = (uint8_t)t->types[i];
        memcpy(p, &t->scores[i], 4);
        memcpy(p + 4, &len, 2);
        memcpy(p + 6, t->pieces[i], len);
        p += 6 + len;
    }
    *buf = b;
    *n = sz;
    return 0;
}

uint64_t tern_tokenizer_hash(const tern_tokenizer *t) { return t->hash; }

// Takes the piece arrays (pieces concatenated in 'bytes', lens[i] each) and builds t, validating
// everything. On error t is left empty.
static int tok_build(tern_tokenizer *t, int V, const uint8_t *types, const float *scores, const int *lens,
                     const char *bytes, uint32_t flags, const char *what) {
    memset(t, 0, sizeof *t);
    if (V < TERN_TOK_MIN_VOCAB || V > TERN_TOK_MAX_VOCAB) {
        tern_error("%s: vocab size %d out of range (%d..%d)", what, V, TERN_TOK_MIN_VOCAB, TERN_TOK_MAX_VOCAB);
        return -1;
    }
    if (flags & ~TOK_FLAG_SPACE_PREFIX) {
        tern_error("%s: unknown flags 0x%x", what, flags);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < V; i++) total += (size_t)lens[i] + 1;
    t->vocab_size = V;
    t->pieces = tern_xmalloc((size_t)V * sizeof(char *));
    t->piece_len = tern_xmalloc((size_t)V * sizeof(int));
    t->scores = tern_xmalloc((size_t)V * sizeof(float));
    t->types = tern_xmalloc((size_t)V * sizeof(int));
    t->blob = tern_xmalloc(total);
    t->map_cap = 1024;
    while (t->map_cap < 2 * V) t->map_cap *= 2;
    t->map = tern_xmalloc((size_t)t->map_cap * sizeof(int));
    memset(t->map, 0xff, (size_t)t->map_cap * sizeof(int));
    t->bos_id = TERN_TOK_BOS;
    t->eos_id = TERN_TOK_EOS;
    t->unk_id = TERN_TOK_UNK;
    t->add_space_prefix = (flags & TOK_FLAG_SPACE_PREFIX) != 0;
    t->word_split = 1;
    char *q = t->blob;
    const char *src = bytes;
    for (int i = 0; i < V; i++) {
        int len = lens[i];
        if (len < 1 || len > TERN_TOK_MAX_PIECE) {
            tern_error("%s: piece %d has bad length %d", what, i, len);
            goto fail;
        }
        if (memchr(src, 0, (size_t)len)) {
            tern_error("%s: piece %d contains a NUL byte", what, i);
            goto fail;
        }
        memcpy(q, src, (size_t)len);
        q[len] = 0;
        t->pieces[i] = q;
        t->piece_len[i] = len;
        t->scores[i] = scores[i];
        t->types[i] = types[i];
        src += len;
        q += len + 1;
        if (!isfinite(scores[i])) {
            tern_error("%s: piece %d has a non-finite score", what, i);
            goto fail;
        }
        const char *p = t->pieces[i];
        int want;
        if (i == 0) want = TERN_PIECE_UNKNOWN;
        else if (i < 3) want = TERN_PIECE_CONTROL;
        else if (i < TERN_TOK_FIRST_NORMAL) want = TERN_PIECE_BYTE;
        else want = TERN_PIECE_NORMAL;
        if (types[i] != want) {
            tern_error("%s: piece %d has type %d, expected %d", what, i, types[i], want);
            goto fail;
        }
        if ((i == 0 && strcmp(p, "<unk>")) || (i == 1 && strcmp(p, "<s>")) || (i == 2 && strcmp(p, "</s>"))) {
            tern_error("%s: control piece %d is \"%s\" (expected <unk>, <s>, </s> at ids 0, 1, 2)", what, i, p);
            goto fail;
        }
        if (want == TERN_PIECE_BYTE) {
            int b = i - TERN_TOK_BYTE0;
            if (len != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>' || hexval(p[3]) * 16 + hexval(p[4]) != b ||
                hexval(p[3]) < 0 || hexval(p[4]) < 0) {
                tern_error("%s: piece %d should be the byte piece <0x%02X>", what, i, b);
                goto fail;
            }
        }
        if (len > 1 && (memchr(p, '\n', (size_t)len) || memmem(p + 1, (size_t)len - 1, SPACE_MARK, 3))) t->word_split = 0;
        // insert, rejecting duplicates
        uint32_t mask = (uint32_t)t->map_cap - 1;
        uint32_t k = (uint32_t)hbytes((const uint8_t *)p, (size_t)len) & mask;
        while (t->map[k] >= 0) {
            int o = t->map[k];
            if (t->piece_len[o] == len && memcmp(t->pieces[o], p, (size_t)len) == 0) {
                tern_error("%s: pieces %d and %d are the same", what, o, i);
                goto fail;
            }
            k = (k + 1) & mask;
        }
        t->map[k] = i;
    }
    if (tern_tokenizer_piece_id(t, (const char *)SPACE_MARK, 3) < 0) {   // without it a space would encode as 3 byte pieces of "▁"
        tern_error("%s: has no \"\xe2\x96\x81\" piece (spaces could not be encoded losslessly)", what);
        goto fail;
    }
    void *ser;
    size_t n;
    tern_tokenizer_to_bytes(t, &ser, &n);
    t->hash = tern_fnv1a64(ser, n);
    free(ser);
    return 0;
fail:
    tern_tokenizer_free(t);
    return -1;
}

int tern_tokenizer_from_bytes(tern_tokenizer *t, const void *buf, size_t n, const char *what) {
    memset(t, 0, sizeof *t);
    const uint8_t *b = buf;
    if (n < TOK_HEADER) {
        tern_error("%s: truncated tokenizer file (%zu bytes, header needs %d)", what, n, TOK_HEADER);
        return -1;
    }
    if (memcmp(b, TOK_MAGIC, 8) != 0) {
        tern_error("%s: bad magic (not a tern tokenizer file)", what);
        return -1;
    }
    uint32_t hdr[4];
    memcpy(hdr, b + 8, 16);
    if (hdr[0] != TOK_VERSION) {
        tern_error("%s: unsupported tokenizer file version %u (this build reads %u)", what, hdr[0], TOK_VERSION);
        return -1;
    }
    if (hdr[1] < TERN_TOK_MIN_VOCAB || hdr[1] > TERN_TOK_MAX_VOCAB) {
        tern_error("%s: vocab size %u out of range (%d..%d)", what, hdr[1], TERN_TOK_MIN_VOCAB, TERN_TOK_MAX_VOCAB);
        return -1;
    }
    if (hdr[3] != 0) {
        tern_error("%s: reserved header field is not zero", what);
        return -1;
    }
    int V = (int)hdr[1];
    if ((size_t)V * 7 > n - TOK_HEADER) {
        tern_error("%s: truncated tokenizer file (%zu bytes cannot hold %d pieces)", what, n, V);
        return -1;
    }
    uint8_t *types = tern_xmalloc((size_t)V);
    float *scores = tern_xmalloc((size_t)V * sizeof(float));
    int *lens = tern_xmalloc((size_t)V * sizeof(int));
    char *bytes = tern_xmalloc(n);
    size_t off = TOK_HEADER, bo = 0;
    int rc = -1;
    for (int i = 0; i < V; i++) {
        if (n - off < 7) {
            tern_error("%s: truncated tokenizer file (ends inside piece %d)", what, i);
            goto done;
        }
        uint16_t len;
        types[i] = b[off];
        memcpy(&scores[i], b + off + 1, 4);
        memcpy(&len, b + off + 5, 2);
        off += 7;
        if (len < 1 || len > TERN_TOK_MAX_PIECE) {
            tern_error("%s: piece %d has bad length %u", what, i, len);
            goto done;
        }
        if (n - off < len) {
            tern_error("%s: truncated tokenizer file (ends inside piece %d)", what, i);
            goto done;
        }
        lens[i] = len;
        memcpy(bytes + bo, b + off, len);
        bo += len;
        off += len;
    }
    if (off != n) {
        tern_error("%s: %zu unexpected bytes after the last piece (size mismatch)", what, n - off);
        goto done;
    }
    rc = tok_build(t, V, types, scores, lens, bytes, hdr[2], what);
done:
    free(types);
    free(scores);
    free(lens);
    free(bytes);
    return rc;
}

int tern_tokenizer_load(tern_tokenizer *t, const char *path) {
    memset(t, 0, sizeof *t);
    size_t n;
    char *buf = tern_read_file(path, &n);
    if (!buf) return -1;
    int rc = tern_tokenizer_from_bytes(t, buf, n, path);
    free(buf);
    return rc;
}

int tern_tokenizer_save(const tern_tokenizer *t, const char *path) {
    void *buf;
    size_t n;
    tern_tokenizer_to_bytes(t, &buf, &n);
    char tmp[4200];
    tern_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        tern_error("%s: cannot create: %m", path);
        free(buf);
        return -1;
    }
    int ok = fwrite(buf, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    free(buf);
    if (!ok) {
        tern_error("%s: write failed", path);
        tern_discard_file(tmp);
        return -1;
    }
    return tern_commit_file(tmp, path);
}

// ------------------------------------------------------------------------------------------
// encoding

typedef struct {
    int *a;
    size_t n, cap;
} ivec;

static inline void iv_reserve(ivec *v, size_t extra) {
    if (v->n + extra <= v->cap) return;
    size_t c = v->cap ? v->cap : 256;
    while (c < v->n + extra) c *= 2;
    int *a = realloc(v->a, c * sizeof(int));
    if (!a) tern_fatal("out of memory (%zu tokens)", c);
    v->a = a;
    v->cap = c;
}
static inline void iv_push(ivec *v, int x) {
    iv_reserve(v, 1);
    v->a[v->n++] = x;
}

typedef struct {
    float score;
    int left, right, size;
} bigram;

typedef struct {
    uint64_t h;
    uint32_t koff, voff;
    uint16_t klen, vn; // klen 0: empty slot
} centry;

#define CACHE_MAX_KEY 48
#define CACHE_MAX_CAP (1u << 18)

// per-thread encoder state: symbol lists, bigram heap, word cache, escape buffer
typedef struct {
    int *start, *len, *prev, *next;
    int sym_cap;
    bigram *heap;
    int heap_n, heap_cap;
    centry *ce;
    uint32_t ccap, ccount;
    uint8_t *ckeys;
    size_t ckn, ckcap;
    int *cvals;
    size_t cvn, cvcap;
    uint8_t *esc;
    size_t esc_cap;
} enc_ctx;

static void ctx_free(enc_ctx *c) {
    free(c->start);
    free(c->len);
    free(c->prev);
    free(c->next);
    free(c->heap);
    free(c->ce);
    free(c->ckeys);
    free(c->cvals);
    free(c->esc);
    memset(c, 0, sizeof *c);
}

static inline int bg_better(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(enc_ctx *c, bigram b) {
    if (c->heap_n == c->heap_cap) {
        c->heap_cap = c->heap_cap ? 2 * c->heap_cap : 64;
        c->heap = realloc(c->heap, (size_t)c->heap_cap * sizeof(bigram));
        if (!c->heap) tern_fatal("out of memory (tokenizer heap)");
    }
    int i = c->heap_n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!bg_better(&b, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = b;
}

static bigram heap_pop(enc_ctx *c) {
    bigram top = c->heap[0], last = c->heap[--c->heap_n];
    int i = 0, n = c->heap_n;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const bigram *best = &last;
        if (l < n && bg_better(&c->heap[l], best)) { m = l; best = &c->heap[l]; }
        if (r < n && bg_better(&c->heap[r], best)) m = r;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n > 0) c->heap[i] = last;
    return top;
}

static inline void try_bigram(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, int l, int r) {
    if (l < 0 || r < 0) return;
    int size = c->len[l] + c->len[r];
    int id = tern_tokenizer_piece_id(t, (const char *)s + c->start[l], (size_t)size);
    if (id < 0) return;
    bigram b = {t->scores[id], l, r, size};
    heap_push(c, b);
}

// llama.cpp's SPM algorithm on s[0..m): the plain whole-string reference and the per-word worker.
static void encode_exact(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, size_t m, ivec *out) {
    if (m == 0) return;
    if (m > (size_t)INT_MAX / 2) tern_fatal("text too long for one word (%zu bytes)", m);
    if ((int)m > c->sym_cap) {
        int cap = c->sym_cap ? c->sym_cap : 64;
        while (cap < (int)m) cap *= 2;
        free(c->start); free(c->len); free(c->prev); free(c->next);
        c->start = tern_xmalloc((size_t)cap * sizeof(int));
        c->len = tern_xmalloc((size_t)cap * sizeof(int));
        c->prev = tern_xmalloc((size_t)cap * sizeof(int));
        c->next = tern_xmalloc((size_t)cap * sizeof(int));
        c->sym_cap = cap;
    }
    int ns = 0;
    for (size_t off = 0; off < m;) {
        size_t L = sym_len(s, off, m);
        c->start[ns] = (int)off;
        c->len[ns] = (int)L;
        c->prev[ns] = ns - 1;
        c->next[ns] = ns + 1;
        ns++;
        off += L;
    }
    c->next[ns - 1] = -1;
    c->heap_n = 0;
    for (int i = 1; i < ns; i++) try_bigram(t, c, s, i - 1, i);
    while (c->heap_n > 0) {
        bigram b = heap_pop(c);
        int l = b.left, r = b.right;
        if (c->len[l] == 0 || c->len[r] == 0 || c->len[l] + c->len[r] != b.size) continue;
        c->len[l] += c->len[r];
        c->len[r] = 0;
        c->next[l] = c->next[r];
        if (c->next[r] >= 0) c->prev[c->next[r]] = l;
        try_bigram(t, c, s, c->prev[l], l);
        try_bigram(t, c, s, l, c->next[l]);
    }
    iv_reserve(out, (size_t)ns * 4);
    for (int i = 0; i != -1; i = c->next[i]) {
        int id = tern_tokenizer_piece_id(t, (const char *)s + c->start[i], (size_t)c->len[i]);
        if (id >= 0) out->a[out->n++] = id;
        else
            for (int k = 0; k < c->len[i]; k++) out->a[out->n++] = TERN_TOK_BYTE0 + s[c->start[i] + k];
    }
}

static void cache_reset(enc_ctx *c, uint32_t cap) {
    free(c->ce);
    c->ce = tern_xcalloc(cap, sizeof(centry));
    c->ccap = cap;
    c->ccount = 0;
    c->ckn = 0;
    c->cvn = 0;
}

static void cache_insert_slot(enc_ctx *c, centry e) {
    uint32_t mask = c->ccap - 1, i = (uint32_t)e.h & mask;
    while (c->ce[i].klen) i = (i + 1) & mask;
    c->ce[i] = e;
    c->ccount++;
}

// one word through the cache
static void encode_word(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, size_t m, ivec *out) {
    if (m == 1) { // fast path for single bytes ('\n', lone letters)
        int id = tern_tokenizer_piece_id(t, (const char *)s, 1);
        iv_push(out, id >= 0 ? id : TERN_TOK_BYTE0 + s[0]);
        return;
    }
    if (m > CACHE_MAX_KEY) {
        encode_exact(t, c, s, m, out);
        return;
    }
    uint64_t h = hbytes(s, m);
    uint32_t mask = c->ccap - 1, i = (uint32_t)h & mask;
    for (; c->ce[i].klen; i = (i + 1) & mask) {
        centry *e = &c->ce[i];
        if (e->h == h && e->klen == m && memcmp(c->ckeys + e->koff, s, m) == 0) {
            iv_reserve(out, e->vn);
            const int *src = c->cvals + e->voff;
            int *dst = out->a + out->n;
            for (int k = 0; k < e->vn; k++) dst[k] = src[k];
            out->n += e->vn;
            return;
        }
    }
    size_t n0 = out->n;
    encode_exact(t, c, s, m, out);
    size_t vn = out->n - n0;
    if (2 * (c->ccount + 1) > c->ccap) {
        if (c->ccap < CACHE_MAX_CAP) { // grow and rehash
            centry *old = c->ce;
            uint32_t oc = c->ccap;
            c->ce = tern_xcalloc(2 * (size_t)oc, sizeof(centry));
            c->ccap = 2 * oc;
            c->ccount = 0;
            for (uint32_t k = 0; k < oc; k++)
                if (old[k].klen) cache_insert_slot(c, old[k]);
            free(old);
        } else {
            cache_reset(c, c->ccap);
        }
    }
    if (c->ckn + m > c->ckcap) {
        c->ckcap = c->ckcap ? 2 * c->ckcap : 65536;
        while (c->ckcap < c->ckn + m) c->ckcap *= 2;
        c->ckeys = realloc(c->ckeys, c->ckcap);
        if (!c->ckeys) tern_fatal("out of memory (tokenizer cache)");
    }
    if (c->cvn + vn > c->cvcap) {
        c->cvcap = c->cvcap ? 2 * c->cvcap : 65536;
        while (c->cvcap < c->cvn + vn) c->cvcap *= 2;
        c->cvals = realloc(c->cvals, c->cvcap * sizeof(int));
        if (!c->cvals) tern_fatal("out of memory (tokenizer cache)");
    }
    memcpy(c->ckeys + c->ckn, s, m);
    memcpy(c->cvals + c->cvn, out->a + n0, vn * sizeof(int));
    centry e = {h, (uint32_t)c->ckn, (uint32_t)c->cvn, (uint16_t)m, (uint16_t)vn};
    c->ckn += m;
    c->cvn += vn;
    cache_insert_slot(c, e);
}

// A text part with no literal U+2581 inside: escape spaces, optionally prefix ▁, then encode
// word by word (or as one string when the vocabulary does not allow the split).
static void encode_part(const tern_tokenizer *t, enc_ctx *c, const uint8_t *raw, size_t len, int prefix, int split,
                        ivec *out) {
    size_t need = 3 * len + 3;
    if (need > c->esc_cap) {
        free(c->esc);
        c->esc_cap = need;
        c->esc = tern_xmalloc(need);
    }
    uint8_t *e = c->esc;
    size_t m = 0;
    if (prefix) {
        memcpy(e, SPACE_MARK, 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            e[m] = 0xE2;
            e[m + 1] = 0x96;
            e[m + 2] = 0x81;
            m += 3;
        } else {
            e[m++] = raw[i];
        }
    }
    if (!split) {
        encode_exact(t, c, e, m, out);
        return;
    }
    size_t seg = 0, i = 0;
    while (i < m) {
        uint8_t ch = e[i];
        if (ch < 0x80 && ch != '\n') { // ASCII: one-byte character, never a boundary
            i++;
            continue;
        }
        size_t L = sym_len(e, i, m);
        if (L == 3 && is_mark(e + i)) {
            if (i > seg) encode_word(t, c, e + seg, i - seg, out);
            seg = i;
        } else if (ch == '\n') {
            if (i > seg) encode_word(t, c, e + seg, i - seg, out);
            encode_word(t, c, e + i, 1, out);
            seg = i + 1;
        }
        i += L;
    }
    if (m > seg) encode_word(t, c, e + seg, m - seg, out);
}

// A chunk of raw text: split out literal U+2581 characters (emitted as byte pieces).
static void encode_chunk(const tern_tokenizer *t, enc_ctx *c, const uint8_t *raw, size_t len, int prefix, int split,
                         ivec *out) {
    const uint8_t *p = raw, *end = raw + len;
    for (;;) {
        const uint8_t *q = memmem(p, (size_t)(end - p), SPACE_MARK, 3);
        if (!q) {
            encode_part(t, c, p, (size_t)(end - p), prefix, split, out);
            return;
        }
        encode_part(t, c, p, (size_t)(q - p), prefix, split, out);
        for (int k = 0; k < 3; k++) iv_push(out, TERN_TOK_BYTE0 + SPACE_MARK[k]);
        prefix = 0;
        p = q + 3;
    }
}

#define CHUNK_BYTES (1u << 20)

// Chunk boundaries: a space whose three preceding bytes are ASCII always starts a ▁ symbol
// that begins a word, whatever came before, so chunks encode independently.
static size_t chunk_bounds(const uint8_t *s, size_t len, size_t **bounds) {
    size_t nb = 0, cap = len / CHUNK_BYTES + 2;
    size_t *b = tern_xmalloc(cap * sizeof(size_t));
    b[nb++] = 0;
    size_t pos = CHUNK_BYTES;
    while (pos < len) {
        size_t p = pos;
        while (p < len && !(s[p] == ' ' && s[p - 1] < 0x80 && s[p - 2] < 0x80 && s[p - 3] < 0x80)) p++;
        if (p >= len) break;
        if (nb + 1 >= cap) {
            cap *= 2;
            b = realloc(b, cap * sizeof(size_t));
            if (!b) tern_fatal("out of memory");
        }
        b[nb++] = p;
        pos = p + CHUNK_BYTES;
    }
    b[nb] = len;
    *bounds = b;
    return nb; // chunks: [b[i], b[i+1]) for i < nb
}

static int finish(ivec *v, int **ids, int *n) {
    if (v->n > (size_t)INT_MAX) {
        free(v->a);
        tern_error("text too long: %zu tokens (limit %d per call)", v->n, INT_MAX);
        return -1;
    }
    *n = (int)v->n;
    *ids = v->a ? v->a : tern_xmalloc(sizeof(int));
    return 0;
}

size_t tern_tokenizer_split_point(const tern_tokenizer *t, const char *text, size_t len, size_t pos) {
    const uint8_t *s = (const uint8_t *)text;
    if (!t->word_split) return len;
    if (pos < 3) pos = 3;
    for (size_t p = pos; p < len; p++)
        if (s[p] == ' ' && s[p - 1] < 0x80 && s[p - 2] < 0x80 && s[p - 3] < 0x80) return p;
    return len;
}

int tern_tokenizer_encode(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n) {
    return tern_tokenizer_encode_ex(t, text, len, add_bos ? TERN_ENC_BOS : 0, ids, n);
}

int tern_tokenizer_encode_ex(const tern_tokenizer *t, const char *text, size_t len, int flags, int **ids, int *n) {
    const uint8_t *s = (const uint8_t *)text;
    int prefix = t->add_space_prefix && !(flags & TERN_ENC_CONTINUE);
    ivec out = {0};
    if (flags & TERN_ENC_BOS) iv_push(&out, t->bos_id);
    if (len == 0) return finish(&out, ids, n);
    if (!t->word_split) { // whole-string algorithm, one thread
        enc_ctx c = {0};
        encode_chunk(t, &c, s, len, prefix, 0, &out);
        ctx_free(&c);
        return finish(&out, ids, n);
    }
    size_t *b;
    size_t nb = chunk_bounds(s, len, &b);
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    if (nb == 1 || nt == 1) {
        enc_ctx c = {0};
        cache_reset(&c, 1024);
        for (size_t k = 0; k < nb; k++)
            encode_chunk(t, &c, s + b[k], b[k + 1] - b[k], k == 0 && prefix, 1, &out);
        ctx_free(&c);
    } else {
        ivec *parts = tern_xcalloc(nb, sizeof(ivec));
        enc_ctx *ctx = tern_xcalloc((size_t)nt, sizeof(enc_ctx));
#pragma omp parallel num_threads(nt)
        {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            enc_ctx *c = &ctx[tid];
            cache_reset(c, 1024);
#pragma omp for schedule(dynamic, 1)
            for (size_t k = 0; k < nb; k++)
                encode_chunk(t, c, s + b[k], b[k + 1] - b[k], k == 0 && prefix, 1, &parts[k]);
            ctx_free(c);
        }
        size_t total = 0;
        for (size_t k = 0; k < nb; k++) total += parts[k].n;
        iv_reserve(&out, total);
        for (size_t k = 0; k < nb; k++) {
            if (parts[k].n) memcpy(out.a + out.n, parts[k].a, parts[k].n * sizeof(int));
            out.n += parts[k].n;
            free(parts[k].a);
        }
        free(parts);
        free(ctx);
    }
    free(b);
    return finish(&out, ids, n);
}

int tern_tokenizer_encode_ref(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n) {
    ivec out = {0};
    if (add_bos) iv_push(&out, t->bos_id);
    if (len > 0) {
        enc_ctx c = {0};
        encode_chunk(t, &c, (const uint8_t *)text, len, t->add_space_prefix, 0, &out);
        ctx_free(&c);
    }
    return finish(&out, ids, n);
}

// ------------------------------------------------------------------------------------------
// decoding

int tern_tokenizer_decode_piece(const tern_tokenizer *t, int id, int first, char *buf, size_t cap) {
    if (id < 0 || id >= t->vocab_size) return -1;
    int ty = t->types[id];
    if (ty == TERN_PIECE_CONTROL || ty == TERN_PIECE_UNKNOWN) return 0;
    if (ty == TERN_PIECE_BYTE) {
        if (cap < 1) return 0;
        buf[0] = (char)(id - TERN_TOK_BYTE0);
        return 1;
    }
    const uint8_t *p = (const uint8_t *)t->pieces[id];
    int len = t->piece_len[id], k = 0;
    for (int i = 0; i < len && (size_t)k < cap;) {
        if (i + 3 <= len && is_mark(p + i)) {
            buf[k++] = ' ';
            i += 3;
        } else {
            buf[k++] = (char)p[i++];
        }
    }
    if (first && t->add_space_prefix && k > 0 && buf[0] == ' ') {
        memmove(buf, buf + 1, (size_t)k - 1);
        k--;
    }
    return k;
}

int tern_tokenizer_decode(const tern_tokenizer *t, const int *ids, size_t n, char **out, size_t *len) {
    size_t cap = 64, k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size) {
            tern_error("token %zu: id %d out of range (vocab size %d)", i, ids[i], t->vocab_size);
            return -1;
        }
        cap += (size_t)t->piece_len[ids[i]];
    }
    char *b = tern_xmalloc(cap + 1);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        int m = tern_tokenizer_decode_piece(t, ids[i], first, b + k, cap - k);
        if (t->types[ids[i]] == TERN_PIECE_NORMAL || t->types[ids[i]] == TERN_PIECE_BYTE) first = 0;
        else if (ids[i] == t->bos_id) first = 1; // a new text starts: its prefix space goes too
        k += (size_t)m;
    }
    b[k] = 0;
    *out = b;
    *len = k;
    return 0;
}

// ------------------------------------------------------------------------------------------
// training

void tern_tokenizer_train_defaults(tern_tokenizer_train_opts *o) {
    o->vocab_size = 4096;
    o->char_coverage = 0.9995;
    o->max_word_chars = 64;
    o->verbose = 0;
}

// strict UTF-8 validity of one llama-split symbol
static int valid_char(const uint8_t *s, int L) {
    uint8_t c = s[0];
#define CONT(x) (((x) & 0xC0) == 0x80)
    switch (L) {
    case 1: return c < 0x80;
    case 2: return c >= 0xC2 && c <= 0xDF && CONT(s[1]);
    case 3:
        if (!CONT(s[1]) || !CONT(s[2])) return 0;
        if (c == 0xE0) return s[1] >= 0xA0;
        if (c == 0xED) return s[1] < 0xA0;
        return c >= 0xE1 && c <= 0xEF;
    case 4:
        if (!CONT(s[1]) || !CONT(s[2]) || !CONT(s[3])) return 0;
        if (c == 0xF0) return s[1] >= 0x90;
        if (c == 0xF4) return s[1] < 0x90;
        return c >= 0xF1 && c <= 0xF3;
    }
#undef CONT
    return 0;
}

static inline uint64_t char_key(const uint8_t *s, int L) {
    uint64_t k = (uint64_t)L << 32;
    for (int i = 0; i < L; i++) k |= (uint64_t)s[i] << (8 * i);
    return k;
}

// uint64 key -> int64 value open-addressing map (key 0 = empty)
typedef struct {
    uint64_t *k;
    int64_t *v;
    size_t cap, n;
} u64map;

static void um_init(u64map *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->k = tern_xcalloc(cap, sizeof(uint64_t));
    m->v = tern_xcalloc(cap, sizeof(int64_t));
}
static void um_free(u64map *m) {
    free(m->k);
    free(m->v);
}
static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}
static int64_t *um_slot(u64map *m, uint64_t key, int create);
static void um_grow(u64map *m) {
    u64map o = *m;
    um_init(m, o.cap * 2);
    for (size_t i = 0; i < o.cap; i++)
        if (o.k[i]) *um_slot(m, o.k[i], 1) = o.v[i];
    um_free(&o);
}
// pointer to the value of key (created as 0 when create), or NULL
static int64_t *um_slot(u64map *m, uint64_t key, int create) {
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->k[i]) {
        if (m->k[i] == key) return &m->v[i];
        i = (i + 1) & mask;
    }
    if (!create) return NULL;
    if (2 * (m->n + 1) > m->cap) {
        um_grow(m);
        return um_slot(m, key, 1);
    }
    m->k[i] = key;
    m->v[i] = 0;
    m->n++;
    return &m->v[i];
}

// byte-string -> int64 map with an arena of keys
typedef struct {
    uint64_t *h;
    uint32_t *off, *len; // len 0: empty
    int64_t *v;
    size_t cap, n;
    uint8_t *arena;
    size_t an, acap;
} strmap;

static void sm_init(strmap *m, size_t cap) {
    memset(m, 0, sizeof *m);
    m->cap = cap;
    m->h = tern_xcalloc(cap, sizeof(uint64_t));
    m->off = tern_xcalloc(cap, sizeof(uint32_t));
    m->len = tern_xcalloc(cap, sizeof(uint32_t));
    m->v = tern_xcalloc(cap, sizeof(int64_t));
}
static void sm_free(strmap *m) {
    free(m->h);
    free(m->off);
    free(m->len);
    free(m->v);
    free(m->arena);
}
static void sm_rehash(strmap *m) {
    strmap o = *m;
    m->cap = o.cap * 2;
    m->h = tern_xcalloc(m->cap, sizeof(uint64_t));
    m->off = tern_xcalloc(m->cap, sizeof(uint32_t));
    m->len = tern_xcalloc(m->cap, sizeof(uint32_t));
    m->v = tern_xcalloc(m->cap, sizeof(int64_t));
    size_t mask = m->cap - 1;
    for (size_t i = 0; i < o.cap; i++) {
        if (!o.len[i]) continue;
        size_t j = o.h[i] & mask;
        while (m->len[j]) j = (j + 1) & mask;
        m->h[j] = o.h[i];
        m->off[j] = o.off[i];
        m->len[j] = o.len[i];
        m->v[j] = o.v[i];
    }
    free(o.h);
    free(o.off);
    free(o.len);
    free(o.v);
}
// value slot of s (created as init when create; *created set), or NULL
static int64_t *sm_slot(strmap *m, const uint8_t *s, size_t len, int create, int64_t init) {
    uint64_t h = hbytes(s, len);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->len[i]) {
        if (m->h[i] == h && m->len[i] == len && memcmp(m->arena + m->off[i], s, len) == 0) return &m->v[i];
        i = (i + 1) & mask;
    }
    if (!create) return NULL;
    if (2 * (m->n + 1) > m->cap) {
        sm_rehash(m);
        return sm_slot(m, s, len, create, init);
    }
    if (m->an + len > m->acap) {
        m->acap = m->acap ? 2 * m->acap : 1 << 16;
        while (m->acap < m->an + len) m->acap *= 2;
        m->arena = realloc(m->arena, m->acap);
        if (!m->arena) tern_fatal("out of memory (tokenizer training)");
    }
    if (m->an + len > UINT32_MAX) tern_fatal("tokenizer training: too many distinct words");
    memcpy(m->arena + m->an, s, len);
    m->h[i] = h;
    m->off[i] = (uint32_t)m->an;
    m->len[i] = (uint32_t)len;
    m->v[i] = init;
    m->an += len;
    m->n++;
    return &m->v[i];
}

// escape spaces to ▁ and prepend one ▁; returns the length (buffer: 3*len+3)
static size_t escape_text(const uint8_t *raw, size_t len, uint8_t *e) {
    size_t m = 0;
    memcpy(e, SPACE_MARK, 3);
    m = 3;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            memcpy(e + m, SPACE_MARK, 3);
            m += 3;
        } else {
            e[m++] = raw[i];
        }
    }
    return m;
}

// Whether s is a proper prefix or suffix (>= 2 bytes) of, or equal to, a control or byte piece's
// text. Such pieces are never learned, so no merge can ever produce "<s>", "<0x41>" etc.
static int reserved_affix(const uint8_t *s, int n) {
    static const char *ctl[3] = {"<unk>", "<s>", "</s>"};
    if (n < 2) return 0;
    for (int k = 0; k < 3; k++) {
        int L = (int)strlen(ctl[k]);
        if (n > L) continue;
        if (memcmp(s, ctl[k], (size_t)n) == 0 || memcmp(s, ctl[k] + L - n, (size_t)n) == 0) return 1;
    }
    if (n > 6) return 0;
    // pattern "<0xHH>": position j matches c?
#define PAT_OK(j, c) ((j) == 0 ? (c) == '<' : (j) == 1 ? (c) == '0' : (j) == 2 ? (c) == 'x' : (j) == 5 ? (c) == '>' : hexval(c) >= 0)
    int pre = 1, suf = 1;
    for (int j = 0; j < n; j++) {
        if (!PAT_OK(j, s[j])) pre = 0;
        if (!PAT_OK(6 - n + j, s[j])) suf = 0;
    }
#undef PAT_OK
    return pre || suf;
}

typedef struct {
    int64_t count;
    uint32_t soff;   // string in the piece-string arena
    uint16_t slen;
    int rank;        // merge rank once learned, else -1
    int banned;
    int stamp;       // last merge that touched it
    int *words;      // words that contained the pair at some point (may be stale)
    int nw, cw;
} cand_t;

typedef struct {
    int64_t count;
    int cand;
} hentry;

typedef struct {
    // piece strings (chars and merges), indexed by piece id - TERN_TOK_FIRST_NORMAL
    uint8_t *pstr;
    size_t pn, pcap;
    uint32_t *poff;
    uint16_t *plen;
    int npieces, pieces_cap;
    cand_t *c;
    int nc, cc;
    u64map pair;  // (a << 32 | b) + 1 -> cand id
    strmap cstr;  // concatenated string -> cand id
    hentry *heap;
    size_t hn, hcap;
} bpe_state;

static const uint8_t *piece_str(const bpe_state *b, int id, int *len) {
    int k = id - TERN_TOK_FIRST_NORMAL;
    *len = b->plen[k];
    return b->pstr + b->poff[k];
}

static void add_piece_str(bpe_state *b, const uint8_t *s, int len) {
    if (b->npieces == b->pieces_cap) {
        b->pieces_cap = b->pieces_cap ? 2 * b->pieces_cap : 1024;
        b->poff = realloc(b->poff, (size_t)b->pieces_cap * sizeof(uint32_t));
        b->plen = realloc(b->plen, (size_t)b->pieces_cap * sizeof(uint16_t));
        if (!b->poff || !b->plen) tern_fatal("out of memory (tokenizer training)");
    }
    if (b->pn + (size_t)len > b->pcap) {
        b->pcap = b->pcap ? 2 * b->pcap : 1 << 16;
        while (b->pcap < b->pn + (size_t)len) b->pcap *= 2;
        b->pstr = realloc(b->pstr, b->pcap);
        if (!b->pstr) tern_fatal("out of memory (tokenizer training)");
    }
    memcpy(b->pstr + b->pn, s, (size_t)len);
    b->poff[b->npieces] = (uint32_t)b->pn;
    b->plen[b->npieces] = (uint16_t)len;
    b->pn += (size_t)len;
    b->npieces++;
}

// candidate of the pair (x, y), created if new
static int pair_cand_get(bpe_state *b, int x, int y) {
    int64_t *v = um_slot(&b->pair, (((uint64_t)x << 32) | (uint32_t)y) + 1, 1);
    if (*v) return (int)*v - 1; // stored +1 so that 0 means new
    int lx, ly;
    const uint8_t *sx = piece_str(b, x, &lx);
    const uint8_t *sy = piece_str(b, y, &ly);
    uint8_t tmp[2 * TERN_TOK_MAX_PIECE];
    memcpy(tmp, sx, (size_t)lx);
    memcpy(tmp + lx, sy, (size_t)ly);
    int len = lx + ly;
    int64_t *cv = sm_slot(&b->cstr, tmp, (size_t)len, 1, -1);
    if (*cv < 0) {
        if (b->nc == b->cc) {
            b->cc = b->cc ? 2 * b->cc : 4096;
            b->c = realloc(b->c, (size_t)b->cc * sizeof(cand_t));
            if (!b->c) tern_fatal("out of memory (tokenizer training)");
        }
        cand_t *c = &b->c[b->nc];
        memset(c, 0, sizeof *c);
        // the candidate's string lives in the cstr arena
        c->soff = (uint32_t)(b->cstr.an - (size_t)len);
        c->slen = (uint16_t)len;
        c->rank = -1;
        c->stamp = -1;
        c->banned = len > TERN_TOK_MAX_PIECE || reserved_affix(tmp, len);
        *cv = b->nc++;
    }
    // re-fetch: sm_slot may not have moved v (different map), but um_slot may have grown since
    v = um_slot(&b->pair, (((uint64_t)x << 32) | (uint32_t)y) + 1, 0);
    *v = *cv + 1;
    return (int)*cv;
}

static inline int pair_cand_lookup(bpe_state *b, int x, int y) {
    int64_t *v = um_slot(&b->pair, (((uint64_t)x << 32) | (uint32_t)y) + 1, 0);
    return v && *v ? (int)*v - 1 : -1;
}

// heap order: higher count first, then the smaller string (bytewise), then the shorter
static int hbetter(const bpe_state *b, const hentry *x, const hentry *y) {
    if (x->count != y->count) return x->count > y->count;
    const cand_t *cx = &b->c[x->cand], *cy = &b->c[y->cand];
    int n = cx->slen < cy->slen ? cx->slen : cy->slen;
    int r = memcmp(b->cstr.arena + cx->soff, b->cstr.arena + cy->soff, (size_t)n);
    if (r) return r < 0;
    return cx->slen < cy->slen;
}

static void hpush(bpe_state *b, int64_t count, int cand) {
    if (b->hn == b->hcap) {
        b->hcap = b->hcap ? 2 * b->hcap : 4096;
        b->heap = realloc(b->heap, b->hcap * sizeof(hentry));
        if (!b->heap) tern_fatal("out of memory (tokenizer training)");
    }
    hentry e = {count, cand};
    size_t i = b->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hbetter(b, &e, &b->heap[p])) break;
        b->heap[i] = b->heap[p];
        i = p;
    }
    b->heap[i] = e;
}

static hentry hpop(bpe_state *b) {
    hentry top = b->heap[0], last = b->heap[--b->hn];
    size_t i = 0, n = b->hn;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const hentry *best = &last;
        if (l < n && hbetter(b, &b->heap[l], best)) { m = l; best = &b->heap[l]; }
        if (r < n && hbetter(b, &b->heap[r], best)) m = r;
        if (m == i) break;
        b->heap[i] = b->heap[m];
        i = m;
    }
    if (n > 0) b->heap[i] = last;
    return top;
}

static void cand_add_word(cand_t *c, int w) {
    if (c->nw > 0 && c->words[c->nw - 1] == w) return;
    if (c->nw == c->cw) {
        c->cw = c->cw ? 2 * c->cw : 4;
        c->words = realloc(c->words, (size_t)c->cw * sizeof(int));
        if (!c->words) tern_fatal("out of memory (tokenizer training)");
    }
    c->words[c->nw++] = w;
}

typedef struct {
    uint32_t off, len;
    int64_t count;
} wordref;

static const uint8_t *g_sort_arena; // qsort context (training runs one at a time per process)
static int cmp_wordref(const void *a, const void *b) {
    const wordref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(g_sort_arena + x->off, g_sort_arena + y->off, n);
    if (r) return r;
    return (x->len > y->len) - (x->len < y->len);
}

typedef struct {
    uint64_t key;
    int64_t count;
} charref;
static int cmp_charref(const void *a, const void *b) {
    const charref *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    // then bytewise on the character's bytes (stored little-endian: compare byte by byte)
    for (int i = 0; i < 4; i++) {
        int bx = (int)((x->key >> (8 * i)) & 0xff), by = (int)((y->key >> (8 * i)) & 0xff);
        int lx = (int)(x->key >> 32), ly = (int)(y->key >> 32);
        if (i >= lx || i >= ly) return (lx > ly) - (lx < ly);
        if (bx != by) return bx - by;
    }
    return 0;
}

int tern_tokenizer_train(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
                         const tern_tokenizer_train_opts *o) {
    memset(t, 0, sizeof *t);
    int V = o->vocab_size;
    if (V < TERN_TOK_MIN_VOCAB || V > TERN_TOK_MAX_VOCAB) {
        tern_error("vocab size %d out of range (minimum %d = 3 control + 256 byte pieces + \"\xe2\x96\x81\"; maximum %d)",
                   V, TERN_TOK_MIN_VOCAB, TERN_TOK_MAX_VOCAB);
        return -1;
    }
    size_t total_bytes = 0, maxlen = 0;
    for (int i = 0; i < n_texts; i++) {
        total_bytes += lens[i];
        if (lens[i] > maxlen) maxlen = lens[i];
    }
    if (total_bytes == 0) {
        tern_error("no text to train on (empty input)");
        return -1;
    }
    double t0 = tern_time();
    uint8_t *esc = tern_xmalloc(3 * maxlen + 3);

    // 1. character counts (llama.cpp's split of the escaped text)
    u64map chars;
    um_init(&chars, 1024);
    for (int ti = 0; ti < n_texts; ti++) {
        if (lens[ti] == 0) continue;
        size_t m = escape_text((const uint8_t *)texts[ti], lens[ti], esc);
        for (size_t i = 0; i < m;) {
            size_t L = sym_len(esc, i, m);
            if (valid_char(esc + i, (int)L) && esc[i] != 0) (*um_slot(&chars, char_key(esc + i, (int)L), 1))++;
            i += L;
        }
    }
    charref *cr = tern_xmalloc((chars.n + 1) * sizeof(charref));
    size_t ncr = 0;
    int64_t char_total = 0;
    for (size_t i = 0; i < chars.cap; i++)
        if (chars.k[i]) {
            cr[ncr].key = chars.k[i];
            cr[ncr].count = chars.v[i];
            char_total += chars.v[i];
            ncr++;
        }
    qsort(cr, ncr, sizeof(charref), cmp_charref);
    uint64_t mark_key = char_key(SPACE_MARK, 3);
    size_t nchars = 0;
    int64_t cum = 0;
    int max_chars = V - TERN_TOK_FIRST_NORMAL;
    int have_mark = 0;
    while (nchars < ncr && (int)nchars < max_chars && (double)cum < o->char_coverage * (double)char_total) {
        cum += cr[nchars].count;
        if (cr[nchars].key == mark_key) have_mark = 1;
        nchars++;
    }
    if (!have_mark) { // ▁ always gets a piece (it carries every space)
        if ((int)nchars == max_chars) nchars--;
        cr[nchars].key = mark_key;
        cr[nchars].count = 0;
        nchars++;
    }
    um_free(&chars);

    bpe_state B;
    memset(&B, 0, sizeof B);
    um_init(&B.pair, 1 << 16);
    sm_init(&B.cstr, 1 << 16);
    u64map char_id;
    um_init(&char_id, 1024);
    for (size_t i = 0; i < nchars; i++) {
        uint8_t s[4];
        int L = (int)(cr[i].key >> 32);
        for (int k = 0; k < L; k++) s[k] = (uint8_t)(cr[i].key >> (8 * k));
        *um_slot(&char_id, cr[i].key, 1) = TERN_TOK_FIRST_NORMAL + (int64_t)i + 1; // +1: 0 means absent
        add_piece_str(&B, s, L);
    }
    free(cr);

    // 2. words: runs of mergeable characters, a ▁ starting a new one
    strmap words;
    sm_init(&words, 1 << 16);
    int maxw = o->max_word_chars > 1 ? o->max_word_chars : 2;
    for (int ti = 0; ti < n_texts; ti++) {
        if (lens[ti] == 0) continue;
        size_t m = escape_text((const uint8_t *)texts[ti], lens[ti], esc);
        size_t ws = 0, we = 0;
        int nsym = 0;
        for (size_t i = 0; i <= m;) {
            size_t L = 0;
            int mergeable = 0, mark = 0;
            if (i < m) {
                L = sym_len(esc, i, m);
                int64_t *id = valid_char(esc + i, (int)L) ? um_slot(&char_id, char_key(esc + i, (int)L), 0) : NULL;
                mergeable = id && *id && !(L == 1 && (esc[i] < 0x20 || esc[i] == 0x7f));
                mark = L == 3 && is_mark(esc + i);
            }
            if (!mergeable || mark) { // end the current word
                if (nsym >= 2 && nsym <= maxw) (*sm_slot(&words, esc + ws, we - ws, 1, 0))++;
                nsym = 0;
            }
            if (i >= m) break;
            if (mergeable) {
                if (nsym == 0) ws = i;
                nsym++;
                we = i + L;
            }
            i += L;
        }
    }
    free(esc);
    // sorted word list (deterministic order)
    wordref *wr = tern_xmalloc((words.n + 1) * sizeof(wordref));
    int nw = 0;
    for (size_t i = 0; i < words.cap; i++)
        if (words.len[i]) {
            wr[nw].off = words.off[i];
            wr[nw].len = words.len[i];
            wr[nw].count = words.v[i];
            nw++;
        }
    g_sort_arena = words.arena;
    qsort(wr, (size_t)nw, sizeof(wordref), cmp_wordref);
    int *wstart = tern_xmalloc(((size_t)nw + 1) * sizeof(int)), *wlen = tern_xmalloc(((size_t)nw + 1) * sizeof(int));
    int *wstamp = tern_xmalloc(((size_t)nw + 1) * sizeof(int));
    int64_t *wfreq = tern_xmalloc(((size_t)nw + 1) * sizeof(int64_t));
    size_t total_syms = 0;
    for (int w = 0; w < nw; w++) total_syms += wr[w].len; // upper bound
    int *syms = tern_xmalloc((total_syms + 1) * sizeof(int));
    size_t so = 0;
    for (int w = 0; w < nw; w++) {
        const uint8_t *s = words.arena + wr[w].off;
        wstart[w] = (int)so;
        wfreq[w] = wr[w].count;
        wstamp[w] = -1;
        for (uint32_t i = 0; i < wr[w].len;) {
            size_t L = LEAD_LEN[s[i] >> 4];
            syms[so++] = (int)*um_slot(&char_id, char_key(s + i, (int)L), 0) - 1;
            i += (uint32_t)L;
        }
        wlen[w] = (int)(so - (size_t)wstart[w]);
    }
    free(wr);
    sm_free(&words);
    um_free(&char_id);
    if (o->verbose)
        fprintf(stderr, "tokenizer: %.1f MB, %zu characters kept, %d distinct words (%.2f s)\n", total_bytes / 1e6,
                nchars, nw, tern_time() - t0);

    // 3. pair counts (by concatenated string) and the heap
    for (int w = 0; w < nw; w++) {
        int *s = syms + wstart[w];
        for (int i = 0; i + 1 < wlen[w]; i++) {
            int c = pair_cand_get(&B, s[i], s[i + 1]);
            B.c[c].count += wfreq[w];
            cand_add_word(&B.c[c], w);
        }
    }
    for (int c = 0; c < B.nc; c++)
        if (!B.c[c].banned) hpush(&B, B.c[c].count, c);

    // 4. merges
    int target_merges = V - TERN_TOK_FIRST_NORMAL - (int)nchars, nmerges = 0;
    int *touched = NULL, ntouched = 0, ctouched = 0;
    while (nmerges < target_merges && B.hn > 0) {
        hentry top = hpop(&B);
        cand_t *C = &B.c[top.cand];
        if (C->rank >= 0 || C->banned || top.count != C->count) continue; // stale
        if (C->count <= 0) break;
        int rank = nmerges++, cid = top.cand;
        C->rank = rank;
        {
            uint8_t tmp[2 * TERN_TOK_MAX_PIECE];
            memcpy(tmp, B.cstr.arena + C->soff, C->slen);
            add_piece_str(&B, tmp, C->slen);
        }
        ntouched = 0;
        int nwl = B.c[cid].nw;
        for (int k = 0; k < nwl; k++) {
            int w = B.c[cid].words[k];
            if (wstamp[w] == rank) continue;
            wstamp[w] = rank;
            int *s = syms + wstart[w], n = wlen[w], has = 0;
            for (int i = 0; i + 1 < n && !has; i++) has = pair_cand_lookup(&B, s[i], s[i + 1]) == cid;
            if (!has) continue;
            for (int i = 0; i + 1 < n; i++) {
                int c = pair_cand_lookup(&B, s[i], s[i + 1]);
                B.c[c].count -= wfreq[w];
                if (B.c[c].stamp != rank) {
                    B.c[c].stamp = rank;
                    if (ntouched == ctouched) {
                        ctouched = ctouched ? 2 * ctouched : 1024;
                        touched = realloc(touched, (size_t)ctouched * sizeof(int));
                        if (!touched) tern_fatal("out of memory");
                    }
                    touched[ntouched++] = c;
                }
            }
            // continue llama.cpp's algorithm on the word: highest score = lowest rank, leftmost
            for (;;) {
                int best = -1, best_rank = INT_MAX;
                for (int i = 0; i + 1 < n; i++) {
                    int c = pair_cand_lookup(&B, s[i], s[i + 1]);
                    if (c >= 0 && B.c[c].rank >= 0 && B.c[c].rank < best_rank) {
                        best_rank = B.c[c].rank;
                        best = i;
                    }
                }
                if (best < 0) break;
                s[best] = TERN_TOK_FIRST_NORMAL + (int)nchars + best_rank;
                memmove(s + best + 1, s + best + 2, (size_t)(n - best - 2) * sizeof(int));
                n--;
            }
            wlen[w] = n;
            for (int i = 0; i + 1 < n; i++) {
                int c = pair_cand_get(&B, s[i], s[i + 1]);
                B.c[c].count += wfreq[w];
                cand_add_word(&B.c[c], w);
                if (B.c[c].stamp != rank) {
                    B.c[c].stamp = rank;
                    if (ntouched == ctouched) {
                        ctouched = ctouched ? 2 * ctouched : 1024;
                        touched = realloc(touched, (size_t)ctouched * sizeof(int));
                        if (!touched) tern_fatal("out of memory");
                    }
                    touched[ntouched++] = c;
                }
            }
        }
        for (int k = 0; k < ntouched; k++) {
            cand_t *c = &B.c[touched[k]];
            if (c->rank < 0 && !c->banned && c->count > 0) hpush(&B, c->count, touched[k]);
        }
        free(B.c[cid].words); // a learned pair never occurs again
        B.c[cid].words = NULL;
        B.c[cid].nw = B.c[cid].cw = 0;
        if (o->verbose && (nmerges % 1000 == 0 || nmerges == target_merges))
            fprintf(stderr, "tokenizer: %d/%d merges (%.2f s)\n", nmerges, target_merges, tern_time() - t0);
    }
    free(touched);

    // 5. assemble: controls, bytes, characters, merges
    int NV = TERN_TOK_FIRST_NORMAL + B.npieces;
    uint8_t *types = tern_xmalloc((size_t)NV);
    float *scores = tern_xmalloc((size_t)NV * sizeof(float));
    int *plens = tern_xmalloc((size_t)NV * sizeof(int));
    char *bytes = tern_xmalloc(TERN_TOK_FIRST_NORMAL * 6 + B.pn + 16);
    size_t bo = 0;
    const char *ctl[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < NV; i++) {
        if (i < 3) {
            types[i] = i == 0 ? TERN_PIECE_UNKNOWN : TERN_PIECE_CONTROL;
            scores[i] = 0.0f;
            plens[i] = (int)strlen(ctl[i]);
            memcpy(bytes + bo, ctl[i], (size_t)plens[i]);
        } else if (i < TERN_TOK_FIRST_NORMAL) {
            char tmp[8];
            snprintf(tmp, sizeof tmp, "<0x%02X>", i - TERN_TOK_BYTE0);
            types[i] = TERN_PIECE_BYTE;
            scores[i] = 0.0f;
            plens[i] = 6;
            memcpy(bytes + bo, tmp, 6);
        } else {
            int k = i - TERN_TOK_FIRST_NORMAL, L;
            const uint8_t *s = piece_str(&B, i, &L);
            types[i] = TERN_PIECE_NORMAL;
            // merges: -(rank + 1), so earlier merges win; characters never result from a merge
            scores[i] = k < (int)nchars ? 0.0f : -(float)(k - (int)nchars + 1);
            plens[i] = L;
            memcpy(bytes + bo, s, (size_t)L);
        }
        bo += (size_t)plens[i];
    }
    int rc = tok_build(t, NV, types, scores, plens, bytes, TOK_FLAG_SPACE_PREFIX, "trained tokenizer");
    if (rc == 0 && o->verbose)
        fprintf(stderr, "tokenizer: vocab %d (%zu characters, %d merges) in %.2f s\n", NV, nchars, nmerges,
                tern_time() - t0);
    free(types);
    free(scores);
    free(plens);
    free(bytes);
    for (int c = 0; c < B.nc; c++) free(B.c[c].words);
    free(B.c);
    free(B.heap);
    free(B.pstr);
    free(B.poff);
    free(B.plen);
    um_free(&B.pair);
    sm_free(&B.cstr);
    free(wstart);
    free(wlen);
    free(wstamp);
    free(wfreq);
    free(syms);
    return rc;
}
