/*
 * normalize.c - Softmax, LogSoftmax, Hardmax; BatchNormalization,
 * LayerNormalization, GroupNormalization, RMSNormalization,
 * InstanceNormalization, LRN, MeanVarianceNormalization;
 * NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
 *
 * The softmax family views its input as (outer, n, inner) and works on each
 * of the outer*inner slices of length n.  Before opset 13 the input is
 * coerced to 2-D at `axis` (n = product of dims from axis on, inner = 1);
 * from 13 on, n is the one axis.  The contiguous float32 case (inner == 1,
 * BERT's attention scores) runs the vector row kernels of rowops.h in
 * parallel over rows; so does LayerNormalization in float32.  Float32 along
 * another axis sweeps tiles of 64 columns row by row (contiguous loads).
 *
 * float16/bfloat16 Softmax and LayerNormalization widen to a float32 copy
 * and take the float32 paths.  Everything else (float64, the other ops'
 * 16-bit inputs) is computed in double through kiln_tensor_get_f64/set_f64:
 * simple, and exact enough for every dtype.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "ops/axes.h"
#include "ops/kernel.h"
#include "ops/rowops.h"

/* Rows of at least this many elements per chunk are worth a thread. */
#define NORMALIZE_GRAIN_ELEMS 16384

/* ---- 16-bit floats ------------------------------------------------------ */

static bool is_half(kiln_dtype_t t)
{
    return t == KILN_DTYPE_FLOAT16 || t == KILN_DTYPE_BFLOAT16;
}

/* Copies a float16/bfloat16 tensor's elements into dst as float32. */
static void widen_to_f32(const kiln_tensor_t *t, float *dst)
{
    const uint16_t *src = t->data;
    for (int64_t i = 0; i < t->count; i++)
        dst[i] = t->dtype == KILN_DTYPE_FLOAT16 ? kiln_f16_to_f32(src[i]) : kiln_bf16_to_f32(src[i]);
}

static void narrow_from_f32(kiln_tensor_t *t, const float *src)
{
    uint16_t *dst = t->data;
    for (int64_t i = 0; i < t->count; i++)
        dst[i] = t->dtype == KILN_DTYPE_FLOAT16 ? kiln_f32_to_f16(src[i]) : kiln_f32_to_bf16(src[i]);
}

/* A float32 copy of a 16-bit float tensor (NULL when t is NULL or on
 * failure: check the input was non-NULL). Free with kiln_tensor_free. */
static kiln_tensor_t *widened_copy(const kiln_tensor_t *t)
{
    if (!t)
        return NULL;
    kiln_tensor_t *w = kiln_tensor_new(KILN_DTYPE_FLOAT32, t->rank, t->dims);
    if (w && is_half(t->dtype))
        widen_to_f32(t, w->data);
    else if (w)
        for (int64_t i = 0; i < t->count; i++)
            ((float *)w->data)[i] = (float)kiln_tensor_get_f64(t, i);
    return w;
}

/* ---- the softmax family ------------------------------------------------ */

typedef enum softmax_kind { SOFTMAX, LOG_SOFTMAX, HARDMAX } softmax_kind_t;

/* One float32 row: Softmax and LogSoftmax by the vector row kernels,
 * Hardmax by a scan for the first maximum. */
static void softmax_row_f32(const kiln_rowops_t *ops, softmax_kind_t kind, const float *x, float *y,
                            int64_t n)
{
    if (n == 0)
        return;
    if (kind != HARDMAX) {
        ops->softmax(x, y, n, kind == LOG_SOFTMAX);
        return;
    }
    int64_t arg = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[arg])
            arg = i;
    for (int64_t i = 0; i < n; i++)
        y[i] = i == arg ? 1.0f : 0.0f;
}

/* One strided slice in double: v[0..n) read from x at base + i*stride. */
static void softmax_slice(softmax_kind_t kind, const kiln_tensor_t *x, kiln_tensor_t *y, int64_t base,
                          int64_t stride, int64_t n, double *buf)
{
    if (n == 0)
        return;
    for (int64_t i = 0; i < n; i++)
        buf[i] = kiln_tensor_get_f64(x, base + i * stride);
    double m = buf[0];
    int64_t arg = 0;
    for (int64_t i = 1; i < n; i++)
        if (buf[i] > m) {
            m = buf[i];
            arg = i;
        }
    double sum = 0.0;
    for (int64_t i = 0; i < n && kind != HARDMAX; i++)
        sum += exp(buf[i] - m);
    for (int64_t i = 0; i < n; i++) {
        double v;
        switch (kind) {
        case SOFTMAX:
            v = exp(buf[i] - m) / sum;
            break;
        case LOG_SOFTMAX:
            v = buf[i] - m - log(sum);
            break;
        default:
            v = i == arg ? 1.0 : 0.0;
            break;
        }
        kiln_tensor_set_f64(y, base + i * stride, v);
    }
}

typedef struct softmax_job {
    softmax_kind_t kind;
    const float *x;
    float *y;
    int64_t n;
} softmax_job_t;

static void softmax_rows_f32(void *arg, int64_t begin, int64_t end)
{
    const softmax_job_t *job = arg;
    const kiln_rowops_t *ops = kiln_rowops();
    for (int64_t r = begin; r < end; r++)
        softmax_row_f32(ops, job->kind, job->x + r * job->n, job->y + r * job->n, job->n);
}

/* Columns handled together by the strided float32 path (stack scratch). */
enum { SOFTMAX_COL_TILE = 64 };

/* Softmax along a non-last axis in float32: the block of one outer index
 * is n rows of `inner` contiguous floats; a tile of columns is swept row by
 * row so every access is contiguous. */
static void softmax_cols_f32(softmax_kind_t kind, const float *x, float *y, int64_t n, int64_t inner,
                             int64_t c0, int64_t w)
{
    float mx[SOFTMAX_COL_TILE], sm[SOFTMAX_COL_TILE];
    int64_t arg[SOFTMAX_COL_TILE];
    for (int64_t j = 0; j < w; j++) {
        mx[j] = x[c0 + j];
        arg[j] = 0;
        sm[j] = 0.0f;
    }
    for (int64_t a = 1; a < n; a++) {
        const float *row = x + a * inner + c0;
        for (int64_t j = 0; j < w; j++)
            if (row[j] > mx[j]) {
                mx[j] = row[j];
                arg[j] = a;
            }
    }
    if (kind == HARDMAX) {
        for (int64_t a = 0; a < n; a++)
            for (int64_t j = 0; j < w; j++)
                y[a * inner + c0 + j] = arg[j] == a ? 1.0f : 0.0f;
        return;
    }
    for (int64_t a = 0; a < n; a++) {
        const float *row = x + a * inner + c0;
        float *out = y + a * inner + c0;
        for (int64_t j = 0; j < w; j++) {
            float e = expf(row[j] - mx[j]);
            sm[j] += e;
            if (kind == SOFTMAX)
                out[j] = e;
        }
    }
    for (int64_t j = 0; j < w; j++)
        sm[j] = kind == SOFTMAX ? 1.0f / sm[j] : mx[j] + logf(sm[j]);
    for (int64_t a = 0; a < n; a++) {
        const float *row = x + a * inner + c0;
        float *out = y + a * inner + c0;
        for (int64_t j = 0; j < w; j++)
            out[j] = kind == SOFTMAX ? out[j] * sm[j] : row[j] - sm[j];
    }
}

typedef struct softmax_strided_job {
    softmax_kind_t kind;
    const float *x;
    float *y;
    int64_t n, inner, tiles; /* tiles of columns per outer block */
} softmax_strided_job_t;

static void softmax_strided_f32(void *arg, int64_t begin, int64_t end)
{
    const softmax_strided_job_t *job = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t o = t / job->tiles, c0 = (t % job->tiles) * SOFTMAX_COL_TILE;
        int64_t w = job->inner - c0 < SOFTMAX_COL_TILE ? job->inner - c0 : SOFTMAX_COL_TILE;
        size_t block = (size_t)(o * job->n * job->inner);
        softmax_cols_f32(job->kind, job->x + block, job->y + block, job->n, job->inner, c0, w);
    }
}

/* The float32 softmax family over (outer, n, inner); y may equal x. */
static void softmax_f32(kiln_kernel_ctx_t *ctx, softmax_kind_t kind, const float *x, float *y, int64_t outer,
                        int64_t n, int64_t inner)
{
    if (inner == 1) {
        softmax_job_t job = {kind, x, y, n};
        kiln_ctx_parallel_for(ctx, outer, NORMALIZE_GRAIN_ELEMS / n + 1, softmax_rows_f32, &job);
        return;
    }
    int64_t tiles = (inner + SOFTMAX_COL_TILE - 1) / SOFTMAX_COL_TILE;
    softmax_strided_job_t job = {kind, x, y, n, inner, tiles};
    kiln_ctx_parallel_for(ctx, outer * tiles, NORMALIZE_GRAIN_ELEMS / (n * SOFTMAX_COL_TILE) + 1,
                          softmax_strided_f32, &job);
}

static kiln_status_t softmax_family_run(kiln_kernel_ctx_t *ctx, softmax_kind_t kind)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !kiln_dtype_is_float(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input must be a float tensor");
    bool legacy = kiln_ctx_opset(ctx) < 13;
    int rank = x->rank > 0 ? x->rank : 1;
    int axis;
    if (!kiln_axis_normalize(kiln_attr_int(kiln_ctx_node(ctx), "axis", legacy ? 1 : -1), rank, &axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
    int64_t outer, inner, n;
    if (x->rank == 0) {
        outer = inner = n = 1;
    } else if (legacy) {
        kiln_axis_split(x->rank, x->dims, axis, &outer, &inner);
        n = x->dims[axis] * inner;
        inner = 1;
    } else {
        kiln_axis_split(x->rank, x->dims, axis, &outer, &inner);
        n = x->dims[axis];
    }
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (x->count == 0)
        return KILN_OK;
    if (x->dtype == KILN_DTYPE_FLOAT32) {
        softmax_f32(ctx, kind, x->data, y->data, outer, n, inner);
        return KILN_OK;
    }
    if (is_half(x->dtype)) {
        /* 16-bit floats: computed in float32 on a widened copy. */
        float *tmp = malloc(sizeof(float) * (size_t)x->count);
        if (!tmp)
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory widening %lld elements",
                                 (long long)x->count);
        widen_to_f32(x, tmp);
        softmax_f32(ctx, kind, tmp, tmp, outer, n, inner);
        narrow_from_f32(y, tmp);
        free(tmp);
        return KILN_OK;
    }
    double *buf = malloc(sizeof(double) * (size_t)n);
    if (!buf)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for a row of %lld", (long long)n);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            softmax_slice(kind, x, y, o * n * inner + i, inner, n, buf);
    free(buf);
    return KILN_OK;
}

static kiln_status_t softmax_run(kiln_kernel_ctx_t *ctx)
{
    return softmax_family_run(ctx, SOFTMAX);
}
static kiln_status_t log_softmax_run(kiln_kernel_ctx_t *ctx)
{
    return softmax_family_run(ctx, LOG_SOFTMAX);
}
static kiln_status_t hardmax_run(kiln_kernel_ctx_t *ctx)
{
    return softmax_family_run(ctx, HARDMAX);
}

/* ---- per-channel normalizations ---------------------------------------- */

/* Checks that t is a 1-D-like tensor with exactly n elements. */
static bool has_count(const kiln_tensor_t *t, int64_t n)
{
    return t && t->count == n;
}

/* Mean and population variance of n values x[base + i*stride]. */
static void mean_var(const kiln_tensor_t *x, int64_t base, int64_t stride, int64_t n, double *mean,
                     double *var)
{
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += kiln_tensor_get_f64(x, base + i * stride);
    double m = n ? s / (double)n : 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = kiln_tensor_get_f64(x, base + i * stride) - m;
        ss += d * d;
    }
    *mean = m;
    *var = n ? ss / (double)n : 0.0;
}

/* Mean and variance of channel c over the batch and spatial dims of an
 * (N, C, spatial) tensor. */
static void channel_mean_var(const kiln_tensor_t *x, int64_t N, int64_t C, int64_t S, int64_t c, double *mean,
                             double *var)
{
    double s = 0.0, ss = 0.0;
    for (int64_t b = 0; b < N; b++)
        for (int64_t i = 0; i < S; i++)
            s += kiln_tensor_get_f64(x, (b * C + c) * S + i);
    double cnt = (double)(N * S);
    double m = cnt > 0 ? s / cnt : 0.0;
    for (int64_t b = 0; b < N; b++)
        for (int64_t i = 0; i < S; i++) {
            double d = kiln_tensor_get_f64(x, (b * C + c) * S + i) - m;
            ss += d * d;
        }
    *mean = m;
    *var = cnt > 0 ? ss / cnt : 0.0;
}

/* y = x * mul[c] + add[c] over the planes of an (N, C, S) tensor. */
typedef struct channel_affine {
    const kiln_tensor_t *x;
    kiln_tensor_t *y;
    int64_t C, S;
    double *mul, *add;
} channel_affine_t;

static void apply_channel_affine(void *arg, int64_t begin, int64_t end)
{
    const channel_affine_t *a = arg;
    for (int64_t p = begin; p < end; p++) {
        int64_t c = p % a->C, base = p * a->S;
        if (a->x->dtype == KILN_DTYPE_FLOAT32) {
            const float *x = (const float *)a->x->data + base;
            float *y = (float *)a->y->data + base;
            float mul = (float)a->mul[c], add = (float)a->add[c];
            for (int64_t i = 0; i < a->S; i++)
                y[i] = x[i] * mul + add;
        } else {
            for (int64_t i = 0; i < a->S; i++)
                kiln_tensor_set_f64(a->y, base + i,
                                    kiln_tensor_get_f64(a->x, base + i) * a->mul[c] + a->add[c]);
        }
    }
}

static kiln_status_t batch_norm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *scale = kiln_ctx_input(ctx, 1),
                        *bias = kiln_ctx_input(ctx, 2), *mean = kiln_ctx_input(ctx, 3),
                        *var = kiln_ctx_input(ctx, 4);
    if (!x || !kiln_dtype_is_float(x->dtype) || x->rank < 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a float tensor of rank >= 1");
    int64_t N = x->dims[0], C = x->rank > 1 ? x->dims[1] : 1, S = 1;
    for (int d = 2; d < x->rank; d++)
        S *= x->dims[d];
    if (!has_count(scale, C) || !has_count(bias, C) || !has_count(mean, C) || !has_count(var, C))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scale, B, mean and var must have %lld elements",
                             (long long)C);
    double eps = kiln_attr_float(node, "epsilon", 1e-5f);
    double momentum = kiln_attr_float(node, "momentum", 0.9f);
    bool training = kiln_ctx_opset(ctx) >= 14 && kiln_attr_int(node, "training_mode", 0) != 0;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *run_mean = NULL, *run_var = NULL;
    if (training) {
        run_mean = kiln_ctx_output(ctx, 1, mean->dtype, mean->rank, mean->dims);
        run_var = run_mean ? kiln_ctx_output(ctx, 2, var->dtype, var->rank, var->dims) : NULL;
        if (!run_var)
            return kiln_ctx_status(ctx);
    }
    channel_affine_t aff = {x,
                            y,
                            C,
                            S,
                            malloc(sizeof(double) * (size_t)(C ? C : 1)),
                            malloc(sizeof(double) * (size_t)(C ? C : 1))};
    if (!aff.mul || !aff.add) {
        free(aff.mul);
        free(aff.add);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for %lld channels", (long long)C);
    }
    for (int64_t c = 0; c < C; c++) {
        double m = kiln_tensor_get_f64(mean, c), v = kiln_tensor_get_f64(var, c);
        if (training) {
            double bm, bv;
            channel_mean_var(x, N, C, S, c, &bm, &bv);
            kiln_tensor_set_f64(run_mean, c, m * momentum + bm * (1.0 - momentum));
            kiln_tensor_set_f64(run_var, c, v * momentum + bv * (1.0 - momentum));
            m = bm;
            v = bv;
        }
        aff.mul[c] = kiln_tensor_get_f64(scale, c) / sqrt(v + eps);
        aff.add[c] = kiln_tensor_get_f64(bias, c) - m * aff.mul[c];
    }
    kiln_ctx_parallel_for(ctx, N * C, NORMALIZE_GRAIN_ELEMS / (S ? S : 1) + 1, apply_channel_affine, &aff);
    free(aff.mul);
    free(aff.add);
    return KILN_OK;
}

static kiln_status_t instance_norm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *scale = kiln_ctx_input(ctx, 1),
                        *bias = kiln_ctx_input(ctx, 2);
    if (!x || !kiln_dtype_is_float(x->dtype) || x->rank < 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input must be a float tensor of rank >= 2");
    int64_t N = x->dims[0], C = x->dims[1], S = 1;
    for (int d = 2; d < x->rank; d++)
        S *= x->dims[d];
    if (!has_count(scale, C) || !has_count(bias, C))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scale and B must have %lld elements",
                             (long long)C);
    double eps = kiln_attr_float(kiln_ctx_node(ctx), "epsilon", 1e-5f);
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    channel_affine_t aff = {x,
                            y,
                            C,
                            S,
                            malloc(sizeof(double) * ((size_t)(N * C) + 1)),
                            malloc(sizeof(double) * ((size_t)(N * C) + 1))};
    if (!aff.mul || !aff.add) {
        free(aff.mul);
        free(aff.add);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for %lld planes", (long long)(N * C));
    }
    /* Each (n, c) plane has its own statistics: treat the N*C planes as
     * channels of one batch for the affine pass. */
    for (int64_t p = 0; p < N * C; p++) {
        double m, v;
        mean_var(x, p * S, 1, S, &m, &v);
        aff.mul[p] = kiln_tensor_get_f64(scale, p % C) / sqrt(v + eps);
        aff.add[p] = kiln_tensor_get_f64(bias, p % C) - m * aff.mul[p];
    }
    aff.C = N * C;
    kiln_ctx_parallel_for(ctx, N * C, NORMALIZE_GRAIN_ELEMS / (S ? S : 1) + 1, apply_channel_affine, &aff);
    free(aff.mul);
    free(aff.add);
    return KILN_OK;
}

/* GroupNormalization: statistics over each group of C/G channels (and the
 * spatial dims) of one batch item.  Scale and bias are per group in opset
 * 18 and per channel from 21; the tensor's length says which. */
static kiln_status_t group_norm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *scale = kiln_ctx_input(ctx, 1),
                        *bias = kiln_ctx_input(ctx, 2);
    if (!x || !kiln_dtype_is_float(x->dtype) || x->rank < 2 || !scale || !bias)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "needs X (N, C, ...), scale and bias");
    int64_t N = x->dims[0], C = x->dims[1], S = 1, G = kiln_attr_int(node, "num_groups", 0);
    for (int d = 2; d < x->rank; d++)
        S *= x->dims[d];
    if (G <= 0 || C % G != 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "num_groups=%lld must divide C=%lld",
                             (long long)G, (long long)C);
    bool per_channel = scale->count == C && bias->count == C;
    if (!per_channel && !(scale->count == G && bias->count == G))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "scale and bias must have C=%lld or G=%lld elements", (long long)C,
                             (long long)G);
    double eps = kiln_attr_float(node, "epsilon", 1e-5f);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    channel_affine_t aff = {x,
                            y,
                            N * C,
                            S,
                            malloc(sizeof(double) * ((size_t)(N * C) + 1)),
                            malloc(sizeof(double) * ((size_t)(N * C) + 1))};
    if (!aff.mul || !aff.add) {
        free(aff.mul);
        free(aff.add);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for %lld planes", (long long)(N * C));
    }
    int64_t cpg = C / G;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            double m, v;
            mean_var(x, (n * C + g * cpg) * S, 1, cpg * S, &m, &v);
            double inv = 1.0 / sqrt(v + eps);
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
                int64_t k = per_channel ? c : g;
                aff.mul[n * C + c] = kiln_tensor_get_f64(scale, k) * inv;
                aff.add[n * C + c] = kiln_tensor_get_f64(bias, k) - m * aff.mul[n * C + c];
            }
        }
    kiln_ctx_parallel_for(ctx, N * C, NORMALIZE_GRAIN_ELEMS / (S ? S : 1) + 1, apply_channel_affine, &aff);
    free(aff.mul);
    free(aff.add);
    return KILN_OK;
}

/* ---- LayerNormalization ------------------------------------------------ */

typedef struct layer_norm_job {
    const kiln_tensor_t *x, *scale, *bias;
    kiln_tensor_t *y, *mean_out, *inv_std_out;
    int64_t n;
    double eps;
} layer_norm_job_t;

/* The float32 row by the vector row kernel. */
static void layer_norm_row_f32(const kiln_rowops_t *ops, const layer_norm_job_t *j, int64_t r)
{
    float m, inv;
    ops->layer_norm((const float *)j->x->data + r * j->n, (float *)j->y->data + r * j->n, j->n,
                    j->scale->data, j->scale->count, j->bias ? j->bias->data : NULL,
                    j->bias ? j->bias->count : 1, (float)j->eps, &m, &inv);
    if (j->mean_out)
        kiln_tensor_set_f64(j->mean_out, r, m);
    if (j->inv_std_out)
        kiln_tensor_set_f64(j->inv_std_out, r, inv);
}

static void layer_norm_row_any(const layer_norm_job_t *j, int64_t r)
{
    double m, v;
    int64_t base = r * j->n;
    mean_var(j->x, base, 1, j->n, &m, &v);
    double inv = 1.0 / sqrt(v + j->eps);
    for (int64_t i = 0; i < j->n; i++) {
        double w = kiln_tensor_get_f64(j->scale, i % j->scale->count);
        double b = j->bias ? kiln_tensor_get_f64(j->bias, i % j->bias->count) : 0.0;
        kiln_tensor_set_f64(j->y, base + i, (kiln_tensor_get_f64(j->x, base + i) - m) * inv * w + b);
    }
    if (j->mean_out)
        kiln_tensor_set_f64(j->mean_out, r, m);
    if (j->inv_std_out)
        kiln_tensor_set_f64(j->inv_std_out, r, inv);
}

static void layer_norm_rows(void *arg, int64_t begin, int64_t end)
{
    const layer_norm_job_t *j = arg;
    bool f32 = j->x->dtype == KILN_DTYPE_FLOAT32 && j->scale->dtype == KILN_DTYPE_FLOAT32 &&
               (!j->bias || j->bias->dtype == KILN_DTYPE_FLOAT32);
    const kiln_rowops_t *ops = kiln_rowops();
    for (int64_t r = begin; r < end; r++) {
        if (f32)
            layer_norm_row_f32(ops, j, r);
        else
            layer_norm_row_any(j, r);
    }
}

static kiln_status_t layer_norm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *scale = kiln_ctx_input(ctx, 1),
                        *bias = kiln_ctx_input(ctx, 2);
    if (!x || !scale || !kiln_dtype_is_float(x->dtype) || x->rank < 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X and Scale must be float tensors");
    int axis;
    if (!kiln_axis_normalize(kiln_attr_int(node, "axis", -1), x->rank, &axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
    int64_t rows, n;
    kiln_axis_split(x->rank, x->dims, axis, &rows, &n);
    n *= x->dims[axis];
    if (scale->count == 0 || n % scale->count != 0 || (bias && (bias->count == 0 || n % bias->count != 0)))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "Scale and B must broadcast to the normalized %lld elements", (long long)n);
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t sdims[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        sdims[d] = d < axis ? x->dims[d] : 1;
    kiln_dtype_t stash = (kiln_dtype_t)kiln_attr_int(node, "stash_type", KILN_DTYPE_FLOAT32);
    if (stash != KILN_DTYPE_FLOAT32 && stash != KILN_DTYPE_FLOAT64)
        stash = KILN_DTYPE_FLOAT32;
    layer_norm_job_t job = {x, scale, bias, y, NULL, NULL, n, kiln_attr_float(node, "epsilon", 1e-5f)};
    if (kiln_ctx_output_wanted(ctx, 1) && !(job.mean_out = kiln_ctx_output(ctx, 1, stash, x->rank, sdims)))
        return kiln_ctx_status(ctx);
    if (kiln_ctx_output_wanted(ctx, 2) && !(job.inv_std_out = kiln_ctx_output(ctx, 2, stash, x->rank, sdims)))
        return kiln_ctx_status(ctx);
    if (n == 0)
        return KILN_OK;
    if (!is_half(x->dtype)) {
        kiln_ctx_parallel_for(ctx, rows, NORMALIZE_GRAIN_ELEMS / n + 1, layer_norm_rows, &job);
        return KILN_OK;
    }
    /* 16-bit floats: run the float32 rows on widened copies. */
    kiln_tensor_t *x32 = widened_copy(x), *s32 = widened_copy(scale), *b32 = widened_copy(bias);
    kiln_tensor_t *y32 = kiln_tensor_new(KILN_DTYPE_FLOAT32, x->rank, x->dims);
    kiln_status_t st = KILN_OK;
    if (!x32 || !s32 || (bias && !b32) || !y32) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory widening LayerNormalization inputs");
    } else {
        job.x = x32;
        job.scale = s32;
        job.bias = b32;
        job.y = y32;
        kiln_ctx_parallel_for(ctx, rows, NORMALIZE_GRAIN_ELEMS / n + 1, layer_norm_rows, &job);
        narrow_from_f32(y, y32->data);
    }
    kiln_tensor_free(x32);
    kiln_tensor_free(s32);
    kiln_tensor_free(b32);
    kiln_tensor_free(y32);
    return st;
}

/* ---- RMSNormalization --------------------------------------------------- */

typedef struct rms_norm_job {
    const kiln_tensor_t *x, *scale;
    kiln_tensor_t *y;
    int64_t n;
    double eps;
} rms_norm_job_t;

static void rms_norm_rows(void *arg, int64_t begin, int64_t end)
{
    const rms_norm_job_t *j = arg;
    bool f32 = j->x->dtype == KILN_DTYPE_FLOAT32 && j->scale->dtype == KILN_DTYPE_FLOAT32;
    const kiln_rowops_t *ops = kiln_rowops();
    int64_t wn = j->scale->count;
    for (int64_t r = begin; r < end; r++) {
        int64_t base = r * j->n;
        if (f32) {
            const float *x = (const float *)j->x->data + base, *w = j->scale->data;
            float *y = (float *)j->y->data + base;
            float inv = (float)(1.0 / sqrt(ops->sum_squares(x, j->n) / (double)j->n + j->eps));
            for (int64_t i = 0; i < j->n; i++)
                y[i] = x[i] * inv * w[i % wn];
            continue;
        }
        double ss = 0.0;
        for (int64_t i = 0; i < j->n; i++) {
            double v = kiln_tensor_get_f64(j->x, base + i);
            ss += v * v;
        }
        double inv = 1.0 / sqrt(ss / (double)j->n + j->eps);
        for (int64_t i = 0; i < j->n; i++)
            kiln_tensor_set_f64(j->y, base + i,
                                kiln_tensor_get_f64(j->x, base + i) * inv *
                                    kiln_tensor_get_f64(j->scale, i % wn));
    }
}

/* RMSNormalization (opset 23): y = x / sqrt(mean(x^2) + epsilon) * scale
 * over the dims from axis on. */
static kiln_status_t rms_norm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *scale = kiln_ctx_input(ctx, 1);
    if (!x || !scale || !kiln_dtype_is_float(x->dtype) || x->rank < 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X and scale must be float tensors");
    int axis;
    if (!kiln_axis_normalize(kiln_attr_int(node, "axis", -1), x->rank, &axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
    int64_t rows, n;
    kiln_axis_split(x->rank, x->dims, axis, &rows, &n);
    n *= x->dims[axis];
    if (scale->count == 0 || n % scale->count != 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "scale must broadcast to the normalized %lld elements", (long long)n);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (n == 0)
        return KILN_OK;
    rms_norm_job_t job = {x, scale, y, n, kiln_attr_float(node, "epsilon", 1e-5f)};
    kiln_ctx_parallel_for(ctx, rows, NORMALIZE_GRAIN_ELEMS / n + 1, rms_norm_rows, &job);
    return KILN_OK;
}

/* ---- LRN and MeanVarianceNormalization --------------------------------- */

static kiln_status_t lrn_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !kiln_dtype_is_float(x->dtype) || x->rank < 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a float tensor of rank >= 2");
    int64_t size = kiln_attr_int(node, "size", 0);
    if (size <= 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "size must be positive");
    double alpha = kiln_attr_float(node, "alpha", 1e-4f), beta = kiln_attr_float(node, "beta", 0.75f),
           bias = kiln_attr_float(node, "bias", 1.0f);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t N = x->dims[0], C = x->dims[1], S = 1;
    for (int d = 2; d < x->rank; d++)
        S *= x->dims[d];
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < S; i++) {
                double sq = 0.0;
                int64_t lo = c - before < 0 ? 0 : c - before, hi = c + after >= C ? C - 1 : c + after;
                for (int64_t k = lo; k <= hi; k++) {
                    double v = kiln_tensor_get_f64(x, (n * C + k) * S + i);
                    sq += v * v;
                }
                int64_t idx = (n * C + c) * S + i;
                kiln_tensor_set_f64(
                    y, idx, kiln_tensor_get_f64(x, idx) / pow(bias + alpha / (double)size * sq, beta));
            }
    return KILN_OK;
}

/* Group index of every element: its position among the kept (unmasked)
 * dims, so that elements sharing a group are normalized together. */
static void group_of_elements(const kiln_tensor_t *x, const bool *mask, int64_t *group)
{
    int64_t gstride[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, s = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        gstride[d] = mask[d] ? 0 : s;
        if (!mask[d])
            s *= x->dims[d];
    }
    int64_t g = 0;
    for (int64_t e = 0; e < x->count; e++) {
        group[e] = g;
        for (int d = x->rank - 1; d >= 0; d--) {
            if (++idx[d] < x->dims[d]) {
                g += gstride[d];
                break;
            }
            g -= gstride[d] * (x->dims[d] - 1);
            idx[d] = 0;
        }
    }
}

static kiln_status_t mvn_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !kiln_dtype_is_float(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a float tensor");
    static const int64_t default_axes[] = {0, 2, 3};
    const int64_t *axes;
    int64_t n_axes = kiln_attr_ints(kiln_ctx_node(ctx), "axes", &axes);
    if (n_axes < 0) {
        axes = default_axes;
        n_axes = 3;
    }
    bool mask[KILN_MAX_RANK];
    if (!kiln_axes_to_mask(axes, n_axes, x->rank, mask))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axes out of range for rank %d", x->rank);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t n_groups = 1, per_group = 1;
    for (int d = 0; d < x->rank; d++) {
        if (mask[d])
            per_group *= x->dims[d];
        else
            n_groups *= x->dims[d];
    }
    int64_t *group = malloc(sizeof(int64_t) * (size_t)(x->count + 1));
    double *sum = calloc((size_t)n_groups + 1, sizeof(double)),
           *sumsq = calloc((size_t)n_groups + 1, sizeof(double));
    if (!group || !sum || !sumsq) {
        free(group);
        free(sum);
        free(sumsq);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for MeanVarianceNormalization");
    }
    group_of_elements(x, mask, group);
    for (int64_t e = 0; e < x->count; e++) {
        double v = kiln_tensor_get_f64(x, e);
        sum[group[e]] += v;
        sumsq[group[e]] += v * v;
    }
    for (int64_t e = 0; e < x->count; e++) {
        double m = sum[group[e]] / (double)per_group;
        double var = sumsq[group[e]] / (double)per_group - m * m;
        double sd = sqrt(var > 0 ? var : 0.0);
        kiln_tensor_set_f64(y, e, (kiln_tensor_get_f64(x, e) - m) / (sd + 1e-9));
    }
    free(group);
    free(sum);
    free(sumsq);
    return KILN_OK;
}

/* ---- losses ------------------------------------------------------------ */

typedef enum loss_reduction { LOSS_NONE, LOSS_SUM, LOSS_MEAN } loss_reduction_t;

static bool parse_reduction(const char *s, loss_reduction_t *out)
{
    if (!strcmp(s, "none"))
        *out = LOSS_NONE;
    else if (!strcmp(s, "sum"))
        *out = LOSS_SUM;
    else if (!strcmp(s, "mean"))
        *out = LOSS_MEAN;
    else
        return false;
    return true;
}

/* The negative log-likelihood of log-probabilities logp (N, C, d...) at
 * target (N, d...), written to output 0.  logp may be a tensor of any float
 * dtype; the loss gets out_dtype. */
static kiln_status_t nll_loss(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *logp, const kiln_tensor_t *target,
                              const kiln_tensor_t *weight, kiln_dtype_t out_dtype)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    loss_reduction_t red;
    if (!parse_reduction(kiln_attr_string(node, "reduction", "mean"), &red))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "reduction must be none, sum or mean");
    const kiln_attr_t *ii_attr = kiln_node_attr(node, "ignore_index");
    int64_t ignore = ii_attr ? ii_attr->i : 0;
    if (logp->rank < 2 || !target || target->rank != logp->rank - 1 || !kiln_dtype_is_integer(target->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "input must be (N, C, d...) and target (N, d...)");
    int64_t N = logp->dims[0], C = logp->dims[1], D = 1;
    for (int d = 2; d < logp->rank; d++) {
        if (target->dims[d - 1] != logp->dims[d])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "target dim %d does not match the input",
                                 d - 1);
        D *= logp->dims[d];
    }
    if (target->dims[0] != N)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "target batch does not match the input");
    if (weight && weight->count != C)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "weight must have C=%lld elements",
                             (long long)C);
    kiln_tensor_t *loss = red == LOSS_NONE ? kiln_ctx_output(ctx, 0, out_dtype, target->rank, target->dims)
                                           : kiln_ctx_output(ctx, 0, out_dtype, 0, NULL);
    if (!loss)
        return kiln_ctx_status(ctx);
    double total = 0.0, wsum = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < D; i++) {
            int64_t t = kiln_tensor_get_i64(target, n * D + i);
            double l = 0.0, w = 0.0;
            if (!(ii_attr && t == ignore)) {
                if (t < 0 || t >= C)
                    return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "target %lld is outside [0, %lld)",
                                         (long long)t, (long long)C);
                w = weight ? kiln_tensor_get_f64(weight, t) : 1.0;
                l = -kiln_tensor_get_f64(logp, (n * C + t) * D + i) * w;
            }
            if (red == LOSS_NONE)
                kiln_tensor_set_f64(loss, n * D + i, l);
            total += l;
            wsum += w;
        }
    if (red == LOSS_SUM)
        kiln_tensor_set_f64(loss, 0, total);
    else if (red == LOSS_MEAN)
        kiln_tensor_set_f64(loss, 0, total / wsum);
    return KILN_OK;
}

static kiln_status_t nll_loss_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !kiln_dtype_is_float(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input must be a float tensor");
    return nll_loss(ctx, x, kiln_ctx_input(ctx, 1), kiln_ctx_input(ctx, 2), x->dtype);
}

static kiln_status_t sce_loss_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !kiln_dtype_is_float(x->dtype) || x->rank < 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scores must be a float tensor (N, C, d...)");
    kiln_tensor_t *logp = kiln_tensor_new(x->dtype, x->rank, x->dims);
    if (!logp)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for log-probabilities");
    int64_t outer, inner, n = x->dims[1];
    kiln_axis_split(x->rank, x->dims, 1, &outer, &inner);
    double *buf = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!buf) {
        kiln_tensor_free(logp);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for a row of %lld", (long long)n);
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            softmax_slice(LOG_SOFTMAX, x, logp, o * n * inner + i, inner, n, buf);
    free(buf);
    kiln_status_t st = nll_loss(ctx, logp, kiln_ctx_input(ctx, 1), kiln_ctx_input(ctx, 2), x->dtype);
    if (st == KILN_OK && kiln_ctx_output_count(ctx) > 1) {
        kiln_tensor_t *lp = kiln_ctx_output(ctx, 1, x->dtype, x->rank, x->dims);
        if (!lp)
            st = kiln_ctx_status(ctx);
        else if (x->nbytes)
            memcpy(lp->data, logp->data, x->nbytes);
    }
    kiln_tensor_free(logp);
    return st;
}

/* ---- registration ------------------------------------------------------ */

static void register_op(kiln_registry_t *reg, const char *op, int since, kiln_kernel_run_fn run)
{
    kiln_register(reg, &(kiln_kernel_t){.op = op, .since = since, .run = run});
}

void kiln_ops_register_normalize(kiln_registry_t *reg)
{
    register_op(reg, "Softmax", 1, softmax_run);
    register_op(reg, "LogSoftmax", 1, log_softmax_run);
    register_op(reg, "Hardmax", 1, hardmax_run);
    register_op(reg, "BatchNormalization", 1, batch_norm_run);
    register_op(reg, "InstanceNormalization", 1, instance_norm_run);
    register_op(reg, "LayerNormalization", 1, layer_norm_run);
    register_op(reg, "GroupNormalization", 18, group_norm_run);
    register_op(reg, "RMSNormalization", 23, rms_norm_run);
    register_op(reg, "LRN", 1, lrn_run);
    register_op(reg, "MeanVarianceNormalization", 1, mvn_run);
    register_op(reg, "NegativeLogLikelihoodLoss", 12, nll_loss_run);
    register_op(reg, "SoftmaxCrossEntropyLoss", 12, sce_loss_run);
}
