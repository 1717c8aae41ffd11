// tokenizer.c — see tokenizer.h: building and validating a tokenizer of either kind, the .tkz
// file (versions 1 and 2), added tokens, encoding (fragments, chunks, threads), decoding.
// The kinds' own algorithms live in spm.c and bytelevel.c. libc + OpenMP only.
#include "tokenizers/tok_internal.h"
#include "tokenizers/nfc.h"
#include "tokenizers/unicode.h"
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
#define TOK_V1_HEADER 24
#define TOK_V2_HEADER 48
#define TOK_FLAG_SPACE_PREFIX 1u
#define TOK_FLAG_ADD_BOS 2u
#define TOK_FLAG_ADD_EOS 4u
#define TOK_FLAG_IGNORE_MERGES 8u
#define TOK_FLAG_NFC 16u
#define TOK_V2_FLAGS 31u

uint64_t tern_fnv1a64(const void *buf, size_t n) {
    const uint8_t *p = buf;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// fast non-cryptographic hash of a short byte string (for hash tables only)
uint64_t tok_hbytes(const uint8_t *p, size_t n) {
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

const char *tern_tokenizer_kind_name(int kind) { return kind == TERN_TOK_GPT2 ? "gpt2" : "llama"; }

int tern_tokenizer_piece_id(const tern_tokenizer *t, const char *s, size_t len) {
    if (len == 0 || len > TERN_TOK_MAX_PIECE || !t->priv) return -1;
    const tern_tok_priv *p = t->priv;
    uint64_t h = tok_hbytes((const uint8_t *)s, len);
    uint32_t mask = p->map_cap - 1, i = (uint32_t)h & mask, tag = (uint32_t)(h >> 32);
    for (;;) {
        int id = p->map[i].id;
        if (id < 0) return -1;
        if (p->map[i].tag == tag && (size_t)t->piece_len[id] == len && memcmp(t->pieces[id], s, len) == 0) return id;
        i = (i + 1) & mask;
    }
}

void tern_tokenizer_free(tern_tokenizer *t) {
    if (!t) return;
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->types);
    free(t->attrs);
    free(t->merges);
    if (t->priv) {
        free(t->priv->map);
        free(t->priv->blob);
        free(t->priv->added);
        bpe_free_tables(t->priv);
        free(t->priv);
    }
    memset(t, 0, sizeof *t);
}

uint64_t tern_tokenizer_hash(const tern_tokenizer *t) { return t->hash; }

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// byte value of a "<0xHH>" piece, or -1
static int byte_piece_value(const char *p, int len) {
    if (len != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return -1;
    int hi = hexval(p[3]), lo = hexval(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static inline int is_added_type(int ty) {
    return ty == TERN_PIECE_CONTROL || ty == TERN_PIECE_USER || ty == TERN_PIECE_UNKNOWN;
}

// ------------------------------------------------------------------------------------------
// serialization

// the trained llama layout with default settings: written as version 1
static int is_v1(const tern_tokenizer *t) {
    if (t->kind != TERN_TOK_LLAMA || t->vocab_size < TERN_TOK_MIN_VOCAB || t->bos_id != TERN_TOK_BOS ||
        t->eos_id != TERN_TOK_EOS || t->unk_id != TERN_TOK_UNK || !t->add_bos || t->add_eos || t->n_merges ||
        t->ignore_merges || t->pre || t->nfc)
        return 0;
    if (strcmp(t->pieces[0], "<unk>") || strcmp(t->pieces[1], "<s>") || strcmp(t->pieces[2], "</s>")) return 0;
    for (int i = 0; i < t->vocab_size; i++) {
        int want = i == 0 ? TERN_PIECE_UNKNOWN : i < 3 ? TERN_PIECE_CONTROL : i < TERN_TOK_FIRST_NORMAL ? TERN_PIECE_BYTE : TERN_PIECE_NORMAL;
        if (t->types[i] != want || t->attrs[i]) return 0;
        if (want == TERN_PIECE_BYTE && byte_piece_value(t->pieces[i], t->piece_len[i]) != i - TERN_TOK_BYTE0) return 0;
    }
    return 1;
}

int tern_tokenizer_to_bytes(const tern_tokenizer *t, void **buf, size_t *n) {
    int v1 = is_v1(t);
    size_t sz = v1 ? TOK_V1_HEADER : TOK_V2_HEADER;
    for (int i = 0; i < t->vocab_size; i++) sz += (v1 ? 7 : 8) + (size_t)t->piece_len[i];
    if (!v1) sz += 8 * (size_t)t->n_merges;
    uint8_t *b = tern_xmalloc(sz), *p = b;
    memcpy(p, TOK_MAGIC, 8);
    if (v1) {
        uint32_t hdr[4] = {1, (uint32_t)t->vocab_size, t->add_space_prefix ? TOK_FLAG_SPACE_PREFIX : 0u, 0u};
        memcpy(p + 8, hdr, 16);
        p += TOK_V1_HEADER;
    } else {
        uint32_t flags = (t->add_space_prefix ? TOK_FLAG_SPACE_PREFIX : 0u) | (t->add_bos ? TOK_FLAG_ADD_BOS : 0u) |
                         (t->add_eos ? TOK_FLAG_ADD_EOS : 0u) | (t->ignore_merges ? TOK_FLAG_IGNORE_MERGES : 0u) |
                         (t->nfc ? TOK_FLAG_NFC : 0u);
        uint32_t hdr[10] = {2, (uint32_t)t->vocab_size, flags, (uint32_t)t->kind, (uint32_t)t->pre,
                            (uint32_t)t->bos_id, (uint32_t)t->eos_id, (uint32_t)t->unk_id, (uint32_t)t->n_merges, 0};
        memcpy(p + 8, hdr, 40);
        p += TOK_V2_HEADER;
    }
    for (int i = 0; i < t->vocab_size; i++) {
        uint16_t len = (uint16_t)t->piece_len[i];
        *p++ = (uint8_t)t->types[i];
        if (!v1) *p++ = t->attrs[i];
        memcpy(p, &t->scores[i], 4);
        memcpy(p + 4, &len, 2);
        memcpy(p + 6, t->pieces[i], len);
        p += 6 + len;
    }
    if (!v1)
        for (int i = 0; i < 2 * t->n_merges; i++) {
            uint32_t v = (uint32_t)t->merges[i];
            memcpy(p, &v, 4);
            p += 4;
        }
    *buf = b;
    *n = sz;
    return 0;
}

// ------------------------------------------------------------------------------------------
// building

static void added_tables(tern_tokenizer *t) {
    tern_tok_priv *p = t->priv;
    int n = 0;
    for (int i = 0; i < t->vocab_size; i++)
        if (is_added_type(t->types[i])) n++;
    p->n_added = n;
    p->added = tern_xmalloc(((size_t)n + 1) * sizeof(int));
    int count[257] = {0};
    for (int i = 0; i < t->vocab_size; i++)
        if (is_added_type(t->types[i])) {
            count[(uint8_t)t->pieces[i][0]]++;
            if (t->types[i] == TERN_PIECE_USER) p->any_user = 1;
            if (memchr(t->pieces[i], ' ', (size_t)t->piece_len[i]) || t->attrs[i]) p->no_split = 1;
        }
    p->added_start[0] = 0;
    for (int b = 0; b < 256; b++) p->added_start[b + 1] = p->added_start[b] + count[b];
    int fill[256];
    for (int b = 0; b < 256; b++) fill[b] = p->added_start[b];
    for (int i = 0; i < t->vocab_size; i++)
        if (is_added_type(t->types[i])) p->added[fill[(uint8_t)t->pieces[i][0]]++] = i;
    // longest first within each first byte (insertion sort: buckets are small); ties by id
    for (int b = 0; b < 256; b++)
        for (int k = p->added_start[b] + 1; k < p->added_start[b + 1]; k++) {
            int id = p->added[k], j = k;
            while (j > p->added_start[b] && t->piece_len[p->added[j - 1]] < t->piece_len[id]) {
                p->added[j] = p->added[j - 1];
                j--;
            }
            p->added[j] = id;
        }
}

int tern_tokenizer_build(tern_tokenizer *t, const tern_tokenizer_spec *s, const char *what) {
    memset(t, 0, sizeof *t);
    int V = s->vocab_size;
    if (s->kind != TERN_TOK_LLAMA && s->kind != TERN_TOK_GPT2) {
        tern_error("%s: unknown tokenizer kind %d", what, s->kind);
        return -1;
    }
    if (V < 1 || V > TERN_TOK_MAX_VOCAB) {
        tern_error("%s: vocab size %d out of range (1..%d)", what, V, TERN_TOK_MAX_VOCAB);
        return -1;
    }
    if (s->kind == TERN_TOK_GPT2 && (s->pre <= TERN_PRE_NONE || s->pre >= TERN_PRE_COUNT)) {
        tern_error("%s: unknown pre-tokenizer %d (known: %s)", what, s->pre, tern_pre_names());
        return -1;
    }
    if (s->kind == TERN_TOK_LLAMA && (s->pre != TERN_PRE_NONE || s->n_merges || s->ignore_merges || s->nfc)) {
        tern_error("%s: a llama (SentencePiece-style) tokenizer has no pre-tokenizer, merges or NFC normalizer", what);
        return -1;
    }
    const int *ids3[3] = {&s->bos_id, &s->eos_id, &s->unk_id};
    const char *names3[3] = {"bos", "eos", "unknown"};
    for (int k = 0; k < 3; k++)
        if (*ids3[k] < -1 || *ids3[k] >= V) {
            tern_error("%s: %s id %d out of range (vocab size %d)", what, names3[k], *ids3[k], V);
            return -1;
        }
    if (s->add_bos && s->bos_id < 0) {
        tern_error("%s: add_bos is set but the tokenizer has no bos token", what);
        return -1;
    }
    if (s->add_eos && s->eos_id < 0) {
        tern_error("%s: add_eos is set but the tokenizer has no eos token", what);
        return -1;
    }
    if (s->n_merges < 0 || s->n_merges > 64 * TERN_TOK_MAX_VOCAB) {
        tern_error("%s: bad merge count %d", what, s->n_merges);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < V; i++) {
        size_t len = s->piece_len ? (size_t)s->piece_len[i] : strlen(s->pieces[i]);
        if (len < 1 || len > TERN_TOK_MAX_PIECE) {
            tern_error("%s: piece %d has bad length %zu (must be 1..%d)", what, i, len, TERN_TOK_MAX_PIECE);
            return -1;
        }
        total += len + 1;
    }
    t->kind = s->kind;
    t->vocab_size = V;
    t->bos_id = s->bos_id;
    t->eos_id = s->eos_id;
    t->unk_id = s->unk_id;
    t->add_bos = s->add_bos != 0;
    t->add_eos = s->add_eos != 0;
    t->add_space_prefix = s->kind == TERN_TOK_LLAMA && s->add_space_prefix;
    t->pre = s->pre;
    t->ignore_merges = s->ignore_merges != 0;
    t->nfc = s->nfc != 0;
    t->pieces = tern_xmalloc((size_t)V * sizeof(char *));
    t->piece_len = tern_xmalloc((size_t)V * sizeof(int));
    t->scores = tern_xmalloc((size_t)V * sizeof(float));
    t->types = tern_xmalloc((size_t)V * sizeof(int));
    t->attrs = tern_xcalloc((size_t)V, 1);
    t->priv = tern_xcalloc(1, sizeof(tern_tok_priv));
    tern_tok_priv *p = t->priv;
    p->blob = tern_xmalloc(total);
    p->map_cap = 1024;
    while (p->map_cap < 2u * (uint32_t)V) p->map_cap *= 2;
    p->map = tern_xmalloc((size_t)p->map_cap * sizeof *p->map);
    memset(p->map, 0xff, (size_t)p->map_cap * sizeof *p->map);
    for (int b = 0; b < 256; b++) p->byte_id[b] = -1;
    char *q = p->blob;
    for (int i = 0; i < V; i++) {
        int len = s->piece_len ? s->piece_len[i] : (int)strlen(s->pieces[i]);
        const char *src = s->pieces[i];
        if (memchr(src, 0, (size_t)len)) {
            tern_error("%s: piece %d contains a NUL byte", what, i);
            goto fail;
        }
        memcpy(q, src, (size_t)len);
        q[len] = 0;
        t->pieces[i] = q;
        t->piece_len[i] = len;
        q += len + 1;
        t->scores[i] = s->scores && t->kind == TERN_TOK_LLAMA ? s->scores[i] : 0.0f; // byte-level: no scores
        t->types[i] = s->types[i];
        t->attrs[i] = s->attrs ? s->attrs[i] : 0;
        if (!isfinite(t->scores[i])) {
            tern_error("%s: piece %d has a non-finite score", what, i);
            goto fail;
        }
        int ty = t->types[i];
        if (ty < TERN_PIECE_NORMAL || ty > TERN_PIECE_BYTE) {
            tern_error("%s: piece %d has type %d (known: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)",
                       what, i, ty);
            goto fail;
        }
        if (t->attrs[i] & ~(TERN_ATTR_LSTRIP | TERN_ATTR_RSTRIP)) {
            tern_error("%s: piece %d has unknown attributes 0x%x", what, i, t->attrs[i]);
            goto fail;
        }
        if (t->attrs[i] && !is_added_type(ty)) {
            tern_error("%s: piece %d has lstrip/rstrip but is not an added (control, user-defined, unknown) token", what, i);
            goto fail;
        }
        if (ty == TERN_PIECE_BYTE) {
            int b = byte_piece_value(t->pieces[i], len);
            if (t->kind != TERN_TOK_LLAMA || b < 0) {
                tern_error("%s: piece %d has type byte but is not a byte piece <0xHH>%s", what, i,
                           t->kind != TERN_TOK_LLAMA ? " of a llama tokenizer" : "");
                goto fail;
            }
            p->byte_id[b] = i;
        }
        uint64_t h = tok_hbytes((const uint8_t *)t->pieces[i], (size_t)len);
        uint32_t mask = p->map_cap - 1, k = (uint32_t)h & mask, tag = (uint32_t)(h >> 32);
        while (p->map[k].id >= 0) {
            int o = p->map[k].id;
            if (p->map[k].tag == tag && t->piece_len[o] == len && memcmp(t->pieces[o], t->pieces[i], (size_t)len) == 0) {
                tern_error("%s: pieces %d and %d are the same", what, o, i);
                goto fail;
            }
            k = (k + 1) & mask;
        }
        p->map[k].tag = tag;
        p->map[k].id = i;
    }
    if (t->kind == TERN_TOK_LLAMA) {
        for (int b = 0; b < 256; b++)
            if (p->byte_id[b] < 0) {
                tern_error("%s: the vocabulary has no byte piece <0x%02X> (a llama tokenizer needs all 256)", what, b);
                goto fail;
            }
        if (tern_tokenizer_piece_id(t, "\xe2\x96\x81", 3) < 0) {   // without it a space would encode as 3 byte pieces of "▁"
            tern_error("%s: has no \"\xe2\x96\x81\" piece (spaces could not be encoded losslessly)", what);
            goto fail;
        }
        spm_compute_word_split(t);
    } else {
        t->n_merges = s->n_merges;
        t->merges = tern_xmalloc(((size_t)2 * (size_t)s->n_merges + 1) * sizeof(int32_t));
        for (int m = 0; m < s->n_merges; m++) {
            int a, b;
            if (s->merge_ids) {
                a = s->merge_ids[2 * m];
                b = s->merge_ids[2 * m + 1];
                if (a < 0 || a >= V || b < 0 || b >= V) {
                    tern_error("%s: merge %d has piece ids %d, %d out of range", what, m, a, b);
                    goto fail;
                }
            } else {
                a = tern_tokenizer_piece_id(t, s->merge_left[m], strlen(s->merge_left[m]));
                b = tern_tokenizer_piece_id(t, s->merge_right[m], strlen(s->merge_right[m]));
                if (a < 0 || b < 0) {
                    tern_error("%s: merge %d (\"%.60s\" \"%.60s\"): \"%.60s\" is not a piece", what, m, s->merge_left[m],
                               s->merge_right[m], a < 0 ? s->merge_left[m] : s->merge_right[m]);
                    goto fail;
                }
            }
            t->merges[2 * m] = a;
            t->merges[2 * m + 1] = b;
        }
        if (bpe_build_tables(t, what) != 0) goto fail;
    }
    added_tables(t);
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

// ------------------------------------------------------------------------------------------
// parsing the file

// The version 1 layout check (the trained layout), with the messages tern has always given.
static int check_v1_layout(int V, const uint8_t *types, char *const *pieces, const int *lens, const char *what) {
    for (int i = 0; i < V; i++) {
        int want;
        if (i == 0) want = TERN_PIECE_UNKNOWN;
        else if (i < 3) want = TERN_PIECE_CONTROL;
        else if (i < TERN_TOK_FIRST_NORMAL) want = TERN_PIECE_BYTE;
        else want = TERN_PIECE_NORMAL;
        if (types[i] != want) {
            tern_error("%s: piece %d has type %d, expected %d", what, i, types[i], want);
            return -1;
        }
        const char *p = pieces[i];
        int len = lens[i];
        if ((i == 0 && (len != 5 || memcmp(p, "<unk>", 5))) || (i == 1 && (len != 3 || memcmp(p, "<s>", 3))) ||
            (i == 2 && (len != 4 || memcmp(p, "</s>", 4)))) {
            tern_error("%s: control piece %d is \"%.*s\" (expected <unk>, <s>, </s> at ids 0, 1, 2)", what, i, len, p);
            return -1;
        }
        if (want == TERN_PIECE_BYTE && byte_piece_value(p, len) != i - TERN_TOK_BYTE0) {
            tern_error("%s: piece %d should be the byte piece <0x%02X>", what, i, i - TERN_TOK_BYTE0);
            return -1;
        }
    }
    return 0;
}

int tern_tokenizer_from_bytes(tern_tokenizer *t, const void *buf, size_t n, const char *what) {
    memset(t, 0, sizeof *t);
    const uint8_t *b = buf;
    if (n < TOK_V1_HEADER) {
        tern_error("%s: truncated tokenizer file (%zu bytes, header needs %d)", what, n, TOK_V1_HEADER);
        return -1;
    }
    if (memcmp(b, TOK_MAGIC, 8) != 0) {
        tern_error("%s: bad magic (not a tern tokenizer file, nor a tokenizer.json)", what);
        return -1;
    }
    uint32_t version;
    memcpy(&version, b + 8, 4);
    if (version != 1 && version != 2) {
        tern_error("%s: unsupported tokenizer file version %u (this build reads 1 and 2)", what, version);
        return -1;
    }
    uint32_t hdr[10] = {0};
    size_t hsize = version == 1 ? TOK_V1_HEADER : TOK_V2_HEADER;
    if (n < hsize) {
        tern_error("%s: truncated tokenizer file (%zu bytes, header needs %zu)", what, n, hsize);
        return -1;
    }
    memcpy(hdr, b + 8, hsize - 8);
    uint32_t V32 = hdr[1], flags = hdr[2];
    uint32_t min_v = version == 1 ? TERN_TOK_MIN_VOCAB : 1;
    if (V32 < min_v || V32 > TERN_TOK_MAX_VOCAB) {
        tern_error("%s: vocab size %u out of range (%u..%d)", what, V32, min_v, TERN_TOK_MAX_VOCAB);
        return -1;
    }
    tern_tokenizer_spec s;
    memset(&s, 0, sizeof s);
    if (version == 1) {
        if (flags & ~TOK_FLAG_SPACE_PREFIX) {
            tern_error("%s: unknown flags 0x%x", what, flags);
            return -1;
        }
        if (hdr[3] != 0) {
            tern_error("%s: reserved header field is not zero", what);
            return -1;
        }
        s.kind = TERN_TOK_LLAMA;
        s.bos_id = TERN_TOK_BOS;
        s.eos_id = TERN_TOK_EOS;
        s.unk_id = TERN_TOK_UNK;
        s.add_bos = 1;
    } else {
        if (flags & ~TOK_V2_FLAGS) {
            tern_error("%s: unknown flags 0x%x", what, flags);
            return -1;
        }
        if (hdr[9] != 0) {
            tern_error("%s: reserved header field is not zero", what);
            return -1;
        }
        if (hdr[3] > 1) {
            tern_error("%s: unknown tokenizer kind %u", what, hdr[3]);
            return -1;
        }
        s.kind = (int)hdr[3];
        s.pre = hdr[4] < 1000 ? (int)hdr[4] : 1000;
        s.bos_id = (int32_t)hdr[5];
        s.eos_id = (int32_t)hdr[6];
        s.unk_id = (int32_t)hdr[7];
        if (hdr[8] > (uint32_t)INT_MAX) {
            tern_error("%s: bad merge count %u", what, hdr[8]);
            return -1;
        }
        s.n_merges = (int)hdr[8];
        s.add_bos = (flags & TOK_FLAG_ADD_BOS) != 0;
        s.add_eos = (flags & TOK_FLAG_ADD_EOS) != 0;
        s.ignore_merges = (flags & TOK_FLAG_IGNORE_MERGES) != 0;
        s.nfc = (flags & TOK_FLAG_NFC) != 0;
    }
    s.add_space_prefix = (flags & TOK_FLAG_SPACE_PREFIX) != 0;
    int V = (int)V32;
    size_t per = version == 1 ? 7 : 8;
    if ((size_t)V * per > n - hsize || (size_t)s.n_merges * 8 > n - hsize) {
        tern_error("%s: truncated tokenizer file (%zu bytes cannot hold %d pieces and %d merges)", what, n, V, s.n_merges);
        return -1;
    }
    uint8_t *types8 = tern_xmalloc((size_t)V);
    int *types = tern_xmalloc((size_t)V * sizeof(int));
    uint8_t *attrs = tern_xcalloc((size_t)V, 1);
    float *scores = tern_xmalloc((size_t)V * sizeof(float));
    int *lens = tern_xmalloc((size_t)V * sizeof(int));
    char **pieces = tern_xmalloc((size_t)V * sizeof(char *));
    char *bytes = tern_xmalloc(n + (size_t)V);
    int32_t *merges = tern_xmalloc(((size_t)2 * (size_t)s.n_merges + 1) * sizeof(int32_t));
    size_t off = hsize, bo = 0;
    int rc = -1;
    for (int i = 0; i < V; i++) {
        if (n - off < per) {
            tern_error("%s: truncated tokenizer file (ends inside piece %d)", what, i);
            goto done;
        }
        uint16_t len;
        types8[i] = b[off++];
        if (version == 2) attrs[i] = b[off++];
        memcpy(&scores[i], b + off, 4);
        memcpy(&len, b + off + 4, 2);
        off += 6;
        if (len < 1 || len > TERN_TOK_MAX_PIECE) {
            tern_error("%s: piece %d has bad length %u", what, i, len);
            goto done;
        }
        if (n - off < len) {
            tern_error("%s: truncated tokenizer file (ends inside piece %d)", what, i);
            goto done;
        }
        lens[i] = len;
        pieces[i] = bytes + bo;
        memcpy(bytes + bo, b + off, len);
        bytes[bo + len] = 0;
        bo += (size_t)len + 1;
        off += len;
        types[i] = types8[i];
    }
    if (version == 2) {
        if ((n - off) / 8 < (size_t)s.n_merges) {
            tern_error("%s: truncated tokenizer file (ends inside the merges)", what);
            goto done;
        }
        for (int m = 0; m < 2 * s.n_merges; m++) {
            uint32_t v;
            memcpy(&v, b + off, 4);
            off += 4;
            merges[m] = v > (uint32_t)INT_MAX ? -1 : (int32_t)v;
        }
    }
    if (off != n) {
        tern_error("%s: %zu unexpected bytes after the last %s (size mismatch)", what, n - off,
                   version == 2 && s.n_merges ? "merge" : "piece");
        goto done;
    }
    if (version == 1) {
        for (int i = 0; i < V; i++) // NUL and score checks first, as before
            if (memchr(pieces[i], 0, (size_t)lens[i])) {
                tern_error("%s: piece %d contains a NUL byte", what, i);
                goto done;
            }
        if (check_v1_layout(V, types8, pieces, lens, what) != 0) goto done;
    }
    s.vocab_size = V;
    s.pieces = (const char *const *)pieces;
    s.piece_len = lens;
    s.scores = scores;
    s.types = types;
    s.attrs = attrs;
    s.merge_ids = merges;
    rc = tern_tokenizer_build(t, &s, what);
done:
    free(types8);
    free(types);
    free(attrs);
    free(scores);
    free(lens);
    free(pieces);
    free(bytes);
    free(merges);
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
// shared encoder pieces: int vectors, the word cache

void iv_reserve(ivec *v, size_t extra) {
    if (v->n + extra <= v->cap) return;
    size_t c = v->cap ? v->cap : 256;
    while (c < v->n + extra) c *= 2;
    int *a = realloc(v->a, c * sizeof(int));
    if (!a) tern_fatal("out of memory (%zu tokens)", c);
    v->a = a;
    v->cap = c;
}

void ctx_free(enc_ctx *c) {
    free(c->start);
    free(c->len);
    free(c->prev);
    free(c->next);
    free(c->heap);
    free(c->ce);
    free(c->ckeys);
    free(c->cvals);
    free(c->esc);
    free(c->ph);
    memset(c, 0, sizeof *c);
}

void cache_reset(enc_ctx *c, uint32_t cap) {
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

int cache_get(enc_ctx *c, const uint8_t *s, size_t m, uint64_t h, ivec *out) {
    uint32_t mask = c->ccap - 1, i = (uint32_t)h & mask;
    for (; c->ce[i].klen; i = (i + 1) & mask) {
        centry *e = &c->ce[i];
        if (e->h == h && e->klen == m && memcmp(c->ckeys + e->koff, s, m) == 0) {
            iv_reserve(out, e->vn);
            const int *src = c->cvals + e->voff;
            int *dst = out->a + out->n;
            for (int k = 0; k < e->vn; k++) dst[k] = src[k];
            out->n += e->vn;
            return 1;
        }
    }
    return 0;
}

void cache_put(enc_ctx *c, const uint8_t *s, size_t m, uint64_t h, const int *ids, size_t vn) {
    if (m > TOK_CACHE_MAX_KEY || vn > 0xffff) return;
    if (2 * (c->ccount + 1) > c->ccap) {
        if (c->ccap < TOK_CACHE_MAX_CAP) { // grow and rehash
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
    if (c->ckn + m > UINT32_MAX || c->cvn + vn > UINT32_MAX) { // keep offsets in 32 bits
        cache_reset(c, c->ccap);
    }
    memcpy(c->ckeys + c->ckn, s, m);
    memcpy(c->cvals + c->cvn, ids, vn * sizeof(int));
    centry e = {h, (uint32_t)c->ckn, (uint32_t)c->cvn, (uint16_t)m, (uint16_t)vn};
    c->ckn += m;
    c->cvn += vn;
    cache_insert_slot(c, e);
}

// ------------------------------------------------------------------------------------------
// added tokens: the text is cut into fragments, raw text or one added token each

typedef struct {
    size_t a, b; // raw text [a, b) (id < 0), or the token's span including stripped whitespace
    int id;
} frag;

typedef struct {
    frag *f;
    size_t n, cap;
} fragvec;

static void fv_push(fragvec *v, size_t a, size_t b, int id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->f = realloc(v->f, v->cap * sizeof(frag));
        if (!v->f) tern_fatal("out of memory");
    }
    v->f[v->n++] = (frag){a, b, id};
}

static inline int matchable(const tern_tokenizer *t, int id, int flags) {
    int ty = t->types[id];
    return ty == TERN_PIECE_USER || ((flags & TERN_ENC_SPECIAL) && (ty == TERN_PIECE_CONTROL || ty == TERN_PIECE_UNKNOWN));
}

// length of the White_Space character ending at s[e] (exclusive), not before lo; 0 if none
static size_t ws_before(const uint8_t *s, size_t lo, size_t e) {
    for (size_t L = 1; L <= 3 && L <= e - lo; L++) {
        uint32_t cp;
        if (tern_utf8_decode(s + e - L, L, &cp) == (int)L && cp != TERN_UC_INVALID && (tern_uc_class(cp) & TERN_UC_WS))
            return L;
    }
    return 0;
}

// the leftmost-longest added token at or after i: its id and [*ma, *mb); -1 if none
static int find_added(const tern_tokenizer *t, const uint8_t *s, size_t n, size_t i, int flags, size_t *ma) {
    const tern_tok_priv *p = t->priv;
    for (; i < n; i++) {
        int lo = p->added_start[s[i]], hi = p->added_start[s[i] + 1];
        for (int k = lo; k < hi; k++) {
            int id = p->added[k];
            size_t L = (size_t)t->piece_len[id];
            if (L <= n - i && matchable(t, id, flags) && memcmp(s + i, t->pieces[id], L) == 0) {
                *ma = i;
                return id;
            }
        }
    }
    return -1;
}

static void partition(const tern_tokenizer *t, const uint8_t *s, size_t n, int flags, fragvec *out) {
    const tern_tok_priv *p = t->priv;
    if (!p->n_added || (!(flags & TERN_ENC_SPECIAL) && !p->any_user)) {
        if (n) fv_push(out, 0, n, -1);
        return;
    }
    size_t raw = 0, i = 0;
    for (;;) {
        size_t a;
        int id = find_added(t, s, n, i, flags, &a);
        if (id < 0) break;
        size_t b = a + (size_t)t->piece_len[id], a2 = a;
        if (t->attrs[id] & TERN_ATTR_LSTRIP)
            for (size_t L; (L = ws_before(s, raw, a2)) > 0;) a2 -= L;
        if (t->attrs[id] & TERN_ATTR_RSTRIP)
            while (b < n) {
                uint32_t cp;
                int L = tern_utf8_decode(s + b, n - b, &cp);
                if (cp == TERN_UC_INVALID || !(tern_uc_class(cp) & TERN_UC_WS)) break;
                b += (size_t)L;
            }
        if (a2 > raw) fv_push(out, raw, a2, -1);
        fv_push(out, a2, b, id);
        raw = i = b;
    }
    if (n > raw) fv_push(out, raw, n, -1);
}

// ------------------------------------------------------------------------------------------
// encoding

#define CHUNK_BYTES (1u << 20)

typedef struct {
    size_t a, b;
    int id;     // >= 0: an added token
    int prefix; // llama: this chunk starts a fragment that gets the ▁ prefix
} job;

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

static size_t next_boundary(const tern_tokenizer *t, const uint8_t *s, size_t len, size_t pos) {
    return t->kind == TERN_TOK_GPT2 ? bpe_next_boundary(s, len, pos) : spm_next_boundary(t, s, len, pos);
}

static void encode_job(const tern_tokenizer *t, enc_ctx *c, const uint8_t *s, const job *j, int fast, ivec *out) {
    if (j->id >= 0) {
        iv_push(out, j->id);
        return;
    }
    if (t->kind == TERN_TOK_GPT2) {
        const uint8_t *p = s + j->a;
        size_t n = j->b - j->a;
        if (t->nfc && tern_nfc_may_change(p, n)) {
            size_t m;
            uint8_t *q = tern_nfc(p, n, &m);
            bpe_encode_fragment(t, c, q, m, fast, out);
            free(q);
        } else {
            bpe_encode_fragment(t, c, p, n, fast, out);
        }
    } else spm_encode_fragment(t, c, s + j->a, j->b - j->a, j->prefix, fast && t->word_split, out);
}

static int encode_impl(const tern_tokenizer *t, const char *text, size_t len, int flags, int fast, int **ids, int *n) {
    const uint8_t *s = (const uint8_t *)text;
    ivec out = {0};
    if ((flags & TERN_ENC_BOS) && t->bos_id < 0) {
        tern_error("tokenizer has no bos token");
        return -1;
    }
    if ((flags & TERN_ENC_EOS) && t->eos_id < 0) {
        tern_error("tokenizer has no eos token");
        return -1;
    }
    if (flags & TERN_ENC_BOS) iv_push(&out, t->bos_id);
    fragvec fv = {0};
    partition(t, s, len, flags, &fv);
    // jobs: added tokens, and raw fragments cut into chunks at safe boundaries
    job *jobs = NULL;
    size_t nj = 0, cj = 0;
    int prev_token = !(flags & TERN_ENC_CONTINUE); // llama.cpp: a prefix at the start and after added tokens
    for (size_t k = 0; k < fv.n; k++) {
        frag f = fv.f[k];
        size_t a = f.a;
        do {
            size_t b = f.b;
            if (f.id < 0 && fast && f.b - a > CHUNK_BYTES) {
                size_t c = next_boundary(t, s + f.a, f.b - f.a, a - f.a + CHUNK_BYTES);
                b = f.a + c;
            }
            if (nj == cj) {
                cj = cj ? 2 * cj : 16;
                jobs = realloc(jobs, cj * sizeof(job));
                if (!jobs) tern_fatal("out of memory");
            }
            jobs[nj++] = (job){a, b, f.id, f.id < 0 && a == f.a && prev_token && t->add_space_prefix};
            a = b;
        } while (a < f.b);
        prev_token = f.id >= 0;
    }
    free(fv.f);
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    if (nj <= 1 || nt == 1 || !fast || len < 2 * CHUNK_BYTES) {
        enc_ctx c = {0};
        cache_reset(&c, 1024);
        for (size_t k = 0; k < nj; k++) encode_job(t, &c, s, &jobs[k], fast, &out);
        ctx_free(&c);
    } else {
        ivec *parts = tern_xcalloc(nj, sizeof(ivec));
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
            for (size_t k = 0; k < nj; k++) encode_job(t, c, s, &jobs[k], fast, &parts[k]);
            ctx_free(c);
        }
        size_t total = 0;
        for (size_t k = 0; k < nj; k++) total += parts[k].n;
        iv_reserve(&out, total);
        for (size_t k = 0; k < nj; k++) {
            if (parts[k].n) memcpy(out.a + out.n, parts[k].a, parts[k].n * sizeof(int));
            out.n += parts[k].n;
            free(parts[k].a);
        }
        free(parts);
        free(ctx);
    }
    free(jobs);
    if (flags & TERN_ENC_EOS) iv_push(&out, t->eos_id);
    return finish(&out, ids, n);
}

int tern_tokenizer_encode(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n) {
    return encode_impl(t, text, len, add_bos ? TERN_ENC_BOS : 0, 1, ids, n);
}

int tern_tokenizer_encode_ex(const tern_tokenizer *t, const char *text, size_t len, int flags, int **ids, int *n) {
    return encode_impl(t, text, len, flags, 1, ids, n);
}

int tern_tokenizer_encode_ref(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n) {
    return encode_impl(t, text, len, add_bos ? TERN_ENC_BOS : 0, 0, ids, n);
}

size_t tern_tokenizer_split_point(const tern_tokenizer *t, const char *text, size_t len, size_t pos) {
    // Boundaries are at a space (spm_next_boundary, bpe_next_boundary). An added token never
    // spans one unless it has a space (or takes whitespace with lstrip/rstrip): then none.
    if (t->priv->no_split) return len;
    return next_boundary(t, (const uint8_t *)text, len, pos);
}

// ------------------------------------------------------------------------------------------
// decoding

int tern_tokenizer_decode_piece(const tern_tokenizer *t, int id, int flags, char *buf, size_t cap) {
    if (id < 0 || id >= t->vocab_size) return -1;
    int ty = t->types[id];
    const uint8_t *p = (const uint8_t *)t->pieces[id];
    int len = t->piece_len[id], k = 0;
    if (ty == TERN_PIECE_CONTROL || ty == TERN_PIECE_UNKNOWN || ty == TERN_PIECE_UNUSED || ty == TERN_PIECE_USER) {
        if (ty != TERN_PIECE_USER && !(flags & TERN_DEC_SPECIAL)) return 0;
        k = (size_t)len < cap ? len : (int)cap;
        memcpy(buf, p, (size_t)k);
        return k;
    }
    if (ty == TERN_PIECE_BYTE) {
        if (cap < 1) return 0;
        buf[0] = (char)byte_piece_value((const char *)p, len);
        return 1;
    }
    if (t->kind == TERN_TOK_GPT2) {
        const tern_tok_priv *q = t->priv;
        k = q->raw_len[id] < cap ? q->raw_len[id] : (int)cap;
        memcpy(buf, q->raw + q->raw_off[id], (size_t)k);
        return k;
    }
    for (int i = 0; i < len && (size_t)k < cap;) {
        if (i + 3 <= len && tok_is_mark(p + i)) {
            buf[k++] = ' ';
            i += 3;
        } else {
            buf[k++] = (char)p[i++];
        }
    }
    if ((flags & TERN_DEC_FIRST) && t->add_space_prefix && k > 0 && buf[0] == ' ') {
        memmove(buf, buf + 1, (size_t)k - 1);
        k--;
    }
    return k;
}

int tern_tokenizer_decode_ex(const tern_tokenizer *t, const int *ids, size_t n, int flags, char **out, size_t *len) {
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
        int ty = t->types[ids[i]];
        int m = tern_tokenizer_decode_piece(t, ids[i], (flags & TERN_DEC_SPECIAL) | (first ? TERN_DEC_FIRST : 0), b + k,
                                            cap - k);
        if (ty == TERN_PIECE_NORMAL || ty == TERN_PIECE_BYTE || ty == TERN_PIECE_USER) first = 0;
        else if (ids[i] == t->bos_id) first = 1; // a new text starts: its prefix space goes too
        k += (size_t)m;
    }
    b[k] = 0;
    *out = b;
    *len = k;
    return 0;
}

int tern_tokenizer_decode(const tern_tokenizer *t, const int *ids, size_t n, char **out, size_t *len) {
    return tern_tokenizer_decode_ex(t, ids, n, 0, out, len);
}
