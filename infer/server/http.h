// http.h — tern-server's HTTP side (GNU libmicrohttpd, one thread per connection): routing, the
// API key, body limits, slow-sender timeouts, client-disconnect detection, server-sent events.
// Endpoints and error codes: docs/SERVER.md.
#ifndef TERN_SERVER_HTTP_H
#define TERN_SERVER_HTTP_H
#include "runtime.h"
#include "server/chat.h"
#include "server/engine.h"
#include <stddef.h>

typedef struct {
    const tern_rt_model *m;
    const tern_tokenizer *tok;
    srv_engine *engine;
    const char *model_id;      // what /v1/models lists and requests may name
    const char *api_key;       // NULL: no key needed
    srv_template tmpl;
    int ctx;                   // tokens per slot
    size_t max_body;           // bytes
    int timeout_s;             // to receive a request (headers + body); idle keep-alive
    int max_conns;
    int verbose;               // one log line per request on stderr
} srv_http_opts;

typedef struct srv_http srv_http;
// Listen on host:port (port 0: any free port; srv_http_port says which). NULL + tern_error.
srv_http *srv_http_start(const srv_http_opts *o, const char *host, int port);
int srv_http_port(const srv_http *h);
// Stop: close the listening socket and every connection (the engine must have been shut down
// first, so connections waiting for output wake up), join the threads, free.
void srv_http_stop(srv_http *h);

#endif
