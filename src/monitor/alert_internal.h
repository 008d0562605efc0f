/*
 * alert_internal.h - the private structures shared by the alert sources:
 * label sets, the parsed PromQL-subset expression, templates, rules with
 * their live alert instances, and the series set a sample source fills.
 *
 * alerts.h is the door for the rest of kiln; this header is only included by
 * src/monitor/alert_*.c, the alert unit tests and the fuzz target.
 */
#ifndef KILN_MONITOR_ALERT_INTERNAL_H
#define KILN_MONITOR_ALERT_INTERNAL_H

#include <regex.h>
#include <stddef.h>

#include "monitor/alerts.h"

/* ---- Label sets: parallel name/value arrays kept sorted by name ---------- */

typedef struct alert_labels {
    char **names;
    char **values;
    size_t n;
} alert_labels_t;

/* Sets name=value (copies both; replaces an existing value).  0 or -1 (OOM). */
int alert_labels_set(alert_labels_t *l, const char *name, const char *value);
/* Removes a label if present. */
void alert_labels_del(alert_labels_t *l, const char *name);
/* The value of a label or NULL. */
const char *alert_labels_get(const alert_labels_t *l, const char *name);
int alert_labels_copy(alert_labels_t *dst, const alert_labels_t *src);
int alert_labels_equal(const alert_labels_t *a, const alert_labels_t *b);
void alert_labels_clear(alert_labels_t *l);

/* ---- Growable string buffer for text and JSON output --------------------- */

typedef struct alert_buf {
    char *data;
    size_t len, cap;
    int oom; /* set once an allocation failed; the text is then incomplete */
} alert_buf_t;

void alert_buf_put(alert_buf_t *b, const char *s, size_t n);
void alert_buf_puts(alert_buf_t *b, const char *s);
void alert_buf_printf(alert_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal with quotes. */
void alert_buf_json_string(alert_buf_t *b, const char *s);
/* Appends a label set as a JSON object. */
void alert_buf_json_labels(alert_buf_t *b, const alert_labels_t *l);
/* Appends s escaped for a Prometheus label value (\\, \", \n). */
void alert_buf_prom_escape(alert_buf_t *b, const char *s);
/* Takes the text (NUL-terminated, caller frees); NULL when OOM. */
char *alert_buf_take(alert_buf_t *b);

/* Formats a time as RFC 3339 UTC with milliseconds ("2026-11-25T13:00:00.000Z"). */
void alert_format_time(double t, char *out, size_t outlen);
/* Formats a float the shortest way that reads back the same ("+Inf", "NaN"). */
void alert_format_value(double v, char *out, size_t outlen);

/* ---- Expression: SELECTOR or FUNC(SELECTOR[RANGE]) compared with NUMBER -- */

typedef enum alert_match_op {
    ALERT_MATCH_EQ,
    ALERT_MATCH_NE,
    ALERT_MATCH_RE,
    ALERT_MATCH_NRE
} alert_match_op_t;

typedef struct alert_matcher {
    char *name;
    char *value;
    alert_match_op_t op;
    int has_re; /* re is compiled (for =~ and !~), anchored at both ends */
    regex_t re;
} alert_matcher_t;

struct kiln_alert_selector {
    char *metric; /* NULL when the selector has only matchers */
    alert_matcher_t *matchers;
    size_t nmatchers;
};

typedef enum alert_func {
    ALERT_FN_NONE, /* instant selector: the latest sample within the lookback */
    ALERT_FN_AVG_OVER_TIME,
    ALERT_FN_MAX_OVER_TIME,
    ALERT_FN_MIN_OVER_TIME,
    ALERT_FN_RATE
} alert_func_t;

typedef enum alert_cmp {
    ALERT_CMP_GT,
    ALERT_CMP_LT,
    ALERT_CMP_GE,
    ALERT_CMP_LE,
    ALERT_CMP_EQ,
    ALERT_CMP_NE
} alert_cmp_t;

typedef struct alert_expr {
    struct kiln_alert_selector sel;
    alert_func_t func;
    double range; /* seconds, for range functions */
    alert_cmp_t cmp;
    double threshold;
} alert_expr_t;

/* How far back an instant selector looks for its latest sample (Prometheus's
 * default lookback delta). */
#define ALERT_LOOKBACK_SECONDS 300.0

/* Parses expr.  On failure returns -1, sets *err_offset to the 0-based byte
 * offset of the problem and writes the problem (without position) to msg. */
int alert_expr_parse(const char *text, alert_expr_t *out, size_t *err_offset, char *msg, size_t msglen);
void alert_expr_clear(alert_expr_t *e);
int alert_cmp_apply(alert_cmp_t cmp, double a, double b);
const char *alert_func_name(alert_func_t f);

/* ---- Templates: {{ $labels.x }}, {{ $value }} and a few pipeline functions */

typedef enum alert_tmpl_kind { ALERT_TMPL_TEXT, ALERT_TMPL_LABEL, ALERT_TMPL_VALUE } alert_tmpl_kind_t;
typedef enum alert_tmpl_fn {
    ALERT_TMPL_FN_NONE,
    ALERT_TMPL_FN_HUMANIZE,            /* 1234567 -> 1.235M */
    ALERT_TMPL_FN_HUMANIZE_PERCENTAGE, /* 0.1234 -> 12.34% */
    ALERT_TMPL_FN_HUMANIZE_DURATION,   /* 3725 -> 1h 2m 5s */
    ALERT_TMPL_FN_PRINTF               /* printf "%.2f" */
} alert_tmpl_fn_t;

typedef struct alert_tmpl_part {
    alert_tmpl_kind_t kind;
    char *text; /* literal text, or the label name */
    alert_tmpl_fn_t fn;
    char *fmt; /* for printf: one checked float conversion */
} alert_tmpl_part_t;

typedef struct alert_template {
    alert_tmpl_part_t *parts;
    size_t n;
} alert_template_t;

/* Parses a template; on failure -1 with the 0-based offset and a message. */
int alert_template_parse(const char *src, alert_template_t *out, size_t *err_offset, char *msg,
                         size_t msglen);
/* Renders with the series labels and value; malloc'd, NULL on OOM. */
char *alert_template_render(const alert_template_t *t, const alert_labels_t *labels, double value);
void alert_template_clear(alert_template_t *t);

/* ---- Rules, groups, live alerts ----------------------------------------- */

typedef struct alert_instance {
    alert_labels_t labels;      /* final labels: series labels, rule labels, alertname */
    alert_labels_t annotations; /* rendered */
    kiln_alert_state_t state;
    double value;
    double active_at;         /* when it went pending (or firing with for: 0) */
    double fired_at;          /* when it went firing; 0 never */
    double resolved_at;       /* when it resolved; 0 not resolved */
    double keep_firing_since; /* when it vanished while firing; 0 present */
    double last_sent;         /* last time sent to the notifier; 0 never */
    int seen;                 /* present in the current evaluation */
} alert_instance_t;

typedef struct alert_kv_template {
    char *name;
    char *source; /* the template text as written */
    alert_template_t tmpl;
} alert_kv_template_t;

typedef struct alert_rule {
    char *name; /* alert: */
    char *expr_text;
    alert_expr_t expr;
    double for_seconds;
    double keep_firing_for;
    alert_kv_template_t *labels;
    size_t nlabels;
    alert_kv_template_t *annotations;
    size_t nannotations;
    int line; /* where the rule starts in its file, for messages */
    /* run-time state, guarded by the engine's mutex */
    alert_instance_t *alerts;
    size_t nalerts;
    char *last_error;
    double last_eval;
    double eval_seconds;
} alert_rule_t;

typedef struct alert_group {
    char *name;
    double interval; /* seconds; 0: the engine's default */
    alert_rule_t *rules;
    size_t nrules;
    double next_eval; /* for the evaluation thread */
} alert_group_t;

struct kiln_alert_rules {
    char *file;
    alert_group_t *groups;
    size_t ngroups;
};

/* ---- Series sets ----------------------------------------------------------- */

struct kiln_series {
    alert_labels_t labels;
    double *t;
    double *v;
    size_t n, cap;
};

struct kiln_series_set {
    kiln_series_t **items;
    size_t n, cap;
};

void alert_series_set_clear(kiln_series_set_t *set);

/* Evaluates one expression at `now` against the source: for each matching
 * series with a result that passes the comparison, appends a series (labels
 * as PromQL returns them: __name__ dropped by functions) with one sample
 * (now, value) to `out`.  0, or -1 with a message. */
int alert_expr_eval(const alert_expr_t *e, const kiln_alert_source_t *src, double now, kiln_series_set_t *out,
                    char *err, size_t errlen);

/* ---- Notifier side ---------------------------------------------------------- */

/* One alert as sent to Alertmanager / webhooks. */
typedef struct alert_notice {
    alert_labels_t labels;
    alert_labels_t annotations;
    double starts_at;
    double ends_at; /* 0 while firing */
    int resolved;
} alert_notice_t;

typedef enum alert_target { ALERT_TARGET_ALERTMANAGER, ALERT_TARGET_WEBHOOK } alert_target_t;

/* Queues one message for the notifier thread: to the Alertmanager, a JSON
 * array of the notices; to the webhook, one version-4 payload grouping the
 * notices of `alertname`.  Copies what it needs; never blocks on the
 * network.  A target that is not configured ignores the call. */
void alert_notifier_enqueue(kiln_alert_notifier_t *n, alert_target_t target, const char *alertname,
                            const alert_notice_t *notices, size_t count);
/* The resend interval the engine should use (seconds). */
double alert_notifier_resend_seconds(const kiln_alert_notifier_t *n);

#endif
