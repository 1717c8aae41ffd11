// test_util.c — util.c against independent references: fp32 <-> fp16 conversion (a rounding
// written here in double arithmetic, and the CPU's F16C instructions when present) over every fp16
// value, every tie between two of them and random floats; the option parsers, the median, file
// helpers (read, atomic commit) and the RNG's ranges.
#include "testutil.h"
#include "util.h"
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    char dir[] = "/tmp/tern-test-util-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], tmp[256];
    snprintf(path, sizeof path, "%s/a.bin", dir);
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
    assert_int_equal(rmdir(dir), 0);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16), cmocka_unit_test(test_parse), cmocka_unit_test(test_median),
        cmocka_unit_test(test_files), cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
