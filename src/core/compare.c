/*
 * compare.c - tolerance comparison of tensors and values (see compare.h).
 */
#include "core/compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

bool kiln_tensor_allclose(const kiln_tensor_t *got, const kiln_tensor_t *want, double rtol, double atol,
                          kiln_compare_stats_t *stats, char *why, size_t why_len)
{
    kiln_compare_stats_t local = {0};
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    char a[256], b[256];
    if (got->dtype != want->dtype) {
        snprintf(why, why_len, "dtype %s, expected %s", kiln_dtype_name(got->dtype), kiln_dtype_name(want->dtype));
        return false;
    }
    if (!kiln_shape_equal(got, want)) {
        snprintf(why, why_len, "shape %s, expected %s", kiln_shape_str(got->rank, got->dims, a, sizeof a),
                 kiln_shape_str(want->rank, want->dims, b, sizeof b));
        return false;
    }
    int64_t first_bad = -1;
    if (got->dtype == KILN_DTYPE_STRING) {
        char *const *g = got->data, *const *w = want->data;
        for (int64_t i = 0; i < got->count; i++)
            if (strcmp(g[i] ? g[i] : "", w[i] ? w[i] : "")) {
                snprintf(why, why_len, "element %lld is \"%.60s\", expected \"%.60s\"", (long long)i, g[i], w[i]);
                return false;
            }
        return true;
    }
    bool is_float = kiln_dtype_is_float(got->dtype);
    for (int64_t i = 0; i < got->count; i++) {
        if (!is_float) {
            if (kiln_tensor_get_i64(got, i) != kiln_tensor_get_i64(want, i)) {
                stats->mismatches++;
                if (first_bad < 0)
                    first_bad = i;
            }
            continue;
        }
        double g = kiln_tensor_get_f64(got, i), w = kiln_tensor_get_f64(want, i);
        if (isnan(g) || isnan(w)) {
            if (!(isnan(g) && isnan(w))) {
                stats->mismatches++;
                if (first_bad < 0)
                    first_bad = i;
            }
            continue;
        }
        if (isinf(g) || isinf(w)) {
            if (g != w) {
                stats->mismatches++;
                if (first_bad < 0)
                    first_bad = i;
            }
            continue;
        }
        double err = fabs(g - w);
        if (err > stats->max_abs_err)
            stats->max_abs_err = err;
        if (w != 0 && err / fabs(w) > stats->max_rel_err)
            stats->max_rel_err = err / fabs(w);
        if (err > atol + rtol * fabs(w)) {
            stats->mismatches++;
            if (first_bad < 0)
                first_bad = i;
        }
    }
    if (first_bad >= 0) {
        if (is_float)
            snprintf(why, why_len, "%lld of %lld values differ; first at %lld: %.9g, expected %.9g (max abs err %.3g)",
                     (long long)stats->mismatches, (long long)got->count, (long long)first_bad,
                     kiln_tensor_get_f64(got, first_bad), kiln_tensor_get_f64(want, first_bad), stats->max_abs_err);
        else
            snprintf(why, why_len, "%lld of %lld values differ; first at %lld: %lld, expected %lld",
                     (long long)stats->mismatches, (long long)got->count, (long long)first_bad,
                     (long long)kiln_tensor_get_i64(got, first_bad), (long long)kiln_tensor_get_i64(want, first_bad));
        return false;
    }
    return true;
}

bool kiln_value_allclose(const kiln_value_t *got, const kiln_value_t *want, double rtol, double atol, char *why,
                         size_t why_len)
{
    static const char *kinds[] = {"?", "tensor", "sequence", "empty optional"};
    if (got->kind != want->kind) {
        snprintf(why, why_len, "got a %s, expected a %s", kinds[got->kind], kinds[want->kind]);
        return false;
    }
    if (got->kind == KILN_VALUE_TENSOR)
        return kiln_tensor_allclose(got->tensor, want->tensor, rtol, atol, NULL, why, why_len);
    if (got->kind == KILN_VALUE_SEQUENCE) {
        if (got->count != want->count) {
            snprintf(why, why_len, "sequence of %lld tensors, expected %lld", (long long)got->count,
                     (long long)want->count);
            return false;
        }
        for (int64_t i = 0; i < got->count; i++) {
            char inner[384];
            if (!kiln_tensor_allclose(got->items[i], want->items[i], rtol, atol, NULL, inner, sizeof inner)) {
                snprintf(why, why_len, "sequence item %lld: %s", (long long)i, inner);
                return false;
            }
        }
    }
    return true;
}
