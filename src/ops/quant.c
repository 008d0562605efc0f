/*
 * quant.c - Quantization: QuantizeLinear, DequantizeLinear (per tensor or
 * per axis, 8-bit and 16-bit integers), DynamicQuantizeLinear, and the
 * integer products MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv.
 *
 * Integer MatMuls subtract the zero points into int32 operands and
 * accumulate exactly in int32.  The integer convolutions reuse Conv's
 * float32 im2col+GEMM (conv.c) on zero-point-shifted operands: products of
 * 8-bit values summed in float32 are exact while partial sums stay below
 * 2^24, which holds for the kernels these ops see in practice, and padding
 * then reads as the zero point as the spec requires.  Requantization is
 * y = saturate(round_half_even(acc * scale) + zero_point).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/nn_kernels.h"

/* ---- Element helpers ------------------------------------------------------ */

static bool is_quant_dtype(kiln_dtype_t d)
{
    return d == KILN_DTYPE_UINT8 || d == KILN_DTYPE_INT8 || d == KILN_DTYPE_UINT16 ||
           d == KILN_DTYPE_INT16;
}

/* The saturation range of a quantized dtype. */
static void quant_range(kiln_dtype_t d, double *lo, double *hi)
{
    switch (d) {
    case KILN_DTYPE_INT8: *lo = -128; *hi = 127; break;
    case KILN_DTYPE_UINT16: *lo = 0; *hi = 65535; break;
    case KILN_DTYPE_INT16: *lo = -32768; *hi = 32767; break;
    case KILN_DTYPE_INT32: *lo = -2147483648.0; *hi = 2147483647.0; break;
    default: *lo = 0; *hi = 255; break;
    }
}

/* Rounds half to even, adds the zero point and saturates into dtype d. */
static void store_quantized(kiln_tensor_t *y, int64_t i, double v, double zero_point)
{
    double lo, hi;
    quant_range(y->dtype, &lo, &hi);
    double q = nearbyint(v) + zero_point;
    q = q < lo ? lo : q > hi ? hi : q;
    if (y->dtype == KILN_DTYPE_UINT8)
        ((uint8_t *)y->data)[i] = (uint8_t)q;
    else if (y->dtype == KILN_DTYPE_INT8)
        ((int8_t *)y->data)[i] = (int8_t)q;
    else
        kiln_tensor_set_f64(y, i, q);
}

/* A per-tensor or per-axis parameter (scale or zero point): entry for
 * element i is values[(i / inner) % count], count == 1 for per-tensor. */
typedef struct quant_param {
    const kiln_tensor_t *t; /* NULL: the value 0 */
    int64_t inner, count;
} quant_param_t;

static double param_at(const quant_param_t *p, int64_t i)
{
    if (!p->t)
        return 0.0;
    return kiln_tensor_get_f64(p->t, p->count == 1 ? 0 : (i / p->inner) % p->count);
}

/* Sets up a scale or zero point for x along axis (negative counts from the
 * end): a scalar or 1-element tensor is per-tensor, a 1-D tensor of
 * x->dims[axis] values is per-axis. */
static kiln_status_t quant_param(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                 const kiln_tensor_t *p, int64_t axis, const char *name,
                                 quant_param_t *out)
{
    out->t = p;
    out->inner = 1;
    out->count = 1;
    if (!p || p->count == 1)
        return KILN_OK;
    if (axis < 0)
        axis += x->rank;
    if (p->rank != 1 || axis < 0 || axis >= x->rank || p->dims[0] != x->dims[axis])
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "%s has %lld values; expected 1 or the size of axis %lld", name,
                             (long long)p->count, (long long)axis);
    for (int i = (int)axis + 1; i < x->rank; i++)
        out->inner *= x->dims[i];
    out->count = p->dims[0];
    return KILN_OK;
}

/* ---- QuantizeLinear / DequantizeLinear ------------------------------------- */

static kiln_status_t quantize_linear_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *scale = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *zp = kiln_ctx_input(ctx, 2);
    if (!x || !scale)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs x and y_scale are required");
    kiln_dtype_t out_dtype = zp ? zp->dtype : KILN_DTYPE_UINT8;
    if (!is_quant_dtype(out_dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "output dtype %d is not implemented",
                             (int)out_dtype);
    int64_t axis = kiln_attr_int(kiln_ctx_node(ctx), "axis", 1);
    quant_param_t s, z;
    kiln_status_t st = quant_param(ctx, x, scale, axis, "y_scale", &s);
    if (st != KILN_OK || (st = quant_param(ctx, x, zp, axis, "y_zero_point", &z)) != KILN_OK)
        return st;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, out_dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    for (int64_t i = 0; i < x->count; i++) {
        float sc = (float)param_at(&s, i);
        store_quantized(y, i, (double)((float)kiln_tensor_get_f64(x, i) / sc), param_at(&z, i));
    }
    return KILN_OK;
}

static kiln_status_t dequantize_linear_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *scale = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *zp = kiln_ctx_input(ctx, 2);
    if (!x || !scale)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs x and x_scale are required");
    if (!is_quant_dtype(x->dtype) && x->dtype != KILN_DTYPE_INT32)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input dtype %d is not implemented",
                             (int)x->dtype);
    int64_t axis = kiln_attr_int(kiln_ctx_node(ctx), "axis", 1);
    quant_param_t s, z;
    kiln_status_t st = quant_param(ctx, x, scale, axis, "x_scale", &s);
    if (st != KILN_OK || (st = quant_param(ctx, x, zp, axis, "x_zero_point", &z)) != KILN_OK)
        return st;
    kiln_dtype_t out_dtype = scale->dtype == KILN_DTYPE_FLOAT64 ? KILN_DTYPE_FLOAT64 : KILN_DTYPE_FLOAT32;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, out_dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    for (int64_t i = 0; i < x->count; i++) {
        double v = (kiln_tensor_get_f64(x, i) - param_at(&z, i)) * param_at(&s, i);
        if (out_dtype == KILN_DTYPE_FLOAT32)
            ((float *)y->data)[i] = (float)(kiln_tensor_get_f64(x, i) - param_at(&z, i)) *
                                    (float)param_at(&s, i);
        else
            ((double *)y->data)[i] = v;
    }
    return KILN_OK;
}

/* ---- DynamicQuantizeLinear ---------------------------------------------- */

static kiln_status_t dynamic_quantize_linear_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || x->dtype != KILN_DTYPE_FLOAT32)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input x must be float32");
    const float *xd = x->data;
    float lo = 0.0f, hi = 0.0f; /* the range always includes 0 */
    for (int64_t i = 0; i < x->count; i++) {
        lo = xd[i] < lo ? xd[i] : lo;
        hi = xd[i] > hi ? xd[i] : hi;
    }
    float scale = (hi - lo) / 255.0f;
    float zero_point = scale == 0.0f ? 0.0f : nearbyintf(0.0f - lo / scale);
    zero_point = zero_point < 0.0f ? 0.0f : zero_point > 255.0f ? 255.0f : zero_point;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, KILN_DTYPE_UINT8, x->rank, x->dims);
    kiln_tensor_t *ys = kiln_ctx_output_uninit(ctx, 1, KILN_DTYPE_FLOAT32, 0, NULL);
    kiln_tensor_t *yz = kiln_ctx_output_uninit(ctx, 2, KILN_DTYPE_UINT8, 0, NULL);
    if (!y || !ys || !yz)
        return kiln_ctx_status(ctx);
    *(float *)ys->data = scale;
    *(uint8_t *)yz->data = (uint8_t)zero_point;
    for (int64_t i = 0; i < x->count; i++)
        store_quantized(y, i, scale == 0.0f ? 0.0 : (double)(xd[i] / scale), zero_point);
    return KILN_OK;
}

/* ---- Integer MatMul ------------------------------------------------------- */

/* An integer MatMul's operands and zero points: a_zp is a scalar or one
 * value per row of A (m), b_zp a scalar or one per column of B (n). */
typedef struct int_matmul {
    const kiln_tensor_t *a, *b, *a_zp, *b_zp;
    kiln_matmul_shape_t s;
    int32_t *acc; /* batch_count * m * n accumulators */
} int_matmul_t;

static kiln_status_t check_zero_point(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *zp,
                                      int64_t per_axis, const char *name)
{
    if (zp && zp->count != 1 && !(zp->rank == 1 && zp->dims[0] == per_axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s has %lld values; expected 1 or %lld",
                             name, (long long)zp->count, (long long)per_axis);
    return KILN_OK;
}

/* Computes the exact int32 products of every batch into im->acc (owned by
 * the caller afterwards, freed with free()). */
static kiln_status_t int_matmul_compute(kiln_kernel_ctx_t *ctx, int_matmul_t *im)
{
    const kiln_matmul_shape_t *s = &im->s;
    kiln_status_t st = kiln_matmul_shape(ctx, im->a, im->b, &im->s);
    if (st != KILN_OK)
        return st;
    if (!is_quant_dtype(im->a->dtype) || !is_quant_dtype(im->b->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "A and B must be 8- or 16-bit integers");
    if ((st = check_zero_point(ctx, im->a_zp, s->m, "a_zero_point")) != KILN_OK ||
        (st = check_zero_point(ctx, im->b_zp, s->n, "b_zero_point")) != KILN_OK)
        return st;
    int64_t mk = s->m * s->k, kn = s->k * s->n, mn = s->m * s->n;
    int32_t *a32 = malloc((size_t)(mk > 0 ? mk : 1) * sizeof *a32);
    int32_t *b32 = malloc((size_t)(kn > 0 ? kn : 1) * sizeof *b32);
    im->acc = calloc((size_t)(s->batch_count * mn > 0 ? s->batch_count * mn : 1), sizeof *im->acc);
    if (!a32 || !b32 || !im->acc) {
        free(a32);
        free(b32);
        free(im->acc);
        im->acc = NULL;
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for an integer MatMul");
    }
    for (int64_t t = 0; t < s->batch_count; t++) {
        int64_t a_off, b_off;
        kiln_matmul_batch_offsets(s, t, &a_off, &b_off);
        for (int64_t i = 0; i < mk; i++) {
            int64_t row = i / s->k;
            int64_t zp = im->a_zp ? kiln_tensor_get_i64(im->a_zp, im->a_zp->count == 1 ? 0 : row) : 0;
            a32[i] = (int32_t)(kiln_tensor_get_i64(im->a, a_off + i) - zp);
        }
        for (int64_t i = 0; i < kn; i++) {
            int64_t col = i % s->n;
            int64_t zp = im->b_zp ? kiln_tensor_get_i64(im->b_zp, im->b_zp->count == 1 ? 0 : col) : 0;
            b32[i] = (int32_t)(kiln_tensor_get_i64(im->b, b_off + i) - zp);
        }
        int32_t *c = im->acc + t * mn;
        for (int64_t i = 0; i < s->m; i++)
            for (int64_t p = 0; p < s->k; p++) {
                int32_t av = a32[i * s->k + p];
                const int32_t *brow = b32 + p * s->n;
                int32_t *crow = c + i * s->n;
                for (int64_t j = 0; j < s->n; j++)
                    crow[j] += av * brow[j];
            }
    }
    free(a32);
    free(b32);
    return KILN_OK;
}

static kiln_status_t matmul_integer_run(kiln_kernel_ctx_t *ctx)
{
    int_matmul_t im = {.a = kiln_ctx_input(ctx, 0), .b = kiln_ctx_input(ctx, 1),
                       .a_zp = kiln_ctx_input(ctx, 2), .b_zp = kiln_ctx_input(ctx, 3)};
    if (!im.a || !im.b)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs A and B are required");
    kiln_status_t st = int_matmul_compute(ctx, &im);
    if (st != KILN_OK)
        return st;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, KILN_DTYPE_INT32, im.s.out_rank, im.s.out_dims);
    if (y)
        memcpy(y->data, im.acc, y->nbytes);
    free(im.acc);
    return y ? KILN_OK : kiln_ctx_status(ctx);
}

static kiln_status_t qlinear_matmul_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *a_scale = kiln_ctx_input(ctx, 1), *b_scale = kiln_ctx_input(ctx, 4);
    const kiln_tensor_t *y_scale = kiln_ctx_input(ctx, 6), *y_zp = kiln_ctx_input(ctx, 7);
    int_matmul_t im = {.a = kiln_ctx_input(ctx, 0), .a_zp = kiln_ctx_input(ctx, 2),
                       .b = kiln_ctx_input(ctx, 3), .b_zp = kiln_ctx_input(ctx, 5)};
    if (!im.a || !im.b || !a_scale || !b_scale || !y_scale)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs a, b and the scales are required");
    kiln_status_t st = int_matmul_compute(ctx, &im);
    if (st != KILN_OK)
        return st;
    const kiln_matmul_shape_t *s = &im.s;
    if ((st = check_zero_point(ctx, a_scale, s->m, "a_scale")) != KILN_OK ||
        (st = check_zero_point(ctx, b_scale, s->n, "b_scale")) != KILN_OK) {
        free(im.acc);
        return st;
    }
    kiln_dtype_t out_dtype = y_zp ? y_zp->dtype : KILN_DTYPE_UINT8;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, out_dtype, s->out_rank, s->out_dims);
    if (!y) {
        free(im.acc);
        return kiln_ctx_status(ctx);
    }
    double ys = kiln_tensor_get_f64(y_scale, 0), yz = y_zp ? kiln_tensor_get_f64(y_zp, 0) : 0.0;
    for (int64_t i = 0; i < y->count; i++) {
        int64_t row = i / s->n % s->m, col = i % s->n;
        double as = kiln_tensor_get_f64(a_scale, a_scale->count == 1 ? 0 : row);
        double bs = kiln_tensor_get_f64(b_scale, b_scale->count == 1 ? 0 : col);
        store_quantized(y, i, (double)im.acc[i] * (as * bs / ys), yz);
    }
    free(im.acc);
    return KILN_OK;
}

/* ---- Integer convolutions -------------------------------------------------- */

/* A float32 copy of t minus its zero point (scalar, or one per slice of
 * dim 0 when per_channel); the caller frees it with kiln_tensor_free. */
static kiln_tensor_t *shifted_float_copy(const kiln_tensor_t *t, const kiln_tensor_t *zp)
{
    kiln_tensor_t *f = kiln_tensor_new(KILN_DTYPE_FLOAT32, t->rank, t->dims);
    if (!f)
        return NULL;
    int64_t per_slice = t->dims[0] > 0 ? t->count / t->dims[0] : 1;
    float *fd = f->data;
    for (int64_t i = 0; i < t->count; i++) {
        double z = 0.0;
        if (zp)
            z = kiln_tensor_get_f64(zp, zp->count == 1 ? 0 : i / per_slice);
        fd[i] = (float)(kiln_tensor_get_f64(t, i) - z);
    }
    return f;
}

/* Runs the float Conv on zero-point-shifted x and w (and bias); *acc is a
 * new float32 tensor of exact integer sums the caller frees. */
static kiln_status_t integer_conv(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                  const kiln_tensor_t *x_zp, const kiln_tensor_t *w,
                                  const kiln_tensor_t *w_zp, const kiln_tensor_t *bias,
                                  kiln_tensor_t **acc)
{
    *acc = NULL;
    if (!x || !w)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs x and w are required");
    if (!is_quant_dtype(x->dtype) || !is_quant_dtype(w->dtype) || w->rank < 1)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "x and w must be 8- or 16-bit integers");
    if (x_zp && x_zp->count != 1)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "x_zero_point must be a scalar");
    kiln_status_t st = check_zero_point(ctx, w_zp, w->dims[0], "w_zero_point");
    if (st != KILN_OK)
        return st;
    kiln_tensor_t *xf = shifted_float_copy(x, x_zp), *wf = shifted_float_copy(w, w_zp);
    kiln_tensor_t *bf = bias ? shifted_float_copy(bias, NULL) : NULL;
    if (!xf || !wf || (bias && !bf))
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for an integer convolution");
    else
        st = kiln_conv_float32(ctx, xf, wf, bf, acc);
    kiln_tensor_free(xf);
    kiln_tensor_free(wf);
    kiln_tensor_free(bf);
    return st;
}

static kiln_status_t conv_integer_run(kiln_kernel_ctx_t *ctx)
{
    kiln_tensor_t *acc;
    kiln_status_t st = integer_conv(ctx, kiln_ctx_input(ctx, 0), kiln_ctx_input(ctx, 2),
                                    kiln_ctx_input(ctx, 1), kiln_ctx_input(ctx, 3), NULL, &acc);
    if (st != KILN_OK)
        return st;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, KILN_DTYPE_INT32, acc->rank, acc->dims);
    if (y)
        for (int64_t i = 0; i < y->count; i++)
            ((int32_t *)y->data)[i] = (int32_t)lrintf(((const float *)acc->data)[i]);
    kiln_tensor_free(acc);
    return y ? KILN_OK : kiln_ctx_status(ctx);
}

static kiln_status_t qlinear_conv_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x_scale = kiln_ctx_input(ctx, 1), *w_scale = kiln_ctx_input(ctx, 4);
    const kiln_tensor_t *w = kiln_ctx_input(ctx, 3), *y_scale = kiln_ctx_input(ctx, 6);
    const kiln_tensor_t *y_zp = kiln_ctx_input(ctx, 7);
    if (!x_scale || !w_scale || !y_scale || !w)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs w and the scales are required");
    kiln_status_t st = check_zero_point(ctx, w_scale, w->dims[0], "w_scale");
    kiln_tensor_t *acc;
    if (st != KILN_OK ||
        (st = integer_conv(ctx, kiln_ctx_input(ctx, 0), kiln_ctx_input(ctx, 2), w,
                           kiln_ctx_input(ctx, 5), kiln_ctx_input(ctx, 8), &acc)) != KILN_OK)
        return st;
    kiln_dtype_t out_dtype = y_zp ? y_zp->dtype : KILN_DTYPE_UINT8;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, out_dtype, acc->rank, acc->dims);
    if (y) {
        int64_t channels = acc->dims[1], plane = channels > 0 ? acc->count / (acc->dims[0] * channels) : 1;
        double xs = kiln_tensor_get_f64(x_scale, 0), ys = kiln_tensor_get_f64(y_scale, 0);
        double yz = y_zp ? kiln_tensor_get_f64(y_zp, 0) : 0.0;
        for (int64_t i = 0; i < y->count; i++) {
            int64_t m = i / plane % channels;
            double ws = kiln_tensor_get_f64(w_scale, w_scale->count == 1 ? 0 : m);
            store_quantized(y, i, (double)((const float *)acc->data)[i] * (xs * ws / ys), yz);
        }
    }
    kiln_tensor_free(acc);
    return y ? KILN_OK : kiln_ctx_status(ctx);
}

/* ---- Registration ------------------------------------------------------------ */

void kiln_ops_register_quant(kiln_registry_t *reg)
{
    static const struct {
        const char *op;
        int since;
        kiln_kernel_run_fn run;
    } kernels[] = {
        {"QuantizeLinear", 10, quantize_linear_run},
        {"DequantizeLinear", 10, dequantize_linear_run},
        {"DynamicQuantizeLinear", 11, dynamic_quantize_linear_run},
        {"MatMulInteger", 10, matmul_integer_run},
        {"QLinearMatMul", 10, qlinear_matmul_run},
        {"ConvInteger", 10, conv_integer_run},
        {"QLinearConv", 10, qlinear_conv_run},
    };
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        kiln_register(reg, &(kiln_kernel_t){.op = kernels[i].op, .since = kernels[i].since,
                                             .run = kernels[i].run});
}
