/*
 * elementwise_driver.c - runs the per-dtype loops of unary and broadcasting
 * binary ops (see elementwise.h): picks the loop for the input dtype,
 * allocates the output, splits the work across threads in chunks of about
 * GRAIN elements, and widens float16/bfloat16 to float32 in stack blocks.
 */
/* The build's -O2 vectorises only loops of known trip count, and its
 * -ftrapping-math keeps selects (x < 0 ? a : b) from becoming vector
 * blends; these loops run over any n and nobody reads float exception
 * flags, so this file asks for both.  Placed before the includes so the
 * inline math of elementwise.h gets the same options. */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")

#include "ops/elementwise.h"

#include <stdio.h>

#include "kiln.h"
#include "ops/broadcast.h"
#include "ops/half_convert.h"

/* Smallest chunk of elements worth handing to another thread. */
#define GRAIN 16384
/* Elements per stack block when widening 16-bit floats. */
#define BLOCK 1024

static bool is_half(kiln_dtype_t dt)
{
    return dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16;
}

static void widen(float *dst, const uint16_t *src, int64_t n, kiln_dtype_t dt)
{
    kiln_half_to_f32_array(dst, src, n, dt);
}

static void narrow(uint16_t *dst, const float *src, int64_t n, kiln_dtype_t dt)
{
    kiln_f32_to_half_array(dst, src, n, dt);
}

/* The table slot holding the loop for dtype dt: 16-bit floats borrow the
 * float32 loop; -1 for a dtype outside the table. */
static int loop_slot(kiln_dtype_t dt)
{
    if ((int)dt <= 0 || dt >= KILN_DTYPE_COUNT_)
        return -1;
    return is_half(dt) ? KILN_DTYPE_FLOAT32 : (int)dt;
}

static kiln_unary_loop_fn pick_unary(const kiln_unary_op_t *op, kiln_dtype_t dt)
{
    int slot = loop_slot(dt);
    return slot < 0 ? NULL : op->loops[slot];
}

static kiln_binary_loop_fn pick_binary(const kiln_binary_op_t *op, kiln_dtype_t dt)
{
    int slot = loop_slot(dt);
    return slot < 0 ? NULL : op->loops[slot];
}

/* ---- Unary ------------------------------------------------------------- */

/* __builtin_cpu_supports reads flags libgcc fills at start-up: cheap. */
static bool have_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* The float32 loop of op: its AVX2 build when it has one and the CPU can. */
static kiln_unary_loop_fn unary_loop(const kiln_unary_op_t *op, kiln_dtype_t dt)
{
    kiln_unary_loop_fn loop = pick_unary(op, dt);
    bool f32_loop = dt == KILN_DTYPE_FLOAT32 || is_half(dt);
    if (loop && f32_loop && op->f32_avx2 && have_avx2_fma())
        return op->f32_avx2;
    return loop;
}

typedef struct unary_job {
    kiln_unary_loop_fn loop;
    const char *x;
    char *y;
    size_t xsz, ysz;
    kiln_dtype_t half; /* the 16-bit float input dtype, or UNDEFINED */
    bool out_bool;
    const kiln_elem_params_t *p;
} unary_job_t;

static void unary_chunk(void *arg, int64_t begin, int64_t end)
{
    const unary_job_t *j = arg;
    if (!j->half) {
        j->loop(j->y + begin * j->ysz, j->x + begin * j->xsz, end - begin, j->p);
        return;
    }
    float buf[BLOCK];
    for (int64_t i = begin; i < end; i += BLOCK) {
        int64_t len = end - i < BLOCK ? end - i : BLOCK;
        widen(buf, (const uint16_t *)j->x + i, len, j->half);
        if (j->out_bool) {
            j->loop(j->y + i, buf, len, j->p);
        } else {
            j->loop(buf, buf, len, j->p);
            narrow((uint16_t *)j->y + i, buf, len, j->half);
        }
    }
}

kiln_status_t kiln_unary_into(kiln_kernel_ctx_t *ctx, const kiln_unary_op_t *op, const kiln_tensor_t *x,
                              kiln_tensor_t *y, const kiln_elem_params_t *p)
{
    kiln_elem_params_t none = {0};
    unary_job_t j = {
        .loop = unary_loop(op, x->dtype),
        .x = x->data,
        .y = y->data,
        .xsz = kiln_dtype_size(x->dtype),
        .ysz = kiln_dtype_size(y->dtype),
        .half = is_half(x->dtype) ? x->dtype : KILN_DTYPE_UNDEFINED,
        .out_bool = op->out_bool,
        .p = p ? p : &none,
    };
    if (!j.loop)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input dtype %s is not supported",
                             kiln_dtype_name(x->dtype));
    if (x->count > 0)
        kiln_ctx_parallel_for(ctx, x->count, GRAIN, unary_chunk, &j);
    return KILN_OK;
}

kiln_status_t kiln_unary_run(kiln_kernel_ctx_t *ctx, const kiln_unary_op_t *op, const kiln_tensor_t *x,
                             int out_index, const kiln_elem_params_t *p)
{
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "input 0 is missing");
    if (!pick_unary(op, x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input dtype %s is not supported",
                             kiln_dtype_name(x->dtype));
    kiln_dtype_t out_dt = op->out_bool ? KILN_DTYPE_BOOL : x->dtype;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, out_index, out_dt, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    return kiln_unary_into(ctx, op, x, y, p);
}

/* ---- Binary ------------------------------------------------------------ */

typedef struct binary_job {
    const kiln_bcast_t *bc;
    kiln_binary_loop_fn loop;
    const char *a, *b;
    char *y;
    size_t asz, bsz, ysz;
    kiln_dtype_t half;
    bool out_bool;
    const kiln_elem_params_t *p;
} binary_job_t;

/* One run of a 16-bit float op: widen each operand block (a stepped
 * operand's whole block, a fixed one's single element), run the float32
 * loop, narrow the result unless it is bool. */
static void binary_row_half(const binary_job_t *j, int64_t out, const int64_t *off, const int64_t *step,
                            int64_t len)
{
    float abuf[BLOCK], bbuf[BLOCK], ybuf[BLOCK];
    const uint16_t *a = (const uint16_t *)j->a + off[0];
    const uint16_t *b = (const uint16_t *)j->b + off[1];
    for (int64_t i = 0; i < len; i += BLOCK) {
        int64_t n = len - i < BLOCK ? len - i : BLOCK;
        widen(abuf, a + i * step[0], step[0] ? n : 1, j->half);
        widen(bbuf, b + i * step[1], step[1] ? n : 1, j->half);
        if (j->out_bool) {
            j->loop(j->y + out + i, abuf, bbuf, step[0], step[1], n, j->p);
        } else {
            j->loop(ybuf, abuf, bbuf, step[0], step[1], n, j->p);
            narrow((uint16_t *)j->y + out + i, ybuf, n, j->half);
        }
    }
}

static void binary_row(void *arg, int64_t out, const int64_t *off, const int64_t *step, int64_t len)
{
    const binary_job_t *j = arg;
    if (j->half) {
        binary_row_half(j, out, off, step, len);
        return;
    }
    j->loop(j->y + out * j->ysz, j->a + off[0] * j->asz, j->b + off[1] * j->bsz, step[0], step[1], len, j->p);
}

static void binary_chunk(void *arg, int64_t begin, int64_t end)
{
    const binary_job_t *j = arg;
    kiln_bcast_rows(j->bc, begin, end, binary_row, arg);
}

static kiln_status_t check_binary(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op, const kiln_tensor_t *a,
                                  const kiln_tensor_t *b)
{
    if (!a || !b)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "input %d is missing", a ? 1 : 0);
    if (a->dtype != b->dtype)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "inputs have different dtypes %s and %s",
                             kiln_dtype_name(a->dtype), kiln_dtype_name(b->dtype));
    if (!pick_binary(op, a->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input dtype %s is not supported",
                             kiln_dtype_name(a->dtype));
    return KILN_OK;
}

kiln_status_t kiln_binary_into(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op, const kiln_tensor_t *a,
                               const kiln_tensor_t *b, kiln_tensor_t *y, const kiln_elem_params_t *p)
{
    kiln_status_t st = check_binary(ctx, op, a, b);
    if (st != KILN_OK)
        return st;
    int ranks[2] = {a->rank, b->rank};
    const int64_t *dims[2] = {a->dims, b->dims};
    kiln_bcast_t bc;
    kiln_bcast_init(&bc, 2, ranks, dims, y->rank, y->dims);
    kiln_elem_params_t none = {0};
    binary_job_t j = {
        .bc = &bc,
        .loop = pick_binary(op, a->dtype),
        .a = a->data,
        .b = b->data,
        .y = y->data,
        .asz = kiln_dtype_size(a->dtype),
        .bsz = kiln_dtype_size(b->dtype),
        .ysz = kiln_dtype_size(y->dtype),
        .half = is_half(a->dtype) ? a->dtype : KILN_DTYPE_UNDEFINED,
        .out_bool = op->out_bool,
        .p = p ? p : &none,
    };
    if (y->count > 0)
        kiln_ctx_parallel_for(ctx, y->count, GRAIN, binary_chunk, &j);
    return KILN_OK;
}

kiln_status_t kiln_binary_run(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op, const kiln_tensor_t *a,
                              const kiln_tensor_t *b, int out_index, const kiln_elem_params_t *p)
{
    kiln_status_t st = check_binary(ctx, op, a, b);
    if (st != KILN_OK)
        return st;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    const kiln_tensor_t *ts[2] = {a, b};
    if (kiln_broadcast_tensors(2, ts, &rank, dims) != KILN_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", kiln_last_error());
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s", why);
    }
    kiln_dtype_t out_dt = op->out_bool ? KILN_DTYPE_BOOL : a->dtype;
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, out_index, out_dt, rank, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    return kiln_binary_into(ctx, op, a, b, y, p);
}

/* ---- Legacy (opset < 7) broadcasting ------------------------------------ */

const kiln_tensor_t *kiln_legacy_broadcast_view(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                                const kiln_tensor_t *b, kiln_tensor_t *view)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    if (kiln_ctx_opset(ctx) >= 7 || !a || !b || !kiln_attr_int(node, "broadcast", 0))
        return b;
    int64_t axis = kiln_attr_int(node, "axis", a->rank - b->rank);
    if (axis < 0)
        axis += a->rank;
    if (axis < 0 || axis + b->rank > a->rank)
        return b; /* let the numpy rules report the mismatch */
    *view = *b;
    view->rank = a->rank;
    for (int d = 0; d < a->rank; d++)
        view->dims[d] = d >= axis && d < axis + b->rank ? b->dims[d - axis] : 1;
    view->owns_data = false;
    return view;
}
