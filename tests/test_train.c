// test_train.c — the training loop end to end on a tiny model and a synthetic token file:
// the loss falls; resume is bit-exact; fine-tuning starts from a checkpoint; non-finite values
// stop training with a clear error and leave the weights untouched.
#include "testutil.h"
#include "training/trainer.h"
#include "formats/tokfile.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

// a learnable sequence: next = (5 * cur + 3) % 61, with a random token every 8 positions
static void make_data(const char *path, long n) {
    int *ids = malloc(sizeof(int) * (size_t)n);
    tern_rng r;
    tern_rng_seed(&r, 3);
    ids[0] = 1;
    for (long i = 1; i < n; i++) ids[i] = (i % 8 == 0) ? (int)(tern_rng_u64(&r) % 61) : (5 * ids[i - 1] + 3) % 61;
    assert_int_equal(tern_tokfile_write(path, ids, (size_t)n, 61, 0, 0), 0);
    free(ids);
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/tern_test_train_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/train.tok", dir);
    make_data(p, 20000);
    snprintf(p, sizeof p, "%s/val.tok", dir);
    make_data(p, 3000);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void tiny(tern_config *c, const char *run, long steps) {
    tern_config_defaults(c);
    const char *kv[] = {"dim=32", "n_layers=2", "n_heads=2", "n_kv_heads=1", "ffn_dim=64", "vocab_size=61", "seq_len=16",
                        "batch=4", "warmup=1", "lr=1e-2", "eval_interval=0", "ckpt_interval=0", "log_interval=1", "seed=5"};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++) assert_int_equal(tern_config_set_arg(c, kv[i]), 0);
    c->run.steps = steps;
    snprintf(c->run.train_data, sizeof c->run.train_data, "%s/train.tok", dir);
    snprintf(c->run.val_data, sizeof c->run.val_data, "%s/val.tok", dir);
    snprintf(c->run.out_dir, sizeof c->run.out_dir, "%s/%s", dir, run);
    if (tern_config_validate(c) != 0) fail_msg("%s", tern_last_error());
}

// precision=mixed trains with bf16 products, but the trainer evaluates exactly: the validation loss
// of a mixed trainer equals an fp32 trainer's on the same weights, bit for bit (and the training
// loss differs, so the bf16 products do run)
static void test_eval_exact_under_mixed(void **st) {
    (void)st;
    tern_config c[2];
    tern_trainer t[2];
    float v[2], l[2];
    for (int i = 0; i < 2; i++) {
        tiny(&c[i], i ? "evmixed" : "evfp32", 4);
        c[i].run.steps = 1;   // (validated with 4: the schedule wants warmup < steps / 2)
        c[i].run.precision = i ? TERN_PREC_MIXED : TERN_PREC_FP32;
        if (tern_trainer_init(&t[i], &c[i], 0) != 0) fail_msg("%s", tern_last_error());
        t[i].quiet = 1;
        v[i] = tern_trainer_eval(&t[i]);
        assert_int_equal(tern_trainer_run(&t[i]), 0);   // one step: its loss is in the log
        l[i] = t[i].last_loss;
    }
    assert_true(v[0] == v[1]);
    assert_true(t[1].graph.precision == TERN_PREC_MIXED);   // restored after the evaluation
    printf("eval under mixed: %.9g == fp32 %.9g; first training loss %.9g vs %.9g\n", v[1], v[0], l[1], l[0]);
    assert_true(l[0] != l[1]);
    for (int i = 0; i < 2; i++) tern_trainer_free(&t[i]);
}

static void test_loss_falls(void **st) {
    (void)st;
    tern_config c;
    tiny(&c, "falls", 60);
    tern_trainer t;
    if (tern_trainer_init(&t, &c, 0) != 0) fail_msg("%s", tern_last_error());
    t.quiet = 1;
    float v0 = tern_trainer_eval(&t);
    assert_int_equal(tern_trainer_run(&t), 0);
    float v1 = tern_trainer_eval(&t);
    printf("tiny ternary model: val loss %.3f -> %.3f after %ld steps\n", v0, v1, t.step);
    assert_true(fabsf(v0 - logf(61.0f)) < 0.5f);
    assert_true(v1 < v0 - 0.7f); // learns the deterministic transitions
    char p[600];
    snprintf(p, sizeof p, "%s/falls/latest.h5", dir);
    assert_int_equal(access(p, R_OK), 0);
    snprintf(p, sizeof p, "%s/falls/train.csv", dir);
    assert_int_equal(access(p, R_OK), 0);
    tern_trainer_free(&t);
}

// N steps straight == K steps + save + resume (new trainer) + N-K steps, bit for bit
static void test_resume_exact(void **st) {
    (void)st;
    tern_config c;
    tiny(&c, "straight", 8);
    tern_trainer a;
    tu_trainer_run(&a, &c);
    tern_config c2;
    tiny(&c2, "resumed", 8);
    tern_trainer b;
    tu_trainer_start(&b, &c2);
    for (int i = 0; i < 5; i++) assert_int_equal(tern_trainer_step(&b), 0); // stopped at step 5 ...
    assert_int_equal(tern_trainer_save(&b), 0);                             // ... with a checkpoint
    tern_trainer_free(&b);
    assert_int_equal(tern_trainer_init(&b, &c2, 1), 0);
    b.quiet = 1;
    assert_int_equal(b.step, 5);
    assert_int_equal(tern_trainer_run(&b), 0);
    assert_int_equal(b.step, 8);
    size_t bytes = sizeof(float) * (size_t)a.model.params.total;
    assert_memory_equal(a.model.params.data, b.model.params.data, bytes);
    assert_memory_equal(a.model.params.m, b.model.params.m, bytes);
    assert_memory_equal(a.model.params.v, b.model.params.v, bytes);
    // and a run with a different seed does differ (the comparison can fail)
    tern_config c3;
    tiny(&c3, "other", 8);
    c3.run.seed = 6;
    tern_trainer o;
    tu_trainer_run(&o, &c3);
    assert_true(memcmp(a.model.params.data, o.model.params.data, bytes) != 0);
    tern_trainer_free(&o);
    tern_trainer_free(&a);
    tern_trainer_free(&b);
}

// precision = auto (the default) resolves per CPU; resuming keeps the checkpoint's precision, so a
// run started with the other one (as on another CPU) goes on bit for bit as it would have
static void test_resume_precision_auto(void **st) {
    (void)st;
    tern_config c;
    tiny(&c, "prec_straight", 8);
    assert_int_equal(c.run.precision_auto, 1);
    const int here = c.run.precision, other = here == TERN_PREC_MIXED ? TERN_PREC_FP32 : TERN_PREC_MIXED;
    c.run.precision = other;
    c.run.precision_auto = 0;
    tern_trainer a;
    tu_trainer_run(&a, &c);
    tern_config c2;
    tiny(&c2, "prec_resumed", 8);
    c2.run.precision = other;
    c2.run.precision_auto = 0;
    tern_trainer b;
    tu_trainer_start(&b, &c2);
    for (int i = 0; i < 5; i++) assert_int_equal(tern_trainer_step(&b), 0);
    assert_int_equal(tern_trainer_save(&b), 0);
    tern_trainer_free(&b);
    tern_config c3;
    tiny(&c3, "prec_resumed", 8);   // auto again: `here`
    assert_int_equal(c3.run.precision, here);
    assert_int_equal(tern_trainer_init(&b, &c3, 1), 0);
    b.quiet = 1;
    assert_int_equal(b.cfg.run.precision, other);
    assert_int_equal(b.graph.precision, other);
    assert_int_equal(tern_trainer_run(&b), 0);
    size_t bytes = sizeof(float) * (size_t)a.model.params.total;
    assert_memory_equal(a.model.params.data, b.model.params.data, bytes);
    tern_trainer_free(&b);
    // an explicit precision that differs from the checkpoint's is refused, naming the key
    tern_config c4;
    tiny(&c4, "prec_resumed", 10);
    c4.run.precision = here;
    c4.run.precision_auto = 0;
    assert_int_not_equal(tern_trainer_init(&b, &c4, 1), 0);
    assert_non_null(strstr(tern_last_error(), "precision"));
    tern_trainer_free(&b);
    tern_trainer_free(&a);
}

// a CSV log with the tokens_per_s column (timing) blanked, for comparing two runs
static char *csv_without_speed(const char *path) {
    size_t n;
    char *s = tern_read_file(path, &n);
    if (!s) fail_msg("%s", tern_last_error());
    char *out = malloc(n + 1), *o = out;
    int col = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') col = 0;
        else if (s[i] == ',') col++;
        if (col == 5 && s[i] != ',' && s[i] != '\n') continue;   // step,tokens,loss,lr,grad_norm,[tokens_per_s],val_loss
        *o++ = s[i];
    }
    *o = 0;
    free(s);
    return out;
}

// A run that saved at step 7, went on to step 8 (its CSV has row 8, and its final checkpoint is
// step 8) and is then resumed from the step-7 checkpoint (as after a crash): every counter comes back — step, tokens_seen, the RNG,
// the loader position, AdamW's m and v — and the CSV log equals the uninterrupted run's.
static void test_resume_counters(void **st) {
    (void)st;
    tern_config c;
    tiny(&c, "cnt_straight", 8);
    tern_trainer a;
    tu_trainer_run(&a, &c);
    tern_config c2;
    tiny(&c2, "cnt_resumed", 8);
    c2.run.ckpt_interval = 7;
    assert_int_equal(tern_config_validate(&c2), 0);
    tern_trainer b;
    tu_trainer_run(&b, &c2);
    tern_trainer_free(&b);
    char latest[600], tmp[600];
    snprintf(latest, sizeof latest, "%s/cnt_resumed/latest.h5", dir);
    snprintf(tmp, sizeof tmp, "%s/cnt_resumed/latest.tmp", dir);
    tern_train_state ts;
    assert_int_equal(tern_checkpoint_read_state(latest, &ts), 1);
    assert_int_equal(ts.step, 8);   // the run's end is saved too, one step after the periodic one
    tern_train_state_free(&ts);
    assert_int_equal(symlink("ckpt_00000007.h5", tmp), 0);
    assert_int_equal(rename(tmp, latest), 0);
    assert_int_equal(tern_trainer_init(&b, &c2, 1), 0);
    b.quiet = 1;
    const long BT = 4 * 16;
    assert_int_equal(b.step, 7);
    assert_int_equal(b.tokens_seen, 7 * BT);
    assert_int_equal(b.train.pos, 7 * 4 % b.train.n_windows);
    assert_int_equal(tern_trainer_run(&b), 0);
    assert_int_equal(b.step, 8);
    assert_int_equal(b.tokens_seen, a.tokens_seen);
    assert_int_equal(a.tokens_seen, 8 * BT);
    assert_true(b.rng.s == a.rng.s);
    assert_int_equal(b.train.epoch, a.train.epoch);
    assert_int_equal(b.train.pos, a.train.pos);
    assert_true(b.last_loss == a.last_loss);
    size_t bytes = sizeof(float) * (size_t)a.model.params.total;
    assert_memory_equal(a.model.params.data, b.model.params.data, bytes);
    assert_memory_equal(a.model.params.m, b.model.params.m, bytes);
    assert_memory_equal(a.model.params.v, b.model.params.v, bytes);
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/cnt_straight/train.csv", dir);
    snprintf(pb, sizeof pb, "%s/cnt_resumed/train.csv", dir);
    char *ca = csv_without_speed(pa), *cb = csv_without_speed(pb);
    assert_string_equal(ca, cb);
    int rows = 0;
    for (char *q = ca; *q; q++) rows += *q == '\n';
    assert_int_equal(rows, 1 + 8);
    free(ca);
    free(cb);
    tern_trainer_free(&a);
    tern_trainer_free(&b);
}

// grad_accum = 2 micro-batches of 4 == one batch of 8 (the same 8 windows in the same order):
// the same mean loss, the same tokens count, the same gradient up to float summation order
// max over the parameter tensors of max|g_x - g_ref| / max|g_ref| (the difference itself where the
// reference gradient is all zero)
static double grad_rel_diff(const tern_trainer *x, const tern_trainer *ref) {
    double worst = 0;
    for (int i = 0; i < ref->model.params.n; i++) {
        const tern_tensor *tx = x->model.params.t[i], *tr = ref->model.params.t[i];
        double md = 0, mg = 0;
        for (long k = 0; k < tr->n; k++) {
            md = fmax(md, fabs((double)tx->grad[k] - tr->grad[k]));
            mg = fmax(mg, fabs((double)tr->grad[k]));
        }
        worst = fmax(worst, mg > 0 ? md / mg : md);
    }
    return worst;
}

static void test_grad_accum(void **st) {
    (void)st;
    // precision fp32 (the exact backward): the bounds below are float summation order only (under
    // mixed, whose bf16 products the two groupings round differently, step 2 differed by 2e-4)
    tern_config c1, c2;
    tiny(&c1, "acc1", 10);
    c1.run.batch = 8;
    c1.run.clip = 0;   // compare the raw gradients (clipping would hide a factor)
    c1.run.precision = TERN_PREC_FP32;
    assert_int_equal(tern_config_validate(&c1), 0);
    tiny(&c2, "acc2", 10);
    c2.run.grad_accum = 2;
    c2.run.clip = 0;
    c2.run.precision = TERN_PREC_FP32;
    assert_int_equal(tern_config_validate(&c2), 0);
    // the reference for the first step's gradient, independent of the trainer's step: one backward
    // of the mean loss over the same 8 sequences (a's first batch), from the same initial weights
    // (so a gradient summed over micro-batches, or scaled by the batch on both runs, fails)
    tern_config c3;
    tiny(&c3, "acc_ref", 10);
    c3.run.batch = 8;
    c3.run.precision = TERN_PREC_FP32;
    assert_int_equal(tern_config_validate(&c3), 0);
    tern_trainer r;
    tu_trainer_start(&r, &c3);
    tern_loader_next_n(&r.train, 8, r.inputs, r.targets);
    tern_graph_reset(&r.graph);
    tern_backward(&r.graph, tern_model_loss(&r.model, &r.graph, r.inputs, r.targets, 8, c3.model.seq_len), 1.0f);
    tern_trainer a, b;
    tu_trainer_start(&a, &c1);
    tu_trainer_start(&b, &c2);
    for (int step = 0; step < 2; step++) {
        assert_int_equal(tern_trainer_step(&a), 0);
        assert_int_equal(tern_trainer_step(&b), 0);
        if (step == 0) {
            const double rel = grad_rel_diff(&a, &r);
            printf("batch 8, step 1: gradient vs one backward of the batch's mean loss: max|d|/max|g| %.2e\n", rel);
            assert_true(rel == 0.0);   // the same arithmetic, bit for bit (measured 0)
        }
        assert_int_equal(a.tokens_seen, b.tokens_seen);
        const double worst = grad_rel_diff(&b, &a);
        printf("grad_accum 2 x batch 4 vs batch 8, step %d: loss %.7f vs %.7f, grads max|d|/max|g| %.2e\n", step + 1,
               b.last_loss, a.last_loss, worst);
        assert_true(fabsf(a.last_loss - b.last_loss) <= 5e-6f);   // measured 5e-7 (step 2)
        assert_true(worst <= 1e-5);   // measured 6.7e-7
    }
    assert_int_equal(a.tokens_seen, 2 * 8 * 16);
    tern_trainer_free(&a);
    tern_trainer_free(&b);
    tern_trainer_free(&r);
}

// fine-tune a full-precision checkpoint into a ternary one with the lambda ramp
static void test_finetune_to_ternary(void **st) {
    (void)st;
    tern_config c;
    tiny(&c, "fp", 30);
    c.model.ternary = 0;
    assert_int_equal(tern_config_validate(&c), 0);
    tern_trainer f;
    tu_trainer_run(&f, &c);
    float fp_loss = tern_trainer_eval(&f);
    tern_trainer_free(&f);
    tern_config c2;
    tiny(&c2, "ft", 20);
    c2.model.ternary = 1;
    c2.run.to_ternary_ramp = 10;
    snprintf(c2.run.init_from, sizeof c2.run.init_from, "%s/fp/latest.h5", dir);
    assert_int_equal(tern_config_validate(&c2), 0);
    tern_trainer t;
    if (tern_trainer_init(&t, &c2, 0) != 0) fail_msg("%s", tern_last_error());
    t.quiet = 1;
    t.model.quant_lambda = 0.0f;
    float start = tern_trainer_eval(&t); // loaded weights, fp mode: the fp model's loss
    assert_true(start == fp_loss);   // the same weights (bit-exact checkpoint), the same evaluation
    assert_int_equal(tern_trainer_run(&t), 0);
    t.model.quant_lambda = 1.0f;
    float end = tern_trainer_eval(&t);
    printf("fp -> ternary: fp loss %.3f, ternary after ramp %.3f\n", fp_loss, end);
    assert_true(isfinite(end) && end < logf(61.0f) - 1.0f);
    tern_trainer_free(&t);
}

static void test_nonfinite_stops(void **st) {
    (void)st;
    tern_config c;
    tiny(&c, "nan", 5);
    tern_trainer t;
    tu_trainer_start(&t, &c);
    assert_int_equal(tern_trainer_step(&t), 0);
    t.model.token_embd->data[3] = NAN;
    float *before = malloc(sizeof(float) * (size_t)t.model.params.total);
    memcpy(before, t.model.params.data, sizeof(float) * (size_t)t.model.params.total);
    assert_int_equal(tern_trainer_run(&t), -1);
    assert_non_null(strstr(tern_last_error(), "non-finite"));
    assert_non_null(strstr(tern_last_error(), "last good checkpoint"));
    assert_int_equal(t.step, 1);
    // nothing was updated (compare as bytes: NaN != NaN)
    assert_memory_equal(before, t.model.params.data, sizeof(float) * (size_t)t.model.params.total);
    free(before);
    tern_trainer_free(&t);
}

static void test_bad_inputs(void **st) {
    (void)st;
    tern_config c;
    tiny(&c, "bad", 5);
    snprintf(c.run.train_data, sizeof c.run.train_data, "%s/missing.tok", dir);
    tern_trainer t;
    assert_int_equal(tern_trainer_init(&t, &c, 0), -1);
    assert_non_null(strstr(tern_last_error(), "missing.tok"));
    tern_trainer_free(&t);
    tiny(&c, "bad", 5);
    c.model.vocab_size = 40; // the data has ids up to 60
    assert_int_equal(tern_trainer_init(&t, &c, 0), -1);
    assert_non_null(strstr(tern_last_error(), "vocab"));
    tern_trainer_free(&t);
    tiny(&c, "bad", 5);
    snprintf(c.run.init_from, sizeof c.run.init_from, "%s/train.tok", dir); // not a checkpoint
    assert_int_equal(tern_trainer_init(&t, &c, 0), -1);
    assert_non_null(strstr(tern_last_error(), "train.tok"));
    tern_trainer_free(&t);
}

// SIGTERM during a run: tern-train writes a checkpoint at the step it reached and exits 143
// (128 + SIGTERM), so `tern-train && tern-export` does not go on with an unfinished model.
// (Runs the real program: libgomp is not fork-safe, so no in-process trainer in a child.)
static char prog[512];
static void test_signal_saves(void **st) {
    (void)st;
    char csv[600], latest[600], data[600], out[600];
    snprintf(csv, sizeof csv, "%s/sig/train.csv", dir);
    snprintf(latest, sizeof latest, "%s/sig/latest.h5", dir);
    snprintf(data, sizeof data, "train_data=%s/train.tok", dir);
    snprintf(out, sizeof out, "out_dir=%s/sig", dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(prog, prog, "dim=32", "n_layers=1", "n_heads=2", "n_kv_heads=1", "ffn_dim=64", "vocab_size=61",
              "seq_len=16", "batch=4", "warmup=1", "steps=100000", "eval_interval=0", "ckpt_interval=0",
              "log_interval=1", data, out, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) { // wait until training has logged a few steps
        FILE *f = fopen(csv, "r");
        int lines = 0, ch;
        if (f) { while ((ch = fgetc(f)) != EOF) lines += ch == '\n'; fclose(f); }
        if (lines >= 4) break;
        usleep(50000);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 143);
    tern_train_state ts;
    assert_int_equal(tern_checkpoint_read_state(latest, &ts), 1);
    printf("SIGTERM: checkpoint at step %ld\n", ts.step);
    assert_true(ts.step >= 3 && ts.step < 100000);
    tern_train_state_free(&ts);
}

int main(int argc, char **argv) {
    (void)argc; // the programs sit beside tests/: build/tests/test_train -> build/tern-train
    snprintf(prog, sizeof prog, "%s", argv[0]);
    char *slash = strrchr(prog, '/');
    if (slash) *slash = 0;
    slash = strrchr(prog, '/');
    if (slash) slash[1] = 0; else snprintf(prog, sizeof prog, "./");
    strncat(prog, "tern-train", sizeof prog - strlen(prog) - 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_exact_under_mixed), cmocka_unit_test(test_loss_falls),      cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_resume_precision_auto),
        cmocka_unit_test(test_resume_counters), cmocka_unit_test(test_grad_accum),
        cmocka_unit_test(test_finetune_to_ternary), cmocka_unit_test(test_nonfinite_stops),
        cmocka_unit_test(test_bad_inputs),      cmocka_unit_test(test_signal_saves),
    };
    return cmocka_run_group_tests_name("train", tests, setup, teardown);
}
