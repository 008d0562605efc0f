/*
 * passes_fuse.c - the level-2 and level-3 passes: subgraphs that one kiln
 * kernel computes in one sweep (ops/fused.c, domain com.kiln).
 *
 *   GELU        Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5
 *               (Mul by 1/sqrt 2, and 0.5 applied to x first, too) -> Gelu
 *   LayerNorm   ReduceMean -> Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt
 *               -> Div -> Mul gamma -> Add beta   -> LayerNormalization
 *   MatMul+bias MatMul(A, constant B) + constant [N] -> FusedMatMul
 *   activation  Conv / Gemm / FusedMatMul followed by Relu, Clip, Sigmoid,
 *               Tanh, HardSigmoid, HardSwish, LeakyRelu or Gelu -> the fused
 *               op with attributes activation, activation_alpha/beta
 *   transpose   (level 3) MatMul(A, Transpose(T, perm)) -> FusedMatMul(A,
 *               T or a cheaper Transpose of T, transB = 1)
 */
#include <math.h>
#include <string.h>

#include "opt/opt_internal.h"

static bool near(float a, double b)
{
    return fabs((double)a - b) <= 1e-5 * fabs(b) + 1e-7;
}

/* The operand of binary node n other than the one in slot `slot`. */
static int other_input(const kiln_node_t *n, int slot)
{
    return n->n_inputs == 2 ? n->inputs[1 - slot] : -1;
}

/* The sole user of v, when it is op; -1 otherwise (slot set). */
static int sole_user_op(const kiln_opt_t *o, int v, const char *op, int *slot)
{
    int s, j = opt_sole_user(o, v, &s);
    if (j < 0 || !opt_is_op(&o->g->nodes[j], op))
        return -1;
    if (slot)
        *slot = s;
    return j;
}

/* ---- GELU ----------------------------------------------------------------- */

int opt_gelu_fusion(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *erf = &g->nodes[i];
        if (!opt_is_op(erf, "Erf") || erf->n_inputs != 1)
            continue;
        /* x / sqrt(2) or x * (1 / sqrt(2)) */
        int d = opt_producer(o, erf->inputs[0]);
        if (d < 0 || o->uses[erf->inputs[0]] != 1 || o->pinned[erf->inputs[0]])
            continue;
        const kiln_node_t *dn = &g->nodes[d];
        float c;
        int x = -1;
        if (opt_is_op(dn, "Div") && dn->n_inputs == 2 && opt_const_scalar(o, dn->inputs[1], &c) &&
            near(c, M_SQRT2))
            x = dn->inputs[0];
        for (int s = 0; s < 2 && opt_is_op(dn, "Mul") && dn->n_inputs == 2; s++)
            if (opt_const_scalar(o, dn->inputs[1 - s], &c) && near(c, M_SQRT1_2))
                x = dn->inputs[s];
        if (x < 0)
            continue;
        int slot, a = sole_user_op(o, erf->outputs[0], "Add", &slot);
        if (a < 0 || !opt_const_scalar(o, other_input(&g->nodes[a], slot), &c) || !near(c, 1.0))
            continue;
        int m1 = sole_user_op(o, g->nodes[a].outputs[0], "Mul", &slot);
        if (m1 < 0)
            continue;
        int partner = other_input(&g->nodes[m1], slot), last = -1, half = -1;
        if (partner == x) {
            /* (x * (1 + erf)) * 0.5 */
            int s2, m2 = sole_user_op(o, g->nodes[m1].outputs[0], "Mul", &s2);
            if (m2 >= 0 && opt_const_scalar(o, other_input(&g->nodes[m2], s2), &c) && near(c, 0.5))
                last = m2;
        } else {
            /* (x * 0.5) * (1 + erf) */
            int h = opt_producer(o, partner);
            if (h >= 0 && o->uses[partner] == 1 && !o->pinned[partner] && opt_is_op(&g->nodes[h], "Mul") &&
                g->nodes[h].n_inputs == 2)
                for (int s = 0; s < 2; s++)
                    if (g->nodes[h].inputs[s] == x && opt_const_scalar(o, g->nodes[h].inputs[1 - s], &c) &&
                        near(c, 0.5)) {
                        last = m1;
                        half = h;
                    }
        }
        if (last < 0)
            continue;
        kiln_node_t *out = &g->nodes[last];
        if (!opt_set_inputs(o, out, 1, &x))
            break;
        out->n_attrs = 0;
        out->attrs = NULL;
        opt_retype(o, out, KILN_OPT_DOMAIN, "Gelu", KILN_OPT_DOMAIN_VERSION);
        opt_remove_node(o, d);
        opt_remove_node(o, i);
        opt_remove_node(o, a);
        if (half >= 0)
            opt_remove_node(o, half);
        else
            opt_remove_node(o, m1);
        opt_refresh(o);
        fired++;
    }
    return fired;
}

/* ---- LayerNormalization ---------------------------------------------------- */

/* A ReduceMean over the last axis only, keeping dims. */
static bool mean_over_last_axis(const kiln_opt_t *o, const kiln_node_t *n)
{
    if (!opt_is_op(n, "ReduceMean") || kiln_attr_int(n, "keepdims", 1) != 1)
        return false;
    const int64_t *axes;
    int64_t count = kiln_attr_ints(n, "axes", &axes);
    if (count < 0 && n->n_inputs >= 2) {
        const kiln_tensor_t *t = opt_const(o, n->inputs[1]);
        if (!t || t->dtype != KILN_DTYPE_INT64)
            return false;
        axes = t->data;
        count = t->count;
    }
    return count == 1 && axes[0] == -1;
}

int opt_layer_norm_fusion(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        const kiln_node_t *r1 = &g->nodes[i];
        if (!r1->op_type || !mean_over_last_axis(o, r1) || r1->n_inputs < 1)
            continue;
        int x = r1->inputs[0], slot;
        int sub = sole_user_op(o, r1->outputs[0], "Sub", &slot);
        if (sub < 0 || slot != 1 || g->nodes[sub].inputs[0] != x)
            continue;
        int dv = g->nodes[sub].outputs[0];
        if (o->uses[dv] != 2 || o->pinned[dv])
            continue;
        /* the two users of d: Pow(d, 2) and Div(d, ...) */
        int pow = -1, div = -1;
        for (int j = 0; j < g->n_nodes; j++) {
            const kiln_node_t *n = &g->nodes[j];
            if (!n->op_type || n->n_inputs != 2 || n->inputs[0] != dv)
                continue;
            float c;
            if (opt_is_op(n, "Pow") && opt_const_scalar(o, n->inputs[1], &c) && c == 2.0f)
                pow = j;
            else if (opt_is_op(n, "Div"))
                div = j;
        }
        if (pow < 0 || div < 0)
            continue;
        int r2 = opt_sole_user(o, g->nodes[pow].outputs[0], NULL);
        if (r2 < 0 || !mean_over_last_axis(o, &g->nodes[r2]))
            continue;
        float eps;
        int add = sole_user_op(o, g->nodes[r2].outputs[0], "Add", &slot);
        if (add < 0 || !opt_const_scalar(o, other_input(&g->nodes[add], slot), &eps))
            continue;
        int sq = sole_user_op(o, g->nodes[add].outputs[0], "Sqrt", NULL);
        if (sq < 0 || opt_sole_user(o, g->nodes[sq].outputs[0], &slot) != div || slot != 1)
            continue;
        int mul = sole_user_op(o, g->nodes[div].outputs[0], "Mul", &slot);
        if (mul < 0)
            continue;
        int gamma = other_input(&g->nodes[mul], slot);
        int badd = sole_user_op(o, g->nodes[mul].outputs[0], "Add", &slot);
        if (badd < 0)
            continue;
        int beta = other_input(&g->nodes[badd], slot);
        const kiln_tensor_t *gt = opt_const(o, gamma), *bt = opt_const(o, beta);
        if (!gt || !bt || gt->rank != 1 || bt->rank != 1 || gt->dtype != KILN_DTYPE_FLOAT32 ||
            bt->dtype != KILN_DTYPE_FLOAT32)
            continue;
        kiln_node_t *out = &g->nodes[badd];
        int ins[3] = {x, gamma, beta};
        if (!opt_set_inputs(o, out, 3, ins) || !opt_own_attrs(o, out, 2))
            break;
        out->n_attrs = 0;
        opt_set_attr_int(o, out, "axis", -1);
        opt_set_attr_float(o, out, "epsilon", eps);
        opt_retype(o, out, KILN_OPT_DOMAIN, "LayerNormalization", KILN_OPT_DOMAIN_VERSION);
        int gone[] = {i, sub, pow, r2, add, sq, div, mul};
        for (size_t k = 0; k < sizeof gone / sizeof gone[0]; k++)
            opt_remove_node(o, gone[k]);
        opt_refresh(o);
        fired++;
    }
    return fired;
}

/* ---- MatMul + bias ----------------------------------------------------------- */

/* A float32 constant 2-D B: its column count, else -1. */
static int64_t const_matrix_cols(const kiln_opt_t *o, int v)
{
    const kiln_tensor_t *b = opt_const(o, v);
    return b && b->rank == 2 && b->dtype == KILN_DTYPE_FLOAT32 ? b->dims[1] : -1;
}

int opt_matmul_bias_fusion(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *mm = &g->nodes[i];
        if (!opt_is_op(mm, "MatMul") || mm->n_inputs != 2 || mm->n_outputs != 1)
            continue;
        int64_t n = const_matrix_cols(o, mm->inputs[1]);
        int slot, add = n > 0 ? sole_user_op(o, mm->outputs[0], "Add", &slot) : -1;
        if (add < 0)
            continue;
        int bias = other_input(&g->nodes[add], slot);
        const kiln_tensor_t *bt = opt_const(o, bias);
        if (!bt || bt->rank != 1 || bt->count != n || bt->dtype != KILN_DTYPE_FLOAT32)
            continue;
        int ins[3] = {mm->inputs[0], mm->inputs[1], bias};
        if (!opt_set_inputs(o, mm, 3, ins))
            break;
        mm->n_attrs = 0;
        mm->attrs = NULL;
        opt_retype(o, mm, KILN_OPT_DOMAIN, "FusedMatMul", KILN_OPT_DOMAIN_VERSION);
        mm->outputs[0] = g->nodes[add].outputs[0];
        opt_remove_node(o, add);
        opt_refresh(o);
        fired++;
    }
    return fired;
}

/* ---- Conv -> FusedConv, + residual Add ------------------------------------------ */

/* True when a and b have the same fully static tensor shape. */
static bool same_static_shape(const kiln_type_t *a, const kiln_type_t *b)
{
    if (a->rank < 0 || a->rank != b->rank)
        return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d].size < 0 || a->dims[d].size != b->dims[d].size)
            return false;
    return true;
}

/* Every Conv with float32 constant weights becomes FusedConv, whose
 * epilogue adds the bias block by block while it is in cache (instead of
 * writing the bias over the whole output first).  When its only user is
 * Add(conv, Z) with Z of the same static shape (a residual connection),
 * the Add joins as FusedConv's fourth input. */
int opt_conv_fusion(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *c = &g->nodes[i];
        bool is_conv = opt_is_op(c, "Conv");
        bool is_fused = c->op_type && !strcmp(c->domain, KILN_OPT_DOMAIN) && !strcmp(c->op_type, "FusedConv");
        if ((!is_conv && !is_fused) || c->n_outputs != 1 || c->n_inputs < 2)
            continue;
        const kiln_tensor_t *w = opt_const(o, c->inputs[1]);
        if (!w || w->dtype != KILN_DTYPE_FLOAT32)
            continue;
        if (is_conv) {
            opt_retype(o, c, KILN_OPT_DOMAIN, "FusedConv", KILN_OPT_DOMAIN_VERSION);
            fired++;
        }
        if (c->n_inputs > 3 || kiln_node_attr(c, "activation"))
            continue;
        int slot, a = sole_user_op(o, c->outputs[0], "Add", &slot);
        if (a < 0)
            continue;
        int z = other_input(&g->nodes[a], slot), out = g->nodes[a].outputs[0];
        if (z < 0 || z == c->outputs[0] || !same_static_shape(&g->values[z].type, &g->values[out].type) ||
            !same_static_shape(&g->values[c->outputs[0]].type, &g->values[out].type) ||
            g->values[z].type.dtype != KILN_DTYPE_FLOAT32)
            continue;
        int ins[4] = {c->inputs[0], c->inputs[1], c->n_inputs >= 3 ? c->inputs[2] : -1, z};
        if (!opt_set_inputs(o, c, 4, ins))
            break;
        c->outputs[0] = out;
        opt_remove_node(o, a);
        opt_refresh(o);
        fired++;
    }
    return fired;
}

/* ---- activation epilogues ----------------------------------------------------- */

/* Reads activation node n as (name, alpha, beta); false when it is not one
 * the fused kernels apply. */
static bool activation_of(const kiln_opt_t *o, const kiln_node_t *n, const char **name, float *alpha,
                          float *beta)
{
    *alpha = 0.0f;
    *beta = 0.0f;
    static const char *const plain[] = {"Relu", "Sigmoid", "Tanh", "HardSwish"};
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++)
        if (opt_is_op(n, plain[k])) {
            *name = plain[k];
            return true;
        }
    if (opt_is_op(n, "LeakyRelu")) {
        *name = "LeakyRelu";
        *alpha = kiln_attr_float(n, "alpha", 0.01f);
        return true;
    }
    if (opt_is_op(n, "HardSigmoid")) {
        *name = "HardSigmoid";
        *alpha = kiln_attr_float(n, "alpha", 0.2f);
        *beta = kiln_attr_float(n, "beta", 0.5f);
        return true;
    }
    if (n->op_type && !strcmp(n->domain, KILN_OPT_DOMAIN) && !strcmp(n->op_type, "Gelu")) {
        *name = "Gelu";
        return true;
    }
    if (opt_is_op(n, "Clip")) {
        *name = "Clip";
        *alpha = -INFINITY;
        *beta = INFINITY;
        if (n->opset < 11) {
            *alpha = kiln_attr_float(n, "min", -INFINITY);
            *beta = kiln_attr_float(n, "max", INFINITY);
            return true;
        }
        if (n->n_inputs >= 2 && n->inputs[1] >= 0 && !opt_const_scalar(o, n->inputs[1], alpha))
            return false;
        if (n->n_inputs >= 3 && n->inputs[2] >= 0 && !opt_const_scalar(o, n->inputs[2], beta))
            return false;
        return true;
    }
    return false;
}

/* The fused op a node becomes when an activation joins it, or NULL. */
static const char *fused_name(const kiln_opt_t *o, const kiln_node_t *n)
{
    if (kiln_node_attr(n, "activation"))
        return NULL;
    if (opt_is_op(n, "Conv")) {
        const kiln_tensor_t *w = n->n_inputs >= 2 ? opt_const(o, n->inputs[1]) : NULL;
        return w && w->dtype == KILN_DTYPE_FLOAT32 ? "FusedConv" : NULL;
    }
    if (opt_is_op(n, "Gemm")) {
        const kiln_tensor_t *b = n->n_inputs >= 2 ? opt_const(o, n->inputs[1]) : NULL;
        return b && b->dtype == KILN_DTYPE_FLOAT32 ? "FusedGemm" : NULL;
    }
    if (opt_is_op(n, "MatMul") && n->n_inputs == 2 && const_matrix_cols(o, n->inputs[1]) > 0)
        return "FusedMatMul";
    if (n->op_type && !strcmp(n->domain, KILN_OPT_DOMAIN) &&
        (!strcmp(n->op_type, "FusedConv") || !strcmp(n->op_type, "FusedGemm") ||
         !strcmp(n->op_type, "FusedMatMul")))
        return n->op_type;
    return NULL;
}

int opt_activation_fusion(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *p = &g->nodes[i];
        const char *fused = p->op_type && p->n_outputs == 1 ? fused_name(o, p) : NULL;
        if (!fused)
            continue;
        int slot, j = opt_sole_user(o, p->outputs[0], &slot);
        const char *act;
        float alpha, beta;
        if (j < 0 || slot != 0 || !activation_of(o, &g->nodes[j], &act, &alpha, &beta))
            continue;
        if (!opt_own_attrs(o, p, 3))
            break;
        opt_set_attr_string(o, p, "activation", act);
        opt_set_attr_float(o, p, "activation_alpha", alpha);
        opt_set_attr_float(o, p, "activation_beta", beta);
        opt_retype(o, p, KILN_OPT_DOMAIN, fused, KILN_OPT_DOMAIN_VERSION);
        p->outputs[0] = g->nodes[j].outputs[0];
        opt_remove_node(o, j);
        opt_refresh(o);
        fired++;
    }
    return fired;
}

/* ---- level 3: transposes into FusedMatMul --------------------------------------- */

/* MatMul(A, Transpose(T, perm)): the product can read B with its last two
 * axes swapped (transB), so the Transpose only has to do the rest of perm.
 * When that rest is nothing the Transpose goes; otherwise it stays with the
 * last two entries of perm swapped, which is taken only when it then keeps
 * the last axis in place (rows are copied whole, as in attention's
 * [b, s, heads, d] -> [b, heads, d, s] key transpose).  The MatMul becomes
 * FusedMatMul(A, T', transB = 1). */
int opt_transpose_matmul_folding(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        kiln_node_t *mm = &g->nodes[i];
        bool plain = opt_is_op(mm, "MatMul");
        bool fused =
            mm->op_type && !strcmp(mm->domain, KILN_OPT_DOMAIN) && !strcmp(mm->op_type, "FusedMatMul");
        if ((!plain && !fused) || mm->n_inputs < 2 || mm->n_outputs != 1 || kiln_attr_int(mm, "transB", 0) ||
            mm->inputs[0] < 0 || mm->inputs[1] < 0) /* omitted operands: the kernel reports them */
            continue;
        int bv = mm->inputs[1], t = opt_producer(o, bv);
        if (t < 0 || o->uses[bv] != 1 || o->pinned[bv] || !opt_is_op(&g->nodes[t], "Transpose") ||
            g->nodes[t].n_inputs < 1 || g->nodes[t].inputs[0] < 0)
            continue;
        /* FusedMatMul is float32 only: the operand types must say so */
        if (g->values[mm->inputs[0]].type.dtype != KILN_DTYPE_FLOAT32 &&
            g->values[g->nodes[t].inputs[0]].type.dtype != KILN_DTYPE_FLOAT32)
            continue;
        const int64_t *perm;
        int64_t r = kiln_attr_ints(&g->nodes[t], "perm", &perm);
        if (r < 2 || r > KILN_MAX_RANK)
            continue;
        int64_t rest[KILN_MAX_RANK];
        memcpy(rest, perm, (size_t)r * sizeof *rest);
        rest[r - 2] = perm[r - 1];
        rest[r - 1] = perm[r - 2];
        bool identity = true;
        for (int64_t k = 0; k < r; k++)
            identity &= rest[k] == k;
        if (!identity && rest[r - 1] != r - 1)
            continue;
        if (!opt_own_attrs(o, mm, 1))
            break;
        if (identity) {
            mm->inputs[1] = g->nodes[t].inputs[0];
            opt_remove_node(o, t);
        } else if (!opt_own_attrs(o, &g->nodes[t], 0) ||
                   !opt_set_attr_ints(o, &g->nodes[t], "perm", (int)r, rest)) {
            break;
        }
        opt_set_attr_int(o, mm, "transB", 1);
        if (plain)
            opt_retype(o, mm, KILN_OPT_DOMAIN, "FusedMatMul", KILN_OPT_DOMAIN_VERSION);
        opt_refresh(o);
        fired++;
    }
    return fired;
}
