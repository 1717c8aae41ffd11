// ggml_check.c — tern's ggml block types (src/formats/ggml_types.h) against llama.cpp's own ggml
// library, the libggml-base.so that node-llama-cpp ships (loaded with dlopen; the prototypes below
// are ggml's public ones). For Q8_0, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0, F16 and BF16:
//   1. blocks made by ggml's reference quantizers decode to the same floats, bit for bit, in
//      tern's dequantizer and ggml's;
//   2. blocks made by tern's quantizers (what tern-export writes) decode to the same floats in both.
// Built and run by scripts/interop.sh:  ggml_check /path/to/libggml-base.so
// Prints one line per check; exits 1 on any difference.
#include "formats/ggml_types.h"
#include "formats/tqpack.h"
#include "util.h"
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*quant_fn)(const float *x, void *y, int64_t k);      // quantize_row_*_ref
typedef void (*deq_fn)(const void *x, float *y, int64_t k);        // dequantize_row_*
typedef void (*to_f32_fn)(const uint16_t *x, float *y, int64_t n); // ggml_{fp16,bf16}_to_fp32_row
typedef void (*from_f32_fn)(const float *x, uint16_t *y, int64_t n);

static void *lib;
static void *sym(const char *name) {
    void *p = dlsym(lib, name);
    if (!p) { fprintf(stderr, "ggml_check: %s not found in the library: %s\n", name, dlerror()); exit(2); }
    return p;
}

static int failed = 0;
static void report(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failed++;
}

// random data with a range of magnitudes, outliers and zero blocks
static void fill(float *x, int64_t n, uint64_t seed) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = tern_rng_normal(&r) * (0.01f + (float)((i / 256) % 7));
    for (int64_t i = 0; i < n; i += 997) x[i] *= 40.0f;
    memset(x + 512, 0, sizeof(float) * 256);
}

static int same_floats(const float *a, const float *b, int64_t n, int64_t *where) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) { *where = i; return 0; }
    return 1;
}

static void check_type(int type, const char *gname) {
    const int64_t n = 256 * 64;
    char name[96], what[256];
    float *x = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    const size_t nb = tern_ggml_row_bytes(type, n);
    void *q = calloc(1, nb);
    fill(x, n, (uint64_t)type * 77 + 1);
    snprintf(name, sizeof name, "dequantize_row_%s", gname);
    deq_fn deq = (deq_fn)sym(name);
    snprintf(name, sizeof name, "quantize_row_%s_ref", gname);
    quant_fn quant = (quant_fn)sym(name);
    int64_t at = -1;
    // 1. ggml's blocks
    quant(x, q, n);
    deq(q, a, n);
    tern_ggml_dequant(type, q, n, b);
    int ok = same_floats(a, b, n, &at);
    snprintf(what, sizeof what, "%s: blocks from llama.cpp's quantizer: tern decodes %lld values as ggml does%s", tern_ggml_type_name(type),
             (long long)n, ok ? "" : " (differs)");
    report(ok, what);
    if (!ok) fprintf(stderr, "  element %lld: ggml %.9g tern %.9g\n", (long long)at, a[at], b[at]);
    // 2. tern's blocks (ternary types: the packers tern-export uses)
    if (type == TERN_GGML_TQ1_0 || type == TERN_GGML_TQ2_0) {
        int8_t *w = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) w[i] = (int8_t)(x[i] > 0.5f ? 1 : x[i] < -0.5f ? -1 : 0);
        ok = (type == TERN_GGML_TQ2_0 ? tern_tq2_pack(w, n, 0.75f, q) : tern_tq1_pack(w, n, 0.75f, q)) == 0;
        free(w);
    } else ok = tern_ggml_quantize(type, x, n, q) == 0;
    deq(q, a, n);
    tern_ggml_dequant(type, q, n, b);
    ok = ok && same_floats(a, b, n, &at);
    snprintf(what, sizeof what, "%s: blocks from tern's quantizer: ggml decodes them as tern does", tern_ggml_type_name(type));
    report(ok, what);
    free(x); free(a); free(b); free(q);
}

static void check_half(int type, const char *to, const char *from) {
    const int64_t n = 4096;
    float *x = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    uint16_t *h = malloc(2 * n), *t = malloc(2 * n);
    fill(x, n, 5);
    x[7] = NAN; x[8] = INFINITY; x[9] = 1e-30f; x[10] = 65520.0f; x[11] = 1.00390625f;
    ((from_f32_fn)sym(from))(x, h, n);
    tern_ggml_quantize(type, x, n, t);
    int64_t at = -1;
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++)
        if (h[i] != t[i] && !(isnan(x[i]))) { ok = 0; at = i; }
    char what[256];
    snprintf(what, sizeof what, "%s: tern rounds f32 -> %s as ggml does", tern_ggml_type_name(type), tern_ggml_type_name(type));
    report(ok, what);
    if (!ok) fprintf(stderr, "  element %lld (%.9g): ggml %04x tern %04x\n", (long long)at, x[at], h[at], t[at]);
    ((to_f32_fn)sym(to))(h, a, n);
    tern_ggml_dequant(type, h, n, b);
    ok = same_floats(a, b, n, &at);
    snprintf(what, sizeof what, "%s: tern decodes as ggml does", tern_ggml_type_name(type));
    report(ok, what);
    free(x); free(a); free(b); free(h); free(t);
}

int main(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: ggml_check /path/to/libggml-base.so\n");
        return argc == 2 ? 0 : 2;
    }
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "ggml_check: %s\n", dlerror()); return 2; }
    check_type(TERN_GGML_Q8_0, "q8_0");
    check_type(TERN_GGML_Q4_K, "q4_K");
    check_type(TERN_GGML_Q5_K, "q5_K");
    check_type(TERN_GGML_Q6_K, "q6_K");
    check_type(TERN_GGML_TQ1_0, "tq1_0");
    check_type(TERN_GGML_TQ2_0, "tq2_0");
    check_half(TERN_GGML_F16, "ggml_fp16_to_fp32_row", "ggml_fp32_to_fp16_row");
    check_half(TERN_GGML_BF16, "ggml_bf16_to_fp32_row", "ggml_fp32_to_bf16_row_ref");
    printf(failed ? "ggml_check: %d check(s) FAILED\n" : "ggml_check: all checks passed\n", failed);
    return failed ? 1 : 0;
}
