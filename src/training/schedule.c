// schedule.c — see schedule.h for the formulas.
#include "training/schedule.h"

#include <math.h>

float tern_lr_at(const tern_run_config *r, long s) {
    double lr = r->lr, lr2 = r->lr2, lmin = r->lr_min;
    long W = r->warmup > 0 ? r->warmup : 0, S = r->steps;
    if (s < 0) s = 0;
    if (s < W && s < S) return (float)(lr * (double)(s + 1) / (double)W);
    if (s >= S) return (float)(r->schedule == TERN_SCHED_CONSTANT ? lr : lmin);
    double p = S > W ? (double)(s - W) / (double)(S - W) : 1.0;
    switch (r->schedule) {
    case TERN_SCHED_CONSTANT: return (float)lr;
    case TERN_SCHED_LINEAR: return (float)(lr + (lmin - lr) * p);
    case TERN_SCHED_COSINE: return (float)(lmin + (lr - lmin) * 0.5 * (1.0 + cos(M_PI * p)));
    default: {
        long mid = S / 2;
        if (s < mid) {
            double q = mid > W ? (double)(s - W) / (double)(mid - W) : 0.0;
            return (float)(lr + ((lr + lr2) * 0.5 - lr) * q);
        }
        double q = S > mid ? (double)(s - mid) / (double)(S - mid) : 1.0;
        return (float)(lr2 + (lmin - lr2) * q);
    }
    }
}

float tern_wd_at(const tern_run_config *r, long s) {
    if (r->schedule == TERN_SCHED_TWO_STAGE && s >= r->steps / 2) return 0.0f;
    return r->weight_decay;
}

float tern_lambda_at(const tern_run_config *r, long s) {
    if (r->to_ternary_ramp <= 0) return 1.0f;
    if (s < 0) s = 0;
    double l = (double)(s + 1) / (double)r->to_ternary_ramp;
    return (float)(l < 1.0 ? l : 1.0);
}
