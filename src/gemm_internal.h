/* gemm_internal.h - backend state shared by gemm.c and the backend files (gemm_blas.c,
 * gemm_dnnl.c), and the conversion kernels the backends use. */
#ifndef COCHLEA_GEMM_INTERNAL_H
#define COCHLEA_GEMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"
#include "threadpool.h"

/* A scratch buffer that only grows (64-byte aligned), reused across calls. */
typedef struct gemm_buf {
    void *p;
    size_t size;
} gemm_buf;

struct gemm_dnnl; /* oneDNN state, gemm_dnnl.c */

struct gemm {
    int n_threads;
    enum gemm_backend backend; /* as requested */
    gemm_buf tile;             /* fp32 dequantised weight tile */
    gemm_buf act;              /* activations converted to bf16/u8 */
    gemm_buf aux;              /* small per-call arrays (per-column scales) */
    gemm_buf out;              /* dense output when the backend cannot write strided rows */
    gemm_stats stats;
    struct gemm_dnnl *dnnl; /* NULL when oneDNN is not built or failed to start */
    struct threadpool *pool; /* the context's pool (pool_nap before other thread teams run), or NULL */
};

/* Rows of a weight tile dequantised at a time: about this many bytes of fp32. */
#define GEMM_TILE_BYTES ((size_t)1 << 20)

/* Return a buffer of at least `size` bytes (contents undefined), or NULL (error set). */
void *gemm_buf_get(gemm *g, gemm_buf *b, size_t size);
void gemm_buf_free(gemm *g, gemm_buf *b);

/* Validate a Linear weight for gemm_linear: known numeric type, 2-D ({K, N}, ne[2] = ne[3] =
 * 1), elements contiguous within a row, rows at least a row's bytes apart, data present. */
int gemm_check_weight(const tensor *W, const char *fn);

/* A 64-bit hash of sampled bytes of W (start and end of 16 rows spread over the tensor): cheap
 * to recompute on every call, changes when W is replaced by different data at the same address. */
uint64_t gemm_weight_fingerprint(const tensor *W);

/* ---- conversion kernels (AVX-512 when the CPU has it, scalar otherwise) ---------------- */

/* Run fn(arg, ith, nth) for every ith < nth: nth = 1 when `work` (elements) is below
 * 2 * GEMM_GRAIN, else nth = the context's thread count, on the OpenMP team that oneDNN uses
 * (omp != 0 and libgomp linked: the threads that are already awake for the product, so the two
 * never compete for cores) or else on the context's thread pool. */
void gemm_parallel(cochlea_ctx *ctx, int omp, int64_t work, void (*fn)(void *arg, int ith, int nth), void *arg);
#define GEMM_GRAIN 16384

/* out[r * K + k] = fp32 value of W row r0 + r, element k, for r < nr (one thread). */
void gemm_weight_rows_f32(const tensor *W, int64_t r0, int64_t nr, float *out);
/* out[r * K + k] = bf16(W[r0 + r, k]) (round to nearest even), for r < nr (one thread). */
void gemm_weight_rows_bf16(const tensor *W, int64_t r0, int64_t nr, uint16_t *out);
/* f32 -> bf16 with one chosen kernel: 0 portable C, 1 AVX-512F integer rounding, 2 the AVX512-BF16
 * instruction (which reads subnormal inputs as zero). COCHLEA_EUNSUPPORTED when the CPU or the
 * build lacks it. For tests of the kernels against each other. */
int gemm_cvt_bf16_kernel(const float *x, uint16_t *out, size_t n, int kernel);

/* The activation kernels below run on gemm_parallel(ctx, omp, ...). */
/* out[i * K + k] = bf16(x[i * ldx + k]), round to nearest even, for i < M. */
void gemm_rows_to_bf16(cochlea_ctx *ctx, int omp, const float *x, int64_t M, int64_t K, int64_t ldx, uint16_t *out);
/* Minimum and maximum of x[i * ldx + k] over i < M, k < K; returns 0 if any value is Inf or NaN
 * (then the bounds are meaningless), else 1. */
int gemm_rows_minmax(cochlea_ctx *ctx, int omp, const float *x, int64_t M, int64_t K, int64_t ldx, float *mn,
                     float *mx);
/* out[i * K + k] = clamp(round_even(x[i * ldx + k] * inv_scale) + zp, 0, 255). */
void gemm_rows_to_u8(cochlea_ctx *ctx, int omp, const float *x, int64_t M, int64_t K, int64_t ldx, float inv_scale,
                     int32_t zp, uint8_t *out);

/* y[i * ldy + j] = bias[j] + beta * y[i * ldy + j] (y not read when beta == 0; bias may be
 * NULL, then only the beta scaling); used to fold bias into an sgemm with beta = 1. */
void gemm_prefill_bias(float *y, int64_t M, int64_t N, int64_t ldy, const float *bias, float beta);

/* A fp32 product on dense weight rows: y[M, N] = x[M, K] * w^T + bias + beta * y, where w holds
 * N rows of K floats with row stride ldw. */
typedef int (*gemm_rows_fn)(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const float *w, int64_t ldw,
                            int64_t K, int64_t N, const float *bias, float beta, float *y, int64_t ldy);

/* The fp32 Linear path: W used directly when it is F32, else dequantised in tiles of rows
 * (GEMM_TILE_BYTES) into g->tile, one `rows` product per tile; omp as for gemm_parallel. */
int gemm_linear_f32(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                    float beta, float *y, int64_t ldy, gemm_rows_fn rows, int omp);

/* ---- OpenBLAS (gemm_blas.c) ------------------------------------------------------------ */

/* OpenBLAS: set its thread count (no-op for other BLAS). */
void gemm_blas_set_threads(int n);
/* cblas_sgemm, row-major, sizes already validated. */
void gemm_blas_sgemm(int n_threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* gemm_rows_fn on OpenBLAS. */
int gemm_blas_rows(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const float *w, int64_t ldw, int64_t K,
                   int64_t N, const float *bias, float beta, float *y, int64_t ldy);

/* ---- oneDNN (gemm_dnnl.c, only with HAVE_DNNL) ----------------------------------------- */

/* Start oneDNN (engine, stream, caches) for g; on failure g->dnnl stays NULL, an error is set. */
int gemm_dnnl_init(gemm *g);
void gemm_dnnl_free(gemm *g);
/* Whether the int8/bf16 matmuls can run on this CPU (decided once at init). */
int gemm_dnnl_has_int8(const gemm *g);
int gemm_dnnl_has_bf16(const gemm *g);
/* sgemm on oneDNN's JIT gemm, sizes already validated. */
int gemm_dnnl_sgemm(gemm *g, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* gemm_rows_fn on a cached oneDNN f32 matmul primitive. */
int gemm_dnnl_rows(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const float *w, int64_t ldw, int64_t K,
                   int64_t N, const float *bias, float beta, float *y, int64_t ldy);
/* gemm_linear at BF16 or INT8 precision, arguments already validated. */
int gemm_dnnl_linear(cochlea_ctx *ctx, enum cochlea_precision precision, const float *x, int64_t M, int64_t ldx,
                     const tensor *W, const float *bias, float beta, float *y, int64_t ldy);
/* Pack W for a precision (BF16 or INT8) if not already packed. */
int gemm_dnnl_prepare(gemm *g, const tensor *W, enum cochlea_precision precision);
void gemm_dnnl_forget(gemm *g, const tensor *W);
const void *gemm_dnnl_packed(const gemm *g, const tensor *W, enum cochlea_precision precision);

#endif
