// kernels_arm.c — AArch64 tile kernels (see tiles.h): NEON (ARMv8.0 Advanced SIMD, every AArch64
// CPU), dotprod (ARMv8.2 sdot: Cortex-A55/A76 and later, Raspberry Pi 5, Graviton 2+, Apple M1+) and
// i8mm (smmla: Cortex-A510/A710/X2 and later, Graviton 3+, Apple M2+), each compiled per function
// (target attributes) and picked at run time from getauxval(AT_HWCAP/AT_HWCAP2), so the library
// itself needs only ARMv8.0. Empty on other architectures.
//
// All compute acc = sum_k x_k * c_k (codes c = w + 1 in {0,1,2}) exactly in int32:
//   NEON:    smlal/smlal2 (s8 x s8 → int16; per 256-column block each int16 lane takes 32
//            products |c*x| <= 256, |sum| <= 8192: exact), widened once per block with sadalp
//   dotprod: sdot (s8 x s8, 4 products into each int32 lane)
//   i8mm:    smmla (a 2x8 by 8x2 s8 product into a 2x2 int32 tile: 2 weight rows x 2 tokens)
#if defined(__aarch64__)
#include "kernels/tiles.h"
#include <arm_neon.h>
#ifdef __linux__
#include <sys/auxv.h>
#endif

// AT_HWCAP / AT_HWCAP2 bits (Linux arch/arm64/include/uapi/asm/hwcap.h)
#define TERN_HWCAP_ASIMD (1UL << 1)
#define TERN_HWCAP_ASIMDDP (1UL << 20)
#define TERN_HWCAP2_I8MM (1UL << 13)

int tern_cpu_has(tern_kernel_kind k) {
#ifdef __linux__
    const unsigned long h = getauxval(AT_HWCAP), h2 = getauxval(AT_HWCAP2);
#else
    const unsigned long h = TERN_HWCAP_ASIMD, h2 = 0;   // elsewhere: the ARMv8.0 baseline only
#endif
    switch (k) {
    case TERN_KERNEL_NEON: return (h & TERN_HWCAP_ASIMD) != 0;
    case TERN_KERNEL_DOTPROD: return (h & TERN_HWCAP_ASIMD) && (h & TERN_HWCAP_ASIMDDP);
    case TERN_KERNEL_I8MM: return (h & TERN_HWCAP_ASIMD) && (h & TERN_HWCAP_ASIMDDP) && (h2 & TERN_HWCAP2_I8MM);
    default: return 0;
    }
}

#define INL static inline __attribute__((always_inline))
#define TDOT __attribute__((target("arch=armv8.2-a+dotprod")))
#define TMM __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#define NOSCHED __attribute__((optimize("no-schedule-insns")))

// codes of sub-vector l (columns 64l + 16q .. +15 of a block) from the 16 bytes v of quarter q
INL uint8x16_t codes(uint8x16_t v, const int l) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    switch (l) {
    case 0: return vandq_u8(v, m3);
    case 1: return vandq_u8(vshrq_n_u8(v, 2), m3);
    case 2: return vandq_u8(vshrq_n_u8(v, 4), m3);
    default: return vshrq_n_u8(v, 6);
    }
}

// ------------------------------------------------------------------ NEON (ARMv8.0)
// T <= 2 tokens, R <= 4 rows: 8 int32 + 8 int16 accumulators, the 4 rows' bytes of one quarter,
// their codes and the tokens' activations (26 of the 32 vector registers).
INL void tile_neon(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *out, const int R, const int T) {
    int32x4_t acc[TILE_R][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_s32(0);
    for (int b = 0; b < nblk; b++) {
        if (T == 1) {
#pragma GCC unroll 4
            for (int r = 0; r < TILE_R; r++) __builtin_prefetch(w + 256 * (size_t)(b + PF_AHEAD) + 64 * r);
        }
        int16x8_t s16[TILE_R][2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) s16[r][t] = vdupq_n_s16(0);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            uint8x16_t v[TILE_R];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) v[r] = vld1q_u8(w + 256 * (size_t)b + 64 * r + 16 * q);
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) {
                int8x16_t c[TILE_R];
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) c[r] = vreinterpretq_s8_u8(codes(v[r], l));
#pragma GCC unroll 2
                for (int t = 0; t < T; t++) {
                    const int8x16_t xv = vld1q_s8(x + (size_t)t * xs + 256 * (size_t)b + 64 * l + 16 * q);
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) {
                        s16[r][t] = vmlal_s8(s16[r][t], vget_low_s8(c[r]), vget_low_s8(xv));
                        s16[r][t] = vmlal_high_s8(s16[r][t], c[r], xv);
                    }
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) acc[r][t] = vpadalq_s16(acc[r][t], s16[r][t]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) out[t * TILE_R + r] = vaddvq_s32(acc[r][t]);
}

// ------------------------------------------------------------------ dotprod (ARMv8.2 sdot)
// Prefill, T <= 4 tokens: acc[4][4], the rows' bytes of one quarter, codes, activations (28 registers).
INL TDOT void tile_dot(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *out, const int R, const int T) {
    int32x4_t acc[TILE_R][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_s32(0);
    // one quarter (16 columns of each sub-vector) per iteration, not unrolled: unrolled, GCC
    // hoists the loads of all four and spills the accumulators
    for (int bq = 0; bq < 4 * nblk; bq++) {
        const uint8_t *wq = w + 256 * (size_t)(bq >> 2) + 16 * (size_t)(bq & 3);
        const int8_t *xq = x + 256 * (size_t)(bq >> 2) + 16 * (size_t)(bq & 3);
        {
            uint8x16_t v[TILE_R];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) v[r] = vld1q_u8(wq + 64 * r);
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) {
                int8x16_t c[TILE_R];
#pragma GCC unroll 4
                for (int r = 0; r < R; r++) c[r] = vreinterpretq_s8_u8(codes(v[r], l));
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const int8x16_t xv = vld1q_s8(xq + (size_t)t * xs + 64 * l);
#pragma GCC unroll 4
                    for (int r = 0; r < R; r++) acc[r][t] = vdotq_s32(acc[r][t], c[r], xv);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) out[t * TILE_R + r] = vaddvq_s32(acc[r][t]);
}

// Decode (T = 1), as the x86 decode kernels: sub-vector l of a quarter is taken as
// v & (3 << 2l) = c * 4^l for l = 0..2 (<= 32: fits sdot's s8 operand) and as v >> 6 = c for
// l = 3 (c * 64 = 128 would not), each into its own accumulator acc[r][l]; an exact arithmetic
// shift right by 2l (l < 3) per lane at the end undoes the factor. Lane bound: 16 products of
// |32 * 128| per lane per block, 2^16 * nblk < 2^31 for cols <= 2^22. 16 accumulator chains.
INL TDOT void tile_dot_dec(const uint8_t *w, const int8_t *x, int nblk, int32_t *out, const int R) {
    int32x4_t acc[TILE_R][4];
    const uint8x16_t m0 = vdupq_n_u8(3), m1 = vdupq_n_u8(12), m2 = vdupq_n_u8(48);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) acc[r][l] = vdupq_n_s32(0);
    // one quarter per iteration, not unrolled (see tile_dot); each prefetches one of the 4 rows'
    // 64-byte lines of the block PF_AHEAD ahead
    for (int bq = 0; bq < 4 * nblk; bq++) {
        const size_t off = 256 * (size_t)(bq >> 2) + 16 * (size_t)(bq & 3);
        __builtin_prefetch(w + 256 * ((size_t)(bq >> 2) + PF_AHEAD) + 64 * (size_t)(bq & 3));
        {
            int8x16_t xv[4];
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) xv[l] = vld1q_s8(x + off + 64 * l);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const uint8x16_t v = vld1q_u8(w + off + 64 * r);
                acc[r][0] = vdotq_s32(acc[r][0], vreinterpretq_s8_u8(vandq_u8(v, m0)), xv[0]);
                acc[r][1] = vdotq_s32(acc[r][1], vreinterpretq_s8_u8(vandq_u8(v, m1)), xv[1]);
                acc[r][2] = vdotq_s32(acc[r][2], vreinterpretq_s8_u8(vandq_u8(v, m2)), xv[2]);
                acc[r][3] = vdotq_s32(acc[r][3], vreinterpretq_s8_u8(vshrq_n_u8(v, 6)), xv[3]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        const int32x4_t s = vaddq_s32(vaddq_s32(acc[r][0], vshrq_n_s32(acc[r][1], 2)), vaddq_s32(vshrq_n_s32(acc[r][2], 4), acc[r][3]));
        out[r] = vaddvq_s32(s);
    }
}

// ------------------------------------------------------------------ i8mm (smmla)
// Prefill, T <= 8 tokens in pairs (the token-pair layout of tiles.h: 16 bytes = 8 columns of
// token 2p then the same 8 columns of token 2p+1), rows in pairs: acc[row pair][token pair] holds
// [r0.t0, r0.t1, r1.t0, r1.t1]. Per quarter q and sub-vector l the codes of rows 2p, 2p+1 are
// zipped into [r0 cols 0-7 | r1 cols 0-7] and [.. 8-15 | .. 8-15]: 16 smmla per (q, l) for 4 rows
// x 8 tokens. An odd T's missing token (and R's missing row) are computed and dropped.
INL TMM void tile_mm(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *out, const int R, const int T) {
    const int RP = (R + 1) / 2, TP = (T + 1) / 2;
    int32x4_t acc[2][4];
#pragma GCC unroll 2
    for (int p = 0; p < RP; p++)
#pragma GCC unroll 4
        for (int u = 0; u < TP; u++) acc[p][u] = vdupq_n_s32(0);
    for (int b = 0; b < nblk; b++) {
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            uint8x16_t v[TILE_R];
#pragma GCC unroll 4
            for (int r = 0; r < 2 * RP; r++) v[r] = r < R ? vld1q_u8(w + 256 * (size_t)b + 64 * r + 16 * q) : vdupq_n_u8(0);
#pragma GCC unroll 4
            for (int l = 0; l < 4; l++) {
                int8x16_t a[2][2];
#pragma GCC unroll 2
                for (int p = 0; p < RP; p++) {
                    const uint64x2_t c0 = vreinterpretq_u64_u8(codes(v[2 * p], l)), c1 = vreinterpretq_u64_u8(codes(v[2 * p + 1], l));
                    a[p][0] = vreinterpretq_s8_u64(vzip1q_u64(c0, c1));
                    a[p][1] = vreinterpretq_s8_u64(vzip2q_u64(c0, c1));
                }
#pragma GCC unroll 4
                for (int u = 0; u < TP; u++) {
                    const int8_t *xp = x + (size_t)u * 2 * xs + 512 * (size_t)b + 128 * l + 32 * q;
                    const int8x16_t x0 = vld1q_s8(xp), x1 = vld1q_s8(xp + 16);
#pragma GCC unroll 2
                    for (int p = 0; p < RP; p++) {
                        acc[p][u] = vmmlaq_s32(acc[p][u], a[p][0], x0);
                        acc[p][u] = vmmlaq_s32(acc[p][u], a[p][1], x1);
                    }
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int p = 0; p < RP; p++)
#pragma GCC unroll 4
        for (int u = 0; u < TP; u++) {
            int32_t s[4];
            vst1q_s32(s, acc[p][u]);
            for (int i = 0; i < 4; i++) {
                const int r = 2 * p + i / 2, t = 2 * u + i % 2;
                if (r < R && t < T) out[t * TILE_R + r] = s[i];
            }
        }
}

// ------------------------------------------------------------------ instances and sets
#define DEFNEON(R, T) \
    static void tneon_##R##_##T(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *a) { tile_neon(w, x, xs, nblk, a, R, T); }
DEFNEON(1, 1) DEFNEON(1, 2) DEFNEON(2, 1) DEFNEON(2, 2) DEFNEON(3, 1) DEFNEON(3, 2) DEFNEON(4, 1) DEFNEON(4, 2)
// no-schedule-insns: GCC's scheduling before register allocation lifts all 16 codes of a quarter
// ahead of the sdots and spills accumulators; without it the loops stay in registers
#define DEFDOT(R, T)                                                                                       \
    static TDOT NOSCHED void tdot_##R##_##T(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *a) { \
        if (T == 1) tile_dot_dec(w, x, nblk, a, R);                                                        \
        else tile_dot(w, x, xs, nblk, a, R, T);                                                            \
    }
#define DEFDOT_R(R) DEFDOT(R, 1) DEFDOT(R, 2) DEFDOT(R, 3) DEFDOT(R, 4)
DEFDOT_R(1) DEFDOT_R(2) DEFDOT_R(3) DEFDOT_R(4)
#define DEFMM(R, T) \
    static TMM void tmm_##R##_##T(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *a) { tile_mm(w, x, xs, nblk, a, R, T); }
#define DEFMM_R(R) DEFMM(R, 1) DEFMM(R, 2) DEFMM(R, 3) DEFMM(R, 4) DEFMM(R, 5) DEFMM(R, 6) DEFMM(R, 7) DEFMM(R, 8)
DEFMM_R(1) DEFMM_R(2) DEFMM_R(3) DEFMM_R(4)

#define ROWDOT(R) {tdot_##R##_1, tdot_##R##_2, tdot_##R##_3, tdot_##R##_4}
#define ROWMM(R) {tmm_##R##_1, tmm_##R##_2, tmm_##R##_3, tmm_##R##_4, tmm_##R##_5, tmm_##R##_6, tmm_##R##_7, tmm_##R##_8}
static const tern_tile_set setneon = {2, 0, {{tneon_1_1, tneon_1_2}, {tneon_2_1, tneon_2_2}, {tneon_3_1, tneon_3_2}, {tneon_4_1, tneon_4_2}},
                                      {tneon_1_1, tneon_2_1, tneon_3_1, tneon_4_1}};
static const tern_tile_set setdot = {4, 0, {ROWDOT(1), ROWDOT(2), ROWDOT(3), ROWDOT(4)}, {tdot_1_1, tdot_2_1, tdot_3_1, tdot_4_1}};
static const tern_tile_set setmm = {8, 1, {ROWMM(1), ROWMM(2), ROWMM(3), ROWMM(4)}, {tdot_1_1, tdot_2_1, tdot_3_1, tdot_4_1}};

const tern_tile_set *tern_tiles_for(tern_kernel_kind k) {
    switch (k) {
    case TERN_KERNEL_NEON: return &setneon;
    case TERN_KERNEL_DOTPROD: return &setdot;
    case TERN_KERNEL_I8MM: return &setmm;
    default: return NULL;
    }
}

#else
typedef int tern_kernels_arm_unused;   // ISO C: a translation unit is not empty
#endif
