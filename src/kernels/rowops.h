// rowops.h — float row reductions shared by training (ops_norm.c) and the runtime, so both add in
// the same order. Sums run in 16 independent lanes (which the compiler turns into vector adds
// without reassociating anything: the order is fixed by this code), then the lanes are added
// pairwise. libc only.
#ifndef TERN_ROWOPS_H
#define TERN_ROWOPS_H

#define TERN_LANES 16

// lanes[0] + ... + lanes[TERN_LANES-1], pairwise
static inline float tern_lanes_sum(float *acc) {
    for (int w = TERN_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

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

// sum_i x[i]^2
static inline float tern_sumsq_lanes(const float *x, int n) { return tern_dot_lanes(x, x, n); }

#endif
