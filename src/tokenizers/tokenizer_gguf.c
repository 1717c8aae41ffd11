// tokenizer_gguf.c — see tokenizer_gguf.h.
#include "tokenizers/tokenizer_gguf.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                 \
    do {                         \
        if ((x) != 0) goto fail; \
    } while (0)

int tern_tokenizer_gguf_write(const tern_tokenizer *t, tern_gguf_writer *w) {
    int V = t->vocab_size, rc = -1;
    int32_t *types = tern_xmalloc((size_t)V * sizeof(int32_t));
    char **merges = NULL;
    for (int i = 0; i < V; i++) types[i] = t->types[i];
    if (t->kind == TERN_TOK_GPT2) {
        CHECK(tern_gguf_add_str(w, "tokenizer.ggml.model", "gpt2"));
        CHECK(tern_gguf_add_str(w, "tokenizer.ggml.pre", tern_pre_gguf_name(t->pre)));
        CHECK(tern_gguf_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t->pieces, (uint64_t)V));
        CHECK(tern_gguf_add_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_INT32, types, (uint64_t)V));
        merges = tern_xcalloc((size_t)t->n_merges + 1, sizeof(char *));
        for (int m = 0; m < t->n_merges; m++) {
            int a = t->merges[2 * m], b = t->merges[2 * m + 1];
            if (strchr(t->pieces[a], ' ') || strchr(t->pieces[b], ' ')) {
                tern_error("merge %d: piece \"%s\" / \"%s\" contains a space (GGUF merges are \"left right\")", m,
                           t->pieces[a], t->pieces[b]);
                goto fail;
            }
            size_t la = (size_t)t->piece_len[a], lb = (size_t)t->piece_len[b];
            merges[m] = tern_xmalloc(la + lb + 2);
            memcpy(merges[m], t->pieces[a], la);
            merges[m][la] = ' ';
            memcpy(merges[m] + la + 1, t->pieces[b], lb);
            merges[m][la + 1 + lb] = 0;
        }
        CHECK(tern_gguf_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, (uint64_t)t->n_merges));
    } else {
        CHECK(tern_gguf_add_str(w, "tokenizer.ggml.model", "llama"));
        CHECK(tern_gguf_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t->pieces, (uint64_t)V));
        CHECK(tern_gguf_add_arr(w, "tokenizer.ggml.scores", TERN_GGUF_FLOAT32, t->scores, (uint64_t)V));
        CHECK(tern_gguf_add_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_INT32, types, (uint64_t)V));
        CHECK(tern_gguf_add_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix));
    }
    if (t->bos_id >= 0) CHECK(tern_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos_id));
    if (t->eos_id >= 0) CHECK(tern_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos_id));
    if (t->unk_id >= 0) CHECK(tern_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk_id));
    CHECK(tern_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos));
    CHECK(tern_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos));
    rc = 0;
fail:
    if (merges)
        for (int m = 0; m < t->n_merges; m++) free(merges[m]);
    free(merges);
    free(types);
    return rc;
}

// optional key: 0 absent (dflt kept), 1 read, -1 error
static int opt_id(const tern_gguf *g, const char *key, int V, int *out, const char *what) {
    if (tern_gguf_find_kv(g, key) < 0) return 0;
    int64_t v;
    if (tern_gguf_get_i64(g, key, &v)) return -1;
    if (v < 0 || v >= V) {
        tern_error("%s: %s = %lld out of range (vocab size %d)", what, key, (long long)v, V);
        return -1;
    }
    *out = (int)v;
    return 1;
}

static int opt_bool(const tern_gguf *g, const char *key, int *out) {
    if (tern_gguf_find_kv(g, key) < 0) return 0;
    return tern_gguf_get_bool(g, key, out) ? -1 : 1;
}

int tern_tokenizer_gguf_read_meta(const tern_gguf *g, tern_tokenizer_gguf_meta *m, const char *what) {
    memset(m, 0, sizeof *m);
    if (tern_gguf_find_kv(g, "tokenizer.ggml.tokens") < 0) return 1;
    const char *model = NULL, *pre_name = NULL;
    if (tern_gguf_find_kv(g, "tokenizer.ggml.model") < 0) {
        tern_error("%s: tokenizer.ggml.model missing", what);
        return -1;
    }
    if (tern_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL)) return -1;
    if (!strcmp(model, "llama")) m->kind = TERN_TOK_LLAMA;
    else if (!strcmp(model, "gpt2")) m->kind = TERN_TOK_GPT2;
    else {
        tern_error("%s: tokenizer.ggml.model is '%s' (tern reads 'llama' and 'gpt2')", what, model);
        return -1;
    }
    int k = tern_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (tern_gguf_kv_type(g, k) != TERN_GGUF_ARRAY || tern_gguf_kv_arr_type(g, k) != TERN_GGUF_STRING) {
        tern_error("%s: tokenizer.ggml.tokens is not an array of strings", what);
        return -1;
    }
    uint64_t n = tern_gguf_kv_arr_n(g, k);
    if (n < 1 || n > TERN_TOK_MAX_VOCAB) {
        tern_error("%s: tokenizer.ggml.tokens has %llu tokens (must be 1..%d)", what, (unsigned long long)n, TERN_TOK_MAX_VOCAB);
        return -1;
    }
    int V = m->vocab_size = (int)n;
    if (m->kind == TERN_TOK_LLAMA) { // llama.cpp's SPM defaults
        m->bos_id = V > 1 ? 1 : -1;
        m->eos_id = V > 2 ? 2 : -1;
        m->unk_id = 0;
        m->add_bos = 1;
        m->add_space_prefix = 1;
    } else {
        if (tern_gguf_find_kv(g, "tokenizer.ggml.pre") < 0) {
            tern_error("%s: tokenizer.ggml.pre missing (llama.cpp would fall back to its 'default' splitting, which tern "
                       "does not implement)", what);
            return -1;
        }
        if (tern_gguf_get_str(g, "tokenizer.ggml.pre", &pre_name, NULL)) return -1;
        m->pre = tern_pre_from_name(pre_name);
        if (m->pre < 0) {
            tern_error("%s: tokenizer.ggml.pre '%s' is not supported (tern splits like llama.cpp's gpt-2, llama-bpe, "
                       "smollm and qwen2 and the names it treats alike)", what, pre_name);
            return -1;
        }
        m->ignore_merges = m->pre == TERN_PRE_LLAMA3; // llama.cpp: the llama-bpe names ignore merges, add bos
        m->add_bos = m->pre == TERN_PRE_LLAMA3;
        m->bos_id = m->eos_id = m->unk_id = -1;
    }
    if (opt_id(g, "tokenizer.ggml.bos_token_id", V, &m->bos_id, what) < 0) return -1;
    if (opt_id(g, "tokenizer.ggml.eos_token_id", V, &m->eos_id, what) < 0) return -1;
    if (opt_id(g, "tokenizer.ggml.unknown_token_id", V, &m->unk_id, what) < 0) return -1;
    if (opt_bool(g, "tokenizer.ggml.add_bos_token", &m->add_bos) < 0) return -1;
    if (opt_bool(g, "tokenizer.ggml.add_eos_token", &m->add_eos) < 0) return -1;
    if (m->kind == TERN_TOK_LLAMA && opt_bool(g, "tokenizer.ggml.add_space_prefix", &m->add_space_prefix) < 0) return -1;
    if (m->add_bos && m->bos_id < 0) {
        tern_error("%s: tokenizer.ggml.add_bos_token is true but bos_token_id is not set", what);
        return -1;
    }
    if (m->add_eos && m->eos_id < 0) {
        tern_error("%s: tokenizer.ggml.add_eos_token is true but eos_token_id is not set", what);
        return -1;
    }
    return 0;
}

int tern_tokenizer_gguf_read(tern_tokenizer *t, const tern_gguf *g, const char *what) {
    memset(t, 0, sizeof *t);
    tern_tokenizer_gguf_meta meta;
    int mr = tern_tokenizer_gguf_read_meta(g, &meta, what);
    if (mr != 0) return mr;
    tern_tokenizer_spec s;
    memset(&s, 0, sizeof s);
    s.kind = meta.kind;
    const char *const *strs;
    const size_t *lens;
    uint64_t n;
    if (tern_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &strs, &lens, &n)) return -1;
    int V = (int)n, rc = -1;
    int *types = tern_xmalloc((size_t)V * sizeof(int)), *plen = tern_xmalloc((size_t)V * sizeof(int));
    char **mleft = NULL, **mright = NULL;
    int nm = 0;
    for (int i = 0; i < V; i++) {
        plen[i] = lens[i] > TERN_TOK_MAX_PIECE ? TERN_TOK_MAX_PIECE + 1 : (int)lens[i];
        types[i] = TERN_PIECE_NORMAL;
    }
    if (tern_gguf_find_kv(g, "tokenizer.ggml.token_type") >= 0) {
        const int32_t *ty;
        uint64_t nt;
        if (tern_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &ty, &nt)) goto done;
        if (nt != n) {
            tern_error("%s: tokenizer.ggml.token_type has %llu entries for %llu tokens", what, (unsigned long long)nt,
                       (unsigned long long)n);
            goto done;
        }
        for (int i = 0; i < V; i++) types[i] = ty[i];
    } else if (s.kind == TERN_TOK_LLAMA) { // infer the byte pieces
        for (int i = 0; i < V; i++) {
            const char *p = strs[i];
            if (plen[i] == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>') types[i] = TERN_PIECE_BYTE;
        }
    }
    s.vocab_size = V;
    s.pieces = strs;
    s.piece_len = plen;
    s.types = types;
    s.bos_id = meta.bos_id;
    s.eos_id = meta.eos_id;
    s.unk_id = meta.unk_id;
    s.add_bos = meta.add_bos;
    s.add_eos = meta.add_eos;
    s.add_space_prefix = meta.add_space_prefix;
    s.pre = meta.pre;
    s.ignore_merges = meta.ignore_merges;
    if (s.kind == TERN_TOK_LLAMA) {
        if (tern_gguf_find_kv(g, "tokenizer.ggml.scores") >= 0) {
            const float *sc;
            uint64_t ns;
            if (tern_gguf_get_arr_f32(g, "tokenizer.ggml.scores", &sc, &ns)) goto done;
            if (ns != n) {
                tern_error("%s: tokenizer.ggml.scores has %llu entries for %llu tokens", what, (unsigned long long)ns,
                           (unsigned long long)n);
                goto done;
            }
            s.scores = sc;
        }
    } else {
        const char *const *ms;
        const size_t *mlens;
        uint64_t nmu;
        if (tern_gguf_find_kv(g, "tokenizer.ggml.merges") < 0) {
            tern_error("%s: tokenizer.ggml.merges missing", what);
            goto done;
        }
        if (tern_gguf_get_arr_str(g, "tokenizer.ggml.merges", &ms, &mlens, &nmu)) goto done;
        if (nmu > (uint64_t)64 * TERN_TOK_MAX_VOCAB) {
            tern_error("%s: tokenizer.ggml.merges has %llu entries", what, (unsigned long long)nmu);
            goto done;
        }
        nm = (int)nmu;
        mleft = tern_xcalloc((size_t)nm + 1, sizeof(char *));
        mright = tern_xcalloc((size_t)nm + 1, sizeof(char *));
        for (int m = 0; m < nm; m++) {
            // llama.cpp: split at the first space after the first byte
            const char *sp = mlens[m] > 1 ? memchr(ms[m] + 1, ' ', mlens[m] - 1) : NULL;
            if (!sp || memchr(ms[m], 0, mlens[m])) {
                tern_error("%s: tokenizer.ggml.merges[%d] \"%.80s\" is not \"left right\"", what, m, ms[m]);
                goto done;
            }
            size_t la = (size_t)(sp - ms[m]);
            mleft[m] = tern_xmalloc(la + 1);
            memcpy(mleft[m], ms[m], la);
            mleft[m][la] = 0;
            size_t lb = mlens[m] - la - 1;
            mright[m] = tern_xmalloc(lb + 1);
            memcpy(mright[m], sp + 1, lb);
            mright[m][lb] = 0;
        }
        s.n_merges = nm;
        s.merge_left = (const char *const *)mleft;
        s.merge_right = (const char *const *)mright;
    }
    char w2[600];
    snprintf(w2, sizeof w2, "%s (tokenizer)", what);
    rc = tern_tokenizer_build(t, &s, w2);
done:
    for (int m = 0; mleft && m < nm; m++) free(mleft[m]);
    for (int m = 0; mright && m < nm; m++) free(mright[m]);
    free(mleft);
    free(mright);
    free(types);
    free(plen);
    return rc;
}
