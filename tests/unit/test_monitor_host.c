/*
 * test_monitor_host.c - the /proc readers against a fake /proc tree:
 * CPU utilization from the delta of two /proc/stat readings, memory from
 * MemTotal - MemAvailable, the process's RSS, threads and CPU time; and
 * missing or garbled files giving "not available", never a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/error.h"
#include "monitor/host.h"

static char root[64];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/kiln_proc_XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    char self[128];
    snprintf(self, sizeof self, "%s/self", root);
    mkdir(self, 0755);

    put("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
    put("meminfo", "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n");
    put("self/status", "Name:\tkiln\nVmRSS:\t    2048 kB\nThreads:\t7\n");
    put("self/stat", "123 (kiln (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20\n");

    kiln_host_sampler_t h;
    kiln_host_init(&h, root);
    kiln_host_sample_t s;
    CHECK(kiln_host_sample(&h, &s) == KILN_OK);
    CHECK(!s.has_cpu); /* first reading: no delta yet */
    CHECK(s.has_memory && s.memory_total == 1000 * 1024 && s.memory_used == 600 * 1024);
    CHECK(s.has_self && s.resident_bytes == 2048 * 1024 && s.threads == 7);
    long hz = sysconf(_SC_CLK_TCK);
    CHECK_NEAR(s.cpu_seconds, 300.0 / (double)hz, 1e-9);

    /* +300 busy, +100 idle: 75 %. */
    put("stat", "cpu  300 0 200 900 0 0 0 0 0 0\n");
    CHECK(kiln_host_sample(&h, &s) == KILN_OK);
    CHECK(s.has_cpu);
    CHECK_NEAR(s.cpu_utilization, 0.75, 1e-12);
    /* No time passed: no value rather than a division by zero. */
    CHECK(kiln_host_sample(&h, &s) == KILN_OK);
    CHECK(!s.has_cpu);

    /* Old kernels: no MemAvailable. */
    put("meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 150 kB\n");
    CHECK(kiln_host_sample(&h, &s) == KILN_OK);
    CHECK(s.has_memory && s.memory_used == 700 * 1024);

    /* Garbage everywhere. */
    put("stat", "garbage\n");
    put("meminfo", "MemTotal: x\n");
    put("self/status", "nothing\n");
    CHECK(kiln_host_sample(&h, &s) == KILN_ERR_IO);
    CHECK(!s.has_cpu && !s.has_memory && !s.has_self);
    CHECK(strstr(kiln_last_error(), root) != NULL);

    /* The real /proc works. */
    kiln_host_init(&h, NULL);
    CHECK(kiln_host_sample(&h, &s) == KILN_OK);
    CHECK(s.has_memory && s.memory_total > 0 && s.has_self && s.threads >= 1);
    usleep(20000);
    CHECK(kiln_host_sample(&h, &s) == KILN_OK);
    CHECK(!s.has_cpu || (s.cpu_utilization >= 0 && s.cpu_utilization <= 1));

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0);
    return check_finish();
}
