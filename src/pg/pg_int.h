/* Internals shared inside src/pg/: turning log records into COPY rows (row.c), the schema
 * and its partitions (schema.c), and small libpq helpers. Not for use outside src/pg/. */
#ifndef SL_PG_PG_INT_H
#define SL_PG_PG_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "log/log.h"
#include "pg/pg.h"

/* Days since 1970-01-01 of no day (a timestamp the sink could not read). */
#define SL__PG_NO_DAY INT32_MIN

/* Appends to out one line of COPY text for the staging table (sl__pg_stage_columns): seq,
 * then the event's fields read from the record's JSON. A missing event_id becomes
 * "sluice:<partition>:<offset>" (stable across replays); a missing timestamp becomes
 * received_at, else the record's append time. *day is the UTC day of the timestamp or
 * SL__PG_NO_DAY. SL_ERR_INVALID (detail in errbuf, out unchanged) when the record is not
 * a JSON object; values PostgreSQL may refuse are left for it to judge. */
SL_MUST_CHECK sl_err sl__pg_row_append(sl_buf *out, uint32_t seq, const sl_log_message *m,
                                       int32_t *day, char *errbuf, size_t errlen);

/* Columns of the staging table, in COPY order. */
extern const char sl__pg_stage_columns[];

/* "YYYYMMDD" of a day since the epoch, into out[9]. */
void sl__pg_day_format(int32_t day, char out[9]);
/* The UTC day of a time in microseconds since the epoch. */
int32_t sl__pg_day_of_us(int64_t us);

/* Folds libpq's multi-line messages into one line in place (newlines and tabs become
 * single spaces, the end is trimmed), for diagnostics and /ready. */
void sl__pg_one_line(char *msg);

/* Runs sql (one or more statements, no parameters); SL_ERR_IO with PostgreSQL's message
 * on failure. */
SL_MUST_CHECK sl_err sl__pg_exec(PGconn *conn, const char *sql, char *errbuf, size_t errlen);

/* Applies the migrations conn's database lacks, each version once, in one transaction
 * under an advisory lock. */
SL_MUST_CHECK sl_err sl__pg_migrate_conn(PGconn *conn, char *errbuf, size_t errlen);

/* Creates the partitions of days today .. today+ahead and drops those wholly before
 * today-retention (with the rollup and dedup rows of those days). On a TimescaleDB
 * hypertable, drops chunks instead. *dropped counts dropped partitions (may be NULL). */
SL_MUST_CHECK sl_err sl__pg_partitions_maintain(PGconn *conn, const sl_pg_schema_options *opts,
                                                int32_t today, unsigned *dropped, char *errbuf,
                                                size_t errlen);

/* Creates the partition of one day if it is missing (no-op on a hypertable). */
SL_MUST_CHECK sl_err sl__pg_partition_ensure(PGconn *conn, int32_t day, char *errbuf,
                                             size_t errlen);

#endif
