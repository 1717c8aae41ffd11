// gemm_bf16.c — bf16 products with fp32 sums (gemm_bf16.h): plain C reference, AVX2, AVX512-BF16.
#include "kernels/gemm_bf16.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
// The SIMD levels run OpenMP regions inside target-attributed functions. GCC gives the outlined
// regions the function's target; clang does not (it rejects the 512-bit types there), so a clang
// build (the fuzzers') compiles the plain level only and tern_gemm_available says so.
#if defined(__x86_64__) && !defined(__clang__)
#define GEMM_X86 1
#endif

// ------------------------------------------------------------------ dispatch
static const char *const NAMES[TERN_GEMM_NKINDS] = {"auto", "plain", "avx2", "avx512bf16"};
const char *tern_gemm_name(tern_gemm_kind k) { return (unsigned)k < TERN_GEMM_NKINDS ? NAMES[k] : "?"; }

int tern_gemm_available(tern_gemm_kind k) {
    switch (k) {
    case TERN_GEMM_AUTO:
    case TERN_GEMM_PLAIN: return 1;
#ifdef GEMM_X86
    case TERN_GEMM_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TERN_GEMM_AVX512BF16:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bf16");
#endif
    default: return 0;
    }
}

tern_gemm_kind tern_gemm_best(void) {
    static int best = -1;
    int b = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (b >= 0) return (tern_gemm_kind)b;
    b = tern_gemm_available(TERN_GEMM_AVX512BF16) ? TERN_GEMM_AVX512BF16
        : tern_gemm_available(TERN_GEMM_AVX2)     ? TERN_GEMM_AVX2
                                                  : TERN_GEMM_PLAIN;
    const char *e = getenv("TERN_GEMM");
    if (e && *e) {
        int k = -1;
        for (int i = 1; i < TERN_GEMM_NKINDS; i++)
            if (!strcmp(e, NAMES[i])) k = i;
        if (k < 0 || !tern_gemm_available((tern_gemm_kind)k))
            fprintf(stderr, "warning: TERN_GEMM=%s is not one of plain|avx2|avx512bf16 this CPU runs; using %s\n", e, NAMES[b]);
        else
            b = k;
    }
    __atomic_store_n(&best, b, __ATOMIC_RELAXED);
    return (tern_gemm_kind)b;
}

// ------------------------------------------------------------------ reference
// Plain C: the definition, summed in n order into dw.
static void dw_plain(int M, int K, int N, const float *dy, int ldy, const float *sx, const int8_t *xq, size_t ldx, float *dw,
                     int ldw) {
    #pragma omp parallel for schedule(static) if ((long)M * K * N > (1L << 22))
    for (int m = 0; m < M; m++) {
        float *d = dw + (size_t)m * ldw;
        for (int n = 0; n < N; n++) {
            const float a = tern_f32_of_bf16(tern_bf16_of(dy[(size_t)n * ldy + m] / sx[n]));
            const int8_t *x = xq + (size_t)n * ldx;
            for (int k = 0; k < K; k++) d[k] += a * (float)x[k];
        }
    }
}

static void gemm_plain(int M, int Nc, int K, float alpha, const float *a, long sam, long sak, const float *b, long sbk, long sbn, float *c,
                       int ldc, int acc, int par) {
    #pragma omp parallel for schedule(static) if (par && (long)M * Nc * K > (1L << 22))
    for (int m = 0; m < M; m++) {
        float *d = c + (size_t)m * ldc;
        for (int n = 0; n < Nc; n++) {
            float t = 0.0f;
            for (int k = 0; k < K; k++) t += tern_f32_of_bf16(tern_bf16_of(a[m * sam + k * sak])) * tern_f32_of_bf16(tern_bf16_of(b[k * sbk + n * sbn]));
            d[n] = acc ? d[n] + alpha * t : alpha * t;
        }
    }
}

// ------------------------------------------------------------------ packing (vector kinds)
// P = ceil(N/2) pairs of rows n = 2p, 2p+1 (a missing last row is zero). One uint32 holds a pair:
// low half the bf16 of row 2p, high half row 2p+1 (the element order of vdpbf16ps).
//   A:                     bf16(dy[n,m] / sx[n]) in one of two layouts (a_layout below)
//   B [K/64][P][64]:       bf16(xq[n,k]) in panels of 64 columns (past K: zero)
#define PANEL 64
static size_t al64(size_t b) { return (b + 63) / 64 * 64; }
// A's layouts: the dword of row m, pair p sits at (m/16)*bs + p*ps + m%16.
//   rows   [P][M]          bs 16, ps M: what a source contiguous in m packs into with whole-row
//                          copies (the weight gradient's dy, the head's dC^T);
//   blocks [M/16][P][16]   bs 16P, ps 16: for a source contiguous along the contraction (packed
//                          by 16x16 transposes). There the rows layout made every transpose
//                          store 16 lines M dwords apart, and a tile's pairs M dwords apart: at
//                          M = 2048 tokens (the head's dh) all of a chunk's pairs in one L1 set;
//                          blocks keep a tile's pairs one cache line apart (dh 1.5x faster).
typedef struct { size_t bs, ps; } a_layout;
static inline a_layout a_rows(int M) { return (a_layout){16, (size_t)M}; }
static inline a_layout a_blocks(int P) { return (a_layout){16 * (size_t)P, 16}; }
static inline a_layout a_layout_for(int M, int P, long sam) { return sam == 1 ? a_rows(M) : a_blocks(P); }
static inline size_t a_at(int m, int p, a_layout l) { return (size_t)(m / 16) * l.bs + (size_t)p * l.ps + (size_t)(m % 16); }
// bytes for either layout (blocks round M up to 16)
static size_t a_bytes(int M, int N) { return al64((size_t)((M + 15) / 16) * 16 * (size_t)((N + 1) / 2) * 4); }
static size_t b_bytes(int K, int N) { return al64((size_t)((K + PANEL - 1) / PANEL) * (size_t)((N + 1) / 2) * PANEL * 4); }

size_t tern_gemm_dw_scratch(int M, int K, int N) { return a_bytes(M, N) + b_bytes(K, N); }

static void pack_plain(int M, int K, int N, const float *dy, int ldy, const float *sx, const int8_t *xq, size_t ldx, uint32_t *A,
                 uint32_t *B) {
    const int P = (N + 1) / 2, nkb = (K + PANEL - 1) / PANEL;
    #pragma omp parallel
    {
        #pragma omp for schedule(static) nowait
        for (int p = 0; p < P; p++) {
            const int n0 = 2 * p, n1 = 2 * p + 1;
            const float *r0 = dy + (size_t)n0 * ldy, *r1 = dy + (size_t)n1 * ldy;
            for (int m = 0; m < M; m++) {
                uint32_t lo = tern_bf16_of(r0[m] / sx[n0]);
                uint32_t hi = n1 < N ? tern_bf16_of(r1[m] / sx[n1]) : 0;
                A[a_at(m, p, a_rows(M))] = lo | hi << 16;
            }
        }
        #pragma omp for schedule(static) collapse(2)
        for (int kb = 0; kb < nkb; kb++)
            for (int p = 0; p < P; p++) {
                const int n0 = 2 * p, n1 = 2 * p + 1;
                const int8_t *x0 = xq + (size_t)n0 * ldx, *x1 = xq + (size_t)n1 * ldx;
                uint32_t *o = B + ((size_t)kb * P + p) * PANEL;
                for (int c = 0; c < PANEL; c++) {
                    const int k = kb * PANEL + c;
                    uint32_t lo = k < K ? tern_bf16_of((float)x0[k]) : 0;
                    uint32_t hi = k < K && n1 < N ? tern_bf16_of((float)x1[k]) : 0;
                    o[c] = lo | hi << 16;
                }
            }
    }
}

// The general product's packing, plain C: A(m,k) = a[m*sam + k*sak] in the layout
// a_layout_for(M, P, sam), B(k,n) = b[k*sbk + n*sbn] into [Nc/64][P][64] (P = ceil(K/2) pairs along
// the contraction). A or B NULL: that operand is not packed.
static void gpack_plain(int M, int Nc, int K, const float *a, long sam, long sak, const float *b, long sbk, long sbn, uint32_t *A,
                        uint32_t *B, int par) {
    const int P = (K + 1) / 2, nkb = (Nc + PANEL - 1) / PANEL;
    const a_layout la = a_layout_for(M, P, sam);
    #pragma omp parallel if (par)
    {
        #pragma omp for schedule(static) nowait
        for (int p = 0; p < (A ? P : 0); p++)
            for (int m = 0; m < M; m++) {
                uint32_t lo = tern_bf16_of(a[m * sam + 2L * p * sak]);
                uint32_t hi = 2 * p + 1 < K ? tern_bf16_of(a[m * sam + (2L * p + 1) * sak]) : 0;
                A[a_at(m, p, la)] = lo | hi << 16;
            }
        #pragma omp for schedule(static) collapse(2)
        for (int kb = 0; kb < (B ? nkb : 0); kb++)
            for (int p = 0; p < P; p++)
                for (int c = 0; c < PANEL; c++) {
                    const int n = kb * PANEL + c;
                    uint32_t lo = n < Nc ? tern_bf16_of(b[2L * p * sbk + n * sbn]) : 0;
                    uint32_t hi = n < Nc && 2 * p + 1 < K ? tern_bf16_of(b[(2L * p + 1) * sbk + n * sbn]) : 0;
                    B[((size_t)kb * P + p) * PANEL + c] = lo | hi << 16;
                }
    }
}

#ifdef GEMM_X86
// ------------------------------------------------------------------ AVX512-BF16
// Micro-tile: MR rows of dw x one 64-column panel, 4 zmm accumulators per row; per pair p one
// 256-byte panel row of B and one broadcast dword of A per row (A[i]: row i's pair p0, ps dwords
// per pair: the layout's).
#define TB __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define MR512 6
static inline __attribute__((always_inline)) TB void tile512(int mr, int P, const uint32_t *const *A, size_t ps, const uint32_t *Bp, float *dw, int ldw,
                                                             int kvalid, int add, float alpha) {
    __m512 acc[MR512][4];
    for (int i = 0; i < MR512; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < P; p++) {
        const uint32_t *b = Bp + (size_t)p * PANEL;
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
        __m512bh b2 = (__m512bh)_mm512_load_si512(b + 32), b3 = (__m512bh)_mm512_load_si512(b + 48);
        for (int i = 0; i < mr; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[i][(size_t)p * ps]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
            acc[i][2] = _mm512_dpbf16_ps(acc[i][2], a, b2);
            acc[i][3] = _mm512_dpbf16_ps(acc[i][3], a, b3);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < 4; j++) {
            const int c = 16 * j;
            if (c >= kvalid) break;
            const __mmask16 mk = kvalid - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kvalid - c)) - 1);
            float *d = dw + (size_t)i * ldw + c;
            const __m512 v = alpha == 1.0f ? acc[i][j] : _mm512_mul_ps(acc[i][j], _mm512_set1_ps(alpha));
            _mm512_mask_storeu_ps(d, mk, add ? _mm512_add_ps(_mm512_maskz_loadu_ps(mk, d), v) : v);
        }
}

// o[(j/16)*gs + j%16] = bf16(r0[j] / d0) | bf16(r1[j] / d1) << 16, j < n (r1 NULL: high halves
// zero); gs: the dwords between groups of 16 (16: contiguous; A's blocks: P*16)
TB static void pairs512(const float *r0, const float *r1, float d0, float d1, int n, uint32_t *o, size_t gs) {
    const __m512 s0 = _mm512_set1_ps(d0), s1 = _mm512_set1_ps(d1);
    for (int j = 0; j < n; j += 16) {
        const __mmask16 mk = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        const __m512 v0 = _mm512_div_ps(_mm512_maskz_loadu_ps(mk, r0 + j), s0);
        const __m512 v1 = r1 ? _mm512_div_ps(_mm512_maskz_loadu_ps(mk, r1 + j), s1) : _mm512_setzero_ps();
        const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v0));
        const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v1));
        _mm512_mask_storeu_epi32(o + (size_t)(j / 16) * gs, mk, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
}

// The packing above with AVX-512: 16 values at a time, the same bf16 (division, then round to
// nearest even by vcvtneps2bf16).
TB static void pack512(int M, int K, int N, const float *dy, int ldy, const float *sx, const int8_t *xq, size_t ldx, uint32_t *A,
                       uint32_t *B) {
    const int P = (N + 1) / 2, nkb = (K + PANEL - 1) / PANEL;
    #pragma omp parallel
    {
        #pragma omp for schedule(static) nowait
        for (int p = 0; p < P; p++) {
            const int n0 = 2 * p, n1 = 2 * p + 1;
            pairs512(dy + (size_t)n0 * ldy, n1 < N ? dy + (size_t)n1 * ldy : NULL, sx[n0], n1 < N ? sx[n1] : 1.0f, M,
                     A + a_at(0, p, a_rows(M)), 16);
        }
        #pragma omp for schedule(static) collapse(2)
        for (int kb = 0; kb < nkb; kb++)
            for (int p = 0; p < P; p++) {
                const int n0 = 2 * p, n1 = 2 * p + 1;
                const int8_t *x0 = xq + (size_t)n0 * ldx, *x1 = xq + (size_t)n1 * ldx;
                uint32_t *o = B + ((size_t)kb * P + p) * PANEL;
                const __m512i him = _mm512_set1_epi32((int)0xffff0000u);
                for (int c = 0; c < PANEL; c += 16) {
                    const int k = kb * PANEL + c;
                    const __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : K - k <= 0 ? 0 : (__mmask16)((1u << (K - k)) - 1);
                    // an integer |q| <= 128 is exact in bf16: the high half of its fp32 bits
                    const __m512i f0 = _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, x0 + k))));
                    const __m512i f1 = n1 < N ? _mm512_castps_si512(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, x1 + k))))
                                              : _mm512_setzero_si512();
                    _mm512_store_si512(o + c, _mm512_or_si512(_mm512_srli_epi32(f0, 16), _mm512_and_si512(f1, him)));
                }
            }
    }
}

// 16 rows x 16 pairs along a contiguous contraction: row r (r < rows; the others zero) holds
// src[r*ld + k0 ..], K - k0 values valid (past them zero). out[j] = pair k0/2 + j of the 16 rows,
// lane r: bf16(src[r*ld + k0 + 2j]) | bf16(src[r*ld + k0 + 2j + 1]) << 16. A 16x16 dword transpose.
TB static inline void pairs_t16(const float *src, long ld, int rows, int k0, int K, __m512i out[16]) {
    const int kv = K - k0;
    const __mmask16 m0 = kv >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << kv) - 1);
    const __mmask16 m1 = kv >= 32 ? (__mmask16)0xffff : kv <= 16 ? 0 : (__mmask16)((1u << (kv - 16)) - 1);
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) {
        if (i < rows) {
            const float *x = src + i * ld + k0;
            r[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + 16), _mm512_maskz_loadu_ps(m0, x));
        } else
            r[i] = _mm512_setzero_si512();
    }
    for (int i = 0; i < 16; i += 2) {       // per 128-bit lane: pairs of rows interleaved
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {       // u[i + c] lane l: column 4l + c of rows i..i+3
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int c = 0; c < 4; c++) {           // gather lane l of the four row groups: column 4l + c
        const __m512i wlo = _mm512_shuffle_i32x4(r[c], r[4 + c], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i whi = _mm512_shuffle_i32x4(r[c], r[4 + c], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i xlo = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i xhi = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], _MM_SHUFFLE(3, 2, 3, 2));
        out[c] = _mm512_shuffle_i32x4(wlo, xlo, _MM_SHUFFLE(2, 0, 2, 0));
        out[4 + c] = _mm512_shuffle_i32x4(wlo, xlo, _MM_SHUFFLE(3, 1, 3, 1));
        out[8 + c] = _mm512_shuffle_i32x4(whi, xhi, _MM_SHUFFLE(2, 0, 2, 0));
        out[12 + c] = _mm512_shuffle_i32x4(whi, xhi, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

// The general product's packing with AVX-512 where each operand has a unit stride (A: sam or sak
// 1; B: sbn or sbk 1), else the plain packing. Same bf16 values. A contiguous contraction (sak 1,
// sbk 1) goes through 16x16 transposes of pairs. Work items (the parallel and the serial drivers
// run the same items): A with sam 1, one pair of rows each, else 16 rows x 16 pairs; B with sbn 1,
// one pair of a panel each, else 16 columns x 16 pairs.
static int gpa_items(int M, int K, long sam) {
    const int P = (K + 1) / 2;
    return sam == 1 ? P : ((M + 15) / 16) * ((P + 15) / 16);
}
TB static inline void gpa_item(int i, int M, int K, const float *a, long sam, long sak, uint32_t *A) {
    const int P = (K + 1) / 2;
    if (sam == 1) {   // rows of the contraction are contiguous in m: the rows layout, one pair
        const int p = i;
        pairs512(a + 2L * p * sak, 2 * p + 1 < K ? a + (2L * p + 1) * sak : NULL, 1.0f, 1.0f, M, A + a_at(0, p, a_rows(M)), 16);
        return;
    }
    const int npb = (P + 15) / 16, mb = i / npb, pb = i % npb;
    const int m0 = 16 * mb, mr = M - m0 < 16 ? M - m0 : 16, p0 = 16 * pb, np = P - p0 < 16 ? P - p0 : 16;
    const __mmask16 mk = mr == 16 ? (__mmask16)0xffff : (__mmask16)((1u << mr) - 1);
    __m512i v[16];
    pairs_t16(a + m0 * sam, sam, mr, 2 * p0, K, v);
    for (int j = 0; j < np; j++) _mm512_mask_storeu_epi32(A + a_at(m0, p0 + j, a_blocks(P)), mk, v[j]);
}
static int gpb_items(int Nc, int K, long sbn) {
    const int P = (K + 1) / 2, nkb = (Nc + PANEL - 1) / PANEL;
    return sbn == 1 ? nkb * P : nkb * (PANEL / 16) * ((P + 15) / 16);
}
TB static inline void gpb_item(int i, int Nc, int K, const float *b, long sbk, long sbn, uint32_t *B) {
    const int P = (K + 1) / 2;
    if (sbn == 1) {
        const int kb = i / P, p = i % P, n0 = kb * PANEL, nv = Nc - n0 < PANEL ? Nc - n0 : PANEL;
        uint32_t *o = B + ((size_t)kb * P + p) * PANEL;
        pairs512(b + 2L * p * sbk + n0, 2 * p + 1 < K ? b + (2L * p + 1) * sbk + n0 : NULL, 1.0f, 1.0f, nv, o, 16);
        for (int c = nv; c < PANEL; c++) o[c] = 0;
        return;
    }
    // sbk 1: 16 columns n x 16 pairs, transposed (columns past Nc: zero)
    const int npb = (P + 15) / 16, nb = i / npb, pb = i % npb;
    const int n0 = 16 * nb, nr = Nc - n0 <= 0 ? 0 : Nc - n0 < 16 ? Nc - n0 : 16, p0 = 16 * pb, np = P - p0 < 16 ? P - p0 : 16;
    const int kb = n0 / PANEL, c0 = n0 % PANEL;
    __m512i v[16];
    pairs_t16(b + n0 * sbn, sbn, nr, 2 * p0, K, v);
    for (int j = 0; j < np; j++) _mm512_store_si512(B + ((size_t)kb * P + p0 + j) * PANEL + c0, v[j]);
}
static int gpack512_fits(long sam, long sak, long sbk, long sbn) { return (sbn == 1 || sbk == 1) && (sam == 1 || sak == 1); }

TB static void gpack512(int M, int Nc, int K, const float *a, long sam, long sak, const float *b, long sbk, long sbn, uint32_t *A,
                        uint32_t *B, int par) {
    if (!gpack512_fits(sam, sak, sbk, sbn)) {
        gpack_plain(M, Nc, K, a, sam, sak, b, sbk, sbn, A, B, par);
        return;
    }
    const int na = A ? gpa_items(M, K, sam) : 0, nb = B ? gpb_items(Nc, K, sbn) : 0;
    if (!par) {   // no OpenMP constructs at all: the attention calls this from its parallel loop
        for (int i = 0; i < na; i++) gpa_item(i, M, K, a, sam, sak, A);
        for (int i = 0; i < nb; i++) gpb_item(i, Nc, K, b, sbk, sbn, B);
        return;
    }
    #pragma omp parallel
    {
        #pragma omp for schedule(static) nowait
        for (int i = 0; i < na; i++) gpa_item(i, M, K, a, sam, sak, A);
        #pragma omp for schedule(static)
        for (int i = 0; i < nb; i++) gpb_item(i, Nc, K, b, sbk, sbn, B);
    }
}

// Blocked for the caches: a thread takes a panel and a run of up to MBB tiles, and walks the
// contraction in chunks of PCH pairs (64 KB of the panel, kept in the core's caches while the run's
// tiles use it); the tiles add each chunk's sums to their rows (the first chunk stores when add is
// 0). B's panels are pstride pairs apart (P, or more for a panel packed once for a longer
// contraction).
#ifndef PCH
#define PCH 256
#endif
#ifndef MBB
#define MBB 16
#endif
TB static inline void dw_item(int kb, int run, int M, int K, int P, int pstride, const uint32_t *A, a_layout al, const uint32_t *B, float *dw, int ldw,
                              int add, float alpha) {
    const int nmb = (M + MR512 - 1) / MR512, k0 = kb * PANEL, kv = K - k0 < PANEL ? K - k0 : PANEL;
    const int mb1 = (run + 1) * MBB < nmb ? (run + 1) * MBB : nmb;
    for (int p0 = 0; p0 < P; p0 += PCH) {
        const int pn = P - p0 < PCH ? P - p0 : PCH, ad = p0 ? 1 : add;
        const uint32_t *b = B + ((size_t)kb * pstride + p0) * PANEL;
        for (int mb = run * MBB; mb < mb1; mb++) {
            const int m0 = mb * MR512, mr = M - m0 < MR512 ? M - m0 : MR512;
            const uint32_t *a[MR512];
            for (int i = 0; i < MR512; i++) a[i] = A + a_at(m0 + (i < mr ? i : 0), p0, al);
            float *d = dw + (size_t)m0 * ldw + k0;
            switch (mr) { // constant row counts: the accumulators stay in registers
            case 6: tile512(6, pn, a, al.ps, b, d, ldw, kv, ad, alpha); break;
            case 5: tile512(5, pn, a, al.ps, b, d, ldw, kv, ad, alpha); break;
            case 4: tile512(4, pn, a, al.ps, b, d, ldw, kv, ad, alpha); break;
            case 3: tile512(3, pn, a, al.ps, b, d, ldw, kv, ad, alpha); break;
            case 2: tile512(2, pn, a, al.ps, b, d, ldw, kv, ad, alpha); break;
            default: tile512(1, pn, a, al.ps, b, d, ldw, kv, ad, alpha); break;
            }
        }
    }
}

TB static void dw_avx512bf16(int M, int K, int N, int pstride, const uint32_t *A, a_layout al, const uint32_t *B, float *dw, int ldw, int add, float alpha,
                             int par) {
    const int P = (N + 1) / 2, nkb = (K + PANEL - 1) / PANEL, nmb = (M + MR512 - 1) / MR512, nrun = (nmb + MBB - 1) / MBB;
    if (!par) {
        for (int kb = 0; kb < nkb; kb++)
            for (int run = 0; run < nrun; run++) dw_item(kb, run, M, K, P, pstride, A, al, B, dw, ldw, add, alpha);
        return;
    }
    #pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int kb = 0; kb < nkb; kb++)
        for (int run = 0; run < nrun; run++) dw_item(kb, run, M, K, P, pstride, A, al, B, dw, ldw, add, alpha);
}

// ------------------------------------------------------------------ AVX2 + FMA
// bf16 pairs widened to fp32 (row 2p: dword << 16; row 2p+1: dword & 0xffff0000), two FMAs per
// pair. Micro-tile: 2 rows x 32 columns (half a panel), 8 ymm accumulators.
#define T2 __attribute__((target("avx2,fma")))
T2 static void dw_avx2(int M, int K, int N, int pstride, const uint32_t *A, a_layout al, const uint32_t *B, float *dw, int ldw, int add, float alpha,
                       int par) {
    const int P = (N + 1) / 2, nkb = (K + PANEL - 1) / PANEL, nmb = (M + 1) / 2;
    #pragma omp parallel for schedule(static) collapse(3) if (par)
    for (int kb = 0; kb < nkb; kb++)
        for (int h = 0; h < 2; h++)
            for (int mb = 0; mb < nmb; mb++) {
                const int m0 = mb * 2, mr = M - m0 < 2 ? 1 : 2, k0 = kb * PANEL + 32 * h;
                if (k0 >= K) continue;
                const int kv = K - k0 < 32 ? K - k0 : 32;
                const uint32_t *a = A + a_at(m0, 0, al), *b = B + (size_t)kb * pstride * PANEL + 32 * h;
                const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
                __m256 acc[2][4];
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
                for (int p = 0; p < P; p++) {
                    __m256 e[4], o[4];
                    for (int j = 0; j < 4; j++) {
                        const __m256i v = _mm256_load_si256((const __m256i *)(b + (size_t)p * PANEL + 8 * j));
                        e[j] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                        o[j] = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
                    }
                    for (int i = 0; i < mr; i++) {
                        const uint32_t w = a[(size_t)p * al.ps + i];
                        const __m256 a0 = _mm256_castsi256_ps(_mm256_set1_epi32((int)(w << 16)));
                        const __m256 a1 = _mm256_castsi256_ps(_mm256_set1_epi32((int)(w & 0xffff0000u)));
                        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_fmadd_ps(a1, o[j], _mm256_fmadd_ps(a0, e[j], acc[i][j]));
                    }
                }
                for (int i = 0; i < mr; i++) {
                    float t[32];
                    for (int j = 0; j < 4; j++) _mm256_storeu_ps(t + 8 * j, acc[i][j]);
                    float *d = dw + (size_t)(m0 + i) * ldw + k0;
                    for (int c = 0; c < kv; c++) d[c] = add ? d[c] + alpha * t[c] : alpha * t[c];
                }
            }
}
#endif

void tern_gemm_dw_bf16(int M, int K, int N, const float *dy, int ldy, const float *sx, const int8_t *xq, size_t ldx, float *dw,
                       int ldw, void *scratch, tern_gemm_kind kind) {
    if (M <= 0 || K <= 0 || N <= 0) return;
    if (kind == TERN_GEMM_AUTO || !tern_gemm_available(kind)) kind = tern_gemm_best();
    if (kind == TERN_GEMM_PLAIN) {
        dw_plain(M, K, N, dy, ldy, sx, xq, ldx, dw, ldw);
        return;
    }
#ifdef GEMM_X86
    uint32_t *A = scratch, *B = (uint32_t *)((char *)scratch + a_bytes(M, N));
    if (kind == TERN_GEMM_AVX512BF16) {
        pack512(M, K, N, dy, ldy, sx, xq, ldx, A, B);
        dw_avx512bf16(M, K, N, (N + 1) / 2, A, a_rows(M), B, dw, ldw, 1, 1.0f, 1);
    } else {
        pack_plain(M, K, N, dy, ldy, sx, xq, ldx, A, B);
        dw_avx2(M, K, N, (N + 1) / 2, A, a_rows(M), B, dw, ldw, 1, 1.0f, 1);
    }
#else
    (void)scratch;
    (void)pack_plain;
    dw_plain(M, K, N, dy, ldy, sx, xq, ldx, dw, ldw);
#endif
}

size_t tern_gemm_bf16_scratch(int M, int Nc, int K) { return a_bytes(M, K) + b_bytes(Nc, K); }

static void gemm_bf16(int M, int Nc, int K, float alpha, const float *a, long sam, long sak, const float *b, long sbk, long sbn, float *c,
                      int ldc, int accumulate, void *scratch, tern_gemm_kind kind, int par) {
    if (M <= 0 || Nc <= 0) return;
    if (K <= 0) {   // an empty sum
        if (!accumulate)
            for (int m = 0; m < M; m++) memset(c + (size_t)m * ldc, 0, sizeof(float) * (size_t)Nc);
        return;
    }
    if (kind == TERN_GEMM_AUTO || !tern_gemm_available(kind)) kind = tern_gemm_best();
    if (kind == TERN_GEMM_PLAIN) {
        gemm_plain(M, Nc, K, alpha, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, par);
        return;
    }
#ifdef GEMM_X86
    uint32_t *A = scratch, *B = (uint32_t *)((char *)scratch + a_bytes(M, K));
    if (kind == TERN_GEMM_AVX512BF16) {
        gpack512(M, Nc, K, a, sam, sak, b, sbk, sbn, A, B, par);
        dw_avx512bf16(M, Nc, K, (K + 1) / 2, A, a_layout_for(M, (K + 1) / 2, sam), B, c, ldc, accumulate, alpha, par);
    } else {
        gpack_plain(M, Nc, K, a, sam, sak, b, sbk, sbn, A, B, par);
        dw_avx2(M, Nc, K, (K + 1) / 2, A, a_layout_for(M, (K + 1) / 2, sam), B, c, ldc, accumulate, alpha, par);
    }
#else
    (void)scratch;
    (void)gpack_plain;
    gemm_plain(M, Nc, K, alpha, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, par);
#endif
}

void tern_gemm_bf16(int M, int Nc, int K, const float *a, long sam, long sak, const float *b, long sbk, long sbn, float *c, int ldc,
                    int accumulate, void *scratch, tern_gemm_kind kind) {
    gemm_bf16(M, Nc, K, 1.0f, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, scratch, kind, 1);
}

void tern_gemm_bf16_serial(int M, int Nc, int K, float alpha, const float *a, long sam, long sak, const float *b, long sbk, long sbn,
                           float *c, int ldc, int accumulate, void *scratch, tern_gemm_kind kind) {
    gemm_bf16(M, Nc, K, alpha, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, scratch, kind, 0);
}

// ------------------------------------------------------------------ B packed once
size_t tern_gemm_bf16_bpack_bytes(int Nc, int K) { return Nc > 0 && K > 0 ? b_bytes(Nc, K) : 0; }

void tern_gemm_bf16_bpack(int Nc, int K, const float *b, long sbk, long sbn, void *bp, tern_gemm_kind kind) {
    if (Nc <= 0 || K <= 0) return;
    if (kind == TERN_GEMM_AUTO || !tern_gemm_available(kind)) kind = tern_gemm_best();
    if (kind == TERN_GEMM_PLAIN) return;   // the plain level reads b itself
#ifdef GEMM_X86
    if (kind == TERN_GEMM_AVX512BF16) gpack512(0, Nc, K, NULL, 1, 1, b, sbk, sbn, NULL, bp, 0);
    else gpack_plain(0, Nc, K, NULL, 1, 1, b, sbk, sbn, NULL, bp, 0);
#else
    (void)b; (void)sbk; (void)sbn; (void)bp;
#endif
}

void tern_gemm_bf16_serial_bp(int M, int Nc, int K, float alpha, const float *a, long sam, long sak, const float *b, long sbk, long sbn,
                              const void *bp, int Kp, float *c, int ldc, int accumulate, void *scratch, tern_gemm_kind kind) {
    if (M <= 0 || Nc <= 0) return;
    if (K <= 0 || (K % 2 && K != Kp) || K > Kp) {   // outside the packed operand's contract: pack here
        gemm_bf16(M, Nc, K, alpha, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, scratch, kind, 0);
        return;
    }
    if (kind == TERN_GEMM_AUTO || !tern_gemm_available(kind)) kind = tern_gemm_best();
    if (kind == TERN_GEMM_PLAIN) {
        gemm_plain(M, Nc, K, alpha, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, 0);
        return;
    }
#ifdef GEMM_X86
    uint32_t *A = scratch;
    if (kind == TERN_GEMM_AVX512BF16) {
        gpack512(M, 0, K, a, sam, sak, NULL, 1, 1, A, NULL, 0);
        dw_avx512bf16(M, Nc, K, (Kp + 1) / 2, A, a_layout_for(M, (K + 1) / 2, sam), bp, c, ldc, accumulate, alpha, 0);
    } else {
        gpack_plain(M, 0, K, a, sam, sak, NULL, 1, 1, A, NULL, 0);
        dw_avx2(M, Nc, K, (Kp + 1) / 2, A, a_layout_for(M, (K + 1) / 2, sam), bp, c, ldc, accumulate, alpha, 0);
    }
#else
    (void)bp;
    (void)scratch;
    gemm_plain(M, Nc, K, alpha, a, sam, sak, b, sbk, sbn, c, ldc, accumulate, 0);
#endif
}
