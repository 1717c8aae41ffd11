// bench.c — prefill and decode speed of the runtime, like llama-bench.
//   tern-bench -m model.gguf [-p 128] [-n 64] [-r 3] [-b 64] [--kernel K[,K2...]]
//   tern-bench --random dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=32000[,ctx=512]
//   tern-bench --bandwidth [MB]     the machine's limits: read bandwidth and VNNI peak (all OpenMP threads)
// Prints medians over -r runs: prefill and decode tokens/s, effective GB/s of weights read per
// decoded token, integer GOPS (2 ops per ternary weight per token). With several kernel kinds
// (--kernel avx2,avxvnni,avx512; --kernel all: every vector kind the CPU has) every repeat runs
// each kind in turn, so a shared machine's drift hits all of them alike; each kind gets its own
// medians, plus ratios to the first kind.
#include "membench.h"
#include "runtime.h"
#include "util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f, int rc) {
    fprintf(f,
            "usage: tern-bench (-m model.gguf | --random dim=D,ffn=F,layers=L,heads=H,kv_heads=K,vocab=V[,ctx=C])\n"
            "                  [-p prefill_tokens=128] [-n decode_tokens=64] [-r reps=3] [-b batch=64]\n"
            "                  [--kernel K[,K...]] [--seed S]     K: " TERN_KERNEL_NAMES "\n"
            "                  (several kinds: each repeat runs each kind in turn; medians per kind;\n"
            "                   all = every vector kind this CPU has)\n"
            "       tern-bench --bandwidth [MB=1024]\n"
            "  -p, -n 0..65536 (not both 0)   -r 1..1000   -b 1..4096   MB 1..65536\n");
    exit(rc);
}

static double median(double *v, int n) { return tern_median(v, n); }

// CPU seconds used by the whole process (all threads)
static double cpu_time(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int parse_shape(const char *spec, tern_rt_config *c) {
    memset(c, 0, sizeof *c);
    c->seq_len = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    if (!strcmp(buf, "small")) snprintf(buf, sizeof buf, "dim=256,ffn=768,layers=6,heads=4,kv_heads=4,vocab=4096");
    if (!strcmp(buf, "2b")) snprintf(buf, sizeof buf, "dim=2560,ffn=6912,layers=30,heads=20,kv_heads=5,vocab=32000");
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
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
    long P = 128, N = 64, R = 3, B = 64, seed = 1234, bw_mb = -1;
    tern_kernel_kind kinds[TERN_KERNEL_NKINDS] = {TERN_KERNEL_AUTO};
    int nk = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *dst = NULL;
        if (!strcmp(a, "-m")) { if (!v) usage(stderr, 2); path = v; i++; continue; }
        if (!strcmp(a, "--random")) { if (!v) usage(stderr, 2); random_spec = v; i++; continue; }
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
        if (!strcmp(a, "-p")) dst = &P;
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
    if (!path == !random_spec) usage(stderr, 2);
    if (R < 1 || R > 1000 || B < 1 || B > 4096 || P > 65536 || N > 65536 || P + N < 1) {
        fprintf(stderr, "tern-bench: out of range: -r %ld (1..1000), -b %ld (1..4096), -p %ld / -n %ld (0..65536, not both 0)\n", R, B, P, N);
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
        if (parse_shape(random_spec, &c)) return 2;
        if (!c.seq_len) c.seq_len = (int)(P + N);
        if (build_random_model(&m, &c, (uint64_t)seed)) { fprintf(stderr, "tern-bench: %s\n", tern_last_error()); return 1; }
    }
    double t_load = tern_time() - t0;
    const tern_rt_config *c = &m.config;
    if (P + N > c->seq_len || P + N < 1) {
        fprintf(stderr, "tern-bench: -p %ld + -n %ld exceeds the context %d\n", P, N, c->seq_len);
        free_model(&m);
        return 1;
    }
    tern_rt_state s;
    build_state(&s, &m, (int)B, (int)(P + N));
    printf("model: %s  dim %d ffn %d layers %d heads %d/%d vocab %d\n", m.path, c->dim, c->ffn_dim, c->n_layers, c->n_heads,
           c->n_kv_heads, c->vocab_size);
    printf("weights: %.3f G ternary (%.1f MB in kernel layout), %.1f MB fp (norms + logits matrix); loaded in %.2f s\n",
           m.n_ternary / 1e9, m.ternary_bytes / 1e6, m.fp_bytes / 1e6, t_load);
    // the kinds as run (AUTO resolved), for the labels
    tern_kernel_kind shown[TERN_KERNEL_NKINDS];
    for (int k = 0; k < nk; k++) {
        tern_kernel_force(kinds[k]);
        shown[k] = tern_kernel_best();
    }
    tern_kernel_force(kinds[0]);
    printf("kernel: ");
    for (int k = 0; k < nk; k++) printf("%s%s", k ? ", " : "", tern_kernel_name(shown[k]));
    printf("%s, threads: %d, batch %ld\n", nk > 1 ? " (alternating: each repeat runs each kind)" : "", omp_get_max_threads(), B);
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
    const double bytes_tok = (double)m.ternary_bytes + (double)m.fp_bytes;
    const double ops_tok = 2.0 * (double)m.n_ternary;
    // warm-up (page in the weights; each kind's code once)
    for (int k = 0; k < nk; k++) {
        tern_kernel_force(kinds[k]);
        forward(&m, &s, toks, 1, 0, 0);
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
            for (long i = 0; i < N; i++) forward(&m, &s, toks + P + i, 1, (int)(P + i), 0);
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
            printf("decode  %5ld tokens: %9.2f tok/s  %8.1f int GOPS  %6.1f GB/s effective (%.1f MB weights/token)  (median of %ld)\n",
                   N, dm, ops_tok * dm / 1e9, bytes_tok * dm / 1e9, bytes_tok / 1e6, R);
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
