/*
 * fuzz_infer_request.c - libFuzzer target for kiln serve's request parsing:
 * the KServe v2 JSON body with Triton's binary tensor extension.  The first
 * two bytes of the input choose the Inference-Header-Content-Length (the
 * JSON/binary split), the rest is the body; a parsed request must also
 * survive being written back as a response.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "serve/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = (size_t)data[0] | (size_t)data[1] << 8;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;
    if (split > len)
        split = len;
    kiln_v2_request_t req;
    if (kiln_v2_parse_infer(body, len, split, &req) != KILN_OK)
        return 0;
    bool *binary = calloc((size_t)req.n_inputs + 1, sizeof *binary);
    for (int i = 0; binary && i < req.n_inputs; i++)
        binary[i] = i & 1;
    char *out = NULL;
    size_t out_len, json_len;
    if (binary && kiln_v2_write_infer("m", "1", req.id, req.n_inputs, req.input_names, req.inputs, binary, NULL, &out,
                                      &out_len, &json_len) == KILN_OK)
        free(out);
    free(binary);
    kiln_v2_request_clear(&req);
    return 0;
}
