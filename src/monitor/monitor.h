/*
 * monitor.h - the monitoring plane as one object: collectors (NVML GPUs,
 * host, inference registry), one sampler thread, the history store, the
 * /metrics exporter and the /api/v1 query handlers, attached to a metrics
 * HTTP server.
 *
 * `kiln monitor` starts a server and a monitor on it; `kiln serve` does the
 * same on --metrics-port and passes its inference registry.  The alert
 * engine and dashboard plug in through the getters below: they read the
 * store, add collectors to the exporter and routes to the server.
 *
 * The sampler thread samples every interval_ms, publishes the snapshot that
 * /metrics serves (a pointer swap under a short lock: a scrape never waits
 * for hardware) and appends it to the history; once a minute it rolls up
 * and prunes the history.
 */
#ifndef KILN_MONITOR_MONITOR_H
#define KILN_MONITOR_MONITOR_H

#include <stdint.h>

#include "kiln.h"
#include "monitor/exporter.h"
#include "monitor/http.h"
#include "monitor/inference_stats.h"
#include "monitor/store.h"

typedef struct kiln_monitor kiln_monitor_t;

typedef struct kiln_monitor_options {
    int interval_ms;              /* sampling period; 0 = 1000 */
    const char *history_path;     /* SQLite file; NULL = in-memory history */
    kiln_store_options_t store;   /* retention windows (0 = defaults) */
    kiln_inference_stats_t *inference; /* NULL = none (kiln monitor alone) */
    const char *proc_root;        /* NULL = "/proc" (tests point it at a fake tree) */
    int quiet;                    /* non-zero: no log lines on stderr */
} kiln_monitor_options_t;

/* Opens the history, loads NVML (absence is logged once, not an error),
 * registers /metrics, /api/v1/query_range, /api/v1/query, /api/v1/series,
 * /api/v1/labels and /api/v1/label/<name>/values on srv (srv may be NULL:
 * no HTTP), takes a first sample and starts the sampler thread.  On success
 * *out is the monitor; stop it with kiln_monitor_stop() before stopping srv.
 * Errors: KILN_ERR_IO (history), KILN_ERR_INVALID_ARGUMENT (options). */
kiln_status_t kiln_monitor_start(const kiln_monitor_options_t *opts, kiln_metrics_server_t *srv,
                                 kiln_monitor_t **out);
/* Stops the sampler, unregisters the routes, closes the history.  Safe with NULL. */
void kiln_monitor_stop(kiln_monitor_t *mon);

kiln_store_t *kiln_monitor_store(kiln_monitor_t *mon);
kiln_exporter_t *kiln_monitor_exporter(kiln_monitor_t *mon);

/* Takes one sample now on the calling thread (tests and benchmarks). */
kiln_status_t kiln_monitor_sample_now(kiln_monitor_t *mon);

#endif
