/*
 * fuzz_top_input.c - libFuzzer target for what `kiln top` and the alert
 * notifier read from the network or the command line: the Prometheus text
 * parser and the snapshot built from it, the /api/v1/alerts JSON reader,
 * and the http:// URL parser.  The first byte picks which one gets the
 * rest of the input.
 *
 * Build and run: tests/fuzz/run_fuzz.sh (clang -fsanitize=fuzzer,address).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/http_client.h"
#include "monitor/top.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256 * 1024)
        return 0;
    uint8_t mode = data[0] % 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char err[256];
    if (mode == 0) {
        kiln_prom_set_t set = {0};
        kiln_prom_parse(text, len, &set, err, sizeof err);
        static kiln_top_snapshot_t a, b;
        kiln_top_build(&set, NULL, 1000, &a);
        kiln_top_build(&set, &a, 1001, &b);
        FILE *out = fopen("/dev/null", "w");
        if (out) {
            kiln_top_print(&b, "fuzz", out);
            fclose(out);
        }
        kiln_prom_set_free(&set);
    } else if (mode == 1) {
        static kiln_top_snapshot_t s;
        kiln_top_read_alerts(text, len, &s, err, sizeof err);
    } else {
        char *url = malloc(len + 1);
        if (!url)
            return 0;
        memcpy(url, text, len);
        url[len] = '\0';
        kiln_http_url_t u;
        kiln_http_url_parse(url, &u, err, sizeof err);
        free(url);
    }
    return 0;
}
