// trainer.c — the training loop (see trainer.h).
#include "training/trainer.h"
#include "dist/dist.h"
#include "tokenizers/tokenizer_json.h"
#include "training/memory.h"
#include "training/schedule.h"
#include "util.h"
#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- signals -------------------------------------------------------------------------------------

static volatile sig_atomic_t stop_requested;
static int signals_installed;
static void on_signal(int sig) {
    if (!stop_requested) stop_requested = sig;
}

void tern_trainer_catch_signals(void) {
    if (signals_installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signals_installed = 1;
}

int tern_trainer_stop_signal(void) { return (int)stop_requested; }

// ---- the run directory: lock, stale temporary files ------------------------------------------------

static int mkdir_run(const char *dir) {
    char buf[TERN_PATH_MAX + 8];
    snprintf(buf, sizeof buf, "%s", dir);
    size_t n = strlen(buf);
    for (size_t i = 1; i <= n; i++)
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                tern_error("%s: cannot create output directory: %s", buf, strerror(errno));
                return -1;
            }
            buf[i] = c;
        }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) { tern_error("%s: out_dir is not a directory", dir); return -1; }
    return 0;
}

// Exclusive lock on out_dir/.lock for the trainer's lifetime; the file holds the owner's pid.
static int lock_run_dir(tern_trainer *t, const char *dir) {
    char path[TERN_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) { tern_error("%s: cannot create the run lock: %s", path, strerror(errno)); return -1; }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = {0};
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        if (e == EWOULDBLOCK) {
            if (r > 0) pid[strcspn(pid, "\n")] = 0;
            tern_error("%s: another run is using this directory (pid %s holds %s); wait for it or choose another out_dir", dir,
                       r > 0 && pid[0] ? pid : "?", path);
        } else {
            tern_error("%s: cannot lock: %s", path, strerror(e));
        }
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) { /* the lock holds; the pid is informative */ }
    t->lock_fd = fd;
    return 0;
}

// "<base>.tmp.<digits>" with base one of the run's own files
static int is_stale_tmp(const char *name) {
    const char *p = strstr(name, ".tmp.");
    if (!p || !p[5]) return 0;
    for (const char *q = p + 5; *q; q++)
        if (*q < '0' || *q > '9') return 0;
    size_t bl = (size_t)(p - name);
    if ((bl == 9 && !strncmp(name, "latest.h5", 9)) || (bl == 9 && !strncmp(name, "train.csv", 9))) return 1;
    if (bl < 5 + 8 + 3 || strncmp(name, "ckpt_", 5) != 0 || strncmp(name + bl - 3, ".h5", 3) != 0) return 0;
    for (size_t i = 5; i < bl - 3; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return 1;
}

// With the lock held, temporary files of killed runs are garbage: remove and say so.
static void remove_stale_tmp(const tern_trainer *t, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[TERN_PATH_MAX + 300];
    while ((e = readdir(d))) {
        if (!is_stale_tmp(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0 && !t->quiet) fprintf(stderr, "removed %s (left by a run that was killed)\n", path);
    }
    closedir(d);
}

// ---- model, tokenizer, data -------------------------------------------------------------------------

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
    // its arena's first block is the estimate (training/memory.h): one sequence, no gradients
    int nth = t->cfg.run.threads > 0 ? t->cfg.run.threads : omp_get_max_threads();
    tern_graph_init(&t->teacher_graph, tern_model_graph_nodes(&tc), tern_mem_teacher_arena(&tc, t->cfg.model.seq_len, nth), 0);
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
        t->has_val = 1;
        if (t->val.tf.vocab_size > t->cfg.model.vocab_size) {
            tern_error("%s: token ids go up to vocab %d but the model's vocab_size is %d", r->val_data,
                       t->val.tf.vocab_size, t->cfg.model.vocab_size);
            return -1;
        }
    }
    return 0;
}

// Threads and the memory estimate, before anything big is allocated.
static int check_resources(tern_trainer *t, int resuming) {
    const tern_run_config *r = &t->cfg.run;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nth = r->threads > 0 ? r->threads : omp_get_max_threads();
    if (ncpu > 0 && nth > 4 * ncpu) {
        tern_error("%s %d is more than 4 per CPU of this machine (%ld CPUs); set threads=%ld or less",
                   r->threads > 0 ? "threads" : "OMP_NUM_THREADS", nth, ncpu, ncpu);
        return -1;
    }
    tern_mem_inputs in;
    tern_mem_inputs_for_run(&t->cfg, resuming, &in);
    tern_mem_estimate e;
    if (tern_mem_estimate_run(&t->cfg, &in, &e) != 0) return -1;
    if (tern_mem_check(&e, (size_t)r->max_memory) != 0) return -1;
    t->arena_bytes = e.activations;
    return 0;
}

// ---- resume: is it the same run? ------------------------------------------------------------------

// Keys that may change on resume without changing what the run computes up to now (and steps,
// which stretches the schedule from here on: intended when a run is extended).
static int safe_resume_key(const char *k) {
    static const char *safe[] = {"steps", "max_tokens", "eval_interval", "eval_batches", "ckpt_interval", "ckpt_keep",
                                 "log_interval", "threads", "profile", "recompute", "max_memory", "out_dir", "init_from",
                                 "train_data", "val_data", "tokenizer", "zero", "bucket_mb", "overlap"};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (!strcmp(k, safe[i])) return 1;
    return 0;
}

static void say(const tern_trainer *t, const char *fmt, const char *a, const char *b, const char *c) {
    if (!t->quiet) { fprintf(stderr, fmt, a, b, c); fputc('\n', stderr); }
}

// The checkpoint's run config against the new one (train data identity checked after the loaders
// open). 0, or -1 naming the first key that breaks exact resume, with its old and new value.
static int check_resume_config(tern_trainer *t, const char *latest, const tern_train_state *st) {
    tern_run_config *r = &t->cfg.run;
    if (r->steps < st->step) {
        tern_error("%s: steps %ld is lower than the checkpoint's step %ld (the run is past it; raise steps or use --fresh)",
                   latest, r->steps, st->step);
        return -1;
    }
    tern_config old;
    tern_config_defaults(&old);
    char what[4200];
    snprintf(what, sizeof what, "%s:/train_state/run_config", latest);
    // the stored config was printed resolved (no "auto" left): parsing it is enough
    if (!st->run_config || !st->run_config[0] || tern_config_parse(&old, st->run_config, what) != 0) {
        if (!t->quiet) fprintf(stderr, "note: %s: no usable run config in the checkpoint; resuming without comparing it\n", latest);
        return 0;
    }
    // warmup = auto in both runs (the value auto gives for each one's steps): a longer run keeps
    // the warmup it had, rather than refusing or changing the schedule's past
    if (r->warmup != old.run.warmup && r->warmup == tern_auto_warmup(r->steps) &&
        old.run.warmup == tern_auto_warmup(old.run.steps)) {
        char o[32], n[32];
        snprintf(o, sizeof o, "%ld", old.run.warmup);
        snprintf(n, sizeof n, "%ld", r->warmup);
        say(t, "resume: warmup is auto: keeping the checkpoint's %s (auto would give %s for the new steps)%s", o, n, "");
        r->warmup = old.run.warmup;
    }
    // precision = auto: the checkpoint's arithmetic (auto may resolve otherwise on another CPU, and
    // an exact resume needs the same backward). One process only: rank 0 alone reads the
    // checkpoint, so several ranks get the error below and set the key.
    if (r->precision_auto && t->ranks == 1 && r->precision != old.run.precision &&
        (old.run.precision == TERN_PREC_FP32 || old.run.precision == TERN_PREC_MIXED)) {
        say(t, "resume: precision is auto: keeping the checkpoint's %s (auto would give %s here)%s", tern_precision_name(old.run.precision),
            tern_precision_name(r->precision), "");
        r->precision = old.run.precision;
    }
    const char *const *keys = tern_config_keys();
    char a[2 * TERN_PATH_MAX + 8], b[2 * TERN_PATH_MAX + 8];
    for (int i = 0; keys[i]; i++) {
        tern_config_format(&old, keys[i], a, sizeof a);
        tern_config_format(&t->cfg, keys[i], b, sizeof b);
        if (!strcmp(a, b)) continue;
        if (!safe_resume_key(keys[i])) {
            tern_error("%s: cannot resume: %s %s -> %s would change the run; keep %s = %s, or use --fresh to start over", latest,
                       keys[i], a, b, keys[i], a);
            return -1;
        }
        if (!strcmp(keys[i], "steps"))
            say(t, "resume: steps %s -> %s%s", a, b, r->schedule == TERN_SCHED_CONSTANT ? "" : " (the learning-rate schedule stretches from here)");
        else if (!strcmp(keys[i], "threads"))
            say(t, "resume: threads %s -> %s%s", a, b, " (sums run in another order: not bit-identical to an uninterrupted run)");
        else if (strcmp(keys[i], "train_data") && strcmp(keys[i], "val_data") && strcmp(keys[i], "tokenizer") &&
                 strcmp(keys[i], "init_from"))
            say(t, "resume: %s %s -> %s", keys[i], a, b);
        else if (strcmp(keys[i], "init_from"))
            say(t, "resume: %s %s -> %s", keys[i], a, b);
    }
    return 0;
}

// The token files against what the checkpoint recorded (format_version 2).
static int check_resume_data(tern_trainer *t, const char *latest, const tern_train_state *st) {
    if (st->train_tokens < 0) {
        say(t, "note: %s records no token-file identity (format_version 1): resuming trusts train_data%s%s", latest, "", "");
        return 0;
    }
    struct { const char *key, *path; long had; uint64_t had_hash; const tern_loader *ld; int open; } d[2] = {
        {"train_data", t->cfg.run.train_data, st->train_tokens, st->train_tok_hash, &t->train, 1},
        {"val_data", t->cfg.run.val_data, st->val_tokens, st->val_tok_hash, &t->val, t->has_val}};
    for (int i = 0; i < 2; i++) {
        long now = d[i].open ? (long)d[i].ld->tf.n_tokens : -1;
        uint64_t h = d[i].open ? d[i].ld->tf.tokenizer_hash : 0;
        if (now == d[i].had && (now < 0 || h == d[i].had_hash)) continue;
        if (i == 1 && now < 0) continue;   // validation data dropped: training itself is unchanged
        if (d[i].had < 0 || now < 0) {
            tern_error("%s: cannot resume: the run %s %s, now %s %s", latest, d[i].had < 0 ? "had no" : "used", d[i].key,
                       now < 0 ? "none is given" : "it is", now < 0 ? "" : d[i].path);
            return -1;
        }
        tern_error("%s: cannot resume: %s %s has %ld tokens (tokenizer %016llx), the run used %ld tokens (tokenizer %016llx)",
                   latest, d[i].key, d[i].path, now, (unsigned long long)h, d[i].had, (unsigned long long)d[i].had_hash);
        return -1;
    }
    return 0;
}

// The checkpoint's tokenizer against tokenizer= of the config (both embedded in every checkpoint).
static int check_resume_tokenizer(tern_trainer *t, const char *latest) {
    if (!t->cfg.run.tokenizer[0]) return 0;
    void *bytes = NULL;
    size_t n = 0;
    int rc = tern_checkpoint_read_tokenizer(latest, &bytes, &n);
    if (rc < 0) return -1;
    int same = rc == 0 || (n == t->tok_n && !memcmp(bytes, t->tok_bytes, n));
    free(bytes);
    if (!same) {
        tern_error("%s: cannot resume: tokenizer %s differs from the checkpoint's tokenizer", latest, t->cfg.run.tokenizer);
        return -1;
    }
    return 0;
}

// ---- init ------------------------------------------------------------------------------------------

// Rank 0: out_dir (created, locked, stale temporary files removed) and whether latest.h5 resumes.
static int prepare_run_dir(tern_trainer *t, int resume, int *resuming) {
    tern_run_config *r = &t->cfg.run;
    if (mkdir_run(r->out_dir) != 0 || lock_run_dir(t, r->out_dir) != 0) return -1;
    remove_stale_tmp(t, r->out_dir);
    char latest[4096];
    snprintf(latest, sizeof latest, "%s/latest.h5", r->out_dir);
    struct stat lst;
    *resuming = resume && lstat(latest, &lst) == 0;
    if (*resuming && access(latest, R_OK) != 0) {
        char target[1024] = "?";
        ssize_t k = readlink(latest, target, sizeof target - 1);
        if (k > 0) target[k] = 0;
        tern_error("%s: cannot resume: it points to %s, which %s (use --fresh to start over)", latest, target,
                   errno == ENOENT ? "does not exist" : strerror(errno));
        return -1;
    }
    return 0;
}

// Rank 0: tokenizer, then the starting weights: out_dir/latest.h5 (exact resume, after the checks
// that it continues the same run), init_from, or a fresh initialisation. When resuming, *st keeps
// the checkpoint's training state for check_resume_data once the token files are open.
static int load_start(tern_trainer *t, int resuming, tern_train_state *st, int64_t *resume_epoch, int64_t *resume_pos) {
    tern_run_config *r = &t->cfg.run;
    char latest[4096];
    snprintf(latest, sizeof latest, "%s/latest.h5", r->out_dir);
    if (r->tokenizer[0]) { // a .tkz or a tokenizer.json; checkpoints embed its .tkz bytes
        tern_tokenizer tk;
        void *bytes;
        size_t n;
        if (tern_tokenizer_load_any(&tk, r->tokenizer) != 0) return -1;
        tern_tokenizer_to_bytes(&tk, &bytes, &n);
        tern_tokenizer_free(&tk);
        if (open_tokenizer_bytes(t, bytes, n, r->tokenizer) != 0) return -1;
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
        if (tern_checkpoint_read_state(latest, st) < 0) return -1;
        int rc = check_resume_config(t, latest, st);
        tern_train_state_free(st);
        if (rc != 0 || check_resume_tokenizer(t, latest) != 0) return -1;
        rc = tern_checkpoint_load(latest, &mc, &t->model.params, st);
        if (rc < 0) return -1;
        if (rc == 0) { tern_error("%s: has no training state to resume from", latest); return -1; }
        t->step = st->step;
        t->tokens_seen = st->tokens_seen;
        t->rng.s = st->rng_state;
        *resume_epoch = st->loader_epoch; // applied once the loader is open
        *resume_pos = st->loader_pos;
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

int tern_trainer_init(tern_trainer *t, const tern_config *cfg, int resume) {
    memset(t, 0, sizeof *t);
    t->lock_fd = -1;
    t->cfg = *cfg;
    t->last_val_loss = NAN;
    tern_run_config *r = &t->cfg.run;
    t->rank = tern_dist_rank();
    t->ranks = tern_dist_size();
    int threads = r->threads;
    if (threads <= 0 && tern_dist_mpi() && !getenv("OMP_NUM_THREADS")) threads = tern_dist_default_threads();
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
    // rank 0 alone owns out_dir: lock, stale files, latest.h5 (the other ranks may not even see it)
    int resuming = 0;
    if (tern_dist_agree(t->rank == 0 ? prepare_run_dir(t, resume, &resuming) : 0) != 0) return -1;
    if (threads > 0) { omp_set_num_threads(threads); openblas_set_num_threads(threads); }
    if (tern_dist_agree(check_resources(t, resuming)) != 0) return -1;   // every rank: its own memory
    t->threads = omp_get_max_threads();
    tern_model_build(&t->model, &t->cfg.model);
    t->model.recompute = t->cfg.run.recompute;   // bit-identical gradients either way
    tern_rng_seed(&t->rng, r->seed);
    int have_state = 0;
    int64_t resume_epoch = 0, resume_pos = 0;
    tern_train_state st = {0};
    int rc = t->rank == 0 ? load_start(t, resuming, &st, &resume_epoch, &resume_pos) : 0;
    have_state = resuming;
    if (tern_dist_agree(rc) != 0) { tern_train_state_free(&st); return -1; }
    if (tern_dist_agree(share_start(t, &have_state, &resume_epoch, &resume_pos)) != 0) { tern_train_state_free(&st); return -1; }
    rc = open_data(t);
    if (rc == 0 && t->rank == 0 && have_state) rc = check_resume_data(t, t->last_ckpt, &st);
    tern_train_state_free(&st);
    if (rc == 0 && have_state) rc = tern_loader_set_pos(&t->train, resume_epoch, resume_pos);
    if (rc == 0 && r->teacher[0]) rc = open_teacher(t);   // every rank: each distils its own micro-batches
    if (tern_dist_agree(rc) != 0) return -1;
    if (check_same_data(t) != 0) return -1;
    tern_adamw_init_run(&t->opt, &t->model.params, r);
    tern_ddp_init(&t->ddp, &t->model.params, &t->opt, r->zero, r->bucket_mb, r->overlap);
    tern_ddp_share_state(&t->ddp, have_state);
    // the first block of the arena is the estimate (memory.h): no growth, no doubling on step 1
    tern_graph_init(&t->graph, tern_model_graph_nodes(&t->cfg.model), t->arena_bytes + ((size_t)1 << 20), 0);
    t->graph.profile = r->profile;
    t->graph.precision = r->precision;
    size_t bt = (size_t)r->batch * t->cfg.model.seq_len;
    t->inputs = tern_xmalloc(sizeof(int) * bt);
    t->targets = tern_xmalloc(sizeof(int) * bt);
    if (t->rank == 0) {
        char csv[4096];
        snprintf(csv, sizeof csv, "%s/train.csv", r->out_dir);
        rc = tern_trainlog_open(&t->log, csv, t->step);
    }
    if (tern_dist_agree(rc) != 0) return -1;
    char note[4200]; // what a fault report says about the run's state
    if (have_state) snprintf(note, sizeof note, "last checkpoint: %s", t->last_ckpt);
    else snprintf(note, sizeof note, "no checkpoint written yet");
    tern_dist_set_note(note);
    return 0;
}

// ---- steps -----------------------------------------------------------------------------------------

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
    int64_t ep0, pos0;
    tern_loader_get_pos(&t->train, &ep0, &pos0);
    tern_loader_skip(&t->train, lo);
    tern_ddp_step_begin(&t->ddp);
    double loss_sum = 0.0, ce_sum = 0.0, kl_sum = 0.0;
    int bad = 0;
    for (int a = 0; a < nmicro; a++) {
        // one process: a stop signal abandons the step between micro-batches (back to where it
        // started); several ranks finish the step together (the others' gradient sums wait for
        // this one) and tern_trainer_run stops them all after it
        if (a > 0 && t->ranks == 1 && stop_requested) {
            tern_loader_set_pos(&t->train, ep0, pos0);
            return 1;
        }
        long left = hi - lo - (long)a * B;
        int nb = (int)(left < B ? left : B);
        tern_loader_next_n(&t->train, nb, t->inputs, t->targets);
        tern_graph_reset(&t->graph);
        tern_ddp_micro_begin(&t->ddp, &t->graph, a, a == nmicro - 1);
        if (t->has_teacher) teacher_forward(t, t->inputs, NULL, nb, T);
        tern_tensor *loss;
        if (t->has_teacher) {   // (1 - alpha) CE + alpha T^2 KL(teacher || student)
            tern_tensor *logits = tern_model_forward(&t->model, &t->graph, t->inputs, nb, T);
            tern_tensor *ce = tern_cross_entropy(&t->graph, logits, t->targets, TERN_IGNORE_INDEX);
            tern_tensor *kl = tern_kl_distill(&t->graph, logits, t->teacher_logits, t->targets, TERN_IGNORE_INDEX, r->distill_temp);
            loss = tern_add(&t->graph, tern_scale(&t->graph, ce, 1.0f - r->distill_alpha), tern_scale(&t->graph, kl, r->distill_alpha));
            ce_sum += (double)ce->data[0] * nb;
            kl_sum += (double)kl->data[0] * nb;
        } else {
            loss = tern_model_loss(&t->model, &t->graph, t->inputs, t->targets, nb, T);
            ce_sum += (double)loss->data[0] * nb;
        }
        // a non-finite loss still runs its backward: the other ranks' gradient sums wait for it
        if (!isfinite(loss->data[0])) bad = 1;
        tern_backward(&t->graph, loss, (float)nb / (float)G);
        tern_ddp_micro_end(&t->ddp, &t->graph);
        loss_sum += (double)loss->data[0] * nb;
    }
    tern_loader_skip(&t->train, G - hi);
    double t_compute = tern_time() - t0;
    tern_ddp_sync(&t->ddp);
    double agg[4] = {loss_sum, (double)bad, ce_sum, kl_sum}, slowest = t_compute;
    tern_dist_sum_doubles(agg, 4);
    if (t->ranks > 1) { // how long this rank waited for the slowest one: not communication
        tern_dist_max_doubles(&slowest, 1);
        t->ddp.stats.t_skew += slowest - t_compute;
    }
    double mean = agg[0] / (double)G;
    if (agg[1] > 0 || !isfinite(mean)) {
        tern_error("non-finite loss (%g) at step %ld", mean, t->step + 1);
        tern_loader_set_pos(&t->train, ep0, pos0);
        return -1;
    }
    double gnorm;
    if (tern_ddp_optim_step(&t->ddp, t->step + 1, lr, wd, r->clip, &gnorm) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("step %ld: %s", t->step + 1, msg);
        tern_loader_set_pos(&t->train, ep0, pos0);
        return -1;
    }
    t->step++;
    t->tokens_seen += G * T;
    t->last_loss = (float)mean;
    t->last_ce = (float)(agg[2] / (double)G);
    t->last_kl = (float)(agg[3] / (double)G);
    t->last_gnorm = gnorm;
    if (t->steps_run++ == 0) { // the first step sizes arenas and faults pages in: not timed
        memset(&t->ddp.stats, 0, sizeof t->ddp.stats);
    } else {
        t->t_steps += tern_time() - t0;
        t->n_steps_timed++;
    }
    return 0;
}

// Evaluation runs forward only and exact: no gradients recorded, fp32 products whatever the
// training arithmetic (precision=mixed's bf16 products are for training steps)
typedef struct { int grad_enabled, precision; } eval_mode;
static eval_mode eval_mode_enter(tern_graph *g) {
    const eval_mode m = {g->grad_enabled, g->precision};
    g->grad_enabled = 0;
    g->precision = TERN_PREC_FP32;
    return m;
}
static void eval_mode_leave(tern_graph *g, eval_mode m) {
    g->grad_enabled = m.grad_enabled;
    g->precision = m.precision;
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
    const eval_mode saved = eval_mode_enter(&t->graph);
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
    eval_mode_leave(&t->graph, saved);
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
    long lo, hi; // this rank's windows
    tern_dist_split(want, t->rank, t->ranks, &lo, &hi);
    const eval_mode saved = eval_mode_enter(&t->graph);
    double total = 0.0;
    long done = lo;
    while (done < hi && !stop_requested) {
        int nb = (int)(hi - done < B ? hi - done : B);
        nb = tern_loader_eval_windows(&t->val, done, nb, t->inputs, t->targets);
        tern_graph_reset(&t->graph);
        total += (double)tern_model_loss(&t->model, &t->graph, t->inputs, t->targets, nb, T)->data[0] * nb;
        done += nb;
    }
    eval_mode_leave(&t->graph, saved);
    double agg[2] = {total, done < hi ? 1.0 : 0.0};   // a stop signal on any rank cuts the evaluation short
    tern_dist_sum_doubles(agg, 2);
    return agg[1] > 0 ? NAN : (float)(agg[0] / (double)want);
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
        st.train_tokens = (long)t->train.tf.n_tokens;
        st.train_tok_hash = t->train.tf.tokenizer_hash;
        st.val_tokens = t->has_val ? (long)t->val.tf.n_tokens : -1;
        st.val_tok_hash = t->has_val ? t->val.tf.tokenizer_hash : 0;
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
    tern_trainer_catch_signals();
    tern_dist_watch_stop(&stop_requested);
    tern_dist_install_mpirun_signals(&stop_requested);
    int quiet = t->quiet || t->rank != 0;
    tern_progress prog;
    tern_progress_init(&prog, stderr, r->log_interval > 0 ? r->log_interval : 10);
    long start_step = t->step, saved_step = t->step;
    double t_start = tern_time(), t_last = t_start;
    long tok_last = t->tokens_seen;
    int rc = 0;
    if (!quiet && t->step > 0) tern_progress_message(&prog, "resumed at step %ld from %s", t->step, t->last_ckpt);
    while (t->step < r->steps) {
        if (t->ranks > 1) { // every rank stops after the same step, with the signal any rank got
            double sig = (double)stop_requested;
            tern_dist_max_doubles(&sig, 1);
            if (sig > 0 && !stop_requested) stop_requested = (sig_atomic_t)sig;
        }
        if (stop_requested) break;
        int src = tern_trainer_step(t);   // collective: every rank fails the same step
        if (src == 1) break;   // stopped by a signal between micro-batches
        if (src != 0) {
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
        if (!quiet && t->has_teacher && (t->step % r->log_interval == 0 || t->step == r->steps))
            tern_progress_message(&prog, "step %ld: loss %.4f = %.2f·CE %.4f + %.2f·KL %.4f", t->step, t->last_loss,
                                  1.0 - r->distill_alpha, t->last_ce, r->distill_alpha, t->last_kl);
        float val = NAN;
        if (t->has_val && ((r->eval_interval > 0 && t->step % r->eval_interval == 0) || t->step == r->steps)) {
            val = tern_trainer_eval(t);
            t->last_val_loss = val;
            if (!quiet && !isnan(val)) tern_progress_message(&prog, "step %ld: val loss %.4f (ppl %.2f)", t->step, val, exp(val));
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
        if (stop_requested)
            fprintf(stderr, "interrupted by signal %d at step %ld: %s%s\n", (int)stop_requested, t->step,
                    t->step > start_step || t->last_ckpt[0] ? "checkpoint " : "no checkpoint written (no step done)",
                    t->step > start_step || t->last_ckpt[0] ? t->last_ckpt : "");
        if (r->profile) tern_graph_print_profile(&t->graph, stderr);
    }
    tern_dist_watch_stop(NULL);
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
    if (t->graph.nodes) tern_graph_free(&t->graph);
    tern_model_free(&t->model);
    if (t->has_teacher) {
        tern_model_free(&t->teacher);
        tern_graph_free(&t->teacher_graph);
        free(t->teacher_logits);
    }
    free(t->inputs);
    free(t->targets);
    if (t->lock_fd >= 0) close(t->lock_fd);   // releases the run lock
    memset(t, 0, sizeof *t);
    t->lock_fd = -1;
}
