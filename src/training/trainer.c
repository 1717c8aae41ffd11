// trainer.c — the training loop (see trainer.h).
#include "training/trainer.h"
#include "training/schedule.h"
#include "util.h"
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

// Model configs must agree on every field but 'ternary' (fp -> ternary fine-tuning changes it).
static int same_shape_config(const tern_model_config *a, const tern_model_config *b, char *what, size_t n) {
#define CMP(f)                                                                          \
    if (a->f != b->f) { snprintf(what, n, #f " %g vs %g", (double)a->f, (double)b->f); return 0; }
    CMP(dim) CMP(n_layers) CMP(n_heads) CMP(n_kv_heads) CMP(ffn_dim) CMP(vocab_size) CMP(tied_head)
    CMP(norm_eps) CMP(rope_theta) CMP(ffn_act) CMP(rope_scaling) CMP(rope_scaling_factor) CMP(rope_low_freq_factor)
    CMP(rope_high_freq_factor) CMP(rope_original_ctx)
#undef CMP
    return 1;
}

static int is_sub_norm(const char *name) { return strstr(name, "_sub_norm.weight") != NULL; }

// Weights of init_from into the model. A checkpoint without sub-norms (an imported LLaMA) may start
// a model with them: the inserted attn_sub_norm / ffn_sub_norm start at 1 (BitDistill's SubLN
// insertion); the reverse (dropping trained sub-norms) is refused.
static int load_init_from(tern_trainer *t, const char *path, const tern_model_config *mc) {
    if (mc->sub_norms == t->cfg.model.sub_norms) return tern_checkpoint_load(path, NULL, &t->model.params, NULL) < 0 ? -1 : 0;
    if (mc->sub_norms) {
        tern_error("%s: the checkpoint has sub-norms but the config sets sub_norms = 0 (they cannot be dropped)", path);
        return -1;
    }
    for (int l = 0; l < t->cfg.model.n_layers; l++) {
        tern_layer *L = &t->model.layers[l];
        for (long i = 0; i < L->attn_sub_norm->n; i++) L->attn_sub_norm->data[i] = 1.0f;
        for (long i = 0; i < L->ffn_sub_norm->n; i++) L->ffn_sub_norm->data[i] = 1.0f;
    }
    int missing;
    if (tern_checkpoint_load_partial(path, &t->model.params, is_sub_norm, &missing) != 0) return -1;
    if (missing != 2 * t->cfg.model.n_layers) {
        tern_error("%s: expected to insert %d sub-norms, inserted %d", path, 2 * t->cfg.model.n_layers, missing);
        return -1;
    }
    return 0;
}

// The distillation teacher: a frozen model of the checkpoint cfg.run.teacher, its graph and logits buffer.
static int open_teacher(tern_trainer *t) {
    const char *path = t->cfg.run.teacher;
    tern_model_config tc;
    if (tern_checkpoint_read_config(path, &tc) != 0) return -1;
    if (tc.vocab_size != t->cfg.model.vocab_size) {
        tern_error("%s: the teacher's vocab_size %d differs from the student's %d", path, tc.vocab_size, t->cfg.model.vocab_size);
        return -1;
    }
    tern_model_build_frozen(&t->teacher, &tc);
    t->has_teacher = 1;   // from here on tern_trainer_free releases it
    if (tern_checkpoint_load(path, &tc, &t->teacher.params, NULL) < 0) return -1;
    if (t->has_tok) {
        void *bytes = NULL;
        size_t n = 0;
        int rc = tern_checkpoint_read_tokenizer(path, &bytes, &n);
        if (rc < 0) return -1;
        if (rc == 1 && tern_fnv1a64(bytes, n) != tern_tokenizer_hash(&t->tok)) {
            free(bytes);
            tern_error("%s: the teacher's tokenizer differs from the student's", path);
            return -1;
        }
        free(bytes);
    }
    tern_graph_init(&t->teacher_graph, tern_model_graph_nodes(&tc), 0, 0);
    t->teacher_graph.grad_enabled = 0;
    size_t nl = (size_t)t->cfg.run.batch * t->cfg.model.seq_len * tc.vocab_size;
    t->teacher_logits = tern_aligned_alloc(sizeof(float) * nl);
    t->teacher_bytes = tern_model_param_bytes(&tc) + sizeof(float) * nl;
    return 0;
}

// Teacher logits for nb sequences of T tokens into t->teacher_logits, one sequence per forward (its
// activations are those of one sequence). Returns the teacher's summed NLL over the rows when
// targets != NULL (else 0).
static double teacher_forward(tern_trainer *t, const int *inputs, const int *targets, int nb, int T) {
    const int V = t->cfg.model.vocab_size;
    double nll = 0.0;
    for (int b = 0; b < nb; b++) {
        tern_graph_reset(&t->teacher_graph);
        tern_tensor *lg = tern_model_forward(&t->teacher, &t->teacher_graph, inputs + (size_t)b * T, 1, T);
        memcpy(t->teacher_logits + (size_t)b * T * V, lg->data, sizeof(float) * (size_t)T * V);
        if (targets) nll += (double)tern_cross_entropy(&t->teacher_graph, lg, targets + (size_t)b * T, TERN_IGNORE_INDEX)->data[0] * T;
    }
    return nll;
}

static int open_tokenizer_bytes(tern_trainer *t, void *bytes, size_t n, const char *what) {
    if (tern_tokenizer_from_bytes(&t->tok, bytes, n, what) != 0) { free(bytes); return -1; }
    t->tok_bytes = bytes;
    t->tok_n = n;
    t->has_tok = 1;
    if (t->tok.vocab_size != t->cfg.model.vocab_size) {
        tern_error("%s: tokenizer has %d pieces but the model's vocab_size is %d (set vocab_size=%d)", what,
                   t->tok.vocab_size, t->cfg.model.vocab_size, t->tok.vocab_size);
        return -1;
    }
    return 0;
}

static int open_data(tern_trainer *t) {
    const tern_run_config *r = &t->cfg.run;
    if (!r->train_data[0]) { tern_error("no training data: set train_data=<token file> (see data/README.md)"); return -1; }
    if (tern_loader_open(&t->train, r->train_data, t->cfg.model.seq_len, r->batch, r->seed) != 0) return -1;
    if (t->train.tf.vocab_size > t->cfg.model.vocab_size) {
        tern_error("%s: token ids go up to vocab %d but the model's vocab_size is %d", r->train_data,
                   t->train.tf.vocab_size, t->cfg.model.vocab_size);
        return -1;
    }
    if (t->has_tok && t->train.tf.tokenizer_hash != tern_tokenizer_hash(&t->tok)) {
        tern_error("%s: made with a different tokenizer than %s (hash mismatch)", r->train_data,
                   r->tokenizer[0] ? r->tokenizer : "the checkpoint's");
        return -1;
    }
    if (r->val_data[0]) {
        if (tern_loader_open(&t->val, r->val_data, t->cfg.model.seq_len, r->batch, r->seed) != 0) return -1;
        if (t->val.tf.vocab_size > t->cfg.model.vocab_size) {
            tern_error("%s: token ids go up to vocab %d but the model's vocab_size is %d", r->val_data,
                       t->val.tf.vocab_size, t->cfg.model.vocab_size);
            return -1;
        }
        t->has_val = 1;
    }
    return 0;
}

int tern_trainer_init(tern_trainer *t, const tern_config *cfg, int resume) {
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->last_val_loss = NAN;
    tern_run_config *r = &t->cfg.run;
    if (r->threads > 0) { omp_set_num_threads(r->threads); openblas_set_num_threads(r->threads); }
    tern_model_build(&t->model, &t->cfg.model);
    tern_rng_seed(&t->rng, r->seed);
    char latest[4096];
    snprintf(latest, sizeof latest, "%s/latest.h5", r->out_dir);
    int resuming = resume && access(latest, R_OK) == 0;
    int64_t resume_epoch = 0, resume_pos = 0;
    if (r->tokenizer[0]) {
        size_t n;
        void *bytes = tern_read_file(r->tokenizer, &n);
        if (!bytes || open_tokenizer_bytes(t, bytes, n, r->tokenizer) != 0) return -1;
    }
    if (resuming) {
        tern_model_config mc;
        if (tern_checkpoint_read_config(latest, &mc) != 0) return -1;
        char what[128];
        if (!same_shape_config(&mc, &t->cfg.model, what, sizeof what) || mc.ternary != t->cfg.model.ternary) {
            tern_error("%s: cannot resume: the checkpoint's model differs from the config (%s)", latest,
                       mc.ternary != t->cfg.model.ternary ? "ternary" : what);
            return -1;
        }
        tern_train_state st;
        int rc = tern_checkpoint_load(latest, &mc, &t->model.params, &st);
        if (rc < 0) return -1;
        if (rc == 0) { tern_error("%s: has no training state to resume from", latest); return -1; }
        t->step = st.step;
        t->tokens_seen = st.tokens_seen;
        t->rng.s = st.rng_state;
        resume_epoch = st.loader_epoch; // applied once the loader is open
        resume_pos = st.loader_pos;
        tern_train_state_free(&st);
        snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", latest);
    } else if (r->init_from[0]) {
        tern_model_config mc;
        if (tern_checkpoint_read_config(r->init_from, &mc) != 0) return -1;
        char what[128];
        if (!same_shape_config(&mc, &t->cfg.model, what, sizeof what)) {
            tern_error("%s: its model does not match the config (%s)", r->init_from, what);
            return -1;
        }
        if (load_init_from(t, r->init_from, &mc) != 0) return -1;
        snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", r->init_from);
    } else {
        tern_model_init_weights(&t->model, r->seed);
    }
    if (!t->has_tok) { // take the tokenizer from the checkpoint we started from
        const char *src = resuming ? latest : r->init_from[0] ? r->init_from : NULL;
        void *bytes = NULL;
        size_t n = 0;
        int rc = src ? tern_checkpoint_read_tokenizer(src, &bytes, &n) : 0;
        if (rc < 0) return -1;
        if (rc == 1 && open_tokenizer_bytes(t, bytes, n, src) != 0) return -1;
    }
    if (open_data(t) != 0) return -1;
    if (r->teacher[0] && open_teacher(t) != 0) return -1;
    if (resuming && tern_loader_set_pos(&t->train, resume_epoch, resume_pos) != 0) return -1;
    tern_adamw_init_run(&t->opt, &t->model.params, r);
    tern_graph_init(&t->graph, tern_model_graph_nodes(&t->cfg.model), 0, 0);
    t->graph.profile = r->profile;
    size_t bt = (size_t)r->batch * t->cfg.model.seq_len;
    t->inputs = tern_xmalloc(sizeof(int) * bt);
    t->targets = tern_xmalloc(sizeof(int) * bt);
    if (mkdir(r->out_dir, 0777) != 0 && errno != EEXIST) {
        tern_error("%s: cannot create output directory: %s", r->out_dir, strerror(errno));
        return -1;
    }
    char csv[4096];
    snprintf(csv, sizeof csv, "%s/train.csv", r->out_dir);
    if (tern_trainlog_open(&t->log, csv, t->step) != 0) return -1;
    return 0;
}

int tern_trainer_step(tern_trainer *t) {
    const tern_run_config *r = &t->cfg.run;
    int B = r->batch, T = t->cfg.model.seq_len;
    float lr = tern_lr_at(r, t->step), wd = tern_wd_at(r, t->step);
    t->model.quant_lambda = t->cfg.model.ternary ? tern_lambda_at(r, t->step) : 0.0f;
    tern_params_zero_grad(&t->model.params);
    double loss_sum = 0.0, ce_sum = 0.0, kl_sum = 0.0;
    for (int a = 0; a < r->grad_accum; a++) {
        tern_loader_next(&t->train, t->inputs, t->targets);
        if (t->has_teacher) teacher_forward(t, t->inputs, NULL, B, T);
        tern_graph_reset(&t->graph);
        tern_tensor *loss;
        if (t->has_teacher) {
            tern_tensor *logits = tern_model_forward(&t->model, &t->graph, t->inputs, B, T);
            tern_tensor *ce = tern_cross_entropy(&t->graph, logits, t->targets, TERN_IGNORE_INDEX);
            tern_tensor *kl = tern_kl_distill(&t->graph, logits, t->teacher_logits, t->targets, TERN_IGNORE_INDEX, r->distill_temp);
            loss = tern_add(&t->graph, tern_scale(&t->graph, ce, 1.0f - r->distill_alpha), tern_scale(&t->graph, kl, r->distill_alpha));
            ce_sum += ce->data[0];
            kl_sum += kl->data[0];
        } else {
            loss = tern_model_loss(&t->model, &t->graph, t->inputs, t->targets, B, T);
            ce_sum += loss->data[0];
        }
        if (!isfinite(loss->data[0])) {
            tern_error("non-finite loss (%g) at step %ld", (double)loss->data[0], t->step + 1);
            return -1;
        }
        tern_backward(&t->graph, loss, 1.0f / (float)r->grad_accum);
        loss_sum += loss->data[0];
    }
    double gnorm;
    if (tern_optim_step(&t->opt, &t->model.params, t->step + 1, lr, wd, r->clip, &gnorm) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("step %ld: %s", t->step + 1, msg);
        return -1;
    }
    t->step++;
    t->tokens_seen += (long)B * T * r->grad_accum;
    t->last_loss = (float)(loss_sum / r->grad_accum);
    t->last_ce = (float)(ce_sum / r->grad_accum);
    t->last_kl = (float)(kl_sum / r->grad_accum);
    t->last_gnorm = gnorm;
    return 0;
}

int tern_trainer_eval_distill(tern_trainer *t, tern_distill_eval *res) {
    memset(res, 0, sizeof *res);
    if (!t->has_val || !t->has_teacher) {
        tern_error("distillation figures need validation data and a teacher");
        return -1;
    }
    const tern_run_config *r = &t->cfg.run;
    const int B = r->batch, T = t->cfg.model.seq_len, V = t->cfg.model.vocab_size;
    long nwin = (long)tern_loader_eval_count(&t->val), want = (long)r->eval_batches * B;
    if (want <= 0 || want > nwin) want = nwin;
    int save_grad = t->graph.grad_enabled;
    t->graph.grad_enabled = 0;
    double ce = 0.0, tce = 0.0, kl = 0.0;
    long agree = 0, done = 0;
    while (done < want) {
        int nb = (int)(want - done < B ? want - done : B);
        nb = tern_loader_eval_windows(&t->val, done, nb, t->inputs, t->targets);
        tce += teacher_forward(t, t->inputs, t->targets, nb, T);
        tern_graph_reset(&t->graph);
        tern_tensor *lg = tern_model_forward(&t->model, &t->graph, t->inputs, nb, T);
        ce += (double)tern_cross_entropy(&t->graph, lg, t->targets, TERN_IGNORE_INDEX)->data[0] * nb * T;
        kl += (double)tern_kl_distill(&t->graph, lg, t->teacher_logits, t->targets, TERN_IGNORE_INDEX, r->distill_temp)->data[0] * nb * T;
        for (long i = 0; i < (long)nb * T; i++) {
            const float *a = lg->data + (size_t)i * V, *b = t->teacher_logits + (size_t)i * V;
            int ia = 0, ib = 0;
            for (int v = 1; v < V; v++) { if (a[v] > a[ia]) ia = v; if (b[v] > b[ib]) ib = v; }
            agree += ia == ib;
        }
        done += nb;
    }
    t->graph.grad_enabled = save_grad;
    long n = want * T;
    if (n > 0) {
        res->student_ce = (float)(ce / n);
        res->teacher_ce = (float)(tce / n);
        res->kl = (float)(kl / n);
        res->top1_agree = (float)((double)agree / n);
    }
    res->positions = n;
    return 0;
}

float tern_trainer_eval(tern_trainer *t) {
    if (!t->has_val) return NAN;
    const tern_run_config *r = &t->cfg.run;
    int B = r->batch, T = t->cfg.model.seq_len;
    long nwin = (long)tern_loader_eval_count(&t->val);
    long want = (long)r->eval_batches * B;
    if (want <= 0 || want > nwin) want = nwin;
    if (want == 0) return NAN;
    int save_grad = t->graph.grad_enabled;
    t->graph.grad_enabled = 0;
    double total = 0.0;
    long done = 0;
    while (done < want) {
        int nb = (int)(want - done < B ? want - done : B);
        nb = tern_loader_eval_windows(&t->val, done, nb, t->inputs, t->targets);
        tern_graph_reset(&t->graph);
        total += (double)tern_model_loss(&t->model, &t->graph, t->inputs, t->targets, nb, T)->data[0] * nb;
        done += nb;
    }
    t->graph.grad_enabled = save_grad;
    return (float)(total / (double)want);
}

int tern_trainer_save(tern_trainer *t) {
    tern_train_state st = {0};
    st.step = t->step;
    st.tokens_seen = t->tokens_seen;
    st.rng_state = t->rng.s;
    int64_t ep, pos;
    tern_loader_get_pos(&t->train, &ep, &pos);
    st.loader_epoch = ep;
    st.loader_pos = pos;
    st.loader_seed = t->cfg.run.seed;
    st.run_config = tern_config_to_string(&t->cfg);
    int rc = tern_checkpoint_save_step(t->cfg.run.out_dir, t->step, t->cfg.run.ckpt_keep, &t->cfg.model,
                                       &t->model.params, t->tok_bytes, t->tok_n, &st, t->last_ckpt, sizeof t->last_ckpt);
    free(st.run_config);
    return rc;
}

int tern_trainer_run(tern_trainer *t) {
    const tern_run_config *r = &t->cfg.run;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;
    tern_progress prog;
    tern_progress_init(&prog, stderr, r->log_interval > 0 ? r->log_interval : 10);
    long start_step = t->step, saved_step = t->step;
    double t_start = tern_time(), t_last = t_start;
    long tok_last = t->tokens_seen;
    int rc = 0;
    if (!t->quiet && t->step > 0) tern_progress_message(&prog, "resumed at step %ld from %s", t->step, t->last_ckpt);
    while (t->step < r->steps && !stop_requested) {
        if (tern_trainer_step(t) != 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", tern_last_error());
            tern_error("stopping: %s; last good checkpoint: %s", msg, t->last_ckpt[0] ? t->last_ckpt : "(none written yet)");
            rc = -1;
            break;
        }
        double now = tern_time(), elapsed = now - t_start;
        double tps = (t->tokens_seen - tok_last) / (now - t_last > 1e-9 ? now - t_last : 1e-9);
        t_last = now;
        tok_last = t->tokens_seen;
        double eta = (double)(r->steps - t->step) * elapsed / (double)(t->step - start_step);
        float lr = tern_lr_at(r, t->step - 1);
        if (!t->quiet) tern_progress_update(&prog, t->step, r->steps, t->last_loss, lr, t->last_gnorm, tps, eta);
        if (!t->quiet && t->has_teacher && (t->step % r->log_interval == 0 || t->step == r->steps))
            tern_progress_message(&prog, "step %ld: loss %.4f = %.2f·CE %.4f + %.2f·KL %.4f", t->step, t->last_loss,
                                  1.0 - r->distill_alpha, t->last_ce, r->distill_alpha, t->last_kl);
        float val = NAN;
        if (t->has_val && ((r->eval_interval > 0 && t->step % r->eval_interval == 0) || t->step == r->steps)) {
            val = tern_trainer_eval(t);
            t->last_val_loss = val;
            if (!t->quiet) tern_progress_message(&prog, "step %ld: val loss %.4f (ppl %.2f)", t->step, val, exp(val));
        }
        if ((r->log_interval > 0 && t->step % r->log_interval == 0) || t->step == r->steps || !isnan(val))
            if (tern_trainlog_row(&t->log, t->step, t->tokens_seen, t->last_loss, lr, t->last_gnorm, tps, val) != 0) { rc = -1; break; }
        if (r->ckpt_interval > 0 && t->step % r->ckpt_interval == 0 && t->step < r->steps) {
            if (tern_trainer_save(t) != 0) { rc = -1; break; }
            saved_step = t->step;
            if (!t->quiet) tern_progress_message(&prog, "saved %s", t->last_ckpt);
        }
    }
    if (rc == 0 && t->step > saved_step) {
        if (tern_trainer_save(t) != 0) rc = -1;
        else if (!t->quiet) tern_progress_message(&prog, "saved %s", t->last_ckpt);
    }
    if (!t->quiet) {
        tern_progress_done(&prog);
        if (stop_requested) fprintf(stderr, "interrupted by signal %d at step %ld: checkpoint %s written\n", (int)stop_requested, t->step, t->last_ckpt);
        if (r->profile) tern_graph_print_profile(&t->graph, stderr);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

void tern_trainer_free(tern_trainer *t) {
    tern_trainlog_close(&t->log);
    tern_loader_close(&t->train);
    if (t->has_val) tern_loader_close(&t->val);
    if (t->has_tok) tern_tokenizer_free(&t->tok);
    free(t->tok_bytes);
    tern_adamw_free(&t->opt);
    tern_graph_free(&t->graph);
    tern_model_free(&t->model);
    if (t->has_teacher) {
        tern_model_free(&t->teacher);
        tern_graph_free(&t->teacher_graph);
        free(t->teacher_logits);
    }
    free(t->inputs);
    free(t->targets);
    memset(t, 0, sizeof *t);
}
