/*
 * elementwise_avx2.c - the compute-bound float32 loops (exp, erf, log,
 * softplus, sigmoid, tanh, gelu) built again with AVX2 (the Makefile compiles *_avx2.c with
 * -mavx2 -mfma), so they run 8 lanes wide instead of 4.  The expressions
 * are the ones of elementwise.c and activation.c; the driver uses these
 * only after a run-time CPU check (elementwise_driver.c).
 */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")

#include <math.h>

#include "ops/elementwise.h"

KILN_UNARY_LOOP(exp_loop, float, float, kiln_expf(x))
KILN_UNARY_LOOP(erf_loop, float, float, kiln_erff(x))
KILN_UNARY_LOOP(log_loop, float, float, kiln_logf(x))
KILN_UNARY_LOOP(softplus_loop, float, float, kiln_softplusf(x))
KILN_UNARY_LOOP(sigmoid_loop, float, float, 1 / (1 + kiln_expf(-x)))
KILN_UNARY_LOOP(tanh_loop, float, float, kiln_tanhf(x))
KILN_UNARY_LOOP(gelu_erf_loop, float, float, 0.5f * x * (1 + kiln_erff(x * 0.70710678118654752440f)))
KILN_UNARY_LOOP(gelu_tanh_loop, float, float,
                0.5f * x * (1 + kiln_tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x))))

void kiln_exp_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    exp_loop(y, x, n, p);
}

void kiln_erf_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    erf_loop(y, x, n, p);
}

void kiln_log_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    log_loop(y, x, n, p);
}

void kiln_softplus_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    softplus_loop(y, x, n, p);
}

void kiln_sigmoid_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    sigmoid_loop(y, x, n, p);
}

void kiln_tanh_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    tanh_loop(y, x, n, p);
}

void kiln_gelu_erf_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    gelu_erf_loop(y, x, n, p);
}

void kiln_gelu_tanh_f32_avx2(void *y, const void *x, int64_t n, const kiln_elem_params_t *p)
{
    gelu_tanh_loop(y, x, n, p);
}
