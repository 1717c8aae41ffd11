// bench.c — prefill and decode speed of the runtime, like llama-bench.
//   tern-bench -m model.gguf [-p 128] [-n 64] [-r 3] [-b 64] [--kernel plain|avx2|avx512] [--kv q8|f32] [-d depth]
//   tern-bench --random dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=32000[,ctx=512][,head=q8_0][,act=relu2]
//   tern-bench --random 2b4t[,head=q6_k]   the BitNet b1.58 2B4T shape (vocab 128256, ReLU², head q8_0)
//   tern-bench --bandwidth [MB]     the machine's limits: read bandwidth and VNNI peak (all OpenMP threads)
// Prints the load time and medians over -r runs: prefill and decode tokens/s, effective GB/s read
// per decoded token (weights, the logits matrix, and the KV cache at that depth), integer GOPS
// (2 ops per ternary weight per token). -d D: decode at depth D (the KV cache filled with random
// entries for positions 0..D-1 instead of a D-token prompt; no prefill is timed).
#include "membench.h"
#include "runtime.h"
#include "formats/ggml_types.h"
#include "util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fprintf(stderr,
            "usage: tern-bench (-m model.gguf | --random dim=D,ffn=F,layers=L,heads=H,kv_heads=K,vocab=V[,ctx=C][,head=T][,act=silu|relu2]\n"
            "                   | --random small|2b|2b4t[,key=value...])\n"
            "                  [-p prefill_tokens=128] [-n decode_tokens=64] [-r reps=3] [-b batch=64] [-d decode_depth=0]\n"
            "                  [--kernel auto|plain|avx2|avx512] [--kv q8|f32] [--seed S]\n"
            "       tern-bench --bandwidth [MB=1024]\n");
    exit(2);
}

static double median(double *v, int n) { return tern_median(v, n); }

static int parse_shape(const char *spec, tern_rt_config *c, int *head) {
    memset(c, 0, sizeof *c);
    c->seq_len = 0;
    *head = TERN_GGML_F16;
    char buf[512], in[512];
    snprintf(in, sizeof in, "%s", spec);
    // a preset name first, then key=value items that override it
    char *rest = strchr(in, ',');
    if (rest) *rest++ = 0;
    if (!strcmp(in, "small")) snprintf(buf, sizeof buf, "dim=256,ffn=768,layers=6,heads=4,kv_heads=4,vocab=4096%s%s", rest ? "," : "", rest ? rest : "");
    else if (!strcmp(in, "2b")) snprintf(buf, sizeof buf, "dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=32000%s%s", rest ? "," : "", rest ? rest : "");
    else if (!strcmp(in, "2b4t"))
        snprintf(buf, sizeof buf, "dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=128256,head=q8_0,act=relu2%s%s", rest ? "," : "", rest ? rest : "");
    else snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq && !strncmp(tok, "head=", 5)) {
            *head = tern_ggml_type_parse(eq + 1);
            if (*head < 0 || !tern_qmat_supported(*head)) { fprintf(stderr, "tern-bench: --random: head=%s: expected f32|f16|bf16|q8_0|q4_k|q5_k|q6_k\n", eq + 1); return -1; }
            continue;
        }
        if (eq && !strncmp(tok, "act=", 4)) {
            if (!strcmp(eq + 1, "silu")) c->ffn_act = TERN_FFN_SILU;
            else if (!strcmp(eq + 1, "relu2")) c->ffn_act = TERN_FFN_RELU2;
            else { fprintf(stderr, "tern-bench: --random: act=%s: expected silu|relu2\n", eq + 1); return -1; }
            continue;
        }
        long v;
        if (!eq || tern_parse_long(eq + 1, &v) || v < 1 || v > (1 << 24)) {
            fprintf(stderr, "tern-bench: --random: bad item '%s'\n", tok);
            return -1;
        }
        *eq = 0;
        if (!strcmp(tok, "dim")) c->dim = (int)v;
        else if (!strcmp(tok, "ffn")) c->ffn_dim = (int)v;
        else if (!strcmp(tok, "layers")) c->n_layers = (int)v;
        else if (!strcmp(tok, "heads")) c->n_heads = (int)v;
        else if (!strcmp(tok, "kv_heads")) c->n_kv_heads = (int)v;
        else if (!strcmp(tok, "vocab")) c->vocab_size = (int)v;
        else if (!strcmp(tok, "ctx")) c->seq_len = (int)v;
        else { fprintf(stderr, "tern-bench: --random: unknown key '%s'\n", tok); return -1; }
    }
    if (!c->n_kv_heads) c->n_kv_heads = c->n_heads;
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

int main(int argc, char **argv) {
    const char *path = NULL, *random_spec = NULL;
    long P = 128, N = 64, R = 3, B = 64, seed = 1234, bw_mb = -1, depth = 0;
    int kv = TERN_KV_Q8;
    tern_kernel_kind kind = TERN_KERNEL_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = NULL;
        if (!strcmp(a, "-m")) { if (!v) usage(); path = v; i++; continue; }
        if (!strcmp(a, "--random")) { if (!v) usage(); random_spec = v; i++; continue; }
        if (!strcmp(a, "--bandwidth")) {
            bw_mb = 1024;
            if (v && tern_parse_long(v, &bw_mb) == 0) i++;
            continue;
        }
        if (!strcmp(a, "--kernel")) {
            if (!v || tern_kernel_parse(v, &kind)) { fprintf(stderr, "tern-bench: --kernel: expected auto|plain|avx2|avx512\n"); return 2; }
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
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
        else { fprintf(stderr, "tern-bench: unknown option '%s'\n", a); usage(); }
        if (!v || tern_parse_long(v, dst) || *dst < 0) { fprintf(stderr, "tern-bench: %s: expected a non-negative integer\n", a); return 2; }
        i++;
    }
    if (bw_mb > 0) {
        print_bandwidth(bw_mb);
        return 0;
    }
    if (!path == !random_spec) usage();
    if (R < 1 || B < 1) { fprintf(stderr, "tern-bench: -r and -b must be >= 1\n"); return 2; }
    if (kind != TERN_KERNEL_AUTO && tern_kernel_force(kind)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    tern_rt_model m;
    double t0 = tern_time();
    if (path) {
        if (build_model(&m, path)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    } else {
        tern_rt_config c;
        int head;
        if (parse_shape(random_spec, &c, &head)) return 2;
        if (!c.seq_len) c.seq_len = (int)(depth + P + N);
        if (build_random_model_typed(&m, &c, head, (uint64_t)seed)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    }
    double t_load = tern_time() - t0;
    const tern_rt_config *c = &m.config;
    if (depth > 0) P = 0;   // decode at depth: the cache is filled, no prompt
    if (depth + P + N > c->seq_len || P + N < 1) {
        fprintf(stderr, "tern-bench: -d %ld + -p %ld + -n %ld exceeds the context %d\n", depth, P, N, c->seq_len);
        free_model(&m);
        return 1;
    }
    tern_rt_state s;
    if (build_state_kv(&s, &m, (int)B, (int)(depth + P + N), kv)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    if (depth > 0) rt_kv_fill_random(&m, &s, (int)depth, (uint64_t)seed);
    printf("model: %s  %s  dim %d ffn %d layers %d heads %d/%d vocab %d%s\n", m.path, c->arch, c->dim, c->ffn_dim, c->n_layers, c->n_heads,
           c->n_kv_heads, c->vocab_size, c->ffn_act == TERN_FFN_RELU2 ? "  relu2" : "");
    printf("weights: %.3f G ternary (%s in the file; %.1f MB in kernel layout), %.1f MB fp (norms + %s logits matrix); loaded in %.2f s\n",
           m.n_ternary / 1e9, tern_ggml_type_name(m.bitlinear_type), m.ternary_bytes / 1e6, m.fp_bytes / 1e6,
           tern_ggml_type_name(m.weights.output_type), t_load);
    printf("kernel: %s, threads: %d, batch %ld, KV cache %s%s\n", tern_kernel_name(tern_kernel_best()), omp_get_max_threads(), B,
           rt_kv_name(s.kv_type), depth > 0 ? "" : "");
    if (depth > 0) printf("decode at depth %ld: KV cache filled with random entries for positions 0..%ld\n", depth, depth - 1);
    int *toks = tern_xmalloc(sizeof(int) * (size_t)(P + N + 1));
    tern_rng rng;
    tern_rng_seed(&rng, (uint64_t)seed);
    for (long i = 0; i < P + N + 1; i++) toks[i] = (int)(tern_rng_u64(&rng) % (uint64_t)c->vocab_size);
    double *pre = tern_xmalloc(sizeof(double) * (size_t)R), *dec = tern_xmalloc(sizeof(double) * (size_t)R);
    // the machine's limits, measured right before each repeat (a shared host's bandwidth drifts
    // by 2x over minutes): percentages are medians of per-repeat ratios
    double *bw = tern_xmalloc(sizeof(double) * (size_t)R), *pk = tern_xmalloc(sizeof(double) * (size_t)R);
    double *bwr = tern_xmalloc(sizeof(double) * (size_t)R), *pkr = tern_xmalloc(sizeof(double) * (size_t)R);
    const size_t bw_n = (size_t)512 << 20;
    uint8_t *bw_buf = N > 0 ? tern_alloc_huge(bw_n) : NULL;   // huge pages, like the weights
    if (bw_buf) memset(bw_buf, 1, bw_n);
    const int p0 = (int)(depth + P);   // position of the first decoded token
    const double bytes_tok = (double)m.ternary_bytes + (double)m.fp_bytes + (double)rt_kv_bytes(&m, &s, p0 + (int)N / 2);
    const double ops_tok = 2.0 * (double)m.n_ternary;
    // warm-up (page in the weights)
    forward(&m, &s, toks, 1, p0 ? p0 - 1 : 0, 0);
    for (long r = 0; r < R; r++) {
        if (P > 0) tern_membench_vnni_peak(omp_get_max_threads(), 1, &pk[r]);
        double a = tern_time();
        if (P > 0) forward_prompt(&m, &s, toks, (int)P, 0);
        double b = tern_time();
        if (bw_buf) tern_membench_read(bw_buf, bw_n, omp_get_max_threads(), 1, &bw[r]);
        double b2 = tern_time();
        for (long i = 0; i < N; i++) forward(&m, &s, toks + P + i, 1, p0 + (int)i, 0);
        double e = tern_time();
        pre[r] = P > 0 ? P / (b - a) : 0;
        dec[r] = N > 0 ? N / (e - b2) : 0;
        pkr[r] = pk[r] > 0 ? ops_tok * pre[r] / 1e9 / pk[r] : 0;
        bwr[r] = bw_buf ? bytes_tok * dec[r] / 1e9 / bw[r] : 0;
    }
    double pm = median(pre, (int)R), dm = median(dec, (int)R);
    if (P > 0) {
        printf("prefill %5ld tokens: %9.2f tok/s  %8.1f int GOPS   (median of %ld)\n", P, pm, ops_tok * pm / 1e9, R);
        if (pk[0] > 0)
            printf("        = %.1f%% of the VNNI peak measured before each repeat (median ratio; peak median %.1f GOPS)\n",
                   100 * median(pkr, (int)R), median(pk, (int)R));
    }
    if (N > 0) {
        printf("decode  %5ld tokens: %9.2f tok/s  %8.1f int GOPS  %6.1f GB/s effective (%.1f MB/token incl. %.1f MB KV cache at "
               "position ~%ld)  (median of %ld)\n", N, dm, ops_tok * dm / 1e9, bytes_tok * dm / 1e9, bytes_tok / 1e6,
               rt_kv_bytes(&m, &s, p0 + (int)N / 2) / 1e6, p0 + N / 2, R);
        printf("        = %.1f%% of the read bandwidth measured before each repeat (median ratio; bandwidth median %.1f GB/s)\n",
               100 * median(bwr, (int)R), median(bw, (int)R));
    }
    free(bw); free(pk); free(bwr); free(pkr); free(bw_buf);
    free(pre);
    free(dec);
    free(toks);
    free_state(&s);
    free_model(&m);
    return 0;
}
