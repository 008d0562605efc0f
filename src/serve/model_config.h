/*
 * model_config.h - a model's serving configuration, read from Triton's
 * config.pbtxt (protobuf text format) or completed from the model itself.
 *
 * Only the fields kiln acts on are kept; a field kiln does not know is
 * reported as a warning (callers print them) and ignored, so a Triton
 * repository loads unchanged.  A malformed file fails with its line number.
 */
#ifndef KILN_SERVE_MODEL_CONFIG_H
#define KILN_SERVE_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

#define KILN_CONFIG_MAX_IO 64
#define KILN_CONFIG_MAX_PREFERRED 16
#define KILN_CONFIG_MAX_VERSIONS 64
#define KILN_CONFIG_MAX_PARAMS 32
#define KILN_CONFIG_MAX_WARNINGS 16
#define KILN_CONFIG_NAME_MAX 128

typedef struct kiln_io_config {
    char name[KILN_CONFIG_NAME_MAX];
    kiln_dtype_t dtype;
    int rank;                      /* dims without the batch dim when max_batch_size > 0 */
    int64_t dims[KILN_MAX_RANK];   /* -1 = variable */
    bool has_reshape;
    int reshape_rank;
    int64_t reshape[KILN_MAX_RANK];
} kiln_io_config_t;

typedef enum kiln_version_policy {
    KILN_VERSIONS_LATEST = 0, /* the newest num_versions versions (default 1) */
    KILN_VERSIONS_ALL = 1,
    KILN_VERSIONS_SPECIFIC = 2
} kiln_version_policy_t;

typedef struct kiln_model_config {
    char name[KILN_CONFIG_NAME_MAX];
    char platform[64];             /* "onnxruntime_onnx" accepted */
    char backend[64];              /* "onnxruntime" or "kiln" */
    int max_batch_size;            /* 0 = the model has no batch dimension */
    int n_inputs, n_outputs;
    kiln_io_config_t inputs[KILN_CONFIG_MAX_IO];
    kiln_io_config_t outputs[KILN_CONFIG_MAX_IO];
    bool dynamic_batching;
    int n_preferred;
    int preferred_batch_size[KILN_CONFIG_MAX_PREFERRED];
    int64_t max_queue_delay_us;
    int max_queue_size;            /* 0 = the server default */
    int64_t default_timeout_us;    /* 0 = none */
    int instance_count;            /* sessions per version (default 1) */
    char instance_kind[32];        /* "KIND_CPU" (KIND_GPU is refused until the CUDA provider) */
    kiln_version_policy_t version_policy;
    int num_versions;
    int n_versions;
    int64_t versions[KILN_CONFIG_MAX_VERSIONS];
    int n_params;
    char param_keys[KILN_CONFIG_MAX_PARAMS][64];
    char param_values[KILN_CONFIG_MAX_PARAMS][256];
    int n_warnings;
    char warnings[KILN_CONFIG_MAX_WARNINGS][160];
} kiln_model_config_t;

/* Sets the defaults (no batching, one CPU instance, latest version). */
void kiln_model_config_init(kiln_model_config_t *c);

/* Parses config.pbtxt text (len bytes) into c (initialized first).  Errors
 * name the line: "config.pbtxt:12: expected '}'". Unknown fields become
 * warnings in c->warnings. */
kiln_status_t kiln_model_config_parse(const char *text, size_t len, kiln_model_config_t *c);

/* Triton's data_type names: TYPE_FP32 <-> float32 ... (UNDEFINED if unknown). */
kiln_dtype_t kiln_triton_type_to_dtype(const char *name);
const char *kiln_dtype_to_triton_type(kiln_dtype_t dtype);
/* KServe v2 datatype names: FP32, INT64, BYTES ... */
kiln_dtype_t kiln_kserve_type_to_dtype(const char *name);
const char *kiln_dtype_to_kserve_type(kiln_dtype_t dtype);

#endif
