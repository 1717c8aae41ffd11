// optim.h — AdamW over the flat tern_params buffers, global grad-norm clipping, NaN/Inf checks.
//
// Update for every element of every non-frozen parameter, t = 1-based step count:
//     g = grad (after clipping)
//     m = β1·m + (1-β1)·g ;  v = β2·v + (1-β2)·g²
//     w = w - lr·wd·w                      (decoupled weight decay; skipped when tensor->no_decay)
//     w = w - lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + ε)
// (PyTorch AdamW's order of operations.) Frozen tensors are not updated, their m/v stay as they are
// and their gradients do not count in the global norm.
//
// Global grad norm: sqrt(Σ g²) over non-frozen parameters, summed in double over a FIXED chunking
// (TERN_NORM_CHUNK elements per chunk, chunks never span tensors; each chunk summed sequentially,
// chunk sums added in order), so the result is bit-identical for any number of threads.
// Clipping: if norm > clip (clip > 0), every gradient is multiplied by clip / norm.
#ifndef TERN_OPTIM_H
#define TERN_OPTIM_H
#include "model/config.h"
#include "engine/tensor.h"

#define TERN_NORM_CHUNK 8192

typedef struct {
    float beta1, beta2, eps;
    int n;                  // number of parameter tensors (== params->n at init)
    unsigned char *frozen;  // (n,) 1: tensor is not updated and not counted in the grad norm
    int nchunks;            // grad-norm plan: chunk c covers grad[chunk_off[c] .. + chunk_len[c])
    long *chunk_off;        // (nchunks,)
    int *chunk_len;         // (nchunks,)
    double *partial;        // (nchunks,) scratch
} tern_adamw;

// Call after the model registered its parameters (tern_params_alloc done or not).
void tern_adamw_init(tern_adamw *o, const tern_params *p, float beta1, float beta2, float eps);
// beta1/beta2/adam_eps from the run config; freezes token_embd.weight when run->freeze_embeddings.
void tern_adamw_init_run(tern_adamw *o, const tern_params *p, const tern_run_config *run);
// Freeze a parameter by name. 0, or -1 (tern_error) if there is no such parameter.
int tern_adamw_freeze(tern_adamw *o, const tern_params *p, const char *name);
void tern_adamw_free(tern_adamw *o);

// Global L2 norm of the non-frozen gradients (deterministic, see above). NaN/Inf if any gradient is.
double tern_grad_norm(tern_adamw *o, const tern_params *p);
// 0 if all non-frozen gradients are finite; else -1 and tern_error("non-finite gradient in NAME[i] (= nan)").
int tern_grads_check(const tern_adamw *o, const tern_params *p);
// Scale gradients so the global norm is at most clip (clip <= 0: no-op). Returns the factor applied.
float tern_clip_grads(tern_adamw *o, tern_params *p, double norm, float clip);
// One AdamW update with bias correction for step t (1-based).
void tern_adamw_update(tern_adamw *o, tern_params *p, long t, float lr, float wd);
// Slices of the flat buffers, for the sharded optimizer of dist/ddp.h (ZeRO stage 1: each rank
// updates the elements [lo, hi) only). g, m, v point at element lo (g[k - lo] is element k's
// gradient); parameter values are p->data (whole buffer). Frozen tensors are skipped as above.
// The full-buffer functions above are these on [0, p->total) with p->grad, p->m, p->v.
// Norm partials: the sums of squares of the non-frozen norm chunks that start in [lo, hi), in the
// global chunk order, into out[] (room for o->nchunks); returns how many. With lo and hi on chunk
// starts (or 0 / p->total), the partials of consecutive slices concatenated are exactly
// tern_grad_norm's chunk sums, so sqrt(their in-order sum) is bit-identical to tern_grad_norm.
int tern_grad_norm_partials(tern_adamw *o, const tern_params *p, const float *g, long lo, long hi, double *out);
int tern_grads_check_range(const tern_adamw *o, const tern_params *p, const float *g, long lo, long hi);
void tern_clip_range(const tern_adamw *o, const tern_params *p, float *g, long lo, long hi, float scale);
void tern_adamw_update_range(tern_adamw *o, tern_params *p, const float *g, float *m, float *v, long lo, long hi,
                             long t, float lr, float wd);

// norm → check → clip → update. Returns 0 when the update was applied, 1 when it was skipped because
// a gradient is NaN/Inf (tern_error names the first bad element; parameters and m/v untouched).
// *gnorm receives the norm before clipping (may be NULL).
int tern_optim_step(tern_adamw *o, tern_params *p, long t, float lr, float wd, float clip, double *gnorm);

#endif
