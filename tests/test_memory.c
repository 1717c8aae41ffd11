// test_memory.c — the memory estimate of training/memory.h against what tern really allocates:
// the activation arena of one training step (forward + loss + backward) must be exactly what
// tern_mem_activations() computes, for ternary / full-precision / ramp models, tied and untied
// heads, grouped-query attention, odd widths and 1-3 threads (so an op that changes what it
// allocates fails here until the estimate follows), with and without recompute (each block's
// activations recomputed in backward: engine/graph.h tern_checkpoint); the parameter buffers are what the model
// registers; a run that does not fit is refused before anything is allocated. The imported shapes
// (squared ReLU, no sub-norms, llama3 rope) and distillation (the student's KL term, the teacher's
// no-gradient arena, its values and logits buffer) are measured the same way.
#include "testutil.h"
#include "model/model.h"
#include "training/memory.h"
#include "training/trainer.h"
#include "formats/tokfile.h"
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

static tern_model_config shaped(tern_model_config m, int act, int sub_norms, int llama3) {
    m.ffn_act = act;
    m.sub_norms = sub_norms;
    if (llama3) m.rope_scaling = TERN_ROPE_SCALING_LLAMA3;
    assert_int_equal(tern_model_config_validate(&m), 0);
    return m;
}

// arena bytes of one real training step at `threads` threads, lambda = the BitLinear mode,
// recompute = the run key (model.h)
static size_t measure(const tern_model_config *mc, int B, int threads, float lambda, int recompute) {
    omp_set_num_threads(threads);
    tern_model m;
    tern_model_build(&m, mc);
    tern_model_init_weights(&m, 3);
    m.quant_lambda = lambda;
    m.recompute = recompute;
    int T = mc->seq_len, n = B * T;
    int *in = malloc(sizeof(int) * (size_t)n), *tg = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) { in[i] = (i * 7) % mc->vocab_size; tg[i] = (i * 11 + 1) % mc->vocab_size; }
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(mc), 4096, 0);
    tern_tensor *loss = tern_model_loss(&m, &g, in, tg, B, T);
    tern_backward(&g, loss, 1.0f);
    size_t high = g.arena.high;
    tern_graph_free(&g);
    tern_model_free(&m);
    free(in);
    free(tg);
    return high;
}

static void test_activations_exact(void **st) {
    (void)st;
    struct { tern_model_config m; int B; int threads; float lambda; } cases[] = {
        {cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), 2, 1, 1.0f},      // GQA, odd vocab, ffn not a multiple of 256
        {cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), 2, 2, 1.0f},      // per-thread scratch
        {cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), 3, 3, 1.0f},
        {cfg_of(64, 1, 4, 4, 88, 50, 16, 0, 1), 4, 2, 0.0f},     // full precision
        {cfg_of(64, 1, 2, 1, 64, 50, 8, 1, 0), 2, 2, 1.0f},      // untied head
        {cfg_of(256, 2, 4, 2, 512, 512, 64, 1, 1), 4, 2, 1.0f},  // configs/tiny.cfg
        {cfg_of(32, 1, 2, 1, 32, 40, 130, 1, 1), 1, 2, 1.0f},    // T > 2 query blocks of attention
        {shaped(cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), TERN_FFN_RELU2, 1, 0), 2, 2, 1.0f},   // BitNet 2B4T shape
        {shaped(cfg_of(64, 2, 4, 2, 96, 61, 9, 0, 0), TERN_FFN_SILU, 0, 1), 3, 2, 0.0f},    // imported LLaMA (no sub-norms, llama3 rope)
        {shaped(cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), TERN_FFN_RELU2, 0, 0), 2, 3, 1.0f},   // relu2 without sub-norms
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int rc = 0; rc <= 1; rc++) {   // every activation kept; each block recomputed in backward
            size_t got = measure(&cases[i].m, cases[i].B, cases[i].threads, cases[i].lambda, rc);
            tern_model_config mc = cases[i].m;
            size_t est = tern_mem_activations(&mc, cases[i].B, mc.seq_len, cases[i].threads, rc);
            printf("  case %zu, recompute %d: arena %zu bytes, estimate %zu\n", i, rc, got, est);
            if (got != est) fail_msg("case %zu, recompute %d: the step allocated %zu bytes, the estimate says %zu", i, rc, got, est);
        }
    // the fp -> ternary ramp (0 < lambda < 1) allocates no more than the ternary path the estimate assumes
    tern_model_config r = cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1);
    assert_true(measure(&r, 2, 2, 0.5f, 0) <= tern_mem_activations(&r, 2, 9, 2, 0));
    assert_true(measure(&r, 2, 2, 0.5f, 1) <= tern_mem_activations(&r, 2, 9, 2, 1));
    // more blocks: the kept inputs and input gradients grow with them, one block's activations do not
    tern_model_config deep = cfg_of(64, 7, 4, 2, 96, 61, 9, 1, 1);
    assert_int_equal(measure(&deep, 2, 2, 1.0f, 1), tern_mem_activations(&deep, 2, 9, 2, 1));
    // evaluation (no gradients) needs less than a training step
    omp_set_num_threads(2);
}

// precision = mixed: the graph's scratch buffer after one real step equals tern_mem_mixed_scratch
// (ternary and full-precision BitLinears, tied and untied heads, GQA, widths that are not
// multiples of 256, a vocabulary larger than the BitLinears so the head's panels are the largest,
// a long sequence so the attention's per-thread packs are)
static void test_mixed_scratch_exact(void **st) {
    (void)st;
    struct { tern_model_config m; int B; } cases[] = {
        {cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), 2},
        {cfg_of(64, 1, 2, 1, 64, 50, 8, 1, 0), 3},
        {cfg_of(64, 1, 4, 4, 88, 50, 16, 0, 1), 2},
        {cfg_of(256, 2, 4, 2, 512, 512, 64, 1, 1), 4},
        {cfg_of(64, 1, 4, 2, 320, 3000, 16, 1, 1), 2},
        {shaped(cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), TERN_FFN_RELU2, 1, 0), 2},
        {cfg_of(32, 1, 2, 2, 64, 50, 256, 0, 1), 1},   // long and narrow: the attention's packs are the largest
        {cfg_of(64, 1, 4, 4, 64, 40, 64, 0, 1), 4},    // more tokens than vocabulary: the head's weight gradient is
        // short sequences, many of them (small attention packs): the head's weight gradient (512
        // tokens x vocabulary 40) is the largest; then, ternary, the down projection's int8 dx
        // scratch at the padded width (64 rows padded to 256)
        {cfg_of(64, 1, 4, 4, 64, 40, 8, 0, 1), 64},
        {cfg_of(64, 1, 4, 4, 96, 40, 8, 1, 1), 64},
    };
    omp_set_num_threads(2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tern_model_config *mc = &cases[i].m;
        tern_model m;
        tern_model_build(&m, mc);
        tern_model_init_weights(&m, 3);
        int T = mc->seq_len, n = cases[i].B * T;
        int *in = malloc(sizeof(int) * (size_t)n), *tg = malloc(sizeof(int) * (size_t)n);
        for (int k = 0; k < n; k++) { in[k] = (k * 7) % mc->vocab_size; tg[k] = (k * 11 + 1) % mc->vocab_size; }
        tern_graph g;
        tern_graph_init(&g, tern_model_graph_nodes(mc), 4096, 0);
        g.precision = TERN_PREC_MIXED;
        tern_backward(&g, tern_model_loss(&m, &g, in, tg, cases[i].B, T), 1.0f);
        size_t est = tern_mem_mixed_scratch(mc, cases[i].B, T, mc->ternary, 2);
        printf("  mixed case %zu: scratch %zu bytes, estimate %zu\n", i, g.scratch_bytes, est);
        if (g.scratch_bytes != est) fail_msg("mixed case %zu: the step's scratch is %zu bytes, the estimate says %zu", i, g.scratch_bytes, est);
        tern_graph_free(&g);
        tern_model_free(&m);
        free(in);
        free(tg);
    }
    // and the run estimate counts it in its peak with precision = mixed only
    tern_config c;
    tern_config_defaults(&c);
    c.model = cases[4].m;
    c.run.batch = cases[4].B;
    tern_mem_estimate e32, emx;
    assert_int_equal(tern_mem_estimate_run(&c, NULL, &e32), 0);
    c.run.precision = TERN_PREC_MIXED;
    assert_int_equal(tern_mem_estimate_run(&c, NULL, &emx), 0);
    assert_int_equal(e32.mixed_scratch, 0);
    assert_int_equal(emx.mixed_scratch, tern_mem_mixed_scratch(&c.model, c.run.batch, c.model.seq_len, 1, 1));
    assert_int_equal(emx.peak, e32.peak + emx.mixed_scratch);
}

// Distillation as the trainer runs it: the frozen teacher forward one sequence at a time with its
// cross-entropy (validation) on a no-gradient graph, then the student's step with CE and KL.
static void measure_distill(const tern_model_config *sc, const tern_model_config *tc, int B, int threads, int recompute,
                            size_t *student_high, size_t *teacher_high) {
    omp_set_num_threads(threads);
    tern_model s, t;
    tern_model_build(&s, sc);
    tern_model_init_weights(&s, 3);
    s.recompute = recompute;
    tern_model_build_frozen(&t, tc);
    tern_model_init_weights(&t, 4);
    int T = sc->seq_len, n = B * T, V = sc->vocab_size;
    int *in = malloc(sizeof(int) * (size_t)n), *tg = malloc(sizeof(int) * (size_t)n);
    float *tl = malloc(sizeof(float) * (size_t)n * V);
    for (int i = 0; i < n; i++) { in[i] = (i * 7) % V; tg[i] = (i * 11 + 1) % V; }
    tern_graph tgr, g;
    tern_graph_init(&tgr, tern_model_graph_nodes(tc), 4096, 0);
    tgr.grad_enabled = 0;
    *teacher_high = 0;
    for (int b = 0; b < B; b++) {
        tern_graph_reset(&tgr);
        tern_tensor *lg = tern_model_forward(&t, &tgr, in + (size_t)b * T, 1, T);
        memcpy(tl + (size_t)b * T * V, lg->data, sizeof(float) * (size_t)T * V);
        tern_cross_entropy(&tgr, lg, tg + (size_t)b * T, TERN_IGNORE_INDEX);
        if (tgr.arena.high > *teacher_high) *teacher_high = tgr.arena.high;
    }
    tern_graph_init(&g, tern_model_graph_nodes(sc), 4096, 0);
    tern_tensor *lg = tern_model_forward(&s, &g, in, B, T);
    tern_tensor *ce = tern_cross_entropy(&g, lg, tg, TERN_IGNORE_INDEX);
    tern_tensor *kl = tern_kl_distill(&g, lg, tl, tg, TERN_IGNORE_INDEX, 2.0f);
    tern_tensor *loss = tern_add(&g, tern_scale(&g, ce, 0.5f), tern_scale(&g, kl, 0.5f));
    tern_backward(&g, loss, 1.0f);
    *student_high = g.arena.high;
    tern_graph_free(&g);
    tern_graph_free(&tgr);
    tern_model_free(&s);
    tern_model_free(&t);
    free(in);
    free(tg);
    free(tl);
}

// The student's step arena with distillation, and the teacher's arena, exactly as estimated;
// the estimate's teacher part covers the teacher's values, logits buffer and arena.
static void test_distill_exact(void **st) {
    (void)st;
    struct { tern_model_config s, t; int B, threads; } cases[] = {
        // LLaMA imported (fp teacher, no sub-norms) -> ternary student with sub-norms inserted
        {cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 1), shaped(cfg_of(64, 2, 4, 2, 96, 61, 9, 0, 1), TERN_FFN_SILU, 0, 0), 2, 2},
        // a bigger teacher of another shape, untied, llama3 rope; ReLU² ternary student
        {shaped(cfg_of(64, 1, 4, 4, 64, 50, 12, 1, 1), TERN_FFN_RELU2, 1, 0),
         shaped(cfg_of(96, 2, 4, 1, 160, 50, 12, 0, 0), TERN_FFN_SILU, 0, 1), 3, 3},
        // a ternary teacher (its forward takes the int8 path without keeping x_eff)
        {cfg_of(64, 1, 2, 1, 64, 50, 8, 1, 1), cfg_of(64, 2, 2, 2, 128, 50, 8, 1, 1), 2, 1},
    };
    for (size_t k = 0; k < 2 * sizeof cases / sizeof cases[0]; k++) {
        size_t sh, th, i = k / 2;
        int rc = (int)(k % 2);   // the student recomputing its blocks
        measure_distill(&cases[i].s, &cases[i].t, cases[i].B, cases[i].threads, rc, &sh, &th);
        int T = cases[i].s.seq_len;
        size_t se = tern_mem_activations(&cases[i].s, cases[i].B, T, cases[i].threads, rc) + tern_mem_distill_extra(cases[i].B, T);
        size_t te = tern_mem_teacher_arena(&cases[i].t, T, cases[i].threads);
        printf("  distill case %zu, recompute %d: student arena %zu (estimate %zu), teacher arena %zu (estimate %zu)\n", i, rc, sh, se, th, te);
        if (sh != se) fail_msg("distill case %zu: the student step allocated %zu bytes, the estimate says %zu", i, sh, se);
        if (th != te) fail_msg("distill case %zu: the teacher allocated %zu bytes, the estimate says %zu", i, th, te);
    }
    // the run estimate: teacher values only (4 bytes per parameter), logits [batch*seq_len, vocab]
    tern_config c;
    tern_config_defaults(&c);
    c.model = cases[0].s;
    c.run.batch = 2;
    tern_mem_inputs in = {.threads = 2, .ranks = 1, .node_ranks = 1, .has_teacher = 1, .teacher = cases[0].t};
    tern_mem_estimate e, e0;
    assert_int_equal(tern_mem_estimate_run(&c, &in, &e), 0);
    in.has_teacher = 0;
    assert_int_equal(tern_mem_estimate_run(&c, &in, &e0), 0);
    size_t tn = 4 * (size_t)tern_model_config_nparams(&cases[0].t);   // values only; tensors padded to 16 floats
    assert_true(e.teacher_params >= tn && e.teacher_params < tn + 4 * 16 * 64);
    assert_int_equal(e.teacher_logits, 4 * (size_t)2 * 9 * 61);
    assert_int_equal(e.teacher_activations, tern_mem_teacher_arena(&cases[0].t, 9, 2));
    assert_int_equal(e.teacher, e.teacher_params + e.teacher_logits + e.teacher_activations);
    assert_int_equal(e.activations, e0.activations + tern_mem_distill_extra(2, 9));
    assert_int_equal(e.params + e.grads + e.adam, e0.params + e0.grads + e0.adam);   // the student's alone
    assert_true(e.peak >= e0.peak + e.teacher);
    omp_set_num_threads(2);
}

static void test_estimate_parts(void **st) {
    (void)st;
    tern_config c;
    tern_config_defaults(&c);
    c.model = cfg_of(64, 2, 4, 2, 96, 61, 9, 1, 0);
    c.run.batch = 3;
    assert_int_equal(tern_config_validate(&c), 0);
    tern_model m;
    tern_model_build(&m, &c.model);
    tern_mem_inputs in = {.threads = 2, .train_bytes = 64 + 2 * 9000, .val_bytes = 64 + 2 * 900, .tokenizer_bytes = 5000, .ranks = 1, .node_ranks = 1};
    tern_mem_estimate e;
    assert_int_equal(tern_mem_estimate_run(&c, &in, &e), 0);
    assert_int_equal(e.n_params, m.params.total);                    // what the model registers, padding included
    assert_int_equal(e.params, 4 * (size_t)m.params.total);
    assert_int_equal(e.grads, e.params);
    assert_int_equal(e.adam, 2 * e.params);
    assert_int_equal(e.activations, tern_mem_activations(&c.model, 3, 9, 2, 0));
    c.run.recompute = 1;   // the run key reaches the estimate
    assert_int_equal(tern_mem_estimate_run(&c, &in, &e), 0);
    assert_int_equal(e.activations, tern_mem_activations(&c.model, 3, 9, 2, 1));
    assert_true(e.activations < tern_mem_activations(&c.model, 3, 9, 2, 0));
    c.run.recompute = 0;
    assert_int_equal(tern_mem_estimate_run(&c, &in, &e), 0);
    assert_int_equal(e.batch, 2 * sizeof(int) * 3 * 9);
    assert_int_equal(e.loader, 8 * (9000 / 9 + 900 / 9));
    assert_int_equal(e.token_maps, 64 + 2 * 9000 + 64 + 2 * 900);
    assert_int_equal(e.load_scratch, 0);
    assert_true(e.peak >= e.params + e.grads + e.adam + e.activations);
    in.resuming = 1;   // resume: params, m and v copied while loading
    assert_int_equal(tern_mem_estimate_run(&c, &in, &e), 0);
    assert_int_equal(e.load_scratch, 3 * e.params);
    size_t sum = e.params + e.grads + e.adam + e.mixed_scratch + e.batch + e.loader + e.tokenizer + e.runtime +
                 (e.activations > e.load_scratch ? e.activations : e.load_scratch);
    assert_int_equal(e.peak, sum);
    tern_model_free(&m);
    // what the machine offers is known on Linux, and a limit is enforced
    assert_true(tern_mem_available() > ((size_t)1 << 20));
    assert_int_equal(tern_mem_check(&e, e.peak), 0);
    assert_int_equal(tern_mem_check(&e, e.peak - 1), -1);
    assert_non_null(strstr(tern_last_error(), "max_memory is"));
    assert_non_null(strstr(tern_last_error(), "set recompute = 1"));   // the first thing to try
    assert_null(strchr(tern_last_error(), '\n'));
    // absurd configs: the estimate is computed without overflow and refused against the machine
    tern_config big;
    tern_config_defaults(&big);
    big.run.batch = 1000000;   // cfg_train_signal_200639.cfg
    big.model = cfg_of(32, 1, 2, 1, 32, 512, 16, 1, 1);
    assert_int_equal(tern_config_validate(&big), 0);
    tern_mem_inputs one = {.threads = 2, .ranks = 1, .node_ranks = 1};
    assert_int_equal(tern_mem_estimate_run(&big, &one, &e), 0);
    assert_true(e.activations > ((size_t)100 << 30) / 100);   // > 1 GB of activations
    char b[32];
    printf("  batch 1000000: %s estimated\n", tern_mem_str(e.peak, b, sizeof b));
}

// The trainer refuses a run that exceeds max_memory before allocating anything, naming the sizes.
static void test_trainer_refuses(void **st) {
    (void)st;
    char dir[] = "/tmp/tern_test_mem_XXXXXX", p[300];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/t.tok", dir);
    int ids[400];
    for (int i = 0; i < 400; i++) ids[i] = i % 50;
    assert_int_equal(tern_tokfile_write(p, ids, 400, 50, 0, 0), 0);
    tern_config c;
    tern_config_defaults(&c);
    c.model = cfg_of(64, 1, 2, 1, 64, 50, 16, 1, 1);
    c.run.batch = 2;
    c.run.steps = 2;
    c.run.warmup = 0;
    snprintf(c.run.train_data, sizeof c.run.train_data, "%s", p);
    snprintf(c.run.out_dir, sizeof c.run.out_dir, "%s/run", dir);
    c.run.max_memory = 1 << 20;
    assert_int_equal(tern_config_validate(&c), 0);
    tern_trainer t;
    assert_int_equal(tern_trainer_init(&t, &c, 0), -1);
    assert_non_null(strstr(tern_last_error(), "max_memory is 1.0 MiB"));
    assert_null(t.model.params.data);   // nothing allocated
    tern_trainer_free(&t);
    c.run.max_memory = 0;   // auto: fits
    assert_int_equal(tern_trainer_init(&t, &c, 0), 0);
    // the arena's first block is the estimate: a step never grows it
    t.quiet = 1;
    size_t cap = tern_arena_capacity(&t.graph.arena);
    assert_int_equal(tern_trainer_step(&t), 0);
    assert_int_equal(tern_arena_capacity(&t.graph.arena), cap);
    assert_true(t.graph.arena.high <= cap);
    tern_trainer_free(&t);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activations_exact),
        cmocka_unit_test(test_mixed_scratch_exact),
        cmocka_unit_test(test_distill_exact),
        cmocka_unit_test(test_estimate_parts),
        cmocka_unit_test(test_trainer_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
