/*
 * quant.c - Quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger.
 */
#include "ops/kernel.h"

void kiln_ops_register_quant(kiln_registry_t *reg)
{
    (void)reg;
}
