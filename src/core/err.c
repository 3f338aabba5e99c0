/* Names of the error codes and the error-buffer helper. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const err_names[SL_ERR__COUNT] = {
    [SL_OK] = "ok",
    [SL_ERR_NOMEM] = "out of memory",
    [SL_ERR_INVALID] = "invalid input",
    [SL_ERR_TOO_LARGE] = "too large",
    [SL_ERR_IO] = "i/o error",
    [SL_ERR_BUSY] = "busy",
    [SL_ERR_CLOSED] = "closed",
    [SL_ERR_NOT_FOUND] = "not found",
    [SL_ERR_CORRUPT] = "corrupt data",
    [SL_ERR_TIMEOUT] = "timed out",
    [SL_ERR_CONFIG] = "bad configuration",
    [SL_ERR_UNSUPPORTED] = "unsupported",
    [SL_ERR_INTERNAL] = "internal error",
    [SL_ERR_EXISTS] = "already exists",
};

const char *sl_strerror(sl_err err)
{
    if ((unsigned)err >= SL_ERR__COUNT)
        return "unknown error";
    return err_names[err];
}

sl_err sl_errbuf_set(char *errbuf, size_t errlen, sl_err err, const char *fmt, ...)
{
    if (errbuf && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return err;
}
