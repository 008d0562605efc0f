/*
 * test_monitor_inference_stats.c - the per-model registry a server pushes
 * into: counters, the histogram quantile estimate, batch buckets, GPU
 * memory attribution, hide/revive, and lock-free recording from several
 * threads at once (totals must come out exact).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "monitor/inference_stats.h"

#define THREADS 4
#define PER_THREAD 50000

static kiln_model_stats_t *shared;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        kiln_model_stats_request(shared, i % 10 != 0, 5, 10, 100 + (uint64_t)(i % 100));
        kiln_model_stats_execution(shared, 4);
    }
    return NULL;
}

static const kiln_model_snapshot_t *find(const kiln_model_snapshot_t *s, size_t n, const char *m,
                                         const char *v)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s[i].model, m) && !strcmp(s[i].version, v))
            return &s[i];
    return NULL;
}

static void test_counters(void)
{
    kiln_inference_stats_t *reg = kiln_inference_stats_new();
    kiln_model_stats_t *a = kiln_inference_stats_model(reg, "resnet", "1");
    CHECK(a != NULL);
    CHECK(kiln_inference_stats_model(reg, "resnet", "1") == a);
    CHECK(kiln_inference_stats_model(reg, "resnet", "2") != a);
    CHECK(kiln_inference_stats_model(reg, "", "1") == NULL);
    CHECK(kiln_inference_stats_model(reg, NULL, "1") == NULL);
    for (int i = 1; i <= 100; i++)
        kiln_model_stats_request(a, i <= 98, 10, 20, (uint64_t)i * 1000);
    kiln_model_stats_execution(a, 1);
    kiln_model_stats_execution(a, 8);
    kiln_model_stats_execution(a, 9);
    kiln_model_stats_execution(a, 0); /* ignored */
    kiln_model_stats_set_pending(a, 3);
    kiln_model_stats_set_gpu_memory(a, "GPU-x", 1000);
    kiln_model_stats_set_gpu_memory(a, "GPU-y", 2000);
    kiln_model_stats_set_gpu_memory(a, "GPU-x", 1500);
    kiln_model_stats_set_gpu_memory(a, "GPU-y", 0);
    kiln_model_snapshot_t *s = NULL;
    size_t n = 0;
    CHECK(kiln_inference_stats_snapshot(reg, &s, &n) == KILN_OK);
    CHECK(n == 2);
    const kiln_model_snapshot_t *m = find(s, n, "resnet", "1");
    CHECK(m != NULL);
    if (m) {
        CHECK(m->request_success == 98 && m->request_failure == 2);
        CHECK(m->queue_us == 1000 && m->compute_us == 2000);
        CHECK(m->request_us == 5050000);
        CHECK(m->exec_count == 3 && m->inference_count == 18);
        CHECK_NEAR(m->batch_mean, 6.0, 1e-12);
        CHECK(m->batch_buckets[0] == 1 && m->batch_buckets[3] == 2);
        CHECK(m->pending == 3);
        /* Quantiles within one bucket (2^(1/4) = 19 %). */
        CHECK_NEAR(m->latency_p50_us, 50000, 50000 * 0.19);
        CHECK_NEAR(m->latency_p90_us, 90000, 90000 * 0.19);
        CHECK_NEAR(m->latency_p99_us, 99000, 99000 * 0.19);
        CHECK(m->n_gpus == 1 && !strcmp(m->gpu_uuid[0], "GPU-x") && m->gpu_memory_bytes[0] == 1500);
    }
    free(s);
    kiln_inference_stats_remove(reg, "resnet", "2");
    CHECK(kiln_inference_stats_snapshot(reg, &s, &n) == KILN_OK && n == 1);
    free(s);
    CHECK(kiln_inference_stats_model(reg, "resnet", "2") != NULL); /* revived */
    CHECK(kiln_inference_stats_snapshot(reg, &s, &n) == KILN_OK && n == 2);
    free(s);
    kiln_model_stats_request(NULL, 1, 0, 0, 0); /* NULL handle is ignored */
    kiln_inference_stats_free(reg);
}

static void test_quantile(void)
{
    uint64_t b[KILN_LATENCY_BUCKETS] = {0};
    CHECK(kiln_latency_quantile(b, 0.5) == 0.0);
    b[0] = 10;
    CHECK(kiln_latency_quantile(b, 0.5) < 1.0);
    b[0] = 0;
    b[KILN_LATENCY_BUCKETS - 1] = 1;
    CHECK(kiln_latency_quantile(b, 0.99) > 1e8);
    CHECK(kiln_latency_quantile(b, 2.0) > 1e8);
}

static void test_threads(void)
{
    kiln_inference_stats_t *reg = kiln_inference_stats_new();
    shared = kiln_inference_stats_model(reg, "m", "");
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    /* Snapshots while writers run must not block or crash. */
    for (int k = 0; k < 50; k++) {
        kiln_model_snapshot_t *s = NULL;
        size_t n = 0;
        CHECK(kiln_inference_stats_snapshot(reg, &s, &n) == KILN_OK && n == 1);
        free(s);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    kiln_model_snapshot_t *s = NULL;
    size_t n = 0;
    CHECK(kiln_inference_stats_snapshot(reg, &s, &n) == KILN_OK && n == 1);
    if (n == 1) {
        CHECK(s[0].request_success + s[0].request_failure == (uint64_t)THREADS * PER_THREAD);
        CHECK(s[0].request_failure == (uint64_t)THREADS * PER_THREAD / 10);
        CHECK(s[0].inference_count == (uint64_t)THREADS * PER_THREAD * 4);
        CHECK(s[0].queue_us == (uint64_t)THREADS * PER_THREAD * 5);
    }
    free(s);
    kiln_inference_stats_free(reg);
}

int main(void)
{
    test_counters();
    test_quantile();
    test_threads();
    return check_finish();
}
