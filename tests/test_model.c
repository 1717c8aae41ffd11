// test_model.c — the BitNet model on tern's engine: finite-difference check of the whole
// full-precision model, ternary forward invariants, and greedy generation consistency.
#include "testutil.h"
#include "model/model.h"
#include "model/quant.h"
#include "training/eval.h"
#include "tokenizers/tokenizer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tiny_cfg(tern_model_config *c, int ternary, int tied) {
    tern_model_config_defaults(c);
    c->dim = 24; c->n_layers = 2; c->n_heads = 4; c->n_kv_heads = 2; c->ffn_dim = 40;
    c->vocab_size = 37; c->seq_len = 8; c->ternary = ternary; c->tied_head = tied;
}

#define B 2
#define T 6
static int tok[B * T + 1];
static tern_model *cur;
static tern_tensor *b_loss(tern_graph *g, tern_tensor **in, void *ctx) {
    (void)in; (void)ctx;
    return tern_model_loss(cur, g, tok, tok + 1, B, T);
}

static void test_model_gradcheck_fp(void **st) {
    (void)st;
    for (int tied = 0; tied < 2; tied++) {
        tern_model_config c;
        tiny_cfg(&c, 0, tied);
        tern_model m;
        tern_model_build(&m, &c);
        tern_model_init_weights(&m, 5);
        // larger weights so every path carries signal; norms away from 1
        for (long i = 0; i < m.params.total; i++) m.params.data[i] *= 10.0f;
        for (int i = 0; i < m.params.n; i++)
            if (m.params.t[i]->ndim == 1) tu_fill_uniform(m.params.t[i]->data, m.params.t[i]->n, 40 + i, 0.5f, 1.5f);
        for (int i = 0; i <= B * T; i++) tok[i] = (i * 7 + 3) % c.vocab_size;
        cur = &m;
        const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_sub_norm.weight",
                               "blk.1.ffn_down.weight", "blk.1.ffn_sub_norm.weight", "output_norm.weight", tied ? "blk.1.attn_v.weight" : "output.weight"};
        tern_tensor *in[8];
        for (int i = 0; i < 8; i++) { in[i] = tern_params_find(&m.params, names[i]); assert_non_null(in[i]); }
        tu_gc_result r = tu_gradcheck(tied ? "model fp tied" : "model fp untied", b_loss, NULL, in, 8, 1e-2, 1e-3, 2e-2, 24);
        assert_true(r.worst_ratio <= 1.0);
        tern_model_free(&m);
    }
}

// the imported shapes: relu2 FFN, no sub-norms (a LLaMA block), llama3 rope scaling, untied head
static void test_model_gradcheck_imported_shapes(void **st) {
    (void)st;
    for (int v = 0; v < 2; v++) {
        tern_model_config c;
        tiny_cfg(&c, 0, 1 - v);   // v = 0 tied, v = 1 untied
        c.ffn_act = v ? TERN_FFN_SILU : TERN_FFN_RELU2;
        c.sub_norms = v;
        c.rope_scaling = TERN_ROPE_SCALING_LLAMA3;
        c.rope_original_ctx = 8;    // head_dim 6: the 3 frequencies in the three bands
        c.rope_theta = 500.0f;
        assert_int_equal(tern_model_config_validate(&c), 0);
        tern_model m;
        tern_model_build(&m, &c);
        assert_true((m.layers[0].attn_sub_norm == NULL) == (v == 0));
        assert_non_null(m.rope_div);
        long n = 0;
        for (int i = 0; i < m.params.n; i++) n += m.params.t[i]->n;
        assert_int_equal(n, tern_model_config_nparams(&c));
        tern_model_init_weights(&m, 15 + v);
        for (long i = 0; i < m.params.total; i++) m.params.data[i] *= 10.0f;
        for (int i = 0; i < m.params.n; i++)
            if (m.params.t[i]->ndim == 1) tu_fill_uniform(m.params.t[i]->data, m.params.t[i]->n, 50 + i, 0.5f, 1.5f);
        for (int i = 0; i <= B * T; i++) tok[i] = (i * 11 + 2) % c.vocab_size;
        cur = &m;
        const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.1.ffn_gate.weight",
                               "blk.1.ffn_up.weight", "blk.1.ffn_down.weight", "output_norm.weight",
                               v ? "output.weight" : "blk.0.ffn_norm.weight"};
        tern_tensor *in[8];
        for (int i = 0; i < 8; i++) { in[i] = tern_params_find(&m.params, names[i]); assert_non_null(in[i]); }
        tu_gc_result r = tu_gradcheck(v ? "model fp silu sub-norms llama3 untied" : "model fp relu2 no-sub-norms llama3 tied",
                                      b_loss, NULL, in, 8, 3e-3, 1e-3, 2e-2, 24);   // ReLU²'s kink: a smaller step
        assert_true(r.worst_ratio <= 1.0);
        tern_model_free(&m);
    }
}

// ternary forward: every BitLinear uses integers; lambda 1 and lambda 0 differ; quant is deterministic
static void test_model_ternary_forward(void **st) {
    (void)st;
    tern_model_config c;
    tiny_cfg(&c, 1, 1);
    tern_model m;
    tern_model_build(&m, &c);
    tern_model_init_weights(&m, 6);
    for (int i = 0; i <= B * T; i++) tok[i] = (i * 5 + 1) % c.vocab_size;
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&c), 0, 0);
    float l1 = tern_model_loss(&m, &g, tok, tok + 1, B, T)->data[0];
    tern_graph_reset(&g);
    float l1b = tern_model_loss(&m, &g, tok, tok + 1, B, T)->data[0];
    assert_true(l1 == l1b);
    m.quant_lambda = 0.0f;
    tern_graph_reset(&g);
    float l0 = tern_model_loss(&m, &g, tok, tok + 1, B, T)->data[0];
    assert_true(l0 != l1);
    assert_true(isfinite(l0) && isfinite(l1));
    // near log(V) at init
    assert_true(fabsf(l1 - logf((float)c.vocab_size)) < 0.5f);
    // backward reaches every parameter
    m.quant_lambda = 1.0f;
    tern_graph_reset(&g);
    tern_params_zero_grad(&m.params);
    tern_backward(&g, tern_model_loss(&m, &g, tok, tok + 1, B, T), 1.0f);
    for (int i = 0; i < m.params.n; i++) {
        double s = 0;
        for (long j = 0; j < m.params.t[i]->n; j++) s += fabs(m.params.t[i]->grad[j]);
        if (s == 0) fail_msg("no gradient reached %s", m.params.t[i]->name);
    }
    tern_graph_free(&g);
    tern_model_free(&m);
}

// greedy generation: the first generated token is the argmax of the full forward's last row
static void test_model_greedy(void **st) {
    (void)st;
    tern_model_config c;
    tiny_cfg(&c, 1, 1);
    tern_model m;
    tern_model_build(&m, &c);
    tern_model_init_weights(&m, 7);
    int prompt[3] = {1, 5, 9}, out[12];
    tern_model_generate_greedy(&m, prompt, 3, 12, out); // runs past seq_len (8): sliding window
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&c), 0, 0);
    g.grad_enabled = 0;
    tern_tensor *lg = tern_model_forward(&m, &g, prompt, 1, 3);
    int best = 0;
    for (int v = 1; v < c.vocab_size; v++)
        if (lg->data[2 * c.vocab_size + v] > lg->data[2 * c.vocab_size + best]) best = v;
    assert_int_equal(out[0], best);
    for (int i = 0; i < 12; i++) assert_true(out[i] >= 0 && out[i] < c.vocab_size);
    tern_graph_free(&g);
    tern_model_free(&m);
}

// greedy generation past seq_len: every new token is the argmax of a forward over the last
// seq_len tokens (the sliding window computed here, independently of model.c's loop)
static void test_model_greedy_past_context(void **st) {
    (void)st;
    tern_model_config c;
    tiny_cfg(&c, 1, 1);
    tern_model m;
    tern_model_build(&m, &c);
    tern_model_init_weights(&m, 8);
    for (int i = 0; i < m.params.n; i++)   // weights large enough that every context token matters
        if (m.params.t[i]->ndim == 2) for (long j = 0; j < m.params.t[i]->n; j++) m.params.t[i]->data[j] *= 25.0f;
    enum { NP = 3, NN = 3 * 8 };          // runs to 27 tokens with a context of 8
    int prompt[NP] = {1, 5, 9}, out[NN], seq[NP + NN];
    tern_model_generate_greedy(&m, prompt, NP, NN, out);
    memcpy(seq, prompt, sizeof prompt);
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&c), 0, 0);
    g.grad_enabled = 0;
    int distinct = 0;
    for (int n = NP; n < NP + NN; n++) {
        int start = n - c.seq_len > 0 ? n - c.seq_len : 0;
        tern_graph_reset(&g);
        tern_tensor *lg = tern_model_forward(&m, &g, seq + start, 1, n - start);
        const float *last = lg->data + (size_t)(n - start - 1) * c.vocab_size;
        int best = 0;
        for (int v = 1; v < c.vocab_size; v++) if (last[v] > last[best]) best = v;
        if (out[n - NP] != best) fail_msg("generated token %d: %d, reference %d", n - NP, out[n - NP], best);
        seq[n] = best;
        distinct += n > NP && seq[n] != seq[n - 1];
    }
    assert_true(distinct >= 4);   // not one token repeated: the context changes the prediction
    tern_graph_free(&g);
    tern_model_free(&m);
}

// bits per byte on a case worked by hand: a model with all-zero weights predicts the uniform
// distribution (loss ln V per token exactly), and the target tokens' text is counted in bytes
static void test_eval_bpb(void **st) {
    (void)st;
    tern_tokenizer tok;
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = 266;
    const char *text = "ab ab ab abc";
    size_t len = strlen(text);
    assert_int_equal(tern_tokenizer_train(&tok, &text, &len, 1, &o), 0);
    assert_int_equal(tok.vocab_size, 266);   // 259 a, 260 b, 261 ▁, 262 c, 263 ab, 264 ▁ab, 265 ▁abc
    assert_string_equal(tok.pieces[264], "\xe2\x96\x81" "ab");
    tern_model_config c;
    tiny_cfg(&c, 1, 1);
    c.vocab_size = 266;
    for (int seq = 4; seq <= 8; seq += 4) {   // 2 windows (4 + partial 2), then 1 partial window of 6
        c.seq_len = seq;
        tern_model m;
        tern_model_build(&m, &c);             // weights stay zero
        // targets: " ab" 3 bytes, " ab" 3, " abc" 4, "\n" 1, " " 1, "a" 1 = 13 bytes, 6 tokens
        const int ids[7] = {1, 264, 264, 265, 3 + '\n', 261, 259};
        tern_eval_result r;
        tern_eval_ids(&m, ids, 7, 2, 0, &tok, &r);
        assert_int_equal(r.n_scored, 6);
        assert_int_equal(r.n_windows, seq == 4 ? 2 : 1);
        assert_int_equal(r.n_bytes, 13);
        double want = 6.0 * log2(266.0) / 13.0;
        printf("bpb %.9f (hand: 6 log2(266) / 13 = %.9f), loss %.9f (ln 266 = %.9f)\n", r.bpb, want, r.loss, log(266.0));
        assert_true(fabs(r.loss - log(266.0)) < 1e-6);
        assert_true(fabs(r.bpb - want) < 1e-6);
        assert_true(fabs(r.ppl - 266.0) < 1e-3);
        tern_model_free(&m);
    }
    tern_tokenizer_free(&tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gradcheck_fp), cmocka_unit_test(test_model_gradcheck_imported_shapes),
        cmocka_unit_test(test_model_ternary_forward),
        cmocka_unit_test(test_model_greedy),
        cmocka_unit_test(test_model_greedy_past_context),
        cmocka_unit_test(test_eval_bpb),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
