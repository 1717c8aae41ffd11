// qmatvec.h — products of a logits (or embedding) matrix stored as a ggml type with activation
// vectors: what the runtime's output layer runs. libc/libm/OpenMP only (part of the runtime).
//
// Weight types: F32, F16, BF16 (float products), Q8_0, Q4_K, Q5_K, Q6_K (integer products).
// Levels (the kinds of kernels.h; AUTO resolves through tern_kernel_best()): plain C reference;
// x86-64: AVX2, AVX-VNNI (its Q8_0 products with the 256-bit vpdpbusd, the other types AVX2's),
// AVX-512 (any x86 CPU without F16C: plain); AArch64: NEON, and dotprod (sdot) for the dotprod
// and i8mm kinds. Every level gives bit-identical results: integer sums are exact, and the float
// arithmetic after them is defined below, operation by operation, and done in that order by every
// level (mul and add kept separate, never fused: this file is compiled with -ffp-contract=off).
//
// Activations (tern_qvec_prepare, plain C, shared by all levels): the vector x [n] is
//   F32/F16/BF16: used as is (float);
//   Q8_0: quantized per 32 elements (as ggml quantizes activations for Q8_0 weights):
//         d_b = amax_b / 127, q = clamp(rint(x * (127 / amax_b)), -127, 127) (d_b = 0, q = 0 if amax_b = 0);
//         bsum[b] = sum of q over block b;
//   Q4_K/Q5_K/Q6_K: per 256 (ggml's Q8_K): s = the element of largest |x| (first one), iscale = -127/s,
//         q = min(127, rint(iscale * x)), d = 1/iscale; bsum[k] = sum of q over elements 16k..16k+15.
// Row product, W row r against a prepared x (all float ops in this order):
//   F32/F16/BF16: 16 lanes, lane l accumulates L[l] = L[l] + w_i * x_i over i = l, l+16, l+32, ...
//         in increasing i (w_i converted to f32 exactly); result = reduce16(L).
//   Q8_0 (either layout): per 32-block b the exact I_b = sum_{32} w * q;
//         acc = acc + (float)I_b * (d_w[b] * d_x[b]), b increasing from acc = 0 (ggml's own order).
//   Q6_K: per 256-block b the exact integer I_b = sum_k sc_k * sum_{16} (q6 - 32) * q;
//         acc = acc + (float)I_b * (d_w[b] * d_x[b]), b increasing from acc = 0.
//   Q4_K/Q5_K: per block b, I1 = sum_j sc_j * sum_{32} q * qx, I2 = sum_j m_j * sum_{32} qx (exact);
//         acc = acc + ((float)I1 * (d_w[b] * d_x[b]) - (float)I2 * (dmin_w[b] * d_x[b])).
//   reduce16(L): for s = 8, 4, 2, 1: L[i] = L[i] + L[i + s] for i < s; result L[0].
#ifndef TERN_QMATVEC_H
#define TERN_QMATVEC_H
#include <stddef.h>
#include <stdint.h>
#include "kernels/kernels.h"

// Q8_0 rows repacked for the kernels (tern_qmat_repack), 16 rows interleaved so that one 64-byte
// vector holds 4 weights of each of 16 rows and one int32 lane sums one row's block:
//   rows in groups of 16 (the last group padded with zero rows: tern_qmat_bytes); group g starts
//   at byte g * 16 * row_bytes; in it block b (32 columns) takes TERN_QMAT_Q8_0X_BLOCK = 16 * 34
//   bytes at b * 544: 8 chunks of 64 bytes, chunk c = for rows i = 0..15 the 4 weights
//   32b + 4c .. 32b + 4c + 3 of row 16g + i, each stored as w + 128 (u8: w XOR 0x80); then the 16
//   rows' fp16 scales d_w (row i at 512 + 2i).
// The same bytes per row as ggml's Q8_0; products are bit-identical to those on the ggml layout.
#define TERN_QMAT_Q8_0X 1000
#define TERN_QMAT_Q8_0X_BLOCK (16 * 34)

typedef struct {
    int type;          // the weight type it was prepared for
    int n;             // elements
    const float *x;    // F32/F16/BF16: the activations
    int8_t *q;         // quantized types: [n]
    float *d;          // [n/32] (Q8_0) or [n/256] (k-quants)
    int16_t *bsum;     // k-quants: [n/16]
} tern_qvec;

// 1 if products with a matrix of this ggml type (or TERN_QMAT_Q8_0X) are implemented here
int tern_qmat_supported(int type);
// The layout type tern_qmat_repack turns `type` rows into (TERN_QMAT_Q8_0X for Q8_0), or type
// itself when it is used as stored.
int tern_qmat_layout(int type);
// Bytes of a [rows, n] matrix in `layout` (rows of row_bytes; TERN_QMAT_Q8_0X rounds rows up to 16)
size_t tern_qmat_bytes(int layout, int rows, size_t row_bytes);
// Rows r0..r1-1 of a [rows, n] matrix of ggml `type` (src row r at src + r * row_bytes) into dst
// (tern_qmat_bytes(tern_qmat_layout(type), rows, row_bytes) bytes, layout tern_qmat_layout(type));
// a plain copy for the other types. The call that writes row rows - 1 also zeroes the padding
// rows. Calls on disjoint row ranges may run in parallel.
void tern_qmat_repack(int type, const void *src, size_t row_bytes, int n, int rows, int r0, int r1, void *dst);
// One source row (row_bytes at `row`) as row r of such a dst (the same rule for the padding)
void tern_qmat_repack_row(int type, const void *row, size_t row_bytes, int n, int rows, int r, void *dst);
// Bytes of scratch tern_qvec_prepare needs for n elements (any type).
size_t tern_qvec_bytes(int n);
// Prepare x [n] for products with `type` rows (n must be a multiple of the type's block size;
// checked by the caller, who built the matrix). x must stay valid while v is used (float types).
void tern_qvec_prepare(tern_qvec *v, int type, const float *x, int n, void *scratch);
// out[t * ldo + r] = W[r] . x_t for r0 <= r < r1 and t < N. W: the matrix (rows of `type`,
// row_bytes apart, or the TERN_QMAT_Q8_0X layout), each row holding x[0].n elements; every x_t
// prepared for `type` with the same n. No threads inside (the caller splits the rows; a range
// that starts or ends inside a 16-row group of TERN_QMAT_Q8_0X computes the whole group and
// stores only its own rows, so ranges on 16-row boundaries waste nothing).
void tern_qmat_mul(int type, const void *W, size_t row_bytes, int r0, int r1, const tern_qvec *x, int N, float *out, size_t ldo,
                   tern_kernel_kind k);
// 1 if the CPU has F16C (x86 CPUID; 0 on other architectures): the runtime's one F16C check
int tern_cpu_has_f16c(void);
// Row r of W as floats (out [n]): the embedding lookup. Plain C (ggml_types' dequantizers).
void tern_qmat_row_f32(int type, const void *W, size_t row_bytes, int r, int n, float *out);

#endif
