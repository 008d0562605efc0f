/*
 * test_shape_infer.c - static shape inference at load: models are written
 * in memory with the protobuf writer (graph outputs declared without a
 * shape), loaded through the public API, and the output shapes kiln
 * describes are compared with the hand-computed ones; certain mismatches
 * must refuse the model naming the node.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/error.h"
#include "kiln.h"
#include "onnx/pb.h"

/* ValueInfoProto with a tensor type; rank < 0 leaves the shape out. */
static void value_info(pb_writer_t *graph, int field, const char *name, int dtype, int rank, const int64_t *dims)
{
    pb_writer_t vi = {0}, type = {0}, tensor = {0}, shape = {0};
    pb_put_string_field(&vi, 1, name);
    pb_put_varint_field(&tensor, 1, (uint64_t)dtype);
    if (rank >= 0) {
        for (int d = 0; d < rank; d++) {
            pb_writer_t dim = {0};
            pb_put_varint_field(&dim, 1, (uint64_t)dims[d]);
            pb_put_message_field(&shape, 1, &dim);
        }
        pb_put_message_field(&tensor, 2, &shape);
    }
    pb_put_message_field(&type, 1, &tensor);
    pb_put_message_field(&vi, 2, &type);
    pb_put_message_field(graph, (uint32_t)field, &vi);
}

/* A float initializer of the given shape filled with 0.01. */
static void initializer(pb_writer_t *graph, const char *name, int rank, const int64_t *dims)
{
    pb_writer_t t = {0};
    int64_t count = 1;
    for (int d = 0; d < rank; d++) {
        pb_put_varint_field(&t, 1, (uint64_t)dims[d]);
        count *= dims[d];
    }
    pb_put_varint_field(&t, 2, 1);
    pb_put_string_field(&t, 8, name);
    float *data = malloc((size_t)count * sizeof *data);
    for (int64_t i = 0; i < count; i++)
        data[i] = 0.01f;
    pb_put_bytes_field(&t, 9, data, (size_t)count * sizeof *data);
    free(data);
    pb_put_message_field(graph, 5, &t);
}

static void int64_initializer(pb_writer_t *graph, const char *name, int n, const int64_t *vals)
{
    pb_writer_t t = {0};
    pb_put_varint_field(&t, 1, (uint64_t)n);
    pb_put_varint_field(&t, 2, 7);
    pb_put_string_field(&t, 8, name);
    pb_put_bytes_field(&t, 9, vals, (size_t)n * sizeof *vals);
    pb_put_message_field(graph, 5, &t);
}

/* NodeProto: op, inputs and outputs as NULL-terminated lists, one optional
 * INTS attribute and one optional INT attribute. */
static void node(pb_writer_t *graph, const char *op, const char *const *in, const char *const *out,
                 const char *ints_name, int n_ints, const int64_t *ints, const char *int_name, int64_t int_value)
{
    pb_writer_t n = {0};
    for (; *in; in++)
        pb_put_string_field(&n, 1, *in);
    for (; *out; out++)
        pb_put_string_field(&n, 2, *out);
    pb_put_string_field(&n, 4, op);
    if (ints_name) {
        pb_writer_t a = {0};
        pb_put_string_field(&a, 1, ints_name);
        for (int i = 0; i < n_ints; i++)
            pb_put_varint_field(&a, 8, (uint64_t)ints[i]);
        pb_put_varint_field(&a, 20, 7);
        pb_put_message_field(&n, 5, &a);
    }
    if (int_name) {
        pb_writer_t a = {0};
        pb_put_string_field(&a, 1, int_name);
        pb_put_varint_field(&a, 3, (uint64_t)int_value);
        pb_put_varint_field(&a, 20, 2);
        pb_put_message_field(&n, 5, &a);
    }
    pb_put_message_field(graph, 1, &n);
}

static kiln_status_t load(pb_writer_t *graph, kiln_model_t **model)
{
    pb_writer_t m = {0}, opset = {0};
    pb_put_varint_field(&m, 1, 8);
    pb_put_varint_field(&opset, 2, 13);
    pb_put_message_field(&m, 8, &opset);
    pb_put_message_field(&m, 7, graph);
    kiln_status_t st = kiln_model_load_bytes(m.buf, m.len, model);
    pb_writer_free(&m);
    return st;
}

static bool output_shape_is(kiln_model_t *model, int rank, const int64_t *dims)
{
    kiln_session_t *s;
    if (kiln_session_create(model, NULL, &s) != KILN_OK)
        return false;
    kiln_io_info_t info;
    bool ok = kiln_session_output_info(s, 0, &info) == KILN_OK && info.rank == rank && info.dtype == KILN_DTYPE_FLOAT32;
    for (int d = 0; ok && d < rank; d++)
        ok = info.dims[d] == dims[d];
    if (!ok)
        fprintf(stderr, "output rank %d dims %lld %lld\n", info.rank, (long long)info.dims[0], (long long)info.dims[1]);
    kiln_session_free(s);
    return ok;
}

static void test_cnn_chain(void)
{
    pb_writer_t g = {0};
    pb_put_string_field(&g, 2, "cnn");
    int64_t x[] = {1, 3, 32, 32}, w[] = {8, 3, 3, 3}, fc[] = {10, 2048};
    initializer(&g, "w", 4, w);
    initializer(&g, "fc", 2, fc);
    int64_t pads[] = {1, 1, 1, 1}, k2[] = {2, 2};
    node(&g, "Conv", (const char *[]){"x", "w", NULL}, (const char *[]){"c", NULL}, "pads", 4, pads, NULL, 0);
    node(&g, "Relu", (const char *[]){"c", NULL}, (const char *[]){"r", NULL}, NULL, 0, NULL, NULL, 0);
    node(&g, "MaxPool", (const char *[]){"r", NULL}, (const char *[]){"p", NULL}, "kernel_shape", 2, k2, NULL, 0);
    /* MaxPool strides default to 1: 32x32 -> 31x31 */
    node(&g, "Flatten", (const char *[]){"p", NULL}, (const char *[]){"f", NULL}, NULL, 0, NULL, "axis", 1);
    value_info(&g, 11, "x", 1, 4, x);
    value_info(&g, 12, "f", 1, -1, NULL);
    kiln_model_t *model = NULL;
    CHECK_MSG(load(&g, &model) == KILN_OK, "%s", kiln_last_error());
    int64_t want[] = {1, 8 * 31 * 31};
    CHECK(model && output_shape_is(model, 2, want));
    kiln_model_free(model);
}

static void test_reshape_and_gemm(void)
{
    pb_writer_t g = {0};
    pb_put_string_field(&g, 2, "reshape");
    int64_t x[] = {2, 3, 4}, shape[] = {-1, 12}, b[] = {5, 12};
    int64_initializer(&g, "shape", 2, shape);
    initializer(&g, "b", 2, b);
    node(&g, "Reshape", (const char *[]){"x", "shape", NULL}, (const char *[]){"r", NULL}, NULL, 0, NULL, NULL, 0);
    node(&g, "Gemm", (const char *[]){"r", "b", NULL}, (const char *[]){"y", NULL}, NULL, 0, NULL, "transB", 1);
    value_info(&g, 11, "x", 1, 3, x);
    value_info(&g, 12, "y", 1, -1, NULL);
    kiln_model_t *model = NULL;
    CHECK_MSG(load(&g, &model) == KILN_OK, "%s", kiln_last_error());
    int64_t want[] = {2, 5};
    CHECK(model && output_shape_is(model, 2, want));
    kiln_model_free(model);
}

static void test_mismatches(void)
{
    pb_writer_t g = {0};
    pb_put_string_field(&g, 2, "bad_matmul");
    int64_t a[] = {2, 3}, b[] = {4, 5};
    initializer(&g, "b", 2, b);
    node(&g, "MatMul", (const char *[]){"a", "b", NULL}, (const char *[]){"y", NULL}, NULL, 0, NULL, NULL, 0);
    value_info(&g, 11, "a", 1, 2, a);
    value_info(&g, 12, "y", 1, -1, NULL);
    kiln_model_t *model = NULL;
    CHECK(load(&g, &model) == KILN_ERR_INVALID_MODEL);
    CHECK_MSG(strstr(kiln_last_error(), "(MatMul): inner dimensions differ: shapes [2,3] and [4,5]") != NULL, "%s",
              kiln_last_error());
    kiln_model_free(model);

    pb_writer_t h = {0};
    pb_put_string_field(&h, 2, "bad_add");
    int64_t x[] = {2, 3}, y[] = {4};
    initializer(&h, "y", 1, y);
    node(&h, "Add", (const char *[]){"x", "y", NULL}, (const char *[]){"z", NULL}, NULL, 0, NULL, NULL, 0);
    value_info(&h, 11, "x", 1, 2, x);
    value_info(&h, 12, "z", 1, -1, NULL);
    model = NULL;
    CHECK(load(&h, &model) == KILN_ERR_INVALID_MODEL);
    CHECK_MSG(strstr(kiln_last_error(), "(Add): operands cannot broadcast: shapes [2,3] and [4]") != NULL, "%s",
              kiln_last_error());
    kiln_model_free(model);
}

/* A graph with no values at all (found by the model fuzzer: the optimizer
 * copied it with memcpy from NULL) loads, optimizes and runs. */
static void test_empty_graph(void)
{
    pb_writer_t g = {0};
    pb_put_string_field(&g, 2, "empty");
    kiln_model_t *model = NULL;
    CHECK_MSG(load(&g, &model) == KILN_OK, "%s", kiln_last_error());
    kiln_session_t *s = NULL;
    CHECK(model && kiln_session_create(model, NULL, &s) == KILN_OK);
    CHECK(s && kiln_session_run(s, 0, NULL, NULL, 0, NULL) == KILN_OK);
    kiln_session_free(s);
    kiln_model_free(model);
}

/* An axes attribute with no entries (found by the model fuzzer: the list
 * has no storage) means "every dim of size 1" for Squeeze. */
static void test_empty_axes(void)
{
    pb_writer_t g = {0};
    pb_put_string_field(&g, 2, "squeeze");
    int64_t x[] = {1, 3, 1};
    node(&g, "Squeeze", (const char *[]){"x", NULL}, (const char *[]){"y", NULL}, "axes", 0, NULL, NULL, 0);
    value_info(&g, 11, "x", 1, 3, x);
    value_info(&g, 12, "y", 1, -1, NULL);
    pb_writer_t m = {0}, opset = {0};
    pb_put_varint_field(&m, 1, 7);
    pb_put_varint_field(&opset, 2, 11); /* axes is an attribute before opset 13 */
    pb_put_message_field(&m, 8, &opset);
    pb_put_message_field(&m, 7, &g);
    kiln_model_t *model = NULL;
    CHECK_MSG(kiln_model_load_bytes(m.buf, m.len, &model) == KILN_OK, "%s", kiln_last_error());
    pb_writer_free(&m);
    int64_t want[] = {3};
    CHECK(model && output_shape_is(model, 1, want));
    kiln_model_free(model);
}

int main(void)
{
    test_empty_graph();
    test_empty_axes();
    test_cnn_chain();
    test_reshape_and_gemm();
    test_mismatches();
    return check_finish();
}
