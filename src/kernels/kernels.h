// kernels.h — int8 activations x ternary weights matrix kernels. libc/libm/OpenMP only (runtime).
//
// Kinds: plain C reference on every CPU; x86-64: AVX2 (target avx2,fma), AVX-VNNI (256-bit VEX
// vpdpbusd, avxvnni), AVX-512 VNNI (avx512f/bw/vl/vnni); AArch64: NEON (ARMv8.0 Advanced SIMD),
// dotprod (ARMv8.2 sdot), i8mm (smmla for prefill, sdot for decode). All kinds compute exactly the
// same int32 sums (integer arithmetic, no saturation), so results are bit-identical across kinds
// and architectures; the float output is (float)acc * (scale / sx[n]).
//
// Weight layout (private, kernel's own): codes c = w + 1 in {0,1,2}, 2 bits each; cols_pad/4 bytes
// per row (cols_pad = cols rounded up to 256). Rows are grouped in tiles of 4 (rows_pad = rows
// rounded up to 4; pad rows are zero weights) and a tile is stored block-interleaved, so a decode
// pass reads one sequential stream:  w[tile][block b][row r in tile][64 bytes]  i.e. byte address
// (R/4)*4*row_bytes + 256*b + 64*(R%4) + m. Within a 256-column block the 64 bytes of a row hold
// byte m (0..63), bits 2l..2l+1 = column 64l + m (l = 0..3): one 64-byte load unpacks with
// shift+mask into 4 vectors of 64 consecutive columns (AVX2/AVX-VNNI: two 32-byte halves; NEON:
// four 16-byte quarters). The same layout serves every kind (weights are repacked once, at load).
// The kernels compute sum_k x_k * c_k - sum_k x_k (vpdpbusd / vpmaddubsw u8 x s8; sdot / smmla /
// smlal s8 x s8).
//
// cols: any cols >= 1 is supported (the row is zero-padded to a multiple of 256; when cols is not
// a multiple of 256 tern_tmat_mul copies the activations into a zero-padded buffer per call).
// tern_tmat_from_tq2/tq1 need cols % 256 == 0 (the block formats require it).
#ifndef TERN_KERNELS_H
#define TERN_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#include "formats/gguf.h"

typedef enum {
    TERN_KERNEL_AUTO = 0, TERN_KERNEL_PLAIN,
    TERN_KERNEL_AVX2, TERN_KERNEL_AVXVNNI, TERN_KERNEL_AVX512VNNI,   // x86-64
    TERN_KERNEL_NEON, TERN_KERNEL_DOTPROD, TERN_KERNEL_I8MM,         // AArch64
} tern_kernel_kind;
#define TERN_KERNEL_NKINDS 8
#define TERN_KERNEL_NAMES "auto|plain|avx2|avxvnni|avx512|neon|dotprod|i8mm"   // for usage lines

// The kind AUTO resolves to: the one forced with tern_kernel_force(), else env TERN_KERNEL
// (one of TERN_KERNEL_NAMES; an unknown or unavailable value prints one warning to stderr and is
// ignored), else the best the CPU supports (x86: avx512 > avxvnni > avx2 > plain; AArch64, from
// getauxval(AT_HWCAP/AT_HWCAP2): i8mm > dotprod > neon > plain). Never returns AUTO.
tern_kernel_kind tern_kernel_best(void);
const char *tern_kernel_name(tern_kernel_kind k);          // "auto", "plain", "avx2", "avxvnni", ...
int tern_kernel_available(tern_kernel_kind k);              // 1 if this CPU (and build) can run it (AUTO: 1)
int tern_kernel_parse(const char *s, tern_kernel_kind *k);  // one of TERN_KERNEL_NAMES → 0, else -1
// Force a kind for AUTO (process-wide; TERN_KERNEL_AUTO clears). -1 + tern_error if unavailable.
int tern_kernel_force(tern_kernel_kind k);

// A ternary weight matrix W [rows, cols] (PyTorch [out,in]) repacked into the kernel's layout.
typedef struct tern_tmat {
    int rows, cols;      // logical shape
    float scale;         // s_w; output multiplier (caller may overwrite, e.g. with a .scale tensor)
    int cols_pad;        // cols rounded up to 256
    int rows_pad;        // rows rounded up to 4
    size_t row_bytes;    // cols_pad / 4
    uint8_t *w;          // [rows_pad * row_bytes], 64-byte aligned, tiled layout above
    int owns_w;          // 1: tern_tmat_free frees w (0 after tern_tmat_gather or tern_tmat_pack_f32)
} tern_tmat;

// All constructors: 0, or -1 + tern_error (rows/cols < 1, bad values, ...); on failure *m is
// zeroed (tern_tmat_free on it is safe).
int  tern_tmat_from_i8(tern_tmat *m, const int8_t *wq, int rows, int cols, float scale); // wq [rows,cols] in {-1,0,1}
// TQ2_0/TQ1_0 blocks of a [rows, cols] matrix (cols % 256 == 0). scale = the blocks' common d
// (fp16 → fp32); blocks that hold only zeros may have any d; differing d among non-zero blocks,
// or a TQ2_0 code 3, → -1 + error.
int  tern_tmat_from_tq2(tern_tmat *m, const void *tq2, int rows, int cols);
int  tern_tmat_from_tq1(tern_tmat *m, const void *tq1, int rows, int cols);
// A GGUF tensor of type TQ2_0 or TQ1_0 with ne = {cols, rows} (n_dims 2, or trailing dims 1).
// Errors name the file and tensor: "path: tensor NAME: type f32 is not ternary (tq2_0/tq1_0)".
int  tern_tmat_from_gguf(tern_tmat *m, const tern_gguf_tensor *t, const char *path);
void tern_tmat_free(tern_tmat *m);
// Move the weights of n matrices, in order, into one buffer (tern_alloc_huge: huge pages, one
// sequential stream for a whole forward pass) and free their own buffers. Returns the buffer; the
// caller frees it with free() after the last use of the matrices (tern_tmat_free on them then
// frees nothing but is still safe). Each matrix starts 64-byte aligned.
uint8_t *tern_tmat_gather(tern_tmat *const *mats, int n);
size_t tern_tmat_weight_bytes(const tern_tmat *m);          // rows_pad * row_bytes (bytes a matvec reads)
void tern_tmat_get_row_i8(const tern_tmat *m, int r, int8_t *out);   // out[cols] in {-1,0,1}

// Training-side construction (the fused BitLinear repacks its weights every step): no malloc and
// no validation. buf: 64-byte aligned, tern_tmat_bytes(rows, cols) bytes, owned by the caller (do
// not tern_tmat_free the result). wq [rows, cols] holds exactly -1, 0 or +1 as floats (what
// tern_weight_quantize writes). OpenMP inside for large matrices.
size_t tern_tmat_bytes(int rows, int cols);
// Loading (the runtime): lay out a [rows, cols] matrix in a caller buffer (tern_tmat_bytes bytes,
// 64-byte aligned, owned by the caller), then set EVERY row from its codes (code = w + 1, each 0,
// 1 or 2; columns past cols become w = 0). Distinct rows may be set by different threads at once.
void tern_tmat_init(tern_tmat *m, void *buf, int rows, int cols, float scale);
void tern_tmat_set_row_codes(tern_tmat *m, int r, const uint8_t *codes);
// Where block b (columns 256b..256b+255) of row r lives: 64 bytes, byte j bits 2l..2l+1 = the
// code of column 256b + 64l + j (the layout above). For loaders that convert packed formats
// straight into it (every block of every row must be written; columns past cols code 1).
uint8_t *tern_tmat_block(const tern_tmat *m, int r, int b);
void tern_tmat_pack_f32(tern_tmat *m, void *buf, const float *wq, int rows, int cols, float scale);

// xq [N, cols] int8 (any values -128..127), sx [N] > 0; out [N, rows]:
// out[n*rows + r] = (float)(sum_k xq[n*cols+k] * W[r,k]) * (m->scale / sx[n]).
// Integer accumulation (int32), exact; all kinds give bit-identical results. OpenMP inside
// (parallel over rows; threads write disjoint memory). k = AUTO → tern_kernel_best(); a kind the
// CPU lacks also falls back to tern_kernel_best().
void tern_tmat_mul(const tern_tmat *m, const int8_t *xq, const float *sx, int N, float *out, tern_kernel_kind k);
// Same, activations with row stride ldx: ldx == cols, or ldx == cols_pad with the padding bytes
// zero (then no padded copy is made, whatever cols is).
void tern_tmat_mul_ld(const tern_tmat *m, const int8_t *xq, size_t ldx, const float *sx, int N, float *out, tern_kernel_kind k);
// out [N, rows]: the exact int32 sums.
void tern_tmat_mul_i32(const tern_tmat *m, const int8_t *xq, int N, int32_t *out, tern_kernel_kind k);

// One-token products inside the caller's own parallel region (the runtime's decode step runs a
// whole forward in one region: no fork/join per product). Before the region, for each product,
// tern_tmat_split_init(split, nt, m) with nt = the team size asked for; inside it, every thread of
// the team calls tern_tmat_mul1_team with the same arguments: row blocks are shared out as in
// tern_tmat_mul's decode split (contiguous ranges, stealing from the back). No barrier inside:
// the caller synchronizes before reading out. xq [cols_pad], zero past cols; outf [rows] =
// (float)(acc) * (m->scale / sx) when outf, else outi [rows] = the int32 sums.
// Same results as tern_tmat_mul / _i32 with N = 1, bit for bit.
#define TERN_SPLIT_MAX 64
typedef struct { _Alignas(64) uint64_t fb; } tern_split;   // [TERN_SPLIT_MAX] per product
void tern_tmat_split_init(tern_split *split, int nt, const tern_tmat *m);
void tern_tmat_mul1_team(const tern_tmat *m, tern_split *split, int nt, const int8_t *xq, float sx, float *outf, int32_t *outi,
                         tern_kernel_kind k);
// The same for N <= TERN_TEAM_ROWS rows (several sequences' decode step, tern-server): xq
// [N, cols_pad] zero past cols, sx [N]; outf / outi [N, rows]. The row blocks are shared out as
// above and every block is computed for all N rows (the weights are read once). Same results as
// tern_tmat_mul / _i32, bit for bit.
#define TERN_TEAM_ROWS 64
void tern_tmat_muln_team(const tern_tmat *m, tern_split *split, int nt, const int8_t *xq, int N, const float *sx, float *outf,
                         int32_t *outi, tern_kernel_kind k);

#endif
