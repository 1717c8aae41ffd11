// finetune.c — fine-tune a checkpoint on new data with a fresh schedule.
//
//   tern-finetune --from CKPT.h5 [CONFIG.cfg] [key=value ...] [--to-ternary [RAMP_STEPS]] [--freeze-embeddings]
//
// The model shape comes from the checkpoint (a config file or key=value may set run keys: data,
// steps, lr, out_dir, ...). --to-ternary turns a full-precision checkpoint ternary: BitLinears
// blend λ·quantized + (1-λ)·fp for weights and activations, λ rising linearly from 0 to 1 over
// RAMP_STEPS (default: a quarter of the steps), so the loss does not explode. The validation
// loss is reported before (fp and naively quantized), during (every eval_interval) and after.
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

int main(int argc, char **argv) {
    tern_trainer_catch_signals();   // before any slow start-up work
    const char *from = NULL, *file = NULL;
    long ramp = -1;
    int to_ternary = 0, freeze = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--from")) {
            if (i + 1 >= argc) { fprintf(stderr, "tern-finetune: --from needs a checkpoint\n"); return usage(stderr, 2); }
            from = argv[++i];
        }
        else if (!strcmp(argv[i], "--to-ternary")) {
            to_ternary = 1;
            if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9') {
                if (tern_parse_long(argv[++i], &ramp) || ramp < 0 || ramp > TERN_MAX_STEPS) {
                    fprintf(stderr, "tern-finetune: --to-ternary: bad ramp steps '%s' (0 to %ld)\n", argv[i], TERN_MAX_STEPS);
                    return 2;
                }
            }
        } else if (!strcmp(argv[i], "--freeze-embeddings")) freeze = 1;
        else if (argv[i][0] == '-') { fprintf(stderr, "tern-finetune: unknown option '%s'\n", argv[i]); return usage(stderr, 2); }
        else if (!strchr(argv[i], '=')) {
            if (file) { fprintf(stderr, "tern-finetune: more than one config file\n"); return usage(stderr, 2); }
            file = argv[i];
        }
    }
    if (!from) { fprintf(stderr, "tern-finetune: --from CKPT.h5 is required\n"); return usage(stderr, 2); }
    tern_config cfg;
    tern_config_defaults(&cfg);
    if (file && tern_config_load(&cfg, file) != 0) { fprintf(stderr, "tern-finetune: %s\n", tern_last_error()); return 1; }
    tern_model_config mc;
    if (tern_checkpoint_read_config(from, &mc) != 0) { fprintf(stderr, "tern-finetune: %s\n", tern_last_error()); return 1; }
    int was_ternary = mc.ternary;
    cfg.model = mc; // the shape is the checkpoint's
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-' && strchr(argv[i], '=') && tern_config_set_arg(&cfg, argv[i]) != 0) {
            fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
            return 1;
        }
    snprintf(cfg.run.init_from, sizeof cfg.run.init_from, "%s", from);
    if (freeze) cfg.run.freeze_embeddings = 1;
    if (to_ternary) {
        cfg.model.ternary = 1;
        cfg.run.to_ternary_ramp = ramp >= 0 ? ramp : (cfg.run.steps + 3) / 4;
    }
    if (tern_config_validate(&cfg) != 0) {
        if (file) fprintf(stderr, "tern-finetune: %s: %s\n", file, tern_last_error());
        else fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
        return 1;
    }
    printf("# tern-finetune from %s (%s checkpoint)\n", from, was_ternary ? "ternary" : "full-precision");
    tern_config_print(&cfg, stdout);
    if (tern_mem_check_run(&cfg, 0, stdout) != 0) {
        fprintf(stderr, "tern-finetune: %s%s%s\n", file ? file : "", file ? ": " : "", tern_last_error());
        return 1;
    }
    fflush(stdout);
    tern_trainer t;
    if (tern_trainer_init(&t, &cfg, 0) != 0) { fprintf(stderr, "tern-finetune: %s\n", tern_last_error()); tern_trainer_free(&t); return 1; }
    if (t.has_val) {
        t.model.quant_lambda = 0.0f;
        float fp = tern_trainer_eval(&t);
        t.model.quant_lambda = 1.0f;
        float q = tern_trainer_eval(&t);
        printf("before: val loss %.4f with full-precision BitLinears, %.4f quantized to ternary without fine-tuning\n", fp, q);
        fflush(stdout);
    }
    int rc = tern_trainer_run(&t), sig = tern_trainer_stop_signal();
    if (rc != 0) fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
    else if (sig) printf("stopped by signal %d at step %ld; checkpoint: %s\n", sig, t.step, t.last_ckpt);
    else {
        if (t.has_val) {
            t.model.quant_lambda = cfg.model.ternary ? 1.0f : 0.0f;
            printf("after: val loss %.4f (%s)\n", tern_trainer_eval(&t), cfg.model.ternary ? "ternary" : "full precision");
        }
        printf("checkpoint: %s\n", t.last_ckpt);
    }
    tern_trainer_free(&t);
    return rc ? 1 : sig ? 128 + sig : 0;
}
