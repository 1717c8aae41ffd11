// model.c — BitNet b1.58 decoder (llama.cpp `bitnet` layout) on tern's ops.
#include "model/model.h"
#include "model/rope.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tern_tensor *add_param(tern_model *m, const char *name, int d0, int d1, int no_decay) {
    int shape[2] = {d0, d1};
    return tern_params_add(&m->params, name, d1 ? 2 : 1, shape, no_decay);
}

void tern_model_declare(tern_model *m, const tern_model_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int dim = cfg->dim, hd = cfg->dim / cfg->n_heads, ffn = cfg->ffn_dim;
    tern_params_init(&m->params);
    // registration order = the parameter list in model.h (checkpoints and GGUF follow it); norms and embedding get no weight decay
    m->token_embd = add_param(m, "token_embd.weight", cfg->vocab_size, dim, 1);
    m->layers = tern_xcalloc((size_t)cfg->n_layers, sizeof(tern_layer));
    char name[TERN_NAME_MAX];
#define P(field, d0, d1, nd)                                         \
    snprintf(name, sizeof name, "blk.%d." #field ".weight", l);      \
    L->field = add_param(m, name, d0, d1, nd)
    for (int l = 0; l < cfg->n_layers; l++) {
        tern_layer *L = &m->layers[l];
        P(attn_norm, dim, 0, 1);
        P(attn_q, cfg->n_heads * hd, dim, 0);
        P(attn_k, cfg->n_kv_heads * hd, dim, 0);
        P(attn_v, cfg->n_kv_heads * hd, dim, 0);
        if (cfg->sub_norms) { P(attn_sub_norm, dim, 0, 1); }
        P(attn_output, dim, dim, 0);
        P(ffn_norm, dim, 0, 1);
        P(ffn_gate, ffn, dim, 0);
        P(ffn_up, ffn, dim, 0);
        if (cfg->sub_norms) { P(ffn_sub_norm, ffn, 0, 1); }
        P(ffn_down, dim, ffn, 0);
    }
#undef P
    m->output_norm = add_param(m, "output_norm.weight", dim, 0, 1);
    m->output = cfg->tied_head ? NULL : add_param(m, "output.weight", cfg->vocab_size, dim, 0);
    m->quant_lambda = cfg->ternary ? 1.0f : 0.0f;
    if (cfg->rope_scaling == TERN_ROPE_SCALING_LLAMA3) {
        m->rope_div = tern_xmalloc(sizeof(float) * (size_t)(hd / 2));
        tern_rope_llama3_divisors(hd, cfg->rope_theta, cfg->rope_scaling_factor, cfg->rope_low_freq_factor,
                                  cfg->rope_high_freq_factor, cfg->rope_original_ctx, m->rope_div);
    }
}

void tern_model_build(tern_model *m, const tern_model_config *cfg) {
    tern_model_declare(m, cfg);
    tern_params_alloc(&m->params);
}

void tern_model_build_frozen(tern_model *m, const tern_model_config *cfg) {
    tern_model_declare(m, cfg);
    tern_params_alloc_data(&m->params);
}

size_t tern_model_param_bytes(const tern_model_config *cfg) {
    tern_model m;   // the exact layout (each tensor padded as tern_params pads it), nothing allocated
    tern_model_declare(&m, cfg);
    size_t bytes = sizeof(float) * (size_t)m.params.total;
    tern_model_free(&m);
    return bytes;
}

void tern_model_init_weights(tern_model *m, uint64_t seed) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (int i = 0; i < m->params.n; i++) {
        tern_tensor *t = m->params.t[i];
        if (t->ndim == 1)
            for (long j = 0; j < t->n; j++) t->data[j] = 1.0f;
        else
            for (long j = 0; j < t->n; j++) t->data[j] = 0.02f * tern_rng_normal(&r);
    }
}

void tern_model_free(tern_model *m) {
    tern_params_free(&m->params);
    free(m->layers);
    free(m->rope_div);
    memset(m, 0, sizeof *m);
}

int tern_model_graph_nodes(const tern_model_config *cfg) { return 20 * cfg->n_layers + 16; }

// The two halves of transformer block l on x [B*T, dim] (model.h), each x + f(x): attention,
// then feed-forward. B and T come from m->fwd_B / m->fwd_T (they are also checkpoint segments).
static tern_tensor *attn_forward(tern_graph *g, tern_tensor *x, void *ctx, int l) {
    tern_model *m = ctx;
    const tern_model_config *c = &m->cfg;
    int B = m->fwd_B, T = m->fwd_T, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->dim / c->n_heads;
    float eps = c->norm_eps, lam = m->quant_lambda;
    tern_layer *L = &m->layers[l];
    tern_tensor *h = tern_rmsnorm(g, x, L->attn_norm, eps);
    tern_tensor *qkv[3], *wqkv[3] = {L->attn_q, L->attn_k, L->attn_v};
    tern_bitlinear_n(g, h, wqkv, 3, lam, qkv);                         // one activation quantization
    tern_tensor *q = qkv[0];                                           // [B*T, H*hd]
    tern_tensor *k = qkv[1];                                           // [B*T, Hkv*hd]
    tern_tensor *v = qkv[2];                                           // [B*T, Hkv*hd]
    q = tern_rope_ex(g, q, B, T, H, hd, 0, c->rope_theta, m->rope_div);
    k = tern_rope_ex(g, k, B, T, Hkv, hd, 0, c->rope_theta, m->rope_div);
    tern_tensor *a = tern_attention(g, q, k, v, B, T, H, Hkv);         // [B*T, H*hd]
    if (L->attn_sub_norm) a = tern_rmsnorm(g, a, L->attn_sub_norm, eps);
    return tern_add(g, x, tern_bitlinear(g, a, L->attn_output, lam));
}

static tern_tensor *ffn_forward(tern_graph *g, tern_tensor *x, void *ctx, int l) {
    tern_model *m = ctx;
    const tern_model_config *c = &m->cfg;
    float eps = c->norm_eps, lam = m->quant_lambda;
    tern_layer *L = &m->layers[l];
    tern_tensor *h = tern_rmsnorm(g, x, L->ffn_norm, eps);
    tern_tensor *gu[2], *wgu[2] = {L->ffn_gate, L->ffn_up};
    tern_bitlinear_n(g, h, wgu, 2, lam, gu);
    tern_tensor *gt = gu[0];                                           // [B*T, ffn]
    tern_tensor *up = gu[1];                                           // [B*T, ffn]
    tern_tensor *f = c->ffn_act == TERN_FFN_RELU2 ? tern_relu2_glu(g, gt, up) : tern_swiglu(g, gt, up);
    if (L->ffn_sub_norm) f = tern_rmsnorm(g, f, L->ffn_sub_norm, eps);
    return tern_add(g, x, tern_bitlinear(g, f, L->ffn_down, lam));
}

tern_tensor *tern_model_forward(tern_model *m, tern_graph *g, const int *tokens, int B, int T) {
    const tern_model_config *c = &m->cfg;
    m->fwd_B = B;
    m->fwd_T = T;
    tern_tensor *x = tern_embedding(g, m->token_embd, tokens, B * T); // [B*T, dim]
    for (int l = 0; l < c->n_layers; l++) {
        tern_layer *L = &m->layers[l];
        if (!m->recompute) {
            x = ffn_forward(g, attn_forward(g, x, m, l), m, l);
            continue;
        }
        // keep only each half's input; its backward recomputes it (graph.h tern_checkpoint)
        tern_tensor *pa[] = {L->attn_norm, L->attn_q, L->attn_k, L->attn_v, L->attn_output, L->attn_sub_norm};
        tern_tensor *pf[] = {L->ffn_norm, L->ffn_gate, L->ffn_up, L->ffn_down, L->ffn_sub_norm};
        x = tern_checkpoint(g, x, attn_forward, m, l, pa, L->attn_sub_norm ? 6 : 5);
        x = tern_checkpoint(g, x, ffn_forward, m, l, pf, L->ffn_sub_norm ? 5 : 4);
    }
    x = tern_rmsnorm(g, x, m->output_norm, c->norm_eps);
    return tern_matmul(g, x, m->output ? m->output : m->token_embd, 0, 1);  // [B*T, vocab]
}

tern_tensor *tern_model_loss(tern_model *m, tern_graph *g, const int *tokens, const int *targets, int B, int T) {
    return tern_cross_entropy(g, tern_model_forward(m, g, tokens, B, T), targets, TERN_IGNORE_INDEX);
}

void tern_model_generate_greedy(tern_model *m, const int *prompt, int n_prompt, int n_new, int *out) {
    int ctx = m->cfg.seq_len, V = m->cfg.vocab_size;
    int *seq = tern_xmalloc(sizeof(int) * (size_t)(n_prompt + n_new));
    memcpy(seq, prompt, sizeof(int) * (size_t)n_prompt);
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&m->cfg), 0, 0);
    g.grad_enabled = 0;
    int n = n_prompt;
    for (int i = 0; i < n_new; i++) {
        int start = n > ctx ? n - ctx : 0, T = n - start;
        tern_graph_reset(&g);
        tern_tensor *logits = tern_model_forward(m, &g, seq + start, 1, T);
        const float *last = logits->data + (size_t)(T - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (last[v] > last[best]) best = v;
        seq[n++] = best;
        out[i] = best;
    }
    tern_graph_free(&g);
    free(seq);
}
