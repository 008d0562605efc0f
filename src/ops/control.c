/*
 * control.c - Control flow: If, Loop, Scan.
 */
#include "ops/kernel.h"

void kiln_ops_register_control(kiln_registry_t *reg)
{
    (void)reg;
}
