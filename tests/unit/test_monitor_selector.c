/*
 * test_monitor_selector.c - the PromQL selector parser: the forms the API
 * accepts, the matching rules (absent label = "", anchored regexes), and an
 * error with a column for every way the text can be wrong.
 */
#include <string.h>

#include "check.h"
#include "core/error.h"
#include "monitor/selector.h"

static kiln_selector_t *parse(const char *s)
{
    kiln_selector_t *sel = NULL;
    kiln_status_t st = kiln_selector_parse(s, strlen(s), &sel);
    return st == KILN_OK ? sel : NULL;
}

/* Parses s expecting an error whose message contains want. */
static void expect_error(const char *s, const char *want)
{
    kiln_selector_t *sel = NULL;
    kiln_status_t st = kiln_selector_parse(s, strlen(s), &sel);
    CHECK_MSG(st == KILN_ERR_INVALID_ARGUMENT && sel == NULL, "'%s' parsed", s);
    CHECK_MSG(strstr(kiln_last_error(), want) != NULL, "'%s': message '%s' lacks '%s'", s,
              kiln_last_error(), want);
}

static void test_parse_forms(void)
{
    kiln_selector_t *s = parse("nv_gpu_utilization");
    CHECK(s && !strcmp(s->metric, "nv_gpu_utilization") && s->n_matchers == 0);
    kiln_selector_free(s);

    s = parse(" nv_gpu_utilization { gpu_uuid = \"GPU-1\" , b!='x', c=~`a.*`, d!~\"z|y\", } ");
    CHECK(s && s->n_matchers == 4);
    if (s) {
        CHECK(s->matchers[0].op == KILN_MATCH_EQUAL && !strcmp(s->matchers[0].value, "GPU-1"));
        CHECK(s->matchers[1].op == KILN_MATCH_NOT_EQUAL && !strcmp(s->matchers[1].value, "x"));
        CHECK(s->matchers[2].op == KILN_MATCH_REGEX);
        CHECK(s->matchers[3].op == KILN_MATCH_NOT_REGEX);
    }
    kiln_selector_free(s);

    s = parse("{__name__=~\"nv_.*\"}");
    CHECK(s && s->metric == NULL && s->n_matchers == 1);
    kiln_selector_free(s);

    s = parse("m{a=\"q\\\"uote\\\\ \\n\"}");
    CHECK(s && !strcmp(s->matchers[0].value, "q\"uote\\ \n"));
    kiln_selector_free(s);

    s = parse("m{a=~\"[+*]+x{2,3}(ab)?[]a]*\"}");
    CHECK(s != NULL);
    kiln_label_t rl[] = {{"a", "+*xxab]"}};
    CHECK(s && kiln_selector_matches(s, "m", rl, 1));
    kiln_selector_free(s);

    s = parse("job:rate5m{}");
    CHECK(s && !strcmp(s->metric, "job:rate5m"));
    kiln_selector_free(s);

    size_t used = 0;
    kiln_selector_t *p = NULL;
    const char *expr = "m{a=\"b\"}[5m] > 3";
    CHECK(kiln_selector_parse_prefix(expr, strlen(expr), &p, &used) == KILN_OK);
    CHECK(used == 8);
    kiln_selector_free(p);
}

static void test_matching(void)
{
    kiln_selector_t *s = parse("m{a=\"1\", b!=\"2\", c=~\"x|yz\", d!~\"q.*\"}");
    kiln_label_t l1[] = {{"a", "1"}, {"b", "3"}, {"c", "yz"}, {"d", "rq"}};
    CHECK(kiln_selector_matches(s, "m", l1, 4));
    CHECK(!kiln_selector_matches(s, "other", l1, 4));
    kiln_label_t l2[] = {{"a", "1"}, {"c", "yzz"}}; /* anchored: yzz is not x|yz */
    CHECK(!kiln_selector_matches(s, "m", l2, 2));
    kiln_label_t l3[] = {{"a", "1"}, {"c", "x"}, {"d", "qq"}};
    CHECK(!kiln_selector_matches(s, "m", l3, 3));
    kiln_label_t l4[] = {{"a", "1"}, {"c", "x"}}; /* b, d absent = "" */
    CHECK(kiln_selector_matches(s, "m", l4, 2));
    kiln_selector_free(s);

    s = parse("{__name__=~\"nv_.*\", gpu_uuid=\"\"}");
    CHECK(s && kiln_selector_matches(s, "nv_cpu_utilization", NULL, 0));
    kiln_label_t g[] = {{"gpu_uuid", "GPU-1"}};
    CHECK(s && !kiln_selector_matches(s, "nv_gpu_utilization", g, 1));
    CHECK(s && !kiln_selector_matches(s, "kiln_x", NULL, 0));
    kiln_selector_free(s);
}

static void test_errors(void)
{
    expect_error("", "metric name or '{'");
    expect_error("   ", "column 4");
    expect_error("m{", "label name");
    expect_error("m{a}", "one of = != =~ !~");
    expect_error("m{a=b}", "quoted string");
    expect_error("m{a=\"b}", "not closed");
    expect_error("m{a=\"b\" c=\"d\"}", "',' or '}'");
    expect_error("m{a=\"b\"} x", "end of selector");
    expect_error("{a=\"\"}", "does not match the empty string");
    expect_error("{a=~\".*\"}", "does not match the empty string");
    expect_error("m{a=~\"(\"}", "bad regex");
    expect_error("m{a=~\"(a)\\\\1\"}", "back-references");
    expect_error("m{a=~\"a{1000}\"}", "repeat count");
    expect_error("m{a=~\"a{2}b{2}c{2}d{2}e{2}\"}", "bounded repeats");
    expect_error("m{1a=\"x\"}", "label name");
    expect_error("m{a=~\"a++\"}", "nested repetition");
    expect_error("m{a=~\"a*?\"}", "nested repetition");
    expect_error("m{a=~\"((((((((((((((x)+)+)+)+)+)+)+)+)+)+)+)+)+)+\"}", "too costly");
    expect_error("m{a=~\"((x{20}){20}){20}\"}", "too costly");
    expect_error("m{a=\"x\\", "not closed");
    expect_error("{,}", "label name");
    char big[KILN_SELECTOR_MAX_TEXT + 10];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_error(big, "longer than");
    kiln_selector_t *sel = NULL;
    CHECK(kiln_selector_parse("m{a=\"x\0y\"}", 11, &sel) != KILN_OK);
    CHECK(kiln_selector_parse(NULL, 0, &sel) != KILN_OK);
    kiln_selector_free(NULL);
}

int main(void)
{
    test_parse_forms();
    test_matching();
    test_errors();
    return check_finish();
}
