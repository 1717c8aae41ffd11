// finetune.c — fine-tune a checkpoint on new data with a fresh schedule.
//
//   tern-finetune --from CKPT.h5 [CONFIG.cfg] [key=value ...] [--to-ternary [RAMP_STEPS]] [--freeze-embeddings]
//
// The model shape comes from the checkpoint (a config file or key=value may set run keys: data,
// steps, lr, out_dir, ...). --to-ternary turns a full-precision checkpoint ternary: BitLinears
// blend λ·quantized + (1-λ)·fp for weights and activations, λ rising linearly from 0 to 1 over
// RAMP_STEPS (default: a quarter of the steps), so the loss does not explode. A checkpoint without
// sub-norms (a LLaMA from tern-import) gets them inserted, initialised to 1, as BitDistill does
// (SubLN before attn_output and ffn_down); --no-sub-norms keeps the plain LLaMA block.
// --teacher adds logit distillation from a frozen teacher (usually the full-precision checkpoint
// itself): loss = (1-A)·CE + A·T²·KL(softmax(teacher/T) ‖ softmax(student/T)), A = 0.5, T = 1 by
// default (run keys teacher, distill_alpha, distill_temp). The validation loss is reported before
// (fp and naively quantized), during (every eval_interval) and after; with a teacher also the
// teacher's loss, the KL and the top-1 agreement between student and teacher (rank 0's windows).
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
    fprintf(f,
            "usage: tern-finetune --from CKPT.h5 [CONFIG.cfg] [key=value ...] [--to-ternary [RAMP_STEPS]] [--no-sub-norms]\n"
            "                     [--teacher TEACHER.h5 [--distill-alpha A] [--distill-temp T]] [--freeze-embeddings]\n"
            "  --to-ternary [N]     make the model ternary, blending fp -> ternary over N steps (default steps/4);\n"
            "                       inserts sub-norms (initialised to 1) into a checkpoint without them\n"
            "  --no-sub-norms       do not insert sub-norms\n"
            "  --teacher T.h5       distil from this frozen model (same vocabulary); loss = (1-A)CE + A*T^2*KL\n"
            "  --distill-alpha A    weight of the KL term, 0..1 (default 0.5)\n"
            "  --distill-temp T     softmax temperature of the KL term (default 1)\n"
            "  keys: see configs/README.md (train_data=, val_data=, steps=, lr=, out_dir=, ...)\n"
            "  exit status: 0 done, 1 error, 2 usage, 130/143 stopped by SIGINT/SIGTERM (checkpoint written)\n");
    return rc;
}

static void print_distill(const char *when, tern_trainer *t) {
    tern_distill_eval d;
    if (tern_trainer_eval_distill(t, &d) != 0) return;
    printf("%s: val loss student %.4f, teacher %.4f (gap %+.4f); KL(teacher||student) %.4f; top-1 agreement %.2f%% over %ld positions\n",
           when, d.student_ce, d.teacher_ce, d.student_ce - d.teacher_ce, d.kl, 100.0 * d.top1_agree, d.positions);
    fflush(stdout);
}

// Everything after MPI start-up; lead: this is rank 0, the only one that prints.
static int finetune_main(int argc, char **argv, int lead) {
    const char *from = NULL, *file = NULL, *teacher = NULL;
    long ramp = -1;
    float alpha = -1.0f, temp = -1.0f;
    int to_ternary = 0, freeze = 0, no_sub = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return lead ? usage(stdout, 0) : 0;
        const char *a = argv[i];
        if (!strcmp(a, "--from") || !strcmp(a, "--teacher") || !strcmp(a, "--distill-alpha") || !strcmp(a, "--distill-temp")) {
            if (i + 1 >= argc) { if (lead) fprintf(stderr, "tern-finetune: %s needs a value\n", a); return lead ? usage(stderr, 2) : 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "--from")) from = v;
            else if (!strcmp(a, "--teacher")) teacher = v;
            else {
                float x;
                int alpha_flag = !strcmp(a, "--distill-alpha");
                if (tern_parse_float(v, &x) != 0 || !isfinite(x) || (alpha_flag ? (x < 0.0f || x > 1.0f) : !(x > 0.0f))) {
                    if (lead) fprintf(stderr, "tern-finetune: bad value '%s' for %s (expected %s)\n", v, a,
                                      alpha_flag ? "a number in [0, 1]" : "a positive number");
                    return 2;
                }
                if (alpha_flag) alpha = x;
                else temp = x;
            }
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
        else if (!strcmp(argv[i], "--no-sub-norms")) no_sub = 1;
        else if (argv[i][0] == '-') { if (lead) fprintf(stderr, "tern-finetune: unknown option '%s'\n", argv[i]); return lead ? usage(stderr, 2) : 2; }
        else if (!strchr(argv[i], '=')) {
            if (file) { if (lead) fprintf(stderr, "tern-finetune: more than one config file\n"); return lead ? usage(stderr, 2) : 2; }
            file = argv[i];
        }
    }
    if (!from) { if (lead) fprintf(stderr, "tern-finetune: --from CKPT.h5 is required\n"); return lead ? usage(stderr, 2) : 2; }
    if ((alpha >= 0.0f || temp > 0.0f) && !teacher) {
        if (lead) fprintf(stderr, "tern-finetune: --distill-alpha/--distill-temp need --teacher\n");
        return 2;
    }
    tern_config cfg;
    tern_config_defaults(&cfg);
    if (file && tern_config_load(&cfg, file) != 0) { if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error()); return 1; }
    // the model shape comes from the checkpoint: rank 0 reads it (other nodes need not see the file)
    tern_model_config mc;
    memset(&mc, 0, sizeof mc);
    int rc = lead ? tern_checkpoint_read_config(from, &mc) : 0;
    if (tern_dist_agree(rc) != 0) { if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error()); return 1; }
    tern_dist_bcast(&mc, sizeof mc);
    int was_ternary = mc.ternary, sub_norms_set = 0;
    cfg.model = mc; // the shape is the checkpoint's
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-' && strchr(argv[i], '=')) {
            if (tern_config_set_arg(&cfg, argv[i]) != 0) {
                if (lead) fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
                return 1;
            }
            sub_norms_set |= !strncmp(argv[i], "sub_norms=", 10);
        }
    snprintf(cfg.run.init_from, sizeof cfg.run.init_from, "%s", from);
    if (freeze) cfg.run.freeze_embeddings = 1;
    if (to_ternary) {
        cfg.model.ternary = 1;
        cfg.run.to_ternary_ramp = ramp >= 0 ? ramp : (cfg.run.steps + 3) / 4;
        if (!sub_norms_set) cfg.model.sub_norms = no_sub ? mc.sub_norms : 1;
    } else if (no_sub) {
        if (lead) fprintf(stderr, "tern-finetune: --no-sub-norms applies to --to-ternary only\n");
        return 2;
    }
    if (teacher) {
        if (strlen(teacher) >= sizeof cfg.run.teacher) { if (lead) fprintf(stderr, "tern-finetune: --teacher path too long\n"); return 1; }
        snprintf(cfg.run.teacher, sizeof cfg.run.teacher, "%s", teacher);
    }
    if (alpha >= 0.0f) cfg.run.distill_alpha = alpha;
    if (temp > 0.0f) cfg.run.distill_temp = temp;
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
        printf("# tern-finetune from %s (%s checkpoint%s)\n", from, was_ternary ? "ternary" : "full-precision",
               !mc.sub_norms && cfg.model.sub_norms ? "; sub-norms inserted, initialised to 1" : "");
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
        printf("# %s\n", tern_omp_wait_describe(warn, sizeof warn));
        if (tern_dist_binding_warning(t.threads, warn, sizeof warn)) printf("# %s\n", warn);
        if (t.has_teacher) {
            printf("teacher: %s (%s, %.2fM parameters), frozen: no gradients, no optimizer state; weights + logits buffer %.1f MiB\n",
                   cfg.run.teacher, t.teacher.cfg.ternary ? "ternary" : "full precision",
                   tern_model_config_nparams(&t.teacher.cfg) / 1e6, t.teacher_bytes / 1048576.0);
            printf("distillation: loss = %.2f·CE + %.2f·T²·KL, T = %g\n", 1.0 - cfg.run.distill_alpha, cfg.run.distill_alpha,
                   cfg.run.distill_temp);
        }
        fflush(stdout);
    }
    if (t.has_val) { // evaluation is split over the ranks: every rank takes part
        t.model.quant_lambda = 0.0f;
        float fp = tern_trainer_eval(&t);
        t.model.quant_lambda = 1.0f;
        float q = tern_trainer_eval(&t);
        if (lead) printf("before: val loss %.4f with full-precision BitLinears, %.4f quantized to ternary without fine-tuning\n", fp, q);
        if (lead && t.has_teacher) {   // no collectives inside: rank 0's windows only
            t.model.quant_lambda = cfg.model.ternary ? 1.0f : 0.0f;
            print_distill("before (student quantized)", &t);
        }
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
            if (lead && t.has_teacher) print_distill("after", &t);
        }
        if (lead && t.has_teacher)
            printf("teacher memory: weights + logits %.1f MiB, activations of one sequence %.1f MiB\n", t.teacher_bytes / 1048576.0,
                   tern_arena_capacity(&t.teacher_graph.arena) / 1048576.0);
        if (lead) printf("checkpoint: %s\n", t.last_ckpt);
    }
    tern_trainer_free(&t);
    return rc ? 1 : sig ? 128 + sig : 0;
}

int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 0);   // passive OpenMP workers on a busy machine (util.h)
    tern_trainer_catch_signals();   // before any slow start-up work
    if (tern_dist_init() != 0) {
        fprintf(stderr, "tern-finetune: %s\n", tern_last_error());
        return 1;
    }
    int rc = finetune_main(argc, argv, tern_dist_rank() == 0);
    tern_dist_finalize();
    return rc;
}
