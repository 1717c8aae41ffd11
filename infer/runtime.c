// runtime.c — load a bitnet GGUF, KV cache, batched forward. See runtime.h for the model.
// The hot loop is tern_tmat_mul (kernels.c): int8 activations x 2-bit ternary weights, int32 sums.
#include "runtime.h"
#include "model/quant.h"
#include "model/rope.h"
#include "kernels/rowops.h"
#include "formats/tqpack.h"
#include "util.h"
#include "kernels/vmath.h"
#include <math.h>
#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// fp32 / fp16 dot products for the logits matrix and attention. The AVX2 versions are used when
// the CPU has AVX2+FMA+F16C and the integer kernels are not forced to plain (TERN_KERNEL=plain
// then gives an all-plain runtime); an f16 logits matrix uses AVX-512 when the kernels run avx512.
// Float results may differ in the last bits between these (summation order); within one kind,
// batched and token-by-token forward give bit-identical logits.

static float dot_f32_plain(const float *a, const float *b, int n) {
    float s[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) s[j] += a[i + j] * b[i + j];
    float r = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void f16_to_f32_plain(const uint16_t *h, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = tern_fp16_to_fp32(h[i]);
}

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

__attribute__((target("avx2,f16c"))) static void f16_to_f32_avx2(const uint16_t *h, float *out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) out[i] = tern_fp16_to_fp32(h[i]);
}

// dot of an f16 row with an f32 vector, converting in registers (decode's logits)
__attribute__((target("avx2,fma,f16c"))) static float dot_f16_avx2(const uint16_t *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8))), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r += tern_fp16_to_fp32(a[i]) * b[i];
    return r;
}

// decode's logits on AVX-512: 4 f16 rows of E against one f32 vector per pass (x loaded once per
// 16 columns for the 4 rows; 8 independent accumulator chains); out[j] = E[j] . x
__attribute__((target("avx512f"))) static void dot4_f16_avx512(const uint16_t *E, size_t stride, const float *x, int n, float *out) {
    __m512 s[4][2];
    for (int j = 0; j < 4; j++) s[j][0] = s[j][1] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        for (int j = 0; j < 4; j++) {
            const uint16_t *e = E + (size_t)j * stride + i;
            _mm_prefetch((const char *)(e + 4 * stride), _MM_HINT_T0);   // same columns of the next 4 rows
            s[j][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)e)), x0, s[j][0]);
            s[j][1] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(e + 16))), x1, s[j][1]);
        }
    }
    for (int j = 0; j < 4; j++) {
        float r = _mm512_reduce_add_ps(_mm512_add_ps(s[j][0], s[j][1]));
        for (int k = i; k < n; k++) r += tern_fp16_to_fp32(E[(size_t)j * stride + k]) * x[k];
        out[j] = r;
    }
}

// 1 when the fp32 helpers use AVX2/FMA/F16C: the CPU has them and the integer kernels are not
// forced to plain (TERN_KERNEL=plain then gives an all-plain runtime). Set by forward().
// g_avx512: the decode logits use dot4_f16_avx512 (CPU has AVX-512F and the kernels run avx512).
static int g_avx2 = 0, g_avx512 = 0;
// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c"
static int cpu_has_f16c(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
#else
    return 0;
#endif
}
static void update_fp_kind(void) {
    static int cpu = -1, cpu512 = 0;
    if (cpu < 0) {
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
        cpu512 = cpu && __builtin_cpu_supports("avx512f");
    }
    tern_kernel_kind k = tern_kernel_best();
    tern_vmath_force(k == TERN_KERNEL_PLAIN ? 0 : -1);   // exp: libm in an all-plain runtime
    g_avx2 = cpu && k != TERN_KERNEL_PLAIN;
    g_avx512 = cpu512 && k == TERN_KERNEL_AVX512VNNI;
}
static float dot_f32(const float *a, const float *b, int n) {
    return g_avx2 ? dot_f32_avx2(a, b, n) : dot_f32_plain(a, b, n);
}
static void f16_to_f32(const uint16_t *h, float *out, int n) {
    if (g_avx2) f16_to_f32_avx2(h, out, n);
    else f16_to_f32_plain(h, out, n);
}

// row r of an f32/f16 [rows, dim] matrix as f32
static void fp_row(const void *mat, int type, long r, int dim, float *out) {
    if (type == TERN_GGML_F32) memcpy(out, (const float *)mat + r * dim, sizeof(float) * (size_t)dim);
    else f16_to_f32((const uint16_t *)mat + r * dim, out, dim);
}

// ---------------------------------------------------------------------------------------------
// loading

static const char *bitlinear_names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// rows / cols of BitLinear j (bitlinear_names order)
static void bl_shape(const tern_rt_config *c, int j, int *rows, int *cols) {
    int r[7] = {c->dim, c->kv_dim, c->kv_dim, c->dim, c->ffn_dim, c->ffn_dim, c->dim};
    int k[7] = {c->dim, c->dim, c->dim, c->dim, c->dim, c->dim, c->ffn_dim};
    *rows = r[j];
    *cols = k[j];
}

static void free_layer(tern_rt_layer *L) {
    tern_tmat_free(&L->wqkv);
    tern_tmat_free(&L->wo);
    tern_tmat_free(&L->wgu);
    tern_tmat_free(&L->w_down);
}

// Build the layer's four kernel matrices from the seven ternary matrices in int8, stacked as
// [q; k; v; o; gate; up; down] in all (rows x cols each, row-major).
static int build_layer_mats(tern_rt_model *m, tern_rt_layer *L, const int8_t *all) {
    const tern_rt_config *c = &m->config;
    size_t off[8] = {0};
    for (int j = 0; j < 7; j++) {
        int r, k;
        bl_shape(c, j, &r, &k);
        off[j + 1] = off[j] + (size_t)r * k;
        m->n_ternary += (int64_t)r * k;
    }
    if (tern_tmat_from_i8(&L->wqkv, all, c->dim + 2 * c->kv_dim, c->dim, 1.0f) ||
        tern_tmat_from_i8(&L->wo, all + off[3], c->dim, c->dim, L->scale[3]) ||
        tern_tmat_from_i8(&L->wgu, all + off[4], 2 * c->ffn_dim, c->dim, 1.0f) ||
        tern_tmat_from_i8(&L->w_down, all + off[6], c->dim, c->ffn_dim, L->scale[6]))
        return -1;
    m->ternary_bytes += tern_tmat_weight_bytes(&L->wqkv) + tern_tmat_weight_bytes(&L->wo) + tern_tmat_weight_bytes(&L->wgu) +
                        tern_tmat_weight_bytes(&L->w_down);
    return 0;
}

// The weights a decode step streams, laid out for it: all layers' ternary matrices in one buffer in
// the order a forward reads them, and the logits matrix (read in place from the file mapping until
// now) in a buffer of its own, both on transparent huge pages (tern_alloc_huge). A decode step
// reads ~700 MB for a 2B model; with 4 KiB pages that is ~170k TLB misses per token, each a page
// walk that a VM's nested paging makes several times dearer. Measured on a 2-core Zen 5 VM: +9-13%
// decode speed for the matmuls, in runs that alternated both layouts in one process.
static void gather_weights(tern_rt_model *m) {
    const int nl = m->config.n_layers;
    tern_tmat **mats = tern_xmalloc(sizeof(tern_tmat *) * 4 * (size_t)nl);
    for (int l = 0; l < nl; l++) {
        tern_rt_layer *L = &m->weights.layers[l];
        mats[4 * l] = &L->wqkv; mats[4 * l + 1] = &L->wo; mats[4 * l + 2] = &L->wgu; mats[4 * l + 3] = &L->w_down;
    }
    m->weights.ternary = tern_tmat_gather(mats, 4 * nl);
    free(mats);
    tern_rt_weights *w = &m->weights;
    if (!m->gguf) return;   // random models: the matrix is already in an owned buffer
    const size_t nb = (size_t)m->config.vocab_size * m->config.dim * (w->output_type == TERN_GGML_F32 ? 4 : 2);
    void *copy = tern_alloc_huge(nb);
    memcpy(copy, w->output, nb);
    const int tied = w->token_embd == w->output;
    if (tied) w->token_embd = copy;   // the embedding lookups read the copy too
    // the file's pages of that tensor are no longer read: drop them from this process (a private
    // read-only mapping: they stay in the page cache and would simply be read again)
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)w->output + pg - 1) / pg * pg, b = ((uintptr_t)w->output + nb) / pg * pg;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    w->output = copy;
    w->output_copy = copy;
}

static size_t layer_weights(const tern_rt_config *c) {
    return (size_t)c->dim * (2 * c->dim + 2 * c->kv_dim + 3 * (size_t)c->ffn_dim);
}

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

// tensor `name` with shape ne = {ne0[, ne1]} (GGUF order) and one of the allowed types (mask bit t)
static const tern_gguf_tensor *get_tensor(const tern_gguf *g, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                                          uint64_t type_mask) {
    const char *path = tern_gguf_path(g);
    const tern_gguf_tensor *t = tern_gguf_get_tensor(g, name);
    if (!t) return NULL;
    int ok = 1;
    int nd = t->n_dims;
    while (nd > n_dims && t->ne[nd - 1] == 1) nd--; // trailing 1s are harmless
    if (nd != n_dims || t->ne[0] != ne0 || (n_dims > 1 && t->ne[1] != ne1)) ok = 0;
    if (!ok) {
        if (n_dims == 1)
            tern_error("%s: tensor %s has shape [%lld, %lld], expected [%lld]", path, name, (long long)t->ne[0],
                       (long long)t->ne[1], (long long)ne0);
        else
            tern_error("%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld] (ne order)", path, name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)ne1);
        return NULL;
    }
    if (t->type < 0 || t->type >= 64 || !(type_mask & (1ull << t->type))) {
        tern_error("%s: tensor %s has type %s (%d), not supported here", path, name, tern_ggml_type_name(t->type), t->type);
        return NULL;
    }
    return t;
}

#define MASK(t) (1ull << (t))

// BitLinear j of a layer: TQ2_0/TQ1_0 blocks -> dst [rows, cols] in {-1,0,1}; *scale = the
// blocks' common d times the optional blk.N.<name>.scale tensor. dq: scratch [rows*cols/256].
static int load_bitlinear(tern_rt_model *m, int layer, int j, int8_t *dst, float *dq, float *scale) {
    const tern_gguf *g = m->gguf;
    const char *path = m->path;
    int rows, cols;
    bl_shape(&m->config, j, &rows, &cols);
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight", layer, bitlinear_names[j]);
    const tern_gguf_tensor *t = get_tensor(g, name, 2, cols, rows, MASK(TERN_GGML_TQ2_0) | MASK(TERN_GGML_TQ1_0));
    if (!t) return -1;
    int64_t n = (int64_t)rows * cols;
    int rc = t->type == TERN_GGML_TQ2_0 ? tern_tq2_unpack(t->data, n, dst, dq) : tern_tq1_unpack(t->data, n, dst, dq);
    if (rc) {
        tern_error("%s: tensor %s: %s", path, name, tern_last_error());
        return -1;
    }
    // one scale per tensor: every block that holds a non-zero weight must have the same d
    float d = 0.0f;
    int have = 0;
    for (int64_t b = 0; b < n / 256; b++) {
        int nz = 0;
        for (int i = 0; i < 256 && !nz; i++) nz = dst[b * 256 + i] != 0;
        if (!nz) continue;
        if (!have) { d = dq[b]; have = 1; }
        else if (dq[b] != d) {
            tern_error("%s: tensor %s: blocks have different scales (%g, %g); tern needs one scale per tensor "
                       "(files quantized by llama.cpp from fp weights are not supported)", path, name, d, dq[b]);
            return -1;
        }
    }
    if (!have) d = 1.0f; // all zero: any scale
    if (!isfinite(d) || d <= 0.0f) { tern_error("%s: tensor %s: block scale %g is not positive", path, name, d); return -1; }
    snprintf(name, sizeof name, "blk.%d.%s.scale", layer, bitlinear_names[j]);
    if (tern_gguf_find_tensor(g, name)) {
        const tern_gguf_tensor *s = get_tensor(g, name, 1, 1, 1, MASK(TERN_GGML_F32));
        if (!s) return -1;
        float v;
        memcpy(&v, s->data, sizeof v);
        if (!isfinite(v) || v <= 0.0f) { tern_error("%s: tensor %s = %g is not a positive scale", path, name, v); return -1; }
        d *= v;
    }
    *scale = d;
    return 0;
}

static const float *load_norm(tern_rt_model *m, const char *name, int n) {
    const tern_gguf_tensor *t = get_tensor(m->gguf, name, 1, n, 1, MASK(TERN_GGML_F32));
    if (!t) return NULL;
    m->fp_bytes += t->nbytes;
    return (const float *)t->data;
}

static int load_vocab(tern_rt_model *m) {
    tern_gguf *g = m->gguf;
    const char *path = m->path;
    tern_rt_vocab *v = &m->vocab;
    if (tern_gguf_find_kv(g, "tokenizer.ggml.tokens") < 0) { m->has_vocab = 0; return 0; }
    const char *model = NULL;
    if (tern_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL)) return -1;
    if (strcmp(model, "llama") != 0) {
        tern_error("%s: tokenizer.ggml.model is '%s', only 'llama' is supported", path, model);
        return -1;
    }
    const char *const *strs;
    uint64_t n, ns, nt;
    if (tern_gguf_get_arr_str(g, "tokenizer.ggml.tokens", &strs, NULL, &n)) return -1;
    if (n != (uint64_t)m->config.vocab_size) {
        tern_error("%s: tokenizer has %llu tokens but token_embd has %d rows", path, (unsigned long long)n, m->config.vocab_size);
        return -1;
    }
    if (tern_gguf_get_arr_f32(g, "tokenizer.ggml.scores", &v->scores, &ns)) return -1;
    if (tern_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &v->types, &nt)) return -1;
    if (ns != n || nt != n) { tern_error("%s: tokenizer scores/token_type length differs from tokens (%llu)", path, (unsigned long long)n); return -1; }
    v->pieces = strs;
    v->vocab_size = (int)n;
    int64_t id;
    v->bos_id = 1; v->eos_id = 2; v->unk_id = 0;
    const char *keys[3] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    int *dst[3] = {&v->bos_id, &v->eos_id, &v->unk_id};
    for (int i = 0; i < 3; i++) {
        if (tern_gguf_find_kv(g, keys[i]) < 0) continue;
        if (tern_gguf_get_i64(g, keys[i], &id)) return -1;
        if (id < 0 || id >= (int64_t)n) { tern_error("%s: %s = %lld out of range", path, keys[i], (long long)id); return -1; }
        *dst[i] = (int)id;
    }
    v->add_bos = 1;
    if (tern_gguf_find_kv(g, "tokenizer.ggml.add_bos_token") >= 0 && tern_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos))
        return -1;
    v->add_space_prefix = 1;
    if (tern_gguf_find_kv(g, "tokenizer.ggml.add_space_prefix") >= 0 &&
        tern_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix))
        return -1;
    m->has_vocab = 1;
    return 0;
}

static void prefix_path(const char *path) {
    // make sure the message names the file
    const char *e = tern_last_error();
    size_t n = strlen(path);
    if (strncmp(e, path, n) != 0) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", e);
        tern_error("%s: %s", path, buf);
    }
}

int build_model(tern_rt_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->gguf = tern_gguf_open(path);
    if (!m->gguf) { prefix_path(path); return -1; }
    tern_gguf *g = m->gguf;
    tern_rt_config *c = &m->config;
    const char *arch = NULL;
    int8_t *all = NULL; // one layer's ternary weights, stacked (build_layer_mats)
    float *dq = NULL;
    if (tern_gguf_find_kv(g, "general.architecture") < 0) { tern_error("%s: missing key general.architecture", path); goto fail; }
    if (tern_gguf_get_str(g, "general.architecture", &arch, NULL)) goto fail;
    if (strcmp(arch, "bitnet") != 0) {
        tern_error("%s: architecture '%s' is not supported (tern runs 'bitnet' models)", path, arch);
        goto fail;
    }
    if (get_dim(g, "bitnet.context_length", 1, 0, &c->seq_len) || get_dim(g, "bitnet.embedding_length", 1, 0, &c->dim) ||
        get_dim(g, "bitnet.block_count", 1, 0, &c->n_layers) || get_dim(g, "bitnet.feed_forward_length", 1, 0, &c->ffn_dim) ||
        get_dim(g, "bitnet.attention.head_count", 1, 0, &c->n_heads) ||
        get_dim(g, "bitnet.attention.head_count_kv", 0, c->n_heads, &c->n_kv_heads) ||
        get_float(g, "bitnet.attention.layer_norm_rms_epsilon", 1, 0, &c->norm_eps) ||
        get_float(g, "bitnet.rope.freq_base", 0, 10000.0f, &c->rope_theta))
        goto fail;
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2 || c->n_heads % c->n_kv_heads) {
        tern_error("%s: embedding_length %d, head_count %d, head_count_kv %d do not fit together", path, c->dim, c->n_heads, c->n_kv_heads);
        goto fail;
    }
    c->head_dim = c->dim / c->n_heads;
    c->kv_dim = c->n_kv_heads * c->head_dim;
    int rot;
    if (get_dim(g, "bitnet.rope.dimension_count", 0, c->head_dim, &rot)) goto fail;
    if (rot != c->head_dim) { tern_error("%s: bitnet.rope.dimension_count %d != head dim %d (partial RoPE unsupported)", path, rot, c->head_dim); goto fail; }
    if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f)) { tern_error("%s: bad epsilon or rope.freq_base", path); goto fail; }
    // embedding: [vocab, dim]
    const tern_gguf_tensor *te = tern_gguf_get_tensor(g, "token_embd.weight");
    if (!te) goto fail;
    if (te->ne[1] < 1 || te->ne[1] > (1 << 24)) { tern_error("%s: token_embd.weight has a bad vocab size", path); goto fail; }
    c->vocab_size = (int)te->ne[1];
    if (tern_gguf_find_kv(g, "bitnet.vocab_size") >= 0) {   // optional, but when present it must agree
        int64_t v;
        if (tern_gguf_get_i64(g, "bitnet.vocab_size", &v)) goto fail;
        if (v != c->vocab_size) {
            tern_error("%s: bitnet.vocab_size %lld does not match token_embd.weight's %d rows", path, (long long)v, c->vocab_size);
            goto fail;
        }
    }
    te = get_tensor(g, "token_embd.weight", 2, c->dim, c->vocab_size, MASK(TERN_GGML_F32) | MASK(TERN_GGML_F16));
    if (!te) goto fail;
    tern_rt_weights *w = &m->weights;
    w->token_embd = te->data;
    w->embd_type = te->type;
    w->output = te->data;
    w->output_type = te->type;
    if (tern_gguf_find_tensor(g, "output.weight")) {
        const tern_gguf_tensor *to = get_tensor(g, "output.weight", 2, c->dim, c->vocab_size, MASK(TERN_GGML_F32) | MASK(TERN_GGML_F16));
        if (!to) goto fail;
        w->output = to->data;
        w->output_type = to->type;
    }
    m->fp_bytes += (size_t)c->vocab_size * c->dim * (w->output_type == TERN_GGML_F32 ? 4 : 2);
    if (!(w->output_norm = load_norm(m, "output_norm.weight", c->dim))) goto fail;
    w->layers = tern_xcalloc((size_t)c->n_layers, sizeof(tern_rt_layer));
    all = tern_xmalloc(layer_weights(c));
    dq = tern_xmalloc(sizeof(float) * (layer_weights(c) / 256 + 1));
    for (int l = 0; l < c->n_layers; l++) {
        tern_rt_layer *L = &w->layers[l];
        char name[96];
#define NORM(field, nm, n)                                             \
        snprintf(name, sizeof name, "blk.%d." nm ".weight", l);        \
        if (!(L->field = load_norm(m, name, n))) goto fail;
        NORM(attn_norm, "attn_norm", c->dim)
        NORM(attn_sub_norm, "attn_sub_norm", c->dim)
        NORM(ffn_norm, "ffn_norm", c->dim)
        NORM(ffn_sub_norm, "ffn_sub_norm", c->ffn_dim)
#undef NORM
        int8_t *dst = all;
        for (int j = 0; j < 7; j++) {
            int r, k;
            bl_shape(c, j, &r, &k);
            if (load_bitlinear(m, l, j, dst, dq, &L->scale[j])) goto fail;
            dst += (size_t)r * k;
        }
        if (build_layer_mats(m, L, all)) { tern_error("%s: layer %d: %s", path, l, tern_last_error()); goto fail; }
    }
    free(all);
    free(dq);
    all = NULL;
    dq = NULL;
    if (load_vocab(m)) goto fail;
    gather_weights(m);
    return 0;
fail:
    free(all);
    free(dq);
    prefix_path(path);
    free_model(m);
    return -1;
}

void free_model(tern_rt_model *m) {
    if (m->weights.layers)
        for (int l = 0; l < m->config.n_layers; l++)
            free_layer(&m->weights.layers[l]);
    free(m->weights.layers);
    free(m->weights.ternary);
    free(m->weights.output_copy);
    free(m->weights.owned);
    tern_gguf_close(m->gguf);
    memset(m, 0, sizeof *m);
}

static int check_config(const tern_rt_config *c) {
    if (c->dim < 2 || c->ffn_dim < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->vocab_size < 1 ||
        c->seq_len < 1 || c->dim % c->n_heads || (c->dim / c->n_heads) % 2 || c->n_heads % c->n_kv_heads) {
        tern_error("random model: bad shape dim=%d ffn=%d layers=%d heads=%d kv_heads=%d vocab=%d ctx=%d", c->dim, c->ffn_dim,
                   c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
        return -1;
    }
    return 0;
}

int build_random_model(tern_rt_model *m, const tern_rt_config *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "(random)");
    if (check_config(cfg)) return -1;
    tern_rt_config *c = &m->config;
    *c = *cfg;
    c->head_dim = c->dim / c->n_heads;
    c->kv_dim = c->n_kv_heads * c->head_dim;
    if (!(c->norm_eps > 0.0f)) c->norm_eps = 1e-5f;
    if (!(c->rope_theta > 0.0f)) c->rope_theta = 10000.0f;
    tern_rt_weights *w = &m->weights;
    // one buffer: f16 embedding [vocab, dim] then unit norms
    size_t n_embd = (size_t)c->vocab_size * c->dim, n_norm = (size_t)c->dim * (1 + 3 * (size_t)c->n_layers) + (size_t)c->ffn_dim * c->n_layers;
    size_t embd_bytes = (n_embd * 2 + 63) / 64 * 64;
    uint8_t *buf = tern_alloc_huge(embd_bytes + n_norm * sizeof(float));
    w->owned = buf;
    uint16_t *E = (uint16_t *)buf;
    // every row from its own seeded generator: deterministic for any thread count
    #pragma omp parallel for schedule(static)
    for (long r = 0; r < c->vocab_size; r++) {
        tern_rng rr;
        tern_rng_seed(&rr, seed * 0x9E3779B97F4A7C15ull + (uint64_t)r);
        for (int i = 0; i < c->dim; i++) E[(size_t)r * c->dim + i] = tern_fp32_to_fp16(3.4641f * (tern_rng_uniform(&rr) - 0.5f)); // uniform, std 1
    }
    float *norms = (float *)(buf + embd_bytes);
    for (size_t i = 0; i < n_norm; i++) norms[i] = 1.0f;
    w->token_embd = w->output = E;
    w->embd_type = w->output_type = TERN_GGML_F16;
    w->output_norm = norms;
    norms += c->dim;
    m->fp_bytes = n_embd * 2 + n_norm * sizeof(float);
    w->layers = tern_xcalloc((size_t)c->n_layers, sizeof(tern_rt_layer));
    int8_t *all = tern_xmalloc(layer_weights(c));
    for (int l = 0; l < c->n_layers; l++) {
        tern_rt_layer *L = &w->layers[l];
        L->attn_norm = norms; norms += c->dim;
        L->attn_sub_norm = norms; norms += c->dim;
        L->ffn_norm = norms; norms += c->dim;
        L->ffn_sub_norm = norms; norms += c->ffn_dim;
        int8_t *dst = all;
        for (int j = 0; j < 7; j++) {
            int rows, cols;
            bl_shape(c, j, &rows, &cols);
            L->scale[j] = 0.02f;
            #pragma omp parallel for schedule(static)
            for (int r = 0; r < rows; r++) { // 2 random bits per weight: {-1, 0, 0, 1}
                tern_rng rr;
                tern_rng_seed(&rr, (seed + 1000003ull * (uint64_t)(7 * l + j + 1)) * 0x9E3779B97F4A7C15ull + (uint64_t)r);
                int8_t *row = dst + (size_t)r * cols;
                for (int i = 0; i < cols; i += 32) {
                    uint64_t x = tern_rng_u64(&rr);
                    for (int b = 0; b < 32 && i + b < cols; b++) {
                        int v = (int)((x >> (2 * b)) & 3);
                        row[i + b] = (int8_t)(v == 0 ? -1 : (v == 3 ? 1 : 0));
                    }
                }
            }
            dst += (size_t)rows * cols;
        }
        if (build_layer_mats(m, L, all)) { free(all); free_model(m); return -1; }
    }
    free(all);
    gather_weights(m);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// state

int build_state(tern_rt_state *s, const tern_rt_model *m, int max_batch, int seq_len) {
    memset(s, 0, sizeof *s);
    const tern_rt_config *c = &m->config;
    if (seq_len <= 0 || seq_len > c->seq_len) seq_len = c->seq_len;
    if (max_batch < 1) max_batch = 1;
    s->max_batch = max_batch;
    s->seq_len = seq_len;
    size_t B = (size_t)max_batch, wide = (size_t)(c->ffn_dim > c->dim ? c->ffn_dim : c->dim);
    s->x = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->xb = tern_aligned_alloc(sizeof(float) * B * wide);
    s->xb2 = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->hb = tern_aligned_alloc(sizeof(float) * B * c->ffn_dim);
    s->q = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->k = tern_aligned_alloc(sizeof(float) * B * c->kv_dim);
    s->v = tern_aligned_alloc(sizeof(float) * B * c->kv_dim);
    s->att = tern_aligned_alloc(sizeof(float) * B * c->dim);
    s->xq = tern_aligned_alloc(B * wide);
    size_t accw = (size_t)(c->dim + 2 * c->kv_dim > 2 * c->ffn_dim ? c->dim + 2 * c->kv_dim : 2 * c->ffn_dim);
    s->acc = tern_aligned_alloc(sizeof(int32_t) * B * accw);
    s->sx = tern_aligned_alloc(sizeof(float) * B);
    s->n_threads = omp_get_max_threads();
    s->scores = tern_aligned_alloc(sizeof(float) * (size_t)s->n_threads * seq_len);
    s->erow = tern_aligned_alloc(sizeof(float) * (size_t)s->n_threads * c->dim);
    s->logits = tern_aligned_alloc(sizeof(float) * B * c->vocab_size);
    size_t kv = (size_t)c->n_layers * seq_len * c->kv_dim;
    s->key_cache = tern_aligned_alloc(sizeof(float) * kv);
    s->value_cache = tern_aligned_alloc(sizeof(float) * kv);
    memset(s->key_cache, 0, sizeof(float) * kv);
    memset(s->value_cache, 0, sizeof(float) * kv);
    // a model under 4 MB of ternary weights decodes on one thread: waking a team costs more
    // (buffers for n_threads: any team <= n_threads works)
    const size_t nt = (size_t)s->n_threads;
    s->team = m->ternary_bytes >= ((size_t)4 << 20) ? (s->n_threads < TERN_SPLIT_MAX ? s->n_threads : TERN_SPLIT_MAX) : 1;
    s->xq_pad = (int)((wide + 255) / 256 * 256);
    s->xt = tern_aligned_alloc(sizeof(float) * nt * c->dim);
    s->nrow = tern_aligned_alloc(sizeof(float) * nt * wide);
    s->xqt = tern_aligned_alloc(nt * s->xq_pad);
    memset(s->xqt, 0, nt * s->xq_pad);
    s->qh = tern_aligned_alloc(sizeof(float) * nt * c->head_dim);
    s->splits = tern_aligned_alloc(sizeof(tern_split) * 4 * (size_t)c->n_layers * nt);
    s->rope = tern_aligned_alloc(sizeof(float) * (size_t)seq_len * c->head_dim);
    for (int p = 0; p < seq_len; p++) tern_rope_angles(p, c->head_dim, c->rope_theta, s->rope + (size_t)p * c->head_dim);
    return 0;
}

void free_state(tern_rt_state *s) {
    float *f[] = {s->x, s->xb, s->xb2, s->hb, s->q, s->k, s->v, s->att, s->sx, s->scores, s->erow, s->logits,
                  s->key_cache, s->value_cache, s->rope};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]);
    free(s->xq);
    free(s->acc);
    free(s->xt); free(s->nrow); free(s->xqt); free(s->qh); free(s->splits);
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------------------------------------
// forward

// out[i] = RMSNorm(x[i]; w) for n rows of C (same arithmetic as the training op)
static void rmsnorm_row(float *o, const float *xr, const float *w, int C, float eps) {
    float rs = 1.0f / sqrtf(tern_sumsq_lanes(xr, C) / (float)C + eps);
    for (int c = 0; c < C; c++) o[c] = xr[c] * rs * w[c];
}

static void rmsnorm_rows(float *out, const float *x, const float *w, int n, int C, float eps) {
    #pragma omp parallel for schedule(static) if (n > 1)
    for (int r = 0; r < n; r++) rmsnorm_row(out + (size_t)r * C, x + (size_t)r * C, w, C, eps);
}

static void quantize_rows(const float *x, int n, int C, int8_t *xq, float *sx) {
    #pragma omp parallel for schedule(static) if (n > 1)
    for (int r = 0; r < n; r++) sx[r] = tern_act_quantize_row_i8(x + (size_t)r * C, C, xq + (size_t)r * C);
}

// o [hd] += p * v [hd]
__attribute__((target("avx2,fma"))) static void axpy_f32_avx2(float *o, float p, const float *v, int n) {
    const __m256 pv = _mm256_set1_ps(p);
    int d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(o + d, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + d), _mm256_loadu_ps(o + d)));
    for (; d < n; d++) o[d] += p * v[d];
}

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

// query head h (q [head_dim]) of layer `layer` against cached positions 0..T-1 -> o [head_dim];
// sc [seq_len] scratch
static void attend_head(const tern_rt_config *c, const tern_rt_state *s, int layer, int h, const float *q, int T, float *o, float *sc) {
    const int hd = c->head_dim, kh = h / (c->n_heads / c->n_kv_heads);
    const float scale = 1.0f / sqrtf((float)hd);
    const float *kc = s->key_cache + (size_t)layer * s->seq_len * c->kv_dim;
    const float *vc = s->value_cache + (size_t)layer * s->seq_len * c->kv_dim;
    if (g_avx512 && hd % 16 == 0 && hd <= 128) {
        heads512[hd / 16 - 1](q, kc + kh * hd, vc + kh * hd, (size_t)c->kv_dim, T, scale, sc, o);
        return;
    }
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
        if (g_avx2) axpy_f32_avx2(o, p, v, hd);
        else for (int d = 0; d < hd; d++) o[d] += p * v[d];
    }
}

// causal GQA attention for n tokens at positions pos.., q [n, dim] -> out [n, dim]
static void attention(const tern_rt_config *c, tern_rt_state *s, int layer, int n, int pos) {
    long work = (long)n * c->n_heads * (pos + n) * c->head_dim; // multiply-adds, about
    #pragma omp parallel for schedule(dynamic, 1) collapse(2) if (work > 65536) num_threads(s->n_threads)
    for (int i = 0; i < n; i++)
        for (int h = 0; h < c->n_heads; h++)
            attend_head(c, s, layer, h, s->q + (size_t)i * c->dim + h * c->head_dim, pos + i + 1,
                        s->att + (size_t)i * c->dim + h * c->head_dim, s->scores + (size_t)omp_get_thread_num() * s->seq_len);
}

// logits[r] = xn[r] . E^T for r < n; E [vocab, dim] f32/f16
static void logits_rows(const tern_rt_model *m, tern_rt_state *s, const float *xn, int n, float *out) {
    const tern_rt_config *c = &m->config;
    int V = c->vocab_size, D = c->dim;
    const void *E = m->weights.output;
    int type = m->weights.output_type;
    if (type == TERN_GGML_F16 && g_avx512) {   // one streaming pass over E; 4 rows of E stay in L1 for all n
        const uint16_t *E16 = E;
        #pragma omp parallel for schedule(static) num_threads(s->n_threads)
        for (int v4 = 0; v4 < V / 4; v4++)
            for (int r = 0; r < n; r++) dot4_f16_avx512(E16 + (size_t)4 * v4 * D, (size_t)D, xn + (size_t)r * D, D, out + (size_t)r * V + 4 * v4);
        for (int v = V / 4 * 4; v < V; v++)
            for (int r = 0; r < n; r++) out[(size_t)r * V + v] = dot_f16_avx2(E16 + (size_t)v * D, xn + (size_t)r * D, D);
        return;
    }
    #pragma omp parallel num_threads(s->n_threads)
    {
        float *row = s->erow + (size_t)omp_get_thread_num() * D;
        #pragma omp for schedule(static)
        for (int v = 0; v < V; v++) {
            const float *er;
            if (type == TERN_GGML_F32) er = (const float *)E + (size_t)v * D;
            else if (n == 1 && g_avx2) { // decode: one pass over the f16 row
                out[v] = dot_f16_avx2((const uint16_t *)E + (size_t)v * D, xn, D);
                continue;
            } else { f16_to_f32((const uint16_t *)E + (size_t)v * D, row, D); er = row; }
            for (int r = 0; r < n; r++) out[(size_t)r * V + v] = dot_f32(xn + (size_t)r * D, er, D);
        }
    }
}

// SwiGLU of len <= 1024 values of one token from the int32 sums of gate (ag) and up (au) with
// their factors s_w / s_x (sigmoid from vmath.h, as in training): h = g * sigmoid(g) * u
static void swiglu_chunk(const int32_t *ag, const int32_t *au, float fg, float fu, int len, float *h) {
    float sg[1024];
    for (int j = 0; j < len; j++) h[j] = (float)ag[j] * fg;   // the gate values, first
    tern_vsigmoid(h, sg, len);
    for (int j = 0; j < len; j++) h[j] = h[j] * sg[j] * ((float)au[j] * fu);
}

// RMSNorm then int8 quantization of one row of C (the batched path's rmsnorm_rows + quantize_rows,
// same arithmetic) into xq [C], zeroing xq up to C rounded to 256; returns s_x
static float norm_quant(const float *x, const float *w, int C, float eps, float *nrow, int8_t *xq) {
    rmsnorm_row(nrow, x, w, C, eps);
    const float sx = tern_act_quantize_row_i8(nrow, C, xq);
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
    const int D = c->dim, F = c->ffn_dim, KV = c->kv_dim, hd = c->head_dim;
    const int max_team = s->n_threads < TERN_SPLIT_MAX ? s->n_threads : TERN_SPLIT_MAX;
    const int nt = s->team < 1 ? 1 : s->team > max_team ? max_team : s->team;
    const size_t wide = (size_t)(F > D ? F : D);
    for (int l = 0; l < c->n_layers; l++) {
        const tern_rt_layer *L = &w->layers[l];
        const tern_tmat *mats[4] = {&L->wqkv, &L->wo, &L->wgu, &L->w_down};
        for (int j = 0; j < 4; j++) tern_tmat_split_init(s->splits + (size_t)(4 * l + j) * nt, nt, mats[j]);
    }
    const float *cs = s->rope + (size_t)pos * hd;
    #pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num();
        float *x = s->xt + (size_t)me * D, *nrow = s->nrow + (size_t)me * wide, *qh = s->qh + (size_t)me * hd;
        int8_t *xq = s->xqt + (size_t)me * s->xq_pad;
        float *sc = s->scores + (size_t)me * s->seq_len;
        memcpy(x, s->x, sizeof(float) * D);
        for (int l = 0; l < c->n_layers; l++) {
            const tern_rt_layer *L = &w->layers[l];
            tern_split *sp = s->splits + (size_t)4 * l * nt;
            // attention block: q, k, v
            float sx = norm_quant(x, L->attn_norm, D, c->norm_eps, nrow, xq);
            tern_tmat_mul1_team(&L->wqkv, sp, nt, xq, sx, NULL, s->acc, TERN_KERNEL_AUTO);
            #pragma omp barrier
            const float fq = L->scale[0] / sx, fk = L->scale[1] / sx, fv = L->scale[2] / sx;
            float *kc = s->key_cache + ((size_t)l * s->seq_len + pos) * KV, *vc = s->value_cache + ((size_t)l * s->seq_len + pos) * KV;
            #pragma omp for schedule(static)
            for (int h = 0; h < c->n_kv_heads; h++) {
                for (int r = h * hd; r < (h + 1) * hd; r++) kc[r] = (float)s->acc[D + r] * fk;
                tern_rope_rotate(kc + h * hd, hd, cs, 1.0f);
                for (int r = h * hd; r < (h + 1) * hd; r++) vc[r] = (float)s->acc[D + KV + r] * fv;
            }
            #pragma omp for schedule(dynamic, 1)
            for (int h = 0; h < c->n_heads; h++) {
                for (int r = 0; r < hd; r++) qh[r] = (float)s->acc[h * hd + r] * fq;
                tern_rope_rotate(qh, hd, cs, 1.0f);
                attend_head(c, s, l, h, qh, pos + 1, s->att + h * hd, sc);
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
            for (int r0 = 0; r0 < F; r0 += 1024) {   // SwiGLU in the batched path's chunks
                swiglu_chunk(s->acc + r0, s->acc + F + r0, fg, fu, F - r0 < 1024 ? F - r0 : 1024, s->hb + r0);
            }
            sx = norm_quant(s->hb, L->ffn_sub_norm, F, c->norm_eps, nrow, xq);
            tern_tmat_mul1_team(&L->w_down, sp + 3 * nt, nt, xq, sx, s->xb2, NULL, TERN_KERNEL_AUTO);
            #pragma omp barrier
            for (int i = 0; i < D; i++) x[i] += s->xb2[i];
        }
        if (me == 0) memcpy(s->x, x, sizeof(float) * D);
    }
}

float *forward(const tern_rt_model *m, tern_rt_state *s, const int *tokens, int n, int pos, int all_logits) {
    const tern_rt_config *c = &m->config;
    const tern_rt_weights *w = &m->weights;
    int D = c->dim, F = c->ffn_dim, KV = c->kv_dim, hd = c->head_dim;
    update_fp_kind();
    if (n < 1 || n > s->max_batch || pos < 0 || pos + n > s->seq_len)
        tern_fatal("forward: %d tokens at position %d do not fit (batch %d, context %d)", n, pos, s->max_batch, s->seq_len);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) tern_fatal("forward: token id %d out of range", tokens[i]);
        fp_row(w->token_embd, w->embd_type, tokens[i], D, s->x + (size_t)i * D);
    }
    if (n == 1) decode_one(m, s, pos);
    for (int l = 0; l < c->n_layers && n > 1; l++) {
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
        float *kc = s->key_cache + (size_t)l * s->seq_len * KV, *vc = s->value_cache + (size_t)l * s->seq_len * KV;
        for (int i = 0; i < n; i++) {
            const float *cs = s->rope + (size_t)(pos + i) * hd;
            for (int h = 0; h < c->n_heads; h++) tern_rope_rotate(s->q + (size_t)i * D + h * hd, hd, cs, 1.0f);
            for (int h = 0; h < c->n_kv_heads; h++) tern_rope_rotate(s->k + (size_t)i * KV + h * hd, hd, cs, 1.0f);
            memcpy(kc + (size_t)(pos + i) * KV, s->k + (size_t)i * KV, sizeof(float) * KV);
            memcpy(vc + (size_t)(pos + i) * KV, s->v + (size_t)i * KV, sizeof(float) * KV);
        }
        attention(c, s, l, n, pos);
        rmsnorm_rows(s->xb, s->att, L->attn_sub_norm, n, D, c->norm_eps);
        quantize_rows(s->xb, n, D, s->xq, s->sx);
        tern_tmat_mul(&L->wo, s->xq, s->sx, n, s->xb2, TERN_KERNEL_AUTO);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb2[i];
        // feed-forward block
        rmsnorm_rows(s->xb, s->x, L->ffn_norm, n, D, c->norm_eps);
        quantize_rows(s->xb, n, D, s->xq, s->sx);
        tern_tmat_mul_i32(&L->wgu, s->xq, n, s->acc, TERN_KERNEL_AUTO); // [n, 2F]: gate, up
        // SwiGLU in chunks of up to 1024 values of one token's row (sigmoid from vmath.h, as in
        // training); the chunks of all tokens are split over the threads, even for one token
        const int nck = (F + 1023) / 1024;
        #pragma omp parallel for schedule(static) if ((long)n * F >= 4096)
        for (int ck = 0; ck < n * nck; ck++) {
            const int i = ck / nck, r0 = (ck % nck) * 1024, len = F - r0 < 1024 ? F - r0 : 1024;
            const int32_t *ag = s->acc + (size_t)i * 2 * F + r0;
            swiglu_chunk(ag, ag + F, L->scale[4] / s->sx[i], L->scale[5] / s->sx[i], len, s->hb + (size_t)i * F + r0);
        }
        rmsnorm_rows(s->xb, s->hb, L->ffn_sub_norm, n, F, c->norm_eps);
        quantize_rows(s->xb, n, F, s->xq, s->sx);
        tern_tmat_mul(&L->w_down, s->xq, s->sx, n, s->xb2, TERN_KERNEL_AUTO);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb2[i];
    }
    int first = all_logits ? 0 : n - 1, rows = all_logits ? n : 1;
    rmsnorm_rows(s->xb, s->x + (size_t)first * D, w->output_norm, rows, D, c->norm_eps);
    logits_rows(m, s, s->xb, rows, s->logits);
    return s->logits;
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

// serialize the GGUF vocab as a tern tokenizer file (tokenizer.h, version 1) and parse that
int rt_build_tokenizer(const tern_rt_model *m, tern_tokenizer *t) {
    memset(t, 0, sizeof *t);
    if (rt_require_vocab(m)) return -1;
    const tern_rt_vocab *v = &m->vocab;
    size_t n = 24;
    for (int i = 0; i < v->vocab_size; i++) {
        size_t len = strlen(v->pieces[i]);
        if (len < 1 || len > TERN_TOK_MAX_PIECE) {
            tern_error("%s: tokenizer piece %d has length %zu (must be 1..%d)", m->path, i, len, TERN_TOK_MAX_PIECE);
            return -1;
        }
        if (v->types[i] < 0 || v->types[i] > 255) { tern_error("%s: tokenizer piece %d has type %d", m->path, i, v->types[i]); return -1; }
        n += 7 + len;
    }
    uint8_t *buf = tern_xmalloc(n), *p = buf;
    uint32_t hdr[4] = {1, (uint32_t)v->vocab_size, v->add_space_prefix ? 1u : 0u, 0};
    memcpy(p, "TERNTKZ", 8);
    memcpy(p + 8, hdr, sizeof hdr);
    p += 24;
    for (int i = 0; i < v->vocab_size; i++) {
        uint16_t len = (uint16_t)strlen(v->pieces[i]);
        *p++ = (uint8_t)v->types[i];
        memcpy(p, &v->scores[i], 4);
        memcpy(p + 4, &len, 2);
        memcpy(p + 6, v->pieces[i], len);
        p += 6 + len;
    }
    char what[600];
    snprintf(what, sizeof what, "%s (tokenizer)", m->path);
    int rc = tern_tokenizer_from_bytes(t, buf, n, what);
    free(buf);
    if (rc) return -1;
    if (t->bos_id != v->bos_id || t->eos_id != v->eos_id || t->unk_id != v->unk_id) {
        tern_error("%s: tokenizer bos/eos/unk ids %d/%d/%d differ from tern's layout (1/2/0)", m->path, v->bos_id, v->eos_id, v->unk_id);
        tern_tokenizer_free(t);
        return -1;
    }
    return 0;
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
