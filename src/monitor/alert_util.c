/*
 * alert_util.c - small helpers of the alert code: sorted label sets, a
 * growable text buffer with JSON and Prometheus escaping, series sets, and
 * the time and number formats Prometheus's API uses.
 *
 * They live apart so the parser, the evaluator and the notifier share one
 * implementation of each escape rule instead of three slightly different ones.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor/alert_internal.h"
#include "monitor/exporter.h"

/* ---- Label sets ----------------------------------------------------------- */

/* Index of name, or the insertion point encoded as -(pos+1). */
static long labels_find(const alert_labels_t *l, const char *name)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(l->names[mid], name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

int alert_labels_set(alert_labels_t *l, const char *name, const char *value)
{
    long at = labels_find(l, name);
    char *v = strdup(value);
    if (!v)
        return -1;
    if (at >= 0) {
        free(l->values[at]);
        l->values[at] = v;
        return 0;
    }
    size_t pos = (size_t)(-at - 1);
    char *nm = strdup(name);
    char **nn = realloc(l->names, (l->n + 1) * sizeof *nn);
    if (nn)
        l->names = nn;
    char **nv = realloc(l->values, (l->n + 1) * sizeof *nv);
    if (nv)
        l->values = nv;
    if (!nm || !nn || !nv) {
        free(nm);
        free(v);
        return -1;
    }
    memmove(l->names + pos + 1, l->names + pos, (l->n - pos) * sizeof *nn);
    memmove(l->values + pos + 1, l->values + pos, (l->n - pos) * sizeof *nv);
    l->names[pos] = nm;
    l->values[pos] = v;
    l->n++;
    return 0;
}

void alert_labels_del(alert_labels_t *l, const char *name)
{
    long at = labels_find(l, name);
    if (at < 0)
        return;
    free(l->names[at]);
    free(l->values[at]);
    memmove(l->names + at, l->names + at + 1, (l->n - (size_t)at - 1) * sizeof *l->names);
    memmove(l->values + at, l->values + at + 1, (l->n - (size_t)at - 1) * sizeof *l->values);
    l->n--;
}

const char *alert_labels_get(const alert_labels_t *l, const char *name)
{
    long at = labels_find(l, name);
    return at >= 0 ? l->values[at] : NULL;
}

int alert_labels_copy(alert_labels_t *dst, const alert_labels_t *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (alert_labels_set(dst, src->names[i], src->values[i]) != 0)
            return -1;
    return 0;
}

int alert_labels_equal(const alert_labels_t *a, const alert_labels_t *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->names[i], b->names[i]) || strcmp(a->values[i], b->values[i]))
            return 0;
    return 1;
}

void alert_labels_clear(alert_labels_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->values[i]);
    }
    free(l->names);
    free(l->values);
    l->names = l->values = NULL;
    l->n = 0;
}

/* ---- Buffer ------------------------------------------------------------------ */

void alert_buf_put(alert_buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void alert_buf_puts(alert_buf_t *b, const char *s)
{
    alert_buf_put(b, s, strlen(s));
}

void alert_buf_printf(alert_buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        alert_buf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    alert_buf_put(b, big, (size_t)n);
    free(big);
}

void alert_buf_json_string(alert_buf_t *b, const char *s)
{
    alert_buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            alert_buf_put(b, "\\\"", 2);
            break;
        case '\\':
            alert_buf_put(b, "\\\\", 2);
            break;
        case '\n':
            alert_buf_put(b, "\\n", 2);
            break;
        case '\r':
            alert_buf_put(b, "\\r", 2);
            break;
        case '\t':
            alert_buf_put(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20)
                alert_buf_printf(b, "\\u%04x", *p);
            else
                alert_buf_put(b, (const char *)p, 1);
        }
    }
    alert_buf_put(b, "\"", 1);
}

void alert_buf_json_labels(alert_buf_t *b, const alert_labels_t *l)
{
    alert_buf_put(b, "{", 1);
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            alert_buf_put(b, ",", 1);
        alert_buf_json_string(b, l->names[i]);
        alert_buf_put(b, ":", 1);
        alert_buf_json_string(b, l->values[i]);
    }
    alert_buf_put(b, "}", 1);
}

void alert_buf_prom_escape(alert_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            alert_buf_put(b, "\\\\", 2);
        else if (*s == '"')
            alert_buf_put(b, "\\\"", 2);
        else if (*s == '\n')
            alert_buf_put(b, "\\n", 2);
        else
            alert_buf_put(b, s, 1);
    }
}

char *alert_buf_take(alert_buf_t *b)
{
    if (b->oom) {
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
        return NULL;
    }
    if (!b->data)
        alert_buf_put(b, "", 0);
    char *d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

/* ---- Formats ----------------------------------------------------------------- */

void alert_format_time(double t, char *out, size_t outlen)
{
    if (!(t >= 0) || t > 253402300799.0) /* beyond 9999-12-31 or NaN */
        t = 0;
    time_t secs = (time_t)floor(t);
    int ms = (int)((t - floor(t)) * 1000.0);
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void alert_format_value(double v, char *out, size_t outlen)
{
    kiln_metrics_format_value(v, out, outlen); /* one number format for /metrics and the API */
}

/* ---- Series sets ---------------------------------------------------------- */

kiln_series_t *kiln_series_set_add(kiln_series_set_t *set, const char *const *names,
                                   const char *const *values, size_t nlabels)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        kiln_series_t **items = realloc(set->items, cap * sizeof *items);
        if (!items)
            return NULL;
        set->items = items;
        set->cap = cap;
    }
    kiln_series_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    for (size_t i = 0; i < nlabels; i++) {
        if (!names[i] || !values[i] || alert_labels_set(&s->labels, names[i], values[i]) != 0) {
            alert_labels_clear(&s->labels);
            free(s);
            return NULL;
        }
    }
    set->items[set->n++] = s;
    return s;
}

int kiln_series_add_sample(kiln_series_t *s, double t, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        double *nt = realloc(s->t, cap * sizeof *nt);
        if (!nt)
            return -1;
        s->t = nt;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        s->v = nv;
        s->cap = cap;
    }
    s->t[s->n] = t;
    s->v[s->n] = v;
    s->n++;
    return 0;
}

void alert_series_set_clear(kiln_series_set_t *set)
{
    for (size_t i = 0; i < set->n; i++) {
        alert_labels_clear(&set->items[i]->labels);
        free(set->items[i]->t);
        free(set->items[i]->v);
        free(set->items[i]);
    }
    free(set->items);
    set->items = NULL;
    set->n = set->cap = 0;
}
