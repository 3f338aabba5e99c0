/* Log record -> one line of PostgreSQL's COPY text format for analytics_events, plus the
 * text of the columns the dedup ids and the rollups need. Records are read with the event
 * module's simdjson reader (sl_event_record_fields).
 * Records are read as untrusted JSON (another producer may share a Kafka topic): any
 * JSON object is turned into a row, and PostgreSQL judges the values (a row it refuses
 * goes to the dead-letter table), so this file only escapes and formats. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/swar.h"
#include "core/time.h"
#include "event/event.h"
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
        /* Eight bytes at a time while none is below 0x0e (tab, newline, carriage return
         * and other controls, which the switch sorts out) or a backslash. */
        while (i + 8 <= len) {
            uint64_t w = sl_swar_load(s + i);
            if (sl_swar_has_below(w, 0x0e) | sl_swar_has_byte(w, '\\'))
                break;
            i += 8;
        }
        if (i == len)
            break;
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

/* The record's fields, in COPY column order but event_id and timestamp first. */
enum {
    F_EVENT_ID,
    F_TIMESTAMP,
    F_RECEIVED_AT,
    F_CHANNEL, /* first of the columns after received_at */
    F_PLATFORM,
    F_EVENT_TYPE,
    F_EVENT_CATEGORY,
    F_RESOURCE_ID,
    F_RESOURCE_TITLE,
    F_INTERACTION_TARGET,
    F_SESSION_ID,
    F_USER_ID,
    F_DEVICE_ID,
    F_USER_AGENT,
    F_CLIENT_VERSION,
    F_INTERACTION_VALUE,
    F_INTERACTION_TEXT,
    F_METADATA,
    N_FIELDS
};

static const char *const field_names[N_FIELDS] = {
    "event_id",          "timestamp",        "received_at", "channel",        "platform",
    "event_type",        "event_category",   "resource_id", "resource_title", "interaction_target",
    "session_id",        "user_id",          "device_id",   "user_agent",     "client_version",
    "interaction_value", "interaction_text", "metadata",
};

/* One row being built: the COPY text, the side buffer of key texts (where the record's
 * non-string values are written too), and the record's fields. */
typedef struct builder {
    sl_buf *out, *text;
    sl_event_field f[N_FIELDS];
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

/* A field as its column text: null as \N, a string as it is, anything else as the text
 * the record reader wrote (PostgreSQL then takes or refuses it). */
static sl_err put_field(builder *b, size_t i, sl__pg_text *key)
{
    const sl_event_field *f = &b->f[i];
    if (f->kind == SL_EVENT_FIELD_ABSENT) {
        if (key)
            *key = (sl__pg_text){0, SL__PG_NULL};
        return sl_buf_append(b->out, "\\N", 2);
    }
    if (f->kind == SL_EVENT_FIELD_STRING)
        return put_text(b, f->text, f->len, key);
    if (key)
        *key = (sl__pg_text){f->off, f->len}; /* already in the side buffer */
    return append_escaped(b->out, b->text->data + f->off, f->len);
}

sl_err sl__pg_row_append(sl_buf *out, sl_buf *text, const sl_log_message *m, sl__pg_keys *keys,
                         int32_t *day, char *errbuf, size_t errlen)
{
    builder b = {.out = out, .text = text};
    size_t start = out->len, text_start = text->len;
    sl_err err = sl_event_record_fields(m->value, m->value_len, field_names, N_FIELDS, b.f, text,
                                        errbuf, errlen);
    if (err)
        goto out;
    char num[64];
    int n;
    if (b.f[F_EVENT_ID].kind == SL_EVENT_FIELD_STRING && b.f[F_EVENT_ID].len > 0) {
        err = put_field(&b, F_EVENT_ID, &keys->event_id);
    } else {
        n = snprintf(num, sizeof num, "sluice:%u:%" PRIu64, m->partition, m->offset);
        err = put_text(&b, num, (size_t)n, &keys->event_id);
    }
    if (err || (err = sl_buf_append_char(out, '\t')))
        goto out;

    char append_time[SL_TIME_RFC3339_MAX];
    size_t append_len = sl_time_format_rfc3339(m->timestamp_ms * 1000, append_time);
    size_t ts = b.f[F_TIMESTAMP].kind != SL_EVENT_FIELD_ABSENT ? F_TIMESTAMP : F_RECEIVED_AT;
    int64_t us;
    *day = SL__PG_NO_DAY;
    if (b.f[ts].kind == SL_EVENT_FIELD_ABSENT) {
        *day = sl__pg_day_of_us(m->timestamp_ms * 1000);
        err = put_text(&b, append_time, append_len, &keys->timestamp);
    } else {
        if (b.f[ts].kind == SL_EVENT_FIELD_STRING &&
            sl_time_parse_rfc3339(b.f[ts].text, b.f[ts].len, &us) == SL_OK)
            *day = sl__pg_day_of_us(us);
        err = put_field(&b, ts, &keys->timestamp);
    }
    if (err || (err = sl_buf_append_char(out, '\t')))
        goto out;
    err = b.f[F_RECEIVED_AT].kind != SL_EVENT_FIELD_ABSENT
              ? put_field(&b, F_RECEIVED_AT, NULL)
              : put_text(&b, append_time, append_len, NULL);
    /* The columns after received_at, and what the rollups keep of them. */
    sl__pg_text *const key_of[N_FIELDS] = {
        [F_CHANNEL] = &keys->channel,         [F_PLATFORM] = &keys->platform,
        [F_EVENT_TYPE] = &keys->event_type,   [F_EVENT_CATEGORY] = &keys->event_category,
        [F_RESOURCE_ID] = &keys->resource_id, [F_SESSION_ID] = &keys->session_id,
        [F_USER_ID] = &keys->user_id,         [F_INTERACTION_VALUE] = &keys->interaction_value,
    };
    for (size_t i = F_CHANNEL; i < F_METADATA && !err; i++) {
        if (!(err = sl_buf_append_char(out, '\t')))
            err = put_field(&b, i, key_of[i]);
    }
    if (err || (err = sl_buf_append_char(out, '\t')))
        goto out;
    /* metadata is jsonb: a string there is a JSON string, not the column's text. */
    const sl_event_field *meta = &b.f[F_METADATA];
    if (meta->kind == SL_EVENT_FIELD_ABSENT) {
        err = sl_buf_append(out, "{}", 2);
    } else if (meta->kind == SL_EVENT_FIELD_STRING) {
        size_t at = text->len;
        if (!(err = sl_buf_append_json_string(text, meta->text, meta->len)))
            err = append_escaped(out, text->data + at, text->len - at);
        text->len = at;
        text->data[at] = '\0';
    } else {
        err = put_field(&b, F_METADATA, NULL);
    }
    if (!err)
        err = sl_buf_append_char(out, '\n');
out:
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
