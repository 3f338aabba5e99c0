/* The data lake: the event table's schema in Parquet and Delta terms, the mapping from a
 * normalized event (the log record, src/event/normalize.c) to a Parquet row, the
 * `lake-sink` role that appends the log to a Delta table exactly once, and the history
 * `sluice lake history` prints.
 *
 * Pointers passed in are borrowed for the call unless a comment says otherwise. */
#ifndef SL_LAKE_LAKE_H
#define SL_LAKE_LAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/component.h"
#include "core/err.h"
#include "delta/delta.h"
#include "log/log.h"
#include "parquet/parquet.h"
#include "storage/storage.h"

/* ---- the event table ---- */

/* Columns of the data files, in file order: the 18 fields of the normalized event. The
 * table adds the partition column event_date (a Delta `date`, not stored in the files). */
#define SL_LAKE_N_COLUMNS 18
extern const sl_pq_column sl_lake_columns[SL_LAKE_N_COLUMNS];
/* The Delta table definition: the columns above plus event_date, partitioned by it. */
extern const sl_delta_table_def sl_lake_table_def;

/* One event as a row. values[] point into the event JSON and into the row itself, so
 * they are valid until the next sl_lake_row_parse on the row or its cleanup. */
typedef struct sl_lake_row {
    sl_pq_value values[SL_LAKE_N_COLUMNS];
    int32_t event_date; /* days since 1970-01-01 of the event timestamp, in UTC */
    void *doc;          /* private: the parsed event */
    char *scratch;      /* private: metadata re-serialized when it cannot be sliced */
} sl_lake_row;

void sl_lake_row_init(sl_lake_row *row);
void sl_lake_row_cleanup(sl_lake_row *row);

/* Maps a normalized event (JSON text, not NUL-terminated) to a row: strings as they are,
 * timestamps to microseconds UTC, interaction_value to a double, metadata to its compact
 * JSON text, exactly as the log holds it. SL_ERR_INVALID naming the field when the record
 * is not a normalized event (a missing required field, a wrong type, a bad time). */
SL_MUST_CHECK sl_err sl_lake_row_parse(sl_lake_row *row, const char *json, size_t len, char *errbuf,
                                       size_t errlen);

/* "YYYY-MM-DD" of a day number, into out (11 bytes with the NUL). */
void sl_lake_format_date(int32_t days, char out[11]);

/* Opens the store of a table URI, "file://DIR" (created when missing) or
 * "s3://BUCKET/PREFIX" (so may be NULL: defaults, credentials from the environment);
 * SL_ERR_CONFIG for any other URI or a bad option. Close it with sl_storage_close. */
SL_MUST_CHECK sl_err sl_lake_store_open(const char *uri, const sl_storage_options *so,
                                        sl_storage_t **st, char *errbuf, size_t errlen);

/* ---- the lake sink role ---- */

typedef struct sl_lake_sink_t sl_lake_sink_t;

typedef struct sl_lake_sink_options {
    const char *table_uri;             /* file://DIR or s3://BUCKET/PREFIX */
    const sl_storage_options *storage; /* s3:// endpoint, region...; NULL: defaults */
    const char *group;                 /* consumer group; default "sluice-lake" */
    sl_pq_codec codec;                 /* default SL_PQ_SNAPPY */
    int zstd_level;                    /* default 3 */
    uint64_t batch_rows;  /* commit when a batch holds this many events; default 100000 */
    uint64_t batch_bytes; /* ... or this many bytes of event JSON; default 64 MiB */
    int64_t batch_ms;     /* ... or its oldest event waited this long; default 5000 */
    /* Compaction between batches (sl_lake_optimize): every auto_optimize_files commits,
     * the partitions with that many files under target_file_bytes are compacted; 0 =
     * never. Defaults 64 and 128 MiB. */
    size_t auto_optimize_files;
    uint64_t target_file_bytes;
    /* Delta checkpoints (issue 6): after every checkpoint_interval-th version (0: never) a
     * checkpoint is written, then log entries before it older than the table's
     * delta.logRetentionDuration (else log_retention_ms) are deleted. Defaults 10, 30 d. */
    int64_t checkpoint_interval;
    int64_t log_retention_ms;
} sl_lake_sink_options;

void sl_lake_sink_options_default(sl_lake_sink_options *opts);

/* Opens (or creates) the table, joins the consumer group, seeks each log partition to
 * the version its txn action holds plus one, and starts the sink's thread. The table and
 * the log (borrowed, must outlive the sink) are checked before this returns: a table
 * sluice cannot append to, or a group that already has a consumer, is an error here. */
SL_MUST_CHECK sl_err sl_lake_sink_start(const sl_lake_sink_options *opts, sl_log_t *log,
                                        sl_lake_sink_t **out, char *errbuf, size_t errlen);
/* Commits what the sink holds, stops its thread and frees it. NULL is a no-op. */
void sl_lake_sink_stop(sl_lake_sink_t *sink);
/* /ready and /metrics for the HTTP server; valid until sl_lake_sink_stop. */
void sl_lake_sink_component(sl_lake_sink_t *sink, sl_component *out);

/* ---- sluice lake history ---- */

/* Prints a header and one line per version, oldest first: version, time (RFC 3339), files
 * added and removed, rows added, the files and rows the table holds at that version, and
 * the operation (last, as it may hold spaces). Rows are "-" where an add has no stats. */
SL_MUST_CHECK sl_err sl_lake_history_print(const char *table_uri, const sl_storage_options *so,
                                           FILE *out, char *errbuf, size_t errlen);

/* ---- compaction: sluice lake optimize ---- */

typedef struct sl_lake_optimize_options {
    /* Files under this size are rewritten, several into one of up to this size; default
     * 128 MiB. It also caps the memory of a run (one source file is held whole). */
    uint64_t target_file_bytes;
    size_t min_files;      /* a partition is compacted once it has this many small files
                              (at least 2); default 2 */
    const char *partition; /* only this date partition (YYYY-MM-DD); NULL or "": all */
    sl_pq_codec codec;     /* of the new files; default SL_PQ_SNAPPY */
    int zstd_level;        /* default 3 */
    FILE *progress;        /* a terminal to show progress on, or NULL */
} sl_lake_optimize_options;

void sl_lake_optimize_options_default(sl_lake_optimize_options *opts);

typedef struct sl_lake_optimize_result {
    int64_t version; /* the version committed; -1 when no partition needed compaction */
    size_t partitions;
    uint64_t files_removed, files_added, bytes_removed, bytes_added, rows;
} sl_lake_optimize_result;

/* Compacts the table in st from snap (its latest state; it moves to the new version):
 * each qualifying partition's small files are rewritten into larger ones, and one commit
 * (operation OPTIMIZE) removes them and adds the new files, with dataChange=false, so
 * every version holds every row once. Blind appends by other writers meanwhile are fine;
 * if another writer removed one of the files first, nothing is committed (SL_ERR_EXISTS).
 * Files sluice did not write (other columns or types) are refused (SL_ERR_UNSUPPORTED),
 * a file whose rows disagree with its stats is SL_ERR_CORRUPT; the store's errors
 * otherwise. After an error snap may be behind or unusable: load it again. */
SL_MUST_CHECK sl_err sl_lake_optimize(sl_storage_t *st, sl_delta_snapshot_t *snap,
                                      const sl_lake_optimize_options *opts,
                                      sl_lake_optimize_result *res, char *errbuf, size_t errlen);
/* ---- sluice lake vacuum ---- */

/* Retention below this needs force: a writer's upload and a reader's version both take
 * time. */
#define SL_LAKE_VACUUM_MIN_RETAIN_HOURS 1

typedef struct sl_lake_vacuum_options {
    int64_t retain_hours; /* keep what versions of the last retain_hours reference */
    bool dry_run;         /* print what would be deleted, delete nothing */
    bool force;           /* allow retain_hours under the minimum */
    int64_t now_ms;       /* 0: the clock */
} sl_lake_vacuum_options;

/* Deletes the files of the table at table_uri that no version committed in the last
 * retain_hours (nor the version current when that window opened, nor the latest)
 * references and that are older than the window, and the store's temporary files older
 * than it; prints one line per file ("deleted KEY" or "would delete KEY") and a summary.
 * SL_ERR_CONFIG for a retention under the minimum without force; SL_ERR_UNSUPPORTED for
 * a table that references files outside itself; the log's and the store's errors. */
SL_MUST_CHECK sl_err sl_lake_vacuum(const char *table_uri, const sl_storage_options *so,
                                    const sl_lake_vacuum_options *vo, FILE *out, char *errbuf,
                                    size_t errlen);

#endif
