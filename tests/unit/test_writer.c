/*
 * test_writer.c - the ONNX writer (onnx/write.c) from C: a model read,
 * written and read again keeps its graph and initializers byte for byte,
 * writing is deterministic, every main-graph initializer lands 8-byte
 * aligned in the file (so the second read borrows every weight: no copies),
 * and a failed write reports the path.  tests/integration/test_writer.sh
 * checks the written files with onnx.checker over the whole ONNX test data.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "kiln.h"
#include "onnx/model.h"

#define DATA "/usr/share/libonnx-testdata/data/"
#define OUT "build/test_writer_unit.onnx"

static const char *const models[] = {
    DATA "pytorch-converted/test_Conv2d/model.onnx",
    DATA "pytorch-converted/test_BatchNorm2d_eval/model.onnx",
    DATA "pytorch-converted/test_Linear/model.onnx",
    DATA "node/test_constant/model.onnx",
    DATA "node/test_if_seq/model.onnx",
    DATA "node/test_loop11/model.onnx",
};

static void same_graph(const kiln_graph_t *a, const kiln_graph_t *b, const char *path)
{
    CHECK_MSG(a->n_nodes == b->n_nodes, "%s: nodes %d vs %d", path, a->n_nodes, b->n_nodes);
    CHECK_MSG(a->n_inputs == b->n_inputs && a->n_outputs == b->n_outputs, "%s: graph inputs/outputs", path);
    for (int i = 0; i < a->n_nodes && i < b->n_nodes; i++) {
        CHECK_MSG(!strcmp(a->nodes[i].op_type, b->nodes[i].op_type), "%s: node %d op", path, i);
        CHECK_MSG(a->nodes[i].n_attrs == b->nodes[i].n_attrs, "%s: node %d attributes", path, i);
    }
    CHECK_MSG(a->n_initializers == b->n_initializers, "%s: initializers %d vs %d", path, a->n_initializers,
              b->n_initializers);
    for (int i = 0; i < a->n_initializers && i < b->n_initializers; i++) {
        const kiln_tensor_t *x = a->initializers[i], *y = b->initializers[i];
        bool same = x->dtype == y->dtype && x->rank == y->rank && x->nbytes == y->nbytes &&
                    !memcmp(x->dims, y->dims, sizeof x->dims[0] * (size_t)x->rank);
        if (same && x->dtype != KILN_DTYPE_STRING && x->nbytes)
            same = !memcmp(x->data, y->data, x->nbytes);
        CHECK_MSG(same, "%s: initializer %d differs after the round trip", path, i);
    }
}

static void round_trip(const char *path)
{
    kiln_model_t *m = NULL, *m2 = NULL;
    if (access(path, R_OK) != 0) {
        printf("skip %s (not installed)\n", path);
        return;
    }
    CHECK_MSG(kiln_model_load_unchecked(path, &m) == KILN_OK, "%s: %s", path, kiln_last_error());
    if (!m)
        return;
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    CHECK(kiln_onnx_write_bytes(&m->ir, &b1, &n1) == KILN_OK);
    CHECK(kiln_onnx_write_bytes(&m->ir, &b2, &n2) == KILN_OK);
    CHECK_MSG(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "%s: writing is not deterministic", path);
    CHECK_MSG(kiln_onnx_write_file(&m->ir, OUT) == KILN_OK, "%s: %s", path, kiln_last_error());
    FILE *f = fopen(OUT, "rb");
    uint8_t *b3 = malloc(n1 + 1);
    size_t n3 = f && b3 ? fread(b3, 1, n1 + 1, f) : 0;
    if (f)
        fclose(f);
    CHECK_MSG(n3 == n1 && !memcmp(b1, b3, n1), "%s: file and bytes differ", path);
    free(b1);
    free(b2);
    free(b3);

    CHECK_MSG(kiln_model_load_unchecked(OUT, &m2) == KILN_OK, "%s rewritten: %s", path, kiln_last_error());
    if (m2) {
        same_graph(m->ir.graph, m2->ir.graph, path);
        const kiln_graph_t *g = m2->ir.graph;
        for (int i = 0; i < g->n_initializers; i++) {
            const kiln_tensor_t *t = g->initializers[i];
            if (!t->nbytes || t->dtype == KILN_DTYPE_STRING || t->dtype == KILN_DTYPE_BOOL)
                continue;
            uintptr_t off = (uintptr_t)((const uint8_t *)t->data - (const uint8_t *)m2->file.data);
            CHECK_MSG(off < m2->file.size && off % 8 == 0, "%s: initializer %d at offset %zu is not borrowed 8-aligned",
                      path, i, (size_t)off);
        }
        printf("%s: %zu bytes written, %d initializers, %zu bytes copied on reload (was %zu)\n", path, n1,
               g->n_initializers, m2->copied_bytes, m->copied_bytes);
    }
    kiln_model_free(m2);
    kiln_model_free(m);
}

int main(void)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        round_trip(models[i]);

    /* A write that cannot happen says where. */
    kiln_model_t *m = NULL;
    if (kiln_model_load_unchecked(models[0], &m) == KILN_OK) {
        kiln_status_t st = kiln_onnx_write_file(&m->ir, "build/no/such/dir/x.onnx");
        CHECK(st == KILN_ERR_IO);
        CHECK_MSG(strstr(kiln_last_error(), "build/no/such/dir/x.onnx") != NULL, "%s", kiln_last_error());
        kiln_model_free(m);
    }
    /* A parse-only model cannot make a session. */
    if (kiln_model_load_unchecked(models[0], &m) == KILN_OK) {
        kiln_session_t *s = NULL;
        CHECK(kiln_session_create(m, NULL, &s) == KILN_ERR_INVALID_ARGUMENT && s == NULL);
        kiln_model_free(m);
    }
    return check_finish();
}
