// train.c — train a BitNet b1.58 (or full-precision) model.
//
//   tern-train [CONFIG.cfg] [key=value ...] [--fresh]
//
// Reads the config file (configs/README.md documents every key), applies key=value overrides,
// prints the resolved config and trains: one progress line per step, train.csv in out_dir,
// validation every eval_interval steps, checkpoints every ckpt_interval steps. If
// out_dir/latest.h5 exists the run resumes from it exactly; --fresh ignores it (and overwrites
// the log). Ctrl-C (SIGINT) or SIGTERM writes a checkpoint at the last completed step and exits
// 130 / 143 (128 + the signal), so `tern-train ... && tern-export ...` does not export an
// unfinished model. Exit 0 only when the run reached its last step. Before allocating anything it
// prints the memory the run needs (training/memory.h) and refuses one that does not fit.
// Fine-tuning: init_from=<checkpoint> starts from its weights with a fresh schedule (see tern-finetune).
// Data parallel: `mpirun -np N tern-train ...` runs N ranks (docs/DISTRIBUTED.md); only rank 0 prints.
#include "dist/dist.h"
#include "training/memory.h"
#include "training/trainer.h"
#include "util.h"
#include "kernels/kernels.h"
#include <omp.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: tern-train [CONFIG.cfg] [key=value ...] [--fresh]\n"
               "  keys: see configs/README.md; e.g. tern-train configs/tiny.cfg steps=50 out_dir=runs/t\n"
               "  exit status: 0 done, 1 error, 130/143 stopped by SIGINT/SIGTERM (checkpoint written)\n");
    return rc;
}

// "tern-train: CONFIG: problem" (or without CONFIG when there is no config file); rank 0 prints
static int config_error(const char *file, int lead) {
    if (!lead) return 1;
    if (file) fprintf(stderr, "tern-train: %s: %s\n", file, tern_last_error());
    else fprintf(stderr, "tern-train: %s\n", tern_last_error());
    return 1;
}

char *openblas_get_corename(void);   // OpenBLAS (its cblas.h declares it; the cblas.h in use may not)

// Everything after MPI start-up; lead: this is rank 0, the only one that prints.
static int train_main(int argc, char **argv, int lead) {
    tern_config cfg;
    tern_config_defaults(&cfg);
    int fresh = 0;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) { // options and the config file first; overrides apply on top of it
        if (!strcmp(argv[i], "--fresh")) fresh = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return lead ? usage(stdout, 0) : 0;
        else if (argv[i][0] == '-') { if (lead) fprintf(stderr, "tern-train: unknown option '%s'\n", argv[i]); return lead ? usage(stderr, 2) : 2; }
        else if (!strchr(argv[i], '=')) {
            if (file) { if (lead) fprintf(stderr, "tern-train: more than one config file ('%s', '%s')\n", file, argv[i]); return lead ? usage(stderr, 2) : 2; }
            file = argv[i];
        }
    }
    if (file && tern_config_load(&cfg, file) != 0) { if (lead) fprintf(stderr, "tern-train: %s\n", tern_last_error()); return 1; }
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-' && strchr(argv[i], '=') && tern_config_set_arg(&cfg, argv[i]) != 0) {
            if (lead) fprintf(stderr, "tern-train: %s\n", tern_last_error());
            return 1;
        }
    tern_dist_mute_stderr(1); // its warnings print once, on rank 0
    int bad = tern_config_validate(&cfg) != 0;
    tern_dist_mute_stderr(0);
    if (bad) return config_error(file, lead);
    if (lead) {
        printf("# tern-train: resolved config\n");
        tern_config_print(&cfg, stdout);
        printf("# parameters: %.2fM (%s)\n", tern_model_config_nparams(&cfg.model) / 1e6, cfg.model.ternary ? "ternary BitLinear" : "full precision");
        if (cfg.run.precision_auto)
            printf("# precision = auto: %s (%s)\n", tern_precision_name(cfg.run.precision),
                   !cfg.model.ternary                   ? "a full-precision model"
                   : cfg.run.precision == TERN_PREC_MIXED ? "this CPU runs the bf16 products on AVX512-BF16; precision=fp32 for the exact backward"
                                                          : "mixed is faster only with AVX512-BF16");
    }
    // the memory this rank needs (rank 0 prints it; every rank checks again in tern_trainer_init)
    if (tern_dist_agree(lead ? tern_mem_check_run(&cfg, !fresh, stdout) : 0) != 0) return config_error(file, lead);
    if (lead) fflush(stdout);
    tern_trainer t;
    if (tern_trainer_init(&t, &cfg, !fresh) != 0) {
        if (lead) fprintf(stderr, "tern-train: %s\n", tern_last_error());
        tern_trainer_free(&t);
        return 1;
    }
    if (lead) {
        char what[1024];
        tern_trainer_describe(&t, what, sizeof what);
        const char *blas = openblas_get_corename(), *forced = getenv("OPENBLAS_CORETYPE");
        printf("# compute: %s\n# kernels: int8 %s, OpenBLAS %s%s%s%s\n", what, tern_kernel_name(tern_kernel_best()),
               blas ? blas : "?", forced ? " (OPENBLAS_CORETYPE=" : "", forced ? forced : "", forced ? ")" : "");
        char warn[512];
        printf("# %s\n", tern_omp_wait_describe(warn, sizeof warn));
        if (tern_dist_binding_warning(t.threads, warn, sizeof warn)) printf("# %s\n", warn);
        fflush(stdout);
    }
    int rc = tern_trainer_run(&t), sig = tern_trainer_stop_signal();
    struct rusage ru;
    double peak = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024.0 : 0, others = lead ? 0 : peak;
    if (rc == 0) tern_dist_max_doubles(&others, 1); // every rank (rc and sig are agreed): the other ranks' peak
    if (rc != 0) {
        if (lead) fprintf(stderr, "tern-train: %s\n", tern_last_error());
    } else if (lead && sig) {
        printf("stopped by signal %d at step %ld of %ld%s%s\n", sig, t.step, cfg.run.steps, t.last_ckpt[0] ? "; checkpoint: " : "",
               t.last_ckpt);
    } else if (lead) {
        printf("done: step %ld, %ld tokens, train loss %.4f", t.step, t.tokens_seen, t.last_loss);
        if (!isnan(t.last_val_loss)) printf(", val loss %.4f (ppl %.2f)", t.last_val_loss, exp(t.last_val_loss));
        printf("\ncheckpoint: %s\nlog: %s/train.csv (plot: scripts/plot_loss.sh %s/train.csv)\n", t.last_ckpt, cfg.run.out_dir, cfg.run.out_dir);
        char comm[1024];
        tern_trainer_comm_report(&t, comm, sizeof comm);
        if (comm[0]) printf("%s\n", comm);
        if (t.ranks > 1) printf("weights identical on all %d ranks: hash %016llx\n", t.ranks, (unsigned long long)t.weights_hash);
        if (t.ranks == 1) printf("peak memory: %.0f MiB\n", peak);
        else printf("peak memory: %.0f MiB on rank 0, at most %.0f MiB on the others\n", peak, others);
    }
    tern_trainer_free(&t);
    return rc ? 1 : sig ? 128 + sig : 0;
}

int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 0);   // passive OpenMP workers on a busy machine (util.h)
    tern_trainer_catch_signals();   // before any slow start-up work: a stop request is never lost
    if (tern_dist_init() != 0) {
        fprintf(stderr, "tern-train: %s\n", tern_last_error());
        return 1;
    }
    int rc = train_main(argc, argv, tern_dist_rank() == 0);
    tern_dist_finalize();
    return rc;
}
