// runtime.h — tern's standalone CPU inference runtime for BitNet b1.58 models in GGUF.
// llama2.c style: plain structs, build_*/free_*, one forward. libc, libm and OpenMP only (no
// HDF5, no BLAS), so tern-generate & co. can ship alone.
//
// Architectures (general.architecture; hyperparameter keys under "<arch>."):
//   bitnet        llama.cpp's BitNet: SiLU-gated FFN (tern's own SiLU models)
//   bitnet-b1.58  bitnet.cpp's name for Microsoft's BitNet b1.58 2B4T: ReLU²-gated FFN
//   bitnet-25     bitnet.cpp's other ReLU² name (same graph)
// Model (same maths as the training side, model/model.h), per block, x [N, dim]:
//   h = RMSNorm(x; attn_norm); q,k,v = BitLinear(h); RoPE NEOX on q,k; causal GQA attention
//   a = RMSNorm(att; attn_sub_norm); x += BitLinear(a; attn_output)
//   h = RMSNorm(x; ffn_norm); f = act(BitLinear(h; ffn_gate)) * BitLinear(h; ffn_up)
//   f = RMSNorm(f; ffn_sub_norm); x += BitLinear(f; ffn_down)
// act = SiLU (bitnet) or ReLU² = relu(g)^2 (bitnet-b1.58, bitnet-25). Sub-norms are optional: a
// file without any attn_sub_norm/ffn_sub_norm tensors runs without them (config.sub_norms = 0).
// logits = RMSNorm(x; output_norm) . E^T with E = output (untied) or token_embd (tied: no output
// tensor). rope.freq_base from the file (default 10000), GQA from head_count_kv.
// BitLinear: activations quantized per token (quant.h tern_act_quantize_row_i8), int8 x ternary
// products in int32 by the kernels (kernels.h), y = (float)acc * (s_w / s_x).
//
// Tensor types the loader accepts (anything else: one line naming the tensor, its type and these):
//   BitLinear weights  TQ2_0, TQ1_0 (one common block scale d), I2_S (bitnet.cpp: one float scale
//     per tensor), Q8_0 whose values are exactly ternary x one scale (the export fallback for rows
//     that are not a multiple of 256), F32/F16/BF16: values exactly {-a, 0, a} are taken as they
//     are (s_w = a); any other values are latent weights, ternarized per tensor at load exactly as
//     training does (quant.h: s_w = mean|W|, W_q = clip(rint(W/s_w), -1, 1)).
//     s_w is further multiplied by the optional f32 tensor `blk.N.<name>.scale` {1} (tern's export
//     writes d = 1 and the exact fp32 s_w there; llama.cpp multiplies by it too).
//   token_embd / output  F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K: the logits are computed on the
//     stored blocks by kernels/qmatvec.h (no fp32 copy of the matrix); an embedding row is
//     dequantized when a token is looked up.
//   norms  F32.
// All ternary weights are repacked at load into the kernels' layout (in parallel, straight from
// the file's blocks into one buffer on huge pages).
#ifndef TERN_RUNTIME_H
#define TERN_RUNTIME_H
#include <stddef.h>
#include <stdint.h>
#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "kernels/qmatvec.h"
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
    int ffn_act;      // TERN_FFN_SILU or TERN_FFN_RELU2 (from the architecture)
    int sub_norms;    // 1: attn_sub_norm / ffn_sub_norm present (random models: always)
    int tied;         // 1: logits use token_embd (no output tensor)
    char arch[32];    // general.architecture ("random" for random models)
} tern_rt_config;

// the same numbers as model/config.h (either header may come first)
#ifndef TERN_FFN_ACT_ENUM
#define TERN_FFN_ACT_ENUM
enum { TERN_FFN_SILU = 0, TERN_FFN_RELU2 = 1 };
#endif

typedef struct {
    const float *attn_norm;      // [dim]
    const float *attn_sub_norm;  // [dim], NULL when the model has no sub-norms
    const float *ffn_norm;       // [dim]
    const float *ffn_sub_norm;   // [ffn_dim], NULL when the model has no sub-norms
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
    const void *token_embd;      // [vocab, dim] rows of embd_type (any tern_qmat_supported type)
    int embd_type;
    size_t embd_row_bytes;
    const void *output;          // [vocab, dim] logits matrix: token_embd when tied, else output.weight
    int output_type;
    size_t output_row_bytes;
    // the rows' layout for kernels/qmatvec.h: the file's type, or TERN_QMAT_Q8_0X for a Q8_0
    // logits matrix (repacked when it is copied onto huge pages; a tied embedding shares it)
    int embd_layout, output_layout;
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
    int bitlinear_type;          // the file's type of blk.0.attn_q.weight (for reports)
    int latent_tensors;          // BitLinear tensors ternarized at load (latent fp weights)
    double load_s[3];            // build_model's wall seconds: checks, ternary repack, logits-matrix copy
} tern_rt_model;

// KV cache element type (tern_rt_state.kv_type). Q8: per position and KV head, K and V rows of
// head_dim values quantized to int8 with one fp32 scale each (absmax/127; K stored + 128 as u8 so
// the scores are u8 x s8 integer dots); a quarter of F32's bytes, so decode at long contexts reads
// little more than at short ones. F32: exact (the reference).
enum { TERN_KV_F32 = 0, TERN_KV_Q8 = 1 };

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
    float *scores;   // [n_threads, G * seq_len] attention scores of a query group (G = n_heads / n_kv_heads)
    int n_threads;   // omp_get_max_threads() at build_state
    float *logits;   // [B, vocab]
    tern_qvec *lvec; // [B] the final normed rows prepared for the logits matrix's type
    uint8_t *lscratch; // [B, tern_qvec_bytes(dim)] their quantized values
    // KV cache (kv_* helpers in runtime.c hide the layout): kv_type TERN_KV_F32: float K and V
    // [n_layers, seq_len, kv_dim]; TERN_KV_Q8: K as u8 (k + 128) and V as int8 [n_layers,
    // seq_len, kv_dim], their scales float [n_layers, seq_len, n_kv_heads].
    int kv_type;
    void *key_cache, *value_cache;
    float *key_scale, *value_scale;
    float *rope;     // [seq_len, head_dim] cos/sin pairs (rope.h tern_rope_angles)
    // one-token forward (decode_one: the whole step in one parallel region of team threads)
    int team;        // threads of that region: n_threads, or 1 for a model under 4 MB of ternary
                     // weights (waking a team costs more); any 1..min(n_threads, TERN_SPLIT_MAX) works (tests set it)
    int xq_pad;      // max(dim, ffn_dim) rounded up to 256
    float *xt;       // [n_threads, dim] each thread's copy of the residual stream
    float *nrow;     // [n_threads, max(dim, ffn_dim)] a normed row
    int8_t *xqt;     // [n_threads, xq_pad] its int8 activations, zero past the row's length
    float *qh;       // [n_threads, G * head_dim] a query group: the G heads sharing a KV head
    // Q8 KV cache attention: queries quantized ([n_heads + n_threads * G, head_dim]: all heads of
    // a decode step, then per thread a query group), their score factors and corrections; for
    // every head (decode) and per thread (batched): probabilities [.., S] (S = seq_len rounded up
    // to 64), them quantized to u8 [.., S] and their block scales [.., S/64]
    int8_t *qq;
    float *qd;
    int32_t *qsum;
    float *att_p;    // [n_heads, S]
    uint8_t *att_w;  // [n_threads * G + n_heads, S]
    float *att_ws;   // [n_threads * G + n_heads, S / 64]
    tern_split *splits; // [4 * n_layers, team] the work splits of each layer's 4 products
    void *multi;     // forward_multi's per-thread buffers for its one-region step (allocated on first use)
} tern_rt_state;

// Load a bitnet GGUF: mmap, check architecture/keys/shapes/types, repack ternary weights.
// 0, or -1 + tern_error("path: problem"); on failure the model is freed.
int build_model(tern_rt_model *m, const char *path);
// A model with random ternary weights (uniform std-1 f16 embedding, unit norms, s_w = 0.02), no vocab.
// cfg needs dim, ffn_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len (rest derived;
// ffn_act is used as given, sub-norms always present, embedding tied).
int build_random_model(tern_rt_model *m, const tern_rt_config *cfg, uint64_t seed);
// Same with the tied embedding / logits matrix stored as head_type (F16, Q8_0, Q6_K, ...): random
// blocks of that type (for speed measurements; the values are not a quantized f16 matrix).
int build_random_model_typed(tern_rt_model *m, const tern_rt_config *cfg, int head_type, uint64_t seed);
// A random model's shape: a preset "small" (dim 256, ffn 768, 6 layers, 4 heads, vocab 4096),
// "2b" (the BitNet b1.58 2B4T layer shape: 2560/6912/30 layers/20 heads, 5 kv heads, vocab 32000)
// or "2b4t" (2b with vocab 128256, ReLU², q8_0 head), then (or alone) key=value items that
// override it: dim=D,ffn=F,layers=L,heads=H,kv_heads=K,vocab=V,ctx=C (seq_len 0 when no ctx),
// act=silu|relu2, head=TYPE (the tied embedding's type into *head, F16 by default; head NULL:
// refused). 0, or -1 + tern_error (tern-bench --random, tern-server --random).
int rt_parse_shape(const char *spec, tern_rt_config *c, int *head);
void free_model(tern_rt_model *m);

// Buffers for up to max_batch tokens per forward and a KV cache of seq_len positions
// (0 → the model's context), KV cache TERN_KV_Q8 (or env TERN_KV=f32|q8). 0 or -1 + error.
int build_state(tern_rt_state *s, const tern_rt_model *m, int max_batch, int seq_len);
// Same with the KV cache type given (TERN_KV_F32 / TERN_KV_Q8).
int build_state_kv(tern_rt_state *s, const tern_rt_model *m, int max_batch, int seq_len, int kv_type);
// "f32" / "q8" -> TERN_KV_*; -1 if unknown
int rt_kv_parse(const char *s);
const char *rt_kv_name(int kv_type);
void free_state(tern_rt_state *s);

// Run n tokens (1 <= n <= max_batch) at positions pos .. pos+n-1 (pos+n <= s->seq_len); the KV
// cache must hold positions < pos. Returns logits: [n, vocab] rows when all_logits, else the
// last token's [vocab] only. Pointer into s->logits.
float *forward(const tern_rt_model *m, tern_rt_state *s, const int *tokens, int n, int pos, int all_logits);
// Benchmarks: positions 0 .. n-1 of every layer's KV cache filled with random keys and values
// (what a decode step at depth n reads), instead of running a prompt of n tokens.
void rt_kv_fill_random(const tern_rt_model *m, tern_rt_state *s, int n, uint64_t seed);
// Bytes of KV cache one decode step at depth n reads (all layers, K and V, scales included).
size_t rt_kv_bytes(const tern_rt_model *m, const tern_rt_state *s, int n);
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
