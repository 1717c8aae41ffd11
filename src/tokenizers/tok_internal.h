// tok_internal.h — shared internals of src/tokenizers/ (not an interface for other folders).
#ifndef TERN_TOK_INTERNAL_H
#define TERN_TOK_INTERNAL_H
#include "tokenizers/tokenizer.h"
#include <stdint.h>
#include <string.h>

struct tern_tok_priv {
    struct tok_slot { uint32_t tag; int32_t id; } *map; // open addressing: stored piece bytes -> id (-1 empty), tag = hash >> 32
    uint32_t map_cap;
    char *blob;          // piece storage
    int byte_id[256];    // llama: id of <0xHH>; gpt2: id of the byte's character piece (-1 none)
    // gpt2 kind
    uint8_t *raw;        // decoded bytes of every piece, concatenated
    uint32_t *raw_off;   // [vocab]
    uint16_t *raw_len;   // [vocab]
    int *rmap;           // decoded bytes -> id, for normal pieces written in the byte alphabet
    uint32_t rmap_cap;
    struct tok_merge { uint64_t key; int32_t rank, res; } *mtab; // (left << 32 | right) + 1 -> rank, result; key 0 empty
    uint32_t mcap;
    // added tokens, matched in the text before pre-tokenization
    int n_added;
    int *added;          // ids grouped by first byte, longest first
    int added_start[257];
    int any_user;        // some added token is matched without TERN_ENC_SPECIAL
    int no_split;        // an added token has a space or lstrip/rstrip: no split points
};

uint64_t tok_hbytes(const uint8_t *p, size_t n);

// the llama kind's escaped space: U+2581 "▁" (defined in spm.c)
extern const uint8_t tok_space_mark[3];
static inline int tok_is_mark(const uint8_t *s) { return s[0] == 0xE2 && s[1] == 0x96 && s[2] == 0x81; }

// llama.cpp's unicode_len_utf8: character length from the high nibble of the lead byte
static inline size_t tok_lead_len(uint8_t c) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

// Length of the character starting at e[i] (of m bytes), as the llama kind splits text (encoder
// and trainer alike): llama.cpp's lead-byte rule, clipped at the end and — tern's one addition,
// for losslessness — clipped before an escaped space (▁), so that invalid UTF-8 right before a
// space cannot swallow part of its ▁ (llama.cpp would, and then decode the space as the bytes of
// "▁"). Valid UTF-8 is never clipped.
static inline size_t tok_sym_len(const uint8_t *e, size_t i, size_t m) {
    size_t L = tok_lead_len(e[i]);
    if (L > m - i) L = m - i;
    for (size_t k = 1; k < L; k++)
        if (e[i + k] == 0xE2 && i + k + 2 < m && e[i + k + 1] == 0x96 && e[i + k + 2] == 0x81) return k;
    return L;
}

// growable int vector
typedef struct {
    int *a;
    size_t n, cap;
} ivec;
void iv_reserve(ivec *v, size_t extra);
static inline void iv_push(ivec *v, int x) {
    iv_reserve(v, 1);
    v->a[v->n++] = x;
}

// word cache (per thread): bytes -> ids
typedef struct {
    uint64_t h;
    uint32_t koff, voff;
    uint16_t klen, vn; // klen 0: empty slot
} centry;
#define TOK_CACHE_MAX_KEY 48
#define TOK_CACHE_MAX_CAP (1u << 18)

typedef struct {
    float score;
    int left, right, size;
} bigram;

typedef struct {
    int rank, left, right, res;
} pair_ent;

// per-thread encoder state
typedef struct {
    // spm: symbol lists and bigram heap; gpt2: symbol ids, ranks, heap
    int *start, *len, *prev, *next;
    int sym_cap;
    bigram *heap;
    int heap_n, heap_cap;
    // word cache
    centry *ce;
    uint32_t ccap, ccount;
    uint8_t *ckeys;
    size_t ckn, ckcap;
    int *cvals;
    size_t cvn, cvcap;
    // spm escape buffer
    uint8_t *esc;
    size_t esc_cap;
    // gpt2: merge candidates
    pair_ent *ph;
    size_t ph_cap;
} enc_ctx;
void ctx_free(enc_ctx *c);
void cache_reset(enc_ctx *c, uint32_t cap);
// 1 and the ids appended to out when s[0..m) is cached
int cache_get(enc_ctx *c, const uint8_t *s, size_t m, uint64_t h, ivec *out);
void cache_put(enc_ctx *c, const uint8_t *s, size_t m, uint64_t h, const int *ids, size_t vn);

// llama kind (spm.c): encode a raw text fragment (prefix: add the ▁ prefix; split: word split)
void spm_encode_fragment(const tern_tokenizer *t, enc_ctx *c, const uint8_t *raw, size_t len, int prefix, int split,
                         ivec *out);
// chunk boundaries for multi-threaded encoding: positions where a fragment may be cut
size_t spm_next_boundary(const tern_tokenizer *t, const uint8_t *s, size_t len, size_t pos);
void spm_compute_word_split(tern_tokenizer *t);

// gpt2 kind (bytelevel.c)
int bpe_build_tables(tern_tokenizer *t, const char *what); // raw pieces, byte ids, merge table
void bpe_free_tables(tern_tok_priv *p);
// encode a raw text fragment: pre-tokenize, then each word (cache: use the word cache)
void bpe_encode_fragment(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, size_t n, int cache, ivec *out);
size_t bpe_next_boundary(const uint8_t *s, size_t len, size_t pos);
// the merge rank and result of the pair (a, b): rank or -1
static inline int bpe_merge_lookup(const tern_tok_priv *p, int a, int b, int *res) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t mask = p->mcap - 1, i = (uint32_t)(h >> 32) & mask;
    for (;;) {
        const struct tok_merge *e = &p->mtab[i];
        if (e->key == key) {
            *res = e->res;
            return e->rank;
        }
        if (e->key == 0) return -1;
        i = (i + 1) & mask;
    }
}

// training (train_bytelevel.c)
int tok_train_bytelevel(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
                        const tern_tokenizer_train_opts *o);

#endif
