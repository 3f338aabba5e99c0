/* `sluice lake vacuum`: deletes the table's files that no version within the retention
 * window references (data files of removed or never-committed batches, temporary files of
 * killed writers, and on S3 their unfinished multipart uploads), so storage does not grow
 * with abandoned work, while every version a reader may still ask for stays whole.
 *
 * Invariants:
 *  1. Kept: every file active in any version from v0 to the latest, where v0 is the last
 *     version committed at or before now - retain (else the oldest the log still has: 0,
 *     or the checkpoint it starts at after older entries expired): the table as
 *     of any time inside the window can be read. Those are active(v0), active(latest)
 *     and the files removed after v0, which were active just before their remove.
 *  2. Deleted only what is older (mtime) than now - retain as well, so a file a writer
 *     uploaded and has not committed yet (younger than the window) is never deleted.
 *  3. Keys with a segment starting with '_' or '.' (the log, other engines' hidden data)
 *     are never touched, but for the store's own temporary files (invariant 2 holds). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/time.h"
#include "lake/lake.h"

#define HOUR_MS INT64_C(3600000)

typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

static sl_err strv_push(strv *s, const char *str)
{
    char **grown = sl_grow(s->v, s->n, &s->cap, 256, sizeof *grown);
    if (!grown)
        return SL_ERR_NOMEM;
    s->v = grown;
    if (!(s->v[s->n] = strdup(str)))
        return SL_ERR_NOMEM;
    s->n++;
    return SL_OK;
}

static void strv_free(strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool strv_has(const strv *s, const char *str)
{
    return bsearch(&str, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

/* Pass 1: each version's commit time and whether it removes files, from `first` (0, or
 * the checkpoint a history starts at once older log entries expired). */
/* A progress line on a terminal (vo->progress), rewritten in place. */
static void show_progress(FILE *p, const char *fmt, ...) SL_PRINTF(2, 3);
static void show_progress(FILE *p, const char *fmt, ...)
{
    if (!p)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[Kvacuum: ", p);
    vfprintf(p, fmt, ap);
    va_end(ap);
    fflush(p);
}

typedef struct version_log {
    FILE *progress;
    int64_t first;
    int64_t *ts;
    bool *removes;
    size_t n;
} version_log;

static sl_err note_version(void *opaque, const sl_delta_version_info *vi)
{
    version_log *vl = opaque;
    if (vl->n == 0)
        vl->first = vi->version;
    if (vi->version != vl->first + (int64_t)vl->n)
        return SL_ERR_INTERNAL;       /* the history skipped a version */
    if ((vl->n & (vl->n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow to twice */
        size_t cap = vl->n ? vl->n * 2 : 1;
        int64_t *ts = realloc(vl->ts, cap * sizeof *ts);
        if (ts)
            vl->ts = ts;
        bool *rm = ts ? realloc(vl->removes, cap * sizeof *rm) : NULL;
        if (!rm)
            return SL_ERR_NOMEM;
        vl->removes = rm;
    }
    vl->ts[vl->n] = vi->timestamp_ms;
    vl->removes[vl->n] = vi->files_removed > 0;
    vl->n++;
    if (vl->n % 100 == 0)
        show_progress(vl->progress, "reading the log: version %" PRId64, vi->version);
    return SL_OK;
}

typedef struct keeper {
    sl_delta_snapshot_t *snap;
    const version_log *vl;
    strv keep;
    sl_err err;
    char bad_path[256];
} keeper;

/* Adds every active file of the snapshot to the kept set. */
static sl_err keep_active(keeper *k)
{
    for (size_t i = 0; i < sl_delta_snapshot_file_count(k->snap); i++) {
        const char *p = sl_delta_snapshot_file(k->snap, i)->path;
        if (p[0] == '/' || strstr(p, "://")) {
            snprintf(k->bad_path, sizeof k->bad_path, "%s", p);
            return SL_ERR_UNSUPPORTED; /* not a key under the table: cannot be matched */
        }
        sl_err err = strv_push(&k->keep, p);
        if (err)
            return err;
    }
    return SL_OK;
}

/* After each version past v0: when the next one removes files (or is unknown to pass 1),
 * its files are kept now, while they are still active (invariant 1). */
static sl_err keep_before_removes(void *opaque, const sl_delta_version_info *vi)
{
    keeper *k = opaque;
    size_t next = (size_t)(vi->version + 1 - k->vl->first);
    if (next >= k->vl->n || k->vl->removes[next])
        return keep_active(k);
    return SL_OK;
}

/* Whether key is hidden (a segment starting with '_' or '.'): never a data file. */
static bool is_hidden(const char *key)
{
    for (const char *p = key; p; p = strchr(p, '/')) {
        p += *p == '/';
        if (*p == '_' || *p == '.')
            return true;
    }
    return false;
}

typedef struct sweep {
    const strv *keep;
    int64_t cutoff_ms;
    bool temporary;
    strv doomed;
    strv upload_ids; /* beside doomed: the unfinished upload's id, or "" for a file */
    uint64_t bytes, kept;
    size_t n_uploads;
} sweep;

static sl_err consider(void *opaque, const sl_storage_entry *e)
{
    sweep *sw = opaque;
    if (!sw->temporary && (is_hidden(e->key) || strv_has(sw->keep, e->key))) {
        sw->kept++;
        return SL_OK;
    }
    if (e->mtime_ms >= sw->cutoff_ms) /* invariant 2 */
        return SL_OK;
    sw->bytes += e->size;
    sw->n_uploads += e->upload_id != NULL;
    sl_err err = strv_push(&sw->doomed, e->key);
    return err ? err : strv_push(&sw->upload_ids, e->upload_id ? e->upload_id : "");
}

sl_err sl_lake_vacuum(const char *table_uri, const sl_storage_options *so,
                      const sl_lake_vacuum_options *vo, FILE *out, char *errbuf, size_t errlen)
{
    if (vo->retain_hours < SL_LAKE_VACUUM_MIN_RETAIN_HOURS && !vo->force)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "retaining %" PRId64 " hours is under the safety minimum of %d: a "
                             "reader of an older version or a writer still uploading may lose "
                             "files (--force allows it)",
                             vo->retain_hours, SL_LAKE_VACUUM_MIN_RETAIN_HOURS);
    if (vo->retain_hours < 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "retention is negative");
    int64_t now_ms = vo->now_ms ? vo->now_ms : sl_time_now_us() / 1000;
    int64_t cutoff = now_ms - vo->retain_hours * HOUR_MS;
    sl_storage_t *st = NULL;
    version_log vl = {.progress = vo->progress};
    keeper k = {0};
    sweep sw = {.keep = &k.keep, .cutoff_ms = cutoff};
    sl_err err = sl_lake_store_open(table_uri, so, &st, errbuf, errlen);
    if (err)
        return err;
    if ((err = sl_delta_history(st, note_version, &vl, errbuf, errlen))) {
        if (err == SL_ERR_NOMEM || err == SL_ERR_INTERNAL)
            sl_errbuf_set(errbuf, errlen, err, "table \"%s\": %s", table_uri,
                          err == SL_ERR_NOMEM ? "out of memory" : "its history skips a version");
        goto out;
    }
    int64_t v0 = vl.first;
    for (size_t i = 0; i < vl.n; i++) {
        if (vl.ts[i] >= 0 && vl.ts[i] <= cutoff)
            v0 = vl.first + (int64_t)i; /* a version without commitInfo time counts as recent */
    }
    k.vl = &vl;
    if ((err = sl_delta_snapshot_load(st, v0, &k.snap, errbuf, errlen)))
        goto out;
    if ((err = keep_active(&k)) ||
        (err = sl_delta_snapshot_update(st, k.snap, keep_before_removes, &k, errbuf, errlen)) ||
        (err = keep_active(&k))) {
        if (err == SL_ERR_UNSUPPORTED)
            sl_errbuf_set(errbuf, errlen, err,
                          "table \"%s\" references \"%s\", a file outside the table: vacuum "
                          "only tables whose files are all inside",
                          table_uri, k.bad_path);
        else if (err == SL_ERR_NOMEM)
            sl_errbuf_set(errbuf, errlen, err, "out of memory");
        goto out;
    }
    qsort(k.keep.v, k.keep.n, sizeof *k.keep.v, cmp_str);
    show_progress(vo->progress, "listing the table's files");
    if ((err = sl_storage_list(st, "", NULL, consider, &sw, errbuf, errlen)))
        goto out;
    sw.temporary = true;
    if ((err = sl_storage_list_temporary(st, "", consider, &sw, errbuf, errlen)))
        goto out;
    for (size_t i = 0; i < sw.doomed.n; i++) {
        const char *key = sw.doomed.v[i];
        const char *upload_id = sw.upload_ids.v[i][0] ? sw.upload_ids.v[i] : NULL;
        if (!vo->dry_run && (err = sl_storage_delete_temporary(st, key, upload_id, errbuf, errlen)))
            goto out;
        if (vo->progress)
            fputs("\r\033[K", vo->progress); /* the line below takes the progress line's place */
        if (upload_id)
            fprintf(out, "%s %s\n",
                    vo->dry_run ? "would abort the unfinished upload of"
                                : "aborted the unfinished upload of",
                    key);
        else
            fprintf(out, "%s %s\n", vo->dry_run ? "would delete" : "deleted", key);
        fflush(out);
        show_progress(vo->progress, "%zu of %zu files %s", i + 1, sw.doomed.n,
                      vo->dry_run ? "listed" : "deleted");
    }
    if (vo->progress)
        fputs("\r\033[K", vo->progress);
    fprintf(out,
            "%s %zu files (%" PRIu64 " bytes) not referenced by versions %" PRId64 "-%" PRId64
            " (since %" PRId64 " hours ago) and older than that; %" PRIu64
            " referenced files kept\n",
            vo->dry_run ? "would delete" : "deleted", sw.doomed.n - sw.n_uploads, sw.bytes, v0,
            sl_delta_snapshot_version(k.snap), vo->retain_hours, sw.kept);
    if (sw.n_uploads)
        fprintf(out, "%s %zu unfinished uploads begun over %" PRId64 " hours ago\n",
                vo->dry_run ? "would abort" : "aborted", sw.n_uploads, vo->retain_hours);
    if (ferror(out))
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not write the report");
out:
    strv_free(&sw.doomed);
    strv_free(&sw.upload_ids);
    strv_free(&k.keep);
    sl_delta_snapshot_free(k.snap);
    free(vl.ts);
    free(vl.removes);
    sl_storage_close(st);
    return err;
}
