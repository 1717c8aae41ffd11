// tokenizer.h — tern's tokenizers behind one interface: training, encoding, decoding, and the
// versioned tokenizer file. Two kinds (libc + OpenMP only: part of the standalone runtime):
//
//   TERN_TOK_LLAMA  SentencePiece-style BPE exactly as llama.cpp's `llama` (SPM) vocab encodes
//                   (spm.c). What `tern-tokenizer train` makes by default; also read from
//                   SentencePiece-style tokenizer.json files (LLaMA 2, TinyLlama, Mistral).
//   TERN_TOK_GPT2   byte-level BPE (GPT-2, LLaMA 3, BitNet b1.58 2B4T, SmolLM, Qwen2): a regex
//                   pre-tokenizer (pretokenizer.h) splits the text into words, each word's bytes
//                   become GPT-2's byte characters, merges apply by rank (bytelevel.c). GGUF
//                   `gpt2`; tokenizer.json with a ByteLevel pre-tokenizer.
//
// Pieces, ids and types are the GGUF ones: tokens[i] as llama.cpp stores them (SPM pieces with
// ▁ for spaces and <0xHH> byte pieces; byte-level pieces in GPT-2's byte alphabet, "Ġ" for a
// space), types 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
//
// Trained llama-kind vocabularies have one fixed layout: id 0 "<unk>" (unknown), 1 "<s>"
// (control, bos), 2 "</s>" (control, eos), 3..258 "<0x00>".."<0xFF>" (byte), 259.. normal
// pieces (single characters, then merges). Trained byte-level vocabularies: 0..255 the byte
// characters in GPT-2's order, then the merges, then the family's special tokens. Loaded
// vocabularies may have any layout (validated on build).
//
// Added tokens — control, user-defined and unknown pieces — are matched in the text before
// pre-tokenization, leftmost-longest (Hugging Face's rule), honouring lstrip/rstrip: user-defined
// pieces always (as llama.cpp and HF do), control and unknown pieces only with TERN_ENC_SPECIAL
// (llama.cpp's parse_special; HF's encode always matches them). Without TERN_ENC_SPECIAL a text
// such as "<s>" or "<|endoftext|>" is ordinary text.
//
// Encoding the llama kind (llama.cpp SPM): replace ' ' by ▁, prepend one ▁ (add_space_prefix; to
// every text fragment that starts the text or follows an added token, as llama.cpp), split into
// characters by the UTF-8 lead byte (llama.cpp's rule: the high nibble of the lead byte gives the
// length, no validation, clipped at the end), then repeatedly merge the adjacent pair whose
// concatenation is a piece with the highest score (ties: leftmost), and emit each symbol as its
// piece, or as byte pieces when it is not one. Vocabularies with ▁ only as a piece's first
// character and no '\n' inside longer pieces split into independent words at ▁ and '\n'; the
// encoder then caches words and runs on several threads — with exactly the same result as the
// whole-string algorithm (tests check this against a plain reference). One deliberate difference
// from llama.cpp, for losslessness: a literal U+2581 in the input is emitted as its three byte
// pieces (llama.cpp would turn it into a space).
//
// Encoding the gpt2 kind (Hugging Face / llama.cpp BPE): normalize each text fragment to NFC
// when the tokenizer says so (nfc.h; Qwen2's tokenizer.json does, llama.cpp ignores it), then
// pre-tokenize it; per
// word: with ignore_merges, a word that is a piece is emitted whole; else its bytes become their
// byte pieces and the adjacent pair with the lowest merge rank is merged (ties: leftmost) until
// none is left. Invalid UTF-8 is pre-tokenized as U+FFFD would be and its bytes are kept as
// they are (so decoding is lossless; Hugging Face cannot take such input, llama.cpp turns it
// into U+FFFD).
//
// Decoding: normal pieces give their text (llama: ▁ -> ' '; gpt2: the bytes of the byte
// characters), byte pieces their byte, user-defined pieces their text, control/unknown/unused
// pieces nothing (their text with TERN_DEC_SPECIAL). llama kind only: the first text piece of the
// ids and the first after each bos lose one leading ' ' (the one the prefix added). So
// decode(encode(x)) == x for every byte string x (without TERN_ENC_SPECIAL; with it, for the gpt2
// kind when decoding with TERN_DEC_SPECIAL), and a token file of several texts (each encoded with
// bos) decodes to their concatenation.
//
// File format (little-endian). Version 1 (llama kind, trained layout, add_bos, no extras; the
// format tern has always written, so hashes of existing tokenizers are unchanged):
//   char magic[8] = "TERNTKZ\0"; uint32 version = 1; uint32 vocab_size; uint32 flags (bit 0:
//   add_space_prefix); uint32 reserved = 0; then per piece: uint8 type, float32 score,
//   uint16 length (1..1024), length bytes (no NUL). Nothing after the last piece.
// Version 2 (everything else):
//   char magic[8]; uint32 version = 2; uint32 vocab_size; uint32 flags (bit 0 add_space_prefix,
//   1 add_bos, 2 add_eos, 3 ignore_merges, 4 nfc); uint32 kind (0 llama, 1 gpt2); uint32 pre
//   (TERN_PRE_*); int32 bos_id, eos_id, unk_id (-1: none); uint32 n_merges; uint32 reserved = 0;
//   then per piece: uint8 type, uint8 attr (bit 0 lstrip, 1 rstrip), float32 score,
//   uint16 length, bytes; then per merge (rank order): uint32 left id, uint32 right id.
// The hash of a tokenizer is FNV-1a 64 over its file bytes.
#ifndef TERN_TOKENIZER_H
#define TERN_TOKENIZER_H
#include "tokenizers/pretokenizer.h"
#include <stddef.h>
#include <stdint.h>

// the trained llama-kind layout
#define TERN_TOK_UNK 0
#define TERN_TOK_BOS 1
#define TERN_TOK_EOS 2
#define TERN_TOK_BYTE0 3 // id of <0x00>; byte b is id 3 + b
#define TERN_TOK_FIRST_NORMAL 259
#define TERN_TOK_MIN_VOCAB 260 // controls + bytes + "▁"
#define TERN_TOK_MAX_VOCAB (1 << 24)
#define TERN_TOK_MAX_PIECE 1024

enum { TERN_TOK_LLAMA = 0, TERN_TOK_GPT2 = 1 };
enum {
    TERN_PIECE_NORMAL = 1, TERN_PIECE_UNKNOWN = 2, TERN_PIECE_CONTROL = 3, TERN_PIECE_USER = 4,
    TERN_PIECE_UNUSED = 5, TERN_PIECE_BYTE = 6
};
#define TERN_ATTR_LSTRIP 1u // an added token that swallows the whitespace before it
#define TERN_ATTR_RSTRIP 2u // ... after it

typedef struct tern_tok_priv tern_tok_priv;

typedef struct {
    int kind;          // TERN_TOK_LLAMA / TERN_TOK_GPT2
    int vocab_size;
    char **pieces;     // [vocab_size] NUL-terminated piece bytes (pieces never contain NUL)
    int *piece_len;    // [vocab_size] bytes
    float *scores;     // [vocab_size] llama kind: merge priority (higher first); gpt2 kind: all 0
    int *types;        // [vocab_size] TERN_PIECE_*
    uint8_t *attrs;    // [vocab_size] TERN_ATTR_* (added tokens)
    int bos_id, eos_id, unk_id; // -1 when the vocabulary has none
    int add_bos, add_eos;       // whether a text starts with bos / ends with eos by default
    int add_space_prefix;       // llama kind: 1 for trained tokenizers
    int pre;                    // gpt2 kind: TERN_PRE_*
    int ignore_merges;          // gpt2 kind: a word that is a piece is emitted whole
    int nfc;                    // gpt2 kind: text fragments are normalized to NFC first (Qwen2's
                                // tokenizer.json; not lossless for text that is not NFC)
    int n_merges;               // gpt2 kind
    int32_t *merges;            // [2 * n_merges] left and right piece id of each merge, by rank
    int word_split;             // llama kind: 1 when no piece has ▁ after its first byte and no
                                // longer piece has '\n' (the fast word-split encoder applies)
    uint64_t hash;              // FNV-1a 64 of the serialized file bytes
    tern_tok_priv *priv;        // lookup tables (private)
} tern_tokenizer;

// Everything that defines a tokenizer, for tern_tokenizer_build (tokenizer.json and GGUF
// readers, trainers). Arrays are copied.
typedef struct {
    int kind, vocab_size;
    const char *const *pieces;  // [vocab_size]
    const int *piece_len;       // [vocab_size] or NULL (strlen)
    const float *scores;        // or NULL (0)
    const int *types;           // [vocab_size]
    const uint8_t *attrs;       // or NULL (0)
    int bos_id, eos_id, unk_id; // -1: none
    int add_bos, add_eos, add_space_prefix, pre, ignore_merges, nfc;
    int n_merges;
    const int32_t *merge_ids;   // [2 * n_merges] piece ids, or NULL and:
    const char *const *merge_left, *const *merge_right; // piece strings (NUL-terminated)
} tern_tokenizer_spec;

// Build and validate (sizes, piece lengths, types, duplicates, byte pieces present, merges whose
// parts and concatenation are pieces, special ids in range). 0, or -1 with
// tern_error("<what>: problem"); on error t is left empty.
int tern_tokenizer_build(tern_tokenizer *t, const tern_tokenizer_spec *s, const char *what);

// Load / parse a .tkz file (versions 1 and 2). Return 0, or -1 with tern_error("<path>: problem").
int tern_tokenizer_load(tern_tokenizer *t, const char *path);
int tern_tokenizer_from_bytes(tern_tokenizer *t, const void *buf, size_t n, const char *what);
// Serialize to the file bytes (malloc'd, caller frees). Returns 0.
int tern_tokenizer_to_bytes(const tern_tokenizer *t, void **buf, size_t *n);
// Atomic write (tmp + rename). 0 / -1.
int tern_tokenizer_save(const tern_tokenizer *t, const char *path);
void tern_tokenizer_free(tern_tokenizer *t);
uint64_t tern_tokenizer_hash(const tern_tokenizer *t);
uint64_t tern_fnv1a64(const void *buf, size_t n);
const char *tern_tokenizer_kind_name(int kind); // "llama" / "gpt2" (the GGUF names)

// Piece id of exact piece bytes (as stored), or -1.
int tern_tokenizer_piece_id(const tern_tokenizer *t, const char *s, size_t len);

// Encode len bytes of text (any bytes, NUL included). *ids is malloc'd (caller frees), *n its
// length; add_bos prepends bos. Large inputs are split at word boundaries and encoded on
// omp_get_max_threads() threads (same result as one thread). Returns 0, or -1 (too many tokens,
// bos/eos asked of a vocabulary without one).
int tern_tokenizer_encode(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n);
// Flags: TERN_ENC_BOS prepends bos; TERN_ENC_EOS appends eos; TERN_ENC_CONTINUE encodes a
// continuation of a text (no space prefix), for text cut at a tern_tokenizer_split_point;
// TERN_ENC_SPECIAL matches control and unknown pieces in the text too.
#define TERN_ENC_BOS 1
#define TERN_ENC_CONTINUE 2
#define TERN_ENC_EOS 4
#define TERN_ENC_SPECIAL 8
int tern_tokenizer_encode_ex(const tern_tokenizer *t, const char *text, size_t len, int flags, int **ids, int *n);
// The first position p >= pos where the text can be cut so that encode(text[0,p)) followed by
// encode_ex(text[p,len), TERN_ENC_CONTINUE) equals encode(text) (with or without
// TERN_ENC_SPECIAL); len if none.
size_t tern_tokenizer_split_point(const tern_tokenizer *t, const char *text, size_t len, size_t pos);
// The plain whole-string algorithm, one thread, no word split, no cache: the reference the fast
// path is tested against (llama kind: llama.cpp's SPM on the whole text; gpt2 kind: every word
// through the plain merge loop). Same output as tern_tokenizer_encode.
int tern_tokenizer_encode_ref(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n);

// Decode ids to bytes (malloc'd, NUL-terminated for convenience; *len excludes the NUL).
// Returns 0, or -1 if an id is out of range (tern_error set).
#define TERN_DEC_FIRST 1   // decode_piece: the first text token of a text (see below)
#define TERN_DEC_SPECIAL 2 // control, unknown and unused pieces give their text
int tern_tokenizer_decode(const tern_tokenizer *t, const int *ids, size_t n, char **out, size_t *len);
int tern_tokenizer_decode_ex(const tern_tokenizer *t, const int *ids, size_t n, int flags, char **out, size_t *len);
// Streaming: the bytes of one token into buf (cap >= TERN_TOK_MAX_PIECE), returns their count
// (0 for control pieces, -1 for an id out of range). flags: TERN_DEC_FIRST (1) for the first text
// token of a text (the first token, or the first after bos; control tokens in between do not
// count): llama kind: drops its one leading space, as decode does; TERN_DEC_SPECIAL.
int tern_tokenizer_decode_piece(const tern_tokenizer *t, int id, int flags, char *buf, size_t cap);

// Training (deterministic: same texts and options -> byte-identical tokenizer).
typedef struct {
    int vocab_size;        // target: llama kind TERN_TOK_MIN_VOCAB.., gpt2 kind 256 + specials..
    double char_coverage;  // llama kind: fraction of character occurrences that get their own piece (0.9995)
    int max_word_chars;    // words longer than this (llama: characters; gpt2: bytes) do not take part (64)
    int verbose;           // progress lines on stderr
    int kind;              // TERN_TOK_LLAMA (default) or TERN_TOK_GPT2
    int pre;               // gpt2 kind: TERN_PRE_* (default TERN_PRE_LLAMA3)
    int nfc;               // gpt2 kind: normalize to NFC (texts and the tokenizer's encoding)
} tern_tokenizer_train_opts;
void tern_tokenizer_train_defaults(tern_tokenizer_train_opts *o);
// texts[i] of lens[i] bytes are separate texts (each gets the space prefix). If the texts have
// fewer distinct pairs than needed, the vocabulary is smaller than asked (t->vocab_size says).
// Returns 0, or -1 with tern_error (bad vocab size, empty input).
int tern_tokenizer_train(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
                         const tern_tokenizer_train_opts *o);
// The special tokens a trained byte-level vocabulary of the family gets (after the merges), and
// which of them is bos / eos, and whether bos is added by default.
typedef struct {
    int n;
    const char *const *tokens;
    int bos, eos; // index into tokens
    int add_bos;
} tern_tokenizer_specials;
void tern_tokenizer_family_specials(int pre, tern_tokenizer_specials *s);

#endif
