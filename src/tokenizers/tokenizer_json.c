// tokenizer_json.c — see tokenizer_json.h.
#include "tokenizers/tokenizer_json.h"
#include "tokenizers/tok_internal.h"
#include "tokenizers/unicode.h"
#include "util.h"
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARK "\xe2\x96\x81" // U+2581

// ------------------------------------------------------------------------------------------
// reading

static const char *jstr(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(const json_t *o, const char *key, int dflt) {
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int jtype_is(const json_t *o, const char *type) {
    const char *t = jstr(o, "type");
    return t && !strcmp(t, type);
}

// the elements of a Sequence (under key), or the object itself as a one-element list
static size_t seq_items(const json_t *o, const char *key, const json_t **items, size_t cap) {
    if (!o || json_is_null(o)) return 0;
    if (jtype_is(o, "Sequence")) {
        const json_t *a = json_object_get(o, key);
        size_t n = json_is_array(a) ? json_array_size(a) : 0;
        if (n > cap) n = cap + 1; // too many: the caller refuses
        for (size_t i = 0; i < n && i < cap; i++) items[i] = json_array_get(a, i);
        return n;
    }
    items[0] = o;
    return 1;
}

typedef struct {
    const char *what;
    int kind, pre, add_space_prefix, metaspace, nfc;
} components;

static int fail(const char *what, const char *part, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(const char *what, const char *part, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tern_error("%s: %s: %s", what, part, msg);
    return -1;
}

static int byte_level_ok(const json_t *bl, const char *what, int want_regex) {
    if (jbool(bl, "add_prefix_space", 0))
        return fail(what, "pre_tokenizer", "ByteLevel add_prefix_space=true is not supported");
    int re = jbool(bl, "use_regex", 1);
    if (re != want_regex)
        return fail(what, "pre_tokenizer", "ByteLevel use_regex=%s is not supported in this position",
                    re ? "true" : "false");
    return 0;
}

static int read_pre_tokenizer(const json_t *pt, components *c) {
    const char *what = c->what;
    const json_t *it[4];
    size_t n = seq_items(pt, "pretokenizers", it, 3);
    if (n == 0) return 0; // null: no pre-tokenizer (SentencePiece style with a normalizer)
    if (n > 3) return fail(what, "pre_tokenizer", "a Sequence of %zu pre-tokenizers is not supported",
                           json_array_size(json_object_get(pt, "pretokenizers")));
    if (n == 1 && jtype_is(it[0], "ByteLevel")) {
        if (byte_level_ok(it[0], what, 1)) return -1;
        c->kind = TERN_TOK_GPT2;
        c->pre = TERN_PRE_GPT2;
        return 0;
    }
    if (n == 1 && jtype_is(it[0], "Metaspace")) {
        const char *rep = jstr(it[0], "replacement");
        if (rep && strcmp(rep, MARK)) return fail(what, "pre_tokenizer", "Metaspace replacement \"%s\" is not supported", rep);
        if (jbool(it[0], "split", 0)) return fail(what, "pre_tokenizer", "Metaspace split=true is not supported");
        const char *scheme = jstr(it[0], "prepend_scheme");
        int prefix = scheme ? strcmp(scheme, "never") != 0 : jbool(it[0], "add_prefix_space", 1);
        c->kind = TERN_TOK_LLAMA;
        c->metaspace = 1;
        c->add_space_prefix = prefix;
        return 0;
    }
    if (n == 2 && jtype_is(it[0], "Split") && jtype_is(it[1], "ByteLevel")) {
        const json_t *pat = json_object_get(it[0], "pattern");
        const char *re = jstr(pat, "Regex");
        if (!re) return fail(what, "pre_tokenizer", "Split with a String pattern is not supported");
        int pre = tern_pre_from_split_regex(re);
        if (pre < 0)
            return fail(what, "pre_tokenizer", "Split regex \"%.300s\" is not supported (known: the LLaMA 3 and Qwen2 patterns)", re);
        const char *beh = jstr(it[0], "behavior");
        if (!beh || strcmp(beh, "Isolated")) return fail(what, "pre_tokenizer", "Split behavior \"%s\" is not supported (Isolated is)", beh ? beh : "?");
        if (jbool(it[0], "invert", 0)) return fail(what, "pre_tokenizer", "Split invert=true is not supported");
        if (byte_level_ok(it[1], what, 0)) return -1;
        c->kind = TERN_TOK_GPT2;
        c->pre = pre;
        return 0;
    }
    if (n == 2 && jtype_is(it[0], "Digits") && jtype_is(it[1], "ByteLevel")) {
        if (!jbool(it[0], "individual_digits", 0)) return fail(what, "pre_tokenizer", "Digits individual_digits=false is not supported");
        if (byte_level_ok(it[1], what, 1)) return -1;
        c->kind = TERN_TOK_GPT2;
        c->pre = TERN_PRE_SMOLLM;
        return 0;
    }
    char desc[200] = "";
    for (size_t i = 0; i < n; i++) {
        const char *ty = jstr(it[i], "type");
        snprintf(desc + strlen(desc), sizeof desc - strlen(desc), "%s%s", i ? ", " : "", ty ? ty : "?");
    }
    return fail(what, "pre_tokenizer", "[%s] is not supported (known: ByteLevel; Split(LLaMA 3 / Qwen2 regex) + "
                                       "ByteLevel; Digits + ByteLevel; Metaspace)", desc);
}

static int read_normalizer(const json_t *no, components *c) {
    const char *what = c->what;
    const json_t *it[3];
    size_t n = seq_items(no, "normalizers", it, 2);
    if (n == 0) return 0;
    if (n == 1 && jtype_is(it[0], "NFC")) { // Qwen2's: only with a byte-level pre-tokenizer
        if (c->kind != TERN_TOK_GPT2) return fail(what, "normalizer", "NFC is supported with a byte-level pre-tokenizer only");
        c->nfc = 1;
        return 0;
    }
    int prepend = 0, replace = 0;
    for (size_t i = 0; i < n && n <= 2; i++) {
        if (jtype_is(it[i], "Prepend") && jstr(it[i], "prepend") && !strcmp(jstr(it[i], "prepend"), MARK) && i == 0) {
            prepend = 1;
            continue;
        }
        if (jtype_is(it[i], "Replace")) {
            const char *from = jstr(json_object_get(it[i], "pattern"), "String"), *to = jstr(it[i], "content");
            if (from && to && !strcmp(from, " ") && !strcmp(to, MARK)) {
                replace = 1;
                continue;
            }
        }
        const char *ty = jstr(it[i], "type");
        return fail(what, "normalizer", "%s is not supported (known: NFC; the SentencePiece Prepend(\"\xe2\x96\x81\") + "
                                        "Replace(\" \" -> \"\xe2\x96\x81\"))", ty ? ty : "?");
    }
    if (n > 2 || !replace) return fail(what, "normalizer", "only Prepend(\"\xe2\x96\x81\") + Replace(\" \" -> \"\xe2\x96\x81\") is supported");
    if (c->kind == TERN_TOK_GPT2) return fail(what, "normalizer", "a byte-level tokenizer with a normalizer is not supported");
    c->kind = TERN_TOK_LLAMA;
    c->add_space_prefix = prepend;
    return 0;
}

static int read_decoder(const json_t *de, const components *c) {
    const char *what = c->what;
    const json_t *it[6];
    size_t n = seq_items(de, "decoders", it, 5);
    if (c->kind == TERN_TOK_GPT2) {
        if (n == 1 && jtype_is(it[0], "ByteLevel")) return 0;
        return fail(what, "decoder", "a byte-level tokenizer needs the ByteLevel decoder");
    }
    // SentencePiece style: Replace(▁ -> ' '), ByteFallback, Fuse, Strip / Metaspace, ByteFallback ...
    int fallback = 0, space = 0;
    for (size_t i = 0; i < n && n <= 5; i++) {
        if (jtype_is(it[i], "ByteFallback")) fallback = 1;
        else if (jtype_is(it[i], "Metaspace")) space = 1;
        else if (jtype_is(it[i], "Replace")) {
            const char *from = jstr(json_object_get(it[i], "pattern"), "String"), *to = jstr(it[i], "content");
            if (!from || !to || strcmp(from, MARK) || strcmp(to, " "))
                return fail(what, "decoder", "Replace other than \"\xe2\x96\x81\" -> \" \" is not supported");
            space = 1;
        } else if (!jtype_is(it[i], "Fuse") && !jtype_is(it[i], "Strip")) {
            const char *ty = jstr(it[i], "type");
            return fail(what, "decoder", "%s is not supported", ty ? ty : "?");
        }
    }
    if (!fallback || !space) return fail(what, "decoder", "a SentencePiece-style tokenizer needs ByteFallback and \xe2\x96\x81 -> \" \"");
    return 0;
}

// post_processor: bos / eos from TemplateProcessing
static int read_post(const json_t *pp, const char *what, const json_t *vocab_ids, int *bos, int *eos, int *add_bos,
                     int *add_eos, int (*lookup)(const json_t *, const char *)) {
    const json_t *it[4];
    size_t n = seq_items(pp, "processors", it, 3);
    for (size_t i = 0; i < n && n <= 3; i++) {
        if (jtype_is(it[i], "ByteLevel")) continue;
        if (!jtype_is(it[i], "TemplateProcessing")) {
            const char *ty = jstr(it[i], "type");
            return fail(what, "post_processor", "%s is not supported (ByteLevel, TemplateProcessing are)", ty ? ty : "?");
        }
        const json_t *single = json_object_get(it[i], "single");
        size_t m = json_is_array(single) ? json_array_size(single) : 0;
        int seen_a = 0;
        for (size_t k = 0; k < m; k++) {
            const json_t *e = json_array_get(single, k);
            const json_t *st = json_object_get(e, "SpecialToken"), *sq = json_object_get(e, "Sequence");
            if (sq) {
                if (seen_a) return fail(what, "post_processor", "TemplateProcessing with two sequences in 'single'");
                seen_a = 1;
                continue;
            }
            const char *name = jstr(st, "id");
            if (!name) return fail(what, "post_processor", "TemplateProcessing item %zu is neither SpecialToken nor Sequence", k);
            // the id: special_tokens[name].ids[0], else the vocabulary's id of the name
            const json_t *spt = json_object_get(json_object_get(it[i], "special_tokens"), name);
            const json_t *ids = json_object_get(spt, "ids");
            int id = json_is_array(ids) && json_array_size(ids) == 1 && json_is_integer(json_array_get(ids, 0))
                         ? (int)json_integer_value(json_array_get(ids, 0))
                         : lookup(vocab_ids, name);
            if (id < 0) return fail(what, "post_processor", "special token \"%s\" is not in the vocabulary", name);
            if (!seen_a) {
                if (*add_bos) return fail(what, "post_processor", "TemplateProcessing with two tokens before the sequence");
                *bos = id;
                *add_bos = 1;
            } else {
                if (*add_eos) return fail(what, "post_processor", "TemplateProcessing with two tokens after the sequence");
                *eos = id;
                *add_eos = 1;
            }
        }
        if (!seen_a) return fail(what, "post_processor", "TemplateProcessing 'single' has no sequence");
    }
    if (n > 3) return fail(what, "post_processor", "a Sequence of that many processors is not supported");
    return 0;
}

static int vocab_lookup(const json_t *vocab, const char *s) {
    const json_t *v = json_object_get(vocab, s);
    return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

// Scores of a SentencePiece-style vocabulary from its merges: the k-th distinct merge result
// (in rank order) gets -(k + 1); other pieces 0 if they are one character, else the lowest.
static void llama_scores(const tern_tokenizer_spec *s, const char *const *ml, const char *const *mr, int nm, float *scores) {
    int V = s->vocab_size;
    for (int i = 0; i < V; i++) scores[i] = NAN;
    int k = 0;
    char *cat = tern_xmalloc(2 * TERN_TOK_MAX_PIECE + 1);
    // result of each merge: the piece spelled by the two parts
    // (a small map: string -> id over the whole vocabulary)
    uint32_t cap = 1024;
    while (cap < 2u * (uint32_t)V) cap *= 2;
    int *map = tern_xmalloc(cap * sizeof(int));
    memset(map, 0xff, cap * sizeof(int));
    for (int i = 0; i < V; i++) {
        size_t L = (size_t)s->piece_len[i];
        uint32_t h = (uint32_t)tok_hbytes((const uint8_t *)s->pieces[i], L) & (cap - 1);
        while (map[h] >= 0) h = (h + 1) & (cap - 1);
        map[h] = i;
    }
    for (int m = 0; m < nm; m++) {
        size_t la = strlen(ml[m]), lb = strlen(mr[m]);
        if (la + lb > TERN_TOK_MAX_PIECE) continue;
        memcpy(cat, ml[m], la);
        memcpy(cat + la, mr[m], lb);
        uint32_t h = (uint32_t)tok_hbytes((const uint8_t *)cat, la + lb) & (cap - 1);
        for (; map[h] >= 0; h = (h + 1) & (cap - 1)) {
            int id = map[h];
            if ((size_t)s->piece_len[id] == la + lb && !memcmp(s->pieces[id], cat, la + lb)) {
                if (isnan(scores[id])) scores[id] = -(float)(++k);
                break;
            }
        }
    }
    for (int i = 0; i < V; i++) {
        if (!isnan(scores[i])) continue;
        uint32_t cp;
        int one = s->types[i] == TERN_PIECE_NORMAL &&
                  tern_utf8_decode((const uint8_t *)s->pieces[i], (size_t)s->piece_len[i], &cp) == s->piece_len[i];
        scores[i] = one || s->types[i] != TERN_PIECE_NORMAL ? 0.0f : -(float)(k + 1);
    }
    free(map);
    free(cat);
}

// a token name in tokenizer_config.json: "name" or {"content": "name", ...}
static const char *config_token(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_string(v)) return json_string_value(v);
    return jstr(v, "content");
}

// How tokenizer.json holds a piece type (tern_tokenizer_to_json writes it so, the reader reads it
// back so): normal pieces in the vocabulary; control, unknown and unused pieces as special added
// tokens (read back as control), user-defined ones as non-special added tokens.
static int json_written_type(int ty) {
    return ty == TERN_PIECE_USER ? TERN_PIECE_USER
           : ty == TERN_PIECE_CONTROL || ty == TERN_PIECE_UNKNOWN || ty == TERN_PIECE_UNUSED ? TERN_PIECE_CONTROL
                                                                                        : TERN_PIECE_NORMAL;
}
// The llama kind's reading of a piece of that type: a normal "<0xXX>" piece is a byte piece, and
// model.unk_token is unknown (unless user-defined or a byte piece).
static int json_llama_type(int ty, const char *p, int len, int is_unk) {
    if (ty == TERN_PIECE_NORMAL && len == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>') ty = TERN_PIECE_BYTE;
    if (is_unk && (ty == TERN_PIECE_NORMAL || ty == TERN_PIECE_CONTROL)) ty = TERN_PIECE_UNKNOWN;
    return ty;
}

int tern_tokenizer_from_json(tern_tokenizer *t, const char *buf, size_t n, const char *cfg_buf, size_t cfg_n,
                             const char *what) {
    memset(t, 0, sizeof *t);
    json_error_t err;
    json_t *cfg = NULL;
    if (cfg_buf) {
        cfg = json_loadb(cfg_buf, cfg_n, 0, &err);
        if (!cfg || !json_is_object(cfg)) {
            tern_error("%s: tokenizer_config.json: invalid JSON at line %d, column %d: %s", what, err.line, err.column,
                       cfg ? "not an object" : err.text);
            json_decref(cfg);
            return -1;
        }
    }
    json_t *root = json_loadb(buf, n, 0, &err);
    if (!root) {
        tern_error("%s: invalid JSON at line %d, column %d: %s", what, err.line, err.column, err.text);
        json_decref(cfg);
        return -1;
    }
    int rc = -1;
    char **pieces = NULL;
    int *plen = NULL, *types = NULL;
    uint8_t *attrs = NULL;
    float *scores = NULL;
    const char **mleft = NULL, **mright = NULL;
    char *msplit = NULL;
    components c = {what, -1, TERN_PRE_NONE, 0, 0, 0};
    if (!json_is_object(root)) { fail(what, "top level", "not a JSON object"); goto done; }
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) { fail(what, "model", "missing"); goto done; }
    const char *mtype = jstr(model, "type");
    if (mtype && strcmp(mtype, "BPE")) { fail(what, "model", "type %s is not supported (BPE is)", mtype); goto done; }
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab)) { fail(what, "model.vocab", "missing or not an object"); goto done; }
    if (merges && !json_is_array(merges) && !json_is_null(merges)) { fail(what, "model.merges", "not an array"); goto done; }
    const json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) > 0) { fail(what, "model", "dropout is not supported"); goto done; }
    const char *csp = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow)) { fail(what, "model", "continuing_subword_prefix / end_of_word_suffix are not supported"); goto done; }
    int byte_fallback = jbool(model, "byte_fallback", 0);
    // pieces by id: model.vocab, then added_tokens
    int V = 0;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TERN_TOK_MAX_VOCAB) {
            fail(what, "model.vocab", "\"%.80s\" has a bad id", key);
            goto done;
        }
        if ((int)json_integer_value(val) + 1 > V) V = (int)json_integer_value(val) + 1;
    }
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added)) { fail(what, "added_tokens", "not an array"); goto done; }
    size_t na = json_is_array(added) ? json_array_size(added) : 0;
    for (size_t i = 0; i < na; i++) {
        const json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= TERN_TOK_MAX_VOCAB ||
            !jstr(a, "content")) {
            fail(what, "added_tokens", "entry %zu lacks a valid id or content", i);
            goto done;
        }
        if ((int)json_integer_value(id) + 1 > V) V = (int)json_integer_value(id) + 1;
    }
    if (V == 0) { fail(what, "model.vocab", "empty"); goto done; }
    pieces = tern_xcalloc((size_t)V, sizeof(char *));
    plen = tern_xcalloc((size_t)V, sizeof(int));
    types = tern_xcalloc((size_t)V, sizeof(int));
    attrs = tern_xcalloc((size_t)V, 1);
    scores = tern_xcalloc((size_t)V, sizeof(float));
    json_object_foreach((json_t *)vocab, key, val) {
        int id = (int)json_integer_value(val);
        if (pieces[id]) { fail(what, "model.vocab", "id %d is given to \"%.80s\" and \"%.80s\"", id, pieces[id], key); goto done; }
        pieces[id] = (char *)key;
        plen[id] = (int)strlen(key);
        types[id] = TERN_PIECE_NORMAL;
    }
    for (size_t i = 0; i < na; i++) {
        const json_t *a = json_array_get(added, i);
        int id = (int)json_integer_value(json_object_get(a, "id"));
        const char *content = jstr(a, "content");
        if (jbool(a, "single_word", 0)) { fail(what, "added_tokens", "\"%.80s\": single_word=true is not supported", content); goto done; }
        if (pieces[id] && strcmp(pieces[id], content)) {
            fail(what, "added_tokens", "id %d is \"%.80s\" but the vocabulary has \"%.80s\"", id, content, pieces[id]);
            goto done;
        }
        if (types[id] != TERN_PIECE_NORMAL && types[id] != 0) { fail(what, "added_tokens", "id %d is listed twice", id); goto done; }
        pieces[id] = (char *)content;
        plen[id] = (int)json_string_length(json_object_get(a, "content"));
        types[id] = jbool(a, "special", 0) ? TERN_PIECE_CONTROL : TERN_PIECE_USER;
        attrs[id] = (uint8_t)((jbool(a, "lstrip", 0) ? TERN_ATTR_LSTRIP : 0) | (jbool(a, "rstrip", 0) ? TERN_ATTR_RSTRIP : 0));
    }
    for (int i = 0; i < V; i++)
        if (!pieces[i]) { fail(what, "model.vocab", "no token has id %d (ids must be 0..%d without gaps)", i, V - 1); goto done; }
    // components
    if (read_pre_tokenizer(json_object_get(root, "pre_tokenizer"), &c)) goto done;
    if (read_normalizer(json_object_get(root, "normalizer"), &c)) goto done;
    if (c.kind < 0) {
        fail(what, "pre_tokenizer", "neither byte-level (ByteLevel) nor SentencePiece style (Metaspace, or the "
                                    "Prepend/Replace normalizer): not supported");
        goto done;
    }
    if (c.kind == TERN_TOK_GPT2 && byte_fallback) { fail(what, "model", "byte_fallback with a ByteLevel pre-tokenizer is not supported"); goto done; }
    if (c.kind == TERN_TOK_LLAMA && !byte_fallback) { fail(what, "model", "a SentencePiece-style tokenizer needs byte_fallback=true"); goto done; }
    if (read_decoder(json_object_get(root, "decoder"), &c)) goto done;
    int bos = -1, eos = -1, add_bos = 0, add_eos = 0;
    if (read_post(json_object_get(root, "post_processor"), what, vocab, &bos, &eos, &add_bos, &add_eos, vocab_lookup)) goto done;
    // tokenizer_config.json: bos_token / eos_token name the ids the post-processor does not
    // (add_bos_token / add_eos_token apply only without a TemplateProcessing)
    for (int k = 0; cfg && k < 2; k++) {
        const char *name = config_token(cfg, k ? "eos_token" : "bos_token");
        int *id = k ? &eos : &bos, *add = k ? &add_eos : &add_bos;
        if (name && *id < 0) {
            *id = vocab_lookup(vocab, name);
            for (size_t i = 0; *id < 0 && i < na; i++)
                if (!strcmp(jstr(json_array_get(added, i), "content"), name))
                    *id = (int)json_integer_value(json_object_get(json_array_get(added, i), "id"));
            if (*id < 0) { fail(what, "tokenizer_config.json", "%s \"%.80s\" is not in the vocabulary", k ? "eos_token" : "bos_token", name); goto done; }
            if (!*add) *add = jbool(cfg, k ? "add_eos_token" : "add_bos_token", 0);
        }
    }
    // merges: the two piece strings each (resolved to ids by tern_tokenizer_build)
    size_t nm = json_is_array(merges) ? json_array_size(merges) : 0;
    if (nm > (size_t)INT_MAX / 2) { fail(what, "model.merges", "too many"); goto done; }
    mleft = tern_xmalloc((nm + 1) * sizeof(char *));
    mright = tern_xmalloc((nm + 1) * sizeof(char *));
    size_t split_bytes = 0;
    for (size_t m = 0; m < nm; m++) {
        const json_t *e = json_array_get(merges, m);
        if (json_is_string(e)) split_bytes += json_string_length(e) + 1;
    }
    msplit = tern_xmalloc(split_bytes + 1);
    char *q = msplit;
    for (size_t m = 0; m < nm; m++) {
        const json_t *e = json_array_get(merges, m);
        if (json_is_string(e)) { // "a b": split at the one space
            const char *s = json_string_value(e), *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) { fail(what, "model.merges", "merge %zu \"%.80s\" is not two pieces separated by one space", m, s); goto done; }
            size_t L = json_string_length(e);
            memcpy(q, s, L + 1);
            q[sp - s] = 0;
            mleft[m] = q;
            mright[m] = q + (sp - s) + 1;
            q += L + 1;
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            mleft[m] = json_string_value(json_array_get(e, 0));
            mright[m] = json_string_value(json_array_get(e, 1));
        } else {
            fail(what, "model.merges", "merge %zu is neither \"a b\" nor [\"a\", \"b\"]", m);
            goto done;
        }
    }
    int unk = -1;
    const char *unk_tok = jstr(model, "unk_token");
    if (unk_tok) {
        unk = vocab_lookup(vocab, unk_tok);
        if (unk < 0) { fail(what, "model.unk_token", "\"%.80s\" is not in the vocabulary", unk_tok); goto done; }
    }
    tern_tokenizer_spec s = {.kind = c.kind, .vocab_size = V, .pieces = (const char *const *)pieces, .piece_len = plen,
                             .scores = scores, .types = types, .attrs = attrs, .bos_id = bos, .eos_id = eos,
                             .unk_id = unk, .add_bos = add_bos, .add_eos = add_eos};
    if (c.kind == TERN_TOK_GPT2) {
        s.pre = c.pre;
        s.nfc = c.nfc;
        s.ignore_merges = jbool(model, "ignore_merges", 0);
        s.n_merges = (int)nm;
        s.merge_left = mleft;
        s.merge_right = mright;
    } else {
        s.add_space_prefix = c.add_space_prefix;
        if (jbool(model, "ignore_merges", 0)) { fail(what, "model", "ignore_merges with a SentencePiece-style tokenizer is not supported"); goto done; }
        for (int i = 0; i < V; i++) types[i] = json_llama_type(types[i], pieces[i], plen[i], i == unk);
        llama_scores(&s, mleft, mright, (int)nm, scores);
    }
    rc = tern_tokenizer_build(t, &s, what);
done:
    free(pieces);
    free(plen);
    free(types);
    free(attrs);
    free(scores);
    free(mleft);
    free(mright);
    free(msplit);
    json_decref(root);
    json_decref(cfg);
    return rc;
}

// tokenizer_config.json beside path (same directory), or NULL
static char *config_path(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t d = slash ? (size_t)(slash - path + 1) : 0;
    char *c = tern_xmalloc(d + 32);
    memcpy(c, path, d);
    strcpy(c + d, "tokenizer_config.json");
    return c;
}

static int load_json_buf(tern_tokenizer *t, const char *path, const char *buf, size_t n) {
    char *cp = config_path(path), *cfg = NULL;
    size_t cn = 0;
    FILE *f = fopen(cp, "rb");
    if (f) {
        fclose(f);
        cfg = tern_read_file(cp, &cn);
        if (!cfg) {
            free(cp);
            return -1;
        }
    }
    int rc = tern_tokenizer_from_json(t, buf, n, cfg, cn, path);
    free(cfg);
    free(cp);
    return rc;
}

int tern_tokenizer_load_json(tern_tokenizer *t, const char *path) {
    memset(t, 0, sizeof *t);
    size_t n;
    char *buf = tern_read_file(path, &n);
    if (!buf) return -1;
    int rc = load_json_buf(t, path, buf, n);
    free(buf);
    return rc;
}

int tern_tokenizer_load_any(tern_tokenizer *t, const char *path) {
    memset(t, 0, sizeof *t);
    size_t n;
    char *buf = tern_read_file(path, &n);
    if (!buf) return -1;
    size_t i = 0; // JSON starts with '{' (after whitespace); anything else is read as a .tkz
    while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')) i++;
    int rc = i < n && buf[i] == '{' ? load_json_buf(t, path, buf, n) : tern_tokenizer_from_bytes(t, buf, n, path);
    free(buf);
    return rc;
}

// ------------------------------------------------------------------------------------------
// writing

static json_t *jpiece(const tern_tokenizer *t, int id) {
    return json_stringn(t->pieces[id], (size_t)t->piece_len[id]); // NULL if not valid UTF-8
}

static json_t *byte_level(int use_regex) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex",
                     use_regex);
}

static json_t *pre_tokenizer_json(int pre) {
    switch (pre) {
    case TERN_PRE_GPT2: return byte_level(1);
    case TERN_PRE_SMOLLM:
        return json_pack("{s:s, s:[{s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Digits",
                         "individual_digits", 1, byte_level(1));
    default:
        return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Split",
                         "pattern", "Regex", tern_pre_regex(pre), "behavior", "Isolated", "invert", 0, byte_level(0));
    }
}

static json_t *template_json(const tern_tokenizer *t) {
    json_t *single = json_array(), *pair = json_array(), *sp = json_object();
    for (int side = 0; side < 2; side++) { // 0: before the sequence (bos), 1: after (eos)
        int on = side ? t->add_eos : t->add_bos, id = side ? t->eos_id : t->bos_id;
        if (side == 1) {
            json_array_append_new(single, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0));
            json_array_append_new(pair, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0));
        }
        if (!on) continue;
        json_t *name = jpiece(t, id);
        json_array_append_new(single, json_pack("{s:{s:O, s:i}}", "SpecialToken", "id", name, "type_id", 0));
        json_object_set_new(sp, t->pieces[id], json_pack("{s:O, s:[i], s:[O]}", "id", name, "ids", id, "tokens", name));
        json_decref(name);
    }
    json_array_append_new(pair, json_pack("{s:{s:s, s:i}}", "Sequence", "id", "B", "type_id", 1));
    return json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                     "special_tokens", sp);
}

typedef struct {
    float score;
    int piece, a, b;
} lmerge;

static int cmp_lmerge(const void *x, const void *y) {
    const lmerge *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->piece != q->piece) return p->piece < q->piece ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

// SentencePiece-style merges: every split of a normal piece into two normal pieces, by score
static lmerge *llama_merges(const tern_tokenizer *t, size_t *n) {
    size_t cap = 1024, k = 0;
    lmerge *m = tern_xmalloc(cap * sizeof(lmerge));
    for (int i = 0; i < t->vocab_size; i++) {
        if (t->types[i] != TERN_PIECE_NORMAL) continue;
        const uint8_t *p = (const uint8_t *)t->pieces[i];
        int len = t->piece_len[i];
        for (int s = 0; s < len;) { // split points at character boundaries (valid UTF-8 pieces)
            uint32_t cp;
            s += tern_utf8_decode(p + s, (size_t)(len - s), &cp);
            if (s >= len) break;
            int a = tern_tokenizer_piece_id(t, (const char *)p, (size_t)s);
            int b = tern_tokenizer_piece_id(t, (const char *)p + s, (size_t)(len - s));
            if (a < 0 || b < 0 || t->types[a] != TERN_PIECE_NORMAL || t->types[b] != TERN_PIECE_NORMAL) continue;
            if (k == cap) {
                cap *= 2;
                m = realloc(m, cap * sizeof(lmerge));
                if (!m) tern_fatal("out of memory");
            }
            m[k++] = (lmerge){t->scores[i], i, a, b};
        }
    }
    qsort(m, k, sizeof(lmerge), cmp_lmerge);
    *n = k;
    return m;
}

int tern_tokenizer_to_json(const tern_tokenizer *t, char **buf, size_t *n) {
    json_t *root = json_object(), *vocab = json_object(), *added = json_array(), *merges = json_array();
    int rc = -1;
    for (int i = 0; i < t->vocab_size; i++) {
        json_t *j = jpiece(t, i);
        if (!j) {
            tern_error("piece %d is not valid UTF-8: a tokenizer.json cannot hold it", i);
            goto done;
        }
        json_decref(j);
    }
    for (int i = 0; i < t->vocab_size; i++) {
        char *key = t->pieces[i];
        json_object_set_new(vocab, key, json_integer(i));
        const int ty = json_written_type(t->types[i]);
        if (ty != TERN_PIECE_NORMAL)
            json_array_append_new(added, json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:b}", "id", i, "content", jpiece(t, i),
                                                   "single_word", 0, "lstrip", (t->attrs[i] & TERN_ATTR_LSTRIP) != 0,
                                                   "rstrip", (t->attrs[i] & TERN_ATTR_RSTRIP) != 0, "normalized", 0,
                                                   "special", ty == TERN_PIECE_CONTROL));
    }
    json_t *model;
    if (t->kind == TERN_TOK_GPT2) {
        for (int m = 0; m < t->n_merges; m++)
            json_array_append_new(merges, json_pack("[o, o]", jpiece(t, t->merges[2 * m]), jpiece(t, t->merges[2 * m + 1])));
        model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout", "unk_token",
                          "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                          "ignore_merges", t->ignore_merges, "vocab", vocab, "merges", merges);
        if (t->unk_id >= 0) json_object_set_new(model, "unk_token", jpiece(t, t->unk_id));
        json_object_set_new(root, "version", json_string("1.0"));
        json_object_set_new(root, "truncation", json_null());
        json_object_set_new(root, "padding", json_null());
        json_object_set_new(root, "added_tokens", added);
        json_object_set_new(root, "normalizer", t->nfc ? json_pack("{s:s}", "type", "NFC") : json_null());
        json_object_set_new(root, "pre_tokenizer", pre_tokenizer_json(t->pre));
        json_object_set_new(root, "post_processor",
                            t->add_bos || t->add_eos ? template_json(t)
                                                     : json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel",
                                                                 "add_prefix_space", 1, "trim_offsets", 0, "use_regex", 1));
        json_object_set_new(root, "decoder", json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                                       "trim_offsets", 1, "use_regex", 1));
    } else {
        size_t nm;
        lmerge *lm = llama_merges(t, &nm);
        for (size_t m = 0; m < nm; m++)
            json_array_append_new(merges, json_pack("[o, o]", jpiece(t, lm[m].a), jpiece(t, lm[m].b)));
        free(lm);
        model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout", "unk_token",
                          "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1,
                          "ignore_merges", 0, "vocab", vocab, "merges", merges);
        if (t->unk_id >= 0) json_object_set_new(model, "unk_token", jpiece(t, t->unk_id));
        json_t *norm = json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ", "content", MARK);
        if (t->add_space_prefix)
            norm = json_pack("{s:s, s:[{s:s, s:s}, o]}", "type", "Sequence", "normalizers", "type", "Prepend", "prepend",
                             MARK, norm);
        json_object_set_new(root, "version", json_string("1.0"));
        json_object_set_new(root, "truncation", json_null());
        json_object_set_new(root, "padding", json_null());
        json_object_set_new(root, "added_tokens", added);
        json_object_set_new(root, "normalizer", norm);
        json_object_set_new(root, "pre_tokenizer", json_null());
        json_object_set_new(root, "post_processor", t->add_bos || t->add_eos ? template_json(t) : json_null());
        json_object_set_new(root, "decoder",
                            json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type",
                                      "Sequence", "decoders", "type", "Replace", "pattern", "String", MARK, "content", " ",
                                      "type", "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ", "start",
                                      t->add_space_prefix ? 1 : 0, "stop", 0));
    }
    json_object_set_new(root, "model", model);
    added = vocab = merges = NULL; // owned by root now
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!s) {
        tern_error("cannot serialize the tokenizer as JSON");
        goto done;
    }
    *buf = s;
    *n = strlen(s);
    rc = 0;
done:
    json_decref(root);
    json_decref(vocab);
    json_decref(added);
    json_decref(merges);
    return rc;
}

// what tern_tokenizer_to_json writes, as tern_tokenizer_from_json reads it
int tern_tokenizer_json_type(const tern_tokenizer *t, int i) {
    const int ty = json_written_type(t->types[i]);
    return t->kind == TERN_TOK_LLAMA ? json_llama_type(ty, t->pieces[i], t->piece_len[i], i == t->unk_id) : ty;
}

int tern_tokenizer_config_json(const tern_tokenizer *t, char **buf, size_t *n) {
    json_t *root = json_object();
    json_object_set_new(root, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    if (t->bos_id >= 0) json_object_set_new(root, "bos_token", jpiece(t, t->bos_id));
    if (t->eos_id >= 0) json_object_set_new(root, "eos_token", jpiece(t, t->eos_id));
    if (t->unk_id >= 0) json_object_set_new(root, "unk_token", jpiece(t, t->unk_id));
    json_object_set_new(root, "add_bos_token", json_boolean(t->add_bos));
    json_object_set_new(root, "add_eos_token", json_boolean(t->add_eos));
    json_object_set_new(root, "clean_up_tokenization_spaces", json_false());
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s) {
        tern_error("cannot serialize tokenizer_config.json");
        return -1;
    }
    *buf = s;
    *n = strlen(s);
    return 0;
}

static int write_atomic(const char *path, const char *buf, size_t n) {
    char tmp[4200];
    tern_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        tern_error("%s: cannot create: %m", path);
        return -1;
    }
    int ok = fwrite(buf, 1, n, f) == n && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        tern_error("%s: write failed", path);
        tern_discard_file(tmp);
        return -1;
    }
    return tern_commit_file(tmp, path);
}

int tern_tokenizer_save_json(const tern_tokenizer *t, const char *path) {
    char *buf, *cbuf;
    size_t n, cn;
    if (tern_tokenizer_to_json(t, &buf, &n) != 0 || tern_tokenizer_config_json(t, &cbuf, &cn) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("%s: %s", path, msg);
        return -1;
    }
    char *cp = config_path(path);
    int rc = write_atomic(path, buf, n);
    if (rc == 0) rc = write_atomic(cp, cbuf, cn);
    free(cp);
    free(buf);
    free(cbuf);
    return rc;
}
