// test_tokfile.c — token files: write/read round trips (uint16 and uint32), every corruption
// (magic, version, size mismatch, id >= vocab, width, truncation) -> one error naming the file,
// atomic writes; and the tern-tokenizer command end to end (train, encode with a train/val split
// at document boundaries, decode back to the exact text) and its bad-input errors.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "tokenizers/tokenizer.h"
#include "formats/tokfile.h"
#include "util.h"
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_tool[1024]; // build dir's tern-tokenizer, from argv[0]
// scratch files in the build dir of this binary (the Makefile passes TEST_TMPD)
#ifndef TEST_TMPD
#define TEST_TMPD "build/test_tokfile_tmp"
#endif
#define TMPD TEST_TMPD

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void expect_open_fails(const char *path, const char *needle) {
    tern_tokfile f;
    if (tern_tokfile_open(&f, path) == 0) fail_msg("%s: opened a bad token file (expected '%s')", path, needle);
    const char *e = tern_last_error();
    if (strncmp(e, path, strlen(path)) != 0 || !strstr(e, needle)) fail_msg("error '%s' lacks '%s'", e, needle);
}

// no leftover temporary files in TMPD
static void no_tmp_files(void) {
    FILE *p = popen("ls " TMPD " | grep -c '\\.tmp\\.' ", "r");
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    assert_int_equal(n, 0);
}

static void test_round_trip(void **st) {
    (void)st;
    int n = 10007;
    int *ids = malloc((size_t)n * sizeof(int)), *back = malloc((size_t)n * sizeof(int));
    for (int width = 2; width <= 4; width += 2) {
        int vocab = width == 2 ? 65536 : 100000;
        for (int i = 0; i < n; i++) ids[i] = (int)((i * 7919u) % (unsigned)vocab);
        ids[0] = vocab - 1;
        assert_int_equal(tern_tokfile_write(TMPD "/a.tok", ids, (size_t)n, vocab, width, 0x1234abcdULL), 0);
        tern_tokfile f;
        assert_int_equal(tern_tokfile_open(&f, TMPD "/a.tok"), 0);
        assert_int_equal(f.width, width);
        assert_int_equal(f.vocab_size, vocab);
        assert_int_equal(f.n_tokens, n);
        assert_true(f.tokenizer_hash == 0x1234abcdULL);
        tern_tokfile_read(&f, 0, n, back);
        assert_memory_equal(ids, back, (size_t)n * sizeof(int));
        assert_int_equal(tern_tokfile_get(&f, 5), ids[5]);
        tern_tokfile_close(&f);
        struct stat s;
        stat(TMPD "/a.tok", &s);
        assert_int_equal(s.st_size, TERN_TOKFILE_HEADER + (long)n * width);
    }
    // width 0 picks 2 for small vocabularies; an empty token file is valid
    assert_int_equal(tern_tokfile_write(TMPD "/e.tok", ids, 0, 512, 0, 1), 0);
    tern_tokfile f;
    assert_int_equal(tern_tokfile_open(&f, TMPD "/e.tok"), 0);
    assert_int_equal(f.n_tokens, 0);
    assert_int_equal(f.width, 2);
    tern_tokfile_close(&f);
    // the boundary: ids of a 65536-token vocabulary (0..65535) fit 2 bytes, one more needs 4
    assert_int_equal(tern_tokfile_width_for(65536), 2);
    assert_int_equal(tern_tokfile_width_for(65537), 4);
    assert_int_equal(tern_tokfile_width_for(1), 2);
    no_tmp_files();
    free(ids);
    free(back);
}

static void test_corrupt(void **st) {
    (void)st;
    int ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i;
    assert_int_equal(tern_tokfile_write(TMPD "/g.tok", ids, 100, 300, 2, 7), 0);
    size_t n;
    unsigned char *good = (unsigned char *)tern_read_file(TMPD "/g.tok", &n), *b = malloc(n + 8);
    assert_int_equal(n, 64 + 200);
    const char *p = TMPD "/c.tok";
    write_bytes(p, good, 0);
    expect_open_fails(p, "truncated");
    write_bytes(p, good, 40);
    expect_open_fails(p, "truncated");
    memcpy(b, good, n); b[0] = 'X';
    write_bytes(p, b, n);
    expect_open_fails(p, "bad magic");
    memcpy(b, good, n); b[8] = 9;
    write_bytes(p, b, n);
    expect_open_fails(p, "version 9");
    memcpy(b, good, n); b[20] = 3;
    write_bytes(p, b, n);
    expect_open_fails(p, "token width 3");
    memcpy(b, good, n); b[16] = 0; b[17] = 0; b[18] = 2; // vocab 131072 with 2-byte ids
    write_bytes(p, b, n);
    expect_open_fails(p, "does not fit");
    write_bytes(p, good, n - 1); // size mismatch (truncated)
    expect_open_fails(p, "size mismatch");
    memcpy(b, good, n); b[n] = 0; b[n + 1] = 0;
    write_bytes(p, b, n + 2); // one token too many
    expect_open_fails(p, "size mismatch");
    memcpy(b, good, n); b[24] = 0xff; b[31] = 0x7f; // absurd count (overflow-safe)
    write_bytes(p, b, n);
    expect_open_fails(p, "size mismatch");
    memcpy(b, good, n); b[64 + 2 * 57] = 0x2c; b[64 + 2 * 57 + 1] = 0x01; // token 57 = 300 >= vocab
    write_bytes(p, b, n);
    expect_open_fails(p, "token 57 has id 300 >= vocab size 300");
    memcpy(b, good, n); b[50] = 1;
    write_bytes(p, b, n);
    expect_open_fails(p, "reserved");
    expect_open_fails(TMPD "/missing.tok", "cannot open");
    // writer: id out of range and width/vocab mismatch -> nothing written
    ids[3] = 300;
    assert_int_equal(tern_tokfile_write(TMPD "/w.tok", ids, 100, 300, 2, 7), -1);
    assert_non_null(strstr(tern_last_error(), "out of range"));
    assert_false(exists(TMPD "/w.tok"));
    assert_int_equal(tern_tokfile_write(TMPD "/w.tok", ids, 10, 70000, 2, 7), -1);
    assert_non_null(strstr(tern_last_error(), "does not fit token width 2"));
    assert_false(exists(TMPD "/w.tok"));
    no_tmp_files();
    free(good);
    free(b);
}

// ---------------------------------------------------------------------------------------------
// the command

// run the tool; returns exit status, stderr in err
static int run(char *err, size_t errn, const char *fmt, ...) {
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>" TMPD "/stderr.txt >" TMPD "/stdout.txt", g_tool, args);
    int rc = system(cmd);
    size_t n = 0;
    char *e = tern_read_file(TMPD "/stderr.txt", &n);
    snprintf(err, errn, "%s", e ? e : "");
    free(e);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 255;
}

// one error line naming the file and the problem, status 1
static void expect_error(const char *needle_file, const char *needle, const char *fmt, const char *arg) {
    char err[4096];
    int rc = run(err, sizeof err, fmt, arg);
    if (rc != 1) fail_msg("'%s %s': exit %d, expected 1 (stderr: %s)", fmt, arg, rc, err);
    char *nl = strchr(err, '\n');
    if (!nl || nl[1] != 0) fail_msg("expected one error line, got: %s", err);
    if (strncmp(err, "tern-tokenizer: ", 16) != 0 || !strstr(err, needle_file) || !strstr(err, needle))
        fail_msg("error '%s' lacks '%s' / '%s'", err, needle_file, needle);
}

static void test_command(void **st) {
    (void)st;
    char err[4096];
    // a small corpus with paragraphs (blank lines): 120 KB of tiny-shakespeare
    size_t n;
    char *text = tern_read_file("data/tinyshakespeare/input.txt", &n);
    assert_non_null(text);
    n = 120000;
    write_bytes(TMPD "/in.txt", text, n);
    assert_int_equal(run(err, sizeof err, "train -q -v 400 -o " TMPD "/t.tkz " TMPD "/in.txt"), 0);
    assert_int_equal(run(err, sizeof err, "encode -q -t " TMPD "/t.tkz -o " TMPD "/tr.tok --val " TMPD
                                          "/va.tok --val-frac 0.2 " TMPD "/in.txt"),
                     0);
    // the split is at a paragraph boundary: the validation part starts right after a blank line
    assert_int_equal(run(err, sizeof err, "decode -t " TMPD "/t.tkz -o " TMPD "/tr.txt " TMPD "/tr.tok"), 0);
    assert_int_equal(run(err, sizeof err, "decode -t " TMPD "/t.tkz -o " TMPD "/va.txt " TMPD "/va.tok"), 0);
    size_t a, b;
    char *tr = tern_read_file(TMPD "/tr.txt", &a), *va = tern_read_file(TMPD "/va.txt", &b);
    assert_true(a + b == n && memcmp(tr, text, a) == 0 && memcmp(va, text + a, b) == 0);
    assert_true(a >= 96000 && a < 100000 && text[a - 1] == '\n' && text[a - 2] == '\n');
    // token files carry the tokenizer's hash and vocab; bos starts each part
    tern_tokenizer t;
    assert_int_equal(tern_tokenizer_load(&t, TMPD "/t.tkz"), 0);
    tern_tokfile f;
    assert_int_equal(tern_tokfile_open(&f, TMPD "/va.tok"), 0);
    assert_true(f.tokenizer_hash == t.hash && f.vocab_size == 400 && f.width == 2);
    assert_int_equal(tern_tokfile_get(&f, 0), TERN_TOK_BOS);
    tern_tokfile_close(&f);
    // the same training run again gives a byte-identical tokenizer file
    assert_int_equal(run(err, sizeof err, "train -q -v 400 -o " TMPD "/t2.tkz " TMPD "/in.txt"), 0);
    size_t n1, n2;
    char *f1 = tern_read_file(TMPD "/t.tkz", &n1), *f2 = tern_read_file(TMPD "/t2.tkz", &n2);
    assert_true(n1 == n2 && memcmp(f1, f2, n1) == 0);
    free(f1);
    free(f2);

    // bad inputs: one line naming the file, exit 1, nothing written
    write_bytes(TMPD "/empty.txt", "", 0);
    expect_error(TMPD "/empty.txt", "empty file", "train -q -o " TMPD "/x.tkz %s", TMPD "/empty.txt");
    expect_error(TMPD "/empty.txt", "empty file", "encode -q -t " TMPD "/t.tkz -o " TMPD "/x.tok %s", TMPD "/empty.txt");
    expect_error("vocab size 200", "minimum 260", "train -q -v 200 -o " TMPD "/x.tkz %s", TMPD "/in.txt");
    expect_error("vocab size 99999999", "out of range", "train -q -v 99999999 -o " TMPD "/x.tkz %s", TMPD "/in.txt");
    expect_error(TMPD "/nope.txt", "cannot open", "train -q -o " TMPD "/x.tkz %s", TMPD "/nope.txt");
    assert_false(exists(TMPD "/x.tkz"));
    assert_false(exists(TMPD "/x.tok"));
    // corrupt tokenizer: truncated, wrong magic
    char *tk = tern_read_file(TMPD "/t.tkz", &n1);
    write_bytes(TMPD "/trunc.tkz", tk, n1 - 5);
    expect_error(TMPD "/trunc.tkz", "truncated", "encode -q -t %s -o " TMPD "/x.tok " TMPD "/in.txt", TMPD "/trunc.tkz");
    tk[1] = 'Q';
    write_bytes(TMPD "/magic.tkz", tk, n1);
    expect_error(TMPD "/magic.tkz", "bad magic", "decode -t %s " TMPD "/va.tok", TMPD "/magic.tkz");
    free(tk);
    assert_false(exists(TMPD "/x.tok"));
    // corrupt token files
    char *tok = tern_read_file(TMPD "/va.tok", &n1);
    write_bytes(TMPD "/trunc.tok", tok, n1 - 1);
    expect_error(TMPD "/trunc.tok", "size mismatch", "decode -t " TMPD "/t.tkz %s", TMPD "/trunc.tok");
    tok[64 + 10] = (char)0xff;
    tok[64 + 11] = (char)0xff;
    write_bytes(TMPD "/big.tok", tok, n1);
    expect_error(TMPD "/big.tok", "id 65535 >= vocab size 400", "decode -t " TMPD "/t.tkz %s", TMPD "/big.tok");
    free(tok);
    // a token file made with another tokenizer
    assert_int_equal(run(err, sizeof err, "train -q -v 300 -o " TMPD "/o.tkz " TMPD "/in.txt"), 0);
    expect_error(TMPD "/va.tok", "different tokenizer", "decode -t " TMPD "/o.tkz %s", TMPD "/va.tok");
    // bad flags
    expect_error("--width", "must be 2 or 4", "encode -t " TMPD "/t.tkz --width %s -o x.tok in.txt", "3");
    expect_error("--bogus", "unknown option", "train %s", "--bogus");
    // a tokenizer whose vocab (70000) does not fit 2-byte ids: --width 2 is refused, nothing written
    {
        FILE *fp = fopen(TMPD "/big.tkz", "wb");
        uint32_t hdr[4] = {1, 70000, 1, 0};
        fwrite("TERNTKZ\0", 1, 8, fp);
        fwrite(hdr, 4, 4, fp);
        for (int i = 0; i < 70000; i++) {
            char piece[32];
            unsigned char ty = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
            if (i < 3) snprintf(piece, sizeof piece, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            else if (i < 259) snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
            else if (i == 259) snprintf(piece, sizeof piece, "\xe2\x96\x81");
            else snprintf(piece, sizeof piece, "w%d", i);
            float sc = i < 259 ? 0.0f : -(float)i;
            uint16_t len = (uint16_t)strlen(piece);
            fwrite(&ty, 1, 1, fp);
            fwrite(&sc, 4, 1, fp);
            fwrite(&len, 2, 1, fp);
            fwrite(piece, 1, len, fp);
        }
        fclose(fp);
        expect_error(TMPD "/big.tkz", "does not fit token width 2", "encode -q --width 2 -t %s -o " TMPD "/x.tok " TMPD
                                                                     "/in.txt", TMPD "/big.tkz");
        assert_false(exists(TMPD "/x.tok"));
        // the default width for it is 4
        write_bytes(TMPD "/w.txt", "w300 w301 x", 11);
        assert_int_equal(run(err, sizeof err, "encode -q -t " TMPD "/big.tkz -o " TMPD "/w4.tok " TMPD "/w.txt"), 0);
        tern_tokfile g;
        assert_int_equal(tern_tokfile_open(&g, TMPD "/w4.tok"), 0);
        assert_int_equal(g.width, 4);
        assert_int_equal(g.vocab_size, 70000);
        tern_tokfile_close(&g);
    }
    // a file too short to split
    write_bytes(TMPD "/short.txt", "h", 1);
    expect_error(TMPD "/short.txt", "too short", "encode -q -t " TMPD "/t.tkz -o " TMPD "/x.tok --val " TMPD
                                                 "/y.tok %s", TMPD "/short.txt");
    assert_false(exists(TMPD "/x.tok"));
    assert_false(exists(TMPD "/y.tok"));
    no_tmp_files();
    tern_tokenizer_free(&t);
    free(tr);
    free(va);
    free(text);
}

int main(int argc, char **argv) {
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    char *dir = dirname(dirname(self)); // build/tests/test_tokfile -> build
    snprintf(g_tool, sizeof g_tool, "%s/tern-tokenizer", dir);
    if (system("rm -rf " TMPD " && mkdir -p " TMPD) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_command),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0 && system("rm -rf " TMPD) != 0) return 1;
    return rc;
}
