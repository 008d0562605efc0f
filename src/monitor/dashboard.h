/*
 * dashboard.h - serves kiln's /dashboard page and its static assets (the
 * page, its script and style, and uPlot) on the metrics HTTP server.
 *
 * The assets are files copied into build/dashboard/ by `make` (uPlot comes
 * from npm); at run time they are looked up in the directory named by the
 * environment variable KILN_DASHBOARD_DIR, else in dashboard/ next to the
 * kiln binary, else in ../share/kiln/dashboard next to it.  Nothing is
 * fetched from the internet.  When no directory has them, /dashboard
 * answers 503 with a page that says which places were searched.
 */
#ifndef KILN_MONITOR_DASHBOARD_H
#define KILN_MONITOR_DASHBOARD_H

#include <stddef.h>

#include "kiln.h"
#include "monitor/http.h"

/* Registers /dashboard and /dashboard/ on srv.  Errors come from the
 * server's registration (the last-error text says why). */
kiln_status_t kiln_dashboard_register(kiln_metrics_server_t *srv);
void kiln_dashboard_unregister(kiln_metrics_server_t *srv);

/* The directory the assets are served from, or NULL when none has them;
 * written to buf (for messages and tests). */
const char *kiln_dashboard_dir(char *buf, size_t len);

/* 1 when `name` is a plain asset file name this server may open (letters,
 * digits, '.', '-', '_', not starting with '.'), else 0. */
int kiln_dashboard_name_ok(const char *name);

#endif
