/* Writing the log: formatting a commit's actions as JSON lines (commitInfo first, as Spark
 * does, then protocol, metaData, remove, add and txn), the table's schemaString, add stats, and
 * storing a commit as the object _delta_log/NNNNNNNNNNNNNNNNNNNN.json through the store's
 * create-if-absent put (file://: fsynced temporary file link()ed to the name; s3://:
 * If-None-Match: *), so of two writers of one version exactly one wins and a reader never
 * sees a partial commit. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"
#include "core/uuid.h"
#include "delta/delta_int.h"

#define LIT(s) s, sizeof(s) - 1

/* Longest string statistic kept, in code points (Delta writers cut at 32 as well). */
#define STRING_STAT_CHARS 32

static sl_err append_str(sl_buf *out, const char *s)
{
    return sl_buf_append_json_string(out, s, strlen(s));
}

static sl_err append_kv_object(sl_buf *out, const sl_delta_kv *kv, size_t n)
{
    sl_err err = sl_buf_append_char(out, '{');
    for (size_t i = 0; !err && i < n; i++) {
        if ((i && (err = sl_buf_append_char(out, ','))) || (err = append_str(out, kv[i].key)) ||
            (err = sl_buf_append_char(out, ':')))
            return err;
        err = kv[i].value ? append_str(out, kv[i].value) : sl_buf_append(out, LIT("null"));
    }
    return err ? err : sl_buf_append_char(out, '}');
}

sl_err sl_delta_schema_string(const sl_delta_table_def *def, sl_buf *out)
{
    sl_err err = sl_buf_append(out, LIT("{\"type\":\"struct\",\"fields\":["));
    for (size_t i = 0; !err && i < def->n_fields; i++) {
        const sl_delta_field *f = &def->fields[i];
        if ((i && (err = sl_buf_append_char(out, ','))) ||
            (err = sl_buf_append(out, LIT("{\"name\":"))) || (err = append_str(out, f->name)) ||
            (err = sl_buf_append(out, LIT(",\"type\":"))) || (err = append_str(out, f->type)) ||
            (err = sl_buf_appendf(out, ",\"nullable\":%s,\"metadata\":{}}",
                                  f->nullable ? "true" : "false")))
            return err;
    }
    return err ? err : sl_buf_append(out, LIT("]}"));
}

/* Relative paths are URIs in the log: every byte outside the unreserved set, '/' and '='
 * (Hive-style partition folders) is %-encoded. */
static sl_err append_path(sl_buf *out, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    sl_err err = sl_buf_append_char(out, '"');
    for (const unsigned char *p = (const unsigned char *)path; !err && *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~/=", c))
            err = sl_buf_append_char(out, (char)c);
        else
            err = sl_buf_append(out, ((char[]){'%', hex[c >> 4], hex[c & 15]}), 3);
    }
    return err ? err : sl_buf_append_char(out, '"');
}

static bool is_field(const sl_delta_table_def *def, const char *name)
{
    for (size_t i = 0; i < def->n_fields; i++) {
        if (!strcmp(def->fields[i].name, name))
            return true;
    }
    return false;
}

static sl_err format_create(const sl_delta_table_def *def, int64_t now_ms, sl_buf *out,
                            char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < def->n_partition_columns; i++) {
        if (!is_field(def, def->partition_columns[i]))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                 "partition column \"%s\" is not a field of the schema",
                                 def->partition_columns[i]);
    }
    char id[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(id);
    sl_buf schema;
    sl_buf_init(&schema, out->cap);
    sl_err err;
    if ((err = sl_buf_appendf(out,
                              "{\"protocol\":{\"minReaderVersion\":%d,\"minWriterVersion\":%d}}\n"
                              "{\"metaData\":{\"id\":\"%s\",\"name\":",
                              SL_DELTA_MIN_READER, SL_DELTA_MIN_WRITER, id)) ||
        (err = def->name ? append_str(out, def->name) : sl_buf_append(out, LIT("null"))) ||
        (err = sl_buf_append(out, LIT(",\"description\":null,\"format\":{\"provider\":"
                                      "\"parquet\",\"options\":{}},\"schemaString\":"))) ||
        (err = sl_delta_schema_string(def, &schema)) ||
        (err = sl_buf_append_json_string(out, schema.data, schema.len)) ||
        (err = sl_buf_append(out, LIT(",\"partitionColumns\":["))))
        goto out;
    for (size_t i = 0; i < def->n_partition_columns; i++) {
        if ((i && (err = sl_buf_append_char(out, ','))) ||
            (err = append_str(out, def->partition_columns[i])))
            goto out;
    }
    err = sl_buf_appendf(out, "],\"configuration\":{},\"createdTime\":%" PRId64 "}}\n", now_ms);
out:
    sl_buf_cleanup(&schema);
    return err;
}

static sl_err format_add(const sl_delta_add *a, sl_buf *out)
{
    sl_err err;
    if ((err = sl_buf_append(out, LIT("{\"add\":{\"path\":"))) ||
        (err = append_path(out, a->path)) ||
        (err = sl_buf_append(out, LIT(",\"partitionValues\":"))) ||
        (err = append_kv_object(out, a->partition_values, a->n_partition_values)) ||
        (err = sl_buf_appendf(
             out, ",\"size\":%" PRIu64 ",\"modificationTime\":%" PRId64 ",\"dataChange\":%s",
             a->size, a->modification_time_ms, a->data_change ? "true" : "false")))
        return err;
    if (a->stats &&
        ((err = sl_buf_append(out, LIT(",\"stats\":"))) || (err = append_str(out, a->stats))))
        return err;
    return sl_buf_append(out, LIT("}}\n"));
}

/* extendedFileMetadata: the remove carries partitionValues and size, so a reader of the
 * tombstone needs no other action to know the file. */
static sl_err format_remove(const sl_delta_remove *r, sl_buf *out)
{
    sl_err err;
    if ((err = sl_buf_append(out, LIT("{\"remove\":{\"path\":"))) ||
        (err = append_path(out, r->path)) ||
        (err = sl_buf_appendf(out,
                              ",\"deletionTimestamp\":%" PRId64
                              ",\"dataChange\":%s,\"extendedFileMetadata\":true,"
                              "\"partitionValues\":",
                              r->deletion_timestamp_ms, r->data_change ? "true" : "false")) ||
        (err = append_kv_object(out, r->partition_values, r->n_partition_values)))
        return err;
    return sl_buf_appendf(out, ",\"size\":%" PRIu64 "}}\n", r->size);
}

sl_err sl_delta_commit_format(const sl_delta_commit *c, sl_buf *out, char *errbuf, size_t errlen)
{
    if (!c->operation || !*c->operation)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "a commit needs an operation");
    int64_t now_ms = c->timestamp_ms ? c->timestamp_ms : sl_time_now_us() / 1000;
    sl_err err;
    if ((err = sl_buf_appendf(
             out, "{\"commitInfo\":{\"timestamp\":%" PRId64 ",\"operation\":", now_ms)) ||
        (err = append_str(out, c->operation)) ||
        (err = sl_buf_append(out, LIT(",\"operationParameters\":"))) ||
        (err = append_kv_object(out, c->operation_parameters, c->n_operation_parameters)))
        goto fail;
    if (c->read_version >= 0 &&
        (err = sl_buf_appendf(out, ",\"readVersion\":%" PRId64, c->read_version)))
        goto fail;
    if ((err = sl_buf_appendf(out, ",\"isBlindAppend\":%s,\"engineInfo\":\"sluice\"}}\n",
                              c->n_removes ? "false" : "true")))
        goto fail;
    if (c->create && (err = format_create(c->create, now_ms, out, errbuf, errlen)))
        return err;
    for (size_t i = 0; i < c->n_removes; i++) {
        if ((err = format_remove(&c->removes[i], out)))
            goto fail;
    }
    for (size_t i = 0; i < c->n_adds; i++) {
        if ((err = format_add(&c->adds[i], out)))
            goto fail;
    }
    for (size_t i = 0; i < c->n_txns; i++) {
        if ((err = sl_buf_append(out, LIT("{\"txn\":{\"appId\":"))) ||
            (err = append_str(out, c->txns[i].app_id)) ||
            (err = sl_buf_appendf(out, ",\"version\":%" PRId64 "}}\n", c->txns[i].version)))
            goto fail;
    }
    return SL_OK;
fail:
    return sl_errbuf_set(errbuf, errlen, err, "could not format the commit: %s", sl_strerror(err));
}

/* ---- stats ---- */

/* Byte length of the first `chars` code points of UTF-8 s (all of it if shorter). */
static size_t utf8_prefix(const char *s, size_t len, size_t chars, bool *cut)
{
    size_t i = 0, n = 0;
    while (i < len && n < chars) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xc0) == 0x80)
            i++;
        n++;
    }
    *cut = i < len;
    return i;
}

static sl_err append_stat(sl_buf *out, const sl_delta_column_stats *c, bool is_max, bool *wrote)
{
    const sl_delta_stat_value *v = is_max ? &c->max : &c->min;
    char tmp[64];
    *wrote = false;
    switch (c->kind) {
    case SL_DELTA_STAT_NONE:
        return SL_OK;
    case SL_DELTA_STAT_STRING: {
        bool cut;
        size_t n = utf8_prefix(v->s, v->len, STRING_STAT_CHARS, &cut);
        if (cut && is_max)
            return SL_OK; /* a cut max would be below the real one */
        *wrote = true;
        return sl_buf_append_json_string(out, v->s, n);
    }
    case SL_DELTA_STAT_LONG:
        *wrote = true;
        return sl_buf_appendf(out, "%" PRId64, v->i);
    case SL_DELTA_STAT_DOUBLE:
        if (!isfinite(c->min.d) || !isfinite(c->max.d))
            return SL_OK;
        *wrote = true;
        snprintf(tmp, sizeof tmp, "%.17g", v->d);
        for (char *p = tmp; *p; p++) {
            if (*p == ',')
                *p = '.';
        }
        return sl_buf_append_str(out, tmp);
    case SL_DELTA_STAT_TIMESTAMP: {
        /* Readers may parse stats at millisecond precision: widen to whole milliseconds so
         * the bounds stay bounds (min down, max up). */
        int64_t us = v->i;
        int64_t rem = ((us % 1000) + 1000) % 1000;
        us = is_max ? (rem ? us - rem + 1000 : us) : us - rem;
        char ts[SL_TIME_RFC3339_MAX];
        size_t n = sl_time_format_rfc3339(us, ts);
        *wrote = true;
        return sl_buf_appendf(out, "\"%.*s\"", (int)n, ts);
    }
    case SL_DELTA_STAT_DATE: {
        char ts[SL_TIME_RFC3339_MAX];
        sl_time_format_rfc3339(v->i * 86400 * INT64_C(1000000), ts);
        *wrote = true;
        return sl_buf_appendf(out, "\"%.10s\"", ts);
    }
    }
    return SL_ERR_INTERNAL;
}

static sl_err append_bounds(sl_buf *out, const sl_delta_column_stats *cols, size_t n, bool is_max)
{
    sl_err err = sl_buf_append_char(out, '{');
    bool first = true;
    for (size_t i = 0; !err && i < n; i++) {
        size_t mark = out->len;
        if ((!first && (err = sl_buf_append_char(out, ','))) ||
            (err = append_str(out, cols[i].name)) || (err = sl_buf_append_char(out, ':')))
            return err;
        bool wrote;
        if ((err = append_stat(out, &cols[i], is_max, &wrote)))
            return err;
        if (!wrote) {
            out->len = mark; /* drop the key */
            out->data[mark] = '\0';
        } else {
            first = false;
        }
    }
    return err ? err : sl_buf_append_char(out, '}');
}

sl_err sl_delta_stats_format(sl_buf *out, uint64_t num_records, const sl_delta_column_stats *cols,
                             size_t n)
{
    sl_err err;
    if ((err = sl_buf_appendf(out, "{\"numRecords\":%" PRIu64 ",\"minValues\":", num_records)) ||
        (err = append_bounds(out, cols, n, false)) ||
        (err = sl_buf_append(out, LIT(",\"maxValues\":"))) ||
        (err = append_bounds(out, cols, n, true)) ||
        (err = sl_buf_append(out, LIT(",\"nullCount\":{"))))
        return err;
    for (size_t i = 0; i < n; i++) {
        if ((i && (err = sl_buf_append_char(out, ','))) || (err = append_str(out, cols[i].name)) ||
            (err = sl_buf_appendf(out, ":%" PRIu64, cols[i].null_count)))
            return err;
    }
    return sl_buf_append(out, LIT("}}"));
}

/* ---- the store ---- */

void sl__delta_commit_key(int64_t version, char out[SL__DELTA_KEY_MAX])
{
    snprintf(out, SL__DELTA_KEY_MAX, "_delta_log/%020" PRId64 ".json", version);
}

sl_err sl_delta_log_put(sl_storage_t *st, int64_t version, const void *data, size_t len,
                        char *errbuf, size_t errlen)
{
    char key[SL__DELTA_KEY_MAX];
    if (version < 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "version %" PRId64 " is negative",
                             version);
    sl__delta_commit_key(version, key);
    sl_err err = sl_storage_put_if_absent(st, key, data, len, errbuf, errlen);
    if (err == SL_ERR_EXISTS)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_EXISTS,
                             "version %" PRId64 " of table \"%s\" already exists: another "
                             "writer committed it first",
                             version, sl_storage_uri(st));
    return err;
}

sl_err sl_delta_commit_write(sl_storage_t *st, int64_t version, const sl_delta_commit *c,
                             char *errbuf, size_t errlen)
{
    sl_buf data;
    sl_buf_init(&data, SL__DELTA_MAX_COMMIT_BYTES);
    sl_err err = sl_delta_commit_format(c, &data, errbuf, errlen);
    if (!err)
        err = sl_delta_log_put(st, version, data.data, data.len, errbuf, errlen);
    sl_buf_cleanup(&data);
    return err;
}

/* ---- appending beside other writers ---- */

/* What a blind append depends on: protocol, table id, schema, partition columns. */
static sl_err shape_of(const sl__delta_state *ds, sl_buf *out)
{
    sl_buf_reset(out);
    sl_err err = sl_buf_appendf(out, "%d/%d\n%s\n%s\n", ds->min_reader, ds->min_writer,
                                ds->table_id ? ds->table_id : "",
                                ds->schema_string ? ds->schema_string : "");
    for (size_t i = 0; !err && i < ds->n_partition_columns; i++)
        err = sl_buf_appendf(out, "%s\n", ds->partition_columns[i]);
    return err;
}

sl_err sl_delta_commit_append(sl_storage_t *st, sl_delta_snapshot_t *snap, sl_delta_commit *c,
                              unsigned max_attempts, sl_delta_conflict_cb check, void *opaque,
                              char *errbuf, size_t errlen)
{
    sl__delta_state *ds = sl__delta_snapshot_state(snap);
    if (c->create)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "an append cannot create a table");
    sl_buf data, before, after;
    sl_buf_init(&data, SL__DELTA_MAX_COMMIT_BYTES);
    sl_buf_init(&before, SL__DELTA_MAX_COMMIT_BYTES);
    sl_buf_init(&after, SL__DELTA_MAX_COMMIT_BYTES);
    sl_err err;
    for (unsigned attempt = 1;; attempt++) {
        int64_t v = ds->version + 1;
        c->read_version = ds->version;
        sl_buf_reset(&data);
        if ((err = sl_delta_commit_format(c, &data, errbuf, errlen)))
            goto out;
        err = sl_delta_log_put(st, v, data.data, data.len, errbuf, errlen);
        if (!err) {
            char detail[400];
            if ((err = sl__delta_state_apply(ds, v, data.data, data.len, detail, sizeof detail)))
                err = sl_errbuf_set(errbuf, errlen, err,
                                    "version %" PRId64 " is committed but could not be applied to "
                                    "the snapshot: %s",
                                    v, detail);
            goto out;
        }
        if (err != SL_ERR_EXISTS)
            goto out;
        if (attempt >= max_attempts) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_EXISTS,
                                "table \"%s\": other writers took %u versions in a row (the "
                                "last %" PRId64 "); giving up",
                                sl_storage_uri(st), attempt, v);
            goto out;
        }
        if ((err = shape_of(ds, &before)) ||
            (err = sl_delta_snapshot_update(st, snap, NULL, NULL, errbuf, errlen)) ||
            (err = shape_of(ds, &after)))
            goto out;
        if (ds->version < v) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                "table \"%s\": version %" PRId64 " is taken but does not read "
                                "back as a commit",
                                sl_storage_uri(st), v);
            goto out;
        }
        if (strcmp(before.data, after.data) != 0) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_EXISTS,
                                "table \"%s\": another writer changed its protocol or metadata "
                                "(by version %" PRId64 "); the append no longer applies",
                                sl_storage_uri(st), ds->version);
            goto out;
        }
        if (check && (err = check(opaque, snap, errbuf, errlen)))
            goto out;
    }
out:
    sl_buf_cleanup(&data);
    sl_buf_cleanup(&before);
    sl_buf_cleanup(&after);
    return err;
}
