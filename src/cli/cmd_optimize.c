/*
 * cmd_optimize.c - `kiln optimize IN.onnx -o OUT.onnx [--level 0|1|2|3] [--json]`
 *
 * Reads a model and writes it back as a standard ONNX file (onnx/write.c),
 * then prints a before/after report (nodes, initializers, bytes).  This is
 * the graph as a session at that level runs it (see opt/opt.h): level 1
 * keeps to standard ONNX ops (onnx.checker and ONNX Runtime accept the
 * file), levels 2 and 3 add kiln's com.kiln fused ops and are meant for
 * kiln.  Level 0 reads without the graph check (any op, even one kiln has
 * no kernel for, goes through) and writes the graph unchanged; levels 1 to
 * 3 load the model as a session would, so a model kiln cannot run is
 * refused there.
 * --precision and --calibration are reserved for the passes to come.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/session.h"
#include "onnx/model.h"
#include "opt/opt.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: kiln optimize IN.onnx -o OUT.onnx [--level 0|1|2|3] [--json]\n"
                 "  Optimizes IN as a kiln session at that level would and writes the\n"
                 "  result as an ONNX file OUT (weights aligned for zero-copy loading);\n"
                 "  prints nodes, initializers, bytes and the passes that fired.\n"
                 "  --level 1 writes standard ONNX ops only; 2 and 3 (default) add kiln's\n"
                 "  com.kiln fused ops; 0 copies the graph unchanged, without checking\n"
                 "  ops against kiln's kernels.\n");
}

/* True when a node of g is in the domain. */
static bool uses_domain(const kiln_graph_t *g, const char *domain)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i].domain, domain))
            return true;
    return false;
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

int kiln_cmd_optimize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int level = 3;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return KILN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--level") ||
                   !strcmp(a, "--precision") || !strcmp(a, "--calibration") || !strcmp(a, "--max-accuracy-drop")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kiln optimize: %s needs a value\n", a);
                return KILN_EXIT_BAD_INPUT;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
                out = v;
            } else if (!strcmp(a, "--level")) {
                if (strlen(v) != 1 || v[0] < '0' || v[0] > '3') {
                    fprintf(stderr, "kiln optimize: --level must be 0, 1, 2 or 3, not '%s'\n", v);
                    return KILN_EXIT_BAD_INPUT;
                }
                level = v[0] - '0';
            } else if (!strcmp(a, "--precision") && !strcmp(v, "fp32")) {
                /* the only precision so far */
            } else {
                fprintf(stderr, "kiln optimize: %s %s is not supported yet\n", a, v);
                return KILN_EXIT_BAD_INPUT;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln optimize: unknown option '%s'\n", a);
            usage(stderr);
            return KILN_EXIT_BAD_INPUT;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "kiln optimize: unexpected argument '%s'\n", a);
            return KILN_EXIT_BAD_INPUT;
        }
    }
    if (!in || !out) {
        usage(stderr);
        return KILN_EXIT_BAD_INPUT;
    }
    kiln_model_t *model = NULL;
    kiln_status_t st = level == 0 ? kiln_model_load_unchecked(in, &model) : kiln_model_load(in, &model);
    if (st) {
        fprintf(stderr, "kiln optimize: %s\n", kiln_last_error());
        return KILN_EXIT_BAD_INPUT;
    }
    /* Levels 1-3: a one-thread session at that level optimizes its own copy
     * of the graph; that copy is what gets written. */
    kiln_session_t *session = NULL;
    kiln_model_ir_t ir = model->ir;
    kiln_opset_t *opsets = NULL;
    if (level > 0) {
        kiln_session_options_t opts;
        kiln_session_options_init(&opts);
        opts.threads = 1;
        opts.optimization_level = level;
        if ((st = kiln_session_create(model, &opts, &session)) != KILN_OK) {
            fprintf(stderr, "kiln optimize: %s\n", kiln_last_error());
            kiln_model_free(model);
            return KILN_EXIT_BAD_INPUT;
        }
        /* the weights the packed copies replaced, read back for the writer */
        if ((st = kiln_model_restore_copies(model)) != KILN_OK) {
            fprintf(stderr, "kiln optimize: %s\n", kiln_last_error());
            kiln_session_free(session);
            kiln_model_free(model);
            return KILN_EXIT_BAD_INPUT;
        }
        ir.graph = (kiln_graph_t *)session->graph;
        if (uses_domain(ir.graph, KILN_OPT_DOMAIN) && kiln_model_opset(&ir, KILN_OPT_DOMAIN) == 0) {
            opsets = calloc((size_t)ir.n_opsets + 1, sizeof *opsets);
            if (!opsets) {
                fprintf(stderr, "kiln optimize: out of memory\n");
                kiln_session_free(session);
                kiln_model_free(model);
                return KILN_EXIT_BAD_INPUT;
            }
            memcpy(opsets, ir.opsets, (size_t)ir.n_opsets * sizeof *opsets);
            opsets[ir.n_opsets++] = (kiln_opset_t){KILN_OPT_DOMAIN, KILN_OPT_DOMAIN_VERSION};
            ir.opsets = opsets;
        }
    }
    kiln_opt_report_t report = {.level = level};
    if (session) {
        report = session->opt->report;
    } else {
        report.nodes_before = report.nodes_after = kiln_opt_count_nodes(model->ir.graph);
        report.initializers_before = report.initializers_after = model->ir.graph->n_initializers;
        report.weight_bytes_before = report.weight_bytes_after = kiln_opt_weight_bytes(model->ir.graph);
    }
    st = kiln_onnx_write_file(&ir, out);
    free(opsets);
    kiln_session_free(session);
    kiln_model_free(model);
    if (st) {
        fprintf(stderr, "kiln optimize: %s\n", kiln_last_error());
        return KILN_EXIT_BAD_INPUT;
    }
    long long before = file_size(in), after = file_size(out);
    if (json) {
        printf("{\"input\": \"%s\", \"output\": \"%s\", \"level\": %d, \"nodes_before\": %d, \"nodes_after\": %d, "
               "\"initializers_before\": %d, \"initializers_after\": %d, \"bytes_before\": %lld, "
               "\"bytes_after\": %lld, \"passes\": {",
               in, out, level, report.nodes_before, report.nodes_after, report.initializers_before,
               report.initializers_after, before, after);
        for (int p = 0, first = 1; p < KILN_OPT_PASS_COUNT; p++)
            if (report.fired[p]) {
                printf("%s\"%s\": %d", first ? "" : ", ", kiln_opt_pass_name((kiln_opt_pass_t)p), report.fired[p]);
                first = 0;
            }
        printf("}}\n");
    } else {
        printf("optimized %s -> %s (level %d)\n  nodes: %d -> %d\n  initializers: %d -> %d\n"
               "  bytes: %lld -> %lld\n", in, out, level, report.nodes_before, report.nodes_after,
               report.initializers_before, report.initializers_after, before, after);
        for (int p = 0; p < KILN_OPT_PASS_COUNT; p++)
            if (report.fired[p])
                printf("  %-32s %d\n", kiln_opt_pass_name((kiln_opt_pass_t)p), report.fired[p]);
    }
    return KILN_EXIT_OK;
}
