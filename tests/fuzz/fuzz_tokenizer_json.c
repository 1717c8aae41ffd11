// fuzz_tokenizer_json.c — libFuzzer target for the tokenizer file readers: Hugging Face's
// tokenizer.json (tokenizer_json.h) and, for inputs that start with tern's magic, the .tkz file.
// Bad input must give an error, never a crash or a leak. Accepted input must round-trip: the
// tokenizer written back (tokenizer.json, or .tkz) and read again is the same tokenizer (hash;
// tokenizer.json: except the piece types it cannot say, which read back as tern_tokenizer_json_type says),
// and it encodes and decodes a fixed text without error (details below).
#include "tokenizers/tokenizer_json.h"
#include "util.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char TEXT[] = "Hello, world! It's 2024 \xe6\x97\xa5\xe6\x9c\xac <|endoftext|> <s> \xff\x00 end";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tern_tokenizer t, u;
    int tkz = size >= 8 && !memcmp(data, "TERNTKZ", 8);
    int rc = tkz ? tern_tokenizer_from_bytes(&t, data, size, "fuzz.tkz")
                 : tern_tokenizer_from_json(&t, (const char *)data, size, NULL, 0, "fuzz.json");
    if (rc != 0) {
        if (t.pieces || !tern_last_error()[0]) __builtin_trap();
        return 0;
    }
    int *ids, n;
    if (tern_tokenizer_encode_ex(&t, TEXT, sizeof TEXT - 1, TERN_ENC_SPECIAL, &ids, &n) == 0) {
        char *d;
        size_t dl;
        if (tern_tokenizer_decode_ex(&t, ids, (size_t)n, TERN_DEC_SPECIAL, &d, &dl) != 0) __builtin_trap();
        free(d);
        free(ids);
    }
    void *b;
    size_t bn;
    tern_tokenizer_to_bytes(&t, &b, &bn);
    if (tern_tokenizer_from_bytes(&u, b, bn, "again.tkz") != 0 || u.hash != t.hash) __builtin_trap();
    tern_tokenizer_free(&u);
    free(b);
    char *js;
    size_t jn;
    if (tern_tokenizer_to_json(&t, &js, &jn) == 0) { // fails only for pieces that are not UTF-8
        char *cfg;
        size_t cn;
        if (tern_tokenizer_config_json(&t, &cfg, &cn) != 0) __builtin_trap();
        if (tern_tokenizer_from_json(&u, js, jn, cfg, cn, "again.json") != 0) __builtin_trap();
        // the same tokenizer, except what tokenizer.json cannot say: llama-kind scores (derived
        // from the merges) and the piece types it has no word for (tern_tokenizer_json_type)
        if (u.vocab_size != t.vocab_size) __builtin_trap();
        int *types = malloc((size_t)t.vocab_size * sizeof(int));
        for (int i = 0; i < t.vocab_size; i++) {
            types[i] = t.types[i];
            t.types[i] = tern_tokenizer_json_type(&t, i);
            if (u.types[i] != t.types[i]) __builtin_trap();
        }
        if (t.kind == TERN_TOK_GPT2) { // t retyped is u, byte for byte
            tern_tokenizer_to_bytes(&t, &b, &bn);
            if (tern_fnv1a64(b, bn) != u.hash) __builtin_trap();
            free(b);
        }
        memcpy(t.types, types, (size_t)t.vocab_size * sizeof(int));
        free(types);
        tern_tokenizer_free(&u);
        free(js);
        free(cfg);
    }
    tern_tokenizer_free(&t);
    return 0;
}
