/*
 * labels.h - a time series' identity: a metric name plus label pairs.
 *
 * Shared by the exporter (/metrics), the history store and the query API so
 * that one sample carries the same name and labels everywhere.  A label set
 * is a plain array of name/value pointers owned by whoever built it; the
 * functions here never keep the pointers they are given.
 */
#ifndef KILN_MONITOR_LABELS_H
#define KILN_MONITOR_LABELS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kiln_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" */
    const char *value; /* any UTF-8 text */
} kiln_label_t;

/* True for a valid Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
bool kiln_metric_name_valid(const char *name);
/* True for a valid label name: [a-zA-Z_][a-zA-Z0-9_]*. */
bool kiln_label_name_valid(const char *name);

#endif
