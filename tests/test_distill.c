// test_distill.c — fine-tuning a full-precision LLaMA-shaped model (no sub-norms) into a ternary
// BitNet with logit distillation from the fp teacher (training/trainer.h):
//   - sub-norms are inserted at 1 and every other weight starts as the teacher's;
//   - the loss falls and the validation KL to the teacher falls; the teacher is untouched (bit for
//     bit) and holds no gradient or optimizer state;
//   - distill_alpha = 0 trains exactly (bit for bit) as plain cross-entropy does, so the KL term
//     is the only thing distillation adds; a teacher with another vocabulary is refused.
#include "testutil.h"
#include "training/memory.h"
#include "training/trainer.h"
#include "formats/tokfile.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static char teacher_path[TERN_PATH_MAX];

// dst (TERN_PATH_MAX bytes) = src
static void setp(char *dst, const char *src) {
    size_t n = strlen(src);
    assert_true(n < TERN_PATH_MAX);
    memcpy(dst, src, n + 1);
}

// next = (5 * cur + 3) % 61 with a random token every 8 positions (as test_train.c)
static void make_data(const char *path, long n) {
    int *ids = malloc(sizeof(int) * (size_t)n);
    tern_rng r;
    tern_rng_seed(&r, 3);
    ids[0] = 1;
    for (long i = 1; i < n; i++) ids[i] = (i % 8 == 0) ? (int)(tern_rng_u64(&r) % 61) : (5 * ids[i - 1] + 3) % 61;
    assert_int_equal(tern_tokfile_write(path, ids, (size_t)n, 61, 0, 0), 0);
    free(ids);
}

static void tiny(tern_config *c, const char *run, long steps) {
    tern_config_defaults(c);
    const char *kv[] = {"dim=32", "n_layers=2", "n_heads=2", "n_kv_heads=1", "ffn_dim=64", "vocab_size=61", "seq_len=16",
                        "batch=4", "warmup=1", "lr=1e-2", "eval_interval=0", "ckpt_interval=0", "log_interval=1", "seed=5",
                        "eval_batches=8"};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) assert_int_equal(tern_config_set_arg(c, kv[i]), 0);
    c->run.steps = steps;
    snprintf(c->run.train_data, sizeof c->run.train_data, "%s/train.tok", dir);
    snprintf(c->run.val_data, sizeof c->run.val_data, "%s/val.tok", dir);
    snprintf(c->run.out_dir, sizeof c->run.out_dir, "%s/%s", dir, run);
}

// the student config: ternary from the fp teacher, sub-norms inserted
static void student(tern_config *c, const char *run, long steps, float alpha, int with_teacher) {
    tiny(c, run, steps);
    c->model.ternary = 1;
    c->model.sub_norms = 1;
    c->run.to_ternary_ramp = 5;
    c->run.lr = 3e-3f;
    setp(c->run.init_from, teacher_path);
    if (with_teacher) setp(c->run.teacher, teacher_path);
    c->run.distill_alpha = alpha;
    c->run.distill_temp = 2.0f;
    if (tern_config_validate(c) != 0) fail_msg("%s", tern_last_error());
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/tern_test_distill_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/train.tok", dir);
    make_data(p, 20000);
    snprintf(p, sizeof p, "%s/val.tok", dir);
    make_data(p, 3000);
    // the teacher: a full-precision LLaMA-shaped model (no sub-norms), trained briefly
    tern_config c;
    tiny(&c, "teacher", 40);
    c.model.ternary = 0;
    c.model.sub_norms = 0;
    c.run.lr = 1e-2f;
    if (tern_config_validate(&c) != 0) return -1;
    tern_trainer t;
    if (tern_trainer_init(&t, &c, 0) != 0) { fprintf(stderr, "%s\n", tern_last_error()); return -1; }
    t.quiet = 1;
    int rc = tern_trainer_run(&t);
    if (strlen(t.last_ckpt) >= sizeof teacher_path) return -1;
    memcpy(teacher_path, t.last_ckpt, strlen(t.last_ckpt) + 1);
    tern_trainer_free(&t);
    return rc;
}

static int teardown(void **st) {
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static uint64_t checksum(const tern_params *p) { return tern_fnv1a64(p->data, sizeof(float) * (size_t)p->total); }

static void test_distill_converges(void **st) {
    (void)st;
    tern_config c;
    student(&c, "distill", 40, 0.5f, 1);
    tern_trainer t;
    if (tern_trainer_init(&t, &c, 0) != 0) fail_msg("%s", tern_last_error());
    t.quiet = 1;
    assert_true(t.has_teacher);
    // the teacher is frozen: values only
    assert_null(t.teacher.params.grad);
    assert_null(t.teacher.params.m);
    assert_null(t.teacher.params.v);
    assert_int_equal(t.teacher.cfg.sub_norms, 0);
    uint64_t tsum = checksum(&t.teacher.params);
    // sub-norms inserted at 1, the rest copied from the teacher
    for (int l = 0; l < 2; l++) {
        for (long i = 0; i < t.model.layers[l].attn_sub_norm->n; i++) assert_true(t.model.layers[l].attn_sub_norm->data[i] == 1.0f);
        for (long i = 0; i < t.model.layers[l].ffn_sub_norm->n; i++) assert_true(t.model.layers[l].ffn_sub_norm->data[i] == 1.0f);
        assert_memory_equal(t.model.layers[l].ffn_down->data, t.teacher.layers[l].ffn_down->data,
                            sizeof(float) * (size_t)t.model.layers[l].ffn_down->n);
    }
    assert_memory_equal(t.model.token_embd->data, t.teacher.token_embd->data, sizeof(float) * (size_t)t.model.token_embd->n);
    t.model.quant_lambda = 1.0f;
    tern_distill_eval d0, d1;
    assert_int_equal(tern_trainer_eval_distill(&t, &d0), 0);
    float first_loss = 0, first_kl = 0;
    for (int s = 0; s < 40; s++) {
        assert_int_equal(tern_trainer_step(&t), 0);
        if (s == 0) { first_loss = t.last_loss; first_kl = t.last_kl; }
        // loss = (1-a) CE + a KL, as reported
        assert_float_equal(t.last_loss, 0.5f * t.last_ce + 0.5f * t.last_kl, 1e-4f * (1 + t.last_loss));
    }
    t.model.quant_lambda = 1.0f;
    assert_int_equal(tern_trainer_eval_distill(&t, &d1), 0);
    printf("distill: train loss %.3f -> %.3f, train KL %.4f -> %.4f; val: student %.3f -> %.3f (teacher %.3f), KL %.4f -> %.4f, "
           "top-1 agreement %.1f%% -> %.1f%%\n", first_loss, t.last_loss, first_kl, t.last_kl, d0.student_ce, d1.student_ce,
           d1.teacher_ce, d0.kl, d1.kl, 100 * d0.top1_agree, 100 * d1.top1_agree);
    assert_true(t.last_loss < first_loss);
    assert_true(d1.kl < 0.7f * d0.kl);                 // the KL to the teacher falls
    assert_true(d1.student_ce < d0.student_ce);
    assert_true(d0.teacher_ce == d1.teacher_ce);       // same teacher, same windows
    assert_true(checksum(&t.teacher.params) == tsum);  // untouched
    assert_int_equal(d1.positions, 8L * 4 * 16);   // eval_batches x batch windows of seq_len
    assert_int_equal(tern_trainer_save(&t), 0);
    tern_trainer_free(&t);
}

// alpha = 0: the KL term weighs nothing, so training equals plain CE bit for bit
static void test_alpha_zero_is_plain_ce(void **st) {
    (void)st;
    tern_config a, b;
    student(&a, "a0_teacher", 6, 0.0f, 1);
    student(&b, "a0_plain", 6, 0.0f, 0);
    tern_trainer ta, tb;
    assert_int_equal(tern_trainer_init(&ta, &a, 0), 0);
    assert_int_equal(tern_trainer_init(&tb, &b, 0), 0);
    ta.quiet = tb.quiet = 1;
    for (int s = 0; s < 6; s++) {
        assert_int_equal(tern_trainer_step(&ta), 0);
        assert_int_equal(tern_trainer_step(&tb), 0);
        assert_true(ta.last_loss == tb.last_loss);
        assert_true(ta.last_kl > 0.0f);   // computed, just not weighted
    }
    assert_memory_equal(ta.model.params.data, tb.model.params.data, sizeof(float) * (size_t)ta.model.params.total);
    // and with alpha > 0 the same run differs (the comparison can fail)
    tern_config c;
    student(&c, "a05", 6, 0.5f, 1);
    tern_trainer tc;
    tu_trainer_start(&tc, &c);
    for (int s = 0; s < 6; s++) assert_int_equal(tern_trainer_step(&tc), 0);
    assert_true(memcmp(tc.model.params.data, tb.model.params.data, sizeof(float) * (size_t)tb.model.params.total) != 0);
    tern_trainer_free(&ta);
    tern_trainer_free(&tb);
    tern_trainer_free(&tc);
}

static void test_teacher_mismatch(void **st) {
    (void)st;
    // a teacher with another vocabulary
    tern_config c;
    tiny(&c, "teacher62", 4);
    c.model.vocab_size = 62;
    c.model.ternary = 0;
    assert_int_equal(tern_config_validate(&c), 0);
    tern_trainer t;
    tu_trainer_run(&t, &c);
    char other[TERN_PATH_MAX];
    setp(other, t.last_ckpt);
    tern_trainer_free(&t);
    tern_config s;
    student(&s, "mismatch", 4, 0.5f, 1);
    setp(s.run.teacher, other);
    assert_int_equal(tern_trainer_init(&t, &s, 0), -1);
    assert_non_null(strstr(tern_last_error(), "vocab_size"));
    tern_trainer_free(&t);
    // a missing teacher file
    student(&s, "missing", 4, 0.5f, 1);
    snprintf(s.run.teacher, sizeof s.run.teacher, "%s/nope.h5", dir);
    assert_int_equal(tern_trainer_init(&t, &s, 0), -1);
    assert_non_null(strstr(tern_last_error(), "nope.h5"));
    tern_trainer_free(&t);
    // memory: the estimate counts the teacher; a max_memory the student alone fits is refused
    student(&s, "memory", 4, 0.5f, 1);
    tern_mem_inputs in;
    tern_mem_inputs_for_run(&s, 0, &in);
    assert_int_equal(in.has_teacher, 1);
    assert_int_equal(in.teacher.sub_norms, 0);
    tern_mem_estimate e, e0;
    assert_int_equal(tern_mem_estimate_run(&s, &in, &e), 0);
    in.has_teacher = 0;
    assert_int_equal(tern_mem_estimate_run(&s, &in, &e0), 0);
    assert_true(e.teacher > 0 && e.peak > e0.peak + e.teacher / 2);
    s.run.max_memory = (long)(e0.peak + e.teacher / 2);
    assert_int_equal(tern_trainer_init(&t, &s, 0), -1);
    assert_non_null(strstr(tern_last_error(), "distillation teacher"));
    assert_null(t.teacher.params.data);   // refused before the teacher is loaded
    tern_trainer_free(&t);
    // it fits without the limit; the estimates are the arenas' first blocks: a step grows neither
    s.run.max_memory = 0;
    tu_trainer_start(&t, &s);
    size_t cap_s = tern_arena_capacity(&t.graph.arena), cap_t = tern_arena_capacity(&t.teacher_graph.arena);
    assert_int_equal(tern_trainer_step(&t), 0);
    assert_int_equal(tern_arena_capacity(&t.graph.arena), cap_s);
    assert_int_equal(tern_arena_capacity(&t.teacher_graph.arena), cap_t);
    assert_true(t.teacher_graph.arena.high <= cap_t && t.teacher_graph.arena.high > 0);
    tern_trainer_free(&t);
    // sub-norms cannot be dropped
    student(&s, "drop", 4, 0.5f, 0);
    snprintf(s.run.init_from, sizeof s.run.init_from, "%s/distill/latest.h5", dir);
    s.model.sub_norms = 0;
    assert_int_equal(tern_trainer_init(&t, &s, 0), -1);
    assert_non_null(strstr(tern_last_error(), "sub-norms"));
    tern_trainer_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distill_converges),
        cmocka_unit_test(test_alpha_zero_is_plain_ce),
        cmocka_unit_test(test_teacher_mismatch),
    };
    return cmocka_run_group_tests_name("distill", tests, setup, teardown);
}
