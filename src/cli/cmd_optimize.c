/*
 * cmd_optimize.c - `kiln optimize IN.onnx -o OUT.onnx [--level 0|1|2|3] [--json]`
 *
 * Reads a model and writes it back as a standard ONNX file (onnx/write.c),
 * then prints a before/after report (nodes, initializers, bytes).  This is
 * the first version: no optimization pass exists yet, so every level writes
 * the graph unchanged.  Level 0 reads without the graph check (any op, even
 * one kiln has no kernel for, goes through); levels 1 to 3 load the model as
 * a session would, so a model kiln cannot run is refused there.
 * --precision and --calibration are reserved for the passes to come.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/error.h"
#include "onnx/model.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: kiln optimize IN.onnx -o OUT.onnx [--level 0|1|2|3] [--json]\n"
                 "  Writes IN as a standard ONNX file OUT (weights aligned for zero-copy\n"
                 "  loading) and prints nodes and bytes before and after.\n"
                 "  --level 0 reads without checking ops against kiln's kernels.\n");
}

static int count_nodes(const kiln_graph_t *g)
{
    int n = g->n_nodes;
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attrs; a++) {
            const kiln_attr_t *at = &g->nodes[i].attrs[a];
            if (at->g)
                n += count_nodes(at->g);
            for (int64_t k = 0; at->graphs && k < at->n; k++)
                n += count_nodes(at->graphs[k]);
        }
    return n;
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
    int nodes = count_nodes(model->ir.graph);
    int inits = model->ir.graph->n_initializers;
    st = kiln_onnx_write_file(&model->ir, out);
    kiln_model_free(model);
    if (st) {
        fprintf(stderr, "kiln optimize: %s\n", kiln_last_error());
        return KILN_EXIT_BAD_INPUT;
    }
    long long before = file_size(in), after = file_size(out);
    if (json)
        printf("{\"input\": \"%s\", \"output\": \"%s\", \"level\": %d, \"nodes_before\": %d, \"nodes_after\": %d, "
               "\"initializers\": %d, \"bytes_before\": %lld, \"bytes_after\": %lld, \"passes\": []}\n",
               in, out, level, nodes, nodes, inits, before, after);
    else
        printf("optimized %s -> %s (level %d, no passes yet)\n  nodes: %d -> %d\n  initializers: %d\n"
               "  bytes: %lld -> %lld\n", in, out, level, nodes, nodes, inits, before, after);
    return KILN_EXIT_OK;
}
