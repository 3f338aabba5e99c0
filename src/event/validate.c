/* The field rules of one event (DESIGN.md "The event", docs/internals/event.md): one pass
 * over the object's keys sorts them into known fields and unknown ones, then the known
 * fields are checked in output order, so the first broken rule reported does not depend on
 * the order in which the client wrote its keys. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "event/event_int.h"

/* Epoch milliseconds of 9999-12-31T23:59:59.999Z; the lower bound is the epoch. */
#define MAX_MS INT64_C(253402300799999)
#define MAX_US (MAX_MS * 1000 + 999)

static const struct {
    const char *name;
    size_t max_chars; /* 0: no limit of its own */
    bool required;
} str_fields[SL__STR_COUNT] = {
    [SL__STR_CHANNEL] = {"channel", 50, true},
    [SL__STR_PLATFORM] = {"platform", 100, false},
    [SL__STR_EVENT_TYPE] = {"event_type", 100, true},
    [SL__STR_EVENT_CATEGORY] = {"event_category", 100, false},
    [SL__STR_RESOURCE_ID] = {"resource_id", 500, false},
    [SL__STR_RESOURCE_TITLE] = {"resource_title", 200, false},
    [SL__STR_INTERACTION_TARGET] = {"interaction_target", 200, false},
    [SL__STR_SESSION_ID] = {"session_id", 100, true},
    [SL__STR_USER_ID] = {"user_id", 100, false},
    [SL__STR_DEVICE_ID] = {"device_id", 100, false},
    [SL__STR_USER_AGENT] = {"user_agent", 0, false},
    [SL__STR_CLIENT_VERSION] = {"client_version", 50, false},
    [SL__STR_INTERACTION_TEXT] = {"interaction_text", 0, false},
};

#define KEY_IS(lit) (memcmp(key, lit, sizeof(lit) - 1) == 0)

int sl__event_key_lookup(const char *key, size_t len)
{
    /* Switch on the length, then compare: at most three memcmp per key, against the 18
     * hash lookups and second pass for unknown keys that json_object_get would need. */
    switch (len) {
    case 7:
        if (KEY_IS("channel"))
            return SL__STR_CHANNEL;
        if (KEY_IS("user_id"))
            return SL__STR_USER_ID;
        if (KEY_IS("sent_at"))
            return SL__KEY_SENT_AT;
        break;
    case 8:
        if (KEY_IS("event_id"))
            return SL__KEY_EVENT_ID;
        if (KEY_IS("platform"))
            return SL__STR_PLATFORM;
        if (KEY_IS("metadata"))
            return SL__KEY_METADATA;
        break;
    case 9:
        if (KEY_IS("timestamp"))
            return SL__KEY_TIMESTAMP;
        if (KEY_IS("device_id"))
            return SL__STR_DEVICE_ID;
        break;
    case 10:
        if (KEY_IS("event_type"))
            return SL__STR_EVENT_TYPE;
        if (KEY_IS("session_id"))
            return SL__STR_SESSION_ID;
        if (KEY_IS("user_agent"))
            return SL__STR_USER_AGENT;
        if (KEY_IS("message_id"))
            return SL__KEY_MESSAGE_ID;
        break;
    case 11:
        if (KEY_IS("resource_id"))
            return SL__STR_RESOURCE_ID;
        break;
    case 14:
        if (KEY_IS("event_category"))
            return SL__STR_EVENT_CATEGORY;
        if (KEY_IS("resource_title"))
            return SL__STR_RESOURCE_TITLE;
        if (KEY_IS("client_version"))
            return SL__STR_CLIENT_VERSION;
        break;
    case 16:
        if (KEY_IS("interaction_text"))
            return SL__STR_INTERACTION_TEXT;
        break;
    case 17:
        if (KEY_IS("interaction_value"))
            return SL__KEY_INTERACTION_VALUE;
        break;
    case 18:
        if (KEY_IS("interaction_target"))
            return SL__STR_INTERACTION_TARGET;
        break;
    }
    return SL__KEY_UNKNOWN;
}

const char *sl__event_type_name(sl__json v)
{
    switch (sl__json_typeof(v)) {
    case SL__JSON_OBJECT:
        return "object";
    case SL__JSON_ARRAY:
        return "array";
    case SL__JSON_STRING:
        return "string";
    case SL__JSON_INT:
    case SL__JSON_UINT:
    case SL__JSON_REAL:
        return "number";
    case SL__JSON_TRUE:
    case SL__JSON_FALSE:
        return "boolean";
    case SL__JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Drops a character that truncation at `at` (where vsnprintf put its NUL) cut short. */
static void cut_utf8(char *s, size_t at)
{
    size_t k = at;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xc0) == 0x80)
        k--;
    if (k == 0)
        return;
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (k - 1 + need > at)
        s[k - 1] = '\0';
}

static SL_PRINTF(3, 0) void vmsg(char *msg, size_t size, const char *fmt, va_list ap)
{
    if (size == 0)
        return;
    int n = vsnprintf(msg, size, fmt, ap);
    if (n < 0)
        msg[0] = '\0';
    else if ((size_t)n >= size)
        cut_utf8(msg, size - 1);
}

void sl__event_msg(char *msg, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(msg, size, fmt, ap);
    va_end(ap);
}

void sl__event_reject(sl_event_rejection *rej, sl_event_reason reason, const char *fmt, ...)
{
    rej->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vmsg(rej->message, sizeof rej->message, fmt, ap);
    va_end(ap);
}

void sl__event_quote(char out[SL__QUOTE_SIZE], const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    *p++ = '"';
    size_t chars = 0, i = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xc0) != 0x80 && chars++ == SL__QUOTE_CHARS)
            break;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            *p++ = '\\';
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    if (i < len) {
        memcpy(p, "...", 3);
        p += 3;
    }
    *p = '\0';
}

static size_t count_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* C0 controls, DEL and the C1 controls U+0080..U+009F (UTF-8 C2 80..C2 9F). */
static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
        if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0)
            return true;
    }
    return false;
}

static bool time_range_error(sl__json v, const char *field, sl_event_rejection *rej)
{
    char shown[SL__QUOTE_SIZE];
    size_t len;
    const char *s;
    switch (sl__json_typeof(v)) {
    case SL__JSON_STRING:
        s = sl__json_str(v, &len);
        sl__event_quote(shown, s, len);
        break;
    case SL__JSON_INT:
        snprintf(shown, sizeof shown, "%" PRId64, sl__json_int(v));
        break;
    case SL__JSON_UINT: /* refused with the body (json.c); here for completeness */
        snprintf(shown, sizeof shown, "%" PRIu64, sl__json_uint(v));
        break;
    default:
        sl__event_format_double(shown, sl__json_real(v));
        break;
    }
    sl__event_reject(rej, SL_REASON_INVALID_VALUE,
                     "field \"%s\" is out of range 1970-01-01 to 9999-12-31: %s", field, shown);
    return false;
}

bool sl__event_parse_time(sl__json v, const char *field, int64_t *us, sl_event_rejection *rej)
{
    switch (sl__json_typeof(v)) {
    case SL__JSON_STRING: {
        int64_t t;
        size_t len;
        const char *s = sl__json_str(v, &len);
        if (sl_time_parse_rfc3339(s, len, &t) != SL_OK) {
            char shown[SL__QUOTE_SIZE];
            sl__event_quote(shown, s, len);
            sl__event_reject(rej, SL_REASON_INVALID_VALUE,
                             "field \"%s\" is not an RFC 3339 time or epoch milliseconds: %s",
                             field, shown);
            return false;
        }
        if (t < 0)
            return time_range_error(v, field, rej);
        *us = t;
        return true;
    }
    case SL__JSON_INT: {
        int64_t ms = sl__json_int(v);
        if (ms < 0 || ms > MAX_MS)
            return time_range_error(v, field, rej);
        *us = (int64_t)ms * 1000;
        return true;
    }
    case SL__JSON_UINT:
        return time_range_error(v, field, rej);
    case SL__JSON_REAL: {
        double ms = sl__json_real(v);
        if (!(ms >= 0 && ms < (double)MAX_MS + 1))
            return time_range_error(v, field, rej);
        /* Round to the nearest microsecond: a double near 1.7e12 ms carries ~0.25 µs of
         * representation error that truncation would turn into an off-by-one. */
        int64_t t = (int64_t)(ms * 1000.0 + 0.5);
        *us = t > MAX_US ? MAX_US : t;
        return true;
    }
    default:
        sl__event_reject(rej, SL_REASON_WRONG_TYPE,
                         "field \"%s\" must be an RFC 3339 string or epoch milliseconds, got %s",
                         field, sl__event_type_name(v));
        return false;
    }
}

/* Nesting and key-count limits below a top-level field `key`; v is at level `depth`. */
static bool check_nesting(sl__json v, unsigned depth, const sl_event_limits *lim, const char *key,
                          size_t klen, sl_event_rejection *rej)
{
    sl__json_type t = sl__json_typeof(v);
    if (t != SL__JSON_OBJECT && t != SL__JSON_ARRAY)
        return true;
    if (depth > lim->max_depth) {
        sl__event_reject(rej, SL_REASON_TOO_DEEP, "nesting deeper than %u levels", lim->max_depth);
        return false;
    }
    sl__json_iter it = sl__json_iter_of(v);
    sl__json child;
    if (t == SL__JSON_OBJECT) {
        size_t n = sl__json_size(v);
        if (n > lim->max_keys) {
            char shown[SL__QUOTE_SIZE];
            sl__event_quote(shown, key, klen);
            sl__event_reject(rej, SL_REASON_TOO_MANY_KEYS,
                             "an object in field %s has %zu keys, over the limit of %zu", shown, n,
                             lim->max_keys);
            return false;
        }
        const char *k;
        size_t n_k;
        while (sl__json_obj_next(&it, &k, &n_k, &child)) {
            if (!check_nesting(child, depth + 1, lim, key, klen, rej))
                return false;
        }
    } else {
        while (sl__json_arr_next(&it, &child)) {
            if (!check_nesting(child, depth + 1, lim, key, klen, rej))
                return false;
        }
    }
    return true;
}

static const sl__json none;

static sl__json non_null(sl__json v)
{
    return !sl__json_none(v) && sl__json_typeof(v) != SL__JSON_NULL ? v : none;
}

static bool check_event_id(sl__event *ev, const sl__json slot[], sl_event_rejection *rej)
{
    sl__json idv = non_null(slot[SL__KEY_EVENT_ID]);
    sl__json mid = non_null(slot[SL__KEY_MESSAGE_ID]);
    const char *name = "event_id";
    if (sl__json_none(idv) && !sl__json_none(mid)) {
        idv = mid;
        mid = none;
        name = "message_id";
    }
    /* Both given: event_id is the id, message_id is still the client's data. */
    ev->message_id_extra = mid;
    ev->event_id = NULL;
    ev->event_id_len = 0;
    if (sl__json_none(idv))
        return true;
    if (sl__json_typeof(idv) != SL__JSON_STRING) {
        sl__event_reject(rej, SL_REASON_WRONG_TYPE, "field \"%s\" must be a string, got %s", name,
                         sl__event_type_name(idv));
        return false;
    }
    size_t len;
    const char *s = sl__json_str(idv, &len);
    if (len == 0) {
        sl__event_reject(rej, SL_REASON_INVALID_VALUE, "field \"%s\" is empty", name);
        return false;
    }
    if (len > SL_EVENT_ID_MAX) {
        size_t chars = count_chars(s, len);
        if (chars > SL_EVENT_ID_MAX) {
            sl__event_reject(rej, SL_REASON_TOO_LONG,
                             "field \"%s\" is %zu characters, over the limit of %d", name, chars,
                             SL_EVENT_ID_MAX);
            return false;
        }
    }
    if (has_control(s, len)) {
        sl__event_reject(rej, SL_REASON_INVALID_VALUE, "field \"%s\" contains a control character",
                         name);
        return false;
    }
    ev->event_id = s;
    ev->event_id_len = len;
    return true;
}

static bool check_timestamp(sl__event *ev, const sl__json slot[], const sl__event_request *req,
                            sl_event_rejection *rej)
{
    sl__json tsv = non_null(slot[SL__KEY_TIMESTAMP]);
    sl__json sav = non_null(slot[SL__KEY_SENT_AT]);
    bool has_ts = !sl__json_none(tsv);
    int64_t ts = req->received_at_us, sent = req->sent_at_us;
    bool has_sent = req->has_sent_at;
    if (has_ts && !sl__event_parse_time(tsv, "timestamp", &ts, rej))
        return false;
    if (!sl__json_none(sav)) {
        if (!sl__event_parse_time(sav, "sent_at", &sent, rej))
            return false;
        has_sent = true;
    }
    if (has_ts && has_sent) {
        /* Client clock skew (Segment's rule): the client's clock was off by
         * sent_at - received_at when it sent, so was it when the event happened. */
        ts += req->received_at_us - sent;
        if (ts < 0 || ts > MAX_US) {
            sl__event_reject(rej, SL_REASON_INVALID_VALUE,
                             "field \"timestamp\" is out of range 1970-01-01 to 9999-12-31 "
                             "once corrected for the clock skew given by \"sent_at\"");
            return false;
        }
    }
    ev->timestamp_us = ts;
    return true;
}

static bool check_strings(sl__event *ev, const sl__json slot[], const sl__event_request *req,
                          sl_event_rejection *rej)
{
    for (int i = 0; i < SL__STR_COUNT; i++) {
        sl__json v = non_null(slot[i]);
        ev->str[i] = NULL;
        ev->len[i] = 0;
        if (sl__json_none(v)) {
            if (str_fields[i].required) {
                sl__event_reject(rej, SL_REASON_MISSING_FIELD, "field \"%s\" is required",
                                 str_fields[i].name);
                return false;
            }
            continue;
        }
        if (sl__json_typeof(v) != SL__JSON_STRING) {
            sl__event_reject(rej, SL_REASON_WRONG_TYPE, "field \"%s\" must be a string, got %s",
                             str_fields[i].name, sl__event_type_name(v));
            return false;
        }
        size_t len;
        const char *s = sl__json_str(v, &len);
        if (len == 0 && str_fields[i].required) {
            sl__event_reject(rej, SL_REASON_MISSING_FIELD, "field \"%s\" is required",
                             str_fields[i].name);
            return false;
        }
        /* Limits count code points, as PostgreSQL's varchar(n) does; a string of at most
         * n bytes has at most n code points, so most strings skip the count. */
        size_t max = str_fields[i].max_chars;
        if (max && len > max) {
            size_t chars = count_chars(s, len);
            if (chars > max) {
                sl__event_reject(rej, SL_REASON_TOO_LONG,
                                 "field \"%s\" is %zu characters, over the limit of %zu",
                                 str_fields[i].name, chars, max);
                return false;
            }
        }
        ev->str[i] = s;
        ev->len[i] = len;
    }
    ev->user_agent_from_header = false;
    if (!ev->str[SL__STR_USER_AGENT] && req->user_agent) {
        ev->str[SL__STR_USER_AGENT] = req->user_agent;
        ev->len[SL__STR_USER_AGENT] = req->user_agent_len;
        ev->user_agent_from_header = true;
    }
    return true;
}

/* Unknown top-level fields (and a message_id that lost to event_id) move into metadata;
 * a key already there would lose one of the two values, so the event is refused. */
static bool check_folding(sl__event *ev, const sl_event_limits *lim, sl_event_rejection *rej)
{
    sl__json md = ev->metadata;
    bool has_md = !sl__json_none(md), has_mid = !sl__json_none(ev->message_id_extra);
    if (has_mid && has_md && !sl__json_none(sl__json_get(md, "message_id", 10))) {
        sl__event_reject(rej, SL_REASON_DUPLICATE_FIELD,
                         "field \"message_id\" is both at top level and in metadata");
        return false;
    }
    if (ev->n_unknown == 0)
        return true;
    sl__json_iter it = sl__json_iter_of(ev->obj);
    const char *key;
    size_t klen;
    sl__json v;
    while (sl__json_obj_next(&it, &key, &klen, &v)) {
        if (sl__event_key_lookup(key, klen) != SL__KEY_UNKNOWN)
            continue;
        if (has_md && !sl__json_none(sl__json_get(md, key, klen))) {
            char shown[SL__QUOTE_SIZE];
            sl__event_quote(shown, key, klen);
            sl__event_reject(rej, SL_REASON_DUPLICATE_FIELD,
                             "field %s is both at top level and in metadata", shown);
            return false;
        }
        if (!check_nesting(v, 2, lim, key, klen, rej))
            return false;
    }
    size_t n = (has_md ? sl__json_size(md) : 0) + ev->n_unknown + has_mid;
    if (n > lim->max_keys) {
        sl__event_reject(rej, SL_REASON_TOO_MANY_KEYS,
                         "field \"metadata\" has %zu keys once unknown top-level fields are "
                         "folded in, over the limit of %zu",
                         n, lim->max_keys);
        return false;
    }
    return true;
}

bool sl__event_validate(sl__json obj, const sl__event_request *req, sl__event *ev,
                        sl_event_rejection *rej)
{
    const sl_event_limits *lim = req->lim;
    sl__json slot[SL__KEY_COUNT] = {0};
    size_t n_unknown = 0, n = 0;

    /* The one pass over the keys (duplicates were refused with the body, json.c). */
    sl__json_iter it = sl__json_iter_of(obj);
    const char *key;
    size_t klen;
    sl__json v;
    while (sl__json_obj_next(&it, &key, &klen, &v)) {
        int k = sl__event_key_lookup(key, klen);
        if (k == SL__KEY_UNKNOWN)
            n_unknown++;
        else
            slot[k] = v;
        n++;
    }
    ev->obj = obj;
    ev->n_unknown = n_unknown;

    if (!check_event_id(ev, slot, rej) || !check_timestamp(ev, slot, req, rej) ||
        !check_strings(ev, slot, req, rej))
        return false;

    ev->value = non_null(slot[SL__KEY_INTERACTION_VALUE]);
    if (!sl__json_none(ev->value) && !sl__json_is_number(ev->value)) {
        sl__event_reject(rej, SL_REASON_WRONG_TYPE,
                         "field \"interaction_value\" must be a number, got %s",
                         sl__event_type_name(ev->value));
        return false;
    }
    ev->metadata = non_null(slot[SL__KEY_METADATA]);
    if (!sl__json_none(ev->metadata) && sl__json_typeof(ev->metadata) != SL__JSON_OBJECT) {
        sl__event_reject(rej, SL_REASON_WRONG_TYPE, "field \"metadata\" must be an object, got %s",
                         sl__event_type_name(ev->metadata));
        return false;
    }

    if (n > lim->max_keys) {
        sl__event_reject(rej, SL_REASON_TOO_MANY_KEYS, "event has %zu keys, over the limit of %zu",
                         n, lim->max_keys);
        return false;
    }
    if (lim->max_depth < 1) {
        sl__event_reject(rej, SL_REASON_TOO_DEEP, "nesting deeper than %u levels", lim->max_depth);
        return false;
    }
    if (!sl__json_none(ev->metadata) && !check_nesting(ev->metadata, 2, lim, "metadata", 8, rej))
        return false;
    if (!sl__json_none(ev->message_id_extra) &&
        !check_nesting(ev->message_id_extra, 2, lim, "message_id", 10, rej))
        return false;
    return check_folding(ev, lim, rej);
}
