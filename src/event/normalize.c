/* Serialization of a validated event into the normalized JSON that goes into the log and
 * to Kafka: the 18 keys in a fixed order, written straight into the batch's buffer with
 * sl_buf (straight from the parsed document, json.h), metadata included. Runs once per accepted
 * event, so it avoids printf except for reals. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/uuid.h"
#include "event/event_int.h"

#define LIT(s) s, sizeof(s) - 1

/* The key before each string field, in output order (interaction_value, which sits
 * between client_version and interaction_text, is written separately). */
static const struct {
    const char *s;
    size_t n;
} str_prefix[SL__STR_COUNT] = {
    [SL__STR_CHANNEL] = {LIT(",\"channel\":")},
    [SL__STR_PLATFORM] = {LIT(",\"platform\":")},
    [SL__STR_EVENT_TYPE] = {LIT(",\"event_type\":")},
    [SL__STR_EVENT_CATEGORY] = {LIT(",\"event_category\":")},
    [SL__STR_RESOURCE_ID] = {LIT(",\"resource_id\":")},
    [SL__STR_RESOURCE_TITLE] = {LIT(",\"resource_title\":")},
    [SL__STR_INTERACTION_TARGET] = {LIT(",\"interaction_target\":")},
    [SL__STR_SESSION_ID] = {LIT(",\"session_id\":")},
    [SL__STR_USER_ID] = {LIT(",\"user_id\":")},
    [SL__STR_DEVICE_ID] = {LIT(",\"device_id\":")},
    [SL__STR_USER_AGENT] = {LIT(",\"user_agent\":")},
    [SL__STR_CLIENT_VERSION] = {LIT(",\"client_version\":")},
    [SL__STR_INTERACTION_TEXT] = {LIT(",\"interaction_text\":")},
};

/* Most reals that clients send have a few decimals (3.5, 19.99, 0.25), and snprintf
 * plus strtod cost about 3,000 instructions per value. If |d| * 10^k is an integer u
 * below 10^15 for some k <= FAST_DECIMALS and u / 10^k (one correctly rounded division of
 * two exact doubles, so the value strtod gives for that decimal) is d again, that decimal
 * is the %.15g text of d: d lies within half an ulp of it, far inside the interval that
 * rounds to it at 15 digits. Within 1e-4 <= |d| < 1e15 %g writes no exponent, so the
 * digits are printed here directly. Returns 0 when the value needs snprintf. */
#define FAST_DECIMALS 6

static size_t format_decimal(char out[SL__DOUBLE_SIZE], double d)
{
    static const double pow10[FAST_DECIMALS + 1] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 0; k <= FAST_DECIMALS; k++) {
        double x = a * pow10[k];
        if (x >= 1e15)
            return 0;
        uint64_t u = (uint64_t)x;
        if ((double)u != x || x / pow10[k] != a)
            continue;
        while (k > 0 && u % 10 == 0) { /* %g drops trailing zeros */
            u /= 10;
            k--;
        }
        char digits[24];
        int nd = 0;
        do {
            digits[nd++] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        size_t n = 0;
        if (d < 0)
            out[n++] = '-';
        if (nd <= k) { /* below 1: "0." then zeros */
            out[n++] = '0';
            out[n++] = '.';
            for (int z = nd; z < k; z++)
                out[n++] = '0';
        }
        for (int i = nd - 1; i >= 0; i--) {
            out[n++] = digits[i];
            if (i == k && k > 0)
                out[n++] = '.';
        }
        out[n] = '\0';
        return n;
    }
    return 0;
}

size_t sl__event_format_double(char out[SL__DOUBLE_SIZE], double d)
{
    size_t fast = format_decimal(out, d);
    if (fast)
        return fast;
    /* %.17g always round-trips but prints 0.1 as 0.10000000000000001; the shortest of
     * 15..17 digits that round-trips reads as the client wrote it. JSON has no inf or
     * nan and the parser refuses reals beyond double, so d is finite. */
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, SL__DOUBLE_SIZE, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d)
            break;
    }
    if (n < 0)
        n = 0;
    /* A program that set LC_NUMERIC would get "0,5", which is not JSON. */
    for (int i = 0; i < n; i++) {
        if (out[i] == ',')
            out[i] = '.';
    }
    return (size_t)n;
}

static sl_err append_digits(sl_buf *b, uint64_t u, bool negative)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (negative)
        *--p = '-';
    return sl_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

static sl_err append_int(sl_buf *b, int64_t v)
{
    return append_digits(b, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
}

static sl_err append_real(sl_buf *b, double d)
{
    char tmp[SL__DOUBLE_SIZE];
    size_t n = sl__event_format_double(tmp, d);
    return sl_buf_append(b, tmp, n);
}

/* Length of the valid UTF-8 sequence at s (RFC 3629), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* over U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    return n;
}

bool sl__event_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(p + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

sl_err sl__event_append_lossy(sl_buf *b, const char *s, size_t len)
{
    /* Only for a User-Agent header that is not UTF-8 (e.g. Latin-1): rare, so simple. */
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    sl_err err = sl_buf_append_char(b, '"');
    size_t i = 0;
    while (!err && i < len) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n) {
                err = sl_buf_append(b, s + i, n);
                i += n;
            } else {
                err = sl_buf_append(b, LIT("\xef\xbf\xbd")); /* U+FFFD */
                i++;
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            err = sl_buf_append(b, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            err = sl_buf_append(b, esc, 6);
        } else {
            err = sl_buf_append_char(b, (char)c);
        }
        i++;
    }
    if (!err)
        err = sl_buf_append_char(b, '"');
    return err;
}

static sl_err append_str_or_null(sl_buf *b, const char *s, size_t len)
{
    if (!s)
        return sl_buf_append(b, LIT("null"));
    return sl_buf_append_json_string(b, s, len);
}

/* Any JSON value, compact, with the same string and number writers as the fixed fields:
 * reals in the shortest round-trip form (0.1, not 0.10000000000000001, and 3.0 as 3, as
 * the reference stack's JSON.stringify; PostgreSQL's jsonb would keep the extra digits).
 * Recursion is bounded: validate.c has checked the nesting against max_depth. */
sl_err sl__event_append_json(sl_buf *b, sl__json v)
{
    sl_err err;
    sl__json_iter it;
    sl__json child;
    const char *s;
    size_t len;
    switch (sl__json_typeof(v)) {
    case SL__JSON_STRING:
        s = sl__json_str(v, &len);
        return sl_buf_append_json_string(b, s, len);
    case SL__JSON_INT:
        return append_int(b, sl__json_int(v));
    case SL__JSON_UINT: /* refused with the body (json.c); here for completeness */
        return append_digits(b, sl__json_uint(v), false);
    case SL__JSON_REAL:
        return append_real(b, sl__json_real(v));
    case SL__JSON_TRUE:
        return sl_buf_append(b, LIT("true"));
    case SL__JSON_FALSE:
        return sl_buf_append(b, LIT("false"));
    case SL__JSON_NULL:
        return sl_buf_append(b, LIT("null"));
    case SL__JSON_OBJECT: {
        if ((err = sl_buf_append_char(b, '{')))
            return err;
        bool first = true;
        it = sl__json_iter_of(v);
        while (sl__json_obj_next(&it, &s, &len, &child)) {
            if (!first && (err = sl_buf_append_char(b, ',')))
                return err;
            first = false;
            if ((err = sl_buf_append_json_string(b, s, len)) ||
                (err = sl_buf_append_char(b, ':')) || (err = sl__event_append_json(b, child)))
                return err;
        }
        return sl_buf_append_char(b, '}');
    }
    case SL__JSON_ARRAY: {
        if ((err = sl_buf_append_char(b, '[')))
            return err;
        bool first = true;
        it = sl__json_iter_of(v);
        while (sl__json_arr_next(&it, &child)) {
            if ((!first && (err = sl_buf_append_char(b, ','))) ||
                (err = sl__event_append_json(b, child)))
                return err;
            first = false;
        }
        return sl_buf_append_char(b, ']');
    }
    }
    return SL_ERR_INTERNAL; /* not a JSON type */
}

/* metadata, with the unknown top-level fields (and a message_id that lost to event_id)
 * folded in after its own keys, in the order the client wrote them. */
static sl_err append_metadata(sl_buf *b, const sl__event *ev)
{
    sl_err err;
    bool empty = true;
    bool has_mid = !sl__json_none(ev->message_id_extra);
    if (!sl__json_none(ev->metadata) && sl__json_size(ev->metadata) > 0) {
        if ((err = sl__event_append_json(b, ev->metadata)))
            return err;
        if (ev->n_unknown == 0 && !has_mid)
            return SL_OK;
        b->len -= 1; /* reopen the object: drop its '}' */
        b->data[b->len] = '\0';
        empty = false;
    } else {
        if (ev->n_unknown == 0 && !has_mid)
            return sl_buf_append(b, LIT("{}"));
        if ((err = sl_buf_append_char(b, '{')))
            return err;
    }
    sl__json_iter it = sl__json_iter_of(ev->obj);
    const char *key;
    size_t klen;
    sl__json v;
    while (sl__json_obj_next(&it, &key, &klen, &v)) {
        int k = sl__event_key_lookup(key, klen);
        if (k != SL__KEY_UNKNOWN && !(k == SL__KEY_MESSAGE_ID && has_mid))
            continue;
        if (!empty && (err = sl_buf_append_char(b, ',')))
            return err;
        empty = false;
        if ((err = sl_buf_append_json_string(b, key, klen)) || (err = sl_buf_append_char(b, ':')) ||
            (err = sl__event_append_json(b, v)))
            return err;
    }
    return sl_buf_append_char(b, '}');
}

static sl_err write_event(const sl__event *ev, const sl__event_request *req, sl_buf *b,
                          const char *id, size_t id_len)
{
    sl_err err;
    char ts[SL_TIME_RFC3339_MAX];
    size_t ts_len = sl_time_format_rfc3339(ev->timestamp_us, ts);

    if ((err = sl_buf_append(b, LIT("{\"event_id\":"))) ||
        (err = sl_buf_append_json_string(b, id, id_len)) ||
        (err = sl_buf_append(b, LIT(",\"timestamp\":\""))) ||
        (err = sl_buf_append(b, ts, ts_len)) ||
        (err = sl_buf_append(b, LIT("\",\"received_at\":\""))) ||
        (err = sl_buf_append(b, req->received_at, req->received_at_len)) ||
        (err = sl_buf_append_char(b, '"')))
        return err;
    for (int i = 0; i < SL__STR_COUNT; i++) {
        if (i == SL__STR_INTERACTION_TEXT) {
            if ((err = sl_buf_append(b, LIT(",\"interaction_value\":"))))
                return err;
            err = !sl__json_none(ev->value) ? sl__event_append_json(b, ev->value)
                                            : sl_buf_append(b, LIT("null"));
            if (err)
                return err;
        }
        if ((err = sl_buf_append(b, str_prefix[i].s, str_prefix[i].n)))
            return err;
        if (i == SL__STR_USER_AGENT && ev->user_agent_from_header && !req->user_agent_utf8)
            err = sl__event_append_lossy(b, ev->str[i], ev->len[i]);
        else
            err = append_str_or_null(b, ev->str[i], ev->len[i]);
        if (err)
            return err;
    }
    if ((err = sl_buf_append(b, LIT(",\"metadata\":"))) || (err = append_metadata(b, ev)))
        return err;
    return sl_buf_append_char(b, '}');
}

static void roll_back(sl_buf *b, size_t to)
{
    b->len = to;
    if (b->data)
        b->data[to] = '\0';
}

sl_err sl__event_normalize(const sl__event *ev, const sl__event_request *req, sl_buf *data,
                           sl_event_entry *entry, sl_event_rejection *rej, bool *accepted)
{
    size_t start = data->len;
    size_t max = req->lim->max_event_bytes;
    size_t id_len;
    *accepted = false;
    if (ev->event_id) {
        id_len = ev->event_id_len; /* validated: at most SL_EVENT_ID_MAX characters */
        memcpy(entry->event_id, ev->event_id, id_len);
        entry->event_id[id_len] = '\0';
    } else {
        sl_uuid_v7(entry->event_id);
        id_len = SL_UUID_STR_LEN;
    }

    size_t json_len = 0;
    const char *key = ev->str[SL__STR_SESSION_ID];
    size_t key_len = ev->len[SL__STR_SESSION_ID];
    sl_err err = write_event(ev, req, data, entry->event_id, id_len);
    if (err)
        goto out;
    json_len = data->len - start;
    if (json_len > max) {
        roll_back(data, start);
        sl__event_reject(rej, SL_REASON_TOO_LARGE, "event is %zu bytes, over the limit of %zu",
                         json_len, max);
        return SL_OK;
    }
    if ((err = sl_buf_append(data, key, key_len)))
        goto out;
    entry->json_off = start;
    entry->json_len = json_len;
    entry->key_off = start + json_len;
    entry->key_len = key_len;
    *accepted = true;
out:
    if (err)
        roll_back(data, start);
    if (err == SL_ERR_TOO_LARGE) {
        /* The request's data buffer hit its cap: only an event far over the limit gets
         * here (see data_cap() in body.c), and its exact size is not worth computing. */
        sl__event_reject(rej, SL_REASON_TOO_LARGE, "event is over the limit of %zu bytes", max);
        return SL_OK;
    }
    return err;
}
