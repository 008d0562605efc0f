/*
 * image.c - Image ops: Resize, Upsample, GridSample, AffineGrid, RoiAlign,
 * NonMaxSuppression.
 *
 * Resize (and Upsample, its older form) is separable: every output
 * coordinate on one axis maps back to a fractional input coordinate, and the
 * output value is a weighted sum of a few input neighbours on each axis
 * (1-2 for nearest, 2 for linear, 4 for cubic).  So the kernel first builds,
 * per axis and per output index, the list of (input index, weight) taps,
 * following the ONNX reference implementation (neighbours beyond the edge
 * repeat the edge value; exclude_outside drops them and renormalises), and
 * then applies them one axis at a time (separable passes over contiguous
 * rows, axes that are plain copies skipped).  All arithmetic is in
 * double and written back in the input's dtype.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

/* ==== Resize and Upsample =================================================== */

typedef enum resize_mode { RESIZE_NEAREST, RESIZE_LINEAR, RESIZE_CUBIC } resize_mode_t;

typedef enum coord_mode {
    COORD_HALF_PIXEL,
    COORD_HALF_PIXEL_SYMMETRIC,
    COORD_PYTORCH_HALF_PIXEL,
    COORD_ALIGN_CORNERS,
    COORD_ASYMMETRIC,
    COORD_TF_HALF_PIXEL_FOR_NN,
    COORD_TF_CROP_AND_RESIZE
} coord_mode_t;

typedef enum nearest_mode {
    NEAREST_ROUND_PREFER_FLOOR,
    NEAREST_ROUND_PREFER_CEIL,
    NEAREST_FLOOR,
    NEAREST_CEIL,
    NEAREST_SIMPLE /* opset < 11 and Upsample: floor when upsampling, ceil when downsampling */
} nearest_mode_t;

/* The settings of one Resize/Upsample node. */
typedef struct resize_params {
    resize_mode_t mode;
    coord_mode_t coord;
    nearest_mode_t nearest;
    double cubic_a;
    bool exclude_outside;
    bool antialias; /* linear/cubic: widen the filter by 1/scale when downscaling */
    double extrapolation;
} resize_params_t;

/* Most taps one output index may read on one axis (antialiased filters
 * have about 4/scale taps; a scale needing more is refused). */
#define MAX_TAPS 4096

/* Input coordinates are clamped to +-COORD_LIMIT before conversion to an
 * index, so hostile scales, rois or grids cannot overflow the cast. */
#define COORD_LIMIT 1e15

/* The input taps of one output index along one axis: n (index, weight)
 * pairs in storage owned by the caller. */
typedef struct axis_taps {
    int n;
    int64_t *index;
    double *weight;
    bool outside; /* tf_crop_and_resize: the coordinate fell outside the input */
} axis_taps_t;

/* Maps output index x to the input coordinate (the ONNX reference's x_ori).
 * `scale` is the axis scale, `in`/`out` the sizes, roi_start/end the roi. */
static double original_coord(const resize_params_t *p, double x, double scale, int64_t in, int64_t out,
                             double roi_start, double roi_end)
{
    double out_width = scale * (double)in;
    switch (p->coord) {
    case COORD_ALIGN_CORNERS:
        return out_width == 1 ? 0.0 : x * (double)(in - 1) / (out_width - 1);
    case COORD_ASYMMETRIC:
        return x / scale;
    case COORD_TF_HALF_PIXEL_FOR_NN:
        return (x + 0.5) / scale;
    case COORD_TF_CROP_AND_RESIZE: {
        double v = out == 1 ? (roi_end - roi_start) * (double)(in - 1) / 2
                            : x * (roi_end - roi_start) * (double)(in - 1) / (double)(out - 1);
        return v + roi_start * (double)(in - 1);
    }
    case COORD_PYTORCH_HALF_PIXEL:
        return out == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    case COORD_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out / out_width;
        double center = (double)in / 2;
        double offset = center * (1 - adjustment);
        return offset + (x + 0.5) / scale - 0.5;
    }
    case COORD_HALF_PIXEL:
    default:
        return (x + 0.5) / scale - 0.5;
    }
}

/* Coefficients of the two neighbours (left, right) for nearest; ratio in (0, 1]. */
static void nearest_coeffs(const resize_params_t *p, double ratio, double scale, double *c)
{
    bool right;
    if (ratio == 1.0) {
        right = true;
    } else {
        switch (p->nearest) {
        case NEAREST_ROUND_PREFER_CEIL:
            right = ratio >= 0.5;
            break;
        case NEAREST_FLOOR:
            right = false;
            break;
        case NEAREST_CEIL:
            right = true;
            break;
        case NEAREST_SIMPLE:
            right = scale < 1.0;
            break;
        case NEAREST_ROUND_PREFER_FLOOR:
        default:
            right = ratio > 0.5;
            break;
        }
    }
    c[0] = right ? 0.0 : 1.0;
    c[1] = right ? 1.0 : 0.0;
}

static void cubic_coeffs(double a, double r, double *c)
{
    double s = 1 - r;
    c[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a;
    c[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
    c[2] = ((a + 2) * s - (a + 3)) * s * s + 1;
    c[3] = ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a;
}

/* The filter of antialiased linear (support 1) and cubic (support 2)
 * resizing, evaluated at distance d. */
static double antialias_filter(const resize_params_t *p, double d)
{
    double a = p->cubic_a, x = fabs(d);
    if (p->mode == RESIZE_LINEAR)
        return x < 1 ? 1 - x : 0;
    if (x <= 1)
        return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2)
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
}

/* First tap offset (relative to the left neighbour, <= 0) of the
 * antialiased filter at this scale; the filter has 2 - 2 * start taps. */
static int64_t antialias_start(const resize_params_t *p, double scale)
{
    double support = p->mode == RESIZE_LINEAR ? 1.0 : 2.0;
    return (int64_t)floor(-support / fmin(scale, 1.0)) + 1;
}

static bool uses_antialias(const resize_params_t *p, double scale)
{
    return p->antialias && p->mode != RESIZE_NEAREST && scale < 1.0;
}

/* How many taps an output index reads at most on an axis of this scale. */
static int64_t taps_per_index(const resize_params_t *p, double scale)
{
    if (uses_antialias(p, scale))
        return 2 - 2 * antialias_start(p, scale);
    return p->mode == RESIZE_CUBIC ? 4 : 2;
}

/* Raw coefficients of the n taps around the left neighbour for a ratio in
 * (0, 1] (the ONNX reference's get_coeffs). */
static void tap_coeffs(const resize_params_t *p, double ratio, double scale, int n, double *c)
{
    if (uses_antialias(p, scale)) {
        int64_t start = antialias_start(p, scale);
        double sum = 0;
        for (int k = 0; k < n; k++) {
            c[k] = antialias_filter(p, scale * ((double)(start + k) - ratio));
            sum += c[k];
        }
        for (int k = 0; k < n && sum != 0; k++)
            c[k] /= sum;
        return;
    }
    switch (p->mode) {
    case RESIZE_NEAREST:
        nearest_coeffs(p, ratio, scale, c);
        break;
    case RESIZE_LINEAR:
        c[0] = 1 - ratio, c[1] = ratio;
        break;
    case RESIZE_CUBIC:
    default:
        cubic_coeffs(p->cubic_a, ratio, c);
        break;
    }
}

/* Builds the taps of output index x on an axis; taps->index/weight must
 * have room for taps_per_index() entries. */
static void build_taps(const resize_params_t *p, int64_t x, double scale, int64_t in, int64_t out,
                       double roi_start, double roi_end, axis_taps_t *taps)
{
    double xo = original_coord(p, (double)x, scale, in, out, roi_start, roi_end);
    taps->n = 0;
    taps->outside = p->coord == COORD_TF_CROP_AND_RESIZE &&
                    (!(xo >= 0) || xo > (double)(in - 1)); /* NaN roi counts as outside */
    if (taps->outside)
        return;
    /* Far-away coordinates only ever read the edge; keep them castable. */
    xo = isfinite(xo) ? fmax(fmin(xo, COORD_LIMIT), -COORD_LIMIT) : 0.0;
    /* The left neighbour and the ratio in (0, 1] (an exact hit counts as the
     * right neighbour, as in the reference). */
    double base = floor(xo);
    double ratio = xo - base;
    if (ratio == 0.0) {
        base -= 1;
        ratio = 1.0;
    }
    int n = (int)taps_per_index(p, scale);
    double *c = taps->weight; /* coefficients computed in place, then compacted */
    tap_coeffs(p, ratio, scale, n, c);
    int64_t first = (int64_t)base - (n / 2 - 1);
    if (p->exclude_outside) {
        double sum = 0;
        for (int k = 0; k < n; k++) {
            int64_t idx = first + k;
            if (idx < 0 || idx >= in)
                c[k] = 0;
            sum += c[k];
        }
        for (int k = 0; k < n && sum != 0; k++)
            c[k] /= sum;
    }
    for (int k = 0; k < n; k++) {
        if (c[k] == 0.0)
            continue;
        int64_t idx = first + k;
        idx = idx < 0 ? 0 : idx >= in ? in - 1 : idx;
        taps->index[taps->n] = idx;
        taps->weight[taps->n] = c[k];
        taps->n++;
    }
}

/* Clamps v to the range of an integer dtype (cubic overshoot on uint8
 * images must not wrap). */
static double saturate_integer(kiln_dtype_t dtype, double v)
{
    double lo, hi;
    switch (dtype) {
    case KILN_DTYPE_UINT8:
        lo = 0, hi = 255;
        break;
    case KILN_DTYPE_INT8:
        lo = -128, hi = 127;
        break;
    case KILN_DTYPE_UINT16:
        lo = 0, hi = 65535;
        break;
    case KILN_DTYPE_INT16:
        lo = -32768, hi = 32767;
        break;
    case KILN_DTYPE_UINT32:
        lo = 0, hi = 4294967295.0;
        break;
    case KILN_DTYPE_INT32:
        lo = -2147483648.0, hi = 2147483647.0;
        break;
    case KILN_DTYPE_UINT64:
        lo = 0, hi = 18446744073709549568.0;
        break;
    default:
        lo = -9223372036854775808.0, hi = 9223372036854774784.0;
        break;
    }
    return isnan(v) ? 0 : v < lo ? lo : v > hi ? hi : v;
}

/* True when the taps of an axis just copy it (same size, index i -> i). */
static bool taps_are_identity(const axis_taps_t *taps, int64_t in, int64_t out)
{
    if (in != out)
        return false;
    for (int64_t i = 0; i < out; i++)
        if (taps[i].outside || taps[i].n != 1 || taps[i].index[0] != i || taps[i].weight[0] != 1.0)
            return false;
    return true;
}

/* One separable pass: resizes one axis of src into dst, where outer/inner
 * are the element counts before/after the axis.  Inner rows are
 * contiguous, so each tap is one multiply-add over a row. */
typedef struct resize_pass {
    const double *src;
    double *dst;
    int64_t in, out, inner;
    const axis_taps_t *taps;
    double extrapolation;
} resize_pass_t;

/* Output rows [begin, end) of a pass, row r = (outer index) * out + i. */
static void resize_axis_rows(void *arg, int64_t begin, int64_t end)
{
    const resize_pass_t *ps = arg;
    int64_t in = ps->in, out = ps->out, inner = ps->inner;
    double extrapolation = ps->extrapolation;
    for (int64_t r = begin; r < end; r++) {
        int64_t o = r / out, i = r % out;
        const double *src = ps->src;
        double *row = ps->dst + r * inner;
        const axis_taps_t *t = &ps->taps[i];
        if (t->outside) {
            for (int64_t q = 0; q < inner; q++)
                row[q] = extrapolation;
            continue;
        }
        for (int64_t q = 0; q < inner; q++)
            row[q] = 0;
        for (int k = 0; k < t->n; k++) {
            const double *from = src + (o * in + t->index[k]) * inner;
            double w = t->weight[k];
            for (int64_t q = 0; q < inner; q++)
                row[q] += w * from[q];
        }
    }
}

/* Computes the output from the per-axis taps, one axis at a time from the
 * last (the reference's nesting order), skipping axes that are copies.
 * Interpolation is separable, so this equals summing the tap products of
 * all axes per element at a fraction of the cost. */
static kiln_status_t resize_compute(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, kiln_tensor_t *y,
                                    axis_taps_t *const *taps, double extrapolation)
{
    int rank = x->rank;
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)rank);
    double *cur = malloc((size_t)x->count * sizeof *cur);
    if (!cur)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for resize");
    for (int64_t i = 0; i < x->count; i++)
        cur[i] = kiln_tensor_get_f64(x, i);
    for (int a = rank - 1; a >= 0; a--) {
        if (taps_are_identity(taps[a], x->dims[a], y->dims[a]))
            continue;
        int64_t outer = 1, inner = 1;
        for (int b = 0; b < a; b++)
            outer *= dims[b];
        for (int b = a + 1; b < rank; b++)
            inner *= dims[b];
        double *next = malloc((size_t)(outer * y->dims[a] * inner + 1) * sizeof *next);
        if (!next) {
            free(cur);
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for resize");
        }
        resize_pass_t pass = {cur, next, dims[a], y->dims[a], inner, taps[a], extrapolation};
        kiln_ctx_parallel_for(ctx, outer * y->dims[a], 4096 / inner + 1, resize_axis_rows, &pass);
        free(cur);
        cur = next;
        dims[a] = y->dims[a];
    }
    bool integer_out = kiln_dtype_is_integer(y->dtype);
    for (int64_t o = 0; o < y->count; o++)
        kiln_tensor_set_f64(y, o, integer_out ? saturate_integer(y->dtype, nearbyint(cur[o])) : cur[o]);
    free(cur);
    return KILN_OK;
}

/* Runs the resize once the output sizes, scales and roi per axis are known. */
static kiln_status_t resize_with(kiln_kernel_ctx_t *ctx, const resize_params_t *p, const kiln_tensor_t *x,
                                 const int64_t *out_dims, const double *scales, const double *roi)
{
    int rank = x->rank;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, rank, out_dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (y->count == 0)
        return KILN_OK;
    if (x->count == 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot resize an empty input");
    axis_taps_t *taps[KILN_MAX_RANK] = {0};
    int64_t *indices[KILN_MAX_RANK] = {0};
    double *weights[KILN_MAX_RANK] = {0};
    kiln_status_t st = KILN_OK;
    for (int a = 0; a < rank && st == KILN_OK; a++) {
        int64_t n = taps_per_index(p, scales[a]);
        if (n > MAX_TAPS) {
            st = kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED,
                               "antialiasing at scale %g needs %lld taps (at most %d)", scales[a],
                               (long long)n, MAX_TAPS);
            break;
        }
        taps[a] = malloc((size_t)out_dims[a] * sizeof *taps[a]);
        indices[a] = malloc((size_t)(out_dims[a] * n) * sizeof *indices[a]);
        weights[a] = malloc((size_t)(out_dims[a] * n) * sizeof *weights[a]);
        if (!taps[a] || !indices[a] || !weights[a]) {
            st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for resize taps");
            break;
        }
        for (int64_t i = 0; i < out_dims[a]; i++) {
            taps[a][i].index = indices[a] + i * n;
            taps[a][i].weight = weights[a] + i * n;
            build_taps(p, i, scales[a], x->dims[a], out_dims[a], roi[a], roi[rank + a], &taps[a][i]);
        }
    }
    if (st == KILN_OK)
        st = resize_compute(ctx, x, y, taps, p->extrapolation);
    for (int a = 0; a < rank; a++) {
        free(taps[a]);
        free(indices[a]);
        free(weights[a]);
    }
    return st;
}

static bool parse_coord_mode(const char *s, coord_mode_t *m)
{
    static const struct {
        const char *name;
        coord_mode_t mode;
    } table[] = {
        {"half_pixel", COORD_HALF_PIXEL},
        {"half_pixel_symmetric", COORD_HALF_PIXEL_SYMMETRIC},
        {"pytorch_half_pixel", COORD_PYTORCH_HALF_PIXEL},
        {"align_corners", COORD_ALIGN_CORNERS},
        {"asymmetric", COORD_ASYMMETRIC},
        {"tf_half_pixel_for_nn", COORD_TF_HALF_PIXEL_FOR_NN},
        {"tf_crop_and_resize", COORD_TF_CROP_AND_RESIZE},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(s, table[i].name)) {
            *m = table[i].mode;
            return true;
        }
    return false;
}

static bool parse_nearest_mode(const char *s, nearest_mode_t *m)
{
    if (!strcmp(s, "round_prefer_floor"))
        *m = NEAREST_ROUND_PREFER_FLOOR;
    else if (!strcmp(s, "round_prefer_ceil"))
        *m = NEAREST_ROUND_PREFER_CEIL;
    else if (!strcmp(s, "floor"))
        *m = NEAREST_FLOOR;
    else if (!strcmp(s, "ceil"))
        *m = NEAREST_CEIL;
    else
        return false;
    return true;
}

static bool parse_resize_mode(const char *s, resize_mode_t *m)
{
    if (!strcmp(s, "nearest"))
        *m = RESIZE_NEAREST;
    else if (!strcmp(s, "linear") || !strcmp(s, "bilinear"))
        *m = RESIZE_LINEAR;
    else if (!strcmp(s, "cubic"))
        *m = RESIZE_CUBIC;
    else
        return false;
    return true;
}

/* An output size computed from a scale: floor(in * scale), checked. */
static kiln_status_t size_from_scale(kiln_kernel_ctx_t *ctx, int64_t in, double scale, int64_t *out)
{
    if (!(scale > 0) || !isfinite(scale))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scale %g must be positive", scale);
    double v = floor((double)in * scale);
    if (v > (double)((int64_t)1 << 40))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scale %g gives an absurd size", scale);
    *out = (int64_t)v;
    return KILN_OK;
}

/* Upsample (7: scales attribute; 9: scales input) and Resize-10: asymmetric
 * coordinates, floor-like nearest, output floor(in * scale). */
static kiln_status_t upsample_like_run(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *scales_t,
                                       const float *scales_attr, int64_t n_scales_attr)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    resize_params_t p = {.coord = COORD_ASYMMETRIC, .nearest = NEAREST_SIMPLE, .cubic_a = -0.75};
    const char *mode = kiln_attr_string(node, "mode", "nearest");
    if (!parse_resize_mode(mode, &p.mode))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown mode '%s'", mode);
    int64_t n = scales_t ? scales_t->count : n_scales_attr;
    if (!x || n != x->rank)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scales must have one value per input axis");
    double scales[KILN_MAX_RANK], roi[2 * KILN_MAX_RANK] = {0};
    int64_t out_dims[KILN_MAX_RANK];
    for (int a = 0; a < x->rank; a++) {
        scales[a] = scales_t ? kiln_tensor_get_f64(scales_t, a) : scales_attr[a];
        kiln_status_t st = size_from_scale(ctx, x->dims[a], scales[a], &out_dims[a]);
        if (st != KILN_OK)
            return st;
    }
    return resize_with(ctx, &p, x, out_dims, scales, roi);
}

static kiln_status_t upsample7_run(kiln_kernel_ctx_t *ctx)
{
    const float *scales = NULL;
    int64_t n = kiln_attr_floats(kiln_ctx_node(ctx), "scales", &scales);
    return upsample_like_run(ctx, NULL, scales, n < 0 ? 0 : n);
}

static kiln_status_t upsample9_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *scales = kiln_ctx_input(ctx, 1);
    if (!scales)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scales input is required");
    return upsample_like_run(ctx, scales, NULL, 0);
}

/* Reads the Resize-11+ attributes. */
static kiln_status_t read_resize_params(kiln_kernel_ctx_t *ctx, resize_params_t *p)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const char *mode = kiln_attr_string(node, "mode", "nearest");
    const char *coord = kiln_attr_string(node, "coordinate_transformation_mode", "half_pixel");
    const char *nearest = kiln_attr_string(node, "nearest_mode", "round_prefer_floor");
    if (!parse_resize_mode(mode, &p->mode))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown mode '%s'", mode);
    if (!parse_coord_mode(coord, &p->coord))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown coordinate_transformation_mode '%s'",
                             coord);
    if (!parse_nearest_mode(nearest, &p->nearest))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown nearest_mode '%s'", nearest);
    p->cubic_a = kiln_attr_float(node, "cubic_coeff_a", -0.75f);
    p->exclude_outside = kiln_attr_int(node, "exclude_outside", 0) != 0;
    p->extrapolation = kiln_attr_float(node, "extrapolation_value", 0.0f);
    p->antialias = kiln_attr_int(node, "antialias", 0) != 0;
    return KILN_OK;
}

/* Applies keep_aspect_ratio_policy (opset 18) to sizes given for `axes`. */
static kiln_status_t apply_aspect_policy(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, const int *axes,
                                         int n_axes, int64_t *out_dims, double *scales)
{
    const char *policy = kiln_attr_string(kiln_ctx_node(ctx), "keep_aspect_ratio_policy", "stretch");
    if (!strcmp(policy, "stretch"))
        return KILN_OK;
    bool larger = !strcmp(policy, "not_smaller");
    if (!larger && strcmp(policy, "not_larger"))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown keep_aspect_ratio_policy '%s'", policy);
    double scale = larger ? 0 : INFINITY;
    for (int i = 0; i < n_axes; i++) {
        double s = (double)out_dims[axes[i]] / (double)x->dims[axes[i]];
        scale = larger ? fmax(scale, s) : fmin(scale, s);
    }
    for (int i = 0; i < n_axes; i++) {
        out_dims[axes[i]] = (int64_t)floor(scale * (double)x->dims[axes[i]] + 0.5);
        scales[axes[i]] = scale;
    }
    return KILN_OK;
}

/* Resize 11, 13, 18, 19: inputs X, roi, scales, sizes (roi/scales/sizes
 * optional, may be empty), attribute axes (18+). */
static kiln_status_t resize11_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *roi_t = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *scales_t = kiln_ctx_input(ctx, 2);
    const kiln_tensor_t *sizes_t = kiln_ctx_input(ctx, 3);
    resize_params_t p;
    kiln_status_t st = read_resize_params(ctx, &p);
    if (st != KILN_OK)
        return st;
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X is required");
    if (scales_t && scales_t->count == 0)
        scales_t = NULL;
    if (sizes_t && sizes_t->count == 0)
        sizes_t = NULL;
    if (roi_t && roi_t->count == 0)
        roi_t = NULL;
    if (!scales_t == !sizes_t)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "exactly one of scales and sizes must be given");

    int rank = x->rank;
    int axes[KILN_MAX_RANK];
    const int64_t *axes_attr = NULL;
    int64_t n_axes = kiln_attr_ints(kiln_ctx_node(ctx), "axes", &axes_attr);
    if (n_axes < 0) {
        n_axes = rank;
        for (int a = 0; a < rank; a++)
            axes[a] = a;
    } else {
        if (n_axes > rank)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "too many axes");
        for (int i = 0; i < n_axes; i++) {
            int64_t a = axes_attr[i] < 0 ? axes_attr[i] + rank : axes_attr[i];
            if (a < 0 || a >= rank)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis %lld out of range",
                                     (long long)axes_attr[i]);
            axes[i] = (int)a;
        }
    }
    const kiln_tensor_t *given = scales_t ? scales_t : sizes_t;
    if (given->count != n_axes)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s has %lld values, expected %lld",
                             scales_t ? "scales" : "sizes", (long long)given->count, (long long)n_axes);
    if (roi_t && roi_t->count != 2 * n_axes)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "roi has %lld values, expected %lld",
                             (long long)roi_t->count, (long long)(2 * n_axes));

    double scales[KILN_MAX_RANK], roi[2 * KILN_MAX_RANK];
    int64_t out_dims[KILN_MAX_RANK];
    for (int a = 0; a < rank; a++) {
        scales[a] = 1.0;
        out_dims[a] = x->dims[a];
        roi[a] = 0.0;
        roi[rank + a] = 1.0;
    }
    for (int i = 0; i < n_axes; i++) {
        int a = axes[i];
        if (roi_t) {
            roi[a] = kiln_tensor_get_f64(roi_t, i);
            roi[rank + a] = kiln_tensor_get_f64(roi_t, n_axes + i);
        }
        if (scales_t) {
            scales[a] = kiln_tensor_get_f64(scales_t, i);
            st = size_from_scale(ctx, x->dims[a], scales[a], &out_dims[a]);
            if (st != KILN_OK)
                return st;
        } else {
            int64_t size = kiln_tensor_get_i64(sizes_t, i);
            if (size < 0 || size > ((int64_t)1 << 40))
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "size %lld is invalid", (long long)size);
            out_dims[a] = size;
            scales[a] = x->dims[a] ? (double)size / (double)x->dims[a] : 1.0;
        }
    }
    if (sizes_t) {
        st = apply_aspect_policy(ctx, x, axes, (int)n_axes, out_dims, scales);
        if (st != KILN_OK)
            return st;
    }
    return resize_with(ctx, &p, x, out_dims, scales, roi);
}

static kiln_status_t resize10_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *scales = kiln_ctx_input(ctx, 1);
    if (!scales)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scales input is required");
    return upsample_like_run(ctx, scales, NULL, 0);
}

/* ==== GridSample ============================================================ */

/* GridSample follows PyTorch's grid_sampler (the source of the ONNX tests):
 * grid values in [-1, 1] map to input coordinates; border and reflection
 * padding move the coordinate into the image, zeros padding reads zeros
 * outside.  It works for any number of spatial axes; grid[..., 0] is the
 * last (width) axis. */

typedef enum grid_pad { GRID_PAD_ZEROS, GRID_PAD_BORDER, GRID_PAD_REFLECTION } grid_pad_t;

typedef struct grid_params {
    resize_mode_t mode;
    grid_pad_t padding;
    bool align_corners;
} grid_params_t;

static double grid_unnormalize(double v, int64_t size, bool align_corners)
{
    return align_corners ? (v + 1) / 2 * (double)(size - 1) : ((v + 1) * (double)size - 1) / 2;
}

static double clamp_coord(double x, int64_t size)
{
    return x < 0 ? 0 : x > (double)(size - 1) ? (double)(size - 1) : x;
}

/* PyTorch's reflect_coordinates over [twice_low/2, twice_high/2]. */
static double reflect_coord(double x, int64_t twice_low, int64_t twice_high)
{
    if (twice_low == twice_high)
        return 0;
    double min = (double)twice_low / 2;
    double span = (double)(twice_high - twice_low) / 2;
    x = fabs(x - min);
    double extra = fmod(x, span);
    int64_t flips = (int64_t)floor(x / span);
    return flips % 2 == 0 ? extra + min : span - extra + min;
}

/* Applies border/reflection padding to a coordinate (no-op for zeros). */
static double pad_coord(const grid_params_t *p, double x, int64_t size)
{
    if (p->padding == GRID_PAD_BORDER)
        return clamp_coord(x, size);
    if (p->padding == GRID_PAD_REFLECTION) {
        x = p->align_corners ? reflect_coord(x, 0, 2 * (size - 1)) : reflect_coord(x, -1, 2 * size - 1);
        return clamp_coord(x, size);
    }
    return x;
}

/* Taps of one sampling coordinate along one axis (indices may be out of
 * range with zeros padding; such taps read 0). */
static void grid_taps(const grid_params_t *p, double x, int64_t size, axis_taps_t *t)
{
    t->outside = false;
    if (p->mode == RESIZE_CUBIC) {
        double base = floor(x);
        double c[4];
        cubic_coeffs(-0.75, x - base, c);
        t->n = 4;
        for (int k = 0; k < 4; k++) {
            double idx = base - 1 + k;
            if (p->padding != GRID_PAD_ZEROS)
                idx = pad_coord(p, idx, size);
            t->index[k] = (int64_t)idx;
            t->weight[k] = c[k];
        }
        return;
    }
    x = pad_coord(p, x, size);
    if (p->mode == RESIZE_NEAREST) {
        t->n = 1;
        t->index[0] = (int64_t)nearbyint(x);
        t->weight[0] = 1.0;
        return;
    }
    double base = floor(x);
    t->n = 2;
    t->index[0] = (int64_t)base;
    t->index[1] = (int64_t)base + 1;
    t->weight[0] = 1 - (x - base);
    t->weight[1] = x - base;
}

/* The sampled value at one grid point of the channel plane starting at
 * `base`: the sum over all tap combinations of the spatial axes, taps
 * outside the input reading 0. */
static double grid_sample_point(const kiln_tensor_t *x, int64_t base, const axis_taps_t *taps)
{
    int k = x->rank - 2;
    int kk[KILN_MAX_RANK] = {0};
    double sum = 0;
    for (;;) {
        double w = 1;
        int64_t off = 0;
        bool inside = true;
        for (int i = 0; i < k; i++) {
            int64_t idx = taps[i].index[kk[i]];
            inside &= idx >= 0 && idx < x->dims[2 + i];
            off = off * x->dims[2 + i] + idx;
            w *= taps[i].weight[kk[i]];
        }
        if (inside)
            sum += w * kiln_tensor_get_f64(x, base + off);
        int i = k - 1;
        while (i >= 0 && ++kk[i] == taps[i].n) {
            kk[i] = 0;
            i--;
        }
        if (i < 0)
            return sum;
    }
}

static kiln_status_t grid_sample_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *grid = kiln_ctx_input(ctx, 1);
    grid_params_t p = {.align_corners = kiln_attr_int(node, "align_corners", 0) != 0};
    const char *mode = kiln_attr_string(node, "mode", kiln_ctx_opset(ctx) >= 20 ? "linear" : "bilinear");
    const char *padding = kiln_attr_string(node, "padding_mode", "zeros");
    if (!strcmp(mode, "bicubic"))
        mode = "cubic";
    if (!parse_resize_mode(mode, &p.mode))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown mode '%s'", mode);
    if (!strcmp(padding, "zeros"))
        p.padding = GRID_PAD_ZEROS;
    else if (!strcmp(padding, "border"))
        p.padding = GRID_PAD_BORDER;
    else if (!strcmp(padding, "reflection"))
        p.padding = GRID_PAD_REFLECTION;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown padding_mode '%s'", padding);
    if (!x || !grid || x->rank < 3 || grid->rank != x->rank || grid->dims[0] != x->dims[0] ||
        grid->dims[grid->rank - 1] != x->rank - 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "X must be [N, C, D1..Dk] and grid [N, O1..Ok, k]");
    int k = x->rank - 2;
    int64_t dims[KILN_MAX_RANK];
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < k; i++)
        dims[2 + i] = grid->dims[1 + i];
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t N = x->dims[0], C = x->dims[1];
    int64_t in_spatial = 1, out_spatial = 1;
    for (int i = 0; i < k; i++) {
        in_spatial *= x->dims[2 + i];
        out_spatial *= dims[2 + i];
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t o = 0; o < out_spatial; o++) {
            axis_taps_t taps[KILN_MAX_RANK];
            int64_t tap_index[KILN_MAX_RANK][4];
            double tap_weight[KILN_MAX_RANK][4];
            const int64_t g = (n * out_spatial + o) * k;
            for (int i = 0; i < k; i++) {
                taps[i].index = tap_index[i];
                taps[i].weight = tap_weight[i];
                int64_t size = x->dims[2 + i];
                double v = kiln_tensor_get_f64(grid, g + (k - 1 - i));
                double c = grid_unnormalize(v, size, p.align_corners);
                /* NaN or huge grid values sample outside the image. */
                c = isfinite(c) ? fmax(fmin(c, COORD_LIMIT), -COORD_LIMIT) : -COORD_LIMIT;
                grid_taps(&p, c, size, &taps[i]);
            }
            for (int64_t c = 0; c < C; c++)
                kiln_tensor_set_f64(y, (n * C + c) * out_spatial + o,
                                    grid_sample_point(x, (n * C + c) * in_spatial, taps));
        }
    }
    return KILN_OK;
}

/* ==== RoiAlign ============================================================== */

/* RoiAlign as in ONNX Runtime (and Caffe2/Detectron): each output bin
 * averages (or takes the max of) sampling_ratio^2 bilinear samples. */

typedef struct roi_sample {
    int64_t offs[4]; /* y_low*W+x_low, y_low*W+x_high, y_high*W+x_low, y_high*W+x_high */
    double w[4];
} roi_sample_t;

/* The bilinear sample at (y, x); all weights 0 when it falls outside. */
static roi_sample_t roi_bilinear(double y, double x, int64_t H, int64_t W)
{
    roi_sample_t s = {{0, 0, 0, 0}, {0, 0, 0, 0}};
    if (y < -1.0 || y > (double)H || x < -1.0 || x > (double)W)
        return s;
    if (y <= 0)
        y = 0;
    if (x <= 0)
        x = 0;
    int64_t y_low = (int64_t)y, x_low = (int64_t)x, y_high, x_high;
    if (y_low >= H - 1) {
        y_high = y_low = H - 1;
        y = (double)y_low;
    } else {
        y_high = y_low + 1;
    }
    if (x_low >= W - 1) {
        x_high = x_low = W - 1;
        x = (double)x_low;
    } else {
        x_high = x_low + 1;
    }
    double ly = y - (double)y_low, lx = x - (double)x_low, hy = 1 - ly, hx = 1 - lx;
    s.offs[0] = y_low * W + x_low;
    s.offs[1] = y_low * W + x_high;
    s.offs[2] = y_high * W + x_low;
    s.offs[3] = y_high * W + x_high;
    s.w[0] = hy * hx;
    s.w[1] = hy * lx;
    s.w[2] = ly * hx;
    s.w[3] = ly * lx;
    return s;
}

/* Where one roi lies: its top-left corner, bin size and samples per bin. */
typedef struct roi_geometry {
    double x1, y1, bin_w, bin_h;
    int64_t grid_w, grid_h;
} roi_geometry_t;

/* The value of output bin (ph, pw) for the channel plane starting at
 * `plane`: the mean of its samples, or with max mode the largest weighted
 * corner value over them (as ONNX Runtime computes it). */
static double roi_pool_bin(const kiln_tensor_t *x, int64_t plane, int64_t H, int64_t W,
                           const roi_geometry_t *g, int64_t ph, int64_t pw, bool is_max)
{
    double acc = 0;
    bool first = true;
    for (int64_t iy = 0; iy < g->grid_h; iy++) {
        double sy = g->y1 + (double)ph * g->bin_h + ((double)iy + 0.5) * g->bin_h / (double)g->grid_h;
        for (int64_t ix = 0; ix < g->grid_w; ix++) {
            double sx = g->x1 + (double)pw * g->bin_w + ((double)ix + 0.5) * g->bin_w / (double)g->grid_w;
            roi_sample_t s = roi_bilinear(sy, sx, H, W);
            if (is_max) {
                double m = 0;
                for (int q = 0; q < 4; q++) {
                    double v = s.w[q] * kiln_tensor_get_f64(x, plane + s.offs[q]);
                    m = q == 0 ? v : fmax(m, v);
                }
                acc = first ? m : fmax(acc, m);
                first = false;
            } else {
                for (int q = 0; q < 4; q++)
                    acc += s.w[q] * kiln_tensor_get_f64(x, plane + s.offs[q]);
            }
        }
    }
    int64_t count = g->grid_h * g->grid_w;
    return is_max ? acc : acc / (double)(count > 1 ? count : 1);
}

static kiln_status_t roi_align_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *rois = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *batch = kiln_ctx_input(ctx, 2);
    const char *mode = kiln_attr_string(node, "mode", "avg");
    const char *coord = kiln_attr_string(node, "coordinate_transformation_mode",
                                         kiln_ctx_opset(ctx) >= 16 ? "half_pixel" : "output_half_pixel");
    int64_t oh = kiln_attr_int(node, "output_height", 1);
    int64_t ow = kiln_attr_int(node, "output_width", 1);
    int64_t sampling = kiln_attr_int(node, "sampling_ratio", 0);
    double scale = kiln_attr_float(node, "spatial_scale", 1.0f);
    bool is_max = !strcmp(mode, "max");
    bool half_pixel = !strcmp(coord, "half_pixel");
    if (!is_max && strcmp(mode, "avg"))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown mode '%s'", mode);
    if (!half_pixel && strcmp(coord, "output_half_pixel"))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown coordinate_transformation_mode '%s'",
                             coord);
    if (!x || !rois || !batch || x->rank != 4 || rois->rank != 2 || rois->dims[1] != 4 || batch->rank != 1 ||
        batch->dims[0] != rois->dims[0])
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "expected X [N,C,H,W], rois [R,4], batch_indices [R]");
    if (oh <= 0 || ow <= 0 || sampling < 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "output_height/width must be positive, sampling_ratio >= 0");
    int64_t R = rois->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t dims[4] = {R, C, oh, ow};
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, 4, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    double offset = half_pixel ? 0.5 : 0.0;
    for (int64_t r = 0; r < R; r++) {
        int64_t b = kiln_tensor_get_i64(batch, r);
        if (b < 0 || b >= x->dims[0])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "batch_indices[%lld] = %lld is out of range",
                                 (long long)r, (long long)b);
        double x1 = kiln_tensor_get_f64(rois, r * 4 + 0) * scale - offset;
        double y1 = kiln_tensor_get_f64(rois, r * 4 + 1) * scale - offset;
        double x2 = kiln_tensor_get_f64(rois, r * 4 + 2) * scale - offset;
        double y2 = kiln_tensor_get_f64(rois, r * 4 + 3) * scale - offset;
        if (!isfinite(x1) || !isfinite(y1) || !isfinite(x2) || !isfinite(y2))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "roi %lld is not finite", (long long)r);
        double roi_w = x2 - x1, roi_h = y2 - y1;
        if (!half_pixel) {
            roi_w = fmax(roi_w, 1.0);
            roi_h = fmax(roi_h, 1.0);
        }
        double bin_h = roi_h / (double)oh, bin_w = roi_w / (double)ow;
        if (fabs(roi_h) / (double)oh > 4096 || fabs(roi_w) / (double)ow > 4096 || sampling > 4096)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "roi %lld is absurdly large", (long long)r);
        int64_t grid_h = sampling > 0 ? sampling : (int64_t)ceil(roi_h / (double)oh);
        int64_t grid_w = sampling > 0 ? sampling : (int64_t)ceil(roi_w / (double)ow);
        if (grid_h > 4096 || grid_w > 4096)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "roi %lld is absurdly large", (long long)r);
        roi_geometry_t geo = {x1, y1, bin_w, bin_h, grid_w, grid_h};
        for (int64_t c = 0; c < C; c++) {
            int64_t plane = (b * C + c) * H * W;
            for (int64_t ph = 0; ph < oh; ph++)
                for (int64_t pw = 0; pw < ow; pw++)
                    kiln_tensor_set_f64(y, ((r * C + c) * oh + ph) * ow + pw,
                                        roi_pool_bin(x, plane, H, W, &geo, ph, pw, is_max));
        }
    }
    return KILN_OK;
}

/* ==== NonMaxSuppression ===================================================== */

/* Per batch and class: take the boxes scoring above score_threshold in
 * descending score order (ties: lower box index first), keep a box unless it
 * overlaps a kept one with IoU > iou_threshold, stop at
 * max_output_boxes_per_class.  Output rows are [batch, class, box]. */

typedef struct nms_box {
    double y1, x1, y2, x2; /* normalised: y1 <= y2, x1 <= x2 */
} nms_box_t;

typedef struct nms_candidate {
    double score;
    int64_t index;
} nms_candidate_t;

static int compare_candidates(const void *a, const void *b)
{
    const nms_candidate_t *p = a, *q = b;
    if (p->score != q->score)
        return p->score > q->score ? -1 : 1;
    return p->index < q->index ? -1 : p->index > q->index;
}

static nms_box_t read_box(const kiln_tensor_t *boxes, int64_t off, bool center)
{
    double a = kiln_tensor_get_f64(boxes, off), b = kiln_tensor_get_f64(boxes, off + 1);
    double c = kiln_tensor_get_f64(boxes, off + 2), d = kiln_tensor_get_f64(boxes, off + 3);
    nms_box_t box;
    if (center) { /* [x_center, y_center, width, height] */
        box.x1 = a - c / 2, box.x2 = a + c / 2;
        box.y1 = b - d / 2, box.y2 = b + d / 2;
    } else { /* [y1, x1, y2, x2], either corner first */
        box.y1 = fmin(a, c), box.y2 = fmax(a, c);
        box.x1 = fmin(b, d), box.x2 = fmax(b, d);
    }
    return box;
}

static bool suppressed_by_iou(const nms_box_t *p, const nms_box_t *q, double threshold)
{
    double ix1 = fmax(p->x1, q->x1), iy1 = fmax(p->y1, q->y1);
    double ix2 = fmin(p->x2, q->x2), iy2 = fmin(p->y2, q->y2);
    if (ix2 <= ix1 || iy2 <= iy1)
        return false;
    double inter = (ix2 - ix1) * (iy2 - iy1);
    double area_p = (p->x2 - p->x1) * (p->y2 - p->y1);
    double area_q = (q->x2 - q->x1) * (q->y2 - q->y1);
    double uni = area_p + area_q - inter;
    if (area_p <= 0 || area_q <= 0 || uni <= 0)
        return false;
    return inter / uni > threshold;
}

static kiln_status_t nms_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *boxes = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *scores = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *max_t = kiln_ctx_input(ctx, 2);
    const kiln_tensor_t *iou_t = kiln_ctx_input(ctx, 3);
    const kiln_tensor_t *score_t = kiln_ctx_input(ctx, 4);
    bool center = kiln_attr_int(kiln_ctx_node(ctx), "center_point_box", 0) != 0;
    if (!boxes || !scores || boxes->rank != 3 || boxes->dims[2] != 4 || scores->rank != 3 ||
        scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "expected boxes [B, N, 4] and scores [B, C, N]");
    int64_t max_out = max_t && max_t->count ? kiln_tensor_get_i64(max_t, 0) : 0;
    double iou = iou_t && iou_t->count ? kiln_tensor_get_f64(iou_t, 0) : 0.0;
    bool has_score = score_t && score_t->count;
    double score_min = has_score ? kiln_tensor_get_f64(score_t, 0) : 0.0;
    int64_t B = boxes->dims[0], N = boxes->dims[1], C = scores->dims[1];
    if (max_out < 0)
        max_out = 0;
    if (max_out > N)
        max_out = N;

    nms_box_t *all = malloc((size_t)(N + 1) * sizeof *all);
    nms_candidate_t *cand = malloc((size_t)(N + 1) * sizeof *cand);
    int64_t *kept = malloc((size_t)(N + 1) * sizeof *kept);
    int64_t cap = B * C * max_out + 1, n_sel = 0;
    int64_t *sel = malloc((size_t)cap * 3 * sizeof *sel);
    if (!all || !cand || !kept || !sel) {
        free(all), free(cand), free(kept), free(sel);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for NMS");
    }
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < N; i++)
            all[i] = read_box(boxes, (b * N + i) * 4, center);
        for (int64_t c = 0; c < C; c++) {
            int64_t n_cand = 0, n_kept = 0;
            for (int64_t i = 0; i < N; i++) {
                double s = kiln_tensor_get_f64(scores, (b * C + c) * N + i);
                if (!isnan(s) && (!has_score || s > score_min)) /* NaN would break the sort */
                    cand[n_cand++] = (nms_candidate_t){s, i};
            }
            qsort(cand, (size_t)n_cand, sizeof *cand, compare_candidates);
            for (int64_t i = 0; i < n_cand && n_kept < max_out; i++) {
                bool keep = true;
                for (int64_t j = 0; j < n_kept && keep; j++)
                    keep = !suppressed_by_iou(&all[cand[i].index], &all[kept[j]], iou);
                if (!keep)
                    continue;
                kept[n_kept++] = cand[i].index;
                sel[n_sel * 3] = b;
                sel[n_sel * 3 + 1] = c;
                sel[n_sel * 3 + 2] = cand[i].index;
                n_sel++;
            }
        }
    }
    int64_t dims[2] = {n_sel, 3};
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_INT64, 2, dims);
    if (y)
        memcpy(y->data, sel, (size_t)(n_sel * 3) * sizeof *sel);
    free(all), free(cand), free(kept), free(sel);
    return y ? KILN_OK : kiln_ctx_status(ctx);
}

/* ==== AffineGrid =========================================================== */

/* AffineGrid (opset 20) makes the sampling grid GridSample reads: for each
 * output position the normalised base coordinate (x, y[, z]) in [-1, 1]
 * (pixel centres, or corners with align_corners) is mapped through the
 * batch's affine matrix theta ([N, 2, 3] for 2-D, [N, 3, 4] for 3-D). */

/* The normalised coordinate of index i of n positions. */
static double base_coord(int64_t i, int64_t n, bool align_corners)
{
    if (align_corners)
        return n > 1 ? -1.0 + 2.0 * (double)i / (double)(n - 1) : -1.0;
    return (2.0 * (double)i + 1.0) / (double)n - 1.0;
}

static kiln_status_t affine_grid_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *theta = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *size = kiln_ctx_input(ctx, 1);
    bool align_corners = kiln_attr_int(kiln_ctx_node(ctx), "align_corners", 0) != 0;
    if (!theta || !size || size->rank != 1 || (size->count != 4 && size->count != 5))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "size must be [N, C, H, W] or [N, C, D, H, W]");
    int k = (int)size->count - 2; /* spatial dims: 2 or 3 */
    int64_t n = kiln_tensor_get_i64(size, 0);
    if (theta->rank != 3 || theta->dims[0] != n || theta->dims[1] != k || theta->dims[2] != k + 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "theta must be [N, %d, %d]", k, k + 1);
    int64_t dims[KILN_MAX_RANK], spatial[3] = {1, 1, 1}; /* D, H, W (D = 1 for 2-D) */
    dims[0] = n;
    for (int i = 0; i < k; i++) {
        int64_t v = kiln_tensor_get_i64(size, 2 + i);
        if (v < 0 || v > ((int64_t)1 << 24))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "size %lld is invalid", (long long)v);
        dims[1 + i] = v;
        spatial[3 - k + i] = v;
    }
    dims[1 + k] = k;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, theta->dtype, k + 2, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t o = 0;
    for (int64_t b = 0; b < n; b++) {
        double m[3][4];
        for (int r = 0; r < k; r++)
            for (int c = 0; c <= k; c++)
                m[r][c] = kiln_tensor_get_f64(theta, (b * k + r) * (k + 1) + c);
        for (int64_t d = 0; d < spatial[0]; d++)
            for (int64_t h = 0; h < spatial[1]; h++)
                for (int64_t w = 0; w < spatial[2]; w++) {
                    /* Base coordinate in (x, y, z) order: x runs along W. */
                    double base[3] = {base_coord(w, spatial[2], align_corners),
                                      base_coord(h, spatial[1], align_corners),
                                      base_coord(d, spatial[0], align_corners)};
                    for (int r = 0; r < k; r++) {
                        double v = m[r][k];
                        for (int c = 0; c < k; c++)
                            v += m[r][c] * base[c];
                        kiln_tensor_set_f64(y, o++, v);
                    }
                }
    }
    return KILN_OK;
}

void kiln_ops_register_image(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Upsample", .since = 7, .until = 8, .run = upsample7_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Upsample", .since = 9, .run = upsample9_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Resize", .since = 10, .until = 10, .run = resize10_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Resize", .since = 11, .run = resize11_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "GridSample", .since = 16, .run = grid_sample_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "AffineGrid", .since = 20, .run = affine_grid_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "RoiAlign", .since = 10, .run = roi_align_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "NonMaxSuppression", .since = 10, .run = nms_run});
}
