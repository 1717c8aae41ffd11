// graph.c — node recording, arena-backed tensors, and the reverse-mode backward walk.
#include "engine/graph.h"
#include "model/rope.h"
#include "engine/ops.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static const char *op_names[TERN_OP_COUNT] = {
    [TERN_OP_NONE] = "none",           [TERN_OP_MATMUL] = "matmul",       [TERN_OP_ADD] = "add",
    [TERN_OP_MUL] = "mul",             [TERN_OP_SCALE] = "scale",         [TERN_OP_SUM] = "sum",
    [TERN_OP_MEAN] = "mean",           [TERN_OP_EMBEDDING] = "embedding", [TERN_OP_RMSNORM] = "rmsnorm",
    [TERN_OP_SILU] = "silu",           [TERN_OP_SWIGLU] = "swiglu",       [TERN_OP_ROPE] = "rope",
    [TERN_OP_ATTENTION] = "attention", [TERN_OP_CROSS_ENTROPY] = "cross_entropy",
    [TERN_OP_QUANT_WEIGHT] = "quant_weight", [TERN_OP_QUANT_ACT] = "quant_act",
    [TERN_OP_BITLINEAR] = "bitlinear",
    [TERN_OP_RELU2] = "relu2",         [TERN_OP_RELU2_GLU] = "relu2_glu", [TERN_OP_KL_DISTILL] = "kl_distill",
    [TERN_OP_CHECKPOINT] = "checkpoint",
};

const char *tern_op_name(tern_op op) { return (op >= 0 && op < TERN_OP_COUNT && op_names[op]) ? op_names[op] : "?"; }

void tern_graph_init(tern_graph *g, int cap_nodes, size_t arena_initial, size_t arena_limit) {
    memset(g, 0, sizeof *g);
    tern_arena_init(&g->arena, "activation", arena_initial, arena_limit);
    g->cap_nodes = cap_nodes > 0 ? cap_nodes : 4096;
    g->nodes = tern_xcalloc((size_t)g->cap_nodes, sizeof(tern_node));
    g->grad_enabled = 1;
#ifdef TERN_POISON_GRADS
    g->poison_grads = 1;
#endif
}

struct tern_rope_table {
    struct tern_rope_table *next;
    int T, D, pos0, has_div;
    float theta;
    float *div;   // [D/2] copy of freq_div (has_div)
    float *cs;    // [T * D]
};

static void rope_tables_free(tern_graph *g) {
    for (struct tern_rope_table *t = g->rope_tables, *n; t; t = n) {
        n = t->next;
        free(t->div);
        free(t->cs);
        free(t);
    }
    g->rope_tables = NULL;
}

const float *tern_rope_table(tern_graph *g, int T, int D, int pos0, float theta, const float *freq_div) {
    for (struct tern_rope_table *t = g->rope_tables; t; t = t->next)
        if (t->T == T && t->D == D && t->pos0 == pos0 && !memcmp(&t->theta, &theta, sizeof theta) && t->has_div == (freq_div != NULL) &&
            (!freq_div || !memcmp(t->div, freq_div, sizeof(float) * (size_t)(D / 2))))
            return t->cs;
    struct tern_rope_table *t = tern_xmalloc(sizeof *t);
    t->T = T; t->D = D; t->pos0 = pos0; t->theta = theta; t->has_div = freq_div != NULL;
    t->div = freq_div ? tern_xmalloc(sizeof(float) * (size_t)(D / 2)) : NULL;
    if (freq_div) memcpy(t->div, freq_div, sizeof(float) * (size_t)(D / 2));
    t->cs = tern_aligned_alloc(sizeof(float) * (size_t)T * D);
    #pragma omp parallel for schedule(static) if (T >= 64)
    for (int i = 0; i < T; i++) tern_rope_angles_div(pos0 + i, D, theta, freq_div, t->cs + (size_t)i * D);
    t->next = g->rope_tables;
    g->rope_tables = t;
    return t->cs;
}

void tern_graph_reset(tern_graph *g) {
    g->n_nodes = 0;
    tern_arena_reset(&g->arena);
    rope_tables_free(g);
}

void tern_graph_free(tern_graph *g) {
    rope_tables_free(g);
    tern_arena_free(&g->arena);
    free(g->nodes);
    g->nodes = NULL;
    free(g->scratch);
    g->scratch = NULL;
    g->scratch_bytes = 0;
}

void *tern_graph_scratch(tern_graph *g, size_t bytes) {
    if (bytes > g->scratch_bytes) {
        free(g->scratch);
        g->scratch_bytes = (bytes + 4095) / 4096 * 4096;
        g->scratch = tern_aligned_alloc(g->scratch_bytes);
    }
    return g->scratch;
}

tern_tensor *tern_new(tern_graph *g, const char *name, int ndim, const int *shape) {
    if (ndim < 1 || ndim > TERN_MAX_DIMS) tern_fatal("tern_new(%s): bad ndim %d", name ? name : "", ndim);
    tern_tensor *t = tern_arena_alloc(&g->arena, sizeof *t);
    memset(t, 0, sizeof *t);
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) tern_fatal("tern_new(%s): dimension %d is %d", t->name, i, shape[i]);
        t->shape[i] = shape[i];
    }
    t->n = tern_numel(ndim, shape);
    t->data = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)t->n);
    t->node = -1;
    return t;
}

tern_tensor *tern_new_2d(tern_graph *g, const char *name, int rows, int cols) {
    int shape[2] = {rows, cols};
    return tern_new(g, name, 2, shape);
}

float *tern_grad_of(tern_graph *g, tern_tensor *t) {
    if (!t->requires_grad) return NULL;
    if (!t->grad) t->grad = tern_arena_calloc(&g->arena, sizeof(float) * (size_t)t->n);
    return t->grad;
}

float *tern_grad_for(tern_graph *g, tern_tensor *t, int *fresh) {
    *fresh = 0;
    if (!t->requires_grad) return NULL;
    if (!t->grad) {
        t->grad = tern_arena_alloc(&g->arena, sizeof(float) * (size_t)t->n);
        *fresh = 1;
        if (g->poison_grads)
            for (long i = 0; i < t->n; i++) t->grad[i] = NAN;
    }
    return t->grad;
}

tern_node *tern_graph_record(tern_graph *g, tern_op op, tern_tensor *out, tern_tensor *a, tern_tensor *b, tern_tensor *c) {
    int req = (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
    if (!g->grad_enabled || !req) return NULL;
    if (g->n_nodes >= g->cap_nodes)
        tern_fatal("graph is full: more than %d nodes in one step (op %s); raise the node capacity",
                   g->cap_nodes, tern_op_name(op));
    tern_node *nd = &g->nodes[g->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->out = out;
    nd->src[0] = a;
    nd->src[1] = b;
    nd->src[2] = c;
    out->requires_grad = 1;
    out->node = g->n_nodes++;
    return nd;
}

void tern_prof_end(tern_graph *g, tern_op op, double t0) {
    if (!g->profile) return;
    g->prof_fwd[op] += tern_time() - t0;
    g->prof_calls[op]++;
}

static void backward_walk(tern_graph *g);
static void walk_nodes(tern_graph *g, int hi, int lo, int hook);

tern_tensor *tern_checkpoint(tern_graph *g, tern_tensor *x, tern_segment_fn f, void *ctx, int arg,
                             tern_tensor *const *params, int n_params) {
    int req = x->requires_grad;
    for (int i = 0; i < n_params; i++) req |= params[i]->requires_grad;
    if (!g->grad_enabled || !req) return f(g, x, ctx, arg);
    if (g->n_nodes >= g->cap_nodes)
        tern_fatal("graph is full: more than %d nodes in one step (op checkpoint); raise the node capacity", g->cap_nodes);
    tern_tensor *out = tern_new(g, "checkpoint", x->ndim, x->shape);   // kept: the next segment's input
    tern_tensor **ps = tern_arena_alloc(&g->arena, sizeof(tern_tensor *) * (size_t)(n_params > 0 ? n_params : 1));
    for (int i = 0; i < n_params; i++) ps[i] = params[i];
    tern_arena_mark_t m = tern_arena_mark(&g->arena);
    g->grad_enabled = 0;
    tern_tensor *o = f(g, x, ctx, arg);
    g->grad_enabled = 1;
    if (o->n != out->n) tern_fatal("tern_checkpoint: the segment maps %ld values to %ld; it must keep the size", x->n, o->n);
    memcpy(out->data, o->data, sizeof(float) * (size_t)o->n);
    tern_arena_release(&g->arena, m);
    tern_node *nd = &g->nodes[g->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->op = TERN_OP_CHECKPOINT;
    nd->out = out;
    nd->src[0] = x;
    nd->seg = f;
    nd->seg_ctx = ctx;
    nd->ip[0] = arg;
    nd->params = ps;
    nd->n_params = n_params;
    out->requires_grad = 1;
    out->node = g->n_nodes++;
    return out;
}

// Run the segment again from its kept input, recording onto the end of the tape, and walk it.
static void checkpoint_backward(tern_graph *g, tern_node *nd) {
    tern_tensor *x = nd->src[0], *out = nd->out;
    // When nothing has written x's gradient yet (x's only reader is this segment, as a block's
    // input is), it is computed in the segment's memory and then moved into d out's buffer, which
    // nothing reads any more: one block-input gradient at a time instead of one per block.
    int move = x->requires_grad && !x->grad;
    tern_arena_mark_t m = tern_arena_mark(&g->arena);
    float *gx = tern_grad_of(g, x);
    int n0 = g->n_nodes, enabled = g->grad_enabled;
    tern_tensor *xs = tern_arena_alloc(&g->arena, sizeof *xs);   // x as the segment's leaf
    *xs = *x;
    xs->node = -1;
    xs->grad = gx;
    g->grad_enabled = 1;
    tern_tensor *o = nd->seg(g, xs, nd->seg_ctx, nd->ip[0]);
    g->grad_enabled = enabled;
    if (!o->requires_grad) tern_fatal("tern_checkpoint: the recomputed segment records no gradient");
    o->grad = out->grad;   // d out, as the rest of the graph accumulated it
    walk_nodes(g, g->n_nodes - 1, n0, 0);
    g->n_nodes = n0;
    if (move) {   // out has x's shape (checked in tern_checkpoint)
        memcpy(out->grad, gx, sizeof(float) * (size_t)x->n);
        x->grad = out->grad;
        out->grad = NULL;   // given to x
    }
    tern_arena_release(&g->arena, m);
}

void tern_backward(tern_graph *g, tern_tensor *loss, float seed) {
    if (loss->n != 1) tern_fatal("tern_backward: loss '%s' has %ld elements, expected a scalar", loss->name, loss->n);
    if (!loss->requires_grad) tern_fatal("tern_backward: loss '%s' does not depend on any parameter", loss->name);
    float *dl = tern_grad_of(g, loss);
    dl[0] += seed;
    backward_walk(g);
}

void tern_backward_vec(tern_graph *g, tern_tensor *t, const float *seed) {
    if (!t->requires_grad) tern_fatal("tern_backward_vec: '%s' does not depend on any parameter", t->name);
    float *d = tern_grad_of(g, t);
    for (long i = 0; i < t->n; i++) d[i] += seed[i];
    backward_walk(g);
}

static void backward_walk(tern_graph *g) { walk_nodes(g, g->n_nodes - 1, 0, 1); }

// Backward of nodes hi down to lo; hook: call g->node_hook after each (the main tape only).
static void walk_nodes(tern_graph *g, int hi, int lo, int hook) {
    for (int i = hi; i >= lo; i--) {
        tern_node *nd = &g->nodes[i];
        if (!nd->out->grad) { // nothing flowed into this node
            if (hook && g->node_hook) g->node_hook(g->node_hook_ctx, i);
            continue;
        }
        double t0 = g->profile ? tern_time() : 0.0;
        switch (nd->op) {
        case TERN_OP_MATMUL: tern_matmul_backward(g, nd); break;
        case TERN_OP_ADD: tern_add_backward(g, nd); break;
        case TERN_OP_MUL: tern_mul_backward(g, nd); break;
        case TERN_OP_SCALE: tern_scale_backward(g, nd); break;
        case TERN_OP_SUM: tern_sum_backward(g, nd); break;
        case TERN_OP_MEAN: tern_mean_backward(g, nd); break;
        case TERN_OP_EMBEDDING: tern_embedding_backward(g, nd); break;
        case TERN_OP_RMSNORM: tern_rmsnorm_backward(g, nd); break;
        case TERN_OP_SILU: tern_silu_backward(g, nd); break;
        case TERN_OP_SWIGLU: tern_swiglu_backward(g, nd); break;
        case TERN_OP_ROPE: tern_rope_backward(g, nd); break;
        case TERN_OP_ATTENTION: tern_attention_backward(g, nd); break;
        case TERN_OP_CROSS_ENTROPY: tern_cross_entropy_backward(g, nd); break;
        case TERN_OP_QUANT_WEIGHT: tern_quant_weight_backward(g, nd); break;
        case TERN_OP_QUANT_ACT: tern_quant_act_backward(g, nd); break;
        case TERN_OP_BITLINEAR: tern_bitlinear_backward(g, nd); break;
        case TERN_OP_RELU2: tern_relu2_backward(g, nd); break;
        case TERN_OP_RELU2_GLU: tern_relu2_glu_backward(g, nd); break;
        case TERN_OP_KL_DISTILL: tern_kl_distill_backward(g, nd); break;
        case TERN_OP_CHECKPOINT: checkpoint_backward(g, nd); break;
        case TERN_OP_NONE:
        case TERN_OP_COUNT: tern_fatal("tern_backward: node %d has no op", i);
        }
        // a checkpoint's time is its segment's ops (counted by them), not added again
        if (g->profile && nd->op != TERN_OP_CHECKPOINT) g->prof_bwd[nd->op] += tern_time() - t0;
        if (hook && g->node_hook) g->node_hook(g->node_hook_ctx, i);
    }
}

void tern_graph_print_profile(const tern_graph *g, FILE *f) {
    double tf = 0, tb = 0;
    for (int i = 0; i < TERN_OP_COUNT; i++) { tf += g->prof_fwd[i]; tb += g->prof_bwd[i]; }
    fprintf(f, "%-14s %10s %10s %10s %7s\n", "op", "calls", "fwd s", "bwd s", "share");
    for (int i = 1; i < TERN_OP_COUNT; i++) {
        if (!g->prof_calls[i]) continue;
        fprintf(f, "%-14s %10ld %10.3f %10.3f %6.1f%%\n", tern_op_name(i), g->prof_calls[i], g->prof_fwd[i],
                g->prof_bwd[i], 100.0 * (g->prof_fwd[i] + g->prof_bwd[i]) / (tf + tb > 0 ? tf + tb : 1));
    }
    fprintf(f, "%-14s %10s %10.3f %10.3f\n", "total", "", tf, tb);
}
