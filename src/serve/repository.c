/*
 * repository.c - scanning a Triton-style model repository and completing
 * model configs from the ONNX files (see repository.h).
 */
#include "serve/repository.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/session.h"

#define CONFIG_MAX_BYTES (1 << 20)

bool kiln_repo_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= KILN_CONFIG_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return false;
    }
    return true;
}

static int64_t mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

static int cmp_version(const void *a, const void *b)
{
    int64_t x = ((const kiln_repo_version_t *)a)->version, y = ((const kiln_repo_version_t *)b)->version;
    return (x > y) - (x < y);
}

static int cmp_model(const void *a, const void *b)
{
    return strcmp(((const kiln_repo_model_t *)a)->name, ((const kiln_repo_model_t *)b)->name);
}

static bool parse_version(const char *s, int64_t *out)
{
    if (!*s || strlen(s) > 18)
        return false;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return v > 0;
}

kiln_status_t kiln_repo_scan(const char *dir, kiln_repo_model_t **out, int *count)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return kiln_fail(KILN_ERR_IO, "model repository %s: %s", dir, strerror(errno));
    int cap = 16, n = 0;
    kiln_repo_model_t *models = calloc((size_t)cap, sizeof *models);
    if (!models) {
        closedir(d);
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !kiln_repo_name_valid(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == KILN_REPO_MAX_MODELS)
            break;
        if (n == cap) {
            cap *= 2;
            kiln_repo_model_t *m = realloc(models, (size_t)cap * sizeof *m);
            if (!m)
                break;
            models = m;
        }
        kiln_repo_model_t *m = &models[n];
        memset(m, 0, sizeof *m);
        snprintf(m->name, sizeof m->name, "%s", e->d_name);
        snprintf(path, sizeof path, "%s/%s/config.pbtxt", dir, e->d_name);
        m->config_mtime_ns = mtime_ns(path);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        DIR *vd = opendir(path);
        if (!vd)
            continue;
        struct dirent *ve;
        while ((ve = readdir(vd)) && m->n_versions < KILN_CONFIG_MAX_VERSIONS) {
            int64_t v;
            if (!parse_version(ve->d_name, &v))
                continue;
            char mp[4096];
            snprintf(mp, sizeof mp, "%s/%s/%s/model.onnx", dir, e->d_name, ve->d_name);
            int64_t t = mtime_ns(mp);
            if (!t)
                continue;
            m->versions[m->n_versions].version = v;
            m->versions[m->n_versions++].mtime_ns = t;
        }
        closedir(vd);
        qsort(m->versions, (size_t)m->n_versions, sizeof m->versions[0], cmp_version);
        n++;
    }
    closedir(d);
    qsort(models, (size_t)n, sizeof *models, cmp_model);
    *out = models;
    *count = n;
    return KILN_OK;
}

static void io_from_session(kiln_io_config_t *io, const kiln_io_info_t *info, int max_batch)
{
    memset(io, 0, sizeof *io);
    snprintf(io->name, sizeof io->name, "%s", info->name);
    io->dtype = info->dtype;
    int skip = max_batch > 0 ? 1 : 0;
    io->rank = info->rank > skip ? info->rank - skip : 0;
    for (int d = 0; d < io->rank; d++)
        io->dims[d] = info->dims[d + skip];
}

kiln_status_t kiln_repo_load_config(const char *dir, const char *model, int64_t version,
                                    kiln_model_config_t *config)
{
    char path[4096];
    kiln_model_config_init(config);
    snprintf(path, sizeof path, "%s/%s/config.pbtxt", dir, model);
    FILE *f = fopen(path, "rb");
    if (f) {
        char *text = malloc(CONFIG_MAX_BYTES + 1);
        size_t len = text ? fread(text, 1, CONFIG_MAX_BYTES + 1, f) : 0;
        fclose(f);
        if (!text)
            return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        if (len > CONFIG_MAX_BYTES) {
            free(text);
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s is larger than %d bytes", path, CONFIG_MAX_BYTES);
        }
        kiln_status_t st = kiln_model_config_parse(text, len, config);
        free(text);
        if (st)
            return kiln_fail_prefix(st, "model '%s'", model);
        if (config->name[0] && strcmp(config->name, model))
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "model '%s': config.pbtxt names the model '%s'", model,
                             config->name);
        if (config->platform[0] && strcmp(config->platform, "onnxruntime_onnx") && strcmp(config->platform, "onnx"))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "model '%s': platform '%s' is not supported (onnxruntime_onnx is)",
                             model, config->platform);
        if (config->backend[0] && strcmp(config->backend, "onnxruntime") && strcmp(config->backend, "kiln"))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "model '%s': backend '%s' is not supported (onnxruntime is)", model,
                             config->backend);
        if (strcmp(config->instance_kind, "KIND_CPU") && strcmp(config->instance_kind, "KIND_AUTO") &&
            strcmp(config->instance_kind, "KIND_MODEL"))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "model '%s': instance kind %s is not available (KIND_CPU is)",
                             model, config->instance_kind);
    }
    snprintf(config->name, sizeof config->name, "%s", model);
    if (!config->platform[0] && !config->backend[0])
        snprintf(config->platform, sizeof config->platform, "onnxruntime_onnx");
    if (version <= 0)
        return KILN_OK;
    /* complete inputs and outputs from the model */
    snprintf(path, sizeof path, "%s/%s/%lld/model.onnx", dir, model, (long long)version);
    kiln_model_t *m = NULL;
    kiln_session_t *s = NULL;
    kiln_status_t st = kiln_model_load(path, &m);
    if (!st)
        st = kiln_session_create(m, &(kiln_session_options_t){.threads = 1, .optimization_level = 0}, &s);
    if (st) {
        kiln_model_free(m);
        return kiln_fail_prefix(st, "model '%s' version %lld", model, (long long)version);
    }
    if (config->n_inputs == 0) {
        int n = kiln_session_input_count(s);
        for (int i = 0; i < n && i < KILN_CONFIG_MAX_IO; i++) {
            kiln_io_info_t info;
            kiln_session_input_info(s, i, &info);
            io_from_session(&config->inputs[config->n_inputs++], &info, config->max_batch_size);
        }
    }
    if (config->n_outputs == 0) {
        int n = kiln_session_output_count(s);
        for (int i = 0; i < n && i < KILN_CONFIG_MAX_IO; i++) {
            kiln_io_info_t info;
            kiln_session_output_info(s, i, &info);
            io_from_session(&config->outputs[config->n_outputs++], &info, config->max_batch_size);
        }
    }
    /* a config input must exist in the model with the same dtype */
    for (int i = 0; i < config->n_inputs && !st; i++) {
        bool found = false;
        int n = kiln_session_input_count(s);
        for (int k = 0; k < n; k++) {
            kiln_io_info_t info;
            kiln_session_input_info(s, k, &info);
            if (strcmp(info.name, config->inputs[i].name))
                continue;
            found = true;
            if (config->inputs[i].dtype && info.dtype && config->inputs[i].dtype != info.dtype)
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "model '%s': input '%s' is %s in config.pbtxt but %s in the model",
                               model, info.name, kiln_dtype_to_triton_type(config->inputs[i].dtype),
                               kiln_dtype_to_triton_type(info.dtype));
            if (!config->inputs[i].dtype)
                config->inputs[i].dtype = info.dtype;
        }
        if (!found)
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "model '%s': config.pbtxt input '%s' is not an input of the model",
                           model, config->inputs[i].name);
    }
    kiln_session_free(s);
    kiln_model_free(m);
    return st;
}

int kiln_repo_select_versions(const kiln_model_config_t *config, const kiln_repo_model_t *m, int64_t *selected,
                              int max)
{
    int n = 0;
    switch (config->version_policy) {
    case KILN_VERSIONS_ALL:
        for (int i = 0; i < m->n_versions && n < max; i++)
            selected[n++] = m->versions[i].version;
        break;
    case KILN_VERSIONS_SPECIFIC:
        for (int i = 0; i < m->n_versions && n < max; i++)
            for (int k = 0; k < config->n_versions; k++)
                if (config->versions[k] == m->versions[i].version)
                    selected[n++] = m->versions[i].version;
        break;
    default: {
        int keep = config->num_versions > 0 ? config->num_versions : 1;
        for (int i = m->n_versions - 1; i >= 0 && n < keep && n < max; i--)
            selected[n++] = m->versions[i].version;
        break;
    }
    }
    return n;
}
