/*
 * store.c - the monitoring history in SQLite (see store.h for the layout).
 *
 * Why SQLite: one file, crash-safe transactions, and a B-tree keyed by
 * (series, minute) that answers a day of one series with one range scan.
 * Raw samples are packed per series and minute into one BLOB row ("chunk"):
 * each append adds a few bytes to its chunk with an UPSERT, inside the one
 * transaction of that sampling interval.  A point is a 2-byte millisecond
 * offset in the minute, a tag byte and the value in as few bytes as it
 * needs (nothing when it repeats the previous value, 1-4 bytes for small
 * integers, 8 for other doubles), so a GPU-day costs a third of what a row
 * per sample did.  The writer caches series ids (and each series' last
 * value, for the repeat tag) in a hash table.  Labels are stored as compact JSON with sorted keys: the
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

#define STORE_FORMAT "kiln-history-2"
#define MINUTE_MS 60000LL
#define DEFAULT_RAW_MS (24LL * 3600 * 1000)
#define DEFAULT_ROLLUP_MS (30LL * 24 * 3600 * 1000)
#define BUSY_TIMEOUT_MS 5000

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, metric TEXT NOT NULL,"
    "  labels TEXT NOT NULL, UNIQUE(metric, labels));"
    "CREATE TABLE IF NOT EXISTS chunks(series_id INTEGER NOT NULL, minute INTEGER NOT NULL,"
    "  data BLOB NOT NULL, PRIMARY KEY(series_id, minute)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rollup_1m(series_id INTEGER NOT NULL, minute INTEGER NOT NULL,"
    "  min REAL NOT NULL, avg REAL NOT NULL, max REAL NOT NULL, count INTEGER NOT NULL,"
    "  PRIMARY KEY(series_id, minute)) WITHOUT ROWID;";

/* One cached series id, chained in a hash bucket. */
typedef struct id_entry {
    struct id_entry *next;
    int64_t id;
    int64_t last_minute; /* chunk of the last appended sample (INT64_MIN: none) */
    double last_value;   /* its value, for the repeat tag */
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
    sqlite3_stmt *ins_series, *get_series, *ins_chunk;
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
            sqlite3_prepare_v2(db, "INSERT INTO chunks VALUES(?1,?2,?3) ON CONFLICT(series_id, minute)"
                               " DO UPDATE SET data = data || excluded.data", -1, &st->ins_chunk, NULL))
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
    sqlite3_finalize(st->ins_chunk);
    clear_ids(st);
    if (st->reader == &st->reader_own)
        close_conn(&st->reader_own);
    close_conn(&st->writer);
    free(st);
}

/* The id of a series, from the cache or the table (inserting it); -1 on
 * error.  *entry is its cache entry, or NULL when it could not be cached. */
static int64_t series_id(kiln_store_t *st, const kiln_sample_t *s, id_entry_t **entry)
{
    *entry = NULL;
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
            *entry = e;
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
            e->last_minute = INT64_MIN;
            e->last_value = 0;
            memcpy(e->key, key, klen);
            e->next = st->ids[h];
            st->ids[h] = e;
            *entry = e;
        }
    }
    free(key);
    free(labels);
    return id;
}

/* ---- Chunk codec ------------------------------------------------------------ */

enum { TAG_F64 = 0, TAG_I8 = 1, TAG_I16 = 2, TAG_I32 = 3, TAG_I64 = 4, TAG_REPEAT = 5 };
#define POINT_MAX_BYTES 11

static int64_t floor_minute(int64_t ts)
{
    int64_t m = ts / MINUTE_MS;
    if (ts % MINUTE_MS < 0)
        m--;
    return m * MINUTE_MS;
}

static void put_le(uint8_t *out, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)in[i] << (8 * i);
    return v;
}

/* Encodes one point (offset in its minute, value); *prev is the previous
 * value in the same chunk or NULL.  Returns the bytes written to out. */
static size_t encode_point(uint8_t *out, int64_t offset, double v, const double *prev)
{
    put_le(out, (uint64_t)offset, 2);
    if (prev && (memcmp(prev, &v, sizeof v) == 0)) {
        out[2] = TAG_REPEAT;
        return 3;
    }
    if (v >= -9.2e18 && v <= 9.2e18 && v == (double)(int64_t)v && !(v == 0 && signbit(v))) {
        int64_t i = (int64_t)v;
        int tag = TAG_I64, bytes = 8;
        if (i >= INT8_MIN && i <= INT8_MAX)
            tag = TAG_I8, bytes = 1;
        else if (i >= INT16_MIN && i <= INT16_MAX)
            tag = TAG_I16, bytes = 2;
        else if (i >= INT32_MIN && i <= INT32_MAX)
            tag = TAG_I32, bytes = 4;
        out[2] = (uint8_t)tag;
        put_le(out + 3, (uint64_t)i, bytes);
        return 3 + (size_t)bytes;
    }
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    out[2] = TAG_F64;
    put_le(out + 3, bits, 8);
    return 11;
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
        id_entry_t *e = NULL;
        int64_t id = series_id(st, &samples[i], &e);
        if (id < 0) {
            s = KILN_ERR_IO;
            break;
        }
        int64_t minute = floor_minute(ts_ms);
        uint8_t point[POINT_MAX_BYTES];
        const double *prev = e && e->last_minute == minute ? &e->last_value : NULL;
        size_t len = encode_point(point, ts_ms - minute, samples[i].value, prev);
        sqlite3_reset(st->ins_chunk);
        sqlite3_bind_int64(st->ins_chunk, 1, id);
        sqlite3_bind_int64(st->ins_chunk, 2, minute);
        sqlite3_bind_blob(st->ins_chunk, 3, point, (int)len, SQLITE_TRANSIENT);
        if (sqlite3_step(st->ins_chunk) != SQLITE_DONE)
            s = db_fail(db, "append sample");
        sqlite3_reset(st->ins_chunk);
        if (e) {
            e->last_minute = minute;
            e->last_value = samples[i].value;
        }
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

static kiln_status_t roll_up(sqlite3 *db, int64_t from, int64_t to);

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
            s = roll_up(db, rolled, cur_minute);
        if (!s && rolled < cur_minute)
            s = exec_ints(db, "INSERT OR REPLACE INTO meta VALUES('rolled_until', ?1)", 1,
                          cur_minute, 0, 0, "record roll-up");
        if (!s)
            s = exec_ints(db, "DELETE FROM chunks WHERE minute <= ?1", 1,
                          now_ms - st->raw_ms - MINUTE_MS, 0, 0, "prune raw samples");
        if (!s)
            s = exec_ints(db, "DELETE FROM rollup_1m WHERE minute < ?1", 1,
                          now_ms - st->rollup_ms, 0, 0, "prune roll-ups");
        int gone = 0;
        if (!s) {
            s = exec(db,
                     "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM chunks WHERE series_id=id)"
                     " AND NOT EXISTS (SELECT 1 FROM rollup_1m WHERE series_id=id)",
                     "prune series");
            gone = sqlite3_changes(db);
        }
        if (!s)
            s = exec(db, "COMMIT", "commit maintenance");
        if (s)
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        (void)gone;
        clear_ids(st); /* chunks and series may be gone: forget ids and last values */
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

/* Decodes a chunk of the given minute, appending its points in
 * [start, end] to p in time order (a repeated timestamp keeps the later
 * value).  A truncated or unknown point ends the chunk: what came before it
 * is kept.  -1 when out of memory. */
static int decode_chunk(const uint8_t *d, size_t n, int64_t minute, int64_t start, int64_t end,
                        points_t *p)
{
    size_t first = p->n;
    int have_prev = 0, sorted = 1;
    double prev = 0;
    size_t pos = 0;
    while (pos + 3 <= n) {
        int64_t ts = minute + (int64_t)get_le(d + pos, 2);
        int tag = d[pos + 2];
        pos += 3;
        static const int payload[] = {8, 1, 2, 4, 8, 0};
        if (tag > TAG_REPEAT || pos + (size_t)payload[tag] > n || (tag == TAG_REPEAT && !have_prev))
            break;
        double v;
        if (tag == TAG_REPEAT) {
            v = prev;
        } else if (tag == TAG_F64) {
            uint64_t bits = get_le(d + pos, 8);
            memcpy(&v, &bits, sizeof v);
        } else {
            int bytes = payload[tag];
            uint64_t u = get_le(d + pos, bytes);
            if (bytes < 8 && (u >> (8 * bytes - 1)) & 1) /* sign-extend */
                u |= ~0ULL << (8 * bytes);
            v = (double)(int64_t)u;
        }
        pos += (size_t)payload[tag];
        prev = v;
        have_prev = 1;
        if (ts < start || ts > end)
            continue;
        if (p->n > first && p->ts[p->n - 1] == ts) {
            p->v[p->n - 1] = v; /* the same moment written again */
            continue;
        }
        if (p->n > first && p->ts[p->n - 1] > ts)
            sorted = 0;
        if (points_push(p, ts, v))
            return -1;
    }
    if (!sorted) {
        /* Out-of-order appends: insertion sort of this chunk, later value wins. */
        for (size_t i = first + 1; i < p->n; i++) {
            int64_t t = p->ts[i];
            double v = p->v[i];
            size_t j = i;
            while (j > first && p->ts[j - 1] > t) {
                p->ts[j] = p->ts[j - 1];
                p->v[j] = p->v[j - 1];
                j--;
            }
            p->ts[j] = t;
            p->v[j] = v;
        }
        size_t k = first;
        for (size_t i = first; i < p->n; i++) {
            if (k > first && p->ts[k - 1] == p->ts[i])
                k--;
            p->ts[k] = p->ts[i];
            p->v[k] = p->v[i];
            k++;
        }
        p->n = k;
    }
    return 0;
}

/* Writes the min/avg/max/count of every chunk of a minute in [from, to). */
static kiln_status_t roll_up(sqlite3 *db, int64_t from, int64_t to)
{
    sqlite3_stmt *q = NULL, *ins = NULL;
    if (sqlite3_prepare_v2(db, "SELECT series_id, minute, data FROM chunks WHERE minute >= ?1 AND"
                           " minute < ?2", -1, &q, NULL) ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO rollup_1m VALUES(?,?,?,?,?,?)", -1, &ins,
                           NULL)) {
        sqlite3_finalize(q);
        return db_fail(db, "roll up minutes");
    }
    sqlite3_bind_int64(q, 1, from);
    sqlite3_bind_int64(q, 2, to);
    kiln_status_t s = KILN_OK;
    points_t p = {0};
    int rc;
    while (!s && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t minute = sqlite3_column_int64(q, 1);
        p.n = 0;
        if (decode_chunk(sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2), minute,
                         INT64_MIN, INT64_MAX, &p)) {
            s = kiln_fail(KILN_ERR_NO_MEMORY, "history: out of memory");
            break;
        }
        if (!p.n)
            continue;
        double mn = p.v[0], mx = p.v[0], sum = 0;
        for (size_t i = 0; i < p.n; i++) {
            mn = p.v[i] < mn ? p.v[i] : mn;
            mx = p.v[i] > mx ? p.v[i] : mx;
            sum += p.v[i];
        }
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, sqlite3_column_int64(q, 0));
        sqlite3_bind_int64(ins, 2, minute);
        sqlite3_bind_double(ins, 3, mn);
        sqlite3_bind_double(ins, 4, sum / (double)p.n);
        sqlite3_bind_double(ins, 5, mx);
        sqlite3_bind_int64(ins, 6, (int64_t)p.n);
        if (sqlite3_step(ins) != SQLITE_DONE)
            s = db_fail(db, "write roll-up");
    }
    if (!s && rc != SQLITE_DONE)
        s = db_fail(db, "roll up minutes");
    free(p.ts);
    free(p.v);
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
    return s;
}

/* Every point of series id in [start, end]: roll-up averages before the
 * first raw chunk, then raw samples. */
static kiln_status_t read_points(sqlite3 *db, int64_t id, int64_t start, int64_t end, points_t *p)
{
    sqlite3_stmt *q = NULL;
    int64_t first_raw = INT64_MAX;
    if (sqlite3_prepare_v2(db, "SELECT min(minute) FROM chunks WHERE series_id=?", -1, &q, NULL))
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
    if (sqlite3_prepare_v2(db, "SELECT minute, data FROM chunks WHERE series_id=?1 AND minute >= ?2"
                           " AND minute <= ?3 ORDER BY minute", -1, &q, NULL))
        return db_fail(db, "read samples");
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, floor_minute(start));
    sqlite3_bind_int64(q, 3, end);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (decode_chunk(sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1),
                         sqlite3_column_int64(q, 0), start, end, p)) {
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
    if (sqlite3_prepare_v2(db, "SELECT EXISTS(SELECT 1 FROM chunks WHERE series_id=?1 AND minute>=?4"
                           " AND minute<=?3) OR EXISTS(SELECT 1 FROM rollup_1m WHERE series_id=?1 AND"
                           " minute>=?2 AND minute<=?3)", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, start);
        sqlite3_bind_int64(q, 3, end);
        sqlite3_bind_int64(q, 4, floor_minute(start));
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
