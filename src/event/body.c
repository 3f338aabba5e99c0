/* An ingest request body: parses it with simdjson (json_simd.cc, through the C view in
 * json.h), sorts out its shape (one object, an array, or a {"batch": [...]} envelope) and
 * runs each event through validate.c and normalize.c into the caller's reusable batch.
 * A refused body is parsed again with jansson, whose errors give the messages (line,
 * column, byte offset) that simdjson does not. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event/event_int.h"

/* jansson's JSON_PARSER_MAX_DEPTH, which it does not export, and simdjson's limit
 * (SL__JSON_MAX_DEPTH) alike; a unit test pins it. */
#define JANSSON_MAX_DEPTH SL__JSON_MAX_DEPTH

/* Room in batch->data past what max_batch full-size events need: an event is written in
 * full before its size is checked, so one far over the limit can still be measured. */
#define DATA_SLACK ((size_t)64 << 20)

static const char *const reason_names[SL_REASON__COUNT] = {
    [SL_REASON_MALFORMED_JSON] = "malformed_json",   [SL_REASON_INVALID_UTF8] = "invalid_utf8",
    [SL_REASON_NOT_OBJECT] = "not_object",           [SL_REASON_MISSING_FIELD] = "missing_field",
    [SL_REASON_WRONG_TYPE] = "wrong_type",           [SL_REASON_TOO_LONG] = "too_long",
    [SL_REASON_INVALID_VALUE] = "invalid_value",     [SL_REASON_TOO_DEEP] = "too_deep",
    [SL_REASON_TOO_MANY_KEYS] = "too_many_keys",     [SL_REASON_TOO_LARGE] = "too_large",
    [SL_REASON_DUPLICATE_FIELD] = "duplicate_field", [SL_REASON_EMPTY_BATCH] = "empty_batch",
    [SL_REASON_TOO_MANY_EVENTS] = "too_many_events",
};

const char *sl_event_reason_name(sl_event_reason reason)
{
    if ((unsigned)reason >= SL_REASON__COUNT)
        return "unknown";
    return reason_names[reason];
}

void sl_event_limits_default(sl_event_limits *lim)
{
    lim->max_event_bytes = 32 * 1024;
    lim->max_depth = 16;
    lim->max_keys = 256;
    lim->max_batch = 1000;
}

void sl_event_batch_init(sl_event_batch *batch)
{
    memset(batch, 0, sizeof *batch);
    sl_buf_init(&batch->data, DATA_SLACK);
}

void sl_event_batch_reset(sl_event_batch *batch)
{
    batch->n_accepted = 0;
    batch->n_rejected = 0;
    batch->n_events = 0;
    batch->is_batch = false;
    sl_buf_reset(&batch->data);
}

void sl_event_batch_cleanup(sl_event_batch *batch)
{
    free(batch->accepted);
    free(batch->rejected);
    sl_buf_cleanup(&batch->data);
    sl_event_batch_init(batch);
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* The hard cap on batch->data: max_batch events at the size limit with their keys, plus
 * the slack. Half of SIZE_MAX at most, so sl_buf's arithmetic cannot overflow. */
static size_t data_cap(const sl_event_limits *lim)
{
    size_t per_event = sat_add(lim->max_event_bytes, 4 * 100 /* session_id */);
    size_t cap = sat_add(sat_mul(lim->max_batch, per_event), DATA_SLACK);
    return cap > SIZE_MAX / 2 ? SIZE_MAX / 2 : cap;
}

static sl_err grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return SL_OK;
    void *p = realloc(*arr, need * elem);
    if (!p)
        return SL_ERR_NOMEM;
    *arr = p;
    *cap = need;
    return SL_OK;
}

/* Copies jansson's error text into a message: jansson quotes raw input ("near '...'"),
 * which may hold control characters; those are escaped and bytes that are not UTF-8
 * replaced, so the message can go into a JSON answer or a log line as it is. */
static void clean_text(char *out, size_t size, const char *in)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, len = strlen(in);
    for (size_t i = 0; i < len && o + 7 < size;) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80) {
            size_t n = 1;
            while (n < 4 && i + n < len && ((unsigned char)in[i + n] & 0xc0) == 0x80)
                n++;
            if (sl__event_utf8_valid(in + i, n)) {
                memcpy(out + o, in + i, n);
                o += n;
            } else {
                out[o++] = '?';
                n = 1;
            }
            i += n;
        } else if (c < 0x20 || c == 0x7f) {
            const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            memcpy(out + o, esc, 6);
            o += 6;
            i++;
        } else {
            out[o++] = (char)c;
            i++;
        }
    }
    out[o] = '\0';
}

/* Whether s[0..len) is the start of a valid UTF-8 sequence that the end of input cut. */
static bool utf8_cut_short(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t need = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                  : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                  : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                 : 0;
    if (need == 0 || len >= need)
        return false;
    /* The same second-byte ranges as a complete sequence (no overlongs, surrogates or
     * code points past U+10FFFF). */
    if (len >= 2) {
        unsigned char lo = p[0] == 0xe0 ? 0xa0 : p[0] == 0xf0 ? 0x90 : 0x80;
        unsigned char hi = p[0] == 0xed ? 0x9f : p[0] == 0xf4 ? 0x8f : 0xbf;
        if (p[1] < lo || p[1] > hi)
            return false;
    }
    for (size_t i = 2; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return false;
    }
    return true;
}

/* The key that jansson found twice. It reports only where the key's token ends, so walk
 * back to its opening quote (the first '"' not escaped by an odd run of backslashes)
 * and decode the token. */
static sl_err duplicate_key_error(const char *body, size_t len, const json_error_t *jerr,
                                  char *errbuf, size_t errlen)
{
    size_t end = jerr->position > 0 ? (size_t)jerr->position : 0;
    if (end >= 2 && end <= len && body[end - 1] == '"') {
        size_t i = end - 1;
        while (i > 0) {
            i--;
            if (body[i] != '"')
                continue;
            size_t bs = 0;
            while (bs < i && body[i - 1 - bs] == '\\')
                bs++;
            if (bs % 2 == 0)
                break;
        }
        json_error_t e2;
        json_t *k = json_loadb(body + i, end - i, JSON_DECODE_ANY, &e2);
        if (k && json_is_string(k)) {
            char shown[SL__QUOTE_SIZE];
            sl__event_quote(shown, json_string_value(k), json_string_length(k));
            json_decref(k);
            sl__event_msg(errbuf, errlen, "duplicate key %s", shown);
            return SL_ERR_INVALID;
        }
        json_decref(k);
    }
    char text[JSON_ERROR_TEXT_LENGTH * 6];
    clean_text(text, sizeof text, jerr->text);
    sl__event_msg(errbuf, errlen, "duplicate key at line %d, column %d: %s", jerr->line,
                  jerr->column, text);
    return SL_ERR_INVALID;
}

static sl_err load_error(const char *body, size_t len, const json_error_t *jerr,
                         sl_event_reason *reason, char *errbuf, size_t errlen)
{
    char text[JSON_ERROR_TEXT_LENGTH * 6];
    switch (json_error_code(jerr)) {
    case json_error_out_of_memory:
        *reason = SL_REASON_MALFORMED_JSON;
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory parsing the body");
    case json_error_invalid_utf8:
        /* jansson validates UTF-8 as it reads, so position is the offset (from 0) of the
         * first byte of the first bad sequence. A body cut inside a character is a
         * truncated body, which is malformed JSON like any other truncation. */
        if (jerr->position >= 0 && (size_t)jerr->position < len &&
            utf8_cut_short(body + jerr->position, len - (size_t)jerr->position)) {
            *reason = SL_REASON_MALFORMED_JSON;
            sl__event_msg(errbuf, errlen,
                          "malformed JSON at line %d, column %d: body ends inside a character",
                          jerr->line, jerr->column);
            return SL_ERR_INVALID;
        }
        *reason = SL_REASON_INVALID_UTF8;
        sl__event_msg(errbuf, errlen, "body is not valid UTF-8 at byte %d", jerr->position);
        return SL_ERR_INVALID;
    case json_error_duplicate_key:
        *reason = SL_REASON_DUPLICATE_FIELD;
        return duplicate_key_error(body, len, jerr, errbuf, errlen);
    case json_error_stack_overflow:
        *reason = SL_REASON_TOO_DEEP;
        sl__event_msg(errbuf, errlen, "nesting deeper than %d levels", JANSSON_MAX_DEPTH);
        return SL_ERR_INVALID;
    case json_error_null_character:
        *reason = SL_REASON_INVALID_VALUE;
        sl__event_msg(errbuf, errlen, "string contains \\u0000");
        return SL_ERR_INVALID;
    case json_error_null_byte_in_key:
        *reason = SL_REASON_INVALID_VALUE;
        sl__event_msg(errbuf, errlen, "object key contains \\u0000");
        return SL_ERR_INVALID;
    case json_error_numeric_overflow:
        /* Valid JSON, but a number jansson cannot hold (an integer beyond 64 bits or a
         * real beyond double): not malformed, so not reported as such. */
        *reason = SL_REASON_INVALID_VALUE;
        clean_text(text, sizeof text, jerr->text);
        sl__event_msg(errbuf, errlen, "number out of range at line %d, column %d: %s", jerr->line,
                      jerr->column, text);
        return SL_ERR_INVALID;
    default:
        *reason = SL_REASON_MALFORMED_JSON;
        clean_text(text, sizeof text, jerr->text);
        sl__event_msg(errbuf, errlen, "malformed JSON at line %d, column %d: %s", jerr->line,
                      jerr->column, text);
        return SL_ERR_INVALID;
    }
}

/* Why simdjson refused a body, in jansson's words: it parses the body again (errors are
 * rare, so the cost does not matter) and reports its first error as before simdjson. Should
 * jansson accept what simdjson refused, the message comes from what simdjson found. */
static sl_err parse_error(const char *body, size_t len, sl__json_status st, const char *why,
                          const char *dup, size_t dup_len, sl_event_reason *reason, char *errbuf,
                          size_t errlen)
{
    if (st == SL__JSON_NOMEM) {
        *reason = SL_REASON_MALFORMED_JSON;
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory parsing the body");
    }
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!j)
        return load_error(body, len, &jerr, reason, errbuf, errlen);
    json_decref(j);
    char shown[SL__QUOTE_SIZE];
    switch (st) {
    case SL__JSON_TOO_DEEP:
        *reason = SL_REASON_TOO_DEEP;
        sl__event_msg(errbuf, errlen, "nesting deeper than %d levels", JANSSON_MAX_DEPTH);
        break;
    case SL__JSON_DUPLICATE:
        *reason = SL_REASON_DUPLICATE_FIELD;
        sl__event_quote(shown, dup, dup_len);
        sl__event_msg(errbuf, errlen, "duplicate key %s", shown);
        break;
    case SL__JSON_NUL:
        *reason = SL_REASON_INVALID_VALUE;
        sl__event_msg(errbuf, errlen, "string contains \\u0000");
        break;
    case SL__JSON_RANGE:
        *reason = SL_REASON_INVALID_VALUE;
        sl__event_msg(errbuf, errlen, "number out of range");
        break;
    default: {
        /* Known case: jansson skips a raw NUL byte right after a number ("[1\0]" read as
         * "[1]"); a NUL byte is not JSON, so the body stays refused. */
        const char *nul = memchr(body, '\0', len);
        *reason = SL_REASON_MALFORMED_JSON;
        if (nul)
            sl__event_msg(errbuf, errlen, "malformed JSON: NUL byte at byte %zu",
                          (size_t)(nul - body));
        else
            sl__event_msg(errbuf, errlen, "malformed JSON: %s", why);
        break;
    }
    }
    return SL_ERR_INVALID;
}

/* {"batch": [...], "sent_at": ...}: nothing else may stand next to "batch". */
static sl_err read_envelope(sl__json root, sl__event_request *req, sl_event_reason *reason,
                            char *errbuf, size_t errlen)
{
    sl__json sent_at = {NULL, 0}, v;
    sl__json_iter it = sl__json_iter_of(root);
    const char *key;
    size_t klen;
    while (sl__json_obj_next(&it, &key, &klen, &v)) {
        if (klen == 5 && memcmp(key, "batch", 5) == 0)
            continue;
        if (klen == 7 && memcmp(key, "sent_at", 7) == 0) {
            sent_at = v;
            continue;
        }
        char shown[SL__QUOTE_SIZE];
        sl__event_quote(shown, key, klen);
        *reason = SL_REASON_INVALID_VALUE;
        sl__event_msg(errbuf, errlen, "unknown field %s next to \"batch\"", shown);
        return SL_ERR_INVALID;
    }
    if (!sl__json_none(sent_at) && sl__json_typeof(sent_at) != SL__JSON_NULL) {
        sl_event_rejection rej;
        if (!sl__event_parse_time(sent_at, "sent_at", &req->sent_at_us, &rej)) {
            *reason = rej.reason;
            sl__event_msg(errbuf, errlen, "%s", rej.message);
            return SL_ERR_INVALID;
        }
        req->has_sent_at = true;
    }
    return SL_OK;
}

/* Whether the body may hold a \u0000 escape: every "\u0000" is found (and some escaped
 * backslashes followed by "u0000" too, which the exact check in json.c then clears).
 * memchr rather than memmem, which costs more than the parse of a typical event. */
bool sl__event_may_have_nul(const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0)
            return true;
        p++;
    }
    return false;
}

static void init_request(sl__event_request *req, const sl_event_context *ctx,
                         const sl_event_limits *lim)
{
    memset(req, 0, sizeof *req);
    req->lim = lim;
    req->received_at_us = ctx ? ctx->received_at_us : sl_time_now_us();
    req->received_at_len = sl_time_format_rfc3339(req->received_at_us, req->received_at);
    req->user_agent = ctx ? ctx->user_agent : NULL;
    if (req->user_agent) {
        req->user_agent_len = strlen(req->user_agent);
        req->user_agent_utf8 = sl__event_utf8_valid(req->user_agent, req->user_agent_len);
    }
}

static sl_err add_rejection(sl_event_batch *batch, size_t index, const sl_event_rejection *rej,
                            size_t n_events)
{
    sl_err err =
        grow((void **)&batch->rejected, &batch->rejected_cap, n_events, sizeof *batch->rejected);
    if (err)
        return err;
    sl_event_rejection *r = &batch->rejected[batch->n_rejected++];
    memcpy(r, rej, sizeof *r);
    r->index = index;
    return SL_OK;
}

static sl_err add_event(sl_event_batch *batch, sl__json obj, size_t index, size_t n_events,
                        const sl__event_request *req)
{
    sl_event_rejection rej;
    if (sl__json_typeof(obj) != SL__JSON_OBJECT) {
        sl__event_reject(&rej, SL_REASON_NOT_OBJECT, "event is not a JSON object");
        return add_rejection(batch, index, &rej, n_events);
    }
    sl__event ev;
    if (!sl__event_validate(obj, req, &ev, &rej))
        return add_rejection(batch, index, &rej, n_events);
    sl_event_entry *entry = &batch->accepted[batch->n_accepted];
    bool accepted;
    sl_err err = sl__event_normalize(&ev, req, &batch->data, entry, &rej, &accepted);
    if (err)
        return err;
    if (!accepted)
        return add_rejection(batch, index, &rej, n_events);
    entry->index = index;
    batch->n_accepted++;
    return SL_OK;
}

sl_err sl_event_parse_body(const char *body, size_t len, const sl_event_context *ctx,
                           const sl_event_limits *lim, sl_event_batch *batch,
                           sl_event_reason *reason, char *errbuf, size_t errlen)
{
    sl_event_reason reason_unused;
    sl_event_limits lim_default;
    sl__event_request req;
    sl__json_doc doc;
    sl__json root, events = {NULL, 0};
    const char *why, *dup = NULL;
    size_t n_events, dup_len = 0;
    sl__json_status st;
    sl_err err = SL_OK;

    if (!reason)
        reason = &reason_unused;
    if (!lim) {
        sl_event_limits_default(&lim_default);
        lim = &lim_default;
    }
    if (errbuf && errlen)
        errbuf[0] = '\0';
    sl_event_batch_reset(batch);
    batch->data.cap = data_cap(lim);
    init_request(&req, ctx, lim);

    if (!body) {
        body = "";
        len = 0;
    }
    /* simdjson takes any JSON value at the top, so a bare string or number is told apart
     * from broken JSON. */
    st = sl__json_parse(body, len, &doc, &why);
    if (st == SL__JSON_OK)
        st = sl__json_check(&doc, sl__event_may_have_nul(body, len), &dup, &dup_len);
    if (st != SL__JSON_OK)
        return parse_error(body, len, st, why, dup, dup_len, reason, errbuf, errlen);
    root = sl__json_root(&doc);

    if (sl__json_typeof(root) == SL__JSON_ARRAY) {
        events = root;
    } else if (sl__json_typeof(root) == SL__JSON_OBJECT) {
        sl__json b = sl__json_get(root, "batch", 5);
        /* Only an array makes an envelope: {"batch": "summer-sale", ...} is an event
         * whose unknown field lands in metadata. */
        if (!sl__json_none(b) && sl__json_typeof(b) == SL__JSON_ARRAY) {
            if ((err = read_envelope(root, &req, reason, errbuf, errlen)))
                goto out;
            events = b;
        }
    } else {
        *reason = SL_REASON_NOT_OBJECT;
        sl__event_msg(errbuf, errlen, "body must be a JSON object or array, got %s",
                      sl__event_type_name(root));
        err = SL_ERR_INVALID;
        goto out;
    }

    n_events = !sl__json_none(events) ? sl__json_size(events) : 1;
    if (n_events == 0) {
        *reason = SL_REASON_EMPTY_BATCH;
        sl__event_msg(errbuf, errlen, "batch is empty");
        err = SL_ERR_INVALID;
        goto out;
    }
    if (n_events > lim->max_batch) {
        *reason = SL_REASON_TOO_MANY_EVENTS;
        sl__event_msg(errbuf, errlen, "batch has %zu events, over the limit of %zu", n_events,
                      lim->max_batch);
        err = SL_ERR_TOO_LARGE;
        goto out;
    }
    if ((err = grow((void **)&batch->accepted, &batch->accepted_cap, n_events,
                    sizeof *batch->accepted)))
        goto out;

    batch->is_batch = !sl__json_none(events);
    batch->n_events = n_events;
    if (!batch->is_batch) {
        err = add_event(batch, root, 0, 1, &req);
    } else {
        sl__json_iter it = sl__json_iter_of(events);
        sl__json ev;
        for (size_t i = 0; !err && sl__json_arr_next(&it, &ev); i++)
            err = add_event(batch, ev, i, n_events, &req);
    }
    if (err == SL_ERR_NOMEM)
        sl_errbuf_set(errbuf, errlen, err, "out of memory");
out:
    if (err)
        sl_event_batch_reset(batch);
    return err;
}
