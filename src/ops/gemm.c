/*
 * gemm.c - the SGEMM driver: reference loops, the blocked/packed path and
 * the split of the output over threads (see gemm.h for the contract).
 *
 * The blocked path follows the BLIS/GotoBLAS layering.  The output is cut
 * into tiles of mc rows x nc columns; each tile is one parallel task, at
 * least a few per thread, and when they are few their number is a multiple
 * of the threads (kiln_gemm_parallel_t.threads), so none waits idle; a
 * narrow C with a big A (a CNN's 14x14 and 7x7 maps at batch 1) is split
 * by rows only, so the weights are read once (plan_narrow: 7-12% on those
 * convs at 2 threads, 7% on ResNet-50).  A task walks K in kc-deep slices: it packs the kc x nc slice of op(B) into
 * NR-wide micro-panels (row k of the strip contiguous), then for each of its
 * row blocks packs the mc x kc slice of op(A) into MR-tall micro-panels and
 * runs the microkernel over every MR x NR tile.  Packing turns transposes
 * and leading dimensions into unit-stride streams, pads edges with zeros
 * and keeps a B micro-panel in L1 and the A block in L2 while they are
 * reused.  Consecutive tasks of one chunk share a column block, so the
 * packed B slice is reused across them.
 *
 * Variations on that loop: when a column block is only a few panels wide,
 * A is read in place by a microkernel that takes row pointers (packing it
 * would cost more than the few reuses repay); callers may hand B over
 * already in panels (kiln_sgemm_packed_b: Conv writes im2col that way) and
 * A packed once for many calls (kiln_sgemm_pack_a).  An epilogue (row bias,
 * then an activation: ReLU, Clip, LeakyRelu, HardSigmoid, HardSwish) is
 * applied in the microkernel's stores, after the last K slice.  Packing buffers are
 * per-thread scratch that lives as long as the thread.
 *
 * Small or degenerate products (one row or one column, tiny volumes) go to
 * plain loops (AVX2 dot/axpy for one row), where packing would cost more
 * than it saves.
 */
#include "ops/gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/big_alloc.h"
#include "ops/gemm_kernel.h"
#include "ops/kernel.h"

/* ---- Parallel runners --------------------------------------------------- */

static void run_on_ctx(void *ctx, int64_t n, int64_t grain, kiln_range_fn fn, void *arg)
{
    kiln_ctx_parallel_for((kiln_kernel_ctx_t *)ctx, n, grain, fn, arg);
}

static void run_on_pool(void *pool, int64_t n, int64_t grain, kiln_range_fn fn, void *arg)
{
    kiln_threadpool_run((kiln_threadpool_t *)pool, n, grain, fn, arg);
}

kiln_gemm_parallel_t kiln_gemm_parallel_ctx(struct kiln_kernel_ctx *ctx)
{
    return (kiln_gemm_parallel_t){.run = run_on_ctx, .ctx = ctx, .threads = kiln_ctx_threads(ctx)};
}

kiln_gemm_parallel_t kiln_gemm_parallel_pool(kiln_threadpool_t *pool)
{
    return (kiln_gemm_parallel_t){.run = run_on_pool, .ctx = pool, .threads = kiln_threadpool_threads(pool)};
}

static void parallel_run(const kiln_gemm_parallel_t *par, int64_t n, int64_t grain,
                         kiln_range_fn fn, void *arg)
{
    if (par && par->run)
        par->run(par->ctx, n, grain, fn, arg);
    else
        fn(arg, 0, n);
}

/* ---- Per-thread scratch ------------------------------------------------- */

/* Packing panels and im2col buffers are needed on every call; allocating
 * them each time would mmap and page-fault megabytes per GEMM.  Each thread
 * keeps one grow-only, 64-byte aligned buffer per slot, freed when the
 * thread exits. */
typedef struct scratch {
    void *buf[KILN_SCRATCH_SLOTS];
    size_t cap[KILN_SCRATCH_SLOTS];
} scratch_t;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static __thread scratch_t *t_scratch;

static void scratch_free(void *arg)
{
    scratch_t *s = arg;
    for (int i = 0; i < KILN_SCRATCH_SLOTS; i++)
        free(s->buf[i]);
    free(s);
}

static void scratch_key_create(void)
{
    pthread_key_create(&g_scratch_key, scratch_free);
}

void *kiln_gemm_scratch(int slot, size_t bytes)
{
    if (slot < 0 || slot >= KILN_SCRATCH_SLOTS)
        return NULL;
    if (!t_scratch) {
        pthread_once(&g_scratch_once, scratch_key_create);
        if (!(t_scratch = calloc(1, sizeof *t_scratch)))
            return NULL;
        pthread_setspecific(g_scratch_key, t_scratch);
    }
    if (t_scratch->cap[slot] < bytes) {
        size_t cap = (bytes + 63) / 64 * 64;
        void *p = aligned_alloc(64, cap);
        if (!p)
            return NULL;
        free(t_scratch->buf[slot]);
        t_scratch->buf[slot] = p;
        t_scratch->cap[slot] = cap;
    }
    return t_scratch->buf[slot];
}

/* ---- Reference ---------------------------------------------------------- */

/* Scales rows [m0, m1) of C by beta (beta == 0 clears without reading). */
static void scale_rows(int64_t m0, int64_t m1, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = m0; i < m1; i++) {
        float *crow = c + i * ldc;
        if (beta == 0.0f)
            memset(crow, 0, (size_t)n * sizeof *crow);
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++)
                crow[j] *= beta;
    }
}

/* Rows [m0, m1) of the reference product. */
static void reference_rows(bool trans_a, bool trans_b, int64_t m0, int64_t m1, int64_t n,
                           int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                           int64_t ldb, float beta, float *c, int64_t ldc)
{
    scale_rows(m0, m1, n, beta, c, ldc);
    for (int64_t i = m0; i < m1; i++) {
        float *crow = c + i * ldc;
        if (trans_b) {
            for (int64_t j = 0; j < n; j++) {
                const float *bcol = b + j * ldb;
                float sum = 0.0f;
                for (int64_t p = 0; p < k; p++)
                    sum += (trans_a ? a[p * lda + i] : a[i * lda + p]) * bcol[p];
                crow[j] += alpha * sum;
            }
        } else {
            for (int64_t p = 0; p < k; p++) {
                float av = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
                const float *brow = b + p * ldb;
                for (int64_t j = 0; j < n; j++)
                    crow[j] += av * brow[j];
            }
        }
    }
}

void kiln_sgemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float beta, float *c, int64_t ldc)
{
    reference_rows(trans_a, trans_b, 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---- Portable microkernel ----------------------------------------------- */

enum { PORTABLE_MR = 6, PORTABLE_NR = 16 };

static void ukernel_portable(int64_t kc, const float *a, const float *b, int64_t b_step, float *c, int64_t ldc,
                             int mr, int nr, float alpha, float beta, const float *bias, const kiln_act_t *act)
{
    float acc[PORTABLE_MR][PORTABLE_NR];
    memset(acc, 0, sizeof acc);
    for (int64_t p = 0; p < kc; p++) {
        for (int i = 0; i < PORTABLE_MR; i++) {
            float av = a[i];
            for (int j = 0; j < PORTABLE_NR; j++)
                acc[i][j] += av * b[j];
        }
        a += PORTABLE_MR;
        b += b_step;
    }
    for (int i = 0; i < mr; i++) {
        float *crow = c + i * ldc;
        float add = bias ? bias[i] : 0.0f;
        for (int j = 0; j < nr; j++) {
            float v = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * crow[j]) + add;
            crow[j] = act ? kiln_act_scalar(act, v) : v;
        }
    }
}

static const kiln_sgemm_ukernel_t UKERNEL_PORTABLE = {
    .name = "portable", .mr = 6, .nr = 16, .kc = 256, .mc = 72, .nc = 1024, .run = ukernel_portable};

static const kiln_sgemm_ukernel_t UKERNEL_AVX2 = {
    .name = "avx2", .mr = 6, .nr = 16, .kc = 256, .mc = 144, .nc = 2048,
    .run = kiln_sgemm_ukernel_6x16_avx2};

static const kiln_sgemm_ukernel_t UKERNEL_AVX512 = {
    .name = "avx512", .mr = 12, .nr = 32, .kc = 256, .mc = 192, .nc = 2048,
    .run = kiln_sgemm_ukernel_12x32_avx512, .run_direct = kiln_sgemm_ukernel_12x32_avx512_direct,
    .b_edge_in_place = true};

/* Column blocks at most this many B panels wide read A in place (see
 * macro_kernel_direct_a): A is reused by too few panels to repay packing. */
enum { DIRECT_A_MAX_PANELS = 8 };
/* Products with at most this many rows, or column blocks at most this
 * many panels wide, read B in place (see plan_blocks). */
enum { DIRECT_B_MAX_ROWS = 128, DIRECT_B_MAX_PANELS = 4 };

static bool g_force_portable;
static bool g_no_direct_a;
static bool g_no_direct_b;
/* The SIMD packer and vector helpers run whenever the CPU has AVX2,
 * unless the portable path is forced. */
static bool use_simd_helpers(void)
{
    return !g_force_portable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static bool g_avoid_avx512;

void kiln_sgemm_force_portable(bool force_portable)
{
    g_force_portable = force_portable;
}

void kiln_sgemm_avoid_avx512(bool avoid)
{
    g_avoid_avx512 = avoid;
}

void kiln_sgemm_avoid_direct_a(bool avoid)
{
    g_no_direct_a = avoid;
}

void kiln_sgemm_avoid_direct_b(bool avoid)
{
    g_no_direct_b = avoid;
}

static const kiln_sgemm_ukernel_t *choose_ukernel(void)
{
    if (g_force_portable)
        return &UKERNEL_PORTABLE;
    if (!g_avoid_avx512 && __builtin_cpu_supports("avx512f"))
        return &UKERNEL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &UKERNEL_AVX2;
    return &UKERNEL_PORTABLE;
}

const char *kiln_sgemm_path(void)
{
    return choose_ukernel()->name;
}

/* ---- Packing ------------------------------------------------------------ */

/* Packs rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-tall
 * micro-panels: panel r holds, for each k, MR values (zero past row m). */
static void pack_a(bool trans_a, const float *a, int64_t lda, int64_t i0, int64_t mc, int64_t p0,
                   int64_t kc, int mr, float *dst)
{
    for (int64_t ir = 0; ir < mc; ir += mr) {
        int rows = mc - ir < mr ? (int)(mc - ir) : mr;
        float *panel = dst + ir * kc;
        if (!trans_a && rows == mr && use_simd_helpers()) {
            kiln_sgemm_pack_rows_sse(a + (i0 + ir) * lda + p0, lda, mr, kc, panel);
            continue;
        }
        if (rows < mr)
            memset(panel, 0, (size_t)(kc * mr) * sizeof *panel);
        for (int r = 0; r < rows; r++) {
            int64_t i = i0 + ir + r;
            if (trans_a) {
                const float *src = a + p0 * lda + i;
                for (int64_t p = 0; p < kc; p++)
                    panel[p * mr + r] = src[p * lda];
            } else {
                const float *src = a + i * lda + p0;
                for (int64_t p = 0; p < kc; p++)
                    panel[p * mr + r] = src[p];
            }
        }
    }
}

/* 16 floats; a constant-size memcpy is inlined into vector moves (a libc
 * call per 64 bytes would cost more than the copy). */
static inline void copy16(float *restrict dst, const float *restrict src)
{
    memcpy(dst, src, 16 * sizeof *dst);
}

/* Packs rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-wide
 * micro-panels: panel s holds, for each k, NR values (zero past col n). */
static void pack_b(bool trans_b, const float *b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
                   int64_t nc, int nr, float *dst)
{
    for (int64_t jr = 0; jr < nc; jr += nr) {
        int cols = nc - jr < nr ? (int)(nc - jr) : nr;
        float *panel = dst + jr * kc;
        if (trans_b && cols == nr && use_simd_helpers()) {
            /* columns of op(B) are rows of the stored B^T: the A-panel packer */
            kiln_sgemm_pack_rows_sse(b + (j0 + jr) * ldb + p0, ldb, nr, kc, panel);
        } else if (trans_b) {
            if (cols < nr)
                memset(panel, 0, (size_t)(kc * nr) * sizeof *panel);
            for (int s = 0; s < cols; s++) {
                const float *src = b + (j0 + jr + s) * ldb + p0;
                for (int64_t p = 0; p < kc; p++)
                    panel[p * nr + s] = src[p];
            }
        } else if (cols == 16 && nr == 16) {
            for (int64_t p = 0; p < kc; p++)
                copy16(panel + p * nr, b + (p0 + p) * ldb + j0 + jr);
        } else if (cols == 32 && nr == 32) {
            for (int64_t p = 0; p < kc; p++) {
                copy16(panel + p * nr, b + (p0 + p) * ldb + j0 + jr);
                copy16(panel + p * nr + 16, b + (p0 + p) * ldb + j0 + jr + 16);
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + j0 + jr;
                float *out = panel + p * nr;
                for (int s = 0; s < cols; s++)
                    out[s] = src[s];
                for (int s = cols; s < nr; s++)
                    out[s] = 0.0f;
            }
        }
    }
}

/* ---- Blocked path ------------------------------------------------------- */

/* A B matrix packed once (kiln_sgemm_pack_b): for each kc-deep slice of K
 * (the depths plan_blocks picks for this k), all of op(B)'s columns as
 * NR-wide micro-panels, exactly what pack_b writes for j0 = 0, nc = n.
 * Slice p0 starts at panels + p0 * n_padded; the panel of columns from j0
 * at + j0 * kc of that slice. */
struct kiln_sgemm_packed_b {
    const kiln_sgemm_ukernel_t *uk; /* the microkernel the panels are laid out for */
    int64_t k, n, n_padded;         /* n_padded = n rounded up to NR */
    bool trans_b;
    const float *b;                 /* the source, read by one-row and tiny products; NULL once gone */
    int64_t ldb;
    float *panels;
    size_t bytes;
};

typedef struct sgemm_job {
    const kiln_sgemm_ukernel_t *uk;
    bool trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    int64_t lda, ldb, ldc;
    float *c;
    int64_t mc, nc, kc;         /* block sizes chosen for this product */
    int64_t m_blocks, n_blocks; /* task t covers row block t % m_blocks, col block t / m_blocks */
    bool direct_a;              /* the microkernel reads A in place (narrow C) */
    bool direct_b;              /* ... and B in place (not transposed, few row tiles per panel) */
    const float *b_panels;      /* B already in full-K panels (kiln_sgemm_packed_b), or NULL */
    const float *a_packed;      /* all of A packed by kiln_sgemm_pack_a, or NULL */
    const float *row_bias;      /* epilogue: added to row i of C, or NULL */
    const kiln_act_t *act;      /* epilogue: the activation after the bias, or NULL */
    const kiln_sgemm_epilogue_t *ep; /* for its block hook, or NULL */
    const struct kiln_sgemm_packed_b *b_packed; /* B packed at session creation, or NULL */
} sgemm_job_t;

static int64_t round_up(int64_t x, int64_t to)
{
    return (x + to - 1) / to * to;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Where a K slice's B micro-panels are: the panel of columns from jr
 * starts at base + jr * ld with rows step floats apart, except panels from
 * column edge_jr on (a partial panel of B read in place), which are packed
 * at edge (rows NR apart). */
typedef struct b_view {
    const float *base;
    int64_t ld, step;
    const float *edge;
    int64_t edge_jr;
} b_view_t;

static inline const float *b_panel(const b_view_t *v, int64_t jr, int64_t nr, int64_t *step)
{
    if (jr >= v->edge_jr) {
        *step = nr;
        return v->edge; /* the one partial panel */
    }
    *step = v->step;
    return v->base + jr * v->ld;
}

/* Multiplies the packed A block (mc x kc) by the B slice (kc x nc) into C
 * at (i0, j0). */
static void macro_kernel(const sgemm_job_t *job, const float *a_pack, const b_view_t *bv, int64_t i0, int64_t mc,
                         int64_t j0, int64_t nc, int64_t kc, float beta, const float *bias, const kiln_act_t *act)
{
    const kiln_sgemm_ukernel_t *uk = job->uk;
    for (int64_t jr = 0; jr < nc; jr += uk->nr) {
        int nr = (int)min64(uk->nr, nc - jr);
        int64_t step;
        const float *b = b_panel(bv, jr, uk->nr, &step);
        for (int64_t ir = 0; ir < mc; ir += uk->mr) {
            int mr = (int)min64(uk->mr, mc - ir);
            float *c = job->c + (i0 + ir) * job->ldc + j0 + jr;
            uk->run(kc, a_pack + ir * kc, b, step, c, job->ldc, mr, nr, job->alpha, beta,
                    bias ? bias + i0 + ir : NULL, act);
        }
    }
}

/* The same with A read in place (row-major, not transposed): for a narrow
 * C, each A element is used by only a few B panels, so packing A would
 * cost more than it saves.  A partial last row tile is packed into a_edge. */
static void macro_kernel_direct_a(const sgemm_job_t *job, float *a_edge, const b_view_t *bv, int64_t i0,
                                  int64_t mc, int64_t p0, int64_t j0, int64_t nc, int64_t kc, float beta,
                                  const float *bias, const kiln_act_t *act)
{
    const kiln_sgemm_ukernel_t *uk = job->uk;
    int64_t full = mc / uk->mr * uk->mr;
    if (full < mc)
        pack_a(false, job->a, job->lda, i0 + full, mc - full, p0, kc, uk->mr, a_edge);
    for (int64_t jr = 0; jr < nc; jr += uk->nr) {
        int nr = (int)min64(uk->nr, nc - jr);
        int64_t step;
        const float *b = b_panel(bv, jr, uk->nr, &step);
        for (int64_t ir = 0; ir < full; ir += uk->mr) {
            float *c = job->c + (i0 + ir) * job->ldc + j0 + jr;
            uk->run_direct(kc, job->a + (i0 + ir) * job->lda + p0, job->lda, b, step, c, job->ldc, nr, job->alpha,
                           beta, bias ? bias + i0 + ir : NULL, act);
        }
        if (full < mc)
            uk->run(kc, a_edge, b, step, job->c + (i0 + full) * job->ldc + j0 + jr, job->ldc, (int)(mc - full), nr,
                    job->alpha, beta, bias ? bias + i0 + full : NULL, act);
    }
}

/* The epilogue as a separate pass over an m x n block of C (paths that
 * do not run the microkernels). */
static void apply_epilogue(float *c, int64_t ldc, int64_t m, int64_t n, const float *row_bias,
                           const kiln_act_t *act)
{
    if (!row_bias && !act)
        return;
    for (int64_t i = 0; i < m; i++) {
        float *crow = c + i * ldc, add = row_bias ? row_bias[i] : 0.0f;
        for (int64_t j = 0; j < n; j++) {
            float v = crow[j] + add;
            crow[j] = act ? kiln_act_scalar(act, v) : v;
        }
    }
}

/* The epilogue's activation for the stores, or NULL when there is none. */
static const kiln_act_t *epilogue_act(const kiln_sgemm_epilogue_t *ep)
{
    return ep && ep->act.kind != KILN_ACT_NONE && kiln_act_in_stores(ep->act.kind) ? &ep->act : NULL;
}

/* The caller's block hook (kiln_sgemm_epilogue_t.block) on a finished block. */
static void block_done(const kiln_sgemm_epilogue_t *ep, float *c, int64_t ldc, int64_t i0, int64_t rows,
                       int64_t j0, int64_t cols)
{
    if (ep && ep->block && rows > 0 && cols > 0)
        ep->block(ep->block_arg, c, ldc, i0, rows, j0, cols);
}

/* The plain-loop fallback when no packing memory is left: rows of C at
 * (i0, j0), mc x nc, from A and either B or the caller's B panels. */
static void fallback_block(const sgemm_job_t *job, int64_t i0, int64_t mc, int64_t j0, int64_t nc)
{
    if (!job->b_panels) {
        reference_rows(job->trans_a, job->trans_b, 0, mc, nc, job->k, job->alpha,
                       job->trans_a ? job->a + i0 : job->a + i0 * job->lda, job->lda,
                       job->trans_b ? job->b + j0 * job->ldb : job->b + j0, job->ldb, job->beta,
                       job->c + i0 * job->ldc + j0, job->ldc);
        apply_epilogue(job->c + i0 * job->ldc + j0, job->ldc, mc, nc,
                       job->row_bias ? job->row_bias + i0 : NULL, job->act);
        block_done(job->ep, job->c, job->ldc, i0, mc, j0, nc);
        return;
    }
    int64_t nr = job->uk->nr;
    for (int64_t i = i0; i < i0 + mc; i++)
        for (int64_t j = j0; j < j0 + nc; j++) {
            const float *panel = job->b_panels + j / nr * nr * job->k + j % nr;
            float sum = 0.0f;
            for (int64_t p = 0; p < job->k; p++)
                sum += job->a[i * job->lda + p] * panel[p * nr];
            float *cij = job->c + i * job->ldc + j;
            *cij = job->alpha * sum + (job->beta == 0.0f ? 0.0f : job->beta * *cij);
        }
    apply_epilogue(job->c + i0 * job->ldc + j0, job->ldc, mc, nc,
                   job->row_bias ? job->row_bias + i0 : NULL, job->act);
    block_done(job->ep, job->c, job->ldc, i0, mc, j0, nc);
}

/* Tasks [begin, end): runs of consecutive tasks in one column block share
 * each packed B slice. */
static void sgemm_tasks(void *arg, int64_t begin, int64_t end)
{
    const sgemm_job_t *job = arg;
    const kiln_sgemm_ukernel_t *uk = job->uk;
    size_t a_bytes = (size_t)(round_up(job->mc, uk->mr) * job->kc) * sizeof(float);
    size_t b_bytes = (size_t)(round_up(job->nc, uk->nr) * job->kc) * sizeof(float);
    float *a_pack = kiln_gemm_scratch(KILN_SCRATCH_PACK_A, a_bytes);
    float *b_pack = job->b_panels ? NULL : kiln_gemm_scratch(KILN_SCRATCH_PACK_B, b_bytes);
    for (int64_t t = begin; t < end;) {
        int64_t jb = t / job->m_blocks;
        int64_t run_end = min64(end, (jb + 1) * job->m_blocks);
        int64_t j0 = jb * job->nc, nc = min64(job->nc, job->n - j0);
        if (!a_pack || (!b_pack && !job->b_panels)) { /* out of memory */
            for (int64_t u = t; u < run_end; u++) {
                int64_t i0 = (u % job->m_blocks) * job->mc;
                fallback_block(job, i0, min64(job->mc, job->m - i0), j0, nc);
            }
            t = run_end;
            continue;
        }
        for (int64_t p0 = 0; p0 < job->k; p0 += job->kc) {
            int64_t kc = min64(job->kc, job->k - p0);
            float beta = p0 == 0 ? job->beta : 1.0f;
            const float *bias = p0 == 0 ? job->row_bias : NULL; /* once, with the first slice */
            const kiln_act_t *act = p0 + kc >= job->k ? job->act : NULL; /* after the last slice */
            b_view_t bv = {b_pack, kc, uk->nr, NULL, INT64_MAX};
            if (job->b_panels) {
                bv.base = job->b_panels + j0 * job->k + p0 * uk->nr;
                bv.ld = job->k;
            } else if (job->b_packed) { /* the slice's panels from j0 on, packed at session creation */
                bv.base = job->b_packed->panels + p0 * job->b_packed->n_padded + j0 * kc;
            } else if (job->direct_b) { /* B read in place; a partial last panel packed unless the kernel masks */
                bv.base = job->b + p0 * job->ldb + j0;
                bv.ld = 1;
                bv.step = job->ldb;
                int64_t full = nc / uk->nr * uk->nr;
                if (full < nc && !uk->b_edge_in_place) {
                    pack_b(false, job->b, job->ldb, p0, kc, j0 + full, nc - full, uk->nr, b_pack);
                    bv.edge = b_pack;
                    bv.edge_jr = full;
                }
            } else {
                pack_b(job->trans_b, job->b, job->ldb, p0, kc, j0, nc, uk->nr, b_pack);
            }
            for (int64_t u = t; u < run_end; u++) {
                int64_t i0 = (u % job->m_blocks) * job->mc, mc = min64(job->mc, job->m - i0);
                if (job->direct_a) {
                    macro_kernel_direct_a(job, a_pack, &bv, i0, mc, p0, j0, nc, kc, beta, bias, act);
                } else if (job->a_packed) { /* the caller packed all of A once */
                    macro_kernel(job, job->a_packed + p0 * round_up(job->m, uk->mr) + i0 * kc, &bv, i0, mc, j0,
                                 nc, kc, beta, bias, act);
                } else {
                    pack_a(job->trans_a, job->a, job->lda, i0, mc, p0, kc, uk->mr, a_pack);
                    macro_kernel(job, a_pack, &bv, i0, mc, j0, nc, kc, beta, bias, act);
                }
                if (p0 + kc >= job->k) /* the block is finished */
                    block_done(job->ep, job->c, job->ldc, i0, mc, j0, nc);
            }
        }
        t = run_end;
    }
}

/* The K depth of the slices a product of depth k is cut into (the last
 * one may be shorter); a product barely deeper than one slice is not cut,
 * to avoid a thin last slice. */
static int64_t slice_depth(const kiln_sgemm_ukernel_t *uk, int64_t k)
{
    return k < uk->kc + uk->kc / 4 ? k : uk->kc;
}

/* The thread count a product is split for. */
static int par_threads(const kiln_gemm_parallel_t *par)
{
    return par && par->run && par->threads > 1 ? par->threads : 1;
}

/* Chooses block sizes for `threads` threads: balanced row blocks of at
 * most uk->mc, and column blocks narrow enough that there are a few tasks
 * per thread.  How many: with B packed at session creation (a MatMul
 * weight) each task packs A again, so two per thread (8 tasks cost 10-15%
 * on one thread on BERT's 128 x 3072 x 768); otherwise at least MIN_TASKS,
 * since narrower packed B slices stay in cache even on one thread.  On
 * several threads, where the columns alone do not give enough tasks (a
 * narrow C: N = 49 in a CNN's last stage) the rows are cut finer, down to
 * one register tile a block, and a small task count is made a multiple of
 * the threads, so no thread is left with one task more while the others
 * wait. */
/* Which operands the microkernels read in place, for the block sizes
 * chosen: A when a column block is only a few panels wide; B when each of
 * its panels serves few row tiles (packing it would cost about as much as
 * the multiply), or when C is narrow (the few panels stay in cache, and row
 * blocks on other threads would each pack the same slice). */
static void choose_in_place(sgemm_job_t *job)
{
    const kiln_sgemm_ukernel_t *uk = job->uk;
    job->direct_a = uk->run_direct && !job->trans_a && !job->a_packed && !g_no_direct_a &&
                    job->nc <= DIRECT_A_MAX_PANELS * uk->nr;
    job->direct_b = !job->trans_b && job->b && !job->b_panels && !job->b_packed && !g_no_direct_b &&
                    (job->m <= DIRECT_B_MAX_ROWS || job->nc <= DIRECT_B_MAX_PANELS * uk->nr);
}

/* A narrow C (a few panels: the 14x14 and 7x7 maps of a CNN at batch 1)
 * with a big A (weights that stream from memory): every column block
 * would read all of A again, so only the rows are split, into a multiple
 * of the threads whose largest share is closest to an even split. */
enum { NARROW_PANELS = 8, BIG_A_FLOATS = 256 * 1024 };

static void plan_narrow(sgemm_job_t *job, int threads)
{
    const kiln_sgemm_ukernel_t *uk = job->uk;
    int64_t tiles = (job->m + uk->mr - 1) / uk->mr, best_mc = 0;
    double best = 0, even = (double)job->m / threads;
    for (int64_t b = threads; b <= tiles && b <= 8 * (int64_t)threads; b += threads) {
        int64_t mc = round_up((job->m + b - 1) / b, uk->mr), blocks = (job->m + mc - 1) / mc;
        double most = (double)((blocks + threads - 1) / threads * mc) / even; /* the busiest thread */
        if (!best_mc || most < best - 0.02) {
            best = most;
            best_mc = mc;
        }
    }
    job->mc = best_mc ? best_mc : round_up(job->m, uk->mr);
    job->m_blocks = (job->m + job->mc - 1) / job->mc;
    job->n_blocks = 1;
    job->nc = round_up(job->n, uk->nr);
}

static void plan_blocks(sgemm_job_t *job, int threads)
{
    const kiln_sgemm_ukernel_t *uk = job->uk;
    enum { MIN_TASKS = 8, MIN_NC = 96, TASKS_PER_THREAD = 4 };
    int64_t min_tasks = job->b_packed ? 2 * (int64_t)threads
                        : TASKS_PER_THREAD * threads > MIN_TASKS ? TASKS_PER_THREAD * threads
                                                                 : MIN_TASKS;
    job->kc = slice_depth(uk, job->k);
    job->m_blocks = (job->m + uk->mc - 1) / uk->mc;
    job->n_blocks = (job->n + uk->nc - 1) / uk->nc;
    if (threads > 1 && job->n <= NARROW_PANELS * uk->nr && (double)job->m * (double)job->k >= BIG_A_FLOATS) {
        plan_narrow(job, threads);
        choose_in_place(job);
        return;
    }
    while (job->m_blocks * job->n_blocks < min_tasks && job->n / (job->n_blocks + 1) >= MIN_NC)
        job->n_blocks++;
    job->nc = round_up((job->n + job->n_blocks - 1) / job->n_blocks, uk->nr);
    job->n_blocks = (job->n + job->nc - 1) / job->nc;
    if (threads > 1) {
        int64_t tiles = (job->m + uk->mr - 1) / uk->mr;
        if (job->m_blocks * job->n_blocks < min_tasks) {
            int64_t want = (min_tasks + job->n_blocks - 1) / job->n_blocks;
            int64_t blocks = want < tiles ? want : tiles;
            if (blocks > job->m_blocks)
                job->m_blocks = blocks;
        }
        if (job->m_blocks * job->n_blocks < TASKS_PER_THREAD * threads)
            while (job->m_blocks * job->n_blocks % threads && job->m_blocks < tiles)
                job->m_blocks++;
    }
    job->mc = round_up((job->m + job->m_blocks - 1) / job->m_blocks, uk->mr);
    job->m_blocks = (job->m + job->mc - 1) / job->mc;
    choose_in_place(job);
}

/* ---- Small products: plain loops split over rows ------------------------ */

typedef struct rows_job {
    bool trans_a, trans_b;
    int64_t n, k;
    float alpha, beta;
    const float *a, *b;
    int64_t lda, ldb, ldc;
    float *c;
} rows_job_t;

static void rows_task(void *arg, int64_t begin, int64_t end)
{
    const rows_job_t *j = arg;
    reference_rows(j->trans_a, j->trans_b, begin, end, j->n, j->k, j->alpha, j->a, j->lda, j->b,
                   j->ldb, j->beta, j->c, j->ldc);
}

/* Small products and single columns: plain loops, parallel over rows. */
static void sgemm_rows(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc, const kiln_gemm_parallel_t *par)
{
    rows_job_t job = {trans_a, trans_b, n, k, alpha, beta, a, b, lda, ldb, ldc, c};
    int64_t work_per_row = n * k + 1;
    int64_t grain = 32768 / work_per_row + 1;
    parallel_run(par, m, grain, rows_task, &job);
}

/* One output row (m == 1): c = alpha * a * op(B) + beta * c, split over
 * column chunks; each chunk streams the rows (or columns) of B once. */
typedef struct row_vector_job {
    bool trans_b;
    int64_t k;
    float beta;
    const float *a_scaled; /* alpha * op(A), contiguous */
    const float *b;
    int64_t ldb;
    float *c;
} row_vector_job_t;

/* Dot product and axpy for the one-row path: AVX2 when the CPU has it. */
static float dot(const float *x, const float *y, int64_t n)
{
    if (use_simd_helpers())
        return kiln_sdot_avx2(x, y, n);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

static void axpy(float *y, const float *x, float a, int64_t n)
{
    if (use_simd_helpers()) {
        kiln_saxpy_avx2(y, x, a, n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void row_vector_task(void *arg, int64_t begin, int64_t end)
{
    const row_vector_job_t *j = arg;
    float *c = j->c;
    if (j->trans_b) {
        for (int64_t q = begin; q < end; q++) {
            float sum = dot(j->a_scaled, j->b + q * j->ldb, j->k);
            c[q] = sum + (j->beta == 0.0f ? 0.0f : j->beta * c[q]);
        }
        return;
    }
    for (int64_t q = begin; q < end; q++)
        c[q] = j->beta == 0.0f ? 0.0f : j->beta * c[q];
    for (int64_t p = 0; p < j->k; p++)
        axpy(c + begin, j->b + p * j->ldb + begin, j->a_scaled[p], end - begin);
}

static void sgemm_row_vector(bool trans_a, bool trans_b, int64_t n, int64_t k, float alpha,
                             const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                             float *c, const kiln_gemm_parallel_t *par)
{
    float *a_scaled = malloc((size_t)k * sizeof *a_scaled);
    if (!a_scaled) {
        kiln_sgemm_reference(trans_a, trans_b, 1, n, k, alpha, a, lda, b, ldb, beta, c, n);
        return;
    }
    for (int64_t p = 0; p < k; p++)
        a_scaled[p] = alpha * (trans_a ? a[p * lda] : a[p]);
    row_vector_job_t job = {trans_b, k, beta, a_scaled, b, ldb, c};
    parallel_run(par, n, 16384 / (k + 1) + 64, row_vector_task, &job);
    free(a_scaled);
}

void kiln_sgemm_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                   int64_t ldc, const kiln_sgemm_epilogue_t *ep, const kiln_gemm_parallel_t *par)
{
    const float *row_bias = ep ? ep->row_bias : NULL;
    const kiln_act_t *act = epilogue_act(ep);
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0.0f) {
        scale_rows(0, m, n, beta, c, ldc);
        apply_epilogue(c, ldc, m, n, row_bias, act);
        block_done(ep, c, ldc, 0, m, 0, n);
        return;
    }
    if (m == 1) {
        sgemm_row_vector(trans_a, trans_b, n, k, alpha, a, lda, b, ldb, beta, c, par);
        apply_epilogue(c, ldc, m, n, row_bias, act);
        block_done(ep, c, ldc, 0, m, 0, n);
        return;
    }
    if (n == 1 || m * n * k < 8 * 8 * 8) {
        sgemm_rows(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, par);
        apply_epilogue(c, ldc, m, n, row_bias, act);
        block_done(ep, c, ldc, 0, m, 0, n);
        return;
    }
    sgemm_job_t job = {.uk = choose_ukernel(), .trans_a = trans_a, .trans_b = trans_b, .m = m,
                       .n = n, .k = k, .alpha = alpha, .beta = beta, .a = a, .b = b, .lda = lda,
                       .ldb = ldb, .ldc = ldc, .c = c, .row_bias = row_bias, .act = act, .ep = ep};
    plan_blocks(&job, par_threads(par));
    parallel_run(par, job.m_blocks * job.n_blocks, 1, sgemm_tasks, &job);
}

void kiln_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc, const kiln_gemm_parallel_t *par)
{
    kiln_sgemm_ex(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, par);
}

int kiln_sgemm_panel_width(void)
{
    return choose_ukernel()->nr;
}

size_t kiln_sgemm_packed_a_floats(int64_t m, int64_t k)
{
    return (size_t)(round_up(m, choose_ukernel()->mr) * k);
}

void kiln_sgemm_pack_a(int64_t m, int64_t k, const float *a, int64_t lda, float *dst)
{
    const kiln_sgemm_ukernel_t *uk = choose_ukernel();
    int64_t depth = slice_depth(uk, k), m_pad = round_up(m, uk->mr);
    for (int64_t p0 = 0; p0 < k; p0 += depth) {
        int64_t kc = min64(depth, k - p0);
        pack_a(false, a, lda, 0, m, p0, kc, uk->mr, dst + p0 * m_pad);
    }
}

void kiln_sgemm_packed_b(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *a_packed, const float *b_panels, float beta,
                         float *c, int64_t ldc, const kiln_sgemm_epilogue_t *ep,
                         const kiln_gemm_parallel_t *par)
{
    const float *row_bias = ep ? ep->row_bias : NULL;
    const kiln_act_t *act = epilogue_act(ep);
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0.0f) {
        scale_rows(0, m, n, beta, c, ldc);
        apply_epilogue(c, ldc, m, n, row_bias, act);
        block_done(ep, c, ldc, 0, m, 0, n);
        return;
    }
    sgemm_job_t job = {.uk = choose_ukernel(), .m = m, .n = n, .k = k, .alpha = alpha,
                       .beta = beta, .a = a, .lda = lda, .ldc = ldc, .c = c, .b_panels = b_panels,
                       .a_packed = a_packed, .row_bias = row_bias, .act = act, .ep = ep};
    plan_blocks(&job, par_threads(par));
    parallel_run(par, job.m_blocks * job.n_blocks, 1, sgemm_tasks, &job);
}

void kiln_sgemm_prepacked_a(int64_t m, int64_t n, int64_t k, const float *a_packed, const float *b, int64_t ldb,
                            float *c, int64_t ldc, const kiln_sgemm_epilogue_t *ep, const kiln_gemm_parallel_t *par)
{
    const float *row_bias = ep ? ep->row_bias : NULL;
    const kiln_act_t *act = epilogue_act(ep);
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        scale_rows(0, m, n, 0.0f, c, ldc);
        apply_epilogue(c, ldc, m, n, row_bias, act);
        block_done(ep, c, ldc, 0, m, 0, n);
        return;
    }
    sgemm_job_t job = {.uk = choose_ukernel(), .m = m, .n = n, .k = k, .alpha = 1.0f, .beta = 0.0f, .b = b,
                       .ldb = ldb, .ldc = ldc, .c = c, .a_packed = a_packed, .row_bias = row_bias, .act = act,
                       .ep = ep};
    plan_blocks(&job, par_threads(par));
    parallel_run(par, job.m_blocks * job.n_blocks, 1, sgemm_tasks, &job);
}

/* ---- Prepacked B -------------------------------------------------------- */

/* Whether kiln_sgemm_prepacked takes the blocked path for these sizes (the
 * others read the source B). */
static bool prepacked_blocked(int64_t m, int64_t n, int64_t k)
{
    return m > 1 && n > 1 && k > 0 && m * n * k >= 8 * 8 * 8;
}

size_t kiln_sgemm_packed_b_size(int64_t k, int64_t n)
{
    return (size_t)(round_up(n, choose_ukernel()->nr) * k) * sizeof(float);
}

kiln_sgemm_packed_b_t *kiln_sgemm_pack_b_into(bool trans_b, int64_t k, int64_t n, const float *b, int64_t ldb,
                                              float *storage, float *scratch)
{
    if (k <= 0 || n <= 1)
        return NULL;
    kiln_sgemm_packed_b_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->uk = choose_ukernel();
    p->k = k;
    p->n = n;
    p->n_padded = round_up(n, p->uk->nr);
    p->trans_b = trans_b;
    p->b = b;
    p->ldb = ldb;
    p->bytes = (size_t)(p->n_padded * k) * sizeof(float);
    p->panels = storage;
    float *dst = scratch ? scratch : storage;
    /* the slice depths plan_blocks will choose for this k */
    sgemm_job_t job = {.uk = p->uk, .m = 2, .n = n, .k = k};
    plan_blocks(&job, 1);
    for (int64_t p0 = 0; p0 < k; p0 += job.kc) {
        int64_t kc = min64(job.kc, k - p0);
        pack_b(trans_b, b, ldb, p0, kc, 0, n, p->uk->nr, dst + p0 * p->n_padded);
    }
    if (scratch)
        memcpy(storage, scratch, p->bytes);
    if ((const float *)storage == b)
        p->b = NULL; /* overwritten by the panels */
    return p;
}

kiln_sgemm_packed_b_t *kiln_sgemm_pack_b(bool trans_b, int64_t k, int64_t n, const float *b, int64_t ldb)
{
    if (k <= 0 || n <= 1)
        return NULL;
    size_t bytes = kiln_sgemm_packed_b_size(k, n);
    float *storage = kiln_big_alloc(bytes);
    kiln_sgemm_packed_b_t *p = storage ? kiln_sgemm_pack_b_into(trans_b, k, n, b, ldb, storage, NULL) : NULL;
    if (!p)
        free(storage);
    return p;
}

void kiln_sgemm_packed_b_forget_source(kiln_sgemm_packed_b_t *p)
{
    p->b = NULL;
}

size_t kiln_sgemm_packed_b_bytes(const kiln_sgemm_packed_b_t *p)
{
    return p ? p->bytes : 0;
}

void kiln_sgemm_packed_b_free(kiln_sgemm_packed_b_t *p)
{
    if (!p)
        return;
    free(p->panels);
    free(p);
}

void kiln_sgemm_prepacked(int64_t m, float alpha, const float *a, int64_t lda, const kiln_sgemm_packed_b_t *b,
                          float beta, float *c, int64_t ldc, const kiln_gemm_parallel_t *par)
{
    kiln_sgemm_prepacked_ex(m, alpha, a, lda, b, beta, c, ldc, NULL, par);
}

void kiln_sgemm_prepacked_ex(int64_t m, float alpha, const float *a, int64_t lda, const kiln_sgemm_packed_b_t *b,
                             float beta, float *c, int64_t ldc, const kiln_sgemm_epilogue_t *ep,
                             const kiln_gemm_parallel_t *par)
{
    if (m <= 0)
        return;
    if (alpha == 0.0f) {
        scale_rows(0, m, b->n, beta, c, ldc);
        apply_epilogue(c, ldc, m, b->n, ep ? ep->row_bias : NULL, epilogue_act(ep));
        block_done(ep, c, ldc, 0, m, 0, b->n);
        return;
    }
    if (b->b && !prepacked_blocked(m, b->n, b->k)) { /* one row, tiny volumes: the plain paths */
        kiln_sgemm_ex(false, b->trans_b, m, b->n, b->k, alpha, a, lda, b->b, b->ldb, beta, c, ldc, ep, par);
        return;
    }
    sgemm_job_t job = {.uk = b->uk, .trans_b = b->trans_b, .m = m, .n = b->n, .k = b->k, .alpha = alpha,
                       .beta = beta, .a = a, .b = b->b, .lda = lda, .ldb = b->ldb, .ldc = ldc, .c = c,
                       .b_packed = b, .row_bias = ep ? ep->row_bias : NULL, .act = epilogue_act(ep), .ep = ep};
    plan_blocks(&job, par_threads(par));
    parallel_run(par, job.m_blocks * job.n_blocks, 1, sgemm_tasks, &job);
}

/* ---- Double precision --------------------------------------------------- */

typedef struct dgemm_job {
    bool trans_a, trans_b;
    int64_t n, k;
    double alpha, beta;
    const double *a, *b;
    int64_t lda, ldb, ldc;
    double *c;
} dgemm_job_t;

static void dgemm_rows(void *arg, int64_t begin, int64_t end)
{
    const dgemm_job_t *j = arg;
    for (int64_t i = begin; i < end; i++) {
        double *crow = j->c + i * j->ldc;
        for (int64_t q = 0; q < j->n; q++)
            crow[q] = j->beta == 0.0 ? 0.0 : j->beta * crow[q];
        for (int64_t p = 0; p < j->k; p++) {
            double av = j->alpha * (j->trans_a ? j->a[p * j->lda + i] : j->a[i * j->lda + p]);
            for (int64_t q = 0; q < j->n; q++)
                crow[q] += av * (j->trans_b ? j->b[q * j->ldb + p] : j->b[p * j->ldb + q]);
        }
    }
}

void kiln_dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                double *c, int64_t ldc, const kiln_gemm_parallel_t *par)
{
    dgemm_job_t job = {trans_a, trans_b, n, k, alpha, beta, a, b, lda, ldb, ldc, c};
    parallel_run(par, m, 32768 / (n * k + 1) + 1, dgemm_rows, &job);
}
