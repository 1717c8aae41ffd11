// safetensors.h — Hugging Face safetensors reader: one file or a sharded set, mmapped, validated.
//
// File layout (https://huggingface.co/docs/safetensors, little-endian):
//   uint64 N | N bytes of UTF-8 JSON header (may end in spaces) | data buffer
//   header = { "__metadata__": {string: string} (optional),
//              "<tensor name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ... }
//   offsets are relative to the data buffer; end - begin = product(shape) * dtype size; row-major.
// A sharded model is a directory with model.safetensors.index.json:
//   {"metadata": {...}, "weight_map": {"<tensor name>": "model-00001-of-00002.safetensors", ...}}
//
// Validation (every failure is one tern_error line naming the file and the problem, never a crash):
// header length (8 <= 8 + N <= file size, N <= 100 MiB), JSON (jansson, duplicate keys rejected),
// each entry's fields and types, known dtype, dimensions >= 0, element count without overflow,
// offsets inside the data buffer and matching the shape, no two tensors overlapping; for a sharded
// set: shard names are plain file names in the directory, every listed tensor is in its shard, no
// tensor is in two shards or missing from the index.
// Tensor data stays in the read-only mapping (valid until tern_st_close); it is not necessarily
// aligned, so read it with tern_st_read_f32 / memcpy.
#ifndef TERN_SAFETENSORS_H
#define TERN_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#define TERN_ST_MAX_DIMS 8
#define TERN_ST_MAX_HEADER (100u << 20)

enum {
    TERN_ST_BOOL, TERN_ST_U8, TERN_ST_I8, TERN_ST_F8_E5M2, TERN_ST_F8_E4M3, TERN_ST_I16, TERN_ST_U16,
    TERN_ST_F16, TERN_ST_BF16, TERN_ST_I32, TERN_ST_U32, TERN_ST_F32, TERN_ST_F64, TERN_ST_I64, TERN_ST_U64,
    TERN_ST_NDTYPES
};

typedef struct {
    char *name;                         // NUL-terminated, owned by the set
    int dtype;                          // TERN_ST_*
    int n_dims;                         // 0 (scalar) .. TERN_ST_MAX_DIMS
    int64_t shape[TERN_ST_MAX_DIMS];
    int64_t numel;
    const void *data;                   // into the mapping
    size_t nbytes;
    const char *file;                   // the file it is in
} tern_st_tensor;

typedef struct tern_st tern_st;         // opaque: a set of tensors from one or more files

// One .safetensors file. NULL + tern_error("path: problem").
tern_st *tern_st_open_file(const char *path);
// A model directory: model.safetensors.index.json (sharded) if present, else model.safetensors.
tern_st *tern_st_open_dir(const char *dir);
void tern_st_close(tern_st *s);          // NULL ok

int tern_st_count(const tern_st *s);
const tern_st_tensor *tern_st_get(const tern_st *s, int i);         // in file order, shards in index order
const tern_st_tensor *tern_st_find(const tern_st *s, const char *name);  // NULL if absent (no error)
int tern_st_n_files(const tern_st *s);
size_t tern_st_total_bytes(const tern_st *s);                       // sum of the files' sizes

const char *tern_st_dtype_name(int dtype);                          // "F32", ... or "?"
size_t tern_st_dtype_size(int dtype);                               // bytes per element; 0 unknown
// F32, F16 or BF16 data -> out[numel] float. 0, or -1 + tern_error("file: tensor NAME has dtype X, expected a float").
int tern_st_read_f32(const tern_st_tensor *t, float *out);

#endif
