/*
 * rowops.h - float32 kernels over one contiguous row, the inner loops of
 * the hot reductions and normalizations (ReduceMean/ReduceSum, Softmax,
 * LogSoftmax, LayerNormalization along the last axis, as in BERT).
 *
 * Each has a portable reference (rowops.c) and an AVX2+FMA version
 * (rowops_avx2.c) picked once at run time from the CPU's features; the
 * unit tests compare the two.  kiln_rowops_force_portable(true) pins the
 * reference (tests, debugging).
 */
#ifndef KILN_OPS_ROWOPS_H
#define KILN_OPS_ROWOPS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kiln_rowops {
    const char *name;
    /* Sum of x[0..n). */
    float (*sum)(const float *x, int64_t n);
    /* Sum of x[i]^2. */
    float (*sum_squares)(const float *x, int64_t n);
    /* Largest of x[0..n) (n >= 1). */
    float (*max)(const float *x, int64_t n);
    /* y = softmax(x) (log_softmax when log is true); y may equal x. */
    void (*softmax)(const float *x, float *y, int64_t n, bool log);
    /* y = (x - mean) * inv_std * w + b, with w/b cycling every wn/bn
     * elements (b may be NULL); writes mean and inv_std. */
    void (*layer_norm)(const float *x, float *y, int64_t n, const float *w, int64_t wn, const float *b,
                       int64_t bn, float eps, float *mean, float *inv_std);
} kiln_rowops_t;

/* The row kernels for this CPU (or the portable ones when forced). */
const kiln_rowops_t *kiln_rowops(void);
/* The portable reference, always available. */
const kiln_rowops_t *kiln_rowops_portable(void);
void kiln_rowops_force_portable(bool force_portable);

/* The AVX2 table; call only when the CPU has AVX2 and FMA. */
const kiln_rowops_t *kiln_rowops_avx2(void);

#endif
