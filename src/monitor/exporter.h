/*
 * exporter.h - the "metric family writer": how anything in kiln adds lines
 * to GET /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * The exporter holds a list of collectors.  On each scrape it creates a
 * writer and calls every collector in registration order; a collector opens
 * a family (name, type, help) and writes that family's samples right after,
 * so all lines of one family stay together as the format demands.  The
 * writer validates names, escapes help text and label values, and formats
 * values (NaN, +Inf, -Inf) so no collector has to.
 *
 * Who adds what:
 *   - the monitor's sampler: nv_gpu_*, nv_cpu_*, nv_energy_consumption and
 *     the kiln_* host/GPU families (src/monitor/monitor.c);
 *   - the alert engine: the ALERTS series (src/monitor/alerts.c);
 *   - kiln serve: its own nv_inference_* families, or it pushes into
 *     src/monitor/inference_stats.h and lets the monitor export them.
 *
 * Collectors run on the HTTP thread while a scrape is answered: they must
 * be quick and read only what they can read without waiting on slow work
 * (copy a snapshot under a short lock; never sample hardware here).
 */
#ifndef KILN_MONITOR_EXPORTER_H
#define KILN_MONITOR_EXPORTER_H

#include <stddef.h>

#include "kiln.h"
#include "monitor/labels.h"

typedef enum kiln_metric_type {
    KILN_METRIC_GAUGE,
    KILN_METRIC_COUNTER,
    KILN_METRIC_HISTOGRAM,
    KILN_METRIC_SUMMARY,
    KILN_METRIC_UNTYPED
} kiln_metric_type_t;

/* The text-format name of a type ("gauge", "counter", ...). */
const char *kiln_metric_type_name(kiln_metric_type_t type);

/* ---- Writer: builds one exposition text in memory ---------------------- */

typedef struct kiln_metrics_writer kiln_metrics_writer_t;

/* A new empty writer; NULL when out of memory.  Free with
 * kiln_metrics_writer_free(). */
kiln_metrics_writer_t *kiln_metrics_writer_new(void);
void kiln_metrics_writer_free(kiln_metrics_writer_t *w);

/* Starts a family: writes "# HELP name help" and "# TYPE name type".
 * Returns KILN_ERR_INVALID_ARGUMENT (and writes nothing) for an invalid
 * name or a family already written in this exposition. */
kiln_status_t kiln_metrics_family(kiln_metrics_writer_t *w, const char *name,
                                  kiln_metric_type_t type, const char *help);

/* Writes one sample line of the current family: "name[suffix]{labels} value".
 * suffix is NULL, or "_bucket", "_sum", "_count" (histograms, summaries),
 * "_total" is not added automatically.  Labels with a NULL value are left
 * out.  Returns KILN_ERR_INVALID_ARGUMENT when no family is open or a label
 * name is invalid (the line is not written). */
kiln_status_t kiln_metrics_sample(kiln_metrics_writer_t *w, const char *suffix,
                                  const kiln_label_t *labels, size_t n_labels, double value);

/* Appends already formatted exposition text (whole families, each line
 * ending in a newline), e.g. the alert engine's ALERTS family.  A missing
 * final newline is added. */
kiln_status_t kiln_metrics_raw(kiln_metrics_writer_t *w, const char *text, size_t len);

/* The text written so far (NUL-terminated) and its length; owned by the
 * writer, valid until the next write or free.  After an allocation failure
 * the writer is marked failed: kiln_metrics_writer_failed() is true. */
const char *kiln_metrics_writer_text(const kiln_metrics_writer_t *w, size_t *len);
int kiln_metrics_writer_failed(const kiln_metrics_writer_t *w);

/* Formats a sample value the way Prometheus reads it back: shortest text
 * that round-trips, "NaN", "+Inf", "-Inf".  buf needs 32 bytes. */
void kiln_metrics_format_value(double value, char *buf, size_t size);

/* ---- Exporter: the list of collectors behind GET /metrics -------------- */

typedef struct kiln_exporter kiln_exporter_t;

/* Writes zero or more families.  Errors from the writer may be ignored:
 * a bad line is dropped and the rest of the exposition stays valid. */
typedef void (*kiln_metrics_collector_fn)(kiln_metrics_writer_t *w, void *user);

/* A new exporter with no collectors; NULL when out of memory. */
kiln_exporter_t *kiln_exporter_new(void);
/* Frees the exporter (not the collectors' user data). */
void kiln_exporter_free(kiln_exporter_t *e);

/* Adds a collector (thread-safe; may be called while scrapes run).  The
 * same fn/user pair is not added twice.  user stays owned by the caller and
 * must outlive the registration. */
kiln_status_t kiln_exporter_add_collector(kiln_exporter_t *e, kiln_metrics_collector_fn fn,
                                          void *user);
/* Removes a collector; after it returns the collector is not running and
 * will not run again, so its user data may be freed. */
void kiln_exporter_remove_collector(kiln_exporter_t *e, kiln_metrics_collector_fn fn,
                                    void *user);

/* Runs every collector into a new writer.  Returns NULL when out of memory;
 * the caller frees the writer. */
kiln_metrics_writer_t *kiln_exporter_render(kiln_exporter_t *e);

#endif
