/* Unit tests of the parquet module: the Thrift compact codec (round trips, hostile input),
 * the RLE/bit-packed hybrid, the writer's edge cases read back through sluice's own footer
 * and page-header decoder, and footers of files other engines wrote
 * (SL_TEST_DATA/parquet-testing, from CMake's SLUICE_SHARED_DATA). DuckDB and hyparquet
 * judge the written rows in tests/integration/test_parquet.py. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parquet/parquet_int.h"

static uint64_t rng = 12345;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static bool str_is(sl__pq_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* ---- Thrift ---- */

static void test_thrift_primitives(void **state)
{
    sl_buf b;
    sl__tc_enc enc;
    sl__tc_dec dec;
    int type, et;
    int16_t id;
    int32_t i32;
    int64_t i64;
    bool bv;
    const uint8_t *p;
    size_t n;
    sl_buf_init(&b, 1 << 20);
    sl__tc_enc_init(&enc, &b);
    sl__tc_struct_begin(&enc);
    sl__tc_field_i32(&enc, 1, INT32_MIN);
    sl__tc_field_i64(&enc, 40, INT64_MAX); /* long delta: id written as a varint */
    sl__tc_field_i64(&enc, 3, INT64_MIN);  /* negative delta */
    sl__tc_field_bool(&enc, 4, true);
    sl__tc_field_bool(&enc, 5, false);
    sl__tc_field_binary(&enc, 6, "h\0llo", 5);
    sl__tc_field_list(&enc, 7, SL__TC_I32, 20); /* 15 or more: size as a varint */
    for (int k = 0; k < 20; k++)
        sl__tc_i32(&enc, k * 1000 - 7);
    sl__tc_field_struct(&enc, 8);
    sl__tc_field_i32(&enc, 1, 42);
    sl__tc_struct_end(&enc);
    sl__tc_struct_end(&enc);
    assert_int_equal(enc.err, SL_OK);
    /* The spec's short form: field 1 of type i32 is one byte (delta 1, type 5). */
    assert_int_equal((uint8_t)b.data[0], 0x15);

    sl__tc_dec_init(&dec, b.data, b.len);
    assert_true(sl__tc_struct_enter(&dec));
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_int_equal(id, 1);
    assert_true(sl__tc_read_i32(&dec, type, &i32));
    assert_int_equal(i32, INT32_MIN);
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_int_equal(id, 40);
    assert_true(sl__tc_read_i64(&dec, type, &i64));
    assert_true(i64 == INT64_MAX);
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_int_equal(id, 3);
    assert_true(sl__tc_read_i64(&dec, type, &i64));
    assert_true(i64 == INT64_MIN);
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_true(sl__tc_read_bool(&dec, type, &bv));
    assert_true(bv);
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_true(sl__tc_read_bool(&dec, type, &bv));
    assert_false(bv);
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_true(sl__tc_read_binary(&dec, type, &p, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(p, "h\0llo", 5);
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_true(sl__tc_read_list(&dec, type, &et, &n));
    assert_int_equal(n, 20);
    for (size_t k = 0; k < n; k++) {
        assert_true(sl__tc_read_i32(&dec, et, &i32));
        assert_int_equal(i32, (int32_t)k * 1000 - 7);
    }
    assert_true(sl__tc_next_field(&dec, &type, &id));
    assert_int_equal(id, 8);
    assert_true(sl__tc_skip(&dec, type));
    assert_false(sl__tc_next_field(&dec, &type, &id)); /* stop */
    assert_int_equal(dec.err, SL_OK);
    assert_true(dec.p == dec.end);
    sl_buf_cleanup(&b);
}

/* A FileMetaData with every field sluice writes, for round trips and corruption. */
static void sample_meta(sl__pq_file_meta *fm, sl__pq_schema_elem se[4], sl__pq_row_group *rg,
                        sl__pq_col_chunk cc[3], int32_t enc[3], sl__pq_str path[3], sl__pq_kv *kv)
{
    static const char *names[] = {"a", "timestamp", "naïve"};
    memset(fm, 0, sizeof *fm);
    memset(se, 0, 4 * sizeof *se);
    memset(rg, 0, sizeof *rg);
    memset(cc, 0, 3 * sizeof *cc);
    se[0] = (sl__pq_schema_elem){{"schema", 6}, -1, -1, 3, -1, {0, false, 0}};
    se[1] = (sl__pq_schema_elem){{names[0], 1}, SL__PQT_BYTE_ARRAY,        1, -1,
                                 SL__PQC_UTF8,  {SL__PQL_STRING, false, 0}};
    se[2] = (sl__pq_schema_elem){{names[1], 9},
                                 SL__PQT_INT64,
                                 0,
                                 -1,
                                 SL__PQC_TIMESTAMP_MICROS,
                                 {SL__PQL_TIMESTAMP, true, SL__PQU_MICROS}};
    se[3] = (sl__pq_schema_elem){{names[2], strlen(names[2])}, SL__PQT_INT32, 1, -1, SL__PQC_DATE,
                                 {SL__PQL_DATE, false, 0}};
    enc[0] = SL__PQE_PLAIN;
    enc[1] = SL__PQE_RLE;
    enc[2] = SL__PQE_RLE_DICTIONARY;
    for (int k = 0; k < 3; k++) {
        path[k].ptr = names[k];
        path[k].len = strlen(names[k]);
        cc[k].file_offset = 4 + k * 1000;
        cc[k].has_meta = true;
        sl__pq_col_meta *cm = &cc[k].meta;
        cm->type = se[k + 1].type;
        cm->encodings = enc;
        cm->n_encodings = 3;
        cm->path = &path[k];
        cm->n_path = 1;
        cm->codec = 1;
        cm->num_values = 1000;
        cm->total_uncompressed_size = 5000 + k;
        cm->total_compressed_size = 4000 + k;
        cm->data_page_offset = 100 + k * 1000;
        cm->dictionary_page_offset = k == 1 ? -1 : 4 + k * 1000;
        cm->has_stats = k != 2;
        cm->stats.has_null_count = true;
        cm->stats.null_count = 17;
        cm->stats.has_min = cm->stats.has_max = k == 0;
        cm->stats.min_value = (sl__pq_str){"abc", 3};
        cm->stats.max_value = (sl__pq_str){"\xff\x00z", 3};
    }
    rg->columns = cc;
    rg->n_columns = 3;
    rg->total_byte_size = 15003;
    rg->num_rows = 1000;
    rg->file_offset = 4;
    rg->total_compressed_size = 12003;
    kv->key = (sl__pq_str){"k", 1};
    kv->value = (sl__pq_str){"v", 1};
    kv->has_value = true;
    fm->version = 1;
    fm->schema = se;
    fm->n_schema = 4;
    fm->num_rows = 1000;
    fm->row_groups = rg;
    fm->n_row_groups = 1;
    fm->kv = kv;
    fm->n_kv = 1;
    fm->has_created_by = true;
    fm->created_by = (sl__pq_str){"sluice test", 11};
    fm->n_column_orders = 3;
}

static void encode_sample(sl_buf *b)
{
    sl__pq_file_meta fm;
    sl__pq_schema_elem se[4];
    sl__pq_row_group rg;
    sl__pq_col_chunk cc[3];
    int32_t enc[3];
    sl__pq_str path[3];
    sl__pq_kv kv;
    sample_meta(&fm, se, &rg, cc, enc, path, &kv);
    assert_int_equal(sl__pq_file_meta_encode(&fm, b), SL_OK);
}

static void test_thrift_file_meta_round_trip(void **state)
{
    sl_buf b;
    sl__pq_arena a;
    sl__pq_file_meta got;
    char err[256];
    sl_buf_init(&b, 1 << 20);
    sl__pq_arena_init(&a, 1 << 20);
    encode_sample(&b);
    assert_int_equal(sl__pq_file_meta_decode(b.data, b.len, &a, &got, err, sizeof err), SL_OK);
    assert_int_equal(got.version, 1);
    assert_int_equal(got.num_rows, 1000);
    assert_int_equal(got.n_schema, 4);
    assert_true(str_is(got.schema[0].name, "schema"));
    assert_int_equal(got.schema[0].num_children, 3);
    assert_int_equal(got.schema[0].type, -1);
    assert_true(str_is(got.schema[3].name, "naïve"));
    assert_int_equal(got.schema[1].converted_type, SL__PQC_UTF8);
    assert_int_equal(got.schema[1].logical.kind, SL__PQL_STRING);
    assert_int_equal(got.schema[2].logical.kind, SL__PQL_TIMESTAMP);
    assert_true(got.schema[2].logical.ts_utc);
    assert_int_equal(got.schema[2].logical.ts_unit, SL__PQU_MICROS);
    assert_int_equal(got.schema[3].logical.kind, SL__PQL_DATE);
    assert_int_equal(got.schema[3].repetition, 1);
    assert_int_equal(got.n_row_groups, 1);
    const sl__pq_row_group *rg = &got.row_groups[0];
    assert_int_equal(rg->n_columns, 3);
    assert_int_equal(rg->total_byte_size, 15003);
    assert_int_equal(rg->total_compressed_size, 12003);
    assert_int_equal(rg->file_offset, 4);
    for (int k = 0; k < 3; k++) {
        const sl__pq_col_meta *cm = &rg->columns[k].meta;
        assert_true(rg->columns[k].has_meta);
        assert_int_equal(rg->columns[k].file_offset, 4 + k * 1000);
        assert_int_equal(cm->n_encodings, 3);
        assert_int_equal(cm->encodings[2], SL__PQE_RLE_DICTIONARY);
        assert_int_equal(cm->n_path, 1);
        assert_int_equal(cm->codec, 1);
        assert_int_equal(cm->total_uncompressed_size, 5000 + k);
        assert_int_equal(cm->total_compressed_size, 4000 + k);
        assert_int_equal(cm->data_page_offset, 100 + k * 1000);
        assert_int_equal(cm->dictionary_page_offset, k == 1 ? -1 : 4 + k * 1000);
        assert_int_equal(cm->has_stats, k != 2);
    }
    const sl__pq_stats *st = &rg->columns[0].meta.stats;
    assert_true(st->has_min && st->has_max && st->has_null_count);
    assert_int_equal(st->null_count, 17);
    assert_true(str_is(st->min_value, "abc"));
    assert_int_equal(st->max_value.len, 3);
    assert_memory_equal(st->max_value.ptr, "\xff\x00z", 3);
    assert_false(rg->columns[1].meta.stats.has_min);
    assert_int_equal(got.n_kv, 1);
    assert_true(str_is(got.kv[0].key, "k") && str_is(got.kv[0].value, "v"));
    assert_true(got.has_created_by && str_is(got.created_by, "sluice test"));
    assert_int_equal(got.n_column_orders, 3);
    sl__pq_arena_cleanup(&a);
    sl_buf_cleanup(&b);
}

static void test_thrift_page_header_round_trip(void **state)
{
    sl_buf b;
    sl__pq_page_header ph = {0}, got;
    size_t used;
    char err[256];
    sl_buf_init(&b, 4096);
    ph.type = SL__PQP_DATA;
    ph.uncompressed_page_size = 1 << 20;
    ph.compressed_page_size = 12345;
    ph.has_data = true;
    ph.num_values = 99999;
    ph.encoding = SL__PQE_RLE_DICTIONARY;
    ph.def_encoding = ph.rep_encoding = SL__PQE_RLE;
    assert_int_equal(sl__pq_page_header_encode(&ph, &b), SL_OK);
    assert_int_equal(sl_buf_append(&b, "page bytes", 10), SL_OK);
    assert_int_equal(sl__pq_page_header_decode(b.data, b.len, &got, &used, err, sizeof err), SL_OK);
    assert_int_equal(used, b.len - 10);
    assert_memory_equal(&got, &ph, sizeof ph);
    /* every truncation fails cleanly */
    for (size_t n = 0; n < used; n++)
        assert_int_equal(sl__pq_page_header_decode(b.data, n, &got, &used, err, sizeof err),
                         SL_ERR_CORRUPT);
    sl_buf_cleanup(&b);
}

static void test_thrift_hostile(void **state)
{
    sl_buf b;
    sl__pq_arena a;
    sl__pq_file_meta fm;
    char err[256];
    sl_buf_init(&b, 1 << 20);
    encode_sample(&b);
    /* Every truncation of a valid footer is refused. */
    for (size_t n = 0; n < b.len; n++) {
        sl__pq_arena_init(&a, 1 << 20);
        assert_int_not_equal(sl__pq_file_meta_decode(b.data, n, &a, &fm, err, sizeof err), SL_OK);
        sl__pq_arena_cleanup(&a);
    }
    assert_non_null(strstr(err, "corrupt parquet footer at byte"));
    /* Random byte flips: an error or a success, never a crash (ASan/UBSan watch). */
    for (int round = 0; round < 3000; round++) {
        sl_buf m;
        sl_buf_init(&m, 1 << 20);
        assert_int_equal(sl_buf_append(&m, b.data, b.len), SL_OK);
        for (int k = 0; k < 1 + (int)(rnd() % 4); k++)
            m.data[rnd() % m.len] = (char)rnd();
        sl__pq_arena_init(&a, 1 << 20);
        sl_err e = sl__pq_file_meta_decode(m.data, m.len, &a, &fm, err, sizeof err);
        assert_true(e == SL_OK || e == SL_ERR_CORRUPT || e == SL_ERR_TOO_LARGE);
        sl__pq_arena_cleanup(&a);
        sl_buf_cleanup(&m);
    }
    /* Deep nesting stops at the depth limit. */
    sl_buf_reset(&b);
    for (int k = 0; k < 1000; k++)
        assert_int_equal(sl_buf_append(&b, "\xfc", 1), SL_OK); /* field +15, struct */
    sl__pq_arena_init(&a, 1 << 20);
    assert_int_equal(sl__pq_file_meta_decode(b.data, b.len, &a, &fm, err, sizeof err),
                     SL_ERR_CORRUPT);
    assert_non_null(strstr(err, "nested too deeply"));
    /* A list claiming more elements than there are bytes. */
    assert_int_equal(
        sl__pq_file_meta_decode("\x29\xfc\xff\xff\xff\x0f", 6, &a, &fm, err, sizeof err),
        SL_ERR_CORRUPT);
    assert_non_null(strstr(err, "list longer than the input"));
    /* An over-long varint. */
    assert_int_equal(sl__pq_file_meta_decode("\x16\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12,
                                             &a, &fm, err, sizeof err),
                     SL_ERR_CORRUPT);
    sl__pq_arena_cleanup(&a);
    /* The arena's cap bounds what a footer may allocate. */
    sl_buf_reset(&b);
    encode_sample(&b);
    sl__pq_arena_init(&a, 256);
    assert_int_equal(sl__pq_file_meta_decode(b.data, b.len, &a, &fm, err, sizeof err),
                     SL_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "memory limit"));
    sl__pq_arena_cleanup(&a);
    sl_buf_cleanup(&b);
}

/* ---- RLE / bit-packed hybrid ---- */

static void rle_round_trip(const uint32_t *vals, size_t n, int bw)
{
    sl_buf b;
    uint32_t *got = calloc(n + 1, sizeof *got);
    sl_buf_init(&b, 1 << 26);
    assert_int_equal(sl__pq_rle_encode_u32(vals, n, bw, &b), SL_OK);
    assert_true(b.len <= sl__pq_rle_bound(n, bw));
    assert_int_equal(sl__pq_rle_decode(b.data, b.len, bw, got, n), SL_OK);
    if (n)
        assert_memory_equal(got, vals, n * sizeof *vals);
    /* the same through the 8-bit entry point when the values fit */
    if (bw <= 8) {
        uint8_t *v8 = malloc(n + 1);
        for (size_t k = 0; k < n; k++)
            v8[k] = (uint8_t)vals[k];
        sl_buf b8;
        sl_buf_init(&b8, 1 << 26);
        assert_int_equal(sl__pq_rle_encode_u8(v8, n, bw, &b8), SL_OK);
        assert_int_equal(b8.len, b.len);
        if (n)
            assert_memory_equal(b8.data, b.data, b.len);
        sl_buf_cleanup(&b8);
        free(v8);
    }
    sl_buf_cleanup(&b);
    free(got);
}

static void test_rle(void **state)
{
    /* The spec's example: 0..7 bit-packed with width 3 is 0x88 0xc6 0xfa. */
    uint32_t seq[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    sl_buf b;
    sl_buf_init(&b, 4096);
    assert_int_equal(sl__pq_rle_encode_u32(seq, 8, 3, &b), SL_OK);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "\x03\x88\xc6\xfa", 4);
    /* A run: 100 sevens, width 3: header 200 as a varint (0xc8 0x01), value in 1 byte. */
    uint32_t run[100];
    for (int k = 0; k < 100; k++)
        run[k] = 7;
    sl_buf_reset(&b);
    assert_int_equal(sl__pq_rle_encode_u32(run, 100, 3, &b), SL_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "\xc8\x01\x07", 3);
    sl_buf_cleanup(&b);

    size_t sizes[] = {0, 1, 7, 8, 9, 63, 64, 65, 504, 505, 1000, 4099};
    uint32_t *vals = malloc(5000 * sizeof *vals);
    for (int bw = 0; bw <= 32; bw++) {
        uint64_t mask = bw == 32 ? 0xffffffffu : (1ull << bw) - 1;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            for (int pattern = 0; pattern < 3; pattern++) {
                for (size_t k = 0; k < n; k++) {
                    uint64_t v = pattern == 0   ? rnd()
                                 : pattern == 1 ? (k / 13) * 2654435761u /* runs of 13 */
                                                : (rnd() % 4 ? 1 : rnd());
                    vals[k] = (uint32_t)(v & mask);
                }
                rle_round_trip(vals, n, bw);
            }
        }
    }
    free(vals);
    assert_int_equal(sl__pq_bit_width(0), 0);
    assert_int_equal(sl__pq_bit_width(1), 1);
    assert_int_equal(sl__pq_bit_width(255), 8);
    assert_int_equal(sl__pq_bit_width(256), 9);
    assert_int_equal(sl__pq_bit_width(UINT32_MAX), 32);
}

static void test_rle_hostile(void **state)
{
    uint32_t out[64];
    /* truncated bit-packed run, truncated RLE value, value wider than the bit width,
     * zero-length run, header without end */
    assert_int_equal(sl__pq_rle_decode("\x03\x88", 2, 3, out, 8), SL_ERR_CORRUPT);
    assert_int_equal(sl__pq_rle_decode("\x10", 1, 3, out, 8), SL_ERR_CORRUPT);
    assert_int_equal(sl__pq_rle_decode("\x10\x09", 2, 3, out, 8), SL_ERR_CORRUPT);
    assert_int_equal(sl__pq_rle_decode("\x00\x01", 2, 3, out, 8), SL_ERR_CORRUPT);
    assert_int_equal(sl__pq_rle_decode("\xff\xff", 2, 3, out, 8), SL_ERR_CORRUPT);
    assert_int_equal(sl__pq_rle_decode("", 0, 3, out, 1), SL_ERR_CORRUPT);
    assert_int_equal(sl__pq_rle_decode("\x10\x05", 2, 3, out, 8), SL_OK);
    assert_int_equal(out[7], 5);
    for (int round = 0; round < 20000; round++) {
        uint8_t junk[16];
        for (int k = 0; k < 16; k++)
            junk[k] = (uint8_t)rnd();
        sl_err e = sl__pq_rle_decode(junk, rnd() % 17, (int)(rnd() % 33), out, rnd() % 64);
        assert_true(e == SL_OK || e == SL_ERR_CORRUPT);
    }
}

static void test_utf8(void **state)
{
    static const char *const good[] = {"",
                                       "plain ascii",
                                       "h\xc3\xa9llo",
                                       "\xe2\x82\xac",
                                       "\xf0\x9f\x8e\x89",
                                       "\xf4\x8f\xbf\xbf",
                                       "\xed\x9f\xbf"};
    static const char *const bad[] = {"\x80",
                                      "\xc0\x80",
                                      "\xc1\xbf",
                                      "\xe0\x80\x80",
                                      "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80",
                                      "\xf5\x80\x80\x80",
                                      "\xc3",
                                      "\xe2\x82",
                                      "\xff",
                                      "\xc3\x28"};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++)
        assert_true(sl__pq_utf8_is_valid(good[k], strlen(good[k])));
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_false(sl__pq_utf8_is_valid(bad[k], strlen(bad[k])));
    /* a bad byte at every position around the 16-byte fast path */
    char buf[64];
    for (size_t at = 0; at < sizeof buf; at++) {
        memset(buf, 'a', sizeof buf);
        assert_true(sl__pq_utf8_is_valid(buf, sizeof buf));
        buf[at] = (char)0xff;
        assert_false(sl__pq_utf8_is_valid(buf, sizeof buf));
        assert_true(sl__pq_utf8_is_valid(buf, at)); /* the length is honoured */
    }
}

/* ---- the writer, read back through our own decoder ---- */

typedef struct written {
    sl_buf file;
    sl__pq_arena a;
    sl__pq_file_meta fm;
} written;

static void written_decode(written *w)
{
    char err[256];
    sl__pq_arena_init(&w->a, 64 << 20);
    sl_err e = sl__pq_footer_decode(w->file.data, w->file.len, &w->a, &w->fm, err, sizeof err);
    if (e)
        fail_msg("footer of a written file: %s", err);
}

static void written_cleanup(written *w)
{
    sl__pq_arena_cleanup(&w->a);
    sl_buf_cleanup(&w->file);
}

static bool has_encoding(const sl__pq_col_meta *cm, int32_t e)
{
    for (size_t k = 0; k < cm->n_encodings; k++)
        if (cm->encodings[k] == e)
            return true;
    return false;
}

/* Walks the pages of a chunk: headers decode, sizes add up, values sum to num_values. */
static size_t check_pages(const written *w, const sl__pq_col_meta *cm)
{
    char err[256];
    int64_t off =
        cm->dictionary_page_offset >= 0 ? cm->dictionary_page_offset : cm->data_page_offset;
    int64_t end = off + cm->total_compressed_size, values = 0;
    size_t pages = 0;
    while (off < end) {
        sl__pq_page_header ph;
        size_t used;
        assert_int_equal(sl__pq_page_header_decode(w->file.data + off, (size_t)(end - off), &ph,
                                                   &used, err, sizeof err),
                         SL_OK);
        if (ph.type == SL__PQP_DATA)
            values += ph.num_values;
        else
            assert_int_equal(off, cm->dictionary_page_offset);
        off += (int64_t)used + ph.compressed_page_size;
        pages++;
    }
    assert_int_equal(off, end);
    assert_int_equal(values, cm->num_values);
    return pages;
}

static sl_pq_value str_val(const char *s)
{
    sl_pq_value v = {.is_null = s == NULL};
    if (s) {
        v.v.bytes.ptr = s;
        v.v.bytes.len = strlen(s);
    }
    return v;
}

static void test_writer_zero_rows(void **state)
{
    written w;
    sl_ostream_buf obs;
    sl_pq_writer_t *pw;
    sl_pq_file_info info;
    char err[256];
    sl_pq_column cols[] = {{"s", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
                           {"t", SL_PQ_INT64, SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC, SL_PQ_REQUIRED}};
    sl_buf_init(&w.file, 1 << 20);
    sl_ostream_buf_init(&obs, &w.file);
    assert_int_equal(sl_pq_writer_new(cols, 2, NULL, &obs.os, &pw, err, sizeof err), SL_OK);
    assert_int_equal(sl_pq_writer_finish(pw, &info, err, sizeof err), SL_OK);
    assert_int_equal(info.rows, 0);
    assert_int_equal(info.file_bytes, w.file.len);
    assert_false(info.columns[0].has_min_max);
    assert_int_equal(sl_pq_writer_finish(pw, &info, err, sizeof err), SL_ERR_CLOSED);
    sl_pq_writer_free(pw);
    written_decode(&w);
    assert_int_equal(w.fm.num_rows, 0);
    assert_int_equal(w.fm.n_row_groups, 0);
    assert_int_equal(w.fm.n_schema, 3);
    assert_true(str_is(w.fm.schema[2].name, "t"));
    assert_int_equal(w.fm.schema[2].logical.kind, SL__PQL_TIMESTAMP);
    written_cleanup(&w);
}

/* Many rows with edge-case columns; small pages and dictionary so every path runs. */
static void test_writer_edge_cases(void **state)
{
    enum { N = 5000 };
    written w;
    sl_ostream_buf obs;
    sl_pq_writer_t *pw;
    sl_pq_writer_options o;
    sl_pq_file_info info;
    char err[256];
    sl_pq_column cols[] = {
        {"allnull", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
        {"one", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
        {"uniq", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
        {"text", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
        {"i", SL_PQ_INT32, SL_PQ_LOGICAL_NONE, SL_PQ_OPTIONAL},
        {"d", SL_PQ_DOUBLE, SL_PQ_LOGICAL_NONE, SL_PQ_OPTIONAL},
        {"nan", SL_PQ_DOUBLE, SL_PQ_LOGICAL_NONE, SL_PQ_REQUIRED},
        {"b", SL_PQ_BOOLEAN, SL_PQ_LOGICAL_NONE, SL_PQ_REQUIRED},
        {"day", SL_PQ_INT32, SL_PQ_LOGICAL_DATE, SL_PQ_OPTIONAL},
    };
    const size_t nc = sizeof cols / sizeof cols[0];
    char *big = malloc(20000);
    memset(big, 'q', 19999);
    big[19999] = '\0';
    sl_buf_init(&w.file, 64 << 20);
    sl_ostream_buf_init(&obs, &w.file);
    sl_pq_writer_options_default(&o);
    o.page_bytes = 2048;
    o.dictionary_bytes = 1024;
    o.row_group_bytes = 100000;
    assert_int_equal(sl_pq_writer_new(cols, nc, &o, &obs.os, &pw, err, sizeof err), SL_OK);
    for (int r = 0; r < N; r++) {
        char uniq[32], text[32];
        snprintf(uniq, sizeof uniq, "u%08d", r);
        snprintf(text, sizeof text, "t%d", r % 7);
        sl_pq_value v[9];
        v[0] = str_val(NULL);
        v[1] = str_val("same");
        v[2] = str_val(uniq);
        v[3] = str_val(r % 5 == 0      ? NULL
                       : r == 1        ? ""
                       : r == 2        ? "é"    /* 0xc3...: above every ASCII */
                       : r == 3        ? "\x7f" /* highest ASCII */
                       : r % 1000 == 4 ? big    /* longer than a page */
                                       : text);
        v[4] = (sl_pq_value){.is_null = r % 3 == 0, .v.i32 = r - 2500};
        v[5] = (sl_pq_value){.is_null = r % 2 == 0,
                             .v.f64 = r == 1   ? -0.0
                                      : r == 3 ? 0.0
                                               : r * 1.5};
        v[6] = (sl_pq_value){.v.f64 = NAN};
        v[7] = (sl_pq_value){.v.b = r % 3 == 1};
        v[8] = (sl_pq_value){.is_null = r != 7, .v.i32 = -719162}; /* 0001-01-01 */
        assert_int_equal(sl_pq_writer_write_row(pw, v, err, sizeof err), SL_OK);
    }
    assert_int_equal(sl_pq_writer_rows(pw), N);
    assert_int_equal(sl_pq_writer_finish(pw, &info, err, sizeof err), SL_OK);
    /* sl_pq_file_info */
    assert_int_equal(info.rows, N);
    assert_int_equal(info.n_columns, nc);
    assert_int_equal(info.file_bytes, w.file.len);
    assert_int_equal(info.columns[0].null_count, N);
    assert_false(info.columns[0].has_min_max);
    assert_true(info.columns[1].has_min_max);
    assert_int_equal(info.columns[1].min.v.bytes.len, 4);
    assert_memory_equal(info.columns[1].max.v.bytes.ptr, "same", 4);
    assert_memory_equal(info.columns[2].min.v.bytes.ptr, "u00000000", 9);
    assert_memory_equal(info.columns[2].max.v.bytes.ptr, "u00004999", 9);
    assert_int_equal(info.columns[3].min.v.bytes.len, 0); /* "" */
    assert_int_equal(info.columns[3].max.v.bytes.len, 2); /* "é" by unsigned bytes */
    assert_memory_equal(info.columns[3].max.v.bytes.ptr, "é", 2);
    assert_int_equal(info.columns[3].null_count, N / 5);
    assert_int_equal(info.columns[4].min.v.i32, -2500 + 1); /* r = 1: first non-null */
    assert_int_equal(info.columns[4].max.v.i32, 4999 - 2500);
    assert_true(info.columns[5].min.v.f64 == -0.0 && signbit(info.columns[5].min.v.f64));
    assert_true(info.columns[5].max.v.f64 == 4999 * 1.5);
    assert_false(info.columns[6].has_min_max); /* NaN only */
    assert_int_equal(info.columns[6].null_count, 0);
    assert_false(info.columns[7].min.v.b);
    assert_true(info.columns[7].max.v.b);
    assert_int_equal(info.columns[8].min.v.i32, -719162);
    assert_int_equal(info.columns[8].null_count, N - 1);
    sl_pq_writer_free(pw);

    written_decode(&w);
    assert_int_equal(w.fm.num_rows, N);
    assert_true(w.fm.n_row_groups > 1);
    int64_t rows = 0;
    size_t text_pages = 0;
    for (size_t g = 0; g < w.fm.n_row_groups; g++) {
        const sl__pq_row_group *rg = &w.fm.row_groups[g];
        rows += rg->num_rows;
        assert_int_equal(rg->n_columns, nc);
        for (size_t c = 0; c < nc; c++) {
            const sl__pq_col_meta *cm = &rg->columns[c].meta;
            assert_int_equal(cm->num_values, rg->num_rows);
            assert_int_equal(cm->codec, 1); /* snappy by default */
            size_t pages = check_pages(&w, cm);
            if (c == 3 && pages > text_pages)
                text_pages = pages;
        }
        const sl__pq_col_meta *cm = &rg->columns[0].meta;
        assert_false(cm->stats.has_min);
        assert_int_equal(cm->stats.null_count, rg->num_rows);
        assert_true(has_encoding(&rg->columns[1].meta, SL__PQE_RLE_DICTIONARY));
        assert_false(has_encoding(&rg->columns[1].meta, SL__PQE_RLE)); /* required */
        assert_true(rg->columns[1].meta.dictionary_page_offset > 0);
        /* the dictionary of "uniq" outgrows 1 KiB: PLAIN, no dictionary page */
        assert_false(has_encoding(&rg->columns[2].meta, SL__PQE_RLE_DICTIONARY));
        assert_int_equal(rg->columns[2].meta.dictionary_page_offset, -1);
        assert_true(has_encoding(&rg->columns[4].meta, SL__PQE_RLE)); /* optional */
        assert_false(rg->columns[6].meta.stats.has_min);
    }
    assert_int_equal(rows, N);
    assert_true(text_pages > 2); /* long strings: several pages in a chunk */
    written_cleanup(&w);
    free(big);
}

static void test_writer_refuses(void **state)
{
    written w;
    sl_ostream_buf obs;
    sl_pq_writer_t *pw;
    sl_pq_writer_options o;
    sl_pq_file_info info;
    char err[256];
    sl_pq_column cols[] = {{"name", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
                           {"doc", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_JSON, SL_PQ_OPTIONAL},
                           {"raw", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_NONE, SL_PQ_OPTIONAL}};
    sl_pq_column bad_schema[] = {{"x", SL_PQ_INT32, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED}};
    sl_pq_column dup[] = {{"x", SL_PQ_INT32, SL_PQ_LOGICAL_NONE, SL_PQ_REQUIRED},
                          {"x", SL_PQ_INT64, SL_PQ_LOGICAL_NONE, SL_PQ_REQUIRED}};
    sl_buf_init(&w.file, 1 << 20);
    sl_ostream_buf_init(&obs, &w.file);
    assert_int_equal(sl_pq_writer_new(bad_schema, 1, NULL, &obs.os, &pw, err, sizeof err),
                     SL_ERR_INVALID);
    assert_non_null(strstr(err, "\"x\""));
    assert_int_equal(sl_pq_writer_new(dup, 2, NULL, &obs.os, &pw, err, sizeof err), SL_ERR_INVALID);
    assert_non_null(strstr(err, "appears twice"));
    assert_int_equal(sl_pq_writer_new(cols, 0, NULL, &obs.os, &pw, err, sizeof err),
                     SL_ERR_INVALID);
    assert_int_equal(w.file.len, 0);

    sl_pq_writer_options_default(&o);
    o.max_buffered_bytes = 256 * 1024;
    assert_int_equal(sl_pq_writer_new(cols, 3, &o, &obs.os, &pw, err, sizeof err), SL_OK);
    sl_pq_value ok[3] = {str_val("a"), str_val("{}"), {.v.bytes = {"\xff\xfe", 2}}};
    assert_int_equal(sl_pq_writer_write_row(pw, ok, err, sizeof err), SL_OK);
    sl_pq_value empty[3] = {{.v.bytes = {NULL, 0}}, {.v.bytes = {NULL, 0}}, {.v.bytes = {NULL, 0}}};
    assert_int_equal(sl_pq_writer_write_row(pw, empty, err, sizeof err), SL_OK);
    sl_pq_value v[3] = {str_val(NULL), str_val("{}"), str_val(NULL)};
    assert_int_equal(sl_pq_writer_write_row(pw, v, err, sizeof err), SL_ERR_INVALID);
    assert_non_null(strstr(err, "null in the required column \"name\""));
    v[0] = str_val("zz");
    v[1] = str_val("{\"a\":\"\xc3\x28\"}"); /* invalid UTF-8 in JSON */
    assert_int_equal(sl_pq_writer_write_row(pw, v, err, sizeof err), SL_ERR_INVALID);
    assert_non_null(strstr(err, "column \"doc\": value is not valid UTF-8"));
    v[1] = str_val("\xed\xa0\x80"); /* a surrogate */
    assert_int_equal(sl_pq_writer_write_row(pw, v, err, sizeof err), SL_ERR_INVALID);
    v[1] = str_val("\xf0\x9f\x8e\x89"); /* U+1F389 is fine */
    /* a row over the memory cap is refused whole, and the writer goes on */
    char *huge = malloc(1 << 20);
    memset(huge, 'h', 1 << 20);
    v[2] = (sl_pq_value){.v.bytes = {huge, 1 << 20}};
    assert_int_equal(sl_pq_writer_write_row(pw, v, err, sizeof err), SL_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "memory limit"));
    assert_false(sl_pq_writer_is_broken(pw));
    v[2] = str_val(NULL);
    assert_int_equal(sl_pq_writer_rows(pw), 2);
    assert_int_equal(sl_pq_writer_write_row(pw, v, err, sizeof err), SL_OK);
    assert_int_equal(sl_pq_writer_finish(pw, &info, err, sizeof err), SL_OK);
    assert_int_equal(info.rows, 3);
    assert_int_equal(info.columns[0].min.v.bytes.len, 0); /* the empty string */
    /* only the rows accepted: bounds "a".."zz", one null in raw */
    assert_memory_equal(info.columns[0].max.v.bytes.ptr, "zz", 2);
    assert_int_equal(info.columns[2].null_count, 1);
    assert_int_equal(info.columns[1].max.v.bytes.len, 4);
    sl_pq_writer_free(pw);
    written_decode(&w);
    assert_int_equal(w.fm.num_rows, 3);
    assert_int_equal(w.fm.row_groups[0].columns[2].meta.stats.null_count, 1);
    written_cleanup(&w);
    free(huge);
}

/* Torture in the spirit of allocation-failure injection: with memory caps at many sizes,
 * rows are written until one is refused; every refusal must leave the writer consistent,
 * and the file must still finish and hold exactly the accepted rows and nulls. */
static void test_writer_memory_cap_torture(void **state)
{
    sl_pq_column cols[] = {{"u", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_REQUIRED},
                           {"c", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
                           {"n", SL_PQ_INT64, SL_PQ_LOGICAL_NONE, SL_PQ_OPTIONAL}};
    char *long_str = malloc(3000);
    memset(long_str, 'L', 2999);
    long_str[2999] = '\0';
    int finished = 0, tries = 0;
    for (size_t cap = 16 * 1024; cap < 600 * 1024; cap += 7919, tries++) {
        written w;
        sl_ostream_buf obs;
        sl_pq_writer_t *pw;
        sl_pq_writer_options o;
        sl_pq_file_info info;
        char err[256];
        sl_buf_init(&w.file, 64 << 20);
        sl_ostream_buf_init(&obs, &w.file);
        sl_pq_writer_options_default(&o);
        o.max_buffered_bytes = cap;
        o.row_group_bytes = 1 << 30;
        o.page_bytes = 4096;
        o.dictionary_bytes = 8192;
        assert_int_equal(sl_pq_writer_new(cols, 3, &o, &obs.os, &pw, err, sizeof err), SL_OK);
        uint64_t accepted = 0, nulls = 0;
        int refused = 0;
        for (int r = 0; refused < 3 && r < 200000; r++) {
            char u[32];
            snprintf(u, sizeof u, "id-%d", r);
            bool null_n = r % 4 == 0;
            sl_pq_value v[3] = {str_val(u),
                                str_val(r % 50 == 0 ? long_str
                                        : r % 3     ? "x"
                                                    : NULL),
                                {.is_null = null_n, .v.i64 = r}};
            sl_err e = sl_pq_writer_write_row(pw, v, err, sizeof err);
            if (e == SL_OK) {
                accepted++;
                nulls += null_n;
            } else {
                assert_int_equal(e, SL_ERR_TOO_LARGE);
                refused++;
            }
        }
        assert_int_equal(sl_pq_writer_rows(pw), accepted);
        sl_err e = sl_pq_writer_finish(pw, &info, err, sizeof err);
        assert_true(e == SL_OK || e == SL_ERR_TOO_LARGE);
        if (e == SL_OK) {
            finished++;
            assert_int_equal(info.rows, accepted);
            assert_int_equal(info.columns[2].null_count, nulls);
            written_decode(&w);
            assert_int_equal(w.fm.num_rows, (int64_t)accepted);
            for (size_t g = 0; g < w.fm.n_row_groups; g++)
                for (size_t c = 0; c < 3; c++)
                    check_pages(&w, &w.fm.row_groups[g].columns[c].meta);
            sl__pq_arena_cleanup(&w.a);
        }
        sl_pq_writer_free(pw);
        sl_buf_cleanup(&w.file);
    }
    /* The headroom kept for pages lets every file be finished after its rows hit the cap. */
    print_message("memory-cap torture: %d of %d files finished\n", finished, tries);
    assert_int_equal(finished, tries);
    free(long_str);
}

/* The output refuses bytes (a capped buffer): the error says so, the writer stays safe. */
static void test_writer_output_error(void **state)
{
    sl_buf small;
    sl_ostream_buf obs;
    sl_pq_writer_t *pw;
    sl_pq_writer_options o;
    char err[256];
    sl_pq_column cols[] = {{"v", SL_PQ_INT64, SL_PQ_LOGICAL_NONE, SL_PQ_REQUIRED}};
    sl_buf_init(&small, 2);
    sl_ostream_buf_init(&obs, &small);
    assert_int_equal(sl_pq_writer_new(cols, 1, NULL, &obs.os, &pw, err, sizeof err),
                     SL_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "could not start the parquet file"));
    sl_buf_cleanup(&small);
    sl_buf_init(&small, 3000);
    sl_pq_writer_options_default(&o);
    o.row_group_bytes = 1000;
    assert_int_equal(sl_pq_writer_new(cols, 1, &o, &obs.os, &pw, err, sizeof err), SL_OK);
    sl_err e = SL_OK;
    for (int64_t r = 0; r < 100000 && !e; r++) {
        sl_pq_value v = {.v.i64 = r * 7919};
        e = sl_pq_writer_write_row(pw, &v, err, sizeof err);
    }
    assert_int_equal(e, SL_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "could not write the parquet file"));
    assert_true(sl_pq_writer_is_broken(pw));
    sl_pq_value v = {.v.i64 = 1};
    assert_int_equal(sl_pq_writer_write_row(pw, &v, err, sizeof err), SL_ERR_CLOSED);
    assert_int_equal(sl_pq_writer_finish(pw, NULL, err, sizeof err), SL_ERR_CLOSED);
    sl_pq_writer_free(pw);
    sl_buf_cleanup(&small);
}

/* ---- footers of files other engines wrote ---- */

static bool read_whole(const char *path, sl_buf *b)
{
    FILE *f = fopen(path, "rb");
    char chunk[65536];
    size_t n;
    if (!f)
        return false;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (sl_buf_append(b, chunk, n) != SL_OK) {
            fclose(f);
            return false;
        }
    fclose(f);
    return true;
}

static void test_real_footers(void **state)
{
    const char *dir = SL_TEST_DATA "/parquet-testing";
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("no parquet-testing data at %s (set SLUICE_SHARED_DATA in CMake)", dir);
    struct dirent *de;
    int decoded = 0, refused = 0;
    bool saw_alltypes = false;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        bool encrypted = nl > 10 && strcmp(de->d_name + nl - 10, ".encrypted") == 0;
        if (!encrypted && (nl < 8 || strcmp(de->d_name + nl - 8, ".parquet") != 0))
            continue;
        char path[1024], err[256];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        sl_buf b;
        sl__pq_arena a;
        sl__pq_file_meta fm;
        sl_buf_init(&b, 256 << 20);
        assert_true(read_whole(path, &b));
        sl__pq_arena_init(&a, 64 << 20);
        sl_err e = sl__pq_footer_decode(b.data, b.len, &a, &fm, err, sizeof err);
        if (encrypted && b.len >= 4 && memcmp(b.data, "PARE", 4) == 0) {
            /* an encrypted footer: refused, not misread */
            assert_int_not_equal(e, SL_OK);
            refused++;
        } else {
            if (e)
                fail_msg("%s: %s", de->d_name, err);
            int64_t rows = 0;
            for (size_t g = 0; g < fm.n_row_groups; g++) {
                const sl__pq_row_group *rg = &fm.row_groups[g];
                rows += rg->num_rows;
                for (size_t c = 0; c < rg->n_columns; c++) {
                    const sl__pq_col_chunk *cc = &rg->columns[c];
                    if (!cc->has_meta)
                        continue;
                    int64_t off = cc->meta.dictionary_page_offset > 0
                                      ? cc->meta.dictionary_page_offset
                                      : cc->meta.data_page_offset;
                    if (off <= 0 || (uint64_t)off >= b.len)
                        continue;
                    sl__pq_page_header ph;
                    size_t used;
                    /* the first page header decodes or is refused, never misread */
                    sl_err pe = sl__pq_page_header_decode(b.data + off, b.len - (size_t)off, &ph,
                                                          &used, err, sizeof err);
                    assert_true(pe == SL_OK || pe == SL_ERR_CORRUPT);
                }
            }
            if (rows != fm.num_rows)
                print_message("%s: row groups hold %lld rows, the footer says %lld\n", de->d_name,
                              (long long)rows, (long long)fm.num_rows);
            assert_true(fm.n_schema > 0);
            if (strcmp(de->d_name, "alltypes_plain.parquet") == 0) {
                saw_alltypes = true;
                assert_int_equal(fm.num_rows, 8);
                assert_int_equal(fm.n_schema, 12); /* root + 11 columns */
                assert_true(str_is(fm.schema[1].name, "id"));
            }
            decoded++;
            /* Truncated copies of a real footer are refused cleanly. (A plaintext footer of
             * an encrypted file has a signature after the structure: not cut there.) */
            uint32_t flen;
            memcpy(&flen, b.data + b.len - 8, 4);
            for (uint32_t cut = 0; !encrypted && cut < flen; cut += 1 + flen / 64) {
                sl__pq_arena a2;
                sl__pq_file_meta fm2;
                sl__pq_arena_init(&a2, 64 << 20);
                assert_int_not_equal(sl__pq_file_meta_decode(b.data + b.len - 8 - flen, cut, &a2,
                                                             &fm2, err, sizeof err),
                                     SL_OK);
                sl__pq_arena_cleanup(&a2);
            }
        }
        sl__pq_arena_cleanup(&a);
        sl_buf_cleanup(&b);
    }
    closedir(d);
    print_message("decoded %d footers, refused %d encrypted files\n", decoded, refused);
    assert_true(saw_alltypes);
    assert_true(decoded > 30);
    /* Not Parquet at all. */
    char err[256];
    sl__pq_arena a;
    sl__pq_file_meta fm;
    sl__pq_arena_init(&a, 1 << 20);
    assert_int_equal(sl__pq_footer_decode("PAR1\x10\0\0\0PAR1", 12, &a, &fm, err, sizeof err),
                     SL_ERR_CORRUPT);
    assert_non_null(strstr(err, "length 16"));
    assert_int_equal(sl__pq_footer_decode("hello", 5, &a, &fm, err, sizeof err), SL_ERR_CORRUPT);
    sl__pq_arena_cleanup(&a);
}

/* ---- nested writer and the reader ---- */

/* A list of optional ints inside an optional struct, beside a map<string, string?> and a
 * required id: random rows (sizes 0..5, nulls at each level) go through the nested writer
 * with small pages and row groups, and the reader must give back every level and value. */
static const sl_pq_node RT_ELEM = {
    "element", SL_PQ_NODE_LEAF, SL_PQ_OPTIONAL, SL_PQ_INT64, SL_PQ_LOGICAL_NONE, NULL, 0};
static const sl_pq_node RT_S[2] = {
    {"n", SL_PQ_NODE_LEAF, SL_PQ_OPTIONAL, SL_PQ_INT32, SL_PQ_LOGICAL_NONE, NULL, 0},
    {"xs", SL_PQ_NODE_LIST, SL_PQ_REQUIRED, 0, 0, &RT_ELEM, 1}};
static const sl_pq_node RT_KV[2] = {
    {"key", SL_PQ_NODE_LEAF, SL_PQ_REQUIRED, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, NULL, 0},
    {"value", SL_PQ_NODE_LEAF, SL_PQ_OPTIONAL, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, NULL, 0}};
static const sl_pq_node RT_FIELDS[3] = {
    {"id", SL_PQ_NODE_LEAF, SL_PQ_REQUIRED, SL_PQ_INT64, SL_PQ_LOGICAL_NONE, NULL, 0},
    {"s", SL_PQ_NODE_STRUCT, SL_PQ_OPTIONAL, 0, 0, RT_S, 2},
    {"m", SL_PQ_NODE_MAP, SL_PQ_OPTIONAL, 0, 0, RT_KV, 2}};
#define RT_LEAVES 5
#define RT_ROWS   5000
#define RT_SLOTS  8

typedef struct rt_leaf {
    uint8_t reps[RT_ROWS * RT_SLOTS], defs[RT_ROWS * RT_SLOTS];
    sl_pq_value vals[RT_ROWS * RT_SLOTS];
    size_t n;
} rt_leaf;

static char rt_strs[RT_ROWS * RT_SLOTS][12];

static void rt_slot(rt_leaf *l, int r, int d, sl_pq_value v)
{
    l->reps[l->n] = (uint8_t)r;
    l->defs[l->n] = (uint8_t)d;
    l->vals[l->n++] = v;
}

static unsigned rt_rand(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005u + 1442695040888963407u;
    return (unsigned)(*seed >> 33);
}

static void test_nested_round_trip(void **state)
{
    static rt_leaf leaves[RT_LEAVES];
    sl_buf file;
    sl_ostream_buf obs;
    sl_pq_writer_t *pw;
    sl_pq_reader_t *pr;
    sl_pq_writer_options opts;
    char err[256];
    size_t at[RT_LEAVES] = {0};
    uint64_t seed = 12345;
    (void)state;
    memset(leaves, 0, sizeof leaves);
    sl_buf_init(&file, 64 << 20);
    sl_ostream_buf_init(&obs, &file);
    sl_pq_writer_options_default(&opts);
    opts.page_bytes = 200;
    opts.row_group_bytes = 30000;
    opts.codec = SL_PQ_ZSTD;
    assert_int_equal(sl_pq_writer_new_nested(RT_FIELDS, 3, &opts, &obs.os, &pw, err, sizeof err),
                     SL_OK);
    assert_int_equal(sl_pq_writer_leaves(pw), RT_LEAVES);
    int mr, md;
    sl_pq_writer_leaf_levels(pw, 2, &mr, &md); /* s.xs.list.element */
    assert_int_equal(mr, 1);
    assert_int_equal(md, 3);
    for (size_t i = 0; i < RT_ROWS; i++) {
        size_t start[RT_LEAVES];
        for (int k = 0; k < RT_LEAVES; k++)
            start[k] = leaves[k].n;
        rt_slot(&leaves[0], 0, 0, (sl_pq_value){.v.i64 = (int64_t)i});
        if (rt_rand(&seed) % 5 == 0) { /* s null */
            rt_slot(&leaves[1], 0, 0, (sl_pq_value){.is_null = true});
            rt_slot(&leaves[2], 0, 0, (sl_pq_value){.is_null = true});
        } else {
            bool nn = rt_rand(&seed) % 3 == 0;
            rt_slot(&leaves[1], 0, nn ? 1 : 2, (sl_pq_value){.is_null = nn, .v.i32 = (int32_t)i});
            unsigned len = rt_rand(&seed) % 6;
            if (!len)
                rt_slot(&leaves[2], 0, 1, (sl_pq_value){.is_null = true});
            for (unsigned k = 0; k < len; k++) {
                bool en = rt_rand(&seed) % 4 == 0;
                rt_slot(&leaves[2], k ? 1 : 0, en ? 2 : 3,
                        (sl_pq_value){.is_null = en, .v.i64 = (int64_t)(rt_rand(&seed) % 50)});
            }
        }
        unsigned mlen = rt_rand(&seed) % 5; /* 4: null map, 0: empty */
        if (mlen == 4 || mlen == 0) {
            rt_slot(&leaves[3], 0, mlen ? 0 : 1, (sl_pq_value){.is_null = true});
            rt_slot(&leaves[4], 0, mlen ? 0 : 1, (sl_pq_value){.is_null = true});
        }
        for (unsigned k = 0; mlen < 4 && k < mlen; k++) {
            char *ks = rt_strs[leaves[3].n];
            snprintf(ks, sizeof rt_strs[0], "k%u", k);
            rt_slot(&leaves[3], k ? 1 : 0, 2, str_val(ks));
            bool vn = rt_rand(&seed) % 3 == 0;
            char *vs = rt_strs[leaves[4].n + RT_ROWS * 4];
            snprintf(vs, sizeof rt_strs[0], "v%u", rt_rand(&seed) % 1000);
            rt_slot(&leaves[4], k ? 1 : 0, vn ? 2 : 3, vn ? str_val(NULL) : str_val(vs));
        }
        sl_pq_leaf_run runs[RT_LEAVES];
        for (int k = 0; k < RT_LEAVES; k++)
            runs[k] = (sl_pq_leaf_run){leaves[k].n - start[k], leaves[k].reps + start[k],
                                       leaves[k].defs + start[k], leaves[k].vals + start[k]};
        assert_int_equal(sl_pq_writer_write_levels(pw, runs, err, sizeof err), SL_OK);
    }
    /* levels out of place are refused and leave no trace */
    uint8_t bad_rep[2] = {1, 0}, def0 = 0;
    sl_pq_value one = {.v.i64 = 1};
    sl_pq_leaf_run badruns[RT_LEAVES] = {{1, NULL, NULL, &one},
                                         {1, NULL, &def0, &one},
                                         {2, bad_rep, bad_rep, leaves[2].vals},
                                         {1, &def0, &def0, &one},
                                         {1, &def0, &def0, &one}};
    assert_int_equal(sl_pq_writer_write_levels(pw, badruns, err, sizeof err), SL_ERR_INVALID);
    assert_non_null(strstr(err, "element"));
    assert_int_equal(sl_pq_writer_rows(pw), RT_ROWS);
    assert_int_equal(sl_pq_writer_finish(pw, NULL, err, sizeof err), SL_OK);
    sl_pq_writer_free(pw);

    assert_int_equal(sl_pq_reader_open(file.data, file.len, NULL, &pr, err, sizeof err), SL_OK);
    assert_int_equal(sl_pq_reader_rows(pr), RT_ROWS);
    assert_true(sl_pq_reader_row_groups(pr) > 1);
    size_t leaf;
    assert_true(sl_pq_reader_find(pr, "m.key_value.value", &leaf));
    assert_int_equal(leaf, 4);
    assert_int_equal(sl_pq_reader_leaf(pr, 2)->max_rep, 1);
    assert_int_equal(sl_pq_reader_leaf(pr, 2)->max_def, 3);
    for (size_t g = 0; g < sl_pq_reader_row_groups(pr); g++) {
        for (size_t k = 0; k < RT_LEAVES; k++) {
            sl_pq_column_data cd;
            const sl_pq_leaf_info *li = sl_pq_reader_leaf(pr, k);
            assert_int_equal(sl_pq_reader_read_column(pr, g, k, &cd, err, sizeof err), SL_OK);
            for (size_t s = 0; s < cd.n_slots; s++, at[k]++) {
                const rt_leaf *l = &leaves[k];
                assert_true(at[k] < l->n);
                assert_int_equal(cd.reps ? cd.reps[s] : 0, l->reps[at[k]]);
                assert_int_equal(cd.defs ? cd.defs[s] : 0, l->defs[at[k]]);
                bool null = l->defs[at[k]] < li->max_def;
                assert_int_equal(cd.values[s].is_null, null);
                if (null)
                    continue;
                if (li->type == SL_PQ_BYTE_ARRAY) {
                    assert_int_equal(cd.values[s].v.bytes.len, l->vals[at[k]].v.bytes.len);
                    assert_memory_equal(cd.values[s].v.bytes.ptr, l->vals[at[k]].v.bytes.ptr,
                                        cd.values[s].v.bytes.len);
                } else if (li->type == SL_PQ_INT32) {
                    assert_int_equal(cd.values[s].v.i32, l->vals[at[k]].v.i32);
                } else {
                    assert_int_equal(cd.values[s].v.i64, l->vals[at[k]].v.i64);
                }
            }
        }
        sl_pq_reader_reset(pr);
    }
    for (size_t k = 0; k < RT_LEAVES; k++)
        assert_int_equal(at[k], leaves[k].n);
    sl_pq_reader_free(pr);

    /* Every truncation and many corruptions: refused (or read) without a crash; a small
     * memory cap refuses with SL_ERR_TOO_LARGE. */
    for (size_t cut = 0; cut < file.len; cut += 1 + cut / 64) {
        if (sl_pq_reader_open(file.data, cut, NULL, &pr, err, sizeof err) == SL_OK)
            sl_pq_reader_free(pr);
        else
            assert_true(err[0] != '\0');
    }
    char *copy = malloc(file.len);
    for (int round = 0; round < 300; round++) {
        memcpy(copy, file.data, file.len);
        for (int b = 0; b < 4; b++)
            copy[rt_rand(&seed) % (file.len - 8)] ^= (char)(1u << (rt_rand(&seed) % 8));
        if (sl_pq_reader_open(copy, file.len, NULL, &pr, err, sizeof err) != SL_OK)
            continue;
        for (size_t g = 0; g < sl_pq_reader_row_groups(pr); g++)
            for (size_t k = 0; k < sl_pq_reader_leaves(pr); k++) {
                sl_pq_column_data cd;
                if (sl_pq_reader_read_column(pr, g, k, &cd, err, sizeof err) != SL_OK)
                    assert_true(err[0] != '\0');
            }
        sl_pq_reader_free(pr);
    }
    free(copy);
    sl_pq_reader_options ro;
    sl_pq_reader_options_default(&ro);
    ro.max_memory = 4096;
    sl_pq_column_data cd;
    assert_int_equal(sl_pq_reader_open(file.data, file.len, NULL, &pr, err, sizeof err), SL_OK);
    sl_pq_reader_free(pr);
    if (sl_pq_reader_open(file.data, file.len, &ro, &pr, err, sizeof err) == SL_OK) {
        assert_int_equal(sl_pq_reader_read_column(pr, 0, 4, &cd, err, sizeof err),
                         SL_ERR_TOO_LARGE);
        sl_pq_reader_free(pr);
    }
    sl_buf_cleanup(&file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thrift_primitives),
        cmocka_unit_test(test_thrift_file_meta_round_trip),
        cmocka_unit_test(test_thrift_page_header_round_trip),
        cmocka_unit_test(test_thrift_hostile),
        cmocka_unit_test(test_rle),
        cmocka_unit_test(test_rle_hostile),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_writer_zero_rows),
        cmocka_unit_test(test_writer_edge_cases),
        cmocka_unit_test(test_writer_refuses),
        cmocka_unit_test(test_writer_memory_cap_torture),
        cmocka_unit_test(test_writer_output_error),
        cmocka_unit_test(test_real_footers),
        cmocka_unit_test(test_nested_round_trip),
    };
    return cmocka_run_group_tests_name("parquet", tests, NULL, NULL);
}
