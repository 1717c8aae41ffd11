// test_config.c — config parsing, overrides, validation, printing round trip, shipped configs.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/config.h"
#include "util.h"

static char tmpdir[256];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_defaults_valid(void **st) {
    (void)st;
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(c.model.tied_head, 1);
    assert_int_equal(c.model.ternary, 1);
    assert_int_equal(c.run.schedule, TERN_SCHED_TWO_STAGE);
    assert_int_equal(tern_config_validate(&c), 0);
    assert_float_equal(c.run.lr, 2.4e-3f, 1e-9);
    assert_float_equal(c.run.lr2, 1.5e-3f, 1e-9);
    assert_int_equal(c.run.warmup, 100);
    // auto warmup: steps / 10, at most 500
    tern_config_defaults(&c);
    c.run.steps = 20000;
    assert_int_equal(tern_config_validate(&c), 0);
    assert_int_equal(c.run.warmup, 500);
    // full precision: auto lr is 4e-4
    tern_config_defaults(&c);
    c.model.ternary = 0;
    assert_int_equal(tern_config_validate(&c), 0);
    assert_float_equal(c.run.lr, 4e-4f, 1e-10);
    // explicit lr is kept, lr2 scales with it
    tern_config_defaults(&c);
    assert_int_equal(tern_config_set(&c, "lr", "1e-3"), 0);
    assert_int_equal(tern_config_validate(&c), 0);
    assert_float_equal(c.run.lr, 1e-3f, 1e-10);
    assert_float_equal(c.run.lr2, 6.25e-4f, 1e-10);
}

static void test_parse_file(void **st) {
    (void)st;
    char path[300];
    snprintf(path, sizeof path, "%s/a.cfg", tmpdir);
    write_file(path,
               "# comment\n"
               "\n"
               "  dim = 512   # trailing comment\n"
               "n_heads=8\n"
               "lr = 3e-3\n"
               "schedule = cosine\n"
               "tied_head = false\n"
               "train_data = data/x.tok\n"
               "out_dir = \"runs/a #1 \\\"q\\\"\"  # quoted\n"
               "seed = 18446744073709551615\n"
               "warmup = auto\n");
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(tern_config_load(&c, path), 0);
    assert_int_equal(c.model.dim, 512);
    assert_int_equal(c.model.n_heads, 8);
    assert_float_equal(c.run.lr, 3e-3f, 1e-10);
    assert_int_equal(c.run.schedule, TERN_SCHED_COSINE);
    assert_int_equal(c.model.tied_head, 0);
    assert_string_equal(c.run.train_data, "data/x.tok");
    assert_string_equal(c.run.out_dir, "runs/a #1 \"q\"");
    assert_true(c.run.seed == UINT64_MAX);
    assert_int_equal(c.run.warmup, -1);
    assert_int_equal(c.model.n_layers, 6); // untouched default
}

static void expect_load_error(const char *text, const char *needle) {
    char path[300];
    snprintf(path, sizeof path, "%s/bad.cfg", tmpdir);
    write_file(path, text);
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(tern_config_load(&c, path), -1);
    const char *e = tern_last_error();
    if (!strstr(e, needle)) fail_msg("error '%s' lacks '%s'", e, needle);
    if (!strstr(e, path)) fail_msg("error '%s' does not name the file", e);
}

static void test_parse_errors(void **st) {
    (void)st;
    expect_load_error("dim = 256\n\n# x\ndimm = 3\n", "bad.cfg:4: unknown key 'dimm' (did you mean 'dim'?)");
    expect_load_error("dim = abc\n", "bad.cfg:1: bad value 'abc' for dim (expected integer)");
    expect_load_error("lr = fast\n", "bad value 'fast' for lr (expected number or auto)");
    expect_load_error("schedule = step\n", "bad value 'step' for schedule");
    expect_load_error("ternary = maybe\n", "bad value 'maybe' for ternary");
    expect_load_error("dim 256\n", "bad.cfg:1: expected 'key = value'");
    expect_load_error("dim =\n", "missing value for dim");
    expect_load_error("dim = 1\ndim = 2\n", "bad.cfg:2: duplicate key 'dim'");
    expect_load_error("out_dir = \"abc\n", "unterminated");
    expect_load_error("out_dir = \"abc\" x\n", "unexpected text");
    expect_load_error("seed = -1\n", "bad value '-1' for seed");
    expect_load_error("dim = 99999999999\n", "bad value");
    // missing file
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(tern_config_load(&c, "/nonexistent/x.cfg"), -1);
    assert_non_null(strstr(tern_last_error(), "/nonexistent/x.cfg"));
}

static void test_set_arg(void **st) {
    (void)st;
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(tern_config_set_arg(&c, "steps=42"), 0);
    assert_int_equal(c.run.steps, 42);
    assert_int_equal(tern_config_set_arg(&c, "out_dir=runs/x y"), 0);
    assert_string_equal(c.run.out_dir, "runs/x y");
    assert_int_equal(tern_config_set_arg(&c, "steps"), -1);
    assert_int_equal(tern_config_set_arg(&c, "stepz=1"), -1);
    assert_string_equal(tern_last_error(), "unknown key 'stepz' (did you mean 'steps'?)");
    assert_int_equal(tern_config_set(&c, "zzzzzzzz", "1"), -1);
    assert_string_equal(tern_last_error(), "unknown key 'zzzzzzzz'");
    assert_int_equal(tern_config_set(&c, "batch", "1.5"), -1);
    assert_string_equal(tern_last_error(), "bad value '1.5' for batch (expected integer)");
    assert_true(tern_config_is_arg("lr=1"));
    assert_false(tern_config_is_arg("configs/a=b.cfg"));
    assert_false(tern_config_is_arg("lr"));
}

static void expect_invalid(const char *key, const char *val, const char *needle) {
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(tern_config_set(&c, key, val), 0);
    assert_int_equal(tern_config_validate(&c), -1);
    if (!strstr(tern_last_error(), needle)) fail_msg("error '%s' lacks '%s'", tern_last_error(), needle);
}

static void test_validate(void **st) {
    (void)st;
    expect_invalid("dim", "250", "dim 250 is not divisible by n_heads 4");
    expect_invalid("n_kv_heads", "3", "n_heads 4 is not divisible by n_kv_heads 3");
    expect_invalid("dim", "12", "head_dim 3");
    expect_invalid("n_layers", "0", "n_layers must be positive");
    expect_invalid("vocab_size", "-5", "vocab_size must be positive");
    expect_invalid("lr", "-1", "lr must be positive");
    expect_invalid("lr2", "0.1", "lr2 0.1 must not exceed lr");
    expect_invalid("lr_min", "0.002", "lr_min 0.002 must not exceed lr2");
    expect_invalid("warmup", "600", "warmup 600 must be less than half of steps 1000");
    expect_invalid("beta2", "1", "beta2 must be in [0, 1)");
    expect_invalid("batch", "0", "batch must be positive");
    expect_invalid("steps", "0", "steps must be positive");
    expect_invalid("clip", "-1", "clip must be >= 0");
    expect_invalid("ckpt_keep", "-1", "ckpt_keep must be >= 0");
    expect_invalid("norm_eps", "0", "norm_eps must be positive");
    // limits: every size and count is bounded before anything is allocated
    expect_invalid("n_layers", "1000000", "n_layers 1000000 exceeds the limit 1024");
    expect_invalid("batch", "1000000000", "batch 1000000000 exceeds the limit 1048576");
    expect_invalid("seq_len", "2147483647", "seq_len 2147483647 exceeds the limit 32768");
    expect_invalid("dim", "131072", "dim 131072 exceeds the limit 65536");
    expect_invalid("vocab_size", "16777217", "vocab_size 16777217 exceeds the limit 16777216");
    expect_invalid("grad_accum", "2147483647", "grad_accum 2147483647 exceeds the limit 1048576");
    expect_invalid("threads", "100000", "threads 100000 exceeds the limit 1024");
    expect_invalid("steps", "9223372036854775807", "steps 9223372036854775807 exceeds the limit");
    expect_invalid("max_tokens", "9223372036854775807", "max_tokens 9223372036854775807 exceeds the limit");
    expect_invalid("eval_batches", "2000000000", "eval_batches 2000000000 exceeds the limit");
    expect_invalid("ckpt_keep", "2000000000", "ckpt_keep 2000000000 exceeds the limit");
    {   // a model size exactly at its limit is valid (the limit is inclusive), one above is not
        tern_model_config m;
        tern_config c;
        tern_config_defaults(&c);
        m = c.model;
        m.n_layers = TERN_MAX_LAYERS;
        m.seq_len = TERN_MAX_SEQ_LEN;
        m.vocab_size = TERN_MAX_VOCAB_SIZE;
        m.dim = TERN_MAX_DIM;
        m.n_heads = m.n_kv_heads = 256;
        assert_int_equal(tern_model_config_validate(&m), 0);
        m.n_layers = TERN_MAX_LAYERS + 1;
        assert_int_equal(tern_model_config_validate(&m), -1);
    }
    {   // steps x tokens per step may not overflow; max_tokens may not wrap into a negative step count
        tern_config c;
        tern_config_defaults(&c);
        assert_int_equal(tern_config_set(&c, "batch", "65536"), 0);
        assert_int_equal(tern_config_set(&c, "seq_len", "32"), 0);
        assert_int_equal(tern_config_set(&c, "grad_accum", "1048576"), 0);
        assert_int_equal(tern_config_set(&c, "steps", "100000000"), 0);
        assert_int_equal(tern_config_validate(&c), -1);
        assert_non_null(strstr(tern_last_error(), "tokens per step exceeds the limit"));
        tern_config_defaults(&c);
        assert_int_equal(tern_config_set(&c, "max_tokens", "1125899906842623"), 0);   // 2^50 - 1
        assert_int_equal(tern_config_validate(&c), 0);
        assert_int_equal(c.run.steps, 549755813888L);   // ceil((2^50 - 1) / 2048) = 2^39, positive
        tern_config_defaults(&c);
        assert_int_equal(tern_config_set(&c, "max_tokens", "1152921504606846976"), 0);   // 2^60: 2^49 steps
        assert_int_equal(tern_config_validate(&c), -1);
        assert_non_null(strstr(tern_last_error(), "steps 562949953421312 exceeds the limit"));
    }
    // max_memory: bytes with K/M/G/T suffixes, auto = 0, printed back re-loadably
    {
        tern_config c;
        tern_config_defaults(&c);
        assert_int_equal(tern_config_set(&c, "max_memory", "16G"), 0);
        assert_int_equal(c.run.max_memory, 16L << 30);
        assert_int_equal(tern_config_set(&c, "max_memory", "1.5GiB"), 0);
        assert_int_equal(c.run.max_memory, 3L << 29);
        assert_int_equal(tern_config_set(&c, "max_memory", "512m"), 0);
        assert_int_equal(c.run.max_memory, 512L << 20);
        assert_int_equal(tern_config_set(&c, "max_memory", "auto"), 0);
        assert_int_equal(c.run.max_memory, 0);
        assert_int_equal(tern_config_set(&c, "max_memory", "12345"), 0);
        assert_int_equal(c.run.max_memory, 12345);
        assert_int_equal(tern_config_set(&c, "max_memory", "-1G"), -1);
        assert_int_equal(tern_config_set(&c, "max_memory", "4X"), -1);
        assert_int_equal(tern_config_set(&c, "max_memory", "nan"), -1);
        assert_int_equal(tern_config_set(&c, "max_memory", "9999999T"), -1);
        assert_int_equal(tern_config_set(&c, "max_memory", "3G"), 0);
        char *txt = tern_config_to_string(&c);
        assert_non_null(strstr(txt, "max_memory = 3G\n"));
        tern_config d;
        tern_config_defaults(&d);
        assert_int_equal(tern_config_parse(&d, txt, "printed"), 0);
        assert_int_equal(d.run.max_memory, 3L << 30);
        free(txt);
    }
    // cosine allows a long warmup; still < steps
    tern_config c;
    tern_config_defaults(&c);
    tern_config_set(&c, "schedule", "cosine");
    tern_config_set(&c, "warmup", "600");
    assert_int_equal(tern_config_validate(&c), 0);
    // max_tokens → steps
    tern_config_defaults(&c);
    tern_config_set(&c, "max_tokens", "100000");  // 8*1*256 = 2048 per step → 49
    assert_int_equal(tern_config_validate(&c), 0);
    assert_int_equal(c.run.steps, 49);
    assert_int_equal(c.run.warmup, 4);
    // idempotent
    tern_config d = c;
    assert_int_equal(tern_config_validate(&d), 0);
    assert_memory_equal(&c, &d, sizeof c);
    // exportability
    char why[128];
    tern_model_config m = c.model;
    assert_int_equal(tern_model_config_exportable(&m, why, sizeof why), 2);   // TQ rows throughout
    m.dim = 64; m.n_heads = 4; m.n_kv_heads = 4;
    assert_int_equal(tern_model_config_exportable(&m, why, sizeof why), 1);   // Q8_0 rows
    assert_string_equal(why, "dim 64 is not a multiple of 256");
    m.ffn_dim = 80;
    assert_int_equal(tern_model_config_exportable(&m, why, sizeof why), 0);
    assert_string_equal(why, "ffn_dim 80 is not a multiple of 32");
    assert_int_equal(tern_model_config_validate(&m), 0);
}

static void test_print_roundtrip(void **st) {
    (void)st;
    tern_config a, b;
    tern_config_defaults(&a);
    tern_config_set(&a, "out_dir", "runs/we\"ird #dir\\x");
    tern_config_set(&a, "lr", "1.23456789e-3");
    tern_config_set(&a, "schedule", "linear");
    tern_config_set(&a, "val_data", "");
    tern_config_set(&a, "seed", "12345678901234");
    assert_int_equal(tern_config_validate(&a), 0);
    char *s = tern_config_to_string(&a);
    assert_non_null(strstr(s, "dim = 256\n"));
    assert_non_null(strstr(s, "schedule = linear\n"));
    tern_config_defaults(&b);
    assert_int_equal(tern_config_parse(&b, s, "string"), 0);
    assert_int_equal(a.run.precision_auto, 1);   // provenance, not a key: the text holds the resolved
    assert_int_equal(b.run.precision_auto, 0);   // value (fp32 or mixed), which reads back as given
    b.run.precision_auto = 1;
    assert_memory_equal(&a, &b, sizeof a);
    free(s);
    // unresolved auto values print as auto and reload as auto
    tern_config_defaults(&a);
    s = tern_config_to_string(&a);
    assert_non_null(strstr(s, "lr = auto\n"));
    assert_non_null(strstr(s, "warmup = auto\n"));
    tern_config_defaults(&b);
    assert_non_null(strstr(s, "precision = auto\n"));
    b.run.lr = 5;
    b.run.precision = 1;   // mixed
    assert_int_equal(tern_config_parse(&b, s, "string"), 0);
    assert_memory_equal(&a, &b, sizeof a);
    free(s);
}

static void test_shipped_configs(void **st) {
    (void)st;
    struct { const char *path; long lo, hi; } cf[] = {
        {"configs/tiny.cfg", 500000, 3000000},
        {"configs/small.cfg", 5500000, 7000000},
        {"configs/base50m.cfg", 45000000, 60000000},
        {"configs/base350m.cfg", 330000000, 370000000},
    };
    for (int i = 0; i < (int)(sizeof cf / sizeof cf[0]); i++) {
        tern_config c;
        tern_config_defaults(&c);
        if (tern_config_load(&c, cf[i].path) != 0) fail_msg("%s", tern_last_error());
        if (tern_config_validate(&c) != 0) fail_msg("%s: %s", cf[i].path, tern_last_error());
        assert_int_equal(tern_model_config_exportable(&c.model, NULL, 0), 2);   // TQ rows throughout
        long n = tern_model_config_nparams(&c.model);
        if (n < cf[i].lo || n > cf[i].hi) fail_msg("%s: %ld params", cf[i].path, n);
    }
    // small: exact count by hand: per block 4*256*256 + 3*256*768 + (3*256 + 768) = 853504
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(tern_config_load(&c, "configs/small.cfg"), 0);
    assert_int_equal(tern_model_config_nparams(&c.model), 4096L * 256 + 6L * 853504 + 256);
    c.model.tied_head = 0;
    assert_int_equal(tern_model_config_nparams(&c.model), 2 * 4096L * 256 + 6L * 853504 + 256);
}

static void test_readme_documents_keys(void **st) {
    (void)st;
    size_t n;
    char *doc = tern_read_file("configs/README.md", &n);
    assert_non_null(doc);
    for (const char *const *k = tern_config_keys(); *k; k++) {
        char pat[80];
        snprintf(pat, sizeof pat, "| `%s` |", *k);
        if (!strstr(doc, pat)) fail_msg("configs/README.md does not document key '%s'", *k);
    }
    free(doc);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tern_test_config_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_valid),   cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_parse_errors),     cmocka_unit_test(test_set_arg),
        cmocka_unit_test(test_validate),         cmocka_unit_test(test_print_roundtrip),
        cmocka_unit_test(test_shipped_configs),  cmocka_unit_test(test_readme_documents_keys),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) rc = rc ? rc : 1;
    return rc;
}
