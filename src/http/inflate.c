/* gzip/deflate request bodies through zlib, with the output capped so a small compressed
 * body cannot expand into unbounded memory (a gzip bomb stops at the cap). */
#include <zlib.h>

#include "http/http_int.h"

sl_err sl__http_inflate(const char *in, size_t in_len, sl_buf *out, char *errbuf, size_t errlen)
{
    z_stream zs = {0};
    /* 32 + MAX_WBITS: accept both the gzip and the zlib header, detected automatically. */
    if (inflateInit2(&zs, 32 + MAX_WBITS) != Z_OK)
        return SL_ERR_NOMEM;
    sl_err err = SL_OK;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)in_len;
    for (;;) {
        size_t room = out->cap - out->len;
        if (room == 0) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                                "decompressed body exceeds the limit of %zu bytes", out->cap);
            goto out;
        }
        size_t chunk = room < 65536 ? room : 65536;
        if ((err = sl_buf_reserve(out, chunk)))
            goto out;
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)chunk;
        int rc = inflate(&zs, Z_NO_FLUSH);
        out->len += chunk - zs.avail_out;
        out->data[out->len] = '\0';
        if (rc == Z_STREAM_END) {
            if (zs.avail_in != 0)
                err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                    "compressed body has %u bytes after its end", zs.avail_in);
            goto out;
        }
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "compressed body is truncated");
            goto out;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "compressed body is corrupt: %s",
                                zs.msg ? zs.msg : "unknown zlib error");
            goto out;
        }
    }
out:
    inflateEnd(&zs);
    return err;
}
