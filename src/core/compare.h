/*
 * compare.h - comparing a computed value with an expected one, the way
 * ONNX's backend tests do: dtype and shape must match; floats pass when
 * |got - want| <= atol + rtol * |want| (NaN equals NaN, infinities must
 * match exactly); integers, bools and strings compare exactly.
 */
#ifndef KILN_CORE_COMPARE_H
#define KILN_CORE_COMPARE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/tensor.h"

/* Largest absolute and relative errors seen, for reports. */
typedef struct kiln_compare_stats {
    double max_abs_err;
    double max_rel_err;
    int64_t mismatches;
} kiln_compare_stats_t;

/* True when got matches want; otherwise writes the first reason to why. */
bool kiln_tensor_allclose(const kiln_tensor_t *got, const kiln_tensor_t *want, double rtol, double atol,
                          kiln_compare_stats_t *stats, char *why, size_t why_len);
bool kiln_value_allclose(const kiln_value_t *got, const kiln_value_t *want, double rtol, double atol,
                         char *why, size_t why_len);

#endif
