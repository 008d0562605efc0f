/*
 * threadpool.h - the intra-op thread pool of a session.
 *
 * One pool per session with (threads - 1) workers; the calling thread works
 * too.  kiln_threadpool_run() splits [0, n) into chunks handed out through
 * an atomic counter, so uneven chunks balance themselves, and returns when
 * all are done.  Workers spin briefly before sleeping so back-to-back
 * kernels do not pay a wake-up each.
 */
#ifndef KILN_CORE_THREADPOOL_H
#define KILN_CORE_THREADPOOL_H

#include <stdint.h>

typedef struct kiln_threadpool kiln_threadpool_t;

typedef void (*kiln_range_fn)(void *arg, int64_t begin, int64_t end);

/* threads = total threads including the caller (>= 1).  NULL on failure. */
kiln_threadpool_t *kiln_threadpool_create(int threads);
void kiln_threadpool_free(kiln_threadpool_t *pool);
int kiln_threadpool_threads(const kiln_threadpool_t *pool);

/* Runs fn over [0, n) in chunks of at least grain; pool may be NULL
 * (runs inline).  Not reentrant: a kernel running inside a chunk must not
 * call it again on the same pool (nested calls run inline). */
void kiln_threadpool_run(kiln_threadpool_t *pool, int64_t n, int64_t grain, kiln_range_fn fn, void *arg);

/* Number of cores available to this process. */
int kiln_cpu_count(void);

#endif
