/*
 * test_infer_request.c - kiln serve's KServe v2 infer request parser
 * (src/serve/infer_request.c): every datatype, flat and nested data,
 * members in any order, escapes, the binary extension (raw and BYTES),
 * number edge cases (the fast decimal path against strtod), and every
 * error a client can provoke, each with the words its 400 answer carries.
 * Replays tests/fuzz/regressions_infer/ too: inputs the fuzzer once found
 * crashing or disagreeing with jansson (run from the repository root).
 */
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/error.h"
#include "core/tensor.h"
#include "serve/protocol.h"

#define REGRESSION_DIR "tests/fuzz/regressions_infer"

/* Parses a JSON-only body; returns the status. */
static kiln_status_t parse(const char *json, kiln_v2_request_t *req)
{
    return kiln_v2_parse_infer(json, strlen(json), strlen(json), req);
}

/* The body must fail with a message containing `want`. */
static void expect_error(const char *json, const char *want)
{
    kiln_v2_request_t req;
    kiln_status_t st = parse(json, &req);
    CHECK_MSG(st == KILN_ERR_INVALID_ARGUMENT && strstr(kiln_last_error(), want), "%s -> [%s], wanted [%s]", json,
              st ? kiln_last_error() : "OK", want);
    CHECK(req.n_inputs == 0 && req.inputs == NULL && req.id == NULL);
}

/* One input of the given datatype and data; returns its tensor (the
 * request stays owned by the caller). */
static const kiln_tensor_t *one_input(kiln_v2_request_t *req, const char *dtype, const char *shape, const char *data)
{
    char json[1024];
    snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"x\",\"shape\":%s,\"datatype\":\"%s\",\"data\":%s}]}", shape,
             dtype, data);
    kiln_status_t st = parse(json, req);
    CHECK_MSG(st == KILN_OK, "%s: %s", json, kiln_last_error());
    return st == KILN_OK ? req->inputs[0] : NULL;
}

static void test_datatypes(void)
{
    static const struct {
        const char *type;
        kiln_dtype_t dtype;
        const char *data;
        double want[3];
    } cases[] = {
        {"BOOL", KILN_DTYPE_BOOL, "[true,false,1]", {1, 0, 1}},
        {"UINT8", KILN_DTYPE_UINT8, "[0,255,7]", {0, 255, 7}},
        {"UINT16", KILN_DTYPE_UINT16, "[0,65535,7]", {0, 65535, 7}},
        {"UINT32", KILN_DTYPE_UINT32, "[0,4294967295,7]", {0, 4294967295.0, 7}},
        {"UINT64", KILN_DTYPE_UINT64, "[0,9007199254740992,7]", {0, 9007199254740992.0, 7}},
        {"INT8", KILN_DTYPE_INT8, "[-128,127,0]", {-128, 127, 0}},
        {"INT16", KILN_DTYPE_INT16, "[-32768,32767,0]", {-32768, 32767, 0}},
        {"INT32", KILN_DTYPE_INT32, "[-2147483648,2147483647,0]", {-2147483648.0, 2147483647.0, 0}},
        {"INT64", KILN_DTYPE_INT64, "[-9007199254740992,5,0]", {-9007199254740992.0, 5, 0}},
        {"FP16", KILN_DTYPE_FLOAT16, "[0.5,-2,1e2]", {0.5, -2, 100}},
        {"BF16", KILN_DTYPE_BFLOAT16, "[0.5,-2,1e2]", {0.5, -2, 100}},
        {"FP32", KILN_DTYPE_FLOAT32, "[0.25,-3,1.5e-3]", {0.25, -3, 0.0015}},
        {"FP64", KILN_DTYPE_FLOAT64, "[0.1,-3,1.7976931348623157e308]", {0.1, -3, 1.7976931348623157e308}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kiln_v2_request_t req;
        const kiln_tensor_t *t = one_input(&req, cases[c].type, "[3]", cases[c].data);
        if (!t)
            continue;
        CHECK_MSG(t->dtype == cases[c].dtype && t->count == 3, "%s", cases[c].type);
        for (int i = 0; i < 3; i++) {
            double got = kiln_tensor_get_f64(t, i), want = cases[c].want[i];
            double tol = cases[c].dtype == KILN_DTYPE_FLOAT32 ? 1e-7 : cases[c].dtype == KILN_DTYPE_FLOAT16 ||
                                                                          cases[c].dtype == KILN_DTYPE_BFLOAT16
                                                                          ? 1e-2
                                                                          : 0;
            CHECK_MSG(fabs(got - want) <= tol * fabs(want), "%s[%d]: %.17g vs %.17g", cases[c].type, i, got, want);
        }
        kiln_v2_request_clear(&req);
    }
    /* 64-bit integers exactly */
    kiln_v2_request_t req;
    const kiln_tensor_t *t = one_input(&req, "INT64", "[2]", "[-9223372036854775808,9223372036854775807]");
    CHECK(t && ((int64_t *)t->data)[0] == INT64_MIN && ((int64_t *)t->data)[1] == INT64_MAX);
    kiln_v2_request_clear(&req);
    t = one_input(&req, "BYTES", "[3]", "[\"kiln\",\"\",\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\"]");
    CHECK(t && t->dtype == KILN_DTYPE_STRING);
    if (t) {
        char *const *s = t->data;
        CHECK(!strcmp(s[0], "kiln") && !strcmp(s[1], "") && !strcmp(s[2], "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80"));
    }
    kiln_v2_request_clear(&req);
}

static void test_nested_and_order(void)
{
    kiln_v2_request_t req;
    const kiln_tensor_t *t = one_input(&req, "FP32", "[2,2]", "[[1, 2],\n [3, 4]]");
    CHECK(t && t->rank == 2 && ((float *)t->data)[3] == 4.0f);
    kiln_v2_request_clear(&req);
    t = one_input(&req, "INT32", "[2,1,2]", "[[[1,2]],[[3,4]]]");
    CHECK(t && t->count == 4 && ((int32_t *)t->data)[2] == 3);
    kiln_v2_request_clear(&req);
    t = one_input(&req, "FP32", "[0,3]", "[]");
    CHECK(t && t->count == 0);
    kiln_v2_request_clear(&req);
    /* data before the header, unknown members, whitespace, id, outputs, parameters last */
    const char *json = " { \"outputs\" : [ {\"parameters\":{\"binary_data\":true},\"name\":\"y\"}, {\"name\":\"z\"} ],"
                       "\"extra\":{\"a\":[1,{\"b\":null}]},\"inputs\":[{\"data\":[[5,6]],\"datatype\":\"INT64\","
                       "\"shape\":[1,2],\"name\":\"in\\u0031\"},{\"name\":\"b\",\"shape\":[],\"datatype\":\"BOOL\","
                       "\"data\":[false]}],\"id\":\"r-1\",\"parameters\":{\"binary_data_output\":true,\"p\":3} }\n";
    kiln_status_t st = parse(json, &req);
    CHECK_MSG(st == KILN_OK, "%s", kiln_last_error());
    if (st == KILN_OK) {
        CHECK(req.n_inputs == 2 && !strcmp(req.input_names[0], "in1") && !strcmp(req.input_names[1], "b"));
        CHECK(req.inputs[0]->dtype == KILN_DTYPE_INT64 && ((int64_t *)req.inputs[0]->data)[1] == 6);
        CHECK(req.inputs[1]->rank == 0 && req.inputs[1]->count == 1 && ((uint8_t *)req.inputs[1]->data)[0] == 0);
        CHECK(req.id && !strcmp(req.id, "r-1") && req.binary_default);
        CHECK(req.n_outputs == 2 && !strcmp(req.outputs[0].name, "y") && req.outputs[0].binary);
        CHECK(!strcmp(req.outputs[1].name, "z") && req.outputs[1].binary); /* the default, given after */
        kiln_v2_request_clear(&req);
    }
    /* an empty outputs list means all; a non-string id is ignored */
    st = parse("{\"id\":7,\"outputs\":[],\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
               &req);
    CHECK(st == KILN_OK && req.n_outputs == 0 && req.id == NULL);
    kiln_v2_request_clear(&req);
}

/* The fast decimal path must give strtod's double. */
static void test_numbers(void)
{
    const char *numbers[] = {"0.1", "1.5e-3", "123456.789", "-0.000001", "9007199254740993", "1e22", "1e23",
                             "4.9e-324", "2.2250738585072014e-308", "0.30000000000000004", "123456789012345678901234.5",
                             "1.00000000000000000000000001", "-0", "-0.0", "3E+2", "7e-0"};
    srand(7);
    for (int k = 0; k < 2000 + (int)(sizeof numbers / sizeof numbers[0]); k++) {
        char num[64];
        if (k < (int)(sizeof numbers / sizeof numbers[0]))
            snprintf(num, sizeof num, "%s", numbers[k]);
        else
            snprintf(num, sizeof num, "%d.%0*de%d", rand() % 100000, 1 + rand() % 12, rand() % 1000000,
                     rand() % 60 - 30);
        char data[80];
        snprintf(data, sizeof data, "[%s]", num);
        kiln_v2_request_t req;
        const kiln_tensor_t *t = one_input(&req, "FP64", "[1]", data);
        double want = strtod(num, NULL);
        CHECK_MSG(t && ((double *)t->data)[0] == want, "%s: %.17g vs %.17g", num, t ? ((double *)t->data)[0] : 0.0,
                  want);
        kiln_v2_request_clear(&req);
    }
}

static void test_binary(void)
{
    /* FP32 binary, then BYTES binary, then JSON data */
    char body[256];
    const char *json = "{\"inputs\":[{\"name\":\"a\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":"
                       "{\"binary_data_size\":8}},{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\",\"parameters\":"
                       "{\"binary_data_size\":11}},{\"name\":\"c\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[-1]}]}";
    size_t jl = strlen(json), len = jl;
    memcpy(body, json, jl);
    float f[2] = {1.5f, -2.0f};
    memcpy(body + len, f, 8);
    len += 8;
    memcpy(body + len, "\x02\0\0\0hi\x01\0\0\0!", 11);
    len += 11;
    kiln_v2_request_t req;
    kiln_status_t st = kiln_v2_parse_infer(body, len, jl, &req);
    CHECK_MSG(st == KILN_OK, "%s", kiln_last_error());
    if (st == KILN_OK) {
        CHECK(((float *)req.inputs[0]->data)[1] == -2.0f);
        CHECK(!strcmp(((char **)req.inputs[1]->data)[0], "hi") && !strcmp(((char **)req.inputs[1]->data)[1], "!"));
        CHECK(((int8_t *)req.inputs[2]->data)[0] == -1);
        kiln_v2_request_clear(&req);
    }
    /* binary_data_size takes precedence over data, even data that is wrong */
    json = "{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[\"x\"],\"parameters\":"
           "{\"binary_data_size\":4}}]}";
    jl = strlen(json);
    memcpy(body, json, jl);
    memcpy(body + jl, f, 4);
    st = kiln_v2_parse_infer(body, jl + 4, jl, &req);
    CHECK_MSG(st == KILN_OK && ((float *)req.inputs[0]->data)[0] == 1.5f, "%s", kiln_last_error());
    kiln_v2_request_clear(&req);
    /* errors of the binary part */
    st = kiln_v2_parse_infer(body, jl + 4, jl + 5, &req);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT && strstr(kiln_last_error(), "larger than the body"));
    st = kiln_v2_parse_infer(body, jl + 3, jl, &req);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT && strstr(kiln_last_error(), "exceeds the 3 binary bytes"));
    memcpy(body + jl + 4, "zz", 2);
    st = kiln_v2_parse_infer(body, jl + 6, jl, &req);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT && strstr(kiln_last_error(), "2 bytes of binary data are not claimed"));
    json = "{\"inputs\":[{\"name\":\"a\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":4}}]}";
    jl = strlen(json);
    memcpy(body, json, jl);
    st = kiln_v2_parse_infer(body, jl + 4, jl, &req);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT && strstr(kiln_last_error(), "need 8"));
    json = "{\"inputs\":[{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":6}}]}";
    jl = strlen(json);
    memcpy(body, json, jl);
    memcpy(body + jl, "\x09\0\0\0ab", 6);
    st = kiln_v2_parse_infer(body, jl + 6, jl, &req);
    CHECK(st == KILN_ERR_INVALID_ARGUMENT && strstr(kiln_last_error(), "runs past the binary data"));
}

static void test_errors(void)
{
    expect_error("{not json", "malformed JSON at line 1 column 2");
    expect_error("", "malformed JSON");
    expect_error("{\"inputs\":[]} x", "malformed JSON");
    expect_error("{\"inputs\":[1,]}", "malformed JSON");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[01]}]}", "malformed JSON");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1e999]}]}", "overflow");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"INT64\",\"data\":[9223372036854775808]}]}",
                 "too big integer");
    expect_error("{\"inputs\":[{\"name\":\"a\\u0000\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "malformed JSON");
    expect_error("{\"inputs\":[{\"name\":\"\xff\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", "UTF-8");
    expect_error("{\"inputs\":[{\"name\":\"\\ud800\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", "surrogate");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"name\":\"b\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "duplicate object key 'name'");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],\"inputs\":[]}",
                 "duplicate");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[\"x\"]}", "malformed JSON");
    expect_error("[1,2]", "must be a JSON object");
    expect_error("{}", "'inputs' must be a non-empty array");
    expect_error("{\"inputs\":[]}", "'inputs' must be a non-empty array");
    expect_error("{\"inputs\":{}}", "'inputs' must be a non-empty array");
    expect_error("{\"inputs\":[3]}", "inputs[0] must be an object");
    expect_error("{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", "inputs[0]: 'name' must be a string");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":3,\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "input 'a': 'shape' must be an array");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":1,\"data\":[1]}]}",
                 "input 'a': 'datatype' must be a string");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP99\",\"data\":[1]}]}",
                 "input 'a': unknown datatype 'FP99'");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1,-1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "shape[1] must be a non-negative integer");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1.5],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "shape[0] must be a non-negative integer");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "shape has 13 dims");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[4611686018427387904,4],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "shape is too large");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[100000000],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "more than the request carries");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[4],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
                 "input 'a': shape holds 4 elements, data has 3");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2,3]}]}",
                 "data has more elements than its shape holds (2)");
    expect_error("{\"inputs\":[{\"data\":[1,2,3],\"name\":\"a\",\"shape\":[4],\"datatype\":\"FP32\"}]}",
                 "shape holds 4 elements, data has 3");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\"}]}", "has neither 'data'");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[\"1\"]}]}",
                 "input 'a': data element 0 is not a number");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"INT32\",\"data\":[1.5]}]}",
                 "data element 0 is not an integer");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[128]}]}",
                 "value 128 is out of range for INT8");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"UINT64\",\"data\":[-1]}]}",
                 "not a non-negative integer");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"BOOL\",\"data\":[null]}]}",
                 "BOOL data must be true or false");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[1]}]}",
                 "BYTES data must be strings");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}]}",
                 "nested too deeply");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":-4}}]}",
                 "binary_data_size must be a non-negative integer");
    expect_error("{\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]},"
                 "{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "input 'a' is given twice");
    expect_error("{\"outputs\":[{\"name\":1}],\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "outputs[0]: 'name' must be a string");
    expect_error("{\"outputs\":{},\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                 "'outputs' must be an array");
    /* an input's error comes before an output's, whatever the order */
    expect_error("{\"outputs\":7,\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[]}]}",
                 "shape holds 1 elements, data has 0");
    /* too many inputs */
    char big[300 * 64];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"inputs\":[");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s{\"name\":\"i%d\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}",
                              i ? "," : "", i);
    snprintf(big + n, sizeof big - n, "]}");
    expect_error(big, "too many inputs");
}

/* jansson's nesting limit (2048, the request object counting 1) holds
 * for members the parser only steps over, at the same depth. */
static void test_depth_limit(void)
{
    const char *input = "\"inputs\":[{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
                        "\"parameters\":{\"x\":";
    for (int extra = 2043; extra <= 2046; extra++) { /* 4 levels above the arrays: 2047 to 2050 */
        size_t n = strlen(input) + 2 * (size_t)extra + 16;
        char *json = malloc(n);
        if (!json)
            return;
        size_t k = (size_t)snprintf(json, n, "{%s", input);
        memset(json + k, '[', (size_t)extra);
        k += (size_t)extra;
        memset(json + k, ']', (size_t)extra);
        k += (size_t)extra;
        memcpy(json + k, "}}]}", 5);
        json_error_t jerr;
        json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
        kiln_v2_request_t req;
        kiln_status_t st = parse(json, &req);
        CHECK_MSG((st == KILN_OK) == (root != NULL), "depth %d: kiln %s, jansson %s", extra + 4,
                  st ? kiln_last_error() : "OK", root ? "OK" : jerr.text);
        if (st == KILN_OK)
            kiln_v2_request_clear(&req);
        json_decref(root);
        free(json);
    }
}

/* Regression inputs: fuzz_infer_request's format (two bytes of split,
 * then the body).  Each must parse or fail with a message, without harm. */
static void replay_regressions(void)
{
    DIR *d = opendir(REGRESSION_DIR);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", REGRESSION_DIR, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        unsigned char buf[65536];
        size_t size = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (size < 2)
            continue;
        size_t split = (size_t)buf[0] | (size_t)buf[1] << 8;
        if (split > size - 2)
            split = size - 2;
        kiln_v2_request_t req;
        kiln_status_t st = kiln_v2_parse_infer((const char *)buf + 2, size - 2, split, &req);
        CHECK_MSG(st == KILN_OK || kiln_last_error()[0], "%s: no error message", path);
        /* as the fuzz target: malformed exactly when jansson refuses, and
         * always with a NUL byte (which jansson may skip) */
        bool malformed = st != KILN_OK && !strncmp(kiln_last_error(), "malformed JSON", 14);
        if (memchr(buf + 2, 0, split)) {
            CHECK_MSG(malformed, "%s: a NUL byte is not malformed", path);
        } else {
            json_error_t jerr;
            json_t *root = json_loadb((const char *)buf + 2, split, JSON_REJECT_DUPLICATES, &jerr);
            CHECK_MSG(strstr(jerr.text, "duplicate") || !root == malformed, "%s: jansson says %s", path,
                      root ? "valid" : jerr.text);
            json_decref(root);
        }
        printf("%s: %s\n", path, st == KILN_OK ? "parsed" : kiln_last_error());
        if (st == KILN_OK)
            kiln_v2_request_clear(&req);
    }
    closedir(d);
}

int main(void)
{
    test_datatypes();
    test_nested_and_order();
    test_numbers();
    test_binary();
    test_errors();
    test_depth_limit();
    replay_regressions();
    return check_finish();
}
