// loader.h — training batches from an mmap'd tern token file (see tokfile.h).
//
// Training: the file is cut into n_windows = (n_tokens - 1) / seq_len windows of seq_len + 1
// tokens (inputs = tokens[s .. s+T), targets = tokens[s+1 .. s+T]); window k of an epoch starts
// at offset_e + perm_e[k] * seq_len, where offset_e in [0, n_tokens - 1 - n_windows*seq_len] and
// the permutation perm_e are drawn from (seed, epoch) alone — so (epoch, pos) is all a checkpoint
// needs to resume exactly. Batches run across epoch ends (epoch += 1, pos = 0).
// Evaluation: sequential non-overlapping windows k = 0 .. eval_count-1 starting at k * seq_len.
#ifndef TERN_LOADER_H
#define TERN_LOADER_H
#include "formats/tokfile.h"
#include <stdint.h>

typedef struct {
    tern_tokfile tf;
    int seq_len, batch;
    uint64_t seed;
    int64_t n_windows;  // windows per epoch
    int64_t epoch, pos; // the next window is window pos of epoch
    int64_t offset;     // this epoch's start offset
    int64_t *perm;      // [n_windows] this epoch's window order
} tern_loader;

// 0, or -1 with tern_error("path: problem") (bad file, too few tokens for seq_len, bad sizes).
int tern_loader_open(tern_loader *ld, const char *path, int seq_len, int batch, uint64_t seed);
void tern_loader_close(tern_loader *ld);
// -1 with tern_error when the file was not made with this tokenizer (vocab size or hash differ).
int tern_loader_check_tokenizer(const tern_loader *ld, int vocab_size, uint64_t tokenizer_hash);
// Next training batch: inputs, targets [batch * seq_len] (row b = window b).
void tern_loader_next(tern_loader *ld, int *inputs, int *targets);
// Next n windows (any n >= 0): inputs, targets [n * seq_len]. tern_loader_next reads n = batch.
void tern_loader_next_n(tern_loader *ld, int n, int *inputs, int *targets);
// Pass over the next n windows without reading them: the position ends where n reads would leave it
// (data-parallel ranks skip the other ranks' share of a global batch, training/trainer.h).
void tern_loader_skip(tern_loader *ld, int64_t n);
void tern_loader_get_pos(const tern_loader *ld, int64_t *epoch, int64_t *pos);
// Resume at (epoch, pos): 0, or -1 with tern_error when out of range (epoch < 0, pos not in [0, n_windows]).
int tern_loader_set_pos(tern_loader *ld, int64_t epoch, int64_t pos);
// Evaluation windows: how many, and count of them from window 'first' (rows of seq_len);
// returns how many were filled (fewer at the end).
int64_t tern_loader_eval_count(const tern_loader *ld);
int tern_loader_eval_windows(const tern_loader *ld, int64_t first, int count, int *inputs, int *targets);

#endif
