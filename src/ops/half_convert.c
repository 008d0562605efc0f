/*
 * half_convert.c - array conversions float32 <-> float16/bfloat16 (see
 * half_convert.h): picks F16C or the scalar code once per process.
 */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")

#include "ops/half_convert.h"

#include <cpuid.h>
#include <stdbool.h>
#include <string.h>

#include "core/half.h"

/* F16C is read from CPUID leaf 1 directly: clang's __builtin_cpu_supports
 * does not know "f16c" (the fuzz build uses clang). */
static bool have_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    return (c & bit_AVX) && (c & bit_F16C) && __builtin_cpu_supports("avx");
}

/* bfloat16 is the top half of a float32. */
static void bf16_to_f32_array(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &bits, sizeof bits);
    }
}

static void f32_to_bf16_array(uint16_t *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = kiln_f32_to_bf16(src[i]);
}

void kiln_half_to_f32_array(float *dst, const uint16_t *src, int64_t n, kiln_dtype_t dtype)
{
    if (dtype == KILN_DTYPE_BFLOAT16) {
        bf16_to_f32_array(dst, src, n);
    } else if (have_f16c()) {
        kiln_f16_to_f32_array_f16c(dst, src, n);
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i] = kiln_f16_to_f32(src[i]);
    }
}

void kiln_f32_to_half_array(uint16_t *dst, const float *src, int64_t n, kiln_dtype_t dtype)
{
    if (dtype == KILN_DTYPE_BFLOAT16) {
        f32_to_bf16_array(dst, src, n);
    } else if (have_f16c()) {
        kiln_f32_to_f16_array_f16c(dst, src, n);
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i] = kiln_f32_to_f16(src[i]);
    }
}
