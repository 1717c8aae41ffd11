// vmath.h — vectorized exp for the training ops' and the runtime's hot loops (softmax,
// cross-entropy, SiLU).
//
// exp is evaluated with range reduction x = n ln2 + r (|r| <= ln2/2), a degree-6 polynomial for
// e^r and an exact scaling by 2^n, in AVX-512 (16 lanes), AVX2 (8 lanes), NEON (4 lanes) or plain
// C, chosen once from the CPU's features. All levels give identical bits, the row sums included
// (same operations, fused multiply-adds, one summation order: see vmath.c). Error: at most 2 ulp
// against a correctly rounded exp for results >= FLT_MIN (tests/test_vmath.c); x < -87.3365
// (results below FLT_MIN) gives 0, x > 88.7228 gives +inf, NaN gives NaN. Which path runs does
// not depend on the thread count.
#ifndef TERN_VMATH_H
#define TERN_VMATH_H

// y[i] = exp(x[i] - c) for i < n (y may be x, or NULL to only sum); returns sum_i exp(x[i] - c)
// (float lanes, summed in a fixed order).
float tern_vexp_shift(const float *x, float c, float *y, long n);
// The same y, in blocks of 64: bsum[k] = tern_vexp_shift(x + 64k, c, NULL, min(64, n - 64k)), bit
// for bit (y may be x, not NULL); the AVX-512 level does it in one pass without a call per block
// (the int8 KV cache's softmax, infer/runtime.c).
void tern_vexp_shift_blocks64(const float *x, float c, float *y, long n, float *bsum);
// s[i] = 1 / (1 + exp(-x[i])) for i < n (s may be x)
void tern_vsigmoid(const float *x, float *s, long n);

// Test hook: 0 = plain C, 1 = AVX2 (x86) or NEON (AArch64), 2 = AVX-512, -1 = the best this CPU
// has (the default).
// Returns -1 (and changes nothing) when the CPU lacks the requested level.
int tern_vmath_force(int level);

#endif
