// fuzz_util.h — helpers shared by the libFuzzer targets tests/fuzz/fuzz_*.c (see tests/fuzz/README.md).
#ifndef TERN_FUZZ_UTIL_H
#define TERN_FUZZ_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Writes the input to this process's scratch file (one per target and process, in $TMPDIR or
// /tmp, replaced on every call) and returns its path: for readers that open files by name.
static char fuzz_path[512];
static void fuzz_remove_file(void) { unlink(fuzz_path); }
static inline const char *fuzz_write_file(const uint8_t *d, size_t n, const char *tag) {
    char *path = fuzz_path;
    if (!path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_path, sizeof fuzz_path, "%s/tern-fuzz-%s-%ld", tmp && *tmp ? tmp : "/tmp", tag, (long)getpid());
        atexit(fuzz_remove_file);
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(d, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
    return path;
}

// A property of the code under test does not hold: crash so that libFuzzer saves the input.
#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#endif
