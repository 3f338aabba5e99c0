/* Unit tests for the HTTP module's pure parts: capped gzip/deflate decoding and the
 * Prometheus rendering of the metrics. The server itself is tested over real HTTP in
 * tests/integration/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http/http_int.h"
#include "http/metrics.h"

/* gzip-compresses src into a new buffer (windowBits 31 = gzip header). */
static unsigned char *gzip_of(const char *src, size_t len, size_t *out_len)
{
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, len);
    unsigned char *out = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return out;
}

static void inflate_round_trip(void **state)
{
    const char *text = "{\"channel\":\"web\",\"event_type\":\"page_view\",\"session_id\":\"s\"}";
    size_t zlen;
    unsigned char *z = gzip_of(text, strlen(text), &zlen);
    sl_buf out;
    sl_buf_init(&out, 1 << 20);
    char eb[128];
    assert_int_equal(sl__http_inflate((char *)z, zlen, &out, eb, sizeof eb), SL_OK);
    assert_int_equal(out.len, strlen(text));
    assert_memory_equal(out.data, text, out.len);
    /* zlib-wrapped deflate (Content-Encoding: deflate) is detected too. */
    unsigned char zz[256];
    uLongf zzlen = sizeof zz;
    assert_int_equal(compress(zz, &zzlen, (const Bytef *)text, strlen(text)), Z_OK);
    sl_buf_reset(&out);
    assert_int_equal(sl__http_inflate((char *)zz, zzlen, &out, eb, sizeof eb), SL_OK);
    assert_int_equal(out.len, strlen(text));
    sl_buf_cleanup(&out);
    free(z);
}

static void inflate_stops_a_bomb_at_the_cap(void **state)
{
    size_t big = 32u << 20;
    char *zeros = calloc(1, big);
    size_t zlen;
    unsigned char *z = gzip_of(zeros, big, &zlen);
    assert_true(zlen < 64 * 1024);
    sl_buf out;
    sl_buf_init(&out, 1 << 20);
    char eb[128];
    assert_int_equal(sl__http_inflate((char *)z, zlen, &out, eb, sizeof eb), SL_ERR_TOO_LARGE);
    assert_non_null(strstr(eb, "1048576"));
    assert_true(out.len <= out.cap);
    sl_buf_cleanup(&out);
    free(z);
    free(zeros);
}

static void inflate_rejects_corrupt_and_truncated(void **state)
{
    const char *text = "hello hello hello hello";
    size_t zlen;
    unsigned char *z = gzip_of(text, strlen(text), &zlen);
    sl_buf out;
    sl_buf_init(&out, 1 << 20);
    char eb[128];
    assert_int_equal(sl__http_inflate((char *)z, zlen - 6, &out, eb, sizeof eb), SL_ERR_INVALID);
    assert_non_null(strstr(eb, "truncated"));
    sl_buf_reset(&out);
    /* A valid gzip header followed by a deflate block of the reserved type 3. */
    static const char bad_block[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff\xff";
    assert_int_equal(sl__http_inflate(bad_block, sizeof bad_block - 1, &out, eb, sizeof eb),
                     SL_ERR_INVALID);
    assert_non_null(strstr(eb, "corrupt"));
    /* Bytes after the end of the stream are refused rather than ignored. */
    unsigned char *trail = malloc(zlen + 3);
    memcpy(trail, z, zlen);
    memcpy(trail + zlen, "xyz", 3);
    sl_buf_reset(&out);
    assert_int_equal(sl__http_inflate((char *)trail, zlen + 3, &out, eb, sizeof eb),
                     SL_ERR_INVALID);
    assert_non_null(strstr(eb, "after its end"));
    sl_buf_cleanup(&out);
    free(trail);
    free(z);
}

static void metrics_render_counts(void **state)
{
    sl_metrics m;
    sl_metrics_init(&m);
    sl_metrics_count_request(&m, SL_ROUTE_ANALYTICS, 200);
    sl_metrics_count_request(&m, SL_ROUTE_ANALYTICS, 200);
    sl_metrics_count_request(&m, SL_ROUTE_HEALTH, 599);
    sl_metrics_count_rejection(&m, SL_REASON_MISSING_FIELD, 3);
    sl_metrics_observe_append(&m, 300000);     /* 0.3 ms */
    sl_metrics_observe_append(&m, 7000000000); /* 7 s: only +Inf */
    sl_log_stats ls = {.records = 10, .bytes = 5000, .healthy = true};
    sl_metrics_gauges g = {.log = &ls, .connections = 4, .requests_in_flight = 1};
    sl_buf out;
    sl_buf_init(&out, 1 << 20);
    assert_int_equal(sl_metrics_render(&m, &g, &out), SL_OK);
    const char *t = out.data;
    assert_non_null(strstr(t, "sluice_http_requests_total{route=\"/analytics\",code=\"200\"} 2\n"));
    assert_non_null(strstr(t, "sluice_http_requests_total{route=\"/health\",code=\"other\"} 1\n"));
    assert_non_null(strstr(t, "sluice_events_rejected_total{reason=\"missing_field\"} 3\n"));
    assert_non_null(strstr(t, "sluice_log_append_seconds_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(t, "sluice_log_append_seconds_bucket{le=\"5\"} 1\n"));
    assert_non_null(strstr(t, "sluice_log_append_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(t, "sluice_log_append_seconds_count 2\n"));
    assert_non_null(strstr(t, "sluice_log_records 10\n"));
    assert_non_null(strstr(t, "sluice_http_connections 4\n"));
    sl_buf_cleanup(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(inflate_round_trip),
        cmocka_unit_test(inflate_stops_a_bomb_at_the_cap),
        cmocka_unit_test(inflate_rejects_corrupt_and_truncated),
        cmocka_unit_test(metrics_render_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
