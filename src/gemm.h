/* gemm.h - the one GEMM backend interface every model uses (design.md: numerics and speed).
 *
 * Backends: OpenBLAS cblas_sgemm (always built) and oneDNN (f32, bf16, int8 matmul; built
 * unless configured --without-dnnl). Matrices are row-major. Weight matrices are tensors in
 * PyTorch Linear layout: ne = {K, N} (N rows of K contiguous elements) of type F32, F16, BF16
 * or Q8_0, used directly from the model file (mmap) where the backend can, otherwise packed
 * once into the backend's preferred layout and cached inside the context's gemm object. */
#ifndef COCHLEA_GEMM_H
#define COCHLEA_GEMM_H

#include <stdint.h>

#include "ctx.h"
#include "tensor.h"

typedef struct gemm gemm;

/* Create/free backend state for n_threads threads (owned by a cochlea_ctx). */
int gemm_create(int n_threads, gemm **out);
void gemm_free(gemm *g);
/* Name of the backend in use for a given precision, e.g. "openblas", "onednn-bf16". */
const char *gemm_backend_name(const gemm *g, enum cochlea_precision precision);

/* sgemm semantics, fp32 throughout (precision is ignored):
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, op(X) = X or X^T (trans_x != 0),
 * leading dimensions in elements. */
int gemm_f32(cochlea_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Linear layer: y[M,N] = x[M,K] * W^T + bias (bias may be NULL) + beta * y.
 * x has row stride ldx (>= K), y has row stride ldy (>= N); W->ne = {K, N}.
 * Runs at the context's precision: F32 (weights dequantised as needed, exact fp32 math up to
 * summation order), BF16 (x and W rounded to bf16, fp32 accumulation), INT8 (Q8_0-style
 * symmetric int8 where supported, else BF16). */
int gemm_linear(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                float beta, float *y, int64_t ldy);

/* Pack W now for the context's precision (otherwise done at first use). Call at model load. */
int gemm_prepare(cochlea_ctx *ctx, const tensor *W);

#endif
