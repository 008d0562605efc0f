/*
 * http_client.h - a small blocking HTTP/1.1 client over plain TCP sockets,
 * for the alert notifier thread (POST to Alertmanager and webhooks) and for
 * `kiln top --url` (GET /metrics and /api/v1/alerts).
 *
 * Only http:// URLs; every step (resolve, connect, send, receive) is bounded
 * by a timeout, and one request is one connection (Connection: close), which
 * keeps the client simple enough to read in one sitting.
 */
#ifndef KILN_MONITOR_HTTP_CLIENT_H
#define KILN_MONITOR_HTTP_CLIENT_H

#include <stddef.h>

typedef struct kiln_http_url {
    char text[512]; /* the URL as given, for messages */
    char host[256]; /* without brackets for IPv6 literals */
    char port[8];
    char path[512]; /* starts with '/', includes any query */
} kiln_http_url_t;

/* Parses http://host[:port][/path].  Refuses other schemes, user info,
 * empty hosts, bad ports and over-long parts with a message.  0 or -1. */
int kiln_http_url_parse(const char *url, kiln_http_url_t *out, char *err, size_t errlen);

/* Sends one request and reads the answer.  body may be NULL for GET.  On
 * success returns 0 with the status code and, when resp_body is not NULL,
 * the body (malloc'd, NUL-terminated, caller frees) and its length.  On a
 * network or protocol failure returns -1 with a message. */
int kiln_http_request(const kiln_http_url_t *url, const char *method, const char *content_type,
                      const char *body, size_t body_len, double timeout_seconds, int *status,
                      char **resp_body, size_t *resp_len, char *err, size_t errlen);

/* POST without keeping the answer's body. */
int kiln_http_post(const kiln_http_url_t *url, const char *content_type, const char *body, size_t body_len,
                   double timeout_seconds, int *status, char *err, size_t errlen);

#endif
