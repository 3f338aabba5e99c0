/* Log record -> one line of PostgreSQL's COPY text format for analytics_events, plus the
 * text of the columns the dedup ids and the rollups need.
 * Records are read as untrusted JSON (another producer may share a Kafka topic): any
 * JSON object is turned into a row, and PostgreSQL judges the values (a row it refuses
 * goes to the dead-letter table), so this file only escapes and formats. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/time.h"
#include "pg/pg_int.h"

const char sl__pg_copy_columns[] =
    "event_id, \"timestamp\", received_at, channel, platform, event_type, event_category, "
    "resource_id, resource_title, interaction_target, session_id, user_id, device_id, "
    "user_agent, client_version, interaction_value, interaction_text, metadata";

/* COPY text escapes: backslash, and the row and column separators. */
static sl_err append_escaped(sl_buf *out, const char *s, size_t len)
{
    sl_err err;
    if ((err = sl_buf_reserve(out, len + 16)))
        return err;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            continue;
        }
        if ((err = sl_buf_append(out, s + run, i - run)) || (err = sl_buf_append(out, esc, 2)))
            return err;
        run = i + 1;
    }
    return sl_buf_append(out, s + run, len - run);
}

/* One row being built: the COPY text, and the side buffer of key texts. */
typedef struct builder {
    sl_buf *out, *text;
} builder;

/* Appends a column's text: escaped to the row and, when key is not NULL, as it is to the
 * side buffer (key then locates it). */
static sl_err put_text(builder *b, const char *s, size_t len, sl__pg_text *key)
{
    sl_err err = append_escaped(b->out, s, len);
    if (err || !key)
        return err;
    key->off = b->text->len;
    key->len = len;
    return sl_buf_append(b->text, s, len);
}

static sl_err put_null(builder *b, sl__pg_text *key)
{
    if (key)
        *key = (sl__pg_text){0, SL__PG_NULL};
    return sl_buf_append(b->out, "\\N", 2);
}

/* A value as its column text: strings as they are, numbers printed, null as \N, and
 * anything else as its JSON text (PostgreSQL then takes or refuses it). */
static sl_err put_value(builder *b, const json_t *v, sl__pg_text *key)
{
    char num[40];
    int n;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_NULL:
        return put_null(b, key);
    case JSON_STRING:
        return put_text(b, json_string_value(v), json_string_length(v), key);
    case JSON_INTEGER:
        n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return put_text(b, num, (size_t)n, key);
    case JSON_REAL:
        n = snprintf(num, sizeof num, "%.17g", json_real_value(v));
        return put_text(b, num, (size_t)n, key);
    case JSON_TRUE:
        return put_text(b, "true", 4, key);
    case JSON_FALSE:
        return put_text(b, "false", 5, key);
    default:
        break;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return SL_ERR_NOMEM;
    sl_err err = put_text(b, text, strlen(text), key);
    free(text);
    return err;
}

static sl_err put_field(builder *b, const json_t *obj, const char *name, sl__pg_text *key)
{
    sl_err err = sl_buf_append_char(b->out, '\t');
    return err ? err : put_value(b, json_object_get(obj, name), key);
}

sl_err sl__pg_row_append(sl_buf *out, sl_buf *text, const sl_log_message *m, sl__pg_keys *keys,
                         int32_t *day, char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *obj = json_loadb(m->value, m->value_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "record is not JSON: %s at character %d", jerr.text, jerr.position);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "record is not a JSON object");
    }
    builder b = {out, text};
    size_t start = out->len, text_start = text->len;
    sl_err err;
    char num[64];
    int n;

    const json_t *id = json_object_get(obj, "event_id");
    if (json_is_string(id) && json_string_length(id) > 0) {
        err = put_value(&b, id, &keys->event_id);
    } else {
        n = snprintf(num, sizeof num, "sluice:%u:%" PRIu64, m->partition, m->offset);
        err = put_text(&b, num, (size_t)n, &keys->event_id);
    }
    if (err)
        goto out;

    const json_t *recv = json_object_get(obj, "received_at");
    char append_time[SL_TIME_RFC3339_MAX];
    size_t append_len = sl_time_format_rfc3339(m->timestamp_ms * 1000, append_time);
    const json_t *ts = json_object_get(obj, "timestamp");
    if (!ts || json_is_null(ts))
        ts = recv;
    *day = SL__PG_NO_DAY;
    int64_t us;
    if (json_is_string(ts) &&
        sl_time_parse_rfc3339(json_string_value(ts), json_string_length(ts), &us) == SL_OK)
        *day = sl__pg_day_of_us(us);
    if ((err = sl_buf_append_char(out, '\t')))
        goto out;
    if (!ts || json_is_null(ts)) {
        *day = sl__pg_day_of_us(m->timestamp_ms * 1000);
        err = put_text(&b, append_time, append_len, &keys->timestamp);
    } else {
        err = put_value(&b, ts, &keys->timestamp);
    }
    if (err || (err = sl_buf_append_char(out, '\t')))
        goto out;
    err = recv && !json_is_null(recv) ? put_value(&b, recv, NULL)
                                      : put_text(&b, append_time, append_len, NULL);
    /* Text fields after received_at, in column order, and what the rollups keep of them. */
    const struct {
        const char *name;
        sl__pg_text *key;
    } fields[] = {
        {"channel", &keys->channel},
        {"platform", &keys->platform},
        {"event_type", &keys->event_type},
        {"event_category", &keys->event_category},
        {"resource_id", &keys->resource_id},
        {"resource_title", NULL},
        {"interaction_target", NULL},
        {"session_id", &keys->session_id},
        {"user_id", &keys->user_id},
        {"device_id", NULL},
        {"user_agent", NULL},
        {"client_version", NULL},
        {"interaction_value", &keys->interaction_value},
        {"interaction_text", NULL},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !err; i++)
        err = put_field(&b, obj, fields[i].name, fields[i].key);
    if (err)
        goto out;
    const json_t *meta = json_object_get(obj, "metadata");
    if ((err = sl_buf_append_char(out, '\t')))
        goto out;
    /* metadata is jsonb: a string there is a JSON string, not the column's text. */
    if (!meta || json_is_null(meta)) {
        err = sl_buf_append(out, "{}", 2);
    } else {
        char *mtext = json_dumps(meta, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!mtext) {
            err = SL_ERR_NOMEM;
            goto out;
        }
        err = append_escaped(out, mtext, strlen(mtext));
        free(mtext);
    }
    if (!err)
        err = sl_buf_append_char(out, '\n');
out:
    json_decref(obj);
    if (err) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        text->len = text_start;
        if (text->data)
            text->data[text_start] = '\0';
        if (err == SL_ERR_TOO_LARGE)
            sl_errbuf_set(errbuf, errlen, err, "record does not fit the batch buffer");
    }
    return err;
}

int32_t sl__pg_day_of_us(int64_t us)
{
    int64_t day_us = INT64_C(86400000000);
    int64_t d = us / day_us;
    if (us % day_us < 0)
        d--;
    return (int32_t)d;
}

/* Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar). */
void sl__pg_day_format(int32_t day, char out[9])
{
    int64_t z = (int64_t)day + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t mo = mp < 10 ? mp + 3 : mp - 9;
    if (mo <= 2)
        y++;
    snprintf(out, 9, "%04u%02u%02u", (unsigned)(y % 10000 + 10000) % 10000u, (unsigned)mo % 100u,
             (unsigned)d % 100u);
}
