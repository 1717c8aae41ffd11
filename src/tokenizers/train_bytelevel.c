// train_bytelevel.c — training a byte-level BPE (the gpt2 kind): the family's pre-tokenizer
// splits the texts into words (the family's special-token strings are cut out first and never
// learned), words are counted, and merges are learned by pair counts with incremental updates,
// each merge replacing the pair left to right in every word that has it (as Hugging Face's
// BpeTrainer). Deterministic: ties between equal counts go to the bytewise smaller merged
// string, then the smaller left id. A pair whose merged string is already a piece is never
// learned (each piece results from one merge only), nor one longer than a piece may be. With
// nfc, the texts are normalized to NFC first, as the tokenizer will normalize what it encodes.
// libc only.
#include "tokenizers/tok_internal.h"
#include "tokenizers/nfc.h"
#include "tokenizers/train_maps.h"
#include "tokenizers/unicode.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SP_GPT2[] = {"<|endoftext|>"};
static const char *const SP_LLAMA3[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                        "<|end_header_id|>", "<|eot_id|>"};
static const char *const SP_CHATML[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

void tern_tokenizer_family_specials(int pre, tern_tokenizer_specials *s) {
    switch (pre) {
    case TERN_PRE_LLAMA3: *s = (tern_tokenizer_specials){5, SP_LLAMA3, 0, 1, 1}; break;
    case TERN_PRE_SMOLLM:
    case TERN_PRE_QWEN2: *s = (tern_tokenizer_specials){3, SP_CHATML, 0, 0, 0}; break;
    default: *s = (tern_tokenizer_specials){1, SP_GPT2, 0, 0, 0}; break;
    }
}

// ------------------------------------------------------------------------------------------

typedef struct {
    int a, b;
    int64_t count;
    int stamp;      // last merge that touched it
    int done;       // merged or banned
    int *words;     // words that had the pair at some point (may be stale)
    int nw, cw;
} pair_t;

typedef struct {
    // pieces (raw bytes), by id: 0..255 bytes (in layout order), then merges
    uint8_t *raw;
    size_t rn, rcap;
    size_t *roff;
    int *rlen;
    int npieces, pcap;
    int *mlen;          // mapped (byte alphabet) length of each piece
    tok_strmap pieces_set; // raw bytes of every piece (to ban pairs that would repeat one)
    pair_t *p;
    int np, pc;
    tok_u64map pm;      // (a << 32 | b) + 1 -> pair index (-1 new)
    struct hent { int64_t count; int pair; } *heap;
    size_t hn, hcap;
} bstate;

static void add_piece(bstate *B, const uint8_t *s, int len, int mlen) {
    if (B->npieces == B->pcap) {
        B->pcap = B->pcap ? 2 * B->pcap : 1024;
        B->roff = realloc(B->roff, (size_t)B->pcap * sizeof(size_t));
        B->rlen = realloc(B->rlen, (size_t)B->pcap * sizeof(int));
        B->mlen = realloc(B->mlen, (size_t)B->pcap * sizeof(int));
        if (!B->roff || !B->rlen || !B->mlen) tern_fatal("out of memory (tokenizer training)");
    }
    if (B->rn + (size_t)len > B->rcap) {
        B->rcap = B->rcap ? 2 * B->rcap : 1 << 16;
        while (B->rcap < B->rn + (size_t)len) B->rcap *= 2;
        B->raw = realloc(B->raw, B->rcap);
        if (!B->raw) tern_fatal("out of memory (tokenizer training)");
    }
    memcpy(B->raw + B->rn, s, (size_t)len);
    B->roff[B->npieces] = B->rn;
    B->rlen[B->npieces] = len;
    B->mlen[B->npieces] = mlen;
    B->rn += (size_t)len;
    B->npieces++;
    *tok_strmap_slot(&B->pieces_set, s, (size_t)len, 1, 0) += 1;
}

static int piece_exists(bstate *B, const uint8_t *s, size_t len) {
    return tok_strmap_slot(&B->pieces_set, s, len, 0, 0) != NULL;
}

// heap order: higher count, then the bytewise smaller merged string, then the smaller left id
static int hbetter(const bstate *B, const struct hent *x, const struct hent *y) {
    if (x->count != y->count) return x->count > y->count;
    const pair_t *px = &B->p[x->pair], *py = &B->p[y->pair];
    const uint8_t *sa[2] = {B->raw + B->roff[px->a], B->raw + B->roff[px->b]};
    const uint8_t *sb[2] = {B->raw + B->roff[py->a], B->raw + B->roff[py->b]};
    int la[2] = {B->rlen[px->a], B->rlen[px->b]}, lb[2] = {B->rlen[py->a], B->rlen[py->b]};
    int na = la[0] + la[1], nb = lb[0] + lb[1];
    for (int i = 0; i < na && i < nb; i++) {
        uint8_t ca = i < la[0] ? sa[0][i] : sa[1][i - la[0]];
        uint8_t cb = i < lb[0] ? sb[0][i] : sb[1][i - lb[0]];
        if (ca != cb) return ca < cb;
    }
    if (na != nb) return na < nb;
    return px->a < py->a;
}

static void hpush(bstate *B, int64_t count, int pair) {
    if (B->hn == B->hcap) {
        B->hcap = B->hcap ? 2 * B->hcap : 4096;
        B->heap = realloc(B->heap, B->hcap * sizeof(struct hent));
        if (!B->heap) tern_fatal("out of memory (tokenizer training)");
    }
    struct hent e = {count, pair};
    size_t i = B->hn++;
    while (i > 0) {
        size_t q = (i - 1) / 2;
        if (!hbetter(B, &e, &B->heap[q])) break;
        B->heap[i] = B->heap[q];
        i = q;
    }
    B->heap[i] = e;
}

static struct hent hpop(bstate *B) {
    struct hent top = B->heap[0], last = B->heap[--B->hn];
    size_t i = 0, n = B->hn;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct hent *best = &last;
        if (l < n && hbetter(B, &B->heap[l], best)) { m = l; best = &B->heap[l]; }
        if (r < n && hbetter(B, &B->heap[r], best)) m = r;
        if (m == i) break;
        B->heap[i] = B->heap[m];
        i = m;
    }
    if (n > 0) B->heap[i] = last;
    return top;
}

static int pair_get(bstate *B, int a, int b) {
    int64_t *v = tok_u64map_slot(&B->pm, (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1, 1, -1);
    if (*v >= 0) return (int)*v;
    if (B->np == B->pc) {
        B->pc = B->pc ? 2 * B->pc : 4096;
        B->p = realloc(B->p, (size_t)B->pc * sizeof(pair_t));
        if (!B->p) tern_fatal("out of memory (tokenizer training)");
    }
    pair_t *q = &B->p[B->np];
    memset(q, 0, sizeof *q);
    q->a = a;
    q->b = b;
    q->stamp = -1;
    *v = B->np;
    return B->np++;
}

static void pair_add_word(pair_t *q, int w) {
    if (q->nw > 0 && q->words[q->nw - 1] == w) return;
    if (q->nw == q->cw) {
        q->cw = q->cw ? 2 * q->cw : 4;
        q->words = realloc(q->words, (size_t)q->cw * sizeof(int));
        if (!q->words) tern_fatal("out of memory (tokenizer training)");
    }
    q->words[q->nw++] = w;
}

typedef struct {
    uint32_t off, len;
    int64_t count;
} wref;

static const uint8_t *g_arena; // qsort context (training runs one at a time per process)
static int cmp_wref(const void *x, const void *y) {
    const wref *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    int r = memcmp(g_arena + a->off, g_arena + b->off, n);
    if (r) return r;
    return (a->len > b->len) - (a->len < b->len);
}

int tok_train_bytelevel(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
                        const tern_tokenizer_train_opts *o) {
    memset(t, 0, sizeof *t);
    int pre = o->pre;
    if (pre <= TERN_PRE_NONE || pre >= TERN_PRE_COUNT) {
        tern_error("unknown pre-tokenizer %d (known: %s)", pre, tern_pre_names());
        return -1;
    }
    tern_tokenizer_specials sp;
    tern_tokenizer_family_specials(pre, &sp);
    int V = o->vocab_size, min_v = 256 + sp.n;
    if (V < min_v || V > TERN_TOK_MAX_VOCAB) {
        tern_error("vocab size %d out of range for a byte-level tokenizer (minimum %d = 256 byte pieces + %d special "
                   "tokens; maximum %d)",
                   V, min_v, sp.n, TERN_TOK_MAX_VOCAB);
        return -1;
    }
    size_t total_bytes = 0;
    for (int i = 0; i < n_texts; i++) total_bytes += lens[i];
    if (total_bytes == 0) {
        tern_error("no text to train on (empty input)");
        return -1;
    }
    double t0 = tern_time();
    int maxw = o->max_word_chars > 1 ? o->max_word_chars : 2;

    // 1. words
    tok_strmap words;
    tok_strmap_init(&words, 1 << 16);
    for (int ti = 0; ti < n_texts; ti++) {
        const uint8_t *s = (const uint8_t *)texts[ti];
        size_t n = lens[ti], a = 0;
        uint8_t *norm = NULL;
        if (o->nfc && tern_nfc_may_change(s, n)) s = norm = tern_nfc(s, n, &n); // as encoding will see it
        while (a < n) { // cut out the special-token strings
            size_t b = n, skip = 0;
            for (size_t i = a; i < n && b == n; i++) {
                if (s[i] != '<') continue;
                for (int k = 0; k < sp.n; k++) {
                    size_t L = strlen(sp.tokens[k]);
                    if (L <= n - i && !memcmp(s + i, sp.tokens[k], L)) {
                        b = i;
                        skip = L;
                        break;
                    }
                }
            }
            tern_pre_iter it;
            tern_pre_iter_init(&it, pre, s + a, b - a);
            size_t wa, wb;
            while (tern_pre_iter_next(&it, &wa, &wb))
                if (wb - wa >= 2 && wb - wa <= (size_t)maxw) *tok_strmap_slot(&words, s + a + wa, wb - wa, 1, 0) += 1;
            a = b + skip;
        }
        free(norm);
    }
    wref *wr = tern_xmalloc((words.n + 1) * sizeof(wref));
    int nw = 0;
    for (size_t i = 0; i < words.cap; i++)
        if (words.len[i]) wr[nw++] = (wref){words.off[i], words.len[i], words.v[i]};
    g_arena = words.arena;
    qsort(wr, (size_t)nw, sizeof(wref), cmp_wref);

    // 2. pieces 0..255: the bytes in GPT-2's order (by their character)
    bstate B;
    memset(&B, 0, sizeof B);
    tok_strmap_init(&B.pieces_set, 1 << 12);
    tok_u64map_init(&B.pm, 1 << 16);
    int id_of_byte[256], nb = 0;
    for (uint32_t cp = 0; cp < 0x200; cp++) {
        int b = tern_char_byte(cp);
        if (b < 0) continue;
        uint8_t c = (uint8_t)b;
        id_of_byte[b] = nb++;
        add_piece(&B, &c, 1, cp < 0x80 ? 1 : 2);
    }
    size_t total_syms = 0;
    for (int w = 0; w < nw; w++) total_syms += wr[w].len;
    int *syms = tern_xmalloc((total_syms + 1) * sizeof(int));
    int *wstart = tern_xmalloc(((size_t)nw + 1) * sizeof(int)), *wlen = tern_xmalloc(((size_t)nw + 1) * sizeof(int));
    int *wstamp = tern_xmalloc(((size_t)nw + 1) * sizeof(int));
    int64_t *wfreq = tern_xmalloc(((size_t)nw + 1) * sizeof(int64_t));
    size_t so = 0;
    for (int w = 0; w < nw; w++) {
        wstart[w] = (int)so;
        wlen[w] = (int)wr[w].len;
        wfreq[w] = wr[w].count;
        wstamp[w] = -1;
        for (uint32_t i = 0; i < wr[w].len; i++) syms[so++] = id_of_byte[words.arena[wr[w].off + i]];
    }
    free(wr);
    tok_strmap_free(&words);
    if (o->verbose)
        fprintf(stderr, "tokenizer: %.1f MB, %d distinct words, pre-tokenizer %s (%.2f s)\n", total_bytes / 1e6, nw,
                tern_pre_name(pre), tern_time() - t0);

    // 3. pair counts and the heap
    for (int w = 0; w < nw; w++) {
        int *s = syms + wstart[w];
        for (int i = 0; i + 1 < wlen[w]; i++) {
            int q = pair_get(&B, s[i], s[i + 1]);
            B.p[q].count += wfreq[w];
            pair_add_word(&B.p[q], w);
        }
    }
    for (int q = 0; q < B.np; q++) hpush(&B, B.p[q].count, q);

    // 4. merges
    int target = V - 256 - sp.n, nm = 0;
    int32_t *merges = tern_xmalloc(((size_t)2 * (size_t)target + 2) * sizeof(int32_t));
    ivec touched = {0}; // pairs whose count changed in this merge
    uint8_t *cat = tern_xmalloc(2 * TERN_TOK_MAX_PIECE + 2);
    while (nm < target && B.hn > 0) {
        struct hent top = hpop(&B);
        pair_t *P = &B.p[top.pair];
        if (P->done || top.count != P->count) continue; // stale
        if (P->count <= 0) break;
        int a = P->a, b = P->b, la = B.rlen[a], lb = B.rlen[b];
        int mlen = B.mlen[a] + B.mlen[b];
        memcpy(cat, B.raw + B.roff[a], (size_t)la);
        memcpy(cat + la, B.raw + B.roff[b], (size_t)lb);
        int banned = mlen > TERN_TOK_MAX_PIECE || piece_exists(&B, cat, (size_t)(la + lb));
        for (int k = 0; k < sp.n && !banned; k++)
            banned = (size_t)mlen == strlen(sp.tokens[k]) && (size_t)(la + lb) == strlen(sp.tokens[k]) &&
                     !memcmp(cat, sp.tokens[k], (size_t)mlen);
        if (banned) {
            P->done = 1;
            continue;
        }
        int rank = nm++, nid = B.npieces;
        P->done = 1;
        merges[2 * rank] = a;
        merges[2 * rank + 1] = b;
        add_piece(&B, cat, la + lb, mlen);
        P = &B.p[top.pair];
        touched.n = 0;
        for (int k = 0; k < B.p[top.pair].nw; k++) {
            int w = B.p[top.pair].words[k];
            if (wstamp[w] == rank) continue;
            wstamp[w] = rank;
            int *s = syms + wstart[w], n = wlen[w], has = 0;
            for (int i = 0; i + 1 < n && !has; i++) has = s[i] == a && s[i + 1] == b;
            if (!has) continue;
            for (int pass = 0; pass < 2; pass++) {
                if (pass == 1) { // rewrite: (a, b) -> nid, left to right
                    int o2 = 0;
                    for (int i = 0; i < n;) {
                        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                            s[o2++] = nid;
                            i += 2;
                        } else {
                            s[o2++] = s[i++];
                        }
                    }
                    n = wlen[w] = o2;
                }
                for (int i = 0; i + 1 < n; i++) {
                    int q = pair_get(&B, s[i], s[i + 1]);
                    B.p[q].count += pass ? wfreq[w] : -wfreq[w];
                    if (pass) pair_add_word(&B.p[q], w);
                    if (B.p[q].stamp != rank) {
                        B.p[q].stamp = rank;
                        iv_push(&touched, q);
                    }
                }
            }
        }
        for (size_t k = 0; k < touched.n; k++) {
            pair_t *q = &B.p[touched.a[k]];
            if (!q->done && q->count > 0) hpush(&B, q->count, touched.a[k]);
        }
        free(B.p[top.pair].words); // a merged pair never occurs again
        B.p[top.pair].words = NULL;
        B.p[top.pair].nw = B.p[top.pair].cw = 0;
        if (o->verbose && (nm % 1000 == 0 || nm == target))
            fprintf(stderr, "tokenizer: %d/%d merges (%.2f s)\n", nm, target, tern_time() - t0);
    }
    free(touched.a);
    free(cat);

    // 5. assemble: bytes, merges (in the byte alphabet), special tokens
    int NV = B.npieces + sp.n;
    char **pieces = tern_xmalloc((size_t)NV * sizeof(char *));
    int *plen = tern_xmalloc((size_t)NV * sizeof(int)), *types = tern_xmalloc((size_t)NV * sizeof(int));
    size_t mtotal = 0;
    for (int i = 0; i < B.npieces; i++) mtotal += (size_t)B.mlen[i] + 1;
    char *mbytes = tern_xmalloc(mtotal + 1), *q = mbytes;
    for (int i = 0; i < B.npieces; i++) {
        pieces[i] = q;
        const uint8_t *r = B.raw + B.roff[i];
        for (int k = 0; k < B.rlen[i]; k++) q += tern_utf8_encode(tern_byte_char(r[k]), (uint8_t *)q);
        plen[i] = (int)(q - pieces[i]);
        types[i] = TERN_PIECE_NORMAL;
        *q++ = 0;
    }
    for (int k = 0; k < sp.n; k++) {
        pieces[B.npieces + k] = (char *)sp.tokens[k];
        plen[B.npieces + k] = (int)strlen(sp.tokens[k]);
        types[B.npieces + k] = TERN_PIECE_CONTROL;
    }
    tern_tokenizer_spec spec = {.kind = TERN_TOK_GPT2, .vocab_size = NV, .pieces = (const char *const *)pieces,
                                .piece_len = plen, .types = types, .bos_id = B.npieces + sp.bos,
                                .eos_id = B.npieces + sp.eos, .unk_id = -1, .add_bos = sp.add_bos, .pre = pre,
                                .ignore_merges = pre == TERN_PRE_LLAMA3, .nfc = o->nfc != 0, .n_merges = nm,
                                .merge_ids = merges};
    int rc = tern_tokenizer_build(t, &spec, "trained tokenizer");
    if (rc == 0 && o->verbose)
        fprintf(stderr, "tokenizer: vocab %d (256 bytes, %d merges, %d special) in %.2f s\n", NV, nm, sp.n,
                tern_time() - t0);
    free(pieces);
    free(plen);
    free(types);
    free(mbytes);
    free(merges);
    for (int k = 0; k < B.np; k++) free(B.p[k].words);
    free(B.p);
    free(B.heap);
    free(B.raw);
    free(B.roff);
    free(B.rlen);
    free(B.mlen);
    tok_u64map_free(&B.pm);
    tok_strmap_free(&B.pieces_set);
    free(syms);
    free(wstart);
    free(wlen);
    free(wstamp);
    free(wfreq);
    return rc;
}
