/*
 * rnn.c - Recurrent layers: RNN, GRU, LSTM.
 */
#include "ops/kernel.h"

void kiln_ops_register_rnn(kiln_registry_t *reg)
{
    (void)reg;
}
