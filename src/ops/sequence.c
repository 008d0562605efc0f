/*
 * sequence.c - Sequences and optionals.
 */
#include "ops/kernel.h"

void kiln_ops_register_sequence(kiln_registry_t *reg)
{
    (void)reg;
}
