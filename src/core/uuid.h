/* UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter that keeps ids
 * generated in the same millisecond in order, then random bits. Sortable by creation time,
 * unique across processes through the random part. */
#ifndef SL_CORE_UUID_H
#define SL_CORE_UUID_H

#include <stdbool.h>
#include <stddef.h>

#define SL_UUID_STR_LEN 36

/* Writes a new UUIDv7 in canonical lowercase form plus NUL. @thread any (thread-safe);
 * ids from one process are strictly increasing. */
void sl_uuid_v7(char out[SL_UUID_STR_LEN + 1]);

/* Whether s is a UUID in canonical 8-4-4-4-12 hex form (any version, either case). */
bool sl_uuid_is_canonical(const char *s, size_t len);

#endif
