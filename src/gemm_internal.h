/* gemm_internal.h - backend state shared by gemm.c and the backend files. */
#ifndef COCHLEA_GEMM_INTERNAL_H
#define COCHLEA_GEMM_INTERNAL_H

#include "gemm.h"

struct gemm {
    int n_threads;
};

/* OpenBLAS: set its thread count (no-op for other BLAS). */
void gemm_blas_set_threads(int n);

#endif
