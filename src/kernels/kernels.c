// kernels.c — int8 x ternary matrix kernels: kind selection, matrix construction, the plain C
// reference and the driver that runs a kind's tile kernels. libc/libm/OpenMP only. Layout and
// contract: see kernels.h; the vector tile kernels live in kernels_x86.c (AVX2, AVX-VNNI, AVX-512
// VNNI) and kernels_arm.c (NEON, dotprod, i8mm), behind tiles.h.
//
// All kinds compute acc = sum_k x_k * c_k (c = w + 1 in {0,1,2}) with exact integer arithmetic and
// then acc - sum_k x_k = sum_k x_k * w_k, so every kind gives the same int32 sums.
// Work split: OpenMP over blocks of ROW_BLOCK rows (decode: one sequential weight stream per
// thread, with stealing at the end; prefill: dynamic; threads write disjoint out rows); inside a
// block, tiles of up to TILE_R rows x (the kind's) tt tokens are held in registers across all columns.
#include "kernels/kernels.h"
#include "kernels/tiles.h"
#include "formats/tqpack.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#define ROW_BLOCK 64
#define MAX_COLS (1 << 22)   // keeps |sum x*c| (and the decode kernels' scaled lanes) < 2^31
#ifndef PAR_MIN_BYTES
#define PAR_MIN_BYTES (256 * 1024)   // N * packed weight bytes below which one thread runs the product
#endif

// ------------------------------------------------------------------ kind selection
#if !defined(__x86_64__) && !defined(__i386__) && !defined(__aarch64__)
// an architecture without vector kernels here: plain C only
int tern_cpu_has(tern_kernel_kind k) { (void)k; return 0; }
const tern_tile_set *tern_tiles_for(tern_kernel_kind k) { (void)k; return NULL; }
#endif

static const char *kind_names[TERN_KERNEL_NKINDS] = {"auto", "plain", "avx2", "avxvnni", "avx512", "neon", "dotprod", "i8mm"};

const char *tern_kernel_name(tern_kernel_kind k) {
    return ((unsigned)k < TERN_KERNEL_NKINDS) ? kind_names[k] : "?";
}

int tern_kernel_available(tern_kernel_kind k) {
    if (k == TERN_KERNEL_AUTO || k == TERN_KERNEL_PLAIN) return 1;
    if ((unsigned)k >= TERN_KERNEL_NKINDS) return 0;
    return tern_cpu_has(k) && tern_tiles_for(k) != NULL;
}

int tern_kernel_parse(const char *s, tern_kernel_kind *k) {
    if (!s) return -1;
    for (int i = 0; i < TERN_KERNEL_NKINDS; i++)
        if (strcmp(s, kind_names[i]) == 0) { *k = (tern_kernel_kind)i; return 0; }
    if (strcmp(s, "avx512vnni") == 0) { *k = TERN_KERNEL_AVX512VNNI; return 0; }
    return -1;
}

static int g_forced = TERN_KERNEL_AUTO;
static int g_warned = 0;

int tern_kernel_force(tern_kernel_kind k) {
    if ((unsigned)k >= TERN_KERNEL_NKINDS || !tern_kernel_available(k)) {
        tern_error("kernel %s is not available on this CPU", tern_kernel_name(k));
        return -1;
    }
    __atomic_store_n(&g_forced, (int)k, __ATOMIC_SEQ_CST);
    return 0;
}

// the fastest kind first, per architecture (a CPU has kinds of one architecture only)
static const tern_kernel_kind preference[] = {TERN_KERNEL_AVX512VNNI, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX2,
                                              TERN_KERNEL_I8MM, TERN_KERNEL_DOTPROD, TERN_KERNEL_NEON};

static tern_kernel_kind cpu_best(void) {
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
        if (tern_kernel_available(preference[i])) return preference[i];
    return TERN_KERNEL_PLAIN;
}

// Cheap enough to run per call (a getenv and cached cpuid bits), so TERN_KERNEL changes made with
// setenv() take effect; the warning for a bad value is printed once per process.
tern_kernel_kind tern_kernel_best(void) {
    int f = __atomic_load_n(&g_forced, __ATOMIC_SEQ_CST);
    if (f != TERN_KERNEL_AUTO) return (tern_kernel_kind)f;
    tern_kernel_kind k = cpu_best();
    const char *env = getenv("TERN_KERNEL");
    if (env && *env) {
        tern_kernel_kind e;
        int bad = tern_kernel_parse(env, &e) != 0, unavail = !bad && !tern_kernel_available(e);
        if ((bad || unavail) && !__atomic_exchange_n(&g_warned, 1, __ATOMIC_SEQ_CST))
            fprintf(stderr, "tern: warning: TERN_KERNEL=%s is %s; using %s\n", env,
                    bad ? "not one of " TERN_KERNEL_NAMES : "not available on this CPU", kind_names[k]);
        if (!bad && !unavail && e != TERN_KERNEL_AUTO) k = e;
    }
    return k;
}

static tern_kernel_kind resolve(tern_kernel_kind k) {
    if (k == TERN_KERNEL_AUTO || (unsigned)k >= TERN_KERNEL_NKINDS || !tern_kernel_available(k)) return tern_kernel_best();
    return k;
}

// ------------------------------------------------------------------ matrix construction
static int pad256(int cols) { return (cols + 255) / 256 * 256; }

// byte address of (row r, 256-column block b, byte m) in the tiled layout (see kernels.h)
static inline size_t waddr(const tern_tmat *m, int r, int b, int mm) {
    return (size_t)(r / TILE_R) * TILE_R * m->row_bytes + 256 * (size_t)b + 64 * (size_t)(r % TILE_R) + (size_t)mm;
}

// pack row r of codes: w[cols] in {-1,0,1} (padding keeps code 1, i.e. w = 0, from the 0x55 fill)
static void pack_row(tern_tmat *m, int r, const int8_t *w) {
    for (int k = 0; k < m->cols; k++) {
        int b = k / 256, j = k % 256, l = j / 64, mm = j % 64;
        uint8_t *p = m->w + waddr(m, r, b, mm);
        *p = (uint8_t)((*p & ~(3u << (2 * l))) | ((unsigned)(w[k] + 1) << (2 * l)));
    }
}

// shape fields of a [rows, cols] matrix in the tiled layout (w left to the caller)
static void set_shape(tern_tmat *m, int rows, int cols, float scale) {
    m->rows = rows;
    m->cols = cols;
    m->scale = scale;
    m->cols_pad = pad256(cols);
    m->rows_pad = (rows + TILE_R - 1) / TILE_R * TILE_R;
    m->row_bytes = (size_t)m->cols_pad / 4;
}

static int alloc_tmat(tern_tmat *m, int rows, int cols, float scale, const char *what) {
    memset(m, 0, sizeof *m);
    if (rows < 1 || cols < 1 || cols > MAX_COLS) {
        tern_error("%s: bad matrix shape [%d, %d] (rows >= 1, 1 <= cols <= %d)", what, rows, cols, MAX_COLS);
        return -1;
    }
    set_shape(m, rows, cols, scale);
    m->w = tern_aligned_alloc((size_t)m->rows_pad * m->row_bytes);
    m->owns_w = 1;
    memset(m->w, 0x55, (size_t)m->rows_pad * m->row_bytes);
    return 0;
}

int tern_tmat_from_i8(tern_tmat *m, const int8_t *wq, int rows, int cols, float scale) {
    if (alloc_tmat(m, rows, cols, scale, "tern_tmat_from_i8")) return -1;
    for (long i = 0; i < (long)rows * cols; i++)
        if (wq[i] < -1 || wq[i] > 1) {
            tern_error("tern_tmat_from_i8: weight [%ld, %ld] is %d, not in {-1,0,1}", i / cols, i % cols, wq[i]);
            tern_tmat_free(m);
            return -1;
        }
    for (int r = 0; r < rows; r++) pack_row(m, r, wq + (size_t)r * cols);
    return 0;
}

static int from_tq(tern_tmat *m, const void *src, int rows, int cols, int is_tq2) {
    const char *what = is_tq2 ? "tern_tmat_from_tq2" : "tern_tmat_from_tq1";
    if (cols % 256 != 0) {
        memset(m, 0, sizeof *m);
        tern_error("%s: cols %d is not a multiple of 256 (required by the %s block format)", what, cols, is_tq2 ? "TQ2_0" : "TQ1_0");
        return -1;
    }
    if (alloc_tmat(m, rows, cols, 1.0f, what)) return -1;
    size_t row_src = (size_t)(cols / 256) * (is_tq2 ? TERN_TQ2_BLOCK_BYTES : TERN_TQ1_BLOCK_BYTES);
    int8_t *w = tern_xmalloc((size_t)cols);
    float *d = tern_xmalloc((size_t)(cols / 256) * sizeof(float));
    int have_scale = 0;
    float first_d = 0;
    for (int r = 0; r < rows; r++) {
        const uint8_t *p = (const uint8_t *)src + (size_t)r * row_src;
        int rc = is_tq2 ? tern_tq2_unpack(p, cols, w, d) : tern_tq1_unpack(p, cols, w, d);
        if (rc) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", tern_last_error());
            tern_error("%s: row %d: %s", what, r, msg);
            goto fail;
        }
        if (r == 0) first_d = d[0];
        for (int b = 0; b < cols / 256; b++) {
            int nz = 0;
            for (int j = 0; j < 256; j++) nz |= w[256 * b + j];
            if (!nz) continue;
            if (!have_scale) { m->scale = d[b]; have_scale = 1; }
            else if (memcmp(&d[b], &m->scale, sizeof(float)) != 0) {
                tern_error("%s: row %d block %d has scale d = %g, others %g (not a per-tensor ternary matrix)", what, r, b,
                           (double)d[b], (double)m->scale);
                goto fail;
            }
        }
        pack_row(m, r, w);
    }
    if (!have_scale) m->scale = first_d;
    free(w);
    free(d);
    return 0;
fail:
    free(w);
    free(d);
    tern_tmat_free(m);
    return -1;
}

int tern_tmat_from_tq2(tern_tmat *m, const void *tq2, int rows, int cols) { return from_tq(m, tq2, rows, cols, 1); }
int tern_tmat_from_tq1(tern_tmat *m, const void *tq1, int rows, int cols) { return from_tq(m, tq1, rows, cols, 0); }

int tern_tmat_from_gguf(tern_tmat *m, const tern_gguf_tensor *t, const char *path) {
    memset(m, 0, sizeof *m);
    if (t->type != TERN_GGML_TQ2_0 && t->type != TERN_GGML_TQ1_0) {
        tern_error("%s: tensor %s: type %s is not ternary (expected tq2_0 or tq1_0)", path, t->name, tern_ggml_type_name(t->type));
        return -1;
    }
    if (t->n_dims < 2 || t->ne[2] != 1 || t->ne[3] != 1 || t->ne[0] > MAX_COLS || t->ne[1] > (1 << 30)) {
        tern_error("%s: tensor %s: shape {%lld, %lld, %lld, %lld} is not a matrix tern can use", path, t->name, (long long)t->ne[0],
                   (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
        return -1;
    }
    const size_t need = (size_t)t->ne[1] * tern_ggml_row_bytes(t->type, t->ne[0]);
    if (t->nbytes < need) {
        tern_error("%s: tensor %s: %zu data bytes, shape needs %zu", path, t->name, t->nbytes, need);
        return -1;
    }
    int rc = t->type == TERN_GGML_TQ2_0 ? tern_tmat_from_tq2(m, t->data, (int)t->ne[1], (int)t->ne[0])
                                        : tern_tmat_from_tq1(m, t->data, (int)t->ne[1], (int)t->ne[0]);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("%s: tensor %s: %s", path, t->name, msg);
    }
    return rc;
}

size_t tern_tmat_bytes(int rows, int cols) {
    return (size_t)((rows + TILE_R - 1) / TILE_R * TILE_R) * (size_t)(pad256(cols) / 4);
}

// codes of 4 columns 64 apart, one byte (a code is w + 1; the floats are exactly -1, 0 or 1)
static inline uint8_t code4(const float *s) {
    return (uint8_t)((int)(s[0] + 1.0f) | (int)(s[64] + 1.0f) << 2 | (int)(s[128] + 1.0f) << 4 | (int)(s[192] + 1.0f) << 6);
}

void tern_tmat_pack_f32(tern_tmat *m, void *buf, const float *wq, int rows, int cols, float scale) {
    memset(m, 0, sizeof *m);
    set_shape(m, rows, cols, scale);
    m->w = buf;
    const int nblk = m->cols_pad / 256;
#pragma omp parallel for schedule(static) if ((long)rows * cols >= (1L << 18))
    for (int r = 0; r < m->rows_pad; r++) {
        const float *wr = wq + (size_t)r * cols;
        for (int b = 0; b < nblk; b++) {
            uint8_t *dst = m->w + waddr(m, r, b, 0);
            if (r >= rows) memset(dst, 0x55, 64);   // pad rows: w = 0
            else if (256 * (b + 1) <= cols) {
                for (int mm = 0; mm < 64; mm++) dst[mm] = code4(wr + 256 * b + mm);
            } else {                                   // last, partial block: pad columns w = 0
                for (int mm = 0; mm < 64; mm++) {
                    unsigned byte = 0;
                    for (int l = 0; l < 4; l++) {
                        const int k = 256 * b + 64 * l + mm;
                        byte |= (unsigned)(k < cols ? (int)(wr[k] + 1.0f) : 1) << (2 * l);
                    }
                    dst[mm] = (uint8_t)byte;
                }
            }
        }
    }
}

void tern_tmat_init(tern_tmat *m, void *buf, int rows, int cols, float scale) {
    memset(m, 0, sizeof *m);
    set_shape(m, rows, cols, scale);
    m->w = buf;
    for (int r = rows; r < m->rows_pad; r++)   // pad rows: w = 0
        for (int b = 0; b < m->cols_pad / 256; b++) memset(m->w + waddr(m, r, b, 0), 0x55, 64);
}

void tern_tmat_set_row_codes(tern_tmat *m, int r, const uint8_t *c) {
    const int full = m->cols / 256;
    for (int b = 0; b < full; b++) {   // byte mm = the codes of columns mm, 64+mm, 128+mm, 192+mm
        const uint8_t *cb = c + 256 * b;
        uint8_t *dst = m->w + waddr(m, r, b, 0);
        for (int mm = 0; mm < 64; mm++) dst[mm] = (uint8_t)(cb[mm] | cb[64 + mm] << 2 | cb[128 + mm] << 4 | cb[192 + mm] << 6);
    }
    if (full < m->cols_pad / 256) {    // the partial last block: pad columns code 1 (w = 0)
        uint8_t *dst = m->w + waddr(m, r, full, 0);
        for (int mm = 0; mm < 64; mm++) {
            unsigned byte = 0;
            for (int l = 0; l < 4; l++) {
                const int k = 256 * full + 64 * l + mm;
                byte |= (unsigned)(k < m->cols ? c[k] : 1) << (2 * l);
            }
            dst[mm] = (uint8_t)byte;
        }
    }
}

uint8_t *tern_tmat_block(const tern_tmat *m, int r, int b) { return m->w + waddr(m, r, b, 0); }

void tern_tmat_free(tern_tmat *m) {
    if (!m) return;
    if (m->owns_w) free(m->w);
    memset(m, 0, sizeof *m);
}

uint8_t *tern_tmat_gather(tern_tmat *const *mats, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (tern_tmat_weight_bytes(mats[i]) + 63) / 64 * 64;
    uint8_t *buf = tern_alloc_huge(total ? total : 64), *p = buf;
    for (int i = 0; i < n; i++) {
        tern_tmat *m = mats[i];
        const size_t nb = tern_tmat_weight_bytes(m);
        memcpy(p, m->w, nb);   // first touch: faults the huge pages in
        if (m->owns_w) free(m->w);
        m->w = p;
        m->owns_w = 0;
        p += (nb + 63) / 64 * 64;
    }
    return buf;
}

size_t tern_tmat_weight_bytes(const tern_tmat *m) { return (size_t)m->rows_pad * m->row_bytes; }

void tern_tmat_get_row_i8(const tern_tmat *m, int r, int8_t *out) {
    for (int k = 0; k < m->cols; k++) {
        int b = k / 256, j = k % 256, l = j / 64, mm = j % 64;
        out[k] = (int8_t)(((m->w[waddr(m, r, b, mm)] >> (2 * l)) & 3) - 1);
    }
}

// ------------------------------------------------------------------ plain C tile (see tiles.h)
static void tile_plain(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *acc, int R, int T) {
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            const uint8_t *wr = w + 64 * (size_t)r;
            const int8_t *xt = x + (size_t)t * xs;
            int32_t s = 0;
            for (int b = 0; b < nblk; b++)
                for (int l = 0; l < 4; l++)
                    for (int mm = 0; mm < 64; mm++)
                        s += (int32_t)xt[256 * b + 64 * l + mm] * ((wr[256 * (size_t)b + mm] >> (2 * l)) & 3);
            acc[t * TILE_R + r] = s;
        }
}

void tern_x_pairs(int8_t *dst, const int8_t *src, int N, int cp) {
    for (int p = 0; p < (N + 1) / 2; p++) {
        int8_t *d = dst + (size_t)2 * p * cp;
        for (int u = 0; u < 2; u++) {
            const int t = 2 * p + u;
            for (int g = 0; g < cp / 8; g++) {
                if (t < N) memcpy(d + 16 * (size_t)g + 8 * u, src + (size_t)t * cp + 8 * (size_t)g, 8);
                else memset(d + 16 * (size_t)g + 8 * u, 0, 8);
            }
        }
    }
}

// ------------------------------------------------------------------ driver
// One tile call: rows r0.. (< r_end, at most TILE_R) x tokens t0.. (at most TT), and its outputs.
static inline void run_tile(const tern_tmat *m, const int8_t *x, int N, const float *sx, float *outf, int32_t *outi,
                            const tern_tile_set *ts, int pairs, const int32_t *sumx, int TT, int r0, int r_end, int t0) {
    const int cp = m->cols_pad, rows = m->rows, nblk = cp / 256;
    const int R = r_end - r0 < TILE_R ? r_end - r0 : TILE_R, T = N - t0 < TT ? N - t0 : TT;
    const uint8_t *wr = m->w + (size_t)r0 * m->row_bytes;   // r0 % TILE_R == 0: a tile start
    const int8_t *xt = x + (size_t)t0 * cp;                 // TT is even when pairs: t0 starts a pair
    int32_t acc[TILE_R * ACC_T];
    if (!ts) tile_plain(wr, xt, (size_t)cp, nblk, acc, R, T);
    else if (N == 1 && !pairs) ts->dec[R - 1](wr, xt, (size_t)cp, nblk, acc);
    else ts->tiles[R - 1][T - 1](wr, xt, (size_t)cp, nblk, acc);
    for (int t = 0; t < T; t++) {
        const int n = t0 + t;
        const int32_t *a = acc + t * TILE_R;
        if (outf) {
            const float f = m->scale / sx[n];
            float *o = outf + (size_t)n * rows + r0;
            for (int r = 0; r < R; r++) o[r] = (float)(a[r] - sumx[n]) * f;
        } else {
            for (int r = 0; r < R; r++) outi[(size_t)n * rows + r0 + r] = a[r] - sumx[n];
        }
    }
}

// Rows r0b.. of one block of ROW_BLOCK rows (rb) x tokens t_lo..t_hi-1 (t_lo a multiple of TT),
// token-major: a group of TT tokens at a time through all the block's 4-row tiles. The block's
// weights stay in the core's caches, and each token's outputs are written as one contiguous run
// of the block's rows. Not inlined: inlined into run's OpenMP-outlined loop, its epilogue read
// the captured variables through the shared-data pointer after every store (the products ran
// ~30% slower).
__attribute__((noinline)) static void run_block_tokens(const tern_tmat *m, const int8_t *x, int N, const float *sx, float *outf, int32_t *outi,
                             const tern_tile_set *ts, int pairs, const int32_t *sumx, int TT, int rb, int t_lo, int t_hi) {
    const int rows = m->rows, r0b = rb * ROW_BLOCK, r_end = rows < r0b + ROW_BLOCK ? rows : r0b + ROW_BLOCK;
    for (int t0 = t_lo; t0 < t_hi; t0 += TT)
        for (int r0 = r0b; r0 < r_end; r0 += TILE_R) run_tile(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, r0, r_end, t0);
}

// One block of ROW_BLOCK rows, all N tokens. ts: the kind's tiles (NULL: plain C); pairs: x is in
// the token-pair layout (tiles.h), else N rows of cp bytes. Few tokens (decode, a few streams;
// memory-bound): a 4-row tile at a time through all token groups, each weight byte read once.
// Many tokens (prefill, training; compute-bound): token-major (run_block_tokens), which writes
// the outputs a run per token instead of 16 bytes per cache-line visit.
#ifndef TOKEN_MAJOR_MIN
#define TOKEN_MAJOR_MIN 32
#endif
#ifndef TOKEN_CHUNK
#define TOKEN_CHUNK 32   // token groups per work item of a many-token product (run)
#endif
#ifndef CHUNK_MAX_WEIGHT_BYTES
#define CHUNK_MAX_WEIGHT_BYTES (512 * 1024)   // larger matrices: one work item per row block, all tokens
#endif
static void run_block(const tern_tmat *m, const int8_t *x, int N, const float *sx, float *outf, int32_t *outi,
                      const tern_tile_set *ts, int pairs, const int32_t *sumx, int TT, int rb) {
    if (N >= TOKEN_MAJOR_MIN) {
        run_block_tokens(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, rb, 0, N);
        return;
    }
    const int rows = m->rows, r0b = rb * ROW_BLOCK, r_end = rows < r0b + ROW_BLOCK ? rows : r0b + ROW_BLOCK;
    for (int r0 = r0b; r0 < r_end; r0 += TILE_R)
        for (int t0 = 0; t0 < N; t0 += TT) run_tile(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, r0, r_end, t0);
}

// Decode's work split. A matvec streams its weights once, so each thread should read one
// contiguous range front to back (what the hardware prefetchers and the kernel's prefetch expect);
// but on a shared host one core is often slowed for a while, and a static split then leaves the
// other waiting at the join (measured: ~20% of decode's thread time). So each thread owns a
// contiguous range of row blocks, which it takes from the front; a thread whose range is done takes
// blocks from the back of the others' ranges. Which thread computes a block never changes its
// result. rg[t].fb = front << 32 | back, updated by compare-and-swap.
#define MAX_SPLIT TERN_SPLIT_MAX
typedef tern_split split_range;

static void split_init(split_range *rg, int nt, int nrb) {
    for (int t = 0; t < nt; t++) rg[t].fb = (uint64_t)nrb * t / nt << 32 | (uint64_t)nrb * (t + 1) / nt;
}

static int split_next(split_range *rg, int n, int me) {
    for (int v = 0; v < n; v++) {
        split_range *r = &rg[(me + v) % n];
        uint64_t cur = __atomic_load_n(&r->fb, __ATOMIC_RELAXED);
        for (;;) {
            const uint32_t f = (uint32_t)(cur >> 32), b = (uint32_t)cur;
            if (f >= b) break;
            const uint64_t nxt = v == 0 ? (uint64_t)(f + 1) << 32 | b : (uint64_t)f << 32 | (b - 1);
            if (__atomic_compare_exchange_n(&r->fb, &cur, nxt, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                return v == 0 ? (int)f : (int)b - 1;
        }
    }
    return -1;
}

static int32_t row_sum(const int8_t *x, int n) {
    int32_t s = 0;
    for (int j = 0; j < n; j++) s += x[j];
    return s;
}

static void run(const tern_tmat *m, const int8_t *xq, size_t ldx, int N, const float *sx, float *outf, int32_t *outi,
                tern_kernel_kind k) {
    if (N <= 0) return;
    k = resolve(k);
    const int cp = m->cols_pad, rows = m->rows;
    // activations with row stride cols_pad, zero-padded (copy only when the caller's rows are
    // cols long and cols is not a multiple of 256)
    int8_t *xbuf = NULL;
    const int8_t *x = xq;
    if (ldx != (size_t)cp) {
        xbuf = tern_aligned_alloc((size_t)N * cp);
        memset(xbuf, 0, (size_t)N * cp);
        for (int n = 0; n < N; n++) memcpy(xbuf + (size_t)n * cp, xq + (size_t)n * ldx, (size_t)m->cols);
        x = xbuf;
    }
    int32_t sxs_stack[64];
    int32_t *sumx = N <= 64 ? sxs_stack : tern_xmalloc((size_t)N * sizeof(int32_t));
#pragma omp parallel for schedule(static) if ((long)N * cp >= (1L << 18))
    for (int n = 0; n < N; n++) sumx[n] = row_sum(x + (size_t)n * cp, cp);
    const tern_tile_set *ts = k == TERN_KERNEL_PLAIN ? NULL : tern_tiles_for(k);
    const int TT = ts ? ts->tt : 4;
    // kinds that take token pairs (i8mm) get the activations re-laid once per call
    const int pairs = ts && ts->x_pairs && N >= 2;
    int8_t *xpair = NULL;
    if (pairs) {
        xpair = tern_aligned_alloc((size_t)(N + 1) / 2 * 2 * cp);
        tern_x_pairs(xpair, x, N, cp);
        x = xpair;
    }
    const int nrb = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
    // decode (N <= 2, memory-bound): contiguous ranges with stealing from the back (see
    // run_decode_split); prefill (compute-bound): dynamic, for load balance. A small product (e.g.
    // a 256-wide model's decode step) runs on the calling thread: waking the team costs more than
    // it saves.
    const int par = (double)N * (double)tern_tmat_weight_bytes(m) >= PAR_MIN_BYTES;
    if (N <= 2 && par && omp_get_max_threads() > 1) {
        // the ranges are set before the team starts (no barrier inside); were the team smaller
        // than asked for, the ranges of missing threads are simply all stolen
        const int nt = omp_get_max_threads() < MAX_SPLIT ? omp_get_max_threads() : MAX_SPLIT;
        split_range rg[MAX_SPLIT];
        split_init(rg, nt, nrb);
#pragma omp parallel num_threads(nt)
        for (int rb; (rb = split_next(rg, nt, omp_get_thread_num())) >= 0;) run_block(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, rb);
    } else if (N <= 2) {
        for (int rb = 0; rb < nrb; rb++) run_block(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, rb);
    } else {
        // many tokens and a small matrix (training's shapes): work items of (a chunk of TOKEN_CHUNK
        // groups of TT tokens) x (a row block), chunk by chunk, so a chunk's activations stay in
        // the core's L2 while its row blocks run (the matrix is read once per chunk: for large
        // ones, 2B4T's, that cost more than it saved)
        const int chunked = N >= TOKEN_MAJOR_MIN && tern_tmat_weight_bytes(m) <= CHUNK_MAX_WEIGHT_BYTES;
        const int tc = chunked ? TOKEN_CHUNK * TT : N, ntc = (N + tc - 1) / tc;
#pragma omp parallel for schedule(dynamic, 1) if (par)
        for (int i = 0; i < ntc * nrb; i++) {
            const int c = i / nrb, rb = i % nrb, lo = c * tc, hi = lo + tc < N ? lo + tc : N;
            if (N >= TOKEN_MAJOR_MIN) run_block_tokens(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, rb, lo, hi);
            else run_block(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, rb);
        }
    }
    if (sumx != sxs_stack) free(sumx);
    free(xpair);
    free(xbuf);
}

void tern_tmat_split_init(tern_split *split, int nt, const tern_tmat *m) {
    split_init(split, nt < 1 ? 1 : nt > MAX_SPLIT ? MAX_SPLIT : nt, (m->rows + ROW_BLOCK - 1) / ROW_BLOCK);
}

void tern_tmat_mul1_team(const tern_tmat *m, tern_split *split, int nt, const int8_t *xq, float sx, float *outf, int32_t *outi,
                         tern_kernel_kind k) {
    k = resolve(k);
    nt = nt < 1 ? 1 : nt > MAX_SPLIT ? MAX_SPLIT : nt;
    const int32_t sumx = row_sum(xq, m->cols_pad);
    const int me = omp_get_thread_num() % nt;
    const tern_tile_set *ts = k == TERN_KERNEL_PLAIN ? NULL : tern_tiles_for(k);
    for (int rb; (rb = split_next(split, nt, me)) >= 0;) run_block(m, xq, 1, &sx, outf, outi, ts, 0, &sumx, 1, rb);
}

void tern_tmat_muln_team(const tern_tmat *m, tern_split *split, int nt, const int8_t *xq, int N, const float *sx, float *outf,
                         int32_t *outi, tern_kernel_kind k) {
    k = resolve(k);
    nt = nt < 1 ? 1 : nt > MAX_SPLIT ? MAX_SPLIT : nt;
    int32_t sumx[TERN_TEAM_ROWS];
    for (int n = 0; n < N; n++) sumx[n] = row_sum(xq + (size_t)n * m->cols_pad, m->cols_pad);
    const tern_tile_set *ts = k == TERN_KERNEL_PLAIN ? NULL : tern_tiles_for(k);
    const int TT = ts ? ts->tt : 4;
    // kinds that take token pairs (i8mm): each thread re-lays its own copy (at most
    // TERN_TEAM_ROWS rows, small beside the weights it streams), so the team needs no barrier
    const int pairs = ts && ts->x_pairs && N >= 2;
    int8_t *xpair = NULL;
    const int8_t *x = xq;
    if (pairs) {
        xpair = tern_aligned_alloc((size_t)(N + 1) / 2 * 2 * m->cols_pad);
        tern_x_pairs(xpair, xq, N, m->cols_pad);
        x = xpair;
    }
    const int me = omp_get_thread_num() % nt;
    for (int rb; (rb = split_next(split, nt, me)) >= 0;) run_block(m, x, N, sx, outf, outi, ts, pairs, sumx, TT, rb);
    free(xpair);
}

void tern_tmat_mul(const tern_tmat *m, const int8_t *xq, const float *sx, int N, float *out, tern_kernel_kind k) {
    run(m, xq, (size_t)m->cols, N, sx, out, NULL, k);
}

void tern_tmat_mul_ld(const tern_tmat *m, const int8_t *xq, size_t ldx, const float *sx, int N, float *out, tern_kernel_kind k) {
    run(m, xq, ldx, N, sx, out, NULL, k);
}

void tern_tmat_mul_i32(const tern_tmat *m, const int8_t *xq, int N, int32_t *out, tern_kernel_kind k) {
    run(m, xq, (size_t)m->cols, N, NULL, NULL, out, k);
}
