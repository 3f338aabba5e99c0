/* Structured diagnostics: one line per event on stderr in logfmt, e.g.
 *   ts=2026-11-23T10:00:00.000Z level=info msg="listening" addr=127.0.0.1:3001
 * The key=value tail is written by the caller with a printf format. @thread any. */
#ifndef SL_CORE_DIAG_H
#define SL_CORE_DIAG_H

#include "core/err.h"

typedef enum sl_diag_level {
    SL_DIAG_DEBUG,
    SL_DIAG_INFO,
    SL_DIAG_WARN,
    SL_DIAG_ERROR
} sl_diag_level;

/* Lines below this level are dropped (default SL_DIAG_INFO). */
void sl_diag_set_level(sl_diag_level level);
/* Parses "debug", "info", "warn" or "error". */
SL_MUST_CHECK sl_err sl_diag_parse_level(const char *name, sl_diag_level *level);

/* msg is a short constant phrase; fields is a printf format for `key=value` pairs (may be
 * NULL). Values that may hold spaces should be quoted by the caller with %s inside "". */
void sl_diag(sl_diag_level level, const char *msg, const char *fields, ...) SL_PRINTF(3, 4);

#endif
