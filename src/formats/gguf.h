// gguf.h — GGUF v3 reader (mmap, fully validated) and writer (atomic). libc-only (runtime too).
//
// File layout (little-endian; see shared/docs/formats.md):
//   "GGUF" | uint32 version (3; 2 is accepted) | int64 n_tensors | int64 n_kv
//   n_kv x { string key, uint32 value_type, value }
//   n_tensors x { string name, uint32 n_dims, int64 ne[n_dims], int32 ggml_type, uint64 offset }
//   padding to the alignment (general.alignment, else 32), then the data section; each tensor's
//   offset is relative to the data section start and a multiple of the alignment.
//   string = uint64 length + bytes (no NUL); array = uint32 elem_type + uint64 count + elements.
//
// Reader: every failure returns NULL / -1 and sets tern_error("path: what is wrong").
// Strings returned by the reader are NUL-terminated copies owned by the handle (a string that
// contains a NUL byte is still returned whole; use the *_len variants when that matters).
// Tensor data pointers point into the read-only mapping; valid until tern_gguf_close().
#ifndef TERN_GGUF_H
#define TERN_GGUF_H
#include <stddef.h>
#include <stdint.h>
#include "formats/ggml_types.h"

#define TERN_GGUF_MAGIC "GGUF"
#define TERN_GGUF_VERSION 3
#define TERN_GGUF_DEFAULT_ALIGNMENT 32
#define TERN_GGUF_MAX_DIMS 4

// KV value types
enum {
    TERN_GGUF_UINT8 = 0, TERN_GGUF_INT8 = 1, TERN_GGUF_UINT16 = 2, TERN_GGUF_INT16 = 3,
    TERN_GGUF_UINT32 = 4, TERN_GGUF_INT32 = 5, TERN_GGUF_FLOAT32 = 6, TERN_GGUF_BOOL = 7,
    TERN_GGUF_STRING = 8, TERN_GGUF_ARRAY = 9, TERN_GGUF_UINT64 = 10, TERN_GGUF_INT64 = 11,
    TERN_GGUF_FLOAT64 = 12,
    TERN_GGUF_NTYPES = 13
};

// ggml tensor types, their sizes and names: formats/ggml_types.h (tern_ggml_type_name,
// tern_ggml_nbytes, ...). The reader accepts every type whose size ggml_types knows and rejects
// others ("tensor NAME: unsupported tensor type N"); what a program can use is its own check.

// ---- reader ----
typedef struct tern_gguf tern_gguf;   // opaque

typedef struct {
    const char *name;        // NUL-terminated, owned by the handle
    int n_dims;              // 1..4
    int64_t ne[TERN_GGUF_MAX_DIMS];  // ne[0] = row length (fastest varying); unused dims = 1
    int type;                // TERN_GGML_*
    uint64_t offset;         // relative to the data section
    const void *data;        // into the mapping (aligned to the file's alignment)
    size_t nbytes;           // computed from type and ne
} tern_gguf_tensor;

tern_gguf *tern_gguf_open(const char *path);            // NULL + tern_error("path: problem")
void tern_gguf_close(tern_gguf *g);                      // NULL ok
const char *tern_gguf_path(const tern_gguf *g);
uint32_t tern_gguf_version(const tern_gguf *g);
size_t tern_gguf_alignment(const tern_gguf *g);
size_t tern_gguf_file_size(const tern_gguf *g);
size_t tern_gguf_kv_type_size(uint32_t t);              // bytes of one value of KV type t; 0: a string, array or unknown type

// KVs, in file order
int tern_gguf_n_kv(const tern_gguf *g);
const char *tern_gguf_kv_key(const tern_gguf *g, int i);
uint32_t tern_gguf_kv_type(const tern_gguf *g, int i);      // TERN_GGUF_*
uint32_t tern_gguf_kv_arr_type(const tern_gguf *g, int i);  // element type of an ARRAY kv
uint64_t tern_gguf_kv_arr_n(const tern_gguf *g, int i);     // element count of an ARRAY kv
int tern_gguf_find_kv(const tern_gguf *g, const char *key); // index, or -1 (no error set)

// Typed getters: 0 on success; -1 + tern_error("path: key K: missing" / "...: is T, expected U").
// The integer getters accept only the exact type (u32 from UINT32, i32 from INT32, ...), except
// that tern_gguf_get_i64 accepts any integer type whose value fits and tern_gguf_get_f32 accepts
// FLOAT32 only. bool: stored as one byte, must be 0 or 1 (checked at open).
int tern_gguf_get_u8(const tern_gguf *g, const char *key, uint8_t *out);
int tern_gguf_get_i8(const tern_gguf *g, const char *key, int8_t *out);
int tern_gguf_get_u16(const tern_gguf *g, const char *key, uint16_t *out);
int tern_gguf_get_i16(const tern_gguf *g, const char *key, int16_t *out);
int tern_gguf_get_u32(const tern_gguf *g, const char *key, uint32_t *out);
int tern_gguf_get_i32(const tern_gguf *g, const char *key, int32_t *out);
int tern_gguf_get_u64(const tern_gguf *g, const char *key, uint64_t *out);
int tern_gguf_get_i64(const tern_gguf *g, const char *key, int64_t *out);
int tern_gguf_get_f32(const tern_gguf *g, const char *key, float *out);
int tern_gguf_get_f64(const tern_gguf *g, const char *key, double *out);
int tern_gguf_get_bool(const tern_gguf *g, const char *key, int *out);   // 0 or 1
// string: *out is NUL-terminated, owned by the handle; *len (may be NULL) = byte length
int tern_gguf_get_str(const tern_gguf *g, const char *key, const char **out, size_t *len);
// arrays: element pointers owned by the handle (numeric data copied, naturally aligned)
int tern_gguf_get_arr(const tern_gguf *g, const char *key, uint32_t elem_type, const void **data, uint64_t *n);
int tern_gguf_get_arr_str(const tern_gguf *g, const char *key, const char *const **strs,
                          const size_t **lens, uint64_t *n);                 // lens may be NULL
int tern_gguf_get_arr_f32(const tern_gguf *g, const char *key, const float **data, uint64_t *n);
int tern_gguf_get_arr_i32(const tern_gguf *g, const char *key, const int32_t **data, uint64_t *n);
int tern_gguf_get_arr_u32(const tern_gguf *g, const char *key, const uint32_t **data, uint64_t *n);

// Tensors, in file order
int tern_gguf_n_tensors(const tern_gguf *g);
const tern_gguf_tensor *tern_gguf_tensor_at(const tern_gguf *g, int i);
const tern_gguf_tensor *tern_gguf_find_tensor(const tern_gguf *g, const char *name); // NULL, no error set
const tern_gguf_tensor *tern_gguf_get_tensor(const tern_gguf *g, const char *name);  // NULL + "path: missing tensor NAME"

// ---- writer ----
// Collects KVs (copied) and tensors (data pointer NOT copied: must stay valid until write),
// then writes the whole file atomically (tmp + fsync + rename). Alignment: the value of a
// UINT32 "general.alignment" KV if one was added (power of 2), else 32. Duplicate keys or tensor
// names, bad dims/types or sizes → -1 + tern_error. Tensor offsets follow insertion order.
typedef struct tern_gguf_writer tern_gguf_writer;   // opaque

tern_gguf_writer *tern_gguf_writer_new(void);
void tern_gguf_writer_free(tern_gguf_writer *w);    // NULL ok
int tern_gguf_add_u8(tern_gguf_writer *w, const char *key, uint8_t v);
int tern_gguf_add_i8(tern_gguf_writer *w, const char *key, int8_t v);
int tern_gguf_add_u16(tern_gguf_writer *w, const char *key, uint16_t v);
int tern_gguf_add_i16(tern_gguf_writer *w, const char *key, int16_t v);
int tern_gguf_add_u32(tern_gguf_writer *w, const char *key, uint32_t v);
int tern_gguf_add_i32(tern_gguf_writer *w, const char *key, int32_t v);
int tern_gguf_add_u64(tern_gguf_writer *w, const char *key, uint64_t v);
int tern_gguf_add_i64(tern_gguf_writer *w, const char *key, int64_t v);
int tern_gguf_add_f32(tern_gguf_writer *w, const char *key, float v);
int tern_gguf_add_f64(tern_gguf_writer *w, const char *key, double v);
int tern_gguf_add_bool(tern_gguf_writer *w, const char *key, int v);
int tern_gguf_add_str(tern_gguf_writer *w, const char *key, const char *s);           // NUL-terminated
int tern_gguf_add_str_len(tern_gguf_writer *w, const char *key, const char *s, size_t len);
// numeric array: data holds n elements of elem_type (any scalar type, not STRING/ARRAY)
int tern_gguf_add_arr(tern_gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);
int tern_gguf_add_arr_str(tern_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
// tensor: ne[0] = row length (GGUF order, i.e. reverse of PyTorch [out,in] → ne = {in, out});
// nbytes must equal tern_ggml_nbytes(type, n_dims, ne).
int tern_gguf_add_tensor(tern_gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
                         int ggml_type, const void *data, size_t nbytes);
int tern_gguf_write(tern_gguf_writer *w, const char *path);  // 0 / -1 + "path: problem"

#endif
