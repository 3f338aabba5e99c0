/* Unit tests of the core module: RFC 3339 parsing and formatting, clocks, UUIDv7. This
 * file holds the folder's one main(); other test files here add their cases to it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/time.h"
#include "core/uuid.h"

#define US INT64_C(1000000)
/* 2024-01-15T10:30:00Z */
#define T0     (INT64_C(1705314600) * US)
#define MIN_US (INT64_C(-62135596800) * US)
#define MAX_US (INT64_C(253402300799) * US + 999999)

static int64_t parse_ok(const char *s)
{
    int64_t us = INT64_MIN;
    sl_err err = sl_time_parse_rfc3339(s, strlen(s), &us);
    if (err != SL_OK)
        fail_msg("expected \"%s\" to parse", s);
    return us;
}

static void parse_bad(const char *s)
{
    int64_t us = 12345;
    if (sl_time_parse_rfc3339(s, strlen(s), &us) != SL_ERR_INVALID)
        fail_msg("expected \"%s\" to be refused", s);
    assert_int_equal(us, 12345); /* no side effect */
}

static void test_time_parse_valid(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2024-01-15T10:30:00Z"), T0);
    assert_int_equal(parse_ok("2024-01-15t10:30:00z"), T0);
    assert_int_equal(parse_ok("2024-01-15 10:30:00Z"), T0);
    assert_int_equal(parse_ok("2024-01-15T10:30:00+00:00"), T0);
    assert_int_equal(parse_ok("2024-01-15T10:30:00-00:00"), T0);
    assert_int_equal(parse_ok("2024-01-15T12:30:00+02:00"), T0);
    assert_int_equal(parse_ok("2024-01-15T05:00:00-05:30"), T0);
    assert_int_equal(parse_ok("2024-01-16T10:29:00+23:59"), T0);
    assert_int_equal(parse_ok("2024-01-14T10:31:00-23:59"), T0);
    /* Fractions of 1 to 9 digits, truncated (not rounded) to microseconds. */
    assert_int_equal(parse_ok("2024-01-15T10:30:00.1Z"), T0 + 100000);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.12Z"), T0 + 120000);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.123Z"), T0 + 123000);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.1234Z"), T0 + 123400);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.12345Z"), T0 + 123450);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.123456Z"), T0 + 123456);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.1234567Z"), T0 + 123456);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.12345678Z"), T0 + 123456);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.999999999Z"), T0 + 999999);
    assert_int_equal(parse_ok("2024-01-15T10:30:00.000000001+01:00"), T0 - 3600 * US);
    /* Leap years. */
    assert_int_equal(parse_ok("2024-02-29T00:00:00Z"),
                     parse_ok("2024-03-01T00:00:00Z") - 86400 * US);
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), INT64_C(951782400) * US);
    assert_int_equal(parse_ok("2024-12-31T00:00:00Z"), INT64_C(1735603200) * US);
    /* Leap second folded into the next second. */
    assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2017-01-01T00:00:00Z"));
    assert_int_equal(parse_ok("2016-12-31T23:59:60.5Z"), parse_ok("2017-01-01T00:00:00.5Z"));
    /* Epoch and the ends of the range. */
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.000001Z"), 1);
    assert_int_equal(parse_ok("1969-12-31T23:59:59.999999Z"), -1);
    assert_int_equal(parse_ok("1970-01-01T01:00:00+01:00"), 0);
    assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), MIN_US);
    assert_int_equal(parse_ok("9999-12-31T23:59:59.999999Z"), MAX_US);
    assert_int_equal(parse_ok("0001-01-01T00:00:00-01:00"), MIN_US + 3600 * US);
    assert_int_equal(parse_ok("9999-12-31T23:59:59+01:00"), MAX_US - 999999 - 3600 * US);
}

static void test_time_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2024",
        "2024-01-15",
        "2024-01-15T10:30",
        "2024-01-15T10:30:00",             /* no zone */
        "2024-01-15T10:30:00.123",         /* no zone */
        "2024-01-15T10:30:00.Z",           /* empty fraction */
        "2024-01-15T10:30:00.1234567890Z", /* 10 digits */
        "2024-01-15T10:30:00,123Z",
        "2024-01-15T24:00:00Z",
        "2024-01-15T23:60:00Z",
        "2024-01-15T23:59:61Z",
        "2024-00-15T10:30:00Z",
        "2024-13-15T10:30:00Z",
        "2024-01-00T10:30:00Z",
        "2024-01-32T10:30:00Z",
        "2024-04-31T10:30:00Z",
        "2023-02-29T10:30:00Z", /* not a leap year */
        "1900-02-29T10:30:00Z", /* divisible by 100, not by 400 */
        "2024-02-30T10:30:00Z",
        "0000-01-01T00:00:00Z",
        "2024-1-15T10:30:00Z",
        "2024-01-15X10:30:00Z",
        "2024-01-15T10-30-00Z",
        "2024/01/15T10:30:00Z",
        "2O24-01-15T10:30:00Z",
        "2024-01-15T10:30:0aZ",
        "+2024-01-15T10:30:00Z",
        " 2024-01-15T10:30:00Z",
        "2024-01-15T10:30:00Z ",
        "2024-01-15T10:30:00Zx",
        "2024-01-15T10:30:00ZZ",
        "2024-01-15T10:30:00+24:00",
        "2024-01-15T10:30:00+05:60",
        "2024-01-15T10:30:00+0500",
        "2024-01-15T10:30:00+05",
        "2024-01-15T10:30:00+05:0",
        "2024-01-15T10:30:00+05:000",
        "2024-01-15T10:30:00 +05:00",
        "2024-01-15T10:30:00UTC",
        "2024-01-15T10:30:00.-1Z",
        "0001-01-01T00:00:00+00:01", /* before year 1 in UTC */
        "9999-12-31T23:59:59-00:01", /* after year 9999 in UTC */
        "9999-12-31T23:59:60Z",
        "yesterday",
        "1705314600000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i]);

    /* Every truncation of valid times is refused. */
    static const char *const full[] = {"2024-01-15T10:30:00.123456Z", "2024-01-15T10:30:00+02:00"};
    for (size_t f = 0; f < 2; f++) {
        int64_t us;
        for (size_t n = 0; n < strlen(full[f]); n++) {
            if (sl_time_parse_rfc3339(full[f], n, &us) == SL_OK)
                fail_msg("prefix of %zu bytes of \"%s\" parsed", n, full[f]);
        }
    }
    /* The input is not NUL-terminated: bytes past len are not read. */
    const char *s = "2024-01-15T10:30:00Zgarbage";
    int64_t us = 0;
    assert_int_equal(sl_time_parse_rfc3339(s, 20, &us), SL_OK);
    assert_int_equal(us, T0);
    assert_int_equal(sl_time_parse_rfc3339(NULL, 0, &us), SL_ERR_INVALID);
}

static void format_is(int64_t us, const char *want)
{
    char out[SL_TIME_RFC3339_MAX];
    memset(out, 'x', sizeof out);
    size_t n = sl_time_format_rfc3339(us, out);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void test_time_format(void **state)
{
    (void)state;
    format_is(0, "1970-01-01T00:00:00.000Z");
    format_is(1, "1970-01-01T00:00:00.000001Z");
    format_is(1000, "1970-01-01T00:00:00.001Z");
    format_is(-1, "1969-12-31T23:59:59.999999Z");
    format_is(-1000, "1969-12-31T23:59:59.999Z");
    format_is(T0, "2024-01-15T10:30:00.000Z");
    format_is(T0 + 123000, "2024-01-15T10:30:00.123Z");
    format_is(T0 + 123456, "2024-01-15T10:30:00.123456Z");
    format_is(T0 + 120, "2024-01-15T10:30:00.000120Z");
    format_is(INT64_C(951782400) * US, "2000-02-29T00:00:00.000Z");
    format_is(INT64_C(4107542400) * US, "2100-03-01T00:00:00.000Z");
    format_is(MIN_US, "0001-01-01T00:00:00.000Z");
    format_is(MAX_US, "9999-12-31T23:59:59.999999Z");
    assert_true(strlen("9999-12-31T23:59:59.999999Z") < SL_TIME_RFC3339_MAX);
}

static void test_time_round_trip(void **state)
{
    (void)state;
    /* A fixed linear congruential sequence over the whole range, plus day edges. */
    uint64_t x = 0x243f6a8885a308d3;
    for (int i = 0; i < 200000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        int64_t us = MIN_US + (int64_t)(x % (uint64_t)(MAX_US - MIN_US + 1));
        if (i % 3 == 0)
            us -= us % 1000; /* whole milliseconds take the short form */
        if (i % 7 == 0)
            us -= us % (86400 * US); /* midnight */
        if (us < MIN_US)
            us += 86400 * US;
        char out[SL_TIME_RFC3339_MAX];
        size_t n = sl_time_format_rfc3339(us, out);
        int64_t back = 0;
        if (sl_time_parse_rfc3339(out, n, &back) != SL_OK || back != us)
            fail_msg("round trip of %lld gave \"%s\"", (long long)us, out);
        assert_int_equal(n, us % 1000 == 0 ? 24 : 27);
    }
}

static void test_time_clocks(void **state)
{
    (void)state;
    int64_t now = sl_time_now_us();
    assert_true(now > INT64_C(1700000000) * US); /* after 2023 */
    assert_true(now < INT64_C(4102444800) * US); /* before 2100 */
    int64_t a = sl_time_mono_ns();
    int64_t b = sl_time_mono_ns();
    assert_true(a > 0);
    assert_true(b >= a);
}

/* The 48-bit millisecond timestamp of a canonical UUIDv7. */
static int64_t uuid_ms(const char *u)
{
    int64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (u[i] == '-')
            continue;
        int c = u[i];
        ms = ms * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return ms;
}

static void test_uuid_format(void **state)
{
    (void)state;
    char u[SL_UUID_STR_LEN + 1];
    for (int i = 0; i < 1000; i++) {
        memset(u, 'x', sizeof u);
        int64_t before = sl_time_now_us() / 1000;
        sl_uuid_v7(u);
        assert_int_equal(strlen(u), SL_UUID_STR_LEN);
        assert_true(sl_uuid_is_canonical(u, strlen(u)));
        assert_int_equal(u[14], '7');           /* version */
        assert_non_null(strchr("89ab", u[19])); /* variant 10 */
        for (int j = 0; j < SL_UUID_STR_LEN; j++)
            assert_true(u[j] == '-' || (u[j] >= '0' && u[j] <= '9') ||
                        (u[j] >= 'a' && u[j] <= 'f'));
        /* The timestamp is the wall clock's (it may run ahead only when the counter
         * overflowed, which takes more than 2048 ids in one millisecond). */
        int64_t ms = uuid_ms(u);
        assert_true(ms >= before);
        assert_true(ms <= sl_time_now_us() / 1000 + 100);
    }
}

static void test_uuid_monotonic(void **state)
{
    (void)state;
    char prev[SL_UUID_STR_LEN + 1], cur[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(prev);
    for (int i = 0; i < 100000; i++) {
        sl_uuid_v7(cur);
        if (strcmp(prev, cur) >= 0)
            fail_msg("uuid %d not increasing: %s then %s", i, prev, cur);
        memcpy(prev, cur, sizeof cur);
    }
}

#define PER_THREAD 50000
static char thread_ids[2][PER_THREAD][SL_UUID_STR_LEN + 1];

static void *gen_ids(void *arg)
{
    char(*ids)[SL_UUID_STR_LEN + 1] = arg;
    for (int i = 0; i < PER_THREAD; i++)
        sl_uuid_v7(ids[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuid_unique_across_threads(void **state)
{
    (void)state;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gen_ids, thread_ids[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    /* Each thread's ids increase, and no id appears twice across both. */
    for (int k = 0; k < 2; k++)
        for (int i = 1; i < PER_THREAD; i++)
            assert_true(strcmp(thread_ids[k][i - 1], thread_ids[k][i]) < 0);
    qsort(thread_ids, 2 * PER_THREAD, SL_UUID_STR_LEN + 1, cmp_id);
    char(*all)[SL_UUID_STR_LEN + 1] = thread_ids[0];
    for (int i = 1; i < 2 * PER_THREAD; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            fail_msg("duplicate uuid %s", all[i]);
}

static void test_uuid_canonical(void **state)
{
    (void)state;
    const char *good[] = {
        "0190a5b2-7c3e-7d4f-8a1b-2c3d4e5f6a7b", "00000000-0000-0000-0000-000000000000",
        "FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF", "550e8400-e29b-41d4-a716-446655440000"};
    for (size_t i = 0; i < 4; i++)
        assert_true(sl_uuid_is_canonical(good[i], strlen(good[i])));
    const char *bad[] = {"",
                         "0190a5b2-7c3e-7d4f-8a1b-2c3d4e5f6a7",
                         "0190a5b2-7c3e-7d4f-8a1b-2c3d4e5f6a7bc",
                         "0190a5b27c3e-7d4f-8a1b-2c3d4e5f6a7b0",
                         "0190a5b2-7c3e-7d4f-8a1b_2c3d4e5f6a7b",
                         "0190a5b2-7c3e-7d4f-8a1g-2c3d4e5f6a7b",
                         "{0190a5b2-7c3e-7d4f-8a1b-2c3d4e5f6a7}",
                         "0190a5b2 7c3e 7d4f 8a1b 2c3d4e5f6a7b",
                         "0190a5b27c3e7d4f8a1b2c3d4e5f6a7b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(sl_uuid_is_canonical(bad[i], strlen(bad[i])));
    /* len is what counts, not a NUL. */
    assert_true(sl_uuid_is_canonical("0190a5b2-7c3e-7d4f-8a1b-2c3d4e5f6a7bXYZ", 36));
    assert_false(sl_uuid_is_canonical(NULL, 36));
}

int sl_test_config_run(void);  /* test_config.c */
int sl_test_ostream_run(void); /* test_ostream.c */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parse_valid), cmocka_unit_test(test_time_parse_invalid),
        cmocka_unit_test(test_time_format),      cmocka_unit_test(test_time_round_trip),
        cmocka_unit_test(test_time_clocks),      cmocka_unit_test(test_uuid_format),
        cmocka_unit_test(test_uuid_monotonic),   cmocka_unit_test(test_uuid_unique_across_threads),
        cmocka_unit_test(test_uuid_canonical),
    };
    int failed = cmocka_run_group_tests_name("core", tests, NULL, NULL);
    return failed + sl_test_config_run() + sl_test_ostream_run();
}
