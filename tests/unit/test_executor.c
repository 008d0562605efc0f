/*
 * test_executor.c - the executor's memory: views, the activation arena and
 * misaligned weights, end to end through the public API on small models
 * written in memory with the protobuf writer.
 *
 *  - views: Reshape/Unsqueeze/Squeeze/Identity/Flatten/Dropout share their
 *    input's storage; a view read after its source's last consumer ran must
 *    still see the source's elements (the source is kept), also when the
 *    arena places later tensors, and over several runs;
 *  - graph outputs that are views of a graph input, of an initializer or of
 *    an intermediate that is itself an output come back as tensors the
 *    caller owns (freed after the inputs and the session, under ASan);
 *  - the arena: recorded on the first run, used on the next with the same
 *    shapes (arena_bytes set, results unchanged), re-recorded when the input
 *    shape changes and again when it changes back;
 *  - weights whose raw_data is not 4-byte aligned in the file (read from
 *    bytes and from a mapped file, where the copied pages are dropped) give
 *    the same MatMul result as aligned ones, and their neighbours stay
 *    readable;
 *  - prepacked B (ops/gemm.h) against the reference GEMM, for every
 *    microkernel, edge sizes, several K slices, packed in place;
 *  - prepacked MatMul weights in sessions: a weight also read by another op
 *    is kept, one read by two MatMuls is packed once, and sessions that come
 *    and go on one model (the first replaces the weights, a second one
 *    copies them back, one without prepacking reads the originals) all
 *    compute the same result;
 *  - a FusedMatMul weight (the optimizer's MatMul + bias) is packed by the
 *    session and released from the model while the session lives and comes
 *    back after, and so
 *    is a weight the optimized graph no longer reads (constant folded).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/session.h"
#include "kiln.h"
#include "onnx/model.h"
#include "onnx/pb.h"
#include "ops/gemm.h"

/* ---- a tiny model builder -------------------------------------------------- */

typedef struct builder {
    pb_writer_t graph;
    int n_nodes;
} builder_t;

/* Adds a node; ins and outs are comma-separated value names. */
static void add_node(builder_t *b, const char *op, const char *ins, const char *outs)
{
    pb_writer_t node = {0};
    char buf[256], name[32];
    for (int field = 1; field <= 2; field++) {
        snprintf(buf, sizeof buf, "%s", field == 1 ? ins : outs);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
            pb_put_string_field(&node, (uint32_t)field, tok);
    }
    snprintf(name, sizeof name, "n%d", b->n_nodes++);
    pb_put_string_field(&node, 3, name);
    pb_put_string_field(&node, 4, op);
    pb_put_message_field(&b->graph, 1, &node);
}

/* A float32 or int64 initializer; pad adds a doc_string of pad bytes in
 * front of raw_data, which moves where raw_data lands in the file. */
static void add_init(builder_t *b, const char *name, kiln_dtype_t dtype, int rank, const int64_t *dims,
                     const void *data, size_t nbytes, int pad)
{
    pb_writer_t t = {0};
    for (int d = 0; d < rank; d++)
        pb_put_varint_field(&t, 1, (uint64_t)dims[d]);
    pb_put_varint_field(&t, 2, dtype);
    pb_put_string_field(&t, 8, name);
    if (pad > 0) {
        char doc[64];
        memset(doc, 'p', sizeof doc);
        doc[pad < 63 ? pad : 63] = '\0';
        pb_put_string_field(&t, 12, doc);
    }
    pb_put_bytes_field(&t, 9, data, nbytes);
    pb_put_message_field(&b->graph, 5, &t);
}

/* A graph input (field 11) or output (12); a dim of -1 is symbolic "N";
 * rank -1 leaves the shape out. */
static void add_io(builder_t *b, uint32_t field, const char *name, int rank, const int64_t *dims)
{
    pb_writer_t vi = {0}, type = {0}, tt = {0}, shape = {0};
    pb_put_varint_field(&tt, 1, KILN_DTYPE_FLOAT32);
    if (rank >= 0) {
        for (int d = 0; d < rank; d++) {
            pb_writer_t dim = {0};
            if (dims[d] < 0)
                pb_put_string_field(&dim, 2, "N");
            else
                pb_put_varint_field(&dim, 1, (uint64_t)dims[d]);
            pb_put_message_field(&shape, 1, &dim);
        }
        pb_put_message_field(&tt, 2, &shape);
    }
    pb_put_message_field(&type, 1, &tt);
    pb_put_string_field(&vi, 1, name);
    pb_put_message_field(&vi, 2, &type);
    pb_put_message_field(&b->graph, field, &vi);
}

/* Finishes the model (opset 13) and loads it from bytes, or through a file
 * when path is given. */
static kiln_model_t *load(builder_t *b, const char *path)
{
    pb_writer_t model = {0}, opset = {0};
    pb_put_string_field(&b->graph, 2, "g");
    pb_put_varint_field(&model, 1, 8);
    pb_put_string_field(&opset, 1, "");
    pb_put_varint_field(&opset, 2, 13);
    pb_put_message_field(&model, 8, &opset);
    pb_put_message_field(&model, 7, &b->graph);
    kiln_model_t *m = NULL;
    kiln_status_t st = KILN_ERR_NO_MEMORY;
    if (!model.failed && path) {
        FILE *f = fopen(path, "wb");
        if (f && fwrite(model.buf, 1, model.len, f) == model.len && fclose(f) == 0)
            st = kiln_model_load(path, &m);
    } else if (!model.failed) {
        st = kiln_model_load_bytes(model.buf, model.len, &m);
    }
    CHECK_MSG(st == KILN_OK, "load: %s", kiln_last_error());
    pb_writer_free(&model);
    return st == KILN_OK ? m : NULL;
}

static kiln_tensor_t *vector(int rank, const int64_t *dims, float start)
{
    kiln_tensor_t *t = kiln_tensor_create(KILN_DTYPE_FLOAT32, rank, dims);
    float *p = kiln_tensor_data(t);
    for (int64_t i = 0; i < kiln_tensor_count(t); i++)
        p[i] = start + (float)(i % 7) - 3.0f * (float)(i % 2);
    return t;
}

/* ---- views ------------------------------------------------------------------ */

/* a = Relu(x) is last read by Reshape, Unsqueeze starts a chain of views
 * that Squeeze, Identity, Flatten and Dropout extend; d = Neg(x) is made
 * after a's last consumer ran, and the Add reads the views afterwards:
 * y = relu(x) - x.  Run three times: record, then twice from the arena. */
static void test_view_outlives_source(void)
{
    builder_t b = {0};
    const int64_t n6[] = {6}, one[] = {1}, zero_ax[] = {0}, shape6[] = {6};
    add_io(&b, 11, "x", 1, n6);
    add_init(&b, "s", KILN_DTYPE_INT64, 1, one, shape6, sizeof shape6, 0);
    add_init(&b, "ax", KILN_DTYPE_INT64, 1, one, zero_ax, sizeof zero_ax, 0);
    add_node(&b, "Relu", "x", "a");
    add_node(&b, "Reshape", "a,s", "r");
    add_node(&b, "Unsqueeze", "r,ax", "u");   /* [1,6] */
    add_node(&b, "Flatten", "u", "fl");       /* [1,6] */
    add_node(&b, "Squeeze", "fl,ax", "sq");   /* [6] */
    add_node(&b, "Identity", "sq", "id");
    add_node(&b, "Dropout", "id", "dr");
    add_node(&b, "Neg", "x", "d");
    add_node(&b, "Mul", "d,d", "dd");         /* more tensors that could land on a */
    add_node(&b, "Add", "d,dd", "e");
    add_node(&b, "Sub", "e,dd", "d2");        /* == d */
    add_node(&b, "Add", "dr,d2", "y");
    add_io(&b, 12, "y", -1, NULL);
    kiln_model_t *m = load(&b, NULL);
    kiln_session_t *s = NULL;
    CHECK(m && kiln_session_create(m, NULL, &s) == KILN_OK);
    kiln_tensor_t *x = vector(1, n6, -2.0f);
    const float *px = kiln_tensor_data(x);
    const char *names[] = {"x"};
    for (int run = 0; s && run < 3; run++) {
        kiln_tensor_t *y = NULL;
        CHECK_MSG(kiln_session_run(s, 1, names, (const kiln_tensor_t *const *)&x, 1, &y) == KILN_OK, "run %d: %s",
                  run, kiln_last_error());
        if (!y)
            continue;
        CHECK(kiln_tensor_rank(y) == 1 && kiln_tensor_dims(y)[0] == 6);
        const float *py = kiln_tensor_data(y);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(py[i], (px[i] > 0 ? px[i] : 0.0f) - px[i], 1e-6);
        if (run > 0)
            CHECK_MSG(s->last_arena_bytes > 0, "run %d used no arena", run);
        kiln_tensor_free(y);
    }
    /* The views are not counted as memory of their own. */
    CHECK(s && s->last_total_bytes == 6 * 6 * sizeof(float));
    kiln_session_free(s);
    kiln_model_free(m);
    kiln_tensor_free(x);
}

/* Graph outputs that are views: of the graph input (Identity), of an
 * initializer (Reshape), and of an intermediate that is an output itself
 * (a and its Reshape r).  Each must be a tensor the caller owns: they are
 * freed after the input, the session and the model are gone. */
static void test_view_outputs(void)
{
    builder_t b = {0};
    const int64_t d23[] = {2, 3}, two[] = {2}, s32[] = {3, 2};
    const float w[6] = {1, 2, 3, 4, 5, 6};
    add_io(&b, 11, "x", 2, d23);
    add_init(&b, "w", KILN_DTYPE_FLOAT32, 2, d23, w, sizeof w, 0);
    add_init(&b, "s", KILN_DTYPE_INT64, 1, two, s32, sizeof s32, 0);
    add_node(&b, "Identity", "x", "ix");
    add_node(&b, "Reshape", "w,s", "rw");
    add_node(&b, "Relu", "x", "a");
    add_node(&b, "Reshape", "a,s", "ra");
    add_io(&b, 12, "ix", -1, NULL);
    add_io(&b, 12, "rw", -1, NULL);
    add_io(&b, 12, "a", -1, NULL);
    add_io(&b, 12, "ra", -1, NULL);
    kiln_model_t *m = load(&b, NULL);
    kiln_session_t *s = NULL;
    CHECK(m && kiln_session_create(m, NULL, &s) == KILN_OK);
    kiln_tensor_t *x = vector(2, d23, -1.0f);
    float xv[6];
    memcpy(xv, kiln_tensor_data(x), sizeof xv);
    kiln_tensor_t *out[2][4] = {{NULL}};
    const char *names[] = {"x"};
    for (int run = 0; s && run < 2; run++)
        CHECK_MSG(kiln_session_run(s, 1, names, (const kiln_tensor_t *const *)&x, 4, out[run]) == KILN_OK, "%s",
                  kiln_last_error());
    kiln_tensor_free(x);
    kiln_session_free(s);
    kiln_model_free(m);
    for (int run = 0; run < 2; run++) {
        kiln_tensor_t **o = out[run];
        if (!o[0] || !o[1] || !o[2] || !o[3]) {
            CHECK(false);
            continue;
        }
        const float *ix = kiln_tensor_data(o[0]), *rw = kiln_tensor_data(o[1]), *a = kiln_tensor_data(o[2]),
                    *ra = kiln_tensor_data(o[3]);
        CHECK(kiln_tensor_rank(o[1]) == 2 && kiln_tensor_dims(o[1])[0] == 3 && kiln_tensor_dims(o[1])[1] == 2);
        CHECK(a != ra && ix != a);
        for (int i = 0; i < 6; i++) {
            CHECK(ix[i] == xv[i]);
            CHECK(rw[i] == w[i]);
            CHECK(a[i] == (xv[i] > 0 ? xv[i] : 0.0f));
            CHECK(ra[i] == a[i]);
        }
        for (int k = 0; k < 4; k++)
            kiln_tensor_free(o[k]);
    }
}

/* ---- the arena ---------------------------------------------------------------- */

/* x [N, 4] -> a chain of elementwise ops with values alive at different
 * times; runs N = 2, 2, 5, 5, 2, 2 and checks each result and the arena in
 * force: none on a recording run, the same size on the run after it. */
static void test_arena_shapes(void)
{
    builder_t b = {0};
    const int64_t nd[] = {-1, 4};
    add_io(&b, 11, "x", 2, nd);
    add_node(&b, "Relu", "x", "a");
    add_node(&b, "Neg", "x", "n");
    add_node(&b, "Mul", "a,n", "p");     /* -relu(x)*x */
    add_node(&b, "Add", "p,a", "q");
    add_node(&b, "Sub", "q,n", "r");     /* q + x */
    add_node(&b, "Mul", "r,a", "y");
    add_io(&b, 12, "y", -1, NULL);
    kiln_model_t *m = load(&b, NULL);
    kiln_session_t *s = NULL;
    CHECK(m && kiln_session_create(m, NULL, &s) == KILN_OK);
    const int64_t sizes[] = {2, 2, 5, 5, 2, 2};
    size_t arena[6] = {0};
    const char *names[] = {"x"};
    for (int run = 0; s && run < 6; run++) {
        int64_t dims[] = {sizes[run], 4};
        kiln_tensor_t *x = vector(2, dims, (float)run - 1.5f), *y = NULL;
        CHECK_MSG(kiln_session_run(s, 1, names, (const kiln_tensor_t *const *)&x, 1, &y) == KILN_OK, "%s",
                  kiln_last_error());
        arena[run] = s->last_arena_bytes;
        const float *px = kiln_tensor_data(x), *py = y ? kiln_tensor_data(y) : NULL;
        CHECK(y && kiln_tensor_count(y) == sizes[run] * 4);
        for (int64_t i = 0; py && i < sizes[run] * 4; i++) {
            float a = px[i] > 0 ? px[i] : 0.0f, q = -a * px[i] + a, want = (q + px[i]) * a;
            CHECK_NEAR(py[i], want, 1e-5);
        }
        kiln_tensor_free(x);
        kiln_tensor_free(y);
    }
    /* runs 0, 2 and 4 record (a new shape); 1, 3 and 5 use the arena */
    CHECK_MSG(arena[1] > 0 && arena[3] > arena[1] && arena[5] == arena[1], "arena %zu %zu %zu", arena[1], arena[3],
              arena[5]);
    /* four float tensors of N x 4 alive at once at most, each rounded to 64 bytes */
    CHECK_MSG(arena[1] <= 4 * 64 && arena[3] <= 4 * 128, "arena %zu %zu", arena[1], arena[3]);
    kiln_session_free(s);
    kiln_model_free(m);
}

/* ---- misaligned weights --------------------------------------------------------- */

/* y = x @ w1 + x @ w2 with w1 placed so its raw_data is misaligned in the
 * file (pads tried until the reader had to copy it) and w2 right after it.
 * Loaded from bytes and from a mapped file (whose copied pages are dropped);
 * the result must match a plain loop. */
static void test_misaligned_weights(void)
{
    enum { K = 40, N = 64 }; /* w1 spans a few pages */
    static float w1[K * N], w2[K * N];
    for (int i = 0; i < K * N; i++) {
        w1[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
        w2[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    }
    const int64_t xd[] = {3, K}, wd[] = {K, N};
    char path[] = "/tmp/kiln_test_misaligned_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    bool tried_misaligned = false;
    for (int from_file = 0; from_file < 2; from_file++) {
        for (int pad = 1; pad <= 4; pad++) {
            builder_t b = {0};
            add_io(&b, 11, "x", 2, xd);
            add_init(&b, "w1", KILN_DTYPE_FLOAT32, 2, wd, w1, sizeof w1, pad);
            add_init(&b, "w2", KILN_DTYPE_FLOAT32, 2, wd, w2, sizeof w2, 0);
            add_node(&b, "MatMul", "x,w1", "p1");
            add_node(&b, "MatMul", "x,w2", "p2");
            add_node(&b, "Add", "p1,p2", "y");
            add_io(&b, 12, "y", -1, NULL);
            kiln_model_t *m = load(&b, from_file ? path : NULL);
            if (!m)
                continue;
            bool misaligned = m->copied_bytes > 0;
            tried_misaligned |= misaligned;
            kiln_session_t *s = NULL;
            kiln_tensor_t *x = vector(2, xd, 0.25f), *y = NULL;
            const char *names[] = {"x"};
            CHECK(kiln_session_create(m, NULL, &s) == KILN_OK);
            CHECK_MSG(s && kiln_session_run(s, 1, names, (const kiln_tensor_t *const *)&x, 1, &y) == KILN_OK, "%s",
                      kiln_last_error());
            const float *px = kiln_tensor_data(x), *py = y ? kiln_tensor_data(y) : NULL;
            for (int i = 0; py && i < 3; i++)
                for (int j = 0; j < N; j++) {
                    double want = 0;
                    for (int k = 0; k < K; k++)
                        want += (double)px[i * K + k] * (w1[k * N + j] + w2[k * N + j]);
                    CHECK_NEAR(py[i * N + j], want, 1e-4);
                }
            kiln_tensor_free(x);
            kiln_tensor_free(y);
            kiln_session_free(s);
            kiln_model_free(m);
        }
    }
    CHECK_MSG(tried_misaligned, "no pad made w1 misaligned");
    unlink(path);
}


/* ---- prepacked GEMM ---------------------------------------------------------- */

static void check_prepacked(int64_t m, int64_t k, int64_t n, bool in_place)
{
    size_t b_alloc = (sizeof(float) * (size_t)(k * n) + 127) & ~(size_t)63; /* 64 spare bytes at least */
    float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = aligned_alloc(64, b_alloc);
    float *c = malloc(sizeof(float) * (size_t)(m * n)), *ref = malloc(sizeof(float) * (size_t)(m * n));
    float *b_copy = malloc(sizeof(float) * (size_t)(k * n));
    for (int64_t i = 0; i < m * k; i++)
        a[i] = (float)((i * 13) % 17) / 17.0f - 0.5f;
    for (int64_t i = 0; i < k * n; i++)
        b_copy[i] = b[i] = (float)((i * 7) % 19) / 19.0f - 0.5f;
    for (int64_t i = 0; i < m * n; i++)
        c[i] = ref[i] = (float)(i % 5);
    kiln_sgemm_reference(false, false, m, n, k, 0.5f, a, k, b_copy, n, 0.25f, ref, n);
    kiln_sgemm_packed_b_t *p;
    float *scratch = NULL;
    if (in_place && kiln_sgemm_packed_b_size(k, n) <= b_alloc) {
        scratch = aligned_alloc(64, (kiln_sgemm_packed_b_size(k, n) + 63) & ~(size_t)63);
        p = kiln_sgemm_pack_b_into(false, k, n, b, n, b, scratch); /* b becomes the panels */
        b = NULL;
    } else {
        p = kiln_sgemm_pack_b(false, k, n, b, n);
    }
    CHECK_MSG(p != NULL, "pack %lldx%lld", (long long)k, (long long)n);
    if (p) {
        kiln_sgemm_prepacked(m, 0.5f, a, k, p, 0.25f, c, n, NULL);
        double worst = 0;
        for (int64_t i = 0; i < m * n; i++)
            worst = fmax(worst, fabs((double)c[i] - ref[i]));
        CHECK_MSG(worst < 1e-4, "%s m=%lld k=%lld n=%lld in_place=%d: max error %g", kiln_sgemm_path(),
                  (long long)m, (long long)k, (long long)n, in_place, worst);
    }
    kiln_sgemm_packed_b_free(p);
    free(scratch);
    free(a);
    free(b);
    free(c);
    free(ref);
    free(b_copy);
}

static void test_prepacked_gemm(void)
{
    static const int64_t shapes[][3] = {{1, 5, 7},   {3, 4, 2},    {2, 40, 64},  {37, 300, 70},
                                        {7, 1, 33},  {128, 96, 96}, {13, 700, 32}, {50, 257, 100}};
    for (int mode = 0; mode < 3; mode++) {
        kiln_sgemm_force_portable(mode == 2);
        kiln_sgemm_avoid_avx512(mode == 1);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int in_place = 0; in_place < 2; in_place++)
                check_prepacked(shapes[i][0], shapes[i][1], shapes[i][2], in_place);
    }
    kiln_sgemm_force_portable(false);
    kiln_sgemm_avoid_avx512(false);
    CHECK(kiln_sgemm_pack_b(false, 4, 1, (const float[]){1, 2, 3, 4}, 1) == NULL); /* one column: not packed */
}

/* ---- prepacked weights in sessions ------------------------------------------- */

enum { PK = 24, PM = 3, PN_MAX = 64 };
static int PN; /* 64: the packed panels fit the copy's own memory; 40: they do not */

/* y = x @ w1 + x @ w2 + x @ w1 and z = w2 + w2 (so w2 has a reader that is
 * not a MatMul); w1's raw_data is misaligned by `pad` (see
 * test_misaligned_weights). */
static kiln_model_t *shared_weight_model(int pad, const char *path, const float *w1, const float *w2)
{
    builder_t b = {0};
    const int64_t xd[] = {PM, PK}, wd[] = {PK, PN};
    add_io(&b, 11, "x", 2, xd);
    add_init(&b, "w1", KILN_DTYPE_FLOAT32, 2, wd, w1, sizeof(float) * PK * PN, pad);
    add_init(&b, "w2", KILN_DTYPE_FLOAT32, 2, wd, w2, sizeof(float) * PK * PN, 0);
    add_node(&b, "MatMul", "x,w1", "p1");
    add_node(&b, "MatMul", "x,w2", "p2");
    add_node(&b, "MatMul", "x,w1", "p3");
    add_node(&b, "Add", "p1,p2", "s");
    add_node(&b, "Add", "s,p3", "y");
    add_node(&b, "Add", "w2,w2", "z");
    add_io(&b, 12, "y", -1, NULL);
    add_io(&b, 12, "z", -1, NULL);
    return load(&b, path);
}

/* Runs s and checks y and z against plain loops. */
static void check_shared_run(kiln_session_t *s, const float *w1, const float *w2, const char *what)
{
    const int64_t xd[] = {PM, PK};
    kiln_tensor_t *x = vector(2, xd, 0.5f), *out[2] = {NULL, NULL};
    const char *names[] = {"x"};
    CHECK_MSG(kiln_session_run(s, 1, names, (const kiln_tensor_t *const *)&x, 2, out) == KILN_OK, "%s: %s", what,
              kiln_last_error());
    const float *px = kiln_tensor_data(x);
    double worst = 0;
    for (int i = 0; out[0] && i < PM; i++)
        for (int j = 0; j < PN; j++) {
            double want = 0;
            for (int k = 0; k < PK; k++)
                want += (double)px[i * PK + k] * (2.0 * w1[k * PN + j] + w2[k * PN + j]);
            worst = fmax(worst, fabs(want - ((const float *)kiln_tensor_data(out[0]))[i * PN + j]));
        }
    for (int i = 0; out[1] && i < PK * PN; i++)
        worst = fmax(worst, fabs(2.0 * w2[i] - ((const float *)kiln_tensor_data(out[1]))[i]));
    CHECK_MSG(out[0] && out[1] && worst < 1e-4, "%s: max error %g", what, worst);
    kiln_tensor_free(x);
    kiln_tensor_free(out[0]);
    kiln_tensor_free(out[1]);
}

static void test_prepacked_sessions(int n)
{
    PN = n;
    static float w1[PK * PN_MAX], w2[PK * PN_MAX];
    for (int i = 0; i < PK * PN; i++) {
        w1[i] = (float)((i * 11) % 23) / 23.0f - 0.5f;
        w2[i] = (float)((i * 3) % 7) / 7.0f - 0.5f;
    }
    char path[] = "/tmp/kiln_test_prepack_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    bool tried_copy = false;
    for (int pad = 1; pad <= 4; pad++) {
        kiln_model_t *m = shared_weight_model(pad, path, w1, w2);
        if (!m)
            continue;
        bool copied = m->copied_bytes > 0;
        tried_copy |= copied;
        kiln_session_t *a = NULL, *b = NULL, *c = NULL, *plain = NULL;
        CHECK(kiln_session_create(m, NULL, &a) == KILN_OK);
        if (!a) {
            kiln_model_free(m);
            continue;
        }
        /* packed on first use: nothing yet */
        CHECK(a->packed_bytes == 0);
        check_shared_run(a, w1, w2, "first session");
        /* w1 (two MatMuls) and w2 (MatMul, and Add) packed once each; only
         * w1 replaced */
        CHECK_MSG(a->packed_bytes >= 2 * sizeof(float) * PK * PN, "packed %zu", a->packed_bytes);
        const kiln_graph_t *g = m->ir.graph; /* the optimized copies share its weights */
        int i1 = g->values[kiln_graph_find_value(g, "w1")].initializer;
        int i2 = g->values[kiln_graph_find_value(g, "w2")].initializer;
        CHECK(g->initializers[i2]->data != NULL);
        if (copied)
            CHECK_MSG(g->initializers[i1]->data == NULL && a->released_bytes == sizeof(float) * PK * PN,
                      "pad %d: w1 %p, released %zu", pad, g->initializers[i1]->data, a->released_bytes);
        check_shared_run(a, w1, w2, "first session, second run");
        /* a second session copies w1 back and packs its own */
        CHECK(kiln_session_create(m, NULL, &b) == KILN_OK);
        CHECK(g->initializers[i1]->data != NULL);
        check_shared_run(b, w1, w2, "second session");
        check_shared_run(a, w1, w2, "first session again");
        kiln_session_options_t o;
        kiln_session_options_init(&o);
        o.optimization_level = 0; /* no prepacking: reads the originals */
        CHECK(kiln_session_create(m, &o, &plain) == KILN_OK && plain && !plain->packed_b);
        if (plain)
            check_shared_run(plain, w1, w2, "session without prepacking");
        kiln_session_free(a);
        kiln_session_free(b);
        kiln_session_free(plain);
        /* alone again: replaces w1 again, and still computes right */
        CHECK(kiln_session_create(m, NULL, &c) == KILN_OK);
        if (c)
            check_shared_run(c, w1, w2, "third session");
        if (copied)
            CHECK(g->initializers[i1]->data == NULL);
        kiln_session_free(c);
        /* no session left: the model holds its weights again (for a writer) */
        CHECK(g->initializers[i1]->data && !memcmp(g->initializers[i1]->data, w1, sizeof(float) * PK * PN));
        kiln_model_free(m);
    }
    CHECK_MSG(tried_copy, "no pad made w1 misaligned");
    unlink(path);
}

/* MatMul + Add(bias) becomes a FusedMatMul whose B the session packs on
 * first use; the packed copy replaces the original weight (a misaligned
 * heap copy is freed) and the product still comes out right; with the
 * session gone the model holds the weight again. */
static void test_optimizer_packed_release(void)
{
    enum { K = 16, N = 32, M = 3 };
    static float w[K * N], bias[N];
    for (int i = 0; i < K * N; i++)
        w[i] = (float)((i * 5) % 13) / 13.0f - 0.5f;
    for (int j = 0; j < N; j++)
        bias[j] = (float)j / 8.0f;
    const int64_t xd[] = {1, M, K}, wd[] = {K, N}, bd[] = {N}; /* 3-D: not a Gemm */
    char path[] = "/tmp/kiln_test_optpack_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    bool tried_copy = false;
    for (int pad = 1; pad <= 4; pad++) {
        builder_t b = {0};
        add_io(&b, 11, "x", 3, xd);
        add_init(&b, "w", KILN_DTYPE_FLOAT32, 2, wd, w, sizeof w, pad);
        add_init(&b, "bias", KILN_DTYPE_FLOAT32, 1, bd, bias, sizeof bias, 0);
        add_node(&b, "MatMul", "x,w", "p");
        add_node(&b, "Add", "p,bias", "y");
        add_io(&b, 12, "y", -1, NULL);
        kiln_model_t *m = load(&b, path);
        if (!m)
            continue;
        bool copied = m->copied_bytes >= sizeof w;
        tried_copy |= copied;
        const kiln_graph_t *g = m->ir.graph;
        kiln_tensor_t *wt = g->initializers[g->values[kiln_graph_find_value(g, "w")].initializer];
        kiln_session_t *s = NULL;
        CHECK(kiln_session_create(m, NULL, &s) == KILN_OK);
        kiln_tensor_t *x = vector(3, xd, 0.75f), *y = NULL;
        const char *names[] = {"x"};
        CHECK_MSG(s && kiln_session_run(s, 1, names, (const kiln_tensor_t *const *)&x, 1, &y) == KILN_OK, "%s",
                  kiln_last_error());
        /* the weight is packed on first use; the packed copy replaces the original */
        if (s && copied)
            CHECK_MSG(s->released_bytes >= sizeof w, "pad %d: w %p released %zu", pad, wt->data, s->released_bytes);
        const float *px = kiln_tensor_data(x), *py = y ? kiln_tensor_data(y) : NULL;
        for (int i = 0; py && i < M; i++)
            for (int j = 0; j < N; j++) {
                double want = bias[j];
                for (int k = 0; k < K; k++)
                    want += (double)px[i * K + k] * w[k * N + j];
                CHECK_NEAR(py[i * N + j], want, 1e-4);
            }
        kiln_tensor_free(x);
        kiln_tensor_free(y);
        kiln_session_free(s);
        CHECK(wt->data && !memcmp(wt->data, w, sizeof w));
        kiln_model_free(m);
    }
    CHECK_MSG(tried_copy, "no pad made w misaligned");
    unlink(path);
}

/* A weight only constant folding reads (c = w + w, y = x + c) is not read
 * by the optimized graph: the session releases it, the result stays right,
 * and the model has it back once the session is gone. */
static void test_unread_weight_release(void)
{
    enum { N = 1200 }; /* a few pages */
    static float w[N];
    for (int i = 0; i < N; i++)
        w[i] = (float)(i % 11) - 5.0f;
    const int64_t d[] = {N};
    char path[] = "/tmp/kiln_test_unread_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    bool tried_copy = false;
    for (int pad = 1; pad <= 4; pad++) {
        builder_t b = {0};
        add_io(&b, 11, "x", 1, d);
        add_init(&b, "w", KILN_DTYPE_FLOAT32, 1, d, w, sizeof w, pad);
        add_node(&b, "Add", "w,w", "c");
        add_node(&b, "Add", "x,c", "y");
        add_io(&b, 12, "y", -1, NULL);
        kiln_model_t *m = load(&b, path);
        if (!m)
            continue;
        bool copied = m->copied_bytes >= sizeof w;
        tried_copy |= copied;
        const kiln_graph_t *g = m->ir.graph;
        kiln_tensor_t *wt = g->initializers[g->values[kiln_graph_find_value(g, "w")].initializer];
        kiln_session_t *s = NULL;
        CHECK(kiln_session_create(m, NULL, &s) == KILN_OK);
        if (s && copied)
            CHECK_MSG(wt->data == NULL, "pad %d: w still held after folding", pad);
        kiln_tensor_t *x = vector(1, d, 1.0f), *y = NULL;
        const char *names[] = {"x"};
        CHECK_MSG(s && kiln_session_run(s, 1, names, (const kiln_tensor_t *const *)&x, 1, &y) == KILN_OK, "%s",
                  kiln_last_error());
        const float *px = kiln_tensor_data(x), *py = y ? kiln_tensor_data(y) : NULL;
        for (int i = 0; py && i < N; i++)
            CHECK_NEAR(py[i], px[i] + 2.0f * w[i], 1e-5);
        kiln_tensor_free(x);
        kiln_tensor_free(y);
        kiln_session_free(s);
        CHECK(wt->data && !memcmp(wt->data, w, sizeof w));
        kiln_model_free(m);
    }
    CHECK_MSG(tried_copy, "no pad made w misaligned");
    unlink(path);
}

int main(void)
{
    test_view_outlives_source();
    test_view_outputs();
    test_arena_shapes();
    test_misaligned_weights();
    test_prepacked_gemm();
    test_prepacked_sessions(64);
    test_prepacked_sessions(40);
    test_optimizer_packed_release();
    test_unread_weight_release();
    return check_finish();
}
