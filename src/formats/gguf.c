// gguf.c — GGUF v3 reader (mmap + full validation) and atomic writer. libc-only (runtime too).
#include "formats/gguf.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------- type helpers
static const char *kv_names[TERN_GGUF_NTYPES] = {"uint8", "int8", "uint16", "int16", "uint32", "int32",
                                                  "float32", "bool", "string", "array", "uint64", "int64", "float64"};
static const size_t kv_sizes[TERN_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *tern_gguf_kv_type_name(uint32_t t) { return t < TERN_GGUF_NTYPES ? kv_names[t] : "?"; }
size_t tern_gguf_kv_type_size(uint32_t t) { return t < TERN_GGUF_NTYPES ? kv_sizes[t] : 0; }

// ---------------------------------------------------------------- reader
typedef struct {
    char *key;
    uint32_t type;
    uint8_t raw[8];          // scalar value, little-endian bytes
    char *str; size_t str_len;                    // STRING
    uint32_t arr_type; uint64_t arr_n;            // ARRAY
    void *arr;                                    // numeric elements (copied)
    char **strs; size_t *lens;                    // string elements
} gg_kv;

struct tern_gguf {
    char *path;
    void *map; size_t size;
    uint32_t version;
    size_t align;
    int n_kv; gg_kv *kv;
    int n_tensors; tern_gguf_tensor *t;
};

typedef struct {
    const uint8_t *p;
    size_t pos, size;
    const char *path;
} cursor;

static int need(cursor *c, size_t n, const char *what) {
    if (n > c->size - c->pos) {
        tern_error("%s: truncated file: %s at offset %zu needs %zu bytes, only %zu left", c->path, what, c->pos, n, c->size - c->pos);
        return -1;
    }
    return 0;
}
static int rd(cursor *c, void *out, size_t n, const char *what) {
    if (need(c, n, what)) return -1;
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return 0;
}
static int rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static int rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

// string → malloc'd NUL-terminated copy
static int rd_str(cursor *c, char **s, size_t *len, const char *what) {
    uint64_t n;
    if (rd_u64(c, &n, what)) return -1;
    if (n > c->size - c->pos) {
        tern_error("%s: %s: string length %llu at offset %zu exceeds the %zu bytes left in the file", c->path, what,
                   (unsigned long long)n, c->pos - 8, c->size - c->pos);
        return -1;
    }
    *s = tern_xmalloc((size_t)n + 1);
    memcpy(*s, c->p + c->pos, (size_t)n);
    (*s)[n] = 0;
    if (len) *len = (size_t)n;
    c->pos += (size_t)n;
    return 0;
}

static void free_kv(gg_kv *kv) {
    free(kv->key);
    free(kv->str);
    free(kv->arr);
    if (kv->strs) for (uint64_t i = 0; i < kv->arr_n; i++) free(kv->strs[i]);
    free(kv->strs);
    free(kv->lens);
}

void tern_gguf_close(tern_gguf *g) {
    if (!g) return;
    if (g->kv) for (int i = 0; i < g->n_kv; i++) free_kv(&g->kv[i]);
    free(g->kv);
    if (g->t) for (int i = 0; i < g->n_tensors; i++) free((char *)g->t[i].name);
    free(g->t);
    if (g->map && g->map != MAP_FAILED) munmap(g->map, g->size);
    free(g->path);
    free(g);
}

static int read_kv(cursor *c, gg_kv *kv, int idx) {
    char what[96];
    snprintf(what, sizeof what, "key of kv %d", idx);
    if (rd_str(c, &kv->key, NULL, what)) return -1;
    snprintf(what, sizeof what, "type of key %.40s", kv->key);
    if (rd_u32(c, &kv->type, what)) return -1;
    if (kv->type >= TERN_GGUF_NTYPES) {
        tern_error("%s: key %s: unknown value type %u", c->path, kv->key, kv->type);
        return -1;
    }
    snprintf(what, sizeof what, "value of key %.40s", kv->key);
    if (kv->type == TERN_GGUF_STRING) return rd_str(c, &kv->str, &kv->str_len, what);
    if (kv->type != TERN_GGUF_ARRAY) {
        if (rd(c, kv->raw, kv_sizes[kv->type], what)) return -1;
        if (kv->type == TERN_GGUF_BOOL && kv->raw[0] > 1) {
            tern_error("%s: key %s: bool value %u is not 0 or 1", c->path, kv->key, kv->raw[0]);
            return -1;
        }
        return 0;
    }
    if (rd_u32(c, &kv->arr_type, what) || rd_u64(c, &kv->arr_n, what)) return -1;
    if (kv->arr_type >= TERN_GGUF_NTYPES) {
        tern_error("%s: key %s: unknown array element type %u", c->path, kv->key, kv->arr_type);
        return -1;
    }
    if (kv->arr_type == TERN_GGUF_ARRAY) {
        tern_error("%s: key %s: nested arrays are not supported", c->path, kv->key);
        return -1;
    }
    size_t left = c->size - c->pos;
    if (kv->arr_type == TERN_GGUF_STRING) {
        if (kv->arr_n > left / 8) {
            tern_error("%s: key %s: array count %llu exceeds what the %zu bytes left in the file can hold", c->path, kv->key,
                       (unsigned long long)kv->arr_n, left);
            kv->arr_n = 0;
            return -1;
        }
        uint64_t n = kv->arr_n;
        kv->strs = tern_xcalloc((size_t)n, sizeof(char *));
        kv->lens = tern_xcalloc((size_t)n, sizeof(size_t));
        for (uint64_t i = 0; i < n; i++) {
            snprintf(what, sizeof what, "element %llu of key %.40s", (unsigned long long)i, kv->key);
            if (rd_str(c, &kv->strs[i], &kv->lens[i], what)) return -1;
        }
        return 0;
    }
    size_t es = kv_sizes[kv->arr_type];
    if (kv->arr_n > left / es) {
        tern_error("%s: key %s: array count %llu exceeds what the %zu bytes left in the file can hold", c->path, kv->key,
                   (unsigned long long)kv->arr_n, left);
        kv->arr_n = 0;
        return -1;
    }
    size_t nb = (size_t)kv->arr_n * es;
    kv->arr = tern_xmalloc(nb);
    memcpy(kv->arr, c->p + c->pos, nb);
    c->pos += nb;
    if (kv->arr_type == TERN_GGUF_BOOL)
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if (((uint8_t *)kv->arr)[i] > 1) {
                tern_error("%s: key %s: bool element %llu is not 0 or 1", c->path, kv->key, (unsigned long long)i);
                return -1;
            }
    return 0;
}

static int cmp_off(const void *a, const void *b) {
    const tern_gguf_tensor *x = *(tern_gguf_tensor *const *)a, *y = *(tern_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

tern_gguf *tern_gguf_open(const char *path) {
    tern_gguf *g = tern_xcalloc(1, sizeof *g);
    g->path = strdup(path);
    if (!g->path) tern_fatal("out of memory");
    int fd = tern_open_regular(path, &g->size);   // O_NONBLOCK: a FIFO is refused, never waited on
    if (fd < 0) goto fail;
    if (g->size < 24) {
        close(fd);
        tern_error("%s: truncated file: %zu bytes is smaller than the 24-byte GGUF header", path, g->size);
        // still report bad magic first when the magic is visibly wrong
        char *buf = tern_read_file(path, NULL);
        if (buf && g->size >= 4 && memcmp(buf, TERN_GGUF_MAGIC, 4) != 0) tern_error("%s: bad magic (not a GGUF file)", path);
        free(buf);
        goto fail;
    }
    g->map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (g->map == MAP_FAILED) { g->map = NULL; tern_error("%s: mmap failed: %s", path, strerror(errno)); goto fail; }

    cursor c = {g->map, 0, g->size, path};
    char magic[4] = {0};
    int64_t nt = 0, nk = 0;
    rd(&c, magic, 4, "magic");
    if (memcmp(magic, TERN_GGUF_MAGIC, 4) != 0) { tern_error("%s: bad magic (not a GGUF file)", path); goto fail; }
    rd_u32(&c, &g->version, "version");
    if (g->version != 3 && g->version != 2) {
        tern_error("%s: unsupported GGUF version %u (expected 3)", path, g->version);
        goto fail;
    }
    rd(&c, &nt, 8, "n_tensors");
    rd(&c, &nk, 8, "n_kv");
    // every kv needs >= 13 bytes (key len, type, 1-byte value); every tensor info >= 32 bytes
    if (nk < 0 || (uint64_t)nk > (g->size - c.pos) / 13) {
        tern_error("%s: bad kv count %lld (the file has room for at most %zu)", path, (long long)nk, (g->size - c.pos) / 13);
        goto fail;
    }
    if (nt < 0 || (uint64_t)nt > (g->size - c.pos) / 32) {
        tern_error("%s: bad tensor count %lld (the file has room for at most %zu)", path, (long long)nt, (g->size - c.pos) / 32);
        goto fail;
    }
    g->kv = tern_xcalloc((size_t)nk, sizeof(gg_kv));
    g->n_kv = (int)nk;
    g->align = TERN_GGUF_DEFAULT_ALIGNMENT;
    tern_strset seen, names;   // duplicate keys and tensor names: hash sets, not a quadratic scan
    tern_strset_init(&seen);
    tern_strset_init(&names);
    for (int i = 0; i < g->n_kv; i++) {
        if (read_kv(&c, &g->kv[i], i)) goto fail_set;
        if (!tern_strset_add(&seen, g->kv[i].key)) { tern_error("%s: duplicate key %s", path, g->kv[i].key); goto fail_set; }
        if (strcmp(g->kv[i].key, "general.alignment") == 0) {
            if (g->kv[i].type != TERN_GGUF_UINT32) {
                tern_error("%s: general.alignment is %s, expected uint32", path, kv_names[g->kv[i].type]);
                goto fail_set;
            }
            uint32_t a;
            memcpy(&a, g->kv[i].raw, 4);
            if (a == 0 || (a & (a - 1)) != 0) { tern_error("%s: general.alignment %u is not a power of 2", path, a); goto fail_set; }
            g->align = a;
        }
    }
    g->t = tern_xcalloc((size_t)nt, sizeof(tern_gguf_tensor));
    for (int64_t i = 0; i < nt; i++) {
        tern_gguf_tensor *t = &g->t[i];
        char what[96];
        char *name;
        snprintf(what, sizeof what, "name of tensor %lld", (long long)i);
        if (rd_str(&c, &name, NULL, what)) goto fail_set;
        t->name = name;
        g->n_tensors = (int)i + 1;
        snprintf(what, sizeof what, "info of tensor %.40s", name);
        uint32_t nd;
        if (rd_u32(&c, &nd, what)) goto fail_set;
        if (nd < 1 || nd > TERN_GGUF_MAX_DIMS) { tern_error("%s: tensor %s: n_dims %u out of range 1..4", path, name, nd); goto fail_set; }
        t->n_dims = (int)nd;
        for (int d = 0; d < TERN_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        if (rd(&c, t->ne, 8 * (size_t)nd, what)) goto fail_set;
        int32_t ty;
        if (rd(&c, &ty, 4, what) || rd_u64(&c, &t->offset, what)) goto fail_set;
        t->type = ty;
        for (uint32_t d = 0; d < nd; d++)
            if (t->ne[d] <= 0) { tern_error("%s: tensor %s: dimension %u is %lld (must be > 0)", path, name, d, (long long)t->ne[d]); goto fail_set; }
        if (!tern_ggml_type_known(ty)) { tern_error("%s: tensor %s: unsupported tensor type %d", path, name, ty); goto fail_set; }
        if (tern_ggml_nbytes(ty, (int)nd, t->ne, &t->nbytes)) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", tern_last_error());
            tern_error("%s: tensor %s: %s", path, name, msg);
            goto fail_set;
        }
        if (!tern_strset_add(&names, name)) { tern_error("%s: duplicate tensor name %s", path, name); goto fail_set; }
    }
    tern_strset_free(&seen);
    tern_strset_free(&names);
    // data section
    size_t data_start = (c.pos + g->align - 1) / g->align * g->align;
    if (nt > 0 && data_start > g->size) {
        tern_error("%s: truncated file: data section would start at %zu, past the end of the file (%zu bytes)", path, data_start, g->size);
        goto fail;
    }
    size_t data_size = data_start <= g->size ? g->size - data_start : 0;
    for (int i = 0; i < g->n_tensors; i++) {
        tern_gguf_tensor *t = &g->t[i];
        if (t->offset % g->align != 0) {
            tern_error("%s: tensor %s: offset %llu is misaligned (not a multiple of the alignment %zu)", path, t->name,
                       (unsigned long long)t->offset, g->align);
            goto fail;
        }
        if (t->offset > data_size || t->nbytes > data_size - t->offset) {
            tern_error("%s: tensor %s: data (offset %llu, %zu bytes) extends past the end of the file (data section holds %zu bytes)",
                       path, t->name, (unsigned long long)t->offset, t->nbytes, data_size);
            goto fail;
        }
        t->data = (const uint8_t *)g->map + data_start + t->offset;
    }
    if (g->n_tensors > 1) {
        tern_gguf_tensor **s = tern_xmalloc((size_t)g->n_tensors * sizeof *s);
        for (int i = 0; i < g->n_tensors; i++) s[i] = &g->t[i];
        qsort(s, (size_t)g->n_tensors, sizeof *s, cmp_off);
        for (int i = 0; i + 1 < g->n_tensors; i++)
            if (s[i]->offset + s[i]->nbytes > s[i + 1]->offset) {
                tern_error("%s: tensors %s and %s overlap", path, s[i]->name, s[i + 1]->name);
                free(s);
                goto fail;
            }
        free(s);
    }
    return g;
fail_set:
    tern_strset_free(&seen);
    tern_strset_free(&names);
fail:
    tern_gguf_close(g);
    return NULL;
}

const char *tern_gguf_path(const tern_gguf *g) { return g->path; }
uint32_t tern_gguf_version(const tern_gguf *g) { return g->version; }
size_t tern_gguf_alignment(const tern_gguf *g) { return g->align; }
size_t tern_gguf_file_size(const tern_gguf *g) { return g->size; }
int tern_gguf_n_kv(const tern_gguf *g) { return g->n_kv; }
const char *tern_gguf_kv_key(const tern_gguf *g, int i) { return (i >= 0 && i < g->n_kv) ? g->kv[i].key : NULL; }
uint32_t tern_gguf_kv_type(const tern_gguf *g, int i) { return (i >= 0 && i < g->n_kv) ? g->kv[i].type : TERN_GGUF_NTYPES; }
uint32_t tern_gguf_kv_arr_type(const tern_gguf *g, int i) {
    return (i >= 0 && i < g->n_kv && g->kv[i].type == TERN_GGUF_ARRAY) ? g->kv[i].arr_type : TERN_GGUF_NTYPES;
}
uint64_t tern_gguf_kv_arr_n(const tern_gguf *g, int i) {
    return (i >= 0 && i < g->n_kv && g->kv[i].type == TERN_GGUF_ARRAY) ? g->kv[i].arr_n : 0;
}
int tern_gguf_find_kv(const tern_gguf *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return i;
    return -1;
}

static const gg_kv *get_kv(const tern_gguf *g, const char *key, uint32_t type) {
    int i = tern_gguf_find_kv(g, key);
    if (i < 0) { tern_error("%s: key %s: missing", g->path, key); return NULL; }
    const gg_kv *kv = &g->kv[i];
    if (kv->type != type) {
        tern_error("%s: key %s: is %s, expected %s", g->path, key, kv_names[kv->type], tern_gguf_kv_type_name(type));
        return NULL;
    }
    return kv;
}

#define SCALAR_GETTER(fn, ctype, T)                                       \
    int fn(const tern_gguf *g, const char *key, ctype *out) {             \
        const gg_kv *kv = get_kv(g, key, T);                              \
        if (!kv) return -1;                                               \
        memcpy(out, kv->raw, sizeof(ctype));                              \
        return 0;                                                         \
    }
SCALAR_GETTER(tern_gguf_get_u8, uint8_t, TERN_GGUF_UINT8)
SCALAR_GETTER(tern_gguf_get_i8, int8_t, TERN_GGUF_INT8)
SCALAR_GETTER(tern_gguf_get_u16, uint16_t, TERN_GGUF_UINT16)
SCALAR_GETTER(tern_gguf_get_i16, int16_t, TERN_GGUF_INT16)
SCALAR_GETTER(tern_gguf_get_u32, uint32_t, TERN_GGUF_UINT32)
SCALAR_GETTER(tern_gguf_get_i32, int32_t, TERN_GGUF_INT32)
SCALAR_GETTER(tern_gguf_get_u64, uint64_t, TERN_GGUF_UINT64)
SCALAR_GETTER(tern_gguf_get_f32, float, TERN_GGUF_FLOAT32)
SCALAR_GETTER(tern_gguf_get_f64, double, TERN_GGUF_FLOAT64)

int tern_gguf_get_i64(const tern_gguf *g, const char *key, int64_t *out) {
    int i = tern_gguf_find_kv(g, key);
    if (i < 0) { tern_error("%s: key %s: missing", g->path, key); return -1; }
    const gg_kv *kv = &g->kv[i];
    switch (kv->type) {
    case TERN_GGUF_UINT8: { uint8_t v; memcpy(&v, kv->raw, 1); *out = v; return 0; }
    case TERN_GGUF_INT8: { int8_t v; memcpy(&v, kv->raw, 1); *out = v; return 0; }
    case TERN_GGUF_UINT16: { uint16_t v; memcpy(&v, kv->raw, 2); *out = v; return 0; }
    case TERN_GGUF_INT16: { int16_t v; memcpy(&v, kv->raw, 2); *out = v; return 0; }
    case TERN_GGUF_UINT32: { uint32_t v; memcpy(&v, kv->raw, 4); *out = v; return 0; }
    case TERN_GGUF_INT32: { int32_t v; memcpy(&v, kv->raw, 4); *out = v; return 0; }
    case TERN_GGUF_INT64: { int64_t v; memcpy(&v, kv->raw, 8); *out = v; return 0; }
    case TERN_GGUF_UINT64: {
        uint64_t v; memcpy(&v, kv->raw, 8);
        if (v > (uint64_t)INT64_MAX) { tern_error("%s: key %s: value %llu does not fit int64", g->path, key, (unsigned long long)v); return -1; }
        *out = (int64_t)v;
        return 0;
    }
    default:
        tern_error("%s: key %s: is %s, expected an integer", g->path, key, kv_names[kv->type]);
        return -1;
    }
}

int tern_gguf_get_bool(const tern_gguf *g, const char *key, int *out) {
    const gg_kv *kv = get_kv(g, key, TERN_GGUF_BOOL);
    if (!kv) return -1;
    *out = kv->raw[0] != 0;
    return 0;
}

int tern_gguf_get_str(const tern_gguf *g, const char *key, const char **out, size_t *len) {
    const gg_kv *kv = get_kv(g, key, TERN_GGUF_STRING);
    if (!kv) return -1;
    *out = kv->str;
    if (len) *len = kv->str_len;
    return 0;
}

int tern_gguf_get_arr(const tern_gguf *g, const char *key, uint32_t elem_type, const void **data, uint64_t *n) {
    const gg_kv *kv = get_kv(g, key, TERN_GGUF_ARRAY);
    if (!kv) return -1;
    if (kv->arr_type != elem_type) {
        tern_error("%s: key %s: is an array of %s, expected an array of %s", g->path, key, kv_names[kv->arr_type],
                   tern_gguf_kv_type_name(elem_type));
        return -1;
    }
    if (elem_type == TERN_GGUF_STRING) *data = kv->strs;
    else *data = kv->arr;
    *n = kv->arr_n;
    return 0;
}

int tern_gguf_get_arr_str(const tern_gguf *g, const char *key, const char *const **strs, const size_t **lens, uint64_t *n) {
    const void *d;
    if (tern_gguf_get_arr(g, key, TERN_GGUF_STRING, &d, n)) return -1;
    *strs = (const char *const *)d;
    if (lens) *lens = g->kv[tern_gguf_find_kv(g, key)].lens;
    return 0;
}
int tern_gguf_get_arr_f32(const tern_gguf *g, const char *key, const float **data, uint64_t *n) {
    return tern_gguf_get_arr(g, key, TERN_GGUF_FLOAT32, (const void **)data, n);
}
int tern_gguf_get_arr_i32(const tern_gguf *g, const char *key, const int32_t **data, uint64_t *n) {
    return tern_gguf_get_arr(g, key, TERN_GGUF_INT32, (const void **)data, n);
}
int tern_gguf_get_arr_u32(const tern_gguf *g, const char *key, const uint32_t **data, uint64_t *n) {
    return tern_gguf_get_arr(g, key, TERN_GGUF_UINT32, (const void **)data, n);
}

int tern_gguf_n_tensors(const tern_gguf *g) { return g->n_tensors; }
const tern_gguf_tensor *tern_gguf_tensor_at(const tern_gguf *g, int i) { return (i >= 0 && i < g->n_tensors) ? &g->t[i] : NULL; }
const tern_gguf_tensor *tern_gguf_find_tensor(const tern_gguf *g, const char *name) {
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->t[i].name, name) == 0) return &g->t[i];
    return NULL;
}
const tern_gguf_tensor *tern_gguf_get_tensor(const tern_gguf *g, const char *name) {
    const tern_gguf_tensor *t = tern_gguf_find_tensor(g, name);
    if (!t) tern_error("%s: missing tensor %s", g->path, name);
    return t;
}

// ---------------------------------------------------------------- writer
typedef struct {
    char *key;
    uint8_t *val;   // serialized: uint32 type + value bytes
    size_t val_len;
} wkv;

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[TERN_GGUF_MAX_DIMS];
    int type;
    const void *data;
    size_t nbytes;
} wtensor;

struct tern_gguf_writer {
    wkv *kv; int n_kv, cap_kv;
    wtensor *t; int n_t, cap_t;
    uint32_t align;
};

tern_gguf_writer *tern_gguf_writer_new(void) {
    tern_gguf_writer *w = tern_xcalloc(1, sizeof *w);
    w->align = TERN_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void tern_gguf_writer_free(tern_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) { free(w->kv[i].key); free(w->kv[i].val); }
    for (int i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

// growable byte buffer
typedef struct { uint8_t *p; size_t n, cap; } bbuf;
static void bb_put(bbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n) c *= 2;
        b->p = realloc(b->p, c);
        if (!b->p) tern_fatal("out of memory");
        b->cap = c;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void bb_u32(bbuf *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bbuf *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bbuf *b, const char *s, size_t len) { bb_u64(b, len); bb_put(b, s, len); }

static int add_kv(tern_gguf_writer *w, const char *key, bbuf *val) {
    if (!key || !*key) { tern_error("gguf writer: empty key"); free(val->p); return -1; }
    for (int i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) { tern_error("gguf writer: duplicate key %s", key); free(val->p); return -1; }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 16;
        w->kv = realloc(w->kv, (size_t)w->cap_kv * sizeof *w->kv);
        if (!w->kv) tern_fatal("out of memory");
    }
    w->kv[w->n_kv].key = strdup(key);
    if (!w->kv[w->n_kv].key) tern_fatal("out of memory");
    w->kv[w->n_kv].val = val->p;
    w->kv[w->n_kv].val_len = val->n;
    w->n_kv++;
    return 0;
}

static int add_scalar(tern_gguf_writer *w, const char *key, uint32_t type, const void *v) {
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a;
        if (type != TERN_GGUF_UINT32) { tern_error("gguf writer: general.alignment must be uint32"); return -1; }
        memcpy(&a, v, 4);
        if (a == 0 || (a & (a - 1))) { tern_error("gguf writer: general.alignment %u is not a power of 2", a); return -1; }
        for (int i = 0; i < w->n_kv; i++)
            if (strcmp(w->kv[i].key, key) == 0) { tern_error("gguf writer: duplicate key %s", key); return -1; }
        w->align = a;
    }
    bbuf b = {0};
    bb_u32(&b, type);
    bb_put(&b, v, kv_sizes[type]);
    return add_kv(w, key, &b);
}

int tern_gguf_add_u8(tern_gguf_writer *w, const char *k, uint8_t v) { return add_scalar(w, k, TERN_GGUF_UINT8, &v); }
int tern_gguf_add_i8(tern_gguf_writer *w, const char *k, int8_t v) { return add_scalar(w, k, TERN_GGUF_INT8, &v); }
int tern_gguf_add_u16(tern_gguf_writer *w, const char *k, uint16_t v) { return add_scalar(w, k, TERN_GGUF_UINT16, &v); }
int tern_gguf_add_i16(tern_gguf_writer *w, const char *k, int16_t v) { return add_scalar(w, k, TERN_GGUF_INT16, &v); }
int tern_gguf_add_u32(tern_gguf_writer *w, const char *k, uint32_t v) { return add_scalar(w, k, TERN_GGUF_UINT32, &v); }
int tern_gguf_add_i32(tern_gguf_writer *w, const char *k, int32_t v) { return add_scalar(w, k, TERN_GGUF_INT32, &v); }
int tern_gguf_add_u64(tern_gguf_writer *w, const char *k, uint64_t v) { return add_scalar(w, k, TERN_GGUF_UINT64, &v); }
int tern_gguf_add_i64(tern_gguf_writer *w, const char *k, int64_t v) { return add_scalar(w, k, TERN_GGUF_INT64, &v); }
int tern_gguf_add_f32(tern_gguf_writer *w, const char *k, float v) { return add_scalar(w, k, TERN_GGUF_FLOAT32, &v); }
int tern_gguf_add_f64(tern_gguf_writer *w, const char *k, double v) { return add_scalar(w, k, TERN_GGUF_FLOAT64, &v); }
int tern_gguf_add_bool(tern_gguf_writer *w, const char *k, int v) {
    uint8_t b = v != 0;
    return add_scalar(w, k, TERN_GGUF_BOOL, &b);
}
int tern_gguf_add_str_len(tern_gguf_writer *w, const char *key, const char *s, size_t len) {
    bbuf b = {0};
    bb_u32(&b, TERN_GGUF_STRING);
    bb_str(&b, s, len);
    return add_kv(w, key, &b);
}
int tern_gguf_add_str(tern_gguf_writer *w, const char *key, const char *s) { return tern_gguf_add_str_len(w, key, s, strlen(s)); }

int tern_gguf_add_arr(tern_gguf_writer *w, const char *key, uint32_t et, const void *data, uint64_t n) {
    if (et >= TERN_GGUF_NTYPES || et == TERN_GGUF_STRING || et == TERN_GGUF_ARRAY) {
        tern_error("gguf writer: key %s: bad numeric array element type %u", key, et);
        return -1;
    }
    bbuf b = {0};
    bb_u32(&b, TERN_GGUF_ARRAY);
    bb_u32(&b, et);
    bb_u64(&b, n);
    if (n) bb_put(&b, data, (size_t)n * kv_sizes[et]);
    return add_kv(w, key, &b);
}

int tern_gguf_add_arr_str(tern_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    bbuf b = {0};
    bb_u32(&b, TERN_GGUF_ARRAY);
    bb_u32(&b, TERN_GGUF_STRING);
    bb_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) bb_str(&b, strs[i], strlen(strs[i]));
    return add_kv(w, key, &b);
}

int tern_gguf_add_tensor(tern_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, int type, const void *data, size_t nbytes) {
    if (!name || !*name || strlen(name) >= 64) { tern_error("gguf writer: tensor name '%s' empty or 64+ chars", name ? name : ""); return -1; }
    for (int i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) { tern_error("gguf writer: duplicate tensor name %s", name); return -1; }
    size_t want;
    if (tern_ggml_nbytes(type, n_dims, ne, &want)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("gguf writer: tensor %s: %s", name, msg);
        return -1;
    }
    if (want != nbytes) { tern_error("gguf writer: tensor %s: %zu data bytes, its shape and type need %zu", name, nbytes, want); return -1; }
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 16;
        w->t = realloc(w->t, (size_t)w->cap_t * sizeof *w->t);
        if (!w->t) tern_fatal("out of memory");
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) tern_fatal("out of memory");
    t->n_dims = n_dims;
    for (int d = 0; d < TERN_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->data = data;
    t->nbytes = nbytes;
    return 0;
}

static size_t pad_to(size_t x, size_t a) { return (x + a - 1) / a * a; }

int tern_gguf_write(tern_gguf_writer *w, const char *path) {
    bbuf h = {0};
    bb_put(&h, TERN_GGUF_MAGIC, 4);
    bb_u32(&h, TERN_GGUF_VERSION);
    bb_u64(&h, (uint64_t)w->n_t);
    bb_u64(&h, (uint64_t)w->n_kv);
    for (int i = 0; i < w->n_kv; i++) {
        bb_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        bb_put(&h, w->kv[i].val, w->kv[i].val_len);
    }
    size_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        bb_str(&h, t->name, strlen(t->name));
        bb_u32(&h, (uint32_t)t->n_dims);
        bb_put(&h, t->ne, 8 * (size_t)t->n_dims);
        int32_t ty = t->type;
        bb_put(&h, &ty, 4);
        bb_u64(&h, off);
        off = pad_to(off + t->nbytes, w->align);
    }
    static const uint8_t zeros[256] = {0};
    size_t hpad = pad_to(h.n, w->align) - h.n;
    while (hpad) { size_t k = hpad < sizeof zeros ? hpad : sizeof zeros; bb_put(&h, zeros, k); hpad -= k; }

    char tmp[4096];
    tern_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) { tern_error("%s: cannot create %s: %s", path, tmp, strerror(errno)); free(h.p); return -1; }
    int ok = fwrite(h.p, 1, h.n, f) == h.n;
    free(h.p);
    for (int i = 0; ok && i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        if (t->nbytes && fwrite(t->data, 1, t->nbytes, f) != t->nbytes) ok = 0;
        size_t p = pad_to(t->nbytes, w->align) - t->nbytes;
        while (ok && p) {
            size_t k = p < sizeof zeros ? p : sizeof zeros;
            if (fwrite(zeros, 1, k, f) != k) ok = 0;
            p -= k;
        }
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) { tern_error("%s: write failed: %s", path, strerror(errno)); tern_discard_file(tmp); return -1; }
    return tern_commit_file(tmp, path);
}
