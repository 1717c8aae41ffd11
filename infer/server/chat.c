// chat.c — see chat.h. The formats follow the templates' published text:
//   ChatML (Qwen, SmolLM, ...): the model's tokenizer.chat_template contains "<|im_start|>"
//   LLaMA-3: contains "<|start_header_id|>" and "<|end_header_id|>"; content trimmed
//   BitNet b1.58 2B4T (microsoft/bitnet-b1.58-2B-4T): its Hugging Face tokenizer_config.json
//     template ("message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>'",
//     generation prompt 'Assistant: '), or the template Microsoft's GGUF converter
//     (BitNet utils/convert-ms-to-gguf-bitnet.py) writes into its files ("Human: ... \n\n
//     BITNETAssistant: " + eos_token). The latter ends every user turn with the end-of-text token
//     before the reply and drops system messages; the model was trained on the former, so both
//     render the former (docs/SERVER.md).
#include "server/chat.h"
#include "util.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *names[SRV_TMPL_COUNT] = {"plain", "chatml", "llama3", "bitnet"};

const char *srv_chat_name(srv_template t) { return t >= 0 && t < SRV_TMPL_COUNT ? names[t] : "?"; }

int srv_chat_parse_name(const char *s, srv_template *t) {
    for (int i = 0; i < SRV_TMPL_COUNT; i++)
        if (!strcmp(s, names[i])) { *t = (srv_template)i; return 0; }
    return -1;
}

srv_template srv_chat_detect(const char *tmpl) {
    if (!tmpl) return SRV_TMPL_PLAIN;
    if (strstr(tmpl, "<|im_start|>")) return SRV_TMPL_CHATML;
    if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>")) return SRV_TMPL_LLAMA3;
    if (strstr(tmpl, "BITNETAssistant")) return SRV_TMPL_BITNET;
    if (strstr(tmpl, "<|eot_id|>") && strstr(tmpl, "capitalize") && strstr(tmpl, "'Assistant: '")) return SRV_TMPL_BITNET;
    return SRV_TMPL_PLAIN;
}

static void add_part(srv_chat_prompt *p, int special, const char *s, size_t n) {
    if (!n) return;
    if (!special && p->n_parts && !p->parts[p->n_parts - 1].special) {   // merge adjacent text
        srv_buf_add(&p->text, s, n);
        p->parts[p->n_parts - 1].len += n;
        return;
    }
    if (p->n_parts == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->parts = realloc(p->parts, sizeof *p->parts * (size_t)p->cap);
        if (!p->parts) tern_fatal("out of memory (chat prompt)");
    }
    p->parts[p->n_parts++] = (srv_chat_part){special, p->text.len, n};
    srv_buf_add(&p->text, s, n);
}
static void text(srv_chat_prompt *p, const char *s) { add_part(p, 0, s, strlen(s)); }
static void special(srv_chat_prompt *p, const char *s) { add_part(p, 1, s, strlen(s)); }

// content with ASCII whitespace trimmed at both ends (llama.cpp's trim, Jinja's |trim)
static void trimmed(srv_chat_prompt *p, const srv_message *m) {
    size_t a = 0, b = m->content_len;
    while (a < b && isspace((unsigned char)m->content[a])) a++;
    while (b > a && isspace((unsigned char)m->content[b - 1])) b--;
    add_part(p, 0, m->content + a, b - a);
}

void srv_chat_render(srv_template t, const srv_message *msgs, int n, srv_chat_prompt *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        const srv_message *m = &msgs[i];
        switch (t) {
        case SRV_TMPL_CHATML:
            special(out, "<|im_start|>");
            text(out, m->role);
            text(out, "\n");
            add_part(out, 0, m->content, m->content_len);
            special(out, "<|im_end|>");
            text(out, "\n");
            break;
        case SRV_TMPL_LLAMA3:
            special(out, "<|start_header_id|>");
            text(out, m->role);
            special(out, "<|end_header_id|>");
            text(out, "\n\n");
            trimmed(out, m);
            special(out, "<|eot_id|>");
            break;
        case SRV_TMPL_BITNET:
        case SRV_TMPL_PLAIN: {
            char role[16];
            snprintf(role, sizeof role, "%s", m->role);
            role[0] = (char)toupper((unsigned char)role[0]);
            text(out, role);
            text(out, ": ");
            if (t == SRV_TMPL_BITNET) {
                trimmed(out, m);
                special(out, "<|eot_id|>");
            } else {
                add_part(out, 0, m->content, m->content_len);
                text(out, "\n");
            }
            break;
        }
        default: break;
        }
    }
    switch (t) {
    case SRV_TMPL_CHATML: special(out, "<|im_start|>"); text(out, "assistant\n"); break;
    case SRV_TMPL_LLAMA3: special(out, "<|start_header_id|>"); text(out, "assistant"); special(out, "<|end_header_id|>"); text(out, "\n\n"); break;
    case SRV_TMPL_BITNET: text(out, "Assistant: "); break;
    default: text(out, "Assistant:"); break;
    }
}

void srv_chat_prompt_free(srv_chat_prompt *p) {
    srv_buf_free(&p->text);
    free(p->parts);
    memset(p, 0, sizeof *p);
}

int srv_chat_tokenize(const tern_tokenizer *tok, const srv_chat_prompt *p, int bos, int **ids, int *n) {
    int cap = 64, k = 0;
    int *out = tern_xmalloc(sizeof(int) * (size_t)cap);
    if (bos >= 0) out[k++] = bos;
    for (int i = 0; i < p->n_parts; i++) {
        const srv_chat_part *pt = &p->parts[i];
        const char *s = p->text.p + pt->off;
        int id = pt->special ? tern_tokenizer_piece_id(tok, s, pt->len) : -1;
        if (id >= 0 && tok->types[id] == TERN_PIECE_CONTROL) {
            if (k == cap) { cap *= 2; out = realloc(out, sizeof(int) * (size_t)cap); if (!out) tern_fatal("out of memory"); }
            out[k++] = id;
            continue;
        }
        int *t = NULL, nt = 0;
        if (tern_tokenizer_encode(tok, s, pt->len, 0, &t, &nt)) { free(out); return -1; }
        if (k + nt > cap) {
            while (k + nt > cap) cap *= 2;
            out = realloc(out, sizeof(int) * (size_t)cap);
            if (!out) tern_fatal("out of memory");
        }
        memcpy(out + k, t, sizeof(int) * (size_t)nt);
        k += nt;
        free(t);
    }
    *ids = out;
    *n = k;
    return 0;
}

int srv_chat_stops(srv_template t, const char **stops, int cap) {
    if (t == SRV_TMPL_PLAIN && cap >= 1) { stops[0] = "\nUser:"; return 1; }
    return 0;
}

int srv_chat_eog_ids(const tern_gguf *g, const tern_tokenizer *tok, int *out, int cap) {
    int n = 0;
    if (tok->eos_id >= 0 && n < cap) out[n++] = tok->eos_id;   // a vocabulary may have none
    int64_t v;
    if (g && n < cap && tern_gguf_find_kv(g, "tokenizer.ggml.eot_token_id") >= 0 &&
        !tern_gguf_get_i64(g, "tokenizer.ggml.eot_token_id", &v) && v >= 0 && v < tok->vocab_size && v != tok->eos_id)
        out[n++] = (int)v;
    static const char *const names[] = {"<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "<|end|>", "<end_of_turn>", "</s>"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < cap; i++) {
        int id = tern_tokenizer_piece_id(tok, names[i], strlen(names[i]));
        if (id < 0 || tok->types[id] != TERN_PIECE_CONTROL) continue;
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= out[k] == id;
        if (!dup) out[n++] = id;
    }
    return n;
}
