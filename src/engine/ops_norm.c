// ops_norm.c — RMSNorm with weight, and rotary position embedding (NEOX pairing).
#include "engine/ops.h"
#include "model/rope.h"
#include "kernels/rowops.h"
#include "util.h"
#include <math.h>
#include <omp.h>
#include <string.h>

// ---- RMSNorm: out = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps), per row ----------------
tern_tensor *tern_rmsnorm(tern_graph *g, tern_tensor *x, tern_tensor *w, float eps) {
    double t0 = tern_prof_begin(g);
    int C = tern_cols(x);
    long N = tern_rows(x);
    if (w->n != C) {
        char a[128], b[128];
        tern_fatal("rmsnorm: weight %s does not match rows of %s", tern_shape_str(w, a, sizeof a), tern_shape_str(x, b, sizeof b));
    }
    tern_tensor *out = tern_new(g, "rmsnorm", x->ndim, x->shape);
    float *rstd = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)N); // (N,)
    const float *xd = x->data, *wd = w->data;
    float *o = out->data;
    #pragma omp parallel for schedule(static) if (N * C > 32768)
    for (long r = 0; r < N; r++) {
        const float *xr = xd + r * C;
        float rs = 1.0f / sqrtf(tern_sumsq_lanes(xr, C) / (float)C + eps);
        rstd[r] = rs;
        float *orow = o + r * C;
        for (int c = 0; c < C; c++) orow[c] = xr[c] * rs * wd[c];
    }
    tern_node *nd = tern_graph_record(g, TERN_OP_RMSNORM, out, x, w, NULL);
    if (nd) { nd->saved[0] = rstd; nd->fp[0] = eps; }
    tern_prof_end(g, TERN_OP_RMSNORM, t0);
    return out;
}

void tern_rmsnorm_backward(tern_graph *g, tern_node *nd) {
    tern_tensor *x = nd->src[0], *w = nd->src[1];
    int C = tern_cols(x);
    long N = tern_rows(x);
    const float *rstd = nd->saved[0], *dy = nd->out->grad, *xd = x->data, *wd = w->data;
    int fresh;
    float *dx = tern_grad_for(g, x, &fresh), *dw = tern_grad_of(g, w);
    int nth = omp_get_max_threads();
    // per-thread partial dw (deterministic reduction in thread order afterwards)
    float *part = dw ? tern_arena_calloc(&g->arena, sizeof(float) * (size_t)nth * C) : NULL;
    int used = 1;
    #pragma omp parallel if (N * C > 32768)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        #pragma omp single
        used = nt;
        long r0 = N * t / nt, r1 = N * (t + 1) / nt;
        float *pw = part ? part + (size_t)t * C : NULL;
        for (long r = r0; r < r1; r++) {
            const float *xr = xd + r * C, *dyr = dy + r * C;
            float rs = rstd[r];
            if (dx) {
                float k = rs * rs * rs * tern_dot3_lanes(dyr, wd, xr, C) / (float)C;
                float *dxr = dx + r * C;
                for (int c = 0; c < C; c++) TERN_ACC(fresh, dxr[c], rs * dyr[c] * wd[c] - k * xr[c]);
            }
            if (pw)
                for (int c = 0; c < C; c++) pw[c] += dyr[c] * xr[c] * rs;
        }
    }
    if (dw)
        for (int t = 0; t < used; t++)
            for (int c = 0; c < C; c++) dw[c] += part[(size_t)t * C + c];
}

// ---- RoPE -------------------------------------------------------------------------------------
// x[B*T, H*D]; the table cs[T][D/2][2] (cos, sin) is computed once per call and saved.
tern_tensor *tern_rope(tern_graph *g, tern_tensor *x, int B, int T, int H, int D, int pos0, float theta) {
    return tern_rope_ex(g, x, B, T, H, D, pos0, theta, NULL);
}

tern_tensor *tern_rope_ex(tern_graph *g, tern_tensor *x, int B, int T, int H, int D, int pos0, float theta, const float *freq_div) {
    double t0 = tern_prof_begin(g);
    if (D % 2 || tern_rows(x) != (long)B * T || tern_cols(x) != H * D) {
        char a[128];
        tern_fatal("rope: %s does not match B=%d T=%d H=%d D=%d (D must be even)", tern_shape_str(x, a, sizeof a), B, T, H, D);
    }
    const float *cs = tern_rope_table(g, T, D, pos0, theta, freq_div); // (T, D/2, 2)
    tern_tensor *out = tern_new(g, "rope", x->ndim, x->shape);
    long rows = (long)B * T;
    #pragma omp parallel for schedule(static) if (x->n > 32768)
    for (long r = 0; r < rows; r++) {
        const float *c = cs + (size_t)(r % T) * D;
        memcpy(out->data + r * H * D, x->data + r * H * D, sizeof(float) * (size_t)H * D);
        for (int h = 0; h < H; h++) tern_rope_rotate(out->data + r * H * D + h * D, D, c, 1.0f);
    }
    tern_node *nd = tern_graph_record(g, TERN_OP_ROPE, out, x, NULL, NULL);
    if (nd) { nd->saved[0] = (void *)cs; nd->ip[0] = B; nd->ip[1] = T; nd->ip[2] = H; nd->ip[3] = D; }
    tern_prof_end(g, TERN_OP_ROPE, t0);
    return out;
}

void tern_rope_backward(tern_graph *g, tern_node *nd) {
    int fresh;
    float *dx = tern_grad_for(g, nd->src[0], &fresh);
    if (!dx) return;
    int B = nd->ip[0], T = nd->ip[1], H = nd->ip[2], D = nd->ip[3];
    const float *cs = nd->saved[0], *dy = nd->out->grad;
    long rows = (long)B * T;
    #pragma omp parallel if (nd->out->n > 32768)
    {
        float tmp[D];
        #pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            const float *c = cs + (size_t)(r % T) * D;
            for (int h = 0; h < H; h++) {
                memcpy(tmp, dy + r * H * D + h * D, sizeof(float) * (size_t)D);
                tern_rope_rotate(tmp, D, c, -1.0f); // the rotation's transpose is its inverse
                float *d = dx + r * H * D + h * D;
                for (int i = 0; i < D; i++) TERN_ACC(fresh, d[i], tmp[i]);
            }
        }
    }
}
