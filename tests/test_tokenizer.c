// test_tokenizer.c — BPE tokenizer: merges worked out by hand, llama.cpp's algorithm (a plain
// O(n^2) reference here) against the fast word-cached multi-threaded encoder, lossless round
// trips on random bytes and every bundled text, determinism, and every bad-input case of the
// tokenizer file format.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "tokenizers/tokenizer.h"
#include "util.h"
#include "testutil.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARK "\xe2\x96\x81"

static char *slurp(const char *path, size_t *n) {
    char *s = tern_read_file(path, n);
    if (!s) fail_msg("cannot read %s: %s", path, tern_last_error());
    return s;
}

static void train_on(tern_tokenizer *t, const char *text, size_t len, int vocab) {
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = vocab;
    const char *texts[1] = {text};
    assert_int_equal(tern_tokenizer_train(t, texts, &len, 1, &o), 0);
}

// llama.cpp's SPM algorithm written the plain way: split by lead byte, then repeatedly merge the
// adjacent pair whose concatenation is a piece with the highest score, leftmost on ties.
static int *ref_encode(const tern_tokenizer *t, const char *raw, size_t len, int *n_out) {
    // escape + prefix; literal U+2581 in the input is split out as bytes (tern's rule)
    int *out = malloc((3 * len + 8) * sizeof(int));
    int n = 0;
    if (len == 0) { *n_out = 0; return out; }
    size_t p = 0;
    int prefix = 1;
    char *e = malloc(3 * len + 3);
    int *st = malloc((3 * len + 3) * sizeof(int)), *ln = malloc((3 * len + 3) * sizeof(int));
    for (;;) {
        const char *q = memmem(raw + p, len - p, MARK, 3);
        size_t end = q ? (size_t)(q - raw) : len;
        size_t m = 0;
        if (prefix) { memcpy(e, MARK, 3); m = 3; }
        for (size_t i = p; i < end; i++) {
            if (raw[i] == ' ') { memcpy(e + m, MARK, 3); m += 3; }
            else e[m++] = raw[i];
        }
        int ns = 0;
        for (size_t o = 0; o < m;) {
            unsigned c = (unsigned char)e[o];
            size_t L = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            if (L > m - o) L = m - o;
            for (size_t k = 1; k < L; k++) // never into an escaped space
                if (o + k + 2 < m && !memcmp(e + o + k, MARK, 3)) { L = k; break; }
            st[ns] = (int)o; ln[ns] = (int)L; ns++;
            o += L;
        }
        for (;;) {
            int best = -1;
            float bs = 0;
            for (int i = 0; i + 1 < ns; i++) {
                int id = tern_tokenizer_piece_id(t, e + st[i], (size_t)(ln[i] + ln[i + 1]));
                if (id >= 0 && (best < 0 || t->scores[id] > bs)) { best = i; bs = t->scores[id]; }
            }
            if (best < 0) break;
            ln[best] += ln[best + 1];
            memmove(st + best + 1, st + best + 2, (size_t)(ns - best - 2) * sizeof(int));
            memmove(ln + best + 1, ln + best + 2, (size_t)(ns - best - 2) * sizeof(int));
            ns--;
        }
        for (int i = 0; i < ns; i++) {
            int id = tern_tokenizer_piece_id(t, e + st[i], (size_t)ln[i]);
            if (id >= 0) out[n++] = id;
            else for (int k = 0; k < ln[i]; k++) out[n++] = TERN_TOK_BYTE0 + (unsigned char)e[st[i] + k];
        }
        if (!q) break;
        for (int k = 0; k < 3; k++) out[n++] = TERN_TOK_BYTE0 + (unsigned char)MARK[k];
        p = end + 3;
        prefix = 0;
    }
    free(e); free(st); free(ln);
    *n_out = n;
    return out;
}

static void check_ids(const int *a, int na, const int *b, int nb, const char *what) {
    if (na != nb) fail_msg("%s: %d vs %d tokens", what, na, nb);
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) fail_msg("%s: token %d differs: %d vs %d", what, i, a[i], b[i]);
}

// fast encoder == whole-string heap encoder (== plain reference when len is small); round trip
static void check_text(const tern_tokenizer *t, const char *s, size_t len, int with_plain) {
    int *a, na, *b, nb;
    assert_int_equal(tern_tokenizer_encode(t, s, len, 0, &a, &na), 0);
    assert_int_equal(tern_tokenizer_encode_ref(t, s, len, 0, &b, &nb), 0);
    check_ids(a, na, b, nb, "encode vs encode_ref");
    if (with_plain) {
        int nc, *c = ref_encode(t, s, len, &nc);
        check_ids(a, na, c, nc, "encode vs plain reference");
        free(c);
    }
    char *d;
    size_t dl;
    assert_int_equal(tern_tokenizer_decode(t, a, (size_t)na, &d, &dl), 0);
    if (dl != len || memcmp(d, s, len) != 0) fail_msg("round trip failed (%zu bytes in, %zu out)", len, dl);
    free(d);
    // with bos in front: <s> then the same ids, and the same text back
    int *c, nc;
    assert_int_equal(tern_tokenizer_encode(t, s, len, 1, &c, &nc), 0);
    assert_int_equal(nc, na + 1);
    assert_int_equal(c[0], TERN_TOK_BOS);
    check_ids(c + 1, nc - 1, a, na, "encode with bos");
    assert_int_equal(tern_tokenizer_decode(t, c, (size_t)nc, &d, &dl), 0);
    if (dl != len || memcmp(d, s, len) != 0) fail_msg("round trip with bos failed (%zu bytes in, %zu out)", len, dl);
    free(d);
    free(c);
    free(a);
    free(b);
}

// ---------------------------------------------------------------------------------------------

static void test_hand_merges(void **st) {
    (void)st;
    // "▁ab▁ab▁ab▁abc": words ▁ab x3, ▁abc x1. Characters by count then bytes: a, b, ▁ (4 each), c.
    // Pairs: "▁a" 4, "ab" 4 (tie: "ab" < "▁a" bytewise) -> ab; then "▁ab" 4 -> ▁ab; then "▁abc" 1.
    const char *text = "ab ab ab abc";
    tern_tokenizer t;
    train_on(&t, text, strlen(text), 300); // asks more than the text has pairs for
    assert_int_equal(t.vocab_size, 266);
    const char *want[7] = {"a", "b", MARK, "c", "ab", MARK "ab", MARK "abc"};
    const float score[7] = {0, 0, 0, 0, -1, -2, -3};
    for (int i = 0; i < 7; i++) {
        assert_string_equal(t.pieces[259 + i], want[i]);
        assert_true(t.scores[259 + i] == score[i]);
        assert_int_equal(t.types[259 + i], TERN_PIECE_NORMAL);
    }
    assert_string_equal(t.pieces[0], "<unk>");
    assert_string_equal(t.pieces[1], "<s>");
    assert_string_equal(t.pieces[2], "</s>");
    assert_string_equal(t.pieces[3 + 0x0A], "<0x0A>");
    assert_string_equal(t.pieces[3 + 0xFF], "<0xFF>");
    struct { const char *in; int n; int ids[6]; } cases[] = {
        {"ab abc", 2, {264, 265}},
        {"abc", 1, {265}},
        {"cab", 3, {261, 262, 263}},             // ▁ c ab: "▁c", "cab" are not pieces
        {"x", 2, {261, 3 + 'x'}},                // unknown character -> byte piece
        {"a\nb", 4, {261, 259, 3 + '\n', 260}}, // "▁a" is not a piece; newline is a byte
        {" ab", 2, {261, 264}},                  // "▁▁ab": leading space kept
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int *ids, n;
        assert_int_equal(tern_tokenizer_encode(&t, cases[k].in, strlen(cases[k].in), 0, &ids, &n), 0);
        check_ids(ids, n, cases[k].ids, cases[k].n, cases[k].in);
        free(ids);
        check_text(&t, cases[k].in, strlen(cases[k].in), 1);
    }
    int *ids, n;
    assert_int_equal(tern_tokenizer_encode(&t, "ab", 2, 1, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], TERN_TOK_BOS);
    assert_int_equal(ids[1], 264);
    free(ids);
    assert_int_equal(tern_tokenizer_encode(&t, "", 0, 0, &ids, &n), 0); // empty text: no tokens
    assert_int_equal(n, 0);
    free(ids);
    tern_tokenizer_free(&t);
}

// serialized tokenizer with controls, bytes and the given normal pieces / scores
static void *make_file(int nn, const char **pieces, const float *scores, size_t *size) {
    size_t cap = 24 + 300 * 16 + 1024, o = 24;
    unsigned char *b = calloc(1, cap);
    memcpy(b, "TERNTKZ\0", 8);
    uint32_t h[4] = {1, (uint32_t)(259 + nn), 1, 0};
    memcpy(b + 8, h, 16);
    for (int i = 0; i < 259 + nn; i++) {
        char tmp[16];
        const char *p;
        float sc = 0;
        int ty;
        if (i < 3) { p = i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>"; ty = i == 0 ? 2 : 3; }
        else if (i < 259) { snprintf(tmp, sizeof tmp, "<0x%02X>", i - 3); p = tmp; ty = 6; }
        else { p = pieces[i - 259]; sc = scores[i - 259]; ty = 1; }
        uint16_t len = (uint16_t)strlen(p);
        b[o] = (unsigned char)ty;
        memcpy(b + o + 1, &sc, 4);
        memcpy(b + o + 5, &len, 2);
        memcpy(b + o + 7, p, len);
        o += 7 + len;
    }
    *size = o;
    return b;
}

static void test_priority_and_ties(void **st) {
    (void)st;
    // "aa" beats "aaa" beats "▁a"; "aaaa" -> ▁ a a a a -> ▁ [aa] a a (leftmost) -> ▁ aa aa
    const char *p[5] = {MARK, "a", "aa", "aaa", MARK "a"};
    const float s[5] = {0, 0, -1, -2, -3};
    size_t n;
    void *buf = make_file(5, p, s, &n);
    tern_tokenizer t;
    assert_int_equal(tern_tokenizer_from_bytes(&t, buf, n, "mem"), 0);
    int *ids, k;
    assert_int_equal(tern_tokenizer_encode(&t, "aaaa", 4, 0, &ids, &k), 0);
    int want[3] = {259, 261, 261};
    check_ids(ids, k, want, 3, "aaaa");
    free(ids);
    // "aaa" -> ▁ [aa] a -> ▁ [aaa] (aaa beats ▁aa? "▁aa" is not a piece) 
    assert_int_equal(tern_tokenizer_encode(&t, "aaa", 3, 0, &ids, &k), 0);
    int want3[2] = {259, 262};
    check_ids(ids, k, want3, 2, "aaa");
    free(ids);
    // "a" -> ▁ a -> [▁a]
    assert_int_equal(tern_tokenizer_encode(&t, "a", 1, 0, &ids, &k), 0);
    int want1[1] = {263};
    check_ids(ids, k, want1, 1, "a");
    free(ids);
    char text[200];
    for (int i = 0; i < 199; i++) text[i] = "a a"[i % 3 == 0 ? 1 : 0];
    check_text(&t, text, 199, 1);
    tern_tokenizer_free(&t);
    free(buf);
}

// A vocabulary built so that equal-score merges compete: "ab", "bc", "ca", "▁x" share one score,
// so which pair merges first decides the result ("abc" -> ab c leftmost, a bc rightmost). llama.cpp merges the leftmost of equal-score pairs; the plain reference above does
// the same by its strict '>' scan, and both fast paths must agree with it on random texts.
static void test_equal_score_ties(void **st) {
    (void)st;
    const char *p[9] = {MARK, "a", "b", "c", "x", "ab", "bc", "ca", MARK "x"};
    const float s[9] = {0, 0, 0, 0, 0, -1, -1, -1, -1};
    size_t n;
    void *buf = make_file(9, p, s, &n);
    tern_tokenizer t;
    assert_int_equal(tern_tokenizer_from_bytes(&t, buf, n, "mem"), 0);
    assert_true(t.word_split);
    // worked by hand; ids 259 ▁, 260 a, 261 b, 262 c, 263 x, 264 ab, 265 bc, 266 ca, 267 ▁x.
    // No longer pieces: the first of two overlapping equal-score pairs decides (rightmost-first
    // would give the ids in the comments).
    struct { const char *in; int n; int ids[8]; } cases[] = {
        {"abc", 3, {259, 264, 262}},           // ▁ [ab] c      (rightmost: ▁ a [bc])
        {"xbca", 3, {267, 265, 260}},          // [▁x] [bc] a   (rightmost: [▁x] b [ca])
        {"cabca", 4, {259, 266, 265, 260}},    // ▁ [ca] [bc] a (rightmost: ▁ c [ab] [ca])
        {" abc", 4, {259, 259, 264, 262}},     // ▁ ▁ [ab] c
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int *ids, m;
        assert_int_equal(tern_tokenizer_encode(&t, cases[k].in, strlen(cases[k].in), 0, &ids, &m), 0);
        check_ids(ids, m, cases[k].ids, cases[k].n, cases[k].in);
        free(ids);
        check_text(&t, cases[k].in, strlen(cases[k].in), 1);
    }
    // random texts over "abcx " (words repeat, so the word cache is used), against the plain reference
    char text[400];
    uint64_t r = 77;
    for (int k = 0; k < 300; k++) {
        size_t len = 1 + (size_t)(k * 13 % 397);
        for (size_t i = 0; i < len; i++) {
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            text[i] = "abcabx c"[r % 8];
        }
        check_text(&t, text, len, 1);
    }
    tern_tokenizer_free(&t);
    free(buf);
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// random bytes biased towards the awkward ones: spaces, newlines, NUL, tabs, ▁ bytes, UTF-8 leads
static void random_text(char *s, size_t n, uint64_t seed, int mode) {
    uint64_t r = seed * 2654435761u + 1;
    static const char special[] = {' ', ' ', '\n', 0, '\t', (char)0xE2, (char)0x96, (char)0x81, (char)0xC3, (char)0xA9,
                                   (char)0xF0, (char)0x9F, 'e', 't', 'a', 'h'};
    for (size_t i = 0; i < n; i++) {
        uint64_t x = rnd(&r);
        s[i] = mode == 0 ? (char)(x & 0xff) : special[x % sizeof special];
    }
}

static const char *g_corpus_path = "data/tinyshakespeare/input.txt";

static void test_random_round_trips(void **st) {
    (void)st;
    size_t n;
    char *corpus = slurp(g_corpus_path, &n);
    tern_tokenizer t;
    train_on(&t, corpus, 200000, 600);
    assert_true(t.word_split);
    char buf[3000];
    for (int k = 0; k < 200; k++) {
        size_t len = (size_t)(k * 37 % 400) + 1;
        random_text(buf, len, (uint64_t)k + 1, k % 2);
        check_text(&t, buf, len, 1);
    }
    // slices of real text, against the plain reference
    for (int k = 0; k < 40; k++) {
        size_t off = (size_t)k * 24611 % (n - 3000), len = 200 + (size_t)k * 31;
        check_text(&t, corpus + off, len, 1);
    }
    // a literal ▁ in the input survives (emitted as bytes)
    const char *lit = "a" MARK "b " MARK MARK " c" MARK;
    check_text(&t, lit, strlen(lit), 1);
    check_text(&t, MARK "x", 4, 1);
    check_text(&t, "\xC3 \xE2 \xF0 x\xE2\x96 y \xE2\x96", 14, 1); // invalid UTF-8 right before spaces
    // several texts, each with bos, decode to their concatenation
    {
        int *i1, n1, *i2, n2;
        assert_int_equal(tern_tokenizer_encode(&t, " one\n", 5, 1, &i1, &n1), 0);
        assert_int_equal(tern_tokenizer_encode(&t, "  two", 5, 1, &i2, &n2), 0);
        i1 = realloc(i1, (size_t)(n1 + n2) * sizeof(int));
        memcpy(i1 + n1, i2, (size_t)n2 * sizeof(int));
        char *d;
        size_t dl;
        assert_int_equal(tern_tokenizer_decode(&t, i1, (size_t)(n1 + n2), &d, &dl), 0);
        assert_int_equal(dl, 10);
        assert_memory_equal(d, " one\n  two", 10);
        free(d); free(i1); free(i2);
    }
    // long runs of spaces, newlines, NUL
    memset(buf, ' ', 2500);
    check_text(&t, buf, 2500, 1);
    memset(buf, '\n', 2500);
    check_text(&t, buf, 2500, 1);
    memset(buf, 0, 2500);
    check_text(&t, buf, 2500, 1);
    free(corpus);
    tern_tokenizer_free(&t);
}

// every bundled text and the benchmark texts (slices), also multi-chunk / multi-thread
static void test_bundled_round_trips(void **st) {
    (void)st;
    size_t n;
    char *corpus = slurp(g_corpus_path, &n);
    tern_tokenizer t;
    train_on(&t, corpus, 500000, 1024);
    const char *files[] = {"data/tinyshakespeare/input.txt", "../shared/data/wikitext-2/wiki.valid.tokens",
                           "../shared/data/tinystories-subset/tinystories_val_head.txt",
                           "../shared/data/wikitext-2-raw/wiki.test.raw"};
    size_t tot = 0;
    char *all = NULL;
    for (int f = 0; f < 4; f++) {
        size_t m;
        char *s = tern_read_file(files[f], &m);
        if (!s) {
            if (f == 0) fail_msg("%s missing", files[f]);
            tu_skip_part("optional corpus %s not present: round trip not run on it", files[f]);
            continue;
        }
        if (m > 700000) m = 700000; // keep the test quick under ASan
        check_text(&t, s, m, 0);
        all = realloc(all, tot + m);
        memcpy(all + tot, s, m);
        tot += m;
        free(s);
    }
    // > 2 MB: several 1 MB chunks (the bundled corpus again when the optional corpora are absent):
    // chunking does not change the ids, and 1 thread and 2 threads give the same ids
    while (tot < 2500000) {
        all = realloc(all, tot + n);
        memcpy(all + tot, corpus, n);
        tot += n;
    }
    {   // 1.8 MB = two chunks, cut near 1 MiB; each half of a split at 0.9 MB is one chunk, encoded
        // without chunking (that path is checked against the whole-string reference above)
        const size_t L = 1800000;
        size_t p = tern_tokenizer_split_point(&t, all, L, 900000);
        // the boundary at or after 900000 (a space right at 900000 is one)
        if (!(p >= 900000 && p < 1000000)) fail_msg("split point %zu of %zu not in [900000, 1000000)", p, L);
        int *c, nc, *h, nh, *tl, nt;
        assert_int_equal(tern_tokenizer_encode(&t, all, L, 0, &c, &nc), 0);
        assert_int_equal(tern_tokenizer_encode(&t, all, p, 0, &h, &nh), 0);
        assert_int_equal(tern_tokenizer_encode_ex(&t, all + p, L - p, TERN_ENC_CONTINUE, &tl, &nt), 0);
        assert_int_equal(nc, nh + nt);
        check_ids(c, nh, h, nh, "two chunks vs one (head)");
        check_ids(c + nh, nt, tl, nt, "two chunks vs one (tail)");
        free(c); free(h); free(tl);
    }
    int *a, na, *b, nb;
    omp_set_num_threads(1);
    assert_int_equal(tern_tokenizer_encode(&t, all, tot, 1, &a, &na), 0);
    omp_set_num_threads(2);
    assert_int_equal(tern_tokenizer_encode(&t, all, tot, 1, &b, &nb), 0);
    check_ids(a, na, b, nb, "1 vs 2 threads");
    // split points: encode(head) + encode_ex(tail, CONTINUE) == encode(all)
    size_t cut = tern_tokenizer_split_point(&t, all, tot, tot / 3);
    assert_true(cut < tot);
    int *h, nh, *tl, nt;
    assert_int_equal(tern_tokenizer_encode(&t, all, cut, 1, &h, &nh), 0);
    assert_int_equal(tern_tokenizer_encode_ex(&t, all + cut, tot - cut, TERN_ENC_CONTINUE, &tl, &nt), 0);
    int *cat = malloc(((size_t)nh + (size_t)nt) * sizeof(int));
    memcpy(cat, h, (size_t)nh * sizeof(int));
    memcpy(cat + nh, tl, (size_t)nt * sizeof(int));
    check_ids(cat, nh + nt, a, na, "split point");
    char *d;
    size_t dl;
    assert_int_equal(tern_tokenizer_decode(&t, a, (size_t)na, &d, &dl), 0); // bos decodes to nothing
    assert_true(dl == tot && memcmp(d, all, tot) == 0);
    print_message("%zu bytes -> %d tokens (%.2f bytes/token, vocab 1024)\n", tot, na, (double)tot / na);
    free(d); free(a); free(b); free(h); free(tl); free(cat); free(all); free(corpus);
    tern_tokenizer_free(&t);
}

static void test_determinism(void **st) {
    (void)st;
    size_t n;
    char *corpus = slurp(g_corpus_path, &n);
    tern_tokenizer a, b;
    train_on(&a, corpus, 300000, 800);
    train_on(&b, corpus, 300000, 800);
    void *ba, *bb;
    size_t na, nb;
    tern_tokenizer_to_bytes(&a, &ba, &na);
    tern_tokenizer_to_bytes(&b, &bb, &nb);
    assert_true(na == nb && memcmp(ba, bb, na) == 0);
    assert_true(a.hash == b.hash && a.hash == tern_fnv1a64(ba, na));
    // save + load gives the same bytes and hash; a different corpus gives a different hash
    assert_int_equal(tern_tokenizer_save(&a, "build/test_tok_det.tkz"), 0);
    tern_tokenizer c;
    assert_int_equal(tern_tokenizer_load(&c, "build/test_tok_det.tkz"), 0);
    assert_true(c.hash == a.hash && c.vocab_size == 800);
    tern_tokenizer d;
    train_on(&d, corpus + 300000, 300000, 800);
    assert_true(d.hash != a.hash);
    remove("build/test_tok_det.tkz");
    // no piece has ▁ after its first byte (so pieces never span two words)
    for (int i = 259; i < a.vocab_size; i++) {
        const char *m = memmem(a.pieces[i] + 1, (size_t)a.piece_len[i] - 1, MARK, 3);
        assert_null(m);
    }
    free(ba); free(bb); free(corpus);
    tern_tokenizer_free(&a); tern_tokenizer_free(&b); tern_tokenizer_free(&c); tern_tokenizer_free(&d);
}

// text full of "<s>", "</s>", "<0x41>", "<unk>": never becomes control / byte pieces
static void test_reserved_texts(void **st) {
    (void)st;
    char text[20000];
    size_t o = 0;
    while (o < sizeof text - 40) o += (size_t)sprintf(text + o, "<s>hi</s> <0x41> <unk> s> <0 ");
    tern_tokenizer t;
    train_on(&t, text, o, 400);
    int *ids, n;
    assert_int_equal(tern_tokenizer_encode(&t, text, o, 0, &ids, &n), 0);
    for (int i = 0; i < n; i++) assert_true(ids[i] >= 3);
    for (int i = 0; i < n; i++) assert_true(t.types[ids[i]] != TERN_PIECE_CONTROL);
    free(ids);
    check_text(&t, text, o, 1);
    tern_tokenizer_free(&t);
}

static void expect_bad(const void *buf, size_t n, const char *needle) {
    tern_tokenizer t;
    int rc = tern_tokenizer_from_bytes(&t, buf, n, "bad.tkz");
    if (rc == 0) fail_msg("accepted a bad tokenizer (expected '%s')", needle);
    const char *e = tern_last_error();
    if (strncmp(e, "bad.tkz: ", 9) != 0 || !strstr(e, needle)) fail_msg("error '%s' lacks '%s'", e, needle);
    assert_null(t.pieces);
}

static void test_bad_files(void **st) {
    (void)st;
    const char *p[3] = {MARK, "a", "b"};
    const float s[3] = {0, 0, 0};
    size_t n;
    unsigned char *good = make_file(3, p, s, &n), *b = malloc(n + 16);
    tern_tokenizer t;
    assert_int_equal(tern_tokenizer_from_bytes(&t, good, n, "good"), 0);
    tern_tokenizer_free(&t);
    for (size_t k = 0; k < n; k++) { // every truncation
        tern_tokenizer u;
        assert_int_equal(tern_tokenizer_from_bytes(&u, good, k, "bad.tkz"), -1);
        assert_true(strstr(tern_last_error(), "bad.tkz: ") == tern_last_error());
    }
    expect_bad(good, 10, "truncated");
    expect_bad(good, n - 1, "truncated");
    memcpy(b, good, n); b[n] = 'x';
    expect_bad(b, n + 1, "unexpected bytes");
    memcpy(b, good, n); b[0] = 'X';
    expect_bad(b, n, "bad magic");
    memcpy(b, good, n); b[8] = 3;
    expect_bad(b, n, "version");
    memcpy(b, good, n); b[12] = 7; b[13] = 0; // vocab 7
    expect_bad(b, n, "vocab size");
    memcpy(b, good, n); b[16] = 0x80; // unknown flag
    expect_bad(b, n, "flags");
    // duplicate piece
    const char *pd[3] = {MARK, "a", "a"};
    size_t nd;
    void *dup = make_file(3, pd, s, &nd);
    expect_bad(dup, nd, "are the same");
    // a normal piece equal to a byte piece's text
    const char *pb[2] = {MARK, "<0x41>"};
    void *db = make_file(2, pb, s, &nd);
    expect_bad(db, nd, "are the same");
    free(db);
    // wrong type / wrong byte piece / bad control / NaN score / NUL in piece / zero length
    size_t off0 = 24; // piece 0
    memcpy(b, good, n); b[off0] = 1;
    expect_bad(b, n, "type");
    size_t off3 = 24 + 3 * 7 + 5 + 3 + 4; // piece 3 (<0x00>)
    memcpy(b, good, n); b[off3 + 7 + 4] = 'Z';
    expect_bad(b, n, "byte piece");
    memcpy(b, good, n); b[off0 + 7 + 1] = 'x'; // "<xnk>"
    expect_bad(b, n, "control piece");
    float nan = NAN;
    memcpy(b, good, n); memcpy(b + off0 + 1, &nan, 4);
    expect_bad(b, n, "non-finite");
    memcpy(b, good, n); b[n - 1] = 0; // last piece "b" -> NUL
    expect_bad(b, n, "NUL");
    memcpy(b, good, n); b[n - 3] = 0; b[n - 2] = 0; // last piece length 0
    expect_bad(b, n - 1, "length");
    // load: missing file names the path
    assert_int_equal(tern_tokenizer_load(&t, "build/no/such.tkz"), -1);
    assert_non_null(strstr(tern_last_error(), "build/no/such.tkz"));
    // training: vocab too small / too large, empty input
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    const char *texts[1] = {"hello"};
    size_t lens[1] = {5};
    o.vocab_size = 259;
    assert_int_equal(tern_tokenizer_train(&t, texts, lens, 1, &o), -1);
    assert_non_null(strstr(tern_last_error(), "vocab size 259"));
    o.vocab_size = TERN_TOK_MAX_VOCAB + 1;
    assert_int_equal(tern_tokenizer_train(&t, texts, lens, 1, &o), -1);
    o.vocab_size = 512;
    lens[0] = 0;
    assert_int_equal(tern_tokenizer_train(&t, texts, lens, 1, &o), -1);
    assert_non_null(strstr(tern_last_error(), "empty"));
    // decode: id out of range
    assert_int_equal(tern_tokenizer_from_bytes(&t, good, n, "good"), 0);
    int ids[2] = {260, 262};
    char *d;
    size_t dl;
    assert_int_equal(tern_tokenizer_decode(&t, ids, 2, &d, &dl), -1);
    assert_non_null(strstr(tern_last_error(), "out of range"));
    tern_tokenizer_free(&t);
    free(good); free(b); free(dup);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_merges),      cmocka_unit_test(test_priority_and_ties),
        cmocka_unit_test(test_equal_score_ties),
        cmocka_unit_test(test_random_round_trips), cmocka_unit_test(test_bundled_round_trips),
        cmocka_unit_test(test_determinism),      cmocka_unit_test(test_reserved_texts),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
