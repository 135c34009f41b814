/* gemm_blas.c - the OpenBLAS backend: cblas_sgemm for fp32. */
#include "config.h"

#include <cblas.h>

#include "gemm_internal.h"

#ifdef HAVE_OPENBLAS
void openblas_set_num_threads(int n);
#endif

void gemm_blas_set_threads(int n)
{
#ifdef HAVE_OPENBLAS
    openblas_set_num_threads(n);
#else
    (void)n;
#endif
}
