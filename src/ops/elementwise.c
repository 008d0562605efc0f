/*
 * elementwise.c - Elementwise math with broadcasting: arithmetic, comparison, logic, unary math, Cast, Where, Clip, variadic Max/Min/Sum/Mean.
 */
#include "ops/kernel.h"

void kiln_ops_register_elementwise(kiln_registry_t *reg)
{
    (void)reg;
}
