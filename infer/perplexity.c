// perplexity.c — perplexity of a bitnet GGUF over a text file.
//   tern-perplexity -m model.gguf -f text.txt [-c ctx] [-b batch] [--max-tokens N] [--kernel k] [--kv q8|f32]
// --kv: the KV cache type (q8, the default: int8; f32: exact)
// The text is tokenized as one string (no <s>, as tern-eval --text does; --bos prepends it) and
// cut into the windows of src/training/eval.h: consecutive windows of ctx+1 tokens that overlap by one;
// window w feeds tokens [w*ctx, w*ctx + ctx) from position 0 and scores the next token at every
// position, so every token after the first is scored exactly once. ctx defaults to the model's
// context; a last partial window is scored too. So with the default ctx the result equals
// tern-eval's on the checkpoint the GGUF was exported from. Prints ppl = exp(mean NLL) and the count,
// then the mean NLL to 9 decimals.
#include "runtime.h"
#include "tokenizers/tokenizer.h"
#include "util.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f, int rc) {
    fprintf(f, "usage: tern-perplexity -m model.gguf -f text.txt [-c ctx] [-b batch=64] [--max-tokens N]\n"
               "                       [--kernel K] [--kv q8|f32] [--bos]     K: " TERN_KERNEL_NAMES "\n"
               "  -c ctx  1..the model's context (default: the model's)   -b batch  1..4096   --max-tokens N  >= 2\n");
    exit(rc);
}

static void die(const char *msg) {
    fprintf(stderr, "tern-perplexity: %s\n", msg);
    exit(1);
}

int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 0);   // passive OpenMP workers on a busy machine (util.h)
    const char *path = NULL, *text_path = NULL;
    long ctx = 0, batch = 64, max_tokens = 0;
    int add_bos = 0, c_explicit = 0, m_explicit = 0;
    tern_kernel_kind kind = TERN_KERNEL_AUTO;
    int kv = TERN_KV_Q8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *ldst = NULL;
        if (!strcmp(a, "--bos")) { add_bos = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(stdout, 0);
        if (!v) { fprintf(stderr, "tern-perplexity: %s needs a value\n", a); usage(stderr, 2); }
        i++;
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "-f")) text_path = v;
        else if (!strcmp(a, "--kv")) {
            if ((kv = rt_kv_parse(v)) < 0) die("--kv: expected q8 or f32");
        } else if (!strcmp(a, "--kernel")) {
            if (tern_kernel_parse(v, &kind)) die("--kernel: expected one of " TERN_KERNEL_NAMES);
        } else if (!strcmp(a, "-c")) ldst = &ctx;
        else if (!strcmp(a, "-b")) ldst = &batch;
        else if (!strcmp(a, "--max-tokens")) ldst = &max_tokens;
        else { fprintf(stderr, "tern-perplexity: unknown option '%s'\n", a); usage(stderr, 2); }
        if (ldst && (tern_parse_long(v, ldst) || *ldst < 0)) { fprintf(stderr, "tern-perplexity: %s: expected a non-negative integer, got '%s'\n", a, v); return 2; }
        if (ldst == &ctx) c_explicit = 1;
        if (ldst == &max_tokens) m_explicit = 1;
    }
    if (!path || !text_path) usage(stderr, 2);
    if (c_explicit && (ctx < 1 || ctx > (1L << 30))) { fprintf(stderr, "tern-perplexity: -c %ld: must be at least 1\n", ctx); return 2; }
    if (batch < 1 || batch > 4096) { fprintf(stderr, "tern-perplexity: -b %ld: must be in [1, 4096]\n", batch); return 2; }
    if (m_explicit && (max_tokens < 2 || max_tokens > 2147483647L)) {
        fprintf(stderr, "tern-perplexity: --max-tokens %ld: must be in [2, 2147483647]\n", max_tokens);
        return 2;
    }
    if (kind != TERN_KERNEL_AUTO && tern_kernel_force(kind)) die(tern_last_error());
    tern_rt_model m;
    if (build_model(&m, path)) die(tern_last_error());
    if (ctx > m.config.seq_len) {
        fprintf(stderr, "tern-perplexity: -c %ld: the model's context is %d tokens\n", ctx, m.config.seq_len);
        free_model(&m);
        return 2;
    }
    if (ctx == 0) ctx = m.config.seq_len;
    tern_tokenizer tok;
    if (rt_require_vocab(&m) || rt_build_tokenizer(&m, &tok)) die(tern_last_error());
    size_t len;
    char *text = tern_read_file(text_path, &len);
    if (!text) die(tern_last_error());
    int *ids = NULL, n = 0;
    if (tern_tokenizer_encode(&tok, text, len, add_bos, &ids, &n)) die(tern_last_error());
    free(text);
    if (max_tokens > 0 && n > max_tokens) n = (int)max_tokens;
    if (n < 2) {
        fprintf(stderr, "tern-perplexity: %s: too little text (%d tokens; need at least 2)\n", text_path, n);
        return 1;
    }
    tern_rt_state s;
    if (build_state_kv(&s, &m, (int)batch, (int)ctx, kv)) die(tern_last_error());
    long scored = 0;
    int windows = 0;
    double t0 = tern_time();
    double nll = rt_nll(&m, &s, ids, n, (int)ctx, &scored, &windows);
    double dt = tern_time() - t0;
    printf("perplexity: %.4f over %ld tokens (%d windows of context %ld; %s: %d tokens)\n", exp(nll / (double)scored), scored,
           windows, ctx, text_path, n);
    printf("mean NLL: %.9f nats/token\n", nll / (double)scored);   // full precision, for comparisons
    fprintf(stderr, "tern-perplexity: %.1f tokens/s, kernel %s, %d threads\n", scored / dt, tern_kernel_name(tern_kernel_best()),
            omp_get_max_threads());
    free(ids);
    free_state(&s);
    tern_tokenizer_free(&tok);
    free_model(&m);
    return 0;
}
