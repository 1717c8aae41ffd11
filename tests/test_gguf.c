// test_gguf.c — GGUF writer → reader round trip of every KV type and tensor type; rejection of
// malformed files (each built byte by byte by an independent encoder below) with an error that
// names the problem; truncation at every byte offset and random byte flips must never crash.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "formats/gguf.h"
#include "formats/tqpack.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static int setup(void **st) {
    (void)st;
    // many small files are written: prefer tmpfs
    snprintf(tmpdir, sizeof tmpdir, "/dev/shm/tern_test_gguf_XXXXXX");
    if (mkdtemp(tmpdir)) return 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tern_test_gguf_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}
static int teardown(void **st) {
    (void)st;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}
static void tpath(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

// ---------------------------------------------------------------- independent byte encoder
typedef struct { uint8_t *p; size_t n, cap; } enc;
static void e_put(enc *e, const void *s, size_t n) {
    if (e->n + n > e->cap) { e->cap = (e->n + n) * 2 + 64; e->p = realloc(e->p, e->cap); }
    memcpy(e->p + e->n, s, n);
    e->n += n;
}
static void e_u32(enc *e, uint32_t v) { e_put(e, &v, 4); }
static void e_u64(enc *e, uint64_t v) { e_put(e, &v, 8); }
static void e_str(enc *e, const char *s) { e_u64(e, strlen(s)); e_put(e, s, strlen(s)); }
static void e_hdr(enc *e, uint32_t version, int64_t nt, int64_t nk) { e_put(e, "GGUF", 4); e_u32(e, version); e_u64(e, (uint64_t)nt); e_u64(e, (uint64_t)nk); }
static void e_kv_u32(enc *e, const char *k, uint32_t v) { e_str(e, k); e_u32(e, TERN_GGUF_UINT32); e_u32(e, v); }
static void e_tinfo(enc *e, const char *name, uint32_t nd, const int64_t *ne, int32_t type, uint64_t off) {
    e_str(e, name); e_u32(e, nd);
    for (uint32_t i = 0; i < nd; i++) e_u64(e, (uint64_t)ne[i]);
    e_put(e, &type, 4); e_u64(e, off);
}
static void e_pad(enc *e, size_t a) { uint8_t z = 0; while (e->n % a) e_put(e, &z, 1); }
static void e_zeros(enc *e, size_t n) { uint8_t z = 0; for (size_t i = 0; i < n; i++) e_put(e, &z, 1); }

// expects tern_gguf_open to fail with an error that contains every given substring
static void expect_reject(enc *e, const char *name, const char *sub1, const char *sub2) {
    char p[300];
    tpath(p, sizeof p, name);
    write_bytes(p, e->p, e->n);
    tern_error("%s", "");
    tern_gguf *g = tern_gguf_open(p);
    if (g) { tern_gguf_close(g); fail_msg("%s: malformed file was accepted", name); }
    const char *m = tern_last_error();
    if (!strstr(m, p)) fail_msg("%s: error does not name the file: %s", name, m);
    if (sub1 && !strstr(m, sub1)) fail_msg("%s: error lacks '%s': %s", name, sub1, m);
    if (sub2 && !strstr(m, sub2)) fail_msg("%s: error lacks '%s': %s", name, sub2, m);
    free(e->p);
    memset(e, 0, sizeof *e);
}

// a valid minimal file: 1 kv, 1 f32 tensor {4}; check the encoder itself against the reader
static void test_encoder_valid(void **st) {
    (void)st;
    enc e = {0};
    int64_t ne[1] = {4};
    e_hdr(&e, 3, 1, 1);
    e_kv_u32(&e, "a.b", 7);
    e_tinfo(&e, "t", 1, ne, 0, 0);
    e_pad(&e, 32);
    float v[4] = {1, 2, 3, 4};
    e_put(&e, v, 16);
    char p[300];
    tpath(p, sizeof p, "valid.gguf");
    write_bytes(p, e.p, e.n);
    tern_gguf *g = tern_gguf_open(p);
    if (!g) fail_msg("%s", tern_last_error());
    uint32_t u;
    assert_int_equal(tern_gguf_get_u32(g, "a.b", &u), 0);
    assert_int_equal(u, 7);
    const tern_gguf_tensor *t = tern_gguf_get_tensor(g, "t");
    assert_non_null(t);
    assert_memory_equal(t->data, v, 16);
    tern_gguf_close(g);
    // version 2 is accepted as well
    memcpy(e.p + 4, &(uint32_t){2}, 4);
    write_bytes(p, e.p, e.n);
    g = tern_gguf_open(p);
    assert_non_null(g);
    assert_int_equal(tern_gguf_version(g), 2);
    tern_gguf_close(g);
    free(e.p);
    // the header ending at every offset modulo the alignment (key lengths 1..40), among them
    // exactly on a boundary (no padding): the data section starts at the next multiple of 32
    for (int L = 1; L <= 40; L++) {
        enc f = {0};
        char key[48];
        for (int i = 0; i < L; i++) key[i] = (char)('a' + i % 26);
        key[L] = 0;
        e_hdr(&f, 3, 1, 1);
        e_kv_u32(&f, key, 9);
        e_tinfo(&f, "t", 1, ne, 0, 0);
        const size_t hdr = f.n;
        e_pad(&f, 32);
        e_put(&f, v, 16);
        write_bytes(p, f.p, f.n);
        g = tern_gguf_open(p);
        if (!g) fail_msg("key length %d (header %zu bytes): %s", L, hdr, tern_last_error());
        t = tern_gguf_get_tensor(g, "t");
        assert_non_null(t);
        assert_memory_equal(t->data, v, 16);
        tern_gguf_close(g);
        free(f.p);
    }
}

static void test_rejects(void **st) {
    (void)st;
    enc e = {0};
    int64_t ne1[1] = {4}, ne2[2] = {256, 2};
    float v[4] = {0};

    e_put(&e, "GGML", 4); e_u32(&e, 3); e_u64(&e, 0); e_u64(&e, 0);
    expect_reject(&e, "magic.gguf", "bad magic", NULL);

    e_hdr(&e, 99, 0, 0);
    expect_reject(&e, "version.gguf", "version 99", NULL);

    e_hdr(&e, 3, 0, 1); e_u64(&e, 1ull << 40); e_put(&e, "abcd", 4); e_u32(&e, 4); e_u32(&e, 1);
    expect_reject(&e, "strlen.gguf", "string length 1099511627776", NULL);

    e_hdr(&e, 3, 0, 1ll << 50); e_kv_u32(&e, "k", 1);
    expect_reject(&e, "nkv.gguf", "kv count", NULL);

    e_hdr(&e, 3, 1ll << 40, 0); e_zeros(&e, 64);
    expect_reject(&e, "ntensors.gguf", "tensor count", NULL);

    e_hdr(&e, 3, -1, 0); e_zeros(&e, 64);
    expect_reject(&e, "negcount.gguf", "tensor count", NULL);

    e_hdr(&e, 3, 0, 1); e_str(&e, "arr"); e_u32(&e, TERN_GGUF_ARRAY); e_u32(&e, TERN_GGUF_INT32); e_u64(&e, 1ull << 60); e_zeros(&e, 16);
    expect_reject(&e, "arrcount.gguf", "array count", "arr");

    e_hdr(&e, 3, 0, 1); e_str(&e, "arr"); e_u32(&e, TERN_GGUF_ARRAY); e_u32(&e, TERN_GGUF_STRING); e_u64(&e, 3); e_str(&e, "x");
    e_u64(&e, 1000); e_put(&e, "yz", 2); e_zeros(&e, 16);
    expect_reject(&e, "arrstr.gguf", "string length 1000", "element 1");

    e_hdr(&e, 3, 0, 1); e_str(&e, "weird"); e_u32(&e, 13); e_u32(&e, 0);
    expect_reject(&e, "kvtype.gguf", "unknown value type 13", "weird");

    e_hdr(&e, 3, 0, 1); e_str(&e, "nest"); e_u32(&e, TERN_GGUF_ARRAY); e_u32(&e, TERN_GGUF_ARRAY); e_u64(&e, 1); e_zeros(&e, 16);
    expect_reject(&e, "nested.gguf", "nested", NULL);

    e_hdr(&e, 3, 0, 1); e_str(&e, "flag"); e_u32(&e, TERN_GGUF_BOOL); uint8_t two = 2; e_put(&e, &two, 1);
    expect_reject(&e, "bool.gguf", "bool", "flag");

    e_hdr(&e, 3, 0, 2); e_kv_u32(&e, "dup", 1); e_kv_u32(&e, "dup", 2);
    expect_reject(&e, "dupkey.gguf", "duplicate key dup", NULL);

    e_hdr(&e, 3, 0, 1); e_kv_u32(&e, "general.alignment", 48);
    expect_reject(&e, "align.gguf", "general.alignment 48", "power of 2");

    e_hdr(&e, 3, 0, 1); e_str(&e, "general.alignment"); e_u32(&e, TERN_GGUF_UINT64); e_u64(&e, 64);
    expect_reject(&e, "aligntype.gguf", "general.alignment", "expected uint32");

    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "blk.0.attn_q.weight", 2, ne2, 37, 0); e_pad(&e, 32); e_zeros(&e, 2 * 144);
    expect_reject(&e, "type.gguf", "unsupported tensor type 37", "blk.0.attn_q.weight");

    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "t", 1, ne1, 0, 8); e_pad(&e, 32); e_zeros(&e, 64);
    expect_reject(&e, "misaligned.gguf", "misaligned", "offset 8");

    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "t", 1, ne1, 0, 0); e_pad(&e, 32); e_put(&e, v, 15);
    expect_reject(&e, "pasteof.gguf", "past the end", "tensor t");

    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "t", 1, ne1, 0, 1ull << 62); e_pad(&e, 32); e_put(&e, v, 16);
    expect_reject(&e, "hugeoff.gguf", "past the end", NULL);

    e_hdr(&e, 3, 2, 0); e_tinfo(&e, "t", 1, ne1, 0, 0); e_tinfo(&e, "t", 1, ne1, 0, 32); e_pad(&e, 32); e_zeros(&e, 64);
    expect_reject(&e, "dupname.gguf", "duplicate tensor name t", NULL);

    int64_t ne8[1] = {8};
    e_hdr(&e, 3, 2, 0); e_tinfo(&e, "a", 1, ne8, 0, 0); e_tinfo(&e, "b", 1, ne1, 0, 0); e_pad(&e, 32); e_zeros(&e, 64);
    expect_reject(&e, "overlap.gguf", "overlap", NULL);
    int64_t ne16[1] = {16};   // a [0, 64) and b [32, 96): b starts inside a and ends past it
    e_hdr(&e, 3, 2, 0); e_tinfo(&e, "a", 1, ne16, 0, 0); e_tinfo(&e, "b", 1, ne16, 0, 32); e_pad(&e, 32); e_zeros(&e, 96);
    expect_reject(&e, "overlap2.gguf", "overlap", NULL);

    int64_t ne5[5] = {1, 1, 1, 1, 4};
    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "t5", 5, ne5, 0, 0); e_pad(&e, 32); e_zeros(&e, 64);
    expect_reject(&e, "ndims.gguf", "n_dims 5", "t5");

    int64_t ne0[2] = {4, 0};
    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "z", 2, ne0, 0, 0); e_pad(&e, 32); e_zeros(&e, 64);
    expect_reject(&e, "zerodim.gguf", "must be > 0", "tensor z");

    int64_t ne100[2] = {100, 2};
    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "q", 2, ne100, TERN_GGML_TQ2_0, 0); e_pad(&e, 32); e_zeros(&e, 256);
    expect_reject(&e, "blockrow.gguf", "not a multiple of the tq2_0 block size", "tensor q");

    int64_t nebig[4] = {1ll << 40, 1ll << 40, 1ll << 40, 1};
    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "big", 3, nebig, 0, 0); e_pad(&e, 32); e_zeros(&e, 64);
    expect_reject(&e, "overflow.gguf", "overflow", "big");

    e_hdr(&e, 3, 1, 0); e_tinfo(&e, "t", 1, ne1, 0, 0);   // no data section at all
    expect_reject(&e, "nodata.gguf", "past the end", NULL);

    e_put(&e, "GGUF", 4); e_u32(&e, 3);
    expect_reject(&e, "short.gguf", "truncated", NULL);

    e_hdr(&e, 3, 0, 2); e_kv_u32(&e, "a", 1); e_str(&e, "b"); e_u32(&e, TERN_GGUF_UINT64); e_u32(&e, 0);
    expect_reject(&e, "trunckv.gguf", "truncated", "key b");

    // missing file and a directory
    char p[300];
    tpath(p, sizeof p, "does-not-exist.gguf");
    assert_null(tern_gguf_open(p));
    assert_non_null(strstr(tern_last_error(), "cannot open"));
    assert_null(tern_gguf_open(tmpdir));
    assert_non_null(strstr(tern_last_error(), "is a directory"));
}

// ---------------------------------------------------------------- writer → reader round trip
static const char *strs[] = {"<unk>", "", "▁the", "<0x0A>", "a longer piece with spaces"};

static void build_full(tern_gguf_writer *w, float *f32, uint16_t *f16, uint8_t *tq2, uint8_t *tq1, float *f4) {
    assert_int_equal(tern_gguf_add_str(w, "general.architecture", "bitnet"), 0);
    assert_int_equal(tern_gguf_add_u8(w, "k.u8", 200), 0);
    assert_int_equal(tern_gguf_add_i8(w, "k.i8", -100), 0);
    assert_int_equal(tern_gguf_add_u16(w, "k.u16", 60000), 0);
    assert_int_equal(tern_gguf_add_i16(w, "k.i16", -30000), 0);
    assert_int_equal(tern_gguf_add_u32(w, "k.u32", 4000000000u), 0);
    assert_int_equal(tern_gguf_add_i32(w, "k.i32", -2000000000), 0);
    assert_int_equal(tern_gguf_add_u64(w, "k.u64", 18000000000000000000ull), 0);
    assert_int_equal(tern_gguf_add_i64(w, "k.i64", -9000000000000000000ll), 0);
    assert_int_equal(tern_gguf_add_f32(w, "k.f32", 1e-5f), 0);
    assert_int_equal(tern_gguf_add_f64(w, "k.f64", 3.141592653589793), 0);
    assert_int_equal(tern_gguf_add_bool(w, "k.bool", 1), 0);
    assert_int_equal(tern_gguf_add_bool(w, "k.bool0", 0), 0);
    assert_int_equal(tern_gguf_add_str_len(w, "k.strnul", "a\0b", 3), 0);
    assert_int_equal(tern_gguf_add_arr_str(w, "tokenizer.ggml.tokens", strs, 5), 0);
    float sc[5] = {0, -1.5f, 2.25f, -1e30f, 7};
    assert_int_equal(tern_gguf_add_arr(w, "tokenizer.ggml.scores", TERN_GGUF_FLOAT32, sc, 5), 0);
    int32_t ty[5] = {2, 3, 1, 6, 1};
    assert_int_equal(tern_gguf_add_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_INT32, ty, 5), 0);
    uint32_t u3[3] = {1, 2, 4000000000u};
    assert_int_equal(tern_gguf_add_arr(w, "k.arr_u32", TERN_GGUF_UINT32, u3, 3), 0);
    int64_t i64a[2] = {-5, 1ll << 50};
    assert_int_equal(tern_gguf_add_arr(w, "k.arr_i64", TERN_GGUF_INT64, i64a, 2), 0);
    uint8_t b3[3] = {1, 0, 1};
    assert_int_equal(tern_gguf_add_arr(w, "k.arr_bool", TERN_GGUF_BOOL, b3, 3), 0);
    assert_int_equal(tern_gguf_add_arr(w, "k.arr_empty", TERN_GGUF_UINT8, NULL, 0), 0);
    // tensors: f32 [3,5], f16 {7}, tq2 [2,512], tq1 [3,256], 4-d f32 {2,1,3,2}
    for (int i = 0; i < 15; i++) f32[i] = (float)i * 0.5f - 3;
    for (int i = 0; i < 7; i++) f16[i] = tern_fp32_to_fp16((float)i - 2.5f);
    int8_t wq[3 * 512];
    for (int i = 0; i < 3 * 512; i++) wq[i] = (int8_t)(i * 7 % 3 - 1);
    assert_int_equal(tern_tq2_pack(wq, 1024, 0.5f, tq2), 0);
    assert_int_equal(tern_tq1_pack(wq, 768, 0.25f, tq1), 0);
    for (int i = 0; i < 12; i++) f4[i] = (float)i;
    int64_t ne_a[2] = {5, 3}, ne_b[1] = {7}, ne_c[2] = {512, 2}, ne_d[2] = {256, 3}, ne_e[4] = {2, 1, 3, 2};
    assert_int_equal(tern_gguf_add_tensor(w, "token_embd.weight", 2, ne_a, TERN_GGML_F32, f32, 60), 0);
    assert_int_equal(tern_gguf_add_tensor(w, "h", 1, ne_b, TERN_GGML_F16, f16, 14), 0);
    assert_int_equal(tern_gguf_add_tensor(w, "blk.0.attn_q.weight", 2, ne_c, TERN_GGML_TQ2_0, tq2, 2 * 2 * 66), 0);
    assert_int_equal(tern_gguf_add_tensor(w, "blk.0.attn_k.weight", 2, ne_d, TERN_GGML_TQ1_0, tq1, 3 * 54), 0);
    assert_int_equal(tern_gguf_add_tensor(w, "four", 4, ne_e, TERN_GGML_F32, f4, 48), 0);
}

static void check_full(const char *path, size_t align, const float *f32, const uint16_t *f16, const uint8_t *tq2,
                       const uint8_t *tq1, const float *f4) {
    tern_gguf *g = tern_gguf_open(path);
    if (!g) fail_msg("%s", tern_last_error());
    assert_int_equal(tern_gguf_version(g), 3);
    assert_int_equal(tern_gguf_alignment(g), align);
    const char *s; size_t len;
    assert_int_equal(tern_gguf_get_str(g, "general.architecture", &s, &len), 0);
    assert_string_equal(s, "bitnet"); assert_int_equal(len, 6);
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; float f; double d; int b;
    assert_int_equal(tern_gguf_get_u8(g, "k.u8", &u8), 0); assert_int_equal(u8, 200);
    assert_int_equal(tern_gguf_get_i8(g, "k.i8", &i8), 0); assert_int_equal(i8, -100);
    assert_int_equal(tern_gguf_get_u16(g, "k.u16", &u16), 0); assert_int_equal(u16, 60000);
    assert_int_equal(tern_gguf_get_i16(g, "k.i16", &i16), 0); assert_int_equal(i16, -30000);
    assert_int_equal(tern_gguf_get_u32(g, "k.u32", &u32), 0); assert_true(u32 == 4000000000u);
    assert_int_equal(tern_gguf_get_i32(g, "k.i32", &i32), 0); assert_int_equal(i32, -2000000000);
    assert_int_equal(tern_gguf_get_u64(g, "k.u64", &u64), 0); assert_true(u64 == 18000000000000000000ull);
    assert_int_equal(tern_gguf_get_i64(g, "k.i64", &i64), 0); assert_true(i64 == -9000000000000000000ll);
    assert_int_equal(tern_gguf_get_i64(g, "k.u32", &i64), 0); assert_true(i64 == 4000000000ll);
    assert_int_equal(tern_gguf_get_i64(g, "k.u64", &i64), -1);   // does not fit
    assert_non_null(strstr(tern_last_error(), "does not fit"));
    assert_int_equal(tern_gguf_get_f32(g, "k.f32", &f), 0); assert_true(f == 1e-5f);
    assert_int_equal(tern_gguf_get_f64(g, "k.f64", &d), 0); assert_true(d == 3.141592653589793);
    assert_int_equal(tern_gguf_get_bool(g, "k.bool", &b), 0); assert_int_equal(b, 1);
    assert_int_equal(tern_gguf_get_bool(g, "k.bool0", &b), 0); assert_int_equal(b, 0);
    assert_int_equal(tern_gguf_get_str(g, "k.strnul", &s, &len), 0); assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 4);
    // wrong type and missing key
    assert_int_equal(tern_gguf_get_str(g, "k.u32", &s, NULL), -1);
    assert_non_null(strstr(tern_last_error(), "k.u32: is uint32, expected string"));
    assert_non_null(strstr(tern_last_error(), path));
    assert_int_equal(tern_gguf_get_u32(g, "k.i32", &u32), -1);
    assert_non_null(strstr(tern_last_error(), "is int32, expected uint32"));
    assert_int_equal(tern_gguf_get_f32(g, "nope", &f), -1);
    assert_non_null(strstr(tern_last_error(), "nope: missing"));
    assert_int_equal(tern_gguf_find_kv(g, "nope"), -1);
    // arrays
    const char *const *ss; const size_t *lens; uint64_t n;
    assert_int_equal(tern_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &ss, &lens, &n), 0);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) { assert_string_equal(ss[i], strs[i]); assert_int_equal(lens[i], strlen(strs[i])); }
    const float *fa;
    assert_int_equal(tern_gguf_get_arr_f32(g, "tokenizer.ggml.scores", &fa, &n), 0);
    assert_int_equal(n, 5); assert_true(fa[1] == -1.5f && fa[3] == -1e30f);
    const int32_t *ia;
    assert_int_equal(tern_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &ia, &n), 0);
    assert_int_equal(n, 5); assert_int_equal(ia[3], 6);
    assert_int_equal(tern_gguf_get_arr_f32(g, "tokenizer.ggml.token_type", &fa, &n), -1);
    assert_non_null(strstr(tern_last_error(), "array of int32, expected an array of float32"));
    assert_int_equal(tern_gguf_get_arr_i32(g, "k.i32", &ia, &n), -1);
    assert_non_null(strstr(tern_last_error(), "is int32, expected array"));
    const uint32_t *ua;
    assert_int_equal(tern_gguf_get_arr_u32(g, "k.arr_u32", &ua, &n), 0);
    assert_int_equal(n, 3); assert_true(ua[2] == 4000000000u);
    const void *va;
    assert_int_equal(tern_gguf_get_arr(g, "k.arr_i64", TERN_GGUF_INT64, &va, &n), 0);
    assert_int_equal(n, 2); assert_true(((const int64_t *)va)[1] == 1ll << 50);
    assert_int_equal(tern_gguf_get_arr(g, "k.arr_bool", TERN_GGUF_BOOL, &va, &n), 0);
    assert_int_equal(n, 3); assert_memory_equal(va, "\1\0\1", 3);
    assert_int_equal(tern_gguf_get_arr(g, "k.arr_empty", TERN_GGUF_UINT8, &va, &n), 0);
    assert_int_equal(n, 0);
    int ki = tern_gguf_find_kv(g, "tokenizer.ggml.tokens");
    assert_true(ki >= 0);
    assert_int_equal(tern_gguf_kv_type(g, ki), TERN_GGUF_ARRAY);
    assert_int_equal(tern_gguf_kv_arr_type(g, ki), TERN_GGUF_STRING);
    assert_int_equal(tern_gguf_kv_arr_n(g, ki), 5);
    assert_string_equal(tern_gguf_kv_key(g, tern_gguf_find_kv(g, "general.architecture")), "general.architecture");
    // tensors
    assert_int_equal(tern_gguf_n_tensors(g), 5);
    const tern_gguf_tensor *t = tern_gguf_get_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2); assert_int_equal(t->ne[0], 5); assert_int_equal(t->ne[1], 3); assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->type, TERN_GGML_F32); assert_int_equal(t->nbytes, 60);
    assert_memory_equal(t->data, f32, 60);
    t = tern_gguf_get_tensor(g, "h");
    assert_int_equal(t->type, TERN_GGML_F16); assert_memory_equal(t->data, f16, 14);
    t = tern_gguf_get_tensor(g, "blk.0.attn_q.weight");
    assert_int_equal(t->type, TERN_GGML_TQ2_0); assert_int_equal(t->nbytes, 264); assert_memory_equal(t->data, tq2, 264);
    t = tern_gguf_get_tensor(g, "blk.0.attn_k.weight");
    assert_int_equal(t->type, TERN_GGML_TQ1_0); assert_int_equal(t->ne[1], 3); assert_memory_equal(t->data, tq1, 162);
    t = tern_gguf_get_tensor(g, "four");
    assert_int_equal(t->n_dims, 4); assert_int_equal(t->ne[3], 2); assert_memory_equal(t->data, f4, 48);
    for (int i = 0; i < 5; i++) {
        t = tern_gguf_tensor_at(g, i);
        assert_int_equal(t->offset % align, 0);
        assert_int_equal(((uintptr_t)t->data) % align, 0);
    }
    assert_null(tern_gguf_find_tensor(g, "blk.9.nothing"));
    assert_null(tern_gguf_get_tensor(g, "blk.9.nothing"));
    assert_non_null(strstr(tern_last_error(), "missing tensor blk.9.nothing"));
    tern_gguf_close(g);
}

static void test_round_trip(void **st) {
    (void)st;
    float f32[15], f4[12];
    uint16_t f16[7];
    uint8_t tq2[264], tq1[162];
    char p[300];
    tpath(p, sizeof p, "full.gguf");
    tern_gguf_writer *w = tern_gguf_writer_new();
    build_full(w, f32, f16, tq2, tq1, f4);
    // writer-side rejections
    assert_int_equal(tern_gguf_add_u32(w, "k.u32", 1), -1);
    assert_non_null(strstr(tern_last_error(), "duplicate key"));
    int64_t ne[2] = {100, 2};
    assert_int_equal(tern_gguf_add_tensor(w, "bad", 2, ne, TERN_GGML_TQ2_0, tq2, 264), -1);
    assert_non_null(strstr(tern_last_error(), "multiple"));
    ne[0] = 5; ne[1] = 3;
    assert_int_equal(tern_gguf_add_tensor(w, "h", 2, ne, TERN_GGML_F32, f32, 60), -1);
    assert_non_null(strstr(tern_last_error(), "duplicate tensor name"));
    assert_int_equal(tern_gguf_add_tensor(w, "x", 2, ne, TERN_GGML_F32, f32, 61), -1);
    assert_int_equal(tern_gguf_add_tensor(w, "x", 2, ne, 37, f32, 60), -1);
    assert_non_null(strstr(tern_last_error(), "unsupported tensor type 37"));
    assert_int_equal(tern_gguf_write(w, p), 0);
    tern_gguf_writer_free(w);
    check_full(p, 32, f32, f16, tq2, tq1, f4);
    // no temporary file left behind
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", tmpdir);
    assert_int_not_equal(system(cmd), 0);

    // general.alignment = 64
    w = tern_gguf_writer_new();
    assert_int_equal(tern_gguf_add_u32(w, "general.alignment", 64), 0);
    build_full(w, f32, f16, tq2, tq1, f4);
    tpath(p, sizeof p, "full64.gguf");
    assert_int_equal(tern_gguf_write(w, p), 0);
    tern_gguf_writer_free(w);
    check_full(p, 64, f32, f16, tq2, tq1, f4);
    w = tern_gguf_writer_new();
    assert_int_equal(tern_gguf_add_u32(w, "general.alignment", 24), -1);
    assert_int_equal(tern_gguf_write(w, "/nonexistent-dir/x.gguf"), -1);
    assert_non_null(strstr(tern_last_error(), "/nonexistent-dir/x.gguf"));
    tern_gguf_writer_free(w);
}

// truncate a valid file at every byte offset and flip random bytes: never crash; truncation
// before the end of the last tensor's data must be rejected
static void test_fuzz(void **st) {
    (void)st;
    float f32[15], f4[12];
    uint16_t f16[7];
    uint8_t tq2[264], tq1[162];
    char p[300], q[300];
    tpath(p, sizeof p, "fuzz-src.gguf");
    tpath(q, sizeof q, "fuzz.gguf");
    tern_gguf_writer *w = tern_gguf_writer_new();
    build_full(w, f32, f16, tq2, tq1, f4);
    assert_int_equal(tern_gguf_write(w, p), 0);
    tern_gguf_writer_free(w);
    size_t n;
    char *buf = tern_read_file(p, &n);
    assert_non_null(buf);
    tern_gguf *g;
    // last tensor's end in the file: find its bytes (f4, 48 bytes) searching from the end
    size_t last_end = 0;
    for (size_t off = n - 48 + 1; off-- > 0;)
        if (memcmp(buf + off, f4, 48) == 0) { last_end = off + 48; break; }
    assert_true(last_end > 0 && last_end <= n);
    int rejected = 0;
    for (size_t cut = 0; cut < n; cut++) {
        write_bytes(q, buf, cut);
        g = tern_gguf_open(q);
        if (g) {
            if (cut < last_end) fail_msg("file truncated at %zu of %zu bytes was accepted", cut, n);
            tern_gguf_close(g);
        } else {
            rejected++;
            assert_non_null(strstr(tern_last_error(), q));
        }
    }
    assert_true(rejected >= (int)last_end);
    // random byte flips in the header/info region
    tern_rng r;
    tern_rng_seed(&r, 11);
    size_t hdr = last_end;   // flips anywhere up to the end of the last tensor
    int accepted = 0, refused = 0;
    for (int it = 0; it < 400; it++) {
        char *m = malloc(n);
        memcpy(m, buf, n);
        int flips = 1 + (int)(tern_rng_u64(&r) % 4);
        for (int k = 0; k < flips; k++) m[tern_rng_u64(&r) % hdr] ^= (char)(1 + tern_rng_u64(&r) % 255);
        write_bytes(q, m, n);
        g = tern_gguf_open(q);
        if (g) {
            // whatever was accepted must be self-consistent: known types and shapes, sizes that
            // match them, aligned data that lies inside the file (reading it must not fault)
            accepted++;
            const uint8_t *base = NULL;
            for (int i = 0; i < tern_gguf_n_tensors(g); i++) {
                const tern_gguf_tensor *t = tern_gguf_tensor_at(g, i);
                size_t nb = 0;
                assert_true(t->n_dims >= 1 && t->n_dims <= 4 && tern_ggml_type_known(t->type));
                assert_int_equal(tern_ggml_nbytes(t->type, t->n_dims, t->ne, &nb), 0);
                assert_int_equal(nb, t->nbytes);
                assert_int_equal(t->offset % tern_gguf_alignment(g), 0);
                const uint8_t *ds = (const uint8_t *)t->data - t->offset;   // the data section start
                if (!base) base = ds;
                assert_ptr_equal(ds, base);
                volatile uint8_t sink = 0;
                for (size_t j = 0; j < t->nbytes; j++) sink ^= ((const uint8_t *)t->data)[j];
                (void)sink;
            }
            tern_gguf_close(g);
        } else {
            refused++;
            assert_non_null(strstr(tern_last_error(), q));   // one message naming the file
        }
        free(m);
    }
    printf("byte flips: %d files accepted, %d refused\n", accepted, refused);
    assert_true(accepted > 0 && refused > 0);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoder_valid), cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests_name("gguf", tests, setup, teardown);
}
