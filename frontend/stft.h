/* stft.h - the short-time power spectrum of ESPnet's frontend (owsm-ctc.md §1): torch.stft with
 * center=True, reflect padding by n_fft/2, a periodic Hann window of win_length centred in the
 * n_fft frame, no normalisation, power = re^2 + im^2.
 *
 * The transform runs in double precision on the float32 signal and the float32 window.
 * This is deliberate: the float32 FFT that ESPnet uses (and FFTW's float FFT) leaves rounding
 * noise around 1e-7 of the frame's energy in every bin, which moves the log-mel of pure tones and
 * DC by up to 2e-2 in the bins far from the signal. The double transform gives the exact value of
 * ESPnet's formula to about 1e-6 in log-mel, so results do not depend on an FFT library's rounding.
 *
 * For n_fft = 512 the transform is the project's own kernel (fft_r512.h: 8 frames per call on
 * AVX-512, 4 on AVX2, bit-identical on every path and batch size); other sizes, and CPUs without
 * AVX2 unless the scalar kernel is asked for, use FFTW (FFTW_ESTIMATE plans, so results are the
 * same on every run).
 *
 * One stft object holds its own plan and buffers: use one per thread. Creating and freeing
 * FFTW plans is serialised by a process-wide lock (FFTW's planner is not thread-safe); running
 * them is not. */
#ifndef COCHLEA_FRONTEND_STFT_H
#define COCHLEA_FRONTEND_STFT_H

#include <stddef.h>

typedef struct stft stft;

/* Frames per stft_power_batch call at most, and the row stride of its output. */
#define STFT_BATCH 8

/* Which transform computes the power spectrum. */
enum stft_fft {
    STFT_FFT_AUTO = 0, /* n_fft 512: AVX-512, else AVX2 kernel, else FFTW; other sizes: FFTW.
                        * The environment variable COCHLEA_FFT (auto, fftw, scalar, avx2, avx512)
                        * overrides this choice, for checking one path end to end. */
    STFT_FFT_FFTW,     /* FFTW's double r2c */
    STFT_FFT_SCALAR,   /* fft_r512's portable kernel (n_fft 512 only) */
    STFT_FFT_AVX2,     /* fft_r512's AVX2 kernel (n_fft 512 only) */
    STFT_FFT_AVX512,   /* fft_r512's AVX-512 kernel (n_fft 512 only) */
};

/* Create an STFT: 2 <= n_fft <= 65536, 1 <= win_length <= n_fft, 1 <= hop_length, with the
 * automatic transform choice. */
int stft_create(int n_fft, int win_length, int hop_length, stft **out);
/* The same with a given transform: COCHLEA_EUNSUPPORTED when it is not available for this n_fft,
 * build or CPU. */
int stft_create_fft(int n_fft, int win_length, int hop_length, enum stft_fft fft, stft **out);
void stft_free(stft *s);
/* The transform in use (never STFT_FFT_AUTO) and its name. */
enum stft_fft stft_get_fft(const stft *s);
const char *stft_fft_name(enum stft_fft fft);

int stft_n_fft(const stft *s);
int stft_n_bins(const stft *s);     /* n_fft/2 + 1 */
int stft_win_length(const stft *s);
int stft_hop_length(const stft *s);
/* The float32 window (win_length values), bit-identical to torch.hann_window(win_length) for
 * win_length 400 and otherwise its correctly rounded float32 formula (see stft_hann_window). */
const float *stft_window(const stft *s);

/* Fill w[0..n) with the periodic Hann window as torch computes it in float32:
 * w[i] = 0.5 - 0.5 * cos(float(i) * float(2 pi / n)), with the cosine rounded to float. */
void stft_hann_window(int n, float *w);

/* Smallest signal torch.stft accepts with reflect padding: n_fft/2 + 1 samples. */
size_t stft_min_samples(const stft *s);
/* Frames for a signal of n samples: 1 + n / hop_length, or 0 when n < stft_min_samples. */
size_t stft_n_frames(const stft *s, size_t n);
/* Sample index (may be negative) of the first windowed sample of frame t:
 * t * hop + (n_fft - win_length) / 2 - n_fft / 2. Frame t reads samples [start, start + win). */
long long stft_frame_start(const stft *s, size_t t);

/* Copy frame t's win_length samples into dst, reflecting indices outside [0, n_total) as torch's
 * reflect padding does (i < 0 -> -i, i >= n_total -> 2 (n_total - 1) - i). x[0] is the sample with
 * index x_first; the caller guarantees that every index needed is held. */
void stft_gather(const stft *s, const float *x, size_t x_first, size_t n_total, size_t t, float *dst);

/* Power spectrum of one frame: `span` holds the frame's win_length samples (unwindowed); writes
 * n_bins values |X_k|^2 of the n_fft-point DFT of the zero-padded, windowed frame. */
void stft_power(stft *s, const float *span, double *power);

/* Power spectra of n frames at once (1 <= n <= STFT_BATCH): spans[f] as in stft_power; writes
 * power[k * STFT_BATCH + f] for k < n_bins, f < n, bit-identical to stft_power of each frame.
 * Lanes f >= n of those rows receive finite values or keep theirs. */
void stft_power_batch(stft *s, const float *const *spans, int n, double *power);

#endif
