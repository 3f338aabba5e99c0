/* Internals shared inside the delta module only: the replay state that snapshots and the
 * history are built on, and the commit parser the fuzz target drives directly. */
#ifndef SL_DELTA_DELTA_INT_H
#define SL_DELTA_DELTA_INT_H

#include "delta/delta.h"

/* Bounds on what a table may make this reader hold (hostile logs get an error, not an
 * unbounded allocation). */
#define SL__DELTA_MAX_COMMIT_BYTES (64u << 20)
#define SL__DELTA_MAX_FILES        2000000u
#define SL__DELTA_MAX_TXNS         100000u
#define SL__DELTA_MAX_VERSIONS     10000000u
#define SL__DELTA_MAX_TOMBSTONES   2000000u

/* A file a remove took out of the table (a tombstone). Checkpoints carry the recent ones,
 * so another engine's VACUUM working from a checkpoint still sees what versions inside
 * its retention reference. */
typedef struct sl__delta_tombstone {
    char *path;          /* canonical, as an active file's */
    int64_t deletion_ms; /* deletionTimestamp; -1: the remove had none */
    int64_t size;        /* -1: the remove had none */
    bool data_change;
    sl_delta_kv *partition_values; /* NULL: the remove had none */
    size_t n_partition_values;
} sl__delta_tombstone;

typedef struct sl__delta_txn {
    char *app_id;
    int64_t version;
} sl__delta_txn;

/* The table as of `version`, built by applying commits in order. files[] is compact;
 * slots[] is an open-addressing index over it (linear probing, backward-shift delete)
 * keyed by the file's canonical path. */
typedef struct sl__delta_state {
    int64_t version; /* last applied commit; -1 before the first */
    bool has_protocol, has_metadata;
    int min_reader, min_writer;
    char *table_id;
    char *schema_string;
    char **partition_columns;
    size_t n_partition_columns;
    sl_delta_file *files;
    uint64_t *hashes; /* hashes[i] belongs to files[i] */
    size_t n_files, cap_files;
    uint32_t *slots; /* index + 1 into files; 0 = empty */
    size_t n_slots;  /* power of two, at least twice n_files */
    uint64_t files_without_stats;
    int64_t rows_with_stats;
    sl__delta_txn *txns;
    size_t n_txns;
    /* Every remove applied, oldest first (a path removed twice appears twice; one added
     * again is still here: checkpoints keep the last tombstone of paths not active).
     * Only a state loaded to write a checkpoint keeps them (keep_tombstones), so long-lived
     * snapshots and whole-history replays do not grow with every remove. */
    bool keep_tombstones; /* survives sl__delta_state_cleanup */
    sl__delta_tombstone *tombstones;
    size_t n_tombstones, cap_tombstones;
    /* metaData.configuration's delta.logRetentionDuration: the text (NULL when absent)
     * and in ms (-1 when absent or not understood), for checkpoints and log expiry. */
    char *log_retention;
    int64_t log_retention_ms;
    /* What the last applied commit did (for the history). */
    sl_delta_version_info last;
    char operation[128];
} sl__delta_state;

void sl__delta_state_init(sl__delta_state *st);
void sl__delta_state_cleanup(sl__delta_state *st);

/* Applies the commit file `data` (JSON lines) as version `version`, which must be
 * st->version + 1. On failure the state is unusable: the caller cleans it up. */
SL_MUST_CHECK sl_err sl__delta_state_apply(sl__delta_state *st, int64_t version, const char *data,
                                           size_t len, char *errbuf, size_t errlen);

/* Whether path (canonical) is an active file of st. */
bool sl__delta_state_is_active(const sl__delta_state *st, const char *path);

/* The state a snapshot holds (for commits that apply themselves to it, and checkpoints). */
sl__delta_state *sl__delta_snapshot_state(sl_delta_snapshot_t *snap);
/* sl_delta_snapshot_load, keeping the tombstones of the removes it applies (for writing a
 * checkpoint). */
SL_MUST_CHECK sl_err sl__delta_snapshot_load_tombstones(sl_storage_t *store, int64_t version,
                                                        sl_delta_snapshot_t **snap, char *errbuf,
                                                        size_t errlen);

/* The key of a commit: "_delta_log/%020lld.json". */
#define SL__DELTA_KEY_MAX 48
void sl__delta_commit_key(int64_t version, char out[SL__DELTA_KEY_MAX]);

/* ---- checkpoints (checkpoint.c): bytes in, bytes out ---- */

/* Encodes st (protocol, metaData, txns, active files as adds with dataChange false and
 * their stats, and as removes the last tombstone of each path that is not active and was
 * deleted at or after tombstones_from_ms or at an unknown time) as a Parquet checkpoint
 * with the Delta protocol's nested schema, appended to out (its cap bounds the size). */
SL_MUST_CHECK sl_err sl__delta_checkpoint_encode(const sl__delta_state *st,
                                                 int64_t tombstones_from_ms, sl_buf *out,
                                                 size_t *actions, char *errbuf, size_t errlen);
/* Loads the checkpoint data[0..len) (untrusted; sluice's or another engine's single-part
 * classic checkpoint) of `version` into st, which must be freshly initialized: its rows
 * become the JSON actions they stand for, applied as commit `version` (same checks as the
 * log; remove tombstones are skipped). Errors name the checkpoint's version. */
SL_MUST_CHECK sl_err sl__delta_checkpoint_decode(const void *data, size_t len, int64_t version,
                                                 sl__delta_state *st, char *errbuf, size_t errlen);

/* ---- checkpoints on the store (checkpoint.c) ---- */

/* "_delta_log/%020lld.checkpoint.parquet". */
#define SL__DELTA_CK_KEY_MAX 64
void sl__delta_checkpoint_key(int64_t version, char out[SL__DELTA_CK_KEY_MAX]);
/* Milliseconds of a Delta duration ("interval 30 days"); -1 when not understood. */
int64_t sl__delta_interval_ms(const char *s);
/* Writes st as the checkpoint of st->version (tombstones as sl__delta_checkpoint_encode),
 * then _delta_log/_last_checkpoint. */
SL_MUST_CHECK sl_err sl__delta_checkpoint_put(sl_storage_t *store, const sl__delta_state *st,
                                              int64_t tombstones_from_ms, char *errbuf,
                                              size_t errlen);
/* Loads the checkpoint of `version` into st (freshly initialized; unusable on failure). */
SL_MUST_CHECK sl_err sl__delta_checkpoint_load(sl_storage_t *store, int64_t version,
                                               sl__delta_state *st, char *errbuf, size_t errlen);
/* The version _last_checkpoint names: SL_ERR_NOT_FOUND without one, SL_ERR_CORRUPT or
 * SL_ERR_UNSUPPORTED (multi-part, v2) for one that cannot be followed. */
SL_MUST_CHECK sl_err sl__delta_last_checkpoint(sl_storage_t *store, int64_t *version, char *errbuf,
                                               size_t errlen);
/* Deletes the JSON commits and checkpoints of versions below checkpoint_version (the
 * newest checkpoint) last modified more than retention_ms before now_ms, oldest first. */
SL_MUST_CHECK sl_err sl__delta_log_expire(sl_storage_t *store, int64_t checkpoint_version,
                                          int64_t retention_ms, int64_t now_ms, size_t *removed,
                                          char *errbuf, size_t errlen);

#endif
