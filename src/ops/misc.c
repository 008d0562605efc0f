/*
 * misc.c - Ops that belong to no family: Einsum, Det, Unique, NonZero,
 * Trilu, EyeLike, Range, OneHot, Compress.
 *
 * Einsum is general: the equation is parsed into one label per dim (see
 * misc.h), each input gets a stride per label (a label repeated within an
 * input adds its strides, which walks the diagonal), and the result is a
 * plain loop over every output index and every summed index.  That costs
 * the product of all label sizes.  Float32 contractions of two inputs that
 * are batched matrix products (attention's "bhqd,bhkd->bhqk") are instead
 * rearranged into [batch, M, K] x [batch, K, N] stacks - in place when the
 * layout already fits, transposed operands included - and run through
 * kiln_sgemm.
 *
 * Values are moved as raw bytes where an op only selects (Compress, Unique,
 * Trilu) and computed in double where it does arithmetic (Einsum, Det).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/axes.h"
#include "ops/gemm.h"
#include "ops/kernel.h"
#include "ops/misc.h"

/* The largest output Range/OneHot/EyeLike may be asked to build from input
 * values before we call the request absurd. */
#define MISC_MAX_GENERATED_ELEMS ((int64_t)1 << 31)

/* ---- Einsum: parsing --------------------------------------------------- */

static bool parse_error(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

static int letter_label(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return 26 + (c - 'a');
    return -1;
}

static char label_letter(int label)
{
    return (char)(label < 26 ? 'A' + label : 'a' + (label - 26));
}

/* One term as written: its letters' labels and where "..." sits (-1 when
 * absent, else the number of letters before it). */
typedef struct einsum_term {
    int n_letters;
    int letters[KILN_MAX_RANK];
    int ellipsis_at;
} einsum_term_t;

/* Reads one term from s[0..len); false on a bad character or ellipsis. */
static bool parse_term(const char *s, size_t len, einsum_term_t *t, char *err, size_t err_size)
{
    t->n_letters = 0;
    t->ellipsis_at = -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (t->ellipsis_at >= 0 || i + 3 > len || s[i + 1] != '.' || s[i + 2] != '.')
                return parse_error(err, err_size, "malformed ellipsis in '%.*s'", (int)len, s);
            t->ellipsis_at = t->n_letters;
            i += 2;
            continue;
        }
        int label = letter_label(s[i]);
        if (label < 0)
            return parse_error(err, err_size, "unexpected character '%c' in '%.*s'", s[i], (int)len, s);
        if (t->n_letters >= KILN_MAX_RANK)
            return parse_error(err, err_size, "too many subscripts in '%.*s'", (int)len, s);
        t->letters[t->n_letters++] = label;
    }
    return true;
}

/* Expands a term to one label per dim, "..." standing for the last e of the
 * n_ell ellipsis labels. */
static int expand_term(const einsum_term_t *t, int e, int n_ell, int *labels)
{
    int r = 0;
    for (int i = 0; i <= t->n_letters; i++) {
        if (i == t->ellipsis_at)
            for (int j = 0; j < e; j++)
                labels[r++] = KILN_EINSUM_ELLIPSIS_LABEL + (n_ell - e) + j;
        if (i < t->n_letters)
            labels[r++] = t->letters[i];
    }
    return r;
}

bool kiln_einsum_parse(const char *equation, int n_inputs, const int *ranks, kiln_einsum_spec_t *spec,
                       char *err, size_t err_size)
{
    char eq[512];
    size_t n = 0;
    for (const char *p = equation; *p; p++) {
        if (isspace((unsigned char)*p))
            continue;
        if (n + 1 >= sizeof eq)
            return parse_error(err, err_size, "equation is too long");
        eq[n++] = *p;
    }
    eq[n] = '\0';
    if (n_inputs < 1 || n_inputs > KILN_EINSUM_MAX_INPUTS)
        return parse_error(err, err_size, "%d inputs (1 to %d supported)", n_inputs, KILN_EINSUM_MAX_INPUTS);
    const char *arrow = strstr(eq, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - eq) : n;

    einsum_term_t terms[KILN_EINSUM_MAX_INPUTS];
    int n_terms = 0, n_ell = 0;
    size_t start = 0;
    for (size_t i = 0; i <= lhs_len; i++) {
        if (i < lhs_len && eq[i] != ',')
            continue;
        if (n_terms >= n_inputs)
            return parse_error(err, err_size, "equation has more terms than the %d inputs", n_inputs);
        einsum_term_t *t = &terms[n_terms];
        if (!parse_term(eq + start, i - start, t, err, err_size))
            return false;
        int e = ranks[n_terms] - t->n_letters;
        if ((t->ellipsis_at < 0 && e != 0) || e < 0)
            return parse_error(err, err_size, "term %d has %d subscripts for an input of rank %d", n_terms,
                               t->n_letters, ranks[n_terms]);
        if (e > n_ell)
            n_ell = e;
        n_terms++;
        start = i + 1;
    }
    if (n_terms != n_inputs)
        return parse_error(err, err_size, "equation has %d terms for %d inputs", n_terms, n_inputs);

    int uses[KILN_EINSUM_MAX_LABELS] = {0};
    spec->n_inputs = n_inputs;
    spec->n_ellipsis_dims = n_ell;
    for (int k = 0; k < n_inputs; k++) {
        spec->in_rank[k] = expand_term(&terms[k], ranks[k] - terms[k].n_letters, n_ell, spec->in_labels[k]);
        for (int i = 0; i < terms[k].n_letters; i++)
            uses[terms[k].letters[i]]++;
    }

    if (arrow) {
        einsum_term_t out;
        if (!parse_term(arrow + 2, strlen(arrow + 2), &out, err, err_size))
            return false;
        bool seen[KILN_EINSUM_MAX_LABELS] = {false};
        for (int i = 0; i < out.n_letters; i++) {
            if (!uses[out.letters[i]])
                return parse_error(err, err_size, "output subscript '%c' appears in no input",
                                   label_letter(out.letters[i]));
            if (seen[out.letters[i]])
                return parse_error(err, err_size, "output subscript repeated");
            seen[out.letters[i]] = true;
        }
        if (out.n_letters + (out.ellipsis_at >= 0 ? n_ell : 0) > KILN_MAX_RANK)
            return parse_error(err, err_size, "output rank exceeds %d", KILN_MAX_RANK);
        spec->out_rank = expand_term(&out, out.ellipsis_at >= 0 ? n_ell : 0, n_ell, spec->out_labels);
    } else {
        int r = 0;
        for (int j = 0; j < n_ell; j++)
            spec->out_labels[r++] = KILN_EINSUM_ELLIPSIS_LABEL + j;
        for (int l = 0; l < KILN_EINSUM_ELLIPSIS_LABEL; l++)
            if (uses[l] == 1) {
                if (r >= KILN_MAX_RANK)
                    return parse_error(err, err_size, "output rank exceeds %d", KILN_MAX_RANK);
                spec->out_labels[r++] = l;
            }
        spec->out_rank = r;
    }
    return true;
}

/* ---- Einsum: evaluation ------------------------------------------------ */

/* Sizes of every label, checked for agreement (ellipsis dims broadcast). */
static kiln_status_t einsum_label_sizes(kiln_kernel_ctx_t *ctx, const kiln_einsum_spec_t *spec,
                                        const kiln_tensor_t *const *in, int64_t *size)
{
    for (int l = 0; l < KILN_EINSUM_MAX_LABELS; l++)
        size[l] = -1;
    for (int k = 0; k < spec->n_inputs; k++)
        for (int d = 0; d < spec->in_rank[k]; d++) {
            int l = spec->in_labels[k][d];
            int64_t s = in[k]->dims[d];
            bool ell = l >= KILN_EINSUM_ELLIPSIS_LABEL;
            if (size[l] < 0 || (ell && size[l] == 1))
                size[l] = s;
            else if (s != size[l] && !(ell && s == 1))
                return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                     "input %d dim %d has size %lld, another use of its subscript has %lld",
                                     k, d, (long long)s, (long long)size[l]);
        }
    return KILN_OK;
}

/* Stride per label of input k (summed over repeats; 0 for a broadcast dim). */
static void einsum_label_strides(const kiln_einsum_spec_t *spec, int k, const kiln_tensor_t *t,
                                 const int64_t *size, int64_t *stride)
{
    for (int l = 0; l < KILN_EINSUM_MAX_LABELS; l++)
        stride[l] = 0;
    int64_t s = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        int l = spec->in_labels[k][d];
        if (!(t->dims[d] == 1 && size[l] != 1))
            stride[l] += s;
        s *= t->dims[d];
    }
}

/* Advances a mixed-radix counter over labels[0..n); returns false after the
 * last index. Keeps each input's offset in step. */
static bool einsum_step(int n, const int *labels, const int64_t *size, int64_t *idx, int n_in,
                        int64_t (*stride)[KILN_EINSUM_MAX_LABELS], int64_t *off)
{
    for (int i = n - 1; i >= 0; i--) {
        int l = labels[i];
        if (++idx[i] < size[l]) {
            for (int k = 0; k < n_in; k++)
                off[k] += stride[k][l];
            return true;
        }
        for (int k = 0; k < n_in; k++)
            off[k] -= stride[k][l] * (size[l] - 1);
        idx[i] = 0;
    }
    return false;
}

/* ---- Einsum: the matrix-multiply path ---------------------------------- */

/* Copies src into dst laid out in label order order[0..n) (row-major),
 * reading src through per-label strides. */
static void gather_by_labels(const float *src, const int64_t *src_stride, const int *order, int n,
                             const int64_t *size, float *dst)
{
    int64_t idx[KILN_EINSUM_MAX_LABELS] = {0}, total = 1, off = 0;
    for (int i = 0; i < n; i++)
        total *= size[order[i]];
    for (int64_t e = 0; e < total; e++) {
        dst[e] = src[off];
        for (int i = n - 1; i >= 0; i--) {
            int l = order[i];
            if (++idx[i] < size[l]) {
                off += src_stride[l];
                break;
            }
            off -= src_stride[l] * (size[l] - 1);
            idx[i] = 0;
        }
    }
}

/* Concatenates label lists. */
static int concat_labels(int *dst, const int *a, int na, const int *b, int nb, const int *c, int nc)
{
    memcpy(dst, a, sizeof(int) * (size_t)na);
    memcpy(dst + na, b, sizeof(int) * (size_t)nb);
    memcpy(dst + na + nb, c, sizeof(int) * (size_t)nc);
    return na + nb + nc;
}

static bool labels_equal(const int *a, int na, const int *b, int nb)
{
    return na == nb && !memcmp(a, b, sizeof(int) * (size_t)na);
}

static int64_t labels_product(const int *l, int n, const int64_t *size)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= size[l[i]];
    return p;
}

/* The label roles of a two-input contraction: batch (in both and the
 * output), m (first input and output), n (second input and output), k
 * (both inputs, summed). */
typedef struct einsum_roles {
    int batch[KILN_MAX_RANK], m[KILN_MAX_RANK], n[KILN_MAX_RANK], k[KILN_MAX_RANK];
    int nb, nm, nn, nk;
} einsum_roles_t;

/* Sorts the labels into roles; false when the equation is not a plain
 * batched matrix product (a repeated label, a broadcast dim, or a label
 * summed within one input). */
static bool einsum_matmul_roles(const kiln_einsum_spec_t *spec, const kiln_tensor_t *const *in,
                                const int64_t *size, einsum_roles_t *r)
{
    int where[KILN_EINSUM_MAX_LABELS] = {0}; /* bit 0: A, bit 1: B, bit 2: output */
    for (int k = 0; k < 2; k++)
        for (int d = 0; d < spec->in_rank[k]; d++) {
            int l = spec->in_labels[k][d];
            if (where[l] & (1 << k) || in[k]->dims[d] != size[l])
                return false;
            where[l] |= 1 << k;
        }
    for (int d = 0; d < spec->out_rank; d++)
        where[spec->out_labels[d]] |= 4;
    r->nb = r->nm = r->nn = r->nk = 0;
    for (int d = 0; d < spec->out_rank; d++) {
        int l = spec->out_labels[d];
        if (where[l] == 7)
            r->batch[r->nb++] = l;
        else if (where[l] == 5)
            r->m[r->nm++] = l;
        else if (where[l] == 6)
            r->n[r->nn++] = l;
    }
    for (int d = 0; d < spec->in_rank[0]; d++) {
        int l = spec->in_labels[0][d];
        if (where[l] == 3)
            r->k[r->nk++] = l;
        else if (where[l] != 7 && where[l] != 5)
            return false;
    }
    for (int d = 0; d < spec->in_rank[1]; d++)
        if (where[spec->in_labels[1][d]] == 2)
            return false;
    return true;
}

/* Returns input k as a [batch, rows, cols] matrix stack: in place when its
 * labels already run in that order (or in [batch, cols, rows] order, then
 * *trans is set), else gathered into *owned. */
static const float *einsum_operand(const kiln_einsum_spec_t *spec, int k, const kiln_tensor_t *t,
                                   const int64_t *size, const einsum_roles_t *r, const int *rows, int nrows,
                                   const int *cols, int ncols, bool *trans, float **owned)
{
    int order[KILN_EINSUM_MAX_LABELS], flipped[KILN_EINSUM_MAX_LABELS];
    int n = concat_labels(order, r->batch, r->nb, rows, nrows, cols, ncols);
    concat_labels(flipped, r->batch, r->nb, cols, ncols, rows, nrows);
    *owned = NULL;
    *trans = false;
    if (labels_equal(spec->in_labels[k], spec->in_rank[k], order, n))
        return t->data;
    if (labels_equal(spec->in_labels[k], spec->in_rank[k], flipped, n)) {
        *trans = true;
        return t->data;
    }
    int64_t stride[KILN_EINSUM_MAX_LABELS];
    einsum_label_strides(spec, k, t, size, stride);
    *owned = malloc(sizeof(float) * (size_t)(t->count ? t->count : 1));
    if (!*owned)
        return NULL;
    gather_by_labels(t->data, stride, order, n, size, *owned);
    return *owned;
}

/* Runs a float32 two-input einsum that is a batched matrix product as
 * sgemm calls.  *handled is false (and nothing is written) when the
 * equation does not have that shape. */
static kiln_status_t einsum_by_gemm(kiln_kernel_ctx_t *ctx, const kiln_einsum_spec_t *spec,
                                    const kiln_tensor_t *const *in, const int64_t *size, kiln_tensor_t *y,
                                    bool *handled)
{
    einsum_roles_t r;
    *handled = false;
    if (spec->n_inputs != 2 || in[0]->dtype != KILN_DTYPE_FLOAT32 || in[1]->dtype != KILN_DTYPE_FLOAT32 ||
        !einsum_matmul_roles(spec, in, size, &r))
        return KILN_OK;
    int64_t nbatch = labels_product(r.batch, r.nb, size), m = labels_product(r.m, r.nm, size),
            n = labels_product(r.n, r.nn, size), k = labels_product(r.k, r.nk, size);
    if (k == 0 || y->count == 0)
        return KILN_OK;
    bool ta, tb;
    float *own_a, *own_b, *own_c = NULL;
    const float *a = einsum_operand(spec, 0, in[0], size, &r, r.m, r.nm, r.k, r.nk, &ta, &own_a);
    const float *b = einsum_operand(spec, 1, in[1], size, &r, r.k, r.nk, r.n, r.nn, &tb, &own_b);
    int c_labels[KILN_EINSUM_MAX_LABELS];
    int nc = concat_labels(c_labels, r.batch, r.nb, r.m, r.nm, r.n, r.nn);
    bool direct_c = labels_equal(spec->out_labels, spec->out_rank, c_labels, nc);
    float *c = direct_c ? y->data : (own_c = malloc(sizeof(float) * (size_t)y->count));
    kiln_status_t st = KILN_OK;
    if (!a || !b || !c) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory rearranging Einsum operands");
        goto done;
    }
    kiln_gemm_parallel_t par = kiln_gemm_parallel_ctx(ctx);
    for (int64_t i = 0; i < nbatch; i++)
        kiln_sgemm(ta, tb, m, n, k, 1.0f, a + i * m * k, ta ? m : k, b + i * k * n, tb ? k : n, 0.0f,
                   c + i * m * n, n, &par);
    if (!direct_c) {
        int64_t cstride[KILN_EINSUM_MAX_LABELS] = {0}, s = 1;
        for (int d = nc - 1; d >= 0; d--) {
            cstride[c_labels[d]] = s;
            s *= size[c_labels[d]];
        }
        gather_by_labels(c, cstride, spec->out_labels, spec->out_rank, size, y->data);
    }
    *handled = true;
done:
    free(own_a);
    free(own_b);
    free(own_c);
    return st;
}

static kiln_status_t einsum_run(kiln_kernel_ctx_t *ctx)
{
    int n_in = kiln_ctx_input_count(ctx);
    if (n_in < 1 || n_in > KILN_EINSUM_MAX_INPUTS)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "%d inputs (1 to %d supported)", n_in,
                             KILN_EINSUM_MAX_INPUTS);
    const kiln_tensor_t *in[KILN_EINSUM_MAX_INPUTS];
    int ranks[KILN_EINSUM_MAX_INPUTS];
    for (int k = 0; k < n_in; k++) {
        in[k] = kiln_ctx_input(ctx, k);
        if (!in[k] || !(kiln_dtype_is_float(in[k]->dtype) || kiln_dtype_is_integer(in[k]->dtype)))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input %d must be a numeric tensor", k);
        ranks[k] = in[k]->rank;
    }
    kiln_einsum_spec_t spec;
    char err[256];
    if (!kiln_einsum_parse(kiln_attr_string(kiln_ctx_node(ctx), "equation", ""), n_in, ranks, &spec, err,
                           sizeof err))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "equation: %s", err);
    int64_t size[KILN_EINSUM_MAX_LABELS];
    kiln_status_t st = einsum_label_sizes(ctx, &spec, in, size);
    if (st != KILN_OK)
        return st;
    int64_t ydims[KILN_MAX_RANK];
    bool in_out[KILN_EINSUM_MAX_LABELS] = {false};
    for (int i = 0; i < spec.out_rank; i++) {
        ydims[i] = size[spec.out_labels[i]];
        in_out[spec.out_labels[i]] = true;
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, in[0]->dtype, spec.out_rank, ydims);
    if (!y)
        return kiln_ctx_status(ctx);
    int sum_labels[KILN_EINSUM_MAX_LABELS], n_sum = 0;
    int64_t sum_count = 1;
    for (int l = 0; l < KILN_EINSUM_MAX_LABELS; l++)
        if (size[l] >= 0 && !in_out[l]) {
            sum_labels[n_sum++] = l;
            sum_count *= size[l];
        }
    if (y->count == 0)
        return KILN_OK;
    bool handled;
    if ((st = einsum_by_gemm(ctx, &spec, in, size, y, &handled)) != KILN_OK || handled)
        return st;
    int64_t stride[KILN_EINSUM_MAX_INPUTS][KILN_EINSUM_MAX_LABELS];
    for (int k = 0; k < n_in; k++)
        einsum_label_strides(&spec, k, in[k], size, stride[k]);
    int64_t out_idx[KILN_MAX_RANK] = {0}, base[KILN_EINSUM_MAX_INPUTS] = {0};
    for (int64_t o = 0; o < y->count; o++) {
        double acc = 0.0;
        if (sum_count > 0) {
            int64_t sum_idx[KILN_EINSUM_MAX_LABELS] = {0}, off[KILN_EINSUM_MAX_INPUTS];
            memcpy(off, base, sizeof(int64_t) * (size_t)n_in);
            do {
                double p = 1.0;
                for (int k = 0; k < n_in; k++)
                    p *= kiln_tensor_get_f64(in[k], off[k]);
                acc += p;
            } while (einsum_step(n_sum, sum_labels, size, sum_idx, n_in, stride, off));
        }
        kiln_tensor_set_f64(y, o, acc);
        einsum_step(spec.out_rank, spec.out_labels, size, out_idx, n_in, stride, base);
    }
    return KILN_OK;
}

/* ---- Det --------------------------------------------------------------- */

/* Determinant of the n x n row-major matrix a (destroyed) by LU with
 * partial pivoting. */
static double determinant(double *a, int64_t n)
{
    double det = 1.0;
    for (int64_t c = 0; c < n; c++) {
        int64_t p = c;
        for (int64_t r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[p * n + c]))
                p = r;
        if (a[p * n + c] == 0.0)
            return 0.0;
        if (p != c) {
            for (int64_t j = 0; j < n; j++) {
                double t = a[c * n + j];
                a[c * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
            det = -det;
        }
        det *= a[c * n + c];
        for (int64_t r = c + 1; r < n; r++) {
            double f = a[r * n + c] / a[c * n + c];
            for (int64_t j = c; j < n; j++)
                a[r * n + j] -= f * a[c * n + j];
        }
    }
    return det;
}

static kiln_status_t det_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || !kiln_dtype_is_float(x->dtype) || x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2])
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a float tensor of square matrices");
    int64_t n = x->dims[x->rank - 1];
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank - 2, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    double *a = malloc(sizeof(double) * (size_t)(n * n + 1));
    if (!a)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for a %lld x %lld matrix", (long long)n,
                             (long long)n);
    for (int64_t b = 0; b < y->count; b++) {
        for (int64_t i = 0; i < n * n; i++)
            a[i] = kiln_tensor_get_f64(x, b * n * n + i);
        kiln_tensor_set_f64(y, b, determinant(a, n));
    }
    free(a);
    return KILN_OK;
}

/* ---- Unique ------------------------------------------------------------ */

/* The input viewed as n slices along an axis: slice i is the elements
 * (o, i, j) for o < outer, j < inner. */
typedef struct slice_view {
    const kiln_tensor_t *x;
    int64_t outer, n, inner;
} slice_view_t;

static int compare_slices(const slice_view_t *v, int64_t a, int64_t b)
{
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t j = 0; j < v->inner; j++) {
            int64_t ia = (o * v->n + a) * v->inner + j, ib = (o * v->n + b) * v->inner + j;
            if (v->x->dtype == KILN_DTYPE_STRING) {
                int c = strcmp(((char *const *)v->x->data)[ia], ((char *const *)v->x->data)[ib]);
                if (c)
                    return c < 0 ? -1 : 1;
                continue;
            }
            double da = kiln_tensor_get_f64(v->x, ia), db = kiln_tensor_get_f64(v->x, ib);
            if (da != db)
                return da < db ? -1 : 1;
        }
    return 0;
}

/* Stable merge sort of order[0..n) by slice value (qsort has no context
 * pointer in C11, and stability keeps first occurrences first). */
static void sort_slices(const slice_view_t *v, int64_t *order, int64_t *tmp, int64_t n)
{
    if (n < 2)
        return;
    int64_t h = n / 2;
    sort_slices(v, order, tmp, h);
    sort_slices(v, order + h, tmp, n - h);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = compare_slices(v, order[j], order[i]) < 0 ? order[j++] : order[i++];
    while (i < h)
        tmp[k++] = order[i++];
    while (j < n)
        tmp[k++] = order[j++];
    memcpy(order, tmp, sizeof(int64_t) * (size_t)n);
}

/* Copies slice src of view v into slice dst of y (which has n_y slices). */
static kiln_status_t copy_slice(const slice_view_t *v, int64_t src, kiln_tensor_t *y, int64_t n_y,
                                int64_t dst)
{
    size_t es = kiln_dtype_size(v->x->dtype);
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t j = 0; j < v->inner; j++) {
            int64_t is = (o * v->n + src) * v->inner + j, id = (o * n_y + dst) * v->inner + j;
            if (v->x->dtype == KILN_DTYPE_STRING) {
                char *s = strdup(((char *const *)v->x->data)[is]);
                if (!s)
                    return KILN_ERR_NO_MEMORY;
                ((char **)y->data)[id] = s;
            } else {
                memcpy((char *)y->data + (size_t)id * es, (const char *)v->x->data + (size_t)is * es, es);
            }
        }
    return KILN_OK;
}

/* Writes Unique's outputs from the groups found: first[g] is group g's
 * first slice, count[g] its size, group_of[i] the group of slice i. */
static kiln_status_t unique_outputs(kiln_kernel_ctx_t *ctx, const slice_view_t *v, int axis, int64_t n_groups,
                                    const int64_t *first, const int64_t *count, const int64_t *group_of)
{
    const kiln_tensor_t *x = v->x;
    int64_t ydims[KILN_MAX_RANK];
    int yrank = axis < 0 ? 1 : x->rank;
    if (axis < 0) {
        ydims[0] = n_groups;
    } else {
        memcpy(ydims, x->dims, sizeof(int64_t) * (size_t)x->rank);
        ydims[axis] = n_groups;
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, yrank, ydims);
    kiln_tensor_t *idx = y ? kiln_ctx_output(ctx, 1, KILN_DTYPE_INT64, 1, &n_groups) : NULL;
    kiln_tensor_t *inv = idx ? kiln_ctx_output(ctx, 2, KILN_DTYPE_INT64, 1, &v->n) : NULL;
    kiln_tensor_t *cnt = inv ? kiln_ctx_output(ctx, 3, KILN_DTYPE_INT64, 1, &n_groups) : NULL;
    if (!cnt)
        return kiln_ctx_status(ctx);
    for (int64_t g = 0; g < n_groups; g++) {
        if (copy_slice(v, first[g], y, n_groups, g) != KILN_OK)
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
        ((int64_t *)idx->data)[g] = first[g];
        ((int64_t *)cnt->data)[g] = count[g];
    }
    if (v->n > 0)
        memcpy(inv->data, group_of, sizeof(int64_t) * (size_t)v->n);
    return KILN_OK;
}

static kiln_status_t unique_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "missing input");
    bool sorted = kiln_attr_int(node, "sorted", 1) != 0;
    int axis = -1;
    slice_view_t v = {x, 1, x->count, 1};
    if (kiln_node_attr(node, "axis")) {
        if (!kiln_axis_normalize(kiln_attr_int(node, "axis", 0), x->rank, &axis))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
        kiln_axis_split(x->rank, x->dims, axis, &v.outer, &v.inner);
        v.n = x->dims[axis];
    }
    size_t nb = sizeof(int64_t) * (size_t)(v.n + 1);
    int64_t *order = malloc(nb), *tmp = malloc(nb), *first = malloc(nb), *count = malloc(nb),
            *group_of = malloc(nb);
    int64_t *rank_of = malloc(nb);
    kiln_status_t st = KILN_OK;
    if (!order || !tmp || !first || !count || !group_of || !rank_of) {
        st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for Unique over %lld items",
                           (long long)v.n);
        goto done;
    }
    for (int64_t i = 0; i < v.n; i++)
        order[i] = i;
    sort_slices(&v, order, tmp, v.n);
    /* Runs of equal slices are the groups, numbered in sorted order; the
     * sort is stable, so a run starts at its group's first occurrence. */
    int64_t n_groups = 0;
    for (int64_t i = 0; i < v.n; i++) {
        if (i == 0 || compare_slices(&v, order[i - 1], order[i]) != 0) {
            first[n_groups] = order[i];
            count[n_groups] = 0;
            n_groups++;
        }
        count[n_groups - 1]++;
        group_of[order[i]] = n_groups - 1;
    }
    if (!sorted) {
        /* Renumber groups by first occurrence: rank_of[g] is the new number. */
        for (int64_t g = 0; g < n_groups; g++)
            rank_of[g] = -1;
        int64_t next = 0;
        for (int64_t i = 0; i < v.n; i++)
            if (rank_of[group_of[i]] < 0)
                rank_of[group_of[i]] = next++;
        for (int64_t g = 0; g < n_groups; g++) {
            tmp[rank_of[g]] = first[g];
            order[rank_of[g]] = count[g];
        }
        memcpy(first, tmp, sizeof(int64_t) * (size_t)n_groups);
        memcpy(count, order, sizeof(int64_t) * (size_t)n_groups);
        for (int64_t i = 0; i < v.n; i++)
            group_of[i] = rank_of[group_of[i]];
    }
    st = unique_outputs(ctx, &v, axis, n_groups, first, count, group_of);
done:
    free(order);
    free(tmp);
    free(first);
    free(count);
    free(group_of);
    free(rank_of);
    return st;
}

/* ---- NonZero, Trilu, EyeLike ------------------------------------------- */

static bool element_nonzero(const kiln_tensor_t *x, int64_t i)
{
    if (x->dtype == KILN_DTYPE_STRING)
        return ((char *const *)x->data)[i][0] != '\0';
    return kiln_tensor_get_f64(x, i) != 0.0;
}

static kiln_status_t nonzero_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "missing input");
    int64_t nnz = 0;
    for (int64_t i = 0; i < x->count; i++)
        nnz += element_nonzero(x, i);
    /* A scalar counts as a one-element 1-D tensor, as numpy.nonzero (the
     * reference) treats it: shape (1, nnz) with index 0. */
    int64_t ydims[2] = {x->rank > 0 ? x->rank : 1, nnz};
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_INT64, 2, ydims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t *out = y->data, col = 0;
    for (int64_t i = 0; i < x->count; i++) {
        if (!element_nonzero(x, i))
            continue;
        int64_t rem = i;
        for (int d = x->rank - 1; d >= 0; d--) {
            out[d * nnz + col] = rem % x->dims[d];
            rem /= x->dims[d];
        }
        col++;
    }
    return KILN_OK;
}

static kiln_status_t trilu_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *kt = kiln_ctx_input(ctx, 1);
    if (!x || x->rank < 2 || x->dtype == KILN_DTYPE_STRING)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input must be a tensor of rank >= 2");
    if (kt && (kt->count != 1 || !kiln_dtype_is_integer(kt->dtype)))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "k must be a one-element integer tensor");
    int64_t k = kt ? kiln_tensor_get_i64(kt, 0) : 0;
    bool upper = kiln_attr_int(kiln_ctx_node(ctx), "upper", 1) != 0;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
    size_t es = kiln_dtype_size(x->dtype);
    for (int64_t e = 0; e < x->count; e++) {
        int64_t j = e % cols, i = (e / cols) % rows;
        bool keep = upper ? j - i >= k : j - i <= k;
        if (keep)
            memcpy((char *)y->data + (size_t)e * es, (const char *)x->data + (size_t)e * es, es);
    }
    return KILN_OK;
}

static kiln_status_t eyelike_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    if (!x || x->rank != 2)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input must be 2-D");
    kiln_dtype_t dt = (kiln_dtype_t)kiln_attr_int(node, "dtype", x->dtype);
    if (!(kiln_dtype_is_float(dt) || kiln_dtype_is_integer(dt) || dt == KILN_DTYPE_BOOL))
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "dtype %d is not supported", (int)dt);
    int64_t k = kiln_attr_int(node, "k", 0);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, dt, 2, x->dims);
    if (!y)
        return kiln_ctx_status(ctx);
    for (int64_t i = 0; i < x->dims[0]; i++) {
        int64_t j = i + k;
        if (j >= 0 && j < x->dims[1])
            kiln_tensor_set_f64(y, i * x->dims[1] + j, 1.0);
    }
    return KILN_OK;
}

/* ---- Range ------------------------------------------------------------- */

static bool is_scalar_like(const kiln_tensor_t *t)
{
    return t && t->count == 1 && (kiln_dtype_is_float(t->dtype) || kiln_dtype_is_integer(t->dtype));
}

static kiln_status_t range_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *ts = kiln_ctx_input(ctx, 0), *tl = kiln_ctx_input(ctx, 1),
                        *td = kiln_ctx_input(ctx, 2);
    if (!is_scalar_like(ts) || !is_scalar_like(tl) || !is_scalar_like(td))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "start, limit and delta must be numeric scalars");
    double start = kiln_tensor_get_f64(ts, 0), limit = kiln_tensor_get_f64(tl, 0),
           delta = kiln_tensor_get_f64(td, 0);
    if (delta == 0.0 || !isfinite(start) || !isfinite(limit) || !isfinite(delta))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "delta must be non-zero and all values finite");
    double steps = ceil((limit - start) / delta);
    if (steps > (double)MISC_MAX_GENERATED_ELEMS)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "range of %g elements is too large", steps);
    int64_t n = steps > 0 ? (int64_t)steps : 0;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, ts->dtype, 1, &n);
    if (!y)
        return kiln_ctx_status(ctx);
    if (kiln_dtype_is_integer(ts->dtype)) {
        int64_t s = kiln_tensor_get_i64(ts, 0), d = kiln_tensor_get_i64(td, 0);
        for (int64_t i = 0; i < n; i++)
            kiln_tensor_set_f64(y, i, (double)(s + i * d));
    } else {
        for (int64_t i = 0; i < n; i++)
            kiln_tensor_set_f64(y, i, start + (double)i * delta);
    }
    return KILN_OK;
}

/* ---- OneHot ------------------------------------------------------------ */

static kiln_status_t onehot_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *ind = kiln_ctx_input(ctx, 0), *dt = kiln_ctx_input(ctx, 1),
                        *vals = kiln_ctx_input(ctx, 2);
    if (!ind || !is_scalar_like(dt) || !vals || vals->count != 2 || vals->dtype == KILN_DTYPE_STRING ||
        !(kiln_dtype_is_float(ind->dtype) || kiln_dtype_is_integer(ind->dtype)))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "needs numeric indices, a scalar depth and values [off, on]");
    double dd = kiln_tensor_get_f64(dt, 0);
    if (!(dd >= 1.0) || dd > (double)MISC_MAX_GENERATED_ELEMS)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "depth %g is not a sane positive size", dd);
    int64_t depth = (int64_t)dd;
    int axis;
    if (ind->rank + 1 > KILN_MAX_RANK ||
        !kiln_axis_normalize(kiln_attr_int(kiln_ctx_node(ctx), "axis", -1), ind->rank + 1, &axis))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", ind->rank + 1);
    int64_t ydims[KILN_MAX_RANK];
    for (int d = 0, s = 0; d < ind->rank + 1; d++)
        ydims[d] = d == axis ? depth : ind->dims[s++];
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, vals->dtype, ind->rank + 1, ydims);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ind->rank; d++) {
        if (d < axis)
            outer *= ind->dims[d];
        else
            inner *= ind->dims[d];
    }
    size_t es = kiln_dtype_size(vals->dtype);
    const char *off = vals->data, *on = (const char *)vals->data + es;
    for (int64_t e = 0; e < y->count; e++)
        memcpy((char *)y->data + (size_t)e * es, off, es);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double fv = kiln_tensor_get_f64(ind, o * inner + i);
            if (!(fv > -(double)depth - 1 && fv < (double)depth))
                continue;
            int64_t v = (int64_t)fv;
            if (v < 0)
                v += depth;
            if (v < 0 || v >= depth)
                continue;
            memcpy((char *)y->data + (size_t)((o * depth + v) * inner + i) * es, on, es);
        }
    return KILN_OK;
}

/* ---- Compress ---------------------------------------------------------- */

static kiln_status_t compress_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0), *cond = kiln_ctx_input(ctx, 1);
    if (!x || !cond || cond->rank != 1)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "needs input and a 1-D condition");
    slice_view_t v = {x, 1, x->count, 1};
    int axis = -1;
    if (kiln_node_attr(node, "axis")) {
        if (!kiln_axis_normalize(kiln_attr_int(node, "axis", 0), x->rank, &axis))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "axis out of range for rank %d", x->rank);
        kiln_axis_split(x->rank, x->dims, axis, &v.outer, &v.inner);
        v.n = x->dims[axis];
    }
    if (cond->count > v.n)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "condition has %lld entries for %lld slices",
                             (long long)cond->count, (long long)v.n);
    int64_t kept = 0;
    for (int64_t i = 0; i < cond->count; i++)
        kept += element_nonzero(cond, i);
    int64_t ydims[KILN_MAX_RANK];
    int yrank = axis < 0 ? 1 : x->rank;
    if (axis < 0) {
        ydims[0] = kept;
    } else {
        memcpy(ydims, x->dims, sizeof(int64_t) * (size_t)x->rank);
        ydims[axis] = kept;
    }
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, yrank, ydims);
    if (!y)
        return kiln_ctx_status(ctx);
    for (int64_t i = 0, dst = 0; i < cond->count; i++) {
        if (!element_nonzero(cond, i))
            continue;
        if (copy_slice(&v, i, y, kept, dst++) != KILN_OK)
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
    }
    return KILN_OK;
}

/* ---- registration ------------------------------------------------------ */

static void register_op(kiln_registry_t *reg, const char *op, int since, kiln_kernel_run_fn run)
{
    kiln_register(reg, &(kiln_kernel_t){.op = op, .since = since, .run = run});
}

void kiln_ops_register_misc(kiln_registry_t *reg)
{
    register_op(reg, "Einsum", 12, einsum_run);
    register_op(reg, "Det", 11, det_run);
    register_op(reg, "Unique", 11, unique_run);
    register_op(reg, "NonZero", 9, nonzero_run);
    register_op(reg, "Trilu", 14, trilu_run);
    register_op(reg, "EyeLike", 9, eyelike_run);
    register_op(reg, "Range", 11, range_run);
    register_op(reg, "OneHot", 9, onehot_run);
    register_op(reg, "Compress", 9, compress_run);
}
