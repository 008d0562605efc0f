/*
 * monitor.c - the monitoring plane's sampler (see monitor.h).
 *
 * Each tick the sampler thread reads the GPUs (NVML), the host (/proc) and
 * the inference registry into a new snapshot: a flat list of samples, each
 * naming its family in the table below.  The snapshot is published with a
 * pointer swap under a mutex held for a few instructions and reference
 * counted, so a /metrics scrape renders the last complete snapshot while the
 * next one is being taken; then it is appended to the history in one
 * transaction.  Hardware is only ever touched by the sampler thread.
 */
#include "monitor/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "monitor/api.h"
#include "monitor/host.h"
#include "monitor/nvml.h"

#define DEFAULT_INTERVAL_MS 1000
#define MAINTAIN_EVERY_MS 60000
#define MAX_GPUS 64
#define MAX_LABELS 6
#define LABEL_VALUE_MAX 128

/* ---- The families kiln exports ------------------------------------------- */

enum family_id {
    F_GPU_UTIL,
    F_GPU_MEM_TOTAL,
    F_GPU_MEM_USED,
    F_GPU_POWER,
    F_GPU_POWER_LIMIT,
    F_GPU_ENERGY,
    F_CPU_UTIL,
    F_CPU_MEM_TOTAL,
    F_CPU_MEM_USED,
    F_INF_SUCCESS,
    F_INF_FAILURE,
    F_INF_COUNT,
    F_INF_EXEC,
    F_INF_REQUEST_US,
    F_INF_QUEUE_US,
    F_INF_COMPUTE_US,
    F_INF_PENDING,
    F_GPU_COUNT,
    F_GPU_UP,
    F_GPU_MEM_UTIL,
    F_GPU_MEM_FREE,
    F_GPU_TEMP,
    F_GPU_CLOCK_SM,
    F_GPU_CLOCK_MEM,
    F_GPU_FAN,
    F_GPU_ENERGY_DRIVER,
    F_GPU_PROC_MEM,
    F_PROCESS_GPU_MEM,
    F_MODEL_GPU_MEM,
    F_PROCESS_RSS,
    F_PROCESS_THREADS,
    F_PROCESS_CPU,
    F_INF_LATENCY,
    F_INF_BATCH_MEAN,
    F_INF_RPS,
    F_INF_THROUGHPUT,
    F_INF_BATCH,
    F_SAMPLE_SECONDS,
    F_SAMPLES_TOTAL,
    F_HISTORY_ERRORS,
    F_COUNT_
};

typedef struct family {
    const char *name;
    kiln_metric_type_t type;
    const char *help;
    int stored; /* 0: exported only (histogram buckets) */
} family_t;

static const family_t FAMILIES[F_COUNT_] = {
    [F_GPU_UTIL] = {"nv_gpu_utilization", KILN_METRIC_GAUGE, "GPU utilization rate [0.0 - 1.0)", 1},
    [F_GPU_MEM_TOTAL] = {"nv_gpu_memory_total_bytes", KILN_METRIC_GAUGE, "GPU total memory, in bytes", 1},
    [F_GPU_MEM_USED] = {"nv_gpu_memory_used_bytes", KILN_METRIC_GAUGE, "GPU used memory, in bytes", 1},
    [F_GPU_POWER] = {"nv_gpu_power_usage", KILN_METRIC_GAUGE, "GPU power usage in watts", 1},
    [F_GPU_POWER_LIMIT] = {"nv_gpu_power_limit", KILN_METRIC_GAUGE, "GPU power management limit in watts", 1},
    [F_GPU_ENERGY] = {"nv_energy_consumption", KILN_METRIC_COUNTER,
                      "GPU energy consumption in joules since kiln started", 1},
    [F_CPU_UTIL] = {"nv_cpu_utilization", KILN_METRIC_GAUGE, "CPU utilization rate [0.0 - 1.0]", 1},
    [F_CPU_MEM_TOTAL] = {"nv_cpu_memory_total_bytes", KILN_METRIC_GAUGE, "CPU total memory (RAM), in bytes", 1},
    [F_CPU_MEM_USED] = {"nv_cpu_memory_used_bytes", KILN_METRIC_GAUGE, "CPU used memory (RAM), in bytes", 1},
    [F_INF_SUCCESS] = {"nv_inference_request_success", KILN_METRIC_COUNTER,
                       "Number of successful inference requests, all batch sizes", 1},
    [F_INF_FAILURE] = {"nv_inference_request_failure", KILN_METRIC_COUNTER,
                       "Number of failed inference requests, all batch sizes", 1},
    [F_INF_COUNT] = {"nv_inference_count", KILN_METRIC_COUNTER,
                     "Number of inferences performed (does not include cached requests)", 1},
    [F_INF_EXEC] = {"nv_inference_exec_count", KILN_METRIC_COUNTER,
                    "Number of model executions performed (does not include cached requests)", 1},
    [F_INF_REQUEST_US] = {"nv_inference_request_duration_us", KILN_METRIC_COUNTER,
                          "Cumulative inference request duration in microseconds", 1},
    [F_INF_QUEUE_US] = {"nv_inference_queue_duration_us", KILN_METRIC_COUNTER,
                        "Cumulative inference queuing duration in microseconds", 1},
    [F_INF_COMPUTE_US] = {"nv_inference_compute_infer_duration_us", KILN_METRIC_COUNTER,
                          "Cumulative compute inference duration in microseconds", 1},
    [F_INF_PENDING] = {"nv_inference_pending_request_count", KILN_METRIC_GAUGE,
                       "Instantaneous number of pending requests awaiting execution per-model", 1},
    [F_GPU_COUNT] = {"kiln_gpu_devices", KILN_METRIC_GAUGE,
                     "Number of GPUs NVML reports (0 without a driver)", 1},
    [F_GPU_UP] = {"kiln_gpu_up", KILN_METRIC_GAUGE,
                  "1 while the GPU answers, 0 once it fell off the bus; labels name it", 1},
    [F_GPU_MEM_UTIL] = {"kiln_gpu_memory_utilization", KILN_METRIC_GAUGE,
                        "Share of time GPU memory was read or written [0.0 - 1.0]", 1},
    [F_GPU_MEM_FREE] = {"kiln_gpu_memory_free_bytes", KILN_METRIC_GAUGE, "GPU free memory, in bytes", 1},
    [F_GPU_TEMP] = {"kiln_gpu_temperature_celsius", KILN_METRIC_GAUGE, "GPU core temperature in degrees Celsius", 1},
    [F_GPU_CLOCK_SM] = {"kiln_gpu_sm_clock_hertz", KILN_METRIC_GAUGE, "GPU streaming multiprocessor clock in hertz", 1},
    [F_GPU_CLOCK_MEM] = {"kiln_gpu_memory_clock_hertz", KILN_METRIC_GAUGE, "GPU memory clock in hertz", 1},
    [F_GPU_FAN] = {"kiln_gpu_fan_speed_ratio", KILN_METRIC_GAUGE, "GPU fan speed as a share of its maximum [0.0 - 1.0]", 1},
    [F_GPU_ENERGY_DRIVER] = {"kiln_gpu_energy_joules_total", KILN_METRIC_COUNTER,
                             "GPU energy consumption in joules since the driver loaded", 1},
    [F_GPU_PROC_MEM] = {"kiln_gpu_process_memory_used_bytes", KILN_METRIC_GAUGE,
                        "GPU memory held by each compute process, in bytes", 1},
    [F_PROCESS_GPU_MEM] = {"kiln_process_gpu_memory_used_bytes", KILN_METRIC_GAUGE,
                           "GPU memory held by this kiln process, in bytes", 1},
    [F_MODEL_GPU_MEM] = {"kiln_model_gpu_memory_bytes", KILN_METRIC_GAUGE,
                         "GPU memory held by each loaded model version, in bytes", 1},
    [F_PROCESS_RSS] = {"kiln_process_resident_memory_bytes", KILN_METRIC_GAUGE,
                       "Resident memory of this kiln process, in bytes", 1},
    [F_PROCESS_THREADS] = {"kiln_process_threads", KILN_METRIC_GAUGE, "Threads of this kiln process", 1},
    [F_PROCESS_CPU] = {"kiln_process_cpu_seconds_total", KILN_METRIC_COUNTER,
                       "User and system CPU time of this kiln process, in seconds", 1},
    [F_INF_LATENCY] = {"kiln_inference_request_latency_us", KILN_METRIC_SUMMARY,
                       "End-to-end inference request latency in microseconds (estimated quantiles)", 1},
    [F_INF_BATCH_MEAN] = {"kiln_inference_batch_size_mean", KILN_METRIC_GAUGE,
                          "Mean batch size of model executions", 1},
    [F_INF_RPS] = {"kiln_inference_requests_per_second", KILN_METRIC_GAUGE,
                    "Requests finished per second over the last sampling interval", 1},
    [F_INF_THROUGHPUT] = {"kiln_inference_throughput_per_second", KILN_METRIC_GAUGE,
                          "Inferences per second over the last sampling interval", 1},
    [F_INF_BATCH] = {"kiln_inference_batch_size", KILN_METRIC_HISTOGRAM,
                     "Batch sizes of model executions", 0},
    [F_SAMPLE_SECONDS] = {"kiln_monitor_sample_duration_seconds", KILN_METRIC_GAUGE,
                          "Time the last monitoring sample took, in seconds", 1},
    [F_SAMPLES_TOTAL] = {"kiln_monitor_samples_total", KILN_METRIC_COUNTER,
                         "Monitoring samples taken since kiln started", 0},
    [F_HISTORY_ERRORS] = {"kiln_monitor_history_errors_total", KILN_METRIC_COUNTER,
                          "Samples that could not be written to the history", 0},
};

/* ---- Snapshots ------------------------------------------------------------ */

typedef struct entry {
    int family;
    const char *suffix; /* NULL, "_bucket", "_sum", "_count" */
    size_t n_labels;
    const char *names[MAX_LABELS];
    char values[MAX_LABELS][LABEL_VALUE_MAX];
    double value;
} entry_t;

/* A model's counters at the previous sample, for the per-second rates. */
typedef struct model_prev {
    char model[128], version[32];
    uint64_t requests, inferences;
    double t;     /* monotonic seconds */
    int seen;     /* present in the last sample */
} model_prev_t;

typedef struct snapshot {
    int refs;
    int64_t ts_ms;
    entry_t *entries;
    size_t n, cap;
} snapshot_t;

struct kiln_monitor {
    kiln_monitor_options_t opts;
    char *history_path;
    char *proc_root;
    kiln_store_t *store;
    kiln_exporter_t *exporter;
    kiln_metrics_server_t *srv;
    kiln_api_t *api;
    kiln_nvml_t *nvml;
    kiln_host_sampler_t host;
    kiln_gpu_sample_t *gpus; /* scratch, MAX_GPUS entries */
    uint64_t first_energy_mj[MAX_GPUS];
    int have_first_energy[MAX_GPUS];
    pthread_mutex_t snap_lock; /* guards current and the refcounts */
    snapshot_t *current;
    pthread_mutex_t run_lock;  /* guards stop and sampling itself */
    pthread_cond_t wake;
    int stop;
    int thread_started;
    pthread_t thread;
    int64_t last_maintain_ms;
    model_prev_t *prev;  /* per-model counters of the previous sample */
    size_t n_prev;
    uint64_t samples_taken, history_errors;
    double last_sample_seconds;
    pid_t self_pid;
};

static void logf_(const kiln_monitor_t *mon, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const kiln_monitor_t *mon, const char *fmt, ...)
{
    if (mon->opts.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln monitor: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void nvml_log(void *ctx, const char *line) { logf_(ctx, "%s", line); }

static void snapshot_unref(kiln_monitor_t *mon, snapshot_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&mon->snap_lock);
    int left = --s->refs;
    pthread_mutex_unlock(&mon->snap_lock);
    if (left == 0) {
        free(s->entries);
        free(s);
    }
}

/* Adds a sample; labels are name/value pairs ending at a NULL name.
 * Values are copied, cut to LABEL_VALUE_MAX-1 bytes and made printable
 * ASCII so that every consumer (JSON, SQLite, text format) accepts them. */
static void add(snapshot_t *s, int family, const char *suffix, double value, ...)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        entry_t *ne = realloc(s->entries, cap * sizeof *ne);
        if (!ne)
            return; /* the sample is dropped; the next tick tries again */
        s->entries = ne;
        s->cap = cap;
    }
    entry_t *e = &s->entries[s->n];
    e->family = family;
    e->suffix = suffix;
    e->value = value;
    e->n_labels = 0;
    va_list ap;
    va_start(ap, value);
    const char *name;
    while ((name = va_arg(ap, const char *)) && e->n_labels < MAX_LABELS) {
        const char *v = va_arg(ap, const char *);
        char *dst = e->values[e->n_labels];
        size_t k = 0;
        for (; v && v[k] && k + 1 < LABEL_VALUE_MAX; k++)
            dst[k] = (v[k] >= 0x20 && v[k] < 0x7f) ? v[k] : '?';
        dst[k] = '\0';
        e->names[e->n_labels++] = name;
    }
    va_end(ap);
    s->n++;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The process name of pid from /proc/<pid>/comm ("" when unknown). */
static void process_name(const kiln_monitor_t *mon, unsigned int pid, char *buf, size_t size)
{
    char path[320];
    snprintf(path, sizeof path, "%s/%u/comm", mon->proc_root, pid);
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
}

static void sample_gpus(kiln_monitor_t *mon, snapshot_t *s)
{
    size_t n = kiln_nvml_sample(mon->nvml, mon->gpus, MAX_GPUS);
    add(s, F_GPU_COUNT, NULL, (double)kiln_nvml_gpu_count(mon->nvml), NULL);
    for (size_t i = 0; i < n; i++) {
        const kiln_gpu_sample_t *g = &mon->gpus[i];
        char index[16];
        snprintf(index, sizeof index, "%u", g->index);
        const char *u = g->uuid;
        add(s, F_GPU_UP, NULL, g->lost ? 0.0 : 1.0, "gpu_uuid", u, "gpu_index", index, "name",
            g->name, NULL);
        if (g->has & KILN_GPU_HAS_UTIL) {
            add(s, F_GPU_UTIL, NULL, g->util_gpu, "gpu_uuid", u, NULL);
            add(s, F_GPU_MEM_UTIL, NULL, g->util_memory, "gpu_uuid", u, NULL);
        }
        if (g->has & KILN_GPU_HAS_MEMORY) {
            add(s, F_GPU_MEM_TOTAL, NULL, (double)g->memory_total, "gpu_uuid", u, NULL);
            add(s, F_GPU_MEM_USED, NULL, (double)g->memory_used, "gpu_uuid", u, NULL);
            add(s, F_GPU_MEM_FREE, NULL, (double)g->memory_free, "gpu_uuid", u, NULL);
        }
        if (g->has & KILN_GPU_HAS_POWER)
            add(s, F_GPU_POWER, NULL, g->power_w, "gpu_uuid", u, NULL);
        if (g->has & KILN_GPU_HAS_POWER_LIMIT)
            add(s, F_GPU_POWER_LIMIT, NULL, g->power_limit_w, "gpu_uuid", u, NULL);
        if ((g->has & KILN_GPU_HAS_ENERGY) && i < MAX_GPUS) {
            if (!mon->have_first_energy[i] || g->energy_mj < mon->first_energy_mj[i]) {
                mon->first_energy_mj[i] = g->energy_mj; /* first reading, or driver reloaded */
                mon->have_first_energy[i] = 1;
            }
            add(s, F_GPU_ENERGY, NULL, (double)(g->energy_mj - mon->first_energy_mj[i]) / 1000.0,
                "gpu_uuid", u, NULL);
            add(s, F_GPU_ENERGY_DRIVER, NULL, (double)g->energy_mj / 1000.0, "gpu_uuid", u, NULL);
        }
        if (g->has & KILN_GPU_HAS_TEMPERATURE)
            add(s, F_GPU_TEMP, NULL, g->temperature_c, "gpu_uuid", u, NULL);
        if (g->has & KILN_GPU_HAS_CLOCK_SM)
            add(s, F_GPU_CLOCK_SM, NULL, g->clock_sm_mhz * 1e6, "gpu_uuid", u, NULL);
        if (g->has & KILN_GPU_HAS_CLOCK_MEM)
            add(s, F_GPU_CLOCK_MEM, NULL, g->clock_mem_mhz * 1e6, "gpu_uuid", u, NULL);
        if (g->has & KILN_GPU_HAS_FAN)
            add(s, F_GPU_FAN, NULL, g->fan_percent / 100.0, "gpu_uuid", u, NULL);
        if (g->has & KILN_GPU_HAS_PROCESSES) {
            double mine = 0;
            for (size_t k = 0; k < g->n_processes; k++) {
                char pid[16], name[64];
                snprintf(pid, sizeof pid, "%u", g->processes[k].pid);
                process_name(mon, g->processes[k].pid, name, sizeof name);
                add(s, F_GPU_PROC_MEM, NULL, (double)g->processes[k].used_bytes, "gpu_uuid", u,
                    "pid", pid, "process", name, NULL);
                if (g->processes[k].pid == (unsigned int)mon->self_pid)
                    mine += (double)g->processes[k].used_bytes;
            }
            add(s, F_PROCESS_GPU_MEM, NULL, mine, "gpu_uuid", u, NULL);
        }
    }
}

static void sample_host(kiln_monitor_t *mon, snapshot_t *s)
{
    kiln_host_sample_t h;
    kiln_host_sample(&mon->host, &h);
    if (h.has_cpu)
        add(s, F_CPU_UTIL, NULL, h.cpu_utilization, NULL);
    if (h.has_memory) {
        add(s, F_CPU_MEM_TOTAL, NULL, (double)h.memory_total, NULL);
        add(s, F_CPU_MEM_USED, NULL, (double)h.memory_used, NULL);
    }
    if (h.has_self) {
        add(s, F_PROCESS_RSS, NULL, (double)h.resident_bytes, NULL);
        add(s, F_PROCESS_THREADS, NULL, (double)h.threads, NULL);
        add(s, F_PROCESS_CPU, NULL, h.cpu_seconds, NULL);
    }
}


/* Adds the per-second request and inference rates of m since the last
 * sample (nothing on a model's first sample or after a counter reset). */
static void add_rates(kiln_monitor_t *mon, snapshot_t *s, const kiln_model_snapshot_t *m, double now)
{
    uint64_t req = m->request_success + m->request_failure;
    model_prev_t *p = NULL;
    for (size_t i = 0; i < mon->n_prev; i++)
        if (!strcmp(mon->prev[i].model, m->model) && !strcmp(mon->prev[i].version, m->version))
            p = &mon->prev[i];
    if (!p) {
        model_prev_t *np = realloc(mon->prev, (mon->n_prev + 1) * sizeof *np);
        if (!np)
            return;
        mon->prev = np;
        p = &mon->prev[mon->n_prev++];
        memset(p, 0, sizeof *p);
        snprintf(p->model, sizeof p->model, "%s", m->model);
        snprintf(p->version, sizeof p->version, "%s", m->version);
    } else if (now > p->t && req >= p->requests && m->inference_count >= p->inferences) {
        double dt = now - p->t;
        add(s, F_INF_RPS, NULL, (double)(req - p->requests) / dt, "model", m->model, "version",
            m->version, NULL);
        add(s, F_INF_THROUGHPUT, NULL, (double)(m->inference_count - p->inferences) / dt, "model",
            m->model, "version", m->version, NULL);
    }
    p->requests = req;
    p->inferences = m->inference_count;
    p->t = now;
    p->seen = 1;
}

static void sample_inference(kiln_monitor_t *mon, snapshot_t *s)
{
    kiln_model_snapshot_t *models = NULL;
    size_t n = 0;
    if (!mon->opts.inference || kiln_inference_stats_snapshot(mon->opts.inference, &models, &n))
        return;
    double now = mono_seconds();
    for (size_t i = 0; i < mon->n_prev; i++)
        mon->prev[i].seen = 0;
    for (size_t i = 0; i < n; i++) {
        const kiln_model_snapshot_t *m = &models[i];
        add_rates(mon, s, m, now);
#define MV "model", m->model, "version", m->version
        add(s, F_INF_SUCCESS, NULL, (double)m->request_success, MV, NULL);
        for (int r = 0; r < KILN_FAILURE_REASONS; r++)
            add(s, F_INF_FAILURE, NULL, (double)m->failure_by_reason[r], MV, "reason",
                kiln_failure_reason_name((kiln_failure_reason_t)r), NULL);
        add(s, F_INF_COUNT, NULL, (double)m->inference_count, MV, NULL);
        add(s, F_INF_EXEC, NULL, (double)m->exec_count, MV, NULL);
        add(s, F_INF_REQUEST_US, NULL, (double)m->request_us, MV, NULL);
        add(s, F_INF_QUEUE_US, NULL, (double)m->queue_us, MV, NULL);
        add(s, F_INF_COMPUTE_US, NULL, (double)m->compute_us, MV, NULL);
        add(s, F_INF_PENDING, NULL, (double)m->pending, MV, NULL);
        add(s, F_INF_LATENCY, NULL, m->latency_p50_us, MV, "quantile", "0.5", NULL);
        add(s, F_INF_LATENCY, NULL, m->latency_p90_us, MV, "quantile", "0.9", NULL);
        add(s, F_INF_LATENCY, NULL, m->latency_p99_us, MV, "quantile", "0.99", NULL);
        add(s, F_INF_LATENCY, "_sum", (double)m->request_us, MV, NULL);
        add(s, F_INF_LATENCY, "_count", (double)(m->request_success + m->request_failure), MV, NULL);
        add(s, F_INF_BATCH_MEAN, NULL, m->batch_mean, MV, NULL);
        uint64_t cum = 0;
        for (size_t b = 0; b < KILN_BATCH_BUCKETS; b++) {
            cum += m->batch_buckets[b];
            char le[32];
            snprintf(le, sizeof le, "%llu", (unsigned long long)((2ULL << b) - 1));
            add(s, F_INF_BATCH, "_bucket", (double)cum, MV, "le", le, NULL);
        }
        add(s, F_INF_BATCH, "_bucket", (double)cum, MV, "le", "+Inf", NULL);
        add(s, F_INF_BATCH, "_sum", (double)m->inference_count, MV, NULL);
        add(s, F_INF_BATCH, "_count", (double)m->exec_count, MV, NULL);
        for (size_t g = 0; g < m->n_gpus; g++)
            add(s, F_MODEL_GPU_MEM, NULL, (double)m->gpu_memory_bytes[g], MV, "gpu_uuid",
                m->gpu_uuid[g], NULL);
#undef MV
    }
    /* Forget models that left (unloaded), so the table stays small. */
    size_t k = 0;
    for (size_t i = 0; i < mon->n_prev; i++)
        if (mon->prev[i].seen)
            mon->prev[k++] = mon->prev[i];
    mon->n_prev = k;
    free(models);
}

/* Appends the snapshot to the history (samples of stored families). */
static void store_snapshot(kiln_monitor_t *mon, const snapshot_t *s)
{
    kiln_sample_t *samples = calloc(s->n ? s->n : 1, sizeof *samples);
    kiln_label_t *labels = calloc(s->n ? s->n * MAX_LABELS : 1, sizeof *labels);
    char (*names)[96] = calloc(s->n ? s->n : 1, sizeof *names);
    if (!samples || !labels || !names) {
        mon->history_errors += s->n;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const entry_t *e = &s->entries[i];
        if (!FAMILIES[e->family].stored)
            continue;
        snprintf(names[k], sizeof names[k], "%s%s", FAMILIES[e->family].name,
                 e->suffix ? e->suffix : "");
        kiln_label_t *l = &labels[k * MAX_LABELS];
        for (size_t j = 0; j < e->n_labels; j++)
            l[j] = (kiln_label_t){e->names[j], e->values[j]};
        samples[k] = (kiln_sample_t){names[k], l, e->n_labels, e->value};
        k++;
    }
    if (kiln_store_append(mon->store, s->ts_ms, samples, k)) {
        if (mon->history_errors == 0 || mon->history_errors % 1000 < k)
            logf_(mon, "history append failed: %s", kiln_last_error());
        mon->history_errors += k;
    }
out:
    free(samples);
    free(labels);
    free(names);
}

kiln_status_t kiln_monitor_sample_now(kiln_monitor_t *mon)
{
    pthread_mutex_lock(&mon->run_lock);
    double t0 = mono_seconds();
    snapshot_t *s = calloc(1, sizeof *s);
    if (!s) {
        pthread_mutex_unlock(&mon->run_lock);
        return kiln_fail(KILN_ERR_NO_MEMORY, "monitor: out of memory");
    }
    s->refs = 1;
    s->ts_ms = now_ms();
    sample_gpus(mon, s);
    sample_host(mon, s);
    sample_inference(mon, s);
    mon->samples_taken++;
    add(s, F_SAMPLE_SECONDS, NULL, mon->last_sample_seconds, NULL);
    add(s, F_SAMPLES_TOTAL, NULL, (double)mon->samples_taken, NULL);
    add(s, F_HISTORY_ERRORS, NULL, (double)mon->history_errors, NULL);
    pthread_mutex_lock(&mon->snap_lock);
    snapshot_t *old = mon->current;
    mon->current = s;
    s->refs++; /* ours until stored */
    pthread_mutex_unlock(&mon->snap_lock);
    snapshot_unref(mon, old);
    if (mon->store) {
        store_snapshot(mon, s);
        if (s->ts_ms - mon->last_maintain_ms >= MAINTAIN_EVERY_MS) {
            if (kiln_store_maintain(mon->store, s->ts_ms))
                logf_(mon, "history maintenance failed: %s", kiln_last_error());
            mon->last_maintain_ms = s->ts_ms;
        }
    }
    snapshot_unref(mon, s);
    mon->last_sample_seconds = mono_seconds() - t0;
    pthread_mutex_unlock(&mon->run_lock);
    return KILN_OK;
}

/* /metrics collector: renders the latest snapshot, family by family. */
static void collect(kiln_metrics_writer_t *w, void *user)
{
    kiln_monitor_t *mon = user;
    pthread_mutex_lock(&mon->snap_lock);
    snapshot_t *s = mon->current;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&mon->snap_lock);
    if (!s)
        return;
    for (int f = 0; f < F_COUNT_; f++) {
        int opened = 0;
        for (size_t i = 0; i < s->n; i++) {
            const entry_t *e = &s->entries[i];
            if (e->family != f)
                continue;
            if (!opened) {
                if (kiln_metrics_family(w, FAMILIES[f].name, FAMILIES[f].type, FAMILIES[f].help))
                    break;
                opened = 1;
            }
            kiln_label_t l[MAX_LABELS];
            for (size_t j = 0; j < e->n_labels; j++)
                l[j] = (kiln_label_t){e->names[j], e->values[j]};
            kiln_metrics_sample(w, e->suffix, l, e->n_labels, e->value);
        }
    }
    snapshot_unref(mon, s);
}

static void metrics_handler(kiln_http_request_t *req, void *user)
{
    kiln_monitor_t *mon = user;
    kiln_metrics_writer_t *w = kiln_exporter_render(mon->exporter);
    if (!w) {
        kiln_http_respond_error(req, 500, "out of memory while rendering metrics");
        return;
    }
    size_t len;
    const char *text = kiln_metrics_writer_text(w, &len);
    kiln_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    kiln_metrics_writer_free(w);
}

static void *sampler_main(void *arg)
{
    kiln_monitor_t *mon = arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&mon->run_lock);
    while (!mon->stop) {
        long ns = next.tv_nsec + (long)(mon->opts.interval_ms % 1000) * 1000000L;
        next.tv_sec += mon->opts.interval_ms / 1000 + ns / 1000000000L;
        next.tv_nsec = ns % 1000000000L;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 5) /* fell far behind (suspend): restart the clock */
            next = now;
        while (!mon->stop && pthread_cond_timedwait(&mon->wake, &mon->run_lock, &next) != ETIMEDOUT) {
        }
        if (mon->stop)
            break;
        pthread_mutex_unlock(&mon->run_lock);
        kiln_monitor_sample_now(mon);
        pthread_mutex_lock(&mon->run_lock);
    }
    pthread_mutex_unlock(&mon->run_lock);
    return NULL;
}

kiln_store_t *kiln_monitor_store(kiln_monitor_t *mon) { return mon->store; }
kiln_exporter_t *kiln_monitor_exporter(kiln_monitor_t *mon) { return mon->exporter; }

void kiln_monitor_stop(kiln_monitor_t *mon)
{
    if (!mon)
        return;
    if (mon->thread_started) {
        pthread_mutex_lock(&mon->run_lock);
        mon->stop = 1;
        pthread_cond_signal(&mon->wake);
        pthread_mutex_unlock(&mon->run_lock);
        pthread_join(mon->thread, NULL);
    }
    if (mon->srv)
        kiln_metrics_server_unhandle(mon->srv, "/metrics");
    kiln_api_detach(mon->api);
    if (mon->exporter)
        kiln_exporter_remove_collector(mon->exporter, collect, mon);
    kiln_exporter_free(mon->exporter);
    kiln_store_close(mon->store);
    kiln_nvml_close(mon->nvml);
    snapshot_unref(mon, mon->current);
    pthread_mutex_destroy(&mon->snap_lock);
    pthread_mutex_destroy(&mon->run_lock);
    pthread_cond_destroy(&mon->wake);
    free(mon->gpus);
    free(mon->prev);
    free(mon->history_path);
    free(mon->proc_root);
    free(mon);
}

kiln_status_t kiln_monitor_start(const kiln_monitor_options_t *opts, kiln_metrics_server_t *srv,
                                 kiln_monitor_t **out)
{
    *out = NULL;
    kiln_monitor_options_t o = opts ? *opts : (kiln_monitor_options_t){0};
    if (o.interval_ms == 0)
        o.interval_ms = DEFAULT_INTERVAL_MS;
    if (o.interval_ms < 10 || o.interval_ms > 3600 * 1000)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                         "monitor: interval %d ms is outside 10 ms .. 1 h", o.interval_ms);
    kiln_monitor_t *mon = calloc(1, sizeof *mon);
    if (!mon)
        return kiln_fail(KILN_ERR_NO_MEMORY, "monitor: out of memory");
    pthread_mutex_init(&mon->snap_lock, NULL);
    pthread_mutex_init(&mon->run_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mon->wake, &ca);
    pthread_condattr_destroy(&ca);
    mon->self_pid = getpid();
    mon->history_path = strdup(o.history_path ? o.history_path : ":memory:");
    mon->proc_root = strdup(o.proc_root ? o.proc_root : "/proc");
    mon->gpus = calloc(MAX_GPUS, sizeof *mon->gpus);
    mon->exporter = kiln_exporter_new();
    if (!mon->history_path || !mon->proc_root || !mon->gpus || !mon->exporter) {
        kiln_monitor_stop(mon);
        return kiln_fail(KILN_ERR_NO_MEMORY, "monitor: out of memory");
    }
    o.history_path = mon->history_path;
    o.proc_root = mon->proc_root;
    mon->opts = o;
    kiln_status_t st = kiln_store_open(mon->history_path, &o.store, &mon->store);
    if (st) {
        kiln_monitor_stop(mon);
        return st;
    }
    if (kiln_nvml_open(NULL, nvml_log, mon, &mon->nvml) == KILN_OK)
        logf_(mon, "NVML: %zu GPU(s), driver %s", kiln_nvml_gpu_count(mon->nvml),
              kiln_nvml_driver_version(mon->nvml)[0] ? kiln_nvml_driver_version(mon->nvml) : "unknown");
    else
        logf_(mon, "%s; GPU metrics are off", kiln_last_error());
    kiln_host_init(&mon->host, mon->proc_root);
    if ((st = kiln_exporter_add_collector(mon->exporter, collect, mon))) {
        kiln_monitor_stop(mon);
        return st;
    }
    mon->last_maintain_ms = now_ms();
    kiln_store_maintain(mon->store, mon->last_maintain_ms); /* prune what expired while stopped */
    kiln_monitor_sample_now(mon);
    if (srv) {
        mon->srv = srv;
        if ((st = kiln_metrics_server_handle(srv, "/metrics", metrics_handler, mon)) ||
            (st = kiln_api_attach(srv, mon->store, &mon->api))) {
            kiln_monitor_stop(mon);
            return st;
        }
    }
    if (pthread_create(&mon->thread, NULL, sampler_main, mon)) {
        kiln_monitor_stop(mon);
        return kiln_fail(KILN_ERR_RUNTIME, "monitor: cannot start the sampler thread");
    }
    mon->thread_started = 1;
    *out = mon;
    return KILN_OK;
}
