/* frontend_bench.c - speed of the audio frontend on one thread: decode + resample + log-mel
 * (the `cochlea features` path), and each part alone, as seconds of audio per CPU second.
 *
 *     bench/frontend_bench [-r REPS] [--n-mels N] FILE...
 *
 * CPU time is the calling thread's (CLOCK_THREAD_CPUTIME_ID): the frontend runs on one thread.
 * Each figure is the median of REPS runs (default 5); the header line names the STFT transform
 * in use (COCHLEA_FFT selects another, see frontend/stft.h). One line per file and stage:
 *     FILE  STAGE  audio_s  cpu_s  x_realtime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cochlea.h"
#include "frontend/stft.h"

#define CHUNK 65536

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int fail(int rc, const char *what)
{
    fprintf(stderr, "frontend_bench: %s: %s\n", what, cochlea_last_error()[0] ? cochlea_last_error() : cochlea_strerror(rc));
    return 1;
}

/* Decode (+ resample) the whole file through the pull reader; with fb, also stream log-mel. */
static int run_stream(const char *path, cochlea_fbank *fb, float *buf, float *feats, size_t max_frames,
                      size_t *n_samples, double *cpu)
{
    double t0 = thread_cpu();
    cochlea_audio *a;
    int rc = cochlea_audio_open(path, NULL, &a);
    if (rc)
        return fail(rc, path);
    if (fb)
        cochlea_fbank_reset(fb);
    size_t total = 0, got, nf;
    do {
        if ((rc = cochlea_audio_read(a, buf, CHUNK, &got))) {
            cochlea_audio_close(a);
            return fail(rc, path);
        }
        total += got;
        if (fb) {
            if ((rc = cochlea_fbank_push(fb, buf, got)) || (got < CHUNK && (rc = cochlea_fbank_finish(fb)))) {
                cochlea_audio_close(a);
                return fail(rc, path);
            }
            do {
                if ((rc = cochlea_fbank_pull(fb, feats, max_frames, &nf))) {
                    cochlea_audio_close(a);
                    return fail(rc, path);
                }
            } while (nf == max_frames);
        }
    } while (got == CHUNK);
    cochlea_audio_close(a);
    *cpu = thread_cpu() - t0;
    *n_samples = total;
    return 0;
}

int main(int argc, char **argv)
{
    int reps = 5, n_mels = 80, first = 1;
    while (first < argc && argv[first][0] == '-') {
        if (strcmp(argv[first], "-r") == 0 && first + 1 < argc) {
            reps = atoi(argv[first + 1]);
            first += 2;
        } else if (strcmp(argv[first], "--n-mels") == 0 && first + 1 < argc) {
            n_mels = atoi(argv[first + 1]);
            first += 2;
        } else {
            break;
        }
    }
    if (first >= argc || reps < 1 || reps > 1000 || n_mels < 1) {
        fprintf(stderr, "usage: frontend_bench [-r REPS] [--n-mels N] FILE...\n");
        return 2;
    }
    cochlea_fbank_params p = cochlea_fbank_default_params();
    p.n_mels = n_mels;
    cochlea_fbank *fb;
    int rc = cochlea_fbank_create(&p, &fb);
    if (rc)
        return fail(rc, "fbank");
    const size_t max_frames = CHUNK / 160 + 2;
    float *buf = malloc(CHUNK * sizeof(float));
    float *feats = malloc(max_frames * (size_t)n_mels * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!buf || !feats || !t)
        return 1;
    stft *st;
    if ((rc = stft_create(p.n_fft, p.win_length, p.hop_length, &st)))
        return fail(rc, "stft");
    printf("# file stage audio_s cpu_s x_realtime (median of %d, one thread); STFT transform: %s\n", reps,
           stft_fft_name(stft_get_fft(st)));
    stft_free(st);
    for (int f = first; f < argc; f++) {
        const char *path = argv[f];
        size_t n = 0;
        /* decode + resample + log-mel, streamed as `cochlea features` does */
        for (int r = 0; r < reps; r++)
            if (run_stream(path, fb, buf, feats, max_frames, &n, &t[r]))
                return 1;
        double audio_s = (double)n / p.sample_rate, full = median(t, reps);
        printf("%s decode+resample+logmel %.2f %.4f %.0f\n", path, audio_s, full, audio_s / full);
        /* decode + resample alone */
        for (int r = 0; r < reps; r++)
            if (run_stream(path, NULL, buf, feats, max_frames, &n, &t[r]))
                return 1;
        double dec = median(t, reps);
        printf("%s decode+resample %.2f %.4f %.0f\n", path, audio_s, dec, audio_s / dec);
        /* log-mel alone on the 16 kHz samples in memory */
        float *x;
        size_t nx;
        if ((rc = cochlea_audio_load(path, NULL, &x, &nx)))
            return fail(rc, path);
        size_t T = cochlea_fbank_n_frames(fb, nx), got;
        float *all = malloc((T ? T : 1) * (size_t)n_mels * sizeof(float));
        if (!all)
            return 1;
        for (int r = 0; r < reps; r++) {
            double t0 = thread_cpu();
            if ((rc = cochlea_fbank_compute(fb, x, nx, all, T, &got)))
                return fail(rc, path);
            t[r] = thread_cpu() - t0;
        }
        double lm = median(t, reps);
        printf("%s logmel %.2f %.4f %.0f\n", path, audio_s, lm, audio_s / lm);
        free(all);
        cochlea_audio_samples_free(x);
    }
    cochlea_fbank_free(fb);
    free(buf);
    free(feats);
    free(t);
    return 0;
}
