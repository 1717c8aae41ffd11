// export.c — tern HDF5 checkpoint -> GGUF v3 (llama.cpp architecture `bitnet`, or bitnet.cpp's
// `bitnet-b1.58` for squared-ReLU models).
//   tern-export ckpt.h5 [-o] out.gguf [--type tq2_0|tq1_0|i2_s|q8_0|f16|bf16|f32] [--embd TYPE] [--head TYPE]
//               [--name NAME] [--tokenizer TOK] [--no-tokenizer]   (TOK: .tkz or tokenizer.json)
//   TYPE (embedding / untied head): q8_0 (default), q6_k, q5_k, q4_k, f16, bf16, f32
//
// What is written (shared/docs/formats.md):
//   KVs: general.architecture = ARCH, general.name, general.file_type, ARCH.context_length,
//        .embedding_length, .block_count, .feed_forward_length, .attention.head_count,
//        .attention.head_count_kv, .attention.layer_norm_rms_epsilon, .rope.freq_base,
//        .rope.dimension_count, .vocab_size; the tokenizer as tokenizer.ggml.* keys of either kind
//        (src/tokenizers/tokenizer_gguf.h: model "llama" with scores, or "gpt2" with merges and pre).
//        ARCH = "bitnet" for SiLU models (ffn_act = silu), "bitnet-b1.58" for squared-ReLU models
//        (ffn_act = relu2: Microsoft's BitNet b1.58 2B4T; bitnet.cpp's name, keys "bitnet-b1.58.*",
//        the same tensor names; llama.cpp's own `bitnet` graph applies SiLU).
//   Tensors: token_embd (--embd: q8_0 default, q6_k, q5_k, q4_k, f16, bf16 or f32; quantized by
//        formats/ggml_types.h), output_norm (f32), per block the norms (f32; the two sub-norms only
//        when the model has them) and the seven BitLinear weights (--type):
//          tq2_0 (default) / tq1_0: blocks with d = 1, each tensor followed by blk.N.<name>.scale,
//            f32 {1} = the exact fp32 s_w (quant.h): llama.cpp's bitnet graph multiplies the
//            product by it, tern's runtime folds it into the kernel scale;
//          i2_s (bitnet.cpp's format): the 2-bit codes and the exact fp32 s_w as the tensor's own
//            scale, no .scale tensor (rows must be a multiple of 128 weights);
//          q8_0: blocks holding the ternary codes exactly (d = 1, int8 values in {-1, 0, 1}) and
//            the .scale tensor: 8.5 bits per weight, read by llama.cpp and tern's runtime;
//          f16 / bf16 / f32: the ternary values -1, 0, 1 (exact in every float type) and the
//            .scale tensor, for tools that quantize from float files (llama.cpp's quantizer).
//        So the ternary integers and the scales are bit-identical to the training forward.
//   Rows that are not a multiple of the type's block (256 weights for tq2_0/tq1_0, 128 for i2_s)
//        fall back to the q8_0 form above (a note says which); rows must be a multiple of 32.
//   rope_scaling = llama3: rope_freqs.weight f32 [head_dim/2] (the frequency divisors, as
//        llama.cpp's converter writes them for LLaMA 3).
//   An untied head (tied_head = 0) is written as output.weight (--head: default the --embd type).
// Full-precision checkpoints (ternary = 0) are refused: their weights are not ternary.
#include "formats/checkpoint.h"
#include "model/config.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/rope.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_gguf.h"
#include "tokenizers/tokenizer_json.h"
#include "formats/tqpack.h"
#include "formats/ggml_types.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *prog = "tern-export";

static void usage(FILE *f, int rc) {
    fprintf(f, "usage: tern-export ckpt.h5 [-o] out.gguf [--type tq2_0|tq1_0|i2_s|q8_0|f16|bf16|f32] [--embd TYPE] [--head TYPE]\n"
               "                   [--name NAME] [--tokenizer TOK.tkz|tokenizer.json] [--no-tokenizer]\n"
               "  TYPE (token embedding; untied output matrix): q8_0 (default), q6_k, q5_k, q4_k, f16, bf16, f32\n");
    exit(rc);
}

static void die(const char *msg) {
    fprintf(stderr, "%s: %s\n", prog, msg);
    exit(1);
}

// keeps every buffer the writer points at alive until the file is written
typedef struct { void **p; int n, cap; } keep_list;
static void *keep(keep_list *k, void *p) {
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 64;
        k->p = realloc(k->p, sizeof(void *) * (size_t)k->cap);
        if (!k->p) tern_fatal("out of memory");
    }
    k->p[k->n++] = p;
    return p;
}

static void check(int rc, const char *out) {
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, out, tern_last_error());
        exit(1);
    }
}

int main(int argc, char **argv) {
    tern_omp_wait_policy(argv, 0);   // passive OpenMP workers on a busy machine (util.h)
    const char *in = NULL, *out = NULL, *name = NULL, *tok_path = NULL;
    int ttype = TERN_GGML_TQ2_0, etype = TERN_GGML_Q8_0, htype = -1, no_tok = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-tokenizer")) { no_tok = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(stdout, 0);
        if (!strcmp(a, "-o")) {
            if (!v || out) usage(stderr, 2);
            out = v;
            i++;
            continue;
        }
        if (a[0] == '-' && a[1] == '-') {
            if (!v) { fprintf(stderr, "%s: %s needs a value\n", prog, a); usage(stderr, 2); }
            i++;
            if (!strcmp(a, "--type")) {
                ttype = tern_ggml_type_parse(v);
                if (ttype != TERN_GGML_TQ2_0 && ttype != TERN_GGML_TQ1_0 && ttype != TERN_GGML_I2_S && ttype != TERN_GGML_Q8_0 &&
                    ttype != TERN_GGML_F16 && ttype != TERN_GGML_BF16 && ttype != TERN_GGML_F32)
                    die("--type: expected tq2_0, tq1_0, i2_s, q8_0, f16, bf16 or f32");
            } else if (!strcmp(a, "--embd") || !strcmp(a, "--head")) {
                int t = tern_ggml_type_parse(v);
                if (t != TERN_GGML_Q8_0 && t != TERN_GGML_Q6_K && t != TERN_GGML_Q5_K && t != TERN_GGML_Q4_K && t != TERN_GGML_F16 &&
                    t != TERN_GGML_BF16 && t != TERN_GGML_F32) {
                    fprintf(stderr, "%s: %s: expected q8_0, q6_k, q5_k, q4_k, f16, bf16 or f32\n", prog, a);
                    return 1;
                }
                if (!strcmp(a, "--embd")) etype = t;
                else htype = t;
            } else if (!strcmp(a, "--name")) name = v;
            else if (!strcmp(a, "--tokenizer")) tok_path = v;
            else { fprintf(stderr, "%s: unknown option '%s'\n", prog, a); usage(stderr, 2); }
            continue;
        }
        if (!in) in = a;
        else if (!out) out = a;
        else usage(stderr, 2);
    }
    if (!in || !out) usage(stderr, 2);
    if (tern_check_output_path(out)) die(tern_last_error());   // before any work: never a device, FIFO or directory
    if (name && strlen(name) > 200) die("--name: longer than 200 bytes");

    tern_model_config mc;
    if (tern_checkpoint_read_config(in, &mc)) die(tern_last_error());
    if (tern_model_config_validate(&mc)) { fprintf(stderr, "%s: %s: %s\n", prog, in, tern_last_error()); return 1; }
    if (!mc.ternary) {
        fprintf(stderr, "%s: %s: full-precision checkpoint (ternary = 0); only ternary models export to TQ2_0/TQ1_0\n", prog, in);
        return 1;
    }
    // BitLinear rows are dim (q, k, v, attn_output, gate, up) or ffn_dim (down) weights long
    if (mc.dim % 32 || mc.ffn_dim % 32) {
        fprintf(stderr, "%s: %s: dim %d and ffn_dim %d must be multiples of 32 (TQ2_0/TQ1_0 blocks hold 256 weights, I2_S 128, "
                        "the Q8_0 fallback 32)\n", prog, in, mc.dim, mc.ffn_dim);
        return 1;
    }
    if (htype < 0) htype = etype;
    for (int k = 0; k < 2; k++) {
        const int t = k ? htype : etype;
        if (mc.dim % tern_ggml_block_elems(t)) {
            fprintf(stderr, "%s: %s: dim %d is not a multiple of the %s block size %lld; choose %s q8_0, f16, bf16 or f32\n", prog, in,
                    mc.dim, tern_ggml_type_name(t), (long long)tern_ggml_block_elems(t), k ? "--head" : "--embd");
            return 1;
        }
    }
    const char *arch = mc.ffn_act == TERN_FFN_RELU2 ? "bitnet-b1.58" : "bitnet";
    if (!mc.sub_norms)
        fprintf(stderr, "%s: warning: the model has no sub-norms; tern's runtime runs it, llama.cpp's and bitnet.cpp's %s graphs "
                        "require attn_sub_norm and ffn_sub_norm\n", prog, arch);
    // tokenizer: from --tokenizer, else the checkpoint's /tokenizer
    tern_tokenizer tok;
    int have_tok = 0;
    if (!no_tok) {
        if (tok_path) {
            if (tern_tokenizer_load_any(&tok, tok_path)) die(tern_last_error());
        } else {
            void *buf = NULL;
            size_t n = 0;
            int rc = tern_checkpoint_read_tokenizer(in, &buf, &n);
            if (rc < 0) die(tern_last_error());
            if (rc == 0) {
                fprintf(stderr, "%s: %s: no tokenizer in the checkpoint; pass --tokenizer file.tok (or --no-tokenizer for a file "
                                "without one, which tern-generate and llama.cpp cannot use)\n", prog, in);
                return 1;
            }
            char what[600];
            snprintf(what, sizeof what, "%s (/tokenizer)", in);
            if (tern_tokenizer_from_bytes(&tok, buf, n, what)) die(tern_last_error());
            free(buf);
        }
        have_tok = 1;
        if (tok.nfc)
            fprintf(stderr, "%s: note: the tokenizer normalizes text to NFC; GGUF cannot say so and llama.cpp does not "
                            "normalize (text that is not in NFC tokenizes differently there and in tern's runtime)\n", prog);
        if (tok.vocab_size != mc.vocab_size) {
            fprintf(stderr, "%s: %s: tokenizer has %d pieces but the model's vocab_size is %d\n", prog, in, tok.vocab_size, mc.vocab_size);
            return 1;
        }
    }
    tern_model model;
    tern_model_build_frozen(&model, &mc);   // values only
    if (tern_checkpoint_load(in, &mc, &model.params, NULL) < 0) die(tern_last_error());

    tern_gguf_writer *w = tern_gguf_writer_new();
    keep_list kl = {0};
    int hd = mc.dim / mc.n_heads;
    char base[256];
    if (!name) { // file name without directory and extension
        const char *s = strrchr(in, '/');
        snprintf(base, sizeof base, "%s", s ? s + 1 : in);
        char *dot = strrchr(base, '.');
        if (dot && dot != base) *dot = 0;
        name = base;
    }
    // BitLinear type per row length: --type when rows hold whole blocks of it, else Q8_0
    const int64_t tblk = tern_ggml_block_elems(ttype);
    const int type_dim = mc.dim % tblk ? TERN_GGML_Q8_0 : ttype, type_ffn = mc.ffn_dim % tblk ? TERN_GGML_Q8_0 : ttype;
    const int any_q8 = type_dim == TERN_GGML_Q8_0 || type_ffn == TERN_GGML_Q8_0;
    if (any_q8 && ttype != TERN_GGML_Q8_0)
        fprintf(stderr, "%s: %s rows of %d weights are not whole %s blocks: written as Q8_0 holding the ternary codes (8.5 bits/weight)\n",
                prog, type_dim == TERN_GGML_Q8_0 ? "q/k/v/attn_output/gate/up" : "ffn_down",
                type_dim == TERN_GGML_Q8_0 ? mc.dim : mc.ffn_dim, tern_ggml_type_name(ttype));
    char key[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    check(tern_gguf_add_str(w, "general.architecture", arch), out);
    check(tern_gguf_add_str(w, "general.name", name), out);
    // LLAMA_FTYPE_MOSTLY_Q8_0 7 / TQ2_0 37 / TQ1_0 36 / F16 1 / BF16 32 / F32 0; bitnet.cpp's MOSTLY_I2_S 40 (informational)
    const uint32_t ftype = any_q8 ? 7u : ttype == TERN_GGML_TQ2_0 ? 37u : ttype == TERN_GGML_TQ1_0 ? 36u : ttype == TERN_GGML_I2_S ? 40u
                         : ttype == TERN_GGML_F16 ? 1u : ttype == TERN_GGML_BF16 ? 32u : 0u;
    check(tern_gguf_add_u32(w, "general.file_type", ftype), out);
    check(tern_gguf_add_u32(w, "general.quantization_version", 2), out);
    check(tern_gguf_add_u32(w, KEY("context_length"), (uint32_t)mc.seq_len), out);
    check(tern_gguf_add_u32(w, KEY("embedding_length"), (uint32_t)mc.dim), out);
    check(tern_gguf_add_u32(w, KEY("block_count"), (uint32_t)mc.n_layers), out);
    check(tern_gguf_add_u32(w, KEY("feed_forward_length"), (uint32_t)mc.ffn_dim), out);
    check(tern_gguf_add_u32(w, KEY("attention.head_count"), (uint32_t)mc.n_heads), out);
    check(tern_gguf_add_u32(w, KEY("attention.head_count_kv"), (uint32_t)mc.n_kv_heads), out);
    check(tern_gguf_add_f32(w, KEY("attention.layer_norm_rms_epsilon"), mc.norm_eps), out);
    check(tern_gguf_add_f32(w, KEY("rope.freq_base"), mc.rope_theta), out);
    check(tern_gguf_add_u32(w, KEY("rope.dimension_count"), (uint32_t)hd), out);
    check(tern_gguf_add_u32(w, KEY("vocab_size"), (uint32_t)mc.vocab_size), out);
#undef KEY
    if (have_tok) check(tern_tokenizer_gguf_write(&tok, w), out); // tokenizer.ggml.* (tokenizers/tokenizer_gguf.h)
    // tensors, in llama.cpp's usual order
    long n_fp = 0, n_tern = 0;
    size_t tern_bytes = 0;
    const tern_tensor *E = model.token_embd;
    int64_t ne2[2] = {mc.dim, mc.vocab_size};
#define FP_MATRIX(nm, T, TYPE)                                                                             \
    do {                                                                                                   \
        size_t nb_ = tern_ggml_row_bytes(TYPE, mc.dim) * (size_t)mc.vocab_size;                           \
        void *q_ = keep(&kl, tern_xmalloc(nb_));                                                           \
        check(tern_ggml_quantize(TYPE, (T)->data, (T)->n, q_), out);                                       \
        check(tern_gguf_add_tensor(w, nm, 2, ne2, TYPE, q_, nb_), out);                                    \
        n_fp += (T)->n;                                                                                    \
    } while (0)
    FP_MATRIX("token_embd.weight", E, etype);
    if (mc.rope_scaling == TERN_ROPE_SCALING_LLAMA3) {   // the frequency divisors, llama.cpp's rope_freqs
        float *div = keep(&kl, tern_xmalloc(sizeof(float) * (size_t)(hd / 2)));
        tern_rope_llama3_divisors(hd, mc.rope_theta, mc.rope_scaling_factor, mc.rope_low_freq_factor, mc.rope_high_freq_factor,
                                  mc.rope_original_ctx, div);
        int64_t ne1[1] = {hd / 2};
        check(tern_gguf_add_tensor(w, "rope_freqs.weight", 1, ne1, TERN_GGML_F32, div, sizeof(float) * (size_t)(hd / 2)), out);
        n_fp += hd / 2;
        if (!strcmp(arch, "bitnet"))
            fprintf(stderr, "%s: warning: llama3 rope scaling written as rope_freqs.weight; tern's runtime applies it, llama.cpp's bitnet graph does not\n", prog);
    }
    const char *bl_names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < mc.n_layers; l++) {
        tern_layer *L = &model.layers[l];
        const tern_tensor *norms[4] = {L->attn_norm, L->attn_sub_norm, L->ffn_norm, L->ffn_sub_norm};
        const tern_tensor *bl[7] = {L->attn_q, L->attn_k, L->attn_v, L->attn_output, L->ffn_gate, L->ffn_up, L->ffn_down};
        for (int k = 0; k < 4; k++) {
            if (!norms[k]) continue;   // no sub-norms
            int64_t ne1[1] = {norms[k]->n};
            check(tern_gguf_add_tensor(w, norms[k]->name, 1, ne1, TERN_GGML_F32, norms[k]->data, 4 * (size_t)norms[k]->n), out);
            n_fp += norms[k]->n;
        }
        for (int j = 0; j < 7; j++) {
            const tern_tensor *t = bl[j];
            long n = t->n;
            float *s = keep(&kl, tern_xmalloc(sizeof(float)));
            *s = tern_weight_scale(t->data, n);
            int8_t *q = tern_xmalloc((size_t)n);
            tern_weight_quantize_i8(t->data, n, *s, q);
            const int type = j == 6 ? type_ffn : type_dim;
            int64_t ne[2] = {t->shape[1], t->shape[0]};
            size_t nb = 0;
            void *blk = NULL;
            int rc = 0;
            if (type == TERN_GGML_TQ2_0 || type == TERN_GGML_TQ1_0) {
                nb = type == TERN_GGML_TQ2_0 ? tern_tq2_bytes(n) : tern_tq1_bytes(n);
                blk = keep(&kl, tern_xmalloc(nb));
                rc = type == TERN_GGML_TQ2_0 ? tern_tq2_pack(q, n, 1.0f, blk) : tern_tq1_pack(q, n, 1.0f, blk);
            } else if (type == TERN_GGML_I2_S) {
                nb = (size_t)n / 4 + TERN_I2S_TAIL;
                blk = keep(&kl, tern_xmalloc(nb));
                rc = tern_i2s_pack(q, n, *s, blk);
            } else if (type == TERN_GGML_Q8_0) {   // d = 1 (fp16 0x3C00) and the codes as they are: exactly ternary x .scale
                nb = (size_t)(n / 32) * TERN_Q8_0_BYTES;
                blk = keep(&kl, tern_xmalloc(nb));
                for (long b = 0; b < n / 32; b++) {
                    uint8_t *o = (uint8_t *)blk + TERN_Q8_0_BYTES * b;
                    o[0] = 0x00;
                    o[1] = 0x3C;
                    memcpy(o + 2, q + 32 * b, 32);
                }
            } else {   // the ternary values as floats, then the scale tensor
                float *f = tern_xmalloc(sizeof(float) * (size_t)n);
                for (long i = 0; i < n; i++) f[i] = (float)q[i];
                nb = tern_ggml_row_bytes(type, t->shape[1]) * (size_t)t->shape[0];
                blk = keep(&kl, tern_xmalloc(nb));
                rc = tern_ggml_quantize(type, f, n, blk);
                free(f);
            }
            free(q);
            check(rc, out);
            check(tern_gguf_add_tensor(w, t->name, 2, ne, type, blk, nb), out);
            if (type != TERN_GGML_I2_S) {
                char sname[96];
                snprintf(sname, sizeof sname, "blk.%d.%s.scale", l, bl_names[j]);
                int64_t one[1] = {1};
                check(tern_gguf_add_tensor(w, sname, 1, one, TERN_GGML_F32, s, sizeof(float)), out);
            }
            n_tern += n;
            tern_bytes += nb + (type == TERN_GGML_I2_S ? 0 : sizeof(float));
        }
    }
    {
        int64_t ne1[1] = {mc.dim};
        check(tern_gguf_add_tensor(w, "output_norm.weight", 1, ne1, TERN_GGML_F32, model.output_norm->data, 4 * (size_t)mc.dim), out);
        n_fp += mc.dim;
    }
    if (!mc.tied_head) {
        FP_MATRIX("output.weight", model.output, htype);
        if (!strcmp(arch, "bitnet"))
            fprintf(stderr, "%s: warning: untied head written as output.weight; tern runs it, llama.cpp's bitnet loader does not\n", prog);
    }
    if (tern_gguf_write(w, out)) die(tern_last_error());
    struct stat st;
    long long fsize = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    char types[64];
    if (type_dim == type_ffn) snprintf(types, sizeof types, "%s", tern_ggml_type_name(type_dim));
    else snprintf(types, sizeof types, "%s (ffn_down %s)", tern_ggml_type_name(type_dim), tern_ggml_type_name(type_ffn));
    printf("wrote %s: %lld bytes (%.2f MB), architecture %s, %s BitLinear weights, %s embedding%s%s%s\n", out, fsize, fsize / 1e6, arch,
           types, tern_ggml_type_name(etype), mc.tied_head ? "" : ", output ", mc.tied_head ? "" : tern_ggml_type_name(htype),
           have_tok ? ", tokenizer" : "");
    printf("bits per weight: %.4f over %ld ternary weights (blocks + scales), %.3f over all %ld parameters (whole file)\n",
           8.0 * (double)tern_bytes / (double)n_tern, n_tern, 8.0 * (double)fsize / (double)(n_tern + n_fp), n_tern + n_fp);
    tern_gguf_writer_free(w);
    for (int i = 0; i < kl.n; i++) free(kl.p[i]);
    free(kl.p);
    if (have_tok) tern_tokenizer_free(&tok);
    tern_model_free(&model);
    return 0;
}
