/* The Thrift compact protocol (Apache Thrift's TCompactProtocol), the encoding of every
 * Parquet footer and page header: an encoder into a capped sl_buf, and a decoder over
 * untrusted bytes with bounds checks on every read and a nesting limit. Also the bump
 * arena the metadata decoder allocates from. */
#include "parquet/parquet_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct sl__pq_arena_block {
    sl__pq_arena_block *next;
    size_t size, used;
    max_align_t data[]; /* size bytes */
};

#define ARENA_BLOCK_MIN (64 * 1024)

void sl__pq_arena_init(sl__pq_arena *a, size_t cap)
{
    a->head = NULL;
    a->used = 0;
    a->cap = cap;
}

void sl__pq_arena_cleanup(sl__pq_arena *a)
{
    while (a->head) {
        sl__pq_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->used = 0;
}

void *sl__pq_arena_alloc(sl__pq_arena *a, size_t size)
{
    const size_t align = sizeof(max_align_t);
    if (size > a->cap)
        return NULL;
    size = (size + align - 1) & ~(align - 1);
    sl__pq_arena_block *b = a->head;
    if (!b || b->size - b->used < size) {
        size_t bsize = size > ARENA_BLOCK_MIN ? size : ARENA_BLOCK_MIN;
        if (bsize + sizeof *b > a->cap - a->used) {
            bsize = size; /* a small last block may still fit under the cap */
            if (bsize + sizeof *b > a->cap - a->used)
                return NULL;
        }
        b = malloc(sizeof *b + bsize);
        if (!b)
            return NULL;
        b->size = bsize;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->used += sizeof *b + bsize;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

/* ---- encoder ---- */

static void put_byte(sl__tc_enc *enc, uint8_t c)
{
    if (!enc->err)
        enc->err = sl_buf_append(enc->out, &c, 1);
}

static void put_varint(sl__tc_enc *enc, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    if (!enc->err)
        enc->err = sl_buf_append(enc->out, tmp, n);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void put_field(sl__tc_enc *enc, int16_t id, int type)
{
    if (enc->depth <= 0) {
        enc->err = enc->err ? enc->err : SL_ERR_INTERNAL;
        return;
    }
    int16_t *last = &enc->last[enc->depth - 1];
    int delta = id - *last;
    if (delta > 0 && delta <= 15) {
        put_byte(enc, (uint8_t)(delta << 4 | type));
    } else {
        put_byte(enc, (uint8_t)type);
        put_varint(enc, zigzag(id));
    }
    *last = id;
}

void sl__tc_enc_init(sl__tc_enc *enc, sl_buf *out)
{
    enc->out = out;
    enc->depth = 0;
    enc->err = SL_OK;
}

void sl__tc_struct_begin(sl__tc_enc *enc)
{
    if (enc->depth >= SL__TC_MAX_DEPTH) {
        enc->err = enc->err ? enc->err : SL_ERR_INTERNAL;
        return;
    }
    enc->last[enc->depth++] = 0;
}

void sl__tc_struct_end(sl__tc_enc *enc)
{
    put_byte(enc, SL__TC_STOP);
    if (enc->depth > 0)
        enc->depth--;
}

void sl__tc_field_struct(sl__tc_enc *enc, int16_t id)
{
    put_field(enc, id, SL__TC_STRUCT);
    sl__tc_struct_begin(enc);
}

void sl__tc_field_bool(sl__tc_enc *enc, int16_t id, bool v)
{
    put_field(enc, id, v ? SL__TC_TRUE : SL__TC_FALSE);
}

void sl__tc_field_i32(sl__tc_enc *enc, int16_t id, int32_t v)
{
    put_field(enc, id, SL__TC_I32);
    put_varint(enc, zigzag(v));
}

void sl__tc_field_i64(sl__tc_enc *enc, int16_t id, int64_t v)
{
    put_field(enc, id, SL__TC_I64);
    put_varint(enc, zigzag(v));
}

void sl__tc_binary(sl__tc_enc *enc, const void *p, size_t n)
{
    put_varint(enc, n);
    if (!enc->err)
        enc->err = sl_buf_append(enc->out, p, n);
}

void sl__tc_field_binary(sl__tc_enc *enc, int16_t id, const void *p, size_t n)
{
    put_field(enc, id, SL__TC_BINARY);
    sl__tc_binary(enc, p, n);
}

void sl__tc_field_list(sl__tc_enc *enc, int16_t id, int elem_type, size_t n)
{
    put_field(enc, id, SL__TC_LIST);
    if (n < 15) {
        put_byte(enc, (uint8_t)(n << 4 | (size_t)elem_type));
    } else {
        put_byte(enc, (uint8_t)(0xf0 | elem_type));
        put_varint(enc, n);
    }
}

void sl__tc_i32(sl__tc_enc *enc, int32_t v)
{
    put_varint(enc, zigzag(v));
}

/* ---- decoder ---- */

bool sl__tc_fail(sl__tc_dec *dec, const char *where)
{
    if (!dec->err) {
        dec->err = SL_ERR_CORRUPT;
        dec->where = where;
    }
    return false;
}

void sl__tc_dec_init(sl__tc_dec *dec, const void *p, size_t n)
{
    dec->start = dec->p = p;
    dec->end = dec->p + n;
    dec->depth = 0;
    dec->err = SL_OK;
    dec->where = NULL;
}

static bool get_byte(sl__tc_dec *dec, uint8_t *c)
{
    if (dec->err)
        return false;
    if (dec->p >= dec->end)
        return sl__tc_fail(dec, "input ends inside a value");
    *c = *dec->p++;
    return true;
}

static bool get_varint(sl__tc_dec *dec, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint8_t c;
        if (!get_byte(dec, &c))
            return false;
        if (shift == 63 && c > 1)
            return sl__tc_fail(dec, "varint longer than 64 bits");
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return true;
        }
    }
    return sl__tc_fail(dec, "varint longer than 64 bits");
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

bool sl__tc_struct_enter(sl__tc_dec *dec)
{
    if (dec->err)
        return false;
    if (dec->depth >= SL__TC_MAX_DEPTH)
        return sl__tc_fail(dec, "structures nested too deeply");
    dec->last[dec->depth++] = 0;
    return true;
}

void sl__tc_struct_leave(sl__tc_dec *dec)
{
    if (dec->depth > 0)
        dec->depth--;
}

bool sl__tc_next_field(sl__tc_dec *dec, int *type, int16_t *id)
{
    uint8_t c;
    if (dec->depth <= 0)
        return sl__tc_fail(dec, "field outside a structure");
    if (!get_byte(dec, &c))
        return false;
    if (c == SL__TC_STOP)
        return false;
    *type = c & 0x0f;
    if (*type > SL__TC_STRUCT || *type == SL__TC_STOP)
        return sl__tc_fail(dec, "unknown field type");
    int16_t *last = &dec->last[dec->depth - 1];
    if (c >> 4) {
        int v = *last + (c >> 4);
        if (v > INT16_MAX)
            return sl__tc_fail(dec, "field id out of range");
        *id = (int16_t)v;
    } else {
        uint64_t raw;
        if (!get_varint(dec, &raw))
            return false;
        int64_t v = unzigzag(raw);
        if (v < INT16_MIN || v > INT16_MAX)
            return sl__tc_fail(dec, "field id out of range");
        *id = (int16_t)v;
    }
    *last = *id;
    return true;
}

bool sl__tc_read_i64(sl__tc_dec *dec, int type, int64_t *v)
{
    if (type == SL__TC_BYTE) {
        uint8_t c;
        if (!get_byte(dec, &c))
            return false;
        *v = (int8_t)c;
        return true;
    }
    if (type != SL__TC_I16 && type != SL__TC_I32 && type != SL__TC_I64)
        return sl__tc_fail(dec, "expected an integer");
    uint64_t raw;
    if (!get_varint(dec, &raw))
        return false;
    *v = unzigzag(raw);
    return true;
}

bool sl__tc_read_i32(sl__tc_dec *dec, int type, int32_t *v)
{
    int64_t w;
    if (type == SL__TC_I64)
        return sl__tc_fail(dec, "expected a 32-bit integer");
    if (!sl__tc_read_i64(dec, type, &w))
        return false;
    if (w < INT32_MIN || w > INT32_MAX)
        return sl__tc_fail(dec, "32-bit integer out of range");
    *v = (int32_t)w;
    return true;
}

bool sl__tc_read_bool(sl__tc_dec *dec, int type, bool *v)
{
    if (type == SL__TC_TRUE || type == SL__TC_FALSE) { /* a field: the value is its type */
        *v = type == SL__TC_TRUE;
        return true;
    }
    return sl__tc_fail(dec, "expected a boolean");
}

bool sl__tc_read_binary(sl__tc_dec *dec, int type, const uint8_t **p, size_t *n)
{
    uint64_t len;
    if (type != SL__TC_BINARY)
        return sl__tc_fail(dec, "expected a binary");
    if (!get_varint(dec, &len))
        return false;
    if (len > (uint64_t)(dec->end - dec->p))
        return sl__tc_fail(dec, "binary longer than the input");
    *p = dec->p;
    *n = (size_t)len;
    dec->p += len;
    return true;
}

bool sl__tc_read_list(sl__tc_dec *dec, int type, int *elem_type, size_t *n)
{
    uint8_t c;
    uint64_t len;
    if (type != SL__TC_LIST && type != SL__TC_SET)
        return sl__tc_fail(dec, "expected a list");
    if (!get_byte(dec, &c))
        return false;
    *elem_type = c & 0x0f;
    len = c >> 4;
    if (len == 15 && !get_varint(dec, &len))
        return false;
    if (*elem_type == SL__TC_STOP || *elem_type > SL__TC_STRUCT)
        return sl__tc_fail(dec, "unknown list element type");
    if (len > (uint64_t)(dec->end - dec->p))
        return sl__tc_fail(dec, "list longer than the input");
    *n = (size_t)len;
    return true;
}

/* A list element of type t: booleans are one byte each there. */
static bool skip_value(sl__tc_dec *dec, int type, bool in_list);

static bool skip_struct(sl__tc_dec *dec)
{
    int type;
    int16_t id;
    if (!sl__tc_struct_enter(dec))
        return false;
    while (sl__tc_next_field(dec, &type, &id))
        if (!skip_value(dec, type, false))
            return false;
    sl__tc_struct_leave(dec);
    return !dec->err;
}

static bool skip_value(sl__tc_dec *dec, int type, bool in_list)
{
    uint8_t c;
    uint64_t raw;
    const uint8_t *bp;
    size_t n;
    int et;
    switch (type) {
    case SL__TC_TRUE:
    case SL__TC_FALSE:
        return in_list ? get_byte(dec, &c) : true;
    case SL__TC_BYTE:
        return get_byte(dec, &c);
    case SL__TC_I16:
    case SL__TC_I32:
    case SL__TC_I64:
        return get_varint(dec, &raw);
    case SL__TC_DOUBLE:
        if (dec->end - dec->p < 8)
            return sl__tc_fail(dec, "input ends inside a double");
        dec->p += 8;
        return true;
    case SL__TC_BINARY:
        return sl__tc_read_binary(dec, type, &bp, &n);
    case SL__TC_LIST:
    case SL__TC_SET:
        if (!sl__tc_read_list(dec, type, &et, &n) || !sl__tc_struct_enter(dec))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!skip_value(dec, et, true))
                return false;
        sl__tc_struct_leave(dec);
        return true;
    case SL__TC_MAP: {
        if (!get_varint(dec, &raw))
            return false;
        if (raw == 0)
            return true;
        if (raw > (uint64_t)(dec->end - dec->p))
            return sl__tc_fail(dec, "map longer than the input");
        if (!get_byte(dec, &c) || !sl__tc_struct_enter(dec))
            return false;
        int kt = c >> 4, vt = c & 0x0f;
        if (kt == SL__TC_STOP || kt > SL__TC_STRUCT || vt == SL__TC_STOP || vt > SL__TC_STRUCT)
            return sl__tc_fail(dec, "unknown map element type");
        for (uint64_t i = 0; i < raw; i++)
            if (!skip_value(dec, kt, true) || !skip_value(dec, vt, true))
                return false;
        sl__tc_struct_leave(dec);
        return true;
    }
    case SL__TC_STRUCT:
        return skip_struct(dec);
    default:
        return sl__tc_fail(dec, "unknown type");
    }
}

bool sl__tc_skip(sl__tc_dec *dec, int type)
{
    return skip_value(dec, type, false);
}
