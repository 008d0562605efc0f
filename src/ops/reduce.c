/*
 * reduce.c - Reductions: the ten Reduce* ops, ArgMax/ArgMin, CumSum, TopK.
 *
 * Every Reduce* op shares one plan: the input's axes are split into kept and
 * reduced ones, and two offset tables are built - one input offset per output
 * element (the origin of its reduced block) and one offset per element inside
 * a reduced block.  An output element is then a fold over
 * x[base[o] + roff[r]], which handles any axes set with one loop and
 * parallelizes over outputs.  Values are folded in double, and integer
 * Sum/Prod/Max/Min/L1/SumSquare exactly in int64.
 *
 * Two float32 shapes have their own paths: reduced over trailing contiguous
 * axes (the hot BERT case, ReduceMean over the hidden size) runs the vector
 * row kernels of rowops.h; reduced over a block of middle axes (axis 1 of
 * [B, S, H]) folds whole contiguous rows into the output.  float16 and
 * bfloat16 inputs of those ops widen to float32 and take the same paths.
 *
 * ArgMax/ArgMin, CumSum and TopK work along one axis, viewing the shape as
 * (outer, axis, inner).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "ops/axes.h"
#include "ops/kernel.h"
#include "ops/rowops.h"

/* Below this many input elements per output, a thread is not worth it. */
#define REDUCE_GRAIN_ELEMS 32768

typedef enum reduce_kind {
    REDUCE_SUM,
    REDUCE_MEAN,
    REDUCE_MAX,
    REDUCE_MIN,
    REDUCE_PROD,
    REDUCE_L1,
    REDUCE_L2,
    REDUCE_LOG_SUM,
    REDUCE_LOG_SUM_EXP,
    REDUCE_SUM_SQUARE
} reduce_kind_t;

/* ---- axes and output shape --------------------------------------------- */

/* Reads the axes list: from input 1 when the node has one (ReduceSum from
 * opset 13, all Reduce* from 18), else from the "axes" attribute.  *n = 0
 * when none is given.  The returned pointer is borrowed. */
static kiln_status_t read_reduce_axes(kiln_kernel_ctx_t *ctx, int64_t *buf, int64_t *n)
{
    const kiln_tensor_t *t = kiln_ctx_input(ctx, 1);
    *n = 0;
    if (t) {
        if (t->dtype != KILN_DTYPE_INT64 && t->dtype != KILN_DTYPE_INT32)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axes must be int64");
        if (t->count > KILN_MAX_RANK)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%lld axes given", (long long)t->count);
        for (int64_t i = 0; i < t->count; i++)
            buf[i] = kiln_tensor_get_i64(t, i);
        *n = t->count;
        return KILN_OK;
    }
    const int64_t *attr;
    int64_t na = kiln_attr_ints(kiln_ctx_node(ctx), "axes", &attr);
    if (na > KILN_MAX_RANK)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%lld axes given", (long long)na);
    for (int64_t i = 0; i < na; i++)
        buf[i] = attr[i];
    *n = na < 0 ? 0 : na;
    return KILN_OK;
}

/* The output shape of a reduction over mask: reduced dims become 1
 * (keepdims) or vanish. Returns the output rank. */
static int reduced_shape(int rank, const int64_t *dims, const bool *mask, bool keepdims, int64_t *out)
{
    int r = 0;
    for (int d = 0; d < rank; d++) {
        if (!mask[d])
            out[r++] = dims[d];
        else if (keepdims)
            out[r++] = 1;
    }
    return r;
}

/* ---- the reduction plan ------------------------------------------------ */

typedef struct reduce_plan {
    int64_t n_out;   /* output elements */
    int64_t n_red;   /* input elements folded into each output */
    int64_t *base;   /* [n_out] input offset of each output's block */
    int64_t *roff;   /* [n_red] offsets inside a block */
    bool contiguous; /* roff[r] == r (reduced axes are the trailing ones) */
} reduce_plan_t;

/* Lists, in row-major order, the input offsets reached by walking the dims
 * whose mask equals `want` (the other dims held at 0). */
static void list_offsets(int rank, const int64_t *dims, const bool *mask, bool want, int64_t *out)
{
    int64_t strides[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0};
    int64_t s = 1, total = 1;
    for (int d = rank - 1; d >= 0; d--) {
        strides[d] = s;
        s *= dims[d];
        if (mask[d] == want)
            total *= dims[d];
    }
    int64_t off = 0;
    for (int64_t i = 0; i < total; i++) {
        out[i] = off;
        for (int d = rank - 1; d >= 0; d--) {
            if (mask[d] != want)
                continue;
            if (++idx[d] < dims[d]) {
                off += strides[d];
                break;
            }
            off -= strides[d] * (dims[d] - 1);
            idx[d] = 0;
        }
    }
}

static kiln_status_t plan_reduction(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, const bool *mask,
                                    reduce_plan_t *p)
{
    p->n_out = 1;
    p->n_red = 1;
    for (int d = 0; d < x->rank; d++) {
        if (mask[d])
            p->n_red *= x->dims[d];
        else
            p->n_out *= x->dims[d];
    }
    p->contiguous = true;
    bool seen_reduced = false;
    for (int d = 0; d < x->rank; d++) {
        if (mask[d])
            seen_reduced = true;
        else if (seen_reduced && x->dims[d] != 1)
            p->contiguous = false;
    }
    p->base = malloc(sizeof(int64_t) * (size_t)(p->n_out ? p->n_out : 1));
    p->roff = p->contiguous ? NULL : malloc(sizeof(int64_t) * (size_t)(p->n_red ? p->n_red : 1));
    if (!p->base || (!p->contiguous && !p->roff)) {
        free(p->base);
        free(p->roff);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory planning a reduction");
    }
    if (p->n_out > 0 && p->n_red > 0) {
        list_offsets(x->rank, x->dims, mask, false, p->base);
        if (!p->contiguous)
            list_offsets(x->rank, x->dims, mask, true, p->roff);
    }
    return KILN_OK;
}

/* ---- folding ----------------------------------------------------------- */

/* The result of reducing nothing (e.g. a zero-sized axis). */
static double reduce_identity(reduce_kind_t k)
{
    switch (k) {
    case REDUCE_MAX:
    case REDUCE_LOG_SUM:
    case REDUCE_LOG_SUM_EXP:
        return -INFINITY;
    case REDUCE_MIN:
        return INFINITY;
    case REDUCE_PROD:
        return 1.0;
    case REDUCE_MEAN:
        return NAN;
    default:
        return 0.0;
    }
}

/* Element r of the reduced block starting at base. */
static inline double block_value(const kiln_tensor_t *x, int64_t base, const int64_t *roff, int64_t r)
{
    return kiln_tensor_get_f64(x, base + (roff ? roff[r] : r));
}

/* Folds the n values v(0..n) where v(r) = x[base + (roff ? roff[r] : r)]. */
static double fold_block(reduce_kind_t k, const kiln_tensor_t *x, int64_t base, const int64_t *roff,
                         int64_t n)
{
    if (n == 0)
        return reduce_identity(k);
    double acc = (k == REDUCE_PROD) ? 1.0 : 0.0;
    switch (k) {
    case REDUCE_MAX:
        acc = block_value(x, base, roff, 0);
        for (int64_t r = 1; r < n; r++) {
            double v = block_value(x, base, roff, r);
            if (v > acc || isnan(v))
                acc = v;
        }
        return acc;
    case REDUCE_MIN:
        acc = block_value(x, base, roff, 0);
        for (int64_t r = 1; r < n; r++) {
            double v = block_value(x, base, roff, r);
            if (v < acc || isnan(v))
                acc = v;
        }
        return acc;
    case REDUCE_LOG_SUM_EXP: {
        double m = block_value(x, base, roff, 0);
        for (int64_t r = 1; r < n; r++)
            if (block_value(x, base, roff, r) > m)
                m = block_value(x, base, roff, r);
        if (isinf(m))
            m = 0.0;
        for (int64_t r = 0; r < n; r++)
            acc += exp(block_value(x, base, roff, r) - m);
        return log(acc) + m;
    }
    default:
        break;
    }
    for (int64_t r = 0; r < n; r++) {
        double v = block_value(x, base, roff, r);
        switch (k) {
        case REDUCE_PROD:
            acc *= v;
            break;
        case REDUCE_L1:
            acc += fabs(v);
            break;
        case REDUCE_L2:
        case REDUCE_SUM_SQUARE:
            acc += v * v;
            break;
        default:
            acc += v;
            break;
        }
    }
    switch (k) {
    case REDUCE_MEAN:
        return acc / (double)n;
    case REDUCE_L2:
        return sqrt(acc);
    case REDUCE_LOG_SUM:
        return log(acc);
    default:
        return acc;
    }
}

/* Hot path: a float32 row folded by the vector row kernels (rowops.h). */
static float fold_row_f32(const kiln_rowops_t *ops, reduce_kind_t k, const float *row, int64_t n)
{
    switch (k) {
    case REDUCE_SUM:
        return ops->sum(row, n);
    case REDUCE_MEAN:
        return n ? ops->sum(row, n) / (float)n : NAN;
    case REDUCE_SUM_SQUARE:
        return ops->sum_squares(row, n);
    case REDUCE_MAX:
        return n ? ops->max(row, n) : -INFINITY;
    default:
        break;
    }
    float acc = n ? row[0] : INFINITY; /* REDUCE_MIN */
    for (int64_t r = 1; r < n; r++)
        acc = row[r] < acc ? row[r] : acc;
    return acc;
}

/* Integer folds that stay exact in int64 (wrapping like the integer
 * types themselves); the others go through double. */
static bool has_exact_int_path(reduce_kind_t k)
{
    return k == REDUCE_SUM || k == REDUCE_PROD || k == REDUCE_MAX || k == REDUCE_MIN || k == REDUCE_L1 ||
           k == REDUCE_SUM_SQUARE;
}

static int64_t fold_block_i64(reduce_kind_t k, const kiln_tensor_t *x, int64_t base, const int64_t *roff,
                              int64_t n)
{
    uint64_t acc = k == REDUCE_PROD ? 1u : 0u;
    if (k == REDUCE_MAX || k == REDUCE_MIN) {
        int64_t best = k == REDUCE_MAX ? INT64_MIN : INT64_MAX;
        for (int64_t r = 0; r < n; r++) {
            int64_t v = kiln_tensor_get_i64(x, base + (roff ? roff[r] : r));
            best = (k == REDUCE_MAX) ? (v > best ? v : best) : (v < best ? v : best);
        }
        return best;
    }
    for (int64_t r = 0; r < n; r++) {
        uint64_t v = (uint64_t)kiln_tensor_get_i64(x, base + (roff ? roff[r] : r));
        switch (k) {
        case REDUCE_PROD:
            acc *= v;
            break;
        case REDUCE_SUM_SQUARE:
            acc += v * v;
            break;
        case REDUCE_L1:
            acc += (int64_t)v < 0 ? (uint64_t)0 - v : v;
            break;
        default:
            acc += v;
            break;
        }
    }
    return (int64_t)acc;
}

/* Writes an exact int64 into an integer tensor of any width. */
static void store_i64(kiln_tensor_t *t, int64_t i, int64_t v)
{
    switch (t->dtype) {
    case KILN_DTYPE_INT64:
        ((int64_t *)t->data)[i] = v;
        break;
    case KILN_DTYPE_UINT64:
        ((uint64_t *)t->data)[i] = (uint64_t)v;
        break;
    case KILN_DTYPE_INT32:
        ((int32_t *)t->data)[i] = (int32_t)v;
        break;
    case KILN_DTYPE_UINT32:
        ((uint32_t *)t->data)[i] = (uint32_t)v;
        break;
    case KILN_DTYPE_INT16:
        ((int16_t *)t->data)[i] = (int16_t)v;
        break;
    case KILN_DTYPE_UINT16:
        ((uint16_t *)t->data)[i] = (uint16_t)v;
        break;
    case KILN_DTYPE_INT8:
        ((int8_t *)t->data)[i] = (int8_t)v;
        break;
    case KILN_DTYPE_UINT8:
        ((uint8_t *)t->data)[i] = (uint8_t)v;
        break;
    default:
        kiln_tensor_set_f64(t, i, (double)v);
        break;
    }
}

static bool has_f32_fast_path(reduce_kind_t k)
{
    return k == REDUCE_SUM || k == REDUCE_MEAN || k == REDUCE_MAX || k == REDUCE_MIN ||
           k == REDUCE_SUM_SQUARE;
}

/* Writes a folded double into an output of any numeric dtype, saturating
 * instead of invoking undefined behaviour for ints. */
static void store_result(kiln_tensor_t *y, int64_t i, double v)
{
    if (kiln_dtype_is_integer(y->dtype)) {
        if (isnan(v))
            v = 0.0;
        else if (v > 9.2e18)
            v = 9.2e18;
        else if (v < -9.2e18)
            v = -9.2e18;
    }
    kiln_tensor_set_f64(y, i, v);
}

typedef struct reduce_job {
    reduce_kind_t kind;
    const kiln_tensor_t *x;
    kiln_tensor_t *y;
    const reduce_plan_t *plan;
} reduce_job_t;

static void reduce_range(void *arg, int64_t begin, int64_t end)
{
    const reduce_job_t *job = arg;
    const reduce_plan_t *p = job->plan;
    if (job->x->dtype == KILN_DTYPE_FLOAT32 && p->contiguous && has_f32_fast_path(job->kind)) {
        const kiln_rowops_t *ops = kiln_rowops();
        const float *x = job->x->data;
        float *y = job->y->data;
        for (int64_t o = begin; o < end; o++)
            y[o] = fold_row_f32(ops, job->kind, p->n_red ? x + p->base[o] : x, p->n_red);
        return;
    }
    bool exact_int = (kiln_dtype_is_integer(job->x->dtype) || job->x->dtype == KILN_DTYPE_BOOL) &&
                     has_exact_int_path(job->kind) && p->n_red > 0;
    for (int64_t o = begin; o < end; o++) {
        int64_t base = p->n_red ? p->base[o] : 0;
        if (exact_int)
            store_i64(job->y, o, fold_block_i64(job->kind, job->x, base, p->roff, p->n_red));
        else
            store_result(job->y, o, fold_block(job->kind, job->x, base, p->roff, p->n_red));
    }
}

static bool dtype_reducible(kiln_dtype_t t)
{
    return kiln_dtype_is_float(t) || kiln_dtype_is_integer(t);
}

/* ---- float32 over a middle block of axes --------------------------------- */

/* When the reduced axes form one block with kept axes after it, the input
 * is (outer, r, inner) and each output row y[o, :] folds r contiguous input
 * rows x[o, j, :] - vector-friendly, unlike a strided walk per output. */
typedef struct middle_job {
    reduce_kind_t kind;
    const float *x;
    float *y;
    int64_t outer, r, inner, chunks; /* chunks of MIDDLE_CHUNK columns per row */
} middle_job_t;

enum { MIDDLE_CHUNK = 512 };

static bool has_f32_middle_path(reduce_kind_t k)
{
    return k == REDUCE_SUM || k == REDUCE_MEAN || k == REDUCE_MAX || k == REDUCE_MIN ||
           k == REDUCE_SUM_SQUARE;
}

/* Finds the (outer, r, inner) view; false unless the reduced axes are one
 * block followed by kept axes of more than one element. */
static bool middle_block_view(const kiln_tensor_t *x, const bool *mask, int64_t *outer, int64_t *r,
                              int64_t *inner)
{
    int first = -1, last = -1;
    for (int d = 0; d < x->rank; d++)
        if (mask[d]) {
            if (first < 0)
                first = d;
            last = d;
        }
    if (first < 0)
        return false;
    *outer = *r = *inner = 1;
    for (int d = 0; d < x->rank; d++) {
        if (d >= first && d <= last) {
            if (!mask[d])
                return false;
            *r *= x->dims[d];
        } else if (d < first) {
            *outer *= x->dims[d];
        } else {
            *inner *= x->dims[d];
        }
    }
    return *inner > 1 && *r > 0;
}

static void middle_range(void *arg, int64_t begin, int64_t end)
{
    const middle_job_t *j = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t o = t / j->chunks, c0 = (t % j->chunks) * MIDDLE_CHUNK;
        int64_t w = j->inner - c0 < MIDDLE_CHUNK ? j->inner - c0 : MIDDLE_CHUNK;
        float *y = j->y + o * j->inner + c0;
        const float *x = j->x + o * j->r * j->inner + c0;
        bool square = j->kind == REDUCE_SUM_SQUARE;
        for (int64_t i = 0; i < w; i++)
            y[i] = square ? x[i] * x[i] : x[i];
        for (int64_t a = 1; a < j->r; a++) {
            const float *row = x + a * j->inner;
            switch (j->kind) {
            case REDUCE_MAX:
                for (int64_t i = 0; i < w; i++)
                    y[i] = row[i] > y[i] ? row[i] : y[i];
                break;
            case REDUCE_MIN:
                for (int64_t i = 0; i < w; i++)
                    y[i] = row[i] < y[i] ? row[i] : y[i];
                break;
            case REDUCE_SUM_SQUARE:
                for (int64_t i = 0; i < w; i++)
                    y[i] += row[i] * row[i];
                break;
            default:
                for (int64_t i = 0; i < w; i++)
                    y[i] += row[i];
                break;
            }
        }
        if (j->kind == REDUCE_MEAN)
            for (int64_t i = 0; i < w; i++)
                y[i] /= (float)j->r;
    }
}

/* Reduces x over mask into y (allocated, same dtype) by the best path. */
static kiln_status_t reduce_compute(kiln_kernel_ctx_t *ctx, reduce_kind_t kind, const kiln_tensor_t *x,
                                    const bool *mask, kiln_tensor_t *y)
{
    int64_t outer, r, inner;
    if (x->dtype == KILN_DTYPE_FLOAT32 && has_f32_middle_path(kind) &&
        middle_block_view(x, mask, &outer, &r, &inner)) {
        int64_t chunks = (inner + MIDDLE_CHUNK - 1) / MIDDLE_CHUNK;
        middle_job_t job = {kind, x->data, y->data, outer, r, inner, chunks};
        kiln_ctx_parallel_for(ctx, outer * chunks, REDUCE_GRAIN_ELEMS / (r * MIDDLE_CHUNK) + 1, middle_range,
                              &job);
        return KILN_OK;
    }
    reduce_plan_t plan;
    kiln_status_t st = plan_reduction(ctx, x, mask, &plan);
    if (st != KILN_OK)
        return st;
    reduce_job_t job = {kind, x, y, &plan};
    int64_t grain = REDUCE_GRAIN_ELEMS / (plan.n_red ? plan.n_red : 1) + 1;
    kiln_ctx_parallel_for(ctx, plan.n_out, grain, reduce_range, &job);
    free(plan.base);
    free(plan.roff);
    return KILN_OK;
}

static bool is_half(kiln_dtype_t t)
{
    return t == KILN_DTYPE_FLOAT16 || t == KILN_DTYPE_BFLOAT16;
}

/* float16/bfloat16: widen to float32, take the float32 paths, narrow back
 * (as ONNX Runtime does; float16 accumulators would lose too much). */
static kiln_status_t reduce_half(kiln_kernel_ctx_t *ctx, reduce_kind_t kind, const kiln_tensor_t *x,
                                 const bool *mask, kiln_tensor_t *y)
{
    kiln_tensor_t *x32 = kiln_tensor_new(KILN_DTYPE_FLOAT32, x->rank, x->dims);
    kiln_tensor_t *y32 = kiln_tensor_new(KILN_DTYPE_FLOAT32, y->rank, y->dims);
    kiln_status_t st;
    if (!x32 || !y32) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory widening %lld elements",
                           (long long)x->count);
    } else {
        const uint16_t *src = x->data;
        float *wide = x32->data;
        for (int64_t i = 0; i < x->count; i++)
            wide[i] = x->dtype == KILN_DTYPE_FLOAT16 ? kiln_f16_to_f32(src[i]) : kiln_bf16_to_f32(src[i]);
        st = reduce_compute(ctx, kind, x32, mask, y32);
        for (int64_t i = 0; st == KILN_OK && i < y->count; i++)
            kiln_tensor_set_f64(y, i, ((const float *)y32->data)[i]);
    }
    kiln_tensor_free(x32);
    kiln_tensor_free(y32);
    return st;
}

static kiln_status_t reduce_run(kiln_kernel_ctx_t *ctx, reduce_kind_t kind)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "missing input");
    bool bool_ok = x->dtype == KILN_DTYPE_BOOL && (kind == REDUCE_MAX || kind == REDUCE_MIN); /* opset 20 */
    if (!dtype_reducible(x->dtype) && !bool_ok)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "dtype %d is not supported", (int)x->dtype);
    bool keepdims = kiln_attr_int(node, "keepdims", 1) != 0;
    bool noop_empty = kiln_attr_int(node, "noop_with_empty_axes", 0) != 0;
    int64_t axes[KILN_MAX_RANK];
    int64_t n_axes;
    kiln_status_t st = read_reduce_axes(ctx, axes, &n_axes);
    if (st != KILN_OK)
        return st;
    if (n_axes == 0 && noop_empty) {
        kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
        if (!y)
            return kiln_ctx_status(ctx);
        if (x->nbytes)
            memcpy(y->data, x->data, x->nbytes);
        return KILN_OK;
    }
    bool mask[KILN_MAX_RANK];
    if (n_axes == 0) {
        for (int d = 0; d < x->rank; d++)
            mask[d] = true;
    } else if (!kiln_axes_to_mask(axes, n_axes, x->rank, mask)) {
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axes out of range or repeated for rank %d",
                             x->rank);
    }
    int64_t ydims[KILN_MAX_RANK];
    int yrank = reduced_shape(x->rank, x->dims, mask, keepdims, ydims);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, yrank, ydims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (is_half(x->dtype) && has_f32_fast_path(kind))
        return reduce_half(ctx, kind, x, mask, y);
    return reduce_compute(ctx, kind, x, mask, y);
}

static kiln_status_t reduce_sum_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_SUM);
}
static kiln_status_t reduce_mean_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_MEAN);
}
static kiln_status_t reduce_max_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_MAX);
}
static kiln_status_t reduce_min_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_MIN);
}
static kiln_status_t reduce_prod_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_PROD);
}
static kiln_status_t reduce_l1_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_L1);
}
static kiln_status_t reduce_l2_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_L2);
}
static kiln_status_t reduce_log_sum_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_LOG_SUM);
}
static kiln_status_t reduce_log_sum_exp_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_LOG_SUM_EXP);
}
static kiln_status_t reduce_sum_square_run(kiln_kernel_ctx_t *ctx)
{
    return reduce_run(ctx, REDUCE_SUM_SQUARE);
}

/* ---- ArgMax / ArgMin --------------------------------------------------- */

/* ArgMax/ArgMin of one contiguous float32 row (the classifier-head case). */
static int64_t arg_extreme_row_f32(const float *x, int64_t n, bool want_max, bool last)
{
    int64_t best = 0;
    float bv = x[0];
    for (int64_t a = 1; a < n; a++) {
        float v = x[a];
        bool better = want_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv));
        if (better) {
            bv = v;
            best = a;
        }
    }
    return best;
}

static kiln_status_t arg_extreme_run(kiln_kernel_ctx_t *ctx, bool want_max)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !dtype_reducible(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "input must be a numeric tensor");
    int axis;
    if (!kiln_axis_normalize(kiln_attr_int(node, "axis", 0), x->rank > 0 ? x->rank : 1, &axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
    bool keepdims = kiln_attr_int(node, "keepdims", 1) != 0;
    bool last = kiln_attr_int(node, "select_last_index", 0) != 0;
    bool mask[KILN_MAX_RANK] = {false};
    mask[axis] = true;
    int64_t ydims[KILN_MAX_RANK];
    int yrank = reduced_shape(x->rank, x->dims, mask, keepdims, ydims);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_INT64, yrank, ydims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t outer, inner, n = x->rank ? x->dims[axis] : 1;
    kiln_axis_split(x->rank, x->dims, axis, &outer, &inner);
    if (n == 0 && outer * inner > 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot take an arg-extreme over an empty axis");
    int64_t *out = y->data;
    if (x->dtype == KILN_DTYPE_FLOAT32 && inner == 1) {
        for (int64_t o = 0; o < outer; o++)
            out[o] = arg_extreme_row_f32((const float *)x->data + o * n, n, want_max, last);
        return KILN_OK;
    }
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i, best = 0;
            double bv = kiln_tensor_get_f64(x, base);
            for (int64_t a = 1; a < n; a++) {
                double v = kiln_tensor_get_f64(x, base + a * inner);
                bool better = want_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv));
                if (better) {
                    bv = v;
                    best = a;
                }
            }
            out[o * inner + i] = best;
        }
    }
    return KILN_OK;
}

static kiln_status_t argmax_run(kiln_kernel_ctx_t *ctx)
{
    return arg_extreme_run(ctx, true);
}
static kiln_status_t argmin_run(kiln_kernel_ctx_t *ctx)
{
    return arg_extreme_run(ctx, false);
}

/* ---- CumSum ------------------------------------------------------------ */

static kiln_status_t cumsum_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *at = kiln_ctx_input(ctx, 1);
    if (!x || !at || at->count != 1 || !kiln_dtype_is_integer(at->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "CumSum needs x and a one-element integer axis");
    if (!dtype_reducible(x->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "dtype %d is not supported", (int)x->dtype);
    int axis;
    if (!kiln_axis_normalize(kiln_tensor_get_i64(at, 0), x->rank, &axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
    bool exclusive = kiln_attr_int(node, "exclusive", 0) != 0;
    bool reverse = kiln_attr_int(node, "reverse", 0) != 0;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t outer, inner, n = x->dims[axis];
    kiln_axis_split(x->rank, x->dims, axis, &outer, &inner);
    bool is_int = kiln_dtype_is_integer(x->dtype);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            double facc = 0.0;
            int64_t iacc = 0;
            for (int64_t s = 0; s < n; s++) {
                int64_t a = reverse ? n - 1 - s : s;
                int64_t idx = (o * n + a) * inner + i;
                if (is_int) {
                    int64_t v = kiln_tensor_get_i64(x, idx);
                    if (!exclusive)
                        iacc = (int64_t)((uint64_t)iacc + (uint64_t)v);
                    store_i64(y, idx, iacc);
                    if (exclusive)
                        iacc = (int64_t)((uint64_t)iacc + (uint64_t)v);
                } else {
                    double v = kiln_tensor_get_f64(x, idx);
                    if (!exclusive)
                        facc += v;
                    kiln_tensor_set_f64(y, idx, facc);
                    if (exclusive)
                        facc += v;
                }
            }
        }
    }
    return KILN_OK;
}

/* ---- TopK -------------------------------------------------------------- */

typedef struct topk_item {
    double v;
    int64_t idx;
} topk_item_t;

/* Orders by value (descending for largest, NaN first) and then by lower
 * index, so ties keep the input order. */
static int topk_cmp_largest(const void *pa, const void *pb)
{
    const topk_item_t *a = pa, *b = pb;
    if (a->v != b->v) {
        if (isnan(a->v))
            return -1;
        if (isnan(b->v))
            return 1;
        return a->v > b->v ? -1 : 1;
    }
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static int topk_cmp_smallest(const void *pa, const void *pb)
{
    const topk_item_t *a = pa, *b = pb;
    if (a->v != b->v) {
        if (isnan(a->v))
            return 1;
        if (isnan(b->v))
            return -1;
        return a->v < b->v ? -1 : 1;
    }
    return (a->idx > b->idx) - (a->idx < b->idx);
}

typedef int (*topk_cmp_fn)(const void *, const void *);

/* Restores the heap property below slot i of a heap whose root is the
 * item that sorts last (so the root is the first to drop out). */
static void topk_sift_down(topk_item_t *h, int64_t k, int64_t i, topk_cmp_fn cmp)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < k && cmp(&h[l], &h[worst]) > 0)
            worst = l;
        if (r < k && cmp(&h[r], &h[worst]) > 0)
            worst = r;
        if (worst == i)
            return;
        topk_item_t t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

/* Leaves the k items that sort first in items[0..k), sorted.  Small k
 * keeps a k-item heap (n log k); otherwise the whole slice is sorted. */
static void topk_select(topk_item_t *items, int64_t n, int64_t k, topk_cmp_fn cmp)
{
    if (k == 0)
        return;
    if (k * 8 > n) {
        qsort(items, (size_t)n, sizeof *items, cmp);
        return;
    }
    for (int64_t i = k / 2 - 1; i >= 0; i--)
        topk_sift_down(items, k, i, cmp);
    for (int64_t a = k; a < n; a++)
        if (cmp(&items[a], &items[0]) < 0) {
            items[0] = items[a];
            topk_sift_down(items, k, 0, cmp);
        }
    qsort(items, (size_t)k, sizeof *items, cmp);
}

static kiln_status_t read_topk_k(kiln_kernel_ctx_t *ctx, int64_t *k)
{
    const kiln_tensor_t *kt = kiln_ctx_input(ctx, 1);
    if (kt) {
        if (kt->count != 1 || !kiln_dtype_is_integer(kt->dtype))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "K must be a one-element integer tensor");
        *k = kiln_tensor_get_i64(kt, 0);
    } else {
        *k = kiln_attr_int(kiln_ctx_node(ctx), "k", -1);
    }
    return KILN_OK;
}

static kiln_status_t topk_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !dtype_reducible(x->dtype) || x->rank == 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a numeric tensor of rank >= 1");
    int64_t k = -1;
    kiln_status_t st = read_topk_k(ctx, &k);
    if (st != KILN_OK)
        return st;
    int axis;
    if (!kiln_axis_normalize(kiln_attr_int(node, "axis", -1), x->rank, &axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
    int64_t n = x->dims[axis];
    if (k < 0 || k > n)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "k=%lld is outside [0, %lld]", (long long)k,
                             (long long)n);
    bool largest = kiln_attr_int(node, "largest", 1) != 0;
    int64_t ydims[KILN_MAX_RANK];
    memcpy(ydims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    ydims[axis] = k;
    kiln_tensor_t *vals = kiln_ctx_output(ctx, 0, x->dtype, x->rank, ydims);
    if (!vals)
        return kiln_ctx_status(ctx);
    kiln_tensor_t *inds = kiln_ctx_output(ctx, 1, KILN_DTYPE_INT64, x->rank, ydims);
    if (!inds)
        return kiln_ctx_status(ctx);
    int64_t outer, inner;
    kiln_axis_split(x->rank, x->dims, axis, &outer, &inner);
    topk_item_t *items = malloc(sizeof(topk_item_t) * (size_t)(n ? n : 1));
    if (!items)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for %lld TopK items", (long long)n);
    size_t es = kiln_dtype_size(x->dtype);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t a = 0; a < n; a++) {
                items[a].v = kiln_tensor_get_f64(x, (o * n + a) * inner + i);
                items[a].idx = a;
            }
            topk_select(items, n, k, largest ? topk_cmp_largest : topk_cmp_smallest);
            for (int64_t j = 0; j < k; j++) {
                int64_t dst = (o * k + j) * inner + i;
                int64_t src = (o * n + items[j].idx) * inner + i;
                memcpy((char *)vals->data + (size_t)dst * es, (const char *)x->data + (size_t)src * es, es);
                ((int64_t *)inds->data)[dst] = items[j].idx;
            }
        }
    }
    free(items);
    return KILN_OK;
}

/* ---- registration ------------------------------------------------------ */

static void register_op(kiln_registry_t *reg, const char *op, int since, kiln_kernel_run_fn run)
{
    kiln_register(reg, &(kiln_kernel_t){.op = op, .since = since, .run = run});
}

void kiln_ops_register_reduce(kiln_registry_t *reg)
{
    register_op(reg, "ReduceSum", 1, reduce_sum_run);
    register_op(reg, "ReduceMean", 1, reduce_mean_run);
    register_op(reg, "ReduceMax", 1, reduce_max_run);
    register_op(reg, "ReduceMin", 1, reduce_min_run);
    register_op(reg, "ReduceProd", 1, reduce_prod_run);
    register_op(reg, "ReduceL1", 1, reduce_l1_run);
    register_op(reg, "ReduceL2", 1, reduce_l2_run);
    register_op(reg, "ReduceLogSum", 1, reduce_log_sum_run);
    register_op(reg, "ReduceLogSumExp", 1, reduce_log_sum_exp_run);
    register_op(reg, "ReduceSumSquare", 1, reduce_sum_square_run);
    register_op(reg, "ArgMax", 1, argmax_run);
    register_op(reg, "ArgMin", 1, argmin_run);
    register_op(reg, "CumSum", 11, cumsum_run);
    register_op(reg, "TopK", 1, topk_run);
}
