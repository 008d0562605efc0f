/*
 * test_tensor_ops.c - the strided view copy behind Slice, Transpose,
 * Expand, Tile and Pad (ops/tensor_util.c), checked against a naive
 * element-by-element walk: every element size (1 to 16 bytes) and strings,
 * views that merge into one memcpy, broadcasts (stride 0), negative
 * strides, and 2-D transposes of odd sizes that take the blocked path.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kiln.h"
#include "ops/tensor_util.h"

/* The reference: walks the view in row-major order one element at a time. */
static void naive_copy(const tops_view_t *v, size_t esize, char *dst, int64_t dst_off, const char *src,
                       int64_t src_off)
{
    int64_t total = 1, pos[TOPS_MAX_VIEW_RANK] = {0};
    for (int d = 0; d < v->rank; d++)
        total *= v->dims[d];
    for (int64_t i = 0; i < total; i++) {
        int64_t s = src_off, t = dst_off;
        for (int d = 0; d < v->rank; d++) {
            s += pos[d] * v->src_strides[d];
            t += pos[d] * v->dst_strides[d];
        }
        memcpy(dst + t * (int64_t)esize, src + s * (int64_t)esize, esize);
        for (int d = v->rank - 1; d >= 0 && ++pos[d] == v->dims[d]; d--)
            pos[d] = 0;
    }
}

/* A dtype of each element size. */
static kiln_dtype_t dtype_of_size(size_t esize)
{
    switch (esize) {
    case 1:
        return KILN_DTYPE_UINT8;
    case 2:
        return KILN_DTYPE_FLOAT16;
    case 4:
        return KILN_DTYPE_FLOAT32;
    case 8:
        return KILN_DTYPE_INT64;
    default:
        return KILN_DTYPE_COMPLEX128;
    }
}

/* Copies view v of a source of src_n elements with both the tuned and the
 * naive walk, and checks the destinations (dst_n elements) agree. */
static void check_view(const tops_view_t *v, size_t esize, int64_t src_n, int64_t src_off, int64_t dst_n,
                       const char *what)
{
    char *src = malloc((size_t)src_n * esize), *a = calloc((size_t)dst_n, esize),
         *b = calloc((size_t)dst_n, esize);
    for (int64_t i = 0; i < src_n * (int64_t)esize; i++)
        src[i] = (char)(i * 7 + 3);
    tops_view_t copy = *v;
    naive_copy(v, esize, a, 0, src, src_off);
    CHECK(tops_strided_copy(NULL, &copy, dtype_of_size(esize), b, 0, src, src_off) == KILN_OK);
    CHECK_MSG(memcmp(a, b, (size_t)dst_n * esize) == 0, "%s, element size %zu", what, esize);
    free(src);
    free(a);
    free(b);
}

/* Transposes [rows, cols] to [cols, rows] (the blocked path when both >= 4). */
static void test_transposes(void)
{
    static const int64_t sizes[][2] = {{1, 7}, {3, 5}, {4, 4}, {17, 33}, {64, 31}, {100, 3}, {5, 130}};
    static const size_t esizes[] = {1, 2, 4, 8, 16};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (size_t e = 0; e < sizeof esizes / sizeof *esizes; e++) {
            int64_t r = sizes[s][0], c = sizes[s][1];
            tops_view_t v = {.rank = 2, .dims = {c, r}, .src_strides = {1, c}, .dst_strides = {r, 1}};
            check_view(&v, esizes[e], r * c, 0, r * c, "2-D transpose");
            /* a batch of them, as a 3-D permutation (0, 2, 1) */
            tops_view_t b = {
                .rank = 3, .dims = {3, c, r}, .src_strides = {r * c, 1, c}, .dst_strides = {r * c, r, 1}};
            check_view(&b, esizes[e], 3 * r * c, 0, 3 * r * c, "batched transpose");
        }
}

/* Views with merged dims, broadcasts, negative steps and offsets. */
static void test_views(void)
{
    /* contiguous: merges into one row */
    tops_view_t flat = {.rank = 3, .dims = {2, 3, 4}, .src_strides = {12, 4, 1}, .dst_strides = {12, 4, 1}};
    check_view(&flat, 4, 24, 0, 24, "contiguous");
    /* expand [3,1] to [2,3,5] */
    tops_view_t bc = {.rank = 3, .dims = {2, 3, 5}, .src_strides = {0, 1, 0}, .dst_strides = {15, 5, 1}};
    check_view(&bc, 2, 3, 0, 30, "broadcast");
    /* slice x[4:0:-2, ::-1] of a [5,6] */
    tops_view_t neg = {.rank = 2, .dims = {2, 6}, .src_strides = {-12, -1}, .dst_strides = {6, 1}};
    check_view(&neg, 8, 30, 4 * 6 + 5, 12, "negative steps");
    /* tile [2,3] by (2,3): view [2,2,3,3] */
    tops_view_t tile = {
        .rank = 4, .dims = {2, 2, 3, 3}, .src_strides = {0, 3, 0, 1}, .dst_strides = {18, 9, 3, 1}};
    check_view(&tile, 1, 6, 0, 36, "tile");
    /* unit dims and a single element */
    tops_view_t one = {.rank = 3, .dims = {1, 1, 1}, .src_strides = {5, 5, 5}, .dst_strides = {1, 1, 1}};
    check_view(&one, 16, 10, 3, 1, "single element");
    /* an empty view copies nothing */
    tops_view_t empty = {.rank = 2, .dims = {3, 0}, .src_strides = {1, 1}, .dst_strides = {1, 1}};
    CHECK(tops_strided_copy(NULL, &empty, KILN_DTYPE_FLOAT32, NULL, 0, NULL, 0) == KILN_OK);
}

/* Strings are duplicated, not shared, and the destination owns them. */
static void test_strings(void)
{
    char *src[4] = {"a", "bb", NULL, "dddd"};
    char *dst[4] = {NULL, NULL, NULL, NULL};
    tops_view_t v = {.rank = 2, .dims = {2, 2}, .src_strides = {1, 2}, .dst_strides = {2, 1}};
    CHECK(tops_strided_copy(NULL, &v, KILN_DTYPE_STRING, dst, 0, src, 0) == KILN_OK);
    CHECK(dst[0] && !strcmp(dst[0], "a") && dst[0] != src[0]);
    CHECK(dst[1] && !strcmp(dst[1], "")); /* NULL becomes "" */
    CHECK(dst[2] && !strcmp(dst[2], "bb"));
    CHECK(dst[3] && !strcmp(dst[3], "dddd"));
    /* copying again over owned strings frees the old ones (ASan checks) */
    CHECK(tops_copy_elems(dst, src, 2, KILN_DTYPE_STRING));
    CHECK(!strcmp(dst[1], "bb"));
    for (int i = 0; i < 4; i++)
        free(dst[i]);
}

int main(void)
{
    test_transposes();
    test_views();
    test_strings();
    return check_finish();
}
