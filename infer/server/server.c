// server.c — tern-server: an OpenAI-compatible HTTP server on tern's runtime, with batched decoding.
//   tern-server -m model.gguf [--host 127.0.0.1] [--port 8080] [--slots 4] [--ctx C] [--api-key KEY] ...
// Endpoints: POST /v1/completions, POST /v1/chat/completions (both with "stream": true as
// server-sent events), GET /v1/models, GET /health, POST /tokenize, POST /detokenize.
// docs/SERVER.md documents the options, parameters, chat templates and errors.
#include "runtime.h"
#include "server/chat.h"
#include "server/engine.h"
#include "server/http.h"
#include "util.h"
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern-server -m model.gguf [options]\n"
            "       tern-server --random small|2b|2b4t|dim=D,...[,key=value...] --tokenizer TOK.tkz [options]\n"
            "An OpenAI-compatible HTTP server: POST /v1/completions, POST /v1/chat/completions (stream: true\n"
            "for server-sent events), GET /v1/models, GET /health, POST /tokenize, POST /detokenize.\n"
            "  --host ADDR          address to listen on (127.0.0.1; 0.0.0.0 or :: for every interface)\n"
            "  --port N             TCP port (8080; 0: any free port, see --port-file)\n"
            "  --port-file FILE     write the port there once listening (for scripts)\n"
            "  --slots N            sequences decoded together, each with its own KV cache (4)\n"
            "  --ctx C              context per slot in tokens, prompt + completion (the model's)\n"
            "  --batch B            rows per forward: decode rows + prompt chunks (max(64, slots))\n"
            "  --queue Q            requests that may wait for a slot; more get 429 (32)\n"
            "  --api-key KEY        require 'Authorization: Bearer KEY' (also env TERN_API_KEY)\n"
            "  --alias NAME         the model id clients use (the file's name)\n"
            "  --chat-template T    plain|chatml|llama3|bitnet (detected from the file)\n"
            "  --max-body BYTES     largest request body (1048576)\n"
            "  --timeout S          seconds a client has to send a request; idle keep-alive (30)\n"
            "  --max-conns N        open connections; beyond them requests get 429 (2 x (slots + queue) + 64)\n"
            "  --random SPEC        random ternary weights of a shape (benchmarks; needs --tokenizer)\n"
            "  --tokenizer TOK.tkz  the tokenizer of a --random model (its vocabulary size wins)\n"
            "  --kernel K           auto|plain|avx2|avx512\n"
            "  -v                   one log line per request on stderr\n"
            "Threads: OMP_NUM_THREADS; OpenMP workers wait passively unless OMP_WAIT_POLICY says otherwise.\n");
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "tern-server: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int write_port_file(const char *path, int port) {
    char tmp[1100];
    tern_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f)) { tern_discard_file(tmp); return -1; }
    return tern_commit_file(tmp, path);
}

// OpenMP's worker threads spin after each parallel region by default (libgomp: ~300k iterations).
// In a server that steals the CPU the HTTP threads need, and on a busy or shared machine it slows
// decoding itself several times over (measured: 2B-shaped decode 0.8 tok/s spinning vs 6.7 passive
// on a loaded 2-core VM), so unless the user chose a policy the server always waits passively
// (tern_omp_wait_policy restarts it with OMP_WAIT_POLICY=passive).
int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 1);
    const char *path = NULL, *host = "127.0.0.1", *api_key = getenv("TERN_API_KEY"), *alias = NULL, *tmpl_name = NULL;
    const char *random_spec = NULL, *tok_path = NULL, *port_file = NULL;
    long port = 8080, slots = 4, ctx = 0, batch = 0, queue = 32, max_body = 1 << 20, timeout = 30, max_conns = 0;
    int verbose = 0;
    tern_kernel_kind kind = TERN_KERNEL_AUTO;
    if (api_key && !*api_key) api_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { verbose = 1; continue; }
        if (!v) { fprintf(stderr, "tern-server: %s needs a value\n", a); usage(stderr); return 2; }
        i++;
        long *dst = NULL, lo = 0, hi = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) path = v;
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--api-key")) api_key = v;
        else if (!strcmp(a, "--alias")) alias = v;
        else if (!strcmp(a, "--chat-template")) tmpl_name = v;
        else if (!strcmp(a, "--random")) random_spec = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--kernel")) {
            if (tern_kernel_parse(v, &kind)) { fprintf(stderr, "tern-server: --kernel: expected auto|plain|avx2|avx512, got '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--port")) { dst = &port; lo = 0; hi = 65535; }
        else if (!strcmp(a, "--slots")) { dst = &slots; lo = 1; hi = 256; }
        else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) { dst = &ctx; lo = 2; hi = 1 << 24; }
        else if (!strcmp(a, "--batch") || !strcmp(a, "-b")) { dst = &batch; lo = 1; hi = 1 << 16; }
        else if (!strcmp(a, "--queue")) { dst = &queue; lo = 0; hi = 1 << 20; }
        else if (!strcmp(a, "--max-body")) { dst = &max_body; lo = 64; hi = 1L << 30; }
        else if (!strcmp(a, "--timeout")) { dst = &timeout; lo = 1; hi = 86400; }
        else if (!strcmp(a, "--max-conns")) { dst = &max_conns; lo = 1; hi = 1 << 16; }
        else { fprintf(stderr, "tern-server: unknown option '%s'\n", a); usage(stderr); return 2; }
        if (dst && (tern_parse_long(v, dst) || *dst < lo || *dst > hi)) {
            fprintf(stderr, "tern-server: %s: expected an integer from %ld to %ld, got '%s'\n", a, lo, hi, v);
            return 2;
        }
    }
    if (!path == !random_spec) { fprintf(stderr, "tern-server: give a model (-m model.gguf) or --random SPEC\n"); usage(stderr); return 2; }
    if (random_spec && !tok_path) { fprintf(stderr, "tern-server: --random needs --tokenizer TOK.tkz\n"); return 2; }
    if (path && tok_path) { fprintf(stderr, "tern-server: --tokenizer is for --random models (a GGUF brings its own)\n"); return 2; }
    srv_template tmpl = SRV_TMPL_PLAIN;
    if (tmpl_name && srv_chat_parse_name(tmpl_name, &tmpl)) { fprintf(stderr, "tern-server: --chat-template: expected plain|chatml|llama3|bitnet, got '%s'\n", tmpl_name); return 2; }
    if (api_key && strlen(api_key) > 1024) { fprintf(stderr, "tern-server: --api-key is longer than 1024 bytes\n"); return 2; }
    if (kind != TERN_KERNEL_AUTO && tern_kernel_force(kind)) die("%s", tern_last_error());

    // SIGINT/SIGTERM are taken by the main thread with sigwait; every other thread inherits the mask
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    tern_rt_model m;
    tern_tokenizer tok;
    char id_buf[600];
    double t0 = tern_time();
    if (path) {
        if (build_model(&m, path)) die("%s", tern_last_error());
        if (rt_require_vocab(&m) || rt_build_tokenizer(&m, &tok)) die("%s", tern_last_error());
        snprintf(id_buf, sizeof id_buf, "%s", base_name(path));
        if (!tmpl_name && tern_gguf_find_kv(m.gguf, "tokenizer.chat_template") >= 0) {
            const char *t = NULL;
            size_t tl = 0;
            if (!tern_gguf_get_str(m.gguf, "tokenizer.chat_template", &t, &tl)) {
                char *z = tern_xmalloc(tl + 1);
                memcpy(z, t, tl);
                z[tl] = 0;
                tmpl = srv_chat_detect(z);
                free(z);
            }
        }
    } else {
        tern_rt_config c;
        int head;
        if (rt_parse_shape(random_spec, &c, &head)) die("--random: %s", tern_last_error());
        if (tern_tokenizer_load(&tok, tok_path)) die("%s", tern_last_error());
        c.vocab_size = tok.vocab_size;
        if (!c.seq_len) c.seq_len = ctx > 0 ? (int)ctx : 2048;
        if (build_random_model_typed(&m, &c, head, 1234)) die("--random: %s", tern_last_error());
        m.vocab.add_bos = 1;
        m.vocab.bos_id = tok.bos_id;
        m.vocab.eos_id = tok.eos_id;
        snprintf(id_buf, sizeof id_buf, "random-%s", random_spec);
    }
    const double t_load = tern_time() - t0;
    if (ctx == 0) ctx = m.config.seq_len;
    if (ctx > m.config.seq_len) {
        fprintf(stderr, "tern-server: --ctx %ld is longer than the model's context (%d)\n", ctx, m.config.seq_len);
        return 2;
    }
    if (batch == 0) batch = slots > 64 ? slots : 64;
    if (batch < slots) { fprintf(stderr, "tern-server: --batch %ld must be at least --slots %ld (one decode row per slot)\n", batch, slots); return 2; }
    if (max_conns == 0) max_conns = 2 * (slots + queue) + 64;
    int eog[16];
    srv_engine_opts eo = {.n_slots = (int)slots, .ctx = (int)ctx, .batch = (int)batch, .queue_max = (int)queue, .eog = eog};
    eo.n_eog = srv_chat_eog_ids(m.gguf, &tok, eog, 16);
    srv_engine *e = srv_engine_new(&m, &tok, &eo);
    if (!e) die("%s", tern_last_error());
    srv_http_opts ho = {.m = &m, .tok = &tok, .engine = e, .model_id = alias ? alias : id_buf, .api_key = api_key, .tmpl = tmpl,
                        .ctx = (int)ctx, .max_body = (size_t)max_body, .timeout_s = (int)timeout, .max_conns = (int)max_conns,
                        .verbose = verbose};
    srv_http *h = srv_http_start(&ho, host, (int)port);
    if (!h) die("%s", tern_last_error());
    const double kv_mb = (double)slots * 2.0 * m.config.n_layers * ctx * m.config.kv_dim * sizeof(float) / 1e6;
    fprintf(stderr,
            "tern-server: %s (%s): %d layers, dim %d, vocab %d; loaded in %.2f s; kernel %s, %d threads\n"
            "tern-server: %ld slots x %ld tokens of context (KV caches %.0f MB), batch %ld, queue %ld; chat template %s%s\n"
            "tern-server: listening on http://%s%s%s:%d\n",
            ho.model_id, path ? path : "random weights", m.config.n_layers, m.config.dim, m.config.vocab_size, t_load,
            tern_kernel_name(tern_kernel_best()), omp_get_max_threads(), slots, ctx, kv_mb, batch, queue, srv_chat_name(tmpl),
            api_key ? "; API key required" : "", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", srv_http_port(h));
    if (port_file && write_port_file(port_file, srv_http_port(h))) die("--port-file: %s", tern_last_error());
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "tern-server: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    srv_engine_shutdown(e);   // running and queued jobs end; their connections wake up
    srv_http_stop(h);
    srv_engine_free(e);
    tern_tokenizer_free(&tok);
    free_model(&m);
    return 0;
}
