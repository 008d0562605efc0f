/*
 * test_top.c - unit tests of `kiln top`'s data side: the Prometheus text
 * parser (labels, escapes, special values, malformed lines with their line
 * number), the snapshot built from a scrape (GPUs, host, models), rates
 * between two scrapes, the alerts JSON, and the --once text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "monitor/top.h"

static const char *scrape1 =
    "# HELP nv_gpu_utilization GPU utilization rate\n"
    "# TYPE nv_gpu_utilization gauge\n"
    "nv_gpu_utilization{gpu_uuid=\"GPU-a\"} 0.5\n"
    "nv_gpu_utilization{gpu_uuid=\"GPU-b\"} 1\n"
    "nv_gpu_memory_used_bytes{gpu_uuid=\"GPU-a\"} 1073741824\n"
    "nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-a\"} 4294967296\n"
    "kiln_gpu_temperature_celsius{gpu_uuid=\"GPU-a\"} 71\n"
    "nv_gpu_power_usage{gpu_uuid=\"GPU-a\"} 120.5\n"
    "kiln_gpu_up{gpu_uuid=\"GPU-a\",gpu_index=\"0\",name=\"Big \\\"Card\\\"\"} 1\n"
    "nv_cpu_utilization 0.25\n"
    "nv_cpu_memory_used_bytes 2e9\n"
    "nv_cpu_memory_total_bytes 8e9\n"
    "nv_inference_count{model=\"resnet\",version=\"1\"} 100\n"
    "nv_inference_request_success{model=\"resnet\",version=\"1\"} 50\n"
    "nv_inference_queue_duration_us{model=\"resnet\",version=\"1\"} 5000\n"
    "nv_inference_pending_request_count{model=\"resnet\",version=\"1\"} 3\n"
    "kiln_inference_request_latency_us{model=\"resnet\",version=\"1\",quantile=\"0.5\"} 1500\n"
    "kiln_inference_request_latency_us{model=\"resnet\",version=\"1\",quantile=\"0.99\"} 9000\n"
    "weird_value NaN\n"
    "with_timestamp 3 1700000000000\r\n";

static const char *scrape2 = "nv_inference_count{model=\"resnet\",version=\"1\"} 300\n"
                             "nv_inference_request_success{model=\"resnet\",version=\"1\"} 150\n"
                             "nv_inference_queue_duration_us{model=\"resnet\",version=\"1\"} 25000\n";

static void test_parse(void)
{
    kiln_prom_set_t set = {0};
    char err[200] = "";
    CHECK_MSG(kiln_prom_parse(scrape1, strlen(scrape1), &set, err, sizeof err) == 0, "%s", err);
    CHECK(set.n == 18);
    CHECK(!strcmp(set.samples[0].name, "nv_gpu_utilization"));
    CHECK(!strcmp(kiln_prom_label(&set.samples[0], "gpu_uuid"), "GPU-a"));
    CHECK(kiln_prom_label(&set.samples[0], "nope") == NULL);
    CHECK(!strcmp(kiln_prom_label(&set.samples[6], "name"), "Big \"Card\""));
    CHECK(isnan(set.samples[16].value));
    CHECK(set.samples[17].value == 3);
    kiln_prom_set_free(&set);

    const char *bad[] = {"{a=\"b\"} 1\n", "x{a=b} 1\n", "x{a=\"b} 1\n", "ok 1\nx\n", "x 1y\n"};
    const char *why[] = {"line 1: expected a metric name", "line 1: bad label",
                         "line 1: unterminated label value", "line 2: no value for x",
                         "line 1: bad value '1y'"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_prom_set_t s = {0};
        CHECK_MSG(kiln_prom_parse(bad[i], strlen(bad[i]), &s, err, sizeof err) == -1, "'%s' should fail",
                  bad[i]);
        CHECK_MSG(strstr(err, why[i]) != NULL, "'%s': want '%s' got '%s'", bad[i], why[i], err);
        kiln_prom_set_free(&s);
    }
}

static void test_snapshot(void)
{
    kiln_prom_set_t s1 = {0}, s2 = {0};
    char err[200];
    CHECK(kiln_prom_parse(scrape1, strlen(scrape1), &s1, err, sizeof err) == 0);
    CHECK(kiln_prom_parse(scrape2, strlen(scrape2), &s2, err, sizeof err) == 0);
    static kiln_top_snapshot_t a, b;
    kiln_top_build(&s1, NULL, 1000.0, &a);
    CHECK(a.ngpus == 2 && a.gpus_total == 2);
    CHECK(!strcmp(a.gpus[0].uuid, "GPU-a") && !strcmp(a.gpus[0].name, "Big \"Card\""));
    CHECK(a.gpus[0].util.ok && a.gpus[0].util.v == 0.5);
    CHECK(a.gpus[0].temp.ok && a.gpus[0].temp.v == 71);
    CHECK(a.gpus[0].power.ok && !a.gpus[0].power_limit.ok);
    CHECK(a.gpus[1].util.v == 1 && !a.gpus[1].mem_used.ok);
    CHECK(a.cpu_util.v == 0.25 && a.mem_total.v == 8e9);
    CHECK(a.nmodels == 1 && !strcmp(a.models[0].model, "resnet") && !strcmp(a.models[0].version, "1"));
    CHECK(a.models[0].p50_ms.ok && a.models[0].p50_ms.v == 1.5);
    CHECK(a.models[0].p99_ms.v == 9 && a.models[0].pending.v == 3);
    CHECK(!a.models[0].rps.ok); /* no previous scrape yet */
    kiln_top_build(&s2, &a, 1002.0, &b);
    CHECK(b.models[0].rps.ok);
    CHECK_NEAR(b.models[0].rps.v, 100.0, 1e-9);    /* 200 inferences in 2 s */
    CHECK_NEAR(b.models[0].queue_ms.v, 0.2, 1e-9); /* 20000 us over 100 requests */
    CHECK(b.ngpus == 0);

    const char *json =
        "{\"status\":\"success\",\"data\":{\"alerts\":[{\"labels\":{\"alertname\":\"Hot\",\"gpu_uuid\":"
        "\"GPU-a\"},\"annotations\":{\"summary\":\"too hot\"},\"state\":\"firing\",\"activeAt\":\"x\","
        "\"value\":\"91\"}]}}";
    CHECK(kiln_top_read_alerts(json, strlen(json), &a, err, sizeof err) == 0);
    CHECK(a.alerts_ok && a.nalerts == 1);
    CHECK(!strcmp(a.alerts[0].state, "firing") && !strcmp(a.alerts[0].name, "Hot"));
    CHECK(!strcmp(a.alerts[0].labels, "gpu_uuid=GPU-a") && !strcmp(a.alerts[0].summary, "too hot"));
    CHECK(kiln_top_read_alerts("{\"data\":1}", 10, &a, err, sizeof err) == -1 &&
          strstr(err, "no data.alerts"));
    CHECK(kiln_top_read_alerts("nope", 4, &a, err, sizeof err) == -1 && strstr(err, "not JSON"));

    kiln_top_read_alerts(json, strlen(json), &a, err, sizeof err);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    kiln_top_print(&a, "test", f);
    fclose(f);
    CHECK(text &&
          strstr(text,
                 "gpu 0 GPU-a Big \"Card\"  util 50%  mem 1.0 GiB / 4.0 GiB  temp 71 C  power 120 / - W"));
    CHECK(text && strstr(text, "model resnet/1  - inf/s  p50 1.50 ms  p99 9.00 ms"));
    CHECK(text && strstr(text, "alert firing Hot  gpu_uuid=GPU-a  too hot"));
    free(text);
    char buf[32];
    kiln_top_bytes(1536, buf, sizeof buf);
    CHECK(!strcmp(buf, "1.5 KiB"));
    kiln_top_bytes(12, buf, sizeof buf);
    CHECK(!strcmp(buf, "12 B"));
    kiln_prom_set_free(&s1);
    kiln_prom_set_free(&s2);
}

int main(void)
{
    test_parse();
    test_snapshot();
    return check_finish();
}
