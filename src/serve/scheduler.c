/*
 * scheduler.c - runners, instance threads and the dynamic batcher (see
 * scheduler.h).  The story of a request: kiln_runner_submit() appends it to
 * the queue and signals; an instance thread wakes in instance_main(), takes
 * it (and, batching, more compatible ones in gather_batch()), runs the batch
 * in execute_batch() and calls each request's done callback.
 */
#include "serve/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/tensor.h"
#include "monitor/inference_stats.h"

#define DEFAULT_MAX_QUEUE 1024
#define INLINE_WAIT_MAX_NS 50000     /* models slower than this (mean compute) are queued, not waited for */
#define INLINE_WAIT_MIN_RUNS 16      /* runs before the mean is trusted */
#define INLINE_WAIT_SLACK_NS 20000

typedef struct instance {
    struct kiln_runner *runner;
    kiln_session_t *session;
    pthread_t thread;
    bool started;
    bool busy;                   /* running a batch (its thread or an inline caller); under lock */
} instance_t;

struct kiln_runner {
    kiln_model_t *model;
    kiln_model_config_t config;
    int n_instances;
    instance_t *instances;
    int n_outputs;
    char **output_names;         /* from instance 0's session */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle;         /* an instance became free (for inline waiters) */
    int idle_waiters;
    kiln_infer_request_t *head, *tail;
    int queued;
    int max_queue;
    bool stopping;
    kiln_runner_stats_t stats;   /* under lock */
    kiln_model_stats_t *monitor_stats; /* lock-free counters for /metrics, or NULL */
};

/* Bucket bounds from 50 us to 10 s: cheap to keep (one increment per
 * request) and enough to read a p99 off /metrics. */
const uint64_t kiln_latency_bucket_us[KILN_STATS_LATENCY_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};

static void record_latency(kiln_runner_stats_t *s, uint64_t us)
{
    int b = 0;
    while (b < KILN_STATS_LATENCY_BUCKETS && us > kiln_latency_bucket_us[b])
        b++;
    s->latency_bucket[b]++;
    s->latency_us_sum += us;
}

uint64_t kiln_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kiln_infer_request_clear(kiln_infer_request_t *req)
{
    for (int i = 0; i < req->n_inputs; i++) {
        if (req->input_names)
            free(req->input_names[i]);
        if (req->inputs)
            kiln_tensor_free(req->inputs[i]);
    }
    free(req->input_names);
    free(req->inputs);
    for (int i = 0; i < req->n_outputs; i++)
        if (req->outputs)
            kiln_tensor_free(req->outputs[i]);
    free(req->outputs);
    memset(req, 0, sizeof *req);
}

void kiln_infer_request_free(kiln_infer_request_t *req)
{
    if (!req)
        return;
    kiln_infer_request_clear(req);
    free(req);
}

static void fail_request(kiln_infer_request_t *req, int http_status, const char *msg)
{
    req->status = KILN_ERR_RUNTIME;
    req->http_status = http_status;
    snprintf(req->error, sizeof req->error, "%s", msg);
}

/* Two requests can share a batch when their inputs match except dim 0. */
static bool compatible(const kiln_infer_request_t *a, const kiln_infer_request_t *b)
{
    if (a->n_inputs != b->n_inputs)
        return false;
    for (int i = 0; i < a->n_inputs; i++) {
        const kiln_tensor_t *x = a->inputs[i], *y = b->inputs[i];
        if (strcmp(a->input_names[i], b->input_names[i]) || x->dtype != y->dtype || x->rank != y->rank ||
            x->rank == 0 || x->dtype == KILN_DTYPE_STRING)
            return false;
        for (int d = 1; d < x->rank; d++)
            if (x->dims[d] != y->dims[d])
                return false;
    }
    return true;
}

static bool is_preferred(const kiln_model_config_t *c, int64_t rows)
{
    for (int i = 0; i < c->n_preferred; i++)
        if (c->preferred_batch_size[i] == rows)
            return true;
    return false;
}

/* Removes and returns the first queued request compatible with first that
 * still fits in max_rows - rows (lock held). */
static kiln_infer_request_t *take_compatible(struct kiln_runner *r, const kiln_infer_request_t *first,
                                             int64_t room)
{
    kiln_infer_request_t *prev = NULL;
    for (kiln_infer_request_t *q = r->head; q; prev = q, q = q->next) {
        if (q->rows > room || !compatible(first, q))
            continue;
        if (prev)
            prev->next = q->next;
        else
            r->head = q->next;
        if (r->tail == q)
            r->tail = prev;
        q->next = NULL;
        r->queued--;
        return q;
    }
    return NULL;
}

static bool any_compatible_fits(struct kiln_runner *r, const kiln_infer_request_t *first, int64_t room)
{
    for (kiln_infer_request_t *q = r->head; q; q = q->next)
        if (q->rows <= room && compatible(first, q))
            return true;
    return false;
}

/* With the lock held and a first request taken, gathers more into batch[]. */
static int gather_batch(struct kiln_runner *r, kiln_infer_request_t **batch, int max_requests)
{
    const kiln_model_config_t *c = &r->config;
    int n = 1;
    int64_t rows = batch[0]->rows;
    int64_t max_rows = c->max_batch_size;
    uint64_t deadline = batch[0]->enqueue_ns + (uint64_t)c->max_queue_delay_us * 1000ull;
    for (;;) {
        kiln_infer_request_t *q;
        while (n < max_requests && rows < max_rows && (q = take_compatible(r, batch[0], max_rows - rows))) {
            batch[n++] = q;
            rows += q->rows;
        }
        if (rows >= max_rows || n >= max_requests || r->stopping)
            break;
        if (is_preferred(c, rows) && !any_compatible_fits(r, batch[0], max_rows - rows))
            break;
        uint64_t now = kiln_monotonic_ns();
        if (now >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wait = deadline - now;
        ts.tv_sec += (time_t)(wait / 1000000000ull);
        ts.tv_nsec += (long)(wait % 1000000000ull);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->wake, &r->lock, &ts);
    }
    return n;
}

/* Stacks input i of every request along dim 0. */
static kiln_tensor_t *stack_input(kiln_infer_request_t **batch, int n, int i, int64_t rows)
{
    const kiln_tensor_t *first = batch[0]->inputs[i];
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, first->dims, sizeof dims);
    dims[0] = rows;
    kiln_tensor_t *t = kiln_tensor_create(first->dtype, first->rank, dims);
    if (!t)
        return NULL;
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        const kiln_tensor_t *src = batch[k]->inputs[i];
        memcpy((char *)kiln_tensor_data(t) + off, src->data, src->nbytes);
        off += src->nbytes;
    }
    return t;
}

/* Cuts rows [row, row+count) of t into a new tensor. */
static kiln_tensor_t *slice_rows(const kiln_tensor_t *t, int64_t row, int64_t count)
{
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    dims[0] = count;
    kiln_tensor_t *s = kiln_tensor_create(t->dtype, t->rank, dims);
    if (!s)
        return NULL;
    size_t row_bytes = t->dims[0] ? t->nbytes / (size_t)t->dims[0] : 0;
    if (t->dtype == KILN_DTYPE_STRING) {
        int64_t per_row = t->dims[0] ? t->count / t->dims[0] : 0;
        for (int64_t k = 0; k < count * per_row; k++)
            ((char **)s->data)[k] = strdup(((char *const *)t->data)[row * per_row + k]);
    } else if (s->nbytes) {
        memcpy(s->data, (const char *)t->data + (size_t)row * row_bytes, s->nbytes);
    }
    return s;
}

#define SMALL_INPUTS 16

static void execute_batch(instance_t *inst, kiln_infer_request_t **batch, int n)
{
    struct kiln_runner *r = inst->runner;
    kiln_infer_request_t *first = batch[0];
    int n_out = r->n_outputs;
    int64_t rows = 0;
    for (int k = 0; k < n; k++)
        rows += batch[k]->rows;
    uint64_t t_start = kiln_monotonic_ns();
    for (int k = 0; k < n; k++) {
        batch[k]->start_ns = t_start;
        batch[k]->batch_rows = rows;
    }
    /* outputs becomes the request's own list when it runs alone; stacked and
     * feed live on the stack for the usual few inputs (one malloc each less
     * per request on a small model) */
    kiln_tensor_t **outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    kiln_tensor_t *stacked_small[SMALL_INPUTS] = {0};
    const kiln_tensor_t *feed_small[SMALL_INPUTS];
    bool small = first->n_inputs <= SMALL_INPUTS;
    kiln_tensor_t **stacked = small ? stacked_small : calloc((size_t)first->n_inputs + 1, sizeof *stacked);
    const kiln_tensor_t **feed = small ? feed_small : calloc((size_t)first->n_inputs + 1, sizeof *feed);
    char msg[512] = "";
    int http_status = 500;
    bool ok = outputs && stacked && feed;
    if (!ok)
        snprintf(msg, sizeof msg, "out of memory");
    for (int i = 0; ok && i < first->n_inputs; i++) {
        if (n == 1) {
            feed[i] = first->inputs[i];
            continue;
        }
        stacked[i] = stack_input(batch, n, i, rows);
        if (!stacked[i]) {
            ok = false;
            snprintf(msg, sizeof msg, "%s", kiln_last_error());
        }
        feed[i] = stacked[i];
    }
    uint64_t t_infer = kiln_monotonic_ns();
    if (ok && kiln_session_run(inst->session, first->n_inputs, (const char *const *)first->input_names, feed, n_out,
                               outputs) != KILN_OK) {
        ok = false;
        snprintf(msg, sizeof msg, "%s", kiln_last_error());
        http_status = strstr(msg, "input '") ? 400 : 500;
    }
    uint64_t t_infer_end = kiln_monotonic_ns();
    /* split the outputs back */
    int64_t row = 0;
    for (int k = 0; k < n; k++) {
        kiln_infer_request_t *req = batch[k];
        req->infer_start_ns = t_infer;
        req->infer_end_ns = t_infer_end;
        if (!ok) {
            fail_request(req, http_status, msg);
            continue;
        }
        if (n == 1) {
            req->outputs = outputs; /* the request takes the list over */
            outputs = NULL;
        } else {
            req->outputs = calloc((size_t)n_out + 1, sizeof *req->outputs);
        }
        req->n_outputs = req->outputs ? n_out : 0;
        req->output_names = r->output_names;
        for (int o = 0; o < n_out && req->outputs && n > 1; o++) {
            const kiln_tensor_t *t = outputs[o];
            if (t->rank == 0 || t->dims[0] != rows) {
                fail_request(req, 500, "an output does not keep the batch dimension; batching cannot split it");
                break;
            }
            req->outputs[o] = slice_rows(t, row, req->rows);
            if (!req->outputs[o]) {
                fail_request(req, 500, "out of memory splitting a batch");
                break;
            }
        }
        if (!req->outputs)
            fail_request(req, 500, "out of memory");
        row += req->rows;
    }
    /* outputs is NULL here when a lone request took it over */
    for (int o = 0; outputs && o < n_out; o++)
        kiln_tensor_free(outputs[o]);
    for (int i = 0; stacked && i < first->n_inputs; i++)
        kiln_tensor_free(stacked[i]);
    if (!small) {
        free(stacked);
        free(feed);
    }
    free(outputs);
    uint64_t t_end = kiln_monotonic_ns();

    pthread_mutex_lock(&r->lock);
    kiln_runner_stats_t *s = &r->stats;
    s->execution_count++;
    s->inference_count += (uint64_t)rows;
    int slot = rows > KILN_STATS_MAX_BATCH ? KILN_STATS_MAX_BATCH : (int)rows;
    s->batch_count[slot]++;
    s->batch_infer_ns[slot] += t_infer_end - t_infer;
    s->last_inference_ms = (uint64_t)time(NULL) * 1000ull;
    for (int k = 0; k < n; k++) {
        kiln_infer_request_t *req = batch[k];
        req->end_ns = t_end;
        uint64_t total = t_end - req->enqueue_ns;
        record_latency(s, total / 1000);
        s->queue_count++;
        s->queue_ns += req->start_ns - req->enqueue_ns;
        if (req->status == KILN_OK) {
            s->success_count++;
            s->success_ns += total;
            s->compute_input_count++;
            s->compute_input_ns += t_infer - t_start;
            s->compute_infer_count++;
            s->compute_infer_ns += t_infer_end - t_infer;
            s->compute_output_count++;
            s->compute_output_ns += t_end - t_infer_end;
        } else {
            s->fail_count++;
            s->fail_ns += total;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (r->monitor_stats)
        kiln_model_stats_execution(r->monitor_stats, (uint64_t)rows);
    for (int k = 0; k < n; k++)
        batch[k]->done(batch[k], batch[k]->user);
}

static void *instance_main(void *arg)
{
    instance_t *inst = arg;
    struct kiln_runner *r = inst->runner;
    int max_requests = r->config.max_batch_size > 0 ? r->config.max_batch_size : 1;
    kiln_infer_request_t **batch = calloc((size_t)max_requests + 1, sizeof *batch);
    if (!batch)
        return NULL;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while ((!r->head || inst->busy) && !r->stopping)
            pthread_cond_wait(&r->wake, &r->lock);
        while (inst->busy) /* an inline caller still holds this instance */
            pthread_cond_wait(&r->wake, &r->lock);
        if (!r->head && r->stopping) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        inst->busy = true;
        kiln_infer_request_t *req = r->head;
        r->head = req->next;
        if (!r->head)
            r->tail = NULL;
        req->next = NULL;
        r->queued--;
        batch[0] = req;
        int n = 1;
        if (r->config.dynamic_batching && r->config.max_batch_size > 0)
            n = gather_batch(r, batch, max_requests);
        pthread_mutex_unlock(&r->lock);
        /* requests past their queue timeout are refused, not run */
        int live = 0;
        uint64_t now = kiln_monotonic_ns();
        for (int k = 0; k < n; k++) {
            kiln_infer_request_t *q = batch[k];
            if (r->config.default_timeout_us > 0 && now - q->enqueue_ns > (uint64_t)r->config.default_timeout_us * 1000ull) {
                fail_request(q, 503, "the request timed out in the queue");
                q->start_ns = q->end_ns = now;
                q->done(q, q->user);
            } else {
                batch[live++] = q;
            }
        }
        if (live)
            execute_batch(inst, batch, live);
        pthread_mutex_lock(&r->lock);
        inst->busy = false;
        if (r->idle_waiters)
            pthread_cond_signal(&r->idle);
        pthread_mutex_unlock(&r->lock);
    }
    free(batch);
    return NULL;
}

static instance_t *idle_instance(struct kiln_runner *r)
{
    for (int i = 0; i < r->n_instances; i++)
        if (!r->instances[i].busy)
            return &r->instances[i];
    return NULL;
}

/* When every instance is busy, a model that computes in microseconds is
 * cheaper to wait for here than to hand over: the queue costs a wake of an
 * instance thread and an event back to the HTTP thread (with two HTTP
 * threads on one instance of the bench's one-Add model, that hand-off was
 * most of the futex and epoll time in perf).  The wait is bounded by a few
 * times the model's mean compute time; a queued request ends it (FIFO). */
static instance_t *wait_for_idle_instance(struct kiln_runner *r)
{
    uint64_t n = r->stats.compute_infer_count;
    uint64_t mean_ns = n ? r->stats.compute_infer_ns / n : INLINE_WAIT_MAX_NS;
    if (n < INLINE_WAIT_MIN_RUNS || mean_ns >= INLINE_WAIT_MAX_NS)
        return NULL;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    uint64_t ns = (uint64_t)deadline.tv_nsec + 4 * mean_ns + INLINE_WAIT_SLACK_NS;
    deadline.tv_sec += (time_t)(ns / 1000000000u);
    deadline.tv_nsec = (long)(ns % 1000000000u);
    instance_t *inst = NULL;
    r->idle_waiters++;
    while (!inst && !r->stopping && !r->head) {
        int rc = pthread_cond_timedwait(&r->idle, &r->lock, &deadline);
        if (!r->stopping && !r->head)
            inst = idle_instance(r);
        if (rc == ETIMEDOUT)
            break;
    }
    r->idle_waiters--;
    return inst;
}

bool kiln_runner_try_inline(kiln_runner_t *r, kiln_infer_request_t *req)
{
    instance_t *inst = NULL;
    pthread_mutex_lock(&r->lock);
    if (!r->stopping && !r->head && !r->config.dynamic_batching) {
        inst = idle_instance(r);
        if (!inst)
            inst = wait_for_idle_instance(r);
    }
    if (inst)
        inst->busy = true;
    pthread_mutex_unlock(&r->lock);
    if (!inst)
        return false;
    req->next = NULL;
    req->status = KILN_OK;
    req->enqueue_ns = kiln_monotonic_ns();
    execute_batch(inst, &req, 1);
    pthread_mutex_lock(&r->lock);
    inst->busy = false;
    if (r->head)
        pthread_cond_broadcast(&r->wake);
    else if (r->idle_waiters)
        pthread_cond_signal(&r->idle);
    pthread_mutex_unlock(&r->lock);
    return true;
}

kiln_status_t kiln_runner_create(const char *model_path, const kiln_model_config_t *config, int threads,
                                 int default_max_queue, kiln_runner_t **out)
{
    *out = NULL;
    struct kiln_runner *r = calloc(1, sizeof *r);
    if (!r)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    r->config = *config;
    r->max_queue = config->max_queue_size > 0 ? config->max_queue_size
                                                : (default_max_queue > 0 ? default_max_queue : DEFAULT_MAX_QUEUE);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->idle, &attr);
    pthread_condattr_destroy(&attr);
    kiln_status_t st = kiln_model_load(model_path, &r->model);
    if (st) {
        kiln_runner_free(r);
        return st;
    }
    r->n_instances = config->instance_count > 0 ? config->instance_count : 1;
    r->instances = calloc((size_t)r->n_instances, sizeof *r->instances);
    if (!r->instances) {
        kiln_runner_free(r);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    }
    kiln_session_options_t opts;
    kiln_session_options_init(&opts);
    opts.threads = threads;
    for (int i = 0; i < r->n_instances; i++) {
        r->instances[i].runner = r;
        if ((st = kiln_session_create(r->model, &opts, &r->instances[i].session))) {
            kiln_runner_free(r);
            return st;
        }
    }
    r->n_outputs = kiln_session_output_count(r->instances[0].session);
    r->output_names = calloc((size_t)r->n_outputs + 1, sizeof *r->output_names);
    if (!r->output_names) {
        kiln_runner_free(r);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    }
    for (int o = 0; o < r->n_outputs; o++) {
        kiln_io_info_t info;
        kiln_session_output_info(r->instances[0].session, o, &info);
        r->output_names[o] = (char *)info.name;
    }
    for (int i = 0; i < r->n_instances; i++) {
        if (pthread_create(&r->instances[i].thread, NULL, instance_main, &r->instances[i]) != 0) {
            kiln_runner_free(r);
            return kiln_fail(KILN_ERR_RUNTIME, "cannot start an instance thread");
        }
        r->instances[i].started = true;
    }
    *out = r;
    return KILN_OK;
}

kiln_status_t kiln_runner_submit(kiln_runner_t *r, kiln_infer_request_t *req)
{
    req->next = NULL;
    req->status = KILN_OK;
    req->enqueue_ns = kiln_monotonic_ns();
    pthread_mutex_lock(&r->lock);
    if (r->stopping || r->queued >= r->max_queue) {
        bool stopping = r->stopping;
        pthread_mutex_unlock(&r->lock);
        req->http_status = 503;
        return kiln_fail(KILN_ERR_UNSUPPORTED, stopping ? "model '%s' is being unloaded"
                                                        : "model '%s' queue is full (%d requests waiting)",
                         r->config.name, r->max_queue);
    }
    if (r->tail)
        r->tail->next = req;
    else
        r->head = req;
    r->tail = req;
    r->queued++;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    return KILN_OK;
}

void kiln_runner_free(kiln_runner_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; r->instances && i < r->n_instances; i++)
        if (r->instances[i].started)
            pthread_join(r->instances[i].thread, NULL);
    for (int i = 0; r->instances && i < r->n_instances; i++)
        kiln_session_free(r->instances[i].session);
    free(r->instances);
    free(r->output_names);
    kiln_model_free(r->model);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->idle);
    free(r);
}

int kiln_runner_pending(kiln_runner_t *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->queued;
    pthread_mutex_unlock(&r->lock);
    return n;
}

const kiln_model_config_t *kiln_runner_config(const kiln_runner_t *r) { return &r->config; }
kiln_session_t *kiln_runner_session(kiln_runner_t *r) { return r->instances[0].session; }

void kiln_runner_stats(kiln_runner_t *r, kiln_runner_stats_t *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}

void kiln_runner_set_monitor_stats(kiln_runner_t *r, struct kiln_model_stats *stats) { r->monitor_stats = stats; }
