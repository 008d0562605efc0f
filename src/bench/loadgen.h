/*
 * loadgen.h - `kiln bench --url`: a closed-loop load generator for any
 * KServe v2 server (kiln's or Triton's), measuring it the way Triton's
 * perf_analyzer does in its concurrency mode.
 *
 * For each concurrency level N, N keep-alive HTTP/1.1 connections each keep
 * exactly one infer request in flight: send, read the whole answer, send
 * again.  The connections are spread over one or a few client threads, each
 * an edge-triggered epoll loop over non-blocking sockets, so the client
 * costs a few system calls per request and does not become the bottleneck.
 * The request body is built once (JSON or binary tensor data) and shared.
 * After a warm-up, every answer completed inside the measurement window
 * counts: its latency (first byte sent to last byte received) for the
 * percentiles, its status for the error counts.  The server's own view comes
 * from GET /v2/models/NAME/stats taken at the start and the end of the
 * window (queue and compute times per request, average batch size).
 */
#ifndef KILN_BENCH_LOADGEN_H
#define KILN_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* `kiln bench --url ...`: argv[0] is "bench".  Returns the exit status:
 * 0 done without errors, 1 some requests failed, 2 bad usage, bad input,
 * an unreachable server or an unknown model. */
int kiln_loadgen_main(int argc, char **argv);

/* ---- The incremental HTTP/1.1 response reader (exposed for tests) ------ */

enum {
    KILN_HTTP_READ_HEADER = 0, /* collecting the status line and headers */
    KILN_HTTP_READ_BODY,       /* Content-Length bytes remain */
    KILN_HTTP_READ_CHUNK_SIZE, /* a chunk-size line */
    KILN_HTTP_READ_CHUNK_DATA, /* chunk bytes remain */
    KILN_HTTP_READ_CHUNK_END,  /* the CRLF after chunk data */
    KILN_HTTP_READ_TRAILER,    /* trailer lines after the last chunk */
    KILN_HTTP_READ_UNTIL_EOF,  /* no length given: the body ends with the connection */
    KILN_HTTP_READ_DONE,
};

#define KILN_HTTP_HEADER_MAX 16384

typedef struct kiln_http_reader {
    int state;
    int status;         /* the status code, once the header is read */
    bool close;         /* the server will close the connection after this answer */
    uint64_t remaining; /* body or chunk bytes left */
    size_t line_len;    /* bytes collected in buf (header, chunk-size or trailer line) */
    char buf[KILN_HTTP_HEADER_MAX];
    /* When capture is set the body is kept (up to capture_max bytes). */
    bool capture;
    size_t capture_max;
    char *body; /* malloc'd; the reader's owner frees it with kiln_http_reader_free */
    size_t body_len, body_cap;
} kiln_http_reader_t;

/* Prepares r for the next answer (keeps the capture settings and buffer). */
void kiln_http_reader_reset(kiln_http_reader_t *r);
void kiln_http_reader_free(kiln_http_reader_t *r);

/* Feeds len bytes.  Returns the bytes consumed (less than len only when the
 * answer ended inside data: the state is then KILN_HTTP_READ_DONE), or -1
 * on a malformed answer. */
ssize_t kiln_http_reader_feed(kiln_http_reader_t *r, const char *data, size_t len);

/* The connection ended: completes a body read until EOF.  Returns true when
 * the answer is complete. */
bool kiln_http_reader_eof(kiln_http_reader_t *r);

#endif
