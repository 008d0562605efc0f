/*
 * transpose.c - ops that permute axes: Transpose, DepthToSpace and
 * SpaceToDepth.
 *
 * All three are one permuted copy: DepthToSpace and SpaceToDepth are a
 * reshape to 6-D, a transpose and a reshape back (as the ONNX spec defines
 * them), and the reshapes cost nothing.  The copy itself is
 * tops_strided_copy(), which merges contiguous axes, uses memcpy when the
 * innermost axis stays in place (BERT's [B,S,H,D] -> [B,H,S,D]) and a
 * blocked loop when the innermost two axes swap.
 */
#include <string.h>

#include "ops/tensor_util.h"

/* Copies x, viewed with shape in_dims[0..rank), into y (already allocated
 * with the permuted shape): y[i0..] = x[...] with y's axis d being x's axis
 * perm[d]. */
static kiln_status_t permute_copy(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, kiln_tensor_t *y, int rank,
                                  const int64_t *in_dims, const int *perm)
{
    int64_t in_strides[TOPS_MAX_VIEW_RANK];
    tops_strides(rank, in_dims, in_strides);
    tops_view_t v = {.rank = rank};
    for (int d = 0; d < rank; d++) {
        v.dims[d] = in_dims[perm[d]];
        v.src_strides[d] = in_strides[perm[d]];
    }
    tops_strides(rank, v.dims, v.dst_strides);
    return tops_strided_copy(ctx, &v, x->dtype, y->data, 0, x->data, 0);
}

static kiln_status_t transpose_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    const int64_t *attr;
    int64_t n = kiln_attr_ints(kiln_ctx_node(ctx), "perm", &attr);
    int perm[KILN_MAX_RANK];
    bool seen[KILN_MAX_RANK] = {false};
    if (n < 0) { /* default: reverse the axes */
        for (int d = 0; d < x->rank; d++)
            perm[d] = x->rank - 1 - d;
    } else if (n != x->rank) {
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "perm has %lld values for an input of rank %d",
                             (long long)n, x->rank);
    }
    for (int d = 0; n >= 0 && d < x->rank; d++) {
        if (tops_axis(ctx, attr[d], x->rank, "perm value", &perm[d]) != KILN_OK)
            return kiln_ctx_status(ctx);
        if (seen[perm[d]])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "perm repeats axis %d", perm[d]);
        seen[perm[d]] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        dims[d] = x->dims[perm[d]];
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    return permute_copy(ctx, x, y, x->rank, x->dims, perm);
}

/* Reads blocksize and checks the input is 4-D [N,C,H,W]. */
static kiln_status_t read_blocksize(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, int64_t *b)
{
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input is missing");
    if (x->rank != 4)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input must be 4-D [N,C,H,W], it has rank %d",
                             x->rank);
    *b = kiln_attr_int(kiln_ctx_node(ctx), "blocksize", 0);
    if (*b <= 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "blocksize must be positive, got %lld",
                             (long long)*b);
    return KILN_OK;
}

static kiln_status_t depth_to_space_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    int64_t b;
    if (read_blocksize(ctx, x, &b) != KILN_OK)
        return kiln_ctx_status(ctx);
    int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (c % (b * b) != 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "channels %lld are not divisible by blocksize^2 = %lld", (long long)c,
                             (long long)(b * b));
    int64_t out_dims[4] = {n, c / (b * b), h * b, w * b};
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, 4, out_dims);
    if (!y)
        return kiln_ctx_status(ctx);
    const char *mode = kiln_attr_string(kiln_ctx_node(ctx), "mode", "DCR");
    if (!strcmp(mode, "DCR")) {
        int64_t in6[6] = {n, b, b, c / (b * b), h, w};
        static const int perm[6] = {0, 3, 4, 1, 5, 2};
        return permute_copy(ctx, x, y, 6, in6, perm);
    }
    if (!strcmp(mode, "CRD")) {
        int64_t in6[6] = {n, c / (b * b), b, b, h, w};
        static const int perm[6] = {0, 1, 4, 2, 5, 3};
        return permute_copy(ctx, x, y, 6, in6, perm);
    }
    return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "mode must be DCR or CRD, got '%s'", mode);
}

static kiln_status_t space_to_depth_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    int64_t b;
    if (read_blocksize(ctx, x, &b) != KILN_OK)
        return kiln_ctx_status(ctx);
    int64_t n = x->dims[0], c = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (h % b != 0 || w % b != 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "height %lld and width %lld must be divisible by blocksize %lld", (long long)h,
                             (long long)w, (long long)b);
    int64_t out_dims[4] = {n, c * b * b, h / b, w / b};
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, 4, out_dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t in6[6] = {n, c, h / b, b, w / b, b};
    static const int perm[6] = {0, 3, 5, 1, 2, 4};
    return permute_copy(ctx, x, y, 6, in6, perm);
}

void tops_register_transpose(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Transpose", .since = 1, .run = transpose_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "DepthToSpace", .since = 1, .run = depth_to_space_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "SpaceToDepth", .since = 1, .run = space_to_depth_run});
}
