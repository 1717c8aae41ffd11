// bench_kernels.c — micro-benchmark of the ternary kernels against the machine's limits.
//
// Prints (medians of several repeats):
//   - memory read bandwidth (GB/s): streaming read of a large buffer, 1 and 2 threads
//   - VNNI integer peak (GOPS, 1 op = 1 multiply or 1 add): register-only vpdpbusd loop, 1 and 2 threads
//   - for W [rows, cols] = 2560x2560, 6912x2560, 2560x6912 and each kernel kind:
//       N=1 (decode matvec): GB/s of packed weight bytes and % of read bandwidth (a working set
//       far larger than any cache: many copies of the matrix, cycled);
//       N=64 / N=128 (prefill matmul): GOPS (2*rows*cols*N / time) and % of the VNNI peak
//   - model decode: one token through 30 layers of a 2560/6912 BitNet-2B-shaped stack of the 7
//     BitLinear matrices per layer (q,k,v,o 2560/640 rows, gate/up 6912, down 2560): GB/s, % of
//     bandwidth and the tok/s that the matmuls alone allow.
// Threads: kernels run with OMP_NUM_THREADS threads; percentages compare the kernel's median with
// the best repeat of the limit measured at the same thread count (conservative on a busy machine).
//
// usage: tern-bench_kernels [--reps N] [--quick] [--decode-only] [--kind K]   (K: one of TERN_KERNEL_NAMES)
#include "kernels/kernels.h"
#include "membench.h"
#include "util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


// ---------------------------------------------------------------- kernels
static void fill_tmat(tern_tmat *m, int rows, int cols, uint64_t seed) {
    int8_t *w = tern_xmalloc((size_t)rows * cols);
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = (int8_t)((int)(tern_rng_u64(&r) % 3) - 1);
    if (tern_tmat_from_i8(m, w, rows, cols, 0.05f)) tern_fatal("%s", tern_last_error());
    free(w);
}
static void clone_tmat(tern_tmat *dst, const tern_tmat *src) {
    *dst = *src;
    dst->w = tern_aligned_alloc(tern_tmat_weight_bytes(src));
    memcpy(dst->w, src->w, tern_tmat_weight_bytes(src));
}
// the matrices' weights in one huge-page buffer, as the runtime lays them out (tern_tmat_gather)
static uint8_t *gather_all(tern_tmat *mats, int n) {
    tern_tmat **p = tern_xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = &mats[i];
    uint8_t *buf = tern_tmat_gather(p, n);
    free(p);
    return buf;
}
static int8_t *rand_x(int N, int cols, float **sx) {
    int8_t *x = tern_xmalloc((size_t)N * cols);
    tern_rng r;
    tern_rng_seed(&r, 99);
    for (size_t i = 0; i < (size_t)N * cols; i++) x[i] = (int8_t)(int)(tern_rng_u64(&r) % 255 - 127);
    *sx = tern_xmalloc((size_t)N * sizeof(float));
    for (int n = 0; n < N; n++) (*sx)[n] = 10.0f + (float)n;
    return x;
}

int main(int argc, char **argv) {
    int reps = 7, quick = 0, decode_only = 0;
    tern_kernel_kind only = TERN_KERNEL_AUTO;
    for (int i = 1; i < argc; i++) {
        long v;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tern-bench_kernels [--reps N (1..31)] [--quick] [--decode-only] [--kind K]   K: %s\n", TERN_KERNEL_NAMES);
            return 0;
        }
        if (!strcmp(argv[i], "--reps") && i + 1 < argc && tern_parse_long(argv[i + 1], &v) == 0 && v >= 1 && v <= 31) { reps = (int)v; i++; }
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--decode-only")) decode_only = 1;
        else if (!strcmp(argv[i], "--kind") && i + 1 < argc && tern_kernel_parse(argv[i + 1], &only) == 0) i++;
        else { fprintf(stderr, "tern-bench_kernels: bad argument '%s' (usage: [--reps N] [--quick] [--decode-only] [--kind %s])\n", argv[i], TERN_KERNEL_NAMES); return 2; }
    }
    const int T = omp_get_max_threads();
    printf("tern kernel benchmark: %d thread(s) for the kernels (OMP_NUM_THREADS), medians of %d repeats, auto kind = %s\n", T, reps,
           tern_kernel_name(tern_kernel_best()));

    // bandwidth
    size_t bn = (size_t)(quick ? 256 : 512) << 20;
    uint8_t *buf = tern_alloc_huge(bn);   // huge pages, like the weights the kernels stream
    memset(buf, 1, bn);
    // percentages below use the best repeat of these limits (a conservative yardstick on a
    // shared machine, where a busy neighbour can only make a limit look lower)
    double bw[3] = {0};
    for (int t = 1; t <= 2; t++) {
        double med = tern_membench_read(buf, bn, t, reps, &bw[t]);
        printf("memory read bandwidth, %d thread%s: %7.1f GB/s median, %7.1f best  (%zu MiB streaming read)\n", t, t > 1 ? "s" : " ",
               med, bw[t], bn >> 20);
    }
    free(buf);
    double peak[3] = {0};
    if (tern_kernel_available(TERN_KERNEL_AVX512VNNI)) {
        for (int t = 1; t <= 2; t++) {
            double med = tern_membench_vnni_peak(t, reps, &peak[t]);
            printf("VNNI peak (vpdpbusd zmm), %d thread%s: %7.1f GOPS median, %7.1f best\n", t, t > 1 ? "s" : " ", med, peak[t]);
        }
    } else {
        printf("VNNI peak: not available on this CPU\n");
    }
    const double bwT = bw[T >= 2 ? 2 : 1], peakT = peak[T >= 2 ? 2 : 1];

    const int shapes[3][2] = {{2560, 2560}, {6912, 2560}, {2560, 6912}};
    const int Ns[3] = {1, 64, 128};
    printf("\n%-8s %-11s %5s %9s %9s %9s %8s\n", "kind", "W rows x cols", "N", "ms", "GB/s", "GOPS", "% limit");
    for (int kk = TERN_KERNEL_PLAIN; kk < TERN_KERNEL_NKINDS; kk++) {
        tern_kernel_kind k = (tern_kernel_kind)kk;
        if (!tern_kernel_available(k) || (only != TERN_KERNEL_AUTO && only != k)) continue;
        for (int s = 0; s < 3; s++) {
            const int rows = shapes[s][0], cols = shapes[s][1];
            tern_tmat base;
            fill_tmat(&base, rows, cols, 1 + (uint64_t)s);
            const size_t wb = tern_tmat_weight_bytes(&base);
            // copies so that the N=1 working set (>= 384 MiB) is far beyond any cache
            int ncopy = (int)(((size_t)(quick ? 192 : 384) << 20) / wb) + 1;
            tern_tmat *cp = tern_xmalloc((size_t)ncopy * sizeof *cp);
            cp[0] = base;
            for (int c = 1; c < ncopy; c++) clone_tmat(&cp[c], &base);
            uint8_t *arena = gather_all(cp, ncopy);
            for (int ni = 0; ni < (decode_only ? 1 : 3); ni++) {
                const int N = Ns[ni];
                float *sx;
                int8_t *x = rand_x(N, cols, &sx);
                float *out = tern_xmalloc((size_t)N * rows * sizeof(float));
                int r_here = (k == TERN_KERNEL_PLAIN && N > 1) ? (reps < 3 ? reps : 3) : reps;
                double t[32];
                if (N == 1) {
                    // one pass over all copies per repeat
                    for (int c = 0; c < ncopy; c++) tern_tmat_mul(&cp[c], x, sx, 1, out, k);   // warm-up
                    for (int r = 0; r < r_here; r++) {
                        double t0 = tern_time();
                        for (int c = 0; c < ncopy; c++) tern_tmat_mul(&cp[c], x, sx, 1, out, k);
                        t[r] = (tern_time() - t0) / ncopy;
                    }
                } else {
                    tern_tmat_mul(&cp[0], x, sx, N, out, k);
                    for (int r = 0; r < r_here; r++) {
                        double t0 = tern_time();
                        tern_tmat_mul(&cp[r % ncopy], x, sx, N, out, k);
                        t[r] = tern_time() - t0;
                    }
                }
                double tm = tern_median(t, r_here);
                double gbs = (double)wb / tm / 1e9, gops = 2.0 * rows * cols * N / tm / 1e9;
                if (N == 1)
                    printf("%-8s %5d x %-5d %5d %9.3f %9.1f %9.1f %7.1f%% of read BW\n", tern_kernel_name(k), rows, cols, N, tm * 1e3, gbs,
                           gops, 100.0 * gbs / bwT);
                else if (peakT > 0)
                    printf("%-8s %5d x %-5d %5d %9.3f %9.1f %9.1f %7.1f%% of VNNI peak\n", tern_kernel_name(k), rows, cols, N, tm * 1e3, gbs,
                           gops, 100.0 * gops / peakT);
                else
                    printf("%-8s %5d x %-5d %5d %9.3f %9.1f %9.1f\n", tern_kernel_name(k), rows, cols, N, tm * 1e3, gbs, gops);
                free(x); free(sx); free(out);
            }
            for (int c = 0; c < ncopy; c++) tern_tmat_free(&cp[c]);
            free(cp);
            free(arena);
        }
    }

    // model decode: 30 layers x 7 matrices, BitNet-b1.58-2B-4T shapes
    const int L = quick ? 10 : 30, dim = 2560, ffn = 6912, kv = 640;
    const int lr[7] = {dim, kv, kv, dim, ffn, ffn, dim}, lc[7] = {dim, dim, dim, dim, dim, dim, ffn};
    tern_tmat proto[7];
    for (int j = 0; j < 7; j++) fill_tmat(&proto[j], lr[j], lc[j], 50 + (uint64_t)j);
    tern_tmat *layers = tern_xmalloc((size_t)L * 7 * sizeof *layers);
    size_t total = 0;
    for (int l = 0; l < L; l++)
        for (int j = 0; j < 7; j++) {
            clone_tmat(&layers[l * 7 + j], &proto[j]);
            total += tern_tmat_weight_bytes(&proto[j]);
        }
    uint8_t *arena = gather_all(layers, L * 7);
    float *sx;
    int8_t *x = rand_x(1, ffn, &sx);
    float *out = tern_xmalloc((size_t)ffn * sizeof(float));
    printf("\nmodel decode (matmuls only): %d layers of 2560/6912 (q,k,v,o,gate,up,down), %.1f MiB packed weights\n", L, total / 1048576.0);
    for (int kk = TERN_KERNEL_PLAIN; kk < TERN_KERNEL_NKINDS; kk++) {
        tern_kernel_kind k = (tern_kernel_kind)kk;
        if (!tern_kernel_available(k) || (only != TERN_KERNEL_AUTO && only != k)) continue;
        double t[32];
        int r_here = k == TERN_KERNEL_PLAIN ? (reps < 3 ? reps : 3) : reps;
        for (int r = -1; r < r_here; r++) {
            double t0 = tern_time();
            for (int i = 0; i < L * 7; i++) tern_tmat_mul(&layers[i], x, sx, 1, out, k);
            if (r >= 0) t[r] = tern_time() - t0;
        }
        double tm = tern_median(t, r_here), gbs = (double)total / tm / 1e9;
        printf("%-8s %8.2f ms/token  %7.1f GB/s  %5.1f%% of read BW  -> %6.1f tok/s (matmuls only)\n", tern_kernel_name(k), tm * 1e3, gbs,
               100.0 * gbs / bwT, 1.0 / tm);
    }
    for (int i = 0; i < L * 7; i++) tern_tmat_free(&layers[i]);
    for (int j = 0; j < 7; j++) tern_tmat_free(&proto[j]);
    free(layers); free(arena); free(x); free(sx); free(out);
    return 0;
}
