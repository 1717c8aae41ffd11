// tensor.h — fp32 tensors, the per-step arena, and the flat parameter store.
//
// A tensor is a view: a name, a shape (up to 4 dims, row-major, shape[ndim-1] varies fastest,
// as in PyTorch and HDF5) and pointers to its values and gradient. Tensors own no memory:
//   * parameters, their gradients and AdamW's m and v each live in ONE flat buffer of
//     tern_params (zeroing grads is one memset, AdamW one loop, a checkpoint one pass);
//   * activations, saved-for-backward values and activation gradients come from a tern_arena
//     that is reset (not freed) between steps.
#ifndef TERN_TENSOR_H
#define TERN_TENSOR_H
#include <stddef.h>
#include <stdint.h>

#define TERN_MAX_DIMS 4
#define TERN_NAME_MAX 64

typedef struct tern_tensor {
    char name[TERN_NAME_MAX];
    int ndim;
    int shape[TERN_MAX_DIMS];
    long n;            // number of elements
    float *data;       // (n,) values
    float *grad;       // (n,) gradient: flat grad buffer for params; arena (lazily, zeroed) otherwise
    int requires_grad; // params, and anything computed from them
    int node;          // index of the graph node that produced it; -1 for leaves
    int is_param;
    long offset;       // params: element offset into the flat buffers
    int no_decay;      // params: excluded from weight decay (norms, embedding by default)
} tern_tensor;

long tern_numel(int ndim, const int *shape);
// rows = product of all dims but the last; cols = last dim
static inline long tern_rows(const tern_tensor *t) { return t->n / t->shape[t->ndim - 1]; }
static inline int tern_cols(const tern_tensor *t) { return t->shape[t->ndim - 1]; }
int tern_same_shape(const tern_tensor *a, const tern_tensor *b);
// "name[2x3x4]" into buf, for error messages
const char *tern_shape_str(const tern_tensor *t, char *buf, size_t n);

// ---- arena: bump allocator, 64-byte aligned, reset per step -------------------------------
// The first step discovers the size: when a block is full another is malloc'd; reset() then
// replaces all blocks by one block of the high-water size, so later steps never malloc.
// 'limit' (bytes, 0 = none) turns running out into a clear fatal error naming the sizes.
typedef struct tern_arena_block { struct tern_arena_block *next; size_t cap, used; char *mem; } tern_arena_block;
typedef struct {
    tern_arena_block *head;  // current block (list of blocks, newest first)
    size_t used_total;       // bytes handed out since the last reset
    size_t high;             // high-water mark over all steps
    size_t limit;            // 0: unlimited
    const char *what;        // name for error messages
} tern_arena;

void tern_arena_init(tern_arena *a, const char *what, size_t initial, size_t limit);
void *tern_arena_alloc(tern_arena *a, size_t bytes);      // uninitialised
void *tern_arena_calloc(tern_arena *a, size_t bytes);     // zeroed
void tern_arena_reset(tern_arena *a);
void tern_arena_free(tern_arena *a);
// Mark and release: tern_arena_release(a, m) gives back everything allocated since m =
// tern_arena_mark(a) (blocks added since are freed; the next reset sizes the arena to the
// high-water mark as usual). For a step's transient parts, e.g. a recomputed block (graph.h).
typedef struct { tern_arena_block *block; size_t used, used_total; } tern_arena_mark_t;
tern_arena_mark_t tern_arena_mark(const tern_arena *a);
void tern_arena_release(tern_arena *a, tern_arena_mark_t m);
size_t tern_arena_capacity(const tern_arena *a);

// ---- parameters: one flat buffer each for data, grad, Adam m, Adam v ----------------------
typedef struct {
    int n, cap;
    tern_tensor **t;   // (n,) parameter tensors, in registration order (stable pointers)
    long total;        // total elements
    float *data;       // (total,) latent fp32 values
    float *grad;       // (total,)
    float *m, *v;      // (total,) AdamW moments
    int allocated;
    int *index;        // (index_cap,) name hash table: parameter position + 1, 0 = empty
    int index_cap;     // power of 2, > 2 * n: tern_params_add/find are O(1), not a scan
} tern_params;

void tern_params_init(tern_params *p);
// Register a parameter before tern_params_alloc(); returns its (stable) tensor.
tern_tensor *tern_params_add(tern_params *p, const char *name, int ndim, const int *shape, int no_decay);
void tern_params_alloc(tern_params *p);                 // carve data/grad/m/v; zeroes all (m, v: untouched zero pages)
// Values only (a frozen model: a distillation teacher, evaluation, export): grad, m and v stay
// NULL and no tensor requires a gradient, so ops record nothing for it. Zeroes the data.
void tern_params_alloc_data(tern_params *p);
void tern_params_free_moments(tern_params *p);          // release m and v (sharded optimizer); NULL after
tern_tensor *tern_params_find(const tern_params *p, const char *name);
void tern_params_zero_grad(tern_params *p);             // one memset
void tern_params_free(tern_params *p);

#endif
