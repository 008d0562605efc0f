/*
 * nn_kernels.h - the kernel entry points of the nn family's files (conv.c,
 * pool.c), registered together by kiln_ops_register_nn in nn.c.
 */
#ifndef KILN_OPS_NN_KERNELS_H
#define KILN_OPS_NN_KERNELS_H

#include "ops/kernel.h"

/* conv.c */
kiln_status_t kiln_conv_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_conv_transpose_run(kiln_kernel_ctx_t *ctx);

/* pool.c */
kiln_status_t kiln_average_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_max_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_lp_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_global_average_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_global_max_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_global_lp_pool_run(kiln_kernel_ctx_t *ctx);
kiln_status_t kiln_max_unpool_run(kiln_kernel_ctx_t *ctx);

#endif
