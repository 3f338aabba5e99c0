/* libFuzzer target for the ingest body parser and event validator: any bytes go in as a
 * request body, and whatever comes out must hold the batch's invariants (counts add up,
 * accepted events are valid JSON with the 18 keys within the size limit, keys are their
 * session_id, refused requests leave nothing behind). abort() marks a broken invariant. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[18] = {
    "event_id",          "timestamp",        "received_at",    "channel",
    "platform",          "event_type",       "event_category", "resource_id",
    "resource_title",    "interaction_target", "session_id",   "user_id",
    "device_id",         "user_agent",       "client_version", "interaction_value",
    "interaction_text",  "metadata"};

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

static bool utf8_text(const char *s)
{
    json_t *j = json_string(s); /* NULL unless valid UTF-8 */
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
    json_t *j = json_loadb(batch->data.data + e->json_off, e->json_len, JSON_REJECT_DUPLICATES,
                           &jerr);
    CHECK(j != NULL);
    CHECK(json_is_object(j));
    CHECK(json_object_size(j) == 18);
    const char *key;
    json_t *v;
    size_t k = 0;
    json_object_foreach (j, key, v) {
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

    sl_err err = sl_event_parse_body((const char *)data, size, &ctx, &lim, &batch, &reason,
                                     errbuf, sizeof errbuf);
    if (err != SL_OK) {
        CHECK(err == SL_ERR_INVALID || err == SL_ERR_TOO_LARGE || err == SL_ERR_NOMEM);
        CHECK(batch.n_accepted == 0 && batch.n_rejected == 0 && batch.n_events == 0);
        CHECK(batch.data.len == 0);
        CHECK((unsigned)reason < SL_REASON__COUNT);
        CHECK(errbuf[0] != '\0' && utf8_text(errbuf));
        CHECK(err != SL_ERR_TOO_LARGE || reason == SL_REASON_TOO_MANY_EVENTS);
        return 0;
    }
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
    for (size_t i = 0; i < batch.n_rejected; i++) {
        const sl_event_rejection *r = &batch.rejected[i];
        CHECK(r->index < batch.n_events);
        CHECK(i == 0 || r->index > batch.rejected[i - 1].index);
        CHECK((unsigned)r->reason < SL_REASON__COUNT);
        CHECK(r->message[0] != '\0' && utf8_text(r->message));
    }
    return 0;
}
