/*
 * pool.c - pooling: AveragePool, MaxPool (with Indices), LpPool, their
 * Global forms, and MaxUnpool.
 *
 * Every windowed pool runs one loop (pool_plane) over the 3-D window of
 * nn_geometry.h, parallel over (image, channel) planes; what differs is
 * the reduction (max, mean, p-norm) and which positions count towards a
 * mean.  Values are reduced in double, read from and written to any
 * numeric dtype, so MaxPool on uint8 and pools on float64 need no code of
 * their own.  float32 max and average pooling (without Indices) take a
 * fast tap-major path on the SIMD row primitives of nn_rows.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/nn_geometry.h"
#include "ops/nn_kernels.h"
#include "ops/nn_rows.h"

typedef enum pool_kind { POOL_MAX, POOL_AVERAGE, POOL_LP } pool_kind_t;

typedef struct pool_job {
    pool_kind_t kind;
    const kiln_tensor_t *x;
    kiln_tensor_t *y;
    int64_t *indices;          /* MaxPool's optional second output */
    bool indices_col_major;    /* storage_order = 1 */
    bool count_include_pad;    /* AveragePool */
    double p;                  /* LpPool */
    kiln_window_t w;
    int64_t in_vol, out_vol;
    float *inv_counts[KILN_WINDOW_DIMS]; /* float32 AveragePool: 1 / taps counted, per output, per dim */
} pool_job_t;

static double load(const kiln_tensor_t *t, int64_t i)
{
    return t->dtype == KILN_DTYPE_FLOAT32 ? ((const float *)t->data)[i] : kiln_tensor_get_f64(t, i);
}

static void store(kiln_tensor_t *t, int64_t i, double v)
{
    if (t->dtype == KILN_DTYPE_FLOAT32)
        ((float *)t->data)[i] = (float)v;
    else
        kiln_tensor_set_f64(t, i, v);
}

/* Position of input element (d, h, w) of plane p as MaxPool reports it:
 * row-major over the whole tensor, or column-major over the spatial dims. */
static int64_t argmax_index(const pool_job_t *job, int64_t plane, int64_t d, int64_t h, int64_t w)
{
    const kiln_window_t *win = &job->w;
    if (job->indices_col_major)
        return plane * job->in_vol + (w * win->in[1] + h) * win->in[0] + d;
    return plane * job->in_vol + (d * win->in[1] + h) * win->in[2] + w;
}

/* Reduces one window at output (od, oh, ow) of plane `plane`. */
static void pool_window(const pool_job_t *job, int64_t plane, int64_t od, int64_t oh, int64_t ow,
                        int64_t out_index)
{
    const kiln_window_t *w = &job->w;
    double acc = job->kind == POOL_MAX ? -INFINITY : 0.0;
    int64_t best = -1, inside = 0, padded = 0;
    int64_t start[3] = {od * w->stride[0] - w->pad_begin[0], oh * w->stride[1] - w->pad_begin[1],
                        ow * w->stride[2] - w->pad_begin[2]};
    for (int64_t kd = 0; kd < w->kernel[0]; kd++) {
        int64_t id = start[0] + kd * w->dilation[0];
        bool d_in = id >= 0 && id < w->in[0], d_pad = id < w->in[0] + w->pad_end[0];
        for (int64_t kh = 0; kh < w->kernel[1]; kh++) {
            int64_t ih = start[1] + kh * w->dilation[1];
            bool h_in = ih >= 0 && ih < w->in[1], h_pad = ih < w->in[1] + w->pad_end[1];
            for (int64_t kw = 0; kw < w->kernel[2]; kw++) {
                int64_t iw = start[2] + kw * w->dilation[2];
                bool w_in = iw >= 0 && iw < w->in[2], w_pad = iw < w->in[2] + w->pad_end[2];
                if (d_pad && h_pad && w_pad)
                    padded++; /* inside the padded input (ceil_mode windows may pass it) */
                if (!(d_in && h_in && w_in))
                    continue;
                inside++;
                double v = load(job->x, plane * job->in_vol + (id * w->in[1] + ih) * w->in[2] + iw);
                if (job->kind == POOL_MAX) {
                    if (v > acc || best < 0) {
                        acc = v;
                        best = argmax_index(job, plane, id, ih, iw);
                    }
                } else if (job->kind == POOL_AVERAGE) {
                    acc += v;
                } else {
                    acc += pow(fabs(v), job->p);
                }
            }
        }
    }
    if (job->kind == POOL_AVERAGE) {
        int64_t count = job->count_include_pad ? padded : inside;
        acc = count > 0 ? acc / (double)count : 0.0;
    } else if (job->kind == POOL_LP) {
        acc = pow(acc, 1.0 / job->p);
    }
    store(job->y, out_index, acc);
    if (job->indices)
        job->indices[out_index] = best < 0 ? 0 : best;
}

static void pool_planes(void *arg, int64_t begin, int64_t end)
{
    const pool_job_t *job = arg;
    const kiln_window_t *w = &job->w;
    for (int64_t plane = begin; plane < end; plane++) {
        int64_t out_index = plane * job->out_vol;
        for (int64_t od = 0; od < w->out[0]; od++)
            for (int64_t oh = 0; oh < w->out[1]; oh++)
                for (int64_t ow = 0; ow < w->out[2]; ow++)
                    pool_window(job, plane, od, oh, ow, out_index++);
    }
}

/* ---- float32 fast path ---------------------------------------------------- */

/* The output positions o in [0, out) whose tap input o*stride + off lies
 * in [0, in): [*lo, *hi). */
static void valid_outputs(int64_t off, int64_t stride, int64_t in, int64_t out, int64_t *lo,
                          int64_t *hi)
{
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = in - off <= 0 ? 0 : (in - off + stride - 1) / stride;
    if (*hi > out)
        *hi = out;
    if (*lo > *hi)
        *lo = *hi;
}

/* For each output along dim i, 1 / how many taps land in the counted
 * region (the input, or the padded input when count_include_pad); 0 when
 * none do. */
static void tap_count_reciprocals(const pool_job_t *job, int i, float *inv)
{
    const kiln_window_t *w = &job->w;
    int64_t lo = job->count_include_pad ? -w->pad_begin[i] : 0;
    int64_t hi = job->count_include_pad ? w->in[i] + w->pad_end[i] : w->in[i];
    for (int64_t o = 0; o < w->out[i]; o++) {
        int64_t count = 0;
        for (int64_t k = 0; k < w->kernel[i]; k++) {
            int64_t pos = o * w->stride[i] - w->pad_begin[i] + k * w->dilation[i];
            count += pos >= lo && pos < hi;
        }
        inv[o] = count > 0 ? 1.0f / (float)count : 0.0f;
    }
}

/* Max or average of one float32 plane, tap-major: for each kernel tap,
 * fold the shifted input rows into every output row it reaches with the
 * SIMD row primitives; averages are scaled by 1 / tap count after. */
static void pool_plane_f32(const pool_job_t *job, int64_t plane)
{
    const kiln_window_t *w = &job->w;
    const float *x = (const float *)job->x->data + plane * job->in_vol;
    float *y = (float *)job->y->data + plane * job->out_vol;
    bool is_max = job->kind == POOL_MAX;
    for (int64_t i = 0; i < job->out_vol; i++)
        y[i] = is_max ? -INFINITY : 0.0f;
    int64_t s2 = w->stride[2];
    for (int64_t kd = 0; kd < w->kernel[0]; kd++) {
        int64_t d_off = kd * w->dilation[0] - w->pad_begin[0], od_lo, od_hi;
        valid_outputs(d_off, w->stride[0], w->in[0], w->out[0], &od_lo, &od_hi);
        for (int64_t kh = 0; kh < w->kernel[1]; kh++) {
            int64_t h_off = kh * w->dilation[1] - w->pad_begin[1], oh_lo, oh_hi;
            valid_outputs(h_off, w->stride[1], w->in[1], w->out[1], &oh_lo, &oh_hi);
            for (int64_t kw = 0; kw < w->kernel[2]; kw++) {
                int64_t w_off = kw * w->dilation[2] - w->pad_begin[2], ow_lo, ow_hi;
                valid_outputs(w_off, s2, w->in[2], w->out[2], &ow_lo, &ow_hi);
                for (int64_t od = od_lo; od < od_hi; od++)
                    for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
                        int64_t id = od * w->stride[0] + d_off, ih = oh * w->stride[1] + h_off;
                        const float *xrow = x + (id * w->in[1] + ih) * w->in[2] + w_off + ow_lo * s2;
                        float *yrow = y + (od * w->out[1] + oh) * w->out[2] + ow_lo;
                        if (is_max)
                            kiln_row_max(yrow, xrow, s2, ow_hi - ow_lo);
                        else
                            kiln_row_axpy(yrow, xrow, s2, 1.0f, ow_hi - ow_lo);
                    }
            }
        }
    }
    if (is_max)
        return;
    /* the window is separable, so 1/count is a product of per-dim
     * reciprocals (0 where no tap counts) */
    for (int64_t od = 0; od < w->out[0]; od++)
        for (int64_t oh = 0; oh < w->out[1]; oh++) {
            float *yrow = y + (od * w->out[1] + oh) * w->out[2];
            float inv_dh = job->inv_counts[0][od] * job->inv_counts[1][oh];
            for (int64_t ow = 0; ow < w->out[2]; ow++)
                yrow[ow] *= inv_dh * job->inv_counts[2][ow];
        }
}

static void pool_planes_f32(void *arg, int64_t begin, int64_t end)
{
    for (int64_t plane = begin; plane < end; plane++)
        pool_plane_f32(arg, plane);
}

/* Runs the float32 fast path when it applies (max without Indices, or
 * average); returns false to fall back to the generic path. */
static bool try_pool_f32(kiln_kernel_ctx_t *ctx, pool_job_t *job, int64_t planes)
{
    if (job->x->dtype != KILN_DTYPE_FLOAT32 || job->indices ||
        (job->kind != POOL_MAX && job->kind != POOL_AVERAGE))
        return false;
    float *inv = NULL;
    if (job->kind == POOL_AVERAGE) {
        inv = malloc((size_t)(job->w.out[0] + job->w.out[1] + job->w.out[2]) * sizeof *inv);
        if (!inv)
            return false;
        job->inv_counts[0] = inv;
        job->inv_counts[1] = inv + job->w.out[0];
        job->inv_counts[2] = job->inv_counts[1] + job->w.out[1];
        for (int i = 0; i < KILN_WINDOW_DIMS; i++)
            tap_count_reciprocals(job, i, job->inv_counts[i]);
    }
    kiln_ctx_parallel_for(ctx, planes, 1, pool_planes_f32, job);
    free(inv);
    return true;
}

static kiln_status_t check_pool_input(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x)
{
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "input X is required");
    if (x->dtype == KILN_DTYPE_STRING || x->dtype == KILN_DTYPE_BOOL ||
        x->dtype == KILN_DTYPE_UNDEFINED)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "dtype %d is not implemented", (int)x->dtype);
    return KILN_OK;
}

/* Common body of the windowed pools. */
static kiln_status_t run_window_pool(kiln_kernel_ctx_t *ctx, pool_kind_t kind)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    kiln_status_t st = check_pool_input(ctx, x);
    if (st != KILN_OK)
        return st;
    pool_job_t job = {.kind = kind, .x = x};
    bool ceil_mode = kiln_attr_int(node, "ceil_mode", 0) != 0;
    if ((st = kiln_window_forward(ctx, x, NULL, ceil_mode, &job.w)) != KILN_OK)
        return st;
    job.count_include_pad = kiln_attr_int(node, "count_include_pad", 0) != 0;
    job.p = (double)kiln_attr_int(node, "p", 2);
    job.indices_col_major = kiln_attr_int(node, "storage_order", 0) != 0;
    job.in_vol = kiln_window_volume(job.w.in);
    job.out_vol = kiln_window_volume(job.w.out);
    int64_t dims[KILN_MAX_RANK];
    kiln_window_output_dims(&job.w, x->dims[0], x->dims[1], dims);
    /* every output element (and index) is written: no zero-fill needed */
    if (!(job.y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, dims)))
        return kiln_ctx_status(ctx);
    if (kind == POOL_MAX && kiln_ctx_output_wanted(ctx, 1)) {
        kiln_tensor_t *ind = kiln_ctx_output_uninit(ctx, 1, KILN_DTYPE_INT64, x->rank, dims);
        if (!ind)
            return kiln_ctx_status(ctx);
        job.indices = ind->data;
    }
    if (!try_pool_f32(ctx, &job, x->dims[0] * x->dims[1]))
        kiln_ctx_parallel_for(ctx, x->dims[0] * x->dims[1], 1, pool_planes, &job);
    return KILN_OK;
}

kiln_status_t kiln_average_pool_run(kiln_kernel_ctx_t *ctx)
{
    return run_window_pool(ctx, POOL_AVERAGE);
}

kiln_status_t kiln_max_pool_run(kiln_kernel_ctx_t *ctx)
{
    return run_window_pool(ctx, POOL_MAX);
}

kiln_status_t kiln_lp_pool_run(kiln_kernel_ctx_t *ctx)
{
    return run_window_pool(ctx, POOL_LP);
}

/* ---- Global pools ---------------------------------------------------------- */

typedef struct global_job {
    pool_kind_t kind;
    const kiln_tensor_t *x;
    kiln_tensor_t *y;
    int64_t plane_size;
    double p;
} global_job_t;

static void global_planes(void *arg, int64_t begin, int64_t end)
{
    const global_job_t *job = arg;
    for (int64_t plane = begin; plane < end; plane++) {
        int64_t base = plane * job->plane_size;
        double acc = job->kind == POOL_MAX ? -INFINITY : 0.0;
        if (job->x->dtype == KILN_DTYPE_FLOAT32 && job->kind == POOL_AVERAGE) {
            const float *x = (const float *)job->x->data + base;
            float sum = 0.0f;
            for (int64_t i = 0; i < job->plane_size; i++)
                sum += x[i];
            acc = sum;
        } else {
            for (int64_t i = 0; i < job->plane_size; i++) {
                double v = load(job->x, base + i);
                if (job->kind == POOL_MAX)
                    acc = v > acc ? v : acc;
                else if (job->kind == POOL_AVERAGE)
                    acc += v;
                else
                    acc += pow(fabs(v), job->p);
            }
        }
        if (job->kind == POOL_AVERAGE)
            acc /= (double)job->plane_size;
        else if (job->kind == POOL_LP)
            acc = pow(acc, 1.0 / job->p);
        store(job->y, plane, acc);
    }
}

static kiln_status_t run_global_pool(kiln_kernel_ctx_t *ctx, pool_kind_t kind)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    kiln_status_t st = check_pool_input(ctx, x);
    if (st != KILN_OK)
        return st;
    if (x->rank < 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input X has rank %d; expected >= 2",
                             x->rank);
    int64_t dims[KILN_MAX_RANK];
    global_job_t job = {.kind = kind, .x = x, .plane_size = 1,
                        .p = (double)kiln_attr_int(kiln_ctx_node(ctx), "p", 2)};
    for (int i = 0; i < x->rank; i++) {
        dims[i] = i < 2 ? x->dims[i] : 1;
        if (i >= 2)
            job.plane_size *= x->dims[i];
    }
    if (!(job.y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, dims)))
        return kiln_ctx_status(ctx);
    if (job.plane_size == 0 && job.y->count > 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input X has an empty spatial dim");
    kiln_ctx_parallel_for(ctx, x->dims[0] * x->dims[1], 1, global_planes, &job);
    return KILN_OK;
}

kiln_status_t kiln_global_average_pool_run(kiln_kernel_ctx_t *ctx)
{
    return run_global_pool(ctx, POOL_AVERAGE);
}

kiln_status_t kiln_global_max_pool_run(kiln_kernel_ctx_t *ctx)
{
    return run_global_pool(ctx, POOL_MAX);
}

kiln_status_t kiln_global_lp_pool_run(kiln_kernel_ctx_t *ctx)
{
    return run_global_pool(ctx, POOL_LP);
}

/* ---- MaxUnpool --------------------------------------------------------------- */

/* Maps a MaxPool index (row-major over N, C and the implied unpooled
 * spatial shape) to y's element, or -1 when it falls outside. */
static int64_t unpool_target(const kiln_tensor_t *x, const kiln_window_t *w, const kiln_tensor_t *y,
                             int64_t index)
{
    int64_t implied[KILN_MAX_RANK];
    implied[0] = x->dims[0];
    implied[1] = x->dims[1];
    int64_t count = x->dims[0] * x->dims[1];
    for (int i = 0; i < w->nd; i++) {
        int wi = KILN_WINDOW_DIMS - w->nd + i;
        implied[2 + i] = (w->in[wi] - 1) * w->stride[wi] - w->pad_begin[wi] - w->pad_end[wi] + w->kernel[wi];
        count *= implied[2 + i];
    }
    if (index < 0 || index >= count)
        return -1;
    int64_t dst = 0, scale = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        int64_t coord = index % implied[i];
        index /= implied[i];
        if (coord >= y->dims[i])
            return -1;
        dst += coord * scale;
        scale *= y->dims[i];
    }
    return dst;
}

kiln_status_t kiln_max_unpool_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *ind = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *shape = kiln_ctx_input(ctx, 2);
    kiln_status_t st = check_pool_input(ctx, x);
    if (st != KILN_OK)
        return st;
    if (!ind || ind->dtype != KILN_DTYPE_INT64 || !kiln_shape_equal(x, ind))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input I must be int64 shaped like X");
    kiln_window_t w;
    if ((st = kiln_window_forward(ctx, x, NULL, false, &w)) != KILN_OK)
        return st;
    int64_t dims[KILN_MAX_RANK];
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < w.nd; i++) {
        int wi = KILN_WINDOW_DIMS - w.nd + i;
        dims[2 + i] = (w.in[wi] - 1) * w.stride[wi] - w.pad_begin[wi] - w.pad_end[wi] + w.kernel[wi];
    }
    if (shape) {
        if (shape->rank != 1 || shape->dims[0] != x->rank)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "output_shape must have %d values",
                                 x->rank);
        for (int i = 0; i < x->rank; i++) {
            dims[i] = kiln_tensor_get_i64(shape, i);
            if (dims[i] < 0)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "output_shape[%d] is negative", i);
        }
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    /* Indices count positions of the unpooled shape the pads and strides
     * imply; output_shape may be larger, so re-address each one there. */
    const int64_t *id = ind->data;
    for (int64_t i = 0; i < x->count; i++) {
        int64_t dst = unpool_target(x, &w, y, id[i]);
        if (dst < 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "index %lld is outside the output",
                                 (long long)id[i]);
        store(y, dst, load(x, i));
    }
    return KILN_OK;
}
