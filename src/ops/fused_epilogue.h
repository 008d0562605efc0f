/*
 * fused_epilogue.h - the activation loops of the fused kernels (fused.c),
 * written once and compiled twice: for the baseline ISA in fused.c and
 * with AVX2+FMA in fused_avx2.c (picked at run time).
 *
 * Every loop is branch-free arithmetic so the compiler vectorizes it; GELU
 * uses a rational erf approximation instead of libm's erff (which would
 * stop vectorization): x * P(x^2) / Q(x^2) on x clamped to [-4, 4], the
 * polynomial Eigen and XLA use, within 2e-7 of erf in float32.
 */
#ifndef KILN_OPS_FUSED_EPILOGUE_H
#define KILN_OPS_FUSED_EPILOGUE_H

#include <stdint.h>

#include "ops/gemm.h" /* kiln_act_kind_t */


/* erf(x) in float32 without a library call (vectorizable). */
static inline float kiln_fast_erf(float x)
{
    x = x < -4.0f ? -4.0f : x;
    x = x > 4.0f ? 4.0f : x;
    float x2 = x * x;
    float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    p = x * p;
    float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    return p / q;
}

/* y[i] = act(y[i] + z[i] + bias) for i in [0, n) (z may be NULL); sigmoid
 * and tanh call libm. */
static inline void kiln_act_loop(kiln_act_kind_t kind, float alpha, float beta, float bias, const float *z,
                                 float *y, int64_t n, float (*expf_fn)(float), float (*tanhf_fn)(float))
{
    if (z)
        for (int64_t i = 0; i < n; i++)
            y[i] += z[i];
    if (bias != 0.0f)
        for (int64_t i = 0; i < n; i++)
            y[i] += bias;
    switch (kind) {
    case KILN_ACT_NONE:
        break;
    case KILN_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        break;
    case KILN_ACT_CLIP:
        for (int64_t i = 0; i < n; i++) {
            float v = y[i];
            v = alpha > v ? alpha : v;
            v = beta < v ? beta : v;
            y[i] = v;
        }
        break;
    case KILN_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) {
            float e = expf_fn(-(y[i] < 0.0f ? -y[i] : y[i])); /* exp(-|x|), no overflow */
            float s = 1.0f / (1.0f + e);
            y[i] = y[i] >= 0.0f ? s : 1.0f - s;
        }
        break;
    case KILN_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            y[i] = tanhf_fn(y[i]);
        break;
    case KILN_ACT_HARD_SIGMOID:
        for (int64_t i = 0; i < n; i++) {
            float v = alpha * y[i] + beta;
            v = v > 0.0f ? v : 0.0f;
            v = v < 1.0f ? v : 1.0f;
            y[i] = v;
        }
        break;
    case KILN_ACT_HARD_SWISH:
        for (int64_t i = 0; i < n; i++) {
            float v = y[i] * (1.0f / 6.0f) + 0.5f;
            v = v > 0.0f ? v : 0.0f;
            v = v < 1.0f ? v : 1.0f;
            y[i] *= v;
        }
        break;
    case KILN_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) {
            float v = y[i];
            y[i] = v < 0.0f ? alpha * v : v;
        }
        break;
    case KILN_ACT_GELU:
        for (int64_t i = 0; i < n; i++) {
            float v = y[i];
            y[i] = 0.5f * v * (1.0f + kiln_fast_erf(v * 0.70710678118654752f));
        }
        break;
    }
}

/* The AVX2+FMA build of kiln_act_loop (fused_avx2.c); call only when the
 * CPU has both. */
void kiln_act_loop_avx2(kiln_act_kind_t kind, float alpha, float beta, float bias, const float *z, float *y,
                        int64_t n);

#endif
