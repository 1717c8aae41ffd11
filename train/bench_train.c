// bench_train.c — training-step throughput of a model config on random tokens.
//   tern-bench_train [config.cfg] [key=value ...] [--steps N] [--warmup N] [--profile]
// A step is what tern-train does per optimizer step without accumulation: forward, backward,
// grad norm + clip + AdamW (the run config's lr, weight decay, clip). Prints the median tokens/s
// over N steps (after --warmup untimed ones, default 2), model GFLOP/s (6 * params * tokens +
// attention), the peak RSS beside the memory estimate's (training/memory.h, for one micro-batch:
// grad_accum is 1 here), the CPU seconds per timed step, and (with --profile) where the time goes per op, plus the optimizer's
// share. Run keys apply as in tern-train, e.g. recompute=1 threads=1.
#include "model/config.h"
#include "model/model.h"
#include "training/memory.h"
#include "training/optim.h"
#include "util.h"
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

// CPU seconds of the whole process (all threads): on a loaded machine, tokens per CPU-second at one
// thread measure the work a step does, where wall-clock rates measure the neighbours.
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    tern_config cfg;
    tern_config_defaults(&cfg);
    int steps = 10, warmup = 2, profile = 0;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tern-bench_train [config.cfg] [key=value ...] [--steps N (1..100000)] [--warmup N (0..100, default 2)] [--profile]\n"
                   "  key=value: model and run keys (configs/README.md), e.g. batch=4 recompute=1 threads=1\n");
            return 0;
        }
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            long v;
            if (tern_parse_long(argv[++i], &v) || v < 1 || v > 100000) {
                fprintf(stderr, "tern-bench_train: --steps '%s': must be in [1, 100000]\n", argv[i]);
                return 2;
            }
            steps = (int)v;
        } else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            long v;
            if (tern_parse_long(argv[++i], &v) || v < 0 || v > 100) {
                fprintf(stderr, "tern-bench_train: --warmup '%s': must be in [0, 100]\n", argv[i]);
                return 2;
            }
            warmup = (int)v;
        } else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (argv[i][0] == '-') { fprintf(stderr, "tern-bench_train: unknown option '%s'\n", argv[i]); return 2; }
        else if (strchr(argv[i], '=')) {
            if (tern_config_set_arg(&cfg, argv[i]) != 0) { fprintf(stderr, "tern-bench_train: %s\n", tern_last_error()); return 1; }
        } else if (tern_config_load(&cfg, (file = argv[i])) != 0) { fprintf(stderr, "tern-bench_train: %s\n", tern_last_error()); return 1; }
    }
    if (tern_config_validate(&cfg) != 0) {
        fprintf(stderr, "tern-bench_train: %s%s%s\n", file ? file : "", file ? ": " : "", tern_last_error());
        return 1;
    }
    if (cfg.run.threads > 0) { omp_set_num_threads(cfg.run.threads); openblas_set_num_threads(cfg.run.threads); }
    cfg.run.grad_accum = 1;   // a step here is one micro-batch: no second gradient buffer
    // refuse what does not fit before allocating it (training/memory.h)
    tern_mem_inputs in = {.threads = omp_get_max_threads(), .ranks = 1, .node_ranks = 1};
    tern_mem_estimate e;
    if (tern_mem_estimate_run(&cfg, &in, &e) != 0 || tern_mem_check(&e, (size_t)cfg.run.max_memory) != 0) {
        fprintf(stderr, "tern-bench_train: %s\n", tern_last_error());
        return 1;
    }
    tern_model m;
    tern_model_build(&m, &cfg.model);
    m.recompute = cfg.run.recompute;
    tern_model_init_weights(&m, 1);
    int B = cfg.run.batch, T = cfg.model.seq_len, V = cfg.model.vocab_size;
    int *tok = tern_xmalloc(sizeof(int) * (size_t)(B * T + 1));
    tern_rng r;
    tern_rng_seed(&r, 7);
    for (int i = 0; i <= B * T; i++) tok[i] = (int)(tern_rng_u64(&r) % (uint64_t)V);
    tern_graph g;
    // the arena sized by the estimate, as tern-train does (no growth: the peak RSS is the run's)
    tern_graph_init(&g, tern_model_graph_nodes(&cfg.model), e.activations + ((size_t)1 << 20), 0);
    g.precision = cfg.run.precision;
    double *dt = tern_xmalloc(sizeof(double) * (size_t)steps), *dc = tern_xmalloc(sizeof(double) * (size_t)steps);
    tern_adamw opt;
    tern_adamw_init_run(&opt, &m.params, &cfg.run);
    double t_opt = 0;
    float loss = 0;
    for (int s = -warmup; s < steps; s++) { // warm-up steps fault the arena's pages in
        g.profile = profile && s >= 0;
        double t0 = tern_time(), c0 = cpu_seconds();
        tern_graph_reset(&g);
        tern_params_zero_grad(&m.params);
        tern_tensor *l = tern_model_loss(&m, &g, tok, tok + 1, B, T);
        tern_backward(&g, l, 1.0f);
        loss = l->data[0];
        double t1 = tern_time();
        tern_optim_step(&opt, &m.params, s + warmup + 1, cfg.run.lr, cfg.run.weight_decay, cfg.run.clip, NULL);
        if (s >= 0) t_opt += tern_time() - t1;
        if (s >= 0) dt[s] = tern_time() - t0;
        if (s >= 0) dc[s] = cpu_seconds() - c0;
    }
    double med = tern_median(dt, steps), cpu = tern_median(dc, steps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long np = tern_model_config_nparams(&cfg.model);
    double flops = 6.0 * np * B * T + 6.0 * cfg.model.n_layers * B * (double)T * T * cfg.model.dim; // + attention
    printf("bench_train %s%s: params %.2fM, batch %d x %d tokens, recompute %d, %d thread%s, loss %.3f, median step %.3f s, "
           "%.0f tokens/s, %.1f GFLOP/s, peak RSS %.0f MiB (predicted %.0f MiB), CPU %.3f s per step, %.0f tokens/CPU-s\n",
           cfg.model.ternary ? "ternary" : "fp", cfg.model.ternary && cfg.run.precision ? " mixed" : "", np / 1e6, B, T,
           cfg.run.recompute, omp_get_max_threads(), omp_get_max_threads() == 1 ? "" : "s", loss, med, B * T / med,
           flops / med / 1e9, ru.ru_maxrss / 1024.0, e.peak / 1048576.0, cpu, B * T / cpu);
    if (profile) {
        tern_graph_print_profile(&g, stdout);
        printf("optimizer (norm, clip, AdamW): %.3f s per step, %.1f%% of the step\n", t_opt / steps, 100.0 * t_opt / steps / med);
    }
    tern_adamw_free(&opt);
    tern_graph_free(&g);
    tern_model_free(&m);
    free(tok);
    free(dc);
    free(dt);
    return 0;
}
