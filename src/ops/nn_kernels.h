/*
 * nn_kernels.h - the kernel entry points of the nn family's files (conv.c,
 * pool.c), registered together by kiln_ops_register_nn in nn.c.
 */
#ifndef KILN_OPS_NN_KERNELS_H
#define KILN_OPS_NN_KERNELS_H

#include "ops/gemm.h" /* kiln_act_t */
#include "core/threadpool.h"
#include "ops/kernel.h"
#include "ops/nn_geometry.h"

/* conv.c */
kiln_status_t kiln_conv_run(kiln_kernel_ctx_t *ctx);
/* FusedConv's epilogue: the output is act(conv + bias), act applied in
 * the GEMM microkernel's and the depthwise kernels' stores (kind NONE:
 * none; only kinds kiln_act_in_stores accepts); then, when apply is not
 * NULL, apply(arg, y, offset, n) on n contiguous floats of one output
 * channel that start at element `offset` of the output, on each block
 * right after it is made, while it is in cache (a residual sum and an
 * activation that has to follow it, or one too costly for the stores). */
typedef struct kiln_conv_epilogue {
    kiln_act_t act;
    void (*apply)(void *arg, float *y, int64_t offset, int64_t n);
    void *arg;
} kiln_conv_epilogue_t;
/* Conv with ep (NULL: none). */
kiln_status_t kiln_conv_run_epilogue(kiln_kernel_ctx_t *ctx, const kiln_conv_epilogue_t *ep);
kiln_status_t kiln_conv_transpose_run(kiln_kernel_ctx_t *ctx);
/* Conv's float32 computation on x, w and b (b may be NULL) with the node's
 * Conv attributes; used by ConvInteger and QLinearConv.  On success *y is a
 * new tensor the caller frees with kiln_tensor_free. */
kiln_status_t kiln_conv_float32(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x,
                                const kiln_tensor_t *w, const kiln_tensor_t *b, kiln_tensor_t **y);

/* One 2-D output plane of a depthwise conv: y = act(bias + sum of the
 * taps f over x), zero padding; pt, pl >= 0; the vector kernels need
 * sw 1 or 2. */
typedef struct kiln_dw_plane {
    const float *x;                  /* the input plane, in_h x in_w */
    const float *f;                  /* the filter, kh x kw */
    float *y;                        /* the output plane, out_h x out_w */
    int64_t in_h, in_w, out_h, out_w;
    int kh, kw, sh, sw, dh, dw;      /* kernel, strides, dilations */
    int64_t pt, pl;                  /* padding before the first row / column */
    float bias;
    kiln_act_t act;                  /* an in-stores kind (kiln_act_in_stores) */
} kiln_dw_plane_t;

/* The depthwise plane kernels: conv.c picks one per CPU (AVX-512, AVX2,
 * or its portable loops).  kiln_conv_dw_plane fills a kiln_dw_plane_t
 * from window w (2-D or 1-D: kernel[0], in[0], out[0] 1) and runs the
 * chosen one; false (nothing written) where w is not such a plane.
 * kiln_conv_dw_path() names the kernel chosen ("avx512", "avx2",
 * "portable"); for tests, kiln_conv_dw_force_portable and
 * kiln_conv_dw_avoid_avx512 steer the choice. */
bool kiln_conv_dw_plane(const kiln_window_t *w, const float *x, const float *f, float bias, const kiln_act_t *act,
                        float *y);
const char *kiln_conv_dw_path(void);
void kiln_conv_dw_force_portable(bool force);
void kiln_conv_dw_avoid_avx512(bool avoid);
void kiln_conv_dw_plane_portable(const kiln_dw_plane_t *p);
/* conv_dw_avx512.c (call only with avx512f), conv_dw_avx2.c (only with
 * avx2 and fma) */
void kiln_conv_dw_plane_avx512(const kiln_dw_plane_t *p);
void kiln_conv_dw_plane_avx2(const kiln_dw_plane_t *p);
/* For tests: Conv's GEMM path (every conv but depthwise) on raw float32
 * arrays, NCHW-style with window w: x is batch x in_channels x w->in, wt
 * is out_channels x in_channels/group x w->kernel, b (out_channels) may
 * be NULL, y (batch x out_channels x w->out) is written whole, ep as in
 * kiln_conv_run_epilogue (may be NULL).  w_packed is NULL or each group's
 * weights packed by kiln_sgemm_pack_a, one after another.  Threads come
 * from pool (NULL: this one).  KILN_ERR_NO_MEMORY when scratch ran out. */
kiln_status_t kiln_conv_gemm_forward(const kiln_window_t *w, int64_t batch, int64_t in_channels,
                                     int64_t out_channels, int64_t group, const float *x, const float *wt,
                                     const float *w_packed, const float *b, float *y,
                                     const kiln_conv_epilogue_t *ep, kiln_threadpool_t *pool);

/* nn.c: MatMul's numpy-style shape rules, shared with the integer
 * MatMuls of quant.c.  Batch dims broadcast; each operand's element stride
 * per batch dim is 0 where it broadcasts. */
typedef struct kiln_matmul_shape {
    int64_t m, n, k;
    int batch_rank;
    int64_t batch_dims[KILN_MAX_RANK];
    int64_t a_stride[KILN_MAX_RANK], b_stride[KILN_MAX_RANK];
    int64_t batch_count;
    int out_rank;
    int64_t out_dims[KILN_MAX_RANK];
} kiln_matmul_shape_t;

kiln_status_t kiln_matmul_shape(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *a,
                                const kiln_tensor_t *b, kiln_matmul_shape_t *s);
/* Element offsets in A and B of batch t (0 <= t < batch_count). */
void kiln_matmul_batch_offsets(const kiln_matmul_shape_t *s, int64_t t, int64_t *a_off,
                               int64_t *b_off);

/* nn.c: float16 / bfloat16 support.  The nn kernels compute those in
 * float32: kiln_nn_float32_copy makes a float32 copy of a tensor of any
 * float dtype (caller frees it with kiln_tensor_free; NULL on no memory)
 * and kiln_nn_store_float32 rounds a float32 tensor into out (same count,
 * any float dtype). */
bool kiln_nn_is_half(kiln_dtype_t dtype);
kiln_tensor_t *kiln_nn_float32_copy(const kiln_tensor_t *t);
void kiln_nn_store_float32(const kiln_tensor_t *f, kiln_tensor_t *out);

/* pool.c */
kiln_status_t kiln_average_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_max_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_lp_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_global_average_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_global_max_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_global_lp_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_max_unpool_run(kiln_kernel_ctx_t *ctx);

#endif
