// fuzz_gguf_model.c — the runtime's model path on arbitrary GGUF files, past loading: build_model
// with every BitLinear type (TQ2_0, TQ1_0, I2_S, ternary Q8_0, F32/F16/BF16 exact or latent), every
// embedding / head type (F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K), the architectures and optional
// sub-norms; then, for a model that loads, a short prompt and two decode steps on both KV cache
// types. Properties: loading returns cleanly (a model, or -1 with one line naming the file); a
// loaded model's shapes are consistent and its logits are computed without touching memory
// outside the file (ASan) — they may be non-finite (a fuzzed scale can be huge), never a crash.
// Seeds: tests/fuzz/corpus/gguf_model/ (tiny models of each kind, tests/fuzz/make_seeds.sh).
#include "fuzz_util.h"
#include "formats/ggml_types.h"
#include "runtime.h"
#include "util.h"

static volatile float sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(data, size, "gguf_model");
    tern_rt_model m;
    if (build_model(&m, path) != 0) {
        const char *e = tern_last_error();
        FUZZ_CHECK(strstr(e, path) != NULL);
        FUZZ_CHECK(strchr(e, '\n') == NULL);
        return 0;
    }
    const tern_rt_config *c = &m.config;
    FUZZ_CHECK(c->dim > 0 && c->n_heads > 0 && c->dim % c->n_heads == 0 && c->n_heads % c->n_kv_heads == 0);
    FUZZ_CHECK(c->vocab_size > 0 && c->seq_len > 0);
    FUZZ_CHECK(tern_qmat_supported(m.weights.output_type) && tern_qmat_supported(m.weights.embd_type));
    // bound the work: a fuzzed header may claim a long context or a big model
    if ((double)m.n_ternary * 4 + (double)c->vocab_size * c->dim < 64e6 && c->seq_len >= 4) {
        for (int kv = 0; kv < 2; kv++) {
            tern_rt_state s;
            if (build_state_kv(&s, &m, 2, 4, kv ? TERN_KV_Q8 : TERN_KV_F32)) continue;
            int toks[3] = {0, c->vocab_size - 1, c->vocab_size / 2};
            const float *lg = forward(&m, &s, toks, 2, 0, 1);
            sink += lg[0] + lg[2 * c->vocab_size - 1];
            lg = forward(&m, &s, toks + 2, 1, 2, 0);
            sink += lg[c->vocab_size - 1];
            free_state(&s);
        }
    }
    free_model(&m);
    return 0;
}
