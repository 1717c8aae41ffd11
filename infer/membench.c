// membench.c — read bandwidth and VNNI peak micro-benchmarks (see membench.h).
#include "membench.h"
#include "kernels/kernels.h"
#include "util.h"
#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MB_X86 1
#endif
#include <string.h>

#define MAX_REPS 64
static volatile uint64_t g_sink;

// ---------------------------------------------------------------- streaming read
// Three read loops; which one the memory system serves fastest varies with the machine (and, on a
// shared host, with the moment), so each repeat runs all that the CPU has and keeps the fastest.
#ifdef MB_X86
__attribute__((target("avx512f"))) static uint64_t read_avx512(const uint8_t *p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    // lanes summed as unsigned (wrapping): the header's _mm512_reduce_add_epi64 adds signed lanes
    uint64_t lane[8], s = 0;
    _mm512_storeu_si512((void *)lane, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    for (int i = 0; i < 8; i++) s += lane[i];
    return s;
}

__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a0, 0) + (uint64_t)_mm256_extract_epi64(a0, 3);
}
#endif

static uint64_t read_plain(const uint8_t *p, size_t n) {   // 8-byte words (the compiler vectorizes it)
    uint64_t a = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) { uint64_t v; memcpy(&v, p + i, 8); a += v; }
    return a;
}

static double finish(double *t, int reps, double work, double *best) {
    double fastest = t[0];
    for (int r = 1; r < reps; r++) fastest = t[r] < fastest ? t[r] : fastest;
    if (best) *best = work / fastest / 1e9;
    return work / tern_median(t, reps) / 1e9;
}

static double read_once(const uint8_t *buf, size_t chunk, int threads, int kind) {
    double t0 = tern_time();
#pragma omp parallel num_threads(threads)
    {
        const uint8_t *p = buf + (size_t)omp_get_thread_num() * chunk;
#ifdef MB_X86
        uint64_t s = kind == 2 ? read_avx512(p, chunk) : kind == 1 ? read_avx2(p, chunk) : read_plain(p, chunk);
#else
        (void)kind;
        uint64_t s = read_plain(p, chunk);
#endif
#pragma omp atomic
        g_sink ^= s;
    }
    return tern_time() - t0;
}

double tern_membench_read(const uint8_t *buf, size_t n, int threads, int reps, double *best) {
    double t[MAX_REPS];
    reps = reps < 1 ? 1 : reps > MAX_REPS ? MAX_REPS : reps;
    threads = threads < 1 ? 1 : threads;
#ifdef MB_X86
    const int top = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    const int top = 0;
#endif
    const size_t chunk = n / (size_t)threads / 4096 * 4096;   // per thread
    for (int r = 0; r < reps; r++) {
        t[r] = read_once(buf, chunk, threads, 0);
        for (int kind = 1; kind <= top; kind++) {
            double tk = read_once(buf, chunk, threads, kind);
            t[r] = tk < t[r] ? tk : t[r];
        }
    }
    return finish(t, reps, (double)chunk * threads, best);
}

// ---------------------------------------------------------------- VNNI peak
#define VNNI_ITERS 2000000L
#ifdef MB_X86
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), noinline)) static int32_t vnni_loop(long iters, int seed) {
    __m512i a = _mm512_set1_epi8((char)(seed | 1)), b = _mm512_set1_epi8((char)(seed + 2));
    // 16 independent accumulator chains with distinct starting values (nothing to merge or fold)
#define VN_DECL(j) __m512i c##j = _mm512_set1_epi32(j * 7 + seed);
#define VN_STEP(j) c##j = _mm512_dpbusd_epi32(c##j, a, b);
#define VN_ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
    VN_ALL(VN_DECL)
    for (long i = 0; i < iters; i++) {
        VN_ALL(VN_STEP)
        __asm__ volatile("" : "+v"(a), "+v"(b));   // a, b opaque: the loop cannot be folded
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)),
                                             _mm512_add_epi32(_mm512_add_epi32(c12, c13), _mm512_add_epi32(c14, c15))));
    // the accumulators wrap by design; sum the lanes as unsigned (the header's
    // _mm512_reduce_add_epi32 adds signed ints: undefined behaviour on overflow)
    uint32_t lane[16], sum = 0;
    _mm512_storeu_si512((void *)lane, s);
    for (int i = 0; i < 16; i++) sum += lane[i];
    return (int32_t)sum;
}
#endif

double tern_membench_vnni_peak(int threads, int reps, double *best) {
#ifndef MB_X86
    (void)threads; (void)reps;
    if (best) *best = 0;
    return 0;
#else
    if (!tern_kernel_available(TERN_KERNEL_AVX512VNNI)) {
        if (best) *best = 0;
        return 0;
    }
    double t[MAX_REPS];
    reps = reps < 1 ? 1 : reps > MAX_REPS ? MAX_REPS : reps;
    threads = threads < 1 ? 1 : threads;
    for (int r = 0; r < reps; r++) {
        double t0 = tern_time();
#pragma omp parallel num_threads(threads)
        {
            int32_t s = vnni_loop(VNNI_ITERS, omp_get_thread_num());
#pragma omp atomic
            g_sink ^= (uint64_t)(uint32_t)s;
        }
        t[r] = tern_time() - t0;
    }
    // 16 vpdpbusd per iteration, each 64 u8*s8 multiplies + 64 adds
    return finish(t, reps, (double)VNNI_ITERS * 16 * 128 * threads, best);
#endif
}
