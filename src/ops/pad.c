/*
 * pad.c - ops that grow, repeat or reorder a tensor along its axes: Pad,
 * Tile, Expand and ReverseSequence.
 *
 * Expand and Tile are strided views of the input (a broadcast dim has
 * source stride 0; Tile splits each axis into a repeat index with stride 0
 * and a position with the input's stride), copied by tops_strided_copy().
 * Pad in constant mode fills the output with the value and copies the
 * (possibly cropped, for negative pads) input into its interior the same
 * way; reflect, edge and wrap build, per axis, a table from output to input
 * position and copy row by row through the tables.
 *
 * Output shapes here come from tensor values, so each is checked with
 * tops_check_shape() before anything is allocated.
 */
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "ops/tensor_util.h"

/* ---- Expand ------------------------------------------------------------- */

static kiln_status_t expand_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input is missing");
    int64_t shape[KILN_MAX_RANK];
    int64_t n = tops_read_ints(ctx, kiln_ctx_input(ctx, 1), "input shape", shape, KILN_MAX_RANK);
    if (n < 0)
        return kiln_ctx_status(ctx);
    int rank = x->rank > n ? x->rank : (int)n;
    int64_t in_strides[KILN_MAX_RANK];
    tops_strides(x->rank, x->dims, in_strides);
    tops_view_t v = {.rank = rank};
    for (int d = 0; d < rank; d++) {
        int xd = d - (rank - x->rank), sd = d - (rank - (int)n);
        int64_t a = xd >= 0 ? x->dims[xd] : 1, b = sd >= 0 ? shape[sd] : 1;
        if (a != b && a != 1 && b != 1) {
            char s1[256], s2[256];
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot expand %s to %s",
                                 kiln_shape_str(x->rank, x->dims, s1, sizeof s1),
                                 kiln_shape_str((int)n, shape, s2, sizeof s2));
        }
        v.dims[d] = a == 1 ? b : a;
        v.src_strides[d] = a == 1 ? 0 : in_strides[xd];
    }
    if (tops_check_shape(ctx, x->dtype, rank, v.dims, "output shape") != KILN_OK)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, rank, v.dims);
    if (!y)
        return kiln_ctx_status(ctx);
    tops_strides(rank, v.dims, v.dst_strides);
    return tops_strided_copy(ctx, &v, x->dtype, y->data, 0, x->data, 0);
}

/* ---- Tile --------------------------------------------------------------- */

static kiln_status_t tile_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input is missing");
    int64_t reps[KILN_MAX_RANK];
    int64_t n = tops_read_ints(ctx, kiln_ctx_input(ctx, 1), "input repeats", reps, KILN_MAX_RANK);
    if (n < 0)
        return kiln_ctx_status(ctx);
    if (n != x->rank)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "repeats has %lld values for an input of rank %d", (long long)n, x->rank);
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        if (reps[d] < 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "repeats[%d] is negative (%lld)", d,
                                 (long long)reps[d]);
        if (x->dims[d] > 0 && reps[d] > INT64_MAX / x->dims[d])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "repeats[%d] = %lld is too large", d,
                                 (long long)reps[d]);
        dims[d] = x->dims[d] * reps[d];
    }
    if (tops_check_shape(ctx, x->dtype, x->rank, dims, "output shape") != KILN_OK)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    /* Output axis d of length reps*dim is viewed as [reps, dim]. */
    int64_t in_strides[KILN_MAX_RANK], out_strides[KILN_MAX_RANK];
    tops_strides(x->rank, x->dims, in_strides);
    tops_strides(x->rank, dims, out_strides);
    tops_view_t v = {.rank = 2 * x->rank};
    for (int d = 0; d < x->rank; d++) {
        v.dims[2 * d] = reps[d];
        v.src_strides[2 * d] = 0;
        v.dst_strides[2 * d] = x->dims[d] * out_strides[d];
        v.dims[2 * d + 1] = x->dims[d];
        v.src_strides[2 * d + 1] = in_strides[d];
        v.dst_strides[2 * d + 1] = out_strides[d];
    }
    return tops_strided_copy(ctx, &v, x->dtype, y->data, 0, x->data, 0);
}

/* ---- Pad ---------------------------------------------------------------- */

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode_t;

/* Reads pads (begin values then end values, per axis of x) from the
 * attribute or the inputs, with the opset-18 axes input. */
static kiln_status_t read_pads(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, int64_t *begin, int64_t *end)
{
    int64_t pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
    int64_t n, n_axes = x->rank;
    bool axes_given = false;
    if (kiln_ctx_opset(ctx) >= 11) {
        n = tops_read_ints(ctx, kiln_ctx_input(ctx, 1), "input pads", pads, 2 * KILN_MAX_RANK);
        if (n < 0)
            return kiln_ctx_status(ctx);
        const kiln_tensor_t *axes_t = kiln_ctx_input(ctx, 3);
        if (axes_t) {
            axes_given = true;
            n_axes = tops_read_ints(ctx, axes_t, "input axes", axes, KILN_MAX_RANK);
            if (n_axes < 0)
                return kiln_ctx_status(ctx);
        }
    } else {
        const int64_t *a;
        const kiln_node_t *node = kiln_ctx_node(ctx);
        n = kiln_attr_ints(node, kiln_ctx_opset(ctx) < 2 ? "paddings" : "pads", &a);
        if (n < 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute pads is missing");
        if (n > 2 * KILN_MAX_RANK)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute pads has %lld values", (long long)n);
        memcpy(pads, a, (size_t)n * sizeof *a);
    }
    if (n != 2 * n_axes)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "pads has %lld values, expected %lld",
                             (long long)n, (long long)(2 * n_axes));
    for (int d = 0; d < x->rank; d++)
        begin[d] = end[d] = 0;
    for (int64_t i = 0; i < n_axes; i++) {
        int a = (int)i;
        if (axes_given)
            if (tops_axis(ctx, axes[i], x->rank, "axes value", &a) != KILN_OK)
                return kiln_ctx_status(ctx);
        begin[a] = pads[i];
        end[a] = pads[i + n_axes];
    }
    return KILN_OK;
}

static kiln_status_t read_pad_mode(kiln_kernel_ctx_t *ctx, pad_mode_t *mode)
{
    const char *m = kiln_attr_string(kiln_ctx_node(ctx), "mode", "constant");
    if (!strcmp(m, "constant"))
        *mode = PAD_CONSTANT;
    else if (!strcmp(m, "reflect"))
        *mode = PAD_REFLECT;
    else if (!strcmp(m, "edge"))
        *mode = PAD_EDGE;
    else if (!strcmp(m, "wrap"))
        *mode = PAD_WRAP;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "unknown mode '%s'", m);
    return KILN_OK;
}

/* Writes the constant-mode pad value, converted to dtype, into one
 * element at dst (a string element gets a fresh copy). */
static bool pad_value(kiln_kernel_ctx_t *ctx, kiln_dtype_t dtype, void *dst)
{
    const kiln_tensor_t *c = kiln_ctx_opset(ctx) >= 11 ? kiln_ctx_input(ctx, 2) : NULL;
    if (c && c->count >= 1 && c->dtype == dtype) {
        return tops_copy_elems(dst, c->data, 1, dtype);
    }
    if (dtype == KILN_DTYPE_STRING) {
        *(char **)dst = strdup("");
        return *(char **)dst != NULL;
    }
    double v =
        c && c->count >= 1 ? kiln_tensor_get_f64(c, 0) : kiln_attr_float(kiln_ctx_node(ctx), "value", 0.0f);
    kiln_tensor_t one = {.dtype = dtype, .rank = 0, .count = 1, .data = dst};
    kiln_tensor_set_f64(&one, 0, v);
    return true;
}

/* Fills every element of y with the pad value. */
static kiln_status_t fill_pad_value(kiln_kernel_ctx_t *ctx, kiln_tensor_t *y)
{
    if (y->count == 0)
        return KILN_OK;
    if (!pad_value(ctx, y->dtype, y->data))
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    if (y->dtype == KILN_DTYPE_STRING) {
        for (int64_t i = 1; i < y->count; i++)
            if (!tops_copy_elems((char **)y->data + i, y->data, 1, y->dtype))
                return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
        return KILN_OK;
    }
    size_t total = y->nbytes, filled = kiln_dtype_size(y->dtype);
    while (filled < total) { /* double the filled prefix each step */
        size_t n = filled < total - filled ? filled : total - filled;
        memcpy((char *)y->data + filled, y->data, n);
        filled += n;
    }
    return KILN_OK;
}

/* Constant mode: the value everywhere, then the kept part of x inside. */
static kiln_status_t pad_constant(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, kiln_tensor_t *y,
                                  const int64_t *begin, const int64_t *end)
{
    if (fill_pad_value(ctx, y) != KILN_OK)
        return kiln_ctx_status(ctx);
    int64_t in_strides[KILN_MAX_RANK], out_strides[KILN_MAX_RANK];
    tops_strides(x->rank, x->dims, in_strides);
    tops_strides(y->rank, y->dims, out_strides);
    tops_view_t v = {.rank = x->rank};
    int64_t src_off = 0, dst_off = 0;
    for (int d = 0; d < x->rank; d++) {
        int64_t crop_begin = begin[d] < 0 ? -begin[d] : 0, crop_end = end[d] < 0 ? -end[d] : 0;
        int64_t len = x->dims[d] - crop_begin - crop_end;
        v.dims[d] = len > 0 ? len : 0;
        v.src_strides[d] = in_strides[d];
        v.dst_strides[d] = out_strides[d];
        src_off += crop_begin * in_strides[d];
        dst_off += (begin[d] > 0 ? begin[d] : 0) * out_strides[d];
    }
    return tops_strided_copy(ctx, &v, x->dtype, y->data, dst_off, x->data, src_off);
}

/* Position in the kept part of an axis (of length n > 0, after negative
 * pads cropped it) read for output position i, with `grow` elements padded
 * before it in the given mode. */
static int64_t pad_source_index(int64_t i, int64_t grow, int64_t n, pad_mode_t mode)
{
    int64_t j = i - grow;
    if (j >= 0 && j < n)
        return j;
    switch (mode) {
    case PAD_EDGE:
        return j < 0 ? 0 : n - 1;
    case PAD_WRAP:
        return ((j % n) + n) % n;
    default: { /* reflect without repeating the edge: period 2*(n-1) */
        if (n == 1)
            return 0;
        int64_t period = 2 * (n - 1);
        j = ((j % period) + period) % period;
        return j < n ? j : period - j;
    }
    }
}

/* Copies one output row of n elements from src through the index table. */
static bool copy_mapped_row(char *dst, const char *src, const int64_t *map, int64_t n, kiln_dtype_t dtype)
{
    size_t esize = kiln_dtype_size(dtype);
    if (dtype == KILN_DTYPE_STRING) {
        for (int64_t i = 0; i < n; i++)
            if (!tops_copy_elems(dst + i * (int64_t)esize, src + map[i] * (int64_t)esize, 1, dtype))
                return false;
        return true;
    }
    switch (esize) {
    case 1:
        for (int64_t i = 0; i < n; i++)
            ((uint8_t *)dst)[i] = ((const uint8_t *)src)[map[i]];
        break;
    case 2:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = ((const uint16_t *)src)[map[i]];
        break;
    case 4:
        for (int64_t i = 0; i < n; i++)
            ((uint32_t *)dst)[i] = ((const uint32_t *)src)[map[i]];
        break;
    case 8:
        for (int64_t i = 0; i < n; i++)
            ((uint64_t *)dst)[i] = ((const uint64_t *)src)[map[i]];
        break;
    default:
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + i * (int64_t)esize, src + map[i] * (int64_t)esize, esize);
        break;
    }
    return true;
}

/* Reflect, edge and wrap: every output element reads an input element
 * chosen per axis by a table.  Negative pads crop the input first and the
 * modes then see only the kept part (as ONNX Runtime and the ONNX
 * reference do). */
static kiln_status_t pad_by_tables(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, kiln_tensor_t *y,
                                   const int64_t *begin, const int64_t *end, pad_mode_t mode)
{
    if (y->count == 0)
        return KILN_OK;
    if (x->rank == 0)
        return tops_copy_tensor(ctx, y, x);
    int64_t kept[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        kept[d] = x->dims[d] - (begin[d] < 0 ? -begin[d] : 0) - (end[d] < 0 ? -end[d] : 0);
        if (kept[d] <= 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "cannot pad axis %d in this mode: nothing of it is left after cropping", d);
    }
    int64_t total = 0;
    for (int d = 0; d < y->rank; d++)
        total += y->dims[d];
    int64_t *tables = malloc((size_t)total * sizeof *tables);
    if (!tables)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    int64_t *map[KILN_MAX_RANK], in_strides[KILN_MAX_RANK];
    tops_strides(x->rank, x->dims, in_strides);
    for (int64_t d = 0, at = 0; d < y->rank; at += y->dims[d], d++) {
        map[d] = tables + at;
        for (int64_t i = 0; i < y->dims[d]; i++)
            map[d][i] = pad_source_index(i, begin[d] > 0 ? begin[d] : 0, kept[d], mode) +
                        (begin[d] < 0 ? -begin[d] : 0);
    }
    int last = y->rank - 1;
    int64_t row = y->dims[last], rows = y->count / row, pos[KILN_MAX_RANK] = {0};
    size_t esize = kiln_dtype_size(x->dtype);
    for (int64_t r = 0; r < rows; r++) {
        int64_t src_off = 0;
        for (int d = 0; d < last; d++)
            src_off += map[d][pos[d]] * in_strides[d];
        if (!copy_mapped_row((char *)y->data + r * row * (int64_t)esize,
                             (const char *)x->data + src_off * (int64_t)esize, map[last], row, x->dtype)) {
            free(tables);
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
        }
        for (int d = last - 1; d >= 0 && ++pos[d] == y->dims[d]; d--)
            pos[d] = 0;
    }
    free(tables);
    return KILN_OK;
}

static kiln_status_t pad_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    int64_t begin[KILN_MAX_RANK], end[KILN_MAX_RANK], dims[KILN_MAX_RANK];
    pad_mode_t mode = PAD_CONSTANT;
    if (read_pads(ctx, x, begin, end) != KILN_OK || read_pad_mode(ctx, &mode) != KILN_OK)
        return kiln_ctx_status(ctx);
    for (int d = 0; d < x->rank; d++) {
        if (begin[d] > INT64_MAX / 4 || end[d] > INT64_MAX / 4 || begin[d] < -x->dims[d] ||
            end[d] < -x->dims[d])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "pads %lld, %lld do not fit axis %d of size %lld", (long long)begin[d],
                                 (long long)end[d], d, (long long)x->dims[d]);
        dims[d] = x->dims[d] + begin[d] + end[d];
    }
    if (tops_check_shape(ctx, x->dtype, x->rank, dims, "output shape") != KILN_OK)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (mode == PAD_CONSTANT)
        return pad_constant(ctx, x, y, begin, end);
    return pad_by_tables(ctx, x, y, begin, end, mode);
}

/* ---- ReverseSequence ---------------------------------------------------- */

/* Reads sequence_lens, each in [0, steps]; NULL after failing the context. */
static int64_t *read_sequence_lens(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *t, int64_t steps)
{
    if (t->dtype != KILN_DTYPE_INT64 && t->dtype != KILN_DTYPE_INT32) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "sequence_lens must be int64 or int32, got %s",
                      kiln_dtype_name(t->dtype));
        return NULL;
    }
    int64_t *lens = malloc((size_t)(t->count > 0 ? t->count : 1) * sizeof *lens);
    if (!lens) {
        kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < t->count; i++) {
        lens[i] = kiln_tensor_get_i64(t, i);
        if (lens[i] < 0 || lens[i] > steps) {
            kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "sequence_lens[%lld] = %lld is outside [0, %lld]",
                          (long long)i, (long long)lens[i], (long long)steps);
            free(lens);
            return NULL;
        }
    }
    return lens;
}

static kiln_status_t reverse_sequence_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *lens_t = kiln_ctx_input(ctx, 1);
    if (!x || !lens_t)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input or sequence_lens is missing");
    if (x->rank < 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input must have rank >= 2, it has %d", x->rank);
    const kiln_node_t *node = kiln_ctx_node(ctx);
    int64_t time_axis = kiln_attr_int(node, "time_axis", 0),
            batch_axis = kiln_attr_int(node, "batch_axis", 1);
    if (!((time_axis == 0 && batch_axis == 1) || (time_axis == 1 && batch_axis == 0)))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL,
                             "time_axis %lld and batch_axis %lld must be 0 and 1", (long long)time_axis,
                             (long long)batch_axis);
    int64_t steps = x->dims[time_axis], batch = x->dims[batch_axis];
    if (lens_t->count != batch)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "sequence_lens has %lld values for a batch of %lld", (long long)lens_t->count,
                             (long long)batch);
    int64_t *lens = read_sequence_lens(ctx, lens_t, steps);
    if (!lens)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y || tops_copy_tensor(ctx, y, x) != KILN_OK) {
        free(lens);
        return kiln_ctx_status(ctx);
    }
    int64_t strides[KILN_MAX_RANK];
    tops_strides(x->rank, x->dims, strides);
    int64_t inner = strides[1];
    size_t esize = kiln_dtype_size(x->dtype);
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t t = 0; t < lens[b]; t++) {
            int64_t dst = t * strides[time_axis] + b * strides[batch_axis];
            int64_t src = (lens[b] - 1 - t) * strides[time_axis] + b * strides[batch_axis];
            if (!tops_copy_elems((char *)y->data + dst * (int64_t)esize,
                                 (const char *)x->data + src * (int64_t)esize, inner, x->dtype)) {
                free(lens);
                return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
            }
        }
    }
    free(lens);
    return KILN_OK;
}

void tops_register_pad(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Pad", .since = 1, .run = pad_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Tile", .since = 6, .run = tile_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Expand", .since = 8, .run = expand_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "ReverseSequence", .since = 10, .run = reverse_sequence_run});
}
