// fuzz_tokenizer.c — the tokenizer file parser (tokenizers/tokenizer.h, tern_tokenizer_from_bytes)
// on arbitrary bytes: it returns cleanly; a file it accepts serializes back to the same bytes,
// and encodes and decodes text losslessly, equal to the reference encoder.
#include "fuzz_util.h"
#include "tokenizers/tokenizer.h"
#include "util.h"

static const char TEXT[] = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n  All: Speak, speak! \xe2\x96\x81\xff\x00z";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    tern_tokenizer t;
    if (tern_tokenizer_from_bytes(&t, data, n, "fuzz") != 0) {
        FUZZ_CHECK(strncmp(tern_last_error(), "fuzz", 4) == 0 && !strchr(tern_last_error(), '\n'));
        return 0;
    }
    void *buf;
    size_t bn;
    FUZZ_CHECK(tern_tokenizer_to_bytes(&t, &buf, &bn) == 0);
    FUZZ_CHECK(bn == n && memcmp(buf, data, n) == 0);   // one canonical serialization
    free(buf);
    int *ids = NULL, *ref = NULL, k = 0, kr = 0;
    size_t len = sizeof TEXT - 1;
    if (tern_tokenizer_encode(&t, TEXT, len, 1, &ids, &k) == 0) {
        FUZZ_CHECK(tern_tokenizer_encode_ref(&t, TEXT, len, 1, &ref, &kr) == 0);
        FUZZ_CHECK(k == kr && memcmp(ids, ref, sizeof(int) * (size_t)k) == 0);
        char *out;
        size_t on;
        FUZZ_CHECK(tern_tokenizer_decode(&t, ids, (size_t)k, &out, &on) == 0);
        FUZZ_CHECK(on == len && memcmp(out, TEXT, len) == 0);
        free(out);
        free(ids);
        free(ref);
    }
    tern_tokenizer_free(&t);
    return 0;
}
