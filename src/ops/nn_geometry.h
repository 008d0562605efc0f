/*
 * nn_geometry.h - the sliding-window geometry shared by Conv, ConvTranspose
 * and the pooling kernels: kernel shape, strides, dilations, begin/end pads
 * (explicit or from auto_pad) and the output size, for 1 to 3 spatial dims.
 *
 * Kernels work on a fixed 3-D window: a 1-D or 2-D problem is padded at
 * the front with unit dims (size 1, kernel 1, stride 1, no pad), so one
 * triple loop serves every rank and no code path is rank-specific.
 */
#ifndef KILN_OPS_NN_GEOMETRY_H
#define KILN_OPS_NN_GEOMETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/kernel.h"

enum { KILN_WINDOW_DIMS = 3 };

typedef struct kiln_window {
    int nd;                              /* spatial dims of the real problem (1..3) */
    int64_t in[KILN_WINDOW_DIMS];        /* input spatial size */
    int64_t out[KILN_WINDOW_DIMS];       /* output spatial size */
    int64_t kernel[KILN_WINDOW_DIMS];
    int64_t stride[KILN_WINDOW_DIMS];
    int64_t dilation[KILN_WINDOW_DIMS];
    int64_t pad_begin[KILN_WINDOW_DIMS];
    int64_t pad_end[KILN_WINDOW_DIMS];
} kiln_window_t;

/* Product of the three entries of a window array. */
static inline int64_t kiln_window_volume(const int64_t *v)
{
    return v[0] * v[1] * v[2];
}

/* Reads kernel_shape (or takes kernel, when not NULL: Conv's weight dims),
 * strides, dilations, pads and auto_pad from the node for input x (N, C,
 * spatial...) and computes the forward (Conv/pool) output size; ceil_mode
 * rounds the output up as pooling allows.  Fails with a message on bad
 * attributes or an empty output. */
kiln_status_t kiln_window_forward(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                  const int64_t *kernel, bool ceil_mode, kiln_window_t *w);

/* Reads the attributes of ConvTranspose (kernel from the weight dims,
 * output_padding, output_shape, auto_pad) and computes its output size. */
kiln_status_t kiln_window_transpose(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                    const int64_t *kernel, kiln_window_t *w);

/* Output dims (N, C, spatial...) of a window problem with channels c. */
void kiln_window_output_dims(const kiln_window_t *w, int64_t n, int64_t c, int64_t *dims);

#endif
