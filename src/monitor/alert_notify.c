/*
 * alert_notify.c - delivers alerts to an Alertmanager (POST /api/v2/alerts)
 * and to generic webhooks (Alertmanager's webhook payload, version "4").
 *
 * The engine only enqueues: bodies are built as JSON text at once, then a
 * single notifier thread posts them with a small blocking HTTP/1.1 client
 * (plain sockets, every step under a timeout) and retries failures with
 * exponential backoff.  The queue is bounded; when it is full the oldest
 * message is dropped and counted, so a dead receiver costs memory for at
 * most QUEUE_MAX messages and never stalls the sampler or the evaluator.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "monitor/alert_internal.h"
#include "monitor/http_client.h"

#define QUEUE_MAX 1000

typedef struct message {
    struct message *next;
    alert_target_t target;
    char *body;
    int attempts;
    double next_try; /* monotonic seconds */
} message_t;

struct kiln_alert_notifier {
    kiln_http_url_t am;      /* Alertmanager, path already ends in /api/v2/alerts */
    kiln_http_url_t webhook; /* generic webhook */
    int has_am, has_webhook;
    char *external_url;
    double resend, backoff, timeout;
    int max_attempts;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled on enqueue and stop */
    pthread_cond_t idle_cv; /* signalled when the queue drains */
    message_t *head, *tail;
    size_t queued;
    int in_flight;
    int stop;
    kiln_alert_notifier_stats_t stats;
    double last_log[2];        /* per target: when a failure was last logged (monotonic) */
    unsigned long unlogged[2]; /* failures not logged since */
};

/* How often at most a failing target is reported on stderr. */
#define LOG_EVERY_SECONDS 60.0

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Payloads -------------------------------------------------------------- */

/* FNV-1a over the sorted label pairs: Alertmanager shows a fingerprint per
 * alert; any stable hash of the label set serves. */
static uint64_t fingerprint(const alert_labels_t *l)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < l->n; i++) {
        for (const char *s = l->names[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
        for (const char *s = l->values[i]; *s; s++)
            h = (h ^ (unsigned char)*s) * 1099511628211ull;
        h = (h ^ 0xfe) * 1099511628211ull;
    }
    return h;
}

static char *alertmanager_body(const kiln_alert_notifier_t *n, const alert_notice_t *v, size_t count)
{
    alert_buf_t b = {0};
    char t[40];
    alert_buf_puts(&b, "[");
    for (size_t i = 0; i < count; i++) {
        if (i)
            alert_buf_puts(&b, ",");
        alert_buf_puts(&b, "{\"labels\":");
        alert_buf_json_labels(&b, &v[i].labels);
        alert_buf_puts(&b, ",\"annotations\":");
        alert_buf_json_labels(&b, &v[i].annotations);
        alert_format_time(v[i].starts_at, t, sizeof t);
        alert_buf_printf(&b, ",\"startsAt\":\"%s\"", t);
        if (v[i].ends_at > 0) {
            alert_format_time(v[i].ends_at, t, sizeof t);
            alert_buf_printf(&b, ",\"endsAt\":\"%s\"", t);
        }
        alert_buf_puts(&b, ",\"generatorURL\":");
        alert_buf_printf(&b, "\"%s/dashboard\"}", n->external_url);
    }
    alert_buf_puts(&b, "]");
    return alert_buf_take(&b);
}

/* Labels (or annotations) whose value is the same in every notice. */
static void common_pairs(alert_buf_t *b, const alert_notice_t *v, size_t count, int annotations)
{
    alert_buf_puts(b, "{");
    int first = 1;
    const alert_labels_t *l0 = annotations ? &v[0].annotations : &v[0].labels;
    for (size_t k = 0; k < l0->n; k++) {
        int same = 1;
        for (size_t i = 1; i < count && same; i++) {
            const char *x = alert_labels_get(annotations ? &v[i].annotations : &v[i].labels, l0->names[k]);
            same = x && !strcmp(x, l0->values[k]);
        }
        if (!same)
            continue;
        if (!first)
            alert_buf_puts(b, ",");
        first = 0;
        alert_buf_json_string(b, l0->names[k]);
        alert_buf_puts(b, ":");
        alert_buf_json_string(b, l0->values[k]);
    }
    alert_buf_puts(b, "}");
}

static char *webhook_body(const kiln_alert_notifier_t *n, const char *alertname, const alert_notice_t *v,
                          size_t count)
{
    alert_buf_t b = {0};
    char t[40];
    int any_firing = 0;
    for (size_t i = 0; i < count; i++)
        any_firing |= !v[i].resolved;
    alert_buf_puts(&b, "{\"version\":\"4\",\"receiver\":\"kiln\",\"status\":");
    alert_buf_puts(&b, any_firing ? "\"firing\"" : "\"resolved\"");
    alert_buf_puts(&b, ",\"groupKey\":");
    alert_buf_t gk = {0};
    alert_buf_puts(&gk, "{}:{alertname=\"");
    alert_buf_prom_escape(&gk, alertname);
    alert_buf_puts(&gk, "\"}");
    char *gks = alert_buf_take(&gk);
    alert_buf_json_string(&b, gks ? gks : "");
    free(gks);
    alert_buf_puts(&b, ",\"truncatedAlerts\":0,\"groupLabels\":{\"alertname\":");
    alert_buf_json_string(&b, alertname);
    alert_buf_puts(&b, "},\"commonLabels\":");
    common_pairs(&b, v, count, 0);
    alert_buf_puts(&b, ",\"commonAnnotations\":");
    common_pairs(&b, v, count, 1);
    alert_buf_puts(&b, ",\"externalURL\":");
    alert_buf_json_string(&b, n->external_url);
    alert_buf_puts(&b, ",\"alerts\":[");
    for (size_t i = 0; i < count; i++) {
        if (i)
            alert_buf_puts(&b, ",");
        alert_buf_printf(&b, "{\"status\":\"%s\",\"labels\":", v[i].resolved ? "resolved" : "firing");
        alert_buf_json_labels(&b, &v[i].labels);
        alert_buf_puts(&b, ",\"annotations\":");
        alert_buf_json_labels(&b, &v[i].annotations);
        alert_format_time(v[i].starts_at, t, sizeof t);
        alert_buf_printf(&b, ",\"startsAt\":\"%s\"", t);
        if (v[i].resolved)
            alert_format_time(v[i].ends_at, t, sizeof t);
        else
            snprintf(t, sizeof t, "0001-01-01T00:00:00Z"); /* Alertmanager's zero time */
        alert_buf_printf(&b, ",\"endsAt\":\"%s\",\"generatorURL\":", t);
        alert_buf_printf(&b, "\"%s/dashboard\"", n->external_url);
        alert_buf_printf(&b, ",\"fingerprint\":\"%016llx\"}", (unsigned long long)fingerprint(&v[i].labels));
    }
    alert_buf_puts(&b, "]}");
    return alert_buf_take(&b);
}

/* ---- Queue ------------------------------------------------------------------------ */

/* Appends a message at the tail of the queue (mutex held). */
static void append(kiln_alert_notifier_t *n, message_t *m)
{
    if (n->tail)
        n->tail->next = m;
    else
        n->head = m;
    n->tail = m;
    n->queued++;
}

void alert_notifier_enqueue(kiln_alert_notifier_t *n, alert_target_t target, const char *alertname,
                            const alert_notice_t *notices, size_t count)
{
    if (!n || count == 0)
        return;
    if ((target == ALERT_TARGET_ALERTMANAGER && !n->has_am) ||
        (target == ALERT_TARGET_WEBHOOK && !n->has_webhook))
        return;
    char *body = target == ALERT_TARGET_ALERTMANAGER ? alertmanager_body(n, notices, count)
                                                     : webhook_body(n, alertname, notices, count);
    message_t *m = body ? calloc(1, sizeof *m) : NULL;
    pthread_mutex_lock(&n->mu);
    if (!m) {
        free(body);
        n->stats.dropped++;
        pthread_mutex_unlock(&n->mu);
        return;
    }
    m->target = target;
    m->body = body;
    m->next_try = mono_now();
    if (n->queued >= QUEUE_MAX && n->head) {
        message_t *old = n->head;
        n->head = old->next;
        if (!n->head)
            n->tail = NULL;
        free(old->body);
        free(old);
        n->queued--;
        n->stats.dropped++;
    }
    append(n, m);
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

double alert_notifier_resend_seconds(const kiln_alert_notifier_t *n)
{
    return n->resend;
}

/* Removes and returns the first message due at `now`, or NULL; *wait gets
 * the seconds until the next one is due. */
static message_t *take_due(kiln_alert_notifier_t *n, double now, double *wait)
{
    message_t *prev = NULL;
    *wait = 3600;
    for (message_t *m = n->head; m; prev = m, m = m->next) {
        if (m->next_try <= now || n->stop) {
            if (prev)
                prev->next = m->next;
            else
                n->head = m->next;
            if (n->tail == m)
                n->tail = prev;
            m->next = NULL;
            n->queued--;
            return m;
        }
        if (m->next_try - now < *wait)
            *wait = m->next_try - now;
    }
    return NULL;
}

static void *notifier_thread(void *arg)
{
    kiln_alert_notifier_t *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        double wait;
        message_t *m = take_due(n, mono_now(), &wait);
        if (!m) {
            if (n->stop)
                break;
            if (!n->in_flight && !n->head)
                pthread_cond_broadcast(&n->idle_cv);
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            double at = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + wait;
            until.tv_sec = (time_t)at;
            until.tv_nsec = (long)((at - floor(at)) * 1e9);
            pthread_cond_timedwait(&n->cv, &n->mu, &until);
            continue;
        }
        n->in_flight = 1;
        int stopping = n->stop;
        pthread_mutex_unlock(&n->mu);

        const kiln_http_url_t *url = m->target == ALERT_TARGET_ALERTMANAGER ? &n->am : &n->webhook;
        char err[256];
        int status = 0;
        int rc = kiln_http_post(url, "application/json", m->body, strlen(m->body), n->timeout, &status, err,
                                sizeof err);
        /* 2xx: done.  4xx other than 429: the receiver refuses this body and
         * will refuse it again, so retrying is pointless.  Else retry. */
        int ok = rc == 0 && status >= 200 && status < 300;
        int permanent = rc == 0 && status >= 400 && status < 500 && status != 429;
        char why[300];
        if (!ok)
            snprintf(why, sizeof why, "%s",
                     rc != 0     ? err
                     : permanent ? "refused by the receiver"
                                 : "receiver error");

        pthread_mutex_lock(&n->mu);
        n->in_flight = 0;
        m->attempts++;
        if (ok) {
            n->stats.sent++;
        } else if (permanent || m->attempts >= n->max_attempts || stopping) {
            n->stats.failed++;
            /* Only final failures are reported, at most once a minute per
             * target, so a dead receiver does not flood the log. */
            double t = mono_now();
            if (n->last_log[m->target] == 0 || t - n->last_log[m->target] >= LOG_EVERY_SECONDS) {
                fprintf(stderr, "kiln: alert notifier: POST %s failed after %d attempt%s: %s", url->text,
                        m->attempts, m->attempts == 1 ? "" : "s", why);
                if (n->unlogged[m->target])
                    fprintf(stderr, " (and %lu more failures since the last report)", n->unlogged[m->target]);
                fputc('\n', stderr);
                n->last_log[m->target] = t;
                n->unlogged[m->target] = 0;
            } else {
                n->unlogged[m->target]++;
            }
        } else {
            n->stats.retried++;
            m->next_try = mono_now() + n->backoff * pow(2, m->attempts - 1);
            append(n, m);
            m = NULL;
        }
        if (m) {
            free(m->body);
            free(m);
        }
    }
    n->in_flight = 0;
    pthread_cond_broadcast(&n->idle_cv);
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- Life cycle -------------------------------------------------------------- */

int kiln_alert_notifier_start(const kiln_alert_notifier_config_t *cfg, kiln_alert_notifier_t **out, char *err,
                              size_t errlen)
{
    *out = NULL;
    kiln_alert_notifier_t *n = calloc(1, sizeof *n);
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char e[256];
    if (cfg->alertmanager_url && *cfg->alertmanager_url) {
        if (kiln_http_url_parse(cfg->alertmanager_url, &n->am, e, sizeof e) != 0) {
            snprintf(err, errlen, "--alertmanager-url %s: %s", cfg->alertmanager_url, e);
            free(n);
            return -1;
        }
        /* The URL names the Alertmanager; its API lives under /api/v2/alerts. */
        size_t pl = strlen(n->am.path);
        while (pl > 0 && n->am.path[pl - 1] == '/')
            n->am.path[--pl] = '\0';
        if (pl + sizeof "/api/v2/alerts" > sizeof n->am.path) {
            snprintf(err, errlen, "--alertmanager-url %s: path too long", cfg->alertmanager_url);
            free(n);
            return -1;
        }
        if (pl < 14 || strcmp(n->am.path + pl - 14, "/api/v2/alerts"))
            strcat(n->am.path, "/api/v2/alerts");
        n->has_am = 1;
    }
    if (cfg->webhook_url && *cfg->webhook_url) {
        if (kiln_http_url_parse(cfg->webhook_url, &n->webhook, e, sizeof e) != 0) {
            snprintf(err, errlen, "--alert-webhook %s: %s", cfg->webhook_url, e);
            free(n);
            return -1;
        }
        n->has_webhook = 1;
    }
    n->external_url =
        strdup(cfg->external_url && *cfg->external_url ? cfg->external_url : "http://127.0.0.1:8002");
    if (!n->external_url) {
        free(n);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t el = strlen(n->external_url);
    while (el > 0 && n->external_url[el - 1] == '/')
        n->external_url[--el] = '\0';
    n->resend = cfg->resend_seconds > 0 ? cfg->resend_seconds : 60;
    n->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 5;
    n->backoff = cfg->backoff_seconds > 0 ? cfg->backoff_seconds : 0.5;
    n->timeout = cfg->timeout_seconds > 0 ? cfg->timeout_seconds : 5;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    pthread_cond_init(&n->idle_cv, NULL);
    int rc = pthread_create(&n->thread, NULL, notifier_thread, n);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the notifier thread: %s", strerror(rc));
        pthread_mutex_destroy(&n->mu);
        pthread_cond_destroy(&n->cv);
        pthread_cond_destroy(&n->idle_cv);
        free(n->external_url);
        free(n);
        return -1;
    }
    *out = n;
    return 0;
}

int kiln_alert_notifier_flush(kiln_alert_notifier_t *n, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double at = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + seconds;
    until.tv_sec = (time_t)at;
    until.tv_nsec = (long)((at - floor(at)) * 1e9);
    pthread_mutex_lock(&n->mu);
    int rc = 0;
    while ((n->head || n->in_flight) && rc != ETIMEDOUT) {
        pthread_cond_signal(&n->cv);
        rc = pthread_cond_timedwait(&n->idle_cv, &n->mu, &until);
    }
    int empty = !n->head && !n->in_flight;
    pthread_mutex_unlock(&n->mu);
    return empty ? 0 : -1;
}

void kiln_alert_notifier_stats(kiln_alert_notifier_t *n, kiln_alert_notifier_stats_t *out)
{
    pthread_mutex_lock(&n->mu);
    *out = n->stats;
    out->queued = n->queued;
    pthread_mutex_unlock(&n->mu);
}

void kiln_alert_notifier_stop(kiln_alert_notifier_t *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = 1;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    for (message_t *m = n->head; m;) {
        message_t *next = m->next;
        free(m->body);
        free(m);
        m = next;
    }
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    pthread_cond_destroy(&n->idle_cv);
    free(n->external_url);
    free(n);
}
