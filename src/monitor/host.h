/*
 * host.h - the host's side of monitoring, read from /proc: CPU utilization
 * (deltas of /proc/stat between two samples), memory used and total
 * (/proc/meminfo, used = MemTotal - MemAvailable), and kiln's own resident
 * memory, threads (/proc/self/status) and CPU time (/proc/self/stat).
 *
 * The /proc root is a parameter so tests can point it at a fake tree.
 */
#ifndef KILN_MONITOR_HOST_H
#define KILN_MONITOR_HOST_H

#include <stdint.h>

#include "kiln.h"

typedef struct kiln_host_sampler {
    char root[256];           /* "/proc" or a test tree */
    uint64_t prev_busy, prev_total; /* /proc/stat jiffies at the last sample */
    int have_prev;
} kiln_host_sampler_t;

typedef struct kiln_host_sample {
    int has_cpu;              /* 0 on the first sample (no delta yet) */
    double cpu_utilization;   /* 0..1 over all CPUs since the last sample */
    int has_memory;
    uint64_t memory_total, memory_used; /* bytes */
    int has_self;
    uint64_t resident_bytes;  /* VmRSS */
    uint64_t threads;
    double cpu_seconds;       /* user + system time of this process */
} kiln_host_sample_t;

/* Prepares a sampler on root (NULL: "/proc"). */
void kiln_host_init(kiln_host_sampler_t *h, const char *root);

/* Reads one sample.  A file that cannot be read or parsed leaves its part
 * out (has_* = 0) and, when nothing at all could be read, returns
 * KILN_ERR_IO naming the file. */
kiln_status_t kiln_host_sample(kiln_host_sampler_t *h, kiln_host_sample_t *out);

#endif
