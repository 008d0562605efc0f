/*
 * graph_edit.c - copying a graph for the optimizer and the small edits its
 * passes are made of (see opt_internal.h for the rules they keep).
 *
 * Everything new lives in the kiln_opt_graph_t's arena; tables that grow
 * (values, initializers) are reallocated there by copying, the old block
 * simply stays in the arena until the session is freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "opt/opt_internal.h"

static void *arena_dup(kiln_opt_t *o, const void *src, size_t count, size_t size)
{
    void *p = kiln_arena_array(&o->owner->arena, count ? count : 1, size);
    if (!p) {
        o->status = KILN_ERR_NO_MEMORY;
        return NULL;
    }
    if (count && src)
        memcpy(p, src, count * size);
    return p;
}

char *opt_strdup(kiln_opt_t *o, const char *s)
{
    char *p = kiln_arena_strndup(&o->owner->arena, s, strlen(s));
    if (!p)
        o->status = KILN_ERR_NO_MEMORY;
    return p;
}

kiln_status_t opt_copy_graph(kiln_opt_t *o, const kiln_graph_t *src)
{
    kiln_graph_t *g = &o->owner->graph;
    *g = *src;
    g->cap_values = src->n_values + 64;
    g->values = kiln_arena_array(&o->owner->arena, (size_t)g->cap_values, sizeof *g->values);
    g->cap_nodes = src->n_nodes;
    g->nodes = arena_dup(o, src->nodes, (size_t)src->n_nodes, sizeof *src->nodes);
    g->inputs = arena_dup(o, src->inputs, (size_t)src->n_inputs, sizeof *src->inputs);
    g->outputs = arena_dup(o, src->outputs, (size_t)src->n_outputs, sizeof *src->outputs);
    g->initializers = arena_dup(o, src->initializers, (size_t)src->n_initializers, sizeof *src->initializers);
    g->initializer_values =
        arena_dup(o, src->initializer_values, (size_t)src->n_initializers, sizeof *src->initializer_values);
    if (!g->values || !g->nodes || !g->inputs || !g->outputs || !g->initializers || !g->initializer_values)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory copying graph '%s'", src->name);
    if (src->n_values) /* a graph may have no values at all */
        memcpy(g->values, src->values, (size_t)src->n_values * sizeof *g->values);
    for (int i = 0; i < g->n_nodes; i++) {
        kiln_node_t *n = &g->nodes[i];
        n->inputs = arena_dup(o, n->inputs, (size_t)n->n_inputs, sizeof *n->inputs);
        n->outputs = arena_dup(o, n->outputs, (size_t)n->n_outputs, sizeof *n->outputs);
        if (!n->inputs || !n->outputs)
            return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory copying graph '%s'", src->name);
    }
    o->g = g;
    return KILN_OK;
}

kiln_status_t opt_refresh(kiln_opt_t *o)
{
    kiln_graph_t *g = o->g;
    if (o->cap_index < g->n_values) {
        int cap = g->cap_values > g->n_values ? g->cap_values : g->n_values;
        int *uses = realloc(o->uses, (size_t)cap * sizeof *uses);
        if (uses)
            o->uses = uses;
        bool *pinned = realloc(o->pinned, (size_t)cap * sizeof *pinned);
        if (pinned)
            o->pinned = pinned;
        if (!uses || !pinned)
            return o->status = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory optimizing graph '%s'", g->name);
        o->cap_index = cap;
    }
    if (g->n_values) { /* an empty graph has no tables yet */
        memset(o->uses, 0, (size_t)g->n_values * sizeof *o->uses);
        memset(o->pinned, 0, (size_t)g->n_values * sizeof *o->pinned);
    }
    for (int v = 0; v < g->n_values; v++)
        g->values[v].producer = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln_node_t *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                o->uses[n->inputs[k]]++;
        for (int k = 0; k < n->n_implicit; k++) {
            o->uses[n->implicit_inputs[k]]++;
            o->pinned[n->implicit_inputs[k]] = true;
        }
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0)
                g->values[n->outputs[k]].producer = i;
    }
    for (int k = 0; k < g->n_outputs; k++)
        o->pinned[g->outputs[k]] = true;
    return KILN_OK;
}

void opt_compact(kiln_opt_t *o)
{
    kiln_graph_t *g = o->g;
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op_type)
            g->nodes[n++] = g->nodes[i];
    g->n_nodes = n;
    opt_refresh(o);
}

bool opt_is_const(const kiln_opt_t *o, int v)
{
    return v >= 0 && o->g->values[v].initializer >= 0 && !o->g->values[v].is_graph_input;
}

const kiln_tensor_t *opt_const(const kiln_opt_t *o, int v)
{
    return opt_is_const(o, v) ? o->g->initializers[o->g->values[v].initializer] : NULL;
}

bool opt_const_scalar(const kiln_opt_t *o, int v, float *out)
{
    const kiln_tensor_t *t = opt_const(o, v);
    if (!t || t->count != 1 || t->dtype != KILN_DTYPE_FLOAT32)
        return false;
    *out = *(const float *)t->data;
    return true;
}

int opt_sole_user(const kiln_opt_t *o, int v, int *slot)
{
    if (v < 0 || o->uses[v] != 1 || o->pinned[v])
        return -1;
    for (int i = 0; i < o->g->n_nodes; i++) {
        const kiln_node_t *n = &o->g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == v) {
                if (slot)
                    *slot = k;
                return i;
            }
    }
    return -1;
}

int opt_producer(const kiln_opt_t *o, int v)
{
    return v >= 0 ? o->g->values[v].producer : -1;
}

bool opt_output_unused(const kiln_opt_t *o, const kiln_node_t *node, int k)
{
    if (k >= node->n_outputs || node->outputs[k] < 0)
        return true;
    int v = node->outputs[k];
    return o->uses[v] == 0 && !o->pinned[v];
}

bool opt_is_op(const kiln_node_t *node, const char *op)
{
    return node->op_type && (!node->domain[0] || !strcmp(node->domain, "ai.onnx")) &&
           !strcmp(node->op_type, op);
}

void opt_remove_node(kiln_opt_t *o, int i)
{
    kiln_node_t *n = &o->g->nodes[i];
    n->op_type = NULL;
    n->n_inputs = n->n_outputs = n->n_implicit = 0;
}

void opt_replace_uses(kiln_opt_t *o, int from, int to)
{
    for (int i = 0; i < o->g->n_nodes; i++) {
        kiln_node_t *n = &o->g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == from)
                n->inputs[k] = to;
    }
}

bool opt_bypass(kiln_opt_t *o, int i, int in_v, int out_v)
{
    kiln_graph_t *g = o->g;
    if (in_v < 0 || out_v < 0)
        return false;
    if (!o->pinned[out_v]) {
        opt_remove_node(o, i);
        opt_replace_uses(o, out_v, in_v);
        opt_refresh(o);
        return true;
    }
    /* out_v must keep its name: let in_v's producer write out_v instead. */
    int p = opt_producer(o, in_v);
    if (p < 0 || p == i || o->pinned[in_v])
        return false;
    opt_remove_node(o, i);
    kiln_node_t *pn = &g->nodes[p];
    for (int k = 0; k < pn->n_outputs; k++)
        if (pn->outputs[k] == in_v)
            pn->outputs[k] = out_v;
    opt_replace_uses(o, in_v, out_v);
    opt_refresh(o);
    return true;
}

/* A value name not yet in the graph: base, then base_1, base_2... */
static char *unique_name(kiln_opt_t *o, const char *base)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", base);
    for (int k = 1; kiln_graph_find_value(o->g, buf) >= 0; k++)
        snprintf(buf, sizeof buf, "%s_%d", base, k);
    return opt_strdup(o, buf);
}

int opt_add_value(kiln_opt_t *o, const char *base)
{
    kiln_graph_t *g = o->g;
    char *name = unique_name(o, base);
    if (!name)
        return -1;
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values * 2 + 16;
        kiln_value_info_t *vals = arena_dup(o, NULL, (size_t)cap, sizeof *vals);
        if (!vals)
            return -1;
        memcpy(vals, g->values, (size_t)g->n_values * sizeof *vals);
        g->values = vals;
        g->cap_values = cap;
    }
    int v = g->n_values++;
    kiln_value_info_t *vi = &g->values[v];
    memset(vi, 0, sizeof *vi);
    vi->name = name;
    vi->type.rank = -1;
    vi->producer = vi->initializer = vi->outer = -1;
    if (opt_refresh(o) != KILN_OK)
        return -1;
    return v;
}

bool opt_own_tensor(kiln_opt_t *o, kiln_tensor_t *t)
{
    kiln_opt_graph_t *ow = o->owner;
    if (ow->n_owned == ow->cap_owned) {
        int cap = ow->cap_owned * 2 + 16;
        kiln_tensor_t **owned = realloc(ow->owned, (size_t)cap * sizeof *owned);
        if (!owned) {
            kiln_tensor_free(t);
            o->status = KILN_ERR_NO_MEMORY;
            return false;
        }
        ow->owned = owned;
        ow->cap_owned = cap;
    }
    ow->owned[ow->n_owned++] = t;
    return true;
}

bool opt_set_const(kiln_opt_t *o, int v, kiln_tensor_t *t)
{
    if (!opt_own_tensor(o, t))
        return false;
    kiln_graph_t *g = o->g;
    kiln_tensor_t **inits = arena_dup(o, g->initializers, (size_t)g->n_initializers + 1, sizeof *inits);
    int *init_values =
        arena_dup(o, g->initializer_values, (size_t)g->n_initializers + 1, sizeof *init_values);
    if (!inits || !init_values)
        return false;
    inits[g->n_initializers] = t;
    init_values[g->n_initializers] = v;
    g->initializers = inits;
    g->initializer_values = init_values;
    kiln_value_info_t *vi = &g->values[v];
    vi->initializer = g->n_initializers++;
    vi->producer = -1;
    vi->type.kind = KILN_VALUE_TENSOR;
    vi->type.optional = false;
    vi->type.dtype = t->dtype;
    vi->type.rank = t->rank;
    for (int d = 0; d < t->rank; d++) {
        vi->type.dims[d].size = t->dims[d];
        vi->type.dims[d].symbol = NULL;
    }
    return true;
}

int opt_add_initializer(kiln_opt_t *o, const char *base, kiln_tensor_t *t)
{
    int v = opt_add_value(o, base);
    if (v < 0) {
        kiln_tensor_free(t);
        return -1;
    }
    return opt_set_const(o, v, t) ? v : -1;
}

bool opt_set_inputs(kiln_opt_t *o, kiln_node_t *node, int n, const int *ins)
{
    int *p = arena_dup(o, ins, (size_t)n, sizeof *ins);
    if (!p)
        return false;
    node->inputs = p;
    node->n_inputs = n;
    return true;
}

bool opt_own_attrs(kiln_opt_t *o, kiln_node_t *node, int extra)
{
    kiln_attr_t *a = arena_dup(o, NULL, (size_t)(node->n_attrs + extra), sizeof *a);
    if (!a)
        return false;
    if (node->n_attrs)
        memcpy(a, node->attrs, (size_t)node->n_attrs * sizeof *a);
    node->attrs = a;
    return true;
}

/* The attribute slot for name: the existing one, or a new one at the end
 * (the caller reserved room with opt_own_attrs). */
static kiln_attr_t *attr_slot(kiln_opt_t *o, kiln_node_t *node, const char *name)
{
    for (int i = 0; i < node->n_attrs; i++)
        if (!strcmp(node->attrs[i].name, name)) {
            memset(&node->attrs[i], 0, sizeof node->attrs[i]);
            node->attrs[i].name = name;
            return &node->attrs[i];
        }
    kiln_attr_t *a = &node->attrs[node->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = opt_strdup(o, name);
    return a;
}

void opt_set_attr_int(kiln_opt_t *o, kiln_node_t *node, const char *name, int64_t v)
{
    kiln_attr_t *a = attr_slot(o, node, name);
    a->type = KILN_ATTR_INT;
    a->i = v;
}

void opt_set_attr_float(kiln_opt_t *o, kiln_node_t *node, const char *name, float v)
{
    kiln_attr_t *a = attr_slot(o, node, name);
    a->type = KILN_ATTR_FLOAT;
    a->f = v;
}

bool opt_set_attr_ints(kiln_opt_t *o, kiln_node_t *node, const char *name, int n, const int64_t *v)
{
    int64_t *copy = arena_dup(o, v, (size_t)n, sizeof *v);
    if (!copy)
        return false;
    kiln_attr_t *a = attr_slot(o, node, name);
    a->type = KILN_ATTR_INTS;
    a->ints = copy;
    a->n = n;
    return true;
}

void opt_set_attr_tensor(kiln_opt_t *o, kiln_node_t *node, const char *name, kiln_tensor_t *t)
{
    kiln_attr_t *a = attr_slot(o, node, name);
    a->type = KILN_ATTR_TENSOR;
    a->t = t;
}

void opt_set_attr_string(kiln_opt_t *o, kiln_node_t *node, const char *name, const char *v)
{
    kiln_attr_t *a = attr_slot(o, node, name);
    a->type = KILN_ATTR_STRING;
    a->s = opt_strdup(o, v);
    a->s_len = a->s ? strlen(a->s) : 0;
}

void opt_retype(kiln_opt_t *o, kiln_node_t *node, const char *domain, const char *op, int opset)
{
    node->domain = domain;
    node->op_type = op;
    node->opset = opset;
    node->kernel = NULL;
}
