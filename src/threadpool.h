/* threadpool.h - a fixed pool of worker threads owned by a context.
 *
 * pool_run(p, fn, arg) calls fn(arg, ith, nth) once for every ith in [0, nth) where nth is the
 * pool size; the calling thread runs ith = 0 and the call returns when all have finished.
 * Work is split by the callee (see pool_split). Runs are not reentrant: a task must not call
 * pool_run on the same pool. */
#ifndef COCHLEA_THREADPOOL_H
#define COCHLEA_THREADPOOL_H

#include <stdint.h>

typedef struct threadpool threadpool;
typedef void (*pool_task_fn)(void *arg, int ith, int nth);

/* Create a pool of n_threads (>= 1) threads (n_threads - 1 workers plus the caller). */
int pool_create(int n_threads, threadpool **out);
void pool_free(threadpool *p);
int pool_size(const threadpool *p);
void pool_run(threadpool *p, pool_task_fn fn, void *arg);

/* Send the workers to sleep now instead of letting them spin for the next run: call before
 * another thread team (oneDNN's OpenMP, OpenBLAS) runs on the same cores. The next pool_run
 * wakes them. NULL or a 1-thread pool: nothing. */
void pool_nap(threadpool *p);

/* The contiguous share [*begin, *end) of n items for thread ith of nth, balanced to +-1. */
static inline void pool_split(int64_t n, int ith, int nth, int64_t *begin, int64_t *end)
{
    int64_t q = n / nth, r = n % nth;
    *begin = ith * q + (ith < r ? ith : r);
    *end = *begin + q + (ith < r ? 1 : 0);
}

#endif
