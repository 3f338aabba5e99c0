/* Compaction of the event table (`sluice lake optimize`, and the lake sink when small files
 * pile up): the small files of each date partition are read back with sluice's Parquet
 * reader and written again as files of about the target size, and one commit removes the
 * old files and adds the new ones with dataChange=false.
 *
 * Invariants:
 *  1. New files become part of the table only through the commit that removes every file
 *     their rows came from, so each version holds each row once. A run that fails deletes
 *     its new files (vacuum collects what a kill leaves).
 *  2. The commit goes in only while every file it removes is still active: when another
 *     writer removed one first (a concurrent optimize), the run gives up instead of
 *     bringing those rows back a second time. Blind appends beside it do not conflict.
 *  3. The rows read from each file must equal its numRecords statistic, and the rows
 *     written must equal the rows read, or nothing is committed.
 * Memory: one source file (under the target size) and one Parquet writer at a time. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"
#include "lake/lake_int.h"

/* Versions other writers may take in a row before the run gives up. */
#define MAX_COMMIT_ATTEMPTS 10

void sl_lake_optimize_options_default(sl_lake_optimize_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->target_file_bytes = 128u << 20;
    opts->min_files = 2;
    opts->codec = SL_PQ_SNAPPY;
    opts->zstd_level = 3;
}

/* A small file picked for rewriting; strings are copies (the snapshot drops its own when
 * the commit applies). */
typedef struct source {
    char *path;
    char date[11];
    uint64_t size;
    int64_t num_records; /* -1: the add had no stats */
    int64_t version;
} source;

typedef struct bin { /* sources [first, first + n) go into one new file */
    size_t first, n;
} bin;

typedef struct run {
    sl_storage_t *st;
    const sl_lake_optimize_options *opts;
    source *src;
    size_t n_src;
    bin *bins;
    size_t n_bins;
    size_t files_done, files_todo; /* progress */
    bool keep_files; /* the commit may have landed: the new files must not be deleted */
    sl_buf object;   /* the source file being read */
} run;

static int source_order(const void *a, const void *b)
{
    const source *x = a, *y = b;
    int c = strcmp(x->date, y->date);
    if (c)
        return c;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->path, y->path);
}

static const char *date_of(const sl_delta_file *f)
{
    for (size_t i = 0; i < f->n_partition_values; i++) {
        const sl_delta_kv *kv = &f->partition_values[i];
        if (!strcmp(kv->key, "event_date"))
            return kv->value && sl__lake_is_date(kv->value) ? kv->value : NULL;
    }
    return NULL;
}

/* The active files under the target size, of the partitions asked for, in date then
 * commit order (rows keep roughly the order they arrived in). */
static sl_err pick_sources(run *r, const sl_delta_snapshot_t *snap, char *errbuf, size_t errlen)
{
    size_t n = sl_delta_snapshot_file_count(snap);
    if (n && !(r->src = calloc(n, sizeof *r->src)))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    const char *only = r->opts->partition && *r->opts->partition ? r->opts->partition : NULL;
    for (size_t i = 0; i < n; i++) {
        const sl_delta_file *f = sl_delta_snapshot_file(snap, i);
        const char *date = date_of(f);
        if (!date || (only && strcmp(date, only)) || f->size >= r->opts->target_file_bytes)
            continue;
        source *s = &r->src[r->n_src];
        if (!(s->path = strdup(f->path)))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
        memcpy(s->date, date, sizeof s->date);
        s->size = f->size;
        s->num_records = f->num_records;
        s->version = f->version;
        r->n_src++;
    }
    qsort(r->src, r->n_src, sizeof *r->src, source_order);
    return SL_OK;
}

/* Packs each qualifying partition's sources, in order, into bins of up to the target
 * size; a bin of one file would rewrite it for nothing, so it is dropped. Sources in no
 * bin are removed from r->src, so r->src holds exactly what the commit removes. */
static sl_err plan_bins(run *r, char *errbuf, size_t errlen)
{
    if (r->n_src && !(r->bins = calloc(r->n_src, sizeof *r->bins)))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    size_t kept = 0;
    for (size_t i = 0, j; i < r->n_src; i = j) {
        for (j = i; j < r->n_src && !strcmp(r->src[j].date, r->src[i].date); j++)
            ;
        if (j - i < r->opts->min_files || j - i < 2) {
            for (size_t k = i; k < j; k++)
                free(r->src[k].path);
            continue;
        }
        for (size_t start = i, k = i; k < j; start = k) {
            uint64_t bytes = 0;
            for (; k < j && (k == start || bytes + r->src[k].size <= r->opts->target_file_bytes);
                 k++)
                bytes += r->src[k].size;
            if (k - start < 2) {
                free(r->src[start].path);
                continue;
            }
            r->bins[r->n_bins++] = (bin){kept, k - start};
            for (size_t m = start; m < k; m++)
                r->src[kept++] = r->src[m];
        }
    }
    r->n_src = kept;
    r->files_todo = kept;
    return SL_OK;
}

/* The reader's leaf for each table column, checked to be what sluice writes. */
static sl_err map_columns(const sl_pq_reader_t *pr, const char *path,
                          size_t leaves[SL_LAKE_N_COLUMNS], char *errbuf, size_t errlen)
{
    if (sl_pq_reader_leaves(pr) != SL_LAKE_N_COLUMNS)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                             "file \"%s\" has %zu columns, not the table's %d: not a file "
                             "sluice can compact",
                             path, sl_pq_reader_leaves(pr), SL_LAKE_N_COLUMNS);
    for (size_t c = 0; c < SL_LAKE_N_COLUMNS; c++) {
        const sl_pq_column *want = &sl_lake_columns[c];
        const sl_pq_leaf_info *li;
        if (!sl_pq_reader_find(pr, want->name, &leaves[c]) ||
            (li = sl_pq_reader_leaf(pr, leaves[c]))->type != want->type ||
            li->logical != want->logical || li->max_rep != 0 || li->unsupported)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                                 "file \"%s\": column \"%s\" is missing or not of the type "
                                 "sluice writes; not a file sluice can compact",
                                 path, want->name);
    }
    return SL_OK;
}

/* Writes every row of the Parquet file in r->object into pw; *rows counts them. */
static sl_err copy_rows(run *r, const source *s, sl_pq_writer_t *pw, uint64_t *rows, char *errbuf,
                        size_t errlen)
{
    sl_pq_reader_t *pr = NULL;
    char detail[400];
    sl_err err = sl_pq_reader_open(r->object.data, r->object.len, NULL, &pr, detail, sizeof detail);
    size_t leaves[SL_LAKE_N_COLUMNS];
    if (err || (err = map_columns(pr, s->path, leaves, errbuf, errlen)))
        goto out;
    for (size_t rg = 0; rg < sl_pq_reader_row_groups(pr); rg++) {
        uint64_t n = sl_pq_reader_row_group_rows(pr, rg);
        sl_pq_column_data cols[SL_LAKE_N_COLUMNS];
        for (size_t c = 0; c < SL_LAKE_N_COLUMNS && !err; c++) {
            err = sl_pq_reader_read_column(pr, rg, leaves[c], &cols[c], detail, sizeof detail);
            if (!err && cols[c].n_slots != n)
                err = sl_errbuf_set(detail, sizeof detail, SL_ERR_CORRUPT,
                                    "column \"%s\" of row group %zu has %zu values for %" PRIu64
                                    " rows",
                                    sl_lake_columns[c].name, rg, cols[c].n_slots, n);
        }
        for (uint64_t i = 0; i < n && !err; i++) {
            sl_pq_value values[SL_LAKE_N_COLUMNS];
            for (size_t c = 0; c < SL_LAKE_N_COLUMNS; c++)
                values[c] = cols[c].values[i];
            err = sl_pq_writer_write_row(pw, values, detail, sizeof detail);
        }
        sl_pq_reader_reset(pr);
        if (err)
            goto out;
        *rows += n;
    }
out:
    if (err && err != SL_ERR_UNSUPPORTED)
        sl_errbuf_set(errbuf, errlen, err, "could not rewrite \"%s\": %s", s->path, detail);
    sl_pq_reader_free(pr);
    return err;
}

static void show_progress(run *r, const char *date)
{
    FILE *p = r->opts->progress;
    if (!p)
        return;
    fprintf(p, "\roptimize: event_date=%s, %zu of %zu small files rewritten", date, r->files_done,
            r->files_todo);
    fflush(p);
}

/* Reads the bin's sources into the new file f (opened here). */
static sl_err rewrite_bin(run *r, const bin *b, const sl_pq_writer_options *po, sl__lake_file *f,
                          char *errbuf, size_t errlen)
{
    const source *first = &r->src[b->first];
    sl_err err = sl__lake_file_open(r->st, first->date, po, f, errbuf, errlen);
    for (size_t i = 0; i < b->n && !err; i++) {
        const source *s = &r->src[b->first + i];
        uint64_t rows = 0;
        sl_buf_reset(&r->object);
        if ((err = sl_storage_get(r->st, s->path, &r->object, errbuf, errlen)) ||
            (err = copy_rows(r, s, f->pw, &rows, errbuf, errlen)))
            break;
        if (s->num_records >= 0 && rows != (uint64_t)s->num_records)
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                "file \"%s\" holds %" PRIu64 " rows but its add says %" PRId64
                                "; not compacting it",
                                s->path, rows, s->num_records);
        r->files_done++;
        show_progress(r, s->date);
    }
    return err;
}

typedef struct removes_check {
    const source *src;
    size_t n;
} removes_check;

/* Invariant 2, after other writers took the version the commit wanted. */
static sl_err still_active(void *opaque, const sl_delta_snapshot_t *snap, char *errbuf,
                           size_t errlen)
{
    const removes_check *rc = opaque;
    for (size_t i = 0; i < rc->n; i++) {
        if (!sl_delta_snapshot_has_file(snap, rc->src[i].path))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_EXISTS,
                                 "another writer removed \"%s\" (by version %" PRId64
                                 ") while it was being compacted; nothing was committed",
                                 rc->src[i].path, sl_delta_snapshot_version(snap));
    }
    return SL_OK;
}

/* After a store error the commit may have landed all the same: a fresh snapshot tells,
 * by whether the first new file is active. */
static bool commit_landed(run *r, const char *new_path, int64_t *version)
{
    char eb[256];
    sl_delta_snapshot_t *fresh;
    if (sl_delta_snapshot_load(r->st, -1, &fresh, eb, sizeof eb)) {
        r->keep_files = true; /* unknown: vacuum deletes them later if they are not in */
        return false;
    }
    bool found = sl_delta_snapshot_has_file(fresh, new_path);
    *version = sl_delta_snapshot_version(fresh);
    sl_delta_snapshot_free(fresh);
    return found;
}

/* One commit: remove every source, add every new file (invariant 1). */
static sl_err commit_run(run *r, sl_delta_snapshot_t *snap, sl__lake_file *files,
                         sl_lake_optimize_result *res, char *errbuf, size_t errlen)
{
    sl_err err = SL_ERR_NOMEM;
    sl_delta_remove *removes = calloc(r->n_src, sizeof *removes);
    sl_delta_kv *src_pvs = calloc(r->n_src, sizeof *src_pvs);
    sl_delta_add *adds = calloc(r->n_bins, sizeof *adds);
    sl_delta_kv *pvs = calloc(r->n_bins, sizeof *pvs);
    sl_buf *stats = calloc(r->n_bins, sizeof *stats);
    if (!removes || !src_pvs || !adds || !pvs || !stats) {
        sl_errbuf_set(errbuf, errlen, err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r->n_bins; i++)
        sl_buf_init(&stats[i], 1u << 20);
    int64_t now_ms = sl_time_now_us() / 1000;
    for (size_t i = 0; i < r->n_src; i++) {
        const source *s = &r->src[i];
        src_pvs[i] = (sl_delta_kv){"event_date", s->date};
        removes[i] = (sl_delta_remove){s->path, &src_pvs[i], 1, s->size, now_ms, false};
        res->bytes_removed += s->size;
    }
    for (size_t i = 0; i < r->n_bins; i++) {
        uint64_t rows;
        if ((err = sl__lake_file_finish(&files[i], false, &stats[i], &pvs[i], &adds[i], &rows,
                                        errbuf, errlen)))
            goto out;
        res->rows += rows;
        res->bytes_added += adds[i].size;
    }
    char predicate[64] = "[]";
    if (r->opts->partition && *r->opts->partition)
        snprintf(predicate, sizeof predicate, "[\"event_date = '%s'\"]", r->opts->partition);
    const sl_delta_kv params[] = {{"predicate", predicate}, {"zOrderBy", "[]"}};
    sl_delta_commit c = {
        .removes = removes,
        .n_removes = r->n_src,
        .adds = adds,
        .n_adds = r->n_bins,
        .operation = "OPTIMIZE",
        .operation_parameters = params,
        .n_operation_parameters = 2,
    };
    removes_check rc = {r->src, r->n_src};
    err = sl_delta_commit_append(r->st, snap, &c, MAX_COMMIT_ATTEMPTS, still_active, &rc, errbuf,
                                 errlen);
    if (!err)
        res->version = sl_delta_snapshot_version(snap);
    else if (err != SL_ERR_EXISTS && commit_landed(r, files[0].rel_path, &res->version))
        err = SL_OK;
    if (!err) {
        res->files_removed = r->n_src;
        res->files_added = r->n_bins;
    }
out:
    for (size_t i = 0; stats && i < r->n_bins; i++)
        sl_buf_cleanup(&stats[i]);
    free(stats);
    free(pvs);
    free(adds);
    free(src_pvs);
    free(removes);
    return err;
}

sl_err sl_lake_optimize(sl_storage_t *st, sl_delta_snapshot_t *snap,
                        const sl_lake_optimize_options *opts, sl_lake_optimize_result *res,
                        char *errbuf, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->version = -1;
    if (opts->partition && *opts->partition && !sl__lake_is_date(opts->partition))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "partition \"%s\" is not a date (YYYY-MM-DD)", opts->partition);
    if (sl_delta_snapshot_partition_count(snap) != 1 ||
        strcmp(sl_delta_snapshot_partition_column(snap, 0), "event_date") != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                             "table \"%s\" is not partitioned by event_date alone: not a table "
                             "sluice writes",
                             sl_storage_uri(st));
    run r = {.st = st, .opts = opts};
    sl_buf_init(&r.object, (size_t)opts->target_file_bytes);
    sl__lake_file *files = NULL;
    size_t n_open = 0;
    sl_err err;
    if ((err = pick_sources(&r, snap, errbuf, errlen)) || (err = plan_bins(&r, errbuf, errlen)) ||
        r.n_bins == 0)
        goto out;
    if (!(files = calloc(r.n_bins, sizeof *files))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    sl_pq_writer_options po;
    sl_pq_writer_options_default(&po);
    po.codec = opts->codec;
    po.zstd_level = opts->zstd_level;
    for (size_t i = 0; i < r.n_bins && !err; i++, n_open++)
        err = rewrite_bin(&r, &r.bins[i], &po, &files[i], errbuf, errlen);
    if (opts->progress)
        fputc('\n', opts->progress);
    for (size_t i = 0; i < r.n_bins && !err; i++)
        res->partitions +=
            i == 0 || strcmp(r.src[r.bins[i].first].date, r.src[r.bins[i - 1].first].date) != 0;
    if (!err)
        err = commit_run(&r, snap, files, res, errbuf, errlen);
out:
    for (size_t i = 0; i < n_open; i++)
        sl__lake_file_release(st, &files[i], !err || r.keep_files);
    free(files);
    for (size_t i = 0; i < r.n_src; i++)
        free(r.src[i].path);
    free(r.src);
    free(r.bins);
    sl_buf_cleanup(&r.object);
    if (err)
        res->version = -1;
    return err;
}
