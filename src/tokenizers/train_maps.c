// train_maps.c — the tokenizer trainers' hash maps (see train_maps.h). libc only.
#include "tokenizers/train_maps.h"
#include "tokenizers/tok_internal.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

void tok_u64map_init(tok_u64map *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->k = tern_xcalloc(cap, sizeof(uint64_t));
    m->v = tern_xcalloc(cap, sizeof(int64_t));
}

void tok_u64map_free(tok_u64map *m) {
    free(m->k);
    free(m->v);
}

static void u64map_grow(tok_u64map *m) {
    tok_u64map o = *m;
    tok_u64map_init(m, o.cap * 2);
    for (size_t i = 0; i < o.cap; i++)
        if (o.k[i]) *tok_u64map_slot(m, o.k[i], 1, 0) = o.v[i];
    tok_u64map_free(&o);
}

int64_t *tok_u64map_slot(tok_u64map *m, uint64_t key, int create, int64_t init) {
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->k[i]) {
        if (m->k[i] == key) return &m->v[i];
        i = (i + 1) & mask;
    }
    if (!create) return NULL;
    if (2 * (m->n + 1) > m->cap) {
        u64map_grow(m);
        return tok_u64map_slot(m, key, 1, init);
    }
    m->k[i] = key;
    m->v[i] = init;
    m->n++;
    return &m->v[i];
}

void tok_strmap_init(tok_strmap *m, size_t cap) {
    memset(m, 0, sizeof *m);
    m->cap = cap;
    m->h = tern_xcalloc(cap, sizeof(uint64_t));
    m->off = tern_xcalloc(cap, sizeof(uint32_t));
    m->len = tern_xcalloc(cap, sizeof(uint32_t));
    m->v = tern_xcalloc(cap, sizeof(int64_t));
}

void tok_strmap_free(tok_strmap *m) {
    free(m->h);
    free(m->off);
    free(m->len);
    free(m->v);
    free(m->arena);
}

// doubles the slots; the arena (and every key's off) stays as it is
static void strmap_grow(tok_strmap *m) {
    tok_strmap o = *m;
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

int64_t *tok_strmap_slot(tok_strmap *m, const uint8_t *s, size_t len, int create, int64_t init) {
    uint64_t h = tok_hbytes(s, len);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->len[i]) {
        if (m->h[i] == h && m->len[i] == len && memcmp(m->arena + m->off[i], s, len) == 0) return &m->v[i];
        i = (i + 1) & mask;
    }
    if (!create) return NULL;
    if (2 * (m->n + 1) > m->cap) {
        strmap_grow(m);
        return tok_strmap_slot(m, s, len, 1, init);
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
