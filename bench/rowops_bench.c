/*
 * rowops_bench.c - measures the float32 row kernels behind ReduceSum/Mean,
 * Softmax/LogSoftmax and LayerNormalization (ops/rowops.h): nanoseconds per
 * element of the run-time chosen path against the portable reference, at
 * BERT's row lengths (attention scores of 128 and 512, hidden size 768).
 *
 *   make build/libkiln.a && gcc -O2 -Iinclude -Isrc bench/rowops_bench.c \
 *       build/libkiln.a -lm -lpthread -o build/rowops_bench && build/rowops_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ops/rowops.h"

enum { TOTAL_ELEMS = 1 << 20, REPS = 20 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef enum { OP_SUM, OP_SOFTMAX, OP_LAYER_NORM } bench_op_t;

/* Best-of-REPS nanoseconds per element of one op over TOTAL_ELEMS split in
 * rows of n. */
static double ns_per_elem(const kiln_rowops_t *ops, bench_op_t op, int64_t n, const float *x, float *y,
                          const float *w, const float *b)
{
    int64_t rows = TOTAL_ELEMS / n;
    double best = 1e30;
    volatile float sink = 0.0f;
    for (int rep = 0; rep < REPS; rep++) {
        double t = now_s();
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * n;
            float *yr = y + r * n, m, inv;
            switch (op) {
            case OP_SUM:
                sink += ops->sum(xr, n);
                break;
            case OP_SOFTMAX:
                ops->softmax(xr, yr, n, false);
                break;
            case OP_LAYER_NORM:
                ops->layer_norm(xr, yr, n, w, n, b, n, 1e-5f, &m, &inv);
                break;
            }
        }
        t = now_s() - t;
        if (t < best)
            best = t;
    }
    (void)sink;
    return best * 1e9 / (double)(rows * n);
}

int main(void)
{
    float *x = malloc(sizeof(float) * TOTAL_ELEMS), *y = malloc(sizeof(float) * TOTAL_ELEMS);
    float *w = malloc(sizeof(float) * 4096), *b = malloc(sizeof(float) * 4096);
    if (!x || !y || !w || !b)
        return 1;
    for (int64_t i = 0; i < TOTAL_ELEMS; i++)
        x[i] = (float)((i * 7919) % 1000) / 100.0f - 5.0f;
    for (int i = 0; i < 4096; i++) {
        w[i] = 1.0f + 0.001f * (float)i;
        b[i] = 0.01f * (float)i;
    }
    const kiln_rowops_t *ref = kiln_rowops_portable(), *fast = kiln_rowops();
    const char *names[] = {"sum", "softmax", "layer_norm"};
    const int64_t lengths[] = {128, 512, 768, 4096};
    printf("%-11s %6s %12s %12s %8s   (ns/element; fast path: %s)\n", "op", "n", "portable", "fast",
           "speedup", fast->name);
    for (int op = OP_SUM; op <= OP_LAYER_NORM; op++)
        for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
            double tr = ns_per_elem(ref, op, lengths[k], x, y, w, b);
            double tf = ns_per_elem(fast, op, lengths[k], x, y, w, b);
            printf("%-11s %6lld %12.3f %12.3f %7.1fx\n", names[op], (long long)lengths[k], tr, tf, tr / tf);
        }
    free(x);
    free(y);
    free(w);
    free(b);
    return 0;
}
