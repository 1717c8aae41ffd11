// util.h — errors, timing, small helpers shared by the library and the runtime.
// libc-only (part of the standalone runtime).
#ifndef TERN_UTIL_H
#define TERN_UTIL_H
#include <stddef.h>
#include <stdint.h>

// Error reporting. Library functions that can fail on bad input return -1 (or NULL) and set a
// one-line message "path: problem" with tern_error(); programs print tern_last_error() and exit 1.
// The message is thread-local and always one line: control characters that come from file
// contents (names with '\n', '\r', ...) are replaced by '?'.
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

// OpenMP wait policy. libgomp's idle workers spin (about 300k iterations) after each parallel
// region before they sleep. On a machine whose cores other processes also want, a spinning team
// loses a scheduler time slice at nearly every barrier: measured on a 2-core machine at load 16, a
// 135M-parameter training step took 32.5 s spinning and 5.4 s waiting passively (2 threads each).
// tern_omp_busy: 1 when a team of `threads` (> 1) on `ncpu` online CPUs should wait passively
// because the 1-minute load average says others compete for them: load1 + threads > ncpu + 0.5.
int tern_omp_busy(double load1, int ncpu, int threads);
// Called first thing in a program's main (the OpenMP runtime reads OMP_WAIT_POLICY when it loads,
// so the program restarts itself through /proc/self/exe with it set). Unless the user set
// OMP_WAIT_POLICY, or an MPI launcher started the process, or this is already the restarted
// process: when `always` or tern_omp_busy(load average, CPUs, OMP_NUM_THREADS or the CPUs), set
// OMP_WAIT_POLICY=passive and restart. Returns (doing nothing) when it does not restart.
void tern_omp_wait_policy(char **argv, int always);
// The policy in effect, one phrase for "# compute:" lines, e.g. "OpenMP workers wait passively
// (machine busy at start: load 15.2 on 2 CPUs)" or "OpenMP workers spin (libgomp's default)".
const char *tern_omp_wait_describe(char *buf, size_t n);

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

// Whole-file read into a malloc'd buffer (+1 NUL byte). Returns NULL and sets the error. Only
// regular files (tern_open_regular): a directory or FIFO is an error, never a hang.
char *tern_read_file(const char *path, size_t *size);

// Open an input file for reading: O_RDONLY | O_NONBLOCK (so a FIFO or device cannot block the
// open), fstat, and refuse anything that is not a regular file ("path: is a directory",
// "path: not a regular file (FIFO)"); then clear O_NONBLOCK. Returns the fd and *size (may be
// NULL), or -1 with tern_error.
int tern_open_regular(const char *path, size_t *size);
// Check an output path before writing it (programs' -o, writers' targets): an existing directory,
// device, FIFO or socket is refused ("path: is a directory" / "path: not a regular file (character
// device); refusing to replace it"), so `-o /dev/null` as root never replaces the device node.
// A missing file or an existing regular file (or a symlink to one) is fine. 0 or -1.
int tern_check_output_path(const char *path);

// 64-bit content hash: the XXH64 algorithm (seed 0 unless given). ~10 GB/s on one core of a
// current x86-64, far faster than the disk, with 64-bit collision resistance for random damage:
// the checkpoint checksum (formats/checkpoint.h). Streaming: init, update (any chunking gives the
// same result), final.
typedef struct {
    uint64_t v[4], total;
    uint8_t buf[32];
    unsigned nbuf;
    uint64_t seed;
} tern_hash64_state;
void tern_hash64_init(tern_hash64_state *s, uint64_t seed);
void tern_hash64_update(tern_hash64_state *s, const void *data, size_t n);
uint64_t tern_hash64_final(const tern_hash64_state *s);
uint64_t tern_hash64(const void *data, size_t n, uint64_t seed);

// Set of strings for duplicate checks in O(1) per insert (open addressing, grows as needed).
// Stores pointers: the strings must outlive the set.
typedef struct {
    const char **slot;
    size_t cap, n;
} tern_strset;
void tern_strset_init(tern_strset *s);
// 1 if inserted, 0 if an equal string was already present.
int tern_strset_add(tern_strset *s, const char *str);
int tern_strset_has(const tern_strset *s, const char *str);
void tern_strset_free(tern_strset *s);

// Overflow-checked size arithmetic: 0 and *out = a*b (a+b), or -1 on overflow (no error set).
static inline int tern_mul_size(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out) ? -1 : 0; }
static inline int tern_add_size(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out) ? -1 : 0; }
// Parse helpers that reject trailing garbage: return 0 or -1.
int tern_parse_long(const char *s, long *out);
int tern_parse_float(const char *s, float *out);

// Half precision conversion (IEEE 754 binary16, round to nearest even).
uint16_t tern_fp32_to_fp16(float f);
float tern_fp16_to_fp32(uint16_t h);

#endif
