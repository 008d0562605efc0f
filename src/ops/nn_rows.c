/*
 * nn_rows.c - run-time choice between the AVX2 and the plain-loop row
 * primitives of nn_rows.h.
 */
#include "ops/nn_rows.h"

#include <stdbool.h>

static bool have_avx2(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
}

void kiln_row_axpy(float *y, const float *x, int64_t stride, float a, int64_t n)
{
    if (have_avx2()) {
        kiln_row_axpy_avx2(y, x, stride, a, n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i * stride];
}

void kiln_row_max(float *y, const float *x, int64_t stride, int64_t n)
{
    if (have_avx2()) {
        kiln_row_max_avx2(y, x, stride, n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i * stride] > y[i] ? x[i * stride] : y[i];
}
