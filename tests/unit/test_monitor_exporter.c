/*
 * test_monitor_exporter.c - the metric family writer and the exporter's
 * collector list: exact exposition text, escaping, value formatting and
 * the errors that keep a bad collector from breaking a scrape.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "monitor/exporter.h"

static void collector_a(kiln_metrics_writer_t *w, void *user)
{
    int *calls = user;
    (*calls)++;
    kiln_metrics_family(w, "a_total", KILN_METRIC_COUNTER, "A things.");
    kiln_metrics_sample(w, NULL, NULL, 0, 3);
}

static void collector_dup(kiln_metrics_writer_t *w, void *user)
{
    (void)user;
    /* Writes the same family again: refused, nothing written. */
    CHECK(kiln_metrics_family(w, "a_total", KILN_METRIC_COUNTER, "again") != KILN_OK);
    CHECK(kiln_metrics_sample(w, NULL, NULL, 0, 1) != KILN_OK);
}

static void test_writer_text(void)
{
    kiln_metrics_writer_t *w = kiln_metrics_writer_new();
    CHECK(w != NULL);
    CHECK(kiln_metrics_family(w, "nv_gpu_utilization", KILN_METRIC_GAUGE, "GPU utilization\\rate\nx") == KILN_OK);
    kiln_label_t l[] = {{"gpu_uuid", "GPU-1"}, {"note", "a\"b\\c\nd"}, {"skip", NULL}};
    CHECK(kiln_metrics_sample(w, NULL, l, 3, 0.5) == KILN_OK);
    CHECK(kiln_metrics_family(w, "h", KILN_METRIC_HISTOGRAM, "hist") == KILN_OK);
    kiln_label_t le[] = {{"le", "+Inf"}};
    CHECK(kiln_metrics_sample(w, "_bucket", le, 1, 2) == KILN_OK);
    CHECK(kiln_metrics_sample(w, "_sum", NULL, 0, 7.25) == KILN_OK);
    CHECK(kiln_metrics_sample(w, "_bogus", NULL, 0, 1) != KILN_OK);
    size_t len = 0;
    const char *t = kiln_metrics_writer_text(w, &len);
    const char *want = "# HELP nv_gpu_utilization GPU utilization\\\\rate\\nx\n"
                       "# TYPE nv_gpu_utilization gauge\n"
                       "nv_gpu_utilization{gpu_uuid=\"GPU-1\",note=\"a\\\"b\\\\c\\nd\"} 0.5\n"
                       "# HELP h hist\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 7.25\n";
    CHECK_MSG(!strcmp(t, want), "got:\n%s", t);
    CHECK(len == strlen(want));
    kiln_metrics_writer_free(w);
}

static void test_writer_errors(void)
{
    kiln_metrics_writer_t *w = kiln_metrics_writer_new();
    CHECK(kiln_metrics_sample(w, NULL, NULL, 0, 1) != KILN_OK); /* no family yet */
    CHECK(kiln_metrics_family(w, "9bad", KILN_METRIC_GAUGE, "x") != KILN_OK);
    CHECK(kiln_metrics_family(w, "bad-name", KILN_METRIC_GAUGE, "x") != KILN_OK);
    CHECK(kiln_metrics_family(w, "", KILN_METRIC_GAUGE, "x") != KILN_OK);
    CHECK(kiln_metrics_family(w, NULL, KILN_METRIC_GAUGE, "x") != KILN_OK);
    CHECK(kiln_metrics_family(w, "ok:name_1", KILN_METRIC_UNTYPED, NULL) == KILN_OK);
    kiln_label_t bad[] = {{"bad-label", "v"}};
    CHECK(kiln_metrics_sample(w, NULL, bad, 1, 1) != KILN_OK);
    kiln_label_t bad2[] = {{"1x", "v"}};
    CHECK(kiln_metrics_sample(w, NULL, bad2, 1, 1) != KILN_OK);
    const char *t = kiln_metrics_writer_text(w, NULL);
    CHECK(!strcmp(t, "# HELP ok:name_1 \n# TYPE ok:name_1 untyped\n"));
    CHECK(kiln_metrics_raw(w, "ALERTS{a=\"b\"} 1", 15) == KILN_OK);
    CHECK(strstr(kiln_metrics_writer_text(w, NULL), "ALERTS{a=\"b\"} 1\n") != NULL);
    CHECK(!kiln_metrics_writer_failed(w));
    kiln_metrics_writer_free(w);
}

static void test_values(void)
{
    char b[40];
    kiln_metrics_format_value(NAN, b, sizeof b);
    CHECK(!strcmp(b, "NaN"));
    kiln_metrics_format_value(INFINITY, b, sizeof b);
    CHECK(!strcmp(b, "+Inf"));
    kiln_metrics_format_value(-INFINITY, b, sizeof b);
    CHECK(!strcmp(b, "-Inf"));
    kiln_metrics_format_value(0.1, b, sizeof b);
    CHECK(!strcmp(b, "0.1"));
    kiln_metrics_format_value(300, b, sizeof b);
    CHECK(!strcmp(b, "300"));
    kiln_metrics_format_value(17179869184.0, b, sizeof b);
    CHECK(!strcmp(b, "17179869184"));
    kiln_metrics_format_value(-2.5e-7, b, sizeof b);
    CHECK(strtod(b, NULL) == -2.5e-7);
    kiln_metrics_format_value(1.0 / 3.0, b, sizeof b);
    CHECK(strtod(b, NULL) == 1.0 / 3.0);
    CHECK(!strcmp(kiln_metric_type_name(KILN_METRIC_SUMMARY), "summary"));
}

static void test_exporter(void)
{
    kiln_exporter_t *e = kiln_exporter_new();
    int calls = 0;
    CHECK(kiln_exporter_add_collector(e, collector_a, &calls) == KILN_OK);
    CHECK(kiln_exporter_add_collector(e, collector_a, &calls) == KILN_OK); /* no duplicate */
    CHECK(kiln_exporter_add_collector(e, collector_dup, NULL) == KILN_OK);
    CHECK(kiln_exporter_add_collector(e, NULL, NULL) != KILN_OK);
    kiln_metrics_writer_t *w = kiln_exporter_render(e);
    CHECK(w != NULL);
    CHECK(calls == 1);
    CHECK(!strcmp(kiln_metrics_writer_text(w, NULL), "# HELP a_total A things.\n# TYPE a_total counter\na_total 3\n"));
    kiln_metrics_writer_free(w);
    kiln_exporter_remove_collector(e, collector_a, &calls);
    kiln_exporter_remove_collector(e, collector_dup, NULL);
    w = kiln_exporter_render(e);
    CHECK(calls == 1);
    CHECK(!strcmp(kiln_metrics_writer_text(w, NULL), ""));
    kiln_metrics_writer_free(w);
    kiln_exporter_free(e);
}

int main(void)
{
    test_writer_text();
    test_writer_errors();
    test_values();
    test_exporter();
    return check_finish();
}
