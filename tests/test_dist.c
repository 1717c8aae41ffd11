// test_dist.c — data-parallel training (src/dist/). First the pieces in one process (a world of one:
// no MPI): the global-batch split and loader skips, the sliced optimizer functions ZeRO-1 uses, the
// deterministic micro-batch accumulation, ZeRO-1 against zero = 0 and its checkpoints. Then the real
// programs under `mpirun -np 2|3|4 --oversubscribe` on this machine's loopback: 2 ranks bit-identical
// to one process with grad_accum = 2 (zero = 0 and 1, and with recompute = 1), a hash of the weights equal on every rank,
// 3 ranks, 4 ranks and 2 ranks x 2 micro-batches within fp32 rounding, ZeRO-1 = zero = 0 on 4 ranks,
// resume 2 -> 1 and 1 -> 2, tern-finetune, a bad file on one rank, a rank failing and a rank killed
// mid-run, Ctrl-C on mpirun. About 30-60 s on 2 cores (mostly mpirun start-up, ~1 s per launch).
//
// The launcher passes the Open MPI settings that work in containers and on machines without a
// network: --mca btl self,vader (shared memory only), btl_vader_single_copy_mechanism none (no
// ptrace-based CMA), pml ob1 (no UCX), --bind-to none, --oversubscribe; as root it sets
// OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM). Under AddressSanitizer the ranks run with detect_leaks=0: Open
// MPI's own start-up allocations are never freed and come from components it unloads before LeakSanitizer
// looks, so they cannot be suppressed by name (the same code is leak-checked in one process above).
#include "testutil.h"
#include "dist/ddp.h"
#include "dist/dist.h"
#include "formats/checkpoint.h"
#include "formats/tokfile.h"
#include "training/memory.h"
#include "training/trainer.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static char dir[256], bindir[512];

// ---- fixtures ----------------------------------------------------------------------------------

// a learnable sequence: next = (5 * cur + 3) % 61, with a random token every 8 positions
static void make_data(const char *path, long n, uint64_t seed) {
    int *ids = malloc(sizeof(int) * (size_t)n);
    tern_rng r;
    tern_rng_seed(&r, seed);
    ids[0] = 1;
    for (long i = 1; i < n; i++) ids[i] = (i % 8 == 0) ? (int)(tern_rng_u64(&r) % 61) : (5 * ids[i - 1] + 3) % 61;
    assert_int_equal(tern_tokfile_write(path, ids, (size_t)n, 61, 0, 0), 0);
    free(ids);
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/tern_test_dist_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char p[600];
    snprintf(p, sizeof p, "%s/train.tok", dir);
    make_data(p, 6000, 3);
    snprintf(p, sizeof p, "%s/val.tok", dir);
    make_data(p, 1500, 4);
    // the same file name in two directories, the second one damaged (a bad file on one node)
    snprintf(p, sizeof p, "%s/nodeA", dir);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/nodeB", dir);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/nodeA/data.tok", dir);
    make_data(p, 6000, 3);
    snprintf(p, sizeof p, "%s/nodeB/data.tok", dir);
    make_data(p, 6000, 3);
    if (truncate(p, 100) != 0) return -1;
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

// the model and run of every test: ~20k parameters, steps of a few milliseconds
static const char *TINY[] = {"dim=32", "n_layers=2", "n_heads=2", "n_kv_heads=1", "ffn_dim=64", "vocab_size=61",
                             "seq_len=16", "batch=4", "grad_accum=2", "warmup=0", "lr=1e-2", "log_interval=1",
                             "eval_interval=3", "eval_batches=2", "seed=5", "threads=1", "bucket_mb=0.01", NULL};

static void tiny_config(tern_config *c, const char *run, long steps) {
    tern_config_defaults(c);
    for (int i = 0; TINY[i]; i++) assert_int_equal(tern_config_set_arg(c, TINY[i]), 0);
    c->run.steps = steps;
    c->run.ckpt_interval = 0;
    snprintf(c->run.train_data, sizeof c->run.train_data, "%s/train.tok", dir);
    snprintf(c->run.val_data, sizeof c->run.val_data, "%s/val.tok", dir);
    snprintf(c->run.out_dir, sizeof c->run.out_dir, "%s/%s", dir, run);
    if (tern_config_validate(c) != 0) fail_msg("%s", tern_last_error());
}

// ---- one process --------------------------------------------------------------------------------

static void test_split_and_skip(void **st) {
    (void)st;
    for (long n = 1; n <= 40; n++)
        for (int size = 1; size <= 9; size++) {
            long prev = 0, mn = n, mx = 0;
            for (int r = 0; r < size; r++) {
                long lo, hi;
                tern_dist_split(n, r, size, &lo, &hi);
                assert_int_equal(lo, prev); // contiguous, in rank order
                assert_true(hi >= lo);
                mn = hi - lo < mn ? hi - lo : mn;
                mx = hi - lo > mx ? hi - lo : mx;
                prev = hi;
            }
            assert_int_equal(prev, n);
            assert_true(mx - mn <= 1);
        }
    // skipping n windows lands where reading them does, across epoch ends
    char p[600];
    snprintf(p, sizeof p, "%s/val.tok", dir);
    tern_loader a, b;
    assert_int_equal(tern_loader_open(&a, p, 16, 3, 9), 0);
    assert_int_equal(tern_loader_open(&b, p, 16, 3, 9), 0);
    int *in = malloc(sizeof(int) * 16 * 200), *tg = malloc(sizeof(int) * 16 * 200);
    int *in2 = malloc(sizeof(int) * 16 * 200), *tg2 = malloc(sizeof(int) * 16 * 200);
    int64_t nw = a.n_windows;
    long steps[] = {5, nw - 3, 2 * nw + 1, 7, 0, nw};
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
        for (long left = steps[k]; left > 0; left -= 100) tern_loader_next_n(&a, left < 100 ? (int)left : 100, in, tg);
        tern_loader_skip(&b, steps[k]);
        int64_t ea, pa, eb, pb;
        tern_loader_get_pos(&a, &ea, &pa);
        tern_loader_get_pos(&b, &eb, &pb);
        tern_loader_next_n(&a, 5, in, tg);
        tern_loader_next_n(&b, 5, in2, tg2);
        assert_memory_equal(in, in2, sizeof(int) * 16 * 5);
        assert_memory_equal(tg, tg2, sizeof(int) * 16 * 5);
    }
    int64_t e;
    tern_loader_get_pos(&a, &e, &(int64_t){0});
    assert_true(e >= 3); // the walk crossed several epochs
    free(in);
    free(tg);
    free(in2);
    free(tg2);
    tern_loader_close(&a);
    tern_loader_close(&b);
}

// The sliced optimizer functions of ZeRO-1 against the whole-buffer ones (optim.h), slices on norm
// chunk starts, with a frozen tensor in the middle.
static void test_optim_slices(void **st) {
    (void)st;
    tern_params p;
    tern_params_init(&p);
    int s0[2] = {70, 300}, s1[1] = {5}, s2[2] = {40, 500}, s3[1] = {9000};
    tern_params_add(&p, "a", 2, s0, 0);
    tern_params_add(&p, "b", 1, s1, 1);
    tern_params_add(&p, "c", 2, s2, 0);
    tern_params_add(&p, "d", 1, s3, 0);
    tern_params_alloc(&p);
    tu_fill_normal(p.data, p.total, 1, 1.0f);
    tu_fill_normal(p.grad, p.total, 2, 0.5f);
    tu_fill_uniform(p.v, p.total, 3, 0.0f, 0.01f);
    tu_fill_normal(p.m, p.total, 4, 0.01f);
    tern_adamw o;
    tern_adamw_init(&o, &p, 0.9f, 0.95f, 1e-8f);
    assert_int_equal(tern_adamw_freeze(&o, &p, "c"), 0);
    double full = tern_grad_norm(&o, &p);
    // slice bounds on chunk starts (tensor offsets + multiples of TERN_NORM_CHUNK), ascending
    long b[6] = {0, p.t[0]->offset + TERN_NORM_CHUNK, p.t[1]->offset, p.t[3]->offset, p.t[3]->offset + TERN_NORM_CHUNK, p.total};
    for (int k = 0; k + 1 < 6; k++) assert_true(b[k] <= b[k + 1]);
    double *parts = malloc(sizeof(double) * (size_t)o.nchunks), sum = 0;
    int got = 0;
    for (int k = 0; k + 1 < 6; k++) got += tern_grad_norm_partials(&o, &p, p.grad + b[k], b[k], b[k + 1], parts + got);
    for (int c = 0; c < got; c++) sum += parts[c];
    assert_true(sqrt(sum) == full); // bit for bit
    // update slice by slice (own copies of the slices' m and v) == whole update
    size_t bytes = sizeof(float) * (size_t)p.total;
    float *w0 = malloc(bytes), *m0 = malloc(bytes), *v0 = malloc(bytes);
    memcpy(w0, p.data, bytes);
    memcpy(m0, p.m, bytes);
    memcpy(v0, p.v, bytes);
    tern_clip_grads(&o, &p, full, 1.0f); // clip on the whole buffer first (same factor below)
    float *g_clipped = malloc(bytes);
    memcpy(g_clipped, p.grad, bytes);
    tern_adamw_update(&o, &p, 3, 1e-3f, 0.1f);
    float *w1 = malloc(bytes), *m1 = malloc(bytes), *v1 = malloc(bytes);
    memcpy(w1, p.data, bytes);
    memcpy(m1, p.m, bytes);
    memcpy(v1, p.v, bytes);
    memcpy(p.data, w0, bytes);
    tu_fill_normal(p.grad, p.total, 2, 0.5f); // unclipped again
    float scale = (float)(1.0 / full);
    for (int k = 0; k + 1 < 6; k++) {
        long lo = b[k], hi = b[k + 1], n = hi - lo;
        if (n == 0) continue;
        float *g = malloc(sizeof(float) * (size_t)n), *m = malloc(sizeof(float) * (size_t)n), *v = malloc(sizeof(float) * (size_t)n);
        memcpy(g, p.grad + lo, sizeof(float) * (size_t)n);
        memcpy(m, m0 + lo, sizeof(float) * (size_t)n);
        memcpy(v, v0 + lo, sizeof(float) * (size_t)n);
        tern_clip_range(&o, &p, g, lo, hi, scale);
        for (long i = 0; i < n; i++) {
            long e = lo + i;
            int frozen = e >= p.t[2]->offset && e < p.t[2]->offset + p.t[2]->n;
            if (!frozen) assert_true(g[i] == g_clipped[e]);
        }
        tern_adamw_update_range(&o, &p, g, m, v, lo, hi, 3, 1e-3f, 0.1f);
        assert_memory_equal(m, m1 + lo, sizeof(float) * (size_t)n);
        assert_memory_equal(v, v1 + lo, sizeof(float) * (size_t)n);
        free(g);
        free(m);
        free(v);
    }
    assert_memory_equal(p.data, w1, bytes);
    // the frozen tensor did not move
    assert_memory_equal(p.data + p.t[2]->offset, w0 + p.t[2]->offset, sizeof(float) * (size_t)p.t[2]->n);
    // a non-finite gradient in a slice is named
    p.grad[p.t[3]->offset + 8200] = NAN;
    assert_int_equal(tern_grads_check_range(&o, &p, p.grad + b[4], b[4], b[5]), -1);
    assert_non_null(strstr(tern_last_error(), "d[8200]"));
    assert_int_equal(tern_grads_check_range(&o, &p, p.grad, 0, b[3]), 0);
    free(parts);
    free(w0);
    free(m0);
    free(v0);
    free(w1);
    free(m1);
    free(v1);
    free(g_clipped);
    tern_adamw_free(&o);
    tern_params_free(&p);
}

// Two micro-batches through the data-parallel layer give exactly fl(g0 + g1), g0 and g1 each
// computed alone (what 2 ranks sum): the sum is not accumulated inside the ops' backward.
static void test_accumulation_order(void **st) {
    (void)st;
    tern_config c;
    tiny_config(&c, "acc", 1);
    tern_model m;
    tern_model_build(&m, &c.model);
    tern_model_init_weights(&m, 7);
    tern_adamw o;
    tern_adamw_init_run(&o, &m.params, &c.run);
    tern_ddp d;
    tern_ddp_init(&d, &m.params, &o, 0, 1.0f, 1);
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&c.model), 0, 0);
    int B = 4, T = 16;
    int in[2][64], tg[2][64];
    tern_rng r;
    tern_rng_seed(&r, 11);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < B * T; i++) {
            in[k][i] = (int)(tern_rng_u64(&r) % 61);
            tg[k][i] = (int)(tern_rng_u64(&r) % 61);
        }
    size_t bytes = sizeof(float) * (size_t)m.params.total;
    float *gk[2];
    for (int k = 0; k < 2; k++) { // each micro-batch alone
        tern_ddp_step_begin(&d);
        tern_graph_reset(&g);
        tern_ddp_micro_begin(&d, &g, 0, 1);
        tern_backward(&g, tern_model_loss(&m, &g, in[k], tg[k], B, T), 0.5f);
        tern_ddp_micro_end(&d, &g);
        tern_ddp_sync(&d);
        gk[k] = malloc(bytes);
        memcpy(gk[k], m.params.grad, bytes);
    }
    tern_ddp_step_begin(&d); // both, as one step
    for (int k = 0; k < 2; k++) {
        tern_graph_reset(&g);
        tern_ddp_micro_begin(&d, &g, k, k == 1);
        tern_backward(&g, tern_model_loss(&m, &g, in[k], tg[k], B, T), 0.5f);
        tern_ddp_micro_end(&d, &g);
    }
    tern_ddp_sync(&d);
    long nonzero = 0;
    for (long i = 0; i < m.params.total; i++) {
        float want = gk[0][i] + gk[1][i];
        if (memcmp(&want, &m.params.grad[i], sizeof want) != 0)
            fail_msg("element %ld: %.9g, expected fl(%.9g + %.9g) = %.9g", i, m.params.grad[i], gk[0][i], gk[1][i], want);
        nonzero += want != 0;
    }
    assert_true(nonzero > m.params.total / 2);
    // the parameters' gradient pointers are back on the flat buffer
    for (int i = 0; i < m.params.n; i++) assert_ptr_equal(m.params.t[i]->grad, m.params.grad + m.params.t[i]->offset);
    free(gk[0]);
    free(gk[1]);
    tern_graph_free(&g);
    tern_ddp_free(&d);
    tern_adamw_free(&o);
    tern_model_free(&m);
}

static void run_steps(tern_trainer *t, int n) {
    for (int i = 0; i < n; i++)
        if (tern_trainer_step(t) != 0) fail_msg("%s", tern_last_error());
}

// ZeRO-1 in one process (the sharded code path, one slice) against zero = 0, and its checkpoints.
static void test_zero1_one_process(void **st) {
    (void)st;
    tern_config c0, c1;
    tiny_config(&c0, "z0", 6);
    tiny_config(&c1, "z1", 6);
    c1.run.zero = 1;
    tern_trainer a, b;
    if (tern_trainer_init(&a, &c0, 0) != 0 || tern_trainer_init(&b, &c1, 0) != 0) fail_msg("%s", tern_last_error());
    a.quiet = b.quiet = 1;
    assert_null(b.model.params.m); // the full moments are gone with zero = 1
    run_steps(&a, 3);
    run_steps(&b, 3);
    size_t bytes = sizeof(float) * (size_t)a.model.params.total;
    assert_memory_equal(a.model.params.data, b.model.params.data, bytes);
    assert_int_equal(tern_trainer_save(&b), 0);
    float *m, *v;
    assert_int_equal(tern_ddp_moments(&b.ddp, &m, &v), 1);
    assert_memory_equal(m, a.model.params.m, bytes);
    assert_memory_equal(v, a.model.params.v, bytes);
    // resume the zero = 1 run with zero = 0 (the checkpoint holds the full moments)
    tern_trainer_free(&b);
    tiny_config(&c1, "z1", 6);
    if (tern_trainer_init(&b, &c1, 1) != 0) fail_msg("%s", tern_last_error());
    b.quiet = 1;
    assert_int_equal(b.step, 3);
    run_steps(&a, 3);
    run_steps(&b, 3);
    assert_memory_equal(a.model.params.data, b.model.params.data, bytes);
    assert_memory_equal(a.model.params.m, b.model.params.m, bytes);
    assert_memory_equal(a.model.params.v, b.model.params.v, bytes);
    tern_trainer_free(&a);
    tern_trainer_free(&b);
}

// The memory estimate of one rank (training/memory.h): ZeRO-1 keeps 1/ranks of AdamW's m and v
// (all of it on rank 0 while a checkpoint loads), several ranks or grad_accum > 1 add one
// gradient-sized buffer, and the ranks on a node split its available memory. Reference: the
// parameter count times 4 bytes, computed here from the config's shapes.
static void test_memory_per_rank(void **st) {
    (void)st;
    tern_config c;
    tiny_config(&c, "mem", 1);
    const tern_model_config *m = &c.model;
    // model.c's parameters: embedding, per layer 2 norms + 2 sub-norms + q,k,v,o + gate,up,down, final norm;
    // each tensor padded to 16 floats
#define PAD16(x) ((((long)(x)) + 15) / 16 * 16)
    long kv = (long)m->dim / m->n_heads * m->n_kv_heads, layer = 2 * PAD16(m->dim) + 2 * PAD16((long)m->dim * m->dim) +
              2 * PAD16(kv * m->dim) + 3 * PAD16((long)m->dim * m->ffn_dim);
    layer += PAD16(m->dim) + PAD16(m->ffn_dim);   // attn_sub_norm, ffn_sub_norm
    long P = PAD16((long)m->vocab_size * m->dim) + m->n_layers * layer + PAD16(m->dim);
    if (!m->tied_head) P += PAD16((long)m->vocab_size * m->dim);
#undef PAD16
    tern_mem_inputs one = {.threads = 1, .ranks = 1, .node_ranks = 1}, two = {.threads = 1, .ranks = 2, .node_ranks = 2},
                    two_load = {.threads = 1, .resuming = 1, .ranks = 2, .node_ranks = 2};
    tern_mem_estimate e1, e2, e3, ez, ezl;
    c.run.grad_accum = 1;
    assert_int_equal(tern_mem_estimate_run(&c, &one, &e1), 0);
    assert_int_equal(e1.n_params, P);
    assert_int_equal(e1.adam, (size_t)(8 * P));
    assert_int_equal(e1.grad_scratch, 0);                 // one process, one micro-batch: no second buffer
    c.run.grad_accum = 2;
    assert_int_equal(tern_mem_estimate_run(&c, &one, &e2), 0);
    assert_int_equal(e2.grad_scratch, (size_t)(4 * P));   // accumulation
    assert_int_equal(e2.peak - e1.peak, (size_t)(4 * P));
    c.run.grad_accum = 1;
    assert_int_equal(tern_mem_estimate_run(&c, &two, &e3), 0);
    assert_int_equal(e3.grad_scratch, (size_t)(4 * P));   // the all-reduce send buffer
    assert_int_equal(e3.adam, (size_t)(8 * P));           // zero = 0: all of m and v on every rank
    c.run.zero = 1;
    assert_int_equal(tern_mem_estimate_run(&c, &two, &ez), 0);
    assert_true(ez.adam >= (size_t)(4 * P) && ez.adam <= (size_t)(4 * P) + 2 * 4 * 4200); // half, within a chunk
    assert_int_equal(tern_mem_estimate_run(&c, &two_load, &ezl), 0);
    assert_int_equal(ezl.adam, (size_t)(8 * P));          // rank 0 loading a checkpoint holds all of it
    // the auto limit: this rank's share of the node; max_memory is per process
    assert_int_equal(ez.node_ranks, 2);
    size_t avail = tern_mem_available();
    if (avail) {
        size_t lim = tern_mem_limit(&ez, 0);
        assert_true(lim <= avail / 2 + (avail / 50) && lim + avail / 50 >= avail / 2); // MemAvailable moves a little
    }
    assert_int_equal(tern_mem_limit(&ez, 12345678), 12345678);
    ez.peak = 3000000;
    assert_int_equal(tern_mem_check(&ez, 2000000), -1);
    assert_non_null(strstr(tern_last_error(), "max_memory is"));
    assert_int_equal(tern_mem_check(&ez, 4000000), 0);
}

// ---- the programs under mpirun -------------------------------------------------------------------

// Start `np` ranks of build/<prog> under mpirun (np = 0: the program alone), output to log; env:
// "NAME=VALUE" set for the ranks (or NULL). mpmd: two app contexts, one rank each, run in dir/nodeA
// and dir/nodeB.
static pid_t spawn(int np, const char *prog, const char *const *args, const char *log, const char *env, int mpmd) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", bindir, prog);
    const char *argv[200];
    int n = 0;
    char npbuf[16], wa[700], wb[700], fenv[128];
    if (np > 0 || mpmd) {
        const char *pre[] = {"mpirun", "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader", "--mca",
                             "btl_vader_single_copy_mechanism", "none", "--mca", "pml", "ob1", NULL};
        for (int i = 0; pre[i]; i++) argv[n++] = pre[i];
        if (env) {
            snprintf(fenv, sizeof fenv, "%s", env);
            argv[n++] = "-x";
            argv[n++] = fenv;
        }
        if (SANITIZED) { argv[n++] = "-x"; argv[n++] = "ASAN_OPTIONS"; }
    }
    if (mpmd) {
        snprintf(wa, sizeof wa, "%s/nodeA", dir);
        snprintf(wb, sizeof wb, "%s/nodeB", dir);
        for (int ctx = 0; ctx < 2; ctx++) {
            if (ctx) argv[n++] = ":";
            argv[n++] = "-np";
            argv[n++] = "1";
            argv[n++] = "-wdir";
            argv[n++] = ctx ? wb : wa;
            argv[n++] = path;
            for (int i = 0; args[i]; i++) argv[n++] = args[i];
        }
    } else {
        if (np > 0) {
            snprintf(npbuf, sizeof npbuf, "%d", np);
            argv[n++] = "-np";
            argv[n++] = npbuf;
        }
        argv[n++] = path;
        for (int i = 0; args[i]; i++) argv[n++] = args[i];
    }
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); // its own process group: a timeout kills mpirun and every rank
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        if (SANITIZED) setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
        if (env && np == 0) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(strchr(env, '=') - env), env);
            setenv(name, strchr(env, '=') + 1, 1);
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

// Wait up to timeout seconds; on timeout kill the whole group and fail. Returns the exit status.
static int finish(pid_t pid, double timeout, double *secs) {
    double t0 = tern_time();
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (tern_time() - t0 > timeout) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("timed out after %.0f s (hang?)", timeout);
        }
        usleep(20000);
    }
    if (secs) *secs = tern_time() - t0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *slurp(const char *path) {
    size_t n;
    char *s = tern_read_file(path, &n);
    if (!s) fail_msg("%s", tern_last_error());
    return s;
}

// Run and expect success; returns the log text (caller frees).
static char *run_env_ok(int np, const char *prog, const char *const *args, const char *name, const char *env) {
    char log[700];
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    int rc = finish(spawn(np, prog, args, log, env, 0), 180, NULL);
    char *out = slurp(log);
    if (rc != 0) fail_msg("%s (np %d) exited %d:\n%s", prog, np, rc, out);
    return out;
}

static char *run_ok(int np, const char *prog, const char *const *args, const char *name) {
    return run_env_ok(np, prog, args, name, NULL);
}

// args = TINY + train/val data + out_dir + extra (NULL-terminated); static storage per call site
typedef struct { const char *v[64]; char buf[8][700]; } arglist;
static const char *const *make_args(arglist *a, const char *out, const char *const *extra) {
    int n = 0;
    for (int i = 0; TINY[i]; i++) a->v[n++] = TINY[i];
    snprintf(a->buf[0], sizeof a->buf[0], "train_data=%s/train.tok", dir);
    snprintf(a->buf[1], sizeof a->buf[1], "val_data=%s/val.tok", dir);
    snprintf(a->buf[2], sizeof a->buf[2], "out_dir=%s/%s", dir, out);
    for (int i = 0; i < 3; i++) a->v[n++] = a->buf[i];
    for (int i = 0; extra && extra[i]; i++) a->v[n++] = extra[i];
    a->v[n] = NULL;
    return a->v;
}

// the checkpoint's parameters (data, m, v) in a freshly built model's flat layout
static void load_ckpt(const char *path, tern_model *m, tern_train_state *st) {
    tern_model_config mc;
    if (tern_checkpoint_read_config(path, &mc) != 0) fail_msg("%s", tern_last_error());
    tern_model_build(m, &mc);
    if (tern_checkpoint_load(path, &mc, &m->params, st) != 1) fail_msg("%s", tern_last_error());
}

// max |a - b| over weights, m and v of two checkpoints; *same: bit for bit
static double ckpt_diff(const char *pa, const char *pb, int *same) {
    tern_model a, b;
    tern_train_state sa, sb;
    load_ckpt(pa, &a, &sa);
    load_ckpt(pb, &b, &sb);
    assert_int_equal(a.params.total, b.params.total);
    assert_int_equal(sa.step, sb.step);
    assert_int_equal(sa.loader_epoch, sb.loader_epoch);
    assert_int_equal(sa.loader_pos, sb.loader_pos);
    assert_int_equal(sa.tokens_seen, sb.tokens_seen);
    size_t bytes = sizeof(float) * (size_t)a.params.total;
    *same = !memcmp(a.params.data, b.params.data, bytes) && !memcmp(a.params.m, b.params.m, bytes) &&
            !memcmp(a.params.v, b.params.v, bytes);
    double worst = 0;
    for (long i = 0; i < a.params.total; i++) {
        double d = fabs((double)a.params.data[i] - b.params.data[i]);
        worst = d > worst ? d : worst;
    }
    tern_train_state_free(&sa);
    tern_train_state_free(&sb);
    tern_model_free(&a);
    tern_model_free(&b);
    return worst;
}

static void expect_same_ckpt(const char *a, const char *b) {
    int same;
    double d = ckpt_diff(a, b, &same);
    if (!same) fail_msg("%s and %s differ (max weight difference %g)", a, b, d);
}

// the CSV columns that must match (loss, lr, grad_norm, val_loss), row by row; tokens/s differs
static void csv_columns(const char *path, char *out, size_t n) {
    char *s = slurp(path);
    size_t o = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        int col = 0;
        for (char *f = line, *next; f; f = next, col++) {
            next = strchr(f, ',');
            if (next) *next++ = 0;
            if (col != 5 && o < n) o += (size_t)snprintf(out + o, n - o, "%s,", f);
        }
        if (o < n) o += (size_t)snprintf(out + o, n - o, "\n");
    }
    free(s);
}

static void expect_same_csv(const char *a, const char *b) {
    static char x[65536], y[65536];
    csv_columns(a, x, sizeof x);
    csv_columns(b, y, sizeof y);
    if (strcmp(x, y) != 0) fail_msg("%s and %s differ:\n%s\nvs\n%s", a, b, x, y);
}

// the test's own copy of the weights hash (dist.h tern_dist_hash: multiply-xorshift per 8 bytes)
static uint64_t ref_hash(const unsigned char *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--) w = (w << 8) | p[i + (size_t)k];
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static void path_of(char *buf, size_t n, const char *run, const char *file) { snprintf(buf, n, "%s/%s/%s", dir, run, file); }

// 2 ranks == 1 process with grad_accum = 2, bit for bit (zero = 0 and 1); the weights' hash is the
// same on every rank after every step (checked at each checkpoint, ckpt_interval = 1).
static void test_mpi_equivalence(void **st) {
    (void)st;
    const char *extra[] = {"steps=6", "ckpt_interval=1", "ckpt_keep=2", "--fresh", NULL};
    const char *extra_z[] = {"steps=6", "ckpt_interval=1", "ckpt_keep=2", "zero=1", "--fresh", NULL};
    arglist a1, a2, a3;
    free(run_ok(0, "tern-train", make_args(&a1, "one", extra), "one"));
    char *out2 = run_ok(2, "tern-train", make_args(&a2, "two", extra), "two");
    free(run_ok(2, "tern-train", make_args(&a3, "twoz", extra_z), "twoz"));
    // without the communication thread (the hook polls MPI itself)
    arglist a4;
    char *outi = run_env_ok(2, "tern-train", make_args(&a4, "twoi", extra), "twoi", "TERN_MPI_PROGRESS=inline");
    assert_non_null(strstr(outi, "MPI polled between graph nodes"));
    free(outi);
    // recompute = 1: the hook's plan finds each block's parameters on its checkpoint node
    const char *extra_r[] = {"steps=6", "ckpt_interval=1", "ckpt_keep=2", "recompute=1", "--fresh", NULL};
    arglist a5;
    free(run_ok(2, "tern-train", make_args(&a5, "twor", extra_r), "twor"));
    char p1[700], p2[700], p3[700], p4[700];
    path_of(p1, sizeof p1, "one", "latest.h5");
    path_of(p4, sizeof p4, "twoi", "latest.h5");
    expect_same_ckpt(p1, p4);
    path_of(p4, sizeof p4, "twor", "latest.h5");
    expect_same_ckpt(p1, p4);
    path_of(p1, sizeof p1, "one", "latest.h5");
    path_of(p2, sizeof p2, "two", "latest.h5");
    path_of(p3, sizeof p3, "twoz", "latest.h5");
    expect_same_ckpt(p1, p2);
    expect_same_ckpt(p1, p3);
    path_of(p1, sizeof p1, "one", "train.csv");
    path_of(p2, sizeof p2, "two", "train.csv");
    path_of(p3, sizeof p3, "twoz", "train.csv");
    expect_same_csv(p1, p2);
    expect_same_csv(p1, p3);
    // rank 0 alone printed, and reported the hash every rank agreed on: the final weights' hash
    const char *h = strstr(out2, "weights identical on all 2 ranks: hash ");
    assert_non_null(h);
    unsigned long long printed = strtoull(h + strlen("weights identical on all 2 ranks: hash "), NULL, 16);
    tern_model m;
    tern_train_state s;
    path_of(p1, sizeof p1, "two", "latest.h5");
    load_ckpt(p1, &m, &s);
    assert_true(printed == ref_hash((const unsigned char *)m.params.data, sizeof(float) * (size_t)m.params.total));
    tern_model_free(&m);
    tern_train_state_free(&s);
    const char *first = strstr(out2, "# tern-train: resolved config");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# tern-train: resolved config"));
    assert_non_null(strstr(out2, "2 ranks x 1 thread (2 on this node)"));
    assert_non_null(strstr(out2, "global batch 8 sequences x 16 = 128 tokens per step"));
    assert_non_null(strstr(out2, "MPI driven by a communication thread"));
    free(out2);
}

// the loss column of two CSVs agrees to rel (7 rows: header + 6 steps)
static void expect_close_losses(const char *a, const char *b, double rel) {
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    assert_non_null(fa);
    assert_non_null(fb);
    char la[256], lb[256];
    int rows = 0;
    while (fgets(la, sizeof la, fa) && fgets(lb, sizeof lb, fb)) {
        if (rows++ == 0) continue;
        double xa = strtod(strchr(strchr(la, ',') + 1, ',') + 1, NULL), xb = strtod(strchr(strchr(lb, ',') + 1, ',') + 1, NULL);
        if (fabs(xa - xb) > rel * fabs(xa)) fail_msg("loss differs: %s vs %s", la, lb);
    }
    assert_int_equal(rows, 7);
    fclose(fa);
    fclose(fb);
}

static void expect_close_run(const char *ref, const char *run, const char *what) {
    char p1[700], p2[700];
    path_of(p1, sizeof p1, ref, "latest.h5");
    path_of(p2, sizeof p2, run, "latest.h5");
    int same;
    double d = ckpt_diff(p1, p2, &same);
    print_message("%s vs 1 process after 6 steps: max weight difference %g (bit-identical: %s)\n", what, d, same ? "yes" : "no");
    assert_true(d < 1e-4); // lr 1e-2: a few ulps of gradient moved through AdamW and ternary rounding
    path_of(p1, sizeof p1, ref, "train.csv");
    path_of(p2, sizeof p2, run, "train.csv");
    expect_close_losses(p1, p2, 1e-4);
}

// Other layouts give the same training to fp32 rounding: 3 ranks (the global batch of 8 split
// 2 + 3 + 3), 2 ranks with 2 micro-batches each (batch 2 x grad_accum 4), 4 ranks; and on 4 ranks
// ZeRO-1 (all-reduce, then each rank's slice) equals zero = 0 bit for bit.
static void test_mpi_other_layouts(void **st) {
    (void)st;
    // fp32 arithmetic (on every CPU): the bf16 products of precision=mixed round each sum's terms,
    // and over 6 steps at lr 1e-2 such differences can flip a ternary weight in one layout only
    const char *extra[] = {"steps=6", "precision=fp32", "--fresh", NULL};
    const char *small_micro[] = {"steps=6", "batch=2", "grad_accum=4", "precision=fp32", "--fresh", NULL};
    const char *zero1[] = {"steps=6", "zero=1", "precision=fp32", "--fresh", NULL};
    arglist a1, a2, a3, a4, a5;
    free(run_ok(0, "tern-train", make_args(&a1, "one3", extra), "one3"));
    free(run_ok(3, "tern-train", make_args(&a2, "three", extra), "three"));
    expect_close_run("one3", "three", "3 ranks");
    free(run_ok(2, "tern-train", make_args(&a3, "twomicro", small_micro), "twomicro"));
    expect_close_run("one3", "twomicro", "2 ranks x 2 micro-batches");
    free(run_ok(4, "tern-train", make_args(&a4, "four", extra), "four"));
    expect_close_run("one3", "four", "4 ranks");
    free(run_ok(4, "tern-train", make_args(&a5, "fourz", zero1), "fourz"));
    char p1[700], p2[700];
    path_of(p1, sizeof p1, "four", "latest.h5");
    path_of(p2, sizeof p2, "fourz", "latest.h5");
    expect_same_ckpt(p1, p2);
}

static void repoint_latest(const char *run, long step) {
    char link[700], name[64];
    path_of(link, sizeof link, run, "latest.h5");
    snprintf(name, sizeof name, "ckpt_%08ld.h5", step);
    unlink(link);
    assert_int_equal(symlink(name, link), 0);
}

// A checkpoint written by 2 ranks (ZeRO-1: gathered m and v) resumes on 1, and one written by 1
// process resumes on 2, exactly: the same global batches, the same weights as the straight run.
static void test_mpi_resume(void **st) {
    (void)st;
    const char *straight[] = {"steps=6", "--fresh", NULL};
    const char *first[] = {"steps=6", "ckpt_interval=3", "ckpt_keep=0", "--fresh", NULL};
    const char *first_z[] = {"steps=6", "ckpt_interval=3", "ckpt_keep=0", "zero=1", "--fresh", NULL};
    const char *resume[] = {"steps=6", "ckpt_interval=3", "ckpt_keep=0", NULL};
    arglist a, b, c, d, e;
    free(run_ok(0, "tern-train", make_args(&a, "ref", straight), "ref"));
    char ref[700], got[700];
    path_of(ref, sizeof ref, "ref", "latest.h5");
    // 2 -> 1
    free(run_ok(2, "tern-train", make_args(&b, "r21", first_z), "r21a"));
    repoint_latest("r21", 3);
    char *out = run_ok(0, "tern-train", make_args(&c, "r21", resume), "r21b");
    assert_non_null(strstr(out, "resumed at step 3"));
    free(out);
    path_of(got, sizeof got, "r21", "latest.h5");
    expect_same_ckpt(ref, got);
    // 1 -> 2
    free(run_ok(0, "tern-train", make_args(&d, "r12", first), "r12a"));
    repoint_latest("r12", 3);
    out = run_ok(2, "tern-train", make_args(&e, "r12", resume), "r12b");
    assert_non_null(strstr(out, "resumed at step 3"));
    free(out);
    path_of(got, sizeof got, "r12", "latest.h5");
    expect_same_ckpt(ref, got);
    char c1[700], c2[700];
    path_of(c1, sizeof c1, "ref", "train.csv");
    path_of(c2, sizeof c2, "r12", "train.csv");
    expect_same_csv(c1, c2);
}

// tern-finetune under mpirun: the same as one process with grad_accum = 2.
static void test_mpi_finetune(void **st) {
    (void)st;
    const char *base[] = {"steps=3", "ternary=0", "--fresh", NULL};
    arglist a, b, c;
    free(run_ok(0, "tern-train", make_args(&a, "fpbase", base), "fpbase"));
    char from[700];
    path_of(from, sizeof from, "fpbase", "latest.h5");
    const char *ft[] = {"--from", from, "--to-ternary", "2", "steps=4", NULL};
    free(run_ok(0, "tern-finetune", make_args(&b, "ft1", ft), "ft1"));
    char *out = run_ok(2, "tern-finetune", make_args(&c, "ft2", ft), "ft2");
    const char *before = strstr(out, "before: val loss");
    assert_non_null(before);
    assert_null(strstr(before + 1, "before: val loss")); // rank 0 alone prints
    assert_non_null(strstr(out, "after: val loss"));
    free(out);
    char p1[700], p2[700];
    path_of(p1, sizeof p1, "ft1", "latest.h5");
    path_of(p2, sizeof p2, "ft2", "latest.h5");
    expect_same_ckpt(p1, p2);
}

// One node's token file is damaged: rank 0 reports rank 1's error, every rank stops, nothing written.
static void test_mpi_bad_file_on_one_rank(void **st) {
    (void)st;
    arglist a;
    const char *extra[] = {"steps=5", "--fresh", NULL};
    const char *const *args = make_args(&a, "badfile", extra);
    for (int i = 0; a.v[i]; i++) // relative: nodeA/data.tok on rank 0, the damaged nodeB/data.tok on rank 1
        if (!strncmp(a.v[i], "train_data=", 11)) a.v[i] = "train_data=data.tok";
    char log[700];
    snprintf(log, sizeof log, "%s/badfile.log", dir);
    double secs;
    int rc = finish(spawn(0, "tern-train", args, log, NULL, 1), 120, &secs);
    char *out = slurp(log);
    print_message("bad file on rank 1: exit %d after %.1f s\n", rc, secs);
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "tern-train: rank 1 (") || !strstr(out, "data.tok: "))
        fail_msg("expected rank 0 to report rank 1's bad file:\n%s", out);
    char p[700];
    path_of(p, sizeof p, "badfile", "latest.h5");
    assert_int_not_equal(access(p, F_OK), 0);
    free(out);
}

// A rank fails mid-run (kind = fatal: the out-of-memory path of tern_fatal; kill: SIGKILL as the
// kernel's OOM killer sends): rank 0 names it and the cause, the job ends within seconds, and the
// last checkpoint (step 4 of ckpt_interval 2) is intact.
static void rank_fails(const char *kind, const char *expect) {
    arglist a;
    const char *extra[] = {"steps=200", "ckpt_interval=2", "ckpt_keep=2", "--fresh", NULL};
    char run[64], log[700], fault[64];
    snprintf(run, sizeof run, "fault_%s", kind);
    snprintf(log, sizeof log, "%s/%s.log", dir, run);
    snprintf(fault, sizeof fault, "TERN_DIST_FAULT=1:5:%s", kind);
    double secs;
    int rc = finish(spawn(2, "tern-train", make_args(&a, run, extra), log, fault, 0), 120, &secs);
    char *out = slurp(log);
    print_message("rank 1 %s at step 5: exit %d after %.1f s\n", kind, rc, secs);
    assert_int_not_equal(rc, 0);
    char want[256];
    snprintf(want, sizeof want, "tern: rank 1 (");
    const char *msg = strstr(out, want);
    if (!msg || !strstr(msg, expect) || !strstr(msg, "last checkpoint: ")) fail_msg("expected rank 0's report of rank 1 (%s):\n%s", expect, out);
    char p[700];
    path_of(p, sizeof p, run, "latest.h5");
    tern_model m;
    tern_train_state s;
    load_ckpt(p, &m, &s);
    assert_int_equal(s.step, 4);
    tern_train_state_free(&s);
    tern_model_free(&m);
    free(out);
}

static void test_mpi_rank_fails(void **st) {
    (void)st;
    rank_fails("fatal", "failed: out of memory");
}

static void test_mpi_rank_killed(void **st) {
    (void)st;
    rank_fails("kill", "has died: killed by a signal");
}

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

// The run directory under mpirun: rank 0 alone takes out_dir's lock (2 ranks on one node do not
// lock each other out; another run holding it stops the job with one message naming its pid), and
// the resume checks run on rank 0 and stop every rank.
static void test_mpi_run_dir(void **st) {
    (void)st;
    char d[700], lock[720], log[700];
    path_of(d, sizeof d, "rundir", "");
    mkdir(d, 0777);
    snprintf(lock, sizeof lock, "%s/.lock", d);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    assert_int_equal(pwrite(fd, pid, (size_t)n, 0), n);
    arglist a;
    const char *extra[] = {"steps=2", NULL};
    snprintf(log, sizeof log, "%s/rundir_locked.log", dir);
    int rc = finish(spawn(2, "tern-train", make_args(&a, "rundir", extra), log, NULL, 0), 120, NULL);
    char *out = slurp(log);
    char want[128];
    snprintf(want, sizeof want, "another run is using this directory (pid %ld holds", (long)getpid());
    if (rc == 0 || count_of(out, want) != 1) fail_msg("expected one refusal naming pid %ld (exit %d):\n%s", (long)getpid(), rc, out);
    free(out);
    close(fd); // released: the same run now trains on 2 ranks (rank 1 does not lock against rank 0)
    free(run_ok(2, "tern-train", make_args(&a, "rundir", extra), "rundir_ok"));
    // resuming with a key that changes the run: refused once, by rank 0, and no rank trains
    const char *changed[] = {"steps=4", "lr=2e-2", NULL};
    snprintf(log, sizeof log, "%s/rundir_changed.log", dir);
    rc = finish(spawn(2, "tern-train", make_args(&a, "rundir", changed), log, NULL, 0), 120, NULL);
    out = slurp(log);
    if (rc == 0 || count_of(out, "cannot resume: lr 0.00999999978 -> 0.0199999996 would change the run") != 1) {
        fputs(out, stderr); // whole: cmocka cuts long messages
        fail_msg("expected one resume refusal (exit %d); the log is above", rc);
    }
    free(out);
    char p[700];
    path_of(p, sizeof p, "rundir", "latest.h5");
    tern_model m;
    tern_train_state s;
    load_ckpt(p, &m, &s);
    assert_int_equal(s.step, 2);
    tern_train_state_free(&s);
    tern_model_free(&m);
}

static int csv_rows(const char *path) {
    FILE *f = fopen(path, "r");
    int lines = 0, ch;
    if (f) {
        while ((ch = fgetc(f)) != EOF) lines += ch == '\n';
        fclose(f);
    }
    return lines;
}

// Ctrl-C on mpirun: one checkpoint at the step the ranks reached, every rank stops.
static void test_mpi_ctrl_c(void **st) {
    (void)st;
    arglist a;
    const char *extra[] = {"steps=100000", "ckpt_interval=0", "eval_interval=0", "--fresh", NULL};
    char log[700], csv[700];
    snprintf(log, sizeof log, "%s/ctrlc.log", dir);
    path_of(csv, sizeof csv, "ctrlc", "train.csv");
    // mpirun's SIGCONT -> SIGTERM -> SIGKILL sequence waits 1 s per stage by default: on a loaded
    // machine the step and the checkpoint may need longer (docs/DISTRIBUTED.md, Ctrl-C timing)
    setenv("OMPI_MCA_odls_base_sigkill_timeout", "5", 1);
    pid_t pid = spawn(2, "tern-train", make_args(&a, "ctrlc", extra), log, NULL, 0);
    unsetenv("OMPI_MCA_odls_base_sigkill_timeout");
    for (int i = 0; i < 1200 && csv_rows(csv) < 5; i++) usleep(50000);
    assert_true(csv_rows(csv) >= 5);
    kill(pid, SIGINT);
    double secs;
    int rc = finish(pid, 60, &secs);
    char *out = slurp(log);
    print_message("Ctrl-C: mpirun exit %d after %.1f s\n", rc, secs);
    assert_true(secs < 30);
    if (!strstr(out, "interrupted by signal")) fail_msg("no checkpoint on Ctrl-C:\n%s", out);
    char p[700];
    path_of(p, sizeof p, "ctrlc", "latest.h5");
    tern_model m;
    tern_train_state s;
    load_ckpt(p, &m, &s);
    assert_true(s.step >= 4 && s.step < 100000);
    assert_int_equal(s.tokens_seen, s.step * 128);
    print_message("Ctrl-C: checkpoint at step %ld\n", s.step);
    tern_train_state_free(&s);
    tern_model_free(&m);
    free(out);
}

int main(int argc, char **argv) {
    (void)argc; // the programs sit beside tests/: build/tests/test_dist -> build/tern-train
    char self[512];
    if (!realpath(argv[0], self)) snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(bindir, sizeof bindir, "%s", self); // absolute: ranks may start in other directories
    char *slash = strrchr(bindir, '/');
    if (slash) *slash = 0;
    slash = strrchr(bindir, '/');
    if (slash) *slash = 0;
    else snprintf(bindir, sizeof bindir, ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_skip),      cmocka_unit_test(test_optim_slices),
        cmocka_unit_test(test_accumulation_order),  cmocka_unit_test(test_zero1_one_process),
        cmocka_unit_test(test_memory_per_rank),     cmocka_unit_test(test_mpi_run_dir),
        cmocka_unit_test(test_mpi_equivalence),     cmocka_unit_test(test_mpi_other_layouts),
        cmocka_unit_test(test_mpi_resume),          cmocka_unit_test(test_mpi_finetune),
        cmocka_unit_test(test_mpi_bad_file_on_one_rank), cmocka_unit_test(test_mpi_rank_fails),
        cmocka_unit_test(test_mpi_rank_killed),     cmocka_unit_test(test_mpi_ctrl_c),
    };
    return cmocka_run_group_tests_name("dist", tests, setup, teardown);
}
