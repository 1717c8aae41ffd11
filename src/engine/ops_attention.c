// ops_attention.c — fused causal multi-head softmax attention with grouped-query heads.
//
// q[B*T, H*D], k,v[B*T, Hkv*D] -> out[B*T, H*D]; query head h reads kv head h / (H/Hkv).
// Forward per (batch, head), per block of QB query rows: S = scale Q K^T (sgemm) against the
// keys the block can see, causal softmax row by row, O = P V.
// Saves only the row log-sum-exp lse[B, H, T]; backward recomputes P from it (memory O(T) per
// head instead of O(T^2)). Work is split over (batch, kv head) so threads write disjoint dK/dV.
// precision=mixed: the products (two forward, five backward) in bf16 with fp32 sums
// (kernels/gemm_bf16.h, the serial entry, one packing buffer per thread); the softmax, the row
// sums and the elementwise dS stay fp32 (the trainer evaluates with precision fp32). Else sgemm.
#include "engine/ops.h"
#include "kernels/gemm_bf16.h"
#include "util.h"
#include "kernels/vmath.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

static void check_qkv(const tern_tensor *q, const tern_tensor *k, const tern_tensor *v, int B, int T, int H, int Hkv, int *D) {
    char a[128], b[128];
    if (H <= 0 || Hkv <= 0 || H % Hkv) tern_fatal("attention: n_heads %d is not a multiple of n_kv_heads %d", H, Hkv);
    if (tern_rows(q) != (long)B * T || tern_cols(q) % H)
        tern_fatal("attention: q %s does not match B=%d T=%d H=%d", tern_shape_str(q, a, sizeof a), B, T, H);
    *D = tern_cols(q) / H;
    if (!tern_same_shape(k, v) || tern_rows(k) != (long)B * T || tern_cols(k) != Hkv * *D)
        tern_fatal("attention: k %s / v %s do not match B=%d T=%d Hkv=%d D=%d", tern_shape_str(k, a, sizeof a),
                   tern_shape_str(v, b, sizeof b), B, T, Hkv, *D);
}

// Query rows are processed in blocks of QB: block [r0, r1) only needs keys [0, r1), so the
// products skip (almost all of) the masked upper triangle.
#define QB 64

// The products: C[M,N] (+)= alpha op(A) op(B), row-major, in sgemm (mx NULL) or bf16 (mx: the
// thread's buffers and the kernel kind). The keys and values of a (batch row, kv head) are packed
// once for the products that read them as B (kt, vt: K^T and V^T for the scores and dP = dO V^T,
// [T keys] x [D]; kp, vp: K and V for dQ and O = P V, [D] x [T keys]); the rest pack per call in
// work. The same bits either way.
typedef struct { char *work, *kt, *vt, *kp, *vp; tern_gemm_kind kind; } mixed_ctx;

// bp: B packed once (or NULL) for a contraction of up to Kp
static void product(const mixed_ctx *mx, const void *bp, int Kp, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, int add, float *C, int ldc) {
    if (!mx) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                    add ? 1.0f : 0.0f, C, ldc);
        return;
    }
    // op(A)(m,k) = A[m*lda + k] or A[k*lda + m]; op(B)(k,n) = B[k*ldb + n] or B[n*ldb + k]
    if (bp)
        tern_gemm_bf16_serial_bp(M, N, K, alpha, A, ta ? 1 : lda, ta ? lda : 1, B, tb ? 1 : ldb, tb ? ldb : 1, bp, Kp, C, ldc, add, mx->work,
                                 mx->kind);
    else
        tern_gemm_bf16_serial(M, N, K, alpha, A, ta ? 1 : lda, ta ? lda : 1, B, tb ? 1 : ldb, tb ? ldb : 1, C, ldc, add, mx->work, mx->kind);
}

// per thread: the packed keys and values (4 operands) and the largest per-call packing of the
// products below (QB query rows, T keys, head dim D)
static size_t work_bytes(int T, int D) {
    const int qb = T < QB ? T : QB;
    size_t a = tern_gemm_bf16_scratch(qb, T, D), b = tern_gemm_bf16_scratch(qb, D, T), c = tern_gemm_bf16_scratch(T, D, qb);
    size_t m = a > b ? a : b;
    m = m > c ? m : c;
    return (m + 63) / 64 * 64;
}
static size_t pack_bytes(int T, int D) {
    return work_bytes(T, D) + 2 * tern_gemm_bf16_bpack_bytes(T, D) + 2 * tern_gemm_bf16_bpack_bytes(D, T);
}

// the thread's buffers; the keys and values of (K, V) packed as the forward (bwd 0) or the
// backward (bwd 1) reads them
static mixed_ctx mixed_for(char *packs, int T, int D, tern_gemm_kind kind, const float *K, const float *V, int ldk, int bwd) {
    mixed_ctx c;
    const size_t tb = tern_gemm_bf16_bpack_bytes(T, D), pb = tern_gemm_bf16_bpack_bytes(D, T);
    c.work = packs + pack_bytes(T, D) * (size_t)omp_get_thread_num();
    c.kt = c.work + work_bytes(T, D);
    c.vt = c.kt + tb;
    c.kp = c.vt + tb;
    c.vp = c.kp + pb;
    c.kind = kind;
    tern_gemm_bf16_bpack(T, D, K, 1, ldk, c.kt, kind);                 // B(d, j) = K[j, d]: the scores
    if (bwd) {
        tern_gemm_bf16_bpack(T, D, V, 1, ldk, c.vt, kind);             // B(d, j) = V[j, d]: dP = dO V^T
        tern_gemm_bf16_bpack(D, T, K, ldk, 1, c.kp, kind);             // B(j, d) = K[j, d]: dQ = dS K
    } else
        tern_gemm_bf16_bpack(D, T, V, ldk, 1, c.vp, kind);             // B(j, d) = V[j, d]: O = P V
    return c;
}

size_t tern_attention_mixed_scratch(int T, int D, int threads) { return pack_bytes(T, D) * (size_t)(threads > 0 ? threads : 1); }

// P[nr, nc] (row stride ldp) = causal softmax of scale * Q K^T for query rows r0..r0+nr-1 against
// keys 0..nc-1 (nc = r0 + nr); returns the row lse in lse_out[nr] when lse_out, else uses lse_in
static void scores_softmax(const mixed_ctx *mx, const float *Q, int ldq, const float *K, int ldk, int r0, int nr, int nc, int D, float scale,
                           float *P, int ldp, float *lse_out, const float *lse_in) {
    product(mx, mx ? mx->kt : NULL, D, 0, 1, nr, nc, D, scale, Q, ldq, K, ldk, 0, P, ldp);
    for (int i = 0; i < nr; i++) {
        float *p = P + (size_t)i * ldp;
        const int last = r0 + i;   // keys 0..last are visible
        float l;
        if (lse_in) l = lse_in[i];
        else {
            float m = -INFINITY;
            for (int j = 0; j <= last; j++) m = p[j] > m ? p[j] : m;
            l = m + logf(tern_vexp_shift(p, m, NULL, last + 1));
            lse_out[i] = l;
        }
        tern_vexp_shift(p, l, p, last + 1);
        for (int j = last + 1; j < nc; j++) p[j] = 0.0f;
    }
}

tern_tensor *tern_attention(tern_graph *g, tern_tensor *q, tern_tensor *k, tern_tensor *v, int B, int T, int H, int Hkv) {
    double t0 = tern_prof_begin(g);
    int D;
    check_qkv(q, k, v, B, T, H, Hkv, &D);
    int G = H / Hkv, ldq = H * D, ldk = Hkv * D;
    float scale = 1.0f / sqrtf((float)D);
    tern_tensor *out = tern_new_2d(g, "attention", B * T, H * D);
    float *lse = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)B * H * T); // (B, H, T)
    int nth = omp_get_max_threads();
    float *scratch = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)nth * T * T);
    const int mixed = g->precision == TERN_PREC_MIXED;   // with or without gradients: a recomputed
                                                          // block (recompute=1) gets the same bits
    char *packs = mixed ? tern_graph_scratch(g, tern_attention_mixed_scratch(T, D, nth)) : NULL;
    const tern_gemm_kind kind = mixed ? tern_gemm_best() : TERN_GEMM_AUTO;
    #pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int b = 0; b < B; b++)
        for (int kh = 0; kh < Hkv; kh++) {
            float *P = scratch + (size_t)omp_get_thread_num() * T * T;
            const float *K = k->data + (size_t)b * T * ldk + kh * D, *V = v->data + (size_t)b * T * ldk + kh * D;
            mixed_ctx mc;
            if (mixed) mc = mixed_for(packs, T, D, kind, K, V, ldk, 0);
            const mixed_ctx *mx = mixed ? &mc : NULL;
            for (int h = kh * G; h < (kh + 1) * G; h++) {
                const float *Q = q->data + (size_t)b * T * ldq + h * D;
                float *O = out->data + (size_t)b * T * ldq + h * D;
                for (int r0 = 0; r0 < T; r0 += QB) {
                    const int nr = T - r0 < QB ? T - r0 : QB, nc = r0 + nr;
                    scores_softmax(mx, Q + (size_t)r0 * ldq, ldq, K, ldk, r0, nr, nc, D, scale, P, T, lse + ((size_t)b * H + h) * T + r0, NULL);
                    product(mx, mx ? mx->vp : NULL, T, 0, 0, nr, D, nc, 1.0f, P, T, V, ldk, 0, O + (size_t)r0 * ldq, ldq);
                }
            }
        }
    tern_node *nd = tern_graph_record(g, TERN_OP_ATTENTION, out, q, k, v);
    if (nd) { nd->saved[0] = lse; nd->ip[0] = B; nd->ip[1] = T; nd->ip[2] = H; nd->ip[3] = Hkv; nd->ip[4] = mixed; }
    tern_prof_end(g, TERN_OP_ATTENTION, t0);
    return out;
}

void tern_attention_backward(tern_graph *g, tern_node *nd) {
    tern_tensor *q = nd->src[0], *k = nd->src[1], *v = nd->src[2];
    int B = nd->ip[0], T = nd->ip[1], H = nd->ip[2], Hkv = nd->ip[3];
    int D = tern_cols(q) / H, G = H / Hkv, ldq = H * D, ldk = Hkv * D;
    float scale = 1.0f / sqrtf((float)D);
    const float *lse = nd->saved[0], *dO_all = nd->out->grad, *O_all = nd->out->data;
    float *dq = tern_grad_of(g, q), *dk = tern_grad_of(g, k), *dv = tern_grad_of(g, v);
    // inputs that need no gradient still get one computed, into a throwaway buffer
    if (!dq) dq = tern_arena_calloc(&g->arena, sizeof(float) * (size_t)q->n);
    if (!dk) dk = tern_arena_calloc(&g->arena, sizeof(float) * (size_t)k->n);
    if (!dv) dv = tern_arena_calloc(&g->arena, sizeof(float) * (size_t)v->n);
    int nth = omp_get_max_threads();
    float *scratch = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)nth * (2 * T * T + T));
    const int mixed = nd->ip[4];   // the forward's arithmetic: the recomputed scores are its bits
    char *packs = mixed ? tern_graph_scratch(g, tern_attention_mixed_scratch(T, D, nth)) : NULL;
    const tern_gemm_kind kind = mixed ? tern_gemm_best() : TERN_GEMM_AUTO;
    #pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int b = 0; b < B; b++)
        for (int kh = 0; kh < Hkv; kh++) {
            float *P = scratch + (size_t)omp_get_thread_num() * (2 * T * T + T), *dP = P + (size_t)T * T, *Di = dP + (size_t)T * T;
            const float *K = k->data + (size_t)b * T * ldk + kh * D, *V = v->data + (size_t)b * T * ldk + kh * D;
            mixed_ctx mc;
            if (mixed) mc = mixed_for(packs, T, D, kind, K, V, ldk, 1);
            const mixed_ctx *mx = mixed ? &mc : NULL;
            float *dK = dk + (size_t)b * T * ldk + kh * D, *dV = dv + (size_t)b * T * ldk + kh * D;
            for (int h = kh * G; h < (kh + 1) * G; h++) {
                size_t off = (size_t)b * T * ldq + h * D;
                const float *Q = q->data + off, *dO = dO_all + off, *O = O_all + off;
                float *dQ = dq + off;
                for (int i = 0; i < T; i++) {   // D_i = rowsum(dO * O)
                    float s = 0.0f;
                    for (int d = 0; d < D; d++) s += dO[(size_t)i * ldq + d] * O[(size_t)i * ldq + d];
                    Di[i] = s;
                }
                for (int r0 = 0; r0 < T; r0 += QB) {
                    const int nr = T - r0 < QB ? T - r0 : QB, nc = r0 + nr;
                    const float *Qb = Q + (size_t)r0 * ldq, *dOb = dO + (size_t)r0 * ldq;
                    scores_softmax(mx, Qb, ldq, K, ldk, r0, nr, nc, D, scale, P, T, NULL, lse + ((size_t)b * H + h) * T + r0);
                    // dV[0:nc] += P^T dO
                    product(mx, NULL, 0, 1, 0, nc, D, nr, 1.0f, P, T, dOb, ldq, 1, dV, ldk);
                    // dP = dO V^T
                    product(mx, mx ? mx->vt : NULL, D, 0, 1, nr, nc, D, 1.0f, dOb, ldq, V, ldk, 0, dP, T);
                    // dS = P * (dP - D_i)   (in dP; masked entries: P = 0)
                    for (int i = 0; i < nr; i++) {
                        float *ds = dP + (size_t)i * T;
                        const float *p = P + (size_t)i * T;
                        const float di = Di[r0 + i];
                        for (int j = 0; j < nc; j++) ds[j] = p[j] * (ds[j] - di);
                    }
                    // dQ += scale dS K ; dK[0:nc] += scale dS^T Q
                    product(mx, mx ? mx->kp : NULL, T, 0, 0, nr, D, nc, scale, dP, T, K, ldk, 1, dQ + (size_t)r0 * ldq, ldq);
                    product(mx, NULL, 0, 1, 0, nc, D, nr, scale, dP, T, Qb, ldq, 1, dK, ldk);
                }
            }
        }
}
