/*
 * text.c - Text: StringNormalizer, TfIdfVectorizer.
 */
#include "ops/kernel.h"

void kiln_ops_register_text(kiln_registry_t *reg)
{
    (void)reg;
}
