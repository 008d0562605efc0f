/*
 * passes_basic.c - the level-1 passes: constant folding, Identity/Dropout/
 * no-op elimination, Conv+BatchNormalization and Conv+Add/Mul folding into
 * the convolution's weights, MatMul+Add -> Gemm, and removal of dead nodes
 * and unused initializers.  Everything they produce is standard ONNX.
 *
 * Each pass walks the nodes once, rewrites what matches and returns how
 * many rewrites it made; the driver (optimizer.c) repeats the level's pass
 * list until nothing fires.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/session.h"
#include "ops/kernel.h"
#include "opt/opt_internal.h"

/* ---- constant folding ---------------------------------------------------- */

/* A folded result larger than this (and than its inputs together) stays a
 * node: ConstantOfShape/Expand/Tile may make big tensors from tiny ones. */
enum { FOLD_MAX_GROWTH_BYTES = 4 << 20 };

static bool foldable_op(const kiln_node_t *n)
{
    static const char *const never[] = {"RandomNormal",
                                        "RandomUniform",
                                        "RandomNormalLike",
                                        "RandomUniformLike",
                                        "Multinomial",
                                        "Bernoulli",
                                        "If",
                                        "Loop",
                                        "Scan",
                                        "SequenceMap"};
    if (n->n_implicit || !n->kernel)
        return false;
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (!strcmp(n->op_type, never[i]))
            return false;
    for (int a = 0; a < n->n_attrs; a++)
        if (n->attrs[a].g || n->attrs[a].graphs)
            return false;
    return true;
}

/* Runs node (all of whose inputs are constants) in a one-node graph and
 * returns its outputs (NULL for omitted ones); false when it cannot. */
static bool run_const_node(kiln_opt_t *o, const kiln_node_t *node, kiln_value_t **outs)
{
    const kiln_graph_t *g = o->g;
    int n_in = node->n_inputs, n_out = node->n_outputs;
    kiln_value_info_t *vals = calloc((size_t)(n_in + n_out) + 1, sizeof *vals);
    kiln_tensor_t **inits = calloc((size_t)n_in + 1, sizeof *inits);
    int *init_vals = calloc((size_t)n_in + 1, sizeof *init_vals);
    int *ins = calloc((size_t)n_in + 1, sizeof *ins);
    int *outv = calloc((size_t)n_out + 1, sizeof *outv);
    int *graph_outs = calloc((size_t)n_out + 1, sizeof *graph_outs);
    kiln_value_t **results = calloc((size_t)n_out + 1, sizeof *results);
    bool ok = vals && inits && init_vals && ins && outv && graph_outs && results;
    kiln_graph_t t = {.name = "constant folding", .values = vals, .model = g->model};
    kiln_node_t copy = *node;
    int n_init = 0, n_gout = 0;
    for (int k = 0; ok && k < n_in; k++) {
        int v = node->inputs[k];
        if (v < 0) {
            ins[k] = -1;
            continue;
        }
        int tv = t.n_values++;
        vals[tv] = g->values[v];
        vals[tv].producer = -1;
        vals[tv].outer = -1;
        vals[tv].initializer = n_init;
        vals[tv].is_graph_input = false;
        vals[tv].consumers = 1;
        inits[n_init] = (kiln_tensor_t *)opt_const(o, v);
        init_vals[n_init++] = tv;
        ins[k] = tv;
    }
    for (int k = 0; ok && k < n_out; k++) {
        if (node->outputs[k] < 0) {
            outv[k] = -1;
            continue;
        }
        int tv = t.n_values++;
        vals[tv] = g->values[node->outputs[k]];
        vals[tv].producer = 0;
        vals[tv].outer = -1;
        vals[tv].is_graph_input = false;
        vals[tv].initializer = -1;
        vals[tv].consumers = 1;
        outv[k] = tv;
        graph_outs[n_gout++] = tv;
    }
    if (ok) {
        copy.inputs = ins;
        copy.outputs = outv;
        t.nodes = &copy;
        t.n_nodes = 1;
        t.initializers = inits;
        t.initializer_values = init_vals;
        t.n_initializers = n_init;
        t.outputs = graph_outs;
        t.n_outputs = n_gout;
        ok = kiln_execute_graph(o->session, &t, NULL, NULL, results) == KILN_OK;
        kiln_clear_error();
    }
    for (int k = 0, j = 0; k < n_out; k++)
        outs[k] = ok && outv[k] >= 0 ? results[j++] : NULL;
    free(vals);
    free(inits);
    free(init_vals);
    free(ins);
    free(outv);
    free(graph_outs);
    free(results);
    return ok;
}

int opt_constant_folding(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *node = &g->nodes[i];
        if (!node->op_type || !foldable_op(node) || node->n_outputs == 0)
            continue;
        bool all_const = true;
        size_t in_bytes = 0;
        for (int k = 0; k < node->n_inputs && all_const; k++) {
            int v = node->inputs[k];
            if (v < 0)
                continue;
            all_const = opt_is_const(o, v);
            if (all_const)
                in_bytes += opt_const(o, v)->nbytes;
        }
        /* Constant (no inputs) is folded; other input-less ops make data. */
        if (!all_const || (node->n_inputs == 0 && !opt_is_op(node, "Constant")))
            continue;
        bool pinned_out = false;
        for (int k = 0; k < node->n_outputs; k++)
            pinned_out |= node->outputs[k] >= 0 && o->pinned[node->outputs[k]];
        if (pinned_out) /* graph outputs stay computed: their names and types are the model's */
            continue;
        kiln_value_t *outs[16] = {0};
        if (node->n_outputs > 16 || !run_const_node(o, node, outs))
            continue;
        bool usable = true;
        for (int k = 0; k < node->n_outputs; k++) {
            if (!outs[k])
                continue;
            if (outs[k]->kind != KILN_VALUE_TENSOR || !outs[k]->tensor ||
                (outs[k]->tensor->nbytes > FOLD_MAX_GROWTH_BYTES && outs[k]->tensor->nbytes > in_bytes))
                usable = false;
        }
        for (int k = 0; k < node->n_outputs && usable; k++) {
            if (!outs[k])
                continue;
            kiln_tensor_t *t = outs[k]->tensor;
            outs[k]->tensor = NULL;
            if (!opt_set_const(o, node->outputs[k], t))
                break;
        }
        for (int k = 0; k < node->n_outputs; k++)
            kiln_value_free(outs[k]);
        if (usable && !o->status) {
            opt_remove_node(o, i);
            opt_refresh(o);
            fired++;
        }
    }
    return fired;
}

/* ---- Identity, Dropout and no-op elimination ---------------------------- */

/* The value a no-op node passes through unchanged, or -1. */
static int passthrough_input(const kiln_opt_t *o, const kiln_node_t *n)
{
    const kiln_graph_t *g = o->g;
    if (n->n_inputs < 1 || n->inputs[0] < 0 || n->n_outputs < 1)
        return -1;
    int x = n->inputs[0];
    if (opt_is_op(n, "Identity") && n->n_outputs == 1)
        return x;
    if (opt_is_op(n, "Dropout")) {
        /* inference: y = x when training_mode is absent or a false constant
         * and the mask is not used */
        if (!opt_output_unused(o, n, 1))
            return -1;
        if (n->n_inputs >= 3 && n->inputs[2] >= 0) {
            const kiln_tensor_t *tm = opt_const(o, n->inputs[2]);
            if (!tm || tm->count != 1 || kiln_tensor_get_i64(tm, 0) != 0)
                return -1;
        }
        if (n->opset < 7 && kiln_attr_int(n, "is_test", 0) == 0)
            return -1;
        return x;
    }
    if (opt_is_op(n, "Cast") && n->n_outputs == 1) {
        kiln_dtype_t to = (kiln_dtype_t)kiln_attr_int(n, "to", 0);
        kiln_dtype_t from = g->values[x].type.dtype;
        return from != KILN_DTYPE_UNDEFINED && from == to && g->values[x].type.kind == KILN_VALUE_TENSOR ? x
                                                                                                         : -1;
    }
    if ((opt_is_op(n, "Reshape") && n->n_inputs >= 2) || (opt_is_op(n, "Expand") && n->n_inputs >= 2)) {
        /* to the shape x already has (x's dims all known) */
        const kiln_type_t *ty = &g->values[x].type;
        const kiln_tensor_t *shape = opt_const(o, n->inputs[1]);
        if (!shape || ty->rank < 0 || shape->rank != 1 || shape->count != ty->rank ||
            shape->dtype != KILN_DTYPE_INT64)
            return -1;
        for (int d = 0; d < ty->rank; d++) {
            int64_t s = ((const int64_t *)shape->data)[d];
            if (ty->dims[d].size < 0 || (s != ty->dims[d].size && !(opt_is_op(n, "Expand") && s == 1)))
                return -1;
        }
        return x;
    }
    return -1;
}

int opt_identity_elimination(kiln_opt_t *o)
{
    int fired = 0;
    for (int i = 0; i < o->g->n_nodes && !o->status; i++) {
        kiln_node_t *n = &o->g->nodes[i];
        if (!n->op_type)
            continue;
        int x = passthrough_input(o, n);
        if (x >= 0 && opt_bypass(o, i, x, n->outputs[0]))
            fired++;
    }
    return fired;
}

/* ---- Conv + BatchNormalization / Add / Mul ------------------------------ */

/* A Conv whose weights (and bias, when present) are float32 constants;
 * returns the output channel count, or -1.  (At level 2 it may already be
 * a plain FusedConv: opt_conv_fusion.) */
static int64_t const_conv_channels(const kiln_opt_t *o, const kiln_node_t *c)
{
    /* a FusedConv still computes just the convolution when it has no
     * residual input and no activation yet */
    bool fused = c->op_type && !strcmp(c->domain, KILN_OPT_DOMAIN) && !strcmp(c->op_type, "FusedConv") &&
                 c->n_inputs <= 3 && !kiln_node_attr(c, "activation");
    if ((!opt_is_op(c, "Conv") && !fused) || c->n_inputs < 2 || c->n_outputs != 1)
        return -1;
    const kiln_tensor_t *w = opt_const(o, c->inputs[1]);
    if (!w || w->dtype != KILN_DTYPE_FLOAT32 || w->rank < 3)
        return -1;
    if (c->n_inputs >= 3 && c->inputs[2] >= 0) {
        const kiln_tensor_t *b = opt_const(o, c->inputs[2]);
        if (!b || b->dtype != KILN_DTYPE_FLOAT32 || b->count != w->dims[0])
            return -1;
    }
    return w->dims[0];
}

/* Rewrites conv's weights to W[m] * scale[m] and bias to B[m] * scale[m] +
 * shift[m] (scale or shift may be NULL = 1 / 0), as new owned constants. */
static bool rescale_conv(kiln_opt_t *o, kiln_node_t *conv, const double *scale, const double *shift)
{
    const kiln_tensor_t *w = opt_const(o, conv->inputs[1]);
    const kiln_tensor_t *b =
        conv->n_inputs >= 3 && conv->inputs[2] >= 0 ? opt_const(o, conv->inputs[2]) : NULL;
    int64_t m = w->dims[0], per = w->count / (m ? m : 1);
    kiln_tensor_t *nw = kiln_tensor_clone(w);
    kiln_tensor_t *nb = kiln_tensor_new(KILN_DTYPE_FLOAT32, 1, &m);
    if (!nw || !nb) {
        kiln_tensor_free(nw);
        kiln_tensor_free(nb);
        o->status = KILN_ERR_NO_MEMORY;
        return false;
    }
    float *wd = nw->data, *bd = nb->data;
    const float *ob = b ? b->data : NULL;
    for (int64_t c = 0; c < m; c++) {
        double s = scale ? scale[c] : 1.0;
        float sf = (float)s; /* float products: the loop vectorizes (folding 100 MB takes a while) */
        if (scale)
            for (int64_t j = 0; j < per; j++)
                wd[c * per + j] *= sf;
        bd[c] = (float)((ob ? ob[c] : 0.0) * s + (shift ? shift[c] : 0.0));
    }
    char base[256];
    snprintf(base, sizeof base, "%s_W", conv->name);
    int wv = opt_add_initializer(o, base, nw);
    snprintf(base, sizeof base, "%s_B", conv->name);
    int bv = opt_add_initializer(o, base, nb);
    if (wv < 0 || bv < 0)
        return false;
    int ins[3] = {conv->inputs[0], wv, bv};
    return opt_set_inputs(o, conv, 3, ins);
}

int opt_conv_bn_folding(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *conv = &g->nodes[i];
        int64_t m = conv->op_type ? const_conv_channels(o, conv) : -1;
        if (m < 0)
            continue;
        int slot, j = opt_sole_user(o, conv->outputs[0], &slot);
        if (j < 0 || slot != 0 || !opt_is_op(&g->nodes[j], "BatchNormalization"))
            continue;
        kiln_node_t *bn = &g->nodes[j];
        if (bn->n_inputs != 5 || kiln_attr_int(bn, "training_mode", 0) != 0 ||
            kiln_attr_int(bn, "spatial", 1) != 1)
            continue;
        bool unused_extra = true;
        for (int k = 1; k < bn->n_outputs; k++)
            unused_extra &= opt_output_unused(o, bn, k);
        const kiln_tensor_t *p[4];
        bool ok = unused_extra;
        for (int k = 0; k < 4 && ok; k++) {
            p[k] = opt_const(o, bn->inputs[k + 1]);
            ok = p[k] && p[k]->dtype == KILN_DTYPE_FLOAT32 && p[k]->count == m;
        }
        if (!ok)
            continue;
        double eps = kiln_attr_float(bn, "epsilon", 1e-5f);
        double *scale = malloc((size_t)m * sizeof *scale), *shift = malloc((size_t)m * sizeof *shift);
        if (!scale || !shift) {
            free(scale);
            free(shift);
            o->status = KILN_ERR_NO_MEMORY;
            break;
        }
        const float *gamma = p[0]->data, *beta = p[1]->data, *mean = p[2]->data, *var = p[3]->data;
        for (int64_t c = 0; c < m; c++) {
            scale[c] = gamma[c] / sqrt((double)var[c] + eps);
            shift[c] = beta[c] - mean[c] * scale[c];
        }
        int y = bn->outputs[0];
        bool done = rescale_conv(o, conv, scale, shift);
        free(scale);
        free(shift);
        if (!done)
            continue;
        conv = &g->nodes[i];
        conv->outputs[0] = y;
        opt_remove_node(o, j);
        opt_refresh(o);
        fired++;
    }
    return fired;
}

/* Expands a constant that broadcasts per channel onto a Conv output of
 * rank r with m channels ([m], [m,1,1], [1,m,1,1], or one value) into
 * per-channel doubles; false when it does not have that shape. */
static bool per_channel(const kiln_tensor_t *c, int r, int64_t m, double *out)
{
    if (!c || c->dtype != KILN_DTYPE_FLOAT32 || c->rank > r)
        return false;
    const float *d = c->data;
    if (c->count == 1) {
        for (int64_t k = 0; k < m; k++)
            out[k] = d[0];
        return true;
    }
    for (int j = 0; j < c->rank; j++) {
        int axis = r - c->rank + j;
        if (c->dims[j] != (axis == 1 ? m : 1))
            return false;
    }
    if (c->count != m)
        return false;
    for (int64_t k = 0; k < m; k++)
        out[k] = d[k];
    return true;
}

int opt_conv_add_mul_folding(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *conv = &g->nodes[i];
        int64_t m = conv->op_type ? const_conv_channels(o, conv) : -1;
        if (m < 0)
            continue;
        int slot, j = opt_sole_user(o, conv->outputs[0], &slot);
        if (j < 0)
            continue;
        kiln_node_t *op = &g->nodes[j];
        bool is_add = opt_is_op(op, "Add"), is_mul = opt_is_op(op, "Mul");
        if ((!is_add && !is_mul) || op->n_inputs != 2)
            continue;
        const kiln_tensor_t *c = opt_const(o, op->inputs[1 - slot]);
        int r = opt_const(o, conv->inputs[1])->rank;
        double *vec = malloc((size_t)m * sizeof *vec);
        if (!vec) {
            o->status = KILN_ERR_NO_MEMORY;
            break;
        }
        bool done =
            per_channel(c, r, m, vec) && rescale_conv(o, conv, is_mul ? vec : NULL, is_add ? vec : NULL);
        free(vec);
        if (!done)
            continue;
        conv = &g->nodes[i];
        conv->outputs[0] = g->nodes[j].outputs[0];
        opt_remove_node(o, j);
        opt_refresh(o);
        fired++;
        i--; /* the next Add or Mul may fold into the same Conv */
    }
    return fired;
}

/* ---- MatMul + Add -> Gemm ------------------------------------------------ */

/* MatMul(A, B) + C with A a known 2-D float32 matrix, B a constant [K, N]
 * and C a constant [N] or [1, N] (or one value): Gemm(A, B, C). */
int opt_matmul_add_gemm(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *mm = &g->nodes[i];
        if (!opt_is_op(mm, "MatMul") || mm->n_inputs != 2 || mm->n_outputs != 1 || mm->inputs[0] < 0 ||
            mm->inputs[1] < 0 || mm->outputs[0] < 0) /* an omitted operand: the kernel reports it */
            continue;
        const kiln_type_t *ta = &g->values[mm->inputs[0]].type;
        const kiln_tensor_t *b = opt_const(o, mm->inputs[1]);
        if (ta->rank != 2 || ta->dtype != KILN_DTYPE_FLOAT32 || !b || b->rank != 2 ||
            b->dtype != KILN_DTYPE_FLOAT32)
            continue;
        int slot, j = opt_sole_user(o, mm->outputs[0], &slot);
        if (j < 0 || !opt_is_op(&g->nodes[j], "Add") || g->nodes[j].n_inputs != 2)
            continue;
        int cv = g->nodes[j].inputs[1 - slot];
        const kiln_tensor_t *c = opt_const(o, cv);
        if (!c || c->dtype != KILN_DTYPE_FLOAT32 || c->rank > 2 ||
            !(c->count == 1 || (c->count == b->dims[1] && c->dims[c->rank - 1] == b->dims[1])))
            continue;
        int ins[3] = {mm->inputs[0], mm->inputs[1], cv};
        if (!opt_set_inputs(o, mm, 3, ins))
            break;
        mm->n_attrs = 0;
        mm->attrs = NULL;
        opt_retype(o, mm, "", "Gemm", mm->opset);
        mm->outputs[0] = g->nodes[j].outputs[0];
        opt_remove_node(o, j);
        opt_refresh(o);
        fired++;
    }
    return fired;
}

/* ---- dead nodes, unused initializers ------------------------------------ */

int opt_dead_node_elimination(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        kiln_node_t *n = &g->nodes[i];
        if (!n->op_type || n->n_outputs == 0)
            continue;
        bool dead = true;
        for (int k = 0; k < n->n_outputs && dead; k++)
            dead = opt_output_unused(o, n, k);
        if (!dead)
            continue;
        /* inputs lose a use now, so their producers may die in this walk */
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                o->uses[n->inputs[k]]--;
        for (int k = 0; k < n->n_implicit; k++)
            o->uses[n->implicit_inputs[k]]--;
        opt_remove_node(o, i);
        fired++;
    }
    if (fired)
        opt_refresh(o);
    return fired;
}

int opt_unused_initializer_elimination(kiln_opt_t *o)
{
    kiln_graph_t *g = o->g;
    int kept = 0, removed = 0;
    for (int i = 0; i < g->n_initializers; i++) {
        int v = g->initializer_values[i];
        kiln_value_info_t *vi = &g->values[v];
        if (o->uses[v] == 0 && !o->pinned[v] && !vi->is_graph_input) {
            vi->initializer = -1;
            removed++;
            continue;
        }
        g->initializers[kept] = g->initializers[i];
        g->initializer_values[kept] = v;
        vi->initializer = kept++;
    }
    g->n_initializers = kept;
    return removed;
}
