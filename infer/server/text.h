// text.h — text helpers of tern-server: a growable byte buffer, UTF-8 repair, and stop sequences
// matched across token boundaries. Plain C (no HTTP, no JSON, no model): unit-tested and fuzzed alone.
//
// Generated text reaches clients as JSON strings, which must be valid UTF-8, while tokens are
// byte pieces: one character may span several tokens, and a model can emit byte sequences that
// are not UTF-8 at all. The engine therefore keeps the raw bytes of all generated tokens and
// releases them in pieces that end on a character boundary (srv_utf8_complete), each repaired
// (srv_utf8_repair: every byte that does not begin a well-formed sequence becomes U+FFFD).
// Stop sequences are searched in the raw bytes after every token (a match may start in earlier
// tokens: srv_stop_find) and bytes that could still turn into a match are held back
// (srv_stop_partial), so the text a client sees never contains a stop sequence or part of one.
#ifndef TERN_SERVER_TEXT_H
#define TERN_SERVER_TEXT_H
#include <stddef.h>

typedef struct {
    char *p;        // NUL-terminated for convenience (p[len] == 0 once anything was added)
    size_t len, cap;
} srv_buf;

void srv_buf_add(srv_buf *b, const void *p, size_t n);
void srv_buf_adds(srv_buf *b, const char *s);
void srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_free(srv_buf *b);

// 1 if s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF)
int srv_utf8_valid(const char *s, size_t n);
// The longest prefix of s[0..n) that does not end inside a character later bytes could complete:
// n minus the length of a trailing incomplete (but so far well-formed) multi-byte sequence.
size_t srv_utf8_complete(const char *s, size_t n);
// Append s[0..n) to out as well-formed UTF-8: each byte that does not begin a well-formed
// sequence (or a truncated one at the end) becomes U+FFFD. Returns the number of replacements.
size_t srv_utf8_repair(srv_buf *out, const char *s, size_t n);

// Stop sequences: stops[k] of lens[k] >= 1 bytes, k < n_stops.
// The smallest index i with text[i..] starting with some stop sequence, among matches that end
// after byte `from` (i + len > from); -1 if none. With from = the length before the newest token,
// this finds exactly the matches that token completed.
long srv_stop_find(const char *text, size_t n, size_t from, char *const *stops, const size_t *lens, int n_stops);
// The length of the longest suffix of text[0..n) that is a proper prefix of some stop sequence
// (the bytes to hold back until later tokens decide).
size_t srv_stop_partial(const char *text, size_t n, char *const *stops, const size_t *lens, int n_stops);

#endif
