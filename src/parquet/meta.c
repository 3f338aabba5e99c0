/* The Parquet metadata structures of parquet.thrift that sluice writes and reads
 * (FileMetaData and what it holds, PageHeader), over the compact protocol of thrift.c.
 * Decoding keeps the fields listed in parquet_int.h and skips every other field, so
 * footers of other writers (encryption aside) decode too. */
#include "parquet/parquet_int.h"

#include <stdio.h>
#include <string.h>

/* ---- encoding ---- */

static void enc_stats(sl__tc_enc *enc, int16_t id, const sl__pq_stats *st)
{
    sl__tc_field_struct(enc, id);
    if (st->has_null_count)
        sl__tc_field_i64(enc, 3, st->null_count);
    if (st->has_max)
        sl__tc_field_binary(enc, 5, st->max_value.ptr, st->max_value.len);
    if (st->has_min)
        sl__tc_field_binary(enc, 6, st->min_value.ptr, st->min_value.len);
    sl__tc_struct_end(enc);
}

static void enc_logical(sl__tc_enc *enc, const sl__pq_logical_type *lt)
{
    sl__tc_field_struct(enc, 10);
    sl__tc_field_struct(enc, (int16_t)lt->kind);
    if (lt->kind == SL__PQL_TIMESTAMP) {
        sl__tc_field_bool(enc, 1, lt->ts_utc);
        sl__tc_field_struct(enc, 2);
        sl__tc_field_struct(enc, (int16_t)lt->ts_unit);
        sl__tc_struct_end(enc);
        sl__tc_struct_end(enc);
    }
    sl__tc_struct_end(enc);
    sl__tc_struct_end(enc);
}

static void enc_schema(sl__tc_enc *enc, const sl__pq_schema_elem *se)
{
    sl__tc_struct_begin(enc);
    if (se->type >= 0)
        sl__tc_field_i32(enc, 1, se->type);
    if (se->repetition >= 0)
        sl__tc_field_i32(enc, 3, se->repetition);
    sl__tc_field_binary(enc, 4, se->name.ptr, se->name.len);
    if (se->num_children >= 0)
        sl__tc_field_i32(enc, 5, se->num_children);
    if (se->converted_type >= 0)
        sl__tc_field_i32(enc, 6, se->converted_type);
    if (se->logical.kind)
        enc_logical(enc, &se->logical);
    sl__tc_struct_end(enc);
}

static void enc_col_meta(sl__tc_enc *enc, const sl__pq_col_meta *cm)
{
    sl__tc_field_struct(enc, 3);
    sl__tc_field_i32(enc, 1, cm->type);
    sl__tc_field_list(enc, 2, SL__TC_I32, cm->n_encodings);
    for (size_t i = 0; i < cm->n_encodings; i++)
        sl__tc_i32(enc, cm->encodings[i]);
    sl__tc_field_list(enc, 3, SL__TC_BINARY, cm->n_path);
    for (size_t i = 0; i < cm->n_path; i++)
        sl__tc_binary(enc, cm->path[i].ptr, cm->path[i].len);
    sl__tc_field_i32(enc, 4, cm->codec);
    sl__tc_field_i64(enc, 5, cm->num_values);
    sl__tc_field_i64(enc, 6, cm->total_uncompressed_size);
    sl__tc_field_i64(enc, 7, cm->total_compressed_size);
    sl__tc_field_i64(enc, 9, cm->data_page_offset);
    if (cm->dictionary_page_offset >= 0)
        sl__tc_field_i64(enc, 11, cm->dictionary_page_offset);
    if (cm->has_stats)
        enc_stats(enc, 12, &cm->stats);
    sl__tc_struct_end(enc);
}

static void enc_row_group(sl__tc_enc *enc, const sl__pq_row_group *rg)
{
    sl__tc_struct_begin(enc);
    sl__tc_field_list(enc, 1, SL__TC_STRUCT, rg->n_columns);
    for (size_t i = 0; i < rg->n_columns; i++) {
        const sl__pq_col_chunk *cc = &rg->columns[i];
        sl__tc_struct_begin(enc);
        sl__tc_field_i64(enc, 2, cc->file_offset);
        if (cc->has_meta)
            enc_col_meta(enc, &cc->meta);
        sl__tc_struct_end(enc);
    }
    sl__tc_field_i64(enc, 2, rg->total_byte_size);
    sl__tc_field_i64(enc, 3, rg->num_rows);
    if (rg->file_offset >= 0)
        sl__tc_field_i64(enc, 5, rg->file_offset);
    if (rg->total_compressed_size >= 0)
        sl__tc_field_i64(enc, 6, rg->total_compressed_size);
    sl__tc_struct_end(enc);
}

sl_err sl__pq_file_meta_encode(const sl__pq_file_meta *fm, sl_buf *out)
{
    sl__tc_enc enc;
    sl__tc_enc_init(&enc, out);
    sl__tc_struct_begin(&enc);
    sl__tc_field_i32(&enc, 1, fm->version);
    sl__tc_field_list(&enc, 2, SL__TC_STRUCT, fm->n_schema);
    for (size_t i = 0; i < fm->n_schema; i++)
        enc_schema(&enc, &fm->schema[i]);
    sl__tc_field_i64(&enc, 3, fm->num_rows);
    sl__tc_field_list(&enc, 4, SL__TC_STRUCT, fm->n_row_groups);
    for (size_t i = 0; i < fm->n_row_groups; i++)
        enc_row_group(&enc, &fm->row_groups[i]);
    if (fm->n_kv) {
        sl__tc_field_list(&enc, 5, SL__TC_STRUCT, fm->n_kv);
        for (size_t i = 0; i < fm->n_kv; i++) {
            sl__tc_struct_begin(&enc);
            sl__tc_field_binary(&enc, 1, fm->kv[i].key.ptr, fm->kv[i].key.len);
            if (fm->kv[i].has_value)
                sl__tc_field_binary(&enc, 2, fm->kv[i].value.ptr, fm->kv[i].value.len);
            sl__tc_struct_end(&enc);
        }
    }
    if (fm->has_created_by)
        sl__tc_field_binary(&enc, 6, fm->created_by.ptr, fm->created_by.len);
    if (fm->n_column_orders) { /* TYPE_ORDER: min_value/max_value use the type's order */
        sl__tc_field_list(&enc, 7, SL__TC_STRUCT, fm->n_column_orders);
        for (size_t i = 0; i < fm->n_column_orders; i++) {
            sl__tc_struct_begin(&enc);
            sl__tc_field_struct(&enc, 1);
            sl__tc_struct_end(&enc);
            sl__tc_struct_end(&enc);
        }
    }
    sl__tc_struct_end(&enc);
    return enc.err;
}

sl_err sl__pq_page_header_encode(const sl__pq_page_header *ph, sl_buf *out)
{
    sl__tc_enc enc;
    sl__tc_enc_init(&enc, out);
    sl__tc_struct_begin(&enc);
    sl__tc_field_i32(&enc, 1, ph->type);
    sl__tc_field_i32(&enc, 2, ph->uncompressed_page_size);
    sl__tc_field_i32(&enc, 3, ph->compressed_page_size);
    if (ph->has_data) {
        sl__tc_field_struct(&enc, 5);
        sl__tc_field_i32(&enc, 1, ph->num_values);
        sl__tc_field_i32(&enc, 2, ph->encoding);
        sl__tc_field_i32(&enc, 3, ph->def_encoding);
        sl__tc_field_i32(&enc, 4, ph->rep_encoding);
        sl__tc_struct_end(&enc);
    }
    if (ph->has_dict) {
        sl__tc_field_struct(&enc, 7);
        sl__tc_field_i32(&enc, 1, ph->num_values);
        sl__tc_field_i32(&enc, 2, ph->encoding);
        sl__tc_struct_end(&enc);
    }
    sl__tc_struct_end(&enc);
    return enc.err;
}

/* ---- decoding ---- */

/* The decoder state plus the arena; alloc failures are remembered as TOO_LARGE. */
typedef struct meta_dec {
    sl__tc_dec tc;
    sl__pq_arena *a;
    bool out_of_memory;
} meta_dec;

static void *dec_array(meta_dec *md, size_t n, size_t elem)
{
    if (n == 0)
        return NULL;
    void *p = n > SIZE_MAX / elem ? NULL : sl__pq_arena_alloc(md->a, n * elem);
    if (!p) {
        md->out_of_memory = true;
        sl__tc_fail(&md->tc, "metadata larger than its memory limit");
    }
    return p;
}

static bool dec_str(meta_dec *md, int type, sl__pq_str *s)
{
    const uint8_t *p;
    if (!sl__tc_read_binary(&md->tc, type, &p, &s->len))
        return false;
    s->ptr = (const char *)p;
    return true;
}

/* Loops over the fields of a struct (entering and leaving it); the loop body must consume
 * or skip each value. The guard variable is named per line so loops can nest. */
#define FF_CAT2(a, b) a##b
#define FF_CAT(a, b)  FF_CAT2(a, b)
#define FOR_FIELDS(md, type, id)                                                                   \
    for (bool FF_CAT(ok_, __LINE__) = sl__tc_struct_enter(&(md)->tc); FF_CAT(ok_, __LINE__);       \
         FF_CAT(ok_, __LINE__) = false, sl__tc_struct_leave(&(md)->tc))                            \
        while (sl__tc_next_field(&(md)->tc, &(type), &(id)))

static bool dec_stats(meta_dec *md, sl__pq_stats *st)
{
    int t;
    int16_t id;
    FOR_FIELDS(md, t, id)
    {
        bool ok;
        if (id == 3)
            ok = sl__tc_read_i64(&md->tc, t, &st->null_count) && (st->has_null_count = true);
        else if (id == 6 || (id == 2 && !st->has_min))
            ok = dec_str(md, t, &st->min_value) && (st->has_min = true);
        else if (id == 5 || (id == 1 && !st->has_max))
            ok = dec_str(md, t, &st->max_value) && (st->has_max = true);
        else
            ok = sl__tc_skip(&md->tc, t);
        if (!ok)
            break;
    }
    return !md->tc.err;
}

/* A union: one field whose id names the member; returns it in *kind (0 if empty). */
static bool dec_time_unit(meta_dec *md, int *unit)
{
    int t;
    int16_t id;
    FOR_FIELDS(md, t, id)
    {
        *unit = id;
        if (!sl__tc_skip(&md->tc, t))
            break;
    }
    return !md->tc.err;
}

static bool dec_logical(meta_dec *md, sl__pq_logical_type *lt)
{
    int t, t2;
    int16_t id, id2;
    FOR_FIELDS(md, t, id)
    {
        lt->kind = id;
        if (id == SL__PQL_TIMESTAMP && t == SL__TC_STRUCT) {
            FOR_FIELDS(md, t2, id2)
            {
                bool ok;
                if (id2 == 1)
                    ok = sl__tc_read_bool(&md->tc, t2, &lt->ts_utc);
                else if (id2 == 2 && t2 == SL__TC_STRUCT)
                    ok = dec_time_unit(md, &lt->ts_unit);
                else
                    ok = sl__tc_skip(&md->tc, t2);
                if (!ok)
                    break;
            }
        } else if (!sl__tc_skip(&md->tc, t)) {
            break;
        }
        if (md->tc.err)
            break;
    }
    return !md->tc.err;
}

static bool dec_schema(meta_dec *md, sl__pq_schema_elem *se)
{
    int t;
    int16_t id;
    bool has_name = false;
    se->type = se->repetition = se->num_children = se->converted_type = -1;
    FOR_FIELDS(md, t, id)
    {
        bool ok;
        switch (id) {
        case 1:
            ok = sl__tc_read_i32(&md->tc, t, &se->type);
            break;
        case 3:
            ok = sl__tc_read_i32(&md->tc, t, &se->repetition);
            break;
        case 4:
            ok = dec_str(md, t, &se->name) && (has_name = true);
            break;
        case 5:
            ok = sl__tc_read_i32(&md->tc, t, &se->num_children);
            break;
        case 6:
            ok = sl__tc_read_i32(&md->tc, t, &se->converted_type);
            break;
        case 10:
            ok = t == SL__TC_STRUCT ? dec_logical(md, &se->logical) : sl__tc_skip(&md->tc, t);
            break;
        default:
            ok = sl__tc_skip(&md->tc, t);
        }
        if (!ok)
            break;
    }
    if (!md->tc.err && !has_name)
        return sl__tc_fail(&md->tc, "schema element without a name");
    if (!md->tc.err && se->num_children < -1)
        return sl__tc_fail(&md->tc, "negative num_children");
    return !md->tc.err;
}

static bool dec_col_meta(meta_dec *md, sl__pq_col_meta *cm)
{
    int t, et;
    int16_t id;
    size_t n;
    cm->dictionary_page_offset = -1;
    FOR_FIELDS(md, t, id)
    {
        bool ok = true;
        switch (id) {
        case 1:
            ok = sl__tc_read_i32(&md->tc, t, &cm->type);
            break;
        case 2:
            if (!sl__tc_read_list(&md->tc, t, &et, &n) ||
                !(cm->encodings = dec_array(md, n, sizeof *cm->encodings)) != !n)
                return false;
            cm->n_encodings = n;
            for (size_t i = 0; i < n && ok; i++)
                ok = sl__tc_read_i32(&md->tc, et, &cm->encodings[i]);
            break;
        case 3:
            if (!sl__tc_read_list(&md->tc, t, &et, &n) ||
                !(cm->path = dec_array(md, n, sizeof *cm->path)) != !n)
                return false;
            cm->n_path = n;
            for (size_t i = 0; i < n && ok; i++)
                ok = dec_str(md, et, &cm->path[i]);
            break;
        case 4:
            ok = sl__tc_read_i32(&md->tc, t, &cm->codec);
            break;
        case 5:
            ok = sl__tc_read_i64(&md->tc, t, &cm->num_values);
            break;
        case 6:
            ok = sl__tc_read_i64(&md->tc, t, &cm->total_uncompressed_size);
            break;
        case 7:
            ok = sl__tc_read_i64(&md->tc, t, &cm->total_compressed_size);
            break;
        case 9:
            ok = sl__tc_read_i64(&md->tc, t, &cm->data_page_offset);
            break;
        case 11:
            ok = sl__tc_read_i64(&md->tc, t, &cm->dictionary_page_offset);
            break;
        case 12:
            ok = t == SL__TC_STRUCT ? (cm->has_stats = true, dec_stats(md, &cm->stats))
                                    : sl__tc_skip(&md->tc, t);
            break;
        default:
            ok = sl__tc_skip(&md->tc, t);
        }
        if (!ok)
            break;
    }
    return !md->tc.err;
}

static bool dec_col_chunk(meta_dec *md, sl__pq_col_chunk *cc)
{
    int t;
    int16_t id;
    FOR_FIELDS(md, t, id)
    {
        bool ok;
        if (id == 2)
            ok = sl__tc_read_i64(&md->tc, t, &cc->file_offset);
        else if (id == 3 && t == SL__TC_STRUCT)
            ok = (cc->has_meta = true, dec_col_meta(md, &cc->meta));
        else
            ok = sl__tc_skip(&md->tc, t);
        if (!ok)
            break;
    }
    return !md->tc.err;
}

static bool dec_row_group(meta_dec *md, sl__pq_row_group *rg)
{
    int t, et;
    int16_t id;
    size_t n;
    rg->file_offset = rg->total_compressed_size = -1;
    FOR_FIELDS(md, t, id)
    {
        bool ok = true;
        switch (id) {
        case 1:
            if (!sl__tc_read_list(&md->tc, t, &et, &n))
                return false;
            if (et != SL__TC_STRUCT)
                return sl__tc_fail(&md->tc, "row group columns are not structures");
            if (!(rg->columns = dec_array(md, n, sizeof *rg->columns)) != !n)
                return false;
            rg->n_columns = n;
            for (size_t i = 0; i < n && ok; i++)
                ok = dec_col_chunk(md, &rg->columns[i]);
            break;
        case 2:
            ok = sl__tc_read_i64(&md->tc, t, &rg->total_byte_size);
            break;
        case 3:
            ok = sl__tc_read_i64(&md->tc, t, &rg->num_rows);
            break;
        case 5:
            ok = sl__tc_read_i64(&md->tc, t, &rg->file_offset);
            break;
        case 6:
            ok = sl__tc_read_i64(&md->tc, t, &rg->total_compressed_size);
            break;
        default:
            ok = sl__tc_skip(&md->tc, t);
        }
        if (!ok)
            break;
    }
    return !md->tc.err;
}

static bool dec_kv(meta_dec *md, sl__pq_kv *kv)
{
    int t;
    int16_t id;
    FOR_FIELDS(md, t, id)
    {
        bool ok;
        if (id == 1)
            ok = dec_str(md, t, &kv->key);
        else if (id == 2)
            ok = dec_str(md, t, &kv->value) && (kv->has_value = true);
        else
            ok = sl__tc_skip(&md->tc, t);
        if (!ok)
            break;
    }
    return !md->tc.err;
}

static bool dec_file_meta(meta_dec *md, sl__pq_file_meta *fm)
{
    int t, et;
    int16_t id;
    size_t n;
    bool has_schema = false;
    FOR_FIELDS(md, t, id)
    {
        bool ok = true;
        switch (id) {
        case 1:
            ok = sl__tc_read_i32(&md->tc, t, &fm->version);
            break;
        case 2:
        case 4:
        case 5:
            if (!sl__tc_read_list(&md->tc, t, &et, &n))
                return false;
            if (et != SL__TC_STRUCT)
                return sl__tc_fail(&md->tc, "a metadata list does not hold structures");
            if (id == 2) {
                if (!(fm->schema = dec_array(md, n, sizeof *fm->schema)) != !n)
                    return false;
                fm->n_schema = n;
                has_schema = true;
                for (size_t i = 0; i < n && ok; i++)
                    ok = dec_schema(md, &fm->schema[i]);
            } else if (id == 4) {
                if (!(fm->row_groups = dec_array(md, n, sizeof *fm->row_groups)) != !n)
                    return false;
                fm->n_row_groups = n;
                for (size_t i = 0; i < n && ok; i++)
                    ok = dec_row_group(md, &fm->row_groups[i]);
            } else {
                if (!(fm->kv = dec_array(md, n, sizeof *fm->kv)) != !n)
                    return false;
                fm->n_kv = n;
                for (size_t i = 0; i < n && ok; i++)
                    ok = dec_kv(md, &fm->kv[i]);
            }
            break;
        case 3:
            ok = sl__tc_read_i64(&md->tc, t, &fm->num_rows);
            break;
        case 6:
            ok = dec_str(md, t, &fm->created_by) && (fm->has_created_by = true);
            break;
        case 7:
            if (!sl__tc_read_list(&md->tc, t, &et, &n))
                return false;
            fm->n_column_orders = n;
            for (size_t i = 0; i < n && ok; i++)
                ok = sl__tc_skip(&md->tc, et);
            break;
        default:
            ok = sl__tc_skip(&md->tc, t);
        }
        if (!ok)
            break;
    }
    if (!md->tc.err && !has_schema)
        return sl__tc_fail(&md->tc, "file metadata without a schema");
    return !md->tc.err;
}

static sl_err dec_error(const meta_dec *md, const char *what, char *errbuf, size_t errlen)
{
    return sl_errbuf_set(errbuf, errlen, md->out_of_memory ? SL_ERR_TOO_LARGE : md->tc.err,
                         "corrupt %s at byte %td: %s", what, md->tc.p - md->tc.start,
                         md->tc.where ? md->tc.where : "bad structure");
}

sl_err sl__pq_file_meta_decode(const void *p, size_t n, sl__pq_arena *a, sl__pq_file_meta *fm,
                               char *errbuf, size_t errlen)
{
    meta_dec md = {.a = a};
    memset(fm, 0, sizeof *fm);
    sl__tc_dec_init(&md.tc, p, n);
    if (!dec_file_meta(&md, fm))
        return dec_error(&md, "parquet footer", errbuf, errlen);
    return SL_OK;
}

sl_err sl__pq_page_header_decode(const void *p, size_t n, sl__pq_page_header *ph, size_t *used,
                                 char *errbuf, size_t errlen)
{
    meta_dec md = {0};
    int t, t2;
    int16_t id, id2;
    memset(ph, 0, sizeof *ph);
    sl__tc_dec_init(&md.tc, p, n);
    FOR_FIELDS(&md, t, id)
    {
        bool ok = true;
        if (id >= 1 && id <= 3) {
            int32_t *dst = id == 1   ? &ph->type
                           : id == 2 ? &ph->uncompressed_page_size
                                     : &ph->compressed_page_size;
            ok = sl__tc_read_i32(&md.tc, t, dst);
        } else if ((id == 5 || id == 7) && t == SL__TC_STRUCT) {
            *(id == 5 ? &ph->has_data : &ph->has_dict) = true;
            FOR_FIELDS(&md, t2, id2)
            {
                int32_t *dst = id2 == 1              ? &ph->num_values
                               : id2 == 2            ? &ph->encoding
                               : id2 == 3 && id == 5 ? &ph->def_encoding
                               : id2 == 4 && id == 5 ? &ph->rep_encoding
                                                     : NULL;
                if (!(dst ? sl__tc_read_i32(&md.tc, t2, dst) : sl__tc_skip(&md.tc, t2)))
                    break;
            }
        } else if (id == 8 && t == SL__TC_STRUCT) {
            ph->has_data_v2 = ph->v2_compressed = true; /* is_compressed defaults to true */
            FOR_FIELDS(&md, t2, id2)
            {
                int32_t *dst = id2 == 1   ? &ph->num_values
                               : id2 == 2 ? &ph->num_nulls
                               : id2 == 3 ? &ph->num_rows
                               : id2 == 4 ? &ph->encoding
                               : id2 == 5 ? &ph->def_len
                               : id2 == 6 ? &ph->rep_len
                                          : NULL;
                bool fine = dst        ? sl__tc_read_i32(&md.tc, t2, dst)
                            : id2 == 7 ? sl__tc_read_bool(&md.tc, t2, &ph->v2_compressed)
                                       : sl__tc_skip(&md.tc, t2);
                if (!fine)
                    break;
            }
        } else {
            ok = sl__tc_skip(&md.tc, t);
        }
        if (!ok || md.tc.err)
            break;
    }
    if (md.tc.err)
        return dec_error(&md, "page header", errbuf, errlen);
    if (ph->def_len < 0 || ph->rep_len < 0 || ph->num_nulls < 0 || ph->num_rows < 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "corrupt page header: negative level length or count");
    if (ph->compressed_page_size < 0 || ph->uncompressed_page_size < 0 || ph->num_values < 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "corrupt page header: negative size or count");
    *used = (size_t)(md.tc.p - md.tc.start);
    return SL_OK;
}

sl_err sl__pq_footer_decode(const void *file, size_t n, sl__pq_arena *a, sl__pq_file_meta *fm,
                            char *errbuf, size_t errlen)
{
    const uint8_t *b = file;
    if (n < 12 || memcmp(b, "PAR1", 4) != 0 || memcmp(b + n - 4, "PAR1", 4) != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "not a parquet file (%zu bytes, no \"PAR1\" at both ends)", n);
    const uint8_t *lp = b + n - 8;
    uint32_t len =
        (uint32_t)lp[0] | (uint32_t)lp[1] << 8 | (uint32_t)lp[2] << 16 | (uint32_t)lp[3] << 24;
    if (len > n - 12)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "corrupt parquet footer: length %u in a file of %zu bytes", len, n);
    return sl__pq_file_meta_decode(b + n - 8 - len, len, a, fm, errbuf, errlen);
}
