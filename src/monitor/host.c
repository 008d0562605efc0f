/*
 * host.c - host CPU, memory and kiln-process figures from /proc (host.h).
 *
 * Each file is read whole into a small stack buffer with one read() (they
 * are a few kilobytes) and parsed by hand: this runs every second, so no
 * stdio streams and no allocation.
 */
#include "monitor/host.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

#define FILE_BUF 16384

/* Reads root/name into buf (NUL-terminated); returns its length or -1. */
static ssize_t read_file(const kiln_host_sampler_t *h, const char *name, char *buf, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", h->root, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* The number after "key:" on its line in text, or -1 when absent. */
static long long field(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, key, kl) && p[kl] == ':') {
            char *end;
            long long v = strtoll(p + kl + 1, &end, 10);
            return end == p + kl + 1 ? -1 : v;
        }
    }
    return -1;
}

void kiln_host_init(kiln_host_sampler_t *h, const char *root)
{
    memset(h, 0, sizeof *h);
    snprintf(h->root, sizeof h->root, "%s", root && root[0] ? root : "/proc");
}

static void sample_cpu(kiln_host_sampler_t *h, kiln_host_sample_t *out)
{
    char buf[FILE_BUF];
    if (read_file(h, "stat", buf, sizeof buf) < 0 || strncmp(buf, "cpu ", 4))
        return;
    /* user nice system idle iowait irq softirq steal (guest is inside user). */
    unsigned long long v[8] = {0};
    char *p = buf + 4;
    int n = 0;
    for (; n < 8; n++) {
        char *end;
        v[n] = strtoull(p, &end, 10);
        if (end == p)
            break;
        p = end;
    }
    if (n < 4)
        return;
    uint64_t idle = v[3] + v[4];
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += v[i];
    uint64_t busy = total - idle;
    if (h->have_prev && total > h->prev_total && busy >= h->prev_busy) {
        out->has_cpu = 1;
        out->cpu_utilization = (double)(busy - h->prev_busy) / (double)(total - h->prev_total);
        if (out->cpu_utilization > 1.0)
            out->cpu_utilization = 1.0;
    }
    h->prev_busy = busy;
    h->prev_total = total;
    h->have_prev = 1;
}

static void sample_memory(kiln_host_sampler_t *h, kiln_host_sample_t *out)
{
    char buf[FILE_BUF];
    if (read_file(h, "meminfo", buf, sizeof buf) < 0)
        return;
    long long total = field(buf, "MemTotal"), avail = field(buf, "MemAvailable");
    if (avail < 0) { /* kernels before 3.14 */
        long long fr = field(buf, "MemFree"), bu = field(buf, "Buffers"), ca = field(buf, "Cached");
        if (fr >= 0 && bu >= 0 && ca >= 0)
            avail = fr + bu + ca;
    }
    if (total < 0 || avail < 0 || avail > total)
        return;
    out->has_memory = 1;
    out->memory_total = (uint64_t)total * 1024;
    out->memory_used = (uint64_t)(total - avail) * 1024;
}

static void sample_self(kiln_host_sampler_t *h, kiln_host_sample_t *out)
{
    char buf[FILE_BUF];
    if (read_file(h, "self/status", buf, sizeof buf) < 0)
        return;
    long long rss = field(buf, "VmRSS"), threads = field(buf, "Threads");
    if (rss < 0 || threads < 0)
        return;
    out->has_self = 1;
    out->resident_bytes = (uint64_t)rss * 1024;
    out->threads = (uint64_t)threads;
    /* /proc/self/stat: "pid (comm) state ..." with utime, stime as fields 14, 15. */
    if (read_file(h, "self/stat", buf, sizeof buf) < 0)
        return;
    char *p = strrchr(buf, ')');
    if (!p)
        return;
    p++;
    unsigned long long ut = 0, stt = 0;
    for (int f = 3; f <= 15 && p; f++) {
        while (*p == ' ')
            p++;
        if (f == 14)
            ut = strtoull(p, NULL, 10);
        if (f == 15)
            stt = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
    }
    long hz = sysconf(_SC_CLK_TCK);
    out->cpu_seconds = (double)(ut + stt) / (double)(hz > 0 ? hz : 100);
}

kiln_status_t kiln_host_sample(kiln_host_sampler_t *h, kiln_host_sample_t *out)
{
    memset(out, 0, sizeof *out);
    int had_prev = h->have_prev;
    sample_cpu(h, out);
    sample_memory(h, out);
    sample_self(h, out);
    if (!out->has_cpu && !out->has_memory && !out->has_self && !(h->have_prev && !had_prev))
        return kiln_fail(KILN_ERR_IO, "host: cannot read %s/stat, %s/meminfo or %s/self/status",
                         h->root, h->root, h->root);
    return KILN_OK;
}
