// test_faults.c — faults and misuse, run against the real programs (build/tern-*; under
// SANITIZE=1 the sanitizer build's): kill -9 at random points of a run that checkpoints every step
// (latest.h5 always opens, and resuming reproduces the uninterrupted run bit for bit); a full disk
// (a small tmpfs when running as root, and a file-size limit always); two runs on one out_dir;
// resumes that would change the run; SIGINT/SIGTERM exit codes; stale temporary files; every
// reproducer of tests/fixtures/repro/ through the program it once broke; --help, out-of-range
// flags, -o onto a device, a FIFO as input, NaN checkpoints.
// Takes ~30-60 s on 2 cores (several minutes under SANITIZE=1), most of it program start-ups.
#include "testutil.h"
#include "formats/checkpoint.h"
#include "formats/tokfile.h"
#include "model/model.h"
#include "tokenizers/tokenizer.h"
#include "util.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

static char dir[256], bindir[400];

static void prog(char *buf, size_t n, const char *name) { snprintf(buf, n, "%stern-%s", bindir, name); }
static void in_dir(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

// ---- running programs ----------------------------------------------------------------------------

typedef struct {
    int status;        // exit status (128 + signal when killed by one); -1 timed out
    char out[65536], err[16384];
    double secs;
} run_t;

typedef struct { int fsize_limit; long fsize; } spawn_opts;

// Starts argv[0] with stdout/stderr into files; cwd may be NULL.
static pid_t spawn(char *const argv[], const char *cwd, const char *out, const char *err, const spawn_opts *o) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        // dies with the test: a failed assertion (or a timeout under make mutate) never leaves a
        // steps=1000000 run behind
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (cwd && chdir(cwd) != 0) _exit(126);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        if (o && o->fsize_limit) {   // a disk that fills up: writes past the limit fail with EFBIG
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {(rlim_t)o->fsize, (rlim_t)o->fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        setenv("OMP_NUM_THREADS", "1", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid, double timeout, double *secs) {
    double t0 = tern_time();
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (tern_time() - t0 > timeout) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            if (secs) *secs = tern_time() - t0;
            return -1;
        }
        usleep(2000);
    }
    if (secs) *secs = tern_time() - t0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void slurp(const char *path, char *buf, size_t n) {
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
}

static void run(run_t *r, double timeout, const char *cwd, char *const argv[], const spawn_opts *o) {
    char out[300], err[300];
    in_dir(out, sizeof out, "run.out");
    in_dir(err, sizeof err, "run.err");
    pid_t pid = spawn(argv, cwd, out, err, o);
    r->status = wait_status(pid, timeout, &r->secs);
    slurp(out, r->out, sizeof r->out);
    slurp(err, r->err, sizeof r->err);
}

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})

// stderr holds exactly one error line ("tern-<program>: ..."; progress, warning: and note: lines
// aside) containing every needle, and no sanitizer report
static void expect_one_error(const run_t *r, const char *what, const char *n1, const char *n2) {
    if (r->status <= 0) fail_msg("%s: expected failure, exit %d; stderr: %s", what, r->status, r->err);
    if (strstr(r->err, "Sanitizer") || strstr(r->err, "runtime error")) fail_msg("%s: sanitizer report: %s", what, r->err);
    int lines = 0;
    const char *line = NULL;
    for (const char *p = r->err; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 5 && !strncmp(p, "tern-", 5)) { lines++; line = p; }
        p = e ? e + 1 : p + len;
    }
    if (lines != 1) fail_msg("%s: %d error lines (want 1): %s", what, lines, r->err);
    if (n1 && !strstr(line, n1)) fail_msg("%s: error lacks '%s': %s", what, n1, r->err);
    if (n2 && !strstr(line, n2)) fail_msg("%s: error lacks '%s': %s", what, n2, r->err);
}

// ---- data and configs ----------------------------------------------------------------------------

static char train_tok[300], other_tok[300], train_arg[320];

static void make_tokens(const char *path, long n, uint64_t seed) {
    int *ids = malloc(sizeof(int) * (size_t)n);
    tern_rng r;
    tern_rng_seed(&r, seed);
    ids[0] = 1;
    for (long i = 1; i < n; i++) ids[i] = (i % 8 == 0) ? (int)(tern_rng_u64(&r) % 61) : (5 * ids[i - 1] + 3) % 61;
    assert_int_equal(tern_tokfile_write(path, ids, (size_t)n, 61, 0, 0), 0);
    free(ids);
}

// the run every fault test uses: a tiny model that checkpoints every step, one thread
#define RUN_KEYS "dim=32", "n_layers=1", "n_heads=2", "n_kv_heads=1", "ffn_dim=32", "vocab_size=61", "seq_len=16", \
                 "batch=2", "warmup=0", "lr=1e-2", "eval_interval=0", "ckpt_interval=1", "ckpt_keep=2",     \
                 "log_interval=1", "threads=1", train_arg

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/tern_test_faults_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    in_dir(train_tok, sizeof train_tok, "train.tok");
    in_dir(other_tok, sizeof other_tok, "other.tok");
    make_tokens(train_tok, 6000, 3);
    make_tokens(other_tok, 5000, 4);
    snprintf(train_arg, sizeof train_arg, "train_data=%s", train_tok);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s/full", dir);
    umount2(cmd, MNT_DETACH);   // in case the disk-full test failed half-way
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int count_rows(const char *csv) {
    FILE *f = fopen(csv, "r");
    int lines = 0, ch;
    if (!f) return 0;
    while ((ch = fgetc(f)) != EOF) lines += ch == '\n';
    fclose(f);
    return lines > 0 ? lines - 1 : 0;
}

// loads a checkpoint of the RUN_KEYS model completely (weights, m, v, state)
static int load_all(const char *path, tern_model *m, tern_train_state *s) {
    tern_model_config mc;
    if (tern_checkpoint_read_config(path, &mc) != 0) return -1;
    tern_model_build(m, &mc);
    int rc = tern_checkpoint_load(path, &mc, &m->params, s);
    if (rc != 1) { tern_model_free(m); return -1; }
    return 0;
}

static int count_tmp_files(const char *d) {
    DIR *dd = opendir(d);
    int n = 0;
    struct dirent *e;
    while (dd && (e = readdir(dd)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (dd) closedir(dd);
    return n;
}

// ---- kill -9 -------------------------------------------------------------------------------------

static char ref_dir[300];

// 24 SIGKILLs at random moments (half right after progress, half at any time: start-up, resume,
// the middle of a checkpoint write); after each, latest.h5 is absent (no checkpoint yet) or loads
// completely; then the run finishes and equals the uninterrupted one bit for bit.
static void test_kill9(void **st) {
    (void)st;
    char train[600], out[320], csv[400], latest[400], outf[300], errf[300];
    prog(train, sizeof train, "train");
    in_dir(ref_dir, sizeof ref_dir, "ref");
    snprintf(out, sizeof out, "out_dir=%s", ref_dir);
    run_t *r = malloc(sizeof *r);
    double t0 = tern_time();
    run(r, 300, NULL, ARGV(train, RUN_KEYS, "steps=400", out), NULL);
    if (r->status != 0) fail_msg("reference run: exit %d: %s", r->status, r->err);
    double ref_secs = r->secs;
    char kdir[300];
    in_dir(kdir, sizeof kdir, "killed");
    snprintf(out, sizeof out, "out_dir=%s", kdir);
    snprintf(csv, sizeof csv, "%s/train.csv", kdir);
    snprintf(latest, sizeof latest, "%s/latest.h5", kdir);
    in_dir(outf, sizeof outf, "k.out");
    in_dir(errf, sizeof errf, "k.err");
    tern_rng rng;
    tern_rng_seed(&rng, 20261128);
    int kills = 0, opened = 0, launches = 0;
    while (kills < 24) {
        int rows = count_rows(csv);
        pid_t pid = spawn(ARGV(train, RUN_KEYS, "steps=400", out), NULL, outf, errf, NULL);
        launches++;
        if (kills % 2 == 0) {   // after some progress, then a little more
            double tw = tern_time();
            while (count_rows(csv) <= rows && tern_time() - tw < 120 && waitpid(pid, NULL, WNOHANG) == 0) usleep(1000);
            usleep((useconds_t)(tern_rng_u64(&rng) % 30000));
        } else {
            usleep((useconds_t)(tern_rng_u64(&rng) % (useconds_t)(1e6 * ref_secs / 20 + 1)));   // 12 of these: well under 400 steps on a loaded machine
        }
        int st2;
        if (waitpid(pid, &st2, WNOHANG) == pid) {   // finished before the kill: the run is complete
            slurp(errf, r->err, sizeof r->err);
            fail_msg("the run ended (exit %d) before 24 kills (%d so far): %s", WIFEXITED(st2) ? WEXITSTATUS(st2) : -1, kills, r->err);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kills++;
        struct stat sb;
        if (lstat(latest, &sb) == 0) {   // it exists: it must open, every dataset of it
            tern_model m;
            tern_train_state s;
            if (load_all(latest, &m, &s) != 0) fail_msg("after kill %d: %s does not load: %s", kills, latest, tern_last_error());
            tern_train_state_free(&s);
            tern_model_free(&m);
            opened++;
        }
    }
    // finish (removing the temporary files the kills left)
    run(r, 300, NULL, ARGV(train, RUN_KEYS, "steps=400", out), NULL);
    if (r->status != 0) fail_msg("final run: exit %d: %s", r->status, r->err);
    printf("  kill -9: %d kills over %d launches, latest.h5 opened after %d of them, %.1f s\n", kills, launches, opened,
           tern_time() - t0);
    assert_true(kills >= 20);
    assert_int_equal(count_tmp_files(kdir), 0);
    // bit for bit: weights, AdamW moments, counters, data position, RNG
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/latest.h5", ref_dir);
    snprintf(b, sizeof b, "%s/latest.h5", kdir);
    tern_model ma, mb;
    tern_train_state sa, sb2;
    assert_int_equal(load_all(a, &ma, &sa), 0);
    assert_int_equal(load_all(b, &mb, &sb2), 0);
    size_t bytes = sizeof(float) * (size_t)ma.params.total;
    assert_int_equal(sa.step, 400);
    assert_int_equal(sb2.step, 400);
    assert_memory_equal(ma.params.data, mb.params.data, bytes);
    assert_memory_equal(ma.params.m, mb.params.m, bytes);
    assert_memory_equal(ma.params.v, mb.params.v, bytes);
    assert_int_equal(sa.tokens_seen, sb2.tokens_seen);
    assert_int_equal(sa.loader_pos, sb2.loader_pos);
    assert_int_equal(sa.loader_epoch, sb2.loader_epoch);
    assert_true(sa.rng_state == sb2.rng_state);
    // the log holds each step once, with the same losses
    snprintf(a, sizeof a, "%s/train.csv", ref_dir);
    char *ca = tern_read_file(a, NULL), *cb = tern_read_file(csv, NULL);
    assert_non_null(ca);
    assert_non_null(cb);
    assert_int_equal(count_rows(a), 400);
    assert_int_equal(count_rows(csv), 400);
    char *pa = ca, *pb = cb;
    for (int row = 0; row <= 400; row++) {   // columns step,tokens,loss,lr,grad_norm (tokens_per_s differs)
        char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
        assert_non_null(ea);
        assert_non_null(eb);
        char *ka = pa, *kb = pb;
        for (int c = 0; c < 5; c++) { ka = strchr(ka, ',') + 1; kb = strchr(kb, ',') + 1; }
        if (ka - pa != kb - pb || memcmp(pa, pb, (size_t)(ka - pa))) fail_msg("train.csv row %d differs: %.60s / %.60s", row, pa, pb);
        pa = ea + 1;
        pb = eb + 1;
    }
    free(ca);
    free(cb);
    tern_train_state_free(&sa);
    tern_train_state_free(&sb2);
    tern_model_free(&ma);
    tern_model_free(&mb);
    free(r);
}

// ---- full disk -----------------------------------------------------------------------------------

// Runs 2 steps, then resumes to 6 with too little room for the third checkpoint: one clear error,
// exit 1, latest.h5 still the step-2 checkpoint, intact, and no temporary file left.
static void disk_full_case(const char *d, const spawn_opts *o, const char *needle) {
    char train[600], out[320], latest[400];
    prog(train, sizeof train, "train");
    snprintf(out, sizeof out, "out_dir=%s", d);
    snprintf(latest, sizeof latest, "%s/latest.h5", d);
    run_t *r = malloc(sizeof *r);
    run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=2", out), NULL);
    if (r->status != 0) fail_msg("first 2 steps: %s", r->err);
    run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=6", out), o);
    expect_one_error(r, "disk full", needle, NULL);
    assert_int_equal(r->status, 1);
    tern_model m;
    tern_train_state s;
    if (load_all(latest, &m, &s) != 0) fail_msg("latest.h5 after the full disk: %s", tern_last_error());
    assert_int_equal(s.step, 2);
    tern_train_state_free(&s);
    tern_model_free(&m);
    assert_int_equal(count_tmp_files(d), 0);
    free(r);
}

static void test_disk_full(void **st) {
    (void)st;
    char ref[400];
    snprintf(ref, sizeof ref, "%s/ckpt_00000400.h5", ref_dir);
    struct stat sb;
    assert_int_equal(stat(ref, &sb), 0);
    long ck = (long)sb.st_size;
    // without root: a file-size limit (EFBIG) half a checkpoint large
    char d[300];
    in_dir(d, sizeof d, "fsize");
    spawn_opts o = {1, ck / 2};
    disk_full_case(d, &o, "writing");
    // as root: a real full disk, a tmpfs with room for two checkpoints and the log, not three
    in_dir(d, sizeof d, "full");
    mkdir(d, 0700);
    char opts[64];
    snprintf(opts, sizeof opts, "size=%ldk", (2 * ck + ck / 2) / 1024 + 24);
    if (geteuid() != 0 || mount("tmpfs", d, "tmpfs", 0, opts) != 0) {
        printf("\n  *** SKIPPED: the full-disk test on a tmpfs needs root (mount -t tmpfs): %s ***\n"
               "  *** (the file-size-limit variant above did run)                          ***\n\n",
               geteuid() != 0 ? "not root" : strerror(errno));
        return;
    }
    disk_full_case(d, NULL, "disk full");
    char train[600], out[320];
    prog(train, sizeof train, "train");
    printf("  disk full: tmpfs of %s, checkpoints of %ld bytes: refused cleanly at the third\n", opts, ck);
    assert_int_equal(umount2(d, MNT_DETACH), 0);
    (void)out;
}

// ---- one run per directory, signals, stale temporary files ------------------------------------

static void test_lock_and_signals(void **st) {
    (void)st;
    char train[600], out[320], csv[400], d[300], outf[300], errf[300], stale1[400], stale2[400];
    prog(train, sizeof train, "train");
    in_dir(d, sizeof d, "locked");
    mkdir(d, 0700);
    snprintf(out, sizeof out, "out_dir=%s", d);
    snprintf(csv, sizeof csv, "%s/train.csv", d);
    snprintf(stale1, sizeof stale1, "%s/ckpt_00000007.h5.tmp.424242", d);
    snprintf(stale2, sizeof stale2, "%s/latest.h5.tmp.99", d);
    FILE *f = fopen(stale1, "w");
    fputs("half a checkpoint", f);
    fclose(f);
    assert_int_equal(symlink("ckpt_00000001.h5", stale2), 0);
    // files that only look like temporary files are the user's: kept
    char keep[3][400];
    const char *keep_names[3] = {"latest.h5.tmp.keep", "notes.tmp.1", "ckpt_7.h5.tmp.5"};
    for (int i = 0; i < 3; i++) {
        snprintf(keep[i], sizeof keep[i], "%s/%s", d, keep_names[i]);
        f = fopen(keep[i], "w");
        fputs("mine", f);
        fclose(f);
    }
    in_dir(outf, sizeof outf, "a.out");
    in_dir(errf, sizeof errf, "a.err");
    const char *sigs[2] = {"SIGINT", "SIGTERM"};
    for (int k = 0; k < 2; k++) {
        int rows = count_rows(csv);
        pid_t a = spawn(ARGV(train, RUN_KEYS, "steps=1000000", "ckpt_interval=0", out), NULL, outf, errf, NULL);
        double tw = tern_time();
        while (count_rows(csv) < rows + 2 && tern_time() - tw < 120) usleep(2000);
        if (k == 0) {   // the first start removed the stale temporary files, and said so
            assert_int_equal(access(stale1, F_OK), -1);
            struct stat sb;
            assert_int_equal(lstat(stale2, &sb), -1);
            char err[4096];
            slurp(errf, err, sizeof err);
            assert_non_null(strstr(err, "removed"));
            for (int i = 0; i < 3; i++) assert_int_equal(access(keep[i], F_OK), 0);
        }
        // a second run on the same out_dir fails at once, naming the first one's pid
        run_t *r = malloc(sizeof *r);
        run(r, 60, NULL, ARGV(train, RUN_KEYS, "steps=10", out), NULL);
        char pid[32];
        snprintf(pid, sizeof pid, "pid %ld", (long)a);
        expect_one_error(r, "second run", "another run is using this directory", pid);
        assert_true(r->secs < 30);
        // the signal: a checkpoint at the step reached, exit 128 + signal
        kill(a, k == 0 ? SIGINT : SIGTERM);
        int status = wait_status(a, 120, NULL);
        assert_int_equal(status, k == 0 ? 130 : 143);
        char latest[400];
        snprintf(latest, sizeof latest, "%s/latest.h5", d);
        tern_train_state s;
        assert_int_equal(tern_checkpoint_read_state(latest, &s), 1);
        printf("  %s: exit %d, checkpoint at step %ld\n", sigs[k], status, s.step);
        assert_true(s.step >= 2);
        tern_train_state_free(&s);
        free(r);
    }
    // a stop request inside one long step (grad_accum at its limit: 2^20 micro-batches of 128
    // tokens, ~0.6 ms of CPU each, minutes even on a fast machine) ends the run within a
    // micro-batch; no step was completed, so no checkpoint is written
    char d2[300], out2[320], latest2[400], o2[4096];
    in_dir(d2, sizeof d2, "longstep");
    snprintf(out2, sizeof out2, "out_dir=%s", d2);
    snprintf(latest2, sizeof latest2, "%s/latest.h5", d2);
    pid_t a = spawn(ARGV(train, RUN_KEYS, "steps=2", "batch=8", "grad_accum=1048576", out2), NULL, outf, errf, NULL);
    double tw = tern_time();
    do {   // the start-up is done when the trainer prints its compute line (flushed)
        usleep(20000);
        slurp(outf, o2, sizeof o2);
    } while (!strstr(o2, "# compute:") && tern_time() - tw < 120);
    assert_non_null(strstr(o2, "# compute:"));
    usleep(300000);   // into the step's micro-batches
    kill(a, SIGINT);
    double secs = 0;
    int status = wait_status(a, 60, &secs);
    slurp(outf, o2, sizeof o2);
    printf("  SIGINT inside a step of 1048576 micro-batches: exit %d after %.2f s\n", status, secs);
    assert_int_equal(status, 130);
    assert_true(secs < 10);
    assert_non_null(strstr(o2, "stopped by signal 2 at step 0"));
    assert_int_equal(access(latest2, F_OK), -1);
}

// ---- resume: the same run, or an error naming what changed -------------------------------------

static void test_resume_checks(void **st) {
    (void)st;
    char train[600], out[320], d[300], latest[400];
    prog(train, sizeof train, "train");
    in_dir(d, sizeof d, "resume");
    snprintf(out, sizeof out, "out_dir=%s", d);
    run_t *r = malloc(sizeof *r);
    run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=4", out), NULL);
    assert_int_equal(r->status, 0);
    char other[320];
    snprintf(other, sizeof other, "train_data=%s", other_tok);
    struct { const char *kv, *n1, *n2; } bad[] = {
        {"batch=4", "cannot resume: batch 2 -> 4", NULL},
        {"seed=7", "cannot resume: seed 1337 -> 7", NULL},
        {"schedule=cosine", "cannot resume: schedule two_stage -> cosine", NULL},
        {"seq_len=8", "cannot resume: seq_len 16 -> 8", NULL},
        {"lr=2e-2", "cannot resume: lr", NULL},
        {"grad_accum=2", "cannot resume: grad_accum 1 -> 2", NULL},
        {"rope_theta=500000", "cannot resume: the checkpoint's model differs from the config (rope_theta 10000 vs 500000)", NULL},
        {"norm_eps=1e-6", "cannot resume: the checkpoint's model differs from the config (norm_eps", NULL},
        {other, "cannot resume: train_data", "has 5000 tokens"},
        {"steps=3", "steps 3 is lower than the checkpoint's step 4", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=6", out, (char *)bad[i].kv), NULL);
        expect_one_error(r, bad[i].kv, bad[i].n1, bad[i].n2);
    }
    // safe changes: allowed and said
    run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=6", "eval_interval=3", "ckpt_keep=3", "log_interval=2", out), NULL);
    if (r->status != 0) fail_msg("safe resume: %s", r->err);
    assert_non_null(strstr(r->err, "resume: steps 4 -> 6"));
    assert_non_null(strstr(r->err, "resume: ckpt_keep 2 -> 3"));
    // the same token file under another path is the same run
    char copy[300], copy_arg[320], cmd[700];
    in_dir(copy, sizeof copy, "moved.tok");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", train_tok, copy);
    assert_int_equal(system(cmd), 0);
    snprintf(copy_arg, sizeof copy_arg, "train_data=%s", copy);
    run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=7", out, copy_arg), NULL);
    if (r->status != 0) fail_msg("moved data: %s", r->err);
    assert_non_null(strstr(r->err, "resume: train_data"));
    // a latest.h5 whose checkpoint is gone is an error, not a fresh start
    snprintf(latest, sizeof latest, "%s/ckpt_00000007.h5", d);
    assert_int_equal(unlink(latest), 0);
    run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=8", out), NULL);
    expect_one_error(r, "dangling latest.h5", "cannot resume: it points to ckpt_00000007.h5, which does not exist", NULL);
    // --fresh starts over
    run(r, 120, NULL, ARGV(train, RUN_KEYS, "steps=2", out, "--fresh"), NULL);
    if (r->status != 0) fail_msg("--fresh: %s", r->err);
    free(r);
}

// ---- the reproducers of tests/fixtures/repro/ ----------------------------------------------------

static void test_repro(void **st) {
    (void)st;
    char work[300], cmd[8192], p[400];
    in_dir(work, sizeof work, "repro");
    mkdir(work, 0700);
    // the configs name small.tok and tok.tkz: a vocab-512 tokenizer and its tokens
    size_t n;
    char *text = tern_read_file("data/tinyshakespeare/input.txt", &n);
    assert_non_null(text);
    n = 60000;
    tern_tokenizer tok;
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = 512;
    assert_int_equal(tern_tokenizer_train(&tok, (const char *const[]){text}, &n, 1, &o), 0);
    snprintf(p, sizeof p, "%s/tok.tkz", work);
    assert_int_equal(tern_tokenizer_save(&tok, p), 0);
    int *ids, k;
    assert_int_equal(tern_tokenizer_encode(&tok, text, n, 1, &ids, &k), 0);
    snprintf(p, sizeof p, "%s/small.tok", work);
    assert_int_equal(tern_tokfile_write(p, ids, (size_t)k, tok.vocab_size, 0, tok.hash), 0);
    free(ids);
    free(text);
    tern_tokenizer_free(&tok);
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    char train[600], finetune[600], info[600];
    prog(train, sizeof train, "train");
    prog(finetune, sizeof finetune, "finetune");
    prog(info, sizeof info, "ckpt_info");
    run_t *r = malloc(sizeof *r);
    DIR *dd = opendir("tests/fixtures/repro");
    assert_non_null(dd);
    struct dirent *e;
    int nfiles = 0;
    while ((e = readdir(dd))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || (strcmp(e->d_name + l - 3, ".h5") && strcmp(e->d_name + l - 4, ".cfg"))) continue;
        char f[1400];
        snprintf(f, sizeof f, "%s/tests/fixtures/repro/%s", cwd, e->d_name);
        nfiles++;
        if (!strcmp(e->d_name + l - 4, ".cfg")) {   // tern-train FILE: refused before any large allocation
            run(r, 60, work, ARGV(train, f), NULL);
            expect_one_error(r, e->d_name, f, NULL);
            printf("  %-34s tern-train: %.1f s: %s", e->d_name, r->secs, strrchr(r->err, '\n') == r->err + strlen(r->err) - 1 ? r->err : "\n");
            continue;
        }
        // every checkpoint reader: info, info --config, info --check (all datasets)
        run(r, 60, work, ARGV(info, f, "--check"), NULL);
        expect_one_error(r, e->d_name, f, NULL);
        run(r, 60, work, ARGV(info, f, "--config"), NULL);
        if (r->status != 0) expect_one_error(r, e->d_name, f, NULL);
        // fine-tuning from it
        char od[400];
        snprintf(od, sizeof od, "out_dir=%s/ft", work);
        run(r, 60, work, ARGV(finetune, "--from", f, "train_data=small.tok", "val_data=small.tok", "steps=2", od), NULL);
        expect_one_error(r, e->d_name, f, NULL);
        // resuming from it as out_dir/latest.h5 (its own run config, the data here)
        snprintf(cmd, sizeof cmd, "rm -rf '%s/res' && mkdir '%s/res' && cp '%s' '%s/res/ckpt_00000004.h5' && ln -s ckpt_00000004.h5 '%s/res/latest.h5'",
                 work, work, f, work, work);
        assert_int_equal(system(cmd), 0);
        char latest[400];
        snprintf(latest, sizeof latest, "%s/res/latest.h5", work);
        run(r, 60, work, ARGV(train, "dim=32", "n_layers=1", "n_heads=2", "n_kv_heads=1", "ffn_dim=32", "vocab_size=512",
                              "seq_len=16", "batch=2", "steps=8", "warmup=1", "eval_interval=0", "ckpt_interval=4",
                              "ckpt_keep=2", "log_interval=5", "train_data=small.tok", "out_dir=res"), NULL);
        expect_one_error(r, e->d_name, "res/latest.h5", NULL);
        printf("  %-34s resume: %.1f s: %s", e->d_name, r->secs, r->err);
    }
    closedir(dd);
    assert_int_equal(nfiles, 8);
    free(r);
}

// ---- program surface -----------------------------------------------------------------------------

static void test_programs(void **st) {
    (void)st;
    run_t *r = malloc(sizeof *r);
    // every program answers --help with its usage and exit 0
    DIR *dd = opendir(bindir);
    assert_non_null(dd);
    struct dirent *e;
    int nprog = 0;
    while ((e = readdir(dd))) {
        if (strncmp(e->d_name, "tern-", 5) || strchr(e->d_name, '.')) continue;
        char p[800];
        snprintf(p, sizeof p, "%s%s", bindir, e->d_name);
        run(r, 30, NULL, ARGV(p, "--help"), NULL);
        if (r->status != 0 || !strstr(r->out, "usage")) fail_msg("%s --help: exit %d, stdout '%.200s'", e->d_name, r->status, r->out);
        nprog++;
    }
    closedir(dd);
    printf("  --help: %d programs, all exit 0 with their usage\n", nprog);
    assert_true(nprog >= 12);
    char gen[600], ppl[600], ev[600], ex[600], tk[600], bench[600];
    prog(gen, sizeof gen, "generate");
    prog(ppl, sizeof ppl, "perplexity");
    prog(ev, sizeof ev, "eval");
    prog(ex, sizeof ex, "export");
    prog(tk, sizeof tk, "tokenizer");
    prog(bench, sizeof bench, "bench");
    // out-of-range flags are errors, before any file is read
    struct { char **argv; const char *needle; } bad[] = {
        {ARGV(gen, "-m", "x.gguf", "-p", "hi", "--top-p", "5"), "--top-p 5: must be in (0, 1]"},
        {ARGV(gen, "-m", "x.gguf", "-p", "hi", "--temp", "1000"), "--temp"},
        {ARGV(gen, "-m", "x.gguf", "-p", "hi", "-b", "0"), "-b 0"},
        {ARGV(ppl, "-m", "x.gguf", "-f", "t.txt", "-c", "0"), "-c 0: must be at least 1"},
        {ARGV(ppl, "-m", "x.gguf", "-f", "t.txt", "--max-tokens", "1"), "--max-tokens 1"},
        {ARGV(ev, "x.h5", "--data", "d.tok", "--batch", "0"), "--batch '0'"},
        {ARGV(bench, "--random", "small", "-r", "0"), "out of range"},
        {ARGV(tk, "train", "-v", "7", "-o", "t.tkz", "a.txt"), "vocab size 7 out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run(r, 30, NULL, bad[i].argv, NULL);
        expect_one_error(r, bad[i].argv[1], bad[i].needle, NULL);
    }
    // the benchmark runs clean (under SANITIZE=1: UBSan found a signed overflow in its VNNI sums)
    run(r, 300, NULL, ARGV(bench, "--random", "dim=256,ffn=256,layers=1,heads=2,kv_heads=1,vocab=300,ctx=32", "-p", "8", "-n", "4", "-r", "1"), NULL);
    if (r->status != 0 || strstr(r->err, "runtime error") || strstr(r->err, "Sanitizer")) fail_msg("tern-bench: exit %d: %s", r->status, r->err);
    run(r, 300, NULL, ARGV(bench, "--bandwidth", "16"), NULL);
    if (r->status != 0 || strstr(r->err, "runtime error") || !strstr(r->out, "GB/s")) fail_msg("tern-bench --bandwidth: exit %d: %s", r->status, r->err);
    // a FIFO as input: refused at once, never waited on
    char fifo[300], adir[300];
    in_dir(fifo, sizeof fifo, "a.fifo");
    in_dir(adir, sizeof adir, "adir");
    mkfifo(fifo, 0600);
    mkdir(adir, 0700);
    run(r, 20, NULL, ARGV(tk, "info", fifo), NULL);
    expect_one_error(r, "info FIFO", "not a regular file (FIFO)", NULL);
    run(r, 20, NULL, ARGV(tk, "info", adir), NULL);
    expect_one_error(r, "info dir", "is a directory", NULL);
    // a checkpoint holding NaN: tern-eval and tern-export refuse it
    tern_model_config mc;
    tern_model_config_defaults(&mc);
    mc.dim = 256; mc.n_layers = 1; mc.n_heads = 2; mc.n_kv_heads = 1; mc.ffn_dim = 256; mc.vocab_size = 61; mc.seq_len = 16;
    tern_model m;
    tern_model_build(&m, &mc);
    tern_model_init_weights(&m, 1);
    m.layers[0].ffn_up->data[77] = NAN;
    char nanck[300], gguf[300];
    in_dir(nanck, sizeof nanck, "nan.h5");
    in_dir(gguf, sizeof gguf, "nan.gguf");
    assert_int_equal(tern_checkpoint_save(nanck, &mc, &m.params, NULL, 0, NULL), 0);
    run(r, 60, NULL, ARGV(ev, nanck, "--data", train_tok), NULL);
    expect_one_error(r, "eval NaN", "blk.0.ffn_up.weight holds NaN or Inf", nanck);
    run(r, 60, NULL, ARGV(ex, nanck, "-o", gguf, "--no-tokenizer"), NULL);
    expect_one_error(r, "export NaN", "holds NaN or Inf", nanck);
    assert_int_equal(access(gguf, F_OK), -1);
    // -o onto a device, FIFO or directory: refused, the device untouched
    m.layers[0].ffn_up->data[77] = 0.5f;
    assert_int_equal(tern_checkpoint_save(nanck, &mc, &m.params, NULL, 0, NULL), 0);
    const char *outs[3] = {"/dev/null", fifo, adir};
    for (int i = 0; i < 3; i++) {
        run(r, 60, NULL, ARGV(ex, nanck, "-o", (char *)outs[i], "--no-tokenizer"), NULL);
        expect_one_error(r, outs[i], outs[i], i == 2 ? "is a directory" : "refusing to replace it");
    }
    struct stat sb;
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    run(r, 60, NULL, ARGV(ex, nanck, "-o", gguf, "--no-tokenizer"), NULL);   // and a file works
    if (r->status != 0) fail_msg("export: %s", r->err);
    // the runtime programs on it (clean under the sanitizers too), and on a copy whose
    // bitnet.vocab_size disagrees with token_embd.weight
    char txt[300], badgg[300];
    in_dir(txt, sizeof txt, "some.txt");
    in_dir(badgg, sizeof badgg, "badvocab.gguf");
    FILE *tf = fopen(txt, "w");
    fputs("abcabcabcabc", tf);
    fclose(tf);
    run(r, 120, NULL, ARGV(gen, "-m", gguf, "-p", "x", "-n", "3"), NULL);
    expect_one_error(r, "generate without vocab", "no tokenizer", NULL);   // exported --no-tokenizer
    size_t gn;
    char *gb = tern_read_file(gguf, &gn);
    assert_non_null(gb);
    char *kv = memmem(gb, gn, "bitnet.vocab_size", 17);
    assert_non_null(kv);
    uint32_t vt, vv;
    memcpy(&vt, kv + 17, 4);
    memcpy(&vv, kv + 21, 4);
    assert_int_equal(vt, 4);   // uint32
    assert_int_equal(vv, 61);
    vv = 62;
    memcpy(kv + 21, &vv, 4);
    FILE *bf = fopen(badgg, "wb");
    assert_int_equal(fwrite(gb, 1, gn, bf), gn);
    fclose(bf);
    free(gb);
    run(r, 60, NULL, ARGV(ppl, "-m", badgg, "-f", txt), NULL);
    expect_one_error(r, "bad vocab_size", "bitnet.vocab_size 62 does not match token_embd.weight's 61 rows", badgg);
    tern_model_free(&m);
    free(r);
}

int main(int argc, char **argv) {
    (void)argc;   // the programs sit beside tests/: build/tests/test_faults -> build/tern-*
    snprintf(bindir, sizeof bindir, "%s", argv[0]);
    char *slash = strrchr(bindir, '/');
    if (slash) *slash = 0;
    slash = strrchr(bindir, '/');
    if (slash) *slash = 0;
    else snprintf(bindir, sizeof bindir, ".");
    char abs[PATH_MAX];   // absolute: some programs run in another directory
    if (!realpath(bindir, abs) || strlen(abs) + 2 > sizeof bindir) return 1;
    snprintf(bindir, sizeof bindir, "%.*s/", (int)(sizeof bindir - 2), abs);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9),          cmocka_unit_test(test_disk_full), cmocka_unit_test(test_lock_and_signals),
        cmocka_unit_test(test_resume_checks),  cmocka_unit_test(test_repro),     cmocka_unit_test(test_programs),
    };
    return cmocka_run_group_tests_name("faults", tests, setup, teardown);
}
