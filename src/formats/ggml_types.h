// ggml_types.h — the ggml tensor types tern reads and writes in GGUF files: type numbers, sizes,
// block layouts, a plain-C dequantizer per type and quantizers for the ones tern exports.
// libc/libm/OpenMP only (part of the standalone runtime). Layouts exactly as ggml defines them
// (ggml-common.h / ggml-quants.c; I2_S as microsoft/BitNet's ggml-bitnet-mad.cpp); all multi-byte
// fields little-endian; fp16 fields IEEE binary16 ("d").
//
//   F32  (0)  float.                      F16 (1)  binary16.          BF16 (30) upper half of an f32
//   Q8_0 (8)  32 weights, 34 bytes:  fp16 d; int8 qs[32]                      x = d * qs[i]
//   Q4_K (12) 256 weights, 144 bytes: fp16 d; fp16 dmin; uint8 scales[12]; uint8 qs[128]
//             8 sub-blocks of 32 with a 6-bit scale sc[j] and a 6-bit min m[j] (packing below);
//             x = d*sc[j]*q - dmin*m[j], q = 4 bits: for the 64 weights 64c..64c+63, byte l of
//             qs[32c..32c+31] holds weight 64c+l in its low nibble and 64c+32+l in its high one.
//   Q5_K (13) 256 weights, 176 bytes: fp16 d; fp16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]
//             as Q4_K with a 5th bit: bit 2c of qh[l] is the high bit of weight 64c+l, bit 2c+1
//             that of weight 64c+32+l; x = d*sc[j]*q - dmin*m[j], q in 0..31.
//   Q6_K (14) 256 weights, 210 bytes: uint8 ql[128]; uint8 qh[64]; int8 scales[16]; fp16 d
//             16 sub-blocks of 16, x = d*scales[j]*(q-32), q = 6 bits. For the 128 weights
//             128h..128h+127 (ql+64h, qh+32h), l = 0..31: weight +l low nibble of ql[l], +32+l low
//             nibble of ql[32+l], +64+l high nibble of ql[l], +96+l high nibble of ql[32+l]; their
//             2 high bits are bits 0-1, 2-3, 4-5, 6-7 of qh[l].
//   K-quant scales[12] (Q4_K/Q5_K): sub-block j < 4: sc = s[j] & 63, m = s[j+4] & 63;
//             j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4, m = (s[j+4] >> 4) | (s[j] >> 6) << 4.
//   TQ1_0 (34), TQ2_0 (35): ternary, see tqpack.h.
//   I2_S (36, bitnet.cpp): a whole tensor of n weights is n/4 bytes of 2-bit codes c = w + 1 in
//             blocks of 128 weights / 32 bytes over the flattened tensor: byte m of block b holds
//             weight 128b + 32g + m (g = 0..3) in bits 6-2g..7-2g; then ONE float32 scale (the
//             tensor's s_w) and padding to 32 bytes: nbytes = n/4 + 32. Value = (c - 1) * scale.
//             (The layout bitnet.cpp writes and reads on x86, and on ARM up to its 2025-11
//             version; tern needs rows of a multiple of 128 weights, as bitnet.cpp's dot does.)
#ifndef TERN_GGML_TYPES_H
#define TERN_GGML_TYPES_H
#include <stddef.h>
#include <stdint.h>

// ggml type numbers (ggml.h). tern computes with the named ones; the table in ggml_types.c also
// knows the sizes of the other block types of ggml so a file holding them opens and the runtime
// names the tensor and its type in its refusal.
enum {
    TERN_GGML_F32 = 0, TERN_GGML_F16 = 1, TERN_GGML_Q4_0 = 2, TERN_GGML_Q8_0 = 8, TERN_GGML_Q4_K = 12,
    TERN_GGML_Q5_K = 13, TERN_GGML_Q6_K = 14, TERN_GGML_BF16 = 30, TERN_GGML_TQ1_0 = 34, TERN_GGML_TQ2_0 = 35,
    TERN_GGML_I2_S = 36,
    TERN_GGML_NTYPES = 37
};

#define TERN_QK8_0 32
#define TERN_Q8_0_BYTES 34
#define TERN_Q4_K_BYTES 144
#define TERN_Q5_K_BYTES 176
#define TERN_Q6_K_BYTES 210
#define TERN_I2S_BLOCK 128        // weights per I2_S block (32 bytes)
#define TERN_I2S_TAIL 32          // the scale + padding after the codes

// ---- type table (any int; unknown types give 0 / "?") ----
const char *tern_ggml_type_name(int ggml_type);         // "f32", "q8_0", "q6_K", "i2_s", ... or "?"
int tern_ggml_type_known(int ggml_type);                // 1 if its size is known (the file can be parsed)
// Parse a name as tern's programs spell it (case-insensitive: "q6_k", "Q6_K", "bf16"); -1 if unknown.
int tern_ggml_type_parse(const char *name);
int64_t tern_ggml_block_elems(int ggml_type);           // weights per block (I2_S: 128); 0 unknown
size_t tern_ggml_block_bytes(int ggml_type);            // bytes per block (I2_S: 32); 0 unknown
// Bytes of a row of n elements (n a multiple of the block size), 0 otherwise. I2_S: n/4 (the
// tensor's 32-byte tail is not part of any row).
size_t tern_ggml_row_bytes(int ggml_type, int64_t n);
// Bytes of a whole tensor (I2_S: n/4 + 32); -1 + tern_error (no path prefix) on unknown type,
// n_dims out of 1..4, ne <= 0, row not a multiple of the block size, or size overflow.
int tern_ggml_nbytes(int ggml_type, int n_dims, const int64_t *ne, size_t *nbytes);

// ---- dequantizers (plain C; n a multiple of the block size, or -1 + error) ----
// x: n elements' worth of blocks of `type` (F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0);
// out[n] floats exactly as ggml's dequantize_row_* computes them.
int tern_ggml_dequant(int type, const void *x, int64_t n, float *out);
// I2_S: the whole tensor of n weights (n % 128 == 0). out may be NULL; w (may be NULL) gets the
// ternary values, *scale the tensor's scale. Code 3 (not written by any quantizer) is an error.
int tern_i2s_unpack(const void *x, int64_t n, int8_t *w, float *scale);

// bf16 <-> f32 (ggml's conversion: round to nearest even; NaN stays NaN)
uint16_t tern_fp32_to_bf16(float f);
float tern_bf16_to_fp32(uint16_t h);

// ---- quantizers (tern-export; plain C, deterministic) ----
// x [n] -> blocks of `type` (F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K) in out[tern_ggml_row_bytes(type, n)].
// Q8_0 as ggml (d = amax/127, q = round(x/d)); the k-quants pick each sub-block's scale (and min)
// by a small least-squares search, then quantize the scales to 6 (Q4_K/Q5_K) or 8 bits (Q6_K) and
// re-round the weights against the stored scales. -1 + error if n is not a multiple of the block.
int tern_ggml_quantize(int type, const float *x, int64_t n, void *out);
// I2_S: ternary w[n] in {-1,0,1} (n % 128 == 0) with scale s -> out[n/4 + 32] (tail zero-padded).
int tern_i2s_pack(const int8_t *w, int64_t n, float scale, void *out);

#endif
