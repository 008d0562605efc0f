/*
 * shape_infer.h - static shape inference over a checked graph: fills in
 * the dtype and shape of values the file did not declare, for the ops whose
 * output shape follows from input shapes and constant operands.
 */
#ifndef KILN_CORE_SHAPE_INFER_H
#define KILN_CORE_SHAPE_INFER_H

#include "core/graph.h"

/* Runs over g's nodes in order (g must be topologically sorted).  Returns
 * KILN_ERR_INVALID_MODEL naming the node when static shapes certainly
 * conflict (operands that cannot broadcast, MatMul/Gemm inner dims). */
kiln_status_t kiln_graph_infer_shapes(kiln_graph_t *g);

#endif
