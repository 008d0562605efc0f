/*
 * api.h - the monitoring JSON API under /api/v1/, in the shape of
 * Prometheus's HTTP API so that tools that read Prometheus (Grafana, curl
 * scripts, promtool-style checks) read kiln's history too:
 *
 *   GET|POST /api/v1/query_range?query=SELECTOR&start=T&end=T&step=D
 *   GET|POST /api/v1/query?query=SELECTOR[&time=T]
 *   GET|POST /api/v1/series?match[]=SELECTOR...[&start=T&end=T]
 *   GET      /api/v1/labels, /api/v1/label/NAME/values
 *   GET      /api/v1/status/buildinfo
 *
 * T is Unix seconds (fractions allowed) or RFC 3339; D is seconds or a
 * Prometheus duration ("15s", "1m30s").  A query is a series selector
 * (selector.h), or for /api/v1/query a number ("1+1" answers a scalar);
 * the PromQL functions of alert rules are the alert engine's.
 * Errors answer {"status":"error","errorType":"bad_data","error":"..."}
 * with status 400.
 */
#ifndef KILN_MONITOR_API_H
#define KILN_MONITOR_API_H

#include <stdint.h>

#include "kiln.h"
#include "monitor/http.h"
#include "monitor/store.h"

typedef struct kiln_api kiln_api_t;

/* Registers the routes on srv, reading from store (both borrowed).  On
 * success *out is detached with kiln_api_detach(). */
kiln_status_t kiln_api_attach(kiln_metrics_server_t *srv, kiln_store_t *store, kiln_api_t **out);
/* Removes the routes and frees the API object.  Safe with NULL. */
void kiln_api_detach(kiln_api_t *api);

/* Parses a time (Unix seconds or RFC 3339) into Unix ms; 0 or -1 (bad text). */
int kiln_api_parse_time(const char *text, int64_t *ms);
/* Parses a step or duration (seconds or "1h30m15s500ms") into ms; 0 or -1. */
int kiln_api_parse_duration(const char *text, int64_t *ms);

/* A query that is a number or two numbers joined by + - * / ("1+1", which
 * Grafana sends to test a Prometheus data source): 0 and its value in *out,
 * or -1 when the text is anything else.  /api/v1/query answers such a query
 * with resultType "scalar". */
int kiln_api_scalar_query(const char *text, double *out);

/* Writes a query result as Prometheus's JSON ("matrix" when vector is 0,
 * "vector" of each series' last point when 1) into a malloc'd string the
 * caller frees; NULL when out of memory.  *len receives its length. */
char *kiln_api_result_json(const kiln_store_result_t *res, int vector, size_t *len);

#endif
