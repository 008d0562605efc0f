/*
 * test_alerts_fake_nvml.c - the alert engine over the real pieces: the
 * monitor samples the fake NVML library (build/tests/libfake_nvml.so, a
 * script ramping one GPU's temperature up and another's down) into the
 * SQLite history, and the engine reads that history through the store
 * sample source.  The heating GPU goes inactive -> pending -> firing with
 * `for`; the cooling one fires at once and resolves; a history gone quiet
 * for longer than the lookback resolves everything.
 *
 * Run from the repository root (the fake library's path is relative), as
 * `make test` does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "monitor/alerts.h"
#include "monitor/monitor.h"
#include "monitor/monitor_alerts.h"

#define FAKE "build/tests/libfake_nvml.so"

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *rules_yaml =
    "groups:\n"
    "- name: gpu\n"
    "  rules:\n"
    "  - alert: GpuHot\n"
    "    expr: kiln_gpu_temperature_celsius{gpu_uuid=\"GPU-fake-0000\"} > 85\n"
    "    for: 2s\n"
    "    annotations: {summary: '{{ $labels.gpu_uuid }} at {{ $value }} C'}\n"
    "  - alert: GpuCooling\n"
    "    expr: max_over_time(kiln_gpu_temperature_celsius{gpu_uuid=~\".*0001\"}[1m]) > 90\n";

int main(void)
{
    if (access(FAKE, R_OK) != 0) {
        CHECK_MSG(0, "missing %s: run `make unit` from the repository root", FAKE);
        return check_finish();
    }
    char script[] = "/tmp/kiln_alerts_nvml_XXXXXX";
    int fd = mkstemp(script);
    CHECK(fd >= 0);
    if (fd < 0)
        return check_finish();
    const char *text = "gpus 2\ngpu 0 temperature 80 1\ngpu 1 temperature 93 -1\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    setenv("KILN_FAKE_NVML_SCRIPT", script, 1);
    setenv("KILN_NVML_LIBRARY", FAKE, 1);

    /* A long interval: the test takes every sample itself. */
    kiln_monitor_options_t opts = {.interval_ms = 600000, .quiet = 1};
    kiln_monitor_t *mon = NULL;
    CHECK(kiln_monitor_start(&opts, NULL, &mon) == KILN_OK); /* step 0: 80 C and 93 C */
    if (!mon) {
        unlink(script);
        return check_finish();
    }
    kiln_alert_rules_t *rules = NULL;
    char err[512];
    CHECK_MSG(kiln_alert_rules_parse(rules_yaml, strlen(rules_yaml), "t.yml", &rules, err, sizeof err) == 0,
              "%s", err);
    kiln_alert_source_t src = kiln_monitor_alerts_store_source(kiln_monitor_store(mon));
    kiln_alert_engine_t *e = kiln_alert_engine_new(rules, &src);

    double t = wall() + 0.01;
    CHECK_MSG(kiln_alert_engine_evaluate(e, t, err, sizeof err) == 0, "%s", err);
    CHECK(kiln_alert_engine_state_of(e, "GpuHot", NULL, NULL, NULL) == KILN_ALERT_INACTIVE);
    CHECK(kiln_alert_engine_state_of(e, "GpuCooling", "gpu_uuid", "GPU-fake-0001", NULL) ==
          KILN_ALERT_FIRING);

    /* Heat GPU 0 to 86 C (six more samples); GPU 1 cools to 87 C. */
    for (int i = 0; i < 6; i++) {
        usleep(3000); /* the history keeps one sample per series and millisecond */
        CHECK(kiln_monitor_sample_now(mon) == KILN_OK);
    }
    t = wall() + 0.01;
    CHECK(kiln_alert_engine_evaluate(e, t, err, sizeof err) == 0);
    double v = 0;
    CHECK(kiln_alert_engine_state_of(e, "GpuHot", "gpu_uuid", "GPU-fake-0000", &v) == KILN_ALERT_PENDING);
    CHECK_NEAR(v, 86, 1e-9);
    /* GPU 1's one-minute maximum is still 93 C. */
    CHECK(kiln_alert_engine_state_of(e, "GpuCooling", "gpu_uuid", "GPU-fake-0001", NULL) ==
          KILN_ALERT_FIRING);
    CHECK(kiln_alert_engine_evaluate(e, t + 1, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_state_of(e, "GpuHot", NULL, NULL, NULL) == KILN_ALERT_PENDING);
    CHECK(kiln_alert_engine_evaluate(e, t + 2, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_state_of(e, "GpuHot", NULL, NULL, &v) == KILN_ALERT_FIRING);
    char *api = kiln_alert_engine_api_json(e);
    CHECK_MSG(api && strstr(api, "\"summary\":\"GPU-fake-0000 at 86 C\""), "%s", api ? api : "(null)");
    free(api);
    /* A minute later GPU 1's maximum over [1m] is gone from the window. */
    CHECK(kiln_alert_engine_evaluate(e, t + 61, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_state_of(e, "GpuCooling", NULL, NULL, NULL) == KILN_ALERT_RESOLVED);
    /* Past the 5-minute lookback the last temperature no longer counts. */
    CHECK(kiln_alert_engine_evaluate(e, t + 400, err, sizeof err) == 0);
    CHECK(kiln_alert_engine_state_of(e, "GpuHot", NULL, NULL, NULL) == KILN_ALERT_RESOLVED);
    char *m = kiln_alert_engine_metrics_text(e);
    CHECK(m && !strstr(m, "ALERTS{"));
    free(m);

    kiln_alert_engine_free(e);
    kiln_monitor_stop(mon);
    unsetenv("KILN_NVML_LIBRARY");
    unsetenv("KILN_FAKE_NVML_SCRIPT");
    unlink(script);
    return check_finish();
}
