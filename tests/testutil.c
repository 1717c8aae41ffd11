// testutil.c — see testutil.h
#include "testutil.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void tu_fill_normal(float *x, long n, uint64_t seed, float std) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = std * tern_rng_normal(&r);
}

void tu_fill_uniform(float *x, long n, uint64_t seed, float lo, float hi) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = lo + (hi - lo) * tern_rng_uniform(&r);
}

static double eval_loss(tern_graph *g, tu_build_fn build, void *ctx, tern_tensor **in, const float *R) {
    tern_graph_reset(g);
    int save = g->grad_enabled;
    g->grad_enabled = 0;
    tern_tensor *out = build(g, in, ctx);
    g->grad_enabled = save;
    double L = 0.0;
    for (long i = 0; i < out->n; i++) L += (double)out->data[i] * R[i];
    return L;
}

#define SUMMARY_MAX 64
static struct { char name[48]; double abs, ratio; } summary[SUMMARY_MAX];
static int n_summary;

tu_gc_result tu_gradcheck(const char *name, tu_build_fn build, void *ctx, tern_tensor **in, int n_in, double h,
                          double atol, double rtol, int max_elems) {
    tern_graph g;
    tern_graph_init(&g, 256, 1 << 20, 0);
    g.poison_grads = 1;   // an op that leaves part of a fresh gradient unstored yields NaN, a failure
    tu_gc_result res = {0};
    // analytic gradients
    tern_tensor *out = build(&g, in, ctx);
    float *R = malloc(sizeof(float) * (size_t)out->n);
    tu_fill_uniform(R, out->n, 1234, -1.0f, 1.0f);
    for (int i = 0; i < n_in; i++)
        if (in[i]->grad) memset(in[i]->grad, 0, sizeof(float) * (size_t)in[i]->n);
    tern_backward_vec(&g, out, R);
    float *ana[8];
    for (int i = 0; i < n_in; i++) {
        ana[i] = malloc(sizeof(float) * (size_t)in[i]->n);
        memcpy(ana[i], in[i]->grad, sizeof(float) * (size_t)in[i]->n);
    }
    tern_rng rng;
    tern_rng_seed(&rng, 99);
    for (int i = 0; i < n_in; i++) {
        long n = in[i]->n, count = n <= max_elems ? n : max_elems;
        for (long c = 0; c < count; c++) {
            long j = n <= max_elems ? c : (c == 0 ? 0 : c == 1 ? n - 1 : (long)(tern_rng_u64(&rng) % (uint64_t)n));
            float v = in[i]->data[j];
            in[i]->data[j] = v + (float)h;
            double lp = eval_loss(&g, build, ctx, in, R);
            in[i]->data[j] = v - (float)h;
            double lm = eval_loss(&g, build, ctx, in, R);
            in[i]->data[j] = v;
            double num = (lp - lm) / (2.0 * h), err = fabs(ana[i][j] - num);
            double ratio = err / (atol + rtol * fabs(num));
            if (!isfinite(err)) err = ratio = INFINITY;   // a NaN gradient fails (NaN compares false)
            res.n_checked++;
            if (err > res.worst_abs) res.worst_abs = err;
            if (ratio > res.worst_ratio) { res.worst_ratio = ratio; res.worst_in = i; res.worst_idx = j; }
        }
    }
    printf("gradcheck %-28s checked %5ld elems: worst abs err %.3e, worst err/tol %.3f (input %d elem %ld)\n", name,
           res.n_checked, res.worst_abs, res.worst_ratio, res.worst_in, res.worst_idx);
    if (n_summary < SUMMARY_MAX) {
        snprintf(summary[n_summary].name, sizeof summary[0].name, "%s", name);
        summary[n_summary].abs = res.worst_abs;
        summary[n_summary].ratio = res.worst_ratio;
        n_summary++;
    }
    for (int i = 0; i < n_in; i++) free(ana[i]);
    free(R);
    tern_graph_free(&g);
    return res;
}

void tu_gradcheck_summary(void) {
    printf("\n%-30s %12s %10s\n", "gradcheck summary", "worst abs", "err/tol");
    for (int i = 0; i < n_summary; i++) printf("%-30s %12.3e %10.3f\n", summary[i].name, summary[i].abs, summary[i].ratio);
}

void tu_skip_note(int strict_fails, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    extern const char *__progname;   // glibc: basename of argv[0]
    const char *strict = getenv("TERN_TEST_STRICT");
    if (strict_fails && strict && strcmp(strict, "0") != 0) {
        printf("tern-skip-refused: %s: %s (TERN_TEST_STRICT is set: a test may not skip)\n", __progname, why);
        fflush(stdout);
        fail_msg("test skipped under TERN_TEST_STRICT: %s", why);
    }
    printf("tern-skip: %s: %s\n", __progname, why);
    fflush(stdout);
}

int tu_run_child(void (*fn)(void *), void *arg, char *err, size_t n) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < n && (k = read(fds[0], err + got, n - 1 - got)) > 0) got += (size_t)k;
    err[got] = 0;
    char sink[256];
    while (read(fds[0], sink, sizeof sink) > 0) {}
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void tu_trainer_start(tern_trainer *t, const tern_config *c) {
    assert_int_equal(tern_trainer_init(t, c, 0), 0);
    t->quiet = 1;
}

void tu_trainer_run(tern_trainer *t, const tern_config *c) {
    tu_trainer_start(t, c);
    assert_int_equal(tern_trainer_run(t), 0);
}
