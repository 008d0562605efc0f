/*
 * gemm_bench.c - measures kiln_sgemm GFLOP/s (run-time chosen path, one
 * thread and all cores) against the portable reference on square sizes.
 *
 *   make build/libkiln.a && gcc -O2 -Iinclude -Isrc bench/gemm_bench.c \
 *       build/libkiln.a -lm -lpthread -o build/gemm_bench && build/gemm_bench [n]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ops/gemm.h"

/* Single-threaded runs are timed in this thread's CPU time, which other
 * processes on a shared machine barely disturb; threaded runs need the
 * wall clock. */
static double now_s(bool cpu_time)
{
    struct timespec ts;
    clock_gettime(cpu_time ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef enum { PATH_REFERENCE, PATH_FAST } path_t;

/* Best-of-reps GFLOP/s of one path at n x n x n. */
static double gflops(path_t path, int64_t n, kiln_threadpool_t *pool, int reps)
{
    float *a = malloc((size_t)(n * n) * sizeof *a), *b = malloc((size_t)(n * n) * sizeof *b);
    float *c = malloc((size_t)(n * n) * sizeof *c);
    for (int64_t i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.2f;
    }
    kiln_gemm_parallel_t par = kiln_gemm_parallel_pool(pool);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(pool == NULL);
        if (path == PATH_REFERENCE)
            kiln_sgemm_reference(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        else
            kiln_sgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n, &par);
        double t = now_s(pool == NULL) - t0;
        if (t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)n * (double)n * (double)n / best * 1e-9;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 512;
    int cores = kiln_cpu_count();
    kiln_threadpool_t *pool = kiln_threadpool_create(cores);
    printf("n=%lld path=%s\n", (long long)n, kiln_sgemm_path());
    printf("reference 1 thread:  %7.2f GFLOP/s\n", gflops(PATH_REFERENCE, n, NULL, 2));
    printf("fast      1 thread:  %7.2f GFLOP/s\n", gflops(PATH_FAST, n, NULL, 10));
    printf("fast      %d threads: %7.2f GFLOP/s\n", cores, gflops(PATH_FAST, n, pool, 10));
    kiln_sgemm_avoid_avx512(true);
    printf("path=%s\n", kiln_sgemm_path());
    printf("fast      1 thread:  %7.2f GFLOP/s\n", gflops(PATH_FAST, n, NULL, 10));
    printf("fast      %d threads: %7.2f GFLOP/s\n", cores, gflops(PATH_FAST, n, pool, 10));
    kiln_threadpool_free(pool);
    return 0;
}
