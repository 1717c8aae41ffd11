// rtcheck.c — the standalone runtime's self-checking test driver. It needs only libtern_rt (libc,
// libm, OpenMP: no cmocka), so it runs wherever the runtime does: natively, and under qemu-aarch64
// for `make test-arm` (scripts/test_arm.sh runs it once per ARM kernel level, on an emulated CPU
// with or without dotprod / i8mm). Every check compares against a reference written here that
// shares no code with what it tests:
//   kinds     names, parsing, availability (the other architecture's kinds never are), the kind
//             the CPU's features select (--expect-best)
//   products  every kernel kind tested (--kernel K, else all available) against naive int64 dot
//             products from the int8 weights: odd shapes (rows 1..66, cols 1..768, tokens 1..17),
//             extreme values (all +-1 weights x all -128/127 activations, up to 65536 columns),
//             the threaded decode split (1-3 threads), the one-token team path, the float
//             epilogue bit for bit, TQ2_0/TQ1_0 tensors read from a GGUF file
//   logits    the logits products (kernels/qmatvec.h) for every weight type (Q8_0 in the ggml and
//             the repacked layout, Q4_K, Q5_K, Q6_K, F16, BF16, F32): every kind tested gives the
//             plain code's bits, and all are within 1e-5 of double products of the dequantized
//             weights and activations (ggml_types' dequantizers, not the kernels' arithmetic)
//   quant     the int8 activation quantizer (scale, round half to even, clamp) bit for bit
//   rowops    the 16-lane float sums of RMSNorm bit for bit
//   vmath     every exp level bit-identical to plain C (elements, row sums, sigmoid), <= 2 ulp
//   runtime   a random 2-layer model: batched prefill == token-by-token decode == a team of 2
//             and 3 threads, bit for bit; every SIMD kind gives the same logits; plain close;
//             a truncated and a foreign GGUF file are refused with the file's name
// Prints one line per failure and a summary; exit status 0 only when every check passed.
// Also prints "rtcheck nll <value> logits <hash>" (the random model's NLL over a fixed token
// sequence and a hash of its logits) and "rtcheck greedy <ids>" (20 greedily decoded tokens after
// it), which scripts/test_arm.sh compares across architectures.
//   usage: rtcheck [--kernel K] [--expect-best K] [--quick]
#include "kernels/kernels.h"
#include "kernels/qmatvec.h"
#include "kernels/rowops.h"
#include "kernels/vmath.h"
#include "model/quant.h"
#include "formats/gguf.h"
#include "formats/ggml_types.h"
#include "formats/tqpack.h"
#include "runtime.h"
#include "util.h"
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long n_pass, n_fail;

static int check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int check(int ok, const char *fmt, ...) {
    if (ok) {
        n_pass++;
        return 1;
    }
    n_fail++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rtcheck: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 0;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "rtcheck: out of memory\n"); exit(2); }
    return p;
}

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void) {   // xorshift64: independent of the library's generator
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static void fill_ternary(int8_t *w, long n) { for (long i = 0; i < n; i++) w[i] = (int8_t)((int)(rnd() % 3) - 1); }
static void fill_i8(int8_t *x, long n) { for (long i = 0; i < n; i++) x[i] = (int8_t)(int)(rnd() % 256 - 128); }
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 40) / 16777216.0f; }

// naive: out[n*rows + r] = sum_k x[n,k] * w[r,k], in int64
static void naive(const int8_t *w, const int8_t *x, int rows, int cols, int N, int64_t *out) {
    for (int n = 0; n < N; n++)
        for (int r = 0; r < rows; r++) {
            int64_t s = 0;
            for (int k = 0; k < cols; k++) s += (int64_t)x[(size_t)n * cols + k] * w[(size_t)r * cols + k];
            out[(size_t)n * rows + r] = s;
        }
}

static tern_kernel_kind kinds[TERN_KERNEL_NKINDS];
static int n_kinds;

// ---------------------------------------------------------------- kinds
static void check_kinds(const char *expect_best) {
    for (int i = 0; i < TERN_KERNEL_NKINDS; i++) {
        tern_kernel_kind k;
        check(tern_kernel_parse(tern_kernel_name((tern_kernel_kind)i), &k) == 0 && k == (tern_kernel_kind)i, "kind %d: name '%s' does not parse back",
              i, tern_kernel_name((tern_kernel_kind)i));
    }
    tern_kernel_kind k;
    check(tern_kernel_parse("sse9", &k) == -1, "parse accepted 'sse9'");
    const tern_kernel_kind best = tern_kernel_best();
    check(best != TERN_KERNEL_AUTO && tern_kernel_available(best), "best kind %s is not available", tern_kernel_name(best));
#if defined(__aarch64__)
    const tern_kernel_kind other[] = {TERN_KERNEL_AVX2, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX512VNNI};
    check(tern_kernel_available(TERN_KERNEL_NEON), "neon is not available on an AArch64 CPU");
    // i8mm implies dotprod here (the i8mm level's decode runs sdot)
    check(!tern_kernel_available(TERN_KERNEL_I8MM) || tern_kernel_available(TERN_KERNEL_DOTPROD), "i8mm without dotprod");
#else
    const tern_kernel_kind other[] = {TERN_KERNEL_NEON, TERN_KERNEL_DOTPROD, TERN_KERNEL_I8MM};
#endif
    for (int i = 0; i < 3; i++) {
        check(!tern_kernel_available(other[i]), "kind %s is available on this architecture", tern_kernel_name(other[i]));
        check(tern_kernel_force(other[i]) == -1, "forcing %s did not fail", tern_kernel_name(other[i]));
    }
    if (expect_best) {
        tern_kernel_kind e;
        if (tern_kernel_parse(expect_best, &e)) check(0, "--expect-best %s: unknown kind", expect_best);
        else check(best == e, "this CPU selects kernel %s, expected %s", tern_kernel_name(best), expect_best);
    }
}

// ---------------------------------------------------------------- products
// every kind in kinds[] against the naive sums; N = 1 is the decode kernel, N >= 2 the prefill tiles
static void check_shape(int rows, int cols, int N) {
    int8_t *w = xmalloc((size_t)rows * cols), *x = xmalloc((size_t)N * cols);
    int64_t *ref = xmalloc(sizeof(int64_t) * (size_t)N * rows);
    int32_t *got = xmalloc(sizeof(int32_t) * (size_t)N * rows);
    fill_ternary(w, (long)rows * cols);
    fill_i8(x, (long)N * cols);
    naive(w, x, rows, cols, N, ref);
    tern_tmat m;
    if (!check(tern_tmat_from_i8(&m, w, rows, cols, 1.0f) == 0, "tern_tmat_from_i8 [%d, %d]: %s", rows, cols, tern_last_error())) goto done;
    for (int i = 0; i < n_kinds; i++) {
        memset(got, 0x5a, sizeof(int32_t) * (size_t)N * rows);
        tern_tmat_mul_i32(&m, x, N, got, kinds[i]);
        long bad = -1;
        for (long j = 0; j < (long)N * rows && bad < 0; j++)
            if (got[j] != ref[j]) bad = j;
        check(bad < 0, "%s: rows %d cols %d N %d: [%ld, %ld] = %d, want %lld", tern_kernel_name(kinds[i]), rows, cols, N, bad / rows, bad % rows,
              bad >= 0 ? got[bad] : 0, bad >= 0 ? (long long)ref[bad] : 0LL);
    }
    tern_tmat_free(&m);
done:
    free(w); free(x); free(ref); free(got);
}

static void check_extremes(int cols) {
    enum { rows = 6, N = 4 };
    int8_t *w = xmalloc((size_t)rows * cols), *x = xmalloc((size_t)N * cols);
    int64_t ref[N * rows];
    int32_t got[N * rows];
    for (int k = 0; k < cols; k++) {   // rows: +1, -1, 0, alternating, half +1, random
        w[k] = 1; w[cols + k] = -1; w[2 * cols + k] = 0;
        w[3 * cols + k] = (k & 1) ? -1 : 1; w[4 * cols + k] = k < cols / 2 ? 1 : 0;
    }
    fill_ternary(w + 5 * cols, cols);
    for (int k = 0; k < cols; k++) { x[k] = -128; x[cols + k] = 127; x[2 * cols + k] = (k & 1) ? 127 : -128; }   // + one random token
    fill_i8(x + 3 * cols, cols);
    naive(w, x, rows, cols, N, ref);
    check(ref[0] == -128LL * cols && ref[rows + 1] == -127LL * cols, "naive reference wrong on extremes");
    tern_tmat m;
    if (tern_tmat_from_i8(&m, w, rows, cols, 0.5f)) { check(0, "from_i8: %s", tern_last_error()); goto done; }
    for (int i = 0; i < n_kinds; i++) {
        tern_tmat_mul_i32(&m, x, N, got, kinds[i]);
        int ok = 1;
        for (int j = 0; j < N * rows; j++) ok &= got[j] == ref[j];
        check(ok, "%s: extremes, cols %d, N %d", tern_kernel_name(kinds[i]), cols, N);
        for (int n = 0; n < N; n++) {   // one token: the decode kernels' scaled lanes
            tern_tmat_mul_i32(&m, x + (size_t)n * cols, 1, got, kinds[i]);
            ok = 1;
            for (int r = 0; r < rows; r++) ok &= got[r] == ref[n * rows + r];
            check(ok, "%s: extremes, cols %d, token %d alone", tern_kernel_name(kinds[i]), cols, n);
        }
    }
    tern_tmat_free(&m);
done:
    free(w); free(x);
}

// large enough (>= 256 KiB of weights) to run threaded: the stealing split, 1..3 threads; the
// one-token team path inside a caller's parallel region (outi and outf)
static void check_threads(int quick) {
    const int rows = quick ? 1027 : 2049, cols = 1024, N = 2;
    int8_t *w = xmalloc((size_t)rows * cols), *x = xmalloc((size_t)N * cols);
    int64_t *ref = xmalloc(sizeof(int64_t) * (size_t)N * rows);
    int32_t *got = xmalloc(sizeof(int32_t) * (size_t)N * rows);
    float *outf = xmalloc(sizeof(float) * (size_t)rows);
    fill_ternary(w, (long)rows * cols);
    fill_i8(x, (long)N * cols);
    naive(w, x, rows, cols, N, ref);
    tern_tmat m;
    if (tern_tmat_from_i8(&m, w, rows, cols, 0.25f)) { check(0, "from_i8: %s", tern_last_error()); goto done; }
    const int saved = omp_get_max_threads();
    for (int i = 0; i < n_kinds; i++)
        for (int t = 1; t <= 3; t++) {
            omp_set_num_threads(t);
            for (int n = 1; n <= N; n++) {
                memset(got, 0x5a, sizeof(int32_t) * (size_t)N * rows);
                tern_tmat_mul_i32(&m, x, n, got, kinds[i]);
                int ok = 1;
                for (long j = 0; j < (long)n * rows; j++) ok &= got[j] == ref[j];
                check(ok, "%s: %d threads, rows %d, N %d", tern_kernel_name(kinds[i]), t, rows, n);
            }
            // team path: every thread of a region of t calls it with the same arguments
            tern_split split[TERN_SPLIT_MAX];
            tern_tmat_split_init(split, t, &m);
            memset(got, 0x5a, sizeof(int32_t) * (size_t)rows);
#pragma omp parallel num_threads(t)
            tern_tmat_mul1_team(&m, split, t, x, 1.0f, NULL, got, kinds[i]);
            int ok = 1;
            for (int r = 0; r < rows; r++) ok &= got[r] == ref[r];
            check(ok, "%s: team of %d, int sums", tern_kernel_name(kinds[i]), t);
            const float sx = 7.25f;
            tern_tmat_split_init(split, t, &m);
#pragma omp parallel num_threads(t)
            tern_tmat_mul1_team(&m, split, t, x, sx, outf, NULL, kinds[i]);
            ok = 1;
            for (int r = 0; r < rows; r++) {
                const float want = (float)ref[r] * (0.25f / sx);
                ok &= memcmp(&want, &outf[r], sizeof want) == 0;
            }
            check(ok, "%s: team of %d, float out", tern_kernel_name(kinds[i]), t);
        }
    omp_set_num_threads(saved);
    tern_tmat_free(&m);
done:
    free(w); free(x); free(ref); free(got); free(outf);
}

// float epilogue: out = (float)sum * (scale / sx[n]), exactly
static void check_epilogue(void) {
    enum { rows = 37, cols = 300, N = 9 };
    int8_t *w = xmalloc(rows * cols), *x = xmalloc(N * cols);
    int64_t ref[N * rows];
    float out[N * rows], sx[N];
    fill_ternary(w, rows * cols);
    fill_i8(x, N * cols);
    naive(w, x, rows, cols, N, ref);
    for (int n = 0; n < N; n++) sx[n] = 3.7f + 11.3f * (float)n;
    tern_tmat m;
    const float scale = 0.0371f;
    if (tern_tmat_from_i8(&m, w, rows, cols, scale)) { check(0, "from_i8: %s", tern_last_error()); goto done; }
    for (int i = 0; i < n_kinds; i++) {
        tern_tmat_mul(&m, x, sx, N, out, kinds[i]);
        int ok = 1;
        for (int n = 0; n < N; n++)
            for (int r = 0; r < rows; r++) {
                const float want = (float)ref[n * rows + r] * (scale / sx[n]);
                ok &= memcmp(&want, &out[n * rows + r], sizeof want) == 0;
            }
        check(ok, "%s: float epilogue", tern_kernel_name(kinds[i]));
    }
    tern_tmat_free(&m);
done:
    free(w); free(x);
}

// TQ2_0 / TQ1_0 tensors of a GGUF file: the repacked matrix multiplies like the int8 weights
static void check_gguf_tensors(void) {
    const int rows = 5, cols = 512, N = 3;
    int8_t w[5 * 512], x[3 * 512];
    int64_t ref[3 * 5];
    int32_t got[3 * 5];
    fill_ternary(w, rows * cols);
    fill_i8(x, N * cols);
    naive(w, x, rows, cols, N, ref);
    const float d = 0.0625f;   // exact in fp16
    size_t n2 = tern_tq2_bytes((int64_t)rows * cols), n1 = tern_tq1_bytes((int64_t)rows * cols);
    uint8_t *q2 = xmalloc(n2), *q1 = xmalloc(n1);
    check(tern_tq2_pack(w, (int64_t)rows * cols, d, q2) == 0 && tern_tq1_pack(w, (int64_t)rows * cols, d, q1) == 0, "tq pack");
    char path[256];
    snprintf(path, sizeof path, "%s/rtcheck_%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    tern_gguf_writer *gw = tern_gguf_writer_new();
    const int64_t ne[2] = {cols, rows};
    tern_gguf_add_tensor(gw, "a.weight", 2, ne, TERN_GGML_TQ2_0, q2, n2);
    tern_gguf_add_tensor(gw, "b.weight", 2, ne, TERN_GGML_TQ1_0, q1, n1);
    const int wr = tern_gguf_write(gw, path);
    tern_gguf_writer_free(gw);
    free(q2); free(q1);
    if (!check(wr == 0, "writing %s: %s", path, tern_last_error())) return;
    tern_gguf *g = tern_gguf_open(path);
    if (check(g != NULL, "reading %s: %s", path, tern_last_error())) {
        const char *names[2] = {"a.weight", "b.weight"};
        for (int t = 0; t < 2; t++) {
            tern_tmat m;
            if (!check(tern_tmat_from_gguf(&m, tern_gguf_get_tensor(g, names[t]), path) == 0, "%s: %s", names[t], tern_last_error())) continue;
            check(m.scale == d && m.rows == rows && m.cols == cols, "%s: shape or scale", names[t]);
            for (int i = 0; i < n_kinds; i++) {
                tern_tmat_mul_i32(&m, x, N, got, kinds[i]);
                int ok = 1;
                for (int j = 0; j < N * rows; j++) ok &= got[j] == ref[j];
                check(ok, "%s: %s tensor from GGUF", tern_kernel_name(kinds[i]), t ? "TQ1_0" : "TQ2_0");
            }
            tern_tmat_free(&m);
        }
        tern_gguf_close(g);
    }
    unlink(path);
}

static void check_products(int quick) {
    const int rows[] = {1, 2, 3, 4, 5, 17, 66}, cols[] = {1, 100, 256, 300, 768}, Ns[] = {1, 2, 3, 7, 8, 9, 17};
    for (size_t a = 0; a < sizeof rows / sizeof rows[0]; a++)
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
            for (size_t b = 0; b < sizeof Ns / sizeof Ns[0]; b++) {
                if (quick && (a + b + c) % 3) continue;
                check_shape(rows[a], cols[c], Ns[b]);
            }
    check_extremes(2816);
    check_extremes(quick ? 16384 : 65536);   // |sums| up to 2^23; the decode kernels' scaled lanes up to 2^29
    check_threads(quick);
    check_epilogue();
    check_gguf_tensors();
}

// ---------------------------------------------------------------- logits products (qmatvec)
// rows x cols of `type` against N activation rows: each kind in kinds[] bit for bit equal to the
// plain code, and the plain code within 1e-5 (relative to sum |w x|) of a double product of the
// dequantized weights and the activations as quantized (q * d)
static void check_qmat_type(int type, int rows, int cols, int N) {
    const size_t rb = tern_ggml_row_bytes(type, cols);
    float *wf = xmalloc(sizeof(float) * (size_t)rows * cols), *x = xmalloc(sizeof(float) * (size_t)N * cols);
    float *deq = xmalloc(sizeof(float) * (size_t)rows * cols);
    uint8_t *W = xmalloc(rb * rows), *R = xmalloc(tern_qmat_bytes(tern_qmat_layout(type), rows, rb)), *scratch = xmalloc(tern_qvec_bytes(cols) * N);
    tern_qvec *v = xmalloc(sizeof(tern_qvec) * N);
    float *ref = xmalloc(sizeof(float) * (size_t)N * rows), *got = xmalloc(sizeof(float) * (size_t)N * rows);
    for (long i = 0; i < (long)rows * cols; i++) wf[i] = frand(-0.1f, 0.1f) * (1.0f + (float)(i % 5));
    for (long i = 0; i < (long)N * cols; i++) x[i] = frand(-2.0f, 2.0f) * (1.0f + (float)(i % 7));
    wf[3] = 9.0f;   // an outlier weight and activation
    x[5] = -40.0f;
    if (!check(tern_ggml_quantize(type, wf, (int64_t)rows * cols, W) == 0 && tern_ggml_dequant(type, W, (int64_t)rows * cols, deq) == 0,
               "%s: quantize/dequantize: %s", tern_ggml_type_name(type), tern_last_error()))
        goto done;
    for (int t = 0; t < N; t++) tern_qvec_prepare(&v[t], type, x + (size_t)t * cols, cols, scratch + tern_qvec_bytes(cols) * t);
    const int lt = tern_qmat_layout(type);
    tern_qmat_repack(type, W, rb, cols, rows, 0, rows, R);
    tern_qmat_mul(type, W, rb, 0, rows, v, N, ref, (size_t)rows, TERN_KERNEL_PLAIN);
    long far = -1;
    for (int t = 0; t < N && far < 0; t++)
        for (int r = 0; r < rows && far < 0; r++) {
            double s = 0, mag = 0;
            for (int i = 0; i < cols; i++) {
                const double xi = v[t].q ? (double)v[t].q[i] * v[t].d[i / (type == TERN_GGML_Q8_0 ? 32 : 256)] : (double)x[(size_t)t * cols + i];
                s += (double)deq[(size_t)r * cols + i] * xi;
                mag += fabs((double)deq[(size_t)r * cols + i] * xi);
            }
            if (fabs(ref[(size_t)t * rows + r] - s) > 1e-5 * mag + 1e-30) far = (long)t * rows + r;
        }
    check(far < 0, "%s: plain logits product [%ld] far from the double product", tern_ggml_type_name(type), far);
    for (int i = 0; i < n_kinds; i++)
        for (int lay = 0; lay < 2; lay++) {   // the ggml layout and the repacked one
            memset(got, 0x7f, sizeof(float) * (size_t)N * rows);
            tern_qmat_mul(lay ? lt : type, lay ? R : W, rb, 0, 5 < rows ? 5 : rows, v, N, got, (size_t)rows, kinds[i]);   // two row ranges
            if (rows > 5) tern_qmat_mul(lay ? lt : type, lay ? R : W, rb, 5, rows, v, N, got, (size_t)rows, kinds[i]);
            check(memcmp(got, ref, sizeof(float) * (size_t)N * rows) == 0, "%s: %s logits (%s layout) differ from plain C's bits",
                  tern_kernel_name(kinds[i]), tern_ggml_type_name(type), lay ? "repacked" : "ggml");
        }
done:
    free(wf); free(x); free(deq); free(W); free(R); free(scratch); free(v); free(ref); free(got);
}

static void check_logits(void) {
    check_qmat_type(TERN_GGML_Q8_0, 37, 544, 3);    // 17 blocks; 37 rows: two 16-row groups + 5 (padded)
    check_qmat_type(TERN_GGML_Q8_0, 9, 2560, 5);    // the 2B4T width; 5 tokens
    check_qmat_type(TERN_GGML_F16, 7, 300, 4);
    check_qmat_type(TERN_GGML_Q6_K, 23, 512, 2);
    check_qmat_type(TERN_GGML_Q5_K, 23, 768, 2);
    check_qmat_type(TERN_GGML_Q4_K, 23, 512, 3);
    check_qmat_type(TERN_GGML_F16, 13, 100, 2);     // a float tail of 4
    check_qmat_type(TERN_GGML_BF16, 13, 272, 2);
    check_qmat_type(TERN_GGML_F32, 13, 64, 1);
}

// ---------------------------------------------------------------- quantizer, rowops, vmath
static void check_quant(void) {
    float x[1100];
    int8_t got[1100];
    const int lens[] = {1, 3, 15, 16, 17, 31, 64, 100, 257, 1100};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (int pass = 0; pass < 4; pass++) {
            const int n = lens[li];
            for (int i = 0; i < n; i++) x[i] = pass == 3 ? 0.0f : frand(-3.0f, 3.0f) * (pass == 2 ? 1e-7f : 1.0f);
            if (pass == 1 && n >= 8) {   // max 127 exactly: s = 1, so these are ties (to even) and exact values
                x[0] = 127.0f; x[1] = 2.5f; x[2] = -3.5f; x[3] = 0.5f; x[4] = -0.5f; x[5] = -127.0f; x[6] = 126.5f; x[7] = -1.5f;
            }
            // reference: s = 127 / max(max|x|, 1e-5); q = clamp(round half to even(x * s))
            float mx = 0;
            for (int i = 0; i < n; i++) mx = fabsf(x[i]) > mx ? fabsf(x[i]) : mx;
            const float s = 127.0f / (mx > 1e-5f ? mx : 1e-5f);
            const float sg = tern_act_quantize_row_i8(x, n, got);
            int ok = memcmp(&s, &sg, sizeof s) == 0;
            for (int i = 0; i < n; i++) {
                float p = x[i] * s, r = nearbyintf(p);
                if (fabsf(p - truncf(p)) == 0.5f) r = 2.0f * nearbyintf(p / 2.0f);   // ties to even, spelled out
                r = r > 127.0f ? 127.0f : r < -128.0f ? -128.0f : r;
                ok &= got[i] == (int8_t)r;
            }
            check(ok, "activation quantizer: n %d, pass %d", n, pass);
            if (pass == 1 && n >= 8)
                check(got[1] == 2 && got[2] == -4 && got[3] == 0 && got[4] == 0 && got[6] == 126 && got[7] == -2, "quantizer ties: %d %d %d %d %d %d",
                      got[1], got[2], got[3], got[4], got[6], got[7]);
        }
}

static float lanes_ref(const float *a, const float *b, const float *c, int n) {   // the 16-lane order
    float acc[16] = {0};
    for (int i = 0; i < n; i++) {
        float p = a[i] * b[i];
        if (c) p = p * c[i];
        acc[i % 16] = acc[i % 16] + p;
    }
    for (int w = 8; w > 0; w /= 2)
        for (int j = 0; j < w; j++) acc[j] = acc[j] + acc[j + w];
    return acc[0];
}

static void check_rowops(void) {
    float a[200], b[200], c[200];
    for (int i = 0; i < 200; i++) { a[i] = frand(-2, 2); b[i] = frand(-2, 2); c[i] = frand(0.5f, 1.5f); }
    int ok = 1;
    for (int n = 0; n <= 200; n += (n < 40 ? 1 : 13)) {
        float r1 = tern_dot_lanes(a, b, n), w1 = lanes_ref(a, b, NULL, n);
        float r2 = tern_dot3_lanes(a, b, c, n), w2 = lanes_ref(a, b, c, n);
        float r3 = tern_sumsq_lanes(a, n), w3 = lanes_ref(a, a, NULL, n);
        ok &= check(memcmp(&r1, &w1, 4) == 0 && memcmp(&r2, &w2, 4) == 0 && memcmp(&r3, &w3, 4) == 0, "rowops, n %d: %.9g %.9g %.9g vs %.9g %.9g %.9g", n,
                    (double)r1, (double)r2, (double)r3, (double)w1, (double)w2, (double)w3);
    }
    (void)ok;
}

static void check_vmath(void) {
    enum { N = 2053 };
    float *x = xmalloc(sizeof(float) * N), *ref = xmalloc(sizeof(float) * N), *got = xmalloc(sizeof(float) * N), *sig = xmalloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = frand(-95.0f, 95.0f);
    const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.72283935546875f, 88.7228394f, -87.33654022216797f, -87.3365479f, 1e-30f};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) x[10 + 3 * i] = sp[i];
    check(tern_vmath_force(0) == 0, "vmath: plain level refused");
    const float ref_sum = tern_vexp_shift(x, 0.5f, ref, N);
    float ref_sums[50];
    for (int n = 1; n < 50; n++) ref_sums[n] = tern_vexp_shift(x + 100, 30.0f, NULL, n);
    tern_vsigmoid(x, sig, N);
    // accuracy of the plain level: <= 2 ulp against exp in double for results >= FLT_MIN
    double worst = 0;
    float worst_x = 0;
    for (int i = 0; i < N; i++) {
        const double want = exp((double)(x[i] - 0.5f));   // the shifted argument as the function sees it
        if (!(want >= 1.17549435e-38 && want <= 3.4e38)) continue;
        const float wf = (float)want, nx = nextafterf(wf, INFINITY);
        const double e = fabs((double)ref[i] - want) / ((double)nx - (double)wf);
        if (e > worst) { worst = e; worst_x = x[i] - 0.5f; }
    }
    check(worst <= 2.0, "vmath: plain exp error %.2f ulp at %.9g", worst, (double)worst_x);
    check(ref[10] == expf(-0.5f) || fabsf(ref[10] - expf(-0.5f)) < 1e-7f, "vmath: exp(-0.5)");
    int levels = 0;
    for (int lv = 1; lv <= 2; lv++) {
        if (tern_vmath_force(lv)) continue;
        levels++;
        const float s = tern_vexp_shift(x, 0.5f, got, N);
        check(memcmp(got, ref, sizeof(float) * N) == 0 && memcmp(&s, &ref_sum, 4) == 0, "vmath level %d: exp or its sum differs from plain C", lv);
        int ok = 1;
        for (int n = 1; n < 50; n++) {
            const float t = tern_vexp_shift(x + 100, 30.0f, NULL, n);
            ok &= memcmp(&t, &ref_sums[n], 4) == 0;
        }
        check(ok, "vmath level %d: row sums of 1..49 differ from plain C", lv);
        tern_vsigmoid(x, got, N);
        check(memcmp(got, sig, sizeof(float) * N) == 0, "vmath level %d: sigmoid differs from plain C", lv);
    }
#if defined(__aarch64__) || defined(__x86_64__)
    check(levels >= 1, "vmath: no vector level on this CPU");
#endif
    tern_vmath_force(-1);
    free(x); free(ref); free(got); free(sig);
}

// ---------------------------------------------------------------- runtime
static double rel_err(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static void check_runtime(tern_kernel_kind forced) {
    enum { T = 12, V = 300 };
    tern_rt_config cfg = {0};
    cfg.dim = 256; cfg.ffn_dim = 512; cfg.n_layers = 2; cfg.n_heads = 4; cfg.n_kv_heads = 2; cfg.vocab_size = V; cfg.seq_len = 32;
    tern_rt_model m;
    if (!check(build_random_model(&m, &cfg, 4242) == 0, "random model: %s", tern_last_error())) return;
    int toks[T + 1];
    for (int i = 0; i <= T; i++) toks[i] = (int)((i * 37 + 11) % V);
    tern_rt_state s;
    build_state(&s, &m, T, 0);
    tern_kernel_force(forced);
    float *batch = xmalloc(sizeof(float) * T * V), *one = xmalloc(sizeof(float) * T * V);
    memcpy(batch, forward(&m, &s, toks, T, 0, 1), sizeof(float) * T * V);
    for (int i = 0; i < T; i++) memcpy(one + (size_t)i * V, forward(&m, &s, toks + i, 1, i, 0), sizeof(float) * V);
    check(memcmp(batch, one, sizeof(float) * T * V) == 0, "%s: batched prefill != token-by-token decode", tern_kernel_name(tern_kernel_best()));
    const int saved = omp_get_max_threads();
    for (int team = 2; team <= 3; team++) {   // decode_one with a team (this model alone would run on 1 thread)
        omp_set_num_threads(team);
        tern_rt_state st;
        build_state(&st, &m, 1, 0);
        st.team = team;
        for (int i = 0; i < T; i++) memcpy(one + (size_t)i * V, forward(&m, &st, toks + i, 1, i, 0), sizeof(float) * V);
        check(memcmp(batch, one, sizeof(float) * T * V) == 0, "%s: decode with a team of %d differs", tern_kernel_name(tern_kernel_best()), team);
        free_state(&st);
    }
    omp_set_num_threads(saved);
    // the NLL of the sequence: compared across architectures by test_arm.sh
    double nll = 0;
    for (int i = 0; i < T; i++) nll -= logprob_of(batch + (size_t)i * V, V, toks[i + 1]);
    uint64_t h = 1469598103934665603ull;   // FNV-1a of the logits' bytes: equal hashes, equal bits
    for (size_t i = 0; i < sizeof(float) * T * V; i++) h = (h ^ ((const uint8_t *)batch)[i]) * 1099511628211ull;
    printf("rtcheck nll %.9f logits %016llx (kernel %s)\n", nll / T, (unsigned long long)h, tern_kernel_name(tern_kernel_best()));
    // greedy decoding of 20 tokens after the sequence (decode_one, the KV cache): the ids are
    // compared across architectures by test_arm.sh. A random model's tied embedding makes the
    // tokens it has seen its best continuations, so the argmax here skips every token already in
    // the sequence (a deterministic function of the logits that keeps the sequence varied).
    {
        tern_rt_state g;
        build_state(&g, &m, T, 0);
        const float *lg = forward(&m, &g, toks, T, 0, 0);
        char seen[V];
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < T; i++) seen[toks[i]] = 1;
        printf("rtcheck greedy");
        for (int i = 0; i < 20; i++) {
            int next = -1;
            for (int v = 0; v < V; v++)
                if (!seen[v] && (next < 0 || lg[v] > lg[next])) next = v;
            printf(" %d", next);
            seen[next] = 1;
            lg = forward(&m, &g, &next, 1, T + i, 0);
        }
        printf("\n");
        free_state(&g);
    }
    // all kinds: the SIMD ones (sharing the float helpers) give the same bits; plain is close
    float *same = NULL;
    for (int k = TERN_KERNEL_PLAIN; k < TERN_KERNEL_NKINDS; k++) {
        if (!tern_kernel_available((tern_kernel_kind)k)) continue;
        tern_kernel_force((tern_kernel_kind)k);
        const float *lg = forward(&m, &s, toks, T, 0, 1);
        check(rel_err(lg, batch, (long)T * V) < 1e-4, "%s: logits far from the %s run's", tern_kernel_name((tern_kernel_kind)k),
              tern_kernel_name(forced));
        if (k == TERN_KERNEL_PLAIN || k == TERN_KERNEL_AVX512VNNI) continue;
        if (!same) {
            same = xmalloc(sizeof(float) * T * V);
            memcpy(same, lg, sizeof(float) * T * V);
        } else {
            check(memcmp(same, lg, sizeof(float) * T * V) == 0, "%s: logits differ from the other SIMD kinds'", tern_kernel_name((tern_kernel_kind)k));
        }
    }
    tern_kernel_force(forced);
    free(same); free(batch); free(one);
    free_state(&s);
    free_model(&m);

    // bad files: one line naming the file, no crash
    char path[256];
    snprintf(path, sizeof path, "%s/rtcheck_bad_%d.gguf", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    const char *contents[2] = {"GGUF\x03\x00\x00\x00\x05", "NOTAGGUF-file-at-all......"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(path, "wb");
        if (!check(f != NULL, "cannot write %s", path)) return;
        fwrite(contents[i], 1, strlen(contents[i]), f);
        fclose(f);
        tern_rt_model bad;
        const int rc = build_model(&bad, path);
        check(rc == -1 && strstr(tern_last_error(), path) != NULL, "%s file: build_model gave %d, '%s'", i ? "foreign" : "truncated", rc,
              tern_last_error());
    }
    unlink(path);
}

int main(int argc, char **argv) {
    const char *kernel = NULL, *expect = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--kernel") && i + 1 < argc) kernel = argv[++i];
        else if (!strcmp(argv[i], "--expect-best") && i + 1 < argc) expect = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: rtcheck [--kernel K] [--expect-best K] [--quick]   K: %s\n"
                   "  runs the runtime's self-checks with kernel kind K (default: every kind this CPU has)\n",
                   TERN_KERNEL_NAMES);
            return 0;
        } else {
            fprintf(stderr, "rtcheck: unknown argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    unsetenv("TERN_KERNEL");
    tern_kernel_kind forced = TERN_KERNEL_AUTO;
    if (kernel) {
        if (tern_kernel_parse(kernel, &forced)) { fprintf(stderr, "rtcheck: --kernel %s: not one of %s\n", kernel, TERN_KERNEL_NAMES); return 2; }
        if (!tern_kernel_available(forced)) { fprintf(stderr, "rtcheck: kernel %s is not available on this CPU\n", kernel); return 2; }
    }
    check_kinds(expect);
    if (forced != TERN_KERNEL_AUTO) kinds[n_kinds++] = forced;
    else
        for (int k = TERN_KERNEL_PLAIN; k < TERN_KERNEL_NKINDS; k++)
            if (tern_kernel_available((tern_kernel_kind)k)) kinds[n_kinds++] = (tern_kernel_kind)k;
    const double t0 = tern_time();
    check_products(quick);
    check_logits();
    check_quant();
    check_rowops();
    check_vmath();
    check_runtime(forced);
    char list[128] = "";
    for (int i = 0; i < n_kinds; i++) {
        strcat(list, i ? "," : "");
        strcat(list, tern_kernel_name(kinds[i]));
    }
    printf("rtcheck: kernel %s (this CPU's best: %s): %ld checks passed, %ld failed (%.1f s)\n", list, tern_kernel_name(tern_kernel_best()),
           n_pass, n_fail, tern_time() - t0);
    return n_fail ? 1 : 0;
}
