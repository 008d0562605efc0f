/*
 * signal.c - Signal processing: DFT, STFT, window functions, MelWeightMatrix.
 */
#include "ops/kernel.h"

void kiln_ops_register_signal(kiln_registry_t *reg)
{
    (void)reg;
}
