/*
 * graph.c - attribute lookup and the load-time graph check (see graph.h).
 *
 * The check sorts nodes topologically (Kahn's algorithm over explicit and
 * implicit inputs, so a cycle is found and named), finds a kernel for every
 * node in the registry (naming op, domain and opset when there is none),
 * counts each value's consumers (the executor frees a value after its last
 * use) and recurses into subgraphs.
 */
#include "core/graph.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/shape_infer.h"
#include "ops/kernel.h"

const kiln_attr_t *kiln_node_attr(const kiln_node_t *node, const char *name)
{
    for (int i = 0; i < node->n_attrs; i++)
        if (!strcmp(node->attrs[i].name, name))
            return &node->attrs[i];
    return NULL;
}

int64_t kiln_attr_int(const kiln_node_t *node, const char *name, int64_t def)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    return a ? a->i : def;
}

float kiln_attr_float(const kiln_node_t *node, const char *name, float def)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    if (!a)
        return def;
    return a->type == KILN_ATTR_INT ? (float)a->i : a->f;
}

const char *kiln_attr_string(const kiln_node_t *node, const char *name, const char *def)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    return a && a->s ? a->s : def;
}

int64_t kiln_attr_ints(const kiln_node_t *node, const char *name, const int64_t **out)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    if (!a || (a->type != KILN_ATTR_INTS && !a->ints))
        return -1;
    *out = a->ints;
    return a->ints ? a->n : 0;
}

int64_t kiln_attr_floats(const kiln_node_t *node, const char *name, const float **out)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    if (!a || (a->type != KILN_ATTR_FLOATS && !a->floats))
        return -1;
    *out = a->floats;
    return a->floats ? a->n : 0;
}

int64_t kiln_attr_strings(const kiln_node_t *node, const char *name, const char *const **out)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    if (!a || (a->type != KILN_ATTR_STRINGS && !a->strings))
        return -1;
    *out = a->strings;
    return a->strings ? a->n : 0;
}

const kiln_tensor_t *kiln_attr_tensor(const kiln_node_t *node, const char *name)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    return a ? a->t : NULL;
}

const kiln_graph_t *kiln_attr_graph(const kiln_node_t *node, const char *name)
{
    const kiln_attr_t *a = kiln_node_attr(node, name);
    return a ? a->g : NULL;
}

int kiln_graph_find_value(const kiln_graph_t *g, const char *name)
{
    for (int i = 0; i < g->n_values; i++)
        if (!strcmp(g->values[i].name, name))
            return i;
    return -1;
}

int64_t kiln_model_opset(const kiln_model_ir_t *m, const char *domain)
{
    if (!strcmp(domain, "ai.onnx"))
        domain = "";
    for (int i = 0; i < m->n_opsets; i++)
        if (!strcmp(m->opsets[i].domain, domain))
            return m->opsets[i].version;
    return 0;
}

/* Kahn's algorithm; reorders g->nodes in place and fixes producer indices. */
static kiln_status_t topo_sort(kiln_graph_t *g)
{
    int n = g->n_nodes;
    if (n == 0)
        return KILN_OK;
    int *pending = calloc((size_t)n, sizeof *pending);  /* unmet inputs per node */
    int *order = malloc((size_t)n * sizeof *order);
    int *users_start = calloc((size_t)g->n_values + 1, sizeof *users_start);
    int total = 0;
    for (int i = 0; i < n; i++)
        total += g->nodes[i].n_inputs + g->nodes[i].n_implicit;
    int *users = malloc((size_t)(total + 1) * sizeof *users);
    kiln_node_t *sorted = malloc((size_t)n * sizeof *sorted);
    if (!pending || !order || !users_start || !users || !sorted) {
        free(pending); free(order); free(users_start); free(users); free(sorted);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory sorting graph '%s'", g->name);
    }
    /* users of each value (CSR), counting only values produced by nodes */
    for (int i = 0; i < n; i++) {
        kiln_node_t *node = &g->nodes[i];
        for (int k = 0; k < node->n_inputs + node->n_implicit; k++) {
            int v = k < node->n_inputs ? node->inputs[k] : node->implicit_inputs[k - node->n_inputs];
            if (v >= 0 && g->values[v].producer >= 0) {
                users_start[v + 1]++;
                pending[i]++;
            }
        }
    }
    for (int v = 0; v < g->n_values; v++)
        users_start[v + 1] += users_start[v];
    int *fill = calloc((size_t)g->n_values + 1, sizeof *fill);
    if (!fill) {
        free(pending); free(order); free(users_start); free(users); free(sorted);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory sorting graph '%s'", g->name);
    }
    for (int i = 0; i < n; i++) {
        kiln_node_t *node = &g->nodes[i];
        for (int k = 0; k < node->n_inputs + node->n_implicit; k++) {
            int v = k < node->n_inputs ? node->inputs[k] : node->implicit_inputs[k - node->n_inputs];
            if (v >= 0 && g->values[v].producer >= 0)
                users[users_start[v] + fill[v]++] = i;
        }
    }
    free(fill);
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (pending[i] == 0)
            order[tail++] = i;
    while (head < tail) {
        int i = order[head++];
        kiln_node_t *node = &g->nodes[i];
        for (int k = 0; k < node->n_outputs; k++) {
            int v = node->outputs[k];
            if (v < 0)
                continue;
            for (int u = users_start[v]; u < users_start[v + 1]; u++)
                if (--pending[users[u]] == 0)
                    order[tail++] = users[u];
        }
    }
    kiln_status_t st = KILN_OK;
    if (tail < n) {
        int stuck = 0;
        while (stuck < n && pending[stuck] == 0)
            stuck++;
        st = kiln_fail(KILN_ERR_INVALID_MODEL, "graph '%s' has a cycle through node '%s' (%s)", g->name,
                       g->nodes[stuck].name, g->nodes[stuck].op_type);
    } else {
        for (int i = 0; i < n; i++)
            sorted[i] = g->nodes[order[i]];
        memcpy(g->nodes, sorted, (size_t)n * sizeof *sorted);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < g->nodes[i].n_outputs; k++)
                if (g->nodes[i].outputs[k] >= 0)
                    g->values[g->nodes[i].outputs[k]].producer = i;
    }
    free(pending); free(order); free(users_start); free(users); free(sorted);
    return st;
}

static kiln_status_t check_graph(kiln_graph_t *g, bool recurse);

kiln_status_t kiln_graph_check(kiln_graph_t *g)
{
    return check_graph(g, true);
}

kiln_status_t kiln_graph_check_shallow(kiln_graph_t *g)
{
    return check_graph(g, false);
}

static kiln_status_t check_graph(kiln_graph_t *g, bool recurse)
{
    kiln_status_t st = topo_sort(g);
    if (st)
        return st;
    const kiln_registry_t *reg = kiln_registry_default();
    for (int v = 0; v < g->n_values; v++)
        g->values[v].consumers = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        kiln_node_t *node = &g->nodes[i];
        for (int k = 0; k < node->n_inputs; k++)
            if (node->inputs[k] >= 0)
                g->values[node->inputs[k]].consumers++;
        for (int k = 0; k < node->n_implicit; k++)
            g->values[node->implicit_inputs[k]].consumers++;
        kiln_dtype_t dtype = KILN_DTYPE_UNDEFINED;
        if (node->n_inputs > 0 && node->inputs[0] >= 0)
            dtype = g->values[node->inputs[0]].type.dtype;
        bool known = false;
        node->kernel = kiln_registry_find(reg, KILN_PROVIDER_CPU, node->domain, node->op_type, node->opset,
                                          dtype, &known);
        if (!node->kernel && known)
            node->kernel = kiln_registry_find(reg, KILN_PROVIDER_CPU, node->domain, node->op_type,
                                              node->opset, KILN_DTYPE_UNDEFINED, &known);
        if (!node->kernel)
            return kiln_fail(KILN_ERR_UNSUPPORTED,
                             known ? "node '%s' (%s): op %s in domain '%s' has no kernel at opset %d"
                                   : "node '%s' (%s): unknown op %s in domain '%s' (opset %d)",
                             node->name, node->op_type, node->op_type,
                             node->domain[0] ? node->domain : "ai.onnx", node->opset);
        for (int a = 0; recurse && a < node->n_attrs; a++) {
            kiln_attr_t *at = &node->attrs[a];
            if (at->g && (st = kiln_graph_check(at->g)))
                return kiln_fail_prefix(st, "in subgraph '%s' of node '%s' (%s)", at->name, node->name, node->op_type);
            for (int64_t k = 0; at->graphs && k < at->n; k++)
                if ((st = kiln_graph_check(at->graphs[k])))
                    return kiln_fail_prefix(st, "in subgraph '%s' of node '%s' (%s)", at->name, node->name,
                                            node->op_type);
        }
    }
    for (int k = 0; k < g->n_outputs; k++)
        g->values[g->outputs[k]].consumers++;
    return kiln_graph_infer_shapes(g);
}
