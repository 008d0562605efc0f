/*
 * nvml.c - the NVML loader and GPU sampler (see nvml.h).
 *
 * The declarations below are kiln's own, written from NVML's documented
 * ABI: return codes are ints, a device is an opaque pointer, and the few
 * structs are plain C.  Each function pointer is resolved from a list of
 * symbol names, newest version first, so old and new drivers both work.
 * Per GPU a mask of unsupported fields remembers NOT_SUPPORTED answers so
 * the sampler does not ask again every second.
 */
#include "monitor/nvml.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---- kiln's declarations of NVML's ABI ----------------------------------- */

typedef int nvml_return_t;
typedef void *nvml_device_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15
};
enum { NVML_TEMPERATURE_GPU = 0 };
enum { NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };
#define NVML_DEVICE_UUID_BUFFER_SIZE 96
#define NVML_DEVICE_NAME_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80
#define NVML_VALUE_NOT_AVAILABLE_ULL (~0ULL)

typedef struct {
    unsigned long long total, free, used;
} nvml_memory_t;

typedef struct {
    unsigned int gpu, memory;
} nvml_utilization_t;

/* nvmlProcessInfo_v1_t (plain call) and the v2/v3 layout (_v2, _v3 calls). */
typedef struct {
    unsigned int pid;
    unsigned long long used_gpu_memory;
} nvml_process_v1_t;

typedef struct {
    unsigned int pid;
    unsigned long long used_gpu_memory;
    unsigned int gpu_instance_id, compute_instance_id;
} nvml_process_v2_t;

typedef struct nvml_api {
    nvml_return_t (*init)(void);
    nvml_return_t (*shutdown)(void);
    const char *(*error_string)(nvml_return_t);
    nvml_return_t (*get_count)(unsigned int *);
    nvml_return_t (*get_handle)(unsigned int, nvml_device_t *);
    nvml_return_t (*get_uuid)(nvml_device_t, char *, unsigned int);
    nvml_return_t (*get_name)(nvml_device_t, char *, unsigned int);
    nvml_return_t (*driver_version)(char *, unsigned int);
    nvml_return_t (*utilization)(nvml_device_t, nvml_utilization_t *);
    nvml_return_t (*memory)(nvml_device_t, nvml_memory_t *);
    nvml_return_t (*temperature)(nvml_device_t, int, unsigned int *);
    nvml_return_t (*power)(nvml_device_t, unsigned int *);
    nvml_return_t (*power_limit)(nvml_device_t, unsigned int *);
    nvml_return_t (*energy)(nvml_device_t, unsigned long long *);
    nvml_return_t (*clock)(nvml_device_t, int, unsigned int *);
    nvml_return_t (*fan)(nvml_device_t, unsigned int *);
    nvml_return_t (*processes)(nvml_device_t, unsigned int *, void *);
    int processes_v2; /* 1: the 4-field struct, 0: the 2-field one */
} nvml_api_t;

typedef struct gpu {
    nvml_device_t dev;
    char uuid[NVML_DEVICE_UUID_BUFFER_SIZE];
    char name[NVML_DEVICE_NAME_BUFFER_SIZE];
    int lost;
    unsigned int unsupported; /* KILN_GPU_HAS_* bits the GPU said it lacks */
    unsigned int warned;      /* fields whose other errors were logged once */
} gpu_t;

struct kiln_nvml {
    void *lib;
    nvml_api_t api;
    char driver[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
    size_t n_gpus;
    gpu_t *gpus;
    kiln_nvml_log_fn log;
    void *log_ctx;
    nvml_process_v2_t *proc_buf; /* scratch for process lists */
    unsigned int proc_cap;
};

static void say(kiln_nvml_t *nv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(kiln_nvml_t *nv, const char *fmt, ...)
{
    if (!nv->log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    nv->log(nv->log_ctx, line);
}

static const char *errtext(kiln_nvml_t *nv, nvml_return_t rc)
{
    const char *s = nv->api.error_string ? nv->api.error_string(rc) : NULL;
    return s ? s : "unknown NVML error";
}

/* The first symbol of the NULL-terminated list that the library has. */
static void *resolve(void *lib, const char *const *names, int *which)
{
    for (int i = 0; names[i]; i++) {
        void *p = dlsym(lib, names[i]);
        if (p) {
            if (which)
                *which = i;
            return p;
        }
    }
    return NULL;
}

#define SYMS(...) ((const char *const[]){__VA_ARGS__, NULL})

kiln_status_t kiln_nvml_open(const char *path, kiln_nvml_log_fn log, void *log_ctx,
                             kiln_nvml_t **out)
{
    *out = NULL;
    if (!path || !path[0])
        path = getenv("KILN_NVML_LIBRARY");
    if (!path || !path[0])
        path = "libnvidia-ml.so.1";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        return kiln_fail(KILN_ERR_UNSUPPORTED, "no NVIDIA driver: cannot load %s (%s)", path,
                         e ? e : "not found");
    }
    kiln_nvml_t *nv = calloc(1, sizeof *nv);
    if (!nv) {
        dlclose(lib);
        return kiln_fail(KILN_ERR_NO_MEMORY, "nvml: out of memory");
    }
    nv->lib = lib;
    nv->log = log;
    nv->log_ctx = log_ctx;
    nvml_api_t *a = &nv->api;
    /* Casts through void* keep -Wpedantic quiet about object-to-function pointers. */
#define LOAD(field, ...) (*(void **)&a->field = resolve(lib, SYMS(__VA_ARGS__), NULL))
    LOAD(init, "nvmlInit_v2", "nvmlInit");
    LOAD(shutdown, "nvmlShutdown");
    LOAD(error_string, "nvmlErrorString");
    LOAD(get_count, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    LOAD(get_handle, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    LOAD(get_uuid, "nvmlDeviceGetUUID");
    LOAD(get_name, "nvmlDeviceGetName");
    LOAD(driver_version, "nvmlSystemGetDriverVersion");
    LOAD(utilization, "nvmlDeviceGetUtilizationRates");
    LOAD(memory, "nvmlDeviceGetMemoryInfo");
    LOAD(temperature, "nvmlDeviceGetTemperature");
    LOAD(power, "nvmlDeviceGetPowerUsage");
    LOAD(power_limit, "nvmlDeviceGetEnforcedPowerLimit");
    LOAD(energy, "nvmlDeviceGetTotalEnergyConsumption");
    LOAD(clock, "nvmlDeviceGetClockInfo");
    LOAD(fan, "nvmlDeviceGetFanSpeed");
#undef LOAD
    int which = 0;
    *(void **)&a->processes =
        resolve(lib,
                SYMS("nvmlDeviceGetComputeRunningProcesses_v3",
                     "nvmlDeviceGetComputeRunningProcesses_v2", "nvmlDeviceGetComputeRunningProcesses"),
                &which);
    a->processes_v2 = which < 2;
    if (!a->init || !a->get_count || !a->get_handle || !a->shutdown) {
        kiln_nvml_close(nv);
        return kiln_fail(KILN_ERR_UNSUPPORTED, "no usable NVML: %s lacks nvmlInit, "
                         "nvmlDeviceGetCount or nvmlDeviceGetHandleByIndex", path);
    }
    nvml_return_t rc = a->init();
    if (rc != NVML_SUCCESS) {
        kiln_status_t st = kiln_fail(KILN_ERR_UNSUPPORTED, "no NVIDIA driver: nvmlInit failed: %s",
                                     errtext(nv, rc));
        a->shutdown = NULL; /* not initialised: nothing to shut down */
        kiln_nvml_close(nv);
        return st;
    }
    if (a->driver_version &&
        a->driver_version(nv->driver, sizeof nv->driver) != NVML_SUCCESS)
        nv->driver[0] = '\0';
    unsigned int count = 0;
    rc = a->get_count(&count);
    if (rc != NVML_SUCCESS) {
        kiln_status_t st = kiln_fail(KILN_ERR_UNSUPPORTED, "NVML cannot count GPUs: %s",
                                     errtext(nv, rc));
        kiln_nvml_close(nv);
        return st;
    }
    nv->gpus = calloc(count ? count : 1, sizeof *nv->gpus);
    if (!nv->gpus) {
        kiln_nvml_close(nv);
        return kiln_fail(KILN_ERR_NO_MEMORY, "nvml: out of memory");
    }
    nv->n_gpus = count;
    for (unsigned int i = 0; i < count; i++) {
        gpu_t *g = &nv->gpus[i];
        snprintf(g->uuid, sizeof g->uuid, "GPU-index-%u", i);
        rc = a->get_handle(i, &g->dev);
        if (rc != NVML_SUCCESS) {
            g->lost = 1;
            say(nv, "GPU %u: cannot be opened (%s); it is left out", i, errtext(nv, rc));
            continue;
        }
        if (a->get_uuid && a->get_uuid(g->dev, g->uuid, sizeof g->uuid) != NVML_SUCCESS)
            snprintf(g->uuid, sizeof g->uuid, "GPU-index-%u", i);
        if (!a->get_name || a->get_name(g->dev, g->name, sizeof g->name) != NVML_SUCCESS)
            snprintf(g->name, sizeof g->name, "unknown");
        g->uuid[sizeof g->uuid - 1] = g->name[sizeof g->name - 1] = '\0';
    }
    *out = nv;
    return KILN_OK;
}

void kiln_nvml_close(kiln_nvml_t *nv)
{
    if (!nv)
        return;
    if (nv->api.shutdown)
        nv->api.shutdown();
    /* The library stays mapped: NVML may keep threads that outlive shutdown. */
    free(nv->gpus);
    free(nv->proc_buf);
    free(nv);
}

size_t kiln_nvml_gpu_count(const kiln_nvml_t *nv) { return nv ? nv->n_gpus : 0; }
const char *kiln_nvml_driver_version(const kiln_nvml_t *nv) { return nv ? nv->driver : ""; }

/* Sorts one call's result: 1 when the value is good, 0 when the field is
 * skipped (unsupported now and later, or a logged error), and marks the GPU
 * lost when it fell off the bus. */
static int check(kiln_nvml_t *nv, unsigned int idx, unsigned int field, const char *what,
                 nvml_return_t rc)
{
    gpu_t *g = &nv->gpus[idx];
    if (rc == NVML_SUCCESS)
        return 1;
    if (rc == NVML_ERROR_NOT_SUPPORTED) {
        g->unsupported |= field;
        return 0;
    }
    if (rc == NVML_ERROR_GPU_IS_LOST) {
        if (!g->lost)
            say(nv, "GPU %u (%s) fell off the bus (NVML: %s); its metrics stop", idx, g->uuid,
                errtext(nv, rc));
        g->lost = 1;
        return 0;
    }
    if (!(g->warned & field)) {
        g->warned |= field;
        say(nv, "GPU %u (%s): %s failed: %s; skipped", idx, g->uuid, what, errtext(nv, rc));
    }
    return 0;
}

/* Whether to ask for a field: the function exists, the GPU supports it and is there. */
static int want(const kiln_nvml_t *nv, unsigned int idx, unsigned int field, const void *fn)
{
    const gpu_t *g = &nv->gpus[idx];
    return fn && !g->lost && !(g->unsupported & field);
}

static void sample_processes(kiln_nvml_t *nv, unsigned int i, kiln_gpu_sample_t *s)
{
    nvml_api_t *a = &nv->api;
    size_t elem = a->processes_v2 ? sizeof(nvml_process_v2_t) : sizeof(nvml_process_v1_t);
    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned int n = nv->proc_cap;
        nvml_return_t rc = a->processes(nv->gpus[i].dev, &n, nv->proc_buf);
        if (rc == NVML_ERROR_INSUFFICIENT_SIZE && n > nv->proc_cap && n < 65536) {
            unsigned int cap = n + 8;
            void *nb = realloc(nv->proc_buf, cap * sizeof(nvml_process_v2_t));
            if (!nb)
                return;
            nv->proc_buf = nb;
            nv->proc_cap = cap;
            continue;
        }
        if (!check(nv, i, KILN_GPU_HAS_PROCESSES, "nvmlDeviceGetComputeRunningProcesses", rc))
            return;
        if (n > nv->proc_cap)
            n = nv->proc_cap;
        s->has |= KILN_GPU_HAS_PROCESSES;
        for (unsigned int k = 0; k < n && s->n_processes < KILN_GPU_MAX_PROCESSES; k++) {
            const unsigned char *p = (const unsigned char *)nv->proc_buf + k * elem;
            unsigned int pid;
            unsigned long long used;
            if (a->processes_v2) {
                pid = ((const nvml_process_v2_t *)p)->pid;
                used = ((const nvml_process_v2_t *)p)->used_gpu_memory;
            } else {
                pid = ((const nvml_process_v1_t *)p)->pid;
                used = ((const nvml_process_v1_t *)p)->used_gpu_memory;
            }
            if (used == NVML_VALUE_NOT_AVAILABLE_ULL)
                continue; /* e.g. no permission to see other users' processes */
            s->processes[s->n_processes++] = (kiln_gpu_process_t){pid, used};
        }
        return;
    }
}

size_t kiln_nvml_sample(kiln_nvml_t *nv, kiln_gpu_sample_t *out, size_t max)
{
    if (!nv)
        return 0;
    nvml_api_t *a = &nv->api;
    size_t n = nv->n_gpus < max ? nv->n_gpus : max;
    if (nv->proc_cap == 0) {
        nv->proc_buf = calloc(16, sizeof *nv->proc_buf);
        nv->proc_cap = nv->proc_buf ? 16 : 0;
    }
    for (unsigned int i = 0; i < n; i++) {
        gpu_t *g = &nv->gpus[i];
        kiln_gpu_sample_t *s = &out[i];
        memset(s, 0, offsetof(kiln_gpu_sample_t, processes));
        s->index = i;
        memcpy(s->uuid, g->uuid, sizeof s->uuid);
        memcpy(s->name, g->name, sizeof s->name);
        unsigned int u = 0;
        if (want(nv, i, KILN_GPU_HAS_UTIL, a->utilization)) {
            nvml_utilization_t ut;
            if (check(nv, i, KILN_GPU_HAS_UTIL, "nvmlDeviceGetUtilizationRates",
                      a->utilization(g->dev, &ut))) {
                s->has |= KILN_GPU_HAS_UTIL;
                s->util_gpu = ut.gpu / 100.0;
                s->util_memory = ut.memory / 100.0;
            }
        }
        if (want(nv, i, KILN_GPU_HAS_MEMORY, a->memory)) {
            nvml_memory_t m;
            if (check(nv, i, KILN_GPU_HAS_MEMORY, "nvmlDeviceGetMemoryInfo", a->memory(g->dev, &m))) {
                s->has |= KILN_GPU_HAS_MEMORY;
                s->memory_total = m.total;
                s->memory_used = m.used;
                s->memory_free = m.free;
            }
        }
        if (want(nv, i, KILN_GPU_HAS_TEMPERATURE, a->temperature) &&
            check(nv, i, KILN_GPU_HAS_TEMPERATURE, "nvmlDeviceGetTemperature",
                  a->temperature(g->dev, NVML_TEMPERATURE_GPU, &u))) {
            s->has |= KILN_GPU_HAS_TEMPERATURE;
            s->temperature_c = u;
        }
        if (want(nv, i, KILN_GPU_HAS_POWER, a->power) &&
            check(nv, i, KILN_GPU_HAS_POWER, "nvmlDeviceGetPowerUsage", a->power(g->dev, &u))) {
            s->has |= KILN_GPU_HAS_POWER;
            s->power_w = u / 1000.0;
        }
        if (want(nv, i, KILN_GPU_HAS_POWER_LIMIT, a->power_limit) &&
            check(nv, i, KILN_GPU_HAS_POWER_LIMIT, "nvmlDeviceGetEnforcedPowerLimit",
                  a->power_limit(g->dev, &u))) {
            s->has |= KILN_GPU_HAS_POWER_LIMIT;
            s->power_limit_w = u / 1000.0;
        }
        unsigned long long mj = 0;
        if (want(nv, i, KILN_GPU_HAS_ENERGY, a->energy) &&
            check(nv, i, KILN_GPU_HAS_ENERGY, "nvmlDeviceGetTotalEnergyConsumption",
                  a->energy(g->dev, &mj))) {
            s->has |= KILN_GPU_HAS_ENERGY;
            s->energy_mj = mj;
        }
        if (want(nv, i, KILN_GPU_HAS_CLOCK_SM, a->clock) &&
            check(nv, i, KILN_GPU_HAS_CLOCK_SM, "nvmlDeviceGetClockInfo(SM)",
                  a->clock(g->dev, NVML_CLOCK_SM, &u))) {
            s->has |= KILN_GPU_HAS_CLOCK_SM;
            s->clock_sm_mhz = u;
        }
        if (want(nv, i, KILN_GPU_HAS_CLOCK_MEM, a->clock) &&
            check(nv, i, KILN_GPU_HAS_CLOCK_MEM, "nvmlDeviceGetClockInfo(MEM)",
                  a->clock(g->dev, NVML_CLOCK_MEM, &u))) {
            s->has |= KILN_GPU_HAS_CLOCK_MEM;
            s->clock_mem_mhz = u;
        }
        if (want(nv, i, KILN_GPU_HAS_FAN, a->fan) &&
            check(nv, i, KILN_GPU_HAS_FAN, "nvmlDeviceGetFanSpeed", a->fan(g->dev, &u))) {
            s->has |= KILN_GPU_HAS_FAN;
            s->fan_percent = u;
        }
        if (want(nv, i, KILN_GPU_HAS_PROCESSES, a->processes) && nv->proc_cap)
            sample_processes(nv, i, s);
        if (g->lost) {
            s->lost = 1;
            s->has = 0;
            s->n_processes = 0;
        }
    }
    return n;
}
