/*
 * image.c - Image ops: Resize, Upsample, GridSample, RoiAlign, NonMaxSuppression, DepthToSpace, SpaceToDepth.
 */
#include "ops/kernel.h"

void kiln_ops_register_image(kiln_registry_t *reg)
{
    (void)reg;
}
