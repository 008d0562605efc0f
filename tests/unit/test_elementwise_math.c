/*
 * test_elementwise_math.c - the vectorisable float32 exp, tanh, erf, log and softplus of
 * ops/elementwise.h against libm in double, over a dense sweep and at the
 * edges (overflow, underflow, NaN, signed zero).
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "core/half.h"
#include "ops/elementwise.h"
#include "ops/half_convert.h"

/* Relative error in units of float32 epsilon. */
static double rel_err_eps(double got, double want)
{
    if (want == 0)
        return fabs(got) / FLT_MIN;
    return fabs(got - want) / fabs(want) / FLT_EPSILON;
}

static void test_exp(void)
{
    double worst = 0, worst_x = 0;
    for (float x = -87.0f; x <= 88.7f; x += 0.0137f) {
        double e = rel_err_eps(kiln_expf(x), exp((double)x));
        if (e > worst) {
            worst = e;
            worst_x = x;
        }
    }
    printf("exp worst %.2f eps\n", worst);
    CHECK_MSG(worst < 4, "worst %.2f eps at x=%g", worst, worst_x);
    CHECK(kiln_expf(0.0f) == 1.0f);
    CHECK(isinf(kiln_expf(89.0f)) && kiln_expf(89.0f) > 0);
    CHECK(isinf(kiln_expf(INFINITY)));
    CHECK(kiln_expf(-INFINITY) == 0.0f);
    CHECK(kiln_expf(-200.0f) == 0.0f);
    CHECK(isnan(kiln_expf(NAN)));
    CHECK(kiln_expf(88.7f) > 3.0e38f);
}

static void test_tanh(void)
{
    double worst = 0, worst_x = 0;
    for (float x = -12.0f; x <= 12.0f; x += 0.00071f) {
        double want = tanh((double)x);
        double e = fabs(kiln_tanhf(x) - want) / (fabs(want) + 1e-30) / FLT_EPSILON;
        if (e > worst) {
            worst = e;
            worst_x = x;
        }
    }
    printf("tanh worst %.2f eps\n", worst);
    CHECK_MSG(worst < 8, "worst %.2f eps at x=%g", worst, worst_x);
    CHECK(kiln_tanhf(0.0f) == 0.0f);
    CHECK(kiln_tanhf(1e-6f) == 1e-6f);
    CHECK(kiln_tanhf(100.0f) == 1.0f && kiln_tanhf(-100.0f) == -1.0f);
    CHECK(kiln_tanhf(INFINITY) == 1.0f && kiln_tanhf(-INFINITY) == -1.0f);
    CHECK(isnan(kiln_tanhf(NAN)));
}

static void test_erf(void)
{
    double worst = 0, worst_x = 0, worst_abs = 0;
    for (float x = -6.0f; x <= 6.0f; x += 0.00037f) {
        double want = erf((double)x);
        double got = kiln_erff(x);
        double e = fabs(got - want) / (fabs(want) + 1e-30) / FLT_EPSILON;
        if (fabs(got - want) > worst_abs)
            worst_abs = fabs(got - want);
        if (e > worst) {
            worst = e;
            worst_x = x;
        }
    }
    printf("erf worst %.2f eps (abs %.3g)\n", worst, worst_abs);
    CHECK_MSG(worst < 16, "worst %.2f eps at x=%g", worst, worst_x);
    CHECK(kiln_erff(0.0f) == 0.0f);
    CHECK(kiln_erff(10.0f) == 1.0f && kiln_erff(-10.0f) == -1.0f);
    CHECK(kiln_erff(INFINITY) == 1.0f);
    CHECK(isnan(kiln_erff(NAN)));
    CHECK(kiln_erff(1e-7f) > 1.1e-7f && kiln_erff(1e-7f) < 1.13e-7f);
}

static void test_log_softplus(void)
{
    double worst = 0, worst_x = 0;
    for (float x = 1e-30f; x < 1e30f; x *= 1.0137f) {
        double want = log((double)x);
        double e = fabs(kiln_logf(x) - want) / (fabs(want) + 1e-30) / FLT_EPSILON;
        if (fabs(want) > 1e-3 && e > worst) {
            worst = e;
            worst_x = x;
        }
    }
    printf("log worst %.2f eps\n", worst);
    CHECK_MSG(worst < 4, "worst %.2f eps at x=%g", worst, worst_x);
    int bad = 0; /* near 1 the absolute error matters */
    for (float x = 0.5f; x < 2.0f; x += 0.0001f)
        bad += fabs(kiln_logf(x) - log((double)x)) >= 2e-7;
    CHECK_MSG(bad == 0, "%d values near 1 off by 2e-7 or more", bad);
    CHECK(kiln_logf(1.0f) == 0.0f);
    CHECK(fabs(kiln_logf(1e-40f) - log(1e-40)) < 1e-4); /* subnormal */
    CHECK(isinf(kiln_logf(0.0f)) && kiln_logf(0.0f) < 0);
    CHECK(isnan(kiln_logf(-1.0f)) && isnan(kiln_logf(NAN)));
    CHECK(isinf(kiln_logf(INFINITY)) && kiln_logf(INFINITY) > 0);

    worst = 0;
    for (float x = -87.0f; x <= 100.0f; x += 0.0031f) { /* normal-range results */
        double want = x > 0 ? x + log1p(exp(-(double)x)) : log1p(exp((double)x));
        double e = fabs(kiln_softplusf(x) - want) / want / FLT_EPSILON;
        if (e > worst) {
            worst = e;
            worst_x = x;
        }
    }
    printf("softplus worst %.2f eps\n", worst);
    CHECK_MSG(worst < 8, "worst %.2f eps at x=%g", worst, worst_x);
    CHECK(kiln_softplusf(INFINITY) == INFINITY);
    CHECK(kiln_softplusf(-INFINITY) == 0.0f);
}

/* The array conversions (F16C where present) match half.h bit for bit:
 * every float16, and float32 values around every float16 (ties, subnormals,
 * overflow, NaN). */
static void test_half_arrays(void)
{
    static uint16_t h[65536], back[65536 * 4];
    static float f[65536], g[65536 * 4];
    for (int i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    kiln_half_to_f32_array(f, h, 65536, KILN_DTYPE_FLOAT16);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        float want = kiln_f16_to_f32(h[i]);
        if (memcmp(&want, &f[i], sizeof want) && !(isnan(want) && isnan(f[i])))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d float16 -> float32 mismatches", bad);
    for (int i = 0; i < 65536; i++) {
        uint32_t bits;
        memcpy(&bits, &f[i], sizeof bits);
        for (int k = 0; k < 4; k++) {
            uint32_t b = bits + (uint32_t)(k == 0 ? 0 : k == 1 ? 0x1000 : k == 2 ? 0xfff : 0x1001);
            memcpy(&g[i * 4 + k], &b, sizeof b);
        }
    }
    for (int dt = 0; dt < 2; dt++) {
        kiln_dtype_t d = dt ? KILN_DTYPE_BFLOAT16 : KILN_DTYPE_FLOAT16;
        kiln_f32_to_half_array(back, g, 65536 * 4, d);
        bad = 0;
        for (int i = 0; i < 65536 * 4; i++) {
            uint16_t want = dt ? kiln_f32_to_bf16(g[i]) : kiln_f32_to_f16(g[i]);
            if (want != back[i] && !isnan(g[i]))
                bad++;
        }
        CHECK_MSG(bad == 0, "%d float32 -> %s mismatches", bad, dt ? "bfloat16" : "float16");
    }
}

int main(void)
{
    test_exp();
    test_tanh();
    test_erf();
    test_half_arrays();
    test_log_softplus();
    return check_finish();
}
