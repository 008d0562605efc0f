/*
 * gather.c - ops that read elements at positions given by an index tensor:
 * Gather, GatherElements and GatherND.
 *
 * Every index is read once, normalized (negative counts from the end) and
 * range-checked before any element moves, so a bad index is a clear error
 * and never a read out of bounds.  Gather and GatherND copy whole slices
 * (an embedding row, say) with memcpy and split large outputs over the
 * session's threads; GatherElements picks single elements.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/tensor_util.h"

/* Below this many output bytes a gather runs on one thread. */
#define GATHER_PARALLEL_MIN_BYTES ((int64_t)1 << 18)

/* A gather of `items` slices of `slice` elements each: item i copies the
 * slice at element offset src_offsets[i] of src to position i * slice of dst. */
typedef struct slice_gather {
    char *dst;
    const char *src;
    const int64_t *src_offsets;
    int64_t slice;
    size_t esize;
    kiln_dtype_t dtype;
    bool failed;
} slice_gather_t;

/* Slices of one element: a typed loop instead of a memcpy call each. */
static bool gather_elements_by_size(slice_gather_t *g, int64_t begin, int64_t end)
{
    const int64_t *o = g->src_offsets;
    switch (g->dtype == KILN_DTYPE_STRING ? 0 : g->esize) {
    case 1:
        for (int64_t i = begin; i < end; i++)
            ((uint8_t *)g->dst)[i] = ((const uint8_t *)g->src)[o[i]];
        return true;
    case 2:
        for (int64_t i = begin; i < end; i++)
            ((uint16_t *)g->dst)[i] = ((const uint16_t *)g->src)[o[i]];
        return true;
    case 4:
        for (int64_t i = begin; i < end; i++)
            ((uint32_t *)g->dst)[i] = ((const uint32_t *)g->src)[o[i]];
        return true;
    case 8:
        for (int64_t i = begin; i < end; i++)
            ((uint64_t *)g->dst)[i] = ((const uint64_t *)g->src)[o[i]];
        return true;
    default:
        return false;
    }
}

static void gather_slices(void *arg, int64_t begin, int64_t end)
{
    slice_gather_t *g = arg;
    if (g->slice == 1 && gather_elements_by_size(g, begin, end))
        return;
    int64_t bytes = g->slice * (int64_t)g->esize;
    for (int64_t i = begin; i < end; i++) {
        if (!tops_copy_elems(g->dst + i * bytes, g->src + g->src_offsets[i] * (int64_t)g->esize, g->slice,
                             g->dtype)) {
            g->failed = true;
            return;
        }
    }
}

/* Runs a slice gather on the context's threads when it is large enough. */
static kiln_status_t run_slice_gather(kiln_kernel_ctx_t *ctx, slice_gather_t *g, int64_t items)
{
    int64_t bytes = items * g->slice * (int64_t)g->esize;
    if (g->dtype != KILN_DTYPE_STRING && bytes >= GATHER_PARALLEL_MIN_BYTES) {
        int64_t slice_bytes = g->slice * (int64_t)g->esize;
        int64_t grain = GATHER_PARALLEL_MIN_BYTES / 8 / (slice_bytes > 0 ? slice_bytes : 1);
        kiln_ctx_parallel_for(ctx, items, grain > 0 ? grain : 1, gather_slices, g);
    } else {
        gather_slices(g, 0, items);
    }
    if (g->failed)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
    return KILN_OK;
}

/* ---- Gather ------------------------------------------------------------- */

static kiln_status_t gather_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *ind = kiln_ctx_input(ctx, 1);
    if (!x || !ind)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data or indices is missing");
    int axis;
    if (x->rank == 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "data must have rank >= 1");
    if (tops_axis(ctx, kiln_attr_int(kiln_ctx_node(ctx), "axis", 0), x->rank, "axis", &axis) != KILN_OK)
        return kiln_ctx_status(ctx);
    int rank = x->rank - 1 + ind->rank;
    if (rank > KILN_MAX_RANK)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "output rank %d exceeds %d", rank, KILN_MAX_RANK);
    int64_t dims[KILN_MAX_RANK];
    int r = 0;
    for (int d = 0; d < axis; d++)
        dims[r++] = x->dims[d];
    for (int d = 0; d < ind->rank; d++)
        dims[r++] = ind->dims[d];
    for (int d = axis + 1; d < x->rank; d++)
        dims[r++] = x->dims[d];

    int64_t *idx = tops_read_indices(ctx, ind, x->dims[axis], "indices");
    if (!idx)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, rank, dims);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= x->dims[d];
    for (int d = axis + 1; d < x->rank; d++)
        inner *= x->dims[d];
    int64_t items = outer * ind->count;
    int64_t *offsets = y ? malloc((size_t)(items > 0 ? items : 1) * sizeof *offsets) : NULL;
    if (!offsets) {
        free(idx);
        return y ? kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory") : kiln_ctx_status(ctx);
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ind->count; j++)
            offsets[o * ind->count + j] = (o * x->dims[axis] + idx[j]) * inner;
    free(idx);
    slice_gather_t g = {.dst = y->data,
                        .src = x->data,
                        .src_offsets = offsets,
                        .slice = inner,
                        .esize = kiln_dtype_size(x->dtype),
                        .dtype = x->dtype};
    kiln_status_t st = run_slice_gather(ctx, &g, items);
    free(offsets);
    return st;
}

/* ---- GatherElements ----------------------------------------------------- */

static kiln_status_t gather_elements_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *ind = kiln_ctx_input(ctx, 1);
    if (!x || !ind)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data or indices is missing");
    if (x->rank == 0 || ind->rank != x->rank)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "indices rank %d must equal data rank %d (>= 1)",
                             ind->rank, x->rank);
    int axis;
    if (tops_axis(ctx, kiln_attr_int(kiln_ctx_node(ctx), "axis", 0), x->rank, "axis", &axis) != KILN_OK)
        return kiln_ctx_status(ctx);
    for (int d = 0; d < x->rank; d++)
        if (d != axis && ind->dims[d] > x->dims[d])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "indices dim %d (%lld) exceeds data dim (%lld)", d, (long long)ind->dims[d],
                                 (long long)x->dims[d]);
    int64_t *idx = tops_read_indices(ctx, ind, x->dims[axis], "indices");
    if (!idx)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, ind->rank, ind->dims);
    if (!y) {
        free(idx);
        return kiln_ctx_status(ctx);
    }
    int64_t strides[KILN_MAX_RANK], pos[KILN_MAX_RANK] = {0};
    tops_strides(x->rank, x->dims, strides);
    size_t esize = kiln_dtype_size(x->dtype);
    int64_t base = 0; /* data offset of pos with the axis coordinate left out */
    for (int64_t i = 0; i < ind->count; i++) {
        const char *src = (const char *)x->data + (base + idx[i] * strides[axis]) * (int64_t)esize;
        if (!tops_copy_elems((char *)y->data + i * (int64_t)esize, src, 1, x->dtype)) {
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

/* ---- GatherND ----------------------------------------------------------- */

static kiln_status_t gather_nd_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *ind = kiln_ctx_input(ctx, 1);
    if (!x || !ind)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data or indices is missing");
    int b = (int)kiln_attr_int(kiln_ctx_node(ctx), "batch_dims", 0);
    int k = tops_check_nd_shapes(ctx, x, ind, b);
    if (k < 0)
        return kiln_ctx_status(ctx);
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < ind->rank - 1; d++)
        dims[rank++] = ind->dims[d];
    if (rank + x->rank - b - k > KILN_MAX_RANK)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "output rank exceeds %d", KILN_MAX_RANK);
    int64_t slice = 1, batches = 1, batch_size = 1;
    for (int d = b + k; d < x->rank; d++) {
        dims[rank++] = x->dims[d];
        slice *= x->dims[d];
    }
    for (int d = 0; d < b; d++)
        batches *= x->dims[d];
    for (int d = b; d < x->rank; d++)
        batch_size *= x->dims[d];

    int64_t *offsets;
    int64_t tuples = tops_nd_offsets(ctx, x, ind, b, &offsets);
    if (tuples < 0)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, rank, dims);
    if (!y) {
        free(offsets);
        return kiln_ctx_status(ctx);
    }
    int64_t per_batch = batches > 0 ? tuples / batches : 0;
    for (int64_t t = 0; t < tuples; t++)
        offsets[t] += (t / (per_batch > 0 ? per_batch : 1)) * batch_size;
    slice_gather_t g = {.dst = y->data,
                        .src = x->data,
                        .src_offsets = offsets,
                        .slice = slice,
                        .esize = kiln_dtype_size(x->dtype),
                        .dtype = x->dtype};
    kiln_status_t st = run_slice_gather(ctx, &g, tuples);
    free(offsets);
    return st;
}

void tops_register_gather(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Gather", .since = 1, .run = gather_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "GatherElements", .since = 11, .run = gather_elements_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "GatherND", .since = 11, .run = gather_nd_run});
}
