// test_tqpack.c — TQ2_0 / TQ1_0 packing: hand-checked bytes for a tiny pattern (layout as in
// llama.cpp's ggml-quants.c), random round trips, dequantization, bad input.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "formats/tqpack.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

static void fill_ternary(int8_t *w, long n, uint64_t seed) {
    tern_rng r;
    tern_rng_seed(&r, seed);
    for (long i = 0; i < n; i++) w[i] = (int8_t)((int)(tern_rng_u64(&r) % 3) - 1);
}

// one block: zeros except w[0] = 1, w[32] = -1, w[129] = 1, w[170] = 1, w[255] = -1
static void pattern(int8_t *w) {
    memset(w, 0, 256);
    w[0] = 1; w[32] = -1; w[129] = 1; w[170] = 1; w[255] = -1;
}

static void test_tq2_bytes(void **st) {
    (void)st;
    int8_t w[256], back[256];
    pattern(w);
    uint8_t q[66];
    assert_int_equal(tern_tq2_bytes(256), 66);
    assert_int_equal(tern_tq2_pack(w, 256, 1.0f, q), 0);
    // byte m of group g holds elements 128g + m + 32l at bits 2l (code = w + 1); all-zero byte = 0x55
    uint8_t want[66];
    memset(want, 0x55, 64);
    want[0] = 0x52;   // elements 0 (+1 → 2), 32 (-1 → 0), 64, 96 (0 → 1): 2 | 0<<2 | 1<<4 | 1<<6
    want[33] = 0x56;  // group 1, m = 1: element 129 (+1 → 2) at l = 0
    want[42] = 0x59;  // group 1, m = 10: element 170 = 128 + 10 + 32 (l = 1): 1 | 2<<2 | 1<<4 | 1<<6
    want[63] = 0x15;  // group 1, m = 31: element 255 = 128 + 31 + 96 (l = 3): code 0 in the top bits
    want[64] = 0x00; want[65] = 0x3c;   // fp16 1.0, little-endian
    assert_memory_equal(q, want, 66);
    float d;
    assert_int_equal(tern_tq2_unpack(q, 256, back, &d), 0);
    assert_memory_equal(back, w, 256);
    assert_true(d == 1.0f);
}

static void test_tq1_bytes(void **st) {
    (void)st;
    int8_t w[256], back[256];
    pattern(w);
    uint8_t q[54];
    assert_int_equal(tern_tq1_bytes(512), 108);
    assert_int_equal(tern_tq1_pack(w, 256, 2.0f, q), 0);
    // an all-zero qs byte is 11111 (base 3) = 121 → ceil(121*256/243) = 128; all-zero qh: 1111*3 = 120 → 127
    uint8_t want[54];
    memset(want, 128, 48);
    memset(want + 48, 127, 4);
    // byte 0: digits (most significant first) of elements 0, 32, 64, 96, 128 = codes 2, 0, 1, 1, 1
    // → 2*81 + 0*27 + 9 + 3 + 1 = 175 → ceil(175*256/243) = 185
    want[0] = 185;
    want[32 + 10] = 213;   // elements 170 + 16n: codes 2,1,1,1,1 = 202 → ceil(202*256/243) = 213
    // elements 129 + 32n (byte 1): codes 1, 1, 1, 1 ... element 129 = 1 + 32*4 → digit 4 = 2: 121 + 1 = 122 → 129
    want[1] = 129;
    want[48 + 3] = 124;    // qh[3]: elements 243, 247, 251, 255 = 1,1,1,0 → 39, *3 = 117 → ceil(117*256/243) = 124
    want[52] = 0x00; want[53] = 0x40;   // fp16 2.0
    assert_int_equal(want[0], 185);
    assert_memory_equal(q, want, 54);
    float d;
    assert_int_equal(tern_tq1_unpack(q, 256, back, &d), 0);
    assert_memory_equal(back, w, 256);
    assert_true(d == 2.0f);
    float deq[256];
    assert_int_equal(tern_tq1_dequant(q, 256, deq), 0);
    for (int i = 0; i < 256; i++) assert_true(deq[i] == 2.0f * w[i]);
}

static void test_round_trip(void **st) {
    (void)st;
    const long n = 256 * 13;
    int8_t *w = malloc(n), *back = malloc(n);
    float *deq = malloc(n * sizeof(float)), d[13];
    fill_ternary(w, n, 7);
    const float s = 0.0371f, s16 = tern_fp16_to_fp32(tern_fp32_to_fp16(s));
    uint8_t *q2 = malloc(tern_tq2_bytes(n)), *q1 = malloc(tern_tq1_bytes(n));
    assert_int_equal(tern_tq2_pack(w, n, s, q2), 0);
    memset(back, 9, n);
    assert_int_equal(tern_tq2_unpack(q2, n, back, d), 0);
    assert_memory_equal(back, w, n);
    for (int b = 0; b < 13; b++) assert_true(d[b] == s16);
    assert_int_equal(tern_tq2_dequant(q2, n, deq), 0);
    for (long i = 0; i < n; i++) assert_true(deq[i] == (float)w[i] * s16);

    assert_int_equal(tern_tq1_pack(w, n, s, q1), 0);
    memset(back, 9, n);
    assert_int_equal(tern_tq1_unpack(q1, n, back, d), 0);
    assert_memory_equal(back, w, n);
    for (int b = 0; b < 13; b++) assert_true(d[b] == s16);
    assert_int_equal(tern_tq1_dequant(q1, n, deq), 0);
    for (long i = 0; i < n; i++) assert_true(deq[i] == (float)w[i] * s16);

    // every TQ1_0 byte decodes to valid digits; decode(encode(decode(q))) is stable
    tern_rng r;
    tern_rng_seed(&r, 3);
    for (size_t i = 0; i < tern_tq1_bytes(n); i++) q1[i] = (uint8_t)tern_rng_u64(&r);
    assert_int_equal(tern_tq1_unpack(q1, n, back, NULL), 0);
    for (long i = 0; i < n; i++) assert_true(back[i] >= -1 && back[i] <= 1);
    assert_int_equal(tern_tq1_pack(back, n, s, q1), 0);
    int8_t *again = malloc(n);
    assert_int_equal(tern_tq1_unpack(q1, n, again, NULL), 0);
    assert_memory_equal(again, back, n);
    free(again);
    free(w); free(back); free(deq); free(q2); free(q1);
}

// ---- known answers: tests/fixtures/tq_known.tq2 / .tq1, written by scripts/tq_known_answers.py
// from ggml's definition (quantize_row_tq{1,2}_0_ref), no code shared with tqpack.c. The input
// rule below is the script's: block b < 256 holds a lone +1 at position b, block 256 + p a lone -1
// at position p, blocks 512..519 random ternary weights; d_b as in the script.
#define KA_BLOCKS 520
static uint64_t ka_lcg(uint64_t s) { return s * 6364136223846793005ull + 1442695040888963407ull; }
static float ka_block(int b, int8_t *w) {
    memset(w, 0, 256);
    if (b < 256) { w[b] = 1; return (float)(b + 1) / 64.0f; }
    if (b < 512) { w[b - 256] = -1; return (float)(b - 255) / 32.0f; }
    uint64_t s = (uint64_t)b;
    for (int i = 0; i < 256; i++) { s = ka_lcg(s); w[i] = (int8_t)((int)((s >> 33) % 3) - 1); }
    return (float)(0.0371 * (b - 511));
}

static void *ka_read(const char *path, size_t want) {
    size_t n;
    void *p = tern_read_file(path, &n);
    if (!p) fail_msg("%s (regenerate: python3 scripts/tq_known_answers.py)", tern_last_error());
    if (n != want) fail_msg("%s: %zu bytes, expected %zu", path, n, want);
    return p;
}

static void test_known_answers(void **st) {
    (void)st;
    uint8_t *k2 = ka_read("tests/fixtures/tq_known.tq2", (size_t)KA_BLOCKS * 66);
    uint8_t *k1 = ka_read("tests/fixtures/tq_known.tq1", (size_t)KA_BLOCKS * 54);
    int8_t w[256], back[256];
    uint8_t q[66];
    float deq[256], d;
    for (int b = 0; b < KA_BLOCKS; b++) {
        float db = ka_block(b, w), d16 = tern_fp16_to_fp32(tern_fp32_to_fp16(db));
        // pack == ggml's bytes
        assert_int_equal(tern_tq2_pack(w, 256, db, q), 0);
        if (memcmp(q, k2 + (size_t)b * 66, 66)) fail_msg("tq2_0 pack: block %d differs from ggml's bytes", b);
        assert_int_equal(tern_tq1_pack(w, 256, db, q), 0);
        if (memcmp(q, k1 + (size_t)b * 54, 54)) fail_msg("tq1_0 pack: block %d differs from ggml's bytes", b);
        // ggml's bytes unpack / dequantize to the input
        assert_int_equal(tern_tq2_unpack(k2 + (size_t)b * 66, 256, back, &d), 0);
        if (memcmp(back, w, 256) || d != d16) fail_msg("tq2_0 unpack: block %d", b);
        assert_int_equal(tern_tq1_unpack(k1 + (size_t)b * 54, 256, back, &d), 0);
        if (memcmp(back, w, 256) || d != d16) fail_msg("tq1_0 unpack: block %d", b);
        assert_int_equal(tern_tq2_dequant(k2 + (size_t)b * 66, 256, deq), 0);
        for (int i = 0; i < 256; i++) if (deq[i] != (float)w[i] * d16) fail_msg("tq2_0 dequant: block %d elem %d", b, i);
        assert_int_equal(tern_tq1_dequant(k1 + (size_t)b * 54, 256, deq), 0);
        for (int i = 0; i < 256; i++) if (deq[i] != (float)w[i] * d16) fail_msg("tq1_0 dequant: block %d elem %d", b, i);
    }
    // whole-matrix calls: the blocks in a row (n = 520 * 256; every block then has d of block 0)
    int8_t *all = malloc((size_t)KA_BLOCKS * 256), *allb = malloc((size_t)KA_BLOCKS * 256);
    float *ds = malloc(sizeof(float) * KA_BLOCKS);
    for (int b = 0; b < KA_BLOCKS; b++) ka_block(b, all + (size_t)b * 256);
    assert_int_equal(tern_tq1_unpack(k1, (int64_t)KA_BLOCKS * 256, allb, ds), 0);
    assert_memory_equal(all, allb, (size_t)KA_BLOCKS * 256);
    for (int b = 0; b < KA_BLOCKS; b++) assert_true(ds[b] == tern_fp16_to_fp32(tern_fp32_to_fp16(ka_block(b, w))));
    assert_int_equal(tern_tq2_unpack(k2, (int64_t)KA_BLOCKS * 256, allb, ds), 0);
    assert_memory_equal(all, allb, (size_t)KA_BLOCKS * 256);
    free(all); free(allb); free(ds); free(k1); free(k2);
}

static void test_bad(void **st) {
    (void)st;
    int8_t w[512] = {0};
    uint8_t q[200];
    assert_int_equal(tern_tq2_pack(w, 100, 1.0f, q), -1);
    assert_non_null(strstr(tern_last_error(), "multiple of 256"));
    assert_int_equal(tern_tq1_pack(w, 0, 1.0f, q), -1);
    assert_int_equal(tern_tq2_bytes(300), 0);
    w[77] = 2;
    assert_int_equal(tern_tq2_pack(w, 256, 1.0f, q), -1);
    assert_non_null(strstr(tern_last_error(), "weight 77"));
    assert_int_equal(tern_tq1_pack(w, 256, 1.0f, q), -1);
    w[77] = 0;
    assert_int_equal(tern_tq2_pack(w, 256, 1.0f, q), 0);
    q[40] |= 0x30;   // group 1, m = 8, l = 2 → element 128 + 8 + 64 = 200 gets code 3
    assert_int_equal(tern_tq2_unpack(q, 256, w, NULL), -1);
    assert_non_null(strstr(tern_last_error(), "weight 200 has code 3"));
    float deq[256];
    assert_int_equal(tern_tq2_dequant(q, 256, deq), 0);   // llama.cpp semantics: (3 - 1) * d
    assert_true(deq[200] == 2.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tq2_bytes), cmocka_unit_test(test_tq1_bytes),
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_known_answers), cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests_name("tqpack", tests, NULL, NULL);
}
