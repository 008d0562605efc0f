/*
 * text.c - Text ops: StringNormalizer, TfIdfVectorizer, StringConcat,
 * StringSplit, RegexFullMatch.
 *
 * StringNormalizer drops stopwords and changes case.  Case mapping is done
 * byte by byte on ASCII letters (the en_US behaviour for ASCII text; bytes
 * of multi-byte UTF-8 sequences pass through unchanged), which keeps the op
 * independent of the process locale.
 *
 * TfIdfVectorizer counts, per input row, how often each n-gram of the pool
 * occurs (n-grams may skip up to max_skip_count items between their
 * elements) and turns the counts into TF, IDF or TF-IDF values.  The pool's
 * n-grams of each size are sorted once per call, and every candidate n-gram
 * of the input is found by binary search (pools of converted scikit-learn
 * models hold tens of thousands of n-grams).
 */
#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ops/broadcast.h"
#include "ops/kernel.h"

/* ==== StringNormalizer ====================================================== */

typedef enum case_action { CASE_NONE, CASE_LOWER, CASE_UPPER } case_action_t;

static bool is_stopword(const char *s, const char *const *stopwords, int64_t n, bool case_sensitive)
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
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "unknown case_change_action '%s'", action_s);
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

/* The pool n-grams of one size, sorted by content for binary search. */
typedef struct gram_table {
    int64_t start;    /* pool offset of the first n-gram of this size */
    int64_t count;    /* how many n-grams of this size */
    int64_t ordinal0; /* ordinal of the first (smaller sizes come first) */
    int64_t *sorted;  /* k in [0, count), by content, then by k */
} gram_table_t;

/* Orders pool items p and q (both of the pool's kind). */
static int pool_item_cmp(const tfidf_t *t, int64_t p, int64_t q)
{
    if (t->pool_strs)
        return strcmp(t->pool_strs[p], t->pool_strs[q]);
    return (t->pool_ints[p] > t->pool_ints[q]) - (t->pool_ints[p] < t->pool_ints[q]);
}

/* Orders input item a of x against pool item p (x's kind matches the pool's). */
static int input_item_cmp(const tfidf_t *t, const kiln_tensor_t *x, int64_t a, int64_t p)
{
    if (t->pool_strs)
        return strcmp(((char *const *)x->data)[a], t->pool_strs[p]);
    int64_t v = kiln_tensor_get_i64(x, a);
    return (v > t->pool_ints[p]) - (v < t->pool_ints[p]);
}

typedef struct gram_sort_ctx {
    const tfidf_t *t;
    int64_t start, n;
} gram_sort_ctx_t;

static int gram_cmp(const void *a, const void *b, void *arg)
{
    const gram_sort_ctx_t *c = arg;
    int64_t ka = *(const int64_t *)a, kb = *(const int64_t *)b;
    for (int64_t i = 0; i < c->n; i++) {
        int r = pool_item_cmp(c->t, c->start + ka * c->n + i, c->start + kb * c->n + i);
        if (r)
            return r;
    }
    return (ka > kb) - (ka < kb); /* duplicates: the first in the pool wins */
}

/* Builds the sorted tables of sizes 1..n_tables.  False when out of memory. */
static bool build_gram_tables(const tfidf_t *t, gram_table_t *tables, int64_t n_tables)
{
    int64_t ordinal = 0;
    for (int64_t n = 1; n <= n_tables; n++) {
        gram_table_t *g = &tables[n - 1];
        int64_t end = n < t->n_counts ? t->counts[n] : t->pool_len;
        g->start = t->counts[n - 1];
        g->count = (end - g->start) / n;
        g->ordinal0 = ordinal;
        ordinal += g->count;
        g->sorted = malloc((size_t)(g->count + 1) * sizeof *g->sorted);
        if (!g->sorted)
            return false;
        for (int64_t k = 0; k < g->count; k++)
            g->sorted[k] = k;
        gram_sort_ctx_t c = {t, g->start, n};
        qsort_r(g->sorted, (size_t)g->count, sizeof *g->sorted, gram_cmp, &c);
    }
    return true;
}

/* Orders the input n-gram at pos[0..n) against pool n-gram k of table g. */
static int input_gram_cmp(const tfidf_t *t, const kiln_tensor_t *x, const int64_t *pos, int64_t n,
                          const gram_table_t *g, int64_t k)
{
    for (int64_t i = 0; i < n; i++) {
        int r = input_item_cmp(t, x, pos[i], g->start + k * n + i);
        if (r)
            return r;
    }
    return 0;
}

/* The ordinal (across all sizes, in pool order) of the n-gram made of the
 * input items at pos[0..n), or -1 when the pool lacks it. */
static int64_t find_ngram(const tfidf_t *t, const gram_table_t *tables, const kiln_tensor_t *x,
                          const int64_t *pos, int64_t n)
{
    const gram_table_t *g = &tables[n - 1];
    int64_t lo = 0, hi = g->count; /* lower bound of the input n-gram */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (input_gram_cmp(t, x, pos, n, g, g->sorted[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < g->count && input_gram_cmp(t, x, pos, n, g, g->sorted[lo]) == 0)
        return g->ordinal0 + g->sorted[lo];
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
    if (t->min_n < 1 || t->max_n < t->min_n || t->max_skip < 0 || t->n_counts < 1 || t->n_indexes < 0)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "gram lengths, max_skip_count or ngram_counts/indexes are invalid");
    for (int64_t i = 0; i < t->n_counts; i++)
        if (t->counts[i] < 0 || t->counts[i] > t->pool_len || (i > 0 && t->counts[i] < t->counts[i - 1]))
            return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                                 "ngram_counts is not increasing "
                                 "within the pool");
    if (t->max_n > TFIDF_MAX_GRAM)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "max_gram_length above %d", TFIDF_MAX_GRAM);
    int64_t n_ngrams = 0;
    for (int64_t m = 1; m <= t->n_counts; m++) {
        int64_t e = m < t->n_counts ? t->counts[m] : t->pool_len;
        n_ngrams += (e - t->counts[m - 1]) / m;
    }
    if (t->n_indexes < n_ngrams)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT,
                             "ngram_indexes has %lld entries for %lld pool n-grams", (long long)t->n_indexes,
                             (long long)n_ngrams);
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

/* Counts the pool n-grams in row [begin, begin + len) into counts[ordinal];
 * sizes above n_tables have no pool n-grams. */
static void count_row(const tfidf_t *t, const gram_table_t *tables, int64_t n_tables, const kiln_tensor_t *x,
                      int64_t begin, int64_t len, int64_t *counts)
{
    int64_t pos[TFIDF_MAX_GRAM];
    int64_t max_n = t->max_n < n_tables ? t->max_n : n_tables;
    for (int64_t s = 0; s < len; s++)
        for (int64_t n = t->min_n; n <= max_n; n++)
            for (int64_t skip = 0; skip <= t->max_skip; skip++) {
                if (n == 1 && skip > 0)
                    break; /* a unigram is the same whatever the skip */
                if (s + (n - 1) * (skip + 1) >= len)
                    break;
                for (int64_t i = 0; i < n; i++)
                    pos[i] = begin + s + i * (skip + 1);
                int64_t ord = find_ngram(t, tables, x, pos, n);
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
    int64_t n_tables = t.max_n < t.n_counts ? t.max_n : t.n_counts;
    gram_table_t tables[TFIDF_MAX_GRAM] = {{0}};
    int64_t *counts = malloc((size_t)(t.n_indexes + 1) * sizeof *counts);
    if (!counts || !build_gram_tables(&t, tables, n_tables)) {
        free(counts);
        for (int64_t n = 0; n < n_tables; n++)
            free(tables[n].sorted);
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory for n-gram counts");
    }
    float *out = y->data;
    for (int64_t r = 0; r < rows; r++) {
        memset(counts, 0, (size_t)(t.n_indexes + 1) * sizeof *counts);
        count_row(&t, tables, n_tables, x, r * cols, cols, counts);
        for (int64_t g = 0; g < t.n_indexes; g++) {
            if (!counts[g])
                continue;
            double w = g < t.n_weights ? t.weights[g] : 1.0;
            double v = t.mode == TFIDF_TF    ? (double)counts[g]
                       : t.mode == TFIDF_IDF ? w
                                             : (double)counts[g] * w;
            out[r * t.out_cols + t.indexes[g]] += (float)v;
        }
    }
    free(counts);
    for (int64_t n = 0; n < n_tables; n++)
        free(tables[n].sorted);
    return KILN_OK;
}

/* ==== StringConcat ========================================================== */

/* StringConcat (opset 20): Z = X + Y elementwise with numpy broadcasting. */

typedef struct concat_job {
    char *const *x, *const *y;
    char **z;
    bool failed; /* out of memory */
} concat_job_t;

static void concat_rows(void *arg, int64_t out_off, const int64_t *in_off, const int64_t *step, int64_t len)
{
    concat_job_t *j = arg;
    for (int64_t i = 0; i < len; i++) {
        const char *a = j->x[in_off[0] + i * step[0]], *b = j->y[in_off[1] + i * step[1]];
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 1);
        if (!s) {
            j->failed = true;
            return;
        }
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
        free(j->z[out_off + i]);
        j->z[out_off + i] = s;
    }
}

static kiln_status_t string_concat_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *ts[2] = {kiln_ctx_input(ctx, 0), kiln_ctx_input(ctx, 1)};
    if (!ts[0] || !ts[1] || ts[0]->dtype != KILN_DTYPE_STRING || ts[1]->dtype != KILN_DTYPE_STRING)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X and Y must be string tensors");
    kiln_bcast_t bc;
    int rank;
    int64_t dims[KILN_MAX_RANK];
    kiln_status_t st = kiln_bcast_tensors(&bc, 2, ts, &rank, dims);
    if (st != KILN_OK)
        return kiln_ctx_fail(ctx, st, "%s", kiln_last_error());
    kiln_tensor_t *z = kiln_ctx_output(ctx, 0, KILN_DTYPE_STRING, rank, dims);
    if (!z)
        return kiln_ctx_status(ctx);
    concat_job_t job = {ts[0]->data, ts[1]->data, z->data, false};
    kiln_bcast_rows(&bc, 0, z->count, concat_rows, &job);
    if (job.failed)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory concatenating strings");
    return KILN_OK;
}

/* ==== StringSplit =========================================================== */

/* StringSplit (opset 20) splits each string like Python's str.split: on
 * every occurrence of `delimiter`, or, when it is unset or empty, on runs
 * of whitespace ignoring leading and trailing whitespace; at most maxsplit
 * splits, the rest staying in the last piece.  Y pads every row to the
 * longest with empty strings; Z counts the pieces. */

static bool is_split_space(char c)
{
    unsigned char u = (unsigned char)c;
    return isspace(u) || (u >= 0x1c && u <= 0x1f); /* Python counts \x1c-\x1f too */
}

/* Splits s into pieces (each [start, end) offsets stored in spans, two per
 * piece, when spans is not NULL).  Returns the number of pieces. */
static int64_t split_string(const char *s, const char *delim, int64_t maxsplit, int64_t *spans)
{
    int64_t n = 0, len = (int64_t)strlen(s);
    if (delim && *delim) {
        int64_t dl = (int64_t)strlen(delim), start = 0;
        for (int64_t i = 0; i + dl <= len && (maxsplit < 0 || n < maxsplit);) {
            if (!memcmp(s + i, delim, (size_t)dl)) {
                if (spans)
                    spans[2 * n] = start, spans[2 * n + 1] = i;
                n++;
                i += dl;
                start = i;
            } else {
                i++;
            }
        }
        if (spans)
            spans[2 * n] = start, spans[2 * n + 1] = len;
        return n + 1;
    }
    int64_t i = 0;
    for (;;) {
        while (i < len && is_split_space(s[i]))
            i++;
        if (i == len)
            return n;
        int64_t start = i;
        if (maxsplit >= 0 && n == maxsplit) {
            /* The remainder, trailing whitespace kept as Python does. */
            if (spans)
                spans[2 * n] = start, spans[2 * n + 1] = len;
            return n + 1;
        }
        while (i < len && !is_split_space(s[i]))
            i++;
        if (spans)
            spans[2 * n] = start, spans[2 * n + 1] = i;
        n++;
    }
}

static kiln_status_t string_split_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_node_t *node = kiln_ctx_node(ctx);
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const char *delim = kiln_attr_string(node, "delimiter", NULL);
    int64_t maxsplit = kiln_attr_int(node, "maxsplit", -1);
    if (!x || x->dtype != KILN_DTYPE_STRING)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a string tensor");
    if (x->rank >= KILN_MAX_RANK)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "X has too many dimensions");
    char *const *in = x->data;
    int64_t widest = 0;
    for (int64_t i = 0; i < x->count; i++) {
        int64_t n = split_string(in[i], delim, maxsplit, NULL);
        widest = n > widest ? n : widest;
    }
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[x->rank] = widest;
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_STRING, x->rank + 1, dims);
    kiln_tensor_t *z = y ? kiln_ctx_output(ctx, 1, KILN_DTYPE_INT64, x->rank, x->dims) : NULL;
    if (!z)
        return kiln_ctx_status(ctx);
    int64_t *spans = malloc((size_t)(2 * widest + 2) * sizeof *spans);
    if (!spans)
        return kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory splitting strings");
    char **out = y->data;
    kiln_status_t st = KILN_OK;
    for (int64_t i = 0; i < x->count && st == KILN_OK; i++) {
        int64_t n = split_string(in[i], delim, maxsplit, spans);
        ((int64_t *)z->data)[i] = n;
        for (int64_t p = 0; p < widest; p++) {
            int64_t a = p < n ? spans[2 * p] : 0, b = p < n ? spans[2 * p + 1] : 0;
            char *piece = strndup(in[i] + a, (size_t)(b - a));
            if (!piece) {
                st = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "out of memory splitting strings");
                break;
            }
            free(out[i * widest + p]);
            out[i * widest + p] = piece;
        }
    }
    free(spans);
    return st;
}

/* ==== RegexFullMatch ======================================================== */

/* RegexFullMatch (opset 20) tells whether each string matches `pattern`
 * entirely.  ONNX patterns use RE2 syntax; kiln translates the common
 * subset to a POSIX extended expression anchored at both ends and runs the
 * C library's regex (glibc supports \w \W \s \S \b \B outside brackets).
 * Translated: \d \D, \w \s \d inside brackets, (?: groups, lazy
 * quantifiers (they cannot change whether a full match exists), \n \t \r
 * escapes and escaped punctuation.  Anything else RE2-specific (lookaround,
 * \p classes, named groups, backreferences) fails as UNSUPPORTED.  Matching
 * is byte-wise: '.' matches one byte of a multi-byte UTF-8 character. */

/* A growing string for the translation. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool failed;
} strbuf_t;

static void sb_add(strbuf_t *b, const char *text, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(strbuf_t *b, const char *text)
{
    sb_add(b, text, strlen(text));
}

static void sb_putc(strbuf_t *b, char c)
{
    sb_add(b, &c, 1);
}

/* The character an escape like \n stands for, or 0 for none of these. */
static char control_escape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    case 'f':
        return '\f';
    case 'v':
        return '\v';
    default:
        return 0;
    }
}

/* Translates the bracket expression starting after '[' at *pp; advances
 * *pp past its ']'.  False when unsupported or unterminated. */
static bool translate_bracket(const char **pp, strbuf_t *out)
{
    const char *p = *pp;
    strbuf_t body = {0};
    bool negate = false, dash = false, rbracket = false;
    if (*p == '^')
        negate = true, p++;
    if (*p == ']')
        rbracket = true, p++; /* a leading ']' is literal */
    while (*p && *p != ']') {
        if (p[0] == '[' && p[1] == ':') { /* [:class:] passes through */
            const char *end = strstr(p + 2, ":]");
            if (!end)
                break;
            sb_add(&body, p, (size_t)(end + 2 - p));
            p = end + 2;
        } else if (*p == '\\' && p[1]) {
            char c = p[1];
            if (c == 'd')
                sb_puts(&body, "0-9");
            else if (c == 'w')
                sb_puts(&body, "[:alnum:]_");
            else if (c == 's')
                sb_puts(&body, "[:space:]");
            else if (c == '-')
                dash = true;
            else if (c == ']')
                rbracket = true;
            else if (control_escape(c))
                sb_putc(&body, control_escape(c));
            else if (ispunct((unsigned char)c))
                sb_putc(&body, c); /* literal inside POSIX brackets, '\\' included */
            else
                break; /* \D \W \S \p ... inside brackets */
            p += 2;
        } else {
            sb_putc(&body, *p++);
        }
    }
    bool ok = *p == ']' && !body.failed;
    if (ok) {
        sb_puts(out, negate ? "[^" : "[");
        if (rbracket)
            sb_putc(out, ']');
        if (body.s)
            sb_puts(out, body.s);
        if (dash)
            sb_putc(out, '-');
        sb_putc(out, ']');
        *pp = p + 1;
    }
    free(body.s);
    return ok;
}

/* The POSIX extended form of an RE2 pattern, anchored at both ends
 * (malloc'd), or NULL when the pattern uses what kiln cannot translate. */
static char *re2_to_posix(const char *re)
{
    strbuf_t out = {0};
    sb_puts(&out, "^(");
    bool after_quantifier = false;
    for (const char *p = re; *p && !out.failed;) {
        char c = *p;
        if (c == '?' && after_quantifier) { /* lazy quantifier: same full matches */
            p++;
            after_quantifier = false;
            continue;
        }
        after_quantifier = c == '*' || c == '+' || c == '?' || c == '}';
        if (c == '\\' && p[1]) {
            char e = p[1];
            if (e == 'd')
                sb_puts(&out, "[0-9]");
            else if (e == 'D')
                sb_puts(&out, "[^0-9]");
            else if (strchr("wWsSbB", e))
                sb_add(&out, p, 2);
            else if (control_escape(e))
                sb_putc(&out, control_escape(e));
            else if (ispunct((unsigned char)e))
                sb_add(&out, p, 2);
            else
                goto unsupported;
            p += 2;
        } else if (c == '(' && p[1] == '?') {
            if (p[2] != ':')
                goto unsupported;
            sb_putc(&out, '(');
            p += 3;
        } else if (c == '[') {
            p++;
            if (!translate_bracket(&p, &out))
                goto unsupported;
        } else {
            sb_putc(&out, c);
            p++;
        }
    }
    sb_puts(&out, ")$");
    if (out.failed)
        goto unsupported;
    return out.s;
unsupported:
    free(out.s);
    return NULL;
}

static kiln_status_t regex_full_match_run(kiln_kernel_ctx_t *ctx)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
    const char *pattern = kiln_attr_string(kiln_ctx_node(ctx), "pattern", NULL);
    if (!x || x->dtype != KILN_DTYPE_STRING)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "X must be a string tensor");
    if (!pattern)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "attribute pattern is required");
    char *posix = re2_to_posix(pattern);
    if (!posix)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "pattern '%s' uses RE2 syntax kiln cannot translate",
                             pattern);
    regex_t re;
    int rc = regcomp(&re, posix, REG_EXTENDED | REG_NOSUB);
    free(posix);
    if (rc != 0)
        return kiln_ctx_fail(ctx, KILN_ERR_UNSUPPORTED, "pattern '%s' does not compile", pattern);
    kiln_tensor_t *y = kiln_ctx_output(ctx, 0, KILN_DTYPE_BOOL, x->rank, x->dims);
    if (y) {
        char *const *in = x->data;
        for (int64_t i = 0; i < x->count; i++)
            ((uint8_t *)y->data)[i] = regexec(&re, in[i], 0, NULL, 0) == 0;
    }
    regfree(&re);
    return y ? KILN_OK : kiln_ctx_status(ctx);
}

void kiln_ops_register_text(kiln_registry_t *reg)
{
    kiln_register(reg, &(kiln_kernel_t){.op = "StringNormalizer", .since = 10, .run = string_normalizer_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "TfIdfVectorizer", .since = 9, .run = tfidf_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "StringConcat", .since = 20, .run = string_concat_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "StringSplit", .since = 20, .run = string_split_run});
    kiln_register(reg, &(kiln_kernel_t){.op = "RegexFullMatch", .since = 20, .run = regex_full_match_run});
}
