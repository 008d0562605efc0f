/*
 * conv_winograd.h - Conv by Winograd's minimal filtering F(4x4, 3x3) (or
 * F(2x2, 3x3) on small maps) for 2-D float32 convolutions with a 3x3
 * kernel, stride 1, dilation 1 and one group (any pads, any batch): 2.25
 * (4) multiplies per output and channel pair instead of 9, done as 36 (16)
 * GEMMs on the GEMM microkernel (conv_winograd.c explains the data flow).
 * conv.c sends the convs it suits here.
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
    int tile;                    /* 4: F(4x4, 3x3), 2: F(2x2, 3x3) */
    int64_t batch, in_channels, out_channels; /* N, C, M */
    int64_t in_h, in_w, out_h, out_w;
    int64_t pad_top, pad_left;   /* the bottom/right pads follow from out_h/out_w */
    const float *x;              /* N x C x in_h x in_w */
    const float *w;              /* M x C x 3 x 3; read only when u is NULL */
    const float *u;              /* w transformed by kiln_winograd_weights for tile, or NULL */
    const float *bias;           /* M floats, or NULL */
    float *y;                    /* N x M x out_h x out_w, every element written */
    const kiln_conv_epilogue_t *ep; /* NULL: none */
    int threads;                 /* threads behind par (how to split the work) */
} kiln_winograd_conv_t;

/* Whether a Conv (window w, group count, channels, batch) should take this
 * path, and with which algorithm: 4 for F(4x4, 3x3), 2 for F(2x2, 3x3)
 * (small maps), 0 for im2col + GEMM.  Nonzero only for shapes it computes,
 * when enabled, and where it measured faster (see docs/KERNELS.md). */
int kiln_winograd_tile(const kiln_window_t *w, int64_t group, int64_t in_channels, int64_t out_channels,
                       int64_t batch);
/* Computes p over par's threads (par may be NULL: inline).  False when out
 * of memory: y is then undefined and the caller computes it another way. */
bool kiln_conv_winograd(const kiln_winograd_conv_t *p, const kiln_gemm_parallel_t *par);

/* The transformed weights for F(tile x tile, 3x3): (tile + 2)^2 blocks
 * (36 or 16), block xi (xi = i*(tile + 2) + k) being the M x C matrix of
 * element (i, k) of G g G^T over the filters g, packed by
 * kiln_sgemm_pack_a (so valid only while kiln_sgemm_path() stays the
 * same); kiln_winograd_weights_floats(tile, M, C) floats, 64-byte aligned.
 * False when out of memory (dst untouched). */
size_t kiln_winograd_weights_floats(int tile, int64_t out_channels, int64_t in_channels);
bool kiln_winograd_weights(int tile, int64_t out_channels, int64_t in_channels, const float *w, float *dst);

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
/* call only with avx512f; F(4x4) then F(2x2) */
void kiln_winograd_input_avx512(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w,
                                int64_t channels, float *v, int64_t xi_stride, int64_t c_stride);
void kiln_winograd_output_avx512(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                                 float bias, bool relu);
void kiln_winograd_input2_avx512(const kiln_wino_group_t *g, const float *x, int64_t plane, int64_t in_w,
                                 int64_t channels, float *v, int64_t xi_stride, int64_t c_stride);
void kiln_winograd_output2_avx512(const kiln_wino_group_t *g, const float *m, int64_t xs, int64_t out_w, float *y,
                                  float bias, bool relu);

#endif
