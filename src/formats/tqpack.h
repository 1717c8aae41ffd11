// tqpack.h — ternary weights <-> llama.cpp's TQ2_0 / TQ1_0 blocks. libc-only (runtime too).
//
// A block holds QK_K = 256 consecutive weights of a row; a row of n weights (n a multiple of 256)
// is n/256 consecutive blocks, and a [rows, cols] matrix in GGUF is rows*cols/256 blocks in row
// order — so every function below works on a whole matrix too (pass n = rows*cols).
// Value of a weight = w * d, w in {-1,0,1}, d = the block's fp16 scale.
//
// TQ2_0 (ggml type 35), 66 bytes:  uint8 qs[64]; fp16 d
//   code c = w + 1 in {0,1,2}; qs is two groups of 32 bytes; in group g, byte m holds the code of
//   element 128g + m + 32l in bits 2l..2l+1 (l = 0..3).
// TQ1_0 (ggml type 34), 54 bytes:  uint8 qs[48]; uint8 qh[4]; fp16 d
//   qs[0..31]: byte m = elements m + 32n (n = 0..4) as a base-3 number, n = 0 most significant;
//   qs[32..47]: byte m = elements 160 + m + 16n (n = 0..4); qh[j] = elements 240 + j + 4n (n = 0..3)
//   times 3; every byte stored as ceil(v * 256 / 243). Digit n of byte q: ((uint8)(q * 3^n) * 3) >> 8.
#ifndef TERN_TQPACK_H
#define TERN_TQPACK_H
#include <stddef.h>
#include <stdint.h>

#define TERN_QK_K 256
#define TERN_TQ2_BLOCK_BYTES 66
#define TERN_TQ1_BLOCK_BYTES 54

// bytes for n weights (n a multiple of 256), 0 otherwise
size_t tern_tq2_bytes(int64_t n);
size_t tern_tq1_bytes(int64_t n);

// Pack n weights w[n] in {-1,0,1} with one scale d for every block (stored as fp16(d)) into
// out[tern_tqX_bytes(n)]. -1 + tern_error if n is not a positive multiple of 256 or a value is
// outside {-1,0,1}.
int tern_tq2_pack(const int8_t *w, int64_t n, float d, void *out);
int tern_tq1_pack(const int8_t *w, int64_t n, float d, void *out);

// Unpack blocks to w[n] in {-1,0,1} and (if d != NULL) d[n/256] = each block's scale as fp32.
// TQ2_0: a code 3 (not produced by any quantizer) → -1 + tern_error naming the element index.
// TQ1_0: every byte decodes to valid digits; returns -1 only on bad n.
int tern_tq2_unpack(const void *in, int64_t n, int8_t *w, float *d);
int tern_tq1_unpack(const void *in, int64_t n, int8_t *w, float *d);

// Dequantize to float: out[i] = w[i] * d(block) exactly as llama.cpp does (code 3 in TQ2_0 → 2d).
int tern_tq2_dequant(const void *in, int64_t n, float *out);
int tern_tq1_dequant(const void *in, int64_t n, float *out);

#endif
