/*
 * graph.h - kiln's in-memory graph IR.
 *
 * A graph holds values (named edges with a type: dtype, rank, and per-dim a
 * static size or a symbolic name), nodes (an op with attributes, reading and
 * writing values by index), the graph's inputs and outputs, and initializers
 * (constant tensors, usually borrowed from the mmap'd file).  Subgraphs of
 * If, Loop and Scan are graphs too; a value a subgraph reads from an
 * enclosing graph is listed in its `outer` table and resolved by name at
 * run time against the enclosing frame.
 *
 * All strings and arrays belong to the graph (allocated from the model's
 * arena, freed with it).  Nodes are kept in topological order after
 * kiln_graph_check().
 */
#ifndef KILN_CORE_GRAPH_H
#define KILN_CORE_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"

typedef struct kiln_graph kiln_graph_t;

typedef enum kiln_attr_type {
    KILN_ATTR_UNDEFINED = 0,
    KILN_ATTR_FLOAT = 1,
    KILN_ATTR_INT = 2,
    KILN_ATTR_STRING = 3,
    KILN_ATTR_TENSOR = 4,
    KILN_ATTR_GRAPH = 5,
    KILN_ATTR_FLOATS = 6,
    KILN_ATTR_INTS = 7,
    KILN_ATTR_STRINGS = 8,
    KILN_ATTR_TENSORS = 9,
    KILN_ATTR_GRAPHS = 10,
    KILN_ATTR_SPARSE_TENSOR = 11,
    KILN_ATTR_SPARSE_TENSORS = 12,
    KILN_ATTR_TYPE_PROTO = 13,
    KILN_ATTR_TYPE_PROTOS = 14
} kiln_attr_type_t;

typedef struct kiln_attr {
    const char *name;
    kiln_attr_type_t type;
    float f;
    int64_t i;
    const char *s;         /* STRING: NUL-terminated copy */
    size_t s_len;          /* STRING: length without the NUL */
    kiln_tensor_t *t;      /* TENSOR */
    kiln_graph_t *g;       /* GRAPH */
    int64_t n;             /* element count of the list forms */
    float *floats;         /* FLOATS */
    int64_t *ints;         /* INTS */
    const char **strings;  /* STRINGS */
    kiln_tensor_t **tensors; /* TENSORS */
    kiln_graph_t **graphs;   /* GRAPHS */
    struct kiln_type *tp;    /* TYPE_PROTO (Optional's `type`), NULL otherwise */
    const char *ref_attr_name; /* in functions: refers to a caller attribute */
} kiln_attr_t;

/* A dimension: a size >= 0, or -1 with an optional symbolic name. */
typedef struct kiln_dim {
    int64_t size;
    const char *symbol;
} kiln_dim_t;

/* The declared or inferred type of a value.  For a sequence, dtype, rank
 * and dims describe its elements. */
typedef struct kiln_type {
    kiln_value_kind_t kind; /* TENSOR or SEQUENCE; NONE = "optional of" below */
    bool optional;          /* declared as optional(...) */
    kiln_dtype_t dtype;     /* element dtype (UNDEFINED when unknown) */
    int rank;               /* -1 when unknown */
    kiln_dim_t dims[KILN_MAX_RANK];
} kiln_type_t;

typedef struct kiln_value_info {
    const char *name;
    kiln_type_t type;
    int producer;            /* node index, -1 for inputs/initializers/outer */
    int initializer;         /* index into graph->initializers, or -1 */
    int outer;               /* index into graph->outer, or -1 */
    bool is_graph_input;
    int consumers;           /* how many node input slots read it (+1 per graph output) */
} kiln_value_info_t;

struct kiln_kernel;

typedef struct kiln_node {
    const char *name;       /* may be "" in the file; kiln names it "<op>_<index>" */
    const char *op_type;
    const char *domain;     /* "" for the default ONNX domain */
    int opset;              /* the opset version in force for this domain */
    int n_inputs;
    int *inputs;            /* value indices; -1 for an empty (omitted) input */
    int n_outputs;
    int *outputs;           /* value indices; -1 for an omitted output */
    int n_attrs;
    kiln_attr_t *attrs;
    int n_implicit;
    int *implicit_inputs;   /* values its subgraphs read from this graph (If/Loop/Scan) */
    const struct kiln_kernel *kernel; /* chosen at check time */
} kiln_node_t;

typedef struct kiln_opset {
    const char *domain;
    int64_t version;
} kiln_opset_t;

struct kiln_graph {
    const char *name;
    kiln_graph_t *parent;      /* enclosing graph of a subgraph, or NULL */
    int n_values, cap_values;
    kiln_value_info_t *values;
    int n_nodes, cap_nodes;
    kiln_node_t *nodes;
    int n_inputs;
    int *inputs;               /* value indices of the graph inputs (incl. those with initializers) */
    int n_outputs;
    int *outputs;              /* value indices of the graph outputs */
    int n_initializers;
    kiln_tensor_t **initializers; /* borrowed or owned tensors */
    int *initializer_values;   /* value index of each initializer */
    int n_outer;
    int *outer_values;         /* value indices this graph reads from an enclosing scope */
    int *outer_parent_values;  /* for each outer value, its index in the parent graph */
    struct kiln_model_ir *model; /* the model this graph belongs to */
};

/* Model-level facts shared by the main graph and its subgraphs. */
typedef struct kiln_model_ir {
    int64_t ir_version;
    int n_opsets;
    kiln_opset_t *opsets;
    const char *producer_name;
    const char *producer_version;
    const char *path;          /* the file it came from ("" for bytes) */
    kiln_graph_t *graph;
} kiln_model_ir_t;

/* ---- Attribute lookup (NULL / default when absent) ---------------------- */

const kiln_attr_t *kiln_node_attr(const kiln_node_t *node, const char *name);
int64_t kiln_attr_int(const kiln_node_t *node, const char *name, int64_t def);
float kiln_attr_float(const kiln_node_t *node, const char *name, float def);
const char *kiln_attr_string(const kiln_node_t *node, const char *name, const char *def);
/* List attributes: return the element count and set *out, or -1 when absent. */
int64_t kiln_attr_ints(const kiln_node_t *node, const char *name, const int64_t **out);
int64_t kiln_attr_floats(const kiln_node_t *node, const char *name, const float **out);
int64_t kiln_attr_strings(const kiln_node_t *node, const char *name, const char *const **out);
const kiln_tensor_t *kiln_attr_tensor(const kiln_node_t *node, const char *name);
const kiln_graph_t *kiln_attr_graph(const kiln_node_t *node, const char *name);

/* ---- Building and checking --------------------------------------------- */

/* Finds a value by name in this graph only; -1 when absent. */
int kiln_graph_find_value(const kiln_graph_t *g, const char *name);

/* The opset version imported for a domain ("" and "ai.onnx" are the same);
 * 0 when the model does not import it. */
int64_t kiln_model_opset(const kiln_model_ir_t *m, const char *domain);

/* Checks the graph and its subgraphs: every node input is produced (by a
 * node, a graph input, an initializer or an enclosing scope), there is no
 * cycle, every op has a kernel for its domain and opset; sorts nodes
 * topologically, counts consumers and infers static shapes where it can.
 * The first problem is reported with the node's name and op. */
kiln_status_t kiln_graph_check(kiln_graph_t *g);
/* The same for g alone, leaving its subgraphs as they are (already checked
 * and possibly shared with other graphs): the optimizer's rewritten copy. */
kiln_status_t kiln_graph_check_shallow(kiln_graph_t *g);

#endif
