/* stft.c - framing with reflect padding, the torch Hann window and the double-precision power
 * spectrum through fft_r512 (n_fft 512) or FFTW (owsm-ctc.md §1; see stft.h for why the
 * transform is double and how it is chosen). */
#include "stft.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fft_r512.h"

_Static_assert(STFT_BATCH == FFT_R512_BATCH, "stft and fft_r512 batch strides differ");

/* FFTW's planner (plan creation and destruction) is not thread-safe; plan execution is. This
 * lock is the frontend's only process-wide state. */
static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;

struct stft {
    int n_fft, n_bins, win_length, hop_length;
    int left; /* zeros before the window inside the n_fft frame: (n_fft - win_length) / 2 */
    float *window;
    double *in;        /* n_fft, fftw_malloc; zero outside [left, left + win_length) */
    fftw_complex *out; /* n_bins, fftw_malloc */
    fftw_plan plan;    /* NULL when the fft_r512 kernel runs */
    enum stft_fft fft;
    fft_r512 *fast;    /* n_fft 512 kernel, or NULL */
    double *lanes;     /* kernel: FFT_R512_BINS x STFT_BATCH output of stft_power; FFTW: n_bins */
};

/* torch.hann_window(400) in float32 differs from the correctly rounded formula in these 11
 * entries by one ulp of the cosine: ATen evaluates cos with a vectorised routine that is not
 * correctly rounded. These ulps move the log-mel of pure tones by up to 7e-4 (mean 1.3e-4), so
 * the window ESPnet uses at 16 kHz is reproduced bit for bit (checked by the parity test). */
static const struct {
    int index;
    float value;
} torch_hann400_fix[] = {
    {18, 0x1.45462p-6f},  {23, 0x1.086bdp-5f},  {26, 0x1.50e08p-5f},  {27, 0x1.6ae46p-5f},
    {88, 0x1.a00f9p-2f},  {195, 0x1.ff35f8p-1f}, {341, 0x1.992b6p-3f}, {381, 0x1.6a246p-6f},
    {385, 0x1.c4b0cp-7f}, {395, 0x1.940ep-10f}, {398, 0x1.02b8p-12f},
};

void stft_hann_window(int n, float *w)
{
    /* torch: arange(n + 1) * (2 pi / n) in float32, cos, * -0.5, + 0.5, first n values */
    const float step = (float)(2.0 * M_PI / (double)n);
    for (int i = 0; i < n; i++) {
        float arg = (float)i * step;
        float c = (float)cos((double)arg);
        w[i] = 0.5f + (-0.5f * c);
    }
    if (n == 400)
        for (size_t j = 0; j < sizeof torch_hann400_fix / sizeof torch_hann400_fix[0]; j++)
            w[torch_hann400_fix[j].index] = torch_hann400_fix[j].value;
}

const char *stft_fft_name(enum stft_fft fft)
{
    switch (fft) {
    case STFT_FFT_AUTO: return "auto";
    case STFT_FFT_FFTW: return "fftw";
    case STFT_FFT_SCALAR: return "scalar";
    case STFT_FFT_AVX2: return "avx2";
    case STFT_FFT_AVX512: return "avx512";
    default: return "unknown";
    }
}

/* STFT_FFT_AUTO resolved: COCHLEA_FFT if set, else the fastest kernel for n_fft 512 (the SIMD
 * fft_r512 kernels beat FFTW; its scalar kernel does not), else FFTW. */
static int stft_choose_fft(int n_fft, enum stft_fft *fft)
{
    const char *env = getenv("COCHLEA_FFT");
    if (env && env[0] && strcmp(env, "auto") != 0) {
        for (int k = STFT_FFT_FFTW; k <= STFT_FFT_AVX512; k++)
            if (strcmp(env, stft_fft_name((enum stft_fft)k)) == 0) {
                *fft = (enum stft_fft)k;
                return COCHLEA_OK;
            }
        return err_set(COCHLEA_EINVAL, "stft: COCHLEA_FFT='%s' is not one of auto, fftw, scalar, avx2, avx512", env);
    }
    *fft = STFT_FFT_FFTW;
    if (n_fft == FFT_R512_N) {
        if (fft_r512_path_available(FFT_R512_AVX512))
            *fft = STFT_FFT_AVX512;
        else if (fft_r512_path_available(FFT_R512_AVX2))
            *fft = STFT_FFT_AVX2;
    }
    return COCHLEA_OK;
}

int stft_create(int n_fft, int win_length, int hop_length, stft **out)
{
    return stft_create_fft(n_fft, win_length, hop_length, STFT_FFT_AUTO, out);
}

int stft_create_fft(int n_fft, int win_length, int hop_length, enum stft_fft fft, stft **out)
{
    *out = NULL;
    if (n_fft < 2 || n_fft > 65536)
        return err_set(COCHLEA_EINVAL, "stft: n_fft %d is outside [2, 65536]", n_fft);
    if (win_length < 1 || win_length > n_fft)
        return err_set(COCHLEA_EINVAL, "stft: win_length %d is outside [1, n_fft = %d]", win_length, n_fft);
    if (hop_length < 1)
        return err_set(COCHLEA_EINVAL, "stft: hop_length %d must be positive", hop_length);
    if (fft == STFT_FFT_AUTO) {
        int rc = stft_choose_fft(n_fft, &fft);
        if (rc)
            return rc;
    }
    if (fft < STFT_FFT_FFTW || fft > STFT_FFT_AVX512)
        return err_set(COCHLEA_EINVAL, "stft: unknown transform %d", (int)fft);
    if (fft != STFT_FFT_FFTW && n_fft != FFT_R512_N)
        return err_set(COCHLEA_EUNSUPPORTED, "stft: the %s kernel computes 512-point transforms only, not %d",
                       stft_fft_name(fft), n_fft);
    stft *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(COCHLEA_ENOMEM, "stft: out of memory");
    s->n_fft = n_fft;
    s->n_bins = n_fft / 2 + 1;
    s->win_length = win_length;
    s->hop_length = hop_length;
    s->left = (n_fft - win_length) / 2;
    s->window = malloc((size_t)win_length * sizeof(float));
    s->in = fftw_malloc((size_t)n_fft * sizeof(double));
    s->out = fftw_malloc((size_t)s->n_bins * sizeof(fftw_complex));
    s->lanes = calloc((size_t)(fft == STFT_FFT_FFTW ? s->n_bins : FFT_R512_BINS * STFT_BATCH), sizeof(double));
    if (!s->window || !s->in || !s->out || !s->lanes) {
        stft_free(s);
        return err_set(COCHLEA_ENOMEM, "stft: out of memory");
    }
    stft_hann_window(win_length, s->window);
    memset(s->in, 0, (size_t)n_fft * sizeof(double));
    s->fft = fft;
    if (fft != STFT_FFT_FFTW) {
        static const enum fft_r512_path path[] = {[STFT_FFT_SCALAR] = FFT_R512_SCALAR,
                                                  [STFT_FFT_AVX2] = FFT_R512_AVX2,
                                                  [STFT_FFT_AVX512] = FFT_R512_AVX512};
        int rc = fft_r512_create(win_length, s->window, path[fft], &s->fast);
        if (rc) {
            stft_free(s);
            return rc;
        }
        *out = s;
        return COCHLEA_OK;
    }
    pthread_mutex_lock(&planner_lock);
    /* FFTW_ESTIMATE: the same algorithm on every run, so results are reproducible bit for bit. */
    s->plan = fftw_plan_dft_r2c_1d(n_fft, s->in, s->out, FFTW_ESTIMATE | FFTW_PRESERVE_INPUT);
    pthread_mutex_unlock(&planner_lock);
    if (!s->plan) {
        stft_free(s);
        return err_set(COCHLEA_EINTERNAL, "stft: FFTW could not plan a %d-point real transform", n_fft);
    }
    *out = s;
    return COCHLEA_OK;
}

void stft_free(stft *s)
{
    if (!s)
        return;
    if (s->plan) {
        pthread_mutex_lock(&planner_lock);
        fftw_destroy_plan(s->plan);
        pthread_mutex_unlock(&planner_lock);
    }
    fft_r512_free(s->fast);
    free(s->lanes);
    fftw_free(s->in);
    fftw_free(s->out);
    free(s->window);
    free(s);
}

enum stft_fft stft_get_fft(const stft *s) { return s->fft; }
int stft_n_fft(const stft *s) { return s->n_fft; }
int stft_n_bins(const stft *s) { return s->n_bins; }
int stft_win_length(const stft *s) { return s->win_length; }
int stft_hop_length(const stft *s) { return s->hop_length; }
const float *stft_window(const stft *s) { return s->window; }

size_t stft_min_samples(const stft *s)
{
    return (size_t)(s->n_fft / 2) + 1;
}

size_t stft_n_frames(const stft *s, size_t n)
{
    if (n < stft_min_samples(s))
        return 0;
    return 1 + n / (size_t)s->hop_length;
}

long long stft_frame_start(const stft *s, size_t t)
{
    return (long long)t * s->hop_length + s->left - s->n_fft / 2;
}

void stft_gather(const stft *s, const float *x, size_t x_first, size_t n_total, size_t t, float *dst)
{
    long long start = stft_frame_start(s, t);
    long long end = start + s->win_length;
    if (start >= 0 && end <= (long long)n_total) {
        memcpy(dst, x + ((size_t)start - x_first), (size_t)s->win_length * sizeof(float));
        return;
    }
    const long long last = (long long)n_total - 1;
    for (long long i = start; i < end; i++) {
        long long j = i < 0 ? -i : i;
        if (j > last)
            j = 2 * last - j;
        dst[i - start] = x[(size_t)j - x_first];
    }
}

/* FFTW path of stft_power. */
static void stft_power_fftw(stft *s, const float *span, double *restrict power)
{
    /* Loops in blocks of 8 with a constant inner trip count, which the compiler vectorises at
     * -O2; the tails run scalar. */
    double *restrict in = s->in + s->left;
    const float *w = s->window;
    const int nw = s->win_length, nb = s->n_bins;
    int i = 0;
    for (; i + 8 <= nw; i += 8)
        for (int j = 0; j < 8; j++)
            in[i + j] = (double)w[i + j] * (double)span[i + j];
    for (; i < nw; i++)
        in[i] = (double)w[i] * (double)span[i];
    fftw_execute(s->plan);
    const double *restrict o = (const double *)s->out; /* interleaved re, im */
    int k = 0;
    for (; k + 8 <= nb; k += 8)
        for (int j = 0; j < 8; j++)
            power[k + j] = o[2 * (k + j)] * o[2 * (k + j)] + o[2 * (k + j) + 1] * o[2 * (k + j) + 1];
    for (; k < nb; k++)
        power[k] = o[2 * k] * o[2 * k] + o[2 * k + 1] * o[2 * k + 1];
}

void stft_power(stft *s, const float *span, double *restrict power)
{
    if (!s->fast) {
        stft_power_fftw(s, span, power);
        return;
    }
    fft_r512_power(s->fast, &span, 1, s->lanes);
    for (int k = 0; k < FFT_R512_BINS; k++)
        power[k] = s->lanes[(size_t)k * STFT_BATCH];
}

void stft_power_batch(stft *s, const float *const *spans, int n, double *power)
{
    if (s->fast) {
        fft_r512_power(s->fast, spans, n, power);
        return;
    }
    const int nb = s->n_bins;
    for (int f = 0; f < n; f++) {
        stft_power_fftw(s, spans[f], s->lanes);
        for (int k = 0; k < nb; k++)
            power[(size_t)k * STFT_BATCH + f] = s->lanes[k];
    }
}
