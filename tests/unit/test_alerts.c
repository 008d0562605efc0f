/*
 * test_alerts.c - unit tests of the alert rule loader: the PromQL-subset
 * expression parser (valid forms, every error class and its position),
 * durations, templates, and rule files (valid, YAML errors with their line,
 * structural errors with line and column, expression errors placed on the
 * exact character of the file).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "monitor/alert_internal.h"

/* Parses expr and expects an error at 1-based character `col` whose message
 * contains `needle`. */
static void expect_expr_error(const char *expr, size_t col, const char *needle)
{
    char err[300];
    int rc = kiln_alert_expr_check(expr, err, sizeof err);
    char want[32];
    snprintf(want, sizeof want, "character %zu:", col);
    CHECK_MSG(rc == -1, "expr '%s' should fail", expr);
    CHECK_MSG(strncmp(err, want, strlen(want)) == 0, "expr '%s': want %s got '%s'", expr, want, err);
    CHECK_MSG(strstr(err, needle) != NULL, "expr '%s': want '%s' in '%s'", expr, needle, err);
}

static void test_expr_valid(void)
{
    const char *ok[] = {
        "up == 0",
        "kiln_gpu_temperature_celsius > 85",
        "nv_gpu_utilization{gpu_uuid=~\"GPU-.*\"} >= 0.9",
        "avg_over_time(nv_gpu_utilization{gpu_uuid!=\"x\"}[5m]) > 0.95",
        "max_over_time(kiln_gpu_temperature_celsius[1h30m]) >= 90",
        "min_over_time(foo[30s]) < -1.5e3",
        "rate(nv_inference_request_failure[5m]) > 0",
        "{__name__=\"up\", job!~\"a|b\"} != 1",
        "  foo:bar_baz { a = 'x' , b!=`y`, } <= +Inf  ",
        "foo > NaN",
        "foo == 0x10",
        "foo # a comment\n > 1",
        "foo{a=~\"x{2,3}[+*]\\\\+?(b|c)*\"} > 1",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char err[300] = "";
        CHECK_MSG(kiln_alert_expr_check(ok[i], err, sizeof err) == 0, "'%s': %s", ok[i], err);
    }
    alert_expr_t e;
    size_t off;
    char msg[200];
    CHECK(alert_expr_parse("rate(x{a=\"1\"}[2m]) >= 3.5", &e, &off, msg, sizeof msg) == 0);
    CHECK(e.func == ALERT_FN_RATE);
    CHECK_NEAR(e.range, 120, 1e-9);
    CHECK(e.cmp == ALERT_CMP_GE);
    CHECK_NEAR(e.threshold, 3.5, 1e-12);
    CHECK(e.sel.metric && !strcmp(e.sel.metric, "x"));
    CHECK(e.sel.nmatchers == 1 && e.sel.matchers[0].op == ALERT_MATCH_EQ);
    alert_expr_clear(&e);
    CHECK(alert_expr_parse("{__name__=\"up\"} < 1", &e, &off, msg, sizeof msg) == 0);
    CHECK(e.sel.metric && !strcmp(e.sel.metric, "up"));
    alert_expr_clear(&e);
}

static void test_expr_errors(void)
{
    expect_expr_error("sum(foo) > 1", 1, "function 'sum' is outside");
    expect_expr_error("foo", 4, "expected a comparison");
    expect_expr_error("foo > bar", 7, "comparing two series");
    expect_expr_error("foo[5m] > 1", 4, "range selector must be inside");
    expect_expr_error("rate(foo) > 1", 9, "needs a range");
    expect_expr_error("rate(foo[5x]) > 1", 10, "bad duration '5x'");
    expect_expr_error("rate(foo[0s]) > 1", 10, "longer than zero");
    expect_expr_error("rate(foo[5m:1m]) > 1", 12, "subqueries");
    expect_expr_error("rate(foo[5m] > 1", 14, "expected ')'");
    expect_expr_error("foo{a=\"b\" > 1", 11, "expected ',' or '}'");
    expect_expr_error("foo{a==\"b\"} > 1", 6, "label matcher");
    expect_expr_error("foo{a=\"b} > 1", 7, "unterminated string");
    expect_expr_error("foo{a=b} > 1", 7, "quoted label value");
    expect_expr_error("foo{a=~\"(\"} > 1", 8, "invalid regular expression");
    expect_expr_error("{a=~\".*\"} > 1", 1, "needs a metric name");
    expect_expr_error("foo{a=~\"z+++\"} > 1", 8, "bad repetition operator");
    expect_expr_error("foo{a=~\"z*{2}\"} > 1", 8, "bad repetition operator");
    expect_expr_error("foo{a=~\"z{1001}\"} > 1", 8, "repetition count above 1000");
    expect_expr_error("foo{a=~\"((z{50}){50})\"} > 1", 8, "multiply above 1000");
    expect_expr_error("foo > 1 and bar > 2", 9, "unexpected 'and'");
    expect_expr_error("foo > bool 1", 7, "'bool' modifier");
    expect_expr_error("foo > 1x", 7, "bad number");
    expect_expr_error("(foo) > 1", 1, "parentheses");
    expect_expr_error("foo offset 5m > 1", 5, "found 'offset'");
    expect_expr_error("rate(rate(foo[1m])[5m]) > 1", 6, "nested function");
    expect_expr_error("", 1, "expected a metric name");
    expect_expr_error("foo >", 6, "expected a number");
}

static void test_durations(void)
{
    double s;
    CHECK(kiln_alert_parse_duration("5m", &s) == 0 && s == 300);
    CHECK(kiln_alert_parse_duration("1h30m", &s) == 0 && s == 5400);
    CHECK(kiln_alert_parse_duration("250ms", &s) == 0 && fabs(s - 0.25) < 1e-12);
    CHECK(kiln_alert_parse_duration("1d", &s) == 0 && s == 86400);
    CHECK(kiln_alert_parse_duration("2w", &s) == 0 && s == 14 * 86400);
    CHECK(kiln_alert_parse_duration("0", &s) == 0 && s == 0);
    CHECK(kiln_alert_parse_duration("0s", &s) == 0 && s == 0);
    CHECK(kiln_alert_parse_duration("", &s) == -1);
    CHECK(kiln_alert_parse_duration("5", &s) == -1);
    CHECK(kiln_alert_parse_duration("m", &s) == -1);
    CHECK(kiln_alert_parse_duration("5m1h", &s) == -1); /* units out of order */
    CHECK(kiln_alert_parse_duration("1.5h", &s) == -1);
    CHECK(kiln_alert_parse_duration("-5m", &s) == -1);
    CHECK(kiln_alert_parse_duration("5mm", &s) == -1);
}

static char *render(const char *src, double value, const char *lname, const char *lvalue)
{
    alert_template_t t;
    size_t off;
    char msg[200];
    if (alert_template_parse(src, &t, &off, msg, sizeof msg) != 0)
        return NULL;
    alert_labels_t l = {0};
    if (lname)
        alert_labels_set(&l, lname, lvalue);
    char *out = alert_template_render(&t, &l, value);
    alert_labels_clear(&l);
    alert_template_clear(&t);
    return out;
}

static void check_render(const char *src, double value, const char *expect)
{
    char *got = render(src, value, "gpu_uuid", "GPU-1");
    CHECK_MSG(got && !strcmp(got, expect), "template '%s': want '%s' got '%s'", src, expect,
              got ? got : "(null)");
    free(got);
}

static void expect_template_error(const char *src, size_t off_expect, const char *needle)
{
    alert_template_t t;
    size_t off = 999;
    char msg[300] = "";
    CHECK_MSG(alert_template_parse(src, &t, &off, msg, sizeof msg) == -1, "template '%s' should fail", src);
    CHECK_MSG(off == off_expect, "template '%s': offset %zu, want %zu", src, off, off_expect);
    CHECK_MSG(strstr(msg, needle) != NULL, "template '%s': want '%s' in '%s'", src, needle, msg);
}

static void test_templates(void)
{
    check_render("GPU {{ $labels.gpu_uuid }} at {{ $value }} C", 91.5, "GPU GPU-1 at 91.5 C");
    check_render("{{$labels.gpu_uuid}}/{{.Labels.gpu_uuid}}/{{ .Value }}", 2, "GPU-1/GPU-1/2");
    check_render("missing '{{ $labels.nope }}'", 1, "missing ''");
    check_render("{{ index $labels \"gpu_uuid\" }}", 1, "GPU-1");
    check_render("{{ $value | printf \"%.2f\" }}", 3.14159, "3.14");
    check_render("{{ printf \"%.1f%%\" $value }}", 42.25, "42.2%");
    check_render("{{ $value | humanize }}", 1234567, "1.235M");
    check_render("{{ humanize $value }}", 0.0012, "1.2m");
    check_render("{{ $value | humanizePercentage }}", 0.1234, "12.34%");
    check_render("{{ $value | humanizeDuration }}", 3725, "1h 2m 5s");
    check_render("a  {{- $value -}}  b", 7, "a7b");
    check_render("{{/* comment */}}x", 1, "x");
    check_render("no actions at all", 1, "no actions at all");
    check_render("{{ $value }}", INFINITY, "+Inf");
    expect_template_error("x {{ $value ", 2, "unclosed action");
    expect_template_error("{{ $externalURL }}", 3, "unsupported template action");
    expect_template_error("{{ $value | toUpper }}", 12, "unsupported template function 'toUpper'");
    expect_template_error("{{ $value | printf \"%s\" }}", 3, "one float conversion");
    expect_template_error("{{ $value | printf \"%n\" }}", 3, "one float conversion");
    expect_template_error("{{ $value | printf \"%f %f\" }}", 3, "one float conversion");
    expect_template_error("{{ }}", 0, "empty action");
    expect_template_error("{{ $labels.bad-name }}", 3, "bad label name");
}

static const char *good_file = "# kiln example\n"
                               "groups:\n"
                               "  - name: gpu\n"
                               "    interval: 15s\n"
                               "    rules:\n"
                               "      - alert: GpuHot\n"
                               "        expr: max_over_time(kiln_gpu_temperature_celsius[1m]) > 85\n"
                               "        for: 2m\n"
                               "        keep_firing_for: 1m\n"
                               "        labels:\n"
                               "          severity: page\n"
                               "          gpu: '{{ $labels.gpu_uuid }}'\n"
                               "        annotations:\n"
                               "          summary: GPU {{ $labels.gpu_uuid }} is at {{ $value }} C\n"
                               "      - alert: HostDown\n"
                               "        expr: |\n"
                               "          up{job=\"kiln\"} == 0\n"
                               "  - name: empty\n"
                               "    rules: []\n";

static int parse(const char *text, kiln_alert_rules_t **r, char *err, size_t errlen)
{
    return kiln_alert_rules_parse(text, strlen(text), "rules.yml", r, err, errlen);
}

static void expect_file_error(const char *text, const char *prefix, const char *needle)
{
    kiln_alert_rules_t *r = NULL;
    char err[512] = "";
    int rc = parse(text, &r, err, sizeof err);
    CHECK_MSG(rc == -1 && r == NULL, "file should fail (want %s)", prefix);
    CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix '%s' got '%s'", prefix, err);
    CHECK_MSG(strstr(err, needle) != NULL, "want '%s' in '%s'", needle, err);
}

static void test_rule_files(void)
{
    kiln_alert_rules_t *r = NULL;
    char err[512] = "";
    CHECK_MSG(parse(good_file, &r, err, sizeof err) == 0, "%s", err);
    CHECK(r && kiln_alert_rules_count(r) == 2);
    if (r) {
        CHECK(r->ngroups == 2);
        CHECK(!strcmp(r->groups[0].name, "gpu"));
        CHECK(r->groups[0].interval == 15);
        alert_rule_t *hot = &r->groups[0].rules[0];
        CHECK(!strcmp(hot->name, "GpuHot"));
        CHECK(hot->for_seconds == 120 && hot->keep_firing_for == 60);
        CHECK(hot->nlabels == 2 && hot->nannotations == 1);
        CHECK(hot->expr.func == ALERT_FN_MAX_OVER_TIME);
        CHECK(hot->line == 6);
        CHECK(!strcmp(r->groups[0].rules[1].expr_text, "up{job=\"kiln\"} == 0\n"));
        kiln_alert_rules_free(r);
    }
    /* An empty file and a file with no groups hold no rules. */
    CHECK(parse("", &r, err, sizeof err) == 0 && kiln_alert_rules_count(r) == 0);
    kiln_alert_rules_free(r);
    CHECK(parse("groups: []\n", &r, err, sizeof err) == 0 && kiln_alert_rules_count(r) == 0);
    kiln_alert_rules_free(r);

    /* YAML syntax errors name their line. */
    expect_file_error("groups:\n  - name: a\n    rules: [\n", "rules.yml:4:", "YAML error");
    expect_file_error("groups:\n  - name: \"a\n", "rules.yml:", "YAML error");
    expect_file_error("groups:\n - name: a\n   rules: x: y\n", "rules.yml:3:", "YAML error");

    /* Structure errors name line and column. */
    expect_file_error("rules: []\n", "rules.yml:1:1:", "unknown top-level field 'rules'");
    expect_file_error("groups: []\ngroups: []\n",
                      "rules.yml:2:1:", "duplicate key 'groups' (first on line 1)");
    expect_file_error("groups:\n  - name: a\n    name: b\n", "rules.yml:3:5:", "duplicate key 'name'");
    expect_file_error(
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > 1\n        labels: {}\n"
        "        labels: {a: b}\n",
        "rules.yml:7:9:", "duplicate key 'labels' (first on line 6)");
    expect_file_error("- a\n", "rules.yml:1:1:", "must be a mapping with 'groups:'");
    expect_file_error("groups: 3\n", "rules.yml:1:9:", "'groups' must be a list");
    expect_file_error("groups:\n  - rules: []\n", "rules.yml:2:5:", "group has no 'name'");
    expect_file_error("groups:\n  - name: a\n  - name: a\n", "rules.yml:3:5:", "repeated");
    expect_file_error("groups:\n  - name: a\n    interval: fast\n",
                      "rules.yml:3:15:", "not a valid duration");
    expect_file_error("groups:\n  - name: a\n    colour: red\n",
                      "rules.yml:3:5:", "unknown group field 'colour'");
    expect_file_error("groups:\n  - name: a\n    rules: {}\n", "rules.yml:3:12:", "must be a list");
    expect_file_error("groups:\n  - name: a\n    rules:\n      - expr: up == 0\n",
                      "rules.yml:4:9:", "no 'alert'");
    expect_file_error("groups:\n  - name: a\n    rules:\n      - alert: X\n",
                      "rules.yml:4:9:", "has no 'expr'");
    expect_file_error("groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n",
                      "rules.yml:4:9:", "recording rules");
    expect_file_error(
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > 1\n        for: 5\n",
        "rules.yml:6:14:", "'for' is not a valid duration");
    expect_file_error(
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > 1\n        summary: x\n",
        "rules.yml:6:9:", "unknown rule field 'summary'");
    expect_file_error(
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > 1\n        labels:\n"
        "          bad-name: x\n",
        "rules.yml:7:11:", "invalid labels name 'bad-name'");
    expect_file_error(
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > 1\n        labels: [a]\n",
        "rules.yml:6:17:", "must be a mapping");
    expect_file_error("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: [up]\n",
                      "rules.yml:5:15:", "'expr' must be a string");
    expect_file_error(
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > 1\n        labels:\n"
        "          alertname: y\n",
        "rules.yml:4:9:", "reserved");

    /* Expression errors point at the character inside the file: plain,
     * quoted and block scalars. */
    expect_file_error("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: sum(up) > 1\n",
                      "rules.yml:5:15: rule 'X': expr character 1:", "function 'sum'");
    expect_file_error("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > foo\n",
                      "rules.yml:5:20: rule 'X': expr character 6:", "comparing two series");
    expect_file_error("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: \"up[5m] > 1\"\n",
                      "rules.yml:5:18: rule 'X': expr character 3:", "range selector");
    expect_file_error("groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: |\n          up >\n"
                      "            bar\n",
                      "rules.yml:7:13: rule 'X': expr character 8:", "comparing two series");
    /* Template errors too. */
    expect_file_error(
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up > 1\n        annotations:\n"
        "          summary: 'at {{ $value | shout }}'\n",
        "rules.yml:7:36: annotations 'summary': template:", "unsupported template function 'shout'");

    /* Files: a missing file names itself. */
    CHECK(kiln_alert_rules_load("/nonexistent/rules.yml", &r, err, sizeof err) == -1);
    CHECK(strstr(err, "/nonexistent/rules.yml: cannot open rule file") != NULL);
    /* A NUL byte in the text is refused, not truncated. */
    CHECK(kiln_alert_rules_parse("groups: []\n\0x", 13, "nul.yml", &r, err, sizeof err) == -1);
    CHECK(strstr(err, "NUL byte") != NULL);
}

static void test_selector_matching(void)
{
    alert_expr_t e;
    size_t off;
    char msg[200];
    CHECK(alert_expr_parse("m{a=\"1\",b!=\"2\",c=~\"x.*\",d!~\"y|z\"} > 0", &e, &off, msg, sizeof msg) == 0);
    const char *names[] = {"__name__", "a", "b", "c", "d"};
    const char *v1[] = {"m", "1", "3", "xyz", "q"};
    const char *v2[] = {"m", "1", "2", "xyz", "q"};
    const char *v3[] = {"m", "1", "3", "axyz", "q"};
    const char *v4[] = {"m", "1", "3", "x", "y"};
    const char *v5[] = {"other", "1", "3", "x", "q"};
    CHECK(kiln_alert_selector_matches(&e.sel, names, v1, 5) == 1);
    CHECK(kiln_alert_selector_matches(&e.sel, names, v2, 5) == 0);
    CHECK(kiln_alert_selector_matches(&e.sel, names, v3, 5) == 0); /* regex is anchored */
    CHECK(kiln_alert_selector_matches(&e.sel, names, v4, 5) == 0);
    CHECK(kiln_alert_selector_matches(&e.sel, names, v5, 5) == 0);
    CHECK(kiln_alert_selector_matches(&e.sel, names, v1, 4) == 1); /* absent d reads "" and !~ y|z */
    CHECK(!strcmp(kiln_alert_selector_metric(&e.sel), "m"));
    alert_expr_clear(&e);
}

int main(void)
{
    test_expr_valid();
    test_expr_errors();
    test_durations();
    test_templates();
    test_rule_files();
    test_selector_matching();
    return check_finish();
}
