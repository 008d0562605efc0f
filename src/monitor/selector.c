/*
 * selector.c - parser and matcher for PromQL series selectors (selector.h).
 *
 * A hand-written recursive-descent scanner over a byte range: the text
 * arrives from HTTP query strings and rule files, so every branch checks
 * the remaining length, and errors say which column and what was expected.
 * Regular expressions use POSIX ERE (glibc's regcomp), anchored like
 * PromQL's; back-references and large bounded repeats are refused because
 * they make matching or compiling cost grow without bound on hostile input.
 */
#include "monitor/selector.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define REGEX_MAX_TEXT 1024
#define REGEX_MAX_BOUND 100
#define REGEX_MAX_BOUNDED 4
#define REGEX_MAX_COST 4096.0

typedef struct scanner {
    const char *s;
    size_t len, pos;
} scanner_t;

static void skip_space(scanner_t *sc)
{
    while (sc->pos < sc->len && isspace((unsigned char)sc->s[sc->pos]))
        sc->pos++;
}

static int peek(const scanner_t *sc) { return sc->pos < sc->len ? (unsigned char)sc->s[sc->pos] : -1; }

static kiln_status_t fail_at(const scanner_t *sc, const char *what)
{
    int c = peek(sc);
    if (c < 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: column %zu: expected %s, found end of text",
                         sc->pos + 1, what);
    if (isprint(c))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: column %zu: expected %s, found '%c'",
                         sc->pos + 1, what, c);
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: column %zu: expected %s, found byte 0x%02x",
                     sc->pos + 1, what, c);
}

static int ident_start(int c, int colon) { return isalpha(c) || c == '_' || (colon && c == ':'); }
static int ident_char(int c, int colon) { return isalnum(c) || c == '_' || (colon && c == ':'); }

/* Reads an identifier (colon allowed in metric names); NULL with nothing there. */
static char *read_ident(scanner_t *sc, int colon)
{
    size_t start = sc->pos;
    if (peek(sc) < 0 || !ident_start(peek(sc), colon))
        return NULL;
    while (peek(sc) >= 0 && ident_char(peek(sc), colon))
        sc->pos++;
    return strndup(sc->s + start, sc->pos - start);
}

/* Reads a quoted string: "..." and '...' with Go-style escapes, `...` raw. */
static kiln_status_t read_string(scanner_t *sc, char **out)
{
    int q = peek(sc);
    if (q != '"' && q != '\'' && q != '`')
        return fail_at(sc, "a quoted string");
    size_t open = sc->pos++;
    char *buf = malloc(sc->len - sc->pos + 1);
    if (!buf)
        return kiln_fail(KILN_ERR_NO_MEMORY, "selector: out of memory");
    size_t n = 0;
    for (;;) {
        int c = peek(sc);
        if (c < 0) {
            free(buf);
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                             "selector: column %zu: string opened here is not closed", open + 1);
        }
        sc->pos++;
        if (c == q)
            break;
        if (c == '\\' && q != '`') {
            int e = peek(sc);
            sc->pos++;
            switch (e) {
            case 'n': buf[n++] = '\n'; break;
            case 't': buf[n++] = '\t'; break;
            case 'r': buf[n++] = '\r'; break;
            case '\\': buf[n++] = '\\'; break;
            case '"': buf[n++] = '"'; break;
            case '\'': buf[n++] = '\''; break;
            default:
                /* Unknown escapes keep the backslash (regexes use \. \d ...). */
                if (e < 0) {
                    free(buf);
                    return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                                     "selector: column %zu: string opened here is not closed", open + 1);
                }
                buf[n++] = '\\';
                buf[n++] = (char)e;
            }
            continue;
        }
        if (c == '\0') {
            free(buf);
            sc->pos--;
            return fail_at(sc, "a string without NUL bytes");
        }
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    *out = buf;
    return KILN_OK;
}

/* Refuses regexes whose compile or match cost could explode.  glibc's
 * regcomp copies the subtree under a repeat ("(x)+" becomes "(x)(x)*",
 * "x{3}" becomes "xxx"), so nested repeats grow the compiled form
 * multiplicatively; the product of the copies is bounded here.  Stacked
 * operators ("a++", "a*?") and back-references are refused outright, as
 * PromQL's RE2 refuses them too. */
static kiln_status_t check_regex(const char *re, size_t col)
{
    if (strlen(re) > REGEX_MAX_TEXT)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: column %zu: regex longer than %d bytes",
                         col, REGEX_MAX_TEXT);
    double cost = 1;
    int prev_rep = 0;    /* the previous token was a repetition operator */
    int prev_group = 0;  /* the previous token closed a group */
    int bounded = 0;
    for (const char *p = re; *p; p++) {
        int rep = 0;
        double copies = 1;
        if (*p == '\\') {
            if (p[1] >= '1' && p[1] <= '9')
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                                 "selector: column %zu: back-references are not supported in regexes", col);
            if (p[1])
                p++;
        } else if (*p == '[') {
            /* A bracket expression: ']' right after '[' or '[^' is literal. */
            const char *q = p + 1;
            if (*q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']')
                q++;
            if (!*q)
                break; /* regcomp reports the unbalanced bracket */
            p = q;
        } else if (*p == '*' || *p == '+' || *p == '?') {
            rep = 1;
            copies = prev_group ? 2 : 1;
        } else if (*p == '{' && isdigit((unsigned char)p[1])) {
            rep = 1;
            bounded++;
            long most = 0;
            const char *q = p + 1;
            while (*q && *q != '}') {
                if (isdigit((unsigned char)*q)) {
                    long v = strtol(q, (char **)&q, 10);
                    if (v > REGEX_MAX_BOUND)
                        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                                         "selector: column %zu: regex repeat count above %d", col,
                                         REGEX_MAX_BOUND);
                    if (v > most)
                        most = v;
                } else {
                    q++;
                }
            }
            copies = (double)most + 1;
            if (*q)
                p = q;
        }
        if (rep && prev_rep)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                             "selector: column %zu: nested repetition operator in regex", col);
        cost *= copies;
        if (cost > REGEX_MAX_COST)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                             "selector: column %zu: regex too costly (nested repeats)", col);
        prev_rep = rep;
        prev_group = *p == ')';
    }
    if (bounded > REGEX_MAX_BOUNDED)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                         "selector: column %zu: more than %d bounded repeats in one regex", col,
                         REGEX_MAX_BOUNDED);
    return KILN_OK;
}

static void matcher_clear(kiln_matcher_t *m)
{
    if (m->op == KILN_MATCH_REGEX || m->op == KILN_MATCH_NOT_REGEX)
        regfree(&m->re);
    free(m->name);
    free(m->value);
}

void kiln_selector_free(kiln_selector_t *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->n_matchers; i++)
        matcher_clear(&sel->matchers[i]);
    free(sel->matchers);
    free(sel->metric);
    free(sel);
}

static bool matcher_matches(const kiln_matcher_t *m, const char *v)
{
    switch (m->op) {
    case KILN_MATCH_EQUAL: return strcmp(v, m->value) == 0;
    case KILN_MATCH_NOT_EQUAL: return strcmp(v, m->value) != 0;
    case KILN_MATCH_REGEX: return regexec(&m->re, v, 0, NULL, 0) == 0;
    case KILN_MATCH_NOT_REGEX: return regexec(&m->re, v, 0, NULL, 0) != 0;
    }
    return false;
}

/* Parses one `name op "value"` into m (which is cleared on failure). */
static kiln_status_t parse_matcher(scanner_t *sc, kiln_matcher_t *m)
{
    memset(m, 0, sizeof *m);
    m->name = read_ident(sc, 0);
    if (!m->name)
        return fail_at(sc, "a label name");
    skip_space(sc);
    int c = peek(sc);
    int c2 = sc->pos + 1 < sc->len ? (unsigned char)sc->s[sc->pos + 1] : -1;
    if (c == '=' && c2 == '~') {
        m->op = KILN_MATCH_REGEX;
        sc->pos += 2;
    } else if (c == '!' && c2 == '~') {
        m->op = KILN_MATCH_NOT_REGEX;
        sc->pos += 2;
    } else if (c == '!' && c2 == '=') {
        m->op = KILN_MATCH_NOT_EQUAL;
        sc->pos += 2;
    } else if (c == '=') {
        m->op = KILN_MATCH_EQUAL;
        sc->pos += 1;
    } else {
        free(m->name);
        return fail_at(sc, "one of = != =~ !~");
    }
    skip_space(sc);
    size_t col = sc->pos + 1;
    kiln_status_t st = read_string(sc, &m->value);
    if (st) {
        free(m->name);
        return st;
    }
    if (m->op == KILN_MATCH_REGEX || m->op == KILN_MATCH_NOT_REGEX) {
        st = check_regex(m->value, col);
        if (!st) {
            size_t n = strlen(m->value) + 8;
            char *anchored = malloc(n);
            if (!anchored) {
                st = kiln_fail(KILN_ERR_NO_MEMORY, "selector: out of memory");
            } else {
                snprintf(anchored, n, "^(%s)$", m->value);
                int rc = regcomp(&m->re, anchored, REG_EXTENDED | REG_NOSUB);
                free(anchored);
                if (rc) {
                    char msg[128];
                    regerror(rc, &m->re, msg, sizeof msg);
                    regfree(&m->re);
                    st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: column %zu: bad regex \"%s\": %s",
                                   col, m->value, msg);
                }
            }
        }
        if (st) {
            free(m->name);
            free(m->value);
            return st;
        }
    }
    return KILN_OK;
}

kiln_status_t kiln_selector_parse_prefix(const char *text, size_t len, kiln_selector_t **out,
                                         size_t *consumed)
{
    *out = NULL;
    if (!text)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: no text");
    if (len > KILN_SELECTOR_MAX_TEXT)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: longer than %d bytes",
                         KILN_SELECTOR_MAX_TEXT);
    scanner_t sc = {text, len, 0};
    kiln_selector_t *sel = calloc(1, sizeof *sel);
    if (!sel)
        return kiln_fail(KILN_ERR_NO_MEMORY, "selector: out of memory");
    kiln_status_t st = KILN_OK;
    skip_space(&sc);
    if (peek(&sc) >= 0 && ident_start(peek(&sc), 1)) {
        sel->metric = read_ident(&sc, 1);
        if (!sel->metric) {
            kiln_selector_free(sel);
            return kiln_fail(KILN_ERR_NO_MEMORY, "selector: out of memory");
        }
        skip_space(&sc);
    }
    if (peek(&sc) == '{') {
        sc.pos++;
        skip_space(&sc);
        size_t cap = 0;
        while (peek(&sc) != '}') {
            if (sel->n_matchers == cap) {
                cap = cap ? cap * 2 : 4;
                kiln_matcher_t *nm = realloc(sel->matchers, cap * sizeof *nm);
                if (!nm) {
                    st = kiln_fail(KILN_ERR_NO_MEMORY, "selector: out of memory");
                    goto done;
                }
                sel->matchers = nm;
            }
            st = parse_matcher(&sc, &sel->matchers[sel->n_matchers]);
            if (st)
                goto done;
            sel->n_matchers++;
            skip_space(&sc);
            if (peek(&sc) == ',') {
                sc.pos++;
                skip_space(&sc);
            } else if (peek(&sc) != '}') {
                st = fail_at(&sc, "',' or '}'");
                goto done;
            }
        }
        sc.pos++;
    } else if (!sel->metric) {
        st = fail_at(&sc, "a metric name or '{'");
        goto done;
    }
    /* PromQL refuses selectors that would match every series. */
    bool narrowing = sel->metric != NULL;
    for (size_t i = 0; i < sel->n_matchers && !narrowing; i++)
        if (!matcher_matches(&sel->matchers[i], ""))
            narrowing = true;
    if (!narrowing)
        st = kiln_fail(KILN_ERR_INVALID_ARGUMENT, "selector: needs a metric name or a matcher that "
                       "does not match the empty string");
done:
    if (st) {
        kiln_selector_free(sel);
        return st;
    }
    *consumed = sc.pos;
    *out = sel;
    return KILN_OK;
}

kiln_status_t kiln_selector_parse(const char *text, size_t len, kiln_selector_t **out)
{
    size_t used = 0;
    kiln_status_t st = kiln_selector_parse_prefix(text, len, out, &used);
    if (st)
        return st;
    scanner_t sc = {text, len, used};
    skip_space(&sc);
    if (sc.pos < len) {
        kiln_selector_free(*out);
        *out = NULL;
        return fail_at(&sc, "end of selector");
    }
    return KILN_OK;
}

bool kiln_selector_matches(const kiln_selector_t *sel, const char *metric,
                           const kiln_label_t *labels, size_t n_labels)
{
    if (sel->metric && strcmp(sel->metric, metric))
        return false;
    for (size_t i = 0; i < sel->n_matchers; i++) {
        const kiln_matcher_t *m = &sel->matchers[i];
        const char *v = "";
        if (!strcmp(m->name, "__name__")) {
            v = metric;
        } else {
            for (size_t j = 0; j < n_labels; j++)
                if (!strcmp(labels[j].name, m->name)) {
                    v = labels[j].value;
                    break;
                }
        }
        if (!matcher_matches(m, v))
            return false;
    }
    return true;
}
