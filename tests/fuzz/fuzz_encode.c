// fuzz_encode.c — the tokenizer's encoder on arbitrary bytes, with a tokenizer trained at start-up
// on the bundled tiny-shakespeare: the fast encoder (word split, cache, threads) equals the plain
// reference algorithm, decoding gives the bytes back, and a text cut at split_point encodes to
// the same ids as the whole text.
#include "fuzz_util.h"
#include "tokenizers/tokenizer.h"
#include "util.h"

static tern_tokenizer tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    size_t n;
    char *text = tern_read_file("data/tinyshakespeare/input.txt", &n);
    if (!text) { fprintf(stderr, "fuzz_encode: run from the repository root: %s\n", tern_last_error()); exit(1); }
    if (n > 200000) n = 200000;
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = 800;
    const char *texts[1] = {text};
    if (tern_tokenizer_train(&tok, texts, &n, 1, &o) != 0) { fprintf(stderr, "fuzz_encode: %s\n", tern_last_error()); exit(1); }
    free(text);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *s = (const char *)data;
    int bos = n > 0 && (data[0] & 1);
    int *a = NULL, *b = NULL, na = 0, nb = 0;
    FUZZ_CHECK(tern_tokenizer_encode(&tok, s, n, bos, &a, &na) == 0);
    FUZZ_CHECK(tern_tokenizer_encode_ref(&tok, s, n, bos, &b, &nb) == 0);
    FUZZ_CHECK(na == nb && memcmp(a, b, sizeof(int) * (size_t)na) == 0);
    for (int i = 0; i < na; i++) FUZZ_CHECK(a[i] >= 0 && a[i] < tok.vocab_size);
    char *out;
    size_t on;
    FUZZ_CHECK(tern_tokenizer_decode(&tok, a, (size_t)na, &out, &on) == 0);
    FUZZ_CHECK(on == n && memcmp(out, s, n) == 0);
    free(out);
    // streaming decode gives the same bytes
    char piece[TERN_TOK_MAX_PIECE + 8];
    size_t pos = 0;
    int first = 1;
    for (int i = 0; i < na; i++) {
        if (a[i] == tok.bos_id) { first = 1; continue; }
        int k = tern_tokenizer_decode_piece(&tok, a[i], first, piece, sizeof piece);
        FUZZ_CHECK(k >= 0 && pos + (size_t)k <= n && memcmp(piece, s + pos, (size_t)k) == 0);
        if (tok.types[a[i]] == TERN_PIECE_NORMAL || tok.types[a[i]] == TERN_PIECE_BYTE) first = 0;   // even if it printed nothing
        pos += (size_t)k;
    }
    FUZZ_CHECK(pos == n);
    // a cut at a split point does not change the ids
    if (n > 2) {
        size_t at = tern_tokenizer_split_point(&tok, s, n, (size_t)data[1] % n);
        FUZZ_CHECK(at <= n);
        if (at > 0 && at < n) {
            int *c = NULL, *d = NULL, nc = 0, nd = 0;
            FUZZ_CHECK(tern_tokenizer_encode_ex(&tok, s, at, bos ? TERN_ENC_BOS : 0, &c, &nc) == 0);
            FUZZ_CHECK(tern_tokenizer_encode_ex(&tok, s + at, n - at, TERN_ENC_CONTINUE, &d, &nd) == 0);
            FUZZ_CHECK(nc + nd == na && memcmp(c, a, sizeof(int) * (size_t)nc) == 0 &&
                       memcmp(d, a + nc, sizeof(int) * (size_t)nd) == 0);
            free(c);
            free(d);
        }
    }
    free(a);
    free(b);
    return 0;
}
