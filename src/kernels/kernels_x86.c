// kernels_x86.c — x86-64 tile kernels (see tiles.h): AVX2, AVX-VNNI (256-bit VEX vpdpbusd) and
// AVX-512 VNNI, each compiled per function (target attributes) and picked at run time, so the
// library itself needs only x86-64-v2. Empty on other architectures.
//
// All compute acc = sum_k x_k * c_k (codes c = w + 1 in {0,1,2}) with exact integer arithmetic:
//   AVX-512, AVX-VNNI: vpdpbusd (u8 codes x s8 activations, 4 products into each int32 lane, no
//            saturation: vpdpbusd, unlike vpdpbusds, wraps, and the sums stay far below 2^31)
//   AVX2:    vpmaddubsw (u8 x s8 → int16 pair sums, |.| <= 2*2*128 = 512: never saturates),
//            vpmaddwd with ones → int32
#if defined(__x86_64__) || defined(__i386__)
#include "kernels/tiles.h"
#include <cpuid.h>
#include <immintrin.h>

#ifndef PF_HINT
#define PF_HINT _MM_HINT_T0
#endif

// ------------------------------------------------------------------ CPU features
// AVX-VNNI: CPUID.(EAX=7,ECX=1):EAX bit 4, with AVX2 and the OS saving YMM state (XCR0 bits 1-2,
// read with XGETBV once CPUID.1:ECX.OSXSAVE says XGETBV exists). GCC 12's __builtin_cpu_supports
// does not know the feature, hence CPUID by hand.
static int has_avxvnni(void) {
    unsigned a, b, c, d;
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;   // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 4) & 1;
}

int tern_cpu_has(tern_kernel_kind k) {
    static int vnni256 = -1;
    switch (k) {
    case TERN_KERNEL_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TERN_KERNEL_AVXVNNI: {
        int v = __atomic_load_n(&vnni256, __ATOMIC_RELAXED);
        if (v < 0) __atomic_store_n(&vnni256, v = has_avxvnni(), __ATOMIC_RELAXED);
        return v;
    }
    case TERN_KERNEL_AVX512VNNI:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    default: return 0;
    }
}

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define TVNNI __attribute__((target("avx2,fma,avxvnni")))
#define T256 __attribute__((target("avx2,fma")))

// ------------------------------------------------------------------ AVX-512 VNNI
// acc += u8(a) . s8(b) per 4-byte group, as one instruction in inline asm: GCC models the
// intrinsic as non-destructive and pads the loops with register copies (and spills).
static inline __attribute__((always_inline)) T512 __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

// [sum(a), sum(b), sum(c), sum(d)] of four 16-lane int32 vectors: a transpose-and-add tree
// (13 instructions for the 4 sums instead of ~8 each), exact (integer adds in any order)
static inline __attribute__((always_inline)) T512 __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d) {
    // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d
    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    // per 128-bit lane: [a, b, c, d] partial sums
    const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

static inline __attribute__((always_inline)) T512 void tile512(const uint8_t *w, const int8_t *x, size_t xs, int nblk,
                                                                int32_t *out, const int R, const int T) {
    __m512i acc[TILE_R][6];
    const __m512i mask = _mm512_set1_epi8(3);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_si512();
    for (int b = 0; b < nblk; b++) {
        if (T <= 2) {   // decode: memory-bound; prefetch the weight stream ahead
#pragma GCC unroll 4
            for (int r = 0; r < TILE_R; r++) _mm_prefetch((const char *)(w + 256 * (size_t)(b + PF_AHEAD) + 64 * r), PF_HINT);
        }
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) {
            __m512i c[TILE_R];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i v = _mm512_load_si512((const void *)(w + 256 * (size_t)b + 64 * r));
                c[r] = _mm512_and_si512(_mm512_srli_epi16(v, 2 * l), mask);
            }
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) {
                __m512i xv = _mm512_loadu_si512((const void *)(x + (size_t)t * xs + 256 * (size_t)b + 64 * l));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) acc[r][t] = dpbusd(acc[r][t], c[r], xv);
            }
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < T; t++) {
        const __m512i z = _mm512_setzero_si512();
        _mm_storeu_si128((__m128i *)(out + t * TILE_R),
                         hsum4(acc[0][t], R > 1 ? acc[1][t] : z, R > 2 ? acc[2][t] : z, R > 3 ? acc[3][t] : z));
    }
}

// Decode (T = 1) variant. Its weight stream is read once, so the kernel must consume bytes as
// fast as memory delivers them (~35 GB/s per core): fewer instructions per weight byte matter.
// Sub-vector l of a block is taken as v & (3 << 2l) = c * 4^l without the shift (c * 4^l <= 128
// still fits vpdpbusd's u8 operand) into its own accumulator acc[r][l], which therefore holds
// 4^l * (its part of sum x*c); an exact arithmetic shift right by 2l per lane at the end undoes
// the factor. Lane bound: 4 * nblk products of |c * 4^l * x| <= 128 * 128 per lane, < 2^31 for
// cols <= 2^22 (kernels.c's MAX_COLS). 16 independent accumulator chains; the weight stream is
// prefetched PF_AHEAD blocks ahead.
static inline __attribute__((always_inline)) T512 void tile512_dec(const uint8_t *w, const int8_t *x, int nblk, int32_t *out,
                                                                    const int R) {
    __m512i acc[TILE_R][4];
    __m512i mask[4];
#pragma GCC unroll 4
    for (int l = 0; l < 4; l++) mask[l] = _mm512_set1_epi8((char)(3 << (2 * l)));
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) acc[r][l] = _mm512_setzero_si512();
    for (int b = 0; b < nblk; b++) {
#pragma GCC unroll 4
        for (int r = 0; r < TILE_R; r++) _mm_prefetch((const char *)(w + 256 * (size_t)(b + PF_AHEAD) + 64 * r), PF_HINT);
        __m512i xv[4];
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) xv[l] = _mm512_loadu_si512((const void *)(x + 256 * (size_t)b + 64 * l));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512i v = _mm512_load_si512((const void *)(w + 256 * (size_t)b + 64 * r));
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) acc[r][l] = dpbusd(acc[r][l], _mm512_and_si512(v, mask[l]), xv[l]);
        }
    }
    __m512i s[TILE_R];
#pragma GCC unroll 4
    for (int r = 0; r < TILE_R; r++) {
        s[r] = _mm512_setzero_si512();
        if (r < R) {
            s[r] = acc[r][0];
#pragma GCC unroll 3
            for (int l = 1; l < 4; l++) s[r] = _mm512_add_epi32(s[r], _mm512_srai_epi32(acc[r][l], 2 * l));
        }
    }
    _mm_storeu_si128((__m128i *)out, hsum4(s[0], s[1], s[2], s[3]));
}

// ------------------------------------------------------------------ AVX-VNNI (256-bit, VEX)
// The VEX-encoded vpdpbusd of AVX-VNNI (Alder Lake and later client cores, Zen 5): the AVX-512
// kernels' arithmetic on 256-bit registers, 16 of them. "{vex}" asks the assembler for the VEX form
// (the EVEX one needs AVX512VL; "%{" escapes the brace in asm); "x" keeps the operands in
// ymm0-15, which VEX can encode. All operands in registers: with the activations as memory
// operands the kernels ran ~1.4x slower (measured on Zen 5, prefill and decode alike).
static inline __attribute__((always_inline)) TVNNI __m256i dpbusd256(__m256i acc, __m256i a, __m256i b) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
}

// [sum(a), sum(b), sum(c), sum(d)] of four 8-lane int32 vectors (transpose-and-add, exact)
static inline __attribute__((always_inline)) TVNNI __m128i hsum4_256(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    const __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

// Prefill: 16 ymm registers do not hold 4 rows x T tokens of accumulators plus codes, so the tile's
// rows are taken two at a time (the second pair re-reads its 4-row tile from L1/L2): acc[2][T],
// the T tokens' activations, the two rows' codes, a mask: 15 registers for T = 4.
static inline __attribute__((always_inline)) TVNNI void tile_vnni_pair(const uint8_t *w, const int8_t *x, size_t xs, int nblk,
                                                                        __m256i *sum, const int R, const int T) {
    __m256i acc[2][4];
    const __m256i mask = _mm256_set1_epi8(3);
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int b = 0; b < nblk; b++) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i v[2];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) v[r] = _mm256_load_si256((const __m256i *)(w + 256 * (size_t)b + 64 * r + 32 * h));
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) {
                __m256i c[2], xv[4];
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_si256((const __m256i *)(x + (size_t)t * xs + 256 * (size_t)b + 64 * l + 32 * h));
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) c[r] = _mm256_and_si256(l ? _mm256_srli_epi16(v[r], 2 * l) : v[r], mask);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
#pragma GCC unroll 2
                    for (int r = 0; r < R; r++) acc[r][t] = dpbusd256(acc[r][t], c[r], xv[t]);
            }
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) sum[t * 2 + r] = acc[r][t];
}

static inline __attribute__((always_inline)) TVNNI void tile_vnni(const uint8_t *w, const int8_t *x, size_t xs, int nblk,
                                                                   int32_t *out, const int R, const int T) {
    __m256i s[2][8];   // [pair][t * 2 + r]
    const __m256i z = _mm256_setzero_si256();
    tile_vnni_pair(w, x, xs, nblk, s[0], R < 2 ? R : 2, T);
    if (R > 2) tile_vnni_pair(w + 128, x, xs, nblk, s[1], R - 2, T);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        _mm_storeu_si128((__m128i *)(out + t * TILE_R), hsum4_256(s[0][2 * t], R > 1 ? s[0][2 * t + 1] : z, R > 2 ? s[1][2 * t] : z,
                                                                  R > 3 ? s[1][2 * t + 1] : z));
}

// Decode (T = 1): the AND-only scheme of tile512_dec (v & (3 << 2l) = c * 4^l into acc[r][l],
// shifted back exactly at the end), rows two at a time: 8 accumulators, 4 masks, the two rows'
// bytes, one sub-vector of activations. Same lane bound as tile512_dec.
static inline __attribute__((always_inline)) TVNNI void tile_vnni_dec_pair(const uint8_t *w, const int8_t *x, int nblk,
                                                                            __m256i *sum, const int R) {
    __m256i acc[2][4], mask[4];
#pragma GCC unroll 4
    for (int l = 0; l < 4; l++) mask[l] = _mm256_set1_epi8((char)(3 << (2 * l)));
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) acc[r][l] = _mm256_setzero_si256();
    for (int b = 0; b < nblk; b++) {
#pragma GCC unroll 2
        for (int r = 0; r < 2; r++) _mm_prefetch((const char *)(w + 256 * (size_t)(b + PF_AHEAD) + 64 * r), PF_HINT);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i v[2];
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) v[r] = _mm256_load_si256((const __m256i *)(w + 256 * (size_t)b + 64 * r + 32 * h));
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) {
                const __m256i xv = _mm256_loadu_si256((const __m256i *)(x + 256 * (size_t)b + 64 * l + 32 * h));
#pragma GCC unroll 2
                for (int r = 0; r < R; r++) acc[r][l] = dpbusd256(acc[r][l], _mm256_and_si256(v[r], mask[l]), xv);
            }
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        sum[r] = acc[r][0];
#pragma GCC unroll 3
        for (int l = 1; l < 4; l++) sum[r] = _mm256_add_epi32(sum[r], _mm256_srai_epi32(acc[r][l], 2 * l));
    }
}

static inline __attribute__((always_inline)) TVNNI void tile_vnni_dec(const uint8_t *w, const int8_t *x, int nblk, int32_t *out,
                                                                       const int R) {
    const __m256i z = _mm256_setzero_si256();
    __m256i s[4] = {z, z, z, z};
    tile_vnni_dec_pair(w, x, nblk, s, R < 2 ? R : 2);
    if (R > 2) tile_vnni_dec_pair(w + 128, x, nblk, s + 2, R - 2);
    _mm_storeu_si128((__m128i *)out, hsum4_256(s[0], s[1], s[2], s[3]));
}

// ------------------------------------------------------------------ AVX2
// Per 256-column block the 8 vpmaddubsw results of each (row, token) are summed in int16
// (|sum| <= 8 * 512 = 4096, exact), then widened once per block with vpmaddwd into int32.
static inline __attribute__((always_inline)) T256 void tile256(const uint8_t *w, const int8_t *x, size_t xs, int nblk,
                                                                int32_t *out, const int R, const int T) {
    __m256i acc[TILE_R][2];
    const __m256i mask = _mm256_set1_epi8(3);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int b = 0; b < nblk; b++) {
        if (T == 1) {   // decode: memory-bound; prefetch the weight stream ahead
#pragma GCC unroll 4
            for (int r = 0; r < TILE_R; r++) _mm_prefetch((const char *)(w + 256 * (size_t)(b + PF_AHEAD) + 64 * r), PF_HINT);
        }
        __m256i s16[TILE_R][2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) s16[r][t] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) {
                __m256i c[TILE_R];
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) {
                    __m256i v = _mm256_load_si256((const __m256i *)(w + 256 * (size_t)b + 64 * r + 32 * h));
                    c[r] = _mm256_and_si256(_mm256_srli_epi16(v, 2 * l), mask);
                }
#pragma GCC unroll 2
                for (int t = 0; t < T; t++) {
                    __m256i xv = _mm256_loadu_si256((const __m256i *)(x + (size_t)t * xs + 256 * (size_t)b + 64 * l + 32 * h));
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) {
                        s16[r][t] = _mm256_add_epi16(s16[r][t], _mm256_maddubs_epi16(c[r], xv));
                        // an empty asm keeps the int16 sum sequential: otherwise GCC adds the 8
                        // products of a block as a tree, keeps them all live and spills (measured:
                        // +35% prefill on Zen 5, single core)
                        __asm__("" : "+x"(s16[r][t]));
                    }
                }
            }
        }
        const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(s16[r][t], ones));
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[r][t]), _mm256_extracti128_si256(acc[r][t], 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
            out[t * TILE_R + r] = _mm_cvtsi128_si32(s);
        }
}

// ------------------------------------------------------------------ instances and sets
#define DEF512(R, T)                                                                                       \
    static T512 void t512_##R##_##T(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *a) { \
        if (T == 1) tile512_dec(w, x, nblk, a, R);                                                         \
        else tile512(w, x, xs, nblk, a, R, T);                                                             \
    }
#define DEF512_R(R) DEF512(R, 1) DEF512(R, 2) DEF512(R, 3) DEF512(R, 4) DEF512(R, 5) DEF512(R, 6)
DEF512_R(1) DEF512_R(2) DEF512_R(3) DEF512_R(4)
#define DEFVNNI(R, T)                                                                                       \
    static TVNNI void tvnni_##R##_##T(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *a) { \
        if (T == 1) tile_vnni_dec(w, x, nblk, a, R);                                                        \
        else tile_vnni(w, x, xs, nblk, a, R, T);                                                            \
    }
#define DEFVNNI_R(R) DEFVNNI(R, 1) DEFVNNI(R, 2) DEFVNNI(R, 3) DEFVNNI(R, 4)
DEFVNNI_R(1) DEFVNNI_R(2) DEFVNNI_R(3) DEFVNNI_R(4)
#define DEF256(R, T)                                                                                       \
    static T256 void t256_##R##_##T(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *a) { \
        tile256(w, x, xs, nblk, a, R, T);                                                                  \
    }
DEF256(1, 1) DEF256(1, 2) DEF256(2, 1) DEF256(2, 2) DEF256(3, 1) DEF256(3, 2) DEF256(4, 1) DEF256(4, 2)

#define ROW512(R) {t512_##R##_1, t512_##R##_2, t512_##R##_3, t512_##R##_4, t512_##R##_5, t512_##R##_6}
#define ROWVNNI(R) {tvnni_##R##_1, tvnni_##R##_2, tvnni_##R##_3, tvnni_##R##_4}
static const tern_tile_set set512 = {6, 0, {ROW512(1), ROW512(2), ROW512(3), ROW512(4)}, {t512_1_1, t512_2_1, t512_3_1, t512_4_1}};
static const tern_tile_set setvnni = {4, 0, {ROWVNNI(1), ROWVNNI(2), ROWVNNI(3), ROWVNNI(4)},
                                      {tvnni_1_1, tvnni_2_1, tvnni_3_1, tvnni_4_1}};
static const tern_tile_set set256 = {2, 0, {{t256_1_1, t256_1_2}, {t256_2_1, t256_2_2}, {t256_3_1, t256_3_2}, {t256_4_1, t256_4_2}},
                                     {t256_1_1, t256_2_1, t256_3_1, t256_4_1}};

const tern_tile_set *tern_tiles_for(tern_kernel_kind k) {
    switch (k) {
    case TERN_KERNEL_AVX2: return &set256;
    case TERN_KERNEL_AVXVNNI: return &setvnni;
    case TERN_KERNEL_AVX512VNNI: return &set512;
    default: return NULL;
    }
}

#else
typedef int tern_kernels_x86_unused;   // ISO C: a translation unit is not empty
#endif
