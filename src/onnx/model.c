/*
 * model.c - the public model API: load an ONNX file (mmap'd) or bytes,
 * free it; and the internal parse-only load used by model rewriting tools.
 * Errors name the file.
 */
#include "onnx/model.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void kiln_model_free(kiln_model_t *m)
{
    if (!m)
        return;
    kiln_unmap(&m->file);
    for (int i = 0; i < m->n_external; i++) {
        kiln_unmap(&m->external[i]);
        free(m->external_names[i]);
    }
    free(m->external);
    free(m->external_names);
    for (int i = 0; i < m->n_copies; i++)
        free(m->copies[i]);
    free(m->copies);
    free(m->dir);
    kiln_arena_release(&m->arena);
    free(m);
}

static kiln_status_t load_common(kiln_model_t *m, const char *what)
{
    kiln_status_t st = kiln_onnx_parse_model(m, m->file.data, m->file.size);
    if (st)
        return kiln_fail_prefix(st, "%s", what);
    return KILN_OK;
}

static kiln_status_t load_path(const char *path, bool parse_only, kiln_model_t **out)
{
    *out = NULL;
    if (!path)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_model_load: path is NULL");
    kiln_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory loading %s", path);
    m->parse_only = parse_only;
    char *copy = strdup(path);
    m->dir = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    if (!m->dir) {
        kiln_model_free(m);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory loading %s", path);
    }
    kiln_status_t st = kiln_map_file(path, &m->file);
    if (!st && m->file.size == 0)
        st = kiln_fail(KILN_ERR_INVALID_MODEL, "%s: the file is empty", path);
    if (!st) {
        m->ir.path = path;
        st = load_common(m, path);
        m->ir.path = "";
    }
    if (st) {
        kiln_model_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

kiln_status_t kiln_model_load(const char *path, kiln_model_t **out)
{
    return load_path(path, false, out);
}

kiln_status_t kiln_model_load_unchecked(const char *path, kiln_model_t **out)
{
    return load_path(path, true, out);
}

static kiln_status_t load_memory(const void *bytes, size_t size, bool parse_only, kiln_model_t **out)
{
    *out = NULL;
    if (!bytes || size == 0)
        return kiln_fail(KILN_ERR_INVALID_MODEL, "model bytes are empty");
    kiln_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory loading a model");
    m->parse_only = parse_only;
    m->dir = strdup("");
    m->file.data = malloc(size);
    m->file.is_malloc = true;
    if (!m->dir || !m->file.data) {
        kiln_model_free(m);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory loading a model");
    }
    memcpy(m->file.data, bytes, size);
    m->file.size = size;
    kiln_status_t st = load_common(m, "model bytes");
    if (st) {
        kiln_model_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

kiln_status_t kiln_model_load_bytes(const void *bytes, size_t size, kiln_model_t **out)
{
    return load_memory(bytes, size, false, out);
}

kiln_status_t kiln_model_load_bytes_unchecked(const void *bytes, size_t size, kiln_model_t **out)
{
    return load_memory(bytes, size, true, out);
}
