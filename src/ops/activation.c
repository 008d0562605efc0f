/*
 * activation.c - Activation functions: Relu, Sigmoid, Tanh, Elu, Selu, LeakyRelu, PRelu, HardSigmoid, HardSwish, Softplus, Softsign, ThresholdedRelu, Shrink, Celu, Gelu.
 */
#include "ops/kernel.h"

void kiln_ops_register_activation(kiln_registry_t *reg)
{
    (void)reg;
}
