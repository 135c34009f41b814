/* fft_r512.h - power spectrum |X_k|^2 of the 512-point real DFT of windowed, zero-padded frames,
 * in double precision, several frames at once (one frame per SIMD lane).
 *
 * The transform is a 256-point complex FFT of z[n] = x[2n] + i x[2n+1] (radix 8, 8, 4,
 * decimation in frequency) followed by the real-input split X_k = E_k + W_512^k O_k. Every path
 * (AVX-512: 8 frames per call, AVX2 + FMA: 4, scalar: 1) performs the same IEEE operations
 * (adds, multiplies and fused multiply-adds, never contracted by the compiler: C11 mode) in the
 * same order on each frame, so all paths give bit-identical results on every CPU, independent of
 * how frames are batched. The error against the exact DFT is about 1e-15 of the frame's energy.
 *
 * One fft_r512 object holds its scratch buffers: use one per thread. */
#ifndef COCHLEA_FRONTEND_FFT_R512_H
#define COCHLEA_FRONTEND_FFT_R512_H

#include <stddef.h>

#define FFT_R512_N 512
#define FFT_R512_BINS 257
/* Frames per fft_r512_power call at most, and the row stride of its output. */
#define FFT_R512_BATCH 8

enum fft_r512_path {
    FFT_R512_AUTO = 0, /* the widest path this CPU runs */
    FFT_R512_SCALAR,   /* portable C, one frame at a time */
    FFT_R512_AVX2,     /* x86-64 with AVX2 and FMA: 4 frames per kernel call */
    FFT_R512_AVX512,   /* x86-64 with AVX-512F: 8 frames per kernel call */
};

typedef struct fft_r512 fft_r512;

/* Create a transform for frames of win_length (1..512) samples centred in the 512-point frame
 * (left zeros: (512 - win_length) / 2) and multiplied by window[0..win_length) (copied).
 * Fails with COCHLEA_EUNSUPPORTED when `path` names a kernel this build or CPU lacks. */
int fft_r512_create(int win_length, const float *window, enum fft_r512_path path, fft_r512 **out);
void fft_r512_free(fft_r512 *f);

/* The path in use (never FFT_R512_AUTO) and its name ("scalar", "avx2", "avx512"). */
enum fft_r512_path fft_r512_get_path(const fft_r512 *f);
const char *fft_r512_path_name(enum fft_r512_path path);
/* Whether this build and CPU can run `path` (AUTO and SCALAR: always). */
int fft_r512_path_available(enum fft_r512_path path);

/* Power spectra of n frames (1 <= n <= FFT_R512_BATCH): spans[f] holds frame f's win_length
 * unwindowed samples. Writes power[k * FFT_R512_BATCH + f] = |X_k|^2 for k < 257, f < n; the
 * lanes f >= n of those rows are overwritten with finite values or left as they were. */
void fft_r512_power(fft_r512 *f, const float *const *spans, int n, double *power);

#endif
