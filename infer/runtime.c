// runtime.c — state, KV cache, batched and one-token forward, the GGUF's tokenizer, helpers for
// programs. See runtime.h for the model; rt_load.c builds it. The hot loops are tern_tmat_mul
// (kernels.c: int8 activations x 2-bit ternary weights, int32 sums) and the logits products
// (qmatvec.c).
#include "rt_internal.h"
#include "tokenizers/tokenizer_gguf.h"
#include "model/quant.h"
#include "model/rope.h"
#include "kernels/rowops.h"
#include "util.h"
#include "kernels/vmath.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// fp32 dot products for attention on an F32 KV cache. The SIMD versions (x86: AVX2 with FMA and
// F16C; AArch64: NEON, which adds in the AVX2 versions' order) are used when the CPU has them and
// the integer kernels are not forced to plain (TERN_KERNEL=plain then gives an all-plain runtime);
// on x86 that attention uses AVX-512 and a Q8 cache's attention VNNI when the kernels run avx512.
// The logits products are qmatvec's (the same bits at every level). Float results may differ in
// the last bits between these (summation order); within one kind, batched and token-by-token
// forward give bit-identical logits.

static float dot_f32_plain(const float *a, const float *b, int n) {
    float s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) s[j] += a[i + j] * b[i + j];
    float r = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

#if defined(__x86_64__) || defined(__i386__)
#define RT_X86 1
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

// o [hd] += p * v [hd]
__attribute__((target("avx2,fma"))) static void axpy_f32_avx2(float *o, float p, const float *v, int n) {
    const __m256 pv = _mm256_set1_ps(p);
    int d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(o + d, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + d), _mm256_loadu_ps(o + d)));
    for (; d < n; d++) o[d] += p * v[d];
}
#define dot_f32_simd dot_f32_avx2
#define axpy_f32_simd axpy_f32_avx2

#elif defined(__aarch64__)
#define RT_X86 0
#include <arm_neon.h>
// NEON, in the AVX2 versions' order: their two 8-lane accumulators are four 4-lane ones here
// (s[0], s[1] = lanes 0-7 of the first; s[2], s[3] of the second), reduced the same way.
static inline float reduce_like_avx2(float32x4_t s0, float32x4_t s1, float32x4_t s2, float32x4_t s3) {
    const float32x4_t h = vaddq_f32(vaddq_f32(s0, s2), vaddq_f32(s1, s3));   // (s0 + s1) as 8 lanes, then low + high half
    return (vgetq_lane_f32(h, 0) + vgetq_lane_f32(h, 2)) + (vgetq_lane_f32(h, 1) + vgetq_lane_f32(h, 3));
}

static float dot_f32_simd(const float *a, const float *b, int n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    float r = reduce_like_avx2(s0, s1, s2, s3);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}


static void axpy_f32_simd(float *o, float p, const float *v, int n) {
    const float32x4_t pv = vdupq_n_f32(p);
    int d = 0;
    for (; d + 4 <= n; d += 4) vst1q_f32(o + d, vfmaq_f32(vld1q_f32(o + d), pv, vld1q_f32(v + d)));
    for (; d < n; d++) o[d] += p * v[d];
}
#else
#define RT_X86 0
static float dot_f32_simd(const float *a, const float *b, int n) { return dot_f32_plain(a, b, n); }
static void axpy_f32_simd(float *o, float p, const float *v, int n) {
    for (int d = 0; d < n; d++) o[d] += p * v[d];
}
#endif

// 1 when the fp32 helpers use SIMD (x86: AVX2/FMA/F16C; AArch64: NEON): the CPU has them and the
// integer kernels are not forced to plain (TERN_KERNEL=plain then gives an all-plain runtime). Set
// by forward(). g_avx512 (x86): F32-cache attention in AVX-512 registers; g_vnni (x86): Q8-cache
// attention on VNNI (both when the kernels run avx512).
static int g_avx2 = 0, g_avx512 = 0, g_vnni = 0;
static void update_fp_kind(void) {
    static int cpu = -1, cpu512 = 0;
    if (cpu < 0) {
#if RT_X86
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && tern_cpu_has_f16c();
        cpu512 = cpu && __builtin_cpu_supports("avx512f");
#elif defined(__aarch64__)
        cpu = 1;   // Advanced SIMD: the AArch64 baseline
#else
        cpu = 0;
#endif
    }
    tern_kernel_kind k = tern_kernel_best();
    tern_vmath_force(k == TERN_KERNEL_PLAIN ? 0 : -1);   // exp: the plain C code in an all-plain runtime (same bits)
    g_avx2 = cpu && k != TERN_KERNEL_PLAIN;
    g_avx512 = cpu512 && k == TERN_KERNEL_AVX512VNNI;
    g_vnni = RT_X86 && k == TERN_KERNEL_AVX512VNNI;
}
static float dot_f32(const float *a, const float *b, int n) {
    return g_avx2 ? dot_f32_simd(a, b, n) : dot_f32_plain(a, b, n);
}

// ---------------------------------------------------------------------------------------------
// tokenizer stored in the GGUF

// the tokenizer's settings and arrays (validated fully when rt_build_tokenizer builds it)
int rt_load_vocab(tern_rt_model *m) {
    tern_gguf *g = m->gguf;
    const char *path = m->path;
    tern_rt_vocab *v = &m->vocab;
    tern_tokenizer_gguf_meta meta;
    int rc = tern_tokenizer_gguf_read_meta(g, &meta, path);
    if (rc < 0) return -1;
    if (rc == 1) { m->has_vocab = 0; return 0; }
    const char *const *strs;
    uint64_t n, ns, nt;
    if (tern_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &strs, NULL, &n)) return -1;
    if (n != (uint64_t)m->config.vocab_size) {
        tern_error("%s: tokenizer has %llu tokens but token_embd has %d rows", path, (unsigned long long)n, m->config.vocab_size);
        return -1;
    }
    v->scores = NULL;
    v->types = NULL;
    if (tern_gguf_find_kv(g, "tokenizer.ggml.scores") >= 0 && tern_gguf_get_arr_f32(g, "tokenizer.ggml.scores", &v->scores, &ns)) return -1;
    if (tern_gguf_find_kv(g, "tokenizer.ggml.token_type") >= 0 && tern_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &v->types, &nt)) return -1;
    if ((v->scores && ns != n) || (v->types && nt != n)) { tern_error("%s: tokenizer scores/token_type length differs from tokens (%llu)", path, (unsigned long long)n); return -1; }
    v->pieces = strs;
    v->vocab_size = (int)n;
    v->kind = meta.kind;
    v->bos_id = meta.bos_id;
    v->eos_id = meta.eos_id;
    v->unk_id = meta.unk_id;
    v->add_bos = meta.add_bos;
    v->add_space_prefix = meta.add_space_prefix;
    m->has_vocab = 1;
    return 0;
}

void rt_prefix_path(const char *path) {
    // make sure the message names the file
    const char *e = tern_last_error();
    size_t n = strlen(path);
    if (strncmp(e, path, n) != 0) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", e);
        tern_error("%s: %s", path, buf);
    }
}

// ---------------------------------------------------------------------------------------------
// state and KV cache

int rt_kv_parse(const char *s) {
    if (!strcmp(s, "f32")) return TERN_KV_F32;
    if (!strcmp(s, "q8")) return TERN_KV_Q8;
    return -1;
}
const char *rt_kv_name(int kv_type) { return kv_type == TERN_KV_Q8 ? "q8" : "f32"; }

// KV cache layout. F32: K and V rows [n_layers][seq_len][kv_dim] floats. Q8: one region per
// (layer, KV head) of S = seq_len rounded up to 64 positions, laid out for the VNNI products:
//   K (u8, k + 128)  [S/16][hd/4][16 positions][4 dims]: one 64-byte vector = 4 dims of 16
//                    positions, so a query's 4 int8 dims broadcast against it give 16 scores;
//   V (int8)         [hd/16][S/4][16 dims][4 positions]: 4 positions of 16 dims, so 4 int8
//                    probabilities broadcast against it accumulate 16 outputs;
//   scales (float)   [S] per region for K and for V.
// A layer's K/V for positions < pos must be in place before attention reads them.
static size_t kv_seq_pad(const tern_rt_state *s) { return ((size_t)s->seq_len + 63) / 64 * 64; }
static size_t kv_region(const tern_rt_config *c, int layer, int kvh) { return (size_t)layer * c->n_kv_heads + (size_t)kvh; }
static uint8_t *kv_k_q8(const tern_rt_state *s, const tern_rt_config *c, int layer, int kvh) {
    return (uint8_t *)s->key_cache + kv_region(c, layer, kvh) * kv_seq_pad(s) * c->head_dim;
}
static int8_t *kv_v_q8(const tern_rt_state *s, const tern_rt_config *c, int layer, int kvh) {
    return (int8_t *)s->value_cache + kv_region(c, layer, kvh) * kv_seq_pad(s) * c->head_dim;
}
static float *kv_k_scale(const tern_rt_state *s, const tern_rt_config *c, int layer, int kvh) {
    return s->key_scale + kv_region(c, layer, kvh) * kv_seq_pad(s);
}
static float *kv_v_scale(const tern_rt_state *s, const tern_rt_config *c, int layer, int kvh) {
    return s->value_scale + kv_region(c, layer, kvh) * kv_seq_pad(s);
}
static float *kv_k_f32(const tern_rt_state *s, const tern_rt_config *c, int layer, int pos) {
    return (float *)s->key_cache + ((size_t)layer * s->seq_len + pos) * c->kv_dim;
}
static float *kv_v_f32(const tern_rt_state *s, const tern_rt_config *c, int layer, int pos) {
    return (float *)s->value_cache + ((size_t)layer * s->seq_len + pos) * c->kv_dim;
}

// int8 quantization of n values (absmax / 127, round half to even); returns the scale
static float q8_row(const float *x, int n, int8_t *q) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    if (amax == 0.0f) {
        for (int i = 0; i < n; i++) q[i] = 0;
        return 0.0f;
    }
    const float id = 127.0f / amax;
    for (int i = 0; i < n; i++) {
        q[i] = (int8_t)tern_rint_clamp(x[i] * id, -127, 127);
    }
    return amax / 127.0f;
}

// KV head kvh of position pos: k, v [head_dim] (k after RoPE) into the cache
static void kv_store_head(tern_rt_state *s, const tern_rt_config *c, int layer, int pos, int kvh, const float *k, const float *v) {
    const int hd = c->head_dim;
    if (s->kv_type == TERN_KV_F32) {
        memcpy(kv_k_f32(s, c, layer, pos) + kvh * hd, k, sizeof(float) * hd);
        memcpy(kv_v_f32(s, c, layer, pos) + kvh * hd, v, sizeof(float) * hd);
        return;
    }
    int8_t q[1024];
    const size_t S = kv_seq_pad(s);
    uint8_t *K = kv_k_q8(s, c, layer, kvh);
    kv_k_scale(s, c, layer, kvh)[pos] = q8_row(k, hd, q);
    for (int d = 0; d < hd; d++) K[((size_t)(pos / 16) * (hd / 4) + d / 4) * 64 + (pos % 16) * 4 + d % 4] = (uint8_t)(q[d] + 128);
    int8_t *V = kv_v_q8(s, c, layer, kvh);
    kv_v_scale(s, c, layer, kvh)[pos] = q8_row(v, hd, q);
    for (int d = 0; d < hd; d++) V[((size_t)(d / 16) * (S / 4) + pos / 4) * 64 + (d % 16) * 4 + pos % 4] = q[d];
}

int build_state_kv(tern_rt_state *s, const tern_rt_model *m, int max_batch, int seq_len, int kv_type) {
    memset(s, 0, sizeof *s);
    const tern_rt_config *c = &m->config;
    if (seq_len <= 0 || seq_len > c->seq_len) seq_len = c->seq_len;
    if (max_batch < 1) max_batch = 1;
    if (kv_type != TERN_KV_F32 && kv_type != TERN_KV_Q8) { tern_error("%s: unknown KV cache type %d", m->path, kv_type); return -1; }
    if (kv_type == TERN_KV_Q8 && (c->head_dim % 16 || c->head_dim > 1024)) kv_type = TERN_KV_F32;   // layout needs 16 | head_dim
    // the KV cache and the RoPE table grow with the context (a GGUF may say up to 2^30 tokens):
    // refuse one this machine cannot hold, naming the file, before allocating
    const double per_pos = (double)c->n_layers * c->kv_dim * (kv_type == TERN_KV_F32 ? 8.0 : 2.0 + 8.0 / c->head_dim) + 4.0 * c->head_dim;
    const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (phys > 0 && per_pos * seq_len > phys) {
        tern_error("%s: a KV cache for a context of %d tokens needs %.1f GiB, more than this machine's %.1f GiB: ask for a "
                   "shorter context (-c, --ctx)", m->path, seq_len, per_pos * seq_len / 1073741824.0, phys / 1073741824.0);
        return -1;
    }
    s->kv_type = kv_type;
    s->max_batch = max_batch;
    s->seq_len = seq_len;
    const int G = c->n_heads / c->n_kv_heads;
    size_t B = (size_t)max_batch, wide = (size_t)(c->ffn_dim > c->dim ? c->ffn_dim : c->dim);
    s->x = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->xb = tern_aligned_alloc(sizeof(float) * B * wide);
    s->xb2 = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->hb = tern_aligned_alloc(sizeof(float) * B * c->ffn_dim);
    s->q = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->k = tern_aligned_alloc(sizeof(float) * B * c->kv_dim);
    s->v = tern_aligned_alloc(sizeof(float) * B * c->kv_dim);
    s->att = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->xq = tern_aligned_alloc(B * wide + 256);
    size_t accw = (size_t)(c->dim + 2 * c->kv_dim > 2 * c->ffn_dim ? c->dim + 2 * c->kv_dim : 2 * c->ffn_dim);
    s->acc = tern_aligned_alloc(sizeof(int32_t) * B * accw);
    s->sx = tern_aligned_alloc(sizeof(float) * B);
    s->n_threads = omp_get_max_threads();
    const size_t nt = (size_t)s->n_threads, S = kv_seq_pad(s);
    // attention scratch: per thread a query group's scores / probabilities (float) and quantized
    // probabilities (u8) over S positions; shared ones for all heads (decode's phases)
    s->scores = tern_aligned_alloc(sizeof(float) * nt * G * S);
    s->att_p = tern_aligned_alloc(sizeof(float) * (size_t)c->n_heads * S);
    s->att_w = tern_aligned_alloc(nt * G * S + (size_t)c->n_heads * S);
    s->att_ws = tern_aligned_alloc(sizeof(float) * (nt * G + (size_t)c->n_heads) * (S / 64));
    s->logits = tern_aligned_alloc(sizeof(float) * B * c->vocab_size);
    s->lvec = tern_xcalloc(B, sizeof(tern_qvec));
    s->lscratch = tern_aligned_alloc(B * tern_qvec_bytes(c->dim));
    if (kv_type == TERN_KV_F32) {
        size_t kv = (size_t)c->n_layers * seq_len * c->kv_dim;
        s->key_cache = tern_aligned_alloc(sizeof(float) * kv);
        s->value_cache = tern_aligned_alloc(sizeof(float) * kv);
        memset(s->key_cache, 0, sizeof(float) * kv);
        memset(s->value_cache, 0, sizeof(float) * kv);
    } else {
        size_t regions = (size_t)c->n_layers * c->n_kv_heads, kv = regions * S * c->head_dim;
        s->key_cache = tern_alloc_huge(kv);
        s->value_cache = tern_alloc_huge(kv);
        memset(s->key_cache, 128, kv);   // k = 0
        memset(s->value_cache, 0, kv);
        s->key_scale = tern_aligned_alloc(sizeof(float) * regions * S);
        s->value_scale = tern_aligned_alloc(sizeof(float) * regions * S);
        memset(s->key_scale, 0, sizeof(float) * regions * S);
        memset(s->value_scale, 0, sizeof(float) * regions * S);
    }
    // a model under 4 MB of ternary weights decodes on one thread: waking a team costs more
    // (buffers for n_threads: any team <= n_threads works)
    s->team = m->ternary_bytes >= ((size_t)4 << 20) ? (s->n_threads < TERN_SPLIT_MAX ? s->n_threads : TERN_SPLIT_MAX) : 1;
    s->xq_pad = (int)((wide + 255) / 256 * 256);
    s->xt = tern_aligned_alloc(sizeof(float) * nt * c->dim);
    s->nrow = tern_aligned_alloc(sizeof(float) * nt * wide);
    s->xqt = tern_aligned_alloc(nt * s->xq_pad);
    memset(s->xqt, 0, nt * s->xq_pad);
    s->qh = tern_aligned_alloc(sizeof(float) * nt * G * c->head_dim);
    s->qq = tern_aligned_alloc(((size_t)c->n_heads + nt * G) * c->head_dim);
    s->qd = tern_aligned_alloc(sizeof(float) * ((size_t)c->n_heads + nt * G));
    s->qsum = tern_aligned_alloc(sizeof(int32_t) * ((size_t)c->n_heads + nt * G));
    s->splits = tern_aligned_alloc(sizeof(tern_split) * 4 * (size_t)c->n_layers * nt);
    s->rope = tern_aligned_alloc(sizeof(float) * (size_t)seq_len * c->head_dim);
    for (int p = 0; p < seq_len; p++) tern_rope_angles(p, c->head_dim, c->rope_theta, s->rope + (size_t)p * c->head_dim);
    return 0;
}

int build_state(tern_rt_state *s, const tern_rt_model *m, int max_batch, int seq_len) {
    int kv = TERN_KV_Q8;
    const char *e = getenv("TERN_KV");
    if (e && *e) {
        int k = rt_kv_parse(e);
        if (k < 0) fprintf(stderr, "tern: warning: TERN_KV=%s is not f32 or q8; using q8\n", e);
        else kv = k;
    }
    return build_state_kv(s, m, max_batch, seq_len, kv);
}

void free_state(tern_rt_state *s) {
    void *f[] = {s->x, s->xb, s->xb2, s->hb, s->q, s->k, s->v, s->att, s->sx, s->scores, s->att_p, s->att_w, s->att_ws, s->logits,
                 s->lvec, s->lscratch, s->key_cache, s->value_cache, s->key_scale, s->value_scale, s->rope, s->xq, s->acc, s->xt,
                 s->nrow, s->xqt, s->qh, s->qq, s->qd, s->qsum, s->splits};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]);
    if (s->multi) {
        void **p = s->multi;
        for (int i = 0; i < 4; i++) free(p[i]);
        free(p);
    }
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------------------------------------
// forward

// out[i] = RMSNorm(x[i]; w) for n rows of C (same arithmetic as the training op)
static void rmsnorm_row(float *o, const float *xr, const float *w, int C, float eps) {
    float rs = 1.0f / sqrtf(tern_sumsq_lanes(xr, C) / (float)C + eps);
    for (int c = 0; c < C; c++) o[c] = xr[c] * rs * w[c];
}

// w NULL (a model without sub-norms): the rows as they are
static void rmsnorm_rows(float *out, const float *x, const float *w, int n, int C, float eps) {
    if (!w) { memcpy(out, x, sizeof(float) * (size_t)n * C); return; }
    #pragma omp parallel for schedule(static) if (n > 1)
    for (int r = 0; r < n; r++) rmsnorm_row(out + (size_t)r * C, x + (size_t)r * C, w, C, eps);
}

static void quantize_rows(const float *x, int n, int C, int8_t *xq, float *sx) {
    #pragma omp parallel for schedule(static) if (n > 1)
    for (int r = 0; r < n; r++) sx[r] = tern_act_quantize_row_i8(x + (size_t)r * C, C, xq + (size_t)r * C);
}

// ---- attention on an F32 KV cache (exact; the reference) ----
#if RT_X86
// One query head against T cached positions (rows of K and V at stride ld), AVX-512 with
// hd = 16 * NQ <= 128: the query and the output stay in registers for all T.
// sc [T]: scores, then probabilities (as in the portable loop below: same softmax code).
#define T512F __attribute__((target("avx512f")))
static inline __attribute__((always_inline)) T512F void head_avx512(const float *q, const float *K, const float *V, size_t ld, int T,
                                                                     float scale, float *sc, float *o, const int NQ) {
    __m512 qv[8], ov[8];
#pragma GCC unroll 8
    for (int j = 0; j < NQ; j++) qv[j] = _mm512_loadu_ps(q + 16 * j);
    float mx = -INFINITY;
    for (int t = 0; t < T; t++) {
        const float *k = K + (size_t)t * ld;
        __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
#pragma GCC unroll 8
        for (int j = 1; j < NQ; j++) a = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k + 16 * j), a);
        const float v = _mm512_reduce_add_ps(a) * scale;
        sc[t] = v;
        mx = v > mx ? v : mx;
    }
    const float lse = mx + logf(tern_vexp_shift(sc, mx, NULL, T));
    tern_vexp_shift(sc, lse, sc, T);   // probabilities
#pragma GCC unroll 8
    for (int j = 0; j < NQ; j++) ov[j] = _mm512_setzero_ps();
    for (int t = 0; t < T; t++) {
        const __m512 p = _mm512_set1_ps(sc[t]);
        const float *v = V + (size_t)t * ld;
#pragma GCC unroll 8
        for (int j = 0; j < NQ; j++) ov[j] = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16 * j), ov[j]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < NQ; j++) _mm512_storeu_ps(o + 16 * j, ov[j]);
}
#define HEAD512(NQ) \
    static T512F void head512_##NQ(const float *q, const float *K, const float *V, size_t ld, int T, float scale, float *sc, float *o) { \
        head_avx512(q, K, V, ld, T, scale, sc, o, NQ); \
    }
HEAD512(1) HEAD512(2) HEAD512(3) HEAD512(4) HEAD512(5) HEAD512(6) HEAD512(7) HEAD512(8)
typedef void (*head_fn)(const float *, const float *, const float *, size_t, int, float, float *, float *);
static const head_fn heads512[8] = {head512_1, head512_2, head512_3, head512_4, head512_5, head512_6, head512_7, head512_8};
#endif

// query head h (q [head_dim]) of layer `layer` against cached positions 0..T-1 -> o [head_dim];
// sc [seq_len] scratch
static void attend_head_f32(const tern_rt_config *c, const tern_rt_state *s, int layer, int h, const float *q, int T, float *o, float *sc) {
    const int hd = c->head_dim, kh = h / (c->n_heads / c->n_kv_heads);
    const float scale = 1.0f / sqrtf((float)hd);
    const float *kc = kv_k_f32(s, c, layer, 0), *vc = kv_v_f32(s, c, layer, 0);
#if RT_X86
    if (g_avx512 && hd % 16 == 0 && hd <= 128) {
        heads512[hd / 16 - 1](q, kc + kh * hd, vc + kh * hd, (size_t)c->kv_dim, T, scale, sc, o);
        return;
    }
#endif
    float mx = -INFINITY;
    for (int t = 0; t < T; t++) {
        float v = dot_f32(q, kc + (size_t)t * c->kv_dim + kh * hd, hd) * scale;
        sc[t] = v;
        mx = v > mx ? v : mx;
    }
    float lse = mx + logf(tern_vexp_shift(sc, mx, NULL, T));
    memset(o, 0, sizeof(float) * hd);
    tern_vexp_shift(sc, lse, sc, T);   // probabilities
    for (int t = 0; t < T; t++) {
        const float p = sc[t];
        const float *v = vc + (size_t)t * c->kv_dim + kh * hd;
        if (g_avx2) axpy_f32_simd(o, p, v, hd);
        else for (int d = 0; d < hd; d++) o[d] += p * v[d];
    }
}

// ---- attention on a Q8 KV cache ----
// For a query group (the G heads sharing KV head kvh), in three steps that decode_one runs as
// separate parallel phases (the G heads of a KV head together) and attend_head_q8 runs in a row
// for one head (same arithmetic, same bits):
//  1. scores: each query head quantized to int8 (q8_row: scale dq, sum sq); for position t the
//     exact integer dot i_t = sum_d (k_td + 128) * q_d - 128 * sq, and s_t = (float)i_t * (dq *
//     scale * dk_t) (dk_t the position's K scale, scale = 1/sqrt(head_dim));
//  2. softmax: e_t = exp(s_t - max_t s_t) (vmath), w_t = e_t * dv_t folds in the V scale; per 64
//     positions w is quantized to u8 against the block's largest w, and the block's scale ws =
//     (max/255) / sum_t e_t carries the normalization (one exp per position);
//  3. output: o_d = sum over blocks b of (float)(sum_{t in b} w8_t * v_td) * ws_b, blocks in order.
// The error this adds is measured against the F32 cache (README, docs/INFERENCE.md).

// scores of one query head (qq [hd], qs = dq * scale) at positions t0 <= t < t1 (t0 % 16 == 0)
static void q8_scores_plain(const uint8_t *K, const float *dk, int hd, const int8_t *qq, int32_t corr, float qs, int t0, int t1, float *sc) {
    for (int t = t0; t < t1; t++) {
        int32_t a = 0;
        for (int d = 0; d < hd; d++) a += (int32_t)K[((size_t)(t / 16) * (hd / 4) + d / 4) * 64 + (t % 16) * 4 + d % 4] * qq[d];
        sc[t] = (float)(a - corr) * (qs * dk[t]);
    }
}
#if RT_X86
#define TVNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
// The VNNI kernels stream K and V from memory (an int8 cache of 4096 positions is 1 MiB per KV
// head and layer); the hardware prefetcher alone left the V pass at ~60% of the K pass's speed
// (one thread, 2B4T shape at depth 4096). Both prefetch this many bytes ahead of each load (past
// the end of a head's cache it touches the next head's, or nothing: prefetches never fault).
#define KV_PREFETCH 8192
TVNNI static void q8_scores_vnni(const uint8_t *K, const float *dk, int hd, const int8_t *qq, int32_t corr, float qs, int t0, int t1, float *sc) {
    for (int tb = t0 / 16; tb * 16 < t1; tb++) {
        const uint8_t *kb = K + (size_t)tb * (hd / 4) * 64;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        int d4 = 0;
        for (; d4 + 2 <= hd / 4; d4 += 2) {
            int32_t q0, q1;
            memcpy(&q0, qq + 4 * d4, 4);
            memcpy(&q1, qq + 4 * d4 + 4, 4);
            _mm_prefetch((const char *)(kb + 64 * (size_t)d4 + KV_PREFETCH), _MM_HINT_T0);
            _mm_prefetch((const char *)(kb + 64 * (size_t)d4 + 64 + KV_PREFETCH), _MM_HINT_T0);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512((const void *)(kb + 64 * (size_t)d4)), _mm512_set1_epi32(q0));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512((const void *)(kb + 64 * (size_t)d4 + 64)), _mm512_set1_epi32(q1));
        }
        if (d4 < hd / 4) {
            int32_t q0;
            memcpy(&q0, qq + 4 * d4, 4);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512((const void *)(kb + 64 * (size_t)d4)), _mm512_set1_epi32(q0));
        }
        // sc_t = (float)(a_t - corr) * (qs * dk_t) for the block's (up to) 16 positions at once
        const int n = t1 - 16 * tb < 16 ? t1 - 16 * tb : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        const __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_add_epi32(a0, a1), _mm512_set1_epi32(corr)));
        const __m512 c = _mm512_mul_ps(_mm512_set1_ps(qs), _mm512_maskz_loadu_ps(m, dk + 16 * tb));
        _mm512_mask_storeu_ps(sc + 16 * tb, m, _mm512_mul_ps(f, c));
    }
}
#endif

#if RT_X86
// q8_softmax's max and quantization steps, 16 positions at a time (the same operations on each
// element: max ignores NaN as the scalar compare does, rint and clamp as tern_rint_clamp)
TVNNI static float max_512(const float *x, int n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int t = 0; t < n; t += 16) {
        const __mmask16 k = n - t >= 16 ? 0xFFFF : (__mmask16)((1u << (n - t)) - 1);
        m = _mm512_mask_max_ps(m, k, _mm512_maskz_loadu_ps(k, x + t), m);   // a NaN element keeps m
    }
    return _mm512_reduce_max_ps(m);
}
TVNNI static void w8_block_512(const float *p, const float *dv, int n, uint8_t *w8, float *ws) {
    __m512 w[4], mx = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const int nj = n - 16 * j;
        const __mmask16 k = nj >= 16 ? 0xFFFF : nj > 0 ? (__mmask16)((1u << nj) - 1) : 0;
        w[j] = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + 16 * j), _mm512_maskz_loadu_ps(k, dv + 16 * j));
        mx = _mm512_max_ps(w[j], mx);   // fmaxf(wmax, w): a NaN w keeps wmax
    }
    const float wmax = _mm512_reduce_max_ps(mx);
    *ws = wmax / 255.0f;
    const __m512 iw = _mm512_set1_ps(wmax > 0.0f ? 255.0f / wmax : 0.0f);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {   // tern_rint_clamp(w * iw, 0, 255); NaN -> 0; pad positions 0
        const __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(w[j], iw), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 c = _mm512_min_ps(_mm512_max_ps(r, _mm512_setzero_ps()), _mm512_set1_ps(255.0f)); // NaN -> 0 (max returns 0)
        _mm_storeu_si128((__m128i *)(w8 + 16 * j), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(c)));
    }
}
#endif

// softmax of sc [T] with the normalization folded into the block scales: e_t = exp(s_t - max)
// (in place in sc), w_t = e_t * dv_t quantized per 64 positions against the block's largest w, and
// ws_b = (max_b / 255) / sum_t e_t; one exp per position, one pass after the max. w8 [T rounded up
// to 64], ws [T/64 blocks]. A NaN sum (NaN or infinite scores) gives ws = 0: a zero output.
static void q8_softmax(float *sc, const float *dv, int T, uint8_t *w8, float *ws) {
    float mx = -INFINITY;
#if RT_X86
    if (g_vnni) mx = max_512(sc, T);
    else
#endif
        for (int t = 0; t < T; t++) mx = sc[t] > mx ? sc[t] : mx;
    // e = exp(s - max) in place, the blocks' sums into ws first (overwritten by the scales below)
    tern_vexp_shift_blocks64(sc, mx, sc, T, ws);
    float sum = 0.0f;
    for (int b = 0; b * 64 < T; b++) {
        const int n = T - 64 * b < 64 ? T - 64 * b : 64;
        float *e = sc + 64 * b;
        sum += ws[b];
#if RT_X86
        if (g_vnni) {
            w8_block_512(e, dv + 64 * b, n, w8 + 64 * b, ws + b);
            continue;
        }
#endif
        float w[64], wmax = 0.0f;
        for (int i = 0; i < n; i++) {
            w[i] = e[i] * dv[64 * b + i];
            wmax = fmaxf(wmax, w[i]);
        }
        ws[b] = wmax / 255.0f;
        const float iw = wmax > 0.0f ? 255.0f / wmax : 0.0f;
        for (int i = 0; i < 64; i++) w8[64 * b + i] = (uint8_t)(i < n ? tern_rint_clamp(w[i] * iw, 0, 255) : 0);
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;   // NaN compares false
    for (int b = 0; b * 64 < T; b++) ws[b] *= inv;
}

// o[d] for d0 <= d < d1 (multiples of 16) from the w8/ws of one head over T positions
static void q8_out_plain(const int8_t *V, size_t S, int T, const uint8_t *w8, const float *ws, int d0, int d1, float *o) {
    for (int d = d0; d < d1; d++) {
        float acc = 0.0f;
        for (int b = 0; b * 64 < T; b++) {
            int32_t a = 0;
            for (int t = 64 * b; t < 64 * b + 64; t++) a += (int32_t)w8[t] * V[((size_t)(d / 16) * (S / 4) + t / 4) * 64 + (d % 16) * 4 + t % 4];
            acc = acc + (float)a * ws[b];
        }
        o[d] = acc;
    }
}
#if RT_X86
TVNNI static void q8_out_vnni(const int8_t *V, size_t S, int T, const uint8_t *w8, const float *ws, int d0, int d1, float *o) {
    for (int dc = d0 / 16; dc < d1 / 16; dc++) {
        const int8_t *vb = V + (size_t)dc * (S / 4) * 64;
        __m512 acc = _mm512_setzero_ps();   // o_d for the 16 dims, blocks in order (as the plain code)
        for (int b = 0; b * 64 < T; b++) {
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            for (int t4 = 16 * b; t4 < 16 * b + 16; t4 += 2) {
                int32_t w0, w1;
                memcpy(&w0, w8 + 4 * t4, 4);
                memcpy(&w1, w8 + 4 * t4 + 4, 4);
                _mm_prefetch((const char *)(vb + 64 * (size_t)t4 + KV_PREFETCH), _MM_HINT_T0);
                _mm_prefetch((const char *)(vb + 64 * (size_t)t4 + 64 + KV_PREFETCH), _MM_HINT_T0);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(w0), _mm512_loadu_si512((const void *)(vb + 64 * (size_t)t4)));
                a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(w1), _mm512_loadu_si512((const void *)(vb + 64 * (size_t)t4 + 64)));
            }
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), _mm512_set1_ps(ws[b])));
        }
        _mm512_storeu_ps(o + 16 * dc, acc);
    }
}
// The G query heads of one KV head, up to 4 at a time, so each 64-byte vector of K or V is loaded
// once for all of them (instead of once per head): the same integer sums and float operations per
// head as q8_scores_vnni / q8_out_vnni, so the same bits.
static inline __attribute__((always_inline)) TVNNI void scores_heads_vnni(const uint8_t *K, const float *dk, int hd, const int8_t *qq,
                                                                         const int32_t *corr, const float *qs, int t0, int t1,
                                                                         float *sc, size_t S, const int NG) {
    for (int tb = t0 / 16; tb * 16 < t1; tb++) {
        const uint8_t *kb = K + (size_t)tb * (hd / 4) * 64;
        __m512i a[4];
#pragma GCC unroll 4
        for (int j = 0; j < NG; j++) a[j] = _mm512_setzero_si512();
        for (int d4 = 0; d4 < hd / 4; d4++) {
            const __m512i kv = _mm512_loadu_si512((const void *)(kb + 64 * (size_t)d4));
            _mm_prefetch((const char *)(kb + 64 * (size_t)d4 + KV_PREFETCH), _MM_HINT_T0);
#pragma GCC unroll 4
            for (int j = 0; j < NG; j++) {
                int32_t q;
                memcpy(&q, qq + (size_t)j * hd + 4 * d4, 4);
                a[j] = _mm512_dpbusd_epi32(a[j], kv, _mm512_set1_epi32(q));
            }
        }
        const int n = t1 - 16 * tb < 16 ? t1 - 16 * tb : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        const __m512 d = _mm512_maskz_loadu_ps(m, dk + 16 * tb);
#pragma GCC unroll 4
        for (int j = 0; j < NG; j++) {
            const __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[j], _mm512_set1_epi32(corr[j])));
            _mm512_mask_storeu_ps(sc + (size_t)j * S + 16 * tb, m, _mm512_mul_ps(f, _mm512_mul_ps(_mm512_set1_ps(qs[j]), d)));
        }
    }
}
static inline __attribute__((always_inline)) TVNNI void out_heads_vnni(const int8_t *V, size_t S, int T, const uint8_t *w8,
                                                                      const float *ws, int d0, int d1, float *o, size_t os,
                                                                      const int NG) {
    for (int dc = d0 / 16; dc < d1 / 16; dc++) {
        const int8_t *vb = V + (size_t)dc * (S / 4) * 64;
        __m512 acc[4];
#pragma GCC unroll 4
        for (int j = 0; j < NG; j++) acc[j] = _mm512_setzero_ps();
        for (int b = 0; b * 64 < T; b++) {
            __m512i a[4];
#pragma GCC unroll 4
            for (int j = 0; j < NG; j++) a[j] = _mm512_setzero_si512();
            for (int t4 = 16 * b; t4 < 16 * b + 16; t4++) {
                const __m512i vv = _mm512_loadu_si512((const void *)(vb + 64 * (size_t)t4));
                _mm_prefetch((const char *)(vb + 64 * (size_t)t4 + KV_PREFETCH), _MM_HINT_T0);
#pragma GCC unroll 4
                for (int j = 0; j < NG; j++) {
                    int32_t w;
                    memcpy(&w, w8 + (size_t)j * S + 4 * t4, 4);
                    a[j] = _mm512_dpbusd_epi32(a[j], _mm512_set1_epi32(w), vv);
                }
            }
#pragma GCC unroll 4
            for (int j = 0; j < NG; j++)
                acc[j] = _mm512_add_ps(acc[j], _mm512_mul_ps(_mm512_cvtepi32_ps(a[j]), _mm512_set1_ps(ws[(size_t)j * (S / 64) + b])));
        }
#pragma GCC unroll 4
        for (int j = 0; j < NG; j++) _mm512_storeu_ps(o + (size_t)j * os + 16 * dc, acc[j]);
    }
}
#define HEADS_VNNI(NG)                                                                                                        \
    TVNNI static void scores_heads##NG(const uint8_t *K, const float *dk, int hd, const int8_t *qq, const int32_t *corr,      \
                                       const float *qs, int t0, int t1, float *sc, size_t S) {                                \
        scores_heads_vnni(K, dk, hd, qq, corr, qs, t0, t1, sc, S, NG);                                                        \
    }                                                                                                                         \
    TVNNI static void out_heads##NG(const int8_t *V, size_t S, int T, const uint8_t *w8, const float *ws, int d0, int d1,     \
                                    float *o, size_t os) {                                                                    \
        out_heads_vnni(V, S, T, w8, ws, d0, d1, o, os, NG);                                                                   \
    }
HEADS_VNNI(2)
HEADS_VNNI(3)
HEADS_VNNI(4)
#endif
static void q8_scores(const uint8_t *K, const float *dk, int hd, const int8_t *qq, int32_t corr, float qs, int t0, int t1, float *sc) {
#if RT_X86
    if (g_vnni) { q8_scores_vnni(K, dk, hd, qq, corr, qs, t0, t1, sc); return; }
#endif
    q8_scores_plain(K, dk, hd, qq, corr, qs, t0, t1, sc);
}
static void q8_out(const int8_t *V, size_t S, int T, const uint8_t *w8, const float *ws, int d0, int d1, float *o) {
#if RT_X86
    if (g_vnni) { q8_out_vnni(V, S, T, w8, ws, d0, d1, o); return; }
#endif
    q8_out_plain(V, S, T, w8, ws, d0, d1, o);
}
// q8_scores / q8_out for the G query heads of one KV head: head j's qq at qq + j * hd, its scores
// at sc + j * S; its w8 at w8 + j * S, ws at ws + j * (S / 64), output at o + j * os
static void q8_scores_heads(const uint8_t *K, const float *dk, int hd, const int8_t *qq, const int32_t *corr, const float *qs, int G,
                            int t0, int t1, float *sc, size_t S) {
    for (int j = 0; j < G;) {
#if RT_X86
        const int ng = G - j < 4 ? G - j : 4;
        if (g_vnni && ng > 1) {
            (ng == 2 ? scores_heads2 : ng == 3 ? scores_heads3 : scores_heads4)(K, dk, hd, qq + (size_t)j * hd, corr + j, qs + j, t0, t1,
                                                                                 sc + (size_t)j * S, S);
            j += ng;
            continue;
        }
#endif
        q8_scores(K, dk, hd, qq + (size_t)j * hd, corr[j], qs[j], t0, t1, sc + (size_t)j * S);
        j++;
    }
}
static void q8_out_heads(const int8_t *V, size_t S, int T, const uint8_t *w8, const float *ws, int G, int d0, int d1, float *o, size_t os) {
    for (int j = 0; j < G;) {
#if RT_X86
        const int ng = G - j < 4 ? G - j : 4;
        if (g_vnni && ng > 1) {
            (ng == 2 ? out_heads2 : ng == 3 ? out_heads3 : out_heads4)(V, S, T, w8 + (size_t)j * S, ws + (size_t)j * (S / 64), d0, d1,
                                                                       o + (size_t)j * os, os);
            j += ng;
            continue;
        }
#endif
        q8_out(V, S, T, w8 + (size_t)j * S, ws + (size_t)j * (S / 64), d0, d1, o + (size_t)j * os);
        j++;
    }
}
// query head q [hd] -> qq, and the per-head factor and correction of q8_scores
static void q8_query(const float *q, int hd, int8_t *qq, float *qs, int32_t *corr) {
    const float dq = q8_row(q, hd, qq);
    int32_t sum = 0;
    for (int d = 0; d < hd; d++) sum += qq[d];
    *qs = dq * (1.0f / sqrtf((float)hd));
    *corr = 128 * sum;
}

// query head h of layer against cached positions 0..T-1 (Q8 cache), steps 1-3 in a row; sc, w8,
// ws: scratch of kv_seq_pad floats / bytes / blocks
static void attend_head_q8(const tern_rt_config *c, const tern_rt_state *s, int layer, int h, const float *q, int T, float *o, float *sc,
                           uint8_t *w8, float *ws, int8_t *qq) {
    const int hd = c->head_dim, kvh = h / (c->n_heads / c->n_kv_heads);
    float qs;
    int32_t corr;
    q8_query(q, hd, qq, &qs, &corr);
    q8_scores(kv_k_q8(s, c, layer, kvh), kv_k_scale(s, c, layer, kvh), hd, qq, corr, qs, 0, T, sc);
    q8_softmax(sc, kv_v_scale(s, c, layer, kvh), T, w8, ws);
    q8_out(kv_v_q8(s, c, layer, kvh), kv_seq_pad(s), T, w8, ws, 0, hd, o);
}

// logits[r] = xn[r] . E^T for r < n rows; E [vocab, dim] of the output matrix's type
// (kernels/qmatvec.h: the same bits at every SIMD level), rows split over the threads
static void logits_rows(const tern_rt_model *m, tern_rt_state *s, const float *xn, int n, float *out) {
    const tern_rt_config *c = &m->config;
    const tern_rt_weights *w = &m->weights;
    const int V = c->vocab_size, D = c->dim;
    const size_t qb = tern_qvec_bytes(D);
    for (int r = 0; r < n; r++) tern_qvec_prepare(&s->lvec[r], w->output_type, xn + (size_t)r * D, D, s->lscratch + (size_t)r * qb);
    const int CH = 256;   // rows per work item (a contiguous stretch of the matrix)
    #pragma omp parallel for schedule(dynamic, 1) num_threads(s->n_threads)
    for (int r0 = 0; r0 < V; r0 += CH)
        tern_qmat_mul(w->output_layout, w->output, w->output_row_bytes, r0, r0 + CH < V ? r0 + CH : V, s->lvec, n, out, (size_t)V,
                      TERN_KERNEL_AUTO);
}

// FFN activation of len <= 1024 values of one token from the int32 sums of gate (ag) and up (au)
// with their factors s_w / s_x: SiLU: h = g * sigmoid(g) * u (sigmoid from vmath.h, as in
// training); ReLU²: h = max(g, 0)^2 * u
static void ffn_chunk(int act, const int32_t *ag, const int32_t *au, float fg, float fu, int len, float *h) {
    if (act == TERN_FFN_RELU2) {
        for (int j = 0; j < len; j++) {   // r = g > 0 ? g : +0, as a bit mask: no branch, so it vectorizes
            const float g = (float)ag[j] * fg;
            uint32_t b;
            memcpy(&b, &g, 4);
            b &= -(uint32_t)(g > 0.0f);
            float r;
            memcpy(&r, &b, 4);
            h[j] = r * r * ((float)au[j] * fu);
        }
        return;
    }
    float sg[1024];
    for (int j = 0; j < len; j++) h[j] = (float)ag[j] * fg;   // the gate values, first
    tern_vsigmoid(h, sg, len);
    for (int j = 0; j < len; j++) h[j] = h[j] * sg[j] * ((float)au[j] * fu);
}

// RMSNorm (w NULL: none) then int8 quantization of one row of C (the batched path's
// rmsnorm_rows + quantize_rows, same arithmetic) into xq [C], zeroing xq up to C rounded to 256;
// returns s_x
static float norm_quant(const float *x, const float *w, int C, float eps, float *nrow, int8_t *xq) {
    const float *in = x;
    if (w) { rmsnorm_row(nrow, x, w, C, eps); in = nrow; }
    const float sx = tern_act_quantize_row_i8(in, C, xq);
    memset(xq + C, 0, (size_t)((C + 255) / 256 * 256 - C));
    return sx;
}

// One token at position pos, s->x [dim] holding its embedding, through all layers in ONE parallel
// region (forward's n == 1 path): the products share out row blocks (tern_tmat_mul1_team) and
// barriers replace the ~6 fork/joins per layer; each thread keeps its own copy of the residual
// stream and normalizes/quantizes the inputs of each product itself (a few microseconds of
// duplicate work instead of a serial section). Elementwise steps use the same arithmetic as the
// batched path, so the logits are bit-identical to a batched forward's (test_runtime checks).
static void decode_one(const tern_rt_model *m, tern_rt_state *s, int pos) {
    const tern_rt_config *c = &m->config;
    const tern_rt_weights *w = &m->weights;
    const int D = c->dim, F = c->ffn_dim, KV = c->kv_dim, hd = c->head_dim, G = c->n_heads / c->n_kv_heads;
    const int max_team = s->n_threads < TERN_SPLIT_MAX ? s->n_threads : TERN_SPLIT_MAX;
    const int nt = s->team < 1 ? 1 : s->team > max_team ? max_team : s->team;
    const size_t wide = (size_t)(F > D ? F : D), S = kv_seq_pad(s);
    const int T = pos + 1, q8 = s->kv_type == TERN_KV_Q8;
    // Q8 scores: positions per work item (a multiple of 64, at least 256), about 8 items per thread:
    // long runs of K per item (2B4T shape, depth 4000, 2 threads: 1024-position items decoded 9%
    // faster than 256-position ones, which gave 80 short items per layer)
    const int per_kvh = (8 * nt + c->n_kv_heads - 1) / c->n_kv_heads;
    int TCH = (T + per_kvh - 1) / per_kvh;
    TCH = TCH < 256 ? 256 : (TCH + 63) / 64 * 64;
    const int n_tch = (T + TCH - 1) / TCH;
    for (int l = 0; l < c->n_layers; l++) {
        const tern_rt_layer *L = &w->layers[l];
        const tern_tmat *mats[4] = {&L->wqkv, &L->wo, &L->wgu, &L->w_down};
        for (int j = 0; j < 4; j++) tern_tmat_split_init(s->splits + (size_t)(4 * l + j) * nt, nt, mats[j]);
    }
    const float *cs = s->rope + (size_t)pos * hd;
    float *qs = s->qd;          // [n_heads] per-head score factors (Q8)
    int32_t *corr = s->qsum;    // [n_heads] per-head corrections (Q8)
    #pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num();
        float *x = s->xt + (size_t)me * D, *nrow = s->nrow + (size_t)me * wide, *qh = s->qh + (size_t)me * G * hd;
        int8_t *xq = s->xqt + (size_t)me * s->xq_pad;
        float *sc = s->scores + (size_t)me * G * S;
        memcpy(x, s->x, sizeof(float) * D);
        for (int l = 0; l < c->n_layers; l++) {
            const tern_rt_layer *L = &w->layers[l];
            tern_split *sp = s->splits + (size_t)4 * l * nt;
            // attention block: q, k, v
            float sx = norm_quant(x, L->attn_norm, D, c->norm_eps, nrow, xq);
            tern_tmat_mul1_team(&L->wqkv, sp, nt, xq, sx, NULL, s->acc, TERN_KERNEL_AUTO);
            #pragma omp barrier
            const float fq = L->scale[0] / sx, fk = L->scale[1] / sx, fv = L->scale[2] / sx;
            #pragma omp for schedule(static)
            for (int h = 0; h < c->n_kv_heads; h++) {
                float *kr = s->k + h * hd, *vr = s->v + h * hd;
                for (int r = 0; r < hd; r++) kr[r] = (float)s->acc[D + h * hd + r] * fk;
                tern_rope_rotate(kr, hd, cs, 1.0f);
                for (int r = 0; r < hd; r++) vr[r] = (float)s->acc[D + KV + h * hd + r] * fv;
                kv_store_head(s, c, l, pos, h, kr, vr);
            }
            if (!q8) {
                #pragma omp for schedule(dynamic, 1)
                for (int h = 0; h < c->n_heads; h++) {
                    for (int r = 0; r < hd; r++) qh[r] = (float)s->acc[h * hd + r] * fq;
                    tern_rope_rotate(qh, hd, cs, 1.0f);
                    attend_head_f32(c, s, l, h, qh, T, s->att + h * hd, sc);
                }
            } else {
                // the Q8 cache in phases, each shared out over all threads: queries; scores per
                // (KV head, 256 positions); softmax per head; outputs per (KV head, 16 dims)
                #pragma omp for schedule(static)
                for (int h = 0; h < c->n_heads; h++) {
                    float *qf = s->q + h * hd;
                    for (int r = 0; r < hd; r++) qf[r] = (float)s->acc[h * hd + r] * fq;
                    tern_rope_rotate(qf, hd, cs, 1.0f);
                    q8_query(qf, hd, s->qq + (size_t)h * hd, &qs[h], &corr[h]);
                }
                #pragma omp for schedule(dynamic, 1)
                for (int it = 0; it < c->n_kv_heads * n_tch; it++) {
                    const int kvh = it / n_tch, t0 = (it % n_tch) * TCH, t1 = t0 + TCH < T ? t0 + TCH : T;
                    const int h = kvh * G;
                    q8_scores_heads(kv_k_q8(s, c, l, kvh), kv_k_scale(s, c, l, kvh), hd, s->qq + (size_t)h * hd, corr + h, qs + h, G, t0, t1,
                                    s->att_p + (size_t)h * S, S);
                }
                #pragma omp for schedule(static)
                for (int h = 0; h < c->n_heads; h++)
                    q8_softmax(s->att_p + (size_t)h * S, kv_v_scale(s, c, l, h / G), T, s->att_w + (size_t)(s->n_threads * G + h) * S,
                               s->att_ws + (size_t)(s->n_threads * G + h) * (S / 64));
                #pragma omp for schedule(dynamic, 1)
                for (int it = 0; it < c->n_kv_heads * (hd / 16); it++) {
                    const int kvh = it / (hd / 16), h = kvh * G, d0 = (it % (hd / 16)) * 16;
                    q8_out_heads(kv_v_q8(s, c, l, kvh), S, T, s->att_w + (size_t)(s->n_threads * G + h) * S,
                                 s->att_ws + (size_t)(s->n_threads * G + h) * (S / 64), G, d0, d0 + 16, s->att + h * hd, (size_t)hd);
                }
            }
            sx = norm_quant(s->att, L->attn_sub_norm, D, c->norm_eps, nrow, xq);
            tern_tmat_mul1_team(&L->wo, sp + nt, nt, xq, sx, s->xb2, NULL, TERN_KERNEL_AUTO);
            #pragma omp barrier
            for (int i = 0; i < D; i++) x[i] += s->xb2[i];
            // feed-forward block
            sx = norm_quant(x, L->ffn_norm, D, c->norm_eps, nrow, xq);
            tern_tmat_mul1_team(&L->wgu, sp + 2 * nt, nt, xq, sx, NULL, s->acc, TERN_KERNEL_AUTO);
            #pragma omp barrier
            const float fg = L->scale[4] / sx, fu = L->scale[5] / sx;
            #pragma omp for schedule(static)
            for (int r0 = 0; r0 < F; r0 += 1024) {   // the activation in the batched path's chunks
                ffn_chunk(c->ffn_act, s->acc + r0, s->acc + F + r0, fg, fu, F - r0 < 1024 ? F - r0 : 1024, s->hb + r0);
            }
            sx = norm_quant(s->hb, L->ffn_sub_norm, F, c->norm_eps, nrow, xq);
            tern_tmat_mul1_team(&L->w_down, sp + 3 * nt, nt, xq, sx, s->xb2, NULL, TERN_KERNEL_AUTO);
            #pragma omp barrier
            for (int i = 0; i < D; i++) x[i] += s->xb2[i];
        }
        if (me == 0) memcpy(s->x, x, sizeof(float) * D);
    }
}

// The rows of a batched forward: row i is at position ROW_POS(i) of the sequence whose KV cache is
// in ROW_KV(i) — one sequence (kv == NULL: s itself, positions pos0, pos0+1, ...) or, for
// forward_multi, a state and a position per row.
#define ROW_KV(i) (kv ? kv[i] : s)
#define ROW_POS(i) (rpos ? rpos[i] : pos0 + (i))

// query head h of a row at position p (q [head_dim]) against positions 0..p of the KV cache of
// state ks (F32 or Q8, its own type) -> o [head_dim]; scratch of thread `me` from s (sized for
// s->seq_len >= p + 1)
static void attend_row_head(const tern_rt_config *c, tern_rt_state *s, const tern_rt_state *ks, int layer, int h, const float *q, int p,
                            float *o, int me) {
    const size_t S = kv_seq_pad(s);
    float *sc = s->scores + (size_t)me * S;
    if (ks->kv_type == TERN_KV_F32) attend_head_f32(c, ks, layer, h, q, p + 1, o, sc);
    else
        attend_head_q8(c, ks, layer, h, q, p + 1, o, sc, s->att_w + (size_t)me * S, s->att_ws + (size_t)me * (S / 64),
                       s->qq + (size_t)(c->n_heads + me) * c->head_dim);
}

// causal GQA attention of n rows, q [n, dim] -> att [n, dim]: row i attends to positions
// 0..ROW_POS(i) of its own KV cache (written for this step's rows before the call)
static void attention_rows(const tern_rt_config *c, tern_rt_state *s, tern_rt_state *const *kv, const int *rpos, int pos0,
                           int layer, int n) {
    long work = 0;   // multiply-adds, about
    for (int i = 0; i < n; i++) work += (long)c->n_heads * (ROW_POS(i) + 1) * c->head_dim;
    #pragma omp parallel for schedule(dynamic, 1) collapse(2) if (work > 65536) num_threads(s->n_threads)
    for (int i = 0; i < n; i++)
        for (int h = 0; h < c->n_heads; h++)
            attend_row_head(c, s, ROW_KV(i), layer, h, s->q + (size_t)i * c->dim + h * c->head_dim, ROW_POS(i),
                            s->att + (size_t)i * c->dim + h * c->head_dim, omp_get_thread_num());
}

// All layers for n rows whose embeddings are in s->x [n, dim] (forward's batched path and
// forward_multi's): one kernel call per fused matrix for all rows, so the weights are read once.
static void layers_rows(const tern_rt_model *m, tern_rt_state *s, tern_rt_state *const *kv, const int *rpos, int pos0, int n) {
    const tern_rt_config *c = &m->config;
    const tern_rt_weights *w = &m->weights;
    const int D = c->dim, F = c->ffn_dim, KV = c->kv_dim, hd = c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        const tern_rt_layer *L = &w->layers[l];
        // attention block
        rmsnorm_rows(s->xb, s->x, L->attn_norm, n, D, c->norm_eps);
        quantize_rows(s->xb, n, D, s->xq, s->sx);
        tern_tmat_mul_i32(&L->wqkv, s->xq, n, s->acc, TERN_KERNEL_AUTO); // [n, D + 2 KV]
        for (int i = 0; i < n; i++) {
            const int32_t *a = s->acc + (size_t)i * (D + 2 * KV);
            float fq = L->scale[0] / s->sx[i], fk = L->scale[1] / s->sx[i], fv = L->scale[2] / s->sx[i];
            float *q = s->q + (size_t)i * D, *k = s->k + (size_t)i * KV, *v = s->v + (size_t)i * KV;
            for (int r = 0; r < D; r++) q[r] = (float)a[r] * fq;
            for (int r = 0; r < KV; r++) k[r] = (float)a[D + r] * fk;
            for (int r = 0; r < KV; r++) v[r] = (float)a[D + KV + r] * fv;
        }
        for (int i = 0; i < n; i++) {
            tern_rt_state *ks = ROW_KV(i);
            const int p = ROW_POS(i);
            const float *cs = s->rope + (size_t)p * hd;
            for (int h = 0; h < c->n_heads; h++) tern_rope_rotate(s->q + (size_t)i * D + h * hd, hd, cs, 1.0f);
            for (int h = 0; h < c->n_kv_heads; h++) {
                float *k = s->k + (size_t)i * KV + h * hd;
                tern_rope_rotate(k, hd, cs, 1.0f);
                kv_store_head(ks, c, l, p, h, k, s->v + (size_t)i * KV + h * hd);
            }
        }
        attention_rows(c, s, kv, rpos, pos0, l, n);
        rmsnorm_rows(s->xb, s->att, L->attn_sub_norm, n, D, c->norm_eps);
        quantize_rows(s->xb, n, D, s->xq, s->sx);
        tern_tmat_mul(&L->wo, s->xq, s->sx, n, s->xb2, TERN_KERNEL_AUTO);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb2[i];
        // feed-forward block
        rmsnorm_rows(s->xb, s->x, L->ffn_norm, n, D, c->norm_eps);
        quantize_rows(s->xb, n, D, s->xq, s->sx);
        tern_tmat_mul_i32(&L->wgu, s->xq, n, s->acc, TERN_KERNEL_AUTO); // [n, 2F]: gate, up
        // the activation in chunks of up to 1024 values of one token's row; the chunks of all
        // tokens are split over the threads, even for one token
        const int nck = (F + 1023) / 1024;
        #pragma omp parallel for schedule(static) if ((long)n * F >= 4096)
        for (int ck = 0; ck < n * nck; ck++) {
            const int i = ck / nck, r0 = (ck % nck) * 1024, len = F - r0 < 1024 ? F - r0 : 1024;
            const int32_t *ag = s->acc + (size_t)i * 2 * F + r0;
            ffn_chunk(c->ffn_act, ag, ag + F, L->scale[4] / s->sx[i], L->scale[5] / s->sx[i], len, s->hb + (size_t)i * F + r0);
        }
        rmsnorm_rows(s->xb, s->hb, L->ffn_sub_norm, n, F, c->norm_eps);
        quantize_rows(s->xb, n, F, s->xq, s->sx);
        tern_tmat_mul(&L->w_down, s->xq, s->sx, n, s->xb2, TERN_KERNEL_AUTO);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb2[i];
    }
}
#undef ROW_KV
#undef ROW_POS

float *forward(const tern_rt_model *m, tern_rt_state *s, const int *tokens, int n, int pos, int all_logits) {
    const tern_rt_config *c = &m->config;
    const tern_rt_weights *w = &m->weights;
    const int D = c->dim;
    update_fp_kind();
    if (n < 1 || n > s->max_batch || pos < 0 || pos + n > s->seq_len)
        tern_fatal("forward: %d tokens at position %d do not fit (batch %d, context %d)", n, pos, s->max_batch, s->seq_len);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) tern_fatal("forward: token id %d out of range", tokens[i]);
        tern_qmat_row_f32(w->embd_layout, w->token_embd, w->embd_row_bytes, tokens[i], D, s->x + (size_t)i * D);
    }
    if (n == 1) decode_one(m, s, pos);
    else layers_rows(m, s, NULL, NULL, pos, n);
    int first = all_logits ? 0 : n - 1, rows = all_logits ? n : 1;
    rmsnorm_rows(s->xb, s->x + (size_t)first * D, w->output_norm, rows, D, c->norm_eps);
    logits_rows(m, s, s->xb, rows, s->logits);
    return s->logits;
}

// ---------------------------------------------------------------------------------------------
// several sequences in one forward (tern-server's batched decoding; see runtime.h)

// A step of up to MULTI_ROWS rows in ONE parallel region (decode_one's design for several rows):
// each product is one tern_tmat_muln_team call that shares out row blocks and computes every block
// for all rows, so the weights stream once per step; barriers instead of the ~12 fork/joins per
// layer of layers_rows; each thread keeps its own copy of the rows' residual streams and
// normalizes/quantizes the products' inputs itself. Same arithmetic as layers_rows (bit-identical
// logits; each row's attention on its own state's KV cache type, as the batched path does). Rows
// may share a sequence (a prompt chunk): all K/V of a layer are stored before its attention.
// s->x [n, dim] holds the embeddings on entry and the final residual streams on exit.
#define MULTI_ROWS 16
enum { MS_XT, MS_XQ, MS_SX, MS_NROW };   // s->multi: per-thread buffers (void *[4])

static void decode_multi(const tern_rt_model *m, tern_rt_state *s, tern_rt_state *const *kv, const int *pos, int n) {
    const tern_rt_config *c = &m->config;
    const tern_rt_weights *w = &m->weights;
    const int D = c->dim, F = c->ffn_dim, KV = c->kv_dim, hd = c->head_dim, nkv = c->n_kv_heads, nh = c->n_heads;
    const int max_team = s->n_threads < TERN_SPLIT_MAX ? s->n_threads : TERN_SPLIT_MAX;
    const int nt = s->team < 1 ? 1 : s->team > max_team ? max_team : s->team;
    const size_t wide = (size_t)(F > D ? F : D), xqp = (size_t)s->xq_pad;
    // a product's rows of int8 input lie at the stride its matrix wants: cols rounded up to 256
    const size_t dp = (size_t)(D + 255) / 256 * 256, fp = (size_t)(F + 255) / 256 * 256;
    if (!s->multi) {   // for n_threads threads x MULTI_ROWS rows
        void **p = tern_xcalloc(4, sizeof(void *));
        const size_t T = (size_t)s->n_threads, R = MULTI_ROWS;
        p[MS_XT] = tern_aligned_alloc(sizeof(float) * T * R * D);
        p[MS_XQ] = tern_aligned_alloc(T * R * xqp);
        memset(p[MS_XQ], 0, T * R * xqp);
        p[MS_SX] = tern_aligned_alloc(sizeof(float) * T * R);
        p[MS_NROW] = tern_aligned_alloc(sizeof(float) * T * (wide + (size_t)hd));
        s->multi = p;
    }
    void **ms = s->multi;
    for (int l = 0; l < c->n_layers; l++) {
        const tern_rt_layer *L = &w->layers[l];
        const tern_tmat *mats[4] = {&L->wqkv, &L->wo, &L->wgu, &L->w_down};
        for (int j = 0; j < 4; j++) tern_tmat_split_init(s->splits + (size_t)(4 * l + j) * nt, nt, mats[j]);
    }
    #pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num();
        float *x = (float *)ms[MS_XT] + (size_t)me * MULTI_ROWS * D, *sx = (float *)ms[MS_SX] + (size_t)me * MULTI_ROWS;
        int8_t *xq = (int8_t *)ms[MS_XQ] + (size_t)me * MULTI_ROWS * xqp;
        float *nrow = (float *)ms[MS_NROW] + (size_t)me * (wide + (size_t)hd), *qh = nrow + wide;
        memcpy(x, s->x, sizeof(float) * (size_t)n * D);
        for (int l = 0; l < c->n_layers; l++) {
            const tern_rt_layer *L = &w->layers[l];
            tern_split *sp = s->splits + (size_t)4 * l * nt;
            // attention block: q, k, v of every row
            for (int r = 0; r < n; r++) sx[r] = norm_quant(x + (size_t)r * D, L->attn_norm, D, c->norm_eps, nrow, xq + r * dp);
            tern_tmat_muln_team(&L->wqkv, sp, nt, xq, n, sx, NULL, s->acc, TERN_KERNEL_AUTO);   // [n, D + 2 KV]
            #pragma omp barrier
            #pragma omp for schedule(static)
            for (int t = 0; t < n * nkv; t++) {   // (row, kv head): k and v into the row's cache
                const int r = t / nkv, h = t % nkv;
                const int32_t *a = s->acc + (size_t)r * (D + 2 * KV);
                const float fk = L->scale[1] / sx[r], fv = L->scale[2] / sx[r];
                float *kr = s->k + (size_t)r * KV + h * hd, *vr = s->v + (size_t)r * KV + h * hd;
                for (int q = 0; q < hd; q++) kr[q] = (float)a[D + h * hd + q] * fk;
                tern_rope_rotate(kr, hd, s->rope + (size_t)pos[r] * hd, 1.0f);
                for (int q = 0; q < hd; q++) vr[q] = (float)a[D + KV + h * hd + q] * fv;
                kv_store_head(kv[r], c, l, pos[r], h, kr, vr);
            }
            #pragma omp for schedule(dynamic, 1)
            for (int t = 0; t < n * nh; t++) {   // (row, head): its query against its cache
                const int r = t / nh, h = t % nh;
                const float fq = L->scale[0] / sx[r];
                const int32_t *a = s->acc + (size_t)r * (D + 2 * KV);
                for (int q = 0; q < hd; q++) qh[q] = (float)a[h * hd + q] * fq;
                tern_rope_rotate(qh, hd, s->rope + (size_t)pos[r] * hd, 1.0f);
                attend_row_head(c, s, kv[r], l, h, qh, pos[r], s->att + (size_t)r * D + h * hd, me);
            }
            for (int r = 0; r < n; r++) sx[r] = norm_quant(s->att + (size_t)r * D, L->attn_sub_norm, D, c->norm_eps, nrow, xq + r * dp);
            tern_tmat_muln_team(&L->wo, sp + nt, nt, xq, n, sx, s->xb2, NULL, TERN_KERNEL_AUTO);
            #pragma omp barrier
            for (size_t i = 0; i < (size_t)n * D; i++) x[i] += s->xb2[i];
            // feed-forward block
            for (int r = 0; r < n; r++) sx[r] = norm_quant(x + (size_t)r * D, L->ffn_norm, D, c->norm_eps, nrow, xq + r * dp);
            tern_tmat_muln_team(&L->wgu, sp + 2 * nt, nt, xq, n, sx, NULL, s->acc, TERN_KERNEL_AUTO);   // [n, 2F]
            #pragma omp barrier
            const int nck = (F + 1023) / 1024;
            #pragma omp for schedule(static)
            for (int ck = 0; ck < n * nck; ck++) {   // the activation in the batched path's chunks
                const int r = ck / nck, r0 = (ck % nck) * 1024, len = F - r0 < 1024 ? F - r0 : 1024;
                const int32_t *ag = s->acc + (size_t)r * 2 * F + r0;
                ffn_chunk(c->ffn_act, ag, ag + F, L->scale[4] / sx[r], L->scale[5] / sx[r], len, s->hb + (size_t)r * F + r0);
            }
            for (int r = 0; r < n; r++) sx[r] = norm_quant(s->hb + (size_t)r * F, L->ffn_sub_norm, F, c->norm_eps, nrow, xq + r * fp);
            tern_tmat_muln_team(&L->w_down, sp + 3 * nt, nt, xq, n, sx, s->xb2, NULL, TERN_KERNEL_AUTO);
            #pragma omp barrier
            for (size_t i = 0; i < (size_t)n * D; i++) x[i] += s->xb2[i];
            // the next layer's first product overwrites s->xb2 / s->acc only after the barriers
            // that follow its own inputs' preparation, which every thread reaches after reading them
        }
        if (me == 0) memcpy(s->x, x, sizeof(float) * (size_t)n * D);
    }
}

float *forward_multi(const tern_rt_model *m, tern_rt_state *s, tern_rt_state *const *kv, const int *tokens, const int *pos, int n,
                     const int *out_rows, int n_out) {
    const tern_rt_config *c = &m->config;
    const tern_rt_weights *w = &m->weights;
    const int D = c->dim;
    if (n < 1 || n > s->max_batch || n_out < 0 || n_out > n)
        tern_fatal("forward_multi: %d rows (%d with logits) do not fit a batch of %d", n, n_out, s->max_batch);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) tern_fatal("forward_multi: token id %d out of range", tokens[i]);
        if (pos[i] < 0 || pos[i] >= kv[i]->seq_len || pos[i] >= s->seq_len)
            tern_fatal("forward_multi: row %d: position %d outside the context (%d)", i, pos[i], kv[i]->seq_len);
        for (int j = 0; j < i; j++)
            if (kv[j] == kv[i] && pos[j] == pos[i]) tern_fatal("forward_multi: rows %d and %d: same sequence and position %d", j, i, pos[i]);
    }
    for (int j = 0; j < n_out; j++)
        if (out_rows[j] < 0 || out_rows[j] >= n) tern_fatal("forward_multi: logits row %d out of range", out_rows[j]);
    if (n == 1) {   // one sequence, one token: the decode step of that sequence's own state
        float *lg = forward(m, kv[0], tokens, 1, pos[0], 0);
        return n_out ? lg : NULL;
    }
    update_fp_kind();
    for (int i = 0; i < n; i++) tern_qmat_row_f32(w->embd_layout, w->token_embd, w->embd_row_bytes, tokens[i], D, s->x + (size_t)i * D);
    if (n <= MULTI_ROWS) decode_multi(m, s, kv, pos, n);   // decode rows (and short chunks): one region
    else layers_rows(m, s, kv, pos, 0, n);                 // prompt-sized: per-op parallel loops
    if (!n_out) return NULL;
    for (int j = 0; j < n_out; j++) memcpy(s->xb2 + (size_t)j * D, s->x + (size_t)out_rows[j] * D, sizeof(float) * D);
    rmsnorm_rows(s->xb, s->xb2, w->output_norm, n_out, D, c->norm_eps);
    logits_rows(m, s, s->xb, n_out, s->logits);
    return s->logits;
}

void rt_kv_fill_random(const tern_rt_model *m, tern_rt_state *s, int n, uint64_t seed) {
    const tern_rt_config *c = &m->config;
    if (n > s->seq_len) n = s->seq_len;
    #pragma omp parallel for schedule(dynamic, 1)
    for (int l = 0; l < c->n_layers; l++) {
        float *k = tern_xmalloc(sizeof(float) * 2 * (size_t)c->head_dim), *v = k + c->head_dim;
        tern_rng r;
        tern_rng_seed(&r, seed + 7919u * (uint64_t)l);
        for (int p = 0; p < n; p++)
            for (int h = 0; h < c->n_kv_heads; h++) {
                for (int d = 0; d < c->head_dim; d++) { k[d] = tern_rng_normal(&r); v[d] = tern_rng_normal(&r); }
                kv_store_head(s, c, l, p, h, k, v);
            }
        free(k);
    }
}

size_t rt_kv_bytes(const tern_rt_model *m, const tern_rt_state *s, int n) {
    const tern_rt_config *c = &m->config;
    const size_t per = s->kv_type == TERN_KV_F32 ? 2 * sizeof(float) * (size_t)c->kv_dim : 2 * ((size_t)c->kv_dim + sizeof(float) * c->n_kv_heads);
    return per * (size_t)n * c->n_layers;
}

float *forward_prompt(const tern_rt_model *m, tern_rt_state *s, const int *tokens, int n, int pos) {
    float *out = NULL;
    for (int i = 0; i < n; i += s->max_batch) {
        int k = n - i < s->max_batch ? n - i : s->max_batch;
        out = forward(m, s, tokens + i, k, pos + i, 0);
    }
    return out;
}

double logprob_of(const float *logits, int vocab, int target) {
    float mx = logits[0];
    for (int i = 1; i < vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[target] - mx - log(sum);
}

int rt_require_vocab(const tern_rt_model *m) {
    if (m->has_vocab) return 0;
    tern_error("%s: no tokenizer in the file (tokenizer.ggml.tokens missing); re-export with a tokenizer", m->path);
    return -1;
}

int rt_check_prompt(const tern_rt_model *m, int n, int ctx) {
    if (ctx <= 0 || ctx > m->config.seq_len) ctx = m->config.seq_len;
    if (n >= ctx) {
        tern_error("%s: prompt is %d tokens, longer than the context allows (%d tokens, at most %d for the prompt)", m->path, n, ctx, ctx - 1);
        return -1;
    }
    return 0;
}

// the GGUF's tokenizer.ggml.* keys -> a tern tokenizer of either kind (tokenizers/tokenizer_gguf.h)
int rt_build_tokenizer(const tern_rt_model *m, tern_tokenizer *t) {
    memset(t, 0, sizeof *t);
    if (rt_require_vocab(m)) return -1;
    return tern_tokenizer_gguf_read(t, m->gguf, m->path) == 0 ? 0 : -1;
}

double rt_nll(const tern_rt_model *m, tern_rt_state *s, const int *ids, int n, int ctx, long *scored, int *windows) {
    int V = m->config.vocab_size;
    if (ctx <= 0 || ctx > s->seq_len) ctx = s->seq_len;
    double nll = 0.0;
    long sc = 0;
    int nw = 0;
    for (long w0 = 0; w0 + 1 < n; w0 += ctx) {
        int wlen = (int)(n - 1 - w0 < ctx ? n - 1 - w0 : ctx); // inputs in this window
        for (int i = 0; i < wlen; i += s->max_batch) {
            int k = wlen - i < s->max_batch ? wlen - i : s->max_batch;
            float *lg = forward(m, s, ids + w0 + i, k, i, 1);
            for (int j = 0; j < k; j++) nll -= logprob_of(lg + (size_t)j * V, V, ids[w0 + i + j + 1]);
            sc += k;
        }
        nw++;
    }
    if (scored) *scored = sc;
    if (windows) *windows = nw;
    return nll;
}
