// dist.h — the MPI world of a data-parallel run (Open MPI; users' guide: docs/DISTRIBUTED.md).
//
// One process per rank, each with its own OpenMP threads. MPI is initialised with
// MPI_THREAD_MULTIPLE: the main thread and the gradient communication thread of ddp.h call it;
// OpenMP workers never do. (Without MPI_THREAD_MULTIPLE, or with TERN_MPI_PROGRESS=inline, there is
// no communication thread and the main thread alone calls MPI.)
//
// Start-up. tern_dist_init() initialises MPI only when an MPI launcher started the process
// (mpirun / mpiexec / srun put OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_SIZE in its environment) or
// TERN_MPI=1 asks for it (an Open MPI singleton: a world of one, through MPI). Otherwise the
// process is a world of one without MPI: no MPI function is ever called, so a plain `tern-train`
// behaves exactly as a program without MPI and needs no working MPI runtime. TERN_MPI=0 forbids MPI
// even under a launcher. Every function below works in a world of one, where the collectives are
// copies or no-ops.
//
// Waiting. Each collective here is non-blocking underneath and completed by a polling loop that
//   * on rank 0 watches the fault channel: a rank that goes down through tern_fatal (out of
//     memory, ...) first sends its message to rank 0, which prints "rank K (host, pid P) failed: ..."
//     and the note set by tern_dist_set_note (the last checkpoint), then ends the job with
//     MPI_Abort instead of waiting for a rank that will never come;
//   * once a stop signal has arrived (tern_dist_watch_stop), checks whether a rank on this node has
//     died (mpirun answers a killed rank by signalling the others) and, on rank 0, names it before
//     ending the job;
//   * sleeps a few microseconds between polls after the first millisecond, so ranks that share cores
//     let each other run.
// MPI errors do not abort inside MPI (MPI_ERRORS_RETURN): they become one tern_fatal line naming
// the call.
//
// Errors. tern_dist_agree(rc) is the agreement point after work that can fail on some ranks only
// (opening a file that one node lacks, rank 0's checkpoint write): it returns -1 on every rank if
// any rank passed -1, and tern_last_error() is then the first failing rank's message, prefixed
// "rank K (host): " when K is not this rank. Only rank 0 prints; the others exit quietly.
#ifndef TERN_DIST_H
#define TERN_DIST_H
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

// 0, or -1 with tern_error (MPI would not start). Safe to call more than once.
int tern_dist_init(void);
// MPI_Finalize when MPI was initialised (call on every rank before a normal exit).
void tern_dist_finalize(void);
int tern_dist_rank(void);
int tern_dist_size(void);
int tern_dist_mpi(void);          // 1 when MPI is initialised (even for a world of one)
int tern_dist_local_size(void);   // ranks on this node (1 without MPI)
const char *tern_dist_host(void); // this node's name
// OpenMP threads a rank uses when neither threads= nor OMP_NUM_THREADS says: the CPUs it may run on
// (affinity mask) when the launcher bound it to fewer than the node's CPUs, else the node's CPUs
// divided among the ranks on the node; at least 1.
int tern_dist_default_threads(void);
int tern_dist_affinity_cpus(void);
// Under MPI: 1 and a one-line warning in buf when this rank was bound to fewer CPUs than its threads
// or than its share of the node (Open MPI binds each rank to one core by default for 2 ranks or fewer).
int tern_dist_binding_warning(int threads, char *buf, size_t n);

// The flag the program's SIGINT/SIGTERM handlers set (signal number); waits consult it.
void tern_dist_watch_stop(volatile sig_atomic_t *flag);
// Under MPI with more than one rank: Open MPI's mpirun answers Ctrl-C (or a rank's death) by sending
// every rank SIGCONT, then SIGTERM odls_base_sigkill_timeout seconds later (default 1), then SIGKILL.
// This makes a SIGCONT that does not follow a SIGTSTP (job control) set *flag = SIGTERM, so ranks
// start stopping at the first warning. No-op in a world of one.
void tern_dist_install_mpirun_signals(volatile sig_atomic_t *flag);
// Text printed after a fault report, e.g. "last checkpoint: runs/x/ckpt_00000200.h5".
void tern_dist_set_note(const char *note);

// Agreement: see above. rc is 0 or -1.
int tern_dist_agree(int rc);
// 1 on every rank if any rank passed a non-zero flag, else 0.
int tern_dist_any(int flag);
// Element-wise sums (maxima) over ranks, in place, identical on every rank.
void tern_dist_sum_doubles(double *x, int n);
void tern_dist_max_doubles(double *x, int n);
// Rank 0's bytes to every rank.
void tern_dist_bcast(void *buf, size_t bytes);
void tern_dist_barrier(void);
// 0 if every rank passed the same value, else -1 on every rank with
// tern_error("<what> differ across ranks: rank K has X, rank 0 has Y").
int tern_dist_check_same_u64(uint64_t value, const char *what);
// 64-bit hash of a byte buffer (word-wise multiply-xorshift; for comparing ranks' weights).
uint64_t tern_dist_hash(const void *data, size_t n);

// Fault injection for the tests (tests/test_dist.c): TERN_DIST_FAULT=RANK:STEP:KIND makes rank RANK,
// when it starts step STEP, go down like a real fault: KIND = fatal (tern_fatal "out of memory",
// the path of a failed allocation) or kill (SIGKILL, as the out-of-memory killer does).
void tern_dist_fault_point(long step);

// mute = 1 on ranks other than 0: stderr goes to /dev/null until mute = 0 (warnings that every rank
// would print the same, e.g. while validating the config, print once). No-op on rank 0.
void tern_dist_mute_stderr(int mute);

// Global batch split: sequences [*lo, *hi) of the n of a global batch belong to rank 'rank' of 'size'
// (contiguous, sizes differ by at most one, rank order).
void tern_dist_split(long n, int rank, int size, long *lo, long *hi);

#endif
