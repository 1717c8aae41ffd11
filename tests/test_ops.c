// test_ops.c — forward values of fused ops against plain reference code, the BitNet quantizers
// on hand-computed cases (ties, zeros, clipping, eps), their straight-through gradients, the
// integer-exact BitLinear, and clear errors for shape mismatches and exhausted capacity.
#include "testutil.h"
#include "model/quant.h"
#include "model/rope.h"
#include "kernels/kernels.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tern_tensor *leaf(tern_graph *g, const char *name, int r, int c, uint64_t seed) {
    tern_tensor *t = tern_new_2d(g, name, r, c);
    tu_fill_normal(t->data, t->n, seed, 1.0f);
    return t;
}

// |got - want| <= atol + rtol |want|, and the worst |got - want| / (atol + rtol |want|) seen so far
// in g_worst (printed by the tests: their tolerances are ~10x the measured error of correct code)
static double g_worst;
#define CLOSE(got, want, atol, rtol) do { double g_ = (double)(got), w_ = (double)(want), r_ = fabs(g_ - w_) / ((atol) + (rtol) * fabs(w_)); \
    g_worst = r_ > g_worst ? r_ : g_worst; if (!(r_ <= 1.0)) fail_msg("%s = %.9g, expected %.9g (atol %g, rtol %g)", #got, g_, w_, (double)(atol), (double)(rtol)); } while (0)

static void test_matmul_forward(void **st) {
    (void)st;
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    int M = 17, K = 33, N = 5;
    tern_tensor *a = leaf(&g, "a", M, K, 1), *b = leaf(&g, "b", N, K, 2);
    tern_tensor *c = tern_matmul(&g, a, b, 0, 1);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)a->data[i * K + k] * b->data[j * K + k];
            CLOSE(c->data[i * N + j], s, 3e-5, 0);   // measured 3.2e-6
        }
    printf("matmul vs double loops: worst err/tol %.3f\n", g_worst);
    tern_graph_free(&g);
}

// naive softmax(Q K^T / sqrt(D) + causal mask) V in double
static void test_attention_forward(void **st) {
    (void)st;
    // B T H Hkv; T = 150 spans three query blocks of ops_attention.c (QB = 64), the last partial
    int cases[][4] = {{2, 9, 4, 2}, {1, 16, 3, 1}, {3, 5, 2, 2}, {1, 150, 2, 1}};
    for (int cs = 0; cs < 4; cs++) {
        int B = cases[cs][0], T = cases[cs][1], Hq = cases[cs][2], Hkv = cases[cs][3], D = 7;
        tern_graph g;
        tern_graph_init(&g, 16, 0, 0);
        tern_tensor *q = leaf(&g, "q", B * T, Hq * D, 3), *k = leaf(&g, "k", B * T, Hkv * D, 4), *v = leaf(&g, "v", B * T, Hkv * D, 5);
        tern_tensor *o = tern_attention(&g, q, k, v, B, T, Hq, Hkv);
        double worst = 0;
        g_worst = 0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < Hq; h++) {
                int kh = h / (Hq / Hkv);
                for (int i = 0; i < T; i++) {
                    double s[160], m = -1e300, z = 0;
                    for (int j = 0; j <= i; j++) {
                        double d = 0;
                        for (int e = 0; e < D; e++)
                            d += (double)q->data[(b * T + i) * Hq * D + h * D + e] * k->data[(b * T + j) * Hkv * D + kh * D + e];
                        s[j] = d / sqrt((double)D);
                        m = s[j] > m ? s[j] : m;
                    }
                    for (int j = 0; j <= i; j++) z += exp(s[j] - m);
                    for (int e = 0; e < D; e++) {
                        double acc = 0;
                        for (int j = 0; j <= i; j++) acc += exp(s[j] - m) / z * v->data[(b * T + j) * Hkv * D + kh * D + e];
                        double err = fabs(acc - o->data[(b * T + i) * Hq * D + h * D + e]);
                        worst = err > worst ? err : worst;
                    }
                }
            }
        printf("attention B%d T%d H%d/%d: worst |fused - naive| = %.2e\n", B, T, Hq, Hkv, worst);
        assert_true(worst < 5e-6);   // measured <= 4.6e-7
        tern_graph_free(&g);
    }
}

static void test_cross_entropy_forward(void **st) {
    (void)st;
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    int N = 7, V = 301;
    tern_tensor *x = leaf(&g, "logits", N, V, 6);
    for (int j = 0; j < V; j++) x->data[j] *= 30.0f; // row 0 with large logits (overflow without max-shift)
    int tg[7] = {0, 300, 5, TERN_IGNORE_INDEX, 17, 17, 150};
    tern_tensor *l = tern_cross_entropy(&g, x, tg, TERN_IGNORE_INDEX);
    double tot = 0;
    int cnt = 0;
    for (int i = 0; i < N; i++) {
        if (tg[i] == TERN_IGNORE_INDEX) continue;
        double m = -1e300, z = 0;
        for (int j = 0; j < V; j++) m = x->data[i * V + j] > m ? x->data[i * V + j] : m;
        for (int j = 0; j < V; j++) z += exp(x->data[i * V + j] - m);
        tot += m + log(z) - x->data[i * V + tg[i]];
        cnt++;
    }
    assert_true(isfinite(l->data[0]));
    g_worst = 0;
    CLOSE(l->data[0], tot / cnt, 0, 3e-7);   // measured 2.8e-8 relative
    printf("cross-entropy vs double: err/tol %.2e\n", g_worst);
    // all rows ignored: loss 0, no NaN
    int none[2] = {TERN_IGNORE_INDEX, TERN_IGNORE_INDEX};
    tern_tensor *x2 = leaf(&g, "l2", 2, 3, 7);
    assert_true(tern_cross_entropy(&g, x2, none, TERN_IGNORE_INDEX)->data[0] == 0.0f);
    tern_graph_free(&g);
}

// ---- quantizers on hand-computed cases --------------------------------------------------------
static void test_weight_quant_cases(void **st) {
    (void)st;
    // mean|W| = 6/6 = 1: W/s = W. Ties .5 round half to even: 0.5 -> 0, -0.5 -> 0, 1.5 -> 2 -> clip 1
    float w[6] = {0.5f, -0.5f, 1.5f, -1.5f, 1.0f, 1.0f}, q[6];
    float s = tern_weight_scale(w, 6);
    assert_true(s == 1.0f);
    tern_weight_quantize(w, 6, s, q);
    float want[6] = {0, 0, 1, -1, 1, 1};
    assert_memory_equal(q, want, sizeof want);
    // 2.5 / s with s = 1: 2 (even) then clip 1; -2.5 -> -2 -> -1; clipping of large values
    float w2[4] = {2.5f, -2.5f, 0.0f, -1.0f}, q2[4]; // mean = 1.5
    s = tern_weight_scale(w2, 4);
    assert_true(s == 1.5f);
    tern_weight_quantize(w2, 4, s, q2); // 1.667->1 (clip of 2), -1.667->-1, 0, -0.667->-1
    float want2[4] = {1, -1, 0, -1};
    assert_memory_equal(q2, want2, sizeof want2);
    // W/s exactly 0.5 with s = 2: half to even gives 0 (roundf would give 1)
    float w3[4] = {1.0f, 3.0f, 2.0f, 2.0f}, q3[4]; // mean 2: 0.5 -> 0, 1.5 -> 2 -> 1, 1, 1
    s = tern_weight_scale(w3, 4);
    tern_weight_quantize(w3, 4, s, q3);
    float want3[4] = {0, 1, 1, 1};
    assert_memory_equal(q3, want3, sizeof want3);
    // all-zero matrix: eps scale, all zeros, no NaN
    float z[5] = {0}, qz[5];
    s = tern_weight_scale(z, 5);
    assert_true(s == TERN_QUANT_EPS);
    tern_weight_quantize(z, 5, s, qz);
    for (int i = 0; i < 5; i++) assert_true(qz[i] == 0.0f && !signbit(qz[i] + 0.0f));
    // eps path with values: mean 4e-6 < eps -> s = 1e-5; 1.5e-5 / 1e-5 = 1.5 -> 2 -> clip 1; 5e-6 -> 0.5 -> 0
    float e[4] = {1.5e-5f, -5e-6f, 0.0f, -0.0f}, qe[4];
    s = tern_weight_scale(e, 4);
    assert_true(s == TERN_QUANT_EPS);
    tern_weight_quantize(e, 4, s, qe);
    assert_true(qe[0] == 1.0f && qe[1] == 0.0f && qe[2] == 0.0f && qe[3] == 0.0f);
    int8_t qi[6];
    tern_weight_quantize_i8(w, 6, 1.0f, qi);
    int8_t wanti[6] = {0, 0, 1, -1, 1, 1};
    assert_memory_equal(qi, wanti, 6);
}

static void test_act_quant_cases(void **st) {
    (void)st;
    // absmax 127 -> s = 1: 63.5 -> 64 (even), -64.5 -> -64 (even), 0.5 -> 0, -0.5 -> 0, extremes stay +-127
    float x[6] = {127.0f, 63.5f, -64.5f, 0.5f, -0.5f, -127.0f}, q[6];
    float s = tern_act_quantize_row(x, 6, q);
    assert_true(s == 1.0f);
    float want[6] = {127, 64, -64, 0, 0, -127};
    assert_memory_equal(q, want, sizeof want);
    // the scale maps the row's absmax exactly onto 127: never outside [-128, 127]
    float y[5] = {-3.3f, 1e-3f, 2.9f, -1.1f, 3.3f}, qy[5];
    s = tern_act_quantize_row(y, 5, qy);
    assert_true(qy[0] == -127.0f && qy[4] == 127.0f);
    for (int i = 0; i < 5; i++) assert_true(qy[i] >= -128.0f && qy[i] <= 127.0f && qy[i] == rintf(qy[i]));
    // all-zero row: eps scale 127/1e-5, zeros, finite
    float z[4] = {0}, qz[4];
    s = tern_act_quantize_row(z, 4, qz);
    assert_true(isfinite(s) && s == 127.0f / TERN_QUANT_EPS);
    for (int i = 0; i < 4; i++) assert_true(qz[i] == 0.0f);
    // eps path: absmax 5e-6 < eps: s = 1.27e7; 5e-6 * s = 63.5 -> 64 (even); -2e-6 * s = -25.4 -> -25
    float e[2] = {5e-6f, -2e-6f}, qe[2];
    s = tern_act_quantize_row(e, 2, qe);
    assert_true(s == 127.0f / TERN_QUANT_EPS);
    assert_true(qe[0] == rintf(5e-6f * s) && qe[1] == -25.0f);
    int8_t qi[6];
    tern_act_quantize_row_i8(x, 6, qi);
    int8_t wanti[6] = {127, 64, -64, 0, 0, -127};
    assert_memory_equal(qi, wanti, 6);
    // a NaN among the values (a damaged model file; found by fuzz_gguf_model) quantizes to 0 and
    // leaves the others as they were: the scale ignores it, the conversion is defined
    float xn[4] = {1.0f, NAN, -0.5f, 0.25f}, qn[4];
    int8_t qni[4];
    s = tern_act_quantize_row(xn, 4, qn);
    assert_true(s == 127.0f);
    assert_true(qn[0] == 127.0f && qn[1] == 0.0f && qn[2] == -64.0f && qn[3] == 32.0f);
    assert_true(tern_act_quantize_row_i8(xn, 4, qni) == 127.0f);
    int8_t wantn[4] = {127, 0, -64, 32};
    assert_memory_equal(qni, wantn, 4);
}

// ---- the quantizers against naive references (no code shared with quant.c) ---------------------
// activations: rows of every length 1..100, the absmax at every position (both signs): a scale
// that misses one position (a vector tail, the first or last element) cannot pass
static void naive_act(const float *x, int n, float *s_out, float *q) {
    float m = 0.0f;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > m) m = fabsf(x[i]);
    float s = 127.0f / (m > 1e-5f ? m : 1e-5f);
    for (int i = 0; i < n; i++) {
        float v = rintf(x[i] * s);
        q[i] = (v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v) + 0.0f;
    }
    *s_out = s;
}

static void test_act_quant_naive(void **st) {
    (void)st;
    float x[100], q[100], qr[100];
    int8_t qi[100];
    long rows = 0;
    // the int8 conversion has SIMD paths (x86: AVX-512, AVX2) picked by the kernel level: each
    // level the CPU has against the naive reference, including NaN and infinite values mid-row
    const tern_kernel_kind kinds[4] = {TERN_KERNEL_PLAIN, TERN_KERNEL_AVX2, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX512VNNI};
    for (int k = 0; k < 4; k++) {
        if (!tern_kernel_available(kinds[k])) continue;
        assert_int_equal(tern_kernel_force(kinds[k]), 0);
        for (int n = 1; n <= 100; n++) {
            for (int i = 0; i < n; i++) x[i] = (float)((i * 37 + n) % 61 - 30) * 0.173f + (i % 3 ? 0.5f : 0.0f);
            if (n > 40) { x[n / 2] = NAN; x[n / 3] = 3e38f * 10.0f; }   // +inf: s = 0, every value 0
            if (n > 70) x[n / 3] = -0.0f;                               // NaN alone: skipped by the scale
            float sr;
            naive_act(x, n, &sr, qr);
            for (int i = 0; i < n; i++) if (isnan(qr[i])) qr[i] = 0.0f;   // NaN (x NaN, or inf * 0) converts to 0
            assert_true(tern_act_quantize_row_i8(x, n, qi) == sr);
            for (int i = 0; i < n; i++)
                if (qi[i] != (int8_t)qr[i]) fail_msg("i8 at %s: n %d, elem %d: %d, naive %d", tern_kernel_name(kinds[k]), n, i, qi[i], (int)qr[i]);
        }
    }
    tern_kernel_force(TERN_KERNEL_AUTO);
    for (int n = 1; n <= 100; n++)
        for (int p = 0; p < n; p++) {
            tu_fill_uniform(x, n, (uint64_t)(1000 * n + p), -1.0f, 1.0f);
            x[p] = (p % 2 ? -1.0f : 1.0f) * (1.5f + 0.01f * (float)n);   // the absmax, at p
            float sr, s = tern_act_quantize_row(x, n, q);
            naive_act(x, n, &sr, qr);
            if (s != sr) fail_msg("n %d, absmax at %d: s_x %.9g, naive %.9g", n, p, s, sr);
            if (memcmp(q, qr, sizeof(float) * (size_t)n)) fail_msg("n %d, absmax at %d: quantized values differ", n, p);
            assert_true(tern_act_quantize_row_i8(x, n, qi) == sr);
            for (int i = 0; i < n; i++) if (qi[i] != (int8_t)qr[i]) fail_msg("i8: n %d, absmax at %d, elem %d", n, p, i);
            assert_true(fabsf(qr[p]) == 127.0f);
            rows++;
        }
    printf("activation quantizer == naive on %ld rows (lengths 1..100, absmax at every position)\n", rows);
}

// the gradient quantizer (precision=mixed's dx): s = 127 / max|d| with no floor, rint(d * s), at
// every kernel level against a naive scalar version: ordinary rows, tiny rows (s large), rows whose
// s overflows (zeros, s returned as 1), all-zero rows, NaN (skipped, converts to 0) and inf (zeros)
static float naive_grad(const float *d, int n, int8_t *q) {
    double m = 0.0;
    for (int i = 0; i < n; i++) if (fabs((double)d[i]) > m) m = fabs((double)d[i]);
    const float s = m > 0.0 ? 127.0f / (float)m : 0.0f;
    if (!(s > 0.0f) || isinf(s)) { memset(q, 0, (size_t)n); return 1.0f; }
    for (int i = 0; i < n; i++) {
        const float v = rintf(d[i] * s);
        q[i] = v != v ? 0 : (int8_t)v;   // |v| <= 127 by construction
        assert_true(v != v || fabsf(v) <= 127.0f);
    }
    return s;
}

static void test_grad_quant_naive(void **st) {
    (void)st;
    float d[100];
    int8_t q[100], qr[100];
    long rows = 0;
    const tern_kernel_kind kinds[4] = {TERN_KERNEL_PLAIN, TERN_KERNEL_AVX2, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX512VNNI};
    const float mags[5] = {1.0f, 3e-3f, 1e-30f, 1e-39f /* 127 / max overflows */, 0.0f};
    for (int k = 0; k < 4; k++) {
        if (!tern_kernel_available(kinds[k])) continue;
        assert_int_equal(tern_kernel_force(kinds[k]), 0);
        for (int mg = 0; mg < 5; mg++)
            for (int n = 1; n <= 100; n++) {
                tu_fill_uniform(d, n, (uint64_t)(7000 * mg + n), -1.0f, 1.0f);
                for (int i = 0; i < n; i++) d[i] *= mags[mg];
                if (n > 8 && mg < 3) d[n % 7] = (n % 2 ? 1.0f : -1.0f) * mags[mg] * 1.25f;   // the max, either sign
                if (n > 40 && mg == 0) d[n / 2] = NAN;
                if (n > 90 && mg == 1) d[n / 3] = -INFINITY;
                const float sr = naive_grad(d, n, qr), s = tern_grad_quantize_row_i8(d, n, q);
                if (s != sr) fail_msg("grad at %s: mag %g n %d: s %.9g, naive %.9g", tern_kernel_name(kinds[k]), mags[mg], n, s, sr);
                for (int i = 0; i < n; i++)
                    if (q[i] != qr[i]) fail_msg("grad at %s: mag %g n %d elem %d: %d, naive %d", tern_kernel_name(kinds[k]), mags[mg], n, i, q[i], qr[i]);
                if (mg < 3 && n > 8 && !(n > 90 && mg == 1) && !isnan(d[n % 7]) && abs(q[n % 7]) != 127) fail_msg("mag %g n %d: max elem %d gives %d", mags[mg], n, n % 7, q[n % 7]);   // (inf: zeros)
                rows++;
            }
    }
    tern_kernel_force(TERN_KERNEL_AUTO);
    printf("gradient quantizer == naive on %ld rows (every kernel level this CPU has)\n", rows);
}

// weights: s_w = mean|W| (summed in double), W/s_w rounded half to even and clipped, for sizes
// 1..100 and sizes past the 64Ki summation chunk and the threaded path
static void test_weight_quant_naive(void **st) {
    (void)st;
    const long big[3] = {65536 + 3, 4 * 65536 + 17, 9 * 65536 + 1};
    float *w = malloc(sizeof(float) * big[2]), *q = malloc(sizeof(float) * big[2]);
    int8_t *qi = malloc((size_t)big[2]);
    for (int k = 0; k < 103; k++) {
        long n = k < 100 ? k + 1 : big[k - 100];
        tu_fill_normal(w, n, 500 + (uint64_t)k, 0.02f);
        w[n - 1] = 0.3f;                     // a large last element moves the mean
        double sum = 0.0;
        for (long i = 0; i < n; i++) sum += fabs((double)w[i]);
        float sr = (float)(sum / (double)n);
        if (sr < 1e-5f) sr = 1e-5f;
        float s = tern_weight_scale(w, n);
        if (s != sr) fail_msg("n %ld: s_w %.9g, naive %.9g", n, s, sr);
        tern_weight_quantize(w, n, s, q);
        tern_weight_quantize_i8(w, n, s, qi);
        for (long i = 0; i < n; i++) {
            float v = rintf(w[i] / sr);
            v = (v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v) + 0.0f;
            if (q[i] != v || qi[i] != (int8_t)v) fail_msg("n %ld elem %ld: %g / %g -> %g (naive %g)", n, i, w[i], sr, q[i], v);
        }
    }
    free(w); free(q); free(qi);
}

// Wq packed straight from W (precision=mixed's forward and its Wq^T): every element read back
// from the packed matrix equals the naive rint-clip, in both orientations, with values planted
// on the rounding edges (+-0.5 s, +-1.5 s and their neighbours, huge, zero); the whole buffer,
// padding included, equals tern_tmat_pack_f32 of tern_weight_quantize's floats
static void test_weight_pack_tmat(void **st) {
    (void)st;
    const int shapes[][2] = {{1, 1}, {5, 300}, {17, 256}, {37, 513}, {256, 768}, {768, 256}, {33, 1029}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], K = shapes[si][1];
        const long n = (long)M * K;
        float *w = malloc(sizeof(float) * n), *q = malloc(sizeof(float) * n), *qt = malloc(sizeof(float) * n);
        tu_fill_normal(w, n, 900 + si, 0.02f);
        const float s = tern_weight_scale(w, n);
        const float edge[] = {0.5f, -0.5f, 1.5f, -1.5f, 0.0f, -0.0f, 1e30f, -1e30f, 0.49999997f, 0.50000006f, -0.50000006f, 1.0f, -1.0f};
        for (long i = 0; i < n; i += 7) w[i] = edge[(i / 7) % 13] * s;
        tern_weight_quantize(w, n, s, q);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) qt[(size_t)k * M + m] = q[(size_t)m * K + k];
        for (int tr = 0; tr < 2; tr++) {
            const int rows = tr ? K : M, cols = tr ? M : K;
            const size_t nb = tern_tmat_bytes(rows, cols);
            uint8_t *b1 = tern_aligned_alloc(nb), *b2 = tern_aligned_alloc(nb);
            memset(b1, 0xA5, nb);
            tern_tmat t1, t2;
            tern_weight_pack_tmat(w, M, K, s, tr, &t1, b1);
            tern_tmat_pack_f32(&t2, b2, tr ? qt : q, rows, cols, s);
            assert_int_equal(t1.rows, rows);
            assert_int_equal(t1.cols, cols);
            assert_true(t1.scale == s);
            int8_t *row = malloc((size_t)cols);
            for (int r = 0; r < rows; r++) {
                tern_tmat_get_row_i8(&t1, r, row);
                for (int c = 0; c < cols; c++) {
                    const float v = tr ? w[(size_t)c * K + r] : w[(size_t)r * K + c];
                    float e = rintf(v / s);
                    e = e > 1.0f ? 1.0f : e < -1.0f ? -1.0f : e;
                    if (row[c] != (int8_t)e) fail_msg("%dx%d transposed %d: [%d][%d] = %g / %g -> %d, naive %g", M, K, tr, r, c, v, s, row[c], e);
                }
            }
            if (memcmp(b1, b2, nb)) fail_msg("%dx%d transposed %d: packed bytes differ from tern_tmat_pack_f32", M, K, tr);
            free(row);
            free(b1); free(b2);
        }
        free(w); free(q); free(qt);
    }
}

// RoPE's per-step table cache: the same arguments share one table; any other position offset,
// length, head size, theta or divisor contents (the same array changed in place) gets its own,
// each equal to the angles computed directly; tables stay valid for the whole step
static void check_table(const float *cs, int T, int D, int pos0, float theta, const float *div) {
    float *ref = malloc(sizeof(float) * (size_t)D);
    for (int t = 0; t < T; t++) {
        tern_rope_angles_div(pos0 + t, D, theta, div, ref);
        if (memcmp(ref, cs + (size_t)t * D, sizeof(float) * (size_t)D))
            fail_msg("rope table T %d D %d pos0 %d theta %g: position %d differs", T, D, pos0, theta, t);
    }
    free(ref);
}
static void test_rope_table(void **st) {
    (void)st;
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    for (int step = 0; step < 2; step++) {   // the second step after a reset
        float div[4] = {1.0f, 2.0f, 4.0f, 8.0f};
        const float *a = tern_rope_table(&g, 70, 8, 0, 10000.0f, NULL);
        assert_ptr_equal(a, tern_rope_table(&g, 70, 8, 0, 10000.0f, NULL));
        const float *b = tern_rope_table(&g, 70, 8, 5, 10000.0f, NULL);
        const float *c = tern_rope_table(&g, 71, 8, 0, 10000.0f, NULL);
        const float *d = tern_rope_table(&g, 70, 6, 0, 10000.0f, NULL);
        const float *e = tern_rope_table(&g, 70, 8, 0, 500000.0f, NULL);
        const float *f = tern_rope_table(&g, 70, 8, 0, 10000.0f, div);
        assert_ptr_equal(f, tern_rope_table(&g, 70, 8, 0, 10000.0f, div));
        div[2] = 3.0f;
        const float *h = tern_rope_table(&g, 70, 8, 0, 10000.0f, div);
        const float *all[] = {a, b, c, d, e, f, h};
        for (int i = 0; i < 7; i++)
            for (int j = i + 1; j < 7; j++) assert_ptr_not_equal(all[i], all[j]);
        check_table(a, 70, 8, 0, 10000.0f, NULL);
        check_table(b, 70, 8, 5, 10000.0f, NULL);
        check_table(c, 71, 8, 0, 10000.0f, NULL);
        check_table(d, 70, 6, 0, 10000.0f, NULL);
        check_table(e, 70, 8, 0, 500000.0f, NULL);
        check_table(h, 70, 8, 0, 10000.0f, div);
        div[2] = 4.0f;
        check_table(f, 70, 8, 0, 10000.0f, div);   // the first divisor table kept its values
        tern_graph_reset(&g);
    }
    tern_graph_free(&g);
}

// ---- straight-through gradients -------------------------------------------------------------
static void test_quant_ste(void **st) {
    (void)st;
    tern_params p;
    tern_params_init(&p);
    int sh[2] = {5, 9};
    tern_tensor *w = tern_params_add(&p, "w", 2, sh, 0);
    tern_params_alloc(&p);
    tu_fill_normal(w->data, w->n, 11, 1.0f);
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    float R[45];
    tu_fill_uniform(R, 45, 12, -1, 1);
    tern_tensor *qw = tern_quant_weight(&g, w);
    float s = tern_weight_scale(w->data, w->n);
    for (int i = 0; i < 45; i++) {
        float v = qw->data[i] / s;
        assert_true(v == -1.0f || v == 0.0f || v == 1.0f);
    }
    tern_backward_vec(&g, qw, R);
    assert_memory_equal(w->grad, R, sizeof R); // identity gradient
    tern_params_zero_grad(&p);
    tern_graph_reset(&g);
    tern_tensor *qa = tern_quant_act(&g, w);
    for (int r = 0; r < 5; r++) { // values are xq/s_x with integer xq
        float sx = 127.0f, m = 0;
        for (int c = 0; c < 9; c++) m = fmaxf(m, fabsf(w->data[r * 9 + c]));
        sx = 127.0f / m;
        for (int c = 0; c < 9; c++) assert_float_equal(qa->data[r * 9 + c] * sx, rintf(qa->data[r * 9 + c] * sx), 1e-4);
    }
    tern_backward_vec(&g, qa, R);
    assert_memory_equal(w->grad, R, sizeof R);
    tern_graph_free(&g);
    tern_params_free(&p);
}

// ---- BitLinear: integer-exact forward and STE backward against plain loops ----------------------
static void test_bitlinear_exact(void **st) {
    (void)st;
    int N = 7, K = 67, M = 13;
    tern_params p;
    tern_params_init(&p);
    int sx_[2] = {N, K}, sw_[2] = {M, K};
    tern_tensor *x = tern_params_add(&p, "x", 2, sx_, 0), *w = tern_params_add(&p, "w", 2, sw_, 0);
    tern_params_alloc(&p);
    tu_fill_normal(x->data, x->n, 31, 2.0f);
    tu_fill_normal(w->data, w->n, 32, 0.02f);
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    tern_tensor *y = tern_bitlinear(&g, x, w, 1.0f);
    float sw = tern_weight_scale(w->data, w->n);
    int8_t wq[13 * 67], xq[7 * 67];
    float sxs[7];
    tern_weight_quantize_i8(w->data, w->n, sw, wq);
    for (int n = 0; n < N; n++) sxs[n] = tern_act_quantize_row_i8(x->data + n * K, K, xq + n * K);
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            int32_t acc = 0;
            for (int k = 0; k < K; k++) acc += (int32_t)xq[n * K + k] * wq[m * K + k];
            float want = (float)acc * (sw / sxs[n]); // the runtime's exact formula
            assert_true(y->data[n * M + m] == want);
        }
    float R[7 * 13];
    g_worst = 0;
    tu_fill_uniform(R, N * M, 33, -1, 1);
    tern_backward_vec(&g, y, R);
    for (int n = 0; n < N; n++) // dx = dy . (Wq s_w)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int m = 0; m < M; m++) s += (double)R[n * M + m] * wq[m * K + k] * sw;
            CLOSE(x->grad[n * K + k], s, 2e-6, 2e-5);   // measured err/tol 0.1 (was 0.02 at 1e-5 + 1e-4 |s|)
        }
    for (int m = 0; m < M; m++) // dW = dy^T . (xq / s_x)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)R[n * M + m] * xq[n * K + k] / sxs[n];
            CLOSE(w->grad[m * K + k], s, 2e-6, 2e-5);
        }
    // ramp lambda = 0.5 and 0.25: forward equals the mixed product (lambda * quantized + (1 - lambda) * fp)
    for (int li = 0; li < 2; li++) {
        const double lam = li ? 0.25 : 0.5;
        tern_graph_reset(&g);
        tern_tensor *y2 = tern_bitlinear(&g, x, w, (float)lam);
        for (int n = 0; n < N; n++)
            for (int m = 0; m < M; m++) {
                double s = 0;
                for (int k = 0; k < K; k++) {
                    double xm = lam * xq[n * K + k] / sxs[n] + (1 - lam) * x->data[n * K + k];
                    double wm = lam * wq[m * K + k] * sw + (1 - lam) * w->data[m * K + k];
                    s += xm * wm;
                }
                CLOSE(y2->data[n * M + m], s, 2e-6, 2e-5);
            }
    }
    printf("bitlinear backward and ramp forward vs double loops: worst err/tol %.3f\n", g_worst);
    tern_graph_free(&g);
    tern_params_free(&p);
}

// tern_bitlinear_n (one shared activation quantization) == separate tern_bitlinear calls: the
// same output and gradient bits, for ternary, ramp and fp; K = 300 exercises the padded int8 rows
static void shared_vs_separate(float lambda, int shared, float *out) {
    enum { N = 9, K = 300 };
    const int Ms[3] = {5, 11, 3};
    tern_params p;
    tern_params_init(&p);
    int sx_[2] = {N, K};
    tern_tensor *x = tern_params_add(&p, "x", 2, sx_, 0), *w[3];
    for (int j = 0; j < 3; j++) {
        int sw_[2] = {Ms[j], K};
        char name[8] = "w0";
        name[1] = (char)('0' + j);
        w[j] = tern_params_add(&p, name, 2, sw_, 0);
    }
    tern_params_alloc(&p);
    tu_fill_normal(x->data, x->n, 41, 1.5f);
    for (int j = 0; j < 3; j++) tu_fill_normal(w[j]->data, w[j]->n, 42 + (uint64_t)j, 0.03f);
    tern_params_zero_grad(&p);
    tern_graph g;
    tern_graph_init(&g, 32, 0, 0);
    tern_tensor *y[3];
    if (shared) tern_bitlinear_n(&g, x, w, 3, lambda, y);
    else for (int j = 0; j < 3; j++) y[j] = tern_bitlinear(&g, x, w[j], lambda);
    tern_tensor *loss = NULL;
    for (int j = 0; j < 3; j++) {   // loss = sum_j <R_j, y_j>
        tern_tensor *r = tern_new_2d(&g, "r", N, Ms[j]);
        tu_fill_uniform(r->data, r->n, 50 + (uint64_t)j, -1, 1);
        tern_tensor *t = tern_sum(&g, tern_mul(&g, y[j], r));
        loss = loss ? tern_add(&g, loss, t) : t;
    }
    tern_backward(&g, loss, 1.0f);
    long o = 0;
    for (int j = 0; j < 3; j++) { memcpy(out + o, y[j]->data, sizeof(float) * y[j]->n); o += y[j]->n; }
    memcpy(out + o, x->grad, sizeof(float) * x->n);
    o += x->n;
    for (int j = 0; j < 3; j++) { memcpy(out + o, w[j]->grad, sizeof(float) * w[j]->n); o += w[j]->n; }
    tern_graph_free(&g);
    tern_params_free(&p);
}

static void test_bitlinear_shared(void **st) {
    (void)st;
    const long n = 9 * (5 + 11 + 3) + 9 * 300 + (5 + 11 + 3) * 300;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    const float lambdas[3] = {1.0f, 0.5f, 0.0f};
    for (int i = 0; i < 3; i++) {
        shared_vs_separate(lambdas[i], 1, a);
        shared_vs_separate(lambdas[i], 0, b);
        double nz = 0;
        for (long k = 0; k < n; k++) nz += fabs(a[k]);
        assert_true(nz > 0);
        if (memcmp(a, b, sizeof(float) * n) != 0) fail_msg("lambda %g: shared BitLinear differs from separate calls", (double)lambdas[i]);
    }
    free(a);
    free(b);
}

// ---- clear fatal errors ------------------------------------------------------------------------
static void child_shape_mismatch(void *a) {
    (void)a;
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    tern_matmul(&g, tern_new_2d(&g, "a", 3, 4), tern_new_2d(&g, "b", 5, 6), 0, 0);
}
static void child_arena_limit(void *a) {
    (void)a;
    tern_graph g;
    tern_graph_init(&g, 16, 4096, 1 << 16);
    tern_new_2d(&g, "big", 256, 256);
}
static void child_graph_full(void *a) {
    (void)a;
    tern_params p;
    tern_params_init(&p);
    int sh[1] = {4};
    tern_tensor *w = tern_params_add(&p, "w", 1, sh, 0);
    tern_params_alloc(&p);
    tern_graph g;
    tern_graph_init(&g, 3, 0, 0);
    tern_tensor *x = w;
    for (int i = 0; i < 5; i++) x = tern_scale(&g, x, 2.0f);
}
static void child_bitlinear_mismatch(void *a) {   // the second of two weights has the wrong width
    (void)a;
    tern_graph g;
    tern_graph_init(&g, 16, 0, 0);
    tern_tensor *w[2] = {tern_new_2d(&g, "w0", 5, 8), tern_new_2d(&g, "w1", 5, 9)}, *y[2];
    tern_bitlinear_n(&g, tern_new_2d(&g, "x", 3, 8), w, 2, 1.0f, y);
}
static void test_fatal_errors(void **st) {
    (void)st;
    char err[512];
    assert_int_equal(tu_run_child(child_shape_mismatch, NULL, err, sizeof err), 1);
    assert_non_null(strstr(err, "inner dimensions differ"));
    assert_int_equal(tu_run_child(child_arena_limit, NULL, err, sizeof err), 1);
    assert_non_null(strstr(err, "arena exhausted"));
    assert_int_equal(tu_run_child(child_graph_full, NULL, err, sizeof err), 1);
    assert_non_null(strstr(err, "graph is full"));
    assert_int_equal(tu_run_child(child_bitlinear_mismatch, NULL, err, sizeof err), 1);
    assert_non_null(strstr(err, "does not match weight"));
}

// arena: after the first step it holds one block of the high-water size and stops growing
static void test_arena_sizing(void **st) {
    (void)st;
    tern_arena a;
    tern_arena_init(&a, "test", 1024, 0);
    for (int i = 0; i < 10; i++) tern_arena_alloc(&a, 1000);
    size_t high = a.high;
    tern_arena_reset(&a);
    assert_null(a.head->next);
    assert_true(tern_arena_capacity(&a) >= high);
    void *first = tern_arena_alloc(&a, 1000);
    for (int i = 1; i < 10; i++) tern_arena_alloc(&a, 1000);
    assert_null(a.head->next); // no new block in the second step
    tern_arena_reset(&a);
    assert_ptr_equal(tern_arena_alloc(&a, 1000), first);
    for (int step = 0; step < 3; step++) {   // the same step again and again: the high-water mark stays
        tern_arena_reset(&a);
        for (int i = 0; i < 10; i++) tern_arena_alloc(&a, 1000);
    }
    assert_true(a.high == high);
    tern_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_forward),    cmocka_unit_test(test_attention_forward),
        cmocka_unit_test(test_cross_entropy_forward), cmocka_unit_test(test_weight_quant_cases),
        cmocka_unit_test(test_act_quant_cases), cmocka_unit_test(test_act_quant_naive), cmocka_unit_test(test_grad_quant_naive), cmocka_unit_test(test_weight_quant_naive), cmocka_unit_test(test_weight_pack_tmat), cmocka_unit_test(test_rope_table),   cmocka_unit_test(test_quant_ste),
        cmocka_unit_test(test_bitlinear_exact),   cmocka_unit_test(test_bitlinear_shared),   cmocka_unit_test(test_fatal_errors),
        cmocka_unit_test(test_arena_sizing),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
