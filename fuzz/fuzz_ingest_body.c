/* libFuzzer target for the ingest body parser and event validator: any bytes go in as a
 * request body, and whatever comes out must hold the batch's invariants (counts add up,
 * accepted events are valid JSON with the 18 keys within the size limit, keys are their
 * session_id, refused requests leave nothing behind). abort() marks a broken invariant.
 * The body is parsed with simdjson; jansson, the parser before it, must agree on which
 * bodies are JSON (the error messages still come from jansson). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "fuzz.h"

static const char *const keys[18] = {
    "event_id",          "timestamp",        "received_at", "channel",        "platform",
    "event_type",        "event_category",   "resource_id", "resource_title", "interaction_target",
    "session_id",        "user_id",          "device_id",   "user_agent",     "client_version",
    "interaction_value", "interaction_text", "metadata"};

static bool utf8_text(const char *s)
{
    json_t *j = json_string(s); /* NULL unless valid UTF-8 */
    json_decref(j);
    return j != NULL;
}

/* Whether jansson, as the module used it before simdjson, takes the body. */
static bool jansson_accepts(const uint8_t *data, size_t size)
{
    json_t *j =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    json_decref(j);
    return j != NULL;
}

static void check_entry(const sl_event_batch *batch, const sl_event_entry *e,
                        const sl_event_limits *lim)
{
    CHECK(e->json_off + e->json_len <= batch->data.len);
    CHECK(e->key_off + e->key_len <= batch->data.len);
    CHECK(e->json_len <= lim->max_event_bytes);
    json_error_t jerr;
    json_t *j =
        json_loadb(batch->data.data + e->json_off, e->json_len, JSON_REJECT_DUPLICATES, &jerr);
    CHECK(j != NULL);
    CHECK(json_is_object(j));
    CHECK(json_object_size(j) == 18);
    size_t k = 0;
    for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it)) {
        const char *key = json_object_iter_key(it);
        CHECK(strcmp(key, keys[k]) == 0);
        k++;
    }
    json_t *sid = json_object_get(j, "session_id");
    CHECK(json_is_string(sid));
    CHECK(json_string_length(sid) == e->key_len);
    CHECK(memcmp(json_string_value(sid), batch->data.data + e->key_off, e->key_len) == 0);
    json_t *id = json_object_get(j, "event_id");
    CHECK(json_is_string(id));
    CHECK(strcmp(json_string_value(id), e->event_id) == 0);
    CHECK(json_is_string(json_object_get(j, "channel")));
    CHECK(json_is_string(json_object_get(j, "event_type")));
    CHECK(json_is_string(json_object_get(j, "timestamp")));
    CHECK(json_is_object(json_object_get(j, "metadata")));
    json_t *val = json_object_get(j, "interaction_value");
    CHECK(json_is_null(val) || json_is_number(val));
    json_decref(j);
}

/* Same JSON, keys in the same order; numbers by value (3.0 is written as 3). */
static bool same_json(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b) &&
               (json_is_real(a) || json_is_real(b) ||
                json_integer_value(a) == json_integer_value(b));
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *ib = json_object_iter(b);
        for (void *ia = json_object_iter(a); ia; ia = json_object_iter_next(a, ia)) {
            if (json_object_iter_key_len(ia) != json_object_iter_key_len(ib) ||
                memcmp(json_object_iter_key(ia), json_object_iter_key(ib),
                       json_object_iter_key_len(ia)) != 0 ||
                !same_json(json_object_iter_value(ia), json_object_iter_value(ib)))
                return false;
            ib = json_object_iter_next(b, ib);
        }
        return true;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!same_json(json_array_get(a, i), json_array_get(b, i)))
                return false;
        }
        return true;
    }
    return json_equal(a, b);
}

static bool is_known(const char *key)
{
    static const char *const known[] = {"message_id", "sent_at"};
    for (size_t i = 0; i < 18; i++) {
        if (strcmp(key, keys[i]) == 0)
            return strcmp(key, "received_at") != 0; /* a client's received_at is unknown */
    }
    return strcmp(key, known[0]) == 0 || strcmp(key, known[1]) == 0;
}

static json_t *non_null(json_t *v)
{
    return v && !json_is_null(v) ? v : NULL;
}

/* For a one-event body: the event's own fields come out as they went in, and metadata is
 * the client's metadata followed by the unknown top-level fields, in order. */
static void check_single(const uint8_t *data, size_t size, const sl_event_batch *batch)
{
    const sl_event_entry *e = &batch->accepted[0];
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *out = json_loadb(batch->data.data + e->json_off, e->json_len, 0, NULL);
    CHECK(json_is_object(in) && json_is_object(out));
    json_t *md = non_null(json_object_get(in, "metadata"));
    json_t *want = md ? json_copy(md) : json_object();
    CHECK(want != NULL);
    bool both_ids =
        non_null(json_object_get(in, "event_id")) && non_null(json_object_get(in, "message_id"));
    for (void *it = json_object_iter(in); it; it = json_object_iter_next(in, it)) {
        const char *key = json_object_iter_key(it);
        if (!is_known(key) || (both_ids && strcmp(key, "message_id") == 0))
            CHECK(json_object_set(want, key, json_object_iter_value(it)) == 0);
    }
    CHECK(same_json(want, json_object_get(out, "metadata")));
    static const char *const copied[] = {"channel",          "event_type",  "session_id",
                                         "platform",         "resource_id", "interaction_text",
                                         "interaction_value"};
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        json_t *a = non_null(json_object_get(in, copied[i]));
        json_t *b = json_object_get(out, copied[i]);
        CHECK(a ? same_json(a, b) : json_is_null(b));
    }
    json_decref(want);
    json_decref(in);
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One batch for the whole run, as a server thread keeps one across requests. */
    static sl_event_batch batch;
    static bool ready;
    if (!ready) {
        sl_event_batch_init(&batch);
        ready = true;
    }
    /* Small limits so that every refusal path is within the fuzzer's reach. */
    const sl_event_limits lim = {
        .max_event_bytes = 4096, .max_depth = 6, .max_keys = 16, .max_batch = 32};
    const sl_event_context ctx = {.received_at_us = INT64_C(1705314600000000),
                                  .user_agent = "fuzz/1.0 \xff"};
    sl_event_reason reason = SL_REASON__COUNT;
    char errbuf[256] = "";

    sl_err err = sl_event_parse_body((const char *)data, size, &ctx, &lim, &batch, &reason, errbuf,
                                     sizeof errbuf);
    if (err != SL_OK) {
        CHECK(err == SL_ERR_INVALID || err == SL_ERR_TOO_LARGE || err == SL_ERR_NOMEM);
        CHECK(batch.n_accepted == 0 && batch.n_rejected == 0 && batch.n_events == 0);
        CHECK(batch.data.len == 0);
        CHECK((unsigned)reason < SL_REASON__COUNT);
        CHECK(errbuf[0] != '\0' && utf8_text(errbuf));
        CHECK(err != SL_ERR_TOO_LARGE || reason == SL_REASON_TOO_MANY_EVENTS);
        /* Refusals that only the parser gives: jansson must refuse the body too, but for
         * a raw NUL byte, which jansson skips after a number ("[1\0]"). */
        if (reason == SL_REASON_MALFORMED_JSON || reason == SL_REASON_INVALID_UTF8 ||
            reason == SL_REASON_DUPLICATE_FIELD || reason == SL_REASON_TOO_DEEP)
            CHECK(!jansson_accepts(data, size) || memchr(data, 0, size) != NULL);
        return 0;
    }
    CHECK(jansson_accepts(data, size));
    CHECK(batch.n_events >= 1 && batch.n_events <= lim.max_batch);
    CHECK(batch.n_accepted + batch.n_rejected == batch.n_events);
    CHECK(batch.is_batch || batch.n_events == 1);
    size_t total = 0;
    for (size_t i = 0; i < batch.n_accepted; i++) {
        const sl_event_entry *e = &batch.accepted[i];
        CHECK(e->index < batch.n_events);
        CHECK(i == 0 || e->index > batch.accepted[i - 1].index);
        check_entry(&batch, e, &lim);
        total += e->json_len + e->key_len;
    }
    CHECK(total == batch.data.len); /* nothing of a refused event stays in data */
    if (!batch.is_batch && batch.n_accepted == 1)
        check_single(data, size, &batch);
    for (size_t i = 0; i < batch.n_rejected; i++) {
        const sl_event_rejection *r = &batch.rejected[i];
        CHECK(r->index < batch.n_events);
        CHECK(i == 0 || r->index > batch.rejected[i - 1].index);
        CHECK((unsigned)r->reason < SL_REASON__COUNT);
        CHECK(r->message[0] != '\0' && utf8_text(r->message));
    }
    return 0;
}
