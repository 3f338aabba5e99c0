/* `sluice lake history`: one line per table version from the Delta log, so an operator
 * (and the tests) can see what each commit did and what the table held after it. */
#include <inttypes.h>
#include <stdio.h>

#include "core/time.h"
#include "lake/lake.h"

static sl_err print_version(void *opaque, const sl_delta_version_info *vi)
{
    FILE *out = opaque;
    char ts[SL_TIME_RFC3339_MAX] = "-";
    if (vi->timestamp_ms >= 0)
        sl_time_format_rfc3339(vi->timestamp_ms * 1000, ts);
    char rows_added[24] = "-", rows_total[24] = "-";
    if (vi->rows_added >= 0)
        snprintf(rows_added, sizeof rows_added, "%" PRId64, vi->rows_added);
    if (vi->rows_total >= 0)
        snprintf(rows_total, sizeof rows_total, "%" PRId64, vi->rows_total);
    fprintf(out, "%-8" PRId64 " %-24s %7" PRIu64 " %7" PRIu64 " %10s %7" PRIu64 " %12s  %s\n",
            vi->version, ts, vi->files_added, vi->files_removed, rows_added, vi->files_total,
            rows_total, *vi->operation ? vi->operation : "-");
    return ferror(out) ? SL_ERR_IO : SL_OK;
}

sl_err sl_lake_history_print(const char *table_uri, const sl_storage_options *so, FILE *out,
                             char *errbuf, size_t errlen)
{
    sl_storage_t *st;
    sl_err err = sl_lake_store_open(table_uri, so, &st, errbuf, errlen);
    if (err)
        return err;
    /* The operation goes last: it may hold spaces ("CREATE TABLE"). */
    fprintf(out, "%-8s %-24s %7s %7s %10s %7s %12s  %s\n", "version", "time", "+files", "-files",
            "+rows", "files", "rows", "operation");
    err = sl_delta_history(st, print_version, out, errbuf, errlen);
    sl_storage_close(st);
    return err;
}
