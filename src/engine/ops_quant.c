// ops_quant.c — BitNet b1.58 quantizer ops with straight-through gradients, and the fused
// BitLinear. The integer rules live in quant.h (shared with export and the runtime).
#include "engine/ops.h"
#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"
#include "model/quant.h"
#include "util.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

// out = Wq * s_w (fake-quantized weight); d(out)/d(W) passes straight through
tern_tensor *tern_quant_weight(tern_graph *g, tern_tensor *w) {
    double t0 = tern_prof_begin(g);
    tern_tensor *out = tern_new(g, "quant_weight", w->ndim, w->shape);
    float s = tern_weight_scale(w->data, w->n);
    tern_weight_quantize(w->data, w->n, s, out->data);
    for (long i = 0; i < w->n; i++) out->data[i] *= s;
    tern_node *nd = tern_graph_record(g, TERN_OP_QUANT_WEIGHT, out, w, NULL, NULL);
    if (nd) nd->fp[0] = s;
    tern_prof_end(g, TERN_OP_QUANT_WEIGHT, t0);
    return out;
}

static void pass_through(tern_graph *g, tern_node *nd) {
    int fresh;
    float *dx = tern_grad_for(g, nd->src[0], &fresh);
    if (!dx) return;
    const float *d = nd->out->grad;
    long n = nd->out->n;
    #pragma omp parallel for schedule(static) if (n > 32768)
    for (long i = 0; i < n; i++) TERN_ACC(fresh, dx[i], d[i]);
}

void tern_quant_weight_backward(tern_graph *g, tern_node *nd) { pass_through(g, nd); }

// out = xq / s_x per row (fake-quantized activation); straight-through gradient
tern_tensor *tern_quant_act(tern_graph *g, tern_tensor *x) {
    double t0 = tern_prof_begin(g);
    tern_tensor *out = tern_new(g, "quant_act", x->ndim, x->shape);
    long N = tern_rows(x);
    int C = tern_cols(x);
    #pragma omp parallel for schedule(static) if (x->n > 32768)
    for (long r = 0; r < N; r++) {
        float *o = out->data + r * C;
        float s = tern_act_quantize_row(x->data + r * C, C, o);
        for (int c = 0; c < C; c++) o[c] /= s;
    }
    tern_graph_record(g, TERN_OP_QUANT_ACT, out, x, NULL, NULL);
    tern_prof_end(g, TERN_OP_QUANT_ACT, t0);
    return out;
}

void tern_quant_act_backward(tern_graph *g, tern_node *nd) { pass_through(g, nd); }

// ---- BitLinear ----------------------------------------------------------------------------------
// Per output node, ip[0] = precision (graph.h) of a ternary node, else FP32:
//   FP32:  saved[0] = x_eff [N,K]: xq/s_x (ternary), x_mix (ramp); NULL for fp (uses x)
//          saved[1] = w_eff [M,K]: Wq as {-1,0,1} (ternary; scaled by fp[0] = s_w in backward),
//                     w_mix (ramp)
//   MIXED (ternary only): saved[0] = xq [N, ip[1] = Kp] int8 (zero past K), saved[2] = s_x [N],
//          saved[1] = Wq^T [K, M] as a tern_tmat (scale s_w) for dx on the int8 kernels
// The outputs of one tern_bitlinear_n call share x_eff / xq (one activation quantization).
void tern_bitlinear_n(tern_graph *g, tern_tensor *x, tern_tensor *const *w, int n, float lambda, tern_tensor **out) {
    double t0 = tern_prof_begin(g);
    const long N = tern_rows(x);
    const int K = tern_cols(x), Kp = (K + 255) / 256 * 256;
    for (int j = 0; j < n; j++)
        if (w[j]->ndim != 2 || K != w[j]->shape[1]) {
            char a[128], b[128];
            tern_fatal("bitlinear: input %s does not match weight %s ([out, in])", tern_shape_str(x, a, sizeof a),
                       tern_shape_str(w[j], b, sizeof b));
        }
    // activation side, once for all outputs
    float *x_eff = NULL, *sx = NULL;
    int8_t *xi = NULL;
    const int mixed = lambda >= 1.0f && g->grad_enabled && g->precision == TERN_PREC_MIXED;
    if (lambda >= 1.0f) {
        // int8 rows with the kernel's padded stride (Kp), and x_eff = xq / s_x for dW from the same
        // pass while the row is in cache
        sx = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)N);
        xi = tern_arena_alloc(&g->arena, (size_t)N * Kp);
        if (g->grad_enabled && !mixed) x_eff = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)x->n);
        #pragma omp parallel for schedule(static) if (x->n > 32768)
        for (long r = 0; r < N; r++) {
            int8_t *q = xi + r * Kp;
            const float s = sx[r] = tern_act_quantize_row_i8(x->data + r * K, K, q);
            memset(q + K, 0, (size_t)(Kp - K));
            if (x_eff)
                for (int k = 0; k < K; k++) x_eff[r * K + k] = (float)q[k] / s;
        }
    } else if (lambda > 0.0f) { // ramp: x_mix = l * xq/s_x + (1-l) * x
        const float l = lambda, c = 1.0f - lambda;
        x_eff = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)x->n);
        #pragma omp parallel for schedule(static) if (x->n > 32768)
        for (long r = 0; r < N; r++) {
            float *q = x_eff + r * K;
            const float s = tern_act_quantize_row(x->data + r * K, K, q);
            for (int k = 0; k < K; k++) q[k] = l * (q[k] / s) + c * x->data[r * K + k];
        }
    }
    for (int j = 0; j < n; j++) {
        const int M = w[j]->shape[0];
        int out_shape[TERN_MAX_DIMS];
        memcpy(out_shape, x->shape, sizeof out_shape);
        out_shape[x->ndim - 1] = M;
        tern_tensor *o = out[j] = tern_new(g, "bitlinear", x->ndim, out_shape);
        float *w_eff = NULL, s_w = 1.0f;
        tern_tmat *wt_packed = NULL; // mixed: Wq^T for the backward
        if (lambda <= 0.0f) { // full precision
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, M, K, 1.0f, x->data, K, w[j]->data, K, 0.0f, o->data, M);
        } else {
            s_w = tern_weight_scale(w[j]->data, w[j]->n);
            if (lambda >= 1.0f) {
                // integer-exact on the int8 x ternary kernels (kernels.h): out = (int32 sum) *
                // (s_w / s_x), the very numbers the runtime computes. Wq goes into the kernel's
                // layout in the arena; precision=fp32's backward also keeps it as floats (w_eff),
                // precision=mixed's keeps Wq^T packed for dx on the same kernels.
                tern_tmat tm;
                void *tb = tern_arena_alloc(&g->arena, tern_tmat_bytes(M, K));
                if (mixed || !g->grad_enabled) {
                    tern_weight_pack_tmat(w[j]->data, M, K, s_w, 0, &tm, tb);
                    if (mixed) {
                        wt_packed = tern_arena_alloc(&g->arena, sizeof *wt_packed);
                        tern_weight_pack_tmat(w[j]->data, M, K, s_w, 1, wt_packed, tern_arena_alloc(&g->arena, tern_tmat_bytes(K, M)));
                    }
                } else {
                    w_eff = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)w[j]->n);
                    tern_weight_quantize(w[j]->data, w[j]->n, s_w, w_eff); // Wq (integers)
                    tern_tmat_pack_f32(&tm, tb, w_eff, M, K, s_w);
                }
                tern_tmat_mul_ld(&tm, xi, (size_t)Kp, sx, (int)N, o->data, TERN_KERNEL_AUTO);
            } else { // ramp: w_mix = l * Wq*s_w + (1-l) * W
                w_eff = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)w[j]->n);
                tern_weight_quantize(w[j]->data, w[j]->n, s_w, w_eff); // Wq (integers)
                const float l = lambda, c = 1.0f - lambda;
                for (long i = 0; i < w[j]->n; i++) w_eff[i] = l * (w_eff[i] * s_w) + c * w[j]->data[i];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, M, K, 1.0f, x_eff, K, w_eff, K, 0.0f, o->data, M);
                s_w = 1.0f; // w_eff already carries the scale
            }
        }
        tern_node *nd = tern_graph_record(g, TERN_OP_BITLINEAR, o, x, w[j], NULL);
        if (nd) {
            nd->saved[0] = x_eff; nd->saved[1] = w_eff; nd->fp[0] = s_w; nd->fp[1] = lambda;
            nd->ip[0] = mixed ? TERN_PREC_MIXED : TERN_PREC_FP32;
            if (mixed) { nd->saved[0] = xi; nd->saved[1] = wt_packed; nd->saved[2] = sx; nd->ip[1] = Kp; }
        }
    }
    tern_prof_end(g, TERN_OP_BITLINEAR, t0);
}

tern_tensor *tern_bitlinear(tern_graph *g, tern_tensor *x, tern_tensor *w, float lambda) {
    tern_tensor *out;
    tern_bitlinear_n(g, x, &w, 1, lambda, &out);
    return out;
}

// precision=mixed (ternary): dx += (dyq . Wq) * s_w / s_dy on the int8 kernels; dW += bf16 products
static void bitlinear_backward_mixed(tern_graph *g, tern_node *nd, float *dx, int fresh, float *dw) {
    const long N = tern_rows(nd->src[0]);
    const int K = nd->src[1]->shape[1], M = nd->src[1]->shape[0], Kp = nd->ip[1];
    const float *dy = nd->out->grad, *sx = nd->saved[2];
    const int8_t *xq = nd->saved[0];
    const tern_tmat *wt = nd->saved[1];
    if (dx) { // one scratch: dq [N, Mp] int8 | s_dy [N] | t [N, K]
        const int Mp = wt->cols_pad;
        const size_t qb = ((size_t)N * Mp + 63) / 64 * 64, sb = (sizeof(float) * (size_t)N + 63) / 64 * 64;
        char *buf = tern_graph_scratch(g, qb + sb + sizeof(float) * (size_t)N * K);
        int8_t *dq = (int8_t *)buf;
        float *sd = (float *)(buf + qb), *t = (float *)(buf + qb + sb);
        #pragma omp parallel for schedule(static) if (N * M > 32768)
        for (long r = 0; r < N; r++) {
            sd[r] = tern_grad_quantize_row_i8(dy + r * M, M, dq + r * Mp);
            memset(dq + r * Mp + M, 0, (size_t)(Mp - M));
        }
        // a fresh dx takes the kernel's output itself (every element stored)
        tern_tmat_mul_ld(wt, dq, (size_t)Mp, sd, (int)N, fresh ? dx : t, TERN_KERNEL_AUTO);
        if (!fresh) {
            #pragma omp parallel for schedule(static) if (N * K > 32768)
            for (long i = 0; i < N * K; i++) dx[i] += t[i];
        }
    }
    if (dw) {
        const tern_gemm_kind kind = tern_gemm_best();
        void *scratch = kind == TERN_GEMM_PLAIN ? NULL : tern_graph_scratch(g, tern_gemm_dw_scratch(M, K, (int)N));
        tern_gemm_dw_bf16(M, K, (int)N, dy, M, sx, xq, (size_t)Kp, dw, K, scratch, kind);
    }
}

void tern_bitlinear_backward(tern_graph *g, tern_node *nd) {
    if (nd->ip[0] == TERN_PREC_MIXED) {
        int fresh;
        float *dx = tern_grad_for(g, nd->src[0], &fresh);
        bitlinear_backward_mixed(g, nd, dx, fresh, tern_grad_of(g, nd->src[1]));
        return;
    }
    tern_tensor *x = nd->src[0], *w = nd->src[1];
    long N = tern_rows(x);
    int K = w->shape[1], M = w->shape[0];
    const float *dy = nd->out->grad;
    const float *x_eff = nd->saved[0] ? nd->saved[0] : x->data;
    const float *w_eff = nd->saved[1] ? nd->saved[1] : w->data;
    float s_w = nd->saved[1] ? nd->fp[0] : 1.0f;
    int fresh;
    float *dx = tern_grad_for(g, x, &fresh), *dw = tern_grad_of(g, w);
    if (dx) // dx += dy . (w_eff * s_w)   (fresh: beta 0, a store)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, K, M, s_w, dy, M, w_eff, K, fresh ? 0.0f : 1.0f, dx, K);
    if (dw) // dW += dy^T . x_eff
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, K, (int)N, 1.0f, dy, M, x_eff, K, 1.0f, dw, K);
}
