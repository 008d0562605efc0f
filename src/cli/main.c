/*
 * main.c - entry point of the `kiln` binary: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "kiln.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand_t;

static const subcommand_t subcommands[] = {
    {"run", kiln_cmd_run, "run a model on inputs and print or save its outputs"},
    {"conformance", kiln_cmd_conformance, "check kiln against ONNX backend-test directories"},
    {"optimize", kiln_cmd_optimize, "rewrite a model as a standard ONNX file (no passes yet)"},
    {"bench", kiln_cmd_bench, "measure latency, throughput and memory of a model"},
    {"serve", kiln_cmd_serve, "serve a model repository over KServe v2 HTTP (Triton-compatible)"},
    {"monitor", kiln_cmd_monitor, "sample GPUs and host, serve /metrics, history and alerts"},
    {"top", kiln_cmd_top, "live terminal view of GPUs, host, models and alerts"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: kiln [--version] [--help] SUBCOMMAND [ARGS]\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-12s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n`kiln SUBCOMMAND --help` describes one subcommand.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return KILN_EXIT_BAD_INPUT;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return KILN_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("kiln %s\n", KILN_VERSION_STRING);
        return KILN_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name))
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown subcommand '%s'\n", argv[1]);
    print_usage(stderr);
    return KILN_EXIT_BAD_INPUT;
}
