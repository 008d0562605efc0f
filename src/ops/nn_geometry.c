/*
 * nn_geometry.c - attribute parsing and output-size arithmetic for sliding
 * windows (see nn_geometry.h).  The formulas follow the ONNX operator
 * specs: explicit pads, SAME_UPPER/SAME_LOWER (output = ceil(in / stride),
 * the odd pad at the end or the beginning), VALID, and pooling's ceil_mode
 * where a last window that would start inside the end padding is dropped.
 */
#include "ops/nn_geometry.h"

#include <string.h>

/* Largest kernel, stride, dilation, pad or output padding accepted. */
#define MAX_WINDOW_VALUE ((int64_t)1 << 30)

/* Fills the unit defaults, then copies spatial input dims to the back. */
static kiln_status_t window_init(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, kiln_window_t *w)
{
    memset(w, 0, sizeof *w);
    if (x->rank < 3 || x->rank > 2 + KILN_WINDOW_DIMS)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED,
                             "input X has rank %d; expected 3 to 5 (N, C and 1 to 3 spatial dims)",
                             x->rank);
    w->nd = x->rank - 2;
    int off = KILN_WINDOW_DIMS - w->nd;
    for (int i = 0; i < KILN_WINDOW_DIMS; i++) {
        w->in[i] = i < off ? 1 : x->dims[2 + i - off];
        w->kernel[i] = w->stride[i] = w->dilation[i] = w->out[i] = 1;
    }
    return KILN_OK;
}

/* Copies an nd-long int list attribute into the back of dst; absent keeps
 * the defaults.  Checks the length and that values are >= min. */
static kiln_status_t read_spatial_attr(kiln_kernel_ctx_t *ctx, const char *name, int nd,
                                       int64_t min, int64_t *dst)
{
    const int64_t *v;
    int64_t n = kiln_attr_ints(kiln_ctx_node(ctx), name, &v);
    if (n < 0)
        return KILN_OK;
    if (n != nd)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute %s has %lld values; expected %d",
                             name, (long long)n, nd);
    for (int i = 0; i < nd; i++) {
        if (v[i] < min)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute %s[%d] = %lld is below %lld",
                                 name, i, (long long)v[i], (long long)min);
        if (v[i] > MAX_WINDOW_VALUE) /* keeps (kernel - 1) * dilation + pads far from overflow */
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute %s[%d] = %lld is too large",
                                 name, i, (long long)v[i]);
        dst[KILN_WINDOW_DIMS - nd + i] = v[i];
    }
    return KILN_OK;
}

/* Reads kernel (from the argument or kernel_shape), strides and dilations. */
static kiln_status_t read_window_attrs(kiln_kernel_ctx_t *ctx, const int64_t *kernel,
                                       kiln_window_t *w)
{
    int off = KILN_WINDOW_DIMS - w->nd;
    kiln_status_t st = read_spatial_attr(ctx, "kernel_shape", w->nd, 1, w->kernel);
    if (st != KILN_OK)
        return st;
    if (kernel) {
        for (int i = 0; i < w->nd; i++) {
            if (kernel[i] < 1)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "W has an empty kernel dim %d", i);
            w->kernel[off + i] = kernel[i];
        }
    } else if (kiln_attr_ints(kiln_ctx_node(ctx), "kernel_shape", &(const int64_t *){0}) < 0) {
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute kernel_shape is missing");
    }
    if ((st = read_spatial_attr(ctx, "strides", w->nd, 1, w->stride)) != KILN_OK)
        return st;
    if ((st = read_spatial_attr(ctx, "dilations", w->nd, 1, w->dilation)) != KILN_OK)
        return st;
    const int64_t *pads;
    int64_t n = kiln_attr_ints(kiln_ctx_node(ctx), "pads", &pads);
    if (n >= 0) {
        if (n != 2 * w->nd)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute pads has %lld values; expected %d",
                                 (long long)n, 2 * w->nd);
        for (int i = 0; i < w->nd; i++) {
            if (pads[i] < 0 || pads[w->nd + i] < 0 || pads[i] > MAX_WINDOW_VALUE ||
                pads[w->nd + i] > MAX_WINDOW_VALUE)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL,
                                     "attribute pads has a negative or too large value");
            w->pad_begin[off + i] = pads[i];
            w->pad_end[off + i] = pads[w->nd + i];
        }
    }
    return KILN_OK;
}

static int64_t effective_kernel(const kiln_window_t *w, int i)
{
    return (w->kernel[i] - 1) * w->dilation[i] + 1;
}

kiln_status_t kiln_window_forward(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                  const int64_t *kernel, bool ceil_mode, kiln_window_t *w)
{
    kiln_status_t st = window_init(ctx, x, w);
    if (st == KILN_OK)
        st = read_window_attrs(ctx, kernel, w);
    if (st != KILN_OK)
        return st;
    const char *auto_pad = kiln_attr_string(kiln_ctx_node(ctx), "auto_pad", "NOTSET");
    bool same_upper = strcmp(auto_pad, "SAME_UPPER") == 0;
    bool same_lower = strcmp(auto_pad, "SAME_LOWER") == 0;
    bool valid = strcmp(auto_pad, "VALID") == 0;
    for (int i = KILN_WINDOW_DIMS - w->nd; i < KILN_WINDOW_DIMS; i++) {
        int64_t ek = effective_kernel(w, i), s = w->stride[i];
        if (same_upper || same_lower) {
            w->out[i] = (w->in[i] + s - 1) / s;
            int64_t total = (w->out[i] - 1) * s + ek - w->in[i];
            if (total < 0)
                total = 0;
            w->pad_begin[i] = total < 0 ? 0 : same_upper ? total / 2 : total - total / 2;
            w->pad_end[i] = total - w->pad_begin[i];
            continue;
        }
        if (valid)
            w->pad_begin[i] = w->pad_end[i] = 0;
        int64_t span = w->in[i] + w->pad_begin[i] + w->pad_end[i] - ek;
        if (span < 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "spatial dim %d: input %lld (padded) is smaller than the kernel %lld",
                                 i - (KILN_WINDOW_DIMS - w->nd), (long long)w->in[i], (long long)ek);
        w->out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
        if (ceil_mode && (w->out[i] - 1) * s >= w->in[i] + w->pad_begin[i])
            w->out[i]--; /* the last window would start in the end padding */
    }
    return KILN_OK;
}

kiln_status_t kiln_window_transpose(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                    const int64_t *kernel, kiln_window_t *w)
{
    kiln_status_t st = window_init(ctx, x, w);
    if (st == KILN_OK)
        st = read_window_attrs(ctx, kernel, w);
    if (st != KILN_OK)
        return st;
    int off = KILN_WINDOW_DIMS - w->nd;
    int64_t out_pad[KILN_WINDOW_DIMS] = {0, 0, 0};
    if ((st = read_spatial_attr(ctx, "output_padding", w->nd, 0, out_pad)) != KILN_OK)
        return st;
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const int64_t *out_shape;
    int64_t n_out_shape = kiln_attr_ints(node, "output_shape", &out_shape);
    if (n_out_shape >= 0 && n_out_shape != w->nd && n_out_shape != w->nd + 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute output_shape has %lld values",
                             (long long)n_out_shape);
    const char *auto_pad = kiln_attr_string(node, "auto_pad", "NOTSET");
    bool same_upper = strcmp(auto_pad, "SAME_UPPER") == 0;
    bool same_lower = strcmp(auto_pad, "SAME_LOWER") == 0;
    for (int i = off; i < KILN_WINDOW_DIMS; i++) {
        int64_t ek = effective_kernel(w, i), s = w->stride[i];
        int64_t full = s * (w->in[i] - 1) + out_pad[i] + ek;
        int64_t target = -1;
        if (n_out_shape >= 0) {
            target = out_shape[n_out_shape - w->nd + i - off];
            if (target < 1 || target > MAX_WINDOW_VALUE)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "output_shape value %lld is out of range",
                                     (long long)target);
        } else if (same_upper || same_lower)
            target = w->in[i] * s;
        if (target >= 0) {
            int64_t total = full - target; /* < 0: the output grows past the last window */
            /* As the ONNX spec words it: SAME_UPPER puts the odd pad at
             * the end, anything else (SAME_LOWER, output_shape) at the
             * beginning. */
            w->pad_begin[i] = total < 0 ? 0 : same_upper ? total / 2 : total - total / 2;
            w->pad_end[i] = total - w->pad_begin[i];
        } else if (strcmp(auto_pad, "VALID") == 0) {
            w->pad_begin[i] = w->pad_end[i] = 0;
        }
        w->out[i] = full - w->pad_begin[i] - w->pad_end[i];
        if (w->out[i] <= 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "output spatial dim %d would be %lld",
                                 i - off, (long long)w->out[i]);
    }
    return KILN_OK;
}

void kiln_window_output_dims(const kiln_window_t *w, int64_t n, int64_t c, int64_t *dims)
{
    dims[0] = n;
    dims[1] = c;
    for (int i = 0; i < w->nd; i++)
        dims[2 + i] = w->out[KILN_WINDOW_DIMS - w->nd + i];
}
