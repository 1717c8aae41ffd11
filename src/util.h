// util.h — errors, timing, small helpers shared by the library and the runtime.
// libc-only (part of the standalone runtime).
#ifndef TERN_UTIL_H
#define TERN_UTIL_H
#include <stddef.h>
#include <stdint.h>

// Error reporting. Library functions that can fail on bad input return -1 (or NULL) and set a
// one-line message "path: problem" with tern_error(); programs print tern_last_error() and exit 1.
// The message is thread-local.
void tern_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *tern_last_error(void);
// Unrecoverable (programming error or resource exhaustion): print "tern: message" and exit(1).
void tern_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
// A function tern_fatal calls with the message after printing it and before exit(1) (NULL: none).
// The MPI layer (dist/dist.h) uses it to tell rank 0 why this rank is going down.
void tern_set_fatal_hook(void (*hook)(const char *msg));

void *tern_xmalloc(size_t n);            // malloc or tern_fatal
void *tern_xcalloc(size_t n, size_t sz); // calloc or tern_fatal
void *tern_aligned_alloc(size_t n);      // 64-byte aligned, or tern_fatal; free with free()
// For large buffers streamed end to end (weights read once per decoded token): from 2 MiB up,
// 2 MiB aligned and marked for transparent huge pages (madvise), so a pass over them takes 512x
// fewer TLB misses; smaller ones as tern_aligned_alloc. Free with free().
void *tern_alloc_huge(size_t n);

double tern_time(void);                  // monotonic seconds
// Median of v[n] (sorts v in place, ascending; mean of the middle two for even n). Benchmarks.
double tern_median(double *v, int n);

// Deterministic RNG (xorshift64*): state is one uint64, saved in checkpoints.
typedef struct { uint64_t s; } tern_rng;
void tern_rng_seed(tern_rng *r, uint64_t seed);
uint64_t tern_rng_u64(tern_rng *r);
float tern_rng_uniform(tern_rng *r);     // [0, 1)
float tern_rng_normal(tern_rng *r);      // N(0, 1), Box-Muller

// Atomic file writes: write everything to tern_tmp_path(path) (same directory), then
// tern_commit_file() fsyncs it and renames it over path (and fsyncs the directory); on any error
// call tern_discard_file() so no half-written file is left. Returns 0 or -1 (tern_error set).
void tern_tmp_path(const char *path, char *tmp, size_t tmpsz);
int tern_commit_file(const char *tmp, const char *path);
void tern_discard_file(const char *tmp);

// Whole-file read into a malloc'd buffer (+1 NUL byte). Returns NULL and sets the error.
char *tern_read_file(const char *path, size_t *size);
// Parse helpers that reject trailing garbage: return 0 or -1.
int tern_parse_long(const char *s, long *out);
int tern_parse_float(const char *s, float *out);

// Half precision conversion (IEEE 754 binary16, round to nearest even).
uint16_t tern_fp32_to_fp16(float f);
float tern_fp16_to_fp32(uint16_t h);

#endif
