/*
 * conv_dw_avx2.c - the AVX2+FMA build of the depthwise convolution plane
 * kernel (conv_dw_kernel.h): eight output columns per ymm vector, border
 * vectors read with vmaskmovps (masked-off lanes read as zero and do not
 * fault), stride 2 as two loads, a shuffle and a lane permute that keep
 * the even columns.
 *
 * Compiled with -mavx2 -mfma; conv.c calls it only after
 * __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma").
 */
#include <immintrin.h>
#include <stdint.h>

#include "ops/act_simd.h"

typedef __m256 vec_t;
typedef __m256i vmask_t;
enum { VW = 8 };

static inline __attribute__((always_inline)) vec_t v_set1(float x)
{
    return _mm256_set1_ps(x);
}

static inline __attribute__((always_inline)) vec_t v_fma(vec_t a, vec_t b, vec_t c)
{
    return _mm256_fmadd_ps(a, b, c);
}

static inline __attribute__((always_inline)) vec_t v_loadu(const float *p)
{
    return _mm256_loadu_ps(p);
}

/* a0 a2 a4 a6 b0 b2 b4 b6 */
static inline __attribute__((always_inline)) vec_t v_evens(vec_t a, vec_t b)
{
    __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

static inline __attribute__((always_inline)) vmask_t v_cols_mask(int64_t c, int64_t n)
{
    int64_t lo = c < 0 ? -c : 0, hi = n - c;
    lo = lo > 8 ? 8 : lo;
    hi = hi > 8 ? 8 : hi < 0 ? 0 : hi;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32((int)lo - 1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), lane));
}

/* The address is formed as an integer: it may lie outside the row, and
 * the masked-off lanes are not read (no fault). */
static inline __attribute__((always_inline)) vec_t v_load_masked(const float *row, int64_t c, vmask_t m)
{
    const float *p = (const float *)((uintptr_t)row + (uintptr_t)(c * (int64_t)sizeof(float)));
    return _mm256_maskload_ps(p, m);
}

static inline __attribute__((always_inline)) vec_t v_act(vec_t x, const kiln_act_t *act, vec_t va, vec_t vb)
{
    return kiln_act256(x, act->kind, va, vb);
}

static inline __attribute__((always_inline)) void v_store(float *y, vec_t v)
{
    _mm256_storeu_ps(y, v);
}

static inline __attribute__((always_inline)) void v_store_part(float *y, int64_t count, vec_t v)
{
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    for (int64_t i = 0; i < count; i++)
        y[i] = tmp[i];
}

#include "ops/conv_dw_kernel.h"

void kiln_conv_dw_plane_avx2(const kiln_dw_plane_t *p)
{
    dw_plane_dispatch(p);
}
