/*
 * model.h - a loaded ONNX model: the file mapping, the graph IR built over
 * it, and everything the IR borrows.
 *
 * The model file is mmap'd read-only; initializer tensors point into the
 * mapping (or into mappings of external-data files beside the model).  Only
 * data that cannot be used in place is copied: varint-encoded typed fields
 * (int32_data, int64_data, uint64_data), strings, and raw bytes whose
 * address is not aligned to the element size (kernels may use aligned SIMD
 * loads on them).
 */
#ifndef KILN_ONNX_MODEL_H
#define KILN_ONNX_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/graph.h"

typedef struct kiln_mapping {
    void *data;
    size_t size;
    bool is_malloc;   /* bytes we copied (kiln_model_load_bytes) rather than mapped */
} kiln_mapping_t;

struct kiln_model {
    kiln_arena_t arena;          /* the graph IR: names, nodes, attributes, tensor headers */
    kiln_model_ir_t ir;
    kiln_mapping_t file;         /* the .onnx file */
    char *dir;                   /* directory of the file, for external data ("" for bytes) */
    int n_external;
    kiln_mapping_t *external;    /* mapped external-data files */
    char **external_names;       /* their locations, as written in the model */
    int n_copies;
    void **copies;               /* heap buffers holding copied initializer data */
    const void **copy_src;       /* per copy: the file bytes it came from (NULL: decoded) */
    kiln_tensor_t **copy_released; /* per copy: its tensor once the copy was released, else NULL */
    size_t copied_bytes;         /* total of those, reported by kiln bench */
    int sessions;                /* live sessions on the model (core/session.c keeps it) */
    bool parse_only;             /* built by kiln_model_load_unchecked: no graph check */
};

/* Parses ModelProto bytes into m->ir (m->file must hold the bytes, m->dir
 * the directory for external data). Checks the graph. */
kiln_status_t kiln_onnx_parse_model(struct kiln_model *m, const uint8_t *bytes, size_t len);

/* Parses a standalone TensorProto (a test-data .pb file) into a new owning
 * tensor the caller frees with kiln_tensor_free(). */
kiln_status_t kiln_onnx_parse_tensor_owned(const uint8_t *bytes, size_t len, kiln_tensor_t **out);

/* Parses a .pb file that holds a TensorProto, SequenceProto or OptionalProto
 * (kind says which to expect) into a new value the caller frees. */
kiln_status_t kiln_onnx_parse_value_owned(const uint8_t *bytes, size_t len, kiln_value_kind_t kind,
                                          bool optional, kiln_value_t **out);

/* Loads a model like kiln_model_load() but stops after building the IR:
 * the graph is not checked, so nodes keep their file order and have no
 * kernel (node->kernel is NULL), and no session may be created on it.  For
 * tools that read and rewrite models (kiln optimize, the writer tests), which
 * must work on ops kiln cannot run.  Free with kiln_model_free(). */
kiln_status_t kiln_model_load_unchecked(const char *path, kiln_model_t **out_model);
/* Same from bytes (copied once), as kiln_model_load_bytes(). */
kiln_status_t kiln_model_load_bytes_unchecked(const void *bytes, size_t size, kiln_model_t **out_model);

/* Serializes a model's IR as ONNX ModelProto bytes (see write.c): *out is
 * malloc'd and the caller frees it. */
kiln_status_t kiln_onnx_write_bytes(const kiln_model_ir_t *ir, uint8_t **out, size_t *out_len);

/* Same, into a file (replaced if it exists; removed again on failure). */
kiln_status_t kiln_onnx_write_file(const kiln_model_ir_t *ir, const char *path);

/* Weights a session has replaced (its prepacked copies, core/session.c):
 * kiln_model_take_copy hands the heap copy holding t's elements (64-byte
 * aligned, t->nbytes rounded up to 64) to the caller, who frees it, when it
 * can be made again from the file, leaving t->data NULL; NULL when t is not
 * such a copy.  kiln_model_restore_copies copies every taken tensor back
 * (before another session may read them).  kiln_model_release_mapped hands
 * the whole pages of t's elements back to the kernel when they lie in a
 * file mapping (a later read faults them back in from the file). */
bool kiln_model_is_copy(const struct kiln_model *m, const kiln_tensor_t *t); /* take_copy would succeed */
void *kiln_model_take_copy(struct kiln_model *m, kiln_tensor_t *t);
kiln_status_t kiln_model_restore_copies(struct kiln_model *m);
size_t kiln_model_release_mapped(struct kiln_model *m, const kiln_tensor_t *t); /* bytes handed back */

/* Maps a whole file read-only. */
kiln_status_t kiln_map_file(const char *path, kiln_mapping_t *out);
void kiln_unmap(kiln_mapping_t *m);

#endif
