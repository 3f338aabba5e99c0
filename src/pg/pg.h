/* The PostgreSQL hot store: versioned schema migrations, daily partitions of
 * analytics_events (created ahead, dropped past retention), and the pg sink that copies
 * the log into PostgreSQL exactly once (rows, rollups and its offsets in one transaction).
 * docs/internals/pg.md explains the design and its measurements.
 *
 * Pointers passed in are borrowed for the call unless a comment says otherwise. */
#ifndef SL_PG_PG_H
#define SL_PG_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/component.h"
#include "core/err.h"
#include "log/log.h"

typedef struct sl_pg_schema_options {
    unsigned retention_days;   /* partitions wholly older than this many days are dropped */
    unsigned partitions_ahead; /* days of partitions kept ready after today */
} sl_pg_schema_options;

/* Connects to conninfo (a postgres:// URI or key=value string), applies the migrations
 * it lacks under an advisory lock, then creates and drops partitions. Safe to run again
 * and from several processes at once. */
SL_MUST_CHECK sl_err sl_pg_migrate(const char *conninfo, const sl_pg_schema_options *opts,
                                   char *errbuf, size_t errlen);

/* "DB on HOST:PORT" for a conninfo, without its user or password, for messages. */
void sl_pg_describe(const char *conninfo, char *out, size_t outlen);

typedef struct sl_pg_sink_options {
    const char *conninfo;     /* copied at start */
    const char *group;        /* consumer group; "sluice-pg" when NULL; copied */
    size_t batch_rows;        /* a batch is written when it holds this many events ... */
    size_t batch_bytes;       /* ... or this many bytes of event JSON ... */
    unsigned linger_ms;       /* ... or when its first event has waited this long */
    unsigned stop_timeout_ms; /* at stop, how long to keep retrying the last batch */
    unsigned writers;         /* connections writing at once, each for a share of the
                               * log's partitions (at most one per partition) */
    sl_pg_schema_options schema;
} sl_pg_sink_options;

#define SL_PG_WRITERS_MAX 64

void sl_pg_sink_options_default(sl_pg_sink_options *opts);

typedef struct sl_pg_sink sl_pg_sink_t;

/* Opens the sink's consumer group on log (SL_ERR_BUSY if another process holds it) and
 * starts its writers' threads; each connects (retrying with backoff while PostgreSQL is away),
 * migrates, seeks to the offsets stored in sluice_offsets and copies batches. log must
 * outlive the sink. */
SL_MUST_CHECK sl_err sl_pg_sink_start(const sl_pg_sink_options *opts, sl_log_t *log,
                                      sl_pg_sink_t **out, char *errbuf, size_t errlen);

/* Writes what the sink holds (retrying up to stop_timeout_ms), joins its threads, frees.
 * NULL is a no-op. */
void sl_pg_sink_stop(sl_pg_sink_t *sink);

/* Fills out with the sink's view for GET /ready (not ready while PostgreSQL cannot be
 * reached or written, with the reason) and GET /metrics (sluice_pg_...). out->opaque is
 * the sink: the component must not be used after sl_pg_sink_stop. */
void sl_pg_sink_component(sl_pg_sink_t *sink, sl_component *out);

#endif
