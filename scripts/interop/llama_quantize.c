// llama_quantize.c — llama.cpp's own model quantizer (llama_model_quantize in the libllama.so that
// node-llama-cpp ships; its npm package carries no llama-quantize program), so `make interop` can
// test tern on files made exactly as `llama-quantize in.gguf out.gguf TQ2_0` makes them.
//   llama_quantize /path/to/libllama.so in.gguf out.gguf tq2_0|tq1_0 [token_embd_type [output_type]]
// in.gguf: a float model (tern-export --type f32|f16). The types of token_embd / output default to
// llama.cpp's choices for the file type (e.g. q6_K for a tied embedding); pass a ggml type number
// to override them as llama-quantize's --token-embedding-type / --output-tensor-type do.
// The parameter struct below is llama.h's llama_model_quantize_params of the llama.cpp release
// node-llama-cpp 3.22.1 bundles (only the leading fields are set; the rest keep the library's
// defaults, and the buffer is larger than the struct in case a later release grows it).
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t nthread;
    int32_t ftype;                 // enum llama_ftype
    int32_t output_tensor_type;    // enum ggml_type (GGML_TYPE_COUNT: default)
    int32_t token_embedding_type;  // enum ggml_type (GGML_TYPE_COUNT: default)
    bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
    const void *imatrix, *kv_overrides, *tt_overrides;
    const int32_t *prune_layers;
    size_t max_buf_size;
    char spare[256];
} quant_params;

int main(int argc, char **argv) {
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: llama_quantize libllama.so in.gguf out.gguf tq2_0|tq1_0 [token_embd_type [output_type]]\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "llama_quantize: %s\n", dlerror()); return 2; }
    quant_params (*defaults)(void) = (quant_params(*)(void))dlsym(lib, "llama_model_quantize_default_params");
    uint32_t (*quantize)(const char *, const char *, const quant_params *) =
        (uint32_t(*)(const char *, const char *, const quant_params *))dlsym(lib, "llama_model_quantize");
    void (*backend_init)(void) = (void (*)(void))dlsym(lib, "llama_backend_init");
    if (!defaults || !quantize) { fprintf(stderr, "llama_quantize: llama_model_quantize not found in %s\n", argv[1]); return 2; }
    if (backend_init) backend_init();
    quant_params p = defaults();
    if (!strcmp(argv[4], "tq2_0")) p.ftype = 37;        // LLAMA_FTYPE_MOSTLY_TQ2_0
    else if (!strcmp(argv[4], "tq1_0")) p.ftype = 36;   // LLAMA_FTYPE_MOSTLY_TQ1_0
    else { fprintf(stderr, "llama_quantize: type %s: expected tq2_0 or tq1_0\n", argv[4]); return 2; }
    if (argc > 5) p.token_embedding_type = atoi(argv[5]);
    if (argc > 6) p.output_tensor_type = atoi(argv[6]);
    p.nthread = 2;
    uint32_t rc = quantize(argv[2], argv[3], &p);
    if (rc) { fprintf(stderr, "llama_quantize: llama_model_quantize failed (%u)\n", rc); return 1; }
    return 0;
}
