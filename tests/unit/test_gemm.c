/*
 * test_gemm.c - checks kiln_sgemm (blocked, microkernel path chosen at run
 * time, threaded; A and B read in place or packed) against
 * kiln_sgemm_reference on odd sizes, every
 * transpose combination, leading dimensions wider than the matrix and
 * alpha/beta variants, including beta == 0 over a C full of NaN.  The same
 * sizes run again with AVX-512 avoided (the AVX2 kernel) and with the
 * portable microkernel forced; kiln_sgemm_packed_b (B given as panels) and
 * the bias + ReLU epilogue are checked on the same sizes.  Every in-stores
 * activation (Relu, Clip, LeakyRelu, HardSigmoid, HardSwish) is checked on
 * each path (the blocked microkernels with full and edge tiles and several
 * K slices, direct A, B panels, prepacked B, the one-row and tiny-product
 * loops) against kiln_act_scalar on the reference, with NaN, +inf and -inf
 * among the values it is applied to: they must come out exactly as the
 * scalar definition says.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/gemm.h"

static float rand_float(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *random_matrix(int64_t count, unsigned *state)
{
    float *m = malloc((size_t)count * sizeof *m);
    for (int64_t i = 0; i < count; i++)
        m[i] = rand_float(state);
    return m;
}

/* Largest |x - y| relative to the magnitude of the dot products (k). */
static double max_error(const float *x, const float *y, int64_t m, int64_t n, int64_t ldc)
{
    double worst = 0.0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double d = fabs((double)x[i * ldc + j] - (double)y[i * ldc + j]);
            if (!(d <= worst))
                worst = isnan(d) ? INFINITY : d;
        }
    return worst;
}

static void check_case(int64_t m, int64_t n, int64_t k, bool ta, bool tb, float alpha, float beta,
                       kiln_threadpool_t *pool)
{
    unsigned state = (unsigned)(m * 131 + n * 17 + k * 7 + ta * 3 + tb);
    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 5;
    float *a = random_matrix((ta ? k : m) * lda, &state);
    float *b = random_matrix((tb ? n : k) * ldb, &state);
    float *c0 = random_matrix(m * ldc, &state);
    float *c1 = malloc((size_t)(m * ldc) * sizeof *c1);
    memcpy(c1, c0, (size_t)(m * ldc) * sizeof *c1);
    if (beta == 0.0f)
        for (int64_t i = 0; i < m * ldc; i++)
            c1[i] = NAN; /* must not be read */
    kiln_gemm_parallel_t par = kiln_gemm_parallel_pool(pool);
    kiln_sgemm_reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc);
    kiln_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc, pool ? &par : NULL);
    double tol = 1e-5 * (double)(k + 1) * (fabs(alpha) + 1.0);
    double err = max_error(c0, c1, m, n, ldc);
    CHECK_MSG(err <= tol, "%s m=%lld n=%lld k=%lld ta=%d tb=%d alpha=%g beta=%g: error %g",
              kiln_sgemm_path(), (long long)m, (long long)n, (long long)k, ta, tb, alpha, beta,
              err);
    free(a);
    free(b);
    free(c0);
    free(c1);
}

/* The reference result plus a row bias, then ReLU: what an epilogue makes. */
static void reference_epilogue(float *c, int64_t m, int64_t n, int64_t ldc, const float *bias)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float v = c[i * ldc + j] + bias[i];
            c[i * ldc + j] = v < 0.0f ? 0.0f : v;
        }
}

/* kiln_sgemm_ex with a bias + ReLU epilogue against reference + a pass. */
static void check_epilogue(int64_t m, int64_t n, int64_t k, bool ta, bool tb, float beta,
                           kiln_threadpool_t *pool)
{
    unsigned state = (unsigned)(m * 5 + n * 11 + k * 13 + ta * 2 + tb);
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    float *a = random_matrix((ta ? k : m) * lda, &state);
    float *b = random_matrix((tb ? n : k) * ldb, &state);
    float *bias = random_matrix(m, &state);
    float *c0 = random_matrix(m * n, &state), *c1 = malloc((size_t)(m * n) * sizeof *c1);
    memcpy(c1, c0, (size_t)(m * n) * sizeof *c1);
    kiln_gemm_parallel_t par = kiln_gemm_parallel_pool(pool);
    kiln_sgemm_reference(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c0, n);
    reference_epilogue(c0, m, n, n, bias);
    kiln_sgemm_epilogue_t ep = {.row_bias = bias, .act = {KILN_ACT_RELU, 0.0f, 0.0f}};
    kiln_sgemm_ex(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c1, n, &ep, &par);
    double err = max_error(c0, c1, m, n, n);
    CHECK_MSG(err <= 1e-5 * (double)(k + 1) * 2.0, "epilogue %s m=%lld n=%lld k=%lld ta=%d tb=%d: error %g",
              kiln_sgemm_path(), (long long)m, (long long)n, (long long)k, ta, tb, err);
    free(a);
    free(b);
    free(bias);
    free(c0);
    free(c1);
}

/* kiln_sgemm_packed_b against the reference, B laid out in panels here. */
static void check_packed_b(int64_t m, int64_t n, int64_t k, float beta, kiln_threadpool_t *pool)
{
    unsigned state = (unsigned)(m * 7 + n * 3 + k);
    int64_t w = kiln_sgemm_panel_width(), panels = (n + w - 1) / w;
    float *a = random_matrix(m * k, &state), *b = random_matrix(k * n, &state);
    float *c0 = random_matrix(m * n, &state), *c1 = malloc((size_t)(m * n) * sizeof *c1);
    float *bp = aligned_alloc(64, (size_t)(panels * w * k) * sizeof *bp);
    memcpy(c1, c0, (size_t)(m * n) * sizeof *c1);
    for (int64_t s = 0; s < panels; s++)
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < w; j++)
                bp[(s * k + p) * w + j] = s * w + j < n ? b[p * n + s * w + j] : 12345.0f;
    kiln_gemm_parallel_t par = kiln_gemm_parallel_pool(pool);
    float *bias = random_matrix(m, &state);
    kiln_sgemm_epilogue_t ep = {.row_bias = bias, .act = {KILN_ACT_RELU, 0.0f, 0.0f}};
    bool with_epilogue = beta != 0.0f; /* half the calls test the epilogue too */
    kiln_sgemm_reference(false, false, m, n, k, 1.5f, a, k, b, n, beta, c0, n);
    if (with_epilogue)
        reference_epilogue(c0, m, n, n, bias);
    /* half the calls also hand over A packed in advance */
    float *ap = aligned_alloc(64, (kiln_sgemm_packed_a_floats(m, k) * sizeof(float) + 63) / 64 * 64);
    kiln_sgemm_pack_a(m, k, a, k, ap);
    kiln_sgemm_packed_b(m, n, k, 1.5f, a, k, with_epilogue ? NULL : ap, bp, beta, c1, n,
                        with_epilogue ? &ep : NULL, &par);
    free(ap);
    free(bias);
    double err = max_error(c0, c1, m, n, n);
    CHECK_MSG(err <= 1e-5 * (double)(k + 1) * 2.5, "packed_b %s m=%lld n=%lld k=%lld: error %g",
              kiln_sgemm_path(), (long long)m, (long long)n, (long long)k, err);
    free(a);
    free(b);
    free(c0);
    free(c1);
    free(bp);
}

/* Same NaN-ness, same infinities, finite values within tol. */
static bool same_value(float want, float got, double tol)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got))
        return want == got;
    return fabs((double)want - got) <= tol;
}

/* The activations the stores apply, with parameters. */
static const kiln_act_t STORE_ACTS[] = {
    {KILN_ACT_RELU, 0.0f, 0.0f},        {KILN_ACT_CLIP, 0.0f, 6.0f},      {KILN_ACT_CLIP, -0.5f, 0.25f},
    {KILN_ACT_CLIP, 1.0f, -1.0f},       {KILN_ACT_LEAKY_RELU, 0.1f, 0.0f}, {KILN_ACT_HARD_SIGMOID, 0.2f, 0.5f},
    {KILN_ACT_HARD_SWISH, 0.0f, 0.0f},
};

/* C = A*B + bias, then act, through kiln_sgemm_ex (and, for B not
 * transposed, kiln_sgemm_packed_b and kiln_sgemm_prepacked_ex), against
 * the reference: rows 0-2 of A start with NaN, +inf and -inf so those rows
 * of C are NaN and +-inf; row 3's bias is +inf. */
static void check_act(int64_t m, int64_t n, int64_t k, bool tb, const kiln_act_t *act, kiln_threadpool_t *pool)
{
    unsigned state = (unsigned)(m * 3 + n * 5 + k * 7 + act->kind);
    int64_t ldb = tb ? k : n;
    float *a = random_matrix(m * k, &state), *b = random_matrix(k * n, &state);
    float *bias = random_matrix(m, &state);
    float *want = malloc((size_t)(m * n) * sizeof *want), *got = malloc((size_t)(m * n) * sizeof *got);
    static const float specials[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3 && i < m; i++)
        a[i * k] = specials[i];
    if (m > 3)
        bias[3] = INFINITY;
    for (int64_t q = 0; q < k * n; q++) /* no zeros in B: inf * 0 would make NaN */
        if (b[q] == 0.0f)
            b[q] = 0.5f;
    kiln_sgemm_reference(false, tb, m, n, k, 1.0f, a, k, b, ldb, 0.0f, want, n);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            want[i * n + j] = kiln_act_scalar(act, want[i * n + j] + bias[i]);
    kiln_gemm_parallel_t par = kiln_gemm_parallel_pool(pool);
    kiln_sgemm_epilogue_t ep = {.row_bias = bias, .act = *act};
    double tol = 1e-5 * (double)(k + 1) * 4.0;
    for (int how = 0; how < 3; how++) {
        if (how > 0 && tb)
            break;
        for (int64_t q = 0; q < m * n; q++)
            got[q] = NAN; /* beta 0: not read */
        const char *name = "sgemm_ex";
        if (how == 0) {
            kiln_sgemm_ex(false, tb, m, n, k, 1.0f, a, k, b, ldb, 0.0f, got, n, &ep, &par);
        } else if (how == 1) {
            name = "packed_b";
            int64_t w = kiln_sgemm_panel_width(), panels = (n + w - 1) / w;
            float *bp = aligned_alloc(64, (size_t)(panels * w * k) * sizeof *bp);
            for (int64_t sp = 0; sp < panels; sp++)
                for (int64_t p = 0; p < k; p++)
                    for (int64_t j = 0; j < w; j++)
                        bp[(sp * k + p) * w + j] = sp * w + j < n ? b[p * n + sp * w + j] : 0.0f;
            kiln_sgemm_packed_b(m, n, k, 1.0f, a, k, NULL, bp, 0.0f, got, n, &ep, &par);
            free(bp);
        } else {
            name = "prepacked";
            kiln_sgemm_packed_b_t *pb = kiln_sgemm_pack_b(false, k, n, b, n);
            if (!pb) { /* n <= 1: not packed */
                kiln_sgemm_ex(false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, got, n, &ep, &par);
            } else {
                kiln_sgemm_packed_b_forget_source(pb); /* every size from the panels */
                kiln_sgemm_prepacked_ex(m, 1.0f, a, k, pb, 0.0f, got, n, &ep, &par);
                kiln_sgemm_packed_b_free(pb);
            }
        }
        int64_t bad = -1;
        for (int64_t q = 0; q < m * n && bad < 0; q++)
            if (!same_value(want[q], got[q], tol))
                bad = q;
        CHECK_MSG(bad < 0, "act %d (%g, %g) %s %s m=%lld n=%lld k=%lld tb=%d: [%lld] want %g got %g", act->kind,
                  act->alpha, act->beta, name, kiln_sgemm_path(), (long long)m, (long long)n, (long long)k, tb,
                  (long long)bad, bad < 0 ? 0.0 : want[bad], bad < 0 ? 0.0 : got[bad]);
    }
    free(a);
    free(b);
    free(bias);
    free(want);
    free(got);
}

static void check_acts(kiln_threadpool_t *pool)
{
    /* full and edge tiles, two K slices, direct A (narrow C), one row, tiny */
    static const int64_t sizes[][3] = {{24, 64, 40}, {13, 37, 20}, {30, 100, 300}, {40, 48, 9},
                                       {1, 70, 30},  {4, 3, 2},    {7, 1, 12}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t i = 0; i < sizeof STORE_ACTS / sizeof STORE_ACTS[0]; i++)
            for (int tb = 0; tb < 2; tb++)
                check_act(sizes[s][0], sizes[s][1], sizes[s][2], tb, &STORE_ACTS[i], pool);
    /* the scalar definition itself on the special values */
    kiln_act_t clip = {KILN_ACT_CLIP, 0.0f, 6.0f}, relu = {KILN_ACT_RELU, 0.0f, 0.0f};
    CHECK(isnan(kiln_act_scalar(&clip, NAN)));
    CHECK(kiln_act_scalar(&clip, INFINITY) == 6.0f && kiln_act_scalar(&clip, -INFINITY) == 0.0f);
    CHECK(kiln_act_scalar(&relu, NAN) == 0.0f && kiln_act_scalar(&relu, -INFINITY) == 0.0f);
    CHECK(kiln_act_in_stores(KILN_ACT_HARD_SWISH) && !kiln_act_in_stores(KILN_ACT_SIGMOID));
}

static void check_sizes(kiln_threadpool_t *pool)
{
    static const int64_t sizes[][3] = {{1, 1, 1},    {7, 13, 5},    {129, 65, 257},
                                       {1, 300, 40}, {300, 1, 40},  {6, 16, 1},
                                       {17, 33, 600}, {200, 500, 70}, {5, 2100, 3},
                                       {100, 49, 300}, {37, 20, 64},
                                       /* a narrow C with a big A: only rows are split */
                                       {260, 49, 1100}};
    static const float alphas[] = {1.0f, 0.5f};
    static const float betas[] = {0.0f, 1.0f, -0.25f};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        check_packed_b(sizes[s][0], sizes[s][1], sizes[s][2], 0.0f, pool);
        check_packed_b(sizes[s][0], sizes[s][1], sizes[s][2], 0.5f, pool);
        for (int t = 0; t < 4; t++) {
            check_epilogue(sizes[s][0], sizes[s][1], sizes[s][2], t & 1, t >> 1, 0.0f, pool);
            check_epilogue(sizes[s][0], sizes[s][1], sizes[s][2], t & 1, t >> 1, 0.5f, pool);
        }
    }
    check_acts(pool);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (size_t ai = 0; ai < 2; ai++)
                for (size_t bi = 0; bi < 3; bi++)
                    check_case(sizes[s][0], sizes[s][1], sizes[s][2], t & 1, t >> 1, alphas[ai],
                               betas[bi], pool);
}

int main(void)
{
    kiln_threadpool_t *pool = kiln_threadpool_create(3);
    check_sizes(NULL);
    check_sizes(pool);
    kiln_sgemm_avoid_direct_a(true); /* A and B always packed */
    kiln_sgemm_avoid_direct_b(true);
    check_sizes(pool);
    kiln_sgemm_avoid_direct_a(false);
    kiln_sgemm_avoid_direct_b(false);
    kiln_sgemm_avoid_avx512(true); /* the AVX2 kernel too, on an AVX-512 CPU */
    check_sizes(pool);
    kiln_sgemm_avoid_avx512(false);
    kiln_sgemm_force_portable(true);
    check_sizes(pool);
    kiln_sgemm_force_portable(false);
    kiln_threadpool_free(pool);
    return check_finish();
}
