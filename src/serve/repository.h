/*
 * repository.h - Triton's model repository layout on disk:
 *   DIR/<model>/config.pbtxt            (optional)
 *   DIR/<model>/<version>/model.onnx    (version: a positive integer)
 *
 * Scanning lists the models and their versions with file modification
 * times, so the poller can tell new, changed and removed versions apart.
 * Names from URLs are validated before they touch the file system.
 */
#ifndef KILN_SERVE_REPOSITORY_H
#define KILN_SERVE_REPOSITORY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "kiln.h"
#include "serve/model_config.h"

#define KILN_REPO_MAX_MODELS 1024

typedef struct kiln_repo_version {
    int64_t version;
    int64_t mtime_ns; /* of model.onnx */
} kiln_repo_version_t;

typedef struct kiln_repo_model {
    char name[KILN_CONFIG_NAME_MAX];
    int64_t config_mtime_ns; /* 0 without config.pbtxt */
    int n_versions;
    kiln_repo_version_t versions[KILN_CONFIG_MAX_VERSIONS]; /* ascending */
} kiln_repo_model_t;

/* True for a name made of [A-Za-z0-9_.-], not "." or "..", at most 127 bytes. */
bool kiln_repo_name_valid(const char *name);

/* Lists the models under dir (sorted by name).  *out is malloc'd. */
kiln_status_t kiln_repo_scan(const char *dir, kiln_repo_model_t **out, int *count);

/* Reads DIR/<model>/config.pbtxt (if any) into config and completes what
 * it leaves out from the model file of `version` (inputs, outputs, name),
 * as Triton's auto-complete does.  Warnings stay in config->warnings. */
kiln_status_t kiln_repo_load_config(const char *dir, const char *model, int64_t version,
                                    kiln_model_config_t *config);

/* The versions the config's version_policy selects from those on disk. */
int kiln_repo_select_versions(const kiln_model_config_t *config, const kiln_repo_model_t *m,
                              int64_t *selected, int max);

#endif
