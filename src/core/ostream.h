/* One output-stream interface (redis's rio) behind the Parquet writer, the Delta log and,
 * later, object stores, so one encoder writes to memory, a file or S3 alike. A stream is
 * a struct with two callbacks and a byte count; the backends below embed it first, so
 * &backend.os is the sl_ostream * an encoder takes. */
#ifndef SL_CORE_OSTREAM_H
#define SL_CORE_OSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct sl_ostream sl_ostream;
struct sl_ostream {
    /* Appends n bytes (p borrowed for the call) and adds n to written; SL_OK or an error
     * with detail in errbuf of the stream. After a failure the stream's contents are
     * unspecified; callers give up on it. */
    sl_err (*write)(sl_ostream *os, const void *p, size_t n);
    /* Makes written bytes durable where that means something (fsync for files). */
    sl_err (*flush)(sl_ostream *os);
    uint64_t written; /* bytes written so far (tell) */
    char errbuf[256]; /* detail of the last failure */
};

/* A stream into a caller-owned sl_buf (capped by the buf's own cap: a write past it fails
 * with SL_ERR_TOO_LARGE). flush does nothing. buf must outlive the stream. */
typedef struct sl_ostream_buf {
    sl_ostream os;
    sl_buf *buf;
} sl_ostream_buf;

/* A stream onto an open file descriptor, buffered internally (SL_OSTREAM_FD_BUFSZ bytes);
 * flush writes the buffer out and fdatasync()s (unless sync was set to false after init).
 * The fd is borrowed: never closed here. */
#define SL_OSTREAM_FD_BUFSZ (256 * 1024)
typedef struct sl_ostream_fd {
    sl_ostream os;
    int fd;
    char *pending; /* SL_OSTREAM_FD_BUFSZ bytes, len of them not yet written to fd */
    size_t len;
    bool sync; /* true after init: flush makes the bytes durable with fdatasync */
} sl_ostream_fd;

/* obs->os is the stream; buf (borrowed, must outlive obs) is appended to, not reset. */
void sl_ostream_buf_init(sl_ostream_buf *obs, sl_buf *buf);

/* fd (borrowed, must outlive ofs) is written from its current offset. SL_ERR_NOMEM when
 * the buffer cannot be allocated. */
SL_MUST_CHECK sl_err sl_ostream_fd_init(sl_ostream_fd *ofs, int fd);
/* Frees the buffer. Bytes written since the last flush are dropped, not written: call
 * flush first to keep them. Safe on a zeroed or already cleaned-up ofs. */
void sl_ostream_fd_cleanup(sl_ostream_fd *ofs);

#endif
