// testutil.h — shared helpers for tern's cmocka tests: random fills, finite-difference gradient
// checks, and running a function in a child process to test fatal errors.
#ifndef TERN_TESTUTIL_H
#define TERN_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "engine/ops.h"
#include "training/trainer.h"

void tu_fill_normal(float *x, long n, uint64_t seed, float std);
void tu_fill_uniform(float *x, long n, uint64_t seed, float lo, float hi);

// Finite-difference gradient check of L = sum(out * R) (R fixed random) w.r.t. every input.
// build() runs the op(s) on the inputs (leaves in a tern_params store) and returns 'out'.
typedef tern_tensor *(*tu_build_fn)(tern_graph *g, tern_tensor **in, void *ctx);
typedef struct {
    double worst_abs;   // largest |analytic - numeric|
    double worst_ratio; // largest |analytic - numeric| / (atol + rtol * |numeric|); pass iff <= 1
    int worst_in;       // input index of the worst element
    long worst_idx;     // element index of the worst element
    long n_checked;
} tu_gc_result;

// Checks up to max_elems elements per input (all when the input is small). h: FD step.
tu_gc_result tu_gradcheck(const char *name, tu_build_fn build, void *ctx, tern_tensor **in, int n_in, double h,
                          double atol, double rtol, int max_elems);
// Prints the table of worst errors per op gathered so far (for the closing report).
void tu_gradcheck_summary(void);

// A quiet trainer for config c, asserted to start (not resuming); tu_trainer_run also runs it to its
// last step, asserting success.
void tu_trainer_start(tern_trainer *t, const tern_config *c);
void tu_trainer_run(tern_trainer *t, const tern_config *c);

// Run fn(arg) in a forked child; returns its exit status and captures up to n-1 bytes of stderr.
int tu_run_child(void (*fn)(void *), void *arg, char *err, size_t n);

// Loud skips. TU_SKIP("h5dump not installed") prints "tern-skip: <test binary>: <reason>" on stdout
// (make test counts these lines and repeats them under its summary line) and marks the current
// cmocka test skipped. With TERN_TEST_STRICT=1 in the environment (.ci/run sets it: CI installs
// every tool the tests use) the test fails instead. tu_skip_part() reports a part of a test that
// could not run (e.g. an optional corpus outside the repository): printed and counted, never fatal.
#define TU_SKIP(...) do { tu_skip_note(1, __VA_ARGS__); skip(); return; } while (0)
void tu_skip_note(int strict_fails, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define tu_skip_part(...) tu_skip_note(0, __VA_ARGS__)

#endif
