// safetensors.c — Hugging Face safetensors reader (layout and checks in safetensors.h).
#include "formats/safetensors.h"
#include "tokenizers/tokenizer.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *path;
    void *map;
    size_t size;
} st_file;

struct tern_st {
    st_file *files;
    int n_files;
    tern_st_tensor *t;
    int n, cap;
    int *hash;          // open addressing over names, -1 empty
    int hash_cap;
    size_t total_bytes;
};

static const struct { const char *name; size_t size; } DTYPES[TERN_ST_NDTYPES] = {
    [TERN_ST_BOOL] = {"BOOL", 1},   [TERN_ST_U8] = {"U8", 1},         [TERN_ST_I8] = {"I8", 1},
    [TERN_ST_F8_E5M2] = {"F8_E5M2", 1}, [TERN_ST_F8_E4M3] = {"F8_E4M3", 1}, [TERN_ST_I16] = {"I16", 2},
    [TERN_ST_U16] = {"U16", 2},     [TERN_ST_F16] = {"F16", 2},       [TERN_ST_BF16] = {"BF16", 2},
    [TERN_ST_I32] = {"I32", 4},     [TERN_ST_U32] = {"U32", 4},       [TERN_ST_F32] = {"F32", 4},
    [TERN_ST_F64] = {"F64", 8},     [TERN_ST_I64] = {"I64", 8},       [TERN_ST_U64] = {"U64", 8},
};

const char *tern_st_dtype_name(int dtype) { return dtype >= 0 && dtype < TERN_ST_NDTYPES ? DTYPES[dtype].name : "?"; }
size_t tern_st_dtype_size(int dtype) { return dtype >= 0 && dtype < TERN_ST_NDTYPES ? DTYPES[dtype].size : 0; }

// bfloat16 is the upper half of a float32
static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// ---- the tensor set ----------------------------------------------------------------------------

static uint64_t name_hash(const char *s) { return tern_fnv1a64(s, strlen(s)); }

static int find_index(const tern_st *s, const char *name) {
    if (!s->hash_cap) return -1;
    for (size_t h = name_hash(name) & (size_t)(s->hash_cap - 1);; h = (h + 1) & (size_t)(s->hash_cap - 1)) {
        int i = s->hash[h];
        if (i < 0) return -1;
        if (strcmp(s->t[i].name, name) == 0) return i;
    }
}

static void rehash(tern_st *s, int cap) {
    free(s->hash);
    s->hash_cap = cap;
    s->hash = tern_xmalloc(sizeof(int) * (size_t)cap);
    for (int i = 0; i < cap; i++) s->hash[i] = -1;
    for (int i = 0; i < s->n; i++) {
        size_t h = name_hash(s->t[i].name) & (size_t)(cap - 1);
        while (s->hash[h] >= 0) h = (h + 1) & (size_t)(cap - 1);
        s->hash[h] = i;
    }
}

// appends t (name ownership moves in); -1 if the name is already there
static int add_tensor(tern_st *s, tern_st_tensor *t) {
    if (find_index(s, t->name) >= 0) return -1;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->t = realloc(s->t, sizeof *s->t * (size_t)s->cap);
        if (!s->t) tern_fatal("out of memory");
    }
    s->t[s->n++] = *t;
    if (2 * s->n > s->hash_cap) rehash(s, s->hash_cap ? 2 * s->hash_cap : 128);
    else {
        size_t h = name_hash(t->name) & (size_t)(s->hash_cap - 1);
        while (s->hash[h] >= 0) h = (h + 1) & (size_t)(s->hash_cap - 1);
        s->hash[h] = s->n - 1;
    }
    return 0;
}

void tern_st_close(tern_st *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->t[i].name);
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].map && s->files[i].size) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    free(s->files);
    free(s->t);
    free(s->hash);
    free(s);
}

int tern_st_count(const tern_st *s) { return s->n; }
const tern_st_tensor *tern_st_get(const tern_st *s, int i) { return i >= 0 && i < s->n ? &s->t[i] : NULL; }
const tern_st_tensor *tern_st_find(const tern_st *s, const char *name) {
    int i = find_index(s, name);
    return i >= 0 ? &s->t[i] : NULL;
}
int tern_st_n_files(const tern_st *s) { return s->n_files; }
size_t tern_st_total_bytes(const tern_st *s) { return s->total_bytes; }

// ---- one file -----------------------------------------------------------------------------------

typedef struct { uint64_t begin, end; int idx; } span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

// non-negative JSON integer -> *out; 0 or -1
static int json_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

// Parses one header entry into t (name not set). 0, or -1 with the problem in msg.
static int parse_entry(const json_t *e, uint64_t data_size, tern_st_tensor *t, uint64_t *b, uint64_t *en, char *msg, size_t n) {
    if (!json_is_object(e)) { snprintf(msg, n, "is not an object"); return -1; }
    const json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"), *off = json_object_get(e, "data_offsets");
    if (!json_is_string(dt)) { snprintf(msg, n, "has no \"dtype\" string"); return -1; }
    if (!json_is_array(sh)) { snprintf(msg, n, "has no \"shape\" array"); return -1; }
    if (!json_is_array(off) || json_array_size(off) != 2) { snprintf(msg, n, "has no \"data_offsets\" [begin, end]"); return -1; }
    if (json_object_size(e) != 3) { snprintf(msg, n, "has keys other than dtype, shape, data_offsets"); return -1; }
    t->dtype = -1;
    for (int d = 0; d < TERN_ST_NDTYPES; d++)
        if (strcmp(json_string_value(dt), DTYPES[d].name) == 0) t->dtype = d;
    if (t->dtype < 0) { snprintf(msg, n, "has unknown dtype \"%.32s\"", json_string_value(dt)); return -1; }
    size_t nd = json_array_size(sh);
    if (nd > TERN_ST_MAX_DIMS) { snprintf(msg, n, "has %zu dimensions (at most %d)", nd, TERN_ST_MAX_DIMS); return -1; }
    t->n_dims = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (json_u64(json_array_get(sh, i), &d) != 0) { snprintf(msg, n, "has a shape entry that is not a non-negative integer"); return -1; }
        if (d > (uint64_t)INT64_MAX) overflow = 1;
        t->shape[i] = (int64_t)d;
        if (d && numel > UINT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    uint64_t esz = DTYPES[t->dtype].size;
    if (overflow || numel > UINT64_MAX / esz || numel > (uint64_t)INT64_MAX) { snprintf(msg, n, "has a shape whose size overflows"); return -1; }
    if (json_u64(json_array_get(off, 0), b) != 0 || json_u64(json_array_get(off, 1), en) != 0) {
        snprintf(msg, n, "has data_offsets that are not non-negative integers");
        return -1;
    }
    if (*b > *en || *en > data_size) {
        snprintf(msg, n, "has data_offsets [%llu, %llu] outside the %llu-byte data buffer", (unsigned long long)*b,
                 (unsigned long long)*en, (unsigned long long)data_size);
        return -1;
    }
    if (*en - *b != numel * esz) {
        snprintf(msg, n, "has %llu bytes of data but its shape and dtype %s need %llu", (unsigned long long)(*en - *b),
                 DTYPES[t->dtype].name, (unsigned long long)(numel * esz));
        return -1;
    }
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(numel * esz);
    return 0;
}

// Maps path and appends its tensors to s (as file number s->n_files). 0 or -1.
static int add_file(tern_st *s, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { tern_error("%s: cannot open: %s", path, strerror(errno)); return -1; }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        tern_error("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) { tern_error("%s: too short for a safetensors file (%zu bytes)", path, size); close(fd); return -1; }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) { tern_error("%s: cannot map: %s", path, strerror(errno)); return -1; }
    s->files = realloc(s->files, sizeof *s->files * (size_t)(s->n_files + 1));
    if (!s->files) tern_fatal("out of memory");
    st_file *f = &s->files[s->n_files++];
    f->path = tern_xmalloc(strlen(path) + 1);
    strcpy(f->path, path);
    f->map = map;
    f->size = size;
    s->total_bytes += size;

    const unsigned char *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen == 0 || hlen > TERN_ST_MAX_HEADER || hlen > size - 8) {
        tern_error("%s: header length %llu is %s (file is %zu bytes)", path, (unsigned long long)hlen,
                   hlen == 0 ? "zero" : hlen > TERN_ST_MAX_HEADER ? "over the 100 MiB limit" : "past the end of the file", size);
        return -1;
    }
    uint64_t data_size = size - 8 - hlen;
    const char *data = (const char *)p + 8 + hlen;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) { tern_error("%s: header is not valid JSON (%s at byte %d)", path, jerr.text, jerr.position); return -1; }
    if (!json_is_object(root)) { tern_error("%s: header is not a JSON object", path); json_decref(root); return -1; }
    size_t nt = json_object_size(root);
    span *spans = tern_xmalloc(sizeof(span) * (nt ? nt : 1));
    int ns = 0, rc = -1;
    const char *key;
    json_t *val;
    int first = s->n;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) { tern_error("%s: __metadata__ is not an object", path); goto out; }
            continue;
        }
        size_t kl = strlen(key);
        if (kl == 0 || kl > 4096) { tern_error("%s: tensor name of %zu bytes (1 to 4096 allowed)", path, kl); goto out; }
        tern_st_tensor t;
        memset(&t, 0, sizeof t);
        uint64_t b, e;
        char msg[256];
        if (parse_entry(val, data_size, &t, &b, &e, msg, sizeof msg) != 0) {
            tern_error("%s: tensor \"%.200s\" %s", path, key, msg);
            goto out;
        }
        t.name = tern_xmalloc(kl + 1);
        memcpy(t.name, key, kl + 1);
        t.data = data + b;
        t.file = f->path;
        if (add_tensor(s, &t) != 0) {
            tern_error("%s: tensor \"%.200s\" appears in more than one file", path, key);
            free(t.name);
            goto out;
        }
        spans[ns].begin = b;
        spans[ns].end = e;
        spans[ns].idx = s->n - 1;
        ns++;
    }
    qsort(spans, (size_t)ns, sizeof *spans, cmp_span);
    for (int i = 1; i < ns; i++)
        if (spans[i].begin < spans[i - 1].end) {
            tern_error("%s: tensors \"%.200s\" and \"%.200s\" overlap in the data buffer", path, s->t[spans[i - 1].idx].name,
                       s->t[spans[i].idx].name);
            goto out;
        }
    rc = 0;
out:
    (void)first;
    free(spans);
    json_decref(root);
    return rc;
}

tern_st *tern_st_open_file(const char *path) {
    tern_st *s = tern_xcalloc(1, sizeof *s);
    if (add_file(s, path) != 0) { tern_st_close(s); return NULL; }
    return s;
}

// ---- a model directory ---------------------------------------------------------------------------

static int plain_name(const char *n) {
    size_t l = strlen(n);
    return l > 0 && l < 256 && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..") && n[0] != '.';
}

tern_st *tern_st_open_dir(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0) {
            tern_error("%s: no model.safetensors or model.safetensors.index.json (a Hugging Face model directory has one)", dir);
            return NULL;
        }
        return tern_st_open_file(path);
    }
    size_t n;
    char *text = tern_read_file(path, &n);
    if (!text) return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) { tern_error("%s: not valid JSON (%s, line %d)", path, jerr.text, jerr.line); return NULL; }
    tern_st *s = tern_xcalloc(1, sizeof *s);
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    const char *key;
    json_t *val;
    char **shards = NULL;
    int nsh = 0, ok = 0;
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        tern_error("%s: no \"weight_map\" object", path);
        goto out;
    }
    // shard files in order of first appearance
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val) || !plain_name(json_string_value(val))) {
            tern_error("%s: weight_map entry \"%.200s\" does not name a file in the directory", path, key);
            goto out;
        }
        const char *f = json_string_value(val);
        int seen = 0;
        for (int i = 0; i < nsh && !seen; i++) seen = strcmp(shards[i], f) == 0;
        if (!seen) {
            shards = realloc(shards, sizeof(char *) * (size_t)(nsh + 1));
            if (!shards) tern_fatal("out of memory");
            shards[nsh++] = (char *)f;
        }
    }
    for (int i = 0; i < nsh; i++) {
        char sp[4096];
        snprintf(sp, sizeof sp, "%s/%s", dir, shards[i]);
        if (add_file(s, sp) != 0) goto out;
    }
    json_object_foreach(wm, key, val) {
        const tern_st_tensor *t = tern_st_find(s, key);
        if (!t) {
            tern_error("%s: tensor \"%.200s\" is listed in %s but not there", path, key, json_string_value(val));
            goto out;
        }
        const char *base = strrchr(t->file, '/');
        if (strcmp(base ? base + 1 : t->file, json_string_value(val)) != 0) {
            tern_error("%s: tensor \"%.200s\" is listed in %s but found in %s", path, key, json_string_value(val), t->file);
            goto out;
        }
    }
    if ((size_t)s->n != json_object_size(wm)) {
        for (int i = 0; i < s->n; i++)
            if (!json_object_get(wm, s->t[i].name)) {
                tern_error("%s: tensor \"%.200s\" of %s is not in the weight_map", path, s->t[i].name, s->t[i].file);
                goto out;
            }
    }
    ok = 1;
out:
    free(shards);
    json_decref(root);
    if (!ok) { tern_st_close(s); return NULL; }
    return s;
}

// ---- conversion ------------------------------------------------------------------------------------

int tern_st_read_f32(const tern_st_tensor *t, float *out) {
    const unsigned char *p = t->data;
    const int64_t n = t->numel;
    switch (t->dtype) {
    case TERN_ST_F32:   // little-endian file, little-endian host (x86-64, AArch64)
        memcpy(out, p, sizeof(float) * (size_t)n);
        return 0;
    case TERN_ST_F16:
        #pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) out[i] = tern_fp16_to_fp32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case TERN_ST_BF16:
        #pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) out[i] = bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    default:
        tern_error("%s: tensor %s has dtype %s, expected F32, F16 or BF16", t->file, t->name, tern_st_dtype_name(t->dtype));
        return -1;
    }
}
