/* One data file of the event table: named under its date partition with a UUIDv7 (so
 * names sort by creation and never collide between writers), written through a storage
 * upload (invisible until committed), and turned into a Delta add with column stats. */
#include <stdio.h>
#include <string.h>

#include "core/diag.h"
#include "core/time.h"
#include "core/uuid.h"
#include "lake/lake_int.h"

static const char *codec_infix(sl_pq_codec codec)
{
    switch (codec) {
    case SL_PQ_SNAPPY:
        return ".snappy";
    case SL_PQ_ZSTD:
        return ".zstd";
    case SL_PQ_UNCOMPRESSED:
        return "";
    }
    return "";
}

bool sl__lake_is_date(const char *s)
{
    static const char shape[] = "dddd-dd-dd";
    if (strlen(s) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

sl_err sl__lake_file_open(sl_storage_t *st, const char *date, const sl_pq_writer_options *po,
                          sl__lake_file *f, char *errbuf, size_t errlen)
{
    memset(f, 0, sizeof *f);
    if (!sl__lake_is_date(date))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "\"%s\" is not a date partition (YYYY-MM-DD)", date);
    memcpy(f->date, date, sizeof f->date);
    char id[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(id);
    snprintf(f->rel_path, sizeof f->rel_path, "event_date=%s/part-%s%s.parquet", date, id,
             codec_infix(po->codec));
    sl_err err = sl_storage_upload_new(st, f->rel_path, &f->up, errbuf, errlen);
    if (err)
        return err;
    if ((err = sl_pq_writer_new(sl_lake_columns, SL_LAKE_N_COLUMNS, po,
                                sl_storage_upload_stream(f->up), &f->pw, errbuf, errlen))) {
        sl_storage_upload_free(f->up);
        memset(f, 0, sizeof *f);
    }
    return err;
}

/* The Delta stats of the file's columns, from the writer's column statistics. */
static void stats_of(const sl_pq_file_info *info, sl_delta_column_stats *cols)
{
    for (size_t c = 0; c < SL_LAKE_N_COLUMNS; c++) {
        const sl_pq_column *col = &sl_lake_columns[c];
        const sl_pq_column_stats *s = &info->columns[c];
        sl_delta_column_stats *d = &cols[c];
        memset(d, 0, sizeof *d);
        d->name = col->name;
        d->null_count = s->null_count;
        if (!s->has_min_max)
            continue;
        switch (col->type) {
        case SL_PQ_BYTE_ARRAY:
            d->kind = SL_DELTA_STAT_STRING;
            d->min.s = s->min.v.bytes.ptr;
            d->min.len = s->min.v.bytes.len;
            d->max.s = s->max.v.bytes.ptr;
            d->max.len = s->max.v.bytes.len;
            break;
        case SL_PQ_INT64:
            d->kind = SL_DELTA_STAT_TIMESTAMP;
            d->min.i = s->min.v.i64;
            d->max.i = s->max.v.i64;
            break;
        case SL_PQ_DOUBLE:
            d->kind = SL_DELTA_STAT_DOUBLE;
            d->min.d = s->min.v.f64;
            d->max.d = s->max.v.f64;
            break;
        default:
            break;
        }
    }
}

sl_err sl__lake_file_finish(sl__lake_file *f, bool data_change, sl_buf *stats, sl_delta_kv *pv,
                            sl_delta_add *add, uint64_t *rows, char *errbuf, size_t errlen)
{
    sl_pq_file_info info;
    sl_err err = sl_pq_writer_finish(f->pw, &info, errbuf, errlen);
    if (err)
        return err;
    sl_delta_column_stats cols[SL_LAKE_N_COLUMNS];
    stats_of(&info, cols);
    if ((err = sl_delta_stats_format(stats, info.rows, cols, SL_LAKE_N_COLUMNS)))
        return sl_errbuf_set(errbuf, errlen, err, "could not format the stats of \"%s\"",
                             f->rel_path);
    err = sl_storage_upload_commit(f->up, errbuf, errlen);
    sl_storage_upload_free(f->up);
    f->up = NULL;
    if (err)
        return err;
    f->stored = true;
    *pv = (sl_delta_kv){"event_date", f->date};
    *add = (sl_delta_add){
        .path = f->rel_path,
        .partition_values = pv,
        .n_partition_values = 1,
        .size = info.file_bytes,
        .modification_time_ms = sl_time_now_us() / 1000,
        .data_change = data_change,
        .stats = stats->data,
    };
    if (rows)
        *rows = info.rows;
    return SL_OK;
}

void sl__lake_file_release(sl_storage_t *st, sl__lake_file *f, bool keep)
{
    char eb[512];
    sl_pq_writer_free(f->pw);
    sl_storage_upload_free(f->up);
    if (f->stored && !keep && sl_storage_delete(st, f->rel_path, eb, sizeof eb))
        sl_diag(SL_DIAG_WARN, "could not delete a lake file no commit references",
                "path=\"%s\" detail=\"%s\"", f->rel_path, eb);
    memset(f, 0, sizeof *f);
}
