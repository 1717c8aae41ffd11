// vmath.c — vectorized exp (see vmath.h). Cephes-style: n = rint(x log2 e), r = x - n ln2 in two
// parts, e^r = 1 + r + r^2 P(r), times 2^n built in two halves (2^(n/2) * 2^(n - n/2)) so every
// n in [-126, 128] is exact.
#include "kernels/vmath.h"
#include <immintrin.h>
#include <math.h>

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

// ---------------------------------------------------------------- dispatch
static int g_level = -2;   // -2: not yet detected

static int cpu_level(void) {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
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

// ---------------------------------------------------------------- row functions
static T512 float vexp_shift512(const float *x, float c, float *y, long n) {
    const __m512 cv = _mm512_set1_ps(c);
    __m512 s = _mm512_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), cv));
        if (y) _mm512_storeu_ps(y + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), cv));
        e = _mm512_maskz_mov_ps(k, e);
        if (y) _mm512_mask_storeu_ps(y + i, k, e);
        s = _mm512_add_ps(s, e);
    }
    return _mm512_reduce_add_ps(s);
}

static T256 float vexp_shift256(const float *x, float c, float *y, long n) {
    const __m256 cv = _mm256_set1_ps(c);
    __m256 s = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), cv));
        if (y) _mm256_storeu_ps(y + i, e);
        s = _mm256_add_ps(s, e);
    }
    float t[8];
    _mm256_storeu_ps(t, s);
    float sum = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
    if (i < n) {   // tail through the same vector code
        float in[8] = {0}, out[8];
        for (long j = i; j < n; j++) in[j - i] = x[j];
        _mm256_storeu_ps(out, exp256(_mm256_sub_ps(_mm256_loadu_ps(in), cv)));
        for (long j = i; j < n; j++) {
            if (y) y[j] = out[j - i];
            sum += out[j - i];
        }
    }
    return sum;
}

static float vexp_shift_libm(const float *x, float c, float *y, long n) {
    float s = 0.0f;
    for (long i = 0; i < n; i++) {
        float e = expf(x[i] - c);
        if (y) y[i] = e;
        s += e;
    }
    return s;
}

float tern_vexp_shift(const float *x, float c, float *y, long n) {
    switch (level()) {
    case 2: return vexp_shift512(x, c, y, n);
    case 1: return vexp_shift256(x, c, y, n);
    default: return vexp_shift_libm(x, c, y, n);
    }
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

void tern_vsigmoid(const float *x, float *s, long n) {
    switch (level()) {
    case 2: vsigmoid512(x, s, n); break;
    case 1: vsigmoid256(x, s, n); break;
    default:
        for (long i = 0; i < n; i++) s[i] = 1.0f / (1.0f + expf(-x[i]));
    }
}
