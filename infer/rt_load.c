// rt_load.c — building a runtime model: from a GGUF file (every BitLinear tensor type tern reads,
// repacked in parallel straight into the kernels' layout) or with random weights. See runtime.h
// for what is accepted.
#include "rt_internal.h"
#include "formats/ggml_types.h"
#include "formats/tqpack.h"
#include "model/quant.h"
#include "util.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const char *const rt_bitlinear_names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

void rt_bl_shape(const tern_rt_config *c, int j, int *rows, int *cols) {
    int r[7] = {c->dim, c->kv_dim, c->kv_dim, c->dim, c->ffn_dim, c->ffn_dim, c->dim};
    int k[7] = {c->dim, c->dim, c->dim, c->dim, c->dim, c->dim, c->ffn_dim};
    *rows = r[j];
    *cols = k[j];
}

#define SUPPORTED_BITLINEAR "tq2_0, tq1_0, i2_s, q8_0 (ternary-valued), f32, f16 or bf16"
#define SUPPORTED_MATRIX "f32, f16, bf16, q8_0, q4_K, q5_K or q6_K"

// ---------------------------------------------------------------------------------------------
// GGUF helpers

// an integer hyperparameter: any integer KV type, 1 <= value <= 1<<30
static int get_dim(const tern_gguf *g, const char *key, int required, int def, int *out) {
    const char *path = tern_gguf_path(g);
    if (tern_gguf_find_kv(g, key) < 0) {
        if (required) { tern_error("%s: missing key %s", path, key); return -1; }
        *out = def;
        return 0;
    }
    int64_t v;
    if (tern_gguf_get_i64(g, key, &v)) return -1;
    if (v < 1 || v > (1 << 30)) { tern_error("%s: key %s = %lld out of range", path, key, (long long)v); return -1; }
    *out = (int)v;
    return 0;
}

static int get_float(const tern_gguf *g, const char *key, int required, float def, float *out) {
    if (tern_gguf_find_kv(g, key) < 0) {
        if (required) { tern_error("%s: missing key %s", tern_gguf_path(g), key); return -1; }
        *out = def;
        return 0;
    }
    return tern_gguf_get_f32(g, key, out);
}

// tensor `name` of shape ne = {ne0[, ne1]} (GGUF order; trailing 1s allowed). The type is the
// caller's check.
static const tern_gguf_tensor *get_shaped(const tern_gguf *g, const char *name, int n_dims, int64_t ne0, int64_t ne1) {
    const tern_gguf_tensor *t = tern_gguf_get_tensor(g, name);
    if (!t) return NULL;
    int nd = t->n_dims;
    while (nd > n_dims && t->ne[nd - 1] == 1) nd--;
    if (nd != n_dims || t->ne[0] != ne0 || (n_dims > 1 && t->ne[1] != ne1)) {
        if (n_dims == 1)
            tern_error("%s: tensor %s has shape [%lld, %lld], expected [%lld]", tern_gguf_path(g), name, (long long)t->ne[0],
                       (long long)t->ne[1], (long long)ne0);
        else
            tern_error("%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld] (ne order)", tern_gguf_path(g), name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)ne1);
        return NULL;
    }
    return t;
}

static const float *load_norm(tern_rt_model *m, const char *name, int n) {
    const tern_gguf_tensor *t = get_shaped(m->gguf, name, 1, n, 1);
    if (!t) return NULL;
    if (t->type != TERN_GGML_F32) {
        tern_error("%s: tensor %s has type %s (%d); norms must be f32", m->path, name, tern_ggml_type_name(t->type), t->type);
        return NULL;
    }
    const float *v = (const float *)t->data;
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i])) {   // a NaN or infinite norm weight would turn every later value into NaN
            tern_error("%s: tensor %s: value %d is %g, not a finite number", m->path, name, i, (double)v[i]);
            return NULL;
        }
    m->fp_bytes += t->nbytes;
    return v;
}

// ---------------------------------------------------------------------------------------------
// BitLinear tensors: any supported type -> rows of codes (w + 1), checked

typedef struct {
    const tern_gguf_tensor *t;
    const char *name;
    int rows, cols;
    int type;
    float scale;    // s_w before the .scale tensor (TQ: the common d; I2_S: its float; Q8_0/F*: the unit a)
    int latent;     // F32/F16/BF16 values that are not exactly ternary: ternarized with s_w = scale
    tern_tmat *dst; // destination matrix and its first row for this tensor
    int row0;
} bl_src;

static float f16_at(const uint8_t *p) { return tern_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

// F32/F16/BF16 row r as floats
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,f16c"))) static void f16_row_fast(const uint8_t *p, float *out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * (size_t)i))));
    for (; i < n; i++) out[i] = f16_at(p + 2 * (size_t)i);
}
#endif
static void float_row(const bl_src *b, int r, float *out) {
    const uint8_t *p = (const uint8_t *)b->t->data + (size_t)r * tern_ggml_row_bytes(b->type, b->cols);
    if (b->type == TERN_GGML_F32) memcpy(out, p, sizeof(float) * (size_t)b->cols);
    else if (b->type == TERN_GGML_F16) {
#if defined(__x86_64__) || defined(__i386__)
        static int fast = -1;
        if (fast < 0) fast = __builtin_cpu_supports("avx2") && tern_cpu_has_f16c();
        if (fast) { f16_row_fast(p, out, b->cols); return; }
#endif
        for (int i = 0; i < b->cols; i++) out[i] = f16_at(p + 2 * (size_t)i);
    } else
        for (int i = 0; i < b->cols; i++) out[i] = tern_bf16_to_fp32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

// TQ2_0 and I2_S rows straight into the kernel layout (no codes array): the 2-bit codes are the
// same (w + 1), only their order differs, so each 64-byte kernel block is a few byte-wise shifts
// and masks of two 32-byte source groups (the compiler vectorizes these loops). Returns 0, or -1
// with msg: a code 3, or (TQ2_0) a non-zero block whose d is not the tensor's scale.
// TQ2_0 block (66 bytes): byte mm of group g holds columns 128g + 32l + mm (l = 0..3) in bits 2l;
// kernel byte j holds columns 64l + j in bits 2l: for j < 32 fields 0 and 2 of A = q[j] (g 0) and
// B = q[32 + j] (g 1), for j >= 32 fields 1 and 3 of A = q[j - 32], B = q[j].
static int tq2_row_direct(const bl_src *b, int r, char *msg, size_t msgn) {
    const uint8_t *row = (const uint8_t *)b->t->data + (size_t)r * tern_ggml_row_bytes(TERN_GGML_TQ2_0, b->cols);
    for (int k = 0; k < b->cols / 256; k++) {
        const uint8_t *q = row + TERN_TQ2_BLOCK_BYTES * (size_t)k;
        uint8_t *o = tern_tmat_block(b->dst, b->row0 + r, k);
        unsigned bad = 0, nonzero = 0;
        for (int j = 0; j < 32; j++) {
            const uint8_t A = q[j], B = q[32 + j];
            o[j] = (uint8_t)((A & 0x03) | ((A >> 2) & 0x0C) | ((B << 4) & 0x30) | ((B << 2) & 0xC0));
            o[32 + j] = (uint8_t)(((A >> 2) & 0x03) | ((A >> 4) & 0x0C) | ((B << 2) & 0x30) | (B & 0xC0));
            bad |= (unsigned)(A & (A >> 1) & 0x55) | (unsigned)(B & (B >> 1) & 0x55);
            nonzero |= (unsigned)(A ^ 0x55) | (unsigned)(B ^ 0x55);
        }
        if (bad) { snprintf(msg, msgn, "row %d block %d holds code 3 (not a ternary value)", r, k); return -1; }
        if (nonzero && f16_at(q + 64) != b->scale) {
            snprintf(msg, msgn, "row %d block %d has scale d = %g, the tensor's other blocks %g (tern needs one scale per tensor)", r, k,
                     (double)f16_at(q + 64), (double)b->scale);
            return -1;
        }
    }
    return 0;
}
// I2_S: 32-byte blocks of 128 columns, byte mm holds columns 32g + mm (g = 0..3) in bits 7-2g..6-2g.
// Kernel block k covers I2_S blocks P = 2k and Q = 2k + 1 (Q absent in a last half block: w = 0).
static int i2s_row_direct(const bl_src *b, int r, char *msg, size_t msgn) {
    const uint8_t *row = (const uint8_t *)b->t->data + (size_t)r * ((size_t)b->cols / 4);
    const int nh = b->cols / TERN_I2S_BLOCK;   // 128-column halves
    for (int k = 0; k < (nh + 1) / 2; k++) {
        const uint8_t *P = row + 64 * (size_t)k, *Q = 2 * k + 1 < nh ? P + 32 : NULL;
        uint8_t *o = tern_tmat_block(b->dst, b->row0 + r, k);
        unsigned bad = 0;
        for (int j = 0; j < 32; j++) {
            const uint8_t p = P[j], q = Q ? Q[j] : 0x55;
            o[j] = (uint8_t)(((p >> 6) & 0x03) | (p & 0x0C) | ((q >> 2) & 0x30) | ((q << 4) & 0xC0));
            o[32 + j] = (uint8_t)(((p >> 4) & 0x03) | ((p << 2) & 0x0C) | (q & 0x30) | ((q << 6) & 0xC0));
            bad |= (unsigned)(p & (p >> 1) & 0x55) | (unsigned)(q & (q >> 1) & 0x55);
        }
        if (bad) {
            snprintf(msg, msgn, "row %d columns %d..%d hold code 3 (not a ternary value)", r, 256 * k, 256 * k + (Q ? 255 : 127));
            return -1;
        }
    }
    return 0;
}

// Row r of b as codes c[cols]. 0; -1 + msg (a bad block); 1: an F32/F16/BF16 value that is not
// {0, +-a} (the tensor then holds latent weights). fbuf: [cols] float scratch.
static int row_codes(const bl_src *b, int r, uint8_t *c, float *fbuf, char *msg, size_t msgn) {
    const int cols = b->cols;
    const uint8_t *row = (const uint8_t *)b->t->data + (size_t)r * tern_ggml_row_bytes(b->type, cols);
    switch (b->type) {
    case TERN_GGML_TQ2_0:
        for (int k = 0; k < cols / 256; k++) {
            const uint8_t *p = row + TERN_TQ2_BLOCK_BYTES * (size_t)k;
            uint8_t *ck = c + 256 * k;
            unsigned any3 = 0, nonzero = 0;
            for (int g = 0; g < 2; g++)
                for (int l = 0; l < 4; l++)
                    for (int m = 0; m < 32; m++) {
                        const uint8_t v = (uint8_t)((p[32 * g + m] >> (2 * l)) & 3);
                        ck[128 * g + 32 * l + m] = v;
                        any3 |= v == 3;
                        nonzero |= v != 1;
                    }
            if (any3) { snprintf(msg, msgn, "row %d block %d holds code 3 (not a ternary value)", r, k); return -1; }
            if (nonzero && f16_at(p + 64) != b->scale) {
                snprintf(msg, msgn, "row %d block %d has scale d = %g, the tensor's other blocks %g (tern needs one scale per tensor)", r,
                         k, (double)f16_at(p + 64), (double)b->scale);
                return -1;
            }
        }
        return 0;
    case TERN_GGML_TQ1_0: {
        int8_t w[256];
        float d;
        for (int k = 0; k < cols / 256; k++) {
            const uint8_t *p = row + TERN_TQ1_BLOCK_BYTES * (size_t)k;
            tern_tq1_unpack(p, 256, w, &d);
            int nonzero = 0;
            for (int i = 0; i < 256; i++) {
                c[256 * k + i] = (uint8_t)(w[i] + 1);
                nonzero |= w[i] != 0;
            }
            if (nonzero && d != b->scale) {
                snprintf(msg, msgn, "row %d block %d has scale d = %g, the tensor's other blocks %g (tern needs one scale per tensor)", r,
                         k, (double)d, (double)b->scale);
                return -1;
            }
        }
        return 0;
    }
    case TERN_GGML_I2_S:
        for (int k = 0; k < cols / TERN_I2S_BLOCK; k++) {
            const uint8_t *p = row + 32 * (size_t)k;
            uint8_t *ck = c + TERN_I2S_BLOCK * k;
            unsigned any3 = 0;
            for (int g = 0; g < 4; g++)
                for (int m = 0; m < 32; m++) {
                    const uint8_t v = (uint8_t)((p[m] >> (6 - 2 * g)) & 3);
                    ck[32 * g + m] = v;
                    any3 |= v == 3;
                }
            if (any3) { snprintf(msg, msgn, "row %d block %d holds code 3 (not a ternary value)", r, k); return -1; }
        }
        return 0;
    case TERN_GGML_Q8_0:
        for (int k = 0; k < cols / 32; k++) {
            const uint8_t *p = row + TERN_Q8_0_BYTES * (size_t)k;
            const float d = f16_at(p);
            for (int i = 0; i < 32; i++) {
                const int q = (int8_t)p[2 + i];
                if (q == 0) { c[32 * k + i] = 1; continue; }
                if ((float)abs(q) * d != b->scale) {
                    snprintf(msg, msgn, "row %d element %d is %g, not 0 or +-%g: not a ternary tensor (q8_0 BitLinear weights must be "
                             "ternary x one scale)", r, 32 * k + i, (double)((float)q * d), (double)b->scale);
                    return -1;
                }
                c[32 * k + i] = q > 0 ? 2 : 0;
            }
        }
        return 0;
    default: {   // F32, F16, BF16
        float_row(b, r, fbuf);
        const float a = b->scale;
        if (b->latent) {   // quant.h's ternary_of: clip(rint(w / s), -1, 1)
            for (int i = 0; i < cols; i++) {
                const float q = rintf(fbuf[i] / a);
                c[i] = (uint8_t)(q >= 1.0f ? 2 : q <= -1.0f ? 0 : 1);
            }
            return 0;
        }
        int bad = 0;
        for (int i = 0; i < cols; i++) {
            const float v = fbuf[i];
            c[i] = (uint8_t)(v == a ? 2 : v == -a ? 0 : 1);
            bad |= v != 0.0f && v != a && v != -a;
        }
        return bad ? 1 : 0;
    }
    }
}

// the scale of b from its first non-zero block (TQ/Q8_0/F*) or its tail (I2_S); F*: the unit a
static int bl_scale(bl_src *b, const char *path) {
    const int64_t n = (int64_t)b->rows * b->cols;
    const uint8_t *p = b->t->data;
    b->scale = 0.0f;
    switch (b->type) {
    case TERN_GGML_TQ2_0:
        for (int64_t k = 0; k < n / 256 && b->scale == 0.0f; k++) {
            const uint8_t *q = p + TERN_TQ2_BLOCK_BYTES * k;
            int nz = 0;
            for (int i = 0; i < 64; i++) nz |= q[i] != 0x55;
            if (nz) b->scale = f16_at(q + 64);
        }
        break;
    case TERN_GGML_TQ1_0: {
        int8_t w[256];
        float d;
        for (int64_t k = 0; k < n / 256 && b->scale == 0.0f; k++) {
            tern_tq1_unpack(p + TERN_TQ1_BLOCK_BYTES * k, 256, w, &d);
            int nz = 0;
            for (int i = 0; i < 256; i++) nz |= w[i] != 0;
            if (nz) b->scale = d;
        }
        break;
    }
    case TERN_GGML_I2_S: memcpy(&b->scale, p + n / 4, sizeof(float)); break;
    case TERN_GGML_Q8_0:
        for (int64_t k = 0; k < n / 32 && b->scale == 0.0f; k++)
            for (int i = 0; i < 32 && b->scale == 0.0f; i++) {
                const int q = (int8_t)p[TERN_Q8_0_BYTES * k + 2 + i];
                if (q) b->scale = (float)abs(q) * f16_at(p + TERN_Q8_0_BYTES * k);
            }
        break;
    default: {
        float *f = tern_xmalloc(sizeof(float) * (size_t)b->cols);
        for (int r = 0; r < b->rows && b->scale == 0.0f; r++) {
            float_row(b, r, f);
            for (int i = 0; i < b->cols && b->scale == 0.0f; i++) b->scale = fabsf(f[i]);
        }
        free(f);
    }
    }
    if (b->scale == 0.0f) b->scale = 1.0f;   // all zero: any scale
    if (!isfinite(b->scale) || b->scale <= 0.0f) {
        tern_error("%s: tensor %s: scale %g is not a positive number", path, b->name, (double)b->scale);
        return -1;
    }
    return 0;
}

// s_w = mean|W| as training computes it (quant.h tern_weight_scale: |w| summed in double over
// 64Ki-element chunks of the flattened tensor, the chunk sums added in order, max with eps)
static float latent_scale(const bl_src *b) {
    const int64_t n = (int64_t)b->rows * b->cols, CH = 65536, nch = (n + CH - 1) / CH;
    const uint8_t *p = b->t->data;
    double *part = tern_xcalloc((size_t)nch, sizeof(double));
    #pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < nch; k++) {
        const int64_t hi = (k + 1) * CH < n ? (k + 1) * CH : n;
        double acc = 0.0;
        for (int64_t e = k * CH; e < hi; e++) {
            float v;
            if (b->type == TERN_GGML_F32) memcpy(&v, p + 4 * e, 4);
            else if (b->type == TERN_GGML_F16) v = f16_at(p + 2 * e);
            else v = tern_bf16_to_fp32((uint16_t)(p[2 * e] | p[2 * e + 1] << 8));
            acc += fabsf(v);
        }
        part[k] = acc;
    }
    double total = 0.0;
    for (int64_t k = 0; k < nch; k++) total += part[k];
    free(part);
    const float s = (float)(total / (double)n);
    return s > TERN_QUANT_EPS ? s : TERN_QUANT_EPS;
}

// Check type and shape of BitLinear j of `layer`, find its scale and the .scale tensor's factor.
static int bl_open(tern_rt_model *m, int layer, int j, bl_src *b, char *name, size_t namen, float *extra) {
    const tern_gguf *g = m->gguf;
    int rows, cols;
    rt_bl_shape(&m->config, j, &rows, &cols);
    snprintf(name, namen, "blk.%d.%s.weight", layer, rt_bitlinear_names[j]);
    const tern_gguf_tensor *t = get_shaped(g, name, 2, cols, rows);
    if (!t) return -1;
    switch (t->type) {
    case TERN_GGML_TQ2_0: case TERN_GGML_TQ1_0: case TERN_GGML_I2_S: case TERN_GGML_Q8_0:
    case TERN_GGML_F32: case TERN_GGML_F16: case TERN_GGML_BF16: break;
    default:
        tern_error("%s: tensor %s has type %s (%d); BitLinear weights must be " SUPPORTED_BITLINEAR, m->path, name,
                   tern_ggml_type_name(t->type), t->type);
        return -1;
    }
    if (t->type == TERN_GGML_I2_S && cols % TERN_I2S_BLOCK) {
        tern_error("%s: tensor %s: i2_s rows of %d weights are not a multiple of %d", m->path, name, cols, TERN_I2S_BLOCK);
        return -1;
    }
    memset(b, 0, sizeof *b);
    b->t = t;
    b->name = name;
    b->rows = rows;
    b->cols = cols;
    b->type = t->type;
    if (bl_scale(b, m->path)) return -1;
    *extra = 1.0f;
    char sname[96];
    snprintf(sname, sizeof sname, "blk.%d.%s.scale", layer, rt_bitlinear_names[j]);
    if (tern_gguf_find_tensor(g, sname)) {
        const tern_gguf_tensor *s = get_shaped(g, sname, 1, 1, 1);
        if (!s) return -1;
        if (s->type != TERN_GGML_F32) {
            tern_error("%s: tensor %s has type %s; a BitLinear scale must be f32 {1}", m->path, sname, tern_ggml_type_name(s->type));
            return -1;
        }
        memcpy(extra, s->data, sizeof(float));
        if (!isfinite(*extra) || *extra <= 0.0f) { tern_error("%s: tensor %s = %g is not a positive scale", m->path, sname, (double)*extra); return -1; }
    }
    return 0;
}

// Fill the rows of every source into its matrix, in parallel (chunks of 64 rows). Tensors whose
// F32/F16/BF16 values turn out not to be exactly ternary are marked latent in *need_latent
// (their rows are redone by the caller). 0 or -1 + error.
static int fill_rows(tern_rt_model *m, bl_src *src, int nsrc, int only_latent, int *need_latent) {
    int64_t njob = 0;
    int64_t *first = tern_xmalloc(sizeof(int64_t) * (size_t)(nsrc + 1));
    for (int i = 0; i < nsrc; i++) {
        first[i] = njob;
        if (!only_latent || src[i].latent) njob += (src[i].rows + 63) / 64;
    }
    first[nsrc] = njob;
    int max_cols = 1;
    for (int i = 0; i < nsrc; i++) max_cols = src[i].cols > max_cols ? src[i].cols : max_cols;
    int failed = 0;
    char err[1024] = "";
    #pragma omp parallel
    {
        uint8_t *codes = tern_xmalloc((size_t)max_cols + 256);
        float *fbuf = tern_xmalloc(sizeof(float) * (size_t)max_cols);
        char msg[256];
        int si = 0;
        #pragma omp for schedule(dynamic, 4)
        for (int64_t jb = 0; jb < njob; jb++) {
            if (__atomic_load_n(&failed, __ATOMIC_RELAXED)) continue;
            while (first[si + 1] <= jb) si++;
            while (first[si] > jb) si--;
            bl_src *b = &src[si];
            const int r0 = (int)(jb - first[si]) * 64, r1 = r0 + 64 < b->rows ? r0 + 64 : b->rows;
            for (int r = r0; r < r1; r++) {
                const int rc = b->type == TERN_GGML_TQ2_0 ? tq2_row_direct(b, r, msg, sizeof msg)
                             : b->type == TERN_GGML_I2_S ? i2s_row_direct(b, r, msg, sizeof msg)
                             : row_codes(b, r, codes, fbuf, msg, sizeof msg);
                if (rc == 0 && (b->type == TERN_GGML_TQ2_0 || b->type == TERN_GGML_I2_S)) continue;
                if (rc == 1) { __atomic_store_n(&need_latent[si], 1, __ATOMIC_RELAXED); break; }
                if (rc < 0) {
                    #pragma omp critical(tern_load_err)
                    if (!failed) { snprintf(err, sizeof err, "%.500s: tensor %.96s: %.256s", m->path, b->name, msg); failed = 1; }
                    break;
                }
                tern_tmat_set_row_codes(b->dst, b->row0 + r, codes);
            }
        }
        free(codes);
        free(fbuf);
    }
    free(first);
    if (failed) { tern_error("%s", err); return -1; }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// model

// the logits matrix (and the tied embedding) moved out of the file mapping onto huge pages: a
// decode step streams it once per token (~170k TLB misses per token on 4 KiB pages for a 2B
// model; measured +9-13% decode speed). Copied by all threads, into the kernels' layout
// (tern_qmat_repack: Q8_0 rows interleaved 16 at a time, kernels/qmatvec.h).
static void copy_output(tern_rt_model *m) {
    tern_rt_weights *w = &m->weights;
    const int V = m->config.vocab_size;
    const size_t nb = (size_t)V * w->output_row_bytes;
    w->output_layout = tern_qmat_layout(w->output_type);
    uint8_t *copy = tern_alloc_huge(tern_qmat_bytes(w->output_layout, V, w->output_row_bytes));
    const int CH = 1024;   // a multiple of the layout's 16-row groups
    #pragma omp parallel for schedule(dynamic, 1)
    for (int r0 = 0; r0 < V; r0 += CH)
        tern_qmat_repack(w->output_type, w->output, w->output_row_bytes, m->config.dim, V, r0, r0 + CH < V ? r0 + CH : V, copy);
    if (w->token_embd == w->output) {
        w->token_embd = copy;
        w->embd_layout = w->output_layout;
    }
    // the file's pages of that tensor are no longer read: drop them from this process (a private
    // read-only mapping: they stay in the page cache)
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)w->output + pg - 1) / pg * pg, b = ((uintptr_t)w->output + nb) / pg * pg;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    w->output = copy;
    w->output_copy = copy;
}

// Lay out the four matrices of every layer in one huge-page buffer in forward order (q,k,v
// stacked; gate,up stacked; each matrix 64-byte aligned) and point the layers at it.
static void layout_layers(tern_rt_model *m) {
    const tern_rt_config *c = &m->config;
    const int rows[4] = {c->dim + 2 * c->kv_dim, c->dim, 2 * c->ffn_dim, c->dim}, cols[4] = {c->dim, c->dim, c->dim, c->ffn_dim};
    size_t per_layer = 0;
    for (int k = 0; k < 4; k++) per_layer += (tern_tmat_bytes(rows[k], cols[k]) + 63) / 64 * 64;
    uint8_t *buf = tern_alloc_huge(per_layer * (size_t)c->n_layers), *p = buf;
    m->weights.ternary = buf;
    for (int l = 0; l < c->n_layers; l++) {
        tern_rt_layer *L = &m->weights.layers[l];
        tern_tmat *mats[4] = {&L->wqkv, &L->wo, &L->wgu, &L->w_down};
        for (int k = 0; k < 4; k++) {
            tern_tmat_init(mats[k], p, rows[k], cols[k], 1.0f);
            p += (tern_tmat_bytes(rows[k], cols[k]) + 63) / 64 * 64;
            m->ternary_bytes += tern_tmat_weight_bytes(mats[k]);
        }
        for (int j = 0; j < 7; j++) {
            int r, k;
            rt_bl_shape(c, j, &r, &k);
            m->n_ternary += (int64_t)r * k;
        }
    }
}

// destination matrix and first row of BitLinear j of layer L
static void bl_dst(const tern_rt_config *c, tern_rt_layer *L, int j, tern_tmat **dst, int *row0) {
    static const int mat[7] = {0, 0, 0, 1, 2, 2, 3};
    tern_tmat *mats[4] = {&L->wqkv, &L->wo, &L->wgu, &L->w_down};
    const int r0[7] = {0, c->dim, c->dim + c->kv_dim, 0, 0, c->ffn_dim, 0};
    *dst = mats[mat[j]];
    *row0 = r0[j];
}

static int arch_known(const char *arch, int *ffn_act) {
    if (!strcmp(arch, "bitnet")) { *ffn_act = TERN_FFN_SILU; return 1; }
    if (!strcmp(arch, "bitnet-b1.58") || !strcmp(arch, "bitnet-25")) { *ffn_act = TERN_FFN_RELU2; return 1; }
    return 0;
}

int build_model(tern_rt_model *m, const char *path) {
    const double t_start = tern_time();
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->gguf = tern_gguf_open(path);
    if (!m->gguf) { rt_prefix_path(path); return -1; }
    tern_gguf *g = m->gguf;
    tern_rt_config *c = &m->config;
    tern_rt_weights *w = &m->weights;
    const char *arch = NULL;
    bl_src *src = NULL;
    char (*names)[96] = NULL;
    int *need_latent = NULL;
    if (tern_gguf_find_kv(g, "general.architecture") < 0) { tern_error("%s: missing key general.architecture", path); goto fail; }
    if (tern_gguf_get_str(g, "general.architecture", &arch, NULL)) goto fail;
    if (!arch_known(arch, &c->ffn_act)) {
        tern_error("%s: architecture '%s' is not supported (tern runs 'bitnet', 'bitnet-b1.58' and 'bitnet-25' models)", path, arch);
        goto fail;
    }
    snprintf(c->arch, sizeof c->arch, "%s", arch);
    char key[128];
#define K(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    if (get_dim(g, K("context_length"), 1, 0, &c->seq_len) || get_dim(g, K("embedding_length"), 1, 0, &c->dim) ||
        get_dim(g, K("block_count"), 1, 0, &c->n_layers) || get_dim(g, K("feed_forward_length"), 1, 0, &c->ffn_dim) ||
        get_dim(g, K("attention.head_count"), 1, 0, &c->n_heads) || get_dim(g, K("attention.head_count_kv"), 0, c->n_heads, &c->n_kv_heads) ||
        get_float(g, K("attention.layer_norm_rms_epsilon"), 1, 0, &c->norm_eps) || get_float(g, K("rope.freq_base"), 0, 10000.0f, &c->rope_theta))
        goto fail;
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2 || c->n_heads % c->n_kv_heads) {
        tern_error("%s: embedding_length %d, head_count %d, head_count_kv %d do not fit together", path, c->dim, c->n_heads, c->n_kv_heads);
        goto fail;
    }
    // every layer has at least 9 tensors in the file (2 norms, 7 BitLinear): a larger block_count
    // is refused before anything is allocated per layer (a 250 KB file asking for 8.4e7 layers
    // made the loader take 20 GB and two minutes before it found blk.1 missing)
    if ((int64_t)c->n_layers * 9 > tern_gguf_n_tensors(g)) {
        tern_error("%s: %s.block_count %d needs at least %lld tensors, the file has %d", path, arch, c->n_layers,
                   9LL * c->n_layers, tern_gguf_n_tensors(g));
        goto fail;
    }
    c->head_dim = c->dim / c->n_heads;
    c->kv_dim = c->n_kv_heads * c->head_dim;
    int rot;
    if (get_dim(g, K("rope.dimension_count"), 0, c->head_dim, &rot)) goto fail;
    if (rot != c->head_dim) { tern_error("%s: %s %d != head dim %d (partial RoPE unsupported)", path, key, rot, c->head_dim); goto fail; }
#undef K
    if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f)) { tern_error("%s: bad epsilon or rope.freq_base", path); goto fail; }
    // embedding [vocab, dim] and the logits matrix
    const tern_gguf_tensor *te = tern_gguf_get_tensor(g, "token_embd.weight");
    if (!te) goto fail;
    if (te->ne[1] < 1 || te->ne[1] > (1 << 24)) { tern_error("%s: token_embd.weight has a bad vocab size", path); goto fail; }
    c->vocab_size = (int)te->ne[1];
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    if (tern_gguf_find_kv(g, key) >= 0) {   // optional, but when present it must agree
        int64_t v;
        if (tern_gguf_get_i64(g, key, &v)) goto fail;
        if (v != c->vocab_size) {
            tern_error("%s: %s %lld does not match token_embd.weight's %d rows", path, key, (long long)v, c->vocab_size);
            goto fail;
        }
    }
    const char *mnames[2] = {"token_embd.weight", "output.weight"};
    for (int k = 0; k < 2; k++) {
        if (k == 1 && !tern_gguf_find_tensor(g, mnames[1])) break;
        const tern_gguf_tensor *t = get_shaped(g, mnames[k], 2, c->dim, c->vocab_size);
        if (!t) goto fail;
        if (!tern_qmat_supported(t->type)) {
            tern_error("%s: tensor %s has type %s (%d); embedding and output matrices must be " SUPPORTED_MATRIX, path, mnames[k],
                       tern_ggml_type_name(t->type), t->type);
            goto fail;
        }
        if (k == 0) {
            w->token_embd = t->data;
            w->embd_type = w->embd_layout = t->type;
            w->embd_row_bytes = tern_ggml_row_bytes(t->type, c->dim);
        }
        w->output = t->data;
        w->output_type = w->output_layout = t->type;
        w->output_row_bytes = tern_ggml_row_bytes(t->type, c->dim);
    }
    c->tied = w->output == w->token_embd;
    m->fp_bytes += (size_t)c->vocab_size * w->output_row_bytes;
    if (!(w->output_norm = load_norm(m, "output_norm.weight", c->dim))) goto fail;
    // sub-norms: all present, or none
    c->sub_norms = tern_gguf_find_tensor(g, "blk.0.attn_sub_norm.weight") || tern_gguf_find_tensor(g, "blk.0.ffn_sub_norm.weight");
    w->layers = tern_xcalloc((size_t)c->n_layers, sizeof(tern_rt_layer));
    for (int l = 0; l < c->n_layers; l++) {
        tern_rt_layer *L = &w->layers[l];
        char name[96];
#define NORM(field, nm, n, opt)                                                                                     \
        snprintf(name, sizeof name, "blk.%d." nm ".weight", l);                                                     \
        if (opt && !c->sub_norms) {                                                                                 \
            if (tern_gguf_find_tensor(g, name)) {                                                                   \
                tern_error("%s: tensor %s is present but blk.0 has no sub-norms (all layers have both, or none)", path, name); \
                goto fail;                                                                                          \
            }                                                                                                       \
        } else if (!(L->field = load_norm(m, name, n))) goto fail;
        NORM(attn_norm, "attn_norm", c->dim, 0)
        NORM(attn_sub_norm, "attn_sub_norm", c->dim, 1)
        NORM(ffn_norm, "ffn_norm", c->dim, 0)
        NORM(ffn_sub_norm, "ffn_sub_norm", c->ffn_dim, 1)
#undef NORM
    }
    // BitLinear tensors: check all, lay out the matrices, then repack every row in parallel
    const int nsrc = 7 * c->n_layers;
    src = tern_xcalloc((size_t)nsrc, sizeof(bl_src));
    names = tern_xcalloc((size_t)nsrc, sizeof *names);
    need_latent = tern_xcalloc((size_t)nsrc, sizeof(int));
    float *extra = tern_xcalloc((size_t)nsrc, sizeof(float));
    for (int i = 0; i < nsrc; i++)
        if (bl_open(m, i / 7, i % 7, &src[i], names[i], sizeof names[i], &extra[i])) { free(extra); goto fail; }
    m->bitlinear_type = src[0].type;
    m->load_s[0] = tern_time() - t_start;
    layout_layers(m);
    for (int i = 0; i < nsrc; i++) bl_dst(c, &w->layers[i / 7], i % 7, &src[i].dst, &src[i].row0);
    if (fill_rows(m, src, nsrc, 0, need_latent)) { free(extra); goto fail; }
    int any_latent = 0;
    for (int i = 0; i < nsrc; i++)
        if (need_latent[i]) {   // latent fp weights: ternarize per tensor as training does
            src[i].latent = 1;
            src[i].scale = latent_scale(&src[i]);
            if (!isfinite(src[i].scale)) {
                tern_error("%s: tensor %s: values are not finite (mean |w| = %g)", path, src[i].name, (double)src[i].scale);
                free(extra);
                goto fail;
            }
            any_latent = 1;
            m->latent_tensors++;
        }
    if (any_latent && fill_rows(m, src, nsrc, 1, need_latent)) { free(extra); goto fail; }
    for (int i = 0; i < nsrc; i++) {
        tern_rt_layer *L = &w->layers[i / 7];
        L->scale[i % 7] = src[i].scale * extra[i];
    }
    free(extra);
    for (int l = 0; l < c->n_layers; l++) {
        w->layers[l].wo.scale = w->layers[l].scale[3];
        w->layers[l].w_down.scale = w->layers[l].scale[6];
    }
    free(src);
    free(names);
    free(need_latent);
    src = NULL;   // the failure path below frees these three again
    names = NULL;
    need_latent = NULL;
    if (rt_load_vocab(m)) goto fail;
    m->load_s[1] = tern_time() - t_start - m->load_s[0];
    copy_output(m);
    m->load_s[2] = tern_time() - t_start - m->load_s[0] - m->load_s[1];
    return 0;
fail:
    free(src);
    free(names);
    free(need_latent);
    rt_prefix_path(path);
    free_model(m);
    return -1;
}

void free_model(tern_rt_model *m) {
    if (m->weights.layers)
        for (int l = 0; l < m->config.n_layers; l++) {
            tern_rt_layer *L = &m->weights.layers[l];
            tern_tmat_free(&L->wqkv);
            tern_tmat_free(&L->wo);
            tern_tmat_free(&L->wgu);
            tern_tmat_free(&L->w_down);
        }
    free(m->weights.layers);
    free(m->weights.ternary);
    free(m->weights.output_copy);
    free(m->weights.owned);
    tern_gguf_close(m->gguf);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// random models

static int check_config(const tern_rt_config *c) {
    if (c->dim < 2 || c->ffn_dim < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->vocab_size < 1 ||
        c->seq_len < 1 || c->dim % c->n_heads || (c->dim / c->n_heads) % 2 || c->n_heads % c->n_kv_heads) {
        tern_error("random model: bad shape dim=%d ffn=%d layers=%d heads=%d kv_heads=%d vocab=%d ctx=%d", c->dim, c->ffn_dim,
                   c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
        return -1;
    }
    return 0;
}

// random blocks of `type` for row r of a [vocab, dim] matrix (fp16 scales kept small and sane)
static void random_row(int type, uint8_t *dst, size_t row_bytes, int dim, uint64_t seed, long r) {
    tern_rng rr;
    tern_rng_seed(&rr, seed * 0x9E3779B97F4A7C15ull + (uint64_t)r);
    if (type == TERN_GGML_F16 || type == TERN_GGML_F32 || type == TERN_GGML_BF16) {
        for (int i = 0; i < dim; i++) {
            const float v = 3.4641f * (tern_rng_uniform(&rr) - 0.5f);   // uniform, std 1
            if (type == TERN_GGML_F32) memcpy(dst + 4 * (size_t)i, &v, 4);
            else {
                const uint16_t h = type == TERN_GGML_F16 ? tern_fp32_to_fp16(v) : tern_fp32_to_bf16(v);
                memcpy(dst + 2 * (size_t)i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < row_bytes; i += 8) {
        const uint64_t x = tern_rng_u64(&rr);
        memcpy(dst + i, &x, row_bytes - i < 8 ? row_bytes - i : 8);
    }
    const uint16_t d = tern_fp32_to_fp16(0.01f), dm = tern_fp32_to_fp16(0.001f);
    const size_t bb = tern_ggml_block_bytes(type);
    for (size_t o = 0; o < row_bytes; o += bb) {
        uint8_t *b = dst + o;
        if (type == TERN_GGML_Q8_0) memcpy(b, &d, 2);
        else if (type == TERN_GGML_Q6_K) memcpy(b + 208, &d, 2);
        else { memcpy(b, &d, 2); memcpy(b + 2, &dm, 2); }   // Q4_K, Q5_K
    }
}

int rt_parse_shape(const char *spec, tern_rt_config *c, int *head) {
    memset(c, 0, sizeof *c);
    if (head) *head = TERN_GGML_F16;
    char buf[512], in[512];
    snprintf(in, sizeof in, "%s", spec);
    // a preset name first, then key=value items that override it
    char *rest = strchr(in, ',');
    if (rest) *rest++ = 0;
    const char *preset = !strcmp(in, "small") ? "dim=256,ffn=768,layers=6,heads=4,kv_heads=4,vocab=4096"
                         : !strcmp(in, "2b")  ? "dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=32000"
                         : !strcmp(in, "2b4t") ? "dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=128256,head=q8_0,act=relu2"
                                               : NULL;
    if (preset) snprintf(buf, sizeof buf, "%s%s%s", preset, rest ? "," : "", rest ? rest : "");
    else snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq && !strncmp(tok, "head=", 5)) {
            const int t = tern_ggml_type_parse(eq + 1);
            if (!head) { tern_error("head=%s: this program's random models have an f16 head", eq + 1); return -1; }
            if (t < 0 || !tern_qmat_supported(t)) { tern_error("head=%s: expected f32|f16|bf16|q8_0|q4_k|q5_k|q6_k", eq + 1); return -1; }
            *head = t;
            continue;
        }
        if (eq && !strncmp(tok, "act=", 4)) {
            if (!strcmp(eq + 1, "silu")) c->ffn_act = TERN_FFN_SILU;
            else if (!strcmp(eq + 1, "relu2")) c->ffn_act = TERN_FFN_RELU2;
            else { tern_error("act=%s: expected silu|relu2", eq + 1); return -1; }
            continue;
        }
        long v;
        if (!eq || tern_parse_long(eq + 1, &v) || v < 1 || v > (1 << 24)) {
            tern_error("bad item '%s' (expected small, 2b or 2b4t, then key=value items)", tok);
            return -1;
        }
        *eq = 0;
        if (!strcmp(tok, "dim")) c->dim = (int)v;
        else if (!strcmp(tok, "ffn")) c->ffn_dim = (int)v;
        else if (!strcmp(tok, "layers")) c->n_layers = (int)v;
        else if (!strcmp(tok, "heads")) c->n_heads = (int)v;
        else if (!strcmp(tok, "kv_heads")) c->n_kv_heads = (int)v;
        else if (!strcmp(tok, "vocab")) c->vocab_size = (int)v;
        else if (!strcmp(tok, "ctx")) c->seq_len = (int)v;
        else { tern_error("unknown key '%s' (dim, ffn, layers, heads, kv_heads, vocab, ctx, head, act)", tok); return -1; }
    }
    if (!c->n_kv_heads) c->n_kv_heads = c->n_heads;
    return 0;
}

int build_random_model_typed(tern_rt_model *m, const tern_rt_config *cfg, int head_type, uint64_t seed) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "(random)");
    if (check_config(cfg)) return -1;
    if (!tern_qmat_supported(head_type) || cfg->dim % tern_ggml_block_elems(head_type)) {
        tern_error("random model: head type %s does not fit dim %d", tern_ggml_type_name(head_type), cfg->dim);
        return -1;
    }
    tern_rt_config *c = &m->config;
    *c = *cfg;
    c->head_dim = c->dim / c->n_heads;
    c->kv_dim = c->n_kv_heads * c->head_dim;
    c->sub_norms = 1;
    c->tied = 1;
    snprintf(c->arch, sizeof c->arch, "random");
    if (!(c->norm_eps > 0.0f)) c->norm_eps = 1e-5f;
    if (!(c->rope_theta > 0.0f)) c->rope_theta = 10000.0f;
    tern_rt_weights *w = &m->weights;
    // the embedding (on huge pages) and one buffer of unit norms
    const size_t rb = tern_ggml_row_bytes(head_type, c->dim), n_embd = (size_t)c->vocab_size * rb;
    uint8_t *E = tern_alloc_huge(tern_qmat_bytes(tern_qmat_layout(head_type), c->vocab_size, rb));
    #pragma omp parallel   // every row from its own seeded generator (any thread count), in the kernels' layout
    {
        uint8_t *row = tern_xmalloc(rb);
        #pragma omp for schedule(static)
        for (long r = 0; r < c->vocab_size; r++) {
            random_row(head_type, row, rb, c->dim, seed, r);
            tern_qmat_repack_row(head_type, row, rb, c->dim, c->vocab_size, (int)r, E);
        }
        free(row);
    }
    w->output_copy = E;
    w->token_embd = w->output = E;
    w->embd_type = w->output_type = head_type;
    w->embd_layout = w->output_layout = tern_qmat_layout(head_type);
    w->embd_row_bytes = w->output_row_bytes = rb;
    size_t n_norm = (size_t)c->dim * (1 + 3 * (size_t)c->n_layers) + (size_t)c->ffn_dim * c->n_layers;
    float *norms = tern_xmalloc(n_norm * sizeof(float));
    w->owned = norms;
    for (size_t i = 0; i < n_norm; i++) norms[i] = 1.0f;
    w->output_norm = norms;
    norms += c->dim;
    m->fp_bytes = n_embd + n_norm * sizeof(float);
    w->layers = tern_xcalloc((size_t)c->n_layers, sizeof(tern_rt_layer));
    for (int l = 0; l < c->n_layers; l++) {
        tern_rt_layer *L = &w->layers[l];
        L->attn_norm = norms; norms += c->dim;
        L->attn_sub_norm = norms; norms += c->dim;
        L->ffn_norm = norms; norms += c->dim;
        L->ffn_sub_norm = norms; norms += c->ffn_dim;
        for (int j = 0; j < 7; j++) L->scale[j] = 0.02f;
    }
    layout_layers(m);
    m->bitlinear_type = TERN_GGML_TQ2_0;
    // random weights straight in the kernel layout: each 2-bit field of a random byte maps 0 -> -1,
    // 1, 2 -> 0, 3 -> +1 (codes 0, 1, 1, 2); pad rows and columns too (their products are never
    // read: pad columns meet zero activations, pad rows are not written out). Every 64 KiB from
    // its own generator: the same weights for any thread count.
    uint8_t lut[256];
    for (int b = 0; b < 256; b++) {
        int v = 0;
        for (int f = 0; f < 4; f++) {
            const int r = (b >> (2 * f)) & 3;
            v |= (r == 0 ? 0 : r == 3 ? 2 : 1) << (2 * f);
        }
        lut[b] = (uint8_t)v;
    }
    uint8_t *buf = m->weights.ternary;
    const size_t total = (size_t)(w->layers[c->n_layers - 1].w_down.w + tern_tmat_weight_bytes(&w->layers[c->n_layers - 1].w_down) - buf);
    const size_t CH = 65536;
    #pragma omp parallel for schedule(static)
    for (size_t o = 0; o < total; o += CH) {
        tern_rng rr;
        tern_rng_seed(&rr, (seed + 1000003ull) * 0x9E3779B97F4A7C15ull + o / CH);
        const size_t n = total - o < CH ? total - o : CH;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t x = tern_rng_u64(&rr);
            for (size_t j = 0; j < 8 && i + j < n; j++, x >>= 8) buf[o + i + j] = lut[x & 255];
        }
    }
    for (int l = 0; l < c->n_layers; l++) {
        w->layers[l].wo.scale = w->layers[l].scale[3];
        w->layers[l].w_down.scale = w->layers[l].scale[6];
    }
    return 0;
}

int build_random_model(tern_rt_model *m, const tern_rt_config *cfg, uint64_t seed) {
    return build_random_model_typed(m, cfg, TERN_GGML_F16, seed);
}
