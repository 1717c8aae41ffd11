// bytelevel.c — the gpt2 kind's encoder: byte-level BPE as Hugging Face's BPE model and
// llama.cpp's llm_tokenizer_bpe apply it (see tokenizer.h), on raw bytes: a piece written in
// GPT-2's byte alphabet stands for the bytes its characters map to, so words are never
// converted to that alphabet. libc only.
#include "tokenizers/tok_internal.h"
#include "tokenizers/unicode.h"
#include "util.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void bpe_free_tables(tern_tok_priv *p) {
    free(p->raw);
    free(p->raw_off);
    free(p->raw_len);
    free(p->rmap);
    free(p->mtab);
    p->raw = NULL;
    p->raw_off = NULL;
    p->raw_len = NULL;
    p->rmap = NULL;
    p->mtab = NULL;
}

static int rmap_get(const tern_tokenizer *t, const uint8_t *s, size_t m) {
    const tern_tok_priv *p = t->priv;
    uint32_t mask = p->rmap_cap - 1, i = (uint32_t)tok_hbytes(s, m) & mask;
    for (;;) {
        int id = p->rmap[i];
        if (id < 0) return -1;
        if (p->raw_len[id] == m && memcmp(p->raw + p->raw_off[id], s, m) == 0) return id;
        i = (i + 1) & mask;
    }
}

int bpe_build_tables(tern_tokenizer *t, const char *what) {
    tern_tok_priv *p = t->priv;
    int V = t->vocab_size;
    // the 256 byte characters
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int L = tern_utf8_encode(tern_byte_char((uint8_t)b), u);
        int id = tern_tokenizer_piece_id(t, (const char *)u, (size_t)L);
        if (id < 0 || t->types[id] != TERN_PIECE_NORMAL) {
            tern_error("%s: the byte-level vocabulary has no normal piece \"%.*s\" for byte 0x%02X (it needs all 256)", what,
                       L, (const char *)u, b);
            return -1;
        }
        p->byte_id[b] = id;
    }
    // decoded bytes of every piece: normal pieces written in the byte alphabet map back to
    // bytes; any other piece (added tokens, pieces with characters outside the alphabet) is its
    // own text, as Hugging Face's ByteLevel decoder does
    size_t total = 0;
    for (int i = 0; i < V; i++) total += (size_t)t->piece_len[i];
    p->raw = tern_xmalloc(total + 1);
    p->raw_off = tern_xmalloc((size_t)V * sizeof(uint32_t));
    p->raw_len = tern_xmalloc((size_t)V * sizeof(uint16_t));
    uint8_t *canon = tern_xcalloc((size_t)V, 1);
    size_t off = 0;
    for (int i = 0; i < V; i++) {
        const uint8_t *s = (const uint8_t *)t->pieces[i];
        size_t n = (size_t)t->piece_len[i], o = off;
        int ok = t->types[i] == TERN_PIECE_NORMAL;
        for (size_t k = 0; k < n && ok;) {
            uint32_t cp;
            int L = tern_utf8_decode(s + k, n - k, &cp);
            int b = cp == TERN_UC_INVALID ? -1 : tern_char_byte(cp);
            if (b < 0) ok = 0;
            else p->raw[o++] = (uint8_t)b;
            k += (size_t)L;
        }
        if (!ok) {
            memcpy(p->raw + off, s, n);
            o = off + n;
        }
        canon[i] = (uint8_t)ok;
        p->raw_off[i] = (uint32_t)off;
        p->raw_len[i] = (uint16_t)(o - off);
        off = o;
    }
    p->rmap_cap = 1024;
    while (p->rmap_cap < 2u * (uint32_t)V) p->rmap_cap *= 2;
    p->rmap = tern_xmalloc((size_t)p->rmap_cap * sizeof(int));
    memset(p->rmap, 0xff, (size_t)p->rmap_cap * sizeof(int));
    for (int i = 0; i < V; i++) {
        if (!canon[i]) continue;
        uint32_t mask = p->rmap_cap - 1;
        uint32_t k = (uint32_t)tok_hbytes(p->raw + p->raw_off[i], p->raw_len[i]) & mask;
        while (p->rmap[k] >= 0) k = (k + 1) & mask; // distinct: equal bytes would be equal pieces
        p->rmap[k] = i;
    }
    free(canon);
    // merges: (left, right) -> rank, result
    p->mcap = 1024;
    while (p->mcap < 2u * (uint32_t)t->n_merges) p->mcap *= 2;
    p->mtab = tern_xcalloc(p->mcap, sizeof *p->mtab);
    char *cat = tern_xmalloc(2 * TERN_TOK_MAX_PIECE + 1);
    for (int r = 0; r < t->n_merges; r++) {
        int a = t->merges[2 * r], b = t->merges[2 * r + 1];
        size_t la = (size_t)t->piece_len[a], lb = (size_t)t->piece_len[b];
        memcpy(cat, t->pieces[a], la);
        memcpy(cat + la, t->pieces[b], lb);
        int res = la + lb <= TERN_TOK_MAX_PIECE ? tern_tokenizer_piece_id(t, cat, la + lb) : -1;
        if (res < 0) {
            tern_error("%s: merge %d (\"%s\" \"%s\"): their concatenation is not a piece", what, r, t->pieces[a], t->pieces[b]);
            free(cat);
            return -1;
        }
        uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        uint64_t h = key * 0x9E3779B97F4A7C15ull;
        uint32_t mask = p->mcap - 1, i = (uint32_t)(h >> 32) & mask;
        while (p->mtab[i].key && p->mtab[i].key != key) i = (i + 1) & mask;
        if (p->mtab[i].key) {
            tern_error("%s: merge %d (\"%s\" \"%s\") repeats merge %d", what, r, t->pieces[a], t->pieces[b], p->mtab[i].rank);
            free(cat);
            return -1;
        }
        p->mtab[i] = (struct tok_merge){key, r, res};
    }
    free(cat);
    return 0;
}

// ------------------------------------------------------------------------------------------
// one word

static inline int pe_better(const pair_ent *a, const pair_ent *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void ph_push(enc_ctx *c, size_t *hn, pair_ent e) {
    if (*hn == c->ph_cap) {
        c->ph_cap = c->ph_cap ? 2 * c->ph_cap : 256;
        c->ph = realloc(c->ph, c->ph_cap * sizeof(pair_ent));
        if (!c->ph) tern_fatal("out of memory (tokenizer heap)");
    }
    pair_ent *h = c->ph;
    size_t k = (*hn)++;
    while (k > 0 && pe_better(&e, &h[(k - 1) / 2])) {
        h[k] = h[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    h[k] = e;
}

static pair_ent ph_pop(enc_ctx *c, size_t *hn) {
    pair_ent *h = c->ph, top = h[0], last = h[--*hn];
    size_t k = 0, n = *hn;
    for (;;) {
        size_t l = 2 * k + 1, r = l + 1, b = k;
        const pair_ent *best = &last;
        if (l < n && pe_better(&h[l], best)) { b = l; best = &h[l]; }
        if (r < n && pe_better(&h[r], best)) b = r;
        if (b == k) break;
        h[k] = h[b];
        k = b;
    }
    if (n > 0) h[k] = last;
    return top;
}

// The merge loop of Hugging Face's BPE model (Word::merge_all) and llama.cpp: symbols in a
// linked list, candidate pairs in a heap ordered by (rank, left position). A popped candidate
// applies if its left symbol still has a right neighbour and that pair still merges into the
// candidate's result (both implementations test it so: HF compares the new id, llama.cpp the
// concatenated text) — not necessarily the same pair, when two merges give the same piece.
static void merge_word(const tern_tok_priv *p, enc_ctx *c, const uint8_t *s, size_t m, ivec *out) {
    if (m > (size_t)INT_MAX / 2) tern_fatal("word too long (%zu bytes)", m);
    int n = (int)m;
    if (n > c->sym_cap) {
        int cap = c->sym_cap ? c->sym_cap : 64;
        while (cap < n) cap *= 2;
        free(c->start); free(c->len); free(c->prev); free(c->next);
        c->start = tern_xmalloc((size_t)cap * sizeof(int)); // symbol ids
        c->len = tern_xmalloc((size_t)cap * sizeof(int));   // alive
        c->prev = tern_xmalloc((size_t)cap * sizeof(int));
        c->next = tern_xmalloc((size_t)cap * sizeof(int));
        c->sym_cap = cap;
    }
    int *id = c->start, *alive = c->len, *prev = c->prev, *next = c->next;
    for (int i = 0; i < n; i++) {
        id[i] = p->byte_id[s[i]];
        alive[i] = 1;
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
    }
    size_t hn = 0;
    for (int i = 0; i + 1 < n; i++) {
        int res, rk = bpe_merge_lookup(p, id[i], id[i + 1], &res);
        if (rk >= 0) ph_push(c, &hn, (pair_ent){rk, i, i + 1, res});
    }
    while (hn > 0) {
        pair_ent e = ph_pop(c, &hn);
        int L = e.left, R = next[L], res;
        if (!alive[L] || R < 0 || bpe_merge_lookup(p, id[L], id[R], &res) < 0 || res != e.res) continue;
        id[L] = res;
        alive[R] = 0;
        next[L] = next[R];
        if (next[R] >= 0) prev[next[R]] = L;
        int rk;
        if (prev[L] >= 0 && (rk = bpe_merge_lookup(p, id[prev[L]], id[L], &res)) >= 0)
            ph_push(c, &hn, (pair_ent){rk, prev[L], L, res});
        if (next[L] >= 0 && (rk = bpe_merge_lookup(p, id[L], id[next[L]], &res)) >= 0)
            ph_push(c, &hn, (pair_ent){rk, L, next[L], res});
    }
    iv_reserve(out, (size_t)n);
    for (int i = 0; i != -1; i = next[i]) out->a[out->n++] = id[i];
}

// a word s[0..m), m >= 1
static void bpe_word(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, size_t m, ivec *out) {
    const tern_tok_priv *p = t->priv;
    if (t->ignore_merges) {
        int id = m <= TERN_TOK_MAX_PIECE ? rmap_get(t, s, m) : -1;
        if (id >= 0) {
            iv_push(out, id);
            return;
        }
    }
    merge_word(p, c, s, m, out);
}

void bpe_encode_fragment(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, size_t n, int cache, ivec *out) {
    const tern_tok_priv *p = t->priv;
    tern_pre_iter it;
    tern_pre_iter_init(&it, t->pre, s, n);
    size_t a, b;
    while (tern_pre_iter_next(&it, &a, &b)) {
        size_t m = b - a;
        if (m == 1) {
            iv_push(out, p->byte_id[s[a]]);
            continue;
        }
        if (!cache || m > TOK_CACHE_MAX_KEY) {
            bpe_word(t, c, s + a, m, out);
            continue;
        }
        uint64_t h = tok_hbytes(s + a, m);
        if (cache_get(c, s + a, m, h, out)) continue;
        size_t n0 = out->n;
        bpe_word(t, c, s + a, m, out);
        cache_put(c, s + a, m, h, out->a + n0, out->n - n0);
    }
}

static inline int ascii_letter(uint8_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

// A space between two ASCII letters: every family's regex ends a match at the space (the letter
// run before it ends there) and starts the next one fresh, so the text can be cut there.
size_t bpe_next_boundary(const uint8_t *s, size_t len, size_t pos) {
    if (pos < 1) pos = 1;
    for (size_t p = pos; p + 1 < len; p++)
        if (s[p] == ' ' && ascii_letter(s[p - 1]) && ascii_letter(s[p + 1])) return p;
    return len;
}
