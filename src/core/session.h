/*
 * session.h - a session: a checked model plus what running it needs (the
 * thread pool, the options), and the executor that walks the sorted nodes.
 *
 * Execution keeps one slot per graph value in a frame.  Graph inputs and
 * initializers are borrowed; each node output is owned by the frame and
 * freed right after its last consumer ran (consumer counts come from the
 * graph check).  Subgraphs run in a child frame whose outer-scope values
 * point at the parent's slots.
 *
 * A value may be a view of another (Reshape, Identity ... share their
 * input's elements): the frame keeps the source's storage until its last
 * view is released too.  Graph outputs are handed to the caller as tensors
 * that own their elements (a view or an arena-placed value is copied).
 *
 * Memory plan: the first run of the main graph records every output the
 * kernels allocate (node, size, and when it was freed); an offline pass
 * places them in one arena so that values alive at the same time do not
 * overlap.  Later runs with the same input shapes take their outputs from
 * the arena at the planned offsets; any difference (another size, another
 * order) falls back to the allocator for the rest of that run and records a
 * new plan on the next.
 */
#ifndef KILN_CORE_SESSION_H
#define KILN_CORE_SESSION_H

#include "core/graph.h"
#include "core/threadpool.h"
#include "kiln.h"

struct kiln_opt_graph;

struct kiln_session {
    kiln_model_t *model;
    kiln_model_ir_t *ir;
    /* The graph this session runs and describes: the model's graph at
     * optimization level 0, else the session's own optimized copy (opt
     * owns it, and the weights the passes made; see opt/opt.h). */
    const kiln_graph_t *graph;
    struct kiln_opt_graph *opt;
    kiln_session_options_t options;
    kiln_threadpool_t *pool;
    /* Peak bytes of live intermediate tensors during the last run, and the
     * sum of all intermediate tensor sizes (reported by kiln bench). */
    size_t last_peak_bytes;
    size_t last_total_bytes;
    /* The activation arena of the main graph (see session.c, "memory
     * plan"): planned from the value lifetimes of a recorded run, reused by
     * the runs after it while the input shapes stay the same. */
    struct kiln_plan *plan;
    size_t last_arena_bytes; /* planned arena size in force for the last run (0: none) */
    /* MatMul weights packed for the GEMM microkernel on first use, per
     * initializer of packed_graph (see session.c, "prepacked weights"). */
    const kiln_graph_t *packed_graph;
    struct kiln_sgemm_packed_b **packed_b; /* NULL where not (yet) packed */
    int *pack_uses;          /* MatMuls that read it packed (0: not packable) */
    unsigned char *pack_done; /* packing was done (or tried), read atomically */
    int pack_pending;        /* packable weights not packed yet */
    float *pack_scratch;     /* packing buffer, freed when none are pending */
    size_t pack_scratch_bytes;
    size_t packed_bytes;     /* bytes of packed copies */
    size_t released_bytes;   /* bytes of originals they replaced (freed or handed back) */
    /* Conv weights packed as the GEMM's A operand on first use, per
     * initializer of packed_graph (kiln_ctx_input_packed_a); the originals
     * are kept.  packed_a_groups / packed_a_path: the split and microkernel
     * each was packed for. */
    float **packed_a;
    int64_t *packed_a_groups;
    const char **packed_a_path;
    /* 3x3 Conv weights Winograd-transformed and packed on first use, per
     * initializer of packed_graph (kiln_ctx_input_winograd, layout in
     * ops/conv_winograd.h); wino_path / wino_tile: the microkernel and the
     * tile size each was made for (path NULL: not tried yet; tried and out
     * of memory leaves wino_u NULL). */
    float **wino_u;
    const char **wino_path;
    int *wino_tile;
    bool counted;            /* counted in model->sessions */
    /* Per-node profile of the main graph (kiln_session_set_profiling):
     * NULL while off; else one entry per node of graph, summed with atomic
     * adds so concurrent runs stay consistent. */
    struct kiln_node_timing *profile;
};

/* One node's profile counters (see kiln_session_profile). */
typedef struct kiln_node_timing {
    long long runs;
    long long total_ns;
    int out_rank;
    long long out_dims[8];
} kiln_node_timing_t;

/* Runs graph g with inputs (one per g->inputs entry; NULL = use the
 * initializer) and returns new output values (caller owns).  parent is the
 * enclosing frame for subgraphs (NULL at top level). */
struct kiln_frame;
kiln_status_t kiln_execute_graph(kiln_session_t *s, const kiln_graph_t *g, struct kiln_frame *parent,
                                 const kiln_value_t *const *inputs, kiln_value_t **outputs);



/* Runs the main graph on values: inputs[i] feeds the i-th graph input that
 * has no initializer (NULL leaves an optional input empty); outputs gets
 * one new value per graph output (caller frees). Checks dtype and rank of
 * tensor inputs against the declaration. */
kiln_status_t kiln_session_run_values(kiln_session_t *s, int n_inputs, const kiln_value_t *const *inputs,
                                      kiln_value_t **outputs);
#endif
