/*
 * dashboard.c - the /dashboard routes (see dashboard.h): find the asset
 * directory, check each requested name against a strict pattern (no paths,
 * no dot files), read the file and answer it with its content type.
 *
 * Files are read on each request rather than cached: they are small, the
 * page is opened rarely, and an updated build is served without a restart.
 */
#include "monitor/dashboard.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

#define ASSET_MAX_BYTES (8u << 20)
#define INDEX_FILE "dashboard.html"

int kiln_dashboard_name_ok(const char *name)
{
    if (!name || !*name || name[0] == '.' || strlen(name) > 100)
        return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return 0;
    return 1;
}

static int has_index(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, INDEX_FILE) >= (int)sizeof path)
        return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *kiln_dashboard_dir(char *buf, size_t len)
{
    const char *env = getenv("KILN_DASHBOARD_DIR");
    if (env && *env) {
        if (!has_index(env))
            return NULL;
        snprintf(buf, len, "%s", env);
        return buf;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    const char *tails[] = {"/dashboard", "/../share/kiln/dashboard"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char cand[PATH_MAX];
        if (snprintf(cand, sizeof cand, "%s%s", exe, tails[i]) >= (int)sizeof cand)
            continue;
        if (has_index(cand)) {
            snprintf(buf, len, "%s", cand);
            return buf;
        }
    }
    return NULL;
}

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".png"))
        return "image/png";
    if (!strcmp(dot, ".json"))
        return "application/json";
    return "application/octet-stream";
}

static void missing_page(kiln_http_request_t *req)
{
    static const char page[] =
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>kiln dashboard</title></head><body>"
        "<h1>kiln dashboard: assets not found</h1>"
        "<p>The dashboard files (dashboard.html, dashboard.js, uPlot) were not found in $KILN_DASHBOARD_DIR, "
        "in dashboard/ next to the kiln binary, or in ../share/kiln/dashboard next to it. "
        "Run <code>make</code> in the kiln source tree to build them into build/dashboard/.</p>"
        "<p>The monitoring API still answers: <a href=\"/metrics\">/metrics</a>, "
        "<a href=\"/api/v1/alerts\">/api/v1/alerts</a>.</p></body></html>";
    kiln_http_respond(req, 503, "text/html; charset=utf-8", page, sizeof page - 1);
}

static void serve_file(kiln_http_request_t *req, const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        kiln_http_respond_error(req, 404, "no such dashboard file");
        return;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        char msg[200];
        snprintf(msg, sizeof msg, "no dashboard file '%s'", name);
        kiln_http_respond_error(req, 404, msg);
        return;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)ASSET_MAX_BYTES) {
        fclose(f);
        kiln_http_respond_error(req, 404, "not a dashboard file");
        return;
    }
    size_t size = (size_t)st.st_size;
    char *data = malloc(size ? size : 1);
    if (!data) {
        fclose(f);
        kiln_http_respond_error(req, 500, "out of memory");
        return;
    }
    size_t got = fread(data, 1, size, f);
    fclose(f);
    if (got != size) {
        free(data);
        kiln_http_respond_error(req, 500, "cannot read the dashboard file");
        return;
    }
    kiln_http_respond(req, 200, content_type(name), data, size);
    free(data);
}

static void dashboard_handler(kiln_http_request_t *req, void *user)
{
    (void)user;
    const char *method = kiln_http_request_method(req);
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        kiln_http_respond_error(req, 405, "the dashboard answers GET only");
        return;
    }
    char dir[PATH_MAX];
    if (!kiln_dashboard_dir(dir, sizeof dir)) {
        missing_page(req);
        return;
    }
    const char *path = kiln_http_request_path(req);
    const char *name;
    if (!strcmp(path, "/dashboard") || !strcmp(path, "/dashboard/"))
        name = INDEX_FILE;
    else
        name = path + strlen("/dashboard/");
    if (!kiln_dashboard_name_ok(name)) {
        kiln_http_respond_error(req, 404, "no such dashboard file");
        return;
    }
    serve_file(req, dir, name);
}

kiln_status_t kiln_dashboard_register(kiln_metrics_server_t *srv)
{
    kiln_status_t st = kiln_metrics_server_handle(srv, "/dashboard", dashboard_handler, NULL);
    if (st == KILN_OK)
        st = kiln_metrics_server_handle(srv, "/dashboard/", dashboard_handler, NULL);
    return st;
}

void kiln_dashboard_unregister(kiln_metrics_server_t *srv)
{
    kiln_metrics_server_unhandle(srv, "/dashboard");
    kiln_metrics_server_unhandle(srv, "/dashboard/");
}
