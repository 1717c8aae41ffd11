// api.c — see api.h. Requests: every known field is checked for its type and range and named in
// the error ("param"); unknown fields are ignored, as OpenAI's clients send extras.
#include "server/api.h"
#include "util.h"
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_error_set(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

// a JSON string from bytes that may not be UTF-8 (ill-formed bytes become U+FFFD)
static json_t *jstr(const char *s, size_t n) {
    if (srv_utf8_valid(s, n)) {
        json_t *j = json_stringn(s, n);
        if (j) return j;
    }
    srv_buf b = {0};
    srv_utf8_repair(&b, s, n);
    json_t *j = json_stringn(b.p ? b.p : "", b.len);
    srv_buf_free(&b);
    return j ? j : json_string("");
}

char *srv_error_json(const srv_error *e, size_t *len) {
    json_t *err = json_object();
    json_object_set_new(err, "message", jstr(e->message, strlen(e->message)));
    json_object_set_new(err, "type", json_string(e->type ? e->type : "invalid_request_error"));
    json_object_set_new(err, "param", e->param[0] ? json_string(e->param) : json_null());
    json_object_set_new(err, "code", e->code ? json_string(e->code) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!s) tern_fatal("out of memory (error body)");
    if (len) *len = strlen(s);
    return s;
}

// ---------------------------------------------------------------------------------------------
// requests

static int bad(srv_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(srv_error *e, const char *param, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv_error_set(e, 400, "invalid_request_error", NULL, param, "%s", msg);
    return -1;
}

static json_t *load_object(const char *body, size_t len, srv_error *e) {
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        bad(e, NULL, "the request body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        bad(e, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

// field getters: 1 = present and valid (value stored), 0 = absent or null, -1 = wrong (e set)
static int get_bool(json_t *o, const char *key, int *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad(e, key, "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 1;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return bad(e, key, "'%s' must be an integer", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return bad(e, key, "'%s' is %lld; it must be between %lld and %lld", key, x, lo, hi);
    *out = x;
    return 1;
}

static int get_num(json_t *o, const char *key, double lo, double hi, float *out, srv_error *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad(e, key, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return bad(e, key, "'%s' is %g; it must be between %g and %g", key, x, lo, hi);
    *out = (float)x;
    return 1;
}

static char *dup_bytes(const char *s, size_t n) {
    char *p = tern_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static int parse_stop(json_t *o, srv_request *r, srv_error *e) {
    json_t *v = json_object_get(o, "stop");
    if (!v || json_is_null(v)) return 0;
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > SRV_MAX_STOPS) return bad(e, "stop", "'stop' has %zu sequences; at most %d are allowed", n, SRV_MAX_STOPS);
        items = NULL;
    } else if (!json_is_string(v)) return bad(e, "stop", "'stop' must be a string or an array of strings");
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        if (!json_is_string(s)) return bad(e, "stop", "'stop' must be a string or an array of strings");
        size_t L = json_string_length(s);
        if (L < 1 || L > SRV_MAX_STOP_LEN) return bad(e, "stop", "a stop sequence must have 1 to %d bytes (got %zu)", SRV_MAX_STOP_LEN, L);
        r->stop[r->n_stop] = dup_bytes(json_string_value(s), L);
        r->stop_len[r->n_stop++] = L;
    }
    return 0;
}

static int parse_bias(json_t *o, int vocab, srv_request *r, srv_error *e) {
    json_t *v = json_object_get(o, "logit_bias");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) return bad(e, "logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    size_t n = json_object_size(v);
    if (n > SRV_MAX_BIAS) return bad(e, "logit_bias", "'logit_bias' has %zu entries; at most %d are allowed", n, SRV_MAX_BIAS);
    r->bias = tern_xcalloc(n ? n : 1, sizeof(srv_bias));
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        long id;
        if (tern_parse_long(key, &id) || id < 0 || id >= vocab)
            return bad(e, "logit_bias", "'logit_bias' key '%.40s' is not a token id (0..%d)", key, vocab - 1);
        if (!json_is_number(val) || !(json_number_value(val) >= -100.0 && json_number_value(val) <= 100.0))
            return bad(e, "logit_bias", "'logit_bias' values must be numbers between -100 and 100");
        r->bias[r->n_bias].id = (int)id;
        r->bias[r->n_bias++].bias = (float)json_number_value(val);
    }
    return 0;
}

// an array of token ids -> malloc'd ints
static int parse_ids(json_t *a, int vocab, const char *param, int **ids, int *n, srv_error *e) {
    size_t k = json_array_size(a);
    if (k > SRV_MAX_TOKENS) return bad(e, param, "'%s' has too many tokens", param);
    *ids = tern_xmalloc(sizeof(int) * (k ? k : 1));
    *n = (int)k;
    for (size_t i = 0; i < k; i++) {
        json_t *t = json_array_get(a, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= vocab)
            return bad(e, param, "'%s' must hold token ids between 0 and %d (item %zu is not one)", param, vocab - 1, i);
        (*ids)[i] = (int)json_integer_value(t);
    }
    return 0;
}

static int parse_prompt(json_t *o, int vocab, srv_request *r, srv_error *e) {
    json_t *p = json_object_get(o, "prompt");
    if (!p || json_is_null(p)) return bad(e, "prompt", "'prompt' is required");
    if (json_is_array(p)) {
        size_t n = json_array_size(p);
        if (n == 0) return bad(e, "prompt", "'prompt' is an empty array");
        json_t *first = json_array_get(p, 0);
        if (json_is_integer(first)) {
            r->prompt_is_ids = 1;
            return parse_ids(p, vocab, "prompt", &r->prompt_ids, &r->n_prompt_ids, e);
        }
        if (n > 1) return bad(e, "prompt", "only one prompt per request is supported ('prompt' has %zu)", n);
        if (json_is_array(first)) {
            r->prompt_is_ids = 1;
            if (json_array_size(first) == 0) return bad(e, "prompt", "'prompt' holds an empty token array");
            return parse_ids(first, vocab, "prompt", &r->prompt_ids, &r->n_prompt_ids, e);
        }
        p = first;
    }
    if (!json_is_string(p)) return bad(e, "prompt", "'prompt' must be a string, an array of token ids, or an array of one of those");
    r->prompt_len = json_string_length(p);
    r->prompt = dup_bytes(json_string_value(p), r->prompt_len);
    return 0;
}

// message content: a string, null (assistant turns), or an array of {"type": "text", "text": str}
static int parse_content(json_t *c, int i, srv_message *m, srv_error *e) {
    srv_buf b = {0};
    if (!c || json_is_null(c)) {
        if (strcmp(m->role, "assistant") != 0) return bad(e, "messages", "messages[%d] has no content", i);
    } else if (json_is_string(c)) {
        srv_buf_add(&b, json_string_value(c), json_string_length(c));
    } else if (json_is_array(c)) {
        for (size_t k = 0; k < json_array_size(c); k++) {
            json_t *part = json_array_get(c, k), *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text") != 0 || !json_is_string(text)) {
                srv_buf_free(&b);
                return bad(e, "messages", "messages[%d].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported", i, k);
            }
            srv_buf_add(&b, json_string_value(text), json_string_length(text));
        }
    } else return bad(e, "messages", "messages[%d].content must be a string or an array of text parts", i);
    m->content_len = b.len;
    m->content = b.p ? b.p : dup_bytes("", 0);
    return 0;
}

static int parse_messages(json_t *o, srv_request *r, srv_error *e) {
    json_t *a = json_object_get(o, "messages");
    if (!a || json_is_null(a)) return bad(e, "messages", "'messages' is required");
    if (!json_is_array(a) || json_array_size(a) == 0) return bad(e, "messages", "'messages' must be a non-empty array");
    size_t n = json_array_size(a);
    if (n > SRV_MAX_MESSAGES) return bad(e, "messages", "'messages' has %zu entries; at most %d are allowed", n, SRV_MAX_MESSAGES);
    r->messages = tern_xcalloc(n, sizeof(srv_message));
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(a, i), *role = json_object_get(m, "role");
        if (!json_is_object(m)) return bad(e, "messages", "messages[%zu] must be an object", i);
        if (!json_is_string(role)) return bad(e, "messages", "messages[%zu].role must be a string", i);
        const char *rs = json_string_value(role);
        const char *norm = !strcmp(rs, "system") || !strcmp(rs, "developer") ? "system"
                           : !strcmp(rs, "user")                              ? "user"
                           : !strcmp(rs, "assistant")                         ? "assistant"
                                                                              : NULL;
        if (!norm) return bad(e, "messages", "messages[%zu].role '%.40s' is not supported (system, developer, user, assistant)", i, rs);
        json_t *tc = json_object_get(m, "tool_calls");
        if (tc && !json_is_null(tc)) return bad(e, "messages", "messages[%zu]: tool calls are not supported", i);
        r->messages[i].role = dup_bytes(norm, strlen(norm));
        r->n_messages = (int)i + 1;
        if (parse_content(json_object_get(m, "content"), (int)i, &r->messages[i], e)) return -1;
    }
    return 0;
}

static int parse_logprobs(json_t *o, int kind, srv_request *r, srv_error *e) {
    long long k = 0;
    int b = 0, rc;
    if (kind == SRV_COMPLETION) {
        json_t *v = json_object_get(o, "logprobs");
        if (!v || json_is_null(v)) return 0;
        if (json_is_boolean(v)) { r->logprobs = json_is_true(v) ? 0 : -1; return 0; }
        if (get_int(o, "logprobs", 0, SRV_MAX_LOGPROBS, &k, e) < 0) return -1;
        r->logprobs = (int)k;
        return 0;
    }
    if ((rc = get_bool(o, "logprobs", &b, e)) < 0) return -1;
    if ((rc = get_int(o, "top_logprobs", 0, SRV_MAX_LOGPROBS, &k, e)) < 0) return -1;
    if (rc == 1 && !b) return bad(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r->logprobs = b ? (int)k : -1;
    return 0;
}

int srv_parse_request(const char *body, size_t len, int kind, int vocab_size, srv_request *r, srv_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->max_tokens = -1;
    r->temperature = 0.8f;
    r->top_p = 0.95f;
    r->top_k = 40;
    r->logprobs = -1;
    json_t *o = load_object(body, len, e);
    if (!o) return -1;
    long long v;
    int rc;
    json_t *m = json_object_get(o, "model");
    if (m && !json_is_null(m)) {
        if (!json_is_string(m)) { bad(e, "model", "'model' must be a string"); goto fail; }
        r->model = dup_bytes(json_string_value(m), json_string_length(m));
    }
    if (get_bool(o, "stream", &r->stream, e) < 0) goto fail;
    json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) { bad(e, "stream_options", "'stream_options' must be an object"); goto fail; }
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0) goto fail;
    }
    if (kind == SRV_COMPLETION) {
        if (parse_prompt(o, vocab_size, r, e)) goto fail;
        if (get_bool(o, "echo", &r->echo, e) < 0) goto fail;
        json_t *sfx = json_object_get(o, "suffix");
        if (sfx && !json_is_null(sfx) && !(json_is_string(sfx) && json_string_length(sfx) == 0)) {
            bad(e, "suffix", "'suffix' (insertion) is not supported");
            goto fail;
        }
        if (get_int(o, "best_of", 1, 1, &v, e) < 0) goto fail;
    } else if (parse_messages(o, r, e)) goto fail;
    if ((rc = get_int(o, "max_tokens", 0, SRV_MAX_TOKENS, &v, e)) < 0) goto fail;
    if (rc) r->max_tokens = (long)v;
    if (kind == SRV_CHAT) {
        if ((rc = get_int(o, "max_completion_tokens", 0, SRV_MAX_TOKENS, &v, e)) < 0) goto fail;
        if (rc) r->max_tokens = (long)v;
    }
    if (get_num(o, "temperature", 0.0, 2.0, &r->temperature, e) < 0) goto fail;
    if (get_num(o, "top_p", 0.0, 1.0, &r->top_p, e) < 0) goto fail;
    if (r->top_p == 0.0f) { r->temperature = 0.0f; r->top_p = 1.0f; }   // only the most likely token
    if ((rc = get_int(o, "top_k", 0, vocab_size, &v, e)) < 0) goto fail;
    if (rc) r->top_k = (int)v;
    if ((rc = get_int(o, "seed", INT64_MIN, INT64_MAX, &v, e)) < 0) goto fail;
    if (rc) { r->has_seed = 1; r->seed = (uint64_t)v; }
    if (get_int(o, "n", 1, 1, &v, e) < 0) { snprintf(e->message, sizeof e->message, "only 'n': 1 is supported"); goto fail; }
    if (get_num(o, "presence_penalty", -2.0, 2.0, &r->presence_penalty, e) < 0) goto fail;
    if (get_num(o, "frequency_penalty", -2.0, 2.0, &r->frequency_penalty, e) < 0) goto fail;
    if (parse_stop(o, r, e) || parse_bias(o, vocab_size, r, e) || parse_logprobs(o, kind, r, e)) goto fail;
    json_t *rf = json_object_get(o, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *t = json_object_get(rf, "type");
        if (!json_is_object(rf) || !json_is_string(t) || strcmp(json_string_value(t), "text") != 0) {
            bad(e, "response_format", "only 'response_format': {\"type\": \"text\"} is supported");
            goto fail;
        }
    }
    const char *unsupported[] = {"tools", "functions", "tool_choice", "function_call"};
    for (int i = 0; i < 4; i++) {
        json_t *t = json_object_get(o, unsupported[i]);
        if (t && !json_is_null(t) && !(json_is_array(t) && json_array_size(t) == 0) &&
            !(json_is_string(t) && !strcmp(json_string_value(t), "none"))) {
            bad(e, unsupported[i], "'%s' (function calling) is not supported", unsupported[i]);
            goto fail;
        }
    }
    json_decref(o);
    return 0;
fail:
    json_decref(o);
    srv_request_free(r);
    return -1;
}

void srv_request_free(srv_request *r) {
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (int i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    free(r->bias);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

int srv_parse_tokenize(const char *body, size_t len, char **content, size_t *content_len, int *add_special, int *with_pieces,
                       srv_error *e) {
    *content = NULL;
    *add_special = 0;
    *with_pieces = 0;
    json_t *o = load_object(body, len, e);
    if (!o) return -1;
    json_t *c = json_object_get(o, "content");
    int rc = -1;
    if (!json_is_string(c)) bad(e, "content", "'content' must be a string");
    else if (get_bool(o, "add_special", add_special, e) >= 0 && get_bool(o, "with_pieces", with_pieces, e) >= 0) {
        *content_len = json_string_length(c);
        *content = dup_bytes(json_string_value(c), *content_len);
        rc = 0;
    }
    json_decref(o);
    return rc;
}

int srv_parse_detokenize(const char *body, size_t len, int vocab_size, int **ids, int *n, srv_error *e) {
    *ids = NULL;
    *n = 0;
    json_t *o = load_object(body, len, e);
    if (!o) return -1;
    json_t *t = json_object_get(o, "tokens");
    int rc = -1;
    if (!json_is_array(t)) bad(e, "tokens", "'tokens' must be an array of token ids");
    else rc = parse_ids(t, vocab_size, "tokens", ids, n, e);
    if (rc) { free(*ids); *ids = NULL; *n = 0; }
    json_decref(o);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// responses

static json_t *token_text(const srv_resp *r, int id, json_t **bytes) {
    char buf[TERN_TOK_MAX_PIECE + 8];
    int k = r->tok ? tern_tokenizer_decode_piece(r->tok, id, 0, buf, sizeof buf) : -1;
    if (k < 0) k = 0;
    if (bytes) {
        *bytes = json_array();
        for (int i = 0; i < k; i++) json_array_append_new(*bytes, json_integer((unsigned char)buf[i]));
    }
    return jstr(buf, (size_t)k);
}

static json_t *logprobs_json(const srv_resp *r, const srv_token_lp *lp, int n) {
    if (r->logprobs < 0) return json_null();
    if (r->kind == SRV_CHAT) {
        json_t *content = json_array();
        for (int i = 0; i < n; i++) {
            json_t *e = json_object(), *bytes, *top = json_array();
            json_object_set_new(e, "token", token_text(r, lp[i].id, &bytes));
            json_object_set_new(e, "logprob", json_real(lp[i].logprob));
            json_object_set_new(e, "bytes", bytes);
            for (int k = 0; k < lp[i].n_top; k++) {
                json_t *t = json_object(), *tb;
                json_object_set_new(t, "token", token_text(r, lp[i].top[k].id, &tb));
                json_object_set_new(t, "logprob", json_real(lp[i].top[k].logprob));
                json_object_set_new(t, "bytes", tb);
                json_array_append_new(top, t);
            }
            json_object_set_new(e, "top_logprobs", top);
            json_array_append_new(content, e);
        }
        json_t *o = json_object();
        json_object_set_new(o, "content", content);
        return o;
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(tokens, token_text(r, lp[i].id, NULL));
        json_array_append_new(lps, json_real(lp[i].logprob));
        json_t *t = json_object();
        for (int k = 0; k < lp[i].n_top; k++) {
            json_t *s = token_text(r, lp[i].top[k].id, NULL);
            json_object_set_new(t, json_string_value(s), json_real(lp[i].top[k].logprob));
            json_decref(s);
        }
        json_array_append_new(tops, t);
        json_array_append_new(offs, json_integer((json_int_t)lp[i].offset));
    }
    json_t *o = json_object();
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "token_logprobs", lps);
    json_object_set_new(o, "top_logprobs", tops);
    json_object_set_new(o, "text_offset", offs);
    return o;
}

static json_t *usage_json(srv_usage u) {
    json_t *o = json_object();
    json_object_set_new(o, "prompt_tokens", json_integer(u.prompt));
    json_object_set_new(o, "completion_tokens", json_integer(u.completion));
    json_object_set_new(o, "total_tokens", json_integer(u.prompt + u.completion));
    return o;
}

static json_t *envelope(const srv_resp *r, int chunk) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "object", json_string(r->kind == SRV_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"));
    json_object_set_new(o, "created", json_integer(r->created));
    json_object_set_new(o, "model", jstr(r->model, strlen(r->model)));
    json_object_set_new(o, "system_fingerprint", json_string("tern"));
    return o;
}

static char *dump(json_t *root, size_t *len) {
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!s) tern_fatal("out of memory (response body)");
    if (len) *len = strlen(s);
    return s;
}

char *srv_json_response(const srv_resp *r, const char *text, size_t len, const srv_token_lp *lp, int n_lp,
                        const char *finish_reason, srv_usage usage, size_t *out_len) {
    json_t *o = envelope(r, 0), *choice = json_object(), *choices = json_array();
    json_object_set_new(choice, "index", json_integer(0));
    if (r->kind == SRV_CHAT) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", jstr(text, len));
        json_object_set_new(choice, "message", msg);
    } else json_object_set_new(choice, "text", jstr(text, len));
    json_object_set_new(choice, "logprobs", logprobs_json(r, lp, n_lp));
    json_object_set_new(choice, "finish_reason", json_string(finish_reason));
    json_array_append_new(choices, choice);
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage_json(usage));
    return dump(o, out_len);
}

void srv_sse_chunk(srv_buf *out, const srv_resp *r, const char *text, size_t len, const srv_token_lp *lp, int n_lp,
                   const char *finish_reason, const srv_usage *usage, int role_delta, int usage_only) {
    json_t *o = envelope(r, 1), *choices = json_array();
    if (!usage_only) {
        json_t *choice = json_object();
        json_object_set_new(choice, "index", json_integer(0));
        if (r->kind == SRV_CHAT) {
            json_t *delta = json_object();
            if (role_delta) json_object_set_new(delta, "role", json_string("assistant"));
            if (len || role_delta) json_object_set_new(delta, "content", jstr(text, len));
            json_object_set_new(choice, "delta", delta);
        } else json_object_set_new(choice, "text", jstr(text, len));
        json_object_set_new(choice, "logprobs", logprobs_json(r, lp, n_lp));
        json_object_set_new(choice, "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
        json_array_append_new(choices, choice);
    }
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage ? usage_json(*usage) : json_null());
    size_t n;
    char *s = dump(o, &n);
    srv_buf_add(out, "data: ", 6);
    srv_buf_add(out, s, n);
    srv_buf_add(out, "\n\n", 2);
    free(s);
}
