/* ctx.c - compute context lifecycle. */
#include "ctx.h"

#include <stdlib.h>
#include <unistd.h>

#include "error.h"
#include "gemm.h"
#include "gemm_internal.h"

int ctx_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)(n > 1024 ? 1024 : n) : 1;
}

int ctx_create(int n_threads, enum cochlea_precision precision, cochlea_ctx **out)
{
    int rc;
    *out = NULL;
    if (n_threads == 0)
        n_threads = ctx_default_threads();
    if (n_threads < 0 || n_threads > 1024)
        return err_set(COCHLEA_EINVAL, "thread count %d out of range (0 = all CPUs, or 1 to 1024)", n_threads);
    if (precision != COCHLEA_PRECISION_F32 && precision != COCHLEA_PRECISION_BF16 &&
        precision != COCHLEA_PRECISION_INT8)
        return err_set(COCHLEA_EINVAL, "unknown precision %d", (int)precision);
    cochlea_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(COCHLEA_ENOMEM, "cannot allocate a context");
    c->n_threads = n_threads;
    c->precision = precision;
    if ((rc = pool_create(n_threads, &c->pool)) != 0 || (rc = gemm_create(n_threads, &c->gemm)) != 0) {
        ctx_free(c);
        return rc;
    }
    c->gemm->pool = c->pool;
    *out = c;
    return COCHLEA_OK;
}

void ctx_free(cochlea_ctx *ctx)
{
    if (!ctx)
        return;
    gemm_free(ctx->gemm);
    pool_free(ctx->pool);
    free(ctx);
}
