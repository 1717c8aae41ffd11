// fuzz_bytelevel.c — libFuzzer target for the byte-level tokenizer on arbitrary bytes.
// Input: byte 0 picks the pre-tokenizer family (gpt2, llama3, smollm, qwen2), byte 1 the flags
// (bit 0: TERN_ENC_SPECIAL), the rest is the text. Checks, trapping on any failure:
//   1. tern's hand-written pre-tokenizer splits the text exactly as PCRE2 runs the family's regex
//      (pretokenizer_pcre.h; differential);
//   2. decode(encode(x)) == x (with TERN_DEC_SPECIAL when special tokens were matched);
//   3. the fast encoder (word cache, chunks) gives the ids of the plain path (encode_ref).
// The four tokenizers are trained once, at start-up, on a built-in text.
#include "tokenizers/pretokenizer_pcre.h"
#include "tokenizers/tokenizer.h"
#include "util.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char TRAIN[] =
    "The quick brown fox jumps over the lazy dog. It's 12:30 and we're 3,456 miles away; they'll arrive at 7:45.\n"
    "Don't worry \xe2\x80\x94 it\xe2\x80\x99s fine. <|endoftext|> caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xf0\x9f\x8e\x89\xf0\x9f\x8e\x89  \t\t  \n\n  1234567 x\xc2\xa0y\n";

static tern_tokenizer tok[4];
static tern_pre_pcre *pc[4];
static const int PRES[4] = {TERN_PRE_GPT2, TERN_PRE_LLAMA3, TERN_PRE_SMOLLM, TERN_PRE_QWEN2};

static void init(void) {
    static int done;
    if (done) return;
    done = 1;
    char *text = malloc(64 * sizeof TRAIN);
    size_t n = 0;
    for (int k = 0; k < 64; k++, n += sizeof TRAIN - 1) memcpy(text + n, TRAIN, sizeof TRAIN - 1);
    for (int f = 0; f < 4; f++) {
        tern_tokenizer_train_opts o;
        tern_tokenizer_train_defaults(&o);
        o.kind = TERN_TOK_GPT2;
        o.pre = PRES[f];
        o.vocab_size = 400;
        const char *texts[1] = {text};
        if (tern_tokenizer_train(&tok[f], texts, &n, 1, &o) != 0 || !(pc[f] = tern_pre_pcre_new(PRES[f]))) abort();
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init();
    if (size < 2) return 0;
    int f = data[0] % 4, special = data[1] & 1;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    size_t *e1 = malloc((n + 1) * sizeof(size_t)), *e2 = malloc((n + 1) * sizeof(size_t));
    size_t k1 = tern_pre_split(PRES[f], s, n, e1), k2 = tern_pre_pcre_split(pc[f], s, n, e2);
    if (k1 != k2 || memcmp(e1, e2, k1 * sizeof(size_t))) __builtin_trap();
    free(e1);
    free(e2);
    int *a, na, *b, nb;
    if (tern_tokenizer_encode_ex(&tok[f], s, n, special ? TERN_ENC_SPECIAL : 0, &a, &na) != 0) __builtin_trap();
    char *d;
    size_t dl;
    if (tern_tokenizer_decode_ex(&tok[f], a, (size_t)na, special ? TERN_DEC_SPECIAL : 0, &d, &dl) != 0) __builtin_trap();
    if (dl != n || memcmp(d, s, n)) __builtin_trap();
    free(d);
    if (!special) {
        if (tern_tokenizer_encode_ref(&tok[f], s, n, 0, &b, &nb) != 0) __builtin_trap();
        if (na != nb || memcmp(a, b, (size_t)na * sizeof(int))) __builtin_trap();
        free(b);
    }
    free(a);
    return 0;
}
