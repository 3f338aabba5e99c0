/* Consumers of the embedded log: one per group and partition (a lock on byte P of
 * DIR/group-NAME.lock), assigned every partition or, as one of several shares of a group,
 * the partitions P with P % shares == share. A poll renews a kept read transaction, copies up to
 * max messages (and at most SL__LOG_POLL_BYTES) into a consumer-owned buffer, and resets the
 * transaction so no snapshot stays pinned between polls (a pinned snapshot stops LMDB reusing
 * pages).
 *
 * Invariants:
 *  1. pos[p] is the next offset to read in partition p. Reads position with
 *     MDB_SET_RANGE, so an offset that retention removed lands on the oldest retained one;
 *     an offset inside a batch value (log_int.h) is found in the value before that.
 *  2. A poll that fails leaves pos[] as it was: nothing is skipped.
 *  3. Messages handed out point into buf, which changes only at the next poll or close.
 *  4. Group offsets are written only by commit, in one write transaction; they are meta
 *     keys "group/NAME/P" holding the next offset to read. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/time.h"
#include "log/log_int.h"

/* Cross-process waits poll in steps this long: there is no shared condition variable
 * between processes, and 20 ms keeps `sluice log read -f` style tails responsive. */
#define CROSS_PROCESS_STEP_NS 20000000ll
/* Same-process waits re-check at least this often, in case the writer closes. */
#define SAME_PROCESS_STEP_NS 250000000ll

typedef struct emb_consumer {
    sl_log_consumer_t base;
    sl_log_t *log;
    sl__log_env *le;
    char *group; /* NULL without a group */
    int lock_fd;
    unsigned parts;
    uint64_t *pos;       /* invariant 1 */
    uint64_t *saved_pos; /* pos at the start of the running poll (invariant 2) */
    bool *caught;        /* partition read to its end, as of the last poll */
    unsigned *assigned;  /* the partitions this consumer reads, ascending */
    unsigned n_assigned;
    unsigned rr;       /* index in assigned of the partition the next poll starts with */
    MDB_txn *rtxn;     /* reset between polls */
    MDB_cursor **curs; /* per partition, renewed with rtxn */
    char *buf;
    size_t buf_len;
    size_t buf_alloc;
    sl_log_partitions_cb on_revoke;
    void *opaque;
    char errmsg[256];
} emb_consumer;

static sl_err set_errmsg(emb_consumer *c, sl_err err, const char *fmt, ...) SL_PRINTF(3, 4);

static sl_err set_errmsg(emb_consumer *c, sl_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return err;
}

static sl_err mdb_fail(emb_consumer *c, const char *what, int rc)
{
    return set_errmsg(c, sl__log_mdb_err(rc), "could not %s log \"%s\": %s", what, c->le->dir,
                      mdb_strerror(rc));
}

static void consumer_free(emb_consumer *c)
{
    if (!c)
        return;
    if (c->curs) {
        for (unsigned p = 0; p < c->parts; p++) {
            if (c->curs[p])
                mdb_cursor_close(c->curs[p]);
        }
    }
    if (c->rtxn)
        mdb_txn_abort(c->rtxn);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    free(c->group);
    free(c->pos);
    free(c->saved_pos);
    free(c->caught);
    free(c->assigned);
    free(c->curs);
    free(c->buf);
    free(c);
}

/* Reads the committed offset of partition p into *offset; MDB_NOTFOUND if none. */
static int read_committed(emb_consumer *c, MDB_txn *txn, unsigned p, uint64_t *offset)
{
    char kb[SL__LOG_GROUP_KEY_MAX];
    MDB_val k = {sl__log_group_key(kb, c->group, p), kb}, v;
    int rc = mdb_get(txn, c->le->meta, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size != sizeof *offset)
        return MDB_CORRUPTED;
    memcpy(offset, v.mv_data, sizeof *offset);
    return 0;
}

sl_err sl__log_emb_consumer_open(sl_log_t *log, const sl_log_consumer_options *opts,
                                 sl_log_consumer_t **out, char *errbuf, size_t errlen)
{
    sl__log_env *le = sl__log_emb_env(log);
    sl_err err = SL_OK;
    MDB_txn *txn = NULL;
    emb_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open consumer: %s",
                             "out of memory");
    c->base.be = log->be;
    c->log = log;
    c->le = le;
    c->lock_fd = -1;
    c->parts = le->partitions;
    c->on_revoke = opts->on_revoke;
    c->opaque = opts->opaque;
    c->pos = calloc(c->parts, sizeof *c->pos);
    c->saved_pos = calloc(c->parts, sizeof *c->saved_pos);
    c->caught = calloc(c->parts, sizeof *c->caught);
    c->assigned = calloc(c->parts, sizeof *c->assigned);
    c->curs = calloc(c->parts, sizeof *c->curs);
    if (!c->pos || !c->saved_pos || !c->caught || !c->assigned || !c->curs ||
        (opts->group && !(c->group = strdup(opts->group)))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open consumer: %s",
                            "out of memory");
        goto fail;
    }
    unsigned shares = opts->shares > 1 ? opts->shares : 1;
    for (unsigned p = 0; p < c->parts; p++) {
        if (p % shares == opts->share)
            c->assigned[c->n_assigned++] = p;
    }
    if (c->n_assigned == 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                            "share %u of %u of log \"%s\" holds none of its %u partitions",
                            opts->share, shares, le->dir, c->parts);
        goto fail;
    }

    if (c->group) {
        char name[SL__LOG_GROUP_MAX + 16];
        snprintf(name, sizeof name, "group-%s.lock", c->group);
        err = sl__log_lock_partitions(le->dir, name, c->assigned, c->n_assigned, &c->lock_fd);
        if (err == SL_ERR_BUSY) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_BUSY,
                                "consumer group \"%s\" of log \"%s\" already has a consumer%s",
                                c->group, le->dir, shares > 1 ? " of these partitions" : "");
            goto fail;
        }
        if (err) {
            err = sl_errbuf_set(errbuf, errlen, err,
                                "could not open consumer group \"%s\" of log \"%s\": could "
                                "not lock %s",
                                c->group, le->dir, name);
            goto fail;
        }
        if (!opts->from_beginning) {
            int rc = mdb_txn_begin(le->env, NULL, MDB_RDONLY, &txn);
            for (unsigned p = 0; rc == 0 && p < c->parts; p++) {
                rc = read_committed(c, txn, p, &c->pos[p]);
                if (rc == MDB_NOTFOUND) {
                    c->pos[p] = 0; /* SET_RANGE from 0 finds the oldest retained */
                    rc = 0;
                }
            }
            if (rc) {
                err = sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(rc),
                                    "could not read offsets of consumer group \"%s\" of log "
                                    "\"%s\": %s",
                                    c->group, le->dir, mdb_strerror(rc));
                goto fail;
            }
            mdb_txn_abort(txn);
            txn = NULL;
        }
    }
    if (opts->on_assign)
        opts->on_assign(opts->opaque, c->assigned, c->n_assigned);
    *out = &c->base;
    return SL_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    consumer_free(c);
    return err;
}

/* Room for len more bytes in buf. Pointers into buf are fixed up by the caller, who keeps
 * offsets until the poll ends. */
static bool buf_reserve(emb_consumer *c, size_t len)
{
    if (len <= c->buf_alloc - c->buf_len)
        return true;
    size_t want = c->buf_alloc ? c->buf_alloc : 64 * 1024;
    while (want - c->buf_len < len) {
        if (want > SIZE_MAX / 2)
            return false;
        want *= 2;
    }
    char *p = realloc(c->buf, want);
    if (!p)
        return false;
    c->buf = p;
    c->buf_alloc = want;
    return true;
}

/* Begins (or renews) the poll's read snapshot and its cursors. */
static int begin_read(emb_consumer *c)
{
    int rc;
    if (c->rtxn) {
        rc = mdb_txn_renew(c->rtxn);
    } else {
        rc = mdb_txn_begin(c->le->env, NULL, MDB_RDONLY, &c->rtxn);
        if (rc == MDB_MAP_RESIZED) {
            mdb_env_set_mapsize(c->le->env, 0);
            rc = mdb_txn_begin(c->le->env, NULL, MDB_RDONLY, &c->rtxn);
        }
        if (rc)
            c->rtxn = NULL;
    }
    if (rc)
        return rc;
    for (unsigned p = 0; p < c->parts; p++) {
        if (c->curs[p])
            rc = mdb_cursor_renew(c->rtxn, c->curs[p]);
        else
            rc = mdb_cursor_open(c->rtxn, c->le->part[p], &c->curs[p]);
        if (rc) {
            mdb_txn_reset(c->rtxn);
            return rc;
        }
    }
    return 0;
}

typedef struct poll_state {
    sl_log_message *msgs;
    size_t max;
    size_t n;
    bool full; /* byte cap reached */
} poll_state;

/* Positions cur on the value holding offset `from`: the one with that key, or a batch
 * before it that reaches it (a poll that resumes inside a batch); else the first value
 * after it (retention removed `from`), or MDB_NOTFOUND. */
static int seek_value(MDB_cursor *cur, uint64_t from, MDB_val *k, MDB_val *v)
{
    uint64_t key;
    *k = (MDB_val){sizeof from, &from};
    int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (rc == 0 && k->mv_size == sizeof key) {
        memcpy(&key, k->mv_data, sizeof key);
        if (key == from)
            return 0;
    } else if (rc != MDB_NOTFOUND) {
        return rc; /* an error, or a corrupt key the caller reports */
    }
    MDB_val pk, pv;
    int prc = mdb_cursor_get(cur, &pk, &pv, rc == 0 ? MDB_PREV : MDB_LAST);
    if (prc == 0 && pk.mv_size == sizeof key) {
        sl__log_value_iter it;
        memcpy(&key, pk.mv_data, sizeof key);
        if (key < from && sl__log_value_open(pv.mv_data, pv.mv_size, &it) &&
            from - key < it.count) {
            *k = pk;
            *v = pv;
            return 0;
        }
    } else if (prc != 0 && prc != MDB_NOTFOUND) {
        return prc;
    }
    if (rc == MDB_NOTFOUND)
        return rc;
    *k = (MDB_val){sizeof from, &from};
    return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

/* Copies up to limit messages of partition p from pos[p] on, and notes whether the
 * partition was read to its end. A value may hold a batch of records (log_int.h): a poll
 * may stop inside one, and the next resumes there. Message key/value hold offsets into
 * buf until the poll fixes them up. */
static sl_err read_partition(emb_consumer *c, poll_state *st, unsigned p, size_t limit)
{
    MDB_cursor *cur = c->curs[p];
    MDB_val k, v;
    size_t got = 0;
    int rc = seek_value(cur, c->pos[p], &k, &v);
    while (rc == 0) {
        if (got >= limit || st->full)
            break;
        uint64_t off;
        if (k.mv_size != sizeof off)
            return set_errmsg(c, SL_ERR_CORRUPT,
                              "corrupt record in log \"%s\" partition %u after offset %" PRIu64
                              ": key of %zu bytes",
                              c->le->dir, p, c->pos[p], k.mv_size);
        memcpy(&off, k.mv_data, sizeof off);
        sl__log_value_iter it;
        if (!sl__log_value_open(v.mv_data, v.mv_size, &it))
            return set_errmsg(c, SL_ERR_CORRUPT,
                              "corrupt record in log \"%s\" partition %u at offset %" PRIu64
                              ": %zu bytes, shorter than its header",
                              c->le->dir, p, off, v.mv_size);
        sl__log_value_rec rec;
        while (got < limit && !st->full && sl__log_value_next(&it, &rec)) {
            uint64_t roff = off + (it.count - it.left - 1);
            if (roff < c->pos[p])
                continue; /* before the position, inside a batch */
            /* Key and value lie side by side in both kinds of value. */
            size_t len = rec.key_len + rec.value_len;
            /* The byte cap bounds memory per poll; one message always fits, or a message
             * larger than the cap could never be read. */
            if (st->n > 0 && c->buf_len + len > SL__LOG_POLL_BYTES) {
                st->full = true;
                break;
            }
            if (!buf_reserve(c, len))
                return set_errmsg(c, SL_ERR_NOMEM,
                                  "could not read log \"%s\": out of memory for %zu bytes",
                                  c->le->dir, len);
            memcpy(c->buf + c->buf_len, rec.key, len);
            st->msgs[st->n++] = (sl_log_message){
                .partition = p,
                .offset = roff,
                .timestamp_ms = it.ts,
                .key = (const char *)(uintptr_t)c->buf_len,
                .key_len = rec.key_len,
                .value = (const char *)(uintptr_t)(c->buf_len + rec.key_len),
                .value_len = rec.value_len,
            };
            c->buf_len += len;
            c->pos[p] = roff + 1;
            got++;
        }
        if (it.left == 0) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (got >= limit || st->full)
            break;
        return set_errmsg(c, SL_ERR_CORRUPT,
                          "corrupt record in log \"%s\" partition %u at offset %" PRIu64
                          ": it does not fit its batch of %" PRIu32 " records at offset %" PRIu64,
                          c->le->dir, p, off + (it.count - it.left), it.count, off);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return set_errmsg(c, sl__log_mdb_err(rc), "could not read log \"%s\": %s", c->le->dir,
                          mdb_strerror(rc));
    c->caught[p] = rc == MDB_NOTFOUND;
    return SL_OK;
}

/* One pass over every assigned partition: first a fair share each, then whatever room is
 * left, starting from a partition that rotates between polls. */
static sl_err read_once(emb_consumer *c, sl_log_message *msgs, size_t max, size_t *n_out)
{
    poll_state st = {.msgs = msgs, .max = max};
    memcpy(c->saved_pos, c->pos, c->parts * sizeof *c->pos);
    if (c->buf_alloc > 2 * SL__LOG_POLL_BYTES) {
        /* A giant message grew the buffer: give the memory back. */
        free(c->buf);
        c->buf = NULL;
        c->buf_alloc = 0;
    }
    c->buf_len = 0;
    int rc = begin_read(c);
    if (rc)
        return mdb_fail(c, "read", rc);
    sl_err err = SL_OK;
    unsigned n = c->n_assigned;
    size_t share = max / n + (max % n != 0);
    for (unsigned i = 0; i < n && !err; i++) {
        unsigned p = c->assigned[(c->rr + i) % n];
        size_t room = max - st.n;
        err = read_partition(c, &st, p, room < share ? room : share);
    }
    for (unsigned i = 0; i < n && !err && st.n < max && !st.full; i++) {
        unsigned p = c->assigned[(c->rr + i) % n];
        if (!c->caught[p])
            err = read_partition(c, &st, p, max - st.n);
    }
    mdb_txn_reset(c->rtxn);
    c->rr = (c->rr + 1) % n;
    if (err) {
        memcpy(c->pos, c->saved_pos, c->parts * sizeof *c->pos);
        return err;
    }
    for (size_t i = 0; i < st.n; i++) {
        msgs[i].key = c->buf + (uintptr_t)msgs[i].key;
        msgs[i].value = c->buf + (uintptr_t)msgs[i].value;
    }
    *n_out = st.n;
    return SL_OK;
}

/* A consumer in a process without the producer waits (up to CATCH_UP_WAIT_NS, in
 * CATCH_UP_STEP_NS steps) until LMDB holds everything the producer has acknowledged, as
 * DIR/acked.lsn says, so `sluice log read` right after a 200 finds the event; the
 * producer's applier commits within about 10 ms. */
#define CATCH_UP_STEP_NS 2000000ll
#define CATCH_UP_WAIT_NS 2000000000ll

static void wait_acked_applied(sl__log_env *le)
{
    uint64_t target, lsn;
    if (!sl__log_wal_read_acked(le->dir, &target))
        return;
    int64_t deadline = sl_time_mono_ns() + CATCH_UP_WAIT_NS;
    while (sl__log_wal_applied_lsn(le, &lsn) == SL_OK && lsn < target &&
           sl_time_mono_ns() < deadline) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)CATCH_UP_STEP_NS};
        nanosleep(&ts, NULL);
    }
}

/* @thread the consumer's one thread */
sl_err sl__log_emb_consumer_poll(sl_log_consumer_t *base, sl_log_message *msgs, size_t max,
                                 size_t *n_out, int timeout_ms)
{
    emb_consumer *c = (emb_consumer *)base;
    sl__log_env *le = c->le;
    *n_out = 0;
    c->errmsg[0] = '\0';
    if (max == 0 || !msgs)
        return set_errmsg(c, SL_ERR_INVALID, "poll needs room for at least one message");
    int64_t deadline = sl_time_mono_ns() + (timeout_ms > 0 ? (int64_t)timeout_ms * 1000000 : 0);
    pthread_mutex_lock(&le->mu);
    bool same_process = le->writers > 0;
    pthread_mutex_unlock(&le->mu);
    if (same_process)
        sl__log_emb_wait_applied(le);
    else
        wait_acked_applied(le);
    for (;;) {
        pthread_mutex_lock(&le->mu);
        uint64_t seq = le->commit_seq;
        pthread_mutex_unlock(&le->mu);

        sl_err err = read_once(c, msgs, max, n_out);
        if (err || *n_out > 0)
            return err;
        int64_t left = deadline - sl_time_mono_ns();
        if (left <= 0)
            return SL_OK;

        pthread_mutex_lock(&le->mu);
        if (le->writers > 0) {
            /* The writer is in this process: sleep until its next commit. */
            int64_t step = left < SAME_PROCESS_STEP_NS ? left : SAME_PROCESS_STEP_NS;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + step;
            ts.tv_sec += (time_t)(ns / 1000000000ll);
            ts.tv_nsec = (long)(ns % 1000000000ll);
            while (le->commit_seq == seq) {
                if (pthread_cond_timedwait(&le->cond, &le->mu, &ts) != 0)
                    break;
            }
            pthread_mutex_unlock(&le->mu);
        } else {
            pthread_mutex_unlock(&le->mu);
            int64_t step = left < CROSS_PROCESS_STEP_NS ? left : CROSS_PROCESS_STEP_NS;
            struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step};
            nanosleep(&ts, NULL);
        }
    }
}

sl_err sl__log_emb_consumer_commit(sl_log_consumer_t *base, const sl_log_position *pos, size_t n)
{
    emb_consumer *c = (emb_consumer *)base;
    c->errmsg[0] = '\0';
    if (!c->group)
        return set_errmsg(c, SL_ERR_INVALID, "consumer has no group to commit offsets to");
    for (size_t i = 0; i < n; i++) {
        if (pos[i].partition >= c->parts)
            return set_errmsg(c, SL_ERR_INVALID,
                              "cannot commit partition %u: log \"%s\" has %u partitions",
                              pos[i].partition, c->le->dir, c->parts);
    }
    if (n == 0)
        return SL_OK;
    MDB_txn *txn;
    int rc = mdb_txn_begin(c->le->env, NULL, 0, &txn);
    if (rc == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(c->le->env, 0);
        rc = mdb_txn_begin(c->le->env, NULL, 0, &txn);
    }
    if (rc)
        return mdb_fail(c, "commit offsets to", rc);
    for (size_t i = 0; i < n; i++) {
        char kb[SL__LOG_GROUP_KEY_MAX];
        MDB_val k = {sl__log_group_key(kb, c->group, pos[i].partition), kb};
        uint64_t off = pos[i].offset;
        MDB_val v = {sizeof off, &off};
        rc = mdb_put(txn, c->le->meta, &k, &v, 0);
        if (rc) {
            mdb_txn_abort(txn);
            return mdb_fail(c, "commit offsets to", rc);
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        return mdb_fail(c, "commit offsets to", rc);
    return SL_OK;
}

sl_err sl__log_emb_consumer_seek(sl_log_consumer_t *base, unsigned partition, uint64_t offset)
{
    emb_consumer *c = (emb_consumer *)base;
    c->errmsg[0] = '\0';
    if (partition >= c->parts)
        return set_errmsg(c, SL_ERR_INVALID,
                          "cannot seek partition %u: log \"%s\" has %u "
                          "partitions",
                          partition, c->le->dir, c->parts);
    c->pos[partition] = offset;
    c->caught[partition] = false;
    return SL_OK;
}

sl_err sl__log_emb_consumer_committed(sl_log_consumer_t *base, unsigned partition, uint64_t *offset)
{
    emb_consumer *c = (emb_consumer *)base;
    c->errmsg[0] = '\0';
    if (partition >= c->parts)
        return set_errmsg(c, SL_ERR_INVALID, "no partition %u: log \"%s\" has %u partitions",
                          partition, c->le->dir, c->parts);
    if (!c->group)
        return set_errmsg(c, SL_ERR_NOT_FOUND, "consumer has no group, so no committed offset");
    MDB_txn *txn;
    int rc = mdb_txn_begin(c->le->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return mdb_fail(c, "read offsets of", rc);
    rc = read_committed(c, txn, partition, offset);
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return set_errmsg(c, SL_ERR_NOT_FOUND,
                          "consumer group \"%s\" has no committed offset for partition %u",
                          c->group, partition);
    if (rc)
        return mdb_fail(c, "read offsets of", rc);
    return SL_OK;
}

bool sl__log_emb_consumer_is_caught_up(sl_log_consumer_t *base)
{
    emb_consumer *c = (emb_consumer *)base;
    for (unsigned i = 0; i < c->n_assigned; i++) {
        if (!c->caught[c->assigned[i]])
            return false;
    }
    return true;
}

const char *sl__log_emb_consumer_errmsg(sl_log_consumer_t *base)
{
    return ((emb_consumer *)base)->errmsg;
}

void sl__log_emb_consumer_close(sl_log_consumer_t *base)
{
    emb_consumer *c = (emb_consumer *)base;
    if (c->on_revoke)
        c->on_revoke(c->opaque, c->assigned, c->n_assigned);
    consumer_free(c);
}
