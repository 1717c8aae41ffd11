// checkpoint.c — HDF5 checkpoint save/load (layout and the verified open in checkpoint.h).
#include "formats/checkpoint.h"
#include "model/model.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CKPT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CKPT_ASAN 1
#endif
#endif
#ifdef CKPT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

static const unsigned char HDF5_SIG[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
#define MAX_ATTR_BYTES ((size_t)16 << 20)    // any attribute tern reads or the structure check reads
#define MAX_STR_ATTR   ((size_t)1 << 20)     // run_config and format strings
#define MAX_TOKENIZER  ((size_t)256 << 20)   // /tokenizer bytes
#define SLAB_BYTES     ((size_t)16 << 20)    // structure check: datasets are read in slabs of this

static void quiet_hdf5(void) {
    // No exit handler: a file whose close failed on a full disk stays in HDF5's table, and the
    // library's atexit clean-up crashes closing it again (libhdf5 1.10). tern closes every file it
    // opens, so nothing is lost. Only effective before the library's first use; later calls do
    // nothing.
    static int once;
    if (!once) { once = 1; H5dont_atexit(); }
    // HDF5 prints its whole error stack to stderr by default; we report one line instead.
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t)) {
    if (*id >= 0) fn(*id);
    *id = -1;
}

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

// ---- whole-file hashing ---------------------------------------------------------------------

// hash of bytes [off, end) of fd. 0 or -1 with tern_error.
static int hash_range(int fd, const char *path, uint64_t off, uint64_t end, uint64_t *out) {
    tern_hash64_state s;
    tern_hash64_init(&s, 0);
    size_t cap = (size_t)4 << 20;
    unsigned char *buf = tern_xmalloc(cap);
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, (off_t)off, (off_t)(end - off), POSIX_FADV_SEQUENTIAL);
#endif
    while (off < end) {
        size_t want = end - off < cap ? (size_t)(end - off) : cap;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            tern_error("%s: read failed: %s", path, r < 0 ? strerror(errno) : "file shrank while reading");
            free(buf);
            return -1;
        }
        tern_hash64_update(&s, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    *out = tern_hash64_final(&s);
    return 0;
}

static void make_header(unsigned char *h, uint64_t file_size, uint64_t content_hash) {
    memset(h, 0, TERN_CKPT_HEADER);
    memcpy(h, TERN_CKPT_MAGIC, 8);
    put_u32(h + 8, 1);
    put_u32(h + 12, TERN_CKPT_HEADER);
    memcpy(h + 16, "xxh64", 5);
    put_u64(h + 24, file_size);
    put_u64(h + 32, content_hash);
    put_u64(h + 40, tern_hash64(h, 40, 0));
    snprintf((char *)h + 48, TERN_CKPT_HEADER - 48,
             "\ntern checkpoint: HDF5 after this 512-byte user block; bytes 24..39 hold the file size and the xxh64 "
             "(seed 0) of every byte from 512 to the end; see src/formats/checkpoint.h\n");
}

// Writes the header into an HDF5 file that was created with a 512-byte user block. 0 or -1.
static int write_header(const char *path, const char *what) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) { tern_error("%s: cannot reopen %s: %s", what, path, strerror(errno)); return -1; }
    struct stat st;
    uint64_t h = 0;
    unsigned char sig[8];
    int rc = -1;
    if (fstat(fd, &st) != 0) tern_error("%s: cannot stat: %s", what, strerror(errno));
    else if (st.st_size < TERN_CKPT_HEADER + 8 || pread(fd, sig, 8, TERN_CKPT_HEADER) != 8 || memcmp(sig, HDF5_SIG, 8) != 0)
        tern_error("%s: not an HDF5 file with a %d-byte user block", what, TERN_CKPT_HEADER);
    else if (hash_range(fd, what, TERN_CKPT_HEADER, (uint64_t)st.st_size, &h) == 0) {
        unsigned char hdr[TERN_CKPT_HEADER];
        make_header(hdr, (uint64_t)st.st_size, h);
        if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) tern_error("%s: writing the checksum header failed: %s", what, strerror(errno));
        else rc = 0;
    }
    if (close(fd) != 0 && rc == 0) { tern_error("%s: close failed: %s", what, strerror(errno)); rc = -1; }
    return rc;
}

// ---- attributes -----------------------------------------------------------------------------

static int write_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *val) {
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, mem_type, val) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

static int write_attr_str(hid_t loc, const char *name, const char *s) {
    if (!s) s = "";
    size_t len = strlen(s);
    if (len > 60000) { tern_error("attribute %s too long (%zu bytes)", name, len); return -1; }
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int rc = write_attr(loc, name, t, t, s);
    H5Tclose(t);
    return rc;
}

static const char *class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length";
    case H5T_ENUM: return "enum";
    default: return "non-numeric";
    }
}

// Opens attribute `name` of loc after checking it exists. -1 with "path: missing attribute ...".
static hid_t open_attr(hid_t loc, const char *path, const char *where, const char *name) {
    if (H5Aexists(loc, name) <= 0) { tern_error("%s: missing attribute %s%s", path, where, name); return -1; }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) tern_error("%s: cannot open attribute %s%s", path, where, name);
    return a;
}

// Reads a scalar numeric attribute converted to mem_type, after checking its class (integer or
// float), its size (1..8 bytes) and that it holds one value. 0, or -1 with "path: <what>".
static int read_attr_num(hid_t loc, const char *path, const char *where, const char *name, hid_t mem_type,
                         H5T_class_t want, void *out) {
    hid_t a = open_attr(loc, path, where, name);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (cls != want) {
        tern_error("%s: attribute %s%s is %s, expected %s", path, where, name, class_name(cls), want == H5T_INTEGER ? "integer" : "float");
    } else if (sz < 1 || sz > 8 || (want == H5T_FLOAT && sz != 4 && sz != 8)) {
        tern_error("%s: attribute %s%s has a %zu-byte %s type", path, where, name, sz, class_name(cls));
    } else if (np != 1) {
        tern_error("%s: attribute %s%s is not a single value", path, where, name);
    } else if (H5Aread(a, mem_type, out) < 0) {
        tern_error("%s: cannot read attribute %s%s (value out of range?)", path, where, name);
    } else if (want == H5T_FLOAT && mem_type == H5T_NATIVE_FLOAT && !isfinite(*(float *)out)) {
        tern_error("%s: attribute %s%s is not a finite number", path, where, name);
    } else {
        rc = 0;
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

// Reads a string attribute (fixed or variable length, at most MAX_STR_ATTR bytes) into a malloc'd string.
static char *read_attr_str(hid_t loc, const char *path, const char *where, const char *name) {
    hid_t a = open_attr(loc, path, where, name);
    if (a < 0) return NULL;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    char *out = NULL;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    if (t < 0 || sp < 0 || H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        tern_error("%s: attribute %s%s is not a string", path, where, name);
    } else if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        char *vs = NULL;
        if (H5Aread(a, mt, &vs) >= 0 && vs) {
            size_t n = strnlen(vs, MAX_STR_ATTR + 1);
            if (n > MAX_STR_ATTR) tern_error("%s: attribute %s%s is longer than %zu bytes", path, where, name, MAX_STR_ATTR);
            else {
                out = tern_xmalloc(n + 1);
                memcpy(out, vs, n);
                out[n] = 0;
            }
            H5free_memory(vs);
        } else {
            tern_error("%s: cannot read attribute %s%s", path, where, name);
        }
        H5Tclose(mt);
    } else if (sz == 0 || sz > MAX_STR_ATTR) {
        tern_error("%s: attribute %s%s has a bad string size (%zu bytes)", path, where, name, sz);
    } else {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        out = tern_xcalloc(sz + 2, 1);
        if (H5Aread(a, mt, out) < 0) {
            tern_error("%s: cannot read attribute %s%s", path, where, name);
            free(out);
            out = NULL;
        }
        H5Tclose(mt);
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return out;
}

// ---- model config as root attributes --------------------------------------------------------

static int g_attr_failed;   // set by read_config_attrs when a root attribute cannot be read (see close_ckpt)

// optional: attributes added after format_version 1 was fixed; a file without them has the
// defaults of tern_model_config_defaults (silu, sub-norms on, no rope scaling): every older
// checkpoint is a BitNet model of that shape.
typedef struct { const char *name; size_t off; int is_float, optional; } cfg_field;
#define F(f, fl) {#f, offsetof(tern_model_config, f), fl, 0}
#define O(f, fl) {#f, offsetof(tern_model_config, f), fl, 1}
static const cfg_field CFG_FIELDS[] = {
    F(dim, 0), F(n_layers, 0), F(n_heads, 0), F(n_kv_heads, 0), F(ffn_dim, 0), F(vocab_size, 0),
    F(seq_len, 0), F(norm_eps, 1), F(rope_theta, 1), F(tied_head, 0), F(ternary, 0),
    O(ffn_act, 0), O(sub_norms, 0), O(rope_scaling, 0), O(rope_scaling_factor, 1), O(rope_low_freq_factor, 1),
    O(rope_high_freq_factor, 1), O(rope_original_ctx, 0),
};
#undef F
#undef O
#define NCFG ((int)(sizeof CFG_FIELDS / sizeof CFG_FIELDS[0]))

static int write_config_attrs(hid_t f, const tern_model_config *mc) {
    int32_t ver = TERN_CKPT_VERSION;
    if (write_attr_str(f, "format", TERN_CKPT_FORMAT) != 0) return -1;
    if (write_attr(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &ver) != 0) return -1;
    for (int i = 0; i < NCFG; i++) {
        const char *p = (const char *)mc + CFG_FIELDS[i].off;
        int rc = CFG_FIELDS[i].is_float ? write_attr(f, CFG_FIELDS[i].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p)
                                        : write_attr(f, CFG_FIELDS[i].name, H5T_STD_I32LE, H5T_NATIVE_INT, p);
        if (rc != 0) return -1;
    }
    return 0;
}

// Reads and validates the root attributes; *version receives format_version (may be NULL).
static int read_config_attrs(hid_t f, const char *path, tern_model_config *mc, int *version) {
    char *fmt = read_attr_str(f, path, "", "format");
    if (!fmt) {
        if (H5Aexists(f, "format") <= 0) tern_error("%s: not a tern checkpoint (no 'format' attribute)", path);
        return -1;
    }
    if (strcmp(fmt, TERN_CKPT_FORMAT) != 0) {
        tern_error("%s: not a tern checkpoint (format '%.60s', expected '%s')", path, fmt, TERN_CKPT_FORMAT);
        free(fmt);
        return -1;
    }
    free(fmt);
    int32_t ver;
    if (read_attr_num(f, path, "", "format_version", H5T_NATIVE_INT32, H5T_INTEGER, &ver) != 0) return -1;
    if (ver < 1 || ver > TERN_CKPT_VERSION) {
        tern_error("%s: unsupported format_version %d (this build reads 1 to %d)", path, (int)ver, TERN_CKPT_VERSION);
        return -1;
    }
    if (version) *version = ver;
    memset(mc, 0, sizeof *mc);
    tern_model_config_defaults(mc);   // optional attributes absent from older files keep their defaults
    // the required attributes first, then the optional ones (a damaged file fails on the former
    // before anything looks up a name that may be absent)
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < NCFG; i++) {
            if (CFG_FIELDS[i].optional != pass) continue;
            char *p = (char *)mc + CFG_FIELDS[i].off;
            if (pass && H5Aexists(f, CFG_FIELDS[i].name) <= 0) continue;
            int rc = CFG_FIELDS[i].is_float
                         ? read_attr_num(f, path, "", CFG_FIELDS[i].name, H5T_NATIVE_FLOAT, H5T_FLOAT, p)
                         : read_attr_num(f, path, "", CFG_FIELDS[i].name, H5T_NATIVE_INT, H5T_INTEGER, p);
            if (rc != 0) { g_attr_failed = 1; return -1; }
        }
    if (tern_model_config_validate(mc) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tern_last_error());
        tern_error("%s: bad model config: %s", path, msg);
        return -1;
    }
    return 0;
}

// ---- datasets -------------------------------------------------------------------------------

static int write_f32(hid_t loc, const char *name, const tern_tensor *t, const float *data) {
    hsize_t dims[TERN_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
    hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
    if (sp < 0) return -1;
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0) ? 0 : -1;
    if (d >= 0 && H5Dclose(d) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

static void shape_str(int nd, const hsize_t *dims, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < nd && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? "x" : "", (unsigned long long)dims[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

// 1 if loc has a hard link `name` (to anything), 0 if it has no such link, -1 (error set) if the
// link is soft or external: tern never writes those, and following one would read another file.
static int hard_link(hid_t loc, const char *path, const char *prefix, const char *name) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return 0;
    H5L_info_t li;
    if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0) { tern_error("%s: cannot read the link %s%s", path, prefix, name); return -1; }
    if (li.type != H5L_TYPE_HARD) { tern_error("%s: %s%s is a soft or external link (not written by tern)", path, prefix, name); return -1; }
    return 1;
}

// Checks the storage of dataset d (elements of elem bytes, n of them): contiguous or compact
// layout (no filters to run) holding exactly n * elem bytes. 0 or -1 with tern_error.
static int check_storage(hid_t d, const char *path, const char *prefix, const char *name, hsize_t n, size_t elem) {
    hid_t pl = H5Dget_create_plist(d);
    H5D_layout_t lay = pl >= 0 ? H5Pget_layout(pl) : H5D_LAYOUT_ERROR;
    if (pl >= 0) H5Pclose(pl);
    if (lay != H5D_CONTIGUOUS && lay != H5D_COMPACT) {
        tern_error("%s: dataset %s%s is %s (tern reads contiguous datasets; rewrite it without chunks or compression)", path,
                   prefix, name, lay == H5D_CHUNKED ? "chunked" : lay == H5D_VIRTUAL ? "virtual" : "of an unknown layout");
        return -1;
    }
    hsize_t st = H5Dget_storage_size(d);
    if (st != n * elem) {
        tern_error("%s: dataset %s%s stores %llu bytes, expected %llu (truncated or corrupt?)", path, prefix, name,
                   (unsigned long long)st, (unsigned long long)(n * elem));
        return -1;
    }
    return 0;
}

// Reads all of dataset d (n elements of mem_type, elem bytes each) into out, or, when out is NULL
// (the structure check), in slabs along its first dimension into a scratch buffer; check(buf,
// count, ctx) runs on every piece (may be NULL). 0 or -1 (error set by caller's message).
typedef int (*piece_fn)(const void *buf, size_t count, size_t first, void *ctx);
static int read_data(hid_t d, hid_t sp, int nd, const hsize_t *dims, hsize_t n, hid_t mem_type, size_t elem, void *out,
                     piece_fn check, void *ctx) {
    if (out) {
        if (n && H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) return -1;
        return check && n ? check(out, (size_t)n, 0, ctx) : 0;
    }
    if (n == 0) return 0;
    hsize_t row = 1;
    for (int i = 1; i < nd; i++) row *= dims[i];
    hsize_t rows = nd > 0 ? dims[0] : 1, per = SLAB_BYTES / elem / (row ? row : 1);
    if (per < 1) per = 1;
    if (nd == 0 || per >= rows) {   // in one piece
        void *buf = tern_xmalloc((size_t)n * elem);
        int rc = H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : check ? check(buf, (size_t)n, 0, ctx) : 0;
        free(buf);
        return rc;
    }
    void *buf = tern_xmalloc((size_t)(per * row) * elem);
    int rc = 0;
    for (hsize_t r0 = 0; r0 < rows && rc == 0; r0 += per) {
        hsize_t k = rows - r0 < per ? rows - r0 : per;
        hsize_t start[32] = {0}, count[32];
        count[0] = k;
        for (int i = 1; i < nd; i++) count[i] = dims[i];
        start[0] = r0;
        hsize_t mn = k * row;
        hid_t ms = H5Screate_simple(1, &mn, NULL);
        if (ms < 0 || H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, mem_type, ms, sp, H5P_DEFAULT, buf) < 0)
            rc = -1;
        else if (check)
            rc = check(buf, (size_t)mn, (size_t)(r0 * row), ctx);
        if (ms >= 0) H5Sclose(ms);
    }
    free(buf);
    return rc;
}

typedef struct { const char *path, *prefix, *name; int nonneg, bad_value; } finite_ctx;
static int check_finite(const void *buf, size_t count, size_t first, void *ctx) {
    const float *x = buf;
    const finite_ctx *c = ctx;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i]) || (c->nonneg && x[i] < 0)) {
            tern_error("%s: dataset %s%s holds %s (element %zu: %g); the checkpoint is unusable", c->path, c->prefix, c->name,
                       isfinite(x[i]) ? "a negative second moment" : "NaN or Inf", first + i, (double)x[i]);
            ((finite_ctx *)ctx)->bad_value = 1;
            return -1;
        }
    return 0;
}

// Reads dataset <prefix><t->name> into out (t->n floats; NULL: read and check it without keeping
// it) after checking its link, type (IEEE float32), shape, layout and storage; its values must be
// finite (nonneg: and >= 0).
static int read_f32(hid_t loc, const char *path, const char *prefix, const tern_tensor *t, float *out, int nonneg) {
    int hl = hard_link(loc, path, prefix, t->name);
    if (hl <= 0) {
        if (hl == 0) tern_error("%s: missing dataset %s%s", path, prefix, t->name);
        return -1;
    }
    hid_t d = H5Dopen2(loc, t->name, H5P_DEFAULT);
    if (d < 0) { tern_error("%s: %s%s is not a dataset", path, prefix, t->name); return -1; }
    hid_t ty = H5Dget_type(d), sp = H5Dget_space(d);
    int rc = -1;
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[32];
    int same = nd == t->ndim;
    if (nd >= 0 && nd <= 32) H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; same && i < nd; i++) same = dims[i] == (hsize_t)t->shape[i];
    H5T_class_t cls = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
    size_t sz = ty >= 0 ? H5Tget_size(ty) : 0;
    if (ty < 0 || sp < 0) {
        tern_error("%s: cannot read the type or shape of dataset %s%s", path, prefix, t->name);
    } else if (cls != H5T_FLOAT || sz != 4 || (H5Tequal(ty, H5T_IEEE_F32LE) <= 0 && H5Tequal(ty, H5T_IEEE_F32BE) <= 0)) {
        tern_error("%s: dataset %s%s is a %zu-byte %s type, expected IEEE float32", path, prefix, t->name, sz, class_name(cls));
    } else if (!same) {
        char got[160], want[160];
        hsize_t w[TERN_MAX_DIMS];
        for (int i = 0; i < t->ndim; i++) w[i] = (hsize_t)t->shape[i];
        if (nd >= 0 && nd <= 32) shape_str(nd, dims, got, sizeof got);
        else snprintf(got, sizeof got, "(unreadable)");
        shape_str(t->ndim, w, want, sizeof want);
        tern_error("%s: dataset %s%s has shape %s, expected %s", path, prefix, t->name, got, want);
    } else if (check_storage(d, path, prefix, t->name, (hsize_t)t->n, 4) == 0) {
        finite_ctx fc = {path, prefix, t->name, nonneg, 0};
        if (read_data(d, sp, nd, dims, (hsize_t)t->n, H5T_NATIVE_FLOAT, 4, out, check_finite, &fc) == 0) rc = 0;
        else if (!fc.bad_value)
            tern_error("%s: cannot read dataset %s%s (file truncated or corrupt?)", path, prefix, t->name);
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

// /tokenizer: 1 and *buf (malloc'd; NULL = read and check only) if present, 0 if absent, -1 on error.
static int read_tokenizer_ds(hid_t f, const char *path, void **buf, size_t *n) {
    int hl = hard_link(f, path, "/", "tokenizer");
    if (hl <= 0) return hl;
    int rc = -1;
    hid_t d = H5Dopen2(f, "tokenizer", H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1, ty = d >= 0 ? H5Dget_type(d) : -1;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (d < 0 || sp < 0 || ty < 0) {
        tern_error("%s: /tokenizer is not a dataset", path);
    } else if (H5Sget_simple_extent_ndims(sp) != 1 || H5Tget_class(ty) != H5T_INTEGER || H5Tget_size(ty) != 1) {
        tern_error("%s: /tokenizer must be a 1-D uint8 dataset", path);
    } else if (np < 1 || (size_t)np > MAX_TOKENIZER) {
        tern_error("%s: /tokenizer has a bad size (%lld bytes)", path, (long long)np);
    } else if (check_storage(d, path, "/", "tokenizer", (hsize_t)np, 1) == 0) {
        hsize_t dim = (hsize_t)np;
        void *b = buf ? tern_xmalloc((size_t)np) : NULL;
        if (read_data(d, sp, 1, &dim, dim, H5T_NATIVE_UINT8, 1, b, NULL, NULL) < 0) {
            tern_error("%s: cannot read /tokenizer", path);
            free(b);
        } else {
            if (buf) *buf = b;
            if (n) *n = (size_t)np;
            rc = 1;
        }
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return rc;
}

// ---- /train_state attributes -------------------------------------------------------------------

// Reads the /train_state attributes of group g into s (run_config malloc'd). 0 or -1.
static int read_state_attrs(hid_t g, const char *path, int version, tern_train_state *s) {
    memset(s, 0, sizeof *s);
    int64_t i64[4];
    const char *n64[4] = {"step", "tokens_seen", "loader_pos", "loader_epoch"};
    for (int i = 0; i < 4; i++) {
        if (read_attr_num(g, path, "/train_state:", n64[i], H5T_NATIVE_INT64, H5T_INTEGER, &i64[i]) != 0) return -1;
        if (i64[i] < 0) { tern_error("%s: /train_state:%s is negative (%lld)", path, n64[i], (long long)i64[i]); return -1; }
    }
    if (read_attr_num(g, path, "/train_state:", "rng_state", H5T_NATIVE_UINT64, H5T_INTEGER, &s->rng_state) != 0 ||
        read_attr_num(g, path, "/train_state:", "loader_seed", H5T_NATIVE_UINT64, H5T_INTEGER, &s->loader_seed) != 0)
        return -1;
    if (s->rng_state == 0) { tern_error("%s: /train_state:rng_state is 0 (not a valid RNG state)", path); return -1; }
    s->step = i64[0];
    s->tokens_seen = i64[1];
    s->loader_pos = i64[2];
    s->loader_epoch = i64[3];
    s->train_tokens = s->val_tokens = -1;
    if (version >= 2) {
        int64_t tt, vt;
        if (read_attr_num(g, path, "/train_state:", "train_tokens", H5T_NATIVE_INT64, H5T_INTEGER, &tt) != 0 ||
            read_attr_num(g, path, "/train_state:", "val_tokens", H5T_NATIVE_INT64, H5T_INTEGER, &vt) != 0 ||
            read_attr_num(g, path, "/train_state:", "train_tok_hash", H5T_NATIVE_UINT64, H5T_INTEGER, &s->train_tok_hash) != 0 ||
            read_attr_num(g, path, "/train_state:", "val_tok_hash", H5T_NATIVE_UINT64, H5T_INTEGER, &s->val_tok_hash) != 0)
            return -1;
        if (tt < -1 || vt < -1) { tern_error("%s: /train_state: bad token counts (%lld, %lld)", path, (long long)tt, (long long)vt); return -1; }
        s->train_tokens = tt;
        s->val_tokens = vt;
    }
    s->run_config = read_attr_str(g, path, "/train_state:", "run_config");
    return s->run_config ? 0 : -1;
}

// ---- verified open ----------------------------------------------------------------------------

// Remembered verified files: (device, inode, size, content hash) -> has a checksum header.
typedef struct { dev_t dev; ino_t ino; off_t size; uint64_t hash; int sealed, noted; } verified_t;
static verified_t g_verified[16];
static int g_n_verified;
// A file without a checksum whose root attributes could not be read is damaged in a way the
// structure check did not catch: it is not opened again in this process (HDF5's state after such
// a file is not to be trusted with a second open; tests/fixtures/repro/h5_resume_sanitizer_00800.h5)
static char g_failed_msg[16][320];

static int verified_lookup(const struct stat *st, uint64_t hash) {
    for (int i = 0; i < g_n_verified; i++)
        if (g_verified[i].dev == st->st_dev && g_verified[i].ino == st->st_ino && g_verified[i].size == st->st_size &&
            g_verified[i].hash == hash)
            return i;
    return -1;
}

static int verified_add(const struct stat *st, uint64_t hash, int sealed) {
    int k = g_n_verified < 16 ? g_n_verified++ : (int)(hash % 16);
    g_verified[k] = (verified_t){st->st_dev, st->st_ino, st->st_size, hash, sealed, sealed};
    g_failed_msg[k][0] = 0;
    return k;
}

// Says once per file (path), after the first read of it succeeded, that a file has no checksum.
static tern_strset g_noted;
static void note_unsealed(int entry, const char *path) {
    if (entry < 0 || entry >= g_n_verified || g_verified[entry].noted) return;
    g_verified[entry].noted = 1;
    if (tern_strset_has(&g_noted, path)) return;
    char *copy = strdup(path);
    if (!copy) return;
    tern_strset_add(&g_noted, copy);   // kept for the life of the process
    fprintf(stderr, "note: %s has no checksum (format_version 1, or written by another tool); its structure was checked "
                    "in a separate process\n", path);
}

static int walk_file(hid_t f, const char *path, char *why, size_t why_n);
static void dry_run_loader(hid_t f, const char *path);
typedef struct { const char *fdpath, *path; } structure_ctx;
static int structure_fn(void *ctx, char *why, size_t why_n);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t vm_size_now(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

// Runs fn(ctx, why, why_n) in a forked child (stderr and stdout to /dev/null, address space
// limited to what it has now + 1 GiB, no core dump, CPU and wall-clock timeouts); fn's return value
// is the child's exit status (0: fine; 3: damaged, why says how). 0 if the child exits 0; -1 with
// "path: damaged HDF5 structure (...)" otherwise; -2 when it could not run or was interrupted (not
// the file's fault). `what` names the work in the messages; extra_vm: address space the work
// allocates beyond the 1 GiB.
typedef int (*child_fn)(void *ctx, char *why, size_t why_n);
static int in_child(const char *path, off_t size, const char *what, size_t extra_vm, child_fn fn, void *ctx) {
    int pfd[2];
    if (pipe(pfd) != 0) { tern_error("%s: cannot check: pipe failed: %s", path, strerror(errno)); return -2; }
    double timeout = 30.0 + (double)size / 25e6;   // 25 MB/s covers a slow disk
    size_t vm = vm_size_now();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        tern_error("%s: %s: fork failed: %s", path, what, strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return -2;
    }
    if (pid == 0) {   // child: never returns
        // the same free descriptors as the parent will have when it reads (both pipe ends closed):
        // the file's descriptor number ends up in a path libhdf5 copies, so a different number
        // can change the heap a rehearsal runs on
        close(pfd[0]);
        const int wfd = fcntl(pfd[1], F_DUPFD_CLOEXEC, 512);
        if (wfd >= 0) { close(pfd[1]); pfd[1] = wfd; }
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0) { dup2(dn, 1); dup2(dn, 2); if (dn > 2) close(dn); }
        int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGALRM, SIGXCPU, SIGINT, SIGTERM};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
#ifdef CKPT_ASAN
        __sanitizer_set_death_callback(NULL);   // a fuzzer's crash hook is for the parent, not this check
#endif
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_CORE, &rl);
        if (vm) { rl.rlim_cur = rl.rlim_max = vm + ((size_t)1 << 30) + extra_vm; setrlimit(RLIMIT_AS, &rl); }
        rl.rlim_cur = rl.rlim_max = (rlim_t)timeout + 1;
        setrlimit(RLIMIT_CPU, &rl);
        alarm((unsigned)timeout + 2);
        quiet_hdf5();
        char why[256] = "the HDF5 library failed reading it";
        int rc = fn(ctx, why, sizeof why);
        if (rc) { ssize_t w = write(pfd[1], why, strlen(why)); (void)w; }
        _exit(rc);
    }
    close(pfd[1]);
    int status = 0, done = 0;
    double t0 = now_s();
    long sleep_ns = 200000;
    while (!done) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) { done = 1; break; }
        if (r < 0 && errno != EINTR) break;
        if (now_s() - t0 > timeout + 5) break;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 20000000) sleep_ns *= 2;
    }
    if (!done) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    }
    char why[257] = {0};
    ssize_t got = read(pfd[0], why, sizeof why - 1);
    close(pfd[0]);
    if (got > 0) why[got] = 0;
    if (!done) {
        tern_error("%s: damaged HDF5 structure (%s took more than %.0f s)", path, what, timeout);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {   // Ctrl-C reached the child too: not the file's fault
        tern_error("%s: %s was interrupted (signal %d)", path, what, sig);
        return -2;
    }
    if (sig)
        tern_error("%s: damaged HDF5 structure (the HDF5 library %s reading it)", path,
                   sig == SIGXCPU || sig == SIGALRM ? "did not finish" : "crashed");
    else if (WEXITSTATUS(status) == 3 && got > 0)
        tern_error("%s: damaged HDF5 structure (%s)", path, why);
    else
        tern_error("%s: damaged HDF5 structure (the HDF5 library failed reading it)", path);
    return -1;
}

// The structure check of a file without a checksum (in a child, in_child): open `fdpath`, read
// every link, object, attribute and dataset, then run the loader's own reads.
static int structure_fn(void *ctx, char *why, size_t why_n) {
    const structure_ctx *w = ctx;
    snprintf(why, why_n, "the HDF5 library cannot open it");
    hid_t f = H5Fopen(w->fdpath, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 3;
    int rc = walk_file(f, w->path, why, why_n) == 0 ? 0 : 3;
    if (rc == 0) dry_run_loader(f, w->path);
    H5Fclose(f);
    return rc;
}
static int check_structure_child(const char *fdpath, const char *path, off_t size) {
    structure_ctx w = {fdpath, path};
    return in_child(path, size, "checking its structure", 0, structure_fn, &w) != 0 ? -1 : 0;
}

// Verifies path as described in checkpoint.h. On success returns 1 (checksum) or 0 (no checksum,
// structure checked) and, when fd_out != NULL, an open fd of the verified file (the caller opens
// /proc/self/fd/N, so that HDF5 reads the very file that was checked); *entry: its slot in the
// table of verified files. -1 with tern_error.
static int verify_file(const char *path, int *fd_out, int *entry) {
    size_t size;
    int fd = tern_open_regular(path, &size);
    if (fd < 0) {
        const char *e = tern_last_error();
        if (strstr(e, "is a directory")) tern_error("%s: is a directory, not a checkpoint", path);
        return -1;
    }
    struct stat st;
    unsigned char head[TERN_CKPT_HEADER];
    memset(head, 0, sizeof head);
    ssize_t got = size >= TERN_CKPT_HEADER + 8 ? pread(fd, head, sizeof head, 0) : size >= 8 ? pread(fd, head, 8, 0) : 0;
    unsigned char sig2[8] = {0};
    if (size >= TERN_CKPT_HEADER + 8 && pread(fd, sig2, 8, TERN_CKPT_HEADER) != 8) memset(sig2, 0, 8);
    if (fstat(fd, &st) != 0 || got < 0) { tern_error("%s: cannot read: %s", path, strerror(errno)); close(fd); return -1; }
    int sealed = -1;
    uint64_t hash = 0;
    int has_magic = got >= 8 && memcmp(head, TERN_CKPT_MAGIC, 8) == 0;
    if (!has_magic && got >= 8 && memcmp(head, HDF5_SIG, 8) == 0) {
        sealed = 0;   // superblock at 0: no user block, no checksum (format_version 1 or another writer)
        if (hash_range(fd, path, 0, (uint64_t)size, &hash) != 0) { close(fd); return -1; }
    } else if (has_magic || memcmp(sig2, HDF5_SIG, 8) == 0) {
        sealed = 1;
        if (!has_magic || size < TERN_CKPT_HEADER || get_u64(head + 40) != tern_hash64(head, 40, 0)) {
            tern_error("%s: damaged checksum header (or an HDF5 user block not written by tern)", path);
            close(fd);
            return -1;
        }
        if (get_u32(head + 8) != 1 || get_u32(head + 12) != TERN_CKPT_HEADER || memcmp(head + 16, "xxh64\0\0\0", 8) != 0) {
            tern_error("%s: unsupported checksum header (version %u, algorithm '%.8s'); this build reads version 1, xxh64", path,
                       get_u32(head + 8), (const char *)head + 16);
            close(fd);
            return -1;
        }
        if (get_u64(head + 24) != (uint64_t)size) {
            tern_error("%s: checksum mismatch: file is damaged (%zu bytes, the header says %llu: truncated?)", path, size,
                       (unsigned long long)get_u64(head + 24));
            close(fd);
            return -1;
        }
        if (hash_range(fd, path, TERN_CKPT_HEADER, (uint64_t)size, &hash) != 0) { close(fd); return -1; }
        if (hash != get_u64(head + 32)) {
            tern_error("%s: checksum mismatch: file is damaged (changed on purpose? `tern-ckpt_info --reseal FILE` checks "
                       "its structure and writes a new checksum)", path);
            close(fd);
            return -1;
        }
        if (memcmp(sig2, HDF5_SIG, 8) != 0) {   // a valid checksum over something that is not HDF5
            tern_error("%s: not an HDF5 file after its checksum header", path);
            close(fd);
            return -1;
        }
    } else {
        tern_error("%s: not an HDF5 file (bad signature or truncated)", path);
        close(fd);
        return -1;
    }
    int k = verified_lookup(&st, hash);
    if (k >= 0 && g_failed_msg[k][0]) {
        tern_error("%s", g_failed_msg[k]);
        close(fd);
        return -1;
    }
    if (k < 0) {
        if (!sealed) {
            char fdpath[64];
            snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
            if (access(fdpath, R_OK) != 0) snprintf(fdpath, sizeof fdpath, "%.63s", path);
            if (check_structure_child(fdpath, path, (off_t)size) != 0) { close(fd); return -1; }
        }
        k = verified_add(&st, hash, sealed);
    }
    if (entry) *entry = k;
    if (fd_out) *fd_out = fd;
    else close(fd);
    return sealed;
}

int tern_checkpoint_verify(const char *path) {
    quiet_hdf5();
    int k = -1, rc = verify_file(path, NULL, &k);
    if (rc == 0) note_unsealed(k, path);
    return rc;
}

typedef struct { hid_t f; int fd, entry; const char *path; } ckpt_file;

static int open_ckpt(const char *path, ckpt_file *cf) {
    quiet_hdf5();
    cf->f = -1;
    cf->fd = -1;
    cf->entry = -1;
    cf->path = path;
    if (verify_file(path, &cf->fd, &cf->entry) < 0) return -1;
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", cf->fd);
    cf->f = H5Fopen(access(fdpath, R_OK) == 0 ? fdpath : path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (cf->f < 0) {
        tern_error("%s: cannot open HDF5 file (corrupt or truncated?)", path);
        close(cf->fd);
        cf->fd = -1;
        return -1;
    }
    return 0;
}

// closes; ok: the read succeeded (then a file without a checksum is noted, once)
static void close_ckpt(ckpt_file *cf, int ok) {
    if (ok) note_unsealed(cf->entry, cf->path);
    else if (g_attr_failed && cf->entry >= 0 && !g_verified[cf->entry].sealed)
        snprintf(g_failed_msg[cf->entry], sizeof g_failed_msg[0], "%s", tern_last_error());
    g_attr_failed = 0;
    if (cf->f >= 0) H5Fclose(cf->f);
    if (cf->fd >= 0) close(cf->fd);
    cf->f = -1;
    cf->fd = -1;
}

// ---- the structure check (runs in the child) ----------------------------------------------------

#define WALK_MAX_ITEMS 1000000
typedef struct { const char *path; char *why; size_t why_n; long items; int bad; } walk_ctx;

static herr_t walk_fail(walk_ctx *c, const char *fmt, const char *a, const char *b) {
    if (!c->bad) snprintf(c->why, c->why_n, fmt, a, b);
    c->bad = 1;
    return -1;
}

// reads attribute `name` of loc completely when it is a number or string (other classes: type and size only)
static herr_t walk_attr(hid_t loc, const char *name, const H5A_info_t *ai, void *op) {
    (void)ai;
    walk_ctx *c = op;
    if (++c->items > WALK_MAX_ITEMS) return walk_fail(c, "more than a million objects and attributes%s%s", "", "");
    if (H5Aexists(loc, name) <= 0) return walk_fail(c, "attribute %s%s cannot be found by name", name, "");
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return walk_fail(c, "cannot open attribute %s%s", name, "");
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    herr_t rc = 0;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0, total;
    if (t < 0 || sp < 0 || np < 0 || cls == H5T_NO_CLASS || sz == 0) rc = walk_fail(c, "cannot read the type of attribute %s%s", name, "");
    else if (tern_mul_size((size_t)np, sz, &total) != 0 || total > MAX_ATTR_BYTES)
        rc = walk_fail(c, "attribute %s%s is impossibly large", name, "");
    else if (H5Aget_storage_size(a) > MAX_ATTR_BYTES) rc = walk_fail(c, "attribute %s%s claims too much storage", name, "");
    else if (cls == H5T_STRING && H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(t);
        char **v = tern_xcalloc((size_t)(np ? np : 1), sizeof(char *));
        if (mt < 0 || H5Aread(a, mt, v) < 0) rc = walk_fail(c, "cannot read attribute %s%s", name, "");
        else H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
        if (mt >= 0) H5Tclose(mt);
        free(v);
    } else if (cls == H5T_INTEGER || cls == H5T_FLOAT || cls == H5T_STRING) {
        void *buf = tern_xcalloc(total ? total : 1, 1);
        if (np && H5Aread(a, t, buf) < 0) rc = walk_fail(c, "cannot read attribute %s%s", name, "");
        free(buf);
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

static herr_t walk_link(hid_t g, const char *name, const H5L_info_t *li, void *op) {
    walk_ctx *c = op;
    if (++c->items > WALK_MAX_ITEMS) return walk_fail(c, "more than a million objects and attributes%s%s", "", "");
    if (li->type != H5L_TYPE_HARD) return walk_fail(c, "%s%s is a soft or external link (not written by tern)", name, "");
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) return walk_fail(c, "cannot open object %s%s", name, "");
    H5O_info_t oi;
    herr_t rc = 0;
    if (H5Oget_info2(o, &oi, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS) < 0) rc = walk_fail(c, "cannot read object header of %s%s", name, "");
    else if (H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, walk_attr, c) < 0)
        rc = walk_fail(c, "cannot list the attributes of %s%s", name, "");
    else if (oi.type == H5O_TYPE_DATASET) {
        hid_t ty = H5Dget_type(o), sp = H5Dget_space(o);
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        hsize_t dims[32];
        hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        hid_t pl = H5Dget_create_plist(o);
        H5D_layout_t lay = pl >= 0 ? H5Pget_layout(pl) : H5D_LAYOUT_ERROR;
        if (pl >= 0) H5Pclose(pl);
        size_t sz = ty >= 0 ? H5Tget_size(ty) : 0;
        if (ty < 0 || sp < 0 || nd < 0 || nd > 32 || np < 0 || sz == 0 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
            lay == H5D_LAYOUT_ERROR)
            rc = walk_fail(c, "cannot read the type, shape or layout of dataset %s%s", name, "");
        else if ((lay == H5D_CONTIGUOUS || lay == H5D_COMPACT) && H5Dget_storage_size(o) == (hsize_t)np * sz && np > 0) {
            // the types tern reads: IEEE float32 (parameters, m, v) and bytes (tokenizer)
            int f32 = H5Tget_class(ty) == H5T_FLOAT && sz == 4 &&
                      (H5Tequal(ty, H5T_IEEE_F32LE) > 0 || H5Tequal(ty, H5T_IEEE_F32BE) > 0);
            int u8 = H5Tget_class(ty) == H5T_INTEGER && sz == 1;
            if ((f32 || u8) &&
                read_data(o, sp, nd, dims, (hsize_t)np, f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, sz, NULL, NULL, NULL) != 0)
                rc = walk_fail(c, "cannot read dataset %s%s", name, "");
        }
        if (ty >= 0) H5Tclose(ty);
        if (sp >= 0) H5Sclose(sp);
    }
    H5Oclose(o);
    return rc;
}

static int walk_file(hid_t f, const char *path, char *why, size_t why_n) {
    walk_ctx c = {path, why, why_n, 0, 0};
    if (H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, walk_attr, &c) < 0) {
        if (!c.bad) snprintf(why, why_n, "cannot list the root attributes");
        return -1;
    }
    if (H5Lvisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, walk_link, &c) < 0) {
        if (!c.bad) snprintf(why, why_n, "cannot list the objects");
        return -1;
    }
    return 0;
}

typedef struct { const tern_params *p; const char *path; int bad; } iter_ctx;

static herr_t check_root_name(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)g;
    (void)info;
    iter_ctx *c = op;
    if (strcmp(name, "tokenizer") == 0 || strcmp(name, "train_state") == 0) return 0;
    if (tern_params_find(c->p, name)) return 0;
    tern_error("%s: unexpected dataset /%.200s (not a parameter of this model)", c->path, name);
    c->bad = 1;
    return 1;   // stop
}

// The loader's own reads, in the order and with the calls it makes, keeping no data: if the
// HDF5 library is going to crash on them, it crashes here, in the child.
static void dry_run_loader(hid_t f, const char *path) {
    tern_model_config mc;
    int version;
    if (read_config_attrs(f, path, &mc, &version) != 0) return;
    tern_model m;
    tern_model_declare(&m, &mc);
    iter_ctx ic = {&m.params, path, 0};
    H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, check_root_name, &ic);
    for (int i = 0; i < m.params.n; i++) read_f32(f, path, "/", m.params.t[i], NULL, 0);
    read_tokenizer_ds(f, path, NULL, NULL);
    if (hard_link(f, path, "/", "train_state") == 1) {
        hid_t g = H5Gopen2(f, "train_state", H5P_DEFAULT);
        if (g >= 0) {
            tern_train_state s;
            if (read_state_attrs(g, path, version, &s) == 0) free(s.run_config);
            const char *grp[2] = {"m", "v"};
            for (int k = 0; k < 2; k++) {
                if (hard_link(g, path, "/train_state/", grp[k]) != 1) continue;
                hid_t gm = H5Gopen2(g, grp[k], H5P_DEFAULT);
                if (gm < 0) continue;
                for (int i = 0; i < m.params.n; i++) read_f32(gm, path, k ? "/train_state/v/" : "/train_state/m/", m.params.t[i], NULL, k);
                H5Gclose(gm);
            }
            H5Gclose(g);
        }
    }
    tern_model_free(&m);
}

int tern_checkpoint_seal(const char *path) {
    quiet_hdf5();
    size_t size;
    int fd = tern_open_regular(path, &size);
    if (fd < 0) return -1;
    unsigned char sig[8] = {0};
    if (size < TERN_CKPT_HEADER + 8 || pread(fd, sig, 8, TERN_CKPT_HEADER) != 8 || memcmp(sig, HDF5_SIG, 8) != 0) {
        tern_error("%s: not an HDF5 file with a %d-byte user block (only files written by tern since format_version 2 can be "
                   "sealed)", path, TERN_CKPT_HEADER);
        close(fd);
        return -1;
    }
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
    if (access(fdpath, R_OK) != 0) snprintf(fdpath, sizeof fdpath, "%.63s", path);
    int rc = check_structure_child(fdpath, path, (off_t)size);
    close(fd);
    if (rc != 0) return -1;
    if (write_header(path, path) != 0) return -1;
    int sfd = open(path, O_RDONLY | O_CLOEXEC);
    if (sfd >= 0) { fsync(sfd); close(sfd); }
    return 0;
}

// ---- save -----------------------------------------------------------------------------------

int tern_checkpoint_save(const char *path, const tern_model_config *mc, const tern_params *p,
                         const void *tok, size_t tok_n, const tern_train_state *st) {
    quiet_hdf5();
    if (!p->allocated) { tern_error("%s: parameters are not allocated", path); return -1; }
    if (tern_check_output_path(path) != 0) return -1;
    for (int i = 0; i < p->n; i++)
        if (strchr(p->t[i]->name, '/') || strcmp(p->t[i]->name, "tokenizer") == 0 ||
            strcmp(p->t[i]->name, "train_state") == 0) {
            tern_error("%s: parameter name '%s' cannot be stored", path, p->t[i]->name);
            return -1;
        }
    char tmp[4096];
    tern_tmp_path(path, tmp, sizeof tmp);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 || H5Pset_userblock(fcpl, TERN_CKPT_HEADER) < 0) {
        if (fcpl >= 0) H5Pclose(fcpl);
        tern_error("%s: cannot set up the HDF5 file", path);
        return -1;
    }
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (f < 0) {
        tern_error("%s: cannot create temporary file %s (directory missing or not writable?)", path, tmp);
        return -1;
    }
    hid_t g = -1, gm = -1, gv = -1;
    const char *what = "attributes";
    if (write_config_attrs(f, mc) != 0) goto fail;
    for (int i = 0; i < p->n; i++) {
        what = p->t[i]->name;
        if (write_f32(f, p->t[i]->name, p->t[i], p->data + p->t[i]->offset) != 0) goto fail;
    }
    if (tok && tok_n > 0) {
        what = "tokenizer";
        hsize_t n = tok_n;
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t d = H5Dcreate2(f, "tokenizer", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        int rc = (d >= 0 && H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, tok) >= 0) ? 0 : -1;
        if (d >= 0) H5Dclose(d);
        if (sp >= 0) H5Sclose(sp);
        if (rc != 0) goto fail;
    }
    if (st) {
        what = "train_state";
        g = H5Gcreate2(f, "train_state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) goto fail;
        int64_t i64[6] = {st->step, st->tokens_seen, st->loader_pos, st->loader_epoch, st->train_tokens, st->val_tokens};
        const char *n64[6] = {"step", "tokens_seen", "loader_pos", "loader_epoch", "train_tokens", "val_tokens"};
        for (int i = 0; i < 6; i++)
            if (write_attr(g, n64[i], H5T_STD_I64LE, H5T_NATIVE_INT64, &i64[i]) != 0) goto fail;
        if (write_attr(g, "rng_state", H5T_STD_U64LE, H5T_NATIVE_UINT64, &st->rng_state) != 0) goto fail;
        if (write_attr(g, "loader_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &st->loader_seed) != 0) goto fail;
        if (write_attr(g, "train_tok_hash", H5T_STD_U64LE, H5T_NATIVE_UINT64, &st->train_tok_hash) != 0) goto fail;
        if (write_attr(g, "val_tok_hash", H5T_STD_U64LE, H5T_NATIVE_UINT64, &st->val_tok_hash) != 0) goto fail;
        if (write_attr_str(g, "run_config", st->run_config) != 0) goto fail;
        gm = H5Gcreate2(g, "m", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        gv = H5Gcreate2(g, "v", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (gm < 0 || gv < 0) goto fail;
        for (int i = 0; i < p->n; i++) {
            what = p->t[i]->name;
            if (write_f32(gm, p->t[i]->name, p->t[i], p->m + p->t[i]->offset) != 0) goto fail;
            if (write_f32(gv, p->t[i]->name, p->t[i], p->v + p->t[i]->offset) != 0) goto fail;
        }
        close_id(&gm, H5Gclose);
        close_id(&gv, H5Gclose);
        close_id(&g, H5Gclose);
    }
    what = "file";
    if (H5Fclose(f) < 0) { f = -1; goto fail; }
    if (write_header(tmp, path) != 0) { tern_discard_file(tmp); return -1; }
    return tern_commit_file(tmp, path);

fail:
    if (!strstr(tern_last_error(), "too long"))
        tern_error("%s: writing %s failed (disk full or not writable?)", path, what);
    close_id(&gm, H5Gclose);
    close_id(&gv, H5Gclose);
    close_id(&g, H5Gclose);
    close_id(&f, H5Fclose);
    tern_discard_file(tmp);
    return -1;
}

static int mkdir_p(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    size_t n = strlen(buf);
    if (n == 0) return 0;
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                tern_error("%s: cannot create directory: %s", buf, strerror(errno));
                return -1;
            }
            buf[i] = c;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) { tern_error("%s: not a directory", dir); return -1; }
    return 0;
}

static int parse_ckpt_name(const char *name, long *step) {
    // exactly "ckpt_" + 8 to 18 digits + ".h5"
    size_t n = strlen(name);
    if (n < 5 + 8 + 3 || n > 5 + 18 + 3 || strncmp(name, "ckpt_", 5) != 0 || strcmp(name + n - 3, ".h5") != 0) return 0;
    long s = 0;
    for (size_t i = 5; i < n - 3; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        s = s * 10 + (name[i] - '0');
    }
    *step = s;
    return 1;
}

static int cmp_long_desc(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int tern_checkpoint_save_step(const char *out_dir, long step, int keep, const tern_model_config *mc,
                              const tern_params *p, const void *tok, size_t tok_n,
                              const tern_train_state *st, char *path_out, size_t path_out_n) {
    if (step < 0) { tern_error("%s: negative step %ld", out_dir, step); return -1; }
    if (mkdir_p(out_dir) != 0) return -1;
    char name[64], path[4096], link[4096], tmp[4096];
    snprintf(name, sizeof name, "ckpt_%08ld.h5", step);
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    if (tern_checkpoint_save(path, mc, p, tok, tok_n, st) != 0) return -1;
    if (path_out && path_out_n) snprintf(path_out, path_out_n, "%s", path);
    // latest.h5 -> ckpt_<step>.h5 (relative), via a temporary link renamed over the old one
    snprintf(link, sizeof link, "%s/latest.h5", out_dir);
    tern_tmp_path(link, tmp, sizeof tmp);
    unlink(tmp);
    if (symlink(name, tmp) != 0 || rename(tmp, link) != 0) {
        tern_error("%s: cannot update link: %s", link, strerror(errno));
        unlink(tmp);
        return -1;
    }
    int dfd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);   // the new link is durable too
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    if (keep <= 0) return 0;
    DIR *d = opendir(out_dir);
    if (!d) { tern_error("%s: cannot list: %s", out_dir, strerror(errno)); return -1; }
    long *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (!parse_ckpt_name(e->d_name, &s) || s == step) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            steps = realloc(steps, sizeof(long) * (size_t)cap);
            if (!steps) tern_fatal("out of memory");
        }
        steps[n++] = s;
    }
    closedir(d);
    if (n > 1) qsort(steps, (size_t)n, sizeof(long), cmp_long_desc);
    for (int i = keep - 1; i < n; i++) {   // the new file counts as one of the kept
        if (i < 0) continue;
        snprintf(path, sizeof path, "%s/ckpt_%08ld.h5", out_dir, steps[i]);
        unlink(path);
    }
    free(steps);
    return 0;
}

// ---- rehearsal --------------------------------------------------------------------------------
// The structure check reads a file without a checksum once, in a child, in its own order. A
// damaged file can still make libhdf5 fail on another sequence of calls (libFuzzer found a file
// that passed the check and then made the parent's config read overflow a heap buffer inside
// libhdf5). So every read of such a file runs twice: first in a forked child, which starts from
// the parent's state (the same heap, the same HDF5 library state, the same code path, the same
// free descriptors), then, if that child ended normally (success or a clean error), in the
// parent; a read that crashes, crashes in the child first. (That fuzz finding still happens in
// the parent after a clean rehearsal: some difference between the two remains unfound;
// docs/ROBUSTNESS.md.) Files with a checksum header (tern's own) are read once; the header is a
// checksum, not a signature (checkpoint.h).
typedef int (*ckpt_op)(const char *path, void *arg);
typedef struct { ckpt_op op; const char *path; void *arg; } rehearsal_ctx;
static int g_rehearsing;   // in the rehearsing child: read, do not rehearse again
void (*tern_checkpoint_rehearsal_hook)(int rc);

static int rehearse_fn(void *ctx, char *why, size_t why_n) {
    const rehearsal_ctx *r = ctx;
    (void)why;
    (void)why_n;
    g_rehearsing = 1;
    const int rc = r->op(r->path, r->arg);   // a clean error is the parent's to report
    if (tern_checkpoint_rehearsal_hook) tern_checkpoint_rehearsal_hook(rc);
    return 0;
}

// op(path, arg), rehearsed in a child first when path is an HDF5 file without a checksum header;
// extra_vm: what op allocates (the child's address space is limited)
static int with_rehearsal(const char *path, ckpt_op op, void *arg, size_t extra_vm) {
    if (g_rehearsing) return op(path, arg);
    // only a file with the HDF5 signature at offset 0 has no header; anything else (a header,
    // or not a checkpoint at all) goes straight to op, whose verify_file hashes and judges it once
    unsigned char sig[8] = {0};
    const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);   // a FIFO must not block here
    const int plain = fd >= 0 && pread(fd, sig, 8, 0) == 8 && memcmp(sig, HDF5_SIG, 8) == 0;
    if (fd >= 0) close(fd);
    if (!plain) return op(path, arg);
    quiet_hdf5();
    int k = -1;
    const int sealed = verify_file(path, NULL, &k);   // the structure check, once per file
    if (sealed < 0) return -1;
    if (sealed == 0) {
        rehearsal_ctx r = {op, path, arg};
        const int rc = in_child(path, g_verified[k].size, "reading it", extra_vm, rehearse_fn, &r);
        if (rc == -1) snprintf(g_failed_msg[k], sizeof g_failed_msg[0], "%s", tern_last_error());   // not read again here
        if (rc != 0) return -1;
    }
    return op(path, arg);
}

// ---- load -----------------------------------------------------------------------------------

typedef struct { int *version, *sealed; } info_arg;
static int info_op(const char *path, void *arg) {
    const info_arg *a = arg;
    ckpt_file cf;
    if (open_ckpt(path, &cf) != 0) return -1;
    tern_model_config mc;
    int rc = read_config_attrs(cf.f, path, &mc, a->version);
    if (a->sealed) *a->sealed = cf.entry >= 0 && g_verified[cf.entry].sealed;
    close_ckpt(&cf, rc == 0);
    return rc;
}
int tern_checkpoint_info(const char *path, int *version, int *sealed) {
    info_arg a = {version, sealed};
    return with_rehearsal(path, info_op, &a, 0);
}

static int read_config_op(const char *path, void *arg) {
    ckpt_file cf;
    if (open_ckpt(path, &cf) != 0) return -1;
    int rc = read_config_attrs(cf.f, path, arg, NULL);
    close_ckpt(&cf, rc == 0);
    return rc;
}
int tern_checkpoint_read_config(const char *path, tern_model_config *mc) { return with_rehearsal(path, read_config_op, mc, 0); }

static int compare_config(const char *path, const tern_model_config *file, const tern_model_config *want) {
    for (int i = 0; i < NCFG; i++) {
        const char *a = (const char *)file + CFG_FIELDS[i].off, *b = (const char *)want + CFG_FIELDS[i].off;
        if (CFG_FIELDS[i].is_float) {
            float x, y;
            memcpy(&x, a, 4);
            memcpy(&y, b, 4);
            if (x != y) {
                tern_error("%s: checkpoint has %s %g, the model has %g", path, CFG_FIELDS[i].name, x, y);
                return -1;
            }
        } else {
            int x, y;
            memcpy(&x, a, sizeof x);
            memcpy(&y, b, sizeof y);
            if (x != y) {
                tern_error("%s: checkpoint has %s %d, the model has %d", path, CFG_FIELDS[i].name, x, y);
                return -1;
            }
        }
    }
    return 0;
}

// 1 and *g opened if /train_state exists, 0 if not, -1 on error
static int open_state_group(hid_t f, const char *path, hid_t *g) {
    int hl = hard_link(f, path, "/", "train_state");
    if (hl <= 0) return hl;
    *g = H5Gopen2(f, "train_state", H5P_DEFAULT);
    if (*g < 0) { tern_error("%s: /train_state is not a group", path); return -1; }
    return 1;
}

static int read_state_op(const char *path, void *arg) {
    tern_train_state *st = arg;
    memset(st, 0, sizeof *st);
    ckpt_file cf;
    if (open_ckpt(path, &cf) != 0) return -1;
    tern_model_config mc;
    int rc = -1, version;
    if (read_config_attrs(cf.f, path, &mc, &version) == 0) {
        hid_t g = -1;
        int has = open_state_group(cf.f, path, &g);
        if (has == 0) rc = 0;
        else if (has == 1) {
            rc = read_state_attrs(g, path, version, st) == 0 ? 1 : -1;
            H5Gclose(g);
        }
    }
    close_ckpt(&cf, rc >= 0);
    return rc;
}
int tern_checkpoint_read_state(const char *path, tern_train_state *st) {
    memset(st, 0, sizeof *st);
    return with_rehearsal(path, read_state_op, st, 0);
}

static int load(const char *path, const tern_model_config *mc, tern_params *p, tern_train_state *st,
                int (*may_miss)(const char *name), int *n_missing);
typedef struct { const tern_model_config *mc; tern_params *p; tern_train_state *st; int (*may_miss)(const char *); int *n_missing; } load_arg;
static int load_op(const char *path, void *arg) {
    const load_arg *a = arg;
    return load(path, a->mc, a->p, a->st, a->may_miss, a->n_missing);
}

int tern_checkpoint_load(const char *path, const tern_model_config *mc, tern_params *p, tern_train_state *st) {
    if (st) memset(st, 0, sizeof *st);
    load_arg a = {mc, p, st, NULL, NULL};
    return with_rehearsal(path, load_op, &a, 3 * sizeof(float) * (size_t)p->total);   // load's scratch copies
}

int tern_checkpoint_load_partial(const char *path, tern_params *p, int (*may_miss)(const char *name), int *n_missing) {
    if (n_missing) *n_missing = 0;
    load_arg a = {NULL, p, NULL, may_miss, n_missing};
    return with_rehearsal(path, load_op, &a, sizeof(float) * (size_t)p->total);
}

static int load(const char *path, const tern_model_config *mc, tern_params *p, tern_train_state *st,
                int (*may_miss)(const char *name), int *n_missing) {
    if (n_missing) *n_missing = 0;
    if (st) memset(st, 0, sizeof *st);
    if (!p->allocated) { tern_error("%s: parameters are not allocated", path); return -1; }
    ckpt_file cf;
    if (open_ckpt(path, &cf) != 0) return -1;
    hid_t f = cf.f, g = -1, gm = -1, gv = -1;
    int rc = -1, version;
    float *scratch = NULL, *sm = NULL, *sv = NULL;
    tern_train_state s = {0};
    tern_model_config fc;
    size_t bytes = sizeof(float) * (size_t)p->total;
    if (read_config_attrs(f, path, &fc, &version) != 0) goto done;
    if (mc && compare_config(path, &fc, mc) != 0) goto done;
    iter_ctx ic = {p, path, 0};
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, check_root_name, &ic) < 0 && !ic.bad) {
        tern_error("%s: cannot list the file's datasets", path);
        goto done;
    }
    if (ic.bad) goto done;
    // read into a scratch copy first so that a failure leaves p untouched
    scratch = tern_aligned_alloc(bytes ? bytes : 4);
    memcpy(scratch, p->data, bytes);
    for (int i = 0; i < p->n; i++) {
        if (may_miss && may_miss(p->t[i]->name) && H5Lexists(f, p->t[i]->name, H5P_DEFAULT) <= 0) {
            if (n_missing) (*n_missing)++;
            continue;   // keeps the value it has
        }
        if (read_f32(f, path, "/", p->t[i], scratch + p->t[i]->offset, 0) != 0) goto done;
    }
    int has_state = 0;
    if (st && (has_state = open_state_group(f, path, &g)) < 0) goto done;
    if (!has_state) {
        memcpy(p->data, scratch, bytes);
        rc = 0;
        goto done;
    }
    if (read_state_attrs(g, path, version, &s) != 0) goto done;
    int hm = hard_link(g, path, "/train_state/", "m"), hv = hm < 0 ? -1 : hard_link(g, path, "/train_state/", "v");
    if (hm <= 0 || hv <= 0) {
        if (hm == 0 || hv == 0) tern_error("%s: missing group /train_state/%s", path, hm == 0 ? "m" : "v");
        goto done;
    }
    gm = H5Gopen2(g, "m", H5P_DEFAULT);
    gv = H5Gopen2(g, "v", H5P_DEFAULT);
    if (gm < 0 || gv < 0) { tern_error("%s: cannot open /train_state/m or /train_state/v", path); goto done; }
    sm = tern_aligned_alloc(bytes ? bytes : 4);
    sv = tern_aligned_alloc(bytes ? bytes : 4);
    memcpy(sm, p->m, bytes);
    memcpy(sv, p->v, bytes);
    for (int i = 0; i < p->n; i++)
        if (read_f32(gm, path, "/train_state/m/", p->t[i], sm + p->t[i]->offset, 0) != 0 ||
            read_f32(gv, path, "/train_state/v/", p->t[i], sv + p->t[i]->offset, 1) != 0)
            goto done;
    memcpy(p->data, scratch, bytes);
    memcpy(p->m, sm, bytes);
    memcpy(p->v, sv, bytes);
    *st = s;
    s.run_config = NULL;
    rc = 1;
done:
    free(s.run_config);
    free(scratch);
    free(sm);
    free(sv);
    close_id(&gm, H5Gclose);
    close_id(&gv, H5Gclose);
    close_id(&g, H5Gclose);
    close_ckpt(&cf, rc >= 0);
    return rc;
}

typedef struct { void **buf; size_t *n; } tok_arg;
static int read_tokenizer_op(const char *path, void *arg) {
    const tok_arg *a = arg;
    void **buf = a->buf;
    size_t *n = a->n;
    *buf = NULL;
    *n = 0;
    ckpt_file cf;
    if (open_ckpt(path, &cf) != 0) return -1;
    tern_model_config mc;
    int rc = read_config_attrs(cf.f, path, &mc, NULL) != 0 ? -1 : read_tokenizer_ds(cf.f, path, buf, n);
    close_ckpt(&cf, rc >= 0);
    return rc;
}
int tern_checkpoint_read_tokenizer(const char *path, void **buf, size_t *n) {
    *buf = NULL;
    *n = 0;
    tok_arg a = {buf, n};
    return with_rehearsal(path, read_tokenizer_op, &a, 0);
}

void tern_train_state_free(tern_train_state *st) {
    if (!st) return;
    free(st->run_config);
    st->run_config = NULL;
}
