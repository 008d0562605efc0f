/*
 * scatter.c - ops that write updates into a copy of their data at
 * positions given by an index tensor: Scatter (deprecated since opset 11),
 * ScatterElements and ScatterND, with the `reduction` attribute (none, add,
 * mul; max and min from opset 18).
 *
 * As in gather.c, every index is range-checked before anything is written.
 * Updates are applied in index order, so with reduction "none" the last of
 * several updates to one element wins, as in the ONNX reference.  A
 * reduction combines elements in their own dtype (integers wrap like C
 * unsigned arithmetic, float16/bfloat16 go through float32).
 */
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "ops/tensor_util.h"

typedef enum reduction { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } reduction_t;

static kiln_status_t read_reduction(kiln_kernel_ctx_t *ctx, kiln_dtype_t dtype, reduction_t *out)
{
    const char *r = kiln_attr_string(kiln_ctx_node(ctx), "reduction", "none");
    if (!strcmp(r, "none"))
        *out = RED_NONE;
    else if (!strcmp(r, "add"))
        *out = RED_ADD;
    else if (!strcmp(r, "mul"))
        *out = RED_MUL;
    else if (!strcmp(r, "max"))
        *out = RED_MAX;
    else if (!strcmp(r, "min"))
        *out = RED_MIN;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "unknown reduction '%s'", r);
    if (*out != RED_NONE &&
        (dtype == KILN_DTYPE_STRING || dtype == KILN_DTYPE_COMPLEX64 || dtype == KILN_DTYPE_COMPLEX128))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "reduction '%s' on %s", r, kiln_dtype_name(dtype));
    return KILN_OK;
}

/* ---- Combining one element ---------------------------------------------- */

static double reduce_f64(double a, double b, reduction_t r)
{
    switch (r) {
    case RED_ADD:
        return a + b;
    case RED_MUL:
        return a * b;
    case RED_MAX:
        return a > b ? a : b;
    case RED_MIN:
        return a < b ? a : b;
    default:
        return b;
    }
}

static float reduce_f32(float a, float b, reduction_t r)
{
    switch (r) {
    case RED_ADD:
        return a + b;
    case RED_MUL:
        return a * b;
    case RED_MAX:
        return a > b ? a : b;
    case RED_MIN:
        return a < b ? a : b;
    default:
        return b;
    }
}

/* Signed integers: add and mul wrap (done in uint64), then truncate. */
static int64_t reduce_i64(int64_t a, int64_t b, reduction_t r)
{
    switch (r) {
    case RED_ADD:
        return (int64_t)((uint64_t)a + (uint64_t)b);
    case RED_MUL:
        return (int64_t)((uint64_t)a * (uint64_t)b);
    case RED_MAX:
        return a > b ? a : b;
    case RED_MIN:
        return a < b ? a : b;
    default:
        return b;
    }
}

static uint64_t reduce_u64(uint64_t a, uint64_t b, reduction_t r)
{
    switch (r) {
    case RED_ADD:
        return a + b;
    case RED_MUL:
        return a * b;
    case RED_MAX:
        return a > b ? a : b;
    case RED_MIN:
        return a < b ? a : b;
    default:
        return b;
    }
}

/* y[yi] = reduce(y[yi], u[ui]) for one element of a numeric or bool dtype. */
static void reduce_elem(kiln_tensor_t *y, int64_t yi, const kiln_tensor_t *u, int64_t ui, reduction_t r)
{
    void *d = y->data;
    const void *s = u->data;
    switch (y->dtype) {
    case KILN_DTYPE_FLOAT32:
        ((float *)d)[yi] = reduce_f32(((float *)d)[yi], ((const float *)s)[ui], r);
        break;
    case KILN_DTYPE_FLOAT64:
        ((double *)d)[yi] = reduce_f64(((double *)d)[yi], ((const double *)s)[ui], r);
        break;
    case KILN_DTYPE_FLOAT16:
        ((uint16_t *)d)[yi] = kiln_f32_to_f16(
            reduce_f32(kiln_f16_to_f32(((uint16_t *)d)[yi]), kiln_f16_to_f32(((const uint16_t *)s)[ui]), r));
        break;
    case KILN_DTYPE_BFLOAT16:
        ((uint16_t *)d)[yi] = kiln_f32_to_bf16(reduce_f32(kiln_bf16_to_f32(((uint16_t *)d)[yi]),
                                                          kiln_bf16_to_f32(((const uint16_t *)s)[ui]), r));
        break;
    case KILN_DTYPE_INT8:
        ((int8_t *)d)[yi] = (int8_t)reduce_i64(((int8_t *)d)[yi], ((const int8_t *)s)[ui], r);
        break;
    case KILN_DTYPE_INT16:
        ((int16_t *)d)[yi] = (int16_t)reduce_i64(((int16_t *)d)[yi], ((const int16_t *)s)[ui], r);
        break;
    case KILN_DTYPE_INT32:
        ((int32_t *)d)[yi] = (int32_t)reduce_i64(((int32_t *)d)[yi], ((const int32_t *)s)[ui], r);
        break;
    case KILN_DTYPE_INT64:
        ((int64_t *)d)[yi] = reduce_i64(((int64_t *)d)[yi], ((const int64_t *)s)[ui], r);
        break;
    case KILN_DTYPE_UINT8:
        ((uint8_t *)d)[yi] = (uint8_t)reduce_u64(((uint8_t *)d)[yi], ((const uint8_t *)s)[ui], r);
        break;
    case KILN_DTYPE_UINT16:
        ((uint16_t *)d)[yi] = (uint16_t)reduce_u64(((uint16_t *)d)[yi], ((const uint16_t *)s)[ui], r);
        break;
    case KILN_DTYPE_UINT32:
        ((uint32_t *)d)[yi] = (uint32_t)reduce_u64(((uint32_t *)d)[yi], ((const uint32_t *)s)[ui], r);
        break;
    case KILN_DTYPE_UINT64:
        ((uint64_t *)d)[yi] = reduce_u64(((uint64_t *)d)[yi], ((const uint64_t *)s)[ui], r);
        break;
    case KILN_DTYPE_BOOL: { /* add/max = or, mul/min = and */
        uint8_t a = ((uint8_t *)d)[yi] != 0, b = ((const uint8_t *)s)[ui] != 0;
        ((uint8_t *)d)[yi] = (r == RED_ADD || r == RED_MAX) ? (a | b) : (a & b);
        break;
    }
    default:
        break;
    }
}

/* Writes n consecutive update elements from u[ui..] into y[yi..]. */
static bool apply_updates(kiln_tensor_t *y, int64_t yi, const kiln_tensor_t *u, int64_t ui, int64_t n,
                          reduction_t r)
{
    size_t esize = kiln_dtype_size(y->dtype);
    if (r == RED_NONE)
        return tops_copy_elems((char *)y->data + yi * (int64_t)esize,
                               (const char *)u->data + ui * (int64_t)esize, n, y->dtype);
    for (int64_t i = 0; i < n; i++)
        reduce_elem(y, yi + i, u, ui + i, r);
    return true;
}

/* ---- ScatterElements (and Scatter) -------------------------------------- */

static kiln_status_t scatter_elements_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *ind = kiln_ctx_input(ctx, 1),
                        *upd = kiln_ctx_input(ctx, 2);
    if (!x || !ind || !upd)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data, indices or updates is missing");
    if (x->rank == 0 || ind->rank != x->rank || !kiln_shape_equal(ind, upd) || upd->dtype != x->dtype)
        return kiln_ctx_fail(
            ctx, KILN_ERR_INVALID_ARGUMENT,
            "indices and updates must have one shape and the rank of data (>= 1), updates its dtype");
    int axis;
    reduction_t red;
    if (tops_axis(ctx, kiln_attr_int(kiln_ctx_node(ctx), "axis", 0), x->rank, "axis", &axis) != KILN_OK ||
        read_reduction(ctx, x->dtype, &red) != KILN_OK)
        return kiln_ctx_status(ctx);
    for (int d = 0; d < x->rank; d++)
        if (d != axis && ind->dims[d] > x->dims[d])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "indices dim %d (%lld) exceeds data dim (%lld)", d, (long long)ind->dims[d],
                                 (long long)x->dims[d]);
    int64_t *idx = tops_read_indices(ctx, ind, x->dims[axis], "indices");
    if (!idx)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y || tops_copy_tensor(ctx, y, x) != KILN_OK) {
        free(idx);
        return kiln_ctx_status(ctx);
    }
    int64_t strides[KILN_MAX_RANK], pos[KILN_MAX_RANK] = {0};
    tops_strides(x->rank, x->dims, strides);
    int64_t base = 0; /* data offset of pos with the axis coordinate left out */
    for (int64_t i = 0; i < ind->count; i++) {
        if (!apply_updates(y, base + idx[i] * strides[axis], upd, i, 1, red)) {
            free(idx);
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
        }
        for (int d = ind->rank - 1; d >= 0; d--) { /* next position, row-major */
            int64_t step = d == axis ? 0 : strides[d];
            if (++pos[d] < ind->dims[d]) {
                base += step;
                break;
            }
            base -= step * (pos[d] - 1);
            pos[d] = 0;
        }
    }
    free(idx);
    return KILN_OK;
}

/* ---- ScatterND ---------------------------------------------------------- */

static kiln_status_t scatter_nd_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *ind = kiln_ctx_input(ctx, 1),
                        *upd = kiln_ctx_input(ctx, 2);
    if (!x || !ind || !upd)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data, indices or updates is missing");
    reduction_t red;
    if (read_reduction(ctx, x->dtype, &red) != KILN_OK)
        return kiln_ctx_status(ctx);
    int k = tops_check_nd_shapes(ctx, x, ind, 0);
    if (k < 0)
        return kiln_ctx_status(ctx);
    /* updates must have shape indices.shape[:-1] + data.shape[k:] */
    bool ok = upd->dtype == x->dtype && upd->rank == ind->rank - 1 + x->rank - k;
    for (int d = 0; ok && d < ind->rank - 1; d++)
        ok = upd->dims[d] == ind->dims[d];
    for (int d = k; ok && d < x->rank; d++)
        ok = upd->dims[ind->rank - 1 + d - k] == x->dims[d];
    if (!ok) {
        char a[256], b[256], c[256];
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "updates %s do not fit data %s and indices %s",
                             kiln_shape_str(upd->rank, upd->dims, a, sizeof a),
                             kiln_shape_str(x->rank, x->dims, b, sizeof b),
                             kiln_shape_str(ind->rank, ind->dims, c, sizeof c));
    }
    int64_t *offsets;
    int64_t tuples = tops_nd_offsets(ctx, x, ind, 0, &offsets);
    if (tuples < 0)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y || tops_copy_tensor(ctx, y, x) != KILN_OK) {
        free(offsets);
        return kiln_ctx_status(ctx);
    }
    int64_t slice = 1;
    for (int d = k; d < x->rank; d++)
        slice *= x->dims[d];
    for (int64_t t = 0; t < tuples; t++)
        if (!apply_updates(y, offsets[t], upd, t * slice, slice, red)) {
            free(offsets);
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
        }
    free(offsets);
    return KILN_OK;
}

void tops_register_scatter(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Scatter", .since = 9, .run = scatter_elements_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "ScatterElements", .since = 11, .run = scatter_elements_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "ScatterND", .since = 11, .run = scatter_nd_run});
}
