/* The pg sink: writers ("lanes", --pg-writers, 2 by default) that each own a share of the
 * log's partitions, with a thread, a consumer of group "sluice-pg" and a connection of
 * their own, so that two PostgreSQL backends work at once. A lane gathers a batch (by
 * rows, bytes and time) and writes it to PostgreSQL in one transaction: a binary COPY puts
 * the batch's event ids into sluice_event_ids (only when one was stored before, or a
 * timestamp is not one C reads exactly, a statement that answers which ones were stored
 * runs instead), COPY puts the other rows straight into
 * analytics_events, one statement upserts the rollups computed here from those rows
 * (rollup.c), then the offsets in sluice_offsets, then COMMIT.
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
 *     Each row also names the log it counts in (log_id, sl_log_identity): a row stored
 *     for another log (a log directory wiped and created anew beside a kept database)
 *     counts as no progress, so the new log is read from its beginning, not from offsets
 *     that would skip its first events.
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
#include "core/hash.h"
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
    size_t off, len; /* value in ln->values */
    size_t full_len; /* the record's size; more than len when only its start is held */
} held;

/* Bytes of a record too large for a batch kept for its dead letter. */
#define OVERSIZE_KEEP 4096

/* A row of the current attempt: a held message, its slice of the COPY text, its keys
 * in ln->text, and whether it is already stored (its event_id was) or went in now. */
typedef struct row {
    size_t msg;
    size_t off, len;
    sl__pg_keys keys;
    bool stored_before, inserted;
} row;

typedef struct lane lane;

typedef struct dead {
    size_t msg;
    char error[512];
} dead;

/* The sink: its writers ("lanes") and the counters they share. */
struct sl_pg_sink {
    sl_pg_sink_options opts;
    char *conninfo, *group;
    const char *log_id; /* sl_log_identity of the log read; "" when unknown */
    lane **lanes;
    unsigned n_lanes;
    atomic_bool stopping;

    /* @thread any */
    atomic_uint_fast64_t rows_total, duplicates_total, dead_total, batches_total;
    atomic_uint_fast64_t failures_total, partitions_dropped_total;
    atomic_int_fast64_t last_commit_us;
};

/* One writer: a thread with its own consumer (a share of the log's partitions), its own
 * connection and its own batch. Lanes own disjoint partitions, so each keeps invariants
 * 1-4 for its own; the rows of two lanes meet only in the rollups, whose upserts lock
 * rows in key order, and in sluice_event_ids. */
struct lane {
    sl_pg_sink_t *sink;
    unsigned index;
    sl_log_consumer_t *c;
    unsigned parts;
    pthread_t thread;
    bool started;

    /* @thread the lane's thread only, from here to the status */
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
    sl_buf text; /* the rows' key texts (sl__pg_keys) */
    row *rows;
    size_t n_rows;
    dead *dead;
    size_t n_dead;
    sl__pg_rollup *rollup;
    sl__pg_array ids, times;       /* parameters of the id statement */
    sl_buf ids_param, times_param; /* ids_param also holds the ids' binary COPY */
    uint32_t *id_slots;            /* open addressing over the batch's event ids: row index + 1 */
    size_t n_id_slots;             /* a power of two, at least twice batch_rows */
    size_t n_repeats;              /* rows of this attempt dropped as repeats of an earlier row */
    int32_t known_days[64];        /* partitions known to exist (a small cache) */
    size_t n_known_days;
    int64_t maintained_ns;
    unsigned backoff_ms;

    /* @thread any: the lane's status */
    pthread_mutex_t mu; /* guards why */
    char why[512];
    atomic_bool ready;
    atomic_uint_fast64_t held_rows;
};

void sl_pg_sink_options_default(sl_pg_sink_options *opts)
{
    *opts = (sl_pg_sink_options){
        .group = "sluice-pg",
        .batch_rows = 10000,
        .batch_bytes = 16u << 20,
        .linger_ms = 100,
        .stop_timeout_ms = 10000,
        .writers = 2,
        .schema = {.retention_days = 30, .partitions_ahead = 3},
    };
}

static void set_unready(lane *ln, const char *why)
{
    pthread_mutex_lock(&ln->mu);
    snprintf(ln->why, sizeof ln->why, "%s", why);
    pthread_mutex_unlock(&ln->mu);
    atomic_store(&ln->ready, false);
}

/* Ready when every lane is; otherwise the reason of the first that is not.
 * @thread any HTTP thread */
static bool is_ready(void *opaque, char *why, size_t whylen)
{
    sl_pg_sink_t *sink = opaque;
    for (unsigned i = 0; i < sink->n_lanes; i++) {
        lane *ln = sink->lanes[i];
        if (atomic_load(&ln->ready))
            continue;
        pthread_mutex_lock(&ln->mu);
        snprintf(why, whylen, "%s", ln->why);
        pthread_mutex_unlock(&ln->mu);
        return false;
    }
    return true;
}

/* @thread any HTTP thread */
static sl_err write_metrics(void *opaque, sl_buf *out)
{
    sl_pg_sink_t *sink = opaque;
    uint64_t held_rows = 0, up = 0;
    for (unsigned i = 0; i < sink->n_lanes; i++) {
        held_rows += atomic_load(&sink->lanes[i]->held_rows);
        up += atomic_load(&sink->lanes[i]->ready);
    }
    return sl_buf_appendf(
        out,
        "# HELP sluice_pg_up Whether the last attempt of every pg sink writer to reach "
        "PostgreSQL worked.\n"
        "# TYPE sluice_pg_up gauge\nsluice_pg_up %d\n"
        "# HELP sluice_pg_writers_up pg sink writers whose last attempt to reach PostgreSQL "
        "worked.\n"
        "# TYPE sluice_pg_writers_up gauge\nsluice_pg_writers_up %" PRIu64 "\n"
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
        up == sink->n_lanes ? 1 : 0, up, (uint64_t)atomic_load(&sink->rows_total),
        (uint64_t)atomic_load(&sink->duplicates_total), (uint64_t)atomic_load(&sink->dead_total),
        (uint64_t)atomic_load(&sink->batches_total), (uint64_t)atomic_load(&sink->failures_total),
        (uint64_t)atomic_load(&sink->partitions_dropped_total), held_rows,
        (double)atomic_load(&sink->last_commit_us) / 1e6);
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

static sl_err load_offsets(lane *ln, char *errbuf, size_t errlen)
{
    const char *params[1] = {ln->sink->group};
    PGresult *res = PQexecParams(ln->conn,
                                 "SELECT log_partition, next_offset, log_id FROM sluice_offsets "
                                 "WHERE consumer_group = $1",
                                 1, NULL, params, NULL, NULL, 0);
    sl_err err = SL_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not read sluice_offsets: %s",
                            PQerrorMessage(ln->conn));
        goto out;
    }
    memset(ln->next, 0, ln->parts * sizeof *ln->next);
    const char *log_id = ln->sink->log_id;
    for (int i = 0; i < PQntuples(res); i++) {
        long p = strtol(PQgetvalue(res, i, 0), NULL, 10);
        unsigned long long off = strtoull(PQgetvalue(res, i, 1), NULL, 10);
        if (p < 0 || (unsigned long)p >= ln->parts)
            continue; /* a partition the log no longer has */
        /* A row without a log (stored before log ids existed) is taken as this log's. */
        const char *stored_id = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        if (*log_id && stored_id && strcmp(stored_id, log_id) != 0) {
            sl_diag(SL_DIAG_WARN,
                    "pg sink: stored offsets belong to another log; reading this "
                    "one from its beginning",
                    "group=\"%s\" partition=%ld stored_log=%s log=%s stored_next=%llu",
                    ln->sink->group, p, stored_id, log_id, off);
            continue;
        }
        ln->next[p] = off;
    }
out:
    PQclear(res);
    return err;
}

static void clear_batch(lane *ln)
{
    ln->n_msgs = 0;
    ln->full = false;
    sl_buf_reset(&ln->values);
    atomic_store(&ln->held_rows, 0);
}

/* Invariant 1: read the stored offsets, forget the batch, seek there. */
static sl_err resync(lane *ln, char *errbuf, size_t errlen)
{
    sl_err err = load_offsets(ln, errbuf, errlen);
    if (err)
        return err;
    clear_batch(ln);
    for (unsigned p = 0; p < ln->parts; p++) {
        ln->held_to[p] = ln->next[p];
        if (sl_log_consumer_seek(ln->c, p, ln->next[p]))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not seek partition %u: %s", p,
                                 sl_log_consumer_errmsg(ln->c));
    }
    ln->resync_needed = false;
    return SL_OK;
}

static sl_err maintain(lane *ln, char *errbuf, size_t errlen)
{
    unsigned dropped = 0;
    sl_err err =
        sl__pg_partitions_maintain(ln->conn, &ln->sink->opts.schema,
                                   sl__pg_day_of_us(sl_time_now_us()), &dropped, errbuf, errlen);
    if (err)
        return err;
    ln->n_known_days = 0;
    ln->maintained_ns = sl_time_mono_ns();
    if (dropped) {
        atomic_fetch_add(&ln->sink->partitions_dropped_total, dropped);
        sl_diag(SL_DIAG_INFO, "pg: dropped partitions past retention", "partitions=%u", dropped);
    }
    return SL_OK;
}

/* Connects, migrates, prepares the session and reads the stored offsets. */
static sl_err connect_pg(lane *ln, char *errbuf, size_t errlen)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {ln->sink->conninfo, "5", "sluice-pg-sink", NULL};
    ln->conn = PQconnectdbParams(keys, vals, 1);
    sl_err err;
    if (PQstatus(ln->conn) != CONNECTION_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not connect to postgresql: %s",
                            PQerrorMessage(ln->conn));
        goto out;
    }
    /* work_mem: the id statement hashes the batch's new ids in memory (4 MB would spill
     * a large batch to disk). synchronous_commit stays on: a batch is durable in
     * PostgreSQL before the sink moves past it. */
    if ((err = sl__pg_exec(ln->conn,
                           "SET client_min_messages = warning; SET timezone = 'UTC'; "
                           "SET work_mem = '64MB'",
                           errbuf, errlen)) ||
        (err = sl__pg_migrate_conn(ln->conn, errbuf, errlen)) ||
        (err = maintain(ln, errbuf, errlen)))
        goto out;
    err = resync(ln, errbuf, errlen);
out:
    if (err) {
        PQfinish(ln->conn);
        ln->conn = NULL;
    }
    return err;
}

static void disconnect(lane *ln)
{
    PQfinish(ln->conn);
    ln->conn = NULL;
}

/* ---- one batch ---- */

static const char *row_id(const lane *ln, const row *r, size_t *len)
{
    *len = r->keys.event_id.len;
    return ln->text.data + r->keys.event_id.off;
}

/* Whether the row just built repeats the event_id of an earlier row of the batch (then a
 * client sent it twice in quick succession); if not, remembers it. */
static bool is_repeat(lane *ln, const row *r)
{
    size_t len;
    const char *id = row_id(ln, r, &len);
    size_t mask = ln->n_id_slots - 1;
    for (size_t at = sl_hash_bytes(id, len) & mask;; at = (at + 1) & mask) {
        uint32_t slot = ln->id_slots[at];
        if (slot == 0) {
            ln->id_slots[at] = (uint32_t)ln->n_rows + 1;
            return false;
        }
        size_t olen;
        const char *other = row_id(ln, &ln->rows[slot - 1], &olen);
        if (olen == len && memcmp(other, id, len) == 0)
            return true;
    }
}

/* Builds the COPY text of the held messages not yet stored; records that are not JSON
 * objects become dead letters right away. Creates the partitions the rows need. */
static sl_err build_rows(lane *ln, char *errbuf, size_t errlen)
{
    sl_buf_reset(&ln->copy);
    sl_buf_reset(&ln->text);
    ln->n_rows = 0;
    ln->n_dead = 0;
    ln->n_repeats = 0;
    memset(ln->id_slots, 0, ln->n_id_slots * sizeof *ln->id_slots);
    int32_t today = sl__pg_day_of_us(sl_time_now_us());
    int32_t oldest = today - (int32_t)ln->sink->opts.schema.retention_days;
    int32_t newest = today + (int32_t)ln->sink->opts.schema.partitions_ahead;
    for (size_t i = 0; i < ln->n_msgs; i++) {
        const held *h = &ln->msgs[i];
        if (h->len < h->full_len) {
            dead *d = &ln->dead[ln->n_dead++];
            d->msg = i;
            snprintf(d->error, sizeof d->error,
                     "record of %zu bytes is over half of --pg-batch-bytes (%zu); its first %zu "
                     "bytes are kept here",
                     h->full_len, ln->sink->opts.batch_bytes, h->len);
            continue;
        }
        sl_log_message m = {.partition = h->partition,
                            .offset = h->offset,
                            .timestamp_ms = h->timestamp_ms,
                            .value = ln->values.data + h->off,
                            .value_len = h->len};
        size_t off = ln->copy.len, text_off = ln->text.len;
        int32_t day;
        dead *d = &ln->dead[ln->n_dead];
        row r = {.msg = i, .off = off};
        sl_err err =
            sl__pg_row_append(&ln->copy, &ln->text, &m, &r.keys, &day, d->error, sizeof d->error);
        if (err == SL_ERR_INVALID || err == SL_ERR_TOO_LARGE) {
            d->msg = i;
            ln->n_dead++;
            continue;
        }
        if (err)
            return sl_errbuf_set(errbuf, errlen, err, "could not build a COPY row: %s",
                                 sl_strerror(err));
        r.len = ln->copy.len - off;
        if (is_repeat(ln, &r)) {
            ln->copy.len = off;
            ln->copy.data[off] = '\0';
            ln->text.len = text_off;
            ln->n_repeats++;
            continue;
        }
        ln->rows[ln->n_rows++] = r;
        /* Rows outside the kept window get no partition: PostgreSQL refuses them and
         * they become dead letters with its reason. */
        if (day == SL__PG_NO_DAY || day < oldest || day > newest)
            continue;
        bool known = false;
        for (size_t k = 0; k < ln->n_known_days && !known; k++)
            known = ln->known_days[k] == day;
        if (known)
            continue;
        if ((err = sl__pg_partition_ensure(ln->conn, day, errbuf, errlen)))
            return err;
        if (ln->n_known_days == sizeof ln->known_days / sizeof ln->known_days[0])
            ln->n_known_days = 0;
        ln->known_days[ln->n_known_days++] = day;
    }
    return SL_OK;
}

/* The batch's ids go into sluice_event_ids; the answer is the positions (from 0) of
 * those that were there already: stored by an earlier batch, or by a client's retry.
 * build_rows removed repeats inside the batch. */
static const char ids_sql[] =
    "WITH fresh AS ("
    " INSERT INTO sluice_event_ids (event_id, \"timestamp\")"
    " SELECT id, ts::timestamptz FROM unnest($1::text[], $2::text[]) AS u(id, ts)"
    " ON CONFLICT DO NOTHING RETURNING event_id)"
    "SELECT i - 1 FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.event_id = u.id COLLATE \"C\")";

/* Outcome of writing some rows inside the open transaction. */
typedef enum outcome { WROTE, REFUSED, FAILED } outcome;

/* Why a statement or COPY failed: REFUSED (reason in why) when PostgreSQL refused the
 * data, FAILED (errbuf) on anything else. */
static outcome failure(lane *ln, PGresult *res, const char *what, char *why, size_t whylen,
                       char *errbuf, size_t errlen)
{
    if (PQstatus(ln->conn) == CONNECTION_OK && is_data_error(res)) {
        result_error(res, ln->conn, why, whylen);
        return REFUSED;
    }
    char msg[512];
    result_error(res, ln->conn, msg, sizeof msg);
    sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not %s: %s", what, msg);
    return FAILED;
}

/* COPY ... FROM STDIN in three steps: start (NULL on success, else the failed result),
 * send (false when the connection failed), finish (the final result, to be cleared). */
static PGresult *copy_start(lane *ln, const char *sql)
{
    PGresult *res = PQexec(ln->conn, sql);
    if (PQresultStatus(res) == PGRES_COPY_IN) {
        PQclear(res);
        return NULL;
    }
    return res;
}

static bool copy_send(lane *ln, const char *from, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
        if (PQputCopyData(ln->conn, from, chunk) != 1)
            return false;
        from += chunk;
        len -= (size_t)chunk;
    }
    return true;
}

static PGresult *copy_finish(lane *ln, bool sent)
{
    /* After a failed send the COPY ends with an error, so its result is one; a failed
     * end shows in the result too. */
    PQputCopyEnd(ln->conn, sent ? NULL : "could not send the data");
    PGresult *res = PQgetResult(ln->conn);
    /* Drain what is left of the COPY exchange, if anything. */
    PGresult *rest;
    while ((rest = PQgetResult(ln->conn)))
        PQclear(rest);
    return res;
}

static bool is_unique_violation(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && !strcmp(state, "23505");
}

/* The statement that inserts the ids of rows [lo, hi) and marks the rows whose id was
 * stored before. */
static outcome insert_ids_answering(lane *ln, size_t lo, size_t hi, char *why, size_t whylen,
                                    char *errbuf, size_t errlen)
{
    sl__pg_array_reset(&ln->ids);
    sl__pg_array_reset(&ln->times);
    sl_err err = SL_OK;
    for (size_t i = lo; i < hi && !err; i++) {
        const sl__pg_keys *k = &ln->rows[i].keys;
        err = sl__pg_array_text(&ln->ids, ln->text.data + k->event_id.off, k->event_id.len);
        if (!err)
            err = sl__pg_array_text(
                &ln->times,
                k->timestamp.len == SL__PG_NULL ? NULL : ln->text.data + k->timestamp.off,
                k->timestamp.len);
    }
    if (err || (err = sl__pg_array_finish(&ln->ids, &ln->ids_param)) ||
        (err = sl__pg_array_finish(&ln->times, &ln->times_param))) {
        sl_errbuf_set(errbuf, errlen, err, "could not build the id statement: %s",
                      sl_strerror(err));
        return FAILED;
    }
    const char *vals[2] = {ln->ids_param.data, ln->times_param.data};
    int lens[2] = {(int)ln->ids_param.len, (int)ln->times_param.len};
    int fmts[2] = {1, 1};
    PGresult *res = PQexecParams(ln->conn, ids_sql, 2, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        outcome oc = failure(ln, res, "insert event ids", why, whylen, errbuf, errlen);
        PQclear(res);
        return oc;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        unsigned long long at = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        if (at < hi - lo)
            ln->rows[lo + at].stored_before = true;
    }
    PQclear(res);
    return WROTE;
}

/* The ids of rows [lo, hi) in PostgreSQL's binary COPY format into ln->ids_param: each
 * id's text and its timestamp as microseconds since 2000, so PostgreSQL parses no time.
 * *binary is false (and ids_param is not to be sent) when a row's timestamp is not one C
 * reads exactly as PostgreSQL does (sl__pg_time_exact): those ids need the statement,
 * which hands PostgreSQL the texts. */
static sl_err build_ids_copy(lane *ln, size_t lo, size_t hi, bool *binary)
{
    static const unsigned char header[19] = "PGCOPY\n\377\r\n\0"; /* flags, extension: 0 */
    sl_buf_reset(&ln->ids_param);
    sl_err err = sl_buf_append(&ln->ids_param, header, sizeof header);
    *binary = true;
    for (size_t i = lo; i < hi && !err; i++) {
        const sl__pg_keys *k = &ln->rows[i].keys;
        int64_t us;
        if (k->timestamp.len == SL__PG_NULL ||
            !sl__pg_time_exact(ln->text.data + k->timestamp.off, k->timestamp.len, &us)) {
            *binary = false;
            return SL_OK;
        }
        /* a tuple of two fields (16-bit count): the id's text, then its time */
        if (!(err = sl_buf_append(&ln->ids_param, "\0\2", 2)) &&
            !(err = sl__pg_binary_text(&ln->ids_param, ln->text.data + k->event_id.off,
                                       k->event_id.len)))
            err = sl__pg_binary_int8(&ln->ids_param, us - SL__PG_EPOCH_US);
    }
    return err ? err : sl_buf_append(&ln->ids_param, "\xff\xff", 2); /* the trailer, -1 */
}

/* Binary COPY of the ids built by build_ids_copy into sluice_event_ids. Fails as a whole,
 * with a unique violation, if any id was stored before. */
static outcome copy_ids(lane *ln, bool *stored_before, char *why, size_t whylen, char *errbuf,
                        size_t errlen)
{
    PGresult *res = copy_start(
        ln, "COPY sluice_event_ids (event_id, \"timestamp\") FROM STDIN (FORMAT binary)");
    if (!res)
        res = copy_finish(ln, copy_send(ln, ln->ids_param.data, ln->ids_param.len));
    outcome oc = WROTE;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        *stored_before = is_unique_violation(res);
        oc = failure(ln, res, "insert event ids", why, whylen, errbuf, errlen);
    }
    PQclear(res);
    return oc;
}

/* Inserts the ids of rows [lo, hi) and marks the rows whose id was stored before. Offsets
 * rule out replays, so only a client's retry repeats a stored id, and almost every batch
 * has none: its ids go in with COPY, which costs PostgreSQL less than the statement,
 * under a savepoint. When one was stored before, that is rolled back and the statement,
 * which answers which ones, runs instead; so it does when a timestamp is not one the
 * binary COPY can carry. */
static outcome insert_ids(lane *ln, size_t lo, size_t hi, char *why, size_t whylen, char *errbuf,
                          size_t errlen)
{
    for (size_t i = lo; i < hi; i++)
        ln->rows[i].stored_before = false;
    bool binary;
    sl_err err = build_ids_copy(ln, lo, hi, &binary);
    if (err) {
        sl_errbuf_set(errbuf, errlen, err, "could not build the ids' COPY: %s", sl_strerror(err));
        return FAILED;
    }
    if (!binary)
        return insert_ids_answering(ln, lo, hi, why, whylen, errbuf, errlen);
    if (sl__pg_exec(ln->conn, "SAVEPOINT ids", errbuf, errlen))
        return FAILED;
    bool stored_before = false;
    outcome oc = copy_ids(ln, &stored_before, why, whylen, errbuf, errlen);
    if (oc == WROTE)
        return sl__pg_exec(ln->conn, "RELEASE ids", errbuf, errlen) ? FAILED : WROTE;
    if (oc == FAILED || !stored_before)
        return oc; /* the caller rolls back */
    if (sl__pg_exec(ln->conn, "ROLLBACK TO ids; RELEASE ids", errbuf, errlen))
        return FAILED;
    return insert_ids_answering(ln, lo, hi, why, whylen, errbuf, errlen);
}

/* Sends rows [lo, hi) but those stored before as one COPY into analytics_events. */
static outcome copy_rows(lane *ln, size_t lo, size_t hi, char *why, size_t whylen, char *errbuf,
                         size_t errlen)
{
    char sql[512];
    snprintf(sql, sizeof sql, "COPY analytics_events (%s) FROM STDIN", sl__pg_copy_columns);
    PGresult *res = copy_start(ln, sql);
    bool sent = true;
    for (size_t i = lo; i < hi && sent && !res;) {
        if (ln->rows[i].stored_before) {
            i++;
            continue;
        }
        /* a run of consecutive new rows is one slice of the COPY text */
        size_t j = i + 1;
        while (j < hi && !ln->rows[j].stored_before)
            j++;
        sent = copy_send(ln, ln->copy.data + ln->rows[i].off,
                         ln->rows[j - 1].off + ln->rows[j - 1].len - ln->rows[i].off);
        i = j;
    }
    if (!res)
        res = copy_finish(ln, sent);
    outcome oc = PQresultStatus(res) == PGRES_COMMAND_OK
                     ? WROTE
                     : failure(ln, res, "write rows", why, whylen, errbuf, errlen);
    PQclear(res);
    return oc;
}

/* Writes rows [lo, hi): their ids, then the rows whose ids were new; marks those
 * inserted. REFUSED (reason in why) when PostgreSQL refused the data, FAILED (errbuf) on
 * anything else. */
static outcome write_rows(lane *ln, size_t lo, size_t hi, char *why, size_t whylen, char *errbuf,
                          size_t errlen)
{
    outcome oc = insert_ids(ln, lo, hi, why, whylen, errbuf, errlen);
    bool any_new = false;
    for (size_t i = lo; i < hi && !any_new; i++)
        any_new = !ln->rows[i].stored_before;
    if (oc == WROTE && any_new)
        oc = copy_rows(ln, lo, hi, why, whylen, errbuf, errlen);
    for (size_t i = lo; i < hi; i++)
        ln->rows[i].inserted = oc == WROTE && !ln->rows[i].stored_before;
    return oc;
}

/* Writes rows under savepoints, halving any range PostgreSQL refuses until the refused
 * rows stand alone; those become dead letters (invariant 3). The stack holds [lo, hi)
 * pairs; halving 2^32 rows needs at most 32 levels of two pairs. */
static sl_err write_halving(lane *ln, char *errbuf, size_t errlen)
{
    size_t stack[2 * 64] = {0, ln->n_rows};
    size_t top = 2;
    while (top > 0) {
        size_t hi = stack[--top], lo = stack[--top];
        sl_err err;
        if ((err = sl__pg_exec(ln->conn, "SAVEPOINT part", errbuf, errlen)))
            return err;
        char why[512];
        outcome oc = write_rows(ln, lo, hi, why, sizeof why, errbuf, errlen);
        if (oc == FAILED)
            return SL_ERR_IO;
        if (oc == WROTE) {
            if ((err = sl__pg_exec(ln->conn, "RELEASE part", errbuf, errlen)))
                return err;
            continue;
        }
        if ((err = sl__pg_exec(ln->conn, "ROLLBACK TO part; RELEASE part", errbuf, errlen)))
            return err;
        if (hi - lo == 1) {
            dead *d = &ln->dead[ln->n_dead++];
            d->msg = ln->rows[lo].msg;
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

static sl_err write_dead_letters(lane *ln, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < ln->n_dead; i++) {
        const held *h = &ln->msgs[ln->dead[i].msg];
        /* The reason may quote the record's own bytes (a duplicate key), which need not be
         * UTF-8; PostgreSQL would refuse it and the batch could never commit. Keep ASCII. */
        for (char *c = ln->dead[i].error; *c; c++) {
            if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20)
                *c = '?';
        }
        char part[16], off[24];
        snprintf(part, sizeof part, "%u", h->partition);
        snprintf(off, sizeof off, "%" PRIu64, h->offset);
        const char *vals[5] = {ln->sink->group, part, off, ln->dead[i].error,
                               ln->values.data + h->off};
        int lens[5] = {0, 0, 0, 0, (int)h->len};
        int fmts[5] = {0, 0, 0, 0, 1};
        PGresult *res = PQexecParams(ln->conn,
                                     "INSERT INTO sluice_dead_letters (consumer_group, "
                                     "log_partition, log_offset, error, payload) VALUES "
                                     "($1, $2, $3, $4, $5)",
                                     5, NULL, vals, lens, fmts, 0);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not store a dead letter: %s",
                                 PQerrorMessage(ln->conn));
    }
    return SL_OK;
}

/* The new next offsets of the batch's partitions, as one upsert. */
static sl_err write_offsets(lane *ln, sl_buf *sql, char *errbuf, size_t errlen)
{
    char *group = PQescapeLiteral(ln->conn, ln->sink->group, strlen(ln->sink->group));
    if (!group)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "%s", PQerrorMessage(ln->conn));
    char *log_id = *ln->sink->log_id
                       ? PQescapeLiteral(ln->conn, ln->sink->log_id, strlen(ln->sink->log_id))
                       : NULL;
    if (*ln->sink->log_id && !log_id) {
        PQfreemem(group);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "%s", PQerrorMessage(ln->conn));
    }
    sl_err err = sl_buf_append_str(sql, "INSERT INTO sluice_offsets (consumer_group, "
                                        "log_partition, next_offset, log_id) VALUES ");
    bool first = true;
    for (unsigned p = 0; p < ln->parts && !err; p++) {
        if (ln->held_to[p] <= ln->next[p])
            continue;
        err = sl_buf_appendf(sql, "%s(%s, %u, %" PRIu64 ", %s)", first ? "" : ", ", group, p,
                             ln->held_to[p], log_id ? log_id : "NULL");
        first = false;
    }
    PQfreemem(group);
    PQfreemem(log_id);
    if (err)
        return err;
    if (first)
        return SL_OK; /* nothing new (every held message was already stored) */
    /* A row of another log is replaced (load_offsets ignored it), else it only advances. */
    if ((err = sl_buf_append_str(sql, " ON CONFLICT (consumer_group, log_partition) DO UPDATE "
                                      "SET next_offset = CASE WHEN sluice_offsets.log_id IS "
                                      "DISTINCT FROM excluded.log_id THEN excluded.next_offset "
                                      "ELSE greatest(sluice_offsets.next_offset, "
                                      "excluded.next_offset) END, log_id = excluded.log_id, "
                                      "updated_at = now()")))
        return err;
    return sl__pg_exec(ln->conn, sql->data, errbuf, errlen);
}

/* One transaction for the held batch. SL_OK: committed (or nothing to do). */
static sl_err write_batch(lane *ln, char *errbuf, size_t errlen)
{
    sl_err err;
    if ((err = build_rows(ln, errbuf, errlen)))
        return err;
    size_t n_unparsed = ln->n_dead;
    uint64_t inserted = 0;
    if ((err = sl__pg_exec(ln->conn, "BEGIN", errbuf, errlen)))
        return err;
    if (ln->n_rows > 0) {
        char why[512];
        outcome oc = write_rows(ln, 0, ln->n_rows, why, sizeof why, errbuf, errlen);
        if (oc == FAILED)
            return SL_ERR_IO;
        if (oc == REFUSED) {
            sl_diag(SL_DIAG_WARN, "pg: a batch holds refused rows; finding them",
                    "rows=%zu first_error=\"%s\"", ln->n_rows, why);
            if ((err = sl__pg_exec(ln->conn, "ROLLBACK; BEGIN", errbuf, errlen)) ||
                (err = write_halving(ln, errbuf, errlen)))
                return err;
        }
    }
    /* The rollups count exactly the rows that went in. */
    sl__pg_rollup_reset(ln->rollup);
    for (size_t i = 0; i < ln->n_rows; i++) {
        if (!ln->rows[i].inserted)
            continue;
        inserted++;
        if ((sl__pg_rollup_full(ln->rollup) &&
             (err = sl__pg_rollup_flush(ln->rollup, ln->conn, errbuf, errlen))) ||
            (err = sl__pg_rollup_add(ln->rollup, ln->text.data, &ln->rows[i].keys)))
            return err == SL_ERR_IO
                       ? err
                       : sl_errbuf_set(errbuf, errlen, err, "could not compute the rollups: %s",
                                       sl_strerror(err));
    }
    if ((err = sl__pg_rollup_flush(ln->rollup, ln->conn, errbuf, errlen)))
        return err;
    sl_buf sql;
    sl_buf_init(&sql, 1u << 20);
    err = write_dead_letters(ln, errbuf, errlen);
    if (!err)
        err = write_offsets(ln, &sql, errbuf, errlen);
    sl_buf_cleanup(&sql);
    if (err || (err = sl__pg_exec(ln->conn, "COMMIT", errbuf, errlen)))
        return err;
    for (size_t i = 0; i < ln->n_dead; i++) {
        const held *h = &ln->msgs[ln->dead[i].msg];
        sl_diag(SL_DIAG_WARN, "pg: record refused, kept in sluice_dead_letters",
                "partition=%u offset=%" PRIu64 " error=\"%s\"", h->partition, h->offset,
                ln->dead[i].error);
    }
    for (unsigned p = 0; p < ln->parts; p++) {
        if (ln->held_to[p] > ln->next[p])
            ln->next[p] = ln->held_to[p];
    }
    /* rows refused while halving are counted in n_rows too */
    size_t accepted = ln->n_rows - (ln->n_dead - n_unparsed);
    atomic_fetch_add(&ln->sink->rows_total, inserted);
    atomic_fetch_add(&ln->sink->dead_total, ln->n_dead);
    atomic_fetch_add(&ln->sink->duplicates_total,
                     ln->n_repeats + (accepted > inserted ? accepted - inserted : 0));
    atomic_fetch_add(&ln->sink->batches_total, 1);
    atomic_store(&ln->sink->last_commit_us, sl_time_now_us());
    return SL_OK;
}

/* ---- the thread ---- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits out the backoff in short steps, so stop is seen; doubles it for next time. */
static void back_off(lane *ln)
{
    for (unsigned waited = 0; waited < ln->backoff_ms && !atomic_load(&ln->sink->stopping);
         waited += 50)
        sleep_ms(50);
    ln->backoff_ms = ln->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ln->backoff_ms * 2;
}

static void failed(lane *ln, char *errbuf)
{
    sl__pg_one_line(errbuf);
    atomic_fetch_add(&ln->sink->failures_total, 1);
    /* the first failure of an outage, then one line per longest backoff */
    if (ln->backoff_ms == BACKOFF_MIN_MS || ln->backoff_ms >= BACKOFF_MAX_MS)
        sl_diag(SL_DIAG_WARN, "pg: postgresql unavailable, retrying",
                "writer=%u detail=\"%s\" held=%zu", ln->index, errbuf, ln->n_msgs);
    set_unready(ln, errbuf);
    disconnect(ln);
}

/* Polls into the batch; false on a log error (errbuf). */
static bool gather(lane *ln, int timeout_ms, char *errbuf, size_t errlen)
{
    sl_log_message msgs[POLL_CHUNK];
    size_t room = ln->sink->opts.batch_rows - ln->n_msgs;
    size_t n = 0;
    if (sl_log_consumer_poll(ln->c, msgs, room < POLL_CHUNK ? room : POLL_CHUNK, &n, timeout_ms)) {
        sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not read the log: %s",
                      sl_log_consumer_errmsg(ln->c));
        return false;
    }
    memset(ln->rewound, 0, ln->parts * sizeof *ln->rewound);
    for (size_t i = 0; i < n; i++) {
        const sl_log_message *m = &msgs[i];
        if (m->partition >= ln->parts || ln->rewound[m->partition])
            continue;
        if (m->offset < ln->held_to[m->partition])
            continue; /* a re-delivery (invariant 2) */
        /* A record over half the batch's bytes is never written (only its start is kept,
         * for its dead letter); one that does not fit now is read again for the next
         * batch: its partition is rewound to it (invariant 4). */
        size_t keep = m->value_len > ln->sink->opts.batch_bytes / 2 ? OVERSIZE_KEEP : m->value_len;
        if (ln->values.len + keep > ln->values.cap) {
            if (sl_log_consumer_seek(ln->c, m->partition, m->offset)) {
                sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not seek partition %u: %s",
                              m->partition, sl_log_consumer_errmsg(ln->c));
                return false;
            }
            ln->rewound[m->partition] = true;
            ln->full = true;
            continue;
        }
        size_t off = ln->values.len;
        if (sl_buf_append(&ln->values, m->value, keep)) {
            sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not hold a record of %zu bytes",
                          keep);
            return false;
        }
        if (ln->n_msgs == 0)
            ln->first_ns = sl_time_mono_ns();
        ln->msgs[ln->n_msgs++] = (held){.partition = m->partition,
                                        .offset = m->offset,
                                        .timestamp_ms = m->timestamp_ms,
                                        .off = off,
                                        .len = keep,
                                        .full_len = m->value_len};
        ln->held_to[m->partition] = m->offset + 1;
    }
    atomic_store(&ln->held_rows, ln->n_msgs);
    if (ln->resync_needed && resync(ln, errbuf, errlen))
        return false;
    return true;
}

static bool batch_is_due(const lane *ln)
{
    if (ln->n_msgs == 0)
        return false;
    return ln->full || ln->n_msgs >= ln->sink->opts.batch_rows ||
           ln->values.len + (1u << 20) >= ln->sink->opts.batch_bytes ||
           sl_time_mono_ns() - ln->first_ns >= (int64_t)ln->sink->opts.linger_ms * 1000000;
}

static void *lane_main(void *arg)
{
    lane *ln = arg;
    char errbuf[512];
    int64_t stop_deadline = 0;
    for (;;) {
        bool stopping = atomic_load(&ln->sink->stopping);
        if (stopping && !stop_deadline)
            stop_deadline = sl_time_mono_ns() + (int64_t)ln->sink->opts.stop_timeout_ms * 1000000;
        if (stopping && (ln->n_msgs == 0 || sl_time_mono_ns() > stop_deadline))
            break;
        if (!ln->conn) {
            if (connect_pg(ln, errbuf, sizeof errbuf)) {
                failed(ln, errbuf);
                back_off(ln);
                continue;
            }
            if (!atomic_load(&ln->ready))
                sl_diag(SL_DIAG_INFO, "pg: connected", "writer=%u held=%zu", ln->index, ln->n_msgs);
            atomic_store(&ln->ready, true);
        }
        if (!stopping && !batch_is_due(ln)) {
            int timeout = POLL_IDLE_MS;
            if (ln->n_msgs > 0) {
                int64_t left = (int64_t)ln->sink->opts.linger_ms -
                               (sl_time_mono_ns() - ln->first_ns) / 1000000;
                /* capped, so a stop is seen while a long linger runs */
                timeout = left < 0 ? 0 : left < POLL_IDLE_MS ? (int)left : POLL_IDLE_MS;
            }
            if (!gather(ln, timeout, errbuf, sizeof errbuf)) {
                failed(ln, errbuf);
                back_off(ln);
            }
            continue;
        }
        if (ln->n_msgs > 0) {
            if (write_batch(ln, errbuf, sizeof errbuf)) {
                failed(ln, errbuf);
                back_off(ln);
                continue;
            }
            clear_batch(ln);
            ln->backoff_ms = BACKOFF_MIN_MS;
        }
        if (sl_time_mono_ns() - ln->maintained_ns > MAINTAIN_EVERY_NS &&
            maintain(ln, errbuf, sizeof errbuf)) {
            failed(ln, errbuf);
            continue;
        }
    }
    if (ln->n_msgs > 0)
        sl_diag(SL_DIAG_WARN, "pg: stopped with events not written (they stay in the log)",
                "writer=%u held=%zu", ln->index, ln->n_msgs);
    disconnect(ln);
    return NULL;
}

static void on_assign(void *opaque, const unsigned *partitions, size_t n)
{
    lane *ln = opaque;
    ln->resync_needed = true; /* runs inside poll, on the lane's thread */
}

static void lane_free(lane *ln)
{
    if (!ln)
        return;
    sl_log_consumer_close(ln->c);
    free(ln->next);
    free(ln->held_to);
    free(ln->msgs);
    free(ln->rows);
    free(ln->dead);
    free(ln->id_slots);
    free(ln->rewound);
    sl_buf_cleanup(&ln->values);
    sl_buf_cleanup(&ln->copy);
    sl_buf_cleanup(&ln->text);
    sl__pg_rollup_free(ln->rollup);
    sl__pg_array_cleanup(&ln->ids);
    sl__pg_array_cleanup(&ln->times);
    sl_buf_cleanup(&ln->ids_param);
    sl_buf_cleanup(&ln->times_param);
    pthread_mutex_destroy(&ln->mu);
    free(ln);
}

/* A lane with its buffers and its consumer (share index of the sink's lanes). */
static sl_err lane_new(sl_pg_sink_t *sink, sl_log_t *log, unsigned index, lane **out, char *errbuf,
                       size_t errlen)
{
    const sl_pg_sink_options *opts = &sink->opts;
    lane *ln = calloc(1, sizeof *ln);
    if (!ln)
        return SL_ERR_NOMEM;
    pthread_mutex_init(&ln->mu, NULL);
    ln->sink = sink;
    ln->index = index;
    ln->parts = sl_log_partition_count(log);
    ln->next = calloc(ln->parts, sizeof *ln->next);
    ln->held_to = calloc(ln->parts, sizeof *ln->held_to);
    ln->rewound = calloc(ln->parts, sizeof *ln->rewound);
    ln->msgs = calloc(opts->batch_rows, sizeof *ln->msgs);
    ln->rows = calloc(opts->batch_rows, sizeof *ln->rows);
    ln->dead = calloc(opts->batch_rows, sizeof *ln->dead);
    for (ln->n_id_slots = 16; ln->n_id_slots < 2 * opts->batch_rows;)
        ln->n_id_slots *= 2;
    ln->id_slots = calloc(ln->n_id_slots, sizeof *ln->id_slots);
    sl_buf_init(&ln->values, opts->batch_bytes);
    /* escaping can double a value, and each row adds its seq and separators */
    sl_buf_init(&ln->copy, 2 * opts->batch_bytes + 64 * opts->batch_rows);
    /* the keys and the records' other non-string values, as long as the COPY text at most */
    sl_buf_init(&ln->text, 2 * opts->batch_bytes + 64 * opts->batch_rows);
    sl__pg_array_init(&ln->ids, SL__PG_OID_TEXT);
    sl__pg_array_init(&ln->times, SL__PG_OID_TEXT);
    sl_buf_init(&ln->ids_param, SL__PG_PARAM_MAX);
    sl_buf_init(&ln->times_param, SL__PG_PARAM_MAX);
    ln->backoff_ms = BACKOFF_MIN_MS;
    set_unready(ln, "not connected to postgresql yet");
    sl_err err = SL_OK;
    if (!ln->next || !ln->held_to || !ln->rewound || !ln->msgs || !ln->rows || !ln->dead ||
        !ln->id_slots || sl__pg_rollup_new(&ln->rollup)) {
        err = SL_ERR_NOMEM;
        goto out;
    }
    sl_log_consumer_options co = {
        .group = sink->group,
        .from_beginning = true, /* PostgreSQL holds the offsets (invariant 1) */
        .on_assign = on_assign,
        .opaque = ln,
        .share = index,
        .shares = sink->n_lanes,
    };
    err = sl_log_consumer_open(log, &co, &ln->c, errbuf, errlen);
out:
    if (err) {
        lane_free(ln);
        ln = NULL;
    }
    *out = ln;
    return err;
}

static void sink_free(sl_pg_sink_t *sink)
{
    for (unsigned i = 0; i < sink->n_lanes; i++)
        lane_free(sink->lanes[i]);
    free(sink->lanes);
    free(sink->conninfo);
    free(sink->group);
    free(sink);
}

/* Stops and joins the lanes that run, then frees the sink. */
static void sink_stop_all(sl_pg_sink_t *sink)
{
    atomic_store(&sink->stopping, true);
    for (unsigned i = 0; i < sink->n_lanes; i++) {
        if (sink->lanes[i] && sink->lanes[i]->started)
            pthread_join(sink->lanes[i]->thread, NULL);
    }
    sink_free(sink);
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
    if (opts->writers == 0 || opts->writers > SL_PG_WRITERS_MAX)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "pg writers out of range: %u (1 to %u)",
                             opts->writers, SL_PG_WRITERS_MAX);
    sl_pg_sink_t *sink = calloc(1, sizeof *sink);
    if (!sink)
        return SL_ERR_NOMEM;
    sink->opts = *opts;
    sink->conninfo = strdup(opts->conninfo);
    sink->group = strdup(opts->group ? opts->group : "sluice-pg");
    sink->log_id = sl_log_identity(log);
    /* A lane owns at least one partition. */
    unsigned parts = sl_log_partition_count(log);
    sink->n_lanes = opts->writers < parts ? opts->writers : parts;
    sink->lanes = calloc(sink->n_lanes, sizeof *sink->lanes);
    if (!sink->conninfo || !sink->group || !sink->lanes) {
        sink->n_lanes = 0;
        sink_free(sink);
        return SL_ERR_NOMEM;
    }
    sl_err err = SL_OK;
    for (unsigned i = 0; i < sink->n_lanes && !err; i++)
        err = lane_new(sink, log, i, &sink->lanes[i], errbuf, errlen);
    for (unsigned i = 0; i < sink->n_lanes && !err; i++) {
        lane *ln = sink->lanes[i];
        if (pthread_create(&ln->thread, NULL, lane_main, ln))
            err =
                sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL, "could not start a pg sink thread");
        else
            ln->started = true;
    }
    if (err) {
        sink_stop_all(sink);
        return err;
    }
    *out = sink;
    return SL_OK;
}

void sl_pg_sink_stop(sl_pg_sink_t *sink)
{
    if (sink)
        sink_stop_all(sink);
}
