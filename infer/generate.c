// generate.c — text generation with a bitnet GGUF, streaming the continuation to stdout.
//   tern-generate -m model.gguf -p "prompt" [-n 256] [--temp 0.8] [--top-k 40] [--top-p 0.95]
//                 [--seed 42] [--greedy] [-c ctx] [-b batch] [--kernel K]
//                 [--ids] [--tokenize] [--no-bos] [--special] [--kv q8|f32]
// Prints prefill and decode tokens/s on stderr. --ids prints generated token ids instead of
// text; --tokenize prints the prompt's token ids and exits. The prompt starts with bos when the
// tokenizer adds one by default (tokenizer.ggml.add_bos_token) unless --no-bos; --special
// matches control tokens written in the prompt (e.g. <|eot_id|>, as llama.cpp's parse_special).
#include "runtime.h"
#include "tokenizers/tokenizer.h"
#include "util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f, int rc) {
    fprintf(f,
            "usage: tern-generate -m model.gguf -p \"prompt\" [-n 256] [--temp 0.8] [--top-k 40] [--top-p 0.95]\n"
            "                     [--seed 42] [--greedy] [-c ctx] [-b batch=64] [--kernel K]\n"
            "                     [--ids] [--tokenize] [--no-bos] [--special] [--kv q8|f32]\n"
            "  -n N       tokens to generate (default 256, fewer if the context ends first; an explicit N must fit)\n"
            "  --temp T   0..100 (0 = greedy)   --top-k K  0 (off)..vocab   --top-p P  (0, 1]\n"
            "  -c ctx     1..the model's context (default: the model's)    -b batch  1..4096\n"
            "  --kernel K one of " TERN_KERNEL_NAMES "\n"
            "  --special  match control tokens (e.g. <|eot_id|>) written in the prompt\n"
            "  --kv       the KV cache: q8 (int8 per head row, default) or f32\n");
    exit(rc);
}

static void die(const char *msg) {
    fprintf(stderr, "tern-generate: %s\n", msg);
    exit(1);
}

int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 0);   // passive OpenMP workers on a busy machine (util.h)
    const char *path = NULL, *prompt = NULL;
    long n_gen = 256, ctx = 0, batch = 64, seed = 42, top_k = 40;
    float temp = 0.8f, top_p = 0.95f;
    int print_ids = 0, tokenize_only = 0, add_bos = 1, special = 0, n_explicit = 0, c_explicit = 0;
    tern_kernel_kind kind = TERN_KERNEL_AUTO;
    int kv = TERN_KV_Q8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *ldst = NULL;
        float *fdst = NULL;
        if (!strcmp(a, "--greedy")) { temp = 0.0f; continue; }
        if (!strcmp(a, "--ids")) { print_ids = 1; continue; }
        if (!strcmp(a, "--tokenize")) { tokenize_only = 1; continue; }
        if (!strcmp(a, "--no-bos")) { add_bos = 0; continue; }
        if (!strcmp(a, "--special")) { special = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(stdout, 0);
        if (!v) { fprintf(stderr, "tern-generate: %s needs a value\n", a); usage(stderr, 2); }
        i++;
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "--kv")) {
            if ((kv = rt_kv_parse(v)) < 0) die("--kv: expected q8 or f32");
        } else if (!strcmp(a, "--kernel")) {
            if (tern_kernel_parse(v, &kind)) die("--kernel: expected one of " TERN_KERNEL_NAMES);
        } else if (!strcmp(a, "-n")) ldst = &n_gen;
        else if (!strcmp(a, "-c")) ldst = &ctx;
        else if (!strcmp(a, "-b")) ldst = &batch;
        else if (!strcmp(a, "--seed")) ldst = &seed;
        else if (!strcmp(a, "--top-k")) ldst = &top_k;
        else if (!strcmp(a, "--temp")) fdst = &temp;
        else if (!strcmp(a, "--top-p")) fdst = &top_p;
        else { fprintf(stderr, "tern-generate: unknown option '%s'\n", a); usage(stderr, 2); }
        if (ldst && (tern_parse_long(v, ldst) || *ldst < 0)) { fprintf(stderr, "tern-generate: %s: expected a non-negative integer, got '%s'\n", a, v); return 2; }
        if (fdst && (tern_parse_float(v, fdst) || *fdst < 0)) { fprintf(stderr, "tern-generate: %s: expected a non-negative number, got '%s'\n", a, v); return 2; }
        if (!strcmp(a, "-n")) n_explicit = 1;
        if (!strcmp(a, "-c")) c_explicit = 1;
    }
    if (!path || !prompt) usage(stderr, 2);
    // ranges (an out-of-range value is an error, never clamped)
    if (!(top_p > 0.0f && top_p <= 1.0f)) { fprintf(stderr, "tern-generate: --top-p %g: must be in (0, 1]\n", (double)top_p); return 2; }
    if (temp > 100.0f) { fprintf(stderr, "tern-generate: --temp %g: must be in [0, 100]\n", (double)temp); return 2; }
    if (batch < 1 || batch > 4096) { fprintf(stderr, "tern-generate: -b %ld: must be in [1, 4096]\n", batch); return 2; }
    if (c_explicit && ctx < 1) { fprintf(stderr, "tern-generate: -c %ld: must be at least 1\n", ctx); return 2; }
    if (n_gen > (1L << 30) || top_k > (1L << 24) || ctx > (1L << 30)) { fprintf(stderr, "tern-generate: -n, -c or --top-k is absurdly large\n"); return 2; }
    if (kind != TERN_KERNEL_AUTO && tern_kernel_force(kind)) die(tern_last_error());
    tern_rt_model m;
    if (build_model(&m, path)) die(tern_last_error());
    if (ctx > m.config.seq_len) {
        fprintf(stderr, "tern-generate: -c %ld: the model's context is %d tokens\n", ctx, m.config.seq_len);
        free_model(&m);
        return 2;
    }
    if (top_k > m.config.vocab_size) {
        fprintf(stderr, "tern-generate: --top-k %ld: the model has %d tokens (0 turns top-k off)\n", top_k, m.config.vocab_size);
        free_model(&m);
        return 2;
    }
    tern_tokenizer tok;
    if (rt_require_vocab(&m) || rt_build_tokenizer(&m, &tok)) die(tern_last_error());
    int *ids = NULL, n_prompt = 0;
    int flags = (add_bos && tok.add_bos ? TERN_ENC_BOS : 0) | (special ? TERN_ENC_SPECIAL : 0);
    if (tern_tokenizer_encode_ex(&tok, prompt, strlen(prompt), flags, &ids, &n_prompt)) die(tern_last_error());
    if (tokenize_only) {
        for (int i = 0; i < n_prompt; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        free(ids);
        tern_tokenizer_free(&tok);
        free_model(&m);
        return 0;
    }
    if (n_prompt < 1) die("empty prompt (no tokens); drop --no-bos or give text");
    if (rt_check_prompt(&m, n_prompt, (int)ctx)) die(tern_last_error());
    tern_rt_state s;
    if (build_state_kv(&s, &m, (int)batch, (int)ctx, kv)) die(tern_last_error());
    if (n_gen > s.seq_len - n_prompt) {
        if (n_explicit) {
            fprintf(stderr, "tern-generate: -n %ld: only %d tokens fit the context of %d after the %d-token prompt\n", n_gen,
                    s.seq_len - n_prompt, s.seq_len, n_prompt);
            free_state(&s);
            free(ids);
            tern_tokenizer_free(&tok);
            free_model(&m);
            return 2;
        }
        n_gen = s.seq_len - n_prompt;   // the default: as many as fit
    }
    tern_sampler sp;
    build_sampler(&sp, m.config.vocab_size, temp, (int)top_k, top_p, (uint64_t)seed);
    fprintf(stderr, "tern-generate: %s: %d layers, dim %d, vocab %d, context %d; kernel %s, %d threads\n", path,
            m.config.n_layers, m.config.dim, m.config.vocab_size, s.seq_len, tern_kernel_name(tern_kernel_best()),
            omp_get_max_threads());
    // prompt text first (as the tokenizer reproduces it), then the continuation, streamed
    char piece[TERN_TOK_MAX_PIECE + 8];
    int first_text = 1;
    if (!print_ids) {
        for (int i = 0; i < n_prompt; i++) {
            int k = tern_tokenizer_decode_piece(&tok, ids[i], first_text, piece, sizeof piece);
            if (k > 0) fwrite(piece, 1, (size_t)k, stdout);
            if (tok.types[ids[i]] != TERN_PIECE_CONTROL && tok.types[ids[i]] != TERN_PIECE_UNKNOWN) first_text = 0;   // even if it printed nothing
        }
        fflush(stdout);
    }
    double t0 = tern_time();
    float *logits = forward_prompt(&m, &s, ids, n_prompt, 0);
    double t1 = tern_time();
    int pos = n_prompt, n_done = 0;
    for (; n_done < n_gen; n_done++) {
        int next = sample(&sp, logits);
        if (print_ids) printf("%s%d", n_done ? " " : "", next);
        else {
            int k = tern_tokenizer_decode_piece(&tok, next, first_text, piece, sizeof piece);
            if (k > 0) fwrite(piece, 1, (size_t)k, stdout);
            if (tok.types[next] != TERN_PIECE_CONTROL && tok.types[next] != TERN_PIECE_UNKNOWN) first_text = 0;
        }
        fflush(stdout);
        if (next == tok.eos_id) { n_done++; break; }
        if (n_done + 1 == n_gen) { n_done++; break; }
        logits = forward(&m, &s, &next, 1, pos++, 0);
    }
    double t2 = tern_time();
    printf("\n");
    fprintf(stderr, "prefill: %d tokens in %.3f s (%.2f tok/s); decode: %d tokens in %.3f s (%.2f tok/s)\n", n_prompt, t1 - t0,
            n_prompt / (t1 - t0), n_done, t2 - t1, n_done > 1 ? (n_done - 1) / (t2 - t1) : 0.0);
    free_sampler(&sp);
    free_state(&s);
    free(ids);
    tern_tokenizer_free(&tok);
    free_model(&m);
    return 0;
}
