/*
 * shape_infer.c - static shape inference at load time.
 *
 * Walks the sorted nodes once and, for the common ops, derives each
 * output's dtype and shape from its inputs' (declared, inferred or
 * initializer) types and constant operands.  What it cannot derive stays
 * unknown (rank -1 or dim -1): kernels compute exact shapes at run time, so
 * inference only adds information; it never overrides a declared type.
 *
 * Two mismatches are certain enough to refuse the model at load, naming the
 * node, the op and the shapes: operands that cannot broadcast, and MatMul
 * or Gemm inner dimensions that differ, when all the dims involved are
 * static.  Everything else is left to run time.
 */
#include "core/shape_infer.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

/* A working type: rank -1 unknown; dims -1 unknown. */
typedef struct shape {
    kiln_dtype_t dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
} shape_t;

static shape_t unknown(void)
{
    shape_t s = {.dtype = KILN_DTYPE_UNDEFINED, .rank = -1};
    return s;
}

static shape_t value_shape(const kiln_graph_t *g, int v)
{
    shape_t s = unknown();
    if (v < 0)
        return s;
    const kiln_value_info_t *vi = &g->values[v];
    if (vi->initializer >= 0) {
        const kiln_tensor_t *t = g->initializers[vi->initializer];
        s.dtype = t->dtype;
        s.rank = t->rank;
        memcpy(s.dims, t->dims, sizeof s.dims);
        return s;
    }
    if (vi->type.kind != KILN_VALUE_TENSOR && vi->type.kind != 0)
        return s;
    s.dtype = vi->type.dtype;
    s.rank = vi->type.rank;
    for (int d = 0; d < s.rank && d < KILN_MAX_RANK; d++)
        s.dims[d] = vi->type.dims[d].size;
    return s;
}

static const kiln_tensor_t *const_input(const kiln_graph_t *g, const kiln_node_t *n, int i)
{
    if (i >= n->n_inputs || n->inputs[i] < 0)
        return NULL;
    int init = g->values[n->inputs[i]].initializer;
    return init >= 0 && !g->values[n->inputs[i]].is_graph_input ? g->initializers[init] : NULL;
}

static char *shape_text(const shape_t *s, char *buf, size_t len)
{
    if (s->rank < 0) {
        snprintf(buf, len, "[?]");
        return buf;
    }
    return kiln_shape_str(s->rank, s->dims, buf, len);
}

/* numpy broadcasting of a and b into out; false on a certain mismatch. */
static bool broadcast(const shape_t *a, const shape_t *b, shape_t *out)
{
    if (a->rank < 0 || b->rank < 0) {
        out->rank = -1;
        return true;
    }
    int r = a->rank > b->rank ? a->rank : b->rank;
    out->rank = r;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t x = ia >= 0 ? a->dims[ia] : 1, y = ib >= 0 ? b->dims[ib] : 1;
        if (x == 1)
            out->dims[i] = y;
        else if (y == 1)
            out->dims[i] = x;
        else if (x < 0 || y < 0)
            out->dims[i] = x < 0 ? y : x; /* one unknown: the known one wins */
        else if (x == y)
            out->dims[i] = x;
        else
            return false;
    }
    return true;
}

static bool is_op(const kiln_node_t *n, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(n->op_type, *list))
            return true;
    return false;
}

static const char *const SAME_SHAPE_OPS[] = {
    "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "Reciprocal", "Floor", "Ceil",
    "Round", "Sign", "Sin", "Cos", "Tan", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus",
    "Softsign", "Clip", "Softmax", "LogSoftmax", "Hardmax", "Dropout", "Identity", "BatchNormalization",
    "LayerNormalization", "InstanceNormalization", "LRN", "Gelu", "Not", "Celu", "ThresholdedRelu", "Shrink",
    "MeanVarianceNormalization", "CumSum", "Mish", "PRelu", NULL};
static const char *const BROADCAST_OPS[] = {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum",
                                            "Mean", "And", "Or", "Xor", "BitShift", NULL};
static const char *const COMPARE_OPS[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", NULL};
static const char *const REDUCE_OPS[] = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
                                         "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                                         "ReduceSumSquare", NULL};

static kiln_status_t mismatch(const kiln_node_t *n, const char *what, const shape_t *a, const shape_t *b)
{
    char x[128], y[128];
    return kiln_fail(KILN_ERR_INVALID_MODEL, "node '%s' (%s): %s: shapes %s and %s", n->name, n->op_type, what,
                     shape_text(a, x, sizeof x), shape_text(b, y, sizeof y));
}

/* Reads axes from the attribute or a constant input; returns count or -1. */
static int read_axes(const kiln_graph_t *g, const kiln_node_t *n, int input, int64_t *axes)
{
    const int64_t *a;
    int64_t k = kiln_attr_ints(n, "axes", &a);
    if (k >= 0) {
        if (k > KILN_MAX_RANK)
            return -1;
        if (k > 0) /* an empty list has no storage */
            memcpy(axes, a, (size_t)k * sizeof *axes);
        return (int)k;
    }
    const kiln_tensor_t *t = const_input(g, n, input);
    if (!t || t->count > KILN_MAX_RANK || !kiln_dtype_is_integer(t->dtype))
        return input < n->n_inputs && n->inputs[input] >= 0 ? -1 : 0;
    for (int64_t i = 0; i < t->count; i++)
        axes[i] = kiln_tensor_get_i64(t, i);
    return (int)t->count;
}

static int64_t conv_out(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pad_sum, bool ceil_mode)
{
    if (in < 0 || k < 0 || stride < 1)
        return -1;
    int64_t eff = (k - 1) * dil + 1;
    int64_t num = in + pad_sum - eff;
    if (num < 0)
        return -1;
    return (ceil_mode ? (num + stride - 1) / stride : num / stride) + 1;
}

/* Conv and pooling: output spatial dims from kernel, strides, pads, dilations. */
static void spatial(const kiln_node_t *n, const shape_t *x, const int64_t *kernel, int nk, bool ceil_mode, shape_t *o)
{
    const int64_t *strides = NULL, *pads = NULL, *dils = NULL;
    int64_t ns = kiln_attr_ints(n, "strides", &strides);
    int64_t np = kiln_attr_ints(n, "pads", &pads);
    int64_t nd = kiln_attr_ints(n, "dilations", &dils);
    const char *auto_pad = kiln_attr_string(n, "auto_pad", "NOTSET");
    for (int i = 0; i < nk; i++) {
        int64_t in = x->dims[2 + i];
        int64_t s = ns == nk ? strides[i] : 1;
        int64_t d = nd == nk ? dils[i] : 1;
        if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER"))
            o->dims[2 + i] = in < 0 || s < 1 ? -1 : (in + s - 1) / s;
        else if (!strcmp(auto_pad, "VALID"))
            o->dims[2 + i] = conv_out(in, kernel[i], s, d, 0, ceil_mode);
        else
            o->dims[2 + i] = conv_out(in, kernel[i], s, d, np == 2 * nk ? pads[i] + pads[i + nk] : 0, ceil_mode);
    }
}

/* Infers one node's first output. Returns KILN_OK (possibly unknown) or a
 * certain mismatch. */
static kiln_status_t infer_node(const kiln_graph_t *g, const kiln_node_t *n, shape_t *o)
{
    *o = unknown();
    if (n->domain[0])
        return KILN_OK;
    shape_t a = n->n_inputs > 0 ? value_shape(g, n->inputs[0]) : unknown();
    shape_t b = n->n_inputs > 1 ? value_shape(g, n->inputs[1]) : unknown();
    if (is_op(n, SAME_SHAPE_OPS)) {
        *o = a;
    } else if (!strcmp(n->op_type, "IsNaN") || !strcmp(n->op_type, "IsInf")) {
        *o = a;
        o->dtype = KILN_DTYPE_BOOL;
    } else if (!strcmp(n->op_type, "Cast")) {
        *o = a;
        o->dtype = (kiln_dtype_t)kiln_attr_int(n, "to", KILN_DTYPE_UNDEFINED);
    } else if (!strcmp(n->op_type, "CastLike")) {
        *o = a;
        o->dtype = b.dtype;
    } else if (is_op(n, BROADCAST_OPS) || is_op(n, COMPARE_OPS)) {
        *o = a;
        for (int i = 1; i < n->n_inputs; i++) {
            shape_t c = value_shape(g, n->inputs[i]), r = *o;
            if (!broadcast(&r, &c, o))
                return mismatch(n, "operands cannot broadcast", &r, &c);
        }
        if (is_op(n, COMPARE_OPS))
            o->dtype = KILN_DTYPE_BOOL;
    } else if (!strcmp(n->op_type, "Where")) {
        shape_t c = n->n_inputs > 2 ? value_shape(g, n->inputs[2]) : unknown(), t;
        if (!broadcast(&a, &b, &t))
            return mismatch(n, "operands cannot broadcast", &a, &b);
        if (!broadcast(&t, &c, o))
            return mismatch(n, "operands cannot broadcast", &t, &c);
        o->dtype = b.dtype;
    } else if (!strcmp(n->op_type, "MatMul")) {
        o->dtype = a.dtype;
        if (a.rank < 1 || b.rank < 1)
            return KILN_OK;
        int64_t k1 = a.dims[a.rank - 1], k2 = b.rank >= 2 ? b.dims[b.rank - 2] : b.dims[0];
        if (k1 >= 0 && k2 >= 0 && k1 != k2)
            return mismatch(n, "inner dimensions differ", &a, &b);
        shape_t ba = a, bb = b, batch;
        ba.rank = a.rank > 2 ? a.rank - 2 : 0;
        bb.rank = b.rank > 2 ? b.rank - 2 : 0;
        if (!broadcast(&ba, &bb, &batch))
            return mismatch(n, "batch dimensions cannot broadcast", &a, &b);
        o->rank = batch.rank;
        memcpy(o->dims, batch.dims, sizeof o->dims);
        if (a.rank >= 2)
            o->dims[o->rank++] = a.dims[a.rank - 2];
        if (b.rank >= 2)
            o->dims[o->rank++] = b.dims[b.rank - 1];
    } else if (!strcmp(n->op_type, "Gemm")) {
        o->dtype = a.dtype;
        if (a.rank != 2 || b.rank != 2)
            return KILN_OK;
        bool ta = kiln_attr_int(n, "transA", 0), tb = kiln_attr_int(n, "transB", 0);
        int64_t m = ta ? a.dims[1] : a.dims[0], ka = ta ? a.dims[0] : a.dims[1];
        int64_t kb = tb ? b.dims[1] : b.dims[0], nn = tb ? b.dims[0] : b.dims[1];
        if (ka >= 0 && kb >= 0 && ka != kb)
            return mismatch(n, "inner dimensions differ", &a, &b);
        o->rank = 2;
        o->dims[0] = m;
        o->dims[1] = nn;
    } else if (!strcmp(n->op_type, "Conv")) {
        o->dtype = a.dtype;
        if (a.rank < 3 || b.rank != a.rank)
            return KILN_OK;
        o->rank = a.rank;
        o->dims[0] = a.dims[0];
        o->dims[1] = b.dims[0];
        spatial(n, &a, b.dims + 2, a.rank - 2, false, o);
    } else if (!strcmp(n->op_type, "MaxPool") || !strcmp(n->op_type, "AveragePool") || !strcmp(n->op_type, "LpPool")) {
        const int64_t *k;
        int64_t nk = kiln_attr_ints(n, "kernel_shape", &k);
        o->dtype = a.dtype;
        if (a.rank < 3 || nk != a.rank - 2)
            return KILN_OK;
        o->rank = a.rank;
        o->dims[0] = a.dims[0];
        o->dims[1] = a.dims[1];
        spatial(n, &a, k, (int)nk, kiln_attr_int(n, "ceil_mode", 0) != 0, o);
    } else if (!strcmp(n->op_type, "GlobalAveragePool") || !strcmp(n->op_type, "GlobalMaxPool")) {
        *o = a;
        for (int d = 2; d < a.rank; d++)
            o->dims[d] = 1;
    } else if (!strcmp(n->op_type, "Flatten")) {
        o->dtype = a.dtype;
        if (a.rank < 0)
            return KILN_OK;
        int64_t axis = kiln_attr_int(n, "axis", 1);
        if (axis < 0)
            axis += a.rank;
        if (axis < 0 || axis > a.rank)
            return KILN_OK;
        int64_t left = 1, right = 1;
        for (int d = 0; d < a.rank; d++) {
            int64_t *side = d < axis ? &left : &right;
            *side = (a.dims[d] < 0 || *side < 0) ? -1 : *side * a.dims[d];
        }
        o->rank = 2;
        o->dims[0] = left;
        o->dims[1] = right;
    } else if (!strcmp(n->op_type, "Transpose")) {
        o->dtype = a.dtype;
        if (a.rank < 0)
            return KILN_OK;
        const int64_t *perm;
        int64_t np = kiln_attr_ints(n, "perm", &perm);
        o->rank = a.rank;
        for (int d = 0; d < a.rank; d++) {
            int64_t p = np == a.rank ? perm[d] : a.rank - 1 - d;
            o->dims[d] = p >= 0 && p < a.rank ? a.dims[p] : -1;
        }
    } else if (!strcmp(n->op_type, "Reshape")) {
        o->dtype = a.dtype;
        const kiln_tensor_t *t = const_input(g, n, 1);
        if (!t || t->count > KILN_MAX_RANK || t->rank != 1)
            return KILN_OK;
        int64_t total = 1, known = 1;
        int minus = -1;
        for (int d = 0; d < a.rank; d++)
            total = (a.dims[d] < 0 || total < 0) ? -1 : total * a.dims[d];
        if (a.rank < 0)
            total = -1;
        bool allowzero = kiln_attr_int(n, "allowzero", 0) != 0;
        o->rank = (int)t->count;
        for (int d = 0; d < o->rank; d++) {
            int64_t v = kiln_tensor_get_i64(t, d);
            if (v == 0 && !allowzero)
                v = d < a.rank ? a.dims[d] : -1;
            if (v == -1 && minus < 0) {
                minus = d;
                continue;
            }
            o->dims[d] = v;
            known = (v < 0 || known < 0) ? -1 : known * v;
        }
        if (minus >= 0)
            o->dims[minus] = (total >= 0 && known > 0 && total % known == 0) ? total / known : -1;
    } else if (!strcmp(n->op_type, "Unsqueeze") || !strcmp(n->op_type, "Squeeze")) {
        o->dtype = a.dtype;
        int64_t axes[KILN_MAX_RANK];
        int na = read_axes(g, n, 1, axes);
        if (a.rank < 0 || na < 0)
            return KILN_OK;
        bool unsq = n->op_type[0] == 'U';
        int out_rank = unsq ? a.rank + na : a.rank - na;
        if (!unsq && na == 0) { /* squeeze every static 1 */
            o->rank = 0;
            for (int d = 0; d < a.rank; d++) {
                if (a.dims[d] < 0)
                    return (*o = unknown(), o->dtype = a.dtype, KILN_OK);
                if (a.dims[d] != 1)
                    o->dims[o->rank++] = a.dims[d];
            }
            return KILN_OK;
        }
        if (out_rank < 0 || out_rank > KILN_MAX_RANK)
            return KILN_OK;
        bool marked[KILN_MAX_RANK] = {false};
        int base = unsq ? out_rank : a.rank;
        for (int i = 0; i < na; i++) {
            int64_t ax = axes[i] < 0 ? axes[i] + base : axes[i];
            if (ax < 0 || ax >= base)
                return KILN_OK;
            marked[ax] = true;
        }
        o->rank = out_rank;
        for (int d = 0, s = 0, k = 0; d < base; d++) {
            if (unsq)
                o->dims[k++] = marked[d] ? 1 : a.dims[s++];
            else if (!marked[d])
                o->dims[k++] = a.dims[d];
        }
    } else if (!strcmp(n->op_type, "Concat")) {
        int64_t axis = kiln_attr_int(n, "axis", 0);
        *o = a;
        if (a.rank < 0)
            return KILN_OK;
        if (axis < 0)
            axis += a.rank;
        if (axis < 0 || axis >= a.rank)
            return (*o = unknown(), KILN_OK);
        for (int i = 1; i < n->n_inputs; i++) {
            shape_t c = value_shape(g, n->inputs[i]);
            if (c.rank != a.rank)
                return (*o = unknown(), o->dtype = a.dtype, KILN_OK);
            o->dims[axis] = (o->dims[axis] < 0 || c.dims[axis] < 0) ? -1 : o->dims[axis] + c.dims[axis];
        }
    } else if (!strcmp(n->op_type, "Shape")) {
        o->dtype = KILN_DTYPE_INT64;
        if (a.rank < 0 || kiln_node_attr(n, "start") || kiln_node_attr(n, "end"))
            return (o->rank = 1, o->dims[0] = -1, KILN_OK);
        o->rank = 1;
        o->dims[0] = a.rank;
    } else if (!strcmp(n->op_type, "Gather")) {
        o->dtype = a.dtype;
        if (a.rank < 1 || b.rank < 0 || a.rank + b.rank - 1 > KILN_MAX_RANK)
            return KILN_OK;
        int64_t axis = kiln_attr_int(n, "axis", 0);
        if (axis < 0)
            axis += a.rank;
        if (axis < 0 || axis >= a.rank)
            return KILN_OK;
        o->rank = 0;
        for (int d = 0; d < axis; d++)
            o->dims[o->rank++] = a.dims[d];
        for (int d = 0; d < b.rank; d++)
            o->dims[o->rank++] = b.dims[d];
        for (int d = (int)axis + 1; d < a.rank; d++)
            o->dims[o->rank++] = a.dims[d];
    } else if (is_op(n, REDUCE_OPS)) {
        o->dtype = a.dtype;
        int64_t axes[KILN_MAX_RANK];
        int na = read_axes(g, n, 1, axes);
        bool keep = kiln_attr_int(n, "keepdims", 1) != 0;
        if (a.rank < 0 || na < 0)
            return KILN_OK;
        bool marked[KILN_MAX_RANK] = {false};
        if (na == 0) {
            if (kiln_attr_int(n, "noop_with_empty_axes", 0))
                return (*o = a, KILN_OK);
            for (int d = 0; d < a.rank; d++)
                marked[d] = true;
        }
        for (int i = 0; i < na; i++) {
            int64_t ax = axes[i] < 0 ? axes[i] + a.rank : axes[i];
            if (ax < 0 || ax >= a.rank)
                return KILN_OK;
            marked[ax] = true;
        }
        o->rank = 0;
        for (int d = 0; d < a.rank; d++) {
            if (!marked[d])
                o->dims[o->rank++] = a.dims[d];
            else if (keep)
                o->dims[o->rank++] = 1;
        }
    }
    return KILN_OK;
}

kiln_status_t kiln_graph_infer_shapes(kiln_graph_t *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln_node_t *n = &g->nodes[i];
        if (n->n_outputs < 1 || n->outputs[0] < 0)
            continue;
        shape_t o;
        kiln_status_t st = infer_node(g, n, &o);
        if (st)
            return st;
        kiln_value_info_t *vi = &g->values[n->outputs[0]];
        if (vi->type.kind == 0)
            vi->type.kind = KILN_VALUE_TENSOR;
        if (vi->type.kind != KILN_VALUE_TENSOR)
            continue;
        if (vi->type.dtype == KILN_DTYPE_UNDEFINED)
            vi->type.dtype = o.dtype;
        if (o.rank < 0)
            continue;
        if (vi->type.rank < 0) {
            vi->type.rank = o.rank;
            for (int d = 0; d < o.rank; d++) {
                vi->type.dims[d].size = o.dims[d];
                vi->type.dims[d].symbol = NULL;
            }
        } else if (vi->type.rank == o.rank) {
            for (int d = 0; d < o.rank; d++) /* refine unknown declared dims */
                if (vi->type.dims[d].size < 0 && o.dims[d] >= 0)
                    vi->type.dims[d].size = o.dims[d];
        }
    }
    return KILN_OK;
}
