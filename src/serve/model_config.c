/*
 * model_config.c - config.pbtxt (protobuf text format) parsing.
 *
 * The text is first read into a small tree of fields (name, scalar text or
 * nested message, line), then the tree is mapped onto kiln_model_config_t.
 * Splitting syntax from meaning keeps each half simple and lets unknown
 * fields be named in warnings with their line.  Lists in brackets
 * ("dims: [ 3, 224, 224 ]") are flattened into repeated fields, which is
 * what protobuf's text format means by them.  Nesting depth and field
 * counts are bounded, so hostile input cannot exhaust the stack or memory.
 */
#include "serve/model_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define PBTXT_MAX_DEPTH 16
#define PBTXT_MAX_FIELDS 20000

typedef struct pbtxt_field {
    char *name;
    char *value;                 /* scalar text (strings unquoted), NULL for a message */
    bool quoted;
    int line;
    struct pbtxt_field *children; /* message fields */
    int n_children, cap_children;
} pbtxt_field_t;

typedef struct pbtxt_parser {
    const char *p, *end;
    int line;
    int fields;
    char error[160];
} pbtxt_parser_t;

static void skip_space(pbtxt_parser_t *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '\n') {
            ps->line++;
            ps->p++;
        } else if (isspace((unsigned char)c) || c == ',' || c == ';') {
            ps->p++;
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else {
            break;
        }
    }
}

static bool fail(pbtxt_parser_t *ps, const char *msg)
{
    if (!ps->error[0])
        snprintf(ps->error, sizeof ps->error, "config.pbtxt:%d: %s", ps->line, msg);
    return false;
}

static bool is_ident_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '+'; }

static char *read_token(pbtxt_parser_t *ps, bool *quoted)
{
    skip_space(ps);
    *quoted = false;
    if (ps->p >= ps->end)
        return NULL;
    if (*ps->p == '"' || *ps->p == '\'') {
        char q = *ps->p++;
        size_t cap = 64, n = 0;
        char *s = malloc(cap);
        if (!s)
            return NULL;
        while (ps->p < ps->end && *ps->p != q) {
            char c = *ps->p++;
            if (c == '\n') {
                free(s);
                fail(ps, "string runs past the end of the line");
                return NULL;
            }
            if (c == '\\' && ps->p < ps->end) {
                char e = *ps->p++;
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
            }
            if (n + 2 > cap) {
                cap *= 2;
                char *t = realloc(s, cap);
                if (!t) {
                    free(s);
                    return NULL;
                }
                s = t;
            }
            s[n++] = c;
        }
        if (ps->p >= ps->end) {
            free(s);
            fail(ps, "unterminated string");
            return NULL;
        }
        ps->p++;
        s[n] = '\0';
        *quoted = true;
        return s;
    }
    const char *start = ps->p;
    while (ps->p < ps->end && is_ident_char(*ps->p))
        ps->p++;
    if (ps->p == start)
        return NULL;
    return strndup(start, (size_t)(ps->p - start));
}

static void free_field(pbtxt_field_t *f)
{
    for (int i = 0; i < f->n_children; i++)
        free_field(&f->children[i]);
    free(f->children);
    free(f->name);
    free(f->value);
}

static pbtxt_field_t *add_child(pbtxt_parser_t *ps, pbtxt_field_t *parent)
{
    if (++ps->fields > PBTXT_MAX_FIELDS) {
        fail(ps, "too many fields");
        return NULL;
    }
    if (parent->n_children == parent->cap_children) {
        int cap = parent->cap_children ? parent->cap_children * 2 : 8;
        pbtxt_field_t *c = realloc(parent->children, (size_t)cap * sizeof *c);
        if (!c) {
            fail(ps, "out of memory");
            return NULL;
        }
        parent->children = c;
        parent->cap_children = cap;
    }
    pbtxt_field_t *f = &parent->children[parent->n_children++];
    memset(f, 0, sizeof *f);
    f->line = ps->line;
    return f;
}

static bool parse_message(pbtxt_parser_t *ps, pbtxt_field_t *msg, char close, int depth);

/* Parses what follows "name:" or "name" — a scalar, a message or a list —
 * adding one field per value to msg. */
static bool parse_value(pbtxt_parser_t *ps, pbtxt_field_t *msg, const char *name, int depth)
{
    skip_space(ps);
    if (ps->p >= ps->end)
        return fail(ps, "a value is missing at the end of the file");
    char c = *ps->p;
    if (c == '{' || c == '<') {
        ps->p++;
        pbtxt_field_t *f = add_child(ps, msg);
        if (!f || !(f->name = strdup(name)))
            return fail(ps, "out of memory");
        return parse_message(ps, f, c == '{' ? '}' : '>', depth + 1);
    }
    if (c == '[') {
        ps->p++;
        for (;;) {
            skip_space(ps);
            if (ps->p >= ps->end)
                return fail(ps, "expected ']'");
            if (*ps->p == ']') {
                ps->p++;
                return true;
            }
            if (!parse_value(ps, msg, name, depth))
                return false;
        }
    }
    bool quoted;
    char *tok = read_token(ps, &quoted);
    if (!tok)
        return fail(ps, ps->error[0] ? ps->error : "expected a value");
    /* adjacent string literals concatenate */
    while (quoted) {
        skip_space(ps);
        if (ps->p >= ps->end || (*ps->p != '"' && *ps->p != '\''))
            break;
        bool q2;
        char *more = read_token(ps, &q2);
        if (!more) {
            free(tok);
            return false;
        }
        char *joined = malloc(strlen(tok) + strlen(more) + 1);
        if (joined) {
            strcpy(joined, tok);
            strcat(joined, more);
        }
        free(tok);
        free(more);
        if (!joined)
            return fail(ps, "out of memory");
        tok = joined;
    }
    pbtxt_field_t *f = add_child(ps, msg);
    if (!f) {
        free(tok);
        return false;
    }
    f->name = strdup(name);
    f->value = tok;
    f->quoted = quoted;
    return f->name != NULL || fail(ps, "out of memory");
}

static bool parse_message(pbtxt_parser_t *ps, pbtxt_field_t *msg, char close, int depth)
{
    if (depth > PBTXT_MAX_DEPTH)
        return fail(ps, "messages are nested too deeply");
    for (;;) {
        skip_space(ps);
        if (ps->p >= ps->end) {
            if (close)
                return fail(ps, close == '}' ? "expected '}' before the end of the file" : "expected '>'");
            return true;
        }
        if (close && *ps->p == close) {
            ps->p++;
            return true;
        }
        bool quoted;
        char *name = read_token(ps, &quoted);
        if (!name || quoted || !(isalpha((unsigned char)name[0]) || name[0] == '_')) {
            free(name);
            char msg_text[64];
            snprintf(msg_text, sizeof msg_text, "expected a field name, found '%c'",
                     ps->p < ps->end ? *ps->p : '?');
            return fail(ps, msg_text);
        }
        skip_space(ps);
        bool colon = ps->p < ps->end && *ps->p == ':';
        if (colon)
            ps->p++;
        skip_space(ps);
        if (!colon && (ps->p >= ps->end || (*ps->p != '{' && *ps->p != '<' && *ps->p != '['))) {
            free(name);
            return fail(ps, "expected ':' or '{' after a field name");
        }
        bool ok = parse_value(ps, msg, name, depth);
        free(name);
        if (!ok)
            return false;
    }
}

/* ---- mapping the tree onto the config ---------------------------------- */

static void warn(kiln_model_config_t *c, const pbtxt_field_t *f, const char *where)
{
    if (c->n_warnings < KILN_CONFIG_MAX_WARNINGS)
        snprintf(c->warnings[c->n_warnings++], sizeof c->warnings[0], "config.pbtxt:%d: unknown field '%s'%s%s",
                 f->line, f->name, where ? " in " : "", where ? where : "");
}

static kiln_status_t bad_value(const pbtxt_field_t *f, const char *expected)
{
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "config.pbtxt:%d: field '%s' expects %s, got '%s'", f->line,
                     f->name, expected, f->value ? f->value : "{...}");
}

static kiln_status_t get_int(const pbtxt_field_t *f, int64_t lo, int64_t hi, int64_t *out)
{
    if (!f->value || f->quoted)
        return bad_value(f, "a number");
    char *end;
    errno = 0;
    long long v = strtoll(f->value, &end, 10);
    if (*end || errno || v < lo || v > hi) {
        char range[96];
        snprintf(range, sizeof range, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
        return bad_value(f, range);
    }
    *out = v;
    return KILN_OK;
}

static kiln_status_t get_string(const pbtxt_field_t *f, char *dst, size_t size)
{
    if (!f->value)
        return bad_value(f, "a string");
    if (strlen(f->value) >= size)
        return bad_value(f, "a shorter string");
    snprintf(dst, size, "%s", f->value);
    return KILN_OK;
}

static kiln_status_t map_dims(const pbtxt_field_t *f, int *rank, int64_t *dims)
{
    if (*rank >= KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "config.pbtxt:%d: more than %d dims", f->line, KILN_MAX_RANK);
    int64_t v;
    kiln_status_t st = get_int(f, -1, INT32_MAX, &v);
    if (st)
        return st;
    dims[(*rank)++] = v;
    return KILN_OK;
}

static kiln_status_t map_io(kiln_model_config_t *c, const pbtxt_field_t *f, kiln_io_config_t *io)
{
    memset(io, 0, sizeof *io);
    kiln_status_t st = KILN_OK;
    for (int i = 0; i < f->n_children && !st; i++) {
        const pbtxt_field_t *k = &f->children[i];
        if (!strcmp(k->name, "name"))
            st = get_string(k, io->name, sizeof io->name);
        else if (!strcmp(k->name, "data_type")) {
            io->dtype = k->value ? kiln_triton_type_to_dtype(k->value) : KILN_DTYPE_UNDEFINED;
            if (io->dtype == KILN_DTYPE_UNDEFINED)
                st = bad_value(k, "a data type such as TYPE_FP32");
        } else if (!strcmp(k->name, "dims"))
            st = map_dims(k, &io->rank, io->dims);
        else if (!strcmp(k->name, "reshape")) {
            io->has_reshape = true;
            for (int j = 0; j < k->n_children && !st; j++) {
                if (!strcmp(k->children[j].name, "shape"))
                    st = map_dims(&k->children[j], &io->reshape_rank, io->reshape);
                else
                    warn(c, &k->children[j], "reshape");
            }
        } else if (!strcmp(k->name, "format") || !strcmp(k->name, "is_shape_tensor") ||
                   !strcmp(k->name, "label_filename") || !strcmp(k->name, "optional") ||
                   !strcmp(k->name, "allow_ragged_batch")) {
            warn(c, k, f->name);
        } else {
            warn(c, k, f->name);
        }
    }
    if (!st && !io->name[0])
        st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "config.pbtxt:%d: %s without a name", f->line, f->name);
    return st;
}

static kiln_status_t map_dynamic_batching(kiln_model_config_t *c, const pbtxt_field_t *f)
{
    c->dynamic_batching = true;
    kiln_status_t st = KILN_OK;
    for (int i = 0; i < f->n_children && !st; i++) {
        const pbtxt_field_t *k = &f->children[i];
        int64_t v;
        if (!strcmp(k->name, "preferred_batch_size")) {
            if (c->n_preferred >= KILN_CONFIG_MAX_PREFERRED)
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "config.pbtxt:%d: too many preferred sizes", k->line);
            if (!(st = get_int(k, 1, INT32_MAX, &v)))
                c->preferred_batch_size[c->n_preferred++] = (int)v;
        } else if (!strcmp(k->name, "max_queue_delay_microseconds")) {
            if (!(st = get_int(k, 0, INT64_MAX / 1000, &v)))
                c->max_queue_delay_us = v;
        } else if (!strcmp(k->name, "default_queue_policy")) {
            for (int j = 0; j < k->n_children && !st; j++) {
                const pbtxt_field_t *q = &k->children[j];
                if (!strcmp(q->name, "max_queue_size")) {
                    if (!(st = get_int(q, 0, INT32_MAX, &v)))
                        c->max_queue_size = (int)v;
                } else if (!strcmp(q->name, "default_timeout_microseconds")) {
                    if (!(st = get_int(q, 0, INT64_MAX / 1000, &v)))
                        c->default_timeout_us = v;
                } else {
                    warn(c, q, "default_queue_policy");
                }
            }
        } else {
            warn(c, k, "dynamic_batching");
        }
    }
    return st;
}

static kiln_status_t map_config(kiln_model_config_t *c, const pbtxt_field_t *root)
{
    kiln_status_t st = KILN_OK;
    int instance_groups = 0;
    for (int i = 0; i < root->n_children && !st; i++) {
        const pbtxt_field_t *f = &root->children[i];
        int64_t v;
        if (!strcmp(f->name, "name"))
            st = get_string(f, c->name, sizeof c->name);
        else if (!strcmp(f->name, "platform"))
            st = get_string(f, c->platform, sizeof c->platform);
        else if (!strcmp(f->name, "backend"))
            st = get_string(f, c->backend, sizeof c->backend);
        else if (!strcmp(f->name, "max_batch_size")) {
            if (!(st = get_int(f, 0, 1 << 20, &v)))
                c->max_batch_size = (int)v;
        } else if (!strcmp(f->name, "input") || !strcmp(f->name, "output")) {
            bool in = !strcmp(f->name, "input");
            int *n = in ? &c->n_inputs : &c->n_outputs;
            if (*n >= KILN_CONFIG_MAX_IO)
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "config.pbtxt:%d: more than %d %ss", f->line,
                                 KILN_CONFIG_MAX_IO, f->name);
            if (f->value)
                return bad_value(f, "a message { ... }");
            st = map_io(c, f, in ? &c->inputs[*n] : &c->outputs[*n]);
            if (!st)
                (*n)++;
        } else if (!strcmp(f->name, "dynamic_batching")) {
            st = map_dynamic_batching(c, f);
        } else if (!strcmp(f->name, "instance_group")) {
            int count = 1;
            for (int j = 0; j < f->n_children && !st; j++) {
                const pbtxt_field_t *k = &f->children[j];
                if (!strcmp(k->name, "count")) {
                    if (!(st = get_int(k, 1, 256, &v)))
                        count = (int)v;
                } else if (!strcmp(k->name, "kind")) {
                    st = get_string(k, c->instance_kind, sizeof c->instance_kind);
                } else {
                    warn(c, k, "instance_group");
                }
            }
            /* instance_group is repeated: the instances of all groups add up */
            c->instance_count = instance_groups++ ? c->instance_count + count : count;
        } else if (!strcmp(f->name, "version_policy")) {
            for (int j = 0; j < f->n_children && !st; j++) {
                const pbtxt_field_t *k = &f->children[j];
                if (!strcmp(k->name, "latest")) {
                    c->version_policy = KILN_VERSIONS_LATEST;
                    for (int m = 0; m < k->n_children && !st; m++)
                        if (!strcmp(k->children[m].name, "num_versions")) {
                            if (!(st = get_int(&k->children[m], 1, KILN_CONFIG_MAX_VERSIONS, &v)))
                                c->num_versions = (int)v;
                        } else {
                            warn(c, &k->children[m], "latest");
                        }
                } else if (!strcmp(k->name, "all")) {
                    c->version_policy = KILN_VERSIONS_ALL;
                } else if (!strcmp(k->name, "specific")) {
                    c->version_policy = KILN_VERSIONS_SPECIFIC;
                    for (int m = 0; m < k->n_children && !st; m++) {
                        if (strcmp(k->children[m].name, "versions")) {
                            warn(c, &k->children[m], "specific");
                            continue;
                        }
                        if (c->n_versions >= KILN_CONFIG_MAX_VERSIONS)
                            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "config.pbtxt:%d: too many versions",
                                             k->children[m].line);
                        if (!(st = get_int(&k->children[m], 1, INT64_MAX, &v)))
                            c->versions[c->n_versions++] = v;
                    }
                } else {
                    warn(c, k, "version_policy");
                }
            }
        } else if (!strcmp(f->name, "parameters")) {
            const pbtxt_field_t *key = NULL, *val = NULL;
            for (int j = 0; j < f->n_children; j++) {
                if (!strcmp(f->children[j].name, "key"))
                    key = &f->children[j];
                else if (!strcmp(f->children[j].name, "value"))
                    for (int m = 0; m < f->children[j].n_children; m++)
                        if (!strcmp(f->children[j].children[m].name, "string_value"))
                            val = &f->children[j].children[m];
            }
            if (key && key->value && c->n_params < KILN_CONFIG_MAX_PARAMS) {
                snprintf(c->param_keys[c->n_params], sizeof c->param_keys[0], "%s", key->value);
                snprintf(c->param_values[c->n_params], sizeof c->param_values[0], "%s",
                         val && val->value ? val->value : "");
                c->n_params++;
            }
        } else {
            warn(c, f, NULL);
        }
    }
    return st;
}

void kiln_model_config_init(kiln_model_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->instance_count = 1;
    c->num_versions = 1;
    snprintf(c->instance_kind, sizeof c->instance_kind, "KIND_CPU");
}

kiln_status_t kiln_model_config_parse(const char *text, size_t len, kiln_model_config_t *c)
{
    kiln_model_config_init(c);
    pbtxt_parser_t ps = {.p = text, .end = text + len, .line = 1};
    pbtxt_field_t root = {0};
    kiln_status_t st = KILN_OK;
    if (memchr(text, '\0', len))
        st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "config.pbtxt: contains a NUL byte");
    else if (!parse_message(&ps, &root, 0, 0))
        st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s", ps.error);
    else
        st = map_config(c, &root);
    free_field(&root);
    if (!st && c->instance_count < 1)
        c->instance_count = 1;
    return st;
}

/* ---- type names ----------------------------------------------------------- */

static const struct {
    kiln_dtype_t dtype;
    const char *triton;
    const char *kserve;
} type_names[] = {
    {KILN_DTYPE_BOOL, "TYPE_BOOL", "BOOL"},       {KILN_DTYPE_UINT8, "TYPE_UINT8", "UINT8"},
    {KILN_DTYPE_UINT16, "TYPE_UINT16", "UINT16"}, {KILN_DTYPE_UINT32, "TYPE_UINT32", "UINT32"},
    {KILN_DTYPE_UINT64, "TYPE_UINT64", "UINT64"}, {KILN_DTYPE_INT8, "TYPE_INT8", "INT8"},
    {KILN_DTYPE_INT16, "TYPE_INT16", "INT16"},    {KILN_DTYPE_INT32, "TYPE_INT32", "INT32"},
    {KILN_DTYPE_INT64, "TYPE_INT64", "INT64"},    {KILN_DTYPE_FLOAT16, "TYPE_FP16", "FP16"},
    {KILN_DTYPE_FLOAT32, "TYPE_FP32", "FP32"},    {KILN_DTYPE_FLOAT64, "TYPE_FP64", "FP64"},
    {KILN_DTYPE_STRING, "TYPE_STRING", "BYTES"},  {KILN_DTYPE_BFLOAT16, "TYPE_BF16", "BF16"},
};

kiln_dtype_t kiln_triton_type_to_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (!strcmp(type_names[i].triton, name))
            return type_names[i].dtype;
    return KILN_DTYPE_UNDEFINED;
}

const char *kiln_dtype_to_triton_type(kiln_dtype_t dtype)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (type_names[i].dtype == dtype)
            return type_names[i].triton;
    return "TYPE_INVALID";
}

kiln_dtype_t kiln_kserve_type_to_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (!strcmp(type_names[i].kserve, name))
            return type_names[i].dtype;
    return KILN_DTYPE_UNDEFINED;
}

const char *kiln_dtype_to_kserve_type(kiln_dtype_t dtype)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (type_names[i].dtype == dtype)
            return type_names[i].kserve;
    return "INVALID";
}
