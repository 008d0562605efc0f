/*
 * fuzz_selector.c - libFuzzer target for the monitoring API's parsers of
 * untrusted bytes: the PromQL series selector of /api/v1/query_range and
 * /api/v1/series (selector.c), and the time, duration and scalar-query
 * parameters (api.c).  A parsed selector is also matched against a fixed label set,
 * so the compiled regexes run too.  Build: clang -fsanitize=fuzzer,address
 * (tests/fuzz/run_fuzz.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/api.h"
#include "monitor/selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_selector_t *sel = NULL;
    if (kiln_selector_parse((const char *)data, size, &sel) == KILN_OK) {
        kiln_label_t labels[] = {{"gpu_uuid", "GPU-0"}, {"model", "resnet"}, {"le", "+Inf"}};
        kiln_selector_matches(sel, "nv_gpu_utilization", labels, 3);
        kiln_selector_matches(sel, "x", NULL, 0);
        kiln_selector_free(sel);
    }
    size_t used = 0;
    if (kiln_selector_parse_prefix((const char *)data, size, &sel, &used) == KILN_OK) {
        if (used > size)
            abort();
        kiln_selector_free(sel);
    }
    /* The time and duration parsers take NUL-terminated text. */
    if (size <= 256) {
        char text[257];
        memcpy(text, data, size);
        text[size] = '\0';
        int64_t ms;
        kiln_api_parse_time(text, &ms);
        kiln_api_parse_duration(text, &ms);
        double v;
        kiln_api_scalar_query(text, &v);
    }
    return 0;
}
