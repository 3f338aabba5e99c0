/* libFuzzer target for the embedded log's write-ahead log frame decoder, the parser that
 * recovery runs over segment files a crash may have left torn or half stale: any bytes
 * are read as a segment, frame after frame from the sequence number of the first header,
 * as replay does. Each decoded frame must lie within the input, re-encode to exactly its
 * bytes, and decoding must stop at the first frame that does not. abort() marks a broken
 * invariant. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t lsn = 0;
    if (size >= SL__LOG_WAL_HDR)
        for (int i = 7; i >= 0; i--)
            lsn = lsn << 8 | data[16 + i];
    size_t pos = 0;
    unsigned char *copy = NULL;
    for (;;) {
        sl__log_wal_frame f;
        size_t n = sl__log_wal_decode(data + pos, size - pos, lsn, &f);
        if (n == 0)
            break;
        CHECK(n >= SL__LOG_WAL_HDR && n <= size - pos);
        CHECK(n == SL__LOG_WAL_HDR + (size_t)f.key_len + f.value_len);
        CHECK(f.lsn == lsn);
        CHECK((const uint8_t *)f.key == data + pos + SL__LOG_WAL_HDR);
        CHECK((const uint8_t *)f.value + f.value_len == data + pos + n);
        unsigned char *c = realloc(copy, n);
        CHECK(c != NULL);
        copy = c;
        CHECK(sl__log_wal_encode(copy, &f) == n);
        CHECK(memcmp(copy, data + pos, n) == 0);
        pos += n;
        lsn++;
    }
    free(copy);
    return 0;
}
