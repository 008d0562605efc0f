/*
 * axes.c - axis arithmetic shared by reduce.c, normalize.c and misc.c (see
 * axes.h).
 */
#include "ops/axes.h"

bool kiln_axis_normalize(int64_t axis, int rank, int *out)
{
    if (axis < -(int64_t)rank || axis >= (int64_t)rank)
        return false;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

bool kiln_axes_to_mask(const int64_t *axes, int64_t n, int rank, bool *mask)
{
    for (int d = 0; d < rank; d++)
        mask[d] = false;
    for (int64_t i = 0; i < n; i++) {
        int a;
        if (!kiln_axis_normalize(axes[i], rank, &a) || mask[a])
            return false;
        mask[a] = true;
    }
    return true;
}

void kiln_axis_split(int rank, const int64_t *dims, int axis, int64_t *outer, int64_t *inner)
{
    int64_t o = 1, in = 1;
    for (int d = 0; d < axis; d++)
        o *= dims[d];
    for (int d = axis + 1; d < rank; d++)
        in *= dims[d];
    *outer = o;
    *inner = in;
}
