// tokenizer.h — SentencePiece-style BPE tokenizer, exactly as llama.cpp's `llama` (SPM) vocab
// tokenizes: training, encoding, decoding, and tern's versioned tokenizer file.
// libc + OpenMP only (part of the standalone runtime).
//
// Vocabulary layout (always):
//   id 0 "<unk>" (type 2 unknown), id 1 "<s>" (type 3 control, bos), id 2 "</s>" (type 3, eos),
//   ids 3..258 "<0x00>".."<0xFF>" (type 6 byte), ids 259.. normal pieces (type 1): single
//   characters, then learned merges. Spaces are spelled U+2581 "▁" inside pieces.
//
// Encoding (llama.cpp SPM): replace ' ' by ▁, prepend one ▁ (add_space_prefix), split into
// characters by the UTF-8 lead byte (llama.cpp's rule: the high nibble of the lead byte gives the
// length, no validation, clipped at the end), then repeatedly merge the adjacent pair whose
// concatenation is a piece with the highest score (ties: leftmost), and emit each symbol as its
// piece, or as byte pieces when it is not one. Trained vocabularies have ▁ only as a piece's
// first character and no '\n' inside longer pieces, so the text splits into independent words at
// ▁ and '\n'; the encoder then caches words and runs on several threads — with exactly the same
// result as the whole-string algorithm (tests check this against a plain reference).
// One deliberate difference from llama.cpp, for losslessness: a literal U+2581 character in the
// input is emitted as its three byte pieces (llama.cpp would turn it into a space).
//
// Decoding: byte pieces give their byte, normal pieces their text with ▁ -> ' ', control and
// unknown pieces nothing; the first text piece of the ids and the first after each <s> lose one
// leading ' ' (the one the prefix added). So decode(encode(x)) == x for every byte string x, and
// a token file of several texts (each encoded with bos) decodes to their concatenation.
//
// File format (little-endian), version 1:
//   char magic[8] = "TERNTKZ\0"; uint32 version = 1; uint32 vocab_size; uint32 flags (bit 0:
//   add_space_prefix); uint32 reserved = 0; then per piece: uint8 type, float32 score,
//   uint16 length (1..1024), length bytes (no NUL). Nothing after the last piece.
// The hash of a tokenizer is FNV-1a 64 over these bytes.
#ifndef TERN_TOKENIZER_H
#define TERN_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

#define TERN_TOK_UNK 0
#define TERN_TOK_BOS 1
#define TERN_TOK_EOS 2
#define TERN_TOK_BYTE0 3 // id of <0x00>; byte b is id 3 + b
#define TERN_TOK_FIRST_NORMAL 259
#define TERN_TOK_MIN_VOCAB 260 // controls + bytes + "▁"
#define TERN_TOK_MAX_VOCAB (1 << 24)
#define TERN_TOK_MAX_PIECE 1024

enum { TERN_PIECE_NORMAL = 1, TERN_PIECE_UNKNOWN = 2, TERN_PIECE_CONTROL = 3, TERN_PIECE_BYTE = 6 };

typedef struct {
    int vocab_size;
    char **pieces;     // [vocab_size] NUL-terminated piece bytes (pieces never contain NUL)
    int *piece_len;    // [vocab_size] bytes
    float *scores;     // [vocab_size]
    int *types;        // [vocab_size] TERN_PIECE_*
    int bos_id, eos_id, unk_id; // 1, 2, 0
    int add_space_prefix;       // 1 for trained tokenizers
    uint64_t hash;              // FNV-1a 64 of the serialized file bytes
    // private
    int word_split;    // 1 when no piece has ▁ after its first byte and no longer piece has '\n'
    int *map;          // [map_cap] open-addressing piece-bytes -> id, -1 empty
    int map_cap;
    char *blob;        // piece storage
} tern_tokenizer;

// Load / parse (validated fully: sizes, counts, piece lengths, types, duplicates, required
// control and byte pieces). Return 0, or -1 with tern_error("<path or what>: problem").
int tern_tokenizer_load(tern_tokenizer *t, const char *path);
int tern_tokenizer_from_bytes(tern_tokenizer *t, const void *buf, size_t n, const char *what);
// Serialize to the file bytes (malloc'd, caller frees). Returns 0.
int tern_tokenizer_to_bytes(const tern_tokenizer *t, void **buf, size_t *n);
// Atomic write (tmp + rename). 0 / -1.
int tern_tokenizer_save(const tern_tokenizer *t, const char *path);
void tern_tokenizer_free(tern_tokenizer *t);
uint64_t tern_tokenizer_hash(const tern_tokenizer *t);
uint64_t tern_fnv1a64(const void *buf, size_t n);

// Piece id of exact bytes, or -1.
int tern_tokenizer_piece_id(const tern_tokenizer *t, const char *s, size_t len);

// Encode len bytes of text (any bytes, NUL included). *ids is malloc'd (caller frees), *n its
// length; add_bos prepends <s>. Large inputs are split at word boundaries and encoded on
// omp_get_max_threads() threads (same result as one thread). Returns 0, or -1 (too many tokens).
int tern_tokenizer_encode(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n);
// Flags: TERN_ENC_BOS prepends <s>; TERN_ENC_CONTINUE encodes a continuation of a text (no
// space prefix), for text cut at a tern_tokenizer_split_point.
#define TERN_ENC_BOS 1
#define TERN_ENC_CONTINUE 2
int tern_tokenizer_encode_ex(const tern_tokenizer *t, const char *text, size_t len, int flags, int **ids, int *n);
// The first position p >= pos where the text can be cut so that encode(text[0,p)) followed by
// encode_ex(text[p,len), TERN_ENC_CONTINUE) equals encode(text); len if none.
size_t tern_tokenizer_split_point(const tern_tokenizer *t, const char *text, size_t len, size_t pos);
// The plain whole-string algorithm (llama.cpp's), one thread, no word split, no cache: the
// reference the fast path is tested against. Same output as tern_tokenizer_encode.
int tern_tokenizer_encode_ref(const tern_tokenizer *t, const char *text, size_t len, int add_bos, int **ids, int *n);

// Decode ids to bytes (malloc'd, NUL-terminated for convenience; *len excludes the NUL).
// Returns 0, or -1 if an id is out of range (tern_error set).
int tern_tokenizer_decode(const tern_tokenizer *t, const int *ids, size_t n, char **out, size_t *len);
// Streaming: the bytes of one token into buf (cap >= TERN_TOK_MAX_PIECE), returns their count
// (0 for control pieces, -1 for an id out of range). first: 1 for the first text token of a
// text (the first token, or the first after <s>; control tokens in between do not count): drops
// its one leading space, as decode does.
int tern_tokenizer_decode_piece(const tern_tokenizer *t, int id, int first, char *buf, size_t cap);

// Training (deterministic: same texts and options -> byte-identical tokenizer).
typedef struct {
    int vocab_size;        // target, TERN_TOK_MIN_VOCAB .. TERN_TOK_MAX_VOCAB
    double char_coverage;  // fraction of character occurrences that get their own piece (0.9995)
    int max_word_chars;    // words longer than this (in characters) do not take part (64)
    int verbose;           // progress lines on stderr
} tern_tokenizer_train_opts;
void tern_tokenizer_train_defaults(tern_tokenizer_train_opts *o);
// texts[i] of lens[i] bytes are separate texts (each gets the space prefix). If the texts have
// fewer distinct pairs than needed, the vocabulary is smaller than asked (t->vocab_size says).
// Returns 0, or -1 with tern_error (bad vocab size, empty input).
int tern_tokenizer_train(tern_tokenizer *t, const char *const *texts, const size_t *lens, int n_texts,
                         const tern_tokenizer_train_opts *o);

#endif
