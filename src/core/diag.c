/* logfmt lines on stderr; see diag.h. A line is formatted in one buffer and written with
 * one write() so lines from different threads never interleave. */
#include "core/diag.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/time.h"

static atomic_int min_level = SL_DIAG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sl_diag_set_level(sl_diag_level level)
{
    atomic_store(&min_level, (int)level);
}

sl_err sl_diag_parse_level(const char *name, sl_diag_level *level)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (sl_diag_level)i;
            return SL_OK;
        }
    }
    return SL_ERR_INVALID;
}

void sl_diag(sl_diag_level level, const char *msg, const char *fields, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    char line[2048];
    char ts[SL_TIME_RFC3339_MAX];
    sl_time_format_rfc3339(sl_time_now_us(), ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s msg=\"%s\"", ts, level_names[level], msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (fields && len < sizeof line - 2) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fields);
        n = vsnprintf(line + len, sizeof line - len, fields, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n < sizeof line - len ? (size_t)n : sizeof line - len - 1;
    }
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
