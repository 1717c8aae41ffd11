// test_recompute.c — activation recomputation (run key recompute, engine/graph.h tern_checkpoint)
// against the plain tape: after one step the loss and the WHOLE flat gradient buffer are
// bit-identical to recompute = 0, and so are the weights after a few AdamW steps, at 1 and 2
// threads, for ternary / full-precision / fp->ternary ramp models, SiLU with sub-norms and ReLU²
// without, tied and untied heads; through tern-train's trainer with gradient accumulation; the
// tape and arena are back where they were after each block's backward (fewer nodes kept, less
// memory than recompute = 0); evaluation (no gradients) is unchanged; a segment whose input is
// also read elsewhere, or is a parameter; the arena's mark/release.
// The contract the data-parallel hook relies on (every parameter's gradient final once the walk has
// passed the lowest node listing it) holds with checkpoints; test_dist runs recompute under mpirun.
#include "testutil.h"
#include "formats/tokfile.h"
#include "model/model.h"
#include "training/optim.h"
#include "training/trainer.h"
#include "util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tern_model_config cfg_of(int dim, int layers, int heads, int kv, int ffn, int vocab, int T, int ternary, int tied) {
    tern_model_config m;
    tern_model_config_defaults(&m);
    m.dim = dim; m.n_layers = layers; m.n_heads = heads; m.n_kv_heads = kv; m.ffn_dim = ffn; m.vocab_size = vocab;
    m.seq_len = T; m.ternary = ternary; m.tied_head = tied;
    assert_int_equal(tern_model_config_validate(&m), 0);
    return m;
}

typedef struct {
    tern_model m;
    tern_graph g;
    tern_adamw opt;
    size_t high;       // arena high-water mark of the first step
    int nodes_fwd;     // nodes on the tape after the forward of the first step
} run;

static int g_precision;   // graph precision of the runs (0 fp32, 1 mixed: engine/graph.h)

static void run_init(run *r, const tern_model_config *mc, float lambda, int recompute) {
    tern_model_build(&r->m, mc);
    tern_model_init_weights(&r->m, 11);
    r->m.quant_lambda = lambda;
    r->m.recompute = recompute;
    tern_graph_init(&r->g, tern_model_graph_nodes(mc), 4096, 0);
    r->g.precision = g_precision;
    tern_run_config rc;
    tern_config c;
    tern_config_defaults(&c);
    rc = c.run;
    tern_adamw_init_run(&r->opt, &r->m.params, &rc);
    r->high = 0;
    r->nodes_fwd = -1;
}

// one step on batch `in`/`tg`: loss (returned), gradients in r->m.params.grad
static float run_step(run *r, const int *in, const int *tg, int B) {
    tern_graph_reset(&r->g);
    tern_params_zero_grad(&r->m.params);
    tern_tensor *loss = tern_model_loss(&r->m, &r->g, in, tg, B, r->m.cfg.seq_len);
    int n = r->g.n_nodes;
    if (r->nodes_fwd < 0) r->nodes_fwd = n;
    tern_backward(&r->g, loss, 1.0f);
    assert_int_equal(r->g.n_nodes, n);   // the recomputed segments' nodes are gone again
    if (!r->high) r->high = r->g.arena.high;
    return loss->data[0];
}

static void run_free(run *r) {
    tern_adamw_free(&r->opt);
    tern_graph_free(&r->g);
    tern_model_free(&r->m);
}

static void check_same(const tern_model_config *mc, int B, int threads, float lambda, const char *what) {
    omp_set_num_threads(threads);
    int T = mc->seq_len, n = B * T, V = mc->vocab_size;
    int *in = malloc(sizeof(int) * (size_t)n), *tg = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) { in[i] = (i * 7 + 3) % V; tg[i] = (i * 13 + 5) % V; }
    tg[1] = TERN_IGNORE_INDEX;
    run a, b;
    run_init(&a, mc, lambda, 0);
    run_init(&b, mc, lambda, 1);
    size_t P = sizeof(float) * (size_t)a.m.params.total;
    for (int s = 1; s <= 4; s++) {
        float la = run_step(&a, in, tg, B), lb = run_step(&b, in, tg, B);
        if (memcmp(&la, &lb, sizeof la) != 0) fail_msg("%s, %d threads, step %d: loss %.9g vs %.9g with recompute", what, threads, s, la, lb);
        if (memcmp(a.m.params.grad, b.m.params.grad, P) != 0) {
            long k = 0;
            while (a.m.params.grad[k] == b.m.params.grad[k]) k++;
            fail_msg("%s, %d threads, step %d: gradient %ld differs: %.9g vs %.9g with recompute", what, threads, s, k,
                     a.m.params.grad[k], b.m.params.grad[k]);
        }
        assert_int_equal(tern_optim_step(&a.opt, &a.m.params, s, 1e-2f, 0.1f, 1.0f, NULL), 0);
        assert_int_equal(tern_optim_step(&b.opt, &b.m.params, s, 1e-2f, 0.1f, 1.0f, NULL), 0);
        if (memcmp(a.m.params.data, b.m.params.data, P) != 0) fail_msg("%s, %d threads: weights differ after step %d", what, threads, s);
        // the other micro-batch order: the tokens shifted (steps see different data)
        for (int i = 0; i < n; i++) { in[i] = (in[i] + 1) % V; tg[i] = tg[i] < 0 ? tg[i] : (tg[i] + 2) % V; }
    }
    // the checkpointed tape keeps one node per half-block instead of every op of it
    assert_true(b.nodes_fwd < a.nodes_fwd);
    assert_int_equal(b.nodes_fwd, 1 + 2 * mc->n_layers + 3);   // embedding, half-blocks, output norm, head, loss
    print_message("  %s, %d thread%s: bit-identical; arena %zu -> %zu bytes, tape %d -> %d nodes\n", what, threads,
                  threads == 1 ? "" : "s", a.high, b.high, a.nodes_fwd, b.nodes_fwd);
    // evaluation: no gradients, no checkpoint, the same logits
    a.g.grad_enabled = b.g.grad_enabled = 0;
    tern_graph_reset(&a.g);
    tern_graph_reset(&b.g);
    tern_tensor *xa = tern_model_forward(&a.m, &a.g, in, B, T), *xb = tern_model_forward(&b.m, &b.g, in, B, T);
    assert_memory_equal(xa->data, xb->data, sizeof(float) * (size_t)xa->n);
    assert_int_equal(b.g.n_nodes, 0);
    run_free(&a);
    run_free(&b);
    free(in);
    free(tg);
}

static void test_bit_identical(void **st) {
    (void)st;
    tern_model_config base = cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1);   // GQA, sub-norms, SiLU, tied
    tern_model_config relu = cfg_of(64, 3, 4, 4, 64, 50, 8, 1, 0);   // untied head
    relu.ffn_act = TERN_FFN_RELU2;
    relu.sub_norms = 0;
    assert_int_equal(tern_model_config_validate(&relu), 0);
    tern_model_config fp = cfg_of(64, 2, 2, 1, 88, 50, 12, 0, 1);
    for (int th = 1; th <= 2; th++) {
        check_same(&base, 2, th, 1.0f, "ternary");
        check_same(&relu, 3, th, 1.0f, "relu2, no sub-norms, untied");
        check_same(&fp, 2, th, 0.0f, "full precision");
        check_same(&base, 2, th, 0.5f, "fp->ternary ramp");
        g_precision = 1;   // precision=mixed: the recomputed forward keeps the same int8 activations
        check_same(&base, 2, th, 1.0f, "ternary, precision mixed");
        check_same(&relu, 3, th, 1.0f, "relu2, untied, precision mixed");
        g_precision = 0;
    }
    omp_set_num_threads(2);
}

// The contract the data-parallel hook relies on (graph.h node_hook): once the backward walk has
// passed the lowest node listing a parameter among its inputs (tern_node_input: src[], and a
// checkpoint's params[]), that parameter's gradient no longer changes. Checked on the model with
// and without recompute: a checkpoint that failed to list a parameter its segment writes, or a
// lister that skipped params[], would let the hook send a gradient before it is final.
typedef struct {
    tern_params *p;
    int *lowest;      // (p->n,) lowest node listing the parameter, -1: none
    float *snap;      // (p->total,) each gradient as it was when its lowest node was passed
} contract_ctx;

static void contract_hook(void *vctx, int node) {
    contract_ctx *c = vctx;
    for (int k = 0; k < c->p->n; k++) {
        const tern_tensor *t = c->p->t[k];
        if (c->lowest[k] == node) memcpy(c->snap + t->offset, t->grad, sizeof(float) * (size_t)t->n);
    }
}

static void check_contract(int recompute) {
    tern_model_config mc = cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 0);
    int B = 2, n = B * mc.seq_len;
    int *in = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) in[i] = (i * 7 + 1) % 61;
    run r;
    run_init(&r, &mc, 1.0f, recompute);
    tern_graph_reset(&r.g);
    tern_params_zero_grad(&r.m.params);
    tern_tensor *loss = tern_model_loss(&r.m, &r.g, in, in, B, mc.seq_len);
    tern_params *p = &r.m.params;
    contract_ctx c = {p, malloc(sizeof(int) * (size_t)p->n), calloc((size_t)p->total, sizeof(float))};
    for (int k = 0; k < p->n; k++) c.lowest[k] = -1;
    int listed = 0;
    for (int i = r.g.n_nodes - 1; i >= 0; i--)
        for (int j = 0; j < tern_node_n_inputs(&r.g.nodes[i]); j++) {
            const tern_tensor *t = tern_node_input(&r.g.nodes[i], j);
            for (int k = 0; t && k < p->n; k++)
                if (p->t[k] == t) { c.lowest[k] = i; listed++; }
        }
    r.g.node_hook = contract_hook;
    r.g.node_hook_ctx = &c;
    tern_backward(&r.g, loss, 1.0f);
    for (int k = 0; k < p->n; k++) {
        const tern_tensor *t = p->t[k];
        if (memcmp(c.snap + t->offset, t->grad, sizeof(float) * (size_t)t->n) != 0)
            fail_msg("recompute %d: %s's gradient changed after the walk passed node %d, the lowest listing it", recompute, t->name, c.lowest[k]);
        assert_true(c.lowest[k] >= 0);   // every parameter is read by some node
    }
    assert_true(listed >= p->n);
    free(c.lowest);
    free(c.snap);
    run_free(&r);
    free(in);
}

static void test_hook_contract(void **st) {
    (void)st;
    omp_set_num_threads(2);
    check_contract(0);
    check_contract(1);
}

// Recomputation needs less memory than keeping every activation, the more so the more blocks.
static void test_saves_memory(void **st) {
    (void)st;
    omp_set_num_threads(2);
    tern_model_config mc = cfg_of(128, 6, 4, 4, 256, 64, 32, 1, 1);
    int B = 4, n = B * mc.seq_len;
    int *in = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) in[i] = (i * 5) % 64;
    run a, b;
    run_init(&a, &mc, 1.0f, 0);
    run_init(&b, &mc, 1.0f, 1);
    run_step(&a, in, in, B);
    run_step(&b, in, in, B);
    print_message("  6 blocks: arena %zu -> %zu bytes with recompute\n", a.high, b.high);
    assert_true(b.high * 2 < a.high);
    run_free(&a);
    run_free(&b);
    free(in);
}

// tern-train's trainer: recompute = 1 (with gradient accumulation) trains the same weights.
static void test_trainer(void **st) {
    (void)st;
    char dir[] = "/tmp/tern_test_recompute_XXXXXX", p[300];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/t.tok", dir);
    int ids[600];
    for (int i = 0; i < 600; i++) ids[i] = (i * i + 3 * i) % 50;
    assert_int_equal(tern_tokfile_write(p, ids, 600, 50, 0, 0), 0);
    float *w[2];
    long total = 0;
    float loss[2];
    for (int rc = 0; rc < 2; rc++) {
        tern_config c;
        tern_config_defaults(&c);
        c.model = cfg_of(64, 2, 2, 1, 64, 50, 16, 1, 1);
        c.run.batch = 2;
        c.run.grad_accum = 2;
        c.run.steps = 3;
        c.run.warmup = 0;
        c.run.threads = 2;
        c.run.recompute = rc;
        snprintf(c.run.train_data, sizeof c.run.train_data, "%s", p);
        snprintf(c.run.out_dir, sizeof c.run.out_dir, "%s/run%d", dir, rc);
        assert_int_equal(tern_config_validate(&c), 0);
        tern_trainer t;
        tu_trainer_start(&t, &c);
        assert_int_equal(t.model.recompute, rc);
        size_t cap = tern_arena_capacity(&t.graph.arena);
        for (int s = 0; s < 3; s++) assert_int_equal(tern_trainer_step(&t), 0);
        assert_int_equal(tern_arena_capacity(&t.graph.arena), cap);   // the estimate sized it
        total = t.model.params.total;
        w[rc] = malloc(sizeof(float) * (size_t)total);
        memcpy(w[rc], t.model.params.data, sizeof(float) * (size_t)total);
        loss[rc] = t.last_loss;
        tern_trainer_free(&t);
    }
    assert_memory_equal(&loss[0], &loss[1], sizeof(float));
    assert_memory_equal(w[0], w[1], sizeof(float) * (size_t)total);
    free(w[0]);
    free(w[1]);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

// A segment whose input has another reader after it (its gradient is already being summed when
// the checkpoint's backward runs) and a parameter input: tern_checkpoint gives the same gradients
// as running the segment on the tape, bit for bit.
static tern_tensor *seg_norm_mul(tern_graph *g, tern_tensor *x, void *ctx, int arg) {
    tern_tensor *w = ctx;
    (void)arg;
    return tern_mul(g, tern_rmsnorm(g, x, w, 1e-5f), tern_silu(g, x));
}

static void shared_input_grads(int checkpoint, int param_input, float *grad_out, long *n_out) {
    tern_params p;
    tern_params_init(&p);
    int sx[2] = {5, 24}, sw[1] = {24};
    tern_tensor *x0 = tern_params_add(&p, "x", 2, sx, 0), *w = tern_params_add(&p, "w", 1, sw, 1);
    tern_params_alloc(&p);
    tu_fill_normal(x0->data, x0->n, 3, 1.0f);
    tu_fill_normal(w->data, w->n, 4, 0.5f);
    tern_graph g;
    tern_graph_init(&g, 64, 0, 0);
    for (int step = 0; step < 2; step++) {   // the second step's gradients still reach the flat buffer
        tern_graph_reset(&g);
        tern_params_zero_grad(&p);
        tern_tensor *x = param_input ? x0 : tern_silu(&g, x0);   // a parameter, or an activation
        tern_tensor *y = checkpoint ? tern_checkpoint(&g, x, seg_norm_mul, w, 0, &w, 1) : seg_norm_mul(&g, x, w, 0);
        tern_tensor *loss = tern_sum(&g, tern_silu(&g, tern_add(&g, y, x)));   // x read again after the segment
        tern_backward(&g, loss, 1.0f);
    }
    memcpy(grad_out, p.grad, sizeof(float) * (size_t)p.total);
    *n_out = p.total;
    tern_graph_free(&g);
    tern_params_free(&p);
}

static void test_shared_input(void **st) {
    (void)st;
    float a[1024], b[1024];
    long na, nb;
    for (int param = 0; param <= 1; param++) {
        shared_input_grads(0, param, a, &na);
        shared_input_grads(1, param, b, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, sizeof(float) * (size_t)na);
        int nz = 0;
        for (long i = 0; i < na; i++) nz += a[i] != 0.0f;
        assert_true(nz > na / 2);   // gradients flowed to x and w
    }
}

// mark/release gives back what was allocated since the mark, also across blocks the arena grew.
static void test_arena_mark(void **st) {
    (void)st;
    tern_arena a;
    tern_arena_init(&a, "test", 1024, 0);
    char *p0 = tern_arena_alloc(&a, 100);
    tern_arena_mark_t m = tern_arena_mark(&a);
    assert_int_equal(a.used_total, 128);
    char *p1 = tern_arena_alloc(&a, 200);
    tern_arena_release(&a, m);
    assert_int_equal(a.used_total, 128);
    assert_ptr_equal(tern_arena_alloc(&a, 200), p1);   // the same memory again
    tern_arena_release(&a, m);
    for (int i = 0; i < 5; i++) tern_arena_alloc(&a, 1000);   // grows new blocks
    assert_non_null(a.head->next);
    assert_int_equal(a.high, 128 + 5 * 1024);
    tern_arena_release(&a, m);
    assert_null(a.head->next);                           // the added blocks are freed
    assert_int_equal(a.used_total, 128);
    assert_ptr_equal(tern_arena_alloc(&a, 64), p1);
    tern_arena_reset(&a);                                // one block of the high-water size
    assert_int_equal(tern_arena_capacity(&a), 128 + 5 * 1024);
    (void)p0;
    tern_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_mark),
        cmocka_unit_test(test_bit_identical),
        cmocka_unit_test(test_shared_input),
        cmocka_unit_test(test_hook_contract),
        cmocka_unit_test(test_saves_memory),
        cmocka_unit_test(test_trainer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
