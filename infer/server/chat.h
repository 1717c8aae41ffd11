// chat.h — chat templates of tern-server: which one a model's tokenizer.chat_template names, and
// rendering messages into a prompt. Not a Jinja interpreter: like llama.cpp, the GGUF's template
// text is matched against known templates (docs/SERVER.md lists them) and the matching format is
// written here in C; anything else gets the documented plain template.
//
// The rendered prompt is a list of parts: text, and the template's own special tokens
// (<|im_start|>, <|eot_id|>, ...), which become their token ids when the vocabulary has them as
// control tokens (text inside messages is always plain text, so a user cannot inject them).
#ifndef TERN_SERVER_CHAT_H
#define TERN_SERVER_CHAT_H
#include "server/api.h"
#include "server/text.h"
#include "formats/gguf.h"
#include "tokenizers/tokenizer.h"

typedef enum {
    SRV_TMPL_PLAIN = 0,   // "System: ...\nUser: ...\nAssistant: ...\nAssistant:" (stops at "\nUser:")
    SRV_TMPL_CHATML,      // <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
    SRV_TMPL_LLAMA3,      // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> ...
    SRV_TMPL_BITNET,      // BitNet b1.58 2B4T: Role: content<|eot_id|> ... Assistant:
    SRV_TMPL_COUNT
} srv_template;

// The template a GGUF's tokenizer.chat_template text is (NULL or unrecognized: plain).
srv_template srv_chat_detect(const char *tmpl);
const char *srv_chat_name(srv_template t);                 // "plain", "chatml", "llama3", "bitnet"
int srv_chat_parse_name(const char *s, srv_template *t);   // 0, or -1 for an unknown name

typedef struct { int special; size_t off, len; } srv_chat_part;   // bytes text.p[off .. off+len)
typedef struct {
    srv_buf text;
    srv_chat_part *parts;
    int n_parts, cap;
} srv_chat_prompt;

// Render messages (roles "system", "user", "assistant") followed by the assistant's generation
// prompt. Adjacent text parts are merged.
void srv_chat_render(srv_template t, const srv_message *msgs, int n, srv_chat_prompt *out);
void srv_chat_prompt_free(srv_chat_prompt *p);
// Token ids of a rendered prompt: BOS first when bos >= 0; special parts as their control-token
// ids when the vocabulary has them, else as text; each text part encoded as a text of its own
// (the SentencePiece space prefix at the start and after each special token, as llama.cpp does).
// 0, or -1 (tern_error set). *ids malloc'd.
int srv_chat_tokenize(const tern_tokenizer *tok, const srv_chat_prompt *p, int bos, int **ids, int *n);
// End-of-generation token ids, at most cap: the vocabulary's EOS, the file's
// tokenizer.ggml.eot_token_id (g may be NULL), and the usual end-of-turn control tokens the
// vocabulary has (<|eot_id|>, <|im_end|>, <|end_of_text|>, <|endoftext|>, <|end|>, <end_of_turn>,
// </s>); no duplicates. Returns the count.
int srv_chat_eog_ids(const tern_gguf *g, const tern_tokenizer *tok, int *out, int cap);
// Stop sequences a template adds to every request (plain: "\nUser:"); count returned.
int srv_chat_stops(srv_template t, const char **stops, int cap);

#endif
