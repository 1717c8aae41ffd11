// runtime.h — tern's standalone CPU inference runtime for BitNet b1.58 models in GGUF
// (llama.cpp architecture `bitnet`). llama2.c style: plain structs, build_*/free_*, one forward.
// libc, libm and OpenMP only (no HDF5, no BLAS), so tern-generate & co. can ship alone.
//
// Model (same maths as the training side, model/model.h), per block, x [N, dim]:
//   h = RMSNorm(x; attn_norm); q,k,v = BitLinear(h); RoPE NEOX on q,k; causal GQA attention
//   a = RMSNorm(att; attn_sub_norm); x += BitLinear(a; attn_output)
//   h = RMSNorm(x; ffn_norm); f = SiLU(BitLinear(h; ffn_gate)) * BitLinear(h; ffn_up)
//   f = RMSNorm(f; ffn_sub_norm); x += BitLinear(f; ffn_down)
// logits = RMSNorm(x; output_norm) . E^T with E = token_embd (tied) or output (untied).
// BitLinear: activations quantized per token (quant.h tern_act_quantize_row_i8), int8 x ternary
// products in int32 by the kernels (kernels.h), y = (float)acc * (s_w / s_x).
//
// Weights in the GGUF: BitLinear tensors TQ2_0 or TQ1_0 (repacked at load into the kernel layout);
// s_w = the blocks' common d times the optional f32 tensor `blk.N.<name>.scale` {1}
// (tern's export writes d = 1 and the exact fp32 s_w there; llama.cpp multiplies by it too).
// Norms f32; token_embd / output f32 or f16 (read in place from the mmap'd file).
#ifndef TERN_RUNTIME_H
#define TERN_RUNTIME_H
#include <stddef.h>
#include <stdint.h>
#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "tokenizers/tokenizer.h"

typedef struct {
    int dim;          // n_embd
    int ffn_dim;      // n_ff
    int n_layers;
    int n_heads;
    int n_kv_heads;   // n_heads % n_kv_heads == 0
    int head_dim;     // dim / n_heads (even)
    int kv_dim;       // n_kv_heads * head_dim
    int vocab_size;
    int seq_len;      // the model's context length (bitnet.context_length)
    float norm_eps;
    float rope_theta;
} tern_rt_config;

typedef struct {
    const float *attn_norm;      // [dim]
    const float *attn_sub_norm;  // [dim]
    const float *ffn_norm;       // [dim]
    const float *ffn_sub_norm;   // [ffn_dim]
    // BitLinear weights. q,k,v share their input and so do gate,up: each group is one matrix
    // (rows stacked) so a forward makes one kernel call per group; the kernel's int32 sums are
    // scaled per part: out = (float)acc * (scale[j] / s_x), the same arithmetic as tern_tmat_mul.
    tern_tmat wqkv;              // [dim + 2*kv_dim, dim]: attn_q rows, then attn_k, attn_v
    tern_tmat wo;                // [dim, dim] attn_output (scale in wo.scale too)
    tern_tmat wgu;               // [2*ffn_dim, dim]: ffn_gate rows, then ffn_up
    tern_tmat w_down;            // [dim, ffn_dim] (scale in w_down.scale too)
    float scale[7];              // s_w of attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down
} tern_rt_layer;

typedef struct {
    const void *token_embd;      // [vocab, dim], f32 or f16 (embd_type)
    int embd_type;               // TERN_GGML_F32 / TERN_GGML_F16
    const void *output;          // [vocab, dim] logits matrix: token_embd when tied, else output.weight
    int output_type;
    const float *output_norm;    // [dim]
    tern_rt_layer *layers;       // [n_layers]
    void *owned;                 // random models: one buffer holding the fp tensors above
    uint8_t *ternary;            // all layers' repacked ternary weights, in forward order (tern_tmat_gather)
    void *output_copy;           // the logits matrix moved out of the file mapping (see gather_weights)
} tern_rt_weights;

typedef struct {
    int vocab_size;
    int kind;                    // TERN_TOK_LLAMA (tokenizer.ggml.model "llama") / TERN_TOK_GPT2 ("gpt2")
    const char *const *pieces;   // [vocab] NUL-terminated, owned by the GGUF handle
    const float *scores;         // [vocab], NULL when absent (gpt2)
    const int32_t *types;        // [vocab] 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; NULL when absent
    int bos_id, eos_id, unk_id;  // -1: none (llama.cpp's defaults for absent keys)
    int add_bos;                 // tokenizer.ggml.add_bos_token (default: llama 1, gpt2 1 for llama-bpe)
    int add_space_prefix;        // tokenizer.ggml.add_space_prefix (llama kind, default 1)
} tern_rt_vocab;                 // the tokenizer as stored in the GGUF (has_vocab = 0 when absent)

typedef struct {
    tern_rt_config config;
    tern_rt_weights weights;
    tern_rt_vocab vocab;
    int has_vocab;
    tern_gguf *gguf;             // the mapped file (NULL for random models)
    char path[512];
    size_t ternary_bytes;        // bytes of repacked ternary weights (read once per forward)
    size_t fp_bytes;             // bytes of norms + the logits matrix read per forward
    int64_t n_ternary;           // ternary weights (rows*cols) over all BitLinear matrices
} tern_rt_model;

typedef struct {
    int max_batch;   // tokens per forward call at most (B)
    int seq_len;     // KV cache length (<= config.seq_len)
    float *x;        // [B, dim] residual stream
    float *xb;       // [B, max(dim, ffn_dim)] normed input of a BitLinear
    float *xb2;      // [B, dim] BitLinear output
    float *hb;       // [B, ffn_dim]
    float *q;        // [B, dim]
    float *k, *v;    // [B, kv_dim]
    float *att;      // [B, dim] attention output
    int8_t *xq;      // [B, max(dim, ffn_dim)] quantized activations
    int32_t *acc;    // [B, max(dim + 2*kv_dim, 2*ffn_dim)] int32 sums of the fused matrices
    float *sx;       // [B] activation scales
    float *scores;   // [n_threads, seq_len] attention scores
    float *erow;     // [n_threads, dim] an f16 logits-matrix row converted to f32
    int n_threads;   // omp_get_max_threads() at build_state
    float *logits;   // [B, vocab]
    float *key_cache;   // [n_layers, seq_len, kv_dim]
    float *value_cache; // [n_layers, seq_len, kv_dim]
    float *rope;     // [seq_len, head_dim] cos/sin pairs (rope.h tern_rope_angles)
    // one-token forward (decode_one: the whole step in one parallel region of team threads)
    int team;        // threads of that region: n_threads, or 1 for a model under 4 MB of ternary
                     // weights (waking a team costs more); any 1..min(n_threads, TERN_SPLIT_MAX) works (tests set it)
    int xq_pad;      // max(dim, ffn_dim) rounded up to 256
    float *xt;       // [n_threads, dim] each thread's copy of the residual stream
    float *nrow;     // [n_threads, max(dim, ffn_dim)] a normed row
    int8_t *xqt;     // [n_threads, xq_pad] its int8 activations, zero past the row's length
    float *qh;       // [n_threads, head_dim] a query head
    tern_split *splits; // [4 * n_layers, team] the work splits of each layer's 4 products
    void *multi;     // forward_multi's per-thread buffers for its one-region step (allocated on first use)
} tern_rt_state;

// Load a bitnet GGUF: mmap, check architecture/keys/shapes/types, repack ternary weights.
// 0, or -1 + tern_error("path: problem"); on failure the model is freed.
int build_model(tern_rt_model *m, const char *path);
// A model with random ternary weights (uniform std-1 f16 embedding, unit norms, s_w = 0.02), no vocab.
// cfg needs dim, ffn_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len (rest derived).
int build_random_model(tern_rt_model *m, const tern_rt_config *cfg, uint64_t seed);
// A random model's shape: "small" (dim 256, ffn 768, 6 layers, 4 heads, vocab 4096), "2b" (the
// BitNet b1.58 2B4T shape: 2560/6912/30 layers/20 heads, 5 kv heads, vocab 32000) or
// "dim=D,ffn=F,layers=L,heads=H,kv_heads=K,vocab=V[,ctx=C]" (seq_len 0 when no ctx given).
// 0, or -1 + tern_error (tern-bench --random, tern-server --random).
int rt_parse_shape(const char *spec, tern_rt_config *c);
void free_model(tern_rt_model *m);

// Buffers for up to max_batch tokens per forward and a KV cache of seq_len positions
// (0 → the model's context). 0 or -1 + error.
int build_state(tern_rt_state *s, const tern_rt_model *m, int max_batch, int seq_len);
void free_state(tern_rt_state *s);

// Run n tokens (1 <= n <= max_batch) at positions pos .. pos+n-1 (pos+n <= s->seq_len); the KV
// cache must hold positions < pos. Returns logits: [n, vocab] rows when all_logits, else the
// last token's [vocab] only. Pointer into s->logits.
float *forward(const tern_rt_model *m, tern_rt_state *s, const int *tokens, int n, int pos, int all_logits);
// Convenience: forward over any number of tokens in chunks of max_batch; logits of the last one.
float *forward_prompt(const tern_rt_model *m, tern_rt_state *s, const int *tokens, int n, int pos);

// Several sequences in one forward (tern-server's batched decoding: one pass over the weights
// for all rows). Row i is token tokens[i] at position pos[i] of the sequence whose KV cache is
// kv[i]: a state of its own (build_state, any max_batch >= 1) or s itself. A sequence may have
// several rows (a prompt chunk); its cache must hold every position below its rows' positions
// that is not among them; no two rows share a sequence and a position. s supplies the working
// buffers: 1 <= n <= s->max_batch, pos[i] < min(s->seq_len, kv[i]->seq_len). Returns the logits
// of rows out_rows[0..n_out) as [n_out, vocab] (NULL when n_out = 0), in s->logits, or, for a
// single row, in kv[0]->logits (that row then runs the one-token decode step of kv[0]). The
// logits equal those of forward() on each sequence alone bit for bit (test_runtime checks).
float *forward_multi(const tern_rt_model *m, tern_rt_state *s, tern_rt_state *const *kv, const int *tokens, const int *pos, int n,
                     const int *out_rows, int n_out);

// ---- sampler (sampler.c) ----
typedef struct { float prob; int index; } tern_prob_index;
typedef struct {
    int vocab_size;
    float temperature;   // 0: greedy (argmax)
    int top_k;           // 0: off
    float top_p;         // 1: off
    uint64_t rng_state;
    tern_prob_index *probindex; // [vocab]
    float *probs;        // [vocab]
} tern_sampler;
void build_sampler(tern_sampler *s, int vocab_size, float temperature, int top_k, float top_p, uint64_t seed);
void free_sampler(tern_sampler *s);
int sample(tern_sampler *s, const float *logits);   // logits [vocab] (not modified)
int sample_argmax(const float *logits, int n);      // first index of the maximum

// ---- helpers for programs ----
// Total negative log-likelihood of ids[0..n) scored in consecutive windows of ctx inputs that
// overlap by one token: window w feeds ids[w*ctx .. w*ctx+ctx) at positions 0.. and scores the
// next token at each position, so every token but the first is scored once (*scored = n - 1,
// *windows = their count). ctx <= s->seq_len. perplexity = exp(nll / scored).
double rt_nll(const tern_rt_model *m, tern_rt_state *s, const int *ids, int n, int ctx, long *scored, int *windows);
// -1 + tern_error("path: no tokenizer in the file ...") when the GGUF has no tokenizer.ggml.tokens
int rt_require_vocab(const tern_rt_model *m);
// A tern_tokenizer (either kind) from the GGUF's tokenizer.ggml.* keys, validated fully
// (tokenizers/tokenizer_gguf.h). 0 or -1 + error naming the file.
int rt_build_tokenizer(const tern_rt_model *m, tern_tokenizer *t);
// -1 + error when a prompt of n tokens leaves no room to generate in a context of ctx (0: model's)
int rt_check_prompt(const tern_rt_model *m, int n, int ctx);
// log-softmax of logits [vocab] at index target, computed in double
double logprob_of(const float *logits, int vocab, int target);
#endif
