// test_checkpoint.c — HDF5 checkpoint round trip (bit-exact) and rejection of bad files: the
// checksum header, files without one (structure checked in a child process), datasets of the
// wrong type, shape, storage or with NaN, and the damaged files of tests/fixtures/repro/.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
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

// Applies an edit to a saved checkpoint through the HDF5 API, then writes a new checksum (an
// intended change): the loader's own checks are what is tested.
typedef void (*edit_fn)(hid_t f);
static void make_edited(const char *path, int with_state, edit_fn fn) {
    save_sample(path, 1, with_state);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    fn(f);
    assert_true(H5Fclose(f) >= 0);
    if (tern_checkpoint_seal(path) != 0) fail_msg("seal: %s", tern_last_error());
}

static void replace_ds(hid_t f, const char *name, hid_t type, int nd, const hsize_t *dims, const void *data, hid_t dcpl) {
    H5Ldelete(f, name, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    if (data) assert_true(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
}

static void set_int_attr(hid_t f, const char *name, int v) {
    H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
    H5Sclose(sp);
}
static void edit_version(hid_t f) { set_int_attr(f, "format_version", 3); }
static void edit_f64(hid_t f) {   // right shape, float64 instead of float32
    hsize_t dims[2] = {64, 64};
    double *x = calloc(64 * 64, sizeof *x);
    replace_ds(f, "blk.0.attn_q.weight", H5T_IEEE_F64LE, 2, dims, x, H5P_DEFAULT);
    free(x);
}
static void edit_int(hid_t f) {
    hsize_t dims[1] = {64};
    int32_t x[64] = {0};
    replace_ds(f, "blk.0.attn_norm.weight", H5T_STD_I32LE, 1, dims, x, H5P_DEFAULT);
}
static void edit_odd_float(hid_t f) {   // class float, 4 bytes, but not IEEE single (a damaged type)
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_ebias(t, 100);
    hsize_t dims[1] = {64};
    float x[64] = {0};
    replace_ds(f, "blk.0.attn_norm.weight", t, 1, dims, x, H5P_DEFAULT);
    H5Tclose(t);
}
static void edit_nan(hid_t f) {
    hsize_t dims[1] = {64};
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = 1.0f;
    x[17] = NAN;
    replace_ds(f, "blk.1.ffn_norm.weight", H5T_IEEE_F32LE, 1, dims, x, H5P_DEFAULT);
}
static void edit_inf_m(hid_t f) {
    hsize_t dims[1] = {64};
    float x[64] = {0};
    x[3] = INFINITY;
    replace_ds(f, "train_state/m/blk.0.attn_norm.weight", H5T_IEEE_F32LE, 1, dims, x, H5P_DEFAULT);
}
static void edit_neg_v(hid_t f) {
    hsize_t dims[1] = {64};
    float x[64] = {0};
    x[5] = -1e-9f;
    replace_ds(f, "train_state/v/blk.0.attn_norm.weight", H5T_IEEE_F32LE, 1, dims, x, H5P_DEFAULT);
}
static void edit_chunked(hid_t f) {
    hsize_t dims[1] = {64}, chunk[1] = {16};
    float x[64] = {0};
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, chunk);
    H5Pset_deflate(pl, 4);
    replace_ds(f, "blk.0.attn_norm.weight", H5T_IEEE_F32LE, 1, dims, x, pl);
    H5Pclose(pl);
}
static void edit_unwritten(hid_t f) {   // right type and shape, never written: no storage
    hsize_t dims[1] = {64};
    replace_ds(f, "blk.0.attn_norm.weight", H5T_IEEE_F32LE, 1, dims, NULL, H5P_DEFAULT);
}
static void edit_softlink(hid_t f) {
    H5Ldelete(f, "tokenizer", H5P_DEFAULT);
    assert_true(H5Lcreate_soft("/blk.0.attn_norm.weight", f, "tokenizer", H5P_DEFAULT, H5P_DEFAULT) >= 0);
}
static void edit_extlink(hid_t f) {
    H5Ldelete(f, "blk.0.ffn_up.weight", H5P_DEFAULT);
    assert_true(H5Lcreate_external("/etc/other.h5", "/x", f, "blk.0.ffn_up.weight", H5P_DEFAULT, H5P_DEFAULT) >= 0);
}
static void edit_attr_i8(hid_t f) {   // the config as 1-byte integers still reads (value converted)
    H5Adelete(f, "n_layers");
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "n_layers", H5T_STD_I8LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int8_t v = 2;
    H5Awrite(a, H5T_NATIVE_INT8, &v);
    H5Aclose(a);
    H5Sclose(sp);
}
static void edit_attr_float_dim(hid_t f) {
    H5Adelete(f, "dim");
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "dim", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    float v = 64;
    H5Awrite(a, H5T_NATIVE_FLOAT, &v);
    H5Aclose(a);
    H5Sclose(sp);
}
static void edit_attr_array(hid_t f) {
    H5Adelete(f, "dim");
    hsize_t two = 2;
    hid_t sp = H5Screate_simple(1, &two, NULL);
    hid_t a = H5Acreate2(f, "dim", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int v[2] = {64, 64};
    H5Awrite(a, H5T_NATIVE_INT, v);
    H5Aclose(a);
    H5Sclose(sp);
}
static void edit_rng_zero(hid_t f) {
    hid_t g = H5Gopen2(f, "train_state", H5P_DEFAULT);
    H5Adelete(g, "rng_state");
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(g, "rng_state", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    uint64_t v = 0;
    H5Awrite(a, H5T_NATIVE_UINT64, &v);
    H5Aclose(a);
    H5Sclose(sp);
    H5Gclose(g);
}
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
        {"version", 0, edit_version, "unsupported format_version 3 (this build reads 1 to 2)", 0},
        {"f64", 0, edit_f64, "dataset /blk.0.attn_q.weight is a 8-byte float type, expected IEEE float32", 0},
        {"int", 0, edit_int, "dataset /blk.0.attn_norm.weight is a 4-byte integer type, expected IEEE float32", 0},
        {"odd float", 0, edit_odd_float, "dataset /blk.0.attn_norm.weight is a 4-byte float type, expected IEEE float32", 0},
        {"nan", 0, edit_nan, "dataset /blk.1.ffn_norm.weight holds NaN or Inf (element 17", 0},
        {"inf m", 1, edit_inf_m, "dataset /train_state/m/blk.0.attn_norm.weight holds NaN or Inf (element 3", 1},
        {"neg v", 1, edit_neg_v, "dataset /train_state/v/blk.0.attn_norm.weight holds a negative second moment", 1},
        {"chunked", 0, edit_chunked, "dataset /blk.0.attn_norm.weight is chunked", 0},
        {"unwritten", 0, edit_unwritten, "dataset /blk.0.attn_norm.weight stores 0 bytes, expected 256", 0},
        {"attr float", 0, edit_attr_float_dim, "attribute dim is float, expected integer", 0},
        {"attr array", 0, edit_attr_array, "attribute dim is not a single value", 0},
        {"rng zero", 1, edit_rng_zero, "/train_state:rng_state is 0", 1},
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
    // links that are not hard links are refused before anything follows them; the structure
    // check of reseal already refuses them
    path_in(path, sizeof path, "links.h5");
    save_sample(path, 1, 0);
    hid_t hf = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    edit_softlink(hf);
    H5Fclose(hf);
    expect_error("reseal soft", tern_checkpoint_seal(path), "tokenizer is a soft or external link", path);
    expect_error("soft: checksum", tern_checkpoint_load(path, &m, &p, NULL), "checksum mismatch", path);
    save_sample(path, 1, 0);
    hf = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    edit_extlink(hf);
    H5Fclose(hf);
    expect_error("reseal ext", tern_checkpoint_seal(path), "is a soft or external link", path);
    // config attributes of another integer size are converted, not refused
    path_in(path, sizeof path, "edited.h5");
    make_edited(path, 0, edit_attr_i8);
    assert_int_equal(tern_checkpoint_load(path, &m, &p, NULL), 0);

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

static long fsize(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void flip_byte(const char *path, long off) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

// writes the bytes of src from offset `from` on into dst (a file without the 512-byte header:
// what format_version 1 wrote, HDF5 addresses are relative to the superblock)
static void copy_from(const char *src, const char *dst, long from) {
    size_t n;
    char *b = tern_read_file(src, &n);
    assert_non_null(b);
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b + from, 1, n - (size_t)from, f), n - (size_t)from);
    fclose(f);
    free(b);
}

// The checksum header: any changed byte, a truncation or an extension is refused before libhdf5
// sees the file, with one line; header damage too; reseal makes an intended change load again.
static void test_checksum(void **st) {
    (void)st;
    char path[300];
    tern_model_config m = tiny_model(1);
    tern_params p;
    register_params(&p, &m);
    path_in(path, sizeof path, "sealed.h5");
    save_sample(path, 1, 1);
    assert_int_equal(tern_checkpoint_verify(path), 1);
    int version = 0, sealed = 0;
    assert_int_equal(tern_checkpoint_info(path, &version, &sealed), 0);
    assert_int_equal(version, 2);
    assert_int_equal(sealed, 1);
    long n = fsize(path);
    assert_true(n > 4096);
    // the HDF5 superblock sits right after the 512-byte header, the header starts with the magic
    size_t hn;
    unsigned char *h = (unsigned char *)tern_read_file(path, &hn);
    assert_memory_equal(h, "TERNCKSM", 8);
    assert_memory_equal(h + 512, "\x89HDF\r\n\x1a\n", 8);
    uint64_t size_field, hash_field;
    memcpy(&size_field, h + 24, 8);
    memcpy(&hash_field, h + 32, 8);
    assert_int_equal((long)size_field, n);
    assert_true(hash_field == tern_hash64(h + 512, hn - 512, 0));   // the documented definition
    free(h);
    long offs[] = {512, 520, 600, 2000, n / 3, n / 2, n - 100, n - 1};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        save_sample(path, 1, 1);
        flip_byte(path, offs[i]);
        char what[64];
        snprintf(what, sizeof what, "flip at %ld", offs[i]);
        expect_error(what, tern_checkpoint_load(path, &m, &p, NULL), "checksum mismatch: file is damaged (changed on purpose?", path);
        expect_error(what, tern_checkpoint_read_config(path, &m), "checksum mismatch: file is damaged (changed on purpose?", path);
        expect_error(what, tern_checkpoint_read_state(path, &(tern_train_state){0}), "checksum mismatch", path);
    }
    for (long off = 0; off < 48; off += 5) {   // the header's own fields
        save_sample(path, 1, 1);
        flip_byte(path, off);
        expect_error("header", tern_checkpoint_read_config(path, &m), "checksum", path);
    }
    save_sample(path, 1, 1);
    assert_int_equal(truncate(path, n - 7), 0);
    char needle[160];   // the size check names both sizes
    snprintf(needle, sizeof needle, "checksum mismatch: file is damaged (%ld bytes, the header says %ld: truncated?)", n - 7, n);
    expect_error("truncated", tern_checkpoint_read_config(path, &m), needle, path);
    save_sample(path, 1, 1);
    FILE *f = fopen(path, "ab");
    fputc(0, f);
    fclose(f);
    snprintf(needle, sizeof needle, "checksum mismatch: file is damaged (%ld bytes, the header says %ld", n + 1, n);
    expect_error("extended", tern_checkpoint_read_config(path, &m), needle, path);
    // an intended edit: refused until resealed, then loads
    save_sample(path, 1, 1);
    hid_t hf = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    set_int_attr(hf, "seq_len", 48);
    H5Fclose(hf);
    expect_error("edited", tern_checkpoint_read_config(path, &m), "checksum mismatch", path);
    assert_int_equal(tern_checkpoint_seal(path), 0);
    tern_model_config got;
    assert_int_equal(tern_checkpoint_read_config(path, &got), 0);
    assert_int_equal(got.seq_len, 48);
    // sealing needs the 512-byte user block
    path_in(path, sizeof path, "plain.txt");
    f = fopen(path, "w");
    fputs("hello\n", f);
    fclose(f);
    expect_error("seal text", tern_checkpoint_seal(path), "not an HDF5 file with a 512-byte user block", path);
    tern_params_free(&p);
}

// Files without the header (format_version 1 and other writers) still load, after the structure
// check; a damaged one gets one clean line from that check.
static void test_legacy(void **st) {
    (void)st;
    char src[300], path[300];
    path_in(src, sizeof src, "new.h5");
    path_in(path, sizeof path, "legacy.h5");
    save_sample(src, 1, 1);
    copy_from(src, path, 512);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t hf = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);   // as version 1 wrote it
    assert_true(hf >= 0);
    set_int_attr(hf, "format_version", 1);
    hid_t g = H5Gopen2(hf, "train_state", H5P_DEFAULT);
    const char *v2[] = {"train_tokens", "val_tokens", "train_tok_hash", "val_tok_hash"};
    for (int i = 0; i < 4; i++) assert_true(H5Adelete(g, v2[i]) >= 0);
    H5Gclose(g);
    H5Fclose(hf);
    assert_int_equal(tern_checkpoint_verify(path), 0);
    tern_model_config m = tiny_model(1);
    tern_params a, b;
    register_params(&a, &m);
    register_params(&b, &m);
    fill_random(&a, 7);
    tern_train_state ls;
    assert_int_equal(tern_checkpoint_load(path, &m, &b, &ls), 1);
    assert_memory_equal(a.data, b.data, sizeof(float) * (size_t)a.total);
    assert_int_equal(ls.train_tokens, -1);   // unknown in version 1
    assert_int_equal(ls.step, 1234);
    tern_train_state_free(&ls);
    int version = 0, sealed = 1;
    assert_int_equal(tern_checkpoint_info(path, &version, &sealed), 0);
    assert_int_equal(version, 1);
    assert_int_equal(sealed, 0);
    // damage in the HDF5 metadata of a file without checksum: caught by the structure check
    // (in a child process) or by the loader's checks; always one line, never a crash
    long n = fsize(path);
    int clean = 0, loaded = 0;
    for (long off = 0; off < 3000 && off < n; off += 29) {
        copy_from(src, path, 512);
        flip_byte(path, off);
        int rc = tern_checkpoint_load(path, &m, &b, &ls);
        if (rc == 1) { loaded++; tern_train_state_free(&ls); continue; }
        assert_int_equal(rc, -1);
        const char *e = tern_last_error();
        if (!strstr(e, path) || strchr(e, '\n')) fail_msg("offset %ld: error not one line naming the file: %s", off, e);
        clean++;
    }
    printf("  metadata damage without checksum: %d refused cleanly, %d harmless\n", clean, loaded);
    assert_true(clean > 10);
    tern_params_free(&a);
    tern_params_free(&b);
}

// The damaged files of the reliability probe (tests/fixtures/repro/README.md): every reader
// refuses each with one line naming it (in the sanitizer build too: libhdf5 only ever parses them
// in the child process).
static void test_repro_files(void **st) {
    (void)st;
    DIR *d = opendir("tests/fixtures/repro");
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    tern_model_config m;
    tern_model_config_defaults(&m);
    m.dim = 32; m.n_layers = 1; m.n_heads = 2; m.n_kv_heads = 1; m.ffn_dim = 32; m.vocab_size = 512; m.seq_len = 16;
    tern_params p;
    register_params(&p, &m);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 3, ".h5")) continue;
        char path[600];
        snprintf(path, sizeof path, "tests/fixtures/repro/%s", e->d_name);
        tern_model_config c;
        tern_train_state s;
        void *tb;
        size_t tn;
        // a file may be readable up to the part that is damaged; the full load reads everything
        int rc1 = tern_checkpoint_read_config(path, &c), rc2 = tern_checkpoint_read_state(path, &s);
        if (rc2 == 1) tern_train_state_free(&s);
        int rc3 = tern_checkpoint_read_tokenizer(path, &tb, &tn);
        if (rc3 == 1) free(tb);
        int rc4 = tern_checkpoint_load(path, &m, &p, &s);
        if (rc4 == 1) tern_train_state_free(&s);
        printf("  %s: config %d, state %d, tokenizer %d, load %d: %s\n", e->d_name, rc1, rc2, rc3, rc4, tern_last_error());
        assert_int_equal(rc4, -1);
        const char *err = tern_last_error();
        if (!strstr(err, path) || strchr(err, '\n')) fail_msg("%s: not one line naming the file: %s", path, err);
        n++;
    }
    closedir(d);
    assert_int_equal(n, 5);
    tern_params_free(&p);
}

// Every read of a file without a checksum is rehearsed in a child first (formats/checkpoint.h):
// a read that crashes there is reported, naming the file, and this process survives and does not
// read the file again; files with the header are read without a rehearsal. The hook runs in the
// rehearsing child after its read: it appends the read's return value to a file, or crashes.
static char rehearsal_mark[300];
static void hook_mark(int rc) {
    FILE *f = fopen(rehearsal_mark, "ab");
    if (f) { fputc('1' + rc, f); fclose(f); }
}
static void hook_crash(int rc) { (void)rc; raise(SIGSEGV); }
static int lowest_free_fd(void) {
    const int fd = dup(0);
    close(fd);
    return fd;
}
static void hook_fd(int rc) {   // the child's lowest free descriptor after its read, as text
    (void)rc;
    char t[32];
    const int n = snprintf(t, sizeof t, "%d", lowest_free_fd());
    FILE *f = fopen(rehearsal_mark, "wb");
    if (f) { fwrite(t, 1, (size_t)n, f); fclose(f); }
}
static void test_rehearsal(void **st) {
    (void)st;
    char src[300], path[300];
    path_in(src, sizeof src, "reh_sealed.h5");
    path_in(path, sizeof path, "reh_plain.h5");
    path_in(rehearsal_mark, sizeof rehearsal_mark, "reh_marks");
    save_sample(src, 1, 1);
    copy_from(src, path, 512);   // the same checkpoint without the header
    tern_model_config m = tiny_model(1), got;
    tern_params p;
    register_params(&p, &m);
    tern_train_state ts;
    void *tb;
    size_t tn;
    int version, sealed;
    // each reader of the file without the header rehearses once; of the sealed one, never
    remove(rehearsal_mark);
    tern_checkpoint_rehearsal_hook = hook_mark;
    const char *files[2] = {path, src};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tern_checkpoint_info(files[i], &version, &sealed), 0);
        assert_int_equal(sealed, i);
        assert_int_equal(tern_checkpoint_read_config(files[i], &got), 0);
        assert_int_equal(tern_checkpoint_read_state(files[i], &ts), 1);
        tern_train_state_free(&ts);
        assert_int_equal(tern_checkpoint_read_tokenizer(files[i], &tb, &tn), 1);
        free(tb);
        assert_int_equal(tern_checkpoint_load(files[i], &m, &p, &ts), 1);
        tern_train_state_free(&ts);
        int nm;
        assert_int_equal(tern_checkpoint_load_partial(files[i], &p, NULL, &nm), 0);
        // the plain file's 6 reads, rehearsed with the results of the real ones; none of the sealed one
        size_t mn;
        char *marks = tern_read_file(rehearsal_mark, &mn);
        assert_non_null(marks);
        assert_int_equal(mn, 6);
        assert_memory_equal(marks, "112221", 6);   // info 0, config 0, state 1, tokenizer 1, load 1, partial 0
        free(marks);
    }
    // the rehearsing child reads with this process's free descriptors (the file's descriptor
    // number reaches libhdf5's heap through the path it opens)
    tern_checkpoint_rehearsal_hook = hook_fd;
    assert_int_equal(tern_checkpoint_read_config(path, &got), 0);
    {
        size_t fn;
        char *t = tern_read_file(rehearsal_mark, &fn);
        assert_non_null(t);
        char want[32];
        snprintf(want, sizeof want, "%d", lowest_free_fd());
        if (fn != strlen(want) || memcmp(t, want, fn)) fail_msg("the child's lowest free fd %.*s, this process's %s", (int)fn, t, want);
        free(t);
    }
    // a read that crashes in the rehearsal: one line naming the file, this process goes on; the
    // file is not read again here (not even when the crash would not recur)
    char src2[300];
    path_in(src2, sizeof src2, "reh_sealed2.h5");
    save_sample(src2, 0, 1);     // another checkpoint (untied)
    copy_from(src2, path, 512);  // another file without the header: verified and rehearsed afresh
    tern_checkpoint_rehearsal_hook = hook_crash;
    expect_error("rehearsal crash", tern_checkpoint_read_config(path, &got), "damaged HDF5 structure (the HDF5 library crashed reading it)", path);
    tern_checkpoint_rehearsal_hook = NULL;
    expect_error("remembered", tern_checkpoint_load(path, &m, &p, &ts), "damaged HDF5 structure (the HDF5 library crashed", path);
    // the sealed file is never rehearsed: the crashing hook does not matter to it
    tern_checkpoint_rehearsal_hook = hook_crash;
    assert_int_equal(tern_checkpoint_read_config(src, &got), 0);
    tern_checkpoint_rehearsal_hook = NULL;
    tern_params_free(&p);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tern_test_ckpt_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),          cmocka_unit_test(test_no_state_no_tokenizer),
        cmocka_unit_test(test_rejects),            cmocka_unit_test(test_save_step_rotation),
        cmocka_unit_test(test_h5dump_layout),      cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_legacy),             cmocka_unit_test(test_repro_files),
        cmocka_unit_test(test_rehearsal),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && rc == 0) rc = 1;
    return rc;
}
