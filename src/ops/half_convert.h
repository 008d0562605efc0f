/*
 * half_convert.h - whole-array conversions between float32 and the 16-bit
 * float formats, for the kernels that compute float16/bfloat16 in float32.
 *
 * float16 uses the CPU's F16C instructions when it has them (checked once)
 * and half.h's scalar code otherwise; bfloat16 is a shift and a rounding
 * add, which the compiler vectorises by itself.
 */
#ifndef KILN_OPS_HALF_CONVERT_H
#define KILN_OPS_HALF_CONVERT_H

#include <stdint.h>

#include "kiln.h"

/* dtype is KILN_DTYPE_FLOAT16 or KILN_DTYPE_BFLOAT16. */
void kiln_half_to_f32_array(float *dst, const uint16_t *src, int64_t n, kiln_dtype_t dtype);
void kiln_f32_to_half_array(uint16_t *dst, const float *src, int64_t n, kiln_dtype_t dtype);

/* The F16C forms (half_convert_avx2.c); only call when the CPU has F16C. */
void kiln_f16_to_f32_array_f16c(float *dst, const uint16_t *src, int64_t n);
void kiln_f32_to_f16_array_f16c(uint16_t *dst, const float *src, int64_t n);

#endif
