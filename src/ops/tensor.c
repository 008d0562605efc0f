/*
 * tensor.c - the tensor family's entry point and its value-making ops:
 * Constant, ConstantOfShape, Identity, Dropout, Shape and Size.
 *
 * The family moves and reshapes tensors without doing arithmetic; its other
 * kernels live by theme in shape.c (Reshape, Flatten, Squeeze, Unsqueeze),
 * transpose.c (Transpose, DepthToSpace, SpaceToDepth), slice.c (Slice,
 * Concat, Split), gather.c, scatter.c and pad.c (Pad, Tile, Expand,
 * ReverseSequence), with shared helpers in tensor_util.c.
 * kiln_ops_register_tensor() at the end registers them all.
 *
 * Dropout in training mode draws its mask from MT19937 seeded like numpy's
 * legacy np.random.seed(), so that a node with a `seed` attribute gives the
 * same mask as the ONNX reference implementation (the conformance tests
 * compare against it).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/half.h"
#include "ops/tensor_util.h"

/* ---- Constant ----------------------------------------------------------- */

/* Makes a 1-D or scalar (rank 0) output from attribute values. */
static kiln_tensor_t *constant_output(kiln_kernel_ctx_t *ctx, kiln_dtype_t dtype, int rank, int64_t n)
{
    int64_t dims[1] = {n};
    return kiln_ctx_output(ctx, 0, dtype, rank, dims);
}

static kiln_status_t constant_strings(kiln_kernel_ctx_t *ctx, const char *const *vals, int64_t n, int rank)
{
    kiln_tensor_t *y = constant_output(ctx, KILN_DTYPE_STRING, rank, n);
    if (!y)
        return kiln_ctx_status(ctx);
    if (!tops_copy_elems(y->data, vals, n, KILN_DTYPE_STRING))
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
    return KILN_OK;
}

static kiln_status_t constant_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_attr_t *a;
    if ((a = kiln_node_attr(node, "value")) != NULL) {
        if (!a->t)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "attribute value holds no tensor");
        kiln_tensor_t *y = kiln_ctx_output(ctx, 0, a->t->dtype, a->t->rank, a->t->dims);
        if (!y)
            return kiln_ctx_status(ctx);
        return tops_copy_tensor(ctx, y, a->t);
    }
    if ((a = kiln_node_attr(node, "value_float")) != NULL) {
        kiln_tensor_t *y = constant_output(ctx, KILN_DTYPE_FLOAT32, 0, 1);
        if (!y)
            return kiln_ctx_status(ctx);
        *(float *)y->data = a->f;
        return KILN_OK;
    }
    if ((a = kiln_node_attr(node, "value_floats")) != NULL) {
        kiln_tensor_t *y = constant_output(ctx, KILN_DTYPE_FLOAT32, 1, a->n);
        if (!y)
            return kiln_ctx_status(ctx);
        if (a->n)
            memcpy(y->data, a->floats, (size_t)a->n * sizeof(float));
        return KILN_OK;
    }
    if ((a = kiln_node_attr(node, "value_int")) != NULL) {
        kiln_tensor_t *y = constant_output(ctx, KILN_DTYPE_INT64, 0, 1);
        if (!y)
            return kiln_ctx_status(ctx);
        *(int64_t *)y->data = a->i;
        return KILN_OK;
    }
    if ((a = kiln_node_attr(node, "value_ints")) != NULL) {
        kiln_tensor_t *y = constant_output(ctx, KILN_DTYPE_INT64, 1, a->n);
        if (!y)
            return kiln_ctx_status(ctx);
        if (a->n)
            memcpy(y->data, a->ints, (size_t)a->n * sizeof(int64_t));
        return KILN_OK;
    }
    if ((a = kiln_node_attr(node, "value_string")) != NULL) {
        const char *s = a->s ? a->s : "";
        return constant_strings(ctx, &s, 1, 0);
    }
    if ((a = kiln_node_attr(node, "value_strings")) != NULL)
        return constant_strings(ctx, a->strings, a->n, 1);
    if (kiln_node_attr(node, "sparse_value"))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "sparse_value constants are not supported");
    return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL,
                         "no value attribute (value, value_float(s), value_int(s), value_string(s))");
}

/* ---- ConstantOfShape ---------------------------------------------------- */

static kiln_status_t constant_of_shape_run(kiln_kernel_ctx_t *ctx)
{
    int64_t dims[KILN_MAX_RANK];
    int64_t rank = tops_read_ints(ctx, kiln_ctx_input(ctx, 0), "input shape", dims, KILN_MAX_RANK);
    if (rank < 0)
        return kiln_ctx_status(ctx);
    const kiln_tensor_t *value = kiln_attr_tensor(kiln_ctx_node(ctx), "value");
    if (value && value->count != 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL,
                             "attribute value must hold one element, it holds %lld", (long long)value->count);
    kiln_dtype_t dtype = value ? value->dtype : KILN_DTYPE_FLOAT32;
    if (tops_check_shape(ctx, dtype, (int)rank, dims, "shape") != KILN_OK)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, dtype, (int)rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (!value)
        return KILN_OK; /* zero-filled float32 */
    size_t esize = kiln_dtype_size(dtype);
    for (int64_t i = 0; i < y->count; i++)
        if (!tops_copy_elems((char *)y->data + i * (int64_t)esize, value->data, 1, dtype))
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
    return KILN_OK;
}

/* ---- Identity ----------------------------------------------------------- */

/* Passes any value through: a tensor, a sequence or an optional. */
static kiln_status_t identity_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *x = kiln_ctx_input_value(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input is missing");
    if (x->kind == KILN_VALUE_TENSOR) /* shares the input's elements */
        return kiln_ctx_output_view(ctx, 0, 0, x->tensor->rank, x->tensor->dims) ? KILN_OK
                                                                                 : kiln_ctx_status(ctx);
    kiln_value_t *y = kiln_value_clone(x);
    if (!y)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying the input");
    return kiln_ctx_set_output_value(ctx, 0, y);
}

/* ---- Dropout ------------------------------------------------------------ */

/* MT19937, seeded like numpy's legacy RandomState.seed(int). */
typedef struct mt19937 {
    uint32_t state[624];
    int index;
} mt19937_t;

static void mt_seed(mt19937_t *mt, uint32_t seed)
{
    mt->state[0] = seed;
    for (int i = 1; i < 624; i++)
        mt->state[i] = 1812433253u * (mt->state[i - 1] ^ (mt->state[i - 1] >> 30)) + (uint32_t)i;
    mt->index = 624;
}

static uint32_t mt_next(mt19937_t *mt)
{
    if (mt->index >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (mt->state[i] & 0x80000000u) | (mt->state[(i + 1) % 624] & 0x7fffffffu);
            mt->state[i] = mt->state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        mt->index = 0;
    }
    uint32_t y = mt->state[mt->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* A double in [0, 1) with 53 random bits (numpy's random_sample). */
static double mt_uniform(mt19937_t *mt)
{
    uint32_t a = mt_next(mt) >> 5, b = mt_next(mt) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

/* Reads a scalar float input or returns def when it is omitted. */
static double scalar_or(const kiln_tensor_t *t, double def)
{
    return t && t->count >= 1 ? kiln_tensor_get_f64(t, 0) : def;
}

static kiln_status_t dropout_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    int opset = kiln_ctx_opset(ctx);
    double ratio =
        opset >= 12 ? scalar_or(kiln_ctx_input(ctx, 1), 0.5) : kiln_attr_float(node, "ratio", 0.5f);
    /* Before opset 12 an inference engine always runs Dropout in test mode
     * (opset < 7 had an is_test attribute for training graphs). */
    bool training = opset >= 12 && scalar_or(kiln_ctx_input(ctx, 2), 0.0) != 0.0;
    if (training && (ratio < 0.0 || ratio >= 1.0))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "ratio %g is outside [0, 1)", ratio);

    bool pass = !training || ratio == 0.0; /* y is x: a view, no copy */
    kiln_tensor_t *y = pass ? kiln_ctx_output_view(ctx, 0, 0, x->rank, x->dims)
                            : kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *mask = NULL;
    if (kiln_ctx_output_count(ctx) > 1 && kiln_ctx_output_wanted(ctx, 1)) {
        /* The mask is bool from opset 10; before, it had the input's dtype. */
        kiln_dtype_t mask_dtype = opset >= 10 ? KILN_DTYPE_BOOL : x->dtype;
        mask = kiln_ctx_output(ctx, 1, mask_dtype, x->rank, x->dims);
        if (!mask)
            return kiln_ctx_status(ctx);
    }
    if (pass) {
        for (int64_t i = 0; mask && i < mask->count; i++)
            kiln_tensor_set_f64(mask, i, 1.0);
        return KILN_OK;
    }
    if (!kiln_dtype_is_float(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "training-mode dropout of %s",
                             kiln_dtype_name(x->dtype));
    mt19937_t mt;
    const kiln_attr_t *seed = kiln_node_attr(node, "seed");
    mt_seed(&mt, seed ? (uint32_t)seed->i : (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)&mt);
    float scale = (float)(1.0 / (1.0 - ratio));
    for (int64_t i = 0; i < x->count; i++) {
        bool keep = mt_uniform(&mt) >= ratio;
        double v = keep ? (float)kiln_tensor_get_f64(x, i) * scale : 0.0;
        kiln_tensor_set_f64(y, i, v);
        if (mask)
            ((uint8_t *)mask->data)[i] = keep;
    }
    return KILN_OK;
}

/* ---- Shape and Size ----------------------------------------------------- */

/* Clamps a Shape start/end attribute to [0, rank]. */
static int64_t clamp_shape_bound(int64_t v, int rank)
{
    if (v < 0)
        v += rank;
    return v < 0 ? 0 : v > rank ? rank : v;
}

static kiln_status_t shape_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    const kiln_node_t *node = kiln_ctx_node(ctx);
    int64_t start = clamp_shape_bound(kiln_attr_int(node, "start", 0), x->rank);
    int64_t end = clamp_shape_bound(kiln_attr_int(node, "end", x->rank), x->rank);
    int64_t n = end > start ? end - start : 0;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_INT64, 1, &n);
    if (!y)
        return kiln_ctx_status(ctx);
    if (n)
        memcpy(y->data, x->dims + start, (size_t)n * sizeof(int64_t));
    return KILN_OK;
}

static kiln_status_t size_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input data is missing");
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_INT64, 0, NULL);
    if (!y)
        return kiln_ctx_status(ctx);
    *(int64_t *)y->data = x->count;
    return KILN_OK;
}

/* ---- Registration ------------------------------------------------------- */

void kiln_ops_register_tensor(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "Constant", .since = 1, .run = constant_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "ConstantOfShape", .since = 9, .run = constant_of_shape_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Identity", .since = 1, .run = identity_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Dropout", .since = 1, .run = dropout_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Shape", .since = 1, .run = shape_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Size", .since = 1, .run = size_run});
    tops_register_shape(reg);
    tops_register_transpose(reg);
    tops_register_slice(reg);
    tops_register_gather(reg);
    tops_register_scatter(reg);
    tops_register_pad(reg);
}
