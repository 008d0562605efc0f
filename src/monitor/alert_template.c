/*
 * alert_template.c - the part of Go's text/template that Prometheus alert
 * labels and annotations use: {{ $labels.name }}, {{ $value }} (also
 * .Labels.name, .Value, index $labels "name"), with the pipeline functions
 * humanize, humanizePercentage, humanizeDuration and printf "FMT".
 *
 * Templates are parsed once when the rule file loads, so an unsupported
 * action is an error with its position at load time rather than a broken
 * notification at 3 a.m.; rendering then cannot fail except for memory.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/alert_internal.h"

static int tfail(size_t *err_offset, size_t pos, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int tfail(size_t *err_offset, size_t pos, char *msg, size_t msglen, const char *fmt, ...)
{
    if (err_offset)
        *err_offset = pos;
    if (msg && msglen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int add_part(alert_template_t *t, alert_tmpl_kind_t kind, const char *text, size_t len)
{
    alert_tmpl_part_t *p = realloc(t->parts, (t->n + 1) * sizeof *p);
    if (!p)
        return -1;
    t->parts = p;
    alert_tmpl_part_t *part = &t->parts[t->n];
    memset(part, 0, sizeof *part);
    part->kind = kind;
    part->text = strndup(text ? text : "", text ? len : 0);
    if (!part->text)
        return -1;
    t->n++;
    return 0;
}

/* Checks a printf format for one float: literal text, %% and exactly one
 * %[flags][width][.prec](e|E|f|F|g|G).  Anything else could read memory
 * that is not there, so it is refused. */
static int check_float_format(const char *f)
{
    int convs = 0;
    for (const char *p = f; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (*p == '%')
            continue;
        while (*p && strchr("-+ 0#", *p))
            p++;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 3) {
            p++;
            digits++;
        }
        if (*p == '.') {
            p++;
            digits = 0;
            while (isdigit((unsigned char)*p) && digits < 3) {
                p++;
                digits++;
            }
        }
        if (!*p || !strchr("eEfFgG", *p))
            return -1;
        convs++;
    }
    return convs == 1 ? 0 : -1;
}

/* Parses the inside of one {{ }} action (already trimmed) at offset base. */
static int parse_action(alert_template_t *t, const char *a, size_t len, size_t base, size_t *err_offset,
                        char *msg, size_t msglen)
{
    char buf[512];
    if (len >= sizeof buf)
        return tfail(err_offset, base, msg, msglen, "template action too long");
    memcpy(buf, a, len);
    buf[len] = '\0';
    if (len >= 4 && !strncmp(buf, "/*", 2) && !strcmp(buf + len - 2, "*/"))
        return 0; /* a comment */

    /* Split "X | f args" at the first '|' outside quotes. */
    char *pipe = NULL;
    int inq = 0;
    for (char *p = buf; *p; p++) {
        if (*p == '"')
            inq = !inq;
        else if (*p == '|' && !inq) {
            pipe = p;
            break;
        }
    }
    char *head = buf, *fn = NULL;
    if (pipe) {
        *pipe = '\0';
        fn = pipe + 1;
        while (isspace((unsigned char)*fn))
            fn++;
        char *e = pipe;
        while (e > head && isspace((unsigned char)e[-1]))
            *--e = '\0';
    }

    alert_tmpl_fn_t f = ALERT_TMPL_FN_NONE;
    char *fmt = NULL;
    /* Function written before its argument: humanize $value, printf "%.1f" $value. */
    const char *prefix_fns[] = {"humanizePercentage ", "humanizeDuration ", "humanize ", "printf "};
    const alert_tmpl_fn_t prefix_ids[] = {ALERT_TMPL_FN_HUMANIZE_PERCENTAGE, ALERT_TMPL_FN_HUMANIZE_DURATION,
                                          ALERT_TMPL_FN_HUMANIZE, ALERT_TMPL_FN_PRINTF};
    char *fnspec = fn;
    char *arg = head;
    for (size_t i = 0; !fn && i < 4; i++) {
        size_t pl = strlen(prefix_fns[i]);
        if (!strncmp(head, prefix_fns[i], pl)) {
            f = prefix_ids[i];
            arg = head + pl;
            while (isspace((unsigned char)*arg))
                arg++;
            if (f == ALERT_TMPL_FN_PRINTF) {
                fnspec = head; /* printf "fmt" $value: the format comes first */
                char *q1 = strchr(arg, '"');
                char *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
                if (q1 != arg || !q2)
                    return tfail(err_offset, base, msg, msglen,
                                 "printf needs a quoted format, as in printf \"%%.2f\" $value");
                fmt = strndup(q1 + 1, (size_t)(q2 - q1 - 1));
                if (!fmt)
                    return tfail(err_offset, base, msg, msglen, "out of memory");
                arg = q2 + 1;
                while (isspace((unsigned char)*arg))
                    arg++;
            }
            break;
        }
    }
    if (fn) {
        if (!strcmp(fn, "humanize"))
            f = ALERT_TMPL_FN_HUMANIZE;
        else if (!strcmp(fn, "humanizePercentage"))
            f = ALERT_TMPL_FN_HUMANIZE_PERCENTAGE;
        else if (!strcmp(fn, "humanizeDuration"))
            f = ALERT_TMPL_FN_HUMANIZE_DURATION;
        else if (!strncmp(fn, "printf", 6) && isspace((unsigned char)fn[6])) {
            f = ALERT_TMPL_FN_PRINTF;
            char *q1 = strchr(fn, '"');
            char *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
            if (!q1 || !q2 || q2[1] != '\0')
                return tfail(err_offset, base + (size_t)(fn - buf), msg, msglen,
                             "printf needs one quoted format, as in $value | printf \"%%.2f\"");
            fmt = strndup(q1 + 1, (size_t)(q2 - q1 - 1));
            if (!fmt)
                return tfail(err_offset, base, msg, msglen, "out of memory");
        } else {
            return tfail(err_offset, base + (size_t)(fn - buf), msg, msglen,
                         "unsupported template function '%s' (supported: humanize, humanizePercentage, "
                         "humanizeDuration, printf)",
                         fn);
        }
    }
    (void)fnspec;
    if (fmt && check_float_format(fmt) != 0) {
        free(fmt);
        return tfail(err_offset, base, msg, msglen,
                     "printf format must hold exactly one float conversion such as %%.2f, %%g or %%e");
    }

    alert_tmpl_kind_t kind;
    const char *label = NULL;
    size_t label_len = 0;
    char quoted[256];
    if (!strcmp(arg, "$value") || !strcmp(arg, ".Value")) {
        kind = ALERT_TMPL_VALUE;
    } else if (!strncmp(arg, "$labels.", 8) || !strncmp(arg, ".Labels.", 8)) {
        kind = ALERT_TMPL_LABEL;
        label = arg + 8;
        label_len = strlen(label);
    } else if (!strncmp(arg, "index $labels ", 14) || !strncmp(arg, "index .Labels ", 14)) {
        kind = ALERT_TMPL_LABEL;
        const char *q = arg + 14;
        while (isspace((unsigned char)*q))
            q++;
        const char *q2 = *q == '"' ? strchr(q + 1, '"') : NULL;
        if (!q2 || q2[1] != '\0' || (size_t)(q2 - q - 1) >= sizeof quoted) {
            free(fmt);
            return tfail(err_offset, base, msg, msglen, "index $labels needs one quoted label name");
        }
        memcpy(quoted, q + 1, (size_t)(q2 - q - 1));
        quoted[q2 - q - 1] = '\0';
        label = quoted;
        label_len = strlen(quoted);
    } else {
        free(fmt);
        return tfail(
            err_offset, base + (size_t)(arg - buf), msg, msglen,
            "unsupported template action '%s' (supported: $labels.NAME, $value, .Labels.NAME, .Value)", arg);
    }
    if (kind == ALERT_TMPL_LABEL) {
        int ok = label_len > 0 && (isalpha((unsigned char)label[0]) || label[0] == '_');
        for (size_t i = 0; ok && i < label_len; i++)
            ok = isalnum((unsigned char)label[i]) || label[i] == '_';
        if (!ok) {
            free(fmt);
            return tfail(err_offset, base + (size_t)(arg - buf), msg, msglen, "bad label name in '%s'", arg);
        }
        if (f != ALERT_TMPL_FN_NONE) {
            free(fmt);
            return tfail(err_offset, base, msg, msglen,
                         "template functions apply to $value only, not to labels");
        }
    }
    if (add_part(t, kind, label, label_len) != 0) {
        free(fmt);
        return tfail(err_offset, base, msg, msglen, "out of memory");
    }
    t->parts[t->n - 1].fn = f;
    t->parts[t->n - 1].fmt = fmt;
    return 0;
}

int alert_template_parse(const char *src, alert_template_t *out, size_t *err_offset, char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    size_t i = 0, lit = 0;
    while (src[i]) {
        if (src[i] != '{' || src[i + 1] != '{') {
            i++;
            continue;
        }
        size_t open = i;
        const char *close = strstr(src + i + 2, "}}");
        if (!close) {
            alert_template_clear(out);
            return tfail(err_offset, open, msg, msglen, "unclosed action: '{{' without '}}'");
        }
        size_t a = i + 2, b = (size_t)(close - src);
        size_t lit_end = open;
        if (a < b && src[a] == '-' && (a + 1 == b || isspace((unsigned char)src[a + 1]))) {
            a++; /* {{- trims white space before */
            while (lit_end > lit && isspace((unsigned char)src[lit_end - 1]))
                lit_end--;
        }
        int trim_after = 0;
        if (b > a && src[b - 1] == '-' && (b - 1 == a || isspace((unsigned char)src[b - 2]))) {
            b--;
            trim_after = 1;
        }
        if (lit_end > lit && add_part(out, ALERT_TMPL_TEXT, src + lit, lit_end - lit) != 0) {
            alert_template_clear(out);
            return tfail(err_offset, open, msg, msglen, "out of memory");
        }
        while (a < b && isspace((unsigned char)src[a]))
            a++;
        while (b > a && isspace((unsigned char)src[b - 1]))
            b--;
        if (a == b) {
            alert_template_clear(out);
            return tfail(err_offset, open, msg, msglen, "empty action '{{}}'");
        }
        if (parse_action(out, src + a, b - a, a, err_offset, msg, msglen) != 0) {
            alert_template_clear(out);
            return -1;
        }
        i = (size_t)(close - src) + 2;
        if (trim_after)
            while (isspace((unsigned char)src[i]))
                i++;
        lit = i;
    }
    if (i > lit && add_part(out, ALERT_TMPL_TEXT, src + lit, i - lit) != 0) {
        alert_template_clear(out);
        return tfail(err_offset, lit, msg, msglen, "out of memory");
    }
    return 0;
}

/* Prometheus's humanize: SI prefixes for big and small numbers. */
static void humanize(double v, char *out, size_t outlen)
{
    if (v == 0 || isnan(v) || isinf(v)) {
        alert_format_value(v, out, outlen);
        return;
    }
    static const char *big[] = {"", "k", "M", "G", "T", "P", "E", "Z", "Y"};
    static const char *small[] = {"", "m", "u", "n", "p", "f", "a", "z", "y"};
    double a = fabs(v);
    size_t i = 0;
    if (a >= 1) {
        while (a >= 1000 && i + 1 < sizeof big / sizeof big[0]) {
            a /= 1000;
            v /= 1000;
            i++;
        }
        snprintf(out, outlen, "%.4g%s", v, big[i]);
    } else {
        while (a < 1 && i + 1 < sizeof small / sizeof small[0]) {
            a *= 1000;
            v *= 1000;
            i++;
        }
        snprintf(out, outlen, "%.4g%s", v, small[i]);
    }
}

static void humanize_duration(double v, char *out, size_t outlen)
{
    if (isnan(v) || isinf(v)) {
        alert_format_value(v, out, outlen);
        return;
    }
    if (fabs(v) < 1) {
        snprintf(out, outlen, "%.4gms", v * 1000);
        return;
    }
    const char *sign = v < 0 ? "-" : "";
    double a = fabs(v);
    long long secs = (long long)a;
    long long d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60;
    double s = fmod(a, 60.0);
    if (d)
        snprintf(out, outlen, "%s%lldd %lldh %lldm %.4gs", sign, d, h, m, s);
    else if (h)
        snprintf(out, outlen, "%s%lldh %lldm %.4gs", sign, h, m, s);
    else if (m)
        snprintf(out, outlen, "%s%lldm %.4gs", sign, m, s);
    else
        snprintf(out, outlen, "%s%.4gs", sign, s);
}

char *alert_template_render(const alert_template_t *t, const alert_labels_t *labels, double value)
{
    alert_buf_t b = {0};
    char num[128];
    for (size_t i = 0; i < t->n; i++) {
        const alert_tmpl_part_t *p = &t->parts[i];
        if (p->kind == ALERT_TMPL_TEXT) {
            alert_buf_puts(&b, p->text);
        } else if (p->kind == ALERT_TMPL_LABEL) {
            const char *v = labels ? alert_labels_get(labels, p->text) : NULL;
            alert_buf_puts(&b, v ? v : "");
        } else {
            switch (p->fn) {
            case ALERT_TMPL_FN_NONE:
                alert_format_value(value, num, sizeof num);
                break;
            case ALERT_TMPL_FN_HUMANIZE:
                humanize(value, num, sizeof num);
                break;
            case ALERT_TMPL_FN_HUMANIZE_PERCENTAGE:
                snprintf(num, sizeof num, "%.4g%%", value * 100);
                break;
            case ALERT_TMPL_FN_HUMANIZE_DURATION:
                humanize_duration(value, num, sizeof num);
                break;
            case ALERT_TMPL_FN_PRINTF:
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                /* checked at parse time by check_float_format: one float conversion */
                snprintf(num, sizeof num, p->fmt, value);
#pragma GCC diagnostic pop
                break;
            }
            alert_buf_puts(&b, num);
        }
    }
    return alert_buf_take(&b);
}

void alert_template_clear(alert_template_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->parts[i].text);
        free(t->parts[i].fmt);
    }
    free(t->parts);
    t->parts = NULL;
    t->n = 0;
}
