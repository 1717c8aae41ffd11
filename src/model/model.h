// model.h — the BitNet b1.58 decoder in llama.cpp's `bitnet` layout, built on the autograd ops.
//
// Per block (x: [B*T, dim]):
//   h = RMSNorm(x; attn_norm) -> q, k, v = BitLinear(h) -> RoPE (NEOX) on q, k -> causal attention
//     -> RMSNorm(.; attn_sub_norm) -> BitLinear(attn_output) -> x += .
//   h = RMSNorm(x; ffn_norm) -> act(BitLinear(h; ffn_gate)) * BitLinear(h; ffn_up)
//     -> RMSNorm(.; ffn_sub_norm) -> BitLinear(ffn_down) -> x += .
// then logits = RMSNorm(x; output_norm) . E^T, E = token_embd (tied, default) or output (untied).
// Embedding and head stay full precision; every projection inside the blocks is a BitLinear.
// The shape follows the config: act = SiLU (ffn_act = silu, default) or squared ReLU
// (relu2: Microsoft's BitNet b1.58 2B4T); sub_norms = 0 drops both sub-norms (a plain LLaMA block,
// attn_sub_norm / ffn_sub_norm are then NULL and not parameters); rope_scaling = llama3 divides the
// RoPE frequencies as LLaMA 3.1 does (model/rope.h). With ternary = 0, sub_norms = 0 and SiLU the
// block is exactly Hugging Face's LlamaDecoderLayer (what tern-import reads).
#ifndef TERN_MODEL_H
#define TERN_MODEL_H
#include "model/config.h"
#include "engine/ops.h"

typedef struct {
    tern_tensor *attn_norm;     // [dim]
    tern_tensor *attn_q;        // [n_heads*hd, dim]
    tern_tensor *attn_k;        // [n_kv_heads*hd, dim]
    tern_tensor *attn_v;        // [n_kv_heads*hd, dim]
    tern_tensor *attn_sub_norm; // [dim]   (NULL when cfg.sub_norms = 0)
    tern_tensor *attn_output;   // [dim, dim]
    tern_tensor *ffn_norm;      // [dim]
    tern_tensor *ffn_gate;      // [ffn_dim, dim]
    tern_tensor *ffn_up;        // [ffn_dim, dim]
    tern_tensor *ffn_sub_norm;  // [ffn_dim] (NULL when cfg.sub_norms = 0)
    tern_tensor *ffn_down;      // [dim, ffn_dim]
} tern_layer;

typedef struct {
    tern_model_config cfg;
    tern_params params;        // every weight, its grad and AdamW state in flat buffers
    tern_tensor *token_embd;   // [vocab_size, dim]
    tern_tensor *output_norm;  // [dim]
    tern_tensor *output;       // [vocab_size, dim] untied head, or NULL (tied: token_embd)
    tern_layer *layers;        // (n_layers,)
    // BitLinear mode: 1 = ternary (integer-exact), 0 = full precision, in between = the
    // fp -> ternary fine-tuning ramp. Set from cfg.ternary by tern_model_build.
    float quant_lambda;
    float *rope_div;           // [head_dim/2] RoPE frequency divisors (rope_scaling = llama3), else NULL
    // Activation recomputation (run key recompute; 0 = off): training keeps only the input of
    // each block's two halves (attention, feed-forward) and recomputes each half in backward
    // (engine/graph.h tern_checkpoint); gradients are bit-identical to recompute = 0. Set by the
    // trainer; evaluation is unaffected.
    int recompute;
    int fwd_B, fwd_T;          // shape of the forward in progress (read by the block segments)
} tern_model;


// Register all parameters (names and shapes as in GGUF: the struct fields above, in that order) and allocate the flat buffers.
// The config must be valid (tern_model_config_validate). Weights are zero until initialised/loaded.
void tern_model_build(tern_model *m, const tern_model_config *cfg);
// The same model with values only (tern_params_alloc_data: no gradients, no AdamW state, a quarter
// of the memory): a distillation teacher, evaluation, export, import.
void tern_model_build_frozen(tern_model *m, const tern_model_config *cfg);
// The registration half of tern_model_build: names, shapes and offsets of every parameter, no
// memory for their values (m->params.allocated == 0). For checks and estimates that must not
// allocate (checkpoint validation, training/memory.h). Free with tern_model_free.
void tern_model_declare(tern_model *m, const tern_model_config *cfg);
// Linear weights and embedding N(0, 0.02), norms 1, from a seed.
void tern_model_init_weights(tern_model *m, uint64_t seed);
// Bytes of one model's parameter values (fp32), as tern_params lays them out.
size_t tern_model_param_bytes(const tern_model_config *cfg);
void tern_model_free(tern_model *m);

// Forward over tokens[B*T] (B sequences of T, positions 0..T-1): returns logits [B*T, vocab].
tern_tensor *tern_model_forward(tern_model *m, tern_graph *g, const int *tokens, int B, int T);
// Forward + mean cross-entropy against targets[B*T] (TERN_IGNORE_INDEX entries skipped): scalar.
tern_tensor *tern_model_loss(tern_model *m, tern_graph *g, const int *tokens, const int *targets, int B, int T);
// Nodes one training step records (for tern_graph_init).
int tern_model_graph_nodes(const tern_model_config *cfg);

// Greedy continuation with the training-side forward (no KV cache: recomputes the window each
// token). tokens[0..n_prompt) in, appends n_new ids into out (out[0..n_new)). For parity tests.
void tern_model_generate_greedy(tern_model *m, const int *prompt, int n_prompt, int n_new, int *out);

#endif
