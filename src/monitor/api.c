/*
 * api.c - the Prometheus-shaped JSON API over the history (see api.h).
 *
 * The JSON of a result is written by hand into one growable buffer rather
 * than built as a jansson tree: a day of one-second samples is 86,400
 * points, and building and freeing that many JSON nodes would cost more
 * than the SQLite scan itself.  Strings are escaped per RFC 8259.
 */
#include "monitor/api.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "monitor/exporter.h"
#include "monitor/selector.h"

#define MAX_MATCH 32
#define MAX_ABS_SECONDS 1e13 /* about 300,000 years: keeps ms inside int64 */

struct kiln_api {
    kiln_metrics_server_t *srv;
    kiln_store_t *store;
};

/* ---- A growable text buffer ------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_json_string(sbuf_t *b, const char *s)
{
    sb_puts(b, "\"");
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c && c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_put(b, run, (size_t)(p - run));
        if (!c)
            break;
        if (c == '"')
            sb_puts(b, "\\\"");
        else if (c == '\\')
            sb_puts(b, "\\\\");
        else if (c == '\n')
            sb_puts(b, "\\n");
        else if (c == '\t')
            sb_puts(b, "\\t");
        else
            sb_printf(b, "\\u%04x", c);
        run = p + 1;
    }
    sb_puts(b, "\"");
}

/* Writes the decimal digits of v into the end of tmp; returns the start. */
static char *u64_digits(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* Unix ms as Prometheus prints times: seconds with up to 3 decimals.
 * Hand-formatted: a day of 1 s points is 86,400 of these. */
static void sb_time(sbuf_t *b, int64_t ms)
{
    char tmp[40];
    char *end = tmp + sizeof tmp, *p = end;
    uint64_t a = ms < 0 ? (uint64_t)(-(ms + 1)) + 1 : (uint64_t)ms;
    unsigned frac = (unsigned)(a % 1000);
    if (frac) {
        int digits = 3;
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        for (int i = 0; i < digits; i++) {
            *--p = (char)('0' + frac % 10);
            frac /= 10;
        }
        *--p = '.';
    }
    p = u64_digits(a / 1000, p);
    if (ms < 0)
        *--p = '-';
    sb_put(b, p, (size_t)(end - p));
}

static void sb_value(sbuf_t *b, double v)
{
    char num[48];
    if (v == (double)(int64_t)v && v > -1e15 && v < 1e15) {
        /* Integral values (temperatures, bytes, counts) skip printf. */
        char *end = num + sizeof num - 1, *p = end;
        *p = '"';
        int64_t i = (int64_t)v;
        p = u64_digits(i < 0 ? (uint64_t)(-i) : (uint64_t)i, p);
        if (i < 0)
            *--p = '-';
        *--p = '"';
        sb_put(b, p, (size_t)(end - p + 1));
        return;
    }
    num[0] = '"';
    kiln_metrics_format_value(v, num + 1, sizeof num - 2);
    size_t n = strlen(num);
    num[n] = '"';
    sb_put(b, num, n + 1);
}

static void sb_metric(sbuf_t *b, const kiln_store_series_t *s)
{
    sb_puts(b, "{\"__name__\":");
    sb_json_string(b, s->metric);
    for (size_t j = 0; j < s->n_labels; j++) {
        sb_puts(b, ",");
        sb_json_string(b, s->labels[j].name);
        sb_puts(b, ":");
        sb_json_string(b, s->labels[j].value);
    }
    sb_puts(b, "}");
}

char *kiln_api_result_json(const kiln_store_result_t *res, int vector, size_t *len)
{
    sbuf_t b = {0};
    size_t total = 0;
    for (size_t i = 0; i < res->count; i++)
        total += res->series[i].n_points;
    b.cap = 256 + total * 24; /* a point is about 18 bytes: one allocation for a day */
    b.p = malloc(b.cap);
    if (!b.p)
        return NULL;
    b.p[0] = '\0';
    sb_puts(&b, "{\"status\":\"success\",\"data\":{\"resultType\":");
    sb_puts(&b, vector ? "\"vector\",\"result\":[" : "\"matrix\",\"result\":[");
    for (size_t i = 0; i < res->count; i++) {
        const kiln_store_series_t *s = &res->series[i];
        sb_puts(&b, i ? ",{\"metric\":" : "{\"metric\":");
        sb_metric(&b, s);
        if (vector) {
            sb_puts(&b, ",\"value\":[");
            if (s->n_points) {
                sb_time(&b, s->ts_ms[s->n_points - 1]);
                sb_puts(&b, ",");
                sb_value(&b, s->values[s->n_points - 1]);
            }
            sb_puts(&b, "]}");
            continue;
        }
        sb_puts(&b, ",\"values\":[");
        for (size_t k = 0; k < s->n_points; k++) {
            sb_put(&b, k ? ",[" : "[", k ? 2 : 1);
            sb_time(&b, s->ts_ms[k]);
            sb_put(&b, ",", 1);
            sb_value(&b, s->values[k]);
            sb_put(&b, "]", 1);
        }
        sb_puts(&b, "]}");
    }
    sb_puts(&b, "]}}");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- Times and durations ---------------------------------------------------- */

int kiln_api_parse_time(const char *text, int64_t *ms)
{
    if (!text || !*text)
        return -1;
    char *end;
    double v = strtod(text, &end);
    if (end != text && !*end) {
        if (!isfinite(v) || fabs(v) > MAX_ABS_SECONDS)
            return -1;
        *ms = (int64_t)llround(v * 1000.0);
        return 0;
    }
    /* RFC 3339: 2026-11-25T12:00:00[.123](Z|+hh:mm|-hh:mm) */
    struct tm tm = {0};
    const char *p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    int64_t frac_ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        int64_t scale = 100;
        while (isdigit((unsigned char)*p)) {
            if (digits++ < 3) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
            }
            p++;
        }
        if (!digits)
            return -1;
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
               isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
               isdigit((unsigned char)p[5])) {
        int sign = *p == '-' ? -1 : 1;
        offset_s = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - offset_s) * 1000 + frac_ms;
    return 0;
}

int kiln_api_parse_duration(const char *text, int64_t *ms)
{
    if (!text || !*text)
        return -1;
    char *end;
    double v = strtod(text, &end);
    if (end != text && !*end) {
        if (!isfinite(v) || v < 0 || v > MAX_ABS_SECONDS)
            return -1;
        *ms = (int64_t)llround(v * 1000.0);
        return 0;
    }
    int64_t total = 0;
    const char *p = text;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -1;
        int64_t n = 0;
        while (isdigit((unsigned char)*p)) {
            n = n * 10 + (*p++ - '0');
            if (n > 1000000000000LL)
                return -1;
        }
        int64_t unit;
        if (p[0] == 'm' && p[1] == 's') {
            unit = 1;
            p += 2;
        } else {
            switch (*p) {
            case 's': unit = 1000; break;
            case 'm': unit = 60000; break;
            case 'h': unit = 3600000; break;
            case 'd': unit = 86400000; break;
            case 'w': unit = 7 * 86400000LL; break;
            case 'y': unit = 365 * 86400000LL; break;
            default: return -1;
            }
            p++;
        }
        if (n > (INT64_MAX / 4 - total) / unit)
            return -1;
        total += n * unit;
    }
    *ms = total;
    return 0;
}

/* ---- Handlers ---------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bad_data(kiln_http_request_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_data(kiln_http_request_t *req, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbuf_t b = {0};
    sb_puts(&b, "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":");
    sb_json_string(&b, msg);
    sb_puts(&b, "}");
    if (b.failed)
        kiln_http_respond_error(req, 500, "out of memory");
    else
        kiln_http_respond(req, 400, "application/json", b.p, b.len);
    free(b.p);
}

static void server_error(kiln_http_request_t *req, const char *msg)
{
    sbuf_t b = {0};
    sb_puts(&b, "{\"status\":\"error\",\"errorType\":\"internal\",\"error\":");
    sb_json_string(&b, msg);
    sb_puts(&b, "}");
    kiln_http_respond(req, 500, "application/json", b.failed ? "{}" : b.p, b.failed ? 2 : b.len);
    free(b.p);
}

static void send_json(kiln_http_request_t *req, sbuf_t *b)
{
    if (b->failed)
        server_error(req, "out of memory");
    else
        kiln_http_respond(req, 200, "application/json", b->p, b->len);
    free(b->p);
}

/* Reads a time parameter; dflt when absent.  0, or -1 after answering 400. */
static int time_param(kiln_http_request_t *req, const char *name, int64_t dflt, int64_t *ms)
{
    const char *v = kiln_http_request_param(req, name);
    if (!v) {
        *ms = dflt;
        return 0;
    }
    if (kiln_api_parse_time(v, ms)) {
        bad_data(req, "invalid parameter \"%s\": cannot parse \"%.100s\" to a valid timestamp", name, v);
        return -1;
    }
    return 0;
}

static kiln_selector_t *query_param(kiln_http_request_t *req, const char *name)
{
    const char *q = kiln_http_request_param(req, name);
    if (!q) {
        bad_data(req, "invalid parameter \"%s\": missing", name);
        return NULL;
    }
    kiln_selector_t *sel = NULL;
    if (kiln_selector_parse(q, strlen(q), &sel)) {
        bad_data(req, "invalid parameter \"%s\": %s", name, kiln_last_error());
        return NULL;
    }
    return sel;
}

static void respond_result(kiln_http_request_t *req, const kiln_store_result_t *res, int vector)
{
    size_t len = 0;
    char *json = kiln_api_result_json(res, vector, &len);
    if (!json) {
        server_error(req, "out of memory");
        return;
    }
    kiln_http_respond(req, 200, "application/json", json, len);
    free(json);
}

static void query_range_handler(kiln_http_request_t *req, void *user)
{
    kiln_api_t *api = user;
    int64_t start, end, step;
    const char *step_text = kiln_http_request_param(req, "step");
    if (!kiln_http_request_param(req, "start") || !kiln_http_request_param(req, "end")) {
        bad_data(req, "invalid parameter \"%s\": missing",
                 kiln_http_request_param(req, "start") ? "end" : "start");
        return;
    }
    if (time_param(req, "start", 0, &start) || time_param(req, "end", 0, &end))
        return;
    if (!step_text || kiln_api_parse_duration(step_text, &step)) {
        bad_data(req, "invalid parameter \"step\": cannot parse \"%.100s\" to a valid duration",
                 step_text ? step_text : "");
        return;
    }
    if (end < start) {
        bad_data(req, "end timestamp must not be before start time");
        return;
    }
    if (step <= 0) {
        bad_data(req, "zero or negative query resolution step widths are not accepted. "
                 "Try a positive integer");
        return;
    }
    kiln_selector_t *sel = query_param(req, "query");
    if (!sel)
        return;
    kiln_store_result_t res;
    kiln_status_t st = kiln_store_query_range(api->store, sel, start, end, step, &res);
    kiln_selector_free(sel);
    if (st == KILN_ERR_INVALID_ARGUMENT) {
        bad_data(req, "%s", kiln_last_error());
        return;
    }
    if (st) {
        server_error(req, kiln_last_error());
        return;
    }
    respond_result(req, &res, 0);
    kiln_store_result_free(&res);
}

/* Parses a number literal, alone or two joined by + - * / ("1+1": the
 * query Grafana sends to test a Prometheus data source).  0 with the
 * value in *out, -1 when text is something else. */
int kiln_api_scalar_query(const char *text, double *out)
{
    char *end;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return -1;
    double a = strtod(p, &end);
    if (end == p)
        return -1;
    p = end;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p) {
        *out = a;
        return 0;
    }
    char op = *p++;
    if (!strchr("+-*/", op))
        return -1;
    while (isspace((unsigned char)*p))
        p++;
    double b = strtod(p, &end);
    if (end == p)
        return -1;
    p = end;
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return -1;
    *out = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b;
    return 0;
}

static void query_handler(kiln_http_request_t *req, void *user)
{
    kiln_api_t *api = user;
    int64_t t;
    if (time_param(req, "time", wall_ms(), &t))
        return;
    const char *text = kiln_http_request_param(req, "query");
    double scalar;
    if (text && kiln_api_scalar_query(text, &scalar) == 0) {
        sbuf_t b = {0};
        sb_puts(&b, "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[");
        sb_time(&b, t);
        sb_puts(&b, ",");
        char num[40];
        kiln_metrics_format_value(scalar, num, sizeof num);
        sb_json_string(&b, num);
        sb_puts(&b, "]}}");
        send_json(req, &b);
        return;
    }
    kiln_selector_t *sel = query_param(req, "query");
    if (!sel)
        return;
    kiln_store_result_t res;
    kiln_status_t st = kiln_store_query_range(api->store, sel, t, t, 1000, &res);
    kiln_selector_free(sel);
    if (st) {
        server_error(req, kiln_last_error());
        return;
    }
    respond_result(req, &res, 1);
    kiln_store_result_free(&res);
}

/* The series matching every match[] (union), for /series, /labels and values. */
static int collect_series(kiln_http_request_t *req, kiln_api_t *api, int required,
                          kiln_store_result_t *all)
{
    all->series = NULL;
    all->count = 0;
    const char *matches[MAX_MATCH];
    size_t n = kiln_http_request_params(req, "match[]", matches, MAX_MATCH);
    if (n > MAX_MATCH) {
        bad_data(req, "at most %d match[] parameters are accepted", MAX_MATCH);
        return -1;
    }
    if (n == 0 && required) {
        bad_data(req, "no match[] parameter provided");
        return -1;
    }
    int64_t start, end;
    if (time_param(req, "start", INT64_MIN / 4, &start) || time_param(req, "end", INT64_MAX / 4, &end))
        return -1;
    const char *any = "{__name__=~\".+\"}";
    if (n == 0) {
        matches[0] = any;
        n = 1;
    }
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        kiln_selector_t *sel = NULL;
        if (kiln_selector_parse(matches[i], strlen(matches[i]), &sel)) {
            bad_data(req, "invalid parameter \"match[]\": %s", kiln_last_error());
            kiln_store_result_free(all);
            return -1;
        }
        kiln_store_result_t part;
        kiln_status_t st = kiln_store_series(api->store, sel, start, end, &part);
        kiln_selector_free(sel);
        if (st) {
            if (st == KILN_ERR_INVALID_ARGUMENT)
                bad_data(req, "%s", kiln_last_error());
            else
                server_error(req, kiln_last_error());
            kiln_store_result_free(all);
            return -1;
        }
        /* Union: skip series already present (same name and labels). */
        for (size_t k = 0; k < part.count; k++) {
            kiln_store_series_t *s = &part.series[k];
            int dup = 0;
            for (size_t j = 0; j < all->count && !dup; j++) {
                kiln_store_series_t *o = &all->series[j];
                if (strcmp(o->metric, s->metric) || o->n_labels != s->n_labels)
                    continue;
                dup = 1;
                for (size_t l = 0; l < s->n_labels && dup; l++)
                    dup = !strcmp(o->labels[l].name, s->labels[l].name) &&
                          !strcmp(o->labels[l].value, s->labels[l].value);
            }
            if (dup)
                continue;
            if (all->count == cap) {
                cap = cap ? cap * 2 : 16;
                kiln_store_series_t *ns = realloc(all->series, cap * sizeof *ns);
                if (!ns) {
                    kiln_store_result_free(&part);
                    kiln_store_result_free(all);
                    server_error(req, "out of memory");
                    return -1;
                }
                all->series = ns;
            }
            all->series[all->count++] = *s;
            memset(s, 0, sizeof *s);
        }
        kiln_store_result_free(&part);
    }
    return 0;
}

static void series_handler(kiln_http_request_t *req, void *user)
{
    kiln_store_result_t all;
    if (collect_series(req, user, 1, &all))
        return;
    sbuf_t b = {0};
    sb_puts(&b, "{\"status\":\"success\",\"data\":[");
    for (size_t i = 0; i < all.count; i++) {
        if (i)
            sb_puts(&b, ",");
        sb_metric(&b, &all.series[i]);
    }
    sb_puts(&b, "]}");
    kiln_store_result_free(&all);
    send_json(req, &b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Answers a sorted, de-duplicated list of strings. */
static void send_strings(kiln_http_request_t *req, const char **v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_str);
    sbuf_t b = {0};
    sb_puts(&b, "{\"status\":\"success\",\"data\":[");
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && !strcmp(v[i], v[i - 1]))
            continue;
        if (out++)
            sb_puts(&b, ",");
        sb_json_string(&b, v[i]);
    }
    sb_puts(&b, "]}");
    send_json(req, &b);
}

/* /api/v1/labels and /api/v1/label/NAME/values. */
static void labels_handler(kiln_http_request_t *req, void *user)
{
    const char *path = kiln_http_request_path(req);
    const char *want = NULL; /* NULL: label names */
    char name[256];
    if (!strncmp(path, "/api/v1/label/", 14)) {
        const char *rest = path + 14;
        const char *slash = strchr(rest, '/');
        if (!slash || strcmp(slash, "/values") || (size_t)(slash - rest) >= sizeof name) {
            kiln_http_respond_error(req, 404, "no such endpoint");
            return;
        }
        memcpy(name, rest, (size_t)(slash - rest));
        name[slash - rest] = '\0';
        if (!kiln_label_name_valid(name)) {
            bad_data(req, "invalid label name: \"%.100s\"", name);
            return;
        }
        want = name;
    }
    kiln_store_result_t all;
    if (collect_series(req, user, 0, &all))
        return;
    size_t cap = all.count * 8 + 1, n = 0;
    const char **v = malloc(cap * sizeof *v);
    if (!v) {
        kiln_store_result_free(&all);
        server_error(req, "out of memory");
        return;
    }
    for (size_t i = 0; i < all.count; i++) {
        const kiln_store_series_t *s = &all.series[i];
        if (!want || !strcmp(want, "__name__")) {
            if (n < cap)
                v[n++] = want ? s->metric : "__name__";
        }
        for (size_t j = 0; j < s->n_labels && n < cap; j++) {
            if (!want)
                v[n++] = s->labels[j].name;
            else if (!strcmp(want, s->labels[j].name))
                v[n++] = s->labels[j].value;
        }
    }
    send_strings(req, v, n);
    free(v);
    kiln_store_result_free(&all);
}

/* /api/v1/status/buildinfo: what Grafana and promtool ask a server first. */
static void buildinfo_handler(kiln_http_request_t *req, void *user)
{
    (void)user;
    sbuf_t b = {0};
    sb_puts(&b, "{\"status\":\"success\",\"data\":{\"version\":\"" KILN_VERSION_STRING "\","
                "\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\","
                "\"goVersion\":\"\",\"application\":\"kiln\"}}");
    send_json(req, &b);
}

static const struct {
    const char *path;
    kiln_http_handler_fn fn;
} ROUTES[] = {
    {"/api/v1/status/buildinfo", buildinfo_handler},
    {"/api/v1/query_range", query_range_handler},
    {"/api/v1/query", query_handler},
    {"/api/v1/series", series_handler},
    {"/api/v1/labels", labels_handler},
    {"/api/v1/label/", labels_handler},
};

kiln_status_t kiln_api_attach(kiln_metrics_server_t *srv, kiln_store_t *store, kiln_api_t **out)
{
    *out = NULL;
    kiln_api_t *api = calloc(1, sizeof *api);
    if (!api)
        return kiln_fail(KILN_ERR_NO_MEMORY, "api: out of memory");
    api->srv = srv;
    api->store = store;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        kiln_status_t st = kiln_metrics_server_handle(srv, ROUTES[i].path, ROUTES[i].fn, api);
        if (st) {
            kiln_api_detach(api);
            return st;
        }
    }
    *out = api;
    return KILN_OK;
}

void kiln_api_detach(kiln_api_t *api)
{
    if (!api)
        return;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
        kiln_metrics_server_unhandle(api->srv, ROUTES[i].path);
    free(api);
}
