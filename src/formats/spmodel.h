// spmodel.h — SentencePiece `tokenizer.model` (protobuf ModelProto) -> tern's `llama` tokenizer.
//
// The file is a serialized sentencepiece.ModelProto (proto2, google/sentencepiece
// src/sentencepiece_model.proto):
//   ModelProto     1: repeated SentencePiece pieces   2: TrainerSpec   3: NormalizerSpec
//   SentencePiece  1: string piece   2: float score   3: enum type (1 normal, 2 unknown, 3 control,
//                  4 user defined, 5 unused, 6 byte; default 1)
//   TrainerSpec    3: enum model_type (1 unigram, 2 BPE, ...)   35: bool byte_fallback
//                  40..42: int32 unk_id, bos_id, eos_id
//   NormalizerSpec 3: bool add_dummy_prefix (default true)   4: bool remove_extra_whitespaces (default true)
// Fields not listed are skipped by wire type (varint, 64-bit, length-delimited, 32-bit); groups
// and malformed varints/lengths are errors.
//
// tern's `llama` kind (tokenizers/tokenizer.h) has a fixed layout, which LLaMA-2-style models
// (LLaMA 2, TinyLlama, Mistral v0.1, ...) share: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> at 3..258.
// The reader requires a BPE model with that layout (one clear error otherwise), maps unused pieces
// to control pieces, and pads the vocabulary with control pieces "[PAD<id>]" up to pad_to (the
// model's embedding rows) as llama.cpp's converter does. The result is tern's tokenizer file
// bytes (format version 1), validated by tern_tokenizer_from_bytes.
#ifndef TERN_SPMODEL_H
#define TERN_SPMODEL_H
#include <stddef.h>

// buf[n]: the tokenizer.model bytes; what names it in errors. pad_to: 0 or the vocabulary size to
// reach. 0 and *out (malloc'd, caller frees) / *out_n, or -1 + tern_error("what: problem").
int tern_spm_to_tokenizer(const void *buf, size_t n, const char *what, int pad_to, void **out, size_t *out_n);

#endif
