/*
 * inputs.c - benchmark input helpers (see inputs.h).
 */
#include "bench/inputs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"

bool kiln_bench_parse_dims(const char *s, int64_t *dims, int *rank)
{
    *rank = 0;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0 || *rank >= KILN_MAX_RANK)
            return false;
        dims[(*rank)++] = v;
        s = end;
        if (*s == 'x' || *s == ',')
            s++;
        else if (*s)
            return false;
    }
    return *rank > 0;
}

/* xorshift64*: small, fast and the same everywhere. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ull;
}

kiln_tensor_t *kiln_bench_random_tensor(kiln_dtype_t dtype, int rank, const int64_t *dims, uint64_t *seed)
{
    kiln_tensor_t *t = kiln_tensor_create(dtype, rank, dims);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < t->count; i++) {
        uint64_t r = next_random(seed);
        if (kiln_dtype_is_float(dtype))
            kiln_tensor_set_f64(t, i, (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        else if (dtype == KILN_DTYPE_BOOL)
            kiln_tensor_set_f64(t, i, (double)(r & 1));
        else if (dtype == KILN_DTYPE_STRING)
            ((char **)t->data)[i] = strdup("kiln");
        else
            kiln_tensor_set_f64(t, i, (double)(r % 100));
    }
    return t;
}
