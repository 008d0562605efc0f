/*
 * tensor.c - tensors and values (see tensor.h): creation with overflow
 * checks, element access by double/int64 for generic code, and the
 * sequence/optional values used by sequence and control-flow ops.
 */
#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/half.h"

/* Largest single tensor kiln will allocate (bytes): a guard against sizes
 * from files or requests that would exhaust memory. */
#define KILN_TENSOR_MAX_BYTES ((int64_t)1 << 40)

const char *kiln_dtype_name(kiln_dtype_t dtype)
{
    switch (dtype) {
    case KILN_DTYPE_FLOAT32: return "float32";
    case KILN_DTYPE_UINT8: return "uint8";
    case KILN_DTYPE_INT8: return "int8";
    case KILN_DTYPE_UINT16: return "uint16";
    case KILN_DTYPE_INT16: return "int16";
    case KILN_DTYPE_INT32: return "int32";
    case KILN_DTYPE_INT64: return "int64";
    case KILN_DTYPE_STRING: return "string";
    case KILN_DTYPE_BOOL: return "bool";
    case KILN_DTYPE_FLOAT16: return "float16";
    case KILN_DTYPE_FLOAT64: return "float64";
    case KILN_DTYPE_UINT32: return "uint32";
    case KILN_DTYPE_UINT64: return "uint64";
    case KILN_DTYPE_COMPLEX64: return "complex64";
    case KILN_DTYPE_COMPLEX128: return "complex128";
    case KILN_DTYPE_BFLOAT16: return "bfloat16";
    default: return "undefined";
    }
}

size_t kiln_dtype_size(kiln_dtype_t dtype)
{
    switch (dtype) {
    case KILN_DTYPE_FLOAT32: case KILN_DTYPE_INT32: case KILN_DTYPE_UINT32: return 4;
    case KILN_DTYPE_UINT8: case KILN_DTYPE_INT8: case KILN_DTYPE_BOOL: return 1;
    case KILN_DTYPE_UINT16: case KILN_DTYPE_INT16: case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16: return 2;
    case KILN_DTYPE_INT64: case KILN_DTYPE_UINT64: case KILN_DTYPE_FLOAT64:
    case KILN_DTYPE_COMPLEX64: return 8;
    case KILN_DTYPE_COMPLEX128: return 16;
    case KILN_DTYPE_STRING: return sizeof(char *);
    default: return 0;
    }
}

bool kiln_dtype_is_float(kiln_dtype_t d)
{
    return d == KILN_DTYPE_FLOAT32 || d == KILN_DTYPE_FLOAT64 || d == KILN_DTYPE_FLOAT16 ||
           d == KILN_DTYPE_BFLOAT16;
}

bool kiln_dtype_is_signed(kiln_dtype_t d)
{
    return d == KILN_DTYPE_INT8 || d == KILN_DTYPE_INT16 || d == KILN_DTYPE_INT32 ||
           d == KILN_DTYPE_INT64;
}

bool kiln_dtype_is_integer(kiln_dtype_t d)
{
    return kiln_dtype_is_signed(d) || d == KILN_DTYPE_UINT8 || d == KILN_DTYPE_UINT16 ||
           d == KILN_DTYPE_UINT32 || d == KILN_DTYPE_UINT64;
}

int64_t kiln_shape_count(int rank, const int64_t *dims, size_t elem_size)
{
    if (rank < 0 || rank > KILN_MAX_RANK)
        return -1;
    int64_t count = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return -1;
        if (dims[i] == 0) {
            count = 0;
            continue;
        }
        if (count > KILN_TENSOR_MAX_BYTES / dims[i])
            return -1;
        count *= dims[i];
    }
    if (elem_size > 0 && count > KILN_TENSOR_MAX_BYTES / (int64_t)elem_size)
        return -1;
    return count;
}

char *kiln_shape_str(int rank, const int64_t *dims, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

bool kiln_shape_equal(const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

static kiln_tensor_t *tensor_header(kiln_dtype_t dtype, int rank, const int64_t *dims,
                                    int64_t *count_out)
{
    size_t esize = kiln_dtype_size(dtype);
    if (esize == 0) {
        kiln_fail(KILN_ERR_INVALID_ARGUMENT, "unsupported tensor dtype %d", (int)dtype);
        return NULL;
    }
    if (rank < 0 || rank > KILN_MAX_RANK) {
        kiln_fail(KILN_ERR_UNSUPPORTED, "tensor rank %d is outside 0..%d", rank, KILN_MAX_RANK);
        return NULL;
    }
    int64_t count = kiln_shape_count(rank, dims, esize);
    if (count < 0) {
        char buf[256];
        kiln_fail(KILN_ERR_NO_MEMORY, "tensor shape %s of %s is negative or too large",
                  kiln_shape_str(rank, dims, buf, sizeof buf), kiln_dtype_name(dtype));
        return NULL;
    }
    kiln_tensor_t *t = calloc(1, sizeof *t);
    if (!t) {
        kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for a tensor header");
        return NULL;
    }
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->count = count;
    t->nbytes = (size_t)count * esize;
    *count_out = count;
    return t;
}

static kiln_tensor_t *tensor_alloc(kiln_dtype_t dtype, int rank, const int64_t *dims, bool zero)
{
    int64_t count;
    kiln_tensor_t *t = tensor_header(dtype, rank, dims, &count);
    if (!t)
        return NULL;
    t->owns_data = true;
    if (t->nbytes > 0) {
        /* 64-byte alignment suits every SIMD width kiln uses. */
        size_t alloc = (t->nbytes + 63) & ~(size_t)63;
        t->data = aligned_alloc(64, alloc);
        if (!t->data) {
            free(t);
            kiln_fail(KILN_ERR_NO_MEMORY, "out of memory allocating %zu bytes for a tensor", alloc);
            return NULL;
        }
        if (zero || dtype == KILN_DTYPE_STRING)
            memset(t->data, 0, alloc);
    }
    return t;
}

kiln_tensor_t *kiln_tensor_new(kiln_dtype_t dtype, int rank, const int64_t *dims)
{
    return tensor_alloc(dtype, rank, dims, true);
}

kiln_tensor_t *kiln_tensor_new_uninit(kiln_dtype_t dtype, int rank, const int64_t *dims)
{
    return tensor_alloc(dtype, rank, dims, false);
}

kiln_tensor_t *kiln_tensor_create(kiln_dtype_t dtype, int rank, const int64_t *dims)
{
    return kiln_tensor_new(dtype, rank, dims);
}

kiln_tensor_t *kiln_tensor_wrap(kiln_dtype_t dtype, int rank, const int64_t *dims, void *data,
                                size_t nbytes)
{
    int64_t count;
    if (dtype == KILN_DTYPE_STRING) {
        kiln_fail(KILN_ERR_INVALID_ARGUMENT, "string tensors cannot wrap caller memory");
        return NULL;
    }
    kiln_tensor_t *t = tensor_header(dtype, rank, dims, &count);
    if (!t)
        return NULL;
    if (t->nbytes != nbytes) {
        char buf[256];
        kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                  "tensor of shape %s and dtype %s needs %zu bytes, %zu given",
                  kiln_shape_str(rank, dims, buf, sizeof buf), kiln_dtype_name(dtype), t->nbytes,
                  nbytes);
        free(t);
        return NULL;
    }
    t->data = data;
    t->owns_data = false;
    return t;
}

void kiln_tensor_free(kiln_tensor_t *t)
{
    if (!t)
        return;
    if (t->owns_data && t->data) {
        if (t->dtype == KILN_DTYPE_STRING) {
            char **s = t->data;
            for (int64_t i = 0; i < t->count; i++)
                free(s[i]);
        }
        free(t->data);
    }
    free(t);
}

kiln_tensor_t *kiln_tensor_clone(const kiln_tensor_t *src)
{
    kiln_tensor_t *t = kiln_tensor_new_uninit(src->dtype, src->rank, src->dims);
    if (!t)
        return NULL;
    if (src->dtype == KILN_DTYPE_STRING) {
        char *const *in = src->data;
        char **out = t->data;
        for (int64_t i = 0; i < src->count; i++) {
            out[i] = strdup(in[i] ? in[i] : "");
            if (!out[i]) {
                kiln_tensor_free(t);
                kiln_fail(KILN_ERR_NO_MEMORY, "out of memory copying strings");
                return NULL;
            }
        }
    } else if (src->nbytes) {
        memcpy(t->data, src->data, src->nbytes);
    }
    return t;
}

kiln_dtype_t kiln_tensor_dtype(const kiln_tensor_t *t) { return t->dtype; }
int kiln_tensor_rank(const kiln_tensor_t *t) { return t->rank; }
const int64_t *kiln_tensor_dims(const kiln_tensor_t *t) { return t->dims; }
int64_t kiln_tensor_count(const kiln_tensor_t *t) { return t->count; }
size_t kiln_tensor_nbytes(const kiln_tensor_t *t) { return t->nbytes; }
void *kiln_tensor_data(kiln_tensor_t *t) { return t->data; }

double kiln_tensor_get_f64(const kiln_tensor_t *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT32: return ((const float *)d)[i];
    case KILN_DTYPE_FLOAT64: return ((const double *)d)[i];
    case KILN_DTYPE_FLOAT16: return kiln_f16_to_f32(((const uint16_t *)d)[i]);
    case KILN_DTYPE_BFLOAT16: return kiln_bf16_to_f32(((const uint16_t *)d)[i]);
    case KILN_DTYPE_INT8: return ((const int8_t *)d)[i];
    case KILN_DTYPE_INT16: return ((const int16_t *)d)[i];
    case KILN_DTYPE_INT32: return ((const int32_t *)d)[i];
    case KILN_DTYPE_INT64: return (double)((const int64_t *)d)[i];
    case KILN_DTYPE_UINT8: case KILN_DTYPE_BOOL: return ((const uint8_t *)d)[i];
    case KILN_DTYPE_UINT16: return ((const uint16_t *)d)[i];
    case KILN_DTYPE_UINT32: return ((const uint32_t *)d)[i];
    case KILN_DTYPE_UINT64: return (double)((const uint64_t *)d)[i];
    default: return 0.0;
    }
}

int64_t kiln_tensor_get_i64(const kiln_tensor_t *t, int64_t i)
{
    const void *d = t->data;
    switch (t->dtype) {
    case KILN_DTYPE_INT8: return ((const int8_t *)d)[i];
    case KILN_DTYPE_INT16: return ((const int16_t *)d)[i];
    case KILN_DTYPE_INT32: return ((const int32_t *)d)[i];
    case KILN_DTYPE_INT64: return ((const int64_t *)d)[i];
    case KILN_DTYPE_UINT8: case KILN_DTYPE_BOOL: return ((const uint8_t *)d)[i];
    case KILN_DTYPE_UINT16: return ((const uint16_t *)d)[i];
    case KILN_DTYPE_UINT32: return ((const uint32_t *)d)[i];
    case KILN_DTYPE_UINT64: return (int64_t)((const uint64_t *)d)[i];
    default: return (int64_t)kiln_tensor_get_f64(t, i);
    }
}

/* v clamped into [lo, hi] (NaN to 0): C leaves out-of-range float to
 * integer conversions undefined, kiln saturates them. */
static double clamp_to(double v, double lo, double hi)
{
    return v != v ? 0.0 : v < lo ? lo : v > hi ? hi : v;
}

void kiln_tensor_set_f64(kiln_tensor_t *t, int64_t i, double v)
{
    void *d = t->data;
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT32: ((float *)d)[i] = (float)v; break;
    case KILN_DTYPE_FLOAT64: ((double *)d)[i] = v; break;
    case KILN_DTYPE_FLOAT16: ((uint16_t *)d)[i] = kiln_f32_to_f16((float)v); break;
    case KILN_DTYPE_BFLOAT16: ((uint16_t *)d)[i] = kiln_f32_to_bf16((float)v); break;
    case KILN_DTYPE_INT8: ((int8_t *)d)[i] = (int8_t)clamp_to(v, INT8_MIN, INT8_MAX); break;
    case KILN_DTYPE_INT16: ((int16_t *)d)[i] = (int16_t)clamp_to(v, INT16_MIN, INT16_MAX); break;
    case KILN_DTYPE_INT32: ((int32_t *)d)[i] = (int32_t)clamp_to(v, INT32_MIN, INT32_MAX); break;
    case KILN_DTYPE_INT64:
        ((int64_t *)d)[i] = v >= 9223372036854775807.0 ? INT64_MAX : (int64_t)clamp_to(v, (double)INT64_MIN, 0x1p63);
        break;
    case KILN_DTYPE_UINT8: ((uint8_t *)d)[i] = (uint8_t)clamp_to(v, 0, UINT8_MAX); break;
    case KILN_DTYPE_BOOL: ((uint8_t *)d)[i] = v != 0.0; break;
    case KILN_DTYPE_UINT16: ((uint16_t *)d)[i] = (uint16_t)clamp_to(v, 0, UINT16_MAX); break;
    case KILN_DTYPE_UINT32: ((uint32_t *)d)[i] = (uint32_t)clamp_to(v, 0, UINT32_MAX); break;
    case KILN_DTYPE_UINT64:
        ((uint64_t *)d)[i] = v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)clamp_to(v, 0, 0x1p64);
        break;
    default: break;
    }
}

/* See tensor.h. */
kiln_tensor_t *kiln_tensor_slice_axis(const kiln_tensor_t *t, int axis, int64_t begin, int64_t len, bool keep_axis)
{
    int64_t dims[KILN_MAX_RANK];
    int r = 0;
    for (int d = 0; d < t->rank; d++) {
        if (d == axis) {
            if (keep_axis)
                dims[r++] = len;
        } else {
            dims[r++] = t->dims[d];
        }
    }
    kiln_tensor_t *out = kiln_tensor_new(t->dtype, r, dims);
    if (!out)
        return NULL;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        inner *= t->dims[d];
    size_t es = kiln_dtype_size(t->dtype);
    for (int64_t o = 0; o < outer; o++) {
        const char *src = (const char *)t->data + ((o * t->dims[axis] + begin) * inner) * (int64_t)es;
        char *dst = (char *)out->data + (o * len * inner) * (int64_t)es;
        if (t->dtype == KILN_DTYPE_STRING)
            for (int64_t k = 0; k < len * inner; k++)
                ((char **)dst)[k] = strdup(((char *const *)src)[k]);
        else if (len * inner > 0) /* empty pieces have no storage to copy */
            memcpy(dst, src, (size_t)(len * inner) * es);
    }
    return out;
}

/* ---- values ------------------------------------------------------------ */

kiln_value_t *kiln_value_from_tensor(kiln_tensor_t *t)
{
    kiln_value_t *v = calloc(1, sizeof *v);
    if (!v) {
        kiln_tensor_free(t);
        kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for a value");
        return NULL;
    }
    v->kind = KILN_VALUE_TENSOR;
    v->tensor = t;
    v->elem_dtype = t ? t->dtype : KILN_DTYPE_UNDEFINED;
    return v;
}

kiln_value_t *kiln_value_new_sequence(kiln_dtype_t elem_dtype)
{
    kiln_value_t *v = calloc(1, sizeof *v);
    if (!v) {
        kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for a sequence");
        return NULL;
    }
    v->kind = KILN_VALUE_SEQUENCE;
    v->elem_dtype = elem_dtype;
    return v;
}

kiln_value_t *kiln_value_new_none(kiln_value_kind_t none_of, kiln_dtype_t elem_dtype)
{
    kiln_value_t *v = calloc(1, sizeof *v);
    if (!v) {
        kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for an optional");
        return NULL;
    }
    v->kind = KILN_VALUE_NONE;
    v->none_of = none_of;
    v->elem_dtype = elem_dtype;
    return v;
}

kiln_status_t kiln_sequence_insert(kiln_value_t *seq, int64_t pos, kiln_tensor_t *t)
{
    if (pos < 0)
        pos = seq->count;
    if (pos > seq->count) {
        kiln_tensor_free(t);
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "sequence position %lld is past its end %lld",
                         (long long)pos, (long long)seq->count);
    }
    if (seq->count == seq->capacity) {
        int64_t cap = seq->capacity ? seq->capacity * 2 : 4;
        kiln_tensor_t **items = realloc(seq->items, (size_t)cap * sizeof *items);
        if (!items) {
            kiln_tensor_free(t);
            return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory growing a sequence");
        }
        seq->items = items;
        seq->capacity = cap;
    }
    memmove(seq->items + pos + 1, seq->items + pos, (size_t)(seq->count - pos) * sizeof *seq->items);
    seq->items[pos] = t;
    seq->count++;
    if (seq->elem_dtype == KILN_DTYPE_UNDEFINED)
        seq->elem_dtype = t->dtype;
    return KILN_OK;
}

kiln_value_t *kiln_value_clone(const kiln_value_t *v)
{
    switch (v->kind) {
    case KILN_VALUE_TENSOR: {
        kiln_tensor_t *t = kiln_tensor_clone(v->tensor);
        return t ? kiln_value_from_tensor(t) : NULL;
    }
    case KILN_VALUE_SEQUENCE: {
        kiln_value_t *s = kiln_value_new_sequence(v->elem_dtype);
        if (!s)
            return NULL;
        for (int64_t i = 0; i < v->count; i++) {
            kiln_tensor_t *t = kiln_tensor_clone(v->items[i]);
            if (!t || kiln_sequence_insert(s, -1, t) != KILN_OK) {
                kiln_value_free(s);
                return NULL;
            }
        }
        return s;
    }
    case KILN_VALUE_NONE: return kiln_value_new_none(v->none_of, v->elem_dtype);
    }
    return NULL;
}

void kiln_value_free(kiln_value_t *v)
{
    if (!v)
        return;
    kiln_tensor_free(v->tensor);
    for (int64_t i = 0; i < v->count; i++)
        kiln_tensor_free(v->items[i]);
    free(v->items);
    free(v);
}
