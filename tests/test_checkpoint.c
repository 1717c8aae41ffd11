// test_checkpoint.c — HDF5 checkpoint round trip (bit-exact) and rejection of bad files.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "model/config.h"
#include "util.h"
#include "testutil.h"

static char dir[256];

// Registers the parameters of model/model.h (names, shapes, order) for model config m.
static void register_params(tern_params *p, const tern_model_config *m) {
    tern_params_init(p);
    int d = m->dim, hd = m->dim / m->n_heads, f = m->ffn_dim;
    tern_params_add(p, "token_embd.weight", 2, (int[]){m->vocab_size, d}, 1);
    for (int i = 0; i < m->n_layers; i++) {
        char n[64];
#define ADD(name, nd, ...) (snprintf(n, sizeof n, "blk.%d." name ".weight", i), tern_params_add(p, n, nd, (int[]){__VA_ARGS__}, nd == 1))
        ADD("attn_norm", 1, d);
        ADD("attn_q", 2, m->n_heads * hd, d);
        ADD("attn_k", 2, m->n_kv_heads * hd, d);
        ADD("attn_v", 2, m->n_kv_heads * hd, d);
        ADD("attn_sub_norm", 1, d);
        ADD("attn_output", 2, d, d);
        ADD("ffn_norm", 1, d);
        ADD("ffn_gate", 2, f, d);
        ADD("ffn_up", 2, f, d);
        ADD("ffn_sub_norm", 1, f);
        ADD("ffn_down", 2, d, f);
#undef ADD
    }
    tern_params_add(p, "output_norm.weight", 1, (int[]){d}, 1);
    if (!m->tied_head) tern_params_add(p, "output.weight", 2, (int[]){m->vocab_size, d}, 0);
    tern_params_alloc(p);
}

static tern_model_config tiny_model(int tied) {
    tern_model_config m;
    tern_model_config_defaults(&m);
    m.dim = 64; m.n_layers = 2; m.n_heads = 4; m.n_kv_heads = 2; m.ffn_dim = 96; m.vocab_size = 50;
    m.seq_len = 32; m.tied_head = tied; m.norm_eps = 1e-6f; m.rope_theta = 500000.0f;
    return m;
}

static void fill_random(tern_params *p, uint64_t seed) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (int i = 0; i < p->n; i++) {
        tern_tensor *t = p->t[i];
        for (long k = 0; k < t->n; k++) {
            p->data[t->offset + k] = tern_rng_normal(&r) * 0.02f;
            p->m[t->offset + k] = tern_rng_normal(&r) * 1e-3f;
            p->v[t->offset + k] = tern_rng_uniform(&r) * 1e-6f;
        }
    }
    p->data[p->t[0]->offset] = -0.0f;          // signed zero and a denormal survive bit-exactly
    p->data[p->t[0]->offset + 1] = 1e-40f;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static tern_train_state sample_state(void) {
    tern_train_state s = {0};
    s.step = 1234;
    s.tokens_seen = 5000000000L;
    s.rng_state = 0xfedcba9876543210ULL;
    s.loader_pos = 777;
    s.loader_epoch = 3;
    s.loader_seed = 0x8000000000000001ULL;
    s.run_config = "batch = 8\nlr = 0.0024\n";
    return s;
}

static void save_sample(const char *path, int tied, int with_state) {
    tern_model_config m = tiny_model(tied);
    tern_params p;
    register_params(&p, &m);
    fill_random(&p, 7);
    tern_train_state s = sample_state();
    const char tok[] = "tokenizer\0bytes\xff";
    if (tern_checkpoint_save(path, &m, &p, tok, sizeof tok, with_state ? &s : NULL) != 0) fail_msg("%s", tern_last_error());
    tern_params_free(&p);
}

static void expect_error(const char *what, int rc, const char *needle, const char *path) {
    if (rc != -1) fail_msg("%s: expected failure, got %d", what, rc);
    const char *e = tern_last_error();
    if (!strstr(e, needle)) fail_msg("%s: error '%s' lacks '%s'", what, e, needle);
    if (path && !strstr(e, path)) fail_msg("%s: error '%s' does not name %s", what, e, path);
    if (strchr(e, '\n')) fail_msg("%s: error is not one line", what);
}

static void test_roundtrip(void **st) {
    (void)st;
    for (int tied = 0; tied <= 1; tied++) {
        char path[300];
        path_in(path, sizeof path, tied ? "rt_tied.h5" : "rt_untied.h5");
        tern_model_config m = tiny_model(tied);
        tern_params a, b;
        register_params(&a, &m);
        register_params(&b, &m);
        fill_random(&a, 11);
        tern_train_state s = sample_state();
        const unsigned char tok[5] = {1, 0, 255, 7, 9};
        assert_int_equal(tern_checkpoint_save(path, &m, &a, tok, sizeof tok, &s), 0);
        // no temporary files left behind
        char tmp[400];
        tern_tmp_path(path, tmp, sizeof tmp);
        assert_int_not_equal(access(tmp, F_OK), 0);

        tern_model_config fm;
        assert_int_equal(tern_checkpoint_read_config(path, &fm), 0);
        assert_memory_equal(&fm, &m, sizeof m);

        tern_train_state ls;
        int rc = tern_checkpoint_load(path, &m, &b, &ls);
        if (rc != 1) fail_msg("load: %d %s", rc, tern_last_error());
        assert_memory_equal(a.data, b.data, sizeof(float) * (size_t)a.total);
        assert_memory_equal(a.m, b.m, sizeof(float) * (size_t)a.total);
        assert_memory_equal(a.v, b.v, sizeof(float) * (size_t)a.total);
        assert_int_equal(ls.step, s.step);
        assert_int_equal(ls.tokens_seen, s.tokens_seen);
        assert_true(ls.rng_state == s.rng_state);
        assert_int_equal(ls.loader_pos, s.loader_pos);
        assert_int_equal(ls.loader_epoch, s.loader_epoch);
        assert_true(ls.loader_seed == s.loader_seed);
        assert_string_equal(ls.run_config, s.run_config);
        tern_train_state_free(&ls);
        assert_int_equal(tern_checkpoint_read_state(path, &ls), 1);
        assert_int_equal(ls.step, s.step);
        assert_true(ls.loader_seed == s.loader_seed);
        assert_string_equal(ls.run_config, s.run_config);
        tern_train_state_free(&ls);

        // weights only: m/v untouched
        tern_params c;
        register_params(&c, &m);
        c.m[0] = 42.0f;
        assert_int_equal(tern_checkpoint_load(path, &m, &c, NULL), 0);
        assert_memory_equal(a.data, c.data, sizeof(float) * (size_t)a.total);
        assert_true(c.m[0] == 42.0f && c.v[5] == 0.0f);
        tern_params_free(&c);

        void *tb;
        size_t tn;
        assert_int_equal(tern_checkpoint_read_tokenizer(path, &tb, &tn), 1);
        assert_int_equal(tn, 5);
        assert_memory_equal(tb, tok, 5);
        free(tb);
        tern_params_free(&a);
        tern_params_free(&b);
    }
}

static void test_no_state_no_tokenizer(void **st) {
    (void)st;
    char path[300];
    path_in(path, sizeof path, "export.h5");
    tern_model_config m = tiny_model(1);
    tern_params a, b;
    register_params(&a, &m);
    register_params(&b, &m);
    fill_random(&a, 3);
    assert_int_equal(tern_checkpoint_save(path, &m, &a, NULL, 0, NULL), 0);
    b.m[3] = 5.0f;
    tern_train_state ls;
    ls.step = 99;
    assert_int_equal(tern_checkpoint_read_state(path, &ls), 0);
    assert_int_equal(tern_checkpoint_load(path, &m, &b, &ls), 0);   // weights only
    assert_int_equal(ls.step, 0);
    assert_null(ls.run_config);
    assert_memory_equal(a.data, b.data, sizeof(float) * (size_t)a.total);
    assert_true(b.m[3] == 5.0f);
    void *tb = (void *)1;
    size_t tn = 9;
    assert_int_equal(tern_checkpoint_read_tokenizer(path, &tb, &tn), 0);
    assert_null(tb);
    assert_int_equal(tn, 0);
    tern_params_free(&a);
    tern_params_free(&b);
}

// Applies an edit to a saved checkpoint through the HDF5 API.
typedef void (*edit_fn)(hid_t f);
static void make_edited(const char *path, int with_state, edit_fn fn) {
    save_sample(path, 1, with_state);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    fn(f);
    assert_true(H5Fclose(f) >= 0);
}

static void set_int_attr(hid_t f, const char *name, int v) {
    H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Sclose(sp);
}
static void edit_version(hid_t f) { set_int_attr(f, "format_version", 2); }
static void edit_bad_dim(hid_t f) { set_int_attr(f, "dim", 63); }
static void edit_format(hid_t f) {
    H5Adelete(f, "format");
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "abc");
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}
static void edit_no_format(hid_t f) { H5Adelete(f, "format"); }
static void edit_no_vocab(hid_t f) { H5Adelete(f, "vocab_size"); }
static void edit_missing_ds(hid_t f) { assert_true(H5Ldelete(f, "blk.1.ffn_up.weight", H5P_DEFAULT) >= 0); }
static void edit_shape(hid_t f) {
    assert_true(H5Ldelete(f, "blk.0.attn_q.weight", H5P_DEFAULT) >= 0);
    hsize_t dims[2] = {64, 32};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "blk.0.attn_q.weight", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(sp);
}
static void edit_extra(hid_t f) {
    hsize_t dims[1] = {3};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(f, "blk.9.extra.weight", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(sp);
}
static void edit_missing_v(hid_t f) { assert_true(H5Ldelete(f, "train_state/v/blk.0.ffn_down.weight", H5P_DEFAULT) >= 0); }
static void edit_missing_step(hid_t f) {
    hid_t g = H5Gopen2(f, "train_state", H5P_DEFAULT);
    H5Adelete(g, "step");
    H5Gclose(g);
}

static void test_rejects(void **st) {
    (void)st;
    char path[300];
    tern_model_config m = tiny_model(1);
    tern_params p;
    register_params(&p, &m);
    fill_random(&p, 1);
    float first = p.data[100];
    tern_train_state s;

    expect_error("missing file", tern_checkpoint_load("/nonexistent/dir/ck.h5", &m, &p, NULL),
                 "/nonexistent/dir/ck.h5: cannot open: No such file", NULL);
    expect_error("missing file cfg", tern_checkpoint_read_config("/nonexistent/ck.h5", &m), "cannot open", NULL);

    path_in(path, sizeof path, "text.h5");
    FILE *f = fopen(path, "w");
    fputs("this is not hdf5\n", f);
    fclose(f);
    expect_error("text file", tern_checkpoint_load(path, &m, &p, NULL), "not an HDF5 file", path);
    f = fopen(path, "w");
    fclose(f);
    expect_error("empty file", tern_checkpoint_load(path, &m, &p, NULL), "not an HDF5 file", path);
    expect_error("directory", tern_checkpoint_load(dir, &m, &p, NULL), "is a directory", dir);

    // truncated checkpoint: valid signature, data missing
    path_in(path, sizeof path, "trunc.h5");
    save_sample(path, 1, 1);
    struct stat sb;
    stat(path, &sb);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    expect_error("truncated", tern_checkpoint_load(path, &m, &p, NULL), path, path);

    struct { const char *name; int state; edit_fn fn; const char *needle; int with_st; } cases[] = {
        {"version", 0, edit_version, "unsupported format_version 2 (this build reads 1)", 0},
        {"format", 0, edit_format, "not a tern checkpoint (format 'abc'", 0},
        {"noformat", 0, edit_no_format, "not a tern checkpoint (no 'format' attribute)", 0},
        {"novocab", 0, edit_no_vocab, "missing attribute vocab_size", 0},
        {"baddim", 0, edit_bad_dim, "bad model config: dim 63 is not divisible by n_heads 4", 0},
        {"missing", 0, edit_missing_ds, "missing dataset /blk.1.ffn_up.weight", 0},
        {"shape", 0, edit_shape, "dataset /blk.0.attn_q.weight has shape [64x32], expected [64x64]", 0},
        {"extra", 0, edit_extra, "unexpected dataset /blk.9.extra.weight", 0},
        {"missing v", 1, edit_missing_v, "missing dataset /train_state/v/blk.0.ffn_down.weight", 1},
        {"missing step", 1, edit_missing_step, "missing attribute /train_state:step", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        path_in(path, sizeof path, "edited.h5");
        make_edited(path, cases[i].state, cases[i].fn);
        expect_error(cases[i].name, tern_checkpoint_load(path, &m, &p, cases[i].with_st ? &s : NULL), cases[i].needle, path);
        assert_true(p.data[100] == first);   // a failed load leaves the params untouched
        if (cases[i].fn == edit_missing_step)
            expect_error("read_state", tern_checkpoint_read_state(path, &s), cases[i].needle, path);
    }

    // config mismatch
    path_in(path, sizeof path, "other.h5");
    save_sample(path, 1, 0);
    tern_model_config m3 = m;
    m3.n_layers = 3;
    tern_params p3;
    register_params(&p3, &m3);
    expect_error("config", tern_checkpoint_load(path, &m3, &p3, NULL), "checkpoint has n_layers 2, the model has 3", path);
    // without mc the parameter check still catches it
    expect_error("config2", tern_checkpoint_load(path, NULL, &p3, NULL), "missing dataset /blk.2.attn_norm.weight", path);
    tern_params_free(&p3);
    // float fields must match exactly: the file has norm_eps 1e-6, rope_theta 500000
    tern_model_config m4 = m;
    m4.norm_eps = 1e-5f;
    expect_error("eps", tern_checkpoint_load(path, &m4, &p, NULL), "checkpoint has norm_eps 1e-06, the model has 1e-05", path);
    m4 = m;
    m4.rope_theta = 500000.0625f;   // the next float up
    expect_error("theta", tern_checkpoint_load(path, &m4, &p, NULL), "checkpoint has rope_theta 500000", path);
    // untied file into a tied model
    path_in(path, sizeof path, "untied.h5");
    save_sample(path, 0, 0);
    expect_error("untied", tern_checkpoint_load(path, NULL, &p, NULL), "unexpected dataset /output.weight", path);
    expect_error("untied2", tern_checkpoint_load(path, &m, &p, NULL), "checkpoint has tied_head 0, the model has 1", path);

    // save into a missing directory: error, nothing written
    expect_error("save", tern_checkpoint_save("/nonexistent/dir/x.h5", &m, &p, NULL, 0, NULL), "/nonexistent/dir/x.h5", NULL);
    tern_params_free(&p);
}

static void test_save_step_rotation(void **st) {
    (void)st;
    char out[300], path[400], got[400];
    path_in(out, sizeof out, "run/a");
    tern_model_config m = tiny_model(1);
    tern_params p;
    register_params(&p, &m);
    fill_random(&p, 5);
    tern_train_state s = sample_state();
    long steps[] = {100, 200, 300, 400};
    for (int i = 0; i < 4; i++) {
        s.step = steps[i];
        p.data[0] = (float)steps[i];
        if (tern_checkpoint_save_step(out, steps[i], 2, &m, &p, NULL, 0, &s, got, sizeof got) != 0)
            fail_msg("%s", tern_last_error());
        snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", out, steps[i]);
        assert_string_equal(got, path);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", out, steps[i]);
        assert_int_equal(access(path, F_OK) == 0, i >= 2);
    }
    snprintf(path, sizeof path, "%s/latest.h5", out);
    char target[128] = {0};
    assert_true(readlink(path, target, sizeof target - 1) > 0);
    assert_string_equal(target, "ckpt_00000400.h5");
    tern_params q;
    register_params(&q, &m);
    tern_train_state ls;
    assert_int_equal(tern_checkpoint_load(path, &m, &q, &ls), 1);
    assert_int_equal(ls.step, 400);
    assert_true(q.data[0] == 400.0f);
    tern_train_state_free(&ls);
    // keep = 0 keeps everything
    assert_int_equal(tern_checkpoint_save_step(out, 500, 0, &m, &p, NULL, 0, &s, NULL, 0), 0);
    snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", out, 300L);
    assert_int_equal(access(path, F_OK), 0);
    tern_params_free(&p);
    tern_params_free(&q);
}

static void test_h5dump_layout(void **st) {
    (void)st;
    if (system("command -v h5dump >/dev/null 2>&1") != 0) TU_SKIP("h5dump not installed (Debian hdf5-tools; scripts/install-deps.sh)");
    char path[300], cmd[800], outp[300];
    path_in(path, sizeof path, "dump.h5");
    path_in(outp, sizeof outp, "dump.txt");
    save_sample(path, 1, 1);
    snprintf(cmd, sizeof cmd, "h5dump -H -A '%s' > '%s' 2>&1", path, outp);
    assert_int_equal(system(cmd), 0);
    size_t n;
    char *txt = tern_read_file(outp, &n);
    assert_non_null(txt);
    const char *needles[] = {
        "DATASET \"blk.0.attn_q.weight\"", "H5T_IEEE_F32LE", "DATASPACE  SIMPLE { ( 64, 64 ) / ( 64, 64 ) }",
        "DATASET \"blk.1.ffn_down.weight\"", "DATASPACE  SIMPLE { ( 64, 96 ) / ( 64, 96 ) }",
        "DATASET \"token_embd.weight\"", "DATASPACE  SIMPLE { ( 50, 64 ) / ( 50, 64 ) }",
        "ATTRIBUTE \"format_version\"", "ATTRIBUTE \"rope_theta\"", "GROUP \"train_state\"", "GROUP \"m\"",
        "ATTRIBUTE \"loader_seed\"", "H5T_STD_U64LE", "H5T_STD_I64LE", "DATASET \"tokenizer\"", "H5T_STD_U8LE",
    };
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (!strstr(txt, needles[i])) fail_msg("h5dump output lacks '%s'", needles[i]);
    free(txt);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tern_test_ckpt_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),          cmocka_unit_test(test_no_state_no_tokenizer),
        cmocka_unit_test(test_rejects),            cmocka_unit_test(test_save_step_rotation),
        cmocka_unit_test(test_h5dump_layout),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && rc == 0) rc = 1;
    return rc;
}
