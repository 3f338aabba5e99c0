/* sluice-delta-bench: the Delta log side of bench/delta_open.sh. Builds a table the way the
 * lake sink does (one commit per batch: an add with stats and partition value, a txn) and
 * times sl_delta_snapshot_load of its latest version, with and without a checkpoint.
 *   fill URI N          creates the table and commits versions 1..N
 *   checkpoint URI V    writes the checkpoint of version V (no log expiry)
 *   open URI ROUNDS     loads the latest snapshot ROUNDS times, prints JSON with the best
 *                       and median wall seconds and the files and version it found
 * s3:// stores take --endpoint URL and --path-style before the command's arguments, and
 * credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delta/delta.h"

static const sl_delta_field FIELDS[] = {{"event_id", "string", false},
                                        {"timestamp", "timestamp", false},
                                        {"event_date", "date", false}};
static const char *const PARTS[] = {"event_date"};
static const sl_delta_table_def DEF = {FIELDS, 3, PARTS, 1, "bench"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fill(sl_storage_t *store, long n)
{
    char eb[512] = "";
    sl_delta_commit create = {.create = &DEF, .operation = "CREATE TABLE", .read_version = -1};
    if (sl_delta_commit_write(store, 0, &create, eb, sizeof eb)) {
        fprintf(stderr, "create: %s\n", eb);
        return 1;
    }
    for (long v = 1; v <= n; v++) {
        char path[128], day[16], stats[256];
        snprintf(day, sizeof day, "2024-%02ld-%02ld", 1 + (v / 28) % 12, 1 + v % 28);
        snprintf(path, sizeof path, "event_date=%s/part-%06ld-0b5c3e1a.snappy.parquet", day, v);
        snprintf(stats, sizeof stats,
                 "{\"numRecords\":%ld,\"minValues\":{\"event_id\":\"00000000\"},"
                 "\"maxValues\":{\"event_id\":\"ffffffff\"},\"nullCount\":{\"event_id\":0}}",
                 1000 + v);
        sl_delta_kv pv = {"event_date", day};
        sl_delta_add add = {path, &pv, 1, 250000 + (uint64_t)v, 1700000000000 + v, true, stats};
        sl_delta_txn txn = {"sluice-lake-0", v * 1000};
        sl_delta_commit c = {.adds = &add,
                             .n_adds = 1,
                             .txns = &txn,
                             .n_txns = 1,
                             .operation = "WRITE",
                             .read_version = v - 1};
        if (sl_delta_commit_write(store, v, &c, eb, sizeof eb)) {
            fprintf(stderr, "commit %ld: %s\n", v, eb);
            return 1;
        }
    }
    return 0;
}

static int open_rounds(sl_storage_t *store, int rounds)
{
    char eb[512] = "";
    double *t = calloc((size_t)rounds, sizeof *t);
    size_t files = 0;
    int64_t version = -1;
    if (!t)
        return 1;
    for (int r = 0; r < rounds; r++) {
        sl_delta_snapshot_t *snap;
        double t0 = now_s();
        if (sl_delta_snapshot_load(store, -1, &snap, eb, sizeof eb)) {
            fprintf(stderr, "open: %s\n", eb);
            free(t);
            return 1;
        }
        t[r] = now_s() - t0;
        files = sl_delta_snapshot_file_count(snap);
        version = sl_delta_snapshot_version(snap);
        sl_delta_snapshot_free(snap);
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp_double);
    printf("{\"version\": %" PRId64 ", \"files\": %zu, \"best_s\": %.6f, \"median_s\": %.6f}\n",
           version, files, t[0], t[rounds / 2]);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    sl_storage_options so;
    sl_storage_t *store = NULL;
    char eb[512] = "";
    int i = 1, rc = 2;
    sl_storage_options_default(&so);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--path-style"))
            so.path_style = true;
        else if (!strcmp(argv[i], "--endpoint") && i + 1 < argc)
            so.endpoint = argv[++i];
        else
            break;
    }
    if (argc - i != 3) {
        fprintf(stderr, "usage: sluice-delta-bench [--endpoint URL] [--path-style] "
                        "fill URI N | checkpoint URI V | open URI ROUNDS\n");
        return 2;
    }
    const char *cmd = argv[i], *uri = argv[i + 1];
    long n = strtol(argv[i + 2], NULL, 10);
    if (sl_storage_open(uri, &so, &store, eb, sizeof eb)) {
        fprintf(stderr, "%s: %s\n", uri, eb);
        return 1;
    }
    if (!strcmp(cmd, "fill")) {
        rc = fill(store, n);
    } else if (!strcmp(cmd, "open")) {
        rc = open_rounds(store, n > 0 ? (int)n : 1);
    } else if (!strcmp(cmd, "checkpoint")) {
        size_t expired;
        rc = sl_delta_checkpoint(store, n, -1, 0, &expired, eb, sizeof eb) ? 1 : 0;
        if (rc)
            fprintf(stderr, "checkpoint: %s\n", eb);
    }
    sl_storage_close(store);
    return rc;
}
