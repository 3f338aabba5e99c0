/* The hot store's schema: versioned migrations recorded in sluice_migrations (applied in
 * one transaction under an advisory lock, so concurrent starts are safe), and the daily
 * partitions of analytics_events, created ahead of time and dropped past retention.
 * Where the TimescaleDB extension is installed in the database, analytics_events is a
 * hypertable with daily chunks instead, and retention drops chunks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_int.h"

/* The reference stack's columns (same names, types and limits), plus event_id and
 * received_at; page_url and button_id are the names the reference's first dashboard
 * still uses for resource_id and interaction_target, kept as generated columns so its
 * "Recent Events" panel runs unchanged. No primary key: a unique constraint on a
 * partitioned table must include the partition key, so event_id is kept unique by
 * sluice_event_ids instead (docs/internals/pg.md). */
#define EVENT_COLUMNS                                                                              \
    "id bigserial NOT NULL,"                                                                       \
    "\"timestamp\" timestamptz NOT NULL DEFAULT now(),"                                            \
    "channel varchar(50) NOT NULL,"                                                                \
    "platform varchar(100),"                                                                       \
    "event_type varchar(100) NOT NULL,"                                                            \
    "event_category varchar(100),"                                                                 \
    "resource_id varchar(500),"                                                                    \
    "resource_title varchar(200),"                                                                 \
    "interaction_target varchar(200),"                                                             \
    "session_id varchar(100) NOT NULL,"                                                            \
    "user_id varchar(100),"                                                                        \
    "device_id varchar(100),"                                                                      \
    "user_agent text,"                                                                             \
    "client_version varchar(50),"                                                                  \
    "interaction_value numeric,"                                                                   \
    "interaction_text text,"                                                                       \
    "metadata jsonb,"                                                                              \
    "created_at timestamptz NOT NULL DEFAULT now(),"                                               \
    "event_id text NOT NULL,"                                                                      \
    "received_at timestamptz NOT NULL,"                                                            \
    "page_url varchar(500) GENERATED ALWAYS AS (resource_id) STORED,"                              \
    "button_id varchar(200) GENERATED ALWAYS AS (interaction_target) STORED"

/* Everything but analytics_events itself, whose shape depends on TimescaleDB. */
static const char schema_v1[] =
    "CREATE TABLE sluice_offsets ("
    " consumer_group text NOT NULL, log_partition integer NOT NULL,"
    " next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (consumer_group, log_partition));"
    /* The dashboards filter on the last hour and list the latest events: one b-tree on
     * the time serves both (bench/pg_indexes.sh measures it and the reference's others). */
    "CREATE INDEX analytics_events_timestamp_idx ON analytics_events (\"timestamp\");"
    /* "C" collation: ids are compared for equality only, byte-wise is enough and the
     * b-tree avoids the locale's slower comparisons. */
    "CREATE TABLE sluice_event_ids ("
    " event_id text COLLATE \"C\" PRIMARY KEY, \"timestamp\" timestamptz NOT NULL);"
    /* Rollups per minute, kept narrow so a batch touches few rows: counts by channel,
     * platform, event type and category; counts by channel and resource apart (pages are
     * many; crossing them with the other dimensions made about one rollup row per event). */
    "CREATE TABLE sluice_rollup_minute ("
    " bucket timestamptz NOT NULL, channel text NOT NULL, platform text, event_type text"
    " NOT NULL, event_category text, events bigint NOT NULL, value_sum numeric,"
    " value_count bigint NOT NULL);"
    "CREATE UNIQUE INDEX sluice_rollup_minute_key ON sluice_rollup_minute"
    " (bucket, channel, platform, event_type, event_category) NULLS NOT DISTINCT;"
    "CREATE TABLE sluice_rollup_resources ("
    " bucket timestamptz NOT NULL, channel text NOT NULL, resource_id text,"
    " events bigint NOT NULL);"
    "CREATE UNIQUE INDEX sluice_rollup_resources_key ON sluice_rollup_resources"
    " (bucket, channel, resource_id) NULLS NOT DISTINCT;"
    /* Distinct sessions and users per minute and channel as HyperLogLog sketches: 1024
     * registers (standard error about 3%) of a 64-bit hash; low 10 bits pick the
     * register, the rank of the first set bit of the other 54 is its value. Sketches of
     * several minutes or channels merge exactly (register-wise maximum), so "active
     * sessions in the last hour" is sluice_hll_count(sluice_hll_merge(regs)) over 60
     * rows per channel, whatever the traffic. Exact per-minute sets cost more than the
     * rows themselves (docs/internals/pg.md). */
    "CREATE TABLE sluice_rollup_distinct (bucket timestamptz NOT NULL, channel text NOT NULL,"
    " what text NOT NULL, regs smallint[] NOT NULL, PRIMARY KEY (bucket, channel, what));"
    "CREATE FUNCTION sluice_hll_rank(h bigint) RETURNS smallint LANGUAGE sql IMMUTABLE"
    " PARALLEL SAFE AS $$ SELECT (55 - length(ltrim(((h >> 10) & 18014398509481983)"
    "::bit(54)::text, '0')))::smallint $$;"
    /* The same rank, computed in a loop (about two steps on average), folded into regs. */
    "CREATE FUNCTION sluice_hll_fold(regs smallint[], hashes bigint[]) RETURNS smallint[]"
    " LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$ DECLARE h bigint; w bigint;"
    " r smallint; i int; BEGIN"
    " IF regs IS NULL THEN regs := array_fill(0::smallint, ARRAY[1024]); END IF;"
    " FOREACH h IN ARRAY hashes LOOP"
    "  i := (h & 1023) + 1; w := (h >> 10) & 18014398509481983; r := 1;"
    "  WHILE r <= 54 AND w & (1::bigint << (54 - r)) = 0 LOOP r := r + 1; END LOOP;"
    "  IF r > regs[i] THEN regs[i] := r; END IF;"
    " END LOOP; RETURN regs; END $$;"
    "CREATE FUNCTION sluice_hll_union(a smallint[], b smallint[]) RETURNS smallint[]"
    " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN a IS NULL THEN b"
    " WHEN b IS NULL THEN a ELSE ARRAY(SELECT greatest(x, y) FROM unnest(a, b)"
    " WITH ORDINALITY AS t(x, y, i) ORDER BY i) END $$;"
    "CREATE AGGREGATE sluice_hll_merge(smallint[]) (sfunc = sluice_hll_union,"
    " stype = smallint[]);"
    "CREATE FUNCTION sluice_hll_count(regs smallint[]) RETURNS bigint LANGUAGE sql"
    " IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN e <= 2560 AND zeros > 0"
    " THEN round(1024 * ln(1024.0 / zeros)) ELSE round(e) END::bigint"
    " FROM (SELECT 0.7213 / (1 + 1.079 / 1024) * 1048576 / sum(power(2.0, -r)) AS e,"
    " count(*) FILTER (WHERE r = 0) AS zeros FROM unnest(coalesce(regs,"
    " array_fill(0::smallint, ARRAY[1024]))) r) s $$;"
    "CREATE TABLE sluice_dead_letters ("
    " id bigserial PRIMARY KEY, failed_at timestamptz NOT NULL DEFAULT now(),"
    " consumer_group text NOT NULL, log_partition integer NOT NULL, log_offset bigint NOT NULL,"
    " error text NOT NULL, payload bytea NOT NULL);"
    /* The reference's materialized view, by name and its columns but resource_id and the
     * distinct counts (which are kept per channel and minute only), read from the rollup:
     * never refreshed, never stale. */
    "CREATE VIEW analytics_summary AS"
    " SELECT bucket AS time_bucket, channel, event_type, event_category,"
    " sum(events)::bigint AS event_count,"
    " sum(value_sum) / nullif(sum(value_count), 0) AS avg_interaction_value"
    " FROM sluice_rollup_minute GROUP BY bucket, channel, event_type, event_category;";

/* Rollup rows are updated by every batch that counts events of their minute. With half of
 * each page left free, PostgreSQL updates a row on its own page without a new index entry
 * (a HOT update): in a probe (docs/internals/pg.md) 98.7 % of the updates were HOT against
 * under 0.1 % at the default fillfactor of 100, and upserting 6,500 existing resource rows
 * took 47-74 ms against 80-113 ms. Pages written before this migration keep their fill. */
static const char schema_v2[] = "ALTER TABLE sluice_rollup_minute SET (fillfactor = 50);"
                                "ALTER TABLE sluice_rollup_resources SET (fillfactor = 50);"
                                "ALTER TABLE sluice_rollup_distinct SET (fillfactor = 50);"
                                "INSERT INTO sluice_migrations (version) VALUES (2);";

/* The log each stored offset counts in (sink.c, invariant 1); NULL for rows stored before. */
static const char schema_v3[] = "ALTER TABLE sluice_offsets ADD COLUMN log_id text;"
                                "INSERT INTO sluice_migrations (version) VALUES (3);";

static const char events_native[] =
    "CREATE TABLE analytics_events (" EVENT_COLUMNS ") PARTITION BY RANGE (\"timestamp\");";
static const char events_timescale[] = "CREATE TABLE analytics_events (" EVENT_COLUMNS ");"
                                       "SELECT create_hypertable('analytics_events', 'timestamp',"
                                       " chunk_time_interval => interval '1 day');";

/* Any numbers: the keys of the advisory locks that serialize migrations and partition
 * changes. */
#define MIGRATION_LOCK 0x736c7569636531
#define PARTITION_LOCK 0x736c7569636532

void sl__pg_one_line(char *msg)
{
    char *w = msg;
    for (const char *r = msg; *r; r++) {
        bool space = *r == '\n' || *r == '\t' || *r == '\r' || *r == ' ';
        if (space && (w == msg || w[-1] == ' '))
            continue;
        *w++ = space ? ' ' : *r;
    }
    while (w > msg && w[-1] == ' ')
        w--;
    *w = '\0';
}

sl_err sl__pg_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    sl_err err = SL_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        size_t n = strlen(msg);
        while (n > 0 && msg[n - 1] == '\n')
            n--;
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "postgresql: %.*s", (int)n, msg);
    }
    PQclear(res);
    return err;
}

/* One-row, one-column answer of sql as a long; SL_ERR_IO on failure. */
static sl_err query_long(PGconn *conn, const char *sql, long *out, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    sl_err err = SL_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "postgresql: %s", PQerrorMessage(conn));
    else
        *out = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return err;
}

sl_err sl__pg_migrate_conn(PGconn *conn, char *errbuf, size_t errlen)
{
    sl_err err;
    char sql[128];
    snprintf(sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
             (long long)MIGRATION_LOCK);
    if ((err = sl__pg_exec(conn, sql, errbuf, errlen)))
        return err;
    long version = 0, timescale = 0;
    if ((err = sl__pg_exec(conn,
                           "CREATE TABLE IF NOT EXISTS sluice_migrations (version integer PRIMARY "
                           "KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                           errbuf, errlen)) ||
        (err = query_long(conn, "SELECT coalesce(max(version), 0) FROM sluice_migrations", &version,
                          errbuf, errlen)) ||
        (err = query_long(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'",
                          &timescale, errbuf, errlen)))
        goto out;
    if (version < 1) {
        if ((err =
                 sl__pg_exec(conn, timescale ? events_timescale : events_native, errbuf, errlen)) ||
            (err = sl__pg_exec(conn, schema_v1, errbuf, errlen)) ||
            (err = sl__pg_exec(conn, "INSERT INTO sluice_migrations (version) VALUES (1)", errbuf,
                               errlen)))
            goto out;
    }
    if (version < 2 && (err = sl__pg_exec(conn, schema_v2, errbuf, errlen)))
        goto out;
    if (version < 3 && (err = sl__pg_exec(conn, schema_v3, errbuf, errlen)))
        goto out;
    err = sl__pg_exec(conn, "COMMIT", errbuf, errlen);
out:
    if (err)
        PQclear(PQexec(conn, "ROLLBACK"));
    return err;
}

static bool is_hypertable(PGconn *conn, bool *yes, char *errbuf, size_t errlen)
{
    long kind = 0;
    if (query_long(conn,
                   "SELECT count(*) FROM pg_class WHERE relname = 'analytics_events' AND "
                   "relkind = 'p' AND relnamespace = current_schema()::regnamespace",
                   &kind, errbuf, errlen))
        return false;
    *yes = kind == 0;
    return true;
}

/* Appends the statement that creates one day's partition if it is missing. */
static sl_err append_create_partition(sl_buf *sql, int32_t day)
{
    char from[9], to[9];
    sl__pg_day_format(day, from);
    sl__pg_day_format(day + 1, to);
    return sl_buf_appendf(sql,
                          "CREATE TABLE IF NOT EXISTS analytics_events_p%s PARTITION OF "
                          "analytics_events FOR VALUES FROM ('%s+00') TO ('%s+00');",
                          from, from, to);
}

/* Runs sql in a transaction that holds the partition lock first: CREATE TABLE IF NOT
 * EXISTS is not safe against a concurrent twin (two sinks, or a sink and a migrate). */
static sl_err exec_locked(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
    char lock[96];
    snprintf(lock, sizeof lock, "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
             (long long)PARTITION_LOCK);
    sl_err err = sl__pg_exec(conn, lock, errbuf, errlen);
    if (!err && !(err = sl__pg_exec(conn, sql, errbuf, errlen)))
        err = sl__pg_exec(conn, "COMMIT", errbuf, errlen);
    if (err)
        PQclear(PQexec(conn, "ROLLBACK"));
    return err;
}

sl_err sl__pg_partition_ensure(PGconn *conn, int32_t day, char *errbuf, size_t errlen)
{
    sl_buf sql;
    sl_buf_init(&sql, 4096);
    sl_err err = append_create_partition(&sql, day);
    if (!err)
        err = exec_locked(conn, sql.data, errbuf, errlen);
    sl_buf_cleanup(&sql);
    return err;
}

sl_err sl__pg_partitions_maintain(PGconn *conn, const sl_pg_schema_options *opts, int32_t today,
                                  unsigned *dropped, char *errbuf, size_t errlen)
{
    sl_err err = SL_OK;
    PGresult *res = NULL;
    bool hyper = false;
    sl_buf sql;
    sl_buf_init(&sql, 1u << 20);
    if (dropped)
        *dropped = 0;
    if (!is_hypertable(conn, &hyper, errbuf, errlen)) {
        err = SL_ERR_IO;
        goto out;
    }
    int32_t oldest = today - (int32_t)opts->retention_days;
    char cutoff[9];
    sl__pg_day_format(oldest, cutoff);
    if (hyper) {
        err = sl_buf_appendf(&sql,
                             "SELECT drop_chunks('analytics_events', older_than => "
                             "'%s+00'::timestamptz)",
                             cutoff);
        if (!err)
            err = sl__pg_exec(conn, sql.data, errbuf, errlen);
        goto out;
    }
    for (int32_t d = today; d <= today + (int32_t)opts->partitions_ahead && !err; d++)
        err = append_create_partition(&sql, d);
    if (err)
        goto out;
    /* Partitions are named analytics_events_pYYYYMMDD, so names compare as days. */
    res = PQexec(conn, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = "
                       "i.inhrelid WHERE i.inhparent = 'analytics_events'::regclass "
                       "ORDER BY 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "postgresql: %s", PQerrorMessage(conn));
        goto out;
    }
    unsigned n_dropped = 0;
    const char *prefix = "analytics_events_p";
    size_t plen = strlen(prefix);
    for (int i = 0; i < PQntuples(res) && !err; i++) {
        const char *name = PQgetvalue(res, i, 0);
        if (strncmp(name, prefix, plen) != 0 || strlen(name) != plen + 8 ||
            strspn(name + plen, "0123456789") != 8 || strcmp(name + plen, cutoff) >= 0)
            continue;
        err = sl_buf_appendf(&sql, "DROP TABLE IF EXISTS %s;", name);
        n_dropped++;
    }
    /* The rollups and dedup ids of dropped days go with them (one pass per drop:
     * sluice_event_ids has no time index, so this is its only scan). */
    if (!err && n_dropped)
        err = sl_buf_appendf(&sql,
                             "DELETE FROM sluice_rollup_minute WHERE bucket < '%s+00';"
                             "DELETE FROM sluice_rollup_resources WHERE bucket < '%s+00';"
                             "DELETE FROM sluice_rollup_distinct WHERE bucket < '%s+00';"
                             "DELETE FROM sluice_event_ids WHERE \"timestamp\" < '%s+00';",
                             cutoff, cutoff, cutoff, cutoff);
    if (err || (err = exec_locked(conn, sql.data, errbuf, errlen)))
        goto out;
    if (dropped)
        *dropped = n_dropped;
out:
    PQclear(res);
    sl_buf_cleanup(&sql);
    return err;
}

sl_err sl_pg_migrate(const char *conninfo, const sl_pg_schema_options *opts, char *errbuf,
                     size_t errlen)
{
    PGconn *conn = PQconnectdb(conninfo);
    sl_err err;
    if (PQstatus(conn) != CONNECTION_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not connect to postgresql: %s",
                            PQerrorMessage(conn));
        goto out;
    }
    if ((err = sl__pg_exec(conn, "SET client_min_messages = warning; SET timezone = 'UTC'", errbuf,
                           errlen)) ||
        (err = sl__pg_migrate_conn(conn, errbuf, errlen)))
        goto out;
    int64_t now_us = 0;
    {
        /* today by the server's clock, as the sink does */
        long epoch_day = 0;
        if ((err = query_long(conn, "SELECT (now()::date - date '1970-01-01')", &epoch_day, errbuf,
                              errlen)))
            goto out;
        now_us = (int64_t)epoch_day * INT64_C(86400000000);
    }
    err = sl__pg_partitions_maintain(conn, opts, sl__pg_day_of_us(now_us), NULL, errbuf, errlen);
out:
    if (err && errbuf && errlen)
        sl__pg_one_line(errbuf);
    PQfinish(conn);
    return err;
}

void sl_pg_describe(const char *conninfo, char *out, size_t outlen)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    const char *db = "?", *host = "localhost", *port = "5432";
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (!strcmp(o->keyword, "dbname"))
            db = o->val;
        else if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr"))
            host = o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
    }
    snprintf(out, outlen, "database \"%s\" on %s:%s", db, host, port);
    PQconninfoFree(opts);
}
