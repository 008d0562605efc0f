/*
 * top.c - the data side of `kiln top` (see top.h): a forgiving but careful
 * parser of the Prometheus text format, the reduction of a scrape into the
 * rows the screen shows, rates between two scrapes, the alerts JSON, and a
 * plain-text rendering for --once.
 *
 * GPUs are found from kiln_gpu_up (which carries gpu_index and name) and
 * nv_gpu_utilization, so a GPU that lost some metrics still shows its row.
 */
#include "monitor/top.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Text format ---------------------------------------------------------------- */

static int perr(char *err, size_t errlen, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(char *err, size_t errlen, size_t line, const char *fmt, ...)
{
    if (err && errlen) {
        char what[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(err, errlen, "line %zu: %s", line, what);
    }
    return -1;
}

static void sample_free(kiln_prom_sample_t *s)
{
    free(s->name);
    for (size_t i = 0; i < s->nlabels; i++) {
        free(s->label_names[i]);
        free(s->label_values[i]);
    }
    free(s->label_names);
    free(s->label_values);
}

void kiln_prom_set_free(kiln_prom_set_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        sample_free(&set->samples[i]);
    free(set->samples);
    memset(set, 0, sizeof *set);
}

const char *kiln_prom_label(const kiln_prom_sample_t *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (!strcmp(s->label_names[i], name))
            return s->label_values[i];
    return NULL;
}

static int add_label(kiln_prom_sample_t *s, const char *name, size_t nlen, const char *value, size_t vlen)
{
    char **nn = realloc(s->label_names, (s->nlabels + 1) * sizeof *nn);
    if (!nn)
        return -1;
    s->label_names = nn;
    char **nv = realloc(s->label_values, (s->nlabels + 1) * sizeof *nv);
    if (!nv)
        return -1;
    s->label_values = nv;
    char *n = strndup(name, nlen), *v = strndup(value, vlen);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    s->label_names[s->nlabels] = n;
    s->label_values[s->nlabels] = v;
    s->nlabels++;
    return 0;
}

/* Parses one sample line [p, end). */
static int parse_line(const char *p, const char *end, size_t lineno, kiln_prom_sample_t *s, char *err,
                      size_t errlen)
{
    const char *q = p;
    if (!(isalpha((unsigned char)*q) || *q == '_' || *q == ':'))
        return perr(err, errlen, lineno, "expected a metric name");
    while (q < end && (isalnum((unsigned char)*q) || *q == '_' || *q == ':'))
        q++;
    s->name = strndup(p, (size_t)(q - p));
    if (!s->name)
        return perr(err, errlen, lineno, "out of memory");
    if (q < end && *q == '{') {
        q++;
        char value[1024];
        for (;;) {
            while (q < end && (*q == ' ' || *q == ','))
                q++;
            if (q < end && *q == '}') {
                q++;
                break;
            }
            const char *ln = q;
            while (q < end && (isalnum((unsigned char)*q) || *q == '_'))
                q++;
            size_t nlen = (size_t)(q - ln);
            if (nlen == 0 || q + 1 >= end || *q != '=' || q[1] != '"')
                return perr(err, errlen, lineno, "bad label in %s{...}", s->name);
            q += 2;
            size_t vlen = 0;
            while (q < end && *q != '"') {
                char c = *q++;
                if (c == '\\' && q < end) {
                    c = *q++;
                    if (c == 'n')
                        c = '\n';
                }
                if (vlen + 1 >= sizeof value)
                    return perr(err, errlen, lineno, "label value too long");
                value[vlen++] = c;
            }
            if (q >= end)
                return perr(err, errlen, lineno, "unterminated label value");
            q++; /* closing quote */
            if (add_label(s, ln, nlen, value, vlen) != 0)
                return perr(err, errlen, lineno, "out of memory");
        }
    }
    while (q < end && *q == ' ')
        q++;
    char num[64];
    size_t n = 0;
    while (q < end && *q != ' ' && n + 1 < sizeof num)
        num[n++] = *q++;
    num[n] = '\0';
    if (n == 0)
        return perr(err, errlen, lineno, "no value for %s", s->name);
    char *e;
    errno = 0;
    double v = strtod(num, &e);
    if (*e || errno == ERANGE)
        return perr(err, errlen, lineno, "bad value '%s' for %s", num, s->name);
    s->value = v; /* strtod reads "NaN", "+Inf", "-Inf" as the format writes them */
    return 0;
}

int kiln_prom_parse(const char *text, size_t len, kiln_prom_set_t *out, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    size_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t'))
            q++;
        const char *te = le;
        while (te > q && (te[-1] == '\r' || te[-1] == ' '))
            te--;
        if (q < te && *q != '#') {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 128;
                kiln_prom_sample_t *ns = realloc(out->samples, cap * sizeof *ns);
                if (!ns)
                    return perr(err, errlen, lineno, "out of memory");
                out->samples = ns;
                out->cap = cap;
            }
            kiln_prom_sample_t *s = &out->samples[out->n];
            memset(s, 0, sizeof *s);
            if (parse_line(q, te, lineno, s, err, errlen) != 0) {
                sample_free(s);
                return -1;
            }
            out->n++;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* ---- Snapshot ------------------------------------------------------------------ */

static void copy_text(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static kiln_top_gpu_t *gpu_of(kiln_top_snapshot_t *snap, const char *uuid)
{
    if (!uuid)
        return NULL;
    for (size_t i = 0; i < snap->ngpus; i++)
        if (!strcmp(snap->gpus[i].uuid, uuid))
            return &snap->gpus[i];
    snap->gpus_total++;
    if (snap->ngpus == KILN_TOP_MAX_GPUS)
        return NULL;
    kiln_top_gpu_t *g = &snap->gpus[snap->ngpus++];
    copy_text(g->uuid, sizeof g->uuid, uuid);
    return g;
}

static kiln_top_model_t *model_of(kiln_top_snapshot_t *snap, const kiln_prom_sample_t *s)
{
    const char *m = kiln_prom_label(s, "model");
    const char *v = kiln_prom_label(s, "version");
    if (!m)
        return NULL;
    for (size_t i = 0; i < snap->nmodels; i++)
        if (!strcmp(snap->models[i].model, m) && !strcmp(snap->models[i].version, v ? v : ""))
            return &snap->models[i];
    if (snap->nmodels == KILN_TOP_MAX_MODELS)
        return NULL;
    kiln_top_model_t *r = &snap->models[snap->nmodels++];
    copy_text(r->model, sizeof r->model, m);
    copy_text(r->version, sizeof r->version, v);
    return r;
}

static void set(kiln_top_value_t *dst, double v)
{
    dst->v = v;
    dst->ok = !isnan(v);
}

void kiln_top_build(const kiln_prom_set_t *metrics, const kiln_top_snapshot_t *prev, double now,
                    kiln_top_snapshot_t *out)
{
    memset(out, 0, sizeof *out);
    out->time = now;
    for (size_t i = 0; i < metrics->n; i++) {
        const kiln_prom_sample_t *s = &metrics->samples[i];
        const char *n = s->name;
        if (!strcmp(n, "nv_cpu_utilization"))
            set(&out->cpu_util, s->value);
        else if (!strcmp(n, "nv_cpu_memory_used_bytes"))
            set(&out->mem_used, s->value);
        else if (!strcmp(n, "nv_cpu_memory_total_bytes"))
            set(&out->mem_total, s->value);
        else if (!strncmp(n, "nv_gpu_", 7) || !strncmp(n, "kiln_gpu_", 9)) {
            const char *uuid = kiln_prom_label(s, "gpu_uuid");
            kiln_top_gpu_t *g = uuid ? gpu_of(out, uuid) : NULL;
            if (!g)
                continue;
            if (!strcmp(n, "kiln_gpu_up"))
                copy_text(g->name, sizeof g->name, kiln_prom_label(s, "name"));
            else if (!strcmp(n, "nv_gpu_utilization"))
                set(&g->util, s->value);
            else if (!strcmp(n, "nv_gpu_memory_used_bytes"))
                set(&g->mem_used, s->value);
            else if (!strcmp(n, "nv_gpu_memory_total_bytes"))
                set(&g->mem_total, s->value);
            else if (!strcmp(n, "kiln_gpu_temperature_celsius"))
                set(&g->temp, s->value);
            else if (!strcmp(n, "nv_gpu_power_usage"))
                set(&g->power, s->value);
            else if (!strcmp(n, "nv_gpu_power_limit"))
                set(&g->power_limit, s->value);
        } else if (!strncmp(n, "nv_inference_", 13) || !strcmp(n, "kiln_inference_request_latency_us")) {
            kiln_top_model_t *m = model_of(out, s);
            if (!m)
                continue;
            if (!strcmp(n, "nv_inference_count"))
                m->count = s->value;
            else if (!strcmp(n, "nv_inference_request_success"))
                m->success = s->value;
            else if (!strcmp(n, "nv_inference_queue_duration_us"))
                m->queue_us = s->value;
            else if (!strcmp(n, "nv_inference_pending_request_count"))
                set(&m->pending, s->value);
            else if (!strcmp(n, "kiln_inference_request_latency_us")) {
                const char *q = kiln_prom_label(s, "quantile");
                if (q && !strcmp(q, "0.5"))
                    set(&m->p50_ms, s->value / 1000.0);
                else if (q && !strcmp(q, "0.99"))
                    set(&m->p99_ms, s->value / 1000.0);
            }
        }
    }
    /* Rates from the previous snapshot of the same model. */
    for (size_t i = 0; prev && i < out->nmodels; i++) {
        kiln_top_model_t *m = &out->models[i];
        for (size_t j = 0; j < prev->nmodels; j++) {
            const kiln_top_model_t *p = &prev->models[j];
            if (strcmp(p->model, m->model) || strcmp(p->version, m->version))
                continue;
            double dt = now - prev->time;
            if (dt > 0 && m->count >= p->count)
                set(&m->rps, (m->count - p->count) / dt);
            if (m->success > p->success && m->queue_us >= p->queue_us)
                set(&m->queue_ms, (m->queue_us - p->queue_us) / (m->success - p->success) / 1000.0);
        }
    }
}

int kiln_top_read_alerts(const char *body, size_t len, kiln_top_snapshot_t *snap, char *err, size_t errlen)
{
    json_error_t jerr;
    snap->nalerts = 0;
    snap->alerts_ok = 0;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "alerts: not JSON (%s)", jerr.text);
        return -1;
    }
    json_t *alerts = json_object_get(json_object_get(root, "data"), "alerts");
    if (!json_is_array(alerts)) {
        json_decref(root);
        snprintf(err, errlen, "alerts: no data.alerts array");
        return -1;
    }
    size_t i;
    json_t *a;
    json_array_foreach(alerts, i, a)
    {
        if (snap->nalerts == KILN_TOP_MAX_ALERTS)
            break;
        kiln_top_alert_t *t = &snap->alerts[snap->nalerts];
        memset(t, 0, sizeof *t);
        json_t *labels = json_object_get(a, "labels");
        copy_text(t->state, sizeof t->state, json_string_value(json_object_get(a, "state")));
        copy_text(t->name, sizeof t->name, json_string_value(json_object_get(labels, "alertname")));
        json_t *ann = json_object_get(a, "annotations");
        const char *summary = json_string_value(json_object_get(ann, "summary"));
        copy_text(t->summary, sizeof t->summary,
                  summary ? summary : json_string_value(json_object_get(ann, "description")));
        const char *k;
        json_t *v;
        size_t used = 0;
        json_object_foreach(labels, k, v)
        {
            if (!strcmp(k, "alertname") || !json_is_string(v))
                continue;
            int w = snprintf(t->labels + used, sizeof t->labels - used, "%s%s=%s", used ? " " : "", k,
                             json_string_value(v));
            if (w < 0 || (size_t)w >= sizeof t->labels - used) {
                used = sizeof t->labels - 1;
                break;
            }
            used += (size_t)w;
        }
        snap->nalerts++;
    }
    snap->alerts_ok = 1;
    json_decref(root);
    return 0;
}

void kiln_top_bytes(double bytes, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static const char *fmt_value(const kiln_top_value_t *v, const char *fmt, double scale, char *buf, size_t len)
{
    if (!v->ok)
        return "-";
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, len, fmt, v->v * scale); /* fmt is always a literal of this file */
#pragma GCC diagnostic pop
    return buf;
}

void kiln_top_print(const kiln_top_snapshot_t *s, const char *source, FILE *out)
{
    char a[32], b[32], c[32], d[32], e[32];
    time_t t = (time_t)s->time;
    struct tm tm;
    localtime_r(&t, &tm);
    fprintf(out, "kiln top  %s  %02d:%02d:%02d\n", source, tm.tm_hour, tm.tm_min, tm.tm_sec);
    kiln_top_bytes(s->mem_used.v, a, sizeof a);
    kiln_top_bytes(s->mem_total.v, b, sizeof b);
    fprintf(out, "host  cpu %s%%  memory %s / %s\n", fmt_value(&s->cpu_util, "%.0f", 100, c, sizeof c),
            s->mem_used.ok ? a : "-", s->mem_total.ok ? b : "-");
    if (s->ngpus == 0)
        fprintf(out, "gpus  none (no NVIDIA GPU or driver found)\n");
    for (size_t i = 0; i < s->ngpus; i++) {
        const kiln_top_gpu_t *g = &s->gpus[i];
        kiln_top_bytes(g->mem_used.v, a, sizeof a);
        kiln_top_bytes(g->mem_total.v, b, sizeof b);
        fprintf(out, "gpu %zu %s %s  util %s%%  mem %s / %s  temp %s C  power %s / %s W\n", i, g->uuid,
                g->name[0] ? g->name : "", fmt_value(&g->util, "%.0f", 100, c, sizeof c),
                g->mem_used.ok ? a : "-", g->mem_total.ok ? b : "-",
                fmt_value(&g->temp, "%.0f", 1, d, sizeof d), fmt_value(&g->power, "%.0f", 1, e, sizeof e),
                fmt_value(&g->power_limit, "%.0f", 1, b, sizeof b));
    }
    if (s->gpus_total > s->ngpus)
        fprintf(out, "      (%zu more GPUs not shown)\n", s->gpus_total - s->ngpus);
    if (s->nmodels == 0)
        fprintf(out, "models  none\n");
    for (size_t i = 0; i < s->nmodels; i++) {
        const kiln_top_model_t *m = &s->models[i];
        fprintf(out, "model %s/%s  %s inf/s  p50 %s ms  p99 %s ms  queue %s ms  pending %s\n", m->model,
                m->version[0] ? m->version : "-", fmt_value(&m->rps, "%.1f", 1, a, sizeof a),
                fmt_value(&m->p50_ms, "%.2f", 1, b, sizeof b), fmt_value(&m->p99_ms, "%.2f", 1, c, sizeof c),
                fmt_value(&m->queue_ms, "%.2f", 1, d, sizeof d),
                fmt_value(&m->pending, "%.0f", 1, e, sizeof e));
    }
    if (!s->alerts_ok)
        fprintf(out, "alerts  unknown (no alert API)\n");
    else if (s->nalerts == 0)
        fprintf(out, "alerts  none\n");
    for (size_t i = 0; i < s->nalerts; i++)
        fprintf(out, "alert %s %s  %s  %s\n", s->alerts[i].state, s->alerts[i].name, s->alerts[i].labels,
                s->alerts[i].summary);
}
