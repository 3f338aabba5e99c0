/* libFuzzer target for the embedded log's stored-value decoder (embedded_value.c), which
 * every reader of a partition DB runs over bytes from disk: a single record or a batch of
 * records. Any bytes are read as one value. Every decoded record must lie within the
 * input; a batch decoded to its end must account for every byte (headers, keys, values)
 * and re-encode to exactly the input; the header's byte count must match the records.
 * abort() marks a broken invariant. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl__log_value_iter it;
    if (!sl__log_value_open(data, size, &it))
        return 0;
    CHECK(it.count >= 1 && it.left == it.count);
    CHECK(it.batch ? it.count >= 2 : it.count == 1);
    const char *lo = (const char *)data, *hi = lo + size;
    wrec *recs = calloc(it.count, sizeof *recs);
    const wrec **ptrs = calloc(it.count, sizeof *ptrs);
    CHECK(recs && ptrs);
    uint64_t bytes = 0;
    uint32_t n = 0;
    sl__log_value_rec rec;
    while (sl__log_value_next(&it, &rec)) {
        CHECK(n < it.count);
        CHECK(rec.key >= lo && rec.key + rec.key_len <= hi);
        CHECK(rec.value == rec.key + rec.key_len && rec.value + rec.value_len <= hi);
        recs[n] = (wrec){
            .key = rec.key, .key_len = rec.key_len, .value = rec.value, .value_len = rec.value_len};
        ptrs[n] = &recs[n];
        bytes += rec.key_len + rec.value_len;
        n++;
    }
    CHECK(n + it.left == it.count);
    if (it.left == 0) {
        CHECK(bytes == it.bytes);
        if (it.batch) {
            CHECK(sl__log_value_batch_size(ptrs, n) == size);
            char *copy = malloc(size);
            CHECK(copy != NULL);
            sl__log_value_encode_batch(copy, it.ts, ptrs, n);
            CHECK(memcmp(copy, data, size) == 0);
            free(copy);
        }
    }
    free(ptrs);
    free(recs);
    return 0;
}
