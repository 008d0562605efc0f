/*
 * rowops_avx2.c - AVX2+FMA row kernels (see rowops.h): eight lanes, four
 * accumulators for sums (hides the add latency and keeps rounding error
 * low), and a vector exp for softmax.
 *
 * exp(x) is the Cephes single-precision scheme: x = n*ln2 + r with
 * |r| <= ln2/2, a degree-5 polynomial for e^r, and 2^n built in the
 * exponent bits; relative error about 2 ulp.  Inputs below -87.3 (whose
 * exp is under FLT_MIN) give exactly 0, so exp(-inf) = 0 as it should.
 *
 * Rows whose length is not a multiple of 8 finish with one padded vector
 * (pad value chosen so it does not disturb the result).
 *
 * Compiled with -mavx2 -mfma; rowops.c calls kiln_rowops_avx2() only
 * after __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma").
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "ops/rowops.h"

enum { LANES = 8 };

/* The last r (< 8) elements of x in a vector, the other lanes set to fill. */
static inline __m256 load_tail(const float *x, int64_t r, float fill)
{
    float buf[LANES];
    for (int i = 0; i < LANES; i++)
        buf[i] = i < r ? x[i] : fill;
    return _mm256_loadu_ps(buf);
}

static inline void store_tail(float *y, int64_t r, __m256 v)
{
    float buf[LANES];
    _mm256_storeu_ps(buf, v);
    memcpy(y, buf, sizeof(float) * (size_t)r);
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 exp_ps(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.3762626647949f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(underflow, y);
}

static float sum_avx2(const float *x, int64_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i + LANES <= n; i += LANES)
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    if (i < n)
        a1 = _mm256_add_ps(a1, load_tail(x + i, n - i, 0.0f));
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static float sum_squares_avx2(const float *x, int64_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
        a2 = _mm256_fmadd_ps(v2, v2, a2);
        a3 = _mm256_fmadd_ps(v3, v3, a3);
    }
    for (; i + LANES <= n; i += LANES) {
        __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    if (i < n) {
        __m256 v = load_tail(x + i, n - i, 0.0f);
        a1 = _mm256_fmadd_ps(v, v, a1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static float max_avx2(const float *x, int64_t n)
{
    __m256 m = _mm256_set1_ps(x[0]);
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    if (i < n)
        m = _mm256_max_ps(m, load_tail(x + i, n - i, x[0]));
    return hmax(m);
}

static void softmax_avx2(const float *x, float *y, int64_t n, bool log_out)
{
    if (n == 0)
        return;
    __m256 vm = _mm256_set1_ps(max_avx2(x, n));
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        if (!log_out)
            _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        __m256 e = exp_ps(_mm256_sub_ps(load_tail(x + i, n - i, -INFINITY), vm));
        if (!log_out)
            store_tail(y + i, n - i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float s = hsum(acc);
    if (log_out) {
        __m256 shift = _mm256_add_ps(vm, _mm256_set1_ps(logf(s)));
        for (i = 0; i + LANES <= n; i += LANES)
            _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_loadu_ps(x + i), shift));
        if (i < n)
            store_tail(y + i, n - i, _mm256_sub_ps(load_tail(x + i, n - i, 0.0f), shift));
        return;
    }
    __m256 inv = _mm256_set1_ps(1.0f / s);
    for (i = 0; i + LANES <= n; i += LANES)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    for (; i < n; i++)
        y[i] *= 1.0f / s;
}

/* Sum of (x[i] - m)^2. */
static float sum_sq_dev_avx2(const float *x, int64_t n, float m)
{
    __m256 vm = _mm256_set1_ps(m), a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 2 * LANES <= n; i += 2 * LANES) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm),
               d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
    }
    for (; i + LANES <= n; i += LANES) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        a0 = _mm256_fmadd_ps(d, d, a0);
    }
    if (i < n) {
        __m256 d = _mm256_sub_ps(load_tail(x + i, n - i, m), vm);
        a1 = _mm256_fmadd_ps(d, d, a1);
    }
    return hsum(_mm256_add_ps(a0, a1));
}

static void layer_norm_avx2(const float *x, float *y, int64_t n, const float *w, int64_t wn, const float *b,
                            int64_t bn, float eps, float *mean_out, float *inv_std_out)
{
    float m = sum_avx2(x, n) / (float)n;
    float inv = 1.0f / sqrtf(sum_sq_dev_avx2(x, n, m) / (float)n + eps);
    *mean_out = m;
    *inv_std_out = inv;
    int64_t i = 0;
    if (wn == n && (!b || bn == n)) {
        __m256 vm = _mm256_set1_ps(m), vi = _mm256_set1_ps(inv);
        for (; i + LANES <= n; i += LANES) {
            __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vi);
            __m256 o = b ? _mm256_fmadd_ps(v, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i))
                         : _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
            _mm256_storeu_ps(y + i, o);
        }
    }
    for (; i < n; i++)
        y[i] = (x[i] - m) * inv * w[i % wn] + (b ? b[i % bn] : 0.0f);
}

static const kiln_rowops_t ROWOPS_AVX2 = {"avx2",   sum_avx2,     sum_squares_avx2,
                                          max_avx2, softmax_avx2, layer_norm_avx2};

const kiln_rowops_t *kiln_rowops_avx2(void)
{
    return &ROWOPS_AVX2;
}
