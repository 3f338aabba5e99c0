/* libFuzzer target for the Thrift compact decoder behind every Parquet footer and page
 * header (src/parquet/thrift.c, meta.c) and the RLE/bit-packed decoder: any bytes go in as
 * a FileMetaData, a whole file, a PageHeader and an RLE run. Whatever decodes must hold
 * together: every string and array lies inside the input or the arena, counts match, a
 * re-encoding decodes again. abort() marks a broken invariant. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet/parquet_int.h"
#include "fuzz.h"

static const uint8_t *in_lo, *in_hi;

static void check_str(sl__pq_str s)
{
    CHECK(s.len == 0 ||
          ((const uint8_t *)s.ptr >= in_lo && (const uint8_t *)s.ptr + s.len <= in_hi));
}

/* Reads every decoded field, so ASan sees any pointer that escaped its bounds. */
static void walk(const sl__pq_file_meta *fm)
{
    for (size_t i = 0; i < fm->n_schema; i++)
        check_str(fm->schema[i].name);
    for (size_t g = 0; g < fm->n_row_groups; g++) {
        const sl__pq_row_group *rg = &fm->row_groups[g];
        for (size_t c = 0; c < rg->n_columns; c++) {
            const sl__pq_col_meta *cm = &rg->columns[c].meta;
            volatile int32_t sink = 0;
            for (size_t k = 0; k < cm->n_encodings; k++)
                sink += cm->encodings[k];
            for (size_t k = 0; k < cm->n_path; k++)
                check_str(cm->path[k]);
            if (cm->stats.has_min)
                check_str(cm->stats.min_value);
            if (cm->stats.has_max)
                check_str(cm->stats.max_value);
            (void)sink;
        }
    }
    for (size_t i = 0; i < fm->n_kv; i++) {
        check_str(fm->kv[i].key);
        check_str(fm->kv[i].value);
    }
    if (fm->has_created_by)
        check_str(fm->created_by);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    sl__pq_arena a;
    sl__pq_file_meta fm;
    in_lo = data;
    in_hi = data + size;

    sl__pq_arena_init(&a, 16 << 20);
    sl_err e = sl__pq_file_meta_decode(data, size, &a, &fm, err, sizeof err);
    CHECK(e == SL_OK || e == SL_ERR_CORRUPT || e == SL_ERR_TOO_LARGE);
    if (e == SL_OK) {
        walk(&fm);
        /* What we decoded, we can write, and it decodes to the same shape. Fields the
         * decoder skips are not kept, so compare what it keeps. */
        sl_buf b;
        sl__pq_arena a2;
        sl__pq_file_meta fm2;
        sl_buf_init(&b, 64 << 20);
        if (sl__pq_file_meta_encode(&fm, &b) == SL_OK) {
            sl__pq_arena_init(&a2, 64 << 20);
            CHECK(sl__pq_file_meta_decode(b.data, b.len, &a2, &fm2, err, sizeof err) == SL_OK);
            CHECK(fm2.n_schema == fm.n_schema && fm2.n_row_groups == fm.n_row_groups &&
                  fm2.num_rows == fm.num_rows && fm2.n_kv == fm.n_kv);
            sl__pq_arena_cleanup(&a2);
        }
        sl_buf_cleanup(&b);
    }
    sl__pq_arena_cleanup(&a);

    sl__pq_arena_init(&a, 16 << 20);
    e = sl__pq_footer_decode(data, size, &a, &fm, err, sizeof err);
    CHECK(e == SL_OK || e == SL_ERR_CORRUPT || e == SL_ERR_TOO_LARGE);
    if (e == SL_OK)
        walk(&fm);
    sl__pq_arena_cleanup(&a);

    sl__pq_page_header ph;
    size_t used;
    e = sl__pq_page_header_decode(data, size, &ph, &used, err, sizeof err);
    CHECK(e == SL_OK || e == SL_ERR_CORRUPT);
    CHECK(e != SL_OK || (used <= size && ph.compressed_page_size >= 0));

    if (size > 2) {
        uint32_t out[4096];
        size_t n = ((size_t)data[1] * 16) % 4096;
        e = sl__pq_rle_decode(data + 2, size - 2, data[0] % 33, out, n);
        CHECK(e == SL_OK || e == SL_ERR_CORRUPT);
        if (e == SL_OK && data[0] % 33 < 32)
            for (size_t k = 0; k < n; k++)
                CHECK(out[k] < (1u << (data[0] % 33)));
    }
    return 0;
}
