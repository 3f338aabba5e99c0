/* The embedded log's two threads: the writer takes queued append units, logs them to the
 * WAL in one group (one fdatasync) and runs their callbacks; the applier moves durable
 * units into LMDB with retention, many groups per transaction (one LMDB commit). Also
 * loads the partition state at open. The invariants are numbered in embedded.c. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "core/diag.h"
#include "core/time.h"
#include "log/log_int.h"

#define READER_CHECK_NS   10000000000ll /* stale LMDB reader slots of dead processes */
#define UNAPPLIED_WAIT_NS 100000000ll   /* the writer re-checks closing this often */

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

/* ---- writer state ---- */

void sl__log_meta_part_key(char out[32], unsigned p, MDB_val *k)
{
    int n = snprintf(out, 32, "partition/%u", p);
    k->mv_size = n < 0 ? 0 : (size_t)n;
    k->mv_data = out;
}

/* What retention and the counts need of a stored value (single or batch): its append
 * time, records and key + value bytes. A value too short for its header, or whose count
 * its size cannot hold, reads as one record of no bytes appended at INT64_MIN, so
 * retention removes it first and counts never underflow. */
static sl__log_value_iter value_head(const MDB_val *v)
{
    sl__log_value_iter it;
    if (!sl__log_value_open(v->mv_data, v->mv_size, &it))
        it = (sl__log_value_iter){.ts = INT64_MIN, .count = 1};
    return it;
}

/* Loads every partition's committed state. Repairs (with a warning) meta that disagrees
 * with the records, so that offsets are never reused (invariant 2) and stats stay true.
 * @thread open, before the writer starts. */
sl_err sl__log_emb_load_state(emb_log *lg, char *errbuf, size_t errlen)
{
    sl__log_env *le = lg->le;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    sl_err err = SL_OK;
    int rc = mdb_txn_begin(le->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        goto mdb_fail;
    lg->total_bytes = 0;
    unsigned p = 0;
    size_t key_size = 0;
    for (p = 0; p < le->partitions; p++) {
        pstate *ps = &lg->ps[p];
        *ps = (pstate){.first_ts = INT64_MAX};
        char kb[32];
        MDB_val k, v;
        sl__log_meta_part_key(kb, p, &k);
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
        uint64_t first = 0, end = 0; /* the stored offsets: [first, end) */
        rc = mdb_cursor_get(cur, &ck, &cv, MDB_LAST);
        if (rc == 0) {
            key_size = ck.mv_size;
            if (key_size != sizeof end)
                goto bad_key;
            memcpy(&end, ck.mv_data, sizeof end);
            end += value_head(&cv).count;
            if (ps->next < end) {
                sl_diag(SL_DIAG_WARN, "log next offset behind its records, moving it",
                        "dir=\"%s\" partition=%u next=%" PRIu64 " last=%" PRIu64, le->dir, p,
                        ps->next, end - 1);
                ps->next = end;
            }
            rc = mdb_cursor_get(cur, &ck, &cv, MDB_FIRST);
            if (rc)
                goto mdb_fail;
            key_size = ck.mv_size;
            if (key_size != sizeof first)
                goto bad_key;
            memcpy(&first, ck.mv_data, sizeof first);
            ps->first_ts = value_head(&cv).ts;
        } else if (rc != MDB_NOTFOUND) {
            goto mdb_fail;
        }
        MDB_stat ms;
        rc = mdb_stat(txn, le->part[p], &ms);
        if (rc)
            goto mdb_fail;
        /* Every value holds at least one record and offsets are consecutive, so the count
         * lies between the values and the span of offsets (equal to both in a log of
         * single values); outside that, meta was damaged from outside: recount rather
         * than trust either. */
        if (ps->records < ms.ms_entries || ps->records > end - first) {
            uint64_t records = 0, bytes = 0;
            for (rc = mdb_cursor_get(cur, &ck, &cv, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT)) {
                sl__log_value_iter it = value_head(&cv);
                records += it.count;
                bytes += it.bytes;
            }
            if (rc != MDB_NOTFOUND)
                goto mdb_fail;
            sl_diag(SL_DIAG_WARN, "log partition counts disagree with its records, recounted",
                    "dir=\"%s\" partition=%u meta_records=%" PRIu64 " records=%" PRIu64, le->dir, p,
                    ps->records, records);
            ps->records = records;
            ps->bytes = bytes;
        }
        mdb_cursor_close(cur);
        cur = NULL;
        lg->total_bytes += ps->bytes;
    }
    goto out;
bad_key:
    err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                        "could not open log \"%s\": partition %u has a key of %zu bytes", le->dir,
                        p, key_size);
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

void sl__log_emb_publish_stats(emb_log *lg)
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

/* LMDB reads pages through its read-only shared map, and copy-on-write reads the old
 * version of every page it rewrites, so over time the whole written file becomes mapped
 * into this process and counts in its RSS, though it is only page cache. Dropping the
 * mappings (not the cached data: the map is file-backed and LMDB writes with pwrite, so
 * no mapped page is dirty) keeps RSS to what the process really holds; a later read
 * faults the page back from the cache. Done each second (housekeeping) and whenever the
 * thread that applies has taken TRIM_EVERY_FAULTS page faults since its last trim: checked
 * after every apply, and within one after every FAULT_CHECK_BYTES of values retention
 * deleted (it reads each one's head, and LMDB its overflow pages; checking after each
 * value cost single events at retention a getrusage per record, 22,000 a second). Faults,
 * not bytes, decide the trim because one fault maps a whole large folio of the page cache
 * (up to 1 MiB seen on this kernel), so the bytes read say little of what got mapped:
 * trimming after 8 MiB of values stored or deleted left batch runs at
 * a peak RSS of 90-134 MB, after 32 faults at 51-64 MB, at the same throughput and CPU
 * (docs/benchmarks.md, 2026-12-08). @locks apply_mu */
#define TRIM_EVERY_FAULTS 32
#define FAULT_CHECK_BYTES ((size_t)256 << 10)

/* Minor page faults of the calling thread (mapping a cached page is one). */
static long thread_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_minflt : 0;
}

/* The calling thread's fault count at its last trim, and the bytes of values it deleted
 * since it last looked at its faults (the writer and the applier apply). */
static _Thread_local long tl_faults_at_trim;
static _Thread_local size_t tl_deleted_unchecked;

static void release_mapped_pages(emb_log *lg)
{
    /* LMDB reports its map's address only for MDB_FIXEDMAP, so find data.mdb's mapping. */
    if (!lg->map_addr && !lg->map_lookup_failed) {
        char path[PATH_MAX + 16], line[PATH_MAX + 128];
        FILE *f = fopen("/proc/self/maps", "r");
        lg->map_lookup_failed = true;
        if (f && realpath(lg->le->dir, path)) {
            size_t n = strlen(path);
            snprintf(path + n, sizeof path - n, "/data.mdb");
            while (fgets(line, sizeof line, f)) {
                unsigned long lo, hi;
                char *file = strchr(line, '/');
                if (!file || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
                    continue;
                file[strcspn(file, "\n")] = '\0';
                if (strcmp(file, path) == 0 && hi - lo > lg->map_len) {
                    lg->map_addr = (void *)lo;
                    lg->map_len = hi - lo;
                    lg->map_lookup_failed = false;
                }
            }
        }
        if (f)
            fclose(f);
    }
    if (lg->map_addr)
        madvise(lg->map_addr, lg->map_len, MADV_DONTNEED);
    tl_faults_at_trim = thread_faults();
}

static void trim_if_due(emb_log *lg)
{
    tl_deleted_unchecked = 0;
    if (thread_faults() - tl_faults_at_trim >= TRIM_EVERY_FAULTS)
        release_mapped_pages(lg);
}

/* Deletes partition p's oldest value (a record, or a batch of them: retention deletes
 * whole values), then the next ones while they were appended before
 * `before_ts` and, when `incoming` is not NULL, the log does not yet fit retention_bytes
 * with *incoming more bytes; keeps scratch counts true (invariant 3). One cursor walk: after
 * a delete LMDB leaves the cursor on the next record, so no record costs a search from the
 * root. @thread writer */
static int delete_oldest(emb_log *lg, MDB_txn *txn, unsigned p, int64_t before_ts,
                         const uint64_t *incoming, bool *touched)
{
    pstate *ps = &lg->scratch[p];
    MDB_cursor *cur;
    int rc = part_cursor(lg, txn, p, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        sl__log_value_iter it = value_head(&v);
        uint64_t b = it.bytes;
        tl_deleted_unchecked += v.mv_size;
        rc = mdb_cursor_del(cur, 0);
        if (tl_deleted_unchecked >= FAULT_CHECK_BYTES)
            trim_if_due(lg);
        if (rc)
            return rc;
        if (b > ps->bytes)
            b = ps->bytes;
        ps->bytes -= b;
        lg->total_bytes -= b;
        ps->records -= it.count < ps->records ? it.count : ps->records;
        touched[p] = true;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (rc)
            break;
        ps->first_ts = value_head(&v).ts;
        if (ps->first_ts >= before_ts ||
            (incoming && lg->total_bytes + *incoming <= lg->retention_bytes))
            return 0;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    /* Nothing left: whatever the counters say, it is zero (repairs drift). */
    ps->first_ts = INT64_MAX;
    lg->total_bytes -= ps->bytes;
    ps->bytes = 0;
    ps->records = 0;
    touched[p] = true;
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
 * by earlier transactions' deletions are what the batch reuses. @thread applier */
static int enforce_retention(emb_log *lg, MDB_txn *txn, int64_t now, uint64_t incoming,
                             bool *touched)
{
    unsigned parts = lg->le->partitions;
    pstate *ps = lg->scratch;
    int rc;
    if (lg->retention_ms) {
        int64_t cutoff = now - (int64_t)lg->retention_ms;
        for (unsigned p = 0; p < parts; p++) {
            if (ps[p].records && ps[p].first_ts < cutoff) {
                rc = delete_oldest(lg, txn, p, cutoff, NULL, touched);
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
        rc = delete_oldest(lg, txn, victim, runner_up, &incoming, touched);
        if (rc)
            return rc;
    }
    return 0;
}

/* What a list of units adds up to. */
typedef struct unit_sums {
    uint64_t units;
    uint64_t records;
    uint64_t bytes; /* keys and values */
    size_t size;    /* as counted against the memory bounds */
    uint64_t max_unit_bytes;
    wunit *last;
} unit_sums;

static unit_sums sum_units(wunit *units)
{
    unit_sums t = {0};
    for (wunit *u = units; u; u = u->next) {
        uint64_t b = 0;
        for (size_t i = 0; i < u->n; i++)
            b += u->recs[i].key_len + u->recs[i].value_len;
        t.units++;
        t.records += u->n;
        t.size += u->size;
        t.bytes += b;
        if (b > t.max_unit_bytes)
            t.max_unit_bytes = b;
        t.last = u;
    }
    return t;
}

/* Values of several records hold at most this many bytes: 16 LMDB pages of 4 KiB, less
 * the overflow page header, so a full value fills its 16 overflow pages. A group's records
 * of one partition (several hundred for batch requests) go into few values, each one LMDB
 * put and one overflow-page allocation instead of one put per record (docs/benchmarks.md,
 * 2026-12-07 "batch values"). */
#define BATCH_VALUE_MAX ((size_t)16 * 4096 - 16)

/* Stores one value holding recs[0..n) (a run of consecutive offsets of one partition,
 * appended at the same time): a single record as before, more as a batch. MDB_APPEND
 * (keys only grow, so pages fill completely and no search is needed) and MDB_RESERVE (the
 * value is written in place, once). @thread applier */
static int put_value(emb_log *lg, MDB_txn *txn, const wrec *const *recs, size_t n, bool *touched)
{
    const wrec *r = recs[0];
    pstate *ps = &lg->scratch[r->part];
    MDB_cursor *cur;
    int rc = part_cursor(lg, txn, r->part, &cur);
    if (rc)
        return rc;
    uint64_t off = r->off;
    MDB_val k = {sizeof off, &off};
    MDB_val v = {n == 1 ? SL__LOG_REC_HDR + r->key_len + r->value_len
                        : sl__log_value_batch_size(recs, n),
                 NULL};
    rc = mdb_cursor_put(cur, &k, &v, MDB_RESERVE | MDB_APPEND);
    if (rc)
        return rc;
    char *d = v.mv_data;
    uint64_t bytes;
    if (n == 1) {
        memcpy(d, &r->ts, sizeof r->ts);
        memcpy(d + 8, &r->key_len, sizeof r->key_len);
        if (r->key_len)
            memcpy(d + SL__LOG_REC_HDR, r->key, r->key_len);
        if (r->value_len)
            memcpy(d + SL__LOG_REC_HDR + r->key_len, r->value, r->value_len);
        bytes = r->key_len + r->value_len;
    } else {
        sl__log_value_encode_batch(d, r->ts, recs, n);
        bytes = v.mv_size - SL__LOG_BATCH_HDR - n * SL__LOG_BATCH_REC;
    }
    ps->next = recs[n - 1]->off + 1;
    ps->records += n;
    ps->bytes += bytes;
    lg->total_bytes += bytes;
    if (ps->first_ts == INT64_MAX)
        ps->first_ts = r->ts;
    touched[r->part] = true;
    return 0;
}

/* Stores one partition's records recs[0..n), in offset order, as values of consecutive
 * offsets with one append time and at most BATCH_VALUE_MAX bytes. Records below the
 * partition's next offset are already stored (only possible if meta "wal" lagged its
 * records) and skipped. @thread applier */
static int write_partition(emb_log *lg, MDB_txn *txn, const wrec *const *recs, size_t n,
                           bool *touched)
{
    const pstate *ps = &lg->scratch[recs[0]->part];
    size_t i = 0;
    while (i < n && recs[i]->off < ps->next)
        i++;
    while (i < n) {
        size_t size = SL__LOG_BATCH_HDR + SL__LOG_BATCH_REC + recs[i]->key_len + recs[i]->value_len;
        size_t j = i + 1;
        for (; j < n; j++) {
            size_t more = SL__LOG_BATCH_REC + recs[j]->key_len + recs[j]->value_len;
            if (recs[j]->off != recs[j - 1]->off + 1 || recs[j]->ts != recs[i]->ts ||
                size + more > BATCH_VALUE_MAX)
                break;
            size += more;
        }
        int rc = put_value(lg, txn, recs + i, j - i, touched);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

/* Stores the records of a list of units at the partitions and offsets the writer gave
 * them. With `batches`, they are sorted by partition (a stable counting sort into
 * lg->order, so each partition's records stay in offset order) and each partition's go
 * into as few values as write_partition allows; without, each record is one value, as in
 * logs written before batch values existed. @thread applier */
static int write_units(emb_log *lg, MDB_txn *txn, const wunit *units, uint64_t nrecs, bool batches,
                       bool *touched)
{
    if (!batches || nrecs == 1) {
        for (const wunit *u = units; u; u = u->next) {
            for (size_t i = 0; i < u->n; i++) {
                const wrec *r = &u->recs[i];
                if (r->off < lg->scratch[r->part].next)
                    continue; /* already stored, as in write_partition */
                int rc = put_value(lg, txn, &r, 1, touched);
                if (rc)
                    return rc;
            }
        }
        return 0;
    }
    if (nrecs > lg->order_cap) {
        if (nrecs > SIZE_MAX / sizeof *lg->order)
            return ENOMEM;
        const wrec **o = realloc(lg->order, (size_t)nrecs * sizeof *o);
        if (!o)
            return ENOMEM;
        lg->order = o;
        lg->order_cap = (size_t)nrecs;
    }
    unsigned parts = lg->le->partitions;
    size_t *end = lg->part_end; /* each partition's start in order, its end after the fill */
    memset(end, 0, parts * sizeof *end);
    for (const wunit *u = units; u; u = u->next)
        for (size_t i = 0; i < u->n; i++)
            end[u->recs[i].part]++;
    size_t at = 0;
    for (unsigned p = 0; p < parts; p++) {
        size_t c = end[p];
        end[p] = at;
        at += c;
    }
    for (const wunit *u = units; u; u = u->next)
        for (size_t i = 0; i < u->n; i++)
            lg->order[end[u->recs[i].part]++] = &u->recs[i];
    size_t start = 0;
    for (unsigned p = 0; p < parts; p++) {
        if (end[p] > start) {
            int rc = write_partition(lg, txn, lg->order + start, end[p] - start, touched);
            if (rc)
                return rc;
        }
        start = end[p];
    }
    return 0;
}

/* One write transaction: the units (may be none: retention only), retention, meta
 * (partitions, and "wal" past the last unit), one commit. @thread applier (or open) */
bool sl__log_emb_apply(emb_log *lg, wunit *units, bool batches, char *detail, size_t dlen)
{
    sl__log_env *le = lg->le;
    unsigned parts = le->partitions;
    bool *touched = lg->touched;
    uint64_t saved_total = lg->total_bytes;
    MDB_txn *txn = NULL;
    wunit *last = NULL;   /* the last unit applied */
    bool upgrade = false; /* this transaction makes the log format 2 */
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
    unit_sums t = sum_units(units);
    uint64_t incoming = t.bytes;
    last = t.last;
    rc = enforce_retention(lg, txn, now, incoming, touched);
    if (rc)
        goto done;
    /* A log from before batch values becomes format 2 with its first one (log_int.h). */
    upgrade = batches && t.records > 1 && le->format == SL__LOG_FORMAT_SINGLE;
    if (upgrade && (rc = sl__log_env_store_format(le, txn, SL__LOG_FORMAT_BATCH)))
        goto done;
    if (units) {
        rc = write_units(lg, txn, units, t.records, batches, touched);
        if (rc)
            goto done;
    }
    /* Many WAL groups go into one transaction, and together they may exceed the limit. */
    if (units) {
        rc = enforce_retention(lg, txn, now, 0, touched);
        if (rc)
            goto done;
    }
    for (unsigned p = 0; p < parts; p++) {
        if (!touched[p])
            continue;
        char kb[32];
        MDB_val k;
        sl__log_meta_part_key(kb, p, &k);
        pmeta pm = {lg->scratch[p].next, lg->scratch[p].records, lg->scratch[p].bytes};
        MDB_val v = {sizeof pm, &pm};
        rc = mdb_put(txn, le->meta, &k, &v, 0);
        if (rc)
            goto done;
    }
    if (last) {
        MDB_val k = {sizeof SL__LOG_META_WAL - 1, SL__LOG_META_WAL};
        MDB_val v = {sizeof last->after, &last->after};
        rc = mdb_put(txn, le->meta, &k, &v, 0);
        if (rc)
            goto done;
    }
    rc = mdb_txn_commit(txn); /* fsyncs: durable in LMDB, so the WAL may be reused */
    txn = NULL;

done:
    if (txn)
        mdb_txn_abort(txn);
    trim_if_due(lg);
    if (rc == 0) {
        if (upgrade) {
            le->format = SL__LOG_FORMAT_BATCH;
            sl_diag(SL_DIAG_INFO, "log format upgraded for batch values",
                    "dir=\"%s\" format=%u detail=\"sluice binaries from before batch values "
                    "no longer open it\"",
                    le->dir, SL__LOG_FORMAT_BATCH);
        }
        memcpy(lg->ps, lg->scratch, parts * sizeof *lg->ps);
        sl__log_emb_publish_stats(lg);
        if (last)
            atomic_store(&lg->applied_seq, last->after.seq);
        if (!atomic_exchange(&lg->st_apply_healthy, true))
            sl_diag(SL_DIAG_INFO, "log applies again", "dir=\"%s\"", le->dir);
        return true;
    }
    lg->total_bytes = saved_total; /* invariant 4: nothing half-applied */
    if (rc == MDB_MAP_FULL)
        snprintf(detail, dlen, "log \"%s\" is full (max_size_bytes %" PRIu64 "): %s", le->dir,
                 lg->max_size_bytes, mdb_strerror(rc));
    else
        snprintf(detail, dlen, "could not commit to log \"%s\": %s", le->dir, mdb_strerror(rc));
    if (atomic_exchange(&lg->st_apply_healthy, false))
        sl_diag(SL_DIAG_ERROR, "log commit failed", "dir=\"%s\" error=\"%s\"", le->dir,
                mdb_strerror(rc));
    return false;
}

/* Retention when idle, map trimming, stale reader slots. @thread applier */
static void housekeeping(emb_log *lg)
{
    int64_t mono = sl_time_mono_ns();
    if (mono < lg->next_housekeeping_ns)
        return;
    lg->next_housekeeping_ns = mono + SL__LOG_HOUSEKEEPING_NS;
    char detail[512];
    pthread_mutex_lock(&lg->apply_mu);
    if (retention_due(lg, lg->ps, now_ms()))
        (void)sl__log_emb_apply(lg, NULL, false, detail, sizeof detail);
    release_mapped_pages(lg);
    pthread_mutex_unlock(&lg->apply_mu);
    if (mono >= lg->next_reader_check_ns) {
        lg->next_reader_check_ns = mono + READER_CHECK_NS;
        int dead = 0;
        mdb_reader_check(lg->le->env, &dead);
        if (dead)
            sl_diag(SL_DIAG_INFO, "log cleared stale readers", "dir=\"%s\" readers=%d", lg->le->dir,
                    dead);
    }
}

/* Unlinks from *head the units that go into one group: all of them, unless they add up
 * to more than txn_budget (then as many as fit, at least one), so one huge backlog cannot
 * overflow a small map in one transaction. */
static wunit *take_batch(emb_log *lg, wunit **head, wunit **tail)
{
    wunit *first = *head, *last = first;
    if (!first)
        return NULL;
    size_t bytes = first->size;
    while (last->next && bytes + last->next->size <= lg->txn_budget) {
        last = last->next;
        bytes += last->size;
    }
    *head = last->next;
    if (!*head)
        *tail = NULL;
    last->next = NULL;
    return first;
}

/* Releases the queue bytes of units that are done with. */
static void release_bytes(emb_log *lg, size_t freed)
{
    if (!freed)
        return;
    pthread_mutex_lock(&lg->qmu);
    lg->qbytes -= freed;
    atomic_store(&lg->st_pending, lg->qbytes);
    pthread_mutex_unlock(&lg->qmu);
}

/* Whether `incoming` more bytes fit a log without retention: stored, logged-but-unapplied
 * and incoming bytes stay within half the map (as retention_bytes is clamped), so what the
 * WAL acknowledges can always be applied. */
static bool room_for(emb_log *lg, uint64_t incoming)
{
    if (lg->retention_bytes)
        return true;
    uint64_t held = atomic_load(&lg->st_bytes) + atomic_load(&lg->st_unapplied_bytes);
    return held + incoming <= lg->max_size_bytes / 2;
}

/* Gives every record of the group its offset and append time, and a record without a key
 * its partition (round-robin); unassign takes the offsets back after a failure.
 * @thread writer */
static void assign(emb_log *lg, wunit *units)
{
    unsigned parts = lg->le->partitions;
    int64_t ts = now_ms();
    for (wunit *u = units; u; u = u->next) {
        for (size_t i = 0; i < u->n; i++) {
            wrec *r = &u->recs[i];
            if (!r->key) /* a keyed record got its partition in sl_log_append */
                r->part = lg->rr++ % parts;
            r->off = lg->wnext[r->part]++;
            r->ts = ts;
        }
    }
}

static void unassign(emb_log *lg, wunit *units)
{
    for (wunit *u = units; u; u = u->next)
        for (size_t i = 0; i < u->n; i++)
            lg->wnext[u->recs[i].part]--;
}

/* Waits until the applier holds no unit; false when it is failing (its units must then go
 * to LMDB first, so offsets stay in order). @thread writer */
static bool wait_drained(emb_log *lg)
{
    sl__log_env *le = lg->le;
    pthread_mutex_lock(&le->mu);
    while (lg->uabytes > 0 && !le->apply_failing) {
        le->apply_now = true;
        pthread_cond_signal(&le->apply_cond);
        struct timespec dl = mono_deadline(UNAPPLIED_WAIT_NS);
        pthread_cond_timedwait(&le->cond, &le->mu, &dl);
    }
    bool drained = lg->uabytes == 0;
    pthread_mutex_unlock(&le->mu);
    return drained;
}

/* Makes one group durable: a group of DIRECT_BYTES or more (about 200 events), or with a
 * unit of DIRECT_UNIT_BYTES or more (a batch request of ~50 events), goes straight into
 * LMDB (one commit, its two flushes), because for batch traffic, bound by CPU, writing
 * every byte twice, WAL then LMDB, plus the CRC, costs more than a flush (bench/log_append,
 * units of 100 records: 30% slower through the WAL); other groups go to the WAL (one
 * fdatasync) and on to the applier. *direct says which. @thread writer */
#define DIRECT_BYTES      ((uint64_t)128 << 10)
#define DIRECT_UNIT_BYTES ((uint64_t)32 << 10)

static sl_err make_durable(emb_log *lg, wunit *units, const unit_sums *t, bool *direct,
                           char *detail, size_t dlen)
{
    *direct = false;
    if (!room_for(lg, t->bytes)) {
        snprintf(detail, dlen,
                 "log \"%s\" is full (max_size_bytes %" PRIu64 ", no retention_bytes)", lg->le->dir,
                 lg->max_size_bytes);
        return SL_ERR_IO;
    }
    assign(lg, units);
    sl_err err;
    if ((t->bytes >= DIRECT_BYTES || t->max_unit_bytes >= DIRECT_UNIT_BYTES) && wait_drained(lg)) {
        *direct = true;
        for (wunit *u = units; u; u = u->next)
            u->after = lg->wal.at; /* nothing of the WAL is left to apply */
        pthread_mutex_lock(&lg->apply_mu);
        err = sl__log_emb_apply(lg, units, true, detail, dlen) ? SL_OK : SL_ERR_IO;
        pthread_mutex_unlock(&lg->apply_mu);
    } else {
        err = sl__log_wal_write(lg, units, detail, dlen);
    }
    if (err)
        unassign(lg, units);
    return err;
}

/* Logs one group (make_durable), then runs the callbacks; units that went to the WAL go on
 * to the applier. @thread writer */
static void log_group(emb_log *lg, wunit *units)
{
    sl__log_env *le = lg->le;
    char detail[512] = "";
    unit_sums t = sum_units(units);
    uint64_t nrecs = t.records, bytes = t.bytes, nunits = t.units;
    size_t size = t.size;
    wunit *last = t.last;
    /* Bounded memory: while the applier holds more than two transactions' worth (or
     * max_pending_bytes), wait for it; the queue then fills and appends get SL_ERR_BUSY.
     * If LMDB refuses its units meanwhile, the group fails at once (as a failed commit
     * did before the WAL) instead of waiting for a retry that may never succeed. Not when
     * closing: then everything queued goes to the WAL. */
    size_t hold =
        2 * lg->txn_budget < lg->max_pending_bytes ? 2 * lg->txn_budget : lg->max_pending_bytes;
    bool refused = false;
    pthread_mutex_lock(&le->mu);
    while (lg->uabytes > hold && !atomic_load(&lg->closing_now)) {
        if (le->apply_failing) {
            refused = true;
            snprintf(detail, sizeof detail, "%s", lg->apply_detail);
            break;
        }
        struct timespec dl = mono_deadline(UNAPPLIED_WAIT_NS);
        pthread_cond_timedwait(&le->cond, &le->mu, &dl);
    }
    pthread_mutex_unlock(&le->mu);
    bool direct = false;
    sl_err err = refused ? SL_ERR_IO : make_durable(lg, units, &t, &direct, detail, sizeof detail);
    if (err) {
        if (err != SL_ERR_NOMEM)
            err = SL_ERR_IO; /* to a producer, a failed write on the server's side: 503 */
        if (atomic_exchange(&lg->st_healthy, false))
            sl_diag(SL_DIAG_ERROR, "log write failed", "dir=\"%s\" error=\"%s\"", le->dir, detail);
        while (units) {
            wunit *next = units->next;
            units->cb(units->opaque, err, detail);
            free(units);
            units = next;
        }
        release_bytes(lg, size);
        return;
    }
    atomic_store(&lg->st_healthy, true);
    atomic_fetch_add(&lg->st_commits, 1);
    atomic_fetch_add(&lg->st_appended, nrecs);
    if (!direct) {
        atomic_fetch_add(&lg->st_unapplied, nrecs);
        atomic_fetch_add(&lg->st_unapplied_bytes, bytes);
    }
    /* Counted as acknowledged before any callback runs, so a poll that follows a callback
     * waits for the applier (see embedded_consumer.c). */
    pthread_mutex_lock(&le->mu);
    le->acked_units += nunits;
    if (direct) {
        le->applied_units += nunits;
        le->commit_seq++;
        pthread_cond_broadcast(&le->cond);
    }
    pthread_mutex_unlock(&le->mu);
    for (wunit *u = units; u; u = u->next)
        u->cb(u->opaque, SL_OK, NULL);
    release_bytes(lg, size);
    if (direct) {
        while (units) {
            wunit *next = units->next;
            free(units);
            units = next;
        }
        return;
    }
    pthread_mutex_lock(&le->mu);
    /* The applier needs a wake-up only when this changes what it waits for: its list was
     * empty (it sleeps until housekeeping, not until its next apply) or now holds a whole
     * transaction's budget. Otherwise it already sleeps until its next apply, and a signal
     * per group (~1,500 a second with single events) only costs both threads a futex call
     * and a context switch. */
    bool wake = !lg->ahead;
    if (lg->atail)
        lg->atail->next = units;
    else
        lg->ahead = units;
    lg->atail = last;
    lg->abytes += size;
    lg->uabytes += size;
    if (wake || lg->abytes >= lg->txn_budget)
        pthread_cond_signal(&le->apply_cond);
    pthread_mutex_unlock(&le->mu);
}

/* Takes everything queued, logs it as one group, repeats; drains the queue on close
 * (invariant 7). @thread the log's writer */
/* LMDB mallocs every overflow page run of a write transaction (a batch value's 16 pages)
 * and frees it at the commit, ~4 MiB per commit under batch traffic. With glibc's default
 * trim threshold (128 KiB, raised only by freed mmap chunks) the writer's arena gives
 * that memory back after each commit and faults it in again, zeroed, at the next: ~40 us
 * of the writer's ~105 per request of 100 events (docs/benchmarks.md, 2026-12-07). A
 * threshold of two transactions' worth keeps it. Process-wide: other threads' arenas may
 * then keep up to that much free memory too. */
#define MALLOC_TRIM_BYTES (16 << 20)

void *sl__log_emb_writer_main(void *arg)
{
    emb_log *lg = arg;
    pthread_setname_np(pthread_self(), "sl-log-writer"); /* for per-thread CPU in /proc */
    mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_BYTES);
    for (;;) {
        pthread_mutex_lock(&lg->qmu);
        while (!lg->qhead && !lg->closing)
            pthread_cond_wait(&lg->qcond, &lg->qmu);
        wunit *units = take_batch(lg, &lg->qhead, &lg->qtail);
        bool stop = lg->closing && !units;
        pthread_mutex_unlock(&lg->qmu);
        if (stop)
            break;
        log_group(lg, units);
    }
    return NULL;
}

/* Applies durable units to LMDB: at most one transaction per APPLY_GAP_NS, sooner when a
 * group reaches txn_budget, a same-process poll asks (apply_now) or the log closes; so
 * LMDB's two flushes per commit are shared by many WAL groups. Runs housekeeping too.
 * @thread the log's applier */
#define APPLY_GAP_NS   10000000ll
#define APPLY_RETRY_NS 1000000000ll

/* Whether the applier should take units now. @locks le->mu */
static bool apply_due(const emb_log *lg, int64_t mono, int64_t next_apply)
{
    return lg->ahead && (lg->le->apply_now || lg->applier_stop || mono >= next_apply ||
                         lg->abytes >= lg->txn_budget);
}

void *sl__log_emb_applier_main(void *arg)
{
    emb_log *lg = arg;
    pthread_setname_np(pthread_self(), "sl-log-applier");
    sl__log_env *le = lg->le;
    int64_t next_apply = 0;
    bool gave_up = false; /* closing after LMDB refused: nothing more may be applied */
    char detail[512] = "";
    for (;;) {
        pthread_mutex_lock(&le->mu);
        for (;;) {
            int64_t mono = sl_time_mono_ns();
            if (apply_due(lg, mono, next_apply))
                break;
            if (lg->applier_stop && !lg->ahead)
                break;
            if (mono >= lg->next_housekeeping_ns)
                break;
            int64_t until = lg->next_housekeeping_ns;
            if (lg->ahead && next_apply < until)
                until = next_apply;
            struct timespec dl = mono_deadline(until - mono);
            pthread_cond_timedwait(&le->apply_cond, &le->mu, &dl);
        }
        bool stopping = lg->applier_stop;
        bool stop = stopping && !lg->ahead;
        wunit *units = NULL;
        int64_t mono = sl_time_mono_ns();
        if (apply_due(lg, mono, next_apply)) {
            units = take_batch(lg, &lg->ahead, &lg->atail);
            for (wunit *u = units; u; u = u->next)
                lg->abytes -= u->size;
            le->apply_now = false;
        }
        pthread_mutex_unlock(&le->mu);
        if (stop)
            break;
        if (units) {
            next_apply = mono + APPLY_GAP_NS;
            /* Once a closing apply failed, later units must not be applied either: meta
             * "wal" would move past the refused ones, and the next open would not replay
             * them. */
            bool ok = false;
            if (!gave_up) {
                pthread_mutex_lock(&lg->apply_mu);
                ok = sl__log_emb_apply(lg, units, false, detail, sizeof detail);
                pthread_mutex_unlock(&lg->apply_mu);
            }
            unit_sums t = sum_units(units);
            uint64_t nunits = t.units, nrecs = t.records, bytes = t.bytes;
            size_t size = t.size;
            wunit *last = t.last;
            if (!ok && stopping) {
                /* Closing and LMDB refuses: the units stay durable in the WAL, and the
                 * next open replays them. */
                sl_diag(SL_DIAG_WARN, "log closes with records only in its write-ahead log",
                        "dir=\"%s\" records=%" PRIu64 " error=\"%s\"", le->dir, nrecs, detail);
            }
            bool done = ok || stopping;
            gave_up = gave_up || (!ok && stopping);
            if (done) {
                /* Before applied_units moves, so a stats call never counts them twice. */
                atomic_fetch_sub(&lg->st_unapplied, nrecs);
                atomic_fetch_sub(&lg->st_unapplied_bytes, bytes);
            }
            pthread_mutex_lock(&le->mu);
            if (ok) {
                le->applied_units += nunits;
                le->apply_failing = false;
                le->commit_seq++;
            }
            if (done) {
                lg->uabytes -= size;
            } else {
                /* Back to the front, tried again after APPLY_RETRY_NS; pollers stop
                 * waiting for them meanwhile. */
                last->next = lg->ahead;
                lg->ahead = units;
                if (!lg->atail)
                    lg->atail = last;
                lg->abytes += size;
                le->apply_failing = true;
                snprintf(lg->apply_detail, sizeof lg->apply_detail, "%s", detail);
                next_apply = mono + APPLY_RETRY_NS;
            }
            pthread_cond_broadcast(&le->cond);
            pthread_mutex_unlock(&le->mu);
            if (done) {
                while (units) {
                    wunit *next = units->next;
                    free(units);
                    units = next;
                }
            }
        }
        housekeeping(lg);
    }
    return NULL;
}
