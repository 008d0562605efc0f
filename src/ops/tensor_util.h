/*
 * tensor_util.h - helpers shared by the tensor-movement kernels (the
 * "tensor" family: shape.c, transpose.c, slice.c, gather.c, scatter.c,
 * pad.c and tensor.c).
 *
 * These ops move elements without looking at them, so they are written by
 * element size, not by dtype: a float32 and an int32 tensor are copied by
 * the same 4-byte loop.  Strings are the one exception (each element is a
 * malloc'd pointer that must be duplicated), and every copy helper here
 * handles them.
 *
 * The workhorse is tops_strided_copy(): copy an N-d view described by dims
 * and per-dim source/destination strides.  Slice, Transpose, Expand, Tile,
 * Pad, DepthToSpace and SpaceToDepth are all such views of their input, so
 * they share one tuned loop (dims merged where contiguous, memcpy for
 * contiguous rows, a blocked loop for 2-D transposes, threads for large
 * copies).
 */
#ifndef KILN_OPS_TENSOR_UTIL_H
#define KILN_OPS_TENSOR_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/kernel.h"

/* A view may have up to twice the tensor rank (Tile splits every axis in
 * two: repeat index and position within the input). */
#define TOPS_MAX_VIEW_RANK (2 * KILN_MAX_RANK)

/* Registration of each file of the family (called by kiln_ops_register_tensor). */
void tops_register_shape(kiln_registry_t *reg);     /* shape.c */
void tops_register_transpose(kiln_registry_t *reg); /* transpose.c */
void tops_register_slice(kiln_registry_t *reg);     /* slice.c */
void tops_register_gather(kiln_registry_t *reg);    /* gather.c */
void tops_register_scatter(kiln_registry_t *reg);   /* scatter.c */
void tops_register_pad(kiln_registry_t *reg);       /* pad.c */

/* ---- Axes and shapes ---------------------------------------------------- */

/* Maps axis in [-rank, rank) to [0, rank); fails on the context otherwise.
 * `what` names the attribute or input in the message. */
kiln_status_t tops_axis(kiln_kernel_ctx_t *ctx, int64_t axis, int rank, const char *what, int *out);

/* Row-major element strides of a shape. */
void tops_strides(int rank, const int64_t *dims, int64_t *strides);

/* Reads an integer tensor (int32 or int64, any shape) into out[0..max).
 * Returns the element count, or -1 after failing the context (wrong dtype,
 * more than max values).  A NULL tensor is a failure too. */
int64_t tops_read_ints(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *t, const char *what, int64_t *out,
                       int64_t max);

/* An integer list (axes, split sizes) that a node takes as attribute
 * `name` before opset `input_since` and as input `input_index` from then on.  Returns the count
 * (0..max), -2 when the node has none (absent attribute or omitted input),
 * or -1 after failing the context. */
int64_t tops_ints_attr_or_input(kiln_kernel_ctx_t *ctx, const char *name, int input_since, int input_index,
                                int64_t *out, int64_t max);

/* Reads an index tensor (int32 or int64) into a new int64 array,
 * normalizing negative indices (i += dim) and checking each lies in
 * [-dim, dim).  `what` names the input.  Returns the array (free() it) or
 * NULL after failing the context.  An empty tensor gives a non-NULL array. */
int64_t *tops_read_indices(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *t, int64_t dim, const char *what);

/* GatherND / ScatterND: checks data x, indices ind [..., k] and batch_dims
 * b fit together; returns k or -1 after failing the context. */
int tops_check_nd_shapes(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, const kiln_tensor_t *ind, int b);

/* GatherND / ScatterND: range-checks every index tuple of ind (each of k
 * indices addresses data dims [b, b+k)) and sets *out to a new array
 * (free() it) of each tuple's element offset inside one batch of x.
 * Returns the tuple count or -1 after failing the context. */
int64_t tops_nd_offsets(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, const kiln_tensor_t *ind, int b,
                        int64_t **out);

/* Checks a shape computed from tensor values before allocating it: every
 * dim >= 0 and the total size sane.  Fails the context when not. */
kiln_status_t tops_check_shape(kiln_kernel_ctx_t *ctx, kiln_dtype_t dtype, int rank, const int64_t *dims,
                               const char *what);

/* ---- Copying elements --------------------------------------------------- */

/* Copies n elements of dtype from src to dst (regions must not overlap);
 * strings are duplicated (NULL becomes "").  Returns false when out of
 * memory for a string. */
bool tops_copy_elems(void *dst, const void *src, int64_t n, kiln_dtype_t dtype);

/* Copies the whole of src into the (already allocated, same size) dst. */
kiln_status_t tops_copy_tensor(kiln_kernel_ctx_t *ctx, kiln_tensor_t *dst, const kiln_tensor_t *src);

/* An N-d view: element [i0..in) is read at src + sum(i_d * src_strides[d])
 * and written at dst + sum(i_d * dst_strides[d]) (strides in elements; a
 * source stride may be 0 or negative). */
typedef struct tops_view {
    int rank;
    int64_t dims[TOPS_MAX_VIEW_RANK];
    int64_t src_strides[TOPS_MAX_VIEW_RANK];
    int64_t dst_strides[TOPS_MAX_VIEW_RANK];
} tops_view_t;

/* Copies a view.  src_offset and dst_offset are element offsets of index 0.
 * Uses the context's threads for large copies; ctx may be NULL (then it
 * runs on the calling thread and reports errors with kiln_fail).  Fails
 * only when out of memory for strings.  The view is modified (simplified)
 * in place. */
kiln_status_t tops_strided_copy(kiln_kernel_ctx_t *ctx, tops_view_t *view, kiln_dtype_t dtype, void *dst,
                                int64_t dst_offset, const void *src, int64_t src_offset);

#endif
