/*
 * fake_nvml.c - a stand-in for libnvidia-ml.so.1 that kiln's tests load
 * through KILN_NVML_LIBRARY, so the NVML path (dlopen, versioned symbols,
 * units, NOT_SUPPORTED, GPU_IS_LOST, no driver) is tested on machines
 * without a GPU.  It exports the functions kiln calls, with NVML's ABI.
 *
 * Built twice: the default library exports the versioned names
 * (nvmlInit_v2, nvmlDeviceGetCount_v2, ..._v3 process lists with the
 * 4-field struct); with -DFAKE_NVML_OLD_API only the unversioned names
 * and the 2-field process struct, as drivers before CUDA 11 had.
 *
 * Values come from the script file named by KILN_FAKE_NVML_SCRIPT (no
 * script: one GPU with default values).  One line per setting, '#' starts
 * a comment, TARGET is a GPU index or "all":
 *
 *   driver absent                      nvmlInit fails (DRIVER_NOT_LOADED)
 *   gpus N                             number of GPUs (at most 64)
 *   gpu TARGET uuid TEXT               default GPU-fake-<index>
 *   gpu TARGET name TEXT...            default "Kiln Fake GPU"
 *   gpu TARGET utilization G M [RAMP]  percent; G grows by RAMP per step
 *   gpu TARGET memory TOTAL USED       bytes
 *   gpu TARGET temperature C [RAMP]    degrees; grows by RAMP per step
 *   gpu TARGET power MW [RAMP]         milliwatts
 *   gpu TARGET power_limit MW          milliwatts
 *   gpu TARGET energy MJ [RAMP]        millijoules since "driver load"
 *   gpu TARGET clocks SM MEM           MHz
 *   gpu TARGET fan PERCENT
 *   gpu TARGET process PID BYTES       a compute process (up to 16)
 *   gpu TARGET unsupported WHAT        WHAT answers NOT_SUPPORTED: one of
 *                                      utilization memory temperature power
 *                                      power_limit energy clocks fan processes
 *   gpu TARGET lost_from_step N        every call answers GPU_IS_LOST from step N
 *
 * A GPU's step is how many times nvmlDeviceGetUtilizationRates was called
 * on it before (kiln calls it first in every sample), so step 0 is the
 * first sample.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GPUS 64
#define MAX_PROCS 16

enum {
    OK = 0,
    ERR_UNINITIALIZED = 1,
    ERR_INVALID_ARGUMENT = 2,
    ERR_NOT_SUPPORTED = 3,
    ERR_INSUFFICIENT_SIZE = 7,
    ERR_DRIVER_NOT_LOADED = 9,
    ERR_GPU_IS_LOST = 15,
    ERR_UNKNOWN = 999
};

enum {
    U_UTIL = 1 << 0,
    U_MEMORY = 1 << 1,
    U_TEMP = 1 << 2,
    U_POWER = 1 << 3,
    U_LIMIT = 1 << 4,
    U_ENERGY = 1 << 5,
    U_CLOCKS = 1 << 6,
    U_FAN = 1 << 7,
    U_PROCS = 1 << 8
};

typedef struct fake_gpu {
    char uuid[96], name[96];
    double util, util_mem, util_ramp;
    unsigned long long mem_total, mem_used;
    double temp, temp_ramp;
    double power, power_ramp, limit;
    double energy, energy_ramp;
    unsigned sm, memclk, fan;
    unsigned unsupported;
    long lost_from; /* -1: never */
    long calls;     /* utilization calls so far */
    int n_procs;
    unsigned pids[MAX_PROCS];
    unsigned long long proc_bytes[MAX_PROCS];
} fake_gpu_t;

typedef struct { unsigned long long total, free, used; } mem_t;
typedef struct { unsigned gpu, memory; } util_t;
typedef struct { unsigned pid; unsigned long long used; } proc_v1_t;
typedef struct { unsigned pid; unsigned long long used; unsigned gi, ci; } proc_v2_t;

static fake_gpu_t gpus[MAX_GPUS];
static unsigned n_gpus = 1;
static int initialised, driver_absent;

static void defaults(unsigned i)
{
    fake_gpu_t *g = &gpus[i];
    memset(g, 0, sizeof *g);
    snprintf(g->uuid, sizeof g->uuid, "GPU-fake-%04u", i);
    snprintf(g->name, sizeof g->name, "Kiln Fake GPU");
    g->util = 50;
    g->util_mem = 25;
    g->mem_total = 16ULL << 30;
    g->mem_used = 4ULL << 30;
    g->temp = 40;
    g->power = 100000;
    g->limit = 300000;
    g->energy_ramp = 100000;
    g->sm = 1410;
    g->memclk = 1215;
    g->fan = 30;
    g->lost_from = -1;
}

static unsigned what_bit(const char *w)
{
    static const struct { const char *n; unsigned b; } t[] = {
        {"utilization", U_UTIL}, {"memory", U_MEMORY}, {"temperature", U_TEMP},
        {"power", U_POWER}, {"power_limit", U_LIMIT}, {"energy", U_ENERGY},
        {"clocks", U_CLOCKS}, {"fan", U_FAN}, {"processes", U_PROCS}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(w, t[i].n))
            return t[i].b;
    return 0;
}

/* Applies one "gpu" setting to g; rest is the text after the key. */
static void apply(fake_gpu_t *g, const char *key, const char *rest)
{
    double a = 0, b = 0, c = 0;
    int n = sscanf(rest, "%lf %lf %lf", &a, &b, &c);
    if (!strcmp(key, "uuid"))
        sscanf(rest, "%95s", g->uuid);
    else if (!strcmp(key, "name"))
        snprintf(g->name, sizeof g->name, "%s", rest);
    else if (!strcmp(key, "utilization") && n >= 2) {
        g->util = a;
        g->util_mem = b;
        g->util_ramp = n >= 3 ? c : 0;
    } else if (!strcmp(key, "memory") && n >= 2) {
        g->mem_total = (unsigned long long)a;
        g->mem_used = (unsigned long long)b;
    } else if (!strcmp(key, "temperature") && n >= 1) {
        g->temp = a;
        g->temp_ramp = n >= 2 ? b : 0;
    } else if (!strcmp(key, "power") && n >= 1) {
        g->power = a;
        g->power_ramp = n >= 2 ? b : 0;
    } else if (!strcmp(key, "power_limit") && n >= 1)
        g->limit = a;
    else if (!strcmp(key, "energy") && n >= 1) {
        g->energy = a;
        g->energy_ramp = n >= 2 ? b : 0;
    } else if (!strcmp(key, "clocks") && n >= 2) {
        g->sm = (unsigned)a;
        g->memclk = (unsigned)b;
    } else if (!strcmp(key, "fan") && n >= 1)
        g->fan = (unsigned)a;
    else if (!strcmp(key, "process") && n >= 2 && g->n_procs < MAX_PROCS) {
        g->pids[g->n_procs] = (unsigned)a;
        g->proc_bytes[g->n_procs++] = (unsigned long long)b;
    } else if (!strcmp(key, "unsupported")) {
        char w[64] = "";
        sscanf(rest, "%63s", w);
        g->unsupported |= what_bit(w);
    } else if (!strcmp(key, "lost_from_step") && n >= 1)
        g->lost_from = (long)a;
    else
        fprintf(stderr, "fake_nvml: ignoring setting '%s %s'\n", key, rest);
}

static void load_script(void)
{
    for (unsigned i = 0; i < MAX_GPUS; i++)
        defaults(i);
    n_gpus = 1;
    driver_absent = 0;
    const char *path = getenv("KILN_FAKE_NVML_SCRIPT");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        for (size_t n = strlen(line); n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'); n--)
            line[n - 1] = '\0';
        char w1[32] = "", w2[32] = "", key[32] = "";
        int off = 0;
        if (sscanf(line, "%31s %31s %31s %n", w1, w2, key, &off) >= 2 && !strcmp(w1, "gpu")) {
            const char *rest = off ? line + off : "";
            if (!strcmp(w2, "all")) {
                for (unsigned i = 0; i < MAX_GPUS; i++)
                    apply(&gpus[i], key, rest);
            } else {
                unsigned i = (unsigned)atoi(w2);
                if (i < MAX_GPUS)
                    apply(&gpus[i], key, rest);
            }
        } else if (!strcmp(w1, "gpus")) {
            n_gpus = (unsigned)atoi(w2);
            if (n_gpus > MAX_GPUS)
                n_gpus = MAX_GPUS;
        } else if (!strcmp(w1, "driver") && !strcmp(w2, "absent")) {
            driver_absent = 1;
        }
    }
    fclose(f);
}

static long step_of(const fake_gpu_t *g) { return g->calls > 0 ? g->calls - 1 : 0; }

/* Common checks of a device call: handle, lost, unsupported. */
static int check(void *dev, unsigned what, fake_gpu_t **out)
{
    if (!initialised)
        return ERR_UNINITIALIZED;
    fake_gpu_t *g = dev;
    if (!g || g < gpus || g >= gpus + n_gpus)
        return ERR_INVALID_ARGUMENT;
    if (g->lost_from >= 0 && step_of(g) >= g->lost_from)
        return ERR_GPU_IS_LOST;
    if (g->unsupported & what)
        return ERR_NOT_SUPPORTED;
    *out = g;
    return OK;
}

static int do_init(void)
{
    load_script();
    if (driver_absent)
        return ERR_DRIVER_NOT_LOADED;
    initialised = 1;
    return OK;
}

static int do_count(unsigned *n)
{
    if (!initialised)
        return ERR_UNINITIALIZED;
    if (!n)
        return ERR_INVALID_ARGUMENT;
    *n = n_gpus;
    return OK;
}

static int do_handle(unsigned i, void **dev)
{
    if (!initialised)
        return ERR_UNINITIALIZED;
    if (i >= n_gpus || !dev)
        return ERR_INVALID_ARGUMENT;
    *dev = &gpus[i];
    return OK;
}

/* Fills a process list of elem-byte entries (v1 or v2 layout). */
static int do_processes(void *dev, unsigned *count, void *infos, int v2)
{
    fake_gpu_t *g;
    int rc = check(dev, U_PROCS, &g);
    if (rc)
        return rc;
    if (!count)
        return ERR_INVALID_ARGUMENT;
    if (*count < (unsigned)g->n_procs || (!infos && g->n_procs)) {
        *count = (unsigned)g->n_procs;
        return ERR_INSUFFICIENT_SIZE;
    }
    for (int k = 0; k < g->n_procs; k++) {
        if (v2)
            ((proc_v2_t *)infos)[k] = (proc_v2_t){g->pids[k], g->proc_bytes[k], 0, 0};
        else
            ((proc_v1_t *)infos)[k] = (proc_v1_t){g->pids[k], g->proc_bytes[k]};
    }
    *count = (unsigned)g->n_procs;
    return OK;
}

#ifdef FAKE_NVML_OLD_API
int nvmlInit(void) { return do_init(); }
int nvmlDeviceGetCount(unsigned *n) { return do_count(n); }
int nvmlDeviceGetHandleByIndex(unsigned i, void **dev) { return do_handle(i, dev); }
int nvmlDeviceGetComputeRunningProcesses(void *dev, unsigned *count, void *infos)
{
    return do_processes(dev, count, infos, 0);
}
#else
int nvmlInit_v2(void) { return do_init(); }
int nvmlDeviceGetCount_v2(unsigned *n) { return do_count(n); }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **dev) { return do_handle(i, dev); }
int nvmlDeviceGetComputeRunningProcesses_v3(void *dev, unsigned *count, void *infos)
{
    return do_processes(dev, count, infos, 1);
}
#endif

int nvmlShutdown(void)
{
    initialised = 0;
    return OK;
}

const char *nvmlErrorString(int rc)
{
    switch (rc) {
    case OK: return "Success";
    case ERR_UNINITIALIZED: return "Uninitialized";
    case ERR_INVALID_ARGUMENT: return "Invalid Argument";
    case ERR_NOT_SUPPORTED: return "Not Supported";
    case ERR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case ERR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case ERR_GPU_IS_LOST: return "GPU is lost";
    }
    return "Unknown Error";
}

int nvmlSystemGetDriverVersion(char *buf, unsigned len)
{
    if (!buf || len < 12)
        return ERR_INVALID_ARGUMENT;
    snprintf(buf, len, "999.99-fake");
    return OK;
}

int nvmlDeviceGetUUID(void *dev, char *buf, unsigned len)
{
    fake_gpu_t *g;
    int rc = check(dev, 0, &g);
    if (rc)
        return rc;
    snprintf(buf, len, "%s", g->uuid);
    return OK;
}

int nvmlDeviceGetName(void *dev, char *buf, unsigned len)
{
    fake_gpu_t *g;
    int rc = check(dev, 0, &g);
    if (rc)
        return rc;
    snprintf(buf, len, "%s", g->name);
    return OK;
}

int nvmlDeviceGetUtilizationRates(void *dev, util_t *u)
{
    if (dev >= (void *)gpus && dev < (void *)(gpus + n_gpus))
        ((fake_gpu_t *)dev)->calls++; /* a new step starts */
    fake_gpu_t *g;
    int rc = check(dev, U_UTIL, &g);
    if (rc)
        return rc;
    double v = g->util + g->util_ramp * (double)step_of(g);
    u->gpu = (unsigned)(v < 0 ? 0 : v > 100 ? 100 : v);
    u->memory = (unsigned)g->util_mem;
    return OK;
}

int nvmlDeviceGetMemoryInfo(void *dev, mem_t *m)
{
    fake_gpu_t *g;
    int rc = check(dev, U_MEMORY, &g);
    if (rc)
        return rc;
    m->total = g->mem_total;
    m->used = g->mem_used;
    m->free = g->mem_total - g->mem_used;
    return OK;
}

int nvmlDeviceGetTemperature(void *dev, int sensor, unsigned *t)
{
    fake_gpu_t *g;
    int rc = check(dev, U_TEMP, &g);
    if (rc)
        return rc;
    if (sensor != 0)
        return ERR_INVALID_ARGUMENT;
    *t = (unsigned)(g->temp + g->temp_ramp * (double)step_of(g));
    return OK;
}

int nvmlDeviceGetPowerUsage(void *dev, unsigned *mw)
{
    fake_gpu_t *g;
    int rc = check(dev, U_POWER, &g);
    if (rc)
        return rc;
    *mw = (unsigned)(g->power + g->power_ramp * (double)step_of(g));
    return OK;
}

int nvmlDeviceGetEnforcedPowerLimit(void *dev, unsigned *mw)
{
    fake_gpu_t *g;
    int rc = check(dev, U_LIMIT, &g);
    if (rc)
        return rc;
    *mw = (unsigned)g->limit;
    return OK;
}

int nvmlDeviceGetTotalEnergyConsumption(void *dev, unsigned long long *mj)
{
    fake_gpu_t *g;
    int rc = check(dev, U_ENERGY, &g);
    if (rc)
        return rc;
    *mj = (unsigned long long)(g->energy + g->energy_ramp * (double)step_of(g));
    return OK;
}

int nvmlDeviceGetClockInfo(void *dev, int type, unsigned *mhz)
{
    fake_gpu_t *g;
    int rc = check(dev, U_CLOCKS, &g);
    if (rc)
        return rc;
    if (type == 1)
        *mhz = g->sm;
    else if (type == 2)
        *mhz = g->memclk;
    else
        return ERR_INVALID_ARGUMENT;
    return OK;
}

int nvmlDeviceGetFanSpeed(void *dev, unsigned *pct)
{
    fake_gpu_t *g;
    int rc = check(dev, U_FAN, &g);
    if (rc)
        return rc;
    *pct = g->fan;
    return OK;
}
