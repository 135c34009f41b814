/* threadpool.c - pthread pool with a generation counter. A run is handed over through atomics:
 * workers spin for a short while after each task (a decoder step issues dozens of small runs
 * back to back, and waking a sleeping thread through a condition variable costs tens of
 * microseconds, more than many of those runs take), then sleep on a condition variable, so an
 * idle pool uses no CPU. The caller waits for the workers by spinning, then yielding. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cochlea.h"
#include "error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spin iterations (one pause each, roughly 10-40 ns) before a worker goes to sleep, and before
 * the caller starts yielding its core while it waits for the workers. */
#define POOL_SPIN_WORKER 20000
#define POOL_SPIN_CALLER 4000

struct worker {
    threadpool *pool;
    int ith;
    pthread_t thread;
};

struct threadpool {
    int n;
    struct worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t start;
    _Atomic uint64_t generation; /* incremented (after fn, arg, pending are set) to start a run */
    atomic_int pending;          /* workers still running the current run */
    atomic_int sleepers;         /* workers inside the condition-variable wait */
    atomic_int quit;
    atomic_int nap; /* set by pool_nap: spinning workers go to sleep */
    pool_task_fn fn;
    void *arg;
};

/* Wait until generation differs from `seen` or quit is set: spin, then sleep. */
static uint64_t worker_wait(threadpool *p, uint64_t seen)
{
    for (int i = 0; i < POOL_SPIN_WORKER; i++) {
        uint64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->quit, memory_order_relaxed))
            return g;
        if (atomic_load_explicit(&p->nap, memory_order_relaxed))
            break;
        CPU_RELAX();
    }
    pthread_mutex_lock(&p->mu);
    /* sleepers before the re-check: pool_run increments generation before it reads sleepers
     * (both sequentially consistent), so either this re-check sees the new run or pool_run sees
     * a sleeper and broadcasts under the mutex, which this thread holds until it waits */
    atomic_fetch_add(&p->sleepers, 1);
    uint64_t g;
    while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->quit))
        pthread_cond_wait(&p->start, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *vp)
{
    struct worker *w = vp;
    threadpool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        seen = worker_wait(p, seen);
        if (atomic_load(&p->quit))
            return NULL;
        w->pool->fn(p->arg, w->ith, p->n); /* fn, arg: published before generation (release) */
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

int pool_create(int n_threads, threadpool **out)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return err_set(COCHLEA_EINVAL, "thread count %d out of range (1 to 1024)", n_threads);
    threadpool *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(COCHLEA_ENOMEM, "cannot allocate a thread pool");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads, sizeof *p->workers);
        if (!p->workers) {
            pool_free(p);
            return err_set(COCHLEA_ENOMEM, "cannot allocate %d workers", n_threads);
        }
        for (int i = 1; i < n_threads; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i;
            if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
                p->n = i; /* only join the ones started */
                pool_free(p);
                return err_set(COCHLEA_EINTERNAL, "cannot start worker thread %d of %d", i, n_threads);
            }
        }
    }
    *out = p;
    return COCHLEA_OK;
}

void pool_free(threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n && p->workers; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    free(p->workers);
    free(p);
}

int pool_size(const threadpool *p)
{
    return p ? p->n : 1;
}

void pool_run(threadpool *p, pool_task_fn fn, void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->nap, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: publishes fn, arg, pending */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->start);
        pthread_mutex_unlock(&p->mu);
    }

    fn(arg, 0, p->n);

    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        if (i < POOL_SPIN_CALLER)
            CPU_RELAX();
        else
            sched_yield();
    }
}

void pool_nap(threadpool *p)
{
    if (p && p->n > 1)
        atomic_store_explicit(&p->nap, 1, memory_order_relaxed);
}
