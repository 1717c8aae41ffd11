// gemm_bf16.h — products in bf16 with fp32 accumulation for precision=mixed (docs/TRAINING.md
// "Mixed-precision backward"): the weight gradient of a ternary BitLinear, and a general product
// (the head's three, the attention's seven). Training only (libtern).
//
//   dW[m,k] += sum_n bf16(dy[n,m] / sx[n]) * xq[n,k]        m < M, k < K, n < N
//
// xq are the int8 activations of the forward (x_eff = xq / sx), exact in bf16; dy / sx is rounded
// to bf16 (8 significant bits, round to nearest even: relative error <= 2^-8); products and sums are fp32. Compared
// with the fp32 path (dy^T . x_eff in sgemm) each term differs by at most 2^-8 of its size, plus
// the fp32 accumulation error of a different summation order.
//
// Kinds: PLAIN, the reference (plain C loops, no packing, sums in n order); AVX2 (bf16 widened to
// fp32, FMA); AVX512BF16 (vdpbf16ps, AVX512-BF16). The vector kinds pack dy/sx and xq into bf16
// pairs along n first (caller's scratch). All kinds round dy/sx identically; they differ only in
// the order of the fp32 sums.
#ifndef TERN_GEMM_BF16_H
#define TERN_GEMM_BF16_H
#include <stddef.h>
#include <stdint.h>

typedef enum { TERN_GEMM_AUTO = 0, TERN_GEMM_PLAIN, TERN_GEMM_AVX2, TERN_GEMM_AVX512BF16 } tern_gemm_kind;
#define TERN_GEMM_NKINDS 4

// AUTO resolves to the best this CPU runs (avx512bf16 > avx2 > plain); env TERN_GEMM (plain|avx2|
// avx512bf16) picks a lower one (an unknown or unavailable value: one warning, ignored).
tern_gemm_kind tern_gemm_best(void);
int tern_gemm_available(tern_gemm_kind k);        // 1 if this CPU and build run it (AUTO, PLAIN: 1)
const char *tern_gemm_name(tern_gemm_kind k);

// fp32 -> bf16 bits, round to nearest even (NaN stays NaN); bf16 -> fp32 is exact.
static inline uint16_t tern_bf16_of(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
static inline float tern_f32_of_bf16(uint16_t b) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)b << 16};
    return v.f;
}

// Scratch bytes tern_gemm_dw_bf16 needs (64-byte aligned buffer) for these sizes (0 for PLAIN).
size_t tern_gemm_dw_scratch(int M, int K, int N);
// dw[m*ldw + k] += sum_n bf16(dy[n*ldy + m] / sx[n]) * xq[n*ldx + k]. sx[n] > 0. scratch: NULL for
// PLAIN, else tern_gemm_dw_scratch(M, K, N) bytes, 64-byte aligned. A kind the CPU lacks falls back
// to tern_gemm_best(). OpenMP inside (threads write disjoint blocks of dw).
void tern_gemm_dw_bf16(int M, int K, int N, const float *dy, int ldy, const float *sx, const int8_t *xq, size_t ldx, float *dw,
                       int ldw, void *scratch, tern_gemm_kind kind);

// The general product in bf16 with fp32 sums (the head's three products under precision=mixed):
//   c[m*ldc + n] (+)= sum_k bf16(A(m,k)) * bf16(B(k,n)),  A(m,k) = a[m*sam + k*sak], B(k,n) = b[k*sbk + n*sbn]
// m < M, n < Nc, k < K; accumulate 1: added to c, 0: stored (c's old values unread). Each input
// rounded to bf16 (relative error <= 2^-8 each, so <= ~2^-7 per product). Same kinds, scratch
// (tern_gemm_bf16_scratch bytes; NULL for PLAIN) and threading as above; an operand with a unit
// stride (A: sam or sak 1; B: sbn or sbk 1) packs with SIMD, others with plain loops.
size_t tern_gemm_bf16_scratch(int M, int Nc, int K);
void tern_gemm_bf16(int M, int Nc, int K, const float *a, long sam, long sak, const float *b, long sbk, long sbn, float *c, int ldc,
                    int accumulate, void *scratch, tern_gemm_kind kind);
// The same product scaled, c (+)= alpha * product, in the calling thread alone (no OpenMP region):
// for the small products made inside a parallel region (the attention's, per batch row and head).
// alpha multiplies the fp32 sums (of each 256-pair chunk of the contraction at the vector levels).
void tern_gemm_bf16_serial(int M, int Nc, int K, float alpha, const float *a, long sam, long sak, const float *b, long sbk, long sbn,
                           float *c, int ldc, int accumulate, void *scratch, tern_gemm_kind kind);

// B packed once for several serial products (the attention's keys and values, per batch row and
// kv head): tern_gemm_bf16_bpack packs B(k,n) = b[k*sbk + n*sbn], k < Kp, n < Ncp into bp
// (tern_gemm_bf16_bpack_bytes(Ncp, Kp) bytes, 64-byte aligned; nothing for PLAIN, which reads b).
// tern_gemm_bf16_serial_bp is tern_gemm_bf16_serial on the first Nc <= Ncp columns and K <= Kp rows
// of that B (K even, or K == Kp: a pair is never split) with the same bits as packing B per call;
// scratch holds A's packing only (tern_gemm_bf16_scratch's bytes suffice). b and its strides are
// still passed: the plain level and calls outside that contract use them.
size_t tern_gemm_bf16_bpack_bytes(int Ncp, int Kp);
void tern_gemm_bf16_bpack(int Ncp, int Kp, const float *b, long sbk, long sbn, void *bp, tern_gemm_kind kind);
void tern_gemm_bf16_serial_bp(int M, int Nc, int K, float alpha, const float *a, long sam, long sak, const float *b, long sbk, long sbn,
                              const void *bp, int Kp, float *c, int ldc, int accumulate, void *scratch, tern_gemm_kind kind);

#endif
