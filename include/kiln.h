/*
 * kiln.h - the public C API of the kiln inference engine.
 *
 * This header is the only door into the engine: users see handles and
 * functions, never struct layouts, so everything under src/ may change freely.
 *
 * The flow is: load a model (the file is mmap'd, weights are not copied),
 * create a session on it with options (threads, optimization level,
 * provider), describe its inputs and outputs, run it on tensors, free what
 * you own.  Every call that can fail returns a kiln_status_t; the text of the
 * last error on the calling thread is kept and read with kiln_last_error().
 * No call aborts or exits the process.
 *
 * Ownership is written at each function that hands out memory.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_VERSION_STRING "0.1.0"

/* ---- Status and errors ------------------------------------------------ */

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_INVALID_ARGUMENT = 1, /* a caller passed something wrong (input name, shape, dtype) */
    KILN_ERR_INVALID_MODEL = 2,    /* the model file is malformed or inconsistent */
    KILN_ERR_UNSUPPORTED = 3,      /* valid, but kiln has no implementation for it */
    KILN_ERR_NO_MEMORY = 4,        /* an allocation failed or a size was too large */
    KILN_ERR_IO = 5,               /* a file could not be opened, read or written */
    KILN_ERR_RUNTIME = 6           /* a kernel failed while running */
} kiln_status_t;

/* The message of the last error on this thread ("" if none).  The pointer
 * stays valid until the next failing kiln call on the same thread. */
const char *kiln_last_error(void);

/* A short constant name for a status ("invalid model", ...). */
const char *kiln_status_name(kiln_status_t status);

/* ---- Element types (values equal ONNX's TensorProto.DataType) ---------- */

typedef enum kiln_dtype {
    KILN_DTYPE_UNDEFINED = 0,
    KILN_DTYPE_FLOAT32 = 1,
    KILN_DTYPE_UINT8 = 2,
    KILN_DTYPE_INT8 = 3,
    KILN_DTYPE_UINT16 = 4,
    KILN_DTYPE_INT16 = 5,
    KILN_DTYPE_INT32 = 6,
    KILN_DTYPE_INT64 = 7,
    KILN_DTYPE_STRING = 8,
    KILN_DTYPE_BOOL = 9,
    KILN_DTYPE_FLOAT16 = 10,
    KILN_DTYPE_FLOAT64 = 11,
    KILN_DTYPE_UINT32 = 12,
    KILN_DTYPE_UINT64 = 13,
    KILN_DTYPE_COMPLEX64 = 14,
    KILN_DTYPE_COMPLEX128 = 15,
    KILN_DTYPE_BFLOAT16 = 16,
    KILN_DTYPE_COUNT_ = 17
} kiln_dtype_t;

/* Lower-case name of a dtype ("float32", "int64", ...). */
const char *kiln_dtype_name(kiln_dtype_t dtype);
/* Bytes per element; 0 for UNDEFINED; sizeof(char *) for STRING. */
size_t kiln_dtype_size(kiln_dtype_t dtype);

/* ---- Tensors ----------------------------------------------------------- */

/* A dense tensor: dtype, shape and elements in row-major order.  Strings
 * are stored as an array of NUL-terminated char pointers. */
typedef struct kiln_tensor kiln_tensor_t;

#define KILN_MAX_RANK 12

/* Creates a tensor that owns zeroed storage for its elements.  Checks that
 * the element count and byte size do not overflow.  Free with
 * kiln_tensor_free().  Returns NULL and sets the error on failure. */
kiln_tensor_t *kiln_tensor_create(kiln_dtype_t dtype, int rank, const int64_t *dims);

/* Creates a tensor that borrows caller memory (nbytes must match the shape).
 * The caller keeps ownership of data and must keep it alive while the
 * tensor is used; kiln_tensor_free() frees only the handle. */
kiln_tensor_t *kiln_tensor_wrap(kiln_dtype_t dtype, int rank, const int64_t *dims, void *data,
                                size_t nbytes);

void kiln_tensor_free(kiln_tensor_t *tensor);

kiln_dtype_t kiln_tensor_dtype(const kiln_tensor_t *tensor);
int kiln_tensor_rank(const kiln_tensor_t *tensor);
const int64_t *kiln_tensor_dims(const kiln_tensor_t *tensor);
int64_t kiln_tensor_count(const kiln_tensor_t *tensor);
size_t kiln_tensor_nbytes(const kiln_tensor_t *tensor);
void *kiln_tensor_data(kiln_tensor_t *tensor);

/* ---- Models ------------------------------------------------------------ */

typedef struct kiln_model kiln_model_t;

/* Loads an ONNX file.  The file is mapped, weights are referenced in place.
 * The graph is checked (every input produced, no cycle, every op known).
 * Free with kiln_model_free(), after every session made from it. */
kiln_status_t kiln_model_load(const char *path, kiln_model_t **out_model);

/* Same, from bytes in memory; the bytes are copied once. */
kiln_status_t kiln_model_load_bytes(const void *bytes, size_t size, kiln_model_t **out_model);

void kiln_model_free(kiln_model_t *model);

/* ---- Sessions ---------------------------------------------------------- */

typedef struct kiln_session kiln_session_t;

typedef enum kiln_provider {
    KILN_PROVIDER_CPU = 0,
    KILN_PROVIDER_CUDA = 1
} kiln_provider_t;

typedef struct kiln_session_options {
    int threads;              /* intra-op threads; 0 = one per core */
    int optimization_level;   /* 0 none, 1 basic, 2 extended, 3 layout; default 3 */
    kiln_provider_t provider; /* KILN_PROVIDER_CPU */
} kiln_session_options_t;

/* Fills options with the defaults. */
void kiln_session_options_init(kiln_session_options_t *options);

/* Creates a session (options may be NULL for the defaults).  The model must
 * outlive the session.  Free with kiln_session_free(). */
kiln_status_t kiln_session_create(kiln_model_t *model, const kiln_session_options_t *options,
                                  kiln_session_t **out_session);
void kiln_session_free(kiln_session_t *session);

/* Describes one graph input or output.  Dimensions that are symbolic or
 * unknown are -1, with dim_names[i] naming a symbolic one (else NULL).
 * The strings belong to the session. */
typedef struct kiln_io_info {
    const char *name;
    kiln_dtype_t dtype;
    int rank; /* -1 when the rank is unknown */
    int64_t dims[KILN_MAX_RANK];
    const char *dim_names[KILN_MAX_RANK];
} kiln_io_info_t;

int kiln_session_input_count(const kiln_session_t *session);
int kiln_session_output_count(const kiln_session_t *session);
kiln_status_t kiln_session_input_info(const kiln_session_t *session, int index,
                                      kiln_io_info_t *out_info);
kiln_status_t kiln_session_output_info(const kiln_session_t *session, int index,
                                       kiln_io_info_t *out_info);

/* Runs the model.  inputs[i] feeds the graph input named input_names[i];
 * every graph input without an initializer must be fed.  outputs receives
 * output_count new tensors in the order of the graph outputs (output_count
 * must equal kiln_session_output_count()); the caller owns them and frees
 * each with kiln_tensor_free().  The inputs stay owned by the caller. */
kiln_status_t kiln_session_run(kiln_session_t *session, int input_count,
                               const char *const *input_names,
                               const kiln_tensor_t *const *inputs, int output_count,
                               kiln_tensor_t **outputs);

/* ---- per-node profile ----------------------------------------------------
 *
 * Off by default.  While on, every run of the session's main graph adds
 * each node's wall time (the kernel call, on the calling thread, including
 * the work it hands to the intra-op threads) to a counter per node;
 * kiln_session_profile() reads them out in the order the nodes run.  The
 * nodes are those of the optimized graph (fused nodes carry the names of
 * the nodes they replaced).  Turning it on resets the counters. */
kiln_status_t kiln_session_set_profiling(kiln_session_t *session, int enabled);

typedef struct kiln_node_profile {
    const char *name;       /* node name (owned by the session) */
    const char *op_type;    /* e.g. "Conv", "FusedConv" */
    const char *domain;     /* "" for the default ONNX domain */
    long long runs;         /* runs timed */
    double total_ms;        /* summed over those runs */
    int out_rank;           /* shape of the first output at the last run */
    long long out_dims[8];  /* (the first 8 dims; out_rank -1: none) */
} kiln_node_profile_t;

/* Writes up to max entries into out (may be NULL with max 0) and returns
 * the number of nodes of the main graph. */
int kiln_session_profile(const kiln_session_t *session, kiln_node_profile_t *out, int max);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
