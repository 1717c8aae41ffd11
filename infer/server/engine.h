// engine.h — tern-server's generation engine: N slots, each a sequence with its own KV cache,
// served by one thread that runs every active slot through ONE forward per step
// (forward_multi: one pass over the weights for all rows). Requests wait in a bounded FIFO queue
// and join between steps as slots free up (continuous batching); a step carries one decode row per
// generating slot plus prompt chunks of slots that are prefilling, up to `batch` rows. Each slot
// samples with its own seeded sampler on logits that equal a single-sequence forward's bit for bit,
// so a request's tokens do not depend on what else is running.
//
// A job is shared by the engine and one caller (an HTTP connection): the caller submits it, then
// takes its output as it comes (srv_job_take), and releases it; cancel (client gone) frees the
// slot at the next step. All job fields are guarded by the engine's mutex.
#ifndef TERN_SERVER_ENGINE_H
#define TERN_SERVER_ENGINE_H
#include "runtime.h"
#include "server/api.h"
#include "server/text.h"
#include <stdint.h>

typedef struct {
    long max_tokens;          // tokens to generate at most (>= 0; the context also ends a job)
    float temperature, top_p;
    int top_k;
    uint64_t seed;
    float presence_penalty, frequency_penalty;
    srv_bias *bias;           // copied by srv_job_new
    int n_bias;
    char *stop[SRV_MAX_STOPS + 4];   // copied by srv_job_new
    size_t stop_len[SRV_MAX_STOPS + 4];
    int n_stop;
    int logprobs;             // -1: off; else alternatives per token
    int first_text;           // 1: the first generated text token drops its leading space
                              // (the tokenizer's rule for the start of a text; chat replies)
} srv_gen;

typedef struct srv_engine srv_engine;
typedef struct srv_job srv_job;

typedef struct {
    int n_slots, ctx, batch, queue_max;
    const int *eog;           // end-of-generation token ids (EOS, end-of-turn), copied
    int n_eog;
} srv_engine_opts;

// The engine and its thread, or NULL + tern_error (bad options). m and tok must outlive it.
srv_engine *srv_engine_new(const tern_rt_model *m, const tern_tokenizer *tok, const srv_engine_opts *o);
// Stop taking work: queued and running jobs end with finish "error" (server shutting down),
// waiting callers wake up; the engine thread exits. The engine stays valid for releases.
void srv_engine_shutdown(srv_engine *e);
void srv_engine_free(srv_engine *e);   // after shutdown and after every job was released

// A job for the prompt ids[0..n) (taken over; 1 <= n < ctx). Returns it with one reference for the caller.
srv_job *srv_job_new(srv_engine *e, int *ids, int n, const srv_gen *g);
// Queue it (the engine takes its own reference). 0, or -1 with err: 429 when the queue is full,
// 503 when shutting down.
int srv_engine_submit(srv_engine *e, srv_job *j, srv_error *err);

typedef struct {
    int done;
    const char *finish_reason;   // "stop", "length"; "error" (then error holds the message)
    char error[160];
    srv_usage usage;
} srv_job_status;
// Wait up to timeout_ms for output not taken yet, or (end_only: a non-streaming caller, woken
// once instead of per token) for the end; append new text (well-formed UTF-8) to text and new
// logprob records to lp (realloc'd, *n_lp/*cap_lp updated). Returns 1 when the job is done and
// everything was taken (st filled), else 0.
int srv_job_take(srv_job *j, int timeout_ms, int end_only, srv_buf *text, srv_token_lp **lp, int *n_lp, int *cap_lp,
                 srv_job_status *st);
void srv_job_cancel(srv_job *j);
void srv_job_release(srv_job *j);      // drop the caller's reference (cancels a running job)

// Tests: while held, the engine still admits queued jobs into free slots and frees the slots of
// cancelled jobs, but runs no steps (so queue and slot states stay put for the test to look at).
void srv_engine_hold(srv_engine *e, int hold);

typedef struct {
    int slots, slots_busy, queued, queue_max;
    long long requests, finished, cancelled, rejected, prompt_tokens, generated_tokens, steps;
    // forward + sampling time of steps by their row count (1..SRV_STAT_ROWS; the last bucket: more)
#define SRV_STAT_ROWS 16
    long long step_count[SRV_STAT_ROWS + 1];
    double step_seconds[SRV_STAT_ROWS + 1];
    double step_cpu_seconds[SRV_STAT_ROWS + 1];   // the engine thread's own CPU time (its team's workers not counted)
} srv_engine_stats;
void srv_engine_get_stats(srv_engine *e, srv_engine_stats *s);

#endif
