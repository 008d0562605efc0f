/*
 * image.c - Image ops: Resize, Upsample, GridSample, RoiAlign,
 * NonMaxSuppression.
 *
 * Resize (and Upsample, its older form) is separable: every output
 * coordinate on one axis maps back to a fractional input coordinate, and the
 * output value is a weighted sum of a few input neighbours on each axis
 * (1-2 for nearest, 2 for linear, 4 for cubic).  So the kernel first builds,
 * per axis and per output index, the list of (input index, weight) taps,
 * following the ONNX reference implementation (neighbours beyond the edge
 * repeat the edge value; exclude_outside drops them and renormalises), and
 * then sums the tap products for each output element.  All arithmetic is in
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
    double extrapolation;
} resize_params_t;

#define MAX_TAPS 4

/* The input taps of one output index along one axis. */
typedef struct axis_taps {
    int n;
    int64_t index[MAX_TAPS];
    double weight[MAX_TAPS];
    bool outside; /* tf_crop_and_resize: the coordinate fell outside the input */
} axis_taps_t;

/* Maps output index x to the input coordinate (the ONNX reference's x_ori).
 * `scale` is the axis scale, `in`/`out` the sizes, roi_start/end the roi. */
static double original_coord(const resize_params_t *p, double x, double scale, int64_t in,
                             int64_t out, double roi_start, double roi_end)
{
    double out_width = scale * (double)in;
    switch (p->coord) {
    case COORD_ALIGN_CORNERS:
        return out_width == 1 ? 0.0 : x * (double)(in - 1) / (out_width - 1);
    case COORD_ASYMMETRIC: return x / scale;
    case COORD_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / scale;
    case COORD_TF_CROP_AND_RESIZE: {
        double v = out == 1 ? (roi_end - roi_start) * (double)(in - 1) / 2
                            : x * (roi_end - roi_start) * (double)(in - 1) / (double)(out - 1);
        return v + roi_start * (double)(in - 1);
    }
    case COORD_PYTORCH_HALF_PIXEL: return out == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    case COORD_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)out / out_width;
        double center = (double)in / 2;
        double offset = center * (1 - adjustment);
        return offset + (x + 0.5) / scale - 0.5;
    }
    case COORD_HALF_PIXEL:
    default: return (x + 0.5) / scale - 0.5;
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
        case NEAREST_ROUND_PREFER_CEIL: right = ratio >= 0.5; break;
        case NEAREST_FLOOR: right = false; break;
        case NEAREST_CEIL: right = true; break;
        case NEAREST_SIMPLE: right = scale < 1.0; break;
        case NEAREST_ROUND_PREFER_FLOOR:
        default: right = ratio > 0.5; break;
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

/* Builds the taps of output index x on an axis. */
static void build_taps(const resize_params_t *p, int64_t x, double scale, int64_t in, int64_t out,
                       double roi_start, double roi_end, axis_taps_t *taps)
{
    double xo = original_coord(p, (double)x, scale, in, out, roi_start, roi_end);
    taps->n = 0;
    taps->outside = p->coord == COORD_TF_CROP_AND_RESIZE && (xo < 0 || xo > (double)(in - 1));
    if (taps->outside)
        return;
    /* The left neighbour and the ratio in (0, 1] (an exact hit counts as the
     * right neighbour, as in the reference). */
    double base = floor(xo);
    double ratio = xo - base;
    if (ratio == 0.0) {
        base -= 1;
        ratio = 1.0;
    }
    double c[MAX_TAPS];
    int n;
    switch (p->mode) {
    case RESIZE_NEAREST: n = 2, nearest_coeffs(p, ratio, scale, c); break;
    case RESIZE_LINEAR: n = 2, c[0] = 1 - ratio, c[1] = ratio; break;
    case RESIZE_CUBIC:
    default: n = 4, cubic_coeffs(p->cubic_a, ratio, c); break;
    }
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

/* Computes the whole output from the per-axis taps. */
static void resize_compute(const kiln_tensor_t *x, kiln_tensor_t *y, axis_taps_t *const *taps,
                           double extrapolation)
{
    int rank = x->rank;
    int64_t in_strides[KILN_MAX_RANK];
    int64_t s = 1;
    for (int a = rank - 1; a >= 0; a--) {
        in_strides[a] = s;
        s *= x->dims[a];
    }
    bool integer_out = kiln_dtype_is_integer(y->dtype);
    int64_t pos[KILN_MAX_RANK] = {0};
    for (int64_t o = 0; o < y->count; o++) {
        /* The tap lists of this output element, one per axis. */
        const axis_taps_t *t[KILN_MAX_RANK];
        bool outside = false;
        for (int a = 0; a < rank; a++) {
            t[a] = &taps[a][pos[a]];
            outside |= t[a]->outside;
        }
        double v = extrapolation;
        if (!outside) {
            /* Odometer over the tap combinations. */
            int k[KILN_MAX_RANK] = {0};
            v = 0;
            for (;;) {
                double w = 1;
                int64_t off = 0;
                for (int a = 0; a < rank; a++) {
                    w *= t[a]->weight[k[a]];
                    off += t[a]->index[k[a]] * in_strides[a];
                }
                v += w * kiln_tensor_get_f64(x, off);
                int a = rank - 1;
                while (a >= 0 && ++k[a] == t[a]->n) {
                    k[a] = 0;
                    a--;
                }
                if (a < 0)
                    break;
            }
        }
        if (integer_out)
            v = nearbyint(v);
        kiln_tensor_set_f64(y, o, v);
        for (int a = rank - 1; a >= 0 && ++pos[a] == y->dims[a]; a--)
            pos[a] = 0;
    }
}

/* Runs the resize once the output sizes, scales and roi per axis are known. */
static kiln_status_t resize_with(kiln_kernel_ctx_t *ctx, const resize_params_t *p,
                                 const kiln_tensor_t *x, const int64_t *out_dims,
                                 const double *scales, const double *roi)
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
    kiln_status_t st = KILN_OK;
    for (int a = 0; a < rank && st == KILN_OK; a++) {
        taps[a] = malloc((size_t)out_dims[a] * sizeof *taps[a]);
        if (!taps[a]) {
            st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for resize taps");
            break;
        }
        for (int64_t i = 0; i < out_dims[a]; i++)
            build_taps(p, i, scales[a], x->dims[a], out_dims[a], roi[a], roi[rank + a],
                       &taps[a][i]);
    }
    if (st == KILN_OK)
        resize_compute(x, y, taps, p->extrapolation);
    for (int a = 0; a < rank; a++)
        free(taps[a]);
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
static kiln_status_t size_from_scale(kiln_kernel_ctx_t *ctx, int64_t in, double scale,
                                     int64_t *out)
{
    if (!(scale > 0) || !isfinite(scale))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scale %g must be positive", scale);
    double v = floor((double)in * scale);
    if (v > (double)((int64_t)1 << 40))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scale %g gives an absurd size",
                             scale);
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
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "scales must have one value per input axis");
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
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "unknown coordinate_transformation_mode '%s'", coord);
    if (!parse_nearest_mode(nearest, &p->nearest))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown nearest_mode '%s'", nearest);
    p->cubic_a = kiln_attr_float(node, "cubic_coeff_a", -0.75f);
    p->exclude_outside = kiln_attr_int(node, "exclude_outside", 0) != 0;
    p->extrapolation = kiln_attr_float(node, "extrapolation_value", 0.0f);
    if (kiln_attr_int(node, "antialias", 0) != 0 && p->mode != RESIZE_NEAREST)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "antialias is not supported");
    return KILN_OK;
}

/* Applies keep_aspect_ratio_policy (opset 18) to sizes given for `axes`. */
static kiln_status_t apply_aspect_policy(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                         const int *axes, int n_axes, int64_t *out_dims,
                                         double *scales)
{
    const char *policy = kiln_attr_string(kiln_ctx_node(ctx), "keep_aspect_ratio_policy", "stretch");
    if (!strcmp(policy, "stretch"))
        return KILN_OK;
    bool larger = !strcmp(policy, "not_smaller");
    if (!larger && strcmp(policy, "not_larger"))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "unknown keep_aspect_ratio_policy '%s'", policy);
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
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "exactly one of scales and sizes must be given");

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
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "%s has %lld values, expected %lld", scales_t ? "scales" : "sizes",
                             (long long)given->count, (long long)n_axes);
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
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "size %lld is invalid",
                                     (long long)size);
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

void kiln_ops_register_image(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Upsample", .since = 7, .until = 8,
                                        .run = upsample7_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Upsample", .since = 9, .run = upsample9_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Resize", .since = 10, .until = 10,
                                        .run = resize10_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Resize", .since = 11, .run = resize11_run});
}
