/*
 * protocol.c - KServe v2 request parsing and response writing with
 * jansson (see protocol.h).
 */
#include "serve/protocol.h"

#include <jansson.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"
#include "serve/model_config.h"

#define MAX_TENSORS 256

static kiln_status_t bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static kiln_status_t bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s", msg);
}

void kiln_v2_request_clear(kiln_v2_request_t *r)
{
    free(r->id);
    for (int i = 0; i < r->n_inputs; i++) {
        if (r->input_names)
            free(r->input_names[i]);
        if (r->inputs)
            kiln_tensor_free(r->inputs[i]);
    }
    free(r->input_names);
    free(r->inputs);
    for (int i = 0; i < r->n_outputs; i++)
        free(r->outputs[i].name);
    free(r->outputs);
    memset(r, 0, sizeof *r);
}

/* Stores one JSON scalar as element i of t. */
static kiln_status_t store_json_value(kiln_tensor_t *t, int64_t i, json_t *v, const char *name)
{
    switch (t->dtype) {
    case KILN_DTYPE_BOOL:
        if (!json_is_boolean(v) && !json_is_integer(v))
            return bad("input '%s': BOOL data must be true or false", name);
        ((uint8_t *)t->data)[i] = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v) != 0;
        return KILN_OK;
    case KILN_DTYPE_STRING:
        if (!json_is_string(v))
            return bad("input '%s': BYTES data must be strings", name);
        ((char **)t->data)[i] = strndup(json_string_value(v), json_string_length(v));
        return ((char **)t->data)[i] ? KILN_OK : kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    case KILN_DTYPE_FLOAT32: case KILN_DTYPE_FLOAT64: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16:
        if (!json_is_number(v))
            return bad("input '%s': data element %lld is not a number", name, (long long)i);
        kiln_tensor_set_f64(t, i, json_number_value(v));
        return KILN_OK;
    case KILN_DTYPE_UINT64:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad("input '%s': data element %lld is not a non-negative integer", name, (long long)i);
        ((uint64_t *)t->data)[i] = (uint64_t)json_integer_value(v);
        return KILN_OK;
    default: {
        if (!json_is_integer(v))
            return bad("input '%s': data element %lld is not an integer", name, (long long)i);
        json_int_t x = json_integer_value(v);
        double lo = 0, hi = 0;
        switch (t->dtype) {
        case KILN_DTYPE_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
        case KILN_DTYPE_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
        case KILN_DTYPE_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
        case KILN_DTYPE_UINT8: lo = 0; hi = UINT8_MAX; break;
        case KILN_DTYPE_UINT16: lo = 0; hi = UINT16_MAX; break;
        case KILN_DTYPE_UINT32: lo = 0; hi = UINT32_MAX; break;
        default: lo = -9.3e18; hi = 9.3e18; break;
        }
        if ((double)x < lo || (double)x > hi)
            return bad("input '%s': value %lld is out of range for %s", name, (long long)x,
                       kiln_dtype_to_kserve_type(t->dtype));
        if (t->dtype == KILN_DTYPE_INT64)
            ((int64_t *)t->data)[i] = x;
        else
            kiln_tensor_set_f64(t, i, (double)x);
        return KILN_OK;
    }
    }
}

/* Walks flat or nested JSON arrays in row-major order. */
static kiln_status_t store_json_data(kiln_tensor_t *t, json_t *data, int64_t *pos, const char *name, int depth)
{
    if (depth > KILN_MAX_RANK + 1)
        return bad("input '%s': data is nested too deeply", name);
    if (json_is_array(data)) {
        size_t i;
        json_t *v;
        json_array_foreach(data, i, v) {
            kiln_status_t st = store_json_data(t, v, pos, name, depth + 1);
            if (st)
                return st;
        }
        return KILN_OK;
    }
    if (*pos >= t->count)
        return bad("input '%s': data has more elements than its shape holds (%lld)", name, (long long)t->count);
    return store_json_value(t, (*pos)++, data, name);
}

static kiln_status_t fill_binary(kiln_tensor_t *t, const char *bytes, size_t size, const char *name)
{
    if (t->dtype != KILN_DTYPE_STRING) {
        if (size != t->nbytes)
            return bad("input '%s': binary_data_size is %zu bytes, its shape and datatype need %zu", name, size,
                       t->nbytes);
        if (size)
            memcpy(t->data, bytes, size);
        if (t->dtype == KILN_DTYPE_BOOL)
            for (int64_t i = 0; i < t->count; i++)
                ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
        return KILN_OK;
    }
    size_t off = 0;
    for (int64_t i = 0; i < t->count; i++) {
        uint32_t n;
        if (size - off < 4)
            return bad("input '%s': BYTES binary data ends inside element %lld", name, (long long)i);
        memcpy(&n, bytes + off, 4);
        off += 4;
        if (n > size - off)
            return bad("input '%s': BYTES element %lld runs past the binary data", name, (long long)i);
        ((char **)t->data)[i] = strndup(bytes + off, n);
        if (!((char **)t->data)[i])
            return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        off += n;
    }
    if (off != size)
        return bad("input '%s': %zu bytes of binary data are left over", name, size - off);
    return KILN_OK;
}

static kiln_status_t parse_input(json_t *in, int index, const char *bin, size_t bin_len, size_t *bin_off,
                                 char **name_out, kiln_tensor_t **out)
{
    json_t *jname = json_object_get(in, "name");
    json_t *jshape = json_object_get(in, "shape");
    json_t *jtype = json_object_get(in, "datatype");
    if (!json_is_string(jname))
        return bad("inputs[%d]: 'name' must be a string", index);
    const char *name = json_string_value(jname);
    if (!json_is_array(jshape))
        return bad("input '%s': 'shape' must be an array of integers", name);
    if (!json_is_string(jtype))
        return bad("input '%s': 'datatype' must be a string", name);
    kiln_dtype_t dtype = kiln_kserve_type_to_dtype(json_string_value(jtype));
    if (dtype == KILN_DTYPE_UNDEFINED)
        return bad("input '%s': unknown datatype '%s'", name, json_string_value(jtype));
    int64_t dims[KILN_MAX_RANK];
    size_t rank = json_array_size(jshape);
    if (rank > KILN_MAX_RANK)
        return bad("input '%s': shape has %zu dims, at most %d are supported", name, rank, KILN_MAX_RANK);
    for (size_t d = 0; d < rank; d++) {
        json_t *v = json_array_get(jshape, d);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad("input '%s': shape[%zu] must be a non-negative integer", name, d);
        dims[d] = json_integer_value(v);
    }
    if (kiln_shape_count((int)rank, dims, kiln_dtype_size(dtype)) < 0)
        return bad("input '%s': shape is too large", name);
    kiln_tensor_t *t = kiln_tensor_create(dtype, (int)rank, dims);
    if (!t)
        return bad("input '%s': %s", name, kiln_last_error());
    kiln_status_t st = KILN_OK;
    json_t *params = json_object_get(in, "parameters");
    json_t *jbin = params ? json_object_get(params, "binary_data_size") : NULL;
    json_t *data = json_object_get(in, "data");
    if (jbin) {
        if (!json_is_integer(jbin) || json_integer_value(jbin) < 0)
            st = bad("input '%s': binary_data_size must be a non-negative integer", name);
        else if ((uint64_t)json_integer_value(jbin) > bin_len - *bin_off)
            st = bad("input '%s': binary_data_size %lld exceeds the %zu binary bytes left in the body", name,
                     (long long)json_integer_value(jbin), bin_len - *bin_off);
        else {
            size_t size = (size_t)json_integer_value(jbin);
            st = fill_binary(t, bin + *bin_off, size, name);
            *bin_off += size;
        }
    } else if (!data) {
        st = bad("input '%s': has neither 'data' nor parameters.binary_data_size", name);
    } else {
        int64_t pos = 0;
        st = store_json_data(t, data, &pos, name, 0);
        if (!st && pos != t->count)
            st = bad("input '%s': shape holds %lld elements, data has %lld", name, (long long)t->count,
                     (long long)pos);
    }
    if (st) {
        kiln_tensor_free(t);
        return st;
    }
    *name_out = strdup(name);
    if (!*name_out) {
        kiln_tensor_free(t);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    }
    *out = t;
    return KILN_OK;
}

kiln_status_t kiln_v2_parse_infer(const char *body, size_t len, size_t json_len, kiln_v2_request_t *out)
{
    memset(out, 0, sizeof *out);
    if (json_len > len)
        return bad("Inference-Header-Content-Length %zu is larger than the body (%zu bytes)", json_len, len);
    json_error_t jerr;
    json_t *root = json_loadb(body, json_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bad("malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
    kiln_status_t st = KILN_OK;
    if (!json_is_object(root)) {
        st = bad("the request body must be a JSON object");
        goto done;
    }
    json_t *id = json_object_get(root, "id");
    if (id && json_is_string(id) && !(out->id = strdup(json_string_value(id)))) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    json_t *params = json_object_get(root, "parameters");
    json_t *bdo = params ? json_object_get(params, "binary_data_output") : NULL;
    out->binary_default = bdo && json_is_true(bdo);
    json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        st = bad("'inputs' must be a non-empty array");
        goto done;
    }
    size_t n = json_array_size(inputs);
    if (n > MAX_TENSORS) {
        st = bad("too many inputs (%zu)", n);
        goto done;
    }
    out->input_names = calloc(n, sizeof *out->input_names);
    out->inputs = calloc(n, sizeof *out->inputs);
    if (!out->input_names || !out->inputs) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    size_t bin_off = 0;
    const char *bin = body + json_len;
    size_t bin_len = len - json_len;
    for (size_t i = 0; i < n && !st; i++) {
        json_t *in = json_array_get(inputs, i);
        if (!json_is_object(in)) {
            st = bad("inputs[%zu] must be an object", i);
            break;
        }
        st = parse_input(in, (int)i, bin, bin_len, &bin_off, &out->input_names[i], &out->inputs[i]);
        if (!st) {
            for (size_t k = 0; k < i && !st; k++)
                if (!strcmp(out->input_names[k], out->input_names[i]))
                    st = bad("input '%s' is given twice", out->input_names[i]);
            out->n_inputs = (int)i + 1;
        }
    }
    if (!st && bin_off != bin_len)
        st = bad("%zu bytes of binary data are not claimed by any input", bin_len - bin_off);
    json_t *outputs = json_object_get(root, "outputs");
    if (!st && outputs) {
        if (!json_is_array(outputs) || json_array_size(outputs) > MAX_TENSORS) {
            st = bad("'outputs' must be an array");
            goto done;
        }
        size_t m = json_array_size(outputs);
        out->outputs = calloc(m + 1, sizeof *out->outputs);
        if (!out->outputs) {
            st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < m && !st; i++) {
            json_t *o = json_array_get(outputs, i);
            json_t *on = json_is_object(o) ? json_object_get(o, "name") : NULL;
            if (!json_is_string(on)) {
                st = bad("outputs[%zu]: 'name' must be a string", i);
                break;
            }
            json_t *op = json_object_get(o, "parameters");
            json_t *ob = op ? json_object_get(op, "binary_data") : NULL;
            out->outputs[i].name = strdup(json_string_value(on));
            out->outputs[i].binary = ob ? json_is_true(ob) : out->binary_default;
            out->n_outputs = (int)i + 1;
            if (!out->outputs[i].name)
                st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        }
    }
done:
    json_decref(root);
    if (st)
        kiln_v2_request_clear(out);
    return st;
}

/* Size of t's binary form (BYTES: length-prefixed). */
static size_t binary_size(const kiln_tensor_t *t)
{
    if (t->dtype != KILN_DTYPE_STRING)
        return t->nbytes;
    size_t n = 0;
    for (int64_t i = 0; i < t->count; i++)
        n += 4 + strlen(((char *const *)t->data)[i]);
    return n;
}

/* A growable output buffer.  The response is written directly rather than
 * built as a jansson tree: on a small model the tree's allocations and
 * json_dumps were a fifth of the server's CPU time (measured with perf). */
typedef struct out_buf {
    char *p;
    size_t len, cap;
    bool failed;
} out_buf_t;

static void out_reserve(out_buf_t *b, size_t extra)
{
    if (b->failed || b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void out_raw(out_buf_t *b, const char *s, size_t n)
{
    out_reserve(b, n);
    if (!b->failed) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void out_str(out_buf_t *b, const char *s) { out_raw(b, s, strlen(s)); }

/* A JSON string literal with escapes. */
static void out_json_string(out_buf_t *b, const char *s)
{
    out_raw(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            out_raw(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            out_raw(b, esc, 6);
        } else {
            out_raw(b, (const char *)c, 1);
        }
    }
    out_raw(b, "\"", 1);
}

static void out_fmt(out_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_fmt(out_buf_t *b, const char *fmt, ...)
{
    out_reserve(b, 64);
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        out_reserve(b, (size_t)n + 1);
        if (b->failed)
            return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Writes element i: integers exactly, float32 with 9 significant digits
 * (enough to round-trip), float64 with 17; NaN and infinities as null,
 * since JSON has no spelling for them. */
static void out_element(out_buf_t *b, const kiln_tensor_t *t, int64_t i)
{
    switch (t->dtype) {
    case KILN_DTYPE_BOOL: out_str(b, ((const uint8_t *)t->data)[i] ? "true" : "false"); return;
    case KILN_DTYPE_STRING: out_json_string(b, ((char *const *)t->data)[i]); return;
    case KILN_DTYPE_UINT64: out_fmt(b, "%llu", (unsigned long long)((const uint64_t *)t->data)[i]); return;
    case KILN_DTYPE_FLOAT32: case KILN_DTYPE_FLOAT64: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16: {
        double d = kiln_tensor_get_f64(t, i);
        if (!isfinite(d))
            out_str(b, "null");
        else if (d == (double)(int64_t)d && fabs(d) < 1e15)
            out_fmt(b, "%lld", (long long)d);
        else
            out_fmt(b, t->dtype == KILN_DTYPE_FLOAT64 ? "%.17g" : "%.9g", d);
        return;
    }
    default: out_fmt(b, "%lld", (long long)kiln_tensor_get_i64(t, i)); return;
    }
}

/* Writes one tensor object {"name","datatype","shape", then "data" or
 * parameters.binary_data_size}; adds its binary size to *bin_total. */
static void out_tensor(out_buf_t *b, bool first, const char *name, const kiln_tensor_t *t, bool binary,
                       size_t *bin_total)
{
    out_str(b, first ? "{\"name\":" : ",{\"name\":");
    out_json_string(b, name);
    out_str(b, ",\"datatype\":\"");
    out_str(b, kiln_dtype_to_kserve_type(t->dtype));
    out_str(b, "\",\"shape\":[");
    for (int d = 0; d < t->rank; d++)
        out_fmt(b, d ? ",%lld" : "%lld", (long long)t->dims[d]);
    out_str(b, "]");
    if (binary) {
        size_t size = binary_size(t);
        out_fmt(b, ",\"parameters\":{\"binary_data_size\":%zu}}", size);
        *bin_total += size;
        return;
    }
    out_str(b, ",\"data\":[");
    for (int64_t k = 0; k < t->count; k++) {
        if (k)
            out_raw(b, ",", 1);
        out_element(b, t, k);
    }
    out_str(b, "]}");
}

static size_t write_binary(const kiln_tensor_t *t, char *dst)
{
    if (t->dtype != KILN_DTYPE_STRING) {
        if (t->nbytes)
            memcpy(dst, t->data, t->nbytes);
        return t->nbytes;
    }
    size_t off = 0;
    for (int64_t k = 0; k < t->count; k++) {
        const char *s = ((char *const *)t->data)[k];
        uint32_t n = (uint32_t)strlen(s);
        memcpy(dst + off, &n, 4);
        memcpy(dst + off + 4, s, n);
        off += 4 + n;
    }
    return off;
}

kiln_status_t kiln_v2_write_infer(const char *model, const char *version, const char *id, int n_outputs,
                                  char *const *names, kiln_tensor_t *const *tensors, const bool *binary,
                                  const char *params_json, char **out, size_t *out_len, size_t *json_len)
{
    out_buf_t b = {0};
    size_t bin_total = 0;
    out_str(&b, "{\"model_name\":");
    out_json_string(&b, model);
    out_str(&b, ",\"model_version\":");
    out_json_string(&b, version);
    if (id) {
        out_str(&b, ",\"id\":");
        out_json_string(&b, id);
    }
    if (params_json) {
        out_str(&b, ",\"parameters\":");
        out_str(&b, params_json);
    }
    out_str(&b, ",\"outputs\":[");
    for (int i = 0; i < n_outputs; i++)
        out_tensor(&b, i == 0, names[i], tensors[i], binary[i], &bin_total);
    out_str(&b, "]}");
    size_t jl = b.len;
    out_reserve(&b, bin_total + 1);
    if (b.failed) {
        free(b.p);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory writing a response");
    }
    for (int i = 0; i < n_outputs; i++)
        if (binary[i])
            b.len += write_binary(tensors[i], b.p + b.len);
    *out = b.p;
    *out_len = b.len;
    *json_len = jl;
    return KILN_OK;
}

/* Copies t's binary form (see binary_size) to dst; returns the bytes written. */
kiln_status_t kiln_v2_write_request(int n_inputs, const char *const *names, const kiln_tensor_t *const *tensors,
                                    bool binary_inputs, bool binary_outputs, char **out, size_t *out_len,
                                    size_t *json_len)
{
    out_buf_t b = {0};
    size_t bin_total = 0;
    out_str(&b, "{\"inputs\":[");
    for (int i = 0; i < n_inputs; i++)
        out_tensor(&b, i == 0, names[i], tensors[i], binary_inputs, &bin_total);
    out_str(&b, binary_outputs ? "],\"parameters\":{\"binary_data_output\":true}}" : "]}");
    size_t jl = b.len;
    out_reserve(&b, bin_total + 1);
    if (b.failed) {
        free(b.p);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory writing a request");
    }
    for (int i = 0; binary_inputs && i < n_inputs; i++)
        b.len += write_binary(tensors[i], b.p + b.len);
    b.p[b.len] = 0;
    *out = b.p;
    *out_len = b.len;
    *json_len = jl;
    return KILN_OK;
}
