// test_grad.c — finite-difference gradient checks for every differentiable op, on odd shapes.
// Each check perturbs input elements by ±h, recomputes L = sum(out * R) and compares with the
// analytic backward; it fails when any element exceeds atol + rtol * |numeric|.
#include "testutil.h"
#include "model/quant.h"
#include "model/rope.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define H 1e-2
#define ATOL 2e-4   // 10x the worst measured: err/tol was <= 0.011 at 2e-3 / 2e-2 (finite-difference noise)
#define RTOL 2e-3
#define MAXE 48

typedef struct { tern_params p; tern_tensor *t[4]; int n; } inputs;

static void in_init(inputs *in) { tern_params_init(&in->p); in->n = 0; }
static void in_add(inputs *in, const char *name, int ndim, int d0, int d1) {
    int shape[2] = {d0, d1};
    in->t[in->n++] = tern_params_add(&in->p, name, ndim, shape, 0);
}
static void in_alloc(inputs *in, uint64_t seed) {
    tern_params_alloc(&in->p);
    for (int i = 0; i < in->n; i++) tu_fill_normal(in->t[i]->data, in->t[i]->n, seed + (uint64_t)i, 1.0f);
}

static void expect_ok(tu_gc_result r) { assert_true(r.worst_ratio <= 1.0); assert_true(r.n_checked > 0); }

// ---- matmul, all four transpose combinations --------------------------------------------------
typedef struct { int ta, tb; } mm_ctx;
static tern_tensor *b_matmul(tern_graph *g, tern_tensor **in, void *c) {
    mm_ctx *m = c;
    return tern_matmul(g, in[0], in[1], m->ta, m->tb);
}
static void test_matmul(void **st) {
    (void)st;
    int shapes[][3] = {{3, 5, 7}, {1, 17, 2}, {13, 8, 19}};
    for (int s = 0; s < 3; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
                inputs in;
                in_init(&in);
                in_add(&in, "a", 2, ta ? K : M, ta ? M : K);
                in_add(&in, "b", 2, tb ? N : K, tb ? K : N);
                in_alloc(&in, 10 + s);
                mm_ctx c = {ta, tb};
                char name[64];
                snprintf(name, sizeof name, "matmul %dx%dx%d %s%s", M, K, N, ta ? "T" : "N", tb ? "T" : "N");
                expect_ok(tu_gradcheck(name, b_matmul, &c, in.t, 2, H, ATOL, RTOL, MAXE));
                tern_params_free(&in.p);
            }
}

// ---- elementwise and reductions ---------------------------------------------------------------
static tern_tensor *b_add(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_add(g, in[0], in[1]); }
static tern_tensor *b_mul(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_mul(g, in[0], in[1]); }
static tern_tensor *b_square(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_mul(g, in[0], in[0]); }
static tern_tensor *b_scale(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_scale(g, in[0], -1.7f); }
static tern_tensor *b_sum(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_sum(g, in[0]); }
static tern_tensor *b_mean(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_mean(g, in[0]); }
static tern_tensor *b_silu(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_silu(g, in[0]); }
static tern_tensor *b_swiglu(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_swiglu(g, in[0], in[1]); }
static tern_tensor *b_relu2(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_relu2(g, in[0]); }
static tern_tensor *b_relu2_glu(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_relu2_glu(g, in[0], in[1]); }

static void check_unary_binary(const char *name, tu_build_fn f, int n_in, int rows, int cols) {
    inputs in;
    in_init(&in);
    for (int i = 0; i < n_in; i++) in_add(&in, i ? "b" : "a", 2, rows, cols);
    in_alloc(&in, 77);
    expect_ok(tu_gradcheck(name, f, NULL, in.t, n_in, H, ATOL, RTOL, MAXE));
    tern_params_free(&in.p);
}

static void test_elementwise(void **st) {
    (void)st;
    check_unary_binary("add 5x9", b_add, 2, 5, 9);
    check_unary_binary("mul 7x3", b_mul, 2, 7, 3);
    check_unary_binary("mul same tensor (a*a) 4x5", b_square, 1, 4, 5);
    check_unary_binary("scale 3x17", b_scale, 1, 3, 17);
    check_unary_binary("sum 6x7", b_sum, 1, 6, 7);
    check_unary_binary("mean 11x5", b_mean, 1, 11, 5);
    check_unary_binary("silu 9x13", b_silu, 1, 9, 13);
    check_unary_binary("swiglu 5x31", b_swiglu, 2, 5, 31);
    check_unary_binary("relu2 9x13", b_relu2, 1, 9, 13);
    check_unary_binary("relu2_glu 5x31", b_relu2_glu, 2, 5, 31);
}

// The same ops on intermediate tensors instead of leaves: their input gradients start fresh
// (engine/graph.h tern_grad_for: the op stores instead of adding; the sanitizer build fills a fresh
// buffer with NaN, so an element an op does not store fails here), and where an op may take one
// tensor twice, with both arguments the same tensor (the second argument then adds to the first's).
typedef struct { int op, same; } fresh_ctx;
static const int fresh_targets[5] = {3, TERN_IGNORE_INDEX, 0, 6, TERN_IGNORE_INDEX};
static tern_tensor *b_fresh(tern_graph *g, tern_tensor **in, void *c) {
    const fresh_ctx *k = c;
    tern_tensor *a = tern_scale(g, in[0], 1.0f), *b = k->same ? a : tern_scale(g, in[1], 1.0f);
    switch (k->op) {
    case 0: return tern_add(g, a, b);
    case 1: return tern_mul(g, a, b);
    case 2: return tern_swiglu(g, a, b);
    case 3: return tern_relu2_glu(g, a, b);
    case 4: return tern_silu(g, a);
    case 5: return tern_relu2(g, a);
    case 6: return tern_scale(g, a, -0.5f);
    case 7: return tern_cross_entropy(g, a, fresh_targets, TERN_IGNORE_INDEX);   // rows 1 and 4 ignored
    default: return tern_matmul(g, a, b, 0, 1);   // a b^T (b == a: a a^T)
    }
}

static void test_fresh_gradients(void **st) {
    (void)st;
    static const char *names[] = {"add", "mul", "swiglu", "relu2_glu", "silu", "relu2", "scale", "cross_entropy", "matmul NT"};
    for (int op = 0; op < 9; op++)
        for (int same = 0; same < (op <= 3 || op == 8 ? 2 : 1); same++) {
            inputs in;
            in_init(&in);
            in_add(&in, "a", 2, 5, 7);
            in_add(&in, "b", 2, 5, 7);
            in_alloc(&in, 91 + op);
            fresh_ctx c = {op, same};
            char name[64];
            snprintf(name, sizeof name, "%s of intermediates%s", names[op], same ? ", one tensor twice" : "");
            expect_ok(tu_gradcheck(name, b_fresh, &c, in.t, same || (op >= 4 && op <= 7) ? 1 : 2, H, ATOL, RTOL, MAXE));
            tern_params_free(&in.p);
        }
}

// ReLU² against its definition, elementwise (a plain loop that shares no code with the op), and
// exactly zero gradient where the gate is negative.
static void test_relu2_values(void **st) {
    (void)st;
    inputs in;
    in_init(&in);
    in_add(&in, "gate", 2, 4, 9);
    in_add(&in, "up", 2, 4, 9);
    in_alloc(&in, 5);
    in.t[0]->data[0] = 0.0f;
    in.t[0]->data[1] = -0.0f;
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    tern_tensor *y = tern_relu2_glu(&g, in.t[0], in.t[1]), *z = tern_relu2(&g, in.t[0]);
    int neg = 0;
    for (long i = 0; i < y->n; i++) {
        double a = in.t[0]->data[i], r = a > 0 ? a * a : 0.0;
        assert_float_equal(z->data[i], r, 1e-6 * (1 + r));
        assert_float_equal(y->data[i], r * in.t[1]->data[i], 1e-6 * (1 + fabs(r * in.t[1]->data[i])));
        neg += a <= 0;
    }
    assert_true(neg > 5);
    tern_params_zero_grad(&in.p);
    float seed[36];
    for (int i = 0; i < 36; i++) seed[i] = 1.0f;
    tern_backward_vec(&g, y, seed);
    for (long i = 0; i < y->n; i++)
        if (in.t[0]->data[i] <= 0) { assert_true(in.t[0]->grad[i] == 0.0f); assert_true(in.t[1]->grad[i] == 0.0f); }
        else assert_float_equal(in.t[0]->grad[i], 2 * in.t[0]->data[i] * in.t[1]->data[i], 1e-5);
    tern_graph_free(&g);
    tern_params_free(&in.p);
}

// ---- embedding (repeated ids) -----------------------------------------------------------------
static const int emb_ids[9] = {3, 0, 10, 3, 3, 7, 0, 1, 9};
static tern_tensor *b_embedding(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_embedding(g, in[0], emb_ids, 9); }
static void test_embedding(void **st) {
    (void)st;
    inputs in;
    in_init(&in);
    in_add(&in, "w", 2, 11, 7);
    in_alloc(&in, 5);
    expect_ok(tu_gradcheck("embedding 11x7, 9 ids", b_embedding, NULL, in.t, 1, H, ATOL, RTOL, 100));
    tern_params_free(&in.p);
}

// ---- RMSNorm -----------------------------------------------------------------------------------
static tern_tensor *b_rmsnorm(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_rmsnorm(g, in[0], in[1], 1e-5f); }
static void test_rmsnorm(void **st) {
    (void)st;
    int shapes[][2] = {{5, 19}, {1, 3}, {33, 16}};
    for (int s = 0; s < 3; s++) {
        inputs in;
        in_init(&in);
        in_add(&in, "x", 2, shapes[s][0], shapes[s][1]);
        in_add(&in, "w", 1, shapes[s][1], 0);
        in_alloc(&in, 40 + s);
        char name[64];
        snprintf(name, sizeof name, "rmsnorm %dx%d", shapes[s][0], shapes[s][1]);
        expect_ok(tu_gradcheck(name, b_rmsnorm, NULL, in.t, 2, H, ATOL, RTOL, MAXE));
        tern_params_free(&in.p);
    }
}

// ---- RoPE --------------------------------------------------------------------------------------
typedef struct { int B, T, Hh, D, pos0; } rope_ctx;
static tern_tensor *b_rope(tern_graph *g, tern_tensor **in, void *c) {
    rope_ctx *r = c;
    return tern_rope(g, in[0], r->B, r->T, r->Hh, r->D, r->pos0, 10000.0f);
}
static void test_rope(void **st) {
    (void)st;
    rope_ctx cs[] = {{2, 5, 3, 6, 0}, {1, 7, 2, 10, 3}, {3, 1, 1, 2, 11}};
    for (int s = 0; s < 3; s++) {
        rope_ctx *r = &cs[s];
        inputs in;
        in_init(&in);
        in_add(&in, "x", 2, r->B * r->T, r->Hh * r->D);
        in_alloc(&in, 60 + s);
        char name[64];
        snprintf(name, sizeof name, "rope B%d T%d H%d D%d pos0 %d", r->B, r->T, r->Hh, r->D, r->pos0);
        expect_ok(tu_gradcheck(name, b_rope, r, in.t, 1, H, ATOL, RTOL, MAXE));
        tern_params_free(&in.p);
    }
}

// RoPE with LLaMA-3 frequency divisors: gradients, and the divisors against HF's formula
typedef struct { int T, D; float div[8]; } rope_div_ctx;
static tern_tensor *b_rope_div(tern_graph *g, tern_tensor **in, void *c) {
    rope_div_ctx *r = c;
    return tern_rope_ex(g, in[0], 1, r->T, 2, r->D, 5, 500.0f, r->div);
}
static void test_rope_scaled(void **st) {
    (void)st;
    rope_div_ctx r = {6, 16, {0}};
    // theta 500, D 16, original context 40, factor 8, low 1, high 4: wavelengths 2pi..~1300 span all three cases
    tern_rope_llama3_divisors(16, 500.0f, 8.0f, 1.0f, 4.0f, 40, r.div);
    int ones = 0, full = 0, mid = 0;
    for (int i = 0; i < 8; i++) {
        double inv = pow(500.0, -2.0 * i / 16), wl = 2 * M_PI / inv, want;
        // Hugging Face's _compute_llama3_parameters, written out independently
        if (wl < 40.0 / 4) want = inv;
        else if (wl > 40.0 / 1) want = inv / 8;
        else { double sm = (40.0 / wl - 1) / (4 - 1); want = (1 - sm) * inv / 8 + sm * inv; }
        assert_float_equal(inv / r.div[i], want, 1e-6 * want);
        ones += r.div[i] == 1.0f; full += r.div[i] == 8.0f; mid += r.div[i] > 1.0f && r.div[i] < 8.0f;
    }
    assert_true(ones > 0 && full > 0 && mid > 0);
    inputs in;
    in_init(&in);
    in_add(&in, "x", 2, r.T, 2 * r.D);
    in_alloc(&in, 71);
    expect_ok(tu_gradcheck("rope llama3-scaled T6 H2 D16 pos0 5", b_rope_div, &r, in.t, 1, H, ATOL, RTOL, MAXE));
    tern_params_free(&in.p);
}

// ---- distillation KL ------------------------------------------------------------------------------
typedef struct { float T; float teacher[6 * 11]; } kl_ctx;
static const int kl_targets[6] = {3, TERN_IGNORE_INDEX, 0, 10, 7, 7};
static tern_tensor *b_kl(tern_graph *g, tern_tensor **in, void *c) {
    kl_ctx *k = c;
    return tern_kl_distill(g, in[0], k->teacher, kl_targets, TERN_IGNORE_INDEX, k->T);
}
static void test_kl_distill(void **st) {
    (void)st;
    float temps[3] = {1.0f, 2.0f, 0.5f};
    for (int t = 0; t < 3; t++) {
        kl_ctx k;
        k.T = temps[t];
        tu_fill_normal(k.teacher, 66, 900 + t, 2.0f);
        inputs in;
        in_init(&in);
        in_add(&in, "student", 2, 6, 11);
        in_alloc(&in, 31 + t);
        char name[64];
        snprintf(name, sizeof name, "kl_distill 6x11 T=%g (1 ignored)", (double)k.T);
        expect_ok(tu_gradcheck(name, b_kl, &k, in.t, 1, H, ATOL, RTOL, 100));
        // value against a float64 loop written from the definition
        tern_graph g;
        tern_graph_init(&g, 16, 0, 0);
        tern_tensor *l = b_kl(&g, in.t, &k);
        double tot = 0;
        int cnt = 0;
        for (int i = 0; i < 6; i++) {
            if (kl_targets[i] == TERN_IGNORE_INDEX) continue;
            double zt = 0, zs = 0, kl = 0;
            for (int v = 0; v < 11; v++) { zt += exp(k.teacher[i * 11 + v] / k.T); zs += exp(in.t[0]->data[i * 11 + v] / k.T); }
            for (int v = 0; v < 11; v++) {
                double p = exp(k.teacher[i * 11 + v] / k.T) / zt, q = exp(in.t[0]->data[i * 11 + v] / k.T) / zs;
                kl += p * log(p / q);
            }
            tot += kl;
            cnt++;
        }
        double want = k.T * k.T * tot / cnt;
        assert_float_equal(l->data[0], want, 1e-5 * (1 + want));
        assert_true(want > 0.01);
        // student == teacher: KL 0 and zero gradient
        memcpy(in.t[0]->data, k.teacher, sizeof k.teacher);
        tern_graph_reset(&g);
        tern_params_zero_grad(&in.p);
        l = b_kl(&g, in.t, &k);
        assert_true(fabsf(l->data[0]) < 1e-5f);
        tern_backward(&g, l, 1.0f);
        for (int i = 0; i < 66; i++) assert_true(fabsf(in.t[0]->grad[i]) < 1e-6f);
        tern_graph_free(&g);
        tern_params_free(&in.p);
    }
}

// ---- attention ---------------------------------------------------------------------------------
typedef struct { int B, T, Hq, Hkv, D; } att_ctx;
static tern_tensor *b_attention(tern_graph *g, tern_tensor **in, void *c) {
    att_ctx *a = c;
    return tern_attention(g, in[0], in[1], in[2], a->B, a->T, a->Hq, a->Hkv);
}
static void test_attention(void **st) {
    (void)st;
    // T = 70 spans two query blocks (ops_attention.c QB = 64), the second one partial
    att_ctx cs[] = {{2, 7, 4, 2, 5}, {1, 1, 3, 3, 8}, {1, 13, 2, 1, 3}, {2, 4, 3, 3, 4}, {1, 70, 2, 1, 2}};
    for (int s = 0; s < 5; s++) {
        att_ctx *a = &cs[s];
        inputs in;
        in_init(&in);
        in_add(&in, "q", 2, a->B * a->T, a->Hq * a->D);
        in_add(&in, "k", 2, a->B * a->T, a->Hkv * a->D);
        in_add(&in, "v", 2, a->B * a->T, a->Hkv * a->D);
        in_alloc(&in, 80 + s);
        char name[64];
        snprintf(name, sizeof name, "attention B%d T%d H%d/%d D%d", a->B, a->T, a->Hq, a->Hkv, a->D);
        expect_ok(tu_gradcheck(name, b_attention, a, in.t, 3, H, ATOL, RTOL, MAXE));
        tern_params_free(&in.p);
    }
}

// ---- cross-entropy (with an ignored row) ------------------------------------------------------
static const int ce_targets[6] = {3, 0, TERN_IGNORE_INDEX, 10, 7, 7};
static tern_tensor *b_ce(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_cross_entropy(g, in[0], ce_targets, TERN_IGNORE_INDEX); }
static void test_cross_entropy(void **st) {
    (void)st;
    inputs in;
    in_init(&in);
    in_add(&in, "logits", 2, 6, 11);
    in_alloc(&in, 3);
    tu_gc_result r = tu_gradcheck("cross_entropy 6x11 (1 ignored)", b_ce, NULL, in.t, 1, H, ATOL, RTOL, 100);
    expect_ok(r);
    // the ignored row gets exactly zero gradient
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    memset(in.p.grad, 0, sizeof(float) * (size_t)in.p.total);
    tern_backward(&g, b_ce(&g, in.t, NULL), 1.0f);
    for (int j = 0; j < 11; j++) assert_true(in.t[0]->grad[2 * 11 + j] == 0.0f);
    tern_graph_free(&g);
    tern_params_free(&in.p);
}

// ---- BitLinear in full precision (lambda = 0) is smooth: finite differences apply -------------
static tern_tensor *b_bitlinear_fp(tern_graph *g, tern_tensor **in, void *c) { (void)c; return tern_bitlinear(g, in[0], in[1], 0.0f); }
static void test_bitlinear_fp(void **st) {
    (void)st;
    inputs in;
    in_init(&in);
    in_add(&in, "x", 2, 7, 13);
    in_add(&in, "w", 2, 5, 13);
    in_alloc(&in, 21);
    expect_ok(tu_gradcheck("bitlinear fp 7x13 -> 5", b_bitlinear_fp, NULL, in.t, 2, H, ATOL, RTOL, MAXE));
    tern_params_free(&in.p);
}

// ---- composite graphs: tied weights, residual branches ------------------------------------------
static const int tie_ids[5] = {1, 4, 4, 0, 2}, tie_tg[5] = {4, 4, 0, 2, 1};
static tern_tensor *b_tied(tern_graph *g, tern_tensor **in, void *c) {
    (void)c; // logits = rmsnorm(embedding(E)) E^T; E used twice
    tern_tensor *x = tern_embedding(g, in[0], tie_ids, 5);
    x = tern_rmsnorm(g, x, in[1], 1e-5f);
    return tern_cross_entropy(g, tern_matmul(g, x, in[0], 0, 1), tie_tg, TERN_IGNORE_INDEX);
}
static tern_tensor *b_residual(tern_graph *g, tern_tensor **in, void *c) {
    (void)c; // y = x + silu(x W^T) ; x feeds both branches
    tern_tensor *h = tern_bitlinear(g, in[0], in[1], 0.0f);
    return tern_add(g, in[0], tern_silu(g, h));
}
static void test_graph_reuse(void **st) {
    (void)st;
    inputs in;
    in_init(&in);
    in_add(&in, "E", 2, 6, 8);
    in_add(&in, "norm", 1, 8, 0);
    in_alloc(&in, 8);
    expect_ok(tu_gradcheck("tied embedding+head", b_tied, NULL, in.t, 2, H, ATOL, RTOL, 100));
    tern_params_free(&in.p);
    in_init(&in);
    in_add(&in, "x", 2, 4, 6);
    in_add(&in, "w", 2, 6, 6);
    in_alloc(&in, 9);
    expect_ok(tu_gradcheck("residual x + silu(xW)", b_residual, NULL, in.t, 2, H, ATOL, RTOL, 100));
    tern_params_free(&in.p);
}

// Two backward passes: with zeroing between they agree bit for bit; without, grads double.
static void test_two_backward(void **st) {
    (void)st;
    inputs in;
    in_init(&in);
    in_add(&in, "E", 2, 6, 8);
    in_add(&in, "norm", 1, 8, 0);
    in_alloc(&in, 8);
    tern_graph g;
    tern_graph_init(&g, 64, 0, 0);
    float first[64], second[64];
    tern_params_zero_grad(&in.p);
    tern_backward(&g, b_tied(&g, in.t, NULL), 1.0f);
    memcpy(first, in.t[0]->grad, sizeof(float) * 48);
    tern_graph_reset(&g);
    tern_params_zero_grad(&in.p);
    tern_backward(&g, b_tied(&g, in.t, NULL), 1.0f);
    memcpy(second, in.t[0]->grad, sizeof(float) * 48);
    assert_memory_equal(first, second, sizeof(float) * 48);
    tern_graph_reset(&g);
    tern_backward(&g, b_tied(&g, in.t, NULL), 1.0f); // no zeroing: accumulates
    int nonzero = 0;
    for (int i = 0; i < 48; i++) {
        assert_float_equal(in.t[0]->grad[i], 2.0f * first[i], 1e-6f * (1.0f + fabsf(first[i])));
        nonzero += first[i] != 0.0f;
    }
    assert_true(nonzero > 10);
    tern_graph_free(&g);
    tern_params_free(&in.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),        cmocka_unit_test(test_elementwise), cmocka_unit_test(test_fresh_gradients), cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_rmsnorm),       cmocka_unit_test(test_rope),        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_relu2_values),  cmocka_unit_test(test_rope_scaled), cmocka_unit_test(test_kl_distill),
        cmocka_unit_test(test_cross_entropy), cmocka_unit_test(test_bitlinear_fp), cmocka_unit_test(test_graph_reuse),
        cmocka_unit_test(test_two_backward),
    };
    int rc = cmocka_run_group_tests_name("grad", tests, NULL, NULL);
    tu_gradcheck_summary();
    return rc;
}
