/* fft_r512.c - double-precision power spectrum of the 512-point real DFT for the STFT, one frame
 * per SIMD lane, with AVX-512, AVX2 and portable scalar paths chosen at run time (fft_r512.h). */
#include "fft_r512.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define FFT_HAVE_X86 1
#include <immintrin.h>
#else
#define FFT_HAVE_X86 0
#endif

#define FFT_SQRT1_2 0.70710678118654752440

struct fft_r512 {
    enum fft_r512_path path;
    int lanes;
    int left, win;
    double *wd;              /* the window as double */
    double *re, *im;         /* z[256] x lanes, 64-byte aligned, transformed in place */
    double tw1r[32 * 8], tw1i[32 * 8]; /* W_256^{j q}, j < 32, q < 8 */
    double tw2r[4 * 8], tw2i[4 * 8];   /* W_32^{j q}, j < 4, q < 8 */
    double twpr[256], twpi[256];       /* W_512^k, k < 256 */
};

/* W_n^e = exp(-2 pi i e / n) for 4 | n, from cos and sin of angles in [0, pi/4] and exact
 * quarter turns, so 1, -i, -1, i and the symmetric pairs come out exact. */
static void unit_root(int e, int n, double *c, double *s)
{
    const int quarter = n / 4;
    e %= n;
    int q = e / quarter, r = e % quarter;
    double cr, sr;
    if (2 * r <= quarter) {
        cr = cos(2.0 * M_PI * r / n);
        sr = sin(2.0 * M_PI * r / n);
    } else {
        cr = sin(2.0 * M_PI * (quarter - r) / n);
        sr = cos(2.0 * M_PI * (quarter - r) / n);
    }
    double x = cr, y = -sr;
    for (; q > 0; q--) { /* times -i per quarter turn */
        double t = x;
        x = y;
        y = -t;
    }
    *c = x;
    *s = y;
}

/* ---- kernels ------------------------------------------------------------------------------ */

/* Write the windowed frames into z = re + i im (lane f = frame f): sample i of the window sits at
 * position p = left + i of the 512-point frame, z[p / 2] real part for even p, imaginary for odd;
 * positions outside the window are zero. Portable version, used by the scalar path and for
 * windows the SIMD packers do not handle. */
static void pack_generic(fft_r512 *f, const float *const *spans, int lanes)
{
    const int left = f->left, win = f->win;
    for (int p = 0; p < FFT_R512_N; p++) {
        if (p >= left && p < left + win)
            continue;
        double *d = (p & 1 ? f->im : f->re) + (size_t)(p >> 1) * lanes;
        for (int l = 0; l < lanes; l++)
            d[l] = 0.0;
    }
    for (int l = 0; l < lanes; l++) {
        const float *x = spans[l];
        for (int i = 0; i < win; i++) {
            int p = left + i;
            (p & 1 ? f->im : f->re)[(size_t)(p >> 1) * lanes + l] = f->wd[i] * (double)x[i];
        }
    }
}

/* The scalar path: fma() is exact fused multiply-add (an instruction where the build targets one,
 * else libm's correctly rounded routine), so it matches the SIMD paths bit for bit. */
#define FFT_V double
#define FFT_L 1
#define FFT_NAME(x) x##_scalar
#define FFT_TARGET
#define FFT_SPLAT(c) (c)
#define FFT_FMA(a, b, c) fma(a, b, c)
#define FFT_FMS(a, b, c) fma(a, b, -(c))
#include "fft_r512_kernel.h"
#undef FFT_V
#undef FFT_L
#undef FFT_NAME
#undef FFT_TARGET
#undef FFT_SPLAT
#undef FFT_FMA
#undef FFT_FMS

#if FFT_HAVE_X86
#define FFT_V __m256d
#define FFT_L 4
#define FFT_NAME(x) x##_avx2
#define FFT_TARGET __attribute__((target("avx2,fma")))
#define FFT_SPLAT(c) _mm256_set1_pd(c)
#define FFT_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define FFT_FMS(a, b, c) _mm256_fmsub_pd(a, b, c)
#include "fft_r512_kernel.h"
#undef FFT_V
#undef FFT_L
#undef FFT_NAME
#undef FFT_TARGET
#undef FFT_SPLAT
#undef FFT_FMA
#undef FFT_FMS

#define FFT_V __m512d
#define FFT_L 8
#define FFT_NAME(x) x##_avx512
#define FFT_TARGET __attribute__((target("avx512f")))
#define FFT_SPLAT(c) _mm512_set1_pd(c)
#define FFT_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define FFT_FMS(a, b, c) _mm512_fmsub_pd(a, b, c)
#include "fft_r512_kernel.h"
#undef FFT_V
#undef FFT_L
#undef FFT_NAME
#undef FFT_TARGET
#undef FFT_SPLAT
#undef FFT_FMA
#undef FFT_FMS

/* The zero positions outside the window, for `lanes` lanes and an even left: z[0, left/2) and
 * z[(left + win + 1)/2, 256), plus the imaginary part of the last z when left + win is odd. */
static void pack_zeros(fft_r512 *f, int lanes)
{
    const size_t lo = (size_t)(f->left / 2), hi = (size_t)((f->left + f->win + 1) / 2), L = (size_t)lanes;
    memset(f->re, 0, lo * L * sizeof(double));
    memset(f->im, 0, lo * L * sizeof(double));
    memset(f->re + hi * L, 0, (256 - hi) * L * sizeof(double));
    memset(f->im + hi * L, 0, (256 - hi) * L * sizeof(double));
    if ((f->left + f->win) & 1)
        memset(f->im + (hi - 1) * L, 0, L * sizeof(double));
}

/* pack_generic for 8 lanes: 8 x 8 blocks of samples transposed with AVX shuffles (a window
 * starting at an even position; other windows take the generic packer). */
__attribute__((target("avx512f"))) static void pack_avx512(fft_r512 *f, const float *const *sp)
{
    if (f->left & 1) {
        pack_generic(f, sp, 8);
        return;
    }
    pack_zeros(f, 8);
    const int win = f->win;
    double *re = f->re, *im = f->im;
    /* Frames usually come from one signal at a fixed hop: prefetch the samples after the last
     * frame (the next batch's), two cache lines per block of 8 samples. */
    const uintptr_t ahead = (uintptr_t)(sp[7] + win);
    int i = 0;
    for (; i + 8 <= win; i += 8) {
        _mm_prefetch((const char *)(ahead + (uintptr_t)i * 16), _MM_HINT_T0);
        _mm_prefetch((const char *)(ahead + (uintptr_t)i * 16 + 64), _MM_HINT_T0);
        __m256 r0 = _mm256_loadu_ps(sp[0] + i), r1 = _mm256_loadu_ps(sp[1] + i);
        __m256 r2 = _mm256_loadu_ps(sp[2] + i), r3 = _mm256_loadu_ps(sp[3] + i);
        __m256 r4 = _mm256_loadu_ps(sp[4] + i), r5 = _mm256_loadu_ps(sp[5] + i);
        __m256 r6 = _mm256_loadu_ps(sp[6] + i), r7 = _mm256_loadu_ps(sp[7] + i);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        __m256 c[8];
        c[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
        c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
        c[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
        c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
        c[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
        c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
        c[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
        c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
        const size_t z = (size_t)((f->left + i) >> 1) * 8;
        for (int j = 0; j < 8; j += 2) {
            _mm512_store_pd(re + z + (size_t)j * 4, _mm512_mul_pd(_mm512_cvtps_pd(c[j]), _mm512_set1_pd(f->wd[i + j])));
            _mm512_store_pd(im + z + (size_t)j * 4,
                            _mm512_mul_pd(_mm512_cvtps_pd(c[j + 1]), _mm512_set1_pd(f->wd[i + j + 1])));
        }
    }
    for (; i < win; i++) {
        const int p = f->left + i;
        __m512d v = _mm512_set_pd(sp[7][i], sp[6][i], sp[5][i], sp[4][i], sp[3][i], sp[2][i], sp[1][i], sp[0][i]);
        _mm512_store_pd((p & 1 ? im : re) + (size_t)(p >> 1) * 8, _mm512_mul_pd(v, _mm512_set1_pd(f->wd[i])));
    }
}

/* pack_generic for 4 lanes with 4 x 4 SSE transposes. */
__attribute__((target("avx2,fma"))) static void pack_avx2(fft_r512 *f, const float *const *sp)
{
    if (f->left & 1) {
        pack_generic(f, sp, 4);
        return;
    }
    pack_zeros(f, 4);
    const int win = f->win;
    double *re = f->re, *im = f->im;
    const uintptr_t ahead = (uintptr_t)(sp[3] + win); /* the next batch's samples, as in pack_avx512 */
    int i = 0;
    for (; i + 4 <= win; i += 4) {
        _mm_prefetch((const char *)(ahead + (uintptr_t)i * 16), _MM_HINT_T0);
        __m128 r0 = _mm_loadu_ps(sp[0] + i), r1 = _mm_loadu_ps(sp[1] + i);
        __m128 r2 = _mm_loadu_ps(sp[2] + i), r3 = _mm_loadu_ps(sp[3] + i);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        const size_t z = (size_t)((f->left + i) >> 1) * 4;
        _mm256_store_pd(re + z, _mm256_mul_pd(_mm256_cvtps_pd(r0), _mm256_set1_pd(f->wd[i])));
        _mm256_store_pd(im + z, _mm256_mul_pd(_mm256_cvtps_pd(r1), _mm256_set1_pd(f->wd[i + 1])));
        _mm256_store_pd(re + z + 4, _mm256_mul_pd(_mm256_cvtps_pd(r2), _mm256_set1_pd(f->wd[i + 2])));
        _mm256_store_pd(im + z + 4, _mm256_mul_pd(_mm256_cvtps_pd(r3), _mm256_set1_pd(f->wd[i + 3])));
    }
    for (; i < win; i++) {
        const int p = f->left + i;
        __m256d v = _mm256_set_pd(sp[3][i], sp[2][i], sp[1][i], sp[0][i]);
        _mm256_store_pd((p & 1 ? im : re) + (size_t)(p >> 1) * 4, _mm256_mul_pd(v, _mm256_set1_pd(f->wd[i])));
    }
}
#endif

/* ---- object ------------------------------------------------------------------------------- */

int fft_r512_path_available(enum fft_r512_path path)
{
    switch (path) {
    case FFT_R512_AUTO:
    case FFT_R512_SCALAR:
        return 1;
#if FFT_HAVE_X86
    case FFT_R512_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FFT_R512_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0;
#endif
    default:
        return 0;
    }
}

const char *fft_r512_path_name(enum fft_r512_path path)
{
    switch (path) {
    case FFT_R512_AUTO: return "auto";
    case FFT_R512_SCALAR: return "scalar";
    case FFT_R512_AVX2: return "avx2";
    case FFT_R512_AVX512: return "avx512";
    default: return "unknown";
    }
}

int fft_r512_create(int win_length, const float *window, enum fft_r512_path path, fft_r512 **out)
{
    *out = NULL;
    if (win_length < 1 || win_length > FFT_R512_N || !window)
        return err_set(COCHLEA_EINVAL, "fft_r512: window length %d is outside [1, %d]", win_length, FFT_R512_N);
    if (path == FFT_R512_AUTO)
        path = fft_r512_path_available(FFT_R512_AVX512) ? FFT_R512_AVX512
               : fft_r512_path_available(FFT_R512_AVX2) ? FFT_R512_AVX2
                                                        : FFT_R512_SCALAR;
    if (path != FFT_R512_SCALAR && path != FFT_R512_AVX2 && path != FFT_R512_AVX512)
        return err_set(COCHLEA_EINVAL, "fft_r512: unknown path %d", (int)path);
    if (!fft_r512_path_available(path))
        return err_set(COCHLEA_EUNSUPPORTED, "fft_r512: the %s kernel is not available on this CPU or build",
                       fft_r512_path_name(path));
    fft_r512 *f = calloc(1, sizeof *f);
    if (!f)
        return err_set(COCHLEA_ENOMEM, "fft_r512: out of memory");
    f->path = path;
    f->lanes = path == FFT_R512_AVX512 ? 8 : path == FFT_R512_AVX2 ? 4 : 1;
    f->win = win_length;
    f->left = (FFT_R512_N - win_length) / 2;
    const size_t zbytes = (size_t)256 * (size_t)f->lanes * sizeof(double); /* <= 16 KiB: no overflow */
    f->wd = malloc((size_t)win_length * sizeof(double));
    f->re = aligned_alloc(64, zbytes);
    f->im = aligned_alloc(64, zbytes);
    if (!f->wd || !f->re || !f->im) {
        fft_r512_free(f);
        return err_set(COCHLEA_ENOMEM, "fft_r512: out of memory");
    }
    memset(f->re, 0, zbytes);
    memset(f->im, 0, zbytes);
    for (int i = 0; i < win_length; i++)
        f->wd[i] = (double)window[i];
    for (int j = 0; j < 32; j++)
        for (int q = 0; q < 8; q++)
            unit_root(j * q, 256, &f->tw1r[j * 8 + q], &f->tw1i[j * 8 + q]);
    for (int j = 0; j < 4; j++)
        for (int q = 0; q < 8; q++)
            unit_root(j * q, 32, &f->tw2r[j * 8 + q], &f->tw2i[j * 8 + q]);
    for (int k = 0; k < 256; k++)
        unit_root(k, 512, &f->twpr[k], &f->twpi[k]);
    *out = f;
    return COCHLEA_OK;
}

void fft_r512_free(fft_r512 *f)
{
    if (!f)
        return;
    free(f->wd);
    free(f->re);
    free(f->im);
    free(f);
}

enum fft_r512_path fft_r512_get_path(const fft_r512 *f)
{
    return f->path;
}

void fft_r512_power(fft_r512 *f, const float *const *spans, int n, double *power)
{
    const int L = f->lanes;
    for (int g = 0; g < n; g += L) {
        const float *sp[8];
        for (int l = 0; l < L; l++)
            sp[l] = spans[g + l < n ? g + l : n - 1]; /* spare lanes repeat the last frame */
        switch (f->path) {
#if FFT_HAVE_X86
        case FFT_R512_AVX512:
            pack_avx512(f, sp);
            transform_avx512(f, power + g);
            break;
        case FFT_R512_AVX2:
            pack_avx2(f, sp);
            transform_avx2(f, power + g);
            break;
#endif
        default:
            pack_generic(f, sp, 1);
            transform_scalar(f, power + g);
            break;
        }
    }
}
