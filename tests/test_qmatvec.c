// test_qmatvec.c — the logits kernels (kernels/qmatvec.h): every level (plain, AVX2, AVX-VNNI,
// AVX-512 where the CPU has them; one token and several per call) gives bit-identical results for
// every weight type; results equal a double-precision product of the dequantized weights
// (ggml_types) and the dequantized activations; the activation quantizers keep their error bounds;
// extreme values do not overflow.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "formats/ggml_types.h"
#include "kernels/qmatvec.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, long n, uint64_t seed, float scale) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = scale * tern_rng_normal(&r) * (1.0f + (float)(i % 7));
}

// activations as the kernels see them: q * d per block (or x itself for float types)
static void act_values(const tern_qvec *v, double *out) {
    for (int i = 0; i < v->n; i++) {
        if (!v->q) out[i] = v->x[i];
        else out[i] = (double)v->q[i] * v->d[v->type == TERN_GGML_Q8_0 ? i / 32 : i / 256];
    }
}

static void check_type(int type, int rows, int cols, int N) {
    const size_t rb = tern_ggml_row_bytes(type, cols);
    assert_true(rb > 0);
    float *wf = malloc(sizeof(float) * (size_t)rows * cols), *x = malloc(sizeof(float) * (size_t)N * cols);
    uint8_t *W = malloc(rb * rows);
    fill(wf, (long)rows * cols, 11 + type, 0.05f);
    wf[3] = 40.0f;   // an outlier
    fill(x, (long)N * cols, 99 + type, 1.0f);
    x[5] = -30.0f;
    assert_int_equal(tern_ggml_quantize(type, wf, (int64_t)rows * cols, W), 0);
    float *deq = malloc(sizeof(float) * (size_t)rows * cols);
    assert_int_equal(tern_ggml_dequant(type, W, (int64_t)rows * cols, deq), 0);
    tern_qvec *v = malloc(sizeof(tern_qvec) * N);
    uint8_t *scratch = malloc(tern_qvec_bytes(cols) * N);
    for (int t = 0; t < N; t++) tern_qvec_prepare(&v[t], type, x + (size_t)t * cols, cols, scratch + tern_qvec_bytes(cols) * t);
    // (a vector prepared for Q8_0 serves its repacked layout too)
    // reference: double products of what the kernels multiply
    double *xv = malloc(sizeof(double) * cols);
    double *ref = malloc(sizeof(double) * (size_t)N * rows), *mag = malloc(sizeof(double) * (size_t)N * rows);
    for (int t = 0; t < N; t++) {
        act_values(&v[t], xv);
        for (int r = 0; r < rows; r++) {
            double s = 0, m = 0;
            for (int i = 0; i < cols; i++) {
                s += (double)deq[(size_t)r * cols + i] * xv[i];
                m += fabs((double)deq[(size_t)r * cols + i] * xv[i]);
            }
            ref[(size_t)t * rows + r] = s;
            mag[(size_t)t * rows + r] = m;
        }
    }
    // avxvnni runs the AVX2 products; every kind the CPU has must give the plain code's bits
    float *out[4] = {NULL, NULL, NULL, NULL};
    tern_kernel_kind kinds[4] = {TERN_KERNEL_PLAIN, TERN_KERNEL_AVX2, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX512VNNI};
    for (int k = 0; k < 4; k++) {
        if (!tern_kernel_available(kinds[k])) continue;
        out[k] = malloc(sizeof(float) * (size_t)N * (rows + 3));
        for (size_t i = 0; i < (size_t)N * (rows + 3); i++) out[k][i] = NAN;
        // two calls over split row ranges, output stride rows + 3
        tern_qmat_mul(type, W, rb, 0, 5, v, N, out[k], (size_t)rows + 3, kinds[k]);
        tern_qmat_mul(type, W, rb, 5, rows, v, N, out[k], (size_t)rows + 3, kinds[k]);
        for (int t = 0; t < N; t++)
            for (int r = 0; r < rows; r++) {
                double e = fabs(out[k][(size_t)t * (rows + 3) + r] - ref[(size_t)t * rows + r]);
                if (e > 1e-5 * mag[(size_t)t * rows + r] + 1e-30) {
                    fprintf(stderr, "%s kind %s row %d tok %d: %g vs %g\n", tern_ggml_type_name(type), tern_kernel_name(kinds[k]), r, t,
                            out[k][(size_t)t * (rows + 3) + r], ref[(size_t)t * rows + r]);
                    fail();
                }
            }
        for (int t = 0; t < N; t++) assert_true(isnan(out[k][(size_t)t * (rows + 3) + rows]));   // stride gap untouched
        if (k > 0) assert_memory_equal(out[k], out[0], sizeof(float) * (size_t)N * (rows + 3) - 3 * sizeof(float));
        // the repacked layout (TERN_QMAT_Q8_0X for Q8_0) gives the same bits, and the same rows
        const int lt = tern_qmat_layout(type);
        const size_t rbytes = tern_qmat_bytes(lt, rows, rb);
        assert_true(rbytes == (type == TERN_GGML_Q8_0 ? (size_t)(rows + 15) / 16 * 16 * rb : rb * rows));
        uint8_t *R = malloc(rbytes);
        memset(R, 0x5a, rbytes);   // the padding rows must come out zero
        const int cut = rows < 7 ? rows : 7;   // two ranges, the second one first
        tern_qmat_repack(type, W, rb, cols, rows, cut, rows, R);
        tern_qmat_repack(type, W, rb, cols, rows, 0, cut, R);
        if (type == TERN_GGML_Q8_0) {
            assert_int_equal(lt, TERN_QMAT_Q8_0X);
            // the layout of qmatvec.h, byte by byte from the ggml rows
            for (int r = 0; r < (rows + 15) / 16 * 16; r++)
                for (int b = 0; b < cols / 32; b++) {
                    const uint8_t *B = R + (size_t)(r / 16) * 16 * rb + (size_t)b * 544, *src = W + (size_t)r * rb + 34 * (size_t)b;
                    for (int e = 0; e < 32; e++) {
                        const uint8_t want = r < rows ? (uint8_t)(src[2 + e] ^ 0x80) : 0;
                        if (B[64 * (e / 4) + 4 * (r % 16) + e % 4] != want) fail_msg("Q8_0X row %d block %d element %d", r, b, e);
                    }
                    assert_memory_equal(B + 512 + 2 * (r % 16), r < rows ? src : (const uint8_t *)"\0\0", 2);
                }
        } else assert_memory_equal(R, W, rb * rows);
        float *o2 = malloc(sizeof(float) * (size_t)N * rows);
        tern_qmat_mul(lt, R, rb, 0, rows, v, N, o2, (size_t)rows, kinds[k]);
        for (int t = 0; t < N; t++) assert_memory_equal(o2 + (size_t)t * rows, out[k] + (size_t)t * (rows + 3), sizeof(float) * rows);
        // ranges that start and end inside a 16-row group: the same values, nothing else written
        if (rows > 20) {
            for (size_t i = 0; i < (size_t)N * rows; i++) o2[i] = NAN;
            tern_qmat_mul(lt, R, rb, 3, 19, v, N, o2, (size_t)rows, kinds[k]);
            for (int t = 0; t < N; t++)
                for (int r = 0; r < rows; r++) {
                    const float g = o2[(size_t)t * rows + r];
                    if (r >= 3 && r < 19) assert_memory_equal(&g, out[k] + (size_t)t * (rows + 3) + r, sizeof g);
                    else assert_true(isnan(g));
                }
        }
        float *row = malloc(sizeof(float) * cols);
        for (int r = 0; r < rows; r += 5) {
            tern_qmat_row_f32(lt, R, rb, r, cols, row);
            assert_memory_equal(row, deq + (size_t)r * cols, sizeof(float) * cols);
        }
        free(row);
        free(o2);
        free(R);
    }
    for (int k = 0; k < 4; k++) free(out[k]);
    free(wf); free(x); free(W); free(deq); free(v); free(scratch); free(xv); free(ref); free(mag);
}

static void test_levels_identical(void **st) {
    (void)st;
    check_type(TERN_GGML_Q8_0, 37, 544, 3);   // 17 blocks; 37 rows: 16-row groups + 5 (padding)
    check_type(TERN_GGML_Q8_0, 9, 2560, 1);
    check_type(TERN_GGML_Q8_0, 6, 1568, 2);   // 49 blocks, one short group
    check_type(TERN_GGML_Q8_0, 33, 1056, 11); // 11 tokens: AVX-512's 8, then 3; AVX2's pairs, then 1
    check_type(TERN_GGML_Q8_0, 48, 64, 9);
    check_type(TERN_GGML_Q8_0, 100, 96, 1);   // one token: AVX-512's 4 groups at once, AVX2's 2, then the rest
    check_type(TERN_GGML_F16, 7, 300, 4);
    check_type(TERN_GGML_BF16, 5, 528, 7);
    check_type(TERN_GGML_Q6_K, 23, 512, 2);
    check_type(TERN_GGML_Q5_K, 23, 768, 2);
    check_type(TERN_GGML_Q4_K, 23, 512, 3);
    check_type(TERN_GGML_F16, 13, 100, 2);    // float tail of 4
    check_type(TERN_GGML_BF16, 13, 272, 2);
    check_type(TERN_GGML_F32, 13, 64, 1);
}

// activation quantizers: |x - q*d| <= d/2 (+ rounding), |q| <= 127, block sums right
static void test_activation_quant(void **st) {
    (void)st;
    const int n = 512;
    float x[512];
    fill(x, n, 3, 0.3f);
    x[17] = 90.0f;
    memset(x + 256, 0, sizeof(float) * 32);   // an all-zero Q8_0 block
    uint8_t *scratch = malloc(tern_qvec_bytes(n));
    tern_qvec v;
    int types[2] = {TERN_GGML_Q8_0, TERN_GGML_Q6_K};
    for (int k = 0; k < 2; k++) {
        tern_qvec_prepare(&v, types[k], x, n, scratch);
        const int bs = types[k] == TERN_GGML_Q8_0 ? 32 : 256;
        for (int i = 0; i < n; i++) {
            const float d = v.d[i / bs];
            assert_true(v.q[i] >= -127 && v.q[i] <= 127);
            assert_true(fabsf(x[i] - (float)v.q[i] * d) <= 0.5001f * fabsf(d) + 1e-12f);
        }
        if (types[k] == TERN_GGML_Q8_0) {
            assert_true(v.d[8] == 0.0f);
            assert_true(v.d[0] == 90.0f / 127.0f);
            for (int b = 0; b < n / 32; b++) {   // the block sums the Q8_0 kernels correct with
                int sum = 0;
                for (int i = 0; i < 32; i++) sum += v.q[32 * b + i];
                assert_int_equal(v.bsum[b], sum);
            }
        } else {
            assert_true(v.q[17] == -127);   // the largest |x| maps to -127 (ggml's Q8_K)
            for (int j = 0; j < n / 16; j++) {
                int s = 0;
                for (int i = 0; i < 16; i++) s += v.q[16 * j + i];
                assert_int_equal(v.bsum[j], s);
            }
        }
    }
    free(scratch);
}

// extreme blocks: Q8_0 weights all -128 (biased: 0) against activations all at +-127: no int16
// saturation, no int32 overflow, in both layouts
static void test_extremes(void **st) {
    (void)st;
    const int cols = 64;
    uint8_t W[2 * 34];
    for (int b = 0; b < 2; b++) {
        uint16_t one = tern_fp32_to_fp16(1.0f);
        memcpy(W + 34 * b, &one, 2);
        memset(W + 34 * b + 2, 0x80, 32);   // -128
    }
    float x[64];
    for (int i = 0; i < cols; i++) x[i] = i % 2 ? -1.0f : 1.0f;
    x[0] = x[32] = -1.0f;   // so the pair sums are -128*-127*2 = 32512 at the extremes
    uint8_t scratch[4096];
    tern_qvec v;
    tern_qvec_prepare(&v, TERN_GGML_Q8_0, x, cols, scratch);
    double want = 0;
    for (int i = 0; i < cols; i++) want += -128.0 * v.q[i] * v.d[i / 32];
    tern_kernel_kind kinds[4] = {TERN_KERNEL_PLAIN, TERN_KERNEL_AVX2, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX512VNNI};
    uint8_t R[16 * 68];   // the repacked layout: one row and 15 padding rows
    tern_qmat_repack(TERN_GGML_Q8_0, W, 68, cols, 1, 0, 1, R);
    for (int k = 0; k < 4; k++) {
        if (!tern_kernel_available(kinds[k])) continue;
        float o, o2;
        tern_qmat_mul(TERN_GGML_Q8_0, W, 68, 0, 1, &v, 1, &o, 1, kinds[k]);
        tern_qmat_mul(TERN_QMAT_Q8_0X, R, 68, 0, 1, &v, 1, &o2, 1, kinds[k]);
        assert_true(fabs(o - want) < 1e-4);
        assert_memory_equal(&o, &o2, sizeof o);
    }
    assert_int_equal(tern_qmat_supported(TERN_GGML_Q8_0), 1);
    assert_int_equal(tern_qmat_supported(TERN_GGML_TQ2_0), 0);
    assert_int_equal(tern_qmat_supported(TERN_GGML_Q4_0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_identical),
        cmocka_unit_test(test_activation_quant),
        cmocka_unit_test(test_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
