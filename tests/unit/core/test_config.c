/* Unit tests for the settings table (src/core/config.c) and the capped buffer
 * (src/core/buf.c); run from test_core.c's main through sl_test_config_run(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/grow.h"

int sl_test_config_run(void);

static sl_err load(sl_config *cfg, unsigned cmd, int argc, char **argv, char *eb)
{
    return sl_config_load(cfg, cmd, argc, argv, eb, 256);
}

static void config_defaults_and_suffixes(void **state)
{
    unsetenv("SLUICE_MAX_BODY");
    sl_config cfg;
    char eb[256];
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 0, NULL, eb), SL_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:3001");
    assert_int_equal(cfg.max_body_bytes, 512 * 1024);
    assert_int_equal(cfg.log_retention_ms, 7LL * 86400 * 1000);
    assert_int_equal(cfg.idle_timeout_s, 15);
    sl_config_cleanup(&cfg);

    char *argv[] = {"--max-body",      "2M",    "--log-retention=36h", "--idle-timeout", "90",
                    "--drain-timeout", "1500ms"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 7, argv, eb), SL_OK);
    assert_int_equal(cfg.max_body_bytes, 2 * 1024 * 1024);
    assert_int_equal(cfg.log_retention_ms, 36LL * 3600 * 1000);
    assert_int_equal(cfg.idle_timeout_s, 90); /* a bare number is in the setting's unit */
    assert_int_equal(cfg.drain_timeout_ms, 1500);
    sl_config_cleanup(&cfg);
}

static void config_flag_beats_env_beats_default(void **state)
{
    sl_config cfg;
    char eb[256];
    setenv("SLUICE_LISTEN", "0.0.0.0:9000", 1);
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 0, NULL, eb), SL_OK);
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    sl_config_cleanup(&cfg);
    char *argv[] = {"--listen", "127.0.0.1:1"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 2, argv, eb), SL_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:1");
    sl_config_cleanup(&cfg);
    unsetenv("SLUICE_LISTEN");
}

static void config_errors_name_the_setting(void **state)
{
    sl_config cfg;
    char eb[256];
    char *bad_size[] = {"--max-body", "lots"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 2, bad_size, eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "--max-body"));
    assert_non_null(strstr(eb, "lots"));
    sl_config_cleanup(&cfg);

    char *out_of_range[] = {"--http-threads", "0"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 2, out_of_range, eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "out of range"));
    sl_config_cleanup(&cfg);

    char *unknown[] = {"--no-such-flag"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 1, unknown, eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "--no-such-flag"));
    sl_config_cleanup(&cfg);

    /* A flag of another command is unknown here. */
    char *other_cmd[] = {"--group", "g"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 2, other_cmd, eb), SL_ERR_CONFIG);
    sl_config_cleanup(&cfg);

    char *missing_value[] = {"--listen"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 1, missing_value, eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "needs a value"));
    sl_config_cleanup(&cfg);

    /* 1500ms is not a whole number of seconds. */
    char *fraction[] = {"--idle-timeout", "1500ms"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 2, fraction, eb), SL_ERR_CONFIG);
    sl_config_cleanup(&cfg);

    setenv("SLUICE_MAX_BATCH", "-3", 1);
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 0, NULL, eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "SLUICE_MAX_BATCH"));
    sl_config_cleanup(&cfg);
    unsetenv("SLUICE_MAX_BATCH");

    char *help[] = {"--help"};
    assert_int_equal(load(&cfg, SL_CMD_SERVE, 1, help, eb), SL_ERR_NOT_FOUND);
    sl_config_cleanup(&cfg);
}

static void config_bool_flags(void **state)
{
    sl_config cfg;
    char eb[256];
    char *argv[] = {"--from-beginning", "--group", "g1"};
    assert_int_equal(load(&cfg, SL_CMD_LOG_READ, 3, argv, eb), SL_OK);
    assert_true(cfg.from_beginning);
    assert_string_equal(cfg.group, "g1");
    sl_config_cleanup(&cfg);
    char *off[] = {"--from-beginning=false"};
    assert_int_equal(load(&cfg, SL_CMD_LOG_READ, 1, off, eb), SL_OK);
    assert_false(cfg.from_beginning);
    sl_config_cleanup(&cfg);
}

static void buf_cap_and_json_escapes(void **state)
{
    sl_buf b;
    sl_buf_init(&b, 8);
    assert_int_equal(sl_buf_append_str(&b, "12345678"), SL_OK);
    assert_int_equal(sl_buf_append_char(&b, '9'), SL_ERR_TOO_LARGE);
    assert_int_equal(b.len, 8); /* a failed append leaves the buffer as it was */
    assert_string_equal(b.data, "12345678");
    sl_buf_cleanup(&b);

    sl_buf_init(&b, 1024);
    const char raw[] = "a\"b\\c\n\x01\x7f\xc3\xa9";
    assert_int_equal(sl_buf_append_json_string(&b, raw, sizeof raw - 1), SL_OK);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9\"");
    sl_buf_reset(&b);
    assert_int_equal(sl_buf_append_json_string(&b, NULL, 0), SL_OK); /* the empty string */
    assert_string_equal(b.data, "\"\"");
    sl_buf_reset(&b);
    assert_int_equal(sl_buf_appendf(&b, "%d-%s", 42, "x"), SL_OK);
    assert_string_equal(b.data, "42-x");
    size_t len;
    char *taken = sl_buf_take(&b, &len);
    assert_int_equal(len, 4);
    assert_null(b.data);
    free(taken);
    sl_buf_cleanup(&b);
}

/* The writer skips clean bytes eight at a time: every byte that needs an escape, at every
 * offset of strings up to three words long, must still be escaped, and nothing else. */
static void buf_json_escapes_at_every_offset(void **state)
{
    (void)state;
    const struct {
        char raw;
        const char *escaped;
    } cases[] = {
        {'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\x1f', "\\u001f"}, {'\0', "\\u0000"}};
    char raw[24], want[64];
    sl_buf b;
    sl_buf_init(&b, 1024);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t len = 1; len <= sizeof raw; len++) {
            for (size_t at = 0; at < len; at++) {
                memset(raw, 'x', len);
                raw[len - 1] = '\x7f'; /* clean, and above every escaped byte */
                raw[at] = cases[c].raw;
                snprintf(want, sizeof want, "\"%.*s%s%.*s\"", (int)at, raw, cases[c].escaped,
                         (int)(len - at - 1), raw + at + 1);
                sl_buf_reset(&b);
                assert_int_equal(sl_buf_append_json_string(&b, raw, len), SL_OK);
                assert_string_equal(b.data, want);
            }
        }
    }
    /* Two escapes in one string: the clean run between them is copied whole. */
    for (size_t len = 2; len <= sizeof raw; len++) {
        for (size_t at = 0; at + 1 < len; at++) {
            for (size_t at2 = at + 1; at2 < len; at2++) {
                memset(raw, 'x', len);
                raw[at] = '"';
                raw[at2] = '\n';
                snprintf(want, sizeof want, "\"%.*s\\\"%.*s\\n%.*s\"", (int)at, raw,
                         (int)(at2 - at - 1), raw + at + 1, (int)(len - at2 - 1), raw + at2 + 1);
                sl_buf_reset(&b);
                assert_int_equal(sl_buf_append_json_string(&b, raw, len), SL_OK);
                assert_string_equal(b.data, want);
            }
        }
    }
    sl_buf_cleanup(&b);
}

/* appendf formats into the free space when the text fits, else grows and formats again;
 * past the cap it fails and leaves the buffer as it was, NUL-terminated. */
static void buf_appendf_fits_grows_and_refuses(void **state)
{
    (void)state;
    sl_buf b;
    sl_buf_init(&b, 300);
    assert_int_equal(sl_buf_appendf(&b, "%s", "first"), SL_OK); /* no memory yet */
    assert_int_equal(b.alloc, 256);
    char long_text[200];
    memset(long_text, 'y', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    assert_int_equal(sl_buf_appendf(&b, "-%d-", 7), SL_OK); /* fits the free space */
    assert_int_equal(sl_buf_appendf(&b, "%s", long_text), SL_OK);
    assert_int_equal(sl_buf_appendf(&b, "%s", long_text), SL_ERR_TOO_LARGE); /* over 300 */
    assert_int_equal(b.len, 5 + 3 + 199);
    assert_int_equal(strlen(b.data), b.len);
    assert_memory_equal(b.data, "first-7-yy", 10);
    assert_int_equal(sl_buf_appendf(&b, "%.*s", 93, long_text), SL_OK); /* exactly to the cap */
    assert_int_equal(b.len, 300);
    assert_int_equal(sl_buf_appendf(&b, "z"), SL_ERR_TOO_LARGE);
    assert_int_equal(strlen(b.data), 300);
    sl_buf_cleanup(&b);
}

static void grow_doubles_and_keeps_on_failure(void **state)
{
    (void)state;
    size_t cap = 0;
    int *a = sl_grow(NULL, 0, &cap, 4, sizeof *a);
    assert_non_null(a);
    assert_int_equal(cap, 4);
    for (int i = 0; i < 4; i++)
        a[i] = i;
    assert_ptr_equal(sl_grow(a, 3, &cap, 4, sizeof *a), a); /* room left: unchanged */
    assert_int_equal(cap, 4);
    int *b = sl_grow(a, 4, &cap, 4, sizeof *b);
    assert_non_null(b);
    assert_int_equal(cap, 8);
    for (int i = 0; i < 4; i++)
        assert_int_equal(b[i], i); /* kept across the move */
    size_t huge = SIZE_MAX / 2 + 1;
    assert_null(sl_grow(b, huge, &huge, 4, sizeof *b)); /* would overflow */
    assert_int_equal(huge, SIZE_MAX / 2 + 1);
    size_t big = SIZE_MAX / 4; /* doubled, times 4 bytes, would overflow */
    assert_null(sl_grow(b, big, &big, 4, sizeof *b));
    assert_int_equal(big, SIZE_MAX / 4);
    free(b);
}

int sl_test_config_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_defaults_and_suffixes),
        cmocka_unit_test(buf_json_escapes_at_every_offset),
        cmocka_unit_test(buf_appendf_fits_grows_and_refuses),
        cmocka_unit_test(grow_doubles_and_keeps_on_failure),
        cmocka_unit_test(config_flag_beats_env_beats_default),
        cmocka_unit_test(config_errors_name_the_setting),
        cmocka_unit_test(config_bool_flags),
        cmocka_unit_test(buf_cap_and_json_escapes),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
