/*
 * activation.c - activation functions: Relu, Sigmoid, Tanh, Elu, Selu,
 * LeakyRelu, PRelu, HardSigmoid, HardSwish, Softplus, Softsign,
 * ThresholdedRelu, Shrink, Celu, Gelu.
 *
 * Like elementwise.c, each op is a table of per-dtype loops built from one
 * expression (see elementwise.h); the attribute values reach the loop as
 * alpha, beta and gamma.  A table of (op, attribute names, defaults) maps
 * each node's attributes onto those three numbers, so most ops need no
 * run function of their own.  PRelu is a broadcasting binary op (the slope
 * broadcasts to X).
 */
/* The build's -O2 vectorises only loops of known trip count, and its
 * -ftrapping-math keeps selects (x < 0 ? a : b) from becoming vector
 * blends; these loops run over any n and nobody reads float exception
 * flags, so this file asks for both.  Placed before the includes so the
 * inline math of elementwise.h gets the same options. */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <tgmath.h>

#include "kiln.h"
#include "ops/elementwise.h"

#define UN_SAME(NAME, T, EXPR) KILN_UNARY_LOOP(NAME, T, T, EXPR)
/* ---- Loops --------------------------------------------------------------- */

KILN_FLOAT_LOOPS(UN_SAME, relu, x > 0 ? x : 0)
KILN_SINT_LOOPS(UN_SAME, relu, x > 0 ? x : 0)
/* float32: one formula (kiln_expf saturates to inf, giving 0); double:
 * split by sign so exp never overflows. */
KILN_UNARY_LOOP(sigmoid_f32, float, float, 1 / (1 + kiln_expf(-x)))
KILN_UNARY_LOOP(sigmoid_f64, double, double, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)))
KILN_FLOAT_LOOPS(UN_SAME, tanh, KILN_TANH(x))
KILN_FLOAT_LOOPS(UN_SAME, elu, x < 0 ? alpha * (KILN_EXP(x) - 1) : x)
KILN_FLOAT_LOOPS(UN_SAME, selu, x > 0 ? gamma * x : gamma * (alpha * KILN_EXP(x) - alpha))
KILN_FLOAT_LOOPS(UN_SAME, leaky, x < 0 ? alpha * x : x)
/* v clamped to [0, 1]; NaN stays NaN. */
#define CLAMP01(v) ((v) < 0 ? 0 : (v) > 1 ? 1 : (v))
KILN_FLOAT_LOOPS(UN_SAME, hsigmoid, CLAMP01(alpha *x + beta))
KILN_FLOAT_LOOPS(UN_SAME, hswish, x *CLAMP01(x / 6 + (elem_t)0.5))
/* log(1 + e^x) without overflow for large x. */
KILN_UNARY_LOOP(softplus_f32, float, float, kiln_softplusf(x))
KILN_UNARY_LOOP(softplus_f64, double, double, x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))
KILN_FLOAT_LOOPS(UN_SAME, softsign, x / (1 + fabs(x)))
KILN_FLOAT_LOOPS(UN_SAME, threlu, x > alpha ? x : 0)
/* Shrink: alpha = lambd, beta = bias; integers compare in double so a
 * fractional lambd keeps its meaning. */
#define SHRINK_EXPR (double)x<-p->alpha ? (double)x + p->beta : (double)x> p->alpha ? (double)x - p->beta : 0
KILN_FLOAT_LOOPS(UN_SAME, shrink, x<-alpha ? x + beta : x> alpha ? x - beta : 0)
KILN_SINT_LOOPS(UN_SAME, shrink, SHRINK_EXPR)
KILN_UINT_LOOPS(UN_SAME, shrink, SHRINK_EXPR)
KILN_FLOAT_LOOPS(UN_SAME, celu, (x > 0 ? x : 0) + (x < 0 ? alpha * (KILN_EXP(x / alpha) - 1) : 0))
/* Gelu: exact with erf, or the tanh approximation (p->flag = 1). */
KILN_FLOAT_LOOPS(UN_SAME, gelu_erf, (elem_t)0.5 * x * (1 + KILN_ERF(x * (elem_t)0.70710678118654752440)))
KILN_FLOAT_LOOPS(UN_SAME, gelu_tanh,
                 (elem_t)0.5 * x *
                     (1 + KILN_TANH((elem_t)0.79788456080286535588 * (x + (elem_t)0.044715 * x * x * x))))

#define FLOAT_OP(NAME, LOOP) static const kiln_unary_op_t NAME = {{KILN_FLOAT_ENTRIES(LOOP)}, false, NULL}

static const kiln_unary_op_t relu_op = {{KILN_FLOAT_ENTRIES(relu), KILN_SINT_ENTRIES(relu)}, false, NULL};
/* Ops with an AVX2 build of their float32 loop (elementwise_avx2.c). */
#define FLOAT_OP_AVX2(NAME, LOOP, FAST)                                                                      \
    static const kiln_unary_op_t NAME = {{KILN_FLOAT_ENTRIES(LOOP)}, false, FAST}

FLOAT_OP_AVX2(sigmoid_op, sigmoid, kiln_sigmoid_f32_avx2);
FLOAT_OP_AVX2(tanh_op, tanh, kiln_tanh_f32_avx2);
FLOAT_OP(elu_op, elu);
FLOAT_OP(selu_op, selu);
FLOAT_OP(leaky_op, leaky);
FLOAT_OP(hsigmoid_op, hsigmoid);
FLOAT_OP(hswish_op, hswish);
FLOAT_OP_AVX2(softplus_op, softplus, kiln_softplus_f32_avx2);
FLOAT_OP(softsign_op, softsign);
FLOAT_OP(threlu_op, threlu);
static const kiln_unary_op_t shrink_op = {
    {KILN_FLOAT_ENTRIES(shrink), KILN_SINT_ENTRIES(shrink), KILN_UINT_ENTRIES(shrink)}, false, NULL};
FLOAT_OP(celu_op, celu);
FLOAT_OP_AVX2(gelu_erf_op, gelu_erf, kiln_gelu_erf_f32_avx2);
FLOAT_OP_AVX2(gelu_tanh_op, gelu_tanh, kiln_gelu_tanh_f32_avx2);

/* PRelu: y = x < 0 ? slope * x : x, slope broadcasting to x. */
KILN_BINARY_LOOP(prelu_f32, float, float, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_f64, double, double, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_i8, int8_t, int8_t, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_i16, int16_t, int16_t, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_i32, int32_t, int32_t, a < 0 ? (int32_t)((uint32_t)a * (uint32_t)b) : a)
KILN_BINARY_LOOP(prelu_i64, int64_t, int64_t, a < 0 ? (int64_t)((uint64_t)a * (uint64_t)b) : a)
static const kiln_binary_op_t prelu_op = {{KILN_FLOAT_ENTRIES(prelu), KILN_SINT_ENTRIES(prelu)}, false};

/* ---- Kernels ------------------------------------------------------------- */

/* An activation whose attributes (up to three floats) become alpha, beta,
 * gamma of its loop.  A NULL name leaves that number at its default. */
typedef struct activation {
    const char *op;
    int since;
    const kiln_unary_op_t *loops;
    const char *names[3];
    double defaults[3];
} activation_t;

static const activation_t activations[] = {
    {"Relu", 1, &relu_op, {0}, {0}},
    {"Sigmoid", 1, &sigmoid_op, {0}, {0}},
    {"Tanh", 1, &tanh_op, {0}, {0}},
    {"Elu", 1, &elu_op, {"alpha"}, {1.0}},
    {"Selu",
     1,
     &selu_op,
     {"alpha", NULL, "gamma"},
     {1.67326319217681884765625, 0, 1.05070102214813232421875}},
    {"LeakyRelu", 1, &leaky_op, {"alpha"}, {0.01}},
    {"HardSigmoid", 1, &hsigmoid_op, {"alpha", "beta"}, {0.2, 0.5}},
    {"HardSwish", 14, &hswish_op, {0}, {0}},
    {"Softplus", 1, &softplus_op, {0}, {0}},
    {"Softsign", 1, &softsign_op, {0}, {0}},
    {"ThresholdedRelu", 10, &threlu_op, {"alpha"}, {1.0}},
    {"Shrink", 9, &shrink_op, {"lambd", "bias"}, {0.5, 0.0}},
    {"Celu", 12, &celu_op, {"alpha"}, {1.0}},
};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Attribute values are float32 in ONNX; reading them as float keeps the
 * loops computing with exactly the value the exporter wrote. */
static kiln_elem_params_t read_params(const kiln_node_t *node, const activation_t *a)
{
    double v[3];
    for (int i = 0; i < 3; i++)
        v[i] =
            a->names[i] ? (double)kiln_attr_float(node, a->names[i], (float)a->defaults[i]) : a->defaults[i];
    return (kiln_elem_params_t){.alpha = v[0], .beta = v[1], .gamma = v[2]};
}

static kiln_status_t activation_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    for (int i = 0; i < COUNT_OF(activations); i++) {
        if (strcmp(activations[i].op, node->op_type))
            continue;
        kiln_elem_params_t p = read_params(node, &activations[i]);
        return kiln_unary_run(ctx, activations[i].loops, kiln_ctx_input(ctx, 0), 0, &p);
    }
    return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "no activation table for op %s", node->op_type);
}

static kiln_status_t gelu_run(kiln_kernel_ctx_t *ctx)
{
    const char *approx = kiln_attr_string(kiln_ctx_node(ctx), "approximate", "none");
    const kiln_unary_op_t *op;
    if (!strcmp(approx, "none"))
        op = &gelu_erf_op;
    else if (!strcmp(approx, "tanh"))
        op = &gelu_tanh_op;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL,
                             "approximate is \"%s\", expected \"none\" or \"tanh\"", approx);
    return kiln_unary_run(ctx, op, kiln_ctx_input(ctx, 0), 0, NULL);
}

/* Before opset 7 a slope of C values applied per channel (dim 1) of X; it
 * becomes [C,1,...,1] so numpy broadcasting does the same. */
static kiln_status_t prelu_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *slope = kiln_ctx_input(ctx, 1);
    kiln_tensor_t view;
    if (kiln_ctx_opset(ctx) < 7 && x && slope && slope->rank == 1 && x->rank >= 2 && slope->count > 1 &&
        slope->dims[0] == x->dims[1]) {
        view = *slope;
        view.owns_data = false;
        view.rank = x->rank - 1;
        for (int d = 1; d < view.rank; d++)
            view.dims[d] = 1;
        slope = &view;
    }
    return kiln_binary_run(ctx, &prelu_op, x, slope, 0, NULL);
}

void kiln_ops_register_activation(kiln_registry_t *reg)
{
    for (int i = 0; i < COUNT_OF(activations); i++)
        kiln_register(
            reg,
            &(kiln_kernel_t){.op = activations[i].op, .since = activations[i].since, .run = activation_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Gelu", .since = 20, .run = gelu_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "PRelu", .since = 1, .run = prelu_run});
}
