/*
 * text.c - Text ops: StringNormalizer and TfIdfVectorizer.
 *
 * StringNormalizer drops stopwords and changes case.  Case mapping is done
 * byte by byte on ASCII letters (the en_US behaviour for ASCII text; bytes
 * of multi-byte UTF-8 sequences pass through unchanged), which keeps the op
 * independent of the process locale.
 *
 * TfIdfVectorizer counts, per input row, how often each n-gram of the pool
 * occurs (n-grams may skip up to max_skip_count items between their
 * elements) and turns the counts into TF, IDF or TF-IDF values.  The pool is
 * searched linearly per candidate n-gram; pools and rows in practice are
 * small enough that an index would add code without a measurable gain.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ops/kernel.h"

/* ==== StringNormalizer ====================================================== */

typedef enum case_action { CASE_NONE, CASE_LOWER, CASE_UPPER } case_action_t;

static bool is_stopword(const char *s, const char *const *stopwords, int64_t n,
                        bool case_sensitive)
{
    for (int64_t i = 0; i < n; i++)
        if (case_sensitive ? !strcmp(s, stopwords[i]) : !strcasecmp(s, stopwords[i]))
            return true;
    return false;
}

/* A malloc'd copy of s with its case changed. NULL when out of memory. */
static char *change_case(const char *s, case_action_t action)
{
    char *out = strdup(s);
    if (!out || action == CASE_NONE)
        return out;
    for (char *p = out; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x80)
            *p = (char)(action == CASE_UPPER ? toupper(c) : tolower(c));
    }
    return out;
}

static kiln_status_t string_normalizer_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const char *action_s = kiln_attr_string(node, "case_change_action", "NONE");
    bool case_sensitive = kiln_attr_int(node, "is_case_sensitive", 0) != 0;
    const char *const *stopwords = NULL;
    int64_t n_stop = kiln_attr_strings(node, "stopwords", &stopwords);
    if (n_stop < 0)
        n_stop = 0;
    case_action_t action;
    if (!strcmp(action_s, "NONE"))
        action = CASE_NONE;
    else if (!strcmp(action_s, "LOWER"))
        action = CASE_LOWER;
    else if (!strcmp(action_s, "UPPER"))
        action = CASE_UPPER;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown case_change_action '%s'",
                             action_s);
    if (!x || x->dtype != KILN_DTYPE_STRING)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a string tensor");
    if (!(x->rank == 1 || (x->rank == 2 && x->dims[0] == 1)))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must have shape [C] or [1, C]");

    const char *const *in = x->data;
    int64_t kept = 0;
    for (int64_t i = 0; i < x->count; i++)
        kept += !is_stopword(in[i], stopwords, n_stop, case_sensitive);
    /* An all-stopword input gives one empty string, as ONNX Runtime does. */
    int64_t dims[2] = {1, kept ? kept : 1};
    kiln_tensor_t *y = x->rank == 1 ? kiln_ctx_output(ctx, 0, KILN_DTYPE_STRING, 1, dims + 1)
                                    : kiln_ctx_output(ctx, 0, KILN_DTYPE_STRING, 2, dims);
    if (!y)
        return kiln_ctx_status(ctx);
    char **out = y->data;
    int64_t o = 0;
    for (int64_t i = 0; i < x->count; i++) {
        if (is_stopword(in[i], stopwords, n_stop, case_sensitive))
            continue;
        free(out[o]);
        out[o] = change_case(in[i], action);
        if (!out[o++])
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
    }
    if (!kept) {
        free(out[0]);
        out[0] = strdup("");
        if (!out[0])
            return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory copying strings");
    }
    return KILN_OK;
}

/* ==== TfIdfVectorizer ======================================================= */

/* Longest n-gram kiln counts (real models use 1 to 3). */
#define TFIDF_MAX_GRAM 64

typedef enum tfidf_mode { TFIDF_TF, TFIDF_IDF, TFIDF_TFIDF } tfidf_mode_t;

/* The pool and the attributes of one TfIdfVectorizer node. */
typedef struct tfidf {
    int64_t min_n, max_n, max_skip;
    tfidf_mode_t mode;
    const int64_t *counts; /* ngram_counts: pool start of each n-gram size */
    int64_t n_counts;
    const int64_t *indexes; /* ngram_indexes: output column of each pool n-gram */
    int64_t n_indexes;
    const float *weights; /* may be NULL */
    int64_t n_weights;
    const int64_t *pool_ints; /* one of pool_ints / pool_strs */
    const char *const *pool_strs;
    int64_t pool_len;
    int64_t out_cols;
} tfidf_t;

/* True when input item `a` (of tensor x) equals pool item `p`. */
static bool item_matches(const tfidf_t *t, const kiln_tensor_t *x, int64_t a, int64_t p)
{
    if (t->pool_strs)
        return x->dtype == KILN_DTYPE_STRING && !strcmp(((char *const *)x->data)[a], t->pool_strs[p]);
    return x->dtype != KILN_DTYPE_STRING && kiln_tensor_get_i64(x, a) == t->pool_ints[p];
}

/* The ordinal (across all sizes, in pool order) of the n-gram made of the
 * input items at pos[0..n), or -1 when the pool lacks it. */
static int64_t find_ngram(const tfidf_t *t, const kiln_tensor_t *x, const int64_t *pos, int64_t n)
{
    if (n > t->n_counts)
        return -1;
    int64_t start = t->counts[n - 1];
    int64_t end = n < t->n_counts ? t->counts[n] : t->pool_len;
    int64_t ordinal = 0; /* n-grams of smaller sizes come first */
    for (int64_t m = 1; m < n; m++) {
        int64_t s = t->counts[m - 1], e = m < t->n_counts ? t->counts[m] : t->pool_len;
        ordinal += (e - s) / m;
    }
    for (int64_t g = start, k = 0; g + n <= end; g += n, k++) {
        int64_t i = 0;
        while (i < n && item_matches(t, x, pos[i], g + i))
            i++;
        if (i == n)
            return ordinal + k;
    }
    return -1;
}

/* Reads and checks the attributes. */
static kiln_status_t read_tfidf(kiln_kernel_ctx_t *ctx, tfidf_t *t)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    t->min_n = kiln_attr_int(node, "min_gram_length", 1);
    t->max_n = kiln_attr_int(node, "max_gram_length", 1);
    t->max_skip = kiln_attr_int(node, "max_skip_count", 0);
    const char *mode = kiln_attr_string(node, "mode", "TF");
    if (!strcmp(mode, "TF"))
        t->mode = TFIDF_TF;
    else if (!strcmp(mode, "IDF"))
        t->mode = TFIDF_IDF;
    else if (!strcmp(mode, "TFIDF"))
        t->mode = TFIDF_TFIDF;
    else
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown mode '%s'", mode);
    t->n_counts = kiln_attr_ints(node, "ngram_counts", &t->counts);
    t->n_indexes = kiln_attr_ints(node, "ngram_indexes", &t->indexes);
    t->n_weights = kiln_attr_floats(node, "weights", &t->weights);
    int64_t n_ints = kiln_attr_ints(node, "pool_int64s", &t->pool_ints);
    int64_t n_strs = kiln_attr_strings(node, "pool_strings", &t->pool_strs);
    if (n_ints >= 0) {
        t->pool_len = n_ints;
        t->pool_strs = NULL;
    } else if (n_strs >= 0) {
        t->pool_len = n_strs;
        t->pool_ints = NULL;
    } else {
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "one of pool_int64s and pool_strings is required");
    }
    if (t->min_n < 1 || t->max_n < t->min_n || t->max_skip < 0 || t->n_counts < 1 ||
        t->n_indexes < 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "gram lengths, max_skip_count or ngram_counts/indexes are invalid");
    for (int64_t i = 0; i < t->n_counts; i++)
        if (t->counts[i] < 0 || t->counts[i] > t->pool_len ||
            (i > 0 && t->counts[i] < t->counts[i - 1]))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "ngram_counts is not increasing "
                                                                 "within the pool");
    if (t->max_n > TFIDF_MAX_GRAM)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "max_gram_length above %d",
                             TFIDF_MAX_GRAM);
    int64_t n_ngrams = 0;
    for (int64_t m = 1; m <= t->n_counts; m++) {
        int64_t e = m < t->n_counts ? t->counts[m] : t->pool_len;
        n_ngrams += (e - t->counts[m - 1]) / m;
    }
    if (t->n_indexes < n_ngrams)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "ngram_indexes has %lld entries for %lld pool n-grams",
                             (long long)t->n_indexes, (long long)n_ngrams);
    t->out_cols = 0;
    for (int64_t i = 0; i < t->n_indexes; i++) {
        if (t->indexes[i] < 0 || t->indexes[i] > ((int64_t)1 << 32))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "ngram_indexes[%lld] is invalid",
                                 (long long)i);
        if (t->indexes[i] + 1 > t->out_cols)
            t->out_cols = t->indexes[i] + 1;
    }
    return KILN_OK;
}

/* Counts the pool n-grams in row [begin, begin + len) into counts[ordinal]. */
static void count_row(const tfidf_t *t, const kiln_tensor_t *x, int64_t begin, int64_t len,
                      int64_t *counts)
{
    int64_t pos[TFIDF_MAX_GRAM];
    for (int64_t s = 0; s < len; s++)
        for (int64_t n = t->min_n; n <= t->max_n; n++)
            for (int64_t skip = 0; skip <= t->max_skip; skip++) {
                if (n == 1 && skip > 0)
                    break; /* a unigram is the same whatever the skip */
                if (s + (n - 1) * (skip + 1) >= len)
                    break;
                for (int64_t i = 0; i < n; i++)
                    pos[i] = begin + s + i * (skip + 1);
                int64_t ord = find_ngram(t, x, pos, n);
                if (ord >= 0)
                    counts[ord]++;
            }
}

static kiln_status_t tfidf_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    tfidf_t t;
    kiln_status_t st = read_tfidf(ctx, &t);
    if (st != KILN_OK)
        return st;
    if (!x || (x->rank != 1 && x->rank != 2))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must have shape [C] or [N, C]");
    if ((x->dtype == KILN_DTYPE_STRING) != (t.pool_strs != NULL))
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "string input needs pool_strings, integer input pool_int64s");
    int64_t rows = x->rank == 2 ? x->dims[0] : 1;
    int64_t cols = x->dims[x->rank - 1];
    int64_t dims[2] = {rows, t.out_cols};
    kiln_tensor_t *y = x->rank == 2 ? kiln_ctx_output(ctx, 0, KILN_DTYPE_FLOAT32, 2, dims)
                                    : kiln_ctx_output(ctx, 0, KILN_DTYPE_FLOAT32, 1, dims + 1);
    if (!y)
        return kiln_ctx_status(ctx);
    int64_t *counts = malloc((size_t)(t.n_indexes + 1) * sizeof *counts);
    if (!counts)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for n-gram counts");
    float *out = y->data;
    for (int64_t r = 0; r < rows; r++) {
        memset(counts, 0, (size_t)(t.n_indexes + 1) * sizeof *counts);
        count_row(&t, x, r * cols, cols, counts);
        for (int64_t g = 0; g < t.n_indexes; g++) {
            if (!counts[g])
                continue;
            double w = g < t.n_weights ? t.weights[g] : 1.0;
            double v = t.mode == TFIDF_TF ? (double)counts[g]
                       : t.mode == TFIDF_IDF ? w
                                             : (double)counts[g] * w;
            out[r * t.out_cols + t.indexes[g]] += (float)v;
        }
    }
    free(counts);
    return KILN_OK;
}

void kiln_ops_register_text(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "StringNormalizer", .since = 10,
                                        .run = string_normalizer_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "TfIdfVectorizer", .since = 9, .run = tfidf_run});
}
