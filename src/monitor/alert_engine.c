/*
 * alert_engine.c - the alert state machine, read as one story per rule:
 *
 *   1. evaluate the rule's expression at `now` against the sample source;
 *   2. every series in the result is an alert: new ones start *pending*
 *      (activeAt = now), known ones get the new value and annotations;
 *   3. a pending alert that has been active for `for` becomes *firing*;
 *   4. an alert missing from the result: pending ones vanish (inactive);
 *      firing ones stay firing while keep_firing_for lasts, then become
 *      *resolved* and are kept 15 minutes so notifications say so;
 *   5. each change goes to the transition hook (history), and alerts due
 *      for sending go to the notifier queue.
 *
 * These are Prometheus's semantics (rules/alerting.go), so a rule behaves
 * the same under kiln and under Prometheus.  One mutex guards all state;
 * readers (/metrics, /api/v1/alerts) take it briefly to copy text out.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor/alert_internal.h"

/* How long a resolved alert is kept and re-sent (Prometheus: 15 minutes). */
#define RESOLVED_RETENTION_SECONDS (15 * 60.0)
/* Without a notifier, firing alerts are "re-sent" (nowhere) at this pace. */
#define DEFAULT_RESEND_SECONDS 60.0

struct kiln_alert_engine {
    kiln_alert_rules_t *rules;
    kiln_alert_source_t source;
    pthread_mutex_t mu;
    kiln_alert_notifier_t *notifier;
    kiln_alert_transition_fn hook;
    void *hook_ctx;
    /* evaluation thread */
    pthread_t thread;
    pthread_cond_t wake;
    int running;
    int stop;
    double default_interval;
};

const char *kiln_alert_state_name(kiln_alert_state_t s)
{
    switch (s) {
    case KILN_ALERT_INACTIVE:
        return "inactive";
    case KILN_ALERT_PENDING:
        return "pending";
    case KILN_ALERT_FIRING:
        return "firing";
    case KILN_ALERT_RESOLVED:
        return "resolved";
    }
    return "unknown";
}

kiln_alert_engine_t *kiln_alert_engine_new(kiln_alert_rules_t *rules, const kiln_alert_source_t *source)
{
    kiln_alert_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->rules = rules;
    if (source)
        e->source = *source;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    return e;
}

void kiln_alert_engine_free(kiln_alert_engine_t *e)
{
    if (!e)
        return;
    kiln_alert_engine_stop(e);
    kiln_alert_rules_free(e->rules);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    free(e);
}

void kiln_alert_engine_set_notifier(kiln_alert_engine_t *e, kiln_alert_notifier_t *n)
{
    pthread_mutex_lock(&e->mu);
    e->notifier = n;
    pthread_mutex_unlock(&e->mu);
}

void kiln_alert_engine_set_transition_hook(kiln_alert_engine_t *e, kiln_alert_transition_fn fn, void *ctx)
{
    pthread_mutex_lock(&e->mu);
    e->hook = fn;
    e->hook_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

/* ---- One rule ------------------------------------------------------------------ */

static void emit_transition(kiln_alert_engine_t *e, const alert_rule_t *r, const alert_instance_t *a,
                            kiln_alert_state_t from, kiln_alert_state_t to, double now, double value)
{
    if (!e->hook)
        return;
    alert_buf_t lb = {0}, ab = {0};
    alert_buf_json_labels(&lb, &a->labels);
    alert_buf_json_labels(&ab, &a->annotations);
    char *lj = alert_buf_take(&lb), *aj = alert_buf_take(&ab);
    kiln_alert_transition_t tr = {.alertname = r->name,
                                  .labels_json = lj ? lj : "{}",
                                  .annotations_json = aj ? aj : "{}",
                                  .from = from,
                                  .to = to,
                                  .time = now,
                                  .value = value};
    e->hook(e->hook_ctx, &tr);
    free(lj);
    free(aj);
}

/* Renders each template of kv into dst with the series' labels and value. */
static int render_all(const alert_kv_template_t *kv, size_t n, const alert_labels_t *series, double value,
                      alert_labels_t *dst)
{
    for (size_t i = 0; i < n; i++) {
        char *v = alert_template_render(&kv[i].tmpl, series, value);
        int rc = v ? alert_labels_set(dst, kv[i].name, v) : -1;
        free(v);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Builds the alert's labels and annotations from one result series. */
static int build_alert(const alert_rule_t *r, const alert_labels_t *series, double value,
                       alert_labels_t *labels, alert_labels_t *annotations)
{
    if (alert_labels_copy(labels, series) != 0)
        return -1;
    alert_labels_del(labels, "__name__");
    if (render_all(r->labels, r->nlabels, series, value, labels) != 0)
        return -1;
    if (alert_labels_set(labels, "alertname", r->name) != 0)
        return -1;
    return render_all(r->annotations, r->nannotations, series, value, annotations);
}

static void drop_alert(alert_rule_t *r, size_t i)
{
    alert_labels_clear(&r->alerts[i].labels);
    alert_labels_clear(&r->alerts[i].annotations);
    r->alerts[i] = r->alerts[r->nalerts - 1];
    r->nalerts--;
}

static void set_error(alert_rule_t *r, const char *msg)
{
    free(r->last_error);
    r->last_error = msg ? strdup(msg) : NULL;
}

/* Fills a notice from an alert (labels and annotations are borrowed). */
static alert_notice_t notice_of(const alert_instance_t *a, double ends_at)
{
    alert_notice_t n = {.labels = a->labels,
                        .annotations = a->annotations,
                        .starts_at = a->active_at,
                        .ends_at = ends_at,
                        .resolved = a->state == KILN_ALERT_RESOLVED};
    return n;
}

/* Step 5 of the story: queue what the notifier should hear about. */
static void notify_rule(kiln_alert_engine_t *e, alert_rule_t *r, double now, int changed, double interval)
{
    if (!e->notifier || r->nalerts == 0)
        return;
    double resend = alert_notifier_resend_seconds(e->notifier);
    /* A firing alert is valid for four resend periods: if kiln stops, the
     * Alertmanager resolves it on its own (Prometheus does the same). */
    double valid_for = 4 * (resend > interval ? resend : interval);
    alert_notice_t *am = calloc(r->nalerts, sizeof *am);
    alert_notice_t *wh = calloc(r->nalerts, sizeof *wh);
    size_t nam = 0, nwh = 0;
    if (!am || !wh)
        goto out;
    for (size_t i = 0; i < r->nalerts; i++) {
        alert_instance_t *a = &r->alerts[i];
        if (a->state == KILN_ALERT_PENDING)
            continue;
        double ends = a->state == KILN_ALERT_RESOLVED ? a->resolved_at : now + valid_for;
        int due = a->last_sent == 0 || (a->state == KILN_ALERT_RESOLVED && a->resolved_at > a->last_sent) ||
                  a->last_sent + resend <= now;
        if (due) {
            am[nam++] = notice_of(a, ends);
            a->last_sent = now;
        }
        /* The webhook hears each change of the group, like Alertmanager's
         * own webhook: all firing alerts plus the ones that just resolved. */
        if (a->state == KILN_ALERT_FIRING || a->resolved_at == now)
            wh[nwh++] = notice_of(a, a->state == KILN_ALERT_RESOLVED ? a->resolved_at : 0);
    }
    if (nam)
        alert_notifier_enqueue(e->notifier, ALERT_TARGET_ALERTMANAGER, r->name, am, nam);
    if (changed && nwh)
        alert_notifier_enqueue(e->notifier, ALERT_TARGET_WEBHOOK, r->name, wh, nwh);
out:
    free(am);
    free(wh);
}

static int eval_rule(kiln_alert_engine_t *e, alert_rule_t *r, double now, double interval, char *err,
                     size_t errlen)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kiln_series_set_t result = {0};
    char msg[512] = "";
    int changed = 0;
    r->last_eval = now;
    if (alert_expr_eval(&r->expr, &e->source, now, &result, msg, sizeof msg) != 0) {
        set_error(r, msg);
        if (err && errlen)
            snprintf(err, errlen, "rule '%s': %s", r->name, msg);
        alert_series_set_clear(&result);
        return -1;
    }
    set_error(r, NULL);

    for (size_t i = 0; i < r->nalerts; i++)
        r->alerts[i].seen = 0;

    /* Step 2: every result series is an alert. */
    int rc = 0;
    for (size_t s = 0; s < result.n; s++) {
        double value = result.items[s]->v[0];
        alert_labels_t labels = {0}, ann = {0};
        if (build_alert(r, &result.items[s]->labels, value, &labels, &ann) != 0) {
            alert_labels_clear(&labels);
            alert_labels_clear(&ann);
            snprintf(msg, sizeof msg, "out of memory");
            rc = -1;
            break;
        }
        alert_instance_t *a = NULL;
        for (size_t i = 0; i < r->nalerts; i++)
            if (alert_labels_equal(&r->alerts[i].labels, &labels)) {
                a = &r->alerts[i];
                break;
            }
        if (a && a->seen) {
            /* Two series rendered to the same labels (e.g. a label template
             * dropped what set them apart): Prometheus refuses this too. */
            alert_labels_clear(&labels);
            alert_labels_clear(&ann);
            snprintf(msg, sizeof msg,
                     "vector contains metrics with the same labelset after applying alert labels");
            rc = -1;
            break;
        }
        if (a && a->state != KILN_ALERT_RESOLVED) {
            alert_labels_clear(&labels);
            alert_labels_clear(&a->annotations);
            a->annotations = ann;
            a->value = value;
            a->seen = 1;
            a->keep_firing_since = 0;
            continue;
        }
        if (a) { /* a resolved alert comes back: it starts over as a new alert */
            alert_labels_clear(&a->labels);
            alert_labels_clear(&a->annotations);
        } else {
            alert_instance_t *grown = realloc(r->alerts, (r->nalerts + 1) * sizeof *grown);
            if (!grown) {
                alert_labels_clear(&labels);
                alert_labels_clear(&ann);
                snprintf(msg, sizeof msg, "out of memory");
                rc = -1;
                break;
            }
            r->alerts = grown;
            a = &r->alerts[r->nalerts++];
        }
        memset(a, 0, sizeof *a);
        a->labels = labels;
        a->annotations = ann;
        a->state = KILN_ALERT_PENDING;
        a->active_at = now;
        a->value = value;
        a->seen = 1;
        emit_transition(e, r, a, KILN_ALERT_INACTIVE, KILN_ALERT_PENDING, now, value);
        changed = 1;
    }
    alert_series_set_clear(&result);

    /* Steps 3 and 4, in Prometheus's order. */
    for (size_t i = 0; i < r->nalerts;) {
        alert_instance_t *a = &r->alerts[i];
        if (!a->seen) {
            int keep = 0;
            if (a->state == KILN_ALERT_FIRING && r->keep_firing_for > 0) {
                if (a->keep_firing_since == 0)
                    a->keep_firing_since = now;
                if (now - a->keep_firing_since < r->keep_firing_for)
                    keep = 1;
            }
            if (a->state == KILN_ALERT_PENDING) {
                emit_transition(e, r, a, KILN_ALERT_PENDING, KILN_ALERT_INACTIVE, now, NAN);
                drop_alert(r, i);
                changed = 1;
                continue;
            }
            if (a->state == KILN_ALERT_RESOLVED) {
                if (now - a->resolved_at > RESOLVED_RETENTION_SECONDS) {
                    drop_alert(r, i);
                    continue;
                }
                i++;
                continue;
            }
            if (!keep) {
                a->state = KILN_ALERT_RESOLVED;
                a->resolved_at = now;
                emit_transition(e, r, a, KILN_ALERT_FIRING, KILN_ALERT_RESOLVED, now, NAN);
                changed = 1;
                i++;
                continue;
            }
        }
        if (a->state == KILN_ALERT_PENDING && now - a->active_at >= r->for_seconds) {
            a->state = KILN_ALERT_FIRING;
            a->fired_at = now;
            emit_transition(e, r, a, KILN_ALERT_PENDING, KILN_ALERT_FIRING, now, a->value);
            changed = 1;
        }
        i++;
    }

    notify_rule(e, r, now, changed, interval);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->eval_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rc != 0) {
        set_error(r, msg);
        if (err && errlen)
            snprintf(err, errlen, "rule '%s': %s", r->name, msg);
    }
    return rc;
}

static int eval_group(kiln_alert_engine_t *e, alert_group_t *g, double now, char *err, size_t errlen)
{
    int rc = 0;
    double interval = g->interval > 0 ? g->interval : e->default_interval > 0 ? e->default_interval : 60;
    for (size_t i = 0; i < g->nrules; i++) {
        char one[512];
        if (eval_rule(e, &g->rules[i], now, interval, one, sizeof one) != 0) {
            if (rc == 0 && err && errlen)
                snprintf(err, errlen, "group '%s': %s", g->name, one);
            rc = -1;
        }
    }
    return rc;
}

int kiln_alert_engine_evaluate(kiln_alert_engine_t *e, double now, char *err, size_t errlen)
{
    int rc = 0;
    if (err && errlen)
        err[0] = '\0';
    pthread_mutex_lock(&e->mu);
    for (size_t g = 0; e->rules && g < e->rules->ngroups; g++) {
        char one[600];
        if (eval_group(e, &e->rules->groups[g], now, one, sizeof one) != 0) {
            if (rc == 0 && err && errlen)
                snprintf(err, errlen, "%s", one);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* ---- Evaluation thread -------------------------------------------------------- */

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *eval_thread(void *arg)
{
    kiln_alert_engine_t *e = arg;
    pthread_mutex_lock(&e->mu);
    double start = wall_now();
    for (size_t g = 0; e->rules && g < e->rules->ngroups; g++)
        e->rules->groups[g].next_eval = start;
    while (!e->stop) {
        double now = wall_now();
        double next = now + 3600;
        for (size_t g = 0; e->rules && g < e->rules->ngroups; g++) {
            alert_group_t *grp = &e->rules->groups[g];
            double interval = grp->interval > 0 ? grp->interval : e->default_interval;
            if (grp->next_eval <= now) {
                char err[600];
                if (eval_group(e, grp, now, err, sizeof err) != 0)
                    fprintf(stderr, "kiln: alerts: %s\n", err); /* kept as the rule's lastError too */
                grp->next_eval += interval;
                if (grp->next_eval <= now) /* fell behind: skip missed rounds */
                    grp->next_eval = now + interval;
            }
            if (grp->next_eval < next)
                next = grp->next_eval;
        }
        struct timespec until;
        until.tv_sec = (time_t)next;
        until.tv_nsec = (long)((next - floor(next)) * 1e9);
        int rc = 0;
        while (!e->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&e->wake, &e->mu, &until);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int kiln_alert_engine_start(kiln_alert_engine_t *e, int default_interval_ms, char *err, size_t errlen)
{
    if (default_interval_ms <= 0) {
        if (err && errlen)
            snprintf(err, errlen, "alert evaluation interval must be positive, got %d ms",
                     default_interval_ms);
        return -1;
    }
    pthread_mutex_lock(&e->mu);
    if (e->running) {
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    e->default_interval = default_interval_ms / 1000.0;
    e->stop = 0;
    int rc = pthread_create(&e->thread, NULL, eval_thread, e);
    if (rc == 0)
        e->running = 1;
    pthread_mutex_unlock(&e->mu);
    if (rc != 0) {
        if (err && errlen)
            snprintf(err, errlen, "cannot start the alert evaluation thread: %s", strerror(rc));
        return -1;
    }
    return 0;
}

void kiln_alert_engine_stop(kiln_alert_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    if (!e->running) {
        pthread_mutex_unlock(&e->mu);
        return;
    }
    e->stop = 1;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_lock(&e->mu);
    e->running = 0;
    pthread_mutex_unlock(&e->mu);
}

/* ---- Read-outs -------------------------------------------------------------------- */

static int is_active(const alert_instance_t *a)
{
    return a->state == KILN_ALERT_PENDING || a->state == KILN_ALERT_FIRING;
}

char *kiln_alert_engine_metrics_text(kiln_alert_engine_t *e)
{
    alert_buf_t b = {0};
    alert_buf_puts(
        &b, "# HELP ALERTS Alerts that are pending or firing (kiln alert rules).\n# TYPE ALERTS gauge\n");
    pthread_mutex_lock(&e->mu);
    for (size_t g = 0; e->rules && g < e->rules->ngroups; g++)
        for (size_t r = 0; r < e->rules->groups[g].nrules; r++) {
            const alert_rule_t *rule = &e->rules->groups[g].rules[r];
            for (size_t i = 0; i < rule->nalerts; i++) {
                const alert_instance_t *a = &rule->alerts[i];
                if (!is_active(a))
                    continue;
                alert_buf_puts(&b, "ALERTS{alertname=\"");
                alert_buf_prom_escape(&b, rule->name);
                alert_buf_printf(&b, "\",alertstate=\"%s\"", kiln_alert_state_name(a->state));
                for (size_t l = 0; l < a->labels.n; l++) {
                    if (!strcmp(a->labels.names[l], "alertname") || !strcmp(a->labels.names[l], "alertstate"))
                        continue;
                    alert_buf_printf(&b, ",%s=\"", a->labels.names[l]);
                    alert_buf_prom_escape(&b, a->labels.values[l]);
                    alert_buf_puts(&b, "\"");
                }
                alert_buf_puts(&b, "} 1\n");
            }
        }
    pthread_mutex_unlock(&e->mu);
    return alert_buf_take(&b);
}

static void json_alert(alert_buf_t *b, const alert_instance_t *a)
{
    char at[40], val[40];
    alert_format_time(a->active_at, at, sizeof at);
    alert_format_value(a->value, val, sizeof val);
    alert_buf_puts(b, "{\"labels\":");
    alert_buf_json_labels(b, &a->labels);
    alert_buf_puts(b, ",\"annotations\":");
    alert_buf_json_labels(b, &a->annotations);
    alert_buf_printf(b, ",\"state\":\"%s\",\"activeAt\":\"%s\",\"value\":\"%s\"}",
                     kiln_alert_state_name(a->state), at, val);
}

/* Appends the rule's pending and firing alerts, comma-separated; *first
 * says whether nothing was written before (and is cleared once something is). */
static void json_active_alerts(alert_buf_t *b, const alert_rule_t *rule, int *first)
{
    for (size_t i = 0; i < rule->nalerts; i++) {
        if (!is_active(&rule->alerts[i]))
            continue;
        if (!*first)
            alert_buf_puts(b, ",");
        *first = 0;
        json_alert(b, &rule->alerts[i]);
    }
}

char *kiln_alert_engine_api_json(kiln_alert_engine_t *e)
{
    alert_buf_t b = {0};
    alert_buf_puts(&b, "{\"status\":\"success\",\"data\":{\"alerts\":[");
    int first = 1;
    pthread_mutex_lock(&e->mu);
    for (size_t g = 0; e->rules && g < e->rules->ngroups; g++)
        for (size_t r = 0; r < e->rules->groups[g].nrules; r++)
            json_active_alerts(&b, &e->rules->groups[g].rules[r], &first);
    pthread_mutex_unlock(&e->mu);
    alert_buf_puts(&b, "]}}");
    return alert_buf_take(&b);
}

static void json_kv_sources(alert_buf_t *b, const alert_kv_template_t *kv, size_t n)
{
    alert_buf_puts(b, "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            alert_buf_puts(b, ",");
        alert_buf_json_string(b, kv[i].name);
        alert_buf_puts(b, ":");
        alert_buf_json_string(b, kv[i].source);
    }
    alert_buf_puts(b, "}");
}

char *kiln_alert_engine_rules_json(kiln_alert_engine_t *e)
{
    alert_buf_t b = {0};
    alert_buf_puts(&b, "{\"status\":\"success\",\"data\":{\"groups\":[");
    pthread_mutex_lock(&e->mu);
    for (size_t g = 0; e->rules && g < e->rules->ngroups; g++) {
        const alert_group_t *grp = &e->rules->groups[g];
        if (g)
            alert_buf_puts(&b, ",");
        alert_buf_puts(&b, "{\"name\":");
        alert_buf_json_string(&b, grp->name);
        alert_buf_puts(&b, ",\"file\":");
        alert_buf_json_string(&b, e->rules->file ? e->rules->file : "");
        alert_buf_printf(&b, ",\"interval\":%g,\"rules\":[",
                         grp->interval > 0 ? grp->interval : e->default_interval);
        for (size_t r = 0; r < grp->nrules; r++) {
            const alert_rule_t *rule = &grp->rules[r];
            kiln_alert_state_t st = KILN_ALERT_INACTIVE;
            for (size_t i = 0; i < rule->nalerts; i++)
                if (is_active(&rule->alerts[i]) && rule->alerts[i].state > st)
                    st = rule->alerts[i].state;
            if (r)
                alert_buf_puts(&b, ",");
            alert_buf_printf(&b,
                             "{\"type\":\"alerting\",\"state\":\"%s\",\"name\":", kiln_alert_state_name(st));
            alert_buf_json_string(&b, rule->name);
            alert_buf_puts(&b, ",\"query\":");
            alert_buf_json_string(&b, rule->expr_text);
            alert_buf_printf(&b, ",\"duration\":%g,\"keepFiringFor\":%g,\"labels\":", rule->for_seconds,
                             rule->keep_firing_for);
            json_kv_sources(&b, rule->labels, rule->nlabels);
            alert_buf_puts(&b, ",\"annotations\":");
            json_kv_sources(&b, rule->annotations, rule->nannotations);
            alert_buf_puts(&b, ",\"alerts\":[");
            int first = 1;
            json_active_alerts(&b, rule, &first);
            char at[40];
            alert_format_time(rule->last_eval, at, sizeof at);
            alert_buf_printf(&b, "],\"health\":\"%s\",\"lastError\":",
                             rule->last_eval == 0 ? "unknown"
                             : rule->last_error   ? "err"
                                                  : "ok");
            alert_buf_json_string(&b, rule->last_error ? rule->last_error : "");
            alert_buf_printf(&b, ",\"lastEvaluation\":\"%s\",\"evaluationTime\":%g}", at, rule->eval_seconds);
        }
        alert_buf_puts(&b, "]}");
    }
    pthread_mutex_unlock(&e->mu);
    alert_buf_puts(&b, "]}}");
    return alert_buf_take(&b);
}

kiln_alert_state_t kiln_alert_engine_state_of(kiln_alert_engine_t *e, const char *alertname,
                                              const char *label, const char *value, double *value_out)
{
    kiln_alert_state_t st = KILN_ALERT_INACTIVE;
    pthread_mutex_lock(&e->mu);
    for (size_t g = 0; e->rules && g < e->rules->ngroups; g++)
        for (size_t r = 0; r < e->rules->groups[g].nrules; r++) {
            const alert_rule_t *rule = &e->rules->groups[g].rules[r];
            if (strcmp(rule->name, alertname))
                continue;
            for (size_t i = 0; i < rule->nalerts; i++) {
                const alert_instance_t *a = &rule->alerts[i];
                const char *v = label ? alert_labels_get(&a->labels, label) : NULL;
                if (label && (!v || !value || strcmp(v, value)))
                    continue;
                st = a->state;
                if (value_out)
                    *value_out = a->value;
            }
        }
    pthread_mutex_unlock(&e->mu);
    return st;
}

size_t kiln_alert_engine_count(kiln_alert_engine_t *e, kiln_alert_state_t state)
{
    size_t n = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t g = 0; e->rules && g < e->rules->ngroups; g++)
        for (size_t r = 0; r < e->rules->groups[g].nrules; r++)
            for (size_t i = 0; i < e->rules->groups[g].rules[r].nalerts; i++)
                if (e->rules->groups[g].rules[r].alerts[i].state == state)
                    n++;
    pthread_mutex_unlock(&e->mu);
    return n;
}
