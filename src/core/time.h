/* Clocks and RFC 3339 timestamps. Times are int64 microseconds since the Unix epoch, UTC,
 * everywhere in sluice (the Parquet and PostgreSQL representation). */
#ifndef SL_CORE_TIME_H
#define SL_CORE_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* "2024-01-15T10:30:00.123456Z" is 27 characters; room for the NUL and a spare. */
#define SL_TIME_RFC3339_MAX 32

/* Wall-clock time in microseconds since the epoch. */
int64_t sl_time_now_us(void);
/* Monotonic time in nanoseconds, for durations. */
int64_t sl_time_mono_ns(void);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (RFC 3339; 't' or ' ' also
 * separate date and time, 'z' is accepted; a fraction of 1 to 9 digits is truncated to
 * microseconds; years 0001-9999; leap second 60 is folded into the next second). The
 * input is not NUL-terminated. SL_ERR_INVALID on anything else, with no side effect. */
SL_MUST_CHECK sl_err sl_time_parse_rfc3339(const char *s, size_t len, int64_t *us_out);

/* Formats us as RFC 3339 UTC with a 'Z': milliseconds when the value is whole
 * milliseconds ("2024-01-15T10:30:00.123Z", as JavaScript's toISOString), microseconds
 * otherwise. Returns the length written (excluding the NUL). us must be within years
 * 0001-9999. */
size_t sl_time_format_rfc3339(int64_t us, char out[SL_TIME_RFC3339_MAX]);

#endif
