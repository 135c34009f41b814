/* progress.c - terminal progress bar: "label  [#####.....]  45%  12.3s, ETA 15.0s". */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_format_time(double s, char *buf, size_t n)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm%02ds", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
}

void progress_render(char *buf, size_t n, const char *label, uint64_t done, uint64_t total, double elapsed,
                     int width)
{
    char bar[128], el[32], eta[32];
    double frac = total ? (double)done / (double)total : 0.0;
    if (frac > 1)
        frac = 1;
    if (width > (int)sizeof bar - 1)
        width = (int)sizeof bar - 1;
    int fill = (int)(frac * width + 0.5);
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    progress_format_time(elapsed, el, sizeof el);
    if (done > 0 && done < total) {
        progress_format_time(elapsed * (double)(total - done) / (double)done, eta, sizeof eta);
        snprintf(buf, n, "%s [%s] %3d%% %s, ETA %s", label, bar, (int)(frac * 100), el, eta);
    } else {
        snprintf(buf, n, "%s [%s] %3d%% %s", label, bar, (int)(frac * 100), el);
    }
}

void progress_start(progress *p, FILE *out, const char *label, uint64_t total, int quiet)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->enabled = !quiet && out && isatty(fileno(out));
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->t_start = progress_now();
}

void progress_update(progress *p, uint64_t done)
{
    char line[256];
    if (!p->enabled)
        return;
    double t = progress_now();
    if (done < p->total && p->drawn && t - p->t_last < 0.1)
        return;
    p->t_last = t;
    progress_render(line, sizeof line, p->label, done, p->total, t - p->t_start, 30);
    fprintf(p->out, "\r\033[K%s", line);
    fflush(p->out);
    p->drawn = 1;
}

void progress_end(progress *p)
{
    if (p->enabled && p->drawn) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
    }
    p->drawn = 0;
}

int progress_callback(uint64_t done, uint64_t total, void *user)
{
    progress *p = user;
    p->total = total;
    progress_update(p, done);
    return 0;
}
