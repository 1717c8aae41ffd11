// engine.c — see engine.h.
#include "server/engine.h"
#include "util.h"
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct srv_job {
    srv_engine *e;
    int refs;                 // caller + engine (while queued or running)
    int state, cancelled;
    int *ids, n_ids;          // the prompt
    srv_gen g;
    srv_job *next;            // queue
    pthread_cond_t cv;        // signalled at the end, and when output arrives while waiting == 1
    int waiting;              // the caller waits: 1 for output, 2 for the end only
    // output, appended by the engine, taken by the caller
    srv_buf out;
    size_t out_taken;
    srv_token_lp *lp;
    int n_lp, cap_lp, lp_taken;
    srv_job_status st;
};

typedef struct {
    srv_job *job;             // NULL: free
    tern_rt_state kv;         // this sequence's KV cache (and its one-token decode buffers)
    int pos;                  // tokens in the cache
    int n_prefilled;          // prompt tokens in the cache
    int last;                 // the token to feed next (generating)
    int order;                // admission order (older slots' prompts prefill first)
    tern_sampler sp;
    float *lg;                // [vocab] logits with bias / penalties applied
    int *counts;              // [vocab] times each token was generated (penalties)
    int had_text;             // a text token was generated (the first-token space rule)
    int n_gen;
    srv_buf raw;              // bytes of all generated tokens
    size_t released;          // raw bytes released to the job
    srv_token_lp *lps;        // records of generated tokens (logprobs on)
    int n_lps, cap_lps, lps_released;
    // this step's output, published under the lock
    srv_buf pend;
    int pend_lp_from;         // records before this one were published
    const char *finish;       // set when the job ends this step
} slot_t;

struct srv_engine {
    const tern_rt_model *m;
    const tern_tokenizer *tok;
    srv_engine_opts o;
    int *eog;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;        // new work or shutdown
    int stopping, held;
    srv_job *qhead, *qtail;
    int queued;
    slot_t *slots;
    int admitted;
    tern_rt_state work;       // activations of a step (batch rows)
    // a step's rows
    tern_rt_state **row_kv;
    int *row_tok, *row_pos, *row_slot, *out_rows, *out_slot;
    srv_engine_stats stats;
};

static void job_unref(srv_job *j) {   // under e->mu
    if (--j->refs > 0) return;
    pthread_cond_destroy(&j->cv);
    free(j->ids);
    free(j->g.bias);
    for (int i = 0; i < j->g.n_stop; i++) free(j->g.stop[i]);
    srv_buf_free(&j->out);
    free(j->lp);
    free(j);
}

// ---------------------------------------------------------------------------------------------
// jobs (caller side)

srv_job *srv_job_new(srv_engine *e, int *ids, int n, const srv_gen *g) {
    srv_job *j = tern_xcalloc(1, sizeof *j);
    j->e = e;
    j->refs = 1;
    j->ids = ids;
    j->n_ids = n;
    j->g = *g;
    if (g->n_bias) {
        j->g.bias = tern_xmalloc(sizeof(srv_bias) * (size_t)g->n_bias);
        memcpy(j->g.bias, g->bias, sizeof(srv_bias) * (size_t)g->n_bias);
    } else j->g.bias = NULL;
    for (int i = 0; i < g->n_stop; i++) {
        j->g.stop[i] = tern_xmalloc(g->stop_len[i] + 1);
        memcpy(j->g.stop[i], g->stop[i], g->stop_len[i] + 1);
    }
    pthread_condattr_t ca;   // timed waits count on the monotonic clock (ts_in)
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    return j;
}

int srv_engine_submit(srv_engine *e, srv_job *j, srv_error *err) {
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        srv_error_set(err, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        return -1;
    }
    int idle = e->o.n_slots;   // slots the engine has not filled yet take requests before the queue counts
    for (int i = 0; i < e->o.n_slots; i++) idle -= e->slots[i].job != NULL;
    if (e->queued >= e->o.queue_max + idle) {
        e->stats.rejected++;
        pthread_mutex_unlock(&e->mu);
        srv_error_set(err, 429, "rate_limit_error", "queue_full", NULL,
                      "the server is busy: all %d slots are generating and %d requests are waiting; retry later",
                      e->o.n_slots, e->o.queue_max);
        return -1;
    }
    j->refs++;
    j->state = JOB_QUEUED;
    j->next = NULL;
    if (e->qtail) e->qtail->next = j;
    else e->qhead = j;
    e->qtail = j;
    e->queued++;
    e->stats.requests++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static void ts_in(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

int srv_job_take(srv_job *j, int timeout_ms, int end_only, srv_buf *text, srv_token_lp **lp, int *n_lp, int *cap_lp,
                 srv_job_status *st) {
    srv_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    if (timeout_ms > 0 && j->state != JOB_DONE && (end_only || (j->out_taken == j->out.len && j->lp_taken == j->n_lp))) {
        struct timespec ts;
        ts_in(&ts, timeout_ms);
        j->waiting = end_only ? 2 : 1;
        while (j->state != JOB_DONE && (end_only || (j->out_taken == j->out.len && j->lp_taken == j->n_lp)))
            if (pthread_cond_timedwait(&j->cv, &e->mu, &ts) == ETIMEDOUT) break;
        j->waiting = 0;
    }
    if (j->out.len > j->out_taken) {
        srv_buf_add(text, j->out.p + j->out_taken, j->out.len - j->out_taken);
        j->out_taken = j->out.len;
    }
    if (j->n_lp > j->lp_taken && lp) {
        int k = j->n_lp - j->lp_taken;
        if (*n_lp + k > *cap_lp) {
            *cap_lp = (*n_lp + k) * 2;
            *lp = realloc(*lp, sizeof(srv_token_lp) * (size_t)*cap_lp);
            if (!*lp) tern_fatal("out of memory (logprobs)");
        }
        memcpy(*lp + *n_lp, j->lp + j->lp_taken, sizeof(srv_token_lp) * (size_t)k);
        *n_lp += k;
        j->lp_taken = j->n_lp;
    }
    int done = j->state == JOB_DONE;
    if (done && st) *st = j->st;
    pthread_mutex_unlock(&e->mu);
    return done;
}

void srv_job_cancel(srv_job *j) {
    srv_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    if (j->state != JOB_DONE && !j->cancelled) {
        j->cancelled = 1;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
}

void srv_job_release(srv_job *j) {
    if (!j) return;
    srv_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    if (j->state != JOB_DONE && !j->cancelled) {
        j->cancelled = 1;
        pthread_cond_signal(&e->cv);
    }
    job_unref(j);
    pthread_mutex_unlock(&e->mu);
}

void srv_engine_get_stats(srv_engine *e, srv_engine_stats *s) {
    pthread_mutex_lock(&e->mu);
    *s = e->stats;
    s->slots = e->o.n_slots;
    s->slots_busy = 0;
    for (int i = 0; i < e->o.n_slots; i++) s->slots_busy += e->slots[i].job != NULL;
    s->queued = e->queued;
    s->queue_max = e->o.queue_max;
    pthread_mutex_unlock(&e->mu);
}

// ---------------------------------------------------------------------------------------------
// the engine thread

// end a job (under e->mu): publish the end, drop the engine's reference
static void job_finish(srv_engine *e, srv_job *j, const char *finish, const char *error, int n_gen) {
    j->state = JOB_DONE;
    j->st.done = 1;
    j->st.finish_reason = finish;
    if (error) snprintf(j->st.error, sizeof j->st.error, "%s", error);
    j->st.usage.prompt = j->n_ids;
    j->st.usage.completion = n_gen;
    if (j->cancelled) e->stats.cancelled++;
    else e->stats.finished++;
    e->stats.generated_tokens += n_gen;
    pthread_cond_broadcast(&j->cv);
    job_unref(j);
}

static void slot_free(slot_t *s) {
    s->job = NULL;
    free_sampler(&s->sp);
    srv_buf_free(&s->raw);
    srv_buf_free(&s->pend);
    free(s->lps);
    s->lps = NULL;
    s->n_lps = s->cap_lps = s->lps_released = 0;
    s->pend_lp_from = 0;
    s->finish = NULL;
}

static void slot_start(srv_engine *e, slot_t *s, srv_job *j) {
    s->job = j;
    s->pos = 0;
    s->n_prefilled = 0;
    s->order = e->admitted++;
    s->had_text = 0;
    s->n_gen = 0;
    s->released = 0;
    s->finish = NULL;
    build_sampler(&s->sp, e->m->config.vocab_size, j->g.temperature, j->g.top_k, j->g.top_p, j->g.seed);
    if ((j->g.presence_penalty != 0.0f || j->g.frequency_penalty != 0.0f) && !s->counts)
        s->counts = tern_xcalloc((size_t)e->m->config.vocab_size, sizeof(int));
    if (s->counts) memset(s->counts, 0, sizeof(int) * (size_t)e->m->config.vocab_size);
    j->state = JOB_RUNNING;
    e->stats.prompt_tokens += j->n_ids;
}

static int is_eog(const srv_engine *e, int id) {
    for (int i = 0; i < e->o.n_eog; i++)
        if (e->eog[i] == id) return 1;
    return 0;
}

// logprob records: the chosen token and the top n alternatives, from the raw logits (log-softmax)
static void record_logprobs(slot_t *s, const float *lg, int V, int tok, int ntop, size_t offset) {
    float mx = lg[0];
    for (int i = 1; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)lg[i] - mx);
    const double lse = mx + log(sum);
    if (s->n_lps == s->cap_lps) {
        s->cap_lps = s->cap_lps ? 2 * s->cap_lps : 64;
        s->lps = realloc(s->lps, sizeof(srv_token_lp) * (size_t)s->cap_lps);
        if (!s->lps) tern_fatal("out of memory (logprobs)");
    }
    srv_token_lp *r = &s->lps[s->n_lps++];
    r->id = tok;
    r->logprob = (float)(lg[tok] - lse);
    r->offset = offset;
    r->n_top = 0;
    // top ntop by insertion (ntop <= 20): larger logit first, smaller id among equals
    for (int i = 0; i < V && ntop > 0; i++) {
        if (r->n_top == ntop && !(lg[i] > r->top[ntop - 1].logprob)) continue;
        int k = r->n_top < ntop ? r->n_top++ : ntop - 1;
        while (k > 0 && lg[i] > r->top[k - 1].logprob) { r->top[k] = r->top[k - 1]; k--; }
        r->top[k].id = i;
        r->top[k].logprob = lg[i];
    }
    for (int k = 0; k < r->n_top; k++) r->top[k].logprob = (float)(r->top[k].logprob - lse);
}

// Release raw[released .. limit) to this step's output, with the records of tokens starting there.
static void release_text(slot_t *s, size_t limit) {
    if (limit > s->released) {
        srv_utf8_repair(&s->pend, s->raw.p + s->released, limit - s->released);
        s->released = limit;
    }
    while (s->lps_released < s->n_lps && s->lps[s->lps_released].offset < limit) s->lps_released++;
}

// One sampled token of slot s: text, stop sequences, limits. Sets s->finish when the job ends.
static void slot_token(srv_engine *e, slot_t *s, const float *logits) {
    srv_job *j = s->job;
    const srv_gen *g = &j->g;
    const int V = e->m->config.vocab_size;
    const float *lg = logits;
    if (g->n_bias || s->counts) {
        memcpy(s->lg, logits, sizeof(float) * (size_t)V);
        for (int i = 0; i < g->n_bias; i++) s->lg[g->bias[i].id] += g->bias[i].bias;
        if (s->counts)
            for (int i = 0; i < V; i++)
                if (s->counts[i]) s->lg[i] -= g->frequency_penalty * (float)s->counts[i] + g->presence_penalty;
        lg = s->lg;
    }
    const int tok = sample(&s->sp, lg);
    s->n_gen++;
    if (s->counts) s->counts[tok]++;
    const size_t prev = s->raw.len;
    if (is_eog(e, tok)) {
        release_text(s, s->raw.len);
        s->finish = "stop";
        return;
    }
    if (g->logprobs >= 0) record_logprobs(s, logits, V, tok, g->logprobs, prev);
    char piece[TERN_TOK_MAX_PIECE + 8];
    int k = tern_tokenizer_decode_piece(e->tok, tok, g->first_text && !s->had_text, piece, sizeof piece);
    if (k > 0) {
        srv_buf_add(&s->raw, piece, (size_t)k);
        s->had_text = 1;
    }
    if (g->n_stop) {
        long at = srv_stop_find(s->raw.p, s->raw.len, prev, g->stop, g->stop_len, g->n_stop);
        if (at >= 0) {
            s->raw.len = (size_t)at;   // the stop sequence and what follows are not part of the text
            release_text(s, s->raw.len);
            s->finish = "stop";
            return;
        }
    }
    s->last = tok;
    if (s->n_gen >= g->max_tokens || s->pos >= s->kv.seq_len) {   // no room to feed it back
        release_text(s, s->raw.len);
        s->finish = "length";
        return;
    }
    size_t hold = g->n_stop ? srv_stop_partial(s->raw.p, s->raw.len, g->stop, g->stop_len, g->n_stop) : 0;
    size_t limit = s->raw.len - hold;
    if (limit > s->released) limit = s->released + srv_utf8_complete(s->raw.p + s->released, limit - s->released);
    release_text(s, limit);
}

// Build and run one step: decode rows of generating slots, then prompt chunks (oldest first) up to
// the batch budget. Returns the number of rows (0: nothing to do).
static int engine_step(srv_engine *e) {
    const int N = e->o.n_slots, B = e->o.batch;
    int n = 0, n_out = 0;
    for (int i = 0; i < N; i++) {
        slot_t *s = &e->slots[i];
        if (!s->job || s->n_prefilled < s->job->n_ids || s->finish) continue;
        e->row_kv[n] = &s->kv;
        e->row_tok[n] = s->last;
        e->row_pos[n] = s->pos;
        e->row_slot[n] = i;
        e->out_rows[n_out] = n;
        e->out_slot[n_out++] = i;
        n++;
    }
    for (;;) {   // prefilling slots by admission order
        slot_t *best = NULL;
        int bi = -1;
        for (int i = 0; i < N; i++) {
            slot_t *s = &e->slots[i];
            if (!s->job || s->n_prefilled >= s->job->n_ids || s->finish) continue;
            int queued_here = 0;
            for (int r = 0; r < n; r++) queued_here |= e->row_slot[r] == i;
            if (queued_here) continue;
            if (!best || s->order < best->order) { best = s; bi = i; }
        }
        if (!best || n >= B) break;
        const int take = best->job->n_ids - best->n_prefilled < B - n ? best->job->n_ids - best->n_prefilled : B - n;
        for (int t = 0; t < take; t++) {
            e->row_kv[n] = &best->kv;
            e->row_tok[n] = best->job->ids[best->n_prefilled + t];
            e->row_pos[n] = best->n_prefilled + t;
            e->row_slot[n] = bi;
            n++;
        }
        if (best->n_prefilled + take == best->job->n_ids) {
            e->out_rows[n_out] = n - 1;
            e->out_slot[n_out++] = bi;
        }
        if (n >= B) break;
    }
    if (!n) return 0;
    const float *lg = forward_multi(e->m, &e->work, e->row_kv, e->row_tok, e->row_pos, n, e->out_rows, n_out);
    for (int r = 0; r < n; r++) {   // the cache now holds these positions
        slot_t *s = &e->slots[e->row_slot[r]];
        if (s->n_prefilled < s->job->n_ids) s->n_prefilled++;
        s->pos++;
    }
    const int V = e->m->config.vocab_size;
    // slots sample independently (their own samplers, buffers and text); a large vocabulary is
    // worth splitting over the threads
    #pragma omp parallel for schedule(dynamic, 1) if (n_out > 1 && V >= 16384)
    for (int k = 0; k < n_out; k++) slot_token(e, &e->slots[e->out_slot[k]], lg + (size_t)k * V);
    e->stats.steps++;
    return n;
}

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *engine_main(void *arg) {
    srv_engine *e = arg;
    // a model under 4 MB of ternary weights runs its steps on this thread alone (as the runtime's
    // one-token decode does): waking a team for each of a step's ~60 small products costs more
    if (e->m->ternary_bytes < ((size_t)4 << 20)) omp_set_num_threads(1);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->stopping) break;
        int active = 0;
        for (int i = 0; i < e->o.n_slots; i++) {
            slot_t *s = &e->slots[i];
            if (s->job && s->job->cancelled) {   // client gone: free the slot now
                job_finish(e, s->job, "cancelled", NULL, s->n_gen);
                slot_free(s);
            }
            if (!s->job && e->qhead) {
                srv_job *j = e->qhead;
                e->qhead = j->next;
                if (!e->qhead) e->qtail = NULL;
                e->queued--;
                if (j->cancelled) { job_finish(e, j, "cancelled", NULL, 0); i--; continue; }
                slot_start(e, s, j);
            }
            active += s->job != NULL;
        }
        for (srv_job **pj = &e->qhead, *prev = NULL; *pj;) {   // cancelled while waiting
            srv_job *j = *pj;
            if (!j->cancelled) { prev = j; pj = &j->next; continue; }
            *pj = j->next;
            if (e->qtail == j) e->qtail = prev;
            e->queued--;
            job_finish(e, j, "cancelled", NULL, 0);
        }
        if (!active || e->held) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        const double t0 = tern_time(), c0 = thread_cpu();
        const int rows = engine_step(e);
        const double dt = tern_time() - t0, dc = thread_cpu() - c0;
        pthread_mutex_lock(&e->mu);
        const int b = rows < SRV_STAT_ROWS ? rows : SRV_STAT_ROWS;
        if (rows > 0) { e->stats.step_count[b]++; e->stats.step_seconds[b] += dt; e->stats.step_cpu_seconds[b] += dc; }
        for (int i = 0; i < e->o.n_slots; i++) {   // publish
            slot_t *s = &e->slots[i];
            srv_job *j = s->job;
            if (!j) continue;
            int news = s->pend.len > 0 || s->lps_released > s->pend_lp_from;
            if (s->pend.len) {
                srv_buf_add(&j->out, s->pend.p, s->pend.len);
                s->pend.len = 0;
            }
            if (s->lps_released > s->pend_lp_from) {
                int k = s->lps_released - s->pend_lp_from;
                if (j->n_lp + k > j->cap_lp) {
                    j->cap_lp = (j->n_lp + k) * 2;
                    j->lp = realloc(j->lp, sizeof(srv_token_lp) * (size_t)j->cap_lp);
                    if (!j->lp) tern_fatal("out of memory (logprobs)");
                }
                memcpy(j->lp + j->n_lp, s->lps + s->pend_lp_from, sizeof(srv_token_lp) * (size_t)k);
                j->n_lp += k;
                s->pend_lp_from = s->lps_released;
            }
            if (s->finish) {
                job_finish(e, j, s->finish, NULL, s->n_gen);
                slot_free(s);
            } else if (news && j->waiting == 1) pthread_cond_broadcast(&j->cv);
        }
    }
    // shutting down: fail what is left
    for (int i = 0; i < e->o.n_slots; i++)
        if (e->slots[i].job) {
            job_finish(e, e->slots[i].job, "error", "the server is shutting down", e->slots[i].n_gen);
            slot_free(&e->slots[i]);
        }
    while (e->qhead) {
        srv_job *j = e->qhead;
        e->qhead = j->next;
        e->queued--;
        job_finish(e, j, "error", "the server is shutting down", 0);
    }
    e->qtail = NULL;
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

srv_engine *srv_engine_new(const tern_rt_model *m, const tern_tokenizer *tok, const srv_engine_opts *o) {
    if (o->n_slots < 1 || o->ctx < 2 || o->ctx > m->config.seq_len || o->batch < o->n_slots || o->queue_max < 0) {
        tern_error("engine: bad options (slots %d, context %d of %d, batch %d, queue %d)", o->n_slots, o->ctx, m->config.seq_len,
                   o->batch, o->queue_max);
        return NULL;
    }
    srv_engine *e = tern_xcalloc(1, sizeof *e);
    e->m = m;
    e->tok = tok;
    e->o = *o;
    e->eog = tern_xmalloc(sizeof(int) * (size_t)(o->n_eog + 1));
    memcpy(e->eog, o->eog, sizeof(int) * (size_t)o->n_eog);
    e->o.eog = e->eog;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->slots = tern_xcalloc((size_t)o->n_slots, sizeof(slot_t));
    for (int i = 0; i < o->n_slots; i++) {
        if (build_state(&e->slots[i].kv, m, 1, o->ctx)) tern_fatal("engine: %s", tern_last_error());
        e->slots[i].lg = tern_xmalloc(sizeof(float) * (size_t)m->config.vocab_size);
    }
    if (build_state(&e->work, m, o->batch, o->ctx)) tern_fatal("engine: %s", tern_last_error());
    if (m->ternary_bytes < ((size_t)4 << 20)) {   // see engine_main: the slots' one-row steps too
        e->work.n_threads = 1;
        for (int i = 0; i < o->n_slots; i++) e->slots[i].kv.n_threads = 1;
    }
    e->row_kv = tern_xmalloc(sizeof(tern_rt_state *) * (size_t)o->batch);
    e->row_tok = tern_xmalloc(sizeof(int) * (size_t)o->batch);
    e->row_pos = tern_xmalloc(sizeof(int) * (size_t)o->batch);
    e->row_slot = tern_xmalloc(sizeof(int) * (size_t)o->batch);
    e->out_rows = tern_xmalloc(sizeof(int) * (size_t)o->batch);
    e->out_slot = tern_xmalloc(sizeof(int) * (size_t)o->batch);
    if (pthread_create(&e->thread, NULL, engine_main, e)) tern_fatal("engine: cannot start its thread");
    e->thread_started = 1;
    return e;
}

void srv_engine_hold(srv_engine *e, int hold) {
    pthread_mutex_lock(&e->mu);
    e->held = hold;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void srv_engine_shutdown(srv_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started) pthread_join(e->thread, NULL);
    e->thread_started = 0;
}

void srv_engine_free(srv_engine *e) {
    if (!e) return;
    if (e->thread_started) srv_engine_shutdown(e);
    for (int i = 0; i < e->o.n_slots; i++) {
        free_state(&e->slots[i].kv);
        free(e->slots[i].lg);
        free(e->slots[i].counts);
    }
    free(e->slots);
    free_state(&e->work);
    free(e->row_kv); free(e->row_tok); free(e->row_pos); free(e->row_slot); free(e->out_rows); free(e->out_slot);
    free(e->eog);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
