/* gemm_blas.c - the OpenBLAS backend: cblas_sgemm for fp32 (always built). */
#include "config.h"

#include <cblas.h>

#include "gemm_internal.h"

#ifdef HAVE_OPENBLAS
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
#endif

void gemm_blas_set_threads(int n)
{
#ifdef HAVE_OPENBLAS
    /* process-wide setting; skip the call when it already holds */
    if (openblas_get_num_threads() != n)
        openblas_set_num_threads(n);
#else
    (void)n;
#endif
}

void gemm_blas_sgemm(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    gemm_blas_set_threads(n_threads);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* y = x w^T + bias + beta y: the bias is folded in first (y = bias + beta y), then sgemm with
 * beta 1; without a bias sgemm applies beta itself. */
int gemm_blas_rows(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const float *w, int64_t ldw, int64_t K,
                   int64_t N, const float *bias, float beta, float *y, int64_t ldy)
{
    if (bias) {
        gemm_prefill_bias(y, M, N, ldy, bias, beta);
        beta = 1.0f;
    }
    if (ctx->n_threads > 1)
        pool_nap(ctx->pool); /* OpenBLAS's own threads run this product */
    gemm_blas_sgemm(ctx->n_threads, 0, 1, M, N, K, 1.0f, x, ldx, w, ldw, beta, y, ldy);
    return COCHLEA_OK;
}
