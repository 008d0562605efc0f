/*
 * session.c - sessions, the graph executor and the kernel context
 * (see session.h and ops/kernel.h).
 */
#include "core/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ops/kernel.h"
#include "onnx/model.h"
#include "opt/opt.h"

/* The values of one running graph. */
typedef struct kiln_frame {
    const kiln_graph_t *graph;
    struct kiln_frame *parent;
    kiln_value_t **slots;   /* per value: current value (NULL when not yet produced) */
    bool *owned;            /* slot is freed by the frame */
    int *remaining;         /* consumers left before the slot can be freed */
    kiln_value_t *borrowed; /* wrappers for initializers (not owning their tensors) */
    size_t live_bytes, peak_bytes, total_bytes;
} kiln_frame_t;

struct kiln_kernel_ctx {
    kiln_session_t *session;
    kiln_frame_t *frame;
    const kiln_node_t *node;
    kiln_status_t status;
    kiln_value_t **dropped; /* outputs made for omitted slots, freed after the kernel */
    int n_dropped;
};

void kiln_session_options_init(kiln_session_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 0;
    o->optimization_level = 3;
    o->provider = KILN_PROVIDER_CPU;
}

kiln_status_t kiln_session_create(kiln_model_t *model, const kiln_session_options_t *options,
                                  kiln_session_t **out)
{
    *out = NULL;
    if (!model)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_create: model is NULL");
    if (model->parse_only)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_create: the model was loaded without a graph check");
    kiln_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory creating a session");
    if (options)
        s->options = *options;
    else
        kiln_session_options_init(&s->options);
    kiln_provider_t provider = s->options.provider;
    int requested = s->options.threads;
    if (provider != KILN_PROVIDER_CPU || requested < 0 || requested > 1024) {
        free(s);
        if (provider != KILN_PROVIDER_CPU)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "provider %d is not available in this build", (int)provider);
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "threads must be between 0 and 1024, not %d", requested);
    }
    int threads = s->options.threads ? s->options.threads : kiln_cpu_count();
    s->model = model;
    s->ir = &model->ir;
    if (threads > 1) {
        s->pool = kiln_threadpool_create(threads);
        if (!s->pool) {
            free(s);
            return kiln_fail(KILN_ERR_NO_MEMORY, "cannot start %d threads", threads);
        }
    }
    /* Which graph runs: the model's, or (level 1 and up) an optimized copy. */
    s->graph = s->ir->graph;
    if (s->options.optimization_level < 0) {
        int level = s->options.optimization_level;
        kiln_session_free(s);
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "optimization_level must be 0 or more, not %d", level);
    }
    if (s->options.optimization_level > 0) {
        int level = s->options.optimization_level > 3 ? 3 : s->options.optimization_level;
        kiln_status_t st = kiln_opt_graph_create(s, s->ir->graph, level, &s->opt);
        if (st) {
            kiln_session_free(s);
            return st;
        }
        s->graph = &s->opt->graph;
    }
    *out = s;
    return KILN_OK;
}

void kiln_session_free(kiln_session_t *s)
{
    if (!s)
        return;
    kiln_threadpool_free(s->pool);
    kiln_opt_graph_free(s->opt);
    free(s);
}

int kiln_session_input_count(const kiln_session_t *s)
{
    const kiln_graph_t *g = s->graph;
    int n = 0;
    for (int i = 0; i < g->n_inputs; i++)
        n += g->values[g->inputs[i]].initializer < 0;
    return n;
}

int kiln_session_output_count(const kiln_session_t *s) { return s->graph->n_outputs; }

static void fill_info(const kiln_value_info_t *v, kiln_io_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->name = v->name;
    info->dtype = v->type.dtype;
    info->rank = v->type.rank;
    for (int d = 0; d < v->type.rank && d < KILN_MAX_RANK; d++) {
        info->dims[d] = v->type.dims[d].size;
        info->dim_names[d] = v->type.dims[d].symbol;
    }
}

kiln_status_t kiln_session_input_info(const kiln_session_t *s, int index, kiln_io_info_t *info)
{
    const kiln_graph_t *g = s->graph;
    int n = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        const kiln_value_info_t *v = &g->values[g->inputs[i]];
        if (v->initializer >= 0)
            continue;
        if (n++ == index) {
            fill_info(v, info);
            return KILN_OK;
        }
    }
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input index %d is out of range (the model has %d inputs)", index, n);
}

kiln_status_t kiln_session_output_info(const kiln_session_t *s, int index, kiln_io_info_t *info)
{
    const kiln_graph_t *g = s->graph;
    if (index < 0 || index >= g->n_outputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output index %d is out of range (the model has %d outputs)",
                         index, g->n_outputs);
    fill_info(&g->values[g->outputs[index]], info);
    return KILN_OK;
}

/* ---- kernel context ------------------------------------------------------ */

const kiln_node_t *kiln_ctx_node(const kiln_kernel_ctx_t *ctx) { return ctx->node; }
int kiln_ctx_opset(const kiln_kernel_ctx_t *ctx) { return ctx->node->opset; }
int kiln_ctx_input_count(const kiln_kernel_ctx_t *ctx) { return ctx->node->n_inputs; }
int kiln_ctx_output_count(const kiln_kernel_ctx_t *ctx) { return ctx->node->n_outputs; }

const kiln_value_t *kiln_ctx_input_value(const kiln_kernel_ctx_t *ctx, int i)
{
    if (i < 0 || i >= ctx->node->n_inputs || ctx->node->inputs[i] < 0)
        return NULL;
    return ctx->frame->slots[ctx->node->inputs[i]];
}

const kiln_tensor_t *kiln_ctx_input(const kiln_kernel_ctx_t *ctx, int i)
{
    const kiln_value_t *v = kiln_ctx_input_value(ctx, i);
    return v && v->kind == KILN_VALUE_TENSOR ? v->tensor : NULL;
}

bool kiln_ctx_output_wanted(const kiln_kernel_ctx_t *ctx, int i)
{
    return i >= 0 && i < ctx->node->n_outputs && ctx->node->outputs[i] >= 0;
}

kiln_status_t kiln_ctx_set_output_value(kiln_kernel_ctx_t *ctx, int i, kiln_value_t *value)
{
    if (!value)
        return ctx->status = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "output %d could not be made", i);
    kiln_frame_t *f = ctx->frame;
    if (!kiln_ctx_output_wanted(ctx, i)) {
        kiln_value_t **d = realloc(ctx->dropped, (size_t)(ctx->n_dropped + 1) * sizeof *d);
        if (!d) {
            kiln_value_free(value);
            return ctx->status = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        }
        ctx->dropped = d;
        d[ctx->n_dropped++] = value;
        return KILN_OK;
    }
    int v = ctx->node->outputs[i];
    if (f->slots[v] && f->owned[v]) {
        if (f->slots[v]->tensor)
            f->live_bytes -= f->slots[v]->tensor->nbytes;
        kiln_value_free(f->slots[v]);
    }
    f->slots[v] = value;
    f->owned[v] = true;
    if (value->kind == KILN_VALUE_TENSOR && value->tensor) {
        f->live_bytes += value->tensor->nbytes;
        f->total_bytes += value->tensor->nbytes;
        if (f->live_bytes > f->peak_bytes)
            f->peak_bytes = f->live_bytes;
    }
    return KILN_OK;
}

kiln_tensor_t *kiln_ctx_output(kiln_kernel_ctx_t *ctx, int i, kiln_dtype_t dtype, int rank, const int64_t *dims)
{
    kiln_tensor_t *t = kiln_tensor_new(dtype, rank, dims);
    if (!t) {
        ctx->status = kiln_fail_prefix(KILN_ERR_NO_MEMORY, "node '%s' (%s) output %d", ctx->node->name,
                                       ctx->node->op_type, i);
        return NULL;
    }
    kiln_value_t *v = kiln_value_from_tensor(t);
    if (!v || kiln_ctx_set_output_value(ctx, i, v) != KILN_OK) {
        ctx->status = KILN_ERR_NO_MEMORY;
        return NULL;
    }
    return t;
}

kiln_status_t kiln_ctx_fail(kiln_kernel_ctx_t *ctx, kiln_status_t status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->status = status;
    return kiln_fail(status, "node '%s' (%s): %s", ctx->node->name, ctx->node->op_type, msg);
}

kiln_status_t kiln_ctx_status(const kiln_kernel_ctx_t *ctx)
{
    return ctx->status ? ctx->status : KILN_ERR_RUNTIME;
}

void kiln_ctx_parallel_for(kiln_kernel_ctx_t *ctx, int64_t n, int64_t grain, kiln_parallel_fn fn, void *arg)
{
    kiln_threadpool_run(ctx->session ? ctx->session->pool : NULL, n, grain, fn, arg);
}

kiln_status_t kiln_ctx_run_subgraph(kiln_kernel_ctx_t *ctx, const kiln_graph_t *graph, int n_inputs,
                                    const kiln_value_t *const *inputs, int n_outputs, kiln_value_t **outputs)
{
    if (n_inputs != graph->n_inputs)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "subgraph '%s' takes %d inputs, %d given", graph->name,
                             graph->n_inputs, n_inputs);
    if (n_outputs != graph->n_outputs)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "subgraph '%s' has %d outputs, %d expected", graph->name,
                             graph->n_outputs, n_outputs);
    kiln_status_t st = kiln_execute_graph(ctx->session, graph, ctx->frame, inputs, outputs);
    if (st)
        ctx->status = st;
    return st;
}

/* ---- executor ------------------------------------------------------------ */

/* Finds the slot of value v of graph g in frame f, following outer links. */
static kiln_value_t *frame_lookup(kiln_frame_t *f, int v)
{
    while (f) {
        const kiln_graph_t *g = f->graph;
        if (g->values[v].outer < 0 || f->slots[v])
            return f->slots[v];
        int pv = g->outer_parent_values[g->values[v].outer];
        f = f->parent;
        v = pv;
        if (v < 0)
            return NULL;
    }
    return NULL;
}

static void release_slot(kiln_frame_t *f, int v)
{
    if (f->owned[v] && f->slots[v]) {
        if (f->slots[v]->tensor)
            f->live_bytes -= f->slots[v]->tensor->nbytes;
        kiln_value_free(f->slots[v]);
    }
    f->slots[v] = NULL;
    f->owned[v] = false;
}

static kiln_status_t check_kernel_for_dtype(const kiln_node_t *node, const kiln_value_t *in0,
                                            const kiln_kernel_t **kernel)
{
    *kernel = node->kernel;
    if (!in0 || in0->kind != KILN_VALUE_TENSOR || !node->kernel->dtypes)
        return KILN_OK;
    kiln_dtype_t d = in0->tensor->dtype;
    if (node->kernel->dtypes & KILN_DTYPE_BIT(d))
        return KILN_OK;
    bool known;
    *kernel = kiln_registry_find(kiln_registry_default(), KILN_PROVIDER_CPU, node->domain, node->op_type,
                                 node->opset, d, &known);
    if (!*kernel)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "node '%s' (%s): no kernel for input type %s at opset %d",
                         node->name, node->op_type, kiln_dtype_name(d), node->opset);
    return KILN_OK;
}

kiln_status_t kiln_execute_graph(kiln_session_t *s, const kiln_graph_t *g, kiln_frame_t *parent,
                                 const kiln_value_t *const *inputs, kiln_value_t **outputs)
{
    kiln_frame_t f = {.graph = g, .parent = parent};
    kiln_status_t st = KILN_OK;
    int nv = g->n_values;
    f.slots = calloc((size_t)nv + 1, sizeof *f.slots);
    f.owned = calloc((size_t)nv + 1, sizeof *f.owned);
    f.remaining = calloc((size_t)nv + 1, sizeof *f.remaining);
    f.borrowed = calloc((size_t)g->n_initializers + 1, sizeof *f.borrowed);
    if (!f.slots || !f.owned || !f.remaining || !f.borrowed) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory running graph '%s'", g->name);
        goto done;
    }
    for (int v = 0; v < nv; v++)
        f.remaining[v] = g->values[v].consumers;
    for (int i = 0; i < g->n_initializers; i++) {
        f.borrowed[i].kind = KILN_VALUE_TENSOR;
        f.borrowed[i].tensor = g->initializers[i];
        f.slots[g->initializer_values[i]] = &f.borrowed[i];
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (inputs && inputs[i])
            f.slots[g->inputs[i]] = (kiln_value_t *)inputs[i]; /* borrowed, never written */
    for (int o = 0; o < g->n_outer; o++) {
        int v = g->outer_values[o];
        f.slots[v] = parent ? frame_lookup(parent, g->outer_parent_values[o]) : NULL;
        if (!f.slots[v]) {
            st = kiln_fail(KILN_ERR_INVALID_MODEL, "graph '%s': outer value '%s' is not available", g->name,
                           g->values[v].name);
            goto done;
        }
    }

    for (int i = 0; i < g->n_nodes && !st; i++) {
        const kiln_node_t *node = &g->nodes[i];
        for (int k = 0; k < node->n_inputs; k++) {
            int v = node->inputs[k];
            if (v >= 0 && !f.slots[v] && !(g->values[v].is_graph_input && g->values[v].type.optional)) {
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "node '%s' (%s): input '%s' has no value", node->name,
                               node->op_type, g->values[v].name);
                break;
            }
        }
        if (st)
            break;
        const kiln_kernel_t *kernel;
        st = check_kernel_for_dtype(node, node->n_inputs > 0 && node->inputs[0] >= 0 ? f.slots[node->inputs[0]] : NULL,
                                    &kernel);
        if (st)
            break;
        kiln_kernel_ctx_t ctx = {.session = s, .frame = &f, .node = node};
        st = kernel->run(&ctx);
        if (st == KILN_OK && ctx.status)
            st = ctx.status;
        if (st == KILN_OK) {
            for (int k = 0; k < node->n_outputs; k++)
                if (node->outputs[k] >= 0 && !f.slots[node->outputs[k]]) {
                    st = kiln_fail(KILN_ERR_RUNTIME, "node '%s' (%s): kernel did not produce output %d ('%s')",
                                   node->name, node->op_type, k, g->values[node->outputs[k]].name);
                    break;
                }
        }
        for (int k = 0; k < ctx.n_dropped; k++)
            kiln_value_free(ctx.dropped[k]);
        free(ctx.dropped);
        /* release inputs whose last consumer this was */
        for (int k = 0; k < node->n_inputs + node->n_implicit; k++) {
            int v = k < node->n_inputs ? node->inputs[k] : node->implicit_inputs[k - node->n_inputs];
            if (v >= 0 && --f.remaining[v] == 0)
                release_slot(&f, v);
        }
        /* outputs nobody reads */
        for (int k = 0; k < node->n_outputs; k++) {
            int v = node->outputs[k];
            if (v >= 0 && f.remaining[v] == 0)
                release_slot(&f, v);
        }
    }
    if (!st) {
        for (int k = 0; k < g->n_outputs; k++) {
            int v = g->outputs[k];
            kiln_value_t *val = f.slots[v] ? f.slots[v] : frame_lookup(&f, v);
            if (!val) {
                st = kiln_fail(KILN_ERR_RUNTIME, "graph '%s': output '%s' was not produced", g->name, g->values[v].name);
                break;
            }
            /* An output may be listed twice or be borrowed: hand out a copy then. */
            bool take = f.owned[v] && f.slots[v] == val;
            for (int j = k + 1; j < g->n_outputs && take; j++)
                take = g->outputs[j] != v;
            if (take) {
                outputs[k] = val;
                f.slots[v] = NULL;
                f.owned[v] = false;
            } else {
                outputs[k] = kiln_value_clone(val);
                if (!outputs[k]) {
                    st = KILN_ERR_NO_MEMORY;
                    break;
                }
            }
        }
        if (st)
            for (int k = 0; k < g->n_outputs; k++) {
                kiln_value_free(outputs[k]);
                outputs[k] = NULL;
            }
    }
    if (!parent) {
        s->last_peak_bytes = f.peak_bytes;
        s->last_total_bytes = f.total_bytes;
    }
done:
    if (f.slots)
        for (int v = 0; v < nv; v++)
            if (f.owned[v])
                kiln_value_free(f.slots[v]);
    free(f.slots);
    free(f.owned);
    free(f.remaining);
    free(f.borrowed);
    return st;
}

/* ---- public run ---------------------------------------------------------- */

static bool dims_match(const kiln_value_info_t *vi, const kiln_tensor_t *t)
{
    if (vi->type.rank < 0)
        return true;
    if (vi->type.rank != t->rank)
        return false;
    for (int d = 0; d < t->rank; d++)
        if (vi->type.dims[d].size >= 0 && vi->type.dims[d].size != t->dims[d])
            return false;
    return true;
}

kiln_status_t kiln_session_run(kiln_session_t *s, int input_count, const char *const *input_names,
                               const kiln_tensor_t *const *inputs, int output_count, kiln_tensor_t **outputs)
{
    const kiln_graph_t *g = s->graph;
    if (output_count != g->n_outputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the model has %d outputs, output_count is %d", g->n_outputs,
                         output_count);
    kiln_value_t *in_vals = calloc((size_t)g->n_inputs + 1, sizeof *in_vals);
    const kiln_value_t **in_ptrs = calloc((size_t)g->n_inputs + 1, sizeof *in_ptrs);
    kiln_value_t **out_vals = calloc((size_t)g->n_outputs + 1, sizeof *out_vals);
    kiln_status_t st = KILN_OK;
    if (!in_vals || !in_ptrs || !out_vals) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int k = 0; k < input_count && !st; k++) {
        int found = -1;
        for (int i = 0; i < g->n_inputs; i++)
            if (!strcmp(g->values[g->inputs[i]].name, input_names[k]))
                found = i;
        if (found < 0) {
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the model has no input named '%s'", input_names[k]);
            break;
        }
        const kiln_value_info_t *vi = &g->values[g->inputs[found]];
        const kiln_tensor_t *t = inputs[k];
        char want[256], have[256];
        if (!t) {
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' is NULL", input_names[k]);
        } else if (vi->type.dtype != KILN_DTYPE_UNDEFINED && vi->type.dtype != t->dtype) {
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must be %s, got %s", vi->name,
                           kiln_dtype_name(vi->type.dtype), kiln_dtype_name(t->dtype));
        } else if (!dims_match(vi, t)) {
            int64_t d[KILN_MAX_RANK];
            for (int j = 0; j < vi->type.rank; j++)
                d[j] = vi->type.dims[j].size;
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must have shape %s (-1 = any), got %s", vi->name,
                           kiln_shape_str(vi->type.rank, d, want, sizeof want),
                           kiln_shape_str(t->rank, t->dims, have, sizeof have));
        } else {
            in_vals[found].kind = KILN_VALUE_TENSOR;
            in_vals[found].tensor = (kiln_tensor_t *)t;
            in_ptrs[found] = &in_vals[found];
        }
    }
    for (int i = 0; i < g->n_inputs && !st; i++)
        if (!in_ptrs[i] && g->values[g->inputs[i]].initializer < 0)
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' is missing", g->values[g->inputs[i]].name);
    if (!st)
        st = kiln_execute_graph(s, g, NULL, in_ptrs, out_vals);
    if (!st) {
        for (int k = 0; k < g->n_outputs; k++) {
            if (out_vals[k]->kind != KILN_VALUE_TENSOR) {
                st = kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' is a sequence or optional; use the value API",
                               g->values[g->outputs[k]].name);
                break;
            }
        }
        for (int k = 0; k < g->n_outputs; k++) {
            if (!st) {
                outputs[k] = out_vals[k]->tensor;
                out_vals[k]->tensor = NULL;
            }
            kiln_value_free(out_vals[k]);
        }
    }
done:
    free(in_vals);
    free(in_ptrs);
    free(out_vals);
    return st;
}

kiln_status_t kiln_session_run_values(kiln_session_t *s, int n_inputs, const kiln_value_t *const *inputs,
                                      kiln_value_t **outputs)
{
    const kiln_graph_t *g = s->graph;
    const kiln_value_t **in_ptrs = calloc((size_t)g->n_inputs + 1, sizeof *in_ptrs);
    if (!in_ptrs)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    kiln_status_t st = KILN_OK;
    int k = 0;
    for (int i = 0; i < g->n_inputs && !st; i++) {
        const kiln_value_info_t *vi = &g->values[g->inputs[i]];
        if (vi->initializer >= 0)
            continue;
        const kiln_value_t *v = k < n_inputs ? inputs[k] : NULL;
        k++;
        if (!v) {
            if (!vi->type.optional)
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' is missing", vi->name);
            continue;
        }
        if (v->kind == KILN_VALUE_TENSOR) {
            if (vi->type.dtype != KILN_DTYPE_UNDEFINED && vi->type.dtype != v->tensor->dtype)
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must be %s, got %s", vi->name,
                               kiln_dtype_name(vi->type.dtype), kiln_dtype_name(v->tensor->dtype));
            else if (!dims_match(vi, v->tensor)) {
                char have[256];
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must have rank %d, got shape %s", vi->name,
                               vi->type.rank, kiln_shape_str(v->tensor->rank, v->tensor->dims, have, sizeof have));
            }
        }
        in_ptrs[i] = v;
    }
    if (!st && k < n_inputs)
        st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%d inputs given, the model takes %d", n_inputs, k);
    if (!st)
        st = kiln_execute_graph(s, g, NULL, in_ptrs, outputs);
    free(in_ptrs);
    return st;
}
