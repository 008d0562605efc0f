/*
 * monitor_store_bench.c - measures the monitoring history at the sizes
 * that matter: one GPU's series for a whole day at 1 s, written the way
 * the sampler writes them (one transaction per second), then the size of
 * the file per GPU-day and the time to answer a 24 h, 1 s-step query of
 * one series (store query plus the Prometheus JSON the API sends).
 *
 *   monitor_store_bench FILE.db [GPUS]
 *
 * The day ends now, so `kiln monitor --history FILE.db` keeps every
 * sample and can be timed over HTTP afterwards (bench/monitor_bench.sh).
 * Prints "key value" lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "monitor/api.h"
#include "monitor/store.h"

#define DAY_S 86400
#define RUNS 5

/* The per-GPU series kiln monitor stores (see monitor.c's family table). */
static const char *const GPU_METRICS[] = {
    "nv_gpu_utilization", "kiln_gpu_memory_utilization", "nv_gpu_memory_total_bytes",
    "nv_gpu_memory_used_bytes", "kiln_gpu_memory_free_bytes", "nv_gpu_power_usage",
    "nv_gpu_power_limit", "nv_energy_consumption", "kiln_gpu_energy_joules_total",
    "kiln_gpu_temperature_celsius", "kiln_gpu_sm_clock_hertz", "kiln_gpu_memory_clock_hertz",
    "kiln_gpu_fan_speed_ratio", "kiln_gpu_up", "kiln_process_gpu_memory_used_bytes",
    "kiln_gpu_process_memory_used_bytes"};
#define N_METRICS (sizeof GPU_METRICS / sizeof GPU_METRICS[0])

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A plausible value for metric m of a GPU at second t (varying, like real data). */
static double value_of(size_t m, long t, unsigned *seed)
{
    double noise = (double)(rand_r(seed) % 1000) / 1000.0;
    switch (m) {
    case 0: return (double)(rand_r(seed) % 101) / 100.0;
    case 1: return (double)(rand_r(seed) % 101) / 100.0;
    case 2: return 85899345920.0;
    case 3: return 40e9 + (double)(rand_r(seed) % 1000000) * 4096.0;
    case 4: return 45e9 - (double)(rand_r(seed) % 1000000) * 4096.0;
    case 5: return 150.0 + 200.0 * noise;
    case 6: return 700.0;
    case 7: return (double)t * 300.0 + noise;
    case 8: return 1e7 + (double)t * 300.0 + noise;
    case 9: return (double)(55 + rand_r(seed) % 20);
    case 10: return (double)(1410 + rand_r(seed) % 400) * 1e6;
    case 11: return 2619e6;
    case 12: return (double)(rand_r(seed) % 101) / 100.0;
    case 13: return 1.0;
    default: return 30e9 + (double)(rand_r(seed) % 1000) * 1048576.0;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: monitor_store_bench FILE.db [GPUS]\n");
        return 2;
    }
    const char *path = argv[1];
    int gpus = argc > 2 ? atoi(argv[2]) : 1;
    if (gpus < 1 || gpus > 64) {
        fprintf(stderr, "monitor_store_bench: GPUS must be 1..64\n");
        return 2;
    }
    remove(path);
    char side[600];
    snprintf(side, sizeof side, "%s-wal", path);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", path);
    remove(side);
    kiln_store_t *st = NULL;
    if (kiln_store_open(path, NULL, &st)) {
        fprintf(stderr, "monitor_store_bench: %s\n", kiln_last_error());
        return 1;
    }
    size_t n = N_METRICS * (size_t)gpus;
    kiln_sample_t *samples = calloc(n, sizeof *samples);
    kiln_label_t (*labels)[2] = calloc(n, sizeof *labels);
    char (*uuids)[48] = calloc((size_t)gpus, sizeof *uuids);
    for (int g = 0; g < gpus; g++)
        snprintf(uuids[g], sizeof uuids[g], "GPU-bench-%04d-0000-0000-000000000000", g);
    int64_t end_ms = (int64_t)time(NULL) * 1000;
    int64_t start_ms = end_ms - (int64_t)(DAY_S - 1) * 1000;
    unsigned seed = 42;
    double t0 = now_s();
    for (long t = 0; t < DAY_S; t++) {
        size_t k = 0;
        for (int g = 0; g < gpus; g++)
            for (size_t m = 0; m < N_METRICS; m++, k++) {
                labels[k][0] = (kiln_label_t){"gpu_uuid", uuids[g]};
                labels[k][1] = (kiln_label_t){"pid", "4242"};
                samples[k] = (kiln_sample_t){GPU_METRICS[m], labels[k], m + 1 == N_METRICS ? 2 : 1,
                                             value_of(m, t, &seed)};
            }
        if (kiln_store_append(st, start_ms + t * 1000, samples, n)) {
            fprintf(stderr, "monitor_store_bench: %s\n", kiln_last_error());
            return 1;
        }
    }
    double write_s = now_s() - t0;
    t0 = now_s();
    kiln_store_maintain(st, end_ms + 1000); /* the day's roll-ups, nothing pruned */
    double maintain_s = now_s() - t0;
    kiln_store_close(st);
    /* Reopening checkpoints nothing by itself: fold the WAL in with sqlite3 closed. */
    struct stat sb, sw;
    snprintf(side, sizeof side, "%s-wal", path);
    long long bytes = (stat(path, &sb) == 0 ? (long long)sb.st_size : 0) +
                      (stat(side, &sw) == 0 ? (long long)sw.st_size : 0);

    if (kiln_store_open(path, NULL, &st)) {
        fprintf(stderr, "monitor_store_bench: %s\n", kiln_last_error());
        return 1;
    }
    kiln_selector_t *sel = NULL;
    char q[200];
    snprintf(q, sizeof q, "kiln_gpu_temperature_celsius{gpu_uuid=\"%s\"}", uuids[0]);
    kiln_selector_parse(q, strlen(q), &sel);
    double runs[RUNS];
    size_t points = 0, json_bytes = 0;
    for (int r = 0; r < RUNS; r++) {
        t0 = now_s();
        kiln_store_result_t res;
        if (kiln_store_query_range(st, sel, start_ms, end_ms, 1000, &res)) {
            fprintf(stderr, "monitor_store_bench: %s\n", kiln_last_error());
            return 1;
        }
        size_t len = 0;
        char *json = kiln_api_result_json(&res, 0, &len);
        runs[r] = now_s() - t0;
        points = res.count ? res.series[0].n_points : 0;
        json_bytes = len;
        free(json);
        kiln_store_result_free(&res);
    }
    qsort(runs, RUNS, sizeof runs[0], cmp_double);
    kiln_selector_free(sel);
    kiln_store_close(st);
    printf("gpus %d\n", gpus);
    printf("series_per_gpu %zu\n", N_METRICS);
    printf("write_seconds_per_day %.2f\n", write_s);
    printf("maintain_seconds %.3f\n", maintain_s);
    printf("file_bytes %lld\n", bytes);
    printf("bytes_per_gpu_day %lld\n", bytes / gpus);
    printf("query_points %zu\n", points);
    printf("query_json_bytes %zu\n", json_bytes);
    printf("query_ms_median %.1f\n", runs[RUNS / 2] * 1000);
    printf("query_ms_min %.1f\n", runs[0] * 1000);
    printf("query_ms_max %.1f\n", runs[RUNS - 1] * 1000);
    free(samples);
    free(labels);
    free(uuids);
    return 0;
}
