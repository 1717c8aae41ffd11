// test_tokenizer_json.c — the tokenizer formats: tokenizer.json in and out (round trips for
// every kind and family, a hand-written SentencePiece-style file with hand-worked ids, every
// refusal naming its part), GGUF tokenizer.ggml.* keys (round trips, llama.cpp's defaults,
// refusals), the .tkz version 2 file (round trip, every truncation, corrupt fields), and
// tern-tokenizer's one-line errors for these formats. About 1 s.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "formats/gguf.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_gguf.h"
#include "tokenizers/tokenizer_json.h"
#include "util.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TMPD "build/test_tokenizer_json_tmp"
#define MARK "\xe2\x96\x81"

static char *g_corpus;
static size_t g_corpus_n;

static int setup(void **st) {
    (void)st;
    mkdir("build", 0755);
    mkdir(TMPD, 0755);
    g_corpus = tern_read_file("data/tinyshakespeare/input.txt", &g_corpus_n);
    return g_corpus ? 0 : -1;
}
static int teardown(void **st) {
    (void)st;
    free(g_corpus);
    return 0;
}

static void train(tern_tokenizer *t, int kind, int pre, int vocab) {
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.kind = kind;
    o.pre = pre;
    o.vocab_size = vocab;
    const char *texts[1] = {g_corpus};
    size_t len = 150000;
    assert_int_equal(tern_tokenizer_train(t, texts, &len, 1, &o), 0);
}

static void same_ids(const tern_tokenizer *a, const tern_tokenizer *b, const char *text) {
    int *x, nx, *y, ny;
    assert_int_equal(tern_tokenizer_encode_ex(a, text, strlen(text), TERN_ENC_SPECIAL, &x, &nx), 0);
    assert_int_equal(tern_tokenizer_encode_ex(b, text, strlen(text), TERN_ENC_SPECIAL, &y, &ny), 0);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, (size_t)nx * sizeof(int));
    free(x);
    free(y);
}

static const char *TEXT = "First Citizen: we'll see 1234567 <|endoftext|> caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac  \n\n x";

// every kind and family: .tkz and tokenizer.json round trips keep the hash (so token files and
// checkpoints made with one work with the other)
static void test_round_trips(void **st) {
    (void)st;
    const int kinds[5] = {TERN_TOK_LLAMA, TERN_TOK_GPT2, TERN_TOK_GPT2, TERN_TOK_GPT2, TERN_TOK_GPT2};
    const int pres[5] = {0, TERN_PRE_GPT2, TERN_PRE_LLAMA3, TERN_PRE_SMOLLM, TERN_PRE_QWEN2};
    for (int k = 0; k < 5; k++) {
        tern_tokenizer t, u, v;
        train(&t, kinds[k], pres[k], 600);
        void *b;
        size_t n;
        tern_tokenizer_to_bytes(&t, &b, &n);
        uint32_t version;
        memcpy(&version, (char *)b + 8, 4);
        assert_int_equal(version, kinds[k] == TERN_TOK_LLAMA ? 1 : 2); // the trained llama layout stays v1
        assert_int_equal(tern_tokenizer_save(&t, TMPD "/t.tkz"), 0);
        assert_int_equal(tern_tokenizer_load(&u, TMPD "/t.tkz"), 0);
        assert_true(u.hash == t.hash && u.hash == tern_fnv1a64(b, n));
        assert_int_equal(tern_tokenizer_save_json(&t, TMPD "/tokenizer.json"), 0);
        if (tern_tokenizer_load_any(&v, TMPD "/tokenizer.json") != 0) fail_msg("%s", tern_last_error());
        if (v.hash != t.hash) fail_msg("kind %d pre %d: tokenizer.json round trip changed the tokenizer", kinds[k], pres[k]);
        same_ids(&t, &v, TEXT);
        assert_int_equal(v.bos_id, t.bos_id);
        assert_int_equal(v.eos_id, t.eos_id);
        assert_int_equal(v.add_bos, t.add_bos);
        free(b);
        tern_tokenizer_free(&t);
        tern_tokenizer_free(&u);
        tern_tokenizer_free(&v);
    }
    remove(TMPD "/t.tkz");
    remove(TMPD "/tokenizer.json");
    remove(TMPD "/tokenizer_config.json");
}

// the piece types tokenizer.json has no word for (a fuzz finding): an unknown piece that is not
// unk and an unused piece are written as special added tokens and read back as control, the
// rest of the tokenizer unchanged (byte-level kind: the same tokenizer with those two retyped,
// hash for hash); tern_tokenizer_json_type says so for every piece
static int run_tool(char *err, size_t errn, const char *args);

static void test_json_types(void **st) {
    (void)st;
    for (int k = 0; k < 2; k++) {
        tern_tokenizer t0, t, v;
        train(&t0, k ? TERN_TOK_GPT2 : TERN_TOK_LLAMA, TERN_PRE_LLAMA3, 600);
        int a = k ? t0.vocab_size - 1 : 2, b = k ? t0.vocab_size - 2 : 1; // control pieces
        assert_int_equal(t0.types[a], TERN_PIECE_CONTROL);
        assert_int_equal(t0.types[b], TERN_PIECE_CONTROL);
        assert_true(a != t0.unk_id && b != t0.unk_id);
        t0.types[a] = TERN_PIECE_UNKNOWN;
        t0.types[b] = TERN_PIECE_UNUSED;
        void *buf;
        size_t n;
        tern_tokenizer_to_bytes(&t0, &buf, &n);
        if (tern_tokenizer_from_bytes(&t, buf, n, "retyped.tkz") != 0) fail_msg("%s", tern_last_error());
        free(buf);
        assert_int_equal(tern_tokenizer_save(&t, TMPD "/retyped.tkz"), 0);
        char err[4096]; // tern-tokenizer's conversion says so
        assert_int_equal(run_tool(err, sizeof err, "convert " TMPD "/retyped.tkz " TMPD "/tokenizer.json"), 0);
        if (!strstr(err, "cannot keep the type of 2 pieces")) fail_msg("no note: %s", err);
        if (tern_tokenizer_load_any(&v, TMPD "/tokenizer.json") != 0) fail_msg("%s", tern_last_error());
        assert_int_equal(v.vocab_size, t.vocab_size);
        for (int i = 0; i < t.vocab_size; i++) {
            int want = i == a || i == b ? TERN_PIECE_CONTROL : t.types[i];
            if (v.types[i] != want || tern_tokenizer_json_type(&t, i) != want)
                fail_msg("kind %d piece %d: type %d read back as %d (json_type %d), want %d", k, i, t.types[i],
                         v.types[i], tern_tokenizer_json_type(&t, i), want);
        }
        if (k) {
            t.types[a] = t.types[b] = TERN_PIECE_CONTROL;
            tern_tokenizer_to_bytes(&t, &buf, &n);
            assert_true(tern_fnv1a64(buf, n) == v.hash);
            free(buf);
        }
        same_ids(&t0, &v, TEXT);
        tern_tokenizer_free(&t0);
        tern_tokenizer_free(&t);
        tern_tokenizer_free(&v);
    }
    remove(TMPD "/tokenizer.json");
    remove(TMPD "/tokenizer_config.json");
    remove(TMPD "/retyped.tkz");
}

// ---------------------------------------------------------------------------------------------
// a SentencePiece-style tokenizer.json (LLaMA 2 layout), written here by hand

static char *spm_json(int metaspace) {
    json_t *vocab = json_object();
    const char *ctl[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) json_object_set_new(vocab, ctl[i], json_integer(i));
    for (int b = 0; b < 256; b++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        json_object_set_new(vocab, p, json_integer(3 + b));
    }
    const char *norm[6] = {MARK, "a", "b", MARK "a", "ab", MARK "ab"};
    for (int i = 0; i < 6; i++) json_object_set_new(vocab, norm[i], json_integer(259 + i));
    json_t *added = json_array();
    for (int i = 0; i < 3; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i, "content", ctl[i],
                                               "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 1));
    json_t *root = json_pack(
        "{s:o, s:o, s:{s:s, s:o, s:[s, s, s], s:b, s:b, s:s}, s:{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]},"
        " s:{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}}",
        "added_tokens", added, "normalizer", json_null(), "model", "type", "BPE", "vocab", vocab, "merges", MARK " a",
        "a b", MARK "a b", "byte_fallback", 1, "fuse_unk", 1, "unk_token", "<unk>", "decoder", "type", "Sequence",
        "decoders", "type", "Replace", "pattern", "String", MARK, "content", " ", "type", "ByteFallback", "type", "Fuse",
        "type", "Strip", "content", " ", "start", 1, "stop", 0, "post_processor", "type", "TemplateProcessing", "single",
        "SpecialToken", "id", "<s>", "type_id", 0, "Sequence", "id", "A", "type_id", 0, "special_tokens", "<s>", "id",
        "<s>", "ids", 1, "tokens", "<s>");
    assert_non_null(root);
    if (metaspace)
        json_object_set_new(root, "pre_tokenizer", json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
                                                             MARK, "prepend_scheme", "first", "split", 0));
    else
        json_object_set_new(root, "normalizer",
                            json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers",
                                      "type", "Prepend", "prepend", MARK, "type", "Replace", "pattern", "String", " ",
                                      "content", MARK));
    char *s = json_dumps(root, 0);
    json_decref(root);
    return s;
}

static void test_sentencepiece_json(void **st) {
    (void)st;
    for (int ms = 0; ms < 2; ms++) {
        char *js = spm_json(ms);
        tern_tokenizer t;
        if (tern_tokenizer_from_json(&t, js, strlen(js), NULL, 0, "spm.json") != 0) fail_msg("%s", tern_last_error());
        assert_int_equal(t.kind, TERN_TOK_LLAMA);
        assert_int_equal(t.vocab_size, 265);
        assert_true(t.add_space_prefix && t.add_bos && t.bos_id == 1 && t.unk_id == 0);
        assert_int_equal(t.types[0], TERN_PIECE_UNKNOWN);
        assert_int_equal(t.types[1], TERN_PIECE_CONTROL);
        assert_int_equal(t.types[3 + 'x'], TERN_PIECE_BYTE);
        // scores from the merges: ▁a -1, ab -2, ▁ab -3, single characters 0
        assert_true(t.scores[262] == -1.0f && t.scores[263] == -2.0f && t.scores[264] == -3.0f && t.scores[260] == 0.0f);
        // "ab ab" -> ▁ a b ▁ a b -> ▁a b ▁a b -> ▁ab ▁ab (as Hugging Face's BPE by merge rank)
        int *ids, n;
        assert_int_equal(tern_tokenizer_encode(&t, "ab ab", 5, 1, &ids, &n), 0);
        assert_int_equal(n, 3);
        assert_true(ids[0] == 1 && ids[1] == 264 && ids[2] == 264);
        free(ids);
        // an unknown character falls back to its byte pieces
        assert_int_equal(tern_tokenizer_encode(&t, "ax", 2, 0, &ids, &n), 0);
        assert_int_equal(n, 2);
        assert_true(ids[0] == 262 && ids[1] == 3 + 'x');
        char *d;
        size_t dl;
        assert_int_equal(tern_tokenizer_decode(&t, ids, (size_t)n, &d, &dl), 0);
        assert_string_equal(d, "ax");
        free(d);
        free(ids);
        // written back and read again: the same tokenizer
        char *out;
        size_t on;
        assert_int_equal(tern_tokenizer_to_json(&t, &out, &on), 0);
        tern_tokenizer u;
        if (tern_tokenizer_from_json(&u, out, on, NULL, 0, "out.json") != 0) fail_msg("%s", tern_last_error());
        assert_true(u.hash == t.hash);
        free(out);
        tern_tokenizer_free(&u);
        tern_tokenizer_free(&t);
        free(js);
    }
}

// ---------------------------------------------------------------------------------------------
// refusals: each names its part

static json_t *g_base; // a small byte-level tokenizer.json (llama3 family)

static void expect_refused(json_t *j, const char *needle) {
    char *s = json_dumps(j, 0);
    tern_tokenizer t;
    int rc = tern_tokenizer_from_json(&t, s, strlen(s), NULL, 0, "bad.json");
    free(s);
    json_decref(j);
    if (rc == 0) fail_msg("accepted a bad tokenizer.json (expected '%s')", needle);
    const char *e = tern_last_error();
    if (strncmp(e, "bad.json: ", 10) || !strstr(e, needle)) fail_msg("error '%s' lacks '%s'", e, needle);
    assert_null(t.pieces);
}

static json_t *base(void) { return json_deep_copy(g_base); }
static json_t *model(json_t *j) { return json_object_get(j, "model"); }

static void test_json_refusals(void **st) {
    (void)st;
    tern_tokenizer t;
    train(&t, TERN_TOK_GPT2, TERN_PRE_LLAMA3, 400);
    char *s;
    size_t n;
    assert_int_equal(tern_tokenizer_to_json(&t, &s, &n), 0);
    json_error_t err;
    g_base = json_loads(s, 0, &err);
    assert_non_null(g_base);
    free(s);
    tern_tokenizer_free(&t);
    json_t *j;
    // the base itself loads
    s = json_dumps(g_base, 0);
    assert_int_equal(tern_tokenizer_from_json(&t, s, strlen(s), NULL, 0, "base.json"), 0);
    tern_tokenizer_free(&t);
    free(s);
    // not JSON
    assert_int_equal(tern_tokenizer_from_json(&t, "{\"model\": ", 10, NULL, 0, "bad.json"), -1);
    assert_non_null(strstr(tern_last_error(), "bad.json: invalid JSON at line 1"));
    // pre_tokenizer: another Split regex, ByteLevel options, an unknown one
    j = base();
    json_object_set_new(json_object_get(json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"), 0), "pattern"),
                        "Regex", json_string("\\s+|\\w+"));
    expect_refused(j, "pre_tokenizer: Split regex \"\\s+|\\w+\" is not supported");
    j = base();
    json_object_set_new(json_array_get(json_object_get(json_object_get(j, "pre_tokenizer"), "pretokenizers"), 1), "add_prefix_space", json_true());
    expect_refused(j, "add_prefix_space");
    j = base();
    json_object_set_new(j, "pre_tokenizer", json_pack("{s:s}", "type", "Whitespace"));
    expect_refused(j, "pre_tokenizer: [Whitespace] is not supported");
    j = base();
    json_object_set_new(j, "pre_tokenizer", json_null());
    expect_refused(j, "pre_tokenizer: neither byte-level");
    // normalizer, decoder, post_processor
    j = base();
    json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "NFKC"));
    expect_refused(j, "normalizer: NFKC is not supported");
    j = base(); // NFC (Qwen2's) is read, and written back
    json_object_set_new(j, "normalizer", json_pack("{s:s}", "type", "NFC"));
    s = json_dumps(j, 0);
    json_decref(j);
    assert_int_equal(tern_tokenizer_from_json(&t, s, strlen(s), NULL, 0, "nfc.json"), 0);
    free(s);
    assert_true(t.nfc);
    assert_int_equal(tern_tokenizer_to_json(&t, &s, &n), 0);
    assert_non_null(strstr(s, "\"NFC\""));
    free(s);
    tern_tokenizer_free(&t);
    j = base();
    json_object_set_new(j, "decoder", json_pack("{s:s}", "type", "WordPiece"));
    expect_refused(j, "decoder: a byte-level tokenizer needs the ByteLevel decoder");
    j = base();
    json_object_set_new(j, "post_processor", json_pack("{s:s}", "type", "RobertaProcessing"));
    expect_refused(j, "post_processor: RobertaProcessing is not supported");
    j = base();
    json_object_set_new(json_object_get(json_array_get(json_object_get(json_object_get(j, "post_processor"), "single"), 0), "SpecialToken"),
                        "id", json_string("<nope>"));
    json_object_del(json_object_get(json_object_get(j, "post_processor"), "special_tokens"), "<|begin_of_text|>");
    expect_refused(j, "post_processor: special token \"<nope>\" is not in the vocabulary");
    // model
    j = base();
    json_object_set_new(model(j), "type", json_string("Unigram"));
    expect_refused(j, "model: type Unigram is not supported");
    j = base();
    json_object_set_new(model(j), "dropout", json_real(0.1));
    expect_refused(j, "model: dropout");
    j = base();
    json_object_set_new(model(j), "byte_fallback", json_true());
    expect_refused(j, "byte_fallback");
    j = base();
    json_object_set_new(model(j), "continuing_subword_prefix", json_string("##"));
    expect_refused(j, "continuing_subword_prefix");
    j = base();
    json_object_del(j, "model");
    expect_refused(j, "model: missing");
    j = base();
    json_object_set_new(json_object_get(model(j), "vocab"), "zzzq", json_integer(5000));
    expect_refused(j, "no token has id");
    j = base();
    json_object_set_new(json_object_get(model(j), "vocab"), "zzzq", json_integer(3));
    expect_refused(j, "id 3 is given to");
    j = base();
    json_array_set_new(json_object_get(model(j), "merges"), 0, json_string("a b c"));
    expect_refused(j, "two pieces separated by one space");
    j = base();
    json_array_set_new(json_object_get(model(j), "merges"), 0, json_pack("[s, s]", "qq", "zz"));
    expect_refused(j, "is not a piece");
    j = base();
    json_array_set_new(json_object_get(model(j), "merges"), 0, json_pack("[s, s]", "a", "!"));
    expect_refused(j, "their concatenation is not a piece");
    j = base();
    json_array_append(json_object_get(model(j), "merges"), json_array_get(json_object_get(model(j), "merges"), 0));
    expect_refused(j, "repeats merge 0");
    j = base();
    json_object_del(json_object_get(model(j), "vocab"), "!"); // a byte character missing
    json_array_clear(json_object_get(model(j), "merges"));
    expect_refused(j, "no token has id 0");
    // added tokens
    j = base();
    json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 0), "single_word", json_true());
    expect_refused(j, "single_word=true is not supported");
    j = base();
    json_object_set_new(json_array_get(json_object_get(j, "added_tokens"), 0), "content", json_string("<other>"));
    expect_refused(j, "added_tokens: id");
    json_decref(g_base);
}

// ---------------------------------------------------------------------------------------------
// GGUF

static void write_gguf(const tern_tokenizer *t, const char *path) {
    tern_gguf_writer *w = tern_gguf_writer_new();
    assert_int_equal(tern_gguf_add_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(tern_tokenizer_gguf_write(t, w), 0);
    assert_int_equal(tern_gguf_write(w, path), 0);
    tern_gguf_writer_free(w);
}

static void test_gguf(void **st) {
    (void)st;
    const int kinds[3] = {TERN_TOK_LLAMA, TERN_TOK_GPT2, TERN_TOK_GPT2};
    const int pres[3] = {0, TERN_PRE_LLAMA3, TERN_PRE_SMOLLM};
    for (int k = 0; k < 3; k++) {
        tern_tokenizer t, u;
        train(&t, kinds[k], pres[k], 500);
        write_gguf(&t, TMPD "/v.gguf");
        tern_gguf *g = tern_gguf_open(TMPD "/v.gguf");
        assert_non_null(g);
        if (tern_tokenizer_gguf_read(&u, g, "v.gguf") != 0) fail_msg("%s", tern_last_error());
        assert_true(u.hash == t.hash);
        same_ids(&t, &u, TEXT);
        const char *model;
        assert_int_equal(tern_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL), 0);
        assert_string_equal(model, k ? "gpt2" : "llama");
        if (k) {
            const char *pre;
            assert_int_equal(tern_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL), 0);
            assert_string_equal(pre, k == 1 ? "llama-bpe" : "smollm");
            const char *const *m;
            uint64_t nm;
            assert_int_equal(tern_gguf_get_arr_str(g, "tokenizer.ggml.merges", &m, NULL, &nm), 0);
            assert_int_equal(nm, (uint64_t)t.n_merges);
            char want[2100];
            snprintf(want, sizeof want, "%s %s", t.pieces[t.merges[0]], t.pieces[t.merges[1]]);
            assert_string_equal(m[0], want);
        }
        tern_gguf_close(g);
        tern_tokenizer_free(&t);
        tern_tokenizer_free(&u);
    }
    // llama.cpp's defaults for absent keys, and refusals
    tern_tokenizer t;
    train(&t, TERN_TOK_GPT2, TERN_PRE_LLAMA3, 300);
    const char *const_tokens[1];
    (void)const_tokens;
    for (int c = 0; c < 4; c++) {
        tern_gguf_writer *w = tern_gguf_writer_new();
        int32_t *ty = malloc((size_t)t.vocab_size * sizeof(int32_t));
        for (int i = 0; i < t.vocab_size; i++) ty[i] = t.types[i];
        char **mg = malloc((size_t)t.n_merges * sizeof(char *));
        for (int m = 0; m < t.n_merges; m++) {
            mg[m] = malloc(2100);
            snprintf(mg[m], 2100, "%s %s", t.pieces[t.merges[2 * m]], t.pieces[t.merges[2 * m + 1]]);
        }
        tern_gguf_add_str(w, "tokenizer.ggml.model", "gpt2");
        tern_gguf_add_str(w, "tokenizer.ggml.pre", c == 1 ? "default" : c == 3 ? "gpt-2" : "llama-bpe");
        tern_gguf_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t.pieces, (uint64_t)t.vocab_size);
        tern_gguf_add_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_INT32, ty, (uint64_t)t.vocab_size);
        if (c != 2) tern_gguf_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)mg, (uint64_t)t.n_merges);
        if (c == 3) tern_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t.eos_id);
        if (c == 2) tern_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t.bos_id);
        assert_int_equal(tern_gguf_write(w, TMPD "/d.gguf"), 0);
        tern_gguf_writer_free(w);
        tern_gguf *g = tern_gguf_open(TMPD "/d.gguf");
        tern_tokenizer u;
        int rc = tern_tokenizer_gguf_read(&u, g, "d.gguf");
        if (c == 0) { // llama-bpe adds bos by default: without a bos id that is refused, as llama.cpp does
            assert_int_equal(rc, -1);
            assert_non_null(strstr(tern_last_error(), "d.gguf: tokenizer.ggml.add_bos_token is true but bos_token_id is not set"));
        } else if (c == 1) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(tern_last_error(), "tokenizer.ggml.pre 'default' is not supported"));
        } else if (c == 2) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(tern_last_error(), "tokenizer.ggml.merges missing"));
        } else { // gpt-2: no bos by default, merges applied (no ignore_merges)
            assert_int_equal(rc, 0);
            assert_true(u.bos_id == -1 && u.eos_id == t.eos_id && !u.add_bos && !u.ignore_merges && u.pre == TERN_PRE_GPT2);
            tern_tokenizer_free(&u);
        }
        tern_gguf_close(g);
        for (int m = 0; m < t.n_merges; m++) free(mg[m]);
        free(mg);
        free(ty);
    }
    // no tokenizer at all: 1
    tern_gguf_writer *w = tern_gguf_writer_new();
    tern_gguf_add_str(w, "general.architecture", "llama");
    assert_int_equal(tern_gguf_write(w, TMPD "/e.gguf"), 0);
    tern_gguf_writer_free(w);
    tern_gguf *g = tern_gguf_open(TMPD "/e.gguf");
    tern_tokenizer u;
    assert_int_equal(tern_tokenizer_gguf_read(&u, g, "e.gguf"), 1);
    tern_gguf_close(g);
    tern_tokenizer_free(&t);
    remove(TMPD "/v.gguf");
    remove(TMPD "/d.gguf");
    remove(TMPD "/e.gguf");
}

// ---------------------------------------------------------------------------------------------
// the .tkz version 2 file

static void expect_bad(const void *buf, size_t n, const char *needle) {
    tern_tokenizer t;
    if (tern_tokenizer_from_bytes(&t, buf, n, "bad.tkz") == 0) fail_msg("accepted a bad tokenizer (expected '%s')", needle);
    const char *e = tern_last_error();
    if (strncmp(e, "bad.tkz: ", 9) != 0 || !strstr(e, needle)) fail_msg("error '%s' lacks '%s'", e, needle);
    assert_null(t.pieces);
}

static void test_v2_bad_files(void **st) {
    (void)st;
    tern_tokenizer t;
    train(&t, TERN_TOK_GPT2, TERN_PRE_QWEN2, 280);
    uint8_t *good;
    size_t n;
    tern_tokenizer_to_bytes(&t, (void **)&good, &n);
    tern_tokenizer_free(&t);
    uint8_t *b = malloc(n + 8);
    for (size_t k = 0; k < n; k++) { // every truncation
        tern_tokenizer u;
        assert_int_equal(tern_tokenizer_from_bytes(&u, good, k, "bad.tkz"), -1);
        assert_true(strstr(tern_last_error(), "bad.tkz: ") == tern_last_error());
    }
    memcpy(b, good, n); b[n] = 0;
    expect_bad(b, n + 1, "unexpected bytes");
    memcpy(b, good, n); b[8] = 3;
    expect_bad(b, n, "unsupported tokenizer file version 3");
    memcpy(b, good, n); b[16] = 0x40;
    expect_bad(b, n, "unknown flags");
    memcpy(b, good, n); b[20] = 7;
    expect_bad(b, n, "unknown tokenizer kind");
    memcpy(b, good, n); b[24] = 9;
    expect_bad(b, n, "unknown pre-tokenizer");
    memcpy(b, good, n); memcpy(b + 28, &(int32_t){5000}, 4);
    expect_bad(b, n, "bos id 5000 out of range");
    memcpy(b, good, n); b[44] = 1;
    expect_bad(b, n, "reserved");
    memcpy(b, good, n); memcpy(b + n - 4, &(uint32_t){99999}, 4); // the last merge's right id
    expect_bad(b, n, "out of range");
    memcpy(b, good, n); memcpy(b + n - 4, b + n - 12, 4); memcpy(b + n - 8, b + n - 16, 4); // repeat the merge before
    expect_bad(b, n, "repeats merge");
    memcpy(b, good, n); b[48] = 3; // piece 0 (a byte character) as a control token
    expect_bad(b, n, "no normal piece");
    memcpy(b, good, n); b[48] = 6; // type byte in a byte-level tokenizer
    expect_bad(b, n, "type byte");
    memcpy(b, good, n); b[49] = 1; // lstrip on a normal piece
    expect_bad(b, n, "lstrip/rstrip");
    free(good);
    free(b);
}

// ---------------------------------------------------------------------------------------------
// tern-tokenizer: one line naming the file and the problem, status 1

static int run_tool(char *err, size_t errn, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "build/tern-tokenizer %s 2>" TMPD "/err.txt >" TMPD "/out.txt", args);
    int rc = system(cmd);
    size_t n = 0;
    char *e = tern_read_file(TMPD "/err.txt", &n);
    snprintf(err, errn, "%s", e ? e : "");
    free(e);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

static void expect_tool_error(const char *args, const char *needle) {
    char err[4096];
    int rc = run_tool(err, sizeof err, args);
    if (rc != 1) fail_msg("'%s': exit %d, expected 1 (stderr: %s)", args, rc, err);
    char *nl = strchr(err, '\n');
    if (!nl || nl[1] || strncmp(err, "tern-tokenizer: ", 16) || !strstr(err, needle))
        fail_msg("'%s': expected one line with '%s', got: %s", args, needle, err);
}

static void test_cli(void **st) {
    (void)st;
    assert_int_equal(system("rm -rf " TMPD "/tok"), 0);
    FILE *f = fopen(TMPD "/in.txt", "wb");
    fwrite(g_corpus, 1, 60000, f);
    fclose(f);
    char err[4096];
    assert_int_equal(run_tool(err, sizeof err, "train -q --kind bytelevel --pre gpt2 -v 400 -o " TMPD "/tok/tokenizer.json " TMPD "/in.txt"), 1);
    mkdir(TMPD "/tok", 0755);
    assert_int_equal(run_tool(err, sizeof err, "train -q --kind bytelevel --pre gpt2 -v 400 -o " TMPD "/tok/tokenizer.json " TMPD "/in.txt"), 0);
    assert_int_equal(run_tool(err, sizeof err, "convert " TMPD "/tok/tokenizer.json " TMPD "/t.tkz"), 0);
    assert_int_equal(run_tool(err, sizeof err, "encode -q -t " TMPD "/tok/tokenizer.json -o " TMPD "/a.tok " TMPD "/in.txt"), 0);
    assert_int_equal(run_tool(err, sizeof err, "decode -t " TMPD "/t.tkz -o " TMPD "/back.txt " TMPD "/a.tok"), 0); // same hash
    size_t n;
    char *back = tern_read_file(TMPD "/back.txt", &n);
    assert_true(n == 60000 && !memcmp(back, g_corpus, n));
    free(back);
    assert_int_equal(run_tool(err, sizeof err, "gguf -t " TMPD "/t.tkz -o " TMPD "/v.gguf"), 0);
    expect_tool_error("train --pre llama4 -o x.tkz in.txt", "--pre: must be one of gpt2|llama3|smollm|qwen2");
    expect_tool_error("train --pre gpt2 -o " TMPD "/x.tkz " TMPD "/in.txt", "--pre needs --kind bytelevel");
    expect_tool_error("train --kind bytelevel -v 258 -o " TMPD "/x.tkz " TMPD "/in.txt", "minimum 261");
    expect_tool_error("train --kind words -o x.tkz in.txt", "--kind: must be llama or bytelevel");
    f = fopen(TMPD "/bad.json", "wb");
    fputs("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", f);
    fclose(f);
    expect_tool_error("convert " TMPD "/bad.json " TMPD "/x.tkz", TMPD "/bad.json: model: type WordPiece is not supported");
    expect_tool_error("ids -t " TMPD "/bad.json " TMPD "/in.txt", "WordPiece");
    expect_tool_error("encode -q -t " TMPD "/tok/tokenizer.json -o " TMPD "/x.tok " TMPD "/nope.txt", TMPD "/nope.txt");
    struct stat sb;
    assert_int_equal(stat(TMPD "/x.tkz", &sb), -1);
    assert_int_equal(stat(TMPD "/x.tok", &sb), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),   cmocka_unit_test(test_json_types),
        cmocka_unit_test(test_sentencepiece_json),
        cmocka_unit_test(test_json_refusals), cmocka_unit_test(test_gguf),
        cmocka_unit_test(test_v2_bad_files),  cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
