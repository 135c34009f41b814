/* ctx.h - a compute context: thread pool, GEMM backend and precision, owned together.
 * Every model runtime holds one; ops take it as their first argument. */
#ifndef COCHLEA_CTX_H
#define COCHLEA_CTX_H

#include "cochlea.h"
#include "threadpool.h"

struct gemm;

typedef struct cochlea_ctx {
    int n_threads;
    enum cochlea_precision precision;
    threadpool *pool;
    struct gemm *gemm; /* owned; see gemm.h */
} cochlea_ctx;

/* Create a context with n_threads threads (0: all online CPUs). The thread count also sets the
 * BLAS/oneDNN threads used by this context's matrix products. */
int ctx_create(int n_threads, enum cochlea_precision precision, cochlea_ctx **out);
void ctx_free(cochlea_ctx *ctx);
/* Number of online CPUs (>= 1). */
int ctx_default_threads(void);

#endif
