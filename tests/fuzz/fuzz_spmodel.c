// fuzz_spmodel.c — libFuzzer target: arbitrary bytes as a SentencePiece tokenizer.model
// (formats/spmodel.h: protobuf parsing, layout checks, conversion to tern's tokenizer file, which
// tern_tokenizer_from_bytes validates again). Must never crash, hang or leak.
#include "formats/spmodel.h"
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *out = NULL;
    size_t n = 0;
    int pad = size > 0 ? (int)(data[0] % 3) * 300 : 0;   // also exercise padding to a larger vocabulary
    if (tern_spm_to_tokenizer(data, size, "fuzz.model", pad, &out, &n) == 0) free(out);
    return 0;
}
