/* Unit tests of the lake module: a normalized event (as src/event/normalize.c writes it)
 * to a Parquet row, column by column; records that are not normalized events refused with
 * the field named; event dates in UTC; table URIs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "lake/lake.h"

/* 2024-01-15T10:30:00.123456Z */
#define T0 INT64_C(1705314600123456)

static void assert_bytes(const sl_pq_value *v, const char *want)
{
    assert_false(v->is_null);
    assert_int_equal(v->v.bytes.len, strlen(want));
    assert_memory_equal(v->v.bytes.ptr, want, strlen(want));
}

static int column(const char *name)
{
    for (int i = 0; i < SL_LAKE_N_COLUMNS; i++) {
        if (!strcmp(sl_lake_columns[i].name, name))
            return i;
    }
    fail_msg("no column %s", name);
    return -1;
}

static const char full[] =
    "{\"event_id\":\"e-1\",\"timestamp\":\"2024-01-15T10:30:00.123456Z\","
    "\"received_at\":\"2024-01-15T10:30:01.5Z\",\"channel\":\"web\",\"platform\":null,"
    "\"event_type\":\"page_view\",\"event_category\":\"navigation\",\"resource_id\":\"/p\","
    "\"resource_title\":\"\",\"interaction_target\":null,\"session_id\":\"s\",\"user_id\":"
    "\"u\",\"device_id\":null,\"user_agent\":\"ua\",\"client_version\":null,"
    "\"interaction_value\":3,\"interaction_text\":\"gr\\u00fc\\u00dfe \\\"q\\\"\","
    "\"metadata\":{\"a\":0.1,\"metadata\":{\"x\":[1,2]},\"s\":\"},\\\"metadata\\\":\"}}";

static void test_row_full(void **state)
{
    (void)state;
    sl_lake_row row;
    sl_lake_row_init(&row);
    char eb[256];
    assert_int_equal(sl_lake_row_parse(&row, full, strlen(full), eb, sizeof eb), SL_OK);
    assert_bytes(&row.values[column("event_id")], "e-1");
    assert_int_equal(row.values[column("timestamp")].v.i64, T0);
    assert_int_equal(row.values[column("received_at")].v.i64, T0 - 123456 + 1500000);
    assert_bytes(&row.values[column("channel")], "web");
    assert_true(row.values[column("platform")].is_null);
    assert_bytes(&row.values[column("resource_title")], ""); /* empty, not null */
    assert_true(row.values[column("interaction_target")].is_null);
    assert_true(row.values[column("device_id")].is_null);
    assert_false(row.values[column("interaction_value")].is_null);
    assert_true(row.values[column("interaction_value")].v.f64 == 3.0);
    assert_bytes(&row.values[column("interaction_text")], "gr\xc3\xbc\xc3\x9f"
                                                          "e \"q\"");
    /* metadata is the exact text of the record, nested "metadata" keys and all. */
    assert_bytes(&row.values[column("metadata")],
                 "{\"a\":0.1,\"metadata\":{\"x\":[1,2]},\"s\":\"},\\\"metadata\\\":\"}");
    assert_int_equal(row.event_date, 19737); /* 2024-01-15 */
    char date[11];
    sl_lake_format_date(row.event_date, date);
    assert_string_equal(date, "2024-01-15");
    sl_lake_row_cleanup(&row);
}

static void test_row_metadata_not_last(void **state)
{
    (void)state;
    /* Another writer's key order: metadata is re-serialized, still compact JSON. */
    static const char ev[] =
        "{\"metadata\":{\"k\":[true,null]},\"event_id\":\"e\",\"timestamp\":\"1970-01-01T00:00:"
        "00Z\","
        "\"received_at\":\"1970-01-01T00:00:00Z\",\"channel\":\"c\",\"event_type\":\"t\","
        "\"session_id\":\"s\"}";
    sl_lake_row row;
    sl_lake_row_init(&row);
    char eb[256];
    assert_int_equal(sl_lake_row_parse(&row, ev, strlen(ev), eb, sizeof eb), SL_OK);
    assert_bytes(&row.values[column("metadata")], "{\"k\":[true,null]}");
    assert_true(row.values[column("interaction_value")].is_null);
    assert_int_equal(row.event_date, 0);
    /* The row is reused for the next event. */
    assert_int_equal(sl_lake_row_parse(&row, full, strlen(full), eb, sizeof eb), SL_OK);
    assert_bytes(&row.values[column("event_id")], "e-1");
    sl_lake_row_cleanup(&row);
}

static void test_row_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *words;
    } cases[] = {
        {"[1]", "not a JSON object"},
        {"{\"event_id\":", "not a JSON object"},
        {"{\"timestamp\":\"2024-01-15T10:30:00Z\"}", "field \"event_id\" is required"},
        {"{\"event_id\":\"e\",\"timestamp\":\"yesterday\"}", "field \"timestamp\" is not an RFC"},
        {"{\"event_id\":7}", "field \"event_id\" is not a string"},
        {"{\"event_id\":\"e\",\"timestamp\":\"2024-01-15T10:30:00Z\",\"received_at\":"
         "\"2024-01-15T10:30:00Z\",\"channel\":\"c\",\"event_type\":\"t\",\"session_id\":\"s\","
         "\"interaction_value\":\"3\"}",
         "field \"interaction_value\" is not a number"},
        {"{\"event_id\":\"e\",\"timestamp\":\"2024-01-15T10:30:00Z\",\"received_at\":"
         "\"2024-01-15T10:30:00Z\",\"channel\":\"c\",\"event_type\":\"t\",\"session_id\":\"s\","
         "\"metadata\":[1]}",
         "field \"metadata\" is not an object"},
    };
    sl_lake_row row;
    sl_lake_row_init(&row);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char eb[256] = "";
        sl_err err = sl_lake_row_parse(&row, cases[i].json, strlen(cases[i].json), eb, sizeof eb);
        if (err != SL_ERR_INVALID || !strstr(eb, cases[i].words))
            fail_msg("case %zu: %s \"%s\"", i, sl_strerror(err), eb);
    }
    sl_lake_row_cleanup(&row);
}

static void test_store_open(void **state)
{
    (void)state;
    char eb[256], dir[] = "/tmp/sl-lake-store-XXXXXX", uri[64];
    sl_storage_t *st;
    assert_non_null(mkdtemp(dir));
    snprintf(uri, sizeof uri, "file://%s/t", dir);
    assert_int_equal(sl_lake_store_open(uri, NULL, &st, eb, sizeof eb), SL_OK);
    assert_string_equal(sl_storage_uri(st), uri);
    sl_storage_close(st);
    assert_int_equal(sl_lake_store_open("file://", NULL, &st, eb, sizeof eb), SL_ERR_CONFIG);
    assert_null(st);
    /* s3:// opens without the network; a bucket name S3 refuses does not. */
    sl_storage_options so;
    sl_storage_options_default(&so);
    so.access_key_id = "k";
    so.secret_access_key = "s";
    assert_int_equal(sl_lake_store_open("s3://bucket/tables/events", &so, &st, eb, sizeof eb),
                     SL_OK);
    sl_storage_close(st);
    assert_int_equal(sl_lake_store_open("s3://B_/p", &so, &st, eb, sizeof eb), SL_ERR_CONFIG);
    assert_int_equal(sl_lake_store_open("/tmp/x", NULL, &st, eb, sizeof eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "\"/tmp/x\""));
    snprintf(uri, sizeof uri, "%s/t", dir);
    assert_int_equal(rmdir(uri), 0); /* opened, created, nothing written */
    assert_int_equal(rmdir(dir), 0);
}

static void test_schema_matches_columns(void **state)
{
    (void)state;
    /* The Delta schema is the file columns, in order, plus the partition column. */
    assert_int_equal(sl_lake_table_def.n_fields, SL_LAKE_N_COLUMNS + 1);
    for (int i = 0; i < SL_LAKE_N_COLUMNS; i++) {
        const sl_delta_field *f = &sl_lake_table_def.fields[i];
        assert_string_equal(f->name, sl_lake_columns[i].name);
        assert_int_equal(f->nullable, sl_lake_columns[i].repetition == SL_PQ_OPTIONAL);
    }
    assert_string_equal(sl_lake_table_def.fields[SL_LAKE_N_COLUMNS].name, "event_date");
    assert_string_equal(sl_lake_table_def.partition_columns[0], "event_date");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_full),
        cmocka_unit_test(test_row_metadata_not_last),
        cmocka_unit_test(test_row_refusals),
        cmocka_unit_test(test_store_open),
        cmocka_unit_test(test_schema_matches_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
