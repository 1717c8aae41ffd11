// api.h — the OpenAI-style JSON of tern-server (jansson): requests parsed into srv_request with
// every field type- and range-checked, OpenAI error objects, and the response bodies (whole
// responses and server-sent-event chunks). No HTTP and no model here: unit-tested and fuzzed alone
// (tests/fuzz/fuzz_server_request.c). docs/SERVER.md lists the fields and their limits.
#ifndef TERN_SERVER_API_H
#define TERN_SERVER_API_H
#include <stddef.h>
#include <stdint.h>
#include "server/text.h"
#include "tokenizers/tokenizer.h"

enum { SRV_COMPLETION = 1, SRV_CHAT = 2 };
#define SRV_MAX_STOPS 16        // stop sequences per request
#define SRV_MAX_STOP_LEN 256    // bytes per stop sequence
#define SRV_MAX_LOGPROBS 20     // alternatives per token
#define SRV_MAX_BIAS 1024       // logit_bias entries
#define SRV_MAX_MESSAGES 4096   // chat messages per request
#define SRV_MAX_TOKENS (1 << 24)

// An OpenAI error: {"error": {"message", "type", "param", "code"}} with an HTTP status.
typedef struct {
    int status;
    const char *type;       // "invalid_request_error", "authentication_error", "not_found_error", ...
    const char *code;       // machine-readable or NULL
    char param[64];         // the offending field, or ""
    char message[512];
} srv_error;
void srv_error_set(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
// The error's JSON body (malloc'd, NUL-terminated); *len its length.
char *srv_error_json(const srv_error *e, size_t *len);

typedef struct {
    char *role;             // "system" (also for "developer"), "user" or "assistant"
    char *content;          // bytes (may hold NUL), NUL-terminated
    size_t content_len;
} srv_message;

typedef struct { int id; float bias; } srv_bias;

typedef struct {
    int kind;               // SRV_COMPLETION / SRV_CHAT
    char *model;            // NULL when not given
    int stream;
    int include_usage;      // stream_options.include_usage
    // completions
    char *prompt;           // text prompt (NUL-terminated, may hold NUL), or NULL
    size_t prompt_len;
    int *prompt_ids;        // token-id prompt (prompt_is_ids), used as given (no BOS added)
    int n_prompt_ids;
    int prompt_is_ids;
    int echo;
    // chat
    srv_message *messages;
    int n_messages;
    // generation
    long max_tokens;        // -1: not given (completions: 16, chat: until the context is full)
    float temperature;      // 0..2, default 0.8 (0: greedy)
    float top_p;            // (0, 1], default 0.95
    int top_k;              // 0 (off) .. vocab, default 40
    int has_seed;
    uint64_t seed;
    float presence_penalty, frequency_penalty;   // -2..2, default 0
    srv_bias *bias;         // logit_bias
    int n_bias;
    char *stop[SRV_MAX_STOPS];
    size_t stop_len[SRV_MAX_STOPS];
    int n_stop;
    int logprobs;           // -1: off; else alternatives per token (0..SRV_MAX_LOGPROBS)
} srv_request;

// Parse the body of a POST to /v1/completions (kind SRV_COMPLETION) or /v1/chat/completions.
// Token ids are checked against vocab_size. 0, or -1 with e set (status 400) and r freed.
int srv_parse_request(const char *body, size_t len, int kind, int vocab_size, srv_request *r, srv_error *e);
void srv_request_free(srv_request *r);

// POST /tokenize {"content": str, "add_special": bool = false, "with_pieces": bool = false}
int srv_parse_tokenize(const char *body, size_t len, char **content, size_t *content_len, int *add_special, int *with_pieces,
                       srv_error *e);
// POST /detokenize {"tokens": [int]}; *ids malloc'd
int srv_parse_detokenize(const char *body, size_t len, int vocab_size, int **ids, int *n, srv_error *e);

// ---- responses ----
// The log-probability record of one generated token: its id, its log-probability under the
// model (log-softmax of the raw logits, before temperature and filters), the top alternatives.
typedef struct { int id; float logprob; } srv_top;
typedef struct {
    int id;
    float logprob;
    size_t offset;          // byte offset of the token's text in the completion text
    int n_top;
    srv_top top[SRV_MAX_LOGPROBS];
} srv_token_lp;

typedef struct {
    int kind;
    const char *id;         // "cmpl-..." / "chatcmpl-..."
    const char *model;
    long long created;      // unix seconds
    const tern_tokenizer *tok;   // token texts of logprobs
    int logprobs;           // as in the request (-1: "logprobs": null)
} srv_resp;

typedef struct { int prompt, completion; } srv_usage;

// A whole (non-streaming) response; text: well-formed UTF-8. Returns malloc'd JSON.
char *srv_json_response(const srv_resp *r, const char *text, size_t len, const srv_token_lp *lp, int n_lp,
                        const char *finish_reason, srv_usage usage, size_t *out_len);
// One server-sent event "data: {...}\n\n" appended to out: a chunk of text (and its tokens'
// logprobs); finish_reason and usage (non-NULL) on the last one; role_delta: the chat stream's
// first chunk (delta.role). usage_only: the stream_options.include_usage chunk (choices: []).
void srv_sse_chunk(srv_buf *out, const srv_resp *r, const char *text, size_t len, const srv_token_lp *lp, int n_lp,
                   const char *finish_reason, const srv_usage *usage, int role_delta, int usage_only);

#endif
