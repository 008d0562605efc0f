/*
 * kernel.h - what an operator kernel sees, and how kernels are registered.
 *
 * A kernel is a function that reads its node's inputs and attributes through
 * a kiln_kernel_ctx_t and produces its outputs.  Kernels are registered in one
 * table keyed by (domain, op, opset range, input dtype, provider); the
 * session looks a kernel up once per node when it is created, so the graph
 * code never names a kernel and a new provider (CUDA) only adds entries.
 *
 * Writing a kernel:
 *   static kiln_status_t relu_run(kiln_kernel_ctx_t *ctx) {
 *       const kiln_tensor_t *x = kiln_ctx_input(ctx, 0);
 *       kiln_tensor_t *y = kiln_ctx_output(ctx, 0, x->dtype, x->rank, x->dims);
 *       if (!y) return kiln_ctx_status(ctx);
 *       ... compute ...
 *       return KILN_OK;
 *   }
 * and in the family's register function:
 *   kiln_register(reg, &(kiln_kernel_t){.op = "Relu", .since = 6, .run = relu_run,
 *                                        .dtypes = KILN_DTYPES_FLOAT});
 *
 * Errors: return kiln_ctx_fail(ctx, KILN_ERR_..., "what was wrong"); the
 * message is prefixed with the node's name and op.
 */
#ifndef KILN_OPS_KERNEL_H
#define KILN_OPS_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/graph.h"
#include "core/tensor.h"

typedef struct kiln_kernel_ctx kiln_kernel_ctx_t;
typedef struct kiln_registry kiln_registry_t;
struct kiln_threadpool;

typedef kiln_status_t (*kiln_kernel_run_fn)(kiln_kernel_ctx_t *ctx);

/* Bit masks over kiln_dtype_t for kiln_kernel_t.dtypes. */
#define KILN_DTYPE_BIT(d) (1u << (d))
#define KILN_DTYPES_ANY 0u
#define KILN_DTYPES_FLOAT                                                                     \
    (KILN_DTYPE_BIT(KILN_DTYPE_FLOAT32) | KILN_DTYPE_BIT(KILN_DTYPE_FLOAT64) |                 \
     KILN_DTYPE_BIT(KILN_DTYPE_FLOAT16) | KILN_DTYPE_BIT(KILN_DTYPE_BFLOAT16))

typedef struct kiln_kernel {
    const char *domain;        /* NULL or "" = the default ONNX domain */
    const char *op;            /* op type, e.g. "Conv" */
    int since;                 /* first opset version this kernel implements */
    int until;                 /* last opset version (0 = no limit) */
    uint32_t dtypes;           /* accepted dtypes of input 0 (KILN_DTYPES_ANY = all) */
    kiln_provider_t provider;  /* KILN_PROVIDER_CPU */
    kiln_kernel_run_fn run;
} kiln_kernel_t;

/* Adds a copy of *k to the registry. */
kiln_status_t kiln_register(kiln_registry_t *reg, const kiln_kernel_t *k);

/* The process-wide registry with every built-in kernel (built on first use,
 * thread-safe). */
const kiln_registry_t *kiln_registry_default(void);

/* Finds the kernel for an op at an opset and input-0 dtype (UNDEFINED =
 * any).  Returns NULL when none matches; *op_known tells whether the op
 * exists at all for that domain. */
const kiln_kernel_t *kiln_registry_find(const kiln_registry_t *reg, kiln_provider_t provider,
                                        const char *domain, const char *op, int opset,
                                        kiln_dtype_t dtype, bool *op_known);

/* ---- The kernel context ------------------------------------------------ */

const kiln_node_t *kiln_ctx_node(const kiln_kernel_ctx_t *ctx);
/* The opset version in force for the node's domain. */
int kiln_ctx_opset(const kiln_kernel_ctx_t *ctx);

/* Number of input slots of the node (omitted trailing ones not counted). */
int kiln_ctx_input_count(const kiln_kernel_ctx_t *ctx);
/* Input i as a tensor; NULL when the slot is omitted, out of range, or holds
 * a sequence or an empty optional. */
const kiln_tensor_t *kiln_ctx_input(const kiln_kernel_ctx_t *ctx, int i);
/* Input i as a value (tensor, sequence or empty optional); NULL if omitted. */
const kiln_value_t *kiln_ctx_input_value(const kiln_kernel_ctx_t *ctx, int i);

/* Input i's weight as packed by the session at creation for the GEMM
 * microkernel (a kiln_sgemm_packed_b_t, ops/gemm.h; today MatMul's B), or
 * NULL: then read the tensor as usual.  The tensor itself may have been
 * released (data NULL) when every reader has a packed copy. */
const void *kiln_ctx_input_prepacked(const kiln_kernel_ctx_t *ctx, int i);
/* Input i's weight (a float32 initializer of rank >= 3: Conv's W) packed
 * once per session as the GEMM's A operand: `groups` blocks one after
 * another, block g being rows [g*R, g*R + R) (R = dims[0] / groups) of W
 * as an R x (count / dims[0]) matrix packed by kiln_sgemm_pack_a, each
 * kiln_sgemm_packed_a_floats(R, count / dims[0]) floats.  NULL when not
 * available (not an initializer, out of memory...): pack per run. */
const float *kiln_ctx_input_packed_a(const kiln_kernel_ctx_t *ctx, int i, int64_t groups);

int kiln_ctx_output_count(const kiln_kernel_ctx_t *ctx);
/* True when output i exists and its value is used (not omitted). */
bool kiln_ctx_output_wanted(const kiln_kernel_ctx_t *ctx, int i);
/* Allocates output i with this dtype and shape (zero-filled) and returns it.
 * On failure (size overflow, out of memory) returns NULL with the error set;
 * return kiln_ctx_status(ctx) then.  Works for omitted outputs too (the
 * tensor is simply dropped after the kernel), so kernels need not check. */
kiln_tensor_t *kiln_ctx_output(kiln_kernel_ctx_t *ctx, int i, kiln_dtype_t dtype, int rank,
                               const int64_t *dims);
/* Same, but the elements are not zeroed: for kernels that write every
 * element of the output (the memset is a few percent of a run otherwise). */
kiln_tensor_t *kiln_ctx_output_uninit(kiln_kernel_ctx_t *ctx, int i, kiln_dtype_t dtype, int rank,
                                      const int64_t *dims);
/* Makes output i a view of input `input`: the same elements (no copy) under
 * a new shape with the same element count (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity).  The executor keeps the input's storage alive while
 * the view is, and copies a view that is a graph output.  The kernel must
 * not write through the returned tensor.  NULL with the error set when the
 * input is missing or the counts differ. */
kiln_tensor_t *kiln_ctx_output_view(kiln_kernel_ctx_t *ctx, int i, int input, int rank,
                                    const int64_t *dims);
/* Sets output i to a value built by the kernel (sequences, optionals, or a
 * tensor made elsewhere); takes ownership. */
kiln_status_t kiln_ctx_set_output_value(kiln_kernel_ctx_t *ctx, int i, kiln_value_t *value);

/* Records an error prefixed with "node 'NAME' (OP): " and returns status. */
kiln_status_t kiln_ctx_fail(kiln_kernel_ctx_t *ctx, kiln_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The status of the last failed ctx call (for NULL returns). */
kiln_status_t kiln_ctx_status(const kiln_kernel_ctx_t *ctx);

/* Intra-op parallelism: runs fn(arg, begin, end) over [0, n) split into
 * chunks across the session's threads; grain is the smallest chunk worth a
 * thread. Runs inline when the session has one thread. */
typedef void (*kiln_parallel_fn)(void *arg, int64_t begin, int64_t end);
void kiln_ctx_parallel_for(kiln_kernel_ctx_t *ctx, int64_t n, int64_t grain, kiln_parallel_fn fn,
                           void *arg);
/* How many threads kiln_ctx_parallel_for may use (1 when inline). */
int kiln_ctx_threads(const kiln_kernel_ctx_t *ctx);

/* Runs a subgraph (If/Loop/Scan/SequenceMap bodies) with the given input
 * values, in the scope of the current node (outer-scope names resolve to the
 * caller's values).  outputs[0..n_outputs) receive new values the caller
 * owns.  Inputs are borrowed. */
kiln_status_t kiln_ctx_run_subgraph(kiln_kernel_ctx_t *ctx, const kiln_graph_t *graph,
                                    int n_inputs, const kiln_value_t *const *inputs,
                                    int n_outputs, kiln_value_t **outputs);

/* ---- Family registration (one per file group under src/ops/) ------------ */

void kiln_ops_register_elementwise(kiln_registry_t *reg); /* ops/elementwise*.c */
void kiln_ops_register_activation(kiln_registry_t *reg);  /* ops/activation.c */
void kiln_ops_register_reduce(kiln_registry_t *reg);      /* ops/reduce.c */
void kiln_ops_register_normalize(kiln_registry_t *reg);   /* ops/normalize.c, softmax, losses */
void kiln_ops_register_nn(kiln_registry_t *reg);          /* ops/conv.c, pool.c, gemm.c */
void kiln_ops_register_quant(kiln_registry_t *reg);       /* ops/quant.c */
void kiln_ops_register_tensor(kiln_registry_t *reg);      /* ops/shape.c, gather.c, ... */
void kiln_ops_register_image(kiln_registry_t *reg);       /* ops/resize.c, roi, nms, grid */
void kiln_ops_register_control(kiln_registry_t *reg);     /* ops/control.c: If, Loop, Scan */
void kiln_ops_register_sequence(kiln_registry_t *reg);    /* ops/sequence.c, optional */
void kiln_ops_register_rnn(kiln_registry_t *reg);         /* ops/rnn.c */
void kiln_ops_register_signal(kiln_registry_t *reg);      /* ops/signal.c: DFT, STFT, windows */
void kiln_ops_register_text(kiln_registry_t *reg);        /* ops/text.c: StringNormalizer, TfIdf */
void kiln_ops_register_misc(kiln_registry_t *reg);        /* ops/misc.c: Einsum, Det, Unique... */
void kiln_ops_register_fused(kiln_registry_t *reg);       /* ops/fused.c: com.kiln ops of the optimizer */

#endif
