// test_fastbwd.c — the mixed-precision ternary backward (precision=mixed): bf16 rounding, the bf16
// weight-gradient kernels of every level against a reference computed here in double, and the
// BitLinear's mixed gradients against the exact fp32 path within bounds derived from their rounding.
#include "testutil.h"
#include "kernels/gemm_bf16.h"
#include "engine/ops.h"
#include "model/config.h"
#include "model/quant.h"
#include "util.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// bf16 round to nearest even, computed independently: keep 8 significant bits with rint (ties to
// even in the default rounding mode) on the scaled significand.
static float bf16_ref(float x) {
    if (x == 0.0f || !isfinite(x)) return x;
    int e;
    double m = frexp((double)x, &e);   // x = m * 2^e, 0.5 <= |m| < 1
    return (float)ldexp(rint(ldexp(m, 8)), e - 8);
}

static void test_bf16_rounding(void **st) {
    (void)st;
    float v[4000];
    tu_fill_normal(v, 4000, 1, 3.0f);
    // ties: exactly half-way between two bf16 values, both parities of the kept bit
    v[0] = 1.0f + 1.0f / 256.0f;               // 1 + 2^-8: tie, the even neighbour is 1
    v[1] = 1.0f + 3.0f / 256.0f;               // tie, the even neighbour is 1 + 2^-6
    v[2] = -(1.0f + 1.0f / 256.0f);
    v[3] = 1.0f + 1.0f / 256.0f + 1.0f / 65536.0f; // just above the tie: rounds up
    v[4] = FLT_MAX;                            // largest finite float: bf16 rounds to inf
    for (int i = 0; i < 4000; i++) {
        float got = tern_f32_of_bf16(tern_bf16_of(v[i])), want = i == 4 ? INFINITY : bf16_ref(v[i]);
        if (got != want) fail_msg("bf16(%.9g) = %.9g, want %.9g", v[i], got, want);
    }
    assert_true(isnan(tern_f32_of_bf16(tern_bf16_of(NAN))));
}

// dw = sum_n bf16(dy[n,m] / sx[n]) * xq[n,k] in double; also sum |terms| for the bound
static void dw_ref(int M, int K, int N, const float *dy, const float *sx, const int8_t *xq, size_t ldx, double *ref, double *mag) {
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            double s = 0, a = 0;
            for (int n = 0; n < N; n++) {
                double t = (double)bf16_ref(dy[(size_t)n * M + m] / sx[n]) * xq[(size_t)n * ldx + k];
                s += t;
                a += fabs(t);
            }
            ref[(size_t)m * K + k] = s;
            mag[(size_t)m * K + k] = a;
        }
}

// Every level the CPU runs against the double reference on odd shapes (M of every remainder
// modulo the 6-row tile, K not a multiple of 16 or 64, N odd). The values entering the sums are identical,
// so the only error allowed is fp32 summation: N * 2^-24 * sum |terms|, plus the initial dw value
// (the kernels accumulate into dw).
static void test_dw_kernels(void **st) {
    (void)st;
    // the last: a contraction of 550 pairs, three of the kernels' 256-pair chunks
    const int shapes[][3] = {{7, 19, 33}, {13, 70, 64}, {6, 64, 1}, {1, 1, 5}, {25, 130, 101}, {11, 64, 40}, {16, 3, 9}, {9, 70, 1100}};
    for (int s = 0; s < 8; s++) {
        const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        const size_t ldx = (size_t)K + 3;
        float *dy = malloc(sizeof(float) * (size_t)N * M), *sx = malloc(sizeof(float) * (size_t)N);
        int8_t *xq = malloc(ldx * (size_t)N);
        tu_fill_normal(dy, (long)N * M, 100 + s, 1e-3f);
        tern_rng r;
        tern_rng_seed(&r, 200 + s);
        for (int n = 0; n < N; n++) {
            sx[n] = 3.0f + (float)(tern_rng_u64(&r) % 1000) / 7.0f;
            for (size_t k = 0; k < ldx; k++) xq[n * ldx + k] = (int8_t)((int)(tern_rng_u64(&r) % 256) - 128);
        }
        double *ref = malloc(sizeof(double) * (size_t)M * K), *mag = malloc(sizeof(double) * (size_t)M * K);
        dw_ref(M, K, N, dy, sx, xq, ldx, ref, mag);
        const int ldw = K + 2;
        float *dw = malloc(sizeof(float) * (size_t)M * ldw);
        void *scratch = tern_aligned_alloc(tern_gemm_dw_scratch(M, K, N));
        int ran = 0;
        for (int kind = TERN_GEMM_PLAIN; kind < TERN_GEMM_NKINDS; kind++) {
            if (!tern_gemm_available((tern_gemm_kind)kind)) {
                tu_skip_part("test_fastbwd: this CPU lacks the %s level", tern_gemm_name((tern_gemm_kind)kind));
                continue;
            }
            for (long i = 0; i < (long)M * ldw; i++) dw[i] = 0.25f;   // accumulates; the padding stays
            tern_gemm_dw_bf16(M, K, N, dy, M, sx, xq, ldx, dw, ldw, scratch, (tern_gemm_kind)kind);
            for (int m = 0; m < M; m++) {
                for (int k = 0; k < K; k++) {
                    const double want = 0.25 + ref[(size_t)m * K + k];
                    const double tol = (N + 2) * ldexp(1.0, -24) * (mag[(size_t)m * K + k] + 0.25) + 1e-30;
                    const double got = dw[(size_t)m * ldw + k];
                    if (fabs(got - want) > tol)
                        fail_msg("%s %dx%dx%d: dw[%d,%d] = %.9g, want %.9g (tol %.3g)", tern_gemm_name((tern_gemm_kind)kind), M, K, N,
                                 m, k, got, want, tol);
                }
                for (int k = K; k < ldw; k++) assert_true(dw[(size_t)m * ldw + k] == 0.25f);
            }
            ran++;
        }
        assert_true(ran >= 1);
        free(scratch);
        free(dw);
        free(ref);
        free(mag);
        free(xq);
        free(sx);
        free(dy);
    }
    assert_int_not_equal(tern_gemm_best(), TERN_GEMM_AUTO);
    assert_true(tern_gemm_available(tern_gemm_best()));
}

// The general product, every level, both packings of A (m-contiguous and k-contiguous) and a
// strided B, against the double reference: identical bf16 inputs, so fp32 summation error only.
static void test_gemm_kernels(void **st) {
    (void)st;
    // M 37, 19: 6-row tiles that straddle A's 16-row blocks; K 1200: 600 pairs, three 256-pair chunks
    const int shapes[][3] = {{7, 19, 33}, {13, 70, 64}, {37, 65, 101}, {1, 1, 2}, {33, 200, 291}, {19, 70, 1200}};
    for (int s = 0; s < 6; s++)
        for (int form = 0; form < 3; form++) {
            const int M = shapes[s][0], Nc = shapes[s][1], K = shapes[s][2];
            float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)K * Nc * 2);
            tu_fill_normal(a, (long)M * K, 300 + s, 1.0f);
            tu_fill_normal(b, (long)K * Nc * 2, 400 + s, 1.0f);
            // form 0: A row-major [M,K] (sak 1: pairs transposed), B [K,Nc]; 1: A stored [K,M] (sam
            // 1); 2: B stored [Nc,K] (sbk 1: transposed too) with A row-major (the head's forward)
            const long sam = form == 1 ? 1 : K, sak = form == 1 ? M : 1;
            const long sbk = form == 2 ? 1 : Nc, sbn = form == 2 ? K : 1;
            double *ref = malloc(sizeof(double) * (size_t)M * Nc), *mag = malloc(sizeof(double) * (size_t)M * Nc);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < Nc; n++) {
                    double t = 0, u = 0;
                    for (int k = 0; k < K; k++) {
                        double v = (double)bf16_ref(a[m * sam + k * sak]) * bf16_ref(b[k * sbk + n * sbn]);
                        t += v;
                        u += fabs(v);
                    }
                    ref[(size_t)m * Nc + n] = t;
                    mag[(size_t)m * Nc + n] = u;
                }
            const int ldc = Nc + 1;
            float *c = malloc(sizeof(float) * (size_t)M * ldc);
            void *scratch = tern_aligned_alloc(tern_gemm_bf16_scratch(M, Nc, K));
            for (int kind = TERN_GEMM_PLAIN; kind < TERN_GEMM_NKINDS; kind++)
                for (int acc = 0; acc < 4; acc++) {   // accumulate 0 stores: the old NaNs are never read
                    if (!tern_gemm_available((tern_gemm_kind)kind)) continue;   // reported by test_dw_kernels
                    // acc 2, 3: the serial entry, scaled by alpha, called from inside a parallel region
                    const int add = acc & 1, ser = acc >> 1;
                    const float alpha = ser ? 0.3f : 1.0f;
                    for (long i = 0; i < (long)M * ldc; i++) c[i] = add ? -0.5f : NAN;
                    c[(size_t)M * ldc - 1] = -0.5f;   // the last row's padding
                    if (!ser)
                        tern_gemm_bf16(M, Nc, K, a, sam, sak, b, sbk, sbn, c, ldc, add, scratch, (tern_gemm_kind)kind);
                    else {
                        #pragma omp parallel num_threads(2)
                        {
                            #pragma omp single
                            tern_gemm_bf16_serial(M, Nc, K, alpha, a, sam, sak, b, sbk, sbn, c, ldc, add, scratch, (tern_gemm_kind)kind);
                        }
                    }
                    for (int m = 0; m < M; m++) {
                        for (int n = 0; n < Nc; n++) {
                            const double want = (add ? -0.5 : 0.0) + alpha * ref[(size_t)m * Nc + n];
                            const double tol = (K + 4) * ldexp(1.0, -24) * (alpha * mag[(size_t)m * Nc + n] + 0.5) + 1e-30;
                            if (!(fabs(c[(size_t)m * ldc + n] - want) <= tol))
                                fail_msg("gemm %s form %d acc %d %dx%dx%d: c[%d,%d] = %.9g, want %.9g", tern_gemm_name((tern_gemm_kind)kind), form,
                                         acc, M, Nc, K, m, n, c[(size_t)m * ldc + n], want);
                        }
                        if (add || m == M - 1) assert_true(c[(size_t)m * ldc + Nc] == -0.5f);   // padding untouched
                        else assert_true(isnan(c[(size_t)m * ldc + Nc]));
                    }
                }
            free(scratch);
            free(c);
            free(ref);
            free(mag);
            free(a);
            free(b);
        }
}

// B packed once (the attention's keys and values) gives the bits of packing per call, for a
// product over the first Nc <= Ncp columns and K <= Kp rows, both B layouts (sbk 1: transposed;
// sbn 1), every level; an odd K < Kp falls back to packing per call
static void test_gemm_bpack(void **st) {
    (void)st;
    const int Ncp = 150, Kp = 90, M = 29;
    float *a = malloc(sizeof(float) * (size_t)M * Kp), *b = malloc(sizeof(float) * (size_t)Ncp * Kp);
    tu_fill_normal(a, (long)M * Kp, 601, 1.0f);
    tu_fill_normal(b, (long)Ncp * Kp, 602, 1.0f);
    void *bp = tern_aligned_alloc(tern_gemm_bf16_bpack_bytes(Ncp, Kp) + 64), *work = tern_aligned_alloc(tern_gemm_bf16_scratch(M, Ncp, Kp));
    float *c1 = malloc(sizeof(float) * (size_t)M * Ncp), *c2 = malloc(sizeof(float) * (size_t)M * Ncp);
    const int cases[][2] = {{150, 90}, {64, 90}, {100, 40}, {7, 2}, {130, 33}};
    int ran = 0;
    for (int kind = TERN_GEMM_PLAIN; kind < TERN_GEMM_NKINDS; kind++) {
        if (!tern_gemm_available((tern_gemm_kind)kind)) continue;
        for (int lay = 0; lay < 2; lay++) {
            // lay 0: b stored [Ncp][Kp] (sbk 1, sbn Kp); lay 1: b stored [Kp][Ncp] (sbk Ncp, sbn 1)
            const long sbk = lay ? Ncp : 1, sbn = lay ? 1 : Kp;
            tern_gemm_bf16_bpack(Ncp, Kp, b, sbk, sbn, bp, (tern_gemm_kind)kind);
            for (int ci = 0; ci < 5; ci++) {
                const int Nc = cases[ci][0], K = cases[ci][1];
                for (long i = 0; i < (long)M * Ncp; i++) c1[i] = c2[i] = 0.25f;
                tern_gemm_bf16_serial(M, Nc, K, 0.7f, a, Kp, 1, b, sbk, sbn, c1, Ncp, 1, work, (tern_gemm_kind)kind);
                tern_gemm_bf16_serial_bp(M, Nc, K, 0.7f, a, Kp, 1, b, sbk, sbn, bp, Kp, c2, Ncp, 1, work, (tern_gemm_kind)kind);
                if (memcmp(c1, c2, sizeof(float) * (size_t)M * Ncp))
                    fail_msg("bpack %s layout %d: %d columns x %d rows of %dx%d differ from packing per call", tern_gemm_name((tern_gemm_kind)kind),
                             lay, Nc, K, Ncp, Kp);
                ran++;
            }
        }
    }
    assert_true(ran >= 10);
    free(c1); free(c2); free(bp); free(work); free(a); free(b);
}

// The tied head's product (tern_matmul A B^T): the mixed forward and gradients against fp32, each
// product term within 2 * 2^-8 (+ rounding of the sums) of the exact one; with gradients off the
// forward gives the same bits (recompute=1 runs a block without, then again with gradients).
static void test_head_mixed(void **st) {
    (void)st;
    const int M = 45, K = 70, N = 131;   // tokens, dim, vocab
    float *grads[2][2], *outs[2], *evals[2];
    float *seed = malloc(sizeof(float) * (size_t)M * N), *av = NULL, *bv = NULL;
    tu_fill_normal(seed, (long)M * N, 77, 1e-3f);
    for (int prec = 0; prec < 2; prec++) {
        tern_params p;
        tern_params_init(&p);
        int as[2] = {M, K}, bs[2] = {N, K};
        tern_tensor *a = tern_params_add(&p, "a", 2, as, 0), *b = tern_params_add(&p, "b", 2, bs, 0);
        tern_params_alloc(&p);
        tu_fill_normal(a->data, a->n, 78, 1.0f);
        tu_fill_normal(b->data, b->n, 79, 0.05f);
        if (!av) {
            av = malloc(sizeof(float) * (size_t)a->n);
            bv = malloc(sizeof(float) * (size_t)b->n);
            memcpy(av, a->data, sizeof(float) * (size_t)a->n);
            memcpy(bv, b->data, sizeof(float) * (size_t)b->n);
        }
        for (long i = 0; i < a->n; i++) a->grad[i] = 0.125f;   // backward accumulates
        tern_graph g;
        tern_graph_init(&g, 16, 0, 0);
        g.precision = prec ? TERN_PREC_MIXED : TERN_PREC_FP32;
        tern_tensor *o = tern_matmul(&g, a, b, 0, 1);
        outs[prec] = malloc(sizeof(float) * (size_t)o->n);
        memcpy(outs[prec], o->data, sizeof(float) * (size_t)o->n);
        g.grad_enabled = 0;   // without gradients (a block recomputed later): the same bits
        tern_tensor *oe = tern_matmul(&g, a, b, 0, 1);
        evals[prec] = malloc(sizeof(float) * (size_t)oe->n);
        memcpy(evals[prec], oe->data, sizeof(float) * (size_t)oe->n);
        g.grad_enabled = 1;
        tern_backward_vec(&g, o, seed);
        grads[prec][0] = malloc(sizeof(float) * (size_t)a->n);
        grads[prec][1] = malloc(sizeof(float) * (size_t)b->n);
        memcpy(grads[prec][0], a->grad, sizeof(float) * (size_t)a->n);
        memcpy(grads[prec][1], b->grad, sizeof(float) * (size_t)b->n);
        tern_graph_free(&g);
        tern_params_free(&p);
    }
    const double rel = 2 * ldexp(1.0, -8) + ldexp(1.0, -16);
    double worst = 0, diff = 0, fdiff = 0, adiff = 0;
    assert_memory_equal(evals[0], outs[0], sizeof(float) * (size_t)M * N);
    assert_memory_equal(evals[1], outs[1], sizeof(float) * (size_t)M * N);
    for (int m = 0; m < M; m++)   // out[m,n] = sum_k a[m,k] b[n,k]: both inputs rounded to bf16
        for (int n = 0; n < N; n++) {
            double mag = 0;
            for (int k = 0; k < K; k++) mag += fabs((double)av[(size_t)m * K + k] * bv[(size_t)n * K + k]);
            const double e = fabs((double)outs[1][(size_t)m * N + n] - outs[0][(size_t)m * N + n]);
            worst = fmax(worst, e / ((rel + 2 * (K + 4) * ldexp(1.0, -24)) * mag + 1e-30));
            fdiff += e;
        }
    for (int m = 0; m < M; m++)   // dA[m,k] = sum_n seed[m,n] b[n,k]
        for (int k = 0; k < K; k++) {
            double mag = 0;
            for (int n = 0; n < N; n++) mag += fabs((double)seed[(size_t)m * N + n] * bv[(size_t)n * K + k]);
            const double e = fabs((double)grads[1][0][(size_t)m * K + k] - grads[0][0][(size_t)m * K + k]);
            worst = fmax(worst, e / ((rel + 2 * (N + 4) * ldexp(1.0, -24)) * mag + (N + 4) * ldexp(1.0, -24) * 0.125 + 1e-30));
            adiff += e;
        }
    for (int n = 0; n < N; n++)   // dB[n,k] = sum_m seed[m,n] a[m,k]
        for (int k = 0; k < K; k++) {
            double mag = 0;
            for (int m = 0; m < M; m++) mag += fabs((double)seed[(size_t)m * N + n] * av[(size_t)m * K + k]);
            const double e = fabs((double)grads[1][1][(size_t)n * K + k] - grads[0][1][(size_t)n * K + k]);
            worst = fmax(worst, e / ((rel + 2 * (M + 4) * ldexp(1.0, -24)) * mag + 1e-30));
            diff += e;
        }
    printf("head mixed %dx%d . %dx%d^T: worst error / bound %.3f\n", M, K, N, K, worst);
    assert_true(worst <= 1.0);
    assert_true(diff > 0 && adiff > 0 && fdiff > 0);   // the bf16 paths really ran (dB, dA, forward)
    for (int i = 0; i < 2; i++) { free(grads[i][0]); free(grads[i][1]); free(outs[i]); free(evals[i]); }
    free(seed); free(av); free(bv);
}

// ---- the attention: mixed (bf16 products) and fp32 against a double reference ----------------
// The reference: causal softmax attention, grouped-query heads, written out in double (plain
// loops, no code shared with engine/ops_attention.c), with the "magnitude" of every output (the
// same sums over absolute values). fp32 must match it to fp32 rounding; mixed within the bound
// its rounding allows: each product term's inputs rounded to bf16 (relative u = 2^-8 each, so
// 2u + u^2 per term); a score error E_i = max_j (2u + u^2) scale sum_d |q_id k_jd| changes P_ij by at
// most a factor exp(2 E_i) - 1; the gradients chain up to three such products, hence
// |mixed - ref| <= (epsP + 8u) * magnitude + fp32 slack, epsP = max_i exp(2 E_i) - 1.
typedef struct { double *o, *dq, *dk, *dv, *mo, *mdq, *mdk, *mdv; double epsP; } attn_ref;

static void attention_ref(int B, int T, int H, int Hkv, int D, const float *q, const float *k, const float *v, const float *dO, attn_ref *r) {
    const int G = H / Hkv, lq = H * D, lk = Hkv * D;
    const double scale = 1.0 / sqrt((double)D), u = ldexp(1.0, -8), tu = 2 * u + u * u;
    const size_t nq = (size_t)B * T * lq, nk = (size_t)B * T * lk;
    double **bufs[8] = {&r->o, &r->dq, &r->dk, &r->dv, &r->mo, &r->mdq, &r->mdk, &r->mdv};
    for (int i = 0; i < 8; i++) *bufs[i] = calloc(i % 4 == 0 || i % 4 == 1 ? nq : nk, sizeof(double));
    double *P = malloc(sizeof(double) * (size_t)T * T), *dS = malloc(sizeof(double) * (size_t)T * T), *mdS = malloc(sizeof(double) * (size_t)T * T);
    r->epsP = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int kh = h / G;
#define Q(i, d) ((double)q[((size_t)b * T + (i)) * lq + h * D + (d)])
#define K(j, d) ((double)k[((size_t)b * T + (j)) * lk + kh * D + (d)])
#define V(j, d) ((double)v[((size_t)b * T + (j)) * lk + kh * D + (d)])
#define DO(i, d) ((double)dO[((size_t)b * T + (i)) * lq + h * D + (d)])
#define IQ(i, d) (((size_t)b * T + (i)) * lq + h * D + (d))
#define IK(j, d) (((size_t)b * T + (j)) * lk + kh * D + (d))
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0, E = 0;
                for (int j = 0; j <= i; j++) {
                    double sc = 0, ma = 0;
                    for (int d = 0; d < D; d++) { sc += Q(i, d) * K(j, d); ma += fabs(Q(i, d) * K(j, d)); }
                    P[(size_t)i * T + j] = sc * scale;
                    mx = fmax(mx, sc * scale);
                    E = fmax(E, tu * scale * ma);
                }
                for (int j = 0; j <= i; j++) sum += exp(P[(size_t)i * T + j] - mx);
                for (int j = 0; j <= i; j++) P[(size_t)i * T + j] = exp(P[(size_t)i * T + j] - mx) / sum;
                r->epsP = fmax(r->epsP, expm1(2 * E));
                for (int d = 0; d < D; d++) {
                    double o = 0, m = 0;
                    for (int j = 0; j <= i; j++) { o += P[(size_t)i * T + j] * V(j, d); m += P[(size_t)i * T + j] * fabs(V(j, d)); }
                    r->o[IQ(i, d)] = o;
                    r->mo[IQ(i, d)] = m;
                }
            }
            for (int i = 0; i < T; i++) {
                double Di = 0, mDi = 0;
                for (int d = 0; d < D; d++) { Di += DO(i, d) * r->o[IQ(i, d)]; mDi += fabs(DO(i, d)) * r->mo[IQ(i, d)]; }
                for (int j = 0; j <= i; j++) {
                    double dp = 0, mdp = 0;
                    for (int d = 0; d < D; d++) { dp += DO(i, d) * V(j, d); mdp += fabs(DO(i, d) * V(j, d)); }
                    dS[(size_t)i * T + j] = P[(size_t)i * T + j] * (dp - Di);
                    mdS[(size_t)i * T + j] = P[(size_t)i * T + j] * (mdp + mDi);
                }
            }
            for (int i = 0; i < T; i++)
                for (int d = 0; d < D; d++)
                    for (int j = 0; j <= i; j++) {
                        r->dq[IQ(i, d)] += scale * dS[(size_t)i * T + j] * K(j, d);
                        r->mdq[IQ(i, d)] += scale * mdS[(size_t)i * T + j] * fabs(K(j, d));
                        r->dk[IK(j, d)] += scale * dS[(size_t)i * T + j] * Q(i, d);
                        r->mdk[IK(j, d)] += scale * mdS[(size_t)i * T + j] * fabs(Q(i, d));
                        r->dv[IK(j, d)] += P[(size_t)i * T + j] * DO(i, d);
                        r->mdv[IK(j, d)] += P[(size_t)i * T + j] * fabs(DO(i, d));
                    }
#undef Q
#undef K
#undef V
#undef DO
#undef IQ
#undef IK
        }
    free(P);
    free(dS);
    free(mdS);
}

// T = 70: two query blocks of the kernel (64 + 6); T = 71: the last block sees an odd number of
// keys (the packed-once values are bypassed there); D = 24: not a multiple of 16 or 64
static void attention_mixed_case(int T) {
    const int B = 2, H = 4, Hkv = 2, D = 24;
    const long nq = (long)B * T * H * D, nk = (long)B * T * Hkv * D;
    float *q0 = malloc(sizeof(float) * nq), *k0 = malloc(sizeof(float) * nk), *v0 = malloc(sizeof(float) * nk), *seed = malloc(sizeof(float) * nq);
    tu_fill_normal(q0, nq, 501, 0.5f);   // scores of a few units: a tight bound (epsP ~ 1e-2)
    tu_fill_normal(k0, nk, 502, 0.5f);
    tu_fill_normal(v0, nk, 503, 1.0f);
    tu_fill_normal(seed, nq, 504, 1.0f);
    attn_ref r;
    attention_ref(B, T, H, Hkv, D, q0, k0, v0, seed, &r);
    const double u = ldexp(1.0, -8), slack = 4 * T * ldexp(1.0, -24);
    double worst[2] = {0, 0}, diff = 0;
    for (int prec = 0; prec < 2; prec++) {
        tern_params p;
        tern_params_init(&p);
        int qs[2] = {B * T, H * D}, ks[2] = {B * T, Hkv * D};
        tern_tensor *q = tern_params_add(&p, "q", 2, qs, 0), *k = tern_params_add(&p, "k", 2, ks, 0), *v = tern_params_add(&p, "v", 2, ks, 0);
        tern_params_alloc(&p);
        memcpy(q->data, q0, sizeof(float) * nq);
        memcpy(k->data, k0, sizeof(float) * nk);
        memcpy(v->data, v0, sizeof(float) * nk);
        tern_graph g;
        tern_graph_init(&g, 16, 0, 0);
        g.precision = prec ? TERN_PREC_MIXED : TERN_PREC_FP32;
        tern_tensor *o = tern_attention(&g, q, k, v, B, T, H, Hkv);
        tern_backward_vec(&g, o, seed);
        g.grad_enabled = 0;   // without gradients (recompute=1's first pass): the same bits
        tern_tensor *oe = tern_attention(&g, q, k, v, B, T, H, Hkv);
        assert_memory_equal(o->data, oe->data, sizeof(float) * nq);
        g.grad_enabled = 1;
        // fp32: rounding only (relative 1e-5 of the magnitude); mixed: the bound above
        const double rel = prec ? r.epsP + 8 * u : 1e-5;
        const struct { const float *got; const double *want, *mag; long n; const char *name; } outs[4] = {
            {o->data, r.o, r.mo, nq, "out"}, {q->grad, r.dq, r.mdq, nq, "dq"}, {k->grad, r.dk, r.mdk, nk, "dk"}, {v->grad, r.dv, r.mdv, nk, "dv"}};
        for (int t = 0; t < 4; t++)
            for (long i = 0; i < outs[t].n; i++) {
                const double e = fabs(outs[t].got[i] - outs[t].want[i]), bound = (rel + slack) * outs[t].mag[i] + 1e-12;
                if (!(e <= bound)) fail_msg("attention %s: %s[%ld] = %.9g, reference %.9g (bound %.3g)", prec ? "mixed" : "fp32", outs[t].name, i,
                                            outs[t].got[i], outs[t].want[i], bound);
                worst[prec] = fmax(worst[prec], e / bound);
                if (prec) diff += e;
            }
        tern_graph_free(&g);
        tern_params_free(&p);
    }
    printf("attention B%d T%d H%d/%d D%d: worst error / bound: fp32 %.3f, mixed %.3f (epsP %.3g)\n", B, T, H, Hkv, D, worst[0], worst[1], r.epsP);
    assert_true(diff > 0);   // the bf16 products really ran
    double *bufs[8] = {r.o, r.dq, r.dk, r.dv, r.mo, r.mdq, r.mdk, r.mdv};
    for (int i = 0; i < 8; i++) free(bufs[i]);
    free(q0); free(k0); free(v0); free(seed);
}

static void test_attention_mixed(void **st) {
    (void)st;
    attention_mixed_case(70);
    attention_mixed_case(71);
}

// ---- the BitLinear's gradients: mixed against fp32 -------------------------------------------
// Two BitLinears of one input (dx accumulates over both), dy given. Returns dx and dW of w[0].
// mid = 1: the BitLinears read x * 1 (an intermediate tensor), so their dx starts fresh (the first
// backward stores, the second adds; engine/graph.h tern_grad_for), NaN-poisoned
static void bitlinear_grads(int precision, int mid, int N, int K, int M, const float *x0, const float *w0, const float *w1,
                            const float *dy, float *dx, float *dw, float *x_eff, float *wq) {
    tern_params p;
    tern_params_init(&p);
    int xs[2] = {N, K}, ws[2] = {M, K};
    tern_tensor *x = tern_params_add(&p, "x", 2, xs, 0);
    tern_tensor *w[2] = {tern_params_add(&p, "w0", 2, ws, 0), tern_params_add(&p, "w1", 2, ws, 0)};
    tern_params_alloc(&p);
    memcpy(x->data, x0, sizeof(float) * (size_t)N * K);
    memcpy(w[0]->data, w0, sizeof(float) * (size_t)M * K);
    memcpy(w[1]->data, w1, sizeof(float) * (size_t)M * K);
    tern_graph g;
    tern_graph_init(&g, 64, 0, 0);
    g.precision = precision;
    g.poison_grads = 1;
    tern_tensor *out[2];
    tern_bitlinear_n(&g, mid ? tern_scale(&g, x, 1.0f) : x, w, 2, 1.0f, out);
    if (x_eff) { // what the fp32 path multiplies: xq / s_x, and Wq * s_w
        memcpy(x_eff, g.nodes[0].saved[0], sizeof(float) * (size_t)N * K);
        const float *we = g.nodes[0].saved[1];
        for (long i = 0; i < (long)M * K; i++) wq[i] = we[i] * g.nodes[0].fp[0];
    }
    tern_tensor *sum = tern_add(&g, out[0], out[1]);
    float *seed = malloc(sizeof(float) * (size_t)N * M);
    memcpy(seed, dy, sizeof(float) * (size_t)N * M);
    tern_backward_vec(&g, sum, seed);
    memcpy(dx, x->grad, sizeof(float) * (size_t)N * K);
    memcpy(dw, w[0]->grad, sizeof(float) * (size_t)M * K);
    free(seed);
    tern_graph_free(&g);
    tern_params_free(&p);
}

static void test_bitlinear_mixed(void **st) {
    (void)st;
    const int shapes[][3] = {{37, 70, 29}, {64, 256, 300}, {5, 300, 17}};
    for (int s = 0; s < 3; s++) {
        const int N = shapes[s][0], K = shapes[s][1], M = shapes[s][2];
        float *x = malloc(sizeof(float) * (size_t)N * K), *w0 = malloc(sizeof(float) * (size_t)M * K);
        float *w1 = malloc(sizeof(float) * (size_t)M * K), *dy = malloc(sizeof(float) * (size_t)N * M);
        tu_fill_normal(x, (long)N * K, 10 + s, 1.0f);
        tu_fill_normal(w0, (long)M * K, 20 + s, 0.02f);
        tu_fill_normal(w1, (long)M * K, 30 + s, 0.02f);
        tu_fill_normal(dy, (long)N * M, 40 + s, 1e-4f);   // gradient-sized: far below the activation floor
        for (int m = 0; m < M; m++) dy[m] = 0.0f;        // an all-zero gradient row
        for (int m = 0; m < M; m++) dy[M + m] = m == M / 2 ? -3e-4f : 0.0f;   // one-hot: quantizes exactly
        float *dx32 = malloc(sizeof(float) * (size_t)N * K), *dw32 = malloc(sizeof(float) * (size_t)M * K);
        float *dxm = malloc(sizeof(float) * (size_t)N * K), *dwm = malloc(sizeof(float) * (size_t)M * K);
        float *xe = malloc(sizeof(float) * (size_t)N * K), *wq = malloc(sizeof(float) * (size_t)M * K);
        bitlinear_grads(TERN_PREC_FP32, 0, N, K, M, x, w0, w1, dy, dx32, dw32, xe, wq);
        float *wq1 = malloc(sizeof(float) * (size_t)M * K), *xe1 = malloc(sizeof(float) * (size_t)N * K);
        { // Wq*s_w of w1 too (dx sums both): run the fp32 path once more with the weights swapped
            float *a = malloc(sizeof(float) * (size_t)N * K), *b = malloc(sizeof(float) * (size_t)M * K);
            bitlinear_grads(TERN_PREC_FP32, 0, N, K, M, x, w1, w0, dy, a, b, xe1, wq1);
            free(a);
            free(b);
        }
        bitlinear_grads(TERN_PREC_MIXED, 0, N, K, M, x, w0, w1, dy, dxm, dwm, NULL, NULL);
        { // dx into a fresh buffer (the kernel's output stored, then the second one added) and into
          // a leaf's zeroed one: 0 + a + b and a + b, bit for bit; the fp32 path likewise (beta 0)
            float *dxf = malloc(sizeof(float) * (size_t)N * K), *dwf = malloc(sizeof(float) * (size_t)M * K);
            bitlinear_grads(TERN_PREC_MIXED, 1, N, K, M, x, w0, w1, dy, dxf, dwf, NULL, NULL);
            assert_memory_equal(dxf, dxm, sizeof(float) * (size_t)N * K);
            assert_memory_equal(dwf, dwm, sizeof(float) * (size_t)M * K);
            bitlinear_grads(TERN_PREC_FP32, 1, N, K, M, x, w0, w1, dy, dxf, dwf, NULL, NULL);
            assert_memory_equal(dxf, dx32, sizeof(float) * (size_t)N * K);
            free(dxf);
            free(dwf);
        }
        // dx: each dy row is quantized with step max|dy_n| / 127, error <= half a step per element;
        // through each of the two weights that is <= step/2 * sum_m |Wq s_w [m,k]|. fp32 slack:
        // (M + 4) * 2^-24 relative to the same sum.
        double worst_dx = 0, worst_dw = 0, err_dx = 0;
        for (int n = 0; n < N; n++) {
            double amax = 0;
            for (int m = 0; m < M; m++) amax = fmax(amax, fabs(dy[(size_t)n * M + m]));
            for (int k = 0; k < K; k++) {
                double cw = 0, mag = 0;
                for (int m = 0; m < M; m++) {
                    cw += fabs(wq[(size_t)m * K + k]) + fabs(wq1[(size_t)m * K + k]);
                    mag += fabs(dy[(size_t)n * M + m]) * (fabs(wq[(size_t)m * K + k]) + fabs(wq1[(size_t)m * K + k]));
                }
                const double tol = amax / 254.0 * cw * (1 + 1e-5) + (M + 4) * ldexp(1.0, -24) * mag + 1e-30;
                const double e = fabs((double)dxm[(size_t)n * K + k] - dx32[(size_t)n * K + k]);
                if (n == 0) assert_true(dxm[k] == 0.0f);   // the zero row gives exactly zero
                if (n == 1 && e > 1e-6 * mag + 1e-30)   // the one-hot row quantizes exactly: fp32 rounding only
                    fail_msg("one-hot gradient row: dx[1,%d] = %.9g, fp32 %.9g", k, dxm[K + k], dx32[K + k]);
                worst_dx = fmax(worst_dx, e / tol);
                err_dx += e;
            }
        }
        // dW: each term dy/sx rounded to bf16 (8 significant bits: relative error <= 2^-8); fp32
        // sums of both paths
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) {
                double mag = 0;
                for (int n = 0; n < N; n++) mag += fabs(dy[(size_t)n * M + m] * xe[(size_t)n * K + k]);
                const double tol = (ldexp(1.0, -8) + 2 * (N + 4) * ldexp(1.0, -24)) * mag + 1e-30;
                const double e = fabs((double)dwm[(size_t)m * K + k] - dw32[(size_t)m * K + k]);
                worst_dw = fmax(worst_dw, e / tol);
            }
        printf("bitlinear mixed %dx%d->%d: worst error / bound: dx %.3f, dW %.3f\n", N, K, M, worst_dx, worst_dw);
        assert_true(worst_dx <= 1.0);
        assert_true(worst_dw <= 1.0);
        assert_true(err_dx > 0);   // the int8 path really ran (the fp32 one would be exact)
        free(x); free(w0); free(w1); free(dy); free(dx32); free(dw32); free(dxm); free(dwm); free(xe); free(wq); free(wq1); free(xe1);
    }
}

static void test_precision_key(void **st) {
    (void)st;
    tern_config c;
    tern_config_defaults(&c);
    assert_int_equal(c.run.precision, TERN_PREC_AUTO);
    // auto: mixed for a ternary model where vdpbf16ps runs (unless TERN_GEMM picks a lower
    // level), fp32 otherwise and always for a full-precision model
    int bf16 = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    bf16 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bf16");
#endif
    const char *env = getenv("TERN_GEMM");
    if (env && strcmp(env, "avx512bf16")) bf16 = 0;
    for (int ternary = 0; ternary <= 1; ternary++) {
        tern_config v;
        tern_config_defaults(&v);
        v.model.ternary = ternary;
        assert_int_equal(tern_config_validate(&v), 0);
        assert_int_equal(v.run.precision, ternary && bf16 ? TERN_PREC_MIXED : TERN_PREC_FP32);
        assert_int_equal(v.run.precision_auto, 1);
        printf("precision = auto, ternary %d: %s\n", ternary, tern_precision_name(v.run.precision));
    }
    tern_config e;   // an explicit value stays
    tern_config_defaults(&e);
    assert_int_equal(tern_config_set(&e, "precision", "fp32"), 0);
    assert_int_equal(tern_config_validate(&e), 0);
    assert_int_equal(e.run.precision, TERN_PREC_FP32);
    assert_int_equal(e.run.precision_auto, 0);
    assert_int_equal(tern_config_set(&c, "precision", "auto"), 0);
    assert_int_equal(c.run.precision, TERN_PREC_AUTO);
    assert_string_equal(tern_precision_name(TERN_PREC_AUTO), "auto");
    assert_int_equal(tern_config_set(&c, "precision", "mixed"), 0);
    assert_int_equal(c.run.precision, TERN_PREC_MIXED);
    assert_int_equal(tern_config_set(&c, "precision", "fp32"), 0);
    assert_int_equal(c.run.precision, TERN_PREC_FP32);
    assert_int_not_equal(tern_config_set(&c, "precision", "bf16"), 0);
    assert_non_null(strstr(tern_last_error(), "fp32, mixed or auto"));
    assert_string_equal(tern_precision_name(TERN_PREC_MIXED), "mixed");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_dw_kernels),
        cmocka_unit_test(test_gemm_kernels),
        cmocka_unit_test(test_gemm_bpack),
        cmocka_unit_test(test_head_mixed),
        cmocka_unit_test(test_attention_mixed),
        cmocka_unit_test(test_bitlinear_mixed),
        cmocka_unit_test(test_precision_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
