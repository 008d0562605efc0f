/*
 * tensor_util.c - helpers shared by the tensor-movement kernels (see
 * tensor_util.h): axis and integer-input reading, element copies that
 * duplicate strings, and the strided view copy behind Slice, Transpose,
 * Expand, Tile, Pad, DepthToSpace and SpaceToDepth.
 *
 * The strided copy first simplifies the view (drops unit dims, merges dims
 * that are contiguous in both source and destination), so a Transpose of
 * [N,H,W,C] to [N,C,H,W] becomes a batch of 2-D transposes and a Slice of
 * whole rows becomes one memcpy per row.  It then picks one of two loops:
 * rows (the innermost dim, memcpy when both sides are contiguous) or, when
 * the innermost two dims are a 2-D transpose, 32x32 blocks so that both the
 * reads and the writes stay within a few cache lines.  Work is split over
 * the session's threads by rows or row blocks.
 */
#include "ops/tensor_util.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Tile of the blocked 2-D transpose (elements): rows by columns of the
 * destination (the best mix measured on 64x128 to 2048x2048 planes). */
#define TRANSPOSE_BLOCK 16
#define TRANSPOSE_BLOCK_COLS 32
/* Below this many bytes a copy runs on one thread. */
#define PARALLEL_MIN_BYTES ((int64_t)1 << 18)

/* ---- Axes and integer inputs -------------------------------------------- */

kiln_status_t tops_axis(kiln_kernel_ctx_t *ctx, int64_t axis, int rank, const char *what, int *out)
{
    if (axis < -(int64_t)rank || axis >= rank)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s %lld is out of range for rank %d", what,
                             (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return KILN_OK;
}

void tops_strides(int rank, const int64_t *dims, int64_t *strides)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        strides[d] = s;
        s *= dims[d];
    }
}

int64_t tops_read_ints(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *t, const char *what, int64_t *out,
                       int64_t max)
{
    if (!t) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s is missing", what);
        return -1;
    }
    if (t->dtype != KILN_DTYPE_INT64 && t->dtype != KILN_DTYPE_INT32) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s must be int64 or int32, got %s", what,
                      kiln_dtype_name(t->dtype));
        return -1;
    }
    if (t->count > max) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s has %lld values, at most %lld allowed", what,
                      (long long)t->count, (long long)max);
        return -1;
    }
    for (int64_t i = 0; i < t->count; i++)
        out[i] = t->dtype == KILN_DTYPE_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    return t->count;
}

int64_t tops_ints_attr_or_input(kiln_kernel_ctx_t *ctx, const char *name, int input_since, int input_index,
                                int64_t *out, int64_t max)
{
    if (kiln_ctx_opset(ctx) >= input_since) {
        const kiln_tensor_t *t = kiln_ctx_input(ctx, input_index);
        if (!t)
            return -2;
        return tops_read_ints(ctx, t, name, out, max);
    }
    const int64_t *vals;
    int64_t n = kiln_attr_ints(kiln_ctx_node(ctx), name, &vals);
    if (n < 0)
        return -2;
    if (n > max) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "attribute %s has %lld values, at most %lld allowed",
                      name, (long long)n, (long long)max);
        return -1;
    }
    memcpy(out, vals, (size_t)n * sizeof *out);
    return n;
}

int64_t *tops_read_indices(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *t, int64_t dim, const char *what)
{
    if (!t) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s is missing", what);
        return NULL;
    }
    if (t->dtype != KILN_DTYPE_INT64 && t->dtype != KILN_DTYPE_INT32) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s must be int64 or int32, got %s", what,
                      kiln_dtype_name(t->dtype));
        return NULL;
    }
    int64_t *idx = malloc((size_t)(t->count > 0 ? t->count : 1) * sizeof *idx);
    if (!idx) {
        kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for %lld indices", (long long)t->count);
        return NULL;
    }
    for (int64_t i = 0; i < t->count; i++) {
        int64_t v =
            t->dtype == KILN_DTYPE_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
        if (v < -dim || v >= dim) {
            free(idx);
            kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                          "%s value %lld (element %lld) is out of range [-%lld, %lld)", what, (long long)v,
                          (long long)i, (long long)dim, (long long)dim);
            return NULL;
        }
        idx[i] = v < 0 ? v + dim : v;
    }
    return idx;
}

/* Reads the index tuples of GatherND/ScatterND: indices [..., k] address
 * data dims [b, b+k).  Fills offsets[i] (element offset inside one batch of
 * data) for each tuple i; returns the tuple count or -1 after failing. */
int64_t tops_nd_offsets(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, const kiln_tensor_t *ind, int b,
                        int64_t **out)
{
    int k = (int)ind->dims[ind->rank - 1];
    int64_t strides[KILN_MAX_RANK];
    tops_strides(x->rank, x->dims, strides);
    int64_t tuples = 1;
    for (int d = 0; d < ind->rank - 1; d++)
        tuples *= ind->dims[d];
    int64_t *offsets = malloc((size_t)(tuples > 0 ? tuples : 1) * sizeof *offsets);
    if (!offsets) {
        kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory");
        return -1;
    }
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off = 0;
        for (int j = 0; j < k; j++) {
            int64_t e = t * k + j;
            int64_t v = ind->dtype == KILN_DTYPE_INT64 ? ((const int64_t *)ind->data)[e]
                                                       : ((const int32_t *)ind->data)[e];
            int64_t dim = x->dims[b + j];
            if (v < -dim || v >= dim) {
                free(offsets);
                kiln_ctx_fail(
                    ctx, KILN_ERR_INVALID_ARGUMENT,
                    "indices value %lld (element %lld) is out of range [-%lld, %lld) for data axis %d",
                    (long long)v, (long long)e, (long long)dim, (long long)dim, b + j);
                return -1;
            }
            off += (v < 0 ? v + dim : v) * strides[b + j];
        }
        offsets[t] = off;
    }
    *out = offsets;
    return tuples;
}

/* Checks the shapes shared by GatherND and ScatterND and returns k, the
 * length of each index tuple, or -1 after failing the context. */
int tops_check_nd_shapes(kiln_kernel_ctx_t *ctx, const kiln_tensor_t *x, const kiln_tensor_t *ind, int b)
{
    if (ind->dtype != KILN_DTYPE_INT64 && ind->dtype != KILN_DTYPE_INT32) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "indices must be int64 or int32, got %s",
                      kiln_dtype_name(ind->dtype));
        return -1;
    }
    if (x->rank < 1 || ind->rank < 1 || b < 0 || b >= x->rank || b >= ind->rank) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "data rank %d, indices rank %d and batch_dims %d do not fit", x->rank, ind->rank, b);
        return -1;
    }
    int64_t k = ind->dims[ind->rank - 1];
    if (k < 0 || k > x->rank - b) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "index tuples of length %lld for data of rank %d (batch_dims %d)", (long long)k,
                      x->rank, b);
        return -1;
    }
    for (int d = 0; d < b; d++)
        if (ind->dims[d] != x->dims[d]) {
            kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "batch dim %d differs: data %lld, indices %lld", d,
                          (long long)x->dims[d], (long long)ind->dims[d]);
            return -1;
        }
    return (int)k;
}

kiln_status_t tops_check_shape(kiln_kernel_ctx_t *ctx, kiln_dtype_t dtype, int rank, const int64_t *dims,
                               const char *what)
{
    char buf[256];
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "%s has rank %d, kiln supports up to %d", what, rank,
                             KILN_MAX_RANK);
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0)
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s %s has a negative dimension", what,
                                 kiln_shape_str(rank, dims, buf, sizeof buf));
    if (kiln_shape_count(rank, dims, kiln_dtype_size(dtype)) < 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%s %s of %s is too large", what,
                             kiln_shape_str(rank, dims, buf, sizeof buf), kiln_dtype_name(dtype));
    return KILN_OK;
}

/* ---- Element copies ----------------------------------------------------- */

bool tops_copy_elems(void *dst, const void *src, int64_t n, kiln_dtype_t dtype)
{
    if (n <= 0)
        return true;
    if (dtype != KILN_DTYPE_STRING) {
        memcpy(dst, src, (size_t)n * kiln_dtype_size(dtype));
        return true;
    }
    char **d = dst;
    char *const *s = src;
    for (int64_t i = 0; i < n; i++) {
        free(d[i]);
        d[i] = strdup(s[i] ? s[i] : "");
        if (!d[i])
            return false;
    }
    return true;
}

kiln_status_t tops_copy_tensor(kiln_kernel_ctx_t *ctx, kiln_tensor_t *dst, const kiln_tensor_t *src)
{
    if (!tops_copy_elems(dst->data, src->data, src->count, src->dtype))
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
    return KILN_OK;
}

/* ---- Strided copy: view simplification ---------------------------------- */

/* Drops unit dims and merges neighbours that are contiguous on both sides.
 * Returns false when the view is empty (a zero dim). */
static bool simplify_view(tops_view_t *v)
{
    int n = 0;
    for (int d = 0; d < v->rank; d++) {
        if (v->dims[d] == 0)
            return false;
        if (v->dims[d] == 1)
            continue;
        if (n > 0 && v->src_strides[n - 1] == v->src_strides[d] * v->dims[d] &&
            v->dst_strides[n - 1] == v->dst_strides[d] * v->dims[d]) {
            v->dims[n - 1] *= v->dims[d];
            v->src_strides[n - 1] = v->src_strides[d];
            v->dst_strides[n - 1] = v->dst_strides[d];
            continue;
        }
        v->dims[n] = v->dims[d];
        v->src_strides[n] = v->src_strides[d];
        v->dst_strides[n] = v->dst_strides[d];
        n++;
    }
    v->rank = n;
    return true;
}

/* True when the innermost two dims are a 2-D transpose: the destination is
 * contiguous over them and the source walks the second-last dim with stride
 * 1 (so one of the two sides is always strided). */
static bool is_inner_transpose(const tops_view_t *v, size_t esize)
{
    int r = v->rank;
    if (r < 2 || esize > 8)
        return false;
    return v->dst_strides[r - 1] == 1 && v->dst_strides[r - 2] == v->dims[r - 1] &&
           v->src_strides[r - 2] == 1 && v->src_strides[r - 1] != 1 && v->dims[r - 1] >= 4 &&
           v->dims[r - 2] >= 4;
}

/* ---- Strided copy: inner loops ------------------------------------------ */

typedef struct elem16 {
    uint64_t lo, hi;
} elem16_t;

/* Copies n elements of esize bytes with element strides ds and ss. */
static void copy_row(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, size_t esize)
{
    if (ds == 1 && ss == 1) {
        memcpy(dst, src, (size_t)n * esize);
        return;
    }
    switch (esize) {
    case 1: {
        uint8_t *d = (uint8_t *)dst;
        const uint8_t *s = (const uint8_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i * ds] = s[i * ss];
        break;
    }
    case 2: {
        uint16_t *d = (uint16_t *)dst;
        const uint16_t *s = (const uint16_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i * ds] = s[i * ss];
        break;
    }
    case 4: {
        uint32_t *d = (uint32_t *)dst;
        const uint32_t *s = (const uint32_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i * ds] = s[i * ss];
        break;
    }
    case 8: {
        uint64_t *d = (uint64_t *)dst;
        const uint64_t *s = (const uint64_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i * ds] = s[i * ss];
        break;
    }
    default: {
        elem16_t *d = (elem16_t *)dst;
        const elem16_t *s = (const elem16_t *)src;
        for (int64_t i = 0; i < n; i++)
            d[i * ds] = s[i * ss];
        break;
    }
    }
}

/* Duplicates n strings with strides; false when out of memory. */
static bool copy_string_row(char **dst, int64_t ds, char *const *src, int64_t ss, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        char **d = &dst[i * ds];
        char *s = src[i * ss];
        free(*d);
        *d = strdup(s ? s : "");
        if (!*d)
            return false;
    }
    return true;
}

/* Copies rows [r0, r1) x cols [c0, c1) of a plane whose destination is
 * row-major with `cols` columns and whose source has row stride 1 and
 * column stride ss (the typed body of the blocked transpose).  The inner
 * loop writes contiguously; the block's source lines are reused across its
 * rows. */
static void copy_block(char *dst, const char *src, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                       int64_t cols, int64_t ss, size_t esize)
{
    for (int64_t r = r0; r < r1; r++) {
        switch (esize) {
        case 1:
            for (int64_t c = c0; c < c1; c++)
                ((uint8_t *)dst)[r * cols + c] = ((const uint8_t *)src)[r + c * ss];
            break;
        case 2:
            for (int64_t c = c0; c < c1; c++)
                ((uint16_t *)dst)[r * cols + c] = ((const uint16_t *)src)[r + c * ss];
            break;
        case 4:
            for (int64_t c = c0; c < c1; c++)
                ((uint32_t *)dst)[r * cols + c] = ((const uint32_t *)src)[r + c * ss];
            break;
        default:
            for (int64_t c = c0; c < c1; c++)
                ((uint64_t *)dst)[r * cols + c] = ((const uint64_t *)src)[r + c * ss];
            break;
        }
    }
}

/* ---- Strided copy: work split over the outer dims ----------------------- */

typedef struct copy_job {
    const tops_view_t *v;
    size_t esize;
    bool strings;
    bool failed;        /* string duplication ran out of memory (serial only) */
    int outer_rank;     /* dims [0, outer_rank) index the work items */
    int64_t row_blocks; /* plane mode: blocks of TRANSPOSE_BLOCK rows per plane; 0 = row mode */
    char *dst;          /* element 0 of the view */
    const char *src;
} copy_job_t;

/* Element offsets of outer item `item` (row-major over the outer dims). */
static void outer_offsets(const copy_job_t *job, int64_t item, int64_t *src_off, int64_t *dst_off)
{
    const tops_view_t *v = job->v;
    int64_t so = 0, dof = 0;
    for (int d = job->outer_rank - 1; d >= 0; d--) {
        int64_t i = item % v->dims[d];
        item /= v->dims[d];
        so += i * v->src_strides[d];
        dof += i * v->dst_strides[d];
    }
    *src_off = so;
    *dst_off = dof;
}

static void copy_rows(void *arg, int64_t begin, int64_t end)
{
    copy_job_t *job = arg;
    const tops_view_t *v = job->v;
    int last = v->rank - 1;
    int64_t n = v->dims[last], ss = v->src_strides[last], ds = v->dst_strides[last];
    for (int64_t item = begin; item < end; item++) {
        int64_t so, dof;
        outer_offsets(job, item, &so, &dof);
        char *d = job->dst + dof * (int64_t)job->esize;
        const char *s = job->src + so * (int64_t)job->esize;
        if (job->strings) {
            if (!copy_string_row((char **)d, ds, (char *const *)s, ss, n)) {
                job->failed = true;
                return;
            }
        } else {
            copy_row(d, ds, s, ss, n, job->esize);
        }
    }
}

static void copy_planes(void *arg, int64_t begin, int64_t end)
{
    copy_job_t *job = arg;
    const tops_view_t *v = job->v;
    int r = v->rank;
    int64_t rows = v->dims[r - 2], cols = v->dims[r - 1], ss = v->src_strides[r - 1];
    for (int64_t item = begin; item < end; item++) {
        int64_t so, dof;
        outer_offsets(job, item / job->row_blocks, &so, &dof);
        int64_t r0 = (item % job->row_blocks) * TRANSPOSE_BLOCK;
        int64_t r1 = r0 + TRANSPOSE_BLOCK < rows ? r0 + TRANSPOSE_BLOCK : rows;
        char *d = job->dst + dof * (int64_t)job->esize;
        const char *s = job->src + so * (int64_t)job->esize;
        for (int64_t c0 = 0; c0 < cols; c0 += TRANSPOSE_BLOCK_COLS) {
            int64_t c1 = c0 + TRANSPOSE_BLOCK_COLS < cols ? c0 + TRANSPOSE_BLOCK_COLS : cols;
            copy_block(d, s, r0, r1, c0, c1, cols, ss, job->esize);
        }
    }
}

kiln_status_t tops_strided_copy(kiln_kernel_ctx_t *ctx, tops_view_t *v, kiln_dtype_t dtype, void *dst,
                                int64_t dst_offset, const void *src, int64_t src_offset)
{
    size_t esize = kiln_dtype_size(dtype);
    copy_job_t job = {.v = v, .esize = esize, .strings = dtype == KILN_DTYPE_STRING};
    if (!simplify_view(v))
        return KILN_OK;
    job.dst = (char *)dst + dst_offset * (int64_t)esize;
    job.src = (const char *)src + src_offset * (int64_t)esize;
    if (v->rank == 0) { /* a single element */
        v->rank = 1;
        v->dims[0] = 1;
        v->src_strides[0] = v->dst_strides[0] = 1;
    }
    int64_t total = 1;
    for (int d = 0; d < v->rank; d++)
        total *= v->dims[d];
    bool parallel = ctx && !job.strings && total * (int64_t)esize >= PARALLEL_MIN_BYTES;

    if (!job.strings && is_inner_transpose(v, esize)) {
        job.outer_rank = v->rank - 2;
        job.row_blocks = (v->dims[v->rank - 2] + TRANSPOSE_BLOCK - 1) / TRANSPOSE_BLOCK;
        int64_t items = job.row_blocks;
        for (int d = 0; d < job.outer_rank; d++)
            items *= v->dims[d];
        if (parallel)
            kiln_ctx_parallel_for(ctx, items, 1, copy_planes, &job);
        else
            copy_planes(&job, 0, items);
        return KILN_OK;
    }

    job.outer_rank = v->rank - 1;
    int64_t rows = total / v->dims[v->rank - 1];
    int64_t row_bytes = v->dims[v->rank - 1] * (int64_t)esize;
    if (parallel) {
        int64_t grain = PARALLEL_MIN_BYTES / 8 / (row_bytes > 0 ? row_bytes : 1);
        kiln_ctx_parallel_for(ctx, rows, grain > 0 ? grain : 1, copy_rows, &job);
    } else {
        copy_rows(&job, 0, rows);
    }
    if (job.failed)
        return ctx ? kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings")
                   : kiln_fail(KILN_ERR_NO_MEMORY, "out of memory copying strings");
    return KILN_OK;
}
