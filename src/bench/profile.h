/*
 * profile.h - reports a session's per-node profile (kiln bench --profile):
 * time per run summed by operator type, and the slowest nodes with their
 * output shapes, as text or as a JSON object.  The counters themselves are
 * kept by the executor (kiln_session_set_profiling in kiln.h).
 */
#ifndef KILN_BENCH_PROFILE_H
#define KILN_BENCH_PROFILE_H

#include <jansson.h>
#include <stdio.h>

#include "kiln.h"

/* Prints the op-type table and the top_nodes slowest nodes to out. */
void kiln_profile_print(const kiln_session_t *session, FILE *out, int top_nodes);

/* {"ops": [{"op", "nodes", "ms_per_run", "percent"}...],
 *  "nodes": [{"name", "op", "ms_per_run", "percent", "shape"}...]} with
 * every node in run order; NULL when out of memory. */
json_t *kiln_profile_json(const kiln_session_t *session);

#endif
