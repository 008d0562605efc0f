/*
 * monitor_alerts.h - plugs the alert engine (alerts.h, the alerting half of
 * monitoring) into a running monitor: the history store becomes the
 * engine's sample source, the ALERTS series joins /metrics, and
 * /api/v1/alerts and /api/v1/rules are served on the metrics server.
 * Shared by `kiln monitor` and `kiln serve` so both wire alerts alike.
 */
#ifndef KILN_MONITOR_MONITOR_ALERTS_H
#define KILN_MONITOR_MONITOR_ALERTS_H

#include "kiln.h"
#include "monitor/alerts.h"
#include "monitor/monitor.h"

typedef struct kiln_monitor_alerts kiln_monitor_alerts_t;

typedef struct kiln_monitor_alerts_options {
    const char *rules_path;       /* --alert-rules FILE; NULL: no rules, yet the API answers */
    const char *alertmanager_url; /* --alertmanager-url; NULL: none */
    const char *webhook_url;      /* --alert-webhook; NULL: none */
    const char *external_url;     /* kiln's own URL for links in notifications */
    int interval_ms;              /* default rule evaluation interval; 0 = 1000 */
} kiln_monitor_alerts_options_t;

/* Loads the rules, starts the notifier (when a URL is given) and the
 * evaluation thread, and registers the collector and routes.  On error the
 * last-error text carries the rule file's own message (file, line, column)
 * and the status is KILN_ERR_INVALID_ARGUMENT (bad rules or URL). */
kiln_status_t kiln_monitor_alerts_start(kiln_monitor_t *mon, kiln_metrics_server_t *srv,
                                        const kiln_monitor_alerts_options_t *opts,
                                        kiln_monitor_alerts_t **out);
/* The history store as an alert sample source (what the engine started
 * above reads); exposed so tests can evaluate rules over a real store. */
kiln_alert_source_t kiln_monitor_alerts_store_source(kiln_store_t *store);

/* Stops evaluation and notification and unregisters.  Safe with NULL. */
void kiln_monitor_alerts_stop(kiln_monitor_alerts_t *a);

#endif
