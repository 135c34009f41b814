/* fft_r512_kernel.h - the body of the 512-point real power-spectrum kernel, included by
 * fft_r512.c once per path with:
 *   FFT_V       the lane type (double, or a GCC vector of doubles)
 *   FFT_L       lanes (frames) per call: 1, 4 or 8
 *   FFT_NAME(x) a path-specific name
 *   FFT_TARGET  function attributes (a target("...") for the SIMD paths, or nothing)
 *   FFT_SPLAT(c)        the double c in every lane
 *   FFT_FMA(a, b, c)    a * b + c with one rounding (fused multiply-add)
 *   FFT_FMS(a, b, c)    a * b - c with one rounding
 * Every operation is an IEEE add, subtract, multiply or fused multiply-add on whole lanes, in the
 * same order for every FFT_L, so each lane's result is identical across paths (fft_r512.h). */

/* Lane-vector load and store at p (p is 8 * FFT_L-byte aligned for the SIMD paths). */
#define LDV(p) FFT_NAME(ld)(p)
#define STV(p, v) FFT_NAME(st)(p, v)

static inline __attribute__((always_inline)) FFT_TARGET FFT_V FFT_NAME(ld)(const double *p)
{
    FFT_V v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) FFT_TARGET void FFT_NAME(st)(double *p, FFT_V v)
{
    memcpy(p, &v, sizeof v);
}

/* Forward 8-point DFT of (r[m], i[m]) in place, natural order: one radix-2 step (span 4, with
 * W8^m = e^{-2 pi i m / 8}) and two 4-point DFTs: X[2q] from the sums, X[2q+1] from the
 * differences. */
#define FFT_DFT8(r, i)                                                                                      \
    do {                                                                                                    \
        FFT_V b0r = r[0] + r[4], b0i = i[0] + i[4], b1r = r[1] + r[5], b1i = i[1] + i[5];                    \
        FFT_V b2r = r[2] + r[6], b2i = i[2] + i[6], b3r = r[3] + r[7], b3i = i[3] + i[7];                    \
        FFT_V c0r = r[0] - r[4], c0i = i[0] - i[4];                                                         \
        FFT_V x1r = r[1] - r[5], x1i = i[1] - i[5];                                                         \
        FFT_V c1r = (x1r + x1i) * FFT_SQRT1_2, c1i = (x1i - x1r) * FFT_SQRT1_2; /* * (1 - i)/sqrt2 */       \
        FFT_V c2r = i[2] - i[6], c2i = r[6] - r[2];                             /* * -i */                  \
        FFT_V x3r = r[3] - r[7], x3i = i[3] - i[7];                                                         \
        FFT_V c3r = (x3i - x3r) * FFT_SQRT1_2, c3i = -(x3r + x3i) * FFT_SQRT1_2; /* * -(1 + i)/sqrt2 */     \
        FFT_DFT4(b0r, b0i, b1r, b1i, b2r, b2i, b3r, b3i, r[0], i[0], r[2], i[2], r[4], i[4], r[6], i[6]);  \
        FFT_DFT4(c0r, c0i, c1r, c1i, c2r, c2i, c3r, c3i, r[1], i[1], r[3], i[3], r[5], i[5], r[7], i[7]);  \
    } while (0)

/* Forward 4-point DFT: Y0 = s0 + s1, Y1 = d0 + d1, Y2 = s0 - s1, Y3 = d0 - d1 with s0 = u0 + u2,
 * s1 = u1 + u3, d0 = u0 - u2, d1 = -i (u1 - u3). */
#define FFT_DFT4(u0r, u0i, u1r, u1i, u2r, u2i, u3r, u3i, y0r, y0i, y1r, y1i, y2r, y2i, y3r, y3i)             \
    do {                                                                                                    \
        FFT_V s0r = u0r + u2r, s0i = u0i + u2i, s1r = u1r + u3r, s1i = u1i + u3i;                            \
        FFT_V d0r = u0r - u2r, d0i = u0i - u2i, d1r = u1i - u3i, d1i = u3r - u1r;                            \
        y0r = s0r + s1r;                                                                                    \
        y0i = s0i + s1i;                                                                                    \
        y1r = d0r + d1r;                                                                                    \
        y1i = d0i + d1i;                                                                                    \
        y2r = s0r - s1r;                                                                                    \
        y2i = s0i - s1i;                                                                                    \
        y3r = d0r - d1r;                                                                                    \
        y3i = d0i - d1i;                                                                                    \
    } while (0)

/* One radix-8 decimation-in-frequency pass over blocks of 8 * span elements: for each block and
 * j < span, the 8-point DFT of elements j + span m, multiplied by tw[j][q] = W_{8 span}^{j q},
 * stored back at j + span q. */
static inline __attribute__((always_inline)) FFT_TARGET void FFT_NAME(radix8_pass)(double *re, double *im, int span,
                                                                                  const double *twr,
                                                                                  const double *twi)
{
    for (int b = 0; b < 256; b += 8 * span)
        for (int j = 0; j < span; j++) {
            FFT_V r[8], i[8];
            _Pragma("GCC unroll 8") for (int m = 0; m < 8; m++) {
                r[m] = LDV(re + (size_t)(b + j + span * m) * FFT_L);
                i[m] = LDV(im + (size_t)(b + j + span * m) * FFT_L);
            }
            FFT_DFT8(r, i);
            STV(re + (size_t)(b + j) * FFT_L, r[0]);
            STV(im + (size_t)(b + j) * FFT_L, i[0]);
            _Pragma("GCC unroll 8") for (int q = 1; q < 8; q++) {
                const FFT_V c = FFT_SPLAT(twr[j * 8 + q]), s = FFT_SPLAT(twi[j * 8 + q]);
                FFT_V xr = FFT_FMS(r[q], c, i[q] * s), xi = FFT_FMA(r[q], s, i[q] * c);
                STV(re + (size_t)(b + j + span * q) * FFT_L, xr);
                STV(im + (size_t)(b + j + span * q) * FFT_L, xi);
            }
        }
}

/* Load block b (4 consecutive elements) and apply the last radix-4 pass: a[q3] = Z at
 * frequency q1 + 8 q2 + 64 q3 for b = 32 q1 + 4 q2. */
#define FFT_LAST_DFT4(b, ar, ai)                                                                            \
    do {                                                                                                    \
        const size_t o_ = (size_t)(b) * FFT_L;                                                              \
        FFT_DFT4(LDV(re + o_), LDV(im + o_), LDV(re + o_ + FFT_L), LDV(im + o_ + FFT_L),                     \
                 LDV(re + o_ + 2 * FFT_L), LDV(im + o_ + 2 * FFT_L), LDV(re + o_ + 3 * FFT_L),              \
                 LDV(im + o_ + 3 * FFT_L), ar[0], ai[0], ar[1], ai[1], ar[2], ai[2], ar[3], ai[3]);        \
    } while (0)

/* Real split of A = Z_k, B = Z_{256-k} (0 < k < 256): 2E = A + conj B, 2O = (A - conj B) / i,
 * X_k = E + W_512^k O, X_{256-k} = conj(E - W_512^k O); writes |X_k|^2 and |X_{256-k}|^2 as
 * |2X|^2 / 4. Complex products and squared magnitudes use fused multiply-adds:
 * (a + ib)(c + id) = fms(a, c, b d) + i fma(a, d, b c), |x + iy|^2 = fma(x, x, y y). */
static inline __attribute__((always_inline)) FFT_TARGET void FFT_NAME(split)(const fft_r512 *f, FFT_V ar, FFT_V ai,
                                                                            FFT_V br, FFT_V bi, int k,
                                                                            double *power)
{
    FFT_V er = ar + br, ei = ai - bi, or_ = ai + bi, oi = br - ar;
    const FFT_V wr = FFT_SPLAT(f->twpr[k]), wi = FFT_SPLAT(f->twpi[k]);
    FFT_V tr = FFT_FMS(or_, wr, oi * wi), ti = FFT_FMA(or_, wi, oi * wr);
    FFT_V xr = er + tr, xi = ei + ti, yr = er - tr, yi = ei - ti;
    STV(power + (size_t)k * FFT_R512_BATCH, FFT_FMA(xr, xr, xi * xi) * 0.25);
    STV(power + (size_t)(256 - k) * FFT_R512_BATCH, FFT_FMA(yr, yr, yi * yi) * 0.25);
}

/* The 256-point complex FFT of the packed z (radix 8, 8, 4, decimation in frequency: frequency
 * k = q1 + 8 q2 + 64 q3 ends at position 32 q1 + 4 q2 + q3) and the real split into the power
 * spectrum, power[k * FFT_R512_BATCH + lane]. The radix-4 pass runs in registers on the pair of
 * blocks that hold k and 256 - k: (q1, q2) and (8 - q1, 7 - q2), or (0, 8 - q2) when q1 = 0;
 * blocks (0, 0) and (0, 4) pair with themselves. */
static FFT_TARGET void FFT_NAME(transform)(fft_r512 *f, double *power)
{
    double *re = f->re, *im = f->im;
    FFT_NAME(radix8_pass)(re, im, 32, f->tw1r, f->tw1i);
    FFT_NAME(radix8_pass)(re, im, 4, f->tw2r, f->tw2i);
    FFT_V ar[4], ai[4], br[4], bi[4];
    /* block (0, 0): k = 0 (E_0 = Re Z_0, O_0 = Im Z_0, X_0 = E + O, X_256 = E - O), 64 <-> 192, 128 */
    FFT_LAST_DFT4(0, ar, ai);
    {
        FFT_V a = ar[0] + ai[0], d = ar[0] - ai[0];
        STV(power, a * a);
        STV(power + (size_t)256 * FFT_R512_BATCH, d * d);
    }
    FFT_NAME(split)(f, ar[1], ai[1], ar[3], ai[3], 64, power);
    FFT_NAME(split)(f, ar[2], ai[2], ar[2], ai[2], 128, power);
    /* block (0, 4): 32 <-> 224, 96 <-> 160 */
    FFT_LAST_DFT4(16, ar, ai);
    FFT_NAME(split)(f, ar[0], ai[0], ar[3], ai[3], 32, power);
    FFT_NAME(split)(f, ar[1], ai[1], ar[2], ai[2], 96, power);
    for (int q1 = 0; q1 < 8; q1++)
        for (int q2 = 0; q2 < 8; q2++) {
            const int p1 = q1 ? 8 - q1 : 0, p2 = q1 ? 7 - q2 : (8 - q2) & 7;
            const int b = 32 * q1 + 4 * q2, bp = 32 * p1 + 4 * p2;
            if (bp <= b) /* the self-paired blocks above, or a pair already done */
                continue;
            FFT_LAST_DFT4(b, ar, ai);
            FFT_LAST_DFT4(bp, br, bi);
            for (int q3 = 0; q3 < 4; q3++)
                FFT_NAME(split)(f, ar[q3], ai[q3], br[3 - q3], bi[3 - q3], q1 + 8 * q2 + 64 * q3, power);
        }
}

#undef LDV
#undef STV
