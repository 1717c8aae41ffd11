// sampler.c — next-token sampling: greedy, temperature, top-k, top-p (nucleus), seeded.
#include "runtime.h"
#include "util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void build_sampler(tern_sampler *s, int vocab_size, float temperature, int top_k, float top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->vocab_size = vocab_size;
    s->temperature = temperature < 0.0f ? 0.0f : temperature;
    s->top_k = top_k < 0 || top_k > vocab_size ? 0 : top_k;
    s->top_p = top_p <= 0.0f || top_p > 1.0f ? 1.0f : top_p;
    tern_rng r;
    tern_rng_seed(&r, seed);
    s->rng_state = r.s;
    s->probindex = tern_xmalloc(sizeof(tern_prob_index) * (size_t)vocab_size);
    s->probs = tern_xmalloc(sizeof(float) * (size_t)vocab_size);
}

void free_sampler(tern_sampler *s) {
    free(s->probindex);
    free(s->probs);
    memset(s, 0, sizeof *s);
}

int sample_argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static int cmp_desc(const void *a, const void *b) {
    const tern_prob_index *x = a, *y = b;
    if (x->prob > y->prob) return -1;
    if (x->prob < y->prob) return 1;
    return x->index - y->index; // deterministic order among ties
}

// Move the k entries of a[0..n) that come first in cmp_desc order to a[0..k), sorted: a heap of
// the best k so far (its root is the one of them that comes last), then a sort of those k. The
// order is total (ties by index), so this is exactly the first k of a full sort, in O(n log k).
static void heap_down(tern_prob_index *h, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && cmp_desc(&h[l], &h[m]) > 0) m = l;
        if (r < k && cmp_desc(&h[r], &h[m]) > 0) m = r;
        if (m == i) return;
        tern_prob_index t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void select_first_k(tern_prob_index *a, int n, int k) {
    for (int i = k / 2 - 1; i >= 0; i--) heap_down(a, k, i);
    for (int i = k; i < n; i++)
        if (cmp_desc(&a[i], &a[0]) < 0) {
            a[0] = a[i];
            heap_down(a, k, 0);
        }
    qsort(a, (size_t)k, sizeof *a, cmp_desc);
}

int sample(tern_sampler *s, const float *logits) {
    int V = s->vocab_size;
    if (s->temperature == 0.0f) return sample_argmax(logits, V);
    // softmax(logits / T)
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->temperature);
        sum += s->probs[i];
    }
    int n = 0;
    for (int i = 0; i < V; i++) {
        s->probindex[n].prob = (float)(s->probs[i] / sum);
        s->probindex[n].index = i;
        n++;
    }
    int filter = s->top_k > 0 || s->top_p < 1.0f;
    if (filter) {
        if (s->top_k > 0 && s->top_k < n) {   // only the top k take part: select them, O(n log k)
            select_first_k(s->probindex, n, s->top_k);
            n = s->top_k;
        } else qsort(s->probindex, (size_t)n, sizeof *s->probindex, cmp_desc);
        if (s->top_p < 1.0f) { // smallest prefix whose mass reaches top_p
            double cum = 0.0;
            int keep = n;
            for (int i = 0; i < n; i++) {
                cum += s->probindex[i].prob;
                if (cum >= s->top_p) { keep = i + 1; break; }
            }
            n = keep;
        }
    }
    double mass = 0.0;
    for (int i = 0; i < n; i++) mass += s->probindex[i].prob;
    tern_rng r = {s->rng_state};
    double u = tern_rng_uniform(&r) * mass;
    s->rng_state = r.s;
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += s->probindex[i].prob;
        if (u < cum) return s->probindex[i].index;
    }
    return s->probindex[n - 1].index;
}
