/*
 * test_monitor_nvml.c - the NVML loader against the fake NVML library
 * (tests/fake_nvml, built into build/tests/): values and units (mW to W,
 * percent to 0..1), the versioned-symbol fallback both ways, a field the
 * GPU does not support, a GPU that falls off the bus at step N, no driver
 * and no library.  Run from the repository root (tests/run_all.sh does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/error.h"
#include "monitor/nvml.h"

#define FAKE "build/tests/libfake_nvml.so"
#define FAKE_OLD "build/tests/libfake_nvml_old.so"

static char script[64];
static int log_lines;
static char last_log[512];

static void logger(void *ctx, const char *line)
{
    (void)ctx;
    log_lines++;
    snprintf(last_log, sizeof last_log, "%s", line);
}

static void write_script(const char *text)
{
    FILE *f = fopen(script, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    setenv("KILN_FAKE_NVML_SCRIPT", script, 1);
}

static void test_values(const char *lib)
{
    write_script("gpus 2\n"
                 "gpu 0 uuid GPU-aaaa\n"
                 "gpu 0 name Fake A100 # comment\n"
                 "gpu 0 utilization 40 20 10\n"
                 "gpu 0 memory 1000 250\n"
                 "gpu 0 temperature 50 2\n"
                 "gpu 0 power 150500\n"
                 "gpu 0 power_limit 300000\n"
                 "gpu 0 energy 5000000 1000\n"
                 "gpu 0 clocks 1410 1215\n"
                 "gpu 0 fan 55\n"
                 "gpu 0 process 4242 123456\n"
                 "gpu 0 process 4343 654321\n"
                 "gpu 1 unsupported fan\n"
                 "gpu 1 unsupported processes\n");
    kiln_nvml_t *nv = NULL;
    log_lines = 0;
    CHECK_MSG(kiln_nvml_open(lib, logger, NULL, &nv) == KILN_OK, "%s", kiln_last_error());
    if (!nv)
        return;
    CHECK(kiln_nvml_gpu_count(nv) == 2);
    CHECK(!strcmp(kiln_nvml_driver_version(nv), "999.99-fake"));
    kiln_gpu_sample_t s[4];
    for (int step = 0; step < 3; step++) {
        CHECK(kiln_nvml_sample(nv, s, 4) == 2);
        CHECK(!strcmp(s[0].uuid, "GPU-aaaa") && !strcmp(s[0].name, "Fake A100"));
        CHECK(!s[0].lost && s[0].index == 0);
        CHECK_NEAR(s[0].util_gpu, (40 + 10 * step) / 100.0, 1e-12);
        CHECK_NEAR(s[0].util_memory, 0.2, 1e-12);
        CHECK(s[0].memory_total == 1000 && s[0].memory_used == 250 && s[0].memory_free == 750);
        CHECK_NEAR(s[0].temperature_c, 50 + 2 * step, 1e-12);
        CHECK_NEAR(s[0].power_w, 150.5, 1e-12);
        CHECK_NEAR(s[0].power_limit_w, 300.0, 1e-12);
        CHECK(s[0].energy_mj == 5000000ULL + 1000ULL * (unsigned)step);
        CHECK_NEAR(s[0].clock_sm_mhz, 1410, 1e-12);
        CHECK_NEAR(s[0].clock_mem_mhz, 1215, 1e-12);
        CHECK_NEAR(s[0].fan_percent, 55, 1e-12);
        CHECK(s[0].n_processes == 2 && s[0].processes[1].pid == 4343 &&
              s[0].processes[1].used_bytes == 654321);
        CHECK(s[0].has == (KILN_GPU_HAS_UTIL | KILN_GPU_HAS_MEMORY | KILN_GPU_HAS_TEMPERATURE |
                           KILN_GPU_HAS_POWER | KILN_GPU_HAS_POWER_LIMIT | KILN_GPU_HAS_ENERGY |
                           KILN_GPU_HAS_CLOCK_SM | KILN_GPU_HAS_CLOCK_MEM | KILN_GPU_HAS_FAN |
                           KILN_GPU_HAS_PROCESSES));
        /* GPU 1: defaults, fan and processes not supported, quietly. */
        CHECK(!strcmp(s[1].uuid, "GPU-fake-0001"));
        CHECK(!(s[1].has & KILN_GPU_HAS_FAN) && !(s[1].has & KILN_GPU_HAS_PROCESSES));
        CHECK(s[1].has & KILN_GPU_HAS_TEMPERATURE);
    }
    CHECK(log_lines == 0);
    CHECK(kiln_nvml_sample(nv, s, 1) == 1);
    kiln_nvml_close(nv);
}

static void test_lost(void)
{
    write_script("gpus 2\ngpu 1 lost_from_step 2\n");
    kiln_nvml_t *nv = NULL;
    log_lines = 0;
    CHECK(kiln_nvml_open(FAKE, logger, NULL, &nv) == KILN_OK);
    if (!nv)
        return;
    kiln_gpu_sample_t s[2];
    kiln_nvml_sample(nv, s, 2);
    kiln_nvml_sample(nv, s, 2);
    CHECK(!s[1].lost && s[1].has != 0);
    for (int i = 0; i < 3; i++) {
        kiln_nvml_sample(nv, s, 2);
        CHECK(s[1].lost && s[1].has == 0);
        CHECK(!strcmp(s[1].uuid, "GPU-fake-0001"));
        CHECK(!s[0].lost && (s[0].has & KILN_GPU_HAS_UTIL));
    }
    CHECK_MSG(log_lines == 1, "%d log lines", log_lines); /* said once */
    CHECK(strstr(last_log, "fell off the bus") && strstr(last_log, "GPU-fake-0001"));
    kiln_nvml_close(nv);
}

static void test_absent(void)
{
    kiln_nvml_t *nv = NULL;
    write_script("driver absent\n");
    CHECK(kiln_nvml_open(FAKE, logger, NULL, &nv) == KILN_ERR_UNSUPPORTED && nv == NULL);
    CHECK(strstr(kiln_last_error(), "Driver Not Loaded") != NULL);
    CHECK(kiln_nvml_open("/nonexistent/libnvidia-ml.so.1", logger, NULL, &nv) == KILN_ERR_UNSUPPORTED);
    CHECK(strstr(kiln_last_error(), "no NVIDIA driver") != NULL);
    /* A library without NVML's entry points. */
    CHECK(kiln_nvml_open("libm.so.6", logger, NULL, &nv) == KILN_ERR_UNSUPPORTED);
    CHECK(strstr(kiln_last_error(), "lacks nvmlInit") != NULL);
    /* The environment variable is honoured when no path is given. */
    write_script("gpus 3\n");
    setenv("KILN_NVML_LIBRARY", FAKE, 1);
    CHECK(kiln_nvml_open(NULL, NULL, NULL, &nv) == KILN_OK);
    CHECK(kiln_nvml_gpu_count(nv) == 3);
    kiln_nvml_close(nv);
    unsetenv("KILN_NVML_LIBRARY");
    write_script("gpus 0\n");
    CHECK(kiln_nvml_open(FAKE, NULL, NULL, &nv) == KILN_OK && kiln_nvml_gpu_count(nv) == 0);
    kiln_gpu_sample_t s[1];
    CHECK(kiln_nvml_sample(nv, s, 1) == 0);
    kiln_nvml_close(nv);
    CHECK(kiln_nvml_sample(NULL, s, 1) == 0);
    kiln_nvml_close(NULL);
}

int main(void)
{
    if (access(FAKE, R_OK) || access(FAKE_OLD, R_OK)) {
        fprintf(stderr, "missing %s or %s: run `make unit` from the repository root\n", FAKE, FAKE_OLD);
        CHECK(0);
        return check_finish();
    }
    snprintf(script, sizeof script, "/tmp/kiln_fake_nvml_%d.txt", (int)getpid());
    test_values(FAKE);
    test_values(FAKE_OLD);
    test_lost();
    test_absent();
    unlink(script);
    return check_finish();
}
