/* Internals shared inside src/pg/: turning log records into COPY rows (row.c), the schema
 * and its partitions (schema.c), and small libpq helpers. Not for use outside src/pg/. */
#ifndef SL_PG_PG_INT_H
#define SL_PG_PG_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "log/log.h"
#include "pg/pg.h"

/* Days since 1970-01-01 of no day (a timestamp the sink could not read). */
#define SL__PG_NO_DAY INT32_MIN

/* A column's text as PostgreSQL reads it (COPY escapes undone), at off in a side buffer;
 * len is SL__PG_NULL for NULL. */
#define SL__PG_NULL SIZE_MAX
typedef struct sl__pg_text {
    size_t off, len;
} sl__pg_text;

/* The columns of a row that the dedup ids and the rollups need. */
typedef struct sl__pg_keys {
    sl__pg_text event_id, timestamp, channel, platform, event_type, event_category, resource_id,
        session_id, user_id, interaction_value;
} sl__pg_keys;

/* Appends to out one line of COPY text for analytics_events (sl__pg_copy_columns), the
 * event's fields read from the record's JSON, and to text the columns keys locates. A
 * missing event_id becomes "sluice:<partition>:<offset>" (stable across replays); a
 * missing timestamp becomes received_at, else the record's append time. *day is the UTC
 * day of the timestamp or SL__PG_NO_DAY. SL_ERR_INVALID (detail in errbuf, out and text
 * unchanged) when the record is not a JSON object; values PostgreSQL may refuse are left
 * for it to judge. */
SL_MUST_CHECK sl_err sl__pg_row_append(sl_buf *out, sl_buf *text, const sl_log_message *m,
                                       sl__pg_keys *keys, int32_t *day, char *errbuf,
                                       size_t errlen);

/* Columns of analytics_events that the COPY rows fill, in order. */
extern const char sl__pg_copy_columns[];

/* PostgreSQL takes no value over 1 GB: the cap of a parameter and of what builds one. */
#define SL__PG_PARAM_MAX ((size_t)1 << 30)

/* A one-dimensional array parameter in PostgreSQL's binary format, built element by
 * element (rollup.c). Element type oids from PostgreSQL's pg_type.h: */
#define SL__PG_OID_INT8        20
#define SL__PG_OID_INT4        23
#define SL__PG_OID_TEXT        25
#define SL__PG_OID_TIMESTAMPTZ 1184 /* binary: int8 microseconds since SL__PG_EPOCH_US */

/* Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 (UTC). */
#define SL__PG_EPOCH_US INT64_C(946684800000000)
typedef struct sl__pg_array {
    sl_buf body; /* the elements so far */
    size_t n;
    bool nulls;
    uint32_t oid;
} sl__pg_array;

/* One value framed as PostgreSQL's binary format frames an array element and a binary
 * COPY field alike: its length (-1: null, s NULL), then its bytes; an 8-byte integer (int8,
 * or timestamptz as microseconds since SL__PG_EPOCH_US). */
SL_MUST_CHECK sl_err sl__pg_binary_text(sl_buf *b, const char *s, size_t len);
SL_MUST_CHECK sl_err sl__pg_binary_int8(sl_buf *b, int64_t v);

void sl__pg_array_init(sl__pg_array *a, uint32_t oid);
void sl__pg_array_cleanup(sl__pg_array *a);
void sl__pg_array_reset(sl__pg_array *a);
/* A text element; s NULL for a null one. */
SL_MUST_CHECK sl_err sl__pg_array_text(sl__pg_array *a, const char *s, size_t len);
/* An int4 or an 8-byte (int8, timestamptz) element, as the array's oid says. */
SL_MUST_CHECK sl_err sl__pg_array_int(sl__pg_array *a, int64_t v);
/* The whole parameter value into out (emptied first), to send with format 1. */
SL_MUST_CHECK sl_err sl__pg_array_finish(const sl__pg_array *a, sl_buf *out);

/* A batch's rollups (rollup.c): the rows PostgreSQL stored, grouped in C and upserted
 * in one statement per flush. */
typedef struct sl__pg_rollup sl__pg_rollup;

SL_MUST_CHECK sl_err sl__pg_rollup_new(sl__pg_rollup **out);
void sl__pg_rollup_free(sl__pg_rollup *r);
/* Forgets what it holds (a transaction that will not commit). */
void sl__pg_rollup_reset(sl__pg_rollup *r);
/* Whether it must be flushed before the next add (its groups are bounded). */
bool sl__pg_rollup_full(const sl__pg_rollup *r);
/* Counts one stored row; keys locate its columns in text. */
SL_MUST_CHECK sl_err sl__pg_rollup_add(sl__pg_rollup *r, const char *text, const sl__pg_keys *k);
/* Upserts what it holds into the three rollup tables in the open transaction and
 * empties it. SL_ERR_IO with PostgreSQL's message when that fails. */
SL_MUST_CHECK sl_err sl__pg_rollup_flush(sl__pg_rollup *r, PGconn *conn, char *errbuf,
                                         size_t errlen);
/* Whether PostgreSQL reads the timestamptz text s to the same instant as C does, and that
 * instant in microseconds since 1970 (rollup.c): RFC 3339 with at most six fraction
 * digits (PostgreSQL rounds more, sl_time truncates) and no leap second. Anything else is
 * left for PostgreSQL to read. */
bool sl__pg_time_exact(const char *s, size_t len, int64_t *us);
/* PostgreSQL's hashtextextended(text, 0) of a deterministic collation, for the sketches. */
uint64_t sl__pg_hash_text(const char *s, size_t len);

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
