// hfmodel.c — Hugging Face LlamaForCausalLM / BitNetForCausalLM directories into tern (see hfmodel.h).
#include "formats/hfmodel.h"
#include "formats/safetensors.h"
#include "formats/spmodel.h"
#include "model/quant.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_json.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- config.json ---------------------------------------------------------------------------------

// key absent or null: *out = def. Wrong type or out of range: -1 with "path: key ...".
static int get_int(const json_t *root, const char *path, const char *key, long def, long lo, long hi, long *out) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_integer(v)) { tern_error("%s: \"%s\" is not an integer", path, key); return -1; }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) { tern_error("%s: \"%s\" = %lld is out of range [%ld, %ld]", path, key, x, lo, hi); return -1; }
    *out = (long)x;
    return 0;
}

static int get_num(const json_t *root, const char *path, const char *key, double def, double *out) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_number(v)) { tern_error("%s: \"%s\" is not a number", path, key); return -1; }
    *out = json_number_value(v);
    if (!isfinite(*out)) { tern_error("%s: \"%s\" is not finite", path, key); return -1; }
    return 0;
}

static int get_bool(const json_t *root, const char *path, const char *key, int def, int *out) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) { *out = def; return 0; }
    if (!json_is_boolean(v)) { tern_error("%s: \"%s\" is not true/false", path, key); return -1; }
    *out = json_is_true(v);
    return 0;
}

typedef struct {
    const char *arch;
    long vocab, hidden, inter, layers, heads, kv_heads, max_pos;
    double eps, theta;
    int tied, ternary, sub_norms;
    const char *act;
} arch_defaults;

// transformers' LlamaConfig and BitNetConfig defaults (kv_heads -1: = heads)
static const arch_defaults ARCHS[] = {
    {"LlamaForCausalLM", 32000, 4096, 11008, 32, 32, -1, 2048, 1e-6, 10000.0, 0, 0, 0, "silu"},
    {"BitNetForCausalLM", 128256, 2560, 6912, 30, 20, 5, 2048, 1e-5, 500000.0, 0, 1, 1, "relu2"},
};

int tern_hf_read_config(const char *dir, int seq_len, tern_model_config *cfg, tern_hf_info *info) {
    memset(info, 0, sizeof *info);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n;
    char *text = tern_read_file(path, &n);
    if (!text) return -1;
    json_error_t jerr;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) { tern_error("%s: not valid JSON (%s, line %d)", path, jerr.text, jerr.line); return -1; }
    int rc = -1;
    if (!json_is_object(root)) { tern_error("%s: not a JSON object", path); goto out; }
    const json_t *archs = json_object_get(root, "architectures");
    if (!json_is_array(archs) || json_array_size(archs) < 1 || !json_is_string(json_array_get(archs, 0))) {
        tern_error("%s: no \"architectures\" list (not a transformers model config?)", path);
        goto out;
    }
    const char *arch = json_string_value(json_array_get(archs, 0));
    const arch_defaults *A = NULL;
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(arch, ARCHS[i].arch) == 0) A = &ARCHS[i];
    if (!A) {
        tern_error("%s: architecture %.60s is not supported (tern imports LlamaForCausalLM and BitNetForCausalLM)", path, arch);
        goto out;
    }
    snprintf(info->arch, sizeof info->arch, "%s", arch);
    long vocab, hidden, inter, layers, heads, kvh, maxpos, head_dim;
    double eps, theta;
    int tied, abias = 0, mbias = 0;
    if (get_int(root, path, "vocab_size", A->vocab, 1, TERN_MAX_VOCAB_SIZE, &vocab) || get_int(root, path, "hidden_size", A->hidden, 1, 1 << 20, &hidden) ||
        get_int(root, path, "intermediate_size", A->inter, 1, 1 << 22, &inter) ||
        get_int(root, path, "num_hidden_layers", A->layers, 1, 4096, &layers) ||
        get_int(root, path, "num_attention_heads", A->heads, 1, 65536, &heads) ||
        get_int(root, path, "max_position_embeddings", A->max_pos, 1, 1 << 24, &maxpos) ||
        get_num(root, path, "rms_norm_eps", A->eps, &eps) || get_num(root, path, "rope_theta", A->theta, &theta) ||
        get_bool(root, path, "tie_word_embeddings", A->tied, &tied) || get_bool(root, path, "attention_bias", 0, &abias) ||
        get_bool(root, path, "mlp_bias", 0, &mbias))
        goto out;
    if (get_int(root, path, "num_key_value_heads", A->kv_heads > 0 ? A->kv_heads : heads, 1, 65536, &kvh)) goto out;
    if (get_int(root, path, "head_dim", hidden / heads, 1, 1 << 16, &head_dim)) goto out;
    if (abias || mbias) { tern_error("%s: %s is true; tern's layers have no biases", path, abias ? "attention_bias" : "mlp_bias"); goto out; }
    if (hidden % heads || head_dim != hidden / heads) {
        tern_error("%s: head_dim %ld is not hidden_size / num_attention_heads (%ld / %ld); tern needs that", path, head_dim, hidden, heads);
        goto out;
    }
    const json_t *act = json_object_get(root, "hidden_act");
    const char *act_s = act && json_is_string(act) ? json_string_value(act) : act ? NULL : A->act;
    if (!act_s) { tern_error("%s: \"hidden_act\" is not a string", path); goto out; }
    int ffn_act;
    if (!strcmp(act_s, "silu")) ffn_act = TERN_FFN_SILU;
    else if (!strcmp(act_s, "relu2")) ffn_act = TERN_FFN_RELU2;
    else { tern_error("%s: hidden_act \"%.40s\" is not supported (silu or relu2)", path, act_s); goto out; }
    const json_t *qc = json_object_get(root, "quantization_config");
    if (qc && !json_is_null(qc)) {
        const json_t *qm = json_is_object(qc) ? json_object_get(qc, "quant_method") : NULL;
        const char *qms = qm && json_is_string(qm) ? json_string_value(qm) : "?";
        if (strcmp(qms, "bitnet") != 0 || A->ternary == 0) {
            tern_error("%s: quantized checkpoint (quant_method \"%.40s\"); tern imports full-precision weights or BitNet's packed form", path, qms);
            goto out;
        }
    }
    tern_model_config_defaults(cfg);
    cfg->dim = (int)hidden;
    cfg->n_layers = (int)layers;
    cfg->n_heads = (int)heads;
    cfg->n_kv_heads = (int)kvh;
    cfg->ffn_dim = (int)inter;
    cfg->vocab_size = (int)vocab;
    cfg->seq_len = seq_len > 0 ? seq_len : (int)maxpos;
    cfg->norm_eps = (float)eps;
    cfg->rope_theta = (float)theta;
    cfg->tied_head = tied;
    cfg->ternary = A->ternary;
    cfg->sub_norms = A->sub_norms;
    cfg->ffn_act = ffn_act;
    info->max_position = (int)maxpos;
    const json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        const json_t *ty = json_is_object(rs) ? json_object_get(rs, "rope_type") : NULL;
        if (!ty && json_is_object(rs)) ty = json_object_get(rs, "type");
        const char *tys = ty && json_is_string(ty) ? json_string_value(ty) : NULL;
        if (!tys) { tern_error("%s: rope_scaling has no \"rope_type\"", path); goto out; }
        if (!strcmp(tys, "llama3")) {
            double f, lo, hi;
            long orig;
            if (get_num(rs, path, "factor", 8.0, &f) || get_num(rs, path, "low_freq_factor", 1.0, &lo) ||
                get_num(rs, path, "high_freq_factor", 4.0, &hi) ||
                get_int(rs, path, "original_max_position_embeddings", 8192, 1, 1 << 24, &orig))
                goto out;
            cfg->rope_scaling = TERN_ROPE_SCALING_LLAMA3;
            cfg->rope_scaling_factor = (float)f;
            cfg->rope_low_freq_factor = (float)lo;
            cfg->rope_high_freq_factor = (float)hi;
            cfg->rope_original_ctx = (int)orig;
        } else if (strcmp(tys, "default") != 0) {
            tern_error("%s: rope_scaling type \"%.40s\" is not supported (tern reads llama3)", path, tys);
            goto out;
        }
    }
    if (tern_model_config_validate(cfg) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("%s: %s", path, msg);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

// ---- weights -------------------------------------------------------------------------------------

typedef struct {
    tern_st *st;
    unsigned char *used;    // per safetensors tensor
    const char *dir;
} loader;

static const tern_st_tensor *want(loader *L, const char *name) {
    const tern_st_tensor *t = tern_st_find(L->st, name);
    if (!t) { tern_error("%s: missing tensor %s", L->dir, name); return NULL; }
    L->used[t - tern_st_get(L->st, 0)] = 1;
    return t;
}

static int same_shape(const tern_st_tensor *t, const tern_tensor *dst) {
    if (t->n_dims != dst->ndim) return 0;
    for (int i = 0; i < dst->ndim; i++)
        if (t->shape[i] != dst->shape[i]) return 0;
    return 1;
}

static void shape_of(const tern_st_tensor *t, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->n_dims && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "x" : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static int load_float(loader *L, const char *name, tern_tensor *dst) {
    const tern_st_tensor *t = want(L, name);
    if (!t) return -1;
    if (!same_shape(t, dst)) {
        char got[96], exp[96];
        shape_of(t, got, sizeof got);
        tern_shape_str(dst, exp, sizeof exp);
        tern_error("%s: tensor %s has shape %s, the config needs %s", t->file, name, got, exp);
        return -1;
    }
    return tern_st_read_f32(t, dst->data);
}

// packed BitNet projection: name.weight uint8 [out/4, in] + name.weight_scale [1]
static int load_packed(loader *L, const char *name, tern_tensor *dst, tern_hf_info *info) {
    char wn[300], sn[300];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(sn, sizeof sn, "%s.weight_scale", name);
    const tern_st_tensor *w = want(L, wn), *s = w ? want(L, sn) : NULL;
    if (!w || !s) return -1;
    const int64_t out = dst->shape[0], in = dst->shape[1], P = out / 4;
    if (w->dtype != TERN_ST_U8 || w->n_dims != 2 || out % 4 || w->shape[0] != P || w->shape[1] != in) {
        char got[96];
        shape_of(w, got, sizeof got);
        tern_error("%s: packed tensor %s is %s %s, expected U8 [%lld x %lld] (4 codes per byte for %lld rows)", w->file, wn,
                   tern_st_dtype_name(w->dtype), got, (long long)P, (long long)in, (long long)out);
        return -1;
    }
    if (s->numel != 1) { tern_error("%s: %s has %lld values, expected 1", s->file, sn, (long long)s->numel); return -1; }
    float ws;
    if (tern_st_read_f32(s, &ws) != 0) return -1;
    if (!(ws > 0.0f) || !isfinite(ws)) { tern_error("%s: %s = %g is not a positive scale", s->file, sn, (double)ws); return -1; }
    const uint8_t *p = w->data;
    int8_t *q = tern_xmalloc((size_t)(out * in));
    long nnz = 0;
    for (int64_t r = 0; r < P; r++)
        for (int64_t k = 0; k < in; k++) {
            const uint8_t b = p[r * in + k];
            for (int i = 0; i < 4; i++) {
                const int c = (b >> (2 * i)) & 3;
                if (c == 3) {
                    tern_error("%s: %s holds the invalid code 3 at packed row %lld, column %lld", w->file, wn, (long long)r, (long long)k);
                    free(q);
                    return -1;
                }
                q[(i * P + r) * in + k] = (int8_t)(c - 1);
                nnz += c != 1;
            }
        }
    const long n = (long)(out * in);
    // latent weights whose absmean quantization is exactly (q, 1/ws): |W| = (n/nnz)/ws on the non-zeros
    const float mag = nnz ? (float)((double)n / (double)nnz / (double)ws) : 0.0f;
    for (long i = 0; i < n; i++) dst->data[i] = (float)q[i] * mag;
    // check: tern's quantizer gives back the codes, and its scale is 1/ws
    const float sw = tern_weight_scale(dst->data, n);
    int8_t *back = tern_xmalloc((size_t)n);
    tern_weight_quantize_i8(dst->data, n, sw, back);
    int same = memcmp(back, q, (size_t)n) == 0;
    free(back);
    free(q);
    if (!same) { tern_error("%s: %s: the ternary codes do not survive re-quantization (internal error)", w->file, wn); return -1; }
    if (nnz) {
        double rel = fabs((double)sw * ws - 1.0);
        if (rel > info->scale_max_rel) info->scale_max_rel = rel;
    }
    return 0;
}

int tern_hf_load_weights(const char *dir, tern_model *m, tern_hf_info *info) {
    loader L = {tern_st_open_dir(dir), NULL, dir};
    if (!L.st) return -1;
    const tern_model_config *c = &m->cfg;
    int rc = -1;
    L.used = tern_xcalloc((size_t)tern_st_count(L.st) + 1, 1);
    info->n_tensors = tern_st_count(L.st);
    info->n_files = tern_st_n_files(L.st);
    info->file_bytes = tern_st_total_bytes(L.st);
    const tern_st_tensor *q0 = tern_st_find(L.st, "model.layers.0.self_attn.q_proj.weight");
    if (!q0) { tern_error("%s: missing tensor model.layers.0.self_attn.q_proj.weight (not a %s?)", dir, info->arch); goto out; }
    snprintf(info->dtype, sizeof info->dtype, "%s", tern_st_dtype_name(q0->dtype));
    info->packed = q0->dtype == TERN_ST_U8;
    if (info->packed && !c->ternary) { tern_error("%s: uint8 (packed) weights in a %s", dir, info->arch); goto out; }
    if (load_float(&L, "model.embed_tokens.weight", m->token_embd) || load_float(&L, "model.norm.weight", m->output_norm)) goto out;
    if (!c->tied_head) {
        if (load_float(&L, "lm_head.weight", m->output)) goto out;
    } else if (tern_st_find(L.st, "lm_head.weight")) {
        want(&L, "lm_head.weight");   // a tied model saved with its (identical) head: not used
        info->ignored_lm_head = 1;
    }
    char name[256];
    for (int l = 0; l < c->n_layers; l++) {
        tern_layer *Y = &m->layers[l];
        struct { const char *hf; tern_tensor *t; int proj; } map[] = {
            {"input_layernorm", Y->attn_norm, 0},          {"self_attn.q_proj", Y->attn_q, 1},
            {"self_attn.k_proj", Y->attn_k, 1},            {"self_attn.v_proj", Y->attn_v, 1},
            {"self_attn.o_proj", Y->attn_output, 1},       {"post_attention_layernorm", Y->ffn_norm, 0},
            {"mlp.gate_proj", Y->ffn_gate, 1},             {"mlp.up_proj", Y->ffn_up, 1},
            {"mlp.down_proj", Y->ffn_down, 1},             {"self_attn.attn_sub_norm", Y->attn_sub_norm, 0},
            {"mlp.ffn_sub_norm", Y->ffn_sub_norm, 0},
        };
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
            if (!map[i].t) continue;   // no sub-norms in a LLaMA
            snprintf(name, sizeof name, "model.layers.%d.%s", l, map[i].hf);
            if (map[i].proj && info->packed) {
                if (load_packed(&L, name, map[i].t, info)) goto out;
            } else {
                strcat(name, ".weight");
                if (load_float(&L, name, map[i].t)) goto out;
            }
        }
    }
    for (int i = 0; i < tern_st_count(L.st); i++) {
        const tern_st_tensor *t = tern_st_get(L.st, i);
        static const char inv_freq[] = "rotary_emb.inv_freq";   // buffers older checkpoints saved
        size_t nl = strlen(t->name), sl = sizeof inv_freq - 1;
        if (L.used[i] || (nl >= sl && !strcmp(t->name + nl - sl, inv_freq))) continue;
        tern_error("%s: unexpected tensor %s (not part of a %s of this config)", t->file, t->name, info->arch);
        goto out;
    }
    rc = 0;
out:
    free(L.used);
    tern_st_close(L.st);
    return rc;
}

// ---- tokenizer -----------------------------------------------------------------------------------

// t padded to V pieces: the rows of the embedding beyond the tokenizer's pieces become unused
// pieces "[PAD<id>]" (llama.cpp's converter names them so), which encoding never produces and
// decoding drops. 0, or -1 with tern_error.
static int pad_tokenizer(tern_tokenizer *t, int V, const char *what) {
    const int V0 = t->vocab_size;
    const char **pieces = tern_xmalloc(sizeof(char *) * (size_t)V);
    int *lens = tern_xmalloc(sizeof(int) * (size_t)V), *types = tern_xmalloc(sizeof(int) * (size_t)V);
    float *scores = tern_xmalloc(sizeof(float) * (size_t)V);
    uint8_t *attrs = tern_xcalloc((size_t)V, 1);
    char *names = tern_xmalloc((size_t)(V - V0) * 24);
    for (int i = 0; i < V; i++) {
        if (i < V0) {
            pieces[i] = t->pieces[i];
            lens[i] = t->piece_len[i];
            types[i] = t->types[i];
            scores[i] = t->scores[i];
            attrs[i] = t->attrs[i];
        } else {
            char *nm = names + (size_t)(i - V0) * 24;
            lens[i] = snprintf(nm, 24, "[PAD%d]", i);
            pieces[i] = nm;
            types[i] = TERN_PIECE_UNUSED;
            scores[i] = -1e9f;
        }
    }
    tern_tokenizer_spec sp = {
        .kind = t->kind, .vocab_size = V, .pieces = pieces, .piece_len = lens, .scores = scores, .types = types,
        .attrs = attrs, .bos_id = t->bos_id, .eos_id = t->eos_id, .unk_id = t->unk_id, .add_bos = t->add_bos,
        .add_eos = t->add_eos, .add_space_prefix = t->add_space_prefix, .pre = t->pre, .ignore_merges = t->ignore_merges,
        .nfc = t->nfc, .n_merges = t->n_merges, .merge_ids = t->merges};
    tern_tokenizer padded;
    int rc = tern_tokenizer_build(&padded, &sp, what);
    free(pieces);
    free(lens);
    free(types);
    free(scores);
    free(attrs);
    free(names);
    if (rc != 0) return -1;
    tern_tokenizer_free(t);
    *t = padded;
    return 0;
}

// tokenizer.json (+ tokenizer_config.json): Hugging Face's tokenizer, either kind (tokenizers/).
static int json_tokenizer(const char *path, int vocab_size, void **bytes, size_t *n) {
    tern_tokenizer t;
    if (tern_tokenizer_load_json(&t, path) != 0) return -1;
    int rc = -1;
    if (t.vocab_size > vocab_size)
        tern_error("%s: %d pieces, more than the model's %d embedding rows", path, t.vocab_size, vocab_size);
    else if (t.vocab_size == vocab_size || pad_tokenizer(&t, vocab_size, path) == 0)
        rc = tern_tokenizer_to_bytes(&t, bytes, n);
    tern_tokenizer_free(&t);
    return rc;
}

int tern_hf_read_tokenizer(const char *dir, int vocab_size, void **bytes, size_t *n, const char **src) {
    *bytes = NULL;
    *n = 0;
    char path[4096];
    // tokenizer.json first: it is what transformers' fast tokenizers use (added tokens, the
    // post-processor's bos/eos); tokenizer.model where that is all there is
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, F_OK) == 0) {
        *src = "tokenizer.json";
        return json_tokenizer(path, vocab_size, bytes, n) == 0 ? 1 : -1;
    }
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    if (access(path, F_OK) == 0) {
        *src = "tokenizer.model";
        size_t len;
        char *buf = tern_read_file(path, &len);
        if (!buf) return -1;
        int rc = tern_spm_to_tokenizer(buf, len, path, vocab_size, bytes, n);
        free(buf);
        return rc == 0 ? 1 : -1;
    }
    *src = "none";
    return 0;
}
