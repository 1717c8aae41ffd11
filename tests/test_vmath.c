// test_vmath.c — the vectorized exp (vmath.h) on every level this CPU has (plain C, AVX2, AVX-512;
// NEON on AArch64): ulp error against exp in double over a dense sweep and random points, the
// special values, the row sum and its tails, the sigmoid; and every level bit-identical to plain C
// (elements, row sums of every length, sigmoid).
#include "testutil.h"
#include "kernels/vmath.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double ulp_err(float got, double want) {
    float w = (float)want;
    float next = nextafterf(w, INFINITY);
    double ulp = (double)next - (double)w;
    return fabs((double)got - want) / ulp;
}

static void check_level(int lv) {
    enum { N = 1 << 16 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint64_t s = 12345;
    double worst = 0;
    float worst_x = 0;
    for (int pass = 0; pass < 32; pass++) {
        for (int i = 0; i < N; i++) {
            if (pass == 0) x[i] = -87.33f + 176.0f * (float)i / N;   // dense sweep of the finite range
            else {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                x[i] = -87.3f + 176.0f * (float)((s >> 40) & 0xffffff) / 16777216.0f;
            }
        }
        tern_vexp_shift(x, 0.0f, y, N);
        for (int i = 0; i < N; i++) {
            double want = exp((double)x[i]);
            if (want < FLT_MIN || want > FLT_MAX) continue;
            double e = ulp_err(y[i], want);
            if (e > worst) { worst = e; worst_x = x[i]; }
        }
    }
    if (worst > 2.0) fail_msg("level %d: exp error %.2f ulp at x = %.9g", lv, worst, (double)worst_x);
    // special values
    float sp[8] = {0.0f, -INFINITY, INFINITY, NAN, -100.0f, 100.0f, 88.72f, -87.33f}, o[8];
    tern_vexp_shift(sp, 0.0f, o, 8);
    assert_true(o[0] == 1.0f);
    assert_true(o[1] == 0.0f && o[4] == 0.0f);   // results below FLT_MIN flush to 0
    assert_true(isinf(o[2]) && o[2] > 0 && isinf(o[5]));
    assert_true(isnan(o[3]));
    assert_true(isfinite(o[6]) && o[6] > 3e38f);
    assert_true(o[7] > 1.1e-38f && o[7] < 1.3e-38f);
    // row sums over every tail length, with and without output; shift by c
    for (int n = 1; n <= 40; n++) {
        double want = 0;
        for (int i = 0; i < n; i++) want += exp((double)x[i] * 0.1 - 0.5);
        float xs[40];
        for (int i = 0; i < n; i++) xs[i] = x[i] * 0.1f;
        float a = tern_vexp_shift(xs, 0.5f, NULL, n), b = tern_vexp_shift(xs, 0.5f, y, n);
        assert_true(a == b);
        if (fabs(a - want) > 1e-6 * want) fail_msg("level %d: sum of %d: %g vs %g", lv, n, (double)a, want);
        for (int i = 0; i < n; i++) assert_true(ulp_err(y[i], exp((double)xs[i] - 0.5)) <= 2.5);
    }
    // the shift is what keeps softmax finite: logits near 100 shifted by their max (exp(100) overflows)
    float big[5] = {100.0f, 101.0f, 90.0f, -50.0f, 101.0f}, ob[5];
    float sb = tern_vexp_shift(big, 101.0f, ob, 5);
    for (int i = 0; i < 5; i++) assert_true(ulp_err(ob[i], exp((double)big[i] - 101.0)) <= 2.5);
    assert_true(fabs(sb - (2.0 + exp(-1.0) + exp(-11.0) + exp(-151.0))) < 1e-6);
    // sigmoid, in place too
    for (int i = 0; i < 1000; i++) x[i] = -30.0f + 0.06f * (float)i;
    memcpy(y, x, sizeof(float) * 1000);
    tern_vsigmoid(y, y, 1000);
    for (int i = 0; i < 1000; i++) {
        double want = 1.0 / (1.0 + exp(-(double)x[i]));
        if (fabs(y[i] - want) > 4e-7 * want) fail_msg("level %d: sigmoid(%g) = %g, want %g", lv, (double)x[i], (double)y[i], want);
    }
    free(x);
    free(y);
}

// every level against plain C, bit for bit: elements over the whole range (special values
// included), row sums of every length 1..100 and the sigmoid
static void test_levels_identical(void **st) {
    (void)st;
    enum { N = 4099 };
    float *x = malloc(sizeof(float) * N), *ref = malloc(sizeof(float) * N), *got = malloc(sizeof(float) * N);
    uint64_t s = 777;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = -100.0f + 200.0f * (float)((s >> 40) & 0xffffff) / 16777216.0f;
    }
    const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.72283935546875f, 88.7228394f, -87.33654022216797f, -87.3365479f,
                        -103.0f, 1e-30f, -1e-30f, 0.5f, -0.5f};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) x[100 + 7 * i] = sp[i];
    assert_int_equal(tern_vmath_force(0), 0);
    const float ref_sum = tern_vexp_shift(x, 1.5f, ref, N);
    float ref_sums[101], ref_sig[N];
    for (int n = 1; n <= 100; n++) ref_sums[n] = tern_vexp_shift(x + 3000, 20.0f, NULL, n);
    tern_vsigmoid(x, ref_sig, N);
    int levels = 0;
    for (int lv = 1; lv <= 2; lv++) {
        if (tern_vmath_force(lv) != 0) continue;
        levels++;
        const float sum = tern_vexp_shift(x, 1.5f, got, N);
        for (int i = 0; i < N; i++)
            if (memcmp(&got[i], &ref[i], 4) != 0) fail_msg("level %d: exp(%.9g) = %.9g, plain %.9g", lv, (double)(x[i] - 1.5f), (double)got[i], (double)ref[i]);
        if (memcmp(&sum, &ref_sum, 4) != 0) fail_msg("level %d: sum %.9g, plain %.9g", lv, (double)sum, (double)ref_sum);
        for (int n = 1; n <= 100; n++) {
            const float a = tern_vexp_shift(x + 3000, 20.0f, NULL, n);
            if (memcmp(&a, &ref_sums[n], 4) != 0) fail_msg("level %d: sum of %d: %.9g, plain %.9g", lv, n, (double)a, (double)ref_sums[n]);
        }
        tern_vsigmoid(x, got, N);
        for (int i = 0; i < N; i++)
            if (memcmp(&got[i], &ref_sig[i], 4) != 0) fail_msg("level %d: sigmoid(%.9g) = %.9g, plain %.9g", lv, (double)x[i], (double)got[i], (double)ref_sig[i]);
    }
    print_message("vmath: %d vector level(s) bit-identical to plain C\n", levels);
    assert_int_equal(tern_vmath_force(-1), 0);
    free(x); free(ref); free(got);
}

// tern_vexp_shift_blocks64: at every level, the values and each 64-block's sum equal
// tern_vexp_shift on that block alone at the plain level (full and partial last blocks, NaN,
// infinities)
static void test_blocks64(void **st) {
    (void)st;
    enum { N = 64 * 9 + 23 };
    float x[N], ref[N], got[N], rsum[10], gsum[10];
    for (int i = 0; i < N; i++) x[i] = (float)((i * 7919) % 1000) / 37.0f - 13.0f;
    x[70] = NAN; x[200] = INFINITY; x[201] = -INFINITY; x[590] = 40.0f;
    for (int lv = 0; lv <= 2; lv++) {
        if (tern_vmath_force(lv) != 0) continue;
        for (int n = 1; n <= N; n += n < 130 ? 1 : 37) {
            assert_int_equal(tern_vmath_force(0), 0);
            for (int b = 0; 64 * b < n; b++) rsum[b] = tern_vexp_shift(x + 64 * b, 2.5f, ref + 64 * b, n - 64 * b < 64 ? n - 64 * b : 64);
            assert_int_equal(tern_vmath_force(lv), 0);
            memcpy(got, x, sizeof x);
            tern_vexp_shift_blocks64(got, 2.5f, got, n, gsum);   // in place, as the runtime calls it
            if (memcmp(got, ref, sizeof(float) * (size_t)n)) fail_msg("level %d, n %d: values differ", lv, n);
            if (memcmp(gsum, rsum, sizeof(float) * (size_t)((n + 63) / 64))) fail_msg("level %d, n %d: block sums differ", lv, n);
        }
    }
    assert_int_equal(tern_vmath_force(-1), 0);
}

static void test_levels(void **st) {
    (void)st;
    int ran = 0;
    for (int lv = 0; lv <= 2; lv++) {
        if (tern_vmath_force(lv) != 0) continue;
        check_level(lv);
        ran++;
    }
    assert_true(ran >= 1);
    assert_int_equal(tern_vmath_force(-1), 0);
    assert_int_equal(tern_vmath_force(3), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_levels), cmocka_unit_test(test_levels_identical), cmocka_unit_test(test_blocks64)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
