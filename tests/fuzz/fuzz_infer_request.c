/*
 * fuzz_infer_request.c - libFuzzer target for kiln serve's request parsing
 * (src/serve/infer_request.c): the KServe v2 JSON body with Triton's binary
 * tensor extension.  The first two bytes of the input choose the
 * Inference-Header-Content-Length (the JSON/binary split), the rest is the
 * body; a parsed request must also survive being written back as a
 * response.
 *
 * The parser is kiln's own, so jansson checks it: JSON that the parser
 * accepts jansson must accept (with the same inputs, by name), and the
 * parser must call malformed exactly what jansson refuses (and any text
 * with a NUL byte).  (Duplicate keys the parser
 * does not read are jansson's business alone, so those are left out.)
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "serve/protocol.h"

/* Traps when the parser and jansson disagree about this JSON.  A NUL byte
 * is never JSON to the parser; jansson drops one that follows a number
 * ("[2\0]" is [2] to it), so there only the parser's verdict is checked. */
static void compare_with_jansson(const char *json, size_t len, kiln_status_t st, const kiln_v2_request_t *req)
{
    if (memchr(json, 0, len)) {
        if (st == KILN_OK || strncmp(kiln_last_error(), "malformed JSON", 14))
            __builtin_trap();
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root && strstr(jerr.text, "duplicate"))
        return;
    if (st == KILN_OK) {
        if (!root)
            __builtin_trap(); /* accepted what is not JSON */
        json_t *inputs = json_object_get(root, "inputs");
        if (json_array_size(inputs) != (size_t)req->n_inputs)
            __builtin_trap();
        for (int i = 0; i < req->n_inputs; i++) {
            const char *name = json_string_value(json_object_get(json_array_get(inputs, (size_t)i), "name"));
            if (!name || strcmp(name, req->input_names[i]))
                __builtin_trap();
        }
    } else if (!root != !strncmp(kiln_last_error(), "malformed JSON", 14)) {
        __builtin_trap(); /* called valid JSON malformed, or the other way round */
    }
    json_decref(root);
}

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
    kiln_status_t st = kiln_v2_parse_infer(body, len, split, &req);
    if (st != KILN_ERR_NO_MEMORY) /* the fuzzer's malloc limit */
        compare_with_jansson(body, split, st, &req);
    if (st != KILN_OK)
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
