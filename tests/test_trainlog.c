// test_trainlog.c — CSV log (header, rows, resume trimming), progress formatting, plot script.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "training/trainlog.h"
#include "util.h"
#include "testutil.h"

static char dir[256];

static char *slurp(const char *path) {
    size_t n;
    char *s = tern_read_file(path, &n);
    if (!s) fail_msg("%s", tern_last_error());
    return s;
}

static void test_csv(void **st) {
    (void)st;
    char path[300];
    snprintf(path, sizeof path, "%s/train.csv", dir);
    tern_trainlog l;
    assert_int_equal(tern_trainlog_open(&l, path, 0), 0);
    for (long s = 10; s <= 40; s += 10)
        assert_int_equal(tern_trainlog_row(&l, s, s * 256, 3.5f - s * 0.01f, 2.4e-3f, 0.75, 1234.56, s == 20 ? 3.25f : NAN), 0);
    tern_trainlog_close(&l);
    char *txt = slurp(path);
    assert_string_equal(txt,
                        "step,tokens,loss,lr,grad_norm,tokens_per_s,val_loss\n"
                        "10,2560,3.400000,0.0024,0.75,1234.6,\n"
                        "20,5120,3.300000,0.0024,0.75,1234.6,3.250000\n"
                        "30,7680,3.200000,0.0024,0.75,1234.6,\n"
                        "40,10240,3.100000,0.0024,0.75,1234.6,\n");
    free(txt);
    // resume from step 20: rows 30, 40 dropped, new rows appended, header not repeated
    assert_int_equal(tern_trainlog_open(&l, path, 20), 0);
    assert_int_equal(tern_trainlog_row(&l, 30, 7680, 3.0f, 1e-3f, 1.5, 99.0, NAN), 0);
    tern_trainlog_close(&l);
    txt = slurp(path);
    assert_string_equal(txt,
                        "step,tokens,loss,lr,grad_norm,tokens_per_s,val_loss\n"
                        "10,2560,3.400000,0.0024,0.75,1234.6,\n"
                        "20,5120,3.300000,0.0024,0.75,1234.6,3.250000\n"
                        "30,7680,3.000000,0.001,1.5,99.0,\n");
    free(txt);
    // keep_upto < 0: plain append
    assert_int_equal(tern_trainlog_open(&l, path, -1), 0);
    assert_int_equal(tern_trainlog_row(&l, 40, 1, 1.0f, 1e-3f, 1, 1, NAN), 0);
    tern_trainlog_close(&l);
    txt = slurp(path);
    assert_non_null(strstr(txt, "\n40,1,"));
    free(txt);
    // fresh run over an old log: every row dropped
    assert_int_equal(tern_trainlog_open(&l, path, 0), 0);
    tern_trainlog_close(&l);
    txt = slurp(path);
    assert_string_equal(txt, "step,tokens,loss,lr,grad_norm,tokens_per_s,val_loss\n");
    free(txt);
    // not a log
    snprintf(path, sizeof path, "%s/other.csv", dir);
    FILE *f = fopen(path, "w");
    fputs("a,b,c\n1,2,3\n", f);
    fclose(f);
    assert_int_equal(tern_trainlog_open(&l, path, 0), -1);
    assert_non_null(strstr(tern_last_error(), "not a tern training log"));
    assert_non_null(strstr(tern_last_error(), path));
    txt = slurp(path);
    assert_string_equal(txt, "a,b,c\n1,2,3\n");   // untouched
    free(txt);
    assert_int_equal(tern_trainlog_open(&l, "/nonexistent/dir/t.csv", 0), -1);
    assert_non_null(strstr(tern_last_error(), "/nonexistent/dir/t.csv"));
}

static void test_format(void **st) {
    (void)st;
    char b[256];
    tern_progress_format(b, sizeof b, 120, 2000, 3.2141f, 2.31e-3f, 0.912, 12345.0, 192.0);
    assert_string_equal(b, "step 120/2000 | loss 3.214 | lr 2.3e-3 | gnorm 0.91 | 12.3k tok/s | ETA 3m12s");
    tern_format_duration(45.2, b, sizeof b);   assert_string_equal(b, "45s");
    tern_format_duration(7500, b, sizeof b);   assert_string_equal(b, "2h05m");
    tern_format_duration(-1, b, sizeof b);     assert_string_equal(b, "?");
    tern_format_duration(NAN, b, sizeof b);    assert_string_equal(b, "?");
    tern_format_rate(850, b, sizeof b);        assert_string_equal(b, "850");
    tern_format_rate(1.25e6, b, sizeof b);     assert_string_equal(b, "1.25M");
    tern_format_sci(0, b, sizeof b);           assert_string_equal(b, "0");
    tern_format_sci(9.96e-4, b, sizeof b);     assert_string_equal(b, "1.0e-3");
    tern_format_sci(1.5e-3, b, sizeof b);      assert_string_equal(b, "1.5e-3");
    tern_format_sci(0.1, b, sizeof b);         assert_string_equal(b, "1.0e-1");
}

static void test_progress_lines(void **st) {
    (void)st;
    char path[300];
    snprintf(path, sizeof path, "%s/progress.txt", dir);
    FILE *f = fopen(path, "w+");
    tern_progress p;
    tern_progress_init(&p, f, 5);
    assert_int_equal(p.tty, 0);   // a file is not a terminal
    for (long s = 1; s <= 12; s++) tern_progress_update(&p, s, 12, 2.0f, 1e-3f, 0.5, 100, 1);
    tern_progress_message(&p, "eval: val loss %.2f", 1.5);
    tern_progress_done(&p);
    fclose(f);
    char *txt = slurp(path);
    assert_string_equal(txt,
                        "step 5/12 | loss 2.000 | lr 1.0e-3 | gnorm 0.50 | 100 tok/s | ETA 1s\n"
                        "step 10/12 | loss 2.000 | lr 1.0e-3 | gnorm 0.50 | 100 tok/s | ETA 1s\n"
                        "step 12/12 | loss 2.000 | lr 1.0e-3 | gnorm 0.50 | 100 tok/s | ETA 1s\n"
                        "eval: val loss 1.50\n");
    free(txt);
    // tty mode: in-place redraw with \r, padding over a longer previous line
    f = fopen(path, "w+");
    tern_progress_init(&p, f, 5);
    p.tty = 1;
    tern_progress_update(&p, 9, 10, 2.0f, 1e-3f, 0.5, 100, 1);
    tern_progress_update(&p, 10, 10, 2.0f, 1e-3f, 0.5, 100, 1);
    tern_progress_done(&p);
    fclose(f);
    txt = slurp(path);
    assert_string_equal(txt,
                        "\rstep 9/10 | loss 2.000 | lr 1.0e-3 | gnorm 0.50 | 100 tok/s | ETA 1s"
                        "\rstep 10/10 | loss 2.000 | lr 1.0e-3 | gnorm 0.50 | 100 tok/s | ETA 1s\n");
    free(txt);
}

static void test_plot_script(void **st) {
    (void)st;
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) TU_SKIP("gnuplot not installed (scripts/install-deps.sh demo)");
    char csv[300], png[300], cmd[900];
    snprintf(csv, sizeof csv, "%s/plot.csv", dir);
    snprintf(png, sizeof png, "%s/plot.png", dir);
    tern_trainlog l;
    assert_int_equal(tern_trainlog_open(&l, csv, 0), 0);
    for (long s = 1; s <= 30; s++)
        tern_trainlog_row(&l, s, s * 100, 5.0f / (float)s, 1e-3f, 1.0, 50, s % 10 == 0 ? 6.0f / (float)s : NAN);
    tern_trainlog_close(&l);
    snprintf(cmd, sizeof cmd, "scripts/plot_loss.sh '%s' '%s' >/dev/null", csv, png);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(png, "rb");
    assert_non_null(f);
    unsigned char magic[8];
    assert_int_equal(fread(magic, 1, 8, f), 8);
    fclose(f);
    assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
    // a file that is not a log is refused
    snprintf(cmd, sizeof cmd, "scripts/plot_loss.sh configs/tiny.cfg '%s' 2>/dev/null", png);
    assert_int_not_equal(system(cmd), 0);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tern_test_trainlog_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv), cmocka_unit_test(test_format),
        cmocka_unit_test(test_progress_lines), cmocka_unit_test(test_plot_script),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && rc == 0) rc = 1;
    return rc;
}
