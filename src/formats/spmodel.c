// spmodel.c — SentencePiece tokenizer.model (protobuf) -> tern tokenizer file bytes (see spmodel.h).
#include "formats/spmodel.h"
#include "tokenizers/tokenizer.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const uint8_t *p, *end; } pb;   // a protobuf message being read

static int pb_varint(pb *b, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return -1;
        uint8_t c = *b->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) { *v = x; return 0; }
    }
    return -1;   // more than 10 bytes
}

// Next field: *field, *wire; for length-delimited fields *sub is the payload; for fixed32 *f32 raw.
// 1 when a field was read, 0 at the end of the message, -1 on malformed input.
static int pb_next(pb *b, uint32_t *field, int *wire, pb *sub, uint64_t *val) {
    if (b->p >= b->end) return 0;
    uint64_t key;
    if (pb_varint(b, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return -1;
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    switch (*wire) {
    case 0: return pb_varint(b, val) == 0 ? 1 : -1;
    case 1:
        if (b->end - b->p < 8) return -1;
        memcpy(val, b->p, 8);
        b->p += 8;
        return 1;
    case 2: {
        uint64_t len;
        if (pb_varint(b, &len) != 0 || len > (uint64_t)(b->end - b->p)) return -1;
        sub->p = b->p;
        sub->end = b->p + len;
        b->p += len;
        return 1;
    }
    case 5: {
        if (b->end - b->p < 4) return -1;
        uint32_t u;
        memcpy(&u, b->p, 4);
        *val = u;
        b->p += 4;
        return 1;
    }
    default: return -1;   // groups (3, 4) and reserved wire types
    }
}

typedef struct { const uint8_t *s; uint32_t len; float score; int type; } sp_piece;

#define BAD(...) do { tern_error(__VA_ARGS__); goto fail; } while (0)

int tern_spm_to_tokenizer(const void *buf, size_t n, const char *what, int pad_to, void **out, size_t *out_n) {
    *out = NULL;
    *out_n = 0;
    pb m = {buf, (const uint8_t *)buf + n}, sub;
    sp_piece *pieces = NULL;
    int np = 0, cap = 0, rc;
    uint64_t val;
    uint32_t field;
    int wire;
    int model_type = 1, add_prefix = 1, remove_ws = 1;   // proto defaults
    uint8_t *o = NULL;
    while ((rc = pb_next(&m, &field, &wire, &sub, &val)) == 1) {
        if (field == 1 && wire == 2) {         // SentencePiece
            if (np == cap) {
                cap = cap ? 2 * cap : 1024;
                pieces = realloc(pieces, sizeof *pieces * (size_t)cap);
                if (!pieces) tern_fatal("out of memory");
            }
            sp_piece *sp = &pieces[np];
            memset(sp, 0, sizeof *sp);
            sp->type = 1;
            int has_piece = 0, r;
            pb ps = sub, str;
            while ((r = pb_next(&ps, &field, &wire, &str, &val)) == 1) {
                if (field == 1 && wire == 2) { sp->s = str.p; sp->len = (uint32_t)(str.end - str.p); has_piece = 1; }
                else if (field == 2 && wire == 5) { uint32_t u = (uint32_t)val; memcpy(&sp->score, &u, 4); }
                else if (field == 3 && wire == 0) sp->type = (int)val;
                else if (field <= 3) BAD("%s: piece %d: field %u has the wrong wire type %d", what, np, field, wire);
            }
            if (r < 0) BAD("%s: piece %d: malformed protobuf", what, np);
            if (!has_piece || sp->len == 0) BAD("%s: piece %d is empty", what, np);
            np++;
        } else if (field == 2 && wire == 2) {  // TrainerSpec
            pb ts = sub, x;
            int r;
            while ((r = pb_next(&ts, &field, &wire, &x, &val)) == 1)
                if (field == 3 && wire == 0) model_type = (int)val;
            if (r < 0) BAD("%s: malformed trainer_spec", what);
        } else if (field == 3 && wire == 2) {  // NormalizerSpec
            pb ns = sub, x;
            int r;
            while ((r = pb_next(&ns, &field, &wire, &x, &val)) == 1) {
                if (field == 3 && wire == 0) add_prefix = val != 0;
                else if (field == 4 && wire == 0) remove_ws = val != 0;
            }
            if (r < 0) BAD("%s: malformed normalizer_spec", what);
        } else if (field <= 3) {
            BAD("%s: field %u has the wrong wire type %d (not a SentencePiece model)", what, field, wire);
        }
    }
    if (rc < 0) BAD("%s: malformed protobuf (not a SentencePiece tokenizer.model?)", what);
    if (np == 0) BAD("%s: no pieces (not a SentencePiece tokenizer.model?)", what);
    if (model_type != 2)
        BAD("%s: SentencePiece model type %d is not BPE (2); tern reads BPE models with byte fallback (LLaMA-2 style)", what,
            model_type);
    (void)remove_ws;   // LLaMA's models set it false; tern (like llama.cpp) never collapses whitespace
    if (np < TERN_TOK_MIN_VOCAB) BAD("%s: %d pieces, fewer than the %d of the byte-fallback layout", what, np, TERN_TOK_MIN_VOCAB);
    if (pad_to && np > pad_to) BAD("%s: %d pieces but the model has only %d embedding rows", what, np, pad_to);
    static const char *ctl[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < TERN_TOK_FIRST_NORMAL; i++) {
        const sp_piece *sp = &pieces[i];
        if (i < 3) {
            if (sp->len != strlen(ctl[i]) || memcmp(sp->s, ctl[i], sp->len) || sp->type != (i ? 3 : 2))
                BAD("%s: piece %d is \"%.*s\" (type %d); tern's llama tokenizer needs <unk>, <s>, </s> at ids 0, 1, 2", what, i,
                    (int)(sp->len > 32 ? 32 : sp->len), (const char *)sp->s, sp->type);
        } else {
            char want[8];
            snprintf(want, sizeof want, "<0x%02X>", i - TERN_TOK_BYTE0);
            if (sp->type != 6 || sp->len != 6 || memcmp(sp->s, want, 6))
                BAD("%s: piece %d is \"%.*s\", expected the byte piece %s (tern needs byte fallback pieces at ids 3..258)", what,
                    i, (int)(sp->len > 32 ? 32 : sp->len), (const char *)sp->s, want);
        }
    }
    int V = pad_to > np ? pad_to : np;
    if (V > TERN_TOK_MAX_VOCAB) BAD("%s: %d pieces is more than %d", what, V, TERN_TOK_MAX_VOCAB);
    size_t bytes = 24;
    for (int i = 0; i < np; i++) {
        if (pieces[i].len > TERN_TOK_MAX_PIECE) BAD("%s: piece %d is %u bytes long (at most %d)", what, i, pieces[i].len, TERN_TOK_MAX_PIECE);
        if (i >= TERN_TOK_FIRST_NORMAL && (pieces[i].type < 1 || pieces[i].type > 5 || pieces[i].type == 2 || pieces[i].type == 3))
            BAD("%s: piece %d has type %d; after the byte pieces tern's llama tokenizer holds normal pieces only", what, i,
                pieces[i].type);
        if (!isfinite(pieces[i].score)) BAD("%s: piece %d has a non-finite score", what, i);
        bytes += 7 + pieces[i].len;
    }
    bytes += (size_t)(V - np) * (7 + 16);
    o = tern_xmalloc(bytes);
    size_t off = 0;
    memcpy(o, "TERNTKZ", 8);
    off = 8;
    uint32_t hdr[4] = {1, (uint32_t)V, add_prefix ? 1u : 0u, 0};
    memcpy(o + off, hdr, sizeof hdr);
    off += sizeof hdr;
    for (int i = 0; i < V; i++) {
        char padname[24];
        const uint8_t *s;
        uint16_t len;
        float score;
        uint8_t type;
        if (i < np) {
            s = pieces[i].s;
            len = (uint16_t)pieces[i].len;
            score = pieces[i].score;
            // user-defined (4) and unused (5) pieces become normal pieces (tern's llama kind has no others)
            type = (uint8_t)(i == 0 ? TERN_PIECE_UNKNOWN : i < 3 ? TERN_PIECE_CONTROL : i < TERN_TOK_FIRST_NORMAL ? TERN_PIECE_BYTE : TERN_PIECE_NORMAL);
        } else {
            // padding rows (embedding larger than the tokenizer): normal pieces scored below
            // everything; encoding reaches one only by merging text "[PAD<n>]" through pieces
            // like "[PA" that a real vocabulary lacks
            int k = snprintf(padname, sizeof padname, "[PAD%d]", i);
            s = (const uint8_t *)padname;
            len = (uint16_t)k;
            score = -1e9f;
            type = TERN_PIECE_NORMAL;
        }
        o[off++] = type;
        memcpy(o + off, &score, 4);
        off += 4;
        memcpy(o + off, &len, 2);
        off += 2;
        memcpy(o + off, s, len);
        off += len;
    }
    free(pieces);
    // validate through the tokenizer reader (duplicates, byte pieces, lengths)
    tern_tokenizer t;
    if (tern_tokenizer_from_bytes(&t, o, off, what) != 0) { free(o); return -1; }
    tern_tokenizer_free(&t);
    *out = o;
    *out_n = off;
    return 0;
fail:
    free(pieces);
    free(o);
    return -1;
}
