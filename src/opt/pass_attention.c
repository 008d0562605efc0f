/*
 * pass_attention.c - the attention fusion (level 2): the scaled
 * dot-product attention chain every transformer exporter writes,
 *
 *     Q [B,H,Sq,D]  = Transpose(q [B,Sq,H,D], perm 0,2,1,3)     (optional)
 *     Kt [B,H,D,Sk] = Transpose(k [B,Sk,H,D], perm 0,2,3,1)     (optional)
 *     V [B,H,Sk,Dv] = Transpose(v [B,Sk,H,Dv], perm 0,2,1,3)    (optional)
 *     S = MatMul(Q, Kt) -> Div(., c) or Mul(., c)  (optional)
 *                       -> Add(., Mask)            (optional)
 *                       -> Softmax(axis -1)
 *     Y = MatMul(S, V) -> Transpose(perm 0,2,1,3)   (optional)
 *
 * becomes one com.kiln Attention node (ops/attention.c) reading q, k, v in
 * whichever layout they come in, so neither the score tensor nor the head
 * transposes are materialized.  Every inner value must have the chain as
 * its only reader and must not be a graph output; Q, Kt and V must be
 * float32 of rank 4 by the inferred types.  A Transpose is absorbed only
 * when the chain is its only reader (else it runs anyway and Attention
 * reads its output).  Runs before the level-3 transpose folding, which
 * would otherwise fold K's transpose into the first MatMul first.
 */
#include <string.h>

#include "opt/opt_internal.h"

/* True when node is Transpose with exactly this 4-entry perm. */
static bool transpose_with_perm(const kiln_node_t *n, int64_t p0, int64_t p1, int64_t p2, int64_t p3)
{
    if (!opt_is_op(n, "Transpose") || n->n_inputs < 1 || n->inputs[0] < 0)
        return false;
    const int64_t *perm;
    int64_t r = kiln_attr_ints(n, "perm", &perm);
    return r == 4 && perm[0] == p0 && perm[1] == p1 && perm[2] == p2 && perm[3] == p3;
}

static bool float32_rank4(const kiln_opt_t *o, int v)
{
    return v >= 0 && o->g->values[v].type.dtype == KILN_DTYPE_FLOAT32 && o->g->values[v].type.rank == 4;
}

/* The producer of v when it is op and v's only reader is the chain. */
static int sole_producer_op(const kiln_opt_t *o, int v, const char *op)
{
    int p = opt_producer(o, v);
    if (p < 0 || o->uses[v] != 1 || o->pinned[v] || !opt_is_op(&o->g->nodes[p], op))
        return -1;
    return p;
}

/* The producer of v when it is a Transpose with this perm read only by
 * the chain, else -1. */
static int absorbable_transpose(const kiln_opt_t *o, int v, int64_t p0, int64_t p1, int64_t p2, int64_t p3)
{
    int t = sole_producer_op(o, v, "Transpose");
    return t >= 0 && transpose_with_perm(&o->g->nodes[t], p0, p1, p2, p3) ? t : -1;
}

static bool softmax_last_axis(const kiln_opt_t *o, const kiln_node_t *sm)
{
    if (!opt_is_op(sm, "Softmax") || sm->n_inputs != 1 || sm->n_outputs != 1 || sm->inputs[0] < 0)
        return false;
    int64_t axis = kiln_attr_int(sm, "axis", sm->opset >= 13 ? -1 : 1);
    return axis == -1 || (axis == 3 && o->g->values[sm->inputs[0]].type.rank == 4);
}

/* The parts of one matched chain. */
typedef struct attention_match {
    int mm1, scale_node, add, softmax, mm2, out_transpose; /* node indices, -1 where absent */
    int q_transpose, k_transpose, v_transpose;
    int mask;    /* value, -1: none */
    float scale; /* multiplier of the scores */
} attention_match_t;

/* Walks back from Softmax node i to the first MatMul; false when the
 * chain does not have the form in the header. */
static bool match_scores(const kiln_opt_t *o, int i, attention_match_t *m)
{
    const kiln_graph_t *g = o->g;
    int v = g->nodes[i].inputs[0];
    m->softmax = i;
    m->add = m->scale_node = -1;
    m->mask = -1;
    m->scale = 1.0f;
    int add = sole_producer_op(o, v, "Add");
    if (add >= 0 && g->nodes[add].n_inputs == 2) {
        /* the chain side is the operand a Div/Mul/MatMul made */
        for (int slot = 0; slot < 2; slot++) {
            int a = g->nodes[add].inputs[slot], p = a >= 0 ? opt_producer(o, a) : -1;
            const kiln_node_t *pn = p >= 0 ? &g->nodes[p] : NULL;
            if (pn && (opt_is_op(pn, "Div") || opt_is_op(pn, "Mul") || opt_is_op(pn, "MatMul"))) {
                m->add = add;
                m->mask = g->nodes[add].inputs[1 - slot];
                v = a;
                break;
            }
        }
        if (m->add < 0 || m->mask < 0 || g->values[m->mask].type.dtype != KILN_DTYPE_FLOAT32)
            return false;
    }
    int s = opt_producer(o, v);
    if (s >= 0 && (opt_is_op(&g->nodes[s], "Div") || opt_is_op(&g->nodes[s], "Mul"))) {
        const kiln_node_t *sn = &g->nodes[s];
        float c;
        if (o->uses[v] != 1 || o->pinned[v] || sn->n_inputs != 2 || !opt_const_scalar(o, sn->inputs[1], &c) ||
            c == 0.0f)
            return false;
        m->scale = opt_is_op(sn, "Div") ? 1.0f / c : c;
        m->scale_node = s;
        v = sn->inputs[0];
    }
    m->mm1 = sole_producer_op(o, v, "MatMul");
    return m->mm1 >= 0 && g->nodes[m->mm1].n_inputs == 2 && float32_rank4(o, g->nodes[m->mm1].inputs[0]) &&
           float32_rank4(o, g->nodes[m->mm1].inputs[1]);
}

/* Rewrites the matched chain into one Attention node; false when out of
 * memory (o->status set by the helpers). */
static bool rewrite(kiln_opt_t *o, const attention_match_t *m)
{
    kiln_graph_t *g = o->g;
    const kiln_node_t *mm1 = &g->nodes[m->mm1], *mm2 = &g->nodes[m->mm2];
    int q = mm1->inputs[0], k = mm1->inputs[1], v = mm2->inputs[1];
    int64_t k_layout = 0;
    if (m->q_transpose >= 0)
        q = g->nodes[m->q_transpose].inputs[0];
    if (m->k_transpose >= 0) {
        k_layout = transpose_with_perm(&g->nodes[m->k_transpose], 0, 2, 3, 1) ? 2 : 1;
        k = g->nodes[m->k_transpose].inputs[0];
    }
    if (m->v_transpose >= 0)
        v = g->nodes[m->v_transpose].inputs[0];
    /* the last node of the pattern becomes Attention, keeping its output */
    int last = m->out_transpose >= 0 ? m->out_transpose : m->mm2;
    kiln_node_t *node = &g->nodes[last];
    int ins[4] = {q, k, v, m->mask};
    if (!opt_set_inputs(o, node, m->mask >= 0 ? 4 : 3, ins) || !opt_own_attrs(o, node, 6))
        return false;
    node->n_attrs = 0;
    opt_set_attr_float(o, node, "scale", m->scale);
    opt_set_attr_int(o, node, "q_bshd", m->q_transpose >= 0);
    opt_set_attr_int(o, node, "k_layout", k_layout);
    opt_set_attr_int(o, node, "v_bshd", m->v_transpose >= 0);
    opt_set_attr_int(o, node, "out_bshd", m->out_transpose >= 0);
    opt_retype(o, node, KILN_OPT_DOMAIN, "Attention", KILN_OPT_DOMAIN_VERSION);
    int gone[] = {m->mm1, m->scale_node, m->add, m->softmax, m->q_transpose, m->k_transpose, m->v_transpose,
                  last == m->mm2 ? -1 : m->mm2};
    for (size_t j = 0; j < sizeof gone / sizeof gone[0]; j++)
        if (gone[j] >= 0)
            opt_remove_node(o, gone[j]);
    return o->status == KILN_OK;
}

int opt_attention_fusion(kiln_opt_t *o)
{
    int fired = 0;
    kiln_graph_t *g = o->g;
    for (int i = 0; i < g->n_nodes && !o->status; i++) {
        attention_match_t m;
        if (!g->nodes[i].op_type || !softmax_last_axis(o, &g->nodes[i]) || !match_scores(o, i, &m))
            continue;
        int slot, mm2 = opt_sole_user(o, g->nodes[i].outputs[0], &slot);
        if (mm2 < 0 || slot != 0 || !opt_is_op(&g->nodes[mm2], "MatMul") || g->nodes[mm2].n_inputs != 2 ||
            g->nodes[mm2].n_outputs != 1 || !float32_rank4(o, g->nodes[mm2].inputs[1]))
            continue;
        m.mm2 = mm2;
        const kiln_node_t *mm1 = &g->nodes[m.mm1];
        m.q_transpose = absorbable_transpose(o, mm1->inputs[0], 0, 2, 1, 3);
        m.k_transpose = absorbable_transpose(o, mm1->inputs[1], 0, 2, 3, 1);
        if (m.k_transpose < 0)
            m.k_transpose = absorbable_transpose(o, mm1->inputs[1], 0, 1, 3, 2);
        m.v_transpose = absorbable_transpose(o, g->nodes[mm2].inputs[1], 0, 2, 1, 3);
        int out_user = opt_sole_user(o, g->nodes[mm2].outputs[0], NULL);
        m.out_transpose = out_user >= 0 && transpose_with_perm(&g->nodes[out_user], 0, 2, 1, 3) ? out_user : -1;
        /* the K transposes of layouts 1 and 2 must leave a rank-4 source */
        if (m.k_transpose >= 0 && !float32_rank4(o, g->nodes[m.k_transpose].inputs[0]))
            m.k_transpose = -1;
        if (!rewrite(o, &m))
            break;
        opt_refresh(o);
        fired++;
    }
    return fired;
}
