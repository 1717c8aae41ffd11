// vmath.c — exp for softmax, cross-entropy and SiLU (see vmath.h). Cephes-style: n = rint(x log2 e),
// r = x - n ln2 in two parts (fused multiply-adds), e^r = 1 + r + r^2 P(r) by Horner in fused
// multiply-adds, times 2^n built in two halves (2^(n/2) * 2^(n - n/2)) so every n in [-126, 128]
// is exact.
//
// Every level — plain C (scalar fmaf), AVX2, AVX-512, NEON — runs exactly this sequence of
// correctly rounded operations (each fused multiply-add rounds once on every ISA; min/max, the
// rounding to an integer and the 2^n scaling are exact), so they all give the same bits; the row
// sums add element i into lane i % 16 and then the 16 lanes pairwise (tern_lanes_sum's order),
// whatever the vector width. tests/test_vmath.c compares every level with plain C bit for bit.
#include "kernels/vmath.h"
#include "kernels/rowops.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VMATH_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define VMATH_NEON 1
#endif

#define EXP_HI 88.72283935546875f     // largest x with finite expf
#define EXP_LO -87.33654022216797f    // exp(EXP_LO) = FLT_MIN
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f

// ---------------------------------------------------------------- plain C (the reference order)
static float pow2i(int n) {   // 2^n for -126 <= n + 127 <= 254, exact
    const uint32_t b = (uint32_t)(n + 127) << 23;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static float exp_plain(float x) {
    if (x != x) return x + x;
    if (x > EXP_HI) return INFINITY;
    if (x < EXP_LO) return 0.0f;
    const float n = rintf(x * LOG2E);
    float r = fmaf(-n, LN2_HI, x);
    r = fmaf(-n, LN2_LO, r);
    float p = fmaf(P0, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    const float pr = p * r;
    float y = fmaf(pr, r, r) + 1.0f;
    const int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;
    y = y * pow2i(n1);
    return y * pow2i(n2);
}

static float vexp_shift_plain(const float *x, float c, float *y, long n) {
    float acc[TERN_LANES] = {0};
    for (long i = 0; i < n; i++) {
        const float e = exp_plain(x[i] - c);
        if (y) y[i] = e;
        acc[i % TERN_LANES] += e;
    }
    return tern_lanes_sum(acc);
}

static void vsigmoid_plain(const float *x, float *s, long n) {
    for (long i = 0; i < n; i++) s[i] = 1.0f / (1.0f + exp_plain(0.0f - x[i]));
}

#ifdef VMATH_X86
#define T512 __attribute__((target("avx512f,avx512dq")))
#define T256 __attribute__((target("avx2,fma")))

static inline __attribute__((always_inline)) T512 __m512 exp512(__m512 x) {
    const __m512 hi = _mm512_set1_ps(EXP_HI), lo = _mm512_set1_ps(EXP_LO);
    const __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ),
                    nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(P0), r, _mm512_set1_ps(P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    const __m512i ni = _mm512_cvtps_epi32(n), n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
    const __m512i bias = _mm512_set1_epi32(127);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23)));
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23)));
    y = _mm512_mask_blend_ps(over, y, _mm512_set1_ps(INFINITY));
    y = _mm512_mask_blend_ps(under, y, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(nan, y, _mm512_add_ps(x, x));
}

static inline __attribute__((always_inline)) T256 __m256 exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(EXP_HI), lo = _mm256_set1_ps(EXP_LO);
    const __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ), under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(P0), r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23)));
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23)));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), under);
    return _mm256_blendv_ps(y, _mm256_add_ps(x, x), nan);
}

static T512 float vexp_shift512(const float *x, float c, float *y, long n) {
    const __m512 cv = _mm512_set1_ps(c);
    __m512 s = _mm512_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), cv));
        if (y) _mm512_storeu_ps(y + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {   // tail: lanes past n add +0 (no change: the lane sums are >= +0)
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), cv));
        e = _mm512_maskz_mov_ps(k, e);
        if (y) _mm512_mask_storeu_ps(y + i, k, e);
        s = _mm512_add_ps(s, e);
    }
    float acc[TERN_LANES];
    _mm512_storeu_ps(acc, s);
    return tern_lanes_sum(acc);
}

// blocks of 64: each block's 4 vectors summed from +0 in order (as vexp_shift512's loop), then
// its 16 lanes pairwise in tern_lanes_sum's order (lanes j + 8, j + 4, j + 2, j + 1) with
// shuffles; a partial last block masked as vexp_shift512's tail
static T512 void vexp_shift_blocks512(const float *x, float c, float *y, long n, float *bsum) {
    const __m512 cv = _mm512_set1_ps(c);
    for (long b = 0; 64 * b < n; b++) {
        const long i0 = 64 * b, nb = n - i0 < 64 ? n - i0 : 64;
        __m512 s = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const long nj = nb - 16 * j;
            if (nj <= 0) break;
            const __mmask16 k = nj >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nj) - 1);
            __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i0 + 16 * j), cv));
            e = _mm512_maskz_mov_ps(k, e);
            _mm512_mask_storeu_ps(y + i0 + 16 * j, k, e);
            s = _mm512_add_ps(s, e);
        }
        const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
        const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
        const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        bsum[b] = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
    }
}

// 16 lanes as two 8-lane halves: lo = lanes 0-7, hi = lanes 8-15
static T256 float vexp_shift256(const float *x, float c, float *y, long n) {
    const __m256 cv = _mm256_set1_ps(c);
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 e0 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), cv)), e1 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), cv));
        if (y) {
            _mm256_storeu_ps(y + i, e0);
            _mm256_storeu_ps(y + i + 8, e1);
        }
        lo = _mm256_add_ps(lo, e0);
        hi = _mm256_add_ps(hi, e1);
    }
    float acc[TERN_LANES];
    _mm256_storeu_ps(acc, lo);
    _mm256_storeu_ps(acc + 8, hi);
    if (i < n) {   // tail through the same vector code, into lanes 0 .. n-i-1
        float in[TERN_LANES] = {0}, out[TERN_LANES];
        for (long j = i; j < n; j++) in[j - i] = x[j];
        _mm256_storeu_ps(out, exp256(_mm256_sub_ps(_mm256_loadu_ps(in), cv)));
        _mm256_storeu_ps(out + 8, exp256(_mm256_sub_ps(_mm256_loadu_ps(in + 8), cv)));
        for (long j = i; j < n; j++) {
            if (y) y[j] = out[j - i];
            acc[j - i] += out[j - i];
        }
    }
    return tern_lanes_sum(acc);
}

static T512 void vsigmoid512(const float *x, float *s, long n) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(s + i, _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(zero, _mm512_loadu_ps(x + i))))));
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(zero, _mm512_maskz_loadu_ps(k, x + i)))));
        _mm512_mask_storeu_ps(s + i, k, v);
    }
}

static T256 void vsigmoid256(const float *x, float *s, long n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(s + i, _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, _mm256_loadu_ps(x + i))))));
    if (i < n) {
        float in[8] = {0}, out[8];
        for (long j = i; j < n; j++) in[j - i] = x[j];
        _mm256_storeu_ps(out, _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, _mm256_loadu_ps(in))))));
        for (long j = i; j < n; j++) s[j] = out[j - i];
    }
}
#endif

#ifdef VMATH_NEON
// NEON: the same operations (vfmaq/vfmsq are fused like x86's FMA; vrndnq rounds to nearest even
// like roundscale; vcvtq truncates an integral value exactly)
static inline __attribute__((always_inline)) float32x4_t exp128(float32x4_t x) {
    const float32x4_t hi = vdupq_n_f32(EXP_HI), lo = vdupq_n_f32(EXP_LO);
    const uint32x4_t over = vcgtq_f32(x, hi), under = vcltq_f32(x, lo), num = vceqq_f32(x, x);
    const float32x4_t xc = vminq_f32(vmaxq_f32(x, lo), hi);
    const float32x4_t n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(LOG2E)));
    float32x4_t r = vfmsq_f32(xc, n, vdupq_n_f32(LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    float32x4_t p = vfmaq_f32(vdupq_n_f32(P1), vdupq_n_f32(P0), r);
    p = vfmaq_f32(vdupq_n_f32(P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(P5), p, r);
    float32x4_t y = vaddq_f32(vfmaq_f32(r, vmulq_f32(p, r), r), vdupq_n_f32(1.0f));
    const int32x4_t ni = vcvtq_s32_f32(n), n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const int32x4_t bias = vdupq_n_s32(127);
    y = vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23)));
    y = vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23)));
    y = vbslq_f32(over, vdupq_n_f32(INFINITY), y);
    y = vbslq_f32(under, vdupq_n_f32(0.0f), y);
    return vbslq_f32(num, y, vaddq_f32(x, x));
}

static float vexp_shift_neon(const float *x, float c, float *y, long n) {
    const float32x4_t cv = vdupq_n_f32(c);
    float32x4_t s[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};   // lanes 4j .. 4j+3
    long i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 4; j++) {
            const float32x4_t e = exp128(vsubq_f32(vld1q_f32(x + i + 4 * j), cv));
            if (y) vst1q_f32(y + i + 4 * j, e);
            s[j] = vaddq_f32(s[j], e);
        }
    float acc[TERN_LANES];
    for (int j = 0; j < 4; j++) vst1q_f32(acc + 4 * j, s[j]);
    if (i < n) {   // tail through the same vector code, into lanes 0 .. n-i-1
        float in[TERN_LANES] = {0}, out[TERN_LANES];
        for (long j = i; j < n; j++) in[j - i] = x[j];
        for (int j = 0; j < 4; j++) vst1q_f32(out + 4 * j, exp128(vsubq_f32(vld1q_f32(in + 4 * j), cv)));
        for (long j = i; j < n; j++) {
            if (y) y[j] = out[j - i];
            acc[j - i] += out[j - i];
        }
    }
    return tern_lanes_sum(acc);
}

static void vsigmoid_neon(const float *x, float *s, long n) {
    const float32x4_t one = vdupq_n_f32(1.0f), zero = vdupq_n_f32(0.0f);
    long i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(s + i, vdivq_f32(one, vaddq_f32(one, exp128(vsubq_f32(zero, vld1q_f32(x + i))))));
    if (i < n) {
        float in[4] = {0}, out[4];
        for (long j = i; j < n; j++) in[j - i] = x[j];
        vst1q_f32(out, vdivq_f32(one, vaddq_f32(one, exp128(vsubq_f32(zero, vld1q_f32(in))))));
        for (long j = i; j < n; j++) s[j] = out[j - i];
    }
}
#endif

// ---------------------------------------------------------------- dispatch
static int g_level = -2;   // -2: not yet detected

static int cpu_level(void) {
#ifdef VMATH_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#elif defined(VMATH_NEON)
    return 1;   // Advanced SIMD is part of ARMv8-A (the AArch64 baseline)
#endif
    return 0;
}

static int level(void) {
    int l = __atomic_load_n(&g_level, __ATOMIC_RELAXED);
    if (l == -2) {
        l = cpu_level();
        __atomic_store_n(&g_level, l, __ATOMIC_RELAXED);
    }
    return l;
}

int tern_vmath_force(int lv) {
    int best = cpu_level();
    if (lv < 0) lv = best;
    if (lv > best) return -1;
    __atomic_store_n(&g_level, lv, __ATOMIC_RELAXED);
    return 0;
}

float tern_vexp_shift(const float *x, float c, float *y, long n) {
    switch (level()) {
#ifdef VMATH_X86
    case 2: return vexp_shift512(x, c, y, n);
    case 1: return vexp_shift256(x, c, y, n);
#elif defined(VMATH_NEON)
    case 1: return vexp_shift_neon(x, c, y, n);
#endif
    default: return vexp_shift_plain(x, c, y, n);
    }
}

void tern_vexp_shift_blocks64(const float *x, float c, float *y, long n, float *bsum) {
#ifdef VMATH_X86
    if (level() == 2) {
        vexp_shift_blocks512(x, c, y, n, bsum);
        return;
    }
#endif
    for (long b = 0; 64 * b < n; b++) bsum[b] = tern_vexp_shift(x + 64 * b, c, y + 64 * b, n - 64 * b < 64 ? n - 64 * b : 64);
}

void tern_vsigmoid(const float *x, float *s, long n) {
    switch (level()) {
#ifdef VMATH_X86
    case 2: vsigmoid512(x, s, n); break;
    case 1: vsigmoid256(x, s, n); break;
#elif defined(VMATH_NEON)
    case 1: vsigmoid_neon(x, s, n); break;
#endif
    default: vsigmoid_plain(x, s, n);
    }
}
