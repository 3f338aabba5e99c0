/* Test-only Delta writer for test_lake_s3.py: one of several processes racing on the same
 * versions of one table, each appending through sl_delta_commit_append (the lake sink's
 * path) so exactly one wins each version and the losers retry at the next.
 * It loads the table (creating it when there is none), prints "ready", waits for a line on
 * stdin (so every racer starts from the same version), then makes COMMITS appends, each
 * one add "wID/fI.parquet" and txn {"racer-ID", I}, printing "won VERSION I" per commit and
 * "conflicts N" at the end. Exit 0 when every append landed, 1 otherwise.
 * Usage: sluice-test-delta-committer [--endpoint URL] URI ID COMMITS */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta/delta.h"

static const sl_delta_field fields[] = {{"n", "long", true}};
static const sl_delta_table_def def = {fields, 1, NULL, 0, "race"};

typedef struct racer {
    const char *app;
    int64_t want; /* the txn version of the append in flight */
    unsigned conflicts;
} racer;

/* Our own earlier try already in the table (an S3 answer lost) must not be doubled. */
static sl_err not_yet_in(void *opaque, const sl_delta_snapshot_t *snap, char *eb, size_t len)
{
    racer *r = opaque;
    int64_t v;
    r->conflicts++;
    if (sl_delta_snapshot_txn(snap, r->app, &v) == SL_OK && v >= r->want)
        return sl_errbuf_set(eb, len, SL_ERR_EXISTS, "%s %" PRId64 " is already in", r->app, v);
    return SL_OK;
}

int main(int argc, char **argv)
{
    sl_storage_options so;
    sl_storage_options_default(&so);
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "--endpoint")) {
        so.endpoint = argv[2];
        so.path_style = true;
        i = 3;
    }
    if (argc - i != 3) {
        fprintf(stderr, "usage: sluice-test-delta-committer [--endpoint URL] URI ID COMMITS\n");
        return 2;
    }
    const char *uri = argv[i];
    long id = strtol(argv[i + 1], NULL, 10), commits = strtol(argv[i + 2], NULL, 10);
    char eb[512], app[32], line[16];
    snprintf(app, sizeof app, "racer-%ld", id);
    racer r = {app, 0, 0};
    sl_storage_t *st = NULL;
    sl_delta_snapshot_t *snap = NULL;
    int rc = 1;
    if (sl_storage_open(uri, &so, &st, eb, sizeof eb))
        goto fail;
    sl_err err = sl_delta_snapshot_load(st, -1, &snap, eb, sizeof eb);
    if (err == SL_ERR_NOT_FOUND) {
        sl_delta_commit c = {.create = &def, .operation = "CREATE TABLE", .read_version = -1};
        err = sl_delta_commit_write(st, 0, &c, eb, sizeof eb);
        if (!err || err == SL_ERR_EXISTS)
            err = sl_delta_snapshot_load(st, -1, &snap, eb, sizeof eb);
    }
    if (err)
        goto fail;
    printf("ready %" PRId64 "\n", sl_delta_snapshot_version(snap));
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        goto out;
    for (long k = 0; k < commits; k++) {
        char path[64];
        snprintf(path, sizeof path, "w%ld/f%ld.parquet", id, k);
        sl_delta_add add = {path, NULL, 0, 100, 1700000000000, true, "{\"numRecords\":1}"};
        sl_delta_txn txn = {app, k};
        sl_delta_commit c = {
            .adds = &add, .n_adds = 1, .txns = &txn, .n_txns = 1, .operation = "WRITE"};
        r.want = k;
        if (sl_delta_commit_append(st, snap, &c, 1000, not_yet_in, &r, eb, sizeof eb))
            goto fail;
        printf("won %" PRId64 " %ld\n", sl_delta_snapshot_version(snap), k);
    }
    printf("conflicts %u\n", r.conflicts);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "%s: %s\n", app, eb);
out:
    sl_delta_snapshot_free(snap);
    sl_storage_close(st);
    return rc;
}
