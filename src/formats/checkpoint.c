// checkpoint.c — HDF5 checkpoint save/load (layout in checkpoint.h).
#include "formats/checkpoint.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void quiet_hdf5(void) {
    // HDF5 prints its whole error stack to stderr by default; we report one line instead.
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t)) {
    if (*id >= 0) fn(*id);
    *id = -1;
}

// ---- attributes ---------------------------------------------------------------------------

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

// Reads a scalar numeric attribute converted to mem_type. 0, or -1 with "path: <what>".
static int read_attr_num(hid_t loc, const char *path, const char *where, const char *name, hid_t mem_type,
                         H5T_class_t want, void *out) {
    if (H5Aexists(loc, name) <= 0) { tern_error("%s: missing attribute %s%s", path, where, name); return -1; }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) { tern_error("%s: cannot open attribute %s%s", path, where, name); return -1; }
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    H5T_class_t cls = H5Tget_class(t);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    if (cls != want) {
        tern_error("%s: attribute %s%s has the wrong type (expected %s)", path, where, name,
                   want == H5T_INTEGER ? "integer" : "float");
    } else if (np != 1) {
        tern_error("%s: attribute %s%s is not a single value", path, where, name);
    } else if (H5Aread(a, mem_type, out) < 0) {
        tern_error("%s: cannot read attribute %s%s (value out of range?)", path, where, name);
    } else {
        rc = 0;
    }
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

// Reads a string attribute (fixed or variable length) into a malloc'd string.
static char *read_attr_str(hid_t loc, const char *path, const char *where, const char *name) {
    if (H5Aexists(loc, name) <= 0) { tern_error("%s: missing attribute %s%s", path, where, name); return NULL; }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) { tern_error("%s: cannot open attribute %s%s", path, where, name); return NULL; }
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    char *out = NULL;
    if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        tern_error("%s: attribute %s%s is not a string", path, where, name);
    } else if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        char *vs = NULL;
        if (H5Aread(a, mt, &vs) >= 0 && vs) {
            out = tern_xmalloc(strlen(vs) + 1);
            strcpy(out, vs);
            H5free_memory(vs);
        } else {
            tern_error("%s: cannot read attribute %s%s", path, where, name);
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
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
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(a);
    return out;
}

// ---- model config as root attributes --------------------------------------------------------

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

static int read_config_attrs(hid_t f, const char *path, tern_model_config *mc) {
    char *fmt = read_attr_str(f, path, "", "format");
    if (!fmt) {
        if (H5Aexists(f, "format") <= 0) tern_error("%s: not a tern checkpoint (no 'format' attribute)", path);
        return -1;
    }
    if (strcmp(fmt, TERN_CKPT_FORMAT) != 0) {
        tern_error("%s: not a tern checkpoint (format '%s', expected '%s')", path, fmt, TERN_CKPT_FORMAT);
        free(fmt);
        return -1;
    }
    free(fmt);
    int32_t ver;
    if (read_attr_num(f, path, "", "format_version", H5T_NATIVE_INT32, H5T_INTEGER, &ver) != 0) return -1;
    if (ver != TERN_CKPT_VERSION) {
        tern_error("%s: unsupported format_version %d (this build reads %d)", path, (int)ver, TERN_CKPT_VERSION);
        return -1;
    }
    tern_model_config_defaults(mc);
    for (int i = 0; i < NCFG; i++) {
        char *p = (char *)mc + CFG_FIELDS[i].off;
        if (CFG_FIELDS[i].optional && H5Aexists(f, CFG_FIELDS[i].name) <= 0) continue;
        int rc = CFG_FIELDS[i].is_float
                     ? read_attr_num(f, path, "", CFG_FIELDS[i].name, H5T_NATIVE_FLOAT, H5T_FLOAT, p)
                     : read_attr_num(f, path, "", CFG_FIELDS[i].name, H5T_NATIVE_INT, H5T_INTEGER, p);
        if (rc != 0) return -1;
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

// Reads dataset <prefix><t->name> into out (t->n floats) after checking type and shape.
static int read_f32(hid_t loc, const char *path, const char *prefix, const tern_tensor *t, float *out) {
    if (H5Lexists(loc, t->name, H5P_DEFAULT) <= 0) {
        tern_error("%s: missing dataset %s%s", path, prefix, t->name);
        return -1;
    }
    hid_t d = H5Dopen2(loc, t->name, H5P_DEFAULT);
    if (d < 0) { tern_error("%s: %s%s is not a dataset", path, prefix, t->name); return -1; }
    hid_t ty = H5Dget_type(d), sp = H5Dget_space(d);
    int rc = -1;
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[32];
    int same = nd == t->ndim;
    if (nd >= 0 && nd <= 32) H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; same && i < nd; i++) same = dims[i] == (hsize_t)t->shape[i];
    if (H5Tget_class(ty) != H5T_FLOAT) {
        tern_error("%s: dataset %s%s is not floating point", path, prefix, t->name);
    } else if (!same) {
        char got[160], want[160];
        hsize_t w[TERN_MAX_DIMS];
        for (int i = 0; i < t->ndim; i++) w[i] = (hsize_t)t->shape[i];
        if (nd >= 0 && nd <= 32) shape_str(nd, dims, got, sizeof got);
        else snprintf(got, sizeof got, "(unreadable)");
        shape_str(t->ndim, w, want, sizeof want);
        tern_error("%s: dataset %s%s has shape %s, expected %s", path, prefix, t->name, got, want);
    } else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        tern_error("%s: cannot read dataset %s%s (file truncated or corrupt?)", path, prefix, t->name);
    } else {
        rc = 0;
    }
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

// ---- save -----------------------------------------------------------------------------------

int tern_checkpoint_save(const char *path, const tern_model_config *mc, const tern_params *p,
                         const void *tok, size_t tok_n, const tern_train_state *st) {
    quiet_hdf5();
    if (!p->allocated) { tern_error("%s: parameters are not allocated", path); return -1; }
    for (int i = 0; i < p->n; i++)
        if (strchr(p->t[i]->name, '/') || strcmp(p->t[i]->name, "tokenizer") == 0 ||
            strcmp(p->t[i]->name, "train_state") == 0) {
            tern_error("%s: parameter name '%s' cannot be stored", path, p->t[i]->name);
            return -1;
        }
    char tmp[4096];
    tern_tmp_path(path, tmp, sizeof tmp);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
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
        int64_t i64[4] = {st->step, st->tokens_seen, st->loader_pos, st->loader_epoch};
        const char *n64[4] = {"step", "tokens_seen", "loader_pos", "loader_epoch"};
        for (int i = 0; i < 4; i++)
            if (write_attr(g, n64[i], H5T_STD_I64LE, H5T_NATIVE_INT64, &i64[i]) != 0) goto fail;
        if (write_attr(g, "rng_state", H5T_STD_U64LE, H5T_NATIVE_UINT64, &st->rng_state) != 0) goto fail;
        if (write_attr(g, "loader_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &st->loader_seed) != 0) goto fail;
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
    // exactly "ckpt_" + at least 8 digits + ".h5"
    size_t n = strlen(name);
    if (n < 5 + 8 + 3 || strncmp(name, "ckpt_", 5) != 0 || strcmp(name + n - 3, ".h5") != 0) return 0;
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

// ---- load -----------------------------------------------------------------------------------

static hid_t open_ckpt(const char *path) {
    quiet_hdf5();
    if (access(path, R_OK) != 0) {
        tern_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        tern_error("%s: is a directory, not a checkpoint", path);
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        tern_error("%s: not an HDF5 file (bad signature or truncated)", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) tern_error("%s: cannot open HDF5 file (corrupt or truncated?)", path);
    return f;
}

int tern_checkpoint_read_config(const char *path, tern_model_config *mc) {
    hid_t f = open_ckpt(path);
    if (f < 0) return -1;
    int rc = read_config_attrs(f, path, mc);
    H5Fclose(f);
    return rc;
}

typedef struct { const tern_params *p; const char *path; int bad; } iter_ctx;

static herr_t check_root_name(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)g;
    (void)info;
    iter_ctx *c = op;
    if (strcmp(name, "tokenizer") == 0 || strcmp(name, "train_state") == 0) return 0;
    if (tern_params_find(c->p, name)) return 0;
    tern_error("%s: unexpected dataset /%s (not a parameter of this model)", c->path, name);
    c->bad = 1;
    return 1;   // stop
}

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

// Reads the /train_state attributes of group g into s (run_config malloc'd). 0 or -1.
static int read_state_attrs(hid_t g, const char *path, tern_train_state *s) {
    memset(s, 0, sizeof *s);
    int64_t i64[4];
    const char *n64[4] = {"step", "tokens_seen", "loader_pos", "loader_epoch"};
    for (int i = 0; i < 4; i++)
        if (read_attr_num(g, path, "/train_state:", n64[i], H5T_NATIVE_INT64, H5T_INTEGER, &i64[i]) != 0) return -1;
    if (read_attr_num(g, path, "/train_state:", "rng_state", H5T_NATIVE_UINT64, H5T_INTEGER, &s->rng_state) != 0 ||
        read_attr_num(g, path, "/train_state:", "loader_seed", H5T_NATIVE_UINT64, H5T_INTEGER, &s->loader_seed) != 0)
        return -1;
    if (i64[0] < 0) { tern_error("%s: /train_state:step is negative (%lld)", path, (long long)i64[0]); return -1; }
    s->step = i64[0];
    s->tokens_seen = i64[1];
    s->loader_pos = i64[2];
    s->loader_epoch = i64[3];
    s->run_config = read_attr_str(g, path, "/train_state:", "run_config");
    return s->run_config ? 0 : -1;
}

int tern_checkpoint_read_state(const char *path, tern_train_state *st) {
    memset(st, 0, sizeof *st);
    hid_t f = open_ckpt(path);
    if (f < 0) return -1;
    tern_model_config mc;
    int rc = -1;
    if (read_config_attrs(f, path, &mc) == 0) {
        if (H5Lexists(f, "train_state", H5P_DEFAULT) <= 0) {
            rc = 0;
        } else {
            hid_t g = H5Gopen2(f, "train_state", H5P_DEFAULT);
            if (g < 0) tern_error("%s: /train_state is not a group", path);
            else {
                rc = read_state_attrs(g, path, st) == 0 ? 1 : -1;
                H5Gclose(g);
            }
        }
    }
    H5Fclose(f);
    return rc;
}

static int load(const char *path, const tern_model_config *mc, tern_params *p, tern_train_state *st,
                int (*may_miss)(const char *name), int *n_missing);

int tern_checkpoint_load(const char *path, const tern_model_config *mc, tern_params *p, tern_train_state *st) {
    return load(path, mc, p, st, NULL, NULL);
}

int tern_checkpoint_load_partial(const char *path, tern_params *p, int (*may_miss)(const char *name), int *n_missing) {
    return load(path, NULL, p, NULL, may_miss, n_missing);
}

static int load(const char *path, const tern_model_config *mc, tern_params *p, tern_train_state *st,
                int (*may_miss)(const char *name), int *n_missing) {
    if (n_missing) *n_missing = 0;
    if (st) memset(st, 0, sizeof *st);
    if (!p->allocated) { tern_error("%s: parameters are not allocated", path); return -1; }
    hid_t f = open_ckpt(path);
    if (f < 0) return -1;
    hid_t g = -1, gm = -1, gv = -1;
    int rc = -1;
    tern_model_config fc;
    if (read_config_attrs(f, path, &fc) != 0) goto done;
    if (mc && compare_config(path, &fc, mc) != 0) goto done;
    iter_ctx ic = {p, path, 0};
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, check_root_name, &ic) < 0 && !ic.bad) {
        tern_error("%s: cannot list the file's datasets", path);
        goto done;
    }
    if (ic.bad) goto done;
    // read into a scratch copy first so that a failure leaves p untouched
    float *scratch = tern_aligned_alloc(sizeof(float) * (size_t)(p->total ? p->total : 1));
    memcpy(scratch, p->data, sizeof(float) * (size_t)p->total);
    for (int i = 0; i < p->n; i++) {
        if (may_miss && may_miss(p->t[i]->name) && H5Lexists(f, p->t[i]->name, H5P_DEFAULT) <= 0) {
            if (n_missing) (*n_missing)++;
            continue;   // keeps the value it has
        }
        if (read_f32(f, path, "/", p->t[i], scratch + p->t[i]->offset) != 0) { free(scratch); goto done; }
    }
    if (!st) {
        memcpy(p->data, scratch, sizeof(float) * (size_t)p->total);
        free(scratch);
        rc = 0;
        goto done;
    }
    if (H5Lexists(f, "train_state", H5P_DEFAULT) <= 0) {
        memcpy(p->data, scratch, sizeof(float) * (size_t)p->total);
        free(scratch);
        rc = 0;
        goto done;
    }
    g = H5Gopen2(f, "train_state", H5P_DEFAULT);
    if (g < 0) { tern_error("%s: /train_state is not a group", path); free(scratch); goto done; }
    tern_train_state s = {0};
    if (read_state_attrs(g, path, &s) != 0) { free(scratch); goto done; }
    if (H5Lexists(g, "m", H5P_DEFAULT) <= 0 || H5Lexists(g, "v", H5P_DEFAULT) <= 0) {
        tern_error("%s: missing group /train_state/%s", path, H5Lexists(g, "m", H5P_DEFAULT) <= 0 ? "m" : "v");
        free(s.run_config);
        free(scratch);
        goto done;
    }
    gm = H5Gopen2(g, "m", H5P_DEFAULT);
    gv = H5Gopen2(g, "v", H5P_DEFAULT);
    size_t bytes = sizeof(float) * (size_t)p->total;
    float *sm = tern_aligned_alloc(bytes ? bytes : 4), *sv = tern_aligned_alloc(bytes ? bytes : 4);
    memcpy(sm, p->m, bytes);
    memcpy(sv, p->v, bytes);
    int ok = gm >= 0 && gv >= 0;
    if (!ok) tern_error("%s: cannot open /train_state/m or /train_state/v", path);
    for (int i = 0; ok && i < p->n; i++)
        ok = read_f32(gm, path, "/train_state/m/", p->t[i], sm + p->t[i]->offset) == 0 &&
             read_f32(gv, path, "/train_state/v/", p->t[i], sv + p->t[i]->offset) == 0;
    if (ok) {
        memcpy(p->data, scratch, bytes);
        memcpy(p->m, sm, bytes);
        memcpy(p->v, sv, bytes);
        *st = s;
        rc = 1;
    } else {
        free(s.run_config);
    }
    free(sm);
    free(sv);
    free(scratch);
done:
    close_id(&gm, H5Gclose);
    close_id(&gv, H5Gclose);
    close_id(&g, H5Gclose);
    H5Fclose(f);
    return rc;
}

int tern_checkpoint_read_tokenizer(const char *path, void **buf, size_t *n) {
    *buf = NULL;
    *n = 0;
    hid_t f = open_ckpt(path);
    if (f < 0) return -1;
    tern_model_config mc;
    if (read_config_attrs(f, path, &mc) != 0) { H5Fclose(f); return -1; }
    if (H5Lexists(f, "tokenizer", H5P_DEFAULT) <= 0) { H5Fclose(f); return 0; }
    int rc = -1;
    hid_t d = H5Dopen2(f, "tokenizer", H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1, ty = d >= 0 ? H5Dget_type(d) : -1;
    if (d < 0 || sp < 0 || ty < 0) {
        tern_error("%s: /tokenizer is not a dataset", path);
    } else if (H5Sget_simple_extent_ndims(sp) != 1 || H5Tget_class(ty) != H5T_INTEGER || H5Tget_size(ty) != 1) {
        tern_error("%s: /tokenizer must be a 1-D uint8 dataset", path);
    } else {
        hssize_t np = H5Sget_simple_extent_npoints(sp);
        void *b = tern_xmalloc((size_t)(np > 0 ? np : 1));
        if (np < 0 || H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) < 0) {
            tern_error("%s: cannot read /tokenizer", path);
            free(b);
        } else {
            *buf = b;
            *n = (size_t)np;
            rc = 1;
        }
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    return rc;
}

void tern_train_state_free(tern_train_state *st) {
    if (!st) return;
    free(st->run_config);
    st->run_config = NULL;
}
