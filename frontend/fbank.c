/* fbank.c - log-mel features: mel filterbank (model matrix or librosa's Slaney filterbank),
 * natural log with floor 1e-10, global MVN, whole-signal and streaming (owsm-ctc.md §1); and
 * the strict .npz/.npy reader for ESPnet's feats_stats.npz. */
#include "fbank.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32.h"
#include "error.h"
#include "gguf.h"
#include "stft.h"

#define FBANK_MAX_MELS 4096
#define LOG_BLOCK STFT_BATCH
#define BAND_BLOCK 4

/* One value per frame of a batch; plain IEEE arithmetic per lane, so a lane's result does not
 * depend on the other lanes or on the vector width the compiler picks. */
typedef double fbank_lanes __attribute__((vector_size(STFT_BATCH * sizeof(double))));
typedef float fbank_f8 __attribute__((vector_size(8 * sizeof(float))));
typedef int fbank_i8 __attribute__((vector_size(8 * sizeof(int))));
_Static_assert(STFT_BATCH == 8, "the output transpose works on 8 x 8 blocks");

struct cochlea_fbank {
    stft *st;
    int n_mels, n_bins, win_length;
    /* The filterbank as bands: mel m uses bins [band_lo[m], band_lo[m] + band_len[m]) with
     * weights band_w[band_off[m] ...] (zeros outside a band are skipped, nothing else). Each
     * band_len is a multiple of BAND_BLOCK, padded with zero weights (and power[] is padded with
     * zeros past n_bins) so the product runs in vector blocks. */
    int *band_lo, *band_len;
    size_t *band_off;
    double *band_w;
    float *mean, *std; /* NULL without MVN */
    /* scratch for a batch of up to STFT_BATCH frames, one frame per lane: */
    double *power;     /* [n_bins + BAND_BLOCK][STFT_BATCH], zero rows past n_bins */
    double *mel;       /* [n_mels][STFT_BATCH] */
    float *fmel;       /* [n_mels][STFT_BATCH]: the features in float32 */
    float *span;       /* STFT_BATCH x win_length gathered (reflected) frames */
    /* stream state */
    float *buf;        /* samples [buf_first, buf_first + buf_len) of the stream */
    size_t buf_len, buf_cap, buf_first;
    size_t n_in;       /* samples pushed so far */
    size_t t_next;     /* next frame to emit */
    int finished;
};

/* ---- Slaney mel scale and filterbank ------------------------------------------------------ */

#define SLANEY_F_SP (200.0 / 3.0)
#define SLANEY_MIN_LOG_HZ 1000.0

double fbank_hz_to_mel(double hz)
{
    const double min_log_mel = (SLANEY_MIN_LOG_HZ - 0.0) / SLANEY_F_SP;
    const double logstep = log(6.4) / 27.0;
    if (hz >= SLANEY_MIN_LOG_HZ)
        return min_log_mel + log(hz / SLANEY_MIN_LOG_HZ) / logstep;
    return (hz - 0.0) / SLANEY_F_SP;
}

double fbank_mel_to_hz(double mel)
{
    const double min_log_mel = (SLANEY_MIN_LOG_HZ - 0.0) / SLANEY_F_SP;
    const double logstep = log(6.4) / 27.0;
    if (mel >= min_log_mel)
        return SLANEY_MIN_LOG_HZ * exp(logstep * (mel - min_log_mel));
    return 0.0 + SLANEY_F_SP * mel;
}

int fbank_slaney_melmat(int sample_rate, int n_fft, int n_mels, double fmin, double fmax, float *out)
{
    if (sample_rate < 1 || n_fft < 2 || n_mels < 1 || n_mels > FBANK_MAX_MELS)
        return err_set(COCHLEA_EINVAL, "mel filterbank: bad sizes (sample rate %d, n_fft %d, n_mels %d)",
                       sample_rate, n_fft, n_mels);
    if (!(fmin >= 0.0) || !(fmax > fmin) || !(fmax <= sample_rate / 2.0))
        return err_set(COCHLEA_EINVAL, "mel filterbank: need 0 <= fmin < fmax <= %g Hz, got fmin %g, fmax %g",
                       sample_rate / 2.0, fmin, fmax);
    const int n_bins = n_fft / 2 + 1;
    const int n_pts = n_mels + 2;
    double *hz = malloc((size_t)n_pts * sizeof(double));
    double *fft_hz = malloc((size_t)n_bins * sizeof(double));
    if (!hz || !fft_hz) {
        free(hz);
        free(fft_hz);
        return err_set(COCHLEA_ENOMEM, "mel filterbank: out of memory");
    }
    /* np.fft.rfftfreq(n_fft, 1 / sr): k * (1 / (n_fft * (1 / sr))) */
    const double bin_hz = 1.0 / ((double)n_fft * (1.0 / (double)sample_rate));
    for (int k = 0; k < n_bins; k++)
        fft_hz[k] = (double)k * bin_hz;
    /* np.linspace(mel(fmin), mel(fmax), n_mels + 2): i * step + start, the last point exact */
    const double m0 = fbank_hz_to_mel(fmin), m1 = fbank_hz_to_mel(fmax);
    const double step = (m1 - m0) / (double)(n_pts - 1);
    for (int i = 0; i < n_pts; i++)
        hz[i] = fbank_mel_to_hz(i == n_pts - 1 ? m1 : (double)i * step + m0);
    for (int m = 0; m < n_mels; m++) {
        const double lower_w = hz[m + 1] - hz[m], upper_w = hz[m + 2] - hz[m + 1];
        const double enorm = 2.0 / (hz[m + 2] - hz[m]);
        for (int k = 0; k < n_bins; k++) {
            double rising = -(hz[m] - fft_hz[k]) / lower_w;
            double falling = (hz[m + 2] - fft_hz[k]) / upper_w;
            double w = rising < falling ? rising : falling;
            if (!(w > 0.0))
                w = 0.0;
            float wf = (float)w; /* librosa stores the triangle in float32 ... */
            out[(size_t)k * n_mels + m] = (float)((double)wf * enorm); /* ... then scales it */
        }
    }
    free(hz);
    free(fft_hz);
    return COCHLEA_OK;
}

/* ---- extractor ------------------------------------------------------------------------------ */

cochlea_fbank_params cochlea_fbank_default_params(void)
{
    cochlea_fbank_params p;
    memset(&p, 0, sizeof p);
    p.sample_rate = 16000;
    p.n_fft = 512;
    p.win_length = 400;
    p.hop_length = 160;
    p.n_mels = 80;
    p.fmin = 0.0f;
    p.fmax = 0.0f;
    return p;
}

/* Convert a dense (n_bins x n_mels) filterbank into per-mel bands of consecutive bins between
 * the first and the last nonzero weight. */
static int fbank_set_bands(cochlea_fbank *fb, const float *melmat)
{
    const int nb = fb->n_bins, nm = fb->n_mels;
    size_t total = 0;
    for (int m = 0; m < nm; m++) {
        int lo = -1, hi = -1;
        for (int k = 0; k < nb; k++) {
            float w = melmat[(size_t)k * nm + m];
            if (!isfinite(w))
                return err_set(COCHLEA_EINVAL, "mel filterbank: weight [%d, %d] is %g (not finite)", k, m, (double)w);
            if (w != 0.0f) {
                if (lo < 0)
                    lo = k;
                hi = k;
            }
        }
        int len = lo < 0 ? 0 : hi - lo + 1;
        fb->band_lo[m] = lo < 0 ? 0 : lo;
        fb->band_len[m] = (len + BAND_BLOCK - 1) / BAND_BLOCK * BAND_BLOCK;
        fb->band_off[m] = total;
        total += (size_t)fb->band_len[m];
    }
    fb->band_w = malloc((total ? total : 1) * sizeof(double));
    if (!fb->band_w)
        return err_set(COCHLEA_ENOMEM, "mel filterbank: out of memory");
    for (int m = 0; m < nm; m++)
        for (int j = 0; j < fb->band_len[m]; j++) {
            int k = fb->band_lo[m] + j;
            fb->band_w[fb->band_off[m] + (size_t)j] = k < nb ? melmat[(size_t)k * nm + m] : 0.0;
        }
    return COCHLEA_OK;
}

int cochlea_fbank_create(const cochlea_fbank_params *p, cochlea_fbank **out)
{
    if (!out)
        return err_set(COCHLEA_EINVAL, "cochlea_fbank_create: out is NULL");
    *out = NULL;
    if (!p)
        return err_set(COCHLEA_EINVAL, "cochlea_fbank_create: params is NULL");
    if (p->n_mels < 1 || p->n_mels > FBANK_MAX_MELS)
        return err_set(COCHLEA_EINVAL, "fbank: n_mels %d is outside [1, %d]", p->n_mels, FBANK_MAX_MELS);
    if (p->sample_rate < 1000 || p->sample_rate > 768000)
        return err_set(COCHLEA_EINVAL, "fbank: sample rate %d Hz is outside [1000, 768000]", p->sample_rate);
    if ((p->mvn_mean == NULL) != (p->mvn_std == NULL))
        return err_set(COCHLEA_EINVAL, "fbank: MVN needs both mean and std (one of them is NULL)");
    cochlea_fbank *fb = calloc(1, sizeof *fb);
    if (!fb)
        return err_set(COCHLEA_ENOMEM, "fbank: out of memory");
    int rc = stft_create(p->n_fft, p->win_length, p->hop_length, &fb->st);
    if (rc) {
        free(fb);
        return err_prefix(rc, "fbank");
    }
    fb->n_mels = p->n_mels;
    fb->n_bins = stft_n_bins(fb->st);
    fb->win_length = p->win_length;
    const size_t nm = (size_t)fb->n_mels, nb = (size_t)fb->n_bins;
    float *slaney = NULL;
    fb->band_lo = malloc(nm * sizeof(int));
    fb->band_len = malloc(nm * sizeof(int));
    fb->band_off = malloc(nm * sizeof(size_t));
    /* sizes: nb <= 32769, nm <= FBANK_MAX_MELS, win_length <= 65536: no overflow */
    const size_t power_bytes = (nb + BAND_BLOCK) * STFT_BATCH * sizeof(double);
    const size_t mel_bytes = nm * STFT_BATCH * sizeof(double);
    fb->power = aligned_alloc(64, (power_bytes + 63) / 64 * 64);
    fb->mel = aligned_alloc(64, (mel_bytes + 63) / 64 * 64);
    fb->fmel = aligned_alloc(64, (mel_bytes / 2 + 63) / 64 * 64);
    fb->span = malloc((size_t)STFT_BATCH * (size_t)p->win_length * sizeof(float));
    if (!fb->band_lo || !fb->band_len || !fb->band_off || !fb->power || !fb->mel || !fb->fmel || !fb->span) {
        rc = err_set(COCHLEA_ENOMEM, "fbank: out of memory");
        goto fail;
    }
    memset(fb->power, 0, power_bytes); /* the rows past n_bins stay zero */
    const float *melmat = p->melmat;
    if (!melmat) {
        double fmax = p->fmax > 0.0f ? (double)p->fmax : p->sample_rate / 2.0;
        slaney = malloc(nb * nm * sizeof(float));
        if (!slaney) {
            rc = err_set(COCHLEA_ENOMEM, "fbank: out of memory");
            goto fail;
        }
        rc = fbank_slaney_melmat(p->sample_rate, p->n_fft, p->n_mels, (double)p->fmin, fmax, slaney);
        if (rc)
            goto fail;
        melmat = slaney;
    }
    rc = fbank_set_bands(fb, melmat);
    if (rc)
        goto fail;
    if (p->mvn_mean) {
        fb->mean = malloc(nm * sizeof(float));
        fb->std = malloc(nm * sizeof(float));
        if (!fb->mean || !fb->std) {
            rc = err_set(COCHLEA_ENOMEM, "fbank: out of memory");
            goto fail;
        }
        for (size_t m = 0; m < nm; m++) {
            if (!isfinite(p->mvn_mean[m])) {
                rc = err_set(COCHLEA_EINVAL, "fbank: MVN mean[%zu] is %g (not finite)", m, (double)p->mvn_mean[m]);
                goto fail;
            }
            if (!(p->mvn_std[m] > 0.0f) || !isfinite(p->mvn_std[m])) {
                rc = err_set(COCHLEA_EINVAL, "fbank: MVN std[%zu] is %g (must be positive and finite)", m,
                             (double)p->mvn_std[m]);
                goto fail;
            }
            fb->mean[m] = p->mvn_mean[m];
            fb->std[m] = p->mvn_std[m];
        }
    }
    free(slaney);
    *out = fb;
    return COCHLEA_OK;
fail:
    free(slaney);
    cochlea_fbank_free(fb);
    return rc;
}

void cochlea_fbank_free(cochlea_fbank *fb)
{
    if (!fb)
        return;
    stft_free(fb->st);
    free(fb->band_lo);
    free(fb->band_len);
    free(fb->band_off);
    free(fb->band_w);
    free(fb->mean);
    free(fb->std);
    free(fb->power);
    free(fb->mel);
    free(fb->fmel);
    free(fb->span);
    free(fb->buf);
    free(fb);
}

int cochlea_fbank_n_mels(const cochlea_fbank *fb)
{
    return fb->n_mels;
}

size_t cochlea_fbank_n_frames(const cochlea_fbank *fb, size_t n_samples)
{
    return stft_n_frames(fb->st, n_samples);
}

/* ln(x[j]) for LOG_BLOCK positive, finite, normal doubles, in a form the compiler vectorises:
 * x = 2^e m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(f) with f = (m - 1) / (m + 1), summed
 * as the odd series to f^19 (truncation below 1e-17 for |f| <= 0.1716), plus e ln 2 in two parts.
 * Agrees with libm's log to a few double ulps, far below the float32 result's rounding. */
static void log_block(const double *x, double *y)
{
    const double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
    for (int j = 0; j < LOG_BLOCK; j++) {
        uint64_t b, mb, eb;
        memcpy(&b, &x[j], sizeof b);
        mb = (b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;   /* m in [1, 2) */
        eb = ((b >> 52) & 0x7FF) | 0x4330000000000000ull;            /* 2^52 + biased exponent */
        double m, e;
        memcpy(&m, &mb, sizeof m);
        memcpy(&e, &eb, sizeof e);
        e -= 4503599627370496.0 + 1023.0;
        int big = m > 1.4142135623730951;
        m = big ? 0.5 * m : m;
        e = big ? e + 1.0 : e;
        double f = (m - 1.0) / (m + 1.0), s = f * f;
        double p = 1.0 / 19;
        p = p * s + 1.0 / 17;
        p = p * s + 1.0 / 15;
        p = p * s + 1.0 / 13;
        p = p * s + 1.0 / 11;
        p = p * s + 1.0 / 9;
        p = p * s + 1.0 / 7;
        p = p * s + 1.0 / 5;
        p = p * s + 1.0 / 3;
        double lm = 2.0 * f + 2.0 * f * s * p;
        y[j] = e * ln2_hi + (e * ln2_lo + lm);
    }
}

/* Transpose 8 rows of 8 floats (rows r[8 i .. 8 i + 8)) into columns c[j] = (r_0[j], ..., r_7[j])
 * with three rounds of two-vector shuffles. */
#if defined(__clang__)
#define SHUF8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define SHUF8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, b, (fbank_i8){i0, i1, i2, i3, i4, i5, i6, i7})
#endif
static void transpose8(const float *r, fbank_f8 *c)
{
    fbank_f8 v[8], t[8], u[8];
    memcpy(v, r, sizeof v);
    for (int i = 0; i < 8; i += 2) {
        t[i] = SHUF8(v[i], v[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = SHUF8(v[i], v[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = SHUF8(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 1] = SHUF8(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[i + 2] = SHUF8(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 3] = SHUF8(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int j = 0; j < 4; j++) {
        c[j] = SHUF8(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        c[j + 4] = SHUF8(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* Feature rows of n frames (1 <= n <= STFT_BATCH) from their win_length samples, one frame per
 * lane: ln(max(sum_k P_k W_km, 1e-10)), then (x - mean) / std in float32 as torch does. Each
 * lane's arithmetic is the same whatever n, so batched and single frames agree bit for bit. */
static void fbank_frames(cochlea_fbank *fb, const float *const *spans, int n, float *out)
{
    stft_power_batch(fb->st, spans, n, fb->power);
    const double *pw = fb->power;
    double *mel = fb->mel;
    const int nm = fb->n_mels;
    for (int m = 0; m < nm; m++) {
        const double *w = fb->band_w + fb->band_off[m];
        const double *p = pw + (size_t)fb->band_lo[m] * STFT_BATCH;
        fbank_lanes acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, v;
        for (int j = 0; j < fb->band_len[m]; j += BAND_BLOCK) {
            memcpy(&v, p + (size_t)j * STFT_BATCH, sizeof v);
            acc0 += v * w[j];
            memcpy(&v, p + (size_t)(j + 1) * STFT_BATCH, sizeof v);
            acc1 += v * w[j + 1];
            memcpy(&v, p + (size_t)(j + 2) * STFT_BATCH, sizeof v);
            acc2 += v * w[j + 2];
            memcpy(&v, p + (size_t)(j + 3) * STFT_BATCH, sizeof v);
            acc3 += v * w[j + 3];
        }
        fbank_lanes sum = (acc0 + acc1) + (acc2 + acc3);
        memcpy(mel + (size_t)m * STFT_BATCH, &sum, sizeof sum);
    }
    for (int m = 0; m < nm; m++) {
        double *x = mel + (size_t)m * STFT_BATCH;
        for (int l = 0; l < STFT_BATCH; l++)
            x[l] = x[l] > FBANK_LOG_FLOOR ? x[l] : FBANK_LOG_FLOOR;
        log_block(x, x);
    }
    /* to float32 and MVN, still one frame per lane */
    float *fm = fb->fmel;
    for (int m = 0; m < nm; m++) {
        const double *x = mel + (size_t)m * STFT_BATCH;
        float *y = fm + (size_t)m * STFT_BATCH;
        for (int l = 0; l < STFT_BATCH; l++)
            y[l] = (float)x[l];
        if (fb->mean) {
            const float mu = fb->mean[m], sd = fb->std[m];
            for (int l = 0; l < STFT_BATCH; l++)
                y[l] = (y[l] - mu) / sd;
        }
    }
    /* transpose [mel][frame] to the caller's [frame][mel], 8 x 8 blocks at a time */
    int m0 = 0;
    for (; m0 + 8 <= nm; m0 += 8) {
        fbank_f8 c[8];
        transpose8(fm + (size_t)m0 * STFT_BATCH, c);
        for (int f = 0; f < n; f++)
            memcpy(out + (size_t)f * (size_t)nm + (size_t)m0, &c[f], sizeof c[f]);
    }
    for (int f = 0; f < n; f++)
        for (int m = m0; m < nm; m++)
            out[(size_t)f * (size_t)nm + (size_t)m] = fm[(size_t)m * STFT_BATCH + (size_t)f];
}

/* Pointer to frame t's samples: straight into x when the frame lies inside it, else gathered
 * (with reflection) into the scratch span. x[0] is sample x_first of an n_total-sample signal. */
static const float *fbank_span(cochlea_fbank *fb, const float *x, size_t x_first, size_t n_total, size_t t,
                               int lane)
{
    long long start = stft_frame_start(fb->st, t);
    if (start >= (long long)x_first && start + fb->win_length <= (long long)n_total)
        return x + ((size_t)start - x_first);
    float *dst = fb->span + (size_t)lane * (size_t)fb->win_length;
    stft_gather(fb->st, x, x_first, n_total, t, dst);
    return dst;
}

/* Index of the first non-finite value in x[0..n), or n. Blocks of 64 are tested with an
 * exponent-mask OR that the compiler vectorises; only a flagged block is searched. */
static size_t first_nonfinite(const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t bad = 0;
        for (int j = 0; j < 64; j++) {
            uint32_t b;
            memcpy(&b, &x[i + (size_t)j], sizeof b);
            bad |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
        }
        if (bad)
            break;
    }
    for (; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

static int too_short(const cochlea_fbank *fb, size_t n)
{
    return err_set(COCHLEA_ERANGE,
                   "fbank: a signal of %zu samples is too short: the STFT's reflect padding by n_fft/2 needs at "
                   "least %zu samples (torch.stft, and so ESPnet, rejects it too)",
                   n, stft_min_samples(fb->st));
}

int cochlea_fbank_compute(cochlea_fbank *fb, const float *samples, size_t n, float *feats, size_t max_frames,
                          size_t *n_frames)
{
    if (n_frames)
        *n_frames = 0;
    if (!fb || (!samples && n) || !n_frames)
        return err_set(COCHLEA_EINVAL, "cochlea_fbank_compute: NULL argument");
    size_t T = stft_n_frames(fb->st, n);
    if (T == 0)
        return too_short(fb, n);
    if (T > max_frames || !feats)
        return err_set(COCHLEA_ERANGE, "fbank: %zu samples give %zu frames but the output holds %zu", n, T,
                       feats ? max_frames : 0);
    size_t bad = first_nonfinite(samples, n);
    if (bad < n)
        return err_set(COCHLEA_EINVAL, "fbank: sample %zu is %g (not finite)", bad, (double)samples[bad]);
    const float *spans[STFT_BATCH];
    for (size_t t = 0; t < T; t += STFT_BATCH) {
        int nf = T - t < STFT_BATCH ? (int)(T - t) : STFT_BATCH;
        for (int f = 0; f < nf; f++)
            spans[f] = fbank_span(fb, samples, 0, n, t + (size_t)f, f);
        fbank_frames(fb, spans, nf, feats + t * (size_t)fb->n_mels);
    }
    *n_frames = T;
    return COCHLEA_OK;
}

void cochlea_fbank_reset(cochlea_fbank *fb)
{
    fb->buf_len = 0;
    fb->buf_first = 0;
    fb->n_in = 0;
    fb->t_next = 0;
    fb->finished = 0;
}

int cochlea_fbank_push(cochlea_fbank *fb, const float *samples, size_t n)
{
    if (!fb || (!samples && n))
        return err_set(COCHLEA_EINVAL, "cochlea_fbank_push: NULL argument");
    if (fb->finished)
        return err_set(COCHLEA_EINVAL, "fbank: samples pushed after finish (reset the stream first)");
    size_t bad = first_nonfinite(samples, n);
    if (bad < n)
        return err_set(COCHLEA_EINVAL, "fbank: stream sample %zu is %g (not finite)", fb->n_in + bad,
                       (double)samples[bad]);
    if (n == 0)
        return COCHLEA_OK;
    size_t need, n_in;
    if (size_add(fb->buf_len, n, &need) || size_add(fb->n_in, n, &n_in))
        return err_set(COCHLEA_ERANGE, "fbank: stream length overflows");
    if (need > fb->buf_cap) {
        size_t cap = fb->buf_cap ? fb->buf_cap : 4096, bytes;
        while (cap < need)
            if (size_mul(cap, 2, &cap))
                return err_set(COCHLEA_ERANGE, "fbank: stream buffer size overflows");
        if (size_mul(cap, sizeof(float), &bytes))
            return err_set(COCHLEA_ERANGE, "fbank: stream buffer size overflows");
        float *nb = realloc(fb->buf, bytes);
        if (!nb)
            return err_set(COCHLEA_ENOMEM, "fbank: out of memory for %zu stream samples", cap);
        fb->buf = nb;
        fb->buf_cap = cap;
    }
    memcpy(fb->buf + fb->buf_len, samples, n * sizeof(float));
    fb->buf_len = need;
    fb->n_in = n_in;
    return COCHLEA_OK;
}

int cochlea_fbank_finish(cochlea_fbank *fb)
{
    if (fb->finished)
        return COCHLEA_OK;
    if (fb->n_in < stft_min_samples(fb->st))
        return too_short(fb, fb->n_in);
    fb->finished = 1;
    return COCHLEA_OK;
}

int cochlea_fbank_pull(cochlea_fbank *fb, float *feats, size_t max_frames, size_t *n_frames)
{
    if (n_frames)
        *n_frames = 0;
    if (!fb || !n_frames || (!feats && max_frames))
        return err_set(COCHLEA_EINVAL, "cochlea_fbank_pull: NULL argument");
    const size_t min_n = stft_min_samples(fb->st);
    if (fb->n_in < min_n)
        return COCHLEA_OK;
    const size_t total = stft_n_frames(fb->st, fb->n_in); /* final count once finished */
    size_t done = 0;
    for (;;) {
        const float *spans[STFT_BATCH];
        int nf = 0;
        while (nf < STFT_BATCH && done + (size_t)nf < max_frames && fb->t_next + (size_t)nf < total) {
            size_t t = fb->t_next + (size_t)nf;
            if (!fb->finished && stft_frame_start(fb->st, t) + fb->win_length > (long long)fb->n_in)
                break; /* needs samples not pushed yet (or the end of the stream) */
            spans[nf] = fbank_span(fb, fb->buf, fb->buf_first, fb->n_in, t, nf);
            nf++;
        }
        if (nf == 0)
            break;
        fbank_frames(fb, spans, nf, feats + done * (size_t)fb->n_mels);
        fb->t_next += (size_t)nf;
        done += (size_t)nf;
    }
    /* Drop samples no later frame reads: keep from the next frame's start, and always the last
     * n_fft/2 + 1 samples, which the reflection at the end of the stream mirrors. */
    long long keep = stft_frame_start(fb->st, fb->t_next);
    long long tail = (long long)fb->n_in - (long long)min_n;
    if (tail < keep)
        keep = tail;
    if (keep > (long long)fb->buf_first) {
        size_t drop = (size_t)keep - fb->buf_first;
        memmove(fb->buf, fb->buf + drop, (fb->buf_len - drop) * sizeof(float));
        fb->buf_len -= drop;
        fb->buf_first += drop;
    }
    *n_frames = done;
    return COCHLEA_OK;
}

/* ---- model files -------------------------------------------------------------------------- */

/* Copy tensor `name` (ggml shape [ne0] or [ne0, ne1]; ne1 = 0: one dimension; any numeric
 * type) into dst as float; *found = 0 when the file has no such tensor. */
static int gguf_tensor_f32(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, float *dst, int *found)
{
    *found = 0;
    if (gguf_find_tensor(f, name) < 0)
        return COCHLEA_OK;
    const tensor *t;
    const int64_t ne[2] = {ne0, ne1};
    int rc = gguf_expect_tensor(f, name, ne1 ? 2 : 1, ne, &t);
    if (rc)
        return rc;
    for (int64_t r = 0; r < (ne1 ? ne1 : 1); r++)
        tensor_row_to_f32(t, r, dst + r * ne0);
    for (int64_t i = 0; i < ne0 * (ne1 ? ne1 : 1); i++)
        if (!isfinite(dst[i]))
            return err_set(COCHLEA_EFORMAT, "%s: tensor '%s' holds %g at element %lld", gguf_label(f), name,
                           (double)dst[i], (long long)i);
    *found = 1;
    return COCHLEA_OK;
}

int fbank_params_from_gguf(const gguf_file *f, cochlea_fbank_params *p, float **storage)
{
    *storage = NULL;
    *p = cochlea_fbank_default_params();
    const char *arch;
    int rc = gguf_get_str(f, "general.architecture", &arch, NULL);
    if (rc)
        return rc;
    static const char *const names[5] = {"sample_rate", "n_fft", "win_length", "hop_length", "n_mels"};
    static const int64_t hi[5] = {768000, 65536, 65536, 65536, FBANK_MAX_MELS};
    int *dst[5] = {&p->sample_rate, &p->n_fft, &p->win_length, &p->hop_length, &p->n_mels};
    char key[256];
    for (int i = 0; i < 5; i++) {
        int64_t v;
        snprintf(key, sizeof key, "%s.%s", arch, names[i]);
        rc = gguf_get_int(f, key, 1, hi[i], &v);
        if (rc)
            return rc;
        *dst[i] = (int)v;
    }
    double v;
    snprintf(key, sizeof key, "%s.fmin", arch);
    if (gguf_has_key(f, key)) {
        if ((rc = gguf_get_float(f, key, &v)))
            return rc;
        p->fmin = (float)v;
    }
    snprintf(key, sizeof key, "%s.fmax", arch);
    if (gguf_has_key(f, key)) {
        if ((rc = gguf_get_float(f, key, &v)))
            return rc;
        p->fmax = (float)v;
    }
    const size_t nm = (size_t)p->n_mels, nb = (size_t)(p->n_fft / 2 + 1);
    float *buf = malloc((nb * nm + 2 * nm) * sizeof(float));
    if (!buf)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", gguf_label(f));
    float *mat = buf, *mean = buf + nb * nm, *std = mean + nm;
    int has_mat, has_mean, has_std;
    if ((rc = gguf_tensor_f32(f, "frontend.logmel.melmat", (int64_t)nm, (int64_t)nb, mat, &has_mat)) ||
        (rc = gguf_tensor_f32(f, "normalize.mean", (int64_t)nm, 0, mean, &has_mean)) ||
        (rc = gguf_tensor_f32(f, "normalize.std", (int64_t)nm, 0, std, &has_std))) {
        free(buf);
        return rc;
    }
    if (has_mean != has_std) {
        free(buf);
        return err_set(COCHLEA_EFORMAT, "%s: has only one of the tensors normalize.mean and normalize.std",
                       gguf_label(f));
    }
    p->melmat = has_mat ? mat : NULL;
    p->mvn_mean = has_mean ? mean : NULL;
    p->mvn_std = has_std ? std : NULL;
    *storage = buf;
    return COCHLEA_OK;
}

/* ---- .npz / .npy reading --------------------------------------------------------------------- */

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

int npz_find(const unsigned char *buf, size_t size, const char *label, const char *name,
             const unsigned char **data, size_t *len)
{
    /* End of central directory: 22 bytes plus a comment of up to 65535 bytes at the end. */
    if (size < 22)
        return err_set(COCHLEA_EFORMAT, "%s: not a zip archive (%zu bytes; .npz files are zip archives)", label, size);
    size_t eocd = SIZE_MAX;
    size_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
    for (size_t i = size - 22 + 1; i-- > lowest;)
        if (rd32(buf + i) == 0x06054b50u && i + 22 + rd16(buf + i + 20) == size) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX)
        return err_set(COCHLEA_EFORMAT, "%s: not a zip archive (no end-of-central-directory record)", label);
    uint64_t n_entries = rd16(buf + eocd + 10), cd_size = rd32(buf + eocd + 12), cd_off = rd32(buf + eocd + 16);
    if (rd16(buf + eocd + 4) != 0 || rd16(buf + eocd + 6) != 0)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: multi-volume zip archives are not supported", label);
    if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        /* zip64: the locator sits just before the classic record */
        if (eocd < 20 || rd32(buf + eocd - 20) != 0x07064b50u)
            return err_set(COCHLEA_EFORMAT, "%s: zip64 fields without a zip64 locator", label);
        uint64_t z = rd64(buf + eocd - 20 + 8);
        if (z > size || size - z < 56 || rd32(buf + z) != 0x06064b50u)
            return err_set(COCHLEA_EFORMAT, "%s: bad zip64 end-of-central-directory offset %llu", label,
                           (unsigned long long)z);
        n_entries = rd64(buf + z + 32);
        cd_size = rd64(buf + z + 40);
        cd_off = rd64(buf + z + 48);
    }
    if (cd_off > size || cd_size > size - cd_off)
        return err_set(COCHLEA_EFORMAT, "%s: central directory (offset %llu, size %llu) lies outside the %zu-byte file",
                       label, (unsigned long long)cd_off, (unsigned long long)cd_size, size);
    const unsigned char *p = buf + cd_off, *end = buf + cd_off + cd_size;
    const size_t name_len = strlen(name);
    for (uint64_t e = 0; e < n_entries; e++) {
        if (end - p < 46 || rd32(p) != 0x02014b50u)
            return err_set(COCHLEA_EFORMAT, "%s: central directory entry %llu is damaged", label, (unsigned long long)e);
        uint32_t flags = rd16(p + 8), method = rd16(p + 10), crc = rd32(p + 16);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), off = rd32(p + 42);
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) < 46 + nlen + xlen + clen)
            return err_set(COCHLEA_EFORMAT, "%s: central directory entry %llu overruns the directory", label,
                           (unsigned long long)e);
        const unsigned char *ename = p + 46, *x = p + 46 + nlen, *xend = x + xlen;
        /* zip64 extended information: the 32-bit fields that are all ones, in this order */
        while (xend - x >= 4) {
            uint32_t id = rd16(x), sz = rd16(x + 2);
            if ((size_t)(xend - x - 4) < sz)
                return err_set(COCHLEA_EFORMAT, "%s: extra field of entry %llu overruns it", label,
                               (unsigned long long)e);
            if (id == 0x0001) {
                const unsigned char *q = x + 4, *qend = x + 4 + sz;
                uint64_t *fields[3] = {&usize, &csize, &off};
                for (int f = 0; f < 3; f++) {
                    if (*fields[f] != 0xFFFFFFFFu)
                        continue;
                    if (qend - q < 8)
                        return err_set(COCHLEA_EFORMAT, "%s: zip64 extra field of entry %llu is short", label,
                                       (unsigned long long)e);
                    *fields[f] = rd64(q);
                    q += 8;
                }
            }
            x += 4 + sz;
        }
        p += 46 + nlen + xlen + clen;
        if (nlen != name_len || memcmp(ename, name, nlen) != 0)
            continue;
        if (flags & 1u)
            return err_set(COCHLEA_EUNSUPPORTED, "%s: member '%s' is encrypted", label, name);
        if (method != 0)
            return err_set(COCHLEA_EUNSUPPORTED,
                           "%s: member '%s' is compressed (method %u); only stored members are read (np.savez, "
                           "not np.savez_compressed)",
                           label, name, method);
        if (csize != usize)
            return err_set(COCHLEA_EFORMAT, "%s: stored member '%s' has sizes %llu and %llu", label, name,
                           (unsigned long long)csize, (unsigned long long)usize);
        if (off > size || size - off < 30 || rd32(buf + off) != 0x04034b50u)
            return err_set(COCHLEA_EFORMAT, "%s: local header of '%s' (offset %llu) is missing or damaged", label,
                           name, (unsigned long long)off);
        uint64_t start = off + 30 + rd16(buf + off + 26) + rd16(buf + off + 28);
        if (start > size || size - start < csize)
            return err_set(COCHLEA_EFORMAT, "%s: member '%s' (%llu bytes at offset %llu) runs past the end of the "
                           "%zu-byte file", label, name, (unsigned long long)csize, (unsigned long long)start, size);
        uint32_t got = crc32_ieee(0, buf + start, (size_t)csize);
        if (got != crc)
            return err_set(COCHLEA_EFORMAT, "%s: member '%s' fails its CRC-32 check (stored %08x, computed %08x)",
                           label, name, crc, got);
        *data = buf + start;
        *len = (size_t)csize;
        return COCHLEA_OK;
    }
    return err_set(COCHLEA_EFORMAT, "%s: no member '%s' in the archive", label, name);
}

/* Value text that follows 'key': in a .npy header dict, or NULL. */
static const char *npy_key(const char *hdr, const char *key)
{
    const char *p = strstr(hdr, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

int npy_parse(const unsigned char *buf, size_t len, const char *label, npy_array *out)
{
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return err_set(COCHLEA_EFORMAT, "%s: not a .npy array (bad magic)", label);
    unsigned major = buf[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = rd16(buf + 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return err_set(COCHLEA_EFORMAT, "%s: truncated .npy header", label);
        hlen = rd32(buf + 8);
        hstart = 12;
    } else {
        return err_set(COCHLEA_EUNSUPPORTED, "%s: .npy format version %u is not supported", label, major);
    }
    if (hlen > len - hstart || hlen > (1u << 20))
        return err_set(COCHLEA_EFORMAT, "%s: .npy header of %zu bytes runs past the end (%zu bytes)", label, hlen, len);
    char *hdr = malloc(hlen + 1);
    if (!hdr)
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", label);
    memcpy(hdr, buf + hstart, hlen);
    hdr[hlen] = '\0';
    int rc = COCHLEA_OK;
    const char *d = npy_key(hdr, "'descr'"), *fo = npy_key(hdr, "'fortran_order'"), *sh = npy_key(hdr, "'shape'");
    if (!d || !fo || !sh || strlen(hdr) != hlen) {
        rc = err_set(COCHLEA_EFORMAT, "%s: .npy header lacks descr, fortran_order or shape", label);
        goto done;
    }
    if (strncmp(d, "'<f4'", 5) == 0 || strncmp(d, "'<f8'", 5) == 0 || strncmp(d, "'<i4'", 5) == 0 ||
        strncmp(d, "'<i8'", 5) == 0) {
        out->kind = d[2];
        out->itemsize = d[3] - '0';
    } else {
        const char *q = strchr(d + 1, '\'');
        int n = q ? (int)(q - d - 1) : 0;
        rc = err_set(COCHLEA_EUNSUPPORTED, "%s: dtype '%.*s' is not supported (little-endian f4, f8, i4, i8 only)",
                     label, n > 16 ? 16 : n, d + 1);
        goto done;
    }
    int fortran = strncmp(fo, "True", 4) == 0;
    if (!fortran && strncmp(fo, "False", 5) != 0) {
        rc = err_set(COCHLEA_EFORMAT, "%s: bad fortran_order in .npy header", label);
        goto done;
    }
    if (*sh != '(') {
        rc = err_set(COCHLEA_EFORMAT, "%s: bad shape in .npy header", label);
        goto done;
    }
    sh++;
    out->count = 1;
    for (;;) {
        while (*sh == ' ')
            sh++;
        if (*sh == ')')
            break;
        if (*sh < '0' || *sh > '9' || out->ndim == 4) {
            rc = err_set(COCHLEA_EFORMAT, "%s: bad or too many dimensions in .npy shape", label);
            goto done;
        }
        char *e;
        errno = 0;
        unsigned long long v = strtoull(sh, &e, 10);
        if (errno || v > SIZE_MAX || size_mul(out->count, (size_t)v, &out->count)) {
            rc = err_set(COCHLEA_ERANGE, "%s: .npy shape is too large", label);
            goto done;
        }
        out->shape[out->ndim++] = (size_t)v;
        sh = e;
        while (*sh == ' ')
            sh++;
        if (*sh == ',')
            sh++;
        else if (*sh != ')') {
            rc = err_set(COCHLEA_EFORMAT, "%s: bad .npy shape", label);
            goto done;
        }
    }
    if (fortran && out->ndim > 1) {
        rc = err_set(COCHLEA_EUNSUPPORTED, "%s: Fortran-order arrays of %d dimensions are not supported", label,
                     out->ndim);
        goto done;
    }
    size_t bytes;
    if (size_mul(out->count, (size_t)out->itemsize, &bytes) || bytes != len - hstart - hlen) {
        rc = err_set(COCHLEA_EFORMAT, "%s: .npy data is %zu bytes but its shape needs %zu", label, len - hstart - hlen,
                     out->count * (size_t)out->itemsize);
        goto done;
    }
    out->data = buf + hstart + hlen;
done:
    free(hdr);
    return rc;
}

double npy_get(const npy_array *a, size_t i)
{
    const unsigned char *p = a->data + i * (size_t)a->itemsize;
    if (a->kind == 'f') {
        if (a->itemsize == 4) {
            uint32_t u = rd32(p);
            float f;
            memcpy(&f, &u, 4);
            return f;
        }
        uint64_t u = rd64(p);
        double v;
        memcpy(&v, &u, 8);
        return v;
    }
    if (a->itemsize == 4)
        return (double)(int32_t)rd32(p);
    return (double)(int64_t)rd64(p);
}

int fbank_stats_parse(const unsigned char *buf, size_t size, const char *label, float *mean, float *std,
                      int max_mels, int *n_mels)
{
    static const char *const names[3] = {"count.npy", "sum.npy", "sum_square.npy"};
    npy_array a[3];
    char what[512];
    for (int i = 0; i < 3; i++) {
        const unsigned char *data;
        size_t len;
        int rc = npz_find(buf, size, label, names[i], &data, &len);
        if (rc)
            return rc;
        snprintf(what, sizeof what, "%s: %s", label, names[i]);
        rc = npy_parse(data, len, what, &a[i]);
        if (rc)
            return rc;
    }
    if (a[0].count != 1 || a[0].ndim > 1)
        return err_set(COCHLEA_EFORMAT, "%s: 'count' should be a scalar, it has %zu values", label, a[0].count);
    double count = npy_get(&a[0], 0);
    if (!(count > 0) || !isfinite(count))
        return err_set(COCHLEA_EFORMAT, "%s: frame count is %g (must be positive)", label, count);
    if (a[1].ndim != 1 || a[2].ndim != 1 || a[1].shape[0] != a[2].shape[0] || a[1].shape[0] == 0)
        return err_set(COCHLEA_EFORMAT, "%s: 'sum' and 'sum_square' should be vectors of the same length (%zu, %zu)",
                       label, a[1].count, a[2].count);
    size_t d = a[1].shape[0];
    if (d > (size_t)max_mels)
        return err_set(COCHLEA_ERANGE, "%s: statistics have %zu dimensions, the output holds %d", label, d, max_mels);
    for (size_t i = 0; i < d; i++) {
        double m = npy_get(&a[1], i) / count;
        double var = npy_get(&a[2], i) / count - m * m;
        double s = sqrt(var > 1e-20 ? var : 1e-20);
        if (!isfinite(m) || !isfinite(s))
            return err_set(COCHLEA_EFORMAT, "%s: dimension %zu gives mean %g, std %g (not finite)", label, i, m, s);
        mean[i] = (float)m;
        std[i] = (float)s;
    }
    *n_mels = (int)d;
    return COCHLEA_OK;
}

int cochlea_mvn_stats_load(const char *path, float *mean, float *std, int max_mels, int *n_mels)
{
    if (!path || !mean || !std || !n_mels || max_mels < 1)
        return err_set(COCHLEA_EINVAL, "cochlea_mvn_stats_load: bad argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(COCHLEA_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return err_set(COCHLEA_EIO, "%s: not a regular file", path);
    }
    if (st.st_size > (64 << 20)) {
        fclose(f);
        return err_set(COCHLEA_EFORMAT, "%s: %lld bytes is too large for a statistics file", path,
                       (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return err_set(COCHLEA_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, size, f);
    int io_err = ferror(f);
    fclose(f);
    int rc;
    if (got != size || io_err)
        rc = err_set(COCHLEA_EIO, "%s: read error", path);
    else
        rc = fbank_stats_parse(buf, size, path, mean, std, max_mels, n_mels);
    free(buf);
    return rc;
}
