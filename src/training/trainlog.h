// trainlog.h — the training CSV log and the one-line progress display.
//
// CSV (append-only, one row per log_interval step, flushed after every row), header:
//     step,tokens,loss,lr,grad_norm,tokens_per_s,val_loss
//   step          optimizer steps completed (1..steps)
//   tokens        training tokens consumed so far
//   loss          mean training loss of this step (or over the logging window — the caller decides)
//   lr            learning rate used for this step
//   grad_norm     global gradient norm before clipping
//   tokens_per_s  training throughput
//   val_loss      validation loss when an evaluation happened at this step, else empty
// scripts/plot_loss.sh turns it into a PNG.
//
// Progress line: "step 120/2000 | loss 3.214 | lr 2.3e-3 | gnorm 0.91 | 12.3k tok/s | ETA 3m12s".
// On a terminal it is redrawn in place with '\r' every update; otherwise (log file, pipe) a full
// line is printed every `every` steps and at the last step.
#ifndef TERN_TRAINLOG_H
#define TERN_TRAINLOG_H
#include <stdio.h>

#define TERN_TRAINLOG_HEADER "step,tokens,loss,lr,grad_norm,tokens_per_s,val_loss"

typedef struct {
    FILE *f;
    char path[4096];
} tern_trainlog;

// Open (create) the CSV at path for appending. An existing non-empty file must start with
// TERN_TRAINLOG_HEADER. keep_upto >= 0: rows with step > keep_upto are dropped first (rewritten
// atomically): pass 0 for a fresh run, the checkpoint's step when resuming, so no step is logged
// twice; keep_upto < 0 keeps every row. 0, or -1 with tern_error("path: problem").
int tern_trainlog_open(tern_trainlog *l, const char *path, long keep_upto);
// Append one row; val_loss NAN = no evaluation at this step (empty field). 0 or -1.
int tern_trainlog_row(tern_trainlog *l, long step, long tokens, float loss, float lr, double grad_norm,
                      double tokens_per_s, float val_loss);
void tern_trainlog_close(tern_trainlog *l);

typedef struct {
    FILE *f;        // usually stderr or stdout
    int tty;        // 1: redraw in place
    long every;     // non-tty: print every `every` steps
    int shown;      // tty: a bar is on screen (needs a newline before other output)
    int last_len;
} tern_progress;

// tty is detected with isatty(); the environment variable TERN_PROGRESS=lines forces line mode.
void tern_progress_init(tern_progress *p, FILE *f, long every);
// The progress text (no '\r' or '\n'); eta_s < 0 or not finite prints "ETA ?".
void tern_progress_format(char *buf, size_t n, long step, long total, float loss, float lr, double gnorm,
                          double tokens_per_s, double eta_s);
void tern_progress_update(tern_progress *p, long step, long total, float loss, float lr, double gnorm,
                          double tokens_per_s, double eta_s);
// Print a whole line (eval results, checkpoint saved, ...) without mangling the bar.
void tern_progress_message(tern_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Finish the bar (newline on a tty).
void tern_progress_done(tern_progress *p);

// "45s", "3m12s", "2h05m"; "?" for negative / non-finite.
void tern_format_duration(double s, char *buf, size_t n);
// "850", "12.3k", "1.25M" (used for tok/s)
void tern_format_rate(double r, char *buf, size_t n);
// Short scientific notation "2.3e-3"; "0" for 0.
void tern_format_sci(double x, char *buf, size_t n);

#endif
