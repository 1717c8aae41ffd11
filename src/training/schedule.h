// schedule.h — learning-rate, weight-decay and fp→ternary λ schedules.
//
// Steps are 0-based: tern_lr_at(run, s) is the LR of the s-th optimizer update, s = 0 .. steps-1
// (s >= steps returns the end value). W = run->warmup, S = run->steps, lr/lr2/lr_min from the run
// config (resolved by tern_config_validate). Warmup, all schedules: lr * (s+1) / W for s < W
// (linear from ~0; the last warmup step reaches lr). After warmup, p = (s - W) / (S - W) in [0,1]:
//   constant:  lr
//   linear:    lr + (lr_min - lr) * p
//   cosine:    lr_min + (lr - lr_min) * (1 + cos(pi * p)) / 2
//   two_stage  (BitNet b1.58 recipe; the default), mid = S / 2:
//     stage 1, W <= s < mid:  linear from lr (at s = W) toward (lr + lr2) / 2 (reached at s = mid),
//     stage 2, s >= mid:      drops to lr2, then linear from lr2 (at s = mid) to lr_min (at s = S).
//     With the ternary defaults lr = 2.4e-3, lr2 = 1.5e-3: 2.4e-3 → 1.95e-3, drop to 1.5e-3 → 0.
// Weight decay: two_stage: weight_decay for s < mid, 0 from mid on (stage 2 has no decay, as in
// BitNet b1.58); other schedules: weight_decay throughout.
// λ (to_ternary_ramp = R steps): min(1, (s+1) / R) for R > 0, else 1. The model blends
// w_eff = w + λ·(quant(w) - w) (and the same for activations): λ = 1 is pure BitNet.
#ifndef TERN_SCHEDULE_H
#define TERN_SCHEDULE_H
#include "model/config.h"

float tern_lr_at(const tern_run_config *run, long step);
float tern_wd_at(const tern_run_config *run, long step);
float tern_lambda_at(const tern_run_config *run, long step);

#endif
