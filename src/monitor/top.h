/*
 * top.h - the data side of `kiln top`: parse a /metrics page (Prometheus
 * text format) and an /api/v1/alerts answer into one snapshot of what the
 * screen shows (GPUs, host, models, alerts), computing per-second rates from
 * two consecutive snapshots.
 *
 * Kept apart from the ncurses drawing (src/cli/cmd_top.c) so that it can be
 * unit tested with fixed text, and so that remote (--url) and local sampling
 * share one path: local sampling renders the monitor's own exporter text and
 * feeds it through the same parser.
 */
#ifndef KILN_MONITOR_TOP_H
#define KILN_MONITOR_TOP_H

#include <stddef.h>
#include <stdio.h>

/* ---- Prometheus text format ------------------------------------------------ */

typedef struct kiln_prom_sample {
    char *name;
    char **label_names;
    char **label_values;
    size_t nlabels;
    double value;
} kiln_prom_sample_t;

typedef struct kiln_prom_set {
    kiln_prom_sample_t *samples;
    size_t n, cap;
} kiln_prom_set_t;

/* Parses an exposition (version 0.0.4): comments and blank lines skipped,
 * each sample line "name{label="value",...} value [timestamp]".  Appends to
 * *out.  On a malformed line returns -1 with "line N: problem" in err (what
 * was parsed before stays in *out; free it either way). */
int kiln_prom_parse(const char *text, size_t len, kiln_prom_set_t *out, char *err, size_t errlen);
void kiln_prom_set_free(kiln_prom_set_t *set);
/* The value of a label of a sample, or NULL. */
const char *kiln_prom_label(const kiln_prom_sample_t *s, const char *name);

/* ---- Snapshot ------------------------------------------------------------------ */

#define KILN_TOP_MAX_GPUS 16
#define KILN_TOP_MAX_MODELS 32
#define KILN_TOP_MAX_ALERTS 32
#define KILN_TOP_TEXT 96

/* A value that may be absent (the GPU does not report power, ...). */
typedef struct kiln_top_value {
    double v;
    int ok;
} kiln_top_value_t;

typedef struct kiln_top_gpu {
    char uuid[KILN_TOP_TEXT];
    char name[KILN_TOP_TEXT];
    kiln_top_value_t util;      /* 0..1 */
    kiln_top_value_t mem_used;  /* bytes */
    kiln_top_value_t mem_total; /* bytes */
    kiln_top_value_t temp;      /* Celsius */
    kiln_top_value_t power;     /* watts */
    kiln_top_value_t power_limit;
} kiln_top_gpu_t;

typedef struct kiln_top_model {
    char model[KILN_TOP_TEXT];
    char version[32];
    double count, success, queue_us; /* counters, for rates */
    kiln_top_value_t rps;            /* inferences per second since the previous snapshot */
    kiln_top_value_t queue_ms;       /* queue time per request since the previous snapshot */
    kiln_top_value_t p50_ms, p99_ms;
    kiln_top_value_t pending;
} kiln_top_model_t;

typedef struct kiln_top_alert {
    char state[16];
    char name[KILN_TOP_TEXT];
    char labels[2 * KILN_TOP_TEXT]; /* "k=v k=v" without alertname */
    char summary[2 * KILN_TOP_TEXT];
} kiln_top_alert_t;

typedef struct kiln_top_snapshot {
    double time; /* seconds, when taken */
    kiln_top_gpu_t gpus[KILN_TOP_MAX_GPUS];
    size_t ngpus;
    size_t gpus_total; /* more than shown when > KILN_TOP_MAX_GPUS */
    kiln_top_value_t cpu_util;
    kiln_top_value_t mem_used, mem_total;
    kiln_top_model_t models[KILN_TOP_MAX_MODELS];
    size_t nmodels;
    kiln_top_alert_t alerts[KILN_TOP_MAX_ALERTS];
    size_t nalerts;
    int alerts_ok; /* the alerts were read (remote mode with the API up) */
} kiln_top_snapshot_t;

/* Builds a snapshot from a parsed /metrics page taken at `now`; `prev` (may
 * be NULL) is the previous snapshot, for per-second rates. */
void kiln_top_build(const kiln_prom_set_t *metrics, const kiln_top_snapshot_t *prev, double now,
                    kiln_top_snapshot_t *out);
/* Reads an /api/v1/alerts body into the snapshot's alerts.  0, or -1 with a
 * message when the body is not the expected JSON. */
int kiln_top_read_alerts(const char *json, size_t len, kiln_top_snapshot_t *snap, char *err, size_t errlen);

/* Writes the snapshot as plain text (kiln top --once). */
void kiln_top_print(const kiln_top_snapshot_t *snap, const char *source, FILE *out);

/* Formats bytes as "1.5 GiB" etc. */
void kiln_top_bytes(double bytes, char *buf, size_t len);

#endif
