/*
 * attention.c - com.kiln Attention: scaled dot-product attention in one
 * kernel, made by the optimizer (opt/pass_attention.c) out of the
 * MatMul -> Div/Mul -> Add(mask) -> Softmax -> MatMul chain that exporters
 * write for every transformer layer, together with the Transposes that
 * move heads in and out of place.
 *
 *   Attention(Q, K, V, Mask?) -> Y
 *     S = scale * Q K^T  (+ Mask, broadcast to [B, H, Sq, Sk]),
 *     P = softmax(S) along the last axis,  Y = P V
 *
 * Layouts (attributes; all tensors are rank 4, float32, B batch, H heads,
 * Sq/Sk query/key positions, D head size, Dv value head size):
 *   q_bshd    0: Q is [B, H, Sq, D]   1: Q is [B, Sq, H, D]
 *   k_layout  0: K is [B, H, D, Sk] (MatMul's second operand as written)
 *             1: K is [B, H, Sk, D]   2: K is [B, Sk, H, D]
 *   v_bshd    0: V is [B, H, Sk, Dv]  1: V is [B, Sk, H, Dv]
 *   out_bshd  0: Y is [B, H, Sq, Dv]  1: Y is [B, Sq, H, Dv]
 *   scale     float, default 1
 * The [B, S, H, D] forms are what the projections produce before the
 * head transposes; reading them with strides is what lets the optimizer
 * drop those Transposes (four copies of the activations per layer).
 *
 * Why one kernel: unfused, the [B, H, Sq, Sk] scores are written and read
 * back four times (MatMul, Div, Add, Softmax) and the head transposes copy
 * Q, K, V and Y.  Here each task takes one (batch, head, block of query
 * rows), computes that block of scores into a per-thread scratch that
 * stays in cache, scales (inside the GEMM), masks and normalizes it in
 * place, and multiplies it by V straight into Y.
 */
#include <string.h>

#include "ops/gemm.h"
#include "ops/kernel.h"
#include "ops/rowops.h"

/* Query rows per task.  Each task packs its head's K and V for the GEMMs,
 * so a task should cover as many queries as it can: all of them in
 * BERT-sized layers (B * H tasks keep the threads busy), while the scores
 * block (QUERY_BLOCK x Sk floats) stays in L2 for long sequences. */
enum { QUERY_BLOCK = 128 };

/* Where one (batch, head) slice of a rank-4 operand starts and the stride
 * between its rows. */
typedef struct head_view {
    const float *data;
    int64_t batch_stride, head_stride, row_stride;
} head_view_t;

/* Broadcast strides of the mask over [B, H, Sq, Sk] (0 along its size-1
 * dims); last_stride 0 means one value per row. */
typedef struct mask_view {
    const float *data;
    int64_t stride[4];
} mask_view_t;

typedef struct attention_job {
    int64_t batch, heads, sq, sk, d, dv;
    float scale;
    head_view_t q, k, v;
    bool k_rows_are_keys; /* K's rows are keys (layouts 1, 2): multiply by K^T */
    mask_view_t mask;     /* data NULL: no mask */
    float *y;
    int64_t y_batch_stride, y_head_stride, y_row_stride;
    int64_t blocks; /* query blocks per (batch, head) */
    int no_memory;  /* set (atomically) by a task whose thread got no scratch */
} attention_job_t;

/* The view of a [batch, heads, rows, cols] operand (bshd: stored as
 * [batch, rows, heads, cols]) read as [full_batch, full_heads, ...]: a
 * count of 1 against a larger full count broadcasts (stride 0). */
static head_view_t bhsd_view(const float *data, int64_t batch, int64_t full_batch, int64_t heads,
                             int64_t full_heads, int64_t rows, int64_t cols, bool bshd)
{
    head_view_t v = {data, heads * rows * cols, bshd ? cols : rows * cols, bshd ? heads * cols : cols};
    if (batch == 1 && full_batch > 1)
        v.batch_stride = 0;
    if (heads == 1 && full_heads > 1)
        v.head_stride = 0;
    return v;
}

static void attention_tasks(void *arg, int64_t begin, int64_t end)
{
    const attention_job_t *job = arg;
    float *scores = kiln_gemm_scratch(KILN_SCRATCH_IM2COL, (size_t)(QUERY_BLOCK * job->sk) * sizeof(float));
    if (!scores) {
        __atomic_store_n(&((attention_job_t *)arg)->no_memory, 1, __ATOMIC_RELAXED);
        return;
    }
    const kiln_rowops_t *ops = kiln_rowops();
    for (int64_t t = begin; t < end; t++) {
        int64_t bh = t / job->blocks, b = bh / job->heads, h = bh % job->heads;
        int64_t r0 = (t % job->blocks) * QUERY_BLOCK;
        int64_t rows = job->sq - r0 < QUERY_BLOCK ? job->sq - r0 : QUERY_BLOCK;
        const float *q = job->q.data + b * job->q.batch_stride + h * job->q.head_stride + r0 * job->q.row_stride;
        const float *k = job->k.data + b * job->k.batch_stride + h * job->k.head_stride;
        const float *v = job->v.data + b * job->v.batch_stride + h * job->v.head_stride;
        float *y = job->y + b * job->y_batch_stride + h * job->y_head_stride + r0 * job->y_row_stride;
        /* S = scale * Q K^T for this block of queries */
        kiln_sgemm(false, job->k_rows_are_keys, rows, job->sk, job->d, job->scale, q, job->q.row_stride, k,
                   job->k.row_stride, 0.0f, scores, job->sk, NULL);
        for (int64_t i = 0; i < rows; i++) {
            float *s = scores + i * job->sk;
            if (job->mask.data) {
                const float *m = job->mask.data + b * job->mask.stride[0] + h * job->mask.stride[1] +
                                 (r0 + i) * job->mask.stride[2];
                if (job->mask.stride[3])
                    for (int64_t j = 0; j < job->sk; j++)
                        s[j] += m[j];
                else
                    for (int64_t j = 0; j < job->sk; j++)
                        s[j] += m[0];
            }
            ops->softmax(s, s, job->sk, false);
        }
        /* Y = P V */
        kiln_sgemm(false, false, rows, job->dv, job->sk, 1.0f, scores, job->sk, v, job->v.row_stride, 0.0f, y,
                   job->y_row_stride, NULL);
    }
}

static kiln_status_t check_rank4(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *t, const char *name)
{
    if (!t)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "input %s is required", name);
    if (t->dtype != KILN_DTYPE_FLOAT32)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "%s is %s; only float32 is implemented", name,
                             kiln_dtype_name(t->dtype));
    if (t->rank != 4)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s has rank %d, expected 4", name, t->rank);
    return KILN_OK;
}

/* The mask's broadcast strides over [B, H, Sq, Sk] (numpy rules, aligned
 * on the right). */
static kiln_status_t mask_strides(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *m, const int64_t full[4],
                                  mask_view_t *out)
{
    if (m->dtype != KILN_DTYPE_FLOAT32)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "Mask is %s; only float32 is implemented",
                             kiln_dtype_name(m->dtype));
    if (m->rank > 4)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "Mask has rank %d, at most 4 expected", m->rank);
    out->data = m->data;
    int64_t stride = 1;
    for (int d = 3; d >= 0; d--) {
        int md = d - (4 - m->rank);
        int64_t size = md >= 0 ? m->dims[md] : 1;
        if (size != 1 && size != full[d])
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "Mask dim %d is %lld; it must be 1 or %lld to broadcast to the scores "
                                 "[%lld, %lld, %lld, %lld]",
                                 md, (long long)size, (long long)full[d], (long long)full[0], (long long)full[1],
                                 (long long)full[2], (long long)full[3]);
        out->stride[d] = size == 1 ? 0 : stride;
        stride *= size;
    }
    return KILN_OK;
}

static kiln_status_t attention_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *q = kiln_ctx_input(ctx, 0), *k = kiln_ctx_input(ctx, 1), *v = kiln_ctx_input(ctx, 2);
    const kiln_tensor_t *mask = kiln_ctx_input(ctx, 3);
    kiln_status_t st;
    if ((st = check_rank4(ctx, q, "Q")) || (st = check_rank4(ctx, k, "K")) || (st = check_rank4(ctx, v, "V")))
        return st;
    bool q_bshd = kiln_attr_int(node, "q_bshd", 0) != 0, v_bshd = kiln_attr_int(node, "v_bshd", 0) != 0;
    bool out_bshd = kiln_attr_int(node, "out_bshd", 0) != 0;
    int64_t k_layout = kiln_attr_int(node, "k_layout", 0);
    if (k_layout < 0 || k_layout > 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "k_layout is %lld; 0, 1 or 2 expected",
                             (long long)k_layout);
    attention_job_t job = {.scale = kiln_attr_float(node, "scale", 1.0f)};
    /* each operand's batch and head counts, rows and columns, in its layout */
    int64_t qb = q->dims[0], qh = q->dims[q_bshd ? 2 : 1];
    job.sq = q->dims[q_bshd ? 1 : 2];
    job.d = q->dims[3];
    int64_t kb = k->dims[0], kh = k->dims[k_layout == 2 ? 2 : 1];
    int64_t k_d = k->dims[k_layout == 0 ? 2 : 3];
    job.sk = k->dims[k_layout == 0 ? 3 : k_layout == 1 ? 2 : 1];
    int64_t vb = v->dims[0], vh = v->dims[v_bshd ? 2 : 1], v_sk = v->dims[v_bshd ? 1 : 2];
    job.dv = v->dims[3];
    /* batch and heads broadcast as MatMul's leading dims do (1 or the count) */
    job.batch = qb > kb ? qb : kb;
    job.batch = job.batch > vb ? job.batch : vb;
    job.heads = qh > kh ? qh : kh;
    job.heads = job.heads > vh ? job.heads : vh;
    bool fits = k_d == job.d && v_sk == job.sk;
    const int64_t counts[6] = {qb, kb, vb, qh, kh, vh};
    for (int i = 0; i < 6; i++)
        fits &= counts[i] == 1 || counts[i] == (i < 3 ? job.batch : job.heads);
    if (!fits)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "shapes do not fit: Q [%lld, %lld, %lld, %lld], K [%lld, %lld, %lld, %lld], "
                             "V [%lld, %lld, %lld, %lld] (q_bshd %d, k_layout %lld, v_bshd %d)",
                             (long long)q->dims[0], (long long)q->dims[1], (long long)q->dims[2],
                             (long long)q->dims[3], (long long)k->dims[0], (long long)k->dims[1],
                             (long long)k->dims[2], (long long)k->dims[3], (long long)v->dims[0],
                             (long long)v->dims[1], (long long)v->dims[2], (long long)v->dims[3], q_bshd,
                             (long long)k_layout, v_bshd);
    int64_t full[4] = {job.batch, job.heads, job.sq, job.sk};
    if (mask && (st = mask_strides(ctx, mask, full, &job.mask)))
        return st;
    int64_t ydims[4] = {job.batch, out_bshd ? job.sq : job.heads, out_bshd ? job.heads : job.sq, job.dv};
    kiln_tensor_t *y = kiln_ctx_output_uninit(ctx, 0, KILN_DTYPE_FLOAT32, 4, ydims);
    if (!y)
        return kiln_ctx_status(ctx);
    if (y->count == 0)
        return KILN_OK;
    if (job.sk == 0 || job.d == 0) { /* no keys or empty heads: softmax of nothing, Y = 0 */
        memset(y->data, 0, (size_t)y->count * sizeof(float));
        return KILN_OK;
    }
    job.q = bhsd_view(q->data, qb, job.batch, qh, job.heads, job.sq, job.d, q_bshd);
    job.v = bhsd_view(v->data, vb, job.batch, vh, job.heads, job.sk, job.dv, v_bshd);
    if (k_layout == 0)
        job.k = bhsd_view(k->data, kb, job.batch, kh, job.heads, job.d, job.sk, false);
    else
        job.k = bhsd_view(k->data, kb, job.batch, kh, job.heads, job.sk, job.d, k_layout == 2);
    job.k_rows_are_keys = k_layout != 0;
    head_view_t yv = bhsd_view(y->data, job.batch, job.batch, job.heads, job.heads, job.sq, job.dv, out_bshd);
    job.y = y->data;
    job.y_batch_stride = yv.batch_stride;
    job.y_head_stride = yv.head_stride;
    job.y_row_stride = yv.row_stride;
    job.blocks = (job.sq + QUERY_BLOCK - 1) / QUERY_BLOCK;
    kiln_ctx_parallel_for(ctx, job.batch * job.heads * job.blocks, 1, attention_tasks, &job);
    if (job.no_memory)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "no memory for a %d x %lld block of scores", QUERY_BLOCK,
                             (long long)job.sk);
    return KILN_OK;
}

void kiln_ops_register_attention(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.domain = "com.kiln", .op = "Attention", .since = 1, .run = attention_run});
}
