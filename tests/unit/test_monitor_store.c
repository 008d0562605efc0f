/*
 * test_monitor_store.c - the SQLite history: Prometheus step semantics
 * (lookback, gaps), raw and filtered queries, series listing, minute
 * roll-ups and pruning, persistence across reopen, and the files it must
 * refuse (not SQLite, SQLite but not a kiln history).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/error.h"
#include "monitor/store.h"

#define T0 1699999980000LL /* a whole minute */

static kiln_selector_t *sel_of(const char *text)
{
    kiln_selector_t *s = NULL;
    kiln_selector_parse(text, strlen(text), &s);
    return s;
}

static void append1(kiln_store_t *st, const char *metric, const char *uuid, int64_t ts, double v)
{
    kiln_label_t l[] = {{"gpu_uuid", uuid}};
    kiln_sample_t s = {metric, l, uuid ? 1 : 0, v};
    CHECK(kiln_store_append(st, ts, &s, 1) == KILN_OK);
}

static void test_range_semantics(void)
{
    kiln_store_t *st = NULL;
    CHECK(kiln_store_open(":memory:", NULL, &st) == KILN_OK);
    for (int i = 0; i < 10; i++) {
        append1(st, "nv_gpu_utilization", "GPU-a", T0 + i * 1000, i / 10.0);
        append1(st, "nv_gpu_utilization", "GPU-b", T0 + i * 1000, 1.0);
    }
    kiln_selector_t *sel = sel_of("nv_gpu_utilization{gpu_uuid=\"GPU-a\"}");
    kiln_store_result_t r;
    CHECK(kiln_store_query_range(st, sel, T0, T0 + 9000, 1000, &r) == KILN_OK);
    CHECK(r.count == 1);
    if (r.count == 1) {
        CHECK(!strcmp(r.series[0].metric, "nv_gpu_utilization"));
        CHECK(r.series[0].n_labels == 1 && !strcmp(r.series[0].labels[0].value, "GPU-a"));
        CHECK(r.series[0].n_points == 10);
        CHECK(r.series[0].ts_ms[3] == T0 + 3000);
        CHECK_NEAR(r.series[0].values[3], 0.3, 1e-12);
    }
    kiln_store_result_free(&r);
    /* Step 2.5 s: each step takes the latest sample at or before it. */
    CHECK(kiln_store_query_range(st, sel, T0 + 500, T0 + 9000, 2500, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 4);
    if (r.count == 1 && r.series[0].n_points == 4) {
        CHECK(r.series[0].ts_ms[1] == T0 + 3000);
        CHECK_NEAR(r.series[0].values[1], 0.3, 1e-12);
        CHECK_NEAR(r.series[0].values[0], 0.0, 1e-12);
    }
    kiln_store_result_free(&r);
    /* Lookback: 4 minutes after the last sample still sees it, 6 minutes do not. */
    CHECK(kiln_store_query_range(st, sel, T0 + 9000 + 240000, T0 + 9000 + 360000, 120000, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 1);
    kiln_store_result_free(&r);
    /* Before the first sample: nothing. */
    CHECK(kiln_store_query_range(st, sel, T0 - 5000, T0 - 1000, 1000, &r) == KILN_OK);
    CHECK(r.count == 0);
    kiln_store_result_free(&r);
    kiln_selector_free(sel);

    sel = sel_of("nv_gpu_utilization");
    CHECK(kiln_store_query_raw(st, sel, T0 + 2000, T0 + 4000, &r) == KILN_OK);
    CHECK(r.count == 2 && r.series[0].n_points == 3 && r.series[1].n_points == 3);
    kiln_store_result_free(&r);
    CHECK(kiln_store_series(st, sel, T0, T0 + 100000, &r) == KILN_OK);
    CHECK(r.count == 2 && r.series[0].n_points == 0);
    kiln_store_result_free(&r);
    CHECK(kiln_store_series(st, sel, T0 + 100000, T0 + 200000, &r) == KILN_OK);
    CHECK(r.count == 0);
    kiln_store_result_free(&r);
    /* Argument errors. */
    CHECK(kiln_store_query_range(st, sel, T0, T0 - 1, 1000, &r) == KILN_ERR_INVALID_ARGUMENT);
    CHECK(kiln_store_query_range(st, sel, T0, T0 + 1000, 0, &r) == KILN_ERR_INVALID_ARGUMENT);
    CHECK(kiln_store_query_range(st, sel, 0, T0, 1, &r) == KILN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(kiln_last_error(), "exceed") != NULL);
    kiln_selector_free(sel);
    kiln_store_close(st);
}

static bool only_b(void *ctx, const char *metric, const kiln_label_t *labels, size_t n)
{
    (*(int *)ctx)++;
    return n == 1 && !strcmp(labels[0].value, "GPU-b");
}

static void test_append_rules(void)
{
    kiln_store_t *st = NULL;
    CHECK(kiln_store_open(":memory:", NULL, &st) == KILN_OK);
    kiln_label_t bad[] = {{"bad-name", "x"}};
    kiln_sample_t s[] = {{"ok_metric", NULL, 0, 1}, {"ok_metric2", bad, 1, 2}};
    CHECK(kiln_store_append(st, T0, s, 2) == KILN_ERR_INVALID_ARGUMENT);
    kiln_sample_t s2 = {"bad metric", NULL, 0, 1};
    CHECK(kiln_store_append(st, T0, &s2, 1) == KILN_ERR_INVALID_ARGUMENT);
    kiln_selector_t *sel = sel_of("ok_metric");
    kiln_store_result_t r;
    CHECK(kiln_store_query_raw(st, sel, 0, T0 * 2, &r) == KILN_OK && r.count == 0); /* all or nothing */
    kiln_store_result_free(&r);
    /* NaN is skipped, infinities kept, same timestamp replaces. */
    kiln_sample_t n[] = {{"ok_metric", NULL, 0, NAN}};
    CHECK(kiln_store_append(st, T0, n, 1) == KILN_OK);
    append1(st, "ok_metric", NULL, T0 + 1, INFINITY);
    append1(st, "ok_metric", NULL, T0 + 2, 5);
    append1(st, "ok_metric", NULL, T0 + 2, 6);
    CHECK(kiln_store_query_raw(st, sel, 0, T0 * 2, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 2);
    if (r.count == 1 && r.series[0].n_points == 2) {
        CHECK(isinf(r.series[0].values[0]));
        CHECK(r.series[0].values[1] == 6);
    }
    kiln_store_result_free(&r);
    kiln_selector_free(sel);
    /* Empty label values are absent labels: same series. */
    kiln_label_t e[] = {{"x", ""}};
    kiln_sample_t se = {"ok_metric", e, 1, 7};
    CHECK(kiln_store_append(st, T0 + 3, &se, 1) == KILN_OK);
    sel = sel_of("ok_metric");
    CHECK(kiln_store_series(st, sel, 0, T0 * 2, &r) == KILN_OK && r.count == 1);
    kiln_store_result_free(&r);
    kiln_selector_free(sel);
    /* Filtered query (the alert engine's path). */
    append1(st, "g", "GPU-a", T0, 1);
    append1(st, "g", "GPU-b", T0, 2);
    int asked = 0;
    CHECK(kiln_store_query_raw_filtered(st, "g", only_b, &asked, 0, T0 * 2, &r) == KILN_OK);
    CHECK(asked == 2 && r.count == 1 && r.series[0].values[0] == 2);
    kiln_store_result_free(&r);
    CHECK(kiln_store_query_raw_filtered(st, NULL, NULL, NULL, 0, 1, &r) == KILN_ERR_INVALID_ARGUMENT);
    kiln_store_close(st);
}

static void test_rollup_and_prune(void)
{
    kiln_store_options_t o = {.raw_retention_ms = 120000, .rollup_retention_ms = 600000};
    kiln_store_t *st = NULL;
    CHECK(kiln_store_open(":memory:", &o, &st) == KILN_OK);
    /* 5 minutes of 1 s samples: value = second within the minute. */
    for (int i = 0; i < 300; i++)
        append1(st, "temp", "GPU-a", T0 + i * 1000, i % 60);
    CHECK(kiln_store_maintain(st, T0 + 300000) == KILN_OK);
    /* Raw kept from T0+180 s; minutes 0..2 come from roll-ups (avg 29.5). */
    kiln_selector_t *sel = sel_of("temp");
    kiln_store_result_t r;
    CHECK(kiln_store_query_raw(st, sel, T0, T0 + 300000, &r) == KILN_OK);
    CHECK(r.count == 1);
    if (r.count == 1) {
        CHECK_MSG(r.series[0].n_points == 3 + 120, "%zu points", r.series[0].n_points);
        CHECK(r.series[0].ts_ms[0] == T0 && r.series[0].ts_ms[1] == T0 + 60000);
        CHECK_NEAR(r.series[0].values[0], 29.5, 1e-9);
        CHECK(r.series[0].ts_ms[3] == T0 + 180000);
        for (size_t k = 1; k < r.series[0].n_points; k++)
            CHECK(r.series[0].ts_ms[k] > r.series[0].ts_ms[k - 1]);
    }
    kiln_store_result_free(&r);
    /* A range query across both parts. */
    CHECK(kiln_store_query_range(st, sel, T0, T0 + 299000, 60000, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 5);
    kiln_store_result_free(&r);
    /* Maintenance again is idempotent; much later everything is gone, series too. */
    CHECK(kiln_store_maintain(st, T0 + 300000) == KILN_OK);
    CHECK(kiln_store_maintain(st, T0 + 3600000) == KILN_OK);
    CHECK(kiln_store_series(st, sel, 0, T0 * 2, &r) == KILN_OK && r.count == 0);
    kiln_store_result_free(&r);
    /* The store still accepts the same series after its id was pruned. */
    append1(st, "temp", "GPU-a", T0 + 3600000, 1);
    CHECK(kiln_store_series(st, sel, 0, T0 * 2, &r) == KILN_OK && r.count == 1);
    kiln_store_result_free(&r);
    kiln_selector_free(sel);
    kiln_store_close(st);
}

/* Every value encoding round-trips exactly; repeats, out-of-order and
 * rewritten timestamps inside a minute read back in time order. */
static void test_codec(void)
{
    kiln_store_t *st = NULL;
    CHECK(kiln_store_open(":memory:", NULL, &st) == KILN_OK);
    const double vals[] = {0, 1, -1, 127, -128, 128, 32767, -32768, 40000, -2147483648.0,
                           2147483648.0, 85899345920.0, -9.0e15, 0.1, -2.5e-300, 1e300,
                           INFINITY, -INFINITY, 3, 3, 3, 0.1, 0.1, -0.0, 7};
    size_t n = sizeof vals / sizeof vals[0];
    for (size_t i = 0; i < n; i++)
        append1(st, "c", NULL, T0 + (int64_t)i * 2000, vals[i]); /* spans two minutes */
    kiln_selector_t *sel = sel_of("c");
    kiln_store_result_t r;
    CHECK(kiln_store_query_raw(st, sel, 0, T0 * 2, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == n);
    for (size_t i = 0; r.count == 1 && i < n && i < r.series[0].n_points; i++) {
        CHECK_MSG(memcmp(&r.series[0].values[i], &vals[i], sizeof(double)) == 0 ||
                      (vals[i] == 0 && r.series[0].values[i] == 0),
                  "point %zu: %g vs %g", i, r.series[0].values[i], vals[i]);
        CHECK(r.series[0].ts_ms[i] == T0 + (int64_t)i * 2000);
    }
    kiln_store_result_free(&r);
    /* Out of order and rewritten inside one minute. */
    append1(st, "o", NULL, T0 + 5000, 5);
    append1(st, "o", NULL, T0 + 1000, 1);
    append1(st, "o", NULL, T0 + 3000, 3);
    append1(st, "o", NULL, T0 + 1000, 10);
    append1(st, "o", NULL, T0 + 5000, 10); /* a repeat of the last value, at an old time */
    kiln_selector_free(sel);
    sel = sel_of("o");
    CHECK(kiln_store_query_raw(st, sel, 0, T0 * 2, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 3);
    if (r.count == 1 && r.series[0].n_points == 3) {
        CHECK(r.series[0].ts_ms[0] == T0 + 1000 && r.series[0].values[0] == 10);
        CHECK(r.series[0].ts_ms[1] == T0 + 3000 && r.series[0].values[1] == 3);
        CHECK(r.series[0].ts_ms[2] == T0 + 5000 && r.series[0].values[2] == 10);
    }
    kiln_store_result_free(&r);
    /* Times before 1970 land in the right minute too. */
    append1(st, "neg", NULL, -90500, 1.5);
    kiln_selector_free(sel);
    sel = sel_of("neg");
    CHECK(kiln_store_query_raw(st, sel, -100000, 0, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 1 && r.series[0].ts_ms[0] == -90500);
    kiln_store_result_free(&r);
    kiln_selector_free(sel);
    kiln_store_close(st);
}

/* A damaged chunk (written by hand) costs its tail, never a crash. */
static void test_corrupt_chunk(const char *dir)
{
    char path[256], cmd[600];
    snprintf(path, sizeof path, "%s/corrupt.db", dir);
    kiln_store_t *st = NULL;
    CHECK(kiln_store_open(path, NULL, &st) == KILN_OK);
    append1(st, "m", NULL, T0, 1);
    append1(st, "m", NULL, T0 + 1000, 2);
    kiln_store_close(st);
    /* Append a point with an unknown tag, then one cut short. */
    snprintf(cmd, sizeof cmd, "sqlite3 %s \"UPDATE chunks SET data = data || x'd007' || x'09' || x'0102'\" "
             "2>/dev/null", path);
    if (system(cmd) != 0)
        return;
    CHECK(kiln_store_open(path, NULL, &st) == KILN_OK);
    kiln_selector_t *sel = sel_of("m");
    kiln_store_result_t r;
    CHECK(kiln_store_query_raw(st, sel, 0, T0 * 2, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 2);
    kiln_store_result_free(&r);
    CHECK(kiln_store_maintain(st, T0 + 120000) == KILN_OK);
    kiln_selector_free(sel);
    kiln_store_close(st);
}

static void test_files(void)
{
    char dir[] = "/tmp/kiln_store_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], bad[256], foreign[256];
    snprintf(path, sizeof path, "%s/h.db", dir);
    snprintf(bad, sizeof bad, "%s/not.db", dir);
    snprintf(foreign, sizeof foreign, "%s/foreign.db", dir);
    kiln_store_t *st = NULL;
    CHECK(kiln_store_open(path, NULL, &st) == KILN_OK);
    for (int i = 0; i < 5; i++)
        append1(st, "m", NULL, T0 + i * 1000, i);
    kiln_store_close(st);
    CHECK(kiln_store_open(path, NULL, &st) == KILN_OK);
    kiln_selector_t *sel = sel_of("m");
    kiln_store_result_t r;
    CHECK(kiln_store_query_raw(st, sel, 0, T0 * 2, &r) == KILN_OK);
    CHECK(r.count == 1 && r.series[0].n_points == 5);
    kiln_store_result_free(&r);
    kiln_selector_free(sel);
    kiln_store_close(st);

    FILE *f = fopen(bad, "w");
    fputs("this is not a database, just text that is long enough to have a header........", f);
    fclose(f);
    CHECK(kiln_store_open(bad, NULL, &st) == KILN_ERR_IO && st == NULL);
    CHECK(strstr(kiln_last_error(), "not.db") != NULL);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "sqlite3 %s 'CREATE TABLE t(x)' 2>/dev/null", foreign);
    if (system(cmd) == 0) {
        CHECK(kiln_store_open(foreign, NULL, &st) == KILN_ERR_IO);
        CHECK(strstr(kiln_last_error(), "not a kiln history") != NULL);
    }
    test_corrupt_chunk(dir);
    CHECK(kiln_store_open("/nonexistent/dir/h.db", NULL, &st) == KILN_ERR_IO);
    CHECK(kiln_store_open("", NULL, &st) == KILN_ERR_INVALID_ARGUMENT);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    test_range_semantics();
    test_append_rules();
    test_rollup_and_prune();
    test_codec();
    test_files();
    return check_finish();
}
