// http.c — see http.h.
//
// Threads: libmicrohttpd runs each connection in a thread of its own (MHD_USE_THREAD_PER_CONNECTION),
// so a handler may block: a non-streaming request waits for its job inside the access handler, a
// streaming one inside the content reader. Both wait in slices of WAIT_MS and look at the socket in
// between: a client that closed its end is noticed within a slice and its job cancelled, which
// frees its slot at the engine's next step. The number of connections is capped (--max-conns).
//
// Slow senders: libmicrohttpd only times out a connection that is idle, so one byte every few
// seconds would hold a connection (and a thread) forever. A watchdog thread therefore gives every
// request `timeout_s` seconds from its first byte (or from the end of the previous request on a
// kept-alive connection) until its body is complete, and shuts the socket down when that runs out.
// A non-streaming request's connection has no idle timeout while its job runs (generation may take
// long); a stream keeps it and sends an SSE comment (": keep-alive") when it has had nothing to
// send for a third of it, so a client that stops reading is dropped (and its job cancelled).
#include "server/http.h"
#include "server/api.h"
#include "util.h"
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <omp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 50
#define STREAM_GAP_MS 10

typedef struct conn_rec {
    int fd;
    double start;           // when the current request began to arrive
    int reading;            // 1 until the current request's body is complete
    struct conn_rec *prev, *next;
} conn_rec;

struct srv_http {
    srv_http_opts o;
    struct MHD_Daemon *d;
    int port;
    long long created;
    pthread_mutex_t mu;     // conns and counters below
    conn_rec *conns;
    int n_conns;
    long long n_requests, n_2xx, n_4xx, n_5xx, n_timeouts, n_disconnects;
    pthread_t watchdog;
    int watchdog_stop;
    pthread_cond_t wcv;
    atomic_ullong id_counter;
};

enum { R_NONE, R_HEALTH, R_MODELS, R_MODEL, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE, R_NOT_FOUND, R_BAD_METHOD };

typedef struct {
    int route;
    const char *allow;      // R_BAD_METHOD: the allowed method
    char url[128];
    srv_buf body;
    int too_large;
    int refused;            // 401/404/405 found from the headers, answered once the body has been
                            // read (and dropped), so that the connection can stay open
    char method[16];
    size_t dropped;         // body bytes of a refused request (not kept)
    conn_rec *rec;
    double t0;
    int status;
} req_t;

static double now_s(void) { return tern_time(); }

static void count_status(srv_http *h, int status) {
    pthread_mutex_lock(&h->mu);
    h->n_requests++;
    if (status < 300) h->n_2xx++;
    else if (status < 500) h->n_4xx++;
    else h->n_5xx++;
    pthread_mutex_unlock(&h->mu);
}

// ---------------------------------------------------------------------------------------------
// responses

static enum MHD_Result send_body(struct MHD_Connection *c, req_t *rq, int status, char *body, size_t len, const char *ctype) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(body); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (status == 429) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (status == 405 && rq && rq->allow) MHD_add_response_header(r, "Allow", rq->allow);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (rq) rq->status = status;
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, req_t *rq, int status, json_t *root) {
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!s) return MHD_NO;
    return send_body(c, rq, status, s, strlen(s), "application/json");
}

static enum MHD_Result send_error(struct MHD_Connection *c, req_t *rq, const srv_error *e) {
    size_t n;
    char *s = srv_error_json(e, &n);
    return send_body(c, rq, e->status, s, n, "application/json");
}

static enum MHD_Result fail(struct MHD_Connection *c, req_t *rq, int status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result fail(struct MHD_Connection *c, req_t *rq, int status, const char *type, const char *code, const char *fmt, ...) {
    srv_error e;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv_error_set(&e, status, type, code, NULL, "%s", msg);
    return send_error(c, rq, &e);
}

// ---------------------------------------------------------------------------------------------
// the client's end of the socket

static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 1;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return 1;
    if (p.revents & POLLIN) {   // EOF, or a pipelined next request (left for libmicrohttpd)
        char ch;
        ssize_t k = recv(ci->connect_fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
        return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return 0;
}

static void set_timeout(struct MHD_Connection *c, int seconds) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)seconds);
}

// ---------------------------------------------------------------------------------------------
// generation endpoints

typedef struct {
    srv_http *h;
    struct MHD_Connection *c;
    srv_job *job;
    srv_resp resp;
    char id[48];
    int include_usage;
    int n_prompt;
    int role_sent;
    char *echo;             // text to send first (echo), or NULL
    size_t echo_len;
    srv_buf text;           // taken but not yet formatted
    srv_token_lp *lp;
    int n_lp, cap_lp;
    srv_buf out;            // formatted, not yet sent
    size_t out_pos;
    int finished;           // [DONE] formatted
    int gone;
    int completion_tokens;
    double last_event;      // when output was last taken
    double last_out;        // when bytes were last handed to libmicrohttpd
    double keepalive_s;     // send an SSE comment after this long without output
} stream_t;

static void new_id(srv_http *h, char *out, size_t n, const char *prefix) {
    unsigned long long k = atomic_fetch_add(&h->id_counter, 1) + 1;
    snprintf(out, n, "%s%08llx%016llx", prefix, (unsigned long long)h->created & 0xffffffffull, k * 0x9E3779B97F4A7C15ull);
}

// format what was taken into SSE events (after the job ended: the end too)
static void stream_format(stream_t *s, int done, const srv_job_status *st) {
    const srv_resp *r = &s->resp;
    for (int i = 0; i < s->n_lp; i++) s->lp[i].offset += s->echo_len;   // offsets count the echoed prompt too
    if (!s->role_sent) {
        if (r->kind == SRV_CHAT) srv_sse_chunk(&s->out, r, "", 0, NULL, 0, NULL, NULL, 1, 0);
        else if (s->echo) srv_sse_chunk(&s->out, r, s->echo, s->echo_len, NULL, 0, NULL, NULL, 0, 0);
        s->role_sent = 1;
    }
    if (!done) {
        if (s->text.len || s->n_lp) srv_sse_chunk(&s->out, r, s->text.p ? s->text.p : "", s->text.len, s->lp, s->n_lp, NULL, NULL, 0, 0);
    } else if (!strcmp(st->finish_reason, "error") || !strcmp(st->finish_reason, "cancelled")) {
        srv_error e;
        srv_error_set(&e, 503, "server_error", "shutting_down", NULL, "%s", st->error[0] ? st->error : "generation was stopped");
        size_t n;
        char *body = srv_error_json(&e, &n);
        srv_buf_adds(&s->out, "data: ");
        srv_buf_add(&s->out, body, n);
        srv_buf_adds(&s->out, "\n\n");
        free(body);
        srv_buf_adds(&s->out, "data: [DONE]\n\n");
        s->finished = 1;
    } else {
        s->completion_tokens = st->usage.completion;
        srv_sse_chunk(&s->out, r, s->text.p ? s->text.p : "", s->text.len, s->lp, s->n_lp, st->finish_reason, &st->usage, 0, 0);
        if (s->include_usage) srv_sse_chunk(&s->out, r, "", 0, NULL, 0, NULL, &st->usage, 0, 1);
        srv_buf_adds(&s->out, "data: [DONE]\n\n");
        s->finished = 1;
    }
    s->text.len = 0;
    s->n_lp = 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_t *s = cls;
    for (;;) {
        if (s->out_pos < s->out.len) {
            size_t k = s->out.len - s->out_pos < max ? s->out.len - s->out_pos : max;
            memcpy(buf, s->out.p + s->out_pos, k);
            s->out_pos += k;
            s->last_out = tern_time();
            if (s->out_pos == s->out.len) s->out_pos = s->out.len = 0;
            return (ssize_t)k;
        }
        if (s->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        const double now = tern_time();
        if (s->role_sent && now - s->last_out >= s->keepalive_s) {   // nothing to send for a while: an
            srv_buf_adds(&s->out, ": keep-alive\n\n");                // SSE comment keeps the connection active
            s->last_out = now;
            continue;
        }
        srv_job_status st;
        // at most one event per STREAM_GAP_MS: a fast model's tokens go out in groups instead of
        // waking this thread (and taking the engine's lock) once per token
        const double since = tern_time() - s->last_event;
        if (s->role_sent && since < STREAM_GAP_MS * 1e-3) usleep((useconds_t)((STREAM_GAP_MS * 1e-3 - since) * 1e6));
        int done = srv_job_take(s->job, WAIT_MS, 0, &s->text, &s->lp, &s->n_lp, &s->cap_lp, &st);
        if (s->text.len || s->n_lp) s->last_event = tern_time();
        if (done || s->text.len || s->n_lp || !s->role_sent) stream_format(s, done, &st);
        else if (client_gone(s->c)) {
            srv_job_cancel(s->job);
            s->gone = 1;
            pthread_mutex_lock(&s->h->mu);
            s->h->n_disconnects++;
            pthread_mutex_unlock(&s->h->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    stream_t *s = cls;
    srv_job_release(s->job);
    srv_buf_free(&s->text);
    srv_buf_free(&s->out);
    free(s->lp);
    free(s->echo);
    free(s);
}

static uint64_t random_seed(srv_http *h) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tern_rng r;
    tern_rng_seed(&r, (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (atomic_fetch_add(&h->id_counter, 1) * 0x9E3779B97F4A7C15ull));
    return tern_rng_u64(&r);
}

static enum MHD_Result handle_generate(srv_http *h, struct MHD_Connection *c, req_t *rq, int kind) {
    const srv_http_opts *o = &h->o;
    srv_request r;
    srv_error e;
    if (srv_parse_request(rq->body.p ? rq->body.p : "", rq->body.len, kind, o->m->config.vocab_size, &r, &e)) return send_error(c, rq, &e);
    if (r.model && strcmp(r.model, o->model_id) != 0) {
        srv_error_set(&e, 404, "invalid_request_error", "model_not_found", "model",
                      "the model '%.200s' does not exist; this server serves '%.200s' (GET /v1/models)", r.model, o->model_id);
        srv_request_free(&r);
        return send_error(c, rq, &e);
    }
    // the prompt's tokens
    int *ids = NULL, n = 0;
    char *echo = NULL;
    size_t echo_len = 0;
    const int bos = o->m->vocab.add_bos ? o->tok->bos_id : -1;
    if (kind == SRV_COMPLETION) {
        if (r.prompt_is_ids) {
            ids = r.prompt_ids;
            n = r.n_prompt_ids;
            r.prompt_ids = NULL;
            if (r.echo && tern_tokenizer_decode(o->tok, ids, (size_t)n, &echo, &echo_len)) echo = NULL;
        } else {
            if (tern_tokenizer_encode(o->tok, r.prompt, r.prompt_len, bos >= 0, &ids, &n)) {
                srv_error_set(&e, 400, "invalid_request_error", NULL, "prompt", "the prompt could not be tokenized: %s", tern_last_error());
                srv_request_free(&r);
                return send_error(c, rq, &e);
            }
            if (r.echo) { echo = r.prompt; echo_len = r.prompt_len; r.prompt = NULL; }
        }
    } else {
        srv_chat_prompt cp;
        srv_chat_render(o->tmpl, r.messages, r.n_messages, &cp);
        int rc = srv_chat_tokenize(o->tok, &cp, bos, &ids, &n);
        srv_chat_prompt_free(&cp);
        if (rc) {
            srv_error_set(&e, 400, "invalid_request_error", NULL, "messages", "the messages could not be tokenized: %s", tern_last_error());
            srv_request_free(&r);
            return send_error(c, rq, &e);
        }
    }
    if (n < 1 || n >= o->ctx) {
        if (n < 1) srv_error_set(&e, 400, "invalid_request_error", NULL, kind == SRV_CHAT ? "messages" : "prompt", "the prompt has no tokens");
        else
            srv_error_set(&e, 400, "invalid_request_error", "context_length_exceeded", kind == SRV_CHAT ? "messages" : "prompt",
                          "this model's context is %d tokens per request; the prompt has %d tokens (at most %d leave room to generate)",
                          o->ctx, n, o->ctx - 1);
        free(ids);
        free(echo);
        srv_request_free(&r);
        return send_error(c, rq, &e);
    }
    srv_gen g = {0};
    long room = o->ctx - n;
    g.max_tokens = r.max_tokens >= 0 ? r.max_tokens : kind == SRV_COMPLETION ? 16 : room;
    if (g.max_tokens > room) g.max_tokens = room;
    g.temperature = r.temperature;
    g.top_p = r.top_p;
    g.top_k = r.top_k;
    g.seed = r.has_seed ? r.seed : random_seed(h);
    g.presence_penalty = r.presence_penalty;
    g.frequency_penalty = r.frequency_penalty;
    g.bias = r.bias;
    g.n_bias = r.n_bias;
    for (int i = 0; i < r.n_stop; i++) { g.stop[g.n_stop] = r.stop[i]; g.stop_len[g.n_stop++] = r.stop_len[i]; }
    if (kind == SRV_CHAT) {
        const char *extra[4];
        int k = srv_chat_stops(o->tmpl, extra, 4);
        for (int i = 0; i < k; i++) { g.stop[g.n_stop] = (char *)extra[i]; g.stop_len[g.n_stop++] = strlen(extra[i]); }
    }
    g.logprobs = r.logprobs;
    // the tokenizer drops the leading space of a text's first piece: a chat reply is a new text, a
    // completion continues its prompt's text (if the prompt has any), as tern-generate prints it
    g.first_text = 1;
    for (int i = 0; i < n && kind == SRV_COMPLETION && g.first_text; i++) {
        char piece[TERN_TOK_MAX_PIECE + 8];
        if (tern_tokenizer_decode_piece(o->tok, ids[i], 1, piece, sizeof piece) > 0) g.first_text = 0;
    }
    srv_resp resp = {.kind = kind, .model = o->model_id, .created = (long long)time(NULL), .tok = o->tok, .logprobs = r.logprobs};
    const int stream = r.stream, include_usage = r.include_usage;
    if (g.max_tokens == 0) {   // nothing to generate: the prompt's usage only
        char id[48];
        new_id(h, id, sizeof id, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
        resp.id = id;
        srv_usage u = {n, 0};
        srv_request_free(&r);
        free(ids);
        if (stream) {
            srv_buf out = {0};
            if (kind == SRV_CHAT) srv_sse_chunk(&out, &resp, "", 0, NULL, 0, NULL, NULL, 1, 0);
            srv_sse_chunk(&out, &resp, echo ? echo : "", echo ? echo_len : 0, NULL, 0, "length", &u, 0, 0);
            if (include_usage) srv_sse_chunk(&out, &resp, "", 0, NULL, 0, NULL, &u, 0, 1);
            srv_buf_adds(&out, "data: [DONE]\n\n");
            free(echo);
            return send_body(c, rq, 200, out.p, out.len, "text/event-stream");
        }
        size_t len;
        char *body = srv_json_response(&resp, echo ? echo : "", echo ? echo_len : 0, NULL, 0, "length", u, &len);
        free(echo);
        return send_body(c, rq, 200, body, len, "application/json");
    }
    srv_job *job = srv_job_new(o->engine, ids, n, &g);   // copies stops and bias
    srv_request_free(&r);
    if (srv_engine_submit(o->engine, job, &e)) {
        srv_job_release(job);
        free(echo);
        return send_error(c, rq, &e);
    }
    if (stream) {
        // The connection keeps its idle timeout: the stream sends at least a comment every third of
        // it, so only a client that stops reading (its socket fills up) runs into it; its job is
        // then cancelled when libmicrohttpd drops the response.
        stream_t *s = tern_xcalloc(1, sizeof *s);
        s->h = h;
        s->c = c;
        s->job = job;
        s->resp = resp;
        new_id(h, s->id, sizeof s->id, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
        s->resp.id = s->id;
        s->include_usage = include_usage;
        s->n_prompt = n;
        s->echo = echo;
        s->echo_len = echo_len;
        s->keepalive_s = o->timeout_s / 3.0 > 1.0 ? o->timeout_s / 3.0 : 1.0;
        s->last_out = tern_time();
        struct MHD_Response *resp_h = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s, stream_free);
        if (!resp_h) { stream_free(s); return MHD_NO; }
        MHD_add_response_header(resp_h, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp_h, "Cache-Control", "no-cache");
        enum MHD_Result rc = MHD_queue_response(c, 200, resp_h);
        MHD_destroy_response(resp_h);
        rq->status = 200;
        return rc;
    }
    // non-streaming: wait here (this connection's own thread), without the idle timeout: the
    // generation may take longer, and the client has nothing to read until it ends
    set_timeout(c, 0);
    srv_buf text = {0};
    srv_token_lp *lp = NULL;
    int n_lp = 0, cap_lp = 0;
    srv_job_status st;
    while (!srv_job_take(job, WAIT_MS, 1, &text, &lp, &n_lp, &cap_lp, &st)) {
        if (client_gone(c)) {
            srv_job_release(job);
            srv_buf_free(&text);
            free(lp);
            free(echo);
            pthread_mutex_lock(&h->mu);
            h->n_disconnects++;
            pthread_mutex_unlock(&h->mu);
            rq->status = 499;
            return MHD_NO;   // close the connection
        }
    }
    srv_job_release(job);
    set_timeout(c, o->timeout_s);
    enum MHD_Result rc;
    if (!strcmp(st.finish_reason, "error") || !strcmp(st.finish_reason, "cancelled")) {
        rc = fail(c, rq, 503, "server_error", "shutting_down", "%s", st.error[0] ? st.error : "generation was stopped");
    } else {
        char id[48];
        new_id(h, id, sizeof id, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-");
        resp.id = id;
        srv_buf all = {0};
        if (echo) {
            srv_buf_add(&all, echo, echo_len);
            for (int i = 0; i < n_lp; i++) lp[i].offset += echo_len;
        }
        srv_buf_add(&all, text.p ? text.p : "", text.len);
        size_t len;
        char *body = srv_json_response(&resp, all.p, all.len, lp, n_lp, st.finish_reason, st.usage, &len);
        srv_buf_free(&all);
        rc = send_body(c, rq, 200, body, len, "application/json");
    }
    srv_buf_free(&text);
    free(lp);
    free(echo);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// other endpoints

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long pages = 0, res = 0;
    int k = fscanf(f, "%ld %ld", &pages, &res);
    fclose(f);
    return k == 2 ? res * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static enum MHD_Result handle_health(srv_http *h, struct MHD_Connection *c, req_t *rq) {
    srv_engine_stats st;
    srv_engine_get_stats(h->o.engine, &st);
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    json_object_set_new(o, "model", json_string(h->o.model_id));
    json_object_set_new(o, "slots_total", json_integer(st.slots));
    json_object_set_new(o, "slots_busy", json_integer(st.slots_busy));
    json_object_set_new(o, "slots_idle", json_integer(st.slots - st.slots_busy));
    json_object_set_new(o, "queue", json_integer(st.queued));
    json_object_set_new(o, "queue_limit", json_integer(st.queue_max));
    json_object_set_new(o, "jobs_submitted", json_integer(st.requests));
    json_object_set_new(o, "jobs_finished", json_integer(st.finished));
    json_object_set_new(o, "jobs_cancelled", json_integer(st.cancelled));
    json_object_set_new(o, "jobs_rejected", json_integer(st.rejected));
    json_object_set_new(o, "prompt_tokens", json_integer(st.prompt_tokens));
    json_object_set_new(o, "generated_tokens", json_integer(st.generated_tokens));
    json_object_set_new(o, "steps", json_integer(st.steps));
    json_t *sm = json_object();   // mean milliseconds per step (forward + sampling) by rows in the step
    for (int b = 1; b <= SRV_STAT_ROWS; b++)
        if (st.step_count[b]) {
            char k[16];
            snprintf(k, sizeof k, b < SRV_STAT_ROWS ? "%d" : "%d+", b);
            json_object_set_new(sm, k, json_real(1e3 * st.step_seconds[b] / (double)st.step_count[b]));
        }
    json_object_set_new(o, "step_ms_by_rows", sm);
    json_t *cm = json_object();   // the same in CPU time of the engine thread (not its OpenMP workers)
    for (int b = 1; b <= SRV_STAT_ROWS; b++)
        if (st.step_count[b]) {
            char k[16];
            snprintf(k, sizeof k, b < SRV_STAT_ROWS ? "%d" : "%d+", b);
            json_object_set_new(cm, k, json_real(1e3 * st.step_cpu_seconds[b] / (double)st.step_count[b]));
        }
    json_object_set_new(o, "step_cpu_ms_by_rows", cm);
    pthread_mutex_lock(&h->mu);
    json_object_set_new(o, "connections", json_integer(h->n_conns));
    json_object_set_new(o, "http_requests", json_integer(h->n_requests));
    json_object_set_new(o, "http_2xx", json_integer(h->n_2xx));
    json_object_set_new(o, "http_4xx", json_integer(h->n_4xx));
    json_object_set_new(o, "http_5xx", json_integer(h->n_5xx));
    json_object_set_new(o, "timeouts", json_integer(h->n_timeouts));
    json_object_set_new(o, "disconnects", json_integer(h->n_disconnects));
    pthread_mutex_unlock(&h->mu);
    json_object_set_new(o, "rss_kb", json_integer(rss_kb()));
    return send_json(c, rq, 200, o);
}

static json_t *model_json(srv_http *h) {
    const tern_rt_config *cf = &h->o.m->config;
    json_t *m = json_object(), *meta = json_object();
    json_object_set_new(m, "id", json_string(h->o.model_id));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(h->created));
    json_object_set_new(m, "owned_by", json_string("tern"));
    json_object_set_new(meta, "n_vocab", json_integer(cf->vocab_size));
    json_object_set_new(meta, "n_ctx_train", json_integer(cf->seq_len));
    json_object_set_new(meta, "n_ctx", json_integer(h->o.ctx));
    json_object_set_new(meta, "n_embd", json_integer(cf->dim));
    json_object_set_new(meta, "n_layer", json_integer(cf->n_layers));
    json_object_set_new(meta, "n_params_ternary", json_integer(h->o.m->n_ternary));
    json_object_set_new(meta, "chat_template", json_string(srv_chat_name(h->o.tmpl)));
    json_object_set_new(m, "meta", meta);
    return m;
}

static enum MHD_Result handle_models(srv_http *h, struct MHD_Connection *c, req_t *rq) {
    json_t *o = json_object(), *data = json_array();
    json_array_append_new(data, model_json(h));
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    return send_json(c, rq, 200, o);
}

static enum MHD_Result handle_model(srv_http *h, struct MHD_Connection *c, req_t *rq) {
    const char *id = rq->url + strlen(strncmp(rq->url, "/v1/", 4) ? "/models/" : "/v1/models/");
    if (strcmp(id, h->o.model_id) != 0)
        return fail(c, rq, 404, "invalid_request_error", "model_not_found", "the model '%.200s' does not exist", id);
    return send_json(c, rq, 200, model_json(h));
}

static json_t *jbytes(const char *s, size_t n) {
    srv_buf b = {0};
    srv_utf8_repair(&b, s, n);
    json_t *j = json_stringn(b.p ? b.p : "", b.len);
    srv_buf_free(&b);
    return j ? j : json_string("");
}

static enum MHD_Result handle_tokenize(srv_http *h, struct MHD_Connection *c, req_t *rq) {
    char *content;
    size_t len;
    int add_special, with_pieces;
    srv_error e;
    if (srv_parse_tokenize(rq->body.p ? rq->body.p : "", rq->body.len, &content, &len, &add_special, &with_pieces, &e))
        return send_error(c, rq, &e);
    int *ids = NULL, n = 0;
    int rc = tern_tokenizer_encode(h->o.tok, content, len, add_special && h->o.m->vocab.add_bos, &ids, &n);
    free(content);
    if (rc) return fail(c, rq, 400, "invalid_request_error", NULL, "the content could not be tokenized: %s", tern_last_error());
    json_t *o = json_object(), *arr = json_array();
    for (int i = 0; i < n; i++) {
        if (!with_pieces) { json_array_append_new(arr, json_integer(ids[i])); continue; }
        char piece[TERN_TOK_MAX_PIECE + 8];
        int k = tern_tokenizer_decode_piece(h->o.tok, ids[i], 0, piece, sizeof piece);
        json_t *p = json_object();
        json_object_set_new(p, "id", json_integer(ids[i]));
        json_object_set_new(p, "piece", jbytes(piece, k > 0 ? (size_t)k : 0));
        json_array_append_new(arr, p);
    }
    free(ids);
    json_object_set_new(o, "tokens", arr);
    return send_json(c, rq, 200, o);
}

static enum MHD_Result handle_detokenize(srv_http *h, struct MHD_Connection *c, req_t *rq) {
    int *ids, n;
    srv_error e;
    if (srv_parse_detokenize(rq->body.p ? rq->body.p : "", rq->body.len, h->o.m->config.vocab_size, &ids, &n, &e)) return send_error(c, rq, &e);
    char *text = NULL;
    size_t len = 0;
    int rc = tern_tokenizer_decode(h->o.tok, ids, (size_t)n, &text, &len);
    free(ids);
    if (rc) return fail(c, rq, 400, "invalid_request_error", NULL, "%s", tern_last_error());
    json_t *o = json_object();
    json_object_set_new(o, "content", jbytes(text, len));
    free(text);
    return send_json(c, rq, 200, o);
}

// ---------------------------------------------------------------------------------------------
// routing and the libmicrohttpd callbacks

static int route_of(const char *url, const char *method, const char **allow) {
    static const struct { const char *path; const char *method; int route; } routes[] = {
        {"/health", "GET", R_HEALTH},          {"/v1/health", "GET", R_HEALTH},
        {"/v1/models", "GET", R_MODELS},       {"/models", "GET", R_MODELS},
        {"/v1/completions", "POST", R_COMPLETIONS}, {"/completions", "POST", R_COMPLETIONS},
        {"/v1/chat/completions", "POST", R_CHAT},   {"/chat/completions", "POST", R_CHAT},
        {"/tokenize", "POST", R_TOKENIZE},     {"/detokenize", "POST", R_DETOKENIZE},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path) != 0) continue;
        if (!strcmp(method, routes[i].method) || (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) return routes[i].route;
        *allow = routes[i].method;
        return R_BAD_METHOD;
    }
    if (!strncmp(url, "/v1/models/", 11) || !strncmp(url, "/models/", 8)) {
        if (!strcmp(method, "GET")) return R_MODEL;
        *allow = "GET";
        return R_BAD_METHOD;
    }
    return R_NOT_FOUND;
}

// the answer to a request refused from its headers alone (rq->refused: 401, 404 or 405)
static enum MHD_Result refuse(struct MHD_Connection *c, req_t *rq) {
    if (rq->refused == 404)
        return fail(c, rq, 404, "invalid_request_error", "not_found", "no endpoint %.15s %.100s (see GET /v1/models, POST /v1/completions, POST /v1/chat/completions)", rq->method, rq->url);
    if (rq->refused == 405) return fail(c, rq, 405, "invalid_request_error", "method_not_allowed", "%.100s needs %s", rq->url, rq->allow);
    return fail(c, rq, 401, "invalid_request_error", "invalid_api_key", "missing or wrong API key (send the header 'Authorization: Bearer KEY')");
}

static int key_ok(srv_http *h, struct MHD_Connection *c) {
    if (!h->o.api_key) return 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0) return 0;
    a += 7;
    while (*a == ' ') a++;
    const size_t n = strlen(a), m = strlen(h->o.api_key);
    unsigned char diff = (unsigned char)(n != m);   // compare all bytes: time does not depend on where they differ
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)(a[i < n ? i : 0] ^ h->o.api_key[i]);
    return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    srv_http *h = cls;
    req_t *rq = *con_cls;
    if (!rq) {   // headers are in
        omp_set_num_threads(1);   // a connection thread's tokenizer calls stay on it
        rq = tern_xcalloc(1, sizeof *rq);
        *con_cls = rq;
        rq->t0 = now_s();
        snprintf(rq->url, sizeof rq->url, "%s", url);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        rq->rec = ci ? ci->socket_context : NULL;
        rq->route = route_of(url, method, &rq->allow);
        pthread_mutex_lock(&h->mu);
        const int conns = h->n_conns;
        pthread_mutex_unlock(&h->mu);
        if (conns > h->o.max_conns && rq->route != R_HEALTH)
            return fail(c, rq, 429, "rate_limit_error", "too_many_connections",
                        "the server has %d open connections (limit %d, --max-conns); retry later", conns, h->o.max_conns);
        snprintf(rq->method, sizeof rq->method, "%s", method);
        if (rq->route == R_NOT_FOUND) rq->refused = 404;
        else if (rq->route == R_BAD_METHOD) rq->refused = 405;
        else if (rq->route != R_HEALTH && !key_ok(h, c)) rq->refused = 401;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            long v;
            if (tern_parse_long(cl, &v) || v < 0) return fail(c, rq, 400, "invalid_request_error", NULL, "bad Content-Length");
            if ((size_t)v > h->o.max_body)   // not read: the answer now, and the connection closes
                return rq->refused ? refuse(c, rq)
                                   : fail(c, rq, 413, "invalid_request_error", "request_too_large", "the request body has %ld bytes; the limit is %zu (--max-body)", v, h->o.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {   // body bytes
        if (rq->refused && rq->dropped + *upload_size > h->o.max_body) return refuse(c, rq);   // chunked and too long
        if (rq->refused) rq->dropped += *upload_size;   // counted, not kept
        else if (!rq->too_large) {
            if (rq->body.len + *upload_size > h->o.max_body) {
                rq->too_large = 1;
                srv_buf_free(&rq->body);
            } else srv_buf_add(&rq->body, upload_data, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    // the whole request is in
    if (rq->rec) {
        pthread_mutex_lock(&h->mu);
        rq->rec->reading = 0;
        pthread_mutex_unlock(&h->mu);
    }
    if (rq->refused) return refuse(c, rq);
    if (rq->too_large)
        return fail(c, rq, 413, "invalid_request_error", "request_too_large", "the request body is over the limit of %zu bytes (--max-body)", h->o.max_body);
    switch (rq->route) {
    case R_HEALTH: return handle_health(h, c, rq);
    case R_MODELS: return handle_models(h, c, rq);
    case R_MODEL: return handle_model(h, c, rq);
    case R_COMPLETIONS: return handle_generate(h, c, rq, SRV_COMPLETION);
    case R_CHAT: return handle_generate(h, c, rq, SRV_CHAT);
    case R_TOKENIZE: return handle_tokenize(h, c, rq);
    case R_DETOKENIZE: return handle_detokenize(h, c, rq);
    default: return MHD_NO;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    srv_http *h = cls;
    req_t *rq = *con_cls;
    if (!rq) return;
    int status = rq->status;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status < 400) status = 499;   // the client went away (or timed out)
    if (!status) status = 500;
    count_status(h, status == 499 ? 400 : status);
    if (h->o.verbose) fprintf(stderr, "tern-server: %s %d %.3f s\n", rq->url, status, now_s() - rq->t0);
    if (rq->rec) {   // a kept-alive connection's next request starts now
        pthread_mutex_lock(&h->mu);
        rq->rec->reading = 1;
        rq->rec->start = now_s();
        pthread_mutex_unlock(&h->mu);
    }
    srv_buf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code) {
    srv_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_rec *r = tern_xcalloc(1, sizeof *r);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        r->fd = ci ? ci->connect_fd : -1;
        r->reading = 1;
        r->start = now_s();
        pthread_mutex_lock(&h->mu);
        r->next = h->conns;
        if (h->conns) h->conns->prev = r;
        h->conns = r;
        h->n_conns++;
        pthread_mutex_unlock(&h->mu);
        *socket_context = r;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {   // before libmicrohttpd closes the socket
        conn_rec *r = *socket_context;
        if (!r) return;
        pthread_mutex_lock(&h->mu);
        if (r->prev) r->prev->next = r->next;
        else h->conns = r->next;
        if (r->next) r->next->prev = r->prev;
        h->n_conns--;
        pthread_mutex_unlock(&h->mu);
        free(r);
        *socket_context = NULL;
    }
}

static void *watchdog_main(void *arg) {
    srv_http *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->watchdog_stop) {
        const double t = now_s();
        for (conn_rec *r = h->conns; r; r = r->next)
            if (r->reading && r->fd >= 0 && t - r->start > h->o.timeout_s) {
                shutdown(r->fd, SHUT_RDWR);   // libmicrohttpd sees the end and closes the connection
                r->reading = 0;
                h->n_timeouts++;
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&h->wcv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

srv_http *srv_http_start(const srv_http_opts *o, const char *host, int port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int gai = getaddrinfo(host, ps, &hints, &ai);
    if (gai) {
        tern_error("--host %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    srv_http *h = tern_xcalloc(1, sizeof *h);
    h->o = *o;
    h->created = (long long)time(NULL);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->wcv, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->timeout_s,
                            // beyond max_conns requests get a 429 (on_request); the library's own limit, which
                            // can only refuse the connection, is a backstop well above it
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(4 * o->max_conns + 64),
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)128,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        tern_error("cannot listen on %s:%d (address in use, or not an address of this machine?)", host, port);
        pthread_cond_destroy(&h->wcv);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : port;
    if (pthread_create(&h->watchdog, NULL, watchdog_main, h)) tern_fatal("cannot start the watchdog thread");
    return h;
}

int srv_http_port(const srv_http *h) { return h->port; }

void srv_http_stop(srv_http *h) {
    if (!h) return;
    // no new connections; give the open ones up to 2 s to send what they have (a stream's error
    // event and [DONE] after the engine's shutdown) before they are closed
    MHD_quiesce_daemon(h->d);
    for (int i = 0; i < 40; i++) {
        pthread_mutex_lock(&h->mu);
        int busy = 0;
        for (conn_rec *r = h->conns; r; r = r->next) busy += !r->reading;   // in a request, not idle between them
        pthread_mutex_unlock(&h->mu);
        if (!busy) break;
        usleep(50000);
    }
    pthread_mutex_lock(&h->mu);
    h->watchdog_stop = 1;
    pthread_cond_signal(&h->wcv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->watchdog, NULL);
    MHD_stop_daemon(h->d);
    pthread_cond_destroy(&h->wcv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
