// fuzz_checkpoint.c — HDF5 checkpoints through tern's own open path (formats/checkpoint.h): the
// input is written to a file and read by every reader. A file with a checksum header reaches
// libhdf5 only when its checksum matches; one without is parsed by libhdf5 in a child process
// first (its crashes there are the design working, not findings). Everything tern does with what
// it reads must hold: clean errors of one line, no crash in this process.
#include "fuzz_util.h"
#include "formats/checkpoint.h"
#include "model/model.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_write_file(data, n, "ckpt");
    tern_model_config mc;
    if (tern_checkpoint_read_config(path, &mc) != 0) {
        FUZZ_CHECK(strstr(tern_last_error(), path) && !strchr(tern_last_error(), '\n'));
        return 0;
    }
    FUZZ_CHECK(tern_model_config_validate(&mc) == 0);
    tern_train_state st;
    if (tern_checkpoint_read_state(path, &st) == 1) tern_train_state_free(&st);
    void *tok;
    size_t tn;
    if (tern_checkpoint_read_tokenizer(path, &tok, &tn) == 1) free(tok);
    if (tern_model_config_nparams(&mc) <= (1L << 22)) {   // the model of a fuzzed config can be huge
        tern_model m;
        tern_model_build(&m, &mc);
        int rc = tern_checkpoint_load(path, &mc, &m.params, &st);
        if (rc == 1) tern_train_state_free(&st);
        if (rc >= 0)
            for (long i = 0; i < m.params.total; i++) FUZZ_CHECK(m.params.data[i] == m.params.data[i]);   // finite, loaded
        else
            FUZZ_CHECK(strstr(tern_last_error(), path) && !strchr(tern_last_error(), '\n'));
        tern_model_free(&m);
    }
    return 0;
}
