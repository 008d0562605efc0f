/*
 * cmd_monitor.c - `kiln monitor`: the monitoring plane alone, for a host
 * with no models (DESIGN.md contract):
 *
 *   kiln monitor [--host 127.0.0.1] [--port 8002] [--interval-ms N]
 *                [--history FILE] [--alert-rules FILE]
 *                [--alertmanager-url URL] [--alert-webhook URL]
 *
 * It starts the metrics HTTP server, the monitor (sampler, history,
 * /metrics, /api/v1) and the alert engine with the dashboard
 * (monitor_alerts.h), then waits for SIGINT or SIGTERM
 * and stops everything in reverse order, exiting 0.  The signals are
 * blocked in every thread and taken with sigwait() here, so no thread is
 * interrupted in the middle of a write to the history.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "monitor/api.h"
#include "monitor/http.h"
#include "monitor/monitor.h"
#include "monitor/monitor_alerts.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln monitor [--host 127.0.0.1] [--port 8002] [--interval-ms N] [--history FILE]\n"
            "                    [--alert-rules FILE] [--alertmanager-url URL] [--alert-webhook URL]\n"
            "                    [--raw-retention DURATION] [--rollup-retention DURATION] [--quiet]\n"
            "  Samples GPUs (NVML; $KILN_NVML_LIBRARY or libnvidia-ml.so.1), the host and kiln\n"
            "  itself every --interval-ms (default 1000), serves /metrics (Prometheus text),\n"
            "  /api/v1/query_range, /api/v1/query, /api/v1/series, /api/v1/labels,\n"
            "  /api/v1/alerts, /api/v1/rules and /dashboard on HOST:PORT, and keeps the history in\n"
            "  FILE (SQLite; default in memory): raw samples for --raw-retention (24h),\n"
            "  per-minute min/avg/max for --rollup-retention (30d).  SIGINT or SIGTERM stop it.\n");
}

/* Takes the value of --name VALUE or --name=VALUE; advances *i. */
static int flag_value(int argc, char **argv, int *i, const char *name, const char **out)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n))
        return 0;
    if (argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        *out = NULL;
        return 1;
    }
    *out = argv[++*i];
    return 1;
}

static int parse_int(const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int kiln_cmd_monitor(int argc, char **argv)
{
    const char *host = "127.0.0.1", *history = NULL, *rules = NULL, *am_url = NULL, *hook = NULL;
    const char *raw_ret = NULL, *rollup_ret = NULL;
    long port = 8002, interval = 1000;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        const char *flag = argv[i];
        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            usage(stdout);
            return KILN_EXIT_OK;
        }
        if (!strcmp(flag, "--quiet")) {
            quiet = 1;
            continue;
        }
        int known = 1;
        if (flag_value(argc, argv, &i, "--host", &v)) {
            if (v)
                host = v;
        } else if (flag_value(argc, argv, &i, "--port", &v)) {
            if (v && parse_int(v, 0, 65535, &port)) {
                fprintf(stderr, "kiln monitor: --port wants a number in 0..65535, not '%s'\n", v);
                return KILN_EXIT_BAD_INPUT;
            }
        } else if (flag_value(argc, argv, &i, "--interval-ms", &v)) {
            if (v && parse_int(v, 10, 3600000, &interval)) {
                fprintf(stderr, "kiln monitor: --interval-ms wants a number in 10..3600000, not '%s'\n", v);
                return KILN_EXIT_BAD_INPUT;
            }
        } else if (flag_value(argc, argv, &i, "--history", &v)) {
            history = v;
        } else if (flag_value(argc, argv, &i, "--alert-rules", &v)) {
            rules = v;
        } else if (flag_value(argc, argv, &i, "--alertmanager-url", &v)) {
            am_url = v;
        } else if (flag_value(argc, argv, &i, "--alert-webhook", &v)) {
            hook = v;
        } else if (flag_value(argc, argv, &i, "--raw-retention", &v)) {
            raw_ret = v;
        } else if (flag_value(argc, argv, &i, "--rollup-retention", &v)) {
            rollup_ret = v;
        } else {
            known = 0;
        }
        if (!known) {
            fprintf(stderr, "kiln monitor: unknown argument '%s'\n", flag);
            usage(stderr);
            return KILN_EXIT_BAD_INPUT;
        }
        if (!v || !v[0]) {
            fprintf(stderr, "kiln monitor: %s needs a value\n", flag);
            return KILN_EXIT_BAD_INPUT;
        }
    }
    kiln_monitor_options_t opts = {0};
    opts.interval_ms = (int)interval;
    opts.history_path = history;
    opts.quiet = quiet;
    int64_t ms;
    if (raw_ret) {
        if (kiln_api_parse_duration(raw_ret, &ms) || ms < 60000) {
            fprintf(stderr, "kiln monitor: --raw-retention wants a duration of at least 1m, not '%s'\n", raw_ret);
            return KILN_EXIT_BAD_INPUT;
        }
        opts.store.raw_retention_ms = ms;
    }
    if (rollup_ret) {
        if (kiln_api_parse_duration(rollup_ret, &ms) || ms < 60000) {
            fprintf(stderr, "kiln monitor: --rollup-retention wants a duration of at least 1m, not '%s'\n", rollup_ret);
            return KILN_EXIT_BAD_INPUT;
        }
        opts.store.rollup_retention_ms = ms;
    }

    /* Block the stop signals before any thread starts, so all inherit the mask. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    kiln_metrics_server_t *srv = NULL;
    if (kiln_metrics_server_start(host, (int)port, &srv)) {
        fprintf(stderr, "kiln monitor: %s\n", kiln_last_error());
        return KILN_EXIT_CHECK_FAILED;
    }
    kiln_monitor_t *mon = NULL;
    kiln_status_t st = kiln_monitor_start(&opts, srv, &mon);
    if (st) {
        fprintf(stderr, "kiln monitor: %s\n", kiln_last_error());
        kiln_metrics_server_stop(srv);
        return st == KILN_ERR_INVALID_ARGUMENT || st == KILN_ERR_IO ? KILN_EXIT_BAD_INPUT
                                                                    : KILN_EXIT_CHECK_FAILED;
    }
    char external[300];
    snprintf(external, sizeof external, "http://%s:%d", host, kiln_metrics_server_port(srv));
    kiln_monitor_alerts_options_t aopts = {rules, am_url, hook, external, (int)interval};
    kiln_monitor_alerts_t *alerts = NULL;
    if (kiln_monitor_alerts_start(mon, srv, &aopts, &alerts)) {
        fprintf(stderr, "kiln monitor: %s\n", kiln_last_error());
        kiln_monitor_stop(mon);
        kiln_metrics_server_stop(srv);
        return KILN_EXIT_BAD_INPUT;
    }
    printf("kiln monitor: listening on %s (history %s)\n", external, history ? history : "in memory");
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0) {
    }
    if (!quiet)
        fprintf(stderr, "kiln monitor: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    kiln_monitor_alerts_stop(alerts);
    kiln_monitor_stop(mon);
    kiln_metrics_server_stop(srv);
    return KILN_EXIT_OK;
}
