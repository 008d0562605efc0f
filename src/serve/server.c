/*
 * server.c - the KServe v2 / Triton HTTP server (see server.h).
 *
 * The model table maps names to entries; an entry holds its loaded
 * versions, each a runner with a reference count: the table holds one
 * reference, every request in flight holds one, and the runner is freed
 * (after draining) when the last is dropped.  So an unload or a poll-mode
 * reload never cuts off a request: in-flight requests finish on the version
 * they started on.
 *
 * The story of an infer request: on_request() routes it; handle_infer()
 * checks the size and content, parses the body (protocol.c), validates the
 * inputs against the model, and submits to the runner; the instance thread
 * calls infer_done(), which wakes the request's HTTP thread through a
 * libevent event; send_infer_response() writes the answer and drops the
 * references.
 */
#include "serve/server.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "core/error.h"
#include "core/session.h"
#include "monitor/http.h"
#include "monitor/inference_stats.h"
#include "monitor/monitor.h"
#include "monitor/monitor_alerts.h"
#include "serve/model_config.h"
#include "serve/protocol.h"
#include "serve/repository.h"
#include "serve/scheduler.h"

#define MAX_HTTP_THREADS 32
#define MAX_HEADER_BYTES (64 * 1024)
#define DRAIN_SECONDS 30
#define IDLE_TIMEOUT_SECONDS 60

typedef struct loaded_version {
    int64_t version;
    int64_t mtime_ns;
    kiln_runner_t *runner;
    atomic_int refs;               /* the table's + one per request in flight */
    kiln_model_stats_t *stats;     /* monitoring counters */
} loaded_version_t;

typedef struct model_entry {
    char name[KILN_CONFIG_NAME_MAX];
    kiln_model_config_t config;
    int64_t config_mtime_ns;
    int n_versions;
    loaded_version_t *versions[KILN_CONFIG_MAX_VERSIONS]; /* ascending */
    char state[16];                /* READY, UNAVAILABLE */
    char reason[256];
} model_entry_t;

typedef struct http_thread {
    struct kiln_server *server;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    pthread_t thread;
} http_thread_t;

struct kiln_server {
    kiln_serve_options_t opts;
    pthread_rwlock_t table_lock;
    int n_models;
    model_entry_t *models[KILN_REPO_MAX_MODELS];
    pthread_mutex_t control_lock;  /* serializes loads, unloads and polls */
    int listen_fd;
    int http_port;
    int n_threads;
    http_thread_t threads[MAX_HTTP_THREADS];
    atomic_bool stopping;
    atomic_int in_flight;
    atomic_int listeners_off;      /* HTTP threads that stopped accepting */
    atomic_int loop_turns;         /* settle_http_threads' count of loop turns */
    pthread_t poller;
    bool poller_started;
    pthread_mutex_t poll_lock;
    pthread_cond_t poll_wake;
    kiln_inference_stats_t *inference;
    kiln_metrics_server_t *metrics;
    kiln_monitor_t *monitor;
    kiln_monitor_alerts_t *alerts;
};

/* One infer request waiting for its runner. */
typedef struct pending {
    struct kiln_server *server;
    struct evhttp_request *http_req;
    struct evhttp_connection *conn;
    bool closed;                   /* the client went away */
    bool inline_run;               /* ran on the HTTP thread: answer directly */
    struct event *wake;
    loaded_version_t *lv;
    char model[KILN_CONFIG_NAME_MAX];
    kiln_v2_request_t v2;
    kiln_infer_request_t *req;     /* &run once submitted, else NULL */
    kiln_infer_request_t run;      /* in here: one allocation per request less */
    uint64_t received_ns;
} pending_t;

static void version_release(loaded_version_t *lv)
{
    if (atomic_fetch_sub(&lv->refs, 1) == 1) {
        kiln_runner_free(lv->runner);
        free(lv);
    }
}

/* ---- responses --------------------------------------------------------- */

/* The Date header, formatted once a second per HTTP thread (evhttp would
 * format it for every response: gmtime and printf, 2% of the CPU time). */
static const char *http_date(void)
{
    static _Thread_local char text[64];
    static _Thread_local time_t formatted_at = -1;
    time_t now = time(NULL);
    if (now != formatted_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        /* RFC 7231's IMF-fixdate, in English whatever the locale */
        snprintf(text, sizeof text, "%s, %02d %s %d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
                 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        formatted_at = now;
    }
    return text;
}

/* Writes an answer evhttp has just queued at once, instead of on the next
 * loop turn.  evhttp turns write interest on (an epoll_ctl), writes when
 * epoll says writable, and turns it off again (another); with the answer
 * written here and evhttp told the buffer drained (its write callback:
 * the request is done, the connection reads the next one), both changes
 * cancel out in libevent's changelist.  Two system calls and a loop turn
 * less per request.  When the socket takes only part (or fails), the rest
 * goes evhttp's usual way. */
static void write_now(struct evhttp_connection *conn)
{
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || !(bufferevent_get_enabled(bev) & EV_WRITE))
        return;
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_unfreeze(out, 1); /* as bufferevent's own write callback does */
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n > 0 && evbuffer_get_length(out) == 0)
        bufferevent_trigger(bev, EV_WRITE, 0); /* may free the request and the connection */
}

/* The body goes straight into the request's own output buffer (no
 * evbuffer of our own to allocate and free per answer).  req is gone
 * when this returns. */
static void reply(struct evhttp_request *req, int code, const char *body, size_t len, const char *ctype)
{
    if (len && evbuffer_add(evhttp_request_get_output_buffer(req), body, len) != 0) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", ctype);
    evhttp_add_header(headers, "Date", http_date());
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    evhttp_send_reply(req, code, code < 400 ? "OK" : "Error", NULL);
    write_now(conn);
}

static void free_body(const void *data, size_t len, void *arg) { free((void *)data); }

/* As reply(), for a malloc'd body it takes over: evbuffer refers to it
 * rather than copying it into a chain of its own (a 1 KiB+ malloc per
 * answer, which made glibc consolidate its fast bins: 2% in perf). */
static void reply_owned(struct evhttp_request *req, int code, char *body, size_t len, const char *ctype)
{
    if (len && evbuffer_add_reference(evhttp_request_get_output_buffer(req), body, len, free_body, NULL) != 0) {
        free(body);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    if (!len)
        free(body);
    reply(req, code, NULL, 0, ctype);
}

static void reply_json(struct evhttp_request *req, int code, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        reply(req, 500, "{\"error\":\"out of memory\"}", 25, "application/json");
        return;
    }
    reply(req, code, text, strlen(text), "application/json");
    free(text);
}

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(msg));
    reply_json(req, code, j);
}

/* ---- the model table ------------------------------------------------------ */

static model_entry_t *find_model_locked(struct kiln_server *s, const char *name)
{
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i]->name, name))
            return s->models[i];
    return NULL;
}

/* Takes a reference to a ready version (version <= 0: the newest). */
static loaded_version_t *acquire_version(struct kiln_server *s, const char *name, int64_t version,
                                         int *http_status)
{
    loaded_version_t *lv = NULL;
    pthread_rwlock_rdlock(&s->table_lock);
    model_entry_t *e = find_model_locked(s, name);
    *http_status = 404;
    if (e && e->n_versions > 0) {
        if (version <= 0)
            lv = e->versions[e->n_versions - 1];
        for (int i = 0; i < e->n_versions && version > 0; i++)
            if (e->versions[i]->version == version)
                lv = e->versions[i];
        if (lv)
            atomic_fetch_add(&lv->refs, 1);
    } else if (e) {
        *http_status = 503;
    }
    pthread_rwlock_unlock(&s->table_lock);
    return lv;
}

static loaded_version_t *load_version(struct kiln_server *s, const char *name, int64_t version, int64_t mtime,
                                      const kiln_model_config_t *config)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%lld/model.onnx", s->opts.repository, name, (long long)version);
    loaded_version_t *lv = calloc(1, sizeof *lv);
    if (!lv) {
        kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    if (kiln_runner_create(path, config, s->opts.intra_op_threads, s->opts.max_queue_size, &lv->runner) != KILN_OK) {
        free(lv);
        return NULL;
    }
    lv->version = version;
    lv->mtime_ns = mtime;
    atomic_init(&lv->refs, 1);
    char vs[32];
    snprintf(vs, sizeof vs, "%lld", (long long)version);
    lv->stats = kiln_inference_stats_model(s->inference, name, vs);
    kiln_runner_set_monitor_stats(lv->runner, lv->stats);
    return lv;
}

static void log_line(struct kiln_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(struct kiln_server *s, const char *fmt, ...)
{
    if (s->opts.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln serve: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* Unloads a model (all versions). control_lock held. */
static bool unload_model(struct kiln_server *s, const char *name)
{
    pthread_rwlock_wrlock(&s->table_lock);
    model_entry_t *e = NULL;
    for (int i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i]->name, name)) {
            e = s->models[i];
            s->models[i] = s->models[--s->n_models];
            break;
        }
    pthread_rwlock_unlock(&s->table_lock);
    if (!e)
        return false;
    for (int i = 0; i < e->n_versions; i++) {
        char vs[32];
        snprintf(vs, sizeof vs, "%lld", (long long)e->versions[i]->version);
        kiln_inference_stats_remove(s->inference, name, vs);
        version_release(e->versions[i]);
    }
    log_line(s, "unloaded model '%s'", name);
    free(e);
    return true;
}

/* Loads or refreshes one model from the repository so that its loaded
 * versions match the version policy and the files on disk: new versions
 * load, changed ones reload, removed ones unload.  control_lock held. */
static kiln_status_t sync_model(struct kiln_server *s, const kiln_repo_model_t *rm)
{
    kiln_model_config_t config;
    int64_t newest = rm->n_versions ? rm->versions[rm->n_versions - 1].version : 0;
    kiln_status_t st = kiln_repo_load_config(s->opts.repository, rm->name, newest, &config);
    if (st)
        return st;
    for (int w = 0; w < config.n_warnings; w++)
        log_line(s, "model '%s': %s (ignored)", rm->name, config.warnings[w]);
    int64_t wanted[KILN_CONFIG_MAX_VERSIONS];
    int n_wanted = kiln_repo_select_versions(&config, rm, wanted, KILN_CONFIG_MAX_VERSIONS);
    if (n_wanted == 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "model '%s' has no version to load (DIR/%s/<n>/model.onnx)",
                         rm->name, rm->name);
    pthread_rwlock_rdlock(&s->table_lock);
    model_entry_t *old = find_model_locked(s, rm->name);
    bool config_changed = old && old->config_mtime_ns != rm->config_mtime_ns;
    pthread_rwlock_unlock(&s->table_lock);

    model_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    snprintf(e->name, sizeof e->name, "%s", rm->name);
    e->config = config;
    e->config_mtime_ns = rm->config_mtime_ns;
    snprintf(e->state, sizeof e->state, "READY");
    /* versions ascending */
    for (int i = 0; i < rm->n_versions; i++) {
        const kiln_repo_version_t *rv = &rm->versions[i];
        bool want = false;
        for (int k = 0; k < n_wanted; k++)
            want |= wanted[k] == rv->version;
        if (!want)
            continue;
        loaded_version_t *reuse = NULL;
        if (old && !config_changed)
            for (int k = 0; k < old->n_versions; k++)
                if (old->versions[k]->version == rv->version && old->versions[k]->mtime_ns == rv->mtime_ns)
                    reuse = old->versions[k];
        if (reuse) {
            atomic_fetch_add(&reuse->refs, 1);
            e->versions[e->n_versions++] = reuse;
            continue;
        }
        loaded_version_t *lv = load_version(s, rm->name, rv->version, rv->mtime_ns, &config);
        if (!lv) {
            st = kiln_fail_prefix(KILN_ERR_INVALID_MODEL, "model '%s' version %lld", rm->name, (long long)rv->version);
            for (int k = 0; k < e->n_versions; k++)
                version_release(e->versions[k]);
            free(e);
            return st;
        }
        log_line(s, "loaded model '%s' version %lld", rm->name, (long long)rv->version);
        e->versions[e->n_versions++] = lv;
    }
    /* swap the entry in; the old versions are released (in-flight requests keep theirs) */
    pthread_rwlock_wrlock(&s->table_lock);
    old = find_model_locked(s, rm->name);
    if (old) {
        for (int i = 0; i < s->n_models; i++)
            if (s->models[i] == old)
                s->models[i] = e;
    } else if (s->n_models < KILN_REPO_MAX_MODELS) {
        s->models[s->n_models++] = e;
    }
    pthread_rwlock_unlock(&s->table_lock);
    if (old) {
        for (int i = 0; i < old->n_versions; i++) {
            bool kept = false;
            for (int k = 0; k < e->n_versions; k++)
                kept |= e->versions[k] == old->versions[i];
            if (!kept) {
                char vs[32];
                snprintf(vs, sizeof vs, "%lld", (long long)old->versions[i]->version);
                log_line(s, "model '%s' version %s replaced or removed", rm->name, vs);
            }
            version_release(old->versions[i]);
        }
        free(old);
    }
    return KILN_OK;
}

static kiln_status_t load_by_name(struct kiln_server *s, const char *name)
{
    kiln_repo_model_t *models;
    int n;
    kiln_status_t st = kiln_repo_scan(s->opts.repository, &models, &n);
    if (st)
        return st;
    st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "model '%s' is not in the repository", name);
    for (int i = 0; i < n; i++)
        if (!strcmp(models[i].name, name))
            st = sync_model(s, &models[i]);
    free(models);
    return st;
}

/* Poll mode: loads new and changed models, unloads removed ones. */
static void poll_repository(struct kiln_server *s)
{
    kiln_repo_model_t *models;
    int n;
    if (kiln_repo_scan(s->opts.repository, &models, &n) != KILN_OK) {
        log_line(s, "%s", kiln_last_error());
        return;
    }
    pthread_mutex_lock(&s->control_lock);
    for (int i = 0; i < n; i++) {
        bool changed = true;
        pthread_rwlock_rdlock(&s->table_lock);
        model_entry_t *e = find_model_locked(s, models[i].name);
        if (e && e->config_mtime_ns == models[i].config_mtime_ns) {
            int64_t wanted[KILN_CONFIG_MAX_VERSIONS];
            int nw = kiln_repo_select_versions(&e->config, &models[i], wanted, KILN_CONFIG_MAX_VERSIONS);
            changed = nw != e->n_versions;
            for (int k = 0; k < nw && !changed; k++) {
                bool found = false;
                for (int j = 0; j < e->n_versions; j++)
                    for (int v = 0; v < models[i].n_versions; v++)
                        if (e->versions[j]->version == wanted[k] && models[i].versions[v].version == wanted[k] &&
                            models[i].versions[v].mtime_ns == e->versions[j]->mtime_ns)
                            found = true;
                changed = !found;
            }
        }
        pthread_rwlock_unlock(&s->table_lock);
        if (changed && models[i].n_versions > 0 && sync_model(s, &models[i]) != KILN_OK)
            log_line(s, "%s", kiln_last_error());
    }
    /* models gone from disk */
    char gone[KILN_REPO_MAX_MODELS][KILN_CONFIG_NAME_MAX];
    int n_gone = 0;
    pthread_rwlock_rdlock(&s->table_lock);
    for (int k = 0; k < s->n_models; k++) {
        bool present = false;
        for (int i = 0; i < n; i++)
            present |= !strcmp(models[i].name, s->models[k]->name) && models[i].n_versions > 0;
        if (!present)
            snprintf(gone[n_gone++], sizeof gone[0], "%s", s->models[k]->name);
    }
    pthread_rwlock_unlock(&s->table_lock);
    for (int k = 0; k < n_gone; k++)
        unload_model(s, gone[k]);
    pthread_mutex_unlock(&s->control_lock);
    free(models);
}

static void *poller_main(void *arg)
{
    struct kiln_server *s = arg;
    pthread_mutex_lock(&s->poll_lock);
    while (!atomic_load(&s->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += s->opts.poll_secs;
        pthread_cond_timedwait(&s->poll_wake, &s->poll_lock, &ts);
        if (atomic_load(&s->stopping))
            break;
        pthread_mutex_unlock(&s->poll_lock);
        poll_repository(s);
        pthread_mutex_lock(&s->poll_lock);
    }
    pthread_mutex_unlock(&s->poll_lock);
    return NULL;
}

/* ---- metadata endpoints ------------------------------------------------- */

static json_t *io_json(const kiln_io_config_t *io, int max_batch)
{
    json_t *o = json_object();
    json_t *shape = json_array();
    if (max_batch > 0)
        json_array_append_new(shape, json_integer(-1));
    for (int d = 0; d < io->rank; d++)
        json_array_append_new(shape, json_integer(io->dims[d]));
    json_object_set_new(o, "name", json_string(io->name));
    json_object_set_new(o, "datatype", json_string(kiln_dtype_to_kserve_type(io->dtype)));
    json_object_set_new(o, "shape", shape);
    return o;
}

static void handle_model_metadata(struct kiln_server *s, struct evhttp_request *req, const char *name, int64_t version)
{
    pthread_rwlock_rdlock(&s->table_lock);
    model_entry_t *e = find_model_locked(s, name);
    if (!e) {
        pthread_rwlock_unlock(&s->table_lock);
        reply_error(req, 404, "model '%s' is not loaded", name);
        return;
    }
    bool found = version <= 0;
    json_t *versions = json_array();
    for (int i = 0; i < e->n_versions; i++) {
        char vs[32];
        snprintf(vs, sizeof vs, "%lld", (long long)e->versions[i]->version);
        json_array_append_new(versions, json_string(vs));
        found |= e->versions[i]->version == version;
    }
    if (!found) {
        pthread_rwlock_unlock(&s->table_lock);
        json_decref(versions);
        reply_error(req, 404, "model '%s' has no version %lld", name, (long long)version);
        return;
    }
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(e->name));
    json_object_set_new(j, "versions", versions);
    json_object_set_new(j, "platform", json_string(e->config.platform[0] ? e->config.platform : "onnxruntime_onnx"));
    json_t *ins = json_array(), *outs = json_array();
    for (int i = 0; i < e->config.n_inputs; i++)
        json_array_append_new(ins, io_json(&e->config.inputs[i], e->config.max_batch_size));
    for (int i = 0; i < e->config.n_outputs; i++)
        json_array_append_new(outs, io_json(&e->config.outputs[i], e->config.max_batch_size));
    json_object_set_new(j, "inputs", ins);
    json_object_set_new(j, "outputs", outs);
    pthread_rwlock_unlock(&s->table_lock);
    reply_json(req, 200, j);
}

static json_t *config_io_json(const kiln_io_config_t *io)
{
    json_t *o = json_object();
    json_t *dims = json_array();
    for (int d = 0; d < io->rank; d++)
        json_array_append_new(dims, json_integer(io->dims[d]));
    json_object_set_new(o, "name", json_string(io->name));
    json_object_set_new(o, "data_type", json_string(kiln_dtype_to_triton_type(io->dtype)));
    json_object_set_new(o, "dims", dims);
    if (io->has_reshape) {
        json_t *r = json_object(), *shape = json_array();
        for (int d = 0; d < io->reshape_rank; d++)
            json_array_append_new(shape, json_integer(io->reshape[d]));
        json_object_set_new(r, "shape", shape);
        json_object_set_new(o, "reshape", r);
    }
    return o;
}

/* The JSON form of config.pbtxt, as Triton's /config answers. */
static void handle_model_config(struct kiln_server *s, struct evhttp_request *req, const char *name)
{
    pthread_rwlock_rdlock(&s->table_lock);
    model_entry_t *e = find_model_locked(s, name);
    if (!e) {
        pthread_rwlock_unlock(&s->table_lock);
        reply_error(req, 404, "model '%s' is not loaded", name);
        return;
    }
    const kiln_model_config_t *c = &e->config;
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(c->name));
    json_object_set_new(j, "platform", json_string(c->platform));
    json_object_set_new(j, "backend", json_string(c->backend[0] ? c->backend : "onnxruntime"));
    json_object_set_new(j, "max_batch_size", json_integer(c->max_batch_size));
    json_t *ins = json_array(), *outs = json_array();
    for (int i = 0; i < c->n_inputs; i++)
        json_array_append_new(ins, config_io_json(&c->inputs[i]));
    for (int i = 0; i < c->n_outputs; i++)
        json_array_append_new(outs, config_io_json(&c->outputs[i]));
    json_object_set_new(j, "input", ins);
    json_object_set_new(j, "output", outs);
    json_t *vp = json_object();
    if (c->version_policy == KILN_VERSIONS_ALL) {
        json_object_set_new(vp, "all", json_object());
    } else if (c->version_policy == KILN_VERSIONS_SPECIFIC) {
        json_t *sp = json_object(), *vs = json_array();
        for (int i = 0; i < c->n_versions; i++)
            json_array_append_new(vs, json_integer(c->versions[i]));
        json_object_set_new(sp, "versions", vs);
        json_object_set_new(vp, "specific", sp);
    } else {
        json_t *lt = json_object();
        json_object_set_new(lt, "num_versions", json_integer(c->num_versions));
        json_object_set_new(vp, "latest", lt);
    }
    json_object_set_new(j, "version_policy", vp);
    json_t *ig = json_array(), *g = json_object();
    json_object_set_new(g, "count", json_integer(c->instance_count));
    json_object_set_new(g, "kind", json_string(c->instance_kind));
    json_array_append_new(ig, g);
    json_object_set_new(j, "instance_group", ig);
    if (c->dynamic_batching) {
        json_t *db = json_object(), *pref = json_array(), *qp = json_object();
        for (int i = 0; i < c->n_preferred; i++)
            json_array_append_new(pref, json_integer(c->preferred_batch_size[i]));
        json_object_set_new(db, "preferred_batch_size", pref);
        json_object_set_new(db, "max_queue_delay_microseconds", json_integer(c->max_queue_delay_us));
        json_object_set_new(qp, "max_queue_size", json_integer(c->max_queue_size));
        json_object_set_new(qp, "default_timeout_microseconds", json_integer(c->default_timeout_us));
        json_object_set_new(db, "default_queue_policy", qp);
        json_object_set_new(j, "dynamic_batching", db);
    }
    json_t *params = json_object();
    for (int i = 0; i < c->n_params; i++) {
        json_t *v = json_object();
        json_object_set_new(v, "string_value", json_string(c->param_values[i]));
        json_object_set_new(params, c->param_keys[i], v);
    }
    json_object_set_new(j, "parameters", params);
    pthread_rwlock_unlock(&s->table_lock);
    reply_json(req, 200, j);
}

static json_t *count_ns(uint64_t count, uint64_t ns)
{
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)count));
    json_object_set_new(o, "ns", json_integer((json_int_t)ns));
    return o;
}

static json_t *version_stats_json(const char *name, loaded_version_t *lv)
{
    kiln_runner_stats_t st;
    kiln_runner_stats(lv->runner, &st);
    json_t *o = json_object();
    char vs[32];
    snprintf(vs, sizeof vs, "%lld", (long long)lv->version);
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "version", json_string(vs));
    json_object_set_new(o, "last_inference", json_integer((json_int_t)st.last_inference_ms));
    json_object_set_new(o, "inference_count", json_integer((json_int_t)st.inference_count));
    json_object_set_new(o, "execution_count", json_integer((json_int_t)st.execution_count));
    json_t *is = json_object();
    json_object_set_new(is, "success", count_ns(st.success_count, st.success_ns));
    json_object_set_new(is, "fail", count_ns(st.fail_count, st.fail_ns));
    json_object_set_new(is, "queue", count_ns(st.queue_count, st.queue_ns));
    json_object_set_new(is, "compute_input", count_ns(st.compute_input_count, st.compute_input_ns));
    json_object_set_new(is, "compute_infer", count_ns(st.compute_infer_count, st.compute_infer_ns));
    json_object_set_new(is, "compute_output", count_ns(st.compute_output_count, st.compute_output_ns));
    json_object_set_new(o, "inference_stats", is);
    json_t *bs = json_array();
    for (int b = 1; b <= KILN_STATS_MAX_BATCH; b++) {
        if (!st.batch_count[b])
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "batch_size", json_integer(b));
        json_object_set_new(e, "compute_infer", count_ns(st.batch_count[b], st.batch_infer_ns[b]));
        json_array_append_new(bs, e);
    }
    json_object_set_new(o, "batch_stats", bs);
    return o;
}

static void handle_stats(struct kiln_server *s, struct evhttp_request *req, const char *name, int64_t version)
{
    json_t *list = json_array();
    pthread_rwlock_rdlock(&s->table_lock);
    bool found = !name;
    for (int i = 0; i < s->n_models; i++) {
        model_entry_t *e = s->models[i];
        if (name && strcmp(e->name, name))
            continue;
        found = true;
        for (int k = 0; k < e->n_versions; k++)
            if (version <= 0 || e->versions[k]->version == version)
                json_array_append_new(list, version_stats_json(e->name, e->versions[k]));
    }
    pthread_rwlock_unlock(&s->table_lock);
    if (!found) {
        json_decref(list);
        reply_error(req, 404, "model '%s' is not loaded", name);
        return;
    }
    json_t *j = json_object();
    json_object_set_new(j, "model_stats", list);
    reply_json(req, 200, j);
}

static void handle_repository_index(struct kiln_server *s, struct evhttp_request *req)
{
    kiln_repo_model_t *models;
    int n;
    if (kiln_repo_scan(s->opts.repository, &models, &n) != KILN_OK) {
        reply_error(req, 500, "%s", kiln_last_error());
        return;
    }
    json_t *list = json_array();
    pthread_rwlock_rdlock(&s->table_lock);
    for (int i = 0; i < n; i++) {
        model_entry_t *e = find_model_locked(s, models[i].name);
        if (e) {
            for (int k = 0; k < e->n_versions; k++) {
                json_t *o = json_object();
                char vs[32];
                snprintf(vs, sizeof vs, "%lld", (long long)e->versions[k]->version);
                json_object_set_new(o, "name", json_string(e->name));
                json_object_set_new(o, "version", json_string(vs));
                json_object_set_new(o, "state", json_string("READY"));
                json_object_set_new(o, "reason", json_string(""));
                json_array_append_new(list, o);
            }
        } else {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(models[i].name));
            json_object_set_new(o, "state", json_string("UNAVAILABLE"));
            json_object_set_new(o, "reason", json_string("unloaded"));
            json_array_append_new(list, o);
        }
    }
    pthread_rwlock_unlock(&s->table_lock);
    free(models);
    reply_json(req, 200, list);
}

static bool token_ok(struct kiln_server *s, struct evhttp_request *req)
{
    if (!s->opts.management_token)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    char want[512];
    snprintf(want, sizeof want, "Bearer %s", s->opts.management_token);
    return h && !strcmp(h, want);
}

static void handle_repository_control(struct kiln_server *s, struct evhttp_request *req, const char *name, bool load)
{
    if (!token_ok(s, req)) {
        reply_error(req, 401, "repository control needs the management token (Authorization: Bearer TOKEN)");
        return;
    }
    if (s->opts.control_mode != KILN_CONTROL_EXPLICIT) {
        reply_error(req, 400, "explicit model load/unload is not allowed in %s model control mode",
                    s->opts.control_mode == KILN_CONTROL_POLL ? "poll" : "none");
        return;
    }
    pthread_mutex_lock(&s->control_lock);
    if (load) {
        kiln_status_t st = load_by_name(s, name);
        pthread_mutex_unlock(&s->control_lock);
        if (st) {
            reply_error(req, strstr(kiln_last_error(), "is not in the repository") ? 404 : 400, "%s",
                        kiln_last_error());
            return;
        }
    } else {
        bool was = unload_model(s, name);
        pthread_mutex_unlock(&s->control_lock);
        if (!was) {
            reply_error(req, 404, "model '%s' is not loaded", name);
            return;
        }
    }
    reply(req, 200, "{}", 2, "application/json");
}

/* ---- infer --------------------------------------------------------------- */

/* Each HTTP thread keeps one freed record for its next request: the record
 * is over 1 KiB, and such a malloc makes glibc consolidate its fast bins
 * (malloc_consolidate was 2.6% of the CPU time).  Records are made and
 * freed on HTTP threads only. */
static _Thread_local pending_t *spare_pending;

static pending_t *pending_new(void)
{
    pending_t *p = spare_pending;
    if (!p)
        return calloc(1, sizeof *p);
    spare_pending = NULL;
    memset(p, 0, sizeof *p);
    return p;
}

static void pending_free(pending_t *p)
{
    if (p->wake)
        event_free(p->wake);
    kiln_v2_request_clear(&p->v2);
    kiln_infer_request_clear(&p->run);
    if (p->lv)
        version_release(p->lv);
    atomic_fetch_sub(&p->server->in_flight, 1);
    if (!spare_pending)
        spare_pending = p;
    else
        free(p);
}

static void on_connection_close(struct evhttp_connection *conn, void *arg)
{
    pending_t *p = arg;
    p->closed = true;
    p->http_req = NULL;
}

#define SMALL_OUTPUTS 16

/* Writes v in decimal with a NUL; returns the digits written.  dst holds 21. */
static size_t write_u64(char *dst, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    dst[n] = 0;
    return n;
}

/* The response's parameters object (printf's cost was visible in perf). */
static void write_params(char *dst, uint64_t total_us, uint64_t queue_us, uint64_t compute_us, int64_t batch_rows)
{
    static const char *const keys[] = {"{\"server_time_us\":", ",\"queue_time_us\":", ",\"compute_time_us\":",
                                       ",\"batch_size\":"};
    uint64_t values[] = {total_us, queue_us, compute_us, batch_rows > 0 ? (uint64_t)batch_rows : 0};
    size_t n = 0;
    for (int k = 0; k < 4; k++) {
        size_t kl = strlen(keys[k]);
        memcpy(dst + n, keys[k], kl);
        n += kl;
        n += write_u64(dst + n, values[k]);
    }
    memcpy(dst + n, "}", 2);
}

static void send_infer_response(evutil_socket_t fd, short what, void *arg)
{
    pending_t *p = arg;
    kiln_infer_request_t *r = p->req;
    uint64_t now = kiln_monotonic_ns();
    uint64_t total_us = (now - p->received_ns) / 1000;
    uint64_t queue_us = (r->start_ns - r->enqueue_ns) / 1000;
    uint64_t compute_us = (r->end_ns - r->start_ns) / 1000;
    if (p->lv->stats) {
        kiln_model_stats_request(p->lv->stats, r->status == KILN_OK, queue_us, compute_us, total_us);
        if (r->status != KILN_OK)
            kiln_model_stats_failure_reason(p->lv->stats, p->closed || !p->http_req ? KILN_FAILURE_CANCELED
                                                          : r->http_status == 503 ? KILN_FAILURE_REJECTED
                                                          : r->http_status == 400 ? KILN_FAILURE_OTHER
                                                                                  : KILN_FAILURE_BACKEND);
        kiln_model_stats_set_pending(p->lv->stats, kiln_runner_pending(p->lv->runner));
    }
    if (p->closed || !p->http_req) {
        pending_free(p);
        return;
    }
    evhttp_connection_set_closecb(p->conn, NULL, NULL);
    struct evhttp_request *req = p->http_req;
    if (r->status != KILN_OK) {
        reply_error(req, r->http_status ? r->http_status : 500, "%s", r->error);
        pending_free(p);
        return;
    }
    /* choose outputs (on the stack for the usual few) */
    int n_sel = p->v2.n_outputs ? p->v2.n_outputs : r->n_outputs;
    char *names_small[SMALL_OUTPUTS];
    kiln_tensor_t *tensors_small[SMALL_OUTPUTS];
    bool binary_small[SMALL_OUTPUTS];
    bool small = n_sel <= SMALL_OUTPUTS;
    char **names = small ? names_small : calloc((size_t)n_sel + 1, sizeof *names);
    kiln_tensor_t **tensors = small ? tensors_small : calloc((size_t)n_sel + 1, sizeof *tensors);
    bool *binary = small ? binary_small : calloc((size_t)n_sel + 1, sizeof *binary);
    if (!names || !tensors || !binary) {
        reply_error(req, 500, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_sel; i++) {
        int idx = i;
        if (p->v2.n_outputs) {
            idx = -1;
            for (int k = 0; k < r->n_outputs; k++)
                if (!strcmp(r->output_names[k], p->v2.outputs[i].name))
                    idx = k;
            if (idx < 0) {
                reply_error(req, 400, "model '%s' has no output named '%s'", p->model, p->v2.outputs[i].name);
                goto done;
            }
            binary[i] = p->v2.outputs[i].binary;
        } else {
            binary[i] = p->v2.binary_default;
        }
        names[i] = r->output_names[idx];
        tensors[i] = r->outputs[idx];
    }
    char params[256], vs[24];
    write_params(params, total_us, queue_us, compute_us, r->batch_rows);
    write_u64(vs, (uint64_t)p->lv->version);
    char *body;
    size_t len, json_len;
    if (kiln_v2_write_infer(p->model, vs, p->v2.id, n_sel, names, tensors, binary, params, &body, &len, &json_len)) {
        reply_error(req, 500, "%s", kiln_last_error());
        goto done;
    }
    if (json_len != len) {
        char hl[24];
        write_u64(hl, json_len);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Inference-Header-Content-Length", hl);
        reply_owned(req, 200, body, len, "application/octet-stream");
    } else {
        reply_owned(req, 200, body, len, "application/json");
    }
done:
    if (!small) {
        free(names);
        free(tensors);
        free(binary);
    }
    pending_free(p);
}

/* Instance thread: wake the HTTP thread that owns the connection. */
static void infer_done(kiln_infer_request_t *req, void *user)
{
    pending_t *p = user;
    if (!p->inline_run)
        event_active(p->wake, EV_READ, 0);
}

static int find_config_input(const kiln_model_config_t *c, const char *name)
{
    for (int i = 0; i < c->n_inputs; i++)
        if (!strcmp(c->inputs[i].name, name))
            return i;
    return -1;
}

/* Checks inputs against the config; fills rows; applies reshape. */
static bool validate_inputs(struct evhttp_request *req, const kiln_model_config_t *c, kiln_v2_request_t *v2,
                            int64_t *rows)
{
    *rows = 1;
    for (int i = 0; i < v2->n_inputs; i++) {
        kiln_tensor_t *t = v2->inputs[i];
        int ci = find_config_input(c, v2->input_names[i]);
        if (ci < 0) {
            reply_error(req, 400, "model '%s' has no input named '%s'", c->name, v2->input_names[i]);
            return false;
        }
        const kiln_io_config_t *io = &c->inputs[ci];
        if (io->dtype != KILN_DTYPE_UNDEFINED && io->dtype != kiln_tensor_dtype(t)) {
            reply_error(req, 400, "input '%s' must be %s, got %s", io->name, kiln_dtype_to_kserve_type(io->dtype),
                        kiln_dtype_to_kserve_type(kiln_tensor_dtype(t)));
            return false;
        }
        int batch = c->max_batch_size > 0 ? 1 : 0;
        int rank = kiln_tensor_rank(t);
        const int64_t *dims = kiln_tensor_dims(t);
        bool ok = rank == io->rank + batch;
        for (int d = 0; ok && d < io->rank; d++)
            ok = io->dims[d] < 0 || io->dims[d] == dims[d + batch];
        if (!ok && io->has_reshape) {
            /* the client may send the reshaped form too */
            ok = rank == io->reshape_rank + batch;
            for (int d = 0; ok && d < io->reshape_rank; d++)
                ok = io->reshape[d] < 0 || io->reshape[d] == dims[d + batch];
        }
        if (!ok) {
            char have[256];
            char want[256] = "[";
            size_t w = 1;
            if (batch)
                w += (size_t)snprintf(want + w, sizeof want - w, "-1%s", io->rank ? "," : "");
            for (int d = 0; d < io->rank && w < sizeof want; d++)
                w += (size_t)snprintf(want + w, sizeof want - w, d ? ",%lld" : "%lld", (long long)io->dims[d]);
            snprintf(want + (w < sizeof want ? w : sizeof want - 2), 2, "]");
            reply_error(req, 400, "input '%s' has shape %s, the model expects %s", io->name,
                        kiln_shape_str(rank, dims, have, sizeof have), want);
            return false;
        }
        if (batch) {
            int64_t r = dims[0];
            if (r < 1 || r > c->max_batch_size) {
                reply_error(req, 400, "input '%s' batch size %lld is outside 1..%d (max_batch_size)", io->name,
                            (long long)r, c->max_batch_size);
                return false;
            }
            if (i > 0 && r != *rows) {
                reply_error(req, 400, "inputs disagree on the batch size (%lld and %lld)", (long long)*rows,
                            (long long)r);
                return false;
            }
            *rows = r;
        }
        /* reshape: the model sees io->dims shaped as io->reshape */
        if (io->has_reshape && rank == io->rank + batch) {
            int64_t nd[KILN_MAX_RANK];
            int nr = 0;
            if (batch)
                nd[nr++] = dims[0];
            for (int d = 0; d < io->reshape_rank; d++)
                nd[nr++] = io->reshape[d];
            int64_t cnt = kiln_shape_count(nr, nd, 1);
            if (cnt != kiln_tensor_count(t)) {
                reply_error(req, 400, "input '%s' cannot be reshaped as config.pbtxt asks", io->name);
                return false;
            }
            t->rank = nr; /* same elements, the model's shape */
            memcpy(t->dims, nd, sizeof nd);
        }
    }
    for (int i = 0; i < c->n_inputs; i++) {
        bool given = false;
        for (int k = 0; k < v2->n_inputs; k++)
            given |= !strcmp(v2->input_names[k], c->inputs[i].name);
        if (!given) {
            reply_error(req, 400, "input '%s' is missing", c->inputs[i].name);
            return false;
        }
    }
    return true;
}

static void handle_infer(struct kiln_server *s, struct evhttp_request *req, const char *name, int64_t version)
{
    if (atomic_load(&s->stopping)) {
        reply_error(req, 503, "the server is shutting down");
        return;
    }
    int http_status;
    loaded_version_t *lv = acquire_version(s, name, version, &http_status);
    if (!lv) {
        if (version > 0)
            reply_error(req, http_status, "model '%s' version %lld is not available", name, (long long)version);
        else
            reply_error(req, http_status, "model '%s' is not %s", name, http_status == 404 ? "loaded" : "ready");
        return;
    }
    atomic_fetch_add(&s->in_flight, 1);
    pending_t *p = pending_new();
    if (!p) {
        atomic_fetch_sub(&s->in_flight, 1);
        version_release(lv);
        reply_error(req, 500, "out of memory");
        return;
    }
    p->server = s;
    p->lv = lv;
    p->http_req = req;
    p->received_ns = kiln_monotonic_ns();
    snprintf(p->model, sizeof p->model, "%s", name);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    const char *hlen = evhttp_find_header(evhttp_request_get_input_headers(req), "Inference-Header-Content-Length");
    size_t json_len = len;
    if (hlen) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(hlen, &end, 10);
        if (*end || errno || hlen[0] == '-' || v > len) {
            reply_error(req, 400, "Inference-Header-Content-Length '%s' is not a length within the body", hlen);
            pending_free(p);
            return;
        }
        json_len = (size_t)v;
    }
    if (kiln_v2_parse_infer(body ? body : "", len, json_len, &p->v2) != KILN_OK) {
        reply_error(req, 400, "%s", kiln_last_error());
        pending_free(p);
        return;
    }
    int64_t rows;
    /* the runner's copy of the config: as the entry's, and alive while lv is held */
    if (!validate_inputs(req, kiln_runner_config(lv->runner), &p->v2, &rows)) {
        pending_free(p);
        return;
    }
    kiln_infer_request_t *r = &p->run;
    /* the request takes the tensors over from the parsed body */
    r->n_inputs = p->v2.n_inputs;
    r->input_names = p->v2.input_names;
    r->inputs = p->v2.inputs;
    p->v2.input_names = NULL;
    p->v2.inputs = NULL;
    p->v2.n_inputs = 0;
    r->rows = rows;
    r->done = infer_done;
    r->user = p;
    p->req = r;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    p->conn = conn;
    p->inline_run = true;
    if (kiln_runner_try_inline(lv->runner, r)) {
        send_infer_response(-1, 0, p);
        return;
    }
    p->inline_run = false;
    /* only a queued request needs the event that brings it back here */
    p->wake = event_new(evhttp_connection_get_base(conn), -1, 0, send_infer_response, p);
    if (!p->wake) {
        reply_error(req, 500, "out of memory");
        pending_free(p);
        return;
    }
    evhttp_connection_set_closecb(conn, on_connection_close, p);
    if (kiln_runner_submit(lv->runner, r) != KILN_OK) {
        evhttp_connection_set_closecb(conn, NULL, NULL);
        if (lv->stats) {
            kiln_model_stats_request(lv->stats, 0, 0, 0, 0);
            kiln_model_stats_failure_reason(lv->stats, KILN_FAILURE_REJECTED);
        }
        reply_error(req, 503, "%s", kiln_last_error());
        pending_free(p);
        return;
    }
    if (lv->stats)
        kiln_model_stats_set_pending(lv->stats, kiln_runner_pending(lv->runner));
}

/* ---- routing --------------------------------------------------------------- */

/* Splits the path into segments (max 8); returns the count or -1. */
static int split_path(char *path, char **seg, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        seg[n++] = t;
    }
    return n;
}

static bool parse_version_seg(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 1)
        return false;
    *out = v;
    return true;
}

/* A URI that is a plain path (only characters a path may hold unescaped:
 * no '%', no query) needs no parsing or decoding: it is copied to buf.  Any
 * other goes through evhttp's parser and decoder (two allocations). */
static char *request_path(const char *uri, char *buf, size_t size)
{
    size_t n = 0;
    bool plain = uri[0] == '/';
    for (; plain && uri[n]; n++) {
        unsigned char c = (unsigned char)uri[n];
        plain = n + 1 < size && c < 0x80 && (isalnum(c) || strchr("-._~/!$&'()*+,;=:@", c));
    }
    if (plain) {
        memcpy(buf, uri, n + 1);
        return buf;
    }
    struct evhttp_uri *parsed = evhttp_uri_parse(uri);
    const char *raw_path = parsed ? evhttp_uri_get_path(parsed) : NULL;
    char *path = raw_path ? evhttp_uridecode(raw_path, 0, NULL) : NULL;
    if (parsed)
        evhttp_uri_free(parsed);
    return path;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct kiln_server *s = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char path_buf[512];
    char *path = request_path(evhttp_request_get_uri(req), path_buf, sizeof path_buf);
    if (!path) {
        reply_error(req, 400, "malformed request URI");
        return;
    }
    char *seg[9];
    int n = split_path(path, seg, 8);
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    bool post = cmd == EVHTTP_REQ_POST;
    if (n < 1 || strcmp(seg[0], "v2")) {
        reply_error(req, 404, "no such endpoint: %s", path);
        goto done;
    }
    if (n == 1 && get) {
        json_t *j = json_object(), *ext = json_array();
        const char *exts[] = {"classification", "binary_tensor_data", "model_repository", "statistics",
                              "model_configuration", "schedule_policy"};
        for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
            json_array_append_new(ext, json_string(exts[i]));
        json_object_set_new(j, "name", json_string("kiln"));
        json_object_set_new(j, "version", json_string(KILN_VERSION_STRING));
        json_object_set_new(j, "extensions", ext);
        reply_json(req, 200, j);
        goto done;
    }
    if (n == 3 && get && !strcmp(seg[1], "health")) {
        if (!strcmp(seg[2], "live"))
            reply(req, 200, "", 0, "application/json");
        else if (!strcmp(seg[2], "ready"))
            atomic_load(&s->stopping) ? reply_error(req, 503, "the server is shutting down")
                                      : reply(req, 200, "", 0, "application/json");
        else
            reply_error(req, 404, "no such endpoint: %s", path);
        goto done;
    }
    if (n >= 2 && !strcmp(seg[1], "repository")) {
        if (n == 3 && post && !strcmp(seg[2], "index")) {
            handle_repository_index(s, req);
        } else if (n == 5 && post && !strcmp(seg[2], "models") && (!strcmp(seg[4], "load") || !strcmp(seg[4], "unload"))) {
            if (!kiln_repo_name_valid(seg[3]))
                reply_error(req, 400, "invalid model name '%s'", seg[3]);
            else
                handle_repository_control(s, req, seg[3], !strcmp(seg[4], "load"));
        } else {
            reply_error(req, n >= 3 ? 405 : 404, "no such endpoint: %s %s", post ? "POST" : "GET", path);
        }
        goto done;
    }
    if (n >= 2 && !strcmp(seg[1], "models")) {
        if (n == 3 && get && !strcmp(seg[2], "stats")) {
            handle_stats(s, req, NULL, 0);
            goto done;
        }
        if (n < 3) {
            reply_error(req, 404, "no such endpoint: %s", path);
            goto done;
        }
        const char *name = seg[2];
        if (!kiln_repo_name_valid(name)) {
            reply_error(req, 400, "invalid model name '%s'", name);
            goto done;
        }
        int64_t version = 0;
        int rest = 3;
        if (n >= 5 && !strcmp(seg[3], "versions")) {
            if (!parse_version_seg(seg[4], &version)) {
                reply_error(req, 400, "invalid model version '%s'", seg[4]);
                goto done;
            }
            rest = 5;
        }
        const char *action = rest < n ? seg[rest] : NULL;
        if (rest + 1 < n) {
            reply_error(req, 404, "no such endpoint: %s", path);
        } else if (!action && get) {
            handle_model_metadata(s, req, name, version);
        } else if (action && !strcmp(action, "ready") && get) {
            int st;
            loaded_version_t *lv = acquire_version(s, name, version, &st);
            if (lv) {
                version_release(lv);
                reply(req, 200, "", 0, "application/json");
            } else {
                reply_error(req, st, "model '%s' is not ready", name);
            }
        } else if (action && !strcmp(action, "config") && get) {
            handle_model_config(s, req, name);
        } else if (action && !strcmp(action, "stats") && get) {
            handle_stats(s, req, name, version);
        } else if (action && !strcmp(action, "infer") && post) {
            handle_infer(s, req, name, version);
        } else if (action && (!strcmp(action, "infer") || !strcmp(action, "ready") || !strcmp(action, "config") ||
                              !strcmp(action, "stats"))) {
            reply_error(req, 405, "%s does not accept this method", action);
        } else {
            reply_error(req, 404, "no such endpoint: %s", path);
        }
        goto done;
    }
    reply_error(req, 404, "no such endpoint: %s", path);
done:
    if (path != path_buf)
        free(path);
}

/* ---- metrics ------------------------------------------------------------------ */

/* Adds what the monitoring plane's inference counters do not have: Triton's
 * compute_input/compute_output duration counters and a request latency
 * histogram, per model and version, read live from the runners. */
static void serve_metrics_collector(kiln_metrics_writer_t *w, void *user)
{
    struct kiln_server *s = user;
    static const struct {
        const char *name;
        kiln_metric_type_t type;
        const char *help;
    } families[] = {
        {"nv_inference_compute_input_duration_us", KILN_METRIC_COUNTER,
         "Cumulative compute input duration in microseconds (stacking a batch's inputs)"},
        {"nv_inference_compute_output_duration_us", KILN_METRIC_COUNTER,
         "Cumulative compute output duration in microseconds (splitting a batch's outputs)"},
        {"kiln_inference_request_duration_us", KILN_METRIC_HISTOGRAM,
         "Request latency in microseconds from queueing to the answer being ready"},
    };
    pthread_rwlock_rdlock(&s->table_lock);
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        if (kiln_metrics_family(w, families[f].name, families[f].type, families[f].help) != KILN_OK)
            continue;
        for (int i = 0; i < s->n_models; i++) {
            model_entry_t *e = s->models[i];
            for (int k = 0; k < e->n_versions; k++) {
                kiln_runner_stats_t st;
                kiln_runner_stats(e->versions[k]->runner, &st);
                char vs[32];
                snprintf(vs, sizeof vs, "%lld", (long long)e->versions[k]->version);
                kiln_label_t labels[3] = {{"model", e->name}, {"version", vs}, {"le", NULL}};
                if (f == 0) {
                    kiln_metrics_sample(w, NULL, labels, 2, (double)(st.compute_input_ns / 1000));
                } else if (f == 1) {
                    kiln_metrics_sample(w, NULL, labels, 2, (double)(st.compute_output_ns / 1000));
                } else {
                    uint64_t cumulative = 0;
                    char le[32];
                    for (int b = 0; b <= KILN_STATS_LATENCY_BUCKETS; b++) {
                        cumulative += st.latency_bucket[b];
                        if (b < KILN_STATS_LATENCY_BUCKETS)
                            snprintf(le, sizeof le, "%llu", (unsigned long long)kiln_latency_bucket_us[b]);
                        else
                            snprintf(le, sizeof le, "+Inf");
                        labels[2].value = le;
                        kiln_metrics_sample(w, "_bucket", labels, 3, (double)cumulative);
                    }
                    kiln_metrics_sample(w, "_sum", labels, 2, (double)st.latency_us_sum);
                    kiln_metrics_sample(w, "_count", labels, 2, (double)cumulative);
                }
            }
        }
    }
    pthread_rwlock_unlock(&s->table_lock);
}

/* ---- threads and lifecycle ------------------------------------------------- */

static void *http_thread_main(void *arg)
{
    http_thread_t *t = arg;
    event_base_dispatch(t->base);
    free(spare_pending);
    return NULL;
}

static int bind_listener(const char *host, int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        kiln_fail(KILN_ERR_INVALID_ARGUMENT, "--host '%s' is not an IPv4 address", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        kiln_fail(KILN_ERR_IO, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1024) != 0) {
        kiln_fail(KILN_ERR_IO, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void kiln_serve_options_init(kiln_serve_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->http_port = 8000;
    o->metrics_port = 8002;
    o->poll_secs = 15;
    o->max_body_bytes = 64u << 20;
    o->http_threads = 2;
    o->intra_op_threads = 1;
    o->monitor_interval_ms = 1000;
}

static kiln_status_t load_initial_models(struct kiln_server *s)
{
    pthread_mutex_lock(&s->control_lock);
    kiln_status_t st = KILN_OK;
    if (s->opts.control_mode == KILN_CONTROL_EXPLICIT) {
        for (int i = 0; i < s->opts.n_load && !st; i++)
            st = load_by_name(s, s->opts.load[i]);
    } else {
        kiln_repo_model_t *models;
        int n;
        st = kiln_repo_scan(s->opts.repository, &models, &n);
        for (int i = 0; !st && i < n; i++) {
            kiln_status_t mst = sync_model(s, &models[i]);
            /* Triton starts with the models that load and reports the others */
            if (mst)
                log_line(s, "%s", kiln_last_error());
        }
        if (!st)
            free(models);
    }
    pthread_mutex_unlock(&s->control_lock);
    return st;
}

kiln_status_t kiln_server_start(const kiln_serve_options_t *o, kiln_server_t **out)
{
    *out = NULL;
    static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
    pthread_once(&evthread_once, (void (*)(void))evthread_use_pthreads);
    struct kiln_server *s = calloc(1, sizeof *s);
    if (!s)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    s->opts = *o;
    s->listen_fd = -1;
    if (s->opts.http_threads < 1 || s->opts.http_threads > MAX_HTTP_THREADS)
        s->opts.http_threads = 2;
    if (s->opts.poll_secs < 1)
        s->opts.poll_secs = 1;
    pthread_rwlock_init(&s->table_lock, NULL);
    pthread_mutex_init(&s->control_lock, NULL);
    pthread_mutex_init(&s->poll_lock, NULL);
    pthread_cond_init(&s->poll_wake, NULL);
    s->inference = kiln_inference_stats_new();
    kiln_status_t st = s->inference ? KILN_OK : kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    if (!st)
        st = load_initial_models(s);
    if (!st && o->metrics_port >= 0) {
        st = kiln_metrics_server_start(o->host, o->metrics_port, &s->metrics);
        if (!st) {
            kiln_monitor_options_t mo = {.interval_ms = o->monitor_interval_ms, .history_path = o->history_path,
                                         .inference = s->inference, .quiet = o->quiet};
            st = kiln_monitor_start(&mo, s->metrics, &s->monitor);
        }
        if (!st)
            st = kiln_exporter_add_collector(kiln_monitor_exporter(s->monitor), serve_metrics_collector, s);
        /* Always: besides the rules it serves /api/v1/alerts, /api/v1/rules
         * and /dashboard, which answer (empty) even without --alert-rules. */
        if (!st) {
            char external[300]; /* links in notifications point at this server's dashboard */
            snprintf(external, sizeof external, "http://%s:%d", o->host, kiln_metrics_server_port(s->metrics));
            kiln_monitor_alerts_options_t ao = {.rules_path = o->alert_rules,
                                                .alertmanager_url = o->alertmanager_url,
                                                .webhook_url = o->alert_webhook,
                                                .external_url = external,
                                                .interval_ms = o->monitor_interval_ms};
            st = kiln_monitor_alerts_start(s->monitor, s->metrics, &ao, &s->alerts);
        }
    }
    if (!st) {
        s->listen_fd = bind_listener(o->host, o->http_port);
        if (s->listen_fd < 0)
            st = KILN_ERR_IO;
    }
    if (!st) {
        struct sockaddr_in addr;
        socklen_t alen = sizeof addr;
        getsockname(s->listen_fd, (struct sockaddr *)&addr, &alen);
        s->http_port = ntohs(addr.sin_port);
        for (int i = 0; i < s->opts.http_threads && !st; i++) {
            http_thread_t *t = &s->threads[i];
            t->server = s;
            /* The changelist coalesces the add/delete of read and write
             * interest that evhttp makes on every request into at most one
             * epoll_ctl per fd per loop turn: fewer system calls per request. */
            struct event_config *cfg = event_config_new();
            if (cfg)
                event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
            t->base = cfg ? event_base_new_with_config(cfg) : NULL;
            if (cfg)
                event_config_free(cfg);
            t->http = t->base ? evhttp_new(t->base) : NULL;
            if (!t->http) {
                st = kiln_fail(KILN_ERR_NO_MEMORY, "cannot create an HTTP loop");
                break;
            }
            evhttp_set_max_body_size(t->http, (ev_ssize_t)s->opts.max_body_bytes);
            evhttp_set_max_headers_size(t->http, MAX_HEADER_BYTES);
            /* a client that stops sending mid-request is dropped, not waited on */
            evhttp_set_timeout(t->http, IDLE_TIMEOUT_SECONDS);
            evhttp_set_allowed_methods(t->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
            evhttp_set_gencb(t->http, on_request, s);
            t->bound = evhttp_accept_socket_with_handle(t->http, s->listen_fd);
            if (!t->bound || pthread_create(&t->thread, NULL, http_thread_main, t) != 0) {
                st = kiln_fail(KILN_ERR_RUNTIME, "cannot start HTTP thread %d", i);
                break;
            }
            s->n_threads = i + 1;
        }
    }
    if (!st && o->control_mode == KILN_CONTROL_POLL) {
        if (pthread_create(&s->poller, NULL, poller_main, s) == 0)
            s->poller_started = true;
    }
    if (st) {
        kiln_server_stop(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

int kiln_server_http_port(const kiln_server_t *s) { return s->http_port; }
int kiln_server_metrics_port(const kiln_server_t *s) { return s->metrics ? kiln_metrics_server_port(s->metrics) : -1; }

/* Runs on an HTTP thread: stop accepting there (open connections go on). */
static void stop_accepting_cb(evutil_socket_t fd, short what, void *arg)
{
    http_thread_t *t = arg;
    if (t->bound)
        evconnlistener_disable(evhttp_bound_socket_get_listener(t->bound));
    atomic_fetch_add(&t->server->listeners_off, 1);
}

static void loop_turn_cb(evutil_socket_t fd, short what, void *arg)
{
    atomic_fetch_add(&((struct kiln_server *)arg)->loop_turns, 1);
}

/* Lets every HTTP thread go twice around its loop.  A thread that ran a
 * request inline may hold another connection's request unread in its
 * socket; in_flight does not count it yet, and a drain that trusted a
 * momentary zero would cut it off.  Two turns: the I/O that was ready in
 * the first is handled before the second. */
static void settle_http_threads(struct kiln_server *s)
{
    for (int round = 0; round < 2; round++) {
        int target = atomic_load(&s->loop_turns) + s->n_threads;
        for (int i = 0; i < s->n_threads; i++)
            event_base_once(s->threads[i].base, -1, EV_TIMEOUT, loop_turn_cb, s, NULL);
        for (int i = 0; i < 1000 && atomic_load(&s->loop_turns) < target; i++)
            usleep(1000);
    }
}

static void loopexit_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

void kiln_server_stop(kiln_server_t *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    pthread_mutex_lock(&s->poll_lock);
    pthread_cond_broadcast(&s->poll_wake);
    pthread_mutex_unlock(&s->poll_lock);
    if (s->poller_started)
        pthread_join(s->poller, NULL);
    /* stop accepting, on each HTTP thread (its listener belongs to it) */
    for (int i = 0; i < s->n_threads; i++)
        event_base_once(s->threads[i].base, -1, EV_TIMEOUT, stop_accepting_cb, &s->threads[i], NULL);
    for (int i = 0; i < 200 && atomic_load(&s->listeners_off) < s->n_threads; i++)
        usleep(10000);
    /* let in-flight requests finish and answer */
    for (int i = 0; i < DRAIN_SECONDS * 100; i++) {
        if (atomic_load(&s->in_flight) == 0) {
            settle_http_threads(s);
            if (atomic_load(&s->in_flight) == 0)
                break;
        }
        usleep(10000);
    }
    for (int i = 0; i < s->n_threads; i++)
        event_base_once(s->threads[i].base, -1, EV_TIMEOUT, loopexit_cb, s->threads[i].base, NULL);
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i].thread, NULL);
    for (int i = 0; i < MAX_HTTP_THREADS; i++) {
        if (s->threads[i].http)
            evhttp_free(s->threads[i].http);
        if (s->threads[i].base)
            event_base_free(s->threads[i].base);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    kiln_monitor_alerts_stop(s->alerts);
    if (s->monitor)
        kiln_exporter_remove_collector(kiln_monitor_exporter(s->monitor), serve_metrics_collector, s);
    kiln_monitor_stop(s->monitor);
    kiln_metrics_server_stop(s->metrics);
    pthread_mutex_lock(&s->control_lock);
    while (s->n_models > 0) {
        char name[KILN_CONFIG_NAME_MAX];
        snprintf(name, sizeof name, "%s", s->models[0]->name);
        unload_model(s, name);
    }
    pthread_mutex_unlock(&s->control_lock);
    kiln_inference_stats_free(s->inference);
    pthread_rwlock_destroy(&s->table_lock);
    pthread_mutex_destroy(&s->control_lock);
    pthread_mutex_destroy(&s->poll_lock);
    pthread_cond_destroy(&s->poll_wake);
    free(s);
}
