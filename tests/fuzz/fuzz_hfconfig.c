// fuzz_hfconfig.c — libFuzzer target: arbitrary bytes as a Hugging Face config.json
// (formats/hfmodel.h tern_hf_read_config: JSON, architecture, types and ranges of every key,
// rope_scaling, the resulting tern config's validation). Must never crash, hang or leak.
#include "formats/hfmodel.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/fuzz_hfconfig_%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tern_model_config c;
    tern_hf_info info;
    tern_hf_read_config(dir, 0, &c, &info);
    unlink(path);
    return 0;
}
