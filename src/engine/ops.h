// ops.h — differentiable ops. Each computes its output now (arena memory) and records a node
// for tern_backward(). Shapes are checked; a mismatch is a fatal error naming both tensors.
// Activations are 2-D [rows, cols]: rows = batch*time tokens, cols = features.
#ifndef TERN_OPS_H
#define TERN_OPS_H
#include "engine/graph.h"

// out[M,N] = op(a) op(b); op(a) = a[M,K] or a^T with a[K,M]; op(b) = b[K,N] or b^T with b[N,K]
tern_tensor *tern_matmul(tern_graph *g, tern_tensor *a, tern_tensor *b, int trans_a, int trans_b);
tern_tensor *tern_add(tern_graph *g, tern_tensor *a, tern_tensor *b);
tern_tensor *tern_mul(tern_graph *g, tern_tensor *a, tern_tensor *b);
tern_tensor *tern_scale(tern_graph *g, tern_tensor *a, float s);
tern_tensor *tern_sum(tern_graph *g, tern_tensor *a);   // [1]
tern_tensor *tern_mean(tern_graph *g, tern_tensor *a);  // [1]
// w[V,C], ids[n] in [0,V) -> out[n,C]; ids are copied
tern_tensor *tern_embedding(tern_graph *g, tern_tensor *w, const int *ids, int n);
// x[N,C], w[C] -> out[N,C]
tern_tensor *tern_rmsnorm(tern_graph *g, tern_tensor *x, tern_tensor *w, float eps);
tern_tensor *tern_silu(tern_graph *g, tern_tensor *x);
tern_tensor *tern_swiglu(tern_graph *g, tern_tensor *gate, tern_tensor *up);
// squared ReLU: out = max(x, 0)^2
tern_tensor *tern_relu2(tern_graph *g, tern_tensor *x);
// gated squared ReLU (BitNet b1.58 2B4T's FFN): out = max(gate, 0)^2 * up
tern_tensor *tern_relu2_glu(tern_graph *g, tern_tensor *gate, tern_tensor *up);
// x[B*T, H*D]; token t of each sequence is at position pos0 + t; NEOX pairing (i, i + D/2)
tern_tensor *tern_rope(tern_graph *g, tern_tensor *x, int B, int T, int H, int D, int pos0, float theta);
// Same with per-frequency divisors freq_div[D/2] (LLaMA-3 scaling, model/rope.h); NULL = none.
// freq_div is read during the call only.
tern_tensor *tern_rope_ex(tern_graph *g, tern_tensor *x, int B, int T, int H, int D, int pos0, float theta, const float *freq_div);
// q[B*T, H*D], k,v[B*T, Hkv*D] (H % Hkv == 0) -> out[B*T, H*D]; causal, scale 1/sqrt(D)
tern_tensor *tern_attention(tern_graph *g, tern_tensor *q, tern_tensor *k, tern_tensor *v, int B, int T, int H, int Hkv);
// precision=mixed: the bytes of the attention's bf16 packing buffers (graph scratch) for sequence
// length T, head dim D and this many threads
size_t tern_attention_mixed_scratch(int T, int D, int threads);
// logits[N,V], targets[N] (ignore_index rows skipped) -> mean NLL [1]; targets are copied
tern_tensor *tern_cross_entropy(tern_graph *g, tern_tensor *logits, const int *targets, int ignore_index);
#define TERN_IGNORE_INDEX (-100)
// Logit distillation: student[N,V] (differentiable), teacher[N,V] (values only; read again in the
// backward, so they must stay alive until then), temperature T > 0. With p = softmax(teacher/T),
// q = softmax(student/T), per row KL(p || q) = sum_v p_v (log p_v - log q_v); the result is
// T^2 * the mean over rows whose target is not ignore_index (targets may be NULL: all rows).
// d/d student = T * (q - p) / count per row (the T^2 keeps gradient magnitudes independent of T).
tern_tensor *tern_kl_distill(tern_graph *g, tern_tensor *student, const float *teacher, const int *targets,
                             int ignore_index, float T);

// BitNet quantizers (see quant.h for the exact rules), straight-through gradients.
tern_tensor *tern_quant_weight(tern_graph *g, tern_tensor *w);  // out = Wq * s_w
tern_tensor *tern_quant_act(tern_graph *g, tern_tensor *x);     // out = xq / s_x (per row)
// Fused BitLinear: x[N,K], w[M,K] -> out[N,M].
//   lambda = 1: integer-exact ternary  out = (xq . Wq^T) * (s_w / s_x)
//   lambda = 0: plain full-precision   out = x . W^T
//   0 < lambda < 1 (fp -> ternary fine-tuning ramp): out = x_mix . w_mix^T with
//     x_mix = lambda * xq/s_x + (1-lambda) * x,  w_mix = lambda * Wq*s_w + (1-lambda) * W
// Gradients straight-through: dx = dy . w_eff, dW = dy^T . x_eff (eff = what the forward used).
tern_tensor *tern_bitlinear(tern_graph *g, tern_tensor *x, tern_tensor *w, float lambda);
// n BitLinears of one input (q, k, v; gate, up): out[j] = BitLinear(x; w[j]), the activation
// quantization (and x_eff) done once and shared; results identical to n tern_bitlinear calls.
void tern_bitlinear_n(tern_graph *g, tern_tensor *x, tern_tensor *const *w, int n, float lambda, tern_tensor **out);

// Backward functions (called from tern_backward's switch; one per op).
void tern_matmul_backward(tern_graph *g, tern_node *nd);
void tern_add_backward(tern_graph *g, tern_node *nd);
void tern_mul_backward(tern_graph *g, tern_node *nd);
void tern_scale_backward(tern_graph *g, tern_node *nd);
void tern_sum_backward(tern_graph *g, tern_node *nd);
void tern_mean_backward(tern_graph *g, tern_node *nd);
void tern_embedding_backward(tern_graph *g, tern_node *nd);
void tern_rmsnorm_backward(tern_graph *g, tern_node *nd);
void tern_silu_backward(tern_graph *g, tern_node *nd);
void tern_swiglu_backward(tern_graph *g, tern_node *nd);
void tern_relu2_backward(tern_graph *g, tern_node *nd);
void tern_relu2_glu_backward(tern_graph *g, tern_node *nd);
void tern_kl_distill_backward(tern_graph *g, tern_node *nd);
void tern_rope_backward(tern_graph *g, tern_node *nd);
void tern_attention_backward(tern_graph *g, tern_node *nd);
void tern_cross_entropy_backward(tern_graph *g, tern_node *nd);
void tern_quant_weight_backward(tern_graph *g, tern_node *nd);
void tern_quant_act_backward(tern_graph *g, tern_node *nd);
void tern_bitlinear_backward(tern_graph *g, tern_node *nd);

#endif
