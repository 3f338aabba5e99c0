/* Unit tests of the pg module's parts that need no server: log records to COPY text rows
 * (escaping, fallbacks for missing fields, refusals) and day arithmetic for partition
 * names. The server side is tested by tests/integration/test_pg*.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg/pg_int.h"

static sl_log_message msg(const char *json)
{
    /* 2024-01-15T10:30:00Z as the append time */
    return (sl_log_message){.partition = 3,
                            .offset = 77,
                            .timestamp_ms = INT64_C(1705314600000),
                            .value = json,
                            .value_len = strlen(json)};
}

/* The key texts of the last row built, and the row builder with them. */
static sl_buf key_text;
static sl__pg_keys keys;

static sl_err row(sl_buf *b, const sl_log_message *m, int32_t *day, char *eb, size_t eblen)
{
    sl_buf_reset(&key_text);
    return sl__pg_row_append(b, &key_text, m, &keys, day, eb, eblen);
}

/* A key's text as a C string ("NULL" for null), for comparisons. */
static const char *key(sl__pg_text t)
{
    static char out[256];
    if (t.len == SL__PG_NULL)
        return "NULL";
    snprintf(out, sizeof out, "%.*s", (int)t.len, key_text.data + t.off);
    return out;
}

static void test_row_full_event(void **state)
{
    sl_buf b;
    sl_buf_init(&b, 1 << 20);
    sl_log_message m = msg(
        "{\"event_id\":\"e1\",\"timestamp\":\"2024-02-29T23:59:59.5Z\",\"received_at\":"
        "\"2024-03-01T00:00:00Z\",\"channel\":\"web\",\"platform\":null,\"event_type\":\"page_"
        "view\","
        "\"session_id\":\"s1\",\"interaction_value\":2.5,\"interaction_text\":\"a\\tb\\nc\\\\d\","
        "\"metadata\":{\"k\":[1,\"x\\ty\"]}}");
    int32_t day = 0;
    char eb[256];
    assert_int_equal(row(&b, &m, &day, eb, sizeof eb), SL_OK);
    assert_string_equal(b.data, "e1\t2024-02-29T23:59:59.5Z\t2024-03-01T00:00:00Z\tweb\t\\N\t"
                                "page_view\t\\N\t\\N\t\\N\t\\N\ts1\t\\N\t\\N\t\\N\t\\N\t2.5\t"
                                "a\\tb\\nc\\\\d\t{\"k\":[1,\"x\\\\ty\"]}\n");
    assert_int_equal(day, 19782); /* 2024-02-29 */
    /* the keys are the columns' texts with the COPY escapes undone */
    assert_string_equal(key(keys.event_id), "e1");
    assert_string_equal(key(keys.timestamp), "2024-02-29T23:59:59.5Z");
    assert_string_equal(key(keys.channel), "web");
    assert_string_equal(key(keys.platform), "NULL");
    assert_string_equal(key(keys.event_type), "page_view");
    assert_string_equal(key(keys.event_category), "NULL");
    assert_string_equal(key(keys.session_id), "s1");
    assert_string_equal(key(keys.user_id), "NULL");
    assert_string_equal(key(keys.interaction_value), "2.5");
    sl_buf_cleanup(&b);
}

/* The COPY escaper skips clean bytes eight at a time: a tab, newline, carriage return or
 * backslash at any offset of an interaction_text up to three words long is escaped, and a
 * control character it need not escape (0x01, 0x0d - 1) stays as it is. */
static void test_row_escapes_at_every_offset(void **state)
{
    (void)state;
    const struct {
        const char *json, *copy;
    } cases[] = {{"\\t", "\\t"},   {"\\n", "\\n"},      {"\\r", "\\r"},
                 {"\\\\", "\\\\"}, {"\\u0001", "\x01"}, {"\\u000c", "\x0c"}};
    sl_buf b, want;
    sl_buf_init(&b, 1 << 20);
    sl_buf_init(&want, 1 << 20);
    char json[256], eb[256];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int len = 1; len <= 24; len++) {
            for (int at = 0; at < len; at++) {
                snprintf(json, sizeof json,
                         "{\"event_id\":\"e\",\"interaction_text\":\"%.*s%s%.*s\"}", at,
                         "xxxxxxxxxxxxxxxxxxxxxxxx", cases[c].json, len - at - 1,
                         "xxxxxxxxxxxxxxxxxxxxxxxx");
                sl_log_message m = msg(json);
                int32_t day;
                sl_buf_reset(&b);
                assert_int_equal(row(&b, &m, &day, eb, sizeof eb), SL_OK);
                sl_buf_reset(&want);
                assert_int_equal(sl_buf_appendf(&want, "\t%.*s%s%.*s\t", at,
                                                "xxxxxxxxxxxxxxxxxxxxxxxx", cases[c].copy,
                                                len - at - 1, "xxxxxxxxxxxxxxxxxxxxxxxx"),
                                 SL_OK);
                if (!strstr(b.data, want.data))
                    fail_msg("row %s lacks %s", b.data, want.data);
            }
        }
    }
    sl_buf_cleanup(&want);
    sl_buf_cleanup(&b);
}

static void test_row_fallbacks(void **state)
{
    sl_buf b;
    sl_buf_init(&b, 1 << 20);
    int32_t day = 0;
    char eb[256];
    /* no event_id, no timestamp: id from the log position, times from received_at */
    sl_log_message m = msg("{\"received_at\":\"2024-01-16T00:00:01Z\",\"channel\":\"x\","
                           "\"interaction_value\":7,\"metadata\":\"s\"}");
    assert_int_equal(row(&b, &m, &day, eb, sizeof eb), SL_OK);
    assert_non_null(strstr(b.data, "sluice:3:77\t2024-01-16T00:00:01Z\t2024-01-16T00:00:01Z\tx"));
    assert_non_null(strstr(b.data, "\t7\t\\N\t\"s\"\n"));
    assert_int_equal(day, 19738);
    assert_string_equal(key(keys.event_id), "sluice:3:77");
    assert_string_equal(key(keys.timestamp), "2024-01-16T00:00:01Z");
    assert_string_equal(key(keys.interaction_value), "7");
    /* nothing at all: the append time, and an empty metadata object */
    sl_buf_reset(&b);
    m = msg("{}");
    assert_int_equal(row(&b, &m, &day, eb, sizeof eb), SL_OK);
    assert_string_equal(b.data, "sluice:3:77\t2024-01-15T10:30:00.000Z\t2024-01-15T10:30:00.000Z"
                                "\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N"
                                "\t\\N\t\\N\t{}\n");
    assert_int_equal(day, 19737);
    /* a timestamp the sink cannot read is left for PostgreSQL to judge */
    sl_buf_reset(&b);
    m = msg("{\"timestamp\":1700000000000}");
    assert_int_equal(row(&b, &m, &day, eb, sizeof eb), SL_OK);
    assert_int_equal(day, SL__PG_NO_DAY);
    assert_non_null(strstr(b.data, "\t1700000000000\t"));
    sl_buf_cleanup(&b);
}

static void test_row_refusals(void **state)
{
    static const char *const bad[] = {
        "", "not json", "[1,2]", "\"s\"", "{\"a\":1", "{\"a\":1,\"a\":2}", "{\"a\":\"\\u0000\"}"};
    sl_buf b;
    sl_buf_init(&b, 1 << 20);
    assert_int_equal(sl_buf_append_str(&b, "kept"), SL_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_log_message m = msg(bad[i]);
        int32_t day;
        char eb[256] = "";
        assert_int_equal(row(&b, &m, &day, eb, sizeof eb), SL_ERR_INVALID);
        assert_true(strncmp(eb, "record is not", 13) == 0);
        assert_string_equal(b.data, "kept");
    }
    /* a row that does not fit the buffer's cap leaves it as it was */
    sl_buf small;
    sl_buf_init(&small, 32);
    sl_log_message m = msg("{\"channel\":\"a rather long channel name here\"}");
    int32_t day;
    char eb[256];
    assert_int_equal(row(&small, &m, &day, eb, sizeof eb), SL_ERR_TOO_LARGE);
    assert_int_equal(small.len, 0);
    sl_buf_cleanup(&small);
    sl_buf_cleanup(&b);
}

static void test_days(void **state)
{
    char s[9];
    static const struct {
        int32_t day;
        const char *text;
    } cases[] = {{0, "19700101"},      {-1, "19691231"},    {19782, "20240229"},
                 {11017, "20000301"},  {11016, "20000229"}, {-719162, "00010101"},
                 {2932896, "99991231"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl__pg_day_format(cases[i].day, s);
        assert_string_equal(s, cases[i].text);
    }
    assert_int_equal(sl__pg_day_of_us(0), 0);
    assert_int_equal(sl__pg_day_of_us(-1), -1);
    assert_int_equal(sl__pg_day_of_us(INT64_C(86400000000) - 1), 0);
    assert_int_equal(sl__pg_day_of_us(INT64_C(86400000000)), 1);
}

/* Timestamp texts C reads to the instant PostgreSQL does (the ids' binary COPY carries
 * those), and some it leaves to PostgreSQL. */
static void test_time_exact(void **state)
{
    int64_t us = 0;
    assert_true(sl__pg_time_exact("2024-01-15T10:30:00Z", 20, &us));
    assert_int_equal(us, INT64_C(1705314600000000));
    assert_true(sl__pg_time_exact("2024-02-29T23:59:59.5Z", 22, &us));
    assert_int_equal(us, INT64_C(1709251199500000));
    assert_true(sl__pg_time_exact("2024-01-15T10:30:00.123456+02:00", 32, &us));
    assert_int_equal(us, INT64_C(1705307400123456));
    static const char *const left[] = {
        "2024-01-15T10:30:00.1234567Z", /* PostgreSQL rounds a seventh digit */
        "2016-12-31T23:59:60Z",         /* a leap second is the next minute there */
        "2024-01-15 10:30:00+00",       /* not RFC 3339 */
        "1700000000000",
        "",
    };
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
        assert_false(sl__pg_time_exact(left[i], strlen(left[i]), &us));
}

/* hashtextextended(s, 0) as PostgreSQL 15 computed it (SELECT hashtextextended('...', 0)):
 * every length class of the hash's tail, and a string over two whole blocks. */
static void test_hash_matches_postgresql(void **state)
{
    static const struct {
        const char *s;
        int64_t pg;
    } cases[] = {
        {"", INT64_C(-6939563903564495251)},
        {"a", INT64_C(3591986179850072241)},
        {"abc", INT64_C(-6747756470228489321)},
        {"abcd", INT64_C(-1038429303365892052)},
        {"sess-1234", INT64_C(2653636322429433185)},
        {"abcdefghijkl", INT64_C(-7556637188122330412)},
        {"abcdefghijklm", INT64_C(8871624171452417744)},
        {"user-42 \xc3\xa9t\xc3\xa9 and more text here!", INT64_C(6704970328101078237)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal((int64_t)sl__pg_hash_text(cases[i].s, strlen(cases[i].s)), cases[i].pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_full_event), cmocka_unit_test(test_row_escapes_at_every_offset),
        cmocka_unit_test(test_row_fallbacks),  cmocka_unit_test(test_row_refusals),
        cmocka_unit_test(test_days),           cmocka_unit_test(test_hash_matches_postgresql),
        cmocka_unit_test(test_time_exact),
    };
    sl_buf_init(&key_text, 1 << 20);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    sl_buf_cleanup(&key_text);
    return failed;
}
