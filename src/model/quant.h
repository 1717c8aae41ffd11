// quant.h — the BitNet b1.58 quantizers as plain functions, shared by training (ops.c),
// export and the runtime so all three produce identical integers and scales.
// libc/libm/OpenMP only (part of the standalone runtime).
//
// Rounding rule, everywhere in tern: round half to even (rintf under the default rounding mode),
// the same as torch.round. So 0.5 -> 0, 1.5 -> 2, -2.5 -> -2.
//
//   weights (per tensor):  s_w = max(mean|W|, 1e-5);   Wq = clip(rint(W / s_w), -1, 1)
//   activations (per row): s_x = 127 / max(max|x|, 1e-5); xq = clip(rint(x * s_x), -128, 127)
//   BitLinear:             y = (xq . Wq^T) * (s_w / s_x)
#ifndef TERN_QUANT_H
#define TERN_QUANT_H
#include <math.h>
#include <stdint.h>

#define TERN_QUANT_EPS 1e-5f

// mean|w| summed in double over fixed 64Ki-element chunks (thread-count independent), max with eps
float tern_weight_scale(const float *w, long n);
void tern_weight_quantize(const float *w, long n, float s, float *wq);    // wq in {-1,0,1} as float
void tern_weight_quantize_i8(const float *w, long n, float s, int8_t *wq);
// Wq of W [M, K] packed for the int8 x ternary kernels (kernels.h, scale s) without a float copy:
// transposed 0 packs Wq [M, K], 1 packs Wq^T [K, M]; buf holds tern_tmat_bytes(rows, cols).
// The same bytes as tern_tmat_pack_f32 of tern_weight_quantize's output (or of its transpose).
typedef struct tern_tmat tern_tmat;
void tern_weight_pack_tmat(const float *w, int M, int K, float s, int transposed, tern_tmat *m, void *buf);
// per-row activation quantizer; returns s_x. xq holds integers in [-128,127]
float tern_act_quantize_row(const float *x, int n, float *xq);
float tern_act_quantize_row_i8(const float *x, int n, int8_t *xq);
// per-row gradient quantizer (precision=mixed's input gradient): s = 127 / max|d| with no floor,
// q = rint(d * s) in [-127, 127]; a row whose max|d| is 0, infinite, or so small that s overflows
// gives q = 0 and returns 1. NaN elements are skipped by the maximum and give 0.
float tern_grad_quantize_row_i8(const float *d, int n, int8_t *q);

// rint(v) clamped to [lo, hi], NaN -> 0. The one float-to-integer conversion for values that a
// damaged model can make NaN or infinite: converting those straight to an integer type is undefined
static inline int tern_rint_clamp(float v, int lo, int hi) {
    const float r = rintf(v);
    return r >= (float)hi ? hi : r <= (float)lo ? lo : r == r ? (int)r : 0;
}

#endif
