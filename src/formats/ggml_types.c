// ggml_types.c — ggml tensor type table, dequantizers and quantizers (layouts: ggml_types.h).
// libc/libm/OpenMP only. Written from the layouts ggml documents (ggml-common.h, ggml-quants.c) and
// bitnet.cpp's I2_S packer; the dequantizers repeat ggml's float arithmetic operation for
// operation, so their results are bit-identical to ggml's (scripts/interop checks it against
// llama.cpp's own library).
#include "formats/ggml_types.h"
#include "formats/tqpack.h"
#include "model/quant.h"
#include "util.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

// ---------------------------------------------------------------- type table
typedef struct { const char *name; int64_t blck; size_t size; } type_info;

// sizes from ggml's type traits (block elements, bytes per block); removed/unknown numbers: 0
static const type_info types[TERN_GGML_NTYPES] = {
    [0] = {"f32", 1, 4},        [1] = {"f16", 1, 2},        [2] = {"q4_0", 32, 18},     [3] = {"q4_1", 32, 20},
    [6] = {"q5_0", 32, 22},     [7] = {"q5_1", 32, 24},     [8] = {"q8_0", 32, 34},     [9] = {"q8_1", 32, 36},
    [10] = {"q2_K", 256, 84},   [11] = {"q3_K", 256, 110},  [12] = {"q4_K", 256, 144},  [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},  [15] = {"q8_K", 256, 292},  [16] = {"iq2_xxs", 256, 66}, [17] = {"iq2_xs", 256, 74},
    [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50}, [20] = {"iq4_nl", 32, 18},  [21] = {"iq3_s", 256, 110},
    [22] = {"iq2_s", 256, 82},  [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},       [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},       [27] = {"i64", 1, 8},       [28] = {"f64", 1, 8},       [29] = {"iq1_m", 256, 56},
    [30] = {"bf16", 1, 2},      [34] = {"tq1_0", 256, 54},  [35] = {"tq2_0", 256, 66},  [36] = {"i2_s", TERN_I2S_BLOCK, 32},
};

static const type_info *info(int t) { return (t >= 0 && t < TERN_GGML_NTYPES && types[t].name) ? &types[t] : NULL; }

const char *tern_ggml_type_name(int t) { return info(t) ? info(t)->name : "?"; }
int tern_ggml_type_known(int t) { return info(t) != NULL; }
int64_t tern_ggml_block_elems(int t) { return info(t) ? info(t)->blck : 0; }
size_t tern_ggml_block_bytes(int t) { return info(t) ? info(t)->size : 0; }

int tern_ggml_type_parse(const char *name) {
    for (int t = 0; t < TERN_GGML_NTYPES; t++)
        if (types[t].name && strcasecmp(types[t].name, name) == 0) return t;
    return -1;
}

size_t tern_ggml_row_bytes(int t, int64_t n) {
    int64_t be = tern_ggml_block_elems(t);
    if (be == 0 || n <= 0 || n % be != 0) return 0;
    return (size_t)(n / be) * tern_ggml_block_bytes(t);
}

int tern_ggml_nbytes(int t, int n_dims, const int64_t *ne, size_t *nbytes) {
    if (!tern_ggml_type_known(t)) { tern_error("unsupported tensor type %d", t); return -1; }
    if (n_dims < 1 || n_dims > 4) { tern_error("n_dims %d out of range 1..4", n_dims); return -1; }
    for (int i = 0; i < n_dims; i++)
        if (ne[i] <= 0) { tern_error("dimension %d is %lld (must be > 0)", i, (long long)ne[i]); return -1; }
    int64_t be = tern_ggml_block_elems(t);
    if (ne[0] % be != 0) {
        tern_error("row length %lld is not a multiple of the %s block size %lld", (long long)ne[0], tern_ggml_type_name(t), (long long)be);
        return -1;
    }
    // bytes = (ne0/be)*bb * ne1 * ne2 * ne3 (+ the I2_S tail), overflow-checked against 2^62
    const uint64_t lim = (uint64_t)1 << 62;
    uint64_t b = (uint64_t)(ne[0] / be) * tern_ggml_block_bytes(t);
    if (b > lim) goto overflow;
    for (int i = 1; i < n_dims; i++) {
        if ((uint64_t)ne[i] > lim / b) goto overflow;
        b *= (uint64_t)ne[i];
    }
    if (t == TERN_GGML_I2_S) b += TERN_I2S_TAIL;
    if (b > (uint64_t)SIZE_MAX) goto overflow;
    *nbytes = (size_t)b;
    return 0;
overflow:
    tern_error("tensor size overflows");
    return -1;
}

// ---------------------------------------------------------------- scalars
static float half(const uint8_t *p) { return tern_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }
static void put_half(uint8_t *p, float f) {
    uint16_t h = tern_fp32_to_fp16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

uint16_t tern_fp32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);   // NaN stays (quiet) NaN
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

float tern_bf16_to_fp32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// the 6-bit scale and min of sub-block j of a Q4_K/Q5_K block
static void scale_min_k4(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

// ---------------------------------------------------------------- dequantizers
static void deq_q8_0(const uint8_t *b, float *y) {
    const float d = half(b);
    for (int i = 0; i < 32; i++) y[i] = (float)(int8_t)b[2 + i] * d;
}

static void deq_q4_k(const uint8_t *b, float *y) {
    const float d = half(b), dmin = half(b + 2);
    const uint8_t *s = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++, q += 32) {
        int sc, m;
        scale_min_k4(2 * c, s, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(2 * c + 1, s, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 15) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void deq_q5_k(const uint8_t *b, float *y) {
    const float d = half(b), dmin = half(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *q = b + 48;
    for (int c = 0; c < 4; c++, q += 32) {
        int sc, m;
        scale_min_k4(2 * c, s, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(2 * c + 1, s, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const int u1 = 1 << (2 * c), u2 = 2 << (2 * c);
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((q[l] & 15) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}

static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = half(b + 208);
    for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
            const int q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
            const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
}

int tern_ggml_dequant(int type, const void *x, int64_t n, float *out) {
    const uint8_t *p = x;
    int64_t be = tern_ggml_block_elems(type);
    if (be == 0 || n < 0 || n % be != 0 || type == TERN_GGML_I2_S) {
        tern_error("dequantize: %lld elements of type %s (%d) not supported", (long long)n, tern_ggml_type_name(type), type);
        return -1;
    }
    switch (type) {
    case TERN_GGML_F32: memcpy(out, x, sizeof(float) * (size_t)n); return 0;
    case TERN_GGML_F16:
        for (int64_t i = 0; i < n; i++) out[i] = half(p + 2 * i);
        return 0;
    case TERN_GGML_BF16:
        for (int64_t i = 0; i < n; i++) out[i] = tern_bf16_to_fp32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case TERN_GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) deq_q8_0(p + TERN_Q8_0_BYTES * b, out + 32 * b);
        return 0;
    case TERN_GGML_Q4_K:
        for (int64_t b = 0; b < n / 256; b++) deq_q4_k(p + TERN_Q4_K_BYTES * b, out + 256 * b);
        return 0;
    case TERN_GGML_Q5_K:
        for (int64_t b = 0; b < n / 256; b++) deq_q5_k(p + TERN_Q5_K_BYTES * b, out + 256 * b);
        return 0;
    case TERN_GGML_Q6_K:
        for (int64_t b = 0; b < n / 256; b++) deq_q6_k(p + TERN_Q6_K_BYTES * b, out + 256 * b);
        return 0;
    case TERN_GGML_TQ1_0: return n ? tern_tq1_dequant(x, n, out) : 0;
    case TERN_GGML_TQ2_0: return n ? tern_tq2_dequant(x, n, out) : 0;
    default:
        tern_error("dequantize: type %s (%d) not supported", tern_ggml_type_name(type), type);
        return -1;
    }
}

int tern_i2s_unpack(const void *x, int64_t n, int8_t *w, float *scale) {
    if (n <= 0 || n % TERN_I2S_BLOCK != 0) {
        tern_error("i2_s: %lld weights is not a positive multiple of %d", (long long)n, TERN_I2S_BLOCK);
        return -1;
    }
    const uint8_t *p = x;
    if (w)
        for (int64_t b = 0; b < n / TERN_I2S_BLOCK; b++)
            for (int g = 0; g < 4; g++)
                for (int m = 0; m < 32; m++) {
                    const int c = (p[32 * b + m] >> (6 - 2 * g)) & 3;
                    if (c == 3) {
                        tern_error("i2_s: weight %lld has code 3 (not a ternary value)", (long long)(TERN_I2S_BLOCK * b + 32 * g + m));
                        return -1;
                    }
                    w[TERN_I2S_BLOCK * b + 32 * g + m] = (int8_t)(c - 1);
                }
    if (scale) memcpy(scale, p + n / 4, sizeof(float));
    return 0;
}

int tern_i2s_pack(const int8_t *w, int64_t n, float scale, void *out) {
    if (n <= 0 || n % TERN_I2S_BLOCK != 0) {
        tern_error("i2_s: %lld weights is not a positive multiple of %d", (long long)n, TERN_I2S_BLOCK);
        return -1;
    }
    uint8_t *o = out;
    memset(o, 0, (size_t)(n / 4) + TERN_I2S_TAIL);
    for (int64_t i = 0; i < n; i++) {
        if (w[i] < -1 || w[i] > 1) { tern_error("i2_s: weight %lld is %d, not in {-1,0,1}", (long long)i, w[i]); return -1; }
        const int64_t b = i / TERN_I2S_BLOCK, j = i % TERN_I2S_BLOCK;
        o[32 * b + j % 32] |= (uint8_t)((w[i] + 1) << (6 - 2 * (j / 32)));
    }
    memcpy(o + n / 4, &scale, sizeof(float));
    return 0;
}

// ---------------------------------------------------------------- quantizers
// round half to even, as ggml's nearest_int (NaN -> 0 and huge values clamped: every caller clamps
// further, and a float-to-int conversion out of range would be undefined)
static int nearest(float f) { return tern_rint_clamp(f, -(1 << 24), 1 << 24); }

static void quant_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)(int8_t)nearest(x[i] * id);
}

// Symmetric sub-block quantizer: q in [-nmax, nmax-1] with x ~ s*q, minimizing the squared error
// over a few candidate scales around amax/nmax (both signs: the largest |x| may take -nmax).
// Returns s (0 for an all-zero sub-block).
static float fit_sym(const float *x, int n, int nmax) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); vmax = x[i]; }
    if (amax == 0.0f) return 0.0f;
    float best_s = 0.0f, best_e = INFINITY;
    for (int k = -12; k <= 12; k++) {
        const float s = -vmax / ((float)nmax + 0.1f * (float)k);   // the extreme maps to about -nmax
        double e = 0.0;
        for (int i = 0; i < n; i++) {
            int q = nearest(x[i] / s);
            q = q < -nmax ? -nmax : q > nmax - 1 ? nmax - 1 : q;
            const double r = (double)x[i] - (double)s * q;
            e += r * r;
        }
        if (e < best_e) { best_e = e; best_s = s; }
    }
    return best_s;
}

// Affine sub-block quantizer for Q4_K/Q5_K: x ~ s*q - m, q in [0, qmax], s > 0, m >= 0 (ggml's
// form). Least squares on a few (scale, min) candidates, each refined by one exact LSQ solve.
static void fit_affine(const float *x, int n, int qmax, float *s_out, float *m_out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) { lo = fminf(lo, x[i]); hi = fmaxf(hi, x[i]); }
    if (lo > 0.0f) lo = 0.0f;   // m >= 0: the grid must reach down to 0 or below
    if (hi <= lo) { *s_out = 0.0f; *m_out = -lo; return; }
    float best_s = (hi - lo) / (float)qmax, best_m = -lo;
    double best_e = INFINITY;
    for (int k = -4; k <= 8; k++) {
        float s = (hi - lo) / ((float)qmax + 0.2f * (float)k), m = -lo;
        for (int it = 0; it < 2; it++) {
            // assign q, then refit s, m by least squares (sum over x ~ s*q - m)
            double sq = 0, sqq = 0, sx = 0, sqx = 0;
            for (int i = 0; i < n; i++) {
                int q = nearest((x[i] + m) / s);
                q = q < 0 ? 0 : q > qmax ? qmax : q;
                sq += q; sqq += (double)q * q; sx += x[i]; sqx += (double)q * x[i];
            }
            const double det = n * sqq - sq * sq;
            if (det <= 0) break;
            double ns = (n * sqx - sq * sx) / det, nm = (sq * sqx - sqq * sx) / det;   // x ~ ns*q - nm
            if (nm < 0) { nm = 0; ns = sqq > 0 ? sqx / sqq : s; }
            if (!(ns > 0)) break;
            s = (float)ns;
            m = (float)nm;
        }
        double e = 0;
        for (int i = 0; i < n; i++) {
            int q = nearest((x[i] + m) / s);
            q = q < 0 ? 0 : q > qmax ? qmax : q;
            const double r = (double)x[i] - ((double)s * q - m);
            e += r * r;
        }
        if (e < best_e) { best_e = e; best_s = s; best_m = m; }
    }
    *s_out = best_s;
    *m_out = best_m;
}

// Q4_K (qbits 4) / Q5_K (qbits 5): one 256-weight block
static void quant_qk_affine(const float *x, uint8_t *b, int qbits) {
    const int qmax = (1 << qbits) - 1;
    float sc[8], mn[8], max_sc = 0.0f, max_mn = 0.0f;
    for (int j = 0; j < 8; j++) {
        fit_affine(x + 32 * j, 32, qmax, &sc[j], &mn[j]);
        max_sc = fmaxf(max_sc, sc[j]);
        max_mn = fmaxf(max_mn, mn[j]);
    }
    const float d = max_sc / 63.0f, dmin = max_mn / 63.0f;
    put_half(b, d);
    put_half(b + 2, dmin);
    const float dd = half(b), dm = half(b + 2);   // the stored (fp16) super-scales
    uint8_t *s = b + 4;
    memset(s, 0, 12);
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = dd > 0.0f ? nearest(sc[j] / dd) : 0;
        lm[j] = dm > 0.0f ? nearest(mn[j] / dm) : 0;
        ls[j] = ls[j] < 0 ? 0 : ls[j] > 63 ? 63 : ls[j];
        lm[j] = lm[j] < 0 ? 0 : lm[j] > 63 ? 63 : lm[j];
        if (j < 4) {
            s[j] = (uint8_t)ls[j];
            s[j + 4] = (uint8_t)lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 15) | (lm[j] & 15) << 4);
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    uint8_t L[256];
    for (int j = 0; j < 8; j++) {
        int sc6, m6;
        scale_min_k4(j, s, &sc6, &m6);
        const float ds = dd * (float)sc6, dmn = dm * (float)m6;   // the stored sub-block scale and min
        for (int i = 0; i < 32; i++) {
            int q = ds > 0.0f ? nearest((x[32 * j + i] + dmn) / ds) : 0;
            L[32 * j + i] = (uint8_t)(q < 0 ? 0 : q > qmax ? qmax : q);
        }
    }
    uint8_t *qh = qbits == 5 ? b + 16 : NULL, *q = b + (qbits == 5 ? 48 : 16);
    if (qh) memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            const int a = L[64 * c + l], z = L[64 * c + 32 + l];
            q[32 * c + l] = (uint8_t)((a & 15) | (z & 15) << 4);
            if (qh) qh[l] |= (uint8_t)(((a >> 4) << (2 * c)) | ((z >> 4) << (2 * c + 1)));
        }
}

static void quant_q6_k(const float *x, uint8_t *b) {
    float sc[16], amax = 0.0f, vmax = 0.0f;
    for (int j = 0; j < 16; j++) {
        sc[j] = fit_sym(x + 16 * j, 16, 32);
        if (fabsf(sc[j]) > amax) { amax = fabsf(sc[j]); vmax = sc[j]; }
    }
    int8_t *scales = (int8_t *)(b + 192);
    const float d = amax > 0.0f ? -vmax / 128.0f : 0.0f;   // the largest scale maps to -128
    put_half(b + 208, d);
    const float dd = half(b + 208);
    int L[256];
    for (int j = 0; j < 16; j++) {
        int ls = dd != 0.0f ? nearest(sc[j] / dd) : 0;
        ls = ls < -128 ? -128 : ls > 127 ? 127 : ls;
        scales[j] = (int8_t)ls;
        const float ds = dd * (float)ls;
        for (int i = 0; i < 16; i++) {
            int q = ds != 0.0f ? nearest(x[16 * j + i] / ds) : 0;
            L[16 * j + i] = (q < -32 ? -32 : q > 31 ? 31 : q) + 32;
        }
    }
    uint8_t *ql = b, *qh = b + 128;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int *Lh = L + 128 * h;
            const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
            ql[64 * h + l] = (uint8_t)((q1 & 15) | (q3 & 15) << 4);
            ql[64 * h + 32 + l] = (uint8_t)((q2 & 15) | (q4 & 15) << 4);
            qh[32 * h + l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
        }
}

int tern_ggml_quantize(int type, const float *x, int64_t n, void *out) {
    uint8_t *o = out;
    int64_t be = tern_ggml_block_elems(type);
    if (be == 0 || n <= 0 || n % be != 0) {
        tern_error("quantize: %lld elements of type %s (%d): not a positive multiple of the block size", (long long)n,
                   tern_ggml_type_name(type), type);
        return -1;
    }
    switch (type) {
    case TERN_GGML_F32: memcpy(out, x, sizeof(float) * (size_t)n); return 0;
    case TERN_GGML_F16:
        for (int64_t i = 0; i < n; i++) put_half(o + 2 * i, x[i]);
        return 0;
    case TERN_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = tern_fp32_to_bf16(x[i]);
            o[2 * i] = (uint8_t)h;
            o[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return 0;
    // blocks are independent: large tensors are split over OpenMP threads (same bytes for any count)
    case TERN_GGML_Q8_0:
        #pragma omp parallel for schedule(static) if (n >= (1 << 20))
        for (int64_t b = 0; b < n / 32; b++) quant_q8_0(x + 32 * b, o + TERN_Q8_0_BYTES * b);
        return 0;
    case TERN_GGML_Q4_K:
        #pragma omp parallel for schedule(static) if (n >= (1 << 16))
        for (int64_t b = 0; b < n / 256; b++) quant_qk_affine(x + 256 * b, o + TERN_Q4_K_BYTES * b, 4);
        return 0;
    case TERN_GGML_Q5_K:
        #pragma omp parallel for schedule(static) if (n >= (1 << 16))
        for (int64_t b = 0; b < n / 256; b++) quant_qk_affine(x + 256 * b, o + TERN_Q5_K_BYTES * b, 5);
        return 0;
    case TERN_GGML_Q6_K:
        #pragma omp parallel for schedule(static) if (n >= (1 << 16))
        for (int64_t b = 0; b < n / 256; b++) quant_q6_k(x + 256 * b, o + TERN_Q6_K_BYTES * b);
        return 0;
    default:
        tern_error("quantize: type %s (%d) not supported", tern_ggml_type_name(type), type);
        return -1;
    }
}
