/*
 * cmd_run.c - `kiln run MODEL [--input NAME=FILE]... [--output-dir DIR] [--threads N]`
 *
 * Loads the model, reads each input from a TensorProto .pb or a NumPy .npy
 * file, runs once, and prints each output's name, dtype, shape and leading
 * values; with --output-dir, writes each output as NAME.npy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/session.h"
#include "core/tensor.h"
#include "onnx/tensor_file.h"

#define LEADING_VALUES 8

static void usage(FILE *out)
{
    fprintf(out, "usage: kiln run MODEL [--input NAME=FILE]... [--output-dir DIR] [--threads N]\n"
                 "                [--level 0-3]\n"
                 "  FILE is a TensorProto .pb or a NumPy .npy file.\n"
                 "  Prints each output's name, dtype, shape and leading values;\n"
                 "  --output-dir DIR writes each output as DIR/NAME.npy.\n"
                 "  --level sets the graph optimization level (default 3; 0 = none).\n");
}

static void print_values(const kiln_tensor_t *t)
{
    int64_t n = t->count < LEADING_VALUES ? t->count : LEADING_VALUES;
    printf("  values:");
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == KILN_DTYPE_STRING)
            printf(" \"%s\"", ((char *const *)t->data)[i]);
        else if (kiln_dtype_is_float(t->dtype))
            printf(" %.6g", kiln_tensor_get_f64(t, i));
        else if (t->dtype == KILN_DTYPE_UINT64)
            printf(" %llu", (unsigned long long)((const uint64_t *)t->data)[i]);
        else
            printf(" %lld", (long long)kiln_tensor_get_i64(t, i));
    }
    if (t->count > n)
        printf(" ... (%lld values)", (long long)t->count);
    printf("\n");
}

/* Output names may contain '/' or ':'; make a safe file name. */
static void safe_file_name(const char *name, char *out, size_t len)
{
    size_t i = 0;
    for (; name[i] && i + 1 < len; i++) {
        char c = name[i];
        out[i] = (c == '/' || c == '\\' || c == ':' || (c == '.' && i == 0)) ? '_' : c;
    }
    out[i] = '\0';
    if (i == 0)
        snprintf(out, len, "output");
}

int kiln_cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *out_dir = NULL;
    int threads = 0, n_in = 0, level = 3;
    char **in_names = calloc((size_t)argc + 1, sizeof *in_names);
    char **in_files = calloc((size_t)argc + 1, sizeof *in_files);
    kiln_tensor_t **in_tensors = calloc((size_t)argc + 1, sizeof *in_tensors);
    kiln_model_t *model = NULL;
    kiln_session_t *session = NULL;
    kiln_tensor_t **outputs = NULL;
    int n_out = 0, rc = KILN_EXIT_BAD_INPUT;
    if (!in_names || !in_files || !in_tensors)
        goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = KILN_EXIT_OK;
            goto done;
        } else if (!strcmp(a, "--input") || !strcmp(a, "--output-dir") || !strcmp(a, "--threads") ||
                   !strcmp(a, "--level")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kiln run: %s needs a value\n", a);
                goto done;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--input")) {
                char *eq = strchr(v, '=');
                if (!eq || eq == v || !eq[1]) {
                    fprintf(stderr, "kiln run: --input expects NAME=FILE, got '%s'\n", v);
                    goto done;
                }
                in_names[n_in] = strndup(v, (size_t)(eq - v));
                in_files[n_in++] = eq + 1;
            } else if (!strcmp(a, "--output-dir")) {
                out_dir = v;
            } else if (!strcmp(a, "--level")) {
                if (strlen(v) != 1 || v[0] < '0' || v[0] > '3') {
                    fprintf(stderr, "kiln run: --level must be 0, 1, 2 or 3, not '%s'\n", v);
                    goto done;
                }
                level = v[0] - '0';
            } else {
                char *end;
                long t = strtol(v, &end, 10);
                if (*end || t < 0 || t > 1024) {
                    fprintf(stderr, "kiln run: --threads must be 0..1024, not '%s'\n", v);
                    goto done;
                }
                threads = (int)t;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "kiln run: unknown option '%s'\n", a);
            usage(stderr);
            goto done;
        } else if (!model_path) {
            model_path = a;
        } else {
            fprintf(stderr, "kiln run: unexpected argument '%s'\n", a);
            goto done;
        }
    }
    if (!model_path) {
        usage(stderr);
        goto done;
    }
    if (kiln_model_load(model_path, &model) != KILN_OK) {
        fprintf(stderr, "kiln run: %s\n", kiln_last_error());
        goto done;
    }
    kiln_session_options_t opts;
    kiln_session_options_init(&opts);
    opts.threads = threads;
    opts.optimization_level = level;
    if (kiln_session_create(model, &opts, &session) != KILN_OK) {
        fprintf(stderr, "kiln run: %s\n", kiln_last_error());
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        if (kiln_tensor_read_file(in_files[i], &in_tensors[i]) != KILN_OK) {
            fprintf(stderr, "kiln run: input '%s': %s\n", in_names[i], kiln_last_error());
            goto done;
        }
    }
    n_out = kiln_session_output_count(session);
    outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    if (!outputs)
        goto done;
    if (kiln_session_run(session, n_in, (const char *const *)in_names, (const kiln_tensor_t *const *)in_tensors,
                         n_out, outputs) != KILN_OK) {
        fprintf(stderr, "kiln run: %s: %s\n", model_path, kiln_last_error());
        goto done;
    }
    if (out_dir && mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kiln run: cannot create %s: %s\n", out_dir, strerror(errno));
        goto done;
    }
    for (int k = 0; k < n_out; k++) {
        kiln_io_info_t info;
        kiln_session_output_info(session, k, &info);
        char shape[256];
        printf("output %s: %s %s\n", info.name, kiln_dtype_name(outputs[k]->dtype),
               kiln_shape_str(outputs[k]->rank, outputs[k]->dims, shape, sizeof shape));
        print_values(outputs[k]);
        if (out_dir) {
            char file[256], path[4096];
            safe_file_name(info.name, file, sizeof file);
            snprintf(path, sizeof path, "%s/%s.npy", out_dir, file);
            if (kiln_npy_write(path, outputs[k]) != KILN_OK) {
                fprintf(stderr, "kiln run: %s\n", kiln_last_error());
                goto done;
            }
            printf("  written to %s\n", path);
        }
    }
    rc = KILN_EXIT_OK;
done:
    for (int k = 0; outputs && k < n_out; k++)
        kiln_tensor_free(outputs[k]);
    free(outputs);
    for (int i = 0; i < n_in; i++) {
        free(in_names[i]);
        kiln_tensor_free(in_tensors[i]);
    }
    free(in_names);
    free(in_files);
    free(in_tensors);
    kiln_session_free(session);
    kiln_model_free(model);
    return rc;
}
