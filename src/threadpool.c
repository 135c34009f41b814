/* threadpool.c - pthread pool with a generation counter; workers sleep on a condition variable
 * between runs. */
#include "threadpool.h"

#include <pthread.h>
#include <stdlib.h>

#include "cochlea.h"
#include "error.h"

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
    pthread_cond_t done;
    uint64_t generation;
    int pending;
    int quit;
    pool_task_fn fn;
    void *arg;
};

static void *worker_main(void *vp)
{
    struct worker *w = vp;
    threadpool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->start, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        pool_task_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);

        fn(arg, w->ith, p->n);

        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
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
    pthread_cond_init(&p->done, NULL);
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
    p->quit = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n && p->workers; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);

    fn(arg, 0, p->n);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
