/*
 * optimizer.c - the pass driver: which passes each level runs, the loop that
 * repeats them until nothing fires, and the final check of the result.
 *
 * Order matters and is fixed: folding constants first gives the fusions
 * constants to see; Conv+BatchNormalization before Conv+Add/Mul (a BN
 * becomes a per-channel Mul/Add only in some exporters); GELU and
 * LayerNorm before MatMul+bias, and MatMul+bias before the activation
 * fusion, so MatMul + Add + Gelu ends as one FusedMatMul with a Gelu
 * epilogue.  Dead nodes and unused initializers are swept after every
 * round.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "opt/opt_internal.h"

typedef int (*pass_fn)(kiln_opt_t *o);

static const struct {
    kiln_opt_pass_t id;
    const char *name;
    int level; /* the lowest level that runs it */
    pass_fn run;
} passes[] = {
    {KILN_OPT_CONSTANT_FOLDING, "constant_folding", 1, opt_constant_folding},
    {KILN_OPT_IDENTITY_ELIMINATION, "identity_elimination", 1, opt_identity_elimination},
    {KILN_OPT_CONV_BN_FOLDING, "conv_bn_folding", 1, opt_conv_bn_folding},
    {KILN_OPT_CONV_ADD_MUL_FOLDING, "conv_add_mul_folding", 1, opt_conv_add_mul_folding},
    {KILN_OPT_MATMUL_ADD_GEMM, "matmul_add_gemm", 1, opt_matmul_add_gemm},
    {KILN_OPT_GELU_FUSION, "gelu_fusion", 2, opt_gelu_fusion},
    {KILN_OPT_LAYER_NORM_FUSION, "layer_norm_fusion", 2, opt_layer_norm_fusion},
    {KILN_OPT_ATTENTION_FUSION, "attention_fusion", 2, opt_attention_fusion},
    {KILN_OPT_MATMUL_BIAS_FUSION, "matmul_bias_fusion", 2, opt_matmul_bias_fusion},
    {KILN_OPT_TRANSPOSE_MATMUL_FOLDING, "transpose_matmul_folding", 3, opt_transpose_matmul_folding},
    {KILN_OPT_CONV_FUSION, "conv_fusion", 2, opt_conv_fusion},
    {KILN_OPT_ACTIVATION_FUSION, "activation_fusion", 2, opt_activation_fusion},
    {KILN_OPT_DEAD_NODE_ELIMINATION, "dead_node_elimination", 1, opt_dead_node_elimination},
    {KILN_OPT_UNUSED_INITIALIZER_ELIMINATION, "unused_initializer_elimination", 1,
     opt_unused_initializer_elimination},
};

/* Rounds of the pass list before the driver stops looking for more. */
enum { MAX_ROUNDS = 8 };

const char *kiln_opt_pass_name(kiln_opt_pass_t pass)
{
    for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++)
        if (passes[i].id == pass)
            return passes[i].name;
    return "?";
}

int kiln_opt_count_nodes(const kiln_graph_t *g)
{
    int n = g->n_nodes;
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attrs; a++) {
            const kiln_attr_t *at = &g->nodes[i].attrs[a];
            if (at->g)
                n += kiln_opt_count_nodes(at->g);
            for (int64_t k = 0; at->graphs && k < at->n; k++)
                n += kiln_opt_count_nodes(at->graphs[k]);
        }
    return n;
}

size_t kiln_opt_weight_bytes(const kiln_graph_t *g)
{
    size_t bytes = 0;
    for (int i = 0; i < g->n_initializers; i++)
        bytes += g->initializers[i]->nbytes;
    return bytes;
}

void kiln_opt_graph_free(kiln_opt_graph_t *ow)
{
    if (!ow)
        return;
    for (int i = 0; i < ow->n_owned; i++)
        kiln_tensor_free(ow->owned[i]);
    free(ow->owned);
    kiln_arena_release(&ow->arena);
    free(ow);
}

kiln_status_t kiln_opt_graph_create(kiln_session_t *session, const kiln_graph_t *src, int level,
                                    kiln_opt_graph_t **out)
{
    *out = NULL;
    kiln_opt_graph_t *ow = calloc(1, sizeof *ow);
    if (!ow)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory optimizing graph '%s'", src->name);
    kiln_opt_t o = {.session = session, .owner = ow, .level = level};
    o.opset = src->model ? (int)kiln_model_opset(src->model, "") : 0;
    kiln_opt_report_t *r = &ow->report;
    r->level = level;
    r->nodes_before = kiln_opt_count_nodes(src);
    r->initializers_before = src->n_initializers;
    r->weight_bytes_before = kiln_opt_weight_bytes(src);
    kiln_status_t st = opt_copy_graph(&o, src);
    if (!st)
        st = opt_refresh(&o);
    for (int round = 0; !st && round < MAX_ROUNDS; round++) {
        int fired = 0;
        for (size_t p = 0; p < sizeof passes / sizeof passes[0] && !o.status; p++) {
            if (passes[p].level > level)
                continue;
            int n = passes[p].run(&o);
            opt_compact(&o);
            r->fired[passes[p].id] += n;
            /* the sweeps only matter after something else changed */
            if (passes[p].id != KILN_OPT_DEAD_NODE_ELIMINATION &&
                passes[p].id != KILN_OPT_UNUSED_INITIALIZER_ELIMINATION)
                fired += n;
        }
        if (o.status)
            st = kiln_fail(o.status, "out of memory optimizing graph '%s'", src->name);
        if (!fired)
            break;
    }
    free(o.uses);
    free(o.pinned);
    if (!st && (st = kiln_graph_check_shallow(&ow->graph)) != KILN_OK)
        st = kiln_fail_prefix(st, "the graph optimized at level %d", level);
    if (st) {
        kiln_opt_graph_free(ow);
        return st;
    }
    r->nodes_after = kiln_opt_count_nodes(&ow->graph);
    r->initializers_after = ow->graph.n_initializers;
    r->weight_bytes_after = kiln_opt_weight_bytes(&ow->graph);
    *out = ow;
    return KILN_OK;
}
