/*
 * scheduler.h - one loaded model version and the threads that run it.
 *
 * A runner owns the loaded model, one session per instance (instance_group
 * count) and a bounded FIFO queue.  Each instance is a thread that takes the
 * oldest request; with dynamic batching it keeps gathering requests whose
 * inputs can be stacked with the first (same names, dtypes and non-batch
 * dims) until it has max_batch_size rows, or a preferred batch size with
 * nothing more to add, or the oldest request has waited
 * max_queue_delay_microseconds.  The batch runs once; outputs are split
 * back along the batch dimension.  A full queue refuses new requests (the
 * server answers 503) instead of growing without bound.
 *
 * Completion is a callback on the instance thread; the server moves the
 * response back to its HTTP thread from there.
 */
#ifndef KILN_SERVE_SCHEDULER_H
#define KILN_SERVE_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"
#include "serve/model_config.h"

typedef struct kiln_infer_request kiln_infer_request_t;
typedef void (*kiln_infer_done_fn)(kiln_infer_request_t *req, void *user);

struct kiln_infer_request {
    /* filled by the caller; the request owns names and tensors */
    int n_inputs;
    char **input_names;
    kiln_tensor_t **inputs;
    int64_t rows;                 /* batch rows (dim 0) when the model batches, else 1 */
    kiln_infer_done_fn done;
    void *user;
    /* filled by the runner */
    kiln_status_t status;         /* KILN_OK or the failure */
    int http_status;              /* 400 bad input, 503 unavailable, 500 runtime */
    char error[512];
    int n_outputs;
    char **output_names;          /* borrowed from the session: valid while the runner lives */
    kiln_tensor_t **outputs;      /* owned by the request */
    uint64_t enqueue_ns, start_ns, infer_start_ns, infer_end_ns, end_ns;
    int64_t batch_rows;           /* rows of the execution this request was part of */
    kiln_infer_request_t *next;   /* queue link */
};

typedef struct kiln_runner kiln_runner_t;

/* Per-runner statistics in Triton's inference_stats shape (all ns). */
typedef struct kiln_runner_stats {
    uint64_t success_count, success_ns;
    uint64_t fail_count, fail_ns;
    uint64_t queue_count, queue_ns;
    uint64_t compute_input_count, compute_input_ns;
    uint64_t compute_infer_count, compute_infer_ns;
    uint64_t compute_output_count, compute_output_ns;
    uint64_t inference_count, execution_count;
    uint64_t last_inference_ms;
#define KILN_STATS_LATENCY_BUCKETS 16
    uint64_t latency_bucket[KILN_STATS_LATENCY_BUCKETS + 1]; /* requests by latency (last: +Inf) */
    uint64_t latency_us_sum;
#define KILN_STATS_MAX_BATCH 64
    uint64_t batch_count[KILN_STATS_MAX_BATCH + 1]; /* executions per batch size (last: larger) */
    uint64_t batch_infer_ns[KILN_STATS_MAX_BATCH + 1];
} kiln_runner_stats_t;

/* Upper bounds (microseconds) of the request latency histogram buckets. */
extern const uint64_t kiln_latency_bucket_us[KILN_STATS_LATENCY_BUCKETS];

/* Loads model_path and starts config->instance_count instance threads,
 * each with a session of `threads` intra-op threads.  config is copied. */
kiln_status_t kiln_runner_create(const char *model_path, const kiln_model_config_t *config, int threads,
                                 int default_max_queue, kiln_runner_t **out);

/* Queues the request.  Returns KILN_ERR_UNSUPPORTED with http_status 503
 * when the queue is full or the runner is stopping (the request is not
 * taken: the caller still owns it). */
kiln_status_t kiln_runner_submit(kiln_runner_t *r, kiln_infer_request_t *req);

/* Runs req on the calling thread when the model does not batch, nothing
 * is queued and an instance is idle: no thread hand-off, so a small model
 * answers at the cost of its compute.  Returns true when it ran (done() was
 * called on this thread), false when the caller should submit instead. */
bool kiln_runner_try_inline(kiln_runner_t *r, kiln_infer_request_t *req);

/* Stops taking requests, lets the queued and running ones finish (their
 * callbacks run), joins the threads and frees everything. */
void kiln_runner_free(kiln_runner_t *r);

int kiln_runner_pending(kiln_runner_t *r);
const kiln_model_config_t *kiln_runner_config(const kiln_runner_t *r);
kiln_session_t *kiln_runner_session(kiln_runner_t *r); /* instance 0, for metadata */
void kiln_runner_stats(kiln_runner_t *r, kiln_runner_stats_t *out);

/* Counts each execution (and its batch size) in the monitoring registry
 * too; stats may be NULL.  Call before the first submit. */
struct kiln_model_stats;
void kiln_runner_set_monitor_stats(kiln_runner_t *r, struct kiln_model_stats *stats);

/* Frees what a request owns (inputs, outputs, names) and the request. */
void kiln_infer_request_free(kiln_infer_request_t *req);
/* Frees what a request owns and zeroes it, for a request that lives inside
 * another allocation (the server's per-request record). */
void kiln_infer_request_clear(kiln_infer_request_t *req);

uint64_t kiln_monotonic_ns(void);

#endif
