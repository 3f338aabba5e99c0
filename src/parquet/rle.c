/* The RLE / bit-packed hybrid encoding of Parquet (definition and repetition levels,
 * dictionary indices), and a helper of the writer: UTF-8 validation of STRING/JSON
 * values. */
#include "parquet/parquet_int.h"

#include <string.h>

int sl__pq_bit_width(uint32_t max)
{
    return max ? 32 - __builtin_clz(max) : 0;
}

static inline uint32_t load(const void *vals, size_t es, size_t i)
{
    return es == 1 ? ((const uint8_t *)vals)[i] : ((const uint32_t *)vals)[i];
}

static inline uint8_t *put_varint(uint8_t *q, uint64_t v)
{
    while (v >= 0x80) {
        *q++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *q++ = (uint8_t)v;
    return q;
}

/* Worst case per 8 values: one RLE run (varint <= 10 bytes + value <= 4 bytes) and one
 * bit-packed group (bit_width bytes, plus its share of a header byte). */
size_t sl__pq_rle_bound(size_t n, int bit_width)
{
    return ((n + 7) / 8 + 2) * (size_t)(15 + bit_width);
}

/* Groups of 8 values are packed LSB first: bit_width bytes per group. */
static inline uint8_t *pack8(uint8_t *q, const void *vals, size_t es, size_t i, size_t n, int bw)
{
    uint64_t acc = 0;
    int bits = 0;
    for (size_t k = 0; k < 8; k++) {
        uint64_t v = i + k < n ? load(vals, es, i + k) : 0;
        acc |= v << bits;
        bits += bw;
        while (bits >= 8) {
            *q++ = (uint8_t)acc;
            acc >>= 8;
            bits -= 8;
        }
    }
    return q;
}

/* The encoder works at group boundaries: at position i, a run of >= 8 equal values is
 * emitted as one RLE run; otherwise one group of 8 joins the pending bit-packed run, whose
 * header (group count) is written in front once the run ends. es (element size) is a
 * constant in each caller, so the compiler specialises this per type. */
static inline __attribute__((always_inline)) sl_err rle_encode(const void *vals, size_t es,
                                                               size_t n, int bw, sl_buf *out)
{
    if (bw < 0 || bw > 32)
        return SL_ERR_INTERNAL;
    sl_err err = sl_buf_reserve(out, sl__pq_rle_bound(n, bw));
    if (err)
        return err;
    uint8_t *base = (uint8_t *)out->data + out->len;
    uint8_t *q = base;
    uint8_t *bp_hdr = NULL; /* where the pending bit-packed run's header byte is */
    size_t bp_groups = 0;
    int vbytes = (bw + 7) / 8;
    size_t i = 0;
    while (i < n) {
        uint32_t v = load(vals, es, i);
        size_t r = 1;
        while (i + r < n && load(vals, es, i + r) == v)
            r++;
        if (r >= 8 || i + r == n) {
            if (bp_hdr) { /* close the bit-packed run: 1-byte header, <= 63 groups */
                *bp_hdr = (uint8_t)(bp_groups << 1 | 1);
                bp_hdr = NULL;
            }
            q = put_varint(q, (uint64_t)r << 1);
            for (int b = 0; b < vbytes; b++)
                *q++ = (uint8_t)(v >> (8 * b));
            i += r;
            continue;
        }
        if (!bp_hdr) {
            bp_hdr = q++;
            bp_groups = 0;
        }
        q = pack8(q, vals, es, i, n, bw);
        i += 8;
        if (++bp_groups == 63) {
            *bp_hdr = (uint8_t)(bp_groups << 1 | 1);
            bp_hdr = NULL;
        }
    }
    if (bp_hdr)
        *bp_hdr = (uint8_t)(bp_groups << 1 | 1);
    out->len += (size_t)(q - base);
    out->data[out->len] = '\0';
    return SL_OK;
}

sl_err sl__pq_rle_encode_u8(const uint8_t *vals, size_t n, int bit_width, sl_buf *out)
{
    return rle_encode(vals, 1, n, bit_width, out);
}

sl_err sl__pq_rle_encode_u32(const uint32_t *vals, size_t n, int bit_width, sl_buf *out)
{
    return rle_encode(vals, 4, n, bit_width, out);
}

sl_err sl__pq_rle_decode(const void *p, size_t len, int bw, uint32_t *vals, size_t n)
{
    const uint8_t *s = p, *end = s + len;
    size_t got = 0;
    if (bw < 0 || bw > 32)
        return SL_ERR_CORRUPT;
    uint64_t mask = bw == 32 ? 0xffffffffu : ((uint64_t)1 << bw) - 1;
    while (got < n) {
        uint64_t h = 0;
        int shift = 0;
        for (;;) {
            if (s >= end || shift > 63)
                return SL_ERR_CORRUPT;
            uint8_t c = *s++;
            h |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80))
                break;
        }
        if (h & 1) { /* bit-packed: h >> 1 groups of 8 */
            uint64_t groups = h >> 1;
            if (groups == 0 || groups > (uint64_t)(end - s) + 1 ||
                (uint64_t)bw * groups > (uint64_t)(end - s))
                return SL_ERR_CORRUPT;
            const uint8_t *g = s;
            uint64_t acc = 0;
            int bits = 0;
            for (uint64_t k = 0; k < groups * 8 && got < n; k++) {
                while (bits < bw) {
                    acc |= (uint64_t)*g++ << bits;
                    bits += 8;
                }
                vals[got++] = (uint32_t)(acc & mask);
                acc >>= bw;
                bits -= bw;
            }
            s += bw * groups;
        } else {
            uint64_t r = h >> 1;
            int vbytes = (bw + 7) / 8;
            if (r == 0 || vbytes > end - s)
                return SL_ERR_CORRUPT;
            uint32_t v = 0;
            for (int b = 0; b < vbytes; b++)
                v |= (uint32_t)*s++ << (8 * b);
            if (v > mask)
                return SL_ERR_CORRUPT;
            for (uint64_t k = 0; k < r && got < n; k++)
                vals[got++] = v;
        }
    }
    return SL_OK;
}

/* Whether s is valid UTF-8. */
bool sl__pq_utf8_is_valid(const char *str, size_t n)
{
    const uint8_t *s = (const uint8_t *)str, *end = s + n;
    while (s < end) {
        if (end - s >= 16) { /* ASCII fast path, 16 bytes at a time */
            uint64_t w[2];
            memcpy(w, s, 16);
            if (!((w[0] | w[1]) & 0x8080808080808080u)) {
                s += 16;
                continue;
            }
        }
        uint8_t c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - s) < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        s += len;
    }
    return true;
}
