// tensor.c — tensor helpers, the per-step arena and the flat parameter store.
#include "engine/tensor.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

long tern_numel(int ndim, const int *shape) {
    long n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int tern_same_shape(const tern_tensor *a, const tern_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *tern_shape_str(const tern_tensor *t, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s[", t->name[0] ? t->name : "tensor");
    for (int i = 0; i < t->ndim && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, i ? "x%d" : "%d", t->shape[i]);
    if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]");
    return buf;
}

// ---- arena ---------------------------------------------------------------------------------
static tern_arena_block *block_new(size_t cap) {
    tern_arena_block *b = tern_xmalloc(sizeof *b);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    b->mem = tern_aligned_alloc(cap);
    return b;
}

void tern_arena_init(tern_arena *a, const char *what, size_t initial, size_t limit) {
    memset(a, 0, sizeof *a);
    a->what = what;
    a->limit = limit;
    a->head = block_new(initial ? initial : (1u << 20));
}

void *tern_arena_alloc(tern_arena *a, size_t bytes) {
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need == 0) need = 64;
    if (a->limit && a->used_total + need > a->limit)
        tern_fatal("%s arena exhausted: this step needs more than %.1f MiB (limit %.1f MiB); "
                   "raise the arena limit or reduce batch/seq_len",
                   a->what, (a->used_total + need) / 1048576.0, a->limit / 1048576.0);
    tern_arena_block *b = a->head;
    if (b->used + need > b->cap) {
        size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
        tern_arena_block *nb = block_new(cap);
        nb->next = b;
        a->head = b = nb;
    }
    void *p = b->mem + b->used;
    b->used += need;
    a->used_total += need;
    if (a->used_total > a->high) a->high = a->used_total;
    return p;
}

void *tern_arena_calloc(tern_arena *a, size_t bytes) {
    void *p = tern_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void tern_arena_reset(tern_arena *a) {
    // grew during this step (or grew and was released since): one block of the high-water size
    if (a->head->next || a->head->cap < a->high) {
        tern_arena_block *b = a->head;
        while (b) { tern_arena_block *nx = b->next; free(b->mem); free(b); b = nx; }
        a->head = block_new(a->high);
    }
    a->head->used = 0;
    a->used_total = 0;
}

tern_arena_mark_t tern_arena_mark(const tern_arena *a) {
    tern_arena_mark_t m = {a->head, a->head->used, a->used_total};
    return m;
}

void tern_arena_release(tern_arena *a, tern_arena_mark_t m) {
    while (a->head != m.block) { // blocks added after the mark
        tern_arena_block *b = a->head;
        if (!b) tern_fatal("%s arena: release to a mark that is not in the arena", a->what);
        a->head = b->next;
        free(b->mem);
        free(b);
    }
    a->head->used = m.used;
    a->used_total = m.used_total;
}

void tern_arena_free(tern_arena *a) {
    tern_arena_block *b = a->head;
    while (b) { tern_arena_block *nx = b->next; free(b->mem); free(b); b = nx; }
    a->head = NULL;
}

size_t tern_arena_capacity(const tern_arena *a) {
    size_t c = 0;
    for (tern_arena_block *b = a->head; b; b = b->next) c += b->cap;
    return c;
}

// ---- params ----------------------------------------------------------------------------------
void tern_params_init(tern_params *p) { memset(p, 0, sizeof *p); }

// slot of name in the hash index: where it is, or the empty slot where it would go
static size_t index_slot(const tern_params *p, const char *name) {
    size_t mask = (size_t)p->index_cap - 1, i = (size_t)tern_hash64(name, strlen(name), 0) & mask;
    while (p->index[i] && strcmp(p->t[p->index[i] - 1]->name, name) != 0) i = (i + 1) & mask;
    return i;
}

static void index_grow(tern_params *p) {
    int cap = p->index_cap ? p->index_cap * 2 : 128;
    free(p->index);
    p->index = tern_xcalloc((size_t)cap, sizeof(int));
    p->index_cap = cap;
    for (int k = 0; k < p->n; k++) p->index[index_slot(p, p->t[k]->name)] = k + 1;
}

tern_tensor *tern_params_add(tern_params *p, const char *name, int ndim, const int *shape, int no_decay) {
    if (p->allocated) tern_fatal("tern_params_add(%s): parameters already allocated", name);
    if (ndim < 1 || ndim > TERN_MAX_DIMS) tern_fatal("tern_params_add(%s): bad ndim %d", name, ndim);
    if (strlen(name) >= TERN_NAME_MAX) tern_fatal("tern_params_add(%s): name longer than %d bytes", name, TERN_NAME_MAX - 1);
    if (tern_params_find(p, name)) tern_fatal("tern_params_add(%s): duplicate parameter name", name);
    if (p->n == INT32_MAX / 4) tern_fatal("tern_params_add(%s): too many parameters", name);
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->t = realloc(p->t, sizeof(*p->t) * (size_t)p->cap);
        if (!p->t) tern_fatal("out of memory");
    }
    tern_tensor *t = tern_xcalloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) tern_fatal("tern_params_add(%s): dimension %d is %d", name, i, shape[i]);
        t->shape[i] = shape[i];
    }
    t->n = tern_numel(ndim, shape);
    t->requires_grad = 1;
    t->is_param = 1;
    t->node = -1;
    t->no_decay = no_decay;
    t->offset = p->total;
    p->total += (t->n + 15) & ~15L; // keep every tensor 64-byte aligned
    p->t[p->n++] = t;
    if (2 * p->n >= p->index_cap) index_grow(p);
    else p->index[index_slot(p, t->name)] = p->n;
    return t;
}

static size_t params_bytes(const tern_params *p) { return sizeof(float) * (size_t)(p->total ? p->total : 16); }

// AdamW's m and v: zero pages from the kernel, resident only once written, so a run that keeps just
// a slice of them (ZeRO-1, dist/ddp.h) never pays for the whole buffers.
static float *zero_pages(size_t bytes) {
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) tern_fatal("out of memory allocating %zu bytes", bytes);
    return m;
}

void tern_params_free_moments(tern_params *p) {
    if (p->m) munmap(p->m, params_bytes(p));
    if (p->v) munmap(p->v, params_bytes(p));
    p->m = p->v = NULL;
}

void tern_params_alloc(tern_params *p) {
    size_t bytes = params_bytes(p);
    p->data = tern_aligned_alloc(bytes);
    p->grad = tern_aligned_alloc(bytes);
    p->m = zero_pages(bytes);
    p->v = zero_pages(bytes);
    memset(p->data, 0, bytes);
    memset(p->grad, 0, bytes);
    for (int i = 0; i < p->n; i++) {
        p->t[i]->data = p->data + p->t[i]->offset;
        p->t[i]->grad = p->grad + p->t[i]->offset;
    }
    p->allocated = 1;
}

void tern_params_alloc_data(tern_params *p) {
    size_t bytes = sizeof(float) * (size_t)(p->total ? p->total : 16);
    p->data = tern_aligned_alloc(bytes);
    memset(p->data, 0, bytes);
    for (int i = 0; i < p->n; i++) {
        p->t[i]->data = p->data + p->t[i]->offset;
        p->t[i]->grad = NULL;
        p->t[i]->requires_grad = 0;
    }
    p->allocated = 1;
}

tern_tensor *tern_params_find(const tern_params *p, const char *name) {
    if (!p->index_cap) return NULL;
    int k = p->index[index_slot(p, name)];
    return k ? p->t[k - 1] : NULL;
}

void tern_params_zero_grad(tern_params *p) {
    if (p->grad) memset(p->grad, 0, sizeof(float) * (size_t)p->total);
}

void tern_params_free(tern_params *p) {
    for (int i = 0; i < p->n; i++) free(p->t[i]);
    free(p->t);
    free(p->data);
    free(p->grad);
    tern_params_free_moments(p);
    free(p->index);
    memset(p, 0, sizeof *p);
}
