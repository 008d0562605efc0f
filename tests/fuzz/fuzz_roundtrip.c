/*
 * fuzz_roundtrip.c - libFuzzer target for the ONNX writer (onnx/write.c)
 * against the reader (onnx/read.c).
 *
 * Whatever the parse-only reader accepts, the writer must serialize; the
 * written bytes must read back; and writing what was read back must give
 * the same bytes again (the writer is a fixed point after one round).  Any
 * asymmetry between reader and writer (a field read but not written, a type
 * written in a form the reader maps elsewhere) shows up as an abort here.
 *
 * Built and run by tests/fuzz/run_fuzz.sh (`make fuzz`); seeded from the
 * same models as fuzz_model.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "kiln.h"
#include "onnx/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_roundtrip: %s: %s\n", what, kiln_last_error());
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_model_t *m1 = NULL, *m2 = NULL;
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    kiln_clear_error();
    if (kiln_model_load_bytes_unchecked(data, size, &m1) != KILN_OK) {
        if (m1 || !kiln_last_error()[0])
            die("failed load left a model or no message");
        return 0;
    }
    kiln_status_t st = kiln_onnx_write_bytes(&m1->ir, &b1, &n1);
    if (st == KILN_ERR_UNSUPPORTED) { /* e.g. lists of type protos: refused by name */
        kiln_model_free(m1);
        return 0;
    }
    if (st != KILN_OK)
        die("write of a model that read");
    if (kiln_model_load_bytes_unchecked(b1, n1, &m2) != KILN_OK)
        die("reading what was written");
    if (kiln_onnx_write_bytes(&m2->ir, &b2, &n2) != KILN_OK)
        die("second write");
    if (n1 != n2 || memcmp(b1, b2, n1) != 0) {
        fprintf(stderr, "fuzz_roundtrip: second write differs (%zu vs %zu bytes)\n", n1, n2);
        abort();
    }
    free(b1);
    free(b2);
    kiln_model_free(m2);
    kiln_model_free(m1);
    return 0;
}
