// rt_internal.h — declarations shared by the runtime's own files (runtime.c: state, forward,
// tokenizer; rt_load.c: building models). Not part of the runtime's interface.
#ifndef TERN_RT_INTERNAL_H
#define TERN_RT_INTERNAL_H
#include "runtime.h"

// the seven BitLinear tensors of a layer, in this order
extern const char *const rt_bitlinear_names[7];   // attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down
void rt_bl_shape(const tern_rt_config *c, int j, int *rows, int *cols);
// the GGUF tokenizer into m->vocab (has_vocab = 0 when the file has none); runtime.c
int rt_load_vocab(tern_rt_model *m);
// make sure the last error names m->path
void rt_prefix_path(const char *path);
#endif
