/*
 * write.c - kiln graph IR -> ONNX ModelProto bytes (the inverse of read.c).
 *
 * Serializes a model's IR with pb.h's writer: the opset imports, IR version
 * and producer, the main graph and every subgraph (If/Loop/Scan bodies),
 * attributes of every type the IR holds, initializers as raw_data (strings
 * as string_data), and value_info with symbolic dims for graph inputs,
 * outputs and typed intermediate values.  `kiln optimize` writes its result
 * through here; the output is a standard file onnx.checker accepts.
 *
 * Alignment: kiln borrows weights straight from the mmap'd file, which only
 * works when a tensor's bytes start at an address aligned to its element
 * size (read.c copies them otherwise).  So the writer lays out the file so
 * that the raw_data of every main-graph initializer starts at a multiple of
 * WRITE_ALIGN bytes from the start of the file.  It does so without any
 * extra field: the model's graph is written last, the graph's initializers
 * last inside it, so each raw_data offset is computable before writing, and
 * the gap is absorbed by writing the initializer's data_type varint in a
 * longer, non-minimal form (0x81 0x80 0x00 for 1).  Protobuf parsers accept
 * varints of up to 10 bytes; the value and the message are unchanged, and a
 * reader that re-serializes the model simply writes the short form again.
 *
 * What the IR does not keep is not written: doc strings, metadata_props,
 * model-local functions, sparse tensors and lists of type protos (read.c
 * ignores or rejects them).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "onnx/model.h"
#include "onnx/pb.h"

/* Field numbers of onnx.proto written here. */
enum {
    W_MODEL_IR_VERSION = 1, W_MODEL_PRODUCER_NAME = 2, W_MODEL_PRODUCER_VERSION = 3, W_MODEL_GRAPH = 7,
    W_MODEL_OPSET_IMPORT = 8,
    W_OPSET_DOMAIN = 1, W_OPSET_VERSION = 2,
    W_GRAPH_NODE = 1, W_GRAPH_NAME = 2, W_GRAPH_INITIALIZER = 5, W_GRAPH_INPUT = 11, W_GRAPH_OUTPUT = 12,
    W_GRAPH_VALUE_INFO = 13,
    W_NODE_INPUT = 1, W_NODE_OUTPUT = 2, W_NODE_NAME = 3, W_NODE_OP_TYPE = 4, W_NODE_ATTRIBUTE = 5,
    W_NODE_DOMAIN = 7,
    W_ATTR_NAME = 1, W_ATTR_F = 2, W_ATTR_I = 3, W_ATTR_S = 4, W_ATTR_T = 5, W_ATTR_G = 6, W_ATTR_FLOATS = 7,
    W_ATTR_INTS = 8, W_ATTR_STRINGS = 9, W_ATTR_TENSORS = 10, W_ATTR_GRAPHS = 11, W_ATTR_TP = 14, W_ATTR_TYPE = 20,
    W_ATTR_REF_ATTR_NAME = 21,
    W_TENSOR_DIMS = 1, W_TENSOR_DATA_TYPE = 2, W_TENSOR_STRING_DATA = 6, W_TENSOR_NAME = 8,
    W_TENSOR_RAW_DATA = 9,
    W_VI_NAME = 1, W_VI_TYPE = 2,
    W_TYPE_TENSOR = 1, W_TYPE_SEQUENCE = 4, W_TYPE_OPTIONAL = 9,
    W_TTYPE_ELEM_TYPE = 1, W_TTYPE_SHAPE = 2, W_SHAPE_DIM = 1, W_DIM_VALUE = 1, W_DIM_PARAM = 2,
    W_SEQTYPE_ELEM = 1,
};

/* Alignment of main-graph initializer data in the file (the widest element
 * kiln reads in place is 8 bytes). */
#define WRITE_ALIGN 8
/* A varint may take up to 10 bytes; data_type's minimal form is 1 byte. */
#define MAX_VARINT_PAD 9
/* Deepest subgraph nesting written (the recursion's guard). */
#define MAX_WRITE_NESTING 64
/* Protobuf messages are limited to 2 GiB. */
#define PB_MAX_MESSAGE ((size_t)INT32_MAX)

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes v as a varint of exactly width bytes (width >= varint_len(v)). */
static void put_varint_wide(pb_writer_t *w, uint64_t v, size_t width)
{
    uint8_t tmp[10];
    for (size_t i = 0; i < width; i++) {
        tmp[i] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (i + 1 < width)
            tmp[i] |= 0x80;
    }
    pb_put_raw(w, tmp, width);
}

static void put_tag(pb_writer_t *w, uint32_t number, int wire)
{
    pb_put_varint(w, ((uint64_t)number << 3) | (uint64_t)wire);
}

/* ---- tensors -------------------------------------------------------------- */

/* Everything of a TensorProto up to (not including) the raw_data payload:
 * name, dims, data_type (padded by pad bytes), and either the raw_data tag
 * and length or, for strings, the string_data fields. */
static void tensor_header(pb_writer_t *w, const kiln_tensor_t *t, const char *name, size_t pad)
{
    if (name && name[0])
        pb_put_string_field(w, W_TENSOR_NAME, name);
    for (int d = 0; d < t->rank; d++)
        pb_put_varint_field(w, W_TENSOR_DIMS, (uint64_t)t->dims[d]);
    put_tag(w, W_TENSOR_DATA_TYPE, PB_WIRE_VARINT);
    put_varint_wide(w, (uint64_t)t->dtype, varint_len((uint64_t)t->dtype) + pad);
    if (t->dtype == KILN_DTYPE_STRING) {
        char *const *s = t->data;
        for (int64_t i = 0; i < t->count; i++)
            pb_put_string_field(w, W_TENSOR_STRING_DATA, s[i] ? s[i] : "");
        return;
    }
    put_tag(w, W_TENSOR_RAW_DATA, PB_WIRE_LEN);
    pb_put_varint(w, t->nbytes);
}

/* Bytes of payload that follow tensor_header(). */
static size_t tensor_payload(const kiln_tensor_t *t)
{
    return t->dtype == KILN_DTYPE_STRING ? 0 : t->nbytes;
}

/* A whole TensorProto into w (no alignment). */
static void write_tensor(pb_writer_t *w, const kiln_tensor_t *t, const char *name)
{
    tensor_header(w, t, name, 0);
    if (tensor_payload(t))
        pb_put_raw(w, t->data, t->nbytes);
}

/* ---- types ---------------------------------------------------------------- */

static void write_tensor_type(pb_writer_t *w, const kiln_type_t *type)
{
    pb_writer_t tt = {0};
    if (type->dtype != KILN_DTYPE_UNDEFINED)
        pb_put_varint_field(&tt, W_TTYPE_ELEM_TYPE, (uint64_t)type->dtype);
    if (type->rank >= 0) {
        pb_writer_t shape = {0};
        for (int d = 0; d < type->rank && d < KILN_MAX_RANK; d++) {
            pb_writer_t dim = {0};
            const kiln_dim_t *kd = &type->dims[d];
            if (kd->size >= 0)
                pb_put_varint_field(&dim, W_DIM_VALUE, (uint64_t)kd->size);
            else if (kd->symbol && kd->symbol[0])
                pb_put_string_field(&dim, W_DIM_PARAM, kd->symbol);
            pb_put_message_field(&shape, W_SHAPE_DIM, &dim);
        }
        pb_put_message_field(&tt, W_TTYPE_SHAPE, &shape);
    }
    pb_put_message_field(w, W_TYPE_TENSOR, &tt);
}

/* A TypeProto's fields into w; false when the type is unknown (nothing written). */
static bool write_type(pb_writer_t *w, const kiln_type_t *type)
{
    pb_writer_t inner = {0};
    bool known = true;
    if (type->kind == KILN_VALUE_TENSOR) {
        write_tensor_type(&inner, type);
    } else if (type->kind == KILN_VALUE_SEQUENCE) {
        pb_writer_t elem = {0}; /* a sequence of tensors: dtype and shape are the elements' */
        write_tensor_type(&elem, type);
        pb_writer_t seq = {0};
        pb_put_message_field(&seq, W_SEQTYPE_ELEM, &elem);
        pb_put_message_field(&inner, W_TYPE_SEQUENCE, &seq);
    } else {
        known = false;
    }
    if (type->optional) {
        pb_writer_t opt = {0};
        if (known)
            pb_put_message_field(&opt, W_SEQTYPE_ELEM, &inner);
        else
            pb_writer_free(&inner);
        pb_put_message_field(w, W_TYPE_OPTIONAL, &opt);
        return true;
    }
    if (!known) {
        pb_writer_free(&inner);
        return false;
    }
    pb_put_raw(w, inner.buf, inner.len);
    if (inner.failed)
        w->failed = true;
    pb_writer_free(&inner);
    return true;
}

static void write_value_info(pb_writer_t *w, uint32_t field, const kiln_value_info_t *v)
{
    pb_writer_t vi = {0};
    pb_put_string_field(&vi, W_VI_NAME, v->name);
    pb_writer_t type = {0};
    if (write_type(&type, &v->type))
        pb_put_message_field(&vi, W_VI_TYPE, &type);
    else
        pb_writer_free(&type);
    pb_put_message_field(w, field, &vi);
}

/* ---- graphs, nodes, attributes ------------------------------------------- */

static kiln_status_t write_graph_body(pb_writer_t *w, const kiln_graph_t *g, bool with_initializers, int depth);

static kiln_status_t write_graph_message(pb_writer_t *w, uint32_t field, const kiln_graph_t *g, int depth)
{
    pb_writer_t sub = {0};
    kiln_status_t st = write_graph_body(&sub, g, true, depth + 1);
    if (st) {
        pb_writer_free(&sub);
        return st;
    }
    pb_put_message_field(w, field, &sub);
    return KILN_OK;
}

static kiln_status_t write_attr(pb_writer_t *w, const kiln_attr_t *a, int depth)
{
    kiln_status_t st = KILN_OK;
    pb_put_string_field(w, W_ATTR_NAME, a->name);
    if (a->ref_attr_name)
        pb_put_string_field(w, W_ATTR_REF_ATTR_NAME, a->ref_attr_name);
    pb_put_varint_field(w, W_ATTR_TYPE, (uint64_t)a->type);
    switch (a->type) {
    case KILN_ATTR_FLOAT: {
        uint32_t bits;
        memcpy(&bits, &a->f, 4);
        pb_put_fixed32_field(w, W_ATTR_F, bits);
        break;
    }
    case KILN_ATTR_INT: pb_put_varint_field(w, W_ATTR_I, (uint64_t)a->i); break;
    case KILN_ATTR_STRING: pb_put_bytes_field(w, W_ATTR_S, a->s ? a->s : "", a->s ? a->s_len : 0); break;
    case KILN_ATTR_TENSOR:
        if (a->t) {
            pb_writer_t t = {0};
            write_tensor(&t, a->t, NULL);
            pb_put_message_field(w, W_ATTR_T, &t);
        }
        break;
    case KILN_ATTR_GRAPH:
        if (a->g)
            st = write_graph_message(w, W_ATTR_G, a->g, depth);
        break;
    case KILN_ATTR_FLOATS:
        if (a->floats && a->n > 0)
            pb_put_bytes_field(w, W_ATTR_FLOATS, a->floats, (size_t)a->n * sizeof(float));
        break;
    case KILN_ATTR_INTS:
        if (a->ints && a->n > 0) {
            pb_writer_t packed = {0};
            for (int64_t k = 0; k < a->n; k++)
                pb_put_varint(&packed, (uint64_t)a->ints[k]);
            pb_put_message_field(w, W_ATTR_INTS, &packed);
        }
        break;
    case KILN_ATTR_STRINGS:
        for (int64_t k = 0; a->strings && k < a->n; k++)
            pb_put_string_field(w, W_ATTR_STRINGS, a->strings[k] ? a->strings[k] : "");
        break;
    case KILN_ATTR_TENSORS:
        for (int64_t k = 0; a->tensors && k < a->n; k++) {
            pb_writer_t t = {0};
            write_tensor(&t, a->tensors[k], NULL);
            pb_put_message_field(w, W_ATTR_TENSORS, &t);
        }
        break;
    case KILN_ATTR_GRAPHS:
        for (int64_t k = 0; a->graphs && k < a->n && !st; k++)
            st = write_graph_message(w, W_ATTR_GRAPHS, a->graphs[k], depth);
        break;
    case KILN_ATTR_TYPE_PROTO:
        if (a->tp) {
            pb_writer_t tp = {0};
            write_type(&tp, a->tp);
            pb_put_message_field(w, W_ATTR_TP, &tp);
        }
        break;
    default:
        return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute '%s' of type %d cannot be written (sparse tensors and lists of types are not kept)",
                         a->name, (int)a->type);
    }
    return st;
}

static const char *value_name(const kiln_graph_t *g, int v)
{
    return v >= 0 ? g->values[v].name : "";
}

static kiln_status_t write_node(pb_writer_t *w, const kiln_graph_t *g, const kiln_node_t *node, int depth)
{
    for (int k = 0; k < node->n_inputs; k++)
        pb_put_string_field(w, W_NODE_INPUT, value_name(g, node->inputs[k]));
    for (int k = 0; k < node->n_outputs; k++)
        pb_put_string_field(w, W_NODE_OUTPUT, value_name(g, node->outputs[k]));
    if (node->name && node->name[0])
        pb_put_string_field(w, W_NODE_NAME, node->name);
    pb_put_string_field(w, W_NODE_OP_TYPE, node->op_type);
    if (node->domain && node->domain[0])
        pb_put_string_field(w, W_NODE_DOMAIN, node->domain);
    for (int a = 0; a < node->n_attrs; a++) {
        pb_writer_t attr = {0};
        kiln_status_t st = write_attr(&attr, &node->attrs[a], depth);
        if (st) {
            pb_writer_free(&attr);
            return kiln_fail_prefix(st, "node '%s' (%s)", node->name, node->op_type);
        }
        pb_put_message_field(w, W_NODE_ATTRIBUTE, &attr);
    }
    return KILN_OK;
}

/* The GraphProto fields of g; initializers only when asked (the main graph
 * writes its own, aligned, after everything else). */
static kiln_status_t write_graph_body(pb_writer_t *w, const kiln_graph_t *g, bool with_initializers, int depth)
{
    if (depth > MAX_WRITE_NESTING) /* read.c allows less; this guards hand-built IR */
        return kiln_fail(KILN_ERR_UNSUPPORTED, "subgraphs nested more than %d deep", MAX_WRITE_NESTING);
    if (g->name && g->name[0])
        pb_put_string_field(w, W_GRAPH_NAME, g->name);
    for (int i = 0; i < g->n_nodes; i++) {
        pb_writer_t node = {0};
        kiln_status_t st = write_node(&node, g, &g->nodes[i], depth);
        if (st) {
            pb_writer_free(&node);
            return st;
        }
        pb_put_message_field(w, W_GRAPH_NODE, &node);
    }
    for (int i = 0; i < g->n_inputs; i++)
        write_value_info(w, W_GRAPH_INPUT, &g->values[g->inputs[i]]);
    for (int i = 0; i < g->n_outputs; i++)
        write_value_info(w, W_GRAPH_OUTPUT, &g->values[g->outputs[i]]);
    /* value_info: typed values that are neither inputs, outputs, initializers
     * nor references to an enclosing graph. */
    for (int v = 0; v < g->n_values; v++) {
        const kiln_value_info_t *vi = &g->values[v];
        bool is_output = false;
        for (int k = 0; k < g->n_outputs; k++)
            is_output |= g->outputs[k] == v;
        if (vi->is_graph_input || is_output || vi->initializer >= 0 || vi->outer >= 0 || vi->producer < 0 ||
            vi->type.kind == 0 || vi->type.dtype == KILN_DTYPE_UNDEFINED)
            continue;
        write_value_info(w, W_GRAPH_VALUE_INFO, vi);
    }
    for (int i = 0; with_initializers && i < g->n_initializers; i++) {
        pb_writer_t t = {0};
        write_tensor(&t, g->initializers[i], g->values[g->initializer_values[i]].name);
        pb_put_message_field(w, W_GRAPH_INITIALIZER, &t);
    }
    return w->failed ? kiln_fail(KILN_ERR_NO_MEMORY, "out of memory writing graph '%s'", g->name) : KILN_OK;
}

/* Before IR version 4 every initializer of the main graph must also be a
 * graph input; weights an optimizer made (folded constants) are not yet, so
 * they are declared here.  (Subgraph inputs are positional: never added.) */
static void declare_initializers_as_inputs(pb_writer_t *w, const kiln_graph_t *g)
{
    for (int i = 0; i < g->n_initializers; i++) {
        const kiln_value_info_t *vi = &g->values[g->initializer_values[i]];
        if (vi->is_graph_input)
            continue;
        const kiln_tensor_t *t = g->initializers[i];
        kiln_value_info_t decl = {.name = vi->name,
                                  .type = {.kind = KILN_VALUE_TENSOR, .dtype = t->dtype, .rank = t->rank}};
        for (int d = 0; d < t->rank; d++)
            decl.type.dims[d].size = t->dims[d];
        write_value_info(w, W_GRAPH_INPUT, &decl);
    }
}

/* ---- the model, with aligned initializers --------------------------------- */

/* Where the pieces of the file go: the model's own fields, the main graph
 * without initializers, then each initializer's header (padded) and data. */
typedef struct layout {
    pb_writer_t model;         /* ModelProto fields before the graph */
    pb_writer_t graph;         /* GraphProto fields before the initializers */
    int n;
    pb_writer_t *headers;      /* per initializer: TensorProto up to its payload */
    size_t *pads;              /* per initializer: data_type padding */
    size_t graph_len;          /* GraphProto payload length */
    size_t total;              /* file size */
} layout_t;

static void layout_free(layout_t *l)
{
    pb_writer_free(&l->model);
    pb_writer_free(&l->graph);
    for (int i = 0; l->headers && i < l->n; i++)
        pb_writer_free(&l->headers[i]);
    free(l->headers);
    free(l->pads);
}

static size_t tensor_message_len(const layout_t *l, const kiln_graph_t *g, int i)
{
    return l->headers[i].len + tensor_payload(g->initializers[i]);
}

/* Rebuilds the headers with the current pads and computes lengths; returns
 * true when every raw_data lands aligned (the pads are then final). */
static bool layout_pass(layout_t *l, const kiln_graph_t *g)
{
    for (int i = 0; i < l->n; i++) {
        pb_writer_free(&l->headers[i]);
        tensor_header(&l->headers[i], g->initializers[i], g->values[g->initializer_values[i]].name, l->pads[i]);
    }
    l->graph_len = l->graph.len;
    for (int i = 0; i < l->n; i++) {
        size_t len = tensor_message_len(l, g, i);
        l->graph_len += 1 + varint_len(len) + len;
    }
    size_t pos = l->model.len + 1 + varint_len(l->graph_len) + l->graph.len;
    bool aligned = true;
    for (int i = 0; i < l->n; i++) {
        size_t len = tensor_message_len(l, g, i);
        size_t data = pos + 1 + varint_len(len) + l->headers[i].len; /* where the payload starts */
        if (tensor_payload(g->initializers[i]) && data % WRITE_ALIGN) {
            size_t want = l->pads[i] + (WRITE_ALIGN - data % WRITE_ALIGN);
            if (want > MAX_VARINT_PAD)
                want -= WRITE_ALIGN;
            l->pads[i] = want;
            aligned = false;
        }
        pos += 1 + varint_len(len) + len;
    }
    l->total = pos;
    return aligned;
}

/* Where bytes go: a growable buffer or a file. */
typedef struct sink {
    pb_writer_t *buf;
    FILE *file;
    bool failed;
} sink_t;

static void sink_put(sink_t *s, const void *data, size_t len)
{
    if (s->failed || !len)
        return;
    if (s->buf) {
        pb_put_raw(s->buf, data, len);
        s->failed = s->buf->failed;
    } else if (fwrite(data, 1, len, s->file) != len) {
        s->failed = true;
    }
}

static void sink_varint_field_header(sink_t *s, uint32_t number, size_t len)
{
    pb_writer_t tmp = {0};
    put_tag(&tmp, number, PB_WIRE_LEN);
    pb_put_varint(&tmp, len);
    sink_put(s, tmp.buf, tmp.len);
    if (tmp.failed)
        s->failed = true;
    pb_writer_free(&tmp);
}

static kiln_status_t write_model(const kiln_model_ir_t *ir, sink_t *s)
{
    const kiln_graph_t *g = ir->graph;
    if (!g)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the model has no graph to write");
    layout_t l = {.n = g->n_initializers};
    kiln_status_t st = KILN_OK;
    pb_put_varint_field(&l.model, W_MODEL_IR_VERSION, (uint64_t)ir->ir_version);
    if (ir->producer_name && ir->producer_name[0])
        pb_put_string_field(&l.model, W_MODEL_PRODUCER_NAME, ir->producer_name);
    if (ir->producer_version && ir->producer_version[0])
        pb_put_string_field(&l.model, W_MODEL_PRODUCER_VERSION, ir->producer_version);
    for (int i = 0; i < ir->n_opsets; i++) {
        pb_writer_t op = {0};
        if (ir->opsets[i].domain && ir->opsets[i].domain[0])
            pb_put_string_field(&op, W_OPSET_DOMAIN, ir->opsets[i].domain);
        pb_put_varint_field(&op, W_OPSET_VERSION, (uint64_t)ir->opsets[i].version);
        pb_put_message_field(&l.model, W_MODEL_OPSET_IMPORT, &op);
    }
    if ((st = write_graph_body(&l.graph, g, false, 0)))
        goto done;
    if (ir->ir_version < 4)
        declare_initializers_as_inputs(&l.graph, g);
    l.headers = calloc((size_t)l.n + 1, sizeof *l.headers);
    l.pads = calloc((size_t)l.n + 1, sizeof *l.pads);
    if (!l.headers || !l.pads) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory writing the model");
        goto done;
    }
    /* Padding one tensor can lengthen a varint and shift the ones after
     * it; a few passes settle.  If they do not, the file is still valid,
     * only some weights will be copied when loaded. */
    for (int pass = 0; pass < 8 && !layout_pass(&l, g); pass++)
        ;
    layout_pass(&l, g); /* headers match the final pads */
    bool failed = l.model.failed || l.graph.failed;
    for (int i = 0; i < l.n; i++)
        failed |= l.headers[i].failed;
    if (failed) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory writing the model");
        goto done;
    }
    if (l.graph_len > PB_MAX_MESSAGE) {
        st = kiln_fail(KILN_ERR_UNSUPPORTED, "the graph is %zu bytes; ONNX files without external data are limited to 2 GiB",
                       l.graph_len);
        goto done;
    }
    sink_put(s, l.model.buf, l.model.len);
    sink_varint_field_header(s, W_MODEL_GRAPH, l.graph_len);
    sink_put(s, l.graph.buf, l.graph.len);
    for (int i = 0; i < l.n; i++) {
        const kiln_tensor_t *t = g->initializers[i];
        sink_varint_field_header(s, W_GRAPH_INITIALIZER, tensor_message_len(&l, g, i));
        sink_put(s, l.headers[i].buf, l.headers[i].len);
        if (tensor_payload(t))
            sink_put(s, t->data, t->nbytes);
    }
    if (s->failed)
        st = kiln_fail(s->file ? KILN_ERR_IO : KILN_ERR_NO_MEMORY, "writing the model failed");
done:
    layout_free(&l);
    return st;
}

kiln_status_t kiln_onnx_write_bytes(const kiln_model_ir_t *ir, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    pb_writer_t buf = {0};
    sink_t s = {.buf = &buf};
    kiln_status_t st = write_model(ir, &s);
    if (st) {
        pb_writer_free(&buf);
        return st;
    }
    *out = buf.buf;
    *out_len = buf.len;
    if (!*out) /* an empty model is still a buffer the caller frees */
        *out = malloc(1);
    return *out ? KILN_OK : kiln_fail(KILN_ERR_NO_MEMORY, "out of memory writing the model");
}

kiln_status_t kiln_onnx_write_file(const kiln_model_ir_t *ir, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    sink_t s = {.file = f};
    kiln_status_t st = write_model(ir, &s);
    if (fclose(f) != 0 && !st)
        st = kiln_fail(KILN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (st) {
        remove(path);
        return kiln_fail_prefix(st, "%s", path);
    }
    return KILN_OK;
}
