/*
 * broadcast.c - numpy-style broadcast shapes and the strided walk that
 * broadcasting kernels use (see broadcast.h for the model).
 */
#include "ops/broadcast.h"

#include <string.h>

#include "core/error.h"

kiln_status_t kiln_broadcast_shape(int n, const int *ranks, const int64_t *const *dims, int *out_rank,
                                   int64_t *out_dims)
{
    int rank = 0;
    for (int k = 0; k < n; k++)
        if (ranks[k] > rank)
            rank = ranks[k];
    for (int d = 0; d < rank; d++)
        out_dims[d] = 1;
    /* For each output dim, the first input with a size != 1 there decides;
     * remembered so the error names the two shapes that disagree. */
    int decider[KILN_MAX_RANK];
    for (int d = 0; d < rank; d++)
        decider[d] = -1;
    for (int k = 0; k < n; k++) {
        int shift = rank - ranks[k];
        for (int d = 0; d < ranks[k]; d++) {
            int64_t size = dims[k][d];
            int od = d + shift;
            if (size == 1)
                continue;
            if (decider[od] < 0) {
                out_dims[od] = size;
                decider[od] = k;
            } else if (out_dims[od] != size) {
                int j = decider[od];
                char a[256], b[256];
                kiln_shape_str(ranks[j], dims[j], a, sizeof a);
                kiln_shape_str(ranks[k], dims[k], b, sizeof b);
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                                 "cannot broadcast shapes %s (input %d) and %s (input %d): "
                                 "dim %d is %lld vs %lld",
                                 a, j, b, k, od, (long long)out_dims[od], (long long)size);
            }
        }
    }
    *out_rank = rank;
    return KILN_OK;
}

kiln_status_t kiln_broadcast_tensors(int n, const kiln_tensor_t *const *ts, int *out_rank, int64_t *out_dims)
{
    int ranks[KILN_BCAST_MAX_INPUTS];
    const int64_t *dims[KILN_BCAST_MAX_INPUTS];
    if (n > KILN_BCAST_MAX_INPUTS)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "broadcast of %d inputs (at most %d)", n,
                         KILN_BCAST_MAX_INPUTS);
    for (int k = 0; k < n; k++) {
        ranks[k] = ts[k]->rank;
        dims[k] = ts[k]->dims;
    }
    return kiln_broadcast_shape(n, ranks, dims, out_rank, out_dims);
}

/* Element strides of input k over the output shape: the input's row-major
 * strides right-aligned, 0 where the input has size 1 or lacks the dim. */
static void input_strides(int rank_in, const int64_t *dims_in, int rank, int64_t *strides)
{
    int shift = rank - rank_in;
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        int id = d - shift;
        if (id < 0 || dims_in[id] == 1) {
            strides[d] = 0;
        } else {
            strides[d] = s;
            s *= dims_in[id];
        }
    }
}

/* Dims d and d+1 merge when every input steps through them as one dim:
 * stride[d] == stride[d+1] * dims[d+1] (holds for contiguous and for
 * both-stretched). */
static bool dims_mergeable(const kiln_bcast_t *b, int d)
{
    for (int k = 0; k < b->n; k++)
        if (b->strides[k][d] != b->strides[k][d + 1] * b->dims[d + 1])
            return false;
    return true;
}

void kiln_bcast_init(kiln_bcast_t *b, int n, const int *ranks, const int64_t *const *dims, int out_rank,
                     const int64_t *out_dims)
{
    int64_t full[KILN_BCAST_MAX_INPUTS][KILN_MAX_RANK];
    memset(b, 0, sizeof *b);
    b->n = n;
    b->count = 1;
    b->same_shape = true;
    for (int d = 0; d < out_rank; d++)
        b->count *= out_dims[d];
    for (int k = 0; k < n; k++) {
        input_strides(ranks[k], dims[k], out_rank, full[k]);
        if (ranks[k] != out_rank || memcmp(dims[k], out_dims, (size_t)out_rank * sizeof *out_dims))
            b->same_shape = false;
    }
    /* Keep only output dims of size != 1, then merge neighbours. */
    int r = 0;
    for (int d = 0; d < out_rank; d++) {
        if (out_dims[d] == 1)
            continue;
        b->dims[r] = out_dims[d];
        for (int k = 0; k < n; k++)
            b->strides[k][r] = full[k][d];
        r++;
    }
    if (r == 0) {
        b->dims[0] = b->count; /* 1, or 0 for an empty output */
        for (int k = 0; k < n; k++)
            b->strides[k][0] = 0;
        r = 1;
    }
    b->rank = r;
    for (int d = b->rank - 2; d >= 0; d--) {
        if (!dims_mergeable(b, d))
            continue;
        b->dims[d] *= b->dims[d + 1];
        for (int k = 0; k < n; k++)
            b->strides[k][d] = b->strides[k][d + 1];
        for (int e = d + 1; e + 1 < b->rank; e++) {
            b->dims[e] = b->dims[e + 1];
            for (int k = 0; k < n; k++)
                b->strides[k][e] = b->strides[k][e + 1];
        }
        b->rank--;
    }
    b->inner = b->dims[b->rank - 1];
}

kiln_status_t kiln_bcast_tensors(kiln_bcast_t *b, int n, const kiln_tensor_t *const *ts, int *out_rank,
                                 int64_t *out_dims)
{
    kiln_status_t st = kiln_broadcast_tensors(n, ts, out_rank, out_dims);
    if (st != KILN_OK)
        return st;
    int ranks[KILN_BCAST_MAX_INPUTS];
    const int64_t *dims[KILN_BCAST_MAX_INPUTS];
    for (int k = 0; k < n; k++) {
        ranks[k] = ts[k]->rank;
        dims[k] = ts[k]->dims;
    }
    kiln_bcast_init(b, n, ranks, dims, *out_rank, out_dims);
    return KILN_OK;
}

void kiln_bcast_rows(const kiln_bcast_t *b, int64_t begin, int64_t end, kiln_bcast_row_fn fn, void *arg)
{
    if (begin >= end)
        return;
    int last = b->rank - 1;
    int64_t idx[KILN_MAX_RANK];
    int64_t off[KILN_BCAST_MAX_INPUTS] = {0};
    int64_t step[KILN_BCAST_MAX_INPUTS];
    /* Multi-index and input offsets of the first element. */
    int64_t rem = begin;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % b->dims[d];
        rem /= b->dims[d];
        for (int k = 0; k < b->n; k++)
            off[k] += idx[d] * b->strides[k][d];
    }
    for (int k = 0; k < b->n; k++)
        step[k] = b->strides[k][last];
    int64_t pos = begin;
    while (pos < end) {
        int64_t len = b->inner - idx[last];
        if (len > end - pos)
            len = end - pos;
        fn(arg, pos, off, step, len);
        pos += len;
        if (pos >= end)
            break;
        /* The run ended the row: back to its start, then carry upwards. */
        for (int k = 0; k < b->n; k++)
            off[k] -= idx[last] * step[k];
        idx[last] = 0;
        for (int d = last - 1; d >= 0; d--) {
            idx[d]++;
            for (int k = 0; k < b->n; k++)
                off[k] += b->strides[k][d];
            if (idx[d] < b->dims[d])
                break;
            for (int k = 0; k < b->n; k++)
                off[k] -= b->dims[d] * b->strides[k][d];
            idx[d] = 0;
        }
    }
}
