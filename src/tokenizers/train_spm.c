// train_spm.c — training: the dispatch for both kinds, and the llama kind's trainer (see
// tokenizer.h and docs/DATA.md). libc only.
#include "tokenizers/tok_internal.h"
#include "tokenizers/train_maps.h"
#include "util.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void tern_tokenizer_train_defaults(tern_tokenizer_train_opts *o) {
    o->vocab_size = 4096;
    o->char_coverage = 0.9995;
    o->max_word_chars = 64;
    o->verbose = 0;
    o->kind = TERN_TOK_LLAMA;
    o->pre = TERN_PRE_LLAMA3;
    o->nfc = 0;
}

static int train_spm(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
                     const tern_tokenizer_train_opts *o);

int tern_tokenizer_train(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
                         const tern_tokenizer_train_opts *o) {
    if (o->kind == TERN_TOK_GPT2) return tok_train_bytelevel(t, texts, lens, n_texts, o);
    if (o->nfc) {
        tern_error("NFC normalization is for byte-level tokenizers only");
        return -1;
    }
    return train_spm(t, texts, lens, n_texts, o);
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

// escape spaces to ▁ and prepend one ▁; returns the length (buffer: 3*len+3)
static size_t escape_text(const uint8_t *raw, size_t len, uint8_t *e) {
    size_t m = 0;
    memcpy(e, tok_space_mark, 3);
    m = 3;
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            memcpy(e + m, tok_space_mark, 3);
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
    tok_u64map pair;  // (a << 32 | b) + 1 -> cand id
    tok_strmap cstr;  // concatenated string -> cand id
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
    int64_t *v = tok_u64map_slot(&b->pair, (((uint64_t)x << 32) | (uint32_t)y) + 1, 1, 0);
    if (*v) return (int)*v - 1; // stored +1 so that 0 means new
    int lx, ly;
    const uint8_t *sx = piece_str(b, x, &lx);
    const uint8_t *sy = piece_str(b, y, &ly);
    uint8_t tmp[2 * TERN_TOK_MAX_PIECE];
    memcpy(tmp, sx, (size_t)lx);
    memcpy(tmp + lx, sy, (size_t)ly);
    int len = lx + ly;
    int64_t *cv = tok_strmap_slot(&b->cstr, tmp, (size_t)len, 1, -1);
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
    // re-fetch: the cstr insertion cannot have moved v (different map), but the pair map may have grown since
    v = tok_u64map_slot(&b->pair, (((uint64_t)x << 32) | (uint32_t)y) + 1, 0, 0);
    *v = *cv + 1;
    return (int)*cv;
}

static inline int pair_cand_lookup(bpe_state *b, int x, int y) {
    int64_t *v = tok_u64map_slot(&b->pair, (((uint64_t)x << 32) | (uint32_t)y) + 1, 0, 0);
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

static int train_spm(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
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
    tok_u64map chars;
    tok_u64map_init(&chars, 1024);
    for (int ti = 0; ti < n_texts; ti++) {
        if (lens[ti] == 0) continue;
        size_t m = escape_text((const uint8_t *)texts[ti], lens[ti], esc);
        for (size_t i = 0; i < m;) {
            size_t L = tok_sym_len(esc, i, m);
            if (valid_char(esc + i, (int)L) && esc[i] != 0) (*tok_u64map_slot(&chars, char_key(esc + i, (int)L), 1, 0))++;
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
    uint64_t mark_key = char_key(tok_space_mark, 3);
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
    tok_u64map_free(&chars);

    bpe_state B;
    memset(&B, 0, sizeof B);
    tok_u64map_init(&B.pair, 1 << 16);
    tok_strmap_init(&B.cstr, 1 << 16);
    tok_u64map char_id;
    tok_u64map_init(&char_id, 1024);
    for (size_t i = 0; i < nchars; i++) {
        uint8_t s[4];
        int L = (int)(cr[i].key >> 32);
        for (int k = 0; k < L; k++) s[k] = (uint8_t)(cr[i].key >> (8 * k));
        *tok_u64map_slot(&char_id, cr[i].key, 1, 0) = TERN_TOK_FIRST_NORMAL + (int64_t)i + 1; // +1: 0 means absent
        add_piece_str(&B, s, L);
    }
    free(cr);

    // 2. words: runs of mergeable characters, a ▁ starting a new one
    tok_strmap words;
    tok_strmap_init(&words, 1 << 16);
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
                L = tok_sym_len(esc, i, m);
                int64_t *id = valid_char(esc + i, (int)L) ? tok_u64map_slot(&char_id, char_key(esc + i, (int)L), 0, 0) : NULL;
                mergeable = id && *id && !(L == 1 && (esc[i] < 0x20 || esc[i] == 0x7f));
                mark = L == 3 && tok_is_mark(esc + i);
            }
            if (!mergeable || mark) { // end the current word
                if (nsym >= 2 && nsym <= maxw) (*tok_strmap_slot(&words, esc + ws, we - ws, 1, 0))++;
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
            size_t L = tok_lead_len(s[i]);
            syms[so++] = (int)*tok_u64map_slot(&char_id, char_key(s + i, (int)L), 0, 0) - 1;
            i += (uint32_t)L;
        }
        wlen[w] = (int)(so - (size_t)wstart[w]);
    }
    free(wr);
    tok_strmap_free(&words);
    tok_u64map_free(&char_id);
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
    ivec touched = {0}; // candidates whose count changed in this merge
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
        touched.n = 0;
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
                    iv_push(&touched, c);
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
                    iv_push(&touched, c);
                }
            }
        }
        for (size_t k = 0; k < touched.n; k++) {
            cand_t *c = &B.c[touched.a[k]];
            if (c->rank < 0 && !c->banned && c->count > 0) hpush(&B, c->count, touched.a[k]);
        }
        free(B.c[cid].words); // a learned pair never occurs again
        B.c[cid].words = NULL;
        B.c[cid].nw = B.c[cid].cw = 0;
        if (o->verbose && (nmerges % 1000 == 0 || nmerges == target_merges))
            fprintf(stderr, "tokenizer: %d/%d merges (%.2f s)\n", nmerges, target_merges, tern_time() - t0);
    }
    free(touched.a);

    // 5. assemble: controls, bytes, characters, merges
    int NV = TERN_TOK_FIRST_NORMAL + B.npieces;
    int *types = tern_xmalloc((size_t)NV * sizeof(int));
    float *scores = tern_xmalloc((size_t)NV * sizeof(float));
    int *plens = tern_xmalloc((size_t)NV * sizeof(int));
    const char **pieces = tern_xmalloc((size_t)NV * sizeof(char *));
    char *bytes = tern_xmalloc(TERN_TOK_FIRST_NORMAL * 7 + B.pn + 16);
    size_t bo = 0;
    const char *ctl[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < NV; i++) {
        pieces[i] = bytes + bo;
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
    tern_tokenizer_spec spec = {.kind = TERN_TOK_LLAMA, .vocab_size = NV, .pieces = pieces, .piece_len = plens,
                                .scores = scores, .types = types, .bos_id = TERN_TOK_BOS, .eos_id = TERN_TOK_EOS,
                                .unk_id = TERN_TOK_UNK, .add_bos = 1, .add_space_prefix = 1};
    int rc = tern_tokenizer_build(t, &spec, "trained tokenizer");
    if (rc == 0 && o->verbose)
        fprintf(stderr, "tokenizer: vocab %d (%zu characters, %d merges) in %.2f s\n", NV, nchars, nmerges,
                tern_time() - t0);
    free(types);
    free(scores);
    free(plens);
    free(pieces);
    free(bytes);
    for (int c = 0; c < B.nc; c++) free(B.c[c].words);
    free(B.c);
    free(B.heap);
    free(B.pstr);
    free(B.poff);
    free(B.plen);
    tok_u64map_free(&B.pair);
    tok_strmap_free(&B.cstr);
    free(wstart);
    free(wlen);
    free(wstamp);
    free(wfreq);
    free(syms);
    return rc;
}
