/*
 * session.c - sessions, the graph executor and the kernel context
 * (see session.h and ops/kernel.h).
 */
#include "core/session.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/big_alloc.h"
#include "core/error.h"
#include "ops/conv_winograd.h"
#include "ops/gemm.h"
#include "ops/kernel.h"
#include "onnx/model.h"
#include "opt/opt.h"

/* ---- memory plan ---------------------------------------------------------
 *
 * One entry per tensor the kernels allocate through kiln_ctx_output during a
 * run of the main graph, in allocation order (graph outputs, omitted outputs,
 * strings and empty tensors are never planned: they are allocated as usual).
 * A recorded run fills node/output/nbytes and the lifetime [first, last] in
 * node steps (allocated while node `first` ran, its storage released after
 * node `last` ran); plan_place() then gives each entry an offset such that
 * entries whose lifetimes overlap do not overlap in the arena. */
typedef struct plan_entry {
    int node, output;
    size_t nbytes;
    int first, last;
    size_t offset;
} plan_entry_t;

typedef enum plan_state {
    PLAN_RECORD, /* the next run records */
    PLAN_READY   /* entries placed; runs with the same input shapes use the arena */
} plan_state_t;

typedef struct kiln_plan {
    pthread_mutex_t lock;     /* held by the run using the plan; others run without */
    plan_state_t state;
    const kiln_graph_t *graph;
    bool *is_output;          /* per value of graph: listed as a graph output */
    int n_inputs;
    kiln_dtype_t *in_dtype;   /* input shapes the plan was recorded with */
    int *in_rank;
    int64_t (*in_dims)[KILN_MAX_RANK];
    plan_entry_t *entries;
    int n_entries, cap_entries;
    size_t arena_bytes;
    void *arena;
} kiln_plan_t;

typedef enum frame_plan_mode { FRAME_PLAN_NONE, FRAME_PLAN_RECORD, FRAME_PLAN_USE } frame_plan_mode_t;

/* The values of one running graph. */
typedef struct kiln_frame {
    const kiln_graph_t *graph;
    struct kiln_frame *parent;
    kiln_value_t **slots;   /* per value: current value (NULL when not yet produced) */
    bool *owned;            /* slot is freed by the frame */
    int *remaining;         /* consumers left before the slot can be freed */
    int *view_of;           /* per value: the owned value whose storage it shares, or -1 */
    int *views;             /* per value: live views of its storage (it is kept while > 0) */
    int *entry;             /* per value: its plan entry while recording, or -1 */
    kiln_value_t *borrowed; /* wrappers for initializers (not owning their tensors) */
    size_t live_bytes, peak_bytes, total_bytes;
    int step;               /* index of the node running */
    kiln_plan_t *plan;      /* main graph only, when this run holds the plan */
    frame_plan_mode_t plan_mode;
    int next_entry;         /* FRAME_PLAN_USE: the entry the next allocation should match */
    bool plan_broken;       /* FRAME_PLAN_USE: an allocation did not match; malloc from here on */
} kiln_frame_t;

struct kiln_kernel_ctx {
    kiln_session_t *session;
    kiln_frame_t *frame;
    const kiln_node_t *node;
    kiln_status_t status;
    kiln_value_t **dropped; /* outputs made for omitted slots, freed after the kernel */
    int n_dropped;
};

void kiln_session_options_init(kiln_session_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 0;
    o->optimization_level = 3;
    o->provider = KILN_PROVIDER_CPU;
}

/* ---- prepacked weights ---------------------------------------------------
 *
 * The B operand of a MatMul is packed into the GEMM microkernel's panels on
 * every call; for a weight (a float32 matrix initializer) the session packs
 * it once, the first time a MatMul asks (kiln_ctx_input_prepacked), and the
 * MatMuls read the panels from then on.  Loading and session creation stay
 * cheap (the weights are not even read), as does a session that never runs.
 *
 * When every reader of the weight in the graph is such a MatMul, the packed
 * copy replaces the original: a heap copy the model reader made of
 * misaligned file bytes becomes the panels' storage (packed through a
 * scratch buffer, so no new memory) or is freed; pages in the file mapping
 * are handed back.  Heap copies are only taken while the model has no other
 * session (which might read them); a new session first copies any taken
 * original back from the file, and so does freeing the last session, so the
 * model is as loaded for whoever uses it next. */

static pthread_mutex_t g_prepack_lock = PTHREAD_MUTEX_INITIALIZER;

/* The initializer index read by input 1 of node when it is a MatMul whose
 * B can be prepacked (a float32 matrix initializer that no caller can
 * override), else -1. */
static int packable_b(const kiln_graph_t *g, const kiln_node_t *node)
{
    /* MatMul, or the optimizer's FusedMatMul (+ bias, activation) unless it
     * reads B transposed */
    bool matmul = !strcmp(node->op_type, "MatMul") && !(node->domain && node->domain[0]) && node->n_inputs == 2;
    bool fused = !strcmp(node->op_type, "FusedMatMul") && node->domain && !strcmp(node->domain, KILN_OPT_DOMAIN) &&
                 node->n_inputs >= 2 && node->n_inputs <= 3 && !kiln_attr_int(node, "transB", 0);
    if ((!matmul && !fused) || node->inputs[1] < 0)
        return -1;
    const kiln_value_info_t *vi = &g->values[node->inputs[1]];
    if (vi->initializer < 0 || vi->is_graph_input)
        return -1;
    const kiln_tensor_t *t = g->initializers[vi->initializer];
    if (t->dtype != KILN_DTYPE_FLOAT32 || t->rank != 2 || t->dims[1] <= 1 || t->dims[0] < 1 || !t->data)
        return -1;
    return vi->initializer;
}

/* Weights of the model's graph that the optimized graph no longer reads
 * (a Conv weight replaced by its BatchNormalization-folded copy, inputs of
 * folded constants) are released like replaced ones: a misaligned heap
 * copy is freed while this is the model's only session, file pages are
 * handed back. */
static void release_unread_weights(kiln_session_t *s)
{
    const kiln_graph_t *mg = s->ir->graph, *g = s->graph;
    if (g == mg)
        return;
    pthread_mutex_lock(&g_prepack_lock);
    for (int i = 0; i < mg->n_initializers; i++) {
        kiln_tensor_t *t = mg->initializers[i];
        bool read = mg->values[mg->initializer_values[i]].is_graph_input;
        for (int j = 0; j < g->n_initializers && !read; j++)
            read = g->initializers[j] == t;
        if (read || !t->data || t->dtype == KILN_DTYPE_STRING)
            continue;
        if (s->model->sessions == 1 && kiln_model_is_copy(s->model, t)) {
            free(kiln_model_take_copy(s->model, t));
            s->released_bytes += t->nbytes;
        } else {
            s->released_bytes += kiln_model_release_mapped(s->model, t);
        }
    }
    pthread_mutex_unlock(&g_prepack_lock);
}

static void prepack_free(kiln_session_t *s)
{
    for (int i = 0; s->packed_a && i < s->packed_graph->n_initializers; i++)
        free(s->packed_a[i]);
    free(s->packed_a);
    free(s->packed_a_groups);
    free(s->packed_a_path);
    s->packed_a = NULL;
    for (int i = 0; s->wino_u && i < s->packed_graph->n_initializers; i++)
        free(s->wino_u[i]);
    free(s->wino_u);
    free(s->wino_path);
    free(s->wino_tile);
    s->wino_u = NULL;
    for (int i = 0; s->packed_b && i < s->packed_graph->n_initializers; i++)
        kiln_sgemm_packed_b_free(s->packed_b[i]);
    free(s->packed_b);
    free(s->pack_uses);
    free(s->pack_done);
    free(s->pack_scratch);
    s->packed_b = NULL;
}

/* Finds the packable MatMul weights of g: pack_uses[init] counts the
 * MatMuls that would read init packed (0: not packable). */
static kiln_status_t prepack_prepare(kiln_session_t *s, const kiln_graph_t *g)
{
    s->packed_graph = g;
    s->packed_b = calloc((size_t)g->n_initializers + 1, sizeof *s->packed_b);
    s->pack_uses = calloc((size_t)g->n_initializers + 1, sizeof *s->pack_uses);
    s->pack_done = calloc((size_t)g->n_initializers + 1, sizeof *s->pack_done);
    s->packed_a = calloc((size_t)g->n_initializers + 1, sizeof *s->packed_a);
    s->packed_a_groups = calloc((size_t)g->n_initializers + 1, sizeof *s->packed_a_groups);
    s->packed_a_path = calloc((size_t)g->n_initializers + 1, sizeof *s->packed_a_path);
    s->wino_u = calloc((size_t)g->n_initializers + 1, sizeof *s->wino_u);
    s->wino_path = calloc((size_t)g->n_initializers + 1, sizeof *s->wino_path);
    s->wino_tile = calloc((size_t)g->n_initializers + 1, sizeof *s->wino_tile);
    if (!s->packed_b || !s->pack_uses || !s->pack_done || !s->packed_a || !s->packed_a_groups || !s->packed_a_path ||
        !s->wino_u || !s->wino_path || !s->wino_tile)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory preparing to prepack weights");
    for (int i = 0; i < g->n_nodes; i++) {
        int init = packable_b(g, &g->nodes[i]);
        if (init >= 0 && s->pack_uses[init]++ == 0)
            s->pack_pending++;
    }
    return KILN_OK;
}

/* Packs weight init (see above); with g_prepack_lock held. */
static void prepack_one(kiln_session_t *s, int init)
{
    const kiln_graph_t *g = s->packed_graph;
    kiln_tensor_t *w = g->initializers[init];
    int64_t k = w->dims[0], n = w->dims[1];
    size_t bytes = kiln_sgemm_packed_b_size(k, n);
    /* every reader is a packed MatMul (a graph output or a subgraph reading
     * it counts as a consumer too) */
    bool only_packed = s->pack_uses[init] == g->values[g->initializer_values[init]].consumers;
    bool take = only_packed && s->model->sessions == 1 && kiln_model_is_copy(s->model, w);
    kiln_sgemm_packed_b_t *p = NULL;
    if (take && bytes <= ((w->nbytes + 63) & ~(size_t)63)) {
        if (bytes > s->pack_scratch_bytes) {
            free(s->pack_scratch);
            s->pack_scratch_bytes = 0;
            if ((s->pack_scratch = aligned_alloc(64, (bytes + 63) & ~(size_t)63)))
                s->pack_scratch_bytes = bytes;
        }
        float *storage = w->data;
        if (s->pack_scratch && (p = kiln_sgemm_pack_b_into(false, k, n, w->data, n, storage, s->pack_scratch))) {
            kiln_model_take_copy(s->model, w); /* == storage, p's from now on */
            s->released_bytes += w->nbytes;
        }
    }
    if (!p && (p = kiln_sgemm_pack_b(false, k, n, w->data, n))) {
        if (take) {
            kiln_sgemm_packed_b_forget_source(p);
            free(kiln_model_take_copy(s->model, w)); /* the packed copy replaces it */
            s->released_bytes += w->nbytes;
        } else if (only_packed) { /* the file pages are not needed any more */
            s->released_bytes += kiln_model_release_mapped(s->model, w);
        }
    }
    s->packed_b[init] = p; /* NULL when out of memory: this MatMul packs per call */
    s->packed_bytes += kiln_sgemm_packed_b_bytes(p);
    if (--s->pack_pending == 0) {
        free(s->pack_scratch);
        s->pack_scratch = NULL;
        s->pack_scratch_bytes = 0;
    }
}

const void *kiln_ctx_input_prepacked(const kiln_kernel_ctx_t *ctx, int i)
{
    kiln_session_t *s = ctx->session;
    const kiln_frame_t *f = ctx->frame;
    if (!s || !s->packed_b || f->graph != s->packed_graph || i < 0 || i >= ctx->node->n_inputs ||
        ctx->node->inputs[i] < 0)
        return NULL;
    int v = ctx->node->inputs[i];
    int init = f->graph->values[v].initializer;
    /* a packable weight, and the slot still holds the initializer itself */
    if (init < 0 || !s->pack_uses[init] || !f->slots[v] || f->slots[v]->tensor != f->graph->initializers[init])
        return NULL;
    if (!__atomic_load_n(&s->pack_done[init], __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&g_prepack_lock);
        if (!s->pack_done[init]) {
            prepack_one(s, init);
            __atomic_store_n(&s->pack_done[init], 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&g_prepack_lock);
    }
    return s->packed_b[init];
}

/* Conv weights as the GEMM's A operand (see kernel.h): any float32
 * initializer of rank >= 3 that no caller can override, packed per group
 * the first time a Conv asks, kept until the session ends.  A weight asked
 * for with another group count or after the microkernel changed (tests
 * switch it) is not served: the caller packs per run. */
/* The initializer behind input i of the running node when the session can
 * keep a transformed copy of it: a constant weight of the main graph that
 * no caller can override and that the slot still holds; else -1. */
static int constant_weight(const kiln_kernel_ctx_t *ctx, int i)
{
    kiln_session_t *s = ctx->session;
    const kiln_frame_t *f = ctx->frame;
    if (!s || !s->packed_a || f->graph != s->packed_graph || i < 0 || i >= ctx->node->n_inputs ||
        ctx->node->inputs[i] < 0)
        return -1;
    int v = ctx->node->inputs[i];
    const kiln_value_info_t *vi = &f->graph->values[v];
    int init = vi->initializer;
    if (init < 0 || vi->is_graph_input || !f->slots[v] || f->slots[v]->tensor != f->graph->initializers[init])
        return -1;
    return init;
}

const float *kiln_ctx_input_packed_a(const kiln_kernel_ctx_t *ctx, int i, int64_t groups)
{
    kiln_session_t *s = ctx->session;
    int init = groups < 1 ? -1 : constant_weight(ctx, i);
    if (init < 0)
        return NULL;
    const kiln_tensor_t *w = ctx->frame->graph->initializers[init];
    if (w->dtype != KILN_DTYPE_FLOAT32 || w->rank < 3 || !w->data || w->count == 0 || w->dims[0] % groups)
        return NULL;
    const char *path = kiln_sgemm_path();
    pthread_mutex_lock(&g_prepack_lock);
    if (!s->packed_a[init] && !s->packed_a_groups[init]) {
        int64_t rows = w->dims[0] / groups, cols = (int64_t)w->count / w->dims[0];
        size_t per_group = kiln_sgemm_packed_a_floats(rows, cols);
        float *p = kiln_big_alloc(per_group * (size_t)groups * sizeof(float));
        if (p)
            for (int64_t g = 0; g < groups; g++)
                kiln_sgemm_pack_a(rows, cols, (const float *)w->data + g * rows * cols, cols, p + g * per_group);
        s->packed_a[init] = p;
        s->packed_a_groups[init] = groups;
        s->packed_a_path[init] = path;
        if (p)
            s->packed_bytes += per_group * (size_t)groups * sizeof(float);
    }
    const float *p = s->packed_a_groups[init] == groups && s->packed_a_path[init] == path ? s->packed_a[init] : NULL;
    pthread_mutex_unlock(&g_prepack_lock);
    return p;
}

/* Winograd weights (see kernel.h): transformed the first time a Conv asks,
 * kept until the session ends; not served for another tile size or after
 * the microkernel changed (tests switch it): the caller transforms per run
 * then. */
const float *kiln_ctx_input_winograd(const kiln_kernel_ctx_t *ctx, int i, int tile)
{
    kiln_session_t *s = ctx->session;
    int init = constant_weight(ctx, i);
    if (init < 0)
        return NULL;
    const kiln_tensor_t *w = ctx->frame->graph->initializers[init];
    if (w->dtype != KILN_DTYPE_FLOAT32 || w->rank != 4 || !w->data || w->dims[2] != 3 || w->dims[3] != 3 ||
        w->count == 0)
        return NULL;
    const char *path = kiln_sgemm_path();
    pthread_mutex_lock(&g_prepack_lock);
    if (!s->wino_path[init]) {
        size_t floats = kiln_winograd_weights_floats(tile, w->dims[0], w->dims[1]);
        float *u = kiln_big_alloc(floats * sizeof(float));
        if (u && !kiln_winograd_weights(tile, w->dims[0], w->dims[1], w->data, u)) {
            free(u);
            u = NULL;
        }
        s->wino_u[init] = u;
        s->wino_path[init] = path;
        s->wino_tile[init] = tile;
        if (u)
            s->packed_bytes += floats * sizeof(float);
    }
    const float *u = s->wino_path[init] == path && s->wino_tile[init] == tile ? s->wino_u[init] : NULL;
    pthread_mutex_unlock(&g_prepack_lock);
    return u;
}

kiln_status_t kiln_session_create(kiln_model_t *model, const kiln_session_options_t *options,
                                  kiln_session_t **out)
{
    *out = NULL;
    if (!model)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_create: model is NULL");
    if (model->parse_only)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_create: the model was loaded without a graph check");
    kiln_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory creating a session");
    if (options)
        s->options = *options;
    else
        kiln_session_options_init(&s->options);
    kiln_provider_t provider = s->options.provider;
    int requested = s->options.threads;
    if (provider != KILN_PROVIDER_CPU || requested < 0 || requested > 1024) {
        free(s);
        if (provider != KILN_PROVIDER_CPU)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "provider %d is not available in this build", (int)provider);
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "threads must be between 0 and 1024, not %d", requested);
    }
    int threads = s->options.threads ? s->options.threads : kiln_cpu_count();
    s->model = model;
    s->ir = &model->ir;
    if (threads > 1) {
        s->pool = kiln_threadpool_create(threads);
        if (!s->pool) {
            free(s);
            return kiln_fail(KILN_ERR_NO_MEMORY, "cannot start %d threads", threads);
        }
    }
    /* Which graph runs: the model's, or (level 1 and up) an optimized copy. */
    s->graph = s->ir->graph;
    if (s->options.optimization_level < 0) {
        int level = s->options.optimization_level;
        kiln_threadpool_free(s->pool);
        free(s);
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "optimization_level must be 0 or more, not %d", level);
    }
    /* Weights an earlier session replaced are read again from the file:
     * this session's optimizer and graph may read them.  Counting the
     * session first keeps the others from replacing them again meanwhile. */
    pthread_mutex_lock(&g_prepack_lock);
    kiln_status_t st = kiln_model_restore_copies(model);
    if (!st) {
        model->sessions++;
        s->counted = true;
    }
    pthread_mutex_unlock(&g_prepack_lock);
    if (!st && s->options.optimization_level > 0) {
        int level = s->options.optimization_level > 3 ? 3 : s->options.optimization_level;
        st = kiln_opt_graph_create(s, s->ir->graph, level, &s->opt);
        if (!st)
            s->graph = &s->opt->graph;
        if (!st) {
            pthread_mutex_lock(&g_prepack_lock);
            st = prepack_prepare(s, s->graph);
            pthread_mutex_unlock(&g_prepack_lock);
        }
        if (!st)
            release_unread_weights(s);
    }
    if (st) {
        kiln_session_free(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

static void plan_free(kiln_plan_t *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->is_output);
    free(p->in_dtype);
    free(p->in_rank);
    free(p->in_dims);
    free(p->entries);
    free(p->arena);
    free(p);
}

void kiln_session_free(kiln_session_t *s)
{
    if (!s)
        return;
    kiln_threadpool_free(s->pool);
    plan_free(s->plan);
    prepack_free(s);
    kiln_opt_graph_free(s->opt);
    free(s->profile);
    if (s->counted) {
        pthread_mutex_lock(&g_prepack_lock);
        if (--s->model->sessions == 0)
            kiln_model_restore_copies(s->model); /* out of memory: stays released (data NULL) */
        pthread_mutex_unlock(&g_prepack_lock);
    }
    free(s);
}

int kiln_session_input_count(const kiln_session_t *s)
{
    const kiln_graph_t *g = s->graph;
    int n = 0;
    for (int i = 0; i < g->n_inputs; i++)
        n += g->values[g->inputs[i]].initializer < 0;
    return n;
}

int kiln_session_output_count(const kiln_session_t *s) { return s->graph->n_outputs; }

static void fill_info(const kiln_value_info_t *v, kiln_io_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->name = v->name;
    info->dtype = v->type.dtype;
    info->rank = v->type.rank;
    for (int d = 0; d < v->type.rank && d < KILN_MAX_RANK; d++) {
        info->dims[d] = v->type.dims[d].size;
        info->dim_names[d] = v->type.dims[d].symbol;
    }
}

kiln_status_t kiln_session_input_info(const kiln_session_t *s, int index, kiln_io_info_t *info)
{
    const kiln_graph_t *g = s->graph;
    int n = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        const kiln_value_info_t *v = &g->values[g->inputs[i]];
        if (v->initializer >= 0)
            continue;
        if (n++ == index) {
            fill_info(v, info);
            return KILN_OK;
        }
    }
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input index %d is out of range (the model has %d inputs)", index, n);
}

kiln_status_t kiln_session_output_info(const kiln_session_t *s, int index, kiln_io_info_t *info)
{
    const kiln_graph_t *g = s->graph;
    if (index < 0 || index >= g->n_outputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output index %d is out of range (the model has %d outputs)",
                         index, g->n_outputs);
    fill_info(&g->values[g->outputs[index]], info);
    return KILN_OK;
}

/* ---- kernel context ------------------------------------------------------ */

const kiln_node_t *kiln_ctx_node(const kiln_kernel_ctx_t *ctx) { return ctx->node; }
int kiln_ctx_opset(const kiln_kernel_ctx_t *ctx) { return ctx->node->opset; }
int kiln_ctx_input_count(const kiln_kernel_ctx_t *ctx) { return ctx->node->n_inputs; }
int kiln_ctx_output_count(const kiln_kernel_ctx_t *ctx) { return ctx->node->n_outputs; }

const kiln_value_t *kiln_ctx_input_value(const kiln_kernel_ctx_t *ctx, int i)
{
    if (i < 0 || i >= ctx->node->n_inputs || ctx->node->inputs[i] < 0)
        return NULL;
    return ctx->frame->slots[ctx->node->inputs[i]];
}

const kiln_tensor_t *kiln_ctx_input(const kiln_kernel_ctx_t *ctx, int i)
{
    const kiln_value_t *v = kiln_ctx_input_value(ctx, i);
    return v && v->kind == KILN_VALUE_TENSOR ? v->tensor : NULL;
}

bool kiln_ctx_output_wanted(const kiln_kernel_ctx_t *ctx, int i)
{
    return i >= 0 && i < ctx->node->n_outputs && ctx->node->outputs[i] >= 0;
}

/* Frees what slot v holds (after its last reader, or when a kernel replaces
 * it).  A view releases its hold on its source, which goes too when that was
 * the last thing keeping it.  The source of live views is kept. */
static void release_slot(kiln_frame_t *f, int v)
{
    if (f->owned[v] && f->views[v] > 0)
        return; /* released when its last view is */
    kiln_value_t *val = f->slots[v];
    int src = f->view_of[v];
    if (f->owned[v] && val) {
        if (src < 0 && val->tensor)
            f->live_bytes -= val->tensor->nbytes;
        if (f->entry[v] >= 0)
            f->plan->entries[f->entry[v]].last = f->step;
        kiln_value_free(val);
    }
    f->slots[v] = NULL;
    f->owned[v] = false;
    f->view_of[v] = -1;
    f->entry[v] = -1;
    if (src >= 0 && --f->views[src] == 0 && f->remaining[src] <= 0)
        release_slot(f, src);
}

/* Puts value into the slot of output i (or among the dropped ones when the
 * output is omitted).  Returns the value index, -1 when dropped, -2 on
 * failure (value freed, error set). */
static int place_output(kiln_kernel_ctx_t *ctx, int i, kiln_value_t *value)
{
    kiln_frame_t *f = ctx->frame;
    if (!kiln_ctx_output_wanted(ctx, i)) {
        kiln_value_t **d = realloc(ctx->dropped, (size_t)(ctx->n_dropped + 1) * sizeof *d);
        if (!d) {
            kiln_value_free(value);
            ctx->status = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
            return -2;
        }
        ctx->dropped = d;
        d[ctx->n_dropped++] = value;
        return -1;
    }
    int v = ctx->node->outputs[i];
    if (f->slots[v] && f->owned[v]) {
        f->views[v] = 0; /* a kernel replacing its own output: no view of it exists yet */
        release_slot(f, v);
    }
    f->slots[v] = value;
    f->owned[v] = true;
    return v;
}

static void count_bytes(kiln_frame_t *f, const kiln_value_t *value)
{
    if (value->kind == KILN_VALUE_TENSOR && value->tensor) {
        f->live_bytes += value->tensor->nbytes;
        f->total_bytes += value->tensor->nbytes;
        if (f->live_bytes > f->peak_bytes)
            f->peak_bytes = f->live_bytes;
    }
}

kiln_status_t kiln_ctx_set_output_value(kiln_kernel_ctx_t *ctx, int i, kiln_value_t *value)
{
    if (!value)
        return ctx->status = kiln_ctx_fail(ctx, KILN_ERR_NO_MEMORY, "output %d could not be made", i);
    int v = place_output(ctx, i, value);
    if (v == -2)
        return ctx->status;
    if (v >= 0)
        count_bytes(ctx->frame, value);
    return KILN_OK;
}

/* The planned storage for output i of nbytes, when this run follows a plan
 * and the allocation is the one the plan expects next; else NULL (and, while
 * recording, *entry names the entry recorded for it). */
static void *plan_storage(kiln_kernel_ctx_t *ctx, int i, kiln_dtype_t dtype, int rank, const int64_t *dims,
                          int *entry)
{
    kiln_frame_t *f = ctx->frame;
    *entry = -1;
    if (f->plan_mode == FRAME_PLAN_NONE || f->plan_broken || dtype == KILN_DTYPE_STRING ||
        !kiln_ctx_output_wanted(ctx, i) || f->plan->is_output[ctx->node->outputs[i]])
        return NULL;
    size_t esize = kiln_dtype_size(dtype);
    int64_t count = esize ? kiln_shape_count(rank, dims, esize) : -1;
    if (count <= 0)
        return NULL;
    size_t nbytes = (size_t)count * esize;
    kiln_plan_t *p = f->plan;
    if (f->plan_mode == FRAME_PLAN_USE) {
        plan_entry_t *e = f->next_entry < p->n_entries ? &p->entries[f->next_entry] : NULL;
        if (!e || e->node != f->step || e->output != i || e->nbytes != nbytes) {
            f->plan_broken = true;
            return NULL;
        }
        f->next_entry++;
        return (char *)p->arena + e->offset;
    }
    if (p->n_entries == p->cap_entries) {
        int cap = p->cap_entries ? p->cap_entries * 2 : 256;
        plan_entry_t *grown = realloc(p->entries, (size_t)cap * sizeof *grown);
        if (!grown) {
            f->plan_mode = FRAME_PLAN_NONE; /* cannot record: this run just allocates */
            p->n_entries = 0;
            return NULL;
        }
        p->entries = grown;
        p->cap_entries = cap;
    }
    *entry = p->n_entries;
    p->entries[p->n_entries++] =
        (plan_entry_t){.node = f->step, .output = i, .nbytes = nbytes, .first = f->step, .last = -1};
    return NULL;
}

static kiln_tensor_t *ctx_output(kiln_kernel_ctx_t *ctx, int i, kiln_dtype_t dtype, int rank, const int64_t *dims,
                                 bool zero)
{
    int entry;
    void *planned = plan_storage(ctx, i, dtype, rank, dims, &entry);
    kiln_tensor_t *t;
    if (planned) {
        size_t esize = kiln_dtype_size(dtype);
        size_t nbytes = (size_t)kiln_shape_count(rank, dims, esize) * esize;
        t = kiln_tensor_wrap(dtype, rank, dims, planned, nbytes);
        if (t && zero)
            memset(planned, 0, nbytes);
    } else {
        t = zero ? kiln_tensor_new(dtype, rank, dims) : kiln_tensor_new_uninit(dtype, rank, dims);
    }
    if (!t) {
        ctx->status = kiln_fail_prefix(KILN_ERR_NO_MEMORY, "node '%s' (%s) output %d", ctx->node->name,
                                       ctx->node->op_type, i);
        return NULL;
    }
    kiln_value_t *value = kiln_value_from_tensor(t);
    if (!value) {
        ctx->status = KILN_ERR_NO_MEMORY;
        return NULL;
    }
    int v = place_output(ctx, i, value);
    if (v == -2)
        return NULL;
    if (v >= 0) {
        count_bytes(ctx->frame, value);
        ctx->frame->entry[v] = entry;
    }
    return t;
}

kiln_tensor_t *kiln_ctx_output(kiln_kernel_ctx_t *ctx, int i, kiln_dtype_t dtype, int rank, const int64_t *dims)
{
    return ctx_output(ctx, i, dtype, rank, dims, true);
}

kiln_tensor_t *kiln_ctx_output_uninit(kiln_kernel_ctx_t *ctx, int i, kiln_dtype_t dtype, int rank,
                                      const int64_t *dims)
{
    return ctx_output(ctx, i, dtype, rank, dims, false);
}

kiln_tensor_t *kiln_ctx_output_view(kiln_kernel_ctx_t *ctx, int i, int input, int rank, const int64_t *dims)
{
    const kiln_tensor_t *x = kiln_ctx_input(ctx, input);
    if (!x) {
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "input %d is missing or not a tensor", input);
        return NULL;
    }
    int64_t count = kiln_shape_count(rank, dims, 0);
    if (count != x->count) {
        char a[256], b[256];
        kiln_ctx_fail(ctx, KILN_ERR_INVALID_ARGUMENT, "cannot view %s as %s",
                      kiln_shape_str(x->rank, x->dims, a, sizeof a), kiln_shape_str(rank, dims, b, sizeof b));
        return NULL;
    }
    kiln_tensor_t *t = calloc(1, sizeof *t);
    kiln_value_t *value = t ? kiln_value_from_tensor(t) : NULL;
    if (!value) {
        ctx->status = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    *t = *x;
    t->rank = rank;
    memset(t->dims, 0, sizeof t->dims);
    memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    t->owns_data = false;
    kiln_frame_t *f = ctx->frame;
    int src = ctx->node->inputs[input];
    int v = place_output(ctx, i, value);
    if (v == -2)
        return NULL;
    /* Track the source when this frame owns it (graph inputs, initializers
     * and outer values outlive the frame). */
    if (v >= 0 && f->owned[src] && f->slots[src]) {
        if (f->view_of[src] >= 0)
            src = f->view_of[src];
        f->view_of[v] = src;
        f->views[src]++;
    }
    return t;
}

kiln_status_t kiln_ctx_fail(kiln_kernel_ctx_t *ctx, kiln_status_t status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->status = status;
    return kiln_fail(status, "node '%s' (%s): %s", ctx->node->name, ctx->node->op_type, msg);
}

kiln_status_t kiln_ctx_status(const kiln_kernel_ctx_t *ctx)
{
    return ctx->status ? ctx->status : KILN_ERR_RUNTIME;
}

int kiln_ctx_threads(const kiln_kernel_ctx_t *ctx)
{
    int n = ctx && ctx->session && ctx->session->pool ? kiln_threadpool_threads(ctx->session->pool) : 1;
    return n > 1 ? n : 1;
}

void kiln_ctx_parallel_for(kiln_kernel_ctx_t *ctx, int64_t n, int64_t grain, kiln_parallel_fn fn, void *arg)
{
    kiln_threadpool_run(ctx->session ? ctx->session->pool : NULL, n, grain, fn, arg);
}

kiln_status_t kiln_ctx_run_subgraph(kiln_kernel_ctx_t *ctx, const kiln_graph_t *graph, int n_inputs,
                                    const kiln_value_t *const *inputs, int n_outputs, kiln_value_t **outputs)
{
    if (n_inputs != graph->n_inputs)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "subgraph '%s' takes %d inputs, %d given", graph->name,
                             graph->n_inputs, n_inputs);
    if (n_outputs != graph->n_outputs)
        return kiln_ctx_fail(ctx, KILN_ERR_INVALID_MODEL, "subgraph '%s' has %d outputs, %d expected", graph->name,
                             graph->n_outputs, n_outputs);
    kiln_status_t st = kiln_execute_graph(ctx->session, graph, ctx->frame, inputs, outputs);
    if (st)
        ctx->status = st;
    return st;
}

/* ---- per-node profile ------------------------------------------------------ */

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void profile_add(kiln_node_timing_t *t, long long ns, const kiln_value_t *out)
{
    __atomic_fetch_add(&t->runs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&t->total_ns, ns, __ATOMIC_RELAXED);
    if (out && out->kind == KILN_VALUE_TENSOR && out->tensor) {
        int r = out->tensor->rank;
        for (int d = 0; d < r && d < 8; d++)
            t->out_dims[d] = out->tensor->dims[d];
        t->out_rank = r;
    }
}

kiln_status_t kiln_session_set_profiling(kiln_session_t *s, int enabled)
{
    if (!s)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kiln_session_set_profiling: session is NULL");
    free(s->profile);
    s->profile = NULL;
    if (!enabled)
        return KILN_OK;
    s->profile = calloc((size_t)s->graph->n_nodes + 1, sizeof *s->profile);
    if (!s->profile)
        return kiln_fail(KILN_ERR_NO_MEMORY, "no memory for the profile of %d nodes", s->graph->n_nodes);
    for (int i = 0; i < s->graph->n_nodes; i++)
        s->profile[i].out_rank = -1;
    return KILN_OK;
}

int kiln_session_profile(const kiln_session_t *s, kiln_node_profile_t *out, int max)
{
    if (!s)
        return 0;
    const kiln_graph_t *g = s->graph;
    for (int i = 0; i < g->n_nodes && i < max && out; i++) {
        const kiln_node_t *node = &g->nodes[i];
        const kiln_node_timing_t *t = s->profile ? &s->profile[i] : NULL;
        kiln_node_profile_t *p = &out[i];
        memset(p, 0, sizeof *p);
        p->name = node->name ? node->name : "";
        p->op_type = node->op_type;
        p->domain = node->domain ? node->domain : "";
        p->out_rank = -1;
        if (t) {
            p->runs = __atomic_load_n(&t->runs, __ATOMIC_RELAXED);
            p->total_ms = (double)__atomic_load_n(&t->total_ns, __ATOMIC_RELAXED) / 1e6;
            p->out_rank = t->out_rank;
            for (int d = 0; d < t->out_rank && d < 8; d++)
                p->out_dims[d] = t->out_dims[d];
        }
    }
    return g->n_nodes;
}

/* ---- executor ------------------------------------------------------------ */

/* Finds the slot of value v of graph g in frame f, following outer links. */
static kiln_value_t *frame_lookup(kiln_frame_t *f, int v)
{
    while (f) {
        const kiln_graph_t *g = f->graph;
        if (g->values[v].outer < 0 || f->slots[v])
            return f->slots[v];
        int pv = g->outer_parent_values[g->values[v].outer];
        f = f->parent;
        v = pv;
        if (v < 0)
            return NULL;
    }
    return NULL;
}

static kiln_status_t check_kernel_for_dtype(const kiln_node_t *node, const kiln_value_t *in0,
                                            const kiln_kernel_t **kernel)
{
    *kernel = node->kernel;
    if (!in0 || in0->kind != KILN_VALUE_TENSOR || !node->kernel->dtypes)
        return KILN_OK;
    kiln_dtype_t d = in0->tensor->dtype;
    if (node->kernel->dtypes & KILN_DTYPE_BIT(d))
        return KILN_OK;
    bool known;
    *kernel = kiln_registry_find(kiln_registry_default(), KILN_PROVIDER_CPU, node->domain, node->op_type,
                                 node->opset, d, &known);
    if (!*kernel)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "node '%s' (%s): no kernel for input type %s at opset %d",
                         node->name, node->op_type, kiln_dtype_name(d), node->opset);
    return KILN_OK;
}

/* ---- memory plan ----------------------------------------------------------- */

static kiln_plan_t *plan_create(const kiln_graph_t *g)
{
    kiln_plan_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    p->graph = g;
    p->n_inputs = g->n_inputs;
    p->is_output = calloc((size_t)g->n_values + 1, sizeof *p->is_output);
    p->in_dtype = calloc((size_t)g->n_inputs + 1, sizeof *p->in_dtype);
    p->in_rank = calloc((size_t)g->n_inputs + 1, sizeof *p->in_rank);
    p->in_dims = calloc((size_t)g->n_inputs + 1, sizeof *p->in_dims);
    if (!p->is_output || !p->in_dtype || !p->in_rank || !p->in_dims) {
        plan_free(p);
        return NULL;
    }
    for (int k = 0; k < g->n_outputs; k++)
        p->is_output[g->outputs[k]] = true;
    return p;
}

/* True when the plan was recorded with inputs of these dtypes and shapes. */
static bool plan_inputs_match(const kiln_plan_t *p, const kiln_value_t *const *inputs)
{
    for (int i = 0; i < p->n_inputs; i++) {
        const kiln_value_t *v = inputs ? inputs[i] : NULL;
        const kiln_tensor_t *t = v && v->kind == KILN_VALUE_TENSOR ? v->tensor : NULL;
        if (!t) {
            if (p->in_rank[i] != -1)
                return false;
            continue;
        }
        if (t->dtype != p->in_dtype[i] || t->rank != p->in_rank[i] ||
            memcmp(t->dims, p->in_dims[i], (size_t)t->rank * sizeof *t->dims))
            return false;
    }
    return true;
}

/* Starts a run of the main graph: takes the session's plan (unless another
 * run holds it) and decides whether this run uses it or records it. */
static void plan_begin(kiln_session_t *s, const kiln_graph_t *g, const kiln_value_t *const *inputs, kiln_frame_t *f)
{
    for (int i = 0; i < g->n_inputs; i++) /* sequences and optionals as inputs: no plan */
        if (inputs && inputs[i] && inputs[i]->kind != KILN_VALUE_TENSOR)
            return;
    if (s->plan && s->plan->graph != g) {
        if (pthread_mutex_trylock(&s->plan->lock) != 0)
            return;
        pthread_mutex_unlock(&s->plan->lock);
        plan_free(s->plan);
        s->plan = NULL;
    }
    if (!s->plan && !(s->plan = plan_create(g)))
        return;
    kiln_plan_t *p = s->plan;
    if (pthread_mutex_trylock(&p->lock) != 0)
        return; /* a concurrent run holds it: this one just allocates */
    f->plan = p;
    if (p->state == PLAN_READY && plan_inputs_match(p, inputs)) {
        f->plan_mode = FRAME_PLAN_USE;
        s->last_arena_bytes = p->arena_bytes;
        return;
    }
    /* Record: forget the old plan first so its arena does not add to this
     * run's peak. */
    free(p->arena);
    p->arena = NULL;
    p->arena_bytes = 0;
    p->n_entries = 0;
    p->state = PLAN_RECORD;
    for (int i = 0; i < p->n_inputs; i++) {
        const kiln_tensor_t *t = inputs && inputs[i] ? inputs[i]->tensor : NULL;
        p->in_dtype[i] = t ? t->dtype : KILN_DTYPE_UNDEFINED;
        p->in_rank[i] = t ? t->rank : -1;
        memset(p->in_dims[i], 0, sizeof p->in_dims[i]);
        if (t)
            memcpy(p->in_dims[i], t->dims, (size_t)t->rank * sizeof *t->dims);
    }
    f->plan_mode = FRAME_PLAN_RECORD;
    s->last_arena_bytes = 0;
}

static int by_size_desc(const void *a, const void *b)
{
    const plan_entry_t *x = *(const plan_entry_t *const *)a, *y = *(const plan_entry_t *const *)b;
    return x->nbytes < y->nbytes ? 1 : x->nbytes > y->nbytes ? -1 : x->first - y->first;
}

static int by_offset(const void *a, const void *b)
{
    const plan_entry_t *x = *(const plan_entry_t *const *)a, *y = *(const plan_entry_t *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places the recorded entries: largest first, each at the lowest offset
 * where it overlaps no placed entry whose lifetime overlaps its own (the
 * greedy-by-size heuristic TensorFlow Lite and ONNX Runtime use).  Sizes
 * are rounded up to 64 bytes so every tensor stays 64-byte aligned.
 * Returns the arena size, or 0 when out of memory. */
static size_t plan_place(kiln_plan_t *p)
{
    int n = p->n_entries;
    plan_entry_t **order = malloc(((size_t)n + 1) * sizeof *order);
    plan_entry_t **placed = malloc(((size_t)n + 1) * sizeof *placed);
    plan_entry_t **live = malloc(((size_t)n + 1) * sizeof *live);
    size_t total = 0;
    if (!order || !placed || !live)
        goto done;
    for (int k = 0; k < n; k++)
        order[k] = &p->entries[k];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    for (int k = 0, n_placed = 0; k < n; k++) {
        plan_entry_t *e = order[k];
        size_t size = (e->nbytes + 63) & ~(size_t)63;
        /* the placed entries alive at the same time, in offset order */
        int n_live = 0;
        for (int j = 0; j < n_placed; j++)
            if (placed[j]->first <= e->last && e->first <= placed[j]->last)
                live[n_live++] = placed[j];
        qsort(live, (size_t)n_live, sizeof *live, by_offset);
        /* the first gap that fits */
        size_t offset = 0;
        for (int j = 0; j < n_live; j++) {
            size_t lsize = (live[j]->nbytes + 63) & ~(size_t)63;
            if (live[j]->offset >= offset + size)
                break;
            if (live[j]->offset + lsize > offset)
                offset = live[j]->offset + lsize;
        }
        e->offset = offset;
        placed[n_placed++] = e;
        if (offset + size > total)
            total = offset + size;
    }
done:
    free(order);
    free(placed);
    free(live);
    return total;
}

/* Ends a run that held the plan: after a good recorded run, places the
 * entries and allocates the arena; after a run that left the plan, records
 * again next time. */
static void plan_end(kiln_session_t *s, kiln_frame_t *f, bool ok)
{
    kiln_plan_t *p = f->plan;
    if (f->plan_mode == FRAME_PLAN_RECORD && ok && p->n_entries > 0) {
        for (int k = 0; k < p->n_entries; k++)
            if (p->entries[k].last < 0)
                p->entries[k].last = p->graph->n_nodes;
        size_t bytes = plan_place(p);
        p->arena = bytes ? kiln_big_alloc(bytes) : NULL;
        if (p->arena) {
            p->arena_bytes = bytes;
            p->state = PLAN_READY;
            s->last_arena_bytes = bytes;
        }
    } else if (f->plan_mode == FRAME_PLAN_USE && (f->plan_broken || !ok)) {
        p->state = PLAN_RECORD;
    }
    pthread_mutex_unlock(&p->lock);
}

kiln_status_t kiln_execute_graph(kiln_session_t *s, const kiln_graph_t *g, kiln_frame_t *parent,
                                 const kiln_value_t *const *inputs, kiln_value_t **outputs)
{
    kiln_frame_t f = {.graph = g, .parent = parent};
    kiln_status_t st = KILN_OK;
    int nv = g->n_values;
    f.slots = calloc((size_t)nv + 1, sizeof *f.slots);
    f.owned = calloc((size_t)nv + 1, sizeof *f.owned);
    f.remaining = calloc((size_t)nv + 1, sizeof *f.remaining);
    f.view_of = malloc(((size_t)nv + 1) * sizeof *f.view_of);
    f.views = calloc((size_t)nv + 1, sizeof *f.views);
    f.entry = malloc(((size_t)nv + 1) * sizeof *f.entry);
    f.borrowed = calloc((size_t)g->n_initializers + 1, sizeof *f.borrowed);
    if (!f.slots || !f.owned || !f.remaining || !f.view_of || !f.views || !f.entry || !f.borrowed) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory running graph '%s'", g->name);
        goto done;
    }
    for (int v = 0; v < nv; v++) {
        f.remaining[v] = g->values[v].consumers;
        f.view_of[v] = -1;
        f.entry[v] = -1;
    }
    if (!parent && g == s->graph) /* not for graphs run at load (constant folding) */
        plan_begin(s, g, inputs, &f);
    for (int i = 0; i < g->n_initializers; i++) {
        f.borrowed[i].kind = KILN_VALUE_TENSOR;
        f.borrowed[i].tensor = g->initializers[i];
        f.slots[g->initializer_values[i]] = &f.borrowed[i];
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (inputs && inputs[i])
            f.slots[g->inputs[i]] = (kiln_value_t *)inputs[i]; /* borrowed, never written */
    for (int o = 0; o < g->n_outer; o++) {
        int v = g->outer_values[o];
        f.slots[v] = parent ? frame_lookup(parent, g->outer_parent_values[o]) : NULL;
        if (!f.slots[v]) {
            st = kiln_fail(KILN_ERR_INVALID_MODEL, "graph '%s': outer value '%s' is not available", g->name,
                           g->values[v].name);
            goto done;
        }
    }

    for (int i = 0; i < g->n_nodes && !st; i++) {
        const kiln_node_t *node = &g->nodes[i];
        for (int k = 0; k < node->n_inputs; k++) {
            int v = node->inputs[k];
            if (v >= 0 && !f.slots[v] && !(g->values[v].is_graph_input && g->values[v].type.optional)) {
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "node '%s' (%s): input '%s' has no value", node->name,
                               node->op_type, g->values[v].name);
                break;
            }
        }
        if (st)
            break;
        const kiln_kernel_t *kernel;
        st = check_kernel_for_dtype(node, node->n_inputs > 0 && node->inputs[0] >= 0 ? f.slots[node->inputs[0]] : NULL,
                                    &kernel);
        if (st)
            break;
        f.step = i;
        kiln_kernel_ctx_t ctx = {.session = s, .frame = &f, .node = node};
        kiln_node_timing_t *timing = s->profile && !parent && g == s->graph ? &s->profile[i] : NULL;
        long long t0 = timing ? now_ns() : 0;
        st = kernel->run(&ctx);
        if (timing && st == KILN_OK)
            profile_add(timing, now_ns() - t0, node->n_outputs > 0 && node->outputs[0] >= 0 ? f.slots[node->outputs[0]] : NULL);
        if (st == KILN_OK && ctx.status)
            st = ctx.status;
        if (st == KILN_OK) {
            for (int k = 0; k < node->n_outputs; k++)
                if (node->outputs[k] >= 0 && !f.slots[node->outputs[k]]) {
                    st = kiln_fail(KILN_ERR_RUNTIME, "node '%s' (%s): kernel did not produce output %d ('%s')",
                                   node->name, node->op_type, k, g->values[node->outputs[k]].name);
                    break;
                }
        }
        for (int k = 0; k < ctx.n_dropped; k++)
            kiln_value_free(ctx.dropped[k]);
        free(ctx.dropped);
        /* release inputs whose last consumer this was */
        for (int k = 0; k < node->n_inputs + node->n_implicit; k++) {
            int v = k < node->n_inputs ? node->inputs[k] : node->implicit_inputs[k - node->n_inputs];
            if (v >= 0 && --f.remaining[v] == 0)
                release_slot(&f, v);
        }
        /* outputs nobody reads */
        for (int k = 0; k < node->n_outputs; k++) {
            int v = node->outputs[k];
            if (v >= 0 && f.remaining[v] == 0)
                release_slot(&f, v);
        }
    }
    if (!st) {
        for (int k = 0; k < g->n_outputs; k++) {
            int v = g->outputs[k];
            kiln_value_t *val = f.slots[v] ? f.slots[v] : frame_lookup(&f, v);
            if (!val) {
                st = kiln_fail(KILN_ERR_RUNTIME, "graph '%s': output '%s' was not produced", g->name, g->values[v].name);
                break;
            }
            /* An output may be listed twice, be borrowed, or share storage
             * (a view, the arena): hand out a copy then. */
            bool take = f.owned[v] && f.slots[v] == val && f.view_of[v] < 0 &&
                        !(val->kind == KILN_VALUE_TENSOR && val->tensor && val->tensor->data &&
                          !val->tensor->owns_data);
            for (int j = k + 1; j < g->n_outputs && take; j++)
                take = g->outputs[j] != v;
            if (take) {
                outputs[k] = val;
                f.slots[v] = NULL;
                f.owned[v] = false;
            } else {
                outputs[k] = kiln_value_clone(val);
                if (!outputs[k]) {
                    st = KILN_ERR_NO_MEMORY;
                    break;
                }
            }
        }
        if (st)
            for (int k = 0; k < g->n_outputs; k++) {
                kiln_value_free(outputs[k]);
                outputs[k] = NULL;
            }
    }
    if (!parent) {
        s->last_peak_bytes = f.peak_bytes;
        s->last_total_bytes = f.total_bytes;
    }
done:
    if (f.slots)
        for (int v = 0; v < nv; v++)
            if (f.owned[v])
                kiln_value_free(f.slots[v]);
    if (f.plan)
        plan_end(s, &f, st == KILN_OK);
    free(f.slots);
    free(f.owned);
    free(f.remaining);
    free(f.view_of);
    free(f.views);
    free(f.entry);
    free(f.borrowed);
    return st;
}

/* ---- public run ---------------------------------------------------------- */

static bool dims_match(const kiln_value_info_t *vi, const kiln_tensor_t *t)
{
    if (vi->type.rank < 0)
        return true;
    if (vi->type.rank != t->rank)
        return false;
    for (int d = 0; d < t->rank; d++)
        if (vi->type.dims[d].size >= 0 && vi->type.dims[d].size != t->dims[d])
            return false;
    return true;
}

kiln_status_t kiln_session_run(kiln_session_t *s, int input_count, const char *const *input_names,
                               const kiln_tensor_t *const *inputs, int output_count, kiln_tensor_t **outputs)
{
    const kiln_graph_t *g = s->graph;
    if (output_count != g->n_outputs)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the model has %d outputs, output_count is %d", g->n_outputs,
                         output_count);
    kiln_value_t *in_vals = calloc((size_t)g->n_inputs + 1, sizeof *in_vals);
    const kiln_value_t **in_ptrs = calloc((size_t)g->n_inputs + 1, sizeof *in_ptrs);
    kiln_value_t **out_vals = calloc((size_t)g->n_outputs + 1, sizeof *out_vals);
    kiln_status_t st = KILN_OK;
    if (!in_vals || !in_ptrs || !out_vals) {
        st = kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    for (int k = 0; k < input_count && !st; k++) {
        int found = -1;
        for (int i = 0; i < g->n_inputs; i++)
            if (!strcmp(g->values[g->inputs[i]].name, input_names[k]))
                found = i;
        if (found < 0) {
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the model has no input named '%s'", input_names[k]);
            break;
        }
        const kiln_value_info_t *vi = &g->values[g->inputs[found]];
        const kiln_tensor_t *t = inputs[k];
        char want[256], have[256];
        if (!t) {
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' is NULL", input_names[k]);
        } else if (vi->type.dtype != KILN_DTYPE_UNDEFINED && vi->type.dtype != t->dtype) {
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must be %s, got %s", vi->name,
                           kiln_dtype_name(vi->type.dtype), kiln_dtype_name(t->dtype));
        } else if (!dims_match(vi, t)) {
            int64_t d[KILN_MAX_RANK];
            for (int j = 0; j < vi->type.rank; j++)
                d[j] = vi->type.dims[j].size;
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must have shape %s (-1 = any), got %s", vi->name,
                           kiln_shape_str(vi->type.rank, d, want, sizeof want),
                           kiln_shape_str(t->rank, t->dims, have, sizeof have));
        } else {
            in_vals[found].kind = KILN_VALUE_TENSOR;
            in_vals[found].tensor = (kiln_tensor_t *)t;
            in_ptrs[found] = &in_vals[found];
        }
    }
    for (int i = 0; i < g->n_inputs && !st; i++)
        if (!in_ptrs[i] && g->values[g->inputs[i]].initializer < 0)
            st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' is missing", g->values[g->inputs[i]].name);
    if (!st)
        st = kiln_execute_graph(s, g, NULL, in_ptrs, out_vals);
    if (!st) {
        for (int k = 0; k < g->n_outputs; k++) {
            if (out_vals[k]->kind != KILN_VALUE_TENSOR) {
                st = kiln_fail(KILN_ERR_UNSUPPORTED, "output '%s' is a sequence or optional; use the value API",
                               g->values[g->outputs[k]].name);
                break;
            }
        }
        for (int k = 0; k < g->n_outputs; k++) {
            if (!st) {
                outputs[k] = out_vals[k]->tensor;
                out_vals[k]->tensor = NULL;
            }
            kiln_value_free(out_vals[k]);
        }
    }
done:
    free(in_vals);
    free(in_ptrs);
    free(out_vals);
    return st;
}

kiln_status_t kiln_session_run_values(kiln_session_t *s, int n_inputs, const kiln_value_t *const *inputs,
                                      kiln_value_t **outputs)
{
    const kiln_graph_t *g = s->graph;
    const kiln_value_t **in_ptrs = calloc((size_t)g->n_inputs + 1, sizeof *in_ptrs);
    if (!in_ptrs)
        return kiln_fail(KILN_ERR_NO_MEMORY, "out of memory");
    kiln_status_t st = KILN_OK;
    int k = 0;
    for (int i = 0; i < g->n_inputs && !st; i++) {
        const kiln_value_info_t *vi = &g->values[g->inputs[i]];
        if (vi->initializer >= 0)
            continue;
        const kiln_value_t *v = k < n_inputs ? inputs[k] : NULL;
        k++;
        if (!v) {
            if (!vi->type.optional)
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' is missing", vi->name);
            continue;
        }
        if (v->kind == KILN_VALUE_TENSOR) {
            if (vi->type.dtype != KILN_DTYPE_UNDEFINED && vi->type.dtype != v->tensor->dtype)
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must be %s, got %s", vi->name,
                               kiln_dtype_name(vi->type.dtype), kiln_dtype_name(v->tensor->dtype));
            else if (!dims_match(vi, v->tensor)) {
                char have[256];
                st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input '%s' must have rank %d, got shape %s", vi->name,
                               vi->type.rank, kiln_shape_str(v->tensor->rank, v->tensor->dims, have, sizeof have));
            }
        }
        in_ptrs[i] = v;
    }
    if (!st && k < n_inputs)
        st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%d inputs given, the model takes %d", n_inputs, k);
    if (!st)
        st = kiln_execute_graph(s, g, NULL, in_ptrs, outputs);
    free(in_ptrs);
    return st;
}
