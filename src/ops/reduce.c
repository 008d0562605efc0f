/*
 * reduce.c - Reductions: Reduce*, ArgMax/ArgMin, CumSum, TopK.
 */
#include "ops/kernel.h"

void kiln_ops_register_reduce(kiln_registry_t *reg)
{
    (void)reg;
}
