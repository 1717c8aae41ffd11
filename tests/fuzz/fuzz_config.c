// fuzz_config.c — the config text parser and validation (model/config.h) on arbitrary text: parse
// and validate return cleanly (no size escapes the limits); a config that validates prints to
// text that parses back to the same config, and its memory estimate (training/memory.h) does not
// overflow.
#include "fuzz_util.h"
#include "model/config.h"
#include "training/memory.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    char *text = malloc(n + 1);
    memcpy(text, data, n);
    text[n] = 0;
    tern_config c;
    tern_config_defaults(&c);
    if (tern_config_parse(&c, text, "fuzz.cfg") == 0 && tern_config_validate(&c) == 0) {
        FUZZ_CHECK(c.model.n_layers <= TERN_MAX_LAYERS && c.model.seq_len <= TERN_MAX_SEQ_LEN && c.run.batch <= TERN_MAX_BATCH);
        FUZZ_CHECK(c.run.steps > 0 && c.run.steps <= TERN_MAX_STEPS);
        char *s1 = tern_config_to_string(&c);
        tern_config d;
        tern_config_defaults(&d);
        FUZZ_CHECK(tern_config_parse(&d, s1, "printed") == 0);
        FUZZ_CHECK(tern_config_validate(&d) == 0);
        char *s2 = tern_config_to_string(&d);
        FUZZ_CHECK(strcmp(s1, s2) == 0);
        free(s1);
        free(s2);
        tern_mem_inputs in = {1 + (int)(n % 4), (int)(n % 3), n * 1000, n, n, 1 + (int)(n % 3), 1};
        tern_mem_estimate e;
        if (tern_mem_estimate_run(&c, &in, &e) == 0) FUZZ_CHECK(e.peak >= e.params + e.grads + e.adam);
    } else {
        FUZZ_CHECK(!strchr(tern_last_error(), '\n'));
    }
    free(text);
    return 0;
}
