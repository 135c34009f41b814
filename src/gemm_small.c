/* gemm_small.c - linear layers for a few rows (decoding, small draft trees) that read the weights
 * in place (F32, F16, BF16, Q8_0) with fp32 arithmetic, and give every row the same result
 * whatever the other rows of the batch are (see gemm.h, gemm_linear_small). */
#include <stdint.h>
#include <string.h>

#include "ctx.h"
#include "error.h"
#include "gemm.h"
#include "gemm_internal.h"
#include "tensor.h"
#include "threadpool.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GEMM_NO_SIMD)
#include <immintrin.h>
#define SMALL_X86 1
#endif

#ifdef SMALL_X86
static int small_cpu_ok(void)
{
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }
    return ok;
}

/* Each inner block keeps up to 16 accumulators in registers: MB activation rows x NB = 16 / MB
 * weight rows (MB = 1 to 4; 3 x 5 uses 15), so every weight chunk is loaded once per block and reused MB
 * times, and there are 16 independent fma chains (enough to hide the fma latency even for a
 * single row). */
#define SMALL_ACC 16

struct small_job {
    const float *x;
    int64_t M, ldx, K, N;
    const tensor *W;
    const float *bias;
    float beta;
    float *y;
    int64_t ldy;
};

/* 16 weights of row `wr` starting at column k (k % 16 == 0), as fp32; masked past K. For Q8_0,
 * k % 32 is 0 or 16 and K % 32 == 0, so a chunk never straddles a block. */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) __m512
wchunk(int type, const void *wr, int64_t k, __mmask16 m)
{
    switch (type) {
    case COCHLEA_TYPE_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)wr + k));
    case COCHLEA_TYPE_BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)wr + k)), 16));
    case COCHLEA_TYPE_Q8_0: {
        const block_q8_0 *b = (const block_q8_0 *)wr + k / QK8_0;
        __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16((short)b->d));
        __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + k % QK8_0)));
        return _mm512_mul_ps(d, _mm512_cvtepi32_ps(q));
    }
    default:
        return _mm512_maskz_loadu_ps(m, (const float *)wr + k);
    }
}

/* Weight row n (gemm_check_weight: a 2-D, row-contiguous weight). */
static inline const void *wrow(const struct small_job *J, int64_t n)
{
    return (const char *)J->W->data + (size_t)n * J->W->nb[1];
}

/* The horizontal sums of 16 accumulators at once. Every sum is formed by the same tree as
 * _mm512_reduce_add_ps (lane i + lane i+8, then i + i+4, i + i+2, i + i+1), whichever other
 * accumulators share the call. Lane 4j + t of the result holds the sum of v[4t + j]. */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) __m512
reduce16(const __m512 v[16])
{
    __m512 s1[8], s2[4], s3[2];
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++) /* [a.q0+a.q2, a.q1+a.q3, b.q0+b.q2, b.q1+b.q3] */
        s1[q] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * q], v[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(v[2 * q], v[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2)));
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) /* quarters: the 4-lane folds of v[4q .. 4q+3] */
        s2[q] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * q], s1[2 * q + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(s1[2 * q], s1[2 * q + 1], _MM_SHUFFLE(3, 1, 3, 1)));
#pragma GCC unroll 2
    for (int q = 0; q < 2; q++) /* quarter j: the 2-lane folds of v[8q + j] and v[8q + 4 + j] */
        s3[q] = _mm512_add_ps(_mm512_shuffle_ps(s2[2 * q], s2[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(s2[2 * q], s2[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* One chunk of 16 columns from k (masked by m) into the accumulators v[r * NB + j]. */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) void
small_chunk(int type, int MB, int NB, const float *const xr[4], const void *const wr[SMALL_ACC], int64_t k,
            __mmask16 m, __m512 v[SMALL_ACC])
{
    __m512 xv[4];
#pragma GCC unroll 4
    for (int r = 0; r < MB; r++) {
        xv[r] = m == (__mmask16)0xFFFF ? _mm512_loadu_ps(xr[r] + k) : _mm512_maskz_loadu_ps(m, xr[r] + k);
        /* keep the chunk in a register: folded into each fma as a memory operand it would be
         * loaded NB times, and the loads, not the fmas, would bound the loop */
        __asm__("" : "+v"(xv[r]));
    }
#pragma GCC unroll 16
    for (int j = 0; j < NB; j++) {
        __m512 w = wchunk(type, wr[j], k, m);
#pragma GCC unroll 4
        for (int r = 0; r < MB; r++)
            v[r * NB + j] = _mm512_fmadd_ps(w, xv[r], v[r * NB + j]);
    }
}

/* Rows [m0, m0 + MB) of x against weight rows [n0, n0 + nv) (nv <= 16 / MB). Output (r, j)
 * accumulates in v[r * NB + j]: one fma per chunk of 16 columns, in column order, then the
 * reduce16 tree, bias and beta. None of that depends on MB, m0, n0 or nv, so a row's result is
 * the same in any batch and on any thread split. */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) void
small_block(const struct small_job *J, int type, int MB, int64_t m0, int64_t n0, int nv)
{
    const int NB = SMALL_ACC / MB;
    const int64_t K = J->K, Kf = K / 16 * 16;
    const __mmask16 full = (__mmask16)0xFFFF, tail = (__mmask16)((1u << (K - Kf)) - 1u);
    const float *xr[4];
    const void *wr[SMALL_ACC];
#pragma GCC unroll 4
    for (int r = 0; r < MB; r++)
        xr[r] = J->x + (m0 + r) * J->ldx;
#pragma GCC unroll 16
    for (int j = 0; j < NB; j++) /* rows past the end repeat the last one; never stored */
        wr[j] = wrow(J, n0 + (j < nv ? j : nv - 1));
    __m512 v[SMALL_ACC]; /* v[MB * NB ..] stay 0 */
#pragma GCC unroll 16
    for (int i = 0; i < SMALL_ACC; i++)
        v[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < Kf; k += 16)
        small_chunk(type, MB, NB, xr, wr, k, full, v);
    if (Kf < K)
        small_chunk(type, MB, NB, xr, wr, Kf, tail, v);
    float s[SMALL_ACC];
    _mm512_storeu_ps(s, reduce16(v));
    for (int r = 0; r < MB; r++) {
        float *yo = J->y + (m0 + r) * J->ldy + n0;
        for (int j = 0; j < nv; j++) {
            int p = r * NB + j;
            float o = s[4 * (p % 4) + p / 4];
            if (J->bias)
                o += J->bias[n0 + j];
            yo[j] = J->beta == 0.0f ? o : o + J->beta * yo[j];
        }
    }
}

/* Weight rows [n0, n1) for rows [m0, m0 + MB), in blocks of 16 / MB. */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) void
small_rows(const struct small_job *J, int type, int MB, int64_t m0, int64_t n0, int64_t n1)
{
    const int NB = SMALL_ACC / MB;
    for (int64_t n = n0; n < n1; n += NB)
        small_block(J, type, MB, m0, n, n1 - n < NB ? (int)(n1 - n) : NB);
}

/* One specialisation per (type, block height) so that the accumulators stay in registers. */
#define SMALL_CASES(T)                                                                                                \
    switch (MB) {                                                                                                     \
    case 1: small_rows(J, T, 1, m0, n0, n1); break;                                                                   \
    case 2: small_rows(J, T, 2, m0, n0, n1); break;                                                                   \
    case 3: small_rows(J, T, 3, m0, n0, n1); break;                                                                   \
    default: small_rows(J, T, 4, m0, n0, n1); break;                                                                  \
    }

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void small_range(const struct small_job *J, int64_t n0, int64_t n1)
{
    for (int64_t m0 = 0; m0 < J->M;) {
        int64_t left = J->M - m0;
        int MB = left >= 4 ? 4 : (int)left;
        switch (J->W->type) {
        case COCHLEA_TYPE_F16: SMALL_CASES(COCHLEA_TYPE_F16); break;
        case COCHLEA_TYPE_BF16: SMALL_CASES(COCHLEA_TYPE_BF16); break;
        case COCHLEA_TYPE_Q8_0: SMALL_CASES(COCHLEA_TYPE_Q8_0); break;
        default: SMALL_CASES(COCHLEA_TYPE_F32); break;
        }
        m0 += MB;
    }
}

static void small_task(void *arg, int ith, int nth)
{
    const struct small_job *J = arg;
    int64_t b, e;
    pool_split(J->N, ith, nth, &b, &e);
    if (e > b)
        small_range(J, b, e);
}
#endif

int gemm_small_available(const tensor *W, int64_t M)
{
#ifdef SMALL_X86
    if (!W || M < 1 || M > GEMM_SMALL_MAX_M || !small_cpu_ok())
        return 0;
    switch (W->type) {
    case COCHLEA_TYPE_F32:
    case COCHLEA_TYPE_F16:
    case COCHLEA_TYPE_BF16: return 1;
    case COCHLEA_TYPE_Q8_0: return W->ne[0] % QK8_0 == 0;
    default: return 0;
    }
#else
    (void)W;
    (void)M;
    return 0;
#endif
}

int gemm_linear_small(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                      float beta, float *y, int64_t ldy)
{
    if (!ctx || !ctx->gemm)
        return err_set(COCHLEA_EINVAL, "gemm_linear_small: no context");
    int rc = gemm_check_weight(W, "gemm_linear_small");
    if (rc)
        return rc;
    int64_t K = W->ne[0], N = W->ne[1];
    if (!gemm_small_available(W, M))
        return err_set(COCHLEA_EUNSUPPORTED,
                       "gemm_linear_small: weight '%s': %lld rows of type %d need AVX-512 and 1 to %d rows",
                       W->name ? W->name : "(unnamed)", (long long)M, (int)W->type, GEMM_SMALL_MAX_M);
    if (ldx < K || ldy < N || !x || !y)
        return err_set(COCHLEA_EINVAL, "gemm_linear_small: weight '%s': bad input/output (ldx %lld, ldy %lld)",
                       W->name ? W->name : "(unnamed)", (long long)ldx, (long long)ldy);
#ifdef SMALL_X86
    struct small_job J = {x, M, ldx, K, N, W, bias, beta, y, ldy};
    /* the pool, never OpenMP: the split over N does not change any output's arithmetic */
    gemm_parallel(ctx, 0, M * K * N / 4, small_task, &J);
#endif
    return COCHLEA_OK;
}
