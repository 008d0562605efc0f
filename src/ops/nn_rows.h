/*
 * nn_rows.h - row primitives shared by the sliding-window kernels
 * (depthwise Conv, pooling): one output row updated from one input row
 * read at a stride.  Kernels written "tap-major" (for each kernel tap,
 * update every output it touches) reduce to these, so their inner loops
 * run in SIMD.  nn_rows.c picks the AVX2 versions (nn_rows_avx2.c) at run
 * time and falls back to plain loops.
 */
#ifndef KILN_OPS_NN_ROWS_H
#define KILN_OPS_NN_ROWS_H

#include <stdint.h>

/* y[i] += a * x[i * stride] for i in [0, n). */
void kiln_row_axpy(float *y, const float *x, int64_t stride, float a, int64_t n);

/* y[i] = max(y[i], x[i * stride]) for i in [0, n). */
void kiln_row_max(float *y, const float *x, int64_t stride, int64_t n);

/* AVX2 versions (nn_rows_avx2.c); call only when the CPU has avx2 and fma. */
void kiln_row_axpy_avx2(float *y, const float *x, int64_t stride, float a, int64_t n);
void kiln_row_max_avx2(float *y, const float *x, int64_t stride, int64_t n);

#endif
