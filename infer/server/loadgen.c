// loadgen.c — tern-loadgen: a small HTTP client for tern-server's benchmark and load test.
//   tern-loadgen bench --port P [--streams 1,2,4,8] [--requests R] [--max-tokens N] [--prompt TEXT]
//   tern-loadgen load  --port P [--requests N] [--concurrency C] [--max-body B] [--seed S]
// bench: for each stream count C, C clients each send R streaming completions one after another
// (max_tokens N, end-of-sequence banned with logit_bias so every request generates N tokens), K
// times; it prints the median over the K runs of the aggregate generated tokens/s, the median
// per-request tokens/s, per-request latency and time to first token (medians and 90th
// percentiles over all requests of that level), and the aggregate relative to the first level.
// load: N requests from C clients, mixing valid ones (completions and chat, streaming or not) with
// malformed JSON, wrong types, an unknown model, oversized bodies, a wrong API key, garbage bytes,
// and clients that hang up mid-stream or before the answer. Every answer must be a well-formed
// HTTP response with the expected status and a JSON body (OpenAI error objects for errors, valid
// server-sent events for streams); 429 (no room) counts as a valid answer to any request. At the end
// /health must show no busy slot and an empty queue, and the server's resident memory must not have
// grown by more than --max-rss-growth MB since the warm-up. Exit status 0 only if all of that holds.
#include "server/text.h"
#include "util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *g_host = "127.0.0.1", *g_key = NULL;
static int g_port = 0;

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern-loadgen bench --port P [--host H] [--streams 1,2,4,8] [--requests R=4] [--max-tokens N=64]\n"
            "                          [--reps K=1] [--prompt TEXT] [--api-key K]\n"
            "       tern-loadgen load  --port P [--host H] [--requests N=500] [--concurrency C=8] [--max-body B=1048576]\n"
            "                          [--seed S=1] [--api-key K] [--max-rss-growth MB=64]\n");
}

// ---------------------------------------------------------------------------------------------
// a blocking HTTP/1.1 client (one connection per request, Connection: close)

static int dial(void) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", g_port);
    if (getaddrinfo(g_host, ps, &hints, &ai)) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) { close(fd); fd = -1; }
    freeaddrinfo(ai);
    if (fd >= 0) {
        struct timeval tv = {120, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void build_request(srv_buf *b, const char *method, const char *path, const char *key, const char *body, size_t len) {
    srv_buf_printf(b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, g_host);
    if (key) srv_buf_printf(b, "Authorization: Bearer %s\r\n", key);
    if (body) srv_buf_printf(b, "Content-Type: application/json\r\nContent-Length: %zu\r\n", len);
    srv_buf_adds(b, "\r\n");
    if (body) srv_buf_add(b, body, len);
}

typedef struct {
    int status;
    int chunked;
    srv_buf head, body;      // body de-chunked
    double t_first;          // time the first body byte arrived (s since send)
    int io_error;
} response;

// returns 0 on a complete response (read until the server closes)
static int read_response(int fd, response *r, double t0, int stop_after_bytes) {
    memset(r, 0, sizeof *r);
    srv_buf raw = {0};
    char buf[8192];
    size_t head_end = 0;
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k < 0) { if (errno == EINTR) continue; r->io_error = 1; break; }
        if (k == 0) break;
        srv_buf_add(&raw, buf, (size_t)k);
        if (!head_end) {
            char *e = strstr(raw.p, "\r\n\r\n");
            if (e) { head_end = (size_t)(e - raw.p) + 4; }
        }
        if (head_end && !r->t_first && raw.len > head_end) r->t_first = tern_time() - t0;
        if (stop_after_bytes && head_end && raw.len > head_end + (size_t)stop_after_bytes) { srv_buf_free(&raw); return 1; }
    }
    if (!head_end || sscanf(raw.p, "HTTP/1.1 %d", &r->status) != 1) { srv_buf_free(&raw); r->status = 0; return -1; }
    srv_buf_add(&r->head, raw.p, head_end);
    r->chunked = strcasestr(r->head.p, "Transfer-Encoding: chunked") != NULL;
    const char *p = raw.p + head_end, *end = raw.p + raw.len;
    if (!r->chunked) srv_buf_add(&r->body, p, (size_t)(end - p));
    else {
        int ok = 0;
        while (p < end) {
            char *e;
            long n = strtol(p, &e, 16);
            const char *le = strstr(p, "\r\n");
            if (!le || n < 0 || e == p) break;
            p = le + 2;
            if (n == 0) { ok = 1; break; }
            if (p + n + 2 > end) break;
            srv_buf_add(&r->body, p, (size_t)n);
            p += n + 2;
        }
        if (!ok) r->io_error = 1;   // a stream that ended without its last chunk
    }
    srv_buf_free(&raw);
    return 0;
}

static void response_free(response *r) { srv_buf_free(&r->head); srv_buf_free(&r->body); }

static int request(const char *method, const char *path, const char *key, const char *body, response *r, double *elapsed) {
    int fd = dial();
    if (fd < 0) { memset(r, 0, sizeof *r); return -2; }
    srv_buf req = {0};
    build_request(&req, method, path, key, body, body ? strlen(body) : 0);
    double t0 = tern_time();
    int rc = send_all(fd, req.p, req.len);
    srv_buf_free(&req);
    if (rc == 0) rc = read_response(fd, r, t0, 0);
    else memset(r, 0, sizeof *r);
    if (elapsed) *elapsed = tern_time() - t0;
    close(fd);
    return rc;
}

// the JSON body of /health, or NULL
static json_t *health(void) {
    response r;
    if (request("GET", "/health", NULL, NULL, &r, NULL) || r.status != 200) { response_free(&r); return NULL; }
    json_t *j = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, NULL);
    response_free(&r);
    return j;
}
static long long hget(json_t *h, const char *k) { return json_integer_value(json_object_get(h, k)); }

// Server-sent events: "data: {json}\n\n" ... "data: [DONE]\n\n". Returns the number of JSON events,
// -1 if malformed; *usage_tokens: the completion_tokens of the last event with usage; *text: the
// joined text (completions) or content deltas (chat); *has_error: an error event came.
static int parse_sse(const char *p, size_t n, int chat, int *usage_tokens, srv_buf *text, int *has_error) {
    const char *end = p + n;
    int events = 0, done = 0;
    *has_error = 0;
    while (p < end) {
        const char *e = memmem(p, (size_t)(end - p), "\n\n", 2);
        if (!e) return -1;
        if (*p == ':') { p = e + 2; continue; }   // a comment (keep-alive)
        if ((size_t)(end - p) < 6 || memcmp(p, "data: ", 6)) return -1;
        if (done) return -1;   // nothing may follow [DONE]
        if (e - p == 12 && !memcmp(p + 6, "[DONE]", 6)) { done = 1; p = e + 2; continue; }
        json_t *j = json_loadb(p + 6, (size_t)(e - p - 6), 0, NULL);
        if (!j) return -1;
        if (json_object_get(j, "error")) *has_error = 1;
        json_t *u = json_object_get(j, "usage");
        if (json_is_object(u)) *usage_tokens = (int)json_integer_value(json_object_get(u, "completion_tokens"));
        json_t *c = json_array_get(json_object_get(j, "choices"), 0);
        if (c && text) {
            json_t *t = chat ? json_object_get(json_object_get(c, "delta"), "content") : json_object_get(c, "text");
            if (json_is_string(t)) srv_buf_add(text, json_string_value(t), json_string_length(t));
        }
        json_decref(j);
        events++;
        p = e + 2;
    }
    return done ? events : -1;
}

// ---------------------------------------------------------------------------------------------
// bench

typedef struct {
    int requests, max_tokens;
    const char *prompt;
    double *lat, *ttft;
    int *tokens;
    int failed;
    int id;
} bench_client;

static void *bench_main(void *arg) {
    bench_client *c = arg;
    for (int i = 0; i < c->requests; i++) {
        json_t *b = json_object();
        json_object_set_new(b, "prompt", json_string(c->prompt));
        json_object_set_new(b, "max_tokens", json_integer(c->max_tokens));
        json_object_set_new(b, "stream", json_true());
        json_object_set_new(b, "seed", json_integer(1000 * c->id + i));
        json_t *bias = json_object();
        json_object_set_new(bias, "2", json_integer(-100));   // tern vocabularies: </s> is id 2
        json_object_set_new(b, "logit_bias", bias);
        char *body = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        response r;
        double el;
        int rc = request("POST", "/v1/completions", g_key, body, &r, &el);
        free(body);
        int toks = 0, err = 0;
        if (rc || r.status != 200 || parse_sse(r.body.p ? r.body.p : "", r.body.len, 0, &toks, NULL, &err) < 0 || err) c->failed++;
        c->lat[i] = el;
        c->ttft[i] = r.t_first;
        c->tokens[i] = toks;
        response_free(&r);
    }
    return NULL;
}

static double pct(double *v, int n, double q) {   // sorts v
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) { double t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    int k = (int)(q * (n - 1) + 0.5);
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static int run_bench(const char *streams, int requests, int max_tokens, const char *prompt, int reps) {
    json_t *h = health();
    if (!h) { fprintf(stderr, "tern-loadgen: no answer from http://%s:%d/health\n", g_host, g_port); return 1; }
    printf("server: %s, %lld slots\n", json_string_value(json_object_get(h, "model")), hget(h, "slots_total"));
    json_decref(h);
    // warm-up: one short request (pages the weights in)
    bench_client w = {.requests = 1, .max_tokens = 4, .prompt = prompt};
    double a, b2;
    int t1;
    w.lat = &a; w.ttft = &b2; w.tokens = &t1;
    bench_main(&w);
    printf("%-8s %14s %14s %12s %12s %12s %10s %9s\n", "streams", "aggregate/s", "per-stream/s", "latency p50", "latency p90", "ttft p50",
           "tokens", "vs first");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", streams);
    int status = 0;
    double first = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long C;
        if (tern_parse_long(tok, &C) || C < 1 || C > 1024) { fprintf(stderr, "tern-loadgen: --streams: bad count '%s'\n", tok); return 2; }
        bench_client *cl = tern_xcalloc((size_t)C, sizeof *cl);
        pthread_t *th = tern_xmalloc(sizeof(pthread_t) * (size_t)C);
        const int per_rep = (int)C * requests, total = per_rep * reps;
        double *lat = tern_xmalloc(sizeof(double) * (size_t)total), *ttft = tern_xmalloc(sizeof(double) * (size_t)total);
        double *agg = tern_xmalloc(sizeof(double) * (size_t)reps), *rate = tern_xmalloc(sizeof(double) * (size_t)total);
        int *tokens = tern_xmalloc(sizeof(int) * (size_t)total);
        int failed = 0;
        long long sum_all = 0;
        for (int rep = 0; rep < reps; rep++) {
            const int off = rep * per_rep;
            double t0 = tern_time();
            for (long i = 0; i < C; i++) {
                cl[i] = (bench_client){.requests = requests, .max_tokens = max_tokens, .prompt = prompt, .lat = lat + off + i * requests,
                                       .ttft = ttft + off + i * requests, .tokens = tokens + off + i * requests, .id = (int)(i + 1000 * rep)};
                pthread_create(&th[i], NULL, bench_main, &cl[i]);
            }
            for (long i = 0; i < C; i++) { pthread_join(th[i], NULL); failed += cl[i].failed; }
            const double wall = tern_time() - t0;
            long long sum = 0;
            for (int i = 0; i < per_rep; i++) sum += tokens[off + i];
            agg[rep] = sum / wall;
            sum_all += sum;
        }
        for (int i = 0; i < total; i++) rate[i] = lat[i] > 0 ? tokens[i] / lat[i] : 0;
        const double med = pct(agg, reps, 0.5);
        if (!first) first = med;
        printf("%-8ld %14.1f %14.1f %11.3fs %11.3fs %11.3fs %10lld %8.2fx%s\n", C, med, pct(rate, total, 0.5), pct(lat, total, 0.5),
               pct(lat, total, 0.9), pct(ttft, total, 0.5), sum_all, med / first, failed ? "  FAILED REQUESTS" : "");
        fflush(stdout);
        if (failed) status = 1;
        free(rate); free(agg); free(lat); free(ttft); free(tokens); free(cl); free(th);
    }
    h = health();
    const char *keys[2] = {"step_ms_by_rows", "step_cpu_ms_by_rows"};
    const char *what[2] = {"wall", "engine thread CPU"};
    for (int q = 0; q < 2; q++) {   // the engine's own time per step (forward + sampling), without HTTP
        json_t *sm = h ? json_object_get(h, keys[q]) : NULL;
        if (!json_is_object(sm)) continue;
        printf("server step %s time (forward + sampling), mean ms by rows in the step:", what[q]);
        const char *k;
        json_t *v;
        json_object_foreach(sm, k, v) printf(" %s: %.2f", k, json_real_value(v));
        printf("\n");
    }
    json_decref(h);
    return status;
}

// ---------------------------------------------------------------------------------------------
// load

enum { K_COMPLETION, K_COMPLETION_STREAM, K_CHAT, K_CHAT_STREAM, K_MALFORMED, K_WRONG_TYPE, K_UNKNOWN_MODEL, K_TOO_LARGE,
       K_BAD_KEY, K_GARBAGE, K_HANGUP_STREAM, K_HANGUP_EARLY, K_TOKENIZE, K_HEALTH, K_KINDS };
static const char *kind_names[K_KINDS] = {"completion", "completion stream", "chat", "chat stream", "malformed JSON", "wrong type",
                                          "unknown model", "oversized body", "bad API key", "garbage bytes", "hang up mid-stream",
                                          "hang up before answer", "tokenize", "health"};

typedef struct {
    pthread_mutex_t mu;
    long next, total;
    uint64_t seed;
    size_t max_body;
    long sent[K_KINDS], ok[K_KINDS], bad[K_KINDS], status429, io_errors;
    char first_bad[512];
} load_state;

static void note_bad(load_state *s, int kind, const char *fmt, const char *detail, int status) {
    pthread_mutex_lock(&s->mu);
    s->bad[kind]++;
    if (!s->first_bad[0]) {
        char d[300];
        snprintf(d, sizeof d, "%.280s", detail ? detail : "");
        snprintf(s->first_bad, sizeof s->first_bad, fmt, kind_names[kind], status, d);
    }
    pthread_mutex_unlock(&s->mu);
}

// an OpenAI error object {"error": {"message": str, "type": str, ...}}
static int is_error_body(const srv_buf *b) {
    json_t *j = json_loadb(b->p ? b->p : "", b->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    int ok = json_is_object(e) && json_is_string(json_object_get(e, "message")) && json_is_string(json_object_get(e, "type"));
    json_decref(j);
    return ok;
}

static int completion_ok(const srv_buf *b, int chat) {
    json_t *j = json_loadb(b->p ? b->p : "", b->len, 0, NULL);
    json_t *c = json_array_get(json_object_get(j, "choices"), 0), *u = json_object_get(j, "usage");
    int ok = c && json_is_object(u) && json_is_integer(json_object_get(u, "completion_tokens")) &&
             json_is_string(chat ? json_object_get(json_object_get(c, "message"), "content") : json_object_get(c, "text")) &&
             json_is_string(json_object_get(c, "finish_reason"));
    json_decref(j);
    return ok;
}

static void one_load_request(load_state *s, int kind, tern_rng *r) {
    char body[2048];
    const char *prompts[4] = {"Once upon a time", "ROMEO:", "The meaning of", "\\u00e9t\\u00e9 \\ud83d\\ude00 emoji"};
    const char *p = prompts[tern_rng_u64(r) % 4];
    const int mt = 1 + (int)(tern_rng_u64(r) % 24);
    const char *path = "/v1/completions", *key = g_key, *method = "POST";
    int expect = 200, stream = 0, chat = 0, hangup = 0;
    srv_buf big = {0};
    const char *b = body;
    switch (kind) {
    case K_COMPLETION: snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":%d,\"stop\":[\"e\"]}", p, mt); break;
    case K_COMPLETION_STREAM: stream = 1; snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":%d,\"stream\":true,\"logprobs\":2}", p, mt); break;
    case K_CHAT: chat = 1; path = "/v1/chat/completions";
        snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":%d}", p, mt); break;
    case K_CHAT_STREAM: chat = 1; stream = 1; path = "/v1/chat/completions";
        snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":%d,\"stream\":true,\"stream_options\":{\"include_usage\":true}}", p, mt); break;
    case K_MALFORMED: expect = 400; snprintf(body, sizeof body, "{\"prompt\": \"%s\", \"max_tokens\": [", p); break;
    case K_WRONG_TYPE: expect = 400; snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":\"many\",\"temperature\":{}}", p); break;
    case K_UNKNOWN_MODEL: expect = 404; snprintf(body, sizeof body, "{\"model\":\"gpt-9\",\"prompt\":\"%s\"}", p); break;
    case K_TOO_LARGE:
        expect = 413;
        srv_buf_adds(&big, "{\"prompt\":\"");
        while (big.len <= s->max_body) srv_buf_adds(&big, "lorem ipsum ");
        srv_buf_adds(&big, "\"}");
        b = big.p;
        break;
    case K_BAD_KEY: expect = g_key ? 401 : 200; key = "not-the-key"; snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":2}", p); break;
    case K_HANGUP_STREAM: hangup = 2; snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":200,\"stream\":true}", p); break;
    case K_HANGUP_EARLY: hangup = 1; snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":200}", p); break;
    case K_TOKENIZE: path = "/tokenize"; snprintf(body, sizeof body, "{\"content\":\"%s\",\"with_pieces\":true}", p); break;
    case K_HEALTH: method = "GET"; path = "/health"; b = NULL; key = NULL; break;
    default: break;
    }
    pthread_mutex_lock(&s->mu);
    s->sent[kind]++;
    pthread_mutex_unlock(&s->mu);
    if (kind == K_GARBAGE || hangup) {
        int fd = dial();
        if (fd < 0) { note_bad(s, kind, "%s: cannot connect (status %d) %s", "", 0); srv_buf_free(&big); return; }
        srv_buf req = {0};
        if (kind == K_GARBAGE) {
            for (int i = 0; i < 64; i++) { char c = (char)(tern_rng_u64(r) & 0xff); srv_buf_add(&req, &c, 1); }
            srv_buf_adds(&req, "\r\n\r\n");
        } else build_request(&req, "POST", path, key, b, strlen(b));
        int rc = send_all(fd, req.p, req.len);
        srv_buf_free(&req);
        if (kind == K_GARBAGE) {   // any answer (400) or a closed connection is fine; a hang is not
            response resp;
            if (rc == 0 && read_response(fd, &resp, tern_time(), 0) == 0 && resp.status != 400 && resp.status != 0)
                note_bad(s, kind, "%s: status %d for garbage %s", "", resp.status);
            else { pthread_mutex_lock(&s->mu); s->ok[kind]++; pthread_mutex_unlock(&s->mu); }
            if (rc == 0) response_free(&resp);
        } else {
            if (hangup == 2 && rc == 0) {   // wait for the stream to start, then leave
                response resp;
                read_response(fd, &resp, tern_time(), 200);
                response_free(&resp);
            }
            pthread_mutex_lock(&s->mu);
            s->ok[kind]++;
            pthread_mutex_unlock(&s->mu);
        }
        close(fd);
        srv_buf_free(&big);
        return;
    }
    response resp;
    int rc = request(method, path, key, b, &resp, NULL);
    srv_buf_free(&big);
    if (rc) {
        if (rc == -2) note_bad(s, kind, "%s: cannot connect to the server (status %d) %s", "", 0);
        else if (kind == K_TOO_LARGE && resp.status == 0) {   // the server may answer 413 and close before reading it all
            pthread_mutex_lock(&s->mu); s->ok[kind]++; s->io_errors++; pthread_mutex_unlock(&s->mu);
        } else note_bad(s, kind, "%s: no complete HTTP response (status %d) %s", "", resp.status);
        response_free(&resp);
        return;
    }
    int good;
    if (resp.status == 429) {   // the server had no room (queue full, too many connections): valid for any request
        good = is_error_body(&resp.body);
        pthread_mutex_lock(&s->mu);
        s->status429++;
        pthread_mutex_unlock(&s->mu);
    } else if (resp.status != expect) good = 0;
    else if (expect != 200) good = is_error_body(&resp.body);
    else if (stream) {
        int toks = -1, err = 0;
        good = !resp.io_error && strcasestr(resp.head.p, "text/event-stream") && parse_sse(resp.body.p ? resp.body.p : "", resp.body.len, chat, &toks, NULL, &err) >= 1 && !err && toks >= 0;
    } else if (kind == K_TOKENIZE || kind == K_HEALTH) {
        json_t *j = json_loadb(resp.body.p ? resp.body.p : "", resp.body.len, 0, NULL);
        good = json_is_object(j);
        json_decref(j);
    } else good = completion_ok(&resp.body, chat);
    if (good) { pthread_mutex_lock(&s->mu); s->ok[kind]++; pthread_mutex_unlock(&s->mu); }
    else note_bad(s, kind, "%s: status %d, body %s", resp.body.p, resp.status);
    response_free(&resp);
}

static void *load_main(void *arg) {
    load_state *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        long i = s->next++;
        pthread_mutex_unlock(&s->mu);
        if (i >= s->total) break;
        tern_rng r;
        tern_rng_seed(&r, s->seed * 1000003ull + (uint64_t)i);
        one_load_request(s, (int)(tern_rng_u64(&r) % K_KINDS), &r);
    }
    return NULL;
}

static int run_load(long total, int conc, size_t max_body, uint64_t seed, long max_growth_mb) {
    json_t *h0 = health();
    if (!h0) { fprintf(stderr, "tern-loadgen: no answer from http://%s:%d/health\n", g_host, g_port); return 1; }
    // warm-up, so the memory baseline includes the first allocations of every path
    load_state warm = {.total = 2 * K_KINDS, .seed = seed + 99, .max_body = max_body};
    pthread_mutex_init(&warm.mu, NULL);
    load_main(&warm);
    json_decref(h0);
    h0 = health();
    const long long rss0 = h0 ? hget(h0, "rss_kb") : 0;
    load_state s = {.total = total, .seed = seed, .max_body = max_body};
    pthread_mutex_init(&s.mu, NULL);
    pthread_t *th = tern_xmalloc(sizeof(pthread_t) * (size_t)conc);
    double t0 = tern_time();
    for (int i = 0; i < conc; i++) pthread_create(&th[i], NULL, load_main, &s);
    for (int i = 0; i < conc; i++) pthread_join(th[i], NULL);
    const double wall = tern_time() - t0;
    // the server must settle: no slot busy, nothing queued
    json_t *h = NULL;
    for (int tries = 0; tries < 100; tries++) {
        json_decref(h);
        h = health();
        if (h && hget(h, "slots_busy") == 0 && hget(h, "queue") == 0) break;
        usleep(100000);
    }
    long sent = 0, ok = 0, bad = 0;
    printf("%-24s %8s %8s %8s\n", "request kind", "sent", "ok", "bad");
    for (int k = 0; k < K_KINDS; k++) {
        printf("%-24s %8ld %8ld %8ld\n", kind_names[k], s.sent[k], s.ok[k], s.bad[k]);
        sent += s.sent[k];
        ok += s.ok[k];
        bad += s.bad[k];
    }
    printf("%-24s %8ld %8ld %8ld   in %.1f s, %d clients; %ld answered 429 (queue full), %ld oversized bodies cut off by the server\n", "total",
           sent, ok, bad, wall, conc, s.status429, s.io_errors);
    int status = 0;
    if (bad) { printf("FAIL: %ld bad answers; first: %s\n", bad, s.first_bad); status = 1; }
    if (!h) { printf("FAIL: the server does not answer /health after the run (crashed?)\n"); return 1; }
    const long long rss1 = hget(h, "rss_kb");
    printf("server after the run: slots busy %lld, queue %lld, connections %lld, jobs finished %lld, cancelled %lld, rejected %lld, "
           "http 2xx %lld 4xx %lld 5xx %lld, slow-sender timeouts %lld, disconnects %lld; RSS %lld -> %lld KiB\n",
           hget(h, "slots_busy"), hget(h, "queue"), hget(h, "connections"), hget(h, "jobs_finished"), hget(h, "jobs_cancelled"),
           hget(h, "jobs_rejected"), hget(h, "http_2xx"), hget(h, "http_4xx"), hget(h, "http_5xx"), hget(h, "timeouts"),
           hget(h, "disconnects"), rss0, rss1);
    if (hget(h, "slots_busy") || hget(h, "queue")) { printf("FAIL: leaked slots or queue entries\n"); status = 1; }
    if (hget(h, "http_5xx")) { printf("FAIL: server errors (5xx)\n"); status = 1; }
    if (rss1 - rss0 > max_growth_mb * 1024) { printf("FAIL: resident memory grew by %lld KiB\n", rss1 - rss0); status = 1; }
    if (!status) printf("PASS\n");
    json_decref(h);
    json_decref(h0);
    free(th);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) { usage(argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    const char *mode = argv[1], *streams = "1,2,4,8", *prompt = "Once upon a time, in a land far away,";
    long requests = -1, max_tokens = 64, conc = 8, max_body = 1 << 20, seed = 1, growth = 64, reps = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!v) { fprintf(stderr, "tern-loadgen: %s needs a value\n", a); return 2; }
        i++;
        long *dst = NULL, lo = 1, hi = 1L << 30;
        if (!strcmp(a, "--host")) g_host = v;
        else if (!strcmp(a, "--api-key")) g_key = v;
        else if (!strcmp(a, "--streams")) streams = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--port")) { long p; if (tern_parse_long(v, &p) || p < 1 || p > 65535) { fprintf(stderr, "tern-loadgen: --port: bad port '%s'\n", v); return 2; } g_port = (int)p; }
        else if (!strcmp(a, "--requests")) dst = &requests;
        else if (!strcmp(a, "--max-tokens")) dst = &max_tokens;
        else if (!strcmp(a, "--reps")) { dst = &reps; hi = 100; }
        else if (!strcmp(a, "--concurrency")) { dst = &conc; hi = 1024; }
        else if (!strcmp(a, "--max-body")) dst = &max_body;
        else if (!strcmp(a, "--seed")) { dst = &seed; lo = 0; }
        else if (!strcmp(a, "--max-rss-growth")) { dst = &growth; lo = 0; }
        else { fprintf(stderr, "tern-loadgen: unknown option '%s'\n", a); usage(stderr); return 2; }
        if (dst && (tern_parse_long(v, dst) || *dst < lo || *dst > hi)) { fprintf(stderr, "tern-loadgen: %s: expected an integer from %ld to %ld, got '%s'\n", a, lo, hi, v); return 2; }
    }
    if (!g_port) { fprintf(stderr, "tern-loadgen: --port is required\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(mode, "bench")) return run_bench(streams, requests < 0 ? 4 : (int)requests, (int)max_tokens, prompt, (int)reps);
    if (!strcmp(mode, "load")) return run_load(requests < 0 ? 500 : requests, (int)conc, (size_t)max_body, (uint64_t)seed, growth);
    fprintf(stderr, "tern-loadgen: unknown mode '%s' (bench or load)\n", mode);
    return 2;
}
