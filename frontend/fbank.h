/* fbank.h - mel filterbank, log and global MVN on top of stft.h (owsm-ctc.md §1); the public
 * cochlea_fbank_* API in cochlea.h is implemented in fbank.c. These are the internal helpers. */
#ifndef COCHLEA_FRONTEND_FBANK_H
#define COCHLEA_FRONTEND_FBANK_H

#include <stddef.h>

#include "cochlea.h"

/* ESPnet's log floor: ln(max(mel, 1e-10)). */
#define FBANK_LOG_FLOOR 1e-10

/* Slaney mel scale (librosa.hz_to_mel / mel_to_hz with htk=False): linear below 1 kHz at
 * 200/3 Hz per mel, logarithmic above with step ln(6.4)/27 per mel. */
double fbank_hz_to_mel(double hz);
double fbank_mel_to_hz(double mel);

/* librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney') in float32,
 * written transposed like ESPnet's melmat buffer: out[k * n_mels + m] for bin k in
 * [0, n_fft/2 + 1) and mel m. Follows librosa's arithmetic step for step (float64 triangles
 * stored as float32, then scaled by 2 / (f[m+2] - f[m])). Requires 0 <= fmin < fmax <= sr / 2. */
int fbank_slaney_melmat(int sample_rate, int n_fft, int n_mels, double fmin, double fmax, float *out);

/* A numpy array parsed from .npy bytes (little-endian f4/f8/i4/i8, C order). */
typedef struct npy_array {
    char kind;      /* 'f' or 'i' */
    int itemsize;   /* 4 or 8 */
    int ndim;       /* 0..4 */
    size_t shape[4];
    size_t count;   /* product of shape (1 for a scalar) */
    const unsigned char *data;
} npy_array;

/* Parse one .npy file image of `len` bytes; `label` names it in errors. The array's data points
 * into `buf`. */
int npy_parse(const unsigned char *buf, size_t len, const char *label, npy_array *out);
/* Element i as double. */
double npy_get(const npy_array *a, size_t i);

/* Find the stored (uncompressed) member `name` of a zip archive image (np.savez's .npz, zip64
 * records included) and check its CRC-32. *data points into `buf`. */
int npz_find(const unsigned char *buf, size_t size, const char *label, const char *name,
             const unsigned char **data, size_t *len);

struct gguf_file;

/* Fill *p from a model file: <arch>.sample_rate, n_fft, win_length, hop_length, n_mels (and fmin,
 * fmax when present), the tensor frontend.logmel.melmat of ggml shape [n_mels, n_fft/2 + 1] when
 * present (else the Slaney filterbank is used), and normalize.mean / normalize.std [n_mels] when
 * present (else no MVN). The tensors may have any numeric type; they are converted to float into
 * *storage (malloc'ed, freed by the caller with free() once the fbank is created; NULL on error),
 * which the pointers in *p point into. */
int fbank_params_from_gguf(const struct gguf_file *f, cochlea_fbank_params *p, float **storage);

/* GlobalMVN statistics from the bytes of a feats_stats.npz (see cochlea_mvn_stats_load). */
int fbank_stats_parse(const unsigned char *buf, size_t size, const char *label, float *mean, float *std,
                      int max_mels, int *n_mels);

#endif
