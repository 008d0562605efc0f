/*
 * conv_dw_avx512.c - the AVX-512F build of the depthwise convolution plane
 * kernel (conv_dw_kernel.h): sixteen output columns per zmm vector, border
 * vectors read with masked loads, stride 2 as two loads and one permute
 * that keeps the even columns.
 *
 * Compiled with AVX-512 flags; conv.c calls it only after
 * __builtin_cpu_supports("avx512f").
 */
#include <immintrin.h>
#include <stdint.h>

#include "ops/act_simd.h"

typedef __m512 vec_t;
typedef __mmask16 vmask_t;
enum { VW = 16 };

static inline __attribute__((always_inline)) vec_t v_set1(float x)
{
    return _mm512_set1_ps(x);
}

static inline __attribute__((always_inline)) vec_t v_fma(vec_t a, vec_t b, vec_t c)
{
    return _mm512_fmadd_ps(a, b, c);
}

static inline __attribute__((always_inline)) vec_t v_loadu(const float *p)
{
    return _mm512_loadu_ps(p);
}

static inline __attribute__((always_inline)) vec_t v_evens(vec_t a, vec_t b)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(a, even, b);
}

static inline __attribute__((always_inline)) vmask_t v_cols_mask(int64_t c, int64_t n)
{
    int64_t lo = c < 0 ? -c : 0, hi = n - c;
    lo = lo > 16 ? 16 : lo;
    hi = hi > 16 ? 16 : hi;
    if (hi <= lo)
        return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* The address is formed as an integer: it may lie outside the row, and
 * the masked-off lanes are not read (no fault). */
static inline __attribute__((always_inline)) vec_t v_load_masked(const float *row, int64_t c, vmask_t m)
{
    const float *p = (const float *)((uintptr_t)row + (uintptr_t)(c * (int64_t)sizeof(float)));
    return _mm512_maskz_loadu_ps(m, p);
}

static inline __attribute__((always_inline)) vec_t v_act(vec_t x, const kiln_act_t *act, vec_t va, vec_t vb)
{
    return kiln_act512(x, act->kind, va, vb);
}

static inline __attribute__((always_inline)) void v_store(float *y, vec_t v)
{
    _mm512_storeu_ps(y, v);
}

static inline __attribute__((always_inline)) void v_store_part(float *y, int64_t count, vec_t v)
{
    _mm512_mask_storeu_ps(y, (__mmask16)((1u << count) - 1), v);
}

#include "ops/conv_dw_kernel.h"

void kiln_conv_dw_plane_avx512(const kiln_dw_plane_t *p)
{
    dw_plane_dispatch(p);
}
