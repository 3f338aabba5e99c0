/* libFuzzer target for the Delta log-line parser and replay: the input is applied as a
 * commit (after a valid version 0 when its first byte is even, as version 0 itself
 * otherwise), then once more as the next version. Whatever is accepted must leave the
 * state's invariants true: every active file found through the index, counts that add up.
 * abort() marks a broken invariant. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta/delta_int.h"
#include "fuzz.h"

static const char base[] =
    "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n"
    "{\"metaData\":{\"id\":\"t\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
    "\"schemaString\":\"{}\",\"partitionColumns\":[\"d\"],\"configuration\":{}}}\n"
    "{\"add\":{\"path\":\"d=1/a\",\"partitionValues\":{\"d\":\"1\"},\"size\":1,"
    "\"modificationTime\":1,\"dataChange\":true,\"stats\":\"{\\\"numRecords\\\":3}\"}}\n";

static void check_state(const sl__delta_state *st)
{
    int64_t rows = 0;
    uint64_t without = 0;
    for (size_t i = 0; i < st->n_files; i++) {
        const sl_delta_file *f = &st->files[i];
        CHECK(f->path != NULL);
        if (f->num_records < 0)
            without++;
        else
            rows += f->num_records;
        /* The index finds the file at its own position. */
        size_t mask = st->n_slots - 1, k = st->hashes[i] & mask;
        while (st->slots[k] && st->slots[k] != i + 1)
            k = (k + 1) & mask;
        CHECK(st->slots[k] == i + 1);
    }
    size_t used = 0;
    for (size_t k = 0; k < st->n_slots; k++)
        used += st->slots[k] != 0;
    CHECK(used == st->n_files);
    CHECK(without == st->files_without_stats);
    CHECK(rows == st->rows_with_stats);
    CHECK(st->last.files_total == st->n_files);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char eb[512];
    sl__delta_state st;
    sl__delta_state_init(&st);
    bool with_base = size > 0 && (data[0] & 1) == 0;
    int64_t v = 0;
    if (with_base) {
        CHECK(sl__delta_state_apply(&st, v++, base, sizeof base - 1, eb, sizeof eb) == SL_OK);
        check_state(&st);
    }
    for (int round = 0; round < 2; round++) {
        eb[0] = '\0';
        sl_err err = sl__delta_state_apply(&st, v++, (const char *)data, size, eb, sizeof eb);
        if (err) {
            CHECK(eb[0] != '\0' || err == SL_ERR_NOMEM);
            break;
        }
        check_state(&st);
    }
    sl__delta_state_cleanup(&st);
    return 0;
}
