// mpi_internal.h — what the files of src/dist share beyond dist.h: the communicator, the polling
// wait and MPI error checks. Only src/dist/*.c include <mpi.h>; nothing outside src/dist sees MPI.
#ifndef TERN_DIST_MPI_INTERNAL_H
#define TERN_DIST_MPI_INTERNAL_H
#include <mpi.h>

// The training communicator (a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN). Only valid when
// tern_dist_mpi().
MPI_Comm tern_dist_comm(void);
// Complete n requests by polling (dist.h "Waiting"): faults and dead peers are noticed meanwhile.
void tern_dist_wait(MPI_Request *reqs, int n);
// One round of the watch that tern_dist_wait does between polls (for progress points elsewhere).
// Either thread may call it (one at a time: the other skips its round).
void tern_dist_poll(void);
// 1 when MPI_THREAD_MULTIPLE was granted: ddp.c then runs its communication thread.
int tern_dist_thread_multiple(void);
// A failed MPI call: one tern_fatal line naming the function and MPI's reason.
void tern_dist_mpi_failed(const char *call, int rc) __attribute__((noreturn));
#define TERN_MPI_CHECK(call)                                            \
    do {                                                                \
        int rc_ = (call);                                               \
        if (rc_ != MPI_SUCCESS) tern_dist_mpi_failed(#call, rc_);       \
    } while (0)

#endif
