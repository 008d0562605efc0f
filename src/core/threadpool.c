/*
 * threadpool.c - see threadpool.h.
 *
 * A job is published by bumping `generation`; workers waiting on the
 * condition variable (or spinning on the generation) pick it up, take
 * chunks from `next_chunk` until none remain, then report done.
 *
 * Waiting (a worker for the next job, the caller for the workers) first
 * spins with the CPU's pause hint for a short while, keeping the core:
 * an inference runs one parallel loop after another a few microseconds
 * apart, and a thread that yielded its core there, on a machine with
 * other runnable work, would get it back only a time slice later.  Then
 * it spins with sched_yield, and at last sleeps on a condition variable.
 */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ITERATIONS 20000
/* Pause-hint spins before the sched_yield ones: a few hundred microseconds. */
#define PAUSE_ITERATIONS 4000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct kiln_threadpool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done_cond;
    atomic_uint_fast64_t generation; /* bumped for each job */
    bool stopping;
    /* the current job */
    kiln_range_fn fn;
    void *arg;
    int64_t n, chunk, n_chunks;
    atomic_int_fast64_t next_chunk;
    atomic_int active;               /* workers still inside the job */
    atomic_bool busy;                /* a job is running (nested calls go inline) */
};

static void run_chunks(kiln_threadpool_t *p)
{
    for (;;) {
        int64_t c = atomic_fetch_add(&p->next_chunk, 1);
        if (c >= p->n_chunks)
            break;
        int64_t b = c * p->chunk;
        int64_t e = b + p->chunk < p->n ? b + p->chunk : p->n;
        p->fn(p->arg, b, e);
    }
}

static void *worker_main(void *arg)
{
    kiln_threadpool_t *p = arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = atomic_load(&p->generation);
        for (int i = 0; gen == seen && i < PAUSE_ITERATIONS && !p->stopping; i++) {
            cpu_relax();
            gen = atomic_load(&p->generation);
        }
        for (int i = 0; gen == seen && i < SPIN_ITERATIONS; i++) {
            sched_yield();
            gen = atomic_load(&p->generation);
            if (p->stopping)
                break;
        }
        if (gen == seen) {
            pthread_mutex_lock(&p->lock);
            while ((gen = atomic_load(&p->generation)) == seen && !p->stopping)
                pthread_cond_wait(&p->wake, &p->lock);
            pthread_mutex_unlock(&p->lock);
        }
        if (p->stopping)
            return NULL;
        seen = gen;
        run_chunks(p);
        if (atomic_fetch_sub(&p->active, 1) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done_cond);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

int kiln_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

kiln_threadpool_t *kiln_threadpool_create(int threads)
{
    kiln_threadpool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = threads < 1 ? 1 : threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    if (p->threads > 1) {
        p->workers = calloc((size_t)p->threads - 1, sizeof *p->workers);
        if (!p->workers) {
            free(p);
            return NULL;
        }
        for (int i = 0; i < p->threads - 1; i++)
            if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
                p->threads = i + 1;
                break;
            }
    }
    return p;
}

void kiln_threadpool_free(kiln_threadpool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->threads - 1; i++)
        pthread_join(p->workers[i], NULL);
    free(p->workers);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cond);
    free(p);
}

int kiln_threadpool_threads(const kiln_threadpool_t *p) { return p ? p->threads : 1; }

void kiln_threadpool_run(kiln_threadpool_t *p, int64_t n, int64_t grain, kiln_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    bool expected = false;
    if (!p || p->threads == 1 || n <= grain || !atomic_compare_exchange_strong(&p->busy, &expected, true)) {
        fn(arg, 0, n);
        return;
    }
    int64_t chunks = p->threads * 4;
    int64_t chunk = (n + chunks - 1) / chunks;
    if (chunk < grain)
        chunk = grain;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunk = chunk;
    p->n_chunks = (n + chunk - 1) / chunk;
    atomic_store(&p->next_chunk, 0);
    atomic_store(&p->active, p->threads - 1);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_chunks(p);
    if (atomic_load(&p->active) > 0) {
        for (int i = 0; i < PAUSE_ITERATIONS && atomic_load(&p->active) > 0; i++)
            cpu_relax();
        for (int i = 0; i < SPIN_ITERATIONS && atomic_load(&p->active) > 0; i++)
            sched_yield();
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->active) > 0)
            pthread_cond_wait(&p->done_cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    atomic_store(&p->busy, false);
}
