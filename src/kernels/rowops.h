// rowops.h — float row reductions shared by training (ops_norm.c) and the runtime, so both add in
// the same order. Sums run in 16 independent lanes (which the compiler turns into vector adds
// without reassociating anything: the order is fixed by this code), then the lanes are added
// pairwise. On AArch64 the same lanes are four NEON vectors, written out (same order, same bits:
// the ARM build compiles with -ffp-contract=off, so no multiply-add is fused here or in plain C).
// libc only (arm_neon.h on AArch64).
#ifndef TERN_ROWOPS_H
#define TERN_ROWOPS_H

#define TERN_LANES 16

// lanes[0] + ... + lanes[TERN_LANES-1], pairwise
static inline float tern_lanes_sum(float *acc) {
    for (int w = TERN_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

#if defined(__aarch64__)
#include <arm_neon.h>
// lanes 4j .. 4j+3 in v[j]; a step adds f(i + 4j .. i + 4j + 3) to v[j]
#define TERN_LANES_NEON(step)                                                        \
    float32x4_t v0 = vdupq_n_f32(0), v1 = v0, v2 = v0, v3 = v0;                      \
    int i = 0;                                                                       \
    for (; i + TERN_LANES <= n; i += TERN_LANES) {                                   \
        v0 = vaddq_f32(v0, step(i));                                                 \
        v1 = vaddq_f32(v1, step(i + 4));                                             \
        v2 = vaddq_f32(v2, step(i + 8));                                             \
        v3 = vaddq_f32(v3, step(i + 12));                                            \
    }                                                                                \
    float acc[TERN_LANES];                                                           \
    vst1q_f32(acc, v0); vst1q_f32(acc + 4, v1); vst1q_f32(acc + 8, v2); vst1q_f32(acc + 12, v3);

static inline float tern_dot_lanes(const float *a, const float *b, int n) {
#define TERN_DOT_STEP(k) vmulq_f32(vld1q_f32(a + (k)), vld1q_f32(b + (k)))
    TERN_LANES_NEON(TERN_DOT_STEP)
#undef TERN_DOT_STEP
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    return tern_lanes_sum(acc);
}

static inline float tern_dot3_lanes(const float *a, const float *b, const float *c, int n) {
#define TERN_DOT3_STEP(k) vmulq_f32(vmulq_f32(vld1q_f32(a + (k)), vld1q_f32(b + (k))), vld1q_f32(c + (k)))
    TERN_LANES_NEON(TERN_DOT3_STEP)
#undef TERN_DOT3_STEP
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i] * c[i];
    return tern_lanes_sum(acc);
}
#undef TERN_LANES_NEON
#else
// sum_i a[i] * b[i]
static inline float tern_dot_lanes(const float *a, const float *b, int n) {
    float acc[TERN_LANES] = {0};
    int i = 0;
    for (; i + TERN_LANES <= n; i += TERN_LANES)
        for (int j = 0; j < TERN_LANES; j++) acc[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    return tern_lanes_sum(acc);
}

// sum_i a[i] * b[i] * c[i]
static inline float tern_dot3_lanes(const float *a, const float *b, const float *c, int n) {
    float acc[TERN_LANES] = {0};
    int i = 0;
    for (; i + TERN_LANES <= n; i += TERN_LANES)
        for (int j = 0; j < TERN_LANES; j++) acc[j] += a[i + j] * b[i + j] * c[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i] * c[i];
    return tern_lanes_sum(acc);
}
#endif

// sum_i x[i]^2
static inline float tern_sumsq_lanes(const float *x, int n) { return tern_dot_lanes(x, x, n); }

#endif
