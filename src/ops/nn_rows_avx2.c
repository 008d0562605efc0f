/*
 * nn_rows_avx2.c - AVX2 versions of the row primitives in nn_rows.h.
 * Unit stride loads 8 floats; stride 2 loads 16 and keeps the even ones
 * (the common stride-2 windows of CNNs); other strides use plain loops.
 * Compiled with -mavx2 -mfma; nn_rows.c calls these after a CPU check.
 */
#include <immintrin.h>

#include "ops/nn_rows.h"

/* The 8 even-indexed floats of x[0..16). */
static inline __m256 load_even(const float *x)
{
    __m256 lo = _mm256_loadu_ps(x), hi = _mm256_loadu_ps(x + 8);
    __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)); /* lanes: a0 a2 b0 b2 | a4 a6 b4 b6 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
}

void kiln_row_axpy_avx2(float *y, const float *x, int64_t stride, float a, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    if (stride == 1) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    } else if (stride == 2) {
        /* the last even element read is x[2i + 14]; x[2i + 15] must exist too */
        for (; i + 8 < n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_even(x + 2 * i), _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] += a * x[i * stride];
}

void kiln_row_max_avx2(float *y, const float *x, int64_t stride, int64_t n)
{
    int64_t i = 0;
    if (stride == 1) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_max_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    } else if (stride == 2) {
        for (; i + 8 < n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_max_ps(load_even(x + 2 * i), _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] = x[i * stride] > y[i] ? x[i * stride] : y[i];
}
