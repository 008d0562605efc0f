/*
 * profile.c - summaries of the per-node profile for kiln bench --profile.
 * Times are per run (total over the timed runs divided by their count), so
 * the op-type rows add up to about the latency of one run; the rest is the
 * executor itself (and, at level 0, nothing is fused).
 */
#include "bench/profile.h"

#include <stdlib.h>
#include <string.h>

typedef struct op_row {
    const char *op;
    int nodes;
    double ms;
} op_row_t;

static double per_run(const kiln_node_profile_t *p)
{
    return p->runs ? p->total_ms / (double)p->runs : 0;
}

static int by_ms_desc_nodes(const void *a, const void *b)
{
    double dx = per_run(a), dy = per_run(b);
    return dx < dy ? 1 : dx > dy ? -1 : 0;
}

static int by_ms_desc_ops(const void *a, const void *b)
{
    const op_row_t *x = a, *y = b;
    return x->ms < y->ms ? 1 : x->ms > y->ms ? -1 : 0;
}

static void shape_text(const kiln_node_profile_t *p, char *buf, size_t size)
{
    buf[0] = '\0';
    if (p->out_rank < 0)
        return;
    size_t used = 0;
    for (int d = 0; d < p->out_rank && d < 8 && used + 1 < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? "x%lld" : "%lld", p->out_dims[d]);
    if (p->out_rank == 0)
        snprintf(buf, size, "scalar");
}

/* Reads the profile; *n gets the node count.  NULL when out of memory. */
static kiln_node_profile_t *read_profile(const kiln_session_t *s, int *n)
{
    *n = kiln_session_profile(s, NULL, 0);
    kiln_node_profile_t *p = calloc((size_t)*n + 1, sizeof *p);
    if (p)
        kiln_session_profile(s, p, *n);
    return p;
}

/* Sums nodes by op type (domain-qualified when not the default domain);
 * returns the row count, rows sorted by time. */
static int op_rows(const kiln_node_profile_t *p, int n, op_row_t *rows)
{
    int nr = 0;
    for (int i = 0; i < n; i++) {
        int r = 0;
        while (r < nr && strcmp(rows[r].op, p[i].op_type))
            r++;
        if (r == nr)
            rows[nr++] = (op_row_t){p[i].op_type, 0, 0};
        rows[r].nodes++;
        rows[r].ms += per_run(&p[i]);
    }
    qsort(rows, (size_t)nr, sizeof *rows, by_ms_desc_ops);
    return nr;
}

void kiln_profile_print(const kiln_session_t *s, FILE *out, int top_nodes)
{
    int n;
    kiln_node_profile_t *p = read_profile(s, &n);
    op_row_t *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!p || !rows) {
        fprintf(out, "profile: out of memory\n");
        free(p);
        free(rows);
        return;
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += per_run(&p[i]);
    int nr = op_rows(p, n, rows);
    fprintf(out, "profile: %.3f ms per run in %d nodes\n", total, n);
    fprintf(out, "  %-24s %6s %12s %7s\n", "op", "nodes", "ms/run", "share");
    for (int r = 0; r < nr; r++)
        fprintf(out, "  %-24s %6d %12.3f %6.1f%%\n", rows[r].op, rows[r].nodes, rows[r].ms,
                total > 0 ? 100.0 * rows[r].ms / total : 0);
    qsort(p, (size_t)n, sizeof *p, by_ms_desc_nodes);
    fprintf(out, "slowest nodes:\n  %-40s %-16s %-18s %10s %7s\n", "node", "op", "output", "ms/run", "share");
    for (int i = 0; i < n && i < top_nodes; i++) {
        char shape[128];
        shape_text(&p[i], shape, sizeof shape);
        fprintf(out, "  %-40.40s %-16.16s %-18s %10.3f %6.1f%%\n", p[i].name, p[i].op_type, shape, per_run(&p[i]),
                total > 0 ? 100.0 * per_run(&p[i]) / total : 0);
    }
    free(p);
    free(rows);
}

json_t *kiln_profile_json(const kiln_session_t *s)
{
    int n;
    kiln_node_profile_t *p = read_profile(s, &n);
    op_row_t *rows = calloc((size_t)n + 1, sizeof *rows);
    json_t *j = json_object(), *ops = json_array(), *nodes = json_array();
    if (!p || !rows || !j || !ops || !nodes) {
        free(p);
        free(rows);
        json_decref(j);
        json_decref(ops);
        json_decref(nodes);
        return NULL;
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += per_run(&p[i]);
    for (int i = 0; i < n; i++) {
        char shape[128];
        shape_text(&p[i], shape, sizeof shape);
        json_array_append_new(nodes, json_pack("{s:s, s:s, s:f, s:f, s:s}", "name", p[i].name, "op", p[i].op_type,
                                               "ms_per_run", per_run(&p[i]), "percent",
                                               total > 0 ? 100.0 * per_run(&p[i]) / total : 0.0, "shape", shape));
    }
    int nr = op_rows(p, n, rows);
    for (int r = 0; r < nr; r++)
        json_array_append_new(ops, json_pack("{s:s, s:i, s:f, s:f}", "op", rows[r].op, "nodes", rows[r].nodes,
                                             "ms_per_run", rows[r].ms, "percent",
                                             total > 0 ? 100.0 * rows[r].ms / total : 0.0));
    json_object_set_new(j, "ms_per_run", json_real(total));
    json_object_set_new(j, "ops", ops);
    json_object_set_new(j, "nodes", nodes);
    free(p);
    free(rows);
    return j;
}
