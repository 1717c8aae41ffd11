// import.c — a Hugging Face model directory -> a tern checkpoint.
//
//   tern-import HF_DIR -o MODEL.h5 [--seq-len N] [--tokenizer TOK | --no-tokenizer] [--save-tokenizer FILE.tkz]
//   (TOK: a tern .tkz file or a tokenizer.json, instead of the directory's)
//
// HF_DIR holds config.json, model.safetensors (or model-0000x-of-0000y.safetensors shards with
// model.safetensors.index.json; F32, F16, BF16, or BitNet's packed uint8) and a tokenizer
// (tokenizer.json, byte-level BPE or SentencePiece style, with tokenizer_config.json; else
// tokenizer.model: SentencePiece BPE, LLaMA-2 style). Architectures: LlamaForCausalLM (written as
// a full-precision tern model without sub-norms: fine-tune it to ternary with tern-finetune
// --to-ternary) and BitNetForCausalLM (Microsoft's BitNet b1.58 2B4T: a ternary model with
// sub-norms and squared ReLU; -bf16 masters or the packed form). Anything else is refused with
// one line naming the architecture. See src/formats/hfmodel.h for the mapping and docs/IMPORT.md.
// --seq-len sets the checkpoint's context (default: the config's max_position_embeddings);
// training programs may override seq_len again. --save-tokenizer also writes the imported
// tokenizer as a tern tokenizer file, to encode training data with (tern-tokenizer encode -t).
#include "formats/checkpoint.h"
#include "formats/hfmodel.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_json.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <libgen.h>
#include <unistd.h>

static int usage(int rc) {
    fprintf(rc ? stderr : stdout,
            "usage: tern-import HF_DIR -o MODEL.h5 [--seq-len N] [--tokenizer TOK | --no-tokenizer] [--save-tokenizer FILE.tkz]\n"
            "  HF_DIR: config.json + model.safetensors (or shards + model.safetensors.index.json) + tokenizer.json or tokenizer.model\n"
            "  TOK: a tern .tkz file or a tokenizer.json, instead of the directory's\n"
            "  architectures: LlamaForCausalLM (full precision), BitNetForCausalLM (bf16 masters or packed)\n");
    return rc;
}

#define DIE(...) do { fprintf(stderr, "tern-import: " __VA_ARGS__); fputc('\n', stderr); rc = 1; goto out; } while (0)

int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 0);   // passive OpenMP workers on a busy machine (util.h)
    const char *dir = NULL, *out = NULL, *tok_path = NULL, *save_tok = NULL;
    long seq = 0;
    int no_tok = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(0);
        if (!strcmp(a, "-o") || !strcmp(a, "--seq-len") || !strcmp(a, "--tokenizer") || !strcmp(a, "--save-tokenizer")) {
            if (i + 1 >= argc) { fprintf(stderr, "tern-import: %s needs a value\n", a); return usage(1); }
            const char *v = argv[++i];
            if (!strcmp(a, "-o")) out = v;
            else if (!strcmp(a, "--tokenizer")) tok_path = v;
            else if (!strcmp(a, "--save-tokenizer")) save_tok = v;
            else if (tern_parse_long(v, &seq) || seq < 1 || seq > (1 << 24)) {
                fprintf(stderr, "tern-import: bad --seq-len '%s' (expected 1..%d)\n", v, 1 << 24);
                return 1;
            }
        } else if (!strcmp(a, "--no-tokenizer")) no_tok = 1;
        else if (a[0] == '-') { fprintf(stderr, "tern-import: unknown option '%s'\n", a); return usage(1); }
        else if (!dir) dir = a;
        else { fprintf(stderr, "tern-import: unexpected argument '%s'\n", a); return usage(1); }
    }
    if (!dir || !out) return usage(1);
    if (no_tok && (tok_path || save_tok)) { fprintf(stderr, "tern-import: --no-tokenizer excludes --tokenizer and --save-tokenizer\n"); return 1; }
    {   // the output directory must be writable before the (long) import starts
        char d[4096];
        snprintf(d, sizeof d, "%s", out);
        const char *od = dirname(d);
        if (access(od, W_OK) != 0) { fprintf(stderr, "tern-import: %s: cannot write into directory %s\n", out, od); return 1; }
    }
    double t0 = tern_time();
    tern_model_config mc;
    tern_hf_info info;
    tern_model m;
    memset(&m, 0, sizeof m);
    void *tok = NULL;
    size_t tok_n = 0;
    const char *tok_src = "none";
    if (tern_hf_read_config(dir, (int)seq, &mc, &info) != 0) DIE("%s", tern_last_error());
    // the tokenizer first: a bad one fails before the (long) weight import
    if (tok_path) {
        tern_tokenizer t;
        if (tern_tokenizer_load_any(&t, tok_path) != 0) DIE("%s", tern_last_error());
        int v = t.vocab_size, rt = v == mc.vocab_size ? tern_tokenizer_to_bytes(&t, &tok, &tok_n) : 0;
        tern_tokenizer_free(&t);
        if (v != mc.vocab_size) DIE("%s: %d pieces but the model has vocab_size %d", tok_path, v, mc.vocab_size);
        if (rt != 0) DIE("%s", tern_last_error());
        tok_src = tok_path;
    } else if (!no_tok) {
        int r = tern_hf_read_tokenizer(dir, mc.vocab_size, &tok, &tok_n, &tok_src);
        if (r < 0) DIE("%s", tern_last_error());
        if (r == 0)
            DIE("%s: no tokenizer.json or tokenizer.model; pass --tokenizer TOK or --no-tokenizer", dir);
    }
    printf("%s: %s; dim %d, %d layers, %d/%d heads, ffn %d (%s), vocab %d, rope_theta %g%s, %s head\n", dir, info.arch, mc.dim, mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.ffn_dim,
           tern_ffn_act_name(mc.ffn_act), mc.vocab_size, (double)mc.rope_theta,
           mc.rope_scaling == TERN_ROPE_SCALING_LLAMA3 ? ", llama3 rope scaling" : "", mc.tied_head ? "tied" : "untied");
    tern_model_build_frozen(&m, &mc);
    if (tern_hf_load_weights(dir, &m, &info) != 0) DIE("%s", tern_last_error());
    if (tern_checkpoint_save(out, &mc, &m.params, tok, tok_n, NULL) != 0) DIE("%s", tern_last_error());
    if (save_tok) {
        tern_tokenizer t;
        if (tern_tokenizer_from_bytes(&t, tok, tok_n, tok_src) != 0) DIE("%s", tern_last_error());
        int rs = tern_tokenizer_save(&t, save_tok);
        tern_tokenizer_free(&t);
        if (rs != 0) DIE("%s", tern_last_error());
        printf("tokenizer: %s (%d pieces)\n", save_tok, mc.vocab_size);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("weights: %s%s from %d file%s (%.1f MB), %d tensors%s\n", info.dtype, info.packed ? " (packed ternary codes + weight_scale)" : "",
           info.n_files, info.n_files == 1 ? "" : "s", info.file_bytes / 1e6, info.n_tensors,
           info.ignored_lm_head ? "; lm_head.weight of the tied model not used" : "");
    if (info.packed) printf("packed scales: tern's absmean scale = 1/weight_scale within %.2g relative\n", info.scale_max_rel);
    printf("wrote %s: %s model, %.2fM parameters, ffn_act %s, sub_norms %d, seq_len %d, tokenizer: %s [%.1f s, peak RSS %.0f MiB]\n", out,
           mc.ternary ? "ternary" : "full-precision", tern_model_config_nparams(&mc) / 1e6, tern_ffn_act_name(mc.ffn_act), mc.sub_norms,
           mc.seq_len, tok ? tok_src : "none", tern_time() - t0, ru.ru_maxrss / 1024.0);
out:
    free(tok);
    if (m.params.allocated) tern_model_free(&m);
    return rc;
}
