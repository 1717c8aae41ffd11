// ops_loss.c — fused cross-entropy: log-softmax + NLL, mean over rows whose target is not the
// ignore index. Saves the row log-sum-exp; backward writes (softmax - onehot) * dloss / count.
#include "engine/ops.h"
#include "kernels/vmath.h"
#include "util.h"
#include <math.h>

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
    float *dx = tern_grad_of(g, nd->src[0]);
    int count = nd->ip[1], ignore = nd->ip[0];
    if (!dx || count == 0) return;
    int N = nd->src[0]->shape[0], V = nd->src[0]->shape[1];
    const float *x = nd->src[0]->data, *lse = nd->saved[0];
    float d = nd->out->grad[0] / (float)count;
    #pragma omp parallel for schedule(static) if ((long)N * V > 32768)
    for (int i = 0; i < N; i++) {
        if (nd->idx[i] == ignore) continue;
        const float *r = x + (size_t)i * V;
        float *dr = dx + (size_t)i * V;
        float e[1024];   // softmax in chunks (no allocation)
        for (int j0 = 0; j0 < V; j0 += 1024) {
            const int n = V - j0 < 1024 ? V - j0 : 1024;
            tern_vexp_shift(r + j0, lse[i], e, n);
            for (int j = 0; j < n; j++) dr[j0 + j] += d * e[j];
        }
        dr[nd->idx[i]] -= d;
    }
}
