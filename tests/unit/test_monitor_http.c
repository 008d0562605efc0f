/*
 * test_monitor_http.c - the metrics HTTP server and the monitoring API end
 * to end on a loopback port: routing (exact, prefix, 404), parameters from
 * the URL and from a form body, /metrics from a monitor fed by the fake
 * NVML (units: W from mW, utilization 0..1), and /api/v1/query_range,
 * query, series, labels and label values in Prometheus's JSON shape,
 * including their error answers.  Also the API's time and duration parsers.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/error.h"
#include "monitor/api.h"
#include "monitor/http.h"
#include "monitor/monitor.h"

#define FAKE "build/tests/libfake_nvml.so"

static int port;

/* Sends raw request text and returns the whole answer (malloc'd), status in *status. */
static char *http(const char *request, int *status)
{
    *status = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return NULL;
    }
    size_t len = strlen(request);
    if (write(fd, request, len) != (ssize_t)len) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    close(fd);
    sscanf(buf, "HTTP/1.%*d %d", status);
    return buf;
}

static char *get(const char *path, int *status)
{
    char req[4096];
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    return http(req, status);
}

static const char *body_of(const char *answer) { return answer ? strstr(answer, "\r\n\r\n") + 4 : ""; }

static void echo_handler(kiln_http_request_t *req, void *user)
{
    const char *vals[4];
    size_t n = kiln_http_request_params(req, "m[]", vals, 4);
    char out[512];
    snprintf(out, sizeof out, "%s %s %s a=%s n=%zu first=%s user=%s", kiln_http_request_method(req),
             kiln_http_request_path(req), kiln_http_request_header(req, "X-Test") ? "hdr" : "-",
             kiln_http_request_param(req, "a") ? kiln_http_request_param(req, "a") : "-", n,
             n ? vals[0] : "-", (const char *)user);
    kiln_http_respond(req, 200, "text/plain", out, strlen(out));
}

static void silent_handler(kiln_http_request_t *req, void *user) { (void)req, (void)user; }

static void test_server(kiln_metrics_server_t *srv)
{
    CHECK(kiln_metrics_server_handle(srv, "/echo", echo_handler, "exact") == KILN_OK);
    CHECK(kiln_metrics_server_handle(srv, "/pre/", echo_handler, "prefix") == KILN_OK);
    CHECK(kiln_metrics_server_handle(srv, "/silent", silent_handler, NULL) == KILN_OK);
    CHECK(kiln_metrics_server_handle(srv, "nope", echo_handler, NULL) != KILN_OK);
    int st;
    char *a = get("/echo?a=1&m[]=x&m%5B%5D=y", &st);
    CHECK(st == 200 && strstr(body_of(a), "GET /echo - a=1 n=2 first=x user=exact"));
    free(a);
    a = get("/pre/deep/er", &st);
    CHECK(st == 200 && strstr(body_of(a), "/pre/deep/er") && strstr(body_of(a), "user=prefix"));
    free(a);
    a = get("/missing", &st);
    CHECK(st == 404 && strstr(body_of(a), "\"error\""));
    free(a);
    a = get("/silent", &st);
    CHECK(st == 500);
    free(a);
    a = http("POST /echo HTTP/1.0\r\nX-Test: 1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             "Content-Length: 12\r\n\r\na=2&m[]=z%7B", &st);
    CHECK(st == 200 && strstr(body_of(a), "POST /echo hdr a=2 n=1 first=z{"));
    free(a);
    a = get("/echo?a=%zz", &st);
    CHECK(st == 400 || st == 200); /* libevent may keep undecodable escapes; never a crash */
    free(a);
    a = http("BREW /echo HTTP/1.0\r\n\r\n", &st);
    CHECK(st >= 400);
    free(a);
    kiln_metrics_server_unhandle(srv, "/echo");
    a = get("/echo", &st);
    CHECK(st == 404);
    free(a);
    /* A port already in use is refused with a message. */
    kiln_metrics_server_t *other = NULL;
    CHECK(kiln_metrics_server_start("127.0.0.1", port, &other) == KILN_ERR_IO && other == NULL);
    CHECK(strstr(kiln_last_error(), "cannot listen") != NULL);
    CHECK(kiln_metrics_server_start("127.0.0.1", 70000, &other) == KILN_ERR_INVALID_ARGUMENT);
}

/* Finds the value of an exposition line that starts with prefix. */
static double metric_value(const char *text, const char *prefix, int *found)
{
    *found = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, strlen(prefix))) {
            *found = 1;
            return strtod(p + strlen(prefix), NULL);
        }
    return 0;
}

static void test_monitor_api(kiln_metrics_server_t *srv)
{
    char script[64];
    snprintf(script, sizeof script, "/tmp/kiln_http_nvml_%d.txt", (int)getpid());
    FILE *f = fopen(script, "w");
    fputs("gpus 2\ngpu 0 uuid GPU-test0\ngpu 0 power 123456\ngpu 0 utilization 37 10\n"
          "gpu 0 temperature 60 1\ngpu 1 unsupported power\ngpu 0 process 1 1000\n", f);
    fclose(f);
    setenv("KILN_FAKE_NVML_SCRIPT", script, 1);
    setenv("KILN_NVML_LIBRARY", FAKE, 1);
    kiln_inference_stats_t *reg = kiln_inference_stats_new();
    kiln_model_stats_t *m = kiln_inference_stats_model(reg, "resnet50", "1");
    kiln_model_stats_request(m, 1, 10, 20, 40);
    kiln_model_stats_execution(m, 2);
    kiln_monitor_options_t o = {.interval_ms = 50, .inference = reg, .quiet = 1};
    kiln_monitor_t *mon = NULL;
    CHECK_MSG(kiln_monitor_start(&o, srv, &mon) == KILN_OK, "%s", kiln_last_error());
    if (!mon)
        return;
    for (int i = 0; i < 3; i++)
        CHECK(kiln_monitor_sample_now(mon) == KILN_OK);
    /* Rates: 10 requests of batch 4 between two samples. */
    for (int i = 0; i < 10; i++) {
        kiln_model_stats_request(m, 1, 10, 20, 40);
        kiln_model_stats_execution(m, 4);
    }
    usleep(20000);
    CHECK(kiln_monitor_sample_now(mon) == KILN_OK);
    int st, found;
    char *a = get("/metrics", &st);
    const char *t = body_of(a);
    CHECK(st == 200 && strstr(a, "text/plain; version=0.0.4"));
    CHECK(strstr(t, "# TYPE nv_gpu_utilization gauge\n"));
    CHECK_NEAR(metric_value(t, "nv_gpu_utilization{gpu_uuid=\"GPU-test0\"} ", &found), 0.37, 1e-12);
    CHECK(found);
    CHECK_NEAR(metric_value(t, "nv_gpu_power_usage{gpu_uuid=\"GPU-test0\"} ", &found), 123.456, 1e-9);
    CHECK(found);
    metric_value(t, "nv_gpu_power_usage{gpu_uuid=\"GPU-fake-0001\"}", &found);
    CHECK(!found); /* unsupported: left out */
    metric_value(t, "kiln_gpu_temperature_celsius{gpu_uuid=\"GPU-test0\"} ", &found);
    CHECK(found);
    CHECK(strstr(t, "# TYPE nv_energy_consumption counter\n"));
    CHECK(strstr(t, "kiln_gpu_up{gpu_uuid=\"GPU-test0\",gpu_index=\"0\",name=\"Kiln Fake GPU\"} 1\n"));
    CHECK(strstr(t, "kiln_gpu_process_memory_used_bytes{gpu_uuid=\"GPU-test0\",pid=\"1\""));
    CHECK(strstr(t, "nv_inference_request_success{model=\"resnet50\",version=\"1\"} 11\n"));
    CHECK(strstr(t, "kiln_inference_batch_size_bucket{model=\"resnet50\",version=\"1\",le=\"3\"} 1\n"));
    CHECK(strstr(t, "kiln_process_resident_memory_bytes "));
    CHECK(strstr(t, "kiln_gpu_devices 2\n"));
    double rps = metric_value(t, "kiln_inference_requests_per_second{model=\"resnet50\",version=\"1\"} ", &found);
    CHECK(found && rps > 0);
    double ips = metric_value(t, "kiln_inference_throughput_per_second{model=\"resnet50\",version=\"1\"} ", &found);
    CHECK_NEAR(ips, rps * 4, rps * 1e-9);
    free(a);

    /* query_range over the last minute at 1 s: the temperature ramps. */
    time_t now = time(NULL);
    char path[512];
    snprintf(path, sizeof path,
             "/api/v1/query_range?query=kiln_gpu_temperature_celsius%%7Bgpu_uuid%%3D%%22GPU-test0%%22%%7D"
             "&start=%lld&end=%lld&step=1s", (long long)now - 60, (long long)now + 1);
    a = get(path, &st);
    CHECK(st == 200);
    json_error_t je;
    json_t *j = json_loads(body_of(a), 0, &je);
    CHECK_MSG(j != NULL, "%s", body_of(a));
    CHECK(!strcmp(json_string_value(json_object_get(j, "status")), "success"));
    json_t *data = json_object_get(j, "data");
    CHECK(!strcmp(json_string_value(json_object_get(data, "resultType")), "matrix"));
    json_t *res = json_object_get(data, "result");
    CHECK(json_array_size(res) == 1);
    json_t *s0 = json_array_get(res, 0);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(s0, "metric"), "__name__")),
                  "kiln_gpu_temperature_celsius"));
    json_t *vals = json_object_get(s0, "values");
    CHECK(json_array_size(vals) >= 1);
    json_t *last = json_array_get(vals, json_array_size(vals) - 1);
    CHECK(json_is_number(json_array_get(last, 0)) && json_is_string(json_array_get(last, 1)));
    CHECK(atof(json_string_value(json_array_get(last, 1))) >= 60);
    json_decref(j);
    free(a);

    /* query (instant), series, labels, label values. */
    a = get("/api/v1/query?query=nv_gpu_power_usage", &st);
    CHECK(st == 200 && strstr(body_of(a), "\"resultType\":\"vector\"") &&
          strstr(body_of(a), "\"123.456\""));
    free(a);
    a = get("/api/v1/series?match[]=nv_gpu_utilization&match[]=nv_gpu_utilization%7Bgpu_uuid%3D%22GPU-test0%22%7D", &st);
    j = json_loads(body_of(a), 0, &je);
    CHECK(st == 200 && j && json_array_size(json_object_get(j, "data")) == 2); /* union, no duplicates */
    json_decref(j);
    free(a);
    a = get("/api/v1/query?query=1%2B1&time=1700000000.5", &st);
    CHECK_MSG(st == 200 && strstr(body_of(a), "{\"resultType\":\"scalar\",\"result\":[1700000000.5,\"2\"]}"),
              "%s", body_of(a));
    free(a);
    a = get("/api/v1/status/buildinfo", &st);
    CHECK(st == 200 && strstr(body_of(a), "\"application\":\"kiln\""));
    free(a);
    a = get("/api/v1/labels", &st);
    CHECK(st == 200 && strstr(body_of(a), "\"gpu_uuid\"") && strstr(body_of(a), "\"__name__\""));
    free(a);
    a = get("/api/v1/label/gpu_uuid/values", &st);
    CHECK(st == 200 && strstr(body_of(a), "[\"GPU-fake-0001\",\"GPU-test0\"]"));
    free(a);
    a = get("/api/v1/label/__name__/values?match[]=%7B__name__%3D~%22nv_gpu_.*%22%7D", &st);
    CHECK(st == 200 && strstr(body_of(a), "\"nv_gpu_power_usage\"") && !strstr(body_of(a), "kiln_"));
    free(a);

    /* Errors in Prometheus's shape. */
    const char *bad[] = {
        "/api/v1/query_range?query=up&start=1&end=2",              /* no step */
        "/api/v1/query_range?query=up&start=x&end=2&step=1",       /* bad time */
        "/api/v1/query_range?query=up&start=5&end=2&step=1",       /* end before start */
        "/api/v1/query_range?query=up&start=1&end=2&step=0",       /* zero step */
        "/api/v1/query_range?query=up%7B&start=1&end=2&step=1",    /* bad selector */
        "/api/v1/query_range?start=1&end=2&step=1",                /* no query */
        "/api/v1/query_range?query=up&start=0&end=100000000&step=0.001", /* too many points */
        "/api/v1/series",                                          /* no match[] */
        "/api/v1/label/bad-name/values",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = get(bad[i], &st);
        CHECK_MSG(st == 400 && strstr(body_of(a), "\"status\":\"error\"") &&
                      strstr(body_of(a), "\"errorType\":\"bad_data\""),
                  "%s -> %d %s", bad[i], st, body_of(a));
        free(a);
    }
    a = get("/api/v1/label/x/nothing", &st);
    CHECK(st == 404);
    free(a);
    kiln_monitor_stop(mon);
    kiln_inference_stats_free(reg);
    a = get("/metrics", &st);
    CHECK(st == 404); /* routes are gone with the monitor */
    free(a);
    unlink(script);
    unsetenv("KILN_NVML_LIBRARY");
}

static void test_parsers(void)
{
    int64_t ms;
    CHECK(kiln_api_parse_time("1700000000", &ms) == 0 && ms == 1700000000000LL);
    CHECK(kiln_api_parse_time("1700000000.25", &ms) == 0 && ms == 1700000000250LL);
    CHECK(kiln_api_parse_time("2023-11-14T22:13:20Z", &ms) == 0 && ms == 1700000000000LL);
    CHECK(kiln_api_parse_time("2023-11-14T22:13:20.5Z", &ms) == 0 && ms == 1700000000500LL);
    CHECK(kiln_api_parse_time("2023-11-15T00:13:20+02:00", &ms) == 0 && ms == 1700000000000LL);
    CHECK(kiln_api_parse_time("", &ms) == -1);
    CHECK(kiln_api_parse_time("yesterday", &ms) == -1);
    CHECK(kiln_api_parse_time("2023-11-14T22:13:20", &ms) == -1);
    CHECK(kiln_api_parse_time("1e300", &ms) == -1);
    CHECK(kiln_api_parse_time("nan", &ms) == -1);
    double sc;
    CHECK(kiln_api_scalar_query("1+1", &sc) == 0 && sc == 2);
    CHECK(kiln_api_scalar_query(" 3 * 0.5 ", &sc) == 0 && sc == 1.5);
    CHECK(kiln_api_scalar_query("42", &sc) == 0 && sc == 42);
    CHECK(kiln_api_scalar_query("1+", &sc) == -1);
    CHECK(kiln_api_scalar_query("up", &sc) == -1);
    CHECK(kiln_api_scalar_query("1+1+1", &sc) == -1);
    CHECK(kiln_api_scalar_query("", &sc) == -1);
    CHECK(kiln_api_parse_duration("15", &ms) == 0 && ms == 15000);
    CHECK(kiln_api_parse_duration("0.5", &ms) == 0 && ms == 500);
    CHECK(kiln_api_parse_duration("1h30m15s250ms", &ms) == 0 && ms == 5415250);
    CHECK(kiln_api_parse_duration("2d", &ms) == 0 && ms == 172800000);
    CHECK(kiln_api_parse_duration("5x", &ms) == -1);
    CHECK(kiln_api_parse_duration("m", &ms) == -1);
    CHECK(kiln_api_parse_duration("-1", &ms) == -1);
    CHECK(kiln_api_parse_duration("99999999999999y", &ms) == -1);

    kiln_label_t l[] = {{"a", "q\"\\\n\x01"}};
    int64_t ts[] = {1000, 1500, -250};
    double v[] = {1, 0.5, 1.0 / 0.0};
    kiln_store_series_t s = {"m", l, 1, ts, v, 3};
    kiln_store_result_t r = {&s, 1};
    size_t len;
    char *j = kiln_api_result_json(&r, 0, &len);
    CHECK_MSG(j && !strcmp(j, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":"
                              "[{\"metric\":{\"__name__\":\"m\",\"a\":\"q\\\"\\\\\\n\\u0001\"},"
                              "\"values\":[[1,\"1\"],[1.5,\"0.5\"],[-0.25,\"+Inf\"]]}]}}"),
              "%s", j);
    free(j);
}

int main(void)
{
    kiln_metrics_server_t *srv = NULL;
    CHECK(kiln_metrics_server_start("127.0.0.1", 0, &srv) == KILN_OK);
    if (!srv)
        return check_finish();
    port = kiln_metrics_server_port(srv);
    CHECK(port > 0);
    test_server(srv);
    if (access(FAKE, R_OK) == 0)
        test_monitor_api(srv);
    else
        CHECK_MSG(0, "missing %s: run `make unit` from the repository root", FAKE);
    kiln_metrics_server_stop(srv);
    kiln_metrics_server_stop(NULL);
    test_parsers();
    return check_finish();
}
