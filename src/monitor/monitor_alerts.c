/*
 * monitor_alerts.c - the glue between the history store, the metrics
 * server and the alert engine (see monitor_alerts.h).
 *
 * The alert engine has its own selector type and result set; this file
 * adapts: a store query filtered by the engine's matcher, whose points are
 * handed over in seconds as the engine counts time.
 */
#include "monitor/monitor_alerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "monitor/alerts.h"
#include "monitor/dashboard.h"

#define MAX_SERIES_LABELS 32

struct kiln_monitor_alerts {
    kiln_monitor_t *mon;
    kiln_metrics_server_t *srv;
    kiln_alert_engine_t *engine;
    kiln_alert_notifier_t *notifier;
};

/* kiln_store_filter_fn: asks the engine's selector about one series. */
static bool engine_filter(void *ctx, const char *metric, const kiln_label_t *labels, size_t n)
{
    const char *names[MAX_SERIES_LABELS + 1], *values[MAX_SERIES_LABELS + 1];
    if (n > MAX_SERIES_LABELS)
        n = MAX_SERIES_LABELS;
    names[0] = "__name__";
    values[0] = metric;
    for (size_t i = 0; i < n; i++) {
        names[i + 1] = labels[i].name;
        values[i + 1] = labels[i].value;
    }
    return kiln_alert_selector_matches(ctx, names, values, n + 1) != 0;
}

/* kiln_alert_source_t.select over the history store. */
static int store_select(void *ctx, const kiln_alert_selector_t *sel, double start, double end,
                        kiln_series_set_t *out, char *err, size_t errlen)
{
    kiln_store_t *store = ctx;
    kiln_store_result_t res;
    if (kiln_store_query_raw_filtered(store, kiln_alert_selector_metric(sel), engine_filter,
                                      (void *)sel, (int64_t)(start * 1000.0),
                                      (int64_t)(end * 1000.0), &res)) {
        if (err)
            snprintf(err, errlen, "%s", kiln_last_error());
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < res.count && !rc; i++) {
        const kiln_store_series_t *s = &res.series[i];
        const char *names[MAX_SERIES_LABELS + 1], *values[MAX_SERIES_LABELS + 1];
        size_t n = s->n_labels < MAX_SERIES_LABELS ? s->n_labels : MAX_SERIES_LABELS;
        names[0] = "__name__";
        values[0] = s->metric;
        for (size_t j = 0; j < n; j++) {
            names[j + 1] = s->labels[j].name;
            values[j + 1] = s->labels[j].value;
        }
        kiln_series_t *dst = kiln_series_set_add(out, names, values, n + 1);
        if (!dst) {
            rc = -1;
            break;
        }
        for (size_t k = 0; k < s->n_points && !rc; k++)
            rc = kiln_series_add_sample(dst, (double)s->ts_ms[k] / 1000.0, s->values[k]);
    }
    if (rc && err)
        snprintf(err, errlen, "out of memory while reading the history");
    kiln_store_result_free(&res);
    return rc;
}

kiln_alert_source_t kiln_monitor_alerts_store_source(kiln_store_t *store)
{
    kiln_alert_source_t source = {store_select, store};
    return source;
}

/* /metrics collector: the engine's ALERTS family. */
static void alerts_collect(kiln_metrics_writer_t *w, void *user)
{
    kiln_monitor_alerts_t *a = user;
    char *text = kiln_alert_engine_metrics_text(a->engine);
    if (text) {
        kiln_metrics_raw(w, text, strlen(text));
        free(text);
    }
}

static void send_owned_json(kiln_http_request_t *req, char *json)
{
    if (!json) {
        kiln_http_respond_error(req, 500, "out of memory");
        return;
    }
    kiln_http_respond(req, 200, "application/json", json, strlen(json));
    free(json);
}

/* Transition hook: every state change becomes one sample of
 * kiln_alert_transition{alertname, from, to, labels=<alert labels as JSON>}
 * in the history, valued with the new state (1 pending, 2 firing,
 * 3 resolved, 0 inactive) because the store keeps no NaN and the alert's
 * own value is NaN once its series is gone. */
static void record_transition(void *ctx, const kiln_alert_transition_t *tr)
{
    kiln_store_t *store = ctx;
    kiln_label_t labels[4] = {{"alertname", tr->alertname},
                              {"from", kiln_alert_state_name(tr->from)},
                              {"labels", tr->labels_json},
                              {"to", kiln_alert_state_name(tr->to)}};
    kiln_sample_t sample = {"kiln_alert_transition", labels, 4, (double)tr->to};
    if (kiln_store_append(store, (int64_t)(tr->time * 1000.0), &sample, 1))
        fprintf(stderr, "kiln: alerts: cannot record a transition of %s: %s\n", tr->alertname,
                kiln_last_error());
}

static void alerts_handler(kiln_http_request_t *req, void *user)
{
    kiln_monitor_alerts_t *a = user;
    send_owned_json(req, kiln_alert_engine_api_json(a->engine));
}

static void rules_handler(kiln_http_request_t *req, void *user)
{
    kiln_monitor_alerts_t *a = user;
    send_owned_json(req, kiln_alert_engine_rules_json(a->engine));
}

void kiln_monitor_alerts_stop(kiln_monitor_alerts_t *a)
{
    if (!a)
        return;
    if (a->srv) {
        kiln_metrics_server_unhandle(a->srv, "/api/v1/alerts");
        kiln_metrics_server_unhandle(a->srv, "/api/v1/rules");
        kiln_dashboard_unregister(a->srv);
    }
    if (a->mon)
        kiln_exporter_remove_collector(kiln_monitor_exporter(a->mon), alerts_collect, a);
    if (a->engine) {
        kiln_alert_engine_stop(a->engine);
        kiln_alert_engine_free(a->engine);
    }
    kiln_alert_notifier_stop(a->notifier);
    free(a);
}

kiln_status_t kiln_monitor_alerts_start(kiln_monitor_t *mon, kiln_metrics_server_t *srv,
                                        const kiln_monitor_alerts_options_t *opts,
                                        kiln_monitor_alerts_t **out)
{
    *out = NULL;
    char err[1024] = "";
    kiln_alert_rules_t *rules = NULL;
    int rc = opts->rules_path ? kiln_alert_rules_load(opts->rules_path, &rules, err, sizeof err)
                              : kiln_alert_rules_parse("groups: []\n", 11, "(no rules)", &rules,
                                                       err, sizeof err);
    if (rc)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s", err);
    kiln_monitor_alerts_t *a = calloc(1, sizeof *a);
    if (!a) {
        kiln_alert_rules_free(rules);
        return kiln_fail(KILN_ERR_NO_MEMORY, "alerts: out of memory");
    }
    a->mon = mon;
    kiln_alert_source_t source = kiln_monitor_alerts_store_source(kiln_monitor_store(mon));
    a->engine = kiln_alert_engine_new(rules, &source);
    if (!a->engine) {
        kiln_alert_rules_free(rules);
        kiln_monitor_alerts_stop(a);
        return kiln_fail(KILN_ERR_NO_MEMORY, "alerts: out of memory");
    }
    if (opts->alertmanager_url || opts->webhook_url) {
        kiln_alert_notifier_config_t cfg = {0};
        cfg.alertmanager_url = opts->alertmanager_url;
        cfg.webhook_url = opts->webhook_url;
        cfg.external_url = opts->external_url;
        if (kiln_alert_notifier_start(&cfg, &a->notifier, err, sizeof err)) {
            kiln_monitor_alerts_stop(a);
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s", err);
        }
        kiln_alert_engine_set_notifier(a->engine, a->notifier);
    }
    kiln_alert_engine_set_transition_hook(a->engine, record_transition, kiln_monitor_store(mon));
    kiln_status_t st = kiln_exporter_add_collector(kiln_monitor_exporter(mon), alerts_collect, a);
    if (!st && srv) {
        a->srv = srv;
        st = kiln_metrics_server_handle(srv, "/api/v1/alerts", alerts_handler, a);
        if (!st)
            st = kiln_metrics_server_handle(srv, "/api/v1/rules", rules_handler, a);
        if (!st)
            st = kiln_dashboard_register(srv);
    }
    if (!st && kiln_alert_engine_start(a->engine, opts->interval_ms > 0 ? opts->interval_ms : 1000,
                                       err, sizeof err))
        st = kiln_fail(KILN_ERR_RUNTIME, "%s", err);
    if (st) {
        kiln_monitor_alerts_stop(a);
        return st;
    }
    *out = a;
    return KILN_OK;
}
