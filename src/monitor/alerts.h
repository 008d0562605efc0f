/*
 * alerts.h - kiln's alerting: Prometheus-style rule files, an evaluator with
 * the inactive/pending/firing/resolved state machine, and a notifier that
 * posts to an Alertmanager and to generic webhooks.
 *
 * The design choice: the evaluator never reaches into the history store.  It
 * asks a *sample source* (two function pointers and a context) for the
 * series that match a selector over a time range, so unit tests feed it
 * synthetic series and `kiln monitor` / `kiln serve` plug in the SQLite
 * store.  Evaluation takes the timestamp as an argument; nothing in here reads
 * the clock except the optional evaluation thread (kiln_alert_engine_start).
 *
 * Typical wiring (see src/cli/cmd_monitor.c):
 *
 *     kiln_alert_rules_t *rules;
 *     char err[512];
 *     if (kiln_alert_rules_load(path, &rules, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); exit 2;
 * } kiln_alert_source_t src = { store_select, store }; kiln_alert_engine_t *eng =
 * kiln_alert_engine_new(rules, &src);     // takes rules kiln_alert_engine_set_notifier(eng, notifier); //
 * optional kiln_alert_engine_set_transition_hook(eng, store_record_transition, store); // optional
 *     kiln_alert_engine_start(eng, 1000);          // or call kiln_alert_engine_evaluate(eng, now)
 *     ... /metrics appends kiln_alert_engine_metrics_text(eng)
 *     ... /api/v1/alerts answers kiln_alert_engine_api_json(eng)
 *     kiln_alert_engine_free(eng);
 *
 * Times are Unix time in seconds as double everywhere in this header.
 * Errors: functions that can fail return 0 on success and -1 on failure,
 * with a message naming the file, line, column and problem written into the
 * caller's buffer (err, errlen; may be NULL).
 * Thread safety: an engine's functions may be called from any thread (one
 * mutex inside); a notifier's queue is thread-safe.
 */
#ifndef KILN_MONITOR_ALERTS_H
#define KILN_MONITOR_ALERTS_H

#include <stddef.h>

/* ---- Selectors and the sample source ------------------------------------- */

/* A parsed series selector such as up{job="x",gpu_uuid=~"GPU-.*"}. */
typedef struct kiln_alert_selector kiln_alert_selector_t;

/* The metric name the selector asks for, or NULL when it only has matchers
 * (e.g. {__name__=~"nv_.*"}); a source may use it to narrow its lookup. */
const char *kiln_alert_selector_metric(const kiln_alert_selector_t *sel);

/* 1 when a series with these labels (the metric name given as the label
 * "__name__") matches every matcher of the selector, else 0. */
int kiln_alert_selector_matches(const kiln_alert_selector_t *sel, const char *const *names,
                                const char *const *values, size_t nlabels);

/* A set of series with samples, filled by a sample source.  The alert code
 * creates and frees it; the source only appends. */
typedef struct kiln_series_set kiln_series_set_t;
typedef struct kiln_series kiln_series_t;

/* Appends a series with these labels (copied; include "__name__").  Returns
 * the series to add samples to, or NULL when out of memory. */
kiln_series_t *kiln_series_set_add(kiln_series_set_t *set, const char *const *names,
                                   const char *const *values, size_t nlabels);
/* Appends one sample; samples must come in increasing time.  0 or -1 (OOM). */
int kiln_series_add_sample(kiln_series_t *series, double t, double v);

/* Where samples come from.  select() appends to `out` every series that
 * matches `sel` (use kiln_alert_selector_matches) with its samples whose
 * time lies in [start, end], oldest first; series with no sample in the
 * range may be left out.  Returns 0, or -1 with a message in err. */
typedef struct kiln_alert_source {
    int (*select)(void *ctx, const kiln_alert_selector_t *sel, double start, double end,
                  kiln_series_set_t *out, char *err, size_t errlen);
    void *ctx;
} kiln_alert_source_t;

/* ---- Rule files ----------------------------------------------------------- */

/* Every rule of a file, parsed and checked. */
typedef struct kiln_alert_rules kiln_alert_rules_t;

/* Reads and checks a Prometheus rule file (groups: of rules: with alert,
 * expr, for, keep_firing_for, labels, annotations).  A YAML error names its
 * line and column; an expression outside the supported subset names the
 * line and column of the expr and the character offset inside it.  On
 * success *out is owned by the caller (kiln_alert_rules_free). */
int kiln_alert_rules_load(const char *path, kiln_alert_rules_t **out, char *err, size_t errlen);
/* The same from a buffer; `name` is used in messages (e.g. the file name). */
int kiln_alert_rules_parse(const char *text, size_t len, const char *name, kiln_alert_rules_t **out,
                           char *err, size_t errlen);
void kiln_alert_rules_free(kiln_alert_rules_t *rules);
/* Number of alerting rules over all groups. */
size_t kiln_alert_rules_count(const kiln_alert_rules_t *rules);

/* Checks one expression of the supported PromQL subset:
 *   SELECTOR CMP NUMBER  or  FUNC(SELECTOR[RANGE]) CMP NUMBER
 * with FUNC one of avg_over_time, max_over_time, min_over_time, rate and CMP
 * one of > < >= <= == !=.  Returns 0, or -1 with "character N: problem". */
int kiln_alert_expr_check(const char *expr, char *err, size_t errlen);

/* Parses a Prometheus duration ("5m", "1h30m", "250ms", "0").  Returns 0 and
 * the seconds in *seconds, or -1 when the text is not a duration. */
int kiln_alert_parse_duration(const char *text, double *seconds);

/* ---- Alert states and transitions ------------------------------------------ */

typedef enum kiln_alert_state {
    KILN_ALERT_INACTIVE = 0,
    KILN_ALERT_PENDING = 1,
    KILN_ALERT_FIRING = 2,
    KILN_ALERT_RESOLVED = 3
} kiln_alert_state_t;

/* "inactive", "pending", "firing", "resolved". */
const char *kiln_alert_state_name(kiln_alert_state_t state);

/* One change of an alert's state, handed to the transition hook (for the
 * history store).  Pointers are valid only during the call. */
typedef struct kiln_alert_transition {
    const char *alertname;
    const char *labels_json;      /* the alert's labels as a JSON object */
    const char *annotations_json; /* its annotations as a JSON object */
    kiln_alert_state_t from, to;
    double time;  /* evaluation time of the change */
    double value; /* the expression's value (NaN when the series vanished) */
} kiln_alert_transition_t;

typedef void (*kiln_alert_transition_fn)(void *ctx, const kiln_alert_transition_t *tr);

/* ---- Notifier ----------------------------------------------------------- */

/* A background thread with a queue that POSTs alerts to an Alertmanager
 * (/api/v2/alerts) and webhooks (Alertmanager's webhook payload, version
 * "4"), retrying with exponential backoff.  Enqueueing never blocks on the
 * network, so the sampler and evaluator never stall. */
typedef struct kiln_alert_notifier kiln_alert_notifier_t;

typedef struct kiln_alert_notifier_config {
    const char *alertmanager_url; /* http://host:port[/prefix]; NULL: none. /api/v2/alerts is appended */
    const char *webhook_url;      /* http://host:port/path; NULL: none */
    const char *external_url; /* kiln's own URL for generatorURL/externalURL; NULL: http://127.0.0.1:8002 */
    double resend_seconds;    /* re-send firing alerts to Alertmanager this often; <=0: 60 */
    int max_attempts;         /* attempts per message; <=0: 5 */
    double backoff_seconds;   /* first retry delay, doubled each time; <=0: 0.5 */
    double timeout_seconds;   /* connect/send/receive timeout; <=0: 5 */
} kiln_alert_notifier_config_t;

/* Starts the notifier thread.  Bad URLs are refused here with a message.
 * The caller owns the result (kiln_alert_notifier_stop). */
int kiln_alert_notifier_start(const kiln_alert_notifier_config_t *cfg, kiln_alert_notifier_t **out, char *err,
                              size_t errlen);
/* Sends what is queued (bounded by the timeouts), stops the thread, frees. */
void kiln_alert_notifier_stop(kiln_alert_notifier_t *n);
/* Counters for tests and the /metrics page. */
typedef struct kiln_alert_notifier_stats {
    unsigned long sent, failed, retried, dropped, queued;
} kiln_alert_notifier_stats_t;
void kiln_alert_notifier_stats(kiln_alert_notifier_t *n, kiln_alert_notifier_stats_t *out);
/* Waits until the queue is empty or `seconds` pass; 0 when empty. */
int kiln_alert_notifier_flush(kiln_alert_notifier_t *n, double seconds);

/* ---- The engine ------------------------------------------------------------ */

typedef struct kiln_alert_engine kiln_alert_engine_t;

/* Creates an engine over `rules` (ownership passes to the engine) reading
 * samples from `source` (copied).  NULL when out of memory. */
kiln_alert_engine_t *kiln_alert_engine_new(kiln_alert_rules_t *rules, const kiln_alert_source_t *source);
/* Stops the thread if started, frees everything (not the notifier). */
void kiln_alert_engine_free(kiln_alert_engine_t *eng);

/* The notifier receives alerts after each evaluation (borrowed; NULL: none). */
void kiln_alert_engine_set_notifier(kiln_alert_engine_t *eng, kiln_alert_notifier_t *n);
/* Called for each state change (e.g. to store it in the history). */
void kiln_alert_engine_set_transition_hook(kiln_alert_engine_t *eng, kiln_alert_transition_fn fn, void *ctx);

/* Evaluates every rule at time `now`, moves alert states, calls the hook and
 * queues notifications.  Returns 0, or -1 when a source query failed (the
 * message is also kept for the API as the rule's lastError). */
int kiln_alert_engine_evaluate(kiln_alert_engine_t *eng, double now, char *err, size_t errlen);

/* Starts a thread that evaluates each group every group interval (the
 * group's `interval:`, else default_interval_ms) using the wall clock. */
int kiln_alert_engine_start(kiln_alert_engine_t *eng, int default_interval_ms, char *err, size_t errlen);
void kiln_alert_engine_stop(kiln_alert_engine_t *eng);

/* The ALERTS series in Prometheus text format (# HELP, # TYPE, one line per
 * pending or firing alert: ALERTS{alertname="..",alertstate="..",...} 1).
 * Returns a malloc'd string the caller frees; NULL when out of memory. */
char *kiln_alert_engine_metrics_text(kiln_alert_engine_t *eng);
/* The body of GET /api/v1/alerts, Prometheus's shape:
 * {"status":"success","data":{"alerts":[{"labels":..,"annotations":..,
 * "state":"firing","activeAt":"2026-..Z","value":"1.5e+00"}]}}.  malloc'd. */
char *kiln_alert_engine_api_json(kiln_alert_engine_t *eng);
/* The body of GET /api/v1/rules (groups with rules, state, health). */
char *kiln_alert_engine_rules_json(kiln_alert_engine_t *eng);

/* Snapshot for tests and `kiln top`: the number of alerts in each state,
 * and the state of the alert of rule `alertname` whose labels include
 * label=value (label NULL: any alert of the rule); INACTIVE when none. */
kiln_alert_state_t kiln_alert_engine_state_of(kiln_alert_engine_t *eng, const char *alertname,
                                              const char *label, const char *value, double *value_out);
size_t kiln_alert_engine_count(kiln_alert_engine_t *eng, kiln_alert_state_t state);

#endif
