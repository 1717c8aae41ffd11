// eval.c — evaluate a checkpoint: mean loss, perplexity and bits per byte over sequential
// windows of the model's context (eval.h defines them; tern-perplexity uses the same).
//
//   tern-eval CHECKPOINT.h5 (--data TOKENS.tok | --text FILE.txt) [--batch N] [--max-windows N] [--fp]
//
// --text tokenizes the file with the checkpoint's own tokenizer (space prefix, no BOS). --fp
// evaluates a ternary checkpoint with its BitLinears in full precision (for comparisons).
#include "formats/checkpoint.h"
#include "training/eval.h"
#include "formats/tokfile.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: tern-eval CHECKPOINT.h5 (--data TOKENS.tok | --text FILE.txt) [--batch N] [--max-windows N] [--fp]\n"
               "  --batch N        windows per forward pass, 1..4096 (default 8)\n"
               "  --max-windows N  evaluate at most N windows (N >= 1; default all)\n"
               "  --fp             a ternary checkpoint with full-precision BitLinears\n");
    return rc;
}

#define DIE(...) do { fprintf(stderr, "tern-eval: " __VA_ARGS__); fputc('\n', stderr); rc = 1; goto out; } while (0)

int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 0);   // passive OpenMP workers on a busy machine (util.h)
    const char *ckpt = NULL, *data = NULL, *text = NULL;
    long batch = 8, maxw = 0;
    int fp = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (tern_parse_long(argv[++i], &batch) || batch < 1 || batch > 4096) {
                fprintf(stderr, "tern-eval: --batch '%s': must be an integer in [1, 4096]\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--max-windows") && i + 1 < argc) {
            if (tern_parse_long(argv[++i], &maxw) || maxw < 1) {
                fprintf(stderr, "tern-eval: --max-windows '%s': must be a positive integer\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--fp")) fp = 1;
        else if (argv[i][0] == '-' || ckpt) { fprintf(stderr, "tern-eval: unexpected argument '%s'\n", argv[i]); return usage(stderr, 2); }
        else ckpt = argv[i];
    }
    if (!ckpt || (!data) == (!text)) return usage(stderr, 2);
    tern_model_config mc;
    tern_model m = {0};
    tern_tokenizer tok;
    int has_tok = 0;
    int *ids = NULL;
    long n = 0;
    tern_tokfile tf;
    int has_tf = 0;
    if (tern_checkpoint_read_config(ckpt, &mc) != 0) DIE("%s", tern_last_error());
    tern_model_build_frozen(&m, &mc);   // values only: evaluation needs no gradients
    if (tern_checkpoint_load(ckpt, &mc, &m.params, NULL) < 0) DIE("%s", tern_last_error());
    if (fp) m.quant_lambda = 0.0f;
    void *tb = NULL;
    size_t tn = 0;
    int trc = tern_checkpoint_read_tokenizer(ckpt, &tb, &tn);
    if (trc < 0) DIE("%s", tern_last_error());
    if (trc == 1) {
        if (tern_tokenizer_from_bytes(&tok, tb, tn, ckpt) != 0) { free(tb); DIE("%s", tern_last_error()); }
        free(tb);
        has_tok = 1;
    }
    if (text) {
        if (!has_tok) DIE("%s: has no tokenizer; tokenize the text yourself and pass --data", ckpt);
        size_t len;
        char *buf = tern_read_file(text, &len);
        if (!buf) DIE("%s", tern_last_error());
        int ni;
        if (tern_tokenizer_encode(&tok, buf, len, 0, &ids, &ni) != 0) { free(buf); DIE("%s: %s", text, tern_last_error()); }
        free(buf);
        n = ni;
    } else {
        if (tern_tokfile_open(&tf, data) != 0) DIE("%s", tern_last_error());
        has_tf = 1;
        if (tf.vocab_size > mc.vocab_size) DIE("%s: vocab %d is larger than the model's %d", data, tf.vocab_size, mc.vocab_size);
        if (has_tok && tf.tokenizer_hash != tern_tokenizer_hash(&tok)) DIE("%s: made with a different tokenizer than %s", data, ckpt);
        n = (long)tf.n_tokens;
        ids = tern_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
        tern_tokfile_read(&tf, 0, n, ids);
    }
    if (n < 2) DIE("%s: fewer than 2 tokens: nothing to evaluate", text ? text : data);
    double t0 = tern_time();
    tern_eval_result r;
    tern_eval_ids(&m, ids, n, (int)batch, maxw, has_tok ? &tok : NULL, &r);
    printf("eval %s on %s: %s, %ld windows of %d, %ld tokens scored\n", ckpt, text ? text : data,
           m.quant_lambda > 0 ? "ternary" : "full precision", r.n_windows, mc.seq_len, r.n_scored);
    printf("loss %.6f  ppl %.4f", r.loss, r.ppl);
    if (r.n_bytes) printf("  bits/byte %.4f (%ld bytes)", r.bpb, r.n_bytes);
    printf("  [%.1f s]\n", tern_time() - t0);
out:
    free(ids);
    if (has_tf) tern_tokfile_close(&tf);
    if (has_tok) tern_tokenizer_free(&tok);
    tern_model_free(&m);
    return rc;
}
