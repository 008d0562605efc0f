/*
 * store.c - the monitoring history in SQLite (see store.h for the layout).
 *
 * Why SQLite: one file, crash-safe transactions, and a B-tree keyed by
 * (series, time) that answers a day of one series with one range scan.
 * Samples live in a WITHOUT ROWID table whose primary key is that pair, so
 * the key is the data and no second index is kept.  The writer caches
 * series ids in a hash table so an append is one INSERT per sample inside
 * one transaction.  Labels are stored as compact JSON with sorted keys: the
 * canonical form doubles as the unique key and stays readable with the
 * sqlite3 shell.
 */
#include "monitor/store.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define STORE_FORMAT "kiln-history-1"
#define MINUTE_MS 60000LL
#define DEFAULT_RAW_MS (24LL * 3600 * 1000)
#define DEFAULT_ROLLUP_MS (30LL * 24 * 3600 * 1000)
#define BUSY_TIMEOUT_MS 5000

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, metric TEXT NOT NULL,"
    "  labels TEXT NOT NULL, UNIQUE(metric, labels));"
    "CREATE TABLE IF NOT EXISTS samples(series_id INTEGER NOT NULL, ts INTEGER NOT NULL,"
    "  value REAL NOT NULL, PRIMARY KEY(series_id, ts)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rollup_1m(series_id INTEGER NOT NULL, minute INTEGER NOT NULL,"
    "  min REAL NOT NULL, avg REAL NOT NULL, max REAL NOT NULL, count INTEGER NOT NULL,"
    "  PRIMARY KEY(series_id, minute)) WITHOUT ROWID;";

/* One cached series id, chained in a hash bucket. */
typedef struct id_entry {
    struct id_entry *next;
    int64_t id;
    char key[]; /* metric '\0' canonical-labels */
} id_entry_t;

#define ID_BUCKETS 1024

typedef struct conn {
    sqlite3 *db;
    pthread_mutex_t lock;
} conn_t;

struct kiln_store {
    conn_t writer;
    conn_t reader_own;    /* unused for ":memory:" */
    conn_t *reader;       /* &reader_own, or &writer for ":memory:" */
    int64_t raw_ms, rollup_ms;
    sqlite3_stmt *ins_series, *get_series, *ins_sample;
    id_entry_t *ids[ID_BUCKETS];
};

static kiln_status_t db_fail(sqlite3 *db, const char *what)
{
    return kiln_fail(KILN_ERR_IO, "history: %s: %s", what, sqlite3_errmsg(db));
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void clear_ids(kiln_store_t *st)
{
    for (size_t i = 0; i < ID_BUCKETS; i++) {
        id_entry_t *e = st->ids[i];
        while (e) {
            id_entry_t *n = e->next;
            free(e);
            e = n;
        }
        st->ids[i] = NULL;
    }
}

/* The canonical label text: compact JSON object, keys sorted.  malloc'd. */
static char *canonical_labels(const kiln_label_t *labels, size_t n)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!labels[i].value || !labels[i].value[0])
            continue; /* empty label = absent, as in Prometheus */
        json_t *v = json_string(labels[i].value);
        if (!v || json_object_set_new(obj, labels[i].name, v)) {
            json_decref(obj);
            return NULL;
        }
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    return text;
}

static kiln_status_t open_conn(conn_t *c, const char *path)
{
    pthread_mutex_init(&c->lock, NULL);
    int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                               SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        kiln_status_t st = kiln_fail(KILN_ERR_IO, "history: cannot open %s: %s", path,
                                     c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sqlite3_close(c->db);
        c->db = NULL;
        return st;
    }
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    return KILN_OK;
}

static void close_conn(conn_t *c)
{
    if (c->db) {
        sqlite3_close(c->db);
        c->db = NULL;
        pthread_mutex_destroy(&c->lock);
    }
}

static kiln_status_t exec(sqlite3 *db, const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        kiln_status_t st = kiln_fail(KILN_ERR_IO, "history: %s: %s", what, msg ? msg : "?");
        sqlite3_free(msg);
        return st;
    }
    return KILN_OK;
}

/* Creates the schema or checks that an existing file is a kiln history. */
static kiln_status_t init_schema(kiln_store_t *st, const char *path)
{
    sqlite3 *db = st->writer.db;
    kiln_status_t s;
    if (strcmp(path, ":memory:")) {
        s = exec(db, "PRAGMA journal_mode=WAL", "enable WAL");
        if (s)
            return kiln_fail_prefix(s, "%s", path);
    }
    if ((s = exec(db, "PRAGMA synchronous=NORMAL", "set synchronous")))
        return kiln_fail_prefix(s, "%s", path);
    /* A file with tables but no kiln marker is someone else's database. */
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &q, NULL) != SQLITE_OK)
        return kiln_fail_prefix(db_fail(db, "read schema"), "%s", path);
    int tables = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
    sqlite3_finalize(q);
    if (tables > 0) {
        const char *fmt = NULL;
        if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='format'", -1, &q, NULL) ==
                SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            fmt = (const char *)sqlite3_column_text(q, 0);
        int ok = fmt && !strcmp(fmt, STORE_FORMAT);
        sqlite3_finalize(q);
        if (!ok)
            return kiln_fail(KILN_ERR_IO, "history: %s is a SQLite file but not a kiln history "
                             "(expected format %s)", path, STORE_FORMAT);
    }
    if ((s = exec(db, SCHEMA, "create tables")))
        return kiln_fail_prefix(s, "%s", path);
    if ((s = exec(db, "INSERT OR IGNORE INTO meta VALUES('format','" STORE_FORMAT "')",
                  "write format")))
        return kiln_fail_prefix(s, "%s", path);
    return KILN_OK;
}

kiln_status_t kiln_store_open(const char *path, const kiln_store_options_t *opts,
                              kiln_store_t **out)
{
    *out = NULL;
    if (!path || !path[0])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "history: empty file name");
    kiln_store_t *st = calloc(1, sizeof *st);
    if (!st)
        return kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
    st->raw_ms = opts && opts->raw_retention_ms > 0 ? opts->raw_retention_ms : DEFAULT_RAW_MS;
    st->rollup_ms =
        opts && opts->rollup_retention_ms > 0 ? opts->rollup_retention_ms : DEFAULT_ROLLUP_MS;
    kiln_status_t s = open_conn(&st->writer, path);
    if (!s)
        s = init_schema(st, path);
    if (!s) {
        if (!strcmp(path, ":memory:")) {
            st->reader = &st->writer;
        } else {
            s = open_conn(&st->reader_own, path);
            st->reader = &st->reader_own;
        }
    }
    if (!s) {
        sqlite3 *db = st->writer.db;
        if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO series(metric, labels) VALUES(?,?)", -1,
                               &st->ins_series, NULL) ||
            sqlite3_prepare_v2(db, "SELECT id FROM series WHERE metric=? AND labels=?", -1,
                               &st->get_series, NULL) ||
            sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO samples VALUES(?,?,?)", -1,
                               &st->ins_sample, NULL))
            s = db_fail(db, "prepare statements");
    }
    if (s) {
        kiln_store_close(st);
        return s;
    }
    *out = st;
    return KILN_OK;
}

void kiln_store_close(kiln_store_t *st)
{
    if (!st)
        return;
    sqlite3_finalize(st->ins_series);
    sqlite3_finalize(st->get_series);
    sqlite3_finalize(st->ins_sample);
    clear_ids(st);
    if (st->reader == &st->reader_own)
        close_conn(&st->reader_own);
    close_conn(&st->writer);
    free(st);
}

/* The id of a series, from the cache or the table (inserting it); -1 on error. */
static int64_t series_id(kiln_store_t *st, const kiln_sample_t *s)
{
    char *labels = canonical_labels(s->labels, s->n_labels);
    if (!labels) {
        kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
        return -1;
    }
    size_t ml = strlen(s->metric), ll = strlen(labels);
    char *key = malloc(ml + ll + 2);
    if (!key) {
        free(labels);
        kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
        return -1;
    }
    memcpy(key, s->metric, ml + 1);
    memcpy(key + ml + 1, labels, ll + 1);
    size_t klen = ml + ll + 2;
    uint64_t h = hash_bytes(key, klen) % ID_BUCKETS;
    for (id_entry_t *e = st->ids[h]; e; e = e->next)
        if (!memcmp(e->key, key, klen)) {
            free(key);
            free(labels);
            return e->id;
        }
    int64_t id = -1;
    sqlite3 *db = st->writer.db;
    sqlite3_reset(st->ins_series);
    sqlite3_bind_text(st->ins_series, 1, s->metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(st->ins_series, 2, labels, -1, SQLITE_STATIC);
    if (sqlite3_step(st->ins_series) != SQLITE_DONE) {
        db_fail(db, "add series");
    } else {
        sqlite3_reset(st->get_series);
        sqlite3_bind_text(st->get_series, 1, s->metric, -1, SQLITE_STATIC);
        sqlite3_bind_text(st->get_series, 2, labels, -1, SQLITE_STATIC);
        if (sqlite3_step(st->get_series) == SQLITE_ROW)
            id = sqlite3_column_int64(st->get_series, 0);
        else
            db_fail(db, "find series");
        sqlite3_reset(st->get_series);
    }
    sqlite3_reset(st->ins_series);
    if (id >= 0) {
        id_entry_t *e = malloc(sizeof *e + klen);
        if (e) {
            e->id = id;
            memcpy(e->key, key, klen);
            e->next = st->ids[h];
            st->ids[h] = e;
        }
    }
    free(key);
    free(labels);
    return id;
}

kiln_status_t kiln_store_append(kiln_store_t *st, int64_t ts_ms, const kiln_sample_t *samples,
                                size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!kiln_metric_name_valid(samples[i].metric))
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "history: invalid metric name '%s'",
                             samples[i].metric ? samples[i].metric : "(null)");
        for (size_t j = 0; j < samples[i].n_labels; j++)
            if (!kiln_label_name_valid(samples[i].labels[j].name))
                return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                                 "history: invalid label name '%s' on %s",
                                 samples[i].labels[j].name ? samples[i].labels[j].name : "(null)",
                                 samples[i].metric);
    }
    pthread_mutex_lock(&st->writer.lock);
    sqlite3 *db = st->writer.db;
    kiln_status_t s = exec(db, "BEGIN IMMEDIATE", "begin append");
    for (size_t i = 0; i < n && !s; i++) {
        if (isnan(samples[i].value))
            continue;
        int64_t id = series_id(st, &samples[i]);
        if (id < 0) {
            s = KILN_ERR_IO;
            break;
        }
        sqlite3_reset(st->ins_sample);
        sqlite3_bind_int64(st->ins_sample, 1, id);
        sqlite3_bind_int64(st->ins_sample, 2, ts_ms);
        sqlite3_bind_double(st->ins_sample, 3, samples[i].value);
        if (sqlite3_step(st->ins_sample) != SQLITE_DONE)
            s = db_fail(db, "append sample");
        sqlite3_reset(st->ins_sample);
    }
    if (!s)
        s = exec(db, "COMMIT", "commit append");
    if (s) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        clear_ids(st); /* ids inserted by the rolled-back transaction are gone */
    }
    pthread_mutex_unlock(&st->writer.lock);
    return s;
}

static int64_t meta_int(sqlite3 *db, const char *key, int64_t dflt)
{
    sqlite3_stmt *q = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    return v;
}

/* Runs sql with up to three int64 parameters. */
static kiln_status_t exec_ints(sqlite3 *db, const char *sql, int n, int64_t a, int64_t b, int64_t c,
                               const char *what)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_fail(db, what);
    int64_t v[3] = {a, b, c};
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(q, i + 1, v[i]);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? KILN_OK : db_fail(db, what);
}

kiln_status_t kiln_store_maintain(kiln_store_t *st, int64_t now_ms)
{
    pthread_mutex_lock(&st->writer.lock);
    sqlite3 *db = st->writer.db;
    int64_t cur_minute = now_ms / MINUTE_MS * MINUTE_MS;
    kiln_status_t s = exec(db, "BEGIN IMMEDIATE", "begin maintenance");
    if (!s) {
        int64_t rolled = meta_int(db, "rolled_until", -1);
        if (rolled < 0)
            rolled = 0;
        if (rolled < cur_minute)
            s = exec_ints(db,
                          "INSERT OR REPLACE INTO rollup_1m SELECT series_id, ts/60000*60000,"
                          " min(value), avg(value), max(value), count(*) FROM samples"
                          " WHERE ts >= ?1 AND ts < ?2 GROUP BY series_id, ts/60000",
                          2, rolled, cur_minute, 0, "roll up minutes");
        if (!s && rolled < cur_minute)
            s = exec_ints(db, "INSERT OR REPLACE INTO meta VALUES('rolled_until', ?1)", 1,
                          cur_minute, 0, 0, "record roll-up");
        if (!s)
            s = exec_ints(db, "DELETE FROM samples WHERE ts < ?1", 1, now_ms - st->raw_ms, 0, 0,
                          "prune raw samples");
        if (!s)
            s = exec_ints(db, "DELETE FROM rollup_1m WHERE minute < ?1", 1,
                          now_ms - st->rollup_ms, 0, 0, "prune roll-ups");
        int gone = 0;
        if (!s) {
            s = exec(db,
                     "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM samples WHERE series_id=id)"
                     " AND NOT EXISTS (SELECT 1 FROM rollup_1m WHERE series_id=id)",
                     "prune series");
            gone = sqlite3_changes(db);
        }
        if (!s)
            s = exec(db, "COMMIT", "commit maintenance");
        if (s)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (s || gone)
            clear_ids(st);
    }
    pthread_mutex_unlock(&st->writer.lock);
    return s;
}

/* ---- Queries ------------------------------------------------------------- */

void kiln_store_result_free(kiln_store_result_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        kiln_store_series_t *s = &set->series[i];
        for (size_t j = 0; j < s->n_labels; j++) {
            free((char *)s->labels[j].name);
            free((char *)s->labels[j].value);
        }
        free(s->labels);
        free(s->metric);
        free(s->ts_ms);
        free(s->values);
    }
    free(set->series);
    set->series = NULL;
    set->count = 0;
}

/* A candidate series read from the series table. */
typedef struct candidate {
    int64_t id;
    char *metric;
    kiln_label_t *labels;
    size_t n_labels;
} candidate_t;

static void candidate_clear(candidate_t *c)
{
    for (size_t j = 0; j < c->n_labels; j++) {
        free((char *)c->labels[j].name);
        free((char *)c->labels[j].value);
    }
    free(c->labels);
    free(c->metric);
}

/* Decodes the labels JSON into c (sorted, as stored). */
static int decode_labels(const char *text, candidate_t *c)
{
    json_error_t err;
    json_t *obj = json_loads(text, 0, &err);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return -1;
    }
    size_t n = json_object_size(obj);
    c->labels = calloc(n ? n : 1, sizeof *c->labels);
    if (!c->labels) {
        json_decref(obj);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!json_is_string(v))
            continue;
        c->labels[c->n_labels].name = strdup(k);
        c->labels[c->n_labels].value = strdup(json_string_value(v));
        c->n_labels++;
    }
    json_decref(obj);
    for (size_t i = 0; i < c->n_labels; i++)
        if (!c->labels[i].name || !c->labels[i].value)
            return -1;
    /* json_object_foreach order is insertion order; stored text is sorted. */
    return 0;
}

typedef struct selection {
    const kiln_selector_t *sel;
    kiln_store_filter_fn filter;
    void *ctx;
} selection_t;

/* Reads the series that match into a new array; *n receives the count. */
static kiln_status_t find_series(sqlite3 *db, const char *metric, const selection_t *how,
                                 candidate_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    const char *sql = metric ? "SELECT id, metric, labels FROM series WHERE metric=? ORDER BY id"
                             : "SELECT id, metric, labels FROM series ORDER BY id";
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_fail(db, "list series");
    if (metric)
        sqlite3_bind_text(q, 1, metric, -1, SQLITE_STATIC);
    size_t cap = 0;
    kiln_status_t s = KILN_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        candidate_t c = {0};
        c.id = sqlite3_column_int64(q, 0);
        c.metric = strdup((const char *)sqlite3_column_text(q, 1));
        if (!c.metric || decode_labels((const char *)sqlite3_column_text(q, 2), &c)) {
            candidate_clear(&c);
            s = kiln_fail(KILN_ERR_NO_MEMORY, "history: cannot read series %lld", (long long)c.id);
            break;
        }
        bool keep = how->sel ? kiln_selector_matches(how->sel, c.metric, c.labels, c.n_labels)
                             : how->filter(how->ctx, c.metric, c.labels, c.n_labels);
        if (!keep) {
            candidate_clear(&c);
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            candidate_t *nc = realloc(*out, cap * sizeof *nc);
            if (!nc) {
                candidate_clear(&c);
                s = kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
                break;
            }
            *out = nc;
        }
        (*out)[(*n)++] = c;
    }
    if (!s && rc != SQLITE_DONE)
        s = db_fail(db, "list series");
    sqlite3_finalize(q);
    if (s) {
        for (size_t i = 0; i < *n; i++)
            candidate_clear(&(*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return s;
}

/* Growable point arrays. */
typedef struct points {
    int64_t *ts;
    double *v;
    size_t n, cap;
} points_t;

static int points_push(points_t *p, int64_t ts, double v)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        int64_t *nt = realloc(p->ts, cap * sizeof *nt);
        if (!nt)
            return -1;
        p->ts = nt;
        double *nv = realloc(p->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        p->v = nv;
        p->cap = cap;
    }
    p->ts[p->n] = ts;
    p->v[p->n] = v;
    p->n++;
    return 0;
}

/* Every point of series id in [start, end]: roll-up averages before the
 * first raw sample, then raw samples. */
static kiln_status_t read_points(sqlite3 *db, int64_t id, int64_t start, int64_t end, points_t *p)
{
    sqlite3_stmt *q = NULL;
    int64_t first_raw = INT64_MAX;
    if (sqlite3_prepare_v2(db, "SELECT min(ts) FROM samples WHERE series_id=?", -1, &q, NULL))
        return db_fail(db, "read samples");
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
        first_raw = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (start < first_raw) {
        if (sqlite3_prepare_v2(db, "SELECT minute, avg FROM rollup_1m WHERE series_id=?1 AND"
                               " minute >= ?2 AND minute <= ?3 AND minute < ?4 ORDER BY minute",
                               -1, &q, NULL))
            return db_fail(db, "read roll-ups");
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, start);
        sqlite3_bind_int64(q, 3, end);
        sqlite3_bind_int64(q, 4, first_raw);
        while (sqlite3_step(q) == SQLITE_ROW)
            if (points_push(p, sqlite3_column_int64(q, 0), sqlite3_column_double(q, 1))) {
                sqlite3_finalize(q);
                return kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
            }
        sqlite3_finalize(q);
    }
    if (first_raw == INT64_MAX || first_raw > end)
        return KILN_OK;
    if (sqlite3_prepare_v2(db, "SELECT ts, value FROM samples WHERE series_id=?1 AND ts >= ?2"
                           " AND ts <= ?3 ORDER BY ts", -1, &q, NULL))
        return db_fail(db, "read samples");
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, start);
    sqlite3_bind_int64(q, 3, end);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (points_push(p, sqlite3_column_int64(q, 0), sqlite3_column_double(q, 1))) {
            sqlite3_finalize(q);
            return kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
        }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? KILN_OK : db_fail(db, "read samples");
}

/* True when series id has a raw sample or a roll-up in [start, end]. */
static bool has_points(sqlite3 *db, int64_t id, int64_t start, int64_t end)
{
    sqlite3_stmt *q = NULL;
    bool any = false;
    if (sqlite3_prepare_v2(db, "SELECT EXISTS(SELECT 1 FROM samples WHERE series_id=?1 AND ts>=?2"
                           " AND ts<=?3) OR EXISTS(SELECT 1 FROM rollup_1m WHERE series_id=?1 AND"
                           " minute>=?2 AND minute<=?3)", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, start);
        sqlite3_bind_int64(q, 3, end);
        any = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0);
    }
    sqlite3_finalize(q);
    return any;
}

/* Moves a candidate and its points into the result (taking ownership). */
static int result_push(kiln_store_result_t *out, size_t *cap, candidate_t *c, points_t *p)
{
    if (out->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        kiln_store_series_t *ns = realloc(out->series, ncap * sizeof *ns);
        if (!ns)
            return -1;
        out->series = ns;
        *cap = ncap;
    }
    kiln_store_series_t *s = &out->series[out->count++];
    s->metric = c->metric;
    s->labels = c->labels;
    s->n_labels = c->n_labels;
    s->ts_ms = p->ts;
    s->values = p->v;
    s->n_points = p->n;
    memset(c, 0, sizeof *c);
    memset(p, 0, sizeof *p);
    return 0;
}

/* mode: 0 raw points, 1 stepped range, 2 series only. */
static kiln_status_t run_query(kiln_store_t *st, const char *metric, const selection_t *how,
                               int64_t start, int64_t end, int64_t step, int mode,
                               kiln_store_result_t *out)
{
    out->series = NULL;
    out->count = 0;
    if (end < start)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "history: end is before start");
    if (mode == 1) {
        if (step <= 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "history: step must be positive");
        if ((end - start) / step + 1 > KILN_STORE_MAX_POINTS)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                             "history: %lld points per series exceed the limit of %d; use a larger step",
                             (long long)((end - start) / step + 1), KILN_STORE_MAX_POINTS);
    }
    pthread_mutex_lock(&st->reader->lock);
    sqlite3 *db = st->reader->db;
    candidate_t *cands = NULL;
    size_t n = 0, cap = 0;
    kiln_status_t s = exec(db, "BEGIN", "begin query");
    if (!s)
        s = find_series(db, metric, how, &cands, &n);
    for (size_t i = 0; i < n && !s; i++) {
        points_t raw = {0}, stepped = {0};
        if (mode == 2) {
            if (has_points(db, cands[i].id, start, end) && result_push(out, &cap, &cands[i], &raw))
                s = kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
            continue;
        }
        int64_t from = mode == 1 ? start - KILN_STORE_LOOKBACK_MS + 1 : start;
        s = read_points(db, cands[i].id, from, end, &raw);
        if (!s && mode == 1) {
            size_t j = 0;
            for (int64_t t = start; t <= end && !s; t += step) {
                while (j < raw.n && raw.ts[j] <= t)
                    j++;
                if (j > 0 && t - raw.ts[j - 1] < KILN_STORE_LOOKBACK_MS &&
                    points_push(&stepped, t, raw.v[j - 1]))
                    s = kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
                if (end - t < step)
                    break;
            }
            free(raw.ts);
            free(raw.v);
            raw = stepped;
        }
        if (!s && raw.n > 0 && result_push(out, &cap, &cands[i], &raw))
            s = kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
        free(raw.ts);
        free(raw.v);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->reader->lock);
    for (size_t i = 0; i < n; i++)
        candidate_clear(&cands[i]);
    free(cands);
    if (s)
        kiln_store_result_free(out);
    return s;
}

kiln_status_t kiln_store_query_range(kiln_store_t *st, const kiln_selector_t *sel,
                                     int64_t start_ms, int64_t end_ms, int64_t step_ms,
                                     kiln_store_result_t *out)
{
    selection_t how = {sel, NULL, NULL};
    return run_query(st, sel->metric, &how, start_ms, end_ms, step_ms, 1, out);
}

kiln_status_t kiln_store_query_raw(kiln_store_t *st, const kiln_selector_t *sel, int64_t start_ms,
                                   int64_t end_ms, kiln_store_result_t *out)
{
    selection_t how = {sel, NULL, NULL};
    return run_query(st, sel->metric, &how, start_ms, end_ms, 0, 0, out);
}

kiln_status_t kiln_store_query_raw_filtered(kiln_store_t *st, const char *metric,
                                            kiln_store_filter_fn filter, void *ctx,
                                            int64_t start_ms, int64_t end_ms,
                                            kiln_store_result_t *out)
{
    if (!filter)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "history: filter is NULL");
    selection_t how = {NULL, filter, ctx};
    return run_query(st, metric, &how, start_ms, end_ms, 0, 0, out);
}

kiln_status_t kiln_store_series(kiln_store_t *st, const kiln_selector_t *sel, int64_t start_ms,
                                int64_t end_ms, kiln_store_result_t *out)
{
    selection_t how = {sel, NULL, NULL};
    return run_query(st, sel->metric, &how, start_ms, end_ms, 0, 2, out);
}
