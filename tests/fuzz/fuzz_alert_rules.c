/*
 * fuzz_alert_rules.c - libFuzzer target for the alert rule loader: the
 * YAML rule-file parser, the PromQL-subset expression parser and the
 * template parser.  The first byte picks what the rest of the input is
 * (a rule file, one expression, one template); a rule file that loads is
 * also evaluated once against a small synthetic series and rendered to the
 * ALERTS text and the API JSON, so the state machine and the output paths
 * see whatever the parsers let through.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (clang -fsanitize=fuzzer,address).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/alert_internal.h"

static int one_series(void *ctx, const kiln_alert_selector_t *sel, double start, double end,
                      kiln_series_set_t *out, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    const char *names[] = {"__name__", "gpu_uuid", "job"};
    const char *values[] = {kiln_alert_selector_metric(sel) ? kiln_alert_selector_metric(sel) : "up", "GPU-0",
                            "kiln"};
    if (!kiln_alert_selector_matches(sel, names, values, 3))
        return 0;
    kiln_series_t *s = kiln_series_set_add(out, names, values, 3);
    if (!s)
        return -1;
    for (double t = start; t <= end; t += (end - start) / 7 + 1e-3)
        if (kiln_series_add_sample(s, t, t - start) != 0)
            return -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    uint8_t mode = data[0] % 3;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char err[512];
    if (mode == 0) {
        kiln_alert_rules_t *rules = NULL;
        if (kiln_alert_rules_parse(text, size - 1, "fuzz.yml", &rules, err, sizeof err) == 0) {
            kiln_alert_source_t src = {one_series, NULL};
            kiln_alert_engine_t *e = kiln_alert_engine_new(rules, &src);
            if (e) {
                kiln_alert_engine_evaluate(e, 1e9, err, sizeof err);
                kiln_alert_engine_evaluate(e, 1e9 + 3600, err, sizeof err);
                free(kiln_alert_engine_metrics_text(e));
                free(kiln_alert_engine_api_json(e));
                free(kiln_alert_engine_rules_json(e));
                kiln_alert_engine_free(e);
            } else {
                kiln_alert_rules_free(rules);
            }
        }
    } else if (mode == 1) {
        kiln_alert_expr_check(text, err, sizeof err);
    } else {
        alert_template_t t;
        size_t off;
        if (alert_template_parse(text, &t, &off, err, sizeof err) == 0) {
            alert_labels_t l = {0};
            alert_labels_set(&l, "gpu_uuid", "GPU-0");
            free(alert_template_render(&t, &l, 91.25));
            alert_labels_clear(&l);
            alert_template_clear(&t);
        }
    }
    free(text);
    return 0;
}
