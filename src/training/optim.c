// optim.c — AdamW, deterministic global grad norm, clipping (see optim.h).
#include "training/optim.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tern_adamw_init(tern_adamw *o, const tern_params *p, float beta1, float beta2, float eps) {
    memset(o, 0, sizeof *o);
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->n = p->n;
    o->frozen = tern_xcalloc((size_t)(p->n ? p->n : 1), 1);
    long nch = 0;
    for (int i = 0; i < p->n; i++) nch += (p->t[i]->n + TERN_NORM_CHUNK - 1) / TERN_NORM_CHUNK;
    o->nchunks = (int)nch;
    o->chunk_off = tern_xmalloc(sizeof(long) * (size_t)(nch ? nch : 1));
    o->chunk_len = tern_xmalloc(sizeof(int) * (size_t)(nch ? nch : 1));
    o->partial = tern_xmalloc(sizeof(double) * (size_t)(nch ? nch : 1));
}

void tern_adamw_init_run(tern_adamw *o, const tern_params *p, const tern_run_config *run) {
    tern_adamw_init(o, p, run->beta1, run->beta2, run->adam_eps);
    if (run->freeze_embeddings && tern_adamw_freeze(o, p, "token_embd.weight") != 0)
        tern_fatal("freeze_embeddings: %s", tern_last_error());
}

int tern_adamw_freeze(tern_adamw *o, const tern_params *p, const char *name) {
    for (int i = 0; i < p->n && i < o->n; i++)
        if (strcmp(p->t[i]->name, name) == 0) { o->frozen[i] = 1; return 0; }
    tern_error("cannot freeze '%s': no such parameter", name);
    return -1;
}

void tern_adamw_free(tern_adamw *o) {
    free(o->frozen);
    free(o->chunk_off);
    free(o->chunk_len);
    free(o->partial);
    memset(o, 0, sizeof *o);
}

// The chunk plan depends on which tensors are frozen, so it is rebuilt on every call (cheap).
static int build_plan(tern_adamw *o, const tern_params *p) {
    if (o->n != p->n) tern_fatal("tern_adamw: initialised for %d parameters, params has %d", o->n, p->n);
    int c = 0;
    for (int i = 0; i < p->n; i++) {
        if (o->frozen[i]) continue;
        const tern_tensor *t = p->t[i];
        for (long s = 0; s < t->n; s += TERN_NORM_CHUNK) {
            o->chunk_off[c] = t->offset + s;
            o->chunk_len[c] = (int)(t->n - s < TERN_NORM_CHUNK ? t->n - s : TERN_NORM_CHUNK);
            c++;
        }
    }
    return c;
}

// Sum of squares of one chunk, in order, in double (shared by the full and the sliced norm).
static double chunk_sumsq(const float *x, int n) {
    double s = 0;
    for (int k = 0; k < n; k++) s += (double)x[k] * (double)x[k];
    return s;
}

double tern_grad_norm(tern_adamw *o, const tern_params *p) {
    int nc = build_plan(o, p);
    const float *g = p->grad;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < nc; c++) o->partial[c] = chunk_sumsq(g + o->chunk_off[c], o->chunk_len[c]);
    double total = 0;
    for (int c = 0; c < nc; c++) total += o->partial[c];
    return sqrt(total);
}

int tern_grad_norm_partials(tern_adamw *o, const tern_params *p, const float *g, long lo, long hi, double *out) {
    int nc = build_plan(o, p), c0 = 0;
    while (c0 < nc && o->chunk_off[c0] < lo) c0++;
    int c1 = c0;
    while (c1 < nc && o->chunk_off[c1] < hi) c1++;
    #pragma omp parallel for schedule(static)
    for (int c = c0; c < c1; c++) out[c - c0] = chunk_sumsq(g + (o->chunk_off[c] - lo), o->chunk_len[c]);
    return c1 - c0;
}

int tern_grads_check(const tern_adamw *o, const tern_params *p) { return tern_grads_check_range(o, p, p->grad, 0, p->total); }

// the part [*a, *b) of tensor t that lies in [lo, hi); 0 if none
static int clamp_tensor(const tern_tensor *t, long lo, long hi, long *a, long *b) {
    *a = t->offset > lo ? t->offset : lo;
    *b = t->offset + t->n < hi ? t->offset + t->n : hi;
    return *a < *b;
}

int tern_grads_check_range(const tern_adamw *o, const tern_params *p, const float *g, long lo, long hi) {
    for (int i = 0; i < p->n; i++) {
        long a, b;
        if (o->frozen[i] || !clamp_tensor(p->t[i], lo, hi, &a, &b)) continue;
        for (long k = a; k < b; k++)
            if (!isfinite(g[k - lo])) {
                tern_error("non-finite gradient in %s[%ld] (= %g)", p->t[i]->name, k - p->t[i]->offset, (double)g[k - lo]);
                return -1;
            }
    }
    return 0;
}

float tern_clip_grads(tern_adamw *o, tern_params *p, double norm, float clip) {
    if (!(clip > 0) || !(norm > clip)) return 1.0f;
    float scale = (float)((double)clip / norm);
    tern_clip_range(o, p, p->grad, 0, p->total, scale);
    return scale;
}

void tern_clip_range(const tern_adamw *o, const tern_params *p, float *g, long lo, long hi, float scale) {
    for (int i = 0; i < p->n; i++) {
        long a, b;
        if (o->frozen[i] || !clamp_tensor(p->t[i], lo, hi, &a, &b)) continue;
        float *x = g + (a - lo);
        long n = b - a;
        #pragma omp parallel for schedule(static) if (n > 65536)
        for (long k = 0; k < n; k++) x[k] *= scale;
    }
}

// The element loop on a contiguous range (memory-bound: 7 floats of traffic per element).
static void adamw_range(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, long n,
                        float b1, float b2, float eps, float decay, float step_size, float bc2_sqrt) {
    for (long k = 0; k < n; k++) {
        float gk = g[k];
        float mk = b1 * m[k] + (1.0f - b1) * gk;
        float vk = b2 * v[k] + (1.0f - b2) * gk * gk;
        m[k] = mk;
        v[k] = vk;
        float denom = sqrtf(vk) / bc2_sqrt + eps;
        w[k] = w[k] * decay - step_size * mk / denom;
    }
}

#define ADAMW_BLOCK 4096L

void tern_adamw_update(tern_adamw *o, tern_params *p, long t, float lr, float wd) {
    tern_adamw_update_range(o, p, p->grad, p->m, p->v, 0, p->total, t, lr, wd);
}

void tern_adamw_update_range(tern_adamw *o, tern_params *p, const float *g, float *m, float *v, long lo, long hi,
                             long t, float lr, float wd) {
    if (o->n != p->n) tern_fatal("tern_adamw: initialised for %d parameters, params has %d", o->n, p->n);
    if (t < 1) tern_fatal("tern_adamw_update: step t must be >= 1 (got %ld)", t);
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float bc1 = (float)(1.0 - pow((double)b1, (double)t));
    const float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, (double)t));
    const float step_size = lr / bc1;
    #pragma omp parallel
    for (int i = 0; i < p->n; i++) {
        const tern_tensor *tt = p->t[i];
        long a, b;
        if (o->frozen[i] || !clamp_tensor(tt, lo, hi, &a, &b)) continue;
        const long n = b - a, nb = (n + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
        const float decay = tt->no_decay ? 1.0f : 1.0f - lr * wd;
        #pragma omp for schedule(static) nowait
        for (long k = 0; k < nb; k++) {
            long s = a + k * ADAMW_BLOCK, len = b - s < ADAMW_BLOCK ? b - s : ADAMW_BLOCK;
            adamw_range(p->data + s, g + (s - lo), m + (s - lo), v + (s - lo), len, b1, b2, eps, decay, step_size,
                        bc2_sqrt);
        }
    }
}

int tern_optim_step(tern_adamw *o, tern_params *p, long t, float lr, float wd, float clip, double *gnorm) {
    double norm = tern_grad_norm(o, p);
    if (gnorm) *gnorm = norm;
    if (!isfinite(norm)) {
        if (tern_grads_check(o, p) == 0) tern_error("gradient norm overflowed (%g) although every gradient is finite", norm);
        return 1;
    }
    tern_clip_grads(o, p, norm, clip);
    tern_adamw_update(o, p, t, lr, wd);
    return 0;
}
