/*
 * gemm.h - kiln's single-precision matrix multiply, shared by Conv, Gemm,
 * MatMul and the fused kernels:
 *
 *     C = alpha * op(A) * op(B) + beta * C
 *
 * op(A) is M x K, op(B) is K x N, C is M x N; all row-major with leading
 * dimensions lda, ldb, ldc (elements between the starts of two rows).
 * trans_a means A is stored K x M (op(A) = A^T), likewise trans_b.  As in
 * BLAS, beta == 0 means C is written without being read (NaNs in C do not
 * leak through).
 *
 * Two paths: a portable C reference (kiln_sgemm_reference) and a blocked
 * path that packs panels of A and B and runs a register-tile microkernel
 * (AVX-512F 12x32 or AVX2+FMA 6x16, whichever the CPU has).  kiln_sgemm picks at run time and
 * splits the output over threads through a kiln_gemm_parallel_t, so it can
 * be called from a kernel (kiln_gemm_parallel_ctx) or from anywhere with a
 * thread pool (kiln_gemm_parallel_pool) or single-threaded (NULL).
 */
#ifndef KILN_OPS_GEMM_H
#define KILN_OPS_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/threadpool.h"

struct kiln_kernel_ctx;

/* How kiln_sgemm runs work in parallel: run(ctx, n, grain, fn, arg) must
 * call fn over [0, n) split into chunks (any split, any threads) and return
 * when all are done.  threads is how many threads run may use (0: unknown);
 * the GEMM cuts its output into a number of tasks those threads share
 * evenly. */
typedef void (*kiln_gemm_run_fn)(void *ctx, int64_t n, int64_t grain, kiln_range_fn fn, void *arg);
typedef struct kiln_gemm_parallel {
    kiln_gemm_run_fn run;
    void *ctx;
    int threads; /* how many threads run() spreads over (0 or 1: one); sizes the task split */
} kiln_gemm_parallel_t;

/* Parallel runners over a kernel's session threads or over a thread pool
 * (pool may be NULL: inline). */
kiln_gemm_parallel_t kiln_gemm_parallel_ctx(struct kiln_kernel_ctx *ctx);
kiln_gemm_parallel_t kiln_gemm_parallel_pool(kiln_threadpool_t *pool);

/* The activations kiln's fused kernels apply to their output (fused.c's
 * `activation` attribute).  The first six are cheap enough to run inside
 * the GEMM microkernels' and the depthwise kernels' stores
 * (kiln_act_in_stores); the others run as a pass over finished blocks. */
typedef enum kiln_act_kind {
    KILN_ACT_NONE,
    KILN_ACT_RELU,         /* x > 0 ? x : 0 (NaN -> 0, as the Relu op) */
    KILN_ACT_CLIP,         /* min(max(x, alpha), beta) as numpy.clip: NaN passes, beta wins */
    KILN_ACT_LEAKY_RELU,   /* x < 0 ? alpha * x : x */
    KILN_ACT_HARD_SIGMOID, /* clamp(alpha * x + beta, 0, 1), NaN passes */
    KILN_ACT_HARD_SWISH,   /* x * clamp(x / 6 + 1/2, 0, 1), NaN passes */
    KILN_ACT_SIGMOID,
    KILN_ACT_TANH,
    KILN_ACT_GELU
} kiln_act_kind_t;

/* One activation with its parameters (Clip's min and max, LeakyRelu's
 * alpha, HardSigmoid's alpha and beta; unused ones ignored). */
typedef struct kiln_act {
    kiln_act_kind_t kind;
    float alpha, beta;
} kiln_act_t;

/* Whether kind runs in the microkernels' stores (NONE included). */
static inline bool kiln_act_in_stores(kiln_act_kind_t kind)
{
    return kind <= KILN_ACT_HARD_SWISH;
}

/* One value through an in-stores activation (kind <= HARD_SWISH): the
 * scalar definition every vector path matches, NaN and inf included. */
static inline float kiln_act_scalar(const kiln_act_t *act, float x)
{
    switch (act->kind) {
    case KILN_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case KILN_ACT_CLIP: {
        float v = x < act->alpha ? act->alpha : x;
        return v > act->beta ? act->beta : v;
    }
    case KILN_ACT_LEAKY_RELU:
        return x < 0.0f ? act->alpha * x : x;
    case KILN_ACT_HARD_SIGMOID: {
        float v = act->alpha * x + act->beta;
        return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
    case KILN_ACT_HARD_SWISH: {
        float v = x * (1.0f / 6.0f) + 0.5f;
        return x * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);
    }
    default:
        return x;
    }
}

/* What kiln_sgemm_ex does to C after the product, fused into the
 * microkernel's stores: C = alpha*op(A)*op(B) + beta*C + row_bias[i] on
 * row i (row_bias NULL: none), then act (kind NONE: none; only kinds
 * kiln_act_in_stores accepts).  Conv uses it for its bias; fused
 * Conv+activation kernels for both. */
typedef struct kiln_sgemm_epilogue {
    const float *row_bias;
    kiln_act_t act;
    /* Then, when not NULL, block(block_arg, c, ldc, i0, rows, j0, cols) on
     * each finished rows x cols block of C at row i0, column j0 (c and ldc
     * as passed to the GEMM), on the thread that computed it while the
     * block is still in cache: FusedConv's residual sum and activation. */
    void (*block)(void *arg, float *c, int64_t ldc, int64_t i0, int64_t rows, int64_t j0, int64_t cols);
    void *block_arg;
} kiln_sgemm_epilogue_t;

/* The fast path, chosen at run time; par may be NULL (one thread). */
void kiln_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc, const kiln_gemm_parallel_t *par);

/* kiln_sgemm with an epilogue (ep may be NULL). */
void kiln_sgemm_ex(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                   int64_t ldc, const kiln_sgemm_epilogue_t *ep, const kiln_gemm_parallel_t *par);

/* The fast path with B supplied already packed, for callers that can lay
 * out B themselves (Conv writes its im2col straight into this form):
 * B is k x n, not transposed, stored as ceil(n / W) panels of W columns,
 * W = kiln_sgemm_panel_width(); panel s holds rows 0..k-1 of columns
 * [s*W, s*W + W), W floats per row (columns past n are ignored), panels
 * one after another (k * W floats each).  b_panels must be 64-byte
 * aligned.  A is m x k row-major (not transposed). */
int kiln_sgemm_panel_width(void);
void kiln_sgemm_packed_b(int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *a_packed, const float *b_panels, float beta,
                         float *c, int64_t ldc, const kiln_sgemm_epilogue_t *ep,
                         const kiln_gemm_parallel_t *par);

/* Packs all of a row-major m x k A (not transposed) once into the
 * microkernel's layout, for callers that multiply it by many B blocks
 * (Conv's im2col blocks): pass the result as a_packed to
 * kiln_sgemm_packed_b (a and lda are then not read).  dst holds
 * kiln_sgemm_packed_a_floats(m, k) floats, 64-byte aligned. */
size_t kiln_sgemm_packed_a_floats(int64_t m, int64_t k);
void kiln_sgemm_pack_a(int64_t m, int64_t k, const float *a, int64_t lda, float *dst);
/* C = A * B (+ the epilogue) with A packed by kiln_sgemm_pack_a (m x k)
 * and B a plain row-major k x n matrix (ldb), packed per call as
 * kiln_sgemm does; for a pointwise Conv whose weights are packed once. */
void kiln_sgemm_prepacked_a(int64_t m, int64_t n, int64_t k, const float *a_packed, const float *b, int64_t ldb,
                            float *c, int64_t ldc, const kiln_sgemm_epilogue_t *ep, const kiln_gemm_parallel_t *par);

/* B packed once for many products (a MatMul weight): the micro-panels
 * kiln_sgemm would otherwise pack from op(B) (k x n) on every call, laid
 * out for the microkernel chosen now.  One-row and tiny products still read
 * the source b (the plain paths are faster there) until
 * kiln_sgemm_packed_b_forget_source() says it is gone; then everything runs
 * from the panels.  NULL when out of memory or n <= 1 (not worth packing).
 * Free with kiln_sgemm_packed_b_free. */
typedef struct kiln_sgemm_packed_b kiln_sgemm_packed_b_t;
kiln_sgemm_packed_b_t *kiln_sgemm_pack_b(bool trans_b, int64_t k, int64_t n, const float *b, int64_t ldb);
/* The same into storage (64-byte aligned, kiln_sgemm_packed_b_size()
 * bytes), which the result owns from then on (free()d with it).  With a
 * scratch of that size the panels are packed there and copied in at the
 * end, so storage may be b's own memory (a weight replaced in place; the
 * source is forgotten then).  NULL when out of memory (storage untouched). */
size_t kiln_sgemm_packed_b_size(int64_t k, int64_t n);
kiln_sgemm_packed_b_t *kiln_sgemm_pack_b_into(bool trans_b, int64_t k, int64_t n, const float *b, int64_t ldb,
                                              float *storage, float *scratch);
void kiln_sgemm_packed_b_forget_source(kiln_sgemm_packed_b_t *p);
void kiln_sgemm_packed_b_free(kiln_sgemm_packed_b_t *p);
size_t kiln_sgemm_packed_b_bytes(const kiln_sgemm_packed_b_t *p);
/* C = alpha * A * B + beta * C with B prepacked (A is m x k, row-major,
 * not transposed); same contract as kiln_sgemm otherwise. */
void kiln_sgemm_prepacked(int64_t m, float alpha, const float *a, int64_t lda, const kiln_sgemm_packed_b_t *b,
                          float beta, float *c, int64_t ldc, const kiln_gemm_parallel_t *par);
/* The same with an epilogue (ep may be NULL). */
void kiln_sgemm_prepacked_ex(int64_t m, float alpha, const float *a, int64_t lda, const kiln_sgemm_packed_b_t *b,
                             float beta, float *c, int64_t ldc, const kiln_sgemm_epilogue_t *ep,
                             const kiln_gemm_parallel_t *par);

/* The portable reference: plain loops, single-threaded. */
void kiln_sgemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float beta, float *c, int64_t ldc);

/* Double precision (portable loops, parallel over rows); used for the
 * float64 variants of Conv/Gemm/MatMul. */
void kiln_dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                double *c, int64_t ldc, const kiln_gemm_parallel_t *par);

/* A per-thread scratch buffer of at least bytes (64-byte aligned) for
 * slot, reused by later calls on the same thread and freed when the thread
 * exits; NULL when out of memory.  The pointer stays valid until the next
 * call for the same slot on this thread. */
enum {
    KILN_SCRATCH_PACK_A = 0, /* kiln_sgemm's packed A block */
    KILN_SCRATCH_PACK_B = 1, /* kiln_sgemm's packed B slice */
    KILN_SCRATCH_IM2COL = 2, /* Conv's column matrix */
    KILN_SCRATCH_WEIGHTS = 3, /* Conv's packed weights */
    KILN_SCRATCH_CONV_OUT = 4, /* Conv's output block that spans images, before the scatter */
    KILN_SCRATCH_SLOTS = 5
};
void *kiln_gemm_scratch(int slot, size_t bytes);

/* Which microkernel kiln_sgemm uses: "avx512", "avx2" or "portable".
 * For tests and benchmarks: force_portable makes kiln_sgemm use the
 * blocked path with the portable C microkernel; avoid_avx512 keeps it on
 * AVX2 on a CPU that has AVX-512. */
const char *kiln_sgemm_path(void);
void kiln_sgemm_force_portable(bool force_portable);
void kiln_sgemm_avoid_avx512(bool avoid);
/* For tests: always pack A, even where the kernel could read it in place. */
void kiln_sgemm_avoid_direct_a(bool avoid);
/* For tests and benchmarks: always pack B, even where the kernel could read it in place. */
void kiln_sgemm_avoid_direct_b(bool avoid);

#endif
