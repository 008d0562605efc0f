/*
 * http.h - the metrics HTTP server (libevent's evhttp on its own thread),
 * shared by `kiln monitor` and `kiln serve --metrics-port`.
 *
 * The server owns a table of handlers keyed by path (exact, or a prefix
 * ending in '/').  Handlers may be added and removed at any time from any
 * thread; a request is routed to the exact path first, then to the longest
 * matching prefix, else answered 404 {"error": "..."}.  Handlers run on the
 * server thread, one at a time: they must answer quickly and must answer
 * exactly once (kiln_http_respond*) before returning.
 *
 * Query parameters come from the URL and, for a POST with
 * Content-Type application/x-www-form-urlencoded, from the body too (as
 * Prometheus's API accepts), so GET and POST behave alike.
 */
#ifndef KILN_MONITOR_HTTP_H
#define KILN_MONITOR_HTTP_H

#include <stddef.h>

#include "kiln.h"

typedef struct kiln_metrics_server kiln_metrics_server_t;
typedef struct kiln_http_request kiln_http_request_t;

typedef void (*kiln_http_handler_fn)(kiln_http_request_t *req, void *user);

/* Binds host:port (port 0 picks a free port; see kiln_metrics_server_port)
 * and starts serving on a new thread.  On success *out is the server; stop
 * and free it with kiln_metrics_server_stop().  Errors: KILN_ERR_IO when the
 * address cannot be bound (the message names host:port and the reason). */
kiln_status_t kiln_metrics_server_start(const char *host, int port, kiln_metrics_server_t **out);

/* Stops serving, waits for the thread and frees the server.  Safe with NULL. */
void kiln_metrics_server_stop(kiln_metrics_server_t *srv);

/* The port actually bound. */
int kiln_metrics_server_port(const kiln_metrics_server_t *srv);

/* Routes path to fn.  A path ending in '/' (e.g. "/api/v1/") is a prefix
 * that also receives every path below it.  Registering a path again
 * replaces its handler.  user stays owned by the caller and must outlive the
 * registration. */
kiln_status_t kiln_metrics_server_handle(kiln_metrics_server_t *srv, const char *path,
                                         kiln_http_handler_fn fn, void *user);
/* Removes the route; when it returns, the handler is not running. */
void kiln_metrics_server_unhandle(kiln_metrics_server_t *srv, const char *path);

/* ---- Inside a handler -------------------------------------------------- */

/* "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS" or "OTHER". */
const char *kiln_http_request_method(const kiln_http_request_t *req);
/* The decoded path, without the query string. */
const char *kiln_http_request_path(const kiln_http_request_t *req);
/* The first value of a query parameter, or NULL when absent. */
const char *kiln_http_request_param(const kiln_http_request_t *req, const char *name);
/* Every value of a repeated parameter such as "match[]": stores up to max
 * pointers into values and returns how many there are in all. */
size_t kiln_http_request_params(const kiln_http_request_t *req, const char *name,
                                const char **values, size_t max);
/* A request header, or NULL. */
const char *kiln_http_request_header(const kiln_http_request_t *req, const char *name);
/* The body (not NUL-terminated); *len receives its length. */
const char *kiln_http_request_body(const kiln_http_request_t *req, size_t *len);

/* Answers with a status, a content type and a body (copied). */
void kiln_http_respond(kiln_http_request_t *req, int status, const char *content_type,
                       const char *body, size_t len);
/* Answers {"error": message} (Prometheus-API handlers add their own shape). */
void kiln_http_respond_error(kiln_http_request_t *req, int status, const char *message);

#endif
