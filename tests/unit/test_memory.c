/*
 * test_memory.c - loading a model must not load its weights.
 *
 * kiln maps the model file and points initializers into the mapping, so
 * loading a model with 200 MB of float32 weights and creating a session on
 * it must raise the resident set (VmRSS in /proc/self/status) by far less
 * than the weights: the test asserts < 20 MB, and that no weight was copied
 * (model->copied_bytes == 0).
 *
 * The models come from tests/unit/make_big_model.py (run when missing, into
 * build/memory_test/): four 51 MB MatMul weights
 *   - big_external.onnx: ONNX external data in one file beside the model;
 *   - big_inline.onnx: raw_data inside the .onnx, laid out by python-onnx,
 *     which does not align it: a weight whose bytes start at an address that
 *     is not a multiple of 4 cannot be read in place as float (read.c copies
 *     it); the test reports what python's layout costs without asserting it;
 *   - big_inline_kiln.onnx: big_inline.onnx rewritten by kiln's writer
 *     (onnx/write.c, what `kiln optimize` uses), which aligns every weight:
 *     asserted zero-copy.
 * While kiln has no MatMul kernel the session step is skipped and the load
 * is measured with the parse-only reader.  Run from the repository root.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "kiln.h"
#include "onnx/model.h"

#define DIR "build/memory_test"
#define LIMIT_KB (20 * 1024)
#define WEIGHT_BYTES (4.0 * 3584 * 3584 * 4)

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Loads path (and makes a session when kiln can run it); returns the RSS
 * rise in kB, sets *copied to the bytes the reader had to copy.  Keeps the
 * model in *out when out != NULL. */
static long measure(const char *path, size_t *copied, kiln_model_t **out)
{
    long before = rss_kb();
    kiln_model_t *m = NULL;
    kiln_session_t *s = NULL;
    bool session = true;
    if (kiln_model_load(path, &m) != KILN_OK) {
        const char *e = kiln_last_error();
        CHECK_MSG(strstr(e, "unknown op") || strstr(e, "no kernel"), "%s: %s", path, e);
        printf("  (no session: %s)\n", e);
        session = false;
        CHECK_MSG(kiln_model_load_unchecked(path, &m) == KILN_OK, "%s: %s", path, kiln_last_error());
    }
    if (!m)
        return -1;
    if (session) {
        kiln_session_options_t o;
        kiln_session_options_init(&o);
        o.threads = 1;
        CHECK_MSG(kiln_session_create(m, &o, &s) == KILN_OK, "%s: %s", path, kiln_last_error());
    }
    long rise = rss_kb() - before;
    *copied = m->copied_bytes;
    printf("%s: RSS %+ld kB after load%s (weights %.0f MB, copied %zu bytes)\n", path, rise,
           session ? " + session" : "", WEIGHT_BYTES / 1e6, m->copied_bytes);
    kiln_session_free(s);
    if (out)
        *out = m;
    else
        kiln_model_free(m);
    return rise;
}

int main(void)
{
    if (!exists(DIR "/big_inline.onnx") || !exists(DIR "/big_external.onnx")) {
        int rc = system("/usr/bin/python3 tests/unit/make_big_model.py " DIR);
        CHECK_MSG(rc == 0, "make_big_model.py failed (%d)", rc);
        if (rc)
            return check_finish();
    }
    size_t copied;
    long rise;

    rise = measure(DIR "/big_external.onnx", &copied, NULL);
    CHECK_MSG(rise < LIMIT_KB, "external data: RSS rose %ld kB", rise);
    CHECK_MSG(copied == 0, "external data: %zu bytes copied", copied);

    kiln_model_t *m = NULL;
    rise = measure(DIR "/big_inline.onnx", &copied, &m);
    if (copied)
        printf("  python-onnx's layout leaves %zu bytes of weights misaligned: copied at load\n", copied);
    else
        CHECK_MSG(rise < LIMIT_KB, "inline: RSS rose %ld kB", rise);

    /* Rewrite with kiln's writer: weights aligned, zero-copy. */
    CHECK(m != NULL);
    if (m) {
        CHECK_MSG(kiln_onnx_write_file(&m->ir, DIR "/big_inline_kiln.onnx") == KILN_OK, "%s", kiln_last_error());
        kiln_model_free(m);
        rise = measure(DIR "/big_inline_kiln.onnx", &copied, NULL);
        CHECK_MSG(rise < LIMIT_KB, "kiln-written: RSS rose %ld kB", rise);
        CHECK_MSG(copied == 0, "kiln-written: %zu bytes copied", copied);
    }
    return check_finish();
}
