/*
 * test_loadgen.c - the pieces of `kiln bench --url` that need no server:
 * the incremental HTTP/1.1 response reader (Content-Length, chunked with
 * extensions and trailers, read until EOF, 100 Continue, HTTP/1.0, every
 * answer fed one byte at a time as well as whole, malformed answers) and
 * the client-side KServe v2 request writer, checked by parsing its output
 * with the server's own parser (JSON and binary tensor data).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/loadgen.h"
#include "check.h"
#include "core/tensor.h"
#include "serve/protocol.h"

/* Feeds text whole (step 0) or in pieces of step bytes; returns the bytes
 * consumed in total, or -1. */
static ssize_t feed(kiln_http_reader_t *r, const char *text, size_t len, size_t step)
{
    kiln_http_reader_reset(r);
    size_t off = 0;
    while (off < len && r->state != KILN_HTTP_READ_DONE) {
        size_t n = step && step < len - off ? step : len - off;
        ssize_t used = kiln_http_reader_feed(r, text + off, n);
        if (used < 0)
            return -1;
        off += (size_t)used;
        if ((size_t)used < n)
            break;
    }
    return (ssize_t)off;
}

static void check_answer(const char *text, int status, bool close, const char *body, size_t trailing)
{
    static const size_t steps[] = {0, 1, 2, 7};
    size_t len = strlen(text);
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
        kiln_http_reader_t r = {.capture = true, .capture_max = 1 << 20};
        ssize_t used = feed(&r, text, len, steps[s]);
        if (r.state == KILN_HTTP_READ_UNTIL_EOF)
            kiln_http_reader_eof(&r);
        CHECK_MSG(used == (ssize_t)(len - trailing), "step %zu: used %zd of %zu", steps[s], used, len);
        CHECK_MSG(r.state == KILN_HTTP_READ_DONE, "step %zu: state %d", steps[s], r.state);
        CHECK_MSG(r.status == status, "step %zu: status %d", steps[s], r.status);
        CHECK(r.close == close);
        CHECK_MSG(r.body_len == strlen(body) && (!r.body_len || !memcmp(r.body, body, r.body_len)),
                  "step %zu: body '%.*s'", steps[s], (int)r.body_len, r.body ? r.body : "");
        kiln_http_reader_free(&r);
    }
}

static void check_malformed(const char *text)
{
    kiln_http_reader_t r = {0};
    CHECK_MSG(feed(&r, text, strlen(text), 0) < 0, "accepted: %s", text);
    CHECK_MSG(feed(&r, text, strlen(text), 1) < 0, "accepted bytewise: %s", text);
}

static void test_reader(void)
{
    check_answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello", 200,
                 false, "hello", 0);
    check_answer("HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}", 400, true,
                 "{}", 0);
    check_answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, "", 0);
    /* bytes after the answer are not consumed */
    check_answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1", 200, false, "ab", 8);
    check_answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n1a\r\n, this is the second chunk\r\n0\r\nX-Trailer: 1\r\n\r\n",
                 200, false, "hello, this is the second chunk", 0);
    check_answer("HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 500,
                 false, "", 0);
    check_answer("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc", 200, true, "abc", 0);
    check_answer("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc", 200, false,
                 "abc", 0);
    check_answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, false,
                 "x", 0);
    check_answer("HTTP/1.1 204 No Content\r\n\r\n", 204, false, "", 0);
    /* no length: the body runs to the end of the connection */
    check_answer("HTTP/1.1 200 OK\r\n\r\nuntil eof", 200, true, "until eof", 0);

    check_malformed("HTTP/2 200 OK\r\n\r\n");
    check_malformed("HTTP/1.1 2x0 OK\r\n\r\n");
    check_malformed("hello world\r\n\r\n");
    check_malformed("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
    check_malformed("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n");
    check_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    check_malformed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY");

    /* a header larger than the reader holds */
    size_t big = KILN_HTTP_HEADER_MAX + 100;
    char *text = malloc(big + 1);
    memcpy(text, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(text + 20, 'a', big - 20);
    text[big] = 0;
    check_malformed(text);
    free(text);

    /* an incomplete answer stays incomplete at EOF; a body to EOF completes */
    kiln_http_reader_t r = {0};
    const char *part = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    CHECK(feed(&r, part, strlen(part), 0) == (ssize_t)strlen(part));
    CHECK(!kiln_http_reader_eof(&r));
    kiln_http_reader_free(&r);
}

static void test_write_request(void)
{
    int64_t dims[2] = {2, 3};
    kiln_tensor_t *a = kiln_tensor_create(KILN_DTYPE_FLOAT32, 2, dims);
    int64_t one = 2;
    kiln_tensor_t *b = kiln_tensor_create(KILN_DTYPE_INT64, 1, &one);
    kiln_tensor_t *s = kiln_tensor_create(KILN_DTYPE_STRING, 1, &one);
    for (int i = 0; i < 6; i++)
        ((float *)a->data)[i] = (float)i * 0.5f - 1.0f;
    ((int64_t *)b->data)[0] = -7;
    ((int64_t *)b->data)[1] = 1234567890123ll;
    ((char **)s->data)[0] = strdup("kiln");
    ((char **)s->data)[1] = strdup("");
    const char *names[3] = {"a", "b", "s"};
    const kiln_tensor_t *ts[3] = {a, b, s};
    for (int binary = 0; binary < 2; binary++) {
        char *body = NULL;
        size_t len = 0, json_len = 0;
        CHECK(kiln_v2_write_request(3, names, ts, binary, binary, &body, &len, &json_len) == KILN_OK);
        CHECK(binary ? json_len < len : json_len == len);
        kiln_v2_request_t req;
        kiln_status_t st = kiln_v2_parse_infer(body, len, json_len, &req);
        CHECK_MSG(st == KILN_OK, "binary %d: %s", binary, kiln_last_error());
        if (st == KILN_OK) {
            CHECK(req.n_inputs == 3 && req.binary_default == (binary != 0));
            CHECK(!strcmp(req.input_names[0], "a") && req.inputs[0]->dtype == KILN_DTYPE_FLOAT32);
            CHECK(kiln_shape_equal(req.inputs[0], a) && !memcmp(req.inputs[0]->data, a->data, a->nbytes));
            CHECK(req.inputs[1]->dtype == KILN_DTYPE_INT64 &&
                  ((int64_t *)req.inputs[1]->data)[1] == 1234567890123ll);
            CHECK(req.inputs[2]->dtype == KILN_DTYPE_STRING &&
                  !strcmp(((char **)req.inputs[2]->data)[0], "kiln") &&
                  !strcmp(((char **)req.inputs[2]->data)[1], ""));
            kiln_v2_request_clear(&req);
        }
        free(body);
    }
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    kiln_tensor_free(s);
}

int main(void)
{
    test_reader();
    test_write_request();
    return check_finish();
}
