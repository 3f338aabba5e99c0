/* Reading records back from the log for the sinks: simdjson's parse (json_simd.cc) with
 * the same checks as a request body (duplicate keys, \u0000, integers over 64 bits), and
 * the top-level fields a sink asks for as text, written as the normalized event writes
 * them. */
#include <string.h>

#include "event/event_int.h"

sl_err sl_event_record_fields(const char *json, size_t len, const char *const *names, size_t n,
                              sl_event_field *out, sl_buf *scratch, char *errbuf, size_t errlen)
{
    sl__json_doc doc;
    const char *why = "";
    const char *dup = NULL;
    size_t dup_len = 0;
    sl__json_status st = sl__json_parse(json, len, &doc, &why);
    if (st == SL__JSON_OK)
        st = sl__json_check(&doc, sl__event_may_have_nul(json, len), &dup, &dup_len);
    switch (st) {
    case SL__JSON_OK:
        break;
    case SL__JSON_NOMEM:
        return SL_ERR_NOMEM;
    case SL__JSON_TOO_DEEP:
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "record is not JSON: nested deeper "
                             "than %d levels",
                             SL__JSON_MAX_DEPTH);
    case SL__JSON_DUPLICATE:
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "record is not JSON: key \"%.*s\" twice in one object",
                             (int)(dup_len > 64 ? 64 : dup_len), dup);
    case SL__JSON_NUL:
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "record is not JSON: \\u0000 in a string");
    case SL__JSON_RANGE:
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "record is not JSON: an integer over 64 bits");
    default:
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "record is not JSON: %s", why);
    }
    sl__json root = sl__json_root(&doc);
    if (sl__json_typeof(root) != SL__JSON_OBJECT)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "record is not a JSON object");
    if (n > SL_EVENT_FIELDS_MAX)
        return SL_ERR_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        sl__json v = sl__json_get(root, names[i], strlen(names[i]));
        out[i] = (sl_event_field){.kind = SL_EVENT_FIELD_ABSENT};
        if (sl__json_none(v) || sl__json_typeof(v) == SL__JSON_NULL)
            continue;
        if (sl__json_typeof(v) == SL__JSON_STRING) {
            out[i].kind = SL_EVENT_FIELD_STRING;
            out[i].text = sl__json_str(v, &out[i].len);
            continue;
        }
        size_t at = scratch->len;
        sl_err err = sl__event_append_json(scratch, v);
        if (err)
            return err;
        out[i].kind = SL_EVENT_FIELD_OTHER;
        out[i].off = at;
        out[i].len = scratch->len - at;
    }
    return SL_OK;
}
