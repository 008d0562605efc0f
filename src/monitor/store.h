/*
 * store.h - the monitoring history: samples of time series in SQLite.
 *
 * Layout (one file, WAL journal): a table of series (metric name + labels
 * as canonical JSON), raw samples packed per series and minute into BLOB
 * "chunks" (a few bytes a point) kept for the raw window (default 24 h),
 * and per-minute roll-ups (min, avg, max, count) kept for the roll-up
 * window (default 30 days).  Each append is one transaction, so a kill -9
 * loses at most the append in flight and the file reopens clean.
 * kiln_store_maintain() rolls finished minutes up and prunes both tables
 * (raw data by whole minutes); the sampler calls it once a minute.
 *
 * Threads: the store has a writer connection and a reader connection, each
 * behind its own mutex, so queries from the HTTP thread do not wait for the
 * sampler's appends (WAL lets one writer and readers run together).  All
 * functions are safe to call from any thread.
 *
 * Queries read raw samples where the raw window still has them and, for
 * older times, the roll-ups' averages stamped at the start of their minute.
 * NaN samples are not stored (SQLite cannot keep NaN); +Inf and -Inf are.
 */
#ifndef KILN_MONITOR_STORE_H
#define KILN_MONITOR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"
#include "monitor/labels.h"
#include "monitor/selector.h"

typedef struct kiln_store kiln_store_t;

typedef struct kiln_store_options {
    int64_t raw_retention_ms;    /* raw samples older than this are pruned; 0 = 24 h */
    int64_t rollup_retention_ms; /* minute roll-ups older than this are pruned; 0 = 30 days */
} kiln_store_options_t;

/* Opens or creates the history at path (":memory:" for a private in-memory
 * store, used by tests).  opts may be NULL for the defaults.  On success
 * *out is a store the caller closes with kiln_store_close().  Errors:
 * KILN_ERR_IO when the file cannot be opened or is not a kiln history. */
kiln_status_t kiln_store_open(const char *path, const kiln_store_options_t *opts,
                              kiln_store_t **out);
void kiln_store_close(kiln_store_t *store);

/* One sample of one series, as handed to kiln_store_append(). */
typedef struct kiln_sample {
    const char *metric;
    const kiln_label_t *labels;
    size_t n_labels;
    double value;
} kiln_sample_t;

/* Appends n samples, all stamped ts_ms (Unix milliseconds), in one
 * transaction.  A sample with an invalid metric or label name fails the
 * whole call with KILN_ERR_INVALID_ARGUMENT and nothing is written. */
kiln_status_t kiln_store_append(kiln_store_t *store, int64_t ts_ms, const kiln_sample_t *samples,
                                size_t n);

/* Rolls up every whole minute before now_ms not yet rolled up, then
 * deletes raw samples older than now_ms - raw_retention_ms and roll-ups
 * older than now_ms - rollup_retention_ms. */
kiln_status_t kiln_store_maintain(kiln_store_t *store, int64_t now_ms);

/* ---- Query results ----------------------------------------------------- */

/* One series and its points.  Every string and array is owned by the
 * enclosing kiln_store_result_t. */
typedef struct kiln_store_series {
    char *metric;
    kiln_label_t *labels; /* sorted by name */
    size_t n_labels;
    int64_t *ts_ms;       /* n_points timestamps, ascending */
    double *values;
    size_t n_points;
} kiln_store_series_t;

typedef struct kiln_store_result {
    kiln_store_series_t *series;
    size_t count;
} kiln_store_result_t;

void kiln_store_result_free(kiln_store_result_t *set);

/* The largest number of points one query may return per series. */
#define KILN_STORE_MAX_POINTS 1000000

/* Prometheus's lookback: a step takes the latest sample at most this old. */
#define KILN_STORE_LOOKBACK_MS (5 * 60 * 1000)

/* Range query with Prometheus semantics: for each t = start, start+step,
 * ... <= end, each matching series gets the value of its latest sample in
 * (t - KILN_STORE_LOOKBACK_MS, t], or no point at t when there is none.
 * Series with no points are left out.  Fills *out (caller frees with
 * kiln_store_result_free()).  KILN_ERR_INVALID_ARGUMENT when end < start,
 * step <= 0 or the query would exceed KILN_STORE_MAX_POINTS per series. */
kiln_status_t kiln_store_query_range(kiln_store_t *store, const kiln_selector_t *sel,
                                     int64_t start_ms, int64_t end_ms, int64_t step_ms,
                                     kiln_store_result_t *out);

/* Every stored sample of the matching series with start_ms <= ts <= end_ms
 * (for rate()/increase()-style evaluation in alert rules).  Same ownership
 * as kiln_store_query_range(). */
kiln_status_t kiln_store_query_raw(kiln_store_t *store, const kiln_selector_t *sel,
                                   int64_t start_ms, int64_t end_ms, kiln_store_result_t *out);

/* Like kiln_store_query_raw(), but the series are chosen by a callback
 * (used to plug the store into the alert engine's sample source, which has
 * its own selector type).  metric, when not NULL, narrows the candidates to
 * one metric name before the callback is asked. */
typedef bool (*kiln_store_filter_fn)(void *ctx, const char *metric, const kiln_label_t *labels,
                                     size_t n_labels);
kiln_status_t kiln_store_query_raw_filtered(kiln_store_t *store, const char *metric,
                                            kiln_store_filter_fn filter, void *ctx,
                                            int64_t start_ms, int64_t end_ms,
                                            kiln_store_result_t *out);

/* The series matching sel that have a sample or roll-up between start_ms and
 * end_ms (n_points is 0 in the result).  Same ownership as above. */
kiln_status_t kiln_store_series(kiln_store_t *store, const kiln_selector_t *sel, int64_t start_ms,
                                int64_t end_ms, kiln_store_result_t *out);

#endif
