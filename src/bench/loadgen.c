/*
 * loadgen.c - `kiln bench --url`, the load generator described in
 * loadgen.h.  The story of one run:
 *
 *   1. parse the options; GET /v2/models/NAME for the inputs (names,
 *      datatypes, shapes); build the inputs (files or fixed-seed random
 *      data) and one HTTP request holding them (serve/protocol.h writes it);
 *   2. send that request once and insist on a 200, so a wrong shape or
 *      datatype is one clear message instead of a run of errors;
 *   3. for each concurrency level: start the client threads (each an epoll
 *      loop over its share of the connections), take the server's stats at
 *      the start and at the end of the measurement window, let the threads
 *      drain their requests in flight, then merge latencies and errors;
 *   4. print each level as it ends (or one JSON object at the very end).
 *
 * Every wait is bounded: connects and requests have deadlines checked by a
 * 5 ms timer in each loop, a refused or broken connection is retried after
 * a short back-off, and SIGINT ends the current level early and cleanly.
 */
#include "bench/loadgen.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/inputs.h"
#include "bench/stats.h"
#include "core/error.h"
#include "core/tensor.h"
#include "monitor/http_client.h"
#include "onnx/tensor_file.h"
#include "serve/model_config.h"
#include "serve/protocol.h"

#define EXIT_OK 0
#define EXIT_ERRORS 1
#define EXIT_BAD 2

#define MAX_LEVELS 64
#define MAX_CONCURRENCY 4096
#define TIMER_S 0.005         /* how often each loop checks deadlines and back-offs */
#define BACKOFF_S 0.05        /* wait before reconnecting after a failure */
#define CONNECT_TIMEOUT_S 5.0 /* at most; never more than the request timeout */
#define SCRATCH_BYTES 65536   /* one receive buffer per client thread */
#define PROBE_BODY_MAX 4096
#define N_PARTS 3 /* the window is also counted in thirds, to tell a steady rate from a drifting one */
#define STABLE_WITHIN                                                                                        \
    0.10 /* perf_analyzer's criterion: each part within 10% of the mean */ /* bytes of a failed probe's      \
                                                                              answer kept for the message */

/* ---- The incremental HTTP/1.1 response reader ------------------------- */

void kiln_http_reader_reset(kiln_http_reader_t *r)
{
    r->state = KILN_HTTP_READ_HEADER;
    r->status = 0;
    r->close = false;
    r->remaining = 0;
    r->line_len = 0;
    r->body_len = 0;
}

void kiln_http_reader_free(kiln_http_reader_t *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}

static void capture(kiln_http_reader_t *r, const char *data, size_t n)
{
    if (!r->capture || r->body_len >= r->capture_max)
        return;
    if (n > r->capture_max - r->body_len)
        n = r->capture_max - r->body_len;
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = (r->body_len + n + 1) * 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return;
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
}

/* Parses the status line and headers held in r->buf[0..len) (ending with
 * the blank line) and chooses how the body is framed.  0 or -1. */
static int parse_header(kiln_http_reader_t *r, size_t len)
{
    r->buf[len - 2] = 0; /* ends the last header line */
    const char *p = r->buf;
    if (strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    bool http10 = p[7] == '0';
    if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p[12] != '\r'))
        return -1;
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    bool chunked = false, keep_alive = false, has_length = false;
    uint64_t length = 0;
    const char *line = strstr(p, "\r\n");
    while (line && line[2]) {
        line += 2;
        const char *next = strstr(line, "\r\n");
        size_t n = next ? (size_t)(next - line) : strlen(line);
        const char *colon = memchr(line, ':', n);
        if (colon) {
            size_t name_len = (size_t)(colon - line);
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vlen = n - (size_t)(v - line);
            char value[256];
            snprintf(value, sizeof value, "%.*s", (int)(vlen < sizeof value ? vlen : sizeof value - 1), v);
            if (name_len == 14 && !strncasecmp(line, "Content-Length", 14)) {
                char *end;
                errno = 0;
                length = strtoull(value, &end, 10);
                if (end == value || errno || value[0] == '-')
                    return -1;
                has_length = true;
            } else if (name_len == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
                chunked = strcasestr(value, "chunked") != NULL;
            } else if (name_len == 10 && !strncasecmp(line, "Connection", 10)) {
                if (strcasestr(value, "close"))
                    r->close = true;
                if (strcasestr(value, "keep-alive"))
                    keep_alive = true;
            }
        }
        line = next;
    }
    if (http10 && !keep_alive)
        r->close = true;
    if (r->status < 200) { /* 100 Continue and friends: the real answer follows */
        r->state = KILN_HTTP_READ_HEADER;
        r->close = false;
    } else if (r->status == 204 || r->status == 304) {
        r->state = KILN_HTTP_READ_DONE;
    } else if (chunked) {
        r->state = KILN_HTTP_READ_CHUNK_SIZE;
    } else if (has_length) {
        r->remaining = length;
        r->state = length ? KILN_HTTP_READ_BODY : KILN_HTTP_READ_DONE;
    } else {
        r->state = KILN_HTTP_READ_UNTIL_EOF;
        r->close = true;
    }
    return 0;
}

/* Collects bytes up to and including '\n' into r->buf.  Returns 1 when the
 * line is complete, 0 when more bytes are needed, -1 when it is too long.
 * *used grows by the bytes taken. */
static int collect_line(kiln_http_reader_t *r, const char *data, size_t len, size_t *used, size_t max)
{
    const char *start = data + *used;
    size_t avail = len - *used;
    const char *nl = memchr(start, '\n', avail);
    size_t take = nl ? (size_t)(nl - start) + 1 : avail;
    if (r->line_len + take > max)
        return -1;
    memcpy(r->buf + r->line_len, start, take);
    r->line_len += take;
    r->buf[r->line_len] = 0;
    *used += take;
    return nl ? 1 : 0;
}

static bool blank_line(const kiln_http_reader_t *r)
{
    return (r->line_len == 2 && r->buf[0] == '\r') || r->line_len == 1;
}

ssize_t kiln_http_reader_feed(kiln_http_reader_t *r, const char *data, size_t len)
{
    size_t used = 0;
    while (used < len && r->state != KILN_HTTP_READ_DONE) {
        switch (r->state) {
        case KILN_HTTP_READ_HEADER: {
            size_t room = sizeof r->buf - 1 - r->line_len;
            if (room == 0)
                return -1; /* header larger than KILN_HTTP_HEADER_MAX */
            size_t take = len - used < room ? len - used : room;
            size_t old = r->line_len;
            memcpy(r->buf + old, data + used, take);
            r->line_len += take;
            r->buf[r->line_len] = 0;
            size_t from = old >= 3 ? old - 3 : 0;
            const char *end = memmem(r->buf + from, r->line_len - from, "\r\n\r\n", 4);
            if (!end) {
                used += take;
                break;
            }
            size_t header_len = (size_t)(end - r->buf) + 4;
            used += header_len - old;
            if (parse_header(r, header_len) < 0)
                return -1;
            r->line_len = 0;
            break;
        }
        case KILN_HTTP_READ_BODY:
        case KILN_HTTP_READ_CHUNK_DATA: {
            size_t take = len - used;
            if ((uint64_t)take > r->remaining)
                take = (size_t)r->remaining;
            capture(r, data + used, take);
            used += take;
            r->remaining -= take;
            if (r->remaining == 0) {
                r->state = r->state == KILN_HTTP_READ_BODY ? KILN_HTTP_READ_DONE : KILN_HTTP_READ_CHUNK_END;
                r->line_len = 0;
            }
            break;
        }
        case KILN_HTTP_READ_CHUNK_SIZE: {
            int rc = collect_line(r, data, len, &used, 1024);
            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
            char *end;
            errno = 0;
            unsigned long long size = strtoull(r->buf, &end, 16);
            if (end == r->buf || errno || (*end != '\r' && *end != '\n' && *end != ';' && *end != ' '))
                return -1;
            r->line_len = 0;
            r->remaining = size;
            r->state = size ? KILN_HTTP_READ_CHUNK_DATA : KILN_HTTP_READ_TRAILER;
            break;
        }
        case KILN_HTTP_READ_CHUNK_END: {
            int rc = collect_line(r, data, len, &used, 2);
            if (rc < 0 || (r->buf[0] != '\r' && r->buf[0] != '\n') || (r->line_len == 2 && r->buf[1] != '\n'))
                return -1;
            if (rc == 0)
                break;
            if (!blank_line(r))
                return -1;
            r->line_len = 0;
            r->state = KILN_HTTP_READ_CHUNK_SIZE;
            break;
        }
        case KILN_HTTP_READ_TRAILER: {
            int rc = collect_line(r, data, len, &used, sizeof r->buf - 1);
            if (rc < 0)
                return -1;
            if (rc == 0)
                break;
            if (blank_line(r))
                r->state = KILN_HTTP_READ_DONE;
            r->line_len = 0;
            break;
        }
        case KILN_HTTP_READ_UNTIL_EOF:
            capture(r, data + used, len - used);
            used = len;
            break;
        default:
            return -1;
        }
    }
    return (ssize_t)used;
}

bool kiln_http_reader_eof(kiln_http_reader_t *r)
{
    if (r->state == KILN_HTTP_READ_UNTIL_EOF)
        r->state = KILN_HTTP_READ_DONE;
    return r->state == KILN_HTTP_READ_DONE;
}

/* ---- Options ----------------------------------------------------------- */

typedef struct loadgen_args {
    const char *url;
    const char *model;
    const char *version; /* NULL: the server's choice */
    int levels[MAX_LEVELS];
    int n_levels;
    double duration_s, warmup_s, timeout_s;
    int threads; /* client threads; 0 = automatic */
    int batch;   /* --batch-size: the batch dim of every input (0: not given, 1) */
    bool binary, json;
    int n_inputs;
    char **input_names, **input_files;
    int n_shapes;
    char **shape_names;
    int64_t (*shape_dims)[KILN_MAX_RANK];
    int *shape_ranks;
} loadgen_args_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kiln bench --url http://HOST:PORT --model NAME [--version V] [--concurrency 1,4,16]\n"
            "                  [--batch-size N] [--duration S] [--warmup S] [--timeout S] [--threads N] "
            "[--binary]\n"
            "                  [--input NAME=FILE]... [--shape NAME=DIMS]... [--json]\n"
            "  Measures a KServe v2 server (kiln serve, Triton, ...) the way perf_analyzer does: for each\n"
            "  concurrency level, that many keep-alive connections each keep one infer request in flight\n"
            "  for --duration seconds (default 5) after --warmup seconds (default 1); prints throughput,\n"
            "  latency p50/p90/p95/p99/avg, errors by HTTP status, and the server's own statistics\n"
            "  (queue and compute time per request, average batch size) from /v2/models/NAME/stats.\n"
            "  Inputs come from the model's metadata: fixed-seed random data, or FILE (.npy or .pb);\n"
            "  --shape sets dims the server reports as -1 (else 1; --batch-size N for the batch dim).\n"
            "  --concurrency also takes perf_analyzer's ranges START:END[:STEP].  --binary sends and\n"
            "  asks for binary tensor data.  --timeout (default 30) bounds each request; --threads sets\n"
            "  the client threads (default 1, 2 from 32 connections).\n"
            "  Exit status: 0 done, 1 some requests failed, 2 bad usage or the server/model unreachable.\n");
}

static bool parse_seconds(const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo) || v > 86400)
        return false;
    *out = v;
    return true;
}

/* One number of a concurrency list, 1..MAX_CONCURRENCY. */
static bool parse_level(const char **s, long *v)
{
    char *end;
    errno = 0;
    *v = strtol(*s, &end, 10);
    if (end == *s || errno || *v < 1 || *v > MAX_CONCURRENCY)
        return false;
    *s = end;
    return true;
}

/* "1,4,16", or perf_analyzer's ranges "START:END[:STEP]" (STEP added,
 * default 1), or both: "1,8:32:8". */
static bool parse_levels(const char *s, loadgen_args_t *a)
{
    a->n_levels = 0;
    while (*s) {
        long first, last, step = 1;
        if (!parse_level(&s, &first))
            return false;
        last = first;
        if (*s == ':') {
            s++;
            if (!parse_level(&s, &last) || last < first)
                return false;
            if (*s == ':') {
                s++;
                if (!parse_level(&s, &step))
                    return false;
            }
        }
        for (long v = first; v <= last; v += step) {
            if (a->n_levels >= MAX_LEVELS)
                return false;
            a->levels[a->n_levels++] = (int)v;
        }
        if (*s == ',' && s[1])
            s++;
        else if (*s)
            return false;
    }
    return a->n_levels > 0;
}

/* Returns EXIT_OK, or EXIT_BAD after a message; *help set for --help. */
static int parse_args(int argc, char **argv, loadgen_args_t *a, bool *help)
{
    a->levels[0] = 1;
    a->n_levels = 1;
    a->duration_s = 5;
    a->warmup_s = 1;
    a->timeout_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            *help = true;
            return EXIT_OK;
        } else if (!strcmp(arg, "--json")) {
            a->json = true;
        } else if (!strcmp(arg, "--binary")) {
            a->binary = true;
        } else if (!val && arg[0] == '-') {
            fprintf(stderr, "kiln bench: %s needs a value\n", arg);
            return EXIT_BAD;
        } else if (!strcmp(arg, "--url")) {
            a->url = argv[++i];
        } else if (!strcmp(arg, "--model")) {
            a->model = argv[++i];
        } else if (!strcmp(arg, "--version")) {
            a->version = argv[++i];
        } else if (!strcmp(arg, "--concurrency")) {
            if (!parse_levels(argv[++i], a)) {
                fprintf(stderr,
                        "kiln bench: --concurrency expects a list like 1,4,16 or a range like 1:16:4 (each "
                        "1..%d, "
                        "at most %d levels), got '%s'\n",
                        MAX_CONCURRENCY, MAX_LEVELS, val);
                return EXIT_BAD;
            }
        } else if (!strcmp(arg, "--duration") || !strcmp(arg, "--warmup") || !strcmp(arg, "--timeout")) {
            double *dst = !strcmp(arg, "--duration") ? &a->duration_s
                          : !strcmp(arg, "--warmup") ? &a->warmup_s
                                                     : &a->timeout_s;
            double lo = dst == &a->warmup_s ? 0 : 0.01;
            if (!parse_seconds(argv[++i], lo, dst)) {
                fprintf(stderr, "kiln bench: %s expects seconds (%g or more), got '%s'\n", arg, lo, val);
                return EXIT_BAD;
            }
        } else if (!strcmp(arg, "--batch-size")) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 20) {
                fprintf(stderr, "kiln bench: --batch-size expects a positive number, got '%s'\n", val);
                return EXIT_BAD;
            }
            a->batch = (int)v;
        } else if (!strcmp(arg, "--threads")) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 64) {
                fprintf(stderr, "kiln bench: --threads expects 1..64 client threads, got '%s'\n", val);
                return EXIT_BAD;
            }
            a->threads = (int)v;
        } else if (!strcmp(arg, "--input") || !strcmp(arg, "--shape")) {
            const char *v = argv[++i];
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) {
                fprintf(stderr, "kiln bench: %s expects NAME=%s, got '%s'\n", arg,
                        !strcmp(arg, "--input") ? "FILE" : "DIMS", v);
                return EXIT_BAD;
            }
            if (!strcmp(arg, "--input")) {
                a->input_names[a->n_inputs] = strndup(v, (size_t)(eq - v));
                a->input_files[a->n_inputs++] = (char *)eq + 1;
            } else {
                if (!kiln_bench_parse_dims(eq + 1, a->shape_dims[a->n_shapes], &a->shape_ranks[a->n_shapes])) {
                    fprintf(stderr, "kiln bench: --shape dims must look like 1x3x224x224, got '%s'\n",
                            eq + 1);
                    return EXIT_BAD;
                }
                a->shape_names[a->n_shapes++] = strndup(v, (size_t)(eq - v));
            }
        } else {
            fprintf(stderr, "kiln bench: unknown option '%s' with --url\n", arg);
            usage(stderr);
            return EXIT_BAD;
        }
    }
    if (!a->url || !*a->url) {
        fprintf(stderr, "kiln bench: --url needs http://HOST:PORT\n");
        return EXIT_BAD;
    }
    if (!a->model || !*a->model) {
        fprintf(stderr, "kiln bench: --url needs --model NAME\n");
        return EXIT_BAD;
    }
    return EXIT_OK;
}

/* ---- The target: address, paths and the request bytes ----------------- */

typedef struct target {
    kiln_http_url_t url;
    char prefix[512];      /* the URL's path without the trailing '/' */
    char model_path[1024]; /* prefix/v2/models/NAME[/versions/V] */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char *request; /* the whole HTTP request: headers and body */
    size_t request_len, body_len;
    int batch; /* inferences per request: the batch dim when the model batches */
    double timeout_s, connect_timeout_s;
} target_t;

/* Appends s to dst percent-encoded (a path segment). */
static void append_segment(char *dst, size_t size, const char *s)
{
    size_t n = strlen(dst);
    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
            dst[n++] = (char)c;
        else
            n += (size_t)snprintf(dst + n, size - n, "%%%02X", c);
    }
    dst[n] = 0;
}

/* True when a TCP connection to ai opens within timeout_s. */
static bool connects(const struct addrinfo *ai, double timeout_s)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int soerr = 1;
        socklen_t sl = sizeof soerr;
        ok = poll(&pfd, 1, (int)(timeout_s * 1000)) == 1 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0;
    }
    close(fd);
    return ok;
}

static int target_init(target_t *t, const loadgen_args_t *a)
{
    char err[256], url[600];
    /* HOST:PORT alone, as perf_analyzer's -u takes it, means http:// */
    snprintf(url, sizeof url, "%s%s", strstr(a->url, "://") ? "" : "http://", a->url);
    if (kiln_http_url_parse(url, &t->url, err, sizeof err) < 0) {
        fprintf(stderr, "kiln bench: bad --url '%s': %s\n", a->url, err);
        return -1;
    }
    if (strchr(t->url.path, '?')) {
        fprintf(stderr, "kiln bench: bad --url '%s': give the server's base URL, without a query\n", a->url);
        return -1;
    }
    snprintf(t->prefix, sizeof t->prefix, "%s", t->url.path);
    size_t pl = strlen(t->prefix);
    while (pl > 0 && t->prefix[pl - 1] == '/')
        t->prefix[--pl] = 0;
    snprintf(t->model_path, sizeof t->model_path, "%s/v2/models/", t->prefix);
    append_segment(t->model_path, sizeof t->model_path, a->model);
    if (a->version) {
        strncat(t->model_path, "/versions/", sizeof t->model_path - strlen(t->model_path) - 1);
        append_segment(t->model_path, sizeof t->model_path, a->version);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(t->url.host, t->url.port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "kiln bench: cannot resolve '%s': %s\n", t->url.host, gai_strerror(rc));
        return -1;
    }
    t->timeout_s = a->timeout_s;
    t->connect_timeout_s = a->timeout_s < CONNECT_TIMEOUT_S ? a->timeout_s : CONNECT_TIMEOUT_S;
    /* every connection goes to one address: the first that accepts (a name
     * like localhost may list ::1 before 127.0.0.1), else the first listed */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai && res->ai_next; ai = ai->ai_next)
        if (connects(ai, t->connect_timeout_s)) {
            pick = ai;
            break;
        }
    memcpy(&t->addr, pick->ai_addr, pick->ai_addrlen);
    t->addr_len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* GET prefix+suffix with the blocking client; 0 with *status and *body
 * (caller frees), or -1 with a message in err. */
static int http_get(const target_t *t, const char *path, int *status, char **body, char *err, size_t errlen)
{
    kiln_http_url_t u = t->url;
    snprintf(u.path, sizeof u.path, "%s", path);
    size_t len;
    double timeout = t->timeout_s < 10 ? t->timeout_s : 10;
    return kiln_http_request(&u, "GET", NULL, NULL, 0, timeout, status, body, &len, err, errlen);
}

/* The "error" text of a KServe error answer, or the body itself. */
static void error_text(const char *body, char *out, size_t size)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    json_t *e = j ? json_object_get(j, "error") : NULL;
    if (json_is_string(e))
        snprintf(out, size, "%s", json_string_value(e));
    else
        snprintf(out, size, "%.200s", body ? body : "");
    json_decref(j);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

/* The model's max_batch_size from GET .../config (Triton's and kiln's),
 * 0 when it does not batch or the server has no config endpoint. */
static long max_batch_size(const target_t *t, const loadgen_args_t *a)
{
    char path[1100], *body = NULL, err[256];
    int status = 0;
    long mbs = 0;
    snprintf(path, sizeof path, "%s/v2/models/", t->prefix);
    append_segment(path, sizeof path, a->model);
    strncat(path, "/config", sizeof path - strlen(path) - 1);
    if (http_get(t, path, &status, &body, err, sizeof err) == 0 && status == 200) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *v = j ? json_object_get(j, "max_batch_size") : NULL;
        if (json_is_integer(v) && json_integer_value(v) > 0)
            mbs = (long)json_integer_value(v);
        json_decref(j);
    }
    free(body);
    return mbs;
}

/* Reads the model's metadata and builds the request.  Returns EXIT_OK or
 * EXIT_BAD after a one-line message. */
static int build_request(target_t *t, const loadgen_args_t *a, int *n_inputs_out)
{
    int status = 0, rc = EXIT_BAD;
    char *body = NULL, err[512];
    json_t *meta = NULL;
    char **names = NULL;
    kiln_tensor_t **tensors = NULL;
    size_t n = 0;
    if (http_get(t, t->model_path, &status, &body, err, sizeof err) < 0) {
        fprintf(stderr, "kiln bench: cannot reach %s: %s\n", t->url.text, err);
        goto done;
    }
    if (status != 200) {
        char msg[300];
        error_text(body, msg, sizeof msg);
        fprintf(stderr, "kiln bench: model '%s'%s%s is not available at %s (HTTP %d: %s)\n", a->model,
                a->version ? " version " : "", a->version ? a->version : "", t->url.text, status, msg);
        goto done;
    }
    json_error_t jerr;
    meta = json_loads(body, 0, &jerr);
    json_t *inputs = meta ? json_object_get(meta, "inputs") : NULL;
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        fprintf(stderr, "kiln bench: the metadata of model '%s' at %s lists no inputs\n", a->model,
                t->url.text);
        goto done;
    }
    long mbs = max_batch_size(t, a);
    if (a->batch && mbs == 0) {
        fprintf(stderr, "kiln bench: --batch-size %d: model '%s' does not batch (its max_batch_size is 0)\n",
                a->batch, a->model);
        goto done;
    }
    n = json_array_size(inputs);
    names = calloc(n, sizeof *names);
    tensors = calloc(n, sizeof *tensors);
    if (!names || !tensors)
        goto done;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        json_t *in = json_array_get(inputs, i);
        json_t *jn = json_object_get(in, "name"), *jt = json_object_get(in, "datatype");
        json_t *js = json_object_get(in, "shape");
        if (!json_is_string(jn) || !json_is_string(jt) || !json_is_array(js) ||
            json_array_size(js) > KILN_MAX_RANK) {
            fprintf(stderr, "kiln bench: the metadata of model '%s' has a malformed input %zu\n", a->model,
                    i);
            goto done;
        }
        const char *name = json_string_value(jn);
        names[i] = strdup(name);
        kiln_dtype_t dtype = kiln_kserve_type_to_dtype(json_string_value(jt));
        int given = -1, shaped = -1;
        for (int k = 0; k < a->n_inputs; k++)
            if (!strcmp(a->input_names[k], name))
                given = k;
        for (int k = 0; k < a->n_shapes; k++)
            if (!strcmp(a->shape_names[k], name))
                shaped = k;
        if (given >= 0) {
            if (kiln_tensor_read_file(a->input_files[given], &tensors[i]) != KILN_OK) {
                fprintf(stderr, "kiln bench: input '%s': %s\n", name, kiln_last_error());
                goto done;
            }
            continue;
        }
        if (dtype == KILN_DTYPE_UNDEFINED) {
            fprintf(stderr,
                    "kiln bench: input '%s' has datatype '%s', which kiln cannot generate; give --input\n",
                    name, json_string_value(jt));
            goto done;
        }
        int64_t dims[KILN_MAX_RANK];
        int rank = (int)json_array_size(js);
        if (shaped >= 0) {
            rank = a->shape_ranks[shaped];
            memcpy(dims, a->shape_dims[shaped], sizeof dims);
        } else {
            for (int d = 0; d < rank; d++) {
                json_int_t v = json_integer_value(json_array_get(js, (size_t)d));
                if (d == 0 && mbs > 0 && a->batch)
                    dims[d] = a->batch; /* the batch dim */
                else
                    dims[d] = v < 0 ? 1 : v; /* a dynamic dim: 1 */
            }
        }
        if (kiln_shape_count(rank, dims, kiln_dtype_size(dtype)) < 0 ||
            !(tensors[i] = kiln_bench_random_tensor(dtype, rank, dims, &seed))) {
            fprintf(stderr, "kiln bench: input '%s': cannot make a tensor of that shape\n", name);
            goto done;
        }
    }
    for (int k = 0; k < a->n_inputs; k++) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= names[i] && !strcmp(names[i], a->input_names[k]);
        if (!found) {
            fprintf(stderr, "kiln bench: --input '%s': model '%s' has no input of that name\n",
                    a->input_names[k], a->model);
            goto done;
        }
    }
    /* inferences per request, as perf_analyzer counts them */
    t->batch = mbs > 0 && tensors[0]->rank > 0 && tensors[0]->dims[0] > 0 && tensors[0]->dims[0] <= 1 << 20
                   ? (int)tensors[0]->dims[0]
                   : 1;
    char *payload = NULL;
    size_t payload_len = 0, json_len = 0;
    if (kiln_v2_write_request((int)n, (const char *const *)names, (const kiln_tensor_t *const *)tensors,
                              a->binary, a->binary, &payload, &payload_len, &json_len) != KILN_OK) {
        fprintf(stderr, "kiln bench: %s\n", kiln_last_error());
        goto done;
    }
    char head[2048], host[300], path[1200];
    bool v6 = strchr(t->url.host, ':') != NULL;
    snprintf(host, sizeof host, "%s%s%s:%s", v6 ? "[" : "", t->url.host, v6 ? "]" : "", t->url.port);
    snprintf(path, sizeof path, "%s/infer", t->model_path);
    int hl = snprintf(
        head, sizeof head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
        path, host, json_len == payload_len ? "application/json" : "application/octet-stream", payload_len);
    if (json_len != payload_len)
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "Inference-Header-Content-Length: %zu\r\n",
                       json_len);
    hl += snprintf(head + hl, sizeof head - (size_t)hl, "\r\n");
    t->request = malloc((size_t)hl + payload_len);
    if (!t->request) {
        free(payload);
        goto done;
    }
    memcpy(t->request, head, (size_t)hl);
    memcpy(t->request + hl, payload, payload_len);
    t->request_len = (size_t)hl + payload_len;
    t->body_len = payload_len;
    free(payload);
    *n_inputs_out = (int)n;
    rc = EXIT_OK;
done:
    for (size_t i = 0; i < n; i++) {
        if (names)
            free(names[i]);
        if (tensors)
            kiln_tensor_free(tensors[i]);
    }
    free(names);
    free(tensors);
    json_decref(meta);
    free(body);
    return rc;
}

/* ---- Client threads ---------------------------------------------------- */

/* Error slots: HTTP statuses by their code, then failures without one. */
enum { SLOT_CONNECT = 600, SLOT_TIMEOUT, SLOT_BROKEN, N_SLOTS };

static const char *slot_name(int slot, char *buf, size_t size)
{
    switch (slot) {
    case SLOT_CONNECT:
        return "connect";
    case SLOT_TIMEOUT:
        return "timeout";
    case SLOT_BROKEN:
        return "connection";
    default:
        snprintf(buf, size, "%d", slot);
        return buf;
    }
}

enum { CONN_IDLE, CONN_CONNECTING, CONN_SENDING, CONN_RECEIVING, CONN_BACKOFF, CONN_DONE };

typedef struct conn {
    int fd; /* -1 when closed */
    int state;
    size_t sent;     /* request bytes sent so far */
    double start;    /* when the request's first byte was sent */
    double sent_at;  /* when its last byte was sent */
    double first_at; /* when the answer's first byte arrived (0: not yet) */
    double deadline; /* connect or request deadline */
    double retry_at; /* end of a back-off */
    kiln_http_reader_t rd;
} conn_t;

static volatile sig_atomic_t g_interrupted;

typedef struct worker {
    const target_t *t;
    double t_start, t_end; /* the measurement window */
    long max_requests;     /* 0: until t_end; the probe uses 1 */
    conn_t *conns;
    int n_conns;
    int epfd;
    char *scratch;
    double *lat; /* latencies (ms) of successes inside the window */
    size_t n_lat, cap_lat;
    uint64_t parts[N_PARTS];       /* successes in each third of the window */
    double send_s, wait_s, recv_s; /* sums over those successes: the phases of a request */
    uint64_t errors[N_SLOTS];
    long finished;         /* answers and failures, window or not */
    char first_error[256]; /* the first network failure, for the report */
    pthread_t thread;
} worker_t;

static double now_s(void)
{
    return kiln_now_seconds();
}

static bool stopping(const worker_t *w, double now)
{
    return now >= w->t_end || g_interrupted || (w->max_requests && w->finished >= w->max_requests);
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
}

static void conn_start(worker_t *w, conn_t *c, double now);

static void conn_fail(worker_t *w, conn_t *c, int slot, double now, const char *what, int err)
{
    if (now >= w->t_start)
        w->errors[slot]++;
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "%s%s%s", what, err ? ": " : "",
                 err ? strerror(err) : "");
    w->finished++;
    conn_close(c);
    c->state = CONN_BACKOFF;
    c->retry_at = now + BACKOFF_S;
    if (stopping(w, now))
        c->state = CONN_DONE;
}

static void begin_request(worker_t *w, conn_t *c, double now)
{
    c->state = CONN_SENDING;
    c->sent = 0;
    c->start = now;
    c->sent_at = c->first_at = 0;
    c->deadline = now + w->t->timeout_s;
    kiln_http_reader_reset(&c->rd);
}

/* Prepares the next request on c: reconnects when needed, or retires c
 * when the level is over.  Sends nothing itself (conn_progress does), so
 * an answer that completes inside conn_progress never recurses. */
static void conn_start(worker_t *w, conn_t *c, double now)
{
    if (stopping(w, now)) {
        conn_close(c);
        c->state = CONN_DONE;
        return;
    }
    if (c->fd < 0) {
        const target_t *t = w->t;
        c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            conn_fail(w, c, SLOT_CONNECT, now, "socket", errno);
            return;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bool in_progress = false;
        if (connect(c->fd, (const struct sockaddr *)&t->addr, t->addr_len) < 0) {
            if (errno != EINPROGRESS) {
                conn_fail(w, c, SLOT_CONNECT, now, "connect", errno);
                return;
            }
            in_progress = true;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            conn_fail(w, c, SLOT_CONNECT, now, "epoll", errno);
            return;
        }
        if (in_progress) {
            c->state = CONN_CONNECTING;
            c->deadline = now + t->connect_timeout_s;
            return; /* EPOLLOUT says when */
        }
    }
    begin_request(w, c, now);
}

/* One answer has been read completely. */
static void conn_finish(worker_t *w, conn_t *c, double now)
{
    int status = c->rd.status;
    w->finished++;
    if (status == 200) {
        if (now >= w->t_start && now < w->t_end) {
            if (w->n_lat == w->cap_lat) {
                size_t cap = w->cap_lat ? w->cap_lat * 2 : 4096;
                double *l = realloc(w->lat, cap * sizeof *l);
                if (l) {
                    w->lat = l;
                    w->cap_lat = cap;
                }
            }
            if (w->n_lat < w->cap_lat)
                w->lat[w->n_lat++] = (now - c->start) * 1e3;
            w->send_s += c->sent_at - c->start;
            w->wait_s += c->first_at - c->sent_at;
            w->recv_s += now - c->first_at;
            int part = (int)((now - w->t_start) * N_PARTS / (w->t_end - w->t_start));
            w->parts[part < 0 ? 0 : part >= N_PARTS ? N_PARTS - 1 : part]++;
        }
    } else if (now >= w->t_start) {
        w->errors[status >= 100 && status < 600 ? status : SLOT_BROKEN]++;
    }
    if (c->rd.close)
        conn_close(c);
    c->state = CONN_IDLE;
    if (w->max_requests && w->finished >= w->max_requests) { /* the probe keeps its answer */
        conn_close(c);
        c->state = CONN_DONE;
        return;
    }
    conn_start(w, c, now);
}

/* Moves c forward as far as the socket allows (edge-triggered: until EAGAIN). */
static void conn_progress(worker_t *w, conn_t *c)
{
    const target_t *t = w->t;
    for (;;) {
        switch (c->state) {
        case CONN_CONNECTING: {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            if (soerr) {
                conn_fail(w, c, SLOT_CONNECT, now_s(), "connect", soerr);
                return;
            }
            struct sockaddr_storage peer;
            socklen_t pl = sizeof peer;
            if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) < 0)
                return; /* still connecting */
            begin_request(w, c, now_s());
            break;
        }
        case CONN_SENDING: {
            ssize_t n = send(c->fd, t->request + c->sent, t->request_len - c->sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno == EINTR)
                    break;
                conn_fail(w, c, SLOT_BROKEN, now_s(), "send", errno);
                return;
            }
            c->sent += (size_t)n;
            if (c->sent == t->request_len) {
                c->sent_at = now_s();
                c->state = CONN_RECEIVING;
            }
            break;
        }
        case CONN_RECEIVING: {
            ssize_t n = recv(c->fd, w->scratch, SCRATCH_BYTES, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno == EINTR)
                    break;
                conn_fail(w, c, SLOT_BROKEN, now_s(), "receive", errno);
                return;
            }
            if (n == 0) {
                if (kiln_http_reader_eof(&c->rd)) {
                    c->rd.close = true;
                    conn_finish(w, c, now_s());
                } else {
                    conn_fail(w, c, SLOT_BROKEN, now_s(), "the server closed the connection", 0);
                }
                return;
            }
            if (!c->first_at)
                c->first_at = now_s();
            ssize_t used = kiln_http_reader_feed(&c->rd, w->scratch, (size_t)n);
            if (used < 0 || (used < n)) { /* malformed, or bytes after the answer: we never pipeline */
                conn_fail(w, c, SLOT_BROKEN, now_s(), "malformed HTTP answer", 0);
                return;
            }
            if (c->rd.state == KILN_HTTP_READ_DONE)
                conn_finish(w, c, now_s());
            break;
        }
        default:
            return;
        }
    }
}

/* conn_start, then send as far as the socket allows. */
static void conn_kick(worker_t *w, conn_t *c, double now)
{
    conn_start(w, c, now);
    conn_progress(w, c);
}

/* The 5 ms timer: deadlines, back-offs, interruption.  Returns the number of
 * connections not yet retired. */
static int worker_tick(worker_t *w, double now)
{
    int active = 0;
    for (int i = 0; i < w->n_conns; i++) {
        conn_t *c = &w->conns[i];
        if (g_interrupted && c->state != CONN_DONE) { /* abandon requests in flight */
            conn_close(c);
            c->state = CONN_DONE;
        }
        if (c->state == CONN_BACKOFF && now >= c->retry_at)
            conn_kick(w, c, now);
        else if ((c->state == CONN_CONNECTING || c->state == CONN_SENDING || c->state == CONN_RECEIVING) &&
                 now > c->deadline)
            conn_fail(w, c, SLOT_TIMEOUT, now,
                      c->state == CONN_CONNECTING ? "connect timed out" : "request timed out", 0);
        else if (c->state == CONN_IDLE)
            conn_kick(w, c, now);
        active += c->state != CONN_DONE;
    }
    return active;
}

static void *worker_run(void *arg)
{
    worker_t *w = arg;
    struct epoll_event events[256];
    double now = now_s(), last_tick = now;
    for (int i = 0; i < w->n_conns; i++)
        conn_kick(w, &w->conns[i], now);
    for (;;) {
        int n = epoll_wait(w->epfd, events, 256, (int)(TIMER_S * 1000));
        for (int i = 0; i < n; i++)
            conn_progress(w, events[i].data.ptr);
        now = now_s();
        if (n <= 0 || now - last_tick >= TIMER_S) {
            last_tick = now;
            if (worker_tick(w, now) == 0)
                break;
        }
    }
    return NULL;
}

static int worker_init(worker_t *w, const target_t *t, int n_conns)
{
    memset(w, 0, sizeof *w);
    w->t = t;
    w->n_conns = n_conns;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->conns = calloc((size_t)n_conns, sizeof *w->conns);
    w->scratch = malloc(SCRATCH_BYTES);
    if (w->epfd < 0 || !w->conns || !w->scratch)
        return -1;
    for (int i = 0; i < n_conns; i++)
        w->conns[i].fd = -1;
    return 0;
}

static void worker_free(worker_t *w)
{
    for (int i = 0; w->conns && i < w->n_conns; i++) {
        conn_close(&w->conns[i]);
        kiln_http_reader_free(&w->conns[i].rd);
    }
    if (w->epfd >= 0)
        close(w->epfd);
    free(w->conns);
    free(w->scratch);
    free(w->lat);
}

/* Sends the request once and checks that the answer is 200.  EXIT_OK or
 * EXIT_BAD after a message. */
static int probe(const target_t *t, const char *model)
{
    worker_t w;
    int rc = EXIT_BAD;
    if (worker_init(&w, t, 1) < 0) {
        fprintf(stderr, "kiln bench: out of memory\n");
        worker_free(&w);
        return EXIT_BAD;
    }
    double now = now_s();
    w.t_start = now;
    w.t_end = now + t->timeout_s + t->connect_timeout_s + 1;
    w.max_requests = 1;
    w.conns[0].rd.capture = true;
    w.conns[0].rd.capture_max = PROBE_BODY_MAX;
    worker_run(&w);
    int status = w.conns[0].rd.status;
    if (w.first_error[0]) {
        fprintf(stderr, "kiln bench: cannot reach %s: %s\n", t->url.text, w.first_error);
    } else if (w.errors[SLOT_TIMEOUT] || status == 0) {
        fprintf(stderr, "kiln bench: the first infer request to model '%s' got no answer in %g s\n", model,
                t->timeout_s);
    } else if (status != 200) {
        char msg[300];
        error_text(w.conns[0].rd.body, msg, sizeof msg);
        fprintf(stderr, "kiln bench: the first infer request to model '%s' failed (HTTP %d: %s)\n", model,
                status, msg);
    } else {
        rc = EXIT_OK;
    }
    worker_free(&w);
    return rc;
}

/* ---- Server statistics ------------------------------------------------- */

typedef struct server_stats {
    bool ok;
    uint64_t inference_count, execution_count;
    uint64_t success_count, success_ns, fail_count;
    uint64_t queue_count, queue_ns;
    uint64_t input_count, input_ns, infer_count, infer_ns, output_count, output_ns;
} server_stats_t;

static uint64_t ju64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v);
    if (json_is_string(v)) /* protobuf JSON writes 64-bit numbers as strings */
        return strtoull(json_string_value(v), NULL, 10);
    return 0;
}

static void add_count_ns(json_t *is, const char *key, uint64_t *count, uint64_t *ns)
{
    json_t *o = json_object_get(is, key);
    *count += ju64(o, "count");
    *ns += ju64(o, "ns");
}

/* GET .../stats; sums the entries of the model (of the chosen version). */
static server_stats_t fetch_stats(const target_t *t, const loadgen_args_t *a)
{
    server_stats_t s = {0};
    char path[1100], *body = NULL, err[256];
    int status = 0;
    snprintf(path, sizeof path, "%s/stats", t->model_path);
    if (http_get(t, path, &status, &body, err, sizeof err) < 0 || status != 200) {
        free(body);
        return s;
    }
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    json_t *list = j ? json_object_get(j, "model_stats") : NULL;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_t *name = json_object_get(e, "name"), *ver = json_object_get(e, "version");
        if (json_is_string(name) && strcmp(json_string_value(name), a->model))
            continue;
        if (a->version && json_is_string(ver) && strcmp(json_string_value(ver), a->version))
            continue;
        s.ok = true;
        s.inference_count += ju64(e, "inference_count");
        s.execution_count += ju64(e, "execution_count");
        json_t *is = json_object_get(e, "inference_stats");
        add_count_ns(is, "success", &s.success_count, &s.success_ns);
        uint64_t fail_ns = 0;
        add_count_ns(is, "fail", &s.fail_count, &fail_ns);
        add_count_ns(is, "queue", &s.queue_count, &s.queue_ns);
        add_count_ns(is, "compute_input", &s.input_count, &s.input_ns);
        add_count_ns(is, "compute_infer", &s.infer_count, &s.infer_ns);
        add_count_ns(is, "compute_output", &s.output_count, &s.output_ns);
    }
    json_decref(j);
    return s;
}

/* ---- Levels -------------------------------------------------------------- */

typedef struct level_result {
    int concurrency;
    int batch; /* inferences per request */
    double window_s;
    kiln_latency_stats_t lat;
    uint64_t requests;                /* successes in the window */
    uint64_t parts[N_PARTS];          /* successes per third of the window */
    double send_us, wait_us, recv_us; /* per success: sending, waiting for the answer, receiving it */
    bool stable;                      /* every third within STABLE_WITHIN of their mean */
    uint64_t errors[N_SLOTS];
    uint64_t error_total;
    char first_error[256];
    bool server_ok;
    server_stats_t d; /* after - before */
} level_result_t;

static void sleep_until(double when)
{
    for (;;) {
        double left = when - now_s();
        if (left <= 0 || g_interrupted)
            return;
        if (left > 0.05)
            left = 0.05;
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int run_level(const target_t *t, const loadgen_args_t *a, int concurrency, level_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->concurrency = concurrency;
    out->batch = t->batch;
    int n_threads = a->threads ? a->threads : concurrency >= 32 ? 2 : 1;
    if (n_threads > concurrency)
        n_threads = concurrency;
    worker_t *ws = calloc((size_t)n_threads, sizeof *ws);
    if (!ws)
        return -1;
    double t0 = now_s();
    double t_start = t0 + a->warmup_s, t_end = t_start + a->duration_s;
    int started = 0, inited = 0, rc = 0;
    for (int i = 0; i < n_threads; i++) {
        int share = concurrency / n_threads + (i < concurrency % n_threads);
        inited++;
        if (worker_init(&ws[i], t, share) < 0) {
            rc = -1;
            break;
        }
        ws[i].t_start = t_start;
        ws[i].t_end = t_end;
        if (pthread_create(&ws[i].thread, NULL, worker_run, &ws[i]) != 0) {
            rc = -1;
            break;
        }
        started++;
    }
    server_stats_t before = {0}, after = {0};
    if (rc == 0) {
        sleep_until(t_start);
        before = fetch_stats(t, a);
        sleep_until(t_end);
        double end = now_s();
        out->window_s = (end < t_end ? end : t_end) - t_start;
        if (out->window_s < 0)
            out->window_s = 0;
        after = fetch_stats(t, a);
    }
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    size_t total = 0;
    for (int i = 0; i < started; i++)
        total += ws[i].n_lat;
    double *lat = malloc((total ? total : 1) * sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < started; i++) {
        if (lat && ws[i].n_lat)
            memcpy(lat + k, ws[i].lat, ws[i].n_lat * sizeof *lat);
        k += ws[i].n_lat;
        for (int p = 0; p < N_PARTS; p++)
            out->parts[p] += ws[i].parts[p];
        out->send_us += ws[i].send_s;
        out->wait_us += ws[i].wait_s;
        out->recv_us += ws[i].recv_s;
        for (int s = 0; s < N_SLOTS; s++) {
            out->errors[s] += ws[i].errors[s];
            out->error_total += ws[i].errors[s];
        }
        if (!out->first_error[0] && ws[i].first_error[0])
            memcpy(out->first_error, ws[i].first_error, sizeof out->first_error);
    }
    out->requests = total;
    if (total) {
        out->send_us = out->send_us / (double)total * 1e6;
        out->wait_us = out->wait_us / (double)total * 1e6;
        out->recv_us = out->recv_us / (double)total * 1e6;
    }
    out->stable = !g_interrupted && total > 0;
    for (int p = 0; p < N_PARTS; p++)
        if (fabs((double)out->parts[p] * N_PARTS - (double)total) > STABLE_WITHIN * (double)total)
            out->stable = false;
    if (lat && total)
        kiln_latency_stats(lat, total, &out->lat);
    free(lat);
    for (int i = 0; i < inited; i++)
        worker_free(&ws[i]);
    free(ws);
    if (before.ok && after.ok && after.inference_count >= before.inference_count) {
        out->server_ok = true;
        server_stats_t *d = &out->d;
#define DELTA(f) d->f = after.f - before.f
        DELTA(inference_count);
        DELTA(execution_count);
        DELTA(success_count);
        DELTA(success_ns);
        DELTA(fail_count);
        DELTA(queue_count);
        DELTA(queue_ns);
        DELTA(input_count);
        DELTA(input_ns);
        DELTA(infer_count);
        DELTA(infer_ns);
        DELTA(output_count);
        DELTA(output_ns);
#undef DELTA
    }
    return rc;
}

static double per_request_us(uint64_t ns, uint64_t count)
{
    return count ? (double)ns / (double)count / 1e3 : 0;
}

static double request_rate(const level_result_t *r)
{
    return r->window_s > 0 ? (double)r->requests / r->window_s : 0;
}

/* Inferences per second: requests times the batch each carries. */
static double throughput(const level_result_t *r)
{
    return request_rate(r) * r->batch;
}

static double avg_batch(const server_stats_t *d)
{
    return d->execution_count ? (double)d->inference_count / (double)d->execution_count : 0;
}

/* Inferences per second in one third of the window. */
static double part_throughput(const level_result_t *r, int p)
{
    return r->window_s > 0 ? (double)r->parts[p] * N_PARTS / r->window_s * r->batch : 0;
}

/* The server's time per request outside its queue and compute phases, as
 * perf_analyzer reports it ("overhead"); never below 0. */
static double server_overhead_us(const server_stats_t *d)
{
    double o = per_request_us(d->success_ns, d->success_count) - per_request_us(d->queue_ns, d->queue_count) -
               per_request_us(d->input_ns, d->input_count) - per_request_us(d->infer_ns, d->infer_count) -
               per_request_us(d->output_ns, d->output_count);
    return o > 0 ? o : 0;
}

static void print_level_text(const level_result_t *r)
{
    char name[16];
    printf("\nRequest concurrency: %d\n", r->concurrency);
    printf("  Client:\n");
    printf("    Request count: %llu in %.2f s\n", (unsigned long long)r->requests, r->window_s);
    if (r->batch > 1)
        printf("    Throughput: %.1f infer/sec (%.1f requests/sec of batch %d)\n", throughput(r),
               request_rate(r), r->batch);
    else
        printf("    Throughput: %.1f infer/sec\n", throughput(r));
    if (!r->stable && r->requests) {
        printf("    Unsteady: the thirds of the window ran at");
        for (int p = 0; p < N_PARTS; p++)
            printf("%s %.1f", p ? "," : "", part_throughput(r, p));
        printf(" infer/sec (not all within %.0f%% of their mean; try a longer --duration)\n",
               STABLE_WITHIN * 100);
    }
    printf("    Latency: p50 %.0f usec, p90 %.0f usec, p95 %.0f usec, p99 %.0f usec, avg %.0f usec"
           " (min %.0f, max %.0f)\n",
           r->lat.p50 * 1e3, r->lat.p90 * 1e3, r->lat.p95 * 1e3, r->lat.p99 * 1e3, r->lat.mean * 1e3,
           r->lat.min * 1e3, r->lat.max * 1e3);
    printf("    Avg HTTP time: %.0f usec (send %.0f usec + response wait %.0f usec + receive %.0f usec)\n",
           r->send_us + r->wait_us + r->recv_us, r->send_us, r->wait_us, r->recv_us);
    printf("    Errors: %llu", (unsigned long long)r->error_total);
    const char *sep = " (";
    for (int s = 0; s < N_SLOTS; s++)
        if (r->errors[s]) {
            printf("%s%s: %llu", sep, slot_name(s, name, sizeof name), (unsigned long long)r->errors[s]);
            sep = ", ";
        }
    printf("%s\n", r->error_total ? ")" : "");
    if (r->error_total && r->first_error[0])
        printf("    First failure: %s\n", r->first_error);
    if (!r->server_ok) {
        printf("  Server: statistics not available\n");
        return;
    }
    const server_stats_t *d = &r->d;
    printf("  Server:\n");
    printf("    Inference count: %llu\n", (unsigned long long)d->inference_count);
    printf("    Execution count: %llu (average batch size %.2f)\n", (unsigned long long)d->execution_count,
           avg_batch(d));
    printf("    Successful request count: %llu\n", (unsigned long long)d->success_count);
    printf(
        "    Avg request latency: %.0f usec (overhead %.0f usec + queue %.0f usec + compute input %.0f usec"
        " + compute infer %.0f usec + compute output %.0f usec)\n",
        per_request_us(d->success_ns, d->success_count), server_overhead_us(d),
        per_request_us(d->queue_ns, d->queue_count), per_request_us(d->input_ns, d->input_count),
        per_request_us(d->infer_ns, d->infer_count), per_request_us(d->output_ns, d->output_count));
}

static json_t *level_json(const level_result_t *r)
{
    json_t *o = json_object();
    char name[16];
    json_object_set_new(o, "concurrency", json_integer(r->concurrency));
    json_object_set_new(o, "duration_s", json_real(r->window_s));
    json_object_set_new(o, "requests", json_integer((json_int_t)r->requests));
    json_object_set_new(o, "throughput_per_s", json_real(throughput(r)));
    json_object_set_new(o, "requests_per_s", json_real(request_rate(r)));
    json_t *parts = json_array();
    for (int p = 0; p < N_PARTS; p++)
        json_array_append_new(parts, json_real(part_throughput(r, p)));
    json_object_set_new(o, "throughput_by_third", parts);
    json_object_set_new(o, "stable", json_boolean(r->stable));
    json_object_set_new(o, "p50_ms", json_real(r->lat.p50));
    json_object_set_new(o, "p90_ms", json_real(r->lat.p90));
    json_object_set_new(o, "p95_ms", json_real(r->lat.p95));
    json_object_set_new(o, "p99_ms", json_real(r->lat.p99));
    json_object_set_new(o, "avg_ms", json_real(r->lat.mean));
    json_object_set_new(o, "send_us", json_real(r->send_us));
    json_object_set_new(o, "wait_us", json_real(r->wait_us));
    json_object_set_new(o, "receive_us", json_real(r->recv_us));
    json_object_set_new(o, "min_ms", json_real(r->lat.min));
    json_object_set_new(o, "max_ms", json_real(r->lat.max));
    json_object_set_new(o, "errors", json_integer((json_int_t)r->error_total));
    json_t *by = json_object();
    for (int s = 0; s < N_SLOTS; s++)
        if (r->errors[s])
            json_object_set_new(by, slot_name(s, name, sizeof name), json_integer((json_int_t)r->errors[s]));
    json_object_set_new(o, "errors_by_status", by);
    if (r->error_total && r->first_error[0])
        json_object_set_new(o, "first_failure", json_string(r->first_error));
    if (r->server_ok) {
        const server_stats_t *d = &r->d;
        json_t *s = json_object();
        json_object_set_new(s, "inference_count", json_integer((json_int_t)d->inference_count));
        json_object_set_new(s, "execution_count", json_integer((json_int_t)d->execution_count));
        json_object_set_new(s, "success_count", json_integer((json_int_t)d->success_count));
        json_object_set_new(s, "avg_batch_size", json_real(avg_batch(d)));
        json_object_set_new(s, "request_us", json_real(per_request_us(d->success_ns, d->success_count)));
        json_object_set_new(s, "overhead_us", json_real(server_overhead_us(d)));
        json_object_set_new(s, "queue_us", json_real(per_request_us(d->queue_ns, d->queue_count)));
        json_object_set_new(s, "compute_input_us", json_real(per_request_us(d->input_ns, d->input_count)));
        json_object_set_new(s, "compute_infer_us", json_real(per_request_us(d->infer_ns, d->infer_count)));
        json_object_set_new(s, "compute_output_us", json_real(per_request_us(d->output_ns, d->output_count)));
        json_object_set_new(o, "server", s);
    } else {
        json_object_set_new(o, "server", json_null());
    }
    return o;
}

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

int kiln_loadgen_main(int argc, char **argv)
{
    loadgen_args_t a = {0};
    target_t t = {0};
    level_result_t *results = NULL;
    int rc = EXIT_BAD, n_inputs = 0;
    bool help = false;
    a.input_names = calloc((size_t)argc + 1, sizeof(char *));
    a.input_files = calloc((size_t)argc + 1, sizeof(char *));
    a.shape_names = calloc((size_t)argc + 1, sizeof(char *));
    a.shape_dims = calloc((size_t)argc + 1, sizeof *a.shape_dims);
    a.shape_ranks = calloc((size_t)argc + 1, sizeof(int));
    if (!a.input_names || !a.input_files || !a.shape_names || !a.shape_dims || !a.shape_ranks) {
        fprintf(stderr, "kiln bench: out of memory\n");
        goto done;
    }
    rc = parse_args(argc, argv, &a, &help);
    if (help) {
        usage(stdout);
        goto done;
    }
    if (rc != EXIT_OK)
        goto done;
    rc = EXIT_BAD;
    if (target_init(&t, &a) < 0 || build_request(&t, &a, &n_inputs) != EXIT_OK ||
        probe(&t, a.model) != EXIT_OK)
        goto done;
    results = calloc((size_t)a.n_levels, sizeof *results);
    if (!results)
        goto done;
    g_interrupted = 0;
    struct sigaction sa = {.sa_handler = on_sigint}, old_sa;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    if (!a.json) {
        printf("*** Measurement Settings ***\n");
        printf("  Server: %s, model '%s'%s%s, %d input%s, request %zu bytes (%s)\n", t.url.text, a.model,
               a.version ? " version " : "", a.version ? a.version : "", n_inputs, n_inputs == 1 ? "" : "s",
               t.body_len, a.binary ? "binary tensor data" : "JSON");
        printf("  Concurrency mode, warm-up %.1f s then %.1f s per level, request timeout %.1f s\n",
               a.warmup_s, a.duration_s, a.timeout_s);
        fflush(stdout);
    }
    int done_levels = 0;
    uint64_t all_errors = 0;
    for (int i = 0; i < a.n_levels && !g_interrupted; i++) {
        if (run_level(&t, &a, a.levels[i], &results[i]) < 0) {
            fprintf(stderr, "kiln bench: cannot start the client threads\n");
            break;
        }
        done_levels = i + 1;
        all_errors += results[i].error_total;
        if (!a.json) {
            print_level_text(&results[i]);
            fflush(stdout);
        }
    }
    sigaction(SIGINT, &old_sa, NULL);
    if (a.json) {
        json_t *j = json_object();
        json_object_set_new(j, "url", json_string(t.url.text));
        json_object_set_new(j, "model", json_string(a.model));
        json_object_set_new(j, "version", a.version ? json_string(a.version) : json_null());
        json_object_set_new(j, "binary", json_boolean(a.binary));
        json_object_set_new(j, "request_bytes", json_integer((json_int_t)t.body_len));
        json_object_set_new(j, "batch_size", json_integer(t.batch));
        json_object_set_new(j, "warmup_s", json_real(a.warmup_s));
        json_object_set_new(j, "duration_s", json_real(a.duration_s));
        json_object_set_new(j, "interrupted", json_boolean(g_interrupted));
        json_t *levels = json_array();
        for (int i = 0; i < done_levels; i++)
            json_array_append_new(levels, level_json(&results[i]));
        json_object_set_new(j, "levels", levels);
        char *text = json_dumps(j, JSON_COMPACT);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(j);
    } else {
        printf("\nInferences/Second vs. Client p50/p99 Latency\n");
        for (int i = 0; i < done_levels; i++) {
            const level_result_t *r = &results[i];
            printf("Concurrency: %d, throughput: %.1f infer/sec, latency p50 %.0f usec, p99 %.0f usec, "
                   "errors %llu",
                   r->concurrency, throughput(r), r->lat.p50 * 1e3, r->lat.p99 * 1e3,
                   (unsigned long long)r->error_total);
            if (r->server_ok)
                printf(", server batch %.2f", avg_batch(&r->d));
            printf("\n");
        }
    }
    rc = all_errors ? EXIT_ERRORS : EXIT_OK;
done:
    for (int k = 0; k < a.n_inputs; k++)
        free(a.input_names[k]);
    for (int k = 0; k < a.n_shapes; k++)
        free(a.shape_names[k]);
    free(a.input_names);
    free(a.input_files);
    free(a.shape_names);
    free(a.shape_dims);
    free(a.shape_ranks);
    free(t.request);
    free(results);
    return rc;
}
