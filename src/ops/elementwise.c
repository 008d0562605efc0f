/*
 * elementwise.c - elementwise math with numpy broadcasting: arithmetic
 * (Add Sub Mul Div Pow Mod BitShift), logic (And Or Xor Not), comparison
 * (Equal Greater Less ...), variadic Max Min Sum Mean, unary math (Abs ...
 * Erf, IsNaN, IsInf).  Where, Clip and Cast live in elementwise_cast.c.
 *
 * Each op is a table of tight loops, one per dtype, instantiated from one
 * C expression by the small macros below; the driver in
 * elementwise_driver.c does broadcasting, threading and float16/bfloat16.
 * Kernels find their table by op name, so one run function serves every
 * op of a shape (unary, binary).  <tgmath.h> lets one expression such as
 * `sqrt(x)` be the float and the double loop.
 *
 * Integer semantics: + - * wrap (computed in uint64_t, so no signed
 * overflow), Div truncates like C and gives 0 for a zero divisor instead of
 * trapping, Mod with fmod=0 takes the divisor's sign like Python.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <tgmath.h>

#include "kiln.h"
#include "ops/broadcast.h"
#include "ops/elementwise.h"

/* The build's -O2 only vectorises loops whose trip count is known; these
 * loops run over any n, so ask for the full cost model here. */
#pragma GCC optimize("vect-cost-model=dynamic")

/* ---- Instantiating loops per dtype -------------------------------------- */

/* A binary loop whose output has the input dtype, and one whose output is
 * bool (one byte 0/1). */
#define BIN_SAME(NAME, T, EXPR) KILN_BINARY_LOOP(NAME, T, T, EXPR)
#define BIN_BOOL(NAME, T, EXPR) KILN_BINARY_LOOP(NAME, T, bool, EXPR)
#define UN_SAME(NAME, T, EXPR) KILN_UNARY_LOOP(NAME, T, T, EXPR)
#define UN_BOOL(NAME, T, EXPR) KILN_UNARY_LOOP(NAME, T, bool, EXPR)

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
#define NUMERIC_ENTRIES(OP) FLOAT_ENTRIES(OP), SINT_ENTRIES(OP), UINT_ENTRIES(OP)

/* ---- Binary arithmetic --------------------------------------------------- */

FLOAT_LOOPS(BIN_SAME, add, a + b)
SINT_LOOPS(BIN_SAME, add, (uint64_t)a + (uint64_t)b)
UINT_LOOPS(BIN_SAME, add, (uint64_t)a + (uint64_t)b)
FLOAT_LOOPS(BIN_SAME, sub, a - b)
SINT_LOOPS(BIN_SAME, sub, (uint64_t)a - (uint64_t)b)
UINT_LOOPS(BIN_SAME, sub, (uint64_t)a - (uint64_t)b)
FLOAT_LOOPS(BIN_SAME, mul, a * b)
SINT_LOOPS(BIN_SAME, mul, (uint64_t)a * (uint64_t)b)
UINT_LOOPS(BIN_SAME, mul, (uint64_t)a * (uint64_t)b)
FLOAT_LOOPS(BIN_SAME, div, a / b)
/* x / -1 is negation, done in uint64_t so INT_MIN / -1 does not trap. */
SINT_LOOPS(BIN_SAME, div, b == 0 ? 0 : b == -1 ? -(uint64_t)a : (uint64_t)(a / b))
UINT_LOOPS(BIN_SAME, div, b == 0 ? 0 : a / b)

/* Mod, fmod=1: the remainder has the dividend's sign (C fmod and %). */
FLOAT_LOOPS(BIN_SAME, modt, fmod(a, b))
SINT_LOOPS(BIN_SAME, modt, b == 0 || b == -1 ? 0 : a % b)
UINT_LOOPS(BIN_SAME, modt, b == 0 ? 0 : a % b)
/* Mod, fmod=0: the remainder has the divisor's sign (Python %). */
static inline int64_t floor_mod_i64(int64_t a, int64_t b)
{
    if (b == 0 || b == -1)
        return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline double floor_mod_f64(double a, double b)
{
    double r = fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
FLOAT_LOOPS(BIN_SAME, modf, floor_mod_f64(a, b))
SINT_LOOPS(BIN_SAME, modf, floor_mod_i64(a, b))
UINT_LOOPS(BIN_SAME, modf, b == 0 ? 0 : a % b)

/* Shifts by the width of the type or more give 0 (C leaves them undefined). */
UINT_LOOPS(BIN_SAME, shl, b >= 8 * sizeof a ? 0 : (uint64_t)a << b)
UINT_LOOPS(BIN_SAME, shr, b >= 8 * sizeof a ? 0 : a >> b)

/* Max and Min pass NaN through, like numpy. */
FLOAT_LOOPS(BIN_SAME, max, (a != a || a > b) ? a : b)
SINT_LOOPS(BIN_SAME, max, a > b ? a : b)
UINT_LOOPS(BIN_SAME, max, a > b ? a : b)
FLOAT_LOOPS(BIN_SAME, min, (a != a || a < b) ? a : b)
SINT_LOOPS(BIN_SAME, min, a < b ? a : b)
UINT_LOOPS(BIN_SAME, min, a < b ? a : b)

/* Pow with the base's dtype; mixed dtypes go through pow_mixed below. */
FLOAT_LOOPS(BIN_SAME, pow, pow(a, b))

static const kiln_binary_op_t add_op = {{NUMERIC_ENTRIES(add)}, false};
static const kiln_binary_op_t sub_op = {{NUMERIC_ENTRIES(sub)}, false};
static const kiln_binary_op_t mul_op = {{NUMERIC_ENTRIES(mul)}, false};
static const kiln_binary_op_t div_op = {{NUMERIC_ENTRIES(div)}, false};
static const kiln_binary_op_t mod_trunc_op = {{NUMERIC_ENTRIES(modt)}, false};
static const kiln_binary_op_t mod_floor_op = {{NUMERIC_ENTRIES(modf)}, false};
static const kiln_binary_op_t shl_op = {{UINT_ENTRIES(shl)}, false};
static const kiln_binary_op_t shr_op = {{UINT_ENTRIES(shr)}, false};
static const kiln_binary_op_t max_op = {{NUMERIC_ENTRIES(max)}, false};
static const kiln_binary_op_t min_op = {{NUMERIC_ENTRIES(min)}, false};
static const kiln_binary_op_t pow_op = {{FLOAT_ENTRIES(pow)}, false};

/* ---- Logic and comparison ------------------------------------------------ */

BIN_SAME(and_b, uint8_t, a & b)
BIN_SAME(or_b, uint8_t, a | b)
BIN_SAME(xor_b, uint8_t, a ^ b)

FLOAT_LOOPS(BIN_BOOL, eq, a == b)
SINT_LOOPS(BIN_BOOL, eq, a == b)
UINT_LOOPS(BIN_BOOL, eq, a == b)
FLOAT_LOOPS(BIN_BOOL, gt, a > b)
SINT_LOOPS(BIN_BOOL, gt, a > b)
UINT_LOOPS(BIN_BOOL, gt, a > b)
FLOAT_LOOPS(BIN_BOOL, ge, a >= b)
SINT_LOOPS(BIN_BOOL, ge, a >= b)
UINT_LOOPS(BIN_BOOL, ge, a >= b)
FLOAT_LOOPS(BIN_BOOL, lt, a < b)
SINT_LOOPS(BIN_BOOL, lt, a < b)
UINT_LOOPS(BIN_BOOL, lt, a < b)
FLOAT_LOOPS(BIN_BOOL, le, a <= b)
SINT_LOOPS(BIN_BOOL, le, a <= b)
UINT_LOOPS(BIN_BOOL, le, a <= b)

static const kiln_binary_op_t and_op = {{[KILN_DTYPE_BOOL] = and_b}, false};
static const kiln_binary_op_t or_op = {{[KILN_DTYPE_BOOL] = or_b}, false};
static const kiln_binary_op_t xor_op = {{[KILN_DTYPE_BOOL] = xor_b}, false};
static const kiln_binary_op_t eq_op = {{NUMERIC_ENTRIES(eq), [KILN_DTYPE_BOOL] = eq_u8}, true};
static const kiln_binary_op_t gt_op = {{NUMERIC_ENTRIES(gt)}, true};
static const kiln_binary_op_t ge_op = {{NUMERIC_ENTRIES(ge)}, true};
static const kiln_binary_op_t lt_op = {{NUMERIC_ENTRIES(lt)}, true};
static const kiln_binary_op_t le_op = {{NUMERIC_ENTRIES(le)}, true};

/* ---- Unary math ---------------------------------------------------------- */

FLOAT_LOOPS(UN_SAME, abs, fabs(x))
SINT_LOOPS(UN_SAME, abs, x < 0 ? -(uint64_t)x : (uint64_t)x)
UINT_LOOPS(UN_SAME, abs, x)
FLOAT_LOOPS(UN_SAME, neg, -x)
SINT_LOOPS(UN_SAME, neg, -(uint64_t)x)
FLOAT_LOOPS(UN_SAME, sign, x > 0 ? 1 : x < 0 ? -1 : x) /* keeps 0 and NaN */
SINT_LOOPS(UN_SAME, sign, (x > 0) - (x < 0))
UINT_LOOPS(UN_SAME, sign, x > 0)
FLOAT_LOOPS(UN_SAME, recip, 1 / x)
FLOAT_LOOPS(UN_SAME, sqrt, sqrt(x))
FLOAT_LOOPS(UN_SAME, exp, exp(x))
FLOAT_LOOPS(UN_SAME, log, log(x))
FLOAT_LOOPS(UN_SAME, ceil, ceil(x))
FLOAT_LOOPS(UN_SAME, floor, floor(x))
FLOAT_LOOPS(UN_SAME, round, rint(x)) /* default rounding mode: half to even */
FLOAT_LOOPS(UN_SAME, sin, sin(x))
FLOAT_LOOPS(UN_SAME, cos, cos(x))
FLOAT_LOOPS(UN_SAME, tan, tan(x))
FLOAT_LOOPS(UN_SAME, asin, asin(x))
FLOAT_LOOPS(UN_SAME, acos, acos(x))
FLOAT_LOOPS(UN_SAME, atan, atan(x))
FLOAT_LOOPS(UN_SAME, sinh, sinh(x))
FLOAT_LOOPS(UN_SAME, cosh, cosh(x))
FLOAT_LOOPS(UN_SAME, asinh, asinh(x))
FLOAT_LOOPS(UN_SAME, acosh, acosh(x))
FLOAT_LOOPS(UN_SAME, atanh, atanh(x))
FLOAT_LOOPS(UN_SAME, erf, erf(x))
FLOAT_LOOPS(UN_BOOL, isnan, x != x)
/* p->flag bit 0: detect +inf, bit 1: detect -inf. */
FLOAT_LOOPS(UN_BOOL, isinf, ((p->flag & 1) && x == INFINITY) || ((p->flag & 2) && x == -INFINITY))
UN_SAME(not_b, uint8_t, !x)
/* Scaling by p->alpha (Mean's final divide). */
FLOAT_LOOPS(UN_SAME, scale, x * (p->alpha))

static const kiln_unary_op_t abs_op = {{NUMERIC_ENTRIES(abs)}, false};
static const kiln_unary_op_t neg_op = {{FLOAT_ENTRIES(neg), SINT_ENTRIES(neg)}, false};
static const kiln_unary_op_t sign_op = {{NUMERIC_ENTRIES(sign)}, false};
static const kiln_unary_op_t recip_op = {{FLOAT_ENTRIES(recip)}, false};
static const kiln_unary_op_t sqrt_op = {{FLOAT_ENTRIES(sqrt)}, false};
static const kiln_unary_op_t exp_op = {{FLOAT_ENTRIES(exp)}, false};
static const kiln_unary_op_t log_op = {{FLOAT_ENTRIES(log)}, false};
static const kiln_unary_op_t ceil_op = {{FLOAT_ENTRIES(ceil)}, false};
static const kiln_unary_op_t floor_op = {{FLOAT_ENTRIES(floor)}, false};
static const kiln_unary_op_t round_op = {{FLOAT_ENTRIES(round)}, false};
static const kiln_unary_op_t sin_op = {{FLOAT_ENTRIES(sin)}, false};
static const kiln_unary_op_t cos_op = {{FLOAT_ENTRIES(cos)}, false};
static const kiln_unary_op_t tan_op = {{FLOAT_ENTRIES(tan)}, false};
static const kiln_unary_op_t asin_op = {{FLOAT_ENTRIES(asin)}, false};
static const kiln_unary_op_t acos_op = {{FLOAT_ENTRIES(acos)}, false};
static const kiln_unary_op_t atan_op = {{FLOAT_ENTRIES(atan)}, false};
static const kiln_unary_op_t sinh_op = {{FLOAT_ENTRIES(sinh)}, false};
static const kiln_unary_op_t cosh_op = {{FLOAT_ENTRIES(cosh)}, false};
static const kiln_unary_op_t asinh_op = {{FLOAT_ENTRIES(asinh)}, false};
static const kiln_unary_op_t acosh_op = {{FLOAT_ENTRIES(acosh)}, false};
static const kiln_unary_op_t atanh_op = {{FLOAT_ENTRIES(atanh)}, false};
static const kiln_unary_op_t erf_op = {{FLOAT_ENTRIES(erf)}, false};
static const kiln_unary_op_t isnan_op = {{FLOAT_ENTRIES(isnan)}, true};
static const kiln_unary_op_t isinf_op = {{FLOAT_ENTRIES(isinf)}, true};
static const kiln_unary_op_t not_op = {{[KILN_DTYPE_BOOL] = not_b}, false};
static const kiln_unary_op_t scale_op = {{FLOAT_ENTRIES(scale)}, false};

/* ---- Kernels ------------------------------------------------------------- */

/* Op name -> loop table, for the kernels that are just "run this table". */
typedef struct binary_entry {
    const char *name;
    int since;
    const kiln_binary_op_t *op;
} binary_entry_t;

typedef struct unary_entry {
    const char *name;
    int since;
    const kiln_unary_op_t *op;
} unary_entry_t;

static const binary_entry_t binary_ops[] = {
    {"Add", 1, &add_op},          {"Sub", 1, &sub_op},         {"Mul", 1, &mul_op},
    {"Div", 1, &div_op},          {"And", 1, &and_op},         {"Or", 1, &or_op},
    {"Xor", 1, &xor_op},          {"Equal", 1, &eq_op},        {"Greater", 1, &gt_op},
    {"GreaterOrEqual", 12, &ge_op}, {"Less", 1, &lt_op},       {"LessOrEqual", 12, &le_op},
};

static const unary_entry_t unary_ops[] = {
    {"Abs", 1, &abs_op},     {"Neg", 1, &neg_op},     {"Sign", 9, &sign_op},
    {"Reciprocal", 1, &recip_op}, {"Sqrt", 1, &sqrt_op}, {"Exp", 1, &exp_op},
    {"Log", 1, &log_op},     {"Ceil", 1, &ceil_op},   {"Floor", 1, &floor_op},
    {"Round", 11, &round_op}, {"Sin", 7, &sin_op},    {"Cos", 7, &cos_op},
    {"Tan", 7, &tan_op},     {"Asin", 7, &asin_op},   {"Acos", 7, &acos_op},
    {"Atan", 7, &atan_op},   {"Sinh", 9, &sinh_op},   {"Cosh", 9, &cosh_op},
    {"Asinh", 9, &asinh_op}, {"Acosh", 9, &acosh_op}, {"Atanh", 9, &atanh_op},
    {"Erf", 9, &erf_op},     {"IsNaN", 9, &isnan_op}, {"Not", 1, &not_op},
};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static kiln_status_t binary_table_run(kiln_kernel_ctx_t *ctx)
{
    const char *name = kiln_ctx_node(ctx)->op_type;
    for (int i = 0; i < COUNT_OF(binary_ops); i++)
        if (!strcmp(binary_ops[i].name, name)) {
            const kiln_tensor_t *a = kiln_ctx_input(ctx, 0);
            kiln_tensor_t view;
            const kiln_tensor_t *b = kiln_legacy_broadcast_view(ctx, a, kiln_ctx_input(ctx, 1),
                                                                &view);
            return kiln_binary_run(ctx, binary_ops[i].op, a, b, 0, NULL);
        }
    return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "no binary table for op %s", name);
}

static kiln_status_t unary_table_run(kiln_kernel_ctx_t *ctx)
{
    const char *name = kiln_ctx_node(ctx)->op_type;
    for (int i = 0; i < COUNT_OF(unary_ops); i++)
        if (!strcmp(unary_ops[i].name, name))
            return kiln_unary_run(ctx, unary_ops[i].op, kiln_ctx_input(ctx, 0), 0, NULL);
    return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "no unary table for op %s", name);
}

static kiln_status_t isinf_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    kiln_elem_params_t p = {0};
    p.flag = (kiln_attr_int(node, "detect_positive", 1) ? 1 : 0) |
             (kiln_attr_int(node, "detect_negative", 1) ? 2 : 0);
    return kiln_unary_run(ctx, &isinf_op, kiln_ctx_input(ctx, 0), 0, &p);
}

static kiln_status_t mod_run(kiln_kernel_ctx_t *ctx)
{
    bool use_fmod = kiln_attr_int(kiln_ctx_node(ctx), "fmod", 0) != 0;
    return kiln_binary_run(ctx, use_fmod ? &mod_trunc_op : &mod_floor_op, kiln_ctx_input(ctx, 0),
                           kiln_ctx_input(ctx, 1), 0, NULL);
}

static kiln_status_t bitshift_run(kiln_kernel_ctx_t *ctx)
{
    const char *dir = kiln_attr_string(kiln_ctx_node(ctx), "direction", "");
    const kiln_binary_op_t *op;
    if (!strcmp(dir, "LEFT"))
        op = &shl_op;
    else if (!strcmp(dir, "RIGHT"))
        op = &shr_op;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL,
                             "direction is \"%s\", expected \"LEFT\" or \"RIGHT\"", dir);
    return kiln_binary_run(ctx, op, kiln_ctx_input(ctx, 0), kiln_ctx_input(ctx, 1), 0, NULL);
}

/* Pow where base and exponent dtypes differ (float ^ int, int ^ float):
 * each pair goes through double; the output has the base's dtype. */
typedef struct pow_job {
    const kiln_tensor_t *x, *e;
    kiln_tensor_t *y;
} pow_job_t;

static void pow_mixed_row(void *arg, int64_t out, const int64_t *off, const int64_t *step,
                          int64_t len)
{
    pow_job_t *j = arg;
    for (int64_t i = 0; i < len; i++) {
        double base = kiln_tensor_get_f64(j->x, off[0] + i * step[0]);
        double ex = kiln_tensor_get_f64(j->e, off[1] + i * step[1]);
        kiln_tensor_set_f64(j->y, out + i, pow(base, ex));
    }
}

static kiln_status_t pow_run(kiln_kernel_ctx_t *ctx)
{
    kiln_tensor_t view;
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *e = kiln_legacy_broadcast_view(ctx, x, kiln_ctx_input(ctx, 1), &view);
    if (!x || !e)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "Pow needs two inputs");
    if (x->dtype == e->dtype && kiln_dtype_is_float(x->dtype))
        return kiln_binary_run(ctx, &pow_op, x, e, 0, NULL);
    if (x->dtype == KILN_DTYPE_STRING || e->dtype == KILN_DTYPE_STRING ||
        x->dtype == KILN_DTYPE_BOOL)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "Pow of %s by %s",
                             kiln_dtype_name(x->dtype), kiln_dtype_name(e->dtype));
    kiln_bcast_t bc;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    const kiln_tensor_t *ts[2] = {x, e};
    if (kiln_bcast_tensors(&bc, 2, ts, &rank, dims) != KILN_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", kiln_last_error());
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s", why);
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    pow_job_t j = {x, e, y};
    kiln_bcast_rows(&bc, 0, bc.count, pow_mixed_row, &j);
    return KILN_OK;
}

/* Max, Min, Sum, Mean: fold the inputs pairwise, each step broadcasting
 * the running result with the next input; the last step writes the
 * output.  One input is copied through. */
static kiln_status_t fold_variadic(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op,
                                   kiln_tensor_t **out)
{
    int n = kiln_ctx_input_count(ctx);
    const kiln_tensor_t *first = kiln_ctx_input(ctx, 0);
    if (n < 1 || !first)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "needs at least one input");
    for (int i = 1; i < n; i++)
        if (!kiln_ctx_input(ctx, i))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "input %d is missing", i);
    /* The output shape of all inputs, checked up front. */
    int rank = first->rank;
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, first->dims, sizeof dims);
    for (int i = 1; i < n; i++) {
        const kiln_tensor_t *t = kiln_ctx_input(ctx, i);
        int ranks[2] = {rank, t->rank};
        const int64_t *ds[2] = {dims, t->dims};
        int64_t nd[KILN_MAX_RANK];
        if (kiln_broadcast_shape(2, ranks, ds, &rank, nd) != KILN_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", kiln_last_error());
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input %d: %s", i, why);
        }
        memcpy(dims, nd, sizeof dims);
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, first->dtype, rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    *out = y;
    if (n == 1) {
        if (first->nbytes)
            memcpy(y->data, first->data, first->nbytes);
        return KILN_OK;
    }
    /* Intermediate results go to a scratch tensor of the running shape. */
    const kiln_tensor_t *acc = first;
    kiln_tensor_t *scratch = NULL;
    kiln_status_t st = KILN_OK;
    for (int i = 1; i < n && st == KILN_OK; i++) {
        const kiln_tensor_t *t = kiln_ctx_input(ctx, i);
        kiln_tensor_t *dst = y;
        if (i < n - 1) {
            int r;
            int64_t d[KILN_MAX_RANK];
            const kiln_tensor_t *ts[2] = {acc, t};
            kiln_broadcast_tensors(2, ts, &r, d);
            dst = kiln_tensor_new(first->dtype, r, d);
            if (!dst) {
                st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for a partial result");
                break;
            }
        }
        st = kiln_binary_into(ctx, op, acc, t, dst, NULL);
        if (scratch)
            kiln_tensor_free(scratch);
        scratch = dst == y ? NULL : dst;
        acc = dst;
    }
    if (scratch)
        kiln_tensor_free(scratch);
    return st;
}

static kiln_status_t max_run(kiln_kernel_ctx_t *ctx)
{
    kiln_tensor_t *y;
    return fold_variadic(ctx, &max_op, &y);
}

static kiln_status_t min_run(kiln_kernel_ctx_t *ctx)
{
    kiln_tensor_t *y;
    return fold_variadic(ctx, &min_op, &y);
}

static kiln_status_t sum_run(kiln_kernel_ctx_t *ctx)
{
    kiln_tensor_t *y;
    return fold_variadic(ctx, &add_op, &y);
}

static kiln_status_t mean_run(kiln_kernel_ctx_t *ctx)
{
    kiln_tensor_t *y = NULL;
    kiln_status_t st = fold_variadic(ctx, &add_op, &y);
    if (st != KILN_OK)
        return st;
    kiln_elem_params_t p = {.alpha = 1.0 / kiln_ctx_input_count(ctx)};
    return kiln_unary_into(ctx, &scale_op, y, y, &p);
}

void kiln_ops_register_elementwise(kiln_registry_t *reg)
{
    for (int i = 0; i < COUNT_OF(binary_ops); i++)
        kiln_register(reg, &(kiln_kernel_t){.op = binary_ops[i].name,
                                            .since = binary_ops[i].since,
                                            .run = binary_table_run});
    for (int i = 0; i < COUNT_OF(unary_ops); i++)
        kiln_register(reg, &(kiln_kernel_t){.op = unary_ops[i].name,
                                            .since = unary_ops[i].since,
                                            .run = unary_table_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "IsInf", .since = 10, .run = isinf_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Mod", .since = 10, .run = mod_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "BitShift", .since = 11, .run = bitshift_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Pow", .since = 1, .run = pow_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Max", .since = 1, .run = max_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Min", .since = 1, .run = min_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Sum", .since = 1, .run = sum_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Mean", .since = 1, .run = mean_run});
    kiln_register_elementwise_cast(reg);
}
