// fuzz_server_request.c — libFuzzer target: tern-server's request parsing (the JSON body of a
// request -> srv_request / tokenize / detokenize parameters), then what the server does next with
// a parsed request that touches no model: chat rendering of the messages, UTF-8 repair and stop
// sequence search over the prompt, and a response body built from the prompt text.
// The first input byte picks the endpoint (completions, chat, tokenize, detokenize); the rest is
// the body. Seed corpus: tests/fuzz/corpus/server_request/.
// Built by `make fuzz-build` (Makefile: FUZZ_SERVER_OBJ). Needs, besides the library sources:
// infer/server/api.c infer/server/text.c infer/server/chat.c
// and -ljansson, e.g.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -fopenmp -D_GNU_SOURCE -Isrc -Iinfer \
//     tests/fuzz/fuzz_server_request.c infer/server/api.c infer/server/text.c infer/server/chat.c \
//     src/util.c src/tokenizers/tokenizer.c -ljansson -lm -o build/fuzz_server_request
#include "server/api.h"
#include "server/chat.h"
#include "server/text.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int which = data[0] % 4;
    const char *body = (const char *)data + 1;
    const size_t len = size - 1;
    srv_error e;
    if (which == 2) {
        char *content;
        size_t clen;
        int add, pieces;
        if (!srv_parse_tokenize(body, len, &content, &clen, &add, &pieces, &e)) free(content);
        return 0;
    }
    if (which == 3) {
        int *ids, n;
        if (!srv_parse_detokenize(body, len, 1000, &ids, &n, &e)) free(ids);
        return 0;
    }
    srv_request r;
    if (srv_parse_request(body, len, which == 0 ? SRV_COMPLETION : SRV_CHAT, 1000, &r, &e)) {
        size_t n;
        free(srv_error_json(&e, &n));
        return 0;
    }
    srv_buf text = {0};
    if (r.kind == SRV_CHAT) {
        for (int t = 0; t < SRV_TMPL_COUNT; t++) {
            srv_chat_prompt p;
            srv_chat_render((srv_template)t, r.messages, r.n_messages, &p);
            if (t == SRV_TMPL_COUNT - 1) srv_buf_add(&text, p.text.p, p.text.len);
            srv_chat_prompt_free(&p);
        }
    } else if (r.prompt) srv_buf_add(&text, r.prompt, r.prompt_len);
    if (text.len) {
        // stop search as the engine does it, token by token (here: byte by byte)
        for (size_t k = 0; k <= text.len; k += 7) {
            srv_stop_find(text.p, k, k > 3 ? k - 3 : 0, r.stop, r.stop_len, r.n_stop);
            srv_stop_partial(text.p, k, r.stop, r.stop_len, r.n_stop);
        }
        srv_buf fixed = {0};
        size_t cut = srv_utf8_complete(text.p, text.len);
        srv_utf8_repair(&fixed, text.p, cut);
        srv_utf8_repair(&fixed, text.p + cut, text.len - cut);
        if (!srv_utf8_valid(fixed.p ? fixed.p : "", fixed.len)) abort();
        srv_resp resp = {.kind = r.kind, .id = "x", .model = r.model ? "m" : "n", .created = 1, .tok = NULL, .logprobs = -1};
        size_t n;
        free(srv_json_response(&resp, fixed.p ? fixed.p : "", fixed.len, NULL, 0, "stop", (srv_usage){1, 1}, &n));
        srv_buf_free(&fixed);
    }
    srv_buf_free(&text);
    srv_request_free(&r);
    return 0;
}
