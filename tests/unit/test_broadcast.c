/*
 * test_broadcast.c - the numpy broadcast shape rules, their error message,
 * and the merged strided walk of ops/broadcast.c.
 */
#include <string.h>

#include "check.h"
#include "kiln.h"
#include "ops/broadcast.h"

static int shape2(int ra, const int64_t *a, int rb, const int64_t *b, int *rank, int64_t *dims)
{
    int ranks[2] = {ra, rb};
    const int64_t *ds[2] = {a, b};
    return kiln_broadcast_shape(2, ranks, ds, rank, dims);
}

static void test_shapes(void)
{
    int rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t a[] = {2, 3, 4}, b[] = {4}, c[] = {3, 1}, s[] = {0};
    CHECK(shape2(3, a, 1, b, &rank, dims) == KILN_OK);
    CHECK(rank == 3 && dims[0] == 2 && dims[1] == 3 && dims[2] == 4);
    CHECK(shape2(3, a, 2, c, &rank, dims) == KILN_OK);
    CHECK(rank == 3 && dims[2] == 4);
    CHECK(shape2(0, s, 3, a, &rank, dims) == KILN_OK); /* scalar */
    CHECK(rank == 3 && dims[1] == 3);
    CHECK(shape2(0, s, 0, s, &rank, dims) == KILN_OK && rank == 0);
    int64_t d1[] = {5, 1, 7}, d2[] = {1, 6, 1};
    CHECK(shape2(3, d1, 3, d2, &rank, dims) == KILN_OK);
    CHECK(rank == 3 && dims[0] == 5 && dims[1] == 6 && dims[2] == 7);
    int64_t z[] = {0, 1}, z2[] = {1, 3};
    CHECK(shape2(2, z, 2, z2, &rank, dims) == KILN_OK && dims[0] == 0 && dims[1] == 3);
    /* three inputs */
    int ranks[3] = {1, 2, 0};
    int64_t x[] = {4}, y[] = {2, 1};
    const int64_t *ds[3] = {x, y, s};
    CHECK(kiln_broadcast_shape(3, ranks, ds, &rank, dims) == KILN_OK);
    CHECK(rank == 2 && dims[0] == 2 && dims[1] == 4);
}

static void test_errors(void)
{
    int rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t a[] = {2, 3}, b[] = {4};
    CHECK(shape2(2, a, 1, b, &rank, dims) == KILN_ERR_INVALID_ARGUMENT);
    const char *msg = kiln_last_error();
    CHECK_MSG(strstr(msg, "[2,3]") && strstr(msg, "[4]"), "message: %s", msg);
    int64_t c[] = {3, 2}, d[] = {2, 3};
    CHECK(shape2(2, c, 2, d, &rank, dims) == KILN_ERR_INVALID_ARGUMENT);
    msg = kiln_last_error();
    CHECK_MSG(strstr(msg, "[3,2]") && strstr(msg, "[2,3]"), "message: %s", msg);
    int64_t e[] = {0}, f[] = {2};
    CHECK(shape2(1, e, 1, f, &rank, dims) == KILN_ERR_INVALID_ARGUMENT);
}

/* Collects the (out, in0, in1) element triples a walk visits. */
typedef struct walk {
    int64_t n;
    int64_t out[64], in0[64], in1[64];
    int rows;
} walk_t;

static void record_row(void *arg, int64_t out_off, const int64_t *in_off, const int64_t *step, int64_t len)
{
    walk_t *w = arg;
    w->rows++;
    for (int64_t i = 0; i < len && w->n < 64; i++, w->n++) {
        w->out[w->n] = out_off + i;
        w->in0[w->n] = in_off[0] + i * step[0];
        w->in1[w->n] = in_off[1] + i * step[1];
    }
}

static void check_walk(int ra, const int64_t *a, int rb, const int64_t *b, int64_t begin, int64_t end)
{
    int ranks[2] = {ra, rb};
    const int64_t *ds[2] = {a, b};
    int rank;
    int64_t dims[KILN_MAX_RANK];
    CHECK(kiln_broadcast_shape(2, ranks, ds, &rank, dims) == KILN_OK);
    kiln_bcast_t bc;
    kiln_bcast_init(&bc, 2, ranks, ds, rank, dims);
    walk_t w = {0};
    kiln_bcast_rows(&bc, begin, end, record_row, &w);
    CHECK(w.n == end - begin);
    for (int64_t i = 0; i < w.n; i++) {
        /* Reference: unravel the output index, re-ravel per input. */
        int64_t o = begin + i, rem = o, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = rank - 1; d >= 0; d--) {
            int64_t id = rem % dims[d];
            rem /= dims[d];
            int da = d - (rank - ra), db = d - (rank - rb);
            if (da >= 0) {
                ia += (a[da] == 1 ? 0 : id) * sa;
                sa *= a[da];
            }
            if (db >= 0) {
                ib += (b[db] == 1 ? 0 : id) * sb;
                sb *= b[db];
            }
        }
        CHECK_MSG(w.out[i] == o && w.in0[i] == ia && w.in1[i] == ib,
                  "element %lld: got (%lld,%lld,%lld) want (%lld,%lld,%lld)", (long long)o,
                  (long long)w.out[i], (long long)w.in0[i], (long long)w.in1[i], (long long)o, (long long)ia,
                  (long long)ib);
    }
}

static void test_walk(void)
{
    int64_t a[] = {2, 3, 4}, b[] = {4}, c[] = {3, 1}, d[] = {2, 1, 4}, s[] = {0};
    check_walk(3, a, 3, a, 0, 24);
    check_walk(3, a, 1, b, 0, 24);
    check_walk(3, a, 2, c, 0, 24);
    check_walk(3, a, 3, d, 0, 24);
    check_walk(3, a, 0, s, 0, 24);
    check_walk(3, a, 2, c, 5, 19); /* a sub-range starting mid-row */
    check_walk(2, c, 1, b, 0, 12); /* both inputs stretched: [3,1] x [4] */
    check_walk(0, s, 0, s, 0, 1);

    /* Merging: same shapes become one run; a bias becomes rows of C. */
    int ranks[2] = {3, 3};
    const int64_t *ds[2] = {a, a};
    kiln_bcast_t bc;
    kiln_bcast_init(&bc, 2, ranks, ds, 3, a);
    CHECK(bc.rank == 1 && bc.inner == 24 && bc.same_shape);
    int ranks2[2] = {3, 1};
    const int64_t *ds2[2] = {a, b};
    kiln_bcast_init(&bc, 2, ranks2, ds2, 3, a);
    CHECK(bc.rank == 2 && bc.inner == 4 && bc.dims[0] == 6 && !bc.same_shape);
    CHECK(bc.strides[1][0] == 0 && bc.strides[1][1] == 1);
}

int main(void)
{
    test_shapes();
    test_errors();
    test_walk();
    return check_finish();
}
