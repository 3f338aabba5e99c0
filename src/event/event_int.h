/* Internals shared by the event module's files: body.c splits a request into events,
 * validate.c applies the field rules of one event and fills an sl__event, normalize.c
 * writes that sl__event as the normalized JSON. Not for use outside src/event/. */
#ifndef SL_EVENT_EVENT_INT_H
#define SL_EVENT_EVENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/time.h"
#include "event/event.h"
#include "event/json.h"

/* The string fields of the normalized event, in output order. */
typedef enum sl__event_str {
    SL__STR_CHANNEL,
    SL__STR_PLATFORM,
    SL__STR_EVENT_TYPE,
    SL__STR_EVENT_CATEGORY,
    SL__STR_RESOURCE_ID,
    SL__STR_RESOURCE_TITLE,
    SL__STR_INTERACTION_TARGET,
    SL__STR_SESSION_ID,
    SL__STR_USER_ID,
    SL__STR_DEVICE_ID,
    SL__STR_USER_AGENT,
    SL__STR_CLIENT_VERSION,
    SL__STR_INTERACTION_TEXT,
    SL__STR_COUNT
} sl__event_str;

/* What holds for every event of one request. */
typedef struct sl__event_request {
    const sl_event_limits *lim;
    int64_t received_at_us;
    char received_at[SL_TIME_RFC3339_MAX]; /* formatted once per request */
    size_t received_at_len;
    const char *user_agent; /* the header, or NULL */
    size_t user_agent_len;
    bool user_agent_utf8; /* whether the header is valid UTF-8 (else it is repaired) */
    bool has_sent_at;     /* the envelope's sent_at, for events without their own */
    int64_t sent_at_us;
} sl__event_request;

/* One event that passed validation. Pointers borrow from the parsed document (json.h). */
typedef struct sl__event {
    sl__json obj;
    const char *str[SL__STR_COUNT]; /* NULL: null in the output */
    size_t len[SL__STR_COUNT];
    bool user_agent_from_header; /* str[USER_AGENT] is the header, not from the body */
    const char *event_id;        /* the client's id, or NULL to assign a UUIDv7 */
    size_t event_id_len;
    int64_t timestamp_us;
    sl__json value;            /* interaction_value, a number, or none */
    sl__json metadata;         /* an object, or none */
    sl__json message_id_extra; /* message_id to keep in metadata (event_id won), or none */
    size_t n_unknown;          /* unknown top-level fields to fold into metadata */
} sl__event;

/* Field names as the client may send them; SL__KEY_UNKNOWN for the rest. */
typedef enum sl__event_key {
    SL__KEY_EVENT_ID = SL__STR_COUNT,
    SL__KEY_MESSAGE_ID,
    SL__KEY_TIMESTAMP,
    SL__KEY_SENT_AT,
    SL__KEY_INTERACTION_VALUE,
    SL__KEY_METADATA,
    SL__KEY_COUNT,
    SL__KEY_UNKNOWN = SL__KEY_COUNT
} sl__event_key;

/* Classifies a top-level key of an event: an sl__event_str, an sl__event_key, or
 * SL__KEY_UNKNOWN. */
int sl__event_key_lookup(const char *key, size_t len);

/* Applies the field rules to one event object. On a broken rule returns false with the
 * reason and message in *rej (its index is left to the caller). */
bool sl__event_validate(sl__json obj, const sl__event_request *req, sl__event *ev,
                        sl_event_rejection *rej);

/* Appends ev's normalized JSON, then its session_id, to data and fills *entry (all but
 * index). An event over max_event_bytes is refused: *accepted = false, *rej says why and
 * data is as it was. Other errors (SL_ERR_NOMEM) leave data as it was too. */
SL_MUST_CHECK sl_err sl__event_normalize(const sl__event *ev, const sl__event_request *req,
                                         sl_buf *data, sl_event_entry *entry,
                                         sl_event_rejection *rej, bool *accepted);

/* Parses a timestamp value (RFC 3339 string or epoch milliseconds) that must lie within
 * 1970-01-01 .. 9999-12-31; on failure fills *rej naming `field`. */
bool sl__event_parse_time(sl__json v, const char *field, int64_t *us, sl_event_rejection *rej);

/* Formats a message into an sl_event_rejection-sized buffer; a truncated message is cut
 * at a UTF-8 character boundary so it stays valid text. */
void sl__event_msg(char *msg, size_t size, const char *fmt, ...) SL_PRINTF(3, 4);
void sl__event_reject(sl_event_rejection *rej, sl_event_reason reason, const char *fmt, ...)
    SL_PRINTF(3, 4);

/* Writes s as a quoted, JSON-escaped string of at most SL__QUOTE_CHARS characters
 * (followed by "..." when cut) into out; always NUL-terminates. s must be valid UTF-8. */
#define SL__QUOTE_CHARS 40
#define SL__QUOTE_SIZE  (SL__QUOTE_CHARS * 6 + 8)
void sl__event_quote(char out[SL__QUOTE_SIZE], const char *s, size_t len);

/* The JSON type of v as a user reads it: "object", "array", "string", "number",
 * "boolean" or "null". */
const char *sl__event_type_name(sl__json v);

/* Writes d in the shortest "%.*g" form (15 to 17 digits) that reads back as the same
 * double, with '.' as the decimal point whatever the locale; returns its length. */
#define SL__DOUBLE_SIZE 32
size_t sl__event_format_double(char out[SL__DOUBLE_SIZE], double d);

/* Appends s (any bytes) as a JSON string, replacing invalid UTF-8 with U+FFFD. */
SL_MUST_CHECK sl_err sl__event_append_lossy(sl_buf *b, const char *s, size_t len);

/* Whether body may hold "\u0000" (sl__json_check then looks for NUL in strings). */
bool sl__event_may_have_nul(const char *body, size_t len);

/* Appends any JSON value, compact, with the fixed fields' string and number writers
 * (normalize.c). Its nesting must have been checked. */
SL_MUST_CHECK sl_err sl__event_append_json(sl_buf *b, sl__json v);

/* Whether s[0..len) is valid UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
bool sl__event_utf8_valid(const char *s, size_t len);

#endif
