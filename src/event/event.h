/* The event: parsing an ingest request body (one object, an array, or {"batch": [...]})
 * into validated, enriched, normalized events, each serialized as the JSON that goes into
 * the log. Validation follows the event table in DESIGN.md; every rejection names the
 * field and the rule. Nothing here does I/O: the HTTP layer decompresses the body first. */
#ifndef SL_EVENT_EVENT_H
#define SL_EVENT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct sl_event_limits {
    size_t max_event_bytes; /* normalized JSON of one event; default 32 KiB */
    unsigned max_depth;     /* nesting of one event, its top object being level 1; default 16 */
    size_t max_keys;        /* keys in any one object of an event; default 256 */
    size_t max_batch;       /* events in one request; default 1000 */
} sl_event_limits;

void sl_event_limits_default(sl_event_limits *lim);

/* What the server knows about the request. Pointers are borrowed for the call. */
typedef struct sl_event_context {
    int64_t received_at_us;
    const char *user_agent; /* the User-Agent header, or NULL */
} sl_event_context;

/* Why an event or a request was refused; names are stable metric labels. */
typedef enum sl_event_reason {
    SL_REASON_MALFORMED_JSON,  /* "malformed_json" */
    SL_REASON_INVALID_UTF8,    /* "invalid_utf8" */
    SL_REASON_NOT_OBJECT,      /* "not_object": an event that is not a JSON object */
    SL_REASON_MISSING_FIELD,   /* "missing_field": required field absent, null or "" */
    SL_REASON_WRONG_TYPE,      /* "wrong_type" */
    SL_REASON_TOO_LONG,        /* "too_long": a string over its length limit */
    SL_REASON_INVALID_VALUE,   /* "invalid_value": e.g. a timestamp that does not parse */
    SL_REASON_TOO_DEEP,        /* "too_deep" */
    SL_REASON_TOO_MANY_KEYS,   /* "too_many_keys" */
    SL_REASON_TOO_LARGE,       /* "too_large": one event over max_event_bytes */
    SL_REASON_DUPLICATE_FIELD, /* "duplicate_field": a key twice, or top-level vs metadata */
    SL_REASON_EMPTY_BATCH,     /* "empty_batch" */
    SL_REASON_TOO_MANY_EVENTS, /* "too_many_events" */
    SL_REASON__COUNT
} sl_event_reason;

const char *sl_event_reason_name(sl_event_reason reason);

#define SL_EVENT_ID_MAX 100 /* characters (code points), as the other length limits */
/* Bytes of event_id in sl_event_entry: 100 characters of up to 4 UTF-8 bytes, plus NUL. */
#define SL_EVENT_ID_SIZE     (4 * SL_EVENT_ID_MAX + 1)
#define SL_EVENT_MESSAGE_MAX 256

/* One accepted event. Offsets point into sl_event_batch.data. */
typedef struct sl_event_entry {
    size_t index;                    /* position in the request (0 for a single object) */
    size_t json_off, json_len;       /* the normalized event JSON */
    size_t key_off, key_len;         /* its session_id, the log's partition key */
    char event_id[SL_EVENT_ID_SIZE]; /* NUL-terminated UTF-8 */
} sl_event_entry;

/* One refused event of a request. */
typedef struct sl_event_rejection {
    size_t index;
    sl_event_reason reason;
    char message[SL_EVENT_MESSAGE_MAX]; /* e.g. `field "channel" is required` */
} sl_event_rejection;

typedef struct sl_event_batch {
    sl_event_entry *accepted;
    size_t n_accepted;
    sl_event_rejection *rejected;
    size_t n_rejected;
    sl_buf data;     /* normalized JSON and keys of the accepted events */
    bool is_batch;   /* the body was an array or {"batch": [...]}, not one object */
    size_t n_events; /* events the request held: n_accepted + n_rejected */
    /* private: allocated lengths of accepted and rejected, kept across resets */
    size_t accepted_cap, rejected_cap;
} sl_event_batch;

void sl_event_batch_init(sl_event_batch *batch);
/* Empties the batch, keeping its memory for the next request. */
void sl_event_batch_reset(sl_event_batch *batch);
void sl_event_batch_cleanup(sl_event_batch *batch);

/* Parses a request body and validates, enriches and normalizes every event in it. The
 * batch is emptied first (keeping its memory).
 *
 * SL_OK: the body had a recognized shape; each event is in batch->accepted or
 *   batch->rejected (possibly all rejected; a single-object body gives one entry).
 * SL_ERR_INVALID: the request as a whole is refused (malformed JSON, invalid UTF-8,
 *   duplicate keys, nesting beyond what can be parsed, neither an object nor an array,
 *   an empty batch, a bad {"batch": ...} envelope); *reason and errbuf say why, and the
 *   batch holds nothing.
 * SL_ERR_TOO_LARGE: more than max_batch events (*reason SL_REASON_TOO_MANY_EVENTS).
 * SL_ERR_NOMEM.
 *
 * body need not be NUL-terminated. @thread any; batches are not shared between threads. */
SL_MUST_CHECK sl_err sl_event_parse_body(const char *body, size_t len, const sl_event_context *ctx,
                                         const sl_event_limits *lim, sl_event_batch *batch,
                                         sl_event_reason *reason, char *errbuf, size_t errlen);

/* ---- Reading a record back from the log (for the sinks) ---- */

/* A top-level field of a record as text: a string unescaped; a number, true or false as
 * the normalized event writes them; an object or array as compact JSON. */
typedef enum sl_event_field_kind {
    SL_EVENT_FIELD_ABSENT, /* not in the record, or null: text is NULL */
    SL_EVENT_FIELD_STRING,
    SL_EVENT_FIELD_OTHER,
} sl_event_field_kind;

typedef struct sl_event_field {
    sl_event_field_kind kind;
    const char *text; /* a string's bytes */
    size_t off;       /* any other value's text, in scratch */
    size_t len;
} sl_event_field;

#define SL_EVENT_FIELDS_MAX 64

/* Parses a record (any bytes: another producer may share the log) that must be a JSON
 * object and reads the fields names[0..n) (n at most SL_EVENT_FIELDS_MAX) into out[0..n).
 * Strings point into the calling thread's parser, valid until its next call; other texts
 * are appended to scratch and located by off (their text is NULL). SL_ERR_INVALID (errbuf: "record
 * is not JSON: ...", or "record is not a JSON object") for anything else, including a key twice in
 * one object, \u0000 in a string and an integer over 64 bits. @thread any */
SL_MUST_CHECK sl_err sl_event_record_fields(const char *json, size_t len, const char *const *names,
                                            size_t n, sl_event_field *out, sl_buf *scratch,
                                            char *errbuf, size_t errlen);

#endif
