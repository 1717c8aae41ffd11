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

double tern_grad_norm(tern_adamw *o, const tern_params *p) {
    int nc = build_plan(o, p);
    const float *g = p->grad;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < nc; c++) {
        const float *x = g + o->chunk_off[c];
        double s = 0;
        for (int k = 0; k < o->chunk_len[c]; k++) s += (double)x[k] * (double)x[k];
        o->partial[c] = s;
    }
    double total = 0;
    for (int c = 0; c < nc; c++) total += o->partial[c];
    return sqrt(total);
}

int tern_grads_check(const tern_adamw *o, const tern_params *p) {
    for (int i = 0; i < p->n; i++) {
        if (o->frozen[i]) continue;
        const tern_tensor *t = p->t[i];
        const float *g = p->grad + t->offset;
        for (long k = 0; k < t->n; k++)
            if (!isfinite(g[k])) {
                tern_error("non-finite gradient in %s[%ld] (= %g)", t->name, k, (double)g[k]);
                return -1;
            }
    }
    return 0;
}

float tern_clip_grads(tern_adamw *o, tern_params *p, double norm, float clip) {
    if (!(clip > 0) || !(norm > clip)) return 1.0f;
    float scale = (float)((double)clip / norm);
    for (int i = 0; i < p->n; i++) {
        if (o->frozen[i]) continue;
        float *g = p->grad + p->t[i]->offset;
        long n = p->t[i]->n;
        #pragma omp parallel for schedule(static) if (n > 65536)
        for (long k = 0; k < n; k++) g[k] *= scale;
    }
    return scale;
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
    if (o->n != p->n) tern_fatal("tern_adamw: initialised for %d parameters, params has %d", o->n, p->n);
    if (t < 1) tern_fatal("tern_adamw_update: step t must be >= 1 (got %ld)", t);
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float bc1 = (float)(1.0 - pow((double)b1, (double)t));
    const float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, (double)t));
    const float step_size = lr / bc1;
    #pragma omp parallel
    for (int i = 0; i < p->n; i++) {
        if (o->frozen[i]) continue;
        const tern_tensor *tt = p->t[i];
        const long off = tt->offset, n = tt->n, nb = (n + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
        const float decay = tt->no_decay ? 1.0f : 1.0f - lr * wd;
        #pragma omp for schedule(static) nowait
        for (long b = 0; b < nb; b++) {
            long s = b * ADAMW_BLOCK, len = n - s < ADAMW_BLOCK ? n - s : ADAMW_BLOCK;
            adamw_range(p->data + off + s, p->grad + off + s, p->m + off + s, p->v + off + s, len, b1, b2, eps,
                        decay, step_size, bc2_sqrt);
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
