// memory.c — the memory estimate of a training run (see memory.h).
#include "training/memory.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "kernels/kernels.h"
#include "kernels/gemm_bf16.h"
#include "formats/checkpoint.h"
#include "model/model.h"
#include "dist/dist.h"
#include "util.h"

#include <errno.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Fixed cost measured on tern-train (x86-64 Debian 12, OpenBLAS 0.3.21 OpenMP build): the RSS of a
// run whose parts above are all near zero: ~20 MiB at 2 threads (libraries, code, HDF5), plus per-thread OpenBLAS
// and OpenMP buffers that the first products touch.
#define RUNTIME_BASE      ((size_t)24 << 20)
#define RUNTIME_PERTHREAD ((size_t)4 << 20)

// one tern_arena_alloc of `bytes`: rounded up to 64, at least 64 (engine/tensor.c)
static size_t A(size_t bytes) { return bytes ? (bytes + 63) & ~(size_t)63 : 64; }
// a tensor of n floats from the arena (tern_new: the struct, then its data)
static size_t NEWT(size_t n) { return A(sizeof(tern_tensor)) + A(4 * n); }

// tern_bitlinear_n of one input [N, K] onto n weights of Ms[j] rows; ternary: the int8 path
// (x_eff, the dequantized input kept for backward, only when the graph records gradients).
static size_t bitlinear_n(size_t N, size_t K, const size_t *Ms, int n, int ternary, int grad) {
    size_t b = 0;
    if (ternary) b += A(4 * N) + A(N * (size_t)((K + 255) / 256 * 256)) + (grad ? A(4 * N * K) : 0);   // sx, xi, x_eff
    for (int j = 0; j < n; j++) {
        b += NEWT(N * Ms[j]);
        // w_eff (fp32 backward; without gradients Wq is packed straight from W), packed Wq
        if (ternary) b += (grad ? A(4 * Ms[j] * K) : 0) + A(tern_tmat_bytes((int)Ms[j], (int)K));
    }
    return b;
}

// The parts of model.c tern_model_forward of B x T tokens (grad: the graph records gradients):
// the embedding, a block's attention half and feed-forward half, and the head up to the logits.
typedef struct { size_t emb, attn, ffn, head; } fwd_parts;

static fwd_parts forward_parts(const tern_model_config *m, int B, int T, int threads, int grad) {
    const size_t N = (size_t)B * T, d = (size_t)m->dim, f = (size_t)m->ffn_dim, V = (size_t)m->vocab_size;
    const size_t H = (size_t)m->n_heads, hd = d / H, kv = (size_t)m->n_kv_heads * hd, nth = (size_t)(threads > 0 ? threads : 1);
    const size_t Tz = (size_t)T;
    const int tq = m->ternary, sub = m->sub_norms;
    const size_t qkv[3] = {H * hd, kv, kv}, gu[2] = {f, f}, dd[1] = {d};
    fwd_parts p = {0, 0, 0, 0};
    p.emb = A(4 * N) + NEWT(N * d);                                  // embedding: ids copy, output
    p.attn += NEWT(N * d) + A(4 * N);                                // rmsnorm attn_norm (+ rstd)
    p.attn += bitlinear_n(N, d, qkv, 3, tq, grad);                   // q, k, v
    p.attn += NEWT(N * H * hd);                                      // rope q (angles: tern_rope_table, one per step)
    p.attn += NEWT(N * kv);                                          // rope k
    p.attn += NEWT(N * H * hd) + A(4 * (size_t)B * H * Tz) + A(4 * nth * Tz * Tz);   // attention, lse, scores
    if (sub) p.attn += NEWT(N * d) + A(4 * N);                       // rmsnorm attn_sub_norm
    p.attn += bitlinear_n(N, d, dd, 1, tq, grad);                    // attn_output
    p.attn += NEWT(N * d);                                           // residual add
    p.ffn += NEWT(N * d) + A(4 * N);                                 // rmsnorm ffn_norm
    p.ffn += bitlinear_n(N, d, gu, 2, tq, grad);                     // gate, up
    p.ffn += NEWT(N * f);                                            // swiglu or relu2_glu (same sizes)
    if (sub) p.ffn += NEWT(N * f) + A(4 * N);                        // rmsnorm ffn_sub_norm
    p.ffn += bitlinear_n(N, f, dd, 1, tq, grad);                     // ffn_down
    p.ffn += NEWT(N * d);                                            // residual add
    p.head = NEWT(N * d) + A(4 * N);                                 // rmsnorm output_norm
    p.head += NEWT(N * V);                                           // logits (token_embd or output.weight)
    return p;
}

static size_t forward_bytes(const tern_model_config *m, int B, int T, int threads, int grad) {
    fwd_parts p = forward_parts(m, B, T, threads, grad);
    return p.emb + (p.attn + p.ffn) * (size_t)m->n_layers + p.head;
}

// tern_cross_entropy over N rows: targets, lse, nll, the loss
static size_t cross_entropy_bytes(size_t N) { return 3 * A(4 * N) + NEWT(1); }

// backward of a block's two halves (graph.c tern_backward: each activation's gradient on first
// use, op scratch), each half's input gradient included: *ffn first (the walk's order), then *attn
static void layer_backward_bytes(const tern_model_config *m, int B, int T, int threads, size_t *attn, size_t *ffn) {
    const size_t N = (size_t)B * T, d = (size_t)m->dim, f = (size_t)m->ffn_dim;
    const size_t H = (size_t)m->n_heads, hd = d / H, kv = (size_t)m->n_kv_heads * hd, nth = (size_t)(threads > 0 ? threads : 1);
    const size_t Tz = (size_t)T;
    const int sub = m->sub_norms;
    size_t lb = 0;
    lb += 2 * A(4 * N * d);                                          // add: d x_mid, d ffn_down out
    if (sub) lb += A(4 * N * f);                                     // d ffn_sub_norm out
    lb += A(4 * N * f) + (sub ? A(4 * nth * f) : 0);                 // d swiglu out, sub-norm dw parts
    lb += 2 * A(4 * N * f);                                          // d gate, d up
    lb += A(4 * N * d);                                              // d ffn_norm out
    lb += A(4 * nth * d);                                            // rmsnorm ffn_norm dw parts
    *ffn = lb;
    lb = 0;
    lb += 2 * A(4 * N * d);                                          // add: d block input, d attn_output out
    if (sub) lb += A(4 * N * d);                                     // d attn_sub_norm out
    lb += A(4 * N * H * hd) + (sub ? A(4 * nth * d) : 0);            // d attention out, sub-norm dw parts
    lb += A(4 * N * H * hd) + 2 * A(4 * N * kv);                     // d q_rope, d k_rope, d v
    lb += A(4 * nth * (2 * Tz * Tz + Tz));                           // attention backward scratch
    lb += A(4 * N * kv) + A(4 * N * H * hd);                         // d k, d q (rope backward)
    lb += A(4 * N * d) + A(4 * nth * d);                             // d attn_norm out, dw parts
    *attn = lb;
}

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

size_t tern_mem_activations(const tern_model_config *m, int B, int T, int threads, int recompute) {
    const size_t N = (size_t)B * T, d = (size_t)m->dim, V = (size_t)m->vocab_size, nth = (size_t)(threads > 0 ? threads : 1);
    const size_t L = (size_t)m->n_layers;
    // the head's backward: d loss, d logits, d final norm; d last block output, rmsnorm dw parts
    const size_t head_bwd = A(4) + A(4 * N * V) + A(4 * N * d) + A(4 * N * d) + A(4 * nth * d);
    size_t ba, bf;
    layer_backward_bytes(m, B, T, threads, &ba, &bf);
    if (!recompute) return forward_bytes(m, B, T, threads, 1) + cross_entropy_bytes(N) + head_bwd + L * (ba + bf);
    // recompute (graph.h tern_checkpoint; model.c checkpoints each half of each block): kept per
    // half its output and the list of its parameters; each half's forward without gradients is
    // given back at once. In backward a half's input gradient, its forward (with gradients, from a
    // copy of its input tensor) and its backward are given back before the next half, the input
    // gradient moved into the buffer of d(half output): each half's backward peaks alike.
    fwd_parts p0 = forward_parts(m, B, T, threads, 0), p1 = forward_parts(m, B, T, threads, 1);
    const size_t keep_a = NEWT(N * d) + A(sizeof(void *) * (m->sub_norms ? 6 : 5));
    const size_t keep_f = NEWT(N * d) + A(sizeof(void *) * (m->sub_norms ? 5 : 4));
    const size_t kept = L * (keep_a + keep_f);
    // forward: the last block's halves run on top of everything kept before them
    const size_t fwd_peak = p1.emb + max2(kept - keep_f + p0.attn, kept + p0.ffn);
    const size_t seg = A(sizeof(tern_tensor)) + max2(p1.attn + ba, p1.ffn + bf);
    const size_t bwd_peak = p1.emb + kept + p1.head + cross_entropy_bytes(N) + head_bwd + seg;
    return max2(fwd_peak, bwd_peak);
}

size_t tern_mem_distill_extra(int B, int T) {
    const size_t N = (size_t)B * T;
    // kl_distill (use, lse_t, lse_s, kl in double, the loss), two scales and their sum; backward:
    // the gradients of those four scalars (the loss's own is counted by tern_mem_activations)
    return A(4 * N) + 2 * A(4 * N) + A(8 * N) + NEWT(1) + 3 * NEWT(1) + 4 * A(4);
}

size_t tern_mem_teacher_arena(const tern_model_config *tc, int T, int threads) {
    // one sequence at a time, no gradients, plus the teacher's cross-entropy in validation
    return forward_bytes(tc, 1, T, threads, 0) + cross_entropy_bytes((size_t)T);
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

size_t tern_mem_mixed_scratch(const tern_model_config *m, int B, int T, int ternary, int threads) {
    const size_t N = (size_t)B * (size_t)T;
    const int bf16 = tern_gemm_best() != TERN_GEMM_PLAIN;
    const int hd = m->dim / m->n_heads, kv = m->n_kv_heads * hd;
    // the projections (out, in): q and o, k and v, gate and up, down (engine/ops_quant.c
    // bitlinear_backward_mixed: dy [N, out] to int8 rows at the transposed weight's padded width,
    // the N row scales, the fp32 product [N, in]; then the bf16 weight-gradient panels)
    const int shapes[4][2] = {{m->dim, m->dim}, {kv, m->dim}, {m->ffn_dim, m->dim}, {m->dim, m->ffn_dim}};
    size_t need = 0;
    if (ternary == 1)
        for (int i = 0; i < 4; i++) {
            const size_t out = (size_t)shapes[i][0], in = (size_t)shapes[i][1], out_pad = (out + 255) / 256 * 256;
            need = max_size(need, (N * out_pad + 63) / 64 * 64 + (4 * N + 63) / 64 * 64 + 4 * N * in);
            if (bf16) need = max_size(need, tern_gemm_dw_scratch((int)out, (int)in, (int)N));
        }
    // the head's three products, out [N, vocab] = h [N, dim] . W [vocab, dim]^T (engine/ops_basic.c):
    // the forward, the weight gradient, the input gradient
    if (bf16) {
        need = max_size(need, tern_gemm_bf16_scratch((int)N, m->vocab_size, m->dim));
        need = max_size(need, tern_gemm_bf16_scratch(m->vocab_size, m->dim, (int)N));
        need = max_size(need, tern_gemm_bf16_scratch((int)N, m->dim, m->vocab_size));
    }
    // the attention's products, one packing buffer per thread (engine/ops_attention.c)
    need = max_size(need, tern_attention_mixed_scratch(T, m->dim / m->n_heads, threads));
    return (need + 4095) / 4096 * 4096;
}

int tern_mem_estimate_run(const tern_config *cfg, const tern_mem_inputs *in, tern_mem_estimate *e) {
    memset(e, 0, sizeof *e);
    const tern_model_config *m = &cfg->model;
    const tern_run_config *r = &cfg->run;
    // parameters exactly as model.c registers them (declared, nothing allocated)
    tern_model decl;
    tern_model_declare(&decl, m);
    e->n_params = decl.params.total;
    tern_model_free(&decl);
    size_t P = (size_t)e->n_params * 4;
    e->params = P;
    e->grads = P;
    int ranks = in && in->ranks > 1 ? in->ranks : 1;
    e->node_ranks = in && in->node_ranks > 1 ? in->node_ranks : 1;
    // ZeRO-1: the rank's slice of m and v (slices balanced to within a grad-norm chunk; rounded up),
    // except while a checkpoint with optimizer state loads (rank 0 holds all of it until shared)
    e->adam = r->zero && ranks > 1 && !(in && in->resuming == 1) ? 2 * (((size_t)e->n_params + (size_t)ranks - 1) / (size_t)ranks + 4096) * 4
                                                                  : 2 * P;
    e->grad_scratch = ranks > 1 || r->grad_accum > 1 ? P : 0;
    int th = in && in->threads > 0 ? in->threads : 1;
    e->mixed_scratch = r->precision == TERN_PREC_MIXED ? tern_mem_mixed_scratch(m, r->batch, m->seq_len, m->ternary, th) : 0;
    e->recompute = r->recompute;
    e->activations = tern_mem_activations(m, r->batch, m->seq_len, th, r->recompute);
    e->batch = 2 * sizeof(int) * (size_t)r->batch * (size_t)m->seq_len;
    size_t tw = 0, vw = 0;
    if (in && in->train_bytes > 64) tw = (in->train_bytes - 64) / 2 / (size_t)m->seq_len;   // at most, 2-byte ids
    if (in && in->val_bytes > 64) vw = (in->val_bytes - 64) / 2 / (size_t)m->seq_len;
    e->loader = 8 * (tw + vw);
    e->token_maps = in ? in->train_bytes + in->val_bytes : 0;
    e->tokenizer = in ? 4 * in->tokenizer_bytes + 48 * (size_t)m->vocab_size : 0;
    e->load_scratch = in && in->resuming == 1 ? 3 * P : in && in->resuming == 2 ? P : 0;
    e->runtime = RUNTIME_BASE + RUNTIME_PERTHREAD * (size_t)th;
    if (in && in->has_teacher) {
        const tern_model_config *tc = &in->teacher;
        tern_model_declare(&decl, tc);
        size_t tp = (size_t)decl.params.total * 4;
        tern_model_free(&decl);
        e->teacher_params = tp;
        e->teacher_logits = 4 * (size_t)r->batch * (size_t)m->seq_len * (size_t)tc->vocab_size;
        e->teacher_activations = tern_mem_teacher_arena(tc, m->seq_len, th);
        e->teacher = e->teacher_params + e->teacher_logits + e->teacher_activations;
        e->activations += tern_mem_distill_extra(r->batch, m->seq_len);
        if (tp > e->load_scratch) e->load_scratch = tp;   // the teacher loads after the student
    }
    size_t sum = 0;
    size_t parts[] = {e->params, e->grads, e->adam, e->grad_scratch, e->mixed_scratch, e->batch, e->loader, e->tokenizer, e->runtime, e->teacher,
                      e->activations > e->load_scratch ? e->activations : e->load_scratch};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (tern_add_size(sum, parts[i], &sum) != 0) { tern_error("memory estimate overflows (absurd sizes)"); return -1; }
    e->peak = sum;
    return 0;
}

static size_t meminfo_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

// reads one number from a file ("max" = unlimited -> 0)
static size_t read_num(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[64] = {0};
    size_t v = 0;
    if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3) != 0) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(buf, &end, 10);
        if (!errno && end != buf) v = (size_t)x;
    }
    fclose(f);
    return v;
}

size_t tern_mem_available(void) {
    size_t avail = meminfo_available();
    // cgroup v2: this process's group (the path after "0::" in /proc/self/cgroup)
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[1024], path[1200];
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "0::", 3) != 0) continue;
            line[strcspn(line, "\n")] = 0;
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
            size_t lim = read_num(path);
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", line + 3);
            size_t cur = read_num(path);
            if (lim && lim > cur && (avail == 0 || lim - cur < avail)) avail = lim - cur;
            break;
        }
        fclose(f);
    }
    return avail;
}

const char *tern_mem_str(size_t b, char *buf, size_t n) {
    if (b >= ((size_t)1 << 30)) snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else if (b >= ((size_t)1 << 20)) snprintf(buf, n, "%.1f MiB", b / 1048576.0);
    else snprintf(buf, n, "%.1f KiB", b / 1024.0);
    return buf;
}

size_t tern_mem_limit(const tern_mem_estimate *e, size_t max_memory) {
    if (max_memory) return max_memory;
    return tern_mem_available() / (size_t)(e->node_ranks > 1 ? e->node_ranks : 1);
}

int tern_mem_check(const tern_mem_estimate *e, size_t max_memory) {
    size_t limit = tern_mem_limit(e, max_memory);
    if (!limit || e->peak <= limit) return 0;
    char a[32], b[32], c[32], d[32], t[32], tw[80] = "";
    if (e->teacher) snprintf(tw, sizeof tw, ", distillation teacher %s", tern_mem_str(e->teacher, t, sizeof t));
    tern_error("the run needs about %s (activations %s per micro-batch, parameters + gradients + AdamW %s%s) but %s %s; "
               "%slower batch or seq_len (raise grad_accum to keep the tokens per step), or the model size",
               tern_mem_str(e->peak, a, sizeof a), tern_mem_str(e->activations, b, sizeof b),
               tern_mem_str(e->params + e->grads + e->adam, c, sizeof c), tw,
               max_memory ? "max_memory is" : e->node_ranks > 1 ? "this rank's share of the machine's available memory is only"
                                                                : "the machine has available only",
               tern_mem_str(limit, d, sizeof d), e->recompute ? "" : "set recompute = 1 (activations of one block at a time), ");
    return -1;
}

void tern_mem_print(const tern_mem_estimate *e, size_t limit, FILE *f) {
    char b[8][32];
    fprintf(f, "# memory: about %s at peak (limit %s): params %s, grads %s, AdamW %s, activations %s per micro-batch",
            tern_mem_str(e->peak, b[0], 32), limit ? tern_mem_str(limit, b[1], 32) : "unknown", tern_mem_str(e->params, b[2], 32),
            tern_mem_str(e->grads, b[3], 32), tern_mem_str(e->adam, b[4], 32), tern_mem_str(e->activations, b[5], 32));
    if (e->recompute) fprintf(f, " (blocks recomputed in backward)");
    if (e->teacher)
        fprintf(f, ", teacher %s (weights %s, logits %s, activations %s; no gradients or AdamW)", tern_mem_str(e->teacher, b[6], 32),
                tern_mem_str(e->teacher_params, b[1], 32), tern_mem_str(e->teacher_logits, b[2], 32),
                tern_mem_str(e->teacher_activations, b[3], 32));
    if (e->grad_scratch) fprintf(f, ", second gradient buffer %s", tern_mem_str(e->grad_scratch, b[6], 32));
    if (e->load_scratch) fprintf(f, ", checkpoint load %s", tern_mem_str(e->load_scratch, b[6], 32));
    if (e->mixed_scratch) fprintf(f, ", precision=mixed scratch %s", tern_mem_str(e->mixed_scratch, b[6], 32));
    fprintf(f, ", other %s", tern_mem_str(e->batch + e->loader + e->tokenizer + e->runtime, b[7], 32));
    if (e->token_maps) fprintf(f, "; token files mapped %s (page cache)", tern_mem_str(e->token_maps, b[0], 32));
    fputc('\n', f);
}

static size_t file_size(const char *path) {
    struct stat st;
    return path[0] && stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size : 0;
}

void tern_mem_inputs_for_run(const tern_config *cfg, int resuming, tern_mem_inputs *in) {
    const tern_run_config *r = &cfg->run;
    memset(in, 0, sizeof *in);
    in->threads = r->threads > 0 ? r->threads : omp_get_max_threads();
    in->resuming = resuming ? 1 : r->init_from[0] ? 2 : 0;
    in->train_bytes = file_size(r->train_data);
    in->val_bytes = file_size(r->val_data);
    in->tokenizer_bytes = file_size(r->tokenizer);
    in->ranks = tern_dist_size();
    in->node_ranks = tern_dist_local_size();
    if (tern_dist_rank() != 0) in->resuming = 0;   // rank 0 alone loads checkpoints
    // a distillation teacher: its shape from the checkpoint (when unreadable, the trainer reports why)
    if (r->teacher[0] && tern_checkpoint_read_config(r->teacher, &in->teacher) == 0) in->has_teacher = 1;
}

int tern_mem_check_run(const tern_config *cfg, int resume, FILE *f) {
    char latest[TERN_PATH_MAX + 16];
    snprintf(latest, sizeof latest, "%s/latest.h5", cfg->run.out_dir);
    tern_mem_inputs in;
    tern_mem_inputs_for_run(cfg, resume && access(latest, R_OK) == 0, &in);
    tern_mem_estimate e;
    if (tern_mem_estimate_run(cfg, &in, &e) != 0) return -1;
    if (f) tern_mem_print(&e, tern_mem_limit(&e, (size_t)cfg->run.max_memory), f);
    return tern_mem_check(&e, (size_t)cfg->run.max_memory);
}
