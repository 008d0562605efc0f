/*
 * shape.c - ops that change a tensor's shape but not its elements:
 * Reshape, Flatten, Squeeze and Unsqueeze.
 *
 * Each computes the output shape (checking it against the element count);
 * row-major order is the same before and after, so the output is a view of
 * the input's elements (kiln_ctx_output_view), never a copy.
 */
#include <string.h>

#include "ops/tensor_util.h"

/* Makes output 0 a view of input 0 under the new shape (no copy: the
 * executor shares the storage), checking the element count. */
static kiln_status_t copy_with_shape(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, int rank,
                                     const int64_t *dims)
{
    if (kiln_shape_count(rank, dims, 0) != x->count) {
        char a[256], b[256];
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot reshape %s to %s",
                             kiln_shape_str(x->rank, x->dims, a, sizeof a),
                             kiln_shape_str(rank, dims, b, sizeof b));
    }
    return kiln_ctx_output_view(ctx, 0, 0, rank, dims) ? KILN_OK : kiln_ctx_status(ctx);
}

/* ---- Reshape ------------------------------------------------------------ */

/* Resolves a requested shape: 0 copies the input dim (unless allowzero),
 * one -1 is inferred from the element count. */
static kiln_status_t resolve_reshape(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, int rank, int64_t *dims,
                                     bool allowzero)
{
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 0 && !allowzero) {
            if (d >= x->rank)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                     "shape[%d] is 0 (copy) but the input has rank %d", d, x->rank);
            dims[d] = x->dims[d];
        }
        if (dims[d] == -1) {
            if (infer >= 0)
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "shape has more than one -1");
            infer = d;
            continue;
        }
        if (dims[d] < 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "shape[%d] is %lld", d, (long long)dims[d]);
        if (dims[d] > 0 && known > INT64_MAX / dims[d])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "shape is too large");
        known *= dims[d];
    }
    if (infer >= 0) {
        if (known == 0 || x->count % known != 0) {
            char a[256];
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "cannot infer the -1 dim: input %s has %lld elements, the other dims %lld",
                                 kiln_shape_str(x->rank, x->dims, a, sizeof a), (long long)x->count,
                                 (long long)known);
        }
        dims[infer] = x->count / known;
    }
    return KILN_OK;
}

static kiln_status_t reshape_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    int64_t dims[KILN_MAX_RANK];
    int64_t rank;
    if (kiln_ctx_opset(ctx) >= 5) {
        rank = tops_read_ints(ctx, kiln_ctx_input(ctx, 1), "input shape", dims, KILN_MAX_RANK);
    } else { /* Reshape-1: the shape is an attribute */
        const int64_t *attr;
        rank = kiln_attr_ints(kiln_ctx_node(ctx), "shape", &attr);
        if (rank < 0 || rank > KILN_MAX_RANK)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute shape is missing or longer than %d",
                                 KILN_MAX_RANK);
        memcpy(dims, attr, (size_t)rank * sizeof *dims);
    }
    if (rank < 0)
        return kiln_ctx_status(ctx);
    bool allowzero = kiln_attr_int(kiln_ctx_node(ctx), "allowzero", 0) != 0;
    if (resolve_reshape(ctx, x, (int)rank, dims, allowzero) != KILN_OK)
        return kiln_ctx_status(ctx);
    return copy_with_shape(ctx, x, (int)rank, dims);
}

/* ---- Flatten ------------------------------------------------------------ */

static kiln_status_t flatten_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input is missing");
    int64_t axis = kiln_attr_int(kiln_ctx_node(ctx), "axis", 1);
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d",
                             (long long)kiln_attr_int(kiln_ctx_node(ctx), "axis", 1), x->rank);
    int64_t dims[2] = {1, 1};
    for (int d = 0; d < x->rank; d++)
        dims[d < axis ? 0 : 1] *= x->dims[d];
    return copy_with_shape(ctx, x, 2, dims);
}

/* ---- Squeeze and Unsqueeze ---------------------------------------------- */

static kiln_status_t squeeze_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    int64_t axes[KILN_MAX_RANK];
    int64_t n = tops_ints_attr_or_input(ctx, "axes", 13, 1, axes, KILN_MAX_RANK);
    if (n == -1)
        return kiln_ctx_status(ctx);
    bool drop[KILN_MAX_RANK] = {false};
    if (n == -2) { /* no axes: drop every dim of size 1 */
        for (int d = 0; d < x->rank; d++)
            drop[d] = x->dims[d] == 1;
    }
    for (int64_t i = 0; i < n; i++) {
        int a;
        if (tops_axis(ctx, axes[i], x->rank, "axes value", &a) != KILN_OK)
            return kiln_ctx_status(ctx);
        if (x->dims[a] != 1)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot squeeze axis %d of size %lld", a,
                                 (long long)x->dims[a]);
        drop[a] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < x->rank; d++)
        if (!drop[d])
            dims[rank++] = x->dims[d];
    return copy_with_shape(ctx, x, rank, dims);
}

static kiln_status_t unsqueeze_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    int64_t axes[KILN_MAX_RANK];
    int64_t n = tops_ints_attr_or_input(ctx, "axes", 13, 1, axes, KILN_MAX_RANK);
    if (n == -1)
        return kiln_ctx_status(ctx);
    if (n == -2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "axes are missing");
    int rank = x->rank + (int)n;
    if (rank > KILN_MAX_RANK)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "output rank %d exceeds %d", rank, KILN_MAX_RANK);
    bool inserted[KILN_MAX_RANK] = {false};
    for (int64_t i = 0; i < n; i++) {
        int a;
        if (tops_axis(ctx, axes[i], rank, "axes value", &a) != KILN_OK)
            return kiln_ctx_status(ctx);
        if (inserted[a])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis %d appears twice", a);
        inserted[a] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0, src = 0; d < rank; d++)
        dims[d] = inserted[d] ? 1 : x->dims[src++];
    return copy_with_shape(ctx, x, rank, dims);
}

void tops_register_shape(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Reshape", .since = 1, .run = reshape_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Flatten", .since = 1, .run = flatten_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Squeeze", .since = 1, .run = squeeze_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Unsqueeze", .since = 1, .run = unsqueeze_run});
}
