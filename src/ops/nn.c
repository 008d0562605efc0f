/*
 * nn.c - the nn family: Gemm and MatMul (both on kiln_sgemm / kiln_dgemm,
 * gemm.h) and the registration of every nn kernel, including Conv and
 * ConvTranspose (conv.c) and the pooling kernels (pool.c).
 *
 * MatMul follows numpy: 1-D operands gain and then lose a unit dim, batch
 * dims broadcast.  When B is a plain matrix and A is contiguous, all of A's
 * batches fold into the rows of one GEMM, which is the common case of a
 * linear layer over a [batch, seq, hidden] activation.  Many small batched
 * products (attention heads) run one whole GEMM per thread instead.
 * float16 and bfloat16 Gemm/MatMul (and Conv) run on float32 copies of
 * their inputs, rounded back at the end.
 */
#include <string.h>

#include "ops/gemm.h"
#include "ops/nn_kernels.h"

/* ---- float16 / bfloat16 through float32 -------------------------------- */

bool kiln_nn_is_half(kiln_dtype_t dtype)
{
    return dtype == KILN_DTYPE_FLOAT16 || dtype == KILN_DTYPE_BFLOAT16;
}

kiln_tensor_t *kiln_nn_float32_copy(const kiln_tensor_t *t)
{
    kiln_tensor_t *f = kiln_tensor_new(KILN_DTYPE_FLOAT32, t->rank, t->dims);
    if (!f)
        return NULL;
    float *fd = f->data;
    for (int64_t i = 0; i < t->count; i++)
        fd[i] = (float)kiln_tensor_get_f64(t, i);
    return f;
}

void kiln_nn_store_float32(const kiln_tensor_t *f, kiln_tensor_t *out)
{
    const float *fd = f->data;
    for (int64_t i = 0; i < out->count; i++)
        kiln_tensor_set_f64(out, i, fd[i]);
}

/* Runs a kernel body on float32 copies of inputs: the copies of a, b and
 * c (c may be NULL) are made here, body fills *yf, and the result is
 * rounded into output 0 with the inputs' dtype. */
typedef kiln_status_t (*float32_body_fn)(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                         const kiln_tensor_t *b, const kiln_tensor_t *c,
                                         kiln_tensor_t **yf);

static kiln_status_t run_through_float32(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                         const kiln_tensor_t *b, const kiln_tensor_t *c,
                                         float32_body_fn body)
{
    kiln_tensor_t *af = kiln_nn_float32_copy(a), *bf = b ? kiln_nn_float32_copy(b) : NULL;
    kiln_tensor_t *cf = c ? kiln_nn_float32_copy(c) : NULL, *yf = NULL;
    kiln_status_t st;
    if (!af || (b && !bf) || (c && !cf))
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for float32 copies of the inputs");
    else
        st = body(ctx, af, bf, cf, &yf);
    if (st == KILN_OK) {
        kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, a->dtype, yf->rank, yf->dims);
        if (y)
            kiln_nn_store_float32(yf, y);
        else
            st = kiln_ctx_status(ctx);
    }
    kiln_tensor_free(af);
    kiln_tensor_free(bf);
    kiln_tensor_free(cf);
    kiln_tensor_free(yf);
    return st;
}

/* ---- Gemm ---------------------------------------------------------------- */

/* Bias C broadcast to (m, n): its rows and columns are either 1 or full. */
typedef struct gemm_bias {
    int64_t rows, cols;
} gemm_bias_t;

static kiln_status_t gemm_bias_shape(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *c, int64_t m,
                                     int64_t n, gemm_bias_t *bias)
{
    if (c->rank > 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "C has rank %d; expected at most 2",
                             c->rank);
    bias->rows = c->rank == 2 ? c->dims[0] : 1;
    bias->cols = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
    if ((bias->rows != 1 && bias->rows != m) || (bias->cols != 1 && bias->cols != n))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "C of shape [%lld,%lld] does not broadcast to [%lld,%lld]",
                             (long long)bias->rows, (long long)bias->cols, (long long)m, (long long)n);
    return KILN_OK;
}

/* Gemm into output 0, or into a new float32 tensor *yf (the caller frees
 * it) when yf is not NULL. */
static kiln_status_t gemm_compute(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                  const kiln_tensor_t *b, const kiln_tensor_t *c, kiln_tensor_t **yf)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    bool ta = kiln_attr_int(node, "transA", 0) != 0, tb = kiln_attr_int(node, "transB", 0) != 0;
    float alpha = kiln_attr_float(node, "alpha", 1.0f), beta = kiln_attr_float(node, "beta", 1.0f);
    int64_t m = ta ? a->dims[1] : a->dims[0], k = ta ? a->dims[0] : a->dims[1];
    int64_t n = tb ? b->dims[0] : b->dims[1], kb = tb ? b->dims[1] : b->dims[0];
    if (k != kb)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "inner dims differ: A gives %lld, B %lld",
                             (long long)k, (long long)kb);
    gemm_bias_t bias = {0, 0};
    kiln_status_t st;
    if (c && (st = gemm_bias_shape(ctx, c, m, n, &bias)) != KILN_OK)
        return st;
    if (a->dtype != KILN_DTYPE_FLOAT32 && a->dtype != KILN_DTYPE_FLOAT64)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "dtype %d is not implemented", (int)a->dtype);
    kiln_tensor_t *y;
    if (yf) {
        if (!(y = *yf = kiln_tensor_new(KILN_DTYPE_FLOAT32, 2, (int64_t[]){m, n})))
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for a [%lld,%lld] result",
                                 (long long)m, (long long)n);
    } else if (!(y = kiln_ctx_output_uninit(ctx, 0, a->dtype, 2, (int64_t[]){m, n}))) {
        return kiln_ctx_status(ctx);
    }
    bool use_c = c && beta != 0.0f;
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    if (a->dtype == KILN_DTYPE_FLOAT32) {
        float *yd = y->data;
        const float *cd = use_c ? c->data : NULL;
        for (int64_t i = 0; use_c && i < m; i++)
            for (int64_t j = 0; j < n; j++)
                yd[i * n + j] = beta * cd[(bias.rows == 1 ? 0 : i) * bias.cols + (bias.cols == 1 ? 0 : j)];
        kiln_sgemm(ta, tb, m, n, k, alpha, a->data, a->dims[1], b->data, b->dims[1],
                   use_c ? 1.0f : 0.0f, yd, n, &par);
    } else {
        double *yd = y->data;
        const double *cd = use_c ? c->data : NULL;
        for (int64_t i = 0; use_c && i < m; i++)
            for (int64_t j = 0; j < n; j++)
                yd[i * n + j] = beta * cd[(bias.rows == 1 ? 0 : i) * bias.cols + (bias.cols == 1 ? 0 : j)];
        kiln_dgemm(ta, tb, m, n, k, alpha, a->data, a->dims[1], b->data, b->dims[1],
                   use_c ? 1.0 : 0.0, yd, n, &par);
    }
    return KILN_OK;
}

static kiln_status_t gemm_float32_body(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                       const kiln_tensor_t *b, const kiln_tensor_t *c,
                                       kiln_tensor_t **yf)
{
    return gemm_compute(ctx, a, b, c, yf);
}

static kiln_status_t gemm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *a = kiln_ctx_input(ctx, 0), *b = kiln_ctx_input(ctx, 1);
    const kiln_tensor_t *c = kiln_ctx_input(ctx, 2);
    if (!a || !b)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs A and B are required");
    if (a->rank != 2 || b->rank != 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "A and B must be matrices (ranks %d, %d)",
                             a->rank, b->rank);
    if (b->dtype != a->dtype || (c && c->dtype != a->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "A, B and C must share one dtype");
    if (kiln_nn_is_half(a->dtype))
        return run_through_float32(ctx, a, b, c, gemm_float32_body);
    return gemm_compute(ctx, a, b, c, NULL);
}

/* ---- MatMul -------------------------------------------------------------- */

/* Element strides of the batch dims of t (rank - 2 of them, right-aligned
 * into batch_rank slots; missing and size-1 dims get 0). */
static void batch_strides(const kiln_tensor_t *t, int t_batch, int batch_rank, int64_t mat_size,
                          int64_t *stride)
{
    int64_t s = mat_size;
    for (int i = batch_rank - 1; i >= 0; i--) {
        int ti = i - (batch_rank - t_batch);
        if (ti < 0) {
            stride[i] = 0;
            continue;
        }
        stride[i] = t->dims[ti] == 1 ? 0 : s;
        s *= t->dims[ti];
    }
}

kiln_status_t kiln_matmul_shape(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                const kiln_tensor_t *b, kiln_matmul_shape_t *s)
{
    if (a->rank < 1 || b->rank < 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "MatMul operands must have rank >= 1");
    s->m = a->rank == 1 ? 1 : a->dims[a->rank - 2];
    s->k = a->dims[a->rank - 1];
    int64_t kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    s->n = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if (s->k != kb)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "inner dims differ: A has %lld, B %lld",
                             (long long)s->k, (long long)kb);
    int a_batch = a->rank > 2 ? a->rank - 2 : 0, b_batch = b->rank > 2 ? b->rank - 2 : 0;
    s->batch_rank = a_batch > b_batch ? a_batch : b_batch;
    s->batch_count = 1;
    for (int i = 0; i < s->batch_rank; i++) {
        int ai = i - (s->batch_rank - a_batch), bi = i - (s->batch_rank - b_batch);
        int64_t da = ai >= 0 ? a->dims[ai] : 1, db = bi >= 0 ? b->dims[bi] : 1;
        if (da != db && da != 1 && db != 1)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "batch dim %d does not broadcast: %lld vs %lld", i, (long long)da,
                                 (long long)db);
        s->batch_dims[i] = da == 1 ? db : da;
        s->batch_count *= s->batch_dims[i];
    }
    batch_strides(a, a_batch, s->batch_rank, s->m * s->k, s->a_stride);
    batch_strides(b, b_batch, s->batch_rank, s->k * s->n, s->b_stride);
    s->out_rank = 0;
    for (int i = 0; i < s->batch_rank; i++)
        s->out_dims[s->out_rank++] = s->batch_dims[i];
    if (a->rank > 1)
        s->out_dims[s->out_rank++] = s->m;
    if (b->rank > 1)
        s->out_dims[s->out_rank++] = s->n;
    return KILN_OK;
}

void kiln_matmul_batch_offsets(const kiln_matmul_shape_t *s, int64_t t, int64_t *a_off, int64_t *b_off)
{
    *a_off = *b_off = 0;
    for (int i = s->batch_rank - 1; i >= 0; i--) {
        int64_t idx = t % s->batch_dims[i];
        t /= s->batch_dims[i];
        *a_off += idx * s->a_stride[i];
        *b_off += idx * s->b_stride[i];
    }
}

/* True when every batch of B is the same matrix and A's batches are
 * consecutive, so one GEMM with batch_count * m rows does it all. */
static bool matmul_folds(const kiln_matmul_shape_t *s)
{
    int64_t expect = s->m * s->k;
    for (int i = s->batch_rank - 1; i >= 0; i--) {
        if (s->b_stride[i] != 0)
            return false;
        if (s->batch_dims[i] != 1 && s->a_stride[i] != expect)
            return false;
        expect *= s->batch_dims[i];
    }
    return true;
}

/* Below this m*n*k a batched MatMul runs its batches in parallel, each
 * GEMM on one thread, rather than splitting every small GEMM. */
enum { BATCH_PARALLEL_MAX_VOLUME = 256 * 256 * 256 };

typedef struct matmul_job {
    const kiln_matmul_shape_t *s;
    const kiln_tensor_t *a, *b;
    kiln_tensor_t *y;
    int64_t rows; /* rows of each GEMM (m, or every row when batches fold) */
    const kiln_sgemm_packed_b_t *packed; /* B (a weight matrix) packed at session creation, or NULL */
} matmul_job_t;

/* Batch t of the MatMul; par NULL runs it on this thread. */
static void matmul_batch(const matmul_job_t *job, int64_t t, const kiln_gemm_parallel_t *par)
{
    const kiln_matmul_shape_t *s = job->s;
    int64_t a_off, b_off;
    kiln_matmul_batch_offsets(s, t, &a_off, &b_off);
    int64_t y_off = t * s->m * s->n;
    if (job->packed) /* B is 2-D: the same matrix for every batch */
        kiln_sgemm_prepacked(job->rows, 1.0f, (const float *)job->a->data + a_off, s->k, job->packed, 0.0f,
                             (float *)job->y->data + y_off, s->n, par);
    else if (job->a->dtype == KILN_DTYPE_FLOAT32)
        kiln_sgemm(false, false, job->rows, s->n, s->k, 1.0f, (const float *)job->a->data + a_off,
                   s->k, (const float *)job->b->data + b_off, s->n, 0.0f,
                   (float *)job->y->data + y_off, s->n, par);
    else
        kiln_dgemm(false, false, job->rows, s->n, s->k, 1.0, (const double *)job->a->data + a_off,
                   s->k, (const double *)job->b->data + b_off, s->n, 0.0,
                   (double *)job->y->data + y_off, s->n, par);
}

static void matmul_batches(void *arg, int64_t begin, int64_t end)
{
    for (int64_t t = begin; t < end; t++)
        matmul_batch(arg, t, NULL);
}

/* MatMul of float32/float64 a and b into output 0, or into a new float32
 * tensor *yf (the caller frees it) when yf is not NULL. */
static kiln_status_t matmul_compute(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                    const kiln_tensor_t *b, kiln_tensor_t **yf)
{
    kiln_matmul_shape_t s;
    kiln_status_t st = kiln_matmul_shape(ctx, a, b, &s);
    if (st != KILN_OK)
        return st;
    kiln_tensor_t *y;
    if (yf) {
        if (!(y = *yf = kiln_tensor_new(KILN_DTYPE_FLOAT32, s.out_rank, s.out_dims)))
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for the MatMul result");
    } else if (!(y = kiln_ctx_output_uninit(ctx, 0, a->dtype, s.out_rank, s.out_dims))) {
        return kiln_ctx_status(ctx);
    }
    if (y->count == 0)
        return KILN_OK;
    matmul_job_t job = {&s, a, b, y, s.m, NULL};
    if (a->dtype == KILN_DTYPE_FLOAT32)
        job.packed = kiln_ctx_input_prepacked(ctx, 1);
    int64_t batches = s.batch_count;
    if (matmul_folds(&s)) {
        job.rows = s.m * batches;
        batches = 1;
    }
    if (batches > 1 && s.m * s.n * s.k < BATCH_PARALLEL_MAX_VOLUME) {
        /* many small products (attention heads): one whole GEMM per thread */
        kiln_ctx_parallel_for(ctx, batches, 1, matmul_batches, &job);
        return KILN_OK;
    }
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    for (int64_t t = 0; t < batches; t++)
        matmul_batch(&job, t, &par);
    return KILN_OK;
}

static kiln_status_t matmul_float32_body(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                         const kiln_tensor_t *b, const kiln_tensor_t *c,
                                         kiln_tensor_t **yf)
{
    (void)c;
    return matmul_compute(ctx, a, b, yf);
}

static kiln_status_t matmul_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *a = kiln_ctx_input(ctx, 0), *b = kiln_ctx_input(ctx, 1);
    if (!a || !b)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "inputs A and B are required");
    if (a->dtype != b->dtype)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "A and B must share one dtype");
    if (kiln_nn_is_half(a->dtype))
        return run_through_float32(ctx, a, b, NULL, matmul_float32_body);
    if (a->dtype != KILN_DTYPE_FLOAT32 && a->dtype != KILN_DTYPE_FLOAT64)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "dtype %d is not implemented", (int)a->dtype);
    return matmul_compute(ctx, a, b, NULL);
}

/* ---- Registration -------------------------------------------------------- */

void kiln_ops_register_nn(kiln_registry_t *reg)
{
    static const struct {
        const char *op;
        int since;
        kiln_kernel_run_fn run;
    } kernels[] = {
        {"Gemm", 1, gemm_run},
        {"MatMul", 1, matmul_run},
        {"Conv", 1, kiln_conv_run},
        {"ConvTranspose", 1, kiln_conv_transpose_run},
        {"AveragePool", 1, kiln_average_pool_run},
        {"MaxPool", 1, kiln_max_pool_run},
        {"LpPool", 1, kiln_lp_pool_run},
        {"GlobalAveragePool", 1, kiln_global_average_pool_run},
        {"GlobalMaxPool", 1, kiln_global_max_pool_run},
        {"GlobalLpPool", 1, kiln_global_lp_pool_run},
        {"MaxUnpool", 9, kiln_max_unpool_run},
    };
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        kiln_register(reg, &(kiln_kernel_t){.op = kernels[i].op, .since = kernels[i].since,
                                             .run = kernels[i].run});
}
