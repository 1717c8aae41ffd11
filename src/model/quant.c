// quant.c — BitNet b1.58 weight (absmean ternary) and activation (absmax int8) quantizers.
#include "model/quant.h"
#include "kernels/kernels.h"
#include "util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__)
#include <arm_neon.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define SCALE_CHUNK 65536

float tern_weight_scale(const float *w, long n) {
    if (n <= 0) return TERN_QUANT_EPS;
    long nchunk = (n + SCALE_CHUNK - 1) / SCALE_CHUNK;
    double stack_part[64];
    double *part = nchunk <= 64 ? stack_part : malloc(sizeof(double) * (size_t)nchunk);
    if (!part) abort();
    #pragma omp parallel for schedule(static) if (n > 4 * SCALE_CHUNK)
    for (long c = 0; c < nchunk; c++) {
        long lo = c * SCALE_CHUNK, hi = lo + SCALE_CHUNK < n ? lo + SCALE_CHUNK : n;
        double acc = 0.0;
        for (long i = lo; i < hi; i++) acc += fabsf(w[i]);
        part[c] = acc;
    }
    double total = 0.0;
    for (long c = 0; c < nchunk; c++) total += part[c];
    if (part != stack_part) free(part);
    float s = (float)(total / (double)n);
    return s > TERN_QUANT_EPS ? s : TERN_QUANT_EPS;
}

static inline float ternary_of(float w, float s) {
    float q = rintf(w / s) + 0.0f; // + 0.0f turns -0 into +0
    return q > 1.0f ? 1.0f : (q < -1.0f ? -1.0f : q);
}

void tern_weight_quantize(const float *w, long n, float s, float *wq) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) wq[i] = ternary_of(w[i], s);
}

// Wq straight into the int8 x ternary kernels' layout, without the float copy: row r of the
// packed matrix is row r of W (transposed 0: [rows M, cols K]) or column r of W (transposed 1:
// [rows K, cols M], for the input gradient dy . Wq). Codes rint-clipped like tern_weight_quantize,
// so the bytes equal tern_tmat_pack_f32 of its output. Rows go in groups of 16: a group of the
// transposed matrix reads one 64-byte line of each row of W.
#define PACK_GROUP 16
// codes (w + 1 in {0,1,2}) of n weights, written with comparisons so that the loop vectorizes:
// q = rint(w / s) is an integer, so clip(q, -1, 1) + 1 = 1 + (q > 0.5) - (q < -0.5) (NaN: 1)
static inline void ternary_codes(const float *w, int n, float s, uint8_t *c) {
    for (int i = 0; i < n; i++) {
        const float q = rintf(w[i] / s);
        c[i] = (uint8_t)(1 + (q > 0.5f) - (q < -0.5f));
    }
}
void tern_weight_pack_tmat(const float *w, int M, int K, float s, int transposed, tern_tmat *m, void *buf) {
    const int rows = transposed ? K : M, cols = transposed ? M : K;
    tern_tmat_init(m, buf, rows, cols, s);
    const int ngroup = (rows + PACK_GROUP - 1) / PACK_GROUP;
    #pragma omp parallel if ((long)M * K >= 65536)
    {
        // per thread: one row of codes, and (transposed) the group's codes column by column
        uint8_t *row = tern_xmalloc((size_t)cols), *colc = transposed ? tern_xmalloc((size_t)PACK_GROUP * (size_t)cols) : NULL;
        #pragma omp for schedule(static)
        for (int gi = 0; gi < ngroup; gi++) {
            const int r0 = gi * PACK_GROUP, nr = rows - r0 < PACK_GROUP ? rows - r0 : PACK_GROUP;
            if (transposed) // column c of the group: W[c][r0 .. r0+nr), one line of W's row c
                for (int c = 0; c < cols; c++) ternary_codes(w + (size_t)c * K + r0, nr, s, colc + (size_t)c * PACK_GROUP);
            for (int i = 0; i < nr; i++) {
                if (transposed)
                    for (int c = 0; c < cols; c++) row[c] = colc[(size_t)c * PACK_GROUP + i];
                else
                    ternary_codes(w + (size_t)(r0 + i) * K, cols, s, row);
                tern_tmat_set_row_codes(m, r0 + i, row);
            }
        }
        free(row);
        free(colc);
    }
}

void tern_weight_quantize_i8(const float *w, long n, float s, int8_t *wq) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) wq[i] = (int8_t)ternary_of(w[i], s);
}

// max |x| in 16 lanes (vectorizes; max is exact in any order, so the result is the same as a
// sequential scan: NaNs are skipped either way)
static inline float abs_max(const float *x, int n) {
    float m = 0.0f;
    int i = 0;
#if defined(__aarch64__)
    // NEON: fmaxnm skips a NaN like the comparison below; same maximum, same scale
    float32x4_t v0 = vdupq_n_f32(0), v1 = v0, v2 = v0, v3 = v0;
    for (; i + 16 <= n; i += 16) {
        v0 = vmaxnmq_f32(v0, vabsq_f32(vld1q_f32(x + i)));
        v1 = vmaxnmq_f32(v1, vabsq_f32(vld1q_f32(x + i + 4)));
        v2 = vmaxnmq_f32(v2, vabsq_f32(vld1q_f32(x + i + 8)));
        v3 = vmaxnmq_f32(v3, vabsq_f32(vld1q_f32(x + i + 12)));
    }
    m = vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(v0, v1), vmaxnmq_f32(v2, v3)));
#else
    float lane[16] = {0};
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) { float a = fabsf(x[i + j]); lane[j] = a > lane[j] ? a : lane[j]; }
    for (int j = 0; j < 16; j++) m = lane[j] > m ? lane[j] : m;
#endif
    for (; i < n; i++) { float a = fabsf(x[i]); m = a > m ? a : m; }
    return m;
}

static inline float act_scale(const float *x, int n) {
    const float m = abs_max(x, n);
    return 127.0f / (m > TERN_QUANT_EPS ? m : TERN_QUANT_EPS);
}

// round, clamp to [-128, 127], NaN -> 0 (as NEON's conversion does): quant.h's one conversion;
// the integer result also turns -0 into +0
static inline float int8_of(float x, float s) { return (float)tern_rint_clamp(x * s, -128, 127); }

float tern_act_quantize_row(const float *x, int n, float *xq) {
    float s = act_scale(x, n);
    for (int i = 0; i < n; i++) xq[i] = int8_of(x[i], s);
    return s;
}

#if defined(__x86_64__)
// x86: the same conversion 16 (AVX-512) or 32 (AVX2) values at a time: x * s rounded half to even
// (roundscale / round with the nearest mode = rintf in the default rounding mode), NaN -> 0 (an
// ordered-compare mask), clamped to [-128, 127] (exact integers), converted and narrowed (no
// saturation left to do). Elements i0..; returns where the scalar tail starts.
__attribute__((target("avx512f,avx512bw"))) static int act_i8_avx512(const float *x, int n, float s, int8_t *xq) {
    const __m512 sv = _mm512_set1_ps(s), lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, r, _CMP_ORD_Q), r);
        r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
        _mm_storeu_si128((__m128i *)(xq + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r)));
    }
    return i;
}
__attribute__((target("avx2"))) static int act_i8_avx2(const float *x, int n, float s, int8_t *xq) {
    const __m256 sv = _mm256_set1_ps(s), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i q[4];
        for (int j = 0; j < 4; j++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), sv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));
            q[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
        }
        // packs work within 128-bit lanes: the 4-byte groups come out as 0 2 4 6 1 3 5 7
        const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(xq + i), _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
    return i;
}
#endif

// x * s to int8 (round half to even, clamp to [-128, 127], NaN -> 0), SIMD where the kernel
// level allows; every path gives the scalar int8_of's integers
static void quantize_row_i8_with(const float *x, int n, float s, int8_t *xq) {
    int i = 0;
#if defined(__x86_64__)
    // the kernel level (kernels.h: TERN_KERNEL / tern_kernel_force pick it, as for the products)
    const tern_kernel_kind k = tern_kernel_best();
    if (k == TERN_KERNEL_AVX512VNNI) i = act_i8_avx512(x, n, s, xq);
    else if (k == TERN_KERNEL_AVX2 || k == TERN_KERNEL_AVXVNNI) i = act_i8_avx2(x, n, s, xq);
#elif defined(__aarch64__)
    // NEON, 16 at a time: round half to even (frintn, = rintf in the default rounding mode), convert
    // (exact: an integer), narrow with saturation (= the clamp to [-128, 127]; a NaN converts to 0
    // on both paths)
    const float32x4_t sv = vdupq_n_f32(s);
    for (; i + 16 <= n; i += 16) {
        int32x4_t q[4];
        for (int j = 0; j < 4; j++) q[j] = vcvtq_s32_f32(vrndnq_f32(vmulq_f32(vld1q_f32(x + i + 4 * j), sv)));
        const int16x8_t lo = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1])), hi = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
        vst1q_s8(xq + i, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
    }
#endif
    for (; i < n; i++) xq[i] = (int8_t)int8_of(x[i], s);
}

float tern_act_quantize_row_i8(const float *x, int n, int8_t *xq) {
    const float s = act_scale(x, n);
    quantize_row_i8_with(x, n, s, xq);
    return s;
}

// |x * s| <= 127 here (s = 127 / max|x| rounded, |x| <= max|x|: the product rounds to at most
// 127 + 2^-17), so the conversion's clamp at -128 never applies: the integers are in [-127, 127]
float tern_grad_quantize_row_i8(const float *d, int n, int8_t *q) {
    const float m = abs_max(d, n), s = m > 0.0f ? 127.0f / m : 0.0f;
    if (!(s > 0.0f) || isinf(s)) {
        memset(q, 0, (size_t)(n > 0 ? n : 0));
        return 1.0f;
    }
    quantize_row_i8_with(d, n, s, q);
    return s;
}
