// comm.c — the MPI world: start-up, polling waits, agreement, fault reports (see dist.h).
#include "dist/dist.h"
#include "dist/mpi_internal.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HOST_MAX 64
#define FAULT_MSG 1024
#define TAG_FAULT 7
#define AGREE_MSG 512

typedef struct {
    int pid, local;          // local: 1 if the rank shares this node (MPI_COMM_TYPE_SHARED)
    char host[HOST_MAX];
} peer_info;

static struct {
    int inited, mpi, rank, size, local_size;
    char host[HOST_MAX];
    peer_info *peers;        // (size,)
    MPI_Comm comm, fault_comm;
    MPI_Request fault_req;   // rank 0: the posted receive of fault reports
    char fault_buf[FAULT_MSG];
    volatile sig_atomic_t *stop;
    pthread_t main_thread;
    char note[1024];
    double last_peer_check;
    long fault_rank, fault_step;
    int fault_kind;          // 0 none, 1 fatal, 2 kill
    int thread_multiple;     // MPI_THREAD_MULTIPLE granted (and not refused by TERN_MPI_PROGRESS=inline)
    pthread_mutex_t lock;    // serialises tern_dist_poll between the main and the communication thread
} W = {.size = 1, .local_size = 1, .fault_req = MPI_REQUEST_NULL, .lock = PTHREAD_MUTEX_INITIALIZER};

static int parallel(void) { return W.mpi && W.size > 1; }

void tern_dist_mpi_failed(const char *call, int rc) {
    char s[MPI_MAX_ERROR_STRING] = "";
    int n = 0;
    MPI_Error_string(rc, s, &n);
    const char *paren = strchr(call, '(');
    tern_fatal("rank %d: %.*s failed: %s", W.rank, paren ? (int)(paren - call) : (int)strlen(call), call, s);
}

MPI_Comm tern_dist_comm(void) { return W.comm; }
int tern_dist_rank(void) { return W.rank; }
int tern_dist_size(void) { return W.size; }
int tern_dist_mpi(void) { return W.mpi; }
int tern_dist_thread_multiple(void) { return W.thread_multiple; }
int tern_dist_local_size(void) { return W.local_size; }
const char *tern_dist_host(void) { return W.host; }
void tern_dist_watch_stop(volatile sig_atomic_t *flag) { W.stop = flag; }
void tern_dist_set_note(const char *note) { snprintf(W.note, sizeof W.note, "%s", note ? note : ""); }

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

// ---- fault reports ----------------------------------------------------------------------------

static void end_job(void) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static const char *note_sep(void) { return W.note[0] ? "; " : ""; }

// tern_fatal's hook: tell rank 0 (or, on rank 0, end the job) before this process exits.
static void on_fatal(const char *msg) {
    // without MPI_THREAD_MULTIPLE only the main thread may call MPI
    if (!parallel() || (!W.thread_multiple && !pthread_equal(pthread_self(), W.main_thread))) return;
    if (W.rank == 0) {
        fprintf(stderr, "tern: rank 0 (%s, pid %d) failed: %s; stopping all %d ranks%s%s\n", W.host, (int)getpid(), msg,
                W.size, note_sep(), W.note);
        end_job();
    }
    char buf[FAULT_MSG];
    snprintf(buf, sizeof buf, "%s", msg);
    MPI_Request r = MPI_REQUEST_NULL;
    if (MPI_Isend(buf, (int)strlen(buf) + 1, MPI_CHAR, 0, TAG_FAULT, W.fault_comm, &r) == MPI_SUCCESS) {
        double t0 = tern_time();
        int done = 0;
        while (!done && tern_time() - t0 < 3.0) {
            if (MPI_Test(&r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
            if (!done) sleep_us(1000);
        }
        // rank 0 ends the job when it sees the report; if it does not within a few seconds, end it here
        if (done)
            for (int i = 0; i < 100; i++) sleep_us(100000);
    }
    end_job();
}

static void report_fault(int src) {
    W.fault_buf[FAULT_MSG - 1] = 0;
    const peer_info *pi = src >= 0 && src < W.size ? &W.peers[src] : NULL;
    fprintf(stderr, "tern: rank %d (%s, pid %d) failed: %s; stopping all %d ranks%s%s\n", src, pi ? pi->host : "?",
            pi ? pi->pid : 0, W.fault_buf, W.size, note_sep(), W.note);
    end_job();
}

static int pid_dead(int pid) {
    if (pid <= 0) return 0;
    if (kill(pid, 0) != 0) return errno == ESRCH;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *rp = strrchr(buf, ')'); // "pid (comm) S ..."
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

// After a stop signal: a rank on this node that has died is named (by rank 0, or by anyone about
// rank 0), and the job ends; mpirun reports ranks on other nodes itself.
static void check_peers(void) {
    double now = tern_time();
    if (now - W.last_peer_check < 0.05) return;
    W.last_peer_check = now;
    for (int k = 0; k < W.size; k++) {
        if (k == W.rank || !W.peers[k].local || !pid_dead(W.peers[k].pid)) continue;
        if (W.rank == 0 || k == 0)
            fprintf(stderr,
                    "tern: rank %d (%s, pid %d) has died: killed by a signal (the out-of-memory killer, kill -9, a "
                    "crash) or exited (its own message, if any, is above); stopping all %d ranks%s%s\n",
                    k, W.peers[k].host, W.peers[k].pid, W.size, note_sep(), W.note);
        end_job();
    }
}

void tern_dist_poll(void) {
    if (!parallel()) return;
    if (pthread_mutex_trylock(&W.lock) != 0) return; // the other thread is at it
    if (W.rank == 0 && W.fault_req != MPI_REQUEST_NULL) {
        int got = 0;
        MPI_Status st;
        TERN_MPI_CHECK(MPI_Test(&W.fault_req, &got, &st));
        if (got) report_fault(st.MPI_SOURCE);
    }
    if (W.stop && *W.stop) check_peers();
    pthread_mutex_unlock(&W.lock);
}

void tern_dist_wait(MPI_Request *reqs, int n) {
    double t0 = tern_time();
    for (;;) {
        int done = 0;
        TERN_MPI_CHECK(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE));
        if (done) return;
        tern_dist_poll();
        if (tern_time() - t0 > 1e-3) sleep_us(20);
    }
}

// ---- start-up ---------------------------------------------------------------------------------

static void parse_fault_env(void) {
    const char *f = getenv("TERN_DIST_FAULT");
    if (!f || !*f) return;
    char kind[16] = "";
    long r, s;
    if (sscanf(f, "%ld:%ld:%15s", &r, &s, kind) == 3 && (!strcmp(kind, "fatal") || !strcmp(kind, "kill"))) {
        W.fault_rank = r;
        W.fault_step = s;
        W.fault_kind = !strcmp(kind, "fatal") ? 1 : 2;
    } else {
        fprintf(stderr, "tern: ignoring TERN_DIST_FAULT='%s' (expected RANK:STEP:fatal|kill)\n", f);
    }
}

int tern_dist_init(void) {
    if (W.inited) return 0;
    W.inited = 1;
    if (gethostname(W.host, sizeof W.host) != 0) snprintf(W.host, sizeof W.host, "?");
    W.host[HOST_MAX - 1] = 0;
    parse_fault_env();
    const char *force = getenv("TERN_MPI");
    int launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
    int want = force && *force ? strcmp(force, "0") != 0 : launched;
    if (!want) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        tern_error("MPI_Init_thread failed (is the MPI runtime installed and working?)");
        return -1;
    }
    W.mpi = 1;
    const char *prog = getenv("TERN_MPI_PROGRESS");
    W.thread_multiple = provided >= MPI_THREAD_MULTIPLE && !(prog && !strcmp(prog, "inline"));
    W.main_thread = pthread_self();
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    TERN_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &W.comm));
    TERN_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &W.fault_comm));
    MPI_Comm_set_errhandler(W.comm, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(W.fault_comm, MPI_ERRORS_RETURN);
    TERN_MPI_CHECK(MPI_Comm_rank(W.comm, &W.rank));
    TERN_MPI_CHECK(MPI_Comm_size(W.comm, &W.size));
    MPI_Comm node;
    TERN_MPI_CHECK(MPI_Comm_split_type(W.comm, MPI_COMM_TYPE_SHARED, W.rank, MPI_INFO_NULL, &node));
    TERN_MPI_CHECK(MPI_Comm_size(node, &W.local_size));
    W.peers = tern_xcalloc((size_t)W.size, sizeof *W.peers);
    peer_info me = {.pid = (int)getpid()};
    memcpy(me.host, W.host, HOST_MAX);
    TERN_MPI_CHECK(MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, W.peers, (int)sizeof me, MPI_BYTE, W.comm));
    // which ranks share this node: the world ranks of the node communicator's members
    int *lr = tern_xmalloc(sizeof(int) * (size_t)W.local_size);
    TERN_MPI_CHECK(MPI_Allgather(&W.rank, 1, MPI_INT, lr, 1, MPI_INT, node));
    for (int i = 0; i < W.local_size; i++)
        if (lr[i] >= 0 && lr[i] < W.size) W.peers[lr[i]].local = 1;
    free(lr);
    MPI_Comm_free(&node);
    if (W.rank == 0 && W.size > 1)
        TERN_MPI_CHECK(MPI_Irecv(W.fault_buf, FAULT_MSG, MPI_CHAR, MPI_ANY_SOURCE, TAG_FAULT, W.fault_comm, &W.fault_req));
    tern_set_fatal_hook(on_fatal);
    return 0;
}

void tern_dist_finalize(void) {
    if (!W.mpi) return;
    if (W.fault_req != MPI_REQUEST_NULL) {
        MPI_Cancel(&W.fault_req);
        MPI_Wait(&W.fault_req, MPI_STATUS_IGNORE);
    }
    tern_set_fatal_hook(NULL);
    MPI_Comm_free(&W.fault_comm);
    MPI_Comm_free(&W.comm);
    MPI_Finalize();
    free(W.peers);
    W.peers = NULL;
    W.mpi = 0;
    W.rank = 0;
    W.size = 1;
    W.local_size = 1;
}

int tern_dist_affinity_cpus(void) {
    cpu_set_t s;
    CPU_ZERO(&s);
    if (sched_getaffinity(0, sizeof s, &s) == 0 && CPU_COUNT(&s) > 0) return CPU_COUNT(&s);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int tern_dist_default_threads(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int aff = tern_dist_affinity_cpus();
    long n = online > 0 && aff < online ? aff : (online > 0 ? online : aff) / W.local_size;
    return n < 1 ? 1 : (int)n;
}

int tern_dist_binding_warning(int threads, char *buf, size_t n) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cpus = tern_dist_affinity_cpus();
    if (!W.mpi || (threads <= cpus && (online <= 0 || cpus >= online / W.local_size))) return 0;
    snprintf(buf, n,
             "warning: this rank uses %d thread%s but may run on %d of the node's %ld CPUs (%d rank%s on the node): the "
             "MPI launcher bound it (Open MPI binds each rank to one core by default for 2 ranks or fewer); use mpirun "
             "--bind-to none, or --map-by slot:PE=%d",
             threads, threads == 1 ? "" : "s", cpus, online, W.local_size, W.local_size == 1 ? "" : "s",
             online > 0 ? (int)(online / W.local_size) : threads);
    return 1;
}

// ---- mpirun's signals ---------------------------------------------------------------------------

static volatile sig_atomic_t *cont_flag;
static volatile sig_atomic_t tstp_seen;

static void on_tstp(int sig) {
    (void)sig;
    tstp_seen = 1;
    signal(SIGTSTP, SIG_DFL);
    raise(SIGTSTP); // pending until this handler returns; then the default action stops the process
}

static void on_cont(int sig) {
    (void)sig;
    if (tstp_seen) { // resumed after a job-control stop
        tstp_seen = 0;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_tstp;
        sigaction(SIGTSTP, &sa, NULL);
    } else if (cont_flag && !*cont_flag) {
        *cont_flag = SIGTERM;
    }
}

void tern_dist_install_mpirun_signals(volatile sig_atomic_t *flag) {
    if (!parallel()) return;
    cont_flag = flag;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tstp;
    sigaction(SIGTSTP, &sa, NULL);
    sa.sa_handler = on_cont;
    sigaction(SIGCONT, &sa, NULL);
}

// ---- collectives ------------------------------------------------------------------------------

int tern_dist_any(int flag) {
    if (!parallel()) return flag != 0;
    int v = flag != 0;
    MPI_Request r;
    TERN_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, W.comm, &r));
    tern_dist_wait(&r, 1);
    return v;
}

void tern_dist_sum_doubles(double *x, int n) {
    if (!parallel() || n <= 0) return;
    MPI_Request r;
    TERN_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, W.comm, &r));
    tern_dist_wait(&r, 1);
}

void tern_dist_max_doubles(double *x, int n) {
    if (!parallel() || n <= 0) return;
    MPI_Request r;
    TERN_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_MAX, W.comm, &r));
    tern_dist_wait(&r, 1);
}

void tern_dist_bcast(void *buf, size_t bytes) {
    if (!parallel()) return;
    const size_t step = (size_t)1 << 30;
    for (size_t o = 0; o < bytes; o += step) {
        size_t n = bytes - o < step ? bytes - o : step;
        MPI_Request r;
        TERN_MPI_CHECK(MPI_Ibcast((char *)buf + o, (int)n, MPI_BYTE, 0, W.comm, &r));
        tern_dist_wait(&r, 1);
    }
}

void tern_dist_barrier(void) {
    if (!parallel()) return;
    MPI_Request r;
    TERN_MPI_CHECK(MPI_Ibarrier(W.comm, &r));
    tern_dist_wait(&r, 1);
}

int tern_dist_agree(int rc) {
    int bad = rc != 0;
    if (!parallel()) return bad ? -1 : 0;
    if (!tern_dist_any(bad)) return 0;
    char *mine = tern_xcalloc(AGREE_MSG, 1), *all = tern_xcalloc((size_t)W.size, AGREE_MSG);
    mine[0] = (char)bad;
    if (bad) snprintf(mine + 1, AGREE_MSG - 1, "%s", tern_last_error());
    MPI_Request r;
    TERN_MPI_CHECK(MPI_Iallgather(mine, AGREE_MSG, MPI_CHAR, all, AGREE_MSG, MPI_CHAR, W.comm, &r));
    tern_dist_wait(&r, 1);
    int first = -1, nbad = 0;
    for (int k = 0; k < W.size; k++)
        if (all[(size_t)k * AGREE_MSG]) {
            nbad++;
            if (first < 0) first = k;
        }
    char msg[1024];
    const char *text = all + (size_t)first * AGREE_MSG + 1;
    if (first == W.rank) snprintf(msg, sizeof msg, "%s", text);
    else snprintf(msg, sizeof msg, "rank %d (%s): %s", first, W.peers[first].host, text);
    if (nbad == W.size) tern_error("%s (on all %d ranks)", msg, W.size);
    else if (nbad > 1) tern_error("%s (%d of %d ranks failed)", msg, nbad, W.size);
    else tern_error("%s", msg);
    free(mine);
    free(all);
    return -1;
}

int tern_dist_check_same_u64(uint64_t value, const char *what) {
    if (!parallel()) return 0;
    uint64_t *all = tern_xmalloc(sizeof(uint64_t) * (size_t)W.size);
    MPI_Request r;
    TERN_MPI_CHECK(MPI_Iallgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, W.comm, &r));
    tern_dist_wait(&r, 1);
    int rc = 0;
    for (int k = 1; k < W.size && rc == 0; k++)
        if (all[k] != all[0]) {
            tern_error("%s differ across ranks: rank %d (%s) has %016llx, rank 0 has %016llx", what, k, W.peers[k].host,
                       (unsigned long long)all[k], (unsigned long long)all[0]);
            rc = -1;
        }
    free(all);
    return rc;
}

uint64_t tern_dist_hash(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

// ---- misc -----------------------------------------------------------------------------------

void tern_dist_fault_point(long step) {
    if (!W.fault_kind || W.rank != W.fault_rank || step != W.fault_step) return;
    if (W.fault_kind == 2) raise(SIGKILL);
    tern_fatal("out of memory allocating %zu bytes (fault injected by TERN_DIST_FAULT at step %ld)", (size_t)1 << 40, step);
}

void tern_dist_mute_stderr(int mute) {
    static int saved = -1;
    if (W.rank == 0) return;
    fflush(stderr);
    if (mute && saved < 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd < 0) return;
        saved = dup(2);
        dup2(fd, 2);
        close(fd);
    } else if (!mute && saved >= 0) {
        dup2(saved, 2);
        close(saved);
        saved = -1;
    }
}

void tern_dist_split(long n, int rank, int size, long *lo, long *hi) {
    *lo = n * rank / size;
    *hi = n * (rank + 1) / size;
}
