/*
 * tensor.c - Tensor shape and data movement: Reshape, Transpose, Concat, Split, Slice, Gather, Scatter, Pad, Tile, Expand, ....
 */
#include "ops/kernel.h"

void kiln_ops_register_tensor(kiln_registry_t *reg)
{
    (void)reg;
}
