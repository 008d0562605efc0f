/*
 * broadcast.h - numpy-style multidirectional broadcasting for kernels.
 *
 * Two questions every broadcasting kernel (Add, Where, PRelu, Expand...)
 * asks: what is the output shape of these inputs, and how do I walk them?
 *
 * The shape rule: shapes are right-aligned; each output dim is the common
 * size of the inputs' dims there, where a dim of 1 (or a missing leading
 * dim) stretches to match.  Two dims that differ and are both != 1 are an
 * error naming both shapes.
 *
 * The walk: kiln_bcast_t gives each input element strides over the output
 * shape with 0 on stretched dims, after merging adjacent dims that every
 * input treats the same way (so same-shape inputs become one flat run and
 * a [N,C] + [C] bias becomes N runs of C).  kiln_bcast_rows() then hands a
 * callback contiguous runs of the innermost dim, where each input either
 * advances by one element per output element (step 1) or stays put
 * (step 0).  Kernels specialise their inner loop on those steps so the
 * compiler vectorises the common cases: same shape, scalar operand, row
 * bias.  Any [begin, end) range of output elements can be walked, which is
 * how kernels split work across threads with kiln_ctx_parallel_for().
 */
#ifndef KILN_OPS_BROADCAST_H
#define KILN_OPS_BROADCAST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"

/* The most inputs one broadcast walk covers (Where has 3); variadic ops
 * (Sum, Max...) fold their inputs pairwise. */
#define KILN_BCAST_MAX_INPUTS 4

/* The broadcast output shape of n shapes.  On a mismatch returns
 * KILN_ERR_INVALID_ARGUMENT with a message like "cannot broadcast shapes
 * [2,3] and [4]" (the kernel context adds the node's name).  *out_rank and
 * out_dims (KILN_MAX_RANK entries) receive the shape. */
kiln_status_t kiln_broadcast_shape(int n, const int *ranks, const int64_t *const *dims, int *out_rank,
                                   int64_t *out_dims);

/* Same for tensors; NULL entries are not allowed. */
kiln_status_t kiln_broadcast_tensors(int n, const kiln_tensor_t *const *ts, int *out_rank, int64_t *out_dims);

/* A prepared walk of n inputs over a broadcast output shape. */
typedef struct kiln_bcast {
    int n;                                                 /* number of inputs */
    int rank;                                              /* rank after merging dims (>= 1) */
    int64_t dims[KILN_MAX_RANK];                           /* merged output dims */
    int64_t strides[KILN_BCAST_MAX_INPUTS][KILN_MAX_RANK]; /* element strides, 0 = stretched */
    int64_t count;                                         /* output element count */
    int64_t inner;                                         /* dims[rank-1]: the length of one row */
    bool same_shape; /* every input has the output's shape (one flat run) */
} kiln_bcast_t;

/* Prepares the walk of n input shapes over the output shape out_rank/out_dims
 * (which must be their broadcast shape, e.g. from kiln_broadcast_shape). */
void kiln_bcast_init(kiln_bcast_t *b, int n, const int *ranks, const int64_t *const *dims, int out_rank,
                     const int64_t *out_dims);

/* Computes the broadcast shape of n tensors and prepares their walk; the
 * output shape is in *out_rank/out_dims (the unmerged shape to allocate). */
kiln_status_t kiln_bcast_tensors(kiln_bcast_t *b, int n, const kiln_tensor_t *const *ts, int *out_rank,
                                 int64_t *out_dims);

/* Called for one run of len output elements starting at out_off; input k
 * starts at element in_off[k] and advances by step[k] (0 or 1). */
typedef void (*kiln_bcast_row_fn)(void *arg, int64_t out_off, const int64_t *in_off, const int64_t *step,
                                  int64_t len);

/* Walks output elements [begin, end) as runs, calling fn for each. */
void kiln_bcast_rows(const kiln_bcast_t *b, int64_t begin, int64_t end, kiln_bcast_row_fn fn, void *arg);

#endif
