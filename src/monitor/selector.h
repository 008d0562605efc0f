/*
 * selector.h - PromQL series selectors: `metric{label="v", l!="x",
 * l=~"re.*", l!~"re"}`, as used by /api/v1/query_range (query=...),
 * /api/v1/series (match[]=...) and by the alert rules' expressions.
 *
 * The text comes from the network, so the parser checks everything and
 * reports the column of the first problem; regular expressions are POSIX
 * extended, anchored at both ends as in PromQL.  A parsed selector is
 * immutable and may be matched from several threads at once.
 */
#ifndef KILN_MONITOR_SELECTOR_H
#define KILN_MONITOR_SELECTOR_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "kiln.h"
#include "monitor/labels.h"

typedef enum kiln_match_op {
    KILN_MATCH_EQUAL,     /* =  */
    KILN_MATCH_NOT_EQUAL, /* != */
    KILN_MATCH_REGEX,     /* =~ */
    KILN_MATCH_NOT_REGEX  /* !~ */
} kiln_match_op_t;

typedef struct kiln_matcher {
    char *name;  /* label name; "__name__" matches the metric name */
    kiln_match_op_t op;
    char *value; /* the literal, or the regex source */
    regex_t re;  /* compiled "^(?:value)$" for the two regex ops */
} kiln_matcher_t;

typedef struct kiln_selector {
    char *metric;           /* NULL when the name is given by a __name__ matcher or not at all */
    kiln_matcher_t *matchers;
    size_t n_matchers;
} kiln_selector_t;

/* Longest selector text accepted, in bytes. */
#define KILN_SELECTOR_MAX_TEXT 4096

/* Parses text (len bytes, need not be NUL-terminated).  On success *out is
 * a new selector the caller frees with kiln_selector_free().  On error the
 * last-error text says what was expected at which column, and the status is
 * KILN_ERR_INVALID_ARGUMENT.  Like PromQL, a selector must have a metric
 * name or at least one matcher that does not match the empty string. */
kiln_status_t kiln_selector_parse(const char *text, size_t len, kiln_selector_t **out);
void kiln_selector_free(kiln_selector_t *sel);

/* Parses text up to where a selector ends (for the alert rules' parser,
 * which embeds selectors in larger expressions): *consumed is the number of
 * bytes used.  Same ownership and errors as kiln_selector_parse(). */
kiln_status_t kiln_selector_parse_prefix(const char *text, size_t len, kiln_selector_t **out,
                                         size_t *consumed);

/* True when the series (metric name and labels) satisfies every matcher.
 * A label that is absent reads as "". */
bool kiln_selector_matches(const kiln_selector_t *sel, const char *metric,
                           const kiln_label_t *labels, size_t n_labels);

#endif
