// test_schedule.c — LR / weight-decay / λ schedules against hand-computed values.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

// |a - b| <= tol + 3e-7·|b| in double (cmocka's assert_float_equal works in float)
#define assert_near(a, b, tol) do { double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol) + 3e-7 * fabs(b_); \
    if (!(fabs(a_ - b_) <= t_)) fail_msg("%s = %.17g, expected %.17g (tol %g)", #a, a_, b_, t_); } while (0)

#include "model/config.h"
#include "training/schedule.h"

static tern_run_config run_for(int sched, long steps, long warmup) {
    tern_config c;
    tern_config_defaults(&c);
    c.run.schedule = sched;
    c.run.steps = steps;
    c.run.warmup = warmup;
    c.run.lr = 2.4e-3f;
    c.run.lr2 = 1.5e-3f;
    c.run.lr_min = 0;
    assert_int_equal(tern_config_validate(&c), 0);
    return c.run;
}

#define NEAR(a, b) assert_near((a), (b), 1e-9)

static void test_warmup(void **st) {
    (void)st;
    for (int k = 0; k <= TERN_SCHED_CONSTANT; k++) {
        tern_run_config r = run_for(k, 1000, 100);
        NEAR(tern_lr_at(&r, 0), 2.4e-5);       // lr * 1/100
        NEAR(tern_lr_at(&r, 49), 1.2e-3);      // lr * 50/100
        NEAR(tern_lr_at(&r, 99), 2.4e-3);      // reaches peak at the last warmup step
        NEAR(tern_lr_at(&r, 100), 2.4e-3);     // schedule starts at the peak
        for (long s = 1; s < 100; s++) assert_true(tern_lr_at(&r, s) > tern_lr_at(&r, s - 1));
    }
    tern_run_config r = run_for(TERN_SCHED_CONSTANT, 10, 0);
    NEAR(tern_lr_at(&r, 0), 2.4e-3);
}

static void test_two_stage(void **st) {
    (void)st;
    tern_run_config r = run_for(TERN_SCHED_TWO_STAGE, 1000, 100);
    // stage 1: 2.4e-3 at s=100 → (2.4e-3+1.5e-3)/2 = 1.95e-3 at s=500 (linear)
    NEAR(tern_lr_at(&r, 300), 2.4e-3 - 0.45e-3 * 0.5);
    NEAR(tern_lr_at(&r, 499), 2.4e-3 - 0.45e-3 * 399.0 / 400.0);
    // midpoint drop to lr2, then linear to lr_min at S
    NEAR(tern_lr_at(&r, 500), 1.5e-3);
    NEAR(tern_lr_at(&r, 750), 0.75e-3);
    NEAR(tern_lr_at(&r, 999), 1.5e-3 / 500.0);
    NEAR(tern_lr_at(&r, 1000), 0);
    NEAR(tern_lr_at(&r, 5000), 0);
    assert_true(tern_lr_at(&r, 499) - tern_lr_at(&r, 500) > 4e-4);  // a real drop
    for (long s = 101; s < 1000; s++)
        if (s != 500) assert_true(tern_lr_at(&r, s) < tern_lr_at(&r, s - 1));
    // weight decay: on in stage 1, off in stage 2
    NEAR(tern_wd_at(&r, 0), 0.1);
    NEAR(tern_wd_at(&r, 499), 0.1);
    NEAR(tern_wd_at(&r, 500), 0);
    NEAR(tern_wd_at(&r, 999), 0);
    // lr_min > 0
    r.lr_min = 1e-4f;
    NEAR(tern_lr_at(&r, 750), 1.5e-3 + (1e-4 - 1.5e-3) * 0.5);
    NEAR(tern_lr_at(&r, 1000), 1e-4);
}

// odd step counts: mid = floor(S / 2); the LR drop and the weight-decay switch land on the same step
static void test_two_stage_odd(void **st) {
    (void)st;
    for (long S = 1001; S <= 1003; S += 2) {
        tern_run_config r = run_for(TERN_SCHED_TWO_STAGE, S, 100);
        long mid = S / 2;   // 500, 501
        // stage 1 at mid - 1: 2.4e-3 - 0.45e-3 * (mid - 1 - 100) / (mid - 100)
        NEAR(tern_lr_at(&r, mid - 1), 2.4e-3 - 0.45e-3 * (double)(mid - 101) / (double)(mid - 100));
        NEAR(tern_lr_at(&r, mid), 1.5e-3);                                   // the drop, at mid
        NEAR(tern_lr_at(&r, mid + 1), 1.5e-3 * (1.0 - 1.0 / (double)(S - mid)));
        NEAR(tern_lr_at(&r, S - 1), 1.5e-3 / (double)(S - mid));
        NEAR(tern_wd_at(&r, mid - 1), 0.1);                                  // decay until mid - 1
        NEAR(tern_wd_at(&r, mid), 0);                                        // off from mid on
        assert_true(tern_lr_at(&r, mid - 1) - tern_lr_at(&r, mid) > 4e-4);
    }
    // tiny odd runs: S = 5, W = 1: mid 2
    tern_run_config r = run_for(TERN_SCHED_TWO_STAGE, 5, 1);
    NEAR(tern_lr_at(&r, 0), 2.4e-3);
    NEAR(tern_lr_at(&r, 1), 2.4e-3);                  // stage 1: (1 - 1) / (2 - 1) = 0
    NEAR(tern_lr_at(&r, 2), 1.5e-3);
    NEAR(tern_lr_at(&r, 3), 1.0e-3);
    NEAR(tern_lr_at(&r, 4), 0.5e-3);
    NEAR(tern_wd_at(&r, 1), 0.1);
    NEAR(tern_wd_at(&r, 2), 0);
}

static void test_cosine_linear_constant(void **st) {
    (void)st;
    tern_run_config r = run_for(TERN_SCHED_COSINE, 1100, 100);
    r.lr_min = 2e-4f;
    NEAR(tern_lr_at(&r, 100), 2.4e-3);
    NEAR(tern_lr_at(&r, 600), 2e-4 + 2.2e-3 * 0.5);   // p = 0.5
    NEAR(tern_lr_at(&r, 350), 2e-4 + 2.2e-3 * 0.5 * (1 + cos(M_PI * 0.25)));
    NEAR(tern_lr_at(&r, 1100), 2e-4);
    for (long s = 101; s < 1100; s++) assert_true(tern_lr_at(&r, s) <= tern_lr_at(&r, s - 1));
    NEAR(tern_wd_at(&r, 1000), 0.1);

    r = run_for(TERN_SCHED_LINEAR, 1100, 100);
    NEAR(tern_lr_at(&r, 600), 1.2e-3);
    NEAR(tern_lr_at(&r, 850), 0.6e-3);
    NEAR(tern_lr_at(&r, 1100), 0);
    NEAR(tern_wd_at(&r, 1000), 0.1);

    r = run_for(TERN_SCHED_CONSTANT, 1100, 100);
    NEAR(tern_lr_at(&r, 600), 2.4e-3);
    NEAR(tern_lr_at(&r, 1099), 2.4e-3);
}

static void test_lambda(void **st) {
    (void)st;
    tern_run_config r = run_for(TERN_SCHED_TWO_STAGE, 1000, 100);
    NEAR(tern_lambda_at(&r, 0), 1);
    r.to_ternary_ramp = 200;
    NEAR(tern_lambda_at(&r, 0), 1.0 / 200);
    NEAR(tern_lambda_at(&r, 99), 0.5);
    NEAR(tern_lambda_at(&r, 199), 1);
    NEAR(tern_lambda_at(&r, 900), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warmup), cmocka_unit_test(test_two_stage), cmocka_unit_test(test_two_stage_odd),
        cmocka_unit_test(test_cosine_linear_constant), cmocka_unit_test(test_lambda),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
