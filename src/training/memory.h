// memory.h — how much memory a training or fine-tuning run needs, computed from its config
// before anything is allocated, printed at start-up, and a run that does not fit refused.
//
// The estimate is a sum of named parts (tern_mem_estimate), each the bytes tern itself allocates:
//   params, grads, adam   the flat fp32 buffers of engine/tensor.h (4 bytes x parameters each,
//                         AdamW m and v together; every tensor padded to 16 floats)
//   activations           the graph arena of ONE micro-batch step (forward + backward), exactly as
//                         the ops allocate it (engine/ops_*.c, 64-byte rounded, per-thread scratch
//                         at `threads` threads); with recompute = 1 the kept inputs of every
//                         block's two halves, the head, one input gradient and ONE half-block's
//                         forward + backward (the arena gives each back before the next:
//                         engine/graph.h tern_checkpoint); tests/test_memory.c checks both against the arena's
//                         high-water mark of real steps, so an op that changes what it allocates
//                         must update tern_mem_activations() below
//   batch                 token ids of a micro-batch (inputs and targets)
//   loader                the loaders' window permutations (8 bytes per window, train and val)
//   tokenizer             the tokenizer (file bytes, tables)
//   load_scratch          while a checkpoint loads: its copies of params, m and v (resume), or of
//                         the params (init_from); freed before the first step (data parallel:
//                         rank 0 alone loads)
//   grad_scratch          one more gradient-sized buffer (dist/ddp.h): a later micro-batch's
//                         gradient (grad_accum > 1), and on several ranks the all-reduce send buffer
//   mixed_scratch         with precision = mixed: the graph's one scratch buffer (engine/graph.c
//                         tern_graph_scratch, kept for the run), as large as the largest request:
//                         a ternary BitLinear's input gradient (int8 dy at the weight's padded
//                         width, row scales, the fp32 product) or, where a bf16 kernel runs, its
//                         weight gradient's, the head's or the attention's (per thread) bf16
//                         panels (tern_mem_mixed_scratch)
//   runtime               fixed: program, libraries, OpenBLAS/OpenMP thread buffers, HDF5
//   teacher               with a distillation teacher (run key teacher): its fp32 values only (no
//                         gradients, no AdamW state), the [batch*seq_len, vocab] teacher logits
//                         buffer, and its own arena (one sequence forward, no gradients); the
//                         student's activations then also hold the KL term (tern_mem_distill_extra)
//                         and load_scratch covers loading the teacher
// peak = params + grads + adam + grad_scratch + mixed_scratch + batch + loader + tokenizer + runtime
//        + teacher + max(activations, load_scratch)
// Data parallel: the estimate is one rank's. With zero = 1 on several ranks, adam is the rank's
// slice (1/ranks; rank 0 holds the full m and v while it loads a checkpoint), and the ranks on one
// node share its available memory equally (the auto limit is MemAvailable / ranks on the node).
// token_maps (the mmap'd token files) is reported but not in peak: the kernel can drop and
// re-read those pages (page cache), so they need no free memory.
//
// Extending it (a teacher model for distillation, recomputation, data parallelism...): add a
// field, fill it in tern_mem_estimate_run from the config, add it to peak there and to the
// printout; keep the test's comparison with measured usage.
#ifndef TERN_MEMORY_H
#define TERN_MEMORY_H
#include <stddef.h>
#include <stdio.h>

#include "model/config.h"

typedef struct {
    size_t params, grads, adam;    // fp32 flat buffers
    size_t activations;            // graph arena of one micro-batch step
    size_t batch;                  // input/target ids
    size_t loader;                 // window permutations
    size_t tokenizer;
    size_t load_scratch;           // transient, while a checkpoint loads
    size_t grad_scratch;           // second gradient buffer (accumulation, all-reduce send buffer)
    size_t mixed_scratch;          // precision = mixed: the graph's scratch buffer
    size_t runtime;                // fixed overhead
    size_t teacher;                // distillation teacher: the three below (0: none)
    size_t teacher_params, teacher_logits, teacher_activations;
    size_t token_maps;             // mmap'd token files (reported, not in peak)
    size_t peak;                   // what the run needs at most
    long n_params;                 // parameters (floats in the flat buffers, padding included)
    int recompute;                 // activations with the run key recompute = 1
    int node_ranks;                // ranks sharing this machine's memory (>= 1)
} tern_mem_estimate;

typedef struct {
    int threads;                 // OpenMP threads the run uses (>= 1)
    int resuming;                // 1: loads a checkpoint with optimizer state; 2: weights only (init_from)
    size_t train_bytes, val_bytes;   // token file sizes (0 = none / unknown)
    size_t tokenizer_bytes;      // tokenizer file size (0 = none)
    int ranks, node_ranks;       // data-parallel ranks, and those on this node (0 = 1)
    int has_teacher;             // 1: distillation from a teacher of shape `teacher`
    tern_model_config teacher;
} tern_mem_inputs;

// precision = mixed: the bytes of the graph's scratch buffer after one training step of B
// sequences of T tokens with BitLinear mode `ternary` (1: the mixed backward; else fp32 products)
// on this many threads (the attention packs per thread)
size_t tern_mem_mixed_scratch(const tern_model_config *m, int B, int T, int ternary, int threads);

// The inputs of a run as tern_trainer_init sees them: threads (threads key, else OpenMP's),
// the sizes of train_data, val_data and tokenizer, what it loads (resuming: 1 = a
// checkpoint with optimizer state; else init_from, if set, = 2; only rank 0 loads), the
// ranks of dist/dist.h, and the teacher's shape (read from the teacher checkpoint's attributes).
void tern_mem_inputs_for_run(const tern_config *cfg, int resuming, tern_mem_inputs *in);
// Estimate for a run (resume: 1 when out_dir/latest.h5 will be resumed), print it with the limit
// it is checked against (tern_mem_print; f may be NULL) and check it (tern_mem_check). For
// programs, before tern_trainer_init (which checks again): 0, or -1 with tern_error.
int tern_mem_check_run(const tern_config *cfg, int resume, FILE *f);

// Graph arena bytes of one training step (forward + loss + backward) of micro-batch B x T;
// recompute: the run key (model.h), each block's activations recomputed in backward.
size_t tern_mem_activations(const tern_model_config *m, int B, int T, int threads, int recompute);
// What logit distillation adds to the student's step arena (kl_distill and the weighted sum).
size_t tern_mem_distill_extra(int B, int T);
// The teacher's arena: one sequence of T forward without gradients, plus its cross-entropy.
size_t tern_mem_teacher_arena(const tern_model_config *tc, int T, int threads);
// Fill e from a validated config. 0, or -1 with tern_error on overflow (absurd sizes).
int tern_mem_estimate_run(const tern_config *cfg, const tern_mem_inputs *in, tern_mem_estimate *e);
// Memory this process may still use: MemAvailable (/proc/meminfo), lowered to the cgroup's
// memory.max - memory.current when that is smaller. 0 when unknown.
size_t tern_mem_available(void);
// The limit an estimate is checked against: max_memory (config, per process), or 0 = auto:
// tern_mem_available() / e->node_ranks (0 when unknown).
size_t tern_mem_limit(const tern_mem_estimate *e, size_t max_memory);
// Refuse an estimate that exceeds tern_mem_limit(e, max_memory): -1 with a one-line
// tern_error naming the biggest parts and what to change. 0 when it fits (or nothing is known).
int tern_mem_check(const tern_mem_estimate *e, size_t max_memory);
// One line per part, "# memory: ..." (for the start-up printout).
void tern_mem_print(const tern_mem_estimate *e, size_t limit, FILE *f);
// "1.23 GiB" / "456.0 MiB" / "12.0 KiB" into buf.
const char *tern_mem_str(size_t bytes, char *buf, size_t n);

#endif
