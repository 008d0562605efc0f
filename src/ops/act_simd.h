/*
 * act_simd.h - the in-stores activations (kiln_act_in_stores in gemm.h) on
 * AVX-512 and AVX2 registers, for the GEMM microkernels and the depthwise
 * conv kernels: each vector form gives exactly kiln_act_scalar's result,
 * NaN included (MAXPS/MINPS return their second operand when either is
 * NaN, so the operand order below is what makes NaN pass or become 0).
 *
 * Include only from files compiled with the matching instruction set
 * (*_avx512.c, *_avx2.c); each half is present when its ISA is enabled.
 * Callers switch on the kind outside their loops where it matters; the
 * switch here is on a loop-invariant value, which the compiler unswitches.
 */
#ifndef KILN_OPS_ACT_SIMD_H
#define KILN_OPS_ACT_SIMD_H

#include <immintrin.h>

#include "ops/gemm.h"

#ifdef __AVX512F__
/* act(x) for kind k with alpha and beta broadcast in va, vb. */
static inline __attribute__((always_inline)) __m512 kiln_act512(__m512 x, kiln_act_kind_t k, __m512 va, __m512 vb)
{
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    switch (k) {
    case KILN_ACT_RELU:
        return _mm512_max_ps(x, zero); /* x > 0 ? x : 0 */
    case KILN_ACT_CLIP:
        return _mm512_min_ps(vb, _mm512_max_ps(va, x));
    case KILN_ACT_LEAKY_RELU:
        return _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), x, va);
    case KILN_ACT_HARD_SIGMOID:
        return _mm512_min_ps(one, _mm512_max_ps(zero, _mm512_fmadd_ps(va, x, vb)));
    case KILN_ACT_HARD_SWISH: {
        __m512 v = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
        return _mm512_mul_ps(x, _mm512_min_ps(one, _mm512_max_ps(zero, v)));
    }
    default:
        return x;
    }
}
#endif

#ifdef __AVX2__
static inline __attribute__((always_inline)) __m256 kiln_act256(__m256 x, kiln_act_kind_t k, __m256 va, __m256 vb)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    switch (k) {
    case KILN_ACT_RELU:
        return _mm256_max_ps(x, zero);
    case KILN_ACT_CLIP:
        return _mm256_min_ps(vb, _mm256_max_ps(va, x));
    case KILN_ACT_LEAKY_RELU:
        return _mm256_blendv_ps(x, _mm256_mul_ps(x, va), _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    case KILN_ACT_HARD_SIGMOID:
        return _mm256_min_ps(one, _mm256_max_ps(zero, _mm256_fmadd_ps(va, x, vb)));
    case KILN_ACT_HARD_SWISH: {
        __m256 v = _mm256_fmadd_ps(x, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
        return _mm256_mul_ps(x, _mm256_min_ps(one, _mm256_max_ps(zero, v)));
    }
    default:
        return x;
    }
}
#endif

#endif
