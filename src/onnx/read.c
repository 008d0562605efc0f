/*
 * read.c - ONNX ModelProto -> kiln graph IR, straight from the wire format.
 *
 * The reader walks the protobuf bytes of the mmap'd file with pb.h's cursor
 * and builds the IR in the model's arena.  Tensors are described first (a
 * tensor_view: dims, dtype, where each data field lies) and materialized
 * after, so the same code serves initializers (borrowed in place) and test
 * data files (copied into owning tensors).
 *
 * Every size read from the file is checked before it is used: dims are
 * non-negative, their product does not overflow, a tensor's data fields hold
 * exactly the bytes its shape needs, external-data ranges lie inside their
 * file, and external paths stay inside the model's directory.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/strmap.h"
#include "onnx/model.h"
#include "onnx/pb.h"

/* Field numbers of onnx.proto used here. */
enum {
    MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7,
    MODEL_OPSET_IMPORT = 8, MODEL_FUNCTIONS = 25,
    OPSET_DOMAIN = 1, OPSET_VERSION = 2,
    GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12,
    GRAPH_VALUE_INFO = 13, GRAPH_SPARSE_INITIALIZER = 15,
    NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5,
    NODE_DOMAIN = 7,
    ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_G = 6, ATTR_FLOATS = 7,
    ATTR_INTS = 8, ATTR_STRINGS = 9, ATTR_TENSORS = 10, ATTR_GRAPHS = 11, ATTR_TP = 14,
    ATTR_TYPE = 20, ATTR_REF_ATTR_NAME = 21, ATTR_SPARSE_TENSOR = 22,
    TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_SEGMENT = 3, TENSOR_FLOAT_DATA = 4,
    TENSOR_INT32_DATA = 5, TENSOR_STRING_DATA = 6, TENSOR_INT64_DATA = 7, TENSOR_NAME = 8,
    TENSOR_RAW_DATA = 9, TENSOR_DOUBLE_DATA = 10, TENSOR_UINT64_DATA = 11,
    TENSOR_EXTERNAL_DATA = 13, TENSOR_DATA_LOCATION = 14,
    ENTRY_KEY = 1, ENTRY_VALUE = 2,
    VI_NAME = 1, VI_TYPE = 2,
    TYPE_TENSOR = 1, TYPE_SEQUENCE = 4, TYPE_MAP = 5, TYPE_SPARSE_TENSOR = 8, TYPE_OPTIONAL = 9,
    TTYPE_ELEM_TYPE = 1, TTYPE_SHAPE = 2,
    SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2,
    SEQTYPE_ELEM = 1,
    SEQ_ELEM_TYPE = 2, SEQ_TENSOR_VALUES = 3, SEQ_SEQUENCE_VALUES = 5,
    OPT_ELEM_TYPE = 2, OPT_TENSOR_VALUE = 3, OPT_SEQUENCE_VALUE = 5,
};

/* Deepest nesting of subgraphs / types accepted (guards the recursion). */
#define MAX_NESTING 32

/* ---- tensors ------------------------------------------------------------ */

/* Where the pieces of one TensorProto lie in the input bytes. */
typedef struct tensor_view {
    const uint8_t *msg;      /* the whole TensorProto */
    size_t msg_len;
    const char *name;        /* points into msg; name_len bytes, not terminated */
    size_t name_len;
    kiln_dtype_t dtype;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t count;
    const uint8_t *raw;      /* raw_data, if present */
    size_t raw_len;
    bool has_raw;
    bool external;           /* data_location == EXTERNAL */
    const uint8_t *ext_location;
    size_t ext_location_len;
    int64_t ext_offset, ext_length; /* -1 when absent */
} tensor_view_t;

static kiln_status_t bad(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kiln_status_t bad(const char *what, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_fail(KILN_ERR_INVALID_MODEL, "%s: %s", what, msg);
}

static bool dtype_known(uint64_t d)
{
    return d >= 1 && d <= 16 && d != KILN_DTYPE_COMPLEX64 && d != KILN_DTYPE_COMPLEX128;
}

static int64_t parse_int64_text(const uint8_t *s, size_t len, bool *ok)
{
    int64_t v = 0;
    *ok = len > 0 && len < 20;
    for (size_t i = 0; *ok && i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            *ok = false;
        else
            v = v * 10 + (s[i] - '0');
    }
    return v;
}

static kiln_status_t view_tensor(const uint8_t *msg, size_t len, tensor_view_t *v)
{
    memset(v, 0, sizeof *v);
    v->msg = msg;
    v->msg_len = len;
    v->ext_offset = -1;
    v->ext_length = -1;
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    int rc;
    uint64_t dtype = 0;
    while ((rc = pb_next(&r, &f)) > 0) {
        switch (f.number) {
        case TENSOR_DIMS:
            if (f.wire == PB_WIRE_LEN) {
                pb_reader_t d = pb_reader(f.data, f.len);
                uint64_t x;
                while (d.p < d.end) {
                    if (!pb_read_varint(&d, &x))
                        return bad("tensor", "malformed packed dims");
                    if (v->rank >= KILN_MAX_RANK)
                        return kiln_fail(KILN_ERR_UNSUPPORTED, "tensor has more than %d dims", KILN_MAX_RANK);
                    v->dims[v->rank++] = (int64_t)x;
                }
            } else if (f.wire == PB_WIRE_VARINT) {
                if (v->rank >= KILN_MAX_RANK)
                    return kiln_fail(KILN_ERR_UNSUPPORTED, "tensor has more than %d dims", KILN_MAX_RANK);
                v->dims[v->rank++] = (int64_t)f.varint;
            }
            break;
        case TENSOR_DATA_TYPE: dtype = f.varint; break;
        case TENSOR_NAME:
            if (f.wire == PB_WIRE_LEN) {
                v->name = (const char *)f.data;
                v->name_len = f.len;
            }
            break;
        case TENSOR_RAW_DATA:
            if (f.wire == PB_WIRE_LEN) {
                v->raw = f.data;
                v->raw_len = f.len;
                v->has_raw = true;
            }
            break;
        case TENSOR_DATA_LOCATION: v->external = f.varint == 1; break;
        case TENSOR_EXTERNAL_DATA: {
            if (f.wire != PB_WIRE_LEN)
                break;
            pb_reader_t e = pb_reader(f.data, f.len);
            pb_field_t ef;
            const uint8_t *key = NULL, *val = NULL;
            size_t klen = 0, vlen = 0;
            int erc;
            while ((erc = pb_next(&e, &ef)) > 0) {
                if (ef.number == ENTRY_KEY && ef.wire == PB_WIRE_LEN) {
                    key = ef.data;
                    klen = ef.len;
                } else if (ef.number == ENTRY_VALUE && ef.wire == PB_WIRE_LEN) {
                    val = ef.data;
                    vlen = ef.len;
                }
            }
            if (erc < 0 || !key || !val)
                return bad("tensor", "malformed external_data entry");
            bool ok = true;
            if (klen == 8 && !memcmp(key, "location", 8)) {
                v->ext_location = val;
                v->ext_location_len = vlen;
            } else if (klen == 6 && !memcmp(key, "offset", 6)) {
                v->ext_offset = parse_int64_text(val, vlen, &ok);
            } else if (klen == 6 && !memcmp(key, "length", 6)) {
                v->ext_length = parse_int64_text(val, vlen, &ok);
            }
            if (!ok)
                return bad("tensor", "external_data %.*s is not a number", (int)klen, key);
            break;
        }
        case TENSOR_SEGMENT:
            return kiln_fail(KILN_ERR_UNSUPPORTED, "segmented tensors are not supported");
        default: break;
        }
    }
    if (rc < 0)
        return bad("tensor", "malformed TensorProto bytes");
    if (!dtype_known(dtype))
        return kiln_fail(dtype == 14 || dtype == 15 ? KILN_ERR_UNSUPPORTED : KILN_ERR_INVALID_MODEL,
                         "tensor '%.*s' has unsupported data_type %llu", (int)v->name_len,
                         v->name ? v->name : "", (unsigned long long)dtype);
    v->dtype = (kiln_dtype_t)dtype;
    v->count = kiln_shape_count(v->rank, v->dims, kiln_dtype_size(v->dtype));
    if (v->count < 0) {
        char buf[256];
        return bad("tensor", "'%.*s' has shape %s whose size is negative or overflows",
                   (int)v->name_len, v->name ? v->name : "", kiln_shape_str(v->rank, v->dims, buf, sizeof buf));
    }
    return KILN_OK;
}

/* Which repeated field holds the elements of a dtype, and how each element
 * is encoded there. */
static uint32_t typed_field_for(kiln_dtype_t d)
{
    switch (d) {
    case KILN_DTYPE_FLOAT32: return TENSOR_FLOAT_DATA;
    case KILN_DTYPE_FLOAT64: return TENSOR_DOUBLE_DATA;
    case KILN_DTYPE_INT64: return TENSOR_INT64_DATA;
    case KILN_DTYPE_UINT32: case KILN_DTYPE_UINT64: return TENSOR_UINT64_DATA;
    case KILN_DTYPE_STRING: return TENSOR_STRING_DATA;
    default: return TENSOR_INT32_DATA; /* int8/16/32, uint8/16, bool, float16, bfloat16 */
    }
}

/* Stores one element decoded from a typed field at index i of dst. */
static void store_typed(void *dst, kiln_dtype_t d, int64_t i, uint64_t bits)
{
    switch (d) {
    case KILN_DTYPE_FLOAT32: { uint32_t b = (uint32_t)bits; memcpy((uint32_t *)dst + i, &b, 4); break; }
    case KILN_DTYPE_FLOAT64: memcpy((uint64_t *)dst + i, &bits, 8); break;
    case KILN_DTYPE_INT64: case KILN_DTYPE_UINT64: ((uint64_t *)dst)[i] = bits; break;
    case KILN_DTYPE_UINT32: ((uint32_t *)dst)[i] = (uint32_t)bits; break;
    case KILN_DTYPE_INT32: ((int32_t *)dst)[i] = (int32_t)bits; break;
    case KILN_DTYPE_INT16: case KILN_DTYPE_UINT16: case KILN_DTYPE_FLOAT16:
    case KILN_DTYPE_BFLOAT16: ((uint16_t *)dst)[i] = (uint16_t)bits; break;
    case KILN_DTYPE_INT8: case KILN_DTYPE_UINT8: ((uint8_t *)dst)[i] = (uint8_t)bits; break;
    case KILN_DTYPE_BOOL: ((uint8_t *)dst)[i] = bits != 0; break;
    default: break;
    }
}

/* Decodes the typed repeated field into dst (count elements).  Packed and
 * unpacked encodings are both accepted.  Returns the number of elements
 * found (which the caller compares with the shape), or -1 when malformed. */
static int64_t decode_typed(const tensor_view_t *v, void *dst, int64_t count)
{
    uint32_t field = typed_field_for(v->dtype);
    bool fixed32 = field == TENSOR_FLOAT_DATA;
    bool fixed64 = field == TENSOR_DOUBLE_DATA;
    int64_t n = 0;
    pb_reader_t r = pb_reader(v->msg, v->msg_len);
    pb_field_t f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.number != field)
            continue;
        if (f.wire == PB_WIRE_LEN) {
            pb_reader_t p = pb_reader(f.data, f.len);
            while (p.p < p.end) {
                uint64_t x = 0;
                if (fixed32) {
                    uint32_t w;
                    if (p.end - p.p < 4) return -1;
                    memcpy(&w, p.p, 4);
                    p.p += 4;
                    x = w;
                } else if (fixed64) {
                    if (p.end - p.p < 8) return -1;
                    memcpy(&x, p.p, 8);
                    p.p += 8;
                } else if (!pb_read_varint(&p, &x)) {
                    return -1;
                }
                if (n < count)
                    store_typed(dst, v->dtype, n, x);
                n++;
            }
        } else {
            if (n < count)
                store_typed(dst, v->dtype, n, f.varint);
            n++;
        }
    }
    return rc < 0 ? -1 : n;
}

/* Counts string_data entries; fills out[] with copies when out != NULL. */
static int64_t decode_strings(const tensor_view_t *v, char **out, int64_t count, kiln_arena_t *arena)
{
    int64_t n = 0;
    pb_reader_t r = pb_reader(v->msg, v->msg_len);
    pb_field_t f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.number != TENSOR_STRING_DATA || f.wire != PB_WIRE_LEN)
            continue;
        if (out && n < count) {
            char *s = arena ? kiln_arena_strndup(arena, (const char *)f.data, f.len) : strndup((const char *)f.data, f.len);
            if (!s)
                return -2;
            out[n] = s;
        }
        n++;
    }
    return rc < 0 ? -1 : n;
}

static kiln_status_t size_mismatch(const tensor_view_t *v, const char *field, int64_t have, int64_t want)
{
    char buf[256];
    return bad("tensor", "'%.*s' of shape %s and dtype %s needs %lld %s, the file has %lld",
               (int)v->name_len, v->name ? v->name : "", kiln_shape_str(v->rank, v->dims, buf, sizeof buf),
               kiln_dtype_name(v->dtype), (long long)want, field, (long long)have);
}

/* Checks that the tensor's data fields hold exactly the elements its shape
 * declares, before anything is allocated from that shape: a few bytes can
 * declare billions of elements.  External data is checked against its file
 * later. */
static kiln_status_t check_view_data(const tensor_view_t *v)
{
    if (v->external)
        return KILN_OK;
    if (v->has_raw) {
        size_t want = (size_t)v->count * kiln_dtype_size(v->dtype);
        if (v->dtype != KILN_DTYPE_STRING && v->raw_len != want)
            return size_mismatch(v, "raw bytes", (int64_t)v->raw_len, (int64_t)want);
        return KILN_OK;
    }
    bool strings = v->dtype == KILN_DTYPE_STRING;
    int64_t n = strings ? decode_strings(v, NULL, 0, NULL) : decode_typed(v, NULL, 0);
    if (n < 0)
        return bad("tensor", "'%.*s' has a malformed %s field", (int)v->name_len, v->name ? v->name : "",
                   strings ? "string_data" : "typed data");
    if (n != v->count)
        return size_mismatch(v, strings ? "strings" : "elements", n, v->count);
    return KILN_OK;
}

/* Fills an owning tensor (data allocated by kiln_tensor_new) from the view;
 * external data is not allowed here (test files never use it). */
static kiln_status_t fill_owned(const tensor_view_t *v, kiln_tensor_t *t)
{
    if (v->external)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "external data in a standalone tensor file");
    if (v->dtype == KILN_DTYPE_STRING) {
        int64_t n = decode_strings(v, t->data, t->count, NULL);
        if (n == -2)
            return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory reading strings");
        if (n != t->count)
            return n < 0 ? bad("tensor", "malformed string_data") : size_mismatch(v, "strings", n, t->count);
        return KILN_OK;
    }
    if (v->has_raw) {
        if (v->raw_len != t->nbytes)
            return size_mismatch(v, "raw bytes", (int64_t)v->raw_len, (int64_t)t->nbytes);
        if (t->nbytes)
            memcpy(t->data, v->raw, t->nbytes);
        if (v->dtype == KILN_DTYPE_BOOL)
            for (int64_t i = 0; i < t->count; i++)
                ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
        return KILN_OK;
    }
    int64_t n = decode_typed(v, t->data, t->count);
    if (n != t->count)
        return n < 0 ? bad("tensor", "malformed typed data field") : size_mismatch(v, "elements", n, t->count);
    return KILN_OK;
}

kiln_status_t kiln_onnx_parse_tensor_owned(const uint8_t *bytes, size_t len, kiln_tensor_t **out)
{
    tensor_view_t v;
    *out = NULL;
    kiln_status_t st = view_tensor(bytes, len, &v);
    if (!st)
        st = check_view_data(&v);
    if (st)
        return st;
    kiln_tensor_t *t = kiln_tensor_new(v.dtype, v.rank, v.dims);
    if (!t)
        return KILN_ERR_NO_MEMORY;
    st = fill_owned(&v, t);
    if (st) {
        kiln_tensor_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

/* ---- external data -------------------------------------------------------- */

kiln_status_t kiln_map_file(const char *path, kiln_mapping_t *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kiln_fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kiln_fail(KILN_ERR_IO, "%s: not a regular file", path);
    }
    out->size = (size_t)st.st_size;
    if (out->size == 0) {
        close(fd);
        out->data = NULL;
        return KILN_OK;
    }
    void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return kiln_fail(KILN_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    out->data = p;
    return KILN_OK;
}

void kiln_unmap(kiln_mapping_t *m)
{
    if (m->is_malloc)
        free(m->data);
    else if (m->data)
        munmap(m->data, m->size);
    memset(m, 0, sizeof *m);
}

/* Maps (once per file) the external-data file named by location. */
static kiln_status_t external_file(struct kiln_model *m, const tensor_view_t *v, kiln_mapping_t **out)
{
    char loc[PATH_MAX];
    if (!v->ext_location || v->ext_location_len == 0 || v->ext_location_len >= sizeof loc)
        return bad("tensor", "'%.*s' has external data without a location", (int)v->name_len, v->name ? v->name : "");
    memcpy(loc, v->ext_location, v->ext_location_len);
    loc[v->ext_location_len] = '\0';
    /* Bytes in memory have no directory: resolving against the working
     * directory would let model bytes read whatever files lie there. */
    if (!m->dir[0])
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tensor '%.*s': external data '%s' needs a model loaded from a file",
                         (int)v->name_len, v->name ? v->name : "", loc);
    /* The location must name a file beside (or below) the model. */
    if (loc[0] == '/' || strstr(loc, "..") || memchr(loc, '\0', v->ext_location_len))
        return bad("tensor", "'%.*s' external data location '%s' is outside the model's directory",
                   (int)v->name_len, v->name ? v->name : "", loc);
    for (int i = 0; i < m->n_external; i++)
        if (!strcmp(m->external_names[i], loc)) {
            *out = &m->external[i];
            return KILN_OK;
        }
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s%s%s", m->dir, m->dir[0] ? "/" : "", loc);
    /* A symbolic link beside the model may still lead elsewhere: compare
     * the resolved paths. */
    char *real_dir = realpath(m->dir, NULL), *real_file = realpath(path, NULL);
    bool inside = real_dir && real_file && !strncmp(real_file, real_dir, strlen(real_dir)) &&
                  (real_file[strlen(real_dir)] == '/' || !strcmp(real_dir, "/"));
    bool resolved = real_dir && real_file;
    free(real_dir);
    free(real_file);
    if (resolved && !inside)
        return bad("tensor", "'%.*s' external data location '%s' leads outside the model's directory",
                   (int)v->name_len, v->name ? v->name : "", loc);
    kiln_mapping_t map;
    kiln_status_t st = kiln_map_file(path, &map);
    if (st)
        return st;
    kiln_mapping_t *ext = realloc(m->external, (size_t)(m->n_external + 1) * sizeof *ext);
    char **names = realloc(m->external_names, (size_t)(m->n_external + 1) * sizeof *names);
    if (ext)
        m->external = ext;
    if (names)
        m->external_names = names;
    char *name = strdup(loc);
    if (!ext || !names || !name) {
        free(name);
        kiln_unmap(&map);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    }
    m->external[m->n_external] = map;
    m->external_names[m->n_external] = name;
    *out = &m->external[m->n_external++];
    return KILN_OK;
}

static void *model_copy_buffer(struct kiln_model *m, size_t nbytes)
{
    void **copies = realloc(m->copies, (size_t)(m->n_copies + 1) * sizeof *copies);
    if (copies)
        m->copies = copies;
    const void **src = realloc(m->copy_src, (size_t)(m->n_copies + 1) * sizeof *src);
    if (src)
        m->copy_src = src;
    kiln_tensor_t **released = realloc(m->copy_released, (size_t)(m->n_copies + 1) * sizeof *released);
    if (released)
        m->copy_released = released;
    if (!copies || !src || !released)
        return NULL;
    m->copy_src[m->n_copies] = NULL;
    m->copy_released[m->n_copies] = NULL;
    size_t alloc = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, alloc ? alloc : 64);
    if (!p)
        return NULL;
    m->copies[m->n_copies++] = p;
    m->copied_bytes += nbytes;
    return p;
}

/* After a copy out of a file mapping, hands the source pages that the
 * tensor covers entirely back to the kernel: the copy is what will be used,
 * and a private, unmodified file mapping simply reads them again if ever
 * touched.  Without this a copied weight costs its size twice in RSS. */
static void release_mapped_pages(const void *p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + n) & ~(page - 1);
    if (end > start)
        madvise((void *)start, end - start, MADV_DONTNEED);
}

/* Builds an initializer tensor that borrows file bytes where it can. */
static kiln_status_t materialize_borrowed(struct kiln_model *m, const tensor_view_t *v, kiln_tensor_t **out)
{
    kiln_status_t cst = check_view_data(v);
    if (cst)
        return cst;
    kiln_tensor_t *t = kiln_arena_alloc(&m->arena, sizeof *t);
    if (!t)
        return KILN_ERR_NO_MEMORY;
    t->dtype = v->dtype;
    t->rank = v->rank;
    memcpy(t->dims, v->dims, sizeof t->dims);
    t->count = v->count;
    t->nbytes = (size_t)v->count * kiln_dtype_size(v->dtype);
    t->owns_data = false;
    *out = t;
    size_t esize = kiln_dtype_size(v->dtype);
    const uint8_t *src = NULL;
    if (v->dtype == KILN_DTYPE_STRING) {
        if (v->external || v->has_raw)
            return bad("tensor", "string tensor '%.*s' must use string_data", (int)v->name_len, v->name ? v->name : "");
        char **strs = kiln_arena_array(&m->arena, (size_t)v->count, sizeof(char *));
        if (!strs && v->count)
            return KILN_ERR_NO_MEMORY;
        int64_t n = decode_strings(v, strs, v->count, &m->arena);
        if (n != v->count)
            return n < 0 ? bad("tensor", "malformed string_data") : size_mismatch(v, "strings", n, v->count);
        t->data = strs;
        return KILN_OK;
    }
    if (v->external) {
        kiln_mapping_t *map;
        kiln_status_t st = external_file(m, v, &map);
        if (st)
            return st;
        int64_t off = v->ext_offset < 0 ? 0 : v->ext_offset;
        int64_t len = v->ext_length < 0 ? (int64_t)map->size - off : v->ext_length;
        if (off > (int64_t)map->size || len > (int64_t)map->size - off)
            return bad("tensor", "'%.*s' external data range [%lld, +%lld) is outside its %zu-byte file",
                       (int)v->name_len, v->name ? v->name : "", (long long)off, (long long)len, map->size);
        if ((size_t)len != t->nbytes)
            return size_mismatch(v, "external bytes", len, (int64_t)t->nbytes);
        src = (const uint8_t *)map->data + off;
    } else if (v->has_raw) {
        if (v->raw_len != t->nbytes)
            return size_mismatch(v, "raw bytes", (int64_t)v->raw_len, (int64_t)t->nbytes);
        src = v->raw;
    } else if (v->dtype == KILN_DTYPE_FLOAT32 || v->dtype == KILN_DTYPE_FLOAT64) {
        /* A single packed float_data/double_data field is the raw array. */
        uint32_t field = typed_field_for(v->dtype);
        pb_reader_t r = pb_reader(v->msg, v->msg_len);
        pb_field_t f;
        int fields = 0;
        while (pb_next(&r, &f) > 0)
            if (f.number == field) {
                fields++;
                if (f.wire == PB_WIRE_LEN && f.len == t->nbytes)
                    src = f.data;
            }
        if (fields != 1)
            src = NULL;
    }
    if (src && t->nbytes && v->dtype != KILN_DTYPE_BOOL && ((uintptr_t)src % esize) == 0) {
        t->data = (void *)src; /* zero-copy: points into the mapping */
        return KILN_OK;
    }
    void *buf = model_copy_buffer(m, t->nbytes);
    if (!buf)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for tensor '%.*s'", (int)v->name_len, v->name ? v->name : "");
    t->data = buf;
    if (src) {
        if (t->nbytes)
            memcpy(buf, src, t->nbytes);
        m->copy_src[m->n_copies - 1] = src;
        if (t->nbytes && (v->external || !m->file.is_malloc))
            release_mapped_pages(src, t->nbytes);
        if (v->dtype == KILN_DTYPE_BOOL)
            for (int64_t i = 0; i < t->count; i++)
                ((uint8_t *)buf)[i] = ((uint8_t *)buf)[i] != 0;
        return KILN_OK;
    }
    int64_t n = decode_typed(v, buf, t->count);
    if (n != t->count)
        return n < 0 ? bad("tensor", "malformed typed data field") : size_mismatch(v, "elements", n, t->count);
    return KILN_OK;
}

/* ---- types ---------------------------------------------------------------- */

static kiln_status_t parse_type(kiln_arena_t *arena, const uint8_t *msg, size_t len, kiln_type_t *type, int depth)
{
    if (depth > MAX_NESTING)
        return bad("type", "nested more than %d deep", MAX_NESTING);
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.wire != PB_WIRE_LEN)
            continue;
        if (f.number == TYPE_TENSOR || f.number == TYPE_SPARSE_TENSOR) {
            type->kind = KILN_VALUE_TENSOR;
            pb_reader_t t = pb_reader(f.data, f.len);
            pb_field_t tf;
            int trc;
            while ((trc = pb_next(&t, &tf)) > 0) {
                if (tf.number == TTYPE_ELEM_TYPE && tf.wire == PB_WIRE_VARINT) {
                    type->dtype = tf.varint <= 16 ? (kiln_dtype_t)tf.varint : KILN_DTYPE_UNDEFINED;
                } else if (tf.number == TTYPE_SHAPE && tf.wire == PB_WIRE_LEN) {
                    type->rank = 0;
                    pb_reader_t s = pb_reader(tf.data, tf.len);
                    pb_field_t sf;
                    int src;
                    while ((src = pb_next(&s, &sf)) > 0) {
                        if (sf.number != SHAPE_DIM || sf.wire != PB_WIRE_LEN)
                            continue;
                        if (type->rank >= KILN_MAX_RANK)
                            return kiln_fail(KILN_ERR_UNSUPPORTED, "a declared shape has more than %d dims", KILN_MAX_RANK);
                        kiln_dim_t *dim = &type->dims[type->rank++];
                        dim->size = -1;
                        pb_reader_t d = pb_reader(sf.data, sf.len);
                        pb_field_t df;
                        int drc;
                        while ((drc = pb_next(&d, &df)) > 0) {
                            if (df.number == DIM_VALUE && df.wire == PB_WIRE_VARINT)
                                dim->size = (int64_t)df.varint >= 0 ? (int64_t)df.varint : -1;
                            else if (df.number == DIM_PARAM && df.wire == PB_WIRE_LEN) {
                                dim->symbol = kiln_arena_strndup(arena, (const char *)df.data, df.len);
                                if (!dim->symbol)
                                    return KILN_ERR_NO_MEMORY;
                            }
                        }
                        if (drc < 0)
                            return bad("type", "malformed dimension");
                    }
                    if (src < 0)
                        return bad("type", "malformed shape");
                }
            }
            if (trc < 0)
                return bad("type", "malformed tensor type");
        } else if (f.number == TYPE_SEQUENCE) {
            kiln_type_t elem = {.rank = -1};
            pb_reader_t s = pb_reader(f.data, f.len);
            pb_field_t sf;
            while (pb_next(&s, &sf) > 0)
                if (sf.number == SEQTYPE_ELEM && sf.wire == PB_WIRE_LEN) {
                    kiln_status_t st = parse_type(arena, sf.data, sf.len, &elem, depth + 1);
                    if (st)
                        return st;
                }
            type->kind = KILN_VALUE_SEQUENCE;
            type->dtype = elem.dtype;
            type->rank = elem.rank; /* the elements' shape, when declared */
            memcpy(type->dims, elem.dims, sizeof type->dims);
        } else if (f.number == TYPE_OPTIONAL) {
            pb_reader_t s = pb_reader(f.data, f.len);
            pb_field_t sf;
            while (pb_next(&s, &sf) > 0)
                if (sf.number == SEQTYPE_ELEM && sf.wire == PB_WIRE_LEN) {
                    kiln_status_t st = parse_type(arena, sf.data, sf.len, type, depth + 1);
                    if (st)
                        return st;
                }
            type->optional = true;
        } else if (f.number == TYPE_MAP) {
            return kiln_fail(KILN_ERR_UNSUPPORTED, "map types are not supported");
        }
    }
    return rc < 0 ? bad("type", "malformed TypeProto") : KILN_OK;
}

static kiln_status_t parse_value_info(kiln_arena_t *arena, const uint8_t *msg, size_t len,
                                      const char **name, kiln_type_t *type)
{
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    int rc;
    *name = "";
    memset(type, 0, sizeof *type);
    type->rank = -1;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.number == VI_NAME && f.wire == PB_WIRE_LEN) {
            *name = kiln_arena_strndup(arena, (const char *)f.data, f.len);
            if (!*name)
                return KILN_ERR_NO_MEMORY;
        } else if (f.number == VI_TYPE && f.wire == PB_WIRE_LEN) {
            kiln_status_t st = parse_type(arena, f.data, f.len, type, 0);
            if (st)
                return st;
        }
    }
    return rc < 0 ? bad("value_info", "malformed ValueInfoProto") : KILN_OK;
}

/* ---- graphs --------------------------------------------------------------- */

/* A node as read, before its value names are resolved to indices. */
typedef struct raw_node {
    const char **inputs;
    int n_inputs, cap_inputs;
    const char **outputs;
    int n_outputs, cap_outputs;
} raw_node_t;

/* State while one graph is being read. */
typedef struct graph_builder {
    struct kiln_model *m;
    kiln_graph_t *g;
    kiln_strmap_t names;     /* value name -> index in g->values */
    raw_node_t *raw;         /* per node */
    int cap_raw;
    int depth;
} graph_builder_t;

static kiln_status_t parse_graph(struct kiln_model *m, kiln_graph_t *parent, const uint8_t *msg,
                                 size_t len, int depth, kiln_graph_t **out);

static bool push_str(const char ***arr, int *n, int *cap, const char *s)
{
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 4;
        const char **a = realloc(*arr, (size_t)c * sizeof *a);
        if (!a)
            return false;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = s;
    return true;
}

static int add_value(graph_builder_t *b, const char *name)
{
    kiln_graph_t *g = b->g;
    int idx = kiln_strmap_get(&b->names, name);
    if (idx >= 0)
        return idx;
    if (g->n_values == g->cap_values) {
        int c = g->cap_values ? g->cap_values * 2 : 32;
        kiln_value_info_t *v = realloc(g->values, (size_t)c * sizeof *v);
        if (!v) {
            kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for graph values");
            return -1;
        }
        g->values = v;
        g->cap_values = c;
    }
    idx = g->n_values++;
    kiln_value_info_t *v = &g->values[idx];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->type.rank = -1;
    v->producer = -1;
    v->initializer = -1;
    v->outer = -1;
    if (!kiln_strmap_put(&b->names, name, idx)) {
        kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for graph values");
        return -1;
    }
    return idx;
}

static kiln_status_t parse_attr(graph_builder_t *b, const uint8_t *msg, size_t len, kiln_attr_t *a)
{
    kiln_arena_t *arena = &b->m->arena;
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    int rc;
    int64_t n_floats = 0, n_ints = 0, n_strings = 0, n_tensors = 0, n_graphs = 0;
    /* First pass: scalars and list sizes. */
    while ((rc = pb_next(&r, &f)) > 0) {
        switch (f.number) {
        case ATTR_NAME:
            if (f.wire == PB_WIRE_LEN && !(a->name = kiln_arena_strndup(arena, (const char *)f.data, f.len)))
                return KILN_ERR_NO_MEMORY;
            break;
        case ATTR_REF_ATTR_NAME:
            if (f.wire == PB_WIRE_LEN && !(a->ref_attr_name = kiln_arena_strndup(arena, (const char *)f.data, f.len)))
                return KILN_ERR_NO_MEMORY;
            break;
        case ATTR_TYPE: a->type = (kiln_attr_type_t)f.varint; break;
        case ATTR_F: { uint32_t bits = (uint32_t)f.varint; memcpy(&a->f, &bits, 4); break; }
        case ATTR_I: a->i = (int64_t)f.varint; break;
        case ATTR_S:
            if (f.wire == PB_WIRE_LEN) {
                if (!(a->s = kiln_arena_strndup(arena, (const char *)f.data, f.len)))
                    return KILN_ERR_NO_MEMORY;
                a->s_len = f.len;
            }
            break;
        case ATTR_FLOATS: n_floats += f.wire == PB_WIRE_LEN ? (int64_t)(f.len / 4) : 1; break;
        case ATTR_INTS:
            if (f.wire == PB_WIRE_LEN) {
                pb_reader_t p = pb_reader(f.data, f.len);
                uint64_t x;
                while (p.p < p.end) {
                    if (!pb_read_varint(&p, &x))
                        return bad("attribute", "malformed ints");
                    n_ints++;
                }
            } else {
                n_ints++;
            }
            break;
        case ATTR_STRINGS: n_strings += f.wire == PB_WIRE_LEN; break;
        case ATTR_TENSORS: n_tensors++; break;
        case ATTR_GRAPHS: n_graphs++; break;
        default: break;
        }
    }
    if (rc < 0)
        return bad("attribute", "malformed AttributeProto");
    if (!a->name)
        return bad("attribute", "attribute without a name");
    /* One list per attribute: a->n counts the elements of that one list. */
    if ((n_floats > 0) + (n_ints > 0) + (n_strings > 0) + (n_tensors > 0) + (n_graphs > 0) > 1)
        return bad("attribute", "'%s' holds lists of more than one type", a->name);
    if ((n_floats && !(a->floats = kiln_arena_array(arena, (size_t)n_floats, sizeof(float)))) ||
        (n_ints && !(a->ints = kiln_arena_array(arena, (size_t)n_ints, sizeof(int64_t)))) ||
        (n_strings && !(a->strings = kiln_arena_array(arena, (size_t)n_strings, sizeof(char *)))) ||
        (n_tensors && !(a->tensors = kiln_arena_array(arena, (size_t)n_tensors, sizeof(kiln_tensor_t *)))) ||
        (n_graphs && !(a->graphs = kiln_arena_array(arena, (size_t)n_graphs, sizeof(kiln_graph_t *)))))
        return KILN_ERR_NO_MEMORY;
    /* Second pass: list contents, tensors and graphs. */
    r = pb_reader(msg, len);
    int64_t fi = 0, ii = 0, si = 0, ti = 0, gi = 0;
    while (pb_next(&r, &f) > 0) {
        kiln_status_t st = KILN_OK;
        switch (f.number) {
        case ATTR_FLOATS:
            if (f.wire == PB_WIRE_LEN) {
                for (size_t k = 0; k + 4 <= f.len; k += 4)
                    memcpy(&a->floats[fi++], f.data + k, 4);
            } else {
                uint32_t bits = (uint32_t)f.varint;
                memcpy(&a->floats[fi++], &bits, 4);
            }
            break;
        case ATTR_INTS:
            if (f.wire == PB_WIRE_LEN) {
                pb_reader_t p = pb_reader(f.data, f.len);
                uint64_t x;
                while (p.p < p.end && pb_read_varint(&p, &x))
                    a->ints[ii++] = (int64_t)x;
            } else {
                a->ints[ii++] = (int64_t)f.varint;
            }
            break;
        case ATTR_STRINGS:
            if (f.wire == PB_WIRE_LEN && !(a->strings[si++] = kiln_arena_strndup(arena, (const char *)f.data, f.len)))
                return KILN_ERR_NO_MEMORY;
            break;
        case ATTR_T:
        case ATTR_TENSORS: {
            tensor_view_t v;
            kiln_tensor_t *t;
            if (f.wire != PB_WIRE_LEN)
                return bad("attribute", "'%s' has a malformed tensor", a->name);
            if ((st = view_tensor(f.data, f.len, &v)) || (st = materialize_borrowed(b->m, &v, &t)))
                return kiln_fail_prefix(st, "attribute '%s'", a->name);
            if (f.number == ATTR_T)
                a->t = t;
            else
                a->tensors[ti++] = t;
            break;
        }
        case ATTR_G:
        case ATTR_GRAPHS: {
            kiln_graph_t *sub;
            if (f.wire != PB_WIRE_LEN)
                return bad("attribute", "'%s' has a malformed graph", a->name);
            if ((st = parse_graph(b->m, b->g, f.data, f.len, b->depth + 1, &sub)))
                return kiln_fail_prefix(st, "subgraph '%s'", a->name);
            if (f.number == ATTR_G)
                a->g = sub;
            else
                a->graphs[gi++] = sub;
            break;
        }
        case ATTR_TP:
            if (f.wire != PB_WIRE_LEN)
                return bad("attribute", "'%s' has a malformed type", a->name);
            if (!(a->tp = kiln_arena_alloc(arena, sizeof *a->tp)))
                return KILN_ERR_NO_MEMORY;
            a->tp->rank = -1;
            if ((st = parse_type(arena, f.data, f.len, a->tp, 0)))
                return kiln_fail_prefix(st, "attribute '%s'", a->name);
            break;
        case ATTR_SPARSE_TENSOR:
            return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute '%s': sparse tensors are not supported", a->name);
        default: break;
        }
    }
    a->n = n_floats + n_ints + n_strings + n_tensors + n_graphs;
    /* Older writers leave `type` unset: infer it from what is present. */
    if (a->type == KILN_ATTR_UNDEFINED) {
        if (a->g) a->type = KILN_ATTR_GRAPH;
        else if (a->t) a->type = KILN_ATTR_TENSOR;
        else if (a->s) a->type = KILN_ATTR_STRING;
        else if (n_floats) a->type = KILN_ATTR_FLOATS;
        else if (n_ints) a->type = KILN_ATTR_INTS;
        else if (n_strings) a->type = KILN_ATTR_STRINGS;
        else if (n_graphs) a->type = KILN_ATTR_GRAPHS;
        else if (n_tensors) a->type = KILN_ATTR_TENSORS;
        else a->type = KILN_ATTR_INT;
    }
    return KILN_OK;
}

static kiln_status_t parse_node(graph_builder_t *b, const uint8_t *msg, size_t len, int index)
{
    kiln_arena_t *arena = &b->m->arena;
    kiln_graph_t *g = b->g;
    kiln_node_t *node = &g->nodes[index];
    raw_node_t *raw = &b->raw[index];
    memset(node, 0, sizeof *node);
    memset(raw, 0, sizeof *raw);
    node->name = "";
    node->domain = "";
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    int rc, n_attrs = 0;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.wire != PB_WIRE_LEN)
            continue;
        char *s = NULL;
        if (f.number != NODE_ATTRIBUTE && !(s = kiln_arena_strndup(arena, (const char *)f.data, f.len)))
            return KILN_ERR_NO_MEMORY;
        switch (f.number) {
        case NODE_INPUT:
            if (!push_str(&raw->inputs, &raw->n_inputs, &raw->cap_inputs, s))
                return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
            break;
        case NODE_OUTPUT:
            if (!push_str(&raw->outputs, &raw->n_outputs, &raw->cap_outputs, s))
                return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
            break;
        case NODE_NAME: node->name = s; break;
        case NODE_OP_TYPE: node->op_type = s; break;
        case NODE_DOMAIN: node->domain = strcmp(s, "ai.onnx") ? s : ""; break;
        case NODE_ATTRIBUTE: n_attrs++; break;
        default: break;
        }
    }
    if (rc < 0)
        return bad("node", "malformed NodeProto (node %d of graph '%s')", index, g->name);
    if (!node->op_type || !node->op_type[0])
        return bad("node", "node %d ('%s') of graph '%s' has no op_type", index, node->name, g->name);
    if (!node->name[0]) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s_%d", node->op_type, index);
        if (!(node->name = kiln_arena_strndup(arena, buf, strlen(buf))))
            return KILN_ERR_NO_MEMORY;
    }
    if (n_attrs && !(node->attrs = kiln_arena_array(arena, (size_t)n_attrs, sizeof(kiln_attr_t))))
        return KILN_ERR_NO_MEMORY;
    r = pb_reader(msg, len);
    while (pb_next(&r, &f) > 0) {
        if (f.number != NODE_ATTRIBUTE || f.wire != PB_WIRE_LEN)
            continue;
        kiln_status_t st = parse_attr(b, f.data, f.len, &node->attrs[node->n_attrs]);
        if (st)
            return kiln_fail_prefix(st, "node '%s' (%s)", node->name, node->op_type);
        node->n_attrs++;
    }
    return KILN_OK;
}

static kiln_status_t count_fields(const uint8_t *msg, size_t len, uint32_t number, int *count)
{
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    int rc;
    *count = 0;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == number && f.wire == PB_WIRE_LEN) {
            if (*count == INT_MAX / 2)
                return bad("graph", "too many entries");
            (*count)++;
        }
    return rc < 0 ? bad("graph", "malformed GraphProto") : KILN_OK;
}

/* Adds every value the subgraphs of node i read from this graph as an
 * implicit input of the node, creating the value if needed. */
static kiln_status_t link_subgraph_outer(graph_builder_t *b, int i)
{
    kiln_graph_t *g = b->g;
    kiln_node_t *node = &g->nodes[i];
    int total = 0;
    for (int a = 0; a < node->n_attrs; a++) {
        kiln_attr_t *at = &node->attrs[a];
        if (at->g)
            total += at->g->n_outer;
        for (int64_t k = 0; k < at->n && at->graphs; k++)
            total += at->graphs[k]->n_outer;
    }
    if (!total)
        return KILN_OK;
    node->implicit_inputs = kiln_arena_array(&b->m->arena, (size_t)total, sizeof(int));
    if (!node->implicit_inputs)
        return KILN_ERR_NO_MEMORY;
    for (int a = 0; a < node->n_attrs; a++) {
        kiln_attr_t *at = &node->attrs[a];
        int n_sub = at->g ? 1 : (at->graphs ? (int)at->n : 0);
        for (int k = 0; k < n_sub; k++) {
            kiln_graph_t *sub = at->g ? at->g : at->graphs[k];
            for (int o = 0; o < sub->n_outer; o++) {
                int idx = add_value(b, sub->values[sub->outer_values[o]].name);
                if (idx < 0)
                    return KILN_ERR_NO_MEMORY;
                sub->outer_parent_values[o] = idx;
                bool seen = false;
                for (int j = 0; j < node->n_implicit; j++)
                    seen |= node->implicit_inputs[j] == idx;
                if (!seen)
                    node->implicit_inputs[node->n_implicit++] = idx;
            }
        }
    }
    return KILN_OK;
}

static kiln_status_t build_graph(graph_builder_t *b, const uint8_t *msg, size_t len)
{
    struct kiln_model *m = b->m;
    kiln_graph_t *g = b->g;
    kiln_status_t st;
    int n_nodes, n_inputs, n_outputs, n_inits;
    if ((st = count_fields(msg, len, GRAPH_NODE, &n_nodes)) ||
        (st = count_fields(msg, len, GRAPH_INPUT, &n_inputs)) ||
        (st = count_fields(msg, len, GRAPH_OUTPUT, &n_outputs)) ||
        (st = count_fields(msg, len, GRAPH_INITIALIZER, &n_inits)))
        return st;
    g->nodes = kiln_arena_array(&m->arena, (size_t)n_nodes + 1, sizeof(kiln_node_t));
    g->inputs = kiln_arena_array(&m->arena, (size_t)n_inputs + 1, sizeof(int));
    g->outputs = kiln_arena_array(&m->arena, (size_t)n_outputs + 1, sizeof(int));
    g->initializers = kiln_arena_array(&m->arena, (size_t)n_inits + 1, sizeof(kiln_tensor_t *));
    g->initializer_values = kiln_arena_array(&m->arena, (size_t)n_inits + 1, sizeof(int));
    b->raw = calloc((size_t)n_nodes + 1, sizeof *b->raw);
    if (!g->nodes || !g->inputs || !g->outputs || !g->initializers || !g->initializer_values || !b->raw)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory for graph '%s'", g->name);
    g->cap_nodes = n_nodes;

    /* Inputs, initializers, nodes (which parse their subgraphs) in file order. */
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    while (pb_next(&r, &f) > 0) {
        if (f.wire != PB_WIRE_LEN)
            continue;
        if (f.number == GRAPH_INPUT) {
            const char *name;
            kiln_type_t type;
            if ((st = parse_value_info(&m->arena, f.data, f.len, &name, &type)))
                return kiln_fail_prefix(st, "graph '%s' input", g->name);
            int idx = add_value(b, name);
            if (idx < 0)
                return KILN_ERR_NO_MEMORY;
            g->values[idx].type = type;
            g->values[idx].is_graph_input = true;
            g->inputs[g->n_inputs++] = idx;
        } else if (f.number == GRAPH_INITIALIZER) {
            tensor_view_t v;
            kiln_tensor_t *t;
            if ((st = view_tensor(f.data, f.len, &v)) || (st = materialize_borrowed(m, &v, &t)))
                return kiln_fail_prefix(st, "graph '%s' initializer", g->name);
            char *name = kiln_arena_strndup(&m->arena, v.name ? v.name : "", v.name_len);
            if (!name)
                return KILN_ERR_NO_MEMORY;
            int idx = add_value(b, name);
            if (idx < 0)
                return KILN_ERR_NO_MEMORY;
            kiln_value_info_t *vi = &g->values[idx];
            if (vi->initializer >= 0)
                return bad("graph", "'%s': initializer '%s' appears twice", g->name, name);
            vi->initializer = g->n_initializers;
            g->initializer_values[g->n_initializers] = idx;
            g->initializers[g->n_initializers++] = t;
            if (!vi->is_graph_input) {
                vi->type.kind = KILN_VALUE_TENSOR;
                vi->type.dtype = t->dtype;
                vi->type.rank = t->rank;
                for (int d = 0; d < t->rank; d++)
                    vi->type.dims[d].size = t->dims[d];
            }
        } else if (f.number == GRAPH_NODE) {
            if ((st = parse_node(b, f.data, f.len, g->n_nodes)))
                return st;
            g->n_nodes++;
        } else if (f.number == GRAPH_SPARSE_INITIALIZER) {
            return kiln_fail(KILN_ERR_UNSUPPORTED, "graph '%s': sparse initializers are not supported", g->name);
        }
    }

    /* Node outputs: each value has one producer. */
    for (int i = 0; i < g->n_nodes; i++) {
        kiln_node_t *node = &g->nodes[i];
        raw_node_t *raw = &b->raw[i];
        node->n_outputs = raw->n_outputs;
        node->outputs = kiln_arena_array(&m->arena, (size_t)raw->n_outputs + 1, sizeof(int));
        if (!node->outputs)
            return KILN_ERR_NO_MEMORY;
        for (int k = 0; k < raw->n_outputs; k++) {
            if (!raw->outputs[k][0]) {
                node->outputs[k] = -1;
                continue;
            }
            int idx = add_value(b, raw->outputs[k]);
            if (idx < 0)
                return KILN_ERR_NO_MEMORY;
            kiln_value_info_t *vi = &g->values[idx];
            if (vi->producer >= 0 || vi->initializer >= 0 || vi->is_graph_input)
                return bad("graph", "node '%s' (%s): output '%s' is already produced elsewhere",
                           node->name, node->op_type, raw->outputs[k]);
            vi->producer = i;
            node->outputs[k] = idx;
        }
    }
    /* Node inputs, by name; a name nobody produces may come from an outer scope. */
    for (int i = 0; i < g->n_nodes; i++) {
        kiln_node_t *node = &g->nodes[i];
        raw_node_t *raw = &b->raw[i];
        node->n_inputs = raw->n_inputs;
        while (node->n_inputs > 0 && !raw->inputs[node->n_inputs - 1][0])
            node->n_inputs--; /* trailing omitted inputs */
        node->inputs = kiln_arena_array(&m->arena, (size_t)node->n_inputs + 1, sizeof(int));
        if (!node->inputs)
            return KILN_ERR_NO_MEMORY;
        for (int k = 0; k < node->n_inputs; k++) {
            if (!raw->inputs[k][0]) {
                node->inputs[k] = -1;
                continue;
            }
            int idx = add_value(b, raw->inputs[k]);
            if (idx < 0)
                return KILN_ERR_NO_MEMORY;
            node->inputs[k] = idx;
        }
        if ((st = link_subgraph_outer(b, i)))
            return st;
    }
    /* Outputs and value_info types. */
    r = pb_reader(msg, len);
    while (pb_next(&r, &f) > 0) {
        if (f.wire != PB_WIRE_LEN || (f.number != GRAPH_OUTPUT && f.number != GRAPH_VALUE_INFO))
            continue;
        const char *name;
        kiln_type_t type;
        if ((st = parse_value_info(&m->arena, f.data, f.len, &name, &type)))
            return kiln_fail_prefix(st, "graph '%s' output", g->name);
        int idx = f.number == GRAPH_OUTPUT ? add_value(b, name) : kiln_strmap_get(&b->names, name);
        if (idx < 0) {
            if (f.number == GRAPH_OUTPUT)
                return KILN_ERR_NO_MEMORY;
            continue;
        }
        kiln_value_info_t *vi = &g->values[idx];
        if (vi->initializer < 0 || vi->is_graph_input)
            vi->type = type;
        if (f.number == GRAPH_OUTPUT)
            g->outputs[g->n_outputs++] = idx;
    }
    /* Values with no source: outer-scope references in a subgraph, errors at top. */
    int n_outer = 0;
    for (int v = 0; v < g->n_values; v++) {
        kiln_value_info_t *vi = &g->values[v];
        if (vi->producer < 0 && vi->initializer < 0 && !vi->is_graph_input)
            n_outer++;
    }
    if (n_outer) {
        if (!g->parent) {
            for (int i = 0; i < g->n_nodes; i++)
                for (int k = 0; k < g->nodes[i].n_inputs; k++) {
                    int v = g->nodes[i].inputs[k];
                    if (v >= 0 && g->values[v].producer < 0 && g->values[v].initializer < 0 &&
                        !g->values[v].is_graph_input)
                        return bad("graph", "node '%s' (%s): input '%s' is not produced by any node, graph input or initializer",
                                   g->nodes[i].name, g->nodes[i].op_type, g->values[v].name);
                }
            for (int v = 0; v < g->n_values; v++)
                if (g->values[v].producer < 0 && g->values[v].initializer < 0 && !g->values[v].is_graph_input)
                    return bad("graph", "value '%s' (a graph output or used by a subgraph) is never produced",
                               g->values[v].name);
        }
        g->outer_values = kiln_arena_array(&m->arena, (size_t)n_outer, sizeof(int));
        g->outer_parent_values = kiln_arena_array(&m->arena, (size_t)n_outer, sizeof(int));
        if (!g->outer_values || !g->outer_parent_values)
            return KILN_ERR_NO_MEMORY;
        for (int v = 0; v < g->n_values; v++) {
            kiln_value_info_t *vi = &g->values[v];
            if (vi->producer < 0 && vi->initializer < 0 && !vi->is_graph_input) {
                vi->outer = g->n_outer;
                g->outer_parent_values[g->n_outer] = -1;
                g->outer_values[g->n_outer++] = v;
            }
        }
    }
    return KILN_OK;
}

static kiln_status_t parse_graph(struct kiln_model *m, kiln_graph_t *parent, const uint8_t *msg,
                                 size_t len, int depth, kiln_graph_t **out)
{
    if (depth > MAX_NESTING)
        return bad("graph", "subgraphs nested more than %d deep", MAX_NESTING);
    kiln_graph_t *g = kiln_arena_alloc(&m->arena, sizeof *g);
    if (!g)
        return KILN_ERR_NO_MEMORY;
    g->parent = parent;
    g->model = &m->ir;
    g->name = "";
    pb_reader_t r = pb_reader(msg, len);
    pb_field_t f;
    while (pb_next(&r, &f) > 0)
        if (f.number == GRAPH_NAME && f.wire == PB_WIRE_LEN &&
            !(g->name = kiln_arena_strndup(&m->arena, (const char *)f.data, f.len)))
            return KILN_ERR_NO_MEMORY;
    graph_builder_t b = {.m = m, .g = g, .depth = depth};
    kiln_status_t st = build_graph(&b, msg, len);
    for (int i = 0; i < g->cap_nodes && b.raw; i++) {
        free(b.raw[i].inputs);
        free(b.raw[i].outputs);
    }
    free(b.raw);
    kiln_strmap_free(&b.names);
    /* Move the value table into the arena so the model frees it in one go. */
    if (g->n_values) {
        kiln_value_info_t *vals = kiln_arena_array(&m->arena, (size_t)g->n_values, sizeof *vals);
        if (vals)
            memcpy(vals, g->values, (size_t)g->n_values * sizeof *vals);
        else if (!st)
            st = KILN_ERR_NO_MEMORY;
        free(g->values);
        g->values = vals;
        g->cap_values = g->n_values;
    } else {
        free(g->values);
        g->values = NULL;
    }
    if (st)
        return st;
    *out = g;
    return KILN_OK;
}

/* Sets each node's opset from the model's imports, for g and its subgraphs. */
static kiln_status_t assign_opsets(kiln_model_ir_t *ir, kiln_graph_t *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        kiln_node_t *node = &g->nodes[i];
        int64_t v = kiln_model_opset(ir, node->domain);
        if (v <= 0)
            return kiln_fail(KILN_ERR_INVALID_MODEL, "node '%s' (%s): the model does not import domain '%s'",
                             node->name, node->op_type, node->domain[0] ? node->domain : "ai.onnx");
        node->opset = (int)v;
        for (int a = 0; a < node->n_attrs; a++) {
            kiln_attr_t *at = &node->attrs[a];
            kiln_status_t st;
            if (at->g && (st = assign_opsets(ir, at->g)))
                return st;
            for (int64_t k = 0; at->graphs && k < at->n; k++)
                if ((st = assign_opsets(ir, at->graphs[k])))
                    return st;
        }
    }
    return KILN_OK;
}

kiln_status_t kiln_onnx_parse_model(struct kiln_model *m, const uint8_t *bytes, size_t len)
{
    kiln_model_ir_t *ir = &m->ir;
    ir->producer_name = "";
    ir->producer_version = "";
    pb_reader_t r = pb_reader(bytes, len);
    pb_field_t f;
    int rc, n_opsets = 0;
    const uint8_t *graph_msg = NULL;
    size_t graph_len = 0;
    bool have_ir = false;
    while ((rc = pb_next(&r, &f)) > 0) {
        switch (f.number) {
        case MODEL_IR_VERSION: ir->ir_version = (int64_t)f.varint; have_ir = true; break;
        case MODEL_OPSET_IMPORT: n_opsets++; break;
        case MODEL_GRAPH:
            if (f.wire == PB_WIRE_LEN) {
                graph_msg = f.data;
                graph_len = f.len;
            }
            break;
        case MODEL_PRODUCER_NAME:
            if (f.wire == PB_WIRE_LEN)
                ir->producer_name = kiln_arena_strndup(&m->arena, (const char *)f.data, f.len);
            break;
        case MODEL_PRODUCER_VERSION:
            if (f.wire == PB_WIRE_LEN)
                ir->producer_version = kiln_arena_strndup(&m->arena, (const char *)f.data, f.len);
            break;
        default: break;
        }
    }
    if (rc < 0)
        return kiln_fail(KILN_ERR_INVALID_MODEL, "not a valid ONNX model: the protobuf bytes are truncated or corrupted");
    if (!have_ir || !graph_msg)
        return kiln_fail(KILN_ERR_INVALID_MODEL, "not a valid ONNX model: %s is missing",
                         !have_ir ? "ir_version" : "the graph");
    if (ir->ir_version < 3 || ir->ir_version > 10)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "ONNX IR version %lld is not supported (3 to 10 are)",
                         (long long)ir->ir_version);
    ir->opsets = kiln_arena_array(&m->arena, (size_t)n_opsets + 1, sizeof(kiln_opset_t));
    if (!ir->opsets)
        return KILN_ERR_NO_MEMORY;
    r = pb_reader(bytes, len);
    while (pb_next(&r, &f) > 0) {
        if (f.number != MODEL_OPSET_IMPORT || f.wire != PB_WIRE_LEN)
            continue;
        kiln_opset_t *o = &ir->opsets[ir->n_opsets++];
        o->domain = "";
        pb_reader_t s = pb_reader(f.data, f.len);
        pb_field_t sf;
        while (pb_next(&s, &sf) > 0) {
            if (sf.number == OPSET_DOMAIN && sf.wire == PB_WIRE_LEN) {
                o->domain = kiln_arena_strndup(&m->arena, (const char *)sf.data, sf.len);
                if (!o->domain)
                    return KILN_ERR_NO_MEMORY;
                if (!strcmp(o->domain, "ai.onnx"))
                    o->domain = "";
            } else if (sf.number == OPSET_VERSION) {
                o->version = (int64_t)sf.varint;
            }
        }
    }
    kiln_status_t st = parse_graph(m, NULL, graph_msg, graph_len, 0, &ir->graph);
    if (st)
        return st;
    if ((st = assign_opsets(ir, ir->graph)))
        return st;
    return m->parse_only ? KILN_OK : kiln_graph_check(ir->graph);
}

/* ---- test-data values ------------------------------------------------------ */

static kiln_status_t parse_sequence_owned(const uint8_t *bytes, size_t len, kiln_value_t **out)
{
    pb_reader_t r = pb_reader(bytes, len);
    pb_field_t f;
    int rc;
    kiln_value_t *seq = kiln_value_new_sequence(KILN_DTYPE_UNDEFINED);
    if (!seq)
        return KILN_ERR_NO_MEMORY;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.number == SEQ_TENSOR_VALUES && f.wire == PB_WIRE_LEN) {
            kiln_tensor_t *t;
            kiln_status_t st = kiln_onnx_parse_tensor_owned(f.data, f.len, &t);
            if (st || (st = kiln_sequence_insert(seq, -1, t))) {
                kiln_value_free(seq);
                return st;
            }
        } else if (f.number == SEQ_SEQUENCE_VALUES) {
            kiln_value_free(seq);
            return kiln_fail(KILN_ERR_UNSUPPORTED, "sequences of sequences are not supported");
        }
    }
    if (rc < 0) {
        kiln_value_free(seq);
        return kiln_fail(KILN_ERR_INVALID_MODEL, "malformed SequenceProto");
    }
    *out = seq;
    return KILN_OK;
}

kiln_status_t kiln_onnx_parse_value_owned(const uint8_t *bytes, size_t len, kiln_value_kind_t kind,
                                          bool optional, kiln_value_t **out)
{
    *out = NULL;
    if (optional) {
        pb_reader_t r = pb_reader(bytes, len);
        pb_field_t f;
        int rc;
        while ((rc = pb_next(&r, &f)) > 0) {
            if (f.number == OPT_TENSOR_VALUE && f.wire == PB_WIRE_LEN) {
                kiln_tensor_t *t;
                kiln_status_t st = kiln_onnx_parse_tensor_owned(f.data, f.len, &t);
                if (st)
                    return st;
                *out = kiln_value_from_tensor(t);
                return *out ? KILN_OK : KILN_ERR_NO_MEMORY;
            }
            if (f.number == OPT_SEQUENCE_VALUE && f.wire == PB_WIRE_LEN)
                return parse_sequence_owned(f.data, f.len, out);
        }
        if (rc < 0)
            return kiln_fail(KILN_ERR_INVALID_MODEL, "malformed OptionalProto");
        *out = kiln_value_new_none(kind, KILN_DTYPE_UNDEFINED);
        return *out ? KILN_OK : KILN_ERR_NO_MEMORY;
    }
    if (kind == KILN_VALUE_SEQUENCE)
        return parse_sequence_owned(bytes, len, out);
    kiln_tensor_t *t;
    kiln_status_t st = kiln_onnx_parse_tensor_owned(bytes, len, &t);
    if (st)
        return st;
    *out = kiln_value_from_tensor(t);
    return *out ? KILN_OK : KILN_ERR_NO_MEMORY;
}
