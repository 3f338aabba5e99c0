/* Error codes shared by every module (curl's CURLcode style): fallible functions return
 * an sl_err, results go through out-parameters, and a human-readable detail goes into an
 * optional caller-supplied buffer written with sl_errbuf_set(). */
#ifndef SL_CORE_ERR_H
#define SL_CORE_ERR_H

#include <stddef.h>

#define SL_MUST_CHECK               __attribute__((warn_unused_result))
#define SL_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

typedef enum sl_err {
    SL_OK = 0,
    SL_ERR_NOMEM,       /* an allocation failed */
    SL_ERR_INVALID,     /* input from outside broke a rule */
    SL_ERR_TOO_LARGE,   /* input or a buffer is over its size limit */
    SL_ERR_IO,          /* the operating system refused a read, write or sync */
    SL_ERR_BUSY,        /* a bounded queue is full: back-pressure, try later */
    SL_ERR_CLOSED,      /* the object is shutting down or shut */
    SL_ERR_NOT_FOUND,   /* the thing asked for does not exist */
    SL_ERR_CORRUPT,     /* stored data failed a consistency check */
    SL_ERR_TIMEOUT,     /* a deadline passed */
    SL_ERR_CONFIG,      /* a setting or URI is wrong */
    SL_ERR_UNSUPPORTED, /* valid, but not something this build does */
    SL_ERR_INTERNAL,    /* a bug: an invariant did not hold */
    SL_ERR_EXISTS,      /* a create-if-absent found the name taken (storage) */
    SL_ERR__COUNT
} sl_err;

/* The stable name of an error code, e.g. "invalid input". Never NULL. */
const char *sl_strerror(sl_err err);

/* Formats a detail message into errbuf (which may be NULL or zero-sized) and returns err,
 * so a failure site can be one line: `return sl_errbuf_set(eb, n, SL_ERR_IO, "...")`. */
sl_err sl_errbuf_set(char *errbuf, size_t errlen, sl_err err, const char *fmt, ...) SL_PRINTF(4, 5);

#endif
