/*
 * fused.c - kiln's own ops (domain com.kiln), made by the graph optimizer
 * (src/opt/) out of standard subgraphs:
 *
 *   FusedConv(X, W, B?, Z?)   Conv, + Z (a residual of the output's shape),
 *                             then an activation on the output
 *   FusedGemm(A, B, C?)       Gemm (float32), then an activation
 *   FusedMatMul(A, B, bias?)  MatMul (numpy rules) + bias [N] along the last
 *                             axis, then an activation; transB = 1 reads B
 *                             with its last two axes swapped; a weight B
 *                             is read prepacked (kiln_ctx_input_prepacked)
 *   Gelu(X)                   0.5 x (1 + erf(x / sqrt 2))
 *   LayerNormalization(X, Scale, B)  the opset-17 op, for models of any opset
 *
 * The activation is attribute `activation` ("Relu", "Clip", "Sigmoid",
 * "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Gelu"; absent = none)
 * with `activation_alpha` / `activation_beta` (Clip's min and max,
 * LeakyRelu's alpha, HardSigmoid's alpha and beta).  The kernels run the
 * existing convolution and SGEMM code.  Cheap activations (Relu, Clip,
 * LeakyRelu, HardSigmoid, HardSwish: kiln_act_in_stores) are applied in
 * the GEMM microkernel's and depthwise kernel's stores, in registers; the
 * others in place on the output, block by block while it is in cache for
 * FusedConv, as a pass split over the session's threads for FusedGemm and
 * FusedMatMul.  Either way the separate activation op, its output tensor
 * and one pass over memory disappear.
 */
/* The loops run over any n and select with ?:, so ask for the full
 * vectorizer cost model and allow speculating float ops (results are the
 * same; only FP exception flags could differ). */
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")

#include <math.h>
#include <string.h>

#include "ops/fused_epilogue.h"
#include "ops/gemm.h"
#include "ops/nn_geometry.h"
#include "ops/nn_kernels.h"

/* ---- the activation epilogue ----------------------------------------------- */

typedef struct activation {
    kiln_act_kind_t kind;
    float alpha, beta;
    float *y;
} activation_t;

static kiln_status_t read_activation(kiln_kernel_ctx_t *ctx, activation_t *a)
{
    static const struct {
        const char *name;
        kiln_act_kind_t kind;
    } names[] = {{"Relu", KILN_ACT_RELU},
                 {"Clip", KILN_ACT_CLIP},
                 {"Sigmoid", KILN_ACT_SIGMOID},
                 {"Tanh", KILN_ACT_TANH},
                 {"HardSigmoid", KILN_ACT_HARD_SIGMOID},
                 {"HardSwish", KILN_ACT_HARD_SWISH},
                 {"LeakyRelu", KILN_ACT_LEAKY_RELU},
                 {"Gelu", KILN_ACT_GELU}};
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const char *name = kiln_attr_string(node, "activation", NULL);
    a->kind = KILN_ACT_NONE;
    a->alpha = kiln_attr_float(node, "activation_alpha", 0.0f);
    a->beta = kiln_attr_float(node, "activation_beta", 0.0f);
    if (!name)
        return KILN_OK;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) {
            a->kind = names[i].kind;
            return KILN_OK;
        }
    return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "unknown activation '%s'", name);
}

/* y[i] = act(y[i] + z[i]) over [0, n) (z may be NULL) with the best loop
 * for this CPU. */
static void activate_sum(const activation_t *a, const float *z, float *y, int64_t n)
{
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        kiln_act_loop_avx2(a->kind, a->alpha, a->beta, 0.0f, z, y, n);
    else
        kiln_act_loop(a->kind, a->alpha, a->beta, 0.0f, z, y, n, expf, tanhf);
}

static void activate(const activation_t *a, float *y, int64_t n)
{
    activate_sum(a, NULL, y, n);
}

/* Elements per parallel chunk of the epilogue. */
enum { ACT_GRAIN = 16384 };

static void activate_range(void *arg, int64_t begin, int64_t end)
{
    const activation_t *a = arg;
    activate(a, a->y + begin, end - begin);
}

static void activate_tensor(kiln_kernel_ctx_t *ctx, activation_t *a, kiln_tensor_t *y)
{
    if (a->kind == KILN_ACT_NONE || y->count == 0)
        return;
    a->y = y->data;
    kiln_ctx_parallel_for(ctx, y->count, ACT_GRAIN, activate_range, a);
}

/* The GEMM epilogue that applies a in its stores when it can (none
 * otherwise: activate_rest does it after). */
static kiln_sgemm_epilogue_t store_epilogue(const activation_t *a)
{
    kiln_sgemm_epilogue_t ep = {.row_bias = NULL, .act = {KILN_ACT_NONE, 0.0f, 0.0f}};
    if (kiln_act_in_stores(a->kind))
        ep.act = (kiln_act_t){a->kind, a->alpha, a->beta};
    return ep;
}

/* The activation pass over y for an activation the stores did not do. */
static void activate_rest(kiln_kernel_ctx_t *ctx, activation_t *a, kiln_tensor_t *y)
{
    if (!kiln_act_in_stores(a->kind))
        activate_tensor(ctx, a, y);
}

/* ---- FusedConv ------------------------------------------------------------- */

/* FusedConv's epilogue: bias, the residual Z (when present), activation. */
typedef struct conv_epilogue {
    activation_t act;
    const float *z; /* Z, shaped as the output, or NULL */
} conv_epilogue_t;

static void conv_epilogue_block(void *arg, float *y, int64_t offset, int64_t n)
{
    const conv_epilogue_t *e = arg;
    activate_sum(&e->act, e->z ? e->z + offset : NULL, y, n);
}

/* FusedConv(X, W, B?, Z?): Z must have the output's shape.  Without Z, a
 * cheap activation goes into the conv kernels' stores; otherwise the sum
 * and the activation run as the conv's per-block apply. */
static kiln_status_t fused_conv_run(kiln_kernel_ctx_t *ctx)
{
    conv_epilogue_t e = {.z = NULL};
    kiln_status_t st = read_activation(ctx, &e.act);
    if (st)
        return st;
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *w = kiln_ctx_input(ctx, 1), *z = kiln_ctx_input(ctx, 3);
    if (z) {
        kiln_window_t win;
        int64_t dims[KILN_MAX_RANK];
        if (!x || !w || x->rank < 3 || w->rank != x->rank || z->dtype != KILN_DTYPE_FLOAT32)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "X, W and Z must be float32 tensors of one rank");
        if ((st = kiln_window_forward(ctx, x, w->dims + 2, false, &win)) != KILN_OK)
            return st;
        kiln_window_output_dims(&win, x->dims[0], w->dims[0], dims);
        bool same = z->rank == x->rank;
        for (int d = 0; same && d < z->rank; d++)
            same = z->dims[d] == dims[d];
        if (!same)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "Z must have the output's shape");
        e.z = z->data;
    }
    kiln_conv_epilogue_t ep = {.act = {KILN_ACT_NONE, 0.0f, 0.0f}, .apply = conv_epilogue_block, .arg = &e};
    if (!e.z && kiln_act_in_stores(e.act.kind)) {
        ep.act = (kiln_act_t){e.act.kind, e.act.alpha, e.act.beta};
        ep.apply = NULL;
    }
    return kiln_conv_run_epilogue(ctx, e.z || e.act.kind != KILN_ACT_NONE ? &ep : NULL);
}

/* ---- FusedGemm ------------------------------------------------------------- */

static kiln_status_t fused_gemm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *a = kiln_ctx_input(ctx, 0), *b = kiln_ctx_input(ctx, 1), *c = kiln_ctx_input(ctx, 2);
    activation_t act;
    kiln_status_t st = read_activation(ctx, &act);
    if (st)
        return st;
    if (!a || !b || a->rank != 2 || b->rank != 2 || a->dtype != KILN_DTYPE_FLOAT32 ||
        b->dtype != KILN_DTYPE_FLOAT32 || (c && c->dtype != KILN_DTYPE_FLOAT32))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "A and B must be float32 matrices, C float32");
    bool ta = kiln_attr_int(node, "transA", 0) != 0, tb = kiln_attr_int(node, "transB", 0) != 0;
    float alpha = kiln_attr_float(node, "alpha", 1.0f), beta = kiln_attr_float(node, "beta", 1.0f);
    int64_t m = ta ? a->dims[1] : a->dims[0], k = ta ? a->dims[0] : a->dims[1];
    int64_t n = tb ? b->dims[0] : b->dims[1], kb = tb ? b->dims[1] : b->dims[0];
    if (k != kb)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "inner dims differ: A gives %lld, B %lld",
                             (long long)k, (long long)kb);
    int64_t rows = 1, cols = 1;
    if (c) {
        rows = c->rank == 2 ? c->dims[0] : 1;
        cols = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
        if (c->rank > 2 || (rows != 1 && rows != m) || (cols != 1 && cols != n))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "C does not broadcast to [%lld,%lld]",
                                 (long long)m, (long long)n);
    }
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, KILN_DTYPE_FLOAT32, 2, (int64_t[]){m, n});
    if (!y)
        return kiln_ctx_status(ctx);
    bool use_c = c && beta != 0.0f;
    float *yd = y->data;
    const float *cd = use_c ? c->data : NULL;
    for (int64_t i = 0; use_c && i < m; i++)
        for (int64_t j = 0; j < n; j++)
            yd[i * n + j] = beta * cd[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)];
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    kiln_sgemm_epilogue_t ep = store_epilogue(&act);
    kiln_sgemm_ex(ta, tb, m, n, k, alpha, a->data, a->dims[1], b->data, b->dims[1], use_c ? 1.0f : 0.0f, yd, n,
                  &ep, &par);
    activate_rest(ctx, &act, y);
    return KILN_OK;
}

/* ---- FusedMatMul ----------------------------------------------------------- */

/* Every batch of B is one matrix and A's batches are consecutive: one GEMM
 * with batch_count * m rows does it (as nn.c's MatMul). */
static bool batches_fold(const kiln_matmul_shape_t *s)
{
    int64_t expect = s->m * s->k;
    for (int i = s->batch_rank - 1; i >= 0; i--) {
        if (s->b_stride[i] != 0 || (s->batch_dims[i] != 1 && s->a_stride[i] != expect))
            return false;
        expect *= s->batch_dims[i];
    }
    return true;
}

static kiln_status_t fused_matmul_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *a = kiln_ctx_input(ctx, 0), *b = kiln_ctx_input(ctx, 1),
                        *bias = kiln_ctx_input(ctx, 2);
    activation_t act;
    kiln_status_t st = read_activation(ctx, &act);
    if (st)
        return st;
    if (!a || !b || a->dtype != KILN_DTYPE_FLOAT32 || b->dtype != KILN_DTYPE_FLOAT32 ||
        (bias && bias->dtype != KILN_DTYPE_FLOAT32))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "A, B and bias must be float32");
    bool tb = kiln_attr_int(kiln_ctx_node(ctx), "transB", 0) != 0;
    kiln_tensor_t bview = *b; /* B as the product sees it */
    if (tb) {
        if (b->rank < 2)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "transB needs B of rank 2 or more");
        bview.dims[b->rank - 2] = b->dims[b->rank - 1];
        bview.dims[b->rank - 1] = b->dims[b->rank - 2];
    }
    kiln_matmul_shape_t s;
    if ((st = kiln_matmul_shape(ctx, a, &bview, &s)) != KILN_OK)
        return st;
    if (bias && bias->count != s.n)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "bias has %lld elements, the product %lld columns", (long long)bias->count,
                             (long long)s.n);
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, KILN_DTYPE_FLOAT32, s.out_rank, s.out_dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (y->count == 0)
        return KILN_OK;
    float *yd = y->data;
    if (bias)
        for (int64_t r = 0; r < y->count / s.n; r++)
            memcpy(yd + r * s.n, bias->data, (size_t)s.n * sizeof *yd);
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    int64_t batches = s.batch_count, rows = s.m;
    if (batches_fold(&s)) {
        rows *= batches;
        batches = 1;
    }
    /* B prepacked by the session (a weight matrix): one product over the panels */
    const kiln_sgemm_packed_b_t *packed = tb ? NULL : kiln_ctx_input_prepacked(ctx, 1);
    kiln_sgemm_epilogue_t ep = store_epilogue(&act);
    if (packed && batches == 1) {
        kiln_sgemm_prepacked_ex(rows, 1.0f, a->data, s.k, packed, bias ? 1.0f : 0.0f, yd, s.n, &ep, &par);
        activate_rest(ctx, &act, y);
        return KILN_OK;
    }
    for (int64_t t = 0; t < batches; t++) {
        int64_t a_off, b_off;
        kiln_matmul_batch_offsets(&s, t, &a_off, &b_off);
        kiln_sgemm_ex(false, tb, rows, s.n, s.k, 1.0f, (const float *)a->data + a_off, s.k,
                      (const float *)b->data + b_off, tb ? s.k : s.n, bias ? 1.0f : 0.0f, yd + t * s.m * s.n,
                      s.n, &ep, &par);
    }
    activate_rest(ctx, &act, y);
    return KILN_OK;
}

/* ---- Gelu, LayerNormalization ---------------------------------------------- */

static kiln_status_t gelu_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || x->dtype != KILN_DTYPE_FLOAT32)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "X must be float32");
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (y->count)
        memcpy(y->data, x->data, y->nbytes);
    activation_t act = {.kind = KILN_ACT_GELU};
    activate_tensor(ctx, &act, y);
    return KILN_OK;
}

/* The standard op's kernel (normalize.c) reads axis and epsilon from this
 * node; only the opset it was found under differs. */
static kiln_status_t layer_norm_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_kernel_t *k = kiln_registry_find(kiln_registry_default(), KILN_PROVIDER_CPU, "",
                                                "LayerNormalization", 17, KILN_DTYPE_UNDEFINED, NULL);
    if (!k)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "no LayerNormalization kernel");
    return k->run(ctx);
}

/* ---- Registration ---------------------------------------------------------- */

void kiln_ops_register_fused(kiln_registry_t *reg)
{
    static const struct {
        const char *op;
        kiln_kernel_run_fn run;
    } kernels[] = {
        {"FusedConv", fused_conv_run},          {"FusedGemm", fused_gemm_run},
        {"FusedMatMul", fused_matmul_run},      {"Gelu", gelu_run},
        {"LayerNormalization", layer_norm_run},
    };
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        kiln_register(reg, &(kiln_kernel_t){
                               .domain = "com.kiln", .op = kernels[i].op, .since = 1, .run = kernels[i].run});
}
