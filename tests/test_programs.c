// test_programs.c — the runtime's programs end to end, against the library computing the same
// thing in this process: a checkpoint with a tokenizer -> tern-export -> GGUF; tern-generate
// (greedy ids and text, the cap at the context, sampling seeds), tern-perplexity (windows of the
// context or -c), tern-eval on the checkpoint (loss, ppl, bits per byte), tern-bench on the file,
// a random model and the machine's bandwidth; and their refusals of bad input. ~2 s.
#include "testutil.h"
#include "formats/checkpoint.h"
#include "model/model.h"
#include "runtime.h"
#include "tokenizers/tokenizer.h"
#include "training/eval.h"
#include "util.h"
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char bindir[1024], tmpdir[256], ckpt[320], gguf[320], text_path[320];
static tern_tokenizer tok;
static tern_model tm;
static char *text;
static size_t text_len;

#define CTX 64

// run "bindir/tern-NAME args", stdout and stderr into buffers; returns the exit status
static int run_prog(const char *name, const char *args, char *out, size_t nout, char *err, size_t nerr) {
    char cmd[4096], fo[400], fe[400];
    snprintf(fo, sizeof fo, "%s/out.txt", tmpdir);
    snprintf(fe, sizeof fe, "%s/err.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s/tern-%s' %s > '%s' 2> '%s'", bindir, name, args, fo, fe);
    int rc = system(cmd);
    const char *paths[2] = {fo, fe};
    char *bufs[2] = {out, err};
    size_t ns[2] = {nout, nerr};
    for (int i = 0; i < 2; i++) {
        if (!bufs[i]) continue;
        bufs[i][0] = 0;
        FILE *f = fopen(paths[i], "rb");
        if (!f) continue;
        size_t k = fread(bufs[i], 1, ns[i] - 1, f);
        bufs[i][k] = 0;
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

static int setup(void **st) {
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tern-test-programs-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    text = tern_read_file("tests/fixtures/parity.txt", &text_len);
    if (!text) return -1;
    snprintf(text_path, sizeof text_path, "tests/fixtures/parity.txt");
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = 400;
    const char *texts[1] = {text};
    if (tern_tokenizer_train(&tok, texts, &text_len, 1, &o)) return -1;
    tern_model_config c = {.dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 512, .vocab_size = tok.vocab_size,
                           .seq_len = CTX, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied_head = 1, .ternary = 1, .sub_norms = 1};
    if (tern_model_config_validate(&c)) return -1;
    tern_model_build(&tm, &c);
    tern_model_init_weights(&tm, 11);
    for (long i = 0; i < tm.params.total; i++) tm.params.data[i] *= 2.0f;   // a peakier distribution than at init
    void *tb;
    size_t tn;
    tern_tokenizer_to_bytes(&tok, &tb, &tn);
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", tmpdir);
    snprintf(gguf, sizeof gguf, "%s/model.gguf", tmpdir);
    int rc = tern_checkpoint_save(ckpt, &c, &tm.params, tb, tn, NULL);
    free(tb);
    if (rc) { fprintf(stderr, "%s\n", tern_last_error()); return -1; }
    char args[1024], err[2048];
    snprintf(args, sizeof args, "'%s' '%s' --type tq2_0 --embd f32", ckpt, gguf);
    if (run_prog("export", args, NULL, 0, err, sizeof err)) { fprintf(stderr, "tern-export: %s\n", err); return -1; }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    free(text);
    tern_tokenizer_free(&tok);
    tern_model_free(&tm);
    return system(cmd) == 0 ? 0 : -1;
}

// in-process greedy continuation of the prompt (bos + encode), at most n_gen tokens, ctx positions
static int greedy_ref(const char *prompt, int n_gen, int ctx, int *out) {
    tern_rt_model m;
    assert_int_equal(build_model(&m, gguf), 0);
    int *ids, n;
    assert_int_equal(tern_tokenizer_encode(&tok, prompt, strlen(prompt), 1, &ids, &n), 0);
    tern_rt_state s;
    assert_int_equal(build_state(&s, &m, 64, ctx), 0);
    if (n_gen > s.seq_len - n) n_gen = s.seq_len - n;
    float *lg = forward_prompt(&m, &s, ids, n, 0);
    int k = 0;
    for (; k < n_gen; k++) {
        out[k] = sample_argmax(lg, m.config.vocab_size);
        if (out[k] == m.vocab.eos_id) { k++; break; }
        if (k + 1 < n_gen) lg = forward(&m, &s, &out[k], 1, n + k, 0);
    }
    free_state(&s);
    free_model(&m);
    free(ids);
    return k;
}

static int parse_ids(const char *s, int *ids, int max) {
    int n = 0;
    char *end;
    for (const char *p = s; n < max;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int)v;
        p = end;
    }
    return n;
}

static void test_generate(void **st) {
    (void)st;
    char out[65536], err[4096], args[1024];
    int want[CTX], got[CTX];
    const char *prompt = "To be, or not";
    // greedy ids
    snprintf(args, sizeof args, "-m '%s' -p '%s' -n 20 --greedy --ids", gguf, prompt);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
    int nw = greedy_ref(prompt, 20, 0, want), ng = parse_ids(out, got, CTX);
    printf("tern-generate --greedy: %d ids (reference %d)\n", ng, nw);
    assert_int_equal(ng, nw);
    assert_memory_equal(got, want, sizeof(int) * (size_t)nw);
    assert_non_null(strstr(err, "decode:"));   // the speed line
    // text: the prompt as the tokenizer reproduces it, then the decoded continuation
    snprintf(args, sizeof args, "-m '%s' -p '%s' -n 20 --greedy", gguf, prompt);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
    int *pids, np;
    assert_int_equal(tern_tokenizer_encode(&tok, prompt, strlen(prompt), 1, &pids, &np), 0);
    int *all = malloc(sizeof(int) * (size_t)(np + nw));
    memcpy(all, pids, sizeof(int) * (size_t)np);
    memcpy(all + np, want, sizeof(int) * (size_t)nw);
    char *dec;
    size_t dl;
    assert_int_equal(tern_tokenizer_decode(&tok, all, (size_t)(np + nw), &dec, &dl), 0);
    assert_true(strlen(out) == dl + 1 && out[dl] == '\n' && memcmp(out, dec, dl) == 0);
    free(dec);
    free(all);
    // --tokenize: the prompt's ids (with <s>)
    snprintf(args, sizeof args, "-m '%s' -p '%s' --tokenize", gguf, prompt);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
    assert_int_equal(parse_ids(out, got, CTX), np);
    assert_memory_equal(got, pids, sizeof(int) * (size_t)np);
    free(pids);
    // -c 16 without -n: generation fills the context after the prompt, exactly
    snprintf(args, sizeof args, "-m '%s' -p '%s' -c 16 --greedy --ids", gguf, prompt);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
    nw = greedy_ref(prompt, 500, 16, want);
    ng = parse_ids(out, got, CTX);
    assert_int_equal(ng, nw);
    assert_memory_equal(got, want, sizeof(int) * (size_t)nw);
    assert_int_equal(nw, 16 - np);
    // an explicit -n that does not fit after the prompt is refused, naming the room left
    snprintf(args, sizeof args, "-m '%s' -p '%s' -n %d -c 16 --greedy --ids", gguf, prompt, 16 - np + 1);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 2);
    char room[64];
    snprintf(room, sizeof room, "only %d tokens fit the context of 16", 16 - np);
    assert_non_null(strstr(err, room));
    snprintf(args, sizeof args, "-m '%s' -p '%s' -n %d -c 16 --greedy --ids", gguf, prompt, 16 - np);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
    assert_int_equal(parse_ids(out, got, CTX), nw);
    // sampling: the same seed gives the same tokens, another seed other tokens
    char a[4096], b[4096], c[4096];
    snprintf(args, sizeof args, "-m '%s' -p '%s' -n 24 --temp 1.5 --top-k 0 --top-p 1 --seed 7 --ids", gguf, prompt);
    assert_int_equal(run_prog("generate", args, a, sizeof a, err, sizeof err), 0);
    assert_int_equal(run_prog("generate", args, b, sizeof b, err, sizeof err), 0);
    snprintf(args, sizeof args, "-m '%s' -p '%s' -n 24 --temp 1.5 --top-k 0 --top-p 1 --seed 8 --ids", gguf, prompt);
    assert_int_equal(run_prog("generate", args, c, sizeof c, err, sizeof err), 0);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    // refusals: a missing file (named), a prompt that fills the context, bad option values
    snprintf(args, sizeof args, "-m '%s/none.gguf' -p x", tmpdir);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "none.gguf"));
    char longp[301];
    for (int i = 0; i < 300; i++) longp[i] = "to be "[i % 6];
    longp[300] = 0;
    snprintf(args, sizeof args, "-m '%s' -p '%s' -c 8", gguf, longp);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "context"));
    snprintf(args, sizeof args, "-m '%s' -p x -n -3", gguf);
    assert_int_not_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
    snprintf(args, sizeof args, "-m '%s' -p x --kernel sse9", gguf);
    assert_int_not_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
}

// a model that always predicts </s>: column 0 of every embedding row is 100 (101 for </s>) and
// output_norm keeps only that column, so logits = h0 * E[v][0] with h0 > 0 whatever the blocks add
static void test_generate_stops_at_eos(void **st) {
    (void)st;
    tern_model m;
    tern_model_build(&m, &tm.cfg);
    memcpy(m.params.data, tm.params.data, sizeof(float) * (size_t)tm.params.total);
    for (int v = 0; v < tm.cfg.vocab_size; v++) m.token_embd->data[(size_t)v * tm.cfg.dim] = v == TERN_TOK_EOS ? 101.0f : 100.0f;
    for (int i = 0; i < tm.cfg.dim; i++) m.output_norm->data[i] = i == 0 ? 1.0f : 0.0f;
    char path[400], g2[400], args[1024], out[4096], err[4096];
    snprintf(path, sizeof path, "%s/eos.h5", tmpdir);
    snprintf(g2, sizeof g2, "%s/eos.gguf", tmpdir);
    void *tb;
    size_t tn;
    tern_tokenizer_to_bytes(&tok, &tb, &tn);
    assert_int_equal(tern_checkpoint_save(path, &m.cfg, &m.params, tb, tn, NULL), 0);
    free(tb);
    tern_model_free(&m);
    snprintf(args, sizeof args, "'%s' '%s'", path, g2);
    assert_int_equal(run_prog("export", args, NULL, 0, err, sizeof err), 0);
    snprintf(args, sizeof args, "-m '%s' -p 'To be' -n 10 --greedy --ids", g2);
    assert_int_equal(run_prog("generate", args, out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "2\n");   // </s>, then it stops
    assert_non_null(strstr(err, "decode: 1 tokens"));
}

// "perplexity: P over N tokens (W windows of context C; ...)" against rt_nll in this process
static void check_perplexity(const char *extra, int ctx) {
    char out[4096], err[4096], args[1024];
    snprintf(args, sizeof args, "-m '%s' -f '%s' --max-tokens 700 %s", gguf, text_path, extra);
    assert_int_equal(run_prog("perplexity", args, out, sizeof out, err, sizeof err), 0);
    double ppl;
    long scored;
    int windows, c;
    assert_int_equal(sscanf(out, "perplexity: %lf over %ld tokens (%d windows of context %d", &ppl, &scored, &windows, &c), 4);
    int *ids, n;
    assert_int_equal(tern_tokenizer_encode(&tok, text, text_len, 0, &ids, &n), 0);
    n = 700;
    tern_rt_model m;
    assert_int_equal(build_model(&m, gguf), 0);
    tern_rt_state s;
    assert_int_equal(build_state(&s, &m, 64, ctx), 0);
    long sc;
    int nw;
    double nll = rt_nll(&m, &s, ids, n, ctx, &sc, &nw);
    printf("tern-perplexity %s: %.4f over %ld tokens, %d windows (in process %.4f, %d windows of %d)\n", extra, ppl, scored, windows,
           exp(nll / sc), nw, ctx);
    assert_int_equal(c, ctx);
    assert_int_equal(scored, n - 1);
    assert_int_equal(sc, scored);
    assert_int_equal(windows, nw);
    assert_int_equal(nw, (n - 1 + ctx - 1) / ctx);
    assert_true(fabs(ppl - exp(nll / sc)) <= 5e-5 * ppl);   // printed with 4 decimals
    free_state(&s);
    free_model(&m);
    free(ids);
}

static void test_perplexity(void **st) {
    (void)st;
    check_perplexity("", CTX);
    check_perplexity("-c 20 -b 7", 20);
    char out[4096], err[4096], args[1024];
    snprintf(args, sizeof args, "-m '%s' -f '%s/none.txt'", gguf, tmpdir);
    assert_int_equal(run_prog("perplexity", args, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "none.txt"));
}

// tern-eval on the checkpoint == tern_eval_ids here (the same windows as tern-perplexity)
static void test_eval(void **st) {
    (void)st;
    char out[4096], err[4096], args[1024];
    snprintf(args, sizeof args, "'%s' --text '%s' --batch 3 --max-windows 10", ckpt, text_path);
    assert_int_equal(run_prog("eval", args, out, sizeof out, err, sizeof err), 0);
    const char *l = strstr(out, "loss ");
    assert_non_null(l);
    double loss, ppl, bpb;
    long bytes;
    assert_int_equal(sscanf(l, "loss %lf  ppl %lf  bits/byte %lf (%ld bytes)", &loss, &ppl, &bpb, &bytes), 4);
    int *ids, n;
    assert_int_equal(tern_tokenizer_encode(&tok, text, text_len, 0, &ids, &n), 0);
    tern_eval_result r;
    tern_eval_ids(&tm, ids, n, 3, 10, &tok, &r);
    assert_int_equal(r.n_windows, 10);
    printf("tern-eval: loss %.6f ppl %.4f bpb %.4f over %ld bytes (in process %.6f, %.4f, %.4f, %ld)\n", loss, ppl, bpb, bytes, r.loss,
           r.ppl, r.bpb, r.n_bytes);
    assert_true(fabs(loss - r.loss) <= 1e-6 && fabs(bpb - r.bpb) <= 1e-4 && bytes == r.n_bytes);
    // the scored tokens' text: every byte of the first 641 tokens' text but the first token's (not
    // scored; its piece's leading ▁ is the prefix space, not text)
    char *dec, piece[TERN_TOK_MAX_PIECE];
    size_t dl;
    assert_int_equal(tern_tokenizer_decode(&tok, ids, 10 * CTX + 1, &dec, &dl), 0);
    assert_int_equal(r.n_bytes, (long)dl - tern_tokenizer_decode_piece(&tok, ids[0], 1, piece, sizeof piece));
    free(dec);
    free(ids);
    snprintf(args, sizeof args, "'%s/none.h5' --text '%s'", tmpdir, text_path);
    assert_int_equal(run_prog("eval", args, out, sizeof out, err, sizeof err), 1);
    assert_non_null(strstr(err, "none.h5"));
}

// the benchmarks run and print their figures (values are machine-dependent: shape only)
static void test_bench(void **st) {
    (void)st;
    char out[8192], err[4096], args[1024];
    snprintf(args, sizeof args, "-m '%s' -p 8 -n 0 -r 1 -b 4", gguf);
    assert_int_equal(run_prog("bench", args, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "prefill     8 tokens:"));
    assert_null(strstr(out, "decode"));
    // a decode run also streams a 512 MiB buffer for the bandwidth ratio: one repeat of 2 tokens
    snprintf(args, sizeof args, "--random dim=256,ffn=256,layers=1,heads=2,vocab=300,ctx=32 -p 0 -n 2 -r 1");
    assert_int_equal(run_prog("bench", args, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "model: (random)  random  dim 256 ffn 256 layers 1 heads 2/2 vocab 300"));   // kv_heads = heads
    assert_non_null(strstr(out, "decode      2 tokens:"));
    assert_null(strstr(out, "prefill"));
    assert_int_equal(run_prog("bench", "--bandwidth 8", out, sizeof out, err, sizeof err), 0);
    double best, med;
    assert_int_equal(sscanf(out, "memory read bandwidth: %lf GB/s best, %lf median", &best, &med), 2);
    assert_true(best >= med && med > 0);     // the fastest of 7 repeats, and their median
    const char *pk = strstr(out, "VNNI peak: ");
    if (pk) {
        assert_int_equal(sscanf(pk, "VNNI peak: %lf GOPS best, %lf median", &best, &med), 2);
        assert_true(best >= med && med > 0);
    }
    // --streams: a row per stream count; with VNNI, the compute ceiling from the model's int8
    // operations per row, counted here from the shape: ternary 2 * (4 * 256 * 256 + 3 * 256 * 256),
    // Q8_0 logits 2 * 300 * 256
    const int has_vnni = pk != NULL;
    snprintf(args, sizeof args, "--random dim=256,ffn=256,layers=1,heads=2,vocab=300,head=q8_0 --streams 1,2 -n 2 -r 1");
    assert_int_equal(run_prog("bench", args, out, sizeof out, err, sizeof err), 0);
    const char *sl = strstr(out, "streams        tok/s");
    assert_non_null(sl);
    long s0, s1;
    double a0, a1;
    assert_int_equal(sscanf(strchr(sl, '\n') + 1, "%ld %lf %*f %*f %*fx %ld %lf", &s0, &a0, &s1, &a1), 4);
    assert_true(s0 == 1 && s1 == 2 && a0 > 0 && a1 > 0);
    const char *cl = strstr(out, "compute ceiling: ");
    if (has_vnni) {
        double ceil_tok, peak, ops, ops_t;
        assert_non_null(cl);
        assert_int_equal(sscanf(cl, "compute ceiling: %lf tok/s for any number of streams = the VNNI peak (median %lf GOPS, measured "
                                    "before each repeat) / %lf G int8 ops per row (ternary %lf G + Q8_0 logits)",
                                &ceil_tok, &peak, &ops, &ops_t), 4);
        assert_true(fabs(ops_t - 2.0 * 7 * 256 * 256 / 1e9) < 0.001 * ops_t);
        assert_true(fabs(ops - (2.0 * 7 * 256 * 256 + 2.0 * 300 * 256) / 1e9) < 0.001 * ops);
        assert_true(peak > 0 && fabs(ceil_tok - peak / ops) < 0.003 * ceil_tok);
    } else
        assert_null(cl);
    // --depths: one line per depth, the first at 100%, the ratio printed for the deeper one
    snprintf(args, sizeof args, "--random dim=256,ffn=256,layers=1,heads=2,vocab=300 --depths 4,40 -n 2 -r 1");
    assert_int_equal(run_prog("bench", args, out, sizeof out, err, sizeof err), 0);
    long d0, d1;
    double t0, t1, q0, q1;
    const char *dl = strstr(out, "  depth decode tok/s");
    assert_non_null(dl);
    assert_int_equal(sscanf(strchr(dl, '\n') + 1, "%ld %lf %lf%% %ld %lf %lf%%", &d0, &t0, &q0, &d1, &t1, &q1), 6);
    assert_true(d0 == 4 && d1 == 40 && t0 > 0 && t1 > 0 && q0 == 100.0 && q1 > 0);
    assert_int_not_equal(run_prog("bench", "--random small --depths 4,x", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(err, "--depths"));
    assert_int_not_equal(run_prog("bench", "--random small --depths 4 -d 8", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(err, "without -d"));
    assert_int_not_equal(run_prog("bench", "--random dim=256,bogus=3", out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(err, "bogus"));
    snprintf(args, sizeof args, "--random dim=256,ffn=256,layers=1,heads=2,kv_heads=1,vocab=300,ctx=32 -p 30 -n 8");
    assert_int_not_equal(run_prog("bench", args, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(err, "exceeds the context"));
}

int main(int argc, char **argv) {
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(bindir, sizeof bindir, "%s/..", dirname(self));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate), cmocka_unit_test(test_generate_stops_at_eos), cmocka_unit_test(test_perplexity),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests_name("programs", tests, setup, teardown);
}
