// membench.h — the machine's limits that the benchmarks compare against (libc/OpenMP only):
// streaming read bandwidth and the VNNI integer peak. Used by tern-bench and tern-bench_kernels.
#ifndef TERN_MEMBENCH_H
#define TERN_MEMBENCH_H
#include <stddef.h>
#include <stdint.h>

// Streaming read of buf[n] (64-byte aligned) split over `threads` OpenMP threads. A repeat reads
// the buffer once with each loop the CPU can run (AVX-512, AVX2 on x86; 8-byte words; 4 accumulators) and
// keeps the fastest, so the figure is the best read rate this machine shows, a ceiling for the
// kernels. Runs `reps` repeats (<= 64); returns the median GB/s, the fastest in *best (if non-NULL).
double tern_membench_read(const uint8_t *buf, size_t n, int threads, int reps, double *best);

// Register-only vpdpbusd (zmm) loop on `threads` threads: integer GOPS (1 op = 1 multiply or
// 1 add; a vpdpbusd is 64 multiplies + 64 adds). Median of `reps` (<= 64), fastest in *best.
// Returns 0 (and *best = 0) when the CPU has no AVX-512 VNNI (always on non-x86 builds).
double tern_membench_vnni_peak(int threads, int reps, double *best);

#endif
