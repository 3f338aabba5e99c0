/* The embedded log backend (file://DIR): a durable, partitioned log in an LMDB
 * environment, written by one writer thread that group-commits everything queued into one
 * write transaction (one fsync group) and enforces retention. Consumers live in
 * embedded_consumer.c; docs/internals/log.md describes the on-disk layout.
 *
 * Invariants:
 *  1. An append callback reports SL_OK only after mdb_txn_commit() of the transaction that
 *     holds every record of its unit returned success (LMDB fsyncs data, then the meta
 *     page, without MDB_NOSYNC/MDB_NOMETASYNC). So a kill -9 at any instant keeps every
 *     acknowledged record exactly once, and loses only records not yet acknowledged.
 *  2. Within a partition, offsets start at 0 and grow by 1; meta "partition/N".next is
 *     the next offset to assign and is written in the same transaction as the records, so
 *     it is never below the last stored key + 1 and offsets are never reused, even after
 *     retention deleted every record.
 *  3. Meta records/bytes of a partition equal the count and key+value bytes of its stored
 *     records; they change only in the transaction that adds or deletes the records.
 *  4. The writer's in-memory partition state (ps) mirrors the last committed meta; a
 *     transaction works on a scratch copy that replaces ps only once the commit succeeded,
 *     so a failed commit leaves nothing half-applied.
 *  5. queued bytes <= max_pending_bytes: appends past it fail with SL_ERR_BUSY at once;
 *     the queue never grows without bound and sl_log_append never blocks on I/O.
 *  6. At most one producer per log directory across processes (flock on writer.lock),
 *     and one MDB_env per directory per process (the env registry below).
 *  7. Every accepted unit gets exactly one callback, even when the log is closing.
 *
 * States of a producer handle: OPEN (appends queued, writer commits) -> CLOSING (appends
 * get SL_ERR_CLOSED, the writer drains the queue and calls every callback) -> CLOSED
 * (writer joined, env released). healthy flips false on a failed commit and back to true
 * on the next successful one; appends keep being tried either way. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/time.h"
#include "log/log_int.h"

#define META_PARTITIONS "partitions"
#define META_FORMAT "format"
#define FORMAT_VERSION 1u
#define HOUSEKEEPING_NS 1000000000ll  /* retention check at least this often */
#define READER_CHECK_NS 10000000000ll /* stale LMDB reader slots of dead processes */
#define MAX_READERS 1022u
#define TXN_BUDGET_MAX ((size_t)8 << 20) /* bytes of units per write transaction */

/* One partition's committed state, as in meta "partition/N" plus the cached timestamp of
 * its oldest record (INT64_MAX when empty), which makes the age check free. */
typedef struct pstate {
    uint64_t next;
    uint64_t records;
    uint64_t bytes;
    int64_t first_ts;
} pstate;

/* The stored form of meta "partition/N". */
typedef struct pmeta {
    uint64_t next;
    uint64_t records;
    uint64_t bytes;
} pmeta;

typedef struct wrec {
    const char *key; /* NULL: no key, spread round-robin */
    const char *value;
    uint32_t key_len;
    size_t value_len;
} wrec;

/* One sl_log_append call, copied into a single allocation: wrec array, then the bytes. */
typedef struct wunit {
    struct wunit *next;
    sl_log_append_cb cb;
    void *opaque;
    size_t n;
    size_t size; /* counted against max_pending_bytes */
    wrec recs[];
} wunit;

typedef struct emb_log {
    sl_log_t base;
    sl__log_env *le;
    bool producer;
    int lock_fd;
    uint64_t retention_bytes; /* effective (clamped) */
    uint64_t retention_ms;
    size_t max_pending_bytes;
    uint64_t max_size_bytes;
    size_t txn_budget; /* bytes of units per write transaction (see take_batch) */

    /* The append queue. */
    pthread_mutex_t qmu;
    pthread_cond_t qcond; /* CLOCK_MONOTONIC */
    wunit *qhead;         /* @locks qmu */
    wunit *qtail;         /* @locks qmu */
    size_t qbytes;        /* @locks qmu; queued or being written, callbacks not yet run */
    bool closing;         /* @locks qmu */
    pthread_t writer;
    bool writer_started;

    /* @thread writer only (and open, before the writer starts). */
    pstate *ps;
    pstate *scratch;
    MDB_cursor **curs;
    uint64_t total_bytes;
    unsigned rr;
    int64_t next_housekeeping_ns;
    int64_t next_reader_check_ns;

    /* Stats, readable from any thread without a lock or a transaction. */
    _Atomic uint64_t st_records;
    _Atomic uint64_t st_bytes;
    _Atomic uint64_t st_appended;
    _Atomic uint64_t st_commits;
    _Atomic uint64_t st_pending;
    atomic_bool st_healthy;
    /* Non-producer handles refresh records/bytes from meta at most once a second. */
    pthread_mutex_t smu;
    int64_t stats_read_ns; /* @locks smu */
} emb_log;

static const sl__log_backend embedded_backend;

/* ---- small helpers ---- */

sl_err sl__log_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return SL_OK;
    case MDB_MAP_FULL:
    case MDB_BAD_VALSIZE:
        return SL_ERR_TOO_LARGE;
    case MDB_NOTFOUND:
        return SL_ERR_NOT_FOUND;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return SL_ERR_CORRUPT;
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case EBUSY:
    case EAGAIN:
        return SL_ERR_BUSY;
    case ENOMEM:
        return SL_ERR_NOMEM;
    case EACCES:
    case EPERM:
        return SL_ERR_CONFIG;
    default:
        return SL_ERR_IO;
    }
}

size_t sl__log_group_key(char out[SL__LOG_GROUP_KEY_MAX], const char *group, unsigned partition)
{
    int n = snprintf(out, SL__LOG_GROUP_KEY_MAX, "group/%s/%u", group, partition);
    return n < 0 ? 0 : (size_t)n;
}

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

sl_err sl__log_lock_file(const char *dir, const char *name, int *fd_out)
{
    *fd_out = -1;
    char *path = path_join(dir, name);
    if (!path)
        return SL_ERR_NOMEM;
    sl_err err = SL_OK;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = sl__log_mdb_err(errno);
        goto out;
    }
    /* flock locks belong to the open file description, so a second open in this very
     * process conflicts too: that is what makes the BUSY checks hold within a process. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? SL_ERR_BUSY : SL_ERR_IO;
        close(fd);
        goto out;
    }
    *fd_out = fd;
out:
    free(path);
    return err;
}

static int64_t now_ms(void)
{
    return sl_time_now_us() / 1000;
}

/* An absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait. */
static struct timespec mono_deadline(int64_t wait_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + wait_ns % 1000000000ll;
    ts.tv_sec += (time_t)(wait_ns / 1000000000ll + ns / 1000000000ll);
    ts.tv_nsec = (long)(ns % 1000000000ll);
    return ts;
}

static sl_err init_mono_cond(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return SL_ERR_NOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? SL_OK : SL_ERR_NOMEM;
}

/* mkdir -p with mode 0700 for what it creates. */
static sl_err make_dirs(const char *dir, char *errbuf, size_t errlen)
{
    size_t len = strlen(dir);
    char *p = malloc(len + 1);
    if (!p)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                             dir, "out of memory");
    memcpy(p, dir, len + 1);
    sl_err err = SL_OK;
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            err = sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(errno),
                                "could not open log \"%s\": could not create \"%s\": %s", dir,
                                p, strerror(errno));
            goto out;
        }
        p[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                            "could not open log \"%s\": not a directory", dir);
out:
    free(p);
    return err;
}

/* ---- the environment registry (invariant 6) ---- */

static pthread_mutex_t envs_mu = PTHREAD_MUTEX_INITIALIZER;
static sl__log_env *envs; /* @locks envs_mu */

static void env_destroy(sl__log_env *le)
{
    if (!le)
        return;
    if (le->env)
        mdb_env_close(le->env);
    pthread_mutex_destroy(&le->mu);
    pthread_cond_destroy(&le->cond);
    free(le->part);
    free(le->dir);
    free(le);
}

/* Reads or creates the meta DB and the partition DBs in one write transaction, so two
 * processes creating the same log at once agree on its partition count. */
static sl_err env_init_dbs(sl__log_env *le, unsigned want_parts, char *errbuf, size_t errlen)
{
    MDB_txn *txn = NULL;
    sl_err err = SL_OK;
    int rc = mdb_txn_begin(le->env, NULL, 0, &txn);
    if (rc)
        goto mdb_fail;
    rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &le->meta);
    if (rc)
        goto mdb_fail;

    MDB_val k = {sizeof META_FORMAT - 1, (void *)META_FORMAT}, v;
    rc = mdb_get(txn, le->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        uint32_t fmt = FORMAT_VERSION;
        v = (MDB_val){sizeof fmt, &fmt};
        rc = mdb_put(txn, le->meta, &k, &v, 0);
        if (rc)
            goto mdb_fail;
    } else if (rc) {
        goto mdb_fail;
    } else {
        uint32_t fmt = 0;
        if (v.mv_size == sizeof fmt)
            memcpy(&fmt, v.mv_data, sizeof fmt);
        if (fmt != FORMAT_VERSION) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                                "could not open log \"%s\": unknown format version %" PRIu32,
                                le->dir, fmt);
            goto out;
        }
    }

    k = (MDB_val){sizeof META_PARTITIONS - 1, (void *)META_PARTITIONS};
    rc = mdb_get(txn, le->meta, &k, &v);
    uint32_t parts = 0;
    if (rc == MDB_NOTFOUND) {
        parts = want_parts;
        v = (MDB_val){sizeof parts, &parts};
        rc = mdb_put(txn, le->meta, &k, &v, 0);
        if (rc)
            goto mdb_fail;
    } else if (rc) {
        goto mdb_fail;
    } else {
        if (v.mv_size == sizeof parts)
            memcpy(&parts, v.mv_data, sizeof parts);
        if (parts < 1 || parts > SL__LOG_MAX_PARTITIONS) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                "could not open log \"%s\": stored partition count is corrupt",
                                le->dir);
            goto out;
        }
        if (parts != want_parts)
            sl_diag(SL_DIAG_INFO, "log keeps its stored partition count",
                    "dir=\"%s\" partitions=%" PRIu32 " requested=%u", le->dir, parts,
                    want_parts);
    }

    le->part = calloc(parts, sizeof *le->part);
    if (!le->part) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                            le->dir, "out of memory");
        goto out;
    }
    for (uint32_t p = 0; p < parts; p++) {
        char name[16];
        snprintf(name, sizeof name, "p%" PRIu32, p);
        rc = mdb_dbi_open(txn, name, MDB_CREATE | MDB_INTEGERKEY, &le->part[p]);
        if (rc)
            goto mdb_fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto mdb_fail;
    le->partitions = parts;
    goto out;

mdb_fail:
    err = sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(rc), "could not open log \"%s\": %s",
                        le->dir, mdb_strerror(rc));
out:
    if (txn)
        mdb_txn_abort(txn);
    return err;
}

static sl_err env_acquire(const char *dir, const sl_log_options *opts, sl__log_env **out,
                          char *errbuf, size_t errlen)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0)
        return sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(errno),
                             "could not open log \"%s\": %s", dir, strerror(errno));
    sl_err err = SL_OK;
    sl__log_env *le = NULL;
    pthread_mutex_lock(&envs_mu);
    for (sl__log_env *it = envs; it; it = it->next) {
        if (it->dev == st.st_dev && it->ino == st.st_ino) {
            it->refs++;
            *out = it;
            goto out;
        }
    }
    le = calloc(1, sizeof *le);
    if (!le || !(le->dir = strdup(dir))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                            dir, "out of memory");
        goto out;
    }
    le->dev = st.st_dev;
    le->ino = st.st_ino;
    pthread_mutex_init(&le->mu, NULL);
    if (init_mono_cond(&le->cond) != SL_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                            dir, "out of memory");
        goto out;
    }
    int rc = mdb_env_create(&le->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(le->env, SL__LOG_MAX_PARTITIONS + 1);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(le->env, MAX_READERS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(le->env, (size_t)opts->max_size_bytes);
    /* MDB_NOTLS: a consumer's read transaction is reset and renewed across polls, possibly
     * from different threads, and one thread may read through several handles. Never
     * MDB_NOSYNC or MDB_NOMETASYNC: acknowledged means fsynced (invariant 1). */
    if (rc == 0)
        rc = mdb_env_open(le->env, dir, MDB_NOTLS, 0600);
    if (rc) {
        err = sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(rc), "could not open log \"%s\": %s",
                            dir, mdb_strerror(rc));
        goto out;
    }
    int dead = 0;
    mdb_reader_check(le->env, &dead);
    err = env_init_dbs(le, opts->partitions, errbuf, errlen);
    if (err)
        goto out;
    le->refs = 1;
    le->next = envs;
    envs = le;
    *out = le;
    le = NULL;
out:
    pthread_mutex_unlock(&envs_mu);
    env_destroy(le);
    return err;
}

static void env_release(sl__log_env *le)
{
    if (!le)
        return;
    pthread_mutex_lock(&envs_mu);
    bool last = --le->refs == 0;
    if (last) {
        for (sl__log_env **pp = &envs; *pp; pp = &(*pp)->next) {
            if (*pp == le) {
                *pp = le->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&envs_mu);
    if (last)
        env_destroy(le);
}

sl__log_env *sl__log_emb_env(sl_log_t *log)
{
    return ((emb_log *)log)->le;
}

/* ---- writer state ---- */

static void meta_part_key(char out[32], unsigned p, MDB_val *k)
{
    int n = snprintf(out, 32, "partition/%u", p);
    k->mv_size = n < 0 ? 0 : (size_t)n;
    k->mv_data = out;
}

/* The append time of a stored record; INT64_MIN for one too short to hold a header, so
 * retention removes it first. */
static int64_t record_ts(const MDB_val *v)
{
    int64_t ts = INT64_MIN;
    if (v->mv_size >= SL__LOG_REC_HDR)
        memcpy(&ts, v->mv_data, sizeof ts);
    return ts;
}

static uint64_t record_bytes(const MDB_val *v)
{
    return v->mv_size >= SL__LOG_REC_HDR ? v->mv_size - SL__LOG_REC_HDR : 0;
}

/* Loads every partition's committed state. Repairs (with a warning) meta that disagrees
 * with the records, so that offsets are never reused (invariant 2) and stats stay true.
 * @thread open, before the writer starts. */
static sl_err load_state(emb_log *lg, char *errbuf, size_t errlen)
{
    sl__log_env *le = lg->le;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    sl_err err = SL_OK;
    int rc = mdb_txn_begin(le->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        goto mdb_fail;
    lg->total_bytes = 0;
    for (unsigned p = 0; p < le->partitions; p++) {
        pstate *ps = &lg->ps[p];
        *ps = (pstate){.first_ts = INT64_MAX};
        char kb[32];
        MDB_val k, v;
        meta_part_key(kb, p, &k);
        rc = mdb_get(txn, le->meta, &k, &v);
        if (rc == 0 && v.mv_size == sizeof(pmeta)) {
            pmeta pm;
            memcpy(&pm, v.mv_data, sizeof pm);
            ps->next = pm.next;
            ps->records = pm.records;
            ps->bytes = pm.bytes;
        } else if (rc == 0) {
            sl_diag(SL_DIAG_WARN, "log partition meta is corrupt, rebuilding it",
                    "dir=\"%s\" partition=%u", le->dir, p);
        } else if (rc != MDB_NOTFOUND) {
            goto mdb_fail;
        }
        rc = mdb_cursor_open(txn, le->part[p], &cur);
        if (rc)
            goto mdb_fail;
        MDB_val ck, cv;
        rc = mdb_cursor_get(cur, &ck, &cv, MDB_LAST);
        if (rc == 0) {
            uint64_t last = 0;
            if (ck.mv_size != sizeof last) {
                err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                    "could not open log \"%s\": partition %u has a key of %zu "
                                    "bytes",
                                    le->dir, p, ck.mv_size);
                goto out;
            }
            memcpy(&last, ck.mv_data, sizeof last);
            if (ps->next <= last) {
                sl_diag(SL_DIAG_WARN, "log next offset behind its records, moving it",
                        "dir=\"%s\" partition=%u next=%" PRIu64 " last=%" PRIu64, le->dir, p,
                        ps->next, last);
                ps->next = last + 1;
            }
            rc = mdb_cursor_get(cur, &ck, &cv, MDB_FIRST);
            if (rc)
                goto mdb_fail;
            ps->first_ts = record_ts(&cv);
        } else if (rc != MDB_NOTFOUND) {
            goto mdb_fail;
        }
        MDB_stat ms;
        rc = mdb_stat(txn, le->part[p], &ms);
        if (rc)
            goto mdb_fail;
        if (ms.ms_entries != ps->records) {
            /* Only reachable after outside damage: recount rather than trust either. */
            uint64_t bytes = 0;
            for (rc = mdb_cursor_get(cur, &ck, &cv, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT))
                bytes += record_bytes(&cv);
            if (rc != MDB_NOTFOUND)
                goto mdb_fail;
            sl_diag(SL_DIAG_WARN, "log partition counts disagree with its records, recounted",
                    "dir=\"%s\" partition=%u meta_records=%" PRIu64 " records=%zu", le->dir,
                    p, ps->records, ms.ms_entries);
            ps->records = ms.ms_entries;
            ps->bytes = bytes;
        }
        mdb_cursor_close(cur);
        cur = NULL;
        lg->total_bytes += ps->bytes;
    }
    goto out;
mdb_fail:
    err = sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(rc), "could not open log \"%s\": %s",
                        le->dir, mdb_strerror(rc));
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return err;
}

static void publish_stats(emb_log *lg)
{
    uint64_t records = 0;
    for (unsigned p = 0; p < lg->le->partitions; p++)
        records += lg->ps[p].records;
    atomic_store(&lg->st_records, records);
    atomic_store(&lg->st_bytes, lg->total_bytes);
}

/* ---- the writer thread ---- */

/* The cursor of partition p in the current write transaction (closed by LMDB when the
 * transaction ends). @thread writer */
static int part_cursor(emb_log *lg, MDB_txn *txn, unsigned p, MDB_cursor **out)
{
    if (!lg->curs[p]) {
        int rc = mdb_cursor_open(txn, lg->le->part[p], &lg->curs[p]);
        if (rc)
            return rc;
    }
    *out = lg->curs[p];
    return 0;
}

/* Deletes the oldest record of partition p, keeping scratch counts true (invariant 3).
 * @thread writer */
static int delete_oldest(emb_log *lg, MDB_txn *txn, unsigned p, bool *touched)
{
    MDB_cursor *cur;
    int rc = part_cursor(lg, txn, p, &cur);
    if (rc)
        return rc;
    pstate *ps = &lg->scratch[p];
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == MDB_NOTFOUND) {
        ps->records = 0;
        lg->total_bytes -= ps->bytes;
        ps->bytes = 0;
        ps->first_ts = INT64_MAX;
        touched[p] = true;
        return 0;
    }
    if (rc)
        return rc;
    uint64_t b = record_bytes(&v);
    rc = mdb_cursor_del(cur, 0);
    if (rc)
        return rc;
    if (b > ps->bytes)
        b = ps->bytes;
    ps->bytes -= b;
    lg->total_bytes -= b;
    if (ps->records)
        ps->records--;
    touched[p] = true;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == MDB_NOTFOUND) {
        ps->first_ts = INT64_MAX;
        /* Nothing left: whatever the counters say, it is zero (repairs drift). */
        lg->total_bytes -= ps->bytes;
        ps->bytes = 0;
        ps->records = 0;
        return 0;
    }
    if (rc)
        return rc;
    ps->first_ts = record_ts(&v);
    return 0;
}

/* Whether retention has anything to delete, from cached state only. @thread writer */
static bool retention_due(emb_log *lg, const pstate *ps, int64_t now)
{
    if (lg->retention_bytes && lg->total_bytes > lg->retention_bytes)
        return true;
    if (lg->retention_ms) {
        int64_t cutoff = now - (int64_t)lg->retention_ms;
        for (unsigned p = 0; p < lg->le->partitions; p++) {
            if (ps[p].records && ps[p].first_ts < cutoff)
                return true;
        }
    }
    return false;
}

/* Deletes records past their age, then the oldest records of the whole log (by append
 * time, across partitions) until it fits retention_bytes with `incoming` more bytes. Runs
 * before the batch is written, so the log never holds more than the limit, and pages freed
 * by earlier transactions' deletions are what the batch reuses. @thread writer */
static int enforce_retention(emb_log *lg, MDB_txn *txn, int64_t now, uint64_t incoming,
                             bool *touched)
{
    unsigned parts = lg->le->partitions;
    pstate *ps = lg->scratch;
    int rc;
    if (lg->retention_ms) {
        int64_t cutoff = now - (int64_t)lg->retention_ms;
        for (unsigned p = 0; p < parts; p++) {
            while (ps[p].records && ps[p].first_ts < cutoff) {
                rc = delete_oldest(lg, txn, p, touched);
                if (rc)
                    return rc;
            }
        }
    }
    while (lg->retention_bytes && lg->total_bytes + incoming > lg->retention_bytes) {
        /* The partition with the oldest first record (ties: the bigger one, so records of
         * one millisecond do not drain a single partition), and the runner-up's time: the
         * victim loses records until it is no longer the oldest, without a rescan each. */
        unsigned victim = parts;
        int64_t runner_up = INT64_MAX;
        for (unsigned p = 0; p < parts; p++) {
            if (!ps[p].records)
                continue;
            if (victim == parts || ps[p].first_ts < ps[victim].first_ts ||
                (ps[p].first_ts == ps[victim].first_ts && ps[p].bytes > ps[victim].bytes)) {
                if (victim != parts && ps[victim].first_ts < runner_up)
                    runner_up = ps[victim].first_ts;
                victim = p;
            } else if (ps[p].first_ts < runner_up) {
                runner_up = ps[p].first_ts;
            }
        }
        if (victim == parts)
            break; /* counters say bytes but no records remain: nothing to delete */
        do {
            rc = delete_oldest(lg, txn, victim, touched);
            if (rc)
                return rc;
        } while (lg->total_bytes + incoming > lg->retention_bytes && ps[victim].records &&
                 ps[victim].first_ts < runner_up);
    }
    return 0;
}

/* Stores one unit's records with MDB_APPEND (keys only grow, so pages fill completely and
 * no search is needed) and MDB_RESERVE (the value is written in place, once).
 * @thread writer */
static int write_unit(emb_log *lg, MDB_txn *txn, const wunit *u, int64_t ts, bool *touched)
{
    unsigned parts = lg->le->partitions;
    for (size_t i = 0; i < u->n; i++) {
        const wrec *r = &u->recs[i];
        unsigned p = r->key ? sl_log_partition_for_key(r->key, r->key_len, parts)
                            : lg->rr++ % parts;
        pstate *ps = &lg->scratch[p];
        MDB_cursor *cur;
        int rc = part_cursor(lg, txn, p, &cur);
        if (rc)
            return rc;
        uint64_t off = ps->next;
        MDB_val k = {sizeof off, &off};
        MDB_val v = {SL__LOG_REC_HDR + r->key_len + r->value_len, NULL};
        rc = mdb_cursor_put(cur, &k, &v, MDB_RESERVE | MDB_APPEND);
        if (rc)
            return rc;
        char *d = v.mv_data;
        memcpy(d, &ts, sizeof ts);
        memcpy(d + 8, &r->key_len, sizeof r->key_len);
        if (r->key_len)
            memcpy(d + SL__LOG_REC_HDR, r->key, r->key_len);
        if (r->value_len)
            memcpy(d + SL__LOG_REC_HDR + r->key_len, r->value, r->value_len);
        ps->next++;
        ps->records++;
        ps->bytes += r->key_len + r->value_len;
        lg->total_bytes += r->key_len + r->value_len;
        if (ps->first_ts == INT64_MAX)
            ps->first_ts = ts;
        touched[p] = true;
    }
    return 0;
}

/* One write transaction: the units (may be none: retention only), retention, meta, one
 * commit; then every unit's callback. @thread writer */
static void commit_batch(emb_log *lg, wunit *units, bool *touched)
{
    sl__log_env *le = lg->le;
    unsigned parts = le->partitions;
    uint64_t saved_total = lg->total_bytes;
    uint64_t nrecs = 0;
    MDB_txn *txn = NULL;
    int64_t now = now_ms();
    memcpy(lg->scratch, lg->ps, parts * sizeof *lg->scratch);
    memset(touched, 0, parts * sizeof *touched);
    memset(lg->curs, 0, parts * sizeof *lg->curs);

    int rc = mdb_txn_begin(le->env, NULL, 0, &txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map: adopt its size and retry once. */
        mdb_env_set_mapsize(le->env, 0);
        rc = mdb_txn_begin(le->env, NULL, 0, &txn);
    }
    if (rc) {
        txn = NULL;
        goto done;
    }
    uint64_t incoming = 0;
    for (wunit *u = units; u; u = u->next)
        incoming += u->size - sizeof(wunit) - u->n * sizeof(wrec);
    rc = enforce_retention(lg, txn, now, incoming, touched);
    if (rc)
        goto done;
    for (wunit *u = units; u; u = u->next) {
        rc = write_unit(lg, txn, u, now, touched);
        if (rc)
            goto done;
        nrecs += u->n;
    }
    for (unsigned p = 0; p < parts; p++) {
        if (!touched[p])
            continue;
        char kb[32];
        MDB_val k;
        meta_part_key(kb, p, &k);
        pmeta pm = {lg->scratch[p].next, lg->scratch[p].records, lg->scratch[p].bytes};
        MDB_val v = {sizeof pm, &pm};
        rc = mdb_put(txn, le->meta, &k, &v, 0);
        if (rc)
            goto done;
    }
    rc = mdb_txn_commit(txn); /* fsyncs (invariant 1) */
    txn = NULL;

done:
    if (txn)
        mdb_txn_abort(txn);
    char detail[512] = "";
    sl_err err = SL_OK;
    if (rc == 0) {
        memcpy(lg->ps, lg->scratch, parts * sizeof *lg->ps);
        publish_stats(lg);
        atomic_fetch_add(&lg->st_commits, 1);
        atomic_fetch_add(&lg->st_appended, nrecs);
        atomic_store(&lg->st_healthy, true);
        if (units) {
            pthread_mutex_lock(&le->mu);
            le->commit_seq++;
            pthread_cond_broadcast(&le->cond);
            pthread_mutex_unlock(&le->mu);
        }
    } else {
        lg->total_bytes = saved_total; /* invariant 4: nothing half-applied */
        err = sl__log_mdb_err(rc);
        if (rc == MDB_MAP_FULL)
            snprintf(detail, sizeof detail,
                     "log \"%s\" is full (max_size_bytes %" PRIu64 "): %s", le->dir,
                     lg->max_size_bytes, mdb_strerror(rc));
        else
            snprintf(detail, sizeof detail, "could not commit to log \"%s\": %s", le->dir,
                     mdb_strerror(rc));
        if (err == SL_ERR_NOT_FOUND || err == SL_ERR_CONFIG || err == SL_ERR_BUSY)
            err = SL_ERR_IO; /* to a producer, any of these is a failed write */
        if (atomic_exchange(&lg->st_healthy, false))
            sl_diag(SL_DIAG_ERROR, "log commit failed", "dir=\"%s\" error=\"%s\"", le->dir,
                    mdb_strerror(rc));
    }

    size_t freed = 0;
    for (wunit *u = units; u; u = u->next)
        freed += u->size;
    if (freed) {
        pthread_mutex_lock(&lg->qmu);
        lg->qbytes -= freed;
        atomic_store(&lg->st_pending, lg->qbytes);
        pthread_mutex_unlock(&lg->qmu);
    }
    while (units) {
        wunit *next = units->next;
        units->cb(units->opaque, err, err ? detail : NULL);
        free(units);
        units = next;
    }
}

static void housekeeping(emb_log *lg, bool *touched)
{
    int64_t mono = sl_time_mono_ns();
    if (mono < lg->next_housekeeping_ns)
        return;
    lg->next_housekeeping_ns = mono + HOUSEKEEPING_NS;
    if (retention_due(lg, lg->ps, now_ms()))
        commit_batch(lg, NULL, touched);
    if (mono >= lg->next_reader_check_ns) {
        lg->next_reader_check_ns = mono + READER_CHECK_NS;
        int dead = 0;
        mdb_reader_check(lg->le->env, &dead);
        if (dead)
            sl_diag(SL_DIAG_INFO, "log cleared stale readers", "dir=\"%s\" readers=%d",
                    lg->le->dir, dead);
    }
}

/* Unlinks the queued units that go into one transaction: all of them, unless they add up
 * to more than txn_budget (then as many as fit, at least one), so that one huge backlog
 * cannot overflow a small map in a single transaction. @locks qmu */
static wunit *take_batch(emb_log *lg)
{
    wunit *head = lg->qhead, *last = head;
    if (!head)
        return NULL;
    size_t bytes = head->size;
    while (last->next && bytes + last->next->size <= lg->txn_budget) {
        last = last->next;
        bytes += last->size;
    }
    lg->qhead = last->next;
    if (!lg->qhead)
        lg->qtail = NULL;
    last->next = NULL;
    return head;
}

/* Takes everything queued, commits it as one group, repeats; checks retention at least
 * once a second, busy or idle; drains the queue on close (invariant 7).
 * @thread the log's writer */
static void *writer_main(void *arg)
{
    emb_log *lg = arg;
    bool *touched = calloc(lg->le->partitions, sizeof *touched);
    for (;;) {
        pthread_mutex_lock(&lg->qmu);
        if (!lg->qhead && !lg->closing) {
            struct timespec dl = mono_deadline(HOUSEKEEPING_NS);
            pthread_cond_timedwait(&lg->qcond, &lg->qmu, &dl);
        }
        wunit *units = take_batch(lg);
        bool stop = lg->closing && !units;
        pthread_mutex_unlock(&lg->qmu);
        if (stop)
            break;
        if (!touched) {
            /* Could not get 1 KiB at start: fail units rather than lose callbacks. */
            touched = calloc(lg->le->partitions, sizeof *touched);
            if (!touched) {
                size_t freed = 0;
                while (units) {
                    wunit *next = units->next;
                    freed += units->size;
                    units->cb(units->opaque, SL_ERR_NOMEM, "log writer is out of memory");
                    free(units);
                    units = next;
                }
                pthread_mutex_lock(&lg->qmu);
                lg->qbytes -= freed;
                atomic_store(&lg->st_pending, lg->qbytes);
                pthread_mutex_unlock(&lg->qmu);
                continue;
            }
        }
        if (units)
            commit_batch(lg, units, touched);
        housekeeping(lg, touched);
    }
    free(touched);
    return NULL;
}

/* ---- open, append, close ---- */

static void emb_free(emb_log *lg)
{
    if (!lg)
        return;
    if (lg->producer) {
        pthread_mutex_destroy(&lg->qmu);
        pthread_cond_destroy(&lg->qcond);
    }
    pthread_mutex_destroy(&lg->smu);
    env_release(lg->le);
    if (lg->lock_fd >= 0)
        close(lg->lock_fd); /* releases the writer lock */
    free(lg->ps);
    free(lg->scratch);
    free(lg->curs);
    free(lg);
}

sl_err sl__log_embedded_open(const char *dir, const sl_log_options *opts, sl_log_t **out,
                             char *errbuf, size_t errlen)
{
    *out = NULL;
    sl_err err = make_dirs(dir, errbuf, errlen);
    if (err)
        return err;
    emb_log *lg = calloc(1, sizeof *lg);
    if (!lg)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                             dir, "out of memory");
    lg->base.be = &embedded_backend;
    lg->lock_fd = -1;
    lg->max_pending_bytes = opts->max_pending_bytes;
    lg->max_size_bytes = opts->max_size_bytes;
    lg->retention_ms = opts->retention_ms;
    lg->retention_bytes = opts->retention_bytes;
    atomic_init(&lg->st_healthy, true);
    pthread_mutex_init(&lg->smu, NULL);

    /* The writer lock comes before LMDB, so a refused producer never touches the env. */
    if (opts->producer) {
        err = sl__log_lock_file(dir, "writer.lock", &lg->lock_fd);
        if (err == SL_ERR_BUSY) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_BUSY,
                                "log \"%s\" is already open for writing by another process",
                                dir);
            goto fail;
        }
        if (err) {
            err = sl_errbuf_set(errbuf, errlen, err,
                                "could not open log \"%s\": could not lock writer.lock: %s",
                                dir, strerror(errno));
            goto fail;
        }
    }
    err = env_acquire(dir, opts, &lg->le, errbuf, errlen);
    if (err)
        goto fail;
    if (!opts->producer) {
        atomic_store(&lg->st_healthy, true);
        *out = &lg->base;
        return SL_OK;
    }

    /* LMDB needs free pages for copy-on-write and per-page overhead: retention may use
     * only about half of the map. */
    uint64_t half = opts->max_size_bytes / 2;
    if (lg->retention_bytes > half) {
        sl_diag(SL_DIAG_WARN, "log retention_bytes clamped to half of max_size_bytes",
                "dir=\"%s\" retention_bytes=%" PRIu64 " max_size_bytes=%" PRIu64
                " clamped=%" PRIu64,
                dir, lg->retention_bytes, opts->max_size_bytes, half);
        lg->retention_bytes = half;
    }
    /* An eighth of the map leaves room for the copy-on-write of a batch. Past ~8 MiB a
     * bigger transaction only costs: its dirty pages fall out of the CPU caches before
     * the commit writes them (bench/log_append: 8 MiB ~640k records/s, 64 MiB ~520k). */
    uint64_t budget = opts->max_size_bytes / 8;
    lg->txn_budget = budget > TXN_BUDGET_MAX ? TXN_BUDGET_MAX : (size_t)budget;
    unsigned parts = lg->le->partitions;
    lg->ps = calloc(parts, sizeof *lg->ps);
    lg->scratch = calloc(parts, sizeof *lg->scratch);
    lg->curs = calloc(parts, sizeof *lg->curs);
    if (!lg->ps || !lg->scratch || !lg->curs) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                            dir, "out of memory");
        goto fail;
    }
    err = load_state(lg, errbuf, errlen);
    if (err)
        goto fail;
    publish_stats(lg);
    lg->producer = true;
    pthread_mutex_init(&lg->qmu, NULL);
    if (init_mono_cond(&lg->qcond) != SL_OK) {
        pthread_mutex_destroy(&lg->qmu);
        lg->producer = false;
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                            dir, "out of memory");
        goto fail;
    }
    /* Retention that is already due (say, a lowered limit) runs on the writer's first
     * pass rather than delaying open. */
    lg->next_housekeeping_ns = 0;
    lg->next_reader_check_ns = sl_time_mono_ns() + READER_CHECK_NS;
    if (pthread_create(&lg->writer, NULL, writer_main, lg) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                            "could not open log \"%s\": could not start its writer thread", dir);
        goto fail;
    }
    lg->writer_started = true;
    pthread_mutex_lock(&lg->le->mu);
    lg->le->writers++;
    pthread_mutex_unlock(&lg->le->mu);
    sl_diag(SL_DIAG_DEBUG, "log open for writing",
            "dir=\"%s\" partitions=%u retention_bytes=%" PRIu64 " retention_ms=%" PRIu64, dir,
            parts, lg->retention_bytes, lg->retention_ms);
    *out = &lg->base;
    return SL_OK;
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
        pthread_cond_signal(&lg->qcond);
        pthread_mutex_unlock(&lg->qmu);
        pthread_join(lg->writer, NULL);
        pthread_mutex_lock(&lg->le->mu);
        lg->le->writers--;
        pthread_mutex_unlock(&lg->le->mu);
    }
    emb_free(lg);
}

/* @thread any @locks qmu (briefly; never across I/O) */
static sl_err emb_append(sl_log_t *log, const sl_log_record *recs, size_t n,
                         sl_log_append_cb cb, void *opaque)
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

static unsigned emb_partition_count(const sl_log_t *log)
{
    return ((const emb_log *)log)->le->partitions;
}

/* Reads retained counts from meta for a handle without a writer, at most once a second
 * (scrapes must stay cheap). @locks smu */
static void refresh_reader_stats(emb_log *lg)
{
    int64_t mono = sl_time_mono_ns();
    pthread_mutex_lock(&lg->smu);
    if (lg->stats_read_ns && mono - lg->stats_read_ns < HOUSEKEEPING_NS)
        goto out;
    lg->stats_read_ns = mono;
    MDB_txn *txn;
    if (mdb_txn_begin(lg->le->env, NULL, MDB_RDONLY, &txn) != 0)
        goto out;
    uint64_t records = 0, bytes = 0;
    for (unsigned p = 0; p < lg->le->partitions; p++) {
        char kb[32];
        MDB_val k, v;
        meta_part_key(kb, p, &k);
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
    stats->records = atomic_load(&lg->st_records);
    stats->bytes = atomic_load(&lg->st_bytes);
    stats->appended_total = atomic_load(&lg->st_appended);
    stats->commits_total = atomic_load(&lg->st_commits);
    stats->pending_bytes = atomic_load(&lg->st_pending);
    stats->healthy = atomic_load(&lg->st_healthy);
}

static const sl__log_backend embedded_backend = {
    .name = "embedded",
    .close = emb_close,
    .append = emb_append,
    .partition_count = emb_partition_count,
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
