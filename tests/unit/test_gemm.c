/*
 * test_gemm.c - checks kiln_sgemm (blocked, microkernel path chosen at run
 * time, threaded) against kiln_sgemm_reference on odd sizes, every
 * transpose combination, leading dimensions wider than the matrix and
 * alpha/beta variants, including beta == 0 over a C full of NaN.  The same
 * sizes run again with AVX-512 avoided (the AVX2 kernel) and with the
 * portable microkernel forced; kiln_sgemm_packed_b (B given as panels) and
 * the bias + ReLU epilogue are checked on the same sizes.
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
    kiln_sgemm_epilogue_t ep = {.row_bias = bias, .relu = true};
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
    kiln_sgemm_epilogue_t ep = {.row_bias = bias, .relu = true};
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

static void check_sizes(kiln_threadpool_t *pool)
{
    static const int64_t sizes[][3] = {{1, 1, 1},    {7, 13, 5},    {129, 65, 257},
                                       {1, 300, 40}, {300, 1, 40},  {6, 16, 1},
                                       {17, 33, 600}, {200, 500, 70}, {5, 2100, 3},
                                       {100, 49, 300}, {37, 20, 64}};
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
    kiln_sgemm_avoid_direct_a(true); /* A always packed */
    check_sizes(pool);
    kiln_sgemm_avoid_direct_a(false);
    kiln_sgemm_avoid_avx512(true); /* the AVX2 kernel too, on an AVX-512 CPU */
    check_sizes(pool);
    kiln_sgemm_avoid_avx512(false);
    kiln_sgemm_force_portable(true);
    check_sizes(pool);
    kiln_sgemm_force_portable(false);
    kiln_threadpool_free(pool);
    return check_finish();
}
