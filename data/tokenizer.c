// tokenizer.c — tern-tokenizer: train a tokenizer (SentencePiece-style or byte-level BPE),
// encode text into token files (with a train/validation split), decode token files, print the
// ids of a text, convert between tern's .tkz and Hugging Face's tokenizer.json, write a
// vocab-only GGUF, show info, benchmark encoding.
//
//   tern-tokenizer train   -o TOK [-v VOCAB] [--kind llama|bytelevel] [--pre llama3|gpt2|smollm|qwen2]
//                          [--nfc] [--coverage F] [-q] TEXT...
//   tern-tokenizer encode  -t TOK -o OUT.tok [--val VAL.tok] [--val-frac F] [--width 2|4] [--no-bos]
//                          [--special] [-q] TEXT...
//   tern-tokenizer decode  -t TOK [-o OUT.txt] [--special] IN.tok
//   tern-tokenizer ids     -t TOK [--bos] [--eos] [--special] [TEXT...|-]   (one line of ids per text)
//   tern-tokenizer convert IN OUT
//   tern-tokenizer gguf    -t TOK -o VOCAB.gguf
//   tern-tokenizer info    TOK|IN.tok
//   tern-tokenizer bench   -t TOK [--reps N] TEXT
// TOK is a tern tokenizer (.tkz) or a Hugging Face tokenizer.json (told apart by content); an
// output TOK whose name ends in .json is written as tokenizer.json (plus tokenizer_config.json
// in the same directory). Every error is one line "tern-tokenizer: <file>: <problem>" and exit
// status 1; outputs are written to a temporary file and renamed, so a failed run leaves nothing
// behind.
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_gguf.h"
#include "tokenizers/tokenizer_json.h"
#include "tokenizers/pretokenizer_pcre.h"
#include "formats/gguf.h"
#include "formats/tokfile.h"
#include "util.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *PROG = "tern-tokenizer";

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s train   -o TOK [-v VOCAB] [--kind llama|bytelevel] [--pre llama3|gpt2|smollm|qwen2]\n"
            "                         [--nfc] [--coverage F] [-q] TEXT...\n"
            "       %s encode  -t TOK -o OUT.tok [--val VAL.tok] [--val-frac F] [--width 2|4] [--no-bos]\n"
            "                         [--special] [-q] TEXT...\n"
            "       %s decode  -t TOK [-o OUT.txt] [--special] IN.tok\n"
            "       %s ids     -t TOK [--bos] [--eos] [--special] [TEXT...|-]\n"
            "       %s convert IN OUT\n"
            "       %s gguf    -t TOK -o VOCAB.gguf\n"
            "       %s info    TOK|IN.tok\n"
            "       %s bench   -t TOK [--reps N] TEXT\n"
            "TOK: a tern tokenizer (.tkz) or a Hugging Face tokenizer.json; an output TOK ending in .json is\n"
            "written as tokenizer.json (and tokenizer_config.json beside it). --kind bytelevel trains a\n"
            "byte-level BPE (GGUF \"gpt2\") with the family's pre-tokenizer (--pre, default llama3);\n"
            "--nfc normalizes text to NFC (as Qwen2's tokenizer.json does); --special matches control\n"
            "tokens (e.g. <|endoftext|>) written in the text.\n"
            "  -v 260..16777216 (llama), 256 + specials..16777216 (bytelevel)   --coverage (0, 1]\n"
            "  --val-frac (0, 1)   --width 2|4   --reps 1..1000\n"
            "  outputs (-o, --val) are written to a temporary file and renamed; never onto a directory or device\n",
            PROG, PROG, PROG, PROG, PROG, PROG, PROG, PROG);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", PROG);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}
static int fail_last(void) { return fail("%s", tern_last_error()); }

typedef struct {
    const char *out, *tok, *val;
    long vocab, width, reps;
    float coverage, val_frac;
    int quiet, no_bos, bos, eos, special, kind, pre, nfc, help;
    const char **files;
    int n_files;
} args;

static int parse_args(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->vocab = 4096;
    a->coverage = 0.9995f;
    a->val_frac = -1;
    a->reps = 5;
    a->kind = TERN_TOK_LLAMA;
    a->pre = -1;
    a->files = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        int more = i + 1 < argc;
#define NEED()                                                                 \
    do {                                                                       \
        if (!more) return fail("%s: missing value (try %s --help)", s, PROG); \
    } while (0)
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) { usage(stdout); a->help = 1; return 0; }
        if (!strcmp(s, "-o")) { NEED(); a->out = argv[++i]; }
        else if (!strcmp(s, "-t")) { NEED(); a->tok = argv[++i]; }
        else if (!strcmp(s, "--val")) { NEED(); a->val = argv[++i]; }
        else if (!strcmp(s, "-v") || !strcmp(s, "--vocab")) {
            NEED();
            if (tern_parse_long(argv[++i], &a->vocab) != 0) return fail("%s: not an integer: '%s'", s, argv[i]);
        } else if (!strcmp(s, "--width")) {
            NEED();
            if (tern_parse_long(argv[++i], &a->width) != 0 || (a->width != 2 && a->width != 4))
                return fail("--width: must be 2 or 4, got '%s'", argv[i]);
        } else if (!strcmp(s, "--reps")) {
            NEED();
            if (tern_parse_long(argv[++i], &a->reps) != 0 || a->reps < 1 || a->reps > 1000)
                return fail("--reps: must be in [1, 1000], got '%s'", argv[i]);
        } else if (!strcmp(s, "--coverage")) {
            NEED();
            if (tern_parse_float(argv[++i], &a->coverage) != 0 || !(a->coverage > 0 && a->coverage <= 1))
                return fail("--coverage: must be in (0, 1], got '%s'", argv[i]);
        } else if (!strcmp(s, "--val-frac")) {
            NEED();
            if (tern_parse_float(argv[++i], &a->val_frac) != 0 || !(a->val_frac > 0 && a->val_frac < 1))
                return fail("--val-frac: must be in (0, 1), got '%s'", argv[i]);
        } else if (!strcmp(s, "--kind")) {
            NEED();
            const char *k = argv[++i];
            if (!strcmp(k, "llama") || !strcmp(k, "spm")) a->kind = TERN_TOK_LLAMA;
            else if (!strcmp(k, "bytelevel") || !strcmp(k, "gpt2")) a->kind = TERN_TOK_GPT2;
            else return fail("--kind: must be llama or bytelevel, got '%s'", k);
        } else if (!strcmp(s, "--pre")) {
            NEED();
            a->pre = tern_pre_from_name(argv[++i]);
            if (a->pre < 0) return fail("--pre: must be one of %s, got '%s'", tern_pre_names(), argv[i]);
        } else if (!strcmp(s, "-q")) a->quiet = 1;
        else if (!strcmp(s, "--no-bos")) a->no_bos = 1;
        else if (!strcmp(s, "--bos")) a->bos = 1;
        else if (!strcmp(s, "--eos")) a->eos = 1;
        else if (!strcmp(s, "--special")) a->special = 1;
        else if (!strcmp(s, "--nfc")) a->nfc = 1;
        else if (!strcmp(s, "-")) a->files[a->n_files++] = s;
        else if (s[0] == '-' && s[1]) return fail("unknown option '%s' (try %s --help)", s, PROG);
        else a->files[a->n_files++] = s;
#undef NEED
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

// .json: tokenizer.json (+ tokenizer_config.json beside it), else tern's .tkz
// (a note names the pieces whose type tokenizer.json cannot keep)
static int save_tok(const tern_tokenizer *t, const char *path) {
    if (!ends_with(path, ".json")) return tern_tokenizer_save(t, path);
    int n = 0, first = -1;
    for (int i = 0; i < t->vocab_size; i++)
        if (tern_tokenizer_json_type(t, i) != t->types[i]) n++, first = first < 0 ? i : first;
    if (n)
        fprintf(stderr,
                "%s: note: %s: tokenizer.json cannot keep the type of %d piece%s (first: id %d; unused pieces and "
                "unknown ones other than unk are written as special tokens and read back as control)\n",
                PROG, path, n, n == 1 ? "" : "s", first);
    return tern_tokenizer_save_json(t, path);
}

static int cmd_train(args *a) {
    if (!a->out) return fail("train: missing -o TOKENIZER");
    if (tern_check_output_path(a->out) != 0) return fail_last();
    if (a->n_files == 0) return fail("train: no input text files");
    if (a->pre >= 0 && a->kind != TERN_TOK_GPT2) return fail("train: --pre needs --kind bytelevel");
    if (a->nfc && a->kind != TERN_TOK_GPT2) return fail("train: --nfc needs --kind bytelevel");
    if (a->kind == TERN_TOK_LLAMA && (a->vocab < TERN_TOK_MIN_VOCAB || a->vocab > TERN_TOK_MAX_VOCAB))
        return fail("train: vocab size %ld out of range (minimum %d = 3 control + 256 byte pieces + \"\xe2\x96\x81\"; "
                    "maximum %d)",
                    a->vocab, TERN_TOK_MIN_VOCAB, TERN_TOK_MAX_VOCAB);
    if (a->kind == TERN_TOK_GPT2) {
        tern_tokenizer_specials sp;
        tern_tokenizer_family_specials(a->pre >= 0 ? a->pre : TERN_PRE_LLAMA3, &sp);
        if (a->vocab < 256 + sp.n || a->vocab > TERN_TOK_MAX_VOCAB)
            return fail("train: vocab size %ld out of range for a byte-level tokenizer (minimum %d = 256 byte pieces + "
                        "%d special tokens; maximum %d)",
                        a->vocab, 256 + sp.n, sp.n, TERN_TOK_MAX_VOCAB);
    }
    char **texts = calloc((size_t)a->n_files, sizeof(char *));
    size_t *lens = calloc((size_t)a->n_files, sizeof(size_t));
    int rc = 1;
    for (int i = 0; i < a->n_files; i++) {
        texts[i] = tern_read_file(a->files[i], &lens[i]);
        if (!texts[i]) { rc = fail_last(); goto done; }
        if (lens[i] == 0) { rc = fail("%s: empty file (nothing to train on)", a->files[i]); goto done; }
    }
    tern_tokenizer_train_opts o;
    tern_tokenizer_train_defaults(&o);
    o.vocab_size = (int)a->vocab;
    o.char_coverage = a->coverage;
    o.verbose = !a->quiet;
    o.kind = a->kind;
    o.nfc = a->nfc;
    if (a->pre >= 0) o.pre = a->pre;
    tern_tokenizer t;
    double t0 = tern_time();
    if (tern_tokenizer_train(&t, (const char *const *)texts, lens, a->n_files, &o) != 0) { rc = fail_last(); goto done; }
    double dt = tern_time() - t0;
    if (save_tok(&t, a->out) != 0) {
        tern_tokenizer_free(&t);
        rc = fail_last();
        goto done;
    }
    if (t.vocab_size < a->vocab)
        fprintf(stderr, "%s: note: the text has only enough pairs for %d pieces (asked %ld)\n", PROG, t.vocab_size,
                a->vocab);
    if (!a->quiet)
        printf("trained vocab %d (%s%s%s) in %.3f s -> %s (hash %016llx)\n", t.vocab_size,
               t.kind == TERN_TOK_GPT2 ? "byte-level, pre-tokenizer " : "SentencePiece-style",
               t.kind == TERN_TOK_GPT2 ? tern_pre_name(t.pre) : "", "", dt, a->out, (unsigned long long)t.hash);
    tern_tokenizer_free(&t);
    rc = 0;
done:
    for (int i = 0; i < a->n_files; i++) free(texts[i]);
    free(texts);
    free(lens);
    return rc;
}

// ---------------------------------------------------------------------------------------------

// Where to cut text for the validation split: the start of the first line at or after pos that
// follows a blank line (a paragraph / document boundary), else the first line start after pos,
// else the first space after pos, else pos.
static size_t doc_cut(const char *s, size_t n, size_t pos) {
    for (size_t i = pos; i + 1 < n; i++) {
        if (s[i] != '\n' || i == 0) continue;
        size_t j = i; // the line ending at i: (prev '\n', i)
        int blank = 1;
        while (j > 0 && s[j - 1] != '\n') {
            char c = s[j - 1];
            if (c != ' ' && c != '\t' && c != '\r') { blank = 0; break; }
            j--;
        }
        if (blank && j > 0) return i + 1;
    }
    for (size_t i = pos; i + 1 < n; i++)
        if (s[i] == '\n') return i + 1;
    for (size_t i = pos; i < n; i++)
        if (s[i] == ' ') return i;
    return pos;
}

typedef struct {
    size_t done, total;
    double t0, last;
    int show;
} progress;

static void progress_update(progress *p, size_t add) {
    p->done += add;
    if (!p->show) return;
    double now = tern_time();
    if (now - p->last < 0.2 && p->done < p->total) return;
    p->last = now;
    int w = 40, k = p->total ? (int)((double)p->done / (double)p->total * w) : w;
    double el = now - p->t0;
    fprintf(stderr, "\r[%.*s%*s] %5.1f%% %7.1f MB  %6.1f MB/s", k, "########################################", w - k, "",
            100.0 * (double)p->done / (double)(p->total ? p->total : 1), p->done / 1e6, el > 0 ? p->done / 1e6 / el : 0.0);
    if (p->done >= p->total) fputc('\n', stderr);
}

#define BLOCK_BYTES (4u << 20)

// Encode one text (as one document: bos + space prefix) in blocks, appending to w.
static int encode_text(const tern_tokenizer *t, const char *s, size_t n, int bos, int special, tern_tokfile_writer *w,
                       progress *p, int64_t *ntok) {
    size_t a = 0;
    int first = 1;
    while (first || a < n) {
        size_t b = n - a > BLOCK_BYTES ? tern_tokenizer_split_point(t, s, n, a + BLOCK_BYTES) : n;
        int *ids, m;
        int fl = (first && bos ? TERN_ENC_BOS : 0) | (first ? 0 : TERN_ENC_CONTINUE) | (special ? TERN_ENC_SPECIAL : 0);
        if (tern_tokenizer_encode_ex(t, s + a, b - a, fl, &ids, &m) != 0) return -1;
        int rc = tern_tokfile_writer_append(w, ids, (size_t)m);
        free(ids);
        if (rc != 0) return -1;
        *ntok += m;
        progress_update(p, b - a);
        a = b;
        first = 0;
    }
    return 0;
}

static int cmd_encode(args *a) {
    if (!a->tok) return fail("encode: missing -t TOKENIZER");
    if (!a->out) return fail("encode: missing -o OUT.tok");
    if (a->n_files == 0) return fail("encode: no input text files");
    if (a->val_frac > 0 && !a->val) return fail("encode: --val-frac needs --val VAL.tok");
    if (tern_check_output_path(a->out) != 0 || (a->val && tern_check_output_path(a->val) != 0)) return fail_last();
    if (a->val && !strcmp(a->val, a->out)) return fail("encode: -o and --val are the same file '%s'", a->out);
    float frac = a->val ? (a->val_frac > 0 ? a->val_frac : 0.1f) : 0.0f;
    tern_tokenizer t;
    if (tern_tokenizer_load_any(&t, a->tok) != 0) return fail_last();
    if (!a->no_bos && t.bos_id < 0) {
        tern_tokenizer_free(&t);
        return fail("%s: the tokenizer has no bos token to start each text with (use --no-bos)", a->tok);
    }
    int width = a->width ? (int)a->width : tern_tokfile_width_for(t.vocab_size);
    if (width == 2 && t.vocab_size > 65536) {
        tern_tokenizer_free(&t);
        return fail("%s: vocab size %d does not fit token width 2 (use --width 4)", a->tok, t.vocab_size);
    }
    char **texts = calloc((size_t)a->n_files, sizeof(char *));
    size_t *lens = calloc((size_t)a->n_files, sizeof(size_t)), total = 0;
    tern_tokfile_writer wt, wv;
    int rc = 1, open_t = 0, open_v = 0;
    for (int i = 0; i < a->n_files; i++) {
        texts[i] = tern_read_file(a->files[i], &lens[i]);
        if (!texts[i]) { rc = fail_last(); goto done; }
        if (lens[i] == 0) { rc = fail("%s: empty file (nothing to tokenize)", a->files[i]); goto done; }
        total += lens[i];
    }
    if (tern_tokfile_writer_open(&wt, a->out, t.vocab_size, width, t.hash) != 0) { rc = fail_last(); goto done; }
    open_t = 1;
    if (a->val) {
        if (tern_tokfile_writer_open(&wv, a->val, t.vocab_size, width, t.hash) != 0) { rc = fail_last(); goto done; }
        open_v = 1;
    }
    progress p = {0, total, tern_time(), 0, !a->quiet && total >= (8u << 20)};
    int64_t ntrain = 0, nval = 0;
    size_t btrain = 0, bval = 0;
    for (int i = 0; i < a->n_files; i++) {
        size_t cut = lens[i];
        if (frac > 0) {
            cut = doc_cut(texts[i], lens[i], (size_t)((1.0 - frac) * (double)lens[i]));
            if (cut == 0 || cut >= lens[i]) {
                rc = fail("%s: too short to split off a validation part (%zu bytes)", a->files[i], lens[i]);
                goto done;
            }
        }
        if (encode_text(&t, texts[i], cut, !a->no_bos, a->special, &wt, &p, &ntrain) != 0) { rc = fail_last(); goto done; }
        btrain += cut;
        if (cut < lens[i]) {
            if (encode_text(&t, texts[i] + cut, lens[i] - cut, !a->no_bos, a->special, &wv, &p, &nval) != 0) { rc = fail_last(); goto done; }
            bval += lens[i] - cut;
        }
    }
    open_t = 0;
    if (tern_tokfile_writer_commit(&wt) != 0) { rc = fail_last(); goto done; }
    if (open_v) {
        open_v = 0;
        if (tern_tokfile_writer_commit(&wv) != 0) {
            unlink(a->out);
            rc = fail_last();
            goto done;
        }
    }
    double dt = tern_time() - p.t0;
    if (!a->quiet) {
        printf("%s: %lld tokens from %.2f MB (%.3f bytes/token)\n", a->out, (long long)ntrain, btrain / 1e6,
               ntrain ? (double)btrain / (double)ntrain : 0.0);
        if (a->val)
            printf("%s: %lld tokens from %.2f MB (%.3f bytes/token)\n", a->val, (long long)nval, bval / 1e6,
                   nval ? (double)bval / (double)nval : 0.0);
        printf("encoded %.2f MB in %.3f s (%.1f MB/s)\n", total / 1e6, dt, dt > 0 ? total / 1e6 / dt : 0.0);
    }
    rc = 0;
done:
    if (open_t) tern_tokfile_writer_abort(&wt);
    if (open_v) tern_tokfile_writer_abort(&wv);
    for (int i = 0; i < a->n_files; i++) free(texts[i]);
    free(texts);
    free(lens);
    tern_tokenizer_free(&t);
    return rc;
}

// ---------------------------------------------------------------------------------------------

static int cmd_decode(args *a) {
    if (!a->tok) return fail("decode: missing -t TOKENIZER");
    if (a->out && tern_check_output_path(a->out) != 0) return fail_last();
    if (a->n_files != 1) return fail("decode: give exactly one token file");
    tern_tokenizer t;
    if (tern_tokenizer_load_any(&t, a->tok) != 0) return fail_last();
    tern_tokfile f;
    if (tern_tokfile_open(&f, a->files[0]) != 0) {
        tern_tokenizer_free(&t);
        return fail_last();
    }
    int rc = 1;
    char *text = NULL;
    int *ids = NULL;
    if (f.tokenizer_hash != t.hash || f.vocab_size != t.vocab_size) {
        rc = fail("%s: made with a different tokenizer (hash %016llx, vocab %d) than %s (hash %016llx, vocab %d)",
                  a->files[0], (unsigned long long)f.tokenizer_hash, f.vocab_size, a->tok, (unsigned long long)t.hash,
                  t.vocab_size);
        goto done;
    }
    ids = tern_xmalloc(((size_t)f.n_tokens + 1) * sizeof(int));
    tern_tokfile_read(&f, 0, f.n_tokens, ids);
    size_t len;
    if (tern_tokenizer_decode_ex(&t, ids, (size_t)f.n_tokens, a->special ? TERN_DEC_SPECIAL : 0, &text, &len) != 0) { rc = fail("%s: %s", a->files[0], tern_last_error()); goto done; }
    if (a->out) {
        char tmp[4200];
        tern_tmp_path(a->out, tmp, sizeof tmp);
        FILE *fp = fopen(tmp, "wb");
        if (!fp) { rc = fail("%s: cannot create", a->out); goto done; }
        int ok = fwrite(text, 1, len, fp) == len;
        ok = fclose(fp) == 0 && ok;
        if (!ok) {
            tern_discard_file(tmp);
            rc = fail("%s: write failed", a->out);
            goto done;
        }
        if (tern_commit_file(tmp, a->out) != 0) { rc = fail_last(); goto done; }
    } else if (fwrite(text, 1, len, stdout) != len) {
        rc = fail("stdout: write failed");
        goto done;
    }
    rc = 0;
done:
    free(text);
    free(ids);
    tern_tokfile_close(&f);
    tern_tokenizer_free(&t);
    return rc;
}

static const char *type_name(int ty) {
    static const char *n[] = {"?", "normal", "unknown", "control", "user-defined", "unused", "byte"};
    return ty >= 0 && ty <= 6 ? n[ty] : "?";
}

static int cmd_info(args *a) {
    if (a->n_files != 1) return fail("info: give one tokenizer or token file");
    const char *path = a->files[0];
    char magic[8] = {0};
    size_t size;
    int fd = tern_open_regular(path, &size);   // a FIFO or directory is refused, never waited on
    if (fd < 0) return fail_last();
    ssize_t got = read(fd, magic, 8);
    close(fd);
    if (got == 8 && !memcmp(magic, "TERNTOK\0", 8)) {
        tern_tokfile f;
        if (tern_tokfile_open(&f, path) != 0) return fail_last();
        printf("%s: tern token file v%d, %lld tokens, vocab %d, %d-byte ids, tokenizer hash %016llx\n", path,
               TERN_TOKFILE_VERSION, (long long)f.n_tokens, f.vocab_size, f.width, (unsigned long long)f.tokenizer_hash);
        tern_tokfile_close(&f);
        return 0;
    }
    tern_tokenizer t;
    if (tern_tokenizer_load_any(&t, path) != 0) return fail_last();
    const char *fmt = got == 8 && !memcmp(magic, "TERNTKZ\0", 8) ? "tern tokenizer" : "tokenizer.json";
    int count[8] = {0};
    for (int i = 0; i < t.vocab_size; i++) count[t.types[i] >= 0 && t.types[i] <= 7 ? t.types[i] : 0]++;
    if (t.kind == TERN_TOK_LLAMA) {
        int nchar = 0;
        for (int i = 0; i < t.vocab_size; i++)
            if (t.types[i] == TERN_PIECE_NORMAL && t.scores[i] == 0.0f) nchar++;
        printf("%s: %s, kind llama (SentencePiece-style BPE), vocab %d (%d control, %d byte, %d characters, %d merged "
               "pieces, %d user-defined), hash %016llx\n",
               path, fmt, t.vocab_size, count[TERN_PIECE_CONTROL] + count[TERN_PIECE_UNKNOWN], count[TERN_PIECE_BYTE],
               nchar, count[TERN_PIECE_NORMAL] - nchar, count[TERN_PIECE_USER], (unsigned long long)t.hash);
    } else {
        printf("%s: %s, kind gpt2 (byte-level BPE), pre-tokenizer %s (GGUF \"%s\"), vocab %d (%d normal, %d control, "
               "%d user-defined), %d merges%s, hash %016llx\n",
               path, fmt, tern_pre_name(t.pre), tern_pre_gguf_name(t.pre), t.vocab_size, count[TERN_PIECE_NORMAL],
               count[TERN_PIECE_CONTROL] + count[TERN_PIECE_UNKNOWN] + count[TERN_PIECE_UNUSED], count[TERN_PIECE_USER],
               t.n_merges, t.ignore_merges ? " (ignore_merges)" : t.nfc ? " (NFC normalizer)" : "", (unsigned long long)t.hash);
    }
    printf("  bos %d%s%s, eos %d%s%s, unk %d; bos added by default: %s, eos: %s\n", t.bos_id,
           t.bos_id >= 0 ? " " : "", t.bos_id >= 0 ? t.pieces[t.bos_id] : "", t.eos_id, t.eos_id >= 0 ? " " : "",
           t.eos_id >= 0 ? t.pieces[t.eos_id] : "", t.unk_id, t.add_bos ? "yes" : "no", t.add_eos ? "yes" : "no");
    int shown = 0;
    for (int i = 0; i < t.vocab_size && shown < 12; i++) {
        int ty = t.types[i];
        if (ty != TERN_PIECE_CONTROL && ty != TERN_PIECE_USER && ty != TERN_PIECE_UNKNOWN) continue;
        printf("%s%d %s (%s%s%s)", shown ? ", " : "  added tokens: ", i, t.pieces[i], type_name(ty),
               t.attrs[i] & TERN_ATTR_LSTRIP ? ", lstrip" : "", t.attrs[i] & TERN_ATTR_RSTRIP ? ", rstrip" : "");
        shown++;
    }
    if (shown) printf("%s\n", count[TERN_PIECE_CONTROL] + count[TERN_PIECE_USER] + count[TERN_PIECE_UNKNOWN] > shown ? ", ..." : "");
    tern_tokenizer_free(&t);
    return 0;
}

static char *read_input(const char *path, size_t *n) {
    if (strcmp(path, "-") != 0) return tern_read_file(path, n);
    size_t cap = 1 << 16, k = 0;
    char *b = tern_xmalloc(cap + 1);
    for (size_t r; (r = fread(b + k, 1, cap - k, stdin)) > 0;) {
        k += r;
        if (k == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
            if (!b) tern_fatal("out of memory");
        }
    }
    if (ferror(stdin)) {
        free(b);
        tern_error("stdin: read error");
        return NULL;
    }
    b[k] = 0;
    *n = k;
    return b;
}

// the ids of each text (files, or stdin), one line per text
static int cmd_ids(args *a) {
    if (!a->tok) return fail("ids: missing -t TOKENIZER");
    tern_tokenizer t;
    if (tern_tokenizer_load_any(&t, a->tok) != 0) return fail_last();
    int fl = (a->bos ? TERN_ENC_BOS : 0) | (a->eos ? TERN_ENC_EOS : 0) | (a->special ? TERN_ENC_SPECIAL : 0), rc = 0;
    for (int f = 0; f < (a->n_files ? a->n_files : 1) && !rc; f++) {
        const char *path = a->n_files ? a->files[f] : "-";
        size_t n;
        char *text = read_input(path, &n);
        if (!text) {
            rc = fail_last();
            break;
        }
        int *ids, m;
        if (tern_tokenizer_encode_ex(&t, text, n, fl, &ids, &m) != 0) rc = fail("%s: %s", a->tok, tern_last_error());
        else {
            for (int i = 0; i < m; i++) printf("%s%d", i ? " " : "", ids[i]);
            printf("\n");
            free(ids);
        }
        free(text);
    }
    tern_tokenizer_free(&t);
    return rc;
}

static int cmd_convert(args *a) {
    if (a->n_files != 2) return fail("convert: usage: convert IN OUT (OUT ending in .json: tokenizer.json, else .tkz)");
    tern_tokenizer t;
    if (tern_tokenizer_load_any(&t, a->files[0]) != 0) return fail_last();
    int rc = save_tok(&t, a->files[1]) != 0 ? fail_last() : 0;
    if (!rc && !a->quiet)
        printf("%s -> %s: kind %s, vocab %d, hash %016llx\n", a->files[0], a->files[1], tern_tokenizer_kind_name(t.kind),
               t.vocab_size, (unsigned long long)t.hash);
    tern_tokenizer_free(&t);
    return rc;
}

// A vocab-only GGUF (architecture llama, a few hyperparameters, no tensors) that llama.cpp
// loads with vocab_only to tokenize as tern's exported models would.
static int cmd_gguf(args *a) {
    if (!a->tok || !a->out) return fail("gguf: usage: gguf -t TOK -o VOCAB.gguf");
    tern_tokenizer t;
    if (tern_tokenizer_load_any(&t, a->tok) != 0) return fail_last();
    tern_gguf_writer *w = tern_gguf_writer_new();
    int ok = tern_gguf_add_str(w, "general.architecture", "llama") == 0 &&
             tern_gguf_add_u32(w, "llama.context_length", 256) == 0 && tern_gguf_add_u32(w, "llama.embedding_length", 64) == 0 &&
             tern_gguf_add_u32(w, "llama.block_count", 1) == 0 && tern_gguf_add_u32(w, "llama.feed_forward_length", 128) == 0 &&
             tern_gguf_add_u32(w, "llama.attention.head_count", 4) == 0 &&
             tern_gguf_add_u32(w, "llama.attention.head_count_kv", 4) == 0 &&
             tern_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f) == 0 &&
             tern_tokenizer_gguf_write(&t, w) == 0;
    int rc = 0;
    if (!ok) rc = fail("%s: %s", a->out, tern_last_error());
    else if (tern_gguf_write(w, a->out) != 0) rc = fail_last();
    tern_gguf_writer_free(w);
    tern_tokenizer_free(&t);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

static int cmd_bench(args *a) {
    if (!a->tok || a->n_files != 1) return fail("bench: usage: bench -t TOK [--reps N] TEXT");
    tern_tokenizer t;
    double tl = tern_time();
    if (tern_tokenizer_load_any(&t, a->tok) != 0) return fail_last();
    tl = tern_time() - tl;
    size_t n;
    char *text = tern_read_file(a->files[0], &n);
    if (!text) {
        tern_tokenizer_free(&t);
        return fail_last();
    }
    double *ts = calloc((size_t)a->reps, sizeof(double));
    int ntok = 0;
    for (long r = 0; r < a->reps; r++) {
        int *ids;
        double t0 = tern_time();
        if (tern_tokenizer_encode(&t, text, n, 0, &ids, &ntok) != 0) return fail_last();
        ts[r] = tern_time() - t0;
        free(ids);
    }
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    double med = median(ts, a->reps);
    printf("encode %s with %s (%s%s%s, vocab %d, loaded in %.3f s): %.2f MB, %d tokens, %.3f bytes/token, "
           "median %.3f s = %.1f MB/s (%d threads, %ld reps)\n",
           a->files[0], a->tok, tern_tokenizer_kind_name(t.kind), t.kind == TERN_TOK_GPT2 ? ", pre-tokenizer " : "",
           t.kind == TERN_TOK_GPT2 ? tern_pre_name(t.pre) : "", t.vocab_size, tl, n / 1e6, ntok, (double)n / ntok, med,
           n / 1e6 / med, nt, a->reps);
    if (t.kind == TERN_TOK_GPT2) { // the pre-tokenizer alone: tern's matcher against PCRE2 (JIT), one thread
        size_t *e1 = tern_xmalloc((n + 1) * sizeof(size_t)), *e2 = tern_xmalloc((n + 1) * sizeof(size_t)), k1 = 0, k2 = 0;
        double *t2 = calloc((size_t)a->reps, sizeof(double));
        tern_pre_pcre *pc = tern_pre_pcre_new(t.pre);
        if (!pc) return fail_last();
        for (long r = 0; r < a->reps; r++) {
            double t0 = tern_time();
            k1 = tern_pre_split(t.pre, text, n, e1);
            ts[r] = tern_time() - t0;
            t0 = tern_time();
            k2 = tern_pre_pcre_split(pc, text, n, e2);
            t2[r] = tern_time() - t0;
        }
        int same = k1 == k2 && !memcmp(e1, e2, k1 * sizeof(size_t));
        double m1 = median(ts, a->reps), m2 = median(t2, a->reps);
        printf("pre-tokenizer %s alone, 1 thread: tern %.1f MB/s, PCRE2 %.1f MB/s (%.2fx); %zu words, %s\n",
               tern_pre_name(t.pre), n / 1e6 / m1, n / 1e6 / m2, m2 / m1, k1,
               same ? "identical splits" : "SPLITS DIFFER");
        tern_pre_pcre_free(pc);
        free(e1);
        free(e2);
        free(t2);
        if (!same) {
            free(ts);
            free(text);
            tern_tokenizer_free(&t);
            return fail("bench: tern's pre-tokenizer and PCRE2 disagree on %s", a->files[0]);
        }
    }
    free(ts);
    free(text);
    tern_tokenizer_free(&t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    args a;
    if (parse_args(argc, argv, &a) != 0) {
        free(a.files);
        return 1;
    }
    if (a.help) {
        free(a.files);
        return 0;
    }
    const char *c = argv[1];
    int rc;
    if (!strcmp(c, "train")) rc = cmd_train(&a);
    else if (!strcmp(c, "encode")) rc = cmd_encode(&a);
    else if (!strcmp(c, "decode")) rc = cmd_decode(&a);
    else if (!strcmp(c, "info")) rc = cmd_info(&a);
    else if (!strcmp(c, "bench")) rc = cmd_bench(&a);
    else if (!strcmp(c, "ids")) rc = cmd_ids(&a);
    else if (!strcmp(c, "convert")) rc = cmd_convert(&a);
    else if (!strcmp(c, "gguf")) rc = cmd_gguf(&a);
    else {
        usage(stderr);
        rc = fail("unknown command '%s'", c);
    }
    free(a.files);
    return rc;
}
