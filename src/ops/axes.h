/*
 * axes.h - axis arithmetic shared by the reduction, normalization and misc
 * kernels: turning a possibly negative ONNX axis into an index, reading an
 * axes list from an attribute or an input into a mask, and splitting a shape
 * around one axis into (outer, axis, inner) extents.
 *
 * These are tiny pure functions kept out of the kernels so the unit tests
 * can call them directly (tests/unit/test_reduce.c).
 */
#ifndef KILN_OPS_AXES_H
#define KILN_OPS_AXES_H

#include <stdbool.h>
#include <stdint.h>

/* Maps axis in [-rank, rank) to [0, rank); false when out of range. */
bool kiln_axis_normalize(int64_t axis, int rank, int *out);

/* Marks mask[a] for each of axes[0..n) (negative ones counted from the end).
 * Returns false when an axis is out of range or repeated; mask[0..rank) is
 * cleared first. */
bool kiln_axes_to_mask(const int64_t *axes, int64_t n, int rank, bool *mask);

/* Splits dims around axis: outer = product of dims before it, inner = after. */
void kiln_axis_split(int rank, const int64_t *dims, int axis, int64_t *outer, int64_t *inner);

#endif
