// test_train_loop.c — the training pieces together on the real model: config → model → AdamW with
// the two_stage schedule → checkpoint → resume. The loss must fall, and a run resumed from a
// checkpoint must end bit-identical to the uninterrupted run.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "model/config.h"
#include "model/model.h"
#include "training/optim.h"
#include "training/schedule.h"
#include "training/trainlog.h"
#include "util.h"

static char dir[256];

static void make_config(tern_config *c) {
    tern_config_defaults(c);
    const char *kv[] = {"dim=256", "n_layers=1", "n_heads=4", "n_kv_heads=2", "ffn_dim=256", "vocab_size=32",
                        "seq_len=16", "batch=4", "steps=40", "warmup=4", "lr=4e-3", "seed=5"};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) assert_int_equal(tern_config_set_arg(c, kv[i]), 0);
    if (tern_config_validate(c) != 0) fail_msg("%s", tern_last_error());
}

// Batch for step s: B sequences counting up by a per-sequence stride (learnable), B*T+1 tokens.
static void batch_for(int s, int B, int T, int V, int *tok) {
    tern_rng r;
    tern_rng_seed(&r, 1000 + (uint64_t)s);
    for (int b = 0; b < B; b++) {
        int start = (int)(tern_rng_u64(&r) % (uint64_t)V);
        for (int t = 0; t <= T; t++) tok[b * (T + 1) + t] = (start + t * 3) % V;
    }
}

// Runs steps [from, to) updating m; returns the last loss.
static float run_steps(tern_model *m, tern_adamw *o, const tern_config *c, long from, long to, tern_trainlog *log) {
    int B = c->run.batch, T = c->model.seq_len, V = c->model.vocab_size;
    int *buf = tern_xmalloc(sizeof(int) * (size_t)(B * (T + 1)));
    int *in = tern_xmalloc(sizeof(int) * (size_t)(B * T)), *tg = tern_xmalloc(sizeof(int) * (size_t)(B * T));
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&c->model), 0, 0);
    float loss = NAN;
    for (long s = from; s < to; s++) {
        batch_for((int)s, B, T, V, buf);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                in[b * T + t] = buf[b * (T + 1) + t];
                tg[b * T + t] = buf[b * (T + 1) + t + 1];
            }
        tern_graph_reset(&g);
        tern_params_zero_grad(&m->params);
        tern_tensor *l = tern_model_loss(m, &g, in, tg, B, T);
        tern_backward(&g, l, 1.0f);
        loss = l->data[0];
        float lr = tern_lr_at(&c->run, s);
        double gn;
        assert_int_equal(tern_optim_step(o, &m->params, s + 1, lr, tern_wd_at(&c->run, s), c->run.clip, &gn), 0);
        if (log) assert_int_equal(tern_trainlog_row(log, s + 1, (s + 1) * B * T, loss, lr, gn, 1000.0, NAN), 0);
    }
    tern_graph_free(&g);
    free(buf);
    free(in);
    free(tg);
    return loss;
}

static void test_train_and_resume(void **st) {
    (void)st;
    tern_config c;
    make_config(&c);
    char csv[300], out[300], ck[400];
    snprintf(csv, sizeof csv, "%s/train.csv", dir);
    snprintf(out, sizeof out, "%s/run", dir);

    // run A: 0..20, checkpoint, 20..40
    tern_model a;
    tern_model_build(&a, &c.model);
    tern_model_init_weights(&a, c.run.seed);
    long nel = 0;
    for (int i = 0; i < a.params.n; i++) nel += a.params.t[i]->n;
    assert_int_equal(nel, tern_model_config_nparams(&c.model));   // config.c's count matches model.c
    tern_adamw oa;
    tern_adamw_init_run(&oa, &a.params, &c.run);
    tern_trainlog log;
    assert_int_equal(tern_trainlog_open(&log, csv, 0), 0);
    float first = run_steps(&a, &oa, &c, 0, 1, &log);
    run_steps(&a, &oa, &c, 1, 20, &log);
    char *cfgtxt = tern_config_to_string(&c);
    tern_train_state s = {.step = 20, .tokens_seen = 20L * 4 * 16, .rng_state = 99, .run_config = cfgtxt};
    if (tern_checkpoint_save_step(out, 20, 2, &c.model, &a.params, NULL, 0, &s, ck, sizeof ck) != 0)
        fail_msg("%s", tern_last_error());
    float last = run_steps(&a, &oa, &c, 20, 40, &log);
    tern_trainlog_close(&log);
    print_message("loss %.3f -> %.3f over 40 steps\n", first, last);
    if (!(last < first - 1.0f)) fail_msg("loss did not fall: %.3f -> %.3f", first, last);

    // run B: read config from the checkpoint, build, load state, continue 20..40
    snprintf(ck, sizeof ck, "%s/latest.h5", out);
    tern_config cb;
    tern_config_defaults(&cb);
    assert_int_equal(tern_checkpoint_read_config(ck, &cb.model), 0);
    assert_memory_equal(&cb.model, &c.model, sizeof c.model);
    tern_model b;
    tern_model_build(&b, &cb.model);
    tern_train_state ls;
    if (tern_checkpoint_load(ck, &cb.model, &b.params, &ls) != 1) fail_msg("%s", tern_last_error());
    assert_int_equal(ls.step, 20);
    assert_int_equal(tern_config_parse(&cb, ls.run_config, ck), 0);   // the stored run config
    assert_int_equal(tern_config_validate(&cb), 0);
    assert_int_equal(cb.run.precision, c.run.precision);   // stored resolved (c's was auto)
    cb.run.precision_auto = c.run.precision_auto;
    assert_memory_equal(&cb, &c, sizeof c);
    tern_adamw ob;
    tern_adamw_init_run(&ob, &b.params, &cb.run);
    assert_int_equal(tern_trainlog_open(&log, csv, ls.step), 0);   // drops rows 21..40
    float lastb = run_steps(&b, &ob, &cb, ls.step, cb.run.steps, &log);
    tern_trainlog_close(&log);
    assert_true(lastb == last);
    assert_memory_equal(a.params.data, b.params.data, sizeof(float) * (size_t)a.params.total);
    assert_memory_equal(a.params.m, b.params.m, sizeof(float) * (size_t)a.params.total);

    // the log has exactly one row per step
    size_t n;
    char *txt = tern_read_file(csv, &n);
    int rows = 0;
    for (char *p = txt; *p; p++) rows += *p == '\n';
    assert_int_equal(rows, 1 + 40);
    free(txt);

    tern_train_state_free(&ls);
    free(cfgtxt);
    tern_adamw_free(&oa);
    tern_adamw_free(&ob);
    tern_model_free(&a);
    tern_model_free(&b);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tern_test_loop_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_train_and_resume)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && rc == 0) rc = 1;
    return rc;
}
