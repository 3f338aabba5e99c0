/* The lake-sink role: one thread polls the log (consumer group sluice-lake), turns each
 * event into a row of a Parquet file of its date partition, and commits each batch to the
 * Delta table as one version whose txn actions record the last log offset per partition.
 * Between batches it compacts partitions whose small files piled up (optimize.c).
 *
 * Invariants:
 *  1. txn[p] is the last offset of partition p that the table holds (-1: none). A message
 *     at or below it is never written again, whatever the log redelivers.
 *  2. Order of a batch: data files uploaded (visible whole, file:// fsynced) -> Delta
 *     commit (atomic create-if-absent) -> log offsets committed. A kill at any point
 *     leaves either a commit holding the whole batch or no commit (files without a commit
 *     are never read: they are not in the log); offsets lag the table at worst, and
 *     invariant 1 skips what they lag by.
 *  3. At start, and whenever partitions are assigned, txn[] is read from the table's latest
 *     snapshot and each partition is sought to txn[p] + 1.
 *     Every commit also records which log the offsets count in: txn APP_ID_LOG, whose
 *     version is log_mark (a hash of sl_log_identity). A table whose mark is another log's
 *     (a log directory wiped and created anew beside a kept table) holds no progress in
 *     this log: txn[] reads as -1, and the next commit writes every partition's txn.
 *  4. A batch that cannot be committed is abandoned whole: its uploads are aborted, its
 *     stored files deleted, and its partitions sought back to txn[p] + 1, so it is read
 *     and written again. When the commit's outcome is unknown (a store error, then the
 *     table unreadable) the stored files stay (the commit may reference them), and no
 *     batch is committed before the table has been read again: one that overlaps its txn
 *     (the unknown commit landed) is dropped and read again from there.
 *
 * States of a batch: EMPTY -> FILLING (files open, rows going in) -> COMMITTING ->
 * EMPTY (committed, or abandoned by invariant 4). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/diag.h"
#include "core/time.h"
#include "lake/lake_int.h"

#define POLL_MAX       1024
#define MAX_OPEN_DATES 64 /* date partitions one batch may hold before it is committed */
#define APP_ID_FMT     "sluice-lake-%u"
#define APP_ID_LOG     "sluice-lake-log"
/* Versions one batch may find taken by other writers before it is abandoned and retried. */
#define MAX_COMMIT_ATTEMPTS 10

typedef struct date_file {
    int32_t day;
    sl__lake_file file;
} date_file;

struct sl_lake_sink_t {
    sl_lake_sink_options opts;
    char *table_uri;
    char *group;
    sl_storage_t *st; /* the table's store */
    sl_log_t *log;
    sl_log_consumer_t *consumer;
    unsigned parts;
    sl_delta_snapshot_t *snap; /* the table as last read or written; NULL: read it again */
    int64_t version;           /* snap's version */
    int64_t *txn;              /* invariant 1 */
    int64_t log_mark;          /* invariant 3: this log's; -1 when the log has no identity */
    bool other_log;            /* the table's txn[] are another log's (invariant 3) */
    int64_t *batch_first;      /* per partition: first offset in the batch; -1 none */
    int64_t *batch_last;
    bool *pending_seek; /* assigned before the consumer handle existed (embedded open) */
    date_file files[MAX_OPEN_DATES];
    size_t n_files;
    uint64_t batch_rows, batch_bytes;
    int64_t batch_start_ns;
    sl_lake_row row;
    bool drop_polled; /* a batch was abandoned: the rest of the poll is read again */
    size_t commits_since_compaction;
    sl_log_message msgs[POLL_MAX];
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    /* metrics, read by HTTP threads */
    atomic_uint_fast64_t events_total, commits_total, files_total, bytes_total;
    atomic_uint_fast64_t skipped_total, failures_total, conflicts_total, batch_rows_now;
    atomic_uint_fast64_t compactions_total, compaction_failures_total;
    atomic_int_fast64_t table_version, last_commit_ms;
    pthread_mutex_t mu;
    bool healthy;  /* @locks mu: false after a failed commit or poll until one succeeds */
    char why[384]; /* @locks mu */
};

void sl_lake_sink_options_default(sl_lake_sink_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->table_uri = "file://./var/lake/analytics_events";
    opts->group = "sluice-lake";
    opts->codec = SL_PQ_SNAPPY;
    opts->zstd_level = 3;
    opts->batch_rows = 100000;
    opts->batch_bytes = 64u << 20;
    opts->batch_ms = 5000;
    opts->target_file_bytes = 128u << 20;
    opts->auto_optimize_files = 64;
    opts->checkpoint_interval = 10;
    opts->log_retention_ms = 30 * 86400000LL;
}

/* what: a short phrase; detail may be NULL. */
static void set_health(sl_lake_sink_t *sink, bool healthy, const char *what, const char *detail)
{
    pthread_mutex_lock(&sink->mu);
    sink->healthy = healthy;
    snprintf(sink->why, sizeof sink->why, "%s%s%.300s", what ? what : "", detail ? ": " : "",
             detail ? detail : "");
    pthread_mutex_unlock(&sink->mu);
}

/* Sleeps up to ms, waking early when the sink stops. */
static void pause_ms(sl_lake_sink_t *sink, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&sink->stopping); waited += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- the table's txn versions (invariant 3) ---- */

/* The mark of a log identity stored in the table (so it must never change): FNV-1a, 64
 * bits, cleared to a non-negative version. -1 for a log without identity. */
static int64_t log_mark_of(const char *identity)
{
    if (!*identity)
        return -1;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *c = (const unsigned char *)identity; *c; c++)
        h = (h ^ *c) * 0x100000001b3ULL;
    return (int64_t)(h >> 1);
}

/* txn[] of every partition from the snapshot: -1 each when the table's offsets count in
 * another log (invariant 3). A table without a mark (written before marks existed, or by
 * a log without identity) is taken as this log's. */
static void txns_from(sl_lake_sink_t *sink, const sl_delta_snapshot_t *snap)
{
    int64_t mark;
    bool other = sink->log_mark >= 0 && sl_delta_snapshot_txn(snap, APP_ID_LOG, &mark) == SL_OK &&
                 mark != sink->log_mark;
    if (other && !sink->other_log)
        sl_diag(SL_DIAG_WARN,
                "lake table's offsets belong to another log; reading this one "
                "from its beginning",
                "log=%s", sl_log_identity(sink->log));
    sink->other_log = other;
    for (unsigned p = 0; p < sink->parts; p++) {
        char app[32];
        int64_t v;
        snprintf(app, sizeof app, APP_ID_FMT, p);
        sink->txn[p] = !other && sl_delta_snapshot_txn(snap, app, &v) == SL_OK ? v : -1;
    }
}

/* Brings the snapshot to the table's latest version (only the commits after it; all of
 * them when there is none, or the last update failed), then version and txn[]. */
static sl_err refresh_txns(sl_lake_sink_t *sink, char *errbuf, size_t errlen)
{
    sl_err err = SL_OK;
    if (sink->snap &&
        (err = sl_delta_snapshot_update(sink->st, sink->snap, NULL, NULL, errbuf, errlen))) {
        sl_delta_snapshot_free(sink->snap);
        sink->snap = NULL;
    }
    if (!sink->snap && (err = sl_delta_snapshot_load(sink->st, -1, &sink->snap, errbuf, errlen)))
        return err;
    sink->version = sl_delta_snapshot_version(sink->snap);
    atomic_store(&sink->table_version, sink->version);
    txns_from(sink, sink->snap);
    return SL_OK;
}

static sl_err seek_partition(sl_lake_sink_t *sink, unsigned p)
{
    sl_err err = sl_log_consumer_seek(sink->consumer, p, (uint64_t)(sink->txn[p] + 1));
    if (err)
        sl_diag(SL_DIAG_ERROR, "lake sink could not seek the log", "partition=%u detail=\"%s\"", p,
                sl_log_consumer_errmsg(sink->consumer));
    return err;
}

/* @thread the sink's (inside consumer open or poll) */
static void on_assign(void *opaque, const unsigned *partitions, size_t n)
{
    sl_lake_sink_t *sink = opaque;
    char eb[512];
    if (sink->consumer && refresh_txns(sink, eb, sizeof eb))
        sl_diag(SL_DIAG_ERROR, "lake sink could not read the table", "detail=\"%s\"", eb);
    for (size_t i = 0; i < n; i++) {
        if (partitions[i] >= sink->parts)
            continue;
        if (sink->consumer)
            (void)seek_partition(sink, partitions[i]); /* invariant 1 still skips */
        else
            sink->pending_seek[partitions[i]] = true;
    }
}

/* ---- a batch ---- */

/* Frees a file of the batch (keep = false: and removes it from the store). */
static void file_release(sl_lake_sink_t *sink, date_file *f, bool keep)
{
    sl__lake_file_release(sink->st, &f->file, keep);
}

static void batch_reset(sl_lake_sink_t *sink)
{
    sink->n_files = 0;
    sink->batch_rows = sink->batch_bytes = 0;
    sink->batch_start_ns = 0;
    atomic_store(&sink->batch_rows_now, 0);
    for (unsigned p = 0; p < sink->parts; p++)
        sink->batch_first[p] = sink->batch_last[p] = -1;
}

/* Invariant 4 (keep_stored: the files already uploaded stay, as a commit whose outcome
 * is unknown may reference them; a vacuum removes them if it does not). With the batch
 * empty, everything after txn[p] is missing from the table,
 * so every partition goes back there and the rest of the current poll is dropped (it is
 * read again): no message can slip past a partition's new position. */
static void batch_abandon(sl_lake_sink_t *sink, bool keep_stored)
{
    for (size_t i = 0; i < sink->n_files; i++)
        file_release(sink, &sink->files[i], keep_stored);
    for (unsigned p = 0; p < sink->parts; p++)
        (void)seek_partition(sink, p);
    sink->drop_polled = true;
    batch_reset(sink);
}

static sl_err file_for_day(sl_lake_sink_t *sink, int32_t day, date_file **out, char *errbuf,
                           size_t errlen)
{
    for (size_t i = 0; i < sink->n_files; i++) {
        if (sink->files[i].day == day) {
            *out = &sink->files[i];
            return SL_OK;
        }
    }
    if (sink->n_files == MAX_OPEN_DATES)
        return SL_ERR_BUSY; /* the caller commits the batch first */
    date_file *f = &sink->files[sink->n_files];
    f->day = day;
    char date[11];
    sl_lake_format_date(day, date);
    sl_pq_writer_options po;
    sl_pq_writer_options_default(&po);
    po.codec = sink->opts.codec;
    po.zstd_level = sink->opts.zstd_level;
    sl_err err = sl__lake_file_open(sink->st, date, &po, &f->file, errbuf, errlen);
    if (err)
        return err;
    sink->n_files++; /* from here file_release cleans it up */
    *out = f;
    return SL_OK;
}

/* Finishes every file of the batch and describes it as an add (stats into stats[i]). */
static sl_err finish_files(sl_lake_sink_t *sink, sl_delta_add *adds, sl_delta_kv *pvs,
                           sl_buf *stats, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < sink->n_files; i++) {
        sl_err err = sl__lake_file_finish(&sink->files[i].file, true, &stats[i], &pvs[i], &adds[i],
                                          NULL, errbuf, errlen);
        if (err)
            return err;
        atomic_fetch_add(&sink->bytes_total, adds[i].size);
    }
    return SL_OK;
}

/* Other writers took the version (sl_delta_commit_append brought snap up to date): if
 * one committed offsets of this batch (a second sink on the same partitions), the batch
 * must not be committed again; other appends do not conflict with it. */
static sl_err batch_still_ours(void *opaque, const sl_delta_snapshot_t *snap, char *errbuf,
                               size_t errlen)
{
    sl_lake_sink_t *sink = opaque;
    atomic_fetch_add(&sink->conflicts_total, 1);
    txns_from(sink, snap);
    for (unsigned p = 0; p < sink->parts; p++) {
        if (sink->batch_first[p] >= 0 && sink->txn[p] >= sink->batch_first[p])
            return sl_errbuf_set(errbuf, errlen, SL_ERR_EXISTS,
                                 "version %" PRId64 " already holds partition %u up to offset "
                                 "%" PRId64 ", which this batch holds too: it is dropped and "
                                 "read again from there",
                                 sl_delta_snapshot_version(snap), p, sink->txn[p]);
    }
    sl_diag(SL_DIAG_INFO, "lake commit conflict: other writers appended, retrying",
            "version=%" PRId64, sl_delta_snapshot_version(snap) + 1);
    return SL_OK;
}

/* The first partition whose batch offsets the table already holds (txn[] as last read),
 * or -1: such a batch must not be committed (invariant 1). */
static int batch_overlap(const sl_lake_sink_t *sink)
{
    for (unsigned p = 0; p < sink->parts; p++) {
        if (sink->batch_first[p] >= 0 && sink->txn[p] >= sink->batch_first[p])
            return (int)p;
    }
    return -1;
}

typedef enum landing { LANDED, NOT_LANDED, UNKNOWN } landing;

/* After a commit reported a failure: whether it landed anyway (file://: the link succeeded
 * and the directory sync failed; s3://: the PUT was stored and its answer lost). Its files
 * must then stay, and must stay too while the table cannot be read to tell. */
static landing batch_landed(sl_lake_sink_t *sink)
{
    char eb[512];
    if (refresh_txns(sink, eb, sizeof eb))
        return UNKNOWN;
    for (unsigned p = 0; p < sink->parts; p++) {
        if (sink->batch_last[p] >= 0 && sink->txn[p] != sink->batch_last[p])
            return NOT_LANDED;
    }
    return LANDED;
}

/* After version `version` committed: its checkpoint when due, then log expiry. A failure
 * is logged and the commit stands (a checkpoint is never needed to read the table).
 * @thread the sink's */
static void maybe_checkpoint(sl_lake_sink_t *sink, int64_t version)
{
    char eb[512] = "";
    size_t expired;
    int64_t every = sink->opts.checkpoint_interval;
    if (every <= 0 || version <= 0 || version % every != 0)
        return;
    if (sl_delta_checkpoint(sink->st, version, sink->opts.log_retention_ms, sl_time_now_us() / 1000,
                            &expired, eb, sizeof eb))
        sl_diag(SL_DIAG_WARN, "lake checkpoint failed; the table stays readable",
                "version=%" PRId64 " detail=\"%s\"", version, eb);
    else
        sl_diag(SL_DIAG_DEBUG, "lake checkpoint", "version=%" PRId64 " expired=%zu", version,
                expired);
}

/* Every auto_optimize_files commits (each adds at most one file per date), compacts the
 * partitions that have that many small files, between two batches. A failure costs
 * nothing but the attempt: the table and the batch are untouched. @thread the sink's */
static void maybe_compact(sl_lake_sink_t *sink)
{
    if (!sink->opts.auto_optimize_files ||
        sink->commits_since_compaction < sink->opts.auto_optimize_files)
        return;
    sink->commits_since_compaction = 0;
    char eb[512];
    sl_lake_optimize_options oo;
    sl_lake_optimize_options_default(&oo);
    oo.target_file_bytes = sink->opts.target_file_bytes;
    oo.min_files = sink->opts.auto_optimize_files;
    oo.codec = sink->opts.codec;
    oo.zstd_level = sink->opts.zstd_level;
    sl_lake_optimize_result res;
    sl_err err = refresh_txns(sink, eb, sizeof eb);
    if (!err)
        err = sl_lake_optimize(sink->st, sink->snap, &oo, &res, eb, sizeof eb);
    if (err) {
        atomic_fetch_add(&sink->compaction_failures_total, 1);
        sl_diag(SL_DIAG_WARN, "lake compaction failed", "detail=\"%s\"", eb);
        sl_delta_snapshot_free(sink->snap); /* behind or unusable: read it again */
        sink->snap = NULL;
        return;
    }
    if (res.version < 0)
        return;
    sink->version = res.version;
    atomic_store(&sink->table_version, sink->version);
    atomic_fetch_add(&sink->compactions_total, 1);
    sl_diag(SL_DIAG_INFO, "lake compaction",
            "version=%" PRId64 " partitions=%zu files_removed=%" PRIu64 " files_added=%" PRIu64
            " rows=%" PRIu64,
            res.version, res.partitions, res.files_removed, res.files_added, res.rows);
    maybe_checkpoint(sink, res.version);
}

/* Commits the batch (invariant 2). @thread the sink's */
static void batch_commit(sl_lake_sink_t *sink)
{
    char eb[512] = "";
    sl_err err = SL_OK;
    bool keep_stored = false; /* on failure: the commit may have landed */
    size_t n_txns = 0;
    sl_delta_add adds[MAX_OPEN_DATES];
    sl_delta_kv pvs[MAX_OPEN_DATES];
    sl_buf stats[MAX_OPEN_DATES];
    sl_delta_txn *txns = NULL;
    char(*apps)[32] = NULL;
    size_t n_files = sink->n_files;
    for (size_t i = 0; i < MAX_OPEN_DATES; i++)
        sl_buf_init(&stats[i], 1u << 20);
    bool any = false;
    for (unsigned p = 0; p < sink->parts; p++)
        any |= sink->batch_last[p] >= 0;
    if (!any)
        goto out;
    if (sink->batch_rows == 0) {
        /* Only records that were skipped: nothing for the table (a file opened for a row
         * the writer then refused holds no row). */
        for (size_t i = 0; i < sink->n_files; i++)
            file_release(sink, &sink->files[i], false);
        goto offsets;
    }
    /* After a commit whose outcome was unknown the snapshot is gone: read the table first,
     * and drop a batch it already holds part of (the earlier commit did land). */
    if (!sink->snap && refresh_txns(sink, eb, sizeof eb))
        goto fail;
    int p_in = batch_overlap(sink);
    if (p_in >= 0) {
        sl_diag(SL_DIAG_WARN, "lake batch already in the table; dropped and read again",
                "partition=%d txn=%" PRId64 " batch_first=%" PRId64, p_in, sink->txn[p_in],
                sink->batch_first[p_in]);
        batch_abandon(sink, false);
        set_health(sink, true, NULL, NULL); /* the table reads, and holds those events */
        goto out;
    }
    txns = calloc(sink->parts + 1, sizeof *txns);
    apps = calloc(sink->parts, sizeof *apps);
    if (!txns || !apps) {
        err = sl_errbuf_set(eb, sizeof eb, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((err = finish_files(sink, adds, pvs, stats, eb, sizeof eb)))
        goto fail;
    for (unsigned p = 0; p < sink->parts; p++) {
        /* After another log's offsets, every partition's are replaced (invariant 3). */
        if (sink->batch_last[p] < 0 && !sink->other_log)
            continue;
        snprintf(apps[n_txns], sizeof apps[n_txns], APP_ID_FMT, p);
        txns[n_txns] = (sl_delta_txn){apps[n_txns], sink->batch_last[p] >= 0 ? sink->batch_last[p]
                                                                             : sink->txn[p]};
        n_txns++;
    }
    if (sink->log_mark >= 0)
        txns[n_txns++] = (sl_delta_txn){APP_ID_LOG, sink->log_mark};
    static const sl_delta_kv params[] = {{"mode", "Append"}, {"partitionBy", "[\"event_date\"]"}};
    sl_delta_commit c = {
        .adds = adds,
        .n_adds = n_files,
        .txns = txns,
        .n_txns = n_txns,
        .operation = "WRITE",
        .operation_parameters = params,
        .n_operation_parameters = 2,
    };
    err = sl_delta_commit_append(sink->st, sink->snap, &c, MAX_COMMIT_ATTEMPTS, batch_still_ours,
                                 sink, eb, sizeof eb);
    if (err == SL_ERR_EXISTS) {
        sink->version = sl_delta_snapshot_version(sink->snap);
        sl_diag(SL_DIAG_WARN, "lake commit conflict", "detail=\"%s\"", eb);
        goto fail; /* invariant 4 seeks each partition to the table's txn + 1 */
    }
    if (err) {
        /* The snapshot may be behind or unusable: read the table again. */
        sl_delta_snapshot_free(sink->snap);
        sink->snap = NULL;
        landing l = batch_landed(sink);
        keep_stored = l == UNKNOWN;
        if (l != LANDED)
            goto fail;
        sl_diag(SL_DIAG_WARN, "lake commit reported a failure but landed", "detail=\"%s\"", eb);
    }
    sink->version = sl_delta_snapshot_version(sink->snap);
    for (unsigned p = 0; p < sink->parts; p++) {
        if (sink->batch_last[p] >= 0)
            sink->txn[p] = sink->batch_last[p];
    }
    sink->other_log = false;
    atomic_store(&sink->table_version, sink->version);
    atomic_store(&sink->last_commit_ms, sl_time_now_us() / 1000);
    atomic_fetch_add(&sink->commits_total, 1);
    sink->commits_since_compaction++;
    atomic_fetch_add(&sink->files_total, n_files);
    atomic_fetch_add(&sink->events_total, sink->batch_rows);
    sl_diag(SL_DIAG_DEBUG, "lake commit", "version=%" PRId64 " files=%zu rows=%" PRIu64,
            sink->version, n_files, sink->batch_rows);
    for (size_t i = 0; i < n_files; i++)
        file_release(sink, &sink->files[i], true);
    set_health(sink, true, NULL, NULL);
    maybe_checkpoint(sink, sink->version);
offsets:;
    /* After the table (invariant 2): a failure here only makes the next start skip more. */
    sl_log_position pos[1024];
    size_t n_pos = 0;
    for (unsigned p = 0; p < sink->parts && n_pos < 1024; p++) {
        if (sink->batch_last[p] >= 0)
            pos[n_pos++] = (sl_log_position){p, (uint64_t)sink->batch_last[p] + 1};
    }
    if (sl_log_consumer_commit(sink->consumer, pos, n_pos))
        sl_diag(SL_DIAG_WARN, "lake sink could not commit log offsets", "detail=\"%s\"",
                sl_log_consumer_errmsg(sink->consumer));
    batch_reset(sink);
    maybe_compact(sink);
    goto out;
fail:
    atomic_fetch_add(&sink->failures_total, 1);
    set_health(sink, false, "could not commit to the lake", eb);
    sl_diag(SL_DIAG_ERROR, "lake commit failed; the batch will be written again",
            "rows=%" PRIu64 " detail=\"%s\"", sink->batch_rows, eb);
    batch_abandon(sink, keep_stored);
    pause_ms(sink, 1000); /* back off before the batch is read and tried again */
out:
    for (size_t i = 0; i < MAX_OPEN_DATES; i++)
        sl_buf_cleanup(&stats[i]);
    free(txns);
    free(apps);
}

/* @thread the sink's (inside poll or close) */
static void on_revoke(void *opaque, const unsigned *partitions, size_t n)
{
    (void)partitions;
    (void)n;
    batch_commit(opaque);
}

static bool batch_due(const sl_lake_sink_t *sink)
{
    if (sink->batch_rows >= sink->opts.batch_rows || sink->batch_bytes >= sink->opts.batch_bytes)
        return true;
    return sink->batch_start_ns &&
           sl_time_mono_ns() - sink->batch_start_ns >= sink->opts.batch_ms * 1000000;
}

/* One message into the batch. */
static void take_message(sl_lake_sink_t *sink, const sl_log_message *m)
{
    unsigned p = m->partition;
    if (p >= sink->parts || (int64_t)m->offset <= sink->txn[p] ||
        (int64_t)m->offset <= sink->batch_last[p])
        return; /* invariant 1 */
    char eb[512];
    sl_err err = sl_lake_row_parse(&sink->row, m->value, m->value_len, eb, sizeof eb);
    if (err) {
        atomic_fetch_add(&sink->skipped_total, 1);
        sl_diag(SL_DIAG_WARN, "lake sink skipped a record that is not a normalized event",
                "partition=%u offset=%" PRIu64 " detail=\"%s\"", p, m->offset, eb);
    } else {
        date_file *f;
        err = file_for_day(sink, sink->row.event_date, &f, eb, sizeof eb);
        if (err == SL_ERR_BUSY) {
            batch_commit(sink);
            if (sink->drop_polled)
                return;
            err = file_for_day(sink, sink->row.event_date, &f, eb, sizeof eb);
        }
        if (!err)
            err = sl_pq_writer_write_row(f->file.pw, sink->row.values, eb, sizeof eb);
        if (err == SL_ERR_INVALID) {
            /* The writer refused this row alone (nothing half-written). */
            atomic_fetch_add(&sink->skipped_total, 1);
            sl_diag(SL_DIAG_WARN, "lake sink skipped an event the writer refused",
                    "partition=%u offset=%" PRIu64 " detail=\"%s\"", p, m->offset, eb);
        } else if (err) {
            set_health(sink, false, "could not write a data file", eb);
            atomic_fetch_add(&sink->failures_total, 1);
            sl_diag(SL_DIAG_ERROR, "lake sink could not write; the batch will be written again",
                    "detail=\"%s\"", eb);
            batch_abandon(sink, false);
            pause_ms(sink, 1000);
            return;
        } else {
            sink->batch_rows++;
            atomic_store(&sink->batch_rows_now, sink->batch_rows);
        }
    }
    if (sink->batch_first[p] < 0)
        sink->batch_first[p] = (int64_t)m->offset;
    sink->batch_last[p] = (int64_t)m->offset;
    sink->batch_bytes += m->value_len;
    if (!sink->batch_start_ns)
        sink->batch_start_ns = sl_time_mono_ns();
}

static void *sink_main(void *arg)
{
    sl_lake_sink_t *sink = arg;
    while (!atomic_load(&sink->stopping)) {
        int timeout = 200;
        if (sink->batch_start_ns) {
            int64_t left =
                sink->opts.batch_ms - (sl_time_mono_ns() - sink->batch_start_ns) / 1000000;
            timeout = left < 0 ? 0 : left < timeout ? (int)left : timeout;
        }
        size_t n = 0;
        if (sl_log_consumer_poll(sink->consumer, sink->msgs, POLL_MAX, &n, timeout)) {
            set_health(sink, false, "could not read the log",
                       sl_log_consumer_errmsg(sink->consumer));
            sl_diag(SL_DIAG_ERROR, "lake sink could not poll the log", "detail=\"%s\"",
                    sl_log_consumer_errmsg(sink->consumer));
            pause_ms(sink, 1000);
            continue;
        }
        sink->drop_polled = false;
        for (size_t i = 0; i < n && !sink->drop_polled; i++) {
            take_message(sink, &sink->msgs[i]);
            if (batch_due(sink))
                batch_commit(sink);
        }
        if (batch_due(sink))
            batch_commit(sink);
    }
    batch_commit(sink);
    return NULL;
}

/* ---- start and stop ---- */

/* Opens the table, creating it when there is none; refuses one sluice cannot append to.
 * Keeps its snapshot in sink->snap. */
static sl_err open_table(sl_lake_sink_t *sink, char *errbuf, size_t errlen)
{
    sl_delta_snapshot_t *snap = NULL;
    sl_err err = sl_delta_snapshot_load(sink->st, -1, &snap, errbuf, errlen);
    if (err == SL_ERR_NOT_FOUND) {
        sl_delta_commit c = {
            .create = &sl_lake_table_def, .operation = "CREATE TABLE", .read_version = -1};
        err = sl_delta_commit_write(sink->st, 0, &c, errbuf, errlen);
        if (err && err != SL_ERR_EXISTS) /* another sink created it just now */
            return err;
        sl_diag(SL_DIAG_INFO, "created the lake table", "lake=\"%s\"", sink->table_uri);
        err = sl_delta_snapshot_load(sink->st, -1, &snap, errbuf, errlen);
    }
    if (err)
        return err;
    sl_buf want;
    sl_buf_init(&want, 1u << 20);
    int r, w;
    sl_delta_snapshot_protocol(snap, &r, &w);
    if (w > SL_DELTA_MIN_WRITER) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                            "lake \"%s\" needs writer version %d; sluice appends to version %d "
                            "tables",
                            sink->table_uri, w, SL_DELTA_MIN_WRITER);
    } else if ((err = sl_delta_schema_string(&sl_lake_table_def, &want))) {
        err = sl_errbuf_set(errbuf, errlen, err, "out of memory");
    } else if (strcmp(want.data, sl_delta_snapshot_schema_string(snap)) != 0 ||
               sl_delta_snapshot_partition_count(snap) != 1 ||
               strcmp(sl_delta_snapshot_partition_column(snap, 0), "event_date") != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                            "lake \"%s\" is not an event table: its schema or partition "
                            "columns differ from sluice's",
                            sink->table_uri);
    }
    sl_buf_cleanup(&want);
    if (err)
        sl_delta_snapshot_free(snap);
    else
        sink->snap = snap; /* refresh_txns goes on from here */
    return err;
}

static void sink_free(sl_lake_sink_t *sink)
{
    if (!sink)
        return;
    sl_log_consumer_close(sink->consumer);
    sl_delta_snapshot_free(sink->snap);
    sl_lake_row_cleanup(&sink->row);
    free(sink->txn);
    free(sink->batch_first);
    free(sink->batch_last);
    free(sink->pending_seek);
    sl_storage_close(sink->st);
    free(sink->table_uri);
    free(sink->group);
    pthread_mutex_destroy(&sink->mu);
    free(sink);
}

sl_err sl_lake_sink_start(const sl_lake_sink_options *opts, sl_log_t *log, sl_lake_sink_t **out,
                          char *errbuf, size_t errlen)
{
    *out = NULL;
    sl_lake_sink_t *sink = calloc(1, sizeof *sink);
    if (!sink)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&sink->mu, NULL);
    sl_lake_row_init(&sink->row);
    sink->opts = *opts;
    sink->log = log;
    sink->log_mark = log_mark_of(sl_log_identity(log));
    sink->parts = sl_log_partition_count(log);
    sink->table_uri = strdup(opts->table_uri);
    sink->group = strdup(opts->group ? opts->group : "sluice-lake");
    sink->txn = calloc(sink->parts, sizeof *sink->txn);
    sink->batch_first = calloc(sink->parts, sizeof *sink->batch_first);
    sink->batch_last = calloc(sink->parts, sizeof *sink->batch_last);
    sink->pending_seek = calloc(sink->parts, sizeof *sink->pending_seek);
    sink->opts.table_uri = sink->table_uri;
    sink->opts.group = sink->group;
    sink->opts.storage = NULL; /* borrowed for this call only */
    sl_err err;
    if (!sink->table_uri || !sink->group || !sink->txn || !sink->batch_first || !sink->batch_last ||
        !sink->pending_seek) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    batch_reset(sink);
    if ((err = sl_lake_store_open(opts->table_uri, opts->storage, &sink->st, errbuf, errlen)) ||
        (err = open_table(sink, errbuf, errlen)) || (err = refresh_txns(sink, errbuf, errlen)))
        goto fail;
    sl_log_consumer_options co = {
        .group = sink->group,
        .on_assign = on_assign,
        .on_revoke = on_revoke,
        .opaque = sink,
    };
    if ((err = sl_log_consumer_open(log, &co, &sink->consumer, errbuf, errlen)))
        goto fail;
    for (unsigned p = 0; p < sink->parts; p++) {
        if (sink->pending_seek[p] && seek_partition(sink, p) != SL_OK) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not seek partition %u: %s", p,
                                sl_log_consumer_errmsg(sink->consumer));
            goto fail;
        }
        sink->pending_seek[p] = false;
    }
    set_health(sink, true, NULL, NULL);
    if (pthread_create(&sink->thread, NULL, sink_main, sink) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL, "could not start the sink thread");
        goto fail;
    }
    sink->thread_started = true;
    sl_diag(SL_DIAG_INFO, "lake sink started",
            "lake=\"%s\" group=%s version=%" PRId64 " partitions=%u", sink->table_uri, sink->group,
            sink->version, sink->parts);
    *out = sink;
    return SL_OK;
fail:
    sink_free(sink);
    return err;
}

void sl_lake_sink_stop(sl_lake_sink_t *sink)
{
    if (!sink)
        return;
    atomic_store(&sink->stopping, true);
    if (sink->thread_started)
        pthread_join(sink->thread, NULL);
    sl_diag(SL_DIAG_INFO, "lake sink stopped", "version=%" PRId64, sink->version);
    sink_free(sink);
}

/* ---- /ready and /metrics (@thread HTTP threads) ---- */

static bool is_ready(void *opaque, char *why, size_t whylen)
{
    sl_lake_sink_t *sink = opaque;
    pthread_mutex_lock(&sink->mu);
    bool ok = sink->healthy;
    if (!ok)
        snprintf(why, whylen, "lake sink: %s", sink->why);
    pthread_mutex_unlock(&sink->mu);
    return ok;
}

static sl_err write_metrics(void *opaque, sl_buf *out)
{
    sl_lake_sink_t *sink = opaque;
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } m[] = {
#define M(field, name, type, help) {name, type, help, offsetof(sl_lake_sink_t, field)}
        M(events_total, "sluice_lake_events_total", "counter",
          "events committed to the Delta table"),
        M(commits_total, "sluice_lake_commits_total", "counter", "Delta commits written"),
        M(files_total, "sluice_lake_files_total", "counter", "Parquet files committed"),
        M(bytes_total, "sluice_lake_file_bytes_total", "counter", "bytes of Parquet files written"),
        M(skipped_total, "sluice_lake_skipped_total", "counter",
          "log records that were not normalized events, skipped"),
        M(failures_total, "sluice_lake_failures_total", "counter",
          "batches abandoned after a failed write or commit (written again)"),
        M(conflicts_total, "sluice_lake_conflicts_total", "counter",
          "commits that found their version taken by another writer"),
        M(batch_rows_now, "sluice_lake_batch_rows", "gauge", "events in the open batch"),
        M(compactions_total, "sluice_lake_compactions_total", "counter",
          "OPTIMIZE commits the sink made to compact small files"),
        M(compaction_failures_total, "sluice_lake_compaction_failures_total", "counter",
          "compactions that failed (nothing committed; tried again later)"),
#undef M
    };
    sl_err err = SL_OK;
    for (size_t i = 0; !err && i < sizeof m / sizeof *m; i++) {
        uint64_t v = atomic_load((atomic_uint_fast64_t *)((char *)sink + m[i].off));
        err = sl_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", m[i].name,
                             m[i].help, m[i].name, m[i].type, m[i].name, v);
    }
    pthread_mutex_lock(&sink->mu);
    bool healthy = sink->healthy;
    pthread_mutex_unlock(&sink->mu);
    if (!err)
        err = sl_buf_appendf(
            out,
            "# HELP sluice_lake_table_version latest Delta table version\n"
            "# TYPE sluice_lake_table_version gauge\nsluice_lake_table_version %" PRId64 "\n"
            "# HELP sluice_lake_last_commit_timestamp_seconds time of the last commit\n"
            "# TYPE sluice_lake_last_commit_timestamp_seconds gauge\n"
            "sluice_lake_last_commit_timestamp_seconds %.3f\n"
            "# HELP sluice_lake_up 1 while the lake sink writes and commits\n"
            "# TYPE sluice_lake_up gauge\nsluice_lake_up %d\n",
            (int64_t)atomic_load(&sink->table_version),
            (double)atomic_load(&sink->last_commit_ms) / 1000.0, healthy ? 1 : 0);
    return err;
}

void sl_lake_sink_component(sl_lake_sink_t *sink, sl_component *out)
{
    *out = (sl_component){
        .name = "lake-sink",
        .is_ready = is_ready,
        .write_metrics = write_metrics,
        .opaque = sink,
    };
}
