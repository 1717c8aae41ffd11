// loader.c — see loader.h
#include "training/loader.h"
#include "util.h"
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// this epoch's offset and permutation, from (seed, epoch) only
static void build_epoch(tern_loader *ld) {
    tern_rng r;
    tern_rng_seed(&r, mix64(ld->seed ^ mix64((uint64_t)ld->epoch)));
    int64_t slack = ld->tf.n_tokens - 1 - ld->n_windows * ld->seq_len;
    ld->offset = slack > 0 ? (int64_t)(tern_rng_u64(&r) % (uint64_t)(slack + 1)) : 0;
    for (int64_t i = 0; i < ld->n_windows; i++) ld->perm[i] = i;
    for (int64_t i = ld->n_windows - 1; i > 0; i--) {
        int64_t j = (int64_t)(tern_rng_u64(&r) % (uint64_t)(i + 1));
        int64_t t = ld->perm[i];
        ld->perm[i] = ld->perm[j];
        ld->perm[j] = t;
    }
}

int tern_loader_open(tern_loader *ld, const char *path, int seq_len, int batch, uint64_t seed) {
    memset(ld, 0, sizeof *ld);
    if (seq_len < 1 || batch < 1) {
        tern_error("%s: bad loader sizes (seq_len %d, batch %d)", path, seq_len, batch);
        return -1;
    }
    if (tern_tokfile_open(&ld->tf, path) != 0) return -1;
    if (ld->tf.n_tokens < (int64_t)seq_len + 1) {
        tern_error("%s: too few tokens (%lld) for seq_len %d (need at least %lld)", path, (long long)ld->tf.n_tokens,
                   seq_len, (long long)seq_len + 1);
        tern_tokfile_close(&ld->tf);
        return -1;
    }
    ld->seq_len = seq_len;
    ld->batch = batch;
    ld->seed = seed;
    ld->n_windows = (ld->tf.n_tokens - 1) / seq_len;
    ld->perm = tern_xmalloc((size_t)ld->n_windows * sizeof(int64_t));
    build_epoch(ld);
    return 0;
}

void tern_loader_close(tern_loader *ld) {
    tern_tokfile_close(&ld->tf);
    free(ld->perm);
    memset(ld, 0, sizeof *ld);
}

int tern_loader_check_tokenizer(const tern_loader *ld, int vocab_size, uint64_t hash) {
    if (ld->tf.vocab_size != vocab_size || ld->tf.tokenizer_hash != hash) {
        tern_error("%s: made with a different tokenizer (vocab %d, hash %016llx; expected vocab %d, hash %016llx)",
                   ld->tf.path, ld->tf.vocab_size, (unsigned long long)ld->tf.tokenizer_hash, vocab_size,
                   (unsigned long long)hash);
        return -1;
    }
    return 0;
}

static void window(const tern_tokfile *tf, int64_t start, int T, int *in, int *tg) {
    tern_tokfile_read(tf, start, T, in);
    tern_tokfile_read(tf, start + 1, T, tg);
}

void tern_loader_next(tern_loader *ld, int *inputs, int *targets) { tern_loader_next_n(ld, ld->batch, inputs, targets); }

void tern_loader_next_n(tern_loader *ld, int n, int *inputs, int *targets) {
    int T = ld->seq_len;
    for (int b = 0; b < n; b++) {
        if (ld->pos >= ld->n_windows) {
            ld->epoch++;
            ld->pos = 0;
            build_epoch(ld);
        }
        int64_t start = ld->offset + ld->perm[ld->pos++] * T;
        window(&ld->tf, start, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

void tern_loader_skip(tern_loader *ld, int64_t n) {
    while (n > 0) {
        if (ld->pos >= ld->n_windows) {
            ld->epoch++;
            ld->pos = 0;
            build_epoch(ld);
        }
        int64_t take = ld->n_windows - ld->pos < n ? ld->n_windows - ld->pos : n;
        ld->pos += take;
        n -= take;
    }
}

void tern_loader_get_pos(const tern_loader *ld, int64_t *epoch, int64_t *pos) {
    *epoch = ld->epoch;
    *pos = ld->pos;
}

int tern_loader_set_pos(tern_loader *ld, int64_t epoch, int64_t pos) {
    if (epoch < 0 || pos < 0 || pos > ld->n_windows) {
        tern_error("%s: loader position (epoch %lld, pos %lld) out of range (%lld windows per epoch)", ld->tf.path,
                   (long long)epoch, (long long)pos, (long long)ld->n_windows);
        return -1;
    }
    ld->epoch = epoch;
    ld->pos = pos;
    build_epoch(ld);
    return 0;
}

int64_t tern_loader_eval_count(const tern_loader *ld) { return (ld->tf.n_tokens - 1) / ld->seq_len; }

int tern_loader_eval_windows(const tern_loader *ld, int64_t first, int count, int *inputs, int *targets) {
    int64_t n = tern_loader_eval_count(ld);
    int k = 0;
    for (; k < count && first + k < n && first + k >= 0; k++)
        window(&ld->tf, (first + k) * ld->seq_len, ld->seq_len, inputs + (size_t)k * ld->seq_len,
               targets + (size_t)k * ld->seq_len);
    return k;
}
