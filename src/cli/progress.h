/* progress.h - a progress bar with rate and ETA for the cochlea program; draws only when the
 * stream is a terminal, and at most a few times per second. */
#ifndef COCHLEA_CLI_PROGRESS_H
#define COCHLEA_CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct progress {
    FILE *out;
    int enabled;       /* stream is a TTY and not quiet */
    char label[48];
    double t_start;
    double t_last;
    uint64_t total;
    int drawn;
} progress;

/* Start a bar labelled `label` for `total` units on `out` (drawn only if out is a TTY and
 * quiet == 0). */
void progress_start(progress *p, FILE *out, const char *label, uint64_t total, int quiet);
/* Report `done` units; redraws at most every 0.1 s and always at done == total. */
void progress_update(progress *p, uint64_t done);
/* Finish: erase the bar line. */
void progress_end(progress *p);
/* Adapter for cochlea_progress_fn (user = progress *); never cancels. */
int progress_callback(uint64_t done, uint64_t total, void *user);
/* Seconds on the monotonic clock (for timing CLI work). */
double progress_now(void);
/* Format a duration in seconds as "1h02m03s" / "2m03s" / "3.4s" into buf. */
void progress_format_time(double s, char *buf, size_t n);
/* Render the bar line for the given state into buf (no terminal control chars); for tests. */
void progress_render(char *buf, size_t n, const char *label, uint64_t done, uint64_t total, double elapsed,
                     int width);

#endif
