// test_bytelevel.c — the byte-level BPE kind (TERN_TOK_GPT2) and its pre-tokenizers, against
// references that share no code with them:
//   - GPT-2's byte alphabet built here the way GPT-2's bytes_to_unicode() builds it;
//   - UTF-8 decoding against the Unicode standard's table of well-formed byte sequences;
//   - the Unicode class tables against PCRE2, code point by code point;
//   - the four pre-tokenizers against hand-worked splits and against PCRE2 running each family's
//     regex (pretokenizer_pcre.h) on random text made of the awkward characters;
//   - encoding against a plain re-implementation of Hugging Face's BPE here (strings in the
//     byte alphabet, the merges looked up by their strings, Word::merge_all's candidate rule),
//     fed by the PCRE2 pre-tokenizer; added tokens matched by a naive scan;
// and: lossless round trips on random bytes (invalid UTF-8, NUL), 1 vs 2 threads and split
// points, added-token rules (special vs user-defined, leftmost-longest, lstrip/rstrip), the
// trainer (hand-worked merges, determinism, layout, errors), the committed fixtures on the
// edge-case set. About 2 s.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizers/nfc.h"
#include "tokenizers/pretokenizer_pcre.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_json.h"
#include "tokenizers/unicode.h"
#include "util.h"
#include <omp.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *FIX = "tests/fixtures/tokenizers";
static const int PRES[4] = {TERN_PRE_GPT2, TERN_PRE_LLAMA3, TERN_PRE_SMOLLM, TERN_PRE_QWEN2};

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// ---------------------------------------------------------------------------------------------
// GPT-2's bytes_to_unicode(), written as its Python is

static uint32_t g_b2u[256];
static void build_b2u(void) {
    int bs[256], nb = 0, cs[256];
    for (int b = '!'; b <= '~'; b++) bs[nb++] = b;
    for (int b = 0xA1; b <= 0xAC; b++) bs[nb++] = b;
    for (int b = 0xAE; b <= 0xFF; b++) bs[nb++] = b;
    for (int i = 0; i < nb; i++) cs[i] = bs[i];
    int n = 0, k = nb;
    for (int b = 0; b < 256; b++) {
        int in = 0;
        for (int i = 0; i < nb; i++) in |= bs[i] == b;
        if (!in) {
            bs[k] = b;
            cs[k] = 256 + n++;
            k++;
        }
    }
    for (int i = 0; i < 256; i++) g_b2u[bs[i]] = (uint32_t)cs[i];
}

static void test_byte_alphabet(void **st) {
    (void)st;
    build_b2u();
    for (int b = 0; b < 256; b++) {
        assert_int_equal(tern_byte_char((uint8_t)b), g_b2u[b]);
        assert_int_equal(tern_char_byte(g_b2u[b]), b);
    }
    assert_int_equal(tern_byte_char(' '), 0x120);  // Ġ
    assert_int_equal(tern_byte_char('\n'), 0x10A); // Ċ
    int outside = 0;
    for (uint32_t cp = 0; cp < 0x400; cp++) outside += tern_char_byte(cp) < 0;
    assert_int_equal(outside, 0x400 - 256);
    assert_int_equal(tern_char_byte(0x110000), -1);
}

// ---------------------------------------------------------------------------------------------
// UTF-8: the Unicode standard's Table 3-7 (well-formed byte sequences)

static int wellformed_len(const uint8_t *s, size_t n) {
    static const struct { uint8_t lo0, hi0, lo1, hi1; int len; } T[] = {
        {0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 3},
        {0xE1, 0xEC, 0x80, 0xBF, 3}, {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
        {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4}, {0xF4, 0xF4, 0x80, 0x8F, 4},
    };
    for (size_t r = 0; r < sizeof T / sizeof T[0]; r++) {
        if (s[0] < T[r].lo0 || s[0] > T[r].hi0) continue;
        if ((size_t)T[r].len > n) return 0;
        if (T[r].len == 1) return 1;
        if (s[1] < T[r].lo1 || s[1] > T[r].hi1) return 0;
        for (int k = 2; k < T[r].len; k++)
            if (s[k] < 0x80 || s[k] > 0xBF) return 0;
        return T[r].len;
    }
    return 0;
}

static void test_utf8_decode(void **st) {
    (void)st;
    uint64_t r = 12345;
    uint8_t b[4];
    for (int it = 0; it < 400000; it++) {
        uint64_t x = rnd(&r);
        for (int k = 0; k < 4; k++) b[k] = (uint8_t)(x >> (8 * k));
        if (it % 3 == 0) b[1] = (uint8_t)(0x80 | (b[1] & 0x3F)), b[2] = (uint8_t)(0x80 | (b[2] & 0x3F)), b[3] = (uint8_t)(0x80 | (b[3] & 0x3F));
        size_t n = 1 + (size_t)((x >> 40) % 4);
        uint32_t cp;
        int got = tern_utf8_decode(b, n, &cp), want = wellformed_len(b, n);
        if (want) {
            assert_int_equal(got, want);
            uint8_t e[4];
            assert_int_equal(tern_utf8_encode(cp, e), want); // and it encodes back to the same bytes
            assert_memory_equal(e, b, (size_t)want);
        } else {
            assert_int_equal(got, 1);
            assert_true(cp == TERN_UC_INVALID);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the Unicode class tables, code point by code point, against PCRE2

static void test_unicode_classes_vs_pcre2(void **st) {
    (void)st;
    char ver[64];
    pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, ver);
    if (strcmp(ver, tern_uc_version()) != 0) {
        print_message("skipped: this PCRE2 has Unicode %s, the tables %s (make unicode-tables)\n", ver, tern_uc_version());
        return;
    }
    const char *pat[3] = {"\\p{L}", "\\p{N}", "\\p{White_Space}"};
    pcre2_code *re[3];
    for (int k = 0; k < 3; k++) {
        int e;
        PCRE2_SIZE o;
        re[k] = pcre2_compile((PCRE2_SPTR)pat[k], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &e, &o, NULL);
        assert_non_null(re[k]);
        pcre2_jit_compile(re[k], PCRE2_JIT_COMPLETE);
    }
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    long bad = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        uint8_t s[4];
        int n = tern_utf8_encode(cp, s);
        unsigned want = 0;
        for (int k = 0; k < 3; k++)
            if (pcre2_match(re[k], s, (PCRE2_SIZE)n, 0, 0, md, NULL) >= 0) want |= 1u << k;
        if (tern_uc_class(cp) != want && bad++ < 5) print_message("U+%04X: tern %u, PCRE2 %u\n", cp, tern_uc_class(cp), want);
    }
    assert_int_equal(bad, 0);
    pcre2_match_data_free(md);
    for (int k = 0; k < 3; k++) pcre2_code_free(re[k]);
}

// ---------------------------------------------------------------------------------------------
// pre-tokenizers

static void expect_split(int pre, const char *text, size_t n, const char *const *want, int nw) {
    size_t ends[512];
    size_t k = tern_pre_split(pre, text, n, ends), a = 0;
    int ok = (int)k == nw;
    for (size_t i = 0; ok && i < k; i++) {
        ok = ends[i] - a == strlen(want[i]) && memcmp(text + a, want[i], ends[i] - a) == 0;
        a = ends[i];
    }
    if (!ok) {
        a = 0;
        for (size_t i = 0; i < k; i++) {
            print_message("  word %zu: [%.*s]\n", i, (int)(ends[i] - a), text + a);
            a = ends[i];
        }
        fail_msg("%s: split of [%s] differs (%zu words, want %d)", tern_pre_name(pre), text, k, nw);
    }
}
#define SPLIT(pre, text, ...)                                                                     \
    do {                                                                                          \
        const char *w_[] = {__VA_ARGS__};                                                         \
        expect_split(pre, text, strlen(text), w_, (int)(sizeof w_ / sizeof w_[0]));              \
    } while (0)

static void test_pretok_hand(void **st) {
    (void)st;
    const char *s1 = "Hello world's  test\n\n  x";
    SPLIT(TERN_PRE_GPT2, s1, "Hello", " world", "'s", " ", " test", "\n\n ", " x");
    SPLIT(TERN_PRE_LLAMA3, s1, "Hello", " world", "'s", " ", " test", "\n\n", " ", " x");
    SPLIT(TERN_PRE_LLAMA3, "1234567", "123", "456", "7");
    SPLIT(TERN_PRE_QWEN2, "1234", "1", "2", "3", "4");
    SPLIT(TERN_PRE_GPT2, "1234567", "1234567");
    SPLIT(TERN_PRE_SMOLLM, "123", "1", "2", "3");
    SPLIT(TERN_PRE_LLAMA3, "IT'S it'S", "IT", "'S", " it", "'S");
    SPLIT(TERN_PRE_GPT2, "IT'S it's", "IT", "'", "S", " it", "'s");
    SPLIT(TERN_PRE_SMOLLM, "a 12b", "a", " ", "1", "2", "b");
    SPLIT(TERN_PRE_GPT2, "a 12b", "a", " 12", "b");
    SPLIT(TERN_PRE_LLAMA3, "a 12b", "a", " ", "12", "b");
    SPLIT(TERN_PRE_LLAMA3, "x!!\n\ny", "x", "!!\n\n", "y");
    SPLIT(TERN_PRE_LLAMA3, "\t\tfoo (bar)", "\t", "\tfoo", " (", "bar", ")");
    SPLIT(TERN_PRE_GPT2, "\t\tfoo (bar)", "\t", "\t", "foo", " (", "bar", ")");
    SPLIT(TERN_PRE_LLAMA3, "a \r\n b", "a", " \r\n", " b");
    SPLIT(TERN_PRE_LLAMA3, "don\xe2\x80\x99t", "don", "\xe2\x80\x99t");       // ’ is not an apostrophe
    SPLIT(TERN_PRE_LLAMA3, "caf\xc3\xa9 e\xcc\x81", "caf\xc3\xa9", " e", "\xcc\x81"); // combining mark: not \p{L}
    SPLIT(TERN_PRE_LLAMA3, "x\xc2\xa0y", "x", "\xc2\xa0y");                     // NBSP is White_Space, not \r\n
    SPLIT(TERN_PRE_LLAMA3, "ab\xff" "cd", "ab", "\xff" "cd");                    // an invalid byte is like U+FFFD
    SPLIT(TERN_PRE_GPT2, "trailing  ", "trailing", "  ");
    SPLIT(TERN_PRE_LLAMA3, "'sup", "'s", "up");
    SPLIT(TERN_PRE_QWEN2, "x 2024", "x", " ", "2", "0", "2", "4");
    // names
    assert_int_equal(tern_pre_from_name("llama-bpe"), TERN_PRE_LLAMA3);
    assert_int_equal(tern_pre_from_name("gpt-2"), TERN_PRE_GPT2);
    assert_int_equal(tern_pre_from_name("starcoder"), TERN_PRE_SMOLLM);
    assert_int_equal(tern_pre_from_name("qwen2"), TERN_PRE_QWEN2);
    assert_int_equal(tern_pre_from_name("default"), -1);
    assert_int_equal(tern_pre_from_split_regex(tern_pre_regex(TERN_PRE_QWEN2)), TERN_PRE_QWEN2);
    assert_int_equal(tern_pre_from_split_regex("\\s+"), -1);
}

// the awkward characters: letters, digits, apostrophes, every kind of space, CR/LF, marks,
// numbers that are not digits, CJK, emoji, invalid bytes, NUL, U+FEFF, U+180E, U+017F
static const char *const ALPHA[] = {
    "a", "b", "s", "S", "t", "l", "L", "e", "r", "v", "d", "m", "D", "'", "'", "'", " ", " ", " ", "  ", "\t", "\n",
    "\r", "\r\n", "1", "2", "9", "0", ".", ",", "!", "(", "\xc3\xa9", "\xcc\x81", "\xe6\x97\xa5", "\xe4\xb8\xad",
    "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\xa8", "\xc2\x85", "\xf0\x9f\x98\x80", "\xe2\x80\x8d", "\xc2\xb2", "\xc2\xbd",
    "\xe2\x85\xab", "\xff", "\xc3", "\xe2\x82", "\0", "\xef\xbb\xbf", "\xe1\xa0\x8e", "\xc5\xbf", "\xe0\xa4\xb9",
    "\xe0\xa5\x8d", "\xd9\xa3", "\x0b", "\x0c", "_", "-", "<|", "|>", "\xe2\x80\x99"};
#define NALPHA (int)(sizeof ALPHA / sizeof ALPHA[0])

static size_t random_text(char *buf, int pieces, uint64_t *r) {
    size_t n = 0;
    for (int j = 0; j < pieces; j++) {
        const char *a = ALPHA[rnd(r) % NALPHA];
        size_t L = a[0] ? strlen(a) : 1;
        memcpy(buf + n, a, L);
        n += L;
    }
    return n;
}

static void test_pretok_vs_pcre2(void **st) {
    (void)st;
    char buf[4096];
    size_t *e1 = malloc(4096 * sizeof(size_t)), *e2 = malloc(4096 * sizeof(size_t));
    for (int f = 0; f < 4; f++) {
        tern_pre_pcre *p = tern_pre_pcre_new(PRES[f]);
        assert_non_null(p);
        uint64_t r = 88172645463325252ull + (uint64_t)f;
        for (int it = 0; it < 30000; it++) {
            size_t n = random_text(buf, 1 + (int)(rnd(&r) % (it % 100 == 0 ? 600 : 24)), &r);
            size_t k1 = tern_pre_split(PRES[f], buf, n, e1), k2 = tern_pre_pcre_split(p, buf, n, e2);
            if (k1 != k2 || memcmp(e1, e2, k1 * sizeof(size_t))) {
                for (size_t i = 0; i < n; i++) print_message("%02x", (unsigned char)buf[i]);
                fail_msg("\n%s: tern's split differs from PCRE2's (%zu vs %zu words)", tern_pre_name(PRES[f]), k1, k2);
            }
        }
        tern_pre_pcre_free(p);
    }
    free(e1);
    free(e2);
}

// ---------------------------------------------------------------------------------------------
// a plain Hugging Face BPE: words pre-tokenized by PCRE2, written in the byte alphabet, merged
// with the merges looked up by their two strings; added tokens found by a naive scan

typedef struct {
    char s[TERN_TOK_MAX_PIECE * 2 + 1];
    int len;
} str_t;

static int merge_rank(const tern_tokenizer *t, const str_t *a, const str_t *b, int *res) {
    // the merge whose two pieces are spelled a and b (a linear scan: the vocabularies here are small)
    for (int m = 0; m < t->n_merges; m++) {
        const char *l = t->pieces[t->merges[2 * m]], *r = t->pieces[t->merges[2 * m + 1]];
        if ((int)strlen(l) == a->len && (int)strlen(r) == b->len && !memcmp(l, a->s, (size_t)a->len) &&
            !memcmp(r, b->s, (size_t)b->len)) {
            char cat[2 * TERN_TOK_MAX_PIECE + 1];
            memcpy(cat, a->s, (size_t)a->len);
            memcpy(cat + a->len, b->s, (size_t)b->len);
            *res = tern_tokenizer_piece_id(t, cat, (size_t)(a->len + b->len));
            return m;
        }
    }
    return -1;
}

// Word::merge_all on strings: candidates (rank, position, result) are kept in a list and the
// smallest (rank, position) taken each time; it applies when the current pair at that position
// still merges into the same result.
static void ref_word(const tern_tokenizer *t, const uint8_t *w, size_t m, int *out, int *no) {
    str_t *sym = malloc(m * sizeof(str_t));
    int *alive = malloc(m * sizeof(int)), n = (int)m;
    for (int i = 0; i < n; i++) {
        sym[i].len = tern_utf8_encode(g_b2u[w[i]], (uint8_t *)sym[i].s);
        alive[i] = 1;
    }
    char whole[4 * TERN_TOK_MAX_PIECE] = {0};
    int wl = 0;
    for (int i = 0; i < n && wl < 3 * TERN_TOK_MAX_PIECE; i++) {
        memcpy(whole + wl, sym[i].s, (size_t)sym[i].len);
        wl += sym[i].len;
    }
    int id = t->ignore_merges && wl <= TERN_TOK_MAX_PIECE ? tern_tokenizer_piece_id(t, whole, (size_t)wl) : -1;
    if (id >= 0 && t->types[id] == TERN_PIECE_NORMAL) {
        out[(*no)++] = id;
        free(sym);
        free(alive);
        return;
    }
    typedef struct { int rank, pos, res; } cand;
    cand *c = malloc((size_t)(4 * n + 4) * sizeof(cand));
    int nc = 0;
#define NEXT(i) ({ int j_ = (i) + 1; while (j_ < n && !alive[j_]) j_++; j_ < n ? j_ : -1; })
#define PREV(i) ({ int j_ = (i) - 1; while (j_ >= 0 && !alive[j_]) j_--; j_; })
    for (int i = 0; i + 1 < n; i++) {
        int res, r = merge_rank(t, &sym[i], &sym[i + 1], &res);
        if (r >= 0) c[nc++] = (cand){r, i, res};
    }
    while (nc > 0) {
        int b = 0;
        for (int k = 1; k < nc; k++)
            if (c[k].rank < c[b].rank || (c[k].rank == c[b].rank && c[k].pos < c[b].pos)) b = k;
        cand e = c[b];
        c[b] = c[--nc];
        int L = e.pos, R = alive[L] ? NEXT(L) : -1, res;
        if (R < 0 || merge_rank(t, &sym[L], &sym[R], &res) < 0 || res != e.res) continue;
        memcpy(sym[L].s + sym[L].len, sym[R].s, (size_t)sym[R].len);
        sym[L].len += sym[R].len;
        alive[R] = 0;
        int P = PREV(L), N = NEXT(L), r2;
        if (P >= 0 && (r2 = merge_rank(t, &sym[P], &sym[L], &res)) >= 0) c[nc++] = (cand){r2, P, res};
        if (N >= 0 && (r2 = merge_rank(t, &sym[L], &sym[N], &res)) >= 0) c[nc++] = (cand){r2, L, res};
    }
#undef NEXT
#undef PREV
    for (int i = 0; i < n; i++)
        if (alive[i]) {
            int pid = tern_tokenizer_piece_id(t, sym[i].s, (size_t)sym[i].len);
            assert_true(pid >= 0);
            out[(*no)++] = pid;
        }
    free(c);
    free(sym);
    free(alive);
}

// the whole text: added tokens (naive leftmost-longest scan; no lstrip/rstrip in these
// vocabularies), then PCRE2 words, then ref_word
static int *ref_encode(const tern_tokenizer *t, tern_pre_pcre *pc, const char *s, size_t n, int special, int *no) {
    int *out = malloc((n + 2) * sizeof(int));
    size_t *ends = malloc((n + 1) * sizeof(size_t));
    *no = 0;
    size_t a = 0;
    while (a < n) {
        size_t b = n, blen = 0;
        int bid = -1;
        for (size_t i = a; i < n && bid < 0; i++)
            for (int id = 0; id < t->vocab_size; id++) {
                int ty = t->types[id];
                if (!(ty == TERN_PIECE_USER || (special && (ty == TERN_PIECE_CONTROL || ty == TERN_PIECE_UNKNOWN)))) continue;
                size_t L = (size_t)t->piece_len[id];
                if (L <= n - i && !memcmp(s + i, t->pieces[id], L) && L > blen) {
                    b = i;
                    blen = L;
                    bid = id;
                }
            }
        size_t k = tern_pre_pcre_split(pc, s + a, b - a, ends), w0 = 0;
        for (size_t j = 0; j < k; j++) {
            ref_word(t, (const uint8_t *)s + a + w0, ends[j] - w0, out, no);
            w0 = ends[j];
        }
        if (bid >= 0) out[(*no)++] = bid;
        a = b + blen;
    }
    free(ends);
    return out;
}

static void check_ids(const int *a, int na, const int *b, int nb, const char *what) {
    if (na != nb) fail_msg("%s: %d vs %d tokens", what, na, nb);
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) fail_msg("%s: token %d differs: %d vs %d", what, i, a[i], b[i]);
}

static void train_family(tern_tokenizer *t, int pre, const char *text, size_t len, int vocab) {
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.kind = TERN_TOK_GPT2;
    o.pre = pre;
    o.vocab_size = vocab;
    const char *texts[1] = {text};
    assert_int_equal(tern_tokenizer_train(t, texts, &len, 1, &o), 0);
}

static char *g_corpus;
static size_t g_corpus_n;

static int setup(void **st) {
    (void)st;
    build_b2u();
    g_corpus = tern_read_file("data/tinyshakespeare/input.txt", &g_corpus_n);
    return g_corpus ? 0 : -1;
}
static int teardown(void **st) {
    (void)st;
    free(g_corpus);
    return 0;
}

// encode == the plain reference, and decode(encode(x)) == x, with and without special parsing
static void check_against_ref(const tern_tokenizer *t, tern_pre_pcre *pc, const char *s, size_t n, const char *what) {
    for (int special = 0; special < 2; special++) {
        int *a, na, nr;
        assert_int_equal(tern_tokenizer_encode_ex(t, s, n, special ? TERN_ENC_SPECIAL : 0, &a, &na), 0);
        int *r = ref_encode(t, pc, s, n, special, &nr);
        check_ids(a, na, r, nr, what);
        char *d;
        size_t dl;
        assert_int_equal(tern_tokenizer_decode_ex(t, a, (size_t)na, special ? TERN_DEC_SPECIAL : 0, &d, &dl), 0);
        if (dl != n || memcmp(d, s, n)) fail_msg("%s: round trip failed (%zu bytes in, %zu out)", what, n, dl);
        free(d);
        free(a);
        free(r);
    }
}

static void test_encode_vs_reference(void **st) {
    (void)st;
    char buf[8192];
    for (int f = 0; f < 4; f++) {
        tern_tokenizer t;
        // the corpus with the awkward characters mixed in, so that merges involve them too
        size_t n = 0;
        char *train = malloc(200000 + 60000);
        memcpy(train, g_corpus, 200000);
        n = 200000;
        uint64_t r = 7 + (uint64_t)f;
        while (n < 250000) n += random_text(train + n, 8, &r);
        train_family(&t, PRES[f], train, n, 800);
        free(train);
        tern_pre_pcre *pc = tern_pre_pcre_new(PRES[f]);
        for (int it = 0; it < 300; it++) {
            size_t m = random_text(buf, 1 + (int)(rnd(&r) % 60), &r);
            check_against_ref(&t, pc, buf, m, tern_pre_name(PRES[f]));
        }
        for (int it = 0; it < 20; it++) { // real text
            size_t off = (size_t)it * 40009 % (g_corpus_n - 3000);
            check_against_ref(&t, pc, g_corpus + off, 1500, tern_pre_name(PRES[f]));
        }
        // special-token strings in text: matched only with TERN_ENC_SPECIAL
        const char *sp = "a<|endoftext|>b <|end_of_text|><|im_start|>x<|eot_id|><|";
        check_against_ref(&t, pc, sp, strlen(sp), "specials");
        tern_pre_pcre_free(pc);
        tern_tokenizer_free(&t);
    }
}

// random bytes of every kind: lossless, and 1 thread == 2 threads == the plain path
static void test_round_trips_and_threads(void **st) {
    (void)st;
    tern_tokenizer t;
    train_family(&t, TERN_PRE_LLAMA3, g_corpus, 300000, 1000);
    uint64_t r = 99;
    char buf[3000];
    for (int it = 0; it < 300; it++) {
        size_t n = (size_t)(it * 37 % 2900) + 1;
        for (size_t i = 0; i < n; i++) buf[i] = (char)(it % 2 ? rnd(&r) : (uint64_t)"a \n\0\xff\xc3\xe2\x80'1"[rnd(&r) % 10]);
        int *a, na;
        assert_int_equal(tern_tokenizer_encode(&t, buf, n, 1, &a, &na), 0);
        assert_int_equal(a[0], t.bos_id);
        char *d;
        size_t dl;
        assert_int_equal(tern_tokenizer_decode(&t, a, (size_t)na, &d, &dl), 0);
        if (dl != n || memcmp(d, buf, n)) fail_msg("round trip failed on random bytes (case %d)", it);
        free(d);
        free(a);
    }
    // > 2 MB: chunks on 1 and 2 threads, the plain path, split points
    size_t tot = 3 * g_corpus_n;
    char *all = malloc(tot);
    for (int k = 0; k < 3; k++) memcpy(all + (size_t)k * g_corpus_n, g_corpus, g_corpus_n);
    int *a1, n1, *a2, n2, *a3, n3;
    omp_set_num_threads(1);
    assert_int_equal(tern_tokenizer_encode(&t, all, tot, 0, &a1, &n1), 0);
    omp_set_num_threads(2);
    assert_int_equal(tern_tokenizer_encode(&t, all, tot, 0, &a2, &n2), 0);
    check_ids(a1, n1, a2, n2, "1 vs 2 threads");
    assert_int_equal(tern_tokenizer_encode_ref(&t, all, tot, 0, &a3, &n3), 0);
    check_ids(a1, n1, a3, n3, "fast vs plain");
    size_t cut = tern_tokenizer_split_point(&t, all, tot, tot / 3);
    assert_true(cut < tot && all[cut] == ' ');
    int *h, nh, *tl, nt;
    assert_int_equal(tern_tokenizer_encode(&t, all, cut, 0, &h, &nh), 0);
    assert_int_equal(tern_tokenizer_encode_ex(&t, all + cut, tot - cut, TERN_ENC_CONTINUE, &tl, &nt), 0);
    int *cat = malloc(((size_t)nh + (size_t)nt) * sizeof(int));
    memcpy(cat, h, (size_t)nh * sizeof(int));
    memcpy(cat + nh, tl, (size_t)nt * sizeof(int));
    check_ids(cat, nh + nt, a1, n1, "split point");
    print_message("llama3 vocab 1000: %zu bytes -> %d tokens (%.2f bytes/token)\n", tot, n1, (double)tot / n1);
    free(a1); free(a2); free(a3); free(h); free(tl); free(cat); free(all);
    tern_tokenizer_free(&t);
}

// ---------------------------------------------------------------------------------------------
// added tokens and bos/eos, on a hand-built vocabulary

static void build_small(tern_tokenizer *t, const char *const *extra, const int *types, const uint8_t *attrs, int nx,
                        int bos, int eos, int add_bos) {
    int V = 256 + 3 + nx;
    const char **pieces = malloc((size_t)V * sizeof(char *));
    int *ty = malloc((size_t)V * sizeof(int));
    uint8_t *at = calloc((size_t)V, 1);
    char (*chars)[5] = malloc(256 * 5);
    for (int b = 0; b < 256; b++) {
        int L = tern_utf8_encode(g_b2u[b], (uint8_t *)chars[b]);
        chars[b][L] = 0;
        pieces[b] = chars[b];
        ty[b] = TERN_PIECE_NORMAL;
    }
    // merges: "Ġ" + "a" -> "Ġa", "a" + "b" -> "ab", "Ġa" + "b" -> "Ġab"
    pieces[256] = "\xc4\xa0" "a";
    pieces[257] = "ab";
    pieces[258] = "\xc4\xa0" "ab";
    for (int k = 256; k < 259; k++) ty[k] = TERN_PIECE_NORMAL;
    for (int k = 0; k < nx; k++) {
        pieces[259 + k] = extra[k];
        ty[259 + k] = types[k];
        at[259 + k] = attrs ? attrs[k] : 0;
    }
    const char *ml[3] = {"\xc4\xa0", "a", "\xc4\xa0" "a"}, *mr[3] = {"a", "b", "b"};
    tern_tokenizer_spec s = {.kind = TERN_TOK_GPT2, .vocab_size = V, .pieces = pieces, .types = ty, .attrs = at,
                             .bos_id = bos, .eos_id = eos, .unk_id = -1, .add_bos = add_bos, .pre = TERN_PRE_LLAMA3,
                             .n_merges = 3, .merge_left = ml, .merge_right = mr};
    assert_int_equal(tern_tokenizer_build(t, &s, "small"), 0);
    free(pieces);
    free(ty);
    free(at);
    free(chars);
}

static void expect_enc(const tern_tokenizer *t, const char *text, int flags, const int *want, int nw) {
    int *ids, n;
    assert_int_equal(tern_tokenizer_encode_ex(t, text, strlen(text), flags, &ids, &n), 0);
    check_ids(ids, n, want, nw, text);
    free(ids);
}
#define ENC(t, text, flags, ...)                                                  \
    do {                                                                          \
        const int w_[] = {__VA_ARGS__};                                           \
        expect_enc(t, text, flags, w_, (int)(sizeof w_ / sizeof w_[0]));         \
    } while (0)

static void test_added_tokens(void **st) {
    (void)st;
    const char *x[5] = {"<|end|>", "<tool>", "<tool_call>", "[M]", "[R]"};
    const int ty[5] = {TERN_PIECE_CONTROL, TERN_PIECE_USER, TERN_PIECE_USER, TERN_PIECE_USER, TERN_PIECE_USER};
    const uint8_t at[5] = {0, 0, 0, TERN_ATTR_LSTRIP, TERN_ATTR_RSTRIP};
    tern_tokenizer t;
    build_small(&t, x, ty, at, 5, 259, 259, 0);
    const int A = 'a', B = 'b', SP = tern_tokenizer_piece_id(&t, "\xc4\xa0", 2);
    ENC(&t, "ab", 0, 257);
    ENC(&t, " ab", 0, 258);
    ENC(&t, "a ab", 0, A, 258);
    // a control token is text unless TERN_ENC_SPECIAL; user-defined tokens always match
    int *ids, n;
    assert_int_equal(tern_tokenizer_encode_ex(&t, "<|end|>", 7, 0, &ids, &n), 0);
    assert_true(n > 1);
    free(ids);
    ENC(&t, "ab<|end|>ab", TERN_ENC_SPECIAL, 257, 259, 257);
    ENC(&t, "ab<tool>ab", 0, 257, 260, 257);
    ENC(&t, "<tool_call>", 0, 261); // longest at the leftmost position
    ENC(&t, "ab [M] ab", 0, 257, 262, 258);      // lstrip: the space before [M] goes with it
    ENC(&t, "ab [R] ab", 0, 257, SP, 263, 257);  // rstrip: the space after [R] goes with it
    ENC(&t, "ab", TERN_ENC_BOS | TERN_ENC_EOS, 259, 257, 259);
    // decoding: control tokens only with TERN_DEC_SPECIAL; user-defined ones always
    int seq[4] = {257, 259, 260, B};
    char *d;
    size_t dl;
    assert_int_equal(tern_tokenizer_decode(&t, seq, 4, &d, &dl), 0);
    assert_string_equal(d, "ab<tool>b");
    free(d);
    assert_int_equal(tern_tokenizer_decode_ex(&t, seq, 4, TERN_DEC_SPECIAL, &d, &dl), 0);
    assert_string_equal(d, "ab<|end|><tool>b");
    free(d);
    // with lstrip/rstrip tokens there are no split points
    assert_int_equal(tern_tokenizer_split_point(&t, "aaaa bbbb cccc", 14, 0), 14);
    tern_tokenizer_free(&t);
    // a vocabulary without bos refuses TERN_ENC_BOS
    build_small(&t, x, ty, NULL, 1, -1, -1, 0);
    assert_int_equal(tern_tokenizer_encode_ex(&t, "a", 1, TERN_ENC_BOS, &ids, &n), -1);
    assert_non_null(strstr(tern_last_error(), "no bos"));
    assert_true(tern_tokenizer_split_point(&t, "aaaa bbbb cccc", 14, 0) == 4);
    tern_tokenizer_free(&t);
}

// ---------------------------------------------------------------------------------------------
// training

static void test_train_bytelevel(void **st) {
    (void)st;
    // "ab ab ab abc" (gpt2): words "ab", " ab" x2, " abc". Pairs: (a,b) 4, (Ġ,a) 3, (b,c) 1.
    // Merge 1: a b -> "ab"; then (Ġ,ab) 3 -> "Ġab"; then (Ġab,c) 1 -> "Ġabc"; then nothing left.
    const char *text = "ab ab ab abc";
    tern_tokenizer t;
    train_family(&t, TERN_PRE_GPT2, text, strlen(text), 300);
    assert_int_equal(t.vocab_size, 256 + 3 + 1);
    assert_int_equal(t.n_merges, 3);
    assert_string_equal(t.pieces[256], "ab");
    assert_string_equal(t.pieces[257], "\xc4\xa0" "ab");
    assert_string_equal(t.pieces[258], "\xc4\xa0" "abc");
    assert_string_equal(t.pieces[259], "<|endoftext|>");
    assert_int_equal(t.types[259], TERN_PIECE_CONTROL);
    assert_int_equal(t.bos_id, 259);
    assert_int_equal(t.eos_id, 259);
    assert_int_equal(t.add_bos, 0);
    uint32_t prev = 0;
    for (int id = 0; id < 256; id++) { // bytes first, in GPT-2's order (by character)
        uint32_t cp;
        assert_int_equal(tern_utf8_decode((const uint8_t *)t.pieces[id], (size_t)t.piece_len[id], &cp), t.piece_len[id]);
        assert_true(tern_char_byte(cp) >= 0 && (id == 0 || cp > prev));
        prev = cp;
    }
    assert_string_equal(t.pieces[0], "!");
    assert_string_equal(t.pieces[255], "\xc5\x83"); // U+0143, byte 0xAD
    ENC(&t, "ab abc", 0, 256, 258);
    tern_tokenizer_free(&t);
    // llama3: bos <|begin_of_text|> added by default, ignore_merges; deterministic bytes
    tern_tokenizer a, b;
    train_family(&a, TERN_PRE_LLAMA3, g_corpus, 200000, 700);
    train_family(&b, TERN_PRE_LLAMA3, g_corpus, 200000, 700);
    void *ba, *bb;
    size_t na, nb;
    tern_tokenizer_to_bytes(&a, &ba, &nb);
    tern_tokenizer_to_bytes(&b, &bb, &na);
    assert_true(na == nb && memcmp(ba, bb, na) == 0 && a.hash == b.hash);
    assert_string_equal(a.pieces[a.bos_id], "<|begin_of_text|>");
    assert_true(a.add_bos && a.ignore_merges && a.vocab_size == 700);
    // every merge's result is a new piece, in rank order (one merge per piece)
    for (int m = 0; m < a.n_merges; m++) {
        char cat[2048];
        int la = a.piece_len[a.merges[2 * m]], lb = a.piece_len[a.merges[2 * m + 1]];
        memcpy(cat, a.pieces[a.merges[2 * m]], (size_t)la);
        memcpy(cat + la, a.pieces[a.merges[2 * m + 1]], (size_t)lb);
        assert_int_equal(tern_tokenizer_piece_id(&a, cat, (size_t)(la + lb)), 256 + m);
    }
    // the special tokens' strings in the training text are never learned
    const char *sp = "<|begin_of_text|>x<|begin_of_text|>x<|begin_of_text|>x<|begin_of_text|>";
    train_family(&t, TERN_PRE_LLAMA3, sp, strlen(sp), 400);
    for (int i = 256; i < t.vocab_size - 5; i++) assert_null(strstr(t.pieces[i], "begin"));
    tern_tokenizer_free(&t);
    free(ba);
    free(bb);
    tern_tokenizer_free(&a);
    tern_tokenizer_free(&b);
    // errors
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.kind = TERN_TOK_GPT2;
    o.pre = TERN_PRE_LLAMA3;
    o.vocab_size = 260;
    size_t len = 5;
    const char *texts[1] = {"hello"};
    assert_int_equal(tern_tokenizer_train(&t, texts, &len, 1, &o), -1);
    assert_non_null(strstr(tern_last_error(), "minimum 261"));
    o.vocab_size = 400;
    len = 0;
    assert_int_equal(tern_tokenizer_train(&t, texts, &len, 1, &o), -1);
    assert_non_null(strstr(tern_last_error(), "empty"));
}

// ---------------------------------------------------------------------------------------------
// NFC: vectors computed with Python's unicodedata.normalize("NFC", ...) (Unicode 14.0)

static void test_nfc(void **st) {
    (void)st;
    assert_string_equal(tern_nfc_version(), tern_uc_version());
    static const char *const V[][2] = {
        {"\x65\xcc\x81", "\xc3\xa9"},                                   // e + acute -> é
        {"\xe1\xb8\x8a\xcc\xa3", "\xe1\xb8\x8c\xcc\x87"},              // reordering: Ḋ + dot below -> Ḍ + dot above
        {"\xe2\x84\xab", "\xc3\x85"},                                   // Ångström sign (a singleton) -> Å
        {"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"},       // Hangul L V T -> 각
        {"\xea\xb0\x80\xe1\x86\xa8", "\xea\xb0\x81"},                   // LV + T
        {"\xcd\x84", "\xcc\x88\xcc\x81"},                              // excluded (non-starter decomposition)
        {"\x61\xcc\xa8\xcc\x81", "\xc4\x85\xcc\x81"},                   // blocked second mark stays
        {"\xcc\x81\x61", "\xcc\x81\x61"},                              // a leading mark
        {"\x65\xcc\xa7\xcc\x81", "\xc8\xa9\xcc\x81"},
        {"\xc3\xa9\xcc\xa7", "\xc8\xa9\xcc\x81"},                        // decompose, reorder, recompose
        {"\xe0\xbd\xb3", "\xe0\xbd\xb1\xe0\xbd\xb2"},                   // Tibetan: excluded
        {"\x41\xcc\x8a\xcc\x81", "\xc7\xba"},                          // two steps: Å then Ǻ
        {"\xe0\xa4\x95\xe0\xa4\xbc", "\xe0\xa4\x95\xe0\xa4\xbc"},       // Devanagari nukta: composition excluded
        {"caf\x65\xcc\x81 na\xc3\xafve", "caf\xc3\xa9 na\xc3\xafve"},
        {"e\xff\xcc\x81", "e\xff\xcc\x81"},                            // an invalid byte blocks, and is kept
    };
    for (size_t k = 0; k < sizeof V / sizeof V[0]; k++) {
        size_t m;
        uint8_t *o = tern_nfc((const uint8_t *)V[k][0], strlen(V[k][0]), &m);
        if (m != strlen(V[k][1]) || memcmp(o, V[k][1], m)) fail_msg("NFC vector %zu differs", k);
        free(o);
    }
    // idempotent; ASCII unchanged
    uint64_t r = 3;
    char buf[4096];
    for (int it = 0; it < 2000; it++) {
        size_t n = random_text(buf, 1 + (int)(rnd(&r) % 40), &r), m1, m2;
        uint8_t *a = tern_nfc((const uint8_t *)buf, n, &m1), *b = tern_nfc(a, m1, &m2);
        assert_true(m1 == m2 && !memcmp(a, b, m1));
        free(a);
        free(b);
    }
    size_t m;
    uint8_t *o = tern_nfc((const uint8_t *)g_corpus, 100000, &m);
    assert_true(m == 100000 && !memcmp(o, g_corpus, m));
    free(o);
    // a tokenizer with the normalizer encodes the NFC of its input
    tern_tokenizer t;
    tern_tokenizer_train_opts op;
    tern_tokenizer_train_defaults(&op);
    op.kind = TERN_TOK_GPT2;
    op.pre = TERN_PRE_QWEN2;
    op.nfc = 1;
    op.vocab_size = 600;
    const char *texts[1] = {g_corpus};
    size_t len = 100000;
    assert_int_equal(tern_tokenizer_train(&t, texts, &len, 1, &op), 0);
    assert_true(t.nfc);
    int *x, nx, *y, ny;
    assert_int_equal(tern_tokenizer_encode(&t, "cafe\xcc\x81 \xe2\x84\xab", 10, 0, &x, &nx), 0);
    assert_int_equal(tern_tokenizer_encode(&t, "caf\xc3\xa9 \xc3\x85", 8, 0, &y, &ny), 0);
    check_ids(x, nx, y, ny, "NFC");
    free(x);
    free(y);
    tern_tokenizer_free(&t);
}

// ---------------------------------------------------------------------------------------------
// the committed fixtures on the edge-case set: the plain reference, lossless raw bytes

static size_t unescape(const char *l, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (l[i] != '\\' || i + 1 >= n) { out[k++] = l[i++]; continue; }
        char d = l[i + 1];
        if (d == 'n') { out[k++] = '\n'; i += 2; }
        else if (d == 'r') { out[k++] = '\r'; i += 2; }
        else if (d == 't') { out[k++] = '\t'; i += 2; }
        else if (d == '0') { out[k++] = 0; i += 2; }
        else if (d == '\\') { out[k++] = '\\'; i += 2; }
        else if (d == 'x') { out[k++] = (char)strtol((char[3]){l[i + 2], l[i + 3], 0}, NULL, 16); i += 4; }
        else if (d == 'u' && l[i + 2] == '{') {
            const char *e = memchr(l + i, '}', n - i);
            k += (size_t)tern_utf8_encode((uint32_t)strtol(l + i + 3, NULL, 16), (uint8_t *)out + k);
            i = (size_t)(e - l) + 1;
        } else { out[k++] = l[i++]; }
    }
    return k;
}

static void test_fixtures_edge_cases(void **st) {
    (void)st;
    char path[512];
    snprintf(path, sizeof path, "%s/edge_cases.txt", FIX);
    size_t n;
    char *txt = tern_read_file(path, &n);
    assert_non_null(txt);
    const char *fam[4] = {"gpt2", "llama3", "smollm", "qwen2"};
    int ncases = 0;
    for (int f = 0; f < 4; f++) {
        tern_tokenizer t;
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", FIX, fam[f]);
        if (tern_tokenizer_load_json(&t, path) != 0) fail_msg("%s", tern_last_error());
        assert_int_equal(t.pre, PRES[f]);
        tern_pre_pcre *pc = tern_pre_pcre_new(t.pre);
        ncases = 0;
        for (char *l = txt; l < txt + n;) {
            char *e = memchr(l, '\n', (size_t)(txt + n - l));
            size_t L = e ? (size_t)(e - l) : (size_t)(txt + n - l);
            if (L > 0 && !(L >= 2 && l[0] == '#' && l[1] == ' ')) {
                char buf[4096];
                size_t m = unescape(l, L, buf);
                check_against_ref(&t, pc, buf, m, fam[f]); // raw bytes: invalid UTF-8 kept, lossless
                ncases++;
            }
            l += L + 1;
        }
        tern_pre_pcre_free(pc);
        tern_tokenizer_free(&t);
    }
    print_message("%d edge cases x 4 fixture families: ids equal the plain reference, lossless\n", ncases);
    assert_true(ncases >= 90);
    free(txt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_alphabet),          cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_unicode_classes_vs_pcre2), cmocka_unit_test(test_pretok_hand),
        cmocka_unit_test(test_pretok_vs_pcre2),        cmocka_unit_test(test_encode_vs_reference),
        cmocka_unit_test(test_round_trips_and_threads), cmocka_unit_test(test_added_tokens),
        cmocka_unit_test(test_train_bytelevel),        cmocka_unit_test(test_nfc),
        cmocka_unit_test(test_fixtures_edge_cases),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
