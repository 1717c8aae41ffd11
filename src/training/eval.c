// eval.c — sequential-window evaluation (see eval.h for the window definition).
#include "training/eval.h"
#include "util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void tern_eval_ids(tern_model *m, const int *ids, long n, int batch, long max_windows, const tern_tokenizer *tok,
                   tern_eval_result *r) {
    memset(r, 0, sizeof *r);
    int T = m->cfg.seq_len;
    if (n < 2) return;
    long nfull = (n - 1) / T, rem = (n - 1) - nfull * T; // full windows, predictions left over
    long nw = nfull + (rem > 0);
    if (max_windows > 0 && nw > max_windows) { nw = max_windows; if (nw <= nfull) { nfull = nw; rem = 0; } }
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&m->cfg), 0, 0);
    g.grad_enabled = 0;
    int *in = tern_xmalloc(sizeof(int) * (size_t)batch * T), *tg = tern_xmalloc(sizeof(int) * (size_t)batch * T);
    double total = 0.0;
    for (long w0 = 0; w0 < nw; w0 += batch) {
        int nb, Tb = T;
        if (w0 < nfull) nb = (int)(nfull - w0 < batch ? nfull - w0 : batch);
        else { nb = 1; Tb = (int)rem; } // the partial last window, alone
        for (int b = 0; b < nb; b++) {
            long s = (w0 + b) * T;
            for (int t = 0; t < Tb; t++) { in[b * Tb + t] = ids[s + t]; tg[b * Tb + t] = ids[s + t + 1]; }
        }
        tern_graph_reset(&g);
        tern_tensor *loss = tern_model_loss(m, &g, in, tg, nb, Tb);
        total += (double)loss->data[0] * nb * Tb;
        r->n_scored += (long)nb * Tb;
        r->n_windows += nb;
        if (tok)
            for (int i = 0; i < nb * Tb; i++) {
                char buf[TERN_TOK_MAX_PIECE];
                int k = tern_tokenizer_decode_piece(tok, tg[i], 0, buf, sizeof buf);
                if (k > 0) r->n_bytes += k;
            }
        w0 -= batch - nb; // next batch starts right after the windows just run
    }
    r->loss = r->n_scored ? total / r->n_scored : 0.0;
    r->ppl = exp(r->loss);
    r->bpb = r->n_bytes ? total / log(2.0) / (double)r->n_bytes : 0.0;
    tern_graph_free(&g);
    free(in);
    free(tg);
}
