/*
 * half_convert_avx2.c - float16 <-> float32 conversion of whole arrays with
 * the F16C instructions (8 elements per instruction, round to nearest even,
 * the same results as half.h's scalar code).  Compiled with -mavx2 -mf16c
 * (see the Makefile); call only through half_convert.h, which checks the
 * CPU first.
 */
#include <immintrin.h>
#include <stdint.h>

#include "ops/half_convert.h"

void kiln_f16_to_f32_array_f16c(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

void kiln_f32_to_f16_array_f16c(uint16_t *dst, const float *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(src + i);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++)
        dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
