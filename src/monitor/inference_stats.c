/*
 * inference_stats.c - the per-model request registry (inference_stats.h).
 *
 * Models live in a linked list that only grows (a removed model is hidden,
 * not freed), so a handle given to a request thread never dangles and the
 * recording functions need no lock: each counter is a C11 atomic updated
 * with relaxed order.  A snapshot may therefore see a request's success
 * count before its latency; the sampler reads every second, so the skew of
 * one request is harmless and buys a hot path with no lock at all.
 */
#include "monitor/inference_stats.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct kiln_model_stats {
    struct kiln_model_stats *next;
    char model[128];
    char version[32];
    atomic_int hidden;
    atomic_uint_fast64_t success, failure, inferences, executions;
    atomic_uint_fast64_t failure_by_reason[KILN_FAILURE_REASONS]; /* subset of failure with a known reason */
    atomic_uint_fast64_t queue_us, compute_us, request_us;
    atomic_int_fast64_t pending;
    atomic_uint_fast64_t latency[KILN_LATENCY_BUCKETS];
    atomic_uint_fast64_t batch[KILN_BATCH_BUCKETS];
    pthread_mutex_t gpu_lock; /* the GPU table changes rarely (load, unload) */
    size_t n_gpus;
    char gpu_uuid[KILN_MODEL_GPUS][96];
    uint64_t gpu_bytes[KILN_MODEL_GPUS];
};

struct kiln_inference_stats {
    pthread_mutex_t lock; /* guards the list's shape, not the counters */
    kiln_model_stats_t *head;
};

kiln_inference_stats_t *kiln_inference_stats_new(void)
{
    kiln_inference_stats_t *reg = calloc(1, sizeof *reg);
    if (reg)
        pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void kiln_inference_stats_free(kiln_inference_stats_t *reg)
{
    if (!reg)
        return;
    kiln_model_stats_t *m = reg->head;
    while (m) {
        kiln_model_stats_t *n = m->next;
        pthread_mutex_destroy(&m->gpu_lock);
        free(m);
        m = n;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

kiln_model_stats_t *kiln_inference_stats_model(kiln_inference_stats_t *reg, const char *model,
                                               const char *version)
{
    if (!model || !model[0]) {
        kiln_fail(KILN_ERR_INVALID_ARGUMENT, "inference stats: model name is empty");
        return NULL;
    }
    if (!version)
        version = "";
    pthread_mutex_lock(&reg->lock);
    kiln_model_stats_t *m;
    for (m = reg->head; m; m = m->next)
        if (!strncmp(m->model, model, sizeof m->model - 1) &&
            !strncmp(m->version, version, sizeof m->version - 1))
            break;
    if (!m) {
        m = calloc(1, sizeof *m);
        if (m) {
            snprintf(m->model, sizeof m->model, "%s", model);
            snprintf(m->version, sizeof m->version, "%s", version);
            pthread_mutex_init(&m->gpu_lock, NULL);
            m->next = reg->head;
            reg->head = m;
        } else {
            kiln_fail(KILN_ERR_NO_MEMORY, "inference stats: out of memory");
        }
    }
    if (m)
        atomic_store(&m->hidden, 0);
    pthread_mutex_unlock(&reg->lock);
    return m;
}

void kiln_inference_stats_remove(kiln_inference_stats_t *reg, const char *model,
                                 const char *version)
{
    pthread_mutex_lock(&reg->lock);
    for (kiln_model_stats_t *m = reg->head; m; m = m->next)
        if (!strcmp(m->model, model) && !strcmp(m->version, version ? version : ""))
            atomic_store(&m->hidden, 1);
    pthread_mutex_unlock(&reg->lock);
}

static size_t latency_bucket(uint64_t us)
{
    if (us < 1)
        return 0;
    size_t b = (size_t)floor(4.0 * log2((double)us)) + 1;
    return b < KILN_LATENCY_BUCKETS ? b : KILN_LATENCY_BUCKETS - 1;
}

void kiln_model_stats_request(kiln_model_stats_t *m, int success, uint64_t queue_us,
                              uint64_t compute_us, uint64_t total_us)
{
    if (!m)
        return;
    atomic_fetch_add_explicit(success ? &m->success : &m->failure, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->queue_us, queue_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->compute_us, compute_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->request_us, total_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency[latency_bucket(total_us)], 1, memory_order_relaxed);
}

void kiln_model_stats_failure_reason(kiln_model_stats_t *m, kiln_failure_reason_t reason)
{
    if (!m || (unsigned)reason >= KILN_FAILURE_REASONS)
        return;
    atomic_fetch_add_explicit(&m->failure_by_reason[reason], 1, memory_order_relaxed);
}

const char *kiln_failure_reason_name(kiln_failure_reason_t reason)
{
    static const char *const names[KILN_FAILURE_REASONS] = {"REJECTED", "CANCELED", "BACKEND", "OTHER"};
    return (unsigned)reason < KILN_FAILURE_REASONS ? names[reason] : "OTHER";
}

void kiln_model_stats_execution(kiln_model_stats_t *m, uint64_t batch_size)
{
    if (!m || batch_size == 0)
        return;
    atomic_fetch_add_explicit(&m->executions, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->inferences, batch_size, memory_order_relaxed);
    size_t b = 0;
    while (b + 1 < KILN_BATCH_BUCKETS && (batch_size >> (b + 1)))
        b++;
    atomic_fetch_add_explicit(&m->batch[b], 1, memory_order_relaxed);
}

void kiln_model_stats_set_pending(kiln_model_stats_t *m, int64_t pending)
{
    if (m)
        atomic_store_explicit(&m->pending, pending, memory_order_relaxed);
}

void kiln_model_stats_set_gpu_memory(kiln_model_stats_t *m, const char *gpu_uuid, uint64_t bytes)
{
    if (!m || !gpu_uuid || !gpu_uuid[0])
        return;
    pthread_mutex_lock(&m->gpu_lock);
    size_t i;
    for (i = 0; i < m->n_gpus; i++)
        if (!strcmp(m->gpu_uuid[i], gpu_uuid))
            break;
    if (i == m->n_gpus && bytes && m->n_gpus < KILN_MODEL_GPUS) {
        snprintf(m->gpu_uuid[i], sizeof m->gpu_uuid[i], "%s", gpu_uuid);
        m->n_gpus++;
    }
    if (i < m->n_gpus) {
        if (bytes) {
            m->gpu_bytes[i] = bytes;
        } else { /* cleared: drop the entry */
            m->n_gpus--;
            memmove(m->gpu_uuid[i], m->gpu_uuid[i + 1], (m->n_gpus - i) * sizeof m->gpu_uuid[0]);
            memmove(&m->gpu_bytes[i], &m->gpu_bytes[i + 1], (m->n_gpus - i) * sizeof m->gpu_bytes[0]);
        }
    }
    pthread_mutex_unlock(&m->gpu_lock);
}

double kiln_latency_quantile(const uint64_t *buckets, double q)
{
    uint64_t total = 0;
    for (size_t i = 0; i < KILN_LATENCY_BUCKETS; i++)
        total += buckets[i];
    if (!total)
        return 0.0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)total;
    uint64_t seen = 0;
    for (size_t i = 0; i < KILN_LATENCY_BUCKETS; i++) {
        if (!buckets[i])
            continue;
        if ((double)(seen + buckets[i]) >= rank) {
            if (i == 0)
                return 0.5;
            /* Geometric interpolation inside [2^((i-1)/4), 2^(i/4)). */
            double lo = pow(2.0, (double)(i - 1) / 4.0), hi = pow(2.0, (double)i / 4.0);
            double frac = (rank - (double)seen) / (double)buckets[i];
            return lo * pow(hi / lo, frac);
        }
        seen += buckets[i];
    }
    return pow(2.0, (double)(KILN_LATENCY_BUCKETS - 1) / 4.0);
}

kiln_status_t kiln_inference_stats_snapshot(kiln_inference_stats_t *reg,
                                            kiln_model_snapshot_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&reg->lock);
    size_t n = 0;
    for (kiln_model_stats_t *m = reg->head; m; m = m->next)
        n += !atomic_load(&m->hidden);
    kiln_model_snapshot_t *snap = calloc(n ? n : 1, sizeof *snap);
    if (!snap) {
        pthread_mutex_unlock(&reg->lock);
        return kiln_fail(KILN_ERR_NO_MEMORY, "inference stats: out of memory");
    }
    size_t k = 0;
    for (kiln_model_stats_t *m = reg->head; m && k < n; m = m->next) {
        if (atomic_load(&m->hidden))
            continue;
        kiln_model_snapshot_t *s = &snap[k++];
        memcpy(s->model, m->model, sizeof s->model);
        memcpy(s->version, m->version, sizeof s->version);
        s->request_success = atomic_load_explicit(&m->success, memory_order_relaxed);
        s->request_failure = atomic_load_explicit(&m->failure, memory_order_relaxed);
        uint64_t attributed = 0;
        for (int r = 0; r < KILN_FAILURE_REASONS; r++) {
            s->failure_by_reason[r] = atomic_load_explicit(&m->failure_by_reason[r], memory_order_relaxed);
            attributed += s->failure_by_reason[r];
        }
        /* failures recorded without a reason count as OTHER */
        if (s->request_failure > attributed)
            s->failure_by_reason[KILN_FAILURE_OTHER] += s->request_failure - attributed;
        s->inference_count = atomic_load_explicit(&m->inferences, memory_order_relaxed);
        s->exec_count = atomic_load_explicit(&m->executions, memory_order_relaxed);
        s->queue_us = atomic_load_explicit(&m->queue_us, memory_order_relaxed);
        s->compute_us = atomic_load_explicit(&m->compute_us, memory_order_relaxed);
        s->request_us = atomic_load_explicit(&m->request_us, memory_order_relaxed);
        s->pending = atomic_load_explicit(&m->pending, memory_order_relaxed);
        uint64_t lat[KILN_LATENCY_BUCKETS];
        for (size_t i = 0; i < KILN_LATENCY_BUCKETS; i++)
            lat[i] = atomic_load_explicit(&m->latency[i], memory_order_relaxed);
        s->latency_p50_us = kiln_latency_quantile(lat, 0.50);
        s->latency_p90_us = kiln_latency_quantile(lat, 0.90);
        s->latency_p99_us = kiln_latency_quantile(lat, 0.99);
        for (size_t i = 0; i < KILN_BATCH_BUCKETS; i++)
            s->batch_buckets[i] = atomic_load_explicit(&m->batch[i], memory_order_relaxed);
        s->batch_mean = s->exec_count ? (double)s->inference_count / (double)s->exec_count : 0.0;
        pthread_mutex_lock(&m->gpu_lock);
        s->n_gpus = m->n_gpus;
        memcpy(s->gpu_uuid, m->gpu_uuid, sizeof s->gpu_uuid);
        memcpy(s->gpu_memory_bytes, m->gpu_bytes, sizeof s->gpu_memory_bytes);
        pthread_mutex_unlock(&m->gpu_lock);
    }
    pthread_mutex_unlock(&reg->lock);
    *out = snap;
    *count = k;
    return KILN_OK;
}
