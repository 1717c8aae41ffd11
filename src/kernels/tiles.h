// tiles.h — the micro-kernels behind kernels.c (private to src/kernels/). One file per
// architecture: kernels_x86.c (AVX2, AVX-VNNI, AVX-512 VNNI), kernels_arm.c (NEON, dotprod, i8mm);
// each is empty when compiled for the other architecture. libc/OpenMP only.
//
// A tile kernel computes, for R rows of one 4-row tile (block b of row r at w + 256*b + 64*r, see
// the layout in kernels.h) and T token rows of activations (row stride xs bytes, zero-padded to
// nblk*256 columns):  acc[t*TILE_R + r] = sum_k x[t][k] * c[r][k]  with codes c = w + 1 in
// {0,1,2}, exact in int32 (the caller subtracts sum_k x[t][k]).
#ifndef TERN_TILES_H
#define TERN_TILES_H
#include <stddef.h>
#include <stdint.h>
#include "kernels/kernels.h"

#define TILE_R 4          // rows per tile (the layout's interleave)
#define ACC_T 8           // most tokens a tile kernel takes
#ifndef PF_AHEAD
#define PF_AHEAD 16       // decode: weight prefetch distance in 256-column blocks of a row tile (1 KiB each)
#endif

typedef void (*tern_tile_fn)(const uint8_t *w, const int8_t *x, size_t xs, int nblk, int32_t *acc);

// A kernel kind's tiles: tiles[R-1][T-1] for R <= TILE_R rows and T <= tt tokens.
// x_pairs: in calls with N >= 2 tokens the activations come interleaved by token pairs (see
// tern_x_pairs below) instead of one row per token, and tiles[][] expect that layout (T = 1 too:
// an odd last token has a zero partner); N = 1 calls keep plain rows and use dec[R-1].
typedef struct {
    int tt;
    int x_pairs;
    tern_tile_fn tiles[TILE_R][ACC_T];
    tern_tile_fn dec[TILE_R];   // T = 1, plain rows (for kinds without x_pairs: the same as tiles[R-1][0])
} tern_tile_set;

// Token-pair layout (x_pairs kinds, e.g. i8mm's smmla, which multiplies 2 rows by 2 tokens over 8
// columns): tokens 2p and 2p+1 share 2*cp bytes starting at x + 2p*cp; column k of token t sits at
// byte 16*(k/8) + 8*(t%2) + k%8 of that span. An odd last token is paired with zeros.
// dst [(N+1)/2 * 2 * cp] from src [N rows of stride cp].
void tern_x_pairs(int8_t *dst, const int8_t *src, int N, int cp);

// CPU support and tile sets, per architecture (NULL / 0 where not compiled in)
int tern_cpu_has(tern_kernel_kind k);
const tern_tile_set *tern_tiles_for(tern_kernel_kind k);

#endif
