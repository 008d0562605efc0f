/*
 * protocol.h - the KServe v2 inference protocol's request and response
 * bodies: JSON tensors (flat or nested data) and Triton's binary tensor
 * data extension (a JSON header of Inference-Header-Content-Length bytes,
 * then raw tensor bytes in input order; BYTES elements are 4-byte
 * little-endian lengths followed by the bytes).
 *
 * Parsing never trusts a size: element counts come from the declared
 * shape (overflow-checked) and must equal the data given, binary sizes must
 * equal the count times the element size and lie inside the body.
 */
#ifndef KILN_SERVE_PROTOCOL_H
#define KILN_SERVE_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln.h"

typedef struct kiln_v2_output_request {
    char *name;
    bool binary;
} kiln_v2_output_request_t;

typedef struct kiln_v2_request {
    char *id;                       /* NULL when the client sent none */
    int n_inputs;
    char **input_names;
    kiln_tensor_t **inputs;
    int n_outputs;                  /* 0 = all outputs */
    kiln_v2_output_request_t *outputs;
    bool binary_default;            /* parameters.binary_data_output */
} kiln_v2_request_t;

/* Parses an infer request.  json_len is the Inference-Header-Content-Length
 * (the JSON part; the rest of body is binary data), or len when absent.
 * On failure returns KILN_ERR_INVALID_ARGUMENT with a message fit for a
 * 400 answer. */
kiln_status_t kiln_v2_parse_infer(const char *body, size_t len, size_t json_len, kiln_v2_request_t *out);
void kiln_v2_request_clear(kiln_v2_request_t *r);

/* Builds an infer response: JSON (and binary parts for outputs asked as
 * binary).  *out is malloc'd (caller frees), *json_len the JSON part's
 * length (equal to *out_len when nothing is binary).  params_json is a JSON
 * object text added as "parameters" (may be NULL). */
kiln_status_t kiln_v2_write_infer(const char *model, const char *version, const char *id, int n_outputs,
                                  char *const *names, kiln_tensor_t *const *tensors, const bool *binary,
                                  const char *params_json, char **out, size_t *out_len, size_t *json_len);

/* Builds an infer request (the client's side, for `kiln bench --url`):
 * inputs as JSON data, or with binary_inputs as binary tensor data after
 * the JSON header; binary_outputs asks the server for binary outputs
 * (parameters.binary_data_output).  *out is malloc'd (caller frees),
 * *json_len the JSON part's length, to send as Inference-Header-Content-Length
 * when it differs from *out_len. */
kiln_status_t kiln_v2_write_request(int n_inputs, const char *const *names, const kiln_tensor_t *const *tensors,
                                    bool binary_inputs, bool binary_outputs, char **out, size_t *out_len,
                                    size_t *json_len);

#endif
