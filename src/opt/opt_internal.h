/*
 * opt_internal.h - what the optimizer's passes share: the working state
 * (the graph being rewritten plus per-value use counts) and the editing
 * helpers of graph_edit.c.
 *
 * Editing rules every pass follows:
 *   - value indices are never renumbered; new values are appended
 *     (opt_add_value, opt_add_initializer) and dead ones left unused;
 *   - a node is removed by opt_remove_node (it becomes a tombstone that
 *     opt_compact drops); a pass that rewrites a node in place keeps the
 *     rewritten node where the last node of its pattern was when its
 *     inputs demand it (the final graph check sorts nodes again anyway);
 *   - a value is "pinned" when it is a graph output or read by a subgraph
 *     (implicit input); pinned values keep their name and producer role,
 *     so patterns never swallow them;
 *   - only initializers that are not also graph inputs count as constants
 *     (a graph input with a default may be fed at run time);
 *   - uses[] is exact only right after opt_refresh(); passes call it after
 *     each rewrite that changes who reads what.
 */
#ifndef KILN_OPT_INTERNAL_H
#define KILN_OPT_INTERNAL_H

#include <stdbool.h>

#include "opt/opt.h"

typedef struct kiln_opt {
    kiln_session_t *session;
    kiln_opt_graph_t *owner;
    kiln_graph_t *g;
    int level;
    int opset;            /* the model's default-domain opset */
    int cap_index;        /* entries in uses/pinned */
    int *uses;            /* per value: node input slots (explicit and implicit) reading it */
    bool *pinned;         /* per value: graph output or implicit input of a node */
    kiln_status_t status; /* first failure (out of memory), passes stop on it */
} kiln_opt_t;

/* ---- graph_edit.c -------------------------------------------------------- */

/* Copies src's tables into o->owner's arena as o->g (see opt.h). */
kiln_status_t opt_copy_graph(kiln_opt_t *o, const kiln_graph_t *src);
/* Recomputes uses, pinned and producers of every value. */
kiln_status_t opt_refresh(kiln_opt_t *o);
/* Drops tombstones left by opt_remove_node. */
void opt_compact(kiln_opt_t *o);

/* True when v is a constant: an initializer that is not a graph input. */
bool opt_is_const(const kiln_opt_t *o, int v);
/* The constant tensor of v, or NULL when v is not a constant. */
const kiln_tensor_t *opt_const(const kiln_opt_t *o, int v);
/* A float32 constant's single value (count 1), false when it is not one. */
bool opt_const_scalar(const kiln_opt_t *o, int v, float *out);

/* The only node reading v (and the input slot), when v has exactly one
 * use and is not pinned; -1 otherwise. */
int opt_sole_user(const kiln_opt_t *o, int v, int *slot);
/* The node producing v, or -1. */
int opt_producer(const kiln_opt_t *o, int v);
/* True when output k of node i is unused (absent or read by nobody, not pinned). */
bool opt_output_unused(const kiln_opt_t *o, const kiln_node_t *node, int k);

void opt_remove_node(kiln_opt_t *o, int i);
/* Makes every node input reading `from` read `to`. */
void opt_replace_uses(kiln_opt_t *o, int from, int to);
/* Removes node i, whose output out_v equals its input in_v, rewiring the
 * graph; false (nothing changed) when pinned values forbid it. */
bool opt_bypass(kiln_opt_t *o, int i, int in_v, int out_v);

/* Appends a value (type unknown) named after base; -1 when out of memory. */
int opt_add_value(kiln_opt_t *o, const char *base);
/* Appends a constant value holding t (the graph's owner takes t, also on
 * failure); -1 when out of memory. */
int opt_add_initializer(kiln_opt_t *o, const char *base, kiln_tensor_t *t);
/* Makes value v (whose producer the caller removes) the constant t; the
 * owner takes t, also on failure. */
bool opt_set_const(kiln_opt_t *o, int v, kiln_tensor_t *t);
/* Keeps t in the owner's list of tensors to free with the graph; false
 * when out of memory (t is freed then). */
bool opt_own_tensor(kiln_opt_t *o, kiln_tensor_t *t);
/* Sets node i's inputs (arena copy of ins[0..n)). */
bool opt_set_inputs(kiln_opt_t *o, kiln_node_t *node, int n, const int *ins);
/* Gives node a copy of its attributes with room for `extra` more. */
bool opt_own_attrs(kiln_opt_t *o, kiln_node_t *node, int extra);
/* Adds (or replaces) an attribute; the node's attributes must be owned. */
void opt_set_attr_int(kiln_opt_t *o, kiln_node_t *node, const char *name, int64_t v);
void opt_set_attr_float(kiln_opt_t *o, kiln_node_t *node, const char *name, float v);
void opt_set_attr_string(kiln_opt_t *o, kiln_node_t *node, const char *name, const char *v);
void opt_set_attr_tensor(kiln_opt_t *o, kiln_node_t *node, const char *name, kiln_tensor_t *t);
bool opt_set_attr_ints(kiln_opt_t *o, kiln_node_t *node, const char *name, int n, const int64_t *v);
/* Turns node into op (domain, opset) keeping inputs, outputs and attributes. */
void opt_retype(kiln_opt_t *o, kiln_node_t *node, const char *domain, const char *op, int opset);
char *opt_strdup(kiln_opt_t *o, const char *s);

/* ---- the passes (passes_basic.c, passes_fuse.c, pass_attention.c) ------- */

int opt_constant_folding(kiln_opt_t *o);
int opt_identity_elimination(kiln_opt_t *o);
int opt_conv_bn_folding(kiln_opt_t *o);
int opt_conv_add_mul_folding(kiln_opt_t *o);
int opt_matmul_add_gemm(kiln_opt_t *o);
int opt_dead_node_elimination(kiln_opt_t *o);
int opt_unused_initializer_elimination(kiln_opt_t *o);
int opt_gelu_fusion(kiln_opt_t *o);
int opt_layer_norm_fusion(kiln_opt_t *o);
int opt_attention_fusion(kiln_opt_t *o); /* pass_attention.c */
int opt_matmul_bias_fusion(kiln_opt_t *o);
int opt_activation_fusion(kiln_opt_t *o);
int opt_transpose_matmul_folding(kiln_opt_t *o);
int opt_conv_fusion(kiln_opt_t *o);

/* True when node is op in the default ONNX domain. */
bool opt_is_op(const kiln_node_t *node, const char *op);

#endif
