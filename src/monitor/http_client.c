/*
 * http_client.c - the blocking HTTP/1.1 client described in http_client.h.
 *
 * Sockets are non-blocking underneath so that connect, send and receive can
 * each wait with poll() under one overall deadline; the answer is read to
 * the end of the connection (we send Connection: close), then split into
 * status line, headers and body, decoding chunked transfer encoding.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "monitor/http_client.h"

/* The largest answer we keep: /metrics of a big host fits many times. */
#define RESPONSE_MAX (64u << 20)

int kiln_http_url_parse(const char *url, kiln_http_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url) {
        snprintf(err, errlen, "empty URL");
        return -1;
    }
    if (strlen(url) >= sizeof out->text) {
        snprintf(err, errlen, "URL longer than %zu characters", sizeof out->text - 1);
        return -1;
    }
    strcpy(out->text, url);
    if (strncasecmp(url, "http://", 7) != 0) {
        if (strncasecmp(url, "https://", 8) == 0)
            snprintf(err, errlen, "https is not supported; use an http:// URL (e.g. through a local proxy)");
        else
            snprintf(err, errlen, "URL must start with http://");
        return -1;
    }
    const char *p = url + 7;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        snprintf(err, errlen, "user names or passwords in the URL are not supported");
        return -1;
    }
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') { /* IPv6 literal */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            snprintf(err, errlen, "unterminated '[' in the host");
            return -1;
        }
        host = p + 1;
        host_end = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':') {
                snprintf(err, errlen, "unexpected text after ']' in the host");
                return -1;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon ? colon : end;
        if (colon)
            port = colon + 1;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0) {
        snprintf(err, errlen, "no host in the URL");
        return -1;
    }
    if (hl >= sizeof out->host) {
        snprintf(err, errlen, "host name too long");
        return -1;
    }
    for (const char *c = host; c < host_end; c++)
        if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == ':' || *c == '_' || *c == '%')) {
            snprintf(err, errlen, "invalid character '%c' in the host", *c);
            return -1;
        }
    memcpy(out->host, host, hl);
    if (port) {
        size_t pl = (size_t)(end - port);
        if (pl == 0 || pl > 5) {
            snprintf(err, errlen, "bad port");
            return -1;
        }
        long v = 0;
        for (size_t i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)port[i])) {
                snprintf(err, errlen, "port must be a number");
                return -1;
            }
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535) {
            snprintf(err, errlen, "port %ld out of range 1-65535", v);
            return -1;
        }
        snprintf(out->port, sizeof out->port, "%ld", v);
    } else {
        strcpy(out->port, "80");
    }
    const char *path = end;
    size_t plen = strcspn(path, "#"); /* the fragment is never sent */
    if (plen == 0) {
        strcpy(out->path, "/");
    } else {
        if (plen + 2 > sizeof out->path) {
            snprintf(err, errlen, "path too long");
            return -1;
        }
        if (*path == '?')
            out->path[0] = '/';
        strncat(out->path, path, plen);
    }
    for (const char *c = out->path; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(err, errlen, "the path contains a space or control character");
            return -1;
        }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for `events` on fd until the deadline; 0 ready, -1 timeout/error. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int)ceil(left * 1000));
        if (rc > 0)
            return 0;
        if (rc == 0)
            return -1;
        if (errno != EINTR)
            return -1;
    }
}

static int connect_to(const kiln_http_url_t *url, double deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(url->host, url->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", url->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            if (soerr == 0)
                break;
            last_errno = soerr;
        } else {
            last_errno = errno == EINPROGRESS ? ETIMEDOUT : errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to %s:%s: %s", url->host, url->port,
                 strerror(last_errno ? last_errno : ECONNREFUSED));
    return fd;
}

static int send_all(int fd, const char *data, size_t len, double deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLOUT, deadline) == 0)
            continue;
        return -1;
    }
    return 0;
}

/* Decodes a chunked body in place; returns the decoded length or -1. */
static long dechunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(body + in, len - in, "\r\n", 2);
        if (!eol)
            return -1;
        char *endp;
        unsigned long size = strtoul(body + in, &endp, 16);
        if (endp == body + in)
            return -1;
        in = (size_t)(eol - body) + 2;
        if (size == 0)
            return (long)out;
        if (size > len - in)
            return -1;
        memmove(body + out, body + in, size);
        out += size;
        in += size;
        if (in + 2 > len || memcmp(body + in, "\r\n", 2))
            return -1;
        in += 2;
    }
}

int kiln_http_request(const kiln_http_url_t *url, const char *method, const char *content_type,
                      const char *body, size_t body_len, double timeout_seconds, int *status,
                      char **resp_body, size_t *resp_len, char *err, size_t errlen)
{
    if (resp_body)
        *resp_body = NULL;
    if (resp_len)
        *resp_len = 0;
    double deadline = now_s() + (timeout_seconds > 0 ? timeout_seconds : 5);
    int fd = connect_to(url, deadline, err, errlen);
    if (fd < 0)
        return -1;
    char head[1400];
    int hn;
    int v6 = strchr(url->host, ':') != NULL;
    if (body)
        hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: kiln\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, url->path, v6 ? "[" : "", url->host, v6 ? "]" : "", url->port,
                      content_type ? content_type : "application/octet-stream", body_len);
    else
        hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: kiln\r\nConnection: close\r\n\r\n",
                      method, url->path, v6 ? "[" : "", url->host, v6 ? "]" : "", url->port);
    if (hn < 0 || (size_t)hn >= sizeof head || send_all(fd, head, (size_t)hn, deadline) != 0 ||
        (body && send_all(fd, body, body_len, deadline) != 0)) {
        snprintf(err, errlen, "cannot send the request to %s:%s: %s", url->host, url->port,
                 errno ? strerror(errno) : "timeout");
        close(fd);
        return -1;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= RESPONSE_MAX) {
                snprintf(err, errlen, "answer larger than %u bytes", RESPONSE_MAX);
                goto out;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd, POLLIN, deadline) == 0)
            continue;
        snprintf(err, errlen, "no complete answer from %s:%s within %.1f s", url->host, url->port,
                 timeout_seconds);
        goto out;
    }
    buf[len] = '\0';
    int code = 0;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) || sscanf(buf + 9, "%3d", &code) != 1 || code < 100) {
        snprintf(err, errlen, "the answer from %s:%s is not HTTP", url->host, url->port);
        goto out;
    }
    *status = code;
    char *hend = strstr(buf, "\r\n\r\n");
    if (!hend) {
        snprintf(err, errlen, "the answer from %s:%s has no end of headers", url->host, url->port);
        goto out;
    }
    size_t body_off = (size_t)(hend - buf) + 4;
    size_t blen = len - body_off;
    int chunked = 0;
    for (char *h = strstr(buf, "\r\n") + 2; h < hend; h = strstr(h, "\r\n") + 2) {
        if (!strncasecmp(h, "Transfer-Encoding:", 18)) {
            char *v = h + 18;
            while (*v == ' ')
                v++;
            if (!strncasecmp(v, "chunked", 7))
                chunked = 1;
        }
    }
    if (resp_body) {
        memmove(buf, buf + body_off, blen);
        buf[blen] = '\0';
        if (chunked) {
            long dl = dechunk(buf, blen);
            if (dl < 0) {
                snprintf(err, errlen, "bad chunked encoding in the answer from %s:%s", url->host, url->port);
                goto out;
            }
            blen = (size_t)dl;
            buf[blen] = '\0';
        }
        *resp_body = buf;
        if (resp_len)
            *resp_len = blen;
        buf = NULL;
    }
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

int kiln_http_post(const kiln_http_url_t *url, const char *content_type, const char *body, size_t body_len,
                   double timeout_seconds, int *status, char *err, size_t errlen)
{
    return kiln_http_request(url, "POST", content_type, body, body_len, timeout_seconds, status, NULL, NULL,
                             err, errlen);
}
