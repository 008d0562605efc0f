/*
 * conv_winograd.h - Conv by Winograd's minimal filtering F(4x4, 3x3) for
 * 2-D float32 convolutions with a 3x3 kernel, stride 1, dilation 1 and one
 * group (any pads, any batch): 2.25 multiplies per output and channel pair
 * instead of 9, done as 36 GEMMs on the GEMM microkernel (conv_winograd.c
 * explains the data flow).  conv.c sends the convs it suits here.
 */
#ifndef KILN_OPS_CONV_WINOGRAD_H
#define KILN_OPS_CONV_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/gemm.h"
#include "ops/nn_kernels.h"

/* One Winograd convolution: y = conv(x, w) + bias, then the epilogue. */
typedef struct kiln_winograd_conv {
    int64_t batch, in_channels, out_channels; /* N, C, M */
    int64_t in_h, in_w, out_h, out_w;
    int64_t pad_top, pad_left;   /* the bottom/right pads follow from out_h/out_w */
    const float *x;              /* N x C x in_h x in_w */
    const float *w;              /* M x C x 3 x 3; read only when u is NULL */
    const float *u;              /* w transformed by kiln_winograd_weights, or NULL */
    const float *bias;           /* M floats, or NULL */
    float *y;                    /* N x M x out_h x out_w, every element written */
    const kiln_conv_epilogue_t *ep; /* NULL: none */
    int threads;                 /* threads behind par (how to split the work) */
} kiln_winograd_conv_t;

/* Whether a Conv (window w, group count, channels) should take this path:
 * the shape is one it computes, it is enabled, and it measured faster than
 * im2col + GEMM for shapes like it (see docs/KERNELS.md). */
bool kiln_winograd_wanted(const kiln_window_t *w, int64_t group, int64_t in_channels, int64_t out_channels,
                          int64_t batch);
/* Computes p over par's threads (par may be NULL: inline).  False when out
 * of memory: y is then undefined and the caller computes it another way. */
bool kiln_conv_winograd(const kiln_winograd_conv_t *p, const kiln_gemm_parallel_t *par);

/* The transformed weights: 36 blocks, block xi (xi = i*6 + k) being the
 * M x C matrix of element (i, k) of G g G^T over the filters g, packed by
 * kiln_sgemm_pack_a (so valid only while kiln_sgemm_path() stays the same);
 * kiln_winograd_weights_floats(M, C) floats, 64-byte aligned.  False when
 * out of memory (dst untouched). */
size_t kiln_winograd_weights_floats(int64_t out_channels, int64_t in_channels);
bool kiln_winograd_weights(int64_t out_channels, int64_t in_channels, const float *w, float *dst);

/* For tests and benchmarks: false sends every Conv to im2col + GEMM. */
void kiln_conv_winograd_enable(bool enable);
/* For tests: use the portable transforms even where AVX-512 is there. */
void kiln_conv_winograd_force_portable(bool force);

/* A group of up to 16 tiles (one per vector lane) as the tile transforms
 * see it: where each lane's input patch and output tile start, and which
 * of their rows and columns lie inside the input / output (bit u for lane
 * u; lanes without a tile have no bits set). */
typedef struct kiln_wino_group {
    int32_t in_off[16];          /* patch (0, 0) in channel 0 of x (may lie outside: padding) */
    int32_t out_off[16];         /* tile (0, 0) in channel 0 of y */
    uint16_t in_row[6], in_col[6];   /* patch row r / column c inside the input */
    uint16_t out_row[4], out_col[4]; /* tile row i / column j inside the output */
} kiln_wino_group_t;

/* The tile transforms (conv_winograd.c portable, conv_winograd_avx512.c):
 * input: for channels [0, channels) (x and v advanced by the caller),
 * B^T d B of lane u's patch of channel c (x + c*plane; rows in_w apart)
 * goes to v[xi*xi_stride + c*c_stride + u], zeros for padding and empty
 * lanes; v 64-byte aligned, strides multiples of 16.
 * output: A^T M A of lane u, M's element xi at m[xi*xs + u] (16 lanes
 * readable, 64-byte aligned), + bias (then max(., 0) when relu), stored
 * at y + out_off[u] + i*out_w + j where inside the output. */
typedef void (*kiln_wino_input_fn)(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w,
                                   int64_t channels, float *v, int64_t xi_stride, int64_t c_stride);
typedef void (*kiln_wino_output_fn)(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                                    float bias, bool relu);
/* call only with avx512f */
void kiln_winograd_input_avx512(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w,
                                int64_t channels, float *v, int64_t xi_stride, int64_t c_stride);
void kiln_winograd_output_avx512(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                                 float bias, bool relu);

#endif
