// graph.h — the recorded graph of ops and reverse-mode autograd.
//
// Running an op (ops.h) computes its output at once and, when gradients are enabled, records a
// node: op, inputs, output, saved values. tern_backward() walks the nodes in reverse and each
// op's backward ACCUMULATES (+=) into its inputs' gradients, so a tensor used several times
// (tied embedding/head, residual branches) gets the sum. Parameter gradients land in the flat
// grad buffer of tern_params; activation gradients come from the arena, zeroed on first use.
// Everything a step allocates comes from g->arena; tern_graph_reset() makes it reusable.
#ifndef TERN_GRAPH_H
#define TERN_GRAPH_H
#include "engine/tensor.h"
#include "util.h"
#include <stdio.h>

typedef enum {
    TERN_OP_NONE = 0,
    TERN_OP_MATMUL,        // out = op(a) op(b), op = identity or transpose (sgemm)
    TERN_OP_ADD,           // out = a + b (same shape)
    TERN_OP_MUL,           // out = a * b (same shape)
    TERN_OP_SCALE,         // out = a * fp[0]
    TERN_OP_SUM,           // out (scalar) = sum(a)
    TERN_OP_MEAN,          // out (scalar) = mean(a)
    TERN_OP_EMBEDDING,     // out[n,:] = w[idx[n],:]
    TERN_OP_RMSNORM,       // out = x / sqrt(mean(x^2) + eps) * w, per row
    TERN_OP_SILU,          // out = x * sigmoid(x)
    TERN_OP_SWIGLU,        // out = silu(gate) * up
    TERN_OP_ROPE,          // rotary embedding, NEOX pairing (i with i + head_dim/2)
    TERN_OP_ATTENTION,     // fused causal multi-head (grouped-query) softmax attention
    TERN_OP_CROSS_ENTROPY, // fused log-softmax + NLL, mean over non-ignored rows
    TERN_OP_QUANT_WEIGHT,  // fake-quant: out = Wq * s_w, straight-through gradient
    TERN_OP_QUANT_ACT,     // fake-quant: out = xq / s_x per row, straight-through gradient
    TERN_OP_BITLINEAR,     // fused BitLinear: out = (xq . Wq^T) * s_w / s_x, STE gradients
    TERN_OP_RELU2,         // out = max(x, 0)^2
    TERN_OP_RELU2_GLU,     // out = max(gate, 0)^2 * up
    TERN_OP_KL_DISTILL,    // T^2 * mean KL(softmax(teacher/T) || softmax(student/T)) over rows
    TERN_OP_CHECKPOINT,    // out = f(x), a segment recomputed in backward (tern_checkpoint)
    TERN_OP_COUNT
} tern_op;

const char *tern_op_name(tern_op op);

// Arithmetic of the ternary BitLinear's backward (run key `precision`; ops_quant.c):
//   FP32:  dx = dy . (Wq s_w) and dW = dy^T . (xq / s_x) in fp32 sgemm (exact straight-through)
//   MIXED: dx on the int8 x ternary kernels with dy quantized per row to int8 (SwitchBack);
//          dW in bf16 with fp32 sums (kernels/gemm_bf16.h) from the int8 activations, which the
//          forward keeps instead of a float copy; the tied head's weight gradient
//          (tern_matmul of the form A B^T: dB) in bf16 with fp32 sums. Forwards stay as they are;
//          full-precision and ramp BitLinears stay fp32.
typedef enum { TERN_PREC_FP32 = 0, TERN_PREC_MIXED = 1 } tern_precision;

#define TERN_NODE_MAX_SRC 3
#define TERN_NODE_MAX_SAVED 4

typedef struct tern_graph tern_graph;
// A segment of ops for tern_checkpoint: out = f(x) built from ops on g (arg: e.g. the layer).
typedef tern_tensor *(*tern_segment_fn)(tern_graph *g, tern_tensor *x, void *ctx, int arg);

typedef struct {
    tern_op op;
    tern_tensor *out;
    tern_tensor *src[TERN_NODE_MAX_SRC];
    void *saved[TERN_NODE_MAX_SAVED]; // op-specific buffers from the arena (RoPE: tern_rope_table)
    const int *idx;                   // token ids / targets (copied into the arena)
    int ip[8];                        // op-specific integer params
    float fp[4];                      // op-specific float params
    // TERN_OP_CHECKPOINT only: the segment, and the parameters it reads (its gradients' writers)
    tern_segment_fn seg;
    void *seg_ctx;
    tern_tensor **params;             // (n_params,) in the arena
    int n_params;
} tern_node;

// The tensors a node reads whose gradients its backward may write (the contract below): src[0..3)
// and, for a checkpoint, its params[]. j in [0, tern_node_n_inputs(nd)); entries may be NULL.
static inline int tern_node_n_inputs(const tern_node *nd) { return TERN_NODE_MAX_SRC + nd->n_params; }
static inline tern_tensor *tern_node_input(const tern_node *nd, int j) {
    return j < TERN_NODE_MAX_SRC ? nd->src[j] : nd->params[j - TERN_NODE_MAX_SRC];
}

struct tern_graph {
    tern_arena arena;
    tern_node *nodes;      // (cap_nodes,)
    int n_nodes, cap_nodes;
    int grad_enabled;      // 0: ops run forward only and record nothing (evaluation)
    int precision;         // tern_precision of the ternary BitLinear backward (0 = fp32, exact)
    int poison_grads;      // 1: fresh gradients start as NaN (tern_grad_for; tests, sanitizer build)
    // profile: seconds spent per op, forward and backward, accumulated until cleared
    int profile;
    double prof_fwd[TERN_OP_COUNT], prof_bwd[TERN_OP_COUNT];
    long prof_calls[TERN_OP_COUNT];
    // Backward hook (NULL: none): called as node_hook(node_hook_ctx, i) after the backward of node i
    // (also for a node skipped because no gradient flowed into it), i = n_nodes-1 down to 0.
    // Contract the data-parallel layer (dist/ddp.h) relies on: a parameter's gradient is written
    // only by the backward of nodes that have the parameter among their inputs (src[] and, for a
    // checkpoint node, its params[]: tern_node_input), so once the walk has passed the lowest such node the
    // parameter's gradient is final for this backward. A checkpoint's inner nodes are walked
    // inside its backward and never reach the hook.
    void (*node_hook)(void *ctx, int node);
    void *node_hook_ctx;
    void *scratch;         // tern_graph_scratch's buffer (backward temporaries), freed by tern_graph_free
    size_t scratch_bytes;
    struct tern_rope_table *rope_tables;   // RoPE's cos/sin tables of this step (tern_rope_table), freed by reset
};

// cap_nodes: most nodes one step may record (running out is a clear fatal error);
// arena_limit: bytes (0 = unlimited; the first step sizes the arena either way).
void tern_graph_init(tern_graph *g, int cap_nodes, size_t arena_initial, size_t arena_limit);
void tern_graph_reset(tern_graph *g);   // drop nodes and arena contents; keeps capacity
void tern_graph_free(tern_graph *g);
// A 64-byte aligned buffer of at least 'bytes' for temporaries of ONE backward function (reused by
// the next: its contents do not survive the call); grows, never shrinks.
void *tern_graph_scratch(tern_graph *g, size_t bytes);
// RoPE's cos/sin table [T][D/2][2] for positions pos0..pos0+T-1 (tern_rope_angles_div): computed
// on a step's first request and shared by the step's later ones with the same arguments (every
// layer's q and k); valid until tern_graph_reset.
const float *tern_rope_table(tern_graph *g, int T, int D, int pos0, float theta, const float *freq_div);

// New tensor with arena storage (uninitialised values), no gradient, no node.
tern_tensor *tern_new(tern_graph *g, const char *name, int ndim, const int *shape);
tern_tensor *tern_new_2d(tern_graph *g, const char *name, int rows, int cols);
// Gradient buffer of t, allocated zeroed from the arena on first use; NULL if t needs none.
float *tern_grad_of(tern_graph *g, tern_tensor *t);
// The same for a backward that writes ALL of t's gradient: *fresh = 1 when nothing has been added
// to it yet; the buffer is then not zeroed and the op stores (d = v) instead of adding (d += v), so
// a large activation gradient costs no zeroing pass (TERN_ACC below). A later call for the same
// tensor returns *fresh = 0. With g->poison_grads (set by the gradient checks of tests/testutil.c,
// and by default in builds with -DTERN_POISON_GRADS: the sanitizer build) a fresh buffer is filled
// with NaN, so an element an op forgets to store fails the tests.
float *tern_grad_for(tern_graph *g, tern_tensor *t, int *fresh);
// d = v on a fresh gradient, d += v otherwise
#define TERN_ACC(fresh, d, v) ((d) = (fresh) ? (v) : (d) + (v))

// Append a node for 'out' (called by ops). Returns NULL when gradients are disabled or no input
// requires a gradient (then nothing is recorded).
tern_node *tern_graph_record(tern_graph *g, tern_op op, tern_tensor *out, tern_tensor *a, tern_tensor *b, tern_tensor *c);

// Reverse-mode pass from a scalar 'loss': seeds d(loss) = 1 (times 'seed') and runs every
// recorded node's backward in reverse order.
void tern_backward(tern_graph *g, tern_tensor *loss, float seed);
// Same, seeding d(t) with an arbitrary vector (t->n values): backward of sum(t * seed).
void tern_backward_vec(tern_graph *g, tern_tensor *t, const float *seed);

// Activation recomputation (gradient checkpointing). With gradients enabled, runs out = f(x) on g
// without recording, keeps only x and out (the segment's intermediate values are given back to
// the arena at once) and records one TERN_OP_CHECKPOINT node; its backward runs f on x again,
// recording onto the end of the tape, walks those nodes (their gradients land in x's gradient and
// in the parameters' flat buffer, exactly as without checkpointing) and gives their memory back;
// when x has no other reader, its gradient then takes over d out's buffer (no longer read).
// f must map x to an output of x's size.
// params[0..n_params): every parameter f reads (copied). Without gradients it is just f(g, x).
// f must be deterministic: the same x gives bit-identical values in both runs (tern's ops are).
tern_tensor *tern_checkpoint(tern_graph *g, tern_tensor *x, tern_segment_fn f, void *ctx, int arg,
                             tern_tensor *const *params, int n_params);

// Profiling helpers used by the ops (no-ops unless g->profile).
static inline double tern_prof_begin(const tern_graph *g) {
    return g->profile ? tern_time() : 0.0;
}
void tern_prof_end(tern_graph *g, tern_op op, double t0);

void tern_graph_print_profile(const tern_graph *g, FILE *f); // per-op forward/backward seconds

#endif
