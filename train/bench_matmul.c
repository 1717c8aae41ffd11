// bench_matmul.c — GFLOP/s of the engine's matmul (tern_matmul → OpenBLAS sgemm) against a raw
// cblas_sgemm call, for square products (default 1024) in all four transpose combinations.
//   tern-bench_matmul [n] [repeats]
#include "engine/ops.h"
#include "util.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *openblas_get_corename(void);   // OpenBLAS (its cblas.h declares it; the cblas.h in use may not)

int main(int argc, char **argv) {
    long n = 1024, reps = 10;
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: tern-bench_matmul [n (1..8192)] [repeats (1..1000)]\n");
        return 0;
    }
    if ((argc > 1 && (tern_parse_long(argv[1], &n) || n < 1 || n > 8192)) ||
        (argc > 2 && (tern_parse_long(argv[2], &reps) || reps < 1 || reps > 1000)) || argc > 3) {
        fprintf(stderr, "usage: tern-bench_matmul [n (1..8192)] [repeats (1..1000)]\n");
        return 2;
    }
    tern_graph g, ginputs; // inputs live in their own arena, which is never reset
    tern_graph_init(&g, 16, 0, 0);
    tern_graph_init(&ginputs, 16, 0, 0);
    tern_tensor *a = tern_new_2d(&ginputs, "a", (int)n, (int)n), *b = tern_new_2d(&ginputs, "b", (int)n, (int)n);
    tern_rng r;
    tern_rng_seed(&r, 1);
    for (long i = 0; i < a->n; i++) { a->data[i] = tern_rng_uniform(&r) - 0.5f; b->data[i] = tern_rng_uniform(&r) - 0.5f; }
    float *c = tern_aligned_alloc(sizeof(float) * (size_t)(n * n));
    double *dt = tern_xmalloc(sizeof(double) * (size_t)reps), flop = 2.0 * n * n * n;
    // raw OpenBLAS
    for (long i = -1; i < reps; i++) {
        double t0 = tern_time();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a->data, (int)n, b->data, (int)n, 0.0f, c, (int)n);
        if (i >= 0) dt[i] = tern_time() - t0;
    }
    double raw = flop / tern_median(dt, (int)reps) / 1e9;
    const char *core = openblas_get_corename(), *forced = getenv("OPENBLAS_CORETYPE");
    printf("bench_matmul %ldx%ldx%ld: openblas sgemm %.1f GFLOP/s (median of %ld; OpenBLAS %s kernels%s%s)\n", n, n, n, raw, reps,
           core ? core : "?", forced ? ", OPENBLAS_CORETYPE=" : "", forced ? forced : "");
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (long i = -1; i < reps; i++) {
                tern_graph_reset(&g);
                double t0 = tern_time();
                tern_matmul(&g, a, b, ta, tb);
                if (i >= 0) dt[i] = tern_time() - t0;
            }
            double gf = flop / tern_median(dt, (int)reps) / 1e9;
            printf("bench_matmul %ldx%ldx%ld: tern_matmul %s%s %.1f GFLOP/s (%.0f%% of raw sgemm)\n", n, n, n, ta ? "T" : "N",
                   tb ? "T" : "N", gf, 100.0 * gf / raw);
        }
    free(c);
    free(dt);
    tern_graph_free(&g);
    tern_graph_free(&ginputs);
    return 0;
}
