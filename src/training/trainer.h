// trainer.h — the training loop: data, model, AdamW, schedule, logging, evaluation, checkpoints.
// train/train.c is a thin command line over this; tests drive it directly.
//
// One optimizer step = grad_accum micro-batches of batch x seq_len tokens; the loss of each is
// scaled by 1/grad_accum so the gradient is the mean. Then: global grad norm → NaN/Inf check →
// clip → AdamW with the schedule's lr and weight decay (schedule.h). The BitLinear mode follows
// cfg.model.ternary, with the fp → ternary ramp λ (to_ternary_ramp) when fine-tuning.
//
// Resume is exact: a checkpoint holds weights, AdamW m and v, the step, the data loader position
// and the RNG state, so N straight steps and K steps + save + resume + N-K steps give
// bit-identical weights (same thread count). A resume checks that it continues the same run:
// the checkpoint's stored run config must agree with the new one on every key that changes the
// results (batch, seed, schedule, lr, ...: "cannot resume: batch 8 -> 16"), the token files must
// be the ones the run used (token count and tokenizer hash), and steps must not be lower than the
// checkpoint's step. Safe changes (more steps, eval_interval, eval_batches, ckpt_*, log_interval,
// threads, profile, max_memory, the data-parallel keys zero/bucket_mb/overlap, moved files) are
// allowed and printed, and so is another number of ranks (the global batches are the same). A
// latest.h5 that points at a missing file is an error, not a fresh start.
//
// One run per directory: init takes an exclusive lock (flock) on out_dir/.lock for the trainer's
// lifetime (on several ranks rank 0 alone takes it: the other ranks never touch out_dir); a second
// run on the same out_dir fails at once, naming the holder's pid. With the lock held, temporary
// files of killed runs (ckpt_*.h5.tmp.PID, latest.h5.tmp.PID, train.csv.tmp.PID) are removed.
//
// Memory: before allocating anything, init estimates what the run needs (training/memory.h) and
// refuses a config that exceeds max_memory or the machine's available memory (on several ranks
// every rank checks its own share: ZeRO-1 slices, the ranks on its node splitting the node's memory).
//
// Data parallel (several ranks under mpirun, dist/dist.h and dist/ddp.h; docs/DISTRIBUTED.md):
// batch × grad_accum sequences is the GLOBAL batch of a step on any number of ranks; `batch` is
// the micro-batch, the most sequences one forward/backward holds. The step's global batch is the
// next batch·grad_accum windows of the data order (loader.h, from seed and epoch only); rank r of
// N takes the contiguous share tern_dist_split gives it and runs it in micro-batches of at most
// `batch`, skipping the other ranks' windows, so every rank ends the step at the same loader
// position and a run resumed on another number of ranks sees the same global batches. Gradients
// are summed over ranks (ddp.h), the loss is the global mean, evaluation windows are split over
// the ranks and their losses summed. Rank 0 alone reads the starting checkpoint / tokenizer (and
// hands them to the others), writes checkpoints and train.csv and prints; the token files must be
// readable on every rank. Failures on some ranks are agreed on (tern_dist_agree) so every rank
// stops together, and only rank 0 reports them.
#ifndef TERN_TRAINER_H
#define TERN_TRAINER_H
#include "formats/checkpoint.h"
#include "model/config.h"
#include "training/loader.h"
#include "model/model.h"
#include "training/optim.h"
#include "tokenizers/tokenizer.h"
#include "training/trainlog.h"
#include "dist/ddp.h"

typedef struct {
    tern_config cfg;
    tern_model model;
    tern_adamw opt;
    tern_graph graph;
    tern_loader train, val;
    int has_val;
    tern_tokenizer tok;        // loaded when cfg.run.tokenizer (or the init checkpoint) has one
    int has_tok;
    void *tok_bytes;           // tokenizer file bytes, embedded in every checkpoint
    size_t tok_n;
    tern_rng rng;
    long step;                 // optimizer steps done
    long tokens_seen;
    int *inputs, *targets;     // (batch * seq_len,) current micro-batch
    tern_trainlog log;
    int quiet;                 // 1: no progress output (tests)
    char last_ckpt[4096];      // path of the newest checkpoint written or loaded
    float last_loss, last_val_loss;
    double last_gnorm;
    tern_ddp ddp;              // gradient sum over ranks and the (sharded) optimizer
    int rank, ranks;           // this process's rank, and how many there are (dist.h)
    int threads;               // OpenMP threads of this rank
    uint64_t weights_hash;     // tern_dist_hash of the weights at the last save, equal on every rank
    double t_steps;            // seconds spent in tern_trainer_step after the first (communication share)
    long n_steps_timed, steps_run;
    int lock_fd;               // out_dir/.lock, flock'd (-1: none)
    size_t arena_bytes;        // the estimated activation arena (memory.h), the graph's first block
} tern_trainer;

// SIGINT/SIGTERM: the first one asks the run to stop (the current micro-batch loop checks it; a
// checkpoint is written at the last completed step); programs install this before any slow
// start-up work. Returns the signal that stopped the run (0: none).
void tern_trainer_catch_signals(void);
int tern_trainer_stop_signal(void);

// Build everything from a validated config. resume: 1 = continue from out_dir/latest.h5 when it
// exists (exact resume), 0 = start fresh (init_from, if set, supplies the starting weights).
// 0, or -1 with tern_error. Call tern_trainer_free either way.
int tern_trainer_init(tern_trainer *t, const tern_config *cfg, int resume);
// One optimizer step. Returns 0, -1 on a non-finite loss or gradient (tern_error says where;
// parameters are left as they were before the step), or 1 when a stop signal arrived during its
// micro-batches (the step is abandoned: parameters, step count and data position unchanged).
int tern_trainer_step(tern_trainer *t);
// Mean validation loss over eval_batches micro-batches of sequential windows (or NAN without val data).
float tern_trainer_eval(tern_trainer *t);
// Write out_dir/ckpt_<step>.h5 (+ latest.h5, keep the newest ckpt_keep). 0 or -1. With several
// ranks every rank calls it (weights are checked identical across ranks, ZeRO-1 moments gathered);
// rank 0 writes.
int tern_trainer_save(tern_trainer *t);
// The whole run: steps until cfg.run.steps with progress line, CSV log, periodic evaluation and
// checkpoints; SIGINT/SIGTERM save a checkpoint and return (tern_trainer_stop_signal() says
// which: programs exit 128 + signal, so `tern-train && tern-export` does not export an unfinished
// model). 0 on success or interruption, -1 on error.
int tern_trainer_run(tern_trainer *t);
void tern_trainer_free(tern_trainer *t);
// One line describing the data-parallel setup (ranks, threads per rank, global batch in tokens).
void tern_trainer_describe(const tern_trainer *t, char *buf, size_t n);
// One line of communication figures after a run on several ranks (empty on one rank).
void tern_trainer_comm_report(const tern_trainer *t, char *buf, size_t n);

#endif
