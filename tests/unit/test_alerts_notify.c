/*
 * test_alerts_notify.c - unit tests of alert delivery: URL parsing (good
 * and bad), the Alertmanager body (/api/v2/alerts), the webhook body
 * (version "4"), re-sending while firing, endsAt once resolved, retries
 * with backoff after a 503, no retry after a 400, and a dead receiver that
 * costs the caller nothing.  A small HTTP server on a loopback port in a
 * thread of this test records what arrives and answers scripted statuses.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "monitor/alert_internal.h"
#include "monitor/http_client.h"

/* ---- A recording HTTP server ------------------------------------------------ */

#define MAX_REQ 64

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    char *paths[MAX_REQ];
    char *bodies[MAX_REQ];
    int nreq;
    int statuses[MAX_REQ]; /* answer for request i; 0 means 200 */
    int stop;
} server_t;

static void *serve(void *arg)
{
    server_t *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        pthread_mutex_lock(&s->mu);
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            close(c);
            return NULL;
        }
        char buf[65536];
        size_t len = 0;
        char *hend = NULL;
        while (len < sizeof buf - 1) {
            ssize_t n = recv(c, buf + len, sizeof buf - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
            hend = strstr(buf, "\r\n\r\n");
            if (hend) {
                char *cl = strcasestr(buf, "Content-Length:");
                size_t want = cl ? (size_t)atol(cl + 15) : 0;
                if (len >= (size_t)(hend - buf) + 4 + want)
                    break;
            }
        }
        if (!hend) {
            close(c);
            continue;
        }
        char path[256] = "";
        sscanf(buf, "%*s %255s", path);
        pthread_mutex_lock(&s->mu);
        int i = s->nreq < MAX_REQ ? s->nreq++ : MAX_REQ - 1;
        int status = s->statuses[i] ? s->statuses[i] : 200;
        free(s->paths[i]);
        free(s->bodies[i]);
        s->paths[i] = strdup(path);
        s->bodies[i] = strdup(hend + 4);
        pthread_mutex_unlock(&s->mu);
        char answer[128];
        int n = snprintf(answer, sizeof answer,
                         "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", status);
        send(c, answer, (size_t)n, MSG_NOSIGNAL);
        close(c);
    }
}

static void server_start(server_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(s->fd, (struct sockaddr *)&a, sizeof a);
    listen(s->fd, 16);
    socklen_t al = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(server_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < MAX_REQ; i++) {
        free(s->paths[i]);
        free(s->bodies[i]);
    }
    pthread_mutex_destroy(&s->mu);
}

static int server_count(server_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->nreq;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The i-th body parsed as JSON (caller decrefs), or NULL. */
static json_t *server_json(server_t *s, int i, char *path, size_t pathlen)
{
    pthread_mutex_lock(&s->mu);
    json_t *j = NULL;
    if (i < s->nreq && s->bodies[i]) {
        json_error_t e;
        j = json_loads(s->bodies[i], 0, &e);
        snprintf(path, pathlen, "%s", s->paths[i]);
    }
    pthread_mutex_unlock(&s->mu);
    return j;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- URL parsing --------------------------------------------------------------- */

static void test_urls(void)
{
    kiln_http_url_t u;
    char err[200];
    CHECK(kiln_http_url_parse("http://127.0.0.1:9093", &u, err, sizeof err) == 0);
    CHECK(!strcmp(u.host, "127.0.0.1") && !strcmp(u.port, "9093") && !strcmp(u.path, "/"));
    CHECK(kiln_http_url_parse("http://[::1]:8080/hook?x=1#frag", &u, err, sizeof err) == 0);
    CHECK(!strcmp(u.host, "::1") && !strcmp(u.port, "8080") && !strcmp(u.path, "/hook?x=1"));
    CHECK(kiln_http_url_parse("HTTP://example.com", &u, err, sizeof err) == 0);
    CHECK(!strcmp(u.port, "80"));
    CHECK(kiln_http_url_parse("http://h?q", &u, err, sizeof err) == 0 && !strcmp(u.path, "/?q"));
    const char *bad[] = {"https://h/",    "ftp://h",      "http://",        "http://:80/",
                         "http://u:p@h/", "http://h:0/",  "http://h:70000", "http://h:12ab/",
                         "http://h/a b",  "http://[::1/", "http://h:/",     "",
                         "http://h\x01/", "127.0.0.1:80"};
    const char *why[] = {"https is not supported",
                         "must start with http://",
                         "no host",
                         "no host",
                         "user names",
                         "out of range",
                         "out of range",
                         "must be a number",
                         "space",
                         "unterminated '['",
                         "bad port",
                         "empty URL",
                         "invalid character",
                         "must start with http://"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(kiln_http_url_parse(bad[i], &u, err, sizeof err) == -1, "'%s' should fail", bad[i]);
        CHECK_MSG(strstr(err, why[i]) != NULL, "'%s': want '%s' got '%s'", bad[i], why[i], err);
    }
    char longurl[700];
    memset(longurl, 'a', sizeof longurl - 1);
    longurl[sizeof longurl - 1] = '\0';
    memcpy(longurl, "http://", 7);
    CHECK(kiln_http_url_parse(longurl, &u, err, sizeof err) == -1 && strstr(err, "longer than"));

    kiln_alert_notifier_t *n = NULL;
    kiln_alert_notifier_config_t cfg = {.alertmanager_url = "https://am:9093"};
    CHECK(kiln_alert_notifier_start(&cfg, &n, err, sizeof err) == -1 && n == NULL);
    CHECK_MSG(strstr(err, "--alertmanager-url https://am:9093: https is not supported") != NULL, "%s", err);
    cfg = (kiln_alert_notifier_config_t){.webhook_url = "http://h:99999/x"};
    CHECK(kiln_alert_notifier_start(&cfg, &n, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "--alert-webhook http://h:99999/x: port 99999 out of range") != NULL, "%s", err);
}

/* ---- Engine + notifier ------------------------------------------------------------ */

typedef struct level {
    double value; /* what the synthetic metric reads now */
} level_t;

static int level_select(void *ctx, const kiln_alert_selector_t *sel, double start, double end,
                        kiln_series_set_t *out, char *err, size_t errlen)
{
    level_t *l = ctx;
    const char *names[] = {"__name__", "gpu_uuid"};
    const char *values[] = {"temp", "GPU-7"};
    if (!kiln_alert_selector_matches(sel, names, values, 2))
        return 0;
    kiln_series_t *s = kiln_series_set_add(out, names, values, 2);
    return s ? kiln_series_add_sample(s, end, l->value) : -1;
}

static const double T0 = 1764072000.0;

static void test_delivery(void)
{
    server_t am, wh;
    server_start(&am);
    server_start(&wh);
    char url_am[64], url_wh[64], err[300];
    snprintf(url_am, sizeof url_am, "http://127.0.0.1:%d/prefix/", am.port);
    snprintf(url_wh, sizeof url_wh, "http://127.0.0.1:%d/hook", wh.port);
    kiln_alert_notifier_config_t cfg = {.alertmanager_url = url_am,
                                        .webhook_url = url_wh,
                                        .external_url = "http://kiln.test:8002/",
                                        .resend_seconds = 60,
                                        .backoff_seconds = 0.05,
                                        .max_attempts = 3,
                                        .timeout_seconds = 2};
    kiln_alert_notifier_t *n = NULL;
    CHECK_MSG(kiln_alert_notifier_start(&cfg, &n, err, sizeof err) == 0, "%s", err);
    if (!n)
        return;
    static const char *yaml = "groups:\n- name: g\n  rules:\n  - alert: Hot\n    expr: temp > 80\n"
                              "    labels: {severity: page}\n"
                              "    annotations: {summary: '{{ $labels.gpu_uuid }} at {{ $value }}'}\n";
    kiln_alert_rules_t *rules;
    CHECK(kiln_alert_rules_parse(yaml, strlen(yaml), "n.yml", &rules, err, sizeof err) == 0);
    level_t level = {90};
    kiln_alert_source_t src = {level_select, &level};
    kiln_alert_engine_t *e = kiln_alert_engine_new(rules, &src);
    kiln_alert_engine_set_notifier(e, n);

    CHECK(kiln_alert_engine_evaluate(e, T0, err, sizeof err) == 0); /* for: 0: fires at once */
    CHECK(kiln_alert_notifier_flush(n, 5) == 0);
    CHECK(server_count(&am) == 1 && server_count(&wh) == 1);
    char path[256] = "";
    json_t *j = server_json(&am, 0, path, sizeof path);
    CHECK_MSG(!strcmp(path, "/prefix/api/v2/alerts"), "path %s", path);
    CHECK(json_is_array(j) && json_array_size(j) == 1);
    json_t *a = json_array_get(j, 0);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(a, "labels"), "alertname")), "Hot"));
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(a, "labels"), "gpu_uuid")), "GPU-7"));
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(a, "annotations"), "summary")),
                  "GPU-7 at 90"));
    CHECK(!strcmp(json_string_value(json_object_get(a, "startsAt")), "2025-11-25T12:00:00.000Z"));
    /* valid for four resend periods, so a dead kiln's alert resolves itself */
    CHECK(!strcmp(json_string_value(json_object_get(a, "endsAt")), "2025-11-25T12:04:00.000Z"));
    CHECK(!strcmp(json_string_value(json_object_get(a, "generatorURL")), "http://kiln.test:8002/dashboard"));
    json_decref(j);

    j = server_json(&wh, 0, path, sizeof path);
    CHECK(!strcmp(path, "/hook"));
    CHECK(!strcmp(json_string_value(json_object_get(j, "version")), "4"));
    CHECK(!strcmp(json_string_value(json_object_get(j, "status")), "firing"));
    CHECK(!strcmp(json_string_value(json_object_get(j, "receiver")), "kiln"));
    CHECK(!strcmp(json_string_value(json_object_get(j, "groupKey")), "{}:{alertname=\"Hot\"}"));
    CHECK(!strcmp(json_string_value(json_object_get(j, "externalURL")), "http://kiln.test:8002"));
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "groupLabels"), "alertname")), "Hot"));
    CHECK(
        !strcmp(json_string_value(json_object_get(json_object_get(j, "commonLabels"), "severity")), "page"));
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "commonAnnotations"), "summary")),
                  "GPU-7 at 90"));
    a = json_array_get(json_object_get(j, "alerts"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(a, "status")), "firing"));
    CHECK(!strcmp(json_string_value(json_object_get(a, "endsAt")), "0001-01-01T00:00:00Z"));
    CHECK(strlen(json_string_value(json_object_get(a, "fingerprint"))) == 16);
    json_decref(j);

    /* Still firing: nothing new before the resend interval, then a re-send;
     * the webhook hears only changes. */
    CHECK(kiln_alert_engine_evaluate(e, T0 + 30, err, sizeof err) == 0);
    kiln_alert_notifier_flush(n, 5);
    CHECK(server_count(&am) == 1);
    CHECK(kiln_alert_engine_evaluate(e, T0 + 61, err, sizeof err) == 0);
    kiln_alert_notifier_flush(n, 5);
    CHECK(server_count(&am) == 2 && server_count(&wh) == 1);

    /* Resolved: endsAt is the resolve time, the webhook says resolved. */
    level.value = 10;
    CHECK(kiln_alert_engine_evaluate(e, T0 + 90, err, sizeof err) == 0);
    kiln_alert_notifier_flush(n, 5);
    CHECK(server_count(&am) == 3 && server_count(&wh) == 2);
    j = server_json(&am, 2, path, sizeof path);
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(j, 0), "endsAt")),
                  "2025-11-25T12:01:30.000Z"));
    json_decref(j);
    j = server_json(&wh, 1, path, sizeof path);
    CHECK(!strcmp(json_string_value(json_object_get(j, "status")), "resolved"));
    a = json_array_get(json_object_get(j, "alerts"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(a, "endsAt")), "2025-11-25T12:01:30.000Z"));
    json_decref(j);

    /* Retry: the Alertmanager fails once with 503, then accepts. */
    pthread_mutex_lock(&am.mu);
    am.statuses[3] = 503;
    pthread_mutex_unlock(&am.mu);
    level.value = 95;
    CHECK(kiln_alert_engine_evaluate(e, T0 + 120, err, sizeof err) == 0);
    CHECK(kiln_alert_notifier_flush(n, 5) == 0);
    CHECK(server_count(&am) == 5);
    kiln_alert_notifier_stats_t st;
    kiln_alert_notifier_stats(n, &st);
    CHECK_MSG(st.retried == 1 && st.failed == 0 && st.sent == 7, "sent %lu retried %lu failed %lu", st.sent,
              st.retried, st.failed);

    /* A 400 is final: no retry. */
    pthread_mutex_lock(&wh.mu);
    wh.statuses[3] = 400;
    pthread_mutex_unlock(&wh.mu);
    level.value = 10;
    CHECK(kiln_alert_engine_evaluate(e, T0 + 150, err, sizeof err) == 0);
    kiln_alert_notifier_flush(n, 5);
    kiln_alert_notifier_stats(n, &st);
    CHECK(server_count(&wh) == 4 && st.failed == 1);

    kiln_alert_engine_free(e);
    kiln_alert_notifier_stop(n);
    server_stop(&am);
    server_stop(&wh);
}

static void test_dead_receiver(void)
{
    /* A port with nothing behind it: take one, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char url[64], err[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    kiln_alert_notifier_config_t cfg = {.alertmanager_url = url, .backoff_seconds = 0.02, .max_attempts = 3};
    kiln_alert_notifier_t *n = NULL;
    CHECK(kiln_alert_notifier_start(&cfg, &n, err, sizeof err) == 0);
    if (!n)
        return;
    alert_notice_t notice = {0};
    alert_labels_set(&notice.labels, "alertname", "X");
    notice.starts_at = T0;
    double t0 = mono();
    for (int i = 0; i < 100; i++)
        alert_notifier_enqueue(n, ALERT_TARGET_ALERTMANAGER, "X", &notice, 1);
    CHECK_MSG(mono() - t0 < 0.5, "enqueue took %.3f s", mono() - t0); /* never waits on the network */
    alert_notifier_enqueue(n, ALERT_TARGET_WEBHOOK, "X", &notice, 1); /* no webhook: ignored */
    CHECK(kiln_alert_notifier_flush(n, 10) == 0);
    kiln_alert_notifier_stats_t st;
    kiln_alert_notifier_stats(n, &st);
    CHECK_MSG(st.failed == 100 && st.sent == 0 && st.retried == 200, "failed %lu retried %lu", st.failed,
              st.retried);
    /* Stopping with work queued returns promptly. */
    for (int i = 0; i < 5; i++)
        alert_notifier_enqueue(n, ALERT_TARGET_ALERTMANAGER, "X", &notice, 1);
    t0 = mono();
    kiln_alert_notifier_stop(n);
    CHECK_MSG(mono() - t0 < 5, "stop took %.3f s", mono() - t0);
    alert_labels_clear(&notice.labels);
}

int main(void)
{
    test_urls();
    test_delivery();
    test_dead_receiver();
    return check_finish();
}
