/* The Delta Lake transaction log on object storage (src/storage: a local directory or an
 * S3 bucket): writing commits (the table's creation with protocol + metaData, appends with
 * add/txn/commitInfo) as create-if-absent objects _delta_log/NNNNNNNNNNNNNNNNNNNN.json,
 * and reading a table's JSON history back into a snapshot (active files, txn versions) or
 * a per-version history. Tables this reader cannot read correctly are refused with an
 * error naming the feature. A table is the whole store: keys are relative to its root.
 *
 * Pointers passed in are borrowed for the call unless a comment says otherwise. */
#ifndef SL_DELTA_DELTA_H
#define SL_DELTA_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "storage/storage.h"

/* Protocol sluice writes: no table features, so every Delta reader can read it. */
#define SL_DELTA_MIN_READER 1
#define SL_DELTA_MIN_WRITER 2

/* One column of the table schema; type is a Delta primitive type name ("string", "long",
 * "double", "timestamp", "date", ...). */
typedef struct sl_delta_field {
    const char *name;
    const char *type;
    bool nullable;
} sl_delta_field;

typedef struct sl_delta_table_def {
    const sl_delta_field *fields; /* every column, partition columns included */
    size_t n_fields;
    const char *const *partition_columns; /* names among fields */
    size_t n_partition_columns;
    const char *name; /* metaData.name; NULL writes null */
} sl_delta_table_def;

/* A key and a value; value NULL is JSON null (a null partition value). */
typedef struct sl_delta_kv {
    const char *key;
    const char *value;
} sl_delta_kv;

typedef struct sl_delta_add {
    const char *path; /* relative to the table root, unencoded; the log holds it %-encoded */
    const sl_delta_kv *partition_values;
    size_t n_partition_values;
    uint64_t size; /* bytes of the file */
    int64_t modification_time_ms;
    bool data_change;
    const char *stats; /* JSON text (see sl_delta_stats_*) or NULL */
} sl_delta_add;

/* A file a commit takes out of the table. Compaction writes data_change false: the rows
 * stay, in the files the same commit adds. */
typedef struct sl_delta_remove {
    const char *path; /* as in sl_delta_add */
    const sl_delta_kv *partition_values;
    size_t n_partition_values;
    uint64_t size;
    int64_t deletion_timestamp_ms;
    bool data_change;
} sl_delta_remove;

typedef struct sl_delta_txn {
    const char *app_id;
    int64_t version;
} sl_delta_txn;

typedef struct sl_delta_commit {
    const sl_delta_table_def *create; /* non-NULL: write protocol + metaData (version 0) */
    const sl_delta_remove *removes;   /* a commit with removes is not a blind append */
    size_t n_removes;
    const sl_delta_add *adds;
    size_t n_adds;
    const sl_delta_txn *txns;
    size_t n_txns;
    const char *operation; /* commitInfo.operation, e.g. "WRITE" or "CREATE TABLE" */
    const sl_delta_kv *operation_parameters; /* string values, as Spark writes them */
    size_t n_operation_parameters;
    int64_t timestamp_ms; /* commitInfo.timestamp; 0 = now */
    int64_t read_version; /* commitInfo.readVersion; -1 = omitted */
} sl_delta_commit;

/* Formats the commit's JSON lines (commitInfo, protocol, metaData, remove..., add...,
 * txn...) into
 * out (appended). SL_ERR_INVALID naming the field when the commit breaks a rule (no
 * operation, a path or key that is not UTF-8, a partition column missing from fields). */
SL_MUST_CHECK sl_err sl_delta_commit_format(const sl_delta_commit *c, sl_buf *out, char *errbuf,
                                            size_t errlen);

/* Stores data as version `version` of the table in st: sl_storage_put_if_absent of
 * _delta_log/NNNNNNNNNNNNNNNNNNNN.json, so the version appears whole or not at all.
 * SL_ERR_EXISTS when the version already exists (another writer committed it: re-read the
 * snapshot and retry at a later version); the store's errors otherwise (after an S3 error
 * the commit may still have landed: re-read the table before treating it as lost). */
SL_MUST_CHECK sl_err sl_delta_log_put(sl_storage_t *st, int64_t version, const void *data,
                                      size_t len, char *errbuf, size_t errlen);

/* sl_delta_commit_format then sl_delta_log_put. */
SL_MUST_CHECK sl_err sl_delta_commit_write(sl_storage_t *st, int64_t version,
                                           const sl_delta_commit *c, char *errbuf, size_t errlen);

/* The schemaString of a table definition (a Spark StructType as JSON), appended to out. */
SL_MUST_CHECK sl_err sl_delta_schema_string(const sl_delta_table_def *def, sl_buf *out);

/* ---- stats ---- */

typedef enum sl_delta_stat_kind {
    SL_DELTA_STAT_NONE,   /* no min/max (all null, or not collected) */
    SL_DELTA_STAT_STRING, /* UTF-8; long values are cut to a prefix (max only if exact) */
    SL_DELTA_STAT_LONG,
    SL_DELTA_STAT_DOUBLE,    /* finite values only; NaN/inf drop min/max */
    SL_DELTA_STAT_TIMESTAMP, /* microseconds since the epoch, UTC */
    SL_DELTA_STAT_DATE,      /* days since the epoch */
} sl_delta_stat_kind;
typedef struct sl_delta_stat_value {
    int64_t i;
    double d;
    const char *s;
    size_t len;
} sl_delta_stat_value;
typedef struct sl_delta_column_stats {
    const char *name;
    sl_delta_stat_kind kind;
    sl_delta_stat_value min, max;
    uint64_t null_count;
} sl_delta_column_stats;
/* Appends the `stats` JSON of one add: {"numRecords":N,"minValues":{...},"maxValues":
 * {...},"nullCount":{...}}; a column of kind NONE appears in nullCount only. */
SL_MUST_CHECK sl_err sl_delta_stats_format(sl_buf *out, uint64_t num_records,
                                           const sl_delta_column_stats *cols, size_t n);

/* ---- reading ---- */

typedef struct sl_delta_snapshot sl_delta_snapshot_t; /* variable name: snap */

/* One active data file of a snapshot. Strings are owned by the snapshot. */
typedef struct sl_delta_file {
    const char *path; /* %-decoded, "file:" dropped: relative to the table root or absolute */
    const sl_delta_kv *partition_values;
    size_t n_partition_values;
    uint64_t size;
    int64_t modification_time_ms;
    int64_t num_records; /* from stats; -1 when the add has none */
    const char *stats;   /* the add's stats JSON text, as the log holds it; NULL: none */
    int64_t version;     /* the commit that added it (read from a checkpoint: its version) */
} sl_delta_file;

/* The table in st as of `version` (-1: the latest): the checkpoint _last_checkpoint names
 * (or the newest one the listing finds, when the JSON history does not start at 0), then
 * the JSON commits after it, one GET each (see "Checkpoints" below). SL_ERR_NOT_FOUND: no table
 * there (no commit) or no such version;
 * SL_ERR_UNSUPPORTED: the table needs something this reader does not do (a reader
 *   feature, column mapping, deletion vectors, a history that starts at a multi-part or
 *   v2 checkpoint),
 *   named in errbuf; SL_ERR_CORRUPT: a commit that breaks the protocol (gaps in versions,
 *   malformed lines, no protocol or metaData), with the version and line. */
SL_MUST_CHECK sl_err sl_delta_snapshot_load(sl_storage_t *st, int64_t version,
                                            sl_delta_snapshot_t **snap, char *errbuf,
                                            size_t errlen);
void sl_delta_snapshot_free(sl_delta_snapshot_t *snap);
int64_t sl_delta_snapshot_version(const sl_delta_snapshot_t *snap);
void sl_delta_snapshot_protocol(const sl_delta_snapshot_t *snap, int *min_reader, int *min_writer);
const char *sl_delta_snapshot_table_id(const sl_delta_snapshot_t *snap);
const char *sl_delta_snapshot_schema_string(const sl_delta_snapshot_t *snap);
size_t sl_delta_snapshot_partition_count(const sl_delta_snapshot_t *snap);
const char *sl_delta_snapshot_partition_column(const sl_delta_snapshot_t *snap, size_t i);
/* Active files, in no particular order; valid until the snapshot is freed. */
size_t sl_delta_snapshot_file_count(const sl_delta_snapshot_t *snap);
const sl_delta_file *sl_delta_snapshot_file(const sl_delta_snapshot_t *snap, size_t i);
/* Whether path (as sl_delta_file.path gives it) is an active file of snap. */
bool sl_delta_snapshot_has_file(const sl_delta_snapshot_t *snap, const char *path);
/* The version of the last txn action for app_id; SL_ERR_NOT_FOUND if there is none. */
SL_MUST_CHECK sl_err sl_delta_snapshot_txn(const sl_delta_snapshot_t *snap, const char *app_id,
                                           int64_t *version);

/* One version of the table, as `sluice lake history` shows it. */
typedef struct sl_delta_version_info {
    int64_t version;
    int64_t timestamp_ms;  /* commitInfo.timestamp; -1 without commitInfo */
    const char *operation; /* commitInfo.operation; "" without commitInfo */
    uint64_t files_added, files_removed;
    int64_t rows_added;   /* sum of numRecords of the adds; -1 if one lacks stats */
    uint64_t files_total; /* active files at this version */
    int64_t rows_total;   /* rows in them; -1 if one lacks stats */
} sl_delta_version_info;

/* Called once per version, oldest first; an error stops the replay and is returned. */
typedef sl_err (*sl_delta_history_cb)(void *opaque, const sl_delta_version_info *vi);

/* Replays the whole history, calling cb after each version. Errors as snapshot_load. */
SL_MUST_CHECK sl_err sl_delta_history(sl_storage_t *st, sl_delta_history_cb cb, void *opaque,
                                      char *errbuf, size_t errlen);

/* ---- keeping up with other writers ---- */

/* Brings snap to the table's latest version by applying only the commits after its own:
 * one listing that starts after its version, one GET per new commit; cb (may be NULL) is
 * called after each, as for sl_delta_history. Errors as snapshot_load; after one, snap is
 * unusable: free it and load it again. */
SL_MUST_CHECK sl_err sl_delta_snapshot_update(sl_storage_t *st, sl_delta_snapshot_t *snap,
                                              sl_delta_history_cb cb, void *opaque, char *errbuf,
                                              size_t errlen);

/* Decides, after other writers took the version an append wanted, whether the append may
 * go on at the next version. snap is up to date (their commits applied). SL_OK: retry;
 * anything else stops sl_delta_commit_append, which returns that code and message. */
typedef sl_err (*sl_delta_conflict_cb)(void *opaque, const sl_delta_snapshot_t *snap, char *errbuf,
                                       size_t errlen);

/* Appends c (no create) as the version after snap's, the Delta way for blind appends:
 * c->read_version is set to snap's version and the commit put if absent; when another
 * writer took that version, snap is brought up to date (sl_delta_snapshot_update) and
 * the append retries at the next version, unless (a) one of the new commits changed the
 * table's protocol or metaData, (b) `check` (may be NULL) refuses, or (c) max_attempts
 * puts were taken: SL_ERR_EXISTS (or check's code) naming why. A taken version that does
 * not read back as a commit is SL_ERR_CORRUPT. On SL_OK snap is at the new version with c
 * applied. After any other error snap may be behind or unusable: free it and load it
 * again (a store error may also hide a commit that landed). */
SL_MUST_CHECK sl_err sl_delta_commit_append(sl_storage_t *st, sl_delta_snapshot_t *snap,
                                            sl_delta_commit *c, unsigned max_attempts,
                                            sl_delta_conflict_cb check, void *opaque, char *errbuf,
                                            size_t errlen);

/* ---- checkpoints and log expiry (checkpoint.c) ----
 * A checkpoint of version V is _delta_log/V.checkpoint.parquet (the protocol's classic
 * single-part checkpoint: one action per row in nested columns) plus _delta_log/
 * _last_checkpoint naming it; sl_delta_snapshot_load starts from it when it can. */

/* Writes the checkpoint of `version` (read through the newest checkpoint before it), then
 * deletes the log entries (JSON commits, checkpoints) of versions before it last modified
 * more than the table's delta.logRetentionDuration before now_ms (without that property:
 * default_retention_ms; negative: keep everything). *expired counts what went. A failure
 * leaves the table readable: a checkpoint is never needed to read it. */
SL_MUST_CHECK sl_err sl_delta_checkpoint(sl_storage_t *store, int64_t version,
                                         int64_t default_retention_ms, int64_t now_ms,
                                         size_t *expired, char *errbuf, size_t errlen);

#endif
