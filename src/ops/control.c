/*
 * control.c - control flow: If, Loop and Scan.
 *
 * Each runs its body subgraph through kiln_ctx_run_subgraph(), which gives
 * the body access to values of the enclosing graph by name.  Loop and Scan
 * stack per-iteration "scan outputs" along a new leading axis; the pieces
 * are collected in a sequence and stacked once at the end.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

/* Reads a scalar bool/int condition tensor. */
static bool tensor_truth(const kiln_tensor_t *t)
{
    return t && t->count > 0 && kiln_tensor_get_f64(t, 0) != 0.0;
}

static kiln_status_t if_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *cond = kiln_ctx_input(ctx, 0);
    if (!cond || cond->count < 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "the condition must be a tensor with one element");
    const kiln_graph_t *branch = kiln_attr_graph(node, tensor_truth(cond) ? "then_branch" : "else_branch");
    if (!branch)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "missing then_branch/else_branch attribute");
    int n_out = branch->n_outputs;
    if (n_out < kiln_ctx_output_count(ctx))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "branch '%s' has %d outputs, the node %d", branch->name,
                             n_out, kiln_ctx_output_count(ctx));
    kiln_value_t **outs = calloc((size_t)n_out + 1, sizeof *outs);
    if (!outs)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    kiln_status_t st = kiln_ctx_run_subgraph(ctx, branch, 0, NULL, n_out, outs);
    for (int k = 0; k < n_out; k++) {
        if (!st && k < kiln_ctx_output_count(ctx)) {
            st = kiln_ctx_set_output_value(ctx, k, outs[k]);
            outs[k] = NULL;
        }
        kiln_value_free(outs[k]);
    }
    free(outs);
    return st;
}

/* Stacks the tensors of seq along a new axis 0 into a new tensor. */
static kiln_tensor_t *stack_along_new_axis(kiln_kernel_ctx_t *ctx, const kiln_value_t *seq, int out_index)
{
    if (seq->count == 0) {
        int64_t zero = 0;
        kiln_dtype_t d = seq->elem_dtype ? seq->elem_dtype : KILN_DTYPE_FLOAT32;
        kiln_tensor_t *t = kiln_tensor_new(d, 1, &zero);
        if (!t)
            kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for scan output %d", out_index);
        return t;
    }
    const kiln_tensor_t *first = seq->items[0];
    if (first->rank + 1 > KILN_MAX_RANK) {
        kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "scan output %d would exceed rank %d", out_index, KILN_MAX_RANK);
        return NULL;
    }
    for (int64_t i = 1; i < seq->count; i++)
        if (!kiln_shape_equal(seq->items[i], first) || seq->items[i]->dtype != first->dtype) {
            char a[128], b[128];
            kiln_ctx_fail(ctx, KILN_ERR_RUNTIME, "scan output %d changes shape between iterations: %s then %s",
                          out_index, kiln_shape_str(first->rank, first->dims, a, sizeof a),
                          kiln_shape_str(seq->items[i]->rank, seq->items[i]->dims, b, sizeof b));
            return NULL;
        }
    int64_t dims[KILN_MAX_RANK];
    dims[0] = seq->count;
    memcpy(dims + 1, first->dims, (size_t)first->rank * sizeof *dims);
    kiln_tensor_t *t = kiln_tensor_new(first->dtype, first->rank + 1, dims);
    if (!t) {
        kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "scan output %d is too large", out_index);
        return NULL;
    }
    for (int64_t i = 0; i < seq->count; i++) {
        if (first->dtype == KILN_DTYPE_STRING) {
            char **dst = (char **)t->data + i * first->count;
            char *const *src = seq->items[i]->data;
            for (int64_t k = 0; k < first->count; k++)
                dst[k] = strdup(src[k] ? src[k] : "");
        } else if (first->nbytes) {
            memcpy((char *)t->data + (size_t)i * first->nbytes, seq->items[i]->data, first->nbytes);
        }
    }
    return t;
}

static kiln_status_t loop_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_graph_t *body = kiln_attr_graph(node, "body");
    if (!body)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "missing body attribute");
    const kiln_tensor_t *max_trip = kiln_ctx_input(ctx, 0);
    const kiln_tensor_t *cond_in = kiln_ctx_input(ctx, 1);
    int n_carried = kiln_ctx_input_count(ctx) - 2;
    if (n_carried < 0)
        n_carried = 0;
    if (body->n_inputs != n_carried + 2 || body->n_outputs < n_carried + 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL,
                             "body takes %d inputs and gives %d outputs; the loop carries %d values", body->n_inputs,
                             body->n_outputs, n_carried);
    int n_scan = body->n_outputs - 1 - n_carried;
    int64_t trips = max_trip && max_trip->count ? kiln_tensor_get_i64(max_trip, 0) : INT64_MAX;
    bool cond = cond_in ? tensor_truth(cond_in) : true;

    kiln_status_t st = KILN_OK;
    kiln_value_t **carried = calloc((size_t)n_carried + 1, sizeof *carried);
    kiln_value_t **scans = calloc((size_t)n_scan + 1, sizeof *scans);
    kiln_value_t **outs = calloc((size_t)body->n_outputs + 1, sizeof *outs);
    const kiln_value_t **ins = calloc((size_t)body->n_inputs + 1, sizeof *ins);
    kiln_tensor_t *iter_t = NULL, *cond_t = NULL;
    kiln_value_t iter_v = {.kind = KILN_VALUE_TENSOR}, cond_v = {.kind = KILN_VALUE_TENSOR};
    if (!carried || !scans || !outs || !ins) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int k = 0; k < n_carried; k++) {
        const kiln_value_t *v = kiln_ctx_input_value(ctx, k + 2);
        carried[k] = v ? kiln_value_clone(v) : kiln_value_new_none(KILN_VALUE_TENSOR, KILN_DTYPE_UNDEFINED);
        if (!carried[k]) {
            st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
    }
    for (int k = 0; k < n_scan; k++) {
        int out_v = body->outputs[1 + n_carried + k];
        scans[k] = kiln_value_new_sequence(body->values[out_v].type.dtype);
        if (!scans[k]) {
            st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
    }
    iter_t = kiln_tensor_new(KILN_DTYPE_INT64, 0, NULL);
    cond_t = kiln_tensor_new(KILN_DTYPE_BOOL, 0, NULL);
    if (!iter_t || !cond_t) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    iter_v.tensor = iter_t;
    cond_v.tensor = cond_t;
    for (int64_t i = 0; i < trips && cond; i++) {
        *(int64_t *)iter_t->data = i;
        *(uint8_t *)cond_t->data = cond;
        ins[0] = &iter_v;
        ins[1] = &cond_v;
        for (int k = 0; k < n_carried; k++)
            ins[2 + k] = carried[k];
        memset(outs, 0, (size_t)body->n_outputs * sizeof *outs);
        st = kiln_ctx_run_subgraph(ctx, body, body->n_inputs, ins, body->n_outputs, outs);
        if (st)
            goto done;
        cond = outs[0] && outs[0]->kind == KILN_VALUE_TENSOR ? tensor_truth(outs[0]->tensor) : false;
        kiln_value_free(outs[0]);
        for (int k = 0; k < n_carried; k++) {
            kiln_value_free(carried[k]);
            carried[k] = outs[1 + k];
        }
        for (int k = 0; k < n_scan; k++) {
            kiln_value_t *piece = outs[1 + n_carried + k];
            if (piece->kind != KILN_VALUE_TENSOR) {
                kiln_value_free(piece);
                st = kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "scan output %d is not a tensor", k);
                for (int j = k + 1; j < n_scan; j++)
                    kiln_value_free(outs[1 + n_carried + j]);
                goto done;
            }
            st = kiln_sequence_insert(scans[k], -1, piece->tensor);
            piece->tensor = NULL;
            kiln_value_free(piece);
            if (st) {
                for (int j = k + 1; j < n_scan; j++)
                    kiln_value_free(outs[1 + n_carried + j]);
                goto done;
            }
        }
    }
    for (int k = 0; k < n_carried && !st; k++) {
        st = kiln_ctx_set_output_value(ctx, k, carried[k]);
        carried[k] = NULL;
    }
    for (int k = 0; k < n_scan && !st; k++) {
        kiln_tensor_t *stacked = stack_along_new_axis(ctx, scans[k], k);
        if (!stacked) {
            st = kiln_ctx_status(ctx);
            break;
        }
        st = kiln_ctx_set_output_value(ctx, n_carried + k, kiln_value_from_tensor(stacked));
    }
done:
    for (int k = 0; carried && k < n_carried; k++)
        kiln_value_free(carried[k]);
    for (int k = 0; scans && k < n_scan; k++)
        kiln_value_free(scans[k]);
    free(carried);
    free(scans);
    free(outs);
    free(ins);
    kiln_tensor_free(iter_t);
    kiln_tensor_free(cond_t);
    return st;
}

/* Places the stacked pieces (new axis 0) so that the stacking axis becomes
 * `axis`, reversed when reverse is set. */
static kiln_tensor_t *stack_scan_output(const kiln_value_t *seq, int axis, bool reverse, kiln_dtype_t dtype)
{
    if (seq->count == 0) {
        int64_t zero = 0;
        return kiln_tensor_new(dtype ? dtype : KILN_DTYPE_FLOAT32, 1, &zero);
    }
    const kiln_tensor_t *first = seq->items[0];
    int rank = first->rank + 1;
    if (axis < 0)
        axis += rank;
    if (axis < 0 || axis >= rank || rank > KILN_MAX_RANK)
        return NULL;
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0, s = 0; d < rank; d++)
        dims[d] = d == axis ? seq->count : first->dims[s++];
    kiln_tensor_t *out = kiln_tensor_new(first->dtype, rank, dims);
    if (!out)
        return NULL;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= dims[d];
    for (int d = axis + 1; d < rank; d++)
        inner *= dims[d];
    size_t es = kiln_dtype_size(first->dtype);
    for (int64_t i = 0; i < seq->count; i++) {
        const kiln_tensor_t *piece = seq->items[reverse ? seq->count - 1 - i : i];
        if (piece->count != first->count) {
            kiln_tensor_free(out);
            return NULL;
        }
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)out->data + ((o * seq->count + i) * inner) * (int64_t)es,
                   (const char *)piece->data + o * inner * (int64_t)es, (size_t)inner * es);
    }
    return out;
}

static kiln_status_t scan_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_graph_t *body = kiln_attr_graph(node, "body");
    bool v8 = kiln_ctx_opset(ctx) < 9;
    int first_input = v8 ? 1 : 0; /* opset 8 has sequence_lens first */
    if (!body)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "missing body attribute");
    int n_scan_in = (int)kiln_attr_int(node, "num_scan_inputs", 0);
    int n_in = kiln_ctx_input_count(ctx) - first_input;
    int n_state = n_in - n_scan_in;
    if (n_scan_in <= 0 || n_state < 0 || body->n_inputs != n_in || body->n_outputs < n_state)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "num_scan_inputs %d does not fit %d inputs and a body of %d",
                             n_scan_in, n_in, body->n_inputs);
    if (v8 && kiln_ctx_input(ctx, 0))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "sequence_lens is not supported");
    int n_scan_out = body->n_outputs - n_state;
    const int64_t *in_axes = NULL, *in_dirs = NULL, *out_axes = NULL, *out_dirs = NULL;
    int64_t n_in_axes = kiln_attr_ints(node, "scan_input_axes", &in_axes);
    int64_t n_in_dirs = kiln_attr_ints(node, v8 ? "directions" : "scan_input_directions", &in_dirs);
    int64_t n_out_axes = kiln_attr_ints(node, "scan_output_axes", &out_axes);
    int64_t n_out_dirs = kiln_attr_ints(node, "scan_output_directions", &out_dirs);

    /* In opset 8 every input has a batch axis 0; kiln runs batch size 1
     * per batch entry by slicing it off first. */
    int64_t batch = 1;
    if (v8) {
        const kiln_tensor_t *t0 = kiln_ctx_input(ctx, first_input + n_state);
        if (!t0 || t0->rank < 2)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "opset-8 scan inputs need [batch, seq, ...]");
        batch = t0->dims[0];
    }
    kiln_status_t st = KILN_OK;
    kiln_value_t **state = calloc((size_t)n_state + 1, sizeof *state);
    kiln_value_t **scan_seqs = calloc((size_t)n_scan_out + 1, sizeof *scan_seqs);
    kiln_value_t **outs = calloc((size_t)body->n_outputs + 1, sizeof *outs);
    const kiln_value_t **ins = calloc((size_t)body->n_inputs + 1, sizeof *ins);
    kiln_value_t *slices = calloc((size_t)n_scan_in + 1, sizeof *slices);
    kiln_value_t **batch_state = calloc((size_t)(n_state + 1) * (size_t)(batch + 1), sizeof *batch_state);
    kiln_value_t **batch_scan = calloc((size_t)(n_scan_out + 1) * (size_t)(batch + 1), sizeof *batch_scan);
    if (!state || !scan_seqs || !outs || !ins || !slices || !batch_state || !batch_scan) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int64_t b = 0; b < batch && !st; b++) {
        /* initial state and the scan inputs of this batch entry */
        kiln_tensor_t **scan_inputs = calloc((size_t)n_scan_in + 1, sizeof *scan_inputs);
        if (!scan_inputs) {
            st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
            break;
        }
        for (int k = 0; k < n_state && !st; k++) {
            const kiln_tensor_t *t = kiln_ctx_input(ctx, first_input + k);
            if (!t) {
                st = kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "state input %d is missing", k);
                break;
            }
            kiln_tensor_t *c = v8 ? kiln_tensor_slice_axis(t, 0, b, 1, false) : kiln_tensor_clone(t);
            state[k] = c ? kiln_value_from_tensor(c) : NULL;
            if (!state[k])
                st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        }
        int64_t seq_len = -1;
        for (int k = 0; k < n_scan_in && !st; k++) {
            const kiln_tensor_t *t = kiln_ctx_input(ctx, first_input + n_state + k);
            if (!t) {
                st = kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scan input %d is missing", k);
                break;
            }
            scan_inputs[k] = v8 ? kiln_tensor_slice_axis(t, 0, b, 1, false) : kiln_tensor_clone(t);
            if (!scan_inputs[k]) {
                st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
                break;
            }
            int64_t axis = (!v8 && k < n_in_axes) ? in_axes[k] : 0;
            if (axis < 0)
                axis += scan_inputs[k]->rank;
            if (axis < 0 || axis >= scan_inputs[k]->rank) {
                st = kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scan input %d axis is out of range", k);
                break;
            }
            if (seq_len >= 0 && scan_inputs[k]->dims[axis] != seq_len) {
                st = kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "scan inputs have different sequence lengths");
                break;
            }
            seq_len = scan_inputs[k]->dims[axis];
        }
        for (int k = 0; k < n_scan_out && !st; k++) {
            scan_seqs[k] = kiln_value_new_sequence(KILN_DTYPE_UNDEFINED);
            if (!scan_seqs[k])
                st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        }
        for (int64_t i = 0; i < seq_len && !st; i++) {
            for (int k = 0; k < n_state; k++)
                ins[k] = state[k];
            for (int k = 0; k < n_scan_in && !st; k++) {
                int64_t axis = (!v8 && k < n_in_axes) ? in_axes[k] : 0;
                if (axis < 0)
                    axis += scan_inputs[k]->rank;
                bool reverse = k < n_in_dirs && in_dirs[k] == 1;
                slices[k].kind = KILN_VALUE_TENSOR;
                slices[k].tensor = kiln_tensor_slice_axis(scan_inputs[k], (int)axis, reverse ? seq_len - 1 - i : i, 1, false);
                if (!slices[k].tensor)
                    st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
                ins[n_state + k] = &slices[k];
            }
            if (!st) {
                memset(outs, 0, (size_t)body->n_outputs * sizeof *outs);
                st = kiln_ctx_run_subgraph(ctx, body, body->n_inputs, ins, body->n_outputs, outs);
            }
            for (int k = 0; k < n_scan_in; k++) {
                kiln_tensor_free(slices[k].tensor);
                slices[k].tensor = NULL;
            }
            if (st)
                break;
            for (int k = 0; k < n_state; k++) {
                kiln_value_free(state[k]);
                state[k] = outs[k];
            }
            for (int k = 0; k < n_scan_out; k++) {
                kiln_value_t *piece = outs[n_state + k];
                if (!st && piece->kind == KILN_VALUE_TENSOR) {
                    st = kiln_sequence_insert(scan_seqs[k], -1, piece->tensor);
                    piece->tensor = NULL;
                } else if (!st) {
                    st = kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "scan output %d is not a tensor", k);
                }
                kiln_value_free(piece);
            }
        }
        for (int k = 0; k < n_scan_in; k++)
            kiln_tensor_free(scan_inputs[k]);
        free(scan_inputs);
        /* keep this batch entry's results */
        for (int k = 0; k < n_state; k++) {
            batch_state[b * n_state + k] = state[k];
            state[k] = NULL;
        }
        for (int k = 0; k < n_scan_out; k++) {
            batch_scan[b * n_scan_out + k] = scan_seqs[k];
            scan_seqs[k] = NULL;
        }
    }
    /* Outputs: states, then scan outputs; opset 8 stacks the batch back. */
    for (int k = 0; k < n_state && !st; k++) {
        if (!v8) {
            st = kiln_ctx_set_output_value(ctx, k, batch_state[k]);
            batch_state[k] = NULL;
            continue;
        }
        kiln_value_t *seq = kiln_value_new_sequence(KILN_DTYPE_UNDEFINED);
        for (int64_t b = 0; seq && b < batch && !st; b++) {
            kiln_value_t *v = batch_state[b * n_state + k];
            st = kiln_sequence_insert(seq, -1, v->tensor);
            v->tensor = NULL;
        }
        kiln_tensor_t *t = seq && !st ? stack_scan_output(seq, 0, false, seq->elem_dtype) : NULL;
        kiln_value_free(seq);
        if (!st)
            st = t ? kiln_ctx_set_output_value(ctx, k, kiln_value_from_tensor(t))
                   : kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "cannot stack state output %d", k);
    }
    for (int k = 0; k < n_scan_out && !st; k++) {
        int out_v = body->outputs[n_state + k];
        kiln_dtype_t dtype = body->values[out_v].type.dtype;
        kiln_tensor_t *t;
        if (!v8) {
            int64_t axis = k < n_out_axes ? out_axes[k] : 0;
            bool reverse = k < n_out_dirs && out_dirs[k] == 1;
            t = stack_scan_output(batch_scan[k], (int)axis, reverse, dtype);
        } else {
            kiln_value_t *seq = kiln_value_new_sequence(KILN_DTYPE_UNDEFINED);
            for (int64_t b = 0; seq && b < batch && !st; b++) {
                kiln_value_t *per = batch_scan[b * n_scan_out + k];
                kiln_tensor_t *stacked = stack_scan_output(per, 0, false, dtype);
                st = stacked ? kiln_sequence_insert(seq, -1, stacked) : KILN_ERR_NO_MEMORY;
            }
            t = seq && !st ? stack_scan_output(seq, 0, false, dtype) : NULL;
            kiln_value_free(seq);
        }
        if (!st)
            st = t ? kiln_ctx_set_output_value(ctx, n_state + k, kiln_value_from_tensor(t))
                   : kiln_ctx_fail(ctx, KILN_ERR_RUNTIME, "cannot assemble scan output %d", k);
    }
done:
    for (int k = 0; state && k < n_state; k++)
        kiln_value_free(state[k]);
    for (int k = 0; scan_seqs && k < n_scan_out; k++)
        kiln_value_free(scan_seqs[k]);
    for (int64_t i = 0; batch_state && i < (int64_t)n_state * batch; i++)
        kiln_value_free(batch_state[i]);
    for (int64_t i = 0; batch_scan && i < (int64_t)n_scan_out * batch; i++)
        kiln_value_free(batch_scan[i]);
    free(state);
    free(scan_seqs);
    free(outs);
    free(ins);
    free(slices);
    free(batch_state);
    free(batch_scan);
    return st;
}

void kiln_ops_register_control(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "If", .since = 1, .run = if_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Loop", .since = 1, .run = loop_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "Scan", .since = 8, .run = scan_run});
}
