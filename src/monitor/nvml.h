/*
 * nvml.h - NVIDIA GPUs through NVML, loaded at run time with dlopen.
 *
 * kiln has no build-time dependency on the CUDA toolkit: it declares the few
 * NVML types and functions it calls, opens libnvidia-ml.so.1 (or the file in
 * $KILN_NVML_LIBRARY) and looks each function up, preferring the newest
 * versioned symbol (nvmlInit_v2, then nvmlInit; ..._v3, _v2, plain).
 *
 * Three outcomes are normal states, never errors of the caller:
 *   - no library or no driver: kiln_nvml_open() returns KILN_ERR_UNSUPPORTED
 *     and says why (the monitor says so once and runs without GPUs);
 *   - a function the GPU does not support (NVML_ERROR_NOT_SUPPORTED): the
 *     field is left out of that GPU's samples from then on, silently;
 *   - a GPU that fell off the bus (NVML_ERROR_GPU_IS_LOST): the GPU is
 *     marked lost, reported through the log callback once, and no longer
 *     asked; its sample says lost.
 */
#ifndef KILN_MONITOR_NVML_H
#define KILN_MONITOR_NVML_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

typedef struct kiln_nvml kiln_nvml_t;

/* Which fields of a kiln_gpu_sample_t hold a value. */
enum {
    KILN_GPU_HAS_UTIL = 1 << 0,
    KILN_GPU_HAS_MEMORY = 1 << 1,
    KILN_GPU_HAS_TEMPERATURE = 1 << 2,
    KILN_GPU_HAS_POWER = 1 << 3,
    KILN_GPU_HAS_POWER_LIMIT = 1 << 4,
    KILN_GPU_HAS_ENERGY = 1 << 5,
    KILN_GPU_HAS_CLOCK_SM = 1 << 6,
    KILN_GPU_HAS_CLOCK_MEM = 1 << 7,
    KILN_GPU_HAS_FAN = 1 << 8,
    KILN_GPU_HAS_PROCESSES = 1 << 9
};

#define KILN_GPU_MAX_PROCESSES 64

typedef struct kiln_gpu_process {
    unsigned int pid;
    uint64_t used_bytes;
} kiln_gpu_process_t;

typedef struct kiln_gpu_sample {
    unsigned int index;
    char uuid[96];
    char name[96];
    int lost;            /* fell off the bus; no other field is valid */
    unsigned int has;    /* KILN_GPU_HAS_* bits */
    double util_gpu;     /* 0..1, share of time a kernel ran */
    double util_memory;  /* 0..1, share of time memory was read or written */
    uint64_t memory_total, memory_used, memory_free; /* bytes */
    double temperature_c;
    double power_w, power_limit_w; /* NVML reports milliwatts */
    uint64_t energy_mj;  /* millijoules since the driver loaded */
    double clock_sm_mhz, clock_mem_mhz;
    double fan_percent;
    size_t n_processes;  /* compute processes holding memory (up to KILN_GPU_MAX_PROCESSES) */
    kiln_gpu_process_t processes[KILN_GPU_MAX_PROCESSES];
} kiln_gpu_sample_t;

/* Receives one line of text worth telling the operator (no newline). */
typedef void (*kiln_nvml_log_fn)(void *ctx, const char *line);

/* Loads NVML from path (NULL: $KILN_NVML_LIBRARY, else libnvidia-ml.so.1),
 * initialises it and lists the GPUs.  KILN_OK with *out set; or
 * KILN_ERR_UNSUPPORTED when there is no library, no driver or a library
 * lacking the needed functions (kiln_last_error() says which). */
kiln_status_t kiln_nvml_open(const char *path, kiln_nvml_log_fn log, void *log_ctx,
                             kiln_nvml_t **out);
/* Shuts NVML down and unloads it.  Safe with NULL. */
void kiln_nvml_close(kiln_nvml_t *nv);

/* The number of GPUs found at open. */
size_t kiln_nvml_gpu_count(const kiln_nvml_t *nv);
/* The driver version text ("" when unknown). */
const char *kiln_nvml_driver_version(const kiln_nvml_t *nv);

/* Reads every GPU into out[0..kiln_nvml_gpu_count()-1] (max entries at most);
 * returns how many were written.  Never fails as a whole: a GPU or field
 * that cannot be read is marked as such in its sample. */
size_t kiln_nvml_sample(kiln_nvml_t *nv, kiln_gpu_sample_t *out, size_t max);

#endif
