// fuzz_gguf.c — the GGUF reader (formats/gguf.h) and the runtime's model loader (infer/runtime.h)
// on arbitrary files: every call returns cleanly (a handle or NULL + error), every typed getter
// and every tensor's data range is safe to touch, and a model that loads also builds its
// tokenizer.
#include "fuzz_util.h"
#include "formats/gguf.h"
#include "runtime.h"
#include "tokenizers/tokenizer.h"
#include "util.h"

static volatile uint64_t sink;

static void touch_kvs(const tern_gguf *g) {
    for (int i = 0; i < tern_gguf_n_kv(g); i++) {
        const char *key = tern_gguf_kv_key(g, i);
        FUZZ_CHECK(key != NULL);
        FUZZ_CHECK(tern_gguf_find_kv(g, key) >= 0);
        uint32_t t = tern_gguf_kv_type(g, i);
        int64_t i64;
        double f64;
        float f32;
        const char *s;
        size_t len;
        if (tern_gguf_get_i64(g, key, &i64) == 0) sink += (uint64_t)i64;
        if (tern_gguf_get_f32(g, key, &f32) == 0) sink += (uint64_t)(f32 == f32);
        if (tern_gguf_get_f64(g, key, &f64) == 0) sink += (uint64_t)(f64 == f64);
        if (tern_gguf_get_str(g, key, &s, &len) == 0) { FUZZ_CHECK(s[len] == 0); sink += len; }
        if (t == TERN_GGUF_ARRAY) {
            uint32_t et = tern_gguf_kv_arr_type(g, i);
            uint64_t n = tern_gguf_kv_arr_n(g, i);
            if (et == TERN_GGUF_STRING) {
                const char *const *strs;
                const size_t *lens;
                uint64_t m;
                if (tern_gguf_get_arr_str(g, key, &strs, &lens, &m) == 0) {
                    FUZZ_CHECK(m == n);
                    for (uint64_t k = 0; k < m; k++) sink += lens[k] + (uint8_t)strs[k][lens[k]];
                }
            } else {
                const void *data;
                uint64_t m;
                if (tern_gguf_get_arr(g, key, et, &data, &m) == 0 && m) {
                    FUZZ_CHECK(m == n);
                    size_t es = tern_gguf_kv_type_size(et);
                    sink += ((const uint8_t *)data)[0] + ((const uint8_t *)data)[m * es - 1];
                }
            }
        }
    }
}

static void touch_tensors(const tern_gguf *g) {
    size_t size = tern_gguf_file_size(g);
    for (int i = 0; i < tern_gguf_n_tensors(g); i++) {
        const tern_gguf_tensor *t = tern_gguf_tensor_at(g, i);
        FUZZ_CHECK(t && t->name && t->n_dims >= 1 && t->n_dims <= TERN_GGUF_MAX_DIMS);
        FUZZ_CHECK(tern_gguf_find_tensor(g, t->name) != NULL);
        FUZZ_CHECK(t->nbytes <= size);
        if (t->nbytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write_file(data, n, "gguf");
    tern_gguf *g = tern_gguf_open(path);
    if (g) {
        touch_kvs(g);
        touch_tensors(g);
        tern_gguf_close(g);
    } else {
        FUZZ_CHECK(strstr(tern_last_error(), path) != NULL);
    }
    tern_rt_model m;
    if (build_model(&m, path) == 0) {
        tern_tokenizer tok;
        if (m.has_vocab && rt_build_tokenizer(&m, &tok) == 0) {
            int *ids = NULL, k = 0;
            if (tern_tokenizer_encode(&tok, "Hello world", 11, 1, &ids, &k) == 0) {
                for (int i = 0; i < k; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < m.config.vocab_size);
                free(ids);
            }
            tern_tokenizer_free(&tok);
        }
        free_model(&m);
    } else {
        FUZZ_CHECK(strchr(tern_last_error(), '\n') == NULL);
    }
    return 0;
}
