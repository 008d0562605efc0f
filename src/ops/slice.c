/*
 * slice.c - ops that cut tensors apart or join them along an axis: Slice,
 * Concat and Split.
 *
 * Slice is a strided view of its input (start offset, per-axis step, which
 * may be negative); Concat and Split see each input or output as a 2-D
 * block [outer, axis * inner] placed at a column offset of the joined
 * tensor.  All copies go through tops_strided_copy().
 */
#include <string.h>

#include "ops/tensor_util.h"

/* Most outputs one Split node may have. */
#define SPLIT_MAX_OUTPUTS 1024

/* ---- Slice -------------------------------------------------------------- */

/* One axis of a slice after clamping: first index, step and length. */
typedef struct slice_axis {
    int64_t start, step, len;
} slice_axis_t;

/* Clamps start/end to the axis as the ONNX spec says (negative values count
 * from the end; a negative step walks from start down to end exclusive).
 * As in the spec and ONNX Runtime, a negative-step start below -dim clamps
 * to 0 (one element), where NumPy's x[-5::-1] on a short axis is empty. */
static slice_axis_t clamp_slice(int64_t start, int64_t end, int64_t step, int64_t dim)
{
    slice_axis_t s = {.step = step};
    if (dim == 0) /* nothing to take, whichever the direction */
        return s;
    if (start < 0)
        start += dim;
    if (end < 0)
        end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
        s.len = end > start ? (end - start + step - 1) / step : 0;
    } else {
        start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
        end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
        s.len = start > end ? (start - end - step - 1) / -step : 0;
    }
    s.start = s.len > 0 ? start : 0;
    return s;
}

/* Reads starts, ends, axes and steps from attributes (opset < 10) or
 * inputs; returns the count or -1 after failing the context. */
static int64_t read_slice_args(kiln_kernel_ctx_t *ctx, int64_t *starts, int64_t *ends, int64_t *axes,
                               int64_t *steps)
{
    int64_t n, n_ends, n_axes = -2, n_steps = -2;
    if (kiln_ctx_opset(ctx) < 10) {
        const int64_t *a;
        const kiln_node_t *node = kiln_ctx_node(ctx);
        n = kiln_attr_ints(node, "starts", &a);
        if (n < 0 || n > KILN_MAX_RANK)
            goto bad_count;
        memcpy(starts, a, (size_t)n * sizeof *a);
        n_ends = kiln_attr_ints(node, "ends", &a);
        if (n_ends != n)
            goto bad_count;
        memcpy(ends, a, (size_t)n * sizeof *a);
        n_axes = kiln_attr_ints(node, "axes", &a);
        if (n_axes >= 0 && n_axes != n)
            goto bad_count;
        if (n_axes >= 0)
            memcpy(axes, a, (size_t)n * sizeof *a);
    } else {
        n = tops_read_ints(ctx, kiln_ctx_input(ctx, 1), "input starts", starts, KILN_MAX_RANK);
        if (n < 0)
            return -1;
        n_ends = tops_read_ints(ctx, kiln_ctx_input(ctx, 2), "input ends", ends, KILN_MAX_RANK);
        if (n_ends < 0)
            return -1;
        if (n_ends != n)
            goto bad_count;
        if (kiln_ctx_input(ctx, 3)) {
            n_axes = tops_read_ints(ctx, kiln_ctx_input(ctx, 3), "input axes", axes, KILN_MAX_RANK);
            if (n_axes < 0)
                return -1;
            if (n_axes != n)
                goto bad_count;
        }
        if (kiln_ctx_input(ctx, 4)) {
            n_steps = tops_read_ints(ctx, kiln_ctx_input(ctx, 4), "input steps", steps, KILN_MAX_RANK);
            if (n_steps < 0)
                return -1;
            if (n_steps != n)
                goto bad_count;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (n_axes < 0)
            axes[i] = i;
        if (n_steps < 0)
            steps[i] = 1;
    }
    return n;
bad_count:
    kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "starts, ends, axes and steps must have the same length (at most %d)", KILN_MAX_RANK);
    return -1;
}

static kiln_status_t slice_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
    int64_t n = read_slice_args(ctx, starts, ends, axes, steps);
    if (n < 0)
        return kiln_ctx_status(ctx);

    slice_axis_t s[KILN_MAX_RANK];
    bool seen[KILN_MAX_RANK] = {false};
    for (int d = 0; d < x->rank; d++)
        s[d] = (slice_axis_t){.start = 0, .step = 1, .len = x->dims[d]};
    for (int64_t i = 0; i < n; i++) {
        int a;
        if (tops_axis(ctx, axes[i], x->rank, "axes value", &a) != KILN_OK)
            return kiln_ctx_status(ctx);
        if (seen[a])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis %d is sliced twice", a);
        seen[a] = true;
        if (steps[i] == 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "step for axis %d is 0", a);
        s[a] = clamp_slice(starts[i], ends[i], steps[i], x->dims[a]);
    }

    int64_t in_strides[KILN_MAX_RANK];
    tops_strides(x->rank, x->dims, in_strides);
    tops_view_t v = {.rank = x->rank};
    int64_t offset = 0;
    for (int d = 0; d < x->rank; d++) {
        v.dims[d] = s[d].len;
        v.src_strides[d] = in_strides[d] * s[d].step;
        offset += s[d].start * in_strides[d];
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, v.dims);
    if (!y)
        return kiln_ctx_status(ctx);
    tops_strides(x->rank, v.dims, v.dst_strides);
    return tops_strided_copy(ctx, &v, x->dtype, y->data, 0, x->data, offset);
}

/* ---- Concat and Split --------------------------------------------------- */

/* Copies a block of `rows` x `cols` elements between a tensor with row
 * length src_row (starting at column src_col) and one with row length
 * dst_row (starting at dst_col). */
static kiln_status_t copy_columns(kiln_kernel_ctx_t *ctx, kiln_dtype_t dtype, int64_t rows, int64_t cols,
                                  void *dst, int64_t dst_row, int64_t dst_col, const void *src,
                                  int64_t src_row, int64_t src_col)
{
    tops_view_t v = {
        .rank = 2, .dims = {rows, cols}, .src_strides = {src_row, 1}, .dst_strides = {dst_row, 1}};
    return tops_strided_copy(ctx, &v, dtype, dst, dst_col, src, src_col);
}

static kiln_status_t concat_run(kiln_kernel_ctx_t *ctx)
{
    int n = kiln_ctx_input_count(ctx);
    const kiln_tensor_t *first = kiln_ctx_input(ctx, 0);
    if (n < 1 || !first)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input 0 is missing");
    int axis;
    int64_t axis_attr = kiln_attr_int(kiln_ctx_node(ctx), "axis", kiln_ctx_opset(ctx) < 4 ? 1 : INT64_MIN);
    if (axis_attr == INT64_MIN)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute axis is missing");
    if (tops_axis(ctx, axis_attr, first->rank, "axis", &axis) != KILN_OK)
        return kiln_ctx_status(ctx);

    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, first->dims, sizeof dims);
    dims[axis] = 0;
    for (int i = 0; i < n; i++) {
        const kiln_tensor_t *t = kiln_ctx_input(ctx, i);
        if (!t)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input %d is missing", i);
        bool same = t->rank == first->rank && t->dtype == first->dtype;
        for (int d = 0; same && d < t->rank; d++)
            same = d == axis || t->dims[d] == first->dims[d];
        if (!same) {
            char a[256], b[256];
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "input %d (%s %s) does not match input 0 (%s %s) outside axis %d", i,
                                 kiln_dtype_name(t->dtype), kiln_shape_str(t->rank, t->dims, a, sizeof a),
                                 kiln_dtype_name(first->dtype),
                                 kiln_shape_str(first->rank, first->dims, b, sizeof b), axis);
        }
        dims[axis] += t->dims[axis];
    }
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, first->dtype, first->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= dims[d];
    for (int d = axis + 1; d < first->rank; d++)
        inner *= dims[d];
    int64_t col = 0;
    for (int i = 0; i < n; i++) {
        const kiln_tensor_t *t = kiln_ctx_input(ctx, i);
        int64_t cols = t->dims[axis] * inner;
        if (copy_columns(ctx, t->dtype, outer, cols, y->data, dims[axis] * inner, col, t->data, cols, 0))
            return kiln_ctx_status(ctx);
        col += cols;
    }
    return KILN_OK;
}

/* Fills sizes[0..n) with the length of each Split output along the axis. */
static kiln_status_t split_sizes(kiln_kernel_ctx_t *ctx, int n, int64_t dim, int64_t *sizes)
{
    int64_t given[SPLIT_MAX_OUTPUTS];
    /* Split-1 took the sizes as an attribute or an optional input. */
    int input_since = kiln_ctx_opset(ctx) < 2 && kiln_ctx_input(ctx, 1) ? 1 : 13;
    int64_t count = tops_ints_attr_or_input(ctx, "split", input_since, 1, given, SPLIT_MAX_OUTPUTS);
    if (count == -1)
        return kiln_ctx_status(ctx);
    if (count >= 0) {
        if (count != n)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "split has %lld sizes for %d outputs",
                                 (long long)count, n);
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            if (given[i] < 0)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "split size %lld is negative",
                                     (long long)given[i]);
            sizes[i] = given[i];
            sum += given[i];
        }
        if (sum != dim)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "split sizes add up to %lld, the axis has %lld", (long long)sum,
                                 (long long)dim);
        return KILN_OK;
    }
    if (kiln_ctx_opset(ctx) >= 18) { /* num_outputs: equal chunks, the last one smaller */
        int64_t chunk = (dim + n - 1) / n;
        for (int i = 0; i < n; i++) {
            int64_t left = dim - chunk * i;
            sizes[i] = left < 0 ? 0 : left < chunk ? left : chunk;
        }
        return KILN_OK;
    }
    if (dim % n != 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "axis of size %lld does not split into %d equal parts", (long long)dim, n);
    for (int i = 0; i < n; i++)
        sizes[i] = dim / n;
    return KILN_OK;
}

static kiln_status_t split_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input is missing");
    int n = kiln_ctx_output_count(ctx);
    if (n < 1 || n > SPLIT_MAX_OUTPUTS)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "%d outputs (at most %d)", n, SPLIT_MAX_OUTPUTS);
    int axis;
    if (tops_axis(ctx, kiln_attr_int(kiln_ctx_node(ctx), "axis", 0), x->rank, "axis", &axis) != KILN_OK)
        return kiln_ctx_status(ctx);
    int64_t sizes[SPLIT_MAX_OUTPUTS];
    if (split_sizes(ctx, n, x->dims[axis], sizes) != KILN_OK)
        return kiln_ctx_status(ctx);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= x->dims[d];
    for (int d = axis + 1; d < x->rank; d++)
        inner *= x->dims[d];
    int64_t row = x->dims[axis] * inner, col = 0;
    for (int i = 0; i < n; i++) {
        int64_t dims[KILN_MAX_RANK];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = sizes[i];
        kiln_tensor_t *y = kiln_ctx_output(ctx, i, x->dtype, x->rank, dims);
        if (!y)
            return kiln_ctx_status(ctx);
        int64_t cols = sizes[i] * inner;
        if (copy_columns(ctx, x->dtype, outer, cols, y->data, cols, 0, x->data, row, col))
            return kiln_ctx_status(ctx);
        col += cols;
    }
    return KILN_OK;
}

void tops_register_slice(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Slice", .since = 1, .run = slice_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Concat", .since = 1, .run = concat_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Split", .since = 1, .run = split_run});
}
