// test_util.c — util.c against independent references: fp32 <-> fp16 conversion (a rounding
// written here in double arithmetic, and the CPU's F16C instructions when present) over every fp16
// value, every tie between two of them and random floats; the option parsers, the median, file
// helpers (read, atomic commit) and the RNG's ranges. And the util.h pieces the hardening relies on:
// the 64-bit hash against published XXH64 values (computed by the reference xxhsum tool, not by this
// code), streaming in any chunking; the string set; opening inputs that are not regular files (never
// blocking on a FIFO); refusing outputs that are directories, devices or FIFOs; atomic commit
// refusing to replace a device.
#include "testutil.h"
#include "formats/gguf.h"
#include "tokenizers/tokenizer.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- fp16 references -----------------------------------------------------------------------------
// value of a half (exact in double)
static double ref_f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

// nearest half, ties to even, overflow to infinity (IEEE 754 binary16), from the float's exact
// value in double: nearbyint rounds the scaled significand with the default (to-even) mode
static uint16_t ref_f32_to_f16(float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0) return sign | 0x7c00;          // 65504 + half an ulp (2^4) rounds to inf
    if (a < ldexp(1.0, -14)) return sign | (uint16_t)nearbyint(a * ldexp(1.0, 24));   // subnormal (1024 = min normal)
    int e;
    frexp(a, &e);                                    // a = m 2^e, m in [0.5, 1)
    double r = nearbyint(a * ldexp(1.0, 11 - e));    // significand in [1024, 2048]
    int E = e - 1 + 15;
    if (r == 2048) { r = 1024; E++; }
    if (E >= 31) return sign | 0x7c00;
    return sign | (uint16_t)(E << 10) | (uint16_t)(r - 1024);
}

__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

static int same_half(uint16_t a, uint16_t b) {   // NaNs: any payload
    int na = (a & 0x7c00) == 0x7c00 && (a & 0x3ff), nb = (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
    return na || nb ? na == nb && (a & 0x8000) == (b & 0x8000) : a == b;
}

static void check_to_f16(float f, int hw, long *n) {
    uint16_t t = tern_fp32_to_fp16(f), r = ref_f32_to_f16(f);
    if (!same_half(t, r)) fail_msg("fp32 %a (%.9g) -> fp16 0x%04x, reference 0x%04x", (double)f, (double)f, t, r);
    if (hw && !same_half(t, hw_f32_to_f16(f))) fail_msg("fp32 %a -> fp16 0x%04x, F16C 0x%04x", (double)f, t, hw_f32_to_f16(f));
    (*n)++;
}

static void test_fp16(void **st) {
    (void)st;
    __builtin_cpu_init();
    const int hw = __builtin_cpu_supports("f16c");
    long n = 0;
    // every half -> float, and back
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tern_fp16_to_fp32((uint16_t)h);
        double r = ref_f16_value((uint16_t)h);
        if (isnan(r) ? !isnan(f) : (double)f != r || !signbit(f) != !signbit(r)) fail_msg("fp16 0x%04x -> %g, reference %g", h, f, r);
        if (hw && memcmp(&f, &(float){hw_f16_to_f32((uint16_t)h)}, 4) && !isnan(f)) fail_msg("fp16 0x%04x: F16C differs", h);
        check_to_f16(f, hw, &n);
        // the tie between h and the next half up (and one float ulp either side)
        if ((h & 0x7c00) != 0x7c00 && (h & 0x7fff) != 0x7bff) {
            double mid = 0.5 * (r + ref_f16_value((uint16_t)(h + 1)));
            float fm = (float)mid;                   // exact: halves have 11 significant bits
            assert_true((double)fm == mid);
            check_to_f16(fm, hw, &n);
            check_to_f16(nextafterf(fm, INFINITY), hw, &n);
            check_to_f16(nextafterf(fm, -INFINITY), hw, &n);
        }
    }
    // overflow boundary, specials, random floats of every magnitude
    const float special[] = {65504.0f, 65519.99f, 65520.0f, 1e6f, -65520.0f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-10f, 0.0f, -0.0f,
                             INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) check_to_f16(special[i], hw, &n);
    tern_rng r;
    tern_rng_seed(&r, 16);
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)tern_rng_u64(&r);
        float f;
        memcpy(&f, &bits, 4);
        if (fabsf(f) > 1e-9f && fabsf(f) < 1e6f) check_to_f16(f, hw, &n);
        else check_to_f16(ldexpf((float)(bits & 0xffffff) / 16777216.0f, (int)(bits >> 27) - 20), hw, &n);
    }
    printf("fp16: %ld conversions checked against the double-arithmetic reference%s\n", n, hw ? " and F16C" : "");
}

// ---- parsers, median, files, rng --------------------------------------------------------------
static void test_parse(void **st) {
    (void)st;
    long v = 7;
    assert_int_equal(tern_parse_long("12", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(tern_parse_long("-5", &v), 0);
    assert_int_equal(v, -5);
    const char *bad_long[] = {"", "12abc", "1.5", " ", "99999999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof bad_long / sizeof *bad_long; i++) {
        v = 7;
        if (tern_parse_long(bad_long[i], &v) == 0) fail_msg("tern_parse_long accepted '%s'", bad_long[i]);
        assert_int_equal(v, 7);
    }
    assert_int_equal(tern_parse_long(NULL, &v), -1);
    float f = 0;
    assert_int_equal(tern_parse_float("1e-3", &f), 0);
    assert_true(f == 1e-3f);
    assert_int_equal(tern_parse_float("-2.5", &f), 0);
    assert_true(f == -2.5f);
    const char *bad_float[] = {"", "1.5x", "inf", "nan", "1e99", "abc"};
    for (size_t i = 0; i < sizeof bad_float / sizeof *bad_float; i++) {
        f = 3;
        if (tern_parse_float(bad_float[i], &f) == 0) fail_msg("tern_parse_float accepted '%s'", bad_float[i]);
        assert_true(f == 3);
    }
}

static void test_median(void **st) {
    (void)st;
    double a[3] = {3, 1, 2}, b[4] = {4, 1, 3, 2}, c[1] = {-7}, d[6] = {5, 5, 1, 9, 2, 8};
    assert_true(tern_median(a, 3) == 2.0);
    assert_true(tern_median(b, 4) == 2.5);
    assert_true(tern_median(c, 1) == -7.0);
    assert_true(tern_median(d, 6) == 5.0);
    assert_true(d[0] == 1 && d[5] == 9);   // sorted in place
}

static void test_files(void **st) {
    (void)st;
    char tdir[] = "/tmp/tern-test-util-XXXXXX";
    assert_non_null(mkdtemp(tdir));
    char path[128], tmp[256];
    snprintf(path, sizeof path, "%s/a.bin", tdir);
    // missing file: the error names it
    size_t n = 99;
    assert_null(tern_read_file(path, &n));
    assert_non_null(strstr(tern_last_error(), path));
    assert_non_null(strstr(tern_last_error(), "cannot open"));
    // atomic write: tmp file, commit, content; the tmp file is gone
    tern_tmp_path(path, tmp, sizeof tmp);
    assert_true(strncmp(tmp, path, strlen(path)) == 0 && strlen(tmp) > strlen(path));
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    const char data[] = "tern\0bytes\n";
    assert_int_equal(fwrite(data, 1, sizeof data, f), sizeof data);
    fclose(f);
    assert_int_equal(access(path, F_OK), -1);   // nothing at the final path before the commit
    assert_int_equal(tern_commit_file(tmp, path), 0);
    assert_int_equal(access(tmp, F_OK), -1);
    char *back = tern_read_file(path, &n);
    assert_non_null(back);
    assert_int_equal(n, sizeof data);
    assert_memory_equal(back, data, sizeof data);
    assert_int_equal(back[n], 0);               // NUL-terminated for convenience
    free(back);
    // commit of a missing tmp file fails and names the destination
    assert_int_equal(tern_commit_file(tmp, path), -1);
    assert_non_null(strstr(tern_last_error(), path));
    tern_discard_file(path);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(rmdir(tdir), 0);
    // errors: formatted, kept per thread, "unknown error" never empty
    tern_error("x %d: %s", 42, "problem");
    assert_string_equal(tern_last_error(), "x 42: problem");
}

static void test_rng(void **st) {
    (void)st;
    tern_rng a, b;
    tern_rng_seed(&a, 0);
    assert_true(a.s != 0);                       // seed 0 still gives a working generator
    tern_rng_seed(&b, 0);
    for (int i = 0; i < 10; i++) assert_true(tern_rng_u64(&a) == tern_rng_u64(&b));
    tern_rng_seed(&b, 1);
    assert_true(tern_rng_u64(&a) != tern_rng_u64(&b));
    double sum = 0, sq = 0, usum = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        float u = tern_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        usum += u;
        float z = tern_rng_normal(&a);
        assert_true(isfinite(z));
        sum += z;
        sq += (double)z * z;
    }
    // 5 standard errors: mean 0.5 +- 0.0046 (uniform), mean 0 +- 0.016 and variance 1 +- 0.022 (normal)
    printf("rng: uniform mean %.4f, normal mean %.4f variance %.4f over %d draws\n", usum / n, sum / n, sq / n, n);
    assert_true(fabs(usum / n - 0.5) < 0.0046);
    assert_true(fabs(sum / n) < 0.016);
    assert_true(fabs(sq / n - 1.0) < 0.022);
}

static char dir[256];

static void test_hash64_vectors(void **st) {
    (void)st;
    // xxhsum -H64 (xxHash 0.8.1) of these inputs
    assert_true(tern_hash64("", 0, 0) == 0xef46db3751d8e999ull);
    assert_true(tern_hash64("a", 1, 0) == 0xd24ec4f1a98c6e5bull);
    assert_true(tern_hash64("abc", 3, 0) == 0x44bc2cf5ad770999ull);
    const char *s = "Nobody inspects the spammish repetition";   // 39 bytes: stripes + tail
    assert_true(tern_hash64(s, strlen(s), 0) == 0xfbcea83c8a378bf1ull);
    size_t n;
    char *text = tern_read_file("data/tinyshakespeare/input.txt", &n);
    assert_non_null(text);
    assert_true(tern_hash64(text, 1000, 0) == 0x6d82d5f108700ec4ull);   // head -c 1000 | xxhsum -H64
    // streaming: any split gives the one-shot result
    uint64_t whole = tern_hash64(text, 100003, 7);
    size_t cuts[] = {1, 3, 31, 32, 33, 64, 4097};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        tern_hash64_state hs;
        tern_hash64_init(&hs, 7);
        for (size_t off = 0; off < 100003; off += cuts[c])
            tern_hash64_update(&hs, text + off, off + cuts[c] <= 100003 ? cuts[c] : 100003 - off);
        assert_true(tern_hash64_final(&hs) == whole);
    }
    assert_true(tern_hash64(text, 100003, 8) != whole);   // the seed matters
    text[5000] ^= 1;
    assert_true(tern_hash64(text, 100003, 7) != whole);   // one bit matters
    free(text);
}

static void test_strset(void **st) {
    (void)st;
    tern_strset s;
    tern_strset_init(&s);
    assert_false(tern_strset_has(&s, "x"));
    enum { N = 20000 };
    static char names[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "blk.%d.attn_q.weight", i);
        assert_int_equal(tern_strset_add(&s, names[i]), 1);
    }
    for (int i = 0; i < N; i++) assert_int_equal(tern_strset_add(&s, names[i]), 0);   // duplicates
    char probe[32];
    snprintf(probe, sizeof probe, "blk.%d.attn_q.weight", 12345);
    assert_true(tern_strset_has(&s, probe));
    assert_false(tern_strset_has(&s, "blk.20000.attn_q.weight"));
    assert_int_equal(s.n, N);
    tern_strset_free(&s);
}

static void test_params_index(void **st) {
    (void)st;
    // 11 parameters per layer x 1024 layers (TERN_MAX_LAYERS): registration stays linear
    tern_params p;
    tern_params_init(&p);
    double t0 = tern_time();
    char name[64];
    for (int i = 0; i < 11 * 1024; i++) {
        snprintf(name, sizeof name, "blk.%d.p%d.weight", i / 11, i % 11);
        tern_params_add(&p, name, 1, (int[]){4}, 0);
    }
    double dt = tern_time() - t0;
    printf("  11264 parameters registered in %.1f ms\n", dt * 1e3);
    assert_non_null(tern_params_find(&p, "blk.1000.p3.weight"));
    assert_ptr_equal(tern_params_find(&p, "blk.7.p2.weight"), p.t[7 * 11 + 2]);
    assert_null(tern_params_find(&p, "blk.1024.p0.weight"));
    tern_params_free(&p);
}

static void test_inputs_outputs(void **st) {
    (void)st;
    char fifo[300], sub[300], reg[300], tmp[400];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(reg, sizeof reg, "%s/file.txt", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    FILE *f = fopen(reg, "w");
    fputs("hello", f);
    fclose(f);
    size_t n = 99;
    // inputs: a FIFO with no writer must not block, a directory must not read as "out of memory"
    assert_null(tern_read_file(fifo, &n));
    assert_string_equal(tern_last_error(), strcat(strcpy(tmp, fifo), ": not a regular file (FIFO)"));
    assert_null(tern_read_file(sub, &n));
    assert_string_equal(tern_last_error(), strcat(strcpy(tmp, sub), ": is a directory"));
    assert_int_equal(tern_open_regular("/dev/null", NULL), -1);
    assert_non_null(strstr(tern_last_error(), "not a regular file (character device)"));
    char *b = tern_read_file(reg, &n);
    assert_non_null(b);
    assert_int_equal(n, 5);
    assert_string_equal(b, "hello");
    free(b);
    int fd = tern_open_regular(reg, &n);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);   // a normal fd again
    close(fd);
    // outputs
    assert_int_equal(tern_check_output_path(reg), 0);
    snprintf(tmp, sizeof tmp, "%s/new.bin", dir);
    assert_int_equal(tern_check_output_path(tmp), 0);
    assert_int_equal(tern_check_output_path(sub), -1);
    assert_non_null(strstr(tern_last_error(), "is a directory"));
    assert_int_equal(tern_check_output_path(fifo), -1);
    assert_non_null(strstr(tern_last_error(), "not a regular file (FIFO); refusing to replace it"));
    assert_int_equal(tern_check_output_path("/dev/null"), -1);
    assert_non_null(strstr(tern_last_error(), "character device"));
    // the atomic commit refuses to rename over a FIFO (as it would over /dev/null)
    tern_tmp_path(fifo, tmp, sizeof tmp);
    f = fopen(tmp, "w");
    fputs("x", f);
    fclose(f);
    assert_int_equal(tern_commit_file(tmp, fifo), -1);
    struct stat sb;
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));                 // still the FIFO
    assert_int_equal(access(tmp, F_OK), -1);           // and no temporary file left
}

// A GGUF of 50,000 keys (and one of 50,000 tensors) opens in linear time; a duplicate key or
// tensor name at the very end is still found. (The old pairwise scan took seconds here and
// hours on a few MB.)
static void put(FILE *f, const void *p, size_t n) { assert_int_equal(fwrite(p, 1, n, f), n); }
static void write_many(const char *path, int nk, int nt, int dup_key, int dup_tensor) {
    FILE *f = fopen(path, "wb");
    uint32_t ver = 3;
    int64_t ntens = nt, nkv = nk;
    put(f, "GGUF", 4);
    put(f, &ver, 4);
    put(f, &ntens, 8);
    put(f, &nkv, 8);
    char key[32];
    for (int i = 0; i < nk; i++) {
        uint64_t len = (uint64_t)snprintf(key, sizeof key, "k.%07d", dup_key && i == nk - 1 ? 3 : i);
        uint32_t type = TERN_GGUF_UINT8;
        uint8_t v = 1;
        put(f, &len, 8);
        put(f, key, len);
        put(f, &type, 4);
        put(f, &v, 1);
    }
    for (int i = 0; i < nt; i++) {
        uint64_t len = (uint64_t)snprintf(key, sizeof key, "t.%07d", dup_tensor && i == nt - 1 ? 5 : i), off = (uint64_t)i * 32;
        uint32_t nd = 1;
        int64_t ne = 8;
        int32_t type = TERN_GGML_F32;
        put(f, &len, 8);
        put(f, key, len);
        put(f, &nd, 4);
        put(f, &ne, 8);
        put(f, &type, 4);
        put(f, &off, 8);
    }
    long pos = ftell(f);
    static const char zero[64] = {0};
    put(f, zero, (size_t)((32 - pos % 32) % 32));
    for (int i = 0; i < nt; i++) put(f, zero, 32);
    fclose(f);
}

static void test_gguf_many_names(void **st) {
    (void)st;
    char path[300];
    snprintf(path, sizeof path, "%s/many.gguf", dir);
    write_many(path, 50000, 50000, 0, 0);
    double t0 = tern_time();
    tern_gguf *g = tern_gguf_open(path);
    if (!g) fail_msg("%s", tern_last_error());
    printf("  50000 keys + 50000 tensors opened in %.0f ms\n", (tern_time() - t0) * 1e3);
    assert_int_equal(tern_gguf_n_kv(g), 50000);
    assert_int_equal(tern_gguf_n_tensors(g), 50000);
    tern_gguf_close(g);
    write_many(path, 50000, 10, 1, 0);
    assert_null(tern_gguf_open(path));
    assert_non_null(strstr(tern_last_error(), "duplicate key k.0000003"));
    write_many(path, 10, 50000, 0, 1);
    assert_null(tern_gguf_open(path));
    assert_non_null(strstr(tern_last_error(), "duplicate tensor name t.0000005"));
    write_many(path, 3, 3, 0, 0);   // a tensor may share a key's name: different namespaces
    assert_non_null(g = tern_gguf_open(path));
    tern_gguf_close(g);
}

// Errors are one line even when a file's names contain control characters (found by fuzzing a
// GGUF whose key held a '\n').
static void test_error_one_line(void **st) {
    (void)st;
    tern_error("%s: key %s: bad", "f.gguf", "a\nb\rc\x1b[31md");
    assert_string_equal(tern_last_error(), "f.gguf: key a?b?c?[31md: bad");
}

// A tokenizer file without the "▁" piece is refused: spaces would encode as the three bytes of
// "▁" and decode back as that character (found by fuzzing: decode(encode(x)) != x).
static void test_tokenizer_needs_space_piece(void **st) {
    (void)st;
    const char *text = "the cat sat on the mat, the cat sat on the hat";
    size_t n = strlen(text);
    tern_tokenizer t;
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = 280;
    assert_int_equal(tern_tokenizer_train(&t, (const char *const[]){text}, &n, 1, &o), 0);
    void *buf;
    size_t bn;
    assert_int_equal(tern_tokenizer_to_bytes(&t, &buf, &bn), 0);
    tern_tokenizer_free(&t);
    assert_int_equal(tern_tokenizer_from_bytes(&t, buf, bn, "ok"), 0);
    tern_tokenizer_free(&t);
    unsigned char *p = memmem(buf, bn, "\xe2\x96\x81", 3);   // the first piece holding it is "▁" itself (id 259)
    assert_non_null(p);
    assert_int_equal(p[-2], 3);   // its uint16 length is 3: the piece is exactly "▁"
    p[2] = 0x82;                  // "▂"
    assert_int_equal(tern_tokenizer_from_bytes(&t, buf, bn, "mutated"), -1);
    assert_non_null(strstr(tern_last_error(), "mutated: has no"));
    free(buf);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tern_test_util_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16),            cmocka_unit_test(test_parse),
        cmocka_unit_test(test_median),          cmocka_unit_test(test_files),
        cmocka_unit_test(test_rng),             cmocka_unit_test(test_hash64_vectors),
        cmocka_unit_test(test_strset),          cmocka_unit_test(test_params_index),
        cmocka_unit_test(test_inputs_outputs),  cmocka_unit_test(test_gguf_many_names),
        cmocka_unit_test(test_error_one_line),  cmocka_unit_test(test_tokenizer_needs_space_piece),
    };
    int rc = cmocka_run_group_tests_name("util", tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && rc == 0) rc = 1;
    return rc;
}
