/*
 * test_alerts_engine.c - unit tests of the alert state machine, driven by
 * synthetic series through the sample-source interface: a GPU temperature
 * ramp through inactive -> pending -> firing -> resolved with `for`, a
 * pending alert that clears, keep_firing_for, for: 0, the range functions'
 * values, templated annotations, the ALERTS exposition, the
 * /api/v1/alerts and /api/v1/rules JSON, source failures, and the
 * evaluation thread.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "monitor/alert_internal.h"

/* ---- A synthetic sample source ------------------------------------------ */

#define MAX_SERIES 8
#define MAX_SAMPLES 4096

typedef struct fake_series {
    const char *names[4];
    const char *values[4];
    size_t nlabels;
    double t[MAX_SAMPLES];
    double v[MAX_SAMPLES];
    size_t n;
} fake_series_t;

typedef struct fake_source {
    fake_series_t series[MAX_SERIES];
    size_t n;
    int fail;    /* answer with an error */
    int queries; /* how many select() calls */
} fake_source_t;

static fake_series_t *fake_add(fake_source_t *f, const char *metric, const char *lname, const char *lvalue)
{
    fake_series_t *s = &f->series[f->n++];
    memset(s, 0, sizeof *s);
    s->names[0] = "__name__";
    s->values[0] = metric;
    s->nlabels = 1;
    if (lname) {
        s->names[1] = lname;
        s->values[1] = lvalue;
        s->nlabels = 2;
    }
    return s;
}

static void fake_push(fake_series_t *s, double t, double v)
{
    s->t[s->n] = t;
    s->v[s->n] = v;
    s->n++;
}

static int fake_select(void *ctx, const kiln_alert_selector_t *sel, double start, double end,
                       kiln_series_set_t *out, char *err, size_t errlen)
{
    fake_source_t *f = ctx;
    f->queries++;
    if (f->fail) {
        snprintf(err, errlen, "history store is locked");
        return -1;
    }
    for (size_t i = 0; i < f->n; i++) {
        fake_series_t *s = &f->series[i];
        if (!kiln_alert_selector_matches(sel, s->names, s->values, s->nlabels))
            continue;
        kiln_series_t *o = kiln_series_set_add(out, s->names, s->values, s->nlabels);
        if (!o)
            return -1;
        for (size_t k = 0; k < s->n; k++)
            if (s->t[k] >= start && s->t[k] <= end && kiln_series_add_sample(o, s->t[k], s->v[k]) != 0)
                return -1;
    }
    return 0;
}

/* ---- Transition log ---------------------------------------------------------- */

typedef struct tr_log {
    char lines[64][160];
    size_t n;
} tr_log_t;

static void log_transition(void *ctx, const kiln_alert_transition_t *tr)
{
    tr_log_t *log = ctx;
    if (log->n < 64)
        snprintf(log->lines[log->n++], sizeof log->lines[0], "%s %s->%s @%g", tr->alertname,
                 kiln_alert_state_name(tr->from), kiln_alert_state_name(tr->to), tr->time);
}

static kiln_alert_engine_t *make_engine(const char *yaml, fake_source_t *src, tr_log_t *log)
{
    kiln_alert_rules_t *rules = NULL;
    char err[512];
    if (kiln_alert_rules_parse(yaml, strlen(yaml), "test.yml", &rules, err, sizeof err) != 0) {
        fprintf(stderr, "rules: %s\n", err);
        return NULL;
    }
    kiln_alert_source_t s = {fake_select, src};
    kiln_alert_engine_t *e = kiln_alert_engine_new(rules, &s);
    if (e && log)
        kiln_alert_engine_set_transition_hook(e, log_transition, log);
    return e;
}

static kiln_alert_state_t state_at(kiln_alert_engine_t *e, double now, const char *alert, const char *gpu)
{
    char err[300];
    int rc = kiln_alert_engine_evaluate(e, now, err, sizeof err);
    CHECK_MSG(rc == 0, "evaluate at %g: %s", now, err);
    return kiln_alert_engine_state_of(e, alert, gpu ? "gpu_uuid" : NULL, gpu, NULL);
}

static const double T0 = 1764072000.0; /* 2025-11-25T12:00:00Z */

/* The temperature of a GPU heating from 60 C by 1 C every 15 s up to 95 C,
 * holding for 3 minutes, then cooling to 60 C at once (the partner's fake
 * NVML ramp has the same shape). */
static double ramp(double t)
{
    double dt = t - T0;
    if (dt < 0)
        return 60;
    double heat = 60 + floor(dt / 15);
    if (heat < 95)
        return heat;
    return dt < 35 * 15 + 180 ? 95 : 60;
}

static void test_ramp_for(void)
{
    static fake_source_t src;
    memset(&src, 0, sizeof src);
    fake_series_t *s = fake_add(&src, "kiln_gpu_temperature_celsius", "gpu_uuid", "GPU-0");
    fake_series_t *cold = fake_add(&src, "kiln_gpu_temperature_celsius", "gpu_uuid", "GPU-1");
    for (double t = T0; t <= T0 + 1800; t += 15) {
        fake_push(s, t, ramp(t));
        fake_push(cold, t, 40);
    }
    tr_log_t log = {0};
    kiln_alert_engine_t *e =
        make_engine("groups:\n- name: gpu\n  rules:\n  - alert: GpuHot\n"
                    "    expr: kiln_gpu_temperature_celsius > 85\n    for: 2m\n"
                    "    labels: {severity: page}\n"
                    "    annotations: {summary: 'GPU {{ $labels.gpu_uuid }} at {{ $value }} C'}\n",
                    &src, &log);
    CHECK(e != NULL);
    if (!e)
        return;
    /* 86 C is reached at T0 + 26*15 = T0+390. */
    double breach = T0 + 390;
    CHECK(state_at(e, breach - 15, "GpuHot", "GPU-0") == KILN_ALERT_INACTIVE);
    CHECK(state_at(e, breach, "GpuHot", "GPU-0") == KILN_ALERT_PENDING);
    CHECK(state_at(e, breach + 60, "GpuHot", "GPU-0") == KILN_ALERT_PENDING);
    CHECK(state_at(e, breach + 105, "GpuHot", "GPU-0") == KILN_ALERT_PENDING);
    CHECK(state_at(e, breach + 120, "GpuHot", "GPU-0") == KILN_ALERT_FIRING);
    CHECK(kiln_alert_engine_state_of(e, "GpuHot", "gpu_uuid", "GPU-1", NULL) == KILN_ALERT_INACTIVE);
    double v = 0;
    kiln_alert_engine_state_of(e, "GpuHot", "gpu_uuid", "GPU-0", &v);
    CHECK_NEAR(v, 94, 1e-9);

    /* The exposition and the API while firing. */
    char *m = kiln_alert_engine_metrics_text(e);
    CHECK(m && strstr(m, "# TYPE ALERTS gauge\n"));
    CHECK(m &&
          strstr(
              m,
              "ALERTS{alertname=\"GpuHot\",alertstate=\"firing\",gpu_uuid=\"GPU-0\",severity=\"page\"} 1\n"));
    CHECK(m && !strstr(m, "GPU-1"));
    free(m);
    char *api = kiln_alert_engine_api_json(e);
    json_error_t jerr;
    json_t *j = api ? json_loads(api, 0, &jerr) : NULL;
    CHECK_MSG(j != NULL, "api json: %s", api ? api : "(null)");
    if (j) {
        CHECK(!strcmp(json_string_value(json_object_get(j, "status")), "success"));
        json_t *alerts = json_object_get(json_object_get(j, "data"), "alerts");
        CHECK(json_array_size(alerts) == 1);
        json_t *a = json_array_get(alerts, 0);
        CHECK(!strcmp(json_string_value(json_object_get(a, "state")), "firing"));
        CHECK(!strcmp(json_string_value(json_object_get(a, "value")), "94"));
        CHECK(!strcmp(json_string_value(json_object_get(a, "activeAt")), "2025-11-25T12:06:30.000Z"));
        json_t *labels = json_object_get(a, "labels");
        CHECK(!strcmp(json_string_value(json_object_get(labels, "alertname")), "GpuHot"));
        CHECK(json_object_get(labels, "__name__") == NULL);
        CHECK(!strcmp(json_string_value(json_object_get(json_object_get(a, "annotations"), "summary")),
                      "GPU GPU-0 at 94 C"));
        json_decref(j);
    }
    free(api);

    /* Cooling at T0 + 35*15 + 180 = T0+705 resolves it. */
    CHECK(state_at(e, T0 + 690, "GpuHot", "GPU-0") == KILN_ALERT_FIRING);
    CHECK(state_at(e, T0 + 705, "GpuHot", "GPU-0") == KILN_ALERT_RESOLVED);
    m = kiln_alert_engine_metrics_text(e);
    CHECK(m && !strstr(m, "ALERTS{"));
    free(m);
    CHECK(kiln_alert_engine_count(e, KILN_ALERT_RESOLVED) == 1);
    /* Resolved alerts are forgotten after 15 minutes. */
    CHECK(state_at(e, T0 + 705 + 901, "GpuHot", "GPU-0") == KILN_ALERT_INACTIVE);
    CHECK(kiln_alert_engine_count(e, KILN_ALERT_RESOLVED) == 0);

    CHECK(log.n == 3);
    CHECK(log.n > 0 && !strcmp(log.lines[0], "GpuHot inactive->pending @1.76407e+09"));
    CHECK(log.n > 1 && strstr(log.lines[1], "pending->firing"));
    CHECK(log.n > 2 && strstr(log.lines[2], "firing->resolved"));
    kiln_alert_engine_free(e);
}

static void test_pending_clears_and_keep_firing(void)
{
    static fake_source_t src;
    memset(&src, 0, sizeof src);
    fake_series_t *s = fake_add(&src, "load", NULL, NULL);
    /* high 0..60 s, low 75..135, high 150..300, low after */
    for (double t = 0; t <= 600; t += 15)
        fake_push(s, T0 + t, (t <= 60 || (t >= 150 && t <= 300)) ? 10 : 0);
    tr_log_t log = {0};
    kiln_alert_engine_t *e = make_engine("groups:\n- name: g\n  rules:\n  - alert: Busy\n    expr: load > 5\n"
                                         "    for: 1m30s\n    keep_firing_for: 1m\n",
                                         &src, &log);
    CHECK(e != NULL);
    if (!e)
        return;
    CHECK(state_at(e, T0, "Busy", NULL) == KILN_ALERT_PENDING);
    CHECK(state_at(e, T0 + 60, "Busy", NULL) == KILN_ALERT_PENDING);
    CHECK(state_at(e, T0 + 75, "Busy", NULL) == KILN_ALERT_INACTIVE); /* cleared before `for` */
    CHECK(kiln_alert_engine_count(e, KILN_ALERT_PENDING) == 0);
    CHECK(state_at(e, T0 + 150, "Busy", NULL) == KILN_ALERT_PENDING);
    CHECK(state_at(e, T0 + 225, "Busy", NULL) == KILN_ALERT_PENDING);
    CHECK(state_at(e, T0 + 240, "Busy", NULL) == KILN_ALERT_FIRING);
    CHECK(state_at(e, T0 + 300, "Busy", NULL) == KILN_ALERT_FIRING);
    /* low from 315: keep_firing_for holds it 60 s more */
    CHECK(state_at(e, T0 + 315, "Busy", NULL) == KILN_ALERT_FIRING);
    CHECK(state_at(e, T0 + 360, "Busy", NULL) == KILN_ALERT_FIRING);
    CHECK(state_at(e, T0 + 375, "Busy", NULL) == KILN_ALERT_RESOLVED);
    CHECK(log.n == 5);
    CHECK(log.n > 1 && strstr(log.lines[1], "pending->inactive"));
    CHECK(log.n > 4 && strstr(log.lines[4], "firing->resolved @1.76407e+09"));
    kiln_alert_engine_free(e);

    /* keep_firing_for: a breach again during the grace period resets it. */
    memset(&log, 0, sizeof log);
    e = make_engine(
        "groups:\n- name: g\n  rules:\n  - alert: Busy\n    expr: load > 5\n    keep_firing_for: 1m\n", &src,
        &log);
    CHECK(state_at(e, T0 + 60, "Busy", NULL) == KILN_ALERT_FIRING); /* for: 0 fires at once */
    CHECK(state_at(e, T0 + 90, "Busy", NULL) == KILN_ALERT_FIRING);
    CHECK(state_at(e, T0 + 150, "Busy", NULL) == KILN_ALERT_FIRING); /* back before 60 s passed */
    CHECK(state_at(e, T0 + 330, "Busy", NULL) == KILN_ALERT_FIRING); /* grace counts from 330 */
    CHECK(state_at(e, T0 + 375, "Busy", NULL) == KILN_ALERT_FIRING);
    CHECK(state_at(e, T0 + 390, "Busy", NULL) == KILN_ALERT_RESOLVED);
    CHECK(log.n == 3); /* inactive->pending, pending->firing, firing->resolved */
    kiln_alert_engine_free(e);
}

static void test_range_functions(void)
{
    static fake_source_t src;
    memset(&src, 0, sizeof src);
    fake_series_t *g = fake_add(&src, "util", "gpu_uuid", "GPU-0");
    fake_series_t *c = fake_add(&src, "requests_total", NULL, NULL);
    /* util: 0.1, 0.2, ..., one a minute; requests: +30 every 15 s with a reset */
    for (int i = 0; i < 10; i++)
        fake_push(g, T0 + 60 * i, 0.1 * (i + 1));
    double total = 0;
    for (int i = 0; i <= 40; i++) {
        if (i == 20)
            total = 0; /* restart: the counter starts over */
        fake_push(c, T0 + 15 * i, total);
        total += 30;
    }
    kiln_alert_engine_t *e = make_engine("groups:\n- name: g\n  rules:\n"
                                         "  - alert: Avg\n    expr: avg_over_time(util[5m]) > 0\n"
                                         "  - alert: Max\n    expr: max_over_time(util[5m]) > 0\n"
                                         "  - alert: Min\n    expr: min_over_time(util[5m]) > 0\n"
                                         "  - alert: Rate\n    expr: rate(requests_total[5m]) > 1\n"
                                         "  - alert: NotYet\n    expr: rate(requests_total[5m]) > 100\n",
                                         &src, NULL);
    CHECK(e != NULL);
    if (!e)
        return;
    double now = T0 + 540; /* util samples in (240, 540]: 0.6..1.0 (the range is open on the left) */
    char err[200];
    CHECK(kiln_alert_engine_evaluate(e, now, err, sizeof err) == 0);
    double v = 0;
    CHECK(kiln_alert_engine_state_of(e, "Avg", NULL, NULL, &v) == KILN_ALERT_FIRING);
    CHECK_NEAR(v, 0.8, 1e-9);
    CHECK(kiln_alert_engine_state_of(e, "Max", NULL, NULL, &v) == KILN_ALERT_FIRING);
    CHECK_NEAR(v, 1.0, 1e-9);
    CHECK(kiln_alert_engine_state_of(e, "Min", NULL, NULL, &v) == KILN_ALERT_FIRING);
    CHECK_NEAR(v, 0.6, 1e-9);
    /* Samples 255..540 hold 510..570, 0 (the reset at 300), 30..480: the
     * increase is 480 - 510 + 570 = 540 over 285 s of samples, extrapolated
     * by 15 s to the start of the window (Prometheus's rate). */
    CHECK(kiln_alert_engine_state_of(e, "Rate", NULL, NULL, &v) == KILN_ALERT_FIRING);
    CHECK_NEAR(v, 540.0 / 285.0, 1e-9);
    CHECK(kiln_alert_engine_state_of(e, "NotYet", NULL, NULL, NULL) == KILN_ALERT_INACTIVE);
    /* The alert of a range function has no __name__, only the other labels. */
    char *api = kiln_alert_engine_api_json(e);
    CHECK(api && strstr(api, "\"labels\":{\"alertname\":\"Avg\",\"gpu_uuid\":\"GPU-0\"}"));
    free(api);
    /* Too few samples for rate: no result, no alert. */
    CHECK(kiln_alert_engine_evaluate(e, T0 + 10, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_state_of(e, "Rate", NULL, NULL, NULL) == KILN_ALERT_RESOLVED);
    kiln_alert_engine_free(e);
}

static void test_errors_and_rules_json(void)
{
    static fake_source_t src;
    memset(&src, 0, sizeof src);
    fake_series_t *s = fake_add(&src, "up", NULL, NULL);
    fake_push(s, T0, 0);
    kiln_alert_engine_t *e = make_engine(
        "groups:\n- name: g\n  interval: 30s\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 5m\n",
        &src, NULL);
    CHECK(e != NULL);
    if (!e)
        return;
    char *rj = kiln_alert_engine_rules_json(e);
    CHECK(rj && strstr(rj, "\"health\":\"unknown\""));
    free(rj);
    char err[300];
    src.fail = 1;
    CHECK(kiln_alert_engine_evaluate(e, T0, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "group 'g': rule 'Down': sample source: history store is locked") != NULL, "%s",
              err);
    rj = kiln_alert_engine_rules_json(e);
    json_error_t jerr;
    json_t *j = rj ? json_loads(rj, 0, &jerr) : NULL;
    CHECK_MSG(j != NULL, "rules json: %s", rj ? rj : "(null)");
    if (j) {
        json_t *r = json_array_get(
            json_object_get(json_array_get(json_object_get(json_object_get(j, "data"), "groups"), 0),
                            "rules"),
            0);
        CHECK(!strcmp(json_string_value(json_object_get(r, "health")), "err"));
        CHECK(!strcmp(json_string_value(json_object_get(r, "query")), "up == 0"));
        CHECK(json_number_value(json_object_get(r, "duration")) == 300);
        CHECK(strstr(json_string_value(json_object_get(r, "lastError")), "locked") != NULL);
        json_decref(j);
    }
    free(rj);
    src.fail = 0;
    CHECK(kiln_alert_engine_evaluate(e, T0, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_state_of(e, "Down", NULL, NULL, NULL) == KILN_ALERT_PENDING);
    rj = kiln_alert_engine_rules_json(e);
    CHECK(rj && strstr(rj, "\"health\":\"ok\"") && strstr(rj, "\"state\":\"pending\""));
    free(rj);
    /* Lookback: a sample older than 5 minutes no longer counts. */
    CHECK(kiln_alert_engine_evaluate(e, T0 + 301, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_state_of(e, "Down", NULL, NULL, NULL) == KILN_ALERT_INACTIVE);
    kiln_alert_engine_free(e);

    /* Two series that differ only by name collide once the name is dropped. */
    memset(&src, 0, sizeof src);
    fake_push(fake_add(&src, "a_total", NULL, NULL), T0, 1);
    fake_push(fake_add(&src, "b_total", NULL, NULL), T0, 1);
    e = make_engine("groups:\n- name: g\n  rules:\n  - alert: Dup\n    expr: "
                    "max_over_time({__name__=~\".*_total\"}[1m]) > 0\n",
                    &src, NULL);
    CHECK(e && kiln_alert_engine_evaluate(e, T0, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "same labelset") != NULL, "%s", err);
    kiln_alert_engine_free(e);

    /* An engine with no rules answers empty documents. */
    kiln_alert_engine_t *none = kiln_alert_engine_new(NULL, NULL);
    CHECK(none && kiln_alert_engine_evaluate(none, T0, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_start(none, 10, err, sizeof err) == 0); /* a thread with nothing to do */
    kiln_alert_engine_stop(none);
    char *api = kiln_alert_engine_api_json(none);
    CHECK(api && !strcmp(api, "{\"status\":\"success\",\"data\":{\"alerts\":[]}}"));
    free(api);
    kiln_alert_engine_free(none);
}

static void test_thread(void)
{
    static fake_source_t src;
    memset(&src, 0, sizeof src);
    kiln_alert_engine_t *e =
        make_engine("groups:\n- name: g\n  rules:\n  - alert: X\n    expr: up == 0\n", &src, NULL);
    CHECK(e != NULL);
    if (!e)
        return;
    char err[200];
    CHECK(kiln_alert_engine_start(e, 0, err, sizeof err) == -1);
    CHECK(kiln_alert_engine_start(e, 20, err, sizeof err) == 0);
    usleep(150 * 1000);
    kiln_alert_engine_stop(e);
    CHECK_MSG(src.queries >= 3, "queries %d", src.queries);
    int q = src.queries;
    usleep(50 * 1000);
    CHECK(src.queries == q); /* stopped means stopped */
    kiln_alert_engine_free(e);
}

int main(void)
{
    test_ramp_for();
    test_pending_clears_and_keep_firing();
    test_range_functions();
    test_errors_and_rules_json();
    test_thread();
    return check_finish();
}
