/* The output-stream backends of ostream.h: into an sl_buf, and onto a file descriptor
 * through a fixed buffer so small writes (Thrift headers) cost no system call each. */
#include "core/ostream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sl_err buf_write(sl_ostream *os, const void *p, size_t n)
{
    sl_ostream_buf *obs = (sl_ostream_buf *)os;
    sl_err err = sl_buf_append(obs->buf, p, n);
    if (err)
        return sl_errbuf_set(os->errbuf, sizeof os->errbuf, err,
                             "could not append %zu bytes to a buffer of %zu (cap %zu): %s", n,
                             obs->buf->len, obs->buf->cap, sl_strerror(err));
    os->written += n;
    return SL_OK;
}

static sl_err buf_flush(sl_ostream *os)
{
    return SL_OK;
}

void sl_ostream_buf_init(sl_ostream_buf *obs, sl_buf *buf)
{
    memset(obs, 0, sizeof *obs);
    obs->os.write = buf_write;
    obs->os.flush = buf_flush;
    obs->buf = buf;
}

/* Writes all n bytes to the fd, retrying on EINTR and short writes. */
static sl_err fd_write_all(sl_ostream_fd *ofs, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(ofs->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return sl_errbuf_set(ofs->os.errbuf, sizeof ofs->os.errbuf, SL_ERR_IO,
                                 "could not write to fd %d: %s", ofs->fd, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return SL_OK;
}

static sl_err fd_write(sl_ostream *os, const void *p, size_t n)
{
    sl_ostream_fd *ofs = (sl_ostream_fd *)os;
    sl_err err;
    if (ofs->len + n <= SL_OSTREAM_FD_BUFSZ) {
        memcpy(ofs->pending + ofs->len, p, n);
        ofs->len += n;
        os->written += n;
        return SL_OK;
    }
    if ((err = fd_write_all(ofs, ofs->pending, ofs->len)))
        return err;
    ofs->len = 0;
    if (n >= SL_OSTREAM_FD_BUFSZ) { /* large writes go straight through */
        if ((err = fd_write_all(ofs, p, n)))
            return err;
    } else {
        memcpy(ofs->pending, p, n);
        ofs->len = n;
    }
    os->written += n;
    return SL_OK;
}

static sl_err fd_flush(sl_ostream *os)
{
    sl_ostream_fd *ofs = (sl_ostream_fd *)os;
    sl_err err = fd_write_all(ofs, ofs->pending, ofs->len);
    if (err)
        return err;
    ofs->len = 0;
    if (ofs->sync && fdatasync(ofs->fd) != 0)
        return sl_errbuf_set(os->errbuf, sizeof os->errbuf, SL_ERR_IO, "could not sync fd %d: %s",
                             ofs->fd, strerror(errno));
    return SL_OK;
}

sl_err sl_ostream_fd_init(sl_ostream_fd *ofs, int fd)
{
    memset(ofs, 0, sizeof *ofs);
    ofs->pending = malloc(SL_OSTREAM_FD_BUFSZ);
    if (!ofs->pending)
        return SL_ERR_NOMEM;
    ofs->os.write = fd_write;
    ofs->os.flush = fd_flush;
    ofs->fd = fd;
    ofs->sync = true;
    return SL_OK;
}

void sl_ostream_fd_cleanup(sl_ostream_fd *ofs)
{
    free(ofs->pending);
    ofs->pending = NULL;
    ofs->len = 0;
}
