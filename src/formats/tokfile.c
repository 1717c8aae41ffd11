// tokfile.c — see tokfile.h
#include "formats/tokfile.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char TF_MAGIC[8] = {'T', 'E', 'R', 'N', 'T', 'O', 'K', 0};

int tern_tokfile_width_for(int vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

int tern_tokfile_open(tern_tokfile *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    size_t size;
    int fd = tern_open_regular(path, &size);   // a directory or FIFO: one clear line, never a hang
    if (fd < 0) return -1;
    if (size < TERN_TOKFILE_HEADER) {
        tern_error("%s: truncated token file (%zu bytes, header needs %d)", path, size, TERN_TOKFILE_HEADER);
        close(fd);
        return -1;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        tern_error("%s: cannot mmap: %s", path, strerror(errno));
        return -1;
    }
    const uint8_t *b = map;
    uint32_t version, hsize, vocab, width;
    uint64_t n, hash;
    memcpy(&version, b + 8, 4);
    memcpy(&hsize, b + 12, 4);
    memcpy(&vocab, b + 16, 4);
    memcpy(&width, b + 20, 4);
    memcpy(&n, b + 24, 8);
    memcpy(&hash, b + 32, 8);
    const char *err = NULL;
    char msg[256];
    if (memcmp(b, TF_MAGIC, 8) != 0) err = "bad magic (not a tern token file)";
    else if (version != TERN_TOKFILE_VERSION) {
        snprintf(msg, sizeof msg, "unsupported token file version %u (this build reads %d)", version, TERN_TOKFILE_VERSION);
        err = msg;
    } else if (hsize != TERN_TOKFILE_HEADER) {
        snprintf(msg, sizeof msg, "bad header size %u (expected %d)", hsize, TERN_TOKFILE_HEADER);
        err = msg;
    } else if (width != 2 && width != 4) {
        snprintf(msg, sizeof msg, "bad token width %u (expected 2 or 4)", width);
        err = msg;
    } else if (vocab == 0 || vocab > (1u << 24) || (width == 2 && vocab > 65536)) {
        snprintf(msg, sizeof msg, "vocab size %u does not fit token width %u", vocab, width);
        err = msg;
    } else if (n > (size - TERN_TOKFILE_HEADER) / width || TERN_TOKFILE_HEADER + n * width != size) {
        snprintf(msg, sizeof msg, "size mismatch: header says %llu tokens of %u bytes (%llu bytes), file has %zu bytes",
                 (unsigned long long)n, width, (unsigned long long)(TERN_TOKFILE_HEADER + n * width), size);
        err = msg;
    }
    if (!err)
        for (int i = 40; i < TERN_TOKFILE_HEADER; i++)
            if (b[i]) {
                err = "reserved header bytes are not zero";
                break;
            }
    if (!err) { // every id < vocab
        const uint8_t *tk = b + TERN_TOKFILE_HEADER;
        uint64_t bad = UINT64_MAX;
        uint32_t badv = 0;
        if (width == 2) {
            const uint16_t *p = (const uint16_t *)tk;
            uint32_t mx = 0;
            for (uint64_t i = 0; i < n; i++) mx = p[i] > mx ? p[i] : mx;
            if (mx >= vocab)
                for (uint64_t i = 0; i < n; i++)
                    if (p[i] >= vocab) { bad = i; badv = p[i]; break; }
        } else {
            const uint32_t *p = (const uint32_t *)tk;
            uint32_t mx = 0;
            for (uint64_t i = 0; i < n; i++) mx = p[i] > mx ? p[i] : mx;
            if (mx >= vocab)
                for (uint64_t i = 0; i < n; i++)
                    if (p[i] >= vocab) { bad = i; badv = p[i]; break; }
        }
        if (bad != UINT64_MAX) {
            snprintf(msg, sizeof msg, "token %llu has id %u >= vocab size %u", (unsigned long long)bad, badv, vocab);
            err = msg;
        }
    }
    if (err) {
        tern_error("%s: %s", path, err);
        munmap(map, size);
        return -1;
    }
    f->vocab_size = (int)vocab;
    f->width = (int)width;
    f->n_tokens = (int64_t)n;
    f->tokenizer_hash = hash;
    f->map = map;
    f->map_size = size;
    f->tokens = b + TERN_TOKFILE_HEADER;
    return 0;
}

void tern_tokfile_close(tern_tokfile *f) {
    if (f->map) munmap(f->map, f->map_size);
    memset(f, 0, sizeof *f);
}

void tern_tokfile_read(const tern_tokfile *f, int64_t i, int64_t n, int *out) {
    if (f->width == 2) {
        const uint16_t *p = (const uint16_t *)f->tokens + i;
        for (int64_t k = 0; k < n; k++) out[k] = p[k];
    } else {
        const uint32_t *p = (const uint32_t *)f->tokens + i;
        for (int64_t k = 0; k < n; k++) out[k] = (int)p[k];
    }
}

static void put_header(uint8_t *h, int vocab, int width, uint64_t n, uint64_t hash) {
    memset(h, 0, TERN_TOKFILE_HEADER);
    uint32_t v32[4] = {TERN_TOKFILE_VERSION, TERN_TOKFILE_HEADER, (uint32_t)vocab, (uint32_t)width};
    memcpy(h, TF_MAGIC, 8);
    memcpy(h + 8, v32, 16);
    memcpy(h + 24, &n, 8);
    memcpy(h + 32, &hash, 8);
}

int tern_tokfile_writer_open(tern_tokfile_writer *w, const char *path, int vocab_size, int width, uint64_t hash) {
    memset(w, 0, sizeof *w);
    if (width == 0) width = tern_tokfile_width_for(vocab_size);
    if (width != 2 && width != 4) {
        tern_error("%s: bad token width %d (2 or 4)", path, width);
        return -1;
    }
    if (vocab_size <= 0 || vocab_size > (1 << 24) || (width == 2 && vocab_size > 65536)) {
        tern_error("%s: vocab size %d does not fit token width %d", path, vocab_size, width);
        return -1;
    }
    if (tern_check_output_path(path) != 0) return -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    tern_tmp_path(path, w->tmp, sizeof w->tmp);
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        tern_error("%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    w->vocab_size = vocab_size;
    w->width = width;
    w->tokenizer_hash = hash;
    uint8_t h[TERN_TOKFILE_HEADER] = {0}; // placeholder (zero magic) until commit
    if (fwrite(h, 1, sizeof h, w->fp) != sizeof h) {
        tern_error("%s: write failed: %s", path, strerror(errno));
        tern_tokfile_writer_abort(w);
        return -1;
    }
    return 0;
}

int tern_tokfile_writer_append(tern_tokfile_writer *w, const int *ids, size_t n) {
    enum { CH = 8192 };
    uint8_t buf[CH * 4];
    for (size_t i = 0; i < n; i += CH) {
        size_t m = n - i < CH ? n - i : CH;
        for (size_t k = 0; k < m; k++) {
            int id = ids[i + k];
            if (id < 0 || id >= w->vocab_size) {
                tern_error("%s: token id %d out of range (vocab size %d)", w->path, id, w->vocab_size);
                tern_tokfile_writer_abort(w);
                return -1;
            }
            if (w->width == 2) {
                uint16_t v = (uint16_t)id;
                memcpy(buf + 2 * k, &v, 2);
            } else {
                uint32_t v = (uint32_t)id;
                memcpy(buf + 4 * k, &v, 4);
            }
        }
        if (fwrite(buf, (size_t)w->width, m, w->fp) != m) {
            tern_error("%s: write failed: %s", w->path, strerror(errno));
            tern_tokfile_writer_abort(w);
            return -1;
        }
    }
    w->n_tokens += (int64_t)n;
    return 0;
}

int tern_tokfile_writer_commit(tern_tokfile_writer *w) {
    uint8_t h[TERN_TOKFILE_HEADER];
    put_header(h, w->vocab_size, w->width, (uint64_t)w->n_tokens, w->tokenizer_hash);
    if (fseek(w->fp, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, w->fp) != sizeof h) {
        tern_error("%s: write failed: %s", w->path, strerror(errno));
        tern_tokfile_writer_abort(w);
        return -1;
    }
    int rc = fclose(w->fp);
    w->fp = NULL;
    if (rc != 0) {
        tern_error("%s: write failed: %s", w->path, strerror(errno));
        tern_discard_file(w->tmp);
        return -1;
    }
    return tern_commit_file(w->tmp, w->path);
}

void tern_tokfile_writer_abort(tern_tokfile_writer *w) {
    if (w->fp) fclose(w->fp);
    w->fp = NULL;
    tern_discard_file(w->tmp);
}

int tern_tokfile_write(const char *path, const int *ids, size_t n, int vocab_size, int width, uint64_t hash) {
    tern_tokfile_writer w;
    if (tern_tokfile_writer_open(&w, path, vocab_size, width, hash) != 0) return -1;
    if (tern_tokfile_writer_append(&w, ids, n) != 0) return -1;
    return tern_tokfile_writer_commit(&w);
}
