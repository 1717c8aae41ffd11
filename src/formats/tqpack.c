// tqpack.c — TQ2_0 / TQ1_0 block packing (see tqpack.h for the layouts). libc-only.
#include "formats/tqpack.h"
#include "util.h"
#include <string.h>

static const uint8_t pow3[6] = {1, 3, 9, 27, 81, 243};

static int check_n(int64_t n, const char *what) {
    if (n <= 0 || n % TERN_QK_K != 0) {
        tern_error("%s: %lld weights is not a positive multiple of %d", what, (long long)n, TERN_QK_K);
        return -1;
    }
    return 0;
}

size_t tern_tq2_bytes(int64_t n) { return (n > 0 && n % TERN_QK_K == 0) ? (size_t)(n / TERN_QK_K) * TERN_TQ2_BLOCK_BYTES : 0; }
size_t tern_tq1_bytes(int64_t n) { return (n > 0 && n % TERN_QK_K == 0) ? (size_t)(n / TERN_QK_K) * TERN_TQ1_BLOCK_BYTES : 0; }

static int check_ternary(const int8_t *w, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (w[i] < -1 || w[i] > 1) {
            tern_error("%s: weight %lld is %d, not in {-1,0,1}", what, (long long)i, w[i]);
            return -1;
        }
    return 0;
}

static void put_d(uint8_t *p, float d) {
    uint16_t h = tern_fp32_to_fp16(d);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}
static float get_d(const uint8_t *p) { return tern_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

// ---------------- TQ2_0 ----------------
int tern_tq2_pack(const int8_t *w, int64_t n, float d, void *out) {
    if (check_n(n, "tq2_0 pack") || check_ternary(w, n, "tq2_0 pack")) return -1;
    uint8_t *o = out;
    for (int64_t b = 0; b < n / TERN_QK_K; b++, w += TERN_QK_K, o += TERN_TQ2_BLOCK_BYTES) {
        for (int g = 0; g < 2; g++)
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int l = 0; l < 4; l++) q |= (uint8_t)((w[128 * g + m + 32 * l] + 1) << (2 * l));
                o[32 * g + m] = q;
            }
        put_d(o + 64, d);
    }
    return 0;
}

// codes c[256] in 0..3 of one block
static void tq2_codes(const uint8_t *blk, uint8_t *c) {
    for (int g = 0; g < 2; g++)
        for (int m = 0; m < 32; m++)
            for (int l = 0; l < 4; l++) c[128 * g + m + 32 * l] = (blk[32 * g + m] >> (2 * l)) & 3;
}

int tern_tq2_unpack(const void *in, int64_t n, int8_t *w, float *d) {
    if (check_n(n, "tq2_0 unpack")) return -1;
    const uint8_t *p = in;
    uint8_t c[TERN_QK_K];
    for (int64_t b = 0; b < n / TERN_QK_K; b++, p += TERN_TQ2_BLOCK_BYTES) {
        tq2_codes(p, c);
        for (int i = 0; i < TERN_QK_K; i++) {
            if (c[i] == 3) {
                tern_error("tq2_0 unpack: weight %lld has code 3 (not a ternary value)", (long long)(b * TERN_QK_K + i));
                return -1;
            }
            w[b * TERN_QK_K + i] = (int8_t)(c[i] - 1);
        }
        if (d) d[b] = get_d(p + 64);
    }
    return 0;
}

int tern_tq2_dequant(const void *in, int64_t n, float *out) {
    if (check_n(n, "tq2_0 dequant")) return -1;
    const uint8_t *p = in;
    uint8_t c[TERN_QK_K];
    for (int64_t b = 0; b < n / TERN_QK_K; b++, p += TERN_TQ2_BLOCK_BYTES) {
        tq2_codes(p, c);
        float d = get_d(p + 64);
        for (int i = 0; i < TERN_QK_K; i++) out[b * TERN_QK_K + i] = (float)((int)c[i] - 1) * d;
    }
    return 0;
}

// ---------------- TQ1_0 ----------------
// store a base-3 value v (0..242) rounded up to 8-bit fixed point
static uint8_t tq1_fix(unsigned v) { return (uint8_t)((v * 256 + 242) / 243); }
// digit k (0 = most significant) of a stored byte
static int tq1_digit(uint8_t q, int k) {
    uint8_t t = (uint8_t)(q * pow3[k]);
    return (int)(((unsigned)t * 3) >> 8);
}

int tern_tq1_pack(const int8_t *w, int64_t n, float d, void *out) {
    if (check_n(n, "tq1_0 pack") || check_ternary(w, n, "tq1_0 pack")) return -1;
    uint8_t *o = out;
    for (int64_t b = 0; b < n / TERN_QK_K; b++, w += TERN_QK_K, o += TERN_TQ1_BLOCK_BYTES) {
        for (int m = 0; m < 32; m++) {            // elements 0..159
            unsigned v = 0;
            for (int k = 0; k < 5; k++) v = v * 3 + (unsigned)(w[m + 32 * k] + 1);
            o[m] = tq1_fix(v);
        }
        for (int m = 0; m < 16; m++) {            // elements 160..239
            unsigned v = 0;
            for (int k = 0; k < 5; k++) v = v * 3 + (unsigned)(w[160 + m + 16 * k] + 1);
            o[32 + m] = tq1_fix(v);
        }
        for (int j = 0; j < 4; j++) {             // elements 240..255
            unsigned v = 0;
            for (int k = 0; k < 4; k++) v = v * 3 + (unsigned)(w[240 + j + 4 * k] + 1);
            o[48 + j] = tq1_fix(v * 3);
        }
        put_d(o + 52, d);
    }
    return 0;
}

// digits c[256] in 0..2 of one block
static void tq1_codes(const uint8_t *blk, uint8_t *c) {
    for (int m = 0; m < 32; m++)
        for (int k = 0; k < 5; k++) c[m + 32 * k] = (uint8_t)tq1_digit(blk[m], k);
    for (int m = 0; m < 16; m++)
        for (int k = 0; k < 5; k++) c[160 + m + 16 * k] = (uint8_t)tq1_digit(blk[32 + m], k);
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++) c[240 + j + 4 * k] = (uint8_t)tq1_digit(blk[48 + j], k);
}

int tern_tq1_unpack(const void *in, int64_t n, int8_t *w, float *d) {
    if (check_n(n, "tq1_0 unpack")) return -1;
    const uint8_t *p = in;
    uint8_t c[TERN_QK_K];
    for (int64_t b = 0; b < n / TERN_QK_K; b++, p += TERN_TQ1_BLOCK_BYTES) {
        tq1_codes(p, c);
        for (int i = 0; i < TERN_QK_K; i++) w[b * TERN_QK_K + i] = (int8_t)(c[i] - 1);
        if (d) d[b] = get_d(p + 52);
    }
    return 0;
}

int tern_tq1_dequant(const void *in, int64_t n, float *out) {
    if (check_n(n, "tq1_0 dequant")) return -1;
    const uint8_t *p = in;
    uint8_t c[TERN_QK_K];
    for (int64_t b = 0; b < n / TERN_QK_K; b++, p += TERN_TQ1_BLOCK_BYTES) {
        tq1_codes(p, c);
        float d = get_d(p + 52);
        for (int i = 0; i < TERN_QK_K; i++) out[b * TERN_QK_K + i] = (float)((int)c[i] - 1) * d;
    }
    return 0;
}
