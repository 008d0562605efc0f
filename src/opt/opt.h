/*
 * opt.h - the load-time graph optimizer: a session's own rewritten copy of
 * the model's graph.
 *
 * kiln_session_create() hands the model's checked graph to
 * kiln_opt_graph_create(), which copies it into a session-owned arena
 * (value, node, input/output and initializer tables are copied; attributes,
 * subgraphs and the model's weights are shared read-only) and runs the
 * passes of the requested level on the copy, as ONNX Runtime's levels:
 *
 *   0  none: the session runs the model's graph as it is
 *   1  basic: constant folding, Identity/Dropout/no-op elimination,
 *      Conv+BatchNormalization, Conv+Add/Mul (per-channel constant),
 *      MatMul+Add -> Gemm (2-D), dead node and initializer elimination;
 *      only standard ONNX ops come out
 *   2  extended: Conv/Gemm/MatMul + bias + activation -> com.kiln fused
 *      ops (FusedConv, FusedGemm, FusedMatMul), GELU and LayerNorm
 *      subgraphs -> com.kiln Gelu / LayerNormalization; the attention
 *      chain (MatMul, scale, mask, Softmax, MatMul and the head
 *      Transposes) -> com.kiln Attention; Conv (+ residual
 *      Add) -> FusedConv with bias and sum in its epilogue
 *   3  layout: level 2 plus MatMul(A, Transpose(B)) -> FusedMatMul with
 *      transB (the transpose disappears or keeps rows contiguous)
 *
 * The copy keeps every value index of the model's graph (new values are
 * appended, dead ones stay unused) so subgraphs of If/Loop/Scan, which
 * are shared with the model, still find their outer values.  Weights the
 * passes make (folded Conv weights, constant-folded results) belong to the
 * kiln_opt_graph_t and are freed with it.  See docs/OPTIMIZER.md.
 */
#ifndef KILN_OPT_OPT_H
#define KILN_OPT_OPT_H

#include <stddef.h>

#include "core/arena.h"
#include "core/graph.h"
#include "kiln.h"

/* The passes, in the order they run; the report counts how often each fired. */
typedef enum kiln_opt_pass {
    KILN_OPT_CONSTANT_FOLDING,
    KILN_OPT_IDENTITY_ELIMINATION,
    KILN_OPT_CONV_BN_FOLDING,
    KILN_OPT_CONV_ADD_MUL_FOLDING,
    KILN_OPT_MATMUL_ADD_GEMM,
    KILN_OPT_DEAD_NODE_ELIMINATION,
    KILN_OPT_UNUSED_INITIALIZER_ELIMINATION,
    KILN_OPT_GELU_FUSION,
    KILN_OPT_LAYER_NORM_FUSION,
    KILN_OPT_ATTENTION_FUSION,
    KILN_OPT_MATMUL_BIAS_FUSION,
    KILN_OPT_CONV_FUSION,
    KILN_OPT_ACTIVATION_FUSION,
    KILN_OPT_TRANSPOSE_MATMUL_FOLDING,
    KILN_OPT_PASS_COUNT
} kiln_opt_pass_t;

/* The domain and opset version of kiln's own fused ops (ops/fused.c). */
#define KILN_OPT_DOMAIN "com.kiln"
#define KILN_OPT_DOMAIN_VERSION 1

typedef struct kiln_opt_report {
    int level;
    int nodes_before, nodes_after;
    int initializers_before, initializers_after;
    size_t weight_bytes_before, weight_bytes_after; /* bytes of all initializers */
    int fired[KILN_OPT_PASS_COUNT];                 /* rewrites made by each pass */
} kiln_opt_report_t;

typedef struct kiln_opt_graph {
    kiln_arena_t arena; /* the graph copy's tables, new names, nodes and attributes */
    kiln_graph_t graph; /* the optimized graph (checked: sorted, kernels chosen) */
    int n_owned, cap_owned;
    kiln_tensor_t **owned; /* tensors the passes made (initializers of graph) */
    kiln_opt_report_t report;
} kiln_opt_graph_t;

/* A short name for a pass ("conv_bn_folding"). */
const char *kiln_opt_pass_name(kiln_opt_pass_t pass);

/* Copies src (a checked main graph) and optimizes the copy at level 1..3.
 * session runs the nodes constant folding evaluates (any session of the
 * same model: its threads are used, its graph is not).  *out is freed with
 * kiln_opt_graph_free(), after every run that uses its graph. */
kiln_status_t kiln_opt_graph_create(kiln_session_t *session, const kiln_graph_t *src, int level,
                                    kiln_opt_graph_t **out);
void kiln_opt_graph_free(kiln_opt_graph_t *o);

/* Node count of a graph and its subgraphs, and bytes of its initializers. */
int kiln_opt_count_nodes(const kiln_graph_t *g);
size_t kiln_opt_weight_bytes(const kiln_graph_t *g);

#endif
