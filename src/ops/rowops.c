/*
 * rowops.c - the portable reference row kernels and the run-time choice
 * between them and the AVX2 ones (see rowops.h).
 *
 * The references accumulate in double, so they double as the accuracy
 * yardstick for the vector versions.
 */
#include <math.h>

#include "ops/rowops.h"

static float sum_portable(const float *x, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    return (float)s;
}

static float sum_squares_portable(const float *x, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return (float)s;
}

static float max_portable(const float *x, int64_t n)
{
    float m = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    return m;
}

static void softmax_portable(const float *x, float *y, int64_t n, bool log_out)
{
    if (n == 0)
        return;
    float m = max_portable(x, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += exp((double)x[i] - m);
    if (log_out) {
        double lse = m + log(s);
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)(x[i] - lse);
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)(exp((double)x[i] - m) / s);
    }
}

static void layer_norm_portable(const float *x, float *y, int64_t n, const float *w, int64_t wn,
                                const float *b, int64_t bn, float eps, float *mean_out, float *inv_std_out)
{
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    double m = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        ss += ((double)x[i] - m) * ((double)x[i] - m);
    double inv = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (float)(((double)x[i] - m) * inv * w[i % wn] + (b ? b[i % bn] : 0.0f));
    *mean_out = (float)m;
    *inv_std_out = (float)inv;
}

static const kiln_rowops_t ROWOPS_PORTABLE = {"portable",   sum_portable,     sum_squares_portable,
                                              max_portable, softmax_portable, layer_norm_portable};

static bool g_force_portable;

void kiln_rowops_force_portable(bool force_portable)
{
    g_force_portable = force_portable;
}

const kiln_rowops_t *kiln_rowops_portable(void)
{
    return &ROWOPS_PORTABLE;
}

const kiln_rowops_t *kiln_rowops(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (!g_force_portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return kiln_rowops_avx2();
#endif
    return &ROWOPS_PORTABLE;
}
