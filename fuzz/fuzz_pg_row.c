/* libFuzzer target for the pg sink's record reader: any bytes go in as a log record
 * value, and the COPY row that comes out must hold the text format's invariants: exactly
 * 18 columns separated by tabs, one newline at the end and none inside, no lone backslash
 * before an unknown escape. A refused record must leave the buffer as it was. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_buf b, text;
    sl_buf_init(&b, 1u << 20);
    sl_buf_init(&text, 1u << 20);
    sl__pg_keys keys;
    sl_log_message m = {.partition = 1,
                        .offset = 2,
                        .timestamp_ms = 1700000000000,
                        .value = (const char *)data,
                        .value_len = size};
    int32_t day;
    char eb[256];
    sl_err err = sl__pg_row_append(&b, &text, &m, &keys, &day, eb, sizeof eb);
    if (err) {
        CHECK(err == SL_ERR_INVALID || err == SL_ERR_TOO_LARGE);
        CHECK(b.len == 0 && text.len == 0 && eb[0] != '\0');
    } else {
        CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
        CHECK(memchr(b.data, '\n', b.len - 1) == NULL && memchr(b.data, '\r', b.len) == NULL);
        size_t tabs = 0;
        for (size_t i = 0; i + 1 < b.len; i++) {
            if (b.data[i] == '\t')
                tabs++;
            if (b.data[i] == '\\') {
                CHECK(strchr("\\ntrN", b.data[i + 1]) != NULL);
                i++;
            }
        }
        CHECK(tabs == 17);
        /* every key lies inside the key texts; the id is never null */
        const sl__pg_text *k = &keys.event_id;
        for (size_t i = 0; i < sizeof keys / sizeof keys.event_id; i++)
            CHECK(k[i].len == SL__PG_NULL || k[i].off + k[i].len <= text.len);
        CHECK(keys.event_id.len != SL__PG_NULL && keys.timestamp.len != SL__PG_NULL);
    }
    sl_buf_cleanup(&b);
    sl_buf_cleanup(&text);
    return 0;
}
