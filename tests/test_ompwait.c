// test_ompwait.c — the OpenMP wait-policy choice (util.h tern_omp_busy, tern_omp_wait_policy):
// the busy rule against a table of hand-computed cases, and the restart itself: this binary runs
// itself as a child ("--child ALWAYS") under chosen environments and reads back what the restarted
// child saw (OMP_WAIT_POLICY, the restart marker, the describe phrase).
#include "testutil.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char self[4096];

static void test_busy_rule(void **state) {
    (void)state;
    // {load1, ncpu, threads, expected}: passive when load1 + threads > ncpu + 0.5
    const struct { double load; int ncpu, threads, busy; } c[] = {
        {0.0, 2, 2, 0},  {0.4, 2, 2, 0},   {0.6, 2, 2, 1},   {1.0, 2, 2, 1},  {16.0, 2, 2, 1},
        {16.0, 2, 1, 0}, // one thread: no barrier to lose a time slice at
        {0.0, 64, 64, 0}, {3.0, 64, 8, 0}, {56.4, 64, 8, 0}, {56.6, 64, 8, 1}, {60.0, 64, 8, 1},
        {1.2, 4, 3, 0},  {1.6, 4, 3, 1},   {5.0, 2, 0, 0},   {5.0, 0, 2, 0},  {-1.0, 2, 2, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int got = tern_omp_busy(c[i].load, c[i].ncpu, c[i].threads);
        if (got != c[i].busy) fprintf(stderr, "case %zu: load %.1f ncpu %d threads %d: got %d\n", i, c[i].load, c[i].ncpu, c[i].threads, got);
        assert_int_equal(got, c[i].busy);
    }
    assert_int_equal(tern_omp_busy(NAN, 2, 2), 0);
}

// runs "ENV self --child ALWAYS" and returns its three output lines joined by '|'
static void child(const char *env, int always, char *out, size_t n) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "env -u OMP_WAIT_POLICY -u TERN_OMP_REEXEC -u OMPI_COMM_WORLD_SIZE -u PMIX_RANK -u PMI_RANK %s '%s' --child %d",
             env, self, always);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t k = 0;
    out[0] = 0;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        k += (size_t)snprintf(out + k, n - k, "%s|", line);
        if (k >= n) k = n - 1;
    }
    assert_int_equal(pclose(p), 0);
}

static void test_restart(void **state) {
    (void)state;
    char out[2048];
    // always: restarted with passive, the marker says why, the phrase says so
    child("", 1, out, sizeof out);
    assert_non_null(strstr(out, "policy=passive|"));
    assert_non_null(strstr(out, "marker=always|"));
    assert_non_null(strstr(out, "wait passively (this program's default)"));
    // the user's choice wins: no restart, the policy untouched
    child("OMP_WAIT_POLICY=active", 1, out, sizeof out);
    assert_non_null(strstr(out, "policy=active|"));
    assert_non_null(strstr(out, "marker=(none)|"));
    assert_non_null(strstr(out, "OpenMP wait policy active (OMP_WAIT_POLICY)"));
    // under an MPI launcher: never exec behind it
    child("OMPI_COMM_WORLD_SIZE=2", 1, out, sizeof out);
    assert_non_null(strstr(out, "policy=(none)|marker=(none)|OpenMP workers spin"));
    // a single thread has no barriers: never passive on account of load, however busy
    child("OMP_NUM_THREADS=1", 0, out, sizeof out);
    assert_non_null(strstr(out, "policy=(none)|marker=(none)|"));
    // a team wider than any load can excuse (load + 100000 threads > CPUs): restarted, and says the load
    child("OMP_NUM_THREADS=100000", 0, out, sizeof out);
    assert_non_null(strstr(out, "policy=passive|marker=machine busy at start: load "));
    assert_non_null(strstr(out, "wait passively (machine busy at start: load "));
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--child")) {
        tern_omp_wait_policy(argv, atoi(argv[2]));
        const char *p = getenv("OMP_WAIT_POLICY"), *m = getenv("TERN_OMP_REEXEC");
        char buf[256];
        printf("policy=%s\nmarker=%s\n%s\n", p ? p : "(none)", m ? m : "(none)", tern_omp_wait_describe(buf, sizeof buf));
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) { fprintf(stderr, "test_ompwait: no /proc/self/exe\n"); return 1; }
    self[n] = 0;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_busy_rule), cmocka_unit_test(test_restart)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
