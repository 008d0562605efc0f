/*
 * alert_expr.c - the PromQL subset a threshold alert needs: parsing and
 * evaluation.
 *
 * Accepted:   SELECTOR CMP NUMBER
 *             FUNC(SELECTOR[RANGE]) CMP NUMBER
 * with SELECTOR = metric_name{label="v", label!="v", label=~"re", label!~"re"}
 * (name or braces or both), FUNC one of avg_over_time, max_over_time,
 * min_over_time, rate, CMP one of > < >= <= == !=.  Anything else is refused
 * with the byte offset of the first token that leaves the subset, so a rule
 * author is told where, not just that, the file is wrong.
 *
 * A hand-written recursive-descent parser: the grammar is tiny and a
 * generated parser would hide the error positions we want to report.
 * Regular expressions are POSIX extended ones, anchored at both ends like
 * Prometheus's RE2 matchers.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/alert_internal.h"

/* ---- Durations ---------------------------------------------------------- */

int kiln_alert_parse_duration(const char *text, double *seconds)
{
    /* Units must come in this order, each at most once, like Prometheus's
     * model.ParseDuration: y w d h m s ms. */
    static const struct {
        const char *unit;
        double secs;
    } units[] = {{"y", 365 * 86400.0}, {"w", 7 * 86400.0}, {"d", 86400.0}, {"h", 3600.0},
                 {"m", 60.0},          {"s", 1.0},         {"ms", 0.001}};
    const char *p = text;
    if (!p || !*p)
        return -1;
    if (!strcmp(p, "0")) {
        *seconds = 0;
        return 0;
    }
    double total = 0;
    size_t next_unit = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -1;
        double num = 0;
        while (isdigit((unsigned char)*p)) {
            num = num * 10 + (*p - '0');
            if (num > 1e12)
                return -1;
            p++;
        }
        size_t ulen = 0;
        while (isalpha((unsigned char)p[ulen]))
            ulen++;
        if (ulen == 0)
            return -1;
        size_t u = next_unit;
        while (u < sizeof units / sizeof units[0] &&
               (strlen(units[u].unit) != ulen || strncmp(units[u].unit, p, ulen)))
            u++;
        if (u == sizeof units / sizeof units[0])
            return -1;
        total += num * units[u].secs;
        next_unit = u + 1;
        p += ulen;
    }
    *seconds = total;
    return 0;
}

/* ---- Lexing helpers ------------------------------------------------------ */

typedef struct parser {
    const char *s;
    size_t pos;
    size_t err_pos;
    char *msg;
    size_t msglen;
    int failed;
} parser_t;

static int fail_at(parser_t *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(parser_t *p, size_t pos, const char *fmt, ...)
{
    if (!p->failed) {
        p->failed = 1;
        p->err_pos = pos;
        if (p->msg && p->msglen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->msg, p->msglen, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static void skip_ws(parser_t *p)
{
    for (;;) {
        while (isspace((unsigned char)p->s[p->pos]))
            p->pos++;
        if (p->s[p->pos] == '#') { /* PromQL comments run to the end of the line */
            while (p->s[p->pos] && p->s[p->pos] != '\n')
                p->pos++;
            continue;
        }
        return;
    }
}

static int is_ident_start(char c, int metric)
{
    return isalpha((unsigned char)c) || c == '_' || (metric && c == ':');
}

static int is_ident_char(char c, int metric)
{
    return isalnum((unsigned char)c) || c == '_' || (metric && c == ':');
}

/* Reads an identifier (metric names allow ':'); malloc'd or NULL. */
static char *read_ident(parser_t *p, int metric)
{
    size_t start = p->pos;
    if (!is_ident_start(p->s[p->pos], metric))
        return NULL;
    while (is_ident_char(p->s[p->pos], metric))
        p->pos++;
    char *id = strndup(p->s + start, p->pos - start);
    if (!id)
        fail_at(p, start, "out of memory");
    return id;
}

/* Describes what stands at pos for a message: "'foo'", "'>'" or "the end". */
static void describe_at(const parser_t *p, size_t pos, char *out, size_t outlen)
{
    const char *s = p->s + pos;
    if (!*s) {
        snprintf(out, outlen, "the end of the expression");
        return;
    }
    size_t n = 0;
    if (is_ident_char(*s, 1))
        while (is_ident_char(s[n], 1) && n < 40)
            n++;
    else
        n = 1;
    snprintf(out, outlen, "'%.*s'", (int)n, s);
}

/* Reads a quoted string ("..", '..' or `..`) with Go's common escapes. */
static char *read_string(parser_t *p)
{
    size_t start = p->pos;
    char q = p->s[p->pos];
    if (q != '"' && q != '\'' && q != '`') {
        char what[64];
        describe_at(p, p->pos, what, sizeof what);
        fail_at(p, p->pos, "expected a quoted label value, found %s", what);
        return NULL;
    }
    p->pos++;
    size_t cap = 16, len = 0;
    char *out = malloc(cap);
    if (!out) {
        fail_at(p, start, "out of memory");
        return NULL;
    }
    for (;;) {
        char c = p->s[p->pos];
        if (c == '\0' || (c == '\n' && q != '`')) {
            free(out);
            fail_at(p, start, "unterminated string");
            return NULL;
        }
        p->pos++;
        if (c == q)
            break;
        if (c == '\\' && q != '`') {
            char e = p->s[p->pos];
            switch (e) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case '\\':
                c = '\\';
                break;
            case '"':
                c = '"';
                break;
            case '\'':
                c = '\'';
                break;
            default:
                /* Keep unknown escapes for the regex engine (e.g. \. in =~). */
                c = '\\';
                e = 0;
            }
            if (e)
                p->pos++;
        }
        if (len + 2 > cap) {
            cap *= 2;
            char *n = realloc(out, cap);
            if (!n) {
                free(out);
                fail_at(p, start, "out of memory");
                return NULL;
            }
            out = n;
        }
        out[len++] = c;
    }
    out[len] = '\0';
    return out;
}

/* ---- Selector ---------------------------------------------------------------- */

/* The longest regular expression a matcher may hold, and the largest
 * repetition count, as RE2 (Prometheus's engine) allows. */
#define REGEX_MAX_LEN 1024
#define REGEX_MAX_REPEAT 1000

/* Refuses what RE2 refuses and what makes glibc's regcomp blow up in time
 * or memory: a repetition operator right after another ("a++", "a*{2}"),
 * and counts {n,m} whose product over the expression passes
 * REGEX_MAX_REPEAT (so "(a{100}){100}" is refused as RE2 refuses it; a
 * threshold rule's label matcher never needs that).  Returns NULL when
 * fine, else the problem. */
static const char *regex_precheck(const char *re)
{
    if (strlen(re) > REGEX_MAX_LEN)
        return "longer than 1024 characters";
    int after_repeat = 0, in_class = 0, depth = 0;
    double product = 1;
    for (const char *p = re; *p; p++) {
        if (in_class) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == ']')
                in_class = 0;
            continue;
        }
        int repeat = 0;
        switch (*p) {
        case '\\':
            if (p[1])
                p++;
            break;
        case '[':
            in_class = 1;
            if (p[1] == ']')
                p++;
            break;
        case '(':
            if (++depth > 100)
                return "nested too deeply";
            break;
        case ')':
            depth--;
            break;
        case '*':
        case '+':
        case '?':
            repeat = 1;
            break;
        case '{': {
            char *end;
            long lo = strtol(p + 1, &end, 10), hi = lo;
            if (end == p + 1 || lo < 0)
                break; /* a literal '{' */
            if (*end == ',')
                hi = isdigit((unsigned char)end[1]) ? strtol(end + 1, &end, 10) : (end++, lo);
            if (*end != '}')
                break;
            if (lo > REGEX_MAX_REPEAT || hi > REGEX_MAX_REPEAT)
                return "repetition count above 1000";
            product *= (double)(hi > 1 ? hi : 1);
            if (product > REGEX_MAX_REPEAT)
                return "repetition counts multiply above 1000";
            p = end;
            repeat = 1;
            break;
        }
        }
        if (repeat && after_repeat)
            return "bad repetition operator (two in a row)";
        after_repeat = repeat;
    }
    return NULL;
}

static int add_matcher(parser_t *p, struct kiln_alert_selector *sel, char *name, alert_match_op_t op,
                       char *value, size_t value_pos)
{
    alert_matcher_t *m = realloc(sel->matchers, (sel->nmatchers + 1) * sizeof *m);
    if (!m) {
        free(name);
        free(value);
        return fail_at(p, value_pos, "out of memory");
    }
    sel->matchers = m;
    alert_matcher_t *mt = &sel->matchers[sel->nmatchers];
    memset(mt, 0, sizeof *mt);
    mt->name = name;
    mt->value = value;
    mt->op = op;
    sel->nmatchers++;
    if (op == ALERT_MATCH_RE || op == ALERT_MATCH_NRE) {
        const char *why = regex_precheck(value);
        if (why)
            return fail_at(p, value_pos, "invalid regular expression: %s", why);
        size_t n = strlen(value) + 5;
        char *anchored = malloc(n);
        if (!anchored)
            return fail_at(p, value_pos, "out of memory");
        snprintf(anchored, n, "^(%s)$", value);
        int rc = regcomp(&mt->re, anchored, REG_EXTENDED | REG_NOSUB);
        free(anchored);
        if (rc != 0) {
            char why[128];
            regerror(rc, &mt->re, why, sizeof why);
            regfree(&mt->re);
            return fail_at(p, value_pos, "invalid regular expression \"%s\": %s", value, why);
        }
        mt->has_re = 1;
    }
    return 0;
}

static int matcher_matches(const alert_matcher_t *m, const char *v)
{
    if (!v)
        v = ""; /* an absent label matches like an empty one, as in Prometheus */
    switch (m->op) {
    case ALERT_MATCH_EQ:
        return strcmp(v, m->value) == 0;
    case ALERT_MATCH_NE:
        return strcmp(v, m->value) != 0;
    case ALERT_MATCH_RE:
        return regexec(&m->re, v, 0, NULL, 0) == 0;
    case ALERT_MATCH_NRE:
        return regexec(&m->re, v, 0, NULL, 0) != 0;
    }
    return 0;
}

/* Parses {a="b", c=~"d"} (p->pos at '{'). */
static int parse_matchers(parser_t *p, struct kiln_alert_selector *sel)
{
    p->pos++; /* '{' */
    for (;;) {
        skip_ws(p);
        if (p->s[p->pos] == '}') {
            p->pos++;
            return 0;
        }
        size_t name_pos = p->pos;
        char *name = read_ident(p, 0);
        if (!name) {
            if (p->failed)
                return -1;
            char what[64];
            describe_at(p, p->pos, what, sizeof what);
            return fail_at(p, p->pos, "expected a label name or '}', found %s", what);
        }
        skip_ws(p);
        alert_match_op_t op;
        const char *s = p->s + p->pos;
        if (s[0] == '=' && s[1] == '~') {
            op = ALERT_MATCH_RE;
            p->pos += 2;
        } else if (s[0] == '!' && s[1] == '~') {
            op = ALERT_MATCH_NRE;
            p->pos += 2;
        } else if (s[0] == '!' && s[1] == '=') {
            op = ALERT_MATCH_NE;
            p->pos += 2;
        } else if (s[0] == '=' && s[1] != '=') {
            op = ALERT_MATCH_EQ;
            p->pos += 1;
        } else {
            free(name);
            char what[64];
            describe_at(p, p->pos, what, sizeof what);
            return fail_at(p, p->pos, "expected a label matcher (=, !=, =~, !~) after label name, found %s",
                           what);
        }
        (void)name_pos;
        skip_ws(p);
        size_t value_pos = p->pos;
        char *value = read_string(p);
        if (!value) {
            free(name);
            return -1;
        }
        if (add_matcher(p, sel, name, op, value, value_pos) != 0)
            return -1;
        skip_ws(p);
        if (p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->s[p->pos] == '}') {
            p->pos++;
            return 0;
        }
        char what[64];
        describe_at(p, p->pos, what, sizeof what);
        return fail_at(p, p->pos, "expected ',' or '}' in label matchers, found %s", what);
    }
}

/* Parses a selector; `name` (already read, may be NULL) is the metric name. */
static int parse_selector(parser_t *p, struct kiln_alert_selector *sel, char *name, size_t start)
{
    sel->metric = name;
    skip_ws(p);
    if (p->s[p->pos] == '{') {
        if (parse_matchers(p, sel) != 0)
            return -1;
    }
    if (!sel->metric) {
        /* Like Prometheus: a selector needs a name or a matcher that does not
         * match the empty string; {__name__="x"} names the metric. */
        int nonempty = 0;
        for (size_t i = 0; i < sel->nmatchers; i++) {
            if (!matcher_matches(&sel->matchers[i], ""))
                nonempty = 1;
            if (!strcmp(sel->matchers[i].name, "__name__") && sel->matchers[i].op == ALERT_MATCH_EQ &&
                !sel->metric) {
                sel->metric = strdup(sel->matchers[i].value);
                if (!sel->metric)
                    return fail_at(p, start, "out of memory");
            }
        }
        if (!nonempty)
            return fail_at(
                p, start, "a selector needs a metric name or a matcher that does not match the empty string");
    }
    return 0;
}

/* ---- Whole expression ------------------------------------------------------ */

static const struct {
    const char *name;
    alert_func_t fn;
} functions[] = {{"avg_over_time", ALERT_FN_AVG_OVER_TIME},
                 {"max_over_time", ALERT_FN_MAX_OVER_TIME},
                 {"min_over_time", ALERT_FN_MIN_OVER_TIME},
                 {"rate", ALERT_FN_RATE}};

const char *alert_func_name(alert_func_t f)
{
    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
        if (functions[i].fn == f)
            return functions[i].name;
    return "";
}

static int parse_range(parser_t *p, alert_expr_t *e)
{
    size_t start = p->pos;
    p->pos++; /* '[' */
    size_t dstart = p->pos;
    while (p->s[p->pos] && p->s[p->pos] != ']' && p->s[p->pos] != ':' && p->pos - dstart < 64)
        p->pos++;
    if (p->s[p->pos] == ':')
        return fail_at(p, p->pos, "subqueries ([range:step]) are outside the supported subset");
    if (p->s[p->pos] != ']')
        return fail_at(p, start, "unterminated range: expected ']'");
    char dur[65];
    size_t n = p->pos - dstart;
    memcpy(dur, p->s + dstart, n);
    dur[n] = '\0';
    double secs;
    if (kiln_alert_parse_duration(dur, &secs) != 0)
        return fail_at(p, dstart, "bad duration '%s' in range (expected e.g. 30s, 5m, 1h)", dur);
    if (secs <= 0)
        return fail_at(p, dstart, "the range must be longer than zero");
    e->range = secs;
    p->pos++; /* ']' */
    return 0;
}

static int parse_number(parser_t *p, double *out)
{
    size_t start = p->pos;
    size_t i = p->pos;
    if (p->s[i] == '+' || p->s[i] == '-')
        i++;
    while (isalnum((unsigned char)p->s[i]) || p->s[i] == '.' ||
           ((p->s[i] == '+' || p->s[i] == '-') && (p->s[i - 1] == 'e' || p->s[i - 1] == 'E')))
        i++;
    if (i == start) {
        char what[64];
        describe_at(p, start, what, sizeof what);
        return fail_at(p, start, "expected a number to compare with, found %s", what);
    }
    char num[80];
    size_t n = i - start;
    if (n >= sizeof num)
        return fail_at(p, start, "number too long");
    memcpy(num, p->s + start, n);
    num[n] = '\0';
    const char *body = num + (num[0] == '+' || num[0] == '-');
    int sign = num[0] == '-' ? -1 : 1;
    if (!strcasecmp(body, "inf")) {
        *out = sign * INFINITY;
    } else if (!strcasecmp(body, "nan")) {
        *out = NAN;
    } else {
        if (!isdigit((unsigned char)body[0]) && body[0] != '.') {
            if (is_ident_start(body[0], 1))
                return fail_at(
                    p, start,
                    "expected a number after the comparison, found '%s' (comparing two series is outside "
                    "the supported subset)",
                    num);
            return fail_at(p, start, "expected a number, found '%s'", num);
        }
        char *end;
        errno = 0;
        double v = strtod(num, &end);
        if (*end || errno == ERANGE)
            return fail_at(p, start, "bad number '%s'", num);
        *out = v;
    }
    p->pos = i;
    return 0;
}

int alert_expr_parse(const char *text, alert_expr_t *e, size_t *err_offset, char *msg, size_t msglen)
{
    parser_t p = {.s = text, .msg = msg, .msglen = msglen};
    memset(e, 0, sizeof *e);
    if (msg && msglen)
        msg[0] = '\0';
    skip_ws(&p);
    size_t start = p.pos;
    char what[64];
    if (p.s[p.pos] == '(') {
        fail_at(&p, p.pos, "parentheses are outside the supported subset; write SELECTOR > NUMBER");
        goto fail;
    }
    char *ident = NULL;
    if (p.s[p.pos] != '{') {
        ident = read_ident(&p, 1);
        if (!ident) {
            if (!p.failed) {
                describe_at(&p, p.pos, what, sizeof what);
                fail_at(&p, p.pos, "expected a metric name, '{' or a function, found %s", what);
            }
            goto fail;
        }
    }
    size_t after_ident = p.pos;
    skip_ws(&p);
    if (ident && p.s[p.pos] == '(') {
        /* a function call */
        size_t fi = 0;
        while (fi < sizeof functions / sizeof functions[0] && strcmp(functions[fi].name, ident))
            fi++;
        if (fi == sizeof functions / sizeof functions[0]) {
            fail_at(
                &p, start,
                "function '%s' is outside the supported subset (avg_over_time, max_over_time, min_over_time, "
                "rate)",
                ident);
            free(ident);
            goto fail;
        }
        free(ident);
        e->func = functions[fi].fn;
        p.pos++;
        skip_ws(&p);
        size_t sel_start = p.pos;
        char *name = NULL;
        if (p.s[p.pos] != '{') {
            name = read_ident(&p, 1);
            if (!name) {
                if (!p.failed) {
                    describe_at(&p, p.pos, what, sizeof what);
                    fail_at(&p, p.pos, "expected a series selector inside %s(), found %s", functions[fi].name,
                            what);
                }
                goto fail;
            }
            size_t save = p.pos;
            skip_ws(&p);
            if (p.s[p.pos] == '(') {
                fail_at(&p, sel_start, "nested function '%s' is outside the supported subset", name);
                free(name);
                goto fail;
            }
            p.pos = save;
        }
        if (parse_selector(&p, &e->sel, name, sel_start) != 0)
            goto fail;
        skip_ws(&p);
        if (p.s[p.pos] != '[') {
            describe_at(&p, p.pos, what, sizeof what);
            fail_at(&p, p.pos, "%s() needs a range such as [5m] after the selector, found %s",
                    functions[fi].name, what);
            goto fail;
        }
        if (parse_range(&p, e) != 0)
            goto fail;
        skip_ws(&p);
        if (p.s[p.pos] != ')') {
            describe_at(&p, p.pos, what, sizeof what);
            fail_at(&p, p.pos, "expected ')' to close %s(, found %s", functions[fi].name, what);
            goto fail;
        }
        p.pos++;
    } else {
        p.pos = after_ident;
        if (parse_selector(&p, &e->sel, ident, start) != 0)
            goto fail;
        skip_ws(&p);
        if (p.s[p.pos] == '[') {
            fail_at(&p, p.pos,
                    "a range selector must be inside avg_over_time, max_over_time, min_over_time or rate");
            goto fail;
        }
    }
    skip_ws(&p);
    const char *s = p.s + p.pos;
    size_t cmp_pos = p.pos;
    if (s[0] == '>' && s[1] == '=') {
        e->cmp = ALERT_CMP_GE;
        p.pos += 2;
    } else if (s[0] == '<' && s[1] == '=') {
        e->cmp = ALERT_CMP_LE;
        p.pos += 2;
    } else if (s[0] == '=' && s[1] == '=') {
        e->cmp = ALERT_CMP_EQ;
        p.pos += 2;
    } else if (s[0] == '!' && s[1] == '=') {
        e->cmp = ALERT_CMP_NE;
        p.pos += 2;
    } else if (s[0] == '>') {
        e->cmp = ALERT_CMP_GT;
        p.pos += 1;
    } else if (s[0] == '<') {
        e->cmp = ALERT_CMP_LT;
        p.pos += 1;
    } else {
        describe_at(&p, cmp_pos, what, sizeof what);
        if (s[0] == '\0')
            fail_at(&p, cmp_pos,
                    "expected a comparison (>, <, >=, <=, ==, !=) and a number after the selector");
        else
            fail_at(&p, cmp_pos, "expected a comparison (>, <, >=, <=, ==, !=), found %s", what);
        goto fail;
    }
    skip_ws(&p);
    if (!strncmp(p.s + p.pos, "bool", 4) && !is_ident_char(p.s[p.pos + 4], 1)) {
        fail_at(&p, p.pos, "the 'bool' modifier is outside the supported subset");
        goto fail;
    }
    if (parse_number(&p, &e->threshold) != 0)
        goto fail;
    skip_ws(&p);
    if (p.s[p.pos] != '\0') {
        describe_at(&p, p.pos, what, sizeof what);
        fail_at(&p, p.pos, "unexpected %s after the comparison (one comparison with a number is supported)",
                what);
        goto fail;
    }
    return 0;
fail:
    if (err_offset)
        *err_offset = p.err_pos;
    alert_expr_clear(e);
    return -1;
}

void alert_expr_clear(alert_expr_t *e)
{
    free(e->sel.metric);
    for (size_t i = 0; i < e->sel.nmatchers; i++) {
        free(e->sel.matchers[i].name);
        free(e->sel.matchers[i].value);
        if (e->sel.matchers[i].has_re)
            regfree(&e->sel.matchers[i].re);
    }
    free(e->sel.matchers);
    memset(e, 0, sizeof *e);
}

int kiln_alert_expr_check(const char *expr, char *err, size_t errlen)
{
    alert_expr_t e;
    size_t off = 0;
    char msg[256];
    if (alert_expr_parse(expr, &e, &off, msg, sizeof msg) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "character %zu: %s", off + 1, msg);
        return -1;
    }
    alert_expr_clear(&e);
    return 0;
}

/* ---- Selector API for sample sources --------------------------------------- */

const char *kiln_alert_selector_metric(const kiln_alert_selector_t *sel)
{
    return sel->metric;
}

int kiln_alert_selector_matches(const kiln_alert_selector_t *sel, const char *const *names,
                                const char *const *values, size_t nlabels)
{
    const char *metric = NULL;
    for (size_t i = 0; i < nlabels; i++)
        if (!strcmp(names[i], "__name__"))
            metric = values[i];
    if (sel->metric && (!metric || strcmp(metric, sel->metric)))
        return 0;
    for (size_t m = 0; m < sel->nmatchers; m++) {
        const char *v = NULL;
        for (size_t i = 0; i < nlabels; i++)
            if (!strcmp(names[i], sel->matchers[m].name))
                v = values[i];
        if (!matcher_matches(&sel->matchers[m], v))
            return 0;
    }
    return 1;
}

/* ---- Evaluation ---------------------------------------------------------------- */

int alert_cmp_apply(alert_cmp_t cmp, double a, double b)
{
    switch (cmp) {
    case ALERT_CMP_GT:
        return a > b;
    case ALERT_CMP_LT:
        return a < b;
    case ALERT_CMP_GE:
        return a >= b;
    case ALERT_CMP_LE:
        return a <= b;
    case ALERT_CMP_EQ:
        return a == b;
    case ALERT_CMP_NE:
        return a != b;
    }
    return 0;
}

/* Prometheus's extrapolated rate over samples in (start, end]: the increase
 * corrected for counter resets, extrapolated toward the range edges (at most
 * half an average sample gap beyond the data, never below zero), divided by
 * the range.  Returns 0 and the rate, or -1 with fewer than two samples. */
static int counter_rate(const double *t, const double *v, size_t n, double start, double end, double *out)
{
    if (n < 2)
        return -1;
    double increase = v[n - 1] - v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i] < v[i - 1])
            increase += v[i - 1]; /* counter reset: the counter restarted from 0 */
    double sampled = t[n - 1] - t[0];
    if (sampled <= 0)
        return -1;
    double to_start = t[0] - start;
    double to_end = end - t[n - 1];
    double avg_gap = sampled / (double)(n - 1);
    if (increase > 0 && v[0] >= 0) {
        double to_zero = sampled * (v[0] / increase);
        if (to_zero < to_start)
            to_start = to_zero;
    }
    double threshold = avg_gap * 1.1;
    double interval = sampled;
    interval += to_start < threshold ? to_start : avg_gap / 2;
    interval += to_end < threshold ? to_end : avg_gap / 2;
    *out = increase * (interval / sampled) / (end - start);
    return 0;
}

/* Label sets equal when __name__ is ignored on both sides. */
static int labels_equal_without_name(const alert_labels_t *a, const alert_labels_t *b)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < a->n && !strcmp(a->names[i], "__name__"))
            i++;
        while (j < b->n && !strcmp(b->names[j], "__name__"))
            j++;
        if (i == a->n || j == b->n)
            return i == a->n && j == b->n;
        if (strcmp(a->names[i], b->names[j]) || strcmp(a->values[i], b->values[j]))
            return 0;
        i++;
        j++;
    }
}

int alert_expr_eval(const alert_expr_t *e, const kiln_alert_source_t *src, double now, kiln_series_set_t *out,
                    char *err, size_t errlen)
{
    double window = e->func == ALERT_FN_NONE ? ALERT_LOOKBACK_SECONDS : e->range;
    double start = now - window;
    kiln_series_set_t got = {0};
    char serr[256] = "";
    if (!src || !src->select) {
        snprintf(err, errlen, "no sample source");
        return -1;
    }
    if (src->select(src->ctx, &e->sel, start, now, &got, serr, sizeof serr) != 0) {
        snprintf(err, errlen, "sample source: %s", serr[0] ? serr : "query failed");
        alert_series_set_clear(&got);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < got.n && rc == 0; i++) {
        kiln_series_t *s = got.items[i];
        if (!kiln_alert_selector_matches(&e->sel, (const char *const *)s->labels.names,
                                         (const char *const *)s->labels.values, s->labels.n))
            continue; /* a source may hand back more than asked; filter here */
        /* Samples strictly inside the window: (start, now] for ranges, and
         * [start, now] for the instant lookback. */
        size_t lo = 0, hi = 0;
        while (lo < s->n && (s->t[lo] < start || (e->func != ALERT_FN_NONE && s->t[lo] <= start)))
            lo++;
        hi = lo;
        while (hi < s->n && s->t[hi] <= now)
            hi++;
        if (hi == lo)
            continue;
        double value = 0;
        switch (e->func) {
        case ALERT_FN_NONE:
            value = s->v[hi - 1];
            break;
        case ALERT_FN_AVG_OVER_TIME:
            value = 0;
            for (size_t k = lo; k < hi; k++)
                value += s->v[k];
            value /= (double)(hi - lo);
            break;
        case ALERT_FN_MAX_OVER_TIME:
            value = s->v[lo];
            for (size_t k = lo; k < hi; k++)
                if (s->v[k] > value || isnan(value))
                    value = s->v[k];
            break;
        case ALERT_FN_MIN_OVER_TIME:
            value = s->v[lo];
            for (size_t k = lo; k < hi; k++)
                if (s->v[k] < value || isnan(value))
                    value = s->v[k];
            break;
        case ALERT_FN_RATE:
            if (counter_rate(s->t + lo, s->v + lo, hi - lo, start, now, &value) != 0)
                continue;
            break;
        }
        if (!alert_cmp_apply(e->cmp, value, e->threshold))
            continue;
        alert_labels_t labels = {0};
        if (alert_labels_copy(&labels, &s->labels) != 0) {
            alert_labels_clear(&labels);
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        if (e->func != ALERT_FN_NONE)
            alert_labels_del(&labels, "__name__");
        for (size_t k = 0; k < out->n; k++) {
            if (labels_equal_without_name(&out->items[k]->labels, &labels)) {
                snprintf(err, errlen,
                         "vector contains metrics with the same labelset after dropping the metric name");
                rc = -1;
                break;
            }
        }
        if (rc == 0) {
            kiln_series_t *r = kiln_series_set_add(out, (const char *const *)labels.names,
                                                   (const char *const *)labels.values, labels.n);
            if (!r || kiln_series_add_sample(r, now, value) != 0) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
            }
        }
        alert_labels_clear(&labels);
    }
    alert_series_set_clear(&got);
    return rc;
}
