/*
 * alert_rules.c - loads a Prometheus alerting-rule file (groups: of rules:)
 * with libyaml and checks every field, so that a file kiln accepts is one
 * `promtool check rules` accepts too.
 *
 * The YAML is loaded as a node tree (yaml_parser_load) because the nodes
 * keep their line and column: every message names FILE:LINE:COL, and an
 * expression error is placed on the exact character of the expr when the
 * scalar is written on one line (plain or quoted) or in a block (|, >).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "monitor/alert_internal.h"

/* The file's size limit: rule files are small; a huge one is a mistake. */
#define RULES_MAX_BYTES (16u << 20)

typedef struct loader {
    const char *name; /* file name for messages */
    const char *text;
    size_t len;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
} loader_t;

static int lfail(loader_t *L, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lfail(loader_t *L, const yaml_node_t *at, const char *fmt, ...)
{
    if (!L->err || !L->errlen)
        return -1;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (at)
        snprintf(L->err, L->errlen, "%s:%zu:%zu: %s", L->name, at->start_mark.line + 1,
                 at->start_mark.column + 1, what);
    else
        snprintf(L->err, L->errlen, "%s: %s", L->name, what);
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int is_label_name(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

/* Requires a scalar and returns its text, else fails naming the field. */
static const char *need_scalar(loader_t *L, const yaml_node_t *n, const char *field)
{
    const char *s = scalar(n);
    if (!s)
        lfail(L, n, "'%s' must be a string, not a %s", field,
              n && n->type == YAML_MAPPING_NODE    ? "mapping"
              : n && n->type == YAML_SEQUENCE_NODE ? "list"
                                                   : "null");
    return s;
}

static int need_duration(loader_t *L, const yaml_node_t *n, const char *field, double *out)
{
    const char *s = need_scalar(L, n, field);
    if (!s)
        return -1;
    if (kiln_alert_parse_duration(s, out) != 0)
        return lfail(L, n, "'%s' is not a valid duration: \"%s\" (expected e.g. 30s, 5m, 1h30m)", field, s);
    return 0;
}

/* Places a problem at byte `off` of a scalar's value on its line and column
 * in the file.  Plain and quoted scalars on one line map directly; block
 * scalars (| and >) start on the next line at the block's indentation. */
static void scalar_position(const loader_t *L, const yaml_node_t *n, size_t off, size_t *line, size_t *col)
{
    const char *v = (const char *)n->data.scalar.value;
    size_t lines_before = 0, line_start = 0;
    for (size_t i = 0; i < off && v[i]; i++)
        if (v[i] == '\n') {
            lines_before++;
            line_start = i + 1;
        }
    yaml_scalar_style_t st = n->data.scalar.style;
    if (st == YAML_LITERAL_SCALAR_STYLE || st == YAML_FOLDED_SCALAR_STYLE) {
        /* Find the indentation of the first content line after the indicator. */
        size_t first = n->start_mark.line + 1;
        size_t pos = n->start_mark.index;
        while (pos < L->len && L->text[pos] != '\n')
            pos++;
        if (pos < L->len)
            pos++;
        size_t indent = 0;
        while (pos + indent < L->len && L->text[pos + indent] == ' ')
            indent++;
        *line = first + lines_before + 1;
        *col = indent + (off - line_start) + 1;
        return;
    }
    size_t quote = (st == YAML_SINGLE_QUOTED_SCALAR_STYLE || st == YAML_DOUBLE_QUOTED_SCALAR_STYLE) ? 1 : 0;
    *line = n->start_mark.line + 1 + lines_before;
    *col = lines_before ? (off - line_start) + 1 : n->start_mark.column + quote + off + 1;
}

/* Fails when the key of pair p already appeared earlier in the mapping:
 * YAML forbids it and Prometheus refuses it, and taking the last one would
 * hide a typo. */
static int dup_key(loader_t *L, const yaml_node_t *map, const yaml_node_pair_t *p)
{
    const yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
    const char *key = scalar(k);
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; key && q < p; q++) {
        const yaml_node_t *qk = yaml_document_get_node(L->doc, q->key);
        const char *other = scalar(qk);
        if (other && !strcmp(other, key))
            return lfail(L, k, "duplicate key '%s' (first on line %zu)", key, qk->start_mark.line + 1);
    }
    return 0;
}

static void kv_clear(alert_kv_template_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].source);
        alert_template_clear(&kv[i].tmpl);
    }
    free(kv);
}

/* labels: / annotations: a mapping of names to template strings. */
static int load_kv(loader_t *L, const yaml_node_t *map, const char *field, alert_kv_template_t **out,
                   size_t *nout)
{
    if (map->type == YAML_SCALAR_NODE && scalar(map)[0] == '\0')
        return 0; /* "labels:" with nothing after it */
    if (map->type != YAML_MAPPING_NODE)
        return lfail(L, map, "'%s' must be a mapping of names to strings", field);
    size_t count = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    alert_kv_template_t *kv = calloc(count ? count : 1, sizeof *kv);
    if (!kv)
        return lfail(L, map, "out of memory");
    size_t n = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
        const char *name = scalar(k);
        if (!is_label_name(name)) {
            lfail(L, k, "invalid %s name '%s' (names are [a-zA-Z_][a-zA-Z0-9_]*)", field,
                  name ? name : "(not a string)");
            goto fail;
        }
        for (size_t j = 0; j < n; j++)
            if (!strcmp(kv[j].name, name)) {
                lfail(L, k, "duplicate %s name '%s'", field, name);
                goto fail;
            }
        const char *val = need_scalar(L, v, name);
        if (!val)
            goto fail;
        kv[n].name = strdup(name);
        kv[n].source = strdup(val);
        if (!kv[n].name || !kv[n].source) {
            n++;
            lfail(L, v, "out of memory");
            goto fail;
        }
        size_t off = 0;
        char msg[300];
        if (alert_template_parse(val, &kv[n].tmpl, &off, msg, sizeof msg) != 0) {
            size_t line, col;
            scalar_position(L, v, off, &line, &col);
            if (L->errlen)
                snprintf(L->err, L->errlen, "%s:%zu:%zu: %s '%s': template: %s", L->name, line, col, field,
                         name, msg);
            n++;
            goto fail;
        }
        n++;
    }
    *out = kv;
    *nout = n;
    return 0;
fail:
    kv_clear(kv, n);
    return -1;
}

static void rule_clear(alert_rule_t *r)
{
    free(r->name);
    free(r->expr_text);
    alert_expr_clear(&r->expr);
    kv_clear(r->labels, r->nlabels);
    kv_clear(r->annotations, r->nannotations);
    for (size_t i = 0; i < r->nalerts; i++) {
        alert_labels_clear(&r->alerts[i].labels);
        alert_labels_clear(&r->alerts[i].annotations);
    }
    free(r->alerts);
    free(r->last_error);
    memset(r, 0, sizeof *r);
}

static int load_rule(loader_t *L, const yaml_node_t *node, alert_rule_t *r)
{
    if (node->type != YAML_MAPPING_NODE)
        return lfail(L, node, "each rule must be a mapping with 'alert' and 'expr'");
    r->line = (int)node->start_mark.line + 1;
    const yaml_node_t *expr_node = NULL, *alert_node = NULL;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
        const char *key = scalar(k);
        if (!key)
            return lfail(L, k, "rule keys must be strings");
        if (dup_key(L, node, p) != 0)
            return -1;
        if (!strcmp(key, "alert")) {
            alert_node = v;
        } else if (!strcmp(key, "expr")) {
            expr_node = v;
        } else if (!strcmp(key, "for")) {
            if (need_duration(L, v, "for", &r->for_seconds) != 0)
                return -1;
        } else if (!strcmp(key, "keep_firing_for")) {
            if (need_duration(L, v, "keep_firing_for", &r->keep_firing_for) != 0)
                return -1;
        } else if (!strcmp(key, "labels")) {
            if (load_kv(L, v, "labels", &r->labels, &r->nlabels) != 0)
                return -1;
        } else if (!strcmp(key, "annotations")) {
            if (load_kv(L, v, "annotations", &r->annotations, &r->nannotations) != 0)
                return -1;
        } else if (!strcmp(key, "record")) {
            return lfail(L, k,
                         "recording rules ('record:') are not supported; kiln evaluates alerting rules only");
        } else {
            return lfail(
                L, k,
                "unknown rule field '%s' (expected alert, expr, for, keep_firing_for, labels, annotations)",
                key);
        }
    }
    if (!alert_node)
        return lfail(L, node, "rule has no 'alert' name");
    const char *name = need_scalar(L, alert_node, "alert");
    if (!name)
        return -1;
    if (!*name)
        return lfail(L, alert_node, "'alert' must not be empty");
    r->name = strdup(name);
    if (!expr_node)
        return lfail(L, node, "rule '%s' has no 'expr'", name);
    const char *expr = need_scalar(L, expr_node, "expr");
    if (!expr)
        return -1;
    r->expr_text = strdup(expr);
    if (!r->name || !r->expr_text)
        return lfail(L, node, "out of memory");
    size_t off = 0;
    char msg[300];
    if (alert_expr_parse(expr, &r->expr, &off, msg, sizeof msg) != 0) {
        size_t line, col;
        scalar_position(L, expr_node, off, &line, &col);
        if (L->errlen)
            snprintf(L->err, L->errlen, "%s:%zu:%zu: rule '%s': expr character %zu: %s", L->name, line, col,
                     name, off + 1, msg);
        return -1;
    }
    for (size_t i = 0; i < r->nlabels; i++)
        if (!strcmp(r->labels[i].name, "alertname") || !strcmp(r->labels[i].name, "__name__"))
            return lfail(L, node, "rule '%s': the label '%s' is reserved", name, r->labels[i].name);
    return 0;
}

static void group_clear(alert_group_t *g)
{
    free(g->name);
    for (size_t i = 0; i < g->nrules; i++)
        rule_clear(&g->rules[i]);
    free(g->rules);
    memset(g, 0, sizeof *g);
}

static int load_group(loader_t *L, const yaml_node_t *node, alert_group_t *g)
{
    if (node->type != YAML_MAPPING_NODE)
        return lfail(L, node, "each group must be a mapping with 'name' and 'rules'");
    const yaml_node_t *rules = NULL, *name = NULL;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
        const char *key = scalar(k);
        if (!key)
            return lfail(L, k, "group keys must be strings");
        if (dup_key(L, node, p) != 0)
            return -1;
        if (!strcmp(key, "name")) {
            name = v;
        } else if (!strcmp(key, "interval")) {
            if (need_duration(L, v, "interval", &g->interval) != 0)
                return -1;
        } else if (!strcmp(key, "rules")) {
            rules = v;
        } else if (!strcmp(key, "limit")) {
            const char *s = need_scalar(L, v, "limit");
            char *end;
            if (!s)
                return -1;
            errno = 0;
            long lim = strtol(s, &end, 10);
            if (*end || !*s || lim < 0 || errno)
                return lfail(L, v, "'limit' must be a whole number >= 0, not \"%s\"", s);
        } else {
            return lfail(L, k, "unknown group field '%s' (expected name, interval, rules, limit)", key);
        }
    }
    if (!name)
        return lfail(L, node, "group has no 'name'");
    const char *nm = need_scalar(L, name, "name");
    if (!nm)
        return -1;
    if (!*nm)
        return lfail(L, name, "group name must not be empty");
    g->name = strdup(nm);
    if (!g->name)
        return lfail(L, name, "out of memory");
    if (!rules || (rules->type == YAML_SCALAR_NODE && !*scalar(rules)))
        return 0; /* a group with no rules is valid */
    if (rules->type != YAML_SEQUENCE_NODE)
        return lfail(L, rules, "'rules' of group '%s' must be a list", nm);
    size_t count = (size_t)(rules->data.sequence.items.top - rules->data.sequence.items.start);
    g->rules = calloc(count ? count : 1, sizeof *g->rules);
    if (!g->rules)
        return lfail(L, rules, "out of memory");
    for (yaml_node_item_t *it = rules->data.sequence.items.start; it < rules->data.sequence.items.top; it++) {
        alert_rule_t *r = &g->rules[g->nrules++];
        if (load_rule(L, yaml_document_get_node(L->doc, *it), r) != 0)
            return -1;
    }
    return 0;
}

void kiln_alert_rules_free(kiln_alert_rules_t *rules)
{
    if (!rules)
        return;
    for (size_t i = 0; i < rules->ngroups; i++)
        group_clear(&rules->groups[i]);
    free(rules->groups);
    free(rules->file);
    free(rules);
}

int kiln_alert_rules_parse(const char *text, size_t len, const char *name, kiln_alert_rules_t **out,
                           char *err, size_t errlen)
{
    loader_t L = {
        .name = name ? name : "(rules)", .text = text, .len = len, .err = err, .errlen = err ? errlen : 0};
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (memchr(text, '\0', len))
        return lfail(&L, NULL, "the file contains a NUL byte; a rule file is YAML text");
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return lfail(&L, NULL, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        const char *problem = parser.problem ? parser.problem : "invalid YAML";
        yaml_mark_t m = parser.problem_mark;
        if (err && errlen) {
            if (parser.context)
                snprintf(err, errlen, "%s:%zu:%zu: YAML error: %s %s (line %zu)", L.name, m.line + 1,
                         m.column + 1, problem, parser.context, parser.context_mark.line + 1);
            else
                snprintf(err, errlen, "%s:%zu:%zu: YAML error: %s", L.name, m.line + 1, m.column + 1,
                         problem);
        }
        yaml_parser_delete(&parser);
        return -1;
    }
    L.doc = &doc;
    kiln_alert_rules_t *rules = calloc(1, sizeof *rules);
    int rc = -1;
    if (!rules) {
        lfail(&L, NULL, "out of memory");
        goto done;
    }
    rules->file = strdup(L.name);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || (root->type == YAML_SCALAR_NODE && !*scalar(root))) {
        rc = 0; /* an empty file holds no rules, as promtool agrees */
        goto done;
    }
    if (root->type != YAML_MAPPING_NODE) {
        lfail(&L, root, "a rule file must be a mapping with 'groups:'");
        goto done;
    }
    const yaml_node_t *groups = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        const char *key = scalar(k);
        if (key && !strcmp(key, "groups") && dup_key(&L, root, p) != 0)
            goto done;
        if (!key || strcmp(key, "groups")) {
            lfail(&L, k, "unknown top-level field '%s' (a rule file has only 'groups:')",
                  key ? key : "(not a string)");
            goto done;
        }
        groups = yaml_document_get_node(&doc, p->value);
    }
    if (!groups || (groups->type == YAML_SCALAR_NODE && !*scalar(groups))) {
        rc = 0;
        goto done;
    }
    if (groups->type != YAML_SEQUENCE_NODE) {
        lfail(&L, groups, "'groups' must be a list of groups");
        goto done;
    }
    size_t count = (size_t)(groups->data.sequence.items.top - groups->data.sequence.items.start);
    rules->groups = calloc(count ? count : 1, sizeof *rules->groups);
    if (!rules->groups) {
        lfail(&L, groups, "out of memory");
        goto done;
    }
    for (yaml_node_item_t *it = groups->data.sequence.items.start; it < groups->data.sequence.items.top;
         it++) {
        yaml_node_t *gn = yaml_document_get_node(&doc, *it);
        alert_group_t *g = &rules->groups[rules->ngroups++];
        if (load_group(&L, gn, g) != 0)
            goto done;
        for (size_t j = 0; j + 1 < rules->ngroups; j++)
            if (!strcmp(rules->groups[j].name, g->name)) {
                lfail(&L, gn, "groupname \"%s\" is repeated in the same file", g->name);
                goto done;
            }
    }
    rc = 0;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc == 0)
        *out = rules;
    else
        kiln_alert_rules_free(rules);
    return rc;
}

int kiln_alert_rules_load(const char *path, kiln_alert_rules_t **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open rule file: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    while (text) {
        if (len == cap) {
            if (cap >= RULES_MAX_BYTES) {
                free(text);
                fclose(f);
                if (err && errlen)
                    snprintf(err, errlen, "%s: rule file larger than %u bytes", path, RULES_MAX_BYTES);
                return -1;
            }
            char *t = realloc(text, cap * 2);
            if (!t) {
                free(text);
                text = NULL;
                break;
            }
            text = t;
            cap *= 2;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int read_error = ferror(f);
    fclose(f);
    if (!text || read_error) {
        free(text);
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read rule file%s", path, read_error ? "" : ": out of memory");
        return -1;
    }
    int rc = kiln_alert_rules_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

size_t kiln_alert_rules_count(const kiln_alert_rules_t *rules)
{
    size_t n = 0;
    for (size_t i = 0; rules && i < rules->ngroups; i++)
        n += rules->groups[i].nrules;
    return n;
}
