// ddp.c — bucketed gradient reduction overlapping the backward, deterministic micro-batch
// accumulation, ZeRO-1 sharded AdamW (see ddp.h).
#include "dist/ddp.h"
#include "dist/dist.h"
#include "dist/mpi_internal.h"
#include "util.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

static MPI_Request *reqs(tern_ddp *d) { return (MPI_Request *)d->reqs; }
static void thread_start(tern_ddp *d);
static void thread_stop(tern_ddp *d);
static int parallel(const tern_ddp *d) { return d->size > 1 && tern_dist_mpi(); }

// smallest grad-norm chunk start (optim.h: chunks of TERN_NORM_CHUNK elements from each tensor's
// offset) at or after x, or p->total
static long chunk_start_from(const tern_params *p, long x) {
    long best = p->total;
    for (int i = 0; i < p->n; i++) {
        const tern_tensor *t = p->t[i];
        long k = t->offset >= x ? 0 : (x - t->offset + TERN_NORM_CHUNK - 1) / TERN_NORM_CHUNK;
        long s = t->offset + k * TERN_NORM_CHUNK;
        if (s < t->offset + t->n && s < best) best = s;
    }
    return best;
}

static long tensor_end(const tern_params *p, int i) { return i + 1 < p->n ? p->t[i + 1]->offset : p->total; }

void tern_ddp_init(tern_ddp *d, tern_params *p, tern_adamw *o, int zero, float bucket_mb, int overlap) {
    memset(d, 0, sizeof *d);
    d->p = p;
    d->opt = o;
    d->rank = tern_dist_rank();
    d->size = tern_dist_size();
    d->zero = zero;
    d->overlap = overlap;
    if (p->total > INT_MAX)
        tern_fatal("data-parallel training: %ld parameters exceed the %d elements one MPI call can move", p->total, INT_MAX);
    // ZeRO-1 slices: balanced, on chunk starts
    d->shard = tern_xmalloc(sizeof(long) * (size_t)(d->size + 1));
    d->shard[0] = 0;
    for (int r = 1; r < d->size; r++) {
        long s = chunk_start_from(p, (long)((double)p->total * r / d->size));
        d->shard[r] = s > d->shard[r - 1] ? s : d->shard[r - 1];
    }
    d->shard[d->size] = p->total;
    d->shard_lo = d->shard[d->rank];
    d->shard_hi = d->shard[d->rank + 1];
    if (zero) {
        size_t n = (size_t)(d->shard_hi - d->shard_lo);
        d->gshard = p->grad + d->shard_lo; // the summed gradient's slice stays in the flat buffer
        d->mshard = tern_aligned_alloc(sizeof(float) * (n ? n : 1));
        d->vshard = tern_aligned_alloc(sizeof(float) * (n ? n : 1));
        memset(d->mshard, 0, sizeof(float) * n);
        memset(d->vshard, 0, sizeof(float) * n);
        // norm chunk partials per rank: non-frozen chunks starting in each slice (optim.c's plan)
        d->npart = tern_xcalloc((size_t)d->size, sizeof(int));
        d->part_displ = tern_xcalloc((size_t)d->size, sizeof(int));
        int r = 0;
        for (int i = 0; i < p->n; i++) {
            if (o->frozen[i]) continue;
            for (long s = 0; s < p->t[i]->n; s += TERN_NORM_CHUNK) {
                long off = p->t[i]->offset + s;
                while (r + 1 < d->size && off >= d->shard[r + 1]) r++;
                d->npart[r]++;
            }
        }
        for (int k = 1; k < d->size; k++) d->part_displ[k] = d->part_displ[k - 1] + d->npart[k - 1];
        d->partials = tern_xmalloc(sizeof(double) * (size_t)(o->nchunks ? o->nchunks : 1));
    }
    if (d->size <= 1) return;
    // buckets of whole tensors, from the last registered tensor down
    long cap = (long)((double)bucket_mb * 1048576.0 / sizeof(float));
    if (cap < 1) cap = 1;
    d->b = tern_xmalloc(sizeof(tern_bucket) * (size_t)(p->n ? p->n : 1));
    d->tensor_bucket = tern_xmalloc(sizeof(int) * (size_t)(p->n ? p->n : 1));
    for (int i = p->n - 1; i >= 0;) {
        tern_bucket *b = &d->b[d->nb];
        b->t_hi = i;
        b->hi = tensor_end(p, i);
        long n = 0;
        while (i >= 0 && (n == 0 || n + (tensor_end(p, i) - p->t[i]->offset) <= cap)) {
            n += tensor_end(p, i) - p->t[i]->offset;
            d->tensor_bucket[i] = d->nb;
            i--;
        }
        b->t_lo = i + 1;
        b->lo = p->t[b->t_lo]->offset;
        d->nb++;
    }
    d->pending = tern_xcalloc((size_t)d->nb, sizeof(int));
    d->reqs = tern_xmalloc(sizeof(MPI_Request) * (size_t)d->nb);
    for (int k = 0; k < d->nb; k++) reqs(d)[k] = MPI_REQUEST_NULL;
    d->scratch = tern_aligned_alloc(sizeof(float) * (size_t)(p->total ? p->total : 1)); // the send buffer
    d->scatter = zero && d->size < 4;
    if (d->scatter) {
        d->recvcounts = tern_xcalloc((size_t)d->nb * (size_t)d->size, sizeof(int));
        for (int k = 0; k < d->nb; k++)
            for (int r = 0; r < d->size; r++) {
                long a = d->b[k].lo > d->shard[r] ? d->b[k].lo : d->shard[r];
                long e = d->b[k].hi < d->shard[r + 1] ? d->b[k].hi : d->shard[r + 1];
                d->recvcounts[(size_t)k * d->size + r] = e > a ? (int)(e - a) : 0;
            }
    }
    if (tern_dist_thread_multiple()) thread_start(d);
}

void tern_ddp_free(tern_ddp *d) {
    thread_stop(d);
    free(d->scratch);
    free(d->b);
    free(d->tensor_bucket);
    free(d->pending);
    free(d->order);
    free(d->order_start);
    free(d->reqs);
    free(d->recvcounts);
    free(d->shard);
    free(d->mshard);
    free(d->vshard);
    free(d->npart);
    free(d->part_displ);
    free(d->partials);
    memset(d, 0, sizeof *d);
}

// int counts and displacements of the slices (elements)
static void slice_counts(const tern_ddp *d, int *cnt, int *displ) {
    for (int r = 0; r < d->size; r++) {
        cnt[r] = (int)(d->shard[r + 1] - d->shard[r]);
        displ[r] = (int)d->shard[r];
    }
}

void tern_ddp_share_state(tern_ddp *d, int have_moments) {
    tern_params *p = d->p;
    size_t bytes = sizeof(float) * (size_t)p->total;
    int flag = have_moments;
    tern_dist_bcast(&flag, sizeof flag);
    tern_dist_bcast(p->data, bytes);
    if (!d->zero) {
        if (flag) {
            tern_dist_bcast(p->m, bytes);
            tern_dist_bcast(p->v, bytes);
        }
        return;
    }
    long n = d->shard_hi - d->shard_lo;
    if (flag && !parallel(d)) {
        memcpy(d->mshard, p->m + d->shard_lo, sizeof(float) * (size_t)n);
        memcpy(d->vshard, p->v + d->shard_lo, sizeof(float) * (size_t)n);
    } else if (flag) {
        int *cnt = tern_xmalloc(sizeof(int) * (size_t)d->size), *displ = tern_xmalloc(sizeof(int) * (size_t)d->size);
        slice_counts(d, cnt, displ);
        MPI_Request r[2];
        TERN_MPI_CHECK(MPI_Iscatterv(p->m, cnt, displ, MPI_FLOAT, d->mshard, (int)n, MPI_FLOAT, 0, tern_dist_comm(), &r[0]));
        TERN_MPI_CHECK(MPI_Iscatterv(p->v, cnt, displ, MPI_FLOAT, d->vshard, (int)n, MPI_FLOAT, 0, tern_dist_comm(), &r[1]));
        tern_dist_wait(r, 2);
        free(cnt);
        free(displ);
    }
    tern_params_free_moments(p); // the full moments are not kept: optimizer memory per rank falls by the rank count
}

// ---- gradients ------------------------------------------------------------------------------

static void point_grads(tern_params *p, float *base) {
    for (int i = 0; i < p->n; i++) p->t[i]->grad = base + p->t[i]->offset;
}

static void add_range(float *restrict dst, const float *restrict src, long n) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (long k = 0; k < n; k++) dst[k] += src[k];
}

void tern_ddp_step_begin(tern_ddp *d) {
    tern_params_zero_grad(d->p);
    d->next = 0;
    d->prepared = 0;
    d->micro = 0;
    d->last = 0;
}

// Start bucket k's sum over ranks (only MPI here: the main thread prepared the send data). Send
// buffer: scratch; receive buffer: p->grad (with the scatter, this rank's slice of it).
static void start_bucket(tern_ddp *d, int k) {
    tern_params *p = d->p;
    const tern_bucket *b = &d->b[k];
    float *send = d->scratch + b->lo, *recv = p->grad + b->lo;
    if (d->scatter) {
        long a = b->lo > d->shard_lo ? b->lo : d->shard_lo;
        float *mine = d->recvcounts[(size_t)k * d->size + d->rank] > 0 ? p->grad + a : recv;
        TERN_MPI_CHECK(MPI_Ireduce_scatter(send, mine, d->recvcounts + (size_t)k * d->size, MPI_FLOAT, MPI_SUM,
                                           tern_dist_comm(), &reqs(d)[k]));
    } else {
        TERN_MPI_CHECK(MPI_Iallreduce(send, recv, (int)(b->hi - b->lo), MPI_FLOAT, MPI_SUM, tern_dist_comm(),
                                      &reqs(d)[k]));
    }
}

// ---- the communication thread (MPI_THREAD_MULTIPLE) ------------------------------------------------
// It starts the buckets the main thread has prepared, in order, and keeps MPI progressing until
// all are done: Open MPI's non-blocking collectives advance only inside MPI calls, so a thread that
// polls lets transfers run at network speed while the backward computes (PyTorch's MPI backend and
// Horovod do the same). It sleeps 50 us between polls while the backward runs, and only yields
// once the main thread waits for it.

typedef struct {
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;          // a step's buckets are being summed
    int ready;           // buckets prepared by the main thread (start them in order)
    int backward_done;   // every bucket is prepared
    int all_done;        // every bucket's sum has arrived
    int quit;
} comm_thread;

static void *comm_main(void *arg) {
    tern_ddp *d = arg;
    comm_thread *c = d->ct;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->quit && !c->active) pthread_cond_wait(&c->cv, &c->mu);
        if (c->quit) break;
        int started = 0;
        for (;;) {
            int ready = c->ready, bdone = c->backward_done;
            pthread_mutex_unlock(&c->mu);
            while (started < ready) start_bucket(d, started++);
            int flag = 1;
            if (started > 0) TERN_MPI_CHECK(MPI_Testall(started, reqs(d), &flag, MPI_STATUSES_IGNORE));
            tern_dist_poll();
            int finished = bdone && started == d->nb && flag;
            if (!finished) {
                if (bdone) sched_yield();
                else {
                    struct timespec ts = {0, 50000};
                    nanosleep(&ts, NULL);
                }
            }
            pthread_mutex_lock(&c->mu);
            if (finished) break;
        }
        c->active = 0;
        c->all_done = 1;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void thread_start(tern_ddp *d) {
    comm_thread *c = tern_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    d->ct = c;
    if (pthread_create(&c->thr, NULL, comm_main, d) != 0) tern_fatal("cannot start the gradient communication thread");
}

static void thread_stop(tern_ddp *d) {
    comm_thread *c = d->ct;
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thr, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    d->ct = NULL;
}

// Main thread: buckets [prepared, k) have their final gradients: add the earlier micro-batches' sum
// (p->grad) to the last one's (scratch) in each, then hand them to MPI: to the thread, or started
// here (no thread).
static void prepare_upto(tern_ddp *d, int k, int backward_done) {
    for (; d->prepared < k; d->prepared++) {
        const tern_bucket *b = &d->b[d->prepared];
        if (d->micro > 0) add_range(d->scratch + b->lo, d->p->grad + b->lo, b->hi - b->lo); // fl(g_last + earlier)
    }
    comm_thread *c = d->ct;
    if (c) {
        pthread_mutex_lock(&c->mu);
        c->ready = d->prepared;
        c->backward_done = backward_done;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    } else {
        while (d->next < d->prepared) start_bucket(d, d->next++);
    }
}

// index of the parameter tensor t in p (tensors are in offset order), or -1
static int param_index(const tern_params *p, const tern_tensor *t) {
    int lo = 0, hi = p->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (p->t[mid]->offset < t->offset) lo = mid + 1;
        else if (p->t[mid]->offset > t->offset) hi = mid - 1;
        else return p->t[mid] == t ? mid : -1;
    }
    return -1;
}

// For this backward: every tensor's first graph node (the last its gradient gets written in the
// reverse walk), tensors grouped by it; tensors no node uses are final at once.
static void plan(tern_ddp *d, const tern_graph *g) {
    const tern_params *p = d->p;
    int nn = g->n_nodes;
    if (nn + 2 > d->cap_nodes) {
        free(d->order_start);
        d->cap_nodes = nn + 2;
        d->order_start = tern_xmalloc(sizeof(int) * (size_t)d->cap_nodes);
    }
    if (!d->order) d->order = tern_xmalloc(sizeof(int) * (size_t)(p->n ? p->n : 1));
    int *first = tern_xmalloc(sizeof(int) * (size_t)(p->n ? p->n : 1));
    for (int i = 0; i < p->n; i++) first[i] = -1;
    for (int i = 0; i < nn; i++) {
        const tern_node *nd = &g->nodes[i];
        for (int s = 0; s < tern_node_n_inputs(nd); s++) {   // a checkpoint's params too (graph.h)
            const tern_tensor *t = tern_node_input(nd, s);
            if (!t || !t->is_param) continue;
            int k = param_index(p, t);
            if (k >= 0 && first[k] < 0) first[k] = i;
        }
    }
    // counting sort by first + 1 (slot 0: unused tensors)
    memset(d->order_start, 0, sizeof(int) * (size_t)(nn + 2));
    for (int i = 0; i < p->n; i++) d->order_start[first[i] + 2]++;
    for (int s = 1; s < nn + 2; s++) d->order_start[s] += d->order_start[s - 1];
    for (int i = 0; i < p->n; i++) d->order[d->order_start[first[i] + 1]++] = i;
    // order_start[s] is now the end of slot s; shift back to starts
    for (int s = nn + 1; s > 0; s--) d->order_start[s] = d->order_start[s - 1];
    d->order_start[0] = 0;
    for (int k = 0; k < d->nb; k++) d->pending[k] = d->b[k].t_hi - d->b[k].t_lo + 1;
    for (int j = d->order_start[0]; j < d->order_start[1]; j++) d->pending[d->tensor_bucket[d->order[j]]]--;
    free(first);
    d->planned = 1;
}

// no thread: the main thread keeps MPI going between graph nodes
static void progress(tern_ddp *d) {
    int flag;
    if (d->next > 0) TERN_MPI_CHECK(MPI_Testall(d->next, reqs(d), &flag, MPI_STATUSES_IGNORE));
    tern_dist_poll();
}

static void on_node(void *ctx, int node) {
    tern_ddp *d = ctx;
    double t0 = tern_time();
    if (!d->planned) plan(d, d->graph);
    for (int j = d->order_start[node + 1]; j < d->order_start[node + 2]; j++) d->pending[d->tensor_bucket[d->order[j]]]--;
    int k = d->prepared;
    while (k < d->nb && d->pending[k] == 0) k++;
    if (k > d->prepared) prepare_upto(d, k, 0);
    if (!d->ct) progress(d);
    d->stats.t_launch += tern_time() - t0;
}

void tern_ddp_micro_begin(tern_ddp *d, tern_graph *g, int micro, int last) {
    tern_params *p = d->p;
    d->micro = micro;
    d->last = last;
    d->in_scratch = micro > 0 || (last && parallel(d));
    if (d->in_scratch) { // this micro-batch's gradient alone, in scratch
        if (!d->scratch) d->scratch = tern_aligned_alloc(sizeof(float) * (size_t)(p->total ? p->total : 1));
        memset(d->scratch, 0, sizeof(float) * (size_t)p->total);
        point_grads(p, d->scratch);
    }
    if (last && parallel(d) && d->ct) { // arm the thread for this step
        comm_thread *c = d->ct;
        pthread_mutex_lock(&c->mu);
        c->ready = 0;
        c->backward_done = 0;
        c->all_done = 0;
        c->active = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    if (last && parallel(d) && d->overlap && d->nb > 0) {
        d->planned = 0;
        d->hooked = 1;
        d->graph = g;
        g->node_hook = on_node;
        g->node_hook_ctx = d;
    }
}

void tern_ddp_micro_end(tern_ddp *d, tern_graph *g) {
    tern_params *p = d->p;
    if (d->hooked) {
        g->node_hook = NULL;
        g->node_hook_ctx = NULL;
        d->graph = NULL;
        d->hooked = 0;
    }
    if (d->last && parallel(d)) { // whatever the hook did not hand over (all of it without overlap)
        double t0 = tern_time();
        prepare_upto(d, d->nb, 1);
        d->stats.t_launch += tern_time() - t0;
    } else if (d->micro > 0) {
        add_range(p->grad, d->scratch, p->total); // the step's sum, in micro-batch order
    }
    if (d->in_scratch) point_grads(p, p->grad);
}

void tern_ddp_sync(tern_ddp *d) {
    if (!parallel(d)) return; // a world of one: the local sum is the total
    double t0 = tern_time();
    comm_thread *c = d->ct;
    if (c) {
        pthread_mutex_lock(&c->mu);
        while (!c->all_done) pthread_cond_wait(&c->cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
    } else {
        tern_dist_wait(reqs(d), d->nb);
    }
    d->stats.t_wait += tern_time() - t0;
    d->stats.bytes_reduced = sizeof(float) * (double)d->p->total;
}

// ---- optimizer ------------------------------------------------------------------------------

int tern_ddp_optim_step(tern_ddp *d, long t, float lr, float wd, float clip, double *gnorm) {
    tern_params *p = d->p;
    tern_adamw *o = d->opt;
    d->stats.steps++;
    if (!d->zero) return tern_optim_step(o, p, t, lr, wd, clip, gnorm);
    const long lo = d->shard_lo, hi = d->shard_hi;
    double t0 = tern_time();
    int n = tern_grad_norm_partials(o, p, d->gshard, lo, hi, d->partials + d->part_displ[d->rank]);
    if (n != d->npart[d->rank]) tern_fatal("ZeRO-1: %d norm chunks in this rank's slice, planned %d", n, d->npart[d->rank]);
    int total_parts = d->part_displ[d->size - 1] + d->npart[d->size - 1];
    if (parallel(d)) {
        MPI_Request r;
        TERN_MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, d->partials, d->npart, d->part_displ, MPI_DOUBLE,
                                       tern_dist_comm(), &r));
        tern_dist_wait(&r, 1);
    }
    d->stats.t_optim_comm += tern_time() - t0;
    double sum = 0;
    for (int c = 0; c < total_parts; c++) sum += d->partials[c];
    double norm = sqrt(sum);
    if (gnorm) *gnorm = norm;
    if (!isfinite(norm)) {
        int rc = tern_grads_check_range(o, p, d->gshard, lo, hi);
        if (tern_dist_agree(rc) == 0) tern_error("gradient norm overflowed (%g) although every gradient is finite", norm);
        return 1;
    }
    if (clip > 0 && norm > clip) tern_clip_range(o, p, d->gshard, lo, hi, (float)((double)clip / norm));
    tern_adamw_update_range(o, p, d->gshard, d->mshard, d->vshard, lo, hi, t, lr, wd);
    if (parallel(d)) {
        t0 = tern_time();
        int *cnt = tern_xmalloc(sizeof(int) * (size_t)d->size), *displ = tern_xmalloc(sizeof(int) * (size_t)d->size);
        slice_counts(d, cnt, displ);
        MPI_Request r;
        TERN_MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p->data, cnt, displ, MPI_FLOAT, tern_dist_comm(), &r));
        tern_dist_wait(&r, 1);
        free(cnt);
        free(displ);
        d->stats.t_optim_comm += tern_time() - t0;
        d->stats.bytes_gathered = sizeof(float) * (double)p->total;
    }
    return 0;
}

// ---- checkpoints ----------------------------------------------------------------------------

int tern_ddp_moments(tern_ddp *d, float **m, float **v) {
    tern_params *p = d->p;
    if (!d->zero) {
        *m = p->m;
        *v = p->v;
        return 0;
    }
    *m = *v = NULL;
    long n = d->shard_hi - d->shard_lo;
    if (d->rank == 0) { // between steps the send buffer and the gradient buffer are free: gather there
        if (!d->scratch) d->scratch = tern_aligned_alloc(sizeof(float) * (size_t)(p->total ? p->total : 1));
        *m = d->scratch;
        *v = p->grad;
    }
    if (!parallel(d)) {
        memcpy(*m, d->mshard, sizeof(float) * (size_t)n);
        memcpy(*v, d->vshard, sizeof(float) * (size_t)n);
        return 1;
    }
    int *cnt = tern_xmalloc(sizeof(int) * (size_t)d->size), *displ = tern_xmalloc(sizeof(int) * (size_t)d->size);
    slice_counts(d, cnt, displ);
    MPI_Request r[2];
    TERN_MPI_CHECK(MPI_Igatherv(d->mshard, (int)n, MPI_FLOAT, *m, cnt, displ, MPI_FLOAT, 0, tern_dist_comm(), &r[0]));
    TERN_MPI_CHECK(MPI_Igatherv(d->vshard, (int)n, MPI_FLOAT, *v, cnt, displ, MPI_FLOAT, 0, tern_dist_comm(), &r[1]));
    tern_dist_wait(r, 2);
    free(cnt);
    free(displ);
    return d->rank == 0;
}

int tern_ddp_check_weights(tern_ddp *d, uint64_t *hash) {
    uint64_t h = tern_dist_hash(d->p->data, sizeof(float) * (size_t)d->p->total);
    if (hash) *hash = h;
    return tern_dist_check_same_u64(h, "weights");
}
