/* Unit tests of the event module: request shapes, every field rule with its reason and
 * exact message, normalization (key order, formats, metadata folding), limits, and the
 * reuse of one batch across requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/buf.h"
#include "core/uuid.h"
#include "event/event.h"
#include "event/event_int.h"

#define RECV_US INT64_C(1705314600000000) /* 2024-01-15T10:30:00.000Z */
#define RECV    "2024-01-15T10:30:00.000Z"
#define REQ     "\"channel\":\"web\",\"event_type\":\"page_view\",\"session_id\":\"s1\""

static sl_event_batch batch;
static sl_event_limits lim;
static sl_event_context ctx;
static sl_event_reason reason;
static char errbuf[256];

static const char *const normalized_keys[18] = {
    "event_id",          "timestamp",        "received_at", "channel",        "platform",
    "event_type",        "event_category",   "resource_id", "resource_title", "interaction_target",
    "session_id",        "user_id",          "device_id",   "user_agent",     "client_version",
    "interaction_value", "interaction_text", "metadata"};

static int setup(void **state)
{
    (void)state;
    sl_event_batch_init(&batch);
    sl_event_limits_default(&lim);
    ctx.received_at_us = RECV_US;
    ctx.user_agent = "test-agent/1.0";
    reason = (sl_event_reason)-1;
    errbuf[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_event_batch_cleanup(&batch);
    return 0;
}

static sl_err parse_n(const char *body, size_t len)
{
    return sl_event_parse_body(body, len, &ctx, &lim, &batch, &reason, errbuf, sizeof errbuf);
}

static sl_err parse(const char *body)
{
    return parse_n(body, strlen(body));
}

/* The normalized JSON of accepted event i, checked to parse and to hold the 18 keys in
 * order; the caller frees it. */
static json_t *entry_json(size_t i)
{
    assert_true(i < batch.n_accepted);
    const sl_event_entry *e = &batch.accepted[i];
    assert_true(e->json_off + e->json_len <= batch.data.len);
    json_error_t jerr;
    json_t *j =
        json_loadb(batch.data.data + e->json_off, e->json_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        fail_msg("normalized event does not parse: %s: %.*s", jerr.text, (int)e->json_len,
                 batch.data.data + e->json_off);
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 18);
    size_t k = 0;
    for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it)) {
        const char *key = json_object_iter_key(it);
        assert_string_equal(key, normalized_keys[k]);
        k++;
    }
    assert_true(json_is_object(json_object_get(j, "metadata")));
    /* The partition key is the session_id. */
    const char *sid = json_string_value(json_object_get(j, "session_id"));
    assert_non_null(sid);
    assert_int_equal(e->key_len, strlen(sid));
    assert_memory_equal(batch.data.data + e->key_off, sid, e->key_len);
    assert_string_equal(e->event_id, json_string_value(json_object_get(j, "event_id")));
    return j;
}

static json_t *accept_one(const char *body)
{
    sl_err err = parse(body);
    if (err != SL_OK)
        fail_msg("body refused (%s): %s", sl_event_reason_name(reason), errbuf);
    assert_int_equal(batch.n_events, 1);
    if (batch.n_accepted != 1)
        fail_msg("event refused (%s): %s", sl_event_reason_name(batch.rejected[0].reason),
                 batch.rejected[0].message);
    assert_int_equal(batch.n_rejected, 0);
    assert_int_equal(batch.accepted[0].index, 0);
    return entry_json(0);
}

/* The exact normalized text of a single accepted event. */
static void expect_normalized(const char *body, const char *want)
{
    json_decref(accept_one(body));
    const sl_event_entry *e = &batch.accepted[0];
    char *got = strndup(batch.data.data + e->json_off, e->json_len);
    assert_string_equal(got, want);
    free(got);
}

static void expect_rejected(const char *body, sl_event_reason r, const char *msg)
{
    sl_err err = parse(body);
    if (err != SL_OK)
        fail_msg("body refused (%s): %s", sl_event_reason_name(reason), errbuf);
    assert_int_equal(batch.n_events, 1);
    if (batch.n_accepted != 0)
        fail_msg("event accepted: %.*s", (int)batch.accepted[0].json_len,
                 batch.data.data + batch.accepted[0].json_off);
    assert_int_equal(batch.n_rejected, 1);
    assert_int_equal(batch.rejected[0].index, 0);
    assert_int_equal(batch.data.len, 0);
    assert_string_equal(sl_event_reason_name(batch.rejected[0].reason), sl_event_reason_name(r));
    assert_string_equal(batch.rejected[0].message, msg);
}

static void expect_body_error_n(const char *body, size_t len, sl_err want, sl_event_reason r,
                                const char *msg)
{
    sl_err err = parse_n(body, len);
    assert_string_equal(sl_strerror(err), sl_strerror(want));
    assert_string_equal(sl_event_reason_name(reason), sl_event_reason_name(r));
    if (msg)
        assert_string_equal(errbuf, msg);
    assert_int_equal(batch.n_accepted, 0);
    assert_int_equal(batch.n_rejected, 0);
    assert_int_equal(batch.n_events, 0);
    assert_int_equal(batch.data.len, 0);
}

static void expect_body_error(const char *body, sl_err want, sl_event_reason r, const char *msg)
{
    expect_body_error_n(body, strlen(body), want, r, msg);
}

static const char *jstr(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* A growable string for building bodies. */
static sl_buf sb;

static void sb_start(void)
{
    sl_buf_init(&sb, 64 << 20);
}

static void sb_add(const char *s)
{
    assert_int_equal(sl_buf_append_str(&sb, s), SL_OK);
}

static void sb_repeat(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_add(s);
}

/* ---- normalization ---------------------------------------------------------------- */

static void test_full_event_exact(void **state)
{
    (void)state;
    expect_normalized(
        "{\"channel\":\"web\",\"platform\":\"web-desktop\",\"event_type\":\"page_view\","
        "\"event_category\":\"navigation\",\"resource_id\":\"/home\",\"resource_title\":\"Home\","
        "\"interaction_target\":\"nav\",\"session_id\":\"s1\",\"user_id\":\"u1\","
        "\"device_id\":\"d1\",\"user_agent\":\"ua-body\",\"client_version\":\"1.2.3\","
        "\"interaction_value\":1.5,\"interaction_text\":\"hello\",\"metadata\":{\"a\":1},"
        "\"event_id\":\"e-1\",\"timestamp\":\"2024-01-15T10:29:59.5Z\"}",
        "{\"event_id\":\"e-1\",\"timestamp\":\"2024-01-15T10:29:59.500Z\",\"received_at\":\"" RECV
        "\",\"channel\":\"web\",\"platform\":\"web-desktop\",\"event_type\":\"page_view\","
        "\"event_category\":\"navigation\",\"resource_id\":\"/home\",\"resource_title\":\"Home\","
        "\"interaction_target\":\"nav\",\"session_id\":\"s1\",\"user_id\":\"u1\","
        "\"device_id\":\"d1\",\"user_agent\":\"ua-body\",\"client_version\":\"1.2.3\","
        "\"interaction_value\":1.5,\"interaction_text\":\"hello\",\"metadata\":{\"a\":1}}");
    assert_false(batch.is_batch);
    const sl_event_entry *e = &batch.accepted[0];
    assert_int_equal(e->key_len, 2);
    assert_memory_equal(batch.data.data + e->key_off, "s1", 2);
    assert_string_equal(e->event_id, "e-1");
    assert_int_equal(batch.data.len, e->json_len + e->key_len);
}

static void test_minimal_event_defaults(void **state)
{
    (void)state;
    json_t *j = accept_one("{" REQ "}");
    const char *id = jstr(j, "event_id");
    assert_true(sl_uuid_is_canonical(id, strlen(id)));
    assert_int_equal(id[14], '7');
    assert_string_equal(batch.accepted[0].event_id, id);
    assert_string_equal(jstr(j, "timestamp"), RECV);
    assert_string_equal(jstr(j, "received_at"), RECV);
    assert_string_equal(jstr(j, "user_agent"), "test-agent/1.0");
    static const char *const nulls[] = {
        "platform", "event_category", "resource_id",    "resource_title",    "interaction_target",
        "user_id",  "device_id",      "client_version", "interaction_value", "interaction_text"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        assert_true(json_is_null(json_object_get(j, nulls[i])));
    assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
    json_decref(j);

    /* Without a User-Agent header the field is null. */
    ctx.user_agent = NULL;
    j = accept_one("{" REQ "}");
    assert_true(json_is_null(json_object_get(j, "user_agent")));
    json_decref(j);
    /* Two events get two different ids. */
    assert_int_equal(parse("[{" REQ "},{" REQ "}]"), SL_OK);
    assert_int_equal(batch.n_accepted, 2);
    assert_string_not_equal(batch.accepted[0].event_id, batch.accepted[1].event_id);
}

static void test_nulls_are_absent(void **state)
{
    (void)state;
    expect_normalized(
        "{" REQ ",\"platform\":null,\"event_category\":null,\"resource_id\":null,"
        "\"resource_title\":null,\"interaction_target\":null,\"user_id\":null,\"device_id\":null,"
        "\"client_version\":null,\"interaction_value\":null,\"interaction_text\":null,"
        "\"metadata\":null,\"event_id\":\"x\",\"timestamp\":null,\"user_agent\":null}",
        "{\"event_id\":\"x\",\"timestamp\":\"" RECV "\",\"received_at\":\"" RECV
        "\",\"channel\":\"web\",\"platform\":null,\"event_type\":\"page_view\","
        "\"event_category\":null,\"resource_id\":null,\"resource_title\":null,"
        "\"interaction_target\":null,\"session_id\":\"s1\",\"user_id\":null,\"device_id\":null,"
        "\"user_agent\":\"test-agent/1.0\",\"client_version\":null,\"interaction_value\":null,"
        "\"interaction_text\":null,\"metadata\":{}}");
}

static void test_string_escaping(void **state)
{
    (void)state;
    json_t *j = accept_one("{\"channel\":\"we\\\"b\\\\\\n\\t\\u0001\\u00e9\\ud83d\\ude00/\","
                           "\"event_type\":\"\\u2028x\",\"session_id\":\"s\\\"1\"}");
    assert_string_equal(jstr(j, "channel"), "we\"b\\\n\t\x01\xc3\xa9\xf0\x9f\x98\x80/");
    assert_string_equal(jstr(j, "event_type"), "\xe2\x80\xa8x");
    assert_string_equal(jstr(j, "session_id"), "s\"1");
    json_decref(j);
    /* The key is the raw session_id, not its JSON form. */
    assert_int_equal(batch.accepted[0].key_len, 3);
    assert_memory_equal(batch.data.data + batch.accepted[0].key_off, "s\"1", 3);
}

static void test_user_agent(void **state)
{
    (void)state;
    json_t *j = accept_one("{" REQ ",\"user_agent\":\"from-body\"}");
    assert_string_equal(jstr(j, "user_agent"), "from-body");
    json_decref(j);
    j = accept_one("{" REQ ",\"user_agent\":\"\"}");
    assert_string_equal(jstr(j, "user_agent"), "");
    json_decref(j);
    j = accept_one("{" REQ ",\"user_agent\":null}");
    assert_string_equal(jstr(j, "user_agent"), "test-agent/1.0");
    json_decref(j);
    expect_rejected("{" REQ ",\"user_agent\":7}", SL_REASON_WRONG_TYPE,
                    "field \"user_agent\" must be a string, got number");

    /* A header that is not UTF-8 (Latin-1) is repaired, escapes and all. */
    ctx.user_agent = "Mozilla \"5\"\xff\xc3\x28\x01 \xc3\xa9";
    j = accept_one("{" REQ "}");
    assert_string_equal(jstr(j, "user_agent"),
                        "Mozilla \"5\"\xef\xbf\xbd\xef\xbf\xbd(\x01 \xc3\xa9");
    json_decref(j);
    /* A long header has no limit of its own. */
    sb_start();
    sb_repeat("abcdefghij", 2000);
    ctx.user_agent = sb.data;
    j = accept_one("{" REQ "}");
    assert_int_equal(strlen(jstr(j, "user_agent")), 20000);
    json_decref(j);
    sl_buf_cleanup(&sb);
}

static void test_interaction_value(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"42", "42"},
        {"-7", "-7"},
        {"0", "0"},
        {"9007199254740993", "9007199254740993"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"0.1", "0.1"},
        {"1.5", "1.5"},
        {"3.0", "3"},
        {"-0.0", "-0"},
        {"1e300", "1e+300"},
        {"2.5e-8", "2.5e-08"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"123456789.123456789", "123456789.12345679"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256], want[64];
        snprintf(body, sizeof body, "{" REQ ",\"interaction_value\":%s}", cases[i].in);
        json_t *j = accept_one(body);
        json_decref(j);
        snprintf(want, sizeof want, ",\"interaction_value\":%s,", cases[i].out);
        const sl_event_entry *e = &batch.accepted[0];
        char *got = strndup(batch.data.data + e->json_off, e->json_len);
        if (!strstr(got, want))
            fail_msg("%s: want %s in %s", cases[i].in, want, got);
        /* Reals read back as the same double. */
        json_t *back = json_loads(got, 0, NULL);
        json_t *orig = json_loads(cases[i].in, JSON_DECODE_ANY, NULL);
        assert_true(json_number_value(json_object_get(back, "interaction_value")) ==
                    json_number_value(orig));
        json_decref(back);
        json_decref(orig);
        free(got);
    }
    expect_rejected("{" REQ ",\"interaction_value\":\"5\"}", SL_REASON_WRONG_TYPE,
                    "field \"interaction_value\" must be a number, got string");
    expect_rejected("{" REQ ",\"interaction_value\":true}", SL_REASON_WRONG_TYPE,
                    "field \"interaction_value\" must be a number, got boolean");
    expect_rejected("{" REQ ",\"interaction_value\":[1]}", SL_REASON_WRONG_TYPE,
                    "field \"interaction_value\" must be a number, got array");
}

/* The shortest of %.15g..%.17g that reads back as d: what sl__event_format_double must
 * print whichever way it gets there. */
static void reference_double(char *out, size_t cap, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

static void expect_double(double d)
{
    char got[SL__DOUBLE_SIZE], want[64];
    size_t n = sl__event_format_double(got, d);
    reference_double(want, sizeof want, d);
    if (n != strlen(got) || strcmp(got, want) != 0)
        fail_msg("%.17g: got \"%s\" (%zu), want \"%s\"", d, got, n, want);
}

/* Reals with few decimals are written without snprintf; the text must not change. */
static void test_format_double(void **state)
{
    (void)state;
    static const double edges[] = {0.0001,
                                   0.00011,
                                   0.0001234567,
                                   9.9999e-5,
                                   1e-5,
                                   0.1,
                                   0.2,
                                   0.3,
                                   0.1 + 0.2,
                                   1.5,
                                   3.0,
                                   -2.5,
                                   19.99,
                                   100.0,
                                   1e14,
                                   999999999999999.0,
                                   1e15,
                                   123456789012345.0,
                                   12345678901234.5,
                                   0.000123,
                                   1.000001,
                                   1.0000001,
                                   2.675,
                                   1e21,
                                   5e-324,
                                   1.7976931348623157e308,
                                   -0.0001,
                                   -999999.999999,
                                   4503599627370495.5,
                                   0.5,
                                   42.0};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        expect_double(edges[i]);
    /* Decimals of 0 to 8 places over many magnitudes, and arbitrary bit patterns. */
    uint64_t r = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        int places = (int)(r % 9);
        int64_t mant = (int64_t)(r >> 20) % 100000000000000;
        double scale = 1;
        for (int p = 0; p < places; p++)
            scale *= 10;
        double d = (double)mant / scale;
        expect_double((r & 1) ? -d : d);
        uint64_t bits = r;
        double any;
        memcpy(&any, &bits, sizeof any);
        if (any == any && any - any == 0) /* finite */
            expect_double(any);
    }
}

/* ---- required and optional strings -------------------------------------------------- */

static void test_required_fields(void **state)
{
    (void)state;
    expect_rejected("{\"event_type\":\"a\",\"session_id\":\"s\"}", SL_REASON_MISSING_FIELD,
                    "field \"channel\" is required");
    expect_rejected("{\"channel\":null,\"event_type\":\"a\",\"session_id\":\"s\"}",
                    SL_REASON_MISSING_FIELD, "field \"channel\" is required");
    expect_rejected("{\"channel\":\"\",\"event_type\":\"a\",\"session_id\":\"s\"}",
                    SL_REASON_MISSING_FIELD, "field \"channel\" is required");
    expect_rejected("{\"channel\":\"w\",\"session_id\":\"s\"}", SL_REASON_MISSING_FIELD,
                    "field \"event_type\" is required");
    expect_rejected("{\"channel\":\"w\",\"event_type\":\"a\",\"session_id\":\"\"}",
                    SL_REASON_MISSING_FIELD, "field \"session_id\" is required");
    expect_rejected("{}", SL_REASON_MISSING_FIELD, "field \"channel\" is required");
    /* Fields are checked in output order, whatever order the client used. */
    expect_rejected("{\"session_id\":1,\"channel\":2}", SL_REASON_WRONG_TYPE,
                    "field \"channel\" must be a string, got number");

    static const struct {
        const char *v, *type;
    } types[] = {{"5", "number"},      {"5.5", "number"}, {"true", "boolean"},
                 {"false", "boolean"}, {"[]", "array"},   {"{}", "object"}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char body[128], msg[128];
        snprintf(body, sizeof body, "{\"channel\":%s,\"event_type\":\"a\",\"session_id\":\"s\"}",
                 types[i].v);
        snprintf(msg, sizeof msg, "field \"channel\" must be a string, got %s", types[i].type);
        expect_rejected(body, SL_REASON_WRONG_TYPE, msg);
    }
    expect_rejected("{\"channel\":\"w\",\"event_type\":\"a\",\"session_id\":[\"s\"]}",
                    SL_REASON_WRONG_TYPE, "field \"session_id\" must be a string, got array");
}

static void test_optional_fields(void **state)
{
    (void)state;
    static const char *const names[] = {"platform",       "event_category",     "resource_id",
                                        "resource_title", "interaction_target", "user_id",
                                        "device_id",      "client_version",     "interaction_text"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char body[256], msg[128];
        snprintf(body, sizeof body, "{" REQ ",\"%s\":\"v\"}", names[i]);
        json_t *j = accept_one(body);
        assert_string_equal(jstr(j, names[i]), "v");
        json_decref(j);
        snprintf(body, sizeof body, "{" REQ ",\"%s\":{\"a\":1}}", names[i]);
        snprintf(msg, sizeof msg, "field \"%s\" must be a string, got object", names[i]);
        expect_rejected(body, SL_REASON_WRONG_TYPE, msg);
        snprintf(body, sizeof body, "{" REQ ",\"%s\":\"\"}", names[i]);
        j = accept_one(body); /* "" is a value for an optional field */
        assert_string_equal(jstr(j, names[i]), "");
        json_decref(j);
    }
    expect_rejected("{" REQ ",\"platform\":false}", SL_REASON_WRONG_TYPE,
                    "field \"platform\" must be a string, got boolean");
}

/* An event whose field `name` holds `n` copies of `unit`. */
static void length_case(const char *name, const char *unit, size_t n, bool ok, const char *msg)
{
    static const char *const req[][2] = {
        {"channel", "\"channel\":\"c\","},
        {"event_type", "\"event_type\":\"t\","},
        {"session_id", "\"session_id\":\"s\","},
    };
    sb_start();
    sb_add("{");
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, req[i][0]) != 0)
            sb_add(req[i][1]);
    }
    sb_add("\"");
    sb_add(name);
    sb_add("\":\"");
    sb_repeat(unit, n);
    sb_add("\"}");
    if (ok) {
        json_t *j = accept_one(sb.data);
        json_decref(j);
    } else {
        expect_rejected(sb.data, SL_REASON_TOO_LONG, msg);
    }
    sl_buf_cleanup(&sb);
}

static void test_length_limits(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t max;
    } limits[] = {{"channel", 50},
                  {"platform", 100},
                  {"event_type", 100},
                  {"event_category", 100},
                  {"resource_id", 500},
                  {"resource_title", 200},
                  {"interaction_target", 200},
                  {"session_id", 100},
                  {"user_id", 100},
                  {"device_id", 100},
                  {"client_version", 50}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        char msg[128];
        snprintf(msg, sizeof msg, "field \"%s\" is %zu characters, over the limit of %zu",
                 limits[i].name, limits[i].max + 1, limits[i].max);
        length_case(limits[i].name, "a", limits[i].max, true, NULL);
        length_case(limits[i].name, "a", limits[i].max + 1, false, msg);
        /* Code points, not bytes: 2-, 3- and 4-byte characters. */
        length_case(limits[i].name, "\xc3\xa9", limits[i].max, true, NULL);
        length_case(limits[i].name, "\xc3\xa9", limits[i].max + 1, false, msg);
        length_case(limits[i].name, "\xe2\x82\xac", limits[i].max, true, NULL);
        length_case(limits[i].name, "\xf0\x9f\x98\x80", limits[i].max, true, NULL);
        length_case(limits[i].name, "\xf0\x9f\x98\x80", limits[i].max + 1, false, msg);
        /* A \u escape is one character. */
        length_case(limits[i].name, "\\u00e9", limits[i].max, true, NULL);
    }
    length_case("channel", "\xc3\xa9", 50, true, NULL);
    length_case("channel", "\xc3\xa9", 51, false,
                "field \"channel\" is 51 characters, over the limit of 50");
    length_case("resource_title", "x", 201, false,
                "field \"resource_title\" is 201 characters, over the limit of 200");
    /* No limit of their own. */
    length_case("interaction_text", "0123456789", 2000, true, NULL);
    length_case("user_agent", "0123456789", 2000, true, NULL);
}

/* ---- event_id ------------------------------------------------------------------------ */

static void test_event_id(void **state)
{
    (void)state;
    json_t *j = accept_one("{" REQ ",\"event_id\":\"evt-1\"}");
    assert_string_equal(jstr(j, "event_id"), "evt-1");
    assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
    json_decref(j);

    j = accept_one("{" REQ ",\"message_id\":\"msg-1\"}");
    assert_string_equal(jstr(j, "event_id"), "msg-1");
    assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
    json_decref(j);

    j = accept_one("{" REQ ",\"event_id\":null,\"message_id\":\"msg-1\"}");
    assert_string_equal(jstr(j, "event_id"), "msg-1");
    json_decref(j);

    /* Both: event_id wins, message_id is kept in metadata. */
    j = accept_one("{" REQ
                   ",\"message_id\":\"msg-1\",\"event_id\":\"evt-1\",\"metadata\":{\"a\":1}}");
    assert_string_equal(jstr(j, "event_id"), "evt-1");
    json_t *md = json_object_get(j, "metadata");
    assert_int_equal(json_object_size(md), 2);
    assert_string_equal(jstr(md, "message_id"), "msg-1");
    json_decref(j);
    /* ... as any JSON value, since it is not the id. */
    j = accept_one("{" REQ ",\"message_id\":[1],\"event_id\":\"evt-1\"}");
    assert_true(json_is_array(json_object_get(json_object_get(j, "metadata"), "message_id")));
    json_decref(j);
    expect_rejected("{" REQ ",\"message_id\":\"m\",\"event_id\":\"e\","
                    "\"metadata\":{\"message_id\":\"m2\"}}",
                    SL_REASON_DUPLICATE_FIELD,
                    "field \"message_id\" is both at top level and in metadata");

    expect_rejected("{" REQ ",\"event_id\":5}", SL_REASON_WRONG_TYPE,
                    "field \"event_id\" must be a string, got number");
    expect_rejected("{" REQ ",\"message_id\":{}}", SL_REASON_WRONG_TYPE,
                    "field \"message_id\" must be a string, got object");
    expect_rejected("{" REQ ",\"event_id\":\"\"}", SL_REASON_INVALID_VALUE,
                    "field \"event_id\" is empty");
    expect_rejected("{" REQ ",\"message_id\":\"\"}", SL_REASON_INVALID_VALUE,
                    "field \"message_id\" is empty");
    expect_rejected("{" REQ ",\"event_id\":\"a\\nb\"}", SL_REASON_INVALID_VALUE,
                    "field \"event_id\" contains a control character");
    expect_rejected("{" REQ ",\"event_id\":\"a\\u007f\"}", SL_REASON_INVALID_VALUE,
                    "field \"event_id\" contains a control character");
    expect_rejected("{" REQ ",\"message_id\":\"a\\u0085\"}", SL_REASON_INVALID_VALUE,
                    "field \"message_id\" contains a control character");

    /* 100 characters, also when they take 4 bytes each. */
    length_case("event_id", "a", 100, true, NULL);
    length_case("event_id", "a", 101, false,
                "field \"event_id\" is 101 characters, over the limit of 100");
    length_case("message_id", "\xc3\xa9", 101, false,
                "field \"message_id\" is 101 characters, over the limit of 100");
    sb_start();
    sb_add("{" REQ ",\"event_id\":\"");
    sb_repeat("\xf0\x9f\x98\x80", 100);
    sb_add("\"}");
    j = accept_one(sb.data);
    assert_int_equal(strlen(batch.accepted[0].event_id), 400);
    assert_memory_equal(batch.accepted[0].event_id, sb.data + strlen("{" REQ ",\"event_id\":\""),
                        400);
    json_decref(j);
    sl_buf_cleanup(&sb);
}

/* ---- timestamps ---------------------------------------------------------------------- */

static const char *accepted_timestamp(const char *body)
{
    static char ts[64];
    json_t *j = accept_one(body);
    snprintf(ts, sizeof ts, "%s", jstr(j, "timestamp"));
    json_decref(j);
    return ts;
}

static void test_timestamp(void **state)
{
    (void)state;
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":\"2024-01-15T12:00:00+02:00\"}"),
                        "2024-01-15T10:00:00.000Z");
    assert_string_equal(
        accepted_timestamp("{" REQ ",\"timestamp\":\"2024-01-15T10:00:00.123456789Z\"}"),
        "2024-01-15T10:00:00.123456Z");
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":1705314600123}"),
                        "2024-01-15T10:30:00.123Z");
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":1705314600123.456}"),
                        "2024-01-15T10:30:00.123456Z");
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":1705314600123.0}"),
                        "2024-01-15T10:30:00.123Z");
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":0}"),
                        "1970-01-01T00:00:00.000Z");
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":0.001}"),
                        "1970-01-01T00:00:00.000001Z");
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":253402300799999}"),
                        "9999-12-31T23:59:59.999Z");
    assert_string_equal(
        accepted_timestamp("{" REQ ",\"timestamp\":\"9999-12-31T23:59:59.999999Z\"}"),
        "9999-12-31T23:59:59.999999Z");
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":null}"), RECV);
    assert_string_equal(accepted_timestamp("{" REQ "}"), RECV);

    expect_rejected("{" REQ ",\"timestamp\":\"yesterday\"}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is not an RFC 3339 time or epoch milliseconds: "
                    "\"yesterday\"");
    expect_rejected("{" REQ ",\"timestamp\":\"\"}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is not an RFC 3339 time or epoch milliseconds: \"\"");
    expect_rejected("{" REQ ",\"timestamp\":\"1705314600123\"}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is not an RFC 3339 time or epoch milliseconds: "
                    "\"1705314600123\"");
    /* The value is quoted escaped and cut to 40 characters. */
    expect_rejected("{" REQ
                    ",\"timestamp\":\"a\\\"b\\n\\u00e9 0123456789012345678901234567890123456789\"}",
                    SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is not an RFC 3339 time or epoch milliseconds: "
                    "\"a\\\"b\\u000a\xc3\xa9 0123456789012345678901234567890123\"...");
    expect_rejected("{" REQ ",\"timestamp\":\"1969-12-31T23:59:59Z\"}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is out of range 1970-01-01 to 9999-12-31: "
                    "\"1969-12-31T23:59:59Z\"");
    expect_rejected("{" REQ ",\"timestamp\":-1}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is out of range 1970-01-01 to 9999-12-31: -1");
    expect_rejected("{" REQ ",\"timestamp\":-0.5}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is out of range 1970-01-01 to 9999-12-31: -0.5");
    expect_rejected("{" REQ ",\"timestamp\":253402300800000}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is out of range 1970-01-01 to 9999-12-31: "
                    "253402300800000");
    expect_rejected("{" REQ ",\"timestamp\":1e300}", SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is out of range 1970-01-01 to 9999-12-31: 1e+300");
    expect_rejected("{" REQ ",\"timestamp\":true}", SL_REASON_WRONG_TYPE,
                    "field \"timestamp\" must be an RFC 3339 string or epoch milliseconds, "
                    "got boolean");
    expect_rejected("{" REQ ",\"timestamp\":{}}", SL_REASON_WRONG_TYPE,
                    "field \"timestamp\" must be an RFC 3339 string or epoch milliseconds, "
                    "got object");
    /* received_at is the server's; a client's lands in metadata. */
    json_t *j = accept_one("{" REQ ",\"received_at\":\"2020-01-01T00:00:00Z\"}");
    assert_string_equal(jstr(j, "received_at"), RECV);
    assert_string_equal(jstr(json_object_get(j, "metadata"), "received_at"),
                        "2020-01-01T00:00:00Z");
    json_decref(j);
}

static void test_sent_at_skew(void **state)
{
    (void)state;
    /* The client's clock is 60 s behind: it sent at 10:29:00 (its time) what the server
     * received at 10:30:00, so an event at 10:28:50 (its time) happened at 10:29:50. */
    json_t *j = accept_one("{" REQ ",\"timestamp\":\"2024-01-15T10:28:50Z\","
                           "\"sent_at\":\"2024-01-15T10:29:00Z\"}");
    assert_string_equal(jstr(j, "timestamp"), "2024-01-15T10:29:50.000Z");
    assert_null(json_object_get(json_object_get(j, "metadata"), "sent_at")); /* consumed */
    json_decref(j);
    /* Ahead by 1.5 s, in epoch milliseconds. */
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":1705314590000,"
                                           "\"sent_at\":1705314601500}"),
                        "2024-01-15T10:29:48.500Z");
    /* Microsecond arithmetic. */
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":\"2024-01-15T10:00:00.000001Z\","
                                           "\"sent_at\":\"2024-01-15T10:30:00.000002Z\"}"),
                        "2024-01-15T09:59:59.999999Z");
    /* Without a timestamp, sent_at changes nothing. */
    assert_string_equal(accepted_timestamp("{" REQ ",\"sent_at\":\"2024-01-15T09:00:00Z\"}"), RECV);
    assert_string_equal(accepted_timestamp("{" REQ ",\"timestamp\":\"2024-01-15T10:00:00Z\","
                                           "\"sent_at\":null}"),
                        "2024-01-15T10:00:00.000Z");
    expect_rejected("{" REQ ",\"timestamp\":\"2024-01-15T10:00:00Z\",\"sent_at\":\"soon\"}",
                    SL_REASON_INVALID_VALUE,
                    "field \"sent_at\" is not an RFC 3339 time or epoch milliseconds: \"soon\"");
    expect_rejected(
        "{" REQ ",\"sent_at\":[]}", SL_REASON_WRONG_TYPE,
        "field \"sent_at\" must be an RFC 3339 string or epoch milliseconds, got array");
    /* A correction that leaves the range is refused. */
    expect_rejected("{" REQ ",\"timestamp\":0,\"sent_at\":\"2030-01-01T00:00:00Z\"}",
                    SL_REASON_INVALID_VALUE,
                    "field \"timestamp\" is out of range 1970-01-01 to 9999-12-31 once corrected "
                    "for the clock skew given by \"sent_at\"");

    /* The envelope's sent_at applies to events without their own. */
    assert_int_equal(parse("{\"sent_at\":\"2024-01-15T10:29:00Z\",\"batch\":["
                           "{" REQ ",\"timestamp\":\"2024-01-15T10:28:50Z\"},"
                           "{" REQ ",\"timestamp\":\"2024-01-15T10:28:50Z\","
                           "\"sent_at\":\"2024-01-15T10:28:50Z\"},"
                           "{" REQ "}]}"),
                     SL_OK);
    assert_true(batch.is_batch);
    assert_int_equal(batch.n_accepted, 3);
    j = entry_json(0);
    assert_string_equal(jstr(j, "timestamp"), "2024-01-15T10:29:50.000Z");
    json_decref(j);
    j = entry_json(1);
    assert_string_equal(jstr(j, "timestamp"), RECV);
    json_decref(j);
    j = entry_json(2);
    assert_string_equal(jstr(j, "timestamp"), RECV);
    json_decref(j);
    assert_int_equal(parse("{\"sent_at\":null,\"batch\":[{" REQ ",\"timestamp\":0}]}"), SL_OK);
    j = entry_json(0);
    assert_string_equal(jstr(j, "timestamp"), "1970-01-01T00:00:00.000Z");
    json_decref(j);
    expect_body_error("{\"batch\":[{" REQ "}],\"sent_at\":\"later\"}", SL_ERR_INVALID,
                      SL_REASON_INVALID_VALUE,
                      "field \"sent_at\" is not an RFC 3339 time or epoch milliseconds: \"later\"");
    expect_body_error("{\"batch\":[{" REQ "}],\"sent_at\":true}", SL_ERR_INVALID,
                      SL_REASON_WRONG_TYPE,
                      "field \"sent_at\" must be an RFC 3339 string or epoch milliseconds, "
                      "got boolean");
}

/* ---- metadata and unknown fields ----------------------------------------------------- */

static void test_metadata(void **state)
{
    (void)state;
    expect_normalized(
        "{" REQ ",\"event_id\":\"e\",\"metadata\":{\"b\":[1,2.5,\"x\",null,true],"
        "\"a\":{\"c\":{}}}}",
        "{\"event_id\":\"e\",\"timestamp\":\"" RECV "\",\"received_at\":\"" RECV
        "\",\"channel\":\"web\",\"platform\":null,\"event_type\":\"page_view\","
        "\"event_category\":null,\"resource_id\":null,\"resource_title\":null,"
        "\"interaction_target\":null,\"session_id\":\"s1\",\"user_id\":null,"
        "\"device_id\":null,\"user_agent\":\"test-agent/1.0\",\"client_version\":null,"
        "\"interaction_value\":null,\"interaction_text\":null,"
        "\"metadata\":{\"b\":[1,2.5,\"x\",null,true],\"a\":{\"c\":{}}}}");
    /* Numbers inside metadata print as interaction_value does: shortest round trip. */
    json_t *j = accept_one("{" REQ ",\"metadata\":{\"r\":0.1,\"w\":3.0,\"i\":-12,"
                           "\"a\":[1e300,0.30000000000000004]},\"top\":0.7}");
    const sl_event_entry *e = &batch.accepted[0];
    char *got = strndup(batch.data.data + e->json_off, e->json_len);
    assert_non_null(strstr(got, ",\"metadata\":{\"r\":0.1,\"w\":3,\"i\":-12,"
                                "\"a\":[1e+300,0.30000000000000004],\"top\":0.7}}"));
    free(got);
    json_decref(j);
    j = accept_one("{" REQ ",\"metadata\":{}}");
    assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
    json_decref(j);
    expect_rejected("{" REQ ",\"metadata\":[]}", SL_REASON_WRONG_TYPE,
                    "field \"metadata\" must be an object, got array");
    expect_rejected("{" REQ ",\"metadata\":\"{}\"}", SL_REASON_WRONG_TYPE,
                    "field \"metadata\" must be an object, got string");
    expect_rejected("{" REQ ",\"metadata\":3}", SL_REASON_WRONG_TYPE,
                    "field \"metadata\" must be an object, got number");
}

static void test_unknown_fields_folded(void **state)
{
    (void)state;
    /* After metadata's own keys, in the client's order; every JSON type. */
    json_t *j = accept_one("{\"zeta\":1," REQ ",\"metadata\":{\"a\":1},\"obj\":{\"x\":[1,2]},"
                           "\"s\":\"t\",\"r\":0.5,\"t\":true,\"f\":false,\"n\":null,\"arr\":[]}");
    const sl_event_entry *e = &batch.accepted[0];
    char *got = strndup(batch.data.data + e->json_off, e->json_len);
    assert_non_null(strstr(got,
                           ",\"metadata\":{\"a\":1,\"zeta\":1,\"obj\":{\"x\":[1,2]},\"s\":\"t\","
                           "\"r\":0.5,\"t\":true,\"f\":false,\"n\":null,\"arr\":[]}}"));
    free(got);
    json_decref(j);

    /* Without metadata. */
    j = accept_one("{" REQ ",\"campaign\":\"spring\"}");
    json_t *md = json_object_get(j, "metadata");
    assert_int_equal(json_object_size(md), 1);
    assert_string_equal(jstr(md, "campaign"), "spring");
    json_decref(j);
    /* With an empty metadata object or null metadata. */
    j = accept_one("{" REQ ",\"metadata\":{},\"campaign\":\"spring\"}");
    assert_string_equal(jstr(json_object_get(j, "metadata"), "campaign"), "spring");
    json_decref(j);
    j = accept_one("{" REQ ",\"metadata\":null,\"campaign\":\"spring\"}");
    assert_string_equal(jstr(json_object_get(j, "metadata"), "campaign"), "spring");
    json_decref(j);
    /* Keys that need escaping. */
    j = accept_one("{" REQ ",\"we\\\"ird\\u00e9\\n\":1}");
    assert_non_null(json_object_get(json_object_get(j, "metadata"), "we\"ird\xc3\xa9\n"));
    json_decref(j);
    /* A "batch" that is not an array is just an unknown field. */
    j = accept_one("{\"batch\":\"summer\"," REQ "}");
    assert_string_equal(jstr(json_object_get(j, "metadata"), "batch"), "summer");
    json_decref(j);
    assert_false(batch.is_batch);

    /* More unknown fields than anything keeps on a stack. */
    sb_start();
    sb_add("{" REQ);
    for (int i = 0; i < 100; i++) {
        char kv[32];
        snprintf(kv, sizeof kv, ",\"k%d\":%d", i, i);
        sb_add(kv);
    }
    sb_add("}");
    j = accept_one(sb.data);
    md = json_object_get(j, "metadata");
    assert_int_equal(json_object_size(md), 100);
    assert_int_equal(json_integer_value(json_object_get(md, "k99")), 99);
    json_decref(j);
    sl_buf_cleanup(&sb);

    expect_rejected("{" REQ ",\"a\":1,\"metadata\":{\"a\":2}}", SL_REASON_DUPLICATE_FIELD,
                    "field \"a\" is both at top level and in metadata");
    expect_rejected("{" REQ ",\"metadata\":{\"x\\\"y\":2},\"x\\\"y\":1}", SL_REASON_DUPLICATE_FIELD,
                    "field \"x\\\"y\" is both at top level and in metadata");
}

/* ---- limits -------------------------------------------------------------------------- */

/* An event with `levels` nesting levels in total (its top object is level 1): the value
 * of key and what it holds make the other levels-1. */
static void deep_event(const char *key, unsigned levels, bool arrays)
{
    sb_start();
    sb_add("{" REQ ",\"");
    sb_add(key);
    sb_add("\":");
    if (arrays) {
        /* metadata must be an object; arrays start below it. */
        bool md = strcmp(key, "metadata") == 0;
        if (md)
            sb_add("{\"k\":");
        sb_repeat("[", levels - 1 - md);
        sb_repeat("]", levels - 1 - md);
        if (md)
            sb_add("}");
    } else {
        sb_repeat("{\"k\":", levels - 2);
        sb_add("{}");
        sb_repeat("}", levels - 2);
    }
    sb_add("}");
}

static void test_depth(void **state)
{
    (void)state;
    deep_event("metadata", 16, false);
    json_decref(accept_one(sb.data));
    sl_buf_cleanup(&sb);
    deep_event("metadata", 17, false);
    expect_rejected(sb.data, SL_REASON_TOO_DEEP, "nesting deeper than 16 levels");
    sl_buf_cleanup(&sb);
    deep_event("metadata", 16, true);
    json_decref(accept_one(sb.data));
    sl_buf_cleanup(&sb);
    deep_event("metadata", 17, true);
    expect_rejected(sb.data, SL_REASON_TOO_DEEP, "nesting deeper than 16 levels");
    sl_buf_cleanup(&sb);
    deep_event("extra", 16, true);
    json_decref(accept_one(sb.data));
    sl_buf_cleanup(&sb);
    deep_event("extra", 17, true);
    expect_rejected(sb.data, SL_REASON_TOO_DEEP, "nesting deeper than 16 levels");
    sl_buf_cleanup(&sb);
    /* Far past our limit but under jansson's. */
    deep_event("metadata", 2000, true);
    expect_rejected(sb.data, SL_REASON_TOO_DEEP, "nesting deeper than 16 levels");
    sl_buf_cleanup(&sb);
    lim.max_depth = 3;
    json_decref(accept_one("{" REQ ",\"metadata\":{\"a\":[]}}"));
    expect_rejected("{" REQ ",\"metadata\":{\"a\":[{}]}}", SL_REASON_TOO_DEEP,
                    "nesting deeper than 3 levels");
    /* Scalars are not levels. */
    json_decref(accept_one("{" REQ ",\"metadata\":{\"a\":[1,\"x\",null]}}"));

    /* jansson's own limit (2048 levels, the array counts) refuses the whole body. */
    sb_start();
    sb_repeat("[", 2048);
    sb_repeat("]", 2048);
    assert_int_equal(parse(sb.data), SL_OK); /* an array holding one non-object */
    assert_int_equal(batch.n_rejected, 1);
    assert_int_equal(batch.rejected[0].reason, SL_REASON_NOT_OBJECT);
    sl_buf_cleanup(&sb);
    sb_start();
    sb_repeat("[", 2049);
    sb_repeat("]", 2049);
    expect_body_error(sb.data, SL_ERR_INVALID, SL_REASON_TOO_DEEP,
                      "nesting deeper than 2048 levels");
    sl_buf_cleanup(&sb);
    deep_event("metadata", 3000, false);
    expect_body_error(sb.data, SL_ERR_INVALID, SL_REASON_TOO_DEEP,
                      "nesting deeper than 2048 levels");
    sl_buf_cleanup(&sb);
}

static void keys_object(size_t n, const char *prefix)
{
    for (size_t i = 0; i < n; i++) {
        char kv[48];
        snprintf(kv, sizeof kv, "%s\"%s%zu\":0", i ? "," : "", prefix, i);
        sb_add(kv);
    }
}

static void test_too_many_keys(void **state)
{
    (void)state;
    sb_start();
    sb_add("{" REQ ",\"metadata\":{");
    keys_object(256, "k");
    sb_add("}}");
    json_decref(accept_one(sb.data));
    sl_buf_cleanup(&sb);

    sb_start();
    sb_add("{" REQ ",\"metadata\":{");
    keys_object(257, "k");
    sb_add("}}");
    expect_rejected(sb.data, SL_REASON_TOO_MANY_KEYS,
                    "an object in field \"metadata\" has 257 keys, over the limit of 256");
    sl_buf_cleanup(&sb);

    sb_start();
    sb_add("{" REQ ",\"extra\":[{\"x\":{");
    keys_object(300, "k");
    sb_add("}}]}");
    expect_rejected(sb.data, SL_REASON_TOO_MANY_KEYS,
                    "an object in field \"extra\" has 300 keys, over the limit of 256");
    sl_buf_cleanup(&sb);

    sb_start();
    sb_add("{" REQ ",");
    keys_object(254, "k");
    sb_add("}");
    expect_rejected(sb.data, SL_REASON_TOO_MANY_KEYS, "event has 257 keys, over the limit of 256");
    sl_buf_cleanup(&sb);

    /* Folding unknown fields into metadata must not make it exceed the limit either. */
    sb_start();
    sb_add("{" REQ ",\"metadata\":{");
    keys_object(200, "m");
    sb_add("},");
    keys_object(60, "u");
    sb_add("}");
    expect_rejected(sb.data, SL_REASON_TOO_MANY_KEYS,
                    "field \"metadata\" has 260 keys once unknown top-level fields are folded in, "
                    "over the limit of 256");
    sl_buf_cleanup(&sb);
}

static void test_event_size(void **state)
{
    (void)state;
    const char *body = "{" REQ ",\"event_id\":\"e\",\"interaction_text\":\"hello\"}";
    json_decref(accept_one(body));
    size_t n = batch.accepted[0].json_len;
    lim.max_event_bytes = n;
    json_decref(accept_one(body));
    lim.max_event_bytes = n - 1;
    char msg[128];
    snprintf(msg, sizeof msg, "event is %zu bytes, over the limit of %zu", n, n - 1);
    expect_rejected(body, SL_REASON_TOO_LARGE, msg);

    /* With the default limit. */
    sl_event_limits_default(&lim);
    sb_start();
    sb_add("{\"event_id\":\"e\"," REQ ",\"interaction_text\":\"");
    sb_repeat("x", 40000);
    sb_add("\"}");
    snprintf(msg, sizeof msg, "event is %zu bytes, over the limit of 32768", n + 40000 - 5);
    expect_rejected(sb.data, SL_REASON_TOO_LARGE, msg);
    sl_buf_cleanup(&sb);
}

/* ---- request shapes ------------------------------------------------------------------ */

static void test_batch_shapes(void **state)
{
    (void)state;
    const char *bodies[] = {
        "[{" REQ ",\"user_id\":\"a\"},{" REQ ",\"user_id\":\"b\"},{" REQ ",\"user_id\":\"c\"}]",
        "{\"batch\":[{" REQ ",\"user_id\":\"a\"},{" REQ ",\"user_id\":\"b\"},{" REQ
        ",\"user_id\":\"c\"}]}",
        " \n\t[{" REQ ",\"user_id\":\"a\"}, {" REQ ",\"user_id\":\"b\"} ,{" REQ
        ",\"user_id\":\"c\"}]\r\n",
    };
    for (size_t b = 0; b < 3; b++) {
        assert_int_equal(parse(bodies[b]), SL_OK);
        assert_true(batch.is_batch);
        assert_int_equal(batch.n_events, 3);
        assert_int_equal(batch.n_accepted, 3);
        assert_int_equal(batch.n_rejected, 0);
        size_t total = 0;
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(batch.accepted[i].index, i);
            json_t *j = entry_json(i);
            char want[2] = {(char)('a' + i), 0};
            assert_string_equal(jstr(j, "user_id"), want);
            json_decref(j);
            total += batch.accepted[i].json_len + batch.accepted[i].key_len;
        }
        assert_int_equal(total, batch.data.len);
    }
    /* A one-element array is still a batch. */
    assert_int_equal(parse("[{" REQ "}]"), SL_OK);
    assert_true(batch.is_batch);
    assert_int_equal(batch.n_accepted, 1);

    expect_body_error("[]", SL_ERR_INVALID, SL_REASON_EMPTY_BATCH, "batch is empty");
    expect_body_error("{\"batch\":[]}", SL_ERR_INVALID, SL_REASON_EMPTY_BATCH, "batch is empty");
    expect_body_error("{\"batch\":[{" REQ "}],\"write_key\":\"k\"}", SL_ERR_INVALID,
                      SL_REASON_INVALID_VALUE, "unknown field \"write_key\" next to \"batch\"");
    expect_body_error("{\"channel\":\"web\",\"batch\":[]}", SL_ERR_INVALID, SL_REASON_INVALID_VALUE,
                      "unknown field \"channel\" next to \"batch\"");

    expect_body_error("\"event\"", SL_ERR_INVALID, SL_REASON_NOT_OBJECT,
                      "body must be a JSON object or array, got string");
    expect_body_error("42", SL_ERR_INVALID, SL_REASON_NOT_OBJECT,
                      "body must be a JSON object or array, got number");
    expect_body_error("null", SL_ERR_INVALID, SL_REASON_NOT_OBJECT,
                      "body must be a JSON object or array, got null");
    expect_body_error("true", SL_ERR_INVALID, SL_REASON_NOT_OBJECT,
                      "body must be a JSON object or array, got boolean");
}

static void test_max_batch(void **state)
{
    (void)state;
    sb_start();
    sb_add("[");
    for (int i = 0; i < 1001; i++)
        sb_add(i ? ",{" REQ "}" : "{" REQ "}");
    sb_add("]");
    expect_body_error(sb.data, SL_ERR_TOO_LARGE, SL_REASON_TOO_MANY_EVENTS,
                      "batch has 1001 events, over the limit of 1000");
    /* Exactly the limit is fine. */
    sb.len -= strlen(",{" REQ "}]");
    sb_add("]");
    assert_int_equal(parse(sb.data), SL_OK);
    assert_int_equal(batch.n_accepted, 1000);
    assert_int_equal(batch.accepted[999].index, 999);
    json_decref(entry_json(999));
    sl_buf_cleanup(&sb);

    lim.max_batch = 2;
    expect_body_error("{\"batch\":[1,2,3]}", SL_ERR_TOO_LARGE, SL_REASON_TOO_MANY_EVENTS,
                      "batch has 3 events, over the limit of 2");
}

static void test_mixed_batch(void **state)
{
    (void)state;
    assert_int_equal(parse("[{" REQ ",\"user_id\":\"0\"},"
                           "1,"
                           "{" REQ ",\"user_id\":\"2\"},"
                           "{\"channel\":\"web\"},"
                           "{" REQ ",\"user_id\":\"4\",\"interaction_text\":\"" /* too large */
                           "0123456789012345678901234567890123456789012345678901234567890\"},"
                           "\"str\",null,[],"
                           "{" REQ ",\"user_id\":\"8\"}]"),
                     SL_OK);
    /* Run it again with a size limit that only event 4 breaks. */
    size_t small = batch.accepted[0].json_len + 40;
    lim.max_event_bytes = small;
    assert_int_equal(parse("[{" REQ ",\"user_id\":\"0\"},"
                           "1,"
                           "{" REQ ",\"user_id\":\"2\"},"
                           "{\"channel\":\"web\"},"
                           "{" REQ ",\"user_id\":\"4\",\"interaction_text\":\""
                           "0123456789012345678901234567890123456789012345678901234567890\"},"
                           "\"str\",null,[],"
                           "{" REQ ",\"user_id\":\"8\"}]"),
                     SL_OK);
    assert_true(batch.is_batch);
    assert_int_equal(batch.n_events, 9);
    assert_int_equal(batch.n_accepted, 3);
    assert_int_equal(batch.n_rejected, 6);
    static const size_t acc_idx[] = {0, 2, 8};
    size_t total = 0;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(batch.accepted[i].index, acc_idx[i]);
        json_t *j = entry_json(i);
        char want[2] = {(char)('0' + acc_idx[i]), 0};
        assert_string_equal(jstr(j, "user_id"), want);
        json_decref(j);
        /* Accepted events are packed: nothing of the refused ones is left in data. */
        assert_int_equal(batch.accepted[i].json_off, total);
        total += batch.accepted[i].json_len + batch.accepted[i].key_len;
    }
    assert_int_equal(total, batch.data.len);
    static const struct {
        size_t index;
        sl_event_reason reason;
    } rej[] = {{1, SL_REASON_NOT_OBJECT}, {3, SL_REASON_MISSING_FIELD}, {4, SL_REASON_TOO_LARGE},
               {5, SL_REASON_NOT_OBJECT}, {6, SL_REASON_NOT_OBJECT},    {7, SL_REASON_NOT_OBJECT}};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(batch.rejected[i].index, rej[i].index);
        assert_int_equal(batch.rejected[i].reason, rej[i].reason);
    }
    assert_string_equal(batch.rejected[0].message, "event is not a JSON object");
    assert_string_equal(batch.rejected[1].message, "field \"event_type\" is required");

    /* All refused is still SL_OK. */
    assert_int_equal(parse("[1,2]"), SL_OK);
    assert_int_equal(batch.n_accepted, 0);
    assert_int_equal(batch.n_rejected, 2);
    assert_int_equal(batch.data.len, 0);
}

static void test_batch_reuse(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        sb_start();
        sb_add("[");
        for (int i = 0; i < 50; i++)
            sb_add(i ? ",{" REQ ",\"metadata\":{\"x\":[1,2,3]}}" : "{" REQ "}");
        sb_add("]");
        assert_int_equal(parse(sb.data), SL_OK);
        assert_int_equal(batch.n_accepted, 50);
        sl_buf_cleanup(&sb);
        char *data_before = batch.data.data;
        sl_event_entry *acc_before = batch.accepted;

        json_t *j = accept_one("{" REQ ",\"user_id\":\"single\"}");
        assert_string_equal(jstr(j, "user_id"), "single");
        json_decref(j);
        assert_false(batch.is_batch);
        /* Memory is kept, not reallocated, for a smaller request. */
        assert_ptr_equal(batch.data.data, data_before);
        assert_ptr_equal(batch.accepted, acc_before);

        expect_body_error("{\"channel\":", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
        assert_false(batch.is_batch);

        assert_int_equal(parse("[{" REQ "},7]"), SL_OK);
        assert_int_equal(batch.n_accepted, 1);
        assert_int_equal(batch.n_rejected, 1);
        assert_int_equal(batch.rejected[0].index, 1);
        json_decref(entry_json(0));

        sl_event_batch_reset(&batch);
        assert_int_equal(batch.n_accepted + batch.n_rejected + batch.n_events, 0);
        assert_int_equal(batch.data.len, 0);
    }
}

/* ---- bodies refused as a whole ------------------------------------------------------- */

static void test_malformed_json(void **state)
{
    (void)state;
    expect_body_error("{\"channel\":\"web\",\"x\":}", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON,
                      "malformed JSON at line 1, column 22: unexpected token near '}'");
    expect_body_error("{\"channel\":", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON,
                      "malformed JSON at line 1, column 11: unexpected token near end of file");
    expect_body_error("", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("   ", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("{" REQ "} {}", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("{" REQ "}x", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("[{" REQ "},]", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("{'channel':'web'}", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("{\"a\":NaN}", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("{\"a\":\"\\ud800\"}", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("\xef\xbb\xbf{" REQ "}", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    /* Every truncation of a valid body. */
    const char *full = "{\"batch\":[{" REQ ",\"metadata\":{\"a\":[1,2.5]}}]}";
    for (size_t n = 0; n < strlen(full); n++)
        expect_body_error_n(full, n, SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    /* A raw control character in a string: jansson's text quotes it, the message escapes it. */
    expect_body_error("{\"a\":\"x\ty\"}", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    for (const char *p = errbuf; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    /* The body need not be NUL-terminated: only len bytes are read. */
    const char *body = "{" REQ "}GARBAGE";
    assert_int_equal(parse_n(body, strlen(body) - 7), SL_OK);
    assert_int_equal(batch.n_accepted, 1);
    /* A NULL body is an empty one. */
    assert_int_equal(
        sl_event_parse_body(NULL, 0, &ctx, &lim, &batch, &reason, errbuf, sizeof errbuf),
        SL_ERR_INVALID);
    assert_int_equal(reason, SL_REASON_MALFORMED_JSON);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    expect_body_error("{\"channel\":\"w\xff"
                      "b\"}",
                      SL_ERR_INVALID, SL_REASON_INVALID_UTF8, "body is not valid UTF-8 at byte 13");
    expect_body_error("{\"channel\":\"w\xc3(\"}", SL_ERR_INVALID, SL_REASON_INVALID_UTF8,
                      "body is not valid UTF-8 at byte 13");
    expect_body_error("{\"ch\xc0\xafnnel\":1}", SL_ERR_INVALID, SL_REASON_INVALID_UTF8,
                      "body is not valid UTF-8 at byte 4"); /* overlong '/' */
    expect_body_error("{\"a\":\"\xed\xa0\x80\"}", SL_ERR_INVALID, SL_REASON_INVALID_UTF8,
                      "body is not valid UTF-8 at byte 6"); /* surrogate */
    expect_body_error("{\"a\":\"\xf4\x90\x80\x80\"}", SL_ERR_INVALID, SL_REASON_INVALID_UTF8,
                      "body is not valid UTF-8 at byte 6"); /* over U+10FFFF */
    expect_body_error("[\x80]", SL_ERR_INVALID, SL_REASON_INVALID_UTF8,
                      "body is not valid UTF-8 at byte 1");
    /* Cut inside a character at the end: a truncated body, so malformed JSON... */
    expect_body_error("{\"a\":\"\xe2\x82", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON,
                      "malformed JSON at line 1, column 6: body ends inside a character");
    expect_body_error("{\"a\":\"\xf0\x9f\x98", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    expect_body_error("{\"a\":\"\xc3", SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    /* ... unless what is there is already wrong. */
    expect_body_error("{\"a\":\"\xe0\x80", SL_ERR_INVALID, SL_REASON_INVALID_UTF8,
                      "body is not valid UTF-8 at byte 6");
    expect_body_error("{\"a\":\"\xed\xa0", SL_ERR_INVALID, SL_REASON_INVALID_UTF8, NULL);
    expect_body_error("{\"a\":\"\xf5\x80", SL_ERR_INVALID, SL_REASON_INVALID_UTF8, NULL);
    expect_body_error("{\"a\":\"\xe2\x82x", SL_ERR_INVALID, SL_REASON_INVALID_UTF8, NULL);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_body_error("{" REQ ",\"channel\":\"app\"}", SL_ERR_INVALID, SL_REASON_DUPLICATE_FIELD,
                      "duplicate key \"channel\"");
    expect_body_error("[{" REQ ",\"metadata\":{\"a\\\"b\":1, \"a\\\"b\" :2}}]", SL_ERR_INVALID,
                      SL_REASON_DUPLICATE_FIELD, "duplicate key \"a\\\"b\"");
    expect_body_error("{\"abcdefghijklmnopqrstuvwxyz\":1,\"abcdefghijklmnopqrstuvwxyz\":2}",
                      SL_ERR_INVALID, SL_REASON_DUPLICATE_FIELD,
                      "duplicate key \"abcdefghijklmnopqrstuvwxyz\"");
    /* The same key spelled two ways. */
    expect_body_error("{\"\\u00e9\\\\\":1,\"\xc3\xa9\\u005c\":2}", SL_ERR_INVALID,
                      SL_REASON_DUPLICATE_FIELD, "duplicate key \"\xc3\xa9\\\\\"");
    expect_body_error("{\"\":1,\"\":2}", SL_ERR_INVALID, SL_REASON_DUPLICATE_FIELD,
                      "duplicate key \"\"");
    expect_body_error("{\"a\\\\\":1,\"a\\\\\":2}", SL_ERR_INVALID, SL_REASON_DUPLICATE_FIELD,
                      "duplicate key \"a\\\\\"");
    /* The same key in two different objects is fine. */
    json_decref(accept_one("{" REQ ",\"metadata\":{\"channel\":\"x\"}}"));
}

static void test_nul_and_numbers(void **state)
{
    (void)state;
    expect_body_error("{\"channel\":\"a\\u0000b\"}", SL_ERR_INVALID, SL_REASON_INVALID_VALUE,
                      "string contains \\u0000");
    expect_body_error("{\"a\\u0000\":1}", SL_ERR_INVALID, SL_REASON_INVALID_VALUE,
                      "object key contains \\u0000");
    expect_body_error("{\"a\":99999999999999999999}", SL_ERR_INVALID, SL_REASON_INVALID_VALUE,
                      "number out of range at line 1, column 25: too big integer near "
                      "'99999999999999999999'");
    expect_body_error("{\"a\":1e400}", SL_ERR_INVALID, SL_REASON_INVALID_VALUE, NULL);
    /* A raw NUL byte ends nothing: it is an error where it stands. */
    expect_body_error_n("{\"a\":\"x\0\"}", 10, SL_ERR_INVALID, SL_REASON_MALFORMED_JSON, NULL);
    /* Nor right after a number, which jansson skipped ("[1\0]" was "[1]"). */
    expect_body_error_n("[1\0]", 4, SL_ERR_INVALID, SL_REASON_MALFORMED_JSON,
                        "malformed JSON: NUL byte at byte 2");
    expect_body_error_n("{" REQ ",\"a\":1\0}", strlen("{" REQ ",\"a\":1") + 2, SL_ERR_INVALID,
                        SL_REASON_MALFORMED_JSON, NULL);
}

/* What jansson refused while parsing and simdjson does not, checked after the parse
 * (src/event/json.c): at any depth, in any event of a batch. */
static void test_parser_checks(void **state)
{
    (void)state;
    /* Integers between INT64_MAX and UINT64_MAX, which simdjson holds as uint64. */
    expect_body_error("{\"a\":9223372036854775808}", SL_ERR_INVALID, SL_REASON_INVALID_VALUE,
                      "number out of range at line 1, column 24: too big integer near "
                      "'9223372036854775808'");
    expect_body_error("[{\"a\":1},{\"m\":[{\"x\":18446744073709551615}]}]", SL_ERR_INVALID,
                      SL_REASON_INVALID_VALUE,
                      "number out of range at line 1, column 40: too big integer near "
                      "'18446744073709551615'");
    json_decref(accept_one("{" REQ ",\"interaction_value\":9223372036854775807}"));
    /* \u0000 deep in a batch; a literal backslash before "u0000" is no NUL. */
    expect_body_error("[{" REQ "},{\"k\":{\"a\":[\"x\\u0000\"]}}]", SL_ERR_INVALID,
                      SL_REASON_INVALID_VALUE, "string contains \\u0000");
    expect_body_error("[{" REQ ",\"metadata\":{\"k\":{\"\\u0000\":1}}}]", SL_ERR_INVALID,
                      SL_REASON_INVALID_VALUE, "object key contains \\u0000");
    json_t *j = accept_one("{" REQ ",\"metadata\":{\"\\\\u0000\":\"\\\\u0000\"}}");
    assert_string_equal(jstr(json_object_get(j, "metadata"), "\\u0000"), "\\u0000");
    json_decref(j);
    /* Duplicates inside arrays, and in objects too large to compare pair by pair. */
    expect_body_error("[{" REQ "},{" REQ ",\"metadata\":{\"l\":[1,{\"x\":1,\"y\":2,\"x\":3}]}}]",
                      SL_ERR_INVALID, SL_REASON_DUPLICATE_FIELD, "duplicate key \"x\"");
    lim.max_keys = 1000;
    for (size_t n = 20; n <= 300; n += 40) {
        sb_start();
        sb_add("{" REQ ",\"metadata\":{");
        keys_object(n, "k");
        sb_add(",\"k7\":1}}");
        expect_body_error(sb.data, SL_ERR_INVALID, SL_REASON_DUPLICATE_FIELD,
                          "duplicate key \"k7\"");
        sl_buf_cleanup(&sb);
        sb_start();
        sb_add("{" REQ ",\"metadata\":{");
        keys_object(n, "k");
        sb_add("}}");
        json_decref(accept_one(sb.data));
        sl_buf_cleanup(&sb);
    }
    /* Keys that differ only past their first bytes or in length. */
    json_decref(accept_one("{" REQ ",\"metadata\":{\"ab\":1,\"abc\":2,\"abd\":3,\"a\":4,\"\":5}}"));
    /* Bodies larger than the parser's first allocation (64 KiB) and than what a thread
     * keeps (1 MiB), each followed by a small one. */
    lim.max_event_bytes = 4 << 20;
    for (size_t n = 16384; n <= 131072; n *= 8) {
        sb_start();
        sb_add("{" REQ ",\"interaction_text\":\"");
        sb_repeat("0123456789abcdef", n);
        sb_add("\"}");
        j = accept_one(sb.data);
        assert_int_equal(strlen(jstr(j, "interaction_text")), n * 16);
        json_decref(j);
        sl_buf_cleanup(&sb);
        json_decref(accept_one("{" REQ ",\"metadata\":{\"a\":[1,2]}}"));
    }
}

static void test_api_edges(void **state)
{
    (void)state;
    /* Default limits, no context, no reason or error buffer. */
    sl_event_limits d;
    sl_event_limits_default(&d);
    assert_int_equal(d.max_event_bytes, 32768);
    assert_int_equal(d.max_depth, 16);
    assert_int_equal(d.max_keys, 256);
    assert_int_equal(d.max_batch, 1000);
    const char *body = "{" REQ "}";
    assert_int_equal(sl_event_parse_body(body, strlen(body), NULL, NULL, &batch, NULL, NULL, 0),
                     SL_OK);
    assert_int_equal(batch.n_accepted, 1);
    json_t *j = entry_json(0);
    assert_true(json_is_null(json_object_get(j, "user_agent")));
    json_decref(j);
    assert_int_equal(sl_event_parse_body("[]", 2, NULL, NULL, &batch, NULL, NULL, 0),
                     SL_ERR_INVALID);
    char tiny[8];
    assert_int_equal(sl_event_parse_body("[]", 2, &ctx, &lim, &batch, &reason, tiny, sizeof tiny),
                     SL_ERR_INVALID);
    assert_string_equal(tiny, "batch i");

    static const char *const names[SL_REASON__COUNT] = {
        "malformed_json",  "invalid_utf8",  "not_object",     "missing_field", "wrong_type",
        "too_long",        "invalid_value", "too_deep",       "too_many_keys", "too_large",
        "duplicate_field", "empty_batch",   "too_many_events"};
    for (int r = 0; r < SL_REASON__COUNT; r++)
        assert_string_equal(sl_event_reason_name((sl_event_reason)r), names[r]);
    assert_string_equal(sl_event_reason_name(SL_REASON__COUNT), "unknown");

    /* cleanup then init again, and cleanup twice, are safe. */
    sl_event_batch_cleanup(&batch);
    sl_event_batch_cleanup(&batch);
    sl_event_batch_init(&batch);
}

static void test_message_truncation(void **state)
{
    (void)state;
    /* A message longer than the buffer is cut at a character boundary. */
    sb_start();
    sb_add("{" REQ ",\"timestamp\":\"");
    sb_repeat("\xe2\x82\xac", 100);
    sb_add("\"}");
    assert_int_equal(parse(sb.data), SL_OK);
    assert_int_equal(batch.n_rejected, 1);
    const char *m = batch.rejected[0].message;
    assert_true(strlen(m) < SL_EVENT_MESSAGE_MAX);
    json_t *s = json_stringn(m, strlen(m)); /* NULL if not valid UTF-8 */
    assert_non_null(s);
    json_decref(s);
    sl_buf_cleanup(&sb);

    char small[20];
    assert_int_equal(sl_event_parse_body("{\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\":1,"
                                         "\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\":2}",
                                         35, &ctx, &lim, &batch, &reason, small, sizeof small),
                     SL_ERR_INVALID);
    s = json_stringn(small, strlen(small));
    assert_non_null(s);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_event_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minimal_event_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nulls_are_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interaction_value, setup, teardown),
        cmocka_unit_test(test_format_double),
        cmocka_unit_test_setup_teardown(test_required_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_optional_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sent_at_skew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_fields_folded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_and_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parser_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_truncation, setup, teardown),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
