// ops_basic.c — matmul (OpenBLAS sgemm), elementwise ops, reductions, embedding, SiLU, SwiGLU.
// Each op: forward here (outputs first), backward accumulates (+=) into its inputs' gradients.
#include "engine/ops.h"
#include "kernels/gemm_bf16.h"
#include "kernels/vmath.h"
#include "util.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define PAR_MIN 32768 // below this many elements, loops stay single-threaded

static void check_2d(const char *op, const tern_tensor *t) {
    if (t->ndim != 2) {
        char b[128];
        tern_fatal("%s: %s must be 2-D", op, tern_shape_str(t, b, sizeof b));
    }
}

static void check_same(const char *op, const tern_tensor *a, const tern_tensor *b) {
    if (!tern_same_shape(a, b)) {
        char x[128], y[128];
        tern_fatal("%s: shapes differ: %s vs %s", op, tern_shape_str(a, x, sizeof x), tern_shape_str(b, y, sizeof y));
    }
}

static tern_tensor *new_like(tern_graph *g, const char *name, const tern_tensor *a) {
    return tern_new(g, name, a->ndim, a->shape);
}

// ---- matmul ----------------------------------------------------------------------------------
// precision=mixed runs the head's form (A B^T: out[tokens, vocab] = h[tokens, dim] . W[vocab, dim]^T)
// in bf16 with fp32 sums, forward and both gradients (the trainer evaluates with precision fp32)
static int mixed_head(int precision, int ta, int tb) { return precision == TERN_PREC_MIXED && !ta && tb; }

// C[M,N] (+)= op(A) op(B) with row-major storage; lda/ldb are the stored row lengths.
static void sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

tern_tensor *tern_matmul(tern_graph *g, tern_tensor *a, tern_tensor *b, int trans_a, int trans_b) {
    double t0 = tern_prof_begin(g);
    check_2d("matmul", a);
    check_2d("matmul", b);
    int M = trans_a ? a->shape[1] : a->shape[0], K = trans_a ? a->shape[0] : a->shape[1];
    int Kb = trans_b ? b->shape[1] : b->shape[0], N = trans_b ? b->shape[0] : b->shape[1];
    if (K != Kb) {
        char x[128], y[128];
        tern_fatal("matmul: inner dimensions differ: %s%s vs %s%s", tern_shape_str(a, x, sizeof x), trans_a ? "^T" : "",
                   tern_shape_str(b, y, sizeof y), trans_b ? "^T" : "");
    }
    tern_tensor *out = tern_new_2d(g, "matmul", M, N);
    if (mixed_head(g->precision, trans_a, trans_b)) {
        // precision=mixed, the head's form out[M,N] = A[M,K] B[N,K]^T: bf16 inputs, fp32 sums
        // (kernels/gemm_bf16.h)
        const tern_gemm_kind kind = tern_gemm_best();
        void *scr = kind == TERN_GEMM_PLAIN ? NULL : tern_graph_scratch(g, tern_gemm_bf16_scratch(M, N, K));
        tern_gemm_bf16(M, N, K, a->data, a->shape[1], 1, b->data, 1, b->shape[1], out->data, N, 0, scr, kind);
    } else
        sgemm(trans_a, trans_b, M, N, K, 1.0f, a->data, a->shape[1], b->data, b->shape[1], 0.0f, out->data, N);
    tern_node *nd = tern_graph_record(g, TERN_OP_MATMUL, out, a, b, NULL);
    if (nd) { nd->ip[0] = trans_a; nd->ip[1] = trans_b; nd->ip[2] = mixed_head(g->precision, trans_a, trans_b) ? TERN_PREC_MIXED : TERN_PREC_FP32; }
    tern_prof_end(g, TERN_OP_MATMUL, t0);
    return out;
}

void tern_matmul_backward(tern_graph *g, tern_node *nd) {
    tern_tensor *a = nd->src[0], *b = nd->src[1];
    int ta = nd->ip[0], tb = nd->ip[1];
    int M = nd->out->shape[0], N = nd->out->shape[1], K = ta ? a->shape[0] : a->shape[1];
    const float *dC = nd->out->grad;
    // fresh dA: the product stores (beta 0); a == b: the gradient exists (zeroed) and both add
    int fa = 0;
    float *dA = a == b ? tern_grad_of(g, a) : tern_grad_for(g, a, &fa), *dB = tern_grad_of(g, b);
    const float ba = fa ? 0.0f : 1.0f;
    if (nd->ip[2] == TERN_PREC_MIXED) {
        // the head's gradients in bf16 with fp32 sums (kernels/gemm_bf16.h), the weight side first
        // (a == b: its gradient buffer was zeroed, so dA then adds):
        //   dB[N,K] += dC^T[N,M] . A[M,K],   dA[M,K] (+)= dC[M,N] . B[N,K]
        const tern_gemm_kind kind = tern_gemm_best();
        if (dB) {
            void *scr = kind == TERN_GEMM_PLAIN ? NULL : tern_graph_scratch(g, tern_gemm_bf16_scratch(N, K, M));
            tern_gemm_bf16(N, K, M, dC, 1, N, a->data, a->shape[1], 1, dB, K, 1, scr, kind);
        }
        if (dA) {
            void *scr = kind == TERN_GEMM_PLAIN ? NULL : tern_graph_scratch(g, tern_gemm_bf16_scratch(M, K, N));
            tern_gemm_bf16(M, K, N, dC, N, 1, b->data, b->shape[1], 1, dA, K, !fa, scr, kind);
        }
        return;
    }
    if (dA) {
        if (!ta) sgemm(0, !tb, M, K, N, 1.0f, dC, N, b->data, b->shape[1], ba, dA, K);   // dA += dC op(B)^T
        else sgemm(tb, 1, K, M, N, 1.0f, b->data, b->shape[1], dC, N, ba, dA, M);       // dA += op(B) dC^T
    }
    if (dB) {
        if (!tb) sgemm(!ta, 0, K, N, M, 1.0f, a->data, a->shape[1], dC, N, 1.0f, dB, N);   // dB += op(A)^T dC
        else sgemm(1, ta, N, K, M, 1.0f, dC, N, a->data, a->shape[1], 1.0f, dB, K);       // dB += dC^T op(A)
    }
}

// ---- elementwise -----------------------------------------------------------------------------
tern_tensor *tern_add(tern_graph *g, tern_tensor *a, tern_tensor *b) {
    double t0 = tern_prof_begin(g);
    check_same("add", a, b);
    tern_tensor *out = new_like(g, "add", a);
    const float *x = a->data, *y = b->data;
    float *o = out->data;
    long n = a->n;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) o[i] = x[i] + y[i];
    tern_graph_record(g, TERN_OP_ADD, out, a, b, NULL);
    tern_prof_end(g, TERN_OP_ADD, t0);
    return out;
}

// dst (+)= s * src (fresh: store)
static void accumulate(float *dst, int fresh, const float *src, float s, long n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) TERN_ACC(fresh, dst[i], s * src[i]);
}

// (a and b may be one tensor: the second tern_grad_for then finds the first's values, fresh = 0)
void tern_add_backward(tern_graph *g, tern_node *nd) {
    int fa, fb;
    float *da = tern_grad_for(g, nd->src[0], &fa);
    if (da) accumulate(da, fa, nd->out->grad, 1.0f, nd->out->n);
    float *db = tern_grad_for(g, nd->src[1], &fb);
    if (db) accumulate(db, fb, nd->out->grad, 1.0f, nd->out->n);
}

tern_tensor *tern_mul(tern_graph *g, tern_tensor *a, tern_tensor *b) {
    double t0 = tern_prof_begin(g);
    check_same("mul", a, b);
    tern_tensor *out = new_like(g, "mul", a);
    const float *x = a->data, *y = b->data;
    float *o = out->data;
    long n = a->n;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) o[i] = x[i] * y[i];
    tern_graph_record(g, TERN_OP_MUL, out, a, b, NULL);
    tern_prof_end(g, TERN_OP_MUL, t0);
    return out;
}

void tern_mul_backward(tern_graph *g, tern_node *nd) {
    tern_tensor *a = nd->src[0], *b = nd->src[1];
    const float *d = nd->out->grad, *x = a->data, *y = b->data;
    long n = a->n;
    // a and b may be the same tensor: both updates then land in the same buffer, in order (the
    // second tern_grad_for returns fresh = 0)
    int fa, fb;
    float *da = tern_grad_for(g, a, &fa);
    if (da) {
        #pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) TERN_ACC(fa, da[i], d[i] * y[i]);
    }
    float *db = tern_grad_for(g, b, &fb);
    if (db) {
        #pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) TERN_ACC(fb, db[i], d[i] * x[i]);
    }
}

tern_tensor *tern_scale(tern_graph *g, tern_tensor *a, float s) {
    double t0 = tern_prof_begin(g);
    tern_tensor *out = new_like(g, "scale", a);
    const float *x = a->data;
    float *o = out->data;
    long n = a->n;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) o[i] = s * x[i];
    tern_node *nd = tern_graph_record(g, TERN_OP_SCALE, out, a, NULL, NULL);
    if (nd) nd->fp[0] = s;
    tern_prof_end(g, TERN_OP_SCALE, t0);
    return out;
}

void tern_scale_backward(tern_graph *g, tern_node *nd) {
    int fresh;
    float *da = tern_grad_for(g, nd->src[0], &fresh);
    if (da) accumulate(da, fresh, nd->out->grad, nd->fp[0], nd->out->n);
}

// ---- reductions (deterministic: fixed chunks summed in double, in order) -----------------------
#define SUM_CHUNK 16384
static double sum_det(const float *x, long n) {
    long nc = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double total = 0.0;
    for (long c = 0; c < nc; c++) {
        long lo = c * SUM_CHUNK, hi = lo + SUM_CHUNK < n ? lo + SUM_CHUNK : n;
        double acc = 0.0;
        for (long i = lo; i < hi; i++) acc += x[i];
        total += acc;
    }
    return total;
}

static tern_tensor *reduce(tern_graph *g, tern_tensor *a, tern_op op) {
    double t0 = tern_prof_begin(g);
    int one = 1;
    tern_tensor *out = tern_new(g, tern_op_name(op), 1, &one);
    double s = sum_det(a->data, a->n);
    out->data[0] = (float)(op == TERN_OP_MEAN ? s / (double)a->n : s);
    tern_graph_record(g, op, out, a, NULL, NULL);
    tern_prof_end(g, op, t0);
    return out;
}

tern_tensor *tern_sum(tern_graph *g, tern_tensor *a) { return reduce(g, a, TERN_OP_SUM); }
tern_tensor *tern_mean(tern_graph *g, tern_tensor *a) { return reduce(g, a, TERN_OP_MEAN); }

static void reduce_backward(tern_graph *g, tern_node *nd, float s) {
    float *da = tern_grad_of(g, nd->src[0]);
    if (!da) return;
    float d = nd->out->grad[0] * s;
    long n = nd->src[0]->n;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) da[i] += d;
}

void tern_sum_backward(tern_graph *g, tern_node *nd) { reduce_backward(g, nd, 1.0f); }
void tern_mean_backward(tern_graph *g, tern_node *nd) { reduce_backward(g, nd, 1.0f / (float)nd->src[0]->n); }

// ---- embedding -------------------------------------------------------------------------------
tern_tensor *tern_embedding(tern_graph *g, tern_tensor *w, const int *ids, int n) {
    double t0 = tern_prof_begin(g);
    check_2d("embedding", w);
    int V = w->shape[0], C = w->shape[1];
    int *idc = tern_arena_alloc(&g->arena, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) tern_fatal("embedding: token id %d at position %d is outside [0, %d)", ids[i], i, V);
        idc[i] = ids[i];
    }
    tern_tensor *out = tern_new_2d(g, "embedding", n, C);
    #pragma omp parallel for schedule(static) if ((long)n * C > PAR_MIN)
    for (int i = 0; i < n; i++) memcpy(out->data + (size_t)i * C, w->data + (size_t)idc[i] * C, sizeof(float) * (size_t)C);
    tern_node *nd = tern_graph_record(g, TERN_OP_EMBEDDING, out, w, NULL, NULL);
    if (nd) nd->idx = idc;
    tern_prof_end(g, TERN_OP_EMBEDDING, t0);
    return out;
}

void tern_embedding_backward(tern_graph *g, tern_node *nd) {
    float *dw = tern_grad_of(g, nd->src[0]);
    if (!dw) return;
    int n = nd->out->shape[0], C = nd->out->shape[1];
    const float *d = nd->out->grad;
    // threads own disjoint column ranges, so repeated ids never race
    #pragma omp parallel if ((long)n * C > PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int c0 = (int)((long)C * t / nt), c1 = (int)((long)C * (t + 1) / nt);
        for (int i = 0; i < n; i++) {
            float *row = dw + (size_t)nd->idx[i] * C;
            const float *src = d + (size_t)i * C;
            for (int c = c0; c < c1; c++) row[c] += src[c];
        }
    }
}

// ---- SiLU and SwiGLU -------------------------------------------------------------------------
// sigmoid(x) comes from tern_vsigmoid (vmath.h) in chunks of SIG_CHUNK on the stack; the chunk
// loop is the parallel loop, so results do not depend on the thread count.
#define SIG_CHUNK 1024
#define FOR_CHUNKS(n)                                                                   \
    _Pragma("omp parallel for schedule(static) if ((n) > PAR_MIN)")                     \
    for (long i0 = 0; i0 < (n); i0 += SIG_CHUNK)

// s[0..c) = sigmoid(a[i0..i0+c)) for the chunk at i0 of n values; returns its length c
static long sigmoid_chunk(const float *a, long n, long i0, float *s) {
    const long c = n - i0 < SIG_CHUNK ? n - i0 : SIG_CHUNK;
    tern_vsigmoid(a + i0, s, c);
    return c;
}

tern_tensor *tern_silu(tern_graph *g, tern_tensor *x) {
    double t0 = tern_prof_begin(g);
    tern_tensor *out = new_like(g, "silu", x);
    const long n = x->n;
    const float *a = x->data;
    float *o = out->data;
    FOR_CHUNKS(n) {
        float s[SIG_CHUNK];
        const long c = sigmoid_chunk(a, n, i0, s);
        for (long i = 0; i < c; i++) o[i0 + i] = a[i0 + i] * s[i];
    }
    tern_graph_record(g, TERN_OP_SILU, out, x, NULL, NULL);
    tern_prof_end(g, TERN_OP_SILU, t0);
    return out;
}

void tern_silu_backward(tern_graph *g, tern_node *nd) {
    int fresh;
    float *dx = tern_grad_for(g, nd->src[0], &fresh);
    if (!dx) return;
    const float *a = nd->src[0]->data, *d = nd->out->grad;
    const long n = nd->out->n;
    FOR_CHUNKS(n) {
        float s[SIG_CHUNK];
        const long c = sigmoid_chunk(a, n, i0, s);
        for (long i = 0; i < c; i++) {
            const long k = i0 + i;
            TERN_ACC(fresh, dx[k], d[k] * s[i] * (1.0f + a[k] * (1.0f - s[i])));
        }
    }
}

tern_tensor *tern_swiglu(tern_graph *g, tern_tensor *gate, tern_tensor *up) {
    double t0 = tern_prof_begin(g);
    check_same("swiglu", gate, up);
    tern_tensor *out = new_like(g, "swiglu", gate);
    const long n = gate->n;
    const float *a = gate->data, *u = up->data;
    float *o = out->data;
    FOR_CHUNKS(n) {
        float s[SIG_CHUNK];
        const long c = sigmoid_chunk(a, n, i0, s);
        for (long i = 0; i < c; i++) o[i0 + i] = a[i0 + i] * s[i] * u[i0 + i];
    }
    tern_graph_record(g, TERN_OP_SWIGLU, out, gate, up, NULL);
    tern_prof_end(g, TERN_OP_SWIGLU, t0);
    return out;
}

void tern_swiglu_backward(tern_graph *g, tern_node *nd) {
    tern_tensor *gate = nd->src[0], *up = nd->src[1];
    // gate == up: one buffer, dg stored first (fresh), du added to it (fresh = 0)
    int fg, fu;
    float *dg = tern_grad_for(g, gate, &fg), *du = tern_grad_for(g, up, &fu);
    const float *a = gate->data, *u = up->data, *d = nd->out->grad;
    const long n = nd->out->n;
    FOR_CHUNKS(n) {
        float s[SIG_CHUNK];
        const long c = sigmoid_chunk(a, n, i0, s);
        for (long i = 0; i < c; i++) {
            const long k = i0 + i;
            if (dg) TERN_ACC(fg, dg[k], d[k] * u[k] * s[i] * (1.0f + a[k] * (1.0f - s[i])));
            if (du) TERN_ACC(fu, du[k], d[k] * (a[k] * s[i]));
        }
    }
}

// ---- squared ReLU, plain and gated (BitNet b1.58 2B4T's FFN) -----------------------------------
// d/dx max(x,0)^2 = 2 max(x,0): continuous, so finite differences apply everywhere.
tern_tensor *tern_relu2(tern_graph *g, tern_tensor *x) {
    double t0 = tern_prof_begin(g);
    tern_tensor *out = new_like(g, "relu2", x);
    const long n = x->n;
    const float *a = x->data;
    float *o = out->data;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float r = a[i] > 0.0f ? a[i] : 0.0f;
        o[i] = r * r;
    }
    tern_graph_record(g, TERN_OP_RELU2, out, x, NULL, NULL);
    tern_prof_end(g, TERN_OP_RELU2, t0);
    return out;
}

void tern_relu2_backward(tern_graph *g, tern_node *nd) {
    int fresh;
    float *dx = tern_grad_for(g, nd->src[0], &fresh);
    if (!dx) return;
    const float *a = nd->src[0]->data, *d = nd->out->grad;
    const long n = nd->out->n;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) TERN_ACC(fresh, dx[i], a[i] > 0.0f ? d[i] * 2.0f * a[i] : 0.0f);
}

tern_tensor *tern_relu2_glu(tern_graph *g, tern_tensor *gate, tern_tensor *up) {
    double t0 = tern_prof_begin(g);
    check_same("relu2_glu", gate, up);
    tern_tensor *out = new_like(g, "relu2_glu", gate);
    const long n = gate->n;
    const float *a = gate->data, *u = up->data;
    float *o = out->data;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float r = a[i] > 0.0f ? a[i] : 0.0f;
        o[i] = r * r * u[i];
    }
    tern_graph_record(g, TERN_OP_RELU2_GLU, out, gate, up, NULL);
    tern_prof_end(g, TERN_OP_RELU2_GLU, t0);
    return out;
}

void tern_relu2_glu_backward(tern_graph *g, tern_node *nd) {
    tern_tensor *gate = nd->src[0], *up = nd->src[1];
    int fg, fu;   // gate == up: as in tern_swiglu_backward
    float *dg = tern_grad_for(g, gate, &fg), *du = tern_grad_for(g, up, &fu);
    const float *a = gate->data, *u = up->data, *d = nd->out->grad;
    const long n = nd->out->n;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float r = a[i] > 0.0f ? a[i] : 0.0f;
        if (dg) TERN_ACC(fg, dg[i], d[i] * 2.0f * r * u[i]);
        if (du) TERN_ACC(fu, du[i], d[i] * r * r);
    }
}
