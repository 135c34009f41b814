/* gemm.h - the one GEMM backend interface every model uses (design.md: numerics and speed).
 *
 * Backends: OpenBLAS cblas_sgemm (always built) and oneDNN (f32, bf16, int8 matmul; built
 * unless configured --without-dnnl). Matrices are row-major. Weight matrices are tensors in
 * PyTorch Linear layout: ne = {K, N} (N rows of K contiguous elements, row stride nb[1]) of type
 * F32, F16, BF16 or Q8_0, used directly from the model file (mmap) where the backend can,
 * otherwise packed once into the backend's preferred layout and cached inside the context's
 * gemm object.
 *
 * What runs where (oneDNN built, the default):
 *   precision F32,  W F32           oneDNN f32 matmul straight on W (no copy)
 *   precision F32,  W F16/BF16/Q8_0 W dequantised to fp32 in tiles of rows (about 1 MiB, in a
 *                                   reused scratch buffer) and one f32 matmul per tile; no fp32
 *                                   copy of the whole weight is ever made
 *   precision BF16, any W           W converted to bf16 and reordered ONCE into oneDNN's
 *                                   preferred blocked layout (cached); x rounded to bf16 per call
 *                                   (AVX512-BF16 when the CPU has it); fp32 accumulation
 *   precision INT8, any W           W quantised ONCE per output row to s8 (scale max|w|/127,
 *                                   cached, blocked layout); x quantised per call to u8 with one
 *                                   scale and zero point for the whole [M, K] block (asymmetric,
 *                                   min/max of x); s32 accumulation, scales applied in fp32.
 *                                   Where oneDNN cannot run int8 (CPU without VNNI, or the
 *                                   primitive is unavailable) the BF16 path runs instead; when x
 *                                   holds Inf/NaN that call runs the F32 path (int8 cannot
 *                                   represent them).
 * Built --without-dnnl (or backend set to GEMM_BACKEND_OPENBLAS) every precision runs the fp32
 * OpenBLAS path; gemm_backend_name() says so.
 *
 * Caches: primitives are created once per shape (M, N, K, leading dimensions, types, bias,
 * beta) and kept; packed weights are kept per (W->data, shape, type, precision) and checked
 * against a fingerprint of sampled bytes of W on every use, so a weight freed and another one
 * allocated at the same address is repacked. A weight modified in place must be dropped with
 * gemm_forget(). Everything is freed by gemm_free().
 *
 * Threads: a context's gemm object (and its caches and scratch buffers) may be used by one
 * thread at a time; different contexts may run concurrently in different threads. The
 * context's n_threads is applied to OpenBLAS (openblas_set_num_threads, which is process-wide)
 * and to oneDNN (omp_set_num_threads for the calling thread) before every product; the per-call
 * conversions run on the same OpenMP team, always with all n_threads threads or with one
 * (libgomp ends and restarts threads whenever the team size changes).
 * Note for callers: libgomp's idle threads spin for a while (about a millisecond) after each
 * product before they sleep, and compete with the context's thread pool for cores; measured on
 * 2 cores, a 2-thread pool task started right after an OpenMP region ran 1.9x slower. Setting
 * OMP_WAIT_POLICY=passive in the environment (before the program starts) removes that, at the
 * cost of a wake-up per product. */
#ifndef COCHLEA_GEMM_H
#define COCHLEA_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "tensor.h"

typedef struct gemm gemm;

/* Which library runs the products. AUTO: oneDNN when built and usable, else OpenBLAS. */
enum gemm_backend {
    GEMM_BACKEND_AUTO = 0,
    GEMM_BACKEND_OPENBLAS = 1, /* fp32 sgemm for every precision */
    GEMM_BACKEND_ONEDNN = 2,
};

/* Counters and sizes of a gemm object's caches (for tests, logs and benchmarks). */
typedef struct gemm_stats {
    uint64_t packs;          /* weights packed (or repacked) */
    uint64_t pack_hits;      /* products that found their weight already packed */
    uint64_t primitives;     /* oneDNN primitives created */
    uint64_t primitive_hits; /* products that reused a cached primitive */
    uint64_t fallbacks;      /* products that ran a lower path than asked (int8 -> bf16/f32) */
    size_t packed_bytes;     /* bytes held by packed weights now */
    size_t scratch_bytes;    /* bytes held by scratch buffers now */
    int n_packed;            /* packed weights held now */
    int n_primitives;        /* primitives held now */
} gemm_stats;

/* Create/free backend state for n_threads threads (owned by a cochlea_ctx). */
int gemm_create(int n_threads, gemm **out);
void gemm_free(gemm *g);
/* Name of the path gemm_linear runs for a precision, e.g. "openblas-f32", "onednn-bf16",
 * "onednn-bf16 (int8 unavailable)". Static storage. */
const char *gemm_backend_name(const gemm *g, enum cochlea_precision precision);
/* Choose the backend (default AUTO). GEMM_BACKEND_ONEDNN fails with COCHLEA_EUNSUPPORTED when
 * oneDNN is not built or could not start. Cached packings stay valid. */
int gemm_set_backend(gemm *g, enum gemm_backend backend);
void gemm_get_stats(const gemm *g, gemm_stats *out);

/* sgemm semantics, fp32 throughout (precision is ignored):
 * C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, op(X) = X or X^T (trans_x != 0),
 * leading dimensions in elements. With beta == 0, C is not read (it may hold NaN). */
int gemm_f32(cochlea_ctx *ctx, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Linear layer: y[M,N] = x[M,K] * W^T + bias (bias may be NULL) + beta * y.
 * x has row stride ldx (>= K), y has row stride ldy (>= N); W->ne = {K, N}, any of F32, F16,
 * BF16, Q8_0 (K % 32 == 0). With beta == 0, y is not read. M may be 0 (nothing to do).
 * Runs at the context's precision (see the table at the top of this file). */
int gemm_linear(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                float beta, float *y, int64_t ldy);

/* Linear layer for a few rows (decoding, small draft trees): the same y as gemm_linear, computed
 * in fp32 from the weights in place (F32, F16, BF16, Q8_0 read directly, no conversion pass), at
 * any context precision. Batch-invariant: every output element is the same sequence of
 * operations (16-lane fma partial sums over the columns in order, one horizontal sum, + bias,
 * + beta * y) whatever M is, which rows come with it and how threads split the work, so a row's
 * result never depends on the rest of the batch. COCHLEA_EUNSUPPORTED when
 * gemm_small_available(W, M) is 0 (no AVX-512, M outside 1..GEMM_SMALL_MAX_M, bad Q8_0 shape):
 * callers then use gemm_linear. */
#define GEMM_SMALL_MAX_M 16
int gemm_small_available(const tensor *W, int64_t M);
int gemm_linear_small(cochlea_ctx *ctx, const float *x, int64_t M, int64_t ldx, const tensor *W, const float *bias,
                      float beta, float *y, int64_t ldy);

/* Pack W now for the context's precision (otherwise done at first use). Call at model load.
 * Validates W; a no-op for paths that use W directly. */
int gemm_prepare(cochlea_ctx *ctx, const tensor *W);

/* Drop every cached packing of W (call after changing W's data in place or before freeing a
 * weight whose address may be reused while the context lives on). */
void gemm_forget(cochlea_ctx *ctx, const tensor *W);

/* The packed copy of W for a precision, or NULL when there is none (for tests). */
const void *gemm_packed_data(const cochlea_ctx *ctx, const tensor *W, enum cochlea_precision precision);

#endif
