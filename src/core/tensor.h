/*
 * tensor.h - the engine's dense tensor and the values that flow through a
 * graph (a tensor, a sequence of tensors, or an empty optional).
 *
 * A tensor either owns its storage (allocated by kiln, freed with it) or
 * borrows it: initializers point straight into the mmap'd model file, and
 * kiln_tensor_wrap() borrows user memory.  Element storage is row-major.
 * float16 and bfloat16 elements are raw uint16_t (see half.h); strings are
 * an array of NUL-terminated, individually malloc'd char pointers, always
 * owned by the tensor.
 */
#ifndef KILN_CORE_TENSOR_H
#define KILN_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

struct kiln_tensor {
    kiln_dtype_t dtype;
    int rank;                     /* 0 for a scalar */
    int64_t dims[KILN_MAX_RANK];  /* dims[0..rank) */
    int64_t count;                /* product of dims (1 for a scalar) */
    size_t nbytes;                /* count * kiln_dtype_size(dtype) */
    void *data;                   /* elements; may be NULL when count == 0 */
    bool owns_data;               /* data is freed with the tensor */
};

/* Element count of a shape, or -1 when a dim is negative or the product
 * (or its size in bytes for elem_size) would overflow.  Use before any
 * allocation sized from a file or a request. */
int64_t kiln_shape_count(int rank, const int64_t *dims, size_t elem_size);

/* Allocates an owning tensor (zeroed).  Same as kiln_tensor_create but
 * reports errors with the tensor name for context (name may be NULL). */
kiln_tensor_t *kiln_tensor_new(kiln_dtype_t dtype, int rank, const int64_t *dims);
/* Same, but the elements are left uninitialized (the caller writes every
 * one); string tensors are still zeroed (NULL pointers) so they can be freed. */
kiln_tensor_t *kiln_tensor_new_uninit(kiln_dtype_t dtype, int rank, const int64_t *dims);

/* A deep copy (owning) of t. */
kiln_tensor_t *kiln_tensor_clone(const kiln_tensor_t *t);

/* A new owning tensor with entries [begin, begin+len) of t along axis
 * (strings duplicated).  With keep_axis false the axis (len must be 1) is
 * dropped.  The range must lie inside t.  NULL when out of memory. */
kiln_tensor_t *kiln_tensor_slice_axis(const kiln_tensor_t *t, int axis, int64_t begin, int64_t len, bool keep_axis);

/* Writes "[2,3,4]" into buf. Returns buf. */
char *kiln_shape_str(int rank, const int64_t *dims, char *buf, size_t size);

/* True when both have the same rank and dims. */
bool kiln_shape_equal(const kiln_tensor_t *a, const kiln_tensor_t *b);

/* Reads element i of any numeric/bool dtype as double, and writes one. */
double kiln_tensor_get_f64(const kiln_tensor_t *t, int64_t i);
void kiln_tensor_set_f64(kiln_tensor_t *t, int64_t i, double v);
/* Same for exact integers (int64 range). */
int64_t kiln_tensor_get_i64(const kiln_tensor_t *t, int64_t i);

bool kiln_dtype_is_float(kiln_dtype_t dtype);   /* float16/32/64, bfloat16 */
bool kiln_dtype_is_integer(kiln_dtype_t dtype); /* signed or unsigned ints */
bool kiln_dtype_is_signed(kiln_dtype_t dtype);

/* ---- Values ------------------------------------------------------------ */

typedef enum kiln_value_kind {
    KILN_VALUE_TENSOR = 1,
    KILN_VALUE_SEQUENCE = 2,
    KILN_VALUE_NONE = 3 /* an optional that holds nothing */
} kiln_value_kind_t;

/* What flows along a graph edge.  A sequence owns its tensors. */
typedef struct kiln_value {
    kiln_value_kind_t kind;
    kiln_tensor_t *tensor;   /* KILN_VALUE_TENSOR: owned by the value */
    kiln_tensor_t **items;   /* KILN_VALUE_SEQUENCE: items[0..count), owned */
    int64_t count;
    int64_t capacity;
    kiln_dtype_t elem_dtype; /* SEQUENCE and NONE: the element type if known */
    kiln_value_kind_t none_of; /* NONE: what the optional would hold (TENSOR or SEQUENCE) */
} kiln_value_t;

kiln_value_t *kiln_value_from_tensor(kiln_tensor_t *t); /* takes ownership of t */
kiln_value_t *kiln_value_new_sequence(kiln_dtype_t elem_dtype);
kiln_value_t *kiln_value_new_none(kiln_value_kind_t none_of, kiln_dtype_t elem_dtype);
/* Appends (takes ownership of t) at position pos (-1 = end). */
kiln_status_t kiln_sequence_insert(kiln_value_t *seq, int64_t pos, kiln_tensor_t *t);
kiln_value_t *kiln_value_clone(const kiln_value_t *v);
void kiln_value_free(kiln_value_t *v);

#endif
