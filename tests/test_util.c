// test_util.c — util.h pieces the hardening relies on: the 64-bit hash against published XXH64
// values (computed by the reference xxhsum tool, not by this code), streaming in any chunking;
// the string set; opening inputs that are not regular files (never blocking on a FIFO); refusing
// outputs that are directories, devices or FIFOs; atomic commit refusing to replace a device.
#include "testutil.h"
#include "formats/gguf.h"
#include "tokenizers/tokenizer.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void test_hash64_vectors(void **st) {
    (void)st;
    // xxhsum -H64 (xxHash 0.8.1) of these inputs
    assert_true(tern_hash64("", 0, 0) == 0xef46db3751d8e999ull);
    assert_true(tern_hash64("a", 1, 0) == 0xd24ec4f1a98c6e5bull);
    assert_true(tern_hash64("abc", 3, 0) == 0x44bc2cf5ad770999ull);
    const char *s = "Nobody inspects the spammish repetition";   // 39 bytes: stripes + tail
    assert_true(tern_hash64(s, strlen(s), 0) == 0xfbcea83c8a378bf1ull);
    size_t n;
    char *text = tern_read_file("data/tinyshakespeare/input.txt", &n);
    assert_non_null(text);
    assert_true(tern_hash64(text, 1000, 0) == 0x6d82d5f108700ec4ull);   // head -c 1000 | xxhsum -H64
    // streaming: any split gives the one-shot result
    uint64_t whole = tern_hash64(text, 100003, 7);
    size_t cuts[] = {1, 3, 31, 32, 33, 64, 4097};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        tern_hash64_state hs;
        tern_hash64_init(&hs, 7);
        for (size_t off = 0; off < 100003; off += cuts[c])
            tern_hash64_update(&hs, text + off, off + cuts[c] <= 100003 ? cuts[c] : 100003 - off);
        assert_true(tern_hash64_final(&hs) == whole);
    }
    assert_true(tern_hash64(text, 100003, 8) != whole);   // the seed matters
    text[5000] ^= 1;
    assert_true(tern_hash64(text, 100003, 7) != whole);   // one bit matters
    free(text);
}

static void test_strset(void **st) {
    (void)st;
    tern_strset s;
    tern_strset_init(&s);
    assert_false(tern_strset_has(&s, "x"));
    enum { N = 20000 };
    static char names[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "blk.%d.attn_q.weight", i);
        assert_int_equal(tern_strset_add(&s, names[i]), 1);
    }
    for (int i = 0; i < N; i++) assert_int_equal(tern_strset_add(&s, names[i]), 0);   // duplicates
    char probe[32];
    snprintf(probe, sizeof probe, "blk.%d.attn_q.weight", 12345);
    assert_true(tern_strset_has(&s, probe));
    assert_false(tern_strset_has(&s, "blk.20000.attn_q.weight"));
    assert_int_equal(s.n, N);
    tern_strset_free(&s);
}

static void test_params_index(void **st) {
    (void)st;
    // 11 parameters per layer x 1024 layers (TERN_MAX_LAYERS): registration stays linear
    tern_params p;
    tern_params_init(&p);
    double t0 = tern_time();
    char name[64];
    for (int i = 0; i < 11 * 1024; i++) {
        snprintf(name, sizeof name, "blk.%d.p%d.weight", i / 11, i % 11);
        tern_params_add(&p, name, 1, (int[]){4}, 0);
    }
    double dt = tern_time() - t0;
    printf("  11264 parameters registered in %.1f ms\n", dt * 1e3);
    assert_non_null(tern_params_find(&p, "blk.1000.p3.weight"));
    assert_ptr_equal(tern_params_find(&p, "blk.7.p2.weight"), p.t[7 * 11 + 2]);
    assert_null(tern_params_find(&p, "blk.1024.p0.weight"));
    tern_params_free(&p);
}

static void test_inputs_outputs(void **st) {
    (void)st;
    char fifo[300], sub[300], reg[300], tmp[400];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(reg, sizeof reg, "%s/file.txt", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    FILE *f = fopen(reg, "w");
    fputs("hello", f);
    fclose(f);
    size_t n = 99;
    // inputs: a FIFO with no writer must not block, a directory must not read as "out of memory"
    assert_null(tern_read_file(fifo, &n));
    assert_string_equal(tern_last_error(), strcat(strcpy(tmp, fifo), ": not a regular file (FIFO)"));
    assert_null(tern_read_file(sub, &n));
    assert_string_equal(tern_last_error(), strcat(strcpy(tmp, sub), ": is a directory"));
    assert_int_equal(tern_open_regular("/dev/null", NULL), -1);
    assert_non_null(strstr(tern_last_error(), "not a regular file (character device)"));
    char *b = tern_read_file(reg, &n);
    assert_non_null(b);
    assert_int_equal(n, 5);
    assert_string_equal(b, "hello");
    free(b);
    int fd = tern_open_regular(reg, &n);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);   // a normal fd again
    close(fd);
    // outputs
    assert_int_equal(tern_check_output_path(reg), 0);
    snprintf(tmp, sizeof tmp, "%s/new.bin", dir);
    assert_int_equal(tern_check_output_path(tmp), 0);
    assert_int_equal(tern_check_output_path(sub), -1);
    assert_non_null(strstr(tern_last_error(), "is a directory"));
    assert_int_equal(tern_check_output_path(fifo), -1);
    assert_non_null(strstr(tern_last_error(), "not a regular file (FIFO); refusing to replace it"));
    assert_int_equal(tern_check_output_path("/dev/null"), -1);
    assert_non_null(strstr(tern_last_error(), "character device"));
    // the atomic commit refuses to rename over a FIFO (as it would over /dev/null)
    tern_tmp_path(fifo, tmp, sizeof tmp);
    f = fopen(tmp, "w");
    fputs("x", f);
    fclose(f);
    assert_int_equal(tern_commit_file(tmp, fifo), -1);
    struct stat sb;
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));                 // still the FIFO
    assert_int_equal(access(tmp, F_OK), -1);           // and no temporary file left
}

// A GGUF of 50,000 keys (and one of 50,000 tensors) opens in linear time; a duplicate key or
// tensor name at the very end is still found. (The old pairwise scan took seconds here and
// hours on a few MB.)
static void put(FILE *f, const void *p, size_t n) { assert_int_equal(fwrite(p, 1, n, f), n); }
static void write_many(const char *path, int nk, int nt, int dup_key, int dup_tensor) {
    FILE *f = fopen(path, "wb");
    uint32_t ver = 3;
    int64_t ntens = nt, nkv = nk;
    put(f, "GGUF", 4);
    put(f, &ver, 4);
    put(f, &ntens, 8);
    put(f, &nkv, 8);
    char key[32];
    for (int i = 0; i < nk; i++) {
        uint64_t len = (uint64_t)snprintf(key, sizeof key, "k.%07d", dup_key && i == nk - 1 ? 3 : i);
        uint32_t type = TERN_GGUF_UINT8;
        uint8_t v = 1;
        put(f, &len, 8);
        put(f, key, len);
        put(f, &type, 4);
        put(f, &v, 1);
    }
    for (int i = 0; i < nt; i++) {
        uint64_t len = (uint64_t)snprintf(key, sizeof key, "t.%07d", dup_tensor && i == nt - 1 ? 5 : i), off = (uint64_t)i * 32;
        uint32_t nd = 1;
        int64_t ne = 8;
        int32_t type = TERN_GGML_F32;
        put(f, &len, 8);
        put(f, key, len);
        put(f, &nd, 4);
        put(f, &ne, 8);
        put(f, &type, 4);
        put(f, &off, 8);
    }
    long pos = ftell(f);
    static const char zero[64] = {0};
    put(f, zero, (size_t)((32 - pos % 32) % 32));
    for (int i = 0; i < nt; i++) put(f, zero, 32);
    fclose(f);
}

static void test_gguf_many_names(void **st) {
    (void)st;
    char path[300];
    snprintf(path, sizeof path, "%s/many.gguf", dir);
    write_many(path, 50000, 50000, 0, 0);
    double t0 = tern_time();
    tern_gguf *g = tern_gguf_open(path);
    if (!g) fail_msg("%s", tern_last_error());
    printf("  50000 keys + 50000 tensors opened in %.0f ms\n", (tern_time() - t0) * 1e3);
    assert_int_equal(tern_gguf_n_kv(g), 50000);
    assert_int_equal(tern_gguf_n_tensors(g), 50000);
    tern_gguf_close(g);
    write_many(path, 50000, 10, 1, 0);
    assert_null(tern_gguf_open(path));
    assert_non_null(strstr(tern_last_error(), "duplicate key k.0000003"));
    write_many(path, 10, 50000, 0, 1);
    assert_null(tern_gguf_open(path));
    assert_non_null(strstr(tern_last_error(), "duplicate tensor name t.0000005"));
    write_many(path, 3, 3, 0, 0);   // a tensor may share a key's name: different namespaces
    assert_non_null(g = tern_gguf_open(path));
    tern_gguf_close(g);
}

// Errors are one line even when a file's names contain control characters (found by fuzzing a
// GGUF whose key held a '\n').
static void test_error_one_line(void **st) {
    (void)st;
    tern_error("%s: key %s: bad", "f.gguf", "a\nb\rc\x1b[31md");
    assert_string_equal(tern_last_error(), "f.gguf: key a?b?c?[31md: bad");
}

// A tokenizer file without the "▁" piece is refused: spaces would encode as the three bytes of
// "▁" and decode back as that character (found by fuzzing: decode(encode(x)) != x).
static void test_tokenizer_needs_space_piece(void **st) {
    (void)st;
    const char *text = "the cat sat on the mat, the cat sat on the hat";
    size_t n = strlen(text);
    tern_tokenizer t;
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = 280;
    assert_int_equal(tern_tokenizer_train(&t, (const char *const[]){text}, &n, 1, &o), 0);
    void *buf;
    size_t bn;
    assert_int_equal(tern_tokenizer_to_bytes(&t, &buf, &bn), 0);
    tern_tokenizer_free(&t);
    assert_int_equal(tern_tokenizer_from_bytes(&t, buf, bn, "ok"), 0);
    tern_tokenizer_free(&t);
    unsigned char *p = memmem(buf, bn, "\xe2\x96\x81", 3);   // the first piece holding it is "▁" itself (id 259)
    assert_non_null(p);
    assert_int_equal(p[-2], 3);   // its uint16 length is 3: the piece is exactly "▁"
    p[2] = 0x82;                  // "▂"
    assert_int_equal(tern_tokenizer_from_bytes(&t, buf, bn, "mutated"), -1);
    assert_non_null(strstr(tern_last_error(), "mutated: has no"));
    free(buf);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tern_test_util_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash64_vectors), cmocka_unit_test(test_strset),
        cmocka_unit_test(test_params_index),   cmocka_unit_test(test_inputs_outputs),
        cmocka_unit_test(test_gguf_many_names), cmocka_unit_test(test_error_one_line),
        cmocka_unit_test(test_tokenizer_needs_space_piece),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && rc == 0) rc = 1;
    return rc;
}
