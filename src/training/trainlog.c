// trainlog.c — CSV training log and progress line (see trainlog.h).
#include "training/trainlog.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Rewrites path keeping the header and the rows with step <= keep_upto. 0 or -1.
static int trim_rows(const char *path, char *text, long keep_upto) {
    char tmp[4200];
    tern_tmp_path(path, tmp, sizeof tmp);
    FILE *o = fopen(tmp, "w");
    if (!o) { tern_error("%s: cannot create %s: %s", path, tmp, strerror(errno)); return -1; }
    char *save = NULL;
    int first = 1;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!first) {
            char *end;
            long step = strtol(line, &end, 10);
            if (end == line || *end != ',') continue;    // malformed (e.g. a half-written last row)
            if (step > keep_upto) continue;
        }
        first = 0;
        fputs(line, o);
        fputc('\n', o);
    }
    if (fflush(o) != 0 || ferror(o)) {
        fclose(o);
        tern_discard_file(tmp);
        tern_error("%s: write failed", path);
        return -1;
    }
    fclose(o);
    return tern_commit_file(tmp, path);
}

int tern_trainlog_open(tern_trainlog *l, const char *path, long keep_upto) {
    memset(l, 0, sizeof *l);
    snprintf(l->path, sizeof l->path, "%s", path);
    const char *hdr = TERN_TRAINLOG_HEADER;
    int need_header = 1;
    if (access(path, F_OK) == 0) {
        size_t n;
        char *text = tern_read_file(path, &n);
        if (!text) return -1;
        if (n > 0) {
            size_t hl = strlen(hdr);
            if (n < hl || strncmp(text, hdr, hl) != 0 || (text[hl] != '\n' && text[hl] != 0)) {
                tern_error("%s: not a tern training log (first line is not '%s')", path, hdr);
                free(text);
                return -1;
            }
            need_header = 0;
            if (keep_upto >= 0 && trim_rows(path, text, keep_upto) != 0) { free(text); return -1; }
        }
        free(text);
    }
    l->f = fopen(path, "a");
    if (!l->f) { tern_error("%s: cannot open for appending: %s", path, strerror(errno)); return -1; }
    if (need_header && (fprintf(l->f, "%s\n", hdr) < 0 || fflush(l->f) != 0)) {
        tern_error("%s: write failed", path);
        fclose(l->f);
        l->f = NULL;
        return -1;
    }
    return 0;
}

int tern_trainlog_row(tern_trainlog *l, long step, long tokens, float loss, float lr, double grad_norm,
                      double tokens_per_s, float val_loss) {
    if (!l->f) { tern_error("%s: log is not open", l->path); return -1; }
    char val[32] = "";
    if (!isnan(val_loss)) snprintf(val, sizeof val, "%.6f", (double)val_loss);
    if (fprintf(l->f, "%ld,%ld,%.6f,%.6g,%.6g,%.1f,%s\n", step, tokens, (double)loss, (double)lr, grad_norm,
                tokens_per_s, val) < 0 ||
        fflush(l->f) != 0) {
        tern_error("%s: write failed: %s", l->path, strerror(errno));
        return -1;
    }
    return 0;
}

void tern_trainlog_close(tern_trainlog *l) {
    if (l->f) fclose(l->f);
    l->f = NULL;
}

// ---- formatting -----------------------------------------------------------------------------

void tern_format_duration(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t < 60) snprintf(buf, n, "%lds", t);
    else if (t < 3600) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

void tern_format_rate(double r, char *buf, size_t n) {
    if (!isfinite(r) || r < 0) snprintf(buf, n, "?");
    else if (r < 999.5) snprintf(buf, n, "%.0f", r);
    else if (r < 999.5e3) snprintf(buf, n, "%.1fk", r / 1e3);
    else snprintf(buf, n, "%.2fM", r / 1e6);
}

void tern_format_sci(double x, char *buf, size_t n) {
    if (x == 0) { snprintf(buf, n, "0"); return; }
    if (!isfinite(x)) { snprintf(buf, n, "%g", x); return; }
    int e = (int)floor(log10(fabs(x)));
    double m = x / pow(10.0, e);
    m = round(m * 10.0) / 10.0;
    if (fabs(m) >= 10.0) { m /= 10.0; e++; }
    snprintf(buf, n, "%.1fe%d", m, e);
}

void tern_progress_init(tern_progress *p, FILE *f, long every) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->every = every > 0 ? every : 1;
    const char *env = getenv("TERN_PROGRESS");
    p->tty = isatty(fileno(f)) && !(env && strcmp(env, "lines") == 0);
}

void tern_progress_format(char *buf, size_t n, long step, long total, float loss, float lr, double gnorm,
                          double tokens_per_s, double eta_s) {
    char lrs[32], rate[32], eta[32];
    tern_format_sci(lr, lrs, sizeof lrs);
    tern_format_rate(tokens_per_s, rate, sizeof rate);
    tern_format_duration(eta_s, eta, sizeof eta);
    snprintf(buf, n, "step %ld/%ld | loss %.3f | lr %s | gnorm %.2f | %s tok/s | ETA %s", step, total, (double)loss,
             lrs, gnorm, rate, eta);
}

void tern_progress_update(tern_progress *p, long step, long total, float loss, float lr, double gnorm,
                          double tokens_per_s, double eta_s) {
    char line[256];
    tern_progress_format(line, sizeof line, step, total, loss, lr, gnorm, tokens_per_s, eta_s);
    int len = (int)strlen(line);
    if (p->tty) {
        // pad with spaces to erase a longer previous line
        fprintf(p->f, "\r%s%*s", line, p->last_len > len ? p->last_len - len : 0, "");
        p->last_len = len;
        p->shown = 1;
        fflush(p->f);
    } else if (step % p->every == 0 || step == total) {
        fprintf(p->f, "%s\n", line);
        fflush(p->f);
    }
}

void tern_progress_message(tern_progress *p, const char *fmt, ...) {
    if (p->tty && p->shown) {
        fprintf(p->f, "\r%*s\r", p->last_len, "");
        p->shown = 0;
        p->last_len = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
    fputc('\n', p->f);
    fflush(p->f);
}

void tern_progress_done(tern_progress *p) {
    if (p->tty && p->shown) fputc('\n', p->f);
    p->shown = 0;
    p->last_len = 0;
    fflush(p->f);
}
