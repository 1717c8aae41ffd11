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
#include "training/memory.h"
#include "training/trainer.h"
#include "util.h"
#include "kernels/kernels.h"
#include <omp.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: tern-train [CONFIG.cfg] [key=value ...] [--fresh]\n"
               "  keys: see configs/README.md; e.g. tern-train configs/tiny.cfg steps=50 out_dir=runs/t\n"
               "  exit status: 0 done, 1 error, 130/143 stopped by SIGINT/SIGTERM (checkpoint written)\n");
    return rc;
}

// "tern-train: CONFIG: problem" (or without CONFIG when there is no config file)
static int config_error(const char *file) {
    if (file) fprintf(stderr, "tern-train: %s: %s\n", file, tern_last_error());
    else fprintf(stderr, "tern-train: %s\n", tern_last_error());
    return 1;
}

char *openblas_get_corename(void);   // OpenBLAS (its cblas.h declares it; the cblas.h in use may not)

int main(int argc, char **argv) {
    tern_trainer_catch_signals();   // before any slow start-up work: a stop request is never lost
    tern_config cfg;
    tern_config_defaults(&cfg);
    int fresh = 0;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) { // options and the config file first; overrides apply on top of it
        if (!strcmp(argv[i], "--fresh")) fresh = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout, 0);
        else if (argv[i][0] == '-') { fprintf(stderr, "tern-train: unknown option '%s'\n", argv[i]); return usage(stderr, 2); }
        else if (!strchr(argv[i], '=')) {
            if (file) { fprintf(stderr, "tern-train: more than one config file ('%s', '%s')\n", file, argv[i]); return usage(stderr, 2); }
            file = argv[i];
        }
    }
    if (file && tern_config_load(&cfg, file) != 0) { fprintf(stderr, "tern-train: %s\n", tern_last_error()); return 1; }
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-' && strchr(argv[i], '=') && tern_config_set_arg(&cfg, argv[i]) != 0) {
            fprintf(stderr, "tern-train: %s\n", tern_last_error());
            return 1;
        }
    if (tern_config_validate(&cfg) != 0) return config_error(file);
    printf("# tern-train: resolved config\n");
    tern_config_print(&cfg, stdout);
    printf("# parameters: %.2fM (%s)\n", tern_model_config_nparams(&cfg.model) / 1e6, cfg.model.ternary ? "ternary BitLinear" : "full precision");
    if (tern_mem_check_run(&cfg, !fresh, stdout) != 0) return config_error(file);
    const char *blas = openblas_get_corename(), *forced = getenv("OPENBLAS_CORETYPE");
    printf("# compute: %d threads, int8 kernels %s, OpenBLAS %s kernels%s%s%s\n",
           cfg.run.threads > 0 ? cfg.run.threads : omp_get_max_threads(), tern_kernel_name(tern_kernel_best()), blas ? blas : "?",
           forced ? " (OPENBLAS_CORETYPE=" : "", forced ? forced : "", forced ? ")" : "");
    fflush(stdout);
    tern_trainer t;
    if (tern_trainer_init(&t, &cfg, !fresh) != 0) { fprintf(stderr, "tern-train: %s\n", tern_last_error()); tern_trainer_free(&t); return 1; }
    int rc = tern_trainer_run(&t), sig = tern_trainer_stop_signal();
    if (rc != 0) fprintf(stderr, "tern-train: %s\n", tern_last_error());
    else if (sig) {
        printf("stopped by signal %d at step %ld of %ld%s%s\n", sig, t.step, cfg.run.steps, t.last_ckpt[0] ? "; checkpoint: " : "",
               t.last_ckpt);
    } else {
        printf("done: step %ld, %ld tokens, train loss %.4f", t.step, t.tokens_seen, t.last_loss);
        if (!isnan(t.last_val_loss)) printf(", val loss %.4f (ppl %.2f)", t.last_val_loss, exp(t.last_val_loss));
        printf("\ncheckpoint: %s\nlog: %s/train.csv (plot: scripts/plot_loss.sh %s/train.csv)\n", t.last_ckpt, cfg.run.out_dir, cfg.run.out_dir);
    }
    tern_trainer_free(&t);
    return rc ? 1 : sig ? 128 + sig : 0;
}
