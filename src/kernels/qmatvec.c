// qmatvec.c — logits-matrix products for ggml weight types: plain C reference; x86-64: AVX2,
// AVX-VNNI, AVX-512; AArch64: NEON, dotprod (other architectures: the plain code).
// The arithmetic every level must follow, operation by operation, is defined in qmatvec.h; the
// Makefile builds this file with -ffp-contract=off so no compiler fuses a multiply and an add.
// Level dispatch as in kernels.c (tern_kernel_kind, resolved through tern_kernel_best()).
//
// All SIMD paths compute the same exact integer sums as the plain code (x86: u8 x s8 products via
// vpmaddubsw / vpdpbusd, int16 pair sums that cannot saturate: |q| <= 127 for activations, <= 128
// for Q8_0 weights, <= 63 for 6-bit ones; ARM: s8 x s8 via smull + saddlp or sdot), then the same
// float operations in the same order. The float and k-quant heads are done four rows at a time
// (four independent accumulator chains; each row's own order is unchanged; AVX-512 also takes up
// to four tokens per call, rowsT_avx512); the Q8_0 head in its 16-row layout a row group at a
// time (group*_*: one vector lane per row, up to 8 tokens per pass).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif
#include "kernels/qmatvec.h"
#include "formats/ggml_types.h"
#include "model/quant.h"
#include "util.h"
#if defined(__x86_64__) || defined(__i386__)
#define QM_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define QM_X86 0
#endif
#if defined(__aarch64__)
#define QM_ARM 1
#include <arm_neon.h>
#else
#define QM_ARM 0
#endif
#include <math.h>
#include <string.h>

int tern_qmat_supported(int type) {
    switch (type) {
    case TERN_GGML_F32: case TERN_GGML_F16: case TERN_GGML_BF16: case TERN_GGML_Q8_0: case TERN_QMAT_Q8_0X:
    case TERN_GGML_Q4_K: case TERN_GGML_Q5_K: case TERN_GGML_Q6_K: return 1;
    default: return 0;
    }
}

int tern_qmat_layout(int type) { return type == TERN_GGML_Q8_0 ? TERN_QMAT_Q8_0X : type; }

size_t tern_qmat_bytes(int layout, int rows, size_t row_bytes) {
    return (layout == TERN_QMAT_Q8_0X ? ((size_t)rows + 15) / 16 * 16 : (size_t)rows) * row_bytes;
}

// byte offset of row r's block b in the TERN_QMAT_Q8_0X layout (qmatvec.h): row r's weights
// 4c..4c+3 of the block at + 64 c + 4 (r % 16), its scale at + 512 + 2 (r % 16)
static size_t qx_block(int r, int b, size_t row_bytes) {
    return (size_t)(r / 16) * 16 * row_bytes + (size_t)b * TERN_QMAT_Q8_0X_BLOCK;
}

void tern_qmat_repack_row(int type, const void *row, size_t row_bytes, int n, int rows, int r, void *dst) {
    const uint8_t *sr = row;
    uint8_t *d = dst;
    if (type != TERN_GGML_Q8_0) {
        memcpy(d + (size_t)r * row_bytes, sr, row_bytes);
        return;
    }
    const int i = r % 16;
    for (int b = 0; b < n / 32; b++) {
        uint8_t *B = d + qx_block(r, b, row_bytes);
        const uint8_t *s = sr + TERN_Q8_0_BYTES * (size_t)b;
        for (int c = 0; c < 8; c++)
            for (int j = 0; j < 4; j++) B[64 * c + 4 * i + j] = s[2 + 4 * c + j] ^ 0x80;
        memcpy(B + 512 + 2 * i, s, 2);
    }
    if (r == rows - 1)   // the padding rows of the last group: zero
        for (int b = 0; b < n / 32; b++) {
            uint8_t *B = d + qx_block(r, b, row_bytes);
            for (int p = i + 1; p < 16; p++) {
                for (int c = 0; c < 8; c++) memset(B + 64 * c + 4 * p, 0, 4);
                memset(B + 512 + 2 * p, 0, 2);
            }
        }
}

void tern_qmat_repack(int type, const void *src, size_t row_bytes, int n, int rows, int r0, int r1, void *dst) {
    for (int r = r0; r < r1; r++) tern_qmat_repack_row(type, (const uint8_t *)src + (size_t)r * row_bytes, row_bytes, n, rows, r, dst);
}

static int is_float(int type) { return type == TERN_GGML_F32 || type == TERN_GGML_F16 || type == TERN_GGML_BF16; }

// ------------------------------------------------------------------ activations (shared, plain C)
size_t tern_qvec_bytes(int n) {
    size_t q = ((size_t)n + 63) / 64 * 64, d = ((size_t)n / 32 + 16) * sizeof(float), b = ((size_t)n / 16 + 32) * sizeof(int16_t);
    return q + (d + 63) / 64 * 64 + b;
}

void tern_qvec_prepare(tern_qvec *v, int type, const float *x, int n, void *scratch) {
    memset(v, 0, sizeof *v);
    v->type = type;
    v->n = n;
    v->x = x;
    if (is_float(type)) return;
    uint8_t *s = scratch;
    v->q = (int8_t *)s;
    v->d = (float *)(s + ((size_t)n + 63) / 64 * 64);
    v->bsum = (int16_t *)((uint8_t *)v->d + (((size_t)n / 32 + 16) * sizeof(float) + 63) / 64 * 64);
    if (type == TERN_GGML_Q8_0 || type == TERN_QMAT_Q8_0X) {
        for (int b = 0; b < n / 32; b++) {
            const float *xb = x + 32 * b;
            float amax = 0.0f;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
            v->bsum[b] = 0;
            if (amax == 0.0f) {
                v->d[b] = 0.0f;
                memset(v->q + 32 * b, 0, 32);
                continue;
            }
            v->d[b] = amax / 127.0f;
            const float id = 127.0f / amax;
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                v->q[32 * b + i] = (int8_t)tern_rint_clamp(xb[i] * id, -127, 127);
                sum += v->q[32 * b + i];
            }
            v->bsum[b] = (int16_t)sum;
        }
        return;
    }
    for (int b = 0; b < n / 256; b++) {   // Q8_K
        const float *xb = x + 256 * b;
        float amax = 0.0f, mx = 0.0f;
        for (int i = 0; i < 256; i++)
            if (fabsf(xb[i]) > amax) { amax = fabsf(xb[i]); mx = xb[i]; }
        int8_t *q = v->q + 256 * b;
        if (amax == 0.0f) {
            v->d[b] = 0.0f;
            memset(q, 0, 256);
        } else {
            const float iscale = -127.0f / mx;
            for (int i = 0; i < 256; i++) {
                q[i] = (int8_t)tern_rint_clamp(iscale * xb[i], -127, 127);
            }
            v->d[b] = 1.0f / iscale;
        }
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += q[16 * k + i];
            v->bsum[16 * b + k] = (int16_t)sum;
        }
    }
}

// ------------------------------------------------------------------ shared scalar pieces
static float reduce16(float *L) {
    for (int s = 8; s >= 1; s /= 2)
        for (int i = 0; i < s; i++) L[i] = L[i] + L[i + s];
    return L[0];
}
static float h16(const uint8_t *p) { return tern_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }
static void k4_scales(const uint8_t *s, int *sc, int *m) {   // the 8 6-bit scales and mins of a Q4_K/Q5_K block
    for (int j = 0; j < 8; j++) {
        if (j < 4) { sc[j] = s[j] & 63; m[j] = s[j + 4] & 63; }
        else { sc[j] = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4; m[j] = (s[j + 4] >> 4) | (s[j] >> 6) << 4; }
    }
}
// the same 6-bit scales and mins with 32-bit word operations (the SIMD paths): out[0..7] = sc,
// out[8..15] = m. Words S0..S2 = bytes 0-3, 4-7, 8-11: sc 0-3 = S0 & 63, m 0-3 = S1 & 63 (per
// byte); sc 4-7 = (S2 & 15) | (S0 >> 6) << 4, m 4-7 = (S2 >> 4) | (S1 >> 6) << 4.
static inline void k4_unpack(const uint8_t *s, uint8_t *out) {
    uint32_t S[3], o[4];
    memcpy(S, s, 12);
    o[0] = S[0] & 0x3f3f3f3fu;
    o[1] = (S[2] & 0x0f0f0f0fu) | ((S[0] >> 2) & 0x30303030u);
    o[2] = S[1] & 0x3f3f3f3fu;
    o[3] = ((S[2] >> 4) & 0x0f0f0f0fu) | ((S[1] >> 2) & 0x30303030u);
    memcpy(out, o, 16);
}

static float wval(int type, const uint8_t *w, int i) {
    if (type == TERN_GGML_F32) { float f; memcpy(&f, w + 4 * (size_t)i, 4); return f; }
    uint16_t h = (uint16_t)(w[2 * (size_t)i] | w[2 * (size_t)i + 1] << 8);
    return type == TERN_GGML_F16 ? tern_fp16_to_fp32(h) : tern_bf16_to_fp32(h);
}
// the scalar tail of a float row (elements from i0 on) into the lanes, then reduce16
static float float_tail(int type, const uint8_t *w, const float *x, int i0, int n, float *L) {
    for (int i = i0; i < n; i++) L[i & 15] = L[i & 15] + wval(type, w, i) * x[i];
    return reduce16(L);
}
// K-quant correction terms from the activation block sums
static int32_t q6_corr(const int8_t *sc, const int16_t *bs) {
    int32_t c = 0;
    for (int j = 0; j < 16; j++) c += (int32_t)sc[j] * bs[j];
    return 32 * c;
}
static int32_t k4_min_sum(const int *m, const int16_t *bs) {
    int32_t c = 0;
    for (int j = 0; j < 8; j++) c += (int32_t)m[j] * (bs[2 * j] + bs[2 * j + 1]);
    return c;
}

// ------------------------------------------------------------------ plain C reference
static float row_plain(int type, const uint8_t *w, const tern_qvec *v) {
    const int n = v->n;
    if (is_float(type)) {
        float L[16] = {0};
        return float_tail(type, w, v->x, 0, n, L);
    }
    if (type == TERN_GGML_Q8_0) {
        float acc = 0.0f;
        for (int b = 0; b < n / 32; b++) {
            const uint8_t *blk = w + TERN_Q8_0_BYTES * (size_t)b;
            const int8_t *qw = (const int8_t *)(blk + 2), *qx = v->q + 32 * b;
            int32_t I = 0;
            for (int i = 0; i < 32; i++) I += (int32_t)qw[i] * qx[i];
            acc = acc + (float)I * (h16(blk) * v->d[b]);
        }
        return acc;
    }
    float acc = 0.0f;
    for (int b = 0; b < n / 256; b++) {
        const int8_t *qx = v->q + 256 * b;
        const float dx = v->d[b];
        if (type == TERN_GGML_Q6_K) {
            const uint8_t *blk = w + TERN_Q6_K_BYTES * (size_t)b, *ql = blk, *qh = blk + 128;
            const int8_t *sc = (const int8_t *)(blk + 192);
            int32_t I = 0;
            for (int j = 0; j < 16; j++) {
                int32_t s = 0;
                for (int i = 16 * j; i < 16 * j + 16; i++) {
                    const int h = i / 128, r = i % 128, quad = r / 32, l = r % 32;
                    const int lo = (ql[64 * h + l + 32 * (quad & 1)] >> (4 * (quad >> 1))) & 15;
                    const int hi = (qh[32 * h + l] >> (2 * quad)) & 3;
                    s += (lo | hi << 4) * qx[i];
                }
                I += sc[j] * s;
            }
            I -= q6_corr(sc, v->bsum + 16 * b);
            acc = acc + (float)I * (h16(blk + 208) * dx);
        } else {
            const int five = type == TERN_GGML_Q5_K;
            const uint8_t *blk = w + (five ? TERN_Q5_K_BYTES : TERN_Q4_K_BYTES) * (size_t)b;
            const uint8_t *qh = blk + 16, *qs = blk + (five ? 48 : 16);
            int sc[8], m[8];
            k4_scales(blk + 4, sc, m);
            int32_t I1 = 0;
            for (int j = 0; j < 8; j++) {
                int32_t s = 0;
                for (int l = 0; l < 32; l++) {
                    int q = (qs[32 * (j / 2) + l] >> (4 * (j & 1))) & 15;
                    if (five) q |= ((qh[l] >> j) & 1) << 4;
                    s += q * qx[32 * j + l];
                }
                I1 += sc[j] * s;
            }
            const int32_t I2 = k4_min_sum(m, v->bsum + 16 * b);
            acc = acc + ((float)I1 * (h16(blk) * dx) - (float)I2 * (h16(blk + 2) * dx));
        }
    }
    return acc;
}

// TERN_QMAT_Q8_0X: the 16 rows of one group (G: its first block, nb blocks) against one token
static void group_plain(const uint8_t *G, int nb, const tern_qvec *v, float *out) {
    for (int i = 0; i < 16; i++) {
        float acc = 0.0f;
        for (int b = 0; b < nb; b++) {
            const uint8_t *B = G + (size_t)b * TERN_QMAT_Q8_0X_BLOCK;
            const int8_t *qx = v->q + 32 * b;
            int32_t I = 0;
            for (int c = 0; c < 8; c++)
                for (int j = 0; j < 4; j++) I += (int32_t)(int8_t)(B[64 * c + 4 * i + j] ^ 0x80) * qx[4 * c + j];
            acc = acc + (float)I * (h16(B + 512 + 2 * i) * v->d[b]);
        }
        out[i] = acc;
    }
}

#if QM_X86   // the vector levels (x86-64 only; elsewhere every kind runs the plain code)
// TERN_QMAT_Q8_0X kernels prefetch the block this many blocks ahead in their stream (8: ~4 KiB;
// measured best of 0-64 for one and eight tokens, the hardware prefetcher alone is 2x slower at 8)
#define QX_PREFETCH 8
// ------------------------------------------------------------------ AVX2
#define T256 __attribute__((target("avx2,fma,f16c")))

T256 static inline __m256 load8_f(int type, const uint8_t *w, int i) {
    if (type == TERN_GGML_F32) return _mm256_loadu_ps((const float *)(w + 4 * (size_t)i));
    __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * (size_t)i));
    if (type == TERN_GGML_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
T256 static inline int32_t hsum8_i32(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
T256 static inline float h16_avx(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

T256 static void rows4_avx2(int type, const uint8_t *const *W, const tern_qvec *v, float *out) {
    const int n = v->n;
    const size_t next = 4 * (size_t)(W[1] - W[0]);   // the next group of rows, prefetched (rows4_avx512)
    if (is_float(type)) {
        __m256 a[4], b[4];
        for (int r = 0; r < 4; r++) a[r] = b[r] = _mm256_setzero_ps();
        const int es = type == TERN_GGML_F32 ? 4 : 2;
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            if ((i * es) % 64 == 0)
                for (int r = 0; r < 4; r++) _mm_prefetch((const char *)(W[r] + next + (size_t)es * i), _MM_HINT_T0);
            const __m256 x0 = _mm256_loadu_ps(v->x + i), x1 = _mm256_loadu_ps(v->x + i + 8);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                a[r] = _mm256_add_ps(a[r], _mm256_mul_ps(load8_f(type, W[r], i), x0));
                b[r] = _mm256_add_ps(b[r], _mm256_mul_ps(load8_f(type, W[r], i + 8), x1));
            }
        }
        for (int r = 0; r < 4; r++) {
            float L[16];
            _mm256_storeu_ps(L, a[r]);
            _mm256_storeu_ps(L + 8, b[r]);
            out[r] = float_tail(type, W[r], v->x, i, n, L);
        }
        return;
    }
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int r = 0; r < 4; r++) {
        float acc = 0.0f;
        for (int k = 0; k < n / 256; k++) {
            const int8_t *qx = v->q + 256 * k;
            const float dx = v->d[k];
            if (type == TERN_GGML_Q6_K) {
                const uint8_t *blk = W[r] + TERN_Q6_K_BYTES * (size_t)k;
                const int8_t *sc = (const int8_t *)(blk + 192);
                const __m256i m3 = _mm256_set1_epi8(0x30);
                __m256i s32 = _mm256_setzero_si256();
                for (int h = 0; h < 2; h++) {
                    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
                    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
                    const __m256i hh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
                    __m256i q[4];
                    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m3));
                    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m3));
                    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m3));
                    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hh, 2), m3));
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) {
                        const __m256i xv = _mm256_loadu_si256((const __m256i *)(qx + 128 * h + 32 * j));
                        const __m256i s16 = _mm256_set_m128i(_mm_set1_epi16(sc[8 * h + 2 * j + 1]), _mm_set1_epi16(sc[8 * h + 2 * j]));
                        s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], xv), s16));
                    }
                }
                const int32_t I = hsum8_i32(s32) - q6_corr(sc, v->bsum + 16 * k);
                acc = acc + (float)I * (h16_avx(blk + 208) * dx);
            } else {
                const int five = type == TERN_GGML_Q5_K;
                const uint8_t *blk = W[r] + (five ? TERN_Q5_K_BYTES : TERN_Q4_K_BYTES) * (size_t)k;
                const uint8_t *qs = blk + (five ? 48 : 16);
                uint8_t sm[16];   // scales, then mins
                k4_unpack(blk + 4, sm);
                const uint8_t *sc = sm;
                const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
                const __m256i one = _mm256_set1_epi8(1);
                __m256i s32 = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    const __m256i qv = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                    __m256i lo = _mm256_and_si256(qv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
                    if (five) {
                        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
                    }
                    const __m256i x0 = _mm256_loadu_si256((const __m256i *)(qx + 64 * c));
                    const __m256i x1 = _mm256_loadu_si256((const __m256i *)(qx + 64 * c + 32));
                    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_set1_epi16((short)sc[2 * c])));
                    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), _mm256_set1_epi16((short)sc[2 * c + 1])));
                }
                // sum_j m_j * (bsum[2j] + bsum[2j+1]): the mins doubled into int16 pairs against the 16 sums
                const __m128i mm = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)sm),
                                                    _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15));
                const int32_t I2 = hsum8_i32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(mm), _mm256_loadu_si256((const __m256i *)(v->bsum + 16 * k))));
                const int32_t I1 = hsum8_i32(s32);
                acc = acc + ((float)I1 * (h16_avx(blk) * dx) - (float)I2 * (h16_avx(blk + 2) * dx));
            }
        }
        out[r] = acc;
    }
}

// TERN_QMAT_Q8_0X, S groups (gs bytes apart) x T tokens with S * T <= 2: one token against two
// groups (two memory streams, served faster than one) or two tokens against one group. Rows 0-7
// of a chunk in its low 32 bytes, 8-15 in the high ones. DOT(acc, w, x): acc + the 8 int32
// lanes' sums of 4 products of the chunk's biased weights w (u8, w + 128) with the token's 4
// activations x broadcast; CORR: 1 where DOT leaves sum (w + 128) * x, so the lanes start at
// -128 * bsum (AVX-VNNI), 0 where it leaves sum w * x (AVX2). Then each row's block as the
// scalar code does it. Group g, token t into out + 16 (t S + g).
#define QX_GROUPS_256(DOT, CORR)                                                                                         \
    __m256 a[2][2];                                                                                                      \
    for (int u = 0; u < S * T; u++) a[u][0] = a[u][1] = _mm256_setzero_ps();                                             \
    for (int b = 0; b < nb; b++) {                                                                                       \
        const uint8_t *B[2];                                                                                             \
        for (int g = 0; g < S; g++) {                                                                                    \
            B[g] = G + (size_t)g * gs + (size_t)b * TERN_QMAT_Q8_0X_BLOCK;                                               \
            for (int l = 0; l < 9; l++) _mm_prefetch((const char *)(B[g] + QX_PREFETCH * TERN_QMAT_Q8_0X_BLOCK + 64 * l), _MM_HINT_T0); \
        }                                                                                                                \
        __m256i I[2][2];   /* [t S + g][half] */                                                                         \
        for (int t = 0; t < T; t++)                                                                                      \
            for (int g = 0; g < S; g++) I[t * S + g][0] = I[t * S + g][1] = _mm256_set1_epi32(CORR ? -128 * (int32_t)v[t].bsum[b] : 0); \
        _Pragma("GCC unroll 8")                                                                                          \
        for (int c = 0; c < 8; c++) {                                                                                    \
            __m256i w[2][2];                                                                                             \
            for (int g = 0; g < S; g++) {                                                                                \
                w[g][0] = _mm256_loadu_si256((const __m256i *)(B[g] + 64 * c));                                          \
                w[g][1] = _mm256_loadu_si256((const __m256i *)(B[g] + 64 * c + 32));                                     \
            }                                                                                                            \
            for (int t = 0; t < T; t++) {                                                                                \
                int32_t x4;                                                                                              \
                memcpy(&x4, v[t].q + 32 * b + 4 * c, 4);                                                                 \
                const __m256i xb = _mm256_set1_epi32(x4);                                                                \
                for (int g = 0; g < S; g++) {                                                                            \
                    I[t * S + g][0] = DOT(I[t * S + g][0], w[g][0], xb);                                                 \
                    I[t * S + g][1] = DOT(I[t * S + g][1], w[g][1], xb);                                                 \
                }                                                                                                        \
            }                                                                                                            \
        }                                                                                                                \
        for (int g = 0; g < S; g++) {                                                                                    \
            const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(B[g] + 512)));                           \
            const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(B[g] + 528)));                           \
            for (int t = 0; t < T; t++) {                                                                                \
                const __m256 dx = _mm256_set1_ps(v[t].d[b]);                                                             \
                const int u = t * S + g;                                                                                 \
                a[u][0] = _mm256_add_ps(a[u][0], _mm256_mul_ps(_mm256_cvtepi32_ps(I[u][0]), _mm256_mul_ps(d0, dx)));     \
                a[u][1] = _mm256_add_ps(a[u][1], _mm256_mul_ps(_mm256_cvtepi32_ps(I[u][1]), _mm256_mul_ps(d1, dx)));     \
            }                                                                                                            \
        }                                                                                                                \
    }                                                                                                                    \
    for (int u = 0; u < S * T; u++) {                                                                                    \
        _mm256_storeu_ps(out + 16 * u, a[u][0]);                                                                         \
        _mm256_storeu_ps(out + 16 * u + 8, a[u][1]);                                                                     \
    }

// AVX2 has no u8 x s8 product that cannot saturate on biased weights: the weights are unbiased
// (XOR 0x80 gives w), |w| (<= 128) is the u8 operand and w's sign moves onto x (|x| <= 127: pair
// sums <= 2 * 128 * 127, no saturation)
T256 static inline __m256i qx_dot_avx2(__m256i acc, __m256i wb, __m256i x) {
    const __m256i w = _mm256_xor_si256(wb, _mm256_set1_epi8((char)0x80));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)), _mm256_set1_epi16(1)));
}
T256 static inline __attribute__((always_inline)) void groupsST_avx2(const uint8_t *G, size_t gs, int nb, const tern_qvec *v, float *out,
                                                                       const int S, const int T) {
    QX_GROUPS_256(qx_dot_avx2, 0)
}
T256 static void group1_avx2(const uint8_t *G, int nb, const tern_qvec *v, float *out) { groupsST_avx2(G, 0, nb, v, out, 1, 1); }
T256 static void group2_avx2(const uint8_t *G, int nb, const tern_qvec *v, float *out) { groupsST_avx2(G, 0, nb, v, out, 1, 2); }
T256 static void groups2_avx2(const uint8_t *G, size_t gs, int nb, const tern_qvec *v, float *out) { groupsST_avx2(G, gs, nb, v, out, 2, 1); }

// ------------------------------------------------------------------ AVX-VNNI (256-bit, VEX)
// Client x86 cores without AVX-512 (Alder Lake and later, Zen 5 laptops): the Q8_0 products with
// the VEX-encoded vpdpbusd, the biased weights (u8) against the activations (s8), exact:
// |sum| <= 32 * 255 * 127. The float and k-quant products are the AVX2 code (their int16 scale
// products gain nothing from vpdpbusd).
#define TVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))

// acc += u8(a) . s8(b) per 4-byte group. "{vex}" asks the assembler for the AVX-VNNI encoding (its
// default is the EVEX one, which needs AVX512VL); "x" keeps the operands in ymm0-15.
static inline __attribute__((always_inline)) TVNNI __m256i dpbusd_vex(__m256i acc, __m256i a, __m256i b) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
}
static inline __attribute__((always_inline)) TVNNI void groupsST_vnni(const uint8_t *G, size_t gs, int nb, const tern_qvec *v, float *out,
                                                                        const int S, const int T) {
    QX_GROUPS_256(dpbusd_vex, 1)
}
TVNNI static void group1_vnni(const uint8_t *G, int nb, const tern_qvec *v, float *out) { groupsST_vnni(G, 0, nb, v, out, 1, 1); }
TVNNI static void group2_vnni(const uint8_t *G, int nb, const tern_qvec *v, float *out) { groupsST_vnni(G, 0, nb, v, out, 1, 2); }
TVNNI static void groups2_vnni(const uint8_t *G, size_t gs, int nb, const tern_qvec *v, float *out) { groupsST_vnni(G, gs, nb, v, out, 2, 1); }

// ------------------------------------------------------------------ AVX-512
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

T512 static inline __m512 load16_f(int type, const uint8_t *w, int i) {
    if (type == TERN_GGML_F32) return _mm512_loadu_ps((const float *)(w + 4 * (size_t)i));
    __m256i h = _mm256_loadu_si256((const __m256i *)(w + 2 * (size_t)i));
    if (type == TERN_GGML_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
T512 static inline int32_t hsum16_i32(__m512i a) {
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
T512 static inline __m512i join256(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

// vpermw indices: int16 lane i of the products of weights 128h + 64p + 2i, 2i+1 takes the scale of
// sub-block 8h + 4p + i/8
static const int16_t q6_idx[4][32] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

// vpermw indices for Q4_K/Q5_K: the 32 int16 products of weights 64c..64c+63 take the scales of
// sub-blocks 2c (lanes 0-15) and 2c+1 (lanes 16-31)
static const int16_t k4_idx[4][32] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7},
};

T512 static void rows4_avx512(int type, const uint8_t *const *W, const tern_qvec *v, float *out) {
    const int n = v->n;
    // the next group of 4 rows (rows are row_bytes apart: tern_qmat_mul), fetched while this one
    // is multiplied: one row is memory-bound, and the four interleaved streams of a group defeat
    // the hardware prefetcher's distance
    const size_t next = 4 * (size_t)(W[1] - W[0]);
    if (is_float(type)) {
        __m512 a[4];
        for (int r = 0; r < 4; r++) a[r] = _mm512_setzero_ps();
        const int es = type == TERN_GGML_F32 ? 4 : 2;
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            if ((i * es) % 64 == 0)
                for (int r = 0; r < 4; r++) _mm_prefetch((const char *)(W[r] + next + (size_t)es * i), _MM_HINT_T0);
            const __m512 x0 = _mm512_loadu_ps(v->x + i);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) a[r] = _mm512_add_ps(a[r], _mm512_mul_ps(load16_f(type, W[r], i), x0));
        }
        for (int r = 0; r < 4; r++) {
            float L[16];
            _mm512_storeu_ps(L, a[r]);
            out[r] = float_tail(type, W[r], v->x, i, n, L);
        }
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(15);
    for (int r = 0; r < 4; r++) {
        float acc = 0.0f;
        for (int k = 0; k < n / 256; k++) {
            const int8_t *qx = v->q + 256 * k;
            const float dx = v->d[k];
            if (type == TERN_GGML_Q6_K) {
                const uint8_t *blk = W[r] + TERN_Q6_K_BYTES * (size_t)k;
                const int8_t *sc = (const int8_t *)(blk + 192);
                // 32 int16 scales for the 64 weights of one vector: sub-blocks s..s+3, 8 lanes each
                const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)));
                const __m256i m3 = _mm256_set1_epi8(0x30);
                __m512i s32 = _mm512_setzero_si512();
                for (int h = 0; h < 2; h++) {
                    const __m512i ql = _mm512_loadu_si512((const void *)(blk + 64 * h));
                    const __m256i hh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
                    // weights 128h + 0..63: low nibbles of ql, high bits 0-1 / 2-3 of qh
                    const __m512i hA = join256(_mm256_and_si256(_mm256_slli_epi16(hh, 4), m3), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m3));
                    // weights 128h + 64..127: high nibbles of ql, high bits 4-5 / 6-7 of qh
                    const __m512i hB = join256(_mm256_and_si256(hh, m3), _mm256_and_si256(_mm256_srli_epi16(hh, 2), m3));
                    const __m512i qA = _mm512_or_si512(_mm512_and_si512(ql, m4), hA);
                    const __m512i qB = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), hB);
                    const __m512i iA = _mm512_loadu_si512((const void *)q6_idx[2 * h]), iB = _mm512_loadu_si512((const void *)q6_idx[2 * h + 1]);
                    const __m512i xA = _mm512_loadu_si512((const void *)(qx + 128 * h)), xB = _mm512_loadu_si512((const void *)(qx + 128 * h + 64));
                    s32 = _mm512_add_epi32(s32, _mm512_madd_epi16(_mm512_maddubs_epi16(qA, xA), _mm512_permutexvar_epi16(iA, sc16)));
                    s32 = _mm512_add_epi32(s32, _mm512_madd_epi16(_mm512_maddubs_epi16(qB, xB), _mm512_permutexvar_epi16(iB, sc16)));
                }
                const int32_t I = hsum16_i32(s32) - q6_corr(sc, v->bsum + 16 * k);
                acc = acc + (float)I * (h16_avx(blk + 208) * dx);
            } else {
                const int five = type == TERN_GGML_Q5_K;
                const uint8_t *blk = W[r] + (five ? TERN_Q5_K_BYTES : TERN_Q4_K_BYTES) * (size_t)k;
                const uint8_t *qs = blk + (five ? 48 : 16);
                uint8_t sm[16];   // scales, then mins
                k4_unpack(blk + 4, sm);
                const __m128i smv = _mm_loadu_si128((const __m128i *)sm);
                const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(smv));   // int16 lanes 0-7: the scales
                const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
                const __m256i one = _mm256_set1_epi8(1), m4h = _mm256_set1_epi8(15);
                __m512i s32 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {   // weights 64c..64c+63: sub-blocks 2c (low nibbles), 2c+1 (high)
                    const __m256i qv = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                    __m256i lo = _mm256_and_si256(qv, m4h), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4h);
                    if (five) {
                        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
                    }
                    const __m512i q = join256(lo, hi), xv = _mm512_loadu_si512((const void *)(qx + 64 * c));
                    const __m512i s16 = _mm512_permutexvar_epi16(_mm512_loadu_si512((const void *)k4_idx[c]), sc16);
                    s32 = _mm512_add_epi32(s32, _mm512_madd_epi16(_mm512_maddubs_epi16(q, xv), s16));
                }
                const __m128i mm = _mm_shuffle_epi8(smv, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15));
                const int32_t I2 = hsum8_i32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(mm), _mm256_loadu_si256((const __m256i *)(v->bsum + 16 * k))));
                const int32_t I1 = hsum16_i32(s32);
                acc = acc + ((float)I1 * (h16_avx(blk) * dx) - (float)I2 * (h16_avx(blk + 2) * dx));
            }
        }
        out[r] = acc;
    }
}


// Several tokens at once (tern_qmat_mul with N >= 2), for the float types: each weight vector is
// loaded and converted once for T <= 4 tokens, and every (row, token) pair gets exactly
// rows4_avx512's arithmetic (the same float operations in the same order).
static inline __attribute__((always_inline)) T512 void rowsT_avx512(int type, const uint8_t *const *W, const tern_qvec *v, float *out,
                                                                     const int T) {
    const int n = v->n;
    __m512 a[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) a[r][t] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 w[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) w[r] = load16_f(type, W[r], i);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m512 x0 = _mm512_loadu_ps(v[t].x + i);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) a[r][t] = _mm512_add_ps(a[r][t], _mm512_mul_ps(w[r], x0));
        }
    }
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < T; t++) {
            float L[16];
            _mm512_storeu_ps(L, a[r][t]);
            out[4 * t + r] = float_tail(type, W[r], v[t].x, i, n, L);
        }
}
T512 static void rows4x2_avx512(int type, const uint8_t *const *W, const tern_qvec *v, float *out) { rowsT_avx512(type, W, v, out, 2); }
T512 static void rows4x3_avx512(int type, const uint8_t *const *W, const tern_qvec *v, float *out) { rowsT_avx512(type, W, v, out, 3); }
T512 static void rows4x4_avx512(int type, const uint8_t *const *W, const tern_qvec *v, float *out) { rowsT_avx512(type, W, v, out, 4); }


// TERN_QMAT_Q8_0X, T <= 8 tokens per pass over a group: the 16 rows of a chunk are one vector, so
// each vpdpbusd (biased weights u8, the token's 4 activations s8 broadcast) adds 4 products to
// every row's block sum, the lanes starting at -128 * bsum (exact: |sum| <= 32 * 255 * 127); each
// chunk is loaded once for all T tokens. Then per token one multiply-add of the 16 rows' blocks
// as the scalar code does it. Up to 2 tokens, two sum chains per token (even and odd chunks,
// added: integer, exact) keep vpdpbusd's latency hidden.
T512 static inline __m512i bcast4_512(const int8_t *p) {   // 4 bytes in every 32-bit lane (a broadcast load)
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
static inline __attribute__((always_inline)) T512 void groupT_avx512(const uint8_t *G, int nb, const tern_qvec *v, float *out, const int T) {
    __m512 a[8];
    for (int t = 0; t < T; t++) a[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * TERN_QMAT_Q8_0X_BLOCK;
        __m512i w[8];
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) w[c] = _mm512_loadu_si512((const void *)(B + 64 * c));
        const uint8_t *P = B + QX_PREFETCH * TERN_QMAT_Q8_0X_BLOCK;   // the block's 9 cache lines, ahead
        for (int l = 0; l < 9; l++) _mm_prefetch((const char *)(P + 64 * l), _MM_HINT_T0);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(B + 512)));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const int8_t *x = v[t].q + 32 * b;
            __m512i I0 = _mm512_set1_epi32(-128 * (int32_t)v[t].bsum[b]), I;
            if (T <= 2) {
                __m512i I1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int c = 0; c < 8; c += 2) {
                    I0 = _mm512_dpbusd_epi32(I0, w[c], bcast4_512(x + 4 * c));
                    I1 = _mm512_dpbusd_epi32(I1, w[c + 1], bcast4_512(x + 4 * c + 4));
                }
                I = _mm512_add_epi32(I0, I1);
            } else {
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) I0 = _mm512_dpbusd_epi32(I0, w[c], bcast4_512(x + 4 * c));
                I = I0;
            }
            a[t] = _mm512_add_ps(a[t], _mm512_mul_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(dw, _mm512_set1_ps(v[t].d[b]))));
        }
    }
    for (int t = 0; t < T; t++) _mm512_storeu_ps(out + 16 * t, a[t]);
}
// One token against S groups at once (gs bytes apart): S sequential streams, as the DRAM side
// serves several streams faster than one
static inline __attribute__((always_inline)) T512 void groupsS_avx512(const uint8_t *G, size_t gs, int nb, const tern_qvec *v, float *out,
                                                                       const int S) {
    __m512 a[4];
    for (int g = 0; g < S; g++) a[g] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const int8_t *x = v->q + 32 * b;
        const __m512 dx = _mm512_set1_ps(v->d[b]);
        const __m512i corr = _mm512_set1_epi32(-128 * (int32_t)v->bsum[b]);
#pragma GCC unroll 4
        for (int g = 0; g < S; g++) {
            const uint8_t *B = G + (size_t)g * gs + (size_t)b * TERN_QMAT_Q8_0X_BLOCK;
            const uint8_t *P = B + QX_PREFETCH * TERN_QMAT_Q8_0X_BLOCK;
            for (int l = 0; l < 9; l++) _mm_prefetch((const char *)(P + 64 * l), _MM_HINT_T0);
            __m512i I0 = corr, I1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 8; c += 2) {
                I0 = _mm512_dpbusd_epi32(I0, _mm512_loadu_si512((const void *)(B + 64 * c)), bcast4_512(x + 4 * c));
                I1 = _mm512_dpbusd_epi32(I1, _mm512_loadu_si512((const void *)(B + 64 * c + 64)), bcast4_512(x + 4 * c + 4));
            }
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(B + 512)));
            a[g] = _mm512_add_ps(a[g], _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(I0, I1)), _mm512_mul_ps(dw, dx)));
        }
    }
    for (int g = 0; g < S; g++) _mm512_storeu_ps(out + 16 * g, a[g]);
}
T512 static void groups4_avx512(const uint8_t *G, size_t gs, int nb, const tern_qvec *v, float *out) { groupsS_avx512(G, gs, nb, v, out, 4); }
#define QX_GROUP_512(T) \
    T512 static void group##T##_avx512(const uint8_t *G, int nb, const tern_qvec *v, float *out) { groupT_avx512(G, nb, v, out, T); }
QX_GROUP_512(1)
QX_GROUP_512(2)
QX_GROUP_512(3)
QX_GROUP_512(4)
QX_GROUP_512(5)
QX_GROUP_512(6)
QX_GROUP_512(7)
QX_GROUP_512(8)

#endif   // QM_X86

#if QM_ARM   // AArch64: NEON (ARMv8.0) and dotprod (ARMv8.2 sdot); i8mm CPUs run the dotprod code
// The integer sums of 16 s8 pairs into 4 int32 lanes (lane j: products 4j..4j+3), exact:
//   NEON:    smull/smull2 (s8 x s8 -> int16, |p| <= 128 * 128), saddlp (pairs -> int32), addp
//   dotprod: sdot, as inline asm so that one always-inline body serves both levels (the asm is
//            emitted only into rows4_dot, compiled for armv8.2-a+dotprod and run only where
//            HWCAP has sdot)
static inline __attribute__((always_inline)) int32x4_t sdot_asm(int32x4_t acc, int8x16_t a, int8x16_t b) {
    __asm__("sdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}
static inline __attribute__((always_inline)) int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b, const int dot) {
    if (dot) return sdot_asm(acc, a, b);
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b)), hi = vmull_high_s8(a, b);
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
}
static inline float h16_arm(const uint8_t *p) {   // IEEE half -> float (exact, as tern_fp16_to_fp32)
    uint16_t h;
    memcpy(&h, p, 2);
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}
static inline float32x4_t load4_f(int type, const uint8_t *w, int i) {
    if (type == TERN_GGML_F32) return vld1q_f32((const float *)(w + 4 * (size_t)i));
    const uint16x4_t h = vld1_u16((const uint16_t *)(w + 2 * (size_t)i));
    if (type == TERN_GGML_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}
// sum of the 16 products of a k-quant sub-block's 16 unsigned values q (< 64) and activations x
static inline __attribute__((always_inline)) int32_t sub16(uint8x16_t q, const int8_t *x, const int dot) {
    return vaddvq_s32(dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(q), vld1q_s8(x), dot));
}

static inline __attribute__((always_inline)) void rows4_arm(int type, const uint8_t *const *W, const tern_qvec *v, float *out,
                                                             const int dot) {
    const int n = v->n;
    if (is_float(type)) {   // lanes 4q..4q+3 in a[r][q]
        float32x4_t a[4][4];
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++) a[r][q] = vdupq_n_f32(0.0f);
        int i = 0;
        for (; i + 16 <= n; i += 16)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                const float32x4_t xv = vld1q_f32(v->x + i + 4 * q);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) a[r][q] = vaddq_f32(a[r][q], vmulq_f32(load4_f(type, W[r], i + 4 * q), xv));
            }
        for (int r = 0; r < 4; r++) {
            float L[16];
            for (int q = 0; q < 4; q++) vst1q_f32(L + 4 * q, a[r][q]);
            out[r] = float_tail(type, W[r], v->x, i, n, L);
        }
        return;
    }
    const uint8x16_t m4 = vdupq_n_u8(15), m2 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    for (int r = 0; r < 4; r++) {
        float acc = 0.0f;
        for (int k = 0; k < n / 256; k++) {
            const int8_t *qx = v->q + 256 * k;
            const float dx = v->d[k];
            if (type == TERN_GGML_Q6_K) {
                const uint8_t *blk = W[r] + TERN_Q6_K_BYTES * (size_t)k;
                const int8_t *sc = (const int8_t *)(blk + 192);
                int32_t I = 0;
                for (int h = 0; h < 2; h++)
                    for (int u = 0; u < 2; u++) {   // l = 16u .. 16u + 15 of the 32 in each quad
                        const uint8x16_t l0 = vld1q_u8(blk + 64 * h + 16 * u), l1 = vld1q_u8(blk + 64 * h + 32 + 16 * u);
                        const uint8x16_t hh = vld1q_u8(blk + 128 + 32 * h + 16 * u);
                        uint8x16_t q[4];   // quads 0-3: weights 128h + 32 quad + 16u + 0..15
                        q[0] = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(hh, m2), 4));
                        q[1] = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 2), m2), 4));
                        q[2] = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 4), m2), 4));
                        q[3] = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hh, 6), 4));
#pragma GCC unroll 4
                        for (int quad = 0; quad < 4; quad++) {
                            const int j = 8 * h + 2 * quad + u;   // sub-block of 16
                            I += sc[j] * sub16(q[quad], qx + 16 * j, dot);
                        }
                    }
                I -= q6_corr(sc, v->bsum + 16 * k);
                acc = acc + (float)I * (h16_arm(blk + 208) * dx);
            } else {
                const int five = type == TERN_GGML_Q5_K;
                const uint8_t *blk = W[r] + (five ? TERN_Q5_K_BYTES : TERN_Q4_K_BYTES) * (size_t)k;
                const uint8_t *qs = blk + (five ? 48 : 16);
                uint8_t sm[16];   // scales, then mins
                k4_unpack(blk + 4, sm);
                int32_t I1 = 0;
                for (int c = 0; c < 4; c++)       // weights 64c..64c+63: sub-blocks 2c (low nibbles), 2c+1 (high)
                    for (int u = 0; u < 2; u++) {   // 16 of their 32
                        const uint8x16_t qv = vld1q_u8(qs + 32 * c + 16 * u);
                        uint8x16_t lo = vandq_u8(qv, m4), hi = vshrq_n_u8(qv, 4);
                        if (five) {
                            const uint8x16_t qh = vld1q_u8(blk + 16 + 16 * u);
                            lo = vorrq_u8(lo, vshlq_n_u8(vandq_u8(vshlq_u8(qh, vdupq_n_s8((int8_t)(-2 * c))), one), 4));
                            hi = vorrq_u8(hi, vshlq_n_u8(vandq_u8(vshlq_u8(qh, vdupq_n_s8((int8_t)(-2 * c - 1))), one), 4));
                        }
                        I1 += sm[2 * c] * sub16(lo, qx + 64 * c + 16 * u, dot) + sm[2 * c + 1] * sub16(hi, qx + 64 * c + 32 + 16 * u, dot);
                    }
                int32_t I2 = 0;
                for (int j = 0; j < 8; j++) I2 += (int32_t)sm[8 + j] * (v->bsum[16 * k + 2 * j] + v->bsum[16 * k + 2 * j + 1]);
                acc = acc + ((float)I1 * (h16_arm(blk) * dx) - (float)I2 * (h16_arm(blk + 2) * dx));
            }
        }
        out[r] = acc;
    }
}
// TERN_QMAT_Q8_0X, one token: rows 4q..4q+3 of a chunk in its 16-byte quarter q; the weights
// unbiased (XOR 0x80: s8), the token's 4 activations repeated in every lane, dot16 gives each
// lane (row) the sum of its 4 products, exactly. Then each row's block as the scalar code does it.
static inline __attribute__((always_inline)) void group_arm(const uint8_t *G, int nb, const tern_qvec *v, float *out, const int dot) {
    float32x4_t a[4];
    for (int q = 0; q < 4; q++) a[q] = vdupq_n_f32(0.0f);
    const uint8x16_t bias = vdupq_n_u8(0x80);
    for (int b = 0; b < nb; b++) {
        const uint8_t *B = G + (size_t)b * TERN_QMAT_Q8_0X_BLOCK;
        int32x4_t I[4];
        for (int q = 0; q < 4; q++) I[q] = vdupq_n_s32(0);
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            int32_t x4;
            memcpy(&x4, v->q + 32 * b + 4 * c, 4);
            const int8x16_t xp = vreinterpretq_s8_s32(vdupq_n_s32(x4));
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                I[q] = dot16(I[q], vreinterpretq_s8_u8(veorq_u8(vld1q_u8(B + 64 * c + 16 * q), bias)), xp, dot);
        }
        const float32x4_t dx = vdupq_n_f32(v->d[b]);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(B + 512 + 8 * q))));
            a[q] = vaddq_f32(a[q], vmulq_f32(vcvtq_f32_s32(I[q]), vmulq_f32(dw, dx)));
        }
    }
    for (int q = 0; q < 4; q++) vst1q_f32(out + 4 * q, a[q]);
}
static void group_neon(const uint8_t *G, int nb, const tern_qvec *v, float *out) { group_arm(G, nb, v, out, 0); }
__attribute__((target("arch=armv8.2-a+dotprod"))) static void group_dot(const uint8_t *G, int nb, const tern_qvec *v, float *out) {
    group_arm(G, nb, v, out, 1);
}
static void rows4_neon(int type, const uint8_t *const *W, const tern_qvec *v, float *out) { rows4_arm(type, W, v, out, 0); }
__attribute__((target("arch=armv8.2-a+dotprod"))) static void rows4_dot(int type, const uint8_t *const *W, const tern_qvec *v, float *out) { rows4_arm(type, W, v, out, 1); }
#endif   // QM_ARM

// ------------------------------------------------------------------ driver
// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c".
// The one F16C check of the runtime (qmatvec.h); 0 off x86.
int tern_cpu_has_f16c(void) {
#if QM_X86
    static int f16c = -1;
    if (f16c < 0) {
        unsigned a, b, c, d;
        f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) ? 1 : 0;
    }
    return f16c;
#else
    return 0;
#endif
}

// the code a kernel kind runs here: x86: avx512, avxvnni, avx2 (each its own code; plain on a CPU
// without F16C); AArch64: neon, and dotprod for dotprod and i8mm (the logits products have no
// smmla variant); plain otherwise
static tern_kernel_kind resolve(tern_kernel_kind k) {
    if (k == TERN_KERNEL_AUTO || (unsigned)k >= TERN_KERNEL_NKINDS || !tern_kernel_available(k)) k = tern_kernel_best();
#if QM_X86
    if (!tern_cpu_has_f16c()) return TERN_KERNEL_PLAIN;
    if (k == TERN_KERNEL_AVX2 || k == TERN_KERNEL_AVXVNNI || k == TERN_KERNEL_AVX512VNNI) return k;
#elif QM_ARM
    if (k == TERN_KERNEL_NEON) return k;
    if (k == TERN_KERNEL_DOTPROD || k == TERN_KERNEL_I8MM) return TERN_KERNEL_DOTPROD;
#endif
    return TERN_KERNEL_PLAIN;
}

// TERN_QMAT_Q8_0X: 16-row groups; the group's rows r0..r1-1 stored. T tokens per pass: AVX-512 up
// to 8, AVX2 and AVX-VNNI up to 2, the others 1.
static void qx_mul(const uint8_t *base, size_t row_bytes, int r0, int r1, const tern_qvec *x, int N, float *out, size_t ldo,
                   tern_kernel_kind k) {
    const int nb = x[0].n / 32;
    int g = r0 / 16;
#if QM_X86
    // one token: several groups at once (AVX-512 4, AVX2 and AVX-VNNI 2), whole groups only
    const int S = k == TERN_KERNEL_AVX512VNNI ? 4 : k == TERN_KERNEL_AVXVNNI || k == TERN_KERNEL_AVX2 ? 2 : 1;
    if (N == 1 && S > 1 && 16 * g == r0)
        for (; 16 * (g + S) <= r1; g += S) {
            const uint8_t *G = base + (size_t)g * 16 * row_bytes;
            if (S == 4) groups4_avx512(G, 16 * row_bytes, nb, x, out + 16 * g);
            else if (k == TERN_KERNEL_AVXVNNI) groups2_vnni(G, 16 * row_bytes, nb, x, out + 16 * g);
            else groups2_avx2(G, 16 * row_bytes, nb, x, out + 16 * g);
        }
#endif
    for (; 16 * g < r1; g++) {
        const uint8_t *G = base + (size_t)g * 16 * row_bytes;
        const int lo = r0 > 16 * g ? r0 - 16 * g : 0, hi = r1 < 16 * g + 16 ? r1 - 16 * g : 16;
        for (int t = 0; t < N;) {
            float o[8 * 16];
            int T = 1;
#if QM_X86
            if (k == TERN_KERNEL_AVX512VNNI) {
                T = N - t < 8 ? N - t : 8;
                switch (T) {
                case 1: group1_avx512(G, nb, &x[t], o); break;
                case 2: group2_avx512(G, nb, &x[t], o); break;
                case 3: group3_avx512(G, nb, &x[t], o); break;
                case 4: group4_avx512(G, nb, &x[t], o); break;
                case 5: group5_avx512(G, nb, &x[t], o); break;
                case 6: group6_avx512(G, nb, &x[t], o); break;
                case 7: group7_avx512(G, nb, &x[t], o); break;
                default: group8_avx512(G, nb, &x[t], o); break;
                }
            } else if (k == TERN_KERNEL_AVXVNNI || k == TERN_KERNEL_AVX2) {
                T = N - t < 2 ? N - t : 2;
                if (k == TERN_KERNEL_AVXVNNI) (T == 2 ? group2_vnni : group1_vnni)(G, nb, &x[t], o);
                else (T == 2 ? group2_avx2 : group1_avx2)(G, nb, &x[t], o);
            } else
#elif QM_ARM
            if (k == TERN_KERNEL_DOTPROD) group_dot(G, nb, &x[t], o);
            else if (k == TERN_KERNEL_NEON) group_neon(G, nb, &x[t], o);
            else
#endif
                group_plain(G, nb, &x[t], o);
            for (int u = 0; u < T; u++)
                for (int i = lo; i < hi; i++) out[(size_t)(t + u) * ldo + 16 * g + i] = o[16 * u + i];
            t += T;
        }
    }
}

void tern_qmat_mul(int type, const void *W, size_t row_bytes, int r0, int r1, const tern_qvec *x, int N, float *out, size_t ldo,
                   tern_kernel_kind k) {
    k = resolve(k);
    const uint8_t *base = W;
    if (type == TERN_QMAT_Q8_0X) {
        qx_mul(base, row_bytes, r0, r1, x, N, out, ldo, k);
        return;
    }
    // Q8_0 in ggml's layout: the plain code at every level (the runtime multiplies the repacked one)
    if (type == TERN_GGML_Q8_0) k = TERN_KERNEL_PLAIN;
    // AVX-512 takes several tokens per call for the float types (rowsT_avx512)
#if QM_X86
    const int multi = k == TERN_KERNEL_AVX512VNNI && is_float(type);
#endif
    for (int r = r0; r < r1; r += 4) {
        const int R = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *rows[4];
        for (int i = 0; i < R; i++) rows[i] = base + (size_t)(r + i) * row_bytes;
        for (int i = R; i < 4; i++) rows[i] = rows[0];   // a short last group: row r again, dropped
        for (int t = 0; t < N;) {
            float o[16];
            int T = 1;
#if QM_X86
            if (multi && N - t >= 2) {
                T = N - t < 4 ? N - t : 4;
                if (T == 4) rows4x4_avx512(type, rows, &x[t], o);
                else if (T == 3) rows4x3_avx512(type, rows, &x[t], o);
                else rows4x2_avx512(type, rows, &x[t], o);
            } else if (k == TERN_KERNEL_AVX512VNNI) rows4_avx512(type, rows, &x[t], o);
            else if (k == TERN_KERNEL_AVXVNNI || k == TERN_KERNEL_AVX2) rows4_avx2(type, rows, &x[t], o);
            else
#elif QM_ARM
            if (k == TERN_KERNEL_DOTPROD) rows4_dot(type, rows, &x[t], o);
            else if (k == TERN_KERNEL_NEON) rows4_neon(type, rows, &x[t], o);
            else
#endif
                for (int i = 0; i < R; i++) o[i] = row_plain(type, rows[i], &x[t]);
            for (int u = 0; u < T; u++)
                for (int i = 0; i < R; i++) out[(size_t)(t + u) * ldo + r + i] = o[4 * u + i];
            t += T;
        }
    }
}

void tern_qmat_row_f32(int type, const void *W, size_t row_bytes, int r, int n, float *out) {
    if (type == TERN_QMAT_Q8_0X) {   // as ggml's dequantize_row_q8_0: q * d
        const int i = r % 16;
        for (int b = 0; b < n / 32; b++) {
            const uint8_t *B = (const uint8_t *)W + qx_block(r, b, row_bytes);
            const float d = h16(B + 512 + 2 * i);
            for (int e = 0; e < 32; e++) out[32 * b + e] = (float)(int8_t)(B[64 * (e / 4) + 4 * i + e % 4] ^ 0x80) * d;
        }
        return;
    }
    if (tern_ggml_dequant(type, (const uint8_t *)W + (size_t)r * row_bytes, n, out)) tern_fatal("tern_qmat_row_f32: %s", tern_last_error());
}
