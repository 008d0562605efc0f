/*
 * sequence.c - sequence and optional values: SequenceEmpty,
 * SequenceConstruct, SequenceInsert, SequenceAt, SequenceErase,
 * SequenceLength, SplitToSequence, ConcatFromSequence, SequenceMap,
 * Optional, OptionalHasElement, OptionalGetElement.
 *
 * A sequence is a kiln_value_t of kind SEQUENCE that owns its tensors; an
 * empty optional is a value of kind NONE.  Ops that change a sequence build
 * a new one (values are immutable once produced).
 */
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

static kiln_status_t need_sequence(kiln_kernel_ctx_t *ctx, int i, const kiln_value_t **out)
{
    const kiln_value_t *v = kiln_ctx_input_value(ctx, i);
    if (!v || v->kind != KILN_VALUE_SEQUENCE)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input %d must be a sequence", i);
    *out = v;
    return KILN_OK;
}

/* Normalizes a position in [-n, n] (insert) or [-n, n-1] (at/erase). */
static kiln_status_t seq_position(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *pos, int64_t n, bool allow_end,
                                  int64_t *out)
{
    if (!pos) {
        *out = allow_end ? n : n - 1;
        return KILN_OK;
    }
    if (pos->count != 1 || !kiln_dtype_is_integer(pos->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "position must be one integer");
    int64_t p = kiln_tensor_get_i64(pos, 0);
    int64_t limit = allow_end ? n : n - 1;
    if (p < -n || p > limit)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "position %lld is outside a sequence of %lld",
                             (long long)p, (long long)n);
    *out = p < 0 ? p + n : p;
    return KILN_OK;
}

static kiln_status_t sequence_empty_run(kiln_kernel_ctx_t *ctx)
{
    kiln_dtype_t d = (kiln_dtype_t)kiln_attr_int(kiln_ctx_node(ctx), "dtype", KILN_DTYPE_FLOAT32);
    return kiln_ctx_set_output_value(ctx, 0, kiln_value_new_sequence(d));
}

static kiln_status_t sequence_construct_run(kiln_kernel_ctx_t *ctx)
{
    int n = kiln_ctx_input_count(ctx);
    const kiln_tensor_t *first = kiln_ctx_input(ctx, 0);
    kiln_value_t *seq = kiln_value_new_sequence(first ? first->dtype : KILN_DTYPE_UNDEFINED);
    if (!seq)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < n; i++) {
        const kiln_tensor_t *t = kiln_ctx_input(ctx, i);
        if (!t || t->dtype != first->dtype) {
            kiln_value_free(seq);
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input %d must be a tensor of %s", i,
                                 kiln_dtype_name(first ? first->dtype : KILN_DTYPE_UNDEFINED));
        }
        kiln_tensor_t *c = kiln_tensor_clone(t);
        if (!c || kiln_sequence_insert(seq, -1, c) != KILN_OK) {
            kiln_value_free(seq);
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        }
    }
    return kiln_ctx_set_output_value(ctx, 0, seq);
}

static kiln_status_t sequence_insert_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *in = NULL;
    kiln_status_t st = need_sequence(ctx, 0, &in);
    if (st)
        return st;
    const kiln_tensor_t *t = kiln_ctx_input(ctx, 1);
    if (!t)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input 1 must be a tensor");
    if (in->count && in->elem_dtype != KILN_DTYPE_UNDEFINED && t->dtype != in->elem_dtype)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "tensor of %s inserted in a sequence of %s",
                             kiln_dtype_name(t->dtype), kiln_dtype_name(in->elem_dtype));
    int64_t pos;
    if ((st = seq_position(ctx, kiln_ctx_input(ctx, 2), in->count, true, &pos)))
        return st;
    kiln_value_t *seq = kiln_value_clone(in);
    kiln_tensor_t *c = kiln_tensor_clone(t);
    if (!seq || !c || kiln_sequence_insert(seq, pos, c) != KILN_OK) {
        kiln_value_free(seq);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    }
    seq->elem_dtype = t->dtype;
    return kiln_ctx_set_output_value(ctx, 0, seq);
}

static kiln_status_t sequence_at_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *in = NULL;
    kiln_status_t st = need_sequence(ctx, 0, &in);
    if (st)
        return st;
    int64_t pos;
    if (!kiln_ctx_input(ctx, 1))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "position is required");
    if ((st = seq_position(ctx, kiln_ctx_input(ctx, 1), in->count, false, &pos)))
        return st;
    kiln_tensor_t *c = kiln_tensor_clone(in->items[pos]);
    return kiln_ctx_set_output_value(ctx, 0, c ? kiln_value_from_tensor(c) : NULL);
}

static kiln_status_t sequence_erase_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *in = NULL;
    kiln_status_t st = need_sequence(ctx, 0, &in);
    if (st)
        return st;
    int64_t pos;
    if (in->count == 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot erase from an empty sequence");
    if ((st = seq_position(ctx, kiln_ctx_input(ctx, 1), in->count, false, &pos)))
        return st;
    kiln_value_t *seq = kiln_value_clone(in);
    if (!seq)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    kiln_tensor_free(seq->items[pos]);
    memmove(seq->items + pos, seq->items + pos + 1, (size_t)(seq->count - pos - 1) * sizeof *seq->items);
    seq->count--;
    return kiln_ctx_set_output_value(ctx, 0, seq);
}

static kiln_status_t sequence_length_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *in = NULL;
    kiln_status_t st = need_sequence(ctx, 0, &in);
    if (st)
        return st;
    kiln_tensor_t *t = kiln_ctx_output(ctx, 0, KILN_DTYPE_INT64, 0, NULL);
    if (!t)
        return kiln_ctx_status(ctx);
    *(int64_t *)t->data = in->count;
    return KILN_OK;
}

static kiln_status_t split_to_sequence_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *split = kiln_ctx_input(ctx, 1);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input must be a tensor");
    int64_t axis = kiln_attr_int(node, "axis", 0);
    if (axis < 0)
        axis += x->rank;
    if (axis < 0 || axis >= x->rank)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis is out of range for rank %d", x->rank);
    int64_t dim = x->dims[axis];
    kiln_value_t *seq = kiln_value_new_sequence(x->dtype);
    if (!seq)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    kiln_status_t st = KILN_OK;
    if (!split) {
        bool keep = kiln_attr_int(node, "keepdims", 1) != 0;
        for (int64_t i = 0; i < dim && !st; i++) {
            kiln_tensor_t *piece = kiln_tensor_slice_axis(x, (int)axis, i, 1, keep);
            st = piece ? kiln_sequence_insert(seq, -1, piece) : KILN_ERR_NO_MEMORY;
        }
    } else if (split->rank == 0 || split->count == 1) {
        int64_t chunk = kiln_tensor_get_i64(split, 0);
        if (chunk <= 0)
            st = kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "split size %lld must be positive", (long long)chunk);
        for (int64_t b = 0; b < dim && !st; b += chunk) {
            int64_t len = b + chunk <= dim ? chunk : dim - b;
            kiln_tensor_t *piece = kiln_tensor_slice_axis(x, (int)axis, b, len, true);
            st = piece ? kiln_sequence_insert(seq, -1, piece) : KILN_ERR_NO_MEMORY;
        }
    } else {
        int64_t total = 0;
        for (int64_t i = 0; i < split->count; i++) {
            int64_t v = kiln_tensor_get_i64(split, i);
            if (v < 0)
                total = -1;
            if (total >= 0)
                total += v;
        }
        if (total != dim)
            st = kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "split sizes add up to %lld, the axis has %lld",
                               (long long)total, (long long)dim);
        for (int64_t i = 0, b = 0; i < split->count && !st; i++) {
            int64_t len = kiln_tensor_get_i64(split, i);
            kiln_tensor_t *piece = kiln_tensor_slice_axis(x, (int)axis, b, len, true);
            st = piece ? kiln_sequence_insert(seq, -1, piece) : KILN_ERR_NO_MEMORY;
            b += len;
        }
    }
    if (st) {
        kiln_value_free(seq);
        return st == KILN_ERR_NO_MEMORY ? kiln_ctx_fail(ctx, st, "out of memory") : st;
    }
    return kiln_ctx_set_output_value(ctx, 0, seq);
}

static kiln_status_t concat_from_sequence_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_value_t *in = NULL;
    kiln_status_t st = need_sequence(ctx, 0, &in);
    if (st)
        return st;
    if (in->count == 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot concatenate an empty sequence");
    bool new_axis = kiln_attr_int(node, "new_axis", 0) != 0;
    const kiln_tensor_t *first = in->items[0];
    int out_rank = first->rank + (new_axis ? 1 : 0);
    int64_t axis = kiln_attr_int(node, "axis", 0);
    if (axis < 0)
        axis += out_rank;
    if (axis < 0 || axis >= out_rank || out_rank > KILN_MAX_RANK)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis is out of range");
    int64_t dims[KILN_MAX_RANK];
    int64_t total = 0;
    for (int64_t i = 0; i < in->count; i++) {
        const kiln_tensor_t *t = in->items[i];
        if (t->rank != first->rank || t->dtype != first->dtype)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "sequence tensors differ in rank or dtype");
        for (int d = 0; d < t->rank; d++)
            if ((new_axis || d != axis) && t->dims[d] != first->dims[d])
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "sequence tensors differ in dim %d", d);
        total += new_axis ? 1 : t->dims[axis];
    }
    for (int d = 0, s = 0; d < out_rank; d++) {
        if (d == axis) {
            dims[d] = total;
            if (!new_axis)
                s++;
        } else {
            dims[d] = first->dims[s++];
        }
    }
    kiln_tensor_t *out = kiln_ctx_output(ctx, 0, first->dtype, out_rank, dims);
    if (!out)
        return kiln_ctx_status(ctx);
    int64_t outer = 1;
    for (int d = 0; d < axis; d++)
        outer *= dims[d];
    size_t es = kiln_dtype_size(first->dtype);
    int64_t offset = 0; /* elements along the axis written so far, times inner */
    int64_t out_row = total;
    int64_t inner = 1;
    for (int d = (int)axis + 1; d < out_rank; d++)
        inner *= dims[d];
    for (int64_t i = 0; i < in->count; i++) {
        const kiln_tensor_t *t = in->items[i];
        int64_t len = new_axis ? 1 : t->dims[axis];
        for (int64_t o = 0; o < outer; o++) {
            const char *src = (const char *)t->data + (o * len * inner) * (int64_t)es;
            char *dst = (char *)out->data + ((o * out_row + offset) * inner) * (int64_t)es;
            if (t->dtype == KILN_DTYPE_STRING)
                for (int64_t k = 0; k < len * inner; k++)
                    ((char **)dst)[k] = strdup(((char *const *)src)[k]);
            else
                if (len * inner > 0)
                    memcpy(dst, src, (size_t)(len * inner) * es);
        }
        offset += len;
    }
    return KILN_OK;
}

static kiln_status_t sequence_map_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_graph_t *body = kiln_attr_graph(node, "body");
    const kiln_value_t *in = NULL;
    kiln_status_t st = need_sequence(ctx, 0, &in);
    if (st)
        return st;
    if (!body)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "missing body attribute");
    int n_in = kiln_ctx_input_count(ctx);
    int n_out = body->n_outputs;
    if (body->n_inputs != n_in || n_out != kiln_ctx_output_count(ctx))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "body takes %d inputs and gives %d outputs", body->n_inputs,
                             n_out);
    kiln_value_t **results = calloc((size_t)n_out + 1, sizeof *results);
    kiln_value_t **outs = calloc((size_t)n_out + 1, sizeof *outs);
    const kiln_value_t **ins = calloc((size_t)n_in + 1, sizeof *ins);
    kiln_value_t *items = calloc((size_t)n_in + 1, sizeof *items);
    if (!results || !outs || !ins || !items) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int k = 0; k < n_out && !st; k++)
        if (!(results[k] = kiln_value_new_sequence(body->values[body->outputs[k]].type.dtype)))
            st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < in->count && !st; i++) {
        for (int k = 0; k < n_in && !st; k++) {
            const kiln_value_t *v = kiln_ctx_input_value(ctx, k);
            if (v && v->kind == KILN_VALUE_SEQUENCE) {
                if (v->count != in->count) {
                    st = kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "sequence inputs differ in length");
                    break;
                }
                items[k].kind = KILN_VALUE_TENSOR;
                items[k].tensor = v->items[i];
                ins[k] = &items[k];
            } else {
                ins[k] = v;
            }
        }
        if (st)
            break;
        memset(outs, 0, (size_t)n_out * sizeof *outs);
        st = kiln_ctx_run_subgraph(ctx, body, n_in, ins, n_out, outs);
        for (int k = 0; k < n_out && !st; k++) {
            if (outs[k]->kind != KILN_VALUE_TENSOR) {
                st = kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "body output %d is not a tensor", k);
                break;
            }
            st = kiln_sequence_insert(results[k], -1, outs[k]->tensor);
            outs[k]->tensor = NULL;
        }
        for (int k = 0; k < n_out; k++) {
            kiln_value_free(outs[k]);
            outs[k] = NULL;
        }
    }
    for (int k = 0; k < n_out && !st; k++) {
        st = kiln_ctx_set_output_value(ctx, k, results[k]);
        results[k] = NULL;
    }
done:
    for (int k = 0; results && k < n_out; k++)
        kiln_value_free(results[k]);
    free(results);
    free(outs);
    free(ins);
    free(items);
    return st;
}

static kiln_status_t optional_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *v = kiln_ctx_input_value(ctx, 0);
    if (v)
        return kiln_ctx_set_output_value(ctx, 0, kiln_value_clone(v));
    const kiln_attr_t *type = kiln_node_attr(kiln_ctx_node(ctx), "type");
    (void)type; /* the element type is not needed to represent "no value" */
    return kiln_ctx_set_output_value(ctx, 0, kiln_value_new_none(KILN_VALUE_TENSOR, KILN_DTYPE_UNDEFINED));
}

static kiln_status_t optional_has_element_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *v = kiln_ctx_input_value(ctx, 0);
    kiln_tensor_t *t = kiln_ctx_output(ctx, 0, KILN_DTYPE_BOOL, 0, NULL);
    if (!t)
        return kiln_ctx_status(ctx);
    *(uint8_t *)t->data = v && v->kind != KILN_VALUE_NONE;
    return KILN_OK;
}

static kiln_status_t optional_get_element_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_value_t *v = kiln_ctx_input_value(ctx, 0);
    if (!v || v->kind == KILN_VALUE_NONE)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "the optional input holds no value");
    return kiln_ctx_set_output_value(ctx, 0, kiln_value_clone(v));
}

void kiln_ops_register_sequence(kiln_registry_t *reg)
{
    static const struct { const char *op; int since; kiln_kernel_run_fn run; } ops[] = {
        {"SequenceEmpty", 11, sequence_empty_run},
        {"SequenceConstruct", 11, sequence_construct_run},
        {"SequenceInsert", 11, sequence_insert_run},
        {"SequenceAt", 11, sequence_at_run},
        {"SequenceErase", 11, sequence_erase_run},
        {"SequenceLength", 11, sequence_length_run},
        {"SplitToSequence", 11, split_to_sequence_run},
        {"ConcatFromSequence", 11, concat_from_sequence_run},
        {"SequenceMap", 17, sequence_map_run},
        {"Optional", 15, optional_run},
        {"OptionalHasElement", 15, optional_has_element_run},
        {"OptionalGetElement", 15, optional_get_element_run},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        kiln_register(reg, &(kiln_kernel_t){.op = ops[i].op, .since = ops[i].since, .run = ops[i].run});
}
