// test_import.c — Hugging Face model directories into tern (formats/hfmodel.h), against the
// independent PyTorch implementation of transformers' LlamaForCausalLM / BitNetForCausalLM
// (scripts/torch_ref.py hf-fixture -> tests/fixtures/hf/, see tests/fixtures/README.md):
//   - logits of every imported fixture (F32, F16 untied + llama3 rope scaling, BF16 sharded, BitNet
//     bf16 masters, BitNet packed) equal the reference's to 1e-4 (max|d| / max|ref|);
//   - the packed BitNet import has the very ternary codes of the bf16 masters, the same scales, and
//     the same logits as the bf16 import;
//   - tokenizer.model becomes the vocabulary the script wrote;
//   - tern-import writes a checkpoint that loads back to the same logits;
//   - broken inputs (safetensors header, JSON, offsets, overlaps, dtypes, shapes, missing or extra
//     tensors, packed code 3, index pointing outside the directory, unknown architecture, bad
//     tokenizer.model) are one clear error each, never a crash.
#include "testutil.h"
#include "formats/checkpoint.h"
#include "formats/hfmodel.h"
#include "formats/safetensors.h"
#include "formats/spmodel.h"
#include "model/quant.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_json.h"
#include "util.h"
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>

#define FIX "tests/fixtures/hf"

static char tmpdir[256];
static char prog_bin[1024];   // the build's tern-import (beside tests/, as this binary was built)

static int read_ds(hid_t f, const char *name, hid_t type, void *buf, long n) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    long got = (long)H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    int rc = got == n ? (H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0) : -1;
    H5Dclose(d);
    return rc;
}

// imports dir into a frozen model (fails the test on error)
static void import_dir(const char *dir, tern_model *m, tern_hf_info *info) {
    tern_model_config c;
    if (tern_hf_read_config(dir, 12, &c, info) != 0) fail_msg("%s", tern_last_error());
    tern_model_build_frozen(m, &c);
    if (tern_hf_load_weights(dir, m, info) != 0) fail_msg("%s", tern_last_error());
}

// logits of m on the 2x12 batch of <name>_expected.h5 into *out (malloc'd); returns the max|d|/max|ref| against it
static double logits_vs_expected(tern_model *m, const char *name, float **out) {
    char ex[512];
    snprintf(ex, sizeof ex, FIX "/%s_expected.h5", name);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(ex, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    const int B = 2, T = 12, N = B * T, V = m->cfg.vocab_size;
    int in[24];
    float *want = malloc(sizeof(float) * N * V);
    assert_int_equal(read_ds(f, "inputs", H5T_NATIVE_INT, in, N), 0);
    assert_int_equal(read_ds(f, "logits", H5T_NATIVE_FLOAT, want, (long)N * V), 0);
    H5Fclose(f);
    tern_graph g;
    tern_graph_init(&g, tern_model_graph_nodes(&m->cfg), 0, 0);
    g.grad_enabled = 0;
    tern_tensor *lg = tern_model_forward(m, &g, in, B, T);
    double md = 0, mr = 0;
    for (long i = 0; i < (long)N * V; i++) {
        md = fmax(md, fabs((double)lg->data[i] - want[i]));
        mr = fmax(mr, fabs((double)want[i]));
    }
    if (out) {
        *out = malloc(sizeof(float) * N * V);
        memcpy(*out, lg->data, sizeof(float) * N * V);
    }
    tern_graph_free(&g);
    free(want);
    return md / mr;
}

static void check_fixture(const char *name, const char *arch, int ternary, int sub_norms, int ffn_act) {
    char dir[256];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    tern_model m;
    tern_hf_info info;
    import_dir(dir, &m, &info);
    assert_string_equal(info.arch, arch);
    assert_int_equal(m.cfg.ternary, ternary);
    assert_int_equal(m.cfg.sub_norms, sub_norms);
    assert_int_equal(m.cfg.ffn_act, ffn_act);
    double rel = logits_vs_expected(&m, name, NULL);
    printf("import %-20s %s %-4s%s: logits max|d|/max|ref| %.2e against the PyTorch reference\n", name, arch, info.dtype,
           info.packed ? " packed" : "", rel);
    assert_true(rel <= 1e-4);
    tern_model_free(&m);
}

static void test_llama_f32(void **st) {
    (void)st;
    check_fixture("llama_f32", "LlamaForCausalLM", 0, 0, TERN_FFN_SILU);
}

static void test_llama_f16_untied_llama3(void **st) {
    (void)st;
    tern_model_config c;
    tern_hf_info info;
    assert_int_equal(tern_hf_read_config(FIX "/llama_f16_untied", 0, &c, &info), 0);
    assert_int_equal(c.tied_head, 0);
    assert_int_equal(c.n_kv_heads, 1);
    assert_int_equal(c.rope_scaling, TERN_ROPE_SCALING_LLAMA3);
    assert_int_equal(c.rope_original_ctx, 64);
    assert_true(c.rope_scaling_factor == 8.0f && c.rope_high_freq_factor == 4.0f);
    assert_int_equal(c.seq_len, 64);   // max_position_embeddings when no seq_len is given
    check_fixture("llama_f16_untied", "LlamaForCausalLM", 0, 0, TERN_FFN_SILU);
}

static void test_llama_bf16_sharded(void **st) {
    (void)st;
    tern_model m;
    tern_hf_info info;
    import_dir(FIX "/llama_bf16_sharded", &m, &info);
    assert_int_equal(info.n_files, 2);
    assert_int_equal(info.ignored_lm_head, 1);   // tied model saved with lm_head.weight; inv_freq buffers skipped
    tern_model_free(&m);
    check_fixture("llama_bf16_sharded", "LlamaForCausalLM", 0, 0, TERN_FFN_SILU);
}

static void test_bitnet_bf16(void **st) {
    (void)st;
    check_fixture("bitnet_bf16", "BitNetForCausalLM", 1, 1, TERN_FFN_RELU2);
}

// the packed form: same codes and scales as the masters ternarized, same logits
static void test_bitnet_packed_equals_bf16(void **st) {
    (void)st;
    check_fixture("bitnet_packed", "BitNetForCausalLM", 1, 1, TERN_FFN_RELU2);
    tern_model mp, mb;
    tern_hf_info ip, ib;
    import_dir(FIX "/bitnet_packed", &mp, &ip);
    import_dir(FIX "/bitnet_bf16", &mb, &ib);
    assert_true(ip.packed && !ib.packed);
    assert_true(ip.scale_max_rel < 1e-6);
    int n_proj = 0;
    for (int i = 0; i < mp.params.n; i++) {
        tern_tensor *a = mp.params.t[i], *b = mb.params.t[i];
        assert_string_equal(a->name, b->name);
        if (a->ndim != 2 || !strncmp(a->name, "token_embd", 10) || !strncmp(a->name, "output", 6)) {
            assert_memory_equal(a->data, b->data, sizeof(float) * (size_t)a->n);   // not quantized: same values
            continue;
        }
        float sa = tern_weight_scale(a->data, a->n), sb = tern_weight_scale(b->data, b->n);
        int8_t *qa = malloc((size_t)a->n), *qb = malloc((size_t)b->n);
        tern_weight_quantize_i8(a->data, a->n, sa, qa);
        tern_weight_quantize_i8(b->data, b->n, sb, qb);
        assert_memory_equal(qa, qb, (size_t)a->n);
        assert_true(fabsf(sa - sb) <= 1e-6f * sb);
        free(qa);
        free(qb);
        n_proj++;
    }
    assert_int_equal(n_proj, 14);
    float *lp, *lb;
    logits_vs_expected(&mp, "bitnet_packed", &lp);
    logits_vs_expected(&mb, "bitnet_bf16", &lb);
    double md = 0, mr = 0;
    for (long i = 0; i < 24L * mp.cfg.vocab_size; i++) {
        md = fmax(md, fabs((double)lp[i] - lb[i]));
        mr = fmax(mr, fabs((double)lb[i]));
    }
    printf("import bitnet packed vs bf16 masters ternarized: logits max|d|/max %.2e, codes identical, scales within %.1e\n",
           md / mr, ip.scale_max_rel);
    assert_true(md / mr <= 1e-4);
    free(lp);
    free(lb);
    tern_model_free(&mp);
    tern_model_free(&mb);
}

// tokenizer.model -> the pieces and scores the script wrote
static void test_tokenizer_model(void **st) {
    (void)st;
    void *bytes;
    size_t n;
    const char *src;
    assert_int_equal(tern_hf_read_tokenizer(FIX "/llama_f32", 272, &bytes, &n, &src), 1);
    assert_string_equal(src, "tokenizer.model");
    tern_tokenizer t;
    assert_int_equal(tern_tokenizer_from_bytes(&t, bytes, n, "tokenizer.model"), 0);
    hid_t f = H5Fopen(FIX "/llama_f32_expected.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    int len[272];
    float score[272];
    assert_int_equal(read_ds(f, "piece_len", H5T_NATIVE_INT, len, 272), 0);
    assert_int_equal(read_ds(f, "piece_score", H5T_NATIVE_FLOAT, score, 272), 0);
    long total = 0;
    for (int i = 0; i < 272; i++) total += len[i];
    unsigned char *pb = malloc((size_t)total);
    assert_int_equal(read_ds(f, "piece_bytes", H5T_NATIVE_UCHAR, pb, total), 0);
    H5Fclose(f);
    assert_int_equal(t.vocab_size, 272);
    assert_int_equal(t.add_space_prefix, 1);
    long off = 0;
    for (int i = 0; i < 272; i++) {
        assert_int_equal(t.piece_len[i], len[i]);
        assert_memory_equal(t.pieces[i], pb + off, (size_t)len[i]);
        assert_true(t.scores[i] == score[i]);
        off += len[i];
    }
    // "the" merges to the piece "▁the" (id 271 - 13 + 12 = the 13th normal piece)
    int *ids, ni;
    assert_int_equal(tern_tokenizer_encode(&t, "the", 3, 0, &ids, &ni), 0);
    assert_int_equal(ni, 1);
    assert_memory_equal(t.pieces[ids[0]], "\xe2\x96\x81the", 6);
    free(ids);
    tern_tokenizer_free(&t);
    free(pb);
    free(bytes);
    // padding to a larger embedding: [PAD<id>] pieces
    assert_int_equal(tern_hf_read_tokenizer(FIX "/llama_f32", 300, &bytes, &n, &src), 1);
    assert_int_equal(tern_tokenizer_from_bytes(&t, bytes, n, "padded"), 0);
    assert_int_equal(t.vocab_size, 300);
    assert_string_equal(t.pieces[299], "[PAD299]");
    tern_tokenizer_free(&t);
    free(bytes);
    // fewer rows than pieces: an error
    assert_int_equal(tern_hf_read_tokenizer(FIX "/llama_f32", 271, &bytes, &n, &src), -1);
    assert_non_null(strstr(tern_last_error(), "embedding rows"));
}

// encodings of a few texts by a and b are the same
static void same_encoding(const tern_tokenizer *a, const tern_tokenizer *b) {
    const char *texts[] = {"the cat sat", "Hello, world!  42", "\xc3\xa9t\xc3\xa9 \xe2\x82\xac\x35", "a\n\nb"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int *x, *y, nx, ny;
        assert_int_equal(tern_tokenizer_encode(a, texts[i], strlen(texts[i]), 0, &x, &nx), 0);
        assert_int_equal(tern_tokenizer_encode(b, texts[i], strlen(texts[i]), 0, &y, &ny), 0);
        assert_int_equal(nx, ny);
        assert_memory_equal(x, y, sizeof(int) * (size_t)nx);
        free(x);
        free(y);
    }
}

// tokenizer.json (tokenizers/tokenizer_json.h) is preferred to tokenizer.model: a SentencePiece-style
// one (written from the fixture's tokenizer.model) imports as the same tokenizer, end to end
// through tern-import; a byte-level one (GPT-2 family fixture) is padded with unused [PAD<id>]
// pieces that encoding never produces and decoding drops; more pieces than rows is an error.
static void test_tokenizer_json(void **st) {
    (void)st;
    void *bytes;
    size_t n;
    const char *src;
    tern_tokenizer spm, t;
    assert_int_equal(tern_hf_read_tokenizer(FIX "/llama_f32", 272, &bytes, &n, &src), 1);
    assert_int_equal(tern_tokenizer_from_bytes(&spm, bytes, n, "tokenizer.model"), 0);
    free(bytes);
    char dir[512], p[700], cmd[3000], out[600];
    snprintf(dir, sizeof dir, "%s/tj", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp " FIX "/llama_f32/config.json " FIX "/llama_f32/model.safetensors %s/", dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    assert_int_equal(tern_tokenizer_save_json(&spm, p), 0);
    assert_int_equal(tern_hf_read_tokenizer(dir, 272, &bytes, &n, &src), 1);
    assert_string_equal(src, "tokenizer.json");
    assert_int_equal(tern_tokenizer_from_bytes(&t, bytes, n, "tokenizer.json"), 0);
    free(bytes);
    assert_int_equal(t.kind, TERN_TOK_LLAMA);
    assert_int_equal(t.vocab_size, 272);
    same_encoding(&spm, &t);
    tern_tokenizer_free(&t);
    // tern-import takes it from the directory and embeds it in the checkpoint
    snprintf(out, sizeof out, "%s/tj.h5", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s -o %s > %s/tj.log 2>&1", prog_bin, dir, out, tmpdir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(tern_checkpoint_read_tokenizer(out, &bytes, &n), 1);
    assert_int_equal(tern_tokenizer_from_bytes(&t, bytes, n, out), 0);
    free(bytes);
    same_encoding(&spm, &t);
    tern_tokenizer_free(&t);
    tern_tokenizer_free(&spm);
    // byte-level, padded to a larger embedding
    const char *gpt2 = "tests/fixtures/tokenizers/gpt2";
    tern_tokenizer plain;
    snprintf(p, sizeof p, "%s/tokenizer.json", gpt2);
    assert_int_equal(tern_tokenizer_load_json(&plain, p), 0);
    assert_int_equal(plain.kind, TERN_TOK_GPT2);
    int V0 = plain.vocab_size, V = V0 + 37;
    assert_int_equal(tern_hf_read_tokenizer(gpt2, V, &bytes, &n, &src), 1);
    assert_int_equal(tern_tokenizer_from_bytes(&t, bytes, n, "padded"), 0);
    free(bytes);
    assert_int_equal(t.kind, TERN_TOK_GPT2);
    assert_int_equal(t.vocab_size, V);
    assert_int_equal(t.n_merges, plain.n_merges);
    for (int i = 0; i < V0; i++) assert_string_equal(t.pieces[i], plain.pieces[i]);
    char nm[32];
    snprintf(nm, sizeof nm, "[PAD%d]", V - 1);
    assert_string_equal(t.pieces[V - 1], nm);
    assert_int_equal(t.types[V - 1], TERN_PIECE_UNUSED);
    same_encoding(&plain, &t);
    int pad_ids[2] = {V0, V - 1};
    char *text;
    size_t tl;
    assert_int_equal(tern_tokenizer_decode(&t, pad_ids, 2, &text, &tl), 0);
    assert_int_equal(tl, 0);   // padding decodes to nothing
    free(text);
    tern_tokenizer_free(&t);
    tern_tokenizer_free(&plain);
    // fewer rows than pieces
    assert_int_equal(tern_hf_read_tokenizer(gpt2, V0 - 1, &bytes, &n, &src), -1);
    assert_non_null(strstr(tern_last_error(), "embedding rows"));
}

// tern-import end to end: the checkpoint loads back to the same model
static void test_import_program(void **st) {
    (void)st;
    char out[512], cmd[2600];
    snprintf(out, sizeof out, "%s/bitnet.h5", tmpdir);
    snprintf(cmd, sizeof cmd, "%s " FIX "/bitnet_packed -o %s --seq-len 12 > %s/import.log 2>&1", prog_bin, out, tmpdir);
    assert_int_equal(system(cmd), 0);
    tern_model_config c;
    assert_int_equal(tern_checkpoint_read_config(out, &c), 0);
    assert_int_equal(c.ffn_act, TERN_FFN_RELU2);
    assert_int_equal(c.sub_norms, 1);
    assert_int_equal(c.ternary, 1);
    assert_int_equal(c.seq_len, 12);
    tern_model m;
    tern_model_build_frozen(&m, &c);
    assert_true(tern_checkpoint_load(out, &c, &m.params, NULL) == 0);
    double rel = logits_vs_expected(&m, "bitnet_packed", NULL);
    assert_true(rel <= 1e-4);
    void *tok;
    size_t n;
    assert_int_equal(tern_checkpoint_read_tokenizer(out, &tok, &n), 1);
    free(tok);
    tern_model_free(&m);
    snprintf(cmd, sizeof cmd, "%s --help > /dev/null 2>&1", prog_bin);
    assert_int_equal(system(cmd), 0);
}

// A checkpoint as tern writes it today (tern-import: the current format_version, checksum header)
// -> scripts/torch_ref.py hf-export (F32) -> import again: every parameter comes back bit for bit.
// make import-demo and scripts/distill_wikitext.sh depend on hf-export reading tern's checkpoints.
// Needs /usr/bin/python3 with torch and h5py (scripts/install-deps.sh ref); otherwise a loud skip.
static void test_hf_export_round_trip(void **st) {
    (void)st;
    if (system("/usr/bin/python3 -c 'import torch, h5py' > /dev/null 2>&1") != 0) {
        tu_skip_part("/usr/bin/python3 has no torch/h5py: the hf-export round trip did not run (scripts/install-deps.sh ref)");
        return;
    }
    char ck[512], dir[512], cmd[2600];
    snprintf(ck, sizeof ck, "%s/rt.h5", tmpdir);
    snprintf(dir, sizeof dir, "%s/rt-hf", tmpdir);
    snprintf(cmd, sizeof cmd, "%s " FIX "/llama_f32 -o %s --seq-len 12 > %s/rt-import.log 2>&1", prog_bin, ck, tmpdir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 scripts/torch_ref.py hf-export %s %s --dtype F32 > %s/rt-export.log 2>&1", ck, dir, tmpdir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/rt-export.log", tmpdir);
        if (system(cmd)) {}
        fail_msg("torch_ref.py hf-export refused a checkpoint tern wrote");
    }
    tern_model_config c;
    assert_int_equal(tern_checkpoint_read_config(ck, &c), 0);
    tern_model a, b;
    tern_model_build_frozen(&a, &c);
    assert_true(tern_checkpoint_load(ck, &c, &a.params, NULL) == 0);
    tern_hf_info info;
    import_dir(dir, &b, &info);
    assert_int_equal(a.params.n, b.params.n);
    assert_int_equal(a.params.total, b.params.total);
    for (int i = 0; i < a.params.n; i++) {
        const tern_tensor *x = a.params.t[i], *y = b.params.t[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->n, y->n);
        if (memcmp(x->data, y->data, sizeof(float) * (size_t)x->n))
            fail_msg("%s differs after tern -> hf-export -> tern-import", x->name);
    }
    printf("hf-export round trip: %d parameters (%ld values) bit for bit\n", a.params.n, a.params.total);
    tern_model_free(&a);
    tern_model_free(&b);
}

// ---- hostile inputs ------------------------------------------------------------------------------

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

// a one-file safetensors with the given header text and data bytes
static void write_st(const char *path, const char *header, const void *data, size_t dn) {
    size_t hn = strlen(header);
    unsigned char *b = malloc(8 + hn + dn + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(b + 8, header, hn);
    if (dn) memcpy(b + 8 + hn, data, dn);
    write_bytes(path, b, 8 + hn + dn);
    free(b);
}

static void expect_st_error(const char *header, const void *data, size_t dn, const char *needle) {
    char p[512];
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);
    write_st(p, header, data, dn);
    tern_st *s = tern_st_open_file(p);
    if (s) fail_msg("accepted a bad file (header %s)", header);
    if (!strstr(tern_last_error(), needle)) fail_msg("error '%s' does not mention '%s'", tern_last_error(), needle);
    assert_non_null(strstr(tern_last_error(), p));
}

// float -> bfloat16 bits, round to nearest even (finite inputs), written out independently of the reader
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void test_safetensors_reader(void **st) {
    (void)st;
    float d[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
    char p[512];
    snprintf(p, sizeof p, "%s/ok.safetensors", tmpdir);
    // F32 + BF16 + F16 + U8, header with metadata and trailing spaces, tensors out of order in the buffer
    unsigned char buf[24 + 4 + 4 + 3];
    memcpy(buf + 11, d, 24);
    uint16_t bf[2] = {to_bf16(1.5f), to_bf16(-0.25f)}, h[2] = {tern_fp32_to_fp16(2.0f), tern_fp32_to_fp16(-3.0f)};
    memcpy(buf, bf, 4);
    memcpy(buf + 4, h, 4);
    buf[8] = 7; buf[9] = 8; buf[10] = 9;
    write_st(p, "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[11,35]},"
                "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},\"h\":{\"dtype\":\"F16\",\"shape\":[2,1],"
                "\"data_offsets\":[4,8]},\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}   ",
             buf, 35);
    tern_st *s = tern_st_open_file(p);
    if (!s) fail_msg("%s", tern_last_error());
    assert_int_equal(tern_st_count(s), 4);
    float out[6];
    const tern_st_tensor *t = tern_st_find(s, "w");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(tern_st_read_f32(t, out), 0);
    assert_memory_equal(out, d, 24);
    assert_int_equal(tern_st_read_f32(tern_st_find(s, "b"), out), 0);
    assert_true(out[0] == 1.5f && out[1] == -0.25f);
    assert_int_equal(tern_st_read_f32(tern_st_find(s, "h"), out), 0);
    assert_true(out[0] == 2.0f && out[1] == -3.0f);
    assert_int_equal(tern_st_read_f32(tern_st_find(s, "u"), out), -1);   // not a float
    assert_non_null(strstr(tern_last_error(), "U8"));
    assert_null(tern_st_find(s, "nope"));
    tern_st_close(s);
    // bf16 values that are not exactly halves of a float: 1 + 2^-7 and -3 * 2^-9
    uint16_t bb[2] = {0x3f81, 0xbbc0};
    char p2[512];
    snprintf(p2, sizeof p2, "%s/bf.safetensors", tmpdir);
    write_st(p2, "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", bb, 4);
    s = tern_st_open_file(p2);
    assert_non_null(s);
    assert_int_equal(tern_st_read_f32(tern_st_find(s, "b"), out), 0);
    assert_true(out[0] == 1.0f + 1.0f / 128 && out[1] == -3.0f / 512);
    tern_st_close(s);

    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", d, 8, "not valid JSON");
    expect_st_error("[1,2]", NULL, 0, "not a JSON object");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", d, 8, "outside");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8, "need 12");
    expect_st_error("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8, "unknown dtype");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 8, "shape");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],\"data_offsets\":[0,8]}}", d, 8, "overflow");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d, 8, "outside");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                    "\"data_offsets\":[4,12]}}", d, 12, "overlap");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                    "\"data_offsets\":[0,8]}}", d, 8, "JSON");   // duplicate key
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 8, "data_offsets");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", d, 8, "other than");
    expect_st_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2,3,4,5,6,7,8,9],\"data_offsets\":[0,8]}}", d, 8, "dimensions");
    expect_st_error("{\"__metadata__\":3}", NULL, 0, "__metadata__");
    // header length past the end / zero / short file
    unsigned char b8[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    snprintf(p, sizeof p, "%s/bad.safetensors", tmpdir);
    write_bytes(p, b8, 10);
    assert_null(tern_st_open_file(p));
    assert_non_null(strstr(tern_last_error(), "past the end"));
    memset(b8, 0, 8);
    write_bytes(p, b8, 10);
    assert_null(tern_st_open_file(p));
    assert_non_null(strstr(tern_last_error(), "zero"));
    write_bytes(p, b8, 5);
    assert_null(tern_st_open_file(p));
    assert_non_null(strstr(tern_last_error(), "too short"));
    assert_null(tern_st_open_file("/nonexistent/x.safetensors"));
    assert_null(tern_st_open_dir(tmpdir));   // neither model.safetensors nor an index
    assert_non_null(strstr(tern_last_error(), "model.safetensors"));
}

// copies fixture <name> to tmpdir/<name> and returns that path
static const char *copy_fixture(const char *name) {
    static char d[512];
    char cmd[1200];
    snprintf(d, sizeof d, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r " FIX "/%s '%s'", d, name, d);
    assert_int_equal(system(cmd), 0);
    return d;
}

static void expect_import_error(const char *dir, const char *needle) {
    tern_model_config c;
    tern_hf_info info;
    int rc = tern_hf_read_config(dir, 12, &c, &info);
    if (rc == 0) {
        tern_model m;
        tern_model_build_frozen(&m, &c);
        rc = tern_hf_load_weights(dir, &m, &info);
        tern_model_free(&m);
    }
    if (rc == 0) fail_msg("import of %s succeeded; expected an error mentioning '%s'", dir, needle);
    if (!strstr(tern_last_error(), needle)) fail_msg("error '%s' does not mention '%s'", tern_last_error(), needle);
}

static void replace_in_file(const char *path, const char *from, const char *to) {
    size_t n;
    char *s = tern_read_file(path, &n);
    assert_non_null(s);
    char *p = strstr(s, from);
    assert_non_null(p);
    size_t fl = strlen(from), tl = strlen(to);
    char *o = malloc(n - fl + tl + 1);
    memcpy(o, s, (size_t)(p - s));
    memcpy(o + (p - s), to, tl);
    memcpy(o + (p - s) + tl, p + fl, n - (size_t)(p - s) - fl);
    write_bytes(path, o, n - fl + tl);
    free(o);
    free(s);
}

static void test_import_errors(void **st) {
    (void)st;
    char p[700];
    // config.json edits: (text, its replacement, the error expected)
    static const char *const edits[][3] = {
        {"LlamaForCausalLM", "MistralForCausalLM", "architecture MistralForCausalLM is not supported"},
        {"\"intermediate_size\": 80", "\"intermediate_size\": 96", "shape"},   // config width != tensors
        {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act"},
        {"\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", "yarn"},
        {"\"attention_bias\": false", "\"attention_bias\": true", "bias"},
        {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", "missing tensor model.layers.2."},
        {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1", "unexpected tensor model.layers.1."},
    };
    const char *d;
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        d = copy_fixture("llama_f32");
        snprintf(p, sizeof p, "%s/config.json", d);
        replace_in_file(p, edits[i][0], edits[i][1]);
        expect_import_error(d, edits[i][2]);
    }
    d = copy_fixture("llama_f32");
    snprintf(p, sizeof p, "%s/config.json", d);
    write_bytes(p, "{\"architectures\": [\"LlamaForCausalLM\"], ", 40);
    expect_import_error(d, "not valid JSON");
    // safetensors damage inside a model directory: a truncated file
    d = copy_fixture("llama_f32");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    assert_int_equal(truncate(p, 5000), 0);
    expect_import_error(d, "model.safetensors");
    // sharded index naming a file outside the directory, and a tensor listed in the wrong shard
    d = copy_fixture("llama_bf16_sharded");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    replace_in_file(p, "\"model-00002-of-00002.safetensors\"", "\"../model-00002-of-00002.safetensors\"");
    expect_import_error(d, "does not name a file");
    d = copy_fixture("llama_bf16_sharded");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    replace_in_file(p, "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"", "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"");
    expect_import_error(d, "model.norm.weight");
    // packed BitNet: an invalid code 3, and a missing weight_scale
    d = copy_fixture("bitnet_packed");
    {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        size_t n;
        char *bytes = tern_read_file(p, &n);
        assert_non_null(bytes);
        tern_st *s = tern_st_open_file(p);
        assert_non_null(s);
        // the tensor's bytes, found by content (its first 16 bytes), get a code 3 in bits 2..3 of one byte
        const tern_st_tensor *t = tern_st_find(s, "model.layers.1.mlp.up_proj.weight");
        assert_non_null(t);
        char *hit = memmem(bytes, n, t->data, 16);
        assert_non_null(hit);
        hit[3] = (char)(hit[3] | 0x0c);
        tern_st_close(s);
        write_bytes(p, bytes, n);
        free(bytes);
    }
    expect_import_error(d, "invalid code 3");
    // a broken tokenizer.model
    d = copy_fixture("llama_f32");
    snprintf(p, sizeof p, "%s/tokenizer.model", d);
    write_bytes(p, "\x0a\xff\xff\xff\xff\x0f", 6);
    void *tb;
    size_t tn;
    const char *src;
    assert_int_equal(tern_hf_read_tokenizer(d, 272, &tb, &tn, &src), -1);
    assert_non_null(strstr(tern_last_error(), "tokenizer.model"));
}

// tokenizer.model parser: malformed and unsupported models
static void test_spm_errors(void **st) {
    (void)st;
    void *out;
    size_t n;
    const unsigned char trunc[] = {0x0a, 0x05, 0x0a, 0x03, 'a'};            // length past the end
    assert_int_equal(tern_spm_to_tokenizer(trunc, sizeof trunc, "t.model", 0, &out, &n), -1);
    assert_non_null(strstr(tern_last_error(), "t.model"));
    const unsigned char group[] = {0x0b};                                   // wire type 3 (group)
    assert_int_equal(tern_spm_to_tokenizer(group, sizeof group, "t.model", 0, &out, &n), -1);
    const unsigned char empty[] = {0x12, 0x02, 0x18, 0x02};                 // only a trainer_spec (BPE)
    assert_int_equal(tern_spm_to_tokenizer(empty, sizeof empty, "t.model", 0, &out, &n), -1);
    assert_non_null(strstr(tern_last_error(), "no pieces"));
    // a unigram model of the right layout is refused (the real file with model_type patched to 1)
    size_t fn;
    char *f = tern_read_file(FIX "/llama_f32/tokenizer.model", &fn);
    assert_non_null(f);
    char *ts = memmem(f, fn, "\x18\x02\x20", 3);   // trainer_spec: model_type = 2 followed by vocab_size
    assert_non_null(ts);
    ts[1] = 1;
    assert_int_equal(tern_spm_to_tokenizer(f, fn, "t.model", 0, &out, &n), -1);
    assert_non_null(strstr(tern_last_error(), "not BPE"));
    ts[1] = 2;
    assert_int_equal(tern_spm_to_tokenizer(f, fn, "t.model", 0, &out, &n), 0);
    free(out);
    // a byte piece out of place
    char *b = memmem(f, fn, "<0x41>", 6);
    assert_non_null(b);
    b[4] = '2';
    assert_int_equal(tern_spm_to_tokenizer(f, fn, "t.model", 0, &out, &n), -1);
    assert_non_null(strstr(tern_last_error(), "byte piece"));
    free(f);
}

static int setup(void **st) {
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tern_test_import_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(prog_bin, sizeof prog_bin, "%s/../tern-import", dirname(self));
    if (access(prog_bin, X_OK)) { fprintf(stderr, "test_import: %s not built\n", prog_bin); return 1; }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_f32),           cmocka_unit_test(test_llama_f16_untied_llama3),
        cmocka_unit_test(test_llama_bf16_sharded),  cmocka_unit_test(test_bitnet_bf16),
        cmocka_unit_test(test_bitnet_packed_equals_bf16), cmocka_unit_test(test_tokenizer_model),
        cmocka_unit_test(test_tokenizer_json),
        cmocka_unit_test(test_import_program),      cmocka_unit_test(test_hf_export_round_trip),
        cmocka_unit_test(test_safetensors_reader),
        cmocka_unit_test(test_import_errors),       cmocka_unit_test(test_spm_errors),
    };
    return cmocka_run_group_tests_name("import", tests, setup, teardown);
}
