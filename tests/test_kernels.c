// test_kernels.c — ternary matrix kernels: every kind available on this CPU must give int32 sums
// bit-identical to the plain C kernel, which must equal a naive int64 dot product straight from
// the int8 weights; odd shapes, extreme values, padded cols, TQ2_0/TQ1_0 constructors, float epilogue.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "kernels/kernels.h"
#include "kernels/tiles.h"
#include "formats/tqpack.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <omp.h>

static void fill_ternary(int8_t *w, long n, uint64_t seed) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) w[i] = (int8_t)((int)(tern_rng_u64(&r) % 3) - 1);
}
static void fill_i8(int8_t *x, long n, uint64_t seed) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = (int8_t)(int)(tern_rng_u64(&r) % 256 - 128);
}
// naive reference: out[n*rows + r] = sum_k x[n,k] * w[r,k]
static void naive(const int8_t *w, const int8_t *x, int rows, int cols, int N, int32_t *out) {
    for (int n = 0; n < N; n++)
        for (int r = 0; r < rows; r++) {
            int64_t s = 0;
            for (int k = 0; k < cols; k++) s += (int64_t)x[(size_t)n * cols + k] * w[(size_t)r * cols + k];
            out[(size_t)n * rows + r] = (int32_t)s;
        }
}

static const tern_kernel_kind fast_kinds[] = {TERN_KERNEL_AVX2, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX512VNNI,
                                             TERN_KERNEL_NEON, TERN_KERNEL_DOTPROD, TERN_KERNEL_I8MM};

// checks plain == naive, every available fast kind == plain; returns number of kinds compared
static int check_shape(int rows, int cols, int N, uint64_t seed) {
    int8_t *w = malloc((size_t)rows * cols), *x = malloc((size_t)N * cols);
    int32_t *ref = malloc((size_t)N * rows * 4), *got = malloc((size_t)N * rows * 4);
    fill_ternary(w, (long)rows * cols, seed);
    fill_i8(x, (long)N * cols, seed + 1);
    naive(w, x, rows, cols, N, ref);
    tern_tmat m;
    assert_int_equal(tern_tmat_from_i8(&m, w, rows, cols, 1.0f), 0);
    memset(got, 0x7f, (size_t)N * rows * 4);
    tern_tmat_mul_i32(&m, x, N, got, TERN_KERNEL_PLAIN);
    if (memcmp(ref, got, (size_t)N * rows * 4) != 0) fail_msg("plain != naive for rows %d cols %d N %d", rows, cols, N);
    int kinds = 1;
    for (size_t i = 0; i < sizeof fast_kinds / sizeof fast_kinds[0]; i++) {
        if (!tern_kernel_available(fast_kinds[i])) continue;
        memset(got, 0x7f, (size_t)N * rows * 4);
        tern_tmat_mul_i32(&m, x, N, got, fast_kinds[i]);
        for (long j = 0; j < (long)N * rows; j++)
            if (got[j] != ref[j])
                fail_msg("%s != plain for rows %d cols %d N %d at [%ld, %ld]: %d vs %d", tern_kernel_name(fast_kinds[i]), rows,
                         cols, N, j / rows, j % rows, got[j], ref[j]);
        kinds++;
    }
    tern_tmat_free(&m);
    free(w); free(x); free(ref); free(got);
    return kinds;
}

static void test_kinds(void **st) {
    (void)st;
    tern_kernel_kind k;
    unsetenv("TERN_KERNEL");
    assert_int_equal(tern_kernel_parse("plain", &k), 0); assert_int_equal(k, TERN_KERNEL_PLAIN);
    assert_int_equal(tern_kernel_parse("avx2", &k), 0); assert_int_equal(k, TERN_KERNEL_AVX2);
    assert_int_equal(tern_kernel_parse("avx512", &k), 0); assert_int_equal(k, TERN_KERNEL_AVX512VNNI);
    assert_int_equal(tern_kernel_parse("avxvnni", &k), 0); assert_int_equal(k, TERN_KERNEL_AVXVNNI);
    assert_int_equal(tern_kernel_parse("neon", &k), 0); assert_int_equal(k, TERN_KERNEL_NEON);
    assert_int_equal(tern_kernel_parse("dotprod", &k), 0); assert_int_equal(k, TERN_KERNEL_DOTPROD);
    assert_int_equal(tern_kernel_parse("i8mm", &k), 0); assert_int_equal(k, TERN_KERNEL_I8MM);
    assert_int_equal(tern_kernel_parse("sse9", &k), -1);
    assert_string_equal(tern_kernel_name(TERN_KERNEL_AVX512VNNI), "avx512");
    assert_string_equal(tern_kernel_name(TERN_KERNEL_AVXVNNI), "avxvnni");
    for (int i = 0; i < TERN_KERNEL_NKINDS; i++) {   // names and parse agree
        assert_int_equal(tern_kernel_parse(tern_kernel_name((tern_kernel_kind)i), &k), 0);
        assert_int_equal(k, i);
    }
    // kinds of the other architecture are never available
#if defined(__x86_64__)
    assert_false(tern_kernel_available(TERN_KERNEL_NEON) || tern_kernel_available(TERN_KERNEL_DOTPROD) || tern_kernel_available(TERN_KERNEL_I8MM));
    assert_int_equal(tern_kernel_force(TERN_KERNEL_NEON), -1);
#elif defined(__aarch64__)
    assert_false(tern_kernel_available(TERN_KERNEL_AVX2) || tern_kernel_available(TERN_KERNEL_AVXVNNI) || tern_kernel_available(TERN_KERNEL_AVX512VNNI));
#endif
    assert_int_not_equal(tern_kernel_best(), TERN_KERNEL_AUTO);
    assert_true(tern_kernel_available(tern_kernel_best()));
    assert_int_equal(tern_kernel_force(TERN_KERNEL_PLAIN), 0);
    assert_int_equal(tern_kernel_best(), TERN_KERNEL_PLAIN);
    assert_int_equal(tern_kernel_force(TERN_KERNEL_AUTO), 0);
    assert_int_equal(tern_kernel_force((tern_kernel_kind)9), -1);
    // TERN_KERNEL overrides the CPU choice; a bad value is ignored (one warning); force() beats env
    tern_kernel_kind cpu = tern_kernel_best();
    setenv("TERN_KERNEL", "plain", 1);
    assert_int_equal(tern_kernel_best(), TERN_KERNEL_PLAIN);
    if (tern_kernel_available(TERN_KERNEL_AVX2)) {
        setenv("TERN_KERNEL", "avx2", 1);
        assert_int_equal(tern_kernel_best(), TERN_KERNEL_AVX2);
        assert_int_equal(tern_kernel_force(TERN_KERNEL_PLAIN), 0);
        assert_int_equal(tern_kernel_best(), TERN_KERNEL_PLAIN);
        assert_int_equal(tern_kernel_force(TERN_KERNEL_AUTO), 0);
    }
    setenv("TERN_KERNEL", "bogus", 1);
    assert_int_equal(tern_kernel_best(), cpu);
    unsetenv("TERN_KERNEL");
    assert_int_equal(tern_kernel_best(), cpu);
    // AUTO picks the fastest kind the CPU has: x86 avx512 > avxvnni > avx2; ARM i8mm > dotprod > neon
    const tern_kernel_kind order[] = {TERN_KERNEL_AVX512VNNI, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX2,
                                      TERN_KERNEL_I8MM, TERN_KERNEL_DOTPROD, TERN_KERNEL_NEON, TERN_KERNEL_PLAIN};
    tern_kernel_kind want = TERN_KERNEL_PLAIN;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (tern_kernel_available(order[i])) { want = order[i]; break; }
    assert_int_equal(tern_kernel_best(), want);
    char avail[128] = "";
    for (int i = TERN_KERNEL_PLAIN; i < TERN_KERNEL_NKINDS; i++)
        if (tern_kernel_available((tern_kernel_kind)i)) {
            strcat(avail, " ");
            strcat(avail, tern_kernel_name((tern_kernel_kind)i));
        }
    print_message("kernel kinds available here:%s; best: %s\n", avail, tern_kernel_name(tern_kernel_best()));
}

static void test_odd_shapes(void **st) {
    (void)st;
    const int rows[] = {1, 3, 17, 255, 257}, Ns[] = {1, 2, 3, 7, 9, 33}, cols[] = {256, 512, 768, 1280};
    int n = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 6; b++)
            for (int c = 0; c < 4; c++) n += check_shape(rows[a], cols[c], Ns[b], 1000 + 100 * a + 10 * b + c);
    assert_true(n >= 120);
}

static void test_padded_cols(void **st) {
    (void)st;
    const int cols[] = {1, 7, 100, 255, 257, 300, 1000};
    for (int c = 0; c < 7; c++) check_shape(9, cols[c], 5, 77 + c);
}

// extreme weights x extreme activations, batched (N = 4) and one token at a time (N = 1: the
// decode kernel, whose lanes carry up to 64x scaled partial sums), for every kind
static void check_extremes(int cols) {
    enum { rows = 6, N = 4 };
    int8_t *w = malloc((size_t)rows * cols), *x = malloc((size_t)N * cols);
    int32_t got[N * rows];
    // rows: all +1, all -1, all 0, alternating +1/-1, first half +1, random
    for (int k = 0; k < cols; k++) {
        w[0 * cols + k] = 1; w[1 * cols + k] = -1; w[2 * cols + k] = 0;
        w[3 * cols + k] = (k & 1) ? -1 : 1; w[4 * cols + k] = k < cols / 2 ? 1 : 0;
    }
    fill_ternary(w + 5 * cols, cols, 5);
    // tokens: all -128, all 127, alternating -128/127, random
    for (int k = 0; k < cols; k++) { x[k] = -128; x[cols + k] = 127; x[2 * cols + k] = (k & 1) ? 127 : -128; }
    fill_i8(x + 3 * cols, cols, 9);
    int32_t ref[N * rows];
    naive(w, x, rows, cols, N, ref);
    assert_int_equal(ref[0 * rows + 0], -128 * cols);
    assert_int_equal(ref[0 * rows + 1], 128 * cols);
    assert_int_equal(ref[1 * rows + 0], 127 * cols);
    assert_int_equal(ref[1 * rows + 1], -127 * cols);
    assert_int_equal(ref[2 * rows + 3], -128 * cols / 2 - 127 * cols / 2);
    tern_tmat m;
    assert_int_equal(tern_tmat_from_i8(&m, w, rows, cols, 0.5f), 0);
    for (int kk = TERN_KERNEL_PLAIN; kk < TERN_KERNEL_NKINDS; kk++) {
        if (!tern_kernel_available((tern_kernel_kind)kk)) continue;
        tern_tmat_mul_i32(&m, x, N, got, (tern_kernel_kind)kk);
        for (int i = 0; i < N * rows; i++)
            if (got[i] != ref[i]) fail_msg("%s: cols %d: extreme case %d: %d vs %d", tern_kernel_name((tern_kernel_kind)kk), cols, i, got[i], ref[i]);
        for (int n = 0; n < N; n++) {
            tern_tmat_mul_i32(&m, x + (size_t)n * cols, 1, got, (tern_kernel_kind)kk);
            for (int r = 0; r < rows; r++)
                if (got[r] != ref[n * rows + r])
                    fail_msg("%s: cols %d: extreme token %d row %d (N=1): %d vs %d", tern_kernel_name((tern_kernel_kind)kk), cols, n, r, got[r], ref[n * rows + r]);
        }
    }
    tern_tmat_free(&m);
    free(w); free(x);
}

static void test_extremes(void **st) {
    (void)st;
    check_extremes(2816);     // 11 blocks
    check_extremes(262144);   // 1024 blocks: |sum| up to 2^25, scaled lanes up to 2^31 / 32
}

// float output: exactly (float)acc * (scale / sx[n]), same bits for every kind
// the float epilogue, bit for bit, for a few tokens (tile-major) and for many (token-major, in
// several token chunks of a work item each)
static void test_float_epilogue(void **st) {
    (void)st;
    const int rows = 37, cols = 768, Ns[] = {9, 401};
    for (int ni = 0; ni < 2; ni++) {
        const int N = Ns[ni];
        int8_t *w = malloc((size_t)rows * cols), *x = malloc((size_t)N * cols);
        fill_ternary(w, (long)rows * cols, 3);
        fill_i8(x, (long)N * cols, 4);
        float *sx = malloc(sizeof(float) * N), *out = malloc(sizeof(float) * N * rows), *out2 = malloc(sizeof(float) * N * rows);
        for (int n = 0; n < N; n++) sx[n] = 3.7f + 11.3f * (float)(n % 50);
        int32_t *ref = malloc(sizeof(int32_t) * N * rows);
        naive(w, x, rows, cols, N, ref);
        tern_tmat m;
        const float scale = 0.0371f;
        assert_int_equal(tern_tmat_from_i8(&m, w, rows, cols, scale), 0);
        for (int kk = TERN_KERNEL_PLAIN; kk < TERN_KERNEL_NKINDS; kk++) {
            if (!tern_kernel_available((tern_kernel_kind)kk)) continue;
            memset(out, 0, sizeof(float) * N * rows);
            tern_tmat_mul(&m, x, sx, N, out, (tern_kernel_kind)kk);
            for (int n = 0; n < N; n++)
                for (int r = 0; r < rows; r++) {
                    float want = (float)ref[n * rows + r] * (scale / sx[n]);
                    if (memcmp(&want, &out[n * rows + r], 4) != 0)
                        fail_msg("%s N %d: float out [%d,%d] %.9g vs %.9g", tern_kernel_name((tern_kernel_kind)kk), N, n, r, out[n * rows + r], want);
                }
        }
        // AUTO resolves to something that gives the same answer
        tern_tmat_mul(&m, x, sx, N, out2, TERN_KERNEL_AUTO);
        assert_memory_equal(out, out2, sizeof(float) * N * rows);
        tern_tmat_free(&m);
        free(w); free(x); free(sx); free(out); free(out2); free(ref);
    }
}

// many tokens (the token-major order, in work items of a token chunk x a row block): around the
// order's threshold (32), around one chunk of each level's token groups, several chunks with a
// partial last one; 1 to 3 threads
static void test_many_tokens(void **st) {
    (void)st;
    const int Ns[] = {31, 32, 127, 129, 191, 193, 401, 800}, shapes[][2] = {{70, 300}, {129, 512}};
    const int saved = omp_get_max_threads();
    int n = 0;
    for (int th = 1; th <= 3; th++) {
        omp_set_num_threads(th);
        for (int a = 0; a < 8; a++)
            for (int b = 0; b < 2; b++) n += check_shape(shapes[b][0], shapes[b][1], Ns[a], 5000 + 100 * th + 10 * a + b);
    }
    omp_set_num_threads(saved);
    assert_true(n >= 48);
}

static void test_from_tq(void **st) {
    (void)st;
    const int rows = 5, cols = 768;
    const long n = (long)rows * cols;
    int8_t *w = malloc((size_t)n), *back = malloc((size_t)cols);
    fill_ternary(w, n, 42);
    const float s = 0.0625f;   // exact in fp16
    uint8_t *q2 = malloc(tern_tq2_bytes(n)), *q1 = malloc(tern_tq1_bytes(n));
    assert_int_equal(tern_tq2_pack(w, n, s, q2), 0);
    assert_int_equal(tern_tq1_pack(w, n, s, q1), 0);
    tern_tmat a, b, c;
    assert_int_equal(tern_tmat_from_i8(&a, w, rows, cols, s), 0);
    assert_int_equal(tern_tmat_from_tq2(&b, q2, rows, cols), 0);
    assert_int_equal(tern_tmat_from_tq1(&c, q1, rows, cols), 0);
    assert_int_equal(b.rows, rows); assert_int_equal(b.cols, cols);
    assert_true(b.scale == s && c.scale == s);
    assert_memory_equal(a.w, b.w, tern_tmat_weight_bytes(&a));
    assert_memory_equal(a.w, c.w, tern_tmat_weight_bytes(&a));
    for (int r = 0; r < rows; r++) {
        tern_tmat_get_row_i8(&c, r, back);
        assert_memory_equal(back, w + (size_t)r * cols, (size_t)cols);
    }
    tern_tmat_free(&b); tern_tmat_free(&c);

    // an all-zero block may carry any d; differing d on non-zero blocks is rejected
    memset(w, 0, 256);   // block 0 of row 0 all zero
    assert_int_equal(tern_tq2_pack(w, n, s, q2), 0);
    q2[64] = 0x00; q2[65] = 0x3c;   // block 0: d = 1.0
    assert_int_equal(tern_tmat_from_tq2(&b, q2, rows, cols), 0);
    assert_true(b.scale == s);
    tern_tmat_free(&b);
    q2[66 + 64] = 0x00; q2[66 + 65] = 0x3c; // block 1 (non-zero): d = 1.0 vs 0.0625 elsewhere
    assert_int_equal(tern_tmat_from_tq2(&b, q2, rows, cols), -1);
    assert_non_null(strstr(tern_last_error(), "scale"));
    assert_null(b.w);
    // a whole row with another d (each row consistent in itself): rejected too
    assert_int_equal(tern_tq2_pack(w, n, s, q2), 0);
    for (int blk = 0; blk < cols / 256; blk++) { q2[66 * (cols / 256 + blk) + 64] = 0x00; q2[66 * (cols / 256 + blk) + 65] = 0x3c; }
    assert_int_equal(tern_tmat_from_tq2(&b, q2, rows, cols), -1);
    assert_non_null(strstr(tern_last_error(), "row 1"));
    // code 3 is not ternary
    assert_int_equal(tern_tq2_pack(w, n, s, q2), 0);
    q2[66 * 3 + 5] |= 3;
    assert_int_equal(tern_tmat_from_tq2(&b, q2, rows, cols), -1);
    assert_non_null(strstr(tern_last_error(), "code 3"));
    // cols must be a multiple of 256 for block formats
    assert_int_equal(tern_tmat_from_tq1(&b, q1, rows * 3, 256 * 5 / 3 + 1), -1);
    assert_non_null(strstr(tern_last_error(), "multiple of 256"));
    tern_tmat_free(&a);
    free(w); free(back); free(q2); free(q1);
}

static void test_from_gguf(void **st) {
    (void)st;
    const int rows = 3, cols = 512;
    int8_t w[3 * 512];
    fill_ternary(w, rows * cols, 8);
    uint8_t q2[3 * 2 * 66], q1[3 * 2 * 54];
    float f[8] = {0};
    assert_int_equal(tern_tq2_pack(w, rows * cols, 0.5f, q2), 0);
    assert_int_equal(tern_tq1_pack(w, rows * cols, 0.5f, q1), 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/tern_test_kernels_%d.gguf", (int)getpid());
    tern_gguf_writer *gw = tern_gguf_writer_new();
    int64_t ne[2] = {cols, rows}, nef[2] = {4, 2};
    assert_int_equal(tern_gguf_add_tensor(gw, "a.weight", 2, ne, TERN_GGML_TQ2_0, q2, sizeof q2), 0);
    assert_int_equal(tern_gguf_add_tensor(gw, "b.weight", 2, ne, TERN_GGML_TQ1_0, q1, sizeof q1), 0);
    assert_int_equal(tern_gguf_add_tensor(gw, "c.weight", 2, nef, TERN_GGML_F32, f, sizeof f), 0);
    assert_int_equal(tern_gguf_write(gw, path), 0);
    tern_gguf_writer_free(gw);
    tern_gguf *g = tern_gguf_open(path);
    assert_non_null(g);
    tern_tmat ref, a, b, c;
    assert_int_equal(tern_tmat_from_i8(&ref, w, rows, cols, 0.5f), 0);
    assert_int_equal(tern_tmat_from_gguf(&a, tern_gguf_get_tensor(g, "a.weight"), path), 0);
    assert_int_equal(tern_tmat_from_gguf(&b, tern_gguf_get_tensor(g, "b.weight"), path), 0);
    assert_int_equal(a.rows, rows); assert_int_equal(a.cols, cols); assert_true(a.scale == 0.5f && b.scale == 0.5f);
    assert_memory_equal(a.w, ref.w, tern_tmat_weight_bytes(&ref));
    assert_memory_equal(b.w, ref.w, tern_tmat_weight_bytes(&ref));
    assert_int_equal(tern_tmat_from_gguf(&c, tern_gguf_get_tensor(g, "c.weight"), path), -1);
    assert_non_null(strstr(tern_last_error(), "tensor c.weight: type f32 is not ternary"));
    assert_non_null(strstr(tern_last_error(), path));
    tern_tmat_free(&ref); tern_tmat_free(&a); tern_tmat_free(&b);
    tern_gguf_close(g);
    unlink(path);
}

// Decode products large enough to run threaded (>= 256 KiB of weights) take row blocks through the
// work-stealing split: every thread count, even or not, must give the naive sums (and the plain
// kernel's), whichever thread ends up computing which block; also after tern_tmat_gather.
static void test_decode_split(void **st) {
    (void)st;
    const int rows[] = {2049, 4100}, cols = 1024;   // 2049: one short last block; 4100: not a multiple of 64
    const int saved = omp_get_max_threads();
    for (int a = 0; a < 2; a++) {
        const int R = rows[a], N = 2;
        int8_t *w = malloc((size_t)R * cols), *x = malloc((size_t)N * cols);
        int32_t *ref = malloc((size_t)N * R * 4), *got = malloc((size_t)N * R * 4);
        fill_ternary(w, (long)R * cols, 77 + (uint64_t)a);
        fill_i8(x, (long)N * cols, 78 + (uint64_t)a);
        naive(w, x, R, cols, N, ref);
        tern_tmat m[2];
        assert_int_equal(tern_tmat_from_i8(&m[0], w, R, cols, 1.0f), 0);
        assert_int_equal(tern_tmat_from_i8(&m[1], w, R, cols, 1.0f), 0);
        assert_true(tern_tmat_weight_bytes(&m[0]) >= 256 * 1024);
        tern_tmat *pm[2] = {&m[0], &m[1]};
        uint8_t *buf = tern_tmat_gather(pm, 2);   // m[1] right after m[0] in one buffer
        assert_ptr_equal(m[0].w, buf);
        assert_ptr_equal(m[1].w, buf + (tern_tmat_weight_bytes(&m[0]) + 63) / 64 * 64);
        assert_int_equal(m[0].owns_w, 0);
        const int threads[] = {1, 2, 3, 5};
        for (int t = 0; t < 4; t++) {
            omp_set_num_threads(threads[t]);
            for (int n = 1; n <= N; n++)
                for (int kk = TERN_KERNEL_PLAIN; kk < TERN_KERNEL_NKINDS; kk++) {
                    if (!tern_kernel_available((tern_kernel_kind)kk)) continue;
                    memset(got, 0x7f, (size_t)N * R * 4);
                    tern_tmat_mul_i32(&m[1], x, n, got, (tern_kernel_kind)kk);
                    for (long j = 0; j < (long)n * R; j++)
                        if (got[j] != ref[j])
                            fail_msg("%s, %d threads, rows %d, N %d: [%ld, %ld] %d vs %d", tern_kernel_name((tern_kernel_kind)kk), threads[t], R, n,
                                     j / R, j % R, got[j], ref[j]);
                }
        }
        omp_set_num_threads(saved);
        tern_tmat_free(&m[0]);   // frees nothing: the weights live in buf
        tern_tmat_free(&m[1]);
        free(buf);
        free(w); free(x); free(ref); free(got);
    }
    // tern_alloc_huge: from 2 MiB up, 2 MiB aligned
    uint8_t *h = tern_alloc_huge((size_t)3 << 20);
    assert_int_equal((uintptr_t)h % ((uintptr_t)2 << 20), 0);
    h[(3 << 20) - 1] = 1;
    free(h);
}

// the token-pair layout of tiles.h (i8mm's activations): column k of token t at byte
// 16*(k/8) + 8*(t%2) + k%8 of pair t/2, which starts at 2*(t/2)*cp; an odd last token's partner is 0
static void test_x_pairs(void **st) {
    (void)st;
    for (int N = 1; N <= 5; N++) {
        const int cp = 512;
        int8_t *src = malloc((size_t)N * cp), *dst = malloc((size_t)(N + 1) / 2 * 2 * cp);
        fill_i8(src, (long)N * cp, 300 + (uint64_t)N);
        memset(dst, 0x77, (size_t)(N + 1) / 2 * 2 * cp);
        tern_x_pairs(dst, src, N, cp);
        for (int t = 0; t < (N + 1) / 2 * 2; t++)
            for (int k = 0; k < cp; k++) {
                const int8_t want = t < N ? src[(size_t)t * cp + k] : 0;
                const int8_t got = dst[(size_t)2 * (t / 2) * cp + 16 * (k / 8) + 8 * (t % 2) + k % 8];
                if (got != want) fail_msg("N %d token %d col %d: %d, want %d", N, t, k, got, want);
            }
        free(src); free(dst);
    }
}

static void test_bad_input(void **st) {
    (void)st;
    int8_t w[8] = {0, 1, -1, 2, 0, 0, 0, 0};
    tern_tmat m;
    assert_int_equal(tern_tmat_from_i8(&m, w, 2, 4, 1.0f), -1);
    assert_non_null(strstr(tern_last_error(), "not in {-1,0,1}"));
    assert_null(m.w);
    assert_int_equal(tern_tmat_from_i8(&m, w, 0, 4, 1.0f), -1);
    assert_non_null(strstr(tern_last_error(), "bad matrix shape"));
    assert_int_equal(tern_tmat_from_i8(&m, w, 2, -4, 1.0f), -1);
    tern_tmat_free(&m);   // safe on a zeroed tmat
    // N = 0 writes nothing
    w[3] = 1;
    assert_int_equal(tern_tmat_from_i8(&m, w, 2, 4, 1.0f), 0);
    int32_t o[2] = {5, 6};
    tern_tmat_mul_i32(&m, NULL, 0, o, TERN_KERNEL_AUTO);
    assert_int_equal(o[0], 5);
    tern_tmat_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),          cmocka_unit_test(test_odd_shapes), cmocka_unit_test(test_padded_cols),
        cmocka_unit_test(test_extremes),       cmocka_unit_test(test_float_epilogue), cmocka_unit_test(test_many_tokens),
        cmocka_unit_test(test_from_tq),        cmocka_unit_test(test_from_gguf),      cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_decode_split),   cmocka_unit_test(test_x_pairs),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
