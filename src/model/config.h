// config.h — model and run configuration: structs, defaults, the `key = value` file format.
//
// File format (configs/*.cfg, documented key by key in configs/README.md):
//     # comment                      whole-line comment
//     dim = 256                      integer
//     lr = 2.4e-3                    float
//     schedule = two_stage           enum
//     tied_head = true               bool: 1/0/true/false/yes/no/on/off
//     train_data = data/ts.tok       string, unquoted (ends at '#' or end of line, trimmed)
//     out_dir = "runs/my run"        string, quoted ("\"" and "\\" escapes); '#' allowed inside
// Blank lines are ignored, a key may appear once per file, unknown keys are errors.
// Command-line overrides use the same keys: tern_config_set(&cfg, "lr", "1e-3") or
// tern_config_set_arg(&cfg, "lr=1e-3"). Typical program flow:
//     tern_config cfg; tern_config_defaults(&cfg);
//     if (tern_config_load(&cfg, path) != 0) die(tern_last_error());
//     for each "key=value" argument: tern_config_set_arg(&cfg, arg) ...;
//     if (tern_config_validate(&cfg) != 0) die(tern_last_error());   // also resolves "auto" values
//     tern_config_print(&cfg, stdout);
// Errors are one line (tern_error): "configs/x.cfg:12: unknown key 'dimm' (did you mean 'dim'?)",
// "configs/x.cfg:3: bad value 'abc' for dim (expected integer)", "dim 250 is not divisible by n_heads 4".
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H
#include <stdint.h>
#include <stdio.h>

// FFN activation (key ffn_act): gated SiLU (SwiGLU, LLaMA and llama.cpp's `bitnet`) or gated
// squared ReLU, relu(gate)² · up (Microsoft's BitNet b1.58 2B4T, bitnet.cpp's `bitnet-b1.58`).
// (the runtime, infer/runtime.h, declares the same numbers under the same guard)
#ifndef TERN_FFN_ACT_ENUM
#define TERN_FFN_ACT_ENUM
enum { TERN_FFN_SILU = 0, TERN_FFN_RELU2 = 1 };
#endif
// RoPE frequency scaling (key rope_scaling): none, or LLaMA-3's ("rope_type": "llama3" in Hugging
// Face configs; model/rope.h computes the per-frequency divisors).
enum { TERN_ROPE_SCALING_NONE = 0, TERN_ROPE_SCALING_LLAMA3 = 1 };

// Model hyper-parameters (stored as root attributes of every checkpoint, formats/checkpoint.h).
typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, ffn_dim, vocab_size, seq_len;
    float norm_eps;     // default 1e-5
    float rope_theta;   // default 10000
    int tied_head;      // 1 (default): logits = final_norm(x) · token_embd.weightᵀ
    int ternary;        // 1 (default): BitLinear quantized; 0: full precision
    int ffn_act;        // TERN_FFN_SILU (default) or TERN_FFN_RELU2
    int sub_norms;      // 1 (default): attn_sub_norm and ffn_sub_norm (BitNet); 0: none (plain LLaMA)
    int rope_scaling;   // TERN_ROPE_SCALING_NONE (default) or TERN_ROPE_SCALING_LLAMA3, with:
    float rope_scaling_factor;      //   factor (8 for LLaMA 3.1)
    float rope_low_freq_factor;     //   low_freq_factor (1)
    float rope_high_freq_factor;    //   high_freq_factor (4)
    int rope_original_ctx;          //   original_max_position_embeddings (8192)
} tern_model_config;    // head_dim = dim / n_heads

typedef enum {
    TERN_SCHED_TWO_STAGE = 0,  // BitNet b1.58 two-stage schedule (default), see schedule.h
    TERN_SCHED_COSINE,
    TERN_SCHED_LINEAR,
    TERN_SCHED_CONSTANT,
} tern_schedule_kind;

#define TERN_PATH_MAX 512

// Training run settings. "auto" values (lr, lr2: 0; warmup: -1; written `auto` in files) are
// resolved by tern_config_validate().
typedef struct {
    int batch;             // sequences per micro-batch (default 8)
    int grad_accum;        // micro-batches per optimizer step (default 1)
    long steps;            // optimizer steps (default 1000); recomputed from max_tokens if that is > 0
    long max_tokens;       // token budget (0 = use steps): steps = ceil(max_tokens / (batch*grad_accum*seq_len))
    float lr;              // peak LR; 0 = auto: 2.4e-3 if ternary, 4e-4 if full precision
    float lr2;             // two_stage: LR right after the midpoint drop; 0 = auto: lr * 0.625 (1.5e-3 for 2.4e-3)
    float lr_min;          // LR at the end of training (default 0)
    int schedule;          // tern_schedule_kind (default two_stage)
    long warmup;           // linear warmup steps (default -1 = auto: min(steps/10, 500), 100 for 1000 steps)
    float weight_decay;    // AdamW decoupled weight decay (default 0.1; two_stage: 0 in stage 2)
    float beta1, beta2;    // 0.9, 0.95
    float adam_eps;        // 1e-8
    float clip;            // global grad-norm clip (default 1.0; 0 = off)
    long eval_interval;    // steps between validation evaluations (default 100; 0 = never)
    int eval_batches;      // micro-batches per evaluation (default 10)
    long ckpt_interval;    // steps between checkpoints (default 500; 0 = only at the end)
    int ckpt_keep;         // keep the newest K step checkpoints in out_dir (default 3; 0 = keep all)
    long log_interval;     // steps between log lines/CSV rows (default 10)
    uint64_t seed;         // RNG seed for init and data order (default 1337)
    char train_data[TERN_PATH_MAX];  // token file for training (tokfile.h format)
    char val_data[TERN_PATH_MAX];    // token file for validation ("" = none)
    char tokenizer[TERN_PATH_MAX];   // tokenizer file, copied into checkpoints ("" = none)
    char out_dir[TERN_PATH_MAX];     // checkpoints and train.csv go here (default "runs/default")
    char init_from[TERN_PATH_MAX];   // checkpoint to start from (weights only: fine-tuning); "" = fresh init
    int freeze_embeddings; // 1: token_embd.weight is not updated (default 0)
    long to_ternary_ramp;  // steps over which λ ramps 0→1 (fp → ternary); 0 = ternary from step 0
    char teacher[TERN_PATH_MAX];     // checkpoint of a distillation teacher ("" = none)
    float distill_alpha;   // loss = (1-α)·CE + α·T²·KL(teacher ‖ student) (default 0.5)
    float distill_temp;    // T, the softmax temperature of the KL term (default 1)
    int threads;           // OpenMP threads (0 = OMP_NUM_THREADS / all cores)
    int profile;           // 1: print per-op timing (default 0)
    int recompute;         // 1: keep only each block's input, recompute the block in backward (default 0)
    int precision;         // ternary BitLinear backward: 0 = fp32 (exact), 1 = mixed (engine/graph.h), TERN_PREC_AUTO
                           // (default): tern_config_validate makes it mixed for a ternary model on a CPU whose bf16
                           // products run vdpbf16ps (AVX512-BF16, and TERN_GEMM not lower), else fp32
    int precision_auto;    // 1: precision was auto when validated (a resume keeps the checkpoint's)
    // data-parallel training over MPI (dist/ddp.h); no effect on a single process
    int zero;              // ZeRO stage: 0 = every rank keeps all AdamW state, 1 = sharded (default 0)
    float bucket_mb;       // gradient all-reduce bucket size in MiB (default 4)
    int overlap;           // 1: start each bucket's all-reduce during the backward (default 1)
    long max_memory;       // bytes a run may use (0 = auto: the machine's available memory); see training/memory.h
} tern_run_config;

// Limits enforced by validation (so that no size or count can overflow or allocate without bound;
// the memory estimate of training/memory.h then refuses what does not fit the machine).
#define TERN_MAX_DIM        65536
#define TERN_MAX_LAYERS     1024
#define TERN_MAX_HEADS      1024
#define TERN_MAX_FFN        (1 << 20)
#define TERN_MAX_VOCAB_SIZE (1 << 24)             // so 256k vocabularies (LLaMA-3 128256, Gemma 256000) fit
#define TERN_MAX_SEQ_LEN    32768
#define TERN_MAX_BATCH      (1 << 20)
#define TERN_MAX_GRAD_ACCUM (1 << 20)
#define TERN_MAX_STEPS      1000000000000L          // 1e12 optimizer steps
#define TERN_MAX_RUN_TOKENS (1L << 60)              // steps * tokens per step
#define TERN_MAX_THREADS    1024
#define TERN_MAX_COUNT      (1 << 24)               // eval_batches, ckpt_keep

typedef struct {
    tern_model_config model;
    tern_run_config run;
} tern_config;

void tern_config_defaults(tern_config *c);
void tern_model_config_defaults(tern_model_config *m);   // the model half of tern_config_defaults
// Read a config file over the current values. 0, or -1 with "path:line: problem".
int tern_config_load(tern_config *c, const char *path);
// Parse config text ('what' names it in errors, e.g. "ckpt.h5:/train_state/run_config").
int tern_config_parse(tern_config *c, const char *text, const char *what);
// Set one key from its string value. 0, or -1 with "unknown key 'x'" / "bad value 'v' for k (expected ...)".
int tern_config_set(tern_config *c, const char *key, const char *value);
// "key=value" (for program arguments). -1 also when there is no '='.
int tern_config_set_arg(tern_config *c, const char *arg);
// 1 if s looks like a key=value override ("name=..." with a known key), else 0.
int tern_config_is_arg(const char *s);
// Resolve auto values (lr, lr2, warmup, steps from max_tokens) and check everything, every size and
// count against the TERN_MAX_* limits above and every product of them for overflow. 0, or -1 with
// the first problem (programs prefix it with the config file's name). Ternary BitLinear widths (dim,
// ffn_dim) that are not multiples of 32 are NOT errors
// (tests and small experiments use them) but print one warning to stderr: such models cannot be
// exported to GGUF. Idempotent: validating a resolved config changes nothing.
int tern_config_validate(tern_config *c);
int tern_model_config_validate(const tern_model_config *m);
// warmup = auto resolves to this: min(steps / 10, 500)
long tern_auto_warmup(long steps);
// GGUF export of the BitLinear rows (dim, ffn_dim): 2 = every width a multiple of 256 (TQ2_0/TQ1_0
// blocks); 1 = multiples of 32, some not of 256 (those rows become exact Q8_0, why says which);
// 0 = not exportable (why says which width).
int tern_model_config_exportable(const tern_model_config *m, char *why, size_t n);
// Number of parameters of the model (the parameter list of model/model.h).
long tern_model_config_nparams(const tern_model_config *m);
const char *tern_ffn_act_name(int act);          // "silu", "relu2" or "?"
const char *tern_rope_scaling_name(int kind);    // "none", "llama3" or "?"
#define TERN_PREC_AUTO (-1)                       // run key precision = auto (resolved by tern_config_validate)
const char *tern_precision_name(int p);           // "fp32", "mixed", "auto" or "?" (run key precision)

// The value of one key as tern_config_print writes it, into buf. 0, or -1 for an unknown key.
int tern_config_format(const tern_config *c, const char *key, char *buf, size_t n);

// Print every key as "key = value" lines, model keys first (re-loadable by tern_config_load).
void tern_config_print(const tern_config *c, FILE *f);
// Same text in a malloc'd string (for the checkpoint's run_config). Caller frees.
char *tern_config_to_string(const tern_config *c);

const char *tern_schedule_name(int kind);
// Names of all keys, NULL-terminated (tests check configs/README.md documents each).
const char *const *tern_config_keys(void);

#endif
