/* gemm.c - GEMM front end: argument checks and dispatch to the backends. */
#include "config.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm_internal.h"

int gemm_create(int n_threads, gemm **out)
{
    gemm *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(COCHLEA_ENOMEM, "cannot allocate GEMM backend state");
    g->n_threads = n_threads;
    *out = g;
    return COCHLEA_OK;
}

void gemm_free(gemm *g)
{
    free(g);
}

const char *gemm_backend_name(const gemm *g, enum cochlea_precision precision)
{
    (void)g;
    (void)precision;
    return "openblas";
}

int gemm_f32(cochlea_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M < 0 || N < 0 || K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return err_set(COCHLEA_EINVAL, "gemm: bad sizes M=%lld N=%lld K=%lld", (long long)M, (long long)N,
                       (long long)K);
    if (M == 0 || N == 0)
        return COCHLEA_OK;
    gemm_blas_set_threads(ctx->n_threads);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    return COCHLEA_OK;
}

int gemm_prepare(cochlea_ctx *ctx, const tensor *W)
{
    (void)ctx;
    (void)W;
    return COCHLEA_OK;
}

int gemm_linear(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                float beta, float *y, int64_t ldy)
{
    int64_t K = W->ne[0], N = W->ne[1];
    float *w = NULL;
    const float *wp;
    if (W->type == COCHLEA_TYPE_F32 && tensor_is_contiguous(W)) {
        wp = W->data;
    } else {
        w = malloc((size_t)K * (size_t)N * sizeof(float));
        if (!w)
            return err_set(COCHLEA_ENOMEM, "gemm: cannot allocate %lld x %lld floats", (long long)N, (long long)K);
        for (int64_t r = 0; r < N; r++)
            tensor_row_to_f32(W, r, w + r * K);
        wp = w;
    }
    int rc = gemm_f32(ctx, 0, 1, M, N, K, 1.0f, x, ldx, wp, K, beta, y, ldy);
    if (rc == 0 && bias)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                y[i * ldy + j] += bias[j];
    free(w);
    return rc;
}
