/*
 * pad.c - ops that grow or repeat a tensor: Pad, Tile, Expand and
 * ReverseSequence.
 */
#include "ops/tensor_util.h"

void tops_register_pad(kiln_registry_t *reg)
{
    (void)reg;
}
