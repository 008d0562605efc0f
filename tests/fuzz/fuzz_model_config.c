/*
 * fuzz_model_config.c - libFuzzer target for the config.pbtxt parser
 * (protobuf text format) of kiln serve's model repository.
 */
#include <stdint.h>
#include <stdlib.h>

#include "serve/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_model_config_t *c = malloc(sizeof *c);
    if (!c)
        return 0;
    kiln_model_config_parse((const char *)data, size, c);
    free(c);
    return 0;
}
