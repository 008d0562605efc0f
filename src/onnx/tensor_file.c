/*
 * tensor_file.c - .pb and .npy tensor files (see tensor_file.h).
 *
 * The .npy header is a Python dict literal; only the three keys NumPy
 * writes are read, and the shape is bounds-checked before any allocation.
 */
#include "onnx/tensor_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx/model.h"
#include "onnx/pb.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static kiln_dtype_t npy_dtype(const char *descr, bool *swap)
{
    static const struct { const char *code; kiln_dtype_t dtype; } table[] = {
        {"f4", KILN_DTYPE_FLOAT32}, {"f8", KILN_DTYPE_FLOAT64}, {"f2", KILN_DTYPE_FLOAT16},
        {"i1", KILN_DTYPE_INT8},    {"i2", KILN_DTYPE_INT16},   {"i4", KILN_DTYPE_INT32},
        {"i8", KILN_DTYPE_INT64},   {"u1", KILN_DTYPE_UINT8},   {"u2", KILN_DTYPE_UINT16},
        {"u4", KILN_DTYPE_UINT32},  {"u8", KILN_DTYPE_UINT64},  {"b1", KILN_DTYPE_BOOL},
    };
    *swap = descr[0] == '>';
    if (descr[0] != '<' && descr[0] != '|' && descr[0] != '=' && descr[0] != '>')
        return KILN_DTYPE_UNDEFINED;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(descr + 1, table[i].code))
            return table[i].dtype;
    return KILN_DTYPE_UNDEFINED;
}

kiln_status_t kiln_npy_parse(const uint8_t *bytes, size_t len, kiln_tensor_t **out)
{
    *out = NULL;
    if (len < 10 || memcmp(bytes, NPY_MAGIC, 6))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "not a .npy file (bad magic)");
    int major = bytes[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = bytes[8] | (size_t)bytes[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy header is truncated");
        hlen = bytes[8] | (size_t)bytes[9] << 8 | (size_t)bytes[10] << 16 | (size_t)bytes[11] << 24;
        hstart = 12;
    } else {
        return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy format version %d is not supported", major);
    }
    if (hlen > len - hstart || hlen > 65536)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy header length %zu exceeds the file", hlen);
    char header[65537];
    memcpy(header, bytes + hstart, hlen);
    header[hlen] = '\0';
    char descr[16] = "";
    const char *p = strstr(header, "'descr'");
    if (!p || sscanf(p, "'descr' : '%15[^']'", descr) != 1) {
        if (!p || sscanf(p, "'descr': '%15[^']'", descr) != 1)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy header has no readable 'descr'");
    }
    bool swap;
    kiln_dtype_t dtype = npy_dtype(descr, &swap);
    if (dtype == KILN_DTYPE_UNDEFINED || swap)
        return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy dtype '%s' is not supported", descr);
    p = strstr(header, "'fortran_order'");
    if (p && strstr(p, "True") && (strstr(p, "True") < strchr(p, ',') || !strchr(p, ',')))
        return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy arrays in Fortran order are not supported");
    p = strstr(header, "'shape'");
    const char *open = p ? strchr(p, '(') : NULL;
    const char *close = open ? strchr(open, ')') : NULL;
    if (!open || !close)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy header has no readable 'shape'");
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (const char *q = open + 1; q < close;) {
        while (q < close && (*q == ' ' || *q == ','))
            q++;
        if (q >= close)
            break;
        char *end;
        errno = 0;
        long long v = strtoll(q, &end, 10);
        if (end == q || errno || v < 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy shape is malformed");
        if (rank >= KILN_MAX_RANK)
            return kiln_fail(KILN_ERR_UNSUPPORTED, ".npy array has more than %d dims", KILN_MAX_RANK);
        dims[rank++] = v;
        q = end;
    }
    kiln_tensor_t *t = kiln_tensor_new(dtype, rank, dims);
    if (!t)
        return kiln_fail_prefix(KILN_ERR_INVALID_ARGUMENT, ".npy");
    size_t data_off = hstart + hlen;
    if (len - data_off != t->nbytes) {
        char buf[128];
        kiln_status_t st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, ".npy data has %zu bytes, shape %s of %s needs %zu",
                                     len - data_off, kiln_shape_str(rank, dims, buf, sizeof buf),
                                     kiln_dtype_name(dtype), t->nbytes);
        kiln_tensor_free(t);
        return st;
    }
    if (t->nbytes)
        memcpy(t->data, bytes + data_off, t->nbytes);
    *out = t;
    return KILN_OK;
}

static const char *npy_descr(kiln_dtype_t d)
{
    switch (d) {
    case KILN_DTYPE_FLOAT32: return "<f4";
    case KILN_DTYPE_FLOAT64: return "<f8";
    case KILN_DTYPE_FLOAT16: return "<f2";
    case KILN_DTYPE_INT8: return "|i1";
    case KILN_DTYPE_INT16: return "<i2";
    case KILN_DTYPE_INT32: return "<i4";
    case KILN_DTYPE_INT64: return "<i8";
    case KILN_DTYPE_UINT8: return "|u1";
    case KILN_DTYPE_UINT16: return "<u2";
    case KILN_DTYPE_UINT32: return "<u4";
    case KILN_DTYPE_UINT64: return "<u8";
    case KILN_DTYPE_BOOL: return "|b1";
    default: return NULL;
    }
}

kiln_status_t kiln_npy_write(const char *path, const kiln_tensor_t *t)
{
    const char *descr = npy_descr(t->dtype);
    if (!descr)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%s: dtype %s cannot be written as .npy", path, kiln_dtype_name(t->dtype));
    char header[1024];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    /* NumPy's tuple syntax: (), (3,), (2, 3) */
    for (int i = 0; i < t->rank; i++)
        n += snprintf(header + n, sizeof header - (size_t)n, i ? ", %lld" : "%lld", (long long)t->dims[i]);
    if (t->rank == 1)
        n += snprintf(header + n, sizeof header - (size_t)n, ",");
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    /* pad with spaces so data starts at a multiple of 64, end with '\n' */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f)
        return kiln_fail(KILN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    uint16_t hlen = (uint16_t)((size_t)n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    ok = ok && (t->nbytes == 0 || fwrite(t->data, 1, t->nbytes, f) == t->nbytes);
    ok = (fclose(f) == 0) && ok;
    if (!ok)
        return kiln_fail(KILN_ERR_IO, "%s: write failed", path);
    return KILN_OK;
}

kiln_status_t kiln_tensor_read_file(const char *path, kiln_tensor_t **out)
{
    kiln_mapping_t map;
    *out = NULL;
    kiln_status_t st = kiln_map_file(path, &map);
    if (st)
        return st;
    if (ends_with(path, ".npy") || (map.size >= 6 && !memcmp(map.data, NPY_MAGIC, 6)))
        st = kiln_npy_parse(map.data, map.size, out);
    else
        st = kiln_onnx_parse_tensor_owned(map.data, map.size, out);
    kiln_unmap(&map);
    if (st)
        return kiln_fail_prefix(st, "%s", path);
    return KILN_OK;
}

kiln_status_t kiln_value_read_pb_file(const char *path, kiln_value_kind_t kind, bool optional, kiln_value_t **out)
{
    kiln_mapping_t map;
    *out = NULL;
    kiln_status_t st = kiln_map_file(path, &map);
    if (st)
        return st;
    st = kiln_onnx_parse_value_owned(map.data, map.size, kind, optional, out);
    kiln_unmap(&map);
    if (st)
        return kiln_fail_prefix(st, "%s", path);
    return KILN_OK;
}

kiln_status_t kiln_tensor_to_pb(const kiln_tensor_t *t, const char *name, uint8_t **out, size_t *out_len)
{
    pb_writer_t w = {0};
    for (int i = 0; i < t->rank; i++)
        pb_put_varint_field(&w, 1, (uint64_t)t->dims[i]);
    pb_put_varint_field(&w, 2, (uint64_t)t->dtype);
    if (name)
        pb_put_string_field(&w, 8, name);
    if (t->dtype == KILN_DTYPE_STRING) {
        char *const *s = t->data;
        for (int64_t i = 0; i < t->count; i++)
            pb_put_string_field(&w, 6, s[i] ? s[i] : "");
    } else {
        pb_put_bytes_field(&w, 9, t->data, t->nbytes);
    }
    if (w.failed) {
        pb_writer_free(&w);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory serializing a tensor");
    }
    *out = w.buf;
    *out_len = w.len;
    return KILN_OK;
}
