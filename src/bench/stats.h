/*
 * stats.h - latency statistics for benchmarks: percentiles by the
 * nearest-rank method over a sorted copy, mean, min and max.
 */
#ifndef KILN_BENCH_STATS_H
#define KILN_BENCH_STATS_H

#include <stddef.h>

typedef struct kiln_latency_stats {
    size_t count;
    double min, max, mean;
    double p50, p90, p95, p99;
} kiln_latency_stats_t;

/* Computes statistics of samples[0..n) (any unit); samples is not changed.
 * Returns 0, or -1 when n is 0 or memory runs out. */
int kiln_latency_stats(const double *samples, size_t n, kiln_latency_stats_t *out);

/* The p-th percentile (0..100) of sorted[0..n) by nearest rank. */
double kiln_percentile_sorted(const double *sorted, size_t n, double p);

/* Peak resident memory of this process in bytes (VmHWM), 0 if unknown. */
size_t kiln_peak_rss_bytes(void);
/* Current resident memory (VmRSS) in bytes, 0 if unknown. */
size_t kiln_current_rss_bytes(void);

/* Monotonic clock in seconds. */
double kiln_now_seconds(void);

#endif
