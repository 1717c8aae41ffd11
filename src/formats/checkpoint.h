// checkpoint.h — HDF5 checkpoints (format "tern-checkpoint", format_version 2; version 1 still read).
//
// Layout (h5dump / h5py can read it):
//   bytes 0..511           HDF5 user block (ignored by HDF5 tools) holding tern's checksum header:
//                            0  char[8]  magic "TERNCKSM"
//                            8  uint32   header version = 1
//                           12  uint32   header size = 512 (= the HDF5 user block size)
//                           16  char[8]  algorithm "xxh64" (NUL-padded): util.h tern_hash64, seed 0
//                           24  uint64   file size in bytes (the header included)
//                           32  uint64   hash of every byte after the header (512 .. file size)
//                           40  uint64   hash of header bytes 0..39
//                           48  text     a line saying the above, for people who open the file
//                          (little-endian). The HDF5 superblock starts at byte 512.
//   /                      attributes: format = "tern-checkpoint" (string), format_version = 2 (int32),
//                          dim, n_layers, n_heads, n_kv_heads, ffn_dim, vocab_size, seq_len,
//                          tied_head, ternary (int32), norm_eps, rope_theta (float32);
//                          optional (absent = the defaults: silu, sub-norms, no rope scaling):
//                          ffn_act (int32: 0 silu, 1 relu2), sub_norms (int32 0/1), rope_scaling
//                          (int32: 0 none, 1 llama3), rope_scaling_factor, rope_low_freq_factor,
//                          rope_high_freq_factor (float32), rope_original_ctx (int32)
//   /<param name>          float32 dataset per parameter, natural shape ([out, in] for matrices),
//                          e.g. /token_embd.weight [vocab, dim], /blk.0.attn_q.weight [dim, dim]
//   /tokenizer             uint8 [n]: the tokenizer file bytes (optional)
//   /train_state           group (optional; absent in export / eval-only files), attributes:
//                          step, tokens_seen, loader_pos, loader_epoch (int64), rng_state,
//                          loader_seed (uint64), run_config (string: tern_config_to_string output),
//                          and (version 2) what identifies the run's data: train_tokens, val_tokens
//                          (int64: n_tokens of the token files, -1 = none), train_tok_hash,
//                          val_tok_hash (uint64: their tokenizer hashes)
//   /train_state/m/<name>, /train_state/v/<name>: float32 AdamW moments, same shapes as the params
//
// Opening a checkpoint (every reader below) never hands an unverified file to libhdf5, whose
// parsers can crash or allocate gigabytes on damaged metadata:
//   * a file with the header: its size and hash are checked first; a mismatch is the one-line
//     error "FILE: checksum mismatch: file is damaged";
//   * a file without one (format_version 1, or written by another tool, e.g. h5py): its whole
//     structure (every link, object, attribute and dataset) is read in a forked child process
//     with stderr silenced, an address-space limit and a timeout; only if that child exits
//     cleanly does this process open it ("FILE: damaged HDF5 structure" otherwise). Then every
//     read of it (each function below) is rehearsed: run first in a forked child, which starts
//     from this process's state, and only then here, if the child ended normally (a damaged file
//     can pass the structure check and still crash libhdf5 on another sequence of calls; the
//     rehearsal meets such a crash first: "FILE: damaged HDF5 structure (the HDF5 library
//     crashed reading it)"). Such a file is read twice; tern's own files (with the header) once.
//     A note that the file has no checksum is printed once per file. (One libhdf5 out-of-bounds
//     read found by fuzzing still escapes the rehearsal: docs/ROBUSTNESS.md.)
//     The header is a checksum, not a signature: it catches damage, not a file crafted with a
//     matching hash, which reaches libhdf5 unrehearsed.
// Verified files are remembered (device, inode, size, mtime, ctime), so the several reads a
// program makes of one checkpoint verify it once. Before reading, every dataset's type (class,
// size, byte order: exactly IEEE float32 for values, uint8 for the tokenizer), rank, shape and
// storage are checked against the model, every attribute's type class and size too; values must
// be finite (AdamW's v also >= 0): "FILE: dataset /blk.0.ffn_up.weight holds NaN or Inf".
//
// Every function silences HDF5's own error-stack printing and reports one line through tern_error,
// naming the file and, where it applies, the dataset: "runs/x/ckpt.h5: missing dataset
// /blk.1.ffn_up.weight", "ckpt.h5: dataset /blk.0.attn_q.weight has shape [256x128], expected [256x256]".
//
// Step checkpoints in a run directory (tern_checkpoint_save_step):
//   out_dir/ckpt_00000100.h5, out_dir/ckpt_00000200.h5, ...  (step, 8 digits; newest `keep` kept)
//   out_dir/latest.h5 -> ckpt_00000200.h5                    (relative symlink, replaced atomically)
// Programs resume with tern_checkpoint_load("out_dir/latest.h5", ...).
#ifndef TERN_CHECKPOINT_H
#define TERN_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "engine/tensor.h"

#define TERN_CKPT_FORMAT "tern-checkpoint"
#define TERN_CKPT_VERSION 2          // written; 1 (no checksum, no data identity) is still read
#define TERN_CKPT_HEADER 512         // checksum header = HDF5 user block size
#define TERN_CKPT_MAGIC "TERNCKSM"

typedef struct {
    long step;            // optimizer steps completed
    long tokens_seen;     // training tokens consumed
    uint64_t rng_state;   // tern_rng state
    long loader_pos;      // data loader position (loader.h)
    long loader_epoch;
    uint64_t loader_seed;
    char *run_config;     // resolved run config text. Save: may be NULL (stored as ""). Load: malloc'd
    // what the run's data was (format_version 2; -1 / 0 when unknown: version 1 files, no val data)
    long train_tokens, val_tokens;          // n_tokens of the token files
    uint64_t train_tok_hash, val_tok_hash;  // their tokenizer hashes (tokfile.h header)
} tern_train_state;

// Write a checkpoint atomically (tmp file in the same directory, checksum header, fsync + rename).
//   mc: model config (root attributes); p: allocated params (data; m and v too when st != NULL)
//   tok, tok_n: tokenizer file bytes, or NULL/0 for none; st: NULL writes no /train_state.
// 0, or -1 with tern_error (no file is left behind on failure).
int tern_checkpoint_save(const char *path, const tern_model_config *mc, const tern_params *p,
                         const void *tok, size_t tok_n, const tern_train_state *st);

// Save out_dir/ckpt_<step>.h5 (creating out_dir), repoint out_dir/latest.h5 to it, then delete the
// oldest ckpt_*.h5 so that at most `keep` remain (keep <= 0: keep all; the new file is never
// deleted). path_out (may be NULL) receives the written path. 0 or -1.
int tern_checkpoint_save_step(const char *out_dir, long step, int keep, const tern_model_config *mc,
                              const tern_params *p, const void *tok, size_t tok_n,
                              const tern_train_state *st, char *path_out, size_t path_out_n);

// Read only the model config (root attributes), so a program can build the model before loading.
// Validates format and version. 0 or -1.
int tern_checkpoint_read_config(const char *path, tern_model_config *mc);

// Load parameters into p (registered by the caller's model in model/model.h naming and allocated).
// If mc != NULL the checkpoint's config must equal it. Every parameter of p must be present with
// its exact shape; a dataset at the root that is not a parameter of p is an error too.
// st == NULL: weights only (fine-tuning / eval); m and v are left untouched.
// st != NULL: also loads /train_state (m, v, counters, run_config) if present.
// Returns 1 when training state was loaded, 0 when weights only (st, if given, zeroed), -1 on error
// (p untouched).
int tern_checkpoint_load(const char *path, const tern_model_config *mc, tern_params *p, tern_train_state *st);

// Weights only into p, where some parameters of p may be absent from the file: a parameter for
// which may_miss(name) returns 1 and that the file lacks keeps its current value (*n_missing, if
// given, counts them); every other parameter must be present with its shape, and every root
// dataset must be a parameter of p. Used to insert sub-norms (initialised to 1) when a plain
// LLaMA checkpoint is fine-tuned into a BitNet. 0 or -1 (p untouched on error).
int tern_checkpoint_load_partial(const char *path, tern_params *p, int (*may_miss)(const char *name), int *n_missing);

// The embedded tokenizer bytes: 1 and a malloc'd *buf (caller frees) if present, 0 if the file has
// no /tokenizer, -1 on error.
int tern_checkpoint_read_tokenizer(const char *path, void **buf, size_t *n);

// Only the /train_state attributes (no m/v; no model needed): 1 and *st filled (run_config malloc'd)
// if present, 0 if the file has no training state, -1 on error.
int tern_checkpoint_read_state(const char *path, tern_train_state *st);

void tern_train_state_free(tern_train_state *st);   // frees run_config

// Check that path opens as described above (checksum, or the structure check of a file without
// one). 1 if it has a valid checksum header, 0 if it has none but its structure is sound, -1 with
// tern_error otherwise.
int tern_checkpoint_verify(const char *path);

// Test seam: when set, called in the rehearsing child after the read with its return value
// (tests record it, or crash to check that the parent reports the file and survives).
extern void (*tern_checkpoint_rehearsal_hook)(int rc);
// format_version of the file (*version) and whether it has a checksum header (*sealed: 1/0),
// after verifying it as every reader does. 0 or -1.
int tern_checkpoint_info(const char *path, int *version, int *sealed);
// (Re)write the checksum header of an HDF5 file that has a 512-byte user block (a checkpoint
// edited on purpose with an HDF5 tool), after checking its structure in a child process as for a
// file without a checksum. 0 or -1.
int tern_checkpoint_seal(const char *path);

#endif
