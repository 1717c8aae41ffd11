// test_loader.c — the token-file loader: every training window is (tokens[s..s+T), tokens[s+1..s+T]),
// each epoch visits every window once in a seeded order, the same seed gives the same batches,
// resuming from a saved (epoch, pos) continues exactly (also across an epoch end), evaluation
// windows are sequential and non-overlapping, and bad sizes / files are clear errors.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "training/loader.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

#define PATH "build/test_loader.tok"
#define NTOK 10007
#define VOCAB 60000

static int setup(void **st) {
    (void)st;
    int *ids = malloc(NTOK * sizeof(int));
    for (int i = 0; i < NTOK; i++) ids[i] = i % VOCAB; // token value = position
    int rc = tern_tokfile_write(PATH, ids, NTOK, VOCAB, 2, 42);
    free(ids);
    return rc;
}
static int teardown(void **st) {
    (void)st;
    remove(PATH);
    return 0;
}

static void test_windows_and_epochs(void **st) {
    (void)st;
    int T = 16, B = 5;
    tern_loader ld;
    assert_int_equal(tern_loader_open(&ld, PATH, T, B, 1234), 0);
    assert_int_equal(ld.n_windows, (NTOK - 1) / T);
    int64_t W = ld.n_windows;
    int *in = malloc((size_t)B * T * sizeof(int)), *tg = malloc((size_t)B * T * sizeof(int));
    // draw 2 full epochs window by window (batches straddle the epoch end)
    char *seen = calloc((size_t)W, 1);
    int64_t drawn = 0, epoch0_first = -1, epoch1_first = -1;
    int64_t off0 = ld.offset;
    while (drawn < 2 * W) {
        int64_t e, p;
        tern_loader_get_pos(&ld, &e, &p);
        tern_loader_next(&ld, in, tg);
        for (int b = 0; b < B && drawn < 2 * W; b++, drawn++) {
            int s = in[b * T];
            for (int t = 0; t < T; t++) {
                assert_int_equal(in[b * T + t], s + t);
                assert_int_equal(tg[b * T + t], s + t + 1);
            }
            int64_t ep = drawn < W ? 0 : 1;
            int64_t off = ep == 0 ? off0 : ld.offset;
            assert_true(off >= 0 && off <= NTOK - 1 - W * T);
            assert_int_equal((s - off) % T, 0);
            int64_t k = (s - off) / T;
            assert_true(k >= 0 && k < W);
            if (drawn == W) memset(seen, 0, (size_t)W); // a new epoch
            assert_int_equal(seen[k], 0);               // each window once per epoch
            seen[k] = 1;
            if (drawn == 0) epoch0_first = s;
            if (drawn == W) epoch1_first = s;
        }
    }
    assert_true(epoch0_first != epoch1_first || ld.offset != off0); // epochs are shuffled differently
    // shuffled: the first epoch is not in file order
    tern_loader l2;
    assert_int_equal(tern_loader_open(&l2, PATH, T, B, 1234), 0);
    int inorder = 1;
    for (int64_t k = 0; k < 10; k++) inorder &= l2.perm[k] == k;
    assert_false(inorder);
    tern_loader_close(&l2);
    free(seen);
    free(in);
    free(tg);
    tern_loader_close(&ld);
}

// Golden order at a fixed seed, from an independent transcription of loader.h's definition in
// Python (xorshift64* seeded by tern_rng_seed, itself a splitmix64, of splitmix64(seed ^
// splitmix64(epoch)); offset = next % (slack + 1);
// Fisher-Yates from the back, j = next % (i + 1)). 10007 tokens, seq_len 1000: 10 windows, slack 6.
static void test_golden_order(void **st) {
    (void)st;
    static const int off[3] = {3, 6, 2};
    static const int perm[3][10] = {{7, 4, 6, 2, 8, 1, 0, 9, 3, 5}, {3, 0, 1, 8, 6, 9, 4, 2, 7, 5}, {5, 7, 2, 8, 4, 1, 0, 9, 6, 3}};
    const int T = 1000, B = 3;
    tern_loader ld;
    assert_int_equal(tern_loader_open(&ld, PATH, T, B, 1234), 0);
    assert_int_equal(ld.n_windows, 10);
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    for (int k = 0; k < 30; k += B) {   // 10 batches of 3 windows: three epochs, batches straddle their ends
        tern_loader_next(&ld, in, tg);
        for (int b = 0; b < B; b++) {
            int w = k + b, e = w / 10, want = off[e] + perm[e][w % 10] * T;   // token value = position
            if (in[b * T] != want) fail_msg("window %d (epoch %d): starts at %d, expected %d", w, e, in[b * T], want);
            assert_int_equal(tg[b * T + T - 1], want + T);
        }
    }
    free(in);
    free(tg);
    tern_loader_close(&ld);
}

static void draw(tern_loader *ld, int nb, int *out) {
    int n = ld->batch * ld->seq_len;
    int *tg = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < nb; i++) tern_loader_next(ld, out + (size_t)i * n, tg);
    free(tg);
}

static void test_seed_and_resume(void **st) {
    (void)st;
    int T = 32, B = 7, n = B * T;
    tern_loader a, b, c;
    assert_int_equal(tern_loader_open(&a, PATH, T, B, 99), 0);
    assert_int_equal(tern_loader_open(&b, PATH, T, B, 99), 0);
    assert_int_equal(tern_loader_open(&c, PATH, T, B, 100), 0);
    int nb = 60; // > one epoch (312 windows / 7 per batch = 44.6 batches)
    int *xa = malloc((size_t)nb * n * sizeof(int)), *xb = malloc((size_t)nb * n * sizeof(int));
    draw(&a, nb, xa);
    draw(&b, nb, xb);
    assert_memory_equal(xa, xb, (size_t)nb * n * sizeof(int)); // same seed, same batches
    draw(&c, nb, xb);
    assert_memory_not_equal(xa, xb, (size_t)nb * n * sizeof(int)); // other seed, other batches
    // resume at several points (one just before the epoch end): a fresh loader set to the saved
    // position yields exactly what the original yielded next
    int cuts[3] = {3, 44, 50};
    for (int k = 0; k < 3; k++) {
        tern_loader r, s;
        assert_int_equal(tern_loader_open(&r, PATH, T, B, 99), 0);
        draw(&r, cuts[k], xb);
        int64_t e, p;
        tern_loader_get_pos(&r, &e, &p);
        assert_int_equal(tern_loader_open(&s, PATH, T, B, 99), 0);
        assert_int_equal(tern_loader_set_pos(&s, e, p), 0);
        draw(&s, nb - cuts[k], xb);
        assert_memory_equal(xa + (size_t)cuts[k] * n, xb, (size_t)(nb - cuts[k]) * n * sizeof(int));
        tern_loader_close(&r);
        tern_loader_close(&s);
    }
    int64_t e, p;
    tern_loader_get_pos(&a, &e, &p);
    assert_int_equal(e, 1); // 60*7 = 420 windows = 1 epoch of 312 + 108
    assert_int_equal(p, 420 - 312);
    // out of range positions
    assert_int_equal(tern_loader_set_pos(&a, 0, 313), -1);
    assert_non_null(strstr(tern_last_error(), PATH));
    assert_int_equal(tern_loader_set_pos(&a, -1, 0), -1);
    free(xa);
    free(xb);
    tern_loader_close(&a);
    tern_loader_close(&b);
    tern_loader_close(&c);
}

static void test_eval_windows(void **st) {
    (void)st;
    int T = 100;
    tern_loader ld;
    assert_int_equal(tern_loader_open(&ld, PATH, T, 1, 0), 0);
    int64_t n = tern_loader_eval_count(&ld);
    assert_int_equal(n, (NTOK - 1) / T);
    int *in = malloc(8 * (size_t)T * sizeof(int)), *tg = malloc(8 * (size_t)T * sizeof(int));
    for (int64_t first = 0; first < n; first += 8) {
        int got = tern_loader_eval_windows(&ld, first, 8, in, tg);
        assert_int_equal(got, first + 8 <= n ? 8 : n - first); // fewer at the end
        for (int k = 0; k < got; k++)
            for (int t = 0; t < T; t++) {
                assert_int_equal(in[k * T + t], (first + k) * T + t);
                assert_int_equal(tg[k * T + t], (first + k) * T + t + 1);
            }
    }
    assert_int_equal(tern_loader_eval_windows(&ld, n, 8, in, tg), 0);
    // tokenizer check
    assert_int_equal(tern_loader_check_tokenizer(&ld, VOCAB, 42), 0);
    assert_int_equal(tern_loader_check_tokenizer(&ld, VOCAB, 43), -1);
    assert_non_null(strstr(tern_last_error(), "different tokenizer"));
    free(in);
    free(tg);
    tern_loader_close(&ld);
}

static void test_bad(void **st) {
    (void)st;
    tern_loader ld;
    assert_int_equal(tern_loader_open(&ld, PATH, NTOK, 1, 0), -1); // needs NTOK + 1 tokens
    assert_non_null(strstr(tern_last_error(), "too few tokens"));
    assert_int_equal(tern_loader_open(&ld, PATH, NTOK - 1, 1, 0), 0); // exactly one window
    assert_int_equal(ld.n_windows, 1);
    tern_loader_close(&ld);
    assert_int_equal(tern_loader_open(&ld, PATH, 0, 1, 0), -1);
    assert_int_equal(tern_loader_open(&ld, PATH, 8, 0, 0), -1);
    assert_int_equal(tern_loader_open(&ld, "build/no_such.tok", 8, 1, 0), -1);
    assert_non_null(strstr(tern_last_error(), "build/no_such.tok: cannot open"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_and_epochs),
        cmocka_unit_test(test_golden_order),
        cmocka_unit_test(test_seed_and_resume),
        cmocka_unit_test(test_eval_windows),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
