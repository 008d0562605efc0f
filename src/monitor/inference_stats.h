/*
 * inference_stats.h - counters a server pushes per model and version, read
 * by the monitor's sampler for /metrics and the history.
 *
 * The hot path is lock-free: a server looks a model up once
 * (kiln_inference_stats_model(), a short mutex), keeps the handle, and
 * records each request with relaxed atomic adds into fixed counters and
 * log-spaced histograms (latency) and power-of-two histograms (batch size).
 * The sampler reads a snapshot without stopping writers; percentiles are
 * estimated from the histogram buckets (within one bucket, about 19 %).
 *
 * Handles stay valid until the registry is freed, so a request in flight
 * never touches freed memory; kiln_inference_stats_remove() only hides a
 * model from snapshots (and a later lookup of the same model revives it).
 */
#ifndef KILN_MONITOR_INFERENCE_STATS_H
#define KILN_MONITOR_INFERENCE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef struct kiln_inference_stats kiln_inference_stats_t;
typedef struct kiln_model_stats kiln_model_stats_t;

/* Histogram layout of request latency: bucket 0 counts latencies below
 * 1 µs, bucket i > 0 those in [2^((i-1)/4), 2^(i/4)) µs; the last bucket
 * also takes everything longer (2^(119/4) µs is about 15 minutes). */
#define KILN_LATENCY_BUCKETS 120
/* Batch sizes: bucket i counts sizes in [2^i, 2^(i+1)). */
#define KILN_BATCH_BUCKETS 17

kiln_inference_stats_t *kiln_inference_stats_new(void);
/* Frees the registry and every handle it gave out. */
void kiln_inference_stats_free(kiln_inference_stats_t *reg);

/* The handle of model/version, created on first use (name and version are
 * copied; version "" is allowed).  NULL when out of memory or a name is
 * empty. */
kiln_model_stats_t *kiln_inference_stats_model(kiln_inference_stats_t *reg, const char *model,
                                               const char *version);
/* Hides model/version from snapshots (on unload). */
void kiln_inference_stats_remove(kiln_inference_stats_t *reg, const char *model,
                                 const char *version);

/* ---- Recording (lock-free; any thread) --------------------------------- */

/* One finished request: success or failure, the time it waited in the queue
 * and computed (microseconds), and end-to-end latency. */
void kiln_model_stats_request(kiln_model_stats_t *m, int success, uint64_t queue_us,
                              uint64_t compute_us, uint64_t total_us);
/* Why a request failed, as Triton labels nv_inference_request_failure. */
typedef enum kiln_failure_reason {
    KILN_FAILURE_REJECTED = 0, /* refused before running: queue full, timed out, shutting down */
    KILN_FAILURE_CANCELED = 1, /* the client went away */
    KILN_FAILURE_BACKEND = 2,  /* the model failed while running */
    KILN_FAILURE_OTHER = 3,    /* anything else (e.g. bad input found late) */
    KILN_FAILURE_REASONS = 4
} kiln_failure_reason_t;

/* Attributes one failed request (already counted by
 * kiln_model_stats_request with success 0) to a reason. */
void kiln_model_stats_failure_reason(kiln_model_stats_t *m, kiln_failure_reason_t reason);
const char *kiln_failure_reason_name(kiln_failure_reason_t reason);

/* One batch execution of batch_size inferences. */
void kiln_model_stats_execution(kiln_model_stats_t *m, uint64_t batch_size);
/* Requests waiting now (a gauge the server keeps current). */
void kiln_model_stats_set_pending(kiln_model_stats_t *m, int64_t pending);
/* GPU memory this model holds on the GPU with this UUID (bytes; 0 to clear).
 * Up to KILN_MODEL_GPUS different GPUs per model are kept. */
#define KILN_MODEL_GPUS 16
void kiln_model_stats_set_gpu_memory(kiln_model_stats_t *m, const char *gpu_uuid, uint64_t bytes);

/* ---- Reading ----------------------------------------------------------- */

typedef struct kiln_model_snapshot {
    char model[128];
    char version[32];
    uint64_t request_success;   /* requests answered without error */
    uint64_t request_failure;   /* requests that failed */
    uint64_t failure_by_reason[KILN_FAILURE_REASONS]; /* adds up to request_failure */
    uint64_t inference_count;   /* inferences (sum of batch sizes) */
    uint64_t exec_count;        /* batch executions */
    uint64_t queue_us;          /* total queue time of all requests */
    uint64_t compute_us;        /* total compute time */
    uint64_t request_us;        /* total end-to-end time */
    int64_t pending;
    double latency_p50_us, latency_p90_us, latency_p99_us; /* 0 with no requests */
    double batch_mean;          /* mean batch size, 0 with no executions */
    uint64_t batch_buckets[KILN_BATCH_BUCKETS];
    size_t n_gpus;
    char gpu_uuid[KILN_MODEL_GPUS][96];
    uint64_t gpu_memory_bytes[KILN_MODEL_GPUS];
} kiln_model_snapshot_t;

/* Copies the visible models into a new array (caller frees with free());
 * *count receives their number.  Returns KILN_ERR_NO_MEMORY on failure. */
kiln_status_t kiln_inference_stats_snapshot(kiln_inference_stats_t *reg,
                                            kiln_model_snapshot_t **out, size_t *count);

/* The latency (µs) below which fraction q of the recorded requests fell,
 * estimated from a histogram of KILN_LATENCY_BUCKETS counts.  Exposed for
 * tests. */
double kiln_latency_quantile(const uint64_t *buckets, double q);

#endif
