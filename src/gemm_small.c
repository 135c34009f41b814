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

/* Output rows per inner iteration: each weight row chunk is loaded once and used by every
 * activation row of the block. */
#define SMALL_MB 8

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

/* The output element (r, n): 16 lane partial sums over the columns in order (one fma per chunk of
 * 16), then _mm512_reduce_add_ps, then bias and beta. */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) void
small_store(const struct small_job *J, __m512 acc, int64_t m, int64_t n)
{
    float s = _mm512_reduce_add_ps(acc);
    float *yo = J->y + m * J->ldy + n;
    if (J->bias)
        s += J->bias[n];
    *yo = J->beta == 0.0f ? s : s + J->beta * *yo;
}

/* Rows [m0, m0 + MB) of x against weight rows [n0, n1), two weight rows at a time (each x chunk
 * is loaded once for both). The operations that make an output element depend on neither MB,
 * m0, the pairing of weight rows nor the n range (see small_store). */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) void
small_block(const struct small_job *J, int type, int MB, int64_t m0, int64_t n0, int64_t n1)
{
    const int64_t K = J->K, Kf = K / 16 * 16;
    const __mmask16 full = (__mmask16)0xFFFF, tail = (__mmask16)((1u << (K - Kf)) - 1u);
    const float *xr[SMALL_MB];
#pragma GCC unroll 8
    for (int r = 0; r < MB; r++)
        xr[r] = J->x + (m0 + r) * J->ldx;
    int64_t n = n0;
    for (; n + 1 < n1; n += 2) {
        const void *wa = wrow(J, n), *wb = wrow(J, n + 1);
        __m512 a[SMALL_MB], b[SMALL_MB];
#pragma GCC unroll 8
        for (int r = 0; r < MB; r++)
            a[r] = b[r] = _mm512_setzero_ps();
        for (int64_t k = 0; k < Kf; k += 16) {
            __m512 va = wchunk(type, wa, k, full), vb = wchunk(type, wb, k, full);
#pragma GCC unroll 8
            for (int r = 0; r < MB; r++) {
                __m512 xv = _mm512_loadu_ps(xr[r] + k);
                a[r] = _mm512_fmadd_ps(va, xv, a[r]);
                b[r] = _mm512_fmadd_ps(vb, xv, b[r]);
            }
        }
        if (Kf < K) {
            __m512 va = wchunk(type, wa, Kf, tail), vb = wchunk(type, wb, Kf, tail);
#pragma GCC unroll 8
            for (int r = 0; r < MB; r++) {
                __m512 xv = _mm512_maskz_loadu_ps(tail, xr[r] + Kf);
                a[r] = _mm512_fmadd_ps(va, xv, a[r]);
                b[r] = _mm512_fmadd_ps(vb, xv, b[r]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < MB; r++) {
            small_store(J, a[r], m0 + r, n);
            small_store(J, b[r], m0 + r, n + 1);
        }
    }
    if (n < n1) {
        const void *wa = wrow(J, n);
        __m512 a[SMALL_MB];
#pragma GCC unroll 8
        for (int r = 0; r < MB; r++)
            a[r] = _mm512_setzero_ps();
        for (int64_t k = 0; k < Kf; k += 16) {
            __m512 va = wchunk(type, wa, k, full);
#pragma GCC unroll 8
            for (int r = 0; r < MB; r++)
                a[r] = _mm512_fmadd_ps(va, _mm512_loadu_ps(xr[r] + k), a[r]);
        }
        if (Kf < K) {
            __m512 va = wchunk(type, wa, Kf, tail);
#pragma GCC unroll 8
            for (int r = 0; r < MB; r++)
                a[r] = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(tail, xr[r] + Kf), a[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < MB; r++)
            small_store(J, a[r], m0 + r, n);
    }
}

/* One specialisation per (type, block height) so that the accumulators stay in registers. */
#define SMALL_CASES(T)                                                                                                \
    switch (MB) {                                                                                                     \
    case 1: small_block(J, T, 1, m0, n0, n1); break;                                                                  \
    case 2: small_block(J, T, 2, m0, n0, n1); break;                                                                  \
    case 3: small_block(J, T, 3, m0, n0, n1); break;                                                                  \
    case 4: small_block(J, T, 4, m0, n0, n1); break;                                                                  \
    case 5: small_block(J, T, 5, m0, n0, n1); break;                                                                  \
    case 6: small_block(J, T, 6, m0, n0, n1); break;                                                                  \
    case 7: small_block(J, T, 7, m0, n0, n1); break;                                                                  \
    default: small_block(J, T, 8, m0, n0, n1); break;                                                                 \
    }

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void small_range(const struct small_job *J, int64_t n0, int64_t n1)
{
    for (int64_t m0 = 0; m0 < J->M; m0 += SMALL_MB) {
        int MB = J->M - m0 < SMALL_MB ? (int)(J->M - m0) : SMALL_MB;
        switch (J->W->type) {
        case COCHLEA_TYPE_F16: SMALL_CASES(COCHLEA_TYPE_F16); break;
        case COCHLEA_TYPE_BF16: SMALL_CASES(COCHLEA_TYPE_BF16); break;
        case COCHLEA_TYPE_Q8_0: SMALL_CASES(COCHLEA_TYPE_Q8_0); break;
        default: SMALL_CASES(COCHLEA_TYPE_F32); break;
        }
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
    gemm_parallel(ctx, 0, M * K * N / 8, small_task, &J);
#endif
    return COCHLEA_OK;
}
