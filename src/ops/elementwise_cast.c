/*
 * elementwise_cast.c - the elementwise ops that are not one expression over
 * one dtype: Where (three-way broadcast, any dtype), Clip (bounds from
 * attributes or inputs), Cast and CastLike (every pair of dtypes).
 *
 * Cast keeps one plain conversion loop per (source, target) pair of the
 * eleven native dtypes, so the common float <-> int casts vectorise; the
 * 16-bit floats pass through float32 in stack blocks, and strings are
 * printed like numpy prints numbers (shortest text that reads back to the
 * same value) and parsed with strtod, which accepts "NaN", "INF", "-INF".
 */
/* The build's -O2 vectorises only loops of known trip count, and its
 * -ftrapping-math keeps selects (x < 0 ? a : b) from becoming vector
 * blends; these loops run over any n and nobody reads float exception
 * flags, so this file asks for both.  Placed before the includes so the
 * inline math of elementwise.h gets the same options. */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "kiln.h"
#include "ops/broadcast.h"
#include "ops/elementwise.h"
#include "ops/half_convert.h"

#define GRAIN 16384
#define BLOCK 1024

/* ---- Where --------------------------------------------------------------- */

typedef struct where_job {
    const kiln_bcast_t *bc;
    const uint8_t *cond;
    const char *x, *y;
    char *out;
    size_t size; /* element size in bytes */
} where_job_t;

/* Copies x or y elements by the condition, with a typed loop per element
 * size so the copy is a plain load and store. */
#define WHERE_ROW(T)                                                                                         \
    do {                                                                                                     \
        const T *restrict xs = (const T *)j->x + off[1];                                                     \
        const T *restrict ys = (const T *)j->y + off[2];                                                     \
        const uint8_t *restrict cs = c;                                                                      \
        T *restrict o = (T *)j->out + out;                                                                   \
        if (step[0] && step[1] && step[2]) { /* same shapes: a loop that vectorises */                       \
            for (int64_t i = 0; i < len; i++) {                                                              \
                T xv = xs[i], yv = ys[i]; /* both loaded, so the select needs no branch */                   \
                o[i] = cs[i] ? xv : yv;                                                                      \
            }                                                                                                \
        } else {                                                                                             \
            for (int64_t i = 0; i < len; i++)                                                                \
                o[i] = cs[i * step[0]] ? xs[i * step[1]] : ys[i * step[2]];                                  \
        }                                                                                                    \
    } while (0)

static void where_row(void *arg, int64_t out, const int64_t *off, const int64_t *step, int64_t len)
{
    const where_job_t *j = arg;
    const uint8_t *c = j->cond + off[0];
    switch (j->size) {
    case 1:
        WHERE_ROW(uint8_t);
        break;
    case 2:
        WHERE_ROW(uint16_t);
        break;
    case 4:
        WHERE_ROW(uint32_t);
        break;
    case 8:
        WHERE_ROW(uint64_t);
        break;
    default:
        for (int64_t i = 0; i < len; i++) {
            const char *src = c[i * step[0]] ? j->x + (off[1] + i * step[1]) * j->size
                                             : j->y + (off[2] + i * step[2]) * j->size;
            memcpy(j->out + (out + i) * j->size, src, j->size);
        }
    }
}

static void where_chunk(void *arg, int64_t begin, int64_t end)
{
    const where_job_t *j = arg;
    kiln_bcast_rows(j->bc, begin, end, where_row, arg);
}

/* Strings: each output element is a fresh copy. */
typedef struct where_str_job {
    const uint8_t *cond;
    char *const *x, *const *y;
    char **out;
    bool failed;
} where_str_job_t;

static void where_str_row(void *arg, int64_t out, const int64_t *off, const int64_t *step, int64_t len)
{
    where_str_job_t *j = arg;
    for (int64_t i = 0; i < len; i++) {
        const char *s =
            j->cond[off[0] + i * step[0]] ? j->x[off[1] + i * step[1]] : j->y[off[2] + i * step[2]];
        j->out[out + i] = strdup(s ? s : "");
        if (!j->out[out + i])
            j->failed = true;
    }
}

static kiln_status_t fail_with_last_error(kiln_kernel_ctx_t *ctx, kiln_status_t st)
{
    char why[512];
    snprintf(why, sizeof why, "%s", kiln_last_error());
    return kiln_ctx_fail(ctx, st, "%s", why);
}

static kiln_status_t where_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *c = kiln_ctx_input(ctx, 0), *x = kiln_ctx_input(ctx, 1), *y = kiln_ctx_input(ctx, 2);
    if (!c || !x || !y)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "Where needs three inputs");
    if (c->dtype != KILN_DTYPE_BOOL)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "condition is %s, expected bool",
                             kiln_dtype_name(c->dtype));
    if (x->dtype != y->dtype)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X is %s but Y is %s", kiln_dtype_name(x->dtype),
                             kiln_dtype_name(y->dtype));
    kiln_bcast_t bc;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    const kiln_tensor_t *ts[3] = {c, x, y};
    if (kiln_bcast_tensors(&bc, 3, ts, &rank, dims) != KILN_OK)
        return fail_with_last_error(ctx, KILN_ERR_INVALID_ARGUMENT);
    kiln_tensor_t *out = kiln_ctx_output(ctx, 0, x->dtype, rank, dims);
    if (!out)
        return kiln_ctx_status(ctx);
    if (out->count == 0)
        return KILN_OK;
    if (x->dtype == KILN_DTYPE_STRING) {
        where_str_job_t j = {c->data, x->data, y->data, out->data, false};
        kiln_bcast_rows(&bc, 0, bc.count, where_str_row, &j);
        return j.failed ? kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings") : KILN_OK;
    }
    where_job_t j = {&bc, c->data, x->data, y->data, out->data, kiln_dtype_size(x->dtype)};
    kiln_ctx_parallel_for(ctx, out->count, GRAIN, where_chunk, &j);
    return KILN_OK;
}

/* ---- Clip ---------------------------------------------------------------- */

/* alpha = low bound, beta = high bound; NaN passes through.  Integers
 * compare in double so an absent bound can be +-inf. */
#define CLIP_FLOAT(NAME, T) KILN_UNARY_LOOP(NAME, T, T, x<alpha ? alpha : x> beta ? beta : x)
#define CLIP_INT(NAME, T)                                                                                    \
    KILN_UNARY_LOOP(NAME, T, T, (double)x<p->alpha ? (T)p->alpha : (double)x> p->beta ? (T)p->beta : x)
CLIP_FLOAT(clip_f32, float)
CLIP_FLOAT(clip_f64, double)
CLIP_INT(clip_i8, int8_t)
CLIP_INT(clip_i16, int16_t)
CLIP_INT(clip_i32, int32_t)
CLIP_INT(clip_i64, int64_t)
CLIP_INT(clip_u8, uint8_t)
CLIP_INT(clip_u16, uint16_t)
CLIP_INT(clip_u32, uint32_t)
CLIP_INT(clip_u64, uint64_t)

static const kiln_unary_op_t clip_op = {{
                                            [KILN_DTYPE_FLOAT32] = clip_f32,
                                            [KILN_DTYPE_FLOAT64] = clip_f64,
                                            [KILN_DTYPE_INT8] = clip_i8,
                                            [KILN_DTYPE_INT16] = clip_i16,
                                            [KILN_DTYPE_INT32] = clip_i32,
                                            [KILN_DTYPE_INT64] = clip_i64,
                                            [KILN_DTYPE_UINT8] = clip_u8,
                                            [KILN_DTYPE_UINT16] = clip_u16,
                                            [KILN_DTYPE_UINT32] = clip_u32,
                                            [KILN_DTYPE_UINT64] = clip_u64,
                                        },
                                        false,
                                        NULL};

/* Reads the bound in input slot i (a scalar or one-element tensor); keeps
 * *bound when the input is omitted. */
static kiln_status_t read_bound(kiln_kernel_ctx_t *ctx, int i, const kiln_tensor_t *x, double *bound)
{
    const kiln_tensor_t *t = kiln_ctx_input(ctx, i);
    if (!t)
        return KILN_OK;
    if (t->count != 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s must hold one element, it has %lld",
                             i == 1 ? "min" : "max", (long long)t->count);
    if (t->dtype != x->dtype)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s is %s but input is %s",
                             i == 1 ? "min" : "max", kiln_dtype_name(t->dtype), kiln_dtype_name(x->dtype));
    *bound = kiln_tensor_get_f64(t, 0);
    return KILN_OK;
}

static kiln_status_t clip_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "input is missing");
    kiln_elem_params_t p = {.alpha = -INFINITY, .beta = INFINITY};
    if (kiln_ctx_opset(ctx) < 11) {
        const kiln_node_t *node = kiln_ctx_node(ctx);
        if (kiln_node_attr(node, "min"))
            p.alpha = kiln_attr_float(node, "min", 0);
        if (kiln_node_attr(node, "max"))
            p.beta = kiln_attr_float(node, "max", 0);
    } else {
        kiln_status_t st = read_bound(ctx, 1, x, &p.alpha);
        if (st == KILN_OK)
            st = read_bound(ctx, 2, x, &p.beta);
        if (st != KILN_OK)
            return st;
    }
    return kiln_unary_run(ctx, &clip_op, x, 0, &p);
}

/* ---- Cast between numeric dtypes ----------------------------------------- */

typedef void (*cast_fn)(void *y, const void *x, int64_t n);

#define CAST_LOOP(S, TS, D, TD)                                                                              \
    static void cast_##S##_##D(void *yv, const void *xv, int64_t n)                                          \
    {                                                                                                        \
        TD *restrict y = yv;                                                                                 \
        const TS *restrict x = xv;                                                                           \
        for (int64_t i = 0; i < n; i++)                                                                      \
            y[i] = (TD)x[i];                                                                                 \
    }
/* Float to integer: C leaves out-of-range conversions undefined, so values
 * are saturated to the destination's range and NaN becomes 0 (what ONNX
 * Runtime's x86 kernels produce for the in-range cases, and defined for
 * the rest). */
#define CAST_SATURATE(S, TS, D, TD, LO, HI)                                                                  \
    static void cast_##S##_##D(void *yv, const void *xv, int64_t n)                                          \
    {                                                                                                        \
        TD *restrict y = yv;                                                                                 \
        const TS *restrict x = xv;                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                                    \
            TS v = x[i];                                                                                     \
            y[i] = v != v ? (TD)0 : v <= (TS)(LO) ? (TD)(LO) : v >= (TS)(HI) ? (TD)(HI) : (TD)v;             \
        }                                                                                                    \
    }
/* clang-format off */
#define CAST_FROM_FLOAT(S, TS)                                                                               \
    CAST_LOOP(S, TS, f32, float)                                                                             \
    CAST_LOOP(S, TS, f64, double)                                                                            \
    CAST_SATURATE(S, TS, i8, int8_t, INT8_MIN, INT8_MAX)                                                     \
    CAST_SATURATE(S, TS, i16, int16_t, INT16_MIN, INT16_MAX)                                                 \
    CAST_SATURATE(S, TS, i32, int32_t, INT32_MIN, INT32_MAX)                                                 \
    CAST_SATURATE(S, TS, i64, int64_t, INT64_MIN, INT64_MAX)                                                 \
    CAST_SATURATE(S, TS, u8, uint8_t, 0, UINT8_MAX)                                                          \
    CAST_SATURATE(S, TS, u16, uint16_t, 0, UINT16_MAX)                                                       \
    CAST_SATURATE(S, TS, u32, uint32_t, 0, UINT32_MAX)                                                       \
    CAST_SATURATE(S, TS, u64, uint64_t, 0, UINT64_MAX)                                                       \
    CAST_LOOP(S, TS, b, bool)
#define CAST_FROM(S, TS)                                                                                     \
    CAST_LOOP(S, TS, f32, float)                                                                             \
    CAST_LOOP(S, TS, f64, double)                                                                            \
    CAST_LOOP(S, TS, i8, int8_t)                                                                             \
    CAST_LOOP(S, TS, i16, int16_t)                                                                           \
    CAST_LOOP(S, TS, i32, int32_t)                                                                           \
    CAST_LOOP(S, TS, i64, int64_t)                                                                           \
    CAST_LOOP(S, TS, u8, uint8_t)                                                                            \
    CAST_LOOP(S, TS, u16, uint16_t)                                                                          \
    CAST_LOOP(S, TS, u32, uint32_t)                                                                          \
    CAST_LOOP(S, TS, u64, uint64_t)                                                                          \
    CAST_LOOP(S, TS, b, bool)
/* clang-format on */

CAST_FROM_FLOAT(f32, float)
CAST_FROM_FLOAT(f64, double)
CAST_FROM(i8, int8_t)
CAST_FROM(i16, int16_t)
CAST_FROM(i32, int32_t)
CAST_FROM(i64, int64_t)
CAST_FROM(u8, uint8_t)
CAST_FROM(u16, uint16_t)
CAST_FROM(u32, uint32_t)
CAST_FROM(u64, uint64_t)
CAST_FROM(b, bool)

#define CAST_ROW(S)                                                                                          \
    {                                                                                                        \
        [KILN_DTYPE_FLOAT32] = cast_##S##_f32, [KILN_DTYPE_FLOAT64] = cast_##S##_f64,                        \
        [KILN_DTYPE_INT8] = cast_##S##_i8, [KILN_DTYPE_INT16] = cast_##S##_i16,                              \
        [KILN_DTYPE_INT32] = cast_##S##_i32, [KILN_DTYPE_INT64] = cast_##S##_i64,                            \
        [KILN_DTYPE_UINT8] = cast_##S##_u8, [KILN_DTYPE_UINT16] = cast_##S##_u16,                            \
        [KILN_DTYPE_UINT32] = cast_##S##_u32, [KILN_DTYPE_UINT64] = cast_##S##_u64,                          \
        [KILN_DTYPE_BOOL] = cast_##S##_b,                                                                    \
    }

/* cast_table[source][target] */
static const cast_fn cast_table[KILN_DTYPE_COUNT_][KILN_DTYPE_COUNT_] = {
    [KILN_DTYPE_FLOAT32] = CAST_ROW(f32), [KILN_DTYPE_FLOAT64] = CAST_ROW(f64),
    [KILN_DTYPE_INT8] = CAST_ROW(i8),     [KILN_DTYPE_INT16] = CAST_ROW(i16),
    [KILN_DTYPE_INT32] = CAST_ROW(i32),   [KILN_DTYPE_INT64] = CAST_ROW(i64),
    [KILN_DTYPE_UINT8] = CAST_ROW(u8),    [KILN_DTYPE_UINT16] = CAST_ROW(u16),
    [KILN_DTYPE_UINT32] = CAST_ROW(u32),  [KILN_DTYPE_UINT64] = CAST_ROW(u64),
    [KILN_DTYPE_BOOL] = CAST_ROW(b),
};

static bool is_half(kiln_dtype_t dt)
{
    return dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16;
}

static uint16_t f32_to_half(float f, kiln_dtype_t dt)
{
    return dt == KILN_DTYPE_FLOAT16 ? kiln_f32_to_f16(f) : kiln_f32_to_bf16(f);
}

typedef struct cast_job {
    const char *x;
    char *y;
    kiln_dtype_t from, to;
    size_t xsz, ysz;
} cast_job_t;

/* Casts elements [begin, end): directly between native dtypes, through a
 * float32 block when either side is a 16-bit float. */
static void cast_chunk(void *arg, int64_t begin, int64_t end)
{
    const cast_job_t *j = arg;
    const char *x = j->x + begin * j->xsz;
    char *y = j->y + begin * j->ysz;
    if (!is_half(j->from) && !is_half(j->to)) {
        cast_table[j->from][j->to](y, x, end - begin);
        return;
    }
    float buf[BLOCK];
    for (int64_t i = 0; i < end - begin; i += BLOCK) {
        int64_t n = end - begin - i < BLOCK ? end - begin - i : BLOCK;
        if (is_half(j->from))
            kiln_half_to_f32_array(buf, (const uint16_t *)x + i, n, j->from);
        else
            cast_table[j->from][KILN_DTYPE_FLOAT32](buf, x + i * j->xsz, n);
        if (is_half(j->to))
            kiln_f32_to_half_array((uint16_t *)y + i, buf, n, j->to);
        else
            cast_table[KILN_DTYPE_FLOAT32][j->to](y + i * j->ysz, buf, n);
    }
}

/* float64 -> 16-bit float must round once, from the double: rounding to
 * float32 first can land on a tie between two halves that the double was
 * not on.  Round-to-odd avoids that: truncate to float32 and set its last
 * bit when anything was dropped; float32 keeps enough extra bits for the
 * final rounding to be correct. */
static uint16_t f64_to_half(double v, kiln_dtype_t dt)
{
    float f = (float)v;
    if (isnan(v))
        return f32_to_half(f, dt);
    if (fabs((double)f) > fabs(v))
        f = nextafterf(f, 0.0f);
    if ((double)f != v) {
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        bits |= 1u;
        memcpy(&f, &bits, sizeof f);
    }
    return f32_to_half(f, dt);
}

/* ---- Cast to and from strings -------------------------------------------- */

/* Shortest "%.Ng" text of v that reads back to the same value of dtype dt,
 * with numpy's touches: "NaN"/"INF" spelled as ONNX does, no exponent for
 * moderate magnitudes. */
static bool reads_back(const char *s, double v, kiln_dtype_t dt)
{
    double r = strtod(s, NULL);
    switch (dt) {
    case KILN_DTYPE_FLOAT32:
        return (float)r == (float)v;
    case KILN_DTYPE_FLOAT16:
        return kiln_f32_to_f16((float)r) == kiln_f32_to_f16((float)v);
    case KILN_DTYPE_BFLOAT16:
        return kiln_f32_to_bf16((float)r) == kiln_f32_to_bf16((float)v);
    default:
        return r == v;
    }
}

static void format_float(char *buf, size_t size, double v, kiln_dtype_t dt)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "INF" : "-INF");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (reads_back(buf, v, dt))
            break;
    }
    /* numpy writes whole numbers below 1e16 as "3.0", not "3" or "3e+06". */
    if (v == floor(v) && fabs(v) < 1e16) {
        if (!strpbrk(buf, ".e"))
            strncat(buf, ".0", size - strlen(buf) - 1);
        else if (strchr(buf, 'e'))
            snprintf(buf, size, "%.1f", v);
    }
}

static char *number_to_string(const kiln_tensor_t *x, int64_t i)
{
    char buf[64];
    switch (x->dtype) {
    case KILN_DTYPE_FLOAT32:
    case KILN_DTYPE_FLOAT64:
    case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16:
        format_float(buf, sizeof buf, kiln_tensor_get_f64(x, i), x->dtype);
        break;
    case KILN_DTYPE_BOOL:
        snprintf(buf, sizeof buf, "%s", ((const uint8_t *)x->data)[i] ? "True" : "False");
        break;
    case KILN_DTYPE_UINT64:
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)((const uint64_t *)x->data)[i]);
        break;
    default:
        snprintf(buf, sizeof buf, "%lld", (long long)kiln_tensor_get_i64(x, i));
    }
    return strdup(buf);
}

/* Parses s into element i of y: integers with strtoll/strtoull (exact),
 * everything else with strtod ("NaN", "INF", "+INF", "-INF" included). */
static void string_to_number(kiln_tensor_t *y, int64_t i, const char *s)
{
    switch (y->dtype) {
    case KILN_DTYPE_INT64:
        ((int64_t *)y->data)[i] = strtoll(s, NULL, 10);
        break;
    case KILN_DTYPE_UINT64:
        ((uint64_t *)y->data)[i] = strtoull(s, NULL, 10);
        break;
    case KILN_DTYPE_BOOL:
        ((uint8_t *)y->data)[i] = strcmp(s, "True") == 0 || strcmp(s, "true") == 0 || strtod(s, NULL) != 0;
        break;
    default:
        kiln_tensor_set_f64(y, i, strtod(s, NULL));
    }
}

static kiln_status_t cast_strings(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, kiln_tensor_t *y)
{
    char *const *xs = x->data;
    char **ys = y->data;
    for (int64_t i = 0; i < x->count; i++) {
        if (x->dtype == KILN_DTYPE_STRING && y->dtype == KILN_DTYPE_STRING) {
            ys[i] = strdup(xs[i] ? xs[i] : "");
        } else if (x->dtype == KILN_DTYPE_STRING) {
            string_to_number(y, i, xs[i] ? xs[i] : "");
            continue;
        } else {
            ys[i] = number_to_string(x, i);
        }
        if (!ys[i])
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for a string");
    }
    return KILN_OK;
}

static bool castable(kiln_dtype_t dt)
{
    return dt == KILN_DTYPE_STRING || is_half(dt) ||
           (dt < KILN_DTYPE_COUNT_ && cast_table[dt][KILN_DTYPE_FLOAT32]);
}

static kiln_status_t cast_to(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, kiln_dtype_t to)
{
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "input is missing");
    if ((int)to <= 0 || to >= KILN_DTYPE_COUNT_ || !castable(to) || !castable(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "cast from %s to dtype %d", kiln_dtype_name(x->dtype),
                             (int)to);
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, to, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (x->count == 0)
        return KILN_OK;
    if (x->dtype == KILN_DTYPE_STRING || to == KILN_DTYPE_STRING)
        return cast_strings(ctx, x, y);
    if (x->dtype == to) {
        memcpy(y->data, x->data, x->nbytes);
        return KILN_OK;
    }
    if (x->dtype == KILN_DTYPE_FLOAT64 && is_half(to)) {
        const double *xs = x->data;
        uint16_t *ys = y->data;
        for (int64_t i = 0; i < x->count; i++)
            ys[i] = f64_to_half(xs[i], to);
        return KILN_OK;
    }
    cast_job_t j = {x->data, y->data, x->dtype, to, kiln_dtype_size(x->dtype), kiln_dtype_size(to)};
    kiln_ctx_parallel_for(ctx, x->count, GRAIN, cast_chunk, &j);
    return KILN_OK;
}

/* Cast-1 named the target type as a string ("FLOAT", "INT64"...); later
 * versions use the TensorProto number.  UNDEFINED for an unknown name. */
static kiln_dtype_t dtype_from_type_name(const char *name)
{
    static const struct {
        const char *name;
        kiln_dtype_t dtype;
    } names[] = {
        {"FLOAT", KILN_DTYPE_FLOAT32},   {"UINT8", KILN_DTYPE_UINT8},       {"INT8", KILN_DTYPE_INT8},
        {"UINT16", KILN_DTYPE_UINT16},   {"INT16", KILN_DTYPE_INT16},       {"INT32", KILN_DTYPE_INT32},
        {"INT64", KILN_DTYPE_INT64},     {"STRING", KILN_DTYPE_STRING},     {"BOOL", KILN_DTYPE_BOOL},
        {"FLOAT16", KILN_DTYPE_FLOAT16}, {"DOUBLE", KILN_DTYPE_FLOAT64},    {"UINT32", KILN_DTYPE_UINT32},
        {"UINT64", KILN_DTYPE_UINT64},   {"BFLOAT16", KILN_DTYPE_BFLOAT16},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i].name, name))
            return names[i].dtype;
    return KILN_DTYPE_UNDEFINED;
}

static kiln_status_t cast_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_attr_t *to = kiln_node_attr(kiln_ctx_node(ctx), "to");
    if (!to)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute 'to' is missing");
    if (to->type == KILN_ATTR_STRING) {
        kiln_dtype_t dt = dtype_from_type_name(to->s ? to->s : "");
        if (dt == KILN_DTYPE_UNDEFINED)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "unknown type name '%s' in 'to'",
                                 to->s ? to->s : "");
        return cast_to(ctx, kiln_ctx_input(ctx, 0), dt);
    }
    return cast_to(ctx, kiln_ctx_input(ctx, 0), (kiln_dtype_t)to->i);
}

static kiln_status_t castlike_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *like = kiln_ctx_input(ctx, 1);
    if (!like)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "target_type input is missing");
    return cast_to(ctx, kiln_ctx_input(ctx, 0), like->dtype);
}

void kiln_register_elementwise_cast(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Where", .since = 9, .run = where_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Clip", .since = 1, .run = clip_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Cast", .since = 1, .run = cast_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "CastLike", .since = 15, .run = castlike_run});
}
