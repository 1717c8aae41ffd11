// fuzz_safetensors.c — libFuzzer target: arbitrary bytes as a .safetensors file
// (formats/safetensors.h: header length, JSON, entries, offsets, overlaps), then every tensor read
// as floats when it is a float type. Must never crash, hang or leak; errors are fine.
#include "formats/safetensors.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_safetensors_%d.st", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tern_st *s = tern_st_open_file(path);
    if (s) {
        for (int i = 0; i < tern_st_count(s); i++) {
            const tern_st_tensor *t = tern_st_get(s, i);
            if (t->numel > (1 << 22)) continue;
            float *out = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
            if (out) tern_st_read_f32(t, out);
            free(out);
        }
        tern_st_close(s);
    }
    unlink(path);
    return 0;
}
