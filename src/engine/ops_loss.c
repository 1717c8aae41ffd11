// ops_loss.c — fused cross-entropy: log-softmax + NLL, mean over rows whose target is not the
// ignore index. Saves the row log-sum-exp; backward writes (softmax - onehot) * dloss / count.
#include "engine/ops.h"
#include "kernels/vmath.h"
#include "util.h"
#include <math.h>
#include <string.h>

tern_tensor *tern_cross_entropy(tern_graph *g, tern_tensor *logits, const int *targets, int ignore_index) {
    double t0 = tern_prof_begin(g);
    if (logits->ndim != 2) {
        char a[128];
        tern_fatal("cross_entropy: logits %s must be 2-D", tern_shape_str(logits, a, sizeof a));
    }
    int N = logits->shape[0], V = logits->shape[1];
    int *tg = tern_arena_alloc(&g->arena, sizeof(int) * (size_t)N);
    int count = 0;
    for (int i = 0; i < N; i++) {
        tg[i] = targets[i];
        if (tg[i] == ignore_index) continue;
        if (tg[i] < 0 || tg[i] >= V) tern_fatal("cross_entropy: target %d at row %d is outside [0, %d)", tg[i], i, V);
        count++;
    }
    float *lse = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)N);  // (N,)
    float *nll = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)N);  // (N,)
    const float *x = logits->data;
    #pragma omp parallel for schedule(static) if ((long)N * V > 32768)
    for (int i = 0; i < N; i++) {
        const float *r = x + (size_t)i * V;
        float m = -INFINITY;
        for (int j = 0; j < V; j++) m = r[j] > m ? r[j] : m;
        lse[i] = m + logf(tern_vexp_shift(r, m, NULL, V));
        nll[i] = tg[i] == ignore_index ? 0.0f : lse[i] - r[tg[i]];
    }
    double total = 0.0;
    for (int i = 0; i < N; i++) total += nll[i];
    int one = 1;
    tern_tensor *out = tern_new(g, "cross_entropy", 1, &one);
    out->data[0] = count ? (float)(total / count) : 0.0f;
    tern_node *nd = tern_graph_record(g, TERN_OP_CROSS_ENTROPY, out, logits, NULL, NULL);
    if (nd) { nd->saved[0] = lse; nd->idx = tg; nd->ip[0] = ignore_index; nd->ip[1] = count; }
    tern_prof_end(g, TERN_OP_CROSS_ENTROPY, t0);
    return out;
}

void tern_cross_entropy_backward(tern_graph *g, tern_node *nd) {
    int fresh;
    float *dx = tern_grad_for(g, nd->src[0], &fresh);
    int count = nd->ip[1], ignore = nd->ip[0];
    if (!dx) return;
    int N = nd->src[0]->shape[0], V = nd->src[0]->shape[1];
    if (count == 0) {   // every target ignored: no gradient
        if (fresh) memset(dx, 0, sizeof(float) * (size_t)N * V);
        return;
    }
    const float *x = nd->src[0]->data, *lse = nd->saved[0];
    float d = nd->out->grad[0] / (float)count;
    #pragma omp parallel for schedule(static) if ((long)N * V > 32768)
    for (int i = 0; i < N; i++) {
        const float *r = x + (size_t)i * V;
        float *dr = dx + (size_t)i * V;
        if (nd->idx[i] == ignore) {
            if (fresh) memset(dr, 0, sizeof(float) * (size_t)V);
            continue;
        }
        float e[1024];   // softmax in chunks (no allocation)
        for (int j0 = 0; j0 < V; j0 += 1024) {
            const int n = V - j0 < 1024 ? V - j0 : 1024;
            tern_vexp_shift(r + j0, lse[i], e, n);
            for (int j = 0; j < n; j++) TERN_ACC(fresh, dr[j0 + j], d * e[j]);
        }
        dr[nd->idx[i]] -= d;
    }
}

// ---- logit distillation: T^2 * mean_rows KL(softmax(teacher/T) || softmax(student/T)) --------------
#define KL_CHUNK 1024

// log-sum-exp of x[0..V) / T (invT = 1/T), in chunks on the stack
static float lse_scaled(const float *x, int V, float invT) {
    float m = -INFINITY;
    for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
    float buf[KL_CHUNK];
    double sum = 0.0;
    for (int j0 = 0; j0 < V; j0 += KL_CHUNK) {
        const int n = V - j0 < KL_CHUNK ? V - j0 : KL_CHUNK;
        for (int j = 0; j < n; j++) buf[j] = x[j0 + j] * invT;
        sum += tern_vexp_shift(buf, m * invT, NULL, n);
    }
    return m * invT + (float)log(sum);
}

tern_tensor *tern_kl_distill(tern_graph *g, tern_tensor *student, const float *teacher, const int *targets,
                             int ignore_index, float T) {
    double t0 = tern_prof_begin(g);
    if (student->ndim != 2) {
        char a[128];
        tern_fatal("kl_distill: student logits %s must be 2-D", tern_shape_str(student, a, sizeof a));
    }
    if (!(T > 0.0f)) tern_fatal("kl_distill: temperature %g must be positive", (double)T);
    const int N = student->shape[0], V = student->shape[1];
    const float invT = 1.0f / T;
    int *use = tern_arena_alloc(&g->arena, sizeof(int) * (size_t)N);   // 1: row counts
    int count = 0;
    for (int i = 0; i < N; i++) {
        use[i] = !targets || targets[i] != ignore_index;
        count += use[i];
    }
    float *lse_t = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)N);  // (N,)
    float *lse_s = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)N);  // (N,)
    double *kl = tern_arena_alloc(&g->arena, sizeof(double) * (size_t)N);   // (N,)
    const float *s = student->data;
    #pragma omp parallel for schedule(static) if ((long)N * V > 32768)
    for (int i = 0; i < N; i++) {
        kl[i] = 0.0;
        if (!use[i]) continue;
        const float *tr = teacher + (size_t)i * V, *sr = s + (size_t)i * V;
        lse_t[i] = lse_scaled(tr, V, invT);
        lse_s[i] = lse_scaled(sr, V, invT);
        // KL = sum_v p_v (t_v - s_v) / T - lse_t + lse_s
        float p[KL_CHUNK];
        double acc = 0.0;
        for (int j0 = 0; j0 < V; j0 += KL_CHUNK) {
            const int n = V - j0 < KL_CHUNK ? V - j0 : KL_CHUNK;
            for (int j = 0; j < n; j++) p[j] = tr[j0 + j] * invT;
            tern_vexp_shift(p, lse_t[i], p, n);
            for (int j = 0; j < n; j++) acc += (double)p[j] * (double)((tr[j0 + j] - sr[j0 + j]) * invT);
        }
        kl[i] = acc - lse_t[i] + lse_s[i];
    }
    double total = 0.0;
    for (int i = 0; i < N; i++) total += kl[i];
    int one = 1;
    tern_tensor *out = tern_new(g, "kl_distill", 1, &one);
    out->data[0] = count ? (float)((double)T * T * total / count) : 0.0f;
    tern_node *nd = tern_graph_record(g, TERN_OP_KL_DISTILL, out, student, NULL, NULL);
    if (nd) {
        nd->saved[0] = lse_t;
        nd->saved[1] = lse_s;
        nd->saved[2] = (void *)teacher;
        nd->idx = use;
        nd->ip[0] = count;
        nd->fp[0] = T;
    }
    tern_prof_end(g, TERN_OP_KL_DISTILL, t0);
    return out;
}

void tern_kl_distill_backward(tern_graph *g, tern_node *nd) {
    int fresh;
    float *dx = tern_grad_for(g, nd->src[0], &fresh);
    const int count = nd->ip[0];
    if (!dx) return;
    const int N = nd->src[0]->shape[0], V = nd->src[0]->shape[1];
    if (count == 0) {
        if (fresh) memset(dx, 0, sizeof(float) * (size_t)N * V);
        return;
    }
    const float T = nd->fp[0], invT = 1.0f / T;
    const float *s = nd->src[0]->data, *teacher = nd->saved[2], *lse_t = nd->saved[0], *lse_s = nd->saved[1];
    const float d = nd->out->grad[0] * T / (float)count;
    #pragma omp parallel for schedule(static) if ((long)N * V > 32768)
    for (int i = 0; i < N; i++) {
        float *dr = dx + (size_t)i * V;
        if (!nd->idx[i]) {
            if (fresh) memset(dr, 0, sizeof(float) * (size_t)V);
            continue;
        }
        const float *tr = teacher + (size_t)i * V, *sr = s + (size_t)i * V;
        float p[KL_CHUNK], q[KL_CHUNK];
        for (int j0 = 0; j0 < V; j0 += KL_CHUNK) {
            const int n = V - j0 < KL_CHUNK ? V - j0 : KL_CHUNK;
            for (int j = 0; j < n; j++) { p[j] = tr[j0 + j] * invT; q[j] = sr[j0 + j] * invT; }
            tern_vexp_shift(p, lse_t[i], p, n);
            tern_vexp_shift(q, lse_s[i], q, n);
            for (int j = 0; j < n; j++) TERN_ACC(fresh, dr[j0 + j], d * (q[j] - p[j]));
        }
    }
}
