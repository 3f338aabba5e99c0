/* The pg sink: one thread that polls the log as consumer group "sluice-pg", gathers a
 * batch (by rows, bytes and time), and writes it to PostgreSQL in one transaction: COPY
 * into a temporary staging table, then one statement that dedups by event_id, inserts
 * the new rows and updates the rollups, then the offsets in sluice_offsets, then COMMIT.
 *
 * Invariants:
 *  1. PostgreSQL is the only record of progress: next[p] is the offset after the last
 *     message of partition p committed there (sluice_offsets). After every (re)connect
 *     and every partition assignment the sink "resyncs": it reads next[] back, forgets
 *     the batch it held and seeks each partition to next[p]. So whether an interrupted
 *     COMMIT reached the server or not, the log is read again from exactly what is
 *     stored: nothing is lost and nothing is written twice.
 *  2. A batch is kept in memory until its transaction committed; held_to[p] is the offset
 *     after its last message of p, and a message below it (a re-delivery) is skipped.
 *     On any failure that is not a refused row (connection lost, server restarting,
 *     deadlock) the connection is dropped and the sink reconnects with backoff (1.).
 *  3. A row PostgreSQL refuses (data or constraint error) is found by halving the batch
 *     under savepoints and goes to sluice_dead_letters in the same transaction; the rest
 *     commits.
 *  4. Memory is bounded by batch_rows and batch_bytes: while a batch cannot be written the
 *     thread stops polling (the log keeps accepting; its retention is the bound there). A
 *     polled record that does not fit is not held: its partition is sought back to it.
 *
 * States: connecting (backoff) -> gathering -> writing -> gathering ...; any failure goes
 * back to connecting with the batch held; stop writes what is held, then exits. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/diag.h"
#include "core/time.h"
#include "pg/pg_int.h"

#define MAINTAIN_EVERY_NS (INT64_C(3600) * 1000000000)
#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000
#define POLL_IDLE_MS      200
#define POLL_CHUNK        1024

typedef struct held {
    unsigned partition;
    uint64_t offset;
    int64_t timestamp_ms;
    size_t off, len; /* value in sink->values */
    size_t full_len; /* the record's size; more than len when only its start is held */
} held;

/* Bytes of a record too large for a batch kept for its dead letter. */
#define OVERSIZE_KEEP 4096

/* A row of the current attempt: a held message and its slice of the COPY text. */
typedef struct row {
    size_t msg;
    size_t off, len;
} row;

typedef struct dead {
    size_t msg;
    char error[512];
} dead;

struct sl_pg_sink {
    sl_pg_sink_options opts;
    char *conninfo, *group;
    sl_log_consumer_t *c;
    unsigned parts;
    pthread_t thread;
    atomic_bool stopping;

    /* @thread the sink thread only, from here to the metrics */
    PGconn *conn;
    uint64_t *next;     /* per partition, invariant 1 */
    uint64_t *held_to;  /* per partition, invariant 2 */
    bool resync_needed; /* set by a (Kafka) partition assignment */
    held *msgs;
    size_t n_msgs;
    sl_buf values;
    bool full;        /* a polled record did not fit: its partition was rewound to it */
    bool *rewound;    /* per partition, during one gather */
    int64_t first_ns; /* when the batch's first message arrived */
    sl_buf copy;
    row *rows;
    size_t n_rows;
    dead *dead;
    size_t n_dead;
    uint32_t *id_slots;     /* open addressing over the batch's event ids: row index + 1 */
    size_t n_id_slots;      /* a power of two, at least twice batch_rows */
    size_t n_repeats;       /* rows of this attempt dropped as repeats of an earlier row */
    int32_t known_days[64]; /* partitions known to exist (a small cache) */
    size_t n_known_days;
    int64_t maintained_ns;
    unsigned backoff_ms;

    /* @thread any */
    pthread_mutex_t mu; /* guards why */
    char why[512];
    atomic_bool ready;
    atomic_uint_fast64_t rows_total, duplicates_total, dead_total, batches_total;
    atomic_uint_fast64_t failures_total, partitions_dropped_total, held_rows;
    atomic_int_fast64_t last_commit_us;
};

void sl_pg_sink_options_default(sl_pg_sink_options *opts)
{
    *opts = (sl_pg_sink_options){
        .group = "sluice-pg",
        .batch_rows = 10000,
        .batch_bytes = 16u << 20,
        .linger_ms = 100,
        .stop_timeout_ms = 10000,
        .schema = {.retention_days = 30, .partitions_ahead = 3},
    };
}

static void set_unready(sl_pg_sink_t *sink, const char *why)
{
    pthread_mutex_lock(&sink->mu);
    snprintf(sink->why, sizeof sink->why, "%s", why);
    pthread_mutex_unlock(&sink->mu);
    atomic_store(&sink->ready, false);
}

/* @thread any HTTP thread */
static bool is_ready(void *opaque, char *why, size_t whylen)
{
    sl_pg_sink_t *sink = opaque;
    if (atomic_load(&sink->ready))
        return true;
    pthread_mutex_lock(&sink->mu);
    snprintf(why, whylen, "%s", sink->why);
    pthread_mutex_unlock(&sink->mu);
    return false;
}

/* @thread any HTTP thread */
static sl_err write_metrics(void *opaque, sl_buf *out)
{
    sl_pg_sink_t *sink = opaque;
    return sl_buf_appendf(
        out,
        "# HELP sluice_pg_up Whether the pg sink's last attempt to reach PostgreSQL worked.\n"
        "# TYPE sluice_pg_up gauge\nsluice_pg_up %d\n"
        "# HELP sluice_pg_rows_written_total Events inserted into analytics_events.\n"
        "# TYPE sluice_pg_rows_written_total counter\nsluice_pg_rows_written_total %" PRIu64 "\n"
        "# HELP sluice_pg_duplicates_total Events skipped because their event_id was stored.\n"
        "# TYPE sluice_pg_duplicates_total counter\nsluice_pg_duplicates_total %" PRIu64 "\n"
        "# HELP sluice_pg_dead_letters_total Records PostgreSQL refused, kept in "
        "sluice_dead_letters.\n"
        "# TYPE sluice_pg_dead_letters_total counter\nsluice_pg_dead_letters_total %" PRIu64 "\n"
        "# HELP sluice_pg_batches_total Transactions committed.\n"
        "# TYPE sluice_pg_batches_total counter\nsluice_pg_batches_total %" PRIu64 "\n"
        "# HELP sluice_pg_failures_total Failed connects and writes (each retried).\n"
        "# TYPE sluice_pg_failures_total counter\nsluice_pg_failures_total %" PRIu64 "\n"
        "# HELP sluice_pg_partitions_dropped_total Day partitions dropped by retention.\n"
        "# TYPE sluice_pg_partitions_dropped_total counter\n"
        "sluice_pg_partitions_dropped_total %" PRIu64 "\n"
        "# HELP sluice_pg_held_rows Events read from the log and not yet committed.\n"
        "# TYPE sluice_pg_held_rows gauge\nsluice_pg_held_rows %" PRIu64 "\n"
        "# HELP sluice_pg_last_commit_timestamp_seconds When the last batch committed.\n"
        "# TYPE sluice_pg_last_commit_timestamp_seconds gauge\n"
        "sluice_pg_last_commit_timestamp_seconds %.3f\n",
        atomic_load(&sink->ready) ? 1 : 0, (uint64_t)atomic_load(&sink->rows_total),
        (uint64_t)atomic_load(&sink->duplicates_total), (uint64_t)atomic_load(&sink->dead_total),
        (uint64_t)atomic_load(&sink->batches_total), (uint64_t)atomic_load(&sink->failures_total),
        (uint64_t)atomic_load(&sink->partitions_dropped_total),
        (uint64_t)atomic_load(&sink->held_rows), (double)atomic_load(&sink->last_commit_us) / 1e6);
}

void sl_pg_sink_component(sl_pg_sink_t *sink, sl_component *out)
{
    *out = (sl_component){
        .name = "pg-sink", .is_ready = is_ready, .write_metrics = write_metrics, .opaque = sink};
}

/* ---- talking to PostgreSQL ---- */

/* PostgreSQL refused the data itself (a value, a constraint, a size): the rows at fault
 * go to the dead letters. Anything else is retried. */
static bool is_data_error(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state &&
           (!strncmp(state, "22", 2) || !strncmp(state, "23", 2) || !strncmp(state, "54", 2));
}

/* "message (detail)" of a failed result, for the dead letters. */
static void result_error(const PGresult *res, PGconn *conn, char *out, size_t outlen)
{
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (!msg)
        msg = PQerrorMessage(conn);
    if (detail)
        snprintf(out, outlen, "%s (%s)", msg, detail);
    else
        snprintf(out, outlen, "%s", msg);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
}

static sl_err load_offsets(sl_pg_sink_t *sink, char *errbuf, size_t errlen)
{
    const char *params[1] = {sink->group};
    PGresult *res = PQexecParams(sink->conn,
                                 "SELECT log_partition, next_offset FROM sluice_offsets "
                                 "WHERE consumer_group = $1",
                                 1, NULL, params, NULL, NULL, 0);
    sl_err err = SL_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not read sluice_offsets: %s",
                            PQerrorMessage(sink->conn));
        goto out;
    }
    memset(sink->next, 0, sink->parts * sizeof *sink->next);
    for (int i = 0; i < PQntuples(res); i++) {
        long p = strtol(PQgetvalue(res, i, 0), NULL, 10);
        unsigned long long off = strtoull(PQgetvalue(res, i, 1), NULL, 10);
        if (p < 0 || (unsigned long)p >= sink->parts)
            continue; /* a partition the log no longer has */
        sink->next[p] = off;
    }
out:
    PQclear(res);
    return err;
}

static void clear_batch(sl_pg_sink_t *sink)
{
    sink->n_msgs = 0;
    sink->full = false;
    sl_buf_reset(&sink->values);
    atomic_store(&sink->held_rows, 0);
}

/* Invariant 1: read the stored offsets, forget the batch, seek there. */
static sl_err resync(sl_pg_sink_t *sink, char *errbuf, size_t errlen)
{
    sl_err err = load_offsets(sink, errbuf, errlen);
    if (err)
        return err;
    clear_batch(sink);
    for (unsigned p = 0; p < sink->parts; p++) {
        sink->held_to[p] = sink->next[p];
        if (sl_log_consumer_seek(sink->c, p, sink->next[p]))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not seek partition %u: %s", p,
                                 sl_log_consumer_errmsg(sink->c));
    }
    sink->resync_needed = false;
    return SL_OK;
}

static sl_err maintain(sl_pg_sink_t *sink, char *errbuf, size_t errlen)
{
    unsigned dropped = 0;
    sl_err err =
        sl__pg_partitions_maintain(sink->conn, &sink->opts.schema,
                                   sl__pg_day_of_us(sl_time_now_us()), &dropped, errbuf, errlen);
    if (err)
        return err;
    sink->n_known_days = 0;
    sink->maintained_ns = sl_time_mono_ns();
    if (dropped) {
        atomic_fetch_add(&sink->partitions_dropped_total, dropped);
        sl_diag(SL_DIAG_INFO, "pg: dropped partitions past retention", "partitions=%u", dropped);
    }
    return SL_OK;
}

/* Connects, migrates, prepares the session and reads the stored offsets. */
static sl_err connect_pg(sl_pg_sink_t *sink, char *errbuf, size_t errlen)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {sink->conninfo, "5", "sluice-pg-sink", NULL};
    sink->conn = PQconnectdbParams(keys, vals, 1);
    sl_err err;
    if (PQstatus(sink->conn) != CONNECTION_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not connect to postgresql: %s",
                            PQerrorMessage(sink->conn));
        goto out;
    }
    char stage[1024];
    snprintf(
        stage, sizeof stage,
        "CREATE TEMP TABLE sluice_stage (seq integer, event_id text COLLATE \"C\", \"timestamp\" "
        "timestamptz, received_at timestamptz, channel varchar(50), platform "
        "varchar(100), event_type varchar(100), event_category varchar(100), resource_id "
        "varchar(500), resource_title varchar(200), interaction_target varchar(200), "
        "session_id varchar(100), user_id varchar(100), device_id varchar(100), user_agent "
        "text, client_version varchar(50), interaction_value numeric, interaction_text "
        "text, metadata jsonb) ON COMMIT DELETE ROWS");
    /* work_mem: a batch's rollup sorts and hashes stay in memory (4 MB spilled to disk).
     * synchronous_commit off: a crash of PostgreSQL may lose the last commits, but rows,
     * rollups, ids and offsets of a transaction are lost together, every connection drops,
     * and the resync after reconnecting reads those events from the log again
     * (invariant 1), so no fsync wait is needed per batch. */
    if ((err = sl__pg_exec(sink->conn,
                           "SET client_min_messages = warning; SET timezone = 'UTC'; "
                           "SET work_mem = '64MB'; SET synchronous_commit = off",
                           errbuf, errlen)) ||
        (err = sl__pg_migrate_conn(sink->conn, errbuf, errlen)) ||
        (err = maintain(sink, errbuf, errlen)) ||
        (err = sl__pg_exec(sink->conn, stage, errbuf, errlen)))
        goto out;
    err = resync(sink, errbuf, errlen);
out:
    if (err) {
        PQfinish(sink->conn);
        sink->conn = NULL;
    }
    return err;
}

static void disconnect(sl_pg_sink_t *sink)
{
    PQfinish(sink->conn);
    sink->conn = NULL;
}

/* ---- one batch ---- */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * UINT64_C(1099511628211);
    return h;
}

/* The event_id column of a COPY row: between the first and second tab. */
static const char *row_id(const sl_pg_sink_t *sink, const row *r, size_t *len)
{
    const char *start = (const char *)memchr(sink->copy.data + r->off, '\t', r->len) + 1;
    *len = (size_t)((const char *)memchr(start, '\t', r->len) - start);
    return start;
}

/* Whether the row just built repeats the event_id of an earlier row of the batch (then a
 * client sent it twice in quick succession); if not, remembers it. The escaped id is
 * compared, which is as unique as the id. */
static bool is_repeat(sl_pg_sink_t *sink, const row *r)
{
    size_t len;
    const char *id = row_id(sink, r, &len);
    size_t mask = sink->n_id_slots - 1;
    for (size_t at = hash_bytes(id, len) & mask;; at = (at + 1) & mask) {
        uint32_t slot = sink->id_slots[at];
        if (slot == 0) {
            sink->id_slots[at] = (uint32_t)sink->n_rows + 1;
            return false;
        }
        size_t olen;
        const char *other = row_id(sink, &sink->rows[slot - 1], &olen);
        if (olen == len && memcmp(other, id, len) == 0)
            return true;
    }
}

/* Builds the COPY text of the held messages not yet stored; records that are not JSON
 * objects become dead letters right away. Creates the partitions the rows need. */
static sl_err build_rows(sl_pg_sink_t *sink, char *errbuf, size_t errlen)
{
    sl_buf_reset(&sink->copy);
    sink->n_rows = 0;
    sink->n_dead = 0;
    sink->n_repeats = 0;
    memset(sink->id_slots, 0, sink->n_id_slots * sizeof *sink->id_slots);
    int32_t today = sl__pg_day_of_us(sl_time_now_us());
    int32_t oldest = today - (int32_t)sink->opts.schema.retention_days;
    int32_t newest = today + (int32_t)sink->opts.schema.partitions_ahead;
    for (size_t i = 0; i < sink->n_msgs; i++) {
        const held *h = &sink->msgs[i];
        if (h->len < h->full_len) {
            dead *d = &sink->dead[sink->n_dead++];
            d->msg = i;
            snprintf(d->error, sizeof d->error,
                     "record of %zu bytes is over half of --pg-batch-bytes (%zu); its first %zu "
                     "bytes are kept here",
                     h->full_len, sink->opts.batch_bytes, h->len);
            continue;
        }
        sl_log_message m = {.partition = h->partition,
                            .offset = h->offset,
                            .timestamp_ms = h->timestamp_ms,
                            .value = sink->values.data + h->off,
                            .value_len = h->len};
        size_t off = sink->copy.len;
        int32_t day;
        dead *d = &sink->dead[sink->n_dead];
        sl_err err =
            sl__pg_row_append(&sink->copy, (uint32_t)i, &m, &day, d->error, sizeof d->error);
        if (err == SL_ERR_INVALID || err == SL_ERR_TOO_LARGE) {
            d->msg = i;
            sink->n_dead++;
            continue;
        }
        if (err)
            return sl_errbuf_set(errbuf, errlen, err, "could not build a COPY row: %s",
                                 sl_strerror(err));
        row r = {.msg = i, .off = off, .len = sink->copy.len - off};
        if (is_repeat(sink, &r)) {
            sink->copy.len = off;
            sink->copy.data[off] = '\0';
            sink->n_repeats++;
            continue;
        }
        sink->rows[sink->n_rows++] = r;
        /* Rows outside the kept window get no partition: PostgreSQL refuses them and
         * they become dead letters with its reason. */
        if (day == SL__PG_NO_DAY || day < oldest || day > newest)
            continue;
        bool known = false;
        for (size_t k = 0; k < sink->n_known_days && !known; k++)
            known = sink->known_days[k] == day;
        if (known)
            continue;
        if ((err = sl__pg_partition_ensure(sink->conn, day, errbuf, errlen)))
            return err;
        if (sink->n_known_days == sizeof sink->known_days / sizeof sink->known_days[0])
            sink->n_known_days = 0;
        sink->known_days[sink->n_known_days++] = day;
    }
    return SL_OK;
}

/* Rows whose event_id is new (build_rows removed repeats inside the batch) go into
 * analytics_events and the rollups. */
static const char insert_sql[] =
    "WITH fresh AS ("
    " INSERT INTO sluice_event_ids (event_id, \"timestamp\")"
    " SELECT event_id, \"timestamp\" FROM sluice_stage ON CONFLICT DO NOTHING"
    " RETURNING event_id),"
    "ins AS ("
    " INSERT INTO analytics_events (event_id, \"timestamp\", received_at, channel, platform,"
    " event_type, event_category, resource_id, resource_title, interaction_target, session_id,"
    " user_id, device_id, user_agent, client_version, interaction_value, interaction_text,"
    " metadata)"
    " SELECT event_id, \"timestamp\", received_at, channel, platform, event_type,"
    " event_category, resource_id, resource_title, interaction_target, session_id, user_id,"
    " device_id, user_agent, client_version, interaction_value, interaction_text, metadata"
    " FROM sluice_stage WHERE event_id IN (SELECT event_id FROM fresh)"
    " RETURNING date_trunc('minute', \"timestamp\") AS bucket, channel, platform, event_type,"
    " event_category, resource_id, session_id, user_id, interaction_value),"
    "r1 AS ("
    " INSERT INTO sluice_rollup_minute AS r (bucket, channel, platform, event_type,"
    " event_category, events, value_sum, value_count)"
    " SELECT bucket, channel, platform, event_type, event_category, count(*),"
    " sum(interaction_value), count(interaction_value)"
    " FROM ins GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    " ON CONFLICT (bucket, channel, platform, event_type, event_category)"
    " DO UPDATE SET events = r.events + excluded.events,"
    " value_sum = CASE WHEN r.value_sum IS NULL THEN excluded.value_sum"
    " WHEN excluded.value_sum IS NULL THEN r.value_sum"
    " ELSE r.value_sum + excluded.value_sum END,"
    " value_count = r.value_count + excluded.value_count),"
    "r2 AS ("
    " INSERT INTO sluice_rollup_resources AS r (bucket, channel, resource_id, events)"
    " SELECT bucket, channel, resource_id, count(*) FROM ins GROUP BY 1, 2, 3"
    " ORDER BY 1, 2, 3 ON CONFLICT (bucket, channel, resource_id)"
    " DO UPDATE SET events = r.events + excluded.events),"
    /* the batch's session and user hashes folded into HyperLogLog sketches per minute
     * and channel (schema.c), merged into the stored ones */
    "r3 AS ("
    " INSERT INTO sluice_rollup_distinct AS r (bucket, channel, what, regs)"
    " SELECT bucket, channel, what, sluice_hll_fold(NULL, array_agg(h)) FROM ("
    " SELECT bucket, channel, 'session_id' AS what, hashtextextended(session_id, 0) AS h"
    " FROM ins UNION ALL SELECT bucket, channel, 'user_id', hashtextextended(user_id, 0)"
    " FROM ins WHERE user_id IS NOT NULL) x GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    " ON CONFLICT (bucket, channel, what) DO UPDATE SET regs = sluice_hll_union(r.regs,"
    " excluded.regs))"
    "SELECT count(*) FROM ins";

/* Outcome of writing some rows inside the open transaction. */
typedef enum outcome { WROTE, REFUSED, FAILED } outcome;

/* COPYs rows [lo, hi) into the staging table and runs insert_sql. REFUSED (reason in
 * why) when PostgreSQL refused the data, FAILED (errbuf) on anything else. */
static outcome write_rows(sl_pg_sink_t *sink, size_t lo, size_t hi, uint64_t *inserted, char *why,
                          size_t whylen, char *errbuf, size_t errlen)
{
    PGconn *conn = sink->conn;
    PGresult *res = PQexec(conn, "COPY sluice_stage FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not start COPY: %s", PQerrorMessage(conn));
        PQclear(res);
        return FAILED;
    }
    PQclear(res);
    const char *from = sink->copy.data + sink->rows[lo].off;
    size_t len = sink->rows[hi - 1].off + sink->rows[hi - 1].len - sink->rows[lo].off;
    while (len > 0) {
        int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
        if (PQputCopyData(conn, from, chunk) != 1)
            break;
        from += chunk;
        len -= (size_t)chunk;
    }
    if (len > 0 || PQputCopyEnd(conn, NULL) != 1) {
        sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not send COPY data: %s",
                      PQerrorMessage(conn));
        return FAILED;
    }
    res = PQgetResult(conn);
    outcome oc = WROTE;
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        res = PQexec(conn, insert_sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            *inserted = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
            return WROTE;
        }
    }
    if (PQstatus(conn) == CONNECTION_OK && is_data_error(res)) {
        result_error(res, conn, why, whylen);
        oc = REFUSED;
    } else {
        char msg[512];
        result_error(res, conn, msg, sizeof msg);
        sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not write rows: %s", msg);
        oc = FAILED;
    }
    PQclear(res);
    /* Drain what is left of the COPY exchange, if anything. */
    while ((res = PQgetResult(conn)))
        PQclear(res);
    return oc;
}

/* Writes rows under savepoints, halving any range PostgreSQL refuses until the refused
 * rows stand alone; those become dead letters (invariant 3). The stack holds [lo, hi)
 * pairs; halving 2^32 rows needs at most 32 levels of two pairs. */
static sl_err write_halving(sl_pg_sink_t *sink, uint64_t *inserted, char *errbuf, size_t errlen)
{
    size_t stack[2 * 64] = {0, sink->n_rows};
    size_t top = 2;
    while (top > 0) {
        size_t hi = stack[--top], lo = stack[--top];
        sl_err err;
        if ((err = sl__pg_exec(sink->conn, "SAVEPOINT part", errbuf, errlen)))
            return err;
        char why[512];
        uint64_t n = 0;
        outcome oc = write_rows(sink, lo, hi, &n, why, sizeof why, errbuf, errlen);
        if (oc == FAILED)
            return SL_ERR_IO;
        if (oc == WROTE) {
            *inserted += n;
            if ((err = sl__pg_exec(sink->conn, "RELEASE part; TRUNCATE sluice_stage", errbuf,
                                   errlen)))
                return err;
            continue;
        }
        if ((err = sl__pg_exec(sink->conn, "ROLLBACK TO part; RELEASE part", errbuf, errlen)))
            return err;
        if (hi - lo == 1) {
            dead *d = &sink->dead[sink->n_dead++];
            d->msg = sink->rows[lo].msg;
            snprintf(d->error, sizeof d->error, "%s", why);
            continue;
        }
        if (top + 4 > sizeof stack / sizeof stack[0])
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL, "halving stack overflow");
        size_t m = lo + (hi - lo) / 2;
        stack[top++] = m;
        stack[top++] = hi;
        stack[top++] = lo;
        stack[top++] = m;
    }
    return SL_OK;
}

static sl_err write_dead_letters(sl_pg_sink_t *sink, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < sink->n_dead; i++) {
        const held *h = &sink->msgs[sink->dead[i].msg];
        /* The reason may quote the record's own bytes (jansson does), which need not be
         * UTF-8; PostgreSQL would refuse it and the batch could never commit. Keep ASCII. */
        for (char *c = sink->dead[i].error; *c; c++) {
            if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20)
                *c = '?';
        }
        char part[16], off[24];
        snprintf(part, sizeof part, "%u", h->partition);
        snprintf(off, sizeof off, "%" PRIu64, h->offset);
        const char *vals[5] = {sink->group, part, off, sink->dead[i].error,
                               sink->values.data + h->off};
        int lens[5] = {0, 0, 0, 0, (int)h->len};
        int fmts[5] = {0, 0, 0, 0, 1};
        PGresult *res = PQexecParams(sink->conn,
                                     "INSERT INTO sluice_dead_letters (consumer_group, "
                                     "log_partition, log_offset, error, payload) VALUES "
                                     "($1, $2, $3, $4, $5)",
                                     5, NULL, vals, lens, fmts, 0);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not store a dead letter: %s",
                                 PQerrorMessage(sink->conn));
    }
    return SL_OK;
}

/* The new next offsets of the batch's partitions, as one upsert. */
static sl_err write_offsets(sl_pg_sink_t *sink, sl_buf *sql, char *errbuf, size_t errlen)
{
    char *group = PQescapeLiteral(sink->conn, sink->group, strlen(sink->group));
    if (!group)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "%s", PQerrorMessage(sink->conn));
    sl_err err = sl_buf_append_str(sql, "INSERT INTO sluice_offsets (consumer_group, "
                                        "log_partition, next_offset) VALUES ");
    bool first = true;
    for (unsigned p = 0; p < sink->parts && !err; p++) {
        if (sink->held_to[p] <= sink->next[p])
            continue;
        err = sl_buf_appendf(sql, "%s(%s, %u, %" PRIu64 ")", first ? "" : ", ", group, p,
                             sink->held_to[p]);
        first = false;
    }
    PQfreemem(group);
    if (err)
        return err;
    if (first)
        return SL_OK; /* nothing new (every held message was already stored) */
    if ((err = sl_buf_append_str(sql, " ON CONFLICT (consumer_group, log_partition) DO UPDATE "
                                      "SET next_offset = greatest(sluice_offsets.next_offset, "
                                      "excluded.next_offset), updated_at = now()")))
        return err;
    return sl__pg_exec(sink->conn, sql->data, errbuf, errlen);
}

/* One transaction for the held batch. SL_OK: committed (or nothing to do). */
static sl_err write_batch(sl_pg_sink_t *sink, char *errbuf, size_t errlen)
{
    sl_err err;
    if ((err = build_rows(sink, errbuf, errlen)))
        return err;
    size_t n_unparsed = sink->n_dead;
    uint64_t inserted = 0;
    if ((err = sl__pg_exec(sink->conn, "BEGIN", errbuf, errlen)))
        return err;
    if (sink->n_rows > 0) {
        char why[512];
        outcome oc = write_rows(sink, 0, sink->n_rows, &inserted, why, sizeof why, errbuf, errlen);
        if (oc == FAILED)
            return SL_ERR_IO;
        if (oc == REFUSED) {
            sl_diag(SL_DIAG_WARN, "pg: a batch holds refused rows; finding them",
                    "rows=%zu first_error=\"%s\"", sink->n_rows, why);
            if ((err = sl__pg_exec(sink->conn, "ROLLBACK; BEGIN", errbuf, errlen)) ||
                (err = write_halving(sink, &inserted, errbuf, errlen)))
                return err;
        }
    }
    sl_buf sql;
    sl_buf_init(&sql, 1u << 20);
    err = write_dead_letters(sink, errbuf, errlen);
    if (!err)
        err = write_offsets(sink, &sql, errbuf, errlen);
    sl_buf_cleanup(&sql);
    if (err || (err = sl__pg_exec(sink->conn, "COMMIT", errbuf, errlen)))
        return err;
    for (size_t i = 0; i < sink->n_dead; i++) {
        const held *h = &sink->msgs[sink->dead[i].msg];
        sl_diag(SL_DIAG_WARN, "pg: record refused, kept in sluice_dead_letters",
                "partition=%u offset=%" PRIu64 " error=\"%s\"", h->partition, h->offset,
                sink->dead[i].error);
    }
    for (unsigned p = 0; p < sink->parts; p++) {
        if (sink->held_to[p] > sink->next[p])
            sink->next[p] = sink->held_to[p];
    }
    /* rows refused while halving are counted in n_rows too */
    size_t accepted = sink->n_rows - (sink->n_dead - n_unparsed);
    atomic_fetch_add(&sink->rows_total, inserted);
    atomic_fetch_add(&sink->dead_total, sink->n_dead);
    atomic_fetch_add(&sink->duplicates_total,
                     sink->n_repeats + (accepted > inserted ? accepted - inserted : 0));
    atomic_fetch_add(&sink->batches_total, 1);
    atomic_store(&sink->last_commit_us, sl_time_now_us());
    return SL_OK;
}

/* ---- the thread ---- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits out the backoff in short steps, so stop is seen; doubles it for next time. */
static void back_off(sl_pg_sink_t *sink)
{
    for (unsigned waited = 0; waited < sink->backoff_ms && !atomic_load(&sink->stopping);
         waited += 50)
        sleep_ms(50);
    sink->backoff_ms =
        sink->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : sink->backoff_ms * 2;
}

static void failed(sl_pg_sink_t *sink, char *errbuf)
{
    sl__pg_one_line(errbuf);
    atomic_fetch_add(&sink->failures_total, 1);
    /* the first failure of an outage, then one line per longest backoff */
    if (sink->backoff_ms == BACKOFF_MIN_MS || sink->backoff_ms >= BACKOFF_MAX_MS)
        sl_diag(SL_DIAG_WARN, "pg: postgresql unavailable, retrying", "detail=\"%s\" held=%zu",
                errbuf, sink->n_msgs);
    set_unready(sink, errbuf);
    disconnect(sink);
}

/* Polls into the batch; false on a log error (errbuf). */
static bool gather(sl_pg_sink_t *sink, int timeout_ms, char *errbuf, size_t errlen)
{
    sl_log_message msgs[POLL_CHUNK];
    size_t room = sink->opts.batch_rows - sink->n_msgs;
    size_t n = 0;
    if (sl_log_consumer_poll(sink->c, msgs, room < POLL_CHUNK ? room : POLL_CHUNK, &n,
                             timeout_ms)) {
        sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not read the log: %s",
                      sl_log_consumer_errmsg(sink->c));
        return false;
    }
    memset(sink->rewound, 0, sink->parts * sizeof *sink->rewound);
    for (size_t i = 0; i < n; i++) {
        const sl_log_message *m = &msgs[i];
        if (m->partition >= sink->parts || sink->rewound[m->partition])
            continue;
        if (m->offset < sink->held_to[m->partition])
            continue; /* a re-delivery (invariant 2) */
        /* A record over half the batch's bytes is never written (only its start is kept,
         * for its dead letter); one that does not fit now is read again for the next
         * batch: its partition is rewound to it (invariant 4). */
        size_t keep = m->value_len > sink->opts.batch_bytes / 2 ? OVERSIZE_KEEP : m->value_len;
        if (sink->values.len + keep > sink->values.cap) {
            if (sl_log_consumer_seek(sink->c, m->partition, m->offset)) {
                sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not seek partition %u: %s",
                              m->partition, sl_log_consumer_errmsg(sink->c));
                return false;
            }
            sink->rewound[m->partition] = true;
            sink->full = true;
            continue;
        }
        size_t off = sink->values.len;
        if (sl_buf_append(&sink->values, m->value, keep)) {
            sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not hold a record of %zu bytes",
                          keep);
            return false;
        }
        if (sink->n_msgs == 0)
            sink->first_ns = sl_time_mono_ns();
        sink->msgs[sink->n_msgs++] = (held){.partition = m->partition,
                                            .offset = m->offset,
                                            .timestamp_ms = m->timestamp_ms,
                                            .off = off,
                                            .len = keep,
                                            .full_len = m->value_len};
        sink->held_to[m->partition] = m->offset + 1;
    }
    atomic_store(&sink->held_rows, sink->n_msgs);
    if (sink->resync_needed && resync(sink, errbuf, errlen))
        return false;
    return true;
}

static bool batch_is_due(const sl_pg_sink_t *sink)
{
    if (sink->n_msgs == 0)
        return false;
    return sink->full || sink->n_msgs >= sink->opts.batch_rows ||
           sink->values.len + (1u << 20) >= sink->opts.batch_bytes ||
           sl_time_mono_ns() - sink->first_ns >= (int64_t)sink->opts.linger_ms * 1000000;
}

static void *sink_main(void *arg)
{
    sl_pg_sink_t *sink = arg;
    char errbuf[512];
    int64_t stop_deadline = 0;
    for (;;) {
        bool stopping = atomic_load(&sink->stopping);
        if (stopping && !stop_deadline)
            stop_deadline = sl_time_mono_ns() + (int64_t)sink->opts.stop_timeout_ms * 1000000;
        if (stopping && (sink->n_msgs == 0 || sl_time_mono_ns() > stop_deadline))
            break;
        if (!sink->conn) {
            if (connect_pg(sink, errbuf, sizeof errbuf)) {
                failed(sink, errbuf);
                back_off(sink);
                continue;
            }
            if (!atomic_load(&sink->ready))
                sl_diag(SL_DIAG_INFO, "pg: connected", "held=%zu", sink->n_msgs);
            atomic_store(&sink->ready, true);
        }
        if (!stopping && !batch_is_due(sink)) {
            int timeout = POLL_IDLE_MS;
            if (sink->n_msgs > 0) {
                int64_t left =
                    (int64_t)sink->opts.linger_ms - (sl_time_mono_ns() - sink->first_ns) / 1000000;
                /* capped, so a stop is seen while a long linger runs */
                timeout = left < 0 ? 0 : left < POLL_IDLE_MS ? (int)left : POLL_IDLE_MS;
            }
            if (!gather(sink, timeout, errbuf, sizeof errbuf)) {
                failed(sink, errbuf);
                back_off(sink);
            }
            continue;
        }
        if (sink->n_msgs > 0) {
            if (write_batch(sink, errbuf, sizeof errbuf)) {
                failed(sink, errbuf);
                back_off(sink);
                continue;
            }
            clear_batch(sink);
            sink->backoff_ms = BACKOFF_MIN_MS;
        }
        if (sl_time_mono_ns() - sink->maintained_ns > MAINTAIN_EVERY_NS &&
            maintain(sink, errbuf, sizeof errbuf)) {
            failed(sink, errbuf);
            continue;
        }
    }
    if (sink->n_msgs > 0)
        sl_diag(SL_DIAG_WARN, "pg: stopped with events not written (they stay in the log)",
                "held=%zu", sink->n_msgs);
    disconnect(sink);
    return NULL;
}

static void on_assign(void *opaque, const unsigned *partitions, size_t n)
{
    sl_pg_sink_t *sink = opaque;
    sink->resync_needed = true; /* runs inside poll, on the sink thread */
}

static void sink_free(sl_pg_sink_t *sink)
{
    sl_log_consumer_close(sink->c);
    free(sink->conninfo);
    free(sink->group);
    free(sink->next);
    free(sink->held_to);
    free(sink->msgs);
    free(sink->rows);
    free(sink->dead);
    free(sink->id_slots);
    free(sink->rewound);
    sl_buf_cleanup(&sink->values);
    sl_buf_cleanup(&sink->copy);
    pthread_mutex_destroy(&sink->mu);
    free(sink);
}

sl_err sl_pg_sink_start(const sl_pg_sink_options *opts, sl_log_t *log, sl_pg_sink_t **out,
                        char *errbuf, size_t errlen)
{
    if (!opts->conninfo || !*opts->conninfo)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "the pg sink needs a PostgreSQL URI (--pg or SLUICE_PG)");
    if (opts->batch_rows == 0 || opts->batch_rows > 1000000 || opts->batch_bytes < (2u << 20))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "pg batch limits out of range: %zu rows, %zu bytes", opts->batch_rows,
                             opts->batch_bytes);
    sl_pg_sink_t *sink = calloc(1, sizeof *sink);
    if (!sink)
        return SL_ERR_NOMEM;
    pthread_mutex_init(&sink->mu, NULL);
    sink->opts = *opts;
    sink->parts = sl_log_partition_count(log);
    sink->conninfo = strdup(opts->conninfo);
    sink->group = strdup(opts->group ? opts->group : "sluice-pg");
    sink->next = calloc(sink->parts, sizeof *sink->next);
    sink->held_to = calloc(sink->parts, sizeof *sink->held_to);
    sink->rewound = calloc(sink->parts, sizeof *sink->rewound);
    sink->msgs = calloc(opts->batch_rows, sizeof *sink->msgs);
    sink->rows = calloc(opts->batch_rows, sizeof *sink->rows);
    sink->dead = calloc(opts->batch_rows, sizeof *sink->dead);
    for (sink->n_id_slots = 16; sink->n_id_slots < 2 * opts->batch_rows;)
        sink->n_id_slots *= 2;
    sink->id_slots = calloc(sink->n_id_slots, sizeof *sink->id_slots);
    sl_buf_init(&sink->values, opts->batch_bytes);
    /* escaping can double a value, and each row adds its seq and separators */
    sl_buf_init(&sink->copy, 2 * opts->batch_bytes + 64 * opts->batch_rows);
    sink->backoff_ms = BACKOFF_MIN_MS;
    set_unready(sink, "not connected to postgresql yet");
    sl_err err = SL_OK;
    if (!sink->conninfo || !sink->group || !sink->next || !sink->held_to || !sink->rewound ||
        !sink->msgs || !sink->rows || !sink->dead || !sink->id_slots) {
        err = SL_ERR_NOMEM;
        goto out;
    }
    sl_log_consumer_options co = {
        .group = sink->group,
        .from_beginning = true, /* PostgreSQL holds the offsets (invariant 1) */
        .on_assign = on_assign,
        .opaque = sink,
    };
    if ((err = sl_log_consumer_open(log, &co, &sink->c, errbuf, errlen)))
        goto out;
    if (pthread_create(&sink->thread, NULL, sink_main, sink)) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL, "could not start the pg sink thread");
        goto out;
    }
    *out = sink;
    return SL_OK;
out:
    sink_free(sink);
    return err;
}

void sl_pg_sink_stop(sl_pg_sink_t *sink)
{
    if (!sink)
        return;
    atomic_store(&sink->stopping, true);
    pthread_join(sink->thread, NULL);
    sink_free(sink);
}
