/*
 * test_elementwise_math.c - the vectorisable float32 exp, tanh and erf of
 * ops/elementwise.h against libm in double, over a dense sweep and at the
 * edges (overflow, underflow, NaN, signed zero).
 */
#include <float.h>
#include <math.h>

#include "check.h"
#include "ops/elementwise.h"

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

int main(void)
{
    test_exp();
    test_tanh();
    test_erf();
    return check_finish();
}
