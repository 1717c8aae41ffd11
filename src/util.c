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
#include <time.h>
#include <unistd.h>

static _Thread_local char err_buf[1024];

void tern_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
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

char *tern_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { tern_error("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    if (fseek(f, 0, SEEK_END) != 0) { tern_error("%s: cannot seek: %s", path, strerror(errno)); fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0) { tern_error("%s: cannot tell size: %s", path, strerror(errno)); fclose(f); return NULL; }
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf) { tern_error("%s: out of memory (%ld bytes)", path, n); fclose(f); return NULL; }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { tern_error("%s: read failed", path); free(buf); fclose(f); return NULL; }
    fclose(f);
    buf[n] = 0;
    if (size) *size = (size_t)n;
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
