// util.c — errors, timing, RNG, atomic files, fp16. libc-only (runtime too).
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char err_buf[1024];

void tern_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    // one line, whatever a file's names contain: control characters (a key with '\n') become '?'
    for (char *p = err_buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

const char *tern_last_error(void) { return err_buf[0] ? err_buf : "unknown error"; }

static void (*fatal_hook)(const char *msg);

void tern_set_fatal_hook(void (*hook)(const char *msg)) { fatal_hook = hook; }

void tern_fatal(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tern: %s\n", msg);
    if (fatal_hook) fatal_hook(msg);
    exit(1);
}

void *tern_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) tern_fatal("out of memory allocating %zu bytes", n);
    return p;
}

void *tern_xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) tern_fatal("out of memory allocating %zu x %zu bytes", n, sz);
    return p;
}

void *tern_aligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64) != 0) tern_fatal("out of memory allocating %zu bytes", n);
    return p;
}

void *tern_alloc_huge(size_t n) {
    const size_t hp = (size_t)2 << 20;
    if (n < hp) return tern_aligned_alloc(n);
    const size_t sz = (n + hp - 1) / hp * hp;
    void *p = NULL;
    if (posix_memalign(&p, hp, sz) != 0) tern_fatal("out of memory allocating %zu bytes", n);
#ifdef MADV_HUGEPAGE
    madvise(p, sz, MADV_HUGEPAGE);   // advice only: without THP the pages stay 4 KiB
#endif
    return p;
}

double tern_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double tern_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int tern_omp_busy(double load1, int ncpu, int threads) {
    if (threads <= 1 || ncpu <= 0 || !(load1 >= 0.0)) return 0; // one thread has no barrier to wait at
    return load1 + threads > ncpu + 0.5;
}

#define TERN_OMP_REEXEC "TERN_OMP_REEXEC"   // set in the restarted process: why it waits passively

void tern_omp_wait_policy(char **argv, int always) {
    if (getenv("OMP_WAIT_POLICY") || getenv(TERN_OMP_REEXEC)) return;
    // under mpirun (Open MPI, PMIx, Hydra) the launcher owns the process: never exec behind it
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK")) return;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long threads = ncpu;
    const char *e = getenv("OMP_NUM_THREADS");   // "4" or "4,2": the outer team counts
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (end != e && v > 0) threads = v;
    }
    double load[1];
    int have_load = getloadavg(load, 1) == 1;
    char why[96];
    if (always) snprintf(why, sizeof why, "always");
    else if (have_load && ncpu > 0 && ncpu < 1 << 20 && tern_omp_busy(load[0], (int)ncpu, threads > 1 << 20 ? 1 << 20 : (int)threads))
        snprintf(why, sizeof why, "machine busy at start: load %.1f on %ld CPUs", load[0], ncpu);
    else return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv(TERN_OMP_REEXEC, why, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OMP_WAIT_POLICY");   // no /proc: carry on with the default policy
    unsetenv(TERN_OMP_REEXEC);
}

const char *tern_omp_wait_describe(char *buf, size_t n) {
    const char *why = getenv(TERN_OMP_REEXEC), *pol = getenv("OMP_WAIT_POLICY");
    if (why && pol && !strcmp(pol, "passive"))
        snprintf(buf, n, "OpenMP workers wait passively (%s)", strcmp(why, "always") ? why : "this program's default");
    else if (pol && *pol) snprintf(buf, n, "OpenMP wait policy %s (OMP_WAIT_POLICY)", pol);
    else snprintf(buf, n, "OpenMP workers spin (libgomp's default)");
    return buf;
}

void tern_rng_seed(tern_rng *r, uint64_t seed) {
    // splitmix64 to spread the seed; never zero
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545F4914F6CDD1Dull;
}

uint64_t tern_rng_u64(tern_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

float tern_rng_uniform(tern_rng *r) { return (tern_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float tern_rng_normal(tern_rng *r) {
    float u1 = tern_rng_uniform(r), u2 = tern_rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

void tern_tmp_path(const char *path, char *tmp, size_t tmpsz) {
    snprintf(tmp, tmpsz, "%s.tmp.%ld", path, (long)getpid());
}

int tern_commit_file(const char *tmp, const char *path) {
    if (tern_check_output_path(path) != 0) { tern_discard_file(tmp); return -1; }
    int fd = open(tmp, O_RDONLY);
    if (fd < 0) { tern_error("%s: cannot reopen temporary file: %s", path, strerror(errno)); tern_discard_file(tmp); return -1; }
    if (fsync(fd) != 0) { tern_error("%s: fsync failed: %s", path, strerror(errno)); close(fd); tern_discard_file(tmp); return -1; }
    close(fd);
    if (rename(tmp, path) != 0) { tern_error("%s: rename failed: %s", path, strerror(errno)); tern_discard_file(tmp); return -1; }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return 0;
}

void tern_discard_file(const char *tmp) { unlink(tmp); }

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "directory" : S_ISFIFO(m) ? "FIFO" : S_ISCHR(m) ? "character device" : S_ISBLK(m) ? "block device"
         : S_ISSOCK(m) ? "socket" : "special file";
}

int tern_open_regular(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EISDIR) tern_error("%s: is a directory", path);
        else tern_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        tern_error("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) tern_error("%s: is a directory", path);
        else tern_error("%s: not a regular file (%s)", path, file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size) *size = (size_t)st.st_size;
    return fd;
}

int tern_check_output_path(const char *path) {
    if (!path || !*path) { tern_error("empty output path"); return -1; }
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return 0;   // a new file (its directory is checked when it is created)
        tern_error("%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode)) return 0;
    if (S_ISDIR(st.st_mode)) tern_error("%s: is a directory", path);
    else tern_error("%s: not a regular file (%s); refusing to replace it", path, file_kind(st.st_mode));
    return -1;
}

char *tern_read_file(const char *path, size_t *size) {
    size_t n;
    int fd = tern_open_regular(path, &n);
    if (fd < 0) return NULL;
    if (n > (size_t)PTRDIFF_MAX - 1) { tern_error("%s: too large (%zu bytes)", path, n); close(fd); return NULL; }
    char *buf = malloc(n + 1);
    if (!buf) { tern_error("%s: out of memory (%zu bytes)", path, n); close(fd); return NULL; }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            tern_error("%s: read failed%s%s", path, r < 0 ? ": " : " (file shrank while reading)", r < 0 ? strerror(errno) : "");
            free(buf);
            close(fd);
            return NULL;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    if (size) *size = n;
    return buf;
}

int tern_parse_long(const char *s, long *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int tern_parse_float(const char *s, float *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

uint16_t tern_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0)); // inf / nan
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);                           // overflow -> inf
    if (e <= 0) {                                                              // subnormal or zero
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; // may carry into exponent: correct
    return (uint16_t)(sign | h);
}

float tern_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
    if (exp == 0) {
        if (mant == 0) x = sign;
        else { // subnormal
            int e = -1;
            do { mant <<= 1; e++; } while (!(mant & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) x = sign | 0x7f800000u | (mant << 13);
    else x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

// ---- XXH64 (algorithm as specified by its author; written here from the specification) ----------
#define P64_1 0x9E3779B185EBCA87ull
#define P64_2 0xC2B2AE3D27D4EB4Full
#define P64_3 0x165667B19E3779F9ull
#define P64_4 0x85EBCA77C2B2AE63ull
#define P64_5 0x27D4EB2F165667C5ull

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tern_hash64 reads words little-endian; add byte swaps for a big-endian host"
#endif
static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }   // little-endian hosts
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t h64_round(uint64_t acc, uint64_t in) { return rotl64(acc + in * P64_2, 31) * P64_1; }
static inline uint64_t h64_merge(uint64_t acc, uint64_t v) { return (acc ^ h64_round(0, v)) * P64_1 + P64_4; }

void tern_hash64_init(tern_hash64_state *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P64_1 + P64_2;
    s->v[1] = seed + P64_2;
    s->v[2] = seed;
    s->v[3] = seed - P64_1;
}

static void h64_stripes(uint64_t *v, const uint8_t *p, size_t n) {   // n multiple of 32
    uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
    for (size_t i = 0; i < n; i += 32) {
        a = h64_round(a, rd64(p + i));
        b = h64_round(b, rd64(p + i + 8));
        c = h64_round(c, rd64(p + i + 16));
        d = h64_round(d, rd64(p + i + 24));
    }
    v[0] = a; v[1] = b; v[2] = c; v[3] = d;
}

void tern_hash64_update(tern_hash64_state *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->total += n;
    if (s->nbuf) {
        size_t k = 32 - s->nbuf < n ? 32 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += (unsigned)k;
        p += k;
        n -= k;
        if (s->nbuf < 32) return;
        h64_stripes(s->v, s->buf, 32);
        s->nbuf = 0;
    }
    size_t body = n / 32 * 32;
    if (body) h64_stripes(s->v, p, body);
    memcpy(s->buf, p + body, n - body);
    s->nbuf = (unsigned)(n - body);
}

uint64_t tern_hash64_final(const tern_hash64_state *s) {
    uint64_t h;
    if (s->total >= 32) {
        h = rotl64(s->v[0], 1) + rotl64(s->v[1], 7) + rotl64(s->v[2], 12) + rotl64(s->v[3], 18);
        for (int i = 0; i < 4; i++) h = h64_merge(h, s->v[i]);
    } else {
        h = s->seed + P64_5;
    }
    h += s->total;
    const uint8_t *p = s->buf, *e = s->buf + s->nbuf;
    for (; p + 8 <= e; p += 8) h = rotl64(h ^ h64_round(0, rd64(p)), 27) * P64_1 + P64_4;
    if (p + 4 <= e) { h = rotl64(h ^ (uint64_t)rd32(p) * P64_1, 23) * P64_2 + P64_3; p += 4; }
    for (; p < e; p++) h = rotl64(h ^ (uint64_t)*p * P64_5, 11) * P64_1;
    h ^= h >> 33;
    h *= P64_2;
    h ^= h >> 29;
    h *= P64_3;
    h ^= h >> 32;
    return h;
}

uint64_t tern_hash64(const void *data, size_t n, uint64_t seed) {
    tern_hash64_state s;
    tern_hash64_init(&s, seed);
    tern_hash64_update(&s, data, n);
    return tern_hash64_final(&s);
}

// ---- string set ----------------------------------------------------------------------------------
void tern_strset_init(tern_strset *s) { memset(s, 0, sizeof *s); }

static size_t strset_find(const char **slot, size_t cap, const char *str) {   // cap: power of 2
    size_t i = (size_t)tern_hash64(str, strlen(str), 0) & (cap - 1);
    while (slot[i] && strcmp(slot[i], str) != 0) i = (i + 1) & (cap - 1);
    return i;
}

int tern_strset_has(const tern_strset *s, const char *str) {
    return s->cap && s->slot[strset_find(s->slot, s->cap, str)] != NULL;
}

int tern_strset_add(tern_strset *s, const char *str) {
    if ((s->n + 1) * 2 > s->cap) {   // keep the load under 1/2
        size_t cap = s->cap ? s->cap * 2 : 64;
        const char **slot = tern_xcalloc(cap, sizeof *slot);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) slot[strset_find(slot, cap, s->slot[i])] = s->slot[i];
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t i = strset_find(s->slot, s->cap, str);
    if (s->slot[i]) return 0;
    s->slot[i] = str;
    s->n++;
    return 1;
}

void tern_strset_free(tern_strset *s) {
    free(s->slot);
    memset(s, 0, sizeof *s);
}
