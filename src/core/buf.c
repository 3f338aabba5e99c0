/* Capped growable buffer; see buf.h. */
#include "core/buf.h"

#include "core/swar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_buf_init(sl_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void sl_buf_cleanup(sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void sl_buf_reset(sl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

sl_err sl_buf_reserve(sl_buf *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra)
        return SL_ERR_TOO_LARGE;
    size_t need = b->len + extra + 1; /* + NUL */
    if (need <= b->alloc)
        return SL_OK;
    size_t grow = b->alloc ? b->alloc : 256;
    while (grow < need)
        grow *= 2;
    if (grow > b->cap + 1)
        grow = b->cap + 1;
    char *p = realloc(b->data, grow);
    if (!p)
        return SL_ERR_NOMEM;
    b->data = p;
    b->alloc = grow;
    return SL_OK;
}

sl_err sl_buf_append_grow(sl_buf *b, const void *data, size_t len)
{
    sl_err err = sl_buf_reserve(b, len);
    if (err)
        return err;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return SL_OK;
}

sl_err sl_buf_append_str(sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}

/* Formats straight into the free space when the text fits (one vsnprintf, the usual case
 * on a reused buffer); otherwise measures, grows and formats again. */
sl_err sl_buf_appendf(sl_buf *b, const char *fmt, ...)
{
    size_t room = b->alloc - b->len; /* NUL included; 0 before the first append */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (room)
            b->data[b->len] = '\0';
        return SL_ERR_INVALID;
    }
    if ((size_t)n < room) { /* alloc is at most cap + 1, so this is within the cap */
        b->len += (size_t)n;
        return SL_OK;
    }
    if (room)
        b->data[b->len] = '\0'; /* undo the truncated attempt */
    sl_err err = sl_buf_reserve(b, (size_t)n);
    if (err)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SL_OK;
}

/* Bytes a JSON string must escape: control characters, '"' and '\\'. Words of clean
 * bytes are skipped eight at a time (core/swar.h) and the table tests the bytes of a word
 * that holds one: this writer is the largest single cost of normalizing an event. */
static const unsigned char json_escape_needed[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
    [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
    [0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
    [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1,  ['\\'] = 1,
};

static inline bool word_needs_escape(uint64_t w)
{
    return (sl_swar_has_below(w, 0x20) | sl_swar_has_byte(w, '"') | sl_swar_has_byte(w, '\\')) != 0;
}

/* The length of the longest prefix of s that needs no escape. A string of eight bytes or
 * more ends with one test of its last eight, which overlap bytes already found clean, so
 * the test stays exact; only a word that holds a byte to escape, or a string shorter
 * than a word, is looked at byte by byte. */
static size_t clean_prefix(const char *s, size_t len)
{
    size_t i = 0;
    while (i + 8 <= len && !word_needs_escape(sl_swar_load(s + i)))
        i += 8;
    if (i + 8 > len && len >= 8 && !word_needs_escape(sl_swar_load(s + len - 8)))
        return len;
    while (i < len && !json_escape_needed[(unsigned char)s[i]])
        i++;
    return i;
}

/* The escape of c (a byte json_escape_needed marks) into esc; returns its length. */
static size_t json_escape(unsigned char c, char esc[6])
{
    static const char hex[] = "0123456789abcdef";
    static const char short_form[256] = {
        ['"'] = '"',  ['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r',
        ['\t'] = 't', ['\b'] = 'b',  ['\f'] = 'f',
    };
    esc[0] = '\\';
    if (short_form[c]) {
        esc[1] = short_form[c];
        return 2;
    }
    memcpy(esc + 1, "u00", 3);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    return 6;
}

sl_err sl_buf_append_json_string(sl_buf *b, const char *s, size_t len)
{
    /* Room for the common case (nothing to escape): quotes and bytes, one copy. */
    sl_err err = sl_buf_reserve(b, len + 2);
    if (err)
        return err;
    size_t clean = clean_prefix(s, len);
    b->data[b->len] = '"';
    if (clean) /* s may be NULL when len is 0 */
        memcpy(b->data + b->len + 1, s, clean);
    b->len += clean + 1;
    for (size_t i = clean; i < len;) {
        char esc[6];
        size_t n = json_escape((unsigned char)s[i], esc);
        i++;
        size_t run = clean_prefix(s + i, len - i);
        if ((err = sl_buf_append(b, esc, n)) || (err = sl_buf_append(b, s + i, run)))
            return err;
        i += run;
    }
    return sl_buf_append_char(b, '"');
}

char *sl_buf_take(sl_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}
