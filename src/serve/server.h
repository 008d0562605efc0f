/*
 * server.h - `kiln serve`: the KServe v2 HTTP server with Triton's
 * extensions, over a Triton-style model repository.
 *
 * Threads: http_threads libevent loops share one listening socket; each
 * model version has instance threads (scheduler.h); a poller rescans the
 * repository in poll mode; the monitoring plane (metrics port) has its own
 * HTTP thread and sampler.  An infer request is parsed on its HTTP thread,
 * queued to the model's runner, run on an instance thread, and its response
 * is handed back to the HTTP thread that owns the connection.
 */
#ifndef KILN_SERVE_SERVER_H
#define KILN_SERVE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln.h"

typedef enum kiln_control_mode {
    KILN_CONTROL_NONE = 0,     /* load everything at start, never change */
    KILN_CONTROL_POLL = 1,     /* rescan every poll_secs */
    KILN_CONTROL_EXPLICIT = 2  /* load/unload through the repository API */
} kiln_control_mode_t;

#define KILN_SERVE_MAX_LOAD 64

typedef struct kiln_serve_options {
    const char *repository;
    const char *host;               /* default 127.0.0.1 */
    int http_port;                  /* default 8000; 0 = pick a free port */
    int metrics_port;               /* default 8002; 0 = pick a free port; -1 = off */
    kiln_control_mode_t control_mode;
    int poll_secs;                  /* default 15 */
    int n_load;                     /* --load-model (explicit mode) */
    const char *load[KILN_SERVE_MAX_LOAD];
    size_t max_body_bytes;          /* default 64 MiB */
    const char *management_token;   /* NULL = none */
    int http_threads;               /* default 2 */
    int intra_op_threads;           /* per session; default 1 */
    int max_queue_size;             /* default per model when its config has none */
    const char *history_path;       /* monitoring */
    const char *alert_rules;
    const char *alertmanager_url;
    const char *alert_webhook;
    int monitor_interval_ms;
    bool quiet;
} kiln_serve_options_t;

typedef struct kiln_server kiln_server_t;

void kiln_serve_options_init(kiln_serve_options_t *o);

/* Loads the repository (as the control mode says), binds the ports and
 * starts serving. Returns once serving; errors name what failed. */
kiln_status_t kiln_server_start(const kiln_serve_options_t *o, kiln_server_t **out);

int kiln_server_http_port(const kiln_server_t *s);
int kiln_server_metrics_port(const kiln_server_t *s);

/* Graceful stop: refuse new work, finish what is in flight, free. */
void kiln_server_stop(kiln_server_t *s);

#endif
