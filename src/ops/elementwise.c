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
/* The build's -O2 vectorises only loops of known trip count, and its
 * -ftrapping-math keeps selects (x < 0 ? a : b) from becoming vector
 * blends; these loops run over any n and nobody reads float exception
 * flags, so this file asks for both.  Placed before the includes so the
 * inline math of elementwise.h gets the same options. */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <tgmath.h>

#include "kiln.h"
#include "ops/broadcast.h"
#include "ops/elementwise.h"

/* ---- Instantiating loops per dtype -------------------------------------- */

/* A binary loop whose output has the input dtype, and one whose output is
 * bool (one byte 0/1). */
#define BIN_SAME(NAME, T, EXPR) KILN_BINARY_LOOP(NAME, T, T, EXPR)
#define BIN_BOOL(NAME, T, EXPR) KILN_BINARY_LOOP(NAME, T, bool, EXPR)
#define UN_SAME(NAME, T, EXPR) KILN_UNARY_LOOP(NAME, T, T, EXPR)
#define UN_BOOL(NAME, T, EXPR) KILN_UNARY_LOOP(NAME, T, bool, EXPR)

/* ---- Binary arithmetic --------------------------------------------------- */

KILN_FLOAT_LOOPS(BIN_SAME, add, a + b)
KILN_SINT_LOOPS(BIN_SAME, add, (uint64_t)a + (uint64_t)b)
KILN_UINT_LOOPS(BIN_SAME, add, (uint64_t)a + (uint64_t)b)
KILN_FLOAT_LOOPS(BIN_SAME, sub, a - b)
KILN_SINT_LOOPS(BIN_SAME, sub, (uint64_t)a - (uint64_t)b)
KILN_UINT_LOOPS(BIN_SAME, sub, (uint64_t)a - (uint64_t)b)
KILN_FLOAT_LOOPS(BIN_SAME, mul, a *b)
KILN_SINT_LOOPS(BIN_SAME, mul, (uint64_t)a *(uint64_t)b)
KILN_UINT_LOOPS(BIN_SAME, mul, (uint64_t)a *(uint64_t)b)
KILN_FLOAT_LOOPS(BIN_SAME, div, a / b)
/* x / -1 is negation, done in uint64_t so INT_MIN / -1 does not trap. */
KILN_SINT_LOOPS(BIN_SAME, div, b == 0 ? 0 : b == -1 ? -(uint64_t)a : (uint64_t)(a / b))
KILN_UINT_LOOPS(BIN_SAME, div, b == 0 ? 0 : a / b)

/* Mod, fmod=1: the remainder has the dividend's sign (C fmod and %). */
KILN_FLOAT_LOOPS(BIN_SAME, modt, fmod(a, b))
KILN_SINT_LOOPS(BIN_SAME, modt, b == 0 || b == -1 ? 0 : a % b)
KILN_UINT_LOOPS(BIN_SAME, modt, b == 0 ? 0 : a % b)
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
KILN_FLOAT_LOOPS(BIN_SAME, modf, floor_mod_f64(a, b))
KILN_SINT_LOOPS(BIN_SAME, modf, floor_mod_i64(a, b))
KILN_UINT_LOOPS(BIN_SAME, modf, b == 0 ? 0 : a % b)

/* Shifts by the width of the type or more give 0 (C leaves them undefined). */
KILN_UINT_LOOPS(BIN_SAME, shl, b >= 8 * sizeof a ? 0 : (uint64_t)a << b)
KILN_UINT_LOOPS(BIN_SAME, shr, b >= 8 * sizeof a ? 0 : a >> b)

/* Max and Min pass NaN through, like numpy. */
KILN_FLOAT_LOOPS(BIN_SAME, max, (a != a || a > b) ? a : b)
KILN_SINT_LOOPS(BIN_SAME, max, a > b ? a : b)
KILN_UINT_LOOPS(BIN_SAME, max, a > b ? a : b)
KILN_FLOAT_LOOPS(BIN_SAME, min, (a != a || a < b) ? a : b)
KILN_SINT_LOOPS(BIN_SAME, min, a < b ? a : b)
KILN_UINT_LOOPS(BIN_SAME, min, a < b ? a : b)

/* Pow with the base's dtype; mixed dtypes go through pow_mixed below. */
KILN_FLOAT_LOOPS(BIN_SAME, pow, pow(a, b))

static const kiln_binary_op_t add_op = {{KILN_NUMERIC_ENTRIES(add)}, false};
static const kiln_binary_op_t sub_op = {{KILN_NUMERIC_ENTRIES(sub)}, false};
static const kiln_binary_op_t mul_op = {{KILN_NUMERIC_ENTRIES(mul)}, false};
static const kiln_binary_op_t div_op = {{KILN_NUMERIC_ENTRIES(div)}, false};
static const kiln_binary_op_t mod_trunc_op = {{KILN_NUMERIC_ENTRIES(modt)}, false};
static const kiln_binary_op_t mod_floor_op = {{KILN_NUMERIC_ENTRIES(modf)}, false};
static const kiln_binary_op_t shl_op = {{KILN_UINT_ENTRIES(shl)}, false};
static const kiln_binary_op_t shr_op = {{KILN_UINT_ENTRIES(shr)}, false};
static const kiln_binary_op_t max_op = {{KILN_NUMERIC_ENTRIES(max)}, false};
static const kiln_binary_op_t min_op = {{KILN_NUMERIC_ENTRIES(min)}, false};
static const kiln_binary_op_t pow_op = {{KILN_FLOAT_ENTRIES(pow)}, false};

/* ---- Logic and comparison ------------------------------------------------ */

BIN_SAME(and_b, uint8_t, (a & b))
BIN_SAME(or_b, uint8_t, (a | b))
BIN_SAME(xor_b, uint8_t, (a ^ b))

KILN_FLOAT_LOOPS(BIN_BOOL, eq, a == b)
KILN_SINT_LOOPS(BIN_BOOL, eq, a == b)
KILN_UINT_LOOPS(BIN_BOOL, eq, a == b)
KILN_FLOAT_LOOPS(BIN_BOOL, gt, a > b)
KILN_SINT_LOOPS(BIN_BOOL, gt, a > b)
KILN_UINT_LOOPS(BIN_BOOL, gt, a > b)
KILN_FLOAT_LOOPS(BIN_BOOL, ge, a >= b)
KILN_SINT_LOOPS(BIN_BOOL, ge, a >= b)
KILN_UINT_LOOPS(BIN_BOOL, ge, a >= b)
KILN_FLOAT_LOOPS(BIN_BOOL, lt, a < b)
KILN_SINT_LOOPS(BIN_BOOL, lt, a < b)
KILN_UINT_LOOPS(BIN_BOOL, lt, a < b)
KILN_FLOAT_LOOPS(BIN_BOOL, le, a <= b)
KILN_SINT_LOOPS(BIN_BOOL, le, a <= b)
KILN_UINT_LOOPS(BIN_BOOL, le, a <= b)

static const kiln_binary_op_t and_op = {{[KILN_DTYPE_BOOL] = and_b}, false};
static const kiln_binary_op_t or_op = {{[KILN_DTYPE_BOOL] = or_b}, false};
static const kiln_binary_op_t xor_op = {{[KILN_DTYPE_BOOL] = xor_b}, false};
static const kiln_binary_op_t eq_op = {{KILN_NUMERIC_ENTRIES(eq), [KILN_DTYPE_BOOL] = eq_u8}, true};
static const kiln_binary_op_t gt_op = {{KILN_NUMERIC_ENTRIES(gt)}, true};
static const kiln_binary_op_t ge_op = {{KILN_NUMERIC_ENTRIES(ge)}, true};
static const kiln_binary_op_t lt_op = {{KILN_NUMERIC_ENTRIES(lt)}, true};
static const kiln_binary_op_t le_op = {{KILN_NUMERIC_ENTRIES(le)}, true};

/* ---- Unary math ---------------------------------------------------------- */

KILN_FLOAT_LOOPS(UN_SAME, abs, fabs(x))
KILN_SINT_LOOPS(UN_SAME, abs, x < 0 ? -(uint64_t)x : (uint64_t)x)
KILN_UINT_LOOPS(UN_SAME, abs, x)
KILN_FLOAT_LOOPS(UN_SAME, neg, -x)
KILN_SINT_LOOPS(UN_SAME, neg, -(uint64_t)x)
KILN_FLOAT_LOOPS(UN_SAME, sign, x > 0 ? 1 : x < 0 ? -1 : x) /* keeps 0 and NaN */
KILN_SINT_LOOPS(UN_SAME, sign, (x > 0) - (x < 0))
KILN_UINT_LOOPS(UN_SAME, sign, x > 0)
KILN_FLOAT_LOOPS(UN_SAME, recip, 1 / x)
KILN_FLOAT_LOOPS(UN_SAME, sqrt, sqrt(x))
KILN_FLOAT_LOOPS(UN_SAME, exp, KILN_EXP(x))
KILN_FLOAT_LOOPS(UN_SAME, log, KILN_LOG(x))
KILN_FLOAT_LOOPS(UN_SAME, ceil, ceil(x))
KILN_FLOAT_LOOPS(UN_SAME, floor, floor(x))
KILN_FLOAT_LOOPS(UN_SAME, round, rint(x)) /* default rounding mode: half to even */
KILN_FLOAT_LOOPS(UN_SAME, sin, sin(x))
KILN_FLOAT_LOOPS(UN_SAME, cos, cos(x))
KILN_FLOAT_LOOPS(UN_SAME, tan, tan(x))
KILN_FLOAT_LOOPS(UN_SAME, asin, asin(x))
KILN_FLOAT_LOOPS(UN_SAME, acos, acos(x))
KILN_FLOAT_LOOPS(UN_SAME, atan, atan(x))
KILN_FLOAT_LOOPS(UN_SAME, sinh, sinh(x))
KILN_FLOAT_LOOPS(UN_SAME, cosh, cosh(x))
KILN_FLOAT_LOOPS(UN_SAME, asinh, asinh(x))
KILN_FLOAT_LOOPS(UN_SAME, acosh, acosh(x))
KILN_FLOAT_LOOPS(UN_SAME, atanh, atanh(x))
KILN_FLOAT_LOOPS(UN_SAME, erf, KILN_ERF(x))
KILN_FLOAT_LOOPS(UN_BOOL, isnan, x != x)
/* p->flag bit 0: detect +inf, bit 1: detect -inf. */
KILN_FLOAT_LOOPS(UN_BOOL, isinf, ((p->flag & 1) && x == INFINITY) || ((p->flag & 2) && x == -INFINITY))
UN_SAME(not_b, uint8_t, !x)
/* Scaling by p->alpha (Mean's final divide). */
KILN_FLOAT_LOOPS(UN_SAME, scale, x *alpha)

static const kiln_unary_op_t abs_op = {{KILN_NUMERIC_ENTRIES(abs)}, false, NULL};
static const kiln_unary_op_t neg_op = {{KILN_FLOAT_ENTRIES(neg), KILN_SINT_ENTRIES(neg)}, false, NULL};
static const kiln_unary_op_t sign_op = {{KILN_NUMERIC_ENTRIES(sign)}, false, NULL};
/* Pow by a constant exponent (see pow_shortcut). */
KILN_FLOAT_LOOPS(UN_SAME, square, x *x)
KILN_FLOAT_LOOPS(UN_SAME, cube, x *x *x)
KILN_FLOAT_LOOPS(UN_SAME, identity, x)
/* pow(x, 0.5) differs from sqrt at -0 (gives +0) and -inf (gives +inf). */
KILN_FLOAT_LOOPS(UN_SAME, sqrt_pow, x == -INFINITY ? INFINITY : sqrt(x) + 0)
static const kiln_unary_op_t square_op = {{KILN_FLOAT_ENTRIES(square)}, false, NULL};
static const kiln_unary_op_t cube_op = {{KILN_FLOAT_ENTRIES(cube)}, false, NULL};
static const kiln_unary_op_t identity_op = {{KILN_FLOAT_ENTRIES(identity)}, false, NULL};
static const kiln_unary_op_t sqrt_pow_op = {{KILN_FLOAT_ENTRIES(sqrt_pow)}, false, NULL};

static const kiln_unary_op_t recip_op = {{KILN_FLOAT_ENTRIES(recip)}, false, NULL};
static const kiln_unary_op_t sqrt_op = {{KILN_FLOAT_ENTRIES(sqrt)}, false, NULL};
static const kiln_unary_op_t exp_op = {{KILN_FLOAT_ENTRIES(exp)}, false, kiln_exp_f32_avx2};
static const kiln_unary_op_t log_op = {{KILN_FLOAT_ENTRIES(log)}, false, kiln_log_f32_avx2};
static const kiln_unary_op_t ceil_op = {{KILN_FLOAT_ENTRIES(ceil)}, false, NULL};
static const kiln_unary_op_t floor_op = {{KILN_FLOAT_ENTRIES(floor)}, false, NULL};
static const kiln_unary_op_t round_op = {{KILN_FLOAT_ENTRIES(round)}, false, NULL};
static const kiln_unary_op_t sin_op = {{KILN_FLOAT_ENTRIES(sin)}, false, NULL};
static const kiln_unary_op_t cos_op = {{KILN_FLOAT_ENTRIES(cos)}, false, NULL};
static const kiln_unary_op_t tan_op = {{KILN_FLOAT_ENTRIES(tan)}, false, NULL};
static const kiln_unary_op_t asin_op = {{KILN_FLOAT_ENTRIES(asin)}, false, NULL};
static const kiln_unary_op_t acos_op = {{KILN_FLOAT_ENTRIES(acos)}, false, NULL};
static const kiln_unary_op_t atan_op = {{KILN_FLOAT_ENTRIES(atan)}, false, NULL};
static const kiln_unary_op_t sinh_op = {{KILN_FLOAT_ENTRIES(sinh)}, false, NULL};
static const kiln_unary_op_t cosh_op = {{KILN_FLOAT_ENTRIES(cosh)}, false, NULL};
static const kiln_unary_op_t asinh_op = {{KILN_FLOAT_ENTRIES(asinh)}, false, NULL};
static const kiln_unary_op_t acosh_op = {{KILN_FLOAT_ENTRIES(acosh)}, false, NULL};
static const kiln_unary_op_t atanh_op = {{KILN_FLOAT_ENTRIES(atanh)}, false, NULL};
static const kiln_unary_op_t erf_op = {{KILN_FLOAT_ENTRIES(erf)}, false, kiln_erf_f32_avx2};
static const kiln_unary_op_t isnan_op = {{KILN_FLOAT_ENTRIES(isnan)}, true, NULL};
static const kiln_unary_op_t isinf_op = {{KILN_FLOAT_ENTRIES(isinf)}, true, NULL};
static const kiln_unary_op_t not_op = {{[KILN_DTYPE_BOOL] = not_b}, false, NULL};
static const kiln_unary_op_t scale_op = {{KILN_FLOAT_ENTRIES(scale)}, false, NULL};

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
    {"Add", 1, &add_op},    {"Sub", 1, &sub_op},
    {"Mul", 1, &mul_op},    {"Div", 1, &div_op},
    {"And", 1, &and_op},    {"Or", 1, &or_op},
    {"Xor", 1, &xor_op},    {"Equal", 1, &eq_op},
    {"Greater", 1, &gt_op}, {"GreaterOrEqual", 12, &ge_op},
    {"Less", 1, &lt_op},    {"LessOrEqual", 12, &le_op},
};

static const unary_entry_t unary_ops[] = {
    {"Abs", 1, &abs_op},     {"Neg", 1, &neg_op},      {"Sign", 9, &sign_op},   {"Reciprocal", 1, &recip_op},
    {"Sqrt", 1, &sqrt_op},   {"Exp", 1, &exp_op},      {"Log", 1, &log_op},     {"Ceil", 1, &ceil_op},
    {"Floor", 1, &floor_op}, {"Round", 11, &round_op}, {"Sin", 7, &sin_op},     {"Cos", 7, &cos_op},
    {"Tan", 7, &tan_op},     {"Asin", 7, &asin_op},    {"Acos", 7, &acos_op},   {"Atan", 7, &atan_op},
    {"Sinh", 9, &sinh_op},   {"Cosh", 9, &cosh_op},    {"Asinh", 9, &asinh_op}, {"Acosh", 9, &acosh_op},
    {"Atanh", 9, &atanh_op}, {"Erf", 9, &erf_op},      {"IsNaN", 9, &isnan_op}, {"Not", 1, &not_op},
};

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Equal on strings (opset 19): byte-wise comparison, broadcasting. */
typedef struct str_eq_job {
    char *const *a, *const *b;
    bool *y;
} str_eq_job_t;

static void str_eq_row(void *arg, int64_t out, const int64_t *off, const int64_t *step, int64_t len)
{
    const str_eq_job_t *j = arg;
    for (int64_t i = 0; i < len; i++) {
        const char *a = j->a[off[0] + i * step[0]], *b = j->b[off[1] + i * step[1]];
        j->y[out + i] = strcmp(a ? a : "", b ? b : "") == 0;
    }
}

static kiln_status_t equal_strings(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    if (b->dtype != KILN_DTYPE_STRING)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "inputs are string and %s",
                             kiln_dtype_name(b->dtype));
    kiln_bcast_t bc;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    const kiln_tensor_t *ts[2] = {a, b};
    if (kiln_bcast_tensors(&bc, 2, ts, &rank, dims) != KILN_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", kiln_last_error());
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s", why);
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_BOOL, rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    str_eq_job_t j = {a->data, b->data, y->data};
    kiln_bcast_rows(&bc, 0, bc.count, str_eq_row, &j);
    return KILN_OK;
}

static kiln_status_t binary_table_run(kiln_kernel_ctx_t *ctx)
{
    const char *name = kiln_ctx_node(ctx)->op_type;
    for (int i = 0; i < COUNT_OF(binary_ops); i++)
        if (!strcmp(binary_ops[i].name, name)) {
            const kiln_tensor_t *a = kiln_ctx_input(ctx, 0);
            if (a && a->dtype == KILN_DTYPE_STRING && binary_ops[i].op == &eq_op && kiln_ctx_input(ctx, 1))
                return equal_strings(ctx, a, kiln_ctx_input(ctx, 1));
            kiln_tensor_t view;
            const kiln_tensor_t *b = kiln_legacy_broadcast_view(ctx, a, kiln_ctx_input(ctx, 1), &view);
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

static void pow_mixed_row(void *arg, int64_t out, const int64_t *off, const int64_t *step, int64_t len)
{
    pow_job_t *j = arg;
    for (int64_t i = 0; i < len; i++) {
        double base = kiln_tensor_get_f64(j->x, off[0] + i * step[0]);
        double ex = kiln_tensor_get_f64(j->e, off[1] + i * step[1]);
        kiln_tensor_set_f64(j->y, out + i, pow(base, ex));
    }
}

/* Pow of a float tensor by one constant exponent that has a cheaper form
 * (x^2 in exported LayerNorm and variance code, x^0.5, x^-1...; exact but
 * for x^3, within an ulp): the unary loop for it, or NULL.  The exponent must not broadcast x to a
 * larger rank. */
static const kiln_unary_op_t *pow_shortcut(const kiln_tensor_t *x, const kiln_tensor_t *e)
{
    if (!kiln_dtype_is_float(x->dtype) || e->count != 1 || e->rank > x->rank ||
        e->dtype == KILN_DTYPE_STRING || e->dtype == KILN_DTYPE_BOOL)
        return NULL;
    double v = kiln_tensor_get_f64(e, 0);
    if (v == 2)
        return &square_op;
    if (v == 3)
        return &cube_op;
    if (v == 1)
        return &identity_op;
    if (v == 0.5)
        return &sqrt_pow_op;
    if (v == -1)
        return &recip_op;
    return NULL;
}

static kiln_status_t pow_run(kiln_kernel_ctx_t *ctx)
{
    kiln_tensor_t view;
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *e = kiln_legacy_broadcast_view(ctx, x, kiln_ctx_input(ctx, 1), &view);
    if (!x || !e)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "Pow needs two inputs");
    const kiln_unary_op_t *shortcut = pow_shortcut(x, e);
    if (shortcut)
        return kiln_unary_run(ctx, shortcut, x, 0, NULL);
    if (x->dtype == e->dtype && kiln_dtype_is_float(x->dtype))
        return kiln_binary_run(ctx, &pow_op, x, e, 0, NULL);
    if (x->dtype == KILN_DTYPE_STRING || e->dtype == KILN_DTYPE_STRING || x->dtype == KILN_DTYPE_BOOL)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "Pow of %s by %s", kiln_dtype_name(x->dtype),
                             kiln_dtype_name(e->dtype));
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
static kiln_status_t fold_variadic(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op, kiln_tensor_t **out)
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
        kiln_register(reg, &(kiln_kernel_t){
                               .op = unary_ops[i].name, .since = unary_ops[i].since, .run = unary_table_run});
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
