/*
 * fuzz_model.c - libFuzzer target for the model reader: feeds arbitrary
 * bytes to kiln_model_load_bytes(), which runs the protobuf cursor
 * (onnx/pb.c), the ModelProto -> IR reader (onnx/read.c) and the graph
 * check (core/graph.c: topological sort, kernel lookup).
 *
 * The only acceptable outcomes are a loaded model or a clean error with a
 * message; crashes, leaks, undefined behaviour and timeouts are bugs.  Each
 * input that once broke the reader is kept in tests/fuzz/regressions/ and
 * replayed by tests/unit/test_fuzz_regressions.c.
 *
 * Built and run by tests/fuzz/run_fuzz.sh (`make fuzz`).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "kiln.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_model_t *model = NULL;
    kiln_clear_error();
    kiln_status_t st = kiln_model_load_bytes(data, size, &model);
    if (st == KILN_OK) {
        /* A model that loads must also describe itself through a session. */
        kiln_session_options_t opts;
        kiln_session_options_init(&opts);
        opts.threads = 1;
        kiln_session_t *session = NULL;
        if (kiln_session_create(model, &opts, &session) == KILN_OK) {
            kiln_io_info_t info;
            for (int i = 0; i < kiln_session_input_count(session); i++)
                kiln_session_input_info(session, i, &info);
            for (int i = 0; i < kiln_session_output_count(session); i++)
                kiln_session_output_info(session, i, &info);
            kiln_session_free(session);
        }
        kiln_model_free(model);
    } else if (model != NULL || kiln_last_error()[0] == '\0') {
        /* A failed load must leave no model behind and must say why. */
        fprintf(stderr, "fuzz_model: status %d with model %p and error '%s'\n", (int)st, (void *)model,
                kiln_last_error());
        abort();
    }
    return 0;
}
