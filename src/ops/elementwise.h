/*
 * elementwise.h - the shared drivers of elementwise kernels (elementwise.c
 * and activation.c): a kernel supplies one tight loop per dtype, the driver
 * does broadcasting, float16/bfloat16, threading and output allocation.
 *
 * Loops are plain functions over contiguous runs so the compiler vectorises
 * them.  float16 and bfloat16 have no loops of their own: the drivers widen
 * them to float32 in small stack blocks, run the float32 loop and round the
 * result back, which is what "compute in float32" means for these types.
 */
#ifndef KILN_OPS_ELEMENTWISE_H
#define KILN_OPS_ELEMENTWISE_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/kernel.h"

/* Extra numbers some loops read (alpha of Elu, bounds of Clip...). */
typedef struct kiln_elem_params {
    double alpha, beta, gamma;
    int64_t flag;
} kiln_elem_params_t;

/* y[i] = f(x[i]) for i in [0, n).  y may alias x. */
typedef void (*kiln_unary_loop_fn)(void *y, const void *x, int64_t n,
                                   const kiln_elem_params_t *p);

/* y[i] = f(a[i*sa], b[i*sb]) for i in [0, n), where sa and sb are 0 or 1. */
typedef void (*kiln_binary_loop_fn)(void *y, const void *a, const void *b, int64_t sa, int64_t sb,
                                    int64_t n, const kiln_elem_params_t *p);

/* Loops of one op indexed by input dtype; NULL = dtype not supported.  A
 * float32 loop serves float16 and bfloat16 too.  out_bool: the output is
 * bool (comparisons, IsNaN) instead of the input dtype. */
typedef struct kiln_unary_op {
    kiln_unary_loop_fn loops[KILN_DTYPE_COUNT_];
    bool out_bool;
} kiln_unary_op_t;

typedef struct kiln_binary_op {
    kiln_binary_loop_fn loops[KILN_DTYPE_COUNT_];
    bool out_bool;
} kiln_binary_op_t;

/* Runs a unary op on x into output out_index (allocated here). */
kiln_status_t kiln_unary_run(kiln_kernel_ctx_t *ctx, const kiln_unary_op_t *op,
                             const kiln_tensor_t *x, int out_index, const kiln_elem_params_t *p);

/* Runs a unary op from x into y (same shape; may be the same tensor). */
kiln_status_t kiln_unary_into(kiln_kernel_ctx_t *ctx, const kiln_unary_op_t *op,
                              const kiln_tensor_t *x, kiln_tensor_t *y,
                              const kiln_elem_params_t *p);

/* Runs a broadcasting binary op on a and b into output out_index. */
kiln_status_t kiln_binary_run(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op,
                              const kiln_tensor_t *a, const kiln_tensor_t *b, int out_index,
                              const kiln_elem_params_t *p);

/* Same into a preallocated y whose shape is the broadcast shape of a, b. */
kiln_status_t kiln_binary_into(kiln_kernel_ctx_t *ctx, const kiln_binary_op_t *op,
                               const kiln_tensor_t *a, const kiln_tensor_t *b, kiln_tensor_t *y,
                               const kiln_elem_params_t *p);

/* Opset < 7 binary ops broadcast B onto A only when broadcast=1, with B's
 * dims placed at A's dim `axis` (default: the trailing dims).  Fills *view
 * with b reshaped to A's rank (borrowing b's data) and returns it, or b
 * itself when the node uses numpy rules or no broadcast. */
const kiln_tensor_t *kiln_legacy_broadcast_view(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                                const kiln_tensor_t *b, kiln_tensor_t *view);

/* Registers Where, Clip, Cast and CastLike (elementwise_cast.c); called by
 * kiln_ops_register_elementwise. */
void kiln_register_elementwise_cast(kiln_registry_t *reg);

/* ---- Loop instantiation ------------------------------------------------ */

/* Defines `static void NAME(...)`, a unary loop over T to TO where EXPR
 * computes from `x`, `p`, and alpha, beta, gamma: p's numbers as T (whose
 * name in EXPR is elem_t). */
#define KILN_UNARY_LOOP(NAME, T, TO, EXPR)                                                  \
    static void NAME(void *yv, const void *xv, int64_t n, const kiln_elem_params_t *p)     \
    {                                                                                       \
        typedef T elem_t;                                                                   \
        const T alpha = (T)p->alpha, beta = (T)p->beta, gamma = (T)p->gamma;                \
        (void)alpha, (void)beta, (void)gamma, (void)sizeof(elem_t);                         \
        if (yv == xv) { /* in place: one pointer, so no aliasing question */                \
            T *io = yv;                                                                     \
            for (int64_t i = 0; i < n; i++) {                                               \
                T x = io[i];                                                                \
                io[i] = (T)(TO)(EXPR);                                                      \
            }                                                                               \
            return;                                                                         \
        }                                                                                   \
        TO *restrict y = yv;                                                                \
        const T *restrict xs = xv;                                                          \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T x = xs[i];                                                                    \
            y[i] = (TO)(EXPR);                                                              \
        }                                                                                   \
    }

/* Defines a binary loop over T to TO where EXPR computes from `a` and `b`,
 * with one specialised loop per operand step so each vectorises. */
#define KILN_BINARY_LOOP(NAME, T, TO, EXPR)                                                 \
    static void NAME(void *yv, const void *av, const void *bv, int64_t sa, int64_t sb,     \
                     int64_t n, const kiln_elem_params_t *p)                               \
    {                                                                                       \
        TO *restrict y = yv;                                                                \
        const T *restrict as = av;                                                          \
        const T *restrict bs = bv;                                                          \
        (void)p;                                                                            \
        if (sa && sb) {                                                                     \
            for (int64_t i = 0; i < n; i++) {                                               \
                T a = as[i], b = bs[i];                                                     \
                y[i] = (TO)(EXPR);                                                          \
            }                                                                               \
        } else if (sa) {                                                                    \
            const T b = bs[0];                                                              \
            for (int64_t i = 0; i < n; i++) {                                               \
                T a = as[i];                                                                \
                y[i] = (TO)(EXPR);                                                          \
            }                                                                               \
        } else if (sb) {                                                                    \
            const T a = as[0];                                                              \
            for (int64_t i = 0; i < n; i++) {                                               \
                T b = bs[i];                                                                \
                y[i] = (TO)(EXPR);                                                          \
            }                                                                               \
        } else {                                                                            \
            const T a = as[0], b = bs[0];                                                   \
            const TO v = (TO)(EXPR);                                                        \
            for (int64_t i = 0; i < n; i++)                                                 \
                y[i] = v;                                                                   \
        }                                                                                   \
    }

#endif
