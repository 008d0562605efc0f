/*
 * inputs.h - what both benchmarks (`kiln bench` on a model file and
 * `kiln bench --url` against a server) need to make inputs: parsing
 * "1x3x224x224" shapes and fixed-seed random tensors, so runs repeat.
 */
#ifndef KILN_BENCH_INPUTS_H
#define KILN_BENCH_INPUTS_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"

/* Parses "1x3x224x224" (or "1,3,224,224") into dims; false when malformed,
 * negative or longer than KILN_MAX_RANK. */
bool kiln_bench_parse_dims(const char *s, int64_t *dims, int *rank);

/* A new tensor of fixed-seed random values (xorshift64* from *seed):
 * floats uniform in [-1, 1), bools 0/1, integers 0..99 (safe as indices or
 * token ids), strings "kiln".  NULL when out of memory. */
kiln_tensor_t *kiln_bench_random_tensor(kiln_dtype_t dtype, int rank, const int64_t *dims, uint64_t *seed);

#endif
