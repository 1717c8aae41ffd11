// eval.h — evaluation of a model on token ids: mean loss, perplexity, bits per byte.
//
// Windows (the same definition in the runtime's tern-perplexity, so the two agree):
// non-overlapping windows of T = seq_len predictions. Window w reads tokens [w*T, w*T + T]
// (T + 1 ids): inputs are the first T, targets the last T, so every token but the first is
// scored exactly once, each with up to T-1 tokens of context from its own window. A final
// partial window (fewer than T + 1 ids left, at least 2) is scored too.
// Bits per byte = total NLL / ln 2 / (bytes of the scored target tokens' text).
#ifndef TERN_EVAL_H
#define TERN_EVAL_H
#include "model/model.h"
#include "tokenizers/tokenizer.h"

typedef struct {
    double loss;        // mean NLL (nats) per scored token
    double ppl;         // exp(loss)
    long n_scored;      // tokens scored
    long n_windows;
    long n_bytes;       // text bytes of the scored tokens (0 without a tokenizer)
    double bpb;         // bits per byte (0 without a tokenizer)
} tern_eval_result;

// Evaluate ids[n] in batches of 'batch' windows; max_windows > 0 caps the count. tok may be NULL.
void tern_eval_ids(tern_model *m, const int *ids, long n, int batch, long max_windows, const tern_tokenizer *tok,
                   tern_eval_result *r);

#endif
