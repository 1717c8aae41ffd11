// tokfile.h — tern token files: a versioned header, then the token ids as uint16 or uint32.
//
// Layout (little-endian), version 1, header 64 bytes:
//    0  char     magic[8] = "TERNTOK\0"
//    8  uint32   version = 1
//   12  uint32   header_size = 64
//   16  uint32   vocab_size          (every token id is < vocab_size)
//   20  uint32   token_width         (2: uint16 ids, needs vocab_size <= 65536; or 4: uint32)
//   24  uint64   n_tokens
//   32  uint64   tokenizer_hash      (tern_tokenizer_hash of the tokenizer that made the ids)
//   40  uint8    reserved[24] = 0
//   64  tokens[n_tokens]
// The file size must be exactly 64 + n_tokens * token_width. Readers mmap the file and validate
// everything on open (header, size, and every id < vocab_size: one pass, ~1 GB/s).
// Writers write a temporary file and rename it into place, so no half-written file is left.
#ifndef TERN_TOKFILE_H
#define TERN_TOKFILE_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TERN_TOKFILE_VERSION 1
#define TERN_TOKFILE_HEADER 64

typedef struct {
    char path[1024];
    int vocab_size;
    int width;               // 2 or 4
    int64_t n_tokens;
    uint64_t tokenizer_hash;
    const uint8_t *tokens;   // [n_tokens * width] inside the mapping
    void *map;               // the mmap'd file
    size_t map_size;
} tern_tokfile;

// Open + mmap + validate. 0, or -1 with tern_error("path: problem").
int tern_tokfile_open(tern_tokfile *f, const char *path);
void tern_tokfile_close(tern_tokfile *f);
static inline int tern_tokfile_get(const tern_tokfile *f, int64_t i) {
    if (f->width == 2) {
        uint16_t v;
        __builtin_memcpy(&v, f->tokens + 2 * i, 2);
        return v;
    }
    uint32_t v;
    __builtin_memcpy(&v, f->tokens + 4 * i, 4);
    return (int)v;
}
// Copy n ids starting at i into out (int).
void tern_tokfile_read(const tern_tokfile *f, int64_t i, int64_t n, int *out);

// Token width for a vocab: 2 when vocab_size <= 65536, else 4.
int tern_tokfile_width_for(int vocab_size);

// Streaming writer: open (temp file), append ids (checked < vocab_size), commit (header written,
// fsync, rename) or abort (temp file removed). width 0 = tern_tokfile_width_for(vocab_size).
typedef struct {
    char path[1024], tmp[1100];
    FILE *fp;
    int vocab_size, width;
    int64_t n_tokens;
    uint64_t tokenizer_hash;
} tern_tokfile_writer;
int tern_tokfile_writer_open(tern_tokfile_writer *w, const char *path, int vocab_size, int width, uint64_t tokenizer_hash);
int tern_tokfile_writer_append(tern_tokfile_writer *w, const int *ids, size_t n);
int tern_tokfile_writer_commit(tern_tokfile_writer *w);
void tern_tokfile_writer_abort(tern_tokfile_writer *w);
// One call: write n ids atomically.
int tern_tokfile_write(const char *path, const int *ids, size_t n, int vocab_size, int width, uint64_t tokenizer_hash);

#endif
