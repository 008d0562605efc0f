/*
 * misc.c - Other ops: Einsum, Det, Unique, NonZero, random-like ops, ....
 */
#include "ops/kernel.h"

void kiln_ops_register_misc(kiln_registry_t *reg)
{
    (void)reg;
}
