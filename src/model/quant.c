// quant.c — BitNet b1.58 weight (absmean ternary) and activation (absmax int8) quantizers.
#include "model/quant.h"
#include <math.h>
#include <stdlib.h>

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

void tern_weight_quantize_i8(const float *w, long n, float s, int8_t *wq) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) wq[i] = (int8_t)ternary_of(w[i], s);
}

// max |x| in 16 lanes (vectorizes; max is exact in any order, so the result is the same as a
// sequential scan: NaNs are skipped either way)
static inline float act_scale(const float *x, int n) {
    float lane[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) { float a = fabsf(x[i + j]); lane[j] = a > lane[j] ? a : lane[j]; }
    float m = 0.0f;
    for (; i < n; i++) { float a = fabsf(x[i]); m = a > m ? a : m; }
    for (int j = 0; j < 16; j++) m = lane[j] > m ? lane[j] : m;
    return 127.0f / (m > TERN_QUANT_EPS ? m : TERN_QUANT_EPS);
}

static inline float int8_of(float x, float s) {
    float q = rintf(x * s) + 0.0f; // + 0.0f turns -0 into +0
    return q > 127.0f ? 127.0f : (q < -128.0f ? -128.0f : q);
}

float tern_act_quantize_row(const float *x, int n, float *xq) {
    float s = act_scale(x, n);
    for (int i = 0; i < n; i++) xq[i] = int8_of(x[i], s);
    return s;
}

float tern_act_quantize_row_i8(const float *x, int n, int8_t *xq) {
    float s = act_scale(x, n);
    for (int i = 0; i < n; i++) xq[i] = (int8_t)int8_of(x[i], s);
    return s;
}
