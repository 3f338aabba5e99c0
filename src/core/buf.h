/* A growable byte buffer with a hard cap (curl's dynbuf): appends fail cleanly with
 * SL_ERR_TOO_LARGE past the cap instead of growing without bound. The contents are always
 * NUL-terminated (the NUL is not counted in len), so text can be used as a C string. */
#ifndef SL_CORE_BUF_H
#define SL_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/err.h"

typedef struct sl_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t alloc;
    size_t cap; /* hard limit on len */
} sl_buf;

void sl_buf_init(sl_buf *b, size_t cap);
void sl_buf_cleanup(sl_buf *b);
/* Empties the buffer and keeps its memory for reuse. */
void sl_buf_reset(sl_buf *b);

/* Appends that must first grow the buffer (or fail); the inline appends below call it. */
SL_MUST_CHECK sl_err sl_buf_append_grow(sl_buf *b, const void *data, size_t len);

/* Inline, as the sinks and the normalizer append a few bytes at a time, millions of times
 * a second: when there is room, a copy and no call. */
SL_MUST_CHECK static inline sl_err sl_buf_append(sl_buf *b, const void *data, size_t len)
{
    if (len >= b->alloc - b->len || len > b->cap - b->len) /* alloc 0: always grows */
        return sl_buf_append_grow(b, data, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return SL_OK;
}

SL_MUST_CHECK static inline sl_err sl_buf_append_char(sl_buf *b, char c)
{
    return sl_buf_append(b, &c, 1);
}

SL_MUST_CHECK sl_err sl_buf_append_str(sl_buf *b, const char *s);
SL_MUST_CHECK sl_err sl_buf_appendf(sl_buf *b, const char *fmt, ...) SL_PRINTF(2, 3);
/* Appends s as a JSON string literal, quotes included, escaping as RFC 8259 requires.
 * s must be valid UTF-8 (it is copied byte for byte apart from escapes). */
SL_MUST_CHECK sl_err sl_buf_append_json_string(sl_buf *b, const char *s, size_t len);
/* Makes room for `extra` more bytes without changing len. */
SL_MUST_CHECK sl_err sl_buf_reserve(sl_buf *b, size_t extra);
/* Hands the data to the caller (who frees it with free()) and resets the buffer. */
char *sl_buf_take(sl_buf *b, size_t *len);

#endif
