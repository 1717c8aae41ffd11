// test_export_shapes.c — tern-export for the shapes imported models bring (train/export.c):
//   - squared-ReLU models are architecture `bitnet-b1.58` with every key under "bitnet-b1.58.",
//     SiLU models `bitnet`;
//   - BitLinear rows that are not a multiple of 256 are Q8_0 blocks holding exactly the ternary
//     codes (d = 1) with the exact fp32 s_w in blk.N.<name>.scale (checked element by element
//     against tern's own quantizer, which shares no code with the writer's packing); rows of a
//     multiple of 256 stay TQ2_0 (mixed in one file);
//   - no sub-norm tensors for a model without sub-norms; rope_freqs.weight = the llama3 divisors;
//   - widths that are not a multiple of 32 are refused with one line.
#include "testutil.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/rope.h"
#include "util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>

static char dir[256];
static char prog_bin[1024];   // the build's tern-export (beside tests/, as this binary was built)

static void save_model(const char *path, tern_model_config *c, uint64_t seed) {
    assert_int_equal(tern_model_config_validate(c), 0);
    tern_model m;
    tern_model_build_frozen(&m, c);
    tern_model_init_weights(&m, seed);
    assert_int_equal(tern_checkpoint_save(path, c, &m.params, NULL, 0, NULL), 0);
    tern_model_free(&m);
}

static int run_export(const char *ckpt, const char *out, const char *extra, char *log, size_t logn) {
    char cmd[3000], lp[600];
    snprintf(lp, sizeof lp, "%s/export.log", dir);
    snprintf(cmd, sizeof cmd, "%s %s %s --no-tokenizer %s > %s 2>&1", prog_bin, ckpt, out, extra, lp);
    int rc = system(cmd);
    size_t n;
    char *s = tern_read_file(lp, &n);
    snprintf(log, logn, "%s", s ? s : "");
    free(s);
    return rc;
}

static void base(tern_model_config *c) {
    tern_model_config_defaults(c);
    c->dim = 64;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->ffn_dim = 256;     // ffn_down rows: a whole TQ2_0 block; the others (64) fall back to Q8_0
    c->vocab_size = 300;
    c->seq_len = 32;
}

// every BitLinear of the GGUF equals tern's quantization of the checkpoint's weights
static void check_bitlinears(const char *ckpt, const tern_gguf *g, const tern_model_config *c) {
    tern_model m;
    tern_model_build_frozen(&m, c);
    assert_int_equal(tern_checkpoint_load(ckpt, c, &m.params, NULL), 0);
    const char *names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < c->n_layers; l++) {
        tern_layer *L = &m.layers[l];
        tern_tensor *w[7] = {L->attn_q, L->attn_k, L->attn_v, L->attn_output, L->ffn_gate, L->ffn_up, L->ffn_down};
        for (int j = 0; j < 7; j++) {
            char nm[96];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[j]);
            const tern_gguf_tensor *t = tern_gguf_find_tensor(g, nm);
            assert_non_null(t);
            const int cols = w[j]->shape[1];
            float s = tern_weight_scale(w[j]->data, w[j]->n);
            int8_t *q = malloc((size_t)w[j]->n);
            tern_weight_quantize_i8(w[j]->data, w[j]->n, s, q);
            if (cols % 256) {
                assert_int_equal(t->type, TERN_GGML_Q8_0);
                const uint8_t *b = t->data;
                for (long k = 0; k < w[j]->n / 32; k++) {
                    assert_true(b[34 * k] == 0x00 && b[34 * k + 1] == 0x3C);   // d = 1.0 in fp16
                    assert_memory_equal(b + 34 * k + 2, q + 32 * k, 32);
                }
            } else {
                assert_int_equal(t->type, TERN_GGML_TQ2_0);
            }
            snprintf(nm, sizeof nm, "blk.%d.%s.scale", l, names[j]);
            const tern_gguf_tensor *st = tern_gguf_find_tensor(g, nm);
            assert_non_null(st);
            float sv;
            memcpy(&sv, st->data, 4);
            assert_true(sv == s);   // the exact fp32 scale
            free(q);
        }
    }
    tern_model_free(&m);
}

static void test_relu2_q8_fallback(void **st) {
    (void)st;
    tern_model_config c;
    base(&c);
    c.ffn_act = TERN_FFN_RELU2;
    char ck[512], out[512], log[4096];
    snprintf(ck, sizeof ck, "%s/relu2.h5", dir);
    snprintf(out, sizeof out, "%s/relu2.gguf", dir);
    save_model(ck, &c, 11);
    assert_int_equal(run_export(ck, out, "", log, sizeof log), 0);
    assert_non_null(strstr(log, "Q8_0"));
    tern_gguf *g = tern_gguf_open(out);
    if (!g) fail_msg("%s", tern_last_error());
    const char *arch;
    assert_int_equal(tern_gguf_get_str(g, "general.architecture", &arch, NULL), 0);
    assert_string_equal(arch, "bitnet-b1.58");
    uint32_t v;
    assert_int_equal(tern_gguf_get_u32(g, "bitnet-b1.58.embedding_length", &v), 0);
    assert_int_equal(v, 64);
    assert_int_equal(tern_gguf_get_u32(g, "bitnet-b1.58.feed_forward_length", &v), 0);
    assert_int_equal(v, 256);
    for (int i = 0; i < tern_gguf_n_kv(g); i++) {   // no key under the other prefix
        const char *k = tern_gguf_kv_key(g, i);
        assert_true(strncmp(k, "bitnet.", 7) != 0);
    }
    assert_non_null(tern_gguf_find_tensor(g, "blk.1.ffn_sub_norm.weight"));
    assert_null(tern_gguf_find_tensor(g, "rope_freqs.weight"));
    check_bitlinears(ck, g, &c);
    tern_gguf_close(g);
    // --type q8_0: every BitLinear, also the 256-wide rows
    assert_int_equal(run_export(ck, out, "--type q8_0", log, sizeof log), 0);
    g = tern_gguf_open(out);
    assert_non_null(g);
    assert_int_equal(tern_gguf_find_tensor(g, "blk.0.ffn_down.weight")->type, TERN_GGML_Q8_0);
    tern_gguf_close(g);
}

static void test_silu_no_subnorms_llama3(void **st) {
    (void)st;
    tern_model_config c;
    base(&c);
    c.sub_norms = 0;
    c.rope_scaling = TERN_ROPE_SCALING_LLAMA3;
    c.rope_original_ctx = 64;
    char ck[512], out[512], log[4096];
    snprintf(ck, sizeof ck, "%s/silu.h5", dir);
    snprintf(out, sizeof out, "%s/silu.gguf", dir);
    save_model(ck, &c, 12);
    assert_int_equal(run_export(ck, out, "", log, sizeof log), 0);
    assert_non_null(strstr(log, "no sub-norms"));
    tern_gguf *g = tern_gguf_open(out);
    assert_non_null(g);
    const char *arch;
    assert_int_equal(tern_gguf_get_str(g, "general.architecture", &arch, NULL), 0);
    assert_string_equal(arch, "bitnet");
    assert_null(tern_gguf_find_tensor(g, "blk.0.attn_sub_norm.weight"));
    assert_null(tern_gguf_find_tensor(g, "blk.0.ffn_sub_norm.weight"));
    const tern_gguf_tensor *rf = tern_gguf_find_tensor(g, "rope_freqs.weight");
    assert_non_null(rf);
    assert_int_equal(rf->ne[0], 8);
    float want[8];
    tern_rope_llama3_divisors(16, c.rope_theta, 8.0f, 1.0f, 4.0f, 64, want);
    assert_memory_equal(rf->data, want, sizeof want);
    check_bitlinears(ck, g, &c);
    tern_gguf_close(g);
}

static void test_bad_width(void **st) {
    (void)st;
    tern_model_config c;
    base(&c);
    c.ffn_dim = 80;   // not a multiple of 32
    char ck[512], out[512], log[4096];
    snprintf(ck, sizeof ck, "%s/w80.h5", dir);
    snprintf(out, sizeof out, "%s/w80.gguf", dir);
    save_model(ck, &c, 13);
    assert_true(run_export(ck, out, "", log, sizeof log) != 0);
    assert_non_null(strstr(log, "multiples of 32"));
    assert_int_equal(access(out, F_OK), -1);   // nothing written
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/tern_test_export_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(prog_bin, sizeof prog_bin, "%s/../tern-export", dirname(self));
    if (access(prog_bin, X_OK)) { fprintf(stderr, "test_export_shapes: %s not built\n", prog_bin); return 1; }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu2_q8_fallback),
        cmocka_unit_test(test_silu_no_subnorms_llama3),
        cmocka_unit_test(test_bad_width),
    };
    return cmocka_run_group_tests_name("export_shapes", tests, setup, teardown);
}
