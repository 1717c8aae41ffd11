// ckpt_info.c — describe a tern checkpoint (HDF5): format, checksum, model config, parameter
// count, tokenizer, training state.
//   tern-ckpt_info CKPT.h5 [--config | --check | --reseal]
//   --config   print only the stored run config (re-loadable with tern_config_load)
//   --check    also read every dataset (weights, AdamW m and v) as a resume would: types, shapes,
//              storage, finite values; prints "check: ok" or the first problem
//   --reseal   write a new checksum into a checkpoint that was changed on purpose with an HDF5
//              tool (its structure is checked first, in a separate process)
#include "formats/checkpoint.h"
#include "model/config.h"
#include "model/model.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: tern-ckpt_info CKPT.h5 [--config | --check | --reseal]\n"
               "  --config   print only the stored run config\n"
               "  --check    read every dataset as a resume would (types, shapes, finite values)\n"
               "  --reseal   write a new checksum after an intended change with an HDF5 tool\n");
    return rc;
}

static int fail(void) {
    fprintf(stderr, "tern-ckpt_info: %s\n", tern_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int only_config = 0, check = 0, reseal = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout, 0);
        if (strcmp(argv[i], "--config") == 0) only_config = 1;
        else if (strcmp(argv[i], "--check") == 0) check = 1;
        else if (strcmp(argv[i], "--reseal") == 0) reseal = 1;
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "tern-ckpt_info: unexpected argument '%s'\n", argv[i]);
            return usage(stderr, 2);
        } else path = argv[i];
    }
    if (!path || only_config + check + reseal > 1) return usage(stderr, 2);
    if (reseal) {
        if (tern_checkpoint_seal(path) != 0) return fail();
        int version, sealed;
        if (tern_checkpoint_info(path, &version, &sealed) != 0) return fail();
        printf("%s: checksum written\n", path);
        return 0;
    }
    tern_model_config mc;
    int version = 0, sealed = 0;
    if (tern_checkpoint_info(path, &version, &sealed) != 0 || tern_checkpoint_read_config(path, &mc) != 0) return fail();
    tern_train_state st;
    int has_state = tern_checkpoint_read_state(path, &st);
    if (has_state < 0) return fail();
    if (only_config) {
        if (!has_state) { fprintf(stderr, "tern-ckpt_info: %s: no training state (no run config)\n", path); return 1; }
        fputs(st.run_config, stdout);
        tern_train_state_free(&st);
        return 0;
    }
    void *tok;
    size_t tok_n;
    int has_tok = tern_checkpoint_read_tokenizer(path, &tok, &tok_n);
    if (has_tok < 0) { tern_train_state_free(&st); return fail(); }
    free(tok);
    if (check) {   // every dataset, as tern-train's resume reads them
        tern_model m;
        tern_model_build(&m, &mc);
        tern_train_state ls;
        int rc = tern_checkpoint_load(path, &mc, &m.params, has_state ? &ls : NULL);
        tern_model_free(&m);
        if (rc < 0) { tern_train_state_free(&st); return fail(); }
        if (rc == 1) tern_train_state_free(&ls);
    }
    printf("%s: %s v%d, %s\n", path, TERN_CKPT_FORMAT, version, sealed ? "checksum (xxh64) ok" : "no checksum (older file)");
    printf("model: dim %d, n_layers %d, n_heads %d, n_kv_heads %d, ffn_dim %d, vocab_size %d, seq_len %d,\n"
           "       norm_eps %g, rope_theta %g, tied_head %d, ternary %d\n",
           mc.dim, mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.ffn_dim, mc.vocab_size, mc.seq_len, (double)mc.norm_eps,
           (double)mc.rope_theta, mc.tied_head, mc.ternary);
    char why[128];
    int exp = tern_model_config_exportable(&mc, why, sizeof why);
    printf("parameters: %ld (%.2fM)%s%s\n", tern_model_config_nparams(&mc), tern_model_config_nparams(&mc) / 1e6,
           exp ? "" : "; not exportable to GGUF ternary: ", exp ? "" : why);
    if (has_tok) printf("tokenizer: %zu bytes embedded\n", tok_n);
    else printf("tokenizer: none\n");
    if (has_state) {
        printf("train_state: step %ld, tokens_seen %ld, loader pos %ld epoch %ld seed %llu, rng %016llx\n", st.step,
               st.tokens_seen, st.loader_pos, st.loader_epoch, (unsigned long long)st.loader_seed,
               (unsigned long long)st.rng_state);
        if (st.train_tokens >= 0)
            printf("data: train %ld tokens (tokenizer %016llx), val %ld tokens\n", st.train_tokens,
                   (unsigned long long)st.train_tok_hash, st.val_tokens);
        tern_train_state_free(&st);
    } else {
        printf("train_state: none (weights only)\n");
    }
    if (check) printf("check: ok (every dataset readable, shapes match, values finite)\n");
    return 0;
}
