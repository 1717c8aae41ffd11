// hfmodel.h — Hugging Face model directories (config.json + safetensors + tokenizer) into tern.
//
// Architectures (config.json "architectures"[0]; anything else is one error line naming it):
//   LlamaForCausalLM   (LLaMA 2/3, TinyLlama, SmolLM, ...): ternary = 0, sub_norms = 0, ffn_act from
//                      hidden_act (silu), GQA, tied or untied head, rope_theta, rope_scaling llama3.
//   BitNetForCausalLM  (Microsoft's bitnet-b1.58-2B-4T): ternary = 1, sub_norms = 1, relu2; either the
//                      -bf16 master weights (latent weights, trainable) or the packed form.
// Defaults for keys config.json omits are transformers' (LlamaConfig, BitNetConfig).
//
// Tensor names -> tern parameters (per layer N, prefix model.layers.N.):
//   model.embed_tokens.weight -> token_embd.weight      model.norm.weight -> output_norm.weight
//   lm_head.weight -> output.weight (untied; ignored when tied)
//   input_layernorm -> attn_norm        self_attn.{q,k,v,o}_proj -> attn_{q,k,v,output}
//   post_attention_layernorm -> ffn_norm   mlp.{gate,up,down}_proj -> ffn_{gate,up,down}
//   self_attn.attn_sub_norm -> attn_sub_norm   mlp.ffn_sub_norm -> ffn_sub_norm  (BitNet)
// Shapes are the same ([out, in] row-major, nn.Linear's layout). Hugging Face applies RoPE with
// rotate_half: element i pairs with i + head_dim/2, which is tern's NEOX pairing, and HF's q_proj /
// k_proj rows are already in that order (transformers' LLaMA conversion permuted Meta's
// interleaved layout once, for rotate_half), so the matrices are copied as they are — no q/k
// permutation (llama.cpp's `llama` converter permutes them back only because its `llama` graph
// rotates adjacent pairs).
//
// Packed BitNet (quantization_config.quant_method "bitnet", uint8 projection weights):
//   weight [out/4, in] uint8 holds 4 ternary codes c in {0,1,2} (value c - 1) per byte; the code in
//   bits 2i..2i+1 of packed row p belongs to row i*(out/4) + p — the four codes of a byte are in four
//   different QUARTERS of the rows, not in four consecutive rows (transformers' unpack_weights). Code 3
//   is invalid. weight_scale [1] is the INVERSE of the absmean scale: W = (c - 1) / weight_scale
//   (transformers' BitLinear divides the product by it; llama.cpp's converter: "the scale is inverted").
//   tern stores latent weights W = q * (n / nnz) / weight_scale (n elements, nnz non-zero codes):
//   its absmean quantizer then gives back exactly the codes q and the scale 1 / weight_scale.
//
// Every failure is one tern_error line naming the file and the problem.
#ifndef TERN_HFMODEL_H
#define TERN_HFMODEL_H
#include <stddef.h>
#include "model/model.h"

typedef struct {
    char arch[64];          // "LlamaForCausalLM" / "BitNetForCausalLM"
    int packed;             // BitNet packed uint8 weights
    char dtype[16];         // dtype of the projection weights ("BF16", "F32", "F16", "U8")
    int n_tensors;          // tensors in the safetensors files
    int n_files;
    size_t file_bytes;
    int max_position;       // config.json max_position_embeddings
    int ignored_lm_head;    // tied model whose files also hold lm_head.weight (not used)
    double scale_max_rel;   // packed: largest |tern s_w * weight_scale - 1| over projections
} tern_hf_info;

// config.json of dir -> cfg (validated). seq_len: 0 = max_position_embeddings, else this value.
int tern_hf_read_config(const char *dir, int seq_len, tern_model_config *cfg, tern_hf_info *info);
// The weights into m (built from that cfg, e.g. tern_model_build_frozen). 0 or -1.
int tern_hf_load_weights(const char *dir, tern_model *m, tern_hf_info *info);
// The tokenizer as tern tokenizer file bytes: tokenizer.json (Hugging Face's, byte-level BPE or
// SentencePiece style, with tokenizer_config.json when present; tokenizers/tokenizer_json.h), else
// tokenizer.model (SentencePiece BPE, LLaMA-2 style). An embedding with more rows than the
// tokenizer has pieces gets unused "[PAD<id>]" pieces; fewer rows is an error. Returns 1 with
// *bytes (malloc'd) and *src ("tokenizer.json" / "tokenizer.model"), 0 when there is neither
// (*src = "none"), -1 on error.
int tern_hf_read_tokenizer(const char *dir, int vocab_size, void **bytes, size_t *n, const char **src);

#endif
