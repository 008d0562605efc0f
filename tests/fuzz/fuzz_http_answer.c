/*
 * fuzz_http_answer.c - libFuzzer target for the HTTP/1.1 answer reader of
 * `kiln bench --url` (bench/loadgen.h).  The first byte picks a piece size;
 * the rest is what a server might send.  Feeding it whole and feeding it in
 * pieces must agree on everything: the bytes consumed, failure, completion,
 * status, keep-alive and the body kept.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/loadgen.h"

typedef struct outcome {
    ssize_t used; /* -1: malformed */
    int state, status;
    bool close;
    size_t body_len;
} outcome_t;

static outcome_t run(kiln_http_reader_t *r, const char *data, size_t len, size_t step)
{
    outcome_t o = {0};
    kiln_http_reader_reset(r);
    size_t off = 0;
    while (off < len && r->state != KILN_HTTP_READ_DONE) {
        size_t n = step < len - off ? step : len - off;
        ssize_t used = kiln_http_reader_feed(r, data + off, n);
        if (used < 0 || (size_t)used > n) {
            o.used = -1;
            return o;
        }
        off += (size_t)used;
        if ((size_t)used < n)
            break;
    }
    kiln_http_reader_eof(r);
    o.used = (ssize_t)off;
    o.state = r->state;
    o.status = r->status;
    o.close = r->close;
    o.body_len = r->body_len;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    kiln_http_reader_t whole = {.capture = true, .capture_max = 1 << 16};
    kiln_http_reader_t parts = {.capture = true, .capture_max = 1 << 16};
    outcome_t a = run(&whole, text, len, len ? len : 1);
    outcome_t b = run(&parts, text, len, step);
    if (a.used != b.used)
        abort();
    if (a.used >= 0) {
        if (a.state != b.state || a.status != b.status || a.close != b.close || a.body_len != b.body_len)
            abort();
        if (a.body_len && memcmp(whole.body, parts.body, a.body_len) != 0)
            abort();
        if (a.state == KILN_HTTP_READ_DONE && (a.status < 100 || a.status > 599))
            abort();
    }
    kiln_http_reader_free(&whole);
    kiln_http_reader_free(&parts);
    return 0;
}
