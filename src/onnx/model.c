/*
 * model.c - the public model API: load an ONNX file (mmap'd) or bytes,
 * free it; and the internal parse-only load used by model rewriting tools.
 * Errors name the file.
 */
#include "onnx/model.h"

#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
    free(m->copy_src);
    free(m->copy_released);
    free(m->dir);
    kiln_arena_release(&m->arena);
    free(m);
}

bool kiln_model_is_copy(const kiln_model_t *m, const kiln_tensor_t *t)
{
    for (int i = 0; t->data && i < m->n_copies; i++)
        if (m->copies[i] == t->data)
            return m->copy_src[i] != NULL;
    return false;
}

void *kiln_model_take_copy(kiln_model_t *m, kiln_tensor_t *t)
{
    if (!t->data)
        return NULL;
    for (int i = 0; i < m->n_copies; i++)
        if (m->copies[i] == t->data) {
            if (!m->copy_src[i])
                return NULL; /* decoded from typed fields: cannot be made again cheaply */
            void *buf = m->copies[i];
            m->copies[i] = NULL;
            m->copy_released[i] = t;
            t->data = NULL;
            return buf;
        }
    return NULL;
}

kiln_status_t kiln_model_restore_copies(kiln_model_t *m)
{
    for (int i = 0; i < m->n_copies; i++) {
        kiln_tensor_t *t = m->copy_released[i];
        if (!t)
            continue;
        void *buf = aligned_alloc(64, (t->nbytes + 63) & ~(size_t)63);
        if (!buf)
            return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory restoring a %zu-byte weight", t->nbytes);
        memcpy(buf, m->copy_src[i], t->nbytes);
        m->copies[i] = t->data = buf;
        m->copy_released[i] = NULL;
    }
    return KILN_OK;
}

/* True when [p, p + n) lies inside the mapped (not malloc'd) mapping map. */
static bool in_mapping(const kiln_mapping_t *map, const void *p, size_t n)
{
    uintptr_t base = (uintptr_t)map->data, lo = (uintptr_t)p;
    return !map->is_malloc && map->data && lo >= base && lo + n <= base + map->size;
}

size_t kiln_model_release_mapped(kiln_model_t *m, const kiln_tensor_t *t)
{
    bool mapped = t->data && in_mapping(&m->file, t->data, t->nbytes);
    for (int i = 0; i < m->n_external && !mapped; i++)
        mapped = in_mapping(&m->external[i], t->data, t->nbytes);
    if (!mapped)
        return 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
    if (end <= start)
        return 0;
    madvise((void *)start, end - start, MADV_DONTNEED);
    return end - start;
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
