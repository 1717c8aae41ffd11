// trainer.c — the training loop (see trainer.h).
#include "training/trainer.h"
#include "dist/dist.h"
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
    CMP(norm_eps) CMP(rope_theta)
#undef CMP
    return 1;
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

// Rank 0: tokenizer, then the starting weights: out_dir/latest.h5 (exact resume), init_from, or a
// fresh initialisation. *have_state: 1 when resuming (AdamW moments and counters loaded).
static int load_start(tern_trainer *t, int resume, int *have_state, int64_t *resume_epoch, int64_t *resume_pos) {
    tern_run_config *r = &t->cfg.run;
    char latest[4096];
    snprintf(latest, sizeof latest, "%s/latest.h5", r->out_dir);
    int resuming = resume && access(latest, R_OK) == 0;
    *have_state = 0;
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
        *resume_epoch = st.loader_epoch; // applied once the loader is open
        *resume_pos = st.loader_pos;
        *have_state = 1;
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
        if (tern_checkpoint_load(r->init_from, NULL, &t->model.params, NULL) < 0) return -1;
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
    return 0;
}

// Several ranks: rank 0's counters, loader position and tokenizer bytes to every rank.
static int share_start(tern_trainer *t, int *have_state, int64_t *resume_epoch, int64_t *resume_pos) {
    if (t->ranks == 1) return 0;
    struct {
        long step, tokens_seen;
        uint64_t rng;
        int64_t epoch, pos;
        int have_state, has_tok;
        size_t tok_n;
        char last_ckpt[4096];
    } h;
    memset(&h, 0, sizeof h);
    if (t->rank == 0) {
        h.step = t->step;
        h.tokens_seen = t->tokens_seen;
        h.rng = t->rng.s;
        h.epoch = *resume_epoch;
        h.pos = *resume_pos;
        h.have_state = *have_state;
        h.has_tok = t->has_tok;
        h.tok_n = t->tok_n;
        memcpy(h.last_ckpt, t->last_ckpt, sizeof h.last_ckpt);
    }
    tern_dist_bcast(&h, sizeof h);
    if (h.has_tok) {
        void *bytes = t->rank == 0 ? t->tok_bytes : tern_xmalloc(h.tok_n ? h.tok_n : 1);
        tern_dist_bcast(bytes, h.tok_n);
        if (t->rank != 0 && open_tokenizer_bytes(t, bytes, h.tok_n, "rank 0's tokenizer") != 0) return -1;
    }
    t->step = h.step;
    t->tokens_seen = h.tokens_seen;
    t->rng.s = h.rng;
    *resume_epoch = h.epoch;
    *resume_pos = h.pos;
    *have_state = h.have_state;
    memcpy(t->last_ckpt, h.last_ckpt, sizeof t->last_ckpt);
    return 0;
}

// Every rank must read the same token files: compare size, vocabulary, tokenizer and some ids.
static int check_same_data(const tern_trainer *t) {
    if (t->ranks == 1) return 0;
    uint64_t h = 0;
    const tern_loader *ls[2] = {&t->train, t->has_val ? &t->val : NULL};
    for (int k = 0; k < 2; k++) {
        const tern_loader *ld = ls[k];
        if (!ld) continue;
        int64_t n = ld->tf.n_tokens, take = n < 4096 ? n : 4096;
        int *ids = tern_xmalloc(sizeof(int) * (size_t)(2 * take));
        tern_tokfile_read(&ld->tf, 0, take, ids);
        tern_tokfile_read(&ld->tf, n - take, take, ids + take);
        int64_t head[3] = {n, ld->tf.vocab_size, (int64_t)ld->tf.tokenizer_hash};
        h ^= tern_dist_hash(head, sizeof head) + 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1);
        h ^= tern_dist_hash(ids, sizeof(int) * (size_t)(2 * take)) * (uint64_t)(2 * k + 3);
        free(ids);
    }
    if (tern_dist_check_same_u64(h, "token files") != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("%s: every rank must read the same train_data and val_data (same path on every node, or a shared "
                   "file system)", msg);
        return -1;
    }
    return 0;
}

static int open_outputs(tern_trainer *t) {
    const tern_run_config *r = &t->cfg.run;
    if (mkdir(r->out_dir, 0777) != 0 && errno != EEXIST) {
        tern_error("%s: cannot create output directory: %s", r->out_dir, strerror(errno));
        return -1;
    }
    char csv[4096];
    snprintf(csv, sizeof csv, "%s/train.csv", r->out_dir);
    return tern_trainlog_open(&t->log, csv, t->step);
}

int tern_trainer_init(tern_trainer *t, const tern_config *cfg, int resume) {
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->last_val_loss = NAN;
    tern_run_config *r = &t->cfg.run;
    t->rank = tern_dist_rank();
    t->ranks = tern_dist_size();
    int threads = r->threads;
    if (threads <= 0 && tern_dist_mpi() && !getenv("OMP_NUM_THREADS")) threads = tern_dist_default_threads();
    if (threads > 0) { omp_set_num_threads(threads); openblas_set_num_threads(threads); }
    t->threads = omp_get_max_threads();
    if (t->ranks > 1) {
        char *txt = tern_config_to_string(&t->cfg);
        int rc = tern_dist_check_same_u64(tern_dist_hash(txt, strlen(txt)), "resolved configs");
        free(txt);
        if (rc != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", tern_last_error());
            tern_error("%s: start every rank with the same config and arguments", msg);
            return -1;
        }
        if ((long)r->batch * r->grad_accum < t->ranks) {
            tern_error("the global batch (batch %d x grad_accum %d = %ld sequences) is smaller than the %d ranks: raise "
                       "grad_accum or batch", r->batch, r->grad_accum, (long)r->batch * r->grad_accum, t->ranks);
            return -1;
        }
    }
    tern_model_build(&t->model, &t->cfg.model);
    tern_rng_seed(&t->rng, r->seed);
    int have_state = 0;
    int64_t resume_epoch = 0, resume_pos = 0;
    int rc = t->rank == 0 ? load_start(t, resume, &have_state, &resume_epoch, &resume_pos) : 0;
    if (tern_dist_agree(rc) != 0) return -1;
    if (tern_dist_agree(share_start(t, &have_state, &resume_epoch, &resume_pos)) != 0) return -1;
    rc = open_data(t);
    if (rc == 0 && have_state) rc = tern_loader_set_pos(&t->train, resume_epoch, resume_pos);
    if (tern_dist_agree(rc) != 0) return -1;
    if (check_same_data(t) != 0) return -1;
    tern_adamw_init_run(&t->opt, &t->model.params, r);
    tern_ddp_init(&t->ddp, &t->model.params, &t->opt, r->zero, r->bucket_mb, r->overlap);
    tern_ddp_share_state(&t->ddp, have_state);
    tern_graph_init(&t->graph, tern_model_graph_nodes(&t->cfg.model), 0, 0);
    t->graph.profile = r->profile;
    size_t bt = (size_t)r->batch * t->cfg.model.seq_len;
    t->inputs = tern_xmalloc(sizeof(int) * bt);
    t->targets = tern_xmalloc(sizeof(int) * bt);
    if (tern_dist_agree(t->rank == 0 ? open_outputs(t) : 0) != 0) return -1;
    char note[4200]; // what a fault report says about the run's state
    if (have_state) snprintf(note, sizeof note, "last checkpoint: %s", t->last_ckpt);
    else snprintf(note, sizeof note, "no checkpoint written yet");
    tern_dist_set_note(note);
    return 0;
}

int tern_trainer_step(tern_trainer *t) {
    const tern_run_config *r = &t->cfg.run;
    int B = r->batch, T = t->cfg.model.seq_len;
    double t0 = tern_time();
    float lr = tern_lr_at(r, t->step), wd = tern_wd_at(r, t->step);
    t->model.quant_lambda = t->cfg.model.ternary ? tern_lambda_at(r, t->step) : 0.0f;
    tern_dist_fault_point(t->step + 1);
    // this rank's share [lo, hi) of the global batch of G sequences, in micro-batches of <= B
    long G = (long)B * r->grad_accum, lo, hi;
    tern_dist_split(G, t->rank, t->ranks, &lo, &hi);
    int nmicro = (int)((hi - lo + B - 1) / B);
    tern_loader_skip(&t->train, lo);
    tern_ddp_step_begin(&t->ddp);
    double loss_sum = 0.0;
    int bad = 0;
    for (int a = 0; a < nmicro; a++) {
        long left = hi - lo - (long)a * B;
        int nb = (int)(left < B ? left : B);
        tern_loader_next_n(&t->train, nb, t->inputs, t->targets);
        tern_graph_reset(&t->graph);
        tern_ddp_micro_begin(&t->ddp, &t->graph, a, a == nmicro - 1);
        tern_tensor *loss = tern_model_loss(&t->model, &t->graph, t->inputs, t->targets, nb, T);
        // a non-finite loss still runs its backward: the other ranks' gradient sums wait for it
        if (!isfinite(loss->data[0])) bad = 1;
        tern_backward(&t->graph, loss, (float)nb / (float)G);
        tern_ddp_micro_end(&t->ddp, &t->graph);
        loss_sum += (double)loss->data[0] * nb;
    }
    tern_loader_skip(&t->train, G - hi);
    double t_compute = tern_time() - t0;
    tern_ddp_sync(&t->ddp);
    double agg[2] = {loss_sum, (double)bad}, slowest = t_compute;
    tern_dist_sum_doubles(agg, 2);
    if (t->ranks > 1) { // how long this rank waited for the slowest one: not communication
        tern_dist_max_doubles(&slowest, 1);
        t->ddp.stats.t_skew += slowest - t_compute;
    }
    double mean = agg[0] / (double)G;
    if (agg[1] > 0 || !isfinite(mean)) {
        tern_error("non-finite loss (%g) at step %ld", mean, t->step + 1);
        return -1;
    }
    double gnorm;
    if (tern_ddp_optim_step(&t->ddp, t->step + 1, lr, wd, r->clip, &gnorm) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("step %ld: %s", t->step + 1, msg);
        return -1;
    }
    t->step++;
    t->tokens_seen += G * T;
    t->last_loss = (float)mean;
    t->last_gnorm = gnorm;
    if (t->steps_run++ == 0) { // the first step sizes arenas and faults pages in: not timed
        memset(&t->ddp.stats, 0, sizeof t->ddp.stats);
    } else {
        t->t_steps += tern_time() - t0;
        t->n_steps_timed++;
    }
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
    long lo, hi; // this rank's windows
    tern_dist_split(want, t->rank, t->ranks, &lo, &hi);
    int save_grad = t->graph.grad_enabled;
    t->graph.grad_enabled = 0;
    double total = 0.0;
    for (long done = lo; done < hi;) {
        int nb = (int)(hi - done < B ? hi - done : B);
        nb = tern_loader_eval_windows(&t->val, done, nb, t->inputs, t->targets);
        tern_graph_reset(&t->graph);
        total += (double)tern_model_loss(&t->model, &t->graph, t->inputs, t->targets, nb, T)->data[0] * nb;
        done += nb;
    }
    t->graph.grad_enabled = save_grad;
    tern_dist_sum_doubles(&total, 1);
    return (float)(total / (double)want);
}

int tern_trainer_save(tern_trainer *t) {
    if (tern_ddp_check_weights(&t->ddp, &t->weights_hash) != 0) { // a bug or a faulty node: never save diverged weights
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("step %ld: %s", t->step, msg);
        return -1;
    }
    float *m, *v;
    tern_ddp_moments(&t->ddp, &m, &v); // ZeRO-1: every rank's slice, gathered on rank 0
    int rc = 0;
    if (t->rank == 0) {
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
        tern_params full = t->model.params;
        full.m = m;
        full.v = v;
        rc = tern_checkpoint_save_step(t->cfg.run.out_dir, t->step, t->cfg.run.ckpt_keep, &t->cfg.model, &full,
                                       t->tok_bytes, t->tok_n, &st, t->last_ckpt, sizeof t->last_ckpt);
        free(st.run_config);
    }
    rc = tern_dist_agree(rc);
    if (rc == 0 && t->rank == 0) {
        char note[4200];
        snprintf(note, sizeof note, "last checkpoint: %s", t->last_ckpt);
        tern_dist_set_note(note);
    }
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
    tern_dist_watch_stop(&stop_requested);
    tern_dist_install_mpirun_signals(&stop_requested);
    int quiet = t->quiet || t->rank != 0, stopped = 0;
    tern_progress prog;
    tern_progress_init(&prog, stderr, r->log_interval > 0 ? r->log_interval : 10);
    long start_step = t->step, saved_step = t->step;
    double t_start = tern_time(), t_last = t_start;
    long tok_last = t->tokens_seen;
    int rc = 0;
    if (!quiet && t->step > 0) tern_progress_message(&prog, "resumed at step %ld from %s", t->step, t->last_ckpt);
    while (t->step < r->steps) {
        if (tern_dist_any(stop_requested)) { // every rank stops after the same step
            stopped = 1;
            break;
        }
        if (tern_trainer_step(t) != 0) { // collective: every rank fails the same step
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
        if (!quiet) tern_progress_update(&prog, t->step, r->steps, t->last_loss, lr, t->last_gnorm, tps, eta);
        float val = NAN;
        if (t->has_val && ((r->eval_interval > 0 && t->step % r->eval_interval == 0) || t->step == r->steps)) {
            val = tern_trainer_eval(t);
            t->last_val_loss = val;
            if (!quiet) tern_progress_message(&prog, "step %ld: val loss %.4f (ppl %.2f)", t->step, val, exp(val));
        }
        int lrc = 0; // rank 0's log row; agreed on so that every rank stops if it fails
        if (t->rank == 0 && ((r->log_interval > 0 && t->step % r->log_interval == 0) || t->step == r->steps || !isnan(val)))
            lrc = tern_trainlog_row(&t->log, t->step, t->tokens_seen, t->last_loss, lr, t->last_gnorm, tps, val);
        if (tern_dist_agree(lrc) != 0) { rc = -1; break; }
        if (r->ckpt_interval > 0 && t->step % r->ckpt_interval == 0 && t->step < r->steps) {
            if (tern_trainer_save(t) != 0) { rc = -1; break; }
            saved_step = t->step;
            if (!quiet) tern_progress_message(&prog, "saved %s", t->last_ckpt);
        }
    }
    if (rc == 0 && t->step > saved_step) {
        if (tern_trainer_save(t) != 0) rc = -1;
        else if (!quiet) tern_progress_message(&prog, "saved %s", t->last_ckpt);
    }
    if (!quiet) {
        tern_progress_done(&prog);
        if (stopped && rc == 0)
            fprintf(stderr, "interrupted by signal %d at step %ld: checkpoint %s written\n",
                    stop_requested ? (int)stop_requested : SIGTERM, t->step, t->last_ckpt);
        if (r->profile) tern_graph_print_profile(&t->graph, stderr);
    }
    tern_dist_watch_stop(NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

void tern_trainer_describe(const tern_trainer *t, char *buf, size_t n) {
    const tern_run_config *r = &t->cfg.run;
    long G = (long)r->batch * r->grad_accum, lo, hi;
    tern_dist_split(G, 0, t->ranks, &lo, &hi);
    if (t->ranks == 1) {
        snprintf(buf, n, "1 process x %d thread%s; global batch %ld sequences x %d = %ld tokens per step (batch %d x grad_accum %d)",
                 t->threads, t->threads == 1 ? "" : "s", G, t->cfg.model.seq_len, G * t->cfg.model.seq_len, r->batch, r->grad_accum);
        return;
    }
    snprintf(buf, n, "%d ranks x %d thread%s (%d on this node); global batch %ld sequences x %d = %ld tokens per step "
             "(batch %d x grad_accum %d), %ld%s sequences per rank in micro-batches of <= %d; ZeRO stage %d; "
             "all-reduce buckets of %g MiB, %s, %s",
             t->ranks, t->threads, t->threads == 1 ? "" : "s", tern_dist_local_size(), G, t->cfg.model.seq_len, G * t->cfg.model.seq_len, r->batch,
             r->grad_accum, hi - lo, G % t->ranks ? " or so" : "", r->batch, r->zero, (double)r->bucket_mb,
             r->overlap ? "overlapping the backward" : "after the backward (overlap = 0)",
             t->ddp.ct ? "MPI driven by a communication thread" : "MPI polled between graph nodes");
}

void tern_trainer_comm_report(const tern_trainer *t, char *buf, size_t n) {
    const tern_ddp_stats *s = &t->ddp.stats;
    if (t->ranks == 1 || s->steps == 0 || t->n_steps_timed == 0) { buf[0] = 0; return; }
    double step = t->t_steps / (double)t->n_steps_timed, k = 1.0 / (double)s->steps;
    double skew = s->t_skew * k, wait = s->t_wait * k - skew, opt = s->t_optim_comm * k, launch = s->t_launch * k;
    if (wait < 0) wait = 0;
    double exposed = wait + opt + launch;
    snprintf(buf, n, "comm: %.1f MB all-reduced%s per step in %d buckets; step %.1f ms, of which communication not "
             "hidden by the backward %.1f ms (%.1f%%: waiting after the backward %.1f, optimizer collectives %.1f, "
             "handing buckets over %.1f) and waiting for slower ranks %.1f ms",
             s->bytes_reduced / 1e6, t->cfg.run.zero ? " (reduce-scatter + weight all-gather)" : "", t->ddp.nb, step * 1e3,
             exposed * 1e3, 100.0 * exposed / (step > 0 ? step : 1), wait * 1e3, opt * 1e3, launch * 1e3, skew * 1e3);
}

void tern_trainer_free(tern_trainer *t) {
    tern_trainlog_close(&t->log);
    tern_loader_close(&t->train);
    if (t->has_val) tern_loader_close(&t->val);
    if (t->has_tok) tern_tokenizer_free(&t->tok);
    free(t->tok_bytes);
    tern_ddp_free(&t->ddp);
    tern_adamw_free(&t->opt);
    tern_graph_free(&t->graph);
    tern_model_free(&t->model);
    free(t->inputs);
    free(t->targets);
    memset(t, 0, sizeof *t);
}
