/*
 * protocol.c - KServe v2 response and request writing (see protocol.h);
 * the request parser is infer_request.c.
 */
#include "serve/protocol.h"

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"
#include "serve/model_config.h"

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

/* Integers without printf (its format parsing was visible in perf). */
static void out_u64(out_buf_t *b, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_raw(b, tmp + sizeof tmp - n, (size_t)n);
}

static void out_i64(out_buf_t *b, int64_t v)
{
    if (v < 0) {
        out_raw(b, "-", 1);
        out_u64(b, 0 - (uint64_t)v);
    } else {
        out_u64(b, (uint64_t)v);
    }
}

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
    case KILN_DTYPE_UINT64: out_u64(b, ((const uint64_t *)t->data)[i]); return;
    case KILN_DTYPE_FLOAT32: case KILN_DTYPE_FLOAT64: case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16: {
        double d = kiln_tensor_get_f64(t, i);
        if (!isfinite(d))
            out_str(b, "null");
        else if (d == (double)(int64_t)d && fabs(d) < 1e15)
            out_i64(b, (int64_t)d);
        else
            out_fmt(b, t->dtype == KILN_DTYPE_FLOAT64 ? "%.17g" : "%.9g", d);
        return;
    }
    default: out_i64(b, kiln_tensor_get_i64(t, i)); return;
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
    for (int d = 0; d < t->rank; d++) {
        if (d)
            out_raw(b, ",", 1);
        out_i64(b, t->dims[d]);
    }
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

/* Writes the response into the empty buffer b. */
static kiln_status_t write_infer(out_buf_t *b, const char *model, const char *version, const char *id, int n_outputs,
                                 char *const *names, kiln_tensor_t *const *tensors, const bool *binary,
                                 const char *params_json, size_t *json_len)
{
    size_t bin_total = 0;
    out_str(b, "{\"model_name\":");
    out_json_string(b, model);
    out_str(b, ",\"model_version\":");
    out_json_string(b, version);
    if (id) {
        out_str(b, ",\"id\":");
        out_json_string(b, id);
    }
    if (params_json) {
        out_str(b, ",\"parameters\":");
        out_str(b, params_json);
    }
    out_str(b, ",\"outputs\":[");
    for (int i = 0; i < n_outputs; i++)
        out_tensor(b, i == 0, names[i], tensors[i], binary[i], &bin_total);
    out_str(b, "]}");
    size_t jl = b->len;
    out_reserve(b, bin_total + 1);
    if (b->failed)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory writing a response");
    for (int i = 0; i < n_outputs; i++)
        if (binary[i])
            b->len += write_binary(tensors[i], b->p + b->len);
    *json_len = jl;
    return KILN_OK;
}

kiln_status_t kiln_v2_write_infer(const char *model, const char *version, const char *id, int n_outputs,
                                  char *const *names, kiln_tensor_t *const *tensors, const bool *binary,
                                  const char *params_json, char **out, size_t *out_len, size_t *json_len)
{
    out_buf_t b = {0};
    kiln_status_t st = write_infer(&b, model, version, id, n_outputs, names, tensors, binary, params_json, json_len);
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    *out_len = b.len;
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
