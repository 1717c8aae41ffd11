// finetune.c — fine-tune a checkpoint on new data with a fresh schedule.
//
//   tern-finetune --from CKPT.h5 [CONFIG.cfg] [key=value ...] [--to-ternary [RAMP_STEPS]] [--freeze-embeddings]
//
// The model shape comes from the checkpoint (a config file or key=value may set run keys: data,
// steps, lr, out_dir, ...). --to-ternary turns a full-precision checkpoint ternary: BitLinears
// blend λ·quantized + (1-λ)·fp for weights and activations, λ rising linearly from 0 to 1 over
// RAMP_STEPS (default: a quarter of the steps), so the loss does not explode. The validation
// loss is reported before (fp and naively quantized), during (every eval_interval) and after.
// Data parallel: `mpirun -np N tern-finetune ...` as tern-train (docs/DISTRIBUTED.md); only rank 0 prints.
#include "dist/dist.h"
#include "training/memory.h"
#include "training/trainer.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: tern-finetune --from CKPT.h5 [CONFIG.cfg] [key=value ...] [--to-ternary [RAMP_STEPS]] [--freeze-embeddings]\n"
               "  exit status: 0 done, 1 error, 130/143 stopped by SIGINT/SIGTERM (checkpoint written)\n");
    return rc;
}

// Everything after MPI start-up; lead: this is rank 0, the only one that prints.
static int finetune_main(int argc, char **argv, int lead) {
    const char *from = NULL, *file = NULL;
    long ramp = -1;
    int to_ternary = 0, freeze = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return lead ? usage(stdout, 0) : 0;
        if (!strcmp(argv[i], "--from")) {
            if (i + 1 >= argc) { if (lead) fprintf(stderr, "tern-finetune: --from needs a checkpoint\n"); return lead ? usage(stderr, 2) : 2; }
            from = argv[++i];
        }
        else if (!strcmp(argv[i], "--to-ternary")) {
            to_ternary = 1;
            if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9') {
                if (tern_parse_long(argv[++i], &ramp) || ramp < 0 || ramp > TERN_MAX_STEPS) {
                    if (lead) fprintf(stderr, "tern-finetune: --to-ternary: bad ramp steps '%s' (0 to %ld)\n", argv[i], TERN_MAX_STEPS);
                    return 2;
                }
            }
        } else if (!strcmp(argv[i], "--freeze-embeddings")) freeze = 1;
        else if (argv[i][0] == '-') { if (lead) fprintf(stderr, "tern-finetune: unknown option '%s'\n", argv[i]); return lead ? usage(stderr, 2) : 2; }
        else if (!strchr(argv[i], '=')) {
            if (file) { if (lead) fprintf(stderr, "tern-finetune: more than one config file\n"); return lead ? usage(stderr, 2) : 2; }
            file = argv[i];
        }
    }
    if (!from) { if (lead) fprintf(stderr, "tern-finetune: --from CKPT.h5 is required\n"); return lead ? usage(stderr, 2) : 2; }
    tern_config cfg;
    tern_config_defaults(&cfg);
    if (file && tern_config_load(&cfg, file) != 0) { if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error()); return 1; }
    // the model shape comes from the checkpoint: rank 0 reads it (other nodes need not see the file)
    tern_model_config mc;
    memset(&mc, 0, sizeof mc);
    int rc = lead ? tern_checkpoint_read_config(from, &mc) : 0;
    if (tern_dist_agree(rc) != 0) { if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error()); return 1; }
    tern_dist_bcast(&mc, sizeof mc);
    int was_ternary = mc.ternary;
    cfg.model = mc; // the shape is the checkpoint's
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-' && strchr(argv[i], '=') && tern_config_set_arg(&cfg, argv[i]) != 0) {
            if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
            return 1;
        }
    snprintf(cfg.run.init_from, sizeof cfg.run.init_from, "%s", from);
    if (freeze) cfg.run.freeze_embeddings = 1;
    if (to_ternary) {
        cfg.model.ternary = 1;
        cfg.run.to_ternary_ramp = ramp >= 0 ? ramp : (cfg.run.steps + 3) / 4;
    }
    tern_dist_mute_stderr(1); // its warnings print once, on rank 0
    int bad = tern_config_validate(&cfg) != 0;
    tern_dist_mute_stderr(0);
    if (bad) {
        if (!lead) return 1;
        if (file) fprintf(stderr, "tern-finetune: %s: %s\n", file, tern_last_error());
        else fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
        return 1;
    }
    if (lead) {
        printf("# tern-finetune from %s (%s checkpoint)\n", from, was_ternary ? "ternary" : "full-precision");
        tern_config_print(&cfg, stdout);
    }
    // rank 0 prints the estimate; every rank checks its own in tern_trainer_init
    if (tern_dist_agree(lead ? tern_mem_check_run(&cfg, 0, stdout) : 0) != 0) {
        if (lead) fprintf(stderr, "tern-finetune: %s%s%s\n", file ? file : "", file ? ": " : "", tern_last_error());
        return 1;
    }
    fflush(stdout);
    tern_trainer t;
    if (tern_trainer_init(&t, &cfg, 0) != 0) {
        if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
        tern_trainer_free(&t);
        return 1;
    }
    if (lead) {
        char what[1024];
        tern_trainer_describe(&t, what, sizeof what);
        printf("# compute: %s\n", what);
        char warn[512];
        if (tern_dist_binding_warning(t.threads, warn, sizeof warn)) printf("# %s\n", warn);
        fflush(stdout);
    }
    if (t.has_val) { // evaluation is split over the ranks: every rank takes part
        t.model.quant_lambda = 0.0f;
        float fp = tern_trainer_eval(&t);
        t.model.quant_lambda = 1.0f;
        float q = tern_trainer_eval(&t);
        if (lead) printf("before: val loss %.4f with full-precision BitLinears, %.4f quantized to ternary without fine-tuning\n", fp, q);
        fflush(stdout);
    }
    rc = tern_trainer_run(&t);
    int sig = tern_trainer_stop_signal();
    if (rc != 0) {
        if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
    } else if (sig) {
        if (lead) printf("stopped by signal %d at step %ld; checkpoint: %s\n", sig, t.step, t.last_ckpt);
    } else {
        if (t.has_val) {
            t.model.quant_lambda = cfg.model.ternary ? 1.0f : 0.0f;
            float after = tern_trainer_eval(&t);
            if (lead) printf("after: val loss %.4f (%s)\n", after, cfg.model.ternary ? "ternary" : "full precision");
        }
        if (lead) printf("checkpoint: %s\n", t.last_ckpt);
    }
    tern_trainer_free(&t);
    return rc ? 1 : sig ? 128 + sig : 0;
}

int main(int argc, char **argv) {
    tern_trainer_catch_signals();   // before any slow start-up work
    if (tern_dist_init() != 0) {
        fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
        return 1;
    }
    int rc = finetune_main(argc, argv, tern_dist_rank() == 0);
    tern_dist_finalize();
    return rc;
}
