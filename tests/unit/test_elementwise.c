/*
 * test_elementwise.c - the elementwise kernels end to end through the
 * public API, on one-node models written in memory: a broadcasting Add on
 * several threads against a reference loop, integer corner cases (division
 * by zero, INT_MIN / -1, Python-style Mod), and every error a kernel of
 * this family reports (shapes that do not broadcast, mixed dtypes, a bad
 * BitShift direction, a non-bool Where condition, a Clip bound with two
 * elements, a Cast to an unknown dtype).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kiln.h"
#include "onnx/pb.h"

/* ---- one-node models ----------------------------------------------------- */

typedef struct io {
    const char *name;
    kiln_dtype_t dtype;
    int rank;
    int64_t dims[4];
} io_t;

/* Attributes: at most one int and one string. */
typedef struct attrs {
    const char *int_name;
    int64_t int_value;
    const char *str_name;
    const char *str_value;
} attrs_t;

static void put_value_info(pb_writer_t *g, uint32_t field, const io_t *v)
{
    pb_writer_t vi = {0}, type = {0}, tt = {0}, shape = {0};
    pb_put_varint_field(&tt, 1, v->dtype);
    if (v->rank >= 0) {
        for (int d = 0; d < v->rank; d++) {
            pb_writer_t dim = {0};
            pb_put_varint_field(&dim, 1, (uint64_t)v->dims[d]);
            pb_put_message_field(&shape, 1, &dim);
        }
        pb_put_message_field(&tt, 2, &shape);
    }
    pb_put_message_field(&type, 1, &tt);
    pb_put_string_field(&vi, 1, v->name);
    pb_put_message_field(&vi, 2, &type);
    pb_put_message_field(g, field, &vi);
}

/* A model "inputs -> op -> y" named node "n0"; NULL when loading fails. */
/* Set while provoking errors: shape inference may refuse a model at load
 * (with the same message) before the kernel ever runs. */
static bool load_may_fail;

static kiln_model_t *one_node(const char *op, int opset, int n_in, const io_t *in, const io_t *out,
                              const attrs_t *at)
{
    pb_writer_t model = {0}, graph = {0}, node = {0}, opset_msg = {0};
    for (int i = 0; i < n_in; i++)
        pb_put_string_field(&node, 1, in[i].name);
    pb_put_string_field(&node, 2, out->name);
    pb_put_string_field(&node, 3, "n0");
    pb_put_string_field(&node, 4, op);
    if (at && at->int_name) {
        pb_writer_t a = {0};
        pb_put_string_field(&a, 1, at->int_name);
        pb_put_varint_field(&a, 3, (uint64_t)at->int_value);
        pb_put_varint_field(&a, 20, 2); /* INT */
        pb_put_message_field(&node, 5, &a);
    }
    if (at && at->str_name) {
        pb_writer_t a = {0};
        pb_put_string_field(&a, 1, at->str_name);
        pb_put_string_field(&a, 4, at->str_value);
        pb_put_varint_field(&a, 20, 3); /* STRING */
        pb_put_message_field(&node, 5, &a);
    }
    pb_put_message_field(&graph, 1, &node);
    pb_put_string_field(&graph, 2, "g");
    for (int i = 0; i < n_in; i++)
        put_value_info(&graph, 11, &in[i]);
    put_value_info(&graph, 12, out);
    pb_put_varint_field(&model, 1, 8);
    pb_put_string_field(&opset_msg, 1, "");
    pb_put_varint_field(&opset_msg, 2, (uint64_t)opset);
    pb_put_message_field(&model, 8, &opset_msg);
    pb_put_message_field(&model, 7, &graph);
    kiln_model_t *m = NULL;
    kiln_status_t st = model.failed ? KILN_ERR_NO_MEMORY : kiln_model_load_bytes(model.buf, model.len, &m);
    CHECK_MSG(st == KILN_OK || load_may_fail, "%s model: %s", op, kiln_last_error());
    pb_writer_free(&model);
    return st == KILN_OK ? m : NULL;
}

/* Runs m on the inputs with `threads` threads.  Returns the status; *y gets
 * the output (caller frees) on success. */
static kiln_status_t run_model(kiln_model_t *m, int threads, int n_in, const io_t *in,
                               kiln_tensor_t *const *x, kiln_tensor_t **y)
{
    kiln_session_options_t o;
    kiln_session_options_init(&o);
    o.threads = threads;
    kiln_session_t *s = NULL;
    const char *names[4];
    for (int i = 0; i < n_in; i++)
        names[i] = in[i].name;
    *y = NULL;
    kiln_status_t st = kiln_session_create(m, &o, &s);
    if (st == KILN_OK)
        st = kiln_session_run(s, n_in, names, (const kiln_tensor_t *const *)x, 1, y);
    kiln_session_free(s);
    return st;
}

static kiln_tensor_t *tensor_of(const io_t *v, const void *data)
{
    kiln_tensor_t *t = kiln_tensor_create(v->dtype, v->rank, v->dims);
    if (t && data)
        memcpy(kiln_tensor_data(t), data, kiln_tensor_nbytes(t));
    return t;
}

/* Builds, runs and frees a model; returns the run's status and, on
 * success, the output in *y. */
static kiln_status_t run_op(const char *op, int opset, int n_in, const io_t *in, const void *const *data,
                            kiln_dtype_t out_dtype, const attrs_t *at, int threads, kiln_tensor_t **y)
{
    io_t out = {"y", out_dtype, -1, {0}};
    *y = NULL;
    kiln_model_t *m = one_node(op, opset, n_in, in, &out, at);
    if (!m)
        return KILN_ERR_INVALID_MODEL;
    kiln_tensor_t *x[4] = {0};
    for (int i = 0; i < n_in; i++)
        x[i] = tensor_of(&in[i], data[i]);
    kiln_status_t st = run_model(m, threads, n_in, in, x, y);
    for (int i = 0; i < n_in; i++)
        kiln_tensor_free(x[i]);
    kiln_model_free(m);
    return st;
}

/* ---- results ------------------------------------------------------------- */

static void test_add_broadcast_threaded(void)
{
    io_t in[2] = {{"a", KILN_DTYPE_FLOAT32, 3, {16, 33, 257}}, {"b", KILN_DTYPE_FLOAT32, 2, {33, 1}}};
    int64_t na = 16 * 33 * 257;
    float *a = malloc((size_t)na * sizeof *a), b[33];
    for (int64_t i = 0; i < na; i++)
        a[i] = (float)(i % 1000) * 0.5f;
    for (int i = 0; i < 33; i++)
        b[i] = (float)i * 1000.0f;
    const void *data[2] = {a, b};
    kiln_tensor_t *y;
    kiln_status_t st = run_op("Add", 14, 2, in, data, KILN_DTYPE_FLOAT32, NULL, 4, &y);
    CHECK_MSG(st == KILN_OK, "%s", kiln_last_error());
    if (y) {
        CHECK(kiln_tensor_rank(y) == 3 && kiln_tensor_dims(y)[2] == 257);
        const float *p = kiln_tensor_data(y);
        int64_t bad = 0;
        for (int64_t i = 0; i < na; i++) {
            int64_t row = (i / 257) % 33;
            if (p[i] != a[i] + b[row])
                bad++;
        }
        CHECK_MSG(bad == 0, "%lld wrong elements", (long long)bad);
    }
    kiln_tensor_free(y);
    free(a);
}

static void test_integer_corners(void)
{
    io_t in[2] = {{"a", KILN_DTYPE_INT32, 1, {4}}, {"b", KILN_DTYPE_INT32, 1, {4}}};
    int32_t a[4] = {7, -7, INT_MIN, 5}, b[4] = {0, 2, -1, -2};
    const void *data[2] = {a, b};
    kiln_tensor_t *y;
    CHECK(run_op("Div", 14, 2, in, data, KILN_DTYPE_INT32, NULL, 1, &y) == KILN_OK);
    if (y) {
        const int32_t *p = kiln_tensor_data(y);
        CHECK(p[0] == 0);       /* division by zero gives 0, not a trap */
        CHECK(p[1] == -3);      /* truncates like C */
        CHECK(p[2] == INT_MIN); /* wraps, not a trap */
        CHECK(p[3] == -2);
    }
    kiln_tensor_free(y);

    io_t in64[2] = {{"a", KILN_DTYPE_INT64, 1, {4}}, {"b", KILN_DTYPE_INT64, 1, {4}}};
    int64_t ma[4] = {-7, 7, -7, 7}, mb[4] = {3, -3, -3, 0};
    const void *mdata[2] = {ma, mb};
    CHECK(run_op("Mod", 13, 2, in64, mdata, KILN_DTYPE_INT64, NULL, 1, &y) == KILN_OK);
    if (y) {
        const int64_t *p = kiln_tensor_data(y);
        CHECK(p[0] == 2 && p[1] == -2 && p[2] == -1 && p[3] == 0); /* divisor's sign */
    }
    kiln_tensor_free(y);
    attrs_t fmod = {"fmod", 1, NULL, NULL};
    CHECK(run_op("Mod", 13, 2, in64, mdata, KILN_DTYPE_INT64, &fmod, 1, &y) == KILN_OK);
    if (y) {
        const int64_t *p = kiln_tensor_data(y);
        CHECK(p[0] == -1 && p[1] == 1 && p[2] == -1 && p[3] == 0); /* dividend's sign */
    }
    kiln_tensor_free(y);
}

static void test_cast_strings(void)
{
    io_t in[1] = {{"x", KILN_DTYPE_FLOAT32, 1, {5}}};
    float x[5] = {1.5f, -0.1f, 3.0f, 1e-5f, INFINITY};
    const void *data[1] = {x};
    attrs_t to = {"to", KILN_DTYPE_STRING, NULL, NULL};
    kiln_tensor_t *y;
    CHECK(run_op("Cast", 13, 1, in, data, KILN_DTYPE_STRING, &to, 1, &y) == KILN_OK);
    if (y) {
        char *const *s = kiln_tensor_data(y);
        CHECK(!strcmp(s[0], "1.5"));
        CHECK(!strcmp(s[1], "-0.1"));
        CHECK(!strcmp(s[2], "3.0"));
        CHECK(!strcmp(s[3], "1e-05"));
        CHECK(!strcmp(s[4], "INF"));
    }
    kiln_tensor_free(y);
}

/* ---- errors -------------------------------------------------------------- */

/* Runs the op and checks that it fails with a message holding every
 * non-NULL needle. */
static void expect_error(const char *op, int opset, int n_in, const io_t *in, kiln_dtype_t out_dtype,
                         const attrs_t *at, const char *n1, const char *n2)
{
    kiln_tensor_t *y;
    const void *data[4] = {NULL, NULL, NULL, NULL};
    load_may_fail = true;
    kiln_status_t st = run_op(op, opset, n_in, in, data, out_dtype, at, 1, &y);
    load_may_fail = false;
    const char *msg = kiln_last_error();
    CHECK_MSG(st != KILN_OK, "%s should fail", op);
    CHECK_MSG(strstr(msg, "n0"), "%s: message does not name the node: %s", op, msg);
    CHECK_MSG(!n1 || strstr(msg, n1), "%s: message lacks '%s': %s", op, n1, msg);
    CHECK_MSG(!n2 || strstr(msg, n2), "%s: message lacks '%s': %s", op, n2, msg);
    kiln_tensor_free(y);
}

static void test_errors(void)
{
    io_t shapes[2] = {{"a", KILN_DTYPE_FLOAT32, 2, {2, 3}}, {"b", KILN_DTYPE_FLOAT32, 1, {4}}};
    expect_error("Add", 14, 2, shapes, KILN_DTYPE_FLOAT32, NULL, "[2,3]", "[4]");
    io_t shapes3[3] = {{"c", KILN_DTYPE_BOOL, 1, {2}},
                       {"a", KILN_DTYPE_FLOAT32, 2, {2, 3}},
                       {"b", KILN_DTYPE_FLOAT32, 1, {3}}};
    expect_error("Where", 16, 3, shapes3, KILN_DTYPE_FLOAT32, NULL, "[2]", "[2,3]");
    io_t mixed[2] = {{"a", KILN_DTYPE_FLOAT32, 1, {2}}, {"b", KILN_DTYPE_INT64, 1, {2}}};
    expect_error("Mul", 14, 2, mixed, KILN_DTYPE_FLOAT32, NULL, "float32", "int64");
    io_t u8[2] = {{"a", KILN_DTYPE_UINT8, 1, {2}}, {"b", KILN_DTYPE_UINT8, 1, {2}}};
    attrs_t dir = {NULL, 0, "direction", "UP"};
    expect_error("BitShift", 11, 2, u8, KILN_DTYPE_UINT8, &dir, "UP", "LEFT");
    io_t where[3] = {{"c", KILN_DTYPE_FLOAT32, 1, {2}},
                     {"a", KILN_DTYPE_FLOAT32, 1, {2}},
                     {"b", KILN_DTYPE_FLOAT32, 1, {2}}};
    expect_error("Where", 16, 3, where, KILN_DTYPE_FLOAT32, NULL, "condition", "bool");
    io_t clip[2] = {{"x", KILN_DTYPE_FLOAT32, 1, {3}}, {"lo", KILN_DTYPE_FLOAT32, 1, {2}}};
    expect_error("Clip", 13, 2, clip, KILN_DTYPE_FLOAT32, NULL, "min", "2");
    io_t one[1] = {{"x", KILN_DTYPE_FLOAT32, 1, {3}}};
    attrs_t bad_to = {"to", 99, NULL, NULL};
    expect_error("Cast", 13, 1, one, KILN_DTYPE_FLOAT32, &bad_to, "cast", "float32");
    io_t text[1] = {{"x", KILN_DTYPE_STRING, 1, {1}}};
    expect_error("Sqrt", 13, 1, text, KILN_DTYPE_STRING, NULL, "string", NULL);
}

int main(void)
{
    test_add_broadcast_threaded();
    test_integer_corners();
    test_cast_strings();
    test_errors();
    return check_finish();
}
