// ddp.h — data-parallel gradients and the sharded optimizer (ZeRO stage 1) over the world of dist.h.
//
// Gradients. Each rank computes the gradient of its share of the global batch (trainer.h); the
// flat gradient buffer (tern_params.grad) is then summed over ranks. The loss of every micro-batch
// is seeded with (its sequences / global batch sequences), so the sum is the global-batch mean.
// The buffer is cut into buckets of whole tensors (about bucket_mb MiB each) in reverse
// registration order (head, last block, ..., first block, embedding), which is the order the
// backward finishes them. With overlap, a graph hook (engine/graph.h node_hook) notices during the
// LAST local micro-batch's backward when every tensor of the next bucket has its final gradient and
// hands that bucket to a communication thread, which starts its non-blocking sum (MPI_Iallreduce)
// at once and keeps MPI progressing (Open MPI's non-blocking collectives advance only inside MPI
// calls), so communication runs under the rest of the backward, as PyTorch DDP and Horovod do.
// tern_ddp_sync waits for what is left. Buckets start in the same order on every rank (MPI matches
// collectives by order). Without MPI_THREAD_MULTIPLE (or TERN_MPI_PROGRESS=inline) there is no
// thread: the hook starts the buckets and polls MPI between graph nodes itself.
// On several ranks the last local micro-batch's gradient goes to `scratch`, which is the send
// buffer, and the sum arrives in tern_params.grad: never MPI_IN_PLACE, because Open MPI's
// non-blocking all-reduce (coll/libnbc) then always takes the binomial tree (everything through
// rank 0: 2·log2(N) gradient sizes on its links) where otherwise, from 4 ranks and 64 KiB up, it
// takes Rabenseifner's reduce-scatter + all-gather (2 gradient sizes). The price is one more
// gradient-sized buffer per rank.
//
// Deterministic accumulation. Every micro-batch's gradient is computed into a zeroed buffer and
// added to the step's sum in micro-batch order (not accumulated inside the ops' backward), and ranks
// are summed by MPI. So 2 ranks × 1 micro-batch and 1 rank × 2 micro-batches (grad_accum = 2) both
// compute fl(g0 + g1): bit-identical training (fp addition is commutative). Other splits agree to
// fp32 rounding (the order of a sum of more than two terms differs).
//
// Optimizer. zero = 0: the all-reduced gradient is complete on every rank; every rank runs the same
// deterministic norm / clip / AdamW (optim.h) on the whole buffer, so weights stay identical.
// zero = 1 (ZeRO stage 1): rank r owns the slice [shard_lo, shard_hi) of the flat buffers (slice
// bounds on grad-norm chunk starts, sizes balanced); AdamW's m and v exist only for it (optimizer
// memory / N), the global grad norm is the in-order sum of every rank's chunk partial sums
// (bit-identical to zero = 0's), each rank clips and updates its slice, and the new weights are
// all-gathered (MPI_Iallgatherv). The gradient sum: on 2 or 3 ranks MPI_Ireduce_scatter delivers
// each rank its slice only (libnbc: a binomial reduce to rank 0, then a scatter: cheapest for so
// few ranks); from 4 ranks up that would funnel log2(N) gradient sizes through rank 0, so the
// bucket is all-reduced as with zero = 0 and each rank reads its slice (1.5x zero = 0's bytes per
// step, with the weight all-gather). Either way zero = 1 equals zero = 0 bit for bit (the same sums).
//
// Checkpoints hold the full m and v whatever the rank count: tern_ddp_moments gathers them to rank
// 0 for a save, tern_ddp_share_state hands rank 0's loaded state to every rank at start.
#ifndef TERN_DDP_H
#define TERN_DDP_H
#include "engine/graph.h"
#include "engine/tensor.h"
#include "training/optim.h"

typedef struct {
    long lo, hi;          // element range [lo, hi) of the flat buffers
    int t_lo, t_hi;       // parameter tensors t_lo .. t_hi (registration order)
} tern_bucket;

typedef struct {
    long steps;             // optimizer steps measured (the trainer clears these after its first step)
    double t_wait;          // seconds blocked on gradient reduction after the backward (exposed)
    double t_skew;          // of which: waiting for slower ranks (slowest rank's forward + backward
                            // time minus this rank's), not communication
    double t_optim_comm;    // seconds in the optimizer's collectives (ZeRO-1 norm partials, weight all-gather)
    double t_launch;        // seconds spent starting buckets and polling MPI inside the backward
    double bytes_reduced;   // gradient bytes summed over ranks per step (per rank's buffer)
    double bytes_gathered;  // weight bytes all-gathered per step (ZeRO-1)
} tern_ddp_stats;

typedef struct {
    tern_params *p;
    tern_adamw *opt;
    int rank, size, zero, overlap;
    // micro-batch accumulation
    float *scratch;         // (p->total,) one micro-batch's gradient: a later one, or the last one on
                            // several ranks (the send buffer); NULL until needed
    int micro, last;        // current local micro-batch, and whether it is the last one
    // buckets, in launch order
    int nb;
    tern_bucket *b;
    int *tensor_bucket;     // (p->n,) bucket of each tensor
    int *pending;           // (nb,) tensors of the bucket still without their final gradient
    int next;               // next bucket to start (no communication thread)
    int prepared;           // buckets whose send data is complete (handed to MPI or the thread)
    void *ct;               // the communication thread (ddp.c), or NULL
    int in_scratch;         // this micro-batch's gradient goes to scratch
    int scatter;            // ZeRO-1 on 2 or 3 ranks: MPI_Ireduce_scatter (else MPI_Iallreduce, see ddp.c)
    int hooked;             // the graph hook is set for this backward
    const tern_graph *graph;  // the graph whose backward is hooked
    int planned;            // first-use plan built for this backward
    int *order, *order_start; // tensors by the first graph node that uses them (counting sort)
    int cap_nodes;
    void *reqs;             // MPI_Request[nb]
    int *recvcounts;        // ZeRO-1: (nb * size,) each bucket's piece per rank
    // ZeRO-1 slice
    long *shard;            // (size + 1,) rank r owns [shard[r], shard[r+1])
    long shard_lo, shard_hi;
    float *gshard;                   // p->grad + shard_lo: the slice of the summed gradient
    float *mshard, *vshard;          // (shard_hi - shard_lo,) AdamW m and v of the slice
    int *npart, *part_displ;         // (size,) norm chunk partial sums per rank
    double *partials;                // (opt->nchunks,)
    tern_ddp_stats stats;
    double step_t0;
} tern_ddp;

// After the model registered and allocated its parameters and the optimizer is set up (freezes
// included). bucket_mb > 0. In a world of one no buckets are made and nothing is communicated.
void tern_ddp_init(tern_ddp *d, tern_params *p, tern_adamw *o, int zero, float bucket_mb, int overlap);
void tern_ddp_free(tern_ddp *d);

// Start of a run: rank 0's weights (and, when have_moments on rank 0, its m and v) go to every rank
// (zero = 1: each rank keeps its slice of m and v, and the full p->m, p->v are freed).
void tern_ddp_share_state(tern_ddp *d, int have_moments);

// One optimizer step:
//   tern_ddp_step_begin(d)                                   zero the gradient sum
//   for each local micro-batch a = 0 .. n-1:
//       tern_ddp_micro_begin(d, g, a, a == n - 1)            before its forward
//       forward; tern_backward(g, loss, sequences / global sequences)
//       tern_ddp_micro_end(d, g)
//   tern_ddp_sync(d)                                         the summed gradient is ready
//   tern_ddp_optim_step(d, ...)                              norm, clip, AdamW, (ZeRO-1) all-gather
void tern_ddp_step_begin(tern_ddp *d);
void tern_ddp_micro_begin(tern_ddp *d, tern_graph *g, int micro, int last);
void tern_ddp_micro_end(tern_ddp *d, tern_graph *g);
void tern_ddp_sync(tern_ddp *d);
// As tern_optim_step: 0 when applied, 1 when skipped because the global norm is not finite (every
// rank returns 1; tern_error names the first non-finite element of any rank).
int tern_ddp_optim_step(tern_ddp *d, long t, float lr, float wd, float clip, double *gnorm);

// Full m and v for a checkpoint, between steps. zero = 0: *m, *v = p->m, p->v. zero = 1: collective;
// rank 0 gets every rank's slices gathered into the idle send buffer and gradient buffer (no extra
// memory; valid until the next step), the other ranks NULL. Returns 1 when *m, *v were gathered.
int tern_ddp_moments(tern_ddp *d, float **m, float **v);
// Hash of the weights, checked equal on every rank: 0, or -1 with tern_error naming a rank that differs.
int tern_ddp_check_weights(tern_ddp *d, uint64_t *hash);

#endif
