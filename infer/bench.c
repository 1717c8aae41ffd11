// bench.c — prefill and decode speed of the runtime, like llama-bench.
//   tern-bench -m model.gguf [-p 128] [-n 64] [-r 3] [-b 64] [--kernel K[,K2...]] [--kv q8|f32] [-d depth]
//   tern-bench --random dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=32000[,ctx=512][,head=q8_0][,act=relu2]
//   tern-bench --random 2b4t[,head=q6_k]   the BitNet b1.58 2B4T shape (vocab 128256, ReLU², head q8_0)
//   tern-bench --random 2b4t --save FILE [--type tq2_0|tq1_0|i2_s]
//                                   writes a GGUF of that shape with random weights (and a placeholder
//                                   tokenizer) instead of benchmarking: the same weights for tern,
//                                   llama.cpp and bitnet.cpp (i2_s), and the file for load-time tests
//   tern-bench --random 2b --streams 1,2,4,8 [-n 16] [-d 64]
//                                   S sequences per decode step (forward_multi, tern-server's batched
//                                   decoding without HTTP): aggregate tok/s per S and the ratio to the first
//   tern-bench --bandwidth [MB]     the machine's limits: read bandwidth and VNNI peak (all OpenMP threads)
// Prints the load time and medians over -r runs: prefill and decode tokens/s, effective GB/s read
// per decoded token (weights, the logits matrix, and the KV cache at that depth), integer GOPS
// (2 ops per ternary weight per token). -d D: decode at depth D (the KV cache filled with random
// entries for positions 0..D-1 instead of a D-token prompt; no prefill is timed). With several
// kernel kinds (--kernel avx2,avxvnni,avx512; --kernel all: every vector kind the CPU has) every
// repeat runs each kind in turn, so a shared machine's drift hits all of them alike; each kind gets
// its own medians, plus ratios to the first kind.
#include "membench.h"
#include "runtime.h"
#include "formats/ggml_types.h"
#include "formats/tqpack.h"
#include "util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f, int rc) {
    fprintf(f,
            "usage: tern-bench (-m model.gguf | --random dim=D,ffn=F,layers=L,heads=H,kv_heads=K,vocab=V[,ctx=C][,head=T][,act=silu|relu2]\n"
            "                   | --random small|2b|2b4t[,key=value...])\n"
            "                  [-p prefill_tokens=128] [-n decode_tokens=64] [-r reps=3] [-b batch=64] [-d decode_depth=0]\n"
            "                  [--kernel K[,K...]] [--kv q8|f32] [--seed S]     K: " TERN_KERNEL_NAMES "\n"
            "                  (several kinds: each repeat runs each kind in turn; medians per kind;\n"
            "                   all = every vector kind this CPU has)\n"
            "       tern-bench (-m model.gguf | --random SHAPE) --streams S[,S...] [-n steps=64] [-d depth=0] [-r reps=3] [--kv q8|f32]\n"
            "       tern-bench (-m model.gguf | --random SHAPE) --depths D[,D...] [-n decode_tokens=64] [-r reps=3] [--kv q8|f32]\n"
            "                  (decode at each depth in turn within every repeat, one KV cache: tok/s and the ratio to the first depth)\n"
            "                  (several sequences per decode step, as tern-server batches them: aggregate tok/s per S)\n"
            "       tern-bench --random SHAPE --save out.gguf [--type tq2_0|tq1_0|i2_s] [--seed S]\n"
            "       tern-bench --bandwidth [MB=1024]\n"
            "  -p, -n 0..65536 (not both 0)   -r 1..1000   -b 1..4096   -d 0..1048576   MB 1..65536\n");
    exit(rc);
}

static double median(double *v, int n) { return tern_median(v, n); }

// CPU seconds used by the whole process (all threads)
static double cpu_time(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// ---- --save: a GGUF of the random shape ----------------------------------------------------
// architecture `bitnet` (SiLU) or `bitnet-b1.58` (act=relu2); BitLinear weights random {-1, 0, 0,
// +1} with s_w 0.02 (tq2_0/tq1_0: d = 1 + a .scale tensor, as tern-export writes; i2_s: its own
// scale); norms 1; the tied embedding uniform with std 1, stored as head=TYPE; a placeholder
// "llama" tokenizer (pieces "<0x00>".."<0xFF>" and "t<i>") so every loader accepts the file.
static int save_random(const tern_rt_config *c, int head, int ttype, uint64_t seed, const char *out) {
    const char *arch = c->ffn_act == TERN_FFN_RELU2 ? "bitnet-b1.58" : "bitnet";
    tern_gguf_writer *w = tern_gguf_writer_new();
    char key[128];
#define K(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    tern_gguf_add_str(w, "general.architecture", arch);
    tern_gguf_add_str(w, "general.name", "tern-random");
    tern_gguf_add_u32(w, "general.file_type", ttype == TERN_GGML_TQ2_0 ? 37u : ttype == TERN_GGML_TQ1_0 ? 36u : 40u);
    tern_gguf_add_u32(w, K("context_length"), 4096);
    tern_gguf_add_u32(w, K("embedding_length"), (uint32_t)c->dim);
    tern_gguf_add_u32(w, K("block_count"), (uint32_t)c->n_layers);
    tern_gguf_add_u32(w, K("feed_forward_length"), (uint32_t)c->ffn_dim);
    tern_gguf_add_u32(w, K("attention.head_count"), (uint32_t)c->n_heads);
    tern_gguf_add_u32(w, K("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    tern_gguf_add_f32(w, K("attention.layer_norm_rms_epsilon"), 1e-5f);
    tern_gguf_add_f32(w, K("rope.freq_base"), c->ffn_act == TERN_FFN_RELU2 ? 500000.0f : 10000.0f);
    tern_gguf_add_u32(w, K("rope.dimension_count"), (uint32_t)(c->dim / c->n_heads));
    tern_gguf_add_u32(w, K("vocab_size"), (uint32_t)c->vocab_size);
#undef K
    const int V = c->vocab_size;
    char **pieces = tern_xmalloc(sizeof(char *) * (size_t)V);
    float *scores = tern_xmalloc(sizeof(float) * (size_t)V);
    int32_t *types = tern_xmalloc(sizeof(int32_t) * (size_t)V);
    for (int i = 0; i < V; i++) {
        pieces[i] = tern_xmalloc(16);
        if (i < 3) snprintf(pieces[i], 16, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259) snprintf(pieces[i], 16, "<0x%02X>", i - 3);
        else if (i == 259) snprintf(pieces[i], 16, "\xe2\x96\x81");   // U+2581, the space piece a tokenizer needs
        else snprintf(pieces[i], 16, "t%d", i);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
        scores[i] = -(float)i;
    }
    tern_gguf_add_str(w, "tokenizer.ggml.model", "llama");
    tern_gguf_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, (uint64_t)V);
    tern_gguf_add_arr(w, "tokenizer.ggml.scores", TERN_GGUF_FLOAT32, scores, (uint64_t)V);
    tern_gguf_add_arr(w, "tokenizer.ggml.token_type", TERN_GGUF_INT32, types, (uint64_t)V);
    // the embedding: f32 rows quantized to the head type, row by row in parallel
    const size_t rb = tern_ggml_row_bytes(head, c->dim);
    uint8_t *E = tern_xmalloc(rb * (size_t)V);
    #pragma omp parallel
    {
        float *row = tern_xmalloc(sizeof(float) * (size_t)c->dim);
        #pragma omp for schedule(static)
        for (int r = 0; r < V; r++) {
            tern_rng rr;
            tern_rng_seed(&rr, seed * 0x9E3779B97F4A7C15ull + (uint64_t)r);
            for (int i = 0; i < c->dim; i++) row[i] = 3.4641f * (tern_rng_uniform(&rr) - 0.5f);
            tern_ggml_quantize(head, row, c->dim, E + (size_t)r * rb);
        }
        free(row);
    }
    int64_t ne2[2] = {c->dim, V};
    int rc = tern_gguf_add_tensor(w, "token_embd.weight", 2, ne2, head, E, rb * (size_t)V);
    // norms (all 1) and BitLinear tensors
    const int hd = c->dim / c->n_heads, kvd = c->n_kv_heads * hd;
    float *ones = tern_xmalloc(sizeof(float) * (size_t)(c->ffn_dim > c->dim ? c->ffn_dim : c->dim));
    for (int i = 0; i < (c->ffn_dim > c->dim ? c->ffn_dim : c->dim); i++) ones[i] = 1.0f;
    static const float sw = 0.02f;
    const float one = 1.0f;
    const char *names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    const int rows[7] = {c->dim, kvd, kvd, c->dim, c->ffn_dim, c->ffn_dim, c->dim};
    const int cols[7] = {c->dim, c->dim, c->dim, c->dim, c->dim, c->dim, c->ffn_dim};
    void **blobs = tern_xcalloc(7 * (size_t)c->n_layers, sizeof(void *));
    for (int l = 0; l < c->n_layers && !rc; l++) {
        char name[96];
        const char *nn[4] = {"attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"};
        for (int k = 0; k < 4; k++) {
            int64_t ne1[1] = {k == 3 ? c->ffn_dim : c->dim};
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, nn[k]);
            rc |= tern_gguf_add_tensor(w, name, 1, ne1, TERN_GGML_F32, ones, sizeof(float) * (size_t)ne1[0]);
        }
        for (int j = 0; j < 7; j++) {
            const int64_t n = (int64_t)rows[j] * cols[j];
            int8_t *q = tern_xmalloc((size_t)n);
            #pragma omp parallel for schedule(static)
            for (int64_t o = 0; o < n; o += 65536) {
                tern_rng rr;
                tern_rng_seed(&rr, (seed + 1000003ull * (uint64_t)(7 * l + j + 1)) * 0x9E3779B97F4A7C15ull + (uint64_t)o);
                for (int64_t i = o; i < n && i < o + 65536; i += 32) {
                    uint64_t x = tern_rng_u64(&rr);
                    for (int b = 0; b < 32 && i + b < n; b++, x >>= 2) q[i + b] = (int8_t)((x & 3) == 0 ? -1 : (x & 3) == 3 ? 1 : 0);
                }
            }
            size_t nb = ttype == TERN_GGML_TQ2_0 ? tern_tq2_bytes(n) : ttype == TERN_GGML_TQ1_0 ? tern_tq1_bytes(n) : (size_t)n / 4 + 32;
            void *blk = blobs[7 * l + j] = tern_xmalloc(nb);
            rc |= ttype == TERN_GGML_TQ2_0 ? tern_tq2_pack(q, n, 1.0f, blk) : ttype == TERN_GGML_TQ1_0 ? tern_tq1_pack(q, n, 1.0f, blk)
                                                                           : tern_i2s_pack(q, n, sw, blk);
            free(q);
            int64_t ne[2] = {cols[j], rows[j]};
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[j]);
            rc |= tern_gguf_add_tensor(w, name, 2, ne, ttype, blk, nb);
            if (ttype != TERN_GGML_I2_S) {
                int64_t o1[1] = {1};
                snprintf(name, sizeof name, "blk.%d.%s.scale", l, names[j]);
                rc |= tern_gguf_add_tensor(w, name, 1, o1, TERN_GGML_F32, &sw, sizeof(float));
            }
        }
    }
    int64_t nd[1] = {c->dim};
    rc |= tern_gguf_add_tensor(w, "output_norm.weight", 1, nd, TERN_GGML_F32, ones, sizeof(float) * (size_t)c->dim);
    (void)one;
    if (!rc) rc = tern_gguf_write(w, out);
    tern_gguf_writer_free(w);
    for (int i = 0; i < 7 * c->n_layers; i++) free(blobs[i]);
    free(blobs);
    free(E);
    free(ones);
    for (int i = 0; i < V; i++) free(pieces[i]);
    free(pieces);
    free(scores);
    free(types);
    if (rc) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    printf("wrote %s: %s, %s BitLinear weights, %s embedding, dim %d ffn %d layers %d heads %d/%d vocab %d\n", out, arch,
           tern_ggml_type_name(ttype), tern_ggml_type_name(head), c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, V);
    return 0;
}

// machine limits: read bandwidth, median and best of 7 streaming reads of an mb-MiB buffer with all threads
static void print_bandwidth(long mb) {
    size_t n = (size_t)mb << 20;
    uint8_t *buf = tern_alloc_huge(n);   // huge pages, like the runtime's weights
    memset(buf, 1, n);
    double best, med = tern_membench_read(buf, n, omp_get_max_threads(), 7, &best);
    free(buf);
    printf("memory read bandwidth: %.1f GB/s best, %.1f median (%d threads, %ld MiB buffer, 7 reads)\n", best, med,
           omp_get_max_threads(), mb);
    med = tern_membench_vnni_peak(omp_get_max_threads(), 7, &best);
    if (best > 0) printf("VNNI peak: %.1f GOPS best, %.1f median (%d threads, register-only vpdpbusd)\n", best, med, omp_get_max_threads());
}


// ---- --streams: several sequences per decode step ------------------------------------------
// forward_multi (tern-server's batched decoding, without HTTP) with S sequences at once, for each
// S in the list: every sequence's own KV cache filled with random entries for positions
// 0..depth-1, then n steps of S rows (each row its sequence's next token, logits for all rows).
// Each repeat runs every S in turn (a shared machine's drift hits all alike); per S the medians of
// aggregate tok/s (S * n / wall seconds) and tokens per CPU-second, and the median per-repeat
// ratio of aggregate tok/s to the first S's. Then the compute ceiling: the VNNI peak (measured
// before each repeat) over the int8 operations of one row -- the ternary products and, for a
// Q8_0 logits matrix, the logits (vpdpbusd kernels too; the other logits types run other
// instructions and are left out, which only raises the ceiling). No number of rows per step can
// give more aggregate tok/s with vpdpbusd-based products, so ceiling / (first S's tok/s) bounds
// "vs first".
static int bench_streams(const tern_rt_model *m, const int *ss, int ns, long N, long R, long depth, int kv, uint64_t seed) {
    int smax = 1;
    for (int i = 0; i < ns; i++) smax = ss[i] > smax ? ss[i] : smax;
    const int ctx = (int)(depth + N);
    tern_rt_state work, *st = tern_xcalloc((size_t)smax, sizeof(tern_rt_state));
    if (build_state_kv(&work, m, smax, ctx, kv)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    tern_rt_state **kvp = tern_xmalloc(sizeof(tern_rt_state *) * (size_t)smax);
    for (int i = 0; i < smax; i++) {
        if (build_state_kv(&st[i], m, 1, ctx, kv)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
        if (depth > 0) rt_kv_fill_random(m, &st[i], (int)depth, seed + (uint64_t)i);
        kvp[i] = &st[i];
    }
    int *tok = tern_xmalloc(sizeof(int) * (size_t)smax), *pos = tern_xmalloc(sizeof(int) * (size_t)smax);
    int *rows = tern_xmalloc(sizeof(int) * (size_t)smax);
    for (int i = 0; i < smax; i++) rows[i] = i;
    double *agg = tern_xmalloc(sizeof(double) * (size_t)ns * R), *cps = tern_xmalloc(sizeof(double) * (size_t)ns * R);
    double *ratio = tern_xmalloc(sizeof(double) * (size_t)R), *peak = tern_xcalloc((size_t)R, sizeof(double));
    tern_rng rng;
    tern_rng_seed(&rng, seed);
    printf("streams: forward_multi decode steps, %ld per repeat, each sequence's KV cache (%s) at depth %ld..%ld, logits for every row\n", N,
           rt_kv_name(work.kv_type), depth, depth + N - 1);
    for (long r = -1; r < R; r++)   // r = -1: warm-up (pages the weights in), not counted
        for (int k = 0; k < ns; k++) {
            if (r >= 0 && k == 0) tern_membench_vnni_peak(omp_get_max_threads(), 1, &peak[r]);
            const int S = ss[k];
            const long steps = r < 0 ? 1 : N;
            double a = tern_time(), ca = cpu_time();
            for (long t = 0; t < steps; t++) {
                for (int i = 0; i < S; i++) {
                    tok[i] = (int)(tern_rng_u64(&rng) % (uint64_t)m->config.vocab_size);
                    pos[i] = (int)(depth + t);
                }
                forward_multi(m, &work, kvp, tok, pos, S, rows, S);
            }
            double e = tern_time(), ce = cpu_time();
            if (r < 0) continue;
            agg[(size_t)k * R + r] = (double)S * N / (e - a);
            cps[(size_t)k * R + r] = (double)S * N / (ce - ca);
        }
    printf("%7s %12s %12s %14s %10s\n", "streams", "tok/s", "per stream", "tok/CPU-s", "vs first");
    for (int k = 0; k < ns; k++) {
        for (long r = 0; r < R; r++) ratio[r] = agg[(size_t)k * R + r] / agg[r];
        const double am = median(agg + (size_t)k * R, (int)R);
        printf("%7d %12.2f %12.2f %14.2f %9.2fx\n", ss[k], am, am / ss[k], median(cps + (size_t)k * R, (int)R), median(ratio, (int)R));
    }
    printf("(medians of %ld repeats; vs first: median per-repeat ratio of aggregate tok/s to %d stream%s)\n", R, ss[0], ss[0] > 1 ? "s" : "");
    const double pk = median(peak, (int)R);
    if (pk > 0) {
        const int q8 = m->weights.output_type == TERN_GGML_Q8_0;
        const double ot = 2.0 * (double)m->n_ternary, ol = q8 ? 2.0 * m->config.vocab_size * (double)m->config.dim : 0.0;
        const double ceil_tok = pk * 1e9 / (ot + ol);
        printf("compute ceiling: %.1f tok/s for any number of streams = the VNNI peak (median %.1f GOPS, measured before each repeat) / "
               "%.4g G int8 ops per row (ternary %.4g G%s); %.2fx the %d-stream tok/s above\n",
               ceil_tok, pk, (ot + ol) / 1e9, ot / 1e9, q8 ? " + Q8_0 logits" : ", logits not counted", ceil_tok / median(agg, (int)R), ss[0]);
    }
    for (int i = 0; i < smax; i++) free_state(&st[i]);
    free_state(&work);
    free(st); free(kvp); free(tok); free(pos); free(rows); free(agg); free(cps); free(ratio); free(peak);
    return 0;
}

// ---- --depths: decode at several depths in one process ----------------------------------------
// One KV cache filled with random entries up to the deepest depth; each repeat decodes N tokens at
// every depth in turn (a token at position D attends to positions 0..D, whatever lies beyond),
// so the host's drifting bandwidth hits all depths alike. Per depth the median tok/s; per depth
// after the first the median of the per-repeat ratios to the first depth.
static int bench_depths(const tern_rt_model *m, const long *ds, int nd, long N, long R, int kv, uint64_t seed) {
    long dmax = 0;
    for (int i = 0; i < nd; i++) dmax = ds[i] > dmax ? ds[i] : dmax;
    tern_rt_state s;
    if (build_state_kv(&s, m, 1, (int)(dmax + N), kv)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    rt_kv_fill_random(m, &s, (int)(dmax + N), seed);
    double *dec = tern_xmalloc(sizeof(double) * (size_t)nd * R), *ratio = tern_xmalloc(sizeof(double) * (size_t)R);
    tern_rng rng;
    tern_rng_seed(&rng, seed);
    printf("depths: %ld decode steps per depth and repeat, one KV cache (%s) filled up to position %ld\n", N, rt_kv_name(s.kv_type), dmax + N - 1);
    for (long r = -1; r < R; r++)   // r = -1: warm-up, not counted
        for (int k = 0; k < nd; k++) {
            const long steps = r < 0 ? 1 : N;
            const double a = tern_time();
            for (long t = 0; t < steps; t++) {
                const int tok = (int)(tern_rng_u64(&rng) % (uint64_t)m->config.vocab_size);
                forward(m, &s, &tok, 1, (int)(ds[k] + t), 0);
            }
            if (r >= 0) dec[(size_t)k * R + r] = (double)N / (tern_time() - a);
        }
    printf("%7s %12s %12s\n", "depth", "decode tok/s", "vs first");
    for (int k = 0; k < nd; k++) {
        for (long r = 0; r < R; r++) ratio[r] = dec[(size_t)k * R + r] / dec[r];
        printf("%7ld %12.2f %11.1f%%\n", ds[k], median(dec + (size_t)k * R, (int)R), 100 * median(ratio, (int)R));
    }
    printf("(medians of %ld repeats; vs first: median per-repeat ratio to depth %ld)\n", R, ds[0]);
    free(dec); free(ratio);
    free_state(&s);
    return 0;
}

// a comma-separated list of 1..max integers in [lo, hi] for option opt into out: the count, or
// -1 after one line on stderr
static int parse_list(const char *opt, const char *v, long *out, int max, long lo, long hi) {
    char list[256];
    if (!v || strlen(v) >= sizeof list) {
        fprintf(stderr, "tern-bench: %s: expected N[,N...] with at most %d values, each in %ld..%ld\n", opt, max, lo, hi);
        return -1;
    }
    snprintf(list, sizeof list, "%s", v);
    int n = 0;
    char *sp = NULL;
    for (char *tok = strtok_r(list, ",", &sp); tok; tok = strtok_r(NULL, ",", &sp)) {
        if (n == max || tern_parse_long(tok, &out[n]) || out[n] < lo || out[n] > hi) {
            fprintf(stderr, "tern-bench: %s: '%s': expected at most %d values, each in %ld..%ld\n", opt, tok, max, lo, hi);
            return -1;
        }
        n++;
    }
    if (!n) fprintf(stderr, "tern-bench: %s: empty list\n", opt);
    return n ? n : -1;
}

int main(int argc, char **argv) {
    const char *path = NULL, *random_spec = NULL, *save = NULL;
    int save_type = TERN_GGML_TQ2_0;
    long P = 128, N = 64, R = 3, B = 64, seed = 1234, bw_mb = -1, depth = 0;
    int kv = TERN_KV_Q8;
    int streams[16], n_streams = 0;
    long depths[8];
    int n_depths = 0;
    tern_kernel_kind kinds[TERN_KERNEL_NKINDS] = {TERN_KERNEL_AUTO};
    int nk = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = NULL;
        if (!strcmp(a, "-m")) { if (!v) usage(stderr, 2); path = v; i++; continue; }
        if (!strcmp(a, "--random")) { if (!v) usage(stderr, 2); random_spec = v; i++; continue; }
        if (!strcmp(a, "--save")) { if (!v) usage(stderr, 2); save = v; i++; continue; }
        if (!strcmp(a, "--type")) {
            save_type = v ? tern_ggml_type_parse(v) : -1;
            if (save_type != TERN_GGML_TQ2_0 && save_type != TERN_GGML_TQ1_0 && save_type != TERN_GGML_I2_S) {
                fprintf(stderr, "tern-bench: --type: expected tq2_0, tq1_0 or i2_s\n");
                return 2;
            }
            i++;
            continue;
        }
        if (!strcmp(a, "--bandwidth")) {
            bw_mb = 1024;
            if (v && tern_parse_long(v, &bw_mb) == 0) i++;
            if (bw_mb < 1 || bw_mb > 65536) { fprintf(stderr, "tern-bench: --bandwidth %ld: MB must be in [1, 65536]\n", bw_mb); return 2; }
            continue;
        }
        if (!strcmp(a, "--kernel")) {
            char list[256];
            if (!v || strlen(v) >= sizeof list) { fprintf(stderr, "tern-bench: --kernel: expected K[,K...] with K one of %s\n", TERN_KERNEL_NAMES); return 2; }
            snprintf(list, sizeof list, "%s", v);
            nk = 0;
            char *sp = NULL;
            int ntok = 0;
            for (char *tok = strtok_r(list, ",", &sp); tok; tok = strtok_r(NULL, ",", &sp)) {
                ntok++;
                if (!strcmp(tok, "all")) {   // every vector kind this CPU has
                    for (int k = TERN_KERNEL_PLAIN + 1; k < TERN_KERNEL_NKINDS && nk < TERN_KERNEL_NKINDS; k++)
                        if (tern_kernel_available((tern_kernel_kind)k)) kinds[nk++] = (tern_kernel_kind)k;
                    continue;
                }
                if (nk == TERN_KERNEL_NKINDS || tern_kernel_parse(tok, &kinds[nk])) {
                    fprintf(stderr, "tern-bench: --kernel: '%s': expected K[,K...] with at most %d kinds, K one of %s\n", tok,
                            TERN_KERNEL_NKINDS, TERN_KERNEL_NAMES);
                    return 2;
                }
                nk++;
            }
            if (ntok == 0) { fprintf(stderr, "tern-bench: --kernel: empty list\n"); return 2; }
            if (nk == 0) kinds[nk++] = TERN_KERNEL_PLAIN;   // "all" on a CPU without vector kinds
            i++;
            continue;
        }
        if (!strcmp(a, "--streams") || !strcmp(a, "--depths")) {   // 1,2,4,8 / 64,4080
            const int is_s = !strcmp(a, "--streams");
            long vals[16];
            const int nv = parse_list(a, v, vals, is_s ? 16 : 8, is_s ? 1 : 0, is_s ? 64 : 1048576);
            if (nv < 0) return 2;
            for (int j = 0; j < nv; j++) {
                if (is_s) streams[j] = (int)vals[j];
                else depths[j] = vals[j];
            }
            if (is_s) n_streams = nv;
            else n_depths = nv;
            i++;
            continue;
        }
        if (!strcmp(a, "--kv")) {
            if (!v || (kv = rt_kv_parse(v)) < 0) { fprintf(stderr, "tern-bench: --kv: expected q8|f32\n"); return 2; }
            i++;
            continue;
        }
        if (!strcmp(a, "-p")) dst = &P;
        else if (!strcmp(a, "-d")) dst = &depth;
        else if (!strcmp(a, "-n")) dst = &N;
        else if (!strcmp(a, "-r")) dst = &R;
        else if (!strcmp(a, "-b")) dst = &B;
        else if (!strcmp(a, "--seed")) dst = &seed;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(stdout, 0);
        else { fprintf(stderr, "tern-bench: unknown option '%s'\n", a); usage(stderr, 2); }
        if (!v || tern_parse_long(v, dst) || *dst < 0) { fprintf(stderr, "tern-bench: %s: expected a non-negative integer\n", a); return 2; }
        i++;
    }
    if (bw_mb > 0) {
        print_bandwidth(bw_mb);
        return 0;
    }
    if (n_depths) {   // the deepest sets the context (and -d is not given alongside)
        if (depth || n_streams) { fprintf(stderr, "tern-bench: --depths goes without -d and --streams\n"); return 2; }
        for (int i = 0; i < n_depths; i++) depth = depths[i] > depth ? depths[i] : depth;
    }
    if (!path == !random_spec) usage(stderr, 2);
    if (save) {
        if (!random_spec) { fprintf(stderr, "tern-bench: --save needs --random SHAPE\n"); return 2; }
        tern_rt_config c;
        int head;
        if (rt_parse_shape(random_spec, &c, &head)) { fprintf(stderr, "tern-bench: --random: %s\n", tern_last_error()); return 2; }
        if (c.dim % 256 || c.ffn_dim % 256 || c.dim % c.n_heads || c.n_heads % c.n_kv_heads || c.dim % tern_ggml_block_elems(head)) {
            fprintf(stderr, "tern-bench: --save: dim and ffn must be multiples of 256, heads must divide dim and kv_heads heads\n");
            return 2;
        }
        return save_random(&c, head, save_type, (uint64_t)seed, save);
    }
    if (R < 1 || R > 1000 || B < 1 || B > 4096 || P > 65536 || N > 65536 || P + N < 1 || depth > 1048576) {
        fprintf(stderr, "tern-bench: out of range: -r %ld (1..1000), -b %ld (1..4096), -p %ld / -n %ld (0..65536, not both 0), -d %ld (0..1048576)\n",
                R, B, P, N, depth);
        return 2;
    }
    for (int k = 0; k < nk; k++)
        if (!tern_kernel_available(kinds[k])) {
            fprintf(stderr, "tern-bench: kernel %s is not available on this CPU\n", tern_kernel_name(kinds[k]));
            return 1;
        }
    if (tern_kernel_force(kinds[0])) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    tern_rt_model m;
    double t0 = tern_time();
    if (path) {
        if (build_model(&m, path)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    } else {
        tern_rt_config c;
        int head;
        if (rt_parse_shape(random_spec, &c, &head)) { fprintf(stderr, "tern-bench: --random: %s\n", tern_last_error()); return 2; }
        if (!c.seq_len) c.seq_len = (int)(depth + P + N);
        if (build_random_model_typed(&m, &c, head, (uint64_t)seed)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    }
    double t_load = tern_time() - t0;
    const tern_rt_config *c = &m.config;
    if (depth > 0) P = 0;   // decode at depth: the cache is filled, no prompt
    if (depth + P + N > c->seq_len || P + N < 1) {
        if (n_depths) fprintf(stderr, "tern-bench: --depths: the deepest %ld + -n %ld exceeds the context %d\n", depth, N, c->seq_len);
        else fprintf(stderr, "tern-bench: -d %ld + -p %ld + -n %ld exceeds the context %d\n", depth, P, N, c->seq_len);
        free_model(&m);
        return 1;
    }
    if (n_depths) {
        if (N < 1) { fprintf(stderr, "tern-bench: --depths: -n must be at least 1\n"); free_model(&m); return 1; }
        printf("model: %s  dim %d ffn %d layers %d heads %d/%d vocab %d, logits matrix %s; kernel %s, threads %d\n", m.path, c->dim, c->ffn_dim,
               c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, tern_ggml_type_name(m.weights.output_type),
               tern_kernel_name(tern_kernel_best()), omp_get_max_threads());
        int rc = bench_depths(&m, depths, n_depths, N, R, kv, (uint64_t)seed);
        free_model(&m);
        return rc;
    }
    if (n_streams) {
        if (N < 1 || depth + N > c->seq_len) {
            fprintf(stderr, "tern-bench: --streams: -d %ld + -n %ld must be in 1..%d (the context)\n", depth, N, c->seq_len);
            free_model(&m);
            return 1;
        }
        printf("model: %s  dim %d ffn %d layers %d heads %d/%d vocab %d, logits matrix %s; kernel %s, threads %d\n", m.path, c->dim, c->ffn_dim,
               c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, tern_ggml_type_name(m.weights.output_type),
               tern_kernel_name(tern_kernel_best()), omp_get_max_threads());
        int rc = bench_streams(&m, streams, n_streams, N, R, depth, kv, (uint64_t)seed);
        free_model(&m);
        return rc;
    }
    tern_rt_state s;
    if (build_state_kv(&s, &m, (int)B, (int)(depth + P + N), kv)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    if (depth > 0) rt_kv_fill_random(&m, &s, (int)depth, (uint64_t)seed);
    printf("model: %s  %s  dim %d ffn %d layers %d heads %d/%d vocab %d%s\n", m.path, c->arch, c->dim, c->ffn_dim, c->n_layers, c->n_heads,
           c->n_kv_heads, c->vocab_size, c->ffn_act == TERN_FFN_RELU2 ? "  relu2" : "");
    printf("weights: %.3f G ternary (%s in the file; %.1f MB in kernel layout), %.1f MB fp (norms + %s logits matrix); loaded in %.2f s\n",
           m.n_ternary / 1e9, tern_ggml_type_name(m.bitlinear_type), m.ternary_bytes / 1e6, m.fp_bytes / 1e6,
           tern_ggml_type_name(m.weights.output_type), t_load);
    if (path) printf("load: %.2f s checks, %.2f s ternary repack, %.2f s logits-matrix copy\n", m.load_s[0], m.load_s[1], m.load_s[2]);
    // the kinds as run (AUTO resolved), for the labels
    tern_kernel_kind shown[TERN_KERNEL_NKINDS];
    for (int k = 0; k < nk; k++) {
        tern_kernel_force(kinds[k]);
        shown[k] = tern_kernel_best();
    }
    tern_kernel_force(kinds[0]);
    printf("kernel: ");
    for (int k = 0; k < nk; k++) printf("%s%s", k ? ", " : "", tern_kernel_name(shown[k]));
    printf("%s, threads: %d, batch %ld, KV cache %s\n", nk > 1 ? " (alternating: each repeat runs each kind)" : "", omp_get_max_threads(), B,
           rt_kv_name(s.kv_type));
    if (depth > 0) printf("decode at depth %ld: KV cache filled with random entries for positions 0..%ld\n", depth, depth - 1);
    int *toks = tern_xmalloc(sizeof(int) * (size_t)(P + N + 1));
    tern_rng rng;
    tern_rng_seed(&rng, (uint64_t)seed);
    for (long i = 0; i < P + N + 1; i++) toks[i] = (int)(tern_rng_u64(&rng) % (uint64_t)c->vocab_size);
    // per kind k and repeat r, at [k * R + r]
    const size_t nkr = (size_t)nk * (size_t)R;
    double *pre = tern_xmalloc(sizeof(double) * nkr), *dec = tern_xmalloc(sizeof(double) * nkr);
    // the machine's limits, measured right before each repeat (a shared host's bandwidth drifts
    // by 2x over minutes): percentages are medians of per-repeat ratios
    double *bw = tern_xmalloc(sizeof(double) * nkr), *pk = tern_xmalloc(sizeof(double) * nkr);
    double *bwr = tern_xmalloc(sizeof(double) * nkr), *pkr = tern_xmalloc(sizeof(double) * nkr);
    double *ratio = tern_xmalloc(sizeof(double) * 4 * (size_t)R);
    // tokens per CPU-second of the process: on a machine shared with other jobs, the wall-clock
    // rates measure the neighbours too; CPU time counts only what this process ran (with one
    // thread it is the per-core speed; with more it includes OpenMP's spinning at barriers)
    double *cpre = tern_xmalloc(sizeof(double) * nkr), *cdec = tern_xmalloc(sizeof(double) * nkr);
    const size_t bw_n = (size_t)512 << 20;
    uint8_t *bw_buf = N > 0 ? tern_alloc_huge(bw_n) : NULL;   // huge pages, like the weights
    if (bw_buf) memset(bw_buf, 1, bw_n);
    const int p0 = (int)(depth + P);   // position of the first decoded token
    const double bytes_tok = (double)m.ternary_bytes + (double)m.fp_bytes + (double)rt_kv_bytes(&m, &s, p0 + (int)N / 2);
    const double ops_tok = 2.0 * (double)m.n_ternary;
    // warm-up (page in the weights; each kind's code once)
    for (int k = 0; k < nk; k++) {
        tern_kernel_force(kinds[k]);
        forward(&m, &s, toks, 1, p0 ? p0 - 1 : 0, 0);
    }
    for (long r = 0; r < R; r++)
        for (int k = 0; k < nk; k++) {
            const size_t j = (size_t)k * (size_t)R + (size_t)r;
            tern_kernel_force(kinds[k]);
            pk[j] = 0;
            if (P > 0) tern_membench_vnni_peak(omp_get_max_threads(), 1, &pk[j]);
            double a = tern_time(), ca = cpu_time();
            if (P > 0) forward_prompt(&m, &s, toks, (int)P, 0);
            double b = tern_time(), cb = cpu_time();
            if (bw_buf) tern_membench_read(bw_buf, bw_n, omp_get_max_threads(), 1, &bw[j]);
            double b2 = tern_time(), cb2 = cpu_time();
            for (long i = 0; i < N; i++) forward(&m, &s, toks + P + i, 1, p0 + (int)i, 0);
            double e = tern_time(), ce = cpu_time();
            cpre[j] = P > 0 ? P / (cb - ca) : 0;
            cdec[j] = N > 0 ? N / (ce - cb2) : 0;
            pre[j] = P > 0 ? P / (b - a) : 0;
            dec[j] = N > 0 ? N / (e - b2) : 0;
            pkr[j] = pk[j] > 0 ? ops_tok * pre[j] / 1e9 / pk[j] : 0;
            bwr[j] = bw_buf ? bytes_tok * dec[j] / 1e9 / bw[j] : 0;
        }
    for (int k = 0; k < nk; k++) {
        const size_t j = (size_t)k * (size_t)R;
        const char *lab = tern_kernel_name(shown[k]);
        double pm = median(pre + j, (int)R), dm = median(dec + j, (int)R);
        if (nk > 1) printf("-- kernel %s\n", lab);
        if (P > 0) {
            printf("prefill %5ld tokens: %9.2f tok/s  %8.1f int GOPS   (median of %ld)\n", P, pm, ops_tok * pm / 1e9, R);
            if (pk[j] > 0)
                printf("        = %.1f%% of the VNNI peak measured before each repeat (median ratio; peak median %.1f GOPS)\n",
                       100 * median(pkr + j, (int)R), median(pk + j, (int)R));
            printf("        = %.2f tokens per CPU-second of this process (median)\n", median(cpre + j, (int)R));
        }
        if (N > 0) {
            printf("decode  %5ld tokens: %9.2f tok/s  %8.1f int GOPS  %6.1f GB/s effective (%.1f MB/token incl. %.1f MB KV cache at "
                   "position ~%ld)  (median of %ld)\n", N, dm, ops_tok * dm / 1e9, bytes_tok * dm / 1e9, bytes_tok / 1e6,
                   rt_kv_bytes(&m, &s, p0 + (int)N / 2) / 1e6, p0 + N / 2, R);
            printf("        = %.1f%% of the read bandwidth measured before each repeat (median ratio; bandwidth median %.1f GB/s)\n",
                   100 * median(bwr + j, (int)R), median(bw + j, (int)R));
            printf("        = %.2f tokens per CPU-second of this process (median)\n", median(cdec + j, (int)R));
        }
    }
    if (nk > 1) {   // per-repeat ratios to the first kind (both ran within the same repeat)
        printf("-- ratios to %s (medians of per-repeat ratios)\n", tern_kernel_name(shown[0]));
        for (int k = 1; k < nk; k++) {
            for (long r = 0; r < R; r++) {
                ratio[r] = P > 0 ? pre[(size_t)k * R + r] / pre[r] : 0;
                ratio[R + r] = N > 0 ? dec[(size_t)k * R + r] / dec[r] : 0;
                ratio[2 * R + r] = P > 0 ? cpre[(size_t)k * R + r] / cpre[r] : 0;
                ratio[3 * R + r] = N > 0 ? cdec[(size_t)k * R + r] / cdec[r] : 0;
            }
            printf("%-8s prefill x%.3f  decode x%.3f   (per CPU-second: prefill x%.3f  decode x%.3f)\n", tern_kernel_name(shown[k]),
                   median(ratio, (int)R), median(ratio + R, (int)R), median(ratio + 2 * R, (int)R), median(ratio + 3 * R, (int)R));
        }
    }
    free(ratio); free(cpre); free(cdec);
    free(bw); free(pk); free(bwr); free(pkr); free(bw_buf);
    free(pre);
    free(dec);
    free(toks);
    free_state(&s);
    free_model(&m);
    return 0;
}
