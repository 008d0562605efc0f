/*
 * simple_run.c - the smallest complete use of kiln's public API (kiln.h).
 *
 *   simple_run MODEL.onnx [THREADS]
 *
 * Loads a model, creates a session with explicit options, describes its
 * inputs and outputs, makes one input tensor per graph input (symbolic dims
 * become 1; float32 element i holds (i % 10) * 0.1, other dtypes zeros),
 * runs the model once and prints every output.  Errors are reported with
 * kiln_last_error() and exit status 2; nothing is leaked on any path.
 *
 * Build: make (the binary is build/examples/simple_run); or by hand,
 *   cc -Iinclude simple_run.c build/libkiln.a -lm -lpthread ... (see LIBS in the Makefile).
 */
#include <stdio.h>
#include <stdlib.h>

#include "kiln.h"

#define MAX_PRINTED 16

static int fail(const char *what)
{
    fprintf(stderr, "simple_run: %s: %s\n", what, kiln_last_error());
    return 2;
}

/* Prints "NAME: float32 [N=-1,16]" for one input or output. */
static void describe(const char *kind, const kiln_io_info_t *info)
{
    printf("%s %s: %s [", kind, info->name, kiln_dtype_name(info->dtype));
    if (info->rank < 0)
        printf("unknown rank");
    for (int d = 0; d < info->rank; d++) {
        if (info->dim_names[d])
            printf("%s%s", d ? "," : "", info->dim_names[d]);
        else
            printf("%s%lld", d ? "," : "", (long long)info->dims[d]);
    }
    printf("]\n");
}

/* A tensor shaped like the declaration (unknown dims = 1), filled in. */
static kiln_tensor_t *make_input(const kiln_io_info_t *info)
{
    int64_t dims[KILN_MAX_RANK];
    int rank = info->rank < 0 ? 1 : info->rank;
    for (int d = 0; d < rank; d++)
        dims[d] = info->rank < 0 || info->dims[d] < 0 ? 1 : info->dims[d];
    kiln_dtype_t dtype = info->dtype == KILN_DTYPE_UNDEFINED ? KILN_DTYPE_FLOAT32 : info->dtype;
    kiln_tensor_t *t = kiln_tensor_create(dtype, rank, dims); /* zeroed; we own it */
    if (t && dtype == KILN_DTYPE_FLOAT32) {
        float *x = kiln_tensor_data(t);
        for (int64_t i = 0; i < kiln_tensor_count(t); i++)
            x[i] = (float)(i % 10) * 0.1f;
    }
    return t;
}

static void print_output(const char *name, kiln_tensor_t *t)
{
    const int64_t *dims = kiln_tensor_dims(t);
    printf("output %s: %s [", name, kiln_dtype_name(kiln_tensor_dtype(t)));
    for (int d = 0; d < kiln_tensor_rank(t); d++)
        printf("%s%lld", d ? "," : "", (long long)dims[d]);
    printf("]\n  values:");
    int64_t n = kiln_tensor_count(t);
    for (int64_t i = 0; i < n && i < MAX_PRINTED; i++) {
        if (kiln_tensor_dtype(t) == KILN_DTYPE_FLOAT32)
            printf(" %.6g", ((const float *)kiln_tensor_data(t))[i]);
        else if (kiln_tensor_dtype(t) == KILN_DTYPE_INT64)
            printf(" %lld", (long long)((const int64_t *)kiln_tensor_data(t))[i]);
        else
            printf(" ?");
    }
    printf(n > MAX_PRINTED ? " ...\n" : "\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: simple_run MODEL.onnx [THREADS]\n");
        return 2;
    }
    int rc = 2;
    kiln_model_t *model = NULL;
    kiln_session_t *session = NULL;
    kiln_tensor_t **inputs = NULL, **outputs = NULL;
    const char **names = NULL;
    int n_in = 0, n_out = 0;

    /* 1. Load: the file is mapped, weights stay in place. */
    if (kiln_model_load(argv[1], &model) != KILN_OK)
        return fail("load");

    /* 2. A session with explicit options. */
    kiln_session_options_t options;
    kiln_session_options_init(&options);
    options.threads = argc > 2 ? atoi(argv[2]) : 1;
    if (kiln_session_create(model, &options, &session) != KILN_OK) {
        rc = fail("session");
        goto done;
    }

    /* 3. What the model takes and gives. */
    n_in = kiln_session_input_count(session);
    n_out = kiln_session_output_count(session);
    inputs = calloc((size_t)n_in + 1, sizeof *inputs);
    names = calloc((size_t)n_in + 1, sizeof *names);
    outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    if (!inputs || !names || !outputs) {
        fprintf(stderr, "simple_run: out of memory\n");
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        kiln_io_info_t info;
        if (kiln_session_input_info(session, i, &info) != KILN_OK) {
            rc = fail("input info");
            goto done;
        }
        describe("input", &info);
        names[i] = info.name; /* owned by the session */
        /* 4. Input tensors. */
        if (!(inputs[i] = make_input(&info))) {
            rc = fail("input tensor");
            goto done;
        }
    }
    for (int i = 0; i < n_out; i++) {
        kiln_io_info_t info;
        if (kiln_session_output_info(session, i, &info) == KILN_OK)
            describe("output", &info);
    }

    /* 5. Run: outputs are new tensors that we own. */
    if (kiln_session_run(session, n_in, names, (const kiln_tensor_t *const *)inputs, n_out, outputs) != KILN_OK) {
        rc = fail("run");
        goto done;
    }
    for (int i = 0; i < n_out; i++) {
        kiln_io_info_t info;
        kiln_session_output_info(session, i, &info);
        print_output(info.name, outputs[i]);
    }
    rc = 0;

done:
    /* 6. Free what we own: tensors, then the session, then the model. */
    for (int i = 0; outputs && i < n_out; i++)
        kiln_tensor_free(outputs[i]);
    for (int i = 0; inputs && i < n_in; i++)
        kiln_tensor_free(inputs[i]);
    free(outputs);
    free(inputs);
    free(names);
    kiln_session_free(session);
    kiln_model_free(model);
    return rc;
}
