// test_ggml_types.c — ggml block types (formats/ggml_types.h): hand-built known-answer blocks for
// Q8_0, Q4_K, Q5_K, Q6_K, BF16 and I2_S decoded with an element-wise reference written here from
// ggml's layout description (it shares no code with ggml_types.c), the type table and sizes, the
// quantizers' round trips and error bounds, bad input.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float h2f(const uint8_t *p) { return tern_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

// ---- element-wise reference decoders: value of element e of one block ----
// Q4_K/Q5_K scale/min of sub-block j: 6-bit fields; j < 4 in the low 6 bits of bytes j / j+4,
// j >= 4: low 4 bits in byte j+4 (scale low nibble, min high nibble), top 2 bits in the top bits
// of byte j-4 (scale) and byte j (min)
static void ref_sm(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) { *sc = s[j] % 64; *m = s[j + 4] % 64; return; }
    *sc = s[j + 4] % 16 + 16 * (s[j - 4] / 64);
    *m = s[j + 4] / 16 + 16 * (s[j] / 64);
}
static float ref_q4k(const uint8_t *b, int e) {
    int j = e / 32, c = e / 64, r = e % 64, sc, m;
    ref_sm(b + 4, j, &sc, &m);
    int q = (b[16 + 32 * c + r % 32] >> (4 * (r / 32))) % 16;
    float d1 = h2f(b) * (float)sc, m1 = h2f(b + 2) * (float)m;
    return d1 * (float)q - m1;
}
static float ref_q5k(const uint8_t *b, int e) {
    int j = e / 32, c = e / 64, r = e % 64, sc, m;
    ref_sm(b + 4, j, &sc, &m);
    int q = (b[48 + 32 * c + r % 32] >> (4 * (r / 32))) % 16;
    q += 16 * ((b[16 + r % 32] >> j) & 1);   // bit j of qh[l]: j = 2c (low half) or 2c+1 (high half)
    float d1 = h2f(b) * (float)sc, m1 = h2f(b + 2) * (float)m;
    return d1 * (float)q - m1;
}
static float ref_q6k(const uint8_t *b, int e) {
    int h = e / 128, r = e % 128, quad = r / 32, l = r % 32;
    int lo = (b[64 * h + l + 32 * (quad % 2)] >> (4 * (quad / 2))) % 16;
    int hi = (b[128 + 32 * h + l] >> (2 * quad)) % 4;
    int8_t sc = (int8_t)b[192 + e / 16];
    return h2f(b + 208) * (float)sc * (float)(lo + 16 * hi - 32);
}

static void fill_bytes(uint8_t *p, size_t n, uint64_t seed) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)tern_rng_u64(&r);
}
static void set_half(uint8_t *p, float f) {
    uint16_t h = tern_fp32_to_fp16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void test_table(void **st) {
    (void)st;
    assert_string_equal(tern_ggml_type_name(TERN_GGML_Q6_K), "q6_K");
    assert_string_equal(tern_ggml_type_name(TERN_GGML_I2_S), "i2_s");
    assert_string_equal(tern_ggml_type_name(4), "?");     // removed from ggml
    assert_string_equal(tern_ggml_type_name(37), "?");
    assert_string_equal(tern_ggml_type_name(-1), "?");
    assert_int_equal(tern_ggml_type_parse("Q6_K"), 14);
    assert_int_equal(tern_ggml_type_parse("q6_k"), 14);
    assert_int_equal(tern_ggml_type_parse("bf16"), 30);
    assert_int_equal(tern_ggml_type_parse("q7_k"), -1);
    struct { int t; int64_t be; size_t bb; } want[] = {{0, 1, 4}, {1, 1, 2}, {8, 32, 34}, {12, 256, 144}, {13, 256, 176},
                                                      {14, 256, 210}, {30, 1, 2}, {34, 256, 54}, {35, 256, 66}, {2, 32, 18}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(tern_ggml_block_elems(want[i].t), want[i].be);
        assert_int_equal(tern_ggml_block_bytes(want[i].t), want[i].bb);
    }
    assert_int_equal(tern_ggml_row_bytes(TERN_GGML_Q8_0, 576), 18 * 34);
    assert_int_equal(tern_ggml_row_bytes(TERN_GGML_Q6_K, 576), 0);   // not a multiple of 256
    // I2_S: n/4 bytes of codes + 32 (scale and padding) per tensor
    int64_t ne[2] = {2560, 640};
    size_t nb;
    assert_int_equal(tern_ggml_nbytes(TERN_GGML_I2_S, 2, ne, &nb), 0);
    assert_int_equal(nb, 2560 * 640 / 4 + 32);
    ne[0] = 100;
    assert_int_equal(tern_ggml_nbytes(TERN_GGML_I2_S, 2, ne, &nb), -1);
    assert_non_null(strstr(tern_last_error(), "multiple of the i2_s block size 128"));
    assert_int_equal(tern_ggml_nbytes(37, 2, ne, &nb), -1);
    assert_non_null(strstr(tern_last_error(), "unsupported tensor type 37"));
}

// Q8_0: fp16 d then 32 int8
static void test_q8_0(void **st) {
    (void)st;
    uint8_t b[2 * 34];
    for (int k = 0; k < 2; k++) {
        set_half(b + 34 * k, k ? -0.25f : 0.5f);
        for (int i = 0; i < 32; i++) b[34 * k + 2 + i] = (uint8_t)(int8_t)(i * 8 - 128);
    }
    float y[64];
    assert_int_equal(tern_ggml_dequant(TERN_GGML_Q8_0, b, 64, y), 0);
    assert_true(y[0] == -64.0f);          // -128 * 0.5
    assert_true(y[31] == 60.0f);          // (31*8-128) * 0.5
    assert_true(y[32] == 32.0f);          // -128 * -0.25
    assert_true(y[33] == 30.0f);          // (8-128) * -0.25
    assert_int_equal(tern_ggml_dequant(TERN_GGML_Q8_0, b, 48, y), -1);
}

// Q4_K / Q5_K: hand-set scales and mins (both halves of the 12-byte packing) and two nibbles
static void test_q4k_q5k_known(void **st) {
    (void)st;
    uint8_t b[176];
    memset(b, 0, sizeof b);
    set_half(b, 0.5f);       // d
    set_half(b + 2, 0.25f);  // dmin
    uint8_t *s = b + 4;
    // sub-block 1: sc 5, m 7 (low 6 bits of bytes 1 and 5); sub-block 6: sc 0x2A = 42 (low nibble
    // 0xA in byte 10, top bits 0b10 in byte 2), m 0x13 = 19 (high nibble 3 in byte 10, top 0b01 in byte 6)
    s[1] = 5; s[5] = 7;
    s[10] = 0xA | 0x3 << 4; s[2] |= 2 << 6; s[6] |= 1 << 6;
    // Q4_K: qs at 16. weight 32+3 (sub-block 1: chunk 0, high half) = high nibble of qs[3]
    b[16 + 3] = 0x90;                 // q = 9
    // weight 192 + 5 (sub-block 6: chunk 3, low half) = low nibble of qs[96 + 5]
    b[16 + 96 + 5] = 0x0C;            // q = 12
    float y[256];
    assert_int_equal(tern_ggml_dequant(TERN_GGML_Q4_K, b, 256, y), 0);
    assert_true(y[35] == 0.5f * 5 * 9 - 0.25f * 7);
    assert_true(y[197] == 0.5f * 42 * 12 - 0.25f * 19);
    assert_true(y[32] == -0.25f * 7);   // q 0
    for (int e = 0; e < 256; e++) assert_true(y[e] == ref_q4k(b, e));
    // Q5_K: qh at 16, qs at 48. weight 35: qh[3] bit 1 (chunk 0 high half) adds 16
    memset(b + 16, 0, 160);
    b[48 + 3] = 0x90;
    b[16 + 3] = 2;
    b[48 + 96 + 5] = 0x0C;
    b[16 + 5] = 1 << 6;               // weight 197: chunk 3 low half -> bit 6
    assert_int_equal(tern_ggml_dequant(TERN_GGML_Q5_K, b, 256, y), 0);
    assert_true(y[35] == 0.5f * 5 * 25 - 0.25f * 7);
    assert_true(y[197] == 0.5f * 42 * 28 - 0.25f * 19);
    for (int e = 0; e < 256; e++) assert_true(y[e] == ref_q5k(b, e));
}

// Q6_K: ql[128] qh[64] scales[16] d
static void test_q6k_known(void **st) {
    (void)st;
    uint8_t b[210];
    memset(b, 0, sizeof b);
    set_half(b + 208, 0.125f);
    for (int j = 0; j < 16; j++) b[192 + j] = (uint8_t)(int8_t)(j - 8);
    // weight 128 + 64 + 7 = 199: half 1, quad 2 (high nibble of ql[64 + 7]), top bits 4-5 of qh[32 + 7]
    b[64 + 7] = 0x50;       // low part 5
    b[128 + 32 + 7] = 0x20; // high part 2 -> q = 5 + 32 - 32 = 5
    float y[256];
    assert_int_equal(tern_ggml_dequant(TERN_GGML_Q6_K, b, 256, y), 0);
    assert_true(y[199] == 0.125f * (float)(199 / 16 - 8) * 5.0f);   // scale index 12 -> 4
    assert_true(y[0] == 0.125f * -8.0f * -32.0f);                  // all-zero bits: q - 32 = -32
    for (int e = 0; e < 256; e++) assert_true(y[e] == ref_q6k(b, e));
}

// random bytes (finite fp16 scales) decode as the element-wise reference says
static void test_random_blocks(void **st) {
    (void)st;
    uint8_t b[4 * 210];
    float y[4 * 256];
    for (int seed = 1; seed <= 20; seed++) {
        fill_bytes(b, sizeof b, (uint64_t)seed);
        for (int k = 0; k < 4; k++) {   // keep the fp16 scales finite
            set_half(b + 144 * k, 0.01f * seed); set_half(b + 144 * k + 2, -0.003f * seed);
        }
        assert_int_equal(tern_ggml_dequant(TERN_GGML_Q4_K, b, 1024, y), 0);
        for (int e = 0; e < 1024; e++) assert_true(y[e] == ref_q4k(b + 144 * (e / 256), e % 256));
        fill_bytes(b, sizeof b, (uint64_t)seed + 100);
        for (int k = 0; k < 4; k++) { set_half(b + 176 * k, 0.02f); set_half(b + 176 * k + 2, 0.01f); }
        assert_int_equal(tern_ggml_dequant(TERN_GGML_Q5_K, b, 1024, y), 0);
        for (int e = 0; e < 1024; e++) assert_true(y[e] == ref_q5k(b + 176 * (e / 256), e % 256));
        fill_bytes(b, sizeof b, (uint64_t)seed + 200);
        for (int k = 0; k < 4; k++) set_half(b + 210 * k + 208, -0.007f * seed);
        assert_int_equal(tern_ggml_dequant(TERN_GGML_Q6_K, b, 1024, y), 0);
        for (int e = 0; e < 1024; e++) assert_true(y[e] == ref_q6k(b + 210 * (e / 256), e % 256));
    }
}

static void test_bf16(void **st) {
    (void)st;
    assert_int_equal(tern_fp32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(tern_fp32_to_bf16(-2.0f), 0xC000);
    // 1 + 2^-8 is exactly half way between bf16 1.0 and 1.0078125: ties to even (1.0)
    assert_int_equal(tern_fp32_to_bf16(1.00390625f), 0x3F80);
    assert_int_equal(tern_fp32_to_bf16(1.01171875f), 0x3F82);   // 1 + 3*2^-8: half way, ties to even (up)
    assert_int_equal(tern_fp32_to_bf16(INFINITY), 0x7F80);
    assert_true(isnan(tern_bf16_to_fp32(tern_fp32_to_bf16(NAN))));
    assert_true(tern_bf16_to_fp32(0x3FC0) == 1.5f);
    uint8_t b[4] = {0x80, 0x3F, 0x40, 0xC0};   // 1.0, -3.0
    float y[2];
    assert_int_equal(tern_ggml_dequant(TERN_GGML_BF16, b, 2, y), 0);
    assert_true(y[0] == 1.0f && y[1] == -3.0f);
}

// I2_S (bitnet.cpp): byte m of a 128-weight block holds weights m, 32+m, 64+m, 96+m in bits 7-6,
// 5-4, 3-2, 1-0 as w + 1; one float scale after the n/4 code bytes
static void test_i2s(void **st) {
    (void)st;
    int8_t w[256], back[256];
    memset(w, 0, sizeof w);
    w[0] = 1; w[33] = -1; w[127] = 1; w[128 + 64] = -1;
    uint8_t p[64 + 32];
    assert_int_equal(tern_i2s_pack(w, 256, 0.75f, p), 0);
    uint8_t want[64];
    memset(want, 0x55, 64);                // all codes 1 (zero weights)
    want[0] = 0x95;                        // weight 0 = +1: code 2 in bits 7-6
    want[1] = 0x45;                        // weight 33 = 32 + 1: code 0 in bits 5-4
    want[31] = 0x56;                       // weight 127 = 96 + 31: code 2 in bits 1-0
    want[32] = 0x51;                       // block 1, weight 64 + 0: code 0 in bits 3-2
    assert_memory_equal(p, want, 64);
    float s;
    memcpy(&s, p + 64, 4);
    assert_true(s == 0.75f);
    for (int i = 4; i < 32; i++) assert_int_equal(p[64 + i], 0);
    float sc;
    assert_int_equal(tern_i2s_unpack(p, 256, back, &sc), 0);
    assert_memory_equal(w, back, 256);
    assert_true(sc == 0.75f);
    p[5] = 0xFF;                            // code 3
    assert_int_equal(tern_i2s_unpack(p, 256, back, &sc), -1);
    assert_non_null(strstr(tern_last_error(), "code 3"));
    assert_int_equal(tern_i2s_pack(w, 100, 1.0f, p), -1);
    w[3] = 2;
    assert_int_equal(tern_i2s_pack(w, 128, 1.0f, p), -1);
}

// quantize -> dequantize: error bounds per type; zero and constant blocks; determinism
static void check_roundtrip(int type, double max_rel_rms, const float *x, int64_t n) {
    size_t nb = tern_ggml_row_bytes(type, n);
    uint8_t *q = malloc(nb), *q2 = malloc(nb);
    float *y = malloc(sizeof(float) * n);
    assert_int_equal(tern_ggml_quantize(type, x, n, q), 0);
    assert_int_equal(tern_ggml_quantize(type, x, n, q2), 0);
    assert_memory_equal(q, q2, nb);
    assert_int_equal(tern_ggml_dequant(type, q, n, y), 0);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    double rel = sx > 0 ? sqrt(se / sx) : sqrt(se);
    if (getenv("TERN_TEST_VERBOSE")) fprintf(stderr, "%s: %g\n", tern_ggml_type_name(type), rel);
    if (rel > max_rel_rms) fprintf(stderr, "type %s: relative rms error %g > %g\n", tern_ggml_type_name(type), rel, max_rel_rms);
    assert_true(rel <= max_rel_rms);
    free(q); free(q2); free(y);
}

static void test_quantizers(void **st) {
    (void)st;
    const int64_t n = 256 * 64;
    float *x = malloc(sizeof(float) * n);
    tern_rng r;
    tern_rng_seed(&r, 5);
    for (int64_t i = 0; i < n; i++) x[i] = tern_rng_normal(&r) * (1.0f + (float)(i % 300) / 100.0f);
    // Gaussian data: Q8_0 ~0.5%, Q6_K ~1%, Q5_K ~3%, Q4_K ~6% relative rms error (ggml's figures)
    check_roundtrip(TERN_GGML_F32, 0.0, x, n);
    check_roundtrip(TERN_GGML_F16, 5e-4, x, n);
    check_roundtrip(TERN_GGML_BF16, 4e-3, x, n);
    check_roundtrip(TERN_GGML_Q8_0, 0.01, x, n);
    check_roundtrip(TERN_GGML_Q6_K, 0.02, x, n);
    check_roundtrip(TERN_GGML_Q5_K, 0.04, x, n);
    check_roundtrip(TERN_GGML_Q4_K, 0.08, x, n);
    // offset data (all negative): the k-quant min absorbs it (x = d*sc*q - dmin*m, m >= 0)
    for (int64_t i = 0; i < n; i++) x[i] = -3.0f + 0.1f * tern_rng_normal(&r);
    check_roundtrip(TERN_GGML_Q4_K, 0.006, x, n);
    check_roundtrip(TERN_GGML_Q5_K, 0.003, x, n);
    check_roundtrip(TERN_GGML_Q6_K, 0.02, x, n);
    // all zero: exact
    memset(x, 0, sizeof(float) * n);
    for (int t = 0; t <= TERN_GGML_BF16; t++)
        if (t == 0 || t == 1 || t == 8 || t == 12 || t == 13 || t == 14 || t == 30) check_roundtrip(t, 0.0, x, n);
    // one outlier in a Q6_K block does not destroy the other sub-blocks
    for (int64_t i = 0; i < 256; i++) x[i] = 0.01f * (float)((i * 7) % 13 - 6);
    x[3] = 100.0f;
    check_roundtrip(TERN_GGML_Q6_K, 0.01, x, 256);
    assert_int_equal(tern_ggml_quantize(TERN_GGML_Q6_K, x, 100, x), -1);
    assert_int_equal(tern_ggml_quantize(TERN_GGML_TQ2_0, x, 256, x), -1);
    assert_int_equal(tern_ggml_dequant(TERN_GGML_I2_S, x, 256, x), -1);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_q4k_q5k_known),
        cmocka_unit_test(test_q6k_known),
        cmocka_unit_test(test_random_blocks),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_i2s),
        cmocka_unit_test(test_quantizers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
