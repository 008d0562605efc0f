/*
 * misc.h - the parts of misc.c worth testing on their own: the Einsum
 * equation parser (tests/unit/test_reduce.c calls it directly).
 */
#ifndef KILN_OPS_MISC_H
#define KILN_OPS_MISC_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln.h"

#define KILN_EINSUM_MAX_INPUTS 16
/* Labels 0..51 are the letters A-Z, a-z; ellipsis dims take the labels from
 * KILN_EINSUM_ELLIPSIS_LABEL on, right-aligned across the inputs. */
#define KILN_EINSUM_ELLIPSIS_LABEL 52
#define KILN_EINSUM_MAX_LABELS (KILN_EINSUM_ELLIPSIS_LABEL + KILN_MAX_RANK)

/* A parsed equation: the label of every dim of every input and of the
 * output.  The same label twice in one input means its diagonal; a label
 * missing from the output is summed over. */
typedef struct kiln_einsum_spec {
    int n_inputs;
    int in_rank[KILN_EINSUM_MAX_INPUTS];
    int in_labels[KILN_EINSUM_MAX_INPUTS][KILN_MAX_RANK];
    int out_rank;
    int out_labels[KILN_MAX_RANK];
    int n_ellipsis_dims; /* how many dims "..." stands for (the broadcast max) */
} kiln_einsum_spec_t;

/* Parses equation (e.g. "bij,bjk->bik", "...ii->...i", "i,i") for n_inputs
 * inputs of the given ranks.  Spaces are ignored; without "->" the output is
 * the ellipsis dims then the labels used exactly once, in ASCII order.
 * Returns false with a message in err (which names the problem) when the
 * equation is malformed or does not fit the ranks. */
bool kiln_einsum_parse(const char *equation, int n_inputs, const int *ranks, kiln_einsum_spec_t *spec,
                       char *err, size_t err_size);

#endif
