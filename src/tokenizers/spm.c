// spm.c — the llama kind's encoder: llama.cpp's SentencePiece-style BPE (see tokenizer.h), with
// the word split, word cache and chunk boundaries that make it fast. libc only.
#include "tokenizers/tok_internal.h"
#include "util.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const uint8_t tok_space_mark[3] = {0xE2, 0x96, 0x81}; // U+2581 "▁"

void spm_compute_word_split(tern_tokenizer *t) {
    t->word_split = 1;
    for (int i = 0; i < t->vocab_size; i++) {
        int len = t->piece_len[i];
        const char *p = t->pieces[i];
        if (len > 1 && (memchr(p, '\n', (size_t)len) || memmem(p + 1, (size_t)len - 1, tok_space_mark, 3))) t->word_split = 0;
    }
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
        size_t L = tok_sym_len(s, off, m);
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
            for (int k = 0; k < c->len[i]; k++) out->a[out->n++] = t->priv->byte_id[s[c->start[i] + k]];
    }
}

// one word through the cache
static void encode_word(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, size_t m, ivec *out) {
    if (m == 1) { // fast path for single bytes ('\n', lone letters)
        int id = tern_tokenizer_piece_id(t, (const char *)s, 1);
        iv_push(out, id >= 0 ? id : t->priv->byte_id[s[0]]);
        return;
    }
    if (m > TOK_CACHE_MAX_KEY) {
        encode_exact(t, c, s, m, out);
        return;
    }
    uint64_t h = tok_hbytes(s, m);
    if (cache_get(c, s, m, h, out)) return;
    size_t n0 = out->n;
    encode_exact(t, c, s, m, out);
    cache_put(c, s, m, h, out->a + n0, out->n - n0);
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
        memcpy(e, tok_space_mark, 3);
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
        size_t L = tok_sym_len(e, i, m);
        if (L == 3 && tok_is_mark(e + i)) {
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
        const uint8_t *q = memmem(p, (size_t)(end - p), tok_space_mark, 3);
        if (!q) {
            encode_part(t, c, p, (size_t)(end - p), prefix, split, out);
            return;
        }
        encode_part(t, c, p, (size_t)(q - p), prefix, split, out);
        for (int k = 0; k < 3; k++) iv_push(out, t->priv->byte_id[tok_space_mark[k]]);
        prefix = 0;
        p = q + 3;
    }
}

void spm_encode_fragment(const tern_tokenizer *t, enc_ctx *c, const uint8_t *raw, size_t len, int prefix, int split,
                         ivec *out) {
    encode_chunk(t, c, raw, len, prefix, split, out);
}

// A space whose three preceding bytes are ASCII always starts a ▁ symbol that begins a word,
// whatever came before, so the text can be cut there (vocabularies with the word split only).
size_t spm_next_boundary(const tern_tokenizer *t, const uint8_t *s, size_t len, size_t pos) {
    if (!t->word_split) return len;
    if (pos < 3) pos = 3;
    for (size_t p = pos; p < len; p++)
        if (s[p] == ' ' && s[p - 1] < 0x80 && s[p - 2] < 0x80 && s[p - 3] < 0x80) return p;
    return len;
}
