/*
 * http.c - the metrics HTTP server on libevent's evhttp (see http.h).
 *
 * One event loop on one thread serves every request; handlers are found in
 * a route table behind a recursive mutex, held while a handler runs, so
 * removing a route waits for its handler, and a handler may itself add or
 * remove routes.  The server thread is stopped with event_base_loopbreak(),
 * which libevent's pthread support makes safe from any thread.
 */
#include "monitor/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/keyvalq_struct.h>

#include "core/error.h"

#define MAX_BODY_BYTES (4 * 1024 * 1024)
#define MAX_HEADER_BYTES (64 * 1024)
#define REQUEST_TIMEOUT_S 30

typedef struct route {
    char *path;
    kiln_http_handler_fn fn;
    void *user;
} route_t;

struct kiln_metrics_server {
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev; /* activated by kiln_metrics_server_stop() */
    pthread_t thread;
    int port;
    pthread_mutex_t lock; /* recursive; guards routes and is held while a handler runs */
    route_t *routes;
    size_t n_routes, cap_routes;
};

#define MAX_PARAMS 256

struct kiln_http_request {
    struct evhttp_request *req;
    char *path;
    size_t n_params;
    char *keys[MAX_PARAMS], *values[MAX_PARAMS]; /* decoded, from URL then form body */
    char *body;
    size_t body_len;
    int responded;
};

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_ok;
static void init_threads(void) { threads_ok = evthread_use_pthreads() == 0; }

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    }
    return status < 400 ? "OK" : "Error";
}

const char *kiln_http_request_method(const kiln_http_request_t *r)
{
    switch (evhttp_request_get_command(r->req)) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default: return "OTHER";
    }
}

const char *kiln_http_request_path(const kiln_http_request_t *r) { return r->path; }

const char *kiln_http_request_param(const kiln_http_request_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_params; i++)
        if (!strcmp(r->keys[i], name))
            return r->values[i];
    return NULL;
}

size_t kiln_http_request_params(const kiln_http_request_t *r, const char *name,
                                const char **values, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_params; i++) {
        if (strcmp(r->keys[i], name))
            continue;
        if (n < max)
            values[n] = r->values[i];
        n++;
    }
    return n;
}

const char *kiln_http_request_header(const kiln_http_request_t *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *kiln_http_request_body(const kiln_http_request_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? r->body : "";
}

void kiln_http_respond(kiln_http_request_t *r, int status, const char *content_type,
                       const char *body, size_t len)
{
    if (r->responded)
        return;
    r->responded = 1;
    struct evbuffer *buf = evbuffer_new();
    if (buf && len)
        evbuffer_add(buf, body, len);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", content_type ? content_type : "text/plain");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(r->req, status, reason(status), buf);
    if (buf)
        evbuffer_free(buf);
}

void kiln_http_respond_error(kiln_http_request_t *r, int status, const char *message)
{
    json_t *obj = json_pack("{s:s}", "error", message ? message : "error");
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text)
        kiln_http_respond(r, status, "application/json", text, strlen(text));
    else
        kiln_http_respond(r, 500, "text/plain", "out of memory\n", 14);
    free(text);
    json_decref(obj);
}

/* Adds the pairs of an application/x-www-form-urlencoded text (len bytes),
 * decoding '+' and %XX in keys and values alike (libevent's own parser
 * leaves keys encoded, and clients send "match%5B%5D").  -1 when the text
 * has a NUL byte or more than MAX_PARAMS pairs. */
static int parse_params(kiln_http_request_t *r, const char *text, size_t len)
{
    if (memchr(text, '\0', len))
        return -1;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop > p) {
            if (r->n_params == MAX_PARAMS)
                return -1;
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            char *k = strndup(p, (size_t)((eq ? eq : stop) - p));
            char *v = eq ? strndup(eq + 1, (size_t)(stop - eq - 1)) : strdup("");
            char *dk = k ? evhttp_uridecode(k, 1, NULL) : NULL;
            char *dv = v ? evhttp_uridecode(v, 1, NULL) : NULL;
            free(k);
            free(v);
            if (!dk || !dv) {
                free(dk);
                free(dv);
                return -1;
            }
            r->keys[r->n_params] = dk;
            r->values[r->n_params++] = dv;
        }
        p = stop + 1;
    }
    return 0;
}

/* The route for path: exact match first, then the longest prefix ending in '/'. */
static route_t *find_route(kiln_metrics_server_t *srv, const char *path)
{
    route_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < srv->n_routes; i++) {
        route_t *rt = &srv->routes[i];
        size_t n = strlen(rt->path);
        if (!strcmp(rt->path, path))
            return rt;
        if (n && rt->path[n - 1] == '/' && !strncmp(rt->path, path, n) && n > best_len) {
            best = rt;
            best_len = n;
        }
    }
    return best;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    kiln_metrics_server_t *srv = arg;
    kiln_http_request_t r;
    memset(&r, 0, sizeof r);
    r.req = req;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    r.path = evhttp_uridecode(raw_path && raw_path[0] ? raw_path : "/", 0, NULL);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!r.path || (query && parse_params(&r, query, strlen(query)))) {
        kiln_http_respond_error(&r, 400, "malformed URL or query string");
        goto done;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    r.body_len = evbuffer_get_length(in);
    r.body = malloc(r.body_len + 1);
    if (!r.body) {
        kiln_http_respond_error(&r, 500, "out of memory");
        goto done;
    }
    evbuffer_copyout(in, r.body, r.body_len);
    r.body[r.body_len] = '\0';
    const char *ctype = kiln_http_request_header(&r, "Content-Type");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST && ctype &&
        !strncmp(ctype, "application/x-www-form-urlencoded", 33) && r.body_len &&
        parse_params(&r, r.body, r.body_len)) {
        kiln_http_respond_error(&r, 400, "malformed form body");
        goto done;
    }
    pthread_mutex_lock(&srv->lock);
    route_t *rt = find_route(srv, r.path);
    if (rt) {
        rt->fn(&r, rt->user);
        if (!r.responded)
            kiln_http_respond_error(&r, 500, "handler gave no answer");
    }
    pthread_mutex_unlock(&srv->lock);
    if (!rt) {
        char msg[300];
        snprintf(msg, sizeof msg, "no such endpoint: %.256s", r.path);
        kiln_http_respond_error(&r, 404, msg);
    }
done:
    for (size_t i = 0; i < r.n_params; i++) {
        free(r.keys[i]);
        free(r.values[i]);
    }
    free(r.path);
    free(r.body);
}

/* Runs on the loop thread.  An activated event stays queued until the loop
 * runs, so a stop that comes before event_base_dispatch() started is not
 * lost (a bare event_base_loopbreak() then would be). */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    kiln_metrics_server_t *srv = arg;
    event_base_loopbreak(srv->base);
}

static void *serve(void *arg)
{
    kiln_metrics_server_t *srv = arg;
    event_base_dispatch(srv->base);
    return NULL;
}

static void free_server(kiln_metrics_server_t *srv)
{
    if (srv->stop_ev)
        event_free(srv->stop_ev);
    if (srv->http)
        evhttp_free(srv->http);
    if (srv->base)
        event_base_free(srv->base);
    for (size_t i = 0; i < srv->n_routes; i++)
        free(srv->routes[i].path);
    free(srv->routes);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

kiln_status_t kiln_metrics_server_start(const char *host, int port, kiln_metrics_server_t **out)
{
    *out = NULL;
    if (!host || !host[0])
        host = "127.0.0.1";
    if (port < 0 || port > 65535)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "metrics server: port %d is not in 0..65535", port);
    pthread_once(&threads_once, init_threads);
    if (!threads_ok)
        return kiln_fail(KILN_ERR_RUNTIME, "metrics server: libevent has no pthread support");
    kiln_metrics_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return kiln_fail(KILN_ERR_NO_MEMORY, "metrics server: out of memory");
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&srv->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    srv->base = event_base_new();
    srv->http = srv->base ? evhttp_new(srv->base) : NULL;
    srv->stop_ev = srv->base ? event_new(srv->base, -1, 0, on_stop, srv) : NULL;
    if (!srv->http || !srv->stop_ev) {
        free_server(srv);
        return kiln_fail(KILN_ERR_NO_MEMORY, "metrics server: cannot create the event loop");
    }
    evhttp_set_max_body_size(srv->http, MAX_BODY_BYTES);
    evhttp_set_max_headers_size(srv->http, MAX_HEADER_BYTES);
    evhttp_set_timeout(srv->http, REQUEST_TIMEOUT_S);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(srv->http, dispatch, srv);
    errno = 0;
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!bound) {
        int e = errno;
        free_server(srv);
        return kiln_fail(KILN_ERR_IO, "metrics server: cannot listen on %s:%d: %s", host, port,
                         e ? strerror(e) : "address not usable");
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    srv->port = port;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (pthread_create(&srv->thread, NULL, serve, srv)) {
        free_server(srv);
        return kiln_fail(KILN_ERR_RUNTIME, "metrics server: cannot start its thread");
    }
    *out = srv;
    return KILN_OK;
}

void kiln_metrics_server_stop(kiln_metrics_server_t *srv)
{
    if (!srv)
        return;
    event_active(srv->stop_ev, 0, 0);
    pthread_join(srv->thread, NULL);
    free_server(srv);
}

int kiln_metrics_server_port(const kiln_metrics_server_t *srv) { return srv->port; }

kiln_status_t kiln_metrics_server_handle(kiln_metrics_server_t *srv, const char *path,
                                         kiln_http_handler_fn fn, void *user)
{
    if (!path || path[0] != '/' || !fn)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "metrics server: route '%s' must start with '/' "
                         "and have a handler", path ? path : "(null)");
    kiln_status_t st = KILN_OK;
    pthread_mutex_lock(&srv->lock);
    route_t *rt = NULL;
    for (size_t i = 0; i < srv->n_routes; i++)
        if (!strcmp(srv->routes[i].path, path))
            rt = &srv->routes[i];
    if (!rt) {
        if (srv->n_routes == srv->cap_routes) {
            size_t cap = srv->cap_routes ? srv->cap_routes * 2 : 16;
            route_t *nr = realloc(srv->routes, cap * sizeof *nr);
            if (!nr) {
                st = kiln_fail(KILN_ERR_NO_MEMORY, "metrics server: out of memory");
                goto out;
            }
            srv->routes = nr;
            srv->cap_routes = cap;
        }
        char *copy = strdup(path);
        if (!copy) {
            st = kiln_fail(KILN_ERR_NO_MEMORY, "metrics server: out of memory");
            goto out;
        }
        rt = &srv->routes[srv->n_routes++];
        rt->path = copy;
    }
    rt->fn = fn;
    rt->user = user;
out:
    pthread_mutex_unlock(&srv->lock);
    return st;
}

void kiln_metrics_server_unhandle(kiln_metrics_server_t *srv, const char *path)
{
    pthread_mutex_lock(&srv->lock);
    for (size_t i = 0; i < srv->n_routes; i++)
        if (!strcmp(srv->routes[i].path, path)) {
            free(srv->routes[i].path);
            memmove(&srv->routes[i], &srv->routes[i + 1],
                    (srv->n_routes - i - 1) * sizeof srv->routes[0]);
            srv->n_routes--;
            break;
        }
    pthread_mutex_unlock(&srv->lock);
}
