/*
 * exporter.c - Prometheus text exposition: the metric family writer and the
 * collector list behind GET /metrics (see exporter.h).
 *
 * The writer is a growable byte buffer, independent of the HTTP library so
 * unit tests read its text directly.  It remembers the names of the
 * families already written (a small linear list: an exposition has tens of
 * families) so two collectors cannot emit the same family twice, which
 * Prometheus would reject.
 */
#include "monitor/exporter.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct kiln_metrics_writer {
    char *buf;
    size_t len, cap;
    int failed;         /* an allocation failed; text is truncated */
    char family[256];   /* the open family ("" when none) */
    char **names;       /* families written so far */
    size_t n_names, cap_names;
};

const char *kiln_metric_type_name(kiln_metric_type_t type)
{
    switch (type) {
    case KILN_METRIC_GAUGE: return "gauge";
    case KILN_METRIC_COUNTER: return "counter";
    case KILN_METRIC_HISTOGRAM: return "histogram";
    case KILN_METRIC_SUMMARY: return "summary";
    case KILN_METRIC_UNTYPED: return "untyped";
    }
    return "untyped";
}

kiln_metrics_writer_t *kiln_metrics_writer_new(void)
{
    kiln_metrics_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cap = 4096;
    w->buf = malloc(w->cap);
    if (!w->buf) {
        free(w);
        return NULL;
    }
    w->buf[0] = '\0';
    return w;
}

void kiln_metrics_writer_free(kiln_metrics_writer_t *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_names; i++)
        free(w->names[i]);
    free(w->names);
    free(w->buf);
    free(w);
}

static int reserve(kiln_metrics_writer_t *w, size_t extra)
{
    if (w->failed)
        return -1;
    if (w->len + extra + 1 <= w->cap)
        return 0;
    size_t cap = w->cap;
    while (w->len + extra + 1 > cap)
        cap *= 2;
    char *nb = realloc(w->buf, cap);
    if (!nb) {
        w->failed = 1;
        return -1;
    }
    w->buf = nb;
    w->cap = cap;
    return 0;
}

static void put(kiln_metrics_writer_t *w, const char *s, size_t n)
{
    if (reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void puts_(kiln_metrics_writer_t *w, const char *s) { put(w, s, strlen(s)); }

/* Writes s escaped: backslash and newline always, '"' too inside label values. */
static void put_escaped(kiln_metrics_writer_t *w, const char *s, int quote)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *esc = NULL;
        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '\n')
            esc = "\\n";
        else if (*p == '"' && quote)
            esc = "\\\"";
        if (esc || !*p) {
            put(w, run, (size_t)(p - run));
            if (!*p)
                break;
            puts_(w, esc);
            run = p + 1;
        }
    }
}

void kiln_metrics_format_value(double v, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Integers print without exponent up to 2^53; others shortest round trip. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, size, "%.0f", v);
        return;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

kiln_status_t kiln_metrics_family(kiln_metrics_writer_t *w, const char *name,
                                  kiln_metric_type_t type, const char *help)
{
    if (!kiln_metric_name_valid(name) || strlen(name) >= sizeof w->family)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "metrics: invalid metric family name '%s'",
                         name ? name : "(null)");
    for (size_t i = 0; i < w->n_names; i++)
        if (!strcmp(w->names[i], name))
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                             "metrics: family '%s' written twice in one exposition", name);
    if (w->n_names == w->cap_names) {
        size_t cap = w->cap_names ? w->cap_names * 2 : 32;
        char **nn = realloc(w->names, cap * sizeof *nn);
        if (!nn) {
            w->failed = 1;
            return kiln_fail(KILN_ERR_NO_MEMORY, "metrics: out of memory");
        }
        w->names = nn;
        w->cap_names = cap;
    }
    w->names[w->n_names] = strdup(name);
    if (!w->names[w->n_names]) {
        w->failed = 1;
        return kiln_fail(KILN_ERR_NO_MEMORY, "metrics: out of memory");
    }
    w->n_names++;
    snprintf(w->family, sizeof w->family, "%s", name);
    puts_(w, "# HELP ");
    puts_(w, name);
    puts_(w, " ");
    put_escaped(w, help ? help : "", 0);
    puts_(w, "\n# TYPE ");
    puts_(w, name);
    puts_(w, " ");
    puts_(w, kiln_metric_type_name(type));
    puts_(w, "\n");
    return w->failed ? kiln_fail(KILN_ERR_NO_MEMORY, "metrics: out of memory") : KILN_OK;
}

kiln_status_t kiln_metrics_sample(kiln_metrics_writer_t *w, const char *suffix,
                                  const kiln_label_t *labels, size_t n_labels, double value)
{
    if (!w->family[0])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "metrics: sample written before its family");
    if (suffix && strcmp(suffix, "_bucket") && strcmp(suffix, "_sum") && strcmp(suffix, "_count"))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "metrics: sample suffix '%s' is not one of "
                         "_bucket, _sum, _count", suffix);
    for (size_t i = 0; i < n_labels; i++)
        if (!kiln_label_name_valid(labels[i].name))
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "metrics: invalid label name '%s' in %s",
                             labels[i].name ? labels[i].name : "(null)", w->family);
    puts_(w, w->family);
    if (suffix)
        puts_(w, suffix);
    int first = 1;
    for (size_t i = 0; i < n_labels; i++) {
        if (!labels[i].value)
            continue;
        puts_(w, first ? "{" : ",");
        first = 0;
        puts_(w, labels[i].name);
        puts_(w, "=\"");
        put_escaped(w, labels[i].value, 1);
        puts_(w, "\"");
    }
    if (!first)
        puts_(w, "}");
    char num[40];
    kiln_metrics_format_value(value, num, sizeof num);
    puts_(w, " ");
    puts_(w, num);
    puts_(w, "\n");
    return w->failed ? kiln_fail(KILN_ERR_NO_MEMORY, "metrics: out of memory") : KILN_OK;
}

kiln_status_t kiln_metrics_raw(kiln_metrics_writer_t *w, const char *text, size_t len)
{
    if (!text || !len)
        return KILN_OK;
    put(w, text, len);
    if (text[len - 1] != '\n')
        puts_(w, "\n");
    w->family[0] = '\0'; /* raw text closes any open family */
    return w->failed ? kiln_fail(KILN_ERR_NO_MEMORY, "metrics: out of memory") : KILN_OK;
}

const char *kiln_metrics_writer_text(const kiln_metrics_writer_t *w, size_t *len)
{
    if (len)
        *len = w->len;
    return w->buf;
}

int kiln_metrics_writer_failed(const kiln_metrics_writer_t *w) { return w->failed; }

/* ---- Exporter ----------------------------------------------------------- */

typedef struct collector {
    kiln_metrics_collector_fn fn;
    void *user;
} collector_t;

struct kiln_exporter {
    pthread_mutex_t lock; /* held while collectors run, so removal waits for them */
    collector_t *list;
    size_t n, cap;
};

kiln_exporter_t *kiln_exporter_new(void)
{
    kiln_exporter_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    pthread_mutex_init(&e->lock, NULL);
    return e;
}

void kiln_exporter_free(kiln_exporter_t *e)
{
    if (!e)
        return;
    pthread_mutex_destroy(&e->lock);
    free(e->list);
    free(e);
}

kiln_status_t kiln_exporter_add_collector(kiln_exporter_t *e, kiln_metrics_collector_fn fn,
                                          void *user)
{
    if (!fn)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "exporter: collector function is NULL");
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++)
        if (e->list[i].fn == fn && e->list[i].user == user) {
            pthread_mutex_unlock(&e->lock);
            return KILN_OK;
        }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        collector_t *nl = realloc(e->list, cap * sizeof *nl);
        if (!nl) {
            pthread_mutex_unlock(&e->lock);
            return kiln_fail(KILN_ERR_NO_MEMORY, "exporter: out of memory");
        }
        e->list = nl;
        e->cap = cap;
    }
    e->list[e->n++] = (collector_t){fn, user};
    pthread_mutex_unlock(&e->lock);
    return KILN_OK;
}

void kiln_exporter_remove_collector(kiln_exporter_t *e, kiln_metrics_collector_fn fn, void *user)
{
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++)
        if (e->list[i].fn == fn && e->list[i].user == user) {
            memmove(&e->list[i], &e->list[i + 1], (e->n - i - 1) * sizeof e->list[0]);
            e->n--;
            break;
        }
    pthread_mutex_unlock(&e->lock);
}

kiln_metrics_writer_t *kiln_exporter_render(kiln_exporter_t *e)
{
    kiln_metrics_writer_t *w = kiln_metrics_writer_new();
    if (!w)
        return NULL;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++) {
        e->list[i].fn(w, e->list[i].user);
        w->family[0] = '\0'; /* a collector's open family ends with it */
    }
    pthread_mutex_unlock(&e->lock);
    if (w->failed) {
        kiln_metrics_writer_free(w);
        return NULL;
    }
    return w;
}
