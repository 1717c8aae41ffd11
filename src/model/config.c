// config.c — table-driven `key = value` configuration (see config.h for the format).
#include "model/config.h"
#include "engine/graph.h"          // tern_precision
#include "kernels/gemm_bf16.h"    // tern_gemm_best: precision = auto
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum { K_INT, K_LONG, K_LONG_AUTO, K_FLOAT, K_FLOAT_AUTO, K_BOOL, K_U64, K_STR, K_SCHED, K_ACT, K_ROPE, K_PREC, K_BYTES } key_type;

typedef struct {
    const char *name;
    key_type type;
    size_t off;      // offset into tern_config
} key_def;

#define M(f) offsetof(tern_config, model.f)
#define R(f) offsetof(tern_config, run.f)
static const key_def KEYS[] = {
    {"dim", K_INT, M(dim)},
    {"n_layers", K_INT, M(n_layers)},
    {"n_heads", K_INT, M(n_heads)},
    {"n_kv_heads", K_INT, M(n_kv_heads)},
    {"ffn_dim", K_INT, M(ffn_dim)},
    {"vocab_size", K_INT, M(vocab_size)},
    {"seq_len", K_INT, M(seq_len)},
    {"norm_eps", K_FLOAT, M(norm_eps)},
    {"rope_theta", K_FLOAT, M(rope_theta)},
    {"tied_head", K_BOOL, M(tied_head)},
    {"ternary", K_BOOL, M(ternary)},
    {"ffn_act", K_ACT, M(ffn_act)},
    {"sub_norms", K_BOOL, M(sub_norms)},
    {"rope_scaling", K_ROPE, M(rope_scaling)},
    {"rope_scaling_factor", K_FLOAT, M(rope_scaling_factor)},
    {"rope_low_freq_factor", K_FLOAT, M(rope_low_freq_factor)},
    {"rope_high_freq_factor", K_FLOAT, M(rope_high_freq_factor)},
    {"rope_original_ctx", K_INT, M(rope_original_ctx)},
    {"batch", K_INT, R(batch)},
    {"grad_accum", K_INT, R(grad_accum)},
    {"steps", K_LONG, R(steps)},
    {"max_tokens", K_LONG, R(max_tokens)},
    {"lr", K_FLOAT_AUTO, R(lr)},
    {"lr2", K_FLOAT_AUTO, R(lr2)},
    {"lr_min", K_FLOAT, R(lr_min)},
    {"schedule", K_SCHED, R(schedule)},
    {"warmup", K_LONG_AUTO, R(warmup)},
    {"weight_decay", K_FLOAT, R(weight_decay)},
    {"beta1", K_FLOAT, R(beta1)},
    {"beta2", K_FLOAT, R(beta2)},
    {"adam_eps", K_FLOAT, R(adam_eps)},
    {"clip", K_FLOAT, R(clip)},
    {"eval_interval", K_LONG, R(eval_interval)},
    {"eval_batches", K_INT, R(eval_batches)},
    {"ckpt_interval", K_LONG, R(ckpt_interval)},
    {"ckpt_keep", K_INT, R(ckpt_keep)},
    {"log_interval", K_LONG, R(log_interval)},
    {"seed", K_U64, R(seed)},
    {"train_data", K_STR, R(train_data)},
    {"val_data", K_STR, R(val_data)},
    {"tokenizer", K_STR, R(tokenizer)},
    {"out_dir", K_STR, R(out_dir)},
    {"init_from", K_STR, R(init_from)},
    {"freeze_embeddings", K_BOOL, R(freeze_embeddings)},
    {"to_ternary_ramp", K_LONG, R(to_ternary_ramp)},
    {"teacher", K_STR, R(teacher)},
    {"distill_alpha", K_FLOAT, R(distill_alpha)},
    {"distill_temp", K_FLOAT, R(distill_temp)},
    {"threads", K_INT, R(threads)},
    {"profile", K_BOOL, R(profile)},
    {"recompute", K_BOOL, R(recompute)},
    {"precision", K_PREC, R(precision)},
    {"zero", K_INT, R(zero)},
    {"bucket_mb", K_FLOAT, R(bucket_mb)},
    {"overlap", K_BOOL, R(overlap)},
    {"max_memory", K_BYTES, R(max_memory)},
};
#undef M
#undef R
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

static const char *SCHED_NAMES[] = {"two_stage", "cosine", "linear", "constant"};
static const char *ACT_NAMES[] = {"silu", "relu2"};
static const char *ROPE_NAMES[] = {"none", "llama3"};
static const char *PREC_NAMES[] = {"fp32", "mixed"};   // tern_precision (engine/graph.h)

const char *tern_precision_name(int p) { return p == TERN_PREC_AUTO ? "auto" : p >= 0 && p < 2 ? PREC_NAMES[p] : "?"; }

const char *tern_ffn_act_name(int act) { return act >= 0 && act < 2 ? ACT_NAMES[act] : "?"; }
const char *tern_rope_scaling_name(int kind) { return kind >= 0 && kind < 2 ? ROPE_NAMES[kind] : "?"; }

const char *tern_schedule_name(int kind) {
    if (kind < 0 || kind >= (int)(sizeof SCHED_NAMES / sizeof SCHED_NAMES[0])) return "?";
    return SCHED_NAMES[kind];
}

const char *const *tern_config_keys(void) {
    static const char *names[sizeof KEYS / sizeof KEYS[0] + 1];
    for (int i = 0; i < NKEYS; i++) names[i] = KEYS[i].name;
    names[NKEYS] = NULL;
    return names;
}

void tern_model_config_defaults(tern_model_config *m) {
    memset(m, 0, sizeof *m);
    m->dim = 256;
    m->n_layers = 6;
    m->n_heads = 4;
    m->n_kv_heads = 4;
    m->ffn_dim = 768;
    m->vocab_size = 4096;
    m->seq_len = 256;
    m->norm_eps = 1e-5f;
    m->rope_theta = 10000.0f;
    m->tied_head = 1;
    m->ternary = 1;
    m->ffn_act = TERN_FFN_SILU;
    m->sub_norms = 1;
    m->rope_scaling = TERN_ROPE_SCALING_NONE;
    m->rope_scaling_factor = 8.0f;     // LLaMA 3.1's values, used only with rope_scaling = llama3
    m->rope_low_freq_factor = 1.0f;
    m->rope_high_freq_factor = 4.0f;
    m->rope_original_ctx = 8192;
}

void tern_config_defaults(tern_config *c) {
    memset(c, 0, sizeof *c);
    tern_model_config_defaults(&c->model);
    tern_run_config *r = &c->run;
    r->batch = 8;
    r->grad_accum = 1;
    r->steps = 1000;
    r->max_tokens = 0;
    r->lr = 0;          // auto
    r->lr2 = 0;         // auto
    r->lr_min = 0;
    r->schedule = TERN_SCHED_TWO_STAGE;
    r->warmup = -1;     // auto
    r->weight_decay = 0.1f;
    r->beta1 = 0.9f;
    r->beta2 = 0.95f;
    r->adam_eps = 1e-8f;
    r->clip = 1.0f;
    r->eval_interval = 100;
    r->eval_batches = 10;
    r->ckpt_interval = 500;
    r->ckpt_keep = 3;
    r->log_interval = 10;
    r->seed = 1337;
    snprintf(r->out_dir, sizeof r->out_dir, "runs/default");
    r->freeze_embeddings = 0;
    r->to_ternary_ramp = 0;
    r->teacher[0] = 0;
    r->distill_alpha = 0.5f;
    r->distill_temp = 1.0f;
    r->threads = 0;
    r->profile = 0;
    r->recompute = 0;
    r->precision = TERN_PREC_AUTO;
    r->precision_auto = 0;
    r->zero = 0;
    r->bucket_mb = 4.0f;
    r->overlap = 1;
}

// ---- setting values -------------------------------------------------------------------------

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40) return 99;
    int d[41][41];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static const key_def *find_key(const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].name, key) == 0) return &KEYS[i];
    return NULL;
}

static void unknown_key(const char *prefix, const char *key) {
    const char *best = NULL;
    int bd = 3;
    for (int i = 0; i < NKEYS; i++) {
        int d = edit_distance(key, KEYS[i].name);
        if (d < bd) { bd = d; best = KEYS[i].name; }
    }
    if (best) tern_error("%sunknown key '%s' (did you mean '%s'?)", prefix, key, best);
    else tern_error("%sunknown key '%s'", prefix, key);
}

static int parse_bool(const char *v, int *out) {
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(v, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

// Sets the key; prefix ("path:line: " or "") goes in front of error messages.
static int set_value(tern_config *c, const key_def *k, const char *v, const char *prefix) {
    char *base = (char *)c;
    void *p = base + k->off;
    const char *expect = "?";
    switch (k->type) {
    case K_INT: {
        long x;
        expect = "integer";
        if (tern_parse_long(v, &x) != 0 || x < -2147483647L || x > 2147483647L) break;
        *(int *)p = (int)x;
        return 0;
    }
    case K_LONG: case K_LONG_AUTO: {
        long x;
        if (k->type == K_LONG_AUTO && strcasecmp(v, "auto") == 0) { *(long *)p = -1; return 0; }
        expect = k->type == K_LONG_AUTO ? "integer or auto" : "integer";
        if (tern_parse_long(v, &x) != 0) break;
        *(long *)p = x;
        return 0;
    }
    case K_FLOAT: case K_FLOAT_AUTO: {
        float x;
        if (k->type == K_FLOAT_AUTO && strcasecmp(v, "auto") == 0) { *(float *)p = 0; return 0; }
        expect = k->type == K_FLOAT_AUTO ? "number or auto" : "number";
        if (tern_parse_float(v, &x) != 0) break;
        *(float *)p = x;
        return 0;
    }
    case K_BOOL: {
        int x;
        expect = "0/1/true/false";
        if (parse_bool(v, &x) != 0) break;
        *(int *)p = x;
        return 0;
    }
    case K_U64: {
        expect = "non-negative integer";
        if (!*v || *v == '-') break;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end) break;
        *(uint64_t *)p = (uint64_t)x;
        return 0;
    }
    case K_STR: {
        if (strlen(v) >= TERN_PATH_MAX) {
            tern_error("%svalue for %s is too long (%zu bytes, max %d)", prefix, k->name, strlen(v), TERN_PATH_MAX - 1);
            return -1;
        }
        snprintf((char *)p, TERN_PATH_MAX, "%s", v);
        return 0;
    }
    case K_BYTES: {   // bytes with an optional K/M/G/T suffix (powers of 1024), or auto (0)
        expect = "bytes with optional K/M/G/T suffix, or auto";
        if (strcasecmp(v, "auto") == 0) { *(long *)p = 0; return 0; }
        char *end;
        errno = 0;
        if (!isdigit((unsigned char)*v)) break;
        double x = strtod(v, &end);
        if (errno || end == v) break;
        int sh = 0;
        if (*end) {
            const char *u = "KMGT", *q = strchr(u, toupper((unsigned char)*end));
            if (!q || !*q) break;
            sh = 10 * (int)(q - u + 1);
            end++;
            if (*end == 'i' || *end == 'I') end++;
            if (*end == 'b' || *end == 'B') end++;
            if (*end) break;
        }
        x = ldexp(x, sh);
        if (!(x >= 0) || x > 9.0e18) break;
        *(long *)p = (long)x;
        return 0;
    }
    case K_SCHED: {
        expect = "two_stage, cosine, linear or constant";
        for (int i = 0; i < (int)(sizeof SCHED_NAMES / sizeof SCHED_NAMES[0]); i++)
            if (strcmp(v, SCHED_NAMES[i]) == 0) { *(int *)p = i; return 0; }
        break;
    }
    case K_ACT: case K_ROPE: case K_PREC: {
        const char **names = k->type == K_ACT ? ACT_NAMES : k->type == K_ROPE ? ROPE_NAMES : PREC_NAMES;
        expect = k->type == K_ACT ? "silu or relu2" : k->type == K_ROPE ? "none or llama3" : "fp32, mixed or auto";
        if (k->type == K_PREC && strcmp(v, "auto") == 0) { *(int *)p = TERN_PREC_AUTO; return 0; }
        for (int i = 0; i < 2; i++)
            if (strcmp(v, names[i]) == 0) { *(int *)p = i; return 0; }
        break;
    }
    }
    tern_error("%sbad value '%s' for %s (expected %s)", prefix, v, k->name, expect);
    return -1;
}

int tern_config_set(tern_config *c, const char *key, const char *value) {
    const key_def *k = find_key(key);
    if (!k) { unknown_key("", key); return -1; }
    return set_value(c, k, value, "");
}

int tern_config_set_arg(tern_config *c, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq) { tern_error("bad override '%s' (expected key=value)", arg); return -1; }
    char key[64];
    size_t kl = (size_t)(eq - arg);
    if (kl == 0 || kl >= sizeof key) { tern_error("bad override '%s' (expected key=value)", arg); return -1; }
    memcpy(key, arg, kl);
    key[kl] = 0;
    return tern_config_set(c, key, eq + 1);
}

int tern_config_is_arg(const char *s) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || eq - s >= 64) return 0;
    char key[64];
    memcpy(key, s, (size_t)(eq - s));
    key[eq - s] = 0;
    return find_key(key) != NULL;
}

// ---- parsing files --------------------------------------------------------------------------

int tern_config_parse(tern_config *c, const char *text, const char *what) {
    unsigned char seen[sizeof KEYS / sizeof KEYS[0]] = {0};
    int lineno = 0;
    const char *s = text;
    char prefix[TERN_PATH_MAX + 32];
    while (*s) {
        lineno++;
        const char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        char *line = tern_xmalloc(len + 1);
        memcpy(line, s, len);
        line[len] = 0;
        s = eol ? eol + 1 : s + len;
        snprintf(prefix, sizeof prefix, "%s:%d: ", what, lineno);

        char *p = line;
        int rc = 0;
        while (isspace((unsigned char)*p)) p++;
        if (*p == 0 || *p == '#') { free(line); continue; }
        // key
        char *key = p;
        while (*p && (isalnum((unsigned char)*p) || *p == '_')) p++;
        char *kend = p;
        while (*p == ' ' || *p == '\t') p++;
        if (kend == key || *p != '=') {
            tern_error("%sexpected 'key = value', got '%s'", prefix, line);
            free(line);
            return -1;
        }
        *kend = 0;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        // value
        char *val = p;
        if (*p == '"') {
            char *w = ++p;
            val = w;
            int closed = 0;
            while (*p) {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) { *w++ = p[1]; p += 2; continue; }
                if (*p == '"') { closed = 1; p++; break; }
                *w++ = *p++;
            }
            char *after = p;
            *w = 0;
            if (!closed) { tern_error("%sunterminated quoted value for %s", prefix, key); free(line); return -1; }
            while (*after == ' ' || *after == '\t' || *after == '\r') after++;
            if (*after && *after != '#') {
                tern_error("%sunexpected text after quoted value for %s", prefix, key);
                free(line);
                return -1;
            }
        } else {
            char *h = strchr(p, '#');
            if (h) *h = 0;
            char *e = p + strlen(p);
            while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
        }
        const key_def *k = find_key(key);
        if (!k) { unknown_key(prefix, key); free(line); return -1; }
        int idx = (int)(k - KEYS);
        if (seen[idx]) { tern_error("%sduplicate key '%s'", prefix, key); free(line); return -1; }
        seen[idx] = 1;
        if (*val == 0 && k->type != K_STR) {
            tern_error("%smissing value for %s", prefix, key);
            free(line);
            return -1;
        }
        rc = set_value(c, k, val, prefix);
        free(line);
        if (rc != 0) return -1;
    }
    return 0;
}

int tern_config_load(tern_config *c, const char *path) {
    size_t n;
    char *text = tern_read_file(path, &n);
    if (!text) return -1;
    if (strlen(text) != n) { tern_error("%s: contains a NUL byte (not a text config)", path); free(text); return -1; }
    int rc = tern_config_parse(c, text, path);
    free(text);
    return rc;
}

// ---- validation -----------------------------------------------------------------------------

int tern_model_config_validate(const tern_model_config *m) {
    struct { const char *n; int v; } pos[] = {
        {"dim", m->dim}, {"n_layers", m->n_layers}, {"n_heads", m->n_heads}, {"n_kv_heads", m->n_kv_heads},
        {"ffn_dim", m->ffn_dim}, {"vocab_size", m->vocab_size}, {"seq_len", m->seq_len}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0) { tern_error("%s must be positive (got %d)", pos[i].n, pos[i].v); return -1; }
    struct { const char *n; int v, max; } lim[] = {
        {"dim", m->dim, TERN_MAX_DIM}, {"n_layers", m->n_layers, TERN_MAX_LAYERS}, {"n_heads", m->n_heads, TERN_MAX_HEADS},
        {"n_kv_heads", m->n_kv_heads, TERN_MAX_HEADS}, {"ffn_dim", m->ffn_dim, TERN_MAX_FFN},
        {"vocab_size", m->vocab_size, TERN_MAX_VOCAB_SIZE}, {"seq_len", m->seq_len, TERN_MAX_SEQ_LEN}};
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].v > lim[i].max) { tern_error("%s %d exceeds the limit %d", lim[i].n, lim[i].v, lim[i].max); return -1; }
    if (m->dim % m->n_heads) { tern_error("dim %d is not divisible by n_heads %d", m->dim, m->n_heads); return -1; }
    if (m->n_heads % m->n_kv_heads) {
        tern_error("n_heads %d is not divisible by n_kv_heads %d", m->n_heads, m->n_kv_heads);
        return -1;
    }
    int hd = m->dim / m->n_heads;
    if (hd % 2) { tern_error("head_dim %d (dim %d / n_heads %d) must be even for RoPE", hd, m->dim, m->n_heads); return -1; }
    if (!(m->norm_eps > 0 && m->norm_eps <= 1)) { tern_error("norm_eps must be positive and at most 1 (got %g)", m->norm_eps); return -1; }
    if (!(m->rope_theta > 0 && isfinite(m->rope_theta))) { tern_error("rope_theta must be positive (got %g)", m->rope_theta); return -1; }
    if (m->tied_head != 0 && m->tied_head != 1) { tern_error("tied_head must be 0 or 1"); return -1; }
    if (m->ternary != 0 && m->ternary != 1) { tern_error("ternary must be 0 or 1"); return -1; }
    if (m->ffn_act != TERN_FFN_SILU && m->ffn_act != TERN_FFN_RELU2) { tern_error("ffn_act must be silu or relu2"); return -1; }
    if (m->sub_norms != 0 && m->sub_norms != 1) { tern_error("sub_norms must be 0 or 1"); return -1; }
    if (m->rope_scaling != TERN_ROPE_SCALING_NONE && m->rope_scaling != TERN_ROPE_SCALING_LLAMA3) {
        tern_error("rope_scaling must be none or llama3");
        return -1;
    }
    if (m->rope_scaling == TERN_ROPE_SCALING_LLAMA3) {
        if (!(m->rope_scaling_factor >= 1.0f) || !isfinite(m->rope_scaling_factor)) {
            tern_error("rope_scaling_factor must be >= 1 (got %g)", m->rope_scaling_factor);
            return -1;
        }
        if (!(m->rope_low_freq_factor > 0.0f) || !(m->rope_high_freq_factor > m->rope_low_freq_factor) ||
            !isfinite(m->rope_high_freq_factor)) {
            tern_error("rope_low_freq_factor %g and rope_high_freq_factor %g must satisfy 0 < low < high",
                       m->rope_low_freq_factor, m->rope_high_freq_factor);
            return -1;
        }
        if (m->rope_original_ctx <= 0) { tern_error("rope_original_ctx must be positive (got %d)", m->rope_original_ctx); return -1; }
    }
    return 0;
}

int tern_model_config_exportable(const tern_model_config *m, char *why, size_t n) {
    if (why && n) why[0] = 0;
    if (m->dim % 32) { if (why) snprintf(why, n, "dim %d is not a multiple of 32", m->dim); return 0; }
    if (m->ffn_dim % 32) { if (why) snprintf(why, n, "ffn_dim %d is not a multiple of 32", m->ffn_dim); return 0; }
    if (m->dim % 256) { if (why) snprintf(why, n, "dim %d is not a multiple of 256", m->dim); return 1; }
    if (m->ffn_dim % 256) { if (why) snprintf(why, n, "ffn_dim %d is not a multiple of 256", m->ffn_dim); return 1; }
    return 2;
}

long tern_model_config_nparams(const tern_model_config *m) {
    long d = m->dim, hd = m->dim / (m->n_heads > 0 ? m->n_heads : 1), f = m->ffn_dim;
    long per = d                           // attn_norm
             + (long)m->n_heads * hd * d   // attn_q
             + 2L * m->n_kv_heads * hd * d // attn_k, attn_v
             + (m->sub_norms ? d : 0)      // attn_sub_norm
             + d * d                       // attn_output
             + d                           // ffn_norm
             + 2 * f * d                   // ffn_gate, ffn_up
             + (m->sub_norms ? f : 0)      // ffn_sub_norm
             + d * f;                      // ffn_down
    long n = (long)m->vocab_size * d + per * m->n_layers + d;
    if (!m->tied_head) n += (long)m->vocab_size * d;
    return n;
}

long tern_auto_warmup(long steps) { return steps / 10 < 500 ? steps / 10 : 500; }

int tern_config_validate(tern_config *c) {
    if (tern_model_config_validate(&c->model) != 0) return -1;
    tern_run_config *r = &c->run;
    if (r->batch <= 0) { tern_error("batch must be positive (got %d)", r->batch); return -1; }
    if (r->batch > TERN_MAX_BATCH) { tern_error("batch %d exceeds the limit %d", r->batch, TERN_MAX_BATCH); return -1; }
    if (r->grad_accum <= 0) { tern_error("grad_accum must be positive (got %d)", r->grad_accum); return -1; }
    if (r->grad_accum > TERN_MAX_GRAD_ACCUM) { tern_error("grad_accum %d exceeds the limit %d", r->grad_accum, TERN_MAX_GRAD_ACCUM); return -1; }
    // the rows of one micro-batch (batch * seq_len) index int-shaped tensors
    long rows = (long)r->batch * c->model.seq_len;
    if (rows > 2147483647L / 64) {
        tern_error("batch %d x seq_len %d = %ld token rows per micro-batch exceeds the limit %ld", r->batch, c->model.seq_len, rows,
                   2147483647L / 64);
        return -1;
    }
    long per = rows * r->grad_accum;   // tokens per optimizer step (< 2^51: no overflow)
    if (r->max_tokens < 0) { tern_error("max_tokens must be >= 0 (got %ld)", r->max_tokens); return -1; }
    if (r->max_tokens > TERN_MAX_RUN_TOKENS) { tern_error("max_tokens %ld exceeds the limit %ld", r->max_tokens, TERN_MAX_RUN_TOKENS); return -1; }
    if (r->max_tokens > 0) r->steps = r->max_tokens / per + (r->max_tokens % per != 0);
    if (r->steps <= 0) { tern_error("steps must be positive (got %ld)", r->steps); return -1; }
    if (r->steps > TERN_MAX_STEPS) { tern_error("steps %ld exceeds the limit %ld", r->steps, TERN_MAX_STEPS); return -1; }
    if (r->steps > TERN_MAX_RUN_TOKENS / per) {
        tern_error("steps %ld x %ld tokens per step exceeds the limit of %ld tokens per run", r->steps, per, TERN_MAX_RUN_TOKENS);
        return -1;
    }
    if (r->lr < 0 || !isfinite(r->lr)) { tern_error("lr must be positive (got %g)", r->lr); return -1; }
    if (r->lr == 0) r->lr = c->model.ternary ? 2.4e-3f : 4e-4f;
    if (r->lr2 < 0 || !isfinite(r->lr2)) { tern_error("lr2 must be positive (got %g)", r->lr2); return -1; }
    if (r->lr2 == 0) r->lr2 = r->lr * 0.625f;
    if (r->lr2 > r->lr) { tern_error("lr2 %g must not exceed lr %g", r->lr2, r->lr); return -1; }
    if (r->lr_min < 0) { tern_error("lr_min must be >= 0 (got %g)", r->lr_min); return -1; }
    float end_from = r->schedule == TERN_SCHED_TWO_STAGE ? r->lr2 : r->lr;
    if (r->lr_min > end_from) {
        tern_error("lr_min %g must not exceed %s %g", r->lr_min, r->schedule == TERN_SCHED_TWO_STAGE ? "lr2" : "lr", end_from);
        return -1;
    }
    if (r->schedule < 0 || r->schedule > TERN_SCHED_CONSTANT) { tern_error("bad schedule %d", r->schedule); return -1; }
    if (r->warmup < -1) { tern_error("warmup must be >= 0 or auto (got %ld)", r->warmup); return -1; }
    if (r->warmup > TERN_MAX_STEPS) { tern_error("warmup %ld exceeds the limit %ld", r->warmup, TERN_MAX_STEPS); return -1; }
    if (r->warmup == -1) r->warmup = tern_auto_warmup(r->steps);
    if (r->precision == TERN_PREC_AUTO) {   // mixed where it was measured faster and passed the quality guard
        r->precision = c->model.ternary && tern_gemm_best() == TERN_GEMM_AVX512BF16 ? TERN_PREC_MIXED : TERN_PREC_FP32;
        r->precision_auto = 1;
    }
    if (r->schedule == TERN_SCHED_TWO_STAGE && r->warmup >= r->steps / 2 && r->warmup > 0) {
        tern_error("warmup %ld must be less than half of steps %ld for the two_stage schedule", r->warmup, r->steps);
        return -1;
    }
    if (r->warmup >= r->steps && r->warmup > 0) { tern_error("warmup %ld must be less than steps %ld", r->warmup, r->steps); return -1; }
    if (r->weight_decay < 0) { tern_error("weight_decay must be >= 0 (got %g)", r->weight_decay); return -1; }
    if (!(r->beta1 >= 0 && r->beta1 < 1)) { tern_error("beta1 must be in [0, 1) (got %g)", r->beta1); return -1; }
    if (!(r->beta2 >= 0 && r->beta2 < 1)) { tern_error("beta2 must be in [0, 1) (got %g)", r->beta2); return -1; }
    if (!(r->adam_eps > 0)) { tern_error("adam_eps must be positive (got %g)", r->adam_eps); return -1; }
    if (r->clip < 0) { tern_error("clip must be >= 0 (0 = off) (got %g)", r->clip); return -1; }
    struct { const char *n; long v; } nn[] = {
        {"eval_interval", r->eval_interval}, {"eval_batches", r->eval_batches}, {"ckpt_interval", r->ckpt_interval},
        {"ckpt_keep", r->ckpt_keep}, {"to_ternary_ramp", r->to_ternary_ramp}, {"threads", r->threads}};
    for (size_t i = 0; i < sizeof nn / sizeof nn[0]; i++)
        if (nn[i].v < 0) { tern_error("%s must be >= 0 (got %ld)", nn[i].n, nn[i].v); return -1; }
    if (r->zero != 0 && r->zero != 1) { tern_error("zero must be 0 or 1 (the ZeRO stage; got %d)", r->zero); return -1; }
    if (!(r->bucket_mb > 0 && r->bucket_mb <= 4096)) { tern_error("bucket_mb must be in (0, 4096] MiB (got %g)", r->bucket_mb); return -1; }
    if (r->log_interval <= 0) { tern_error("log_interval must be positive (got %ld)", r->log_interval); return -1; }
    struct { const char *n; long v, max; } ll[] = {
        {"eval_batches", r->eval_batches, TERN_MAX_COUNT}, {"ckpt_keep", r->ckpt_keep, TERN_MAX_COUNT},
        {"threads", r->threads, TERN_MAX_THREADS}, {"eval_interval", r->eval_interval, TERN_MAX_STEPS},
        {"ckpt_interval", r->ckpt_interval, TERN_MAX_STEPS}, {"log_interval", r->log_interval, TERN_MAX_STEPS},
        {"to_ternary_ramp", r->to_ternary_ramp, TERN_MAX_STEPS}};
    for (size_t i = 0; i < sizeof ll / sizeof ll[0]; i++)
        if (ll[i].v > ll[i].max) { tern_error("%s %ld exceeds the limit %ld", ll[i].n, ll[i].v, ll[i].max); return -1; }
    if (r->max_memory < 0) { tern_error("max_memory must be >= 0 (got %ld)", r->max_memory); return -1; }
    if (r->to_ternary_ramp > 0 && !c->model.ternary) {
        tern_error("to_ternary_ramp %ld needs ternary = 1", r->to_ternary_ramp);
        return -1;
    }
    if (!(r->distill_alpha >= 0.0f && r->distill_alpha <= 1.0f)) {
        tern_error("distill_alpha must be in [0, 1] (got %g)", r->distill_alpha);
        return -1;
    }
    if (!(r->distill_temp > 0.0f) || !isfinite(r->distill_temp)) {
        tern_error("distill_temp must be positive (got %g)", r->distill_temp);
        return -1;
    }
    if (c->model.ternary) {
        char why[128];
        if (!tern_model_config_exportable(&c->model, why, sizeof why))
            fprintf(stderr, "warning: %s: this model cannot be exported to GGUF (BitLinear rows must be multiples of 32)\n", why);
    }
    return 0;
}

// ---- printing -------------------------------------------------------------------------------

static void format_value(const tern_config *c, const key_def *k, char *buf, size_t n) {
    const char *p = (const char *)c + k->off;
    switch (k->type) {
    case K_INT: case K_BOOL: snprintf(buf, n, "%d", *(const int *)p); break;
    case K_LONG: snprintf(buf, n, "%ld", *(const long *)p); break;
    case K_LONG_AUTO:
        if (*(const long *)p == -1) snprintf(buf, n, "auto");
        else snprintf(buf, n, "%ld", *(const long *)p);
        break;
    case K_FLOAT: snprintf(buf, n, "%.9g", *(const float *)p); break;
    case K_FLOAT_AUTO:
        if (*(const float *)p == 0) snprintf(buf, n, "auto");
        else snprintf(buf, n, "%.9g", *(const float *)p);
        break;
    case K_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case K_SCHED: snprintf(buf, n, "%s", tern_schedule_name(*(const int *)p)); break;
    case K_ACT: snprintf(buf, n, "%s", tern_ffn_act_name(*(const int *)p)); break;
    case K_ROPE: snprintf(buf, n, "%s", tern_rope_scaling_name(*(const int *)p)); break;
    case K_PREC: snprintf(buf, n, "%s", tern_precision_name(*(const int *)p)); break;
    case K_BYTES: {
        long v = *(const long *)p;
        int k = 0;
        while (k < 4 && v > 0 && v % 1024 == 0) { v /= 1024; k++; }
        if (*(const long *)p == 0) snprintf(buf, n, "auto");
        else snprintf(buf, n, "%ld%s", v, k ? (const char *[]){"", "K", "M", "G", "T"}[k] : "");
        break;
    }
    case K_STR: {
        // always quoted so that '#', spaces and empty strings survive a reload
        size_t o = 0;
        if (o < n) buf[o++] = '"';
        for (const char *s = p; *s && o + 3 < n; s++) {
            if (*s == '"' || *s == '\\') buf[o++] = '\\';
            buf[o++] = *s;
        }
        if (o < n) buf[o++] = '"';
        buf[o < n ? o : n - 1] = 0;
        break;
    }
    }
}

int tern_config_format(const tern_config *c, const char *key, char *buf, size_t n) {
    const key_def *k = find_key(key);
    if (!k) { unknown_key("", key); return -1; }
    format_value(c, k, buf, n);
    return 0;
}

char *tern_config_to_string(const tern_config *c) {
    size_t cap = 4096, len = 0;
    char *out = tern_xmalloc(cap);
    out[0] = 0;
    char val[2 * TERN_PATH_MAX + 4];
    for (int i = 0; i < NKEYS; i++) {
        if (i == 0) len += (size_t)snprintf(out + len, cap - len, "# model\n");
        if (KEYS[i].off >= offsetof(tern_config, run) && (i == 0 || KEYS[i - 1].off < offsetof(tern_config, run))) {
            if (cap - len < 16) { cap *= 2; out = realloc(out, cap); if (!out) tern_fatal("out of memory"); }
            len += (size_t)snprintf(out + len, cap - len, "# run\n");
        }
        format_value(c, &KEYS[i], val, sizeof val);
        size_t need = strlen(KEYS[i].name) + strlen(val) + 8;
        while (cap - len < need) { cap *= 2; out = realloc(out, cap); if (!out) tern_fatal("out of memory"); }
        len += (size_t)snprintf(out + len, cap - len, "%s = %s\n", KEYS[i].name, val);
    }
    return out;
}

void tern_config_print(const tern_config *c, FILE *f) {
    char *s = tern_config_to_string(c);
    fputs(s, f);
    free(s);
}
