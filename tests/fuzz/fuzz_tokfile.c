// fuzz_tokfile.c — the token file reader (formats/tokfile.h) and the training loader on it
// (training/loader.h): open returns cleanly; an accepted file's ids are all < vocab_size, and
// the loader's batches and evaluation windows stay inside the file.
#include "fuzz_util.h"
#include "formats/tokfile.h"
#include "training/loader.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write_file(data, n, "tok");
    tern_tokfile f;
    if (tern_tokfile_open(&f, path) != 0) {
        FUZZ_CHECK(strstr(tern_last_error(), path) && !strchr(tern_last_error(), '\n'));
        return 0;
    }
    FUZZ_CHECK(f.width == 2 || f.width == 4);
    FUZZ_CHECK((size_t)f.n_tokens * (size_t)f.width + TERN_TOKFILE_HEADER == n);
    for (int64_t i = 0; i < f.n_tokens; i++) FUZZ_CHECK(tern_tokfile_get(&f, i) < f.vocab_size);
    tern_tokfile_close(&f);
    int T = n > 0 ? 1 + data[n - 1] % 8 : 4, B = 3;
    tern_loader ld;
    if (tern_loader_open(&ld, path, T, B, n) == 0) {
        int in[3 * 8], tg[3 * 8];
        for (int k = 0; k < 5; k++) {
            tern_loader_next(&ld, in, tg);
            for (int i = 0; i < B * T; i++) FUZZ_CHECK(in[i] >= 0 && in[i] < ld.tf.vocab_size && tg[i] >= 0);
        }
        int64_t ep, pos;
        tern_loader_get_pos(&ld, &ep, &pos);
        FUZZ_CHECK(tern_loader_set_pos(&ld, ep, pos) == 0);
        FUZZ_CHECK(tern_loader_set_pos(&ld, -1, 0) == -1);
        int64_t nw = tern_loader_eval_count(&ld);
        int got = tern_loader_eval_windows(&ld, nw > 1 ? nw - 1 : 0, B, in, tg);
        FUZZ_CHECK(got >= 0 && got <= B);
        tern_loader_close(&ld);
    }
    return 0;
}
