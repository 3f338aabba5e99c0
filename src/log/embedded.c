/* The embedded log backend (file://DIR): a durable, partitioned log. A writer thread
 * group-commits everything queued into the write-ahead log (embedded_wal.c: CRC-framed
 * frames, one fdatasync per group) and acknowledges; an applier thread then moves the
 * records into an LMDB environment, where consumers read them and retention applies, many
 * groups per LMDB transaction. This file opens, closes and appends; embedded_writer.c holds
 * both threads, embedded_consumer.c the consumers, embedded_env.c the LMDB plumbing.
 * docs/internals/log.md describes the on-disk layout.
 *
 * Invariants (8-11 are the WAL's, in embedded_wal.c):
 *  1. An append callback reports SL_OK only after the frames of every record of its unit
 *     were written to the WAL and fdatasync'd; each record's partition and offset are in
 *     its frame. LMDB meta "wal" (the first frame not applied) is committed in the same
 *     transaction as the records applied, and open replays every frame past it. So a
 *     kill -9 or a power loss at any instant keeps every acknowledged record exactly once,
 *     and loses only records not yet acknowledged.
 *  2. Within a partition, offsets start at 0 and grow by 1; meta "partition/N".next is
 *     the next offset to assign and is written in the same transaction as the records, so
 *     it is never below the last stored key + 1 and offsets are never reused, even after
 *     retention deleted every record. The writer assigns offsets from the same counters
 *     (wnext, loaded after replay), and the applier stores them as assigned.
 *  3. Meta records/bytes of a partition equal the count and key+value bytes of its stored
 *     records; they change only in the transaction that adds or deletes the records.
 *  4. The applier's in-memory partition state (ps) mirrors the last committed meta; a
 *     transaction works on a scratch copy that replaces ps only once the commit succeeded,
 *     so a failed commit leaves nothing half-applied (the units are retried).
 *  5. queued bytes <= max_pending_bytes: appends past it fail with SL_ERR_BUSY at once;
 *     sl_log_append never blocks on I/O. Durable units waiting for the applier are
 *     bounded too (the writer waits for the applier above min(2 * txn_budget,
 *     max_pending_bytes)).
 *  6. At most one producer per log directory across processes (flock on writer.lock; a
 *     reader takes it for a moment only to replay a crashed producer's WAL), and one
 *     MDB_env per directory per process (the registry in embedded_env.c).
 *  7. Every accepted unit gets exactly one callback, even when the log is closing.
 *
 * States of a producer handle: OPEN (appends queued, writer logs, applier applies) ->
 * CLOSING (appends get SL_ERR_CLOSED, the writer drains the queue and calls every callback,
 * then the applier applies everything) -> CLOSED (threads joined, env released). healthy
 * is false after a failed WAL write or LMDB apply until the next success of that step;
 * appends keep being tried either way. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/time.h"
#include "log/log_int.h"

#define TXN_BUDGET_MAX ((size_t)8 << 20)   /* bytes of units per write transaction */
#define WAL_SEG_MIN    ((uint64_t)1 << 20) /* WAL segment size: max_size_bytes / 16 within */
#define WAL_SEG_MAX    ((uint64_t)16 << 20)
#define LOCK_TRIES     20 /* times 50 ms: a reader replaying a WAL holds the writer lock briefly */

static const sl__log_backend embedded_backend;

sl__log_env *sl__log_emb_env(sl_log_t *log)
{
    return ((emb_log *)log)->le;
}

/* ---- open, append, close ---- */

/* Lets the applier apply what the writer handed it, then joins it. */
static void stop_applier(emb_log *lg)
{
    if (!lg->applier_started)
        return;
    pthread_mutex_lock(&lg->le->mu);
    lg->applier_stop = true;
    pthread_cond_signal(&lg->le->apply_cond);
    pthread_mutex_unlock(&lg->le->mu);
    pthread_join(lg->applier, NULL);
    lg->applier_started = false;
}

static void emb_free(emb_log *lg)
{
    if (!lg)
        return;
    if (lg->producer) {
        pthread_mutex_destroy(&lg->qmu);
        pthread_cond_destroy(&lg->qcond);
    }
    pthread_mutex_destroy(&lg->smu);
    pthread_mutex_destroy(&lg->apply_mu);
    sl__log_wal_close(&lg->wal);
    sl__log_env_release(lg->le);
    if (lg->lock_fd >= 0)
        close(lg->lock_fd); /* releases the writer lock */
    free(lg->ps);
    free(lg->scratch);
    free(lg->curs);
    free(lg->touched);
    free(lg->order);
    free(lg->part_end);
    free(lg->wnext);
    free(lg);
}

sl_err sl__log_embedded_open(const char *dir, const sl_log_options *opts, sl_log_t **out,
                             char *errbuf, size_t errlen)
{
    *out = NULL;
    sl_err err = sl__log_make_dirs(dir, errbuf, errlen);
    if (err)
        return err;
    emb_log *lg = calloc(1, sizeof *lg);
    if (!lg)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s", dir,
                             "out of memory");
    lg->base.be = &embedded_backend;
    lg->lock_fd = -1;
    lg->wal.fd = lg->wal.dir_fd = lg->wal.acked_fd = -1;
    lg->max_pending_bytes = opts->max_pending_bytes;
    lg->max_size_bytes = opts->max_size_bytes;
    lg->retention_ms = opts->retention_ms;
    lg->retention_bytes = opts->retention_bytes;
    atomic_init(&lg->st_healthy, true);
    atomic_init(&lg->st_apply_healthy, true);
    pthread_mutex_init(&lg->smu, NULL);
    pthread_mutex_init(&lg->apply_mu, NULL);

    /* The writer lock comes before LMDB, so a refused producer never touches the env. A
     * reader may hold it for a moment (replaying the WAL of a crashed producer): retry. */
    if (opts->producer) {
        for (int i = 0; i < LOCK_TRIES; i++) {
            err = sl__log_lock_file(dir, "writer.lock", &lg->lock_fd);
            if (err != SL_ERR_BUSY)
                break;
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
        if (err == SL_ERR_BUSY) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_BUSY,
                                "log \"%s\" is already open for writing by another process", dir);
            goto fail;
        }
        if (err) {
            err = sl_errbuf_set(errbuf, errlen, err,
                                "could not open log \"%s\": could not lock writer.lock: %s", dir,
                                strerror(errno));
            goto fail;
        }
    } else if (sl__log_lock_file(dir, "writer.lock", &lg->lock_fd) != SL_OK) {
        lg->lock_fd = -1; /* a producer runs (or the lock is unusable): nothing to replay */
    }
    err = sl__log_env_acquire(dir, opts, &lg->le, errbuf, errlen);
    if (err)
        goto fail;

    /* LMDB needs free pages for copy-on-write and per-page overhead: retention may use
     * only about half of the map. */
    uint64_t half = opts->max_size_bytes / 2;
    if (opts->producer && lg->retention_bytes > half) {
        sl_diag(SL_DIAG_WARN, "log retention_bytes clamped to half of max_size_bytes",
                "dir=\"%s\" retention_bytes=%" PRIu64 " max_size_bytes=%" PRIu64
                " clamped=%" PRIu64,
                dir, lg->retention_bytes, opts->max_size_bytes, half);
    }
    if (lg->retention_bytes > half)
        lg->retention_bytes = half;
    /* An eighth of the map leaves room for the copy-on-write of a batch. Past ~8 MiB a
     * bigger transaction only costs: its dirty pages fall out of the CPU caches before
     * the commit writes them (bench/log_append: 8 MiB ~640k records/s, 64 MiB ~520k). */
    uint64_t budget = opts->max_size_bytes / 8;
    lg->txn_budget = budget > TXN_BUDGET_MAX ? TXN_BUDGET_MAX : (size_t)budget;
    uint64_t seg = opts->max_size_bytes / 16;
    lg->wal.seg_bytes = seg < WAL_SEG_MIN ? WAL_SEG_MIN : seg > WAL_SEG_MAX ? WAL_SEG_MAX : seg;
    if (lg->lock_fd < 0) {
        atomic_store(&lg->st_healthy, true);
        *out = &lg->base;
        return SL_OK;
    }

    unsigned parts = lg->le->partitions;
    lg->ps = calloc(parts, sizeof *lg->ps);
    lg->scratch = calloc(parts, sizeof *lg->scratch);
    lg->curs = calloc(parts, sizeof *lg->curs);
    lg->touched = calloc(parts, sizeof *lg->touched);
    lg->part_end = calloc(parts, sizeof *lg->part_end);
    lg->wnext = calloc(parts, sizeof *lg->wnext);
    if (!lg->ps || !lg->scratch || !lg->curs || !lg->touched || !lg->part_end || !lg->wnext) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s", dir,
                            "out of memory");
        goto fail;
    }
    err = sl__log_emb_load_state(lg, errbuf, errlen);
    if (err)
        goto fail;
    if (!opts->producer) {
        /* A reader's options say nothing about the producer's retention: it deletes
         * nothing while replaying. */
        lg->retention_bytes = 0;
        lg->retention_ms = 0;
    }
    /* Whatever a crashed producer made durable in the WAL goes into LMDB now. */
    err = sl__log_wal_recover(lg, errbuf, errlen);
    if (err)
        goto fail;
    sl__log_emb_publish_stats(lg);
    if (!opts->producer) {
        /* A reader only replayed: it keeps no writer state and lets the lock go. */
        sl__log_wal_close(&lg->wal);
        close(lg->lock_fd);
        lg->lock_fd = -1;
        *out = &lg->base;
        return SL_OK;
    }
    for (unsigned p = 0; p < parts; p++)
        lg->wnext[p] = lg->ps[p].next;
    lg->producer = true;
    pthread_mutex_init(&lg->qmu, NULL);
    if (sl__log_cond_init_mono(&lg->qcond) != SL_OK) {
        pthread_mutex_destroy(&lg->qmu);
        lg->producer = false;
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s", dir,
                            "out of memory");
        goto fail;
    }
    /* Retention that is already due (say, a lowered limit) runs on the applier's first
     * pass rather than delaying open. */
    lg->next_housekeeping_ns = 0;
    lg->next_reader_check_ns = 0; /* the applier sets it on its first pass */
    pthread_mutex_lock(&lg->le->mu);
    lg->le->applied_units = lg->le->acked_units;
    lg->le->apply_failing = false;
    lg->le->writers++;
    pthread_mutex_unlock(&lg->le->mu);
    if (pthread_create(&lg->applier, NULL, sl__log_emb_applier_main, lg) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                            "could not open log \"%s\": could not start its applier thread", dir);
        goto fail_counted;
    }
    lg->applier_started = true;
    if (pthread_create(&lg->writer, NULL, sl__log_emb_writer_main, lg) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                            "could not open log \"%s\": could not start its writer thread", dir);
        stop_applier(lg);
        goto fail_counted;
    }
    lg->writer_started = true;
    sl_diag(SL_DIAG_DEBUG, "log open for writing",
            "dir=\"%s\" partitions=%u retention_bytes=%" PRIu64 " retention_ms=%" PRIu64, dir,
            parts, lg->retention_bytes, lg->retention_ms);
    *out = &lg->base;
    return SL_OK;
fail_counted:
    pthread_mutex_lock(&lg->le->mu);
    lg->le->writers--;
    pthread_mutex_unlock(&lg->le->mu);
fail:
    emb_free(lg);
    return err;
}

static void emb_close(sl_log_t *log)
{
    emb_log *lg = (emb_log *)log;
    if (lg->writer_started) {
        pthread_mutex_lock(&lg->qmu);
        lg->closing = true;
        atomic_store(&lg->closing_now, true);
        pthread_cond_signal(&lg->qcond);
        pthread_mutex_unlock(&lg->qmu);
        pthread_join(lg->writer, NULL);
        stop_applier(lg);
        pthread_mutex_lock(&lg->le->mu);
        lg->le->writers--;
        pthread_mutex_unlock(&lg->le->mu);
    }
    emb_free(lg);
}

/* @thread any @locks qmu (briefly; never across I/O) */
static sl_err emb_append(sl_log_t *log, const sl_log_record *recs, size_t n, sl_log_append_cb cb,
                         void *opaque)
{
    emb_log *lg = (emb_log *)log;
    if (!lg->producer)
        return SL_ERR_UNSUPPORTED;
    if (n == 0 || !cb)
        return SL_ERR_INVALID;
    if (n > (SIZE_MAX - sizeof(wunit)) / sizeof(wrec))
        return SL_ERR_TOO_LARGE;
    size_t size = sizeof(wunit) + n * sizeof(wrec);
    for (size_t i = 0; i < n; i++) {
        size_t kl = recs[i].key ? recs[i].key_len : 0;
        /* The stored header holds a 32-bit key length, and LMDB values end at 4 GiB. */
        if (kl > UINT32_MAX - SL__LOG_REC_HDR ||
            recs[i].value_len > UINT32_MAX - SL__LOG_REC_HDR - kl)
            return SL_ERR_TOO_LARGE;
        size_t rec = kl + recs[i].value_len;
        if (size > SIZE_MAX - rec)
            return SL_ERR_TOO_LARGE;
        size += rec;
    }
    if (size > lg->max_pending_bytes)
        return SL_ERR_TOO_LARGE;

    /* Cheap early refusal without allocating; re-checked under the lock below. */
    pthread_mutex_lock(&lg->qmu);
    bool closing = lg->closing;
    bool full = lg->qbytes + size > lg->max_pending_bytes;
    pthread_mutex_unlock(&lg->qmu);
    if (closing)
        return SL_ERR_CLOSED;
    if (full)
        return SL_ERR_BUSY;

    wunit *u = malloc(size);
    if (!u)
        return SL_ERR_NOMEM;
    u->next = NULL;
    u->cb = cb;
    u->opaque = opaque;
    u->n = n;
    u->size = size;
    char *d = (char *)&u->recs[n];
    for (size_t i = 0; i < n; i++) {
        wrec *r = &u->recs[i];
        size_t kl = recs[i].key ? recs[i].key_len : 0;
        r->key = NULL;
        r->key_len = (uint32_t)kl;
        if (recs[i].key) {
            if (kl)
                memcpy(d, recs[i].key, kl);
            r->key = d;
            d += kl;
            /* Hashed here, on the appender's thread, not on the writer's serial path. */
            r->part = sl_log_partition_for_key(r->key, kl, lg->le->partitions);
        }
        if (recs[i].value_len)
            memcpy(d, recs[i].value, recs[i].value_len);
        r->value = d;
        r->value_len = recs[i].value_len;
        d += recs[i].value_len;
    }

    sl_err err = SL_OK;
    pthread_mutex_lock(&lg->qmu);
    if (lg->closing) {
        err = SL_ERR_CLOSED;
    } else if (lg->qbytes + size > lg->max_pending_bytes) {
        err = SL_ERR_BUSY;
    } else {
        bool was_empty = !lg->qhead;
        if (lg->qtail)
            lg->qtail->next = u;
        else
            lg->qhead = u;
        lg->qtail = u;
        lg->qbytes += size;
        atomic_store(&lg->st_pending, lg->qbytes);
        /* The writer only sleeps on an empty queue: one signal per batch is enough. */
        if (was_empty)
            pthread_cond_signal(&lg->qcond);
        u = NULL;
    }
    pthread_mutex_unlock(&lg->qmu);
    free(u);
    return err;
}

#define APPLY_WAIT_NS 2000000000ll

void sl__log_emb_wait_applied(sl__log_env *le)
{
    pthread_mutex_lock(&le->mu);
    uint64_t target = le->acked_units;
    if (le->writers > 0 && le->applied_units < target && !le->apply_failing) {
        le->apply_now = true;
        pthread_cond_signal(&le->apply_cond);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + APPLY_WAIT_NS;
        ts.tv_sec += (time_t)(ns / 1000000000ll);
        ts.tv_nsec = (long)(ns % 1000000000ll);
        while (le->writers > 0 && le->applied_units < target && !le->apply_failing) {
            if (pthread_cond_timedwait(&le->cond, &le->mu, &ts) != 0)
                break;
        }
    }
    pthread_mutex_unlock(&le->mu);
}

static unsigned emb_partition_count(const sl_log_t *log)
{
    return ((const emb_log *)log)->le->partitions;
}

static const char *emb_identity(const sl_log_t *log)
{
    return ((const emb_log *)log)->le->id;
}

/* Reads retained counts from meta for a handle without a writer, at most once a second
 * (scrapes must stay cheap). @locks smu */
static void refresh_reader_stats(emb_log *lg)
{
    int64_t mono = sl_time_mono_ns();
    pthread_mutex_lock(&lg->smu);
    if (lg->stats_read_ns && mono - lg->stats_read_ns < SL__LOG_HOUSEKEEPING_NS)
        goto out;
    lg->stats_read_ns = mono;
    MDB_txn *txn;
    if (mdb_txn_begin(lg->le->env, NULL, MDB_RDONLY, &txn) != 0)
        goto out;
    uint64_t records = 0, bytes = 0;
    for (unsigned p = 0; p < lg->le->partitions; p++) {
        char kb[32];
        MDB_val k, v;
        sl__log_meta_part_key(kb, p, &k);
        if (mdb_get(txn, lg->le->meta, &k, &v) == 0 && v.mv_size == sizeof(pmeta)) {
            pmeta pm;
            memcpy(&pm, v.mv_data, sizeof pm);
            records += pm.records;
            bytes += pm.bytes;
        }
    }
    mdb_txn_abort(txn);
    atomic_store(&lg->st_records, records);
    atomic_store(&lg->st_bytes, bytes);
out:
    pthread_mutex_unlock(&lg->smu);
}

static void emb_get_stats(sl_log_t *log, sl_log_stats *stats)
{
    emb_log *lg = (emb_log *)log;
    if (!lg->producer)
        refresh_reader_stats(lg);
    else
        sl__log_emb_wait_applied(lg->le);
    /* Durable in the WAL counts as stored, though consumers see it a moment later. */
    stats->records = atomic_load(&lg->st_records) + atomic_load(&lg->st_unapplied);
    stats->bytes = atomic_load(&lg->st_bytes) + atomic_load(&lg->st_unapplied_bytes);
    stats->appended_total = atomic_load(&lg->st_appended);
    stats->commits_total = atomic_load(&lg->st_commits);
    stats->pending_bytes = atomic_load(&lg->st_pending);
    stats->healthy = atomic_load(&lg->st_healthy) && atomic_load(&lg->st_apply_healthy);
}

static const sl__log_backend embedded_backend = {
    .name = "embedded",
    .close = emb_close,
    .append = emb_append,
    .partition_count = emb_partition_count,
    .identity = emb_identity,
    .get_stats = emb_get_stats,
    .consumer_open = sl__log_emb_consumer_open,
    .consumer_poll = sl__log_emb_consumer_poll,
    .consumer_commit = sl__log_emb_consumer_commit,
    .consumer_seek = sl__log_emb_consumer_seek,
    .consumer_committed = sl__log_emb_consumer_committed,
    .consumer_is_caught_up = sl__log_emb_consumer_is_caught_up,
    .consumer_errmsg = sl__log_emb_consumer_errmsg,
    .consumer_close = sl__log_emb_consumer_close,
};
