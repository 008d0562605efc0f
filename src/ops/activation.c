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
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <tgmath.h>

#include "kiln.h"
#include "ops/elementwise.h"

/* The build's -O2 only vectorises loops whose trip count is known; these
 * loops run over any n, so ask for the full cost model here. */
#pragma GCC optimize("vect-cost-model=dynamic")

#define UN_SAME(NAME, T, EXPR) KILN_UNARY_LOOP(NAME, T, T, EXPR)
#define FLOAT_LOOPS(DEF, OP, EXPR) DEF(OP##_f32, float, EXPR) DEF(OP##_f64, double, EXPR)
#define SINT_LOOPS(DEF, OP, EXPR)                                                           \
    DEF(OP##_i8, int8_t, EXPR) DEF(OP##_i16, int16_t, EXPR) DEF(OP##_i32, int32_t, EXPR)    \
        DEF(OP##_i64, int64_t, EXPR)
#define UINT_LOOPS(DEF, OP, EXPR)                                                           \
    DEF(OP##_u8, uint8_t, EXPR) DEF(OP##_u16, uint16_t, EXPR)                               \
        DEF(OP##_u32, uint32_t, EXPR) DEF(OP##_u64, uint64_t, EXPR)
#define FLOAT_ENTRIES(OP) [KILN_DTYPE_FLOAT32] = OP##_f32, [KILN_DTYPE_FLOAT64] = OP##_f64
#define SINT_ENTRIES(OP)                                                                    \
    [KILN_DTYPE_INT8] = OP##_i8, [KILN_DTYPE_INT16] = OP##_i16,                             \
    [KILN_DTYPE_INT32] = OP##_i32, [KILN_DTYPE_INT64] = OP##_i64
#define UINT_ENTRIES(OP)                                                                    \
    [KILN_DTYPE_UINT8] = OP##_u8, [KILN_DTYPE_UINT16] = OP##_u16,                           \
    [KILN_DTYPE_UINT32] = OP##_u32, [KILN_DTYPE_UINT64] = OP##_u64

/* ---- Loops --------------------------------------------------------------- */

FLOAT_LOOPS(UN_SAME, relu, x > 0 ? x : 0)
SINT_LOOPS(UN_SAME, relu, x > 0 ? x : 0)
/* Split by sign so exp never overflows. */
FLOAT_LOOPS(UN_SAME, sigmoid, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)))
FLOAT_LOOPS(UN_SAME, tanh, tanh(x))
FLOAT_LOOPS(UN_SAME, elu, x < 0 ? alpha * (exp(x) - 1) : x)
FLOAT_LOOPS(UN_SAME, selu, x > 0 ? gamma * x : gamma * (alpha * exp(x) - alpha))
FLOAT_LOOPS(UN_SAME, leaky, x < 0 ? alpha * x : x)
/* v clamped to [0, 1]; NaN stays NaN. */
#define CLAMP01(v) ((v) < 0 ? 0 : (v) > 1 ? 1 : (v))
FLOAT_LOOPS(UN_SAME, hsigmoid, CLAMP01(alpha * x + beta))
FLOAT_LOOPS(UN_SAME, hswish, x * CLAMP01(x / 6 + (elem_t)0.5))
/* log(1 + e^x) without overflow for large x. */
FLOAT_LOOPS(UN_SAME, softplus, x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))
FLOAT_LOOPS(UN_SAME, softsign, x / (1 + fabs(x)))
FLOAT_LOOPS(UN_SAME, threlu, x > alpha ? x : 0)
/* Shrink: alpha = lambd, beta = bias; integers compare in double so a
 * fractional lambd keeps its meaning. */
#define SHRINK_EXPR                                                                         \
    (double)x < -p->alpha ? (double)x + p->beta : (double)x > p->alpha ? (double)x - p->beta : 0
FLOAT_LOOPS(UN_SAME, shrink, x < -alpha ? x + beta : x > alpha ? x - beta : 0)
SINT_LOOPS(UN_SAME, shrink, SHRINK_EXPR)
UINT_LOOPS(UN_SAME, shrink, SHRINK_EXPR)
FLOAT_LOOPS(UN_SAME, celu, (x > 0 ? x : 0) + (x < 0 ? alpha * (exp(x / alpha) - 1) : 0))
/* Gelu: exact with erf, or the tanh approximation (p->flag = 1). */
FLOAT_LOOPS(UN_SAME, gelu_erf, (elem_t)0.5 * x * (1 + erf(x * (elem_t)0.70710678118654752440)))
FLOAT_LOOPS(UN_SAME, gelu_tanh,
            (elem_t)0.5 * x * (1 + tanh((elem_t)0.79788456080286535588 * (x + (elem_t)0.044715 * x * x * x))))

#define FLOAT_OP(NAME, LOOP) static const kiln_unary_op_t NAME = {{FLOAT_ENTRIES(LOOP)}, false}

static const kiln_unary_op_t relu_op = {{FLOAT_ENTRIES(relu), SINT_ENTRIES(relu)}, false};
FLOAT_OP(sigmoid_op, sigmoid);
FLOAT_OP(tanh_op, tanh);
FLOAT_OP(elu_op, elu);
FLOAT_OP(selu_op, selu);
FLOAT_OP(leaky_op, leaky);
FLOAT_OP(hsigmoid_op, hsigmoid);
FLOAT_OP(hswish_op, hswish);
FLOAT_OP(softplus_op, softplus);
FLOAT_OP(softsign_op, softsign);
FLOAT_OP(threlu_op, threlu);
static const kiln_unary_op_t shrink_op = {
    {FLOAT_ENTRIES(shrink), SINT_ENTRIES(shrink), UINT_ENTRIES(shrink)}, false};
FLOAT_OP(celu_op, celu);
FLOAT_OP(gelu_erf_op, gelu_erf);
FLOAT_OP(gelu_tanh_op, gelu_tanh);

/* PRelu: y = x < 0 ? slope * x : x, slope broadcasting to x. */
KILN_BINARY_LOOP(prelu_f32, float, float, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_f64, double, double, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_i8, int8_t, int8_t, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_i16, int16_t, int16_t, a < 0 ? a * b : a)
KILN_BINARY_LOOP(prelu_i32, int32_t, int32_t, a < 0 ? (int32_t)((uint32_t)a * (uint32_t)b) : a)
KILN_BINARY_LOOP(prelu_i64, int64_t, int64_t, a < 0 ? (int64_t)((uint64_t)a * (uint64_t)b) : a)
static const kiln_binary_op_t prelu_op = {{FLOAT_ENTRIES(prelu), SINT_ENTRIES(prelu)}, false};

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
    {"Selu", 1, &selu_op, {"alpha", NULL, "gamma"},
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
        v[i] = a->names[i] ? (double)kiln_attr_float(node, a->names[i], (float)a->defaults[i])
                           : a->defaults[i];
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
    return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "no activation table for op %s",
                         node->op_type);
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
    if (kiln_ctx_opset(ctx) < 7 && x && slope && slope->rank == 1 && x->rank >= 2 &&
        slope->count > 1 && slope->dims[0] == x->dims[1]) {
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
        kiln_register(reg, &(kiln_kernel_t){.op = activations[i].op,
                                            .since = activations[i].since,
                                            .run = activation_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Gelu", .since = 20, .run = gelu_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "PRelu", .since = 1, .run = prelu_run});
}
