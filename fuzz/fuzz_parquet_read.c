/* libFuzzer target for sluice's Parquet reader (src/parquet/reader.c): any bytes go in as
 * a whole file; when the footer opens, every column chunk of every row group is decoded
 * under a small memory cap. Whatever decodes must hold together: levels within their
 * maxima, a value exactly where the definition level is the maximum, bytes inside the
 * input or the reader's memory (ASan checks the reads). abort() marks a broken invariant. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "parquet/parquet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    sl_pq_reader_t *pr;
    sl_pq_reader_options opts;
    sl_pq_reader_options_default(&opts);
    opts.max_memory = 8 << 20;
    if (sl_pq_reader_open(data, size, &opts, &pr, err, sizeof err) != SL_OK)
        return 0;
    for (size_t g = 0; g < sl_pq_reader_row_groups(pr) && g < 8; g++) {
        for (size_t i = 0; i < sl_pq_reader_leaves(pr) && i < 64; i++) {
            const sl_pq_leaf_info *li = sl_pq_reader_leaf(pr, i);
            sl_pq_column_data cd;
            CHECK(li && li->path && li->max_def >= li->max_rep);
            if (sl_pq_reader_read_column(pr, g, i, &cd, err, sizeof err) != SL_OK) {
                CHECK(err[0] != '\0');
                continue;
            }
            volatile size_t sink = 0;
            for (size_t k = 0; k < cd.n_slots; k++) {
                int r = cd.reps ? cd.reps[k] : 0, d = cd.defs ? cd.defs[k] : 0;
                CHECK(r <= li->max_rep && d <= li->max_def);
                CHECK(cd.values[k].is_null == (d < li->max_def));
                if (!cd.values[k].is_null && li->type == SL_PQ_BYTE_ARRAY)
                    for (size_t b = 0; b < cd.values[k].v.bytes.len; b++)
                        sink += (unsigned char)cd.values[k].v.bytes.ptr[b];
            }
            (void)sink;
        }
        sl_pq_reader_reset(pr);
    }
    sl_pq_reader_free(pr);
    return 0;
}
