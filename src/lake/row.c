/* The event table: its schema, and one normalized event (the log record) to one Parquet
 * row. Strings are taken as the log holds them; metadata keeps the exact text the log
 * holds (sliced out of the record when it is the last key, as normalize.c writes it), so
 * a reader gets the client's numbers back digit for digit. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"
#include "lake/lake.h"

#define US_PER_DAY INT64_C(86400000000)

enum {
    COL_EVENT_ID,
    COL_TIMESTAMP,
    COL_RECEIVED_AT,
    COL_CHANNEL,
    COL_PLATFORM,
    COL_EVENT_TYPE,
    COL_EVENT_CATEGORY,
    COL_RESOURCE_ID,
    COL_RESOURCE_TITLE,
    COL_INTERACTION_TARGET,
    COL_SESSION_ID,
    COL_USER_ID,
    COL_DEVICE_ID,
    COL_USER_AGENT,
    COL_CLIENT_VERSION,
    COL_INTERACTION_VALUE,
    COL_INTERACTION_TEXT,
    COL_METADATA,
};

#define STR(name, rep)                                                                             \
    {                                                                                              \
        name, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, rep                                          \
    }
#define TIME(name, rep)                                                                            \
    {                                                                                              \
        name, SL_PQ_INT64, SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC, rep                                 \
    }

const sl_pq_column sl_lake_columns[SL_LAKE_N_COLUMNS] = {
    [COL_EVENT_ID] = STR("event_id", SL_PQ_REQUIRED),
    [COL_TIMESTAMP] = TIME("timestamp", SL_PQ_REQUIRED),
    [COL_RECEIVED_AT] = TIME("received_at", SL_PQ_REQUIRED),
    [COL_CHANNEL] = STR("channel", SL_PQ_REQUIRED),
    [COL_PLATFORM] = STR("platform", SL_PQ_OPTIONAL),
    [COL_EVENT_TYPE] = STR("event_type", SL_PQ_REQUIRED),
    [COL_EVENT_CATEGORY] = STR("event_category", SL_PQ_OPTIONAL),
    [COL_RESOURCE_ID] = STR("resource_id", SL_PQ_OPTIONAL),
    [COL_RESOURCE_TITLE] = STR("resource_title", SL_PQ_OPTIONAL),
    [COL_INTERACTION_TARGET] = STR("interaction_target", SL_PQ_OPTIONAL),
    [COL_SESSION_ID] = STR("session_id", SL_PQ_REQUIRED),
    [COL_USER_ID] = STR("user_id", SL_PQ_OPTIONAL),
    [COL_DEVICE_ID] = STR("device_id", SL_PQ_OPTIONAL),
    [COL_USER_AGENT] = STR("user_agent", SL_PQ_OPTIONAL),
    [COL_CLIENT_VERSION] = STR("client_version", SL_PQ_OPTIONAL),
    [COL_INTERACTION_VALUE] = {"interaction_value", SL_PQ_DOUBLE, SL_PQ_LOGICAL_NONE,
                               SL_PQ_OPTIONAL},
    [COL_INTERACTION_TEXT] = STR("interaction_text", SL_PQ_OPTIONAL),
    /* A Delta string holding JSON: annotated STRING, which every engine reads as text. */
    [COL_METADATA] = STR("metadata", SL_PQ_OPTIONAL),
};

/* The Delta schema: the same columns (strings, timestamps, a double) and event_date. */
#define F(name, type, nullable)                                                                    \
    {                                                                                              \
        name, type, nullable                                                                       \
    }
static const sl_delta_field table_fields[SL_LAKE_N_COLUMNS + 1] = {
    F("event_id", "string", false),        F("timestamp", "timestamp", false),
    F("received_at", "timestamp", false),  F("channel", "string", false),
    F("platform", "string", true),         F("event_type", "string", false),
    F("event_category", "string", true),   F("resource_id", "string", true),
    F("resource_title", "string", true),   F("interaction_target", "string", true),
    F("session_id", "string", false),      F("user_id", "string", true),
    F("device_id", "string", true),        F("user_agent", "string", true),
    F("client_version", "string", true),   F("interaction_value", "double", true),
    F("interaction_text", "string", true), F("metadata", "string", true),
    F("event_date", "date", false),
};
static const char *const partition_columns[] = {"event_date"};

const sl_delta_table_def sl_lake_table_def = {
    .fields = table_fields,
    .n_fields = SL_LAKE_N_COLUMNS + 1,
    .partition_columns = partition_columns,
    .n_partition_columns = 1,
    .name = "analytics_events",
};

void sl_lake_row_init(sl_lake_row *row)
{
    memset(row, 0, sizeof *row);
}

void sl_lake_row_cleanup(sl_lake_row *row)
{
    json_decref(row->doc);
    free(row->scratch);
    sl_lake_row_init(row);
}

void sl_lake_format_date(int32_t days, char out[11])
{
    char ts[SL_TIME_RFC3339_MAX];
    sl_time_format_rfc3339((int64_t)days * US_PER_DAY, ts);
    memcpy(out, ts, 10);
    out[10] = '\0';
}

/* The text of the last key's value when that key is metadata: the record ends with
 * `"metadata":{...}}`. A `"` outside a string is structural, so the first `,"metadata":`
 * in the text is the top-level key (earlier values are strings, numbers or null). */
static bool slice_metadata(const char *json, size_t len, const char **p, size_t *n)
{
    static const char key[] = ",\"metadata\":";
    const char *hit = memmem(json, len, key, sizeof key - 1);
    if (!hit)
        return false;
    const char *start = hit + sizeof key - 1;
    const char *end = json + len;
    while (end > start && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    if (end - start < 3 || start[0] != '{' || end[-1] != '}' || end[-2] != '}')
        return false;
    *p = start;
    *n = (size_t)(end - 1 - start);
    return true;
}

static sl_err bad(char *errbuf, size_t errlen, const char *field, const char *rule)
{
    return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "field \"%s\" %s", field, rule);
}

sl_err sl_lake_row_parse(sl_lake_row *row, const char *json, size_t len, char *errbuf,
                         size_t errlen)
{
    json_decref(row->doc);
    row->doc = NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "not a JSON object: %s",
                             doc ? "another JSON value" : jerr.text);
    }
    row->doc = doc;
    for (int c = 0; c < SL_LAKE_N_COLUMNS; c++) {
        const sl_pq_column *col = &sl_lake_columns[c];
        sl_pq_value *v = &row->values[c];
        json_t *j = json_object_get(doc, col->name);
        memset(v, 0, sizeof *v);
        if (j == NULL || json_is_null(j)) {
            if (col->repetition == SL_PQ_REQUIRED)
                return bad(errbuf, errlen, col->name, "is required");
            v->is_null = true;
            continue;
        }
        if (c == COL_METADATA) {
            if (!json_is_object(j))
                return bad(errbuf, errlen, col->name, "is not an object");
            const char *p;
            size_t n;
            const char *last = NULL;
            for (void *it = json_object_iter(doc); it; it = json_object_iter_next(doc, it))
                last = json_object_iter_key(it);
            if (last && !strcmp(last, "metadata") && slice_metadata(json, len, &p, &n)) {
                v->v.bytes.ptr = p;
                v->v.bytes.len = n;
                continue;
            }
            free(row->scratch);
            if (!(row->scratch = json_dumps(j, JSON_COMPACT)))
                return SL_ERR_NOMEM;
            v->v.bytes.ptr = row->scratch;
            v->v.bytes.len = strlen(row->scratch);
            continue;
        }
        if (col->type == SL_PQ_DOUBLE) {
            if (!json_is_number(j))
                return bad(errbuf, errlen, col->name, "is not a number");
            v->v.f64 = json_number_value(j);
            continue;
        }
        if (!json_is_string(j))
            return bad(errbuf, errlen, col->name, "is not a string");
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        if (col->logical == SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC) {
            if (sl_time_parse_rfc3339(s, n, &v->v.i64))
                return bad(errbuf, errlen, col->name, "is not an RFC 3339 time");
            continue;
        }
        v->v.bytes.ptr = s;
        v->v.bytes.len = n;
    }
    int64_t ts = row->values[COL_TIMESTAMP].v.i64;
    int64_t day = ts / US_PER_DAY - (ts % US_PER_DAY < 0);
    row->event_date = (int32_t)day;
    return SL_OK;
}

sl_err sl_lake_store_open(const char *uri, const sl_storage_options *so, sl_storage_t **st,
                          char *errbuf, size_t errlen)
{
    *st = NULL;
    if (strncmp(uri, "file://", 7) != 0 && strncmp(uri, "s3://", 5) != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "lake \"%s\" is not a file://DIR or s3://BUCKET/PREFIX URI", uri);
    char detail[400];
    sl_err err = sl_storage_open(uri, so, st, detail, sizeof detail);
    if (err)
        return sl_errbuf_set(errbuf, errlen, err, "lake \"%s\": %s", uri, detail);
    return SL_OK;
}
