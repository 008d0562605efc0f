/*
 * test_opt.c - the graph optimizer (src/opt/): each pass fires on a small
 * model made for it (tests/unit/make_opt_models.py, run into
 * build/tests/opt_models when missing), the optimized graph has the
 * expected ops, and outputs at levels 1, 2 and 3 agree with level 0 on
 * random inputs.  Also: the session keeps the model's graph untouched, the
 * com.kiln fast erf against libm, and a bad level is refused.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/error.h"
#include "core/session.h"
#include "onnx/model.h"
#include "ops/fused_epilogue.h"
#include "opt/opt.h"

#define DIR "build/tests/opt_models"

static kiln_model_t *load(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, DIR "/%s.onnx", name);
    kiln_model_t *m = NULL;
    CHECK_MSG(kiln_model_load(path, &m) == KILN_OK, "%s: %s", path, kiln_last_error());
    return m;
}

static kiln_session_t *session_at(kiln_model_t *m, int level)
{
    kiln_session_options_t o;
    kiln_session_options_init(&o);
    o.threads = 1;
    o.optimization_level = level;
    kiln_session_t *s = NULL;
    CHECK_MSG(kiln_session_create(m, &o, &s) == KILN_OK, "level %d: %s", level, kiln_last_error());
    return s;
}

/* How many nodes of the session's graph run op (any domain). */
static int count_op(const kiln_session_t *s, const char *op)
{
    int n = 0;
    for (int i = 0; i < s->graph->n_nodes; i++)
        n += !strcmp(s->graph->nodes[i].op_type, op);
    return n;
}

/* Runs s on fixed-seed random float32 inputs; outputs[] get new tensors. */
static bool run_random(kiln_session_t *s, kiln_tensor_t **outputs)
{
    int n = kiln_session_input_count(s);
    kiln_tensor_t *inputs[8] = {0};
    const char *names[8];
    unsigned seed = 12345;
    bool ok = n <= 8;
    for (int i = 0; i < n && ok; i++) {
        kiln_io_info_t info;
        ok = kiln_session_input_info(s, i, &info) == KILN_OK && info.dtype == KILN_DTYPE_FLOAT32;
        if (!ok)
            break;
        names[i] = info.name;
        inputs[i] = kiln_tensor_create(KILN_DTYPE_FLOAT32, info.rank, info.dims);
        float *d = kiln_tensor_data(inputs[i]);
        for (int64_t k = 0; k < kiln_tensor_count(inputs[i]); k++) {
            seed = seed * 1103515245u + 12345u;
            d[k] = ((float)(seed >> 8 & 0xffff) / 32768.0f - 1.0f) * 3.0f;
        }
    }
    if (ok)
        ok = kiln_session_run(s, n, names, (const kiln_tensor_t *const *)inputs, kiln_session_output_count(s),
                              outputs) == KILN_OK;
    CHECK_MSG(ok, "run: %s", kiln_last_error());
    for (int i = 0; i < n; i++)
        kiln_tensor_free(inputs[i]);
    return ok;
}

/* Outputs at levels 1..3 equal level 0's within tolerance. */
static void check_levels_agree(kiln_model_t *m, const char *name)
{
    kiln_session_t *s0 = session_at(m, 0);
    kiln_tensor_t *want[32] = {0};
    if (!s0 || !run_random(s0, want)) {
        kiln_session_free(s0);
        return;
    }
    int n_out = kiln_session_output_count(s0);
    for (int level = 1; level <= 3; level++) {
        kiln_session_t *s = session_at(m, level);
        kiln_tensor_t *got[32] = {0};
        if (s && run_random(s, got)) {
            for (int k = 0; k < n_out; k++) {
                CHECK_MSG(kiln_shape_equal(got[k], want[k]), "%s level %d output %d shape", name, level, k);
                double worst = 0;
                const float *g = kiln_tensor_data(got[k]), *w = kiln_tensor_data(want[k]);
                for (int64_t i = 0; kiln_shape_equal(got[k], want[k]) && i < kiln_tensor_count(got[k]); i++) {
                    double err = fabs((double)g[i] - w[i]) / (1e-4 + 1e-3 * fabs((double)w[i]));
                    worst = err > worst ? err : worst;
                }
                CHECK_MSG(worst <= 1.0, "%s level %d output %d differs from level 0 (%.3g of tolerance)",
                          name, level, k, worst);
                kiln_tensor_free(got[k]);
            }
        }
        kiln_session_free(s);
    }
    for (int k = 0; k < n_out; k++)
        kiln_tensor_free(want[k]);
    kiln_session_free(s0);
}

typedef struct expect {
    const char *model;
    int level;
    kiln_opt_pass_t pass; /* must have fired */
    int nodes_after;      /* node count of the optimized graph */
    const char *op;       /* an op the optimized graph must have (NULL: none) */
} expect_t;

static const expect_t expectations[] = {
    {"conv_bn_relu", 1, KILN_OPT_CONV_BN_FOLDING, 2, "Conv"},
    {"conv_bn_relu", 2, KILN_OPT_ACTIVATION_FUSION, 1, "FusedConv"},
    {"conv_mul_add_clip", 1, KILN_OPT_CONV_ADD_MUL_FOLDING, 2, "Clip"},
    {"conv_mul_add_clip", 2, KILN_OPT_ACTIVATION_FUSION, 1, "FusedConv"},
    {"conv_residual", 1, KILN_OPT_PASS_COUNT, 3, "Conv"},
    {"conv_residual", 2, KILN_OPT_CONV_FUSION, 1, "FusedConv"},
    {"conv_residual", 2, KILN_OPT_ACTIVATION_FUSION, 1, NULL},
    {"identity_dropout", 1, KILN_OPT_IDENTITY_ELIMINATION, 1, "Sigmoid"},
    {"constant_folding", 1, KILN_OPT_CONSTANT_FOLDING, 2, "Reshape"},
    {"constant_folding", 1, KILN_OPT_UNUSED_INITIALIZER_ELIMINATION, 2, "Mul"},
    {"matmul_add_leaky", 1, KILN_OPT_MATMUL_ADD_GEMM, 2, "Gemm"},
    {"matmul_add_leaky", 2, KILN_OPT_ACTIVATION_FUSION, 1, "FusedGemm"},
    {"layer_norm_gelu", 1, KILN_OPT_PASS_COUNT, 16, "Erf"},
    {"layer_norm_gelu", 2, KILN_OPT_LAYER_NORM_FUSION, 2, "LayerNormalization"},
    {"layer_norm_gelu", 2, KILN_OPT_GELU_FUSION, 2, "FusedMatMul"},
    {"layer_norm_gelu", 2, KILN_OPT_MATMUL_BIAS_FUSION, 2, NULL},
    {"transpose_matmul", 2, KILN_OPT_PASS_COUNT, 3, "MatMul"},
    {"transpose_matmul", 3, KILN_OPT_TRANSPOSE_MATMUL_FOLDING, 3, "FusedMatMul"},
    {"transpose_matmul_f64", 3, KILN_OPT_PASS_COUNT, 2, "MatMul"},
    {"activations", 2, KILN_OPT_ACTIVATION_FUSION, 19, "FusedGemm"},
};

static void test_passes_fire(void)
{
    for (size_t i = 0; i < sizeof expectations / sizeof expectations[0]; i++) {
        const expect_t *e = &expectations[i];
        kiln_model_t *m = load(e->model);
        kiln_session_t *s = m ? session_at(m, e->level) : NULL;
        if (s) {
            const kiln_opt_report_t *r = &s->opt->report;
            if (e->pass != KILN_OPT_PASS_COUNT)
                CHECK_MSG(r->fired[e->pass] > 0, "%s level %d: %s did not fire", e->model, e->level,
                          kiln_opt_pass_name(e->pass));
            CHECK_MSG(s->graph->n_nodes == e->nodes_after && r->nodes_after == e->nodes_after,
                      "%s level %d: %d nodes, expected %d", e->model, e->level, s->graph->n_nodes,
                      e->nodes_after);
            if (e->op)
                CHECK_MSG(count_op(s, e->op) > 0, "%s level %d: no %s node", e->model, e->level, e->op);
            CHECK(r->nodes_before == m->ir.graph->n_nodes);
            if (!strcmp(e->model, "conv_residual") && e->level == 2) /* X, W, B and the residual Z */
                CHECK(s->graph->n_nodes == 1 && s->graph->nodes[0].n_inputs == 4);
        }
        kiln_session_free(s);
        kiln_model_free(m);
    }
}

static void test_levels_agree(void)
{
    static const char *const models[] = {"conv_bn_relu",     "conv_mul_add_clip", "conv_residual",
                                         "identity_dropout", "constant_folding",  "matmul_add_leaky",
                                         "layer_norm_gelu",  "transpose_matmul",  "activations"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        kiln_model_t *m = load(models[i]);
        if (m)
            check_levels_agree(m, models[i]);
        kiln_model_free(m);
    }
}

/* The model's graph is shared by its sessions: optimizing must not touch it. */
static void test_model_graph_untouched(void)
{
    kiln_model_t *m = load("conv_bn_relu");
    if (!m)
        return;
    const kiln_graph_t *g = m->ir.graph;
    int nodes = g->n_nodes, inits = g->n_initializers, out0 = g->nodes[0].outputs[0];
    kiln_session_t *s3 = session_at(m, 3), *s0 = session_at(m, 0);
    CHECK(g->n_nodes == nodes && g->n_initializers == inits && g->nodes[0].outputs[0] == out0);
    CHECK(!strcmp(g->nodes[0].op_type, "Conv") && g->nodes[0].n_inputs == 3);
    CHECK(s0 && s0->graph == g && !s0->opt);
    CHECK(s3 && s3->graph != g && s3->graph->n_nodes == 1);
    /* both run, from either order of creation and freeing */
    kiln_tensor_t *a[1] = {0}, *b[1] = {0};
    CHECK(s3 && s0 && run_random(s3, a) && run_random(s0, b));
    kiln_session_free(s3);
    kiln_session_free(s0);
    kiln_tensor_free(a[0]);
    kiln_tensor_free(b[0]);
    kiln_model_free(m);
}

static void test_options(void)
{
    kiln_model_t *m = load("identity_dropout");
    if (!m)
        return;
    kiln_session_options_t o;
    kiln_session_options_init(&o);
    CHECK(o.optimization_level == 3);
    o.optimization_level = -1;
    kiln_session_t *s = NULL;
    CHECK(kiln_session_create(m, &o, &s) == KILN_ERR_INVALID_ARGUMENT && !s);
    CHECK(strstr(kiln_last_error(), "optimization_level") != NULL);
    o.optimization_level = 99; /* above 3 means everything, as ONNX Runtime's 99 */
    CHECK(kiln_session_create(m, &o, &s) == KILN_OK && s && s->opt->report.level == 3);
    kiln_session_free(s);
    kiln_model_free(m);
}

static void test_fast_erf(void)
{
    double worst = 0;
    for (int i = -60000; i <= 60000; i++) {
        float x = (float)i / 10000.0f;
        double err = fabs((double)kiln_fast_erf(x) - erf((double)x));
        worst = err > worst ? err : worst;
    }
    CHECK_MSG(worst < 1e-6, "fast erf is %g off", worst);
    CHECK(kiln_fast_erf(0.0f) == 0.0f);
    CHECK(kiln_fast_erf(100.0f) > 0.999999f && kiln_fast_erf(-100.0f) < -0.999999f);
}

int main(void)
{
    /* (re)made every run: they are small, and the script may have changed */
    {
        int rc = system("/usr/bin/python3 tests/unit/make_opt_models.py " DIR);
        CHECK_MSG(rc == 0, "make_opt_models.py failed (%d)", rc);
    }
    test_passes_fire();
    test_levels_agree();
    test_model_graph_untouched();
    test_options();
    test_fast_erf();
    return check_finish();
}
