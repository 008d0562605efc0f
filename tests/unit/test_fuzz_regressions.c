/*
 * test_fuzz_regressions.c - replays every input the fuzzer
 * (tests/fuzz/fuzz_model.c) once found crashing, leaking or exhausting
 * memory, kept as .onnx files in tests/fuzz/regressions/.  Each must now fail to load
 * cleanly: a non-OK status, no model handed out, and an error message; both
 * from the file (mmap path) and from bytes.  Under the ASan+UBSan build this
 * also proves the fixes hold.  Run from the repository root.
 *
 * Inputs in tests/fuzz/regressions_session/ are valid enough to load; they
 * once crashed later (shape inference, the optimizer at session creation,
 * a first run).  Each must load, give a session at every optimization
 * level, and answer a run with a status (missing inputs are an error).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kiln.h"

#define REGRESSION_DIR "tests/fuzz/regressions"

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

static void replay(const char *path)
{
    kiln_model_t *m = (kiln_model_t *)1;
    kiln_status_t st = kiln_model_load(path, &m);
    CHECK_MSG(st != KILN_OK && m == NULL, "%s loaded from file", path);
    CHECK_MSG(kiln_last_error()[0] != '\0', "%s: no error message", path);
    printf("%s: %s\n", path, kiln_last_error());
    if (st == KILN_OK)
        kiln_model_free(m);

    size_t len;
    unsigned char *bytes = read_all(path, &len);
    CHECK_MSG(bytes != NULL, "cannot read %s", path);
    if (!bytes)
        return;
    m = (kiln_model_t *)1;
    st = kiln_model_load_bytes(bytes, len, &m);
    CHECK_MSG(st != KILN_OK && m == NULL, "%s loaded from bytes", path);
    CHECK_MSG(kiln_last_error()[0] != '\0', "%s: no error message from bytes", path);
    if (st == KILN_OK)
        kiln_model_free(m);
    free(bytes);
}

#define SESSION_DIR "tests/fuzz/regressions_session"

static void replay_session(const char *path)
{
    kiln_model_t *m = NULL;
    kiln_status_t st = kiln_model_load(path, &m);
    CHECK_MSG(st == KILN_OK, "%s: %s", path, kiln_last_error());
    for (int level = 0; m && level <= 3; level++) {
        kiln_session_options_t o;
        kiln_session_options_init(&o);
        o.optimization_level = level;
        o.threads = 1;
        kiln_session_t *s = NULL;
        st = kiln_session_create(m, &o, &s);
        CHECK_MSG(st == KILN_OK || kiln_last_error()[0], "%s level %d: no message", path, level);
        if (s) {
            int n_out = kiln_session_output_count(s);
            kiln_tensor_t **out = calloc((size_t)n_out + 1, sizeof *out);
            st = kiln_session_run(s, 0, NULL, NULL, n_out, out);
            CHECK_MSG(st == KILN_OK || kiln_last_error()[0], "%s level %d: a failed run without a message", path,
                      level);
            for (int k = 0; st == KILN_OK && k < n_out; k++)
                kiln_tensor_free(out[k]);
            free(out);
            kiln_session_free(s);
        }
    }
    kiln_model_free(m);
}

static int replay_dir(const char *dir, void (*fn)(const char *))
{
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s (run from the repository root)", dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".onnx"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fn(path);
        n++;
    }
    if (d)
        closedir(d);
    CHECK_MSG(n > 0, "no regression inputs in %s", dir);
    return n;
}

int main(void)
{
    replay_dir(SESSION_DIR, replay_session);
    replay_dir(REGRESSION_DIR, replay);
    return check_finish();
}
