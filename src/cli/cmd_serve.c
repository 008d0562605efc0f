/*
 * cmd_serve.c - `kiln serve --model-repository DIR [--host 127.0.0.1]
 *   [--http-port 8000] [--metrics-port 8002]
 *   [--model-control-mode none|poll|explicit] [--repository-poll-secs N]
 *   [--load-model NAME]... [--management-token T] [--max-body-bytes N]
 *   [--http-threads N] [--threads N] [--max-queue-size N] [--history FILE]
 *   [--alert-rules FILE] [--alertmanager-url URL] [--alert-webhook URL]`
 *
 * Starts the server, prints its URLs, and waits for SIGINT or SIGTERM;
 * then stops accepting, lets in-flight requests finish and exits 0.
 * Signals are blocked in every thread and taken with sigwait() here, so no
 * handler runs in the middle of the server's work.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "serve/server.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln serve --model-repository DIR [--host 127.0.0.1] [--http-port 8000]\n"
            "                  [--metrics-port 8002] [--model-control-mode none|poll|explicit]\n"
            "                  [--repository-poll-secs N] [--load-model NAME]... [--management-token T]\n"
            "                  [--max-body-bytes N] [--http-threads N] [--threads N] [--max-queue-size N]\n"
            "                  [--history FILE] [--alert-rules FILE] [--alertmanager-url URL]\n"
            "                  [--alert-webhook URL] [--quiet]\n"
            "  Serves the models of a Triton-style repository over the KServe v2 HTTP protocol.\n"
            "  --metrics-port -1 turns the metrics endpoint off.\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int kiln_cmd_serve(int argc, char **argv)
{
    kiln_serve_options_t o;
    kiln_serve_options_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return KILN_EXIT_OK;
        }
        if (!strcmp(a, "--quiet")) {
            o.quiet = true;
            continue;
        }
        if (i + 1 >= argc || a[0] != '-') {
            fprintf(stderr, "kiln serve: %s '%s'\n", a[0] == '-' ? "missing value for" : "unexpected argument", a);
            usage(stderr);
            return KILN_EXIT_BAD_INPUT;
        }
        const char *v = argv[++i];
        long n;
        if (!strcmp(a, "--model-repository") || !strcmp(a, "--model-store")) {
            o.repository = v;
        } else if (!strcmp(a, "--host")) {
            o.host = v;
        } else if (!strcmp(a, "--http-port") || !strcmp(a, "--metrics-port")) {
            if (!parse_long(v, !strcmp(a, "--metrics-port") ? -1 : 0, 65535, &n)) {
                fprintf(stderr, "kiln serve: %s must be a port number, not '%s'\n", a, v);
                return KILN_EXIT_BAD_INPUT;
            }
            if (!strcmp(a, "--http-port"))
                o.http_port = (int)n;
            else
                o.metrics_port = (int)n;
        } else if (!strcmp(a, "--model-control-mode")) {
            if (!strcmp(v, "none"))
                o.control_mode = KILN_CONTROL_NONE;
            else if (!strcmp(v, "poll"))
                o.control_mode = KILN_CONTROL_POLL;
            else if (!strcmp(v, "explicit"))
                o.control_mode = KILN_CONTROL_EXPLICIT;
            else {
                fprintf(stderr, "kiln serve: --model-control-mode must be none, poll or explicit, not '%s'\n", v);
                return KILN_EXIT_BAD_INPUT;
            }
        } else if (!strcmp(a, "--repository-poll-secs") || !strcmp(a, "--http-threads") || !strcmp(a, "--threads") ||
                   !strcmp(a, "--max-queue-size") || !strcmp(a, "--max-body-bytes") ||
                   !strcmp(a, "--interval-ms")) {
            if (!parse_long(v, 1, 1L << 40, &n)) {
                fprintf(stderr, "kiln serve: %s must be a positive number, not '%s'\n", a, v);
                return KILN_EXIT_BAD_INPUT;
            }
            if (!strcmp(a, "--repository-poll-secs"))
                o.poll_secs = (int)(n > 86400 ? 86400 : n);
            else if (!strcmp(a, "--http-threads"))
                o.http_threads = (int)(n > 32 ? 32 : n);
            else if (!strcmp(a, "--threads"))
                o.intra_op_threads = (int)(n > 256 ? 256 : n);
            else if (!strcmp(a, "--max-queue-size"))
                o.max_queue_size = (int)(n > 1000000 ? 1000000 : n);
            else if (!strcmp(a, "--interval-ms"))
                o.monitor_interval_ms = (int)(n > 3600000 ? 3600000 : n);
            else
                o.max_body_bytes = (size_t)n;
        } else if (!strcmp(a, "--load-model")) {
            if (o.n_load >= KILN_SERVE_MAX_LOAD) {
                fprintf(stderr, "kiln serve: too many --load-model flags\n");
                return KILN_EXIT_BAD_INPUT;
            }
            o.load[o.n_load++] = v;
        } else if (!strcmp(a, "--management-token")) {
            o.management_token = v;
        } else if (!strcmp(a, "--history")) {
            o.history_path = v;
        } else if (!strcmp(a, "--alert-rules")) {
            o.alert_rules = v;
        } else if (!strcmp(a, "--alertmanager-url")) {
            o.alertmanager_url = v;
        } else if (!strcmp(a, "--alert-webhook")) {
            o.alert_webhook = v;
        } else {
            fprintf(stderr, "kiln serve: unknown option '%s'\n", a);
            usage(stderr);
            return KILN_EXIT_BAD_INPUT;
        }
    }
    if (!o.repository) {
        fprintf(stderr, "kiln serve: --model-repository DIR is required\n");
        usage(stderr);
        return KILN_EXIT_BAD_INPUT;
    }
    if (o.n_load && o.control_mode != KILN_CONTROL_EXPLICIT) {
        fprintf(stderr, "kiln serve: --load-model needs --model-control-mode explicit\n");
        return KILN_EXIT_BAD_INPUT;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    kiln_server_t *server;
    if (kiln_server_start(&o, &server) != KILN_OK) {
        fprintf(stderr, "kiln serve: %s\n", kiln_last_error());
        return KILN_EXIT_BAD_INPUT;
    }
    printf("kiln serve: KServe v2 HTTP on http://%s:%d/v2\n", o.host, kiln_server_http_port(server));
    if (kiln_server_metrics_port(server) > 0)
        printf("kiln serve: metrics on http://%s:%d/metrics, dashboard on http://%s:%d/dashboard\n", o.host,
               kiln_server_metrics_port(server), o.host, kiln_server_metrics_port(server));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    printf("kiln serve: %s received, finishing in-flight requests\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    fflush(stdout);
    kiln_server_stop(server);
    printf("kiln serve: stopped\n");
    return KILN_EXIT_OK;
}
