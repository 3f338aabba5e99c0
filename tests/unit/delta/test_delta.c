/* Unit tests of the delta module: commits sluice writes read back, racing writers that must
 * never both claim a version, add stats, and the snapshot reader against tables written by
 * Spark and delta-rs (../shared/data), including the ones it must refuse. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "delta/delta.h"
#include "test_checkpoint.h" /* checkpoints: a second group */

extern char **environ;

static char tmp_root[256];

/* The delta calls take a store; these open file://dir around one call. */
static sl_storage_t *open_dir(const char *dir)
{
    char uri[640], eb[256];
    sl_storage_t *st;
    snprintf(uri, sizeof uri, "file://%s", dir);
    if (sl_storage_open(uri, NULL, &st, eb, sizeof eb))
        fail_msg("open %s: %s", uri, eb);
    return st;
}

static sl_err load_at(const char *dir, int64_t version, sl_delta_snapshot_t **snap, char *eb,
                      size_t len)
{
    sl_storage_t *st = open_dir(dir);
    sl_err err = sl_delta_snapshot_load(st, version, snap, eb, len);
    sl_storage_close(st);
    return err;
}

static sl_err commit_at(const char *dir, int64_t version, const sl_delta_commit *c, char *eb,
                        size_t len)
{
    sl_storage_t *st = open_dir(dir);
    sl_err err = sl_delta_commit_write(st, version, c, eb, len);
    sl_storage_close(st);
    return err;
}

static sl_err put_at(const char *dir, int64_t version, const char *data, size_t n, char *eb,
                     size_t len)
{
    sl_storage_t *st = open_dir(dir);
    sl_err err = sl_delta_log_put(st, version, data, n, eb, len);
    sl_storage_close(st);
    return err;
}

static sl_err history_at(const char *dir, sl_delta_history_cb cb, void *opaque, char *eb,
                         size_t len)
{
    sl_storage_t *st = open_dir(dir);
    sl_err err = sl_delta_history(st, cb, opaque, eb, len);
    sl_storage_close(st);
    return err;
}

static void run_or_fail(char *const argv[])
{
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        fail_msg("could not run %s", argv[0]);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s %s failed", argv[0], argv[1]);
}

static void make_tmp(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmp_root, name);
    char *argv[] = {"mkdir", "-p", out, NULL};
    run_or_fail(argv);
}

/* Unpacks ../shared/data/<set>/<name>.tar.zst once; returns the table directory. */
static const char *golden(const char *name, char *out, size_t len)
{
    char dir[300], archive[512];
    snprintf(dir, sizeof dir, "%s/golden", tmp_root);
    snprintf(out, len, "%s/%s/delta", dir, name);
    struct stat st;
    if (stat(out, &st) == 0)
        return out;
    char *mk[] = {"mkdir", "-p", dir, NULL};
    run_or_fail(mk);
    snprintf(archive, sizeof archive, "%s/delta-golden/%s.tar.zst", SL_TEST_DATA, name);
    char *tar[] = {"tar", "--warning=no-unknown-keyword", "--zstd", "-xf", archive, "-C", dir,
                   NULL};
    run_or_fail(tar);
    return out;
}

static const sl_delta_field event_fields[] = {
    {"event_id", "string", false},         {"timestamp", "timestamp", false},
    {"interaction_value", "double", true}, {"metadata", "string", true},
    {"event_date", "date", false},
};
static const char *const part_cols[] = {"event_date"};
static const sl_delta_table_def event_def = {event_fields, 5, part_cols, 1, NULL};

static void create_table(const char *dir)
{
    char eb[512] = "";
    sl_delta_commit c = {.create = &event_def, .operation = "CREATE TABLE", .read_version = -1};
    sl_err err = commit_at(dir, 0, &c, eb, sizeof eb);
    if (err)
        fail_msg("create: %s", eb);
}

static void append(const char *dir, int64_t version, const char *path, const char *date,
                   uint64_t rows, const char *app, int64_t txn_version)
{
    char eb[512] = "", stats[128];
    snprintf(stats, sizeof stats, "{\"numRecords\":%llu}", (unsigned long long)rows);
    sl_delta_kv pv = {"event_date", date};
    sl_delta_add add = {path, &pv, 1, 1234, 1700000000000, true, stats};
    sl_delta_txn txn = {app, txn_version};
    sl_delta_kv params[] = {{"mode", "Append"}};
    sl_delta_commit c = {.adds = &add,
                         .n_adds = 1,
                         .txns = &txn,
                         .n_txns = app ? 1 : 0,
                         .operation = "WRITE",
                         .operation_parameters = params,
                         .n_operation_parameters = 1,
                         .read_version = version - 1};
    sl_err err = commit_at(dir, version, &c, eb, sizeof eb);
    if (err)
        fail_msg("append %lld: %s", (long long)version, eb);
}

static const sl_delta_file *find_file(const sl_delta_snapshot_t *snap, const char *path)
{
    for (size_t i = 0; i < sl_delta_snapshot_file_count(snap); i++) {
        if (!strcmp(sl_delta_snapshot_file(snap, i)->path, path))
            return sl_delta_snapshot_file(snap, i);
    }
    return NULL;
}

static void test_write_and_read_back(void **state)
{
    (void)state;
    char dir[512], eb[512] = "";
    make_tmp(dir, sizeof dir, "rw");
    create_table(dir);
    append(dir, 1, "event_date=2024-01-15/part-a b.snappy.parquet", "2024-01-15", 10,
           "sluice-lake-0", 41);
    append(dir, 2, "event_date=2024-01-16/part-2.snappy.parquet", "2024-01-16", 5, "sluice-lake-1",
           7);
    append(dir, 3, "event_date=2024-01-16/part-3.snappy.parquet", "2024-01-16", 2, "sluice-lake-0",
           99);

    sl_delta_snapshot_t *snap;
    assert_int_equal(load_at(dir, -1, &snap, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_delta_snapshot_version(snap), 3);
    int r, w;
    sl_delta_snapshot_protocol(snap, &r, &w);
    assert_int_equal(r, 1);
    assert_int_equal(w, 2);
    assert_int_equal(strlen(sl_delta_snapshot_table_id(snap)), 36);
    assert_int_equal(sl_delta_snapshot_partition_count(snap), 1);
    assert_string_equal(sl_delta_snapshot_partition_column(snap, 0), "event_date");
    assert_int_equal(sl_delta_snapshot_file_count(snap), 3);
    /* The space went into the log %-encoded and came back decoded. */
    const sl_delta_file *f = find_file(snap, "event_date=2024-01-15/part-a b.snappy.parquet");
    assert_non_null(f);
    assert_int_equal(f->num_records, 10);
    assert_int_equal(f->size, 1234);
    assert_int_equal(f->version, 1);
    assert_int_equal(f->n_partition_values, 1);
    assert_string_equal(f->partition_values[0].key, "event_date");
    assert_string_equal(f->partition_values[0].value, "2024-01-15");
    int64_t v;
    assert_int_equal(sl_delta_snapshot_txn(snap, "sluice-lake-0", &v), SL_OK);
    assert_int_equal(v, 99);
    assert_int_equal(sl_delta_snapshot_txn(snap, "sluice-lake-1", &v), SL_OK);
    assert_int_equal(v, 7);
    assert_int_equal(sl_delta_snapshot_txn(snap, "sluice-lake-2", &v), SL_ERR_NOT_FOUND);
    sl_delta_snapshot_free(snap);

    /* Time travel: version 1 had one file and the first txn. */
    assert_int_equal(load_at(dir, 1, &snap, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_delta_snapshot_file_count(snap), 1);
    assert_int_equal(sl_delta_snapshot_txn(snap, "sluice-lake-0", &v), SL_OK);
    assert_int_equal(v, 41);
    sl_delta_snapshot_free(snap);
    assert_int_equal(load_at(dir, 4, &snap, eb, sizeof eb), SL_ERR_NOT_FOUND);
    assert_null(snap);

    /* The schemaString is a Spark StructType another engine can parse. */
    char path[600];
    snprintf(path, sizeof path, "%s/_delta_log/00000000000000000000.json", dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[4096];
    int saw_meta = 0, saw_info = 0;
    while (fgets(line, sizeof line, fp)) {
        json_error_t jerr;
        json_t *obj = json_loads(line, 0, &jerr);
        assert_non_null(obj);
        json_t *md = json_object_get(obj, "metaData");
        if (md) {
            saw_meta = 1;
            json_t *schema =
                json_loads(json_string_value(json_object_get(md, "schemaString")), 0, &jerr);
            assert_non_null(schema);
            json_t *fields = json_object_get(schema, "fields");
            assert_int_equal(json_array_size(fields), 5);
            json_t *ts = json_array_get(fields, 1);
            assert_string_equal(json_string_value(json_object_get(ts, "type")), "timestamp");
            assert_true(json_is_false(json_object_get(ts, "nullable")));
            json_decref(schema);
        }
        json_t *ci = json_object_get(obj, "commitInfo");
        if (ci) {
            saw_info = 1;
            assert_string_equal(json_string_value(json_object_get(ci, "operation")),
                                "CREATE TABLE");
            assert_true(json_is_integer(json_object_get(ci, "timestamp")));
            assert_string_equal(json_string_value(json_object_get(ci, "engineInfo")), "sluice");
        }
        json_decref(obj);
    }
    fclose(fp);
    assert_true(saw_meta && saw_info);
}

/* A compaction's commit: removes with dataChange=false take files out, the add that
 * holds their rows goes in, and the commit is not a blind append. */
static void test_remove_and_add(void **state)
{
    (void)state;
    char dir[512], eb[512] = "";
    make_tmp(dir, sizeof dir, "remove");
    create_table(dir);
    append(dir, 1, "event_date=2024-01-15/a.parquet", "2024-01-15", 10, NULL, 0);
    append(dir, 2, "event_date=2024-01-15/b c.parquet", "2024-01-15", 5, NULL, 0);
    sl_delta_kv pv = {"event_date", "2024-01-15"};
    sl_delta_remove removes[] = {{"event_date=2024-01-15/a.parquet", &pv, 1, 1234, 1, false},
                                 {"event_date=2024-01-15/b c.parquet", &pv, 1, 1234, 1, false}};
    sl_delta_add add = {
        "event_date=2024-01-15/ab.parquet", &pv, 1, 2000, 2, false, "{\"numRecords\":15}"};
    sl_delta_commit c = {.removes = removes,
                         .n_removes = 2,
                         .adds = &add,
                         .n_adds = 1,
                         .operation = "OPTIMIZE",
                         .read_version = 2};
    sl_buf text;
    sl_buf_init(&text, 1 << 20);
    assert_int_equal(sl_delta_commit_format(&c, &text, eb, sizeof eb), SL_OK);
    assert_non_null(strstr(text.data, "\"isBlindAppend\":false"));
    assert_non_null(strstr(
        text.data, "{\"remove\":{\"path\":\"event_date=2024-01-15/b%20c.parquet\","
                   "\"deletionTimestamp\":1,\"dataChange\":false,\"extendedFileMetadata\""
                   ":true,\"partitionValues\":{\"event_date\":\"2024-01-15\"},\"size\":1234}}"));
    sl_buf_cleanup(&text);
    assert_int_equal(commit_at(dir, 3, &c, eb, sizeof eb), SL_OK);
    sl_delta_snapshot_t *snap;
    assert_int_equal(load_at(dir, -1, &snap, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_delta_snapshot_file_count(snap), 1);
    const sl_delta_file *f = find_file(snap, "event_date=2024-01-15/ab.parquet");
    assert_non_null(f);
    assert_int_equal(f->num_records, 15);
    assert_true(sl_delta_snapshot_has_file(snap, "event_date=2024-01-15/ab.parquet"));
    assert_false(sl_delta_snapshot_has_file(snap, "event_date=2024-01-15/b c.parquet"));
    sl_delta_snapshot_free(snap);
}

static sl_err count_versions(void *opaque, const sl_delta_version_info *vi)
{
    int64_t *rows = opaque;
    rows[vi->version] = vi->rows_total;
    assert_string_equal(vi->operation, vi->version == 0 ? "CREATE TABLE" : "WRITE");
    assert_true(vi->timestamp_ms > 0);
    return SL_OK;
}

static void test_history(void **state)
{
    (void)state;
    char dir[512], eb[512] = "";
    make_tmp(dir, sizeof dir, "history");
    create_table(dir);
    append(dir, 1, "event_date=2024-01-15/a.parquet", "2024-01-15", 10, NULL, 0);
    append(dir, 2, "event_date=2024-01-15/b.parquet", "2024-01-15", 32, NULL, 0);
    int64_t rows[3] = {-2, -2, -2};
    assert_int_equal(history_at(dir, count_versions, rows, eb, sizeof eb), SL_OK);
    assert_int_equal(rows[0], 0);
    assert_int_equal(rows[1], 10);
    assert_int_equal(rows[2], 42);
}

static void test_version_taken(void **state)
{
    (void)state;
    char dir[512], eb[512] = "", path[600];
    make_tmp(dir, sizeof dir, "taken");
    create_table(dir);
    append(dir, 1, "event_date=2024-01-15/first.parquet", "2024-01-15", 1, NULL, 0);
    sl_delta_commit c = {.operation = "WRITE", .read_version = 0};
    assert_int_equal(commit_at(dir, 1, &c, eb, sizeof eb), SL_ERR_EXISTS);
    assert_non_null(strstr(eb, "version 1"));
    assert_non_null(strstr(eb, "already exists"));
    /* The first commit is intact and no temporary file is left behind. */
    sl_delta_snapshot_t *snap;
    assert_int_equal(load_at(dir, -1, &snap, eb, sizeof eb), SL_OK);
    assert_non_null(find_file(snap, "event_date=2024-01-15/first.parquet"));
    sl_delta_snapshot_free(snap);
    snprintf(path, sizeof path, "%s/_delta_log", dir);
    DIR *d = opendir(path);
    struct dirent *de;
    int entries = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.' || strncmp(de->d_name, ".sl-tmp-", 8) == 0)
            entries++;
        assert_int_not_equal(strncmp(de->d_name, ".sl-tmp-", 8), 0);
    }
    closedir(d);
    assert_int_equal(entries, 2);
}

/* Writers race for versions; each retries at the next version on SL_ERR_EXISTS. */
#define RACERS       4
#define COMMITS_EACH 40
typedef struct racer {
    const char *dir;
    int id;
    int wins;
    int conflicts;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    int64_t v = 1;
    char eb[512], path[64], app[32];
    snprintf(app, sizeof app, "racer-%d", r->id);
    for (int i = 0; i < COMMITS_EACH; i++) {
        snprintf(path, sizeof path, "r%d-%d.parquet", r->id, i);
        sl_delta_add add = {path, NULL, 0, 1, 1, true, "{\"numRecords\":1}"};
        sl_delta_txn txn = {app, i};
        sl_delta_commit c = {.adds = &add,
                             .n_adds = 1,
                             .txns = &txn,
                             .n_txns = 1,
                             .operation = "WRITE",
                             .read_version = -1};
        for (;;) {
            sl_err err = commit_at(r->dir, v, &c, eb, sizeof eb);
            v++;
            if (err == SL_OK)
                break;
            if (err != SL_ERR_EXISTS)
                return "unexpected error";
            r->conflicts++;
        }
        r->wins++;
    }
    return NULL;
}

static void test_racing_writers(void **state)
{
    (void)state;
    char dir[512], eb[512] = "";
    make_tmp(dir, sizeof dir, "race");
    create_table(dir);
    pthread_t th[RACERS];
    racer rs[RACERS];
    for (int i = 0; i < RACERS; i++) {
        rs[i] = (racer){dir, i, 0, 0};
        pthread_create(&th[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < RACERS; i++) {
        void *res;
        pthread_join(th[i], &res);
        assert_null(res);
        assert_int_equal(rs[i].wins, COMMITS_EACH);
    }
    sl_delta_snapshot_t *snap;
    assert_int_equal(load_at(dir, -1, &snap, eb, sizeof eb), SL_OK);
    /* Every commit landed at its own version: no gap, nothing lost, nothing doubled. */
    assert_int_equal(sl_delta_snapshot_version(snap), RACERS * COMMITS_EACH);
    assert_int_equal(sl_delta_snapshot_file_count(snap), RACERS * COMMITS_EACH);
    for (int i = 0; i < RACERS; i++) {
        char app[32];
        int64_t v;
        snprintf(app, sizeof app, "racer-%d", i);
        assert_int_equal(sl_delta_snapshot_txn(snap, app, &v), SL_OK);
        assert_int_equal(v, COMMITS_EACH - 1);
    }
    sl_delta_snapshot_free(snap);
}

static sl_err refuse_if_app_a_done(void *opaque, const sl_delta_snapshot_t *snap, char *eb,
                                   size_t len)
{
    int64_t v;
    int *calls = opaque;
    (*calls)++;
    if (sl_delta_snapshot_txn(snap, "app-a", &v) == SL_OK && v >= 10)
        return sl_errbuf_set(eb, len, SL_ERR_EXISTS, "app-a is already at %lld", (long long)v);
    return SL_OK;
}

static bool log_holds(const char *dir, int64_t version, const char *needle)
{
    char path[600], text[4096];
    snprintf(path, sizeof path, "%s/_delta_log/%020lld.json", dir, (long long)version);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

/* sl_delta_commit_append against other writers: a blind append moves on to the next
 * version, a check or a metadata change stops it, attempts are bounded; and
 * sl_delta_snapshot_update catches a snapshot up with only the new commits. */
static void test_append_conflicts(void **state)
{
    (void)state;
    char dir[512], eb[512] = "";
    make_tmp(dir, sizeof dir, "append");
    create_table(dir);
    sl_storage_t *st = open_dir(dir);
    sl_delta_snapshot_t *a;
    assert_int_equal(sl_delta_snapshot_load(st, -1, &a, eb, sizeof eb), SL_OK);
    append(dir, 1, "b1.parquet", "2024-01-15", 3, "app-b", 5);

    sl_delta_kv pv = {"event_date", "2024-01-15"};
    sl_delta_add add = {"a1.parquet", &pv, 1, 10, 1700000000000, true, "{\"numRecords\":2}"};
    sl_delta_txn txn = {"app-a", 10};
    sl_delta_commit c = {.adds = &add,
                         .n_adds = 1,
                         .txns = &txn,
                         .n_txns = 1,
                         .operation = "WRITE",
                         .read_version = -1};
    int calls = 0;
    assert_int_equal(
        sl_delta_commit_append(st, a, &c, 3, refuse_if_app_a_done, &calls, eb, sizeof eb), SL_OK);
    assert_int_equal(calls, 1);
    assert_int_equal(sl_delta_snapshot_version(a), 2);
    assert_int_equal(sl_delta_snapshot_file_count(a), 2);
    assert_true(log_holds(dir, 2, "\"readVersion\":1,"));
    assert_true(log_holds(dir, 2, "a1.parquet"));

    /* Another writer already committed what this append holds: the check stops it. */
    sl_delta_snapshot_t *b;
    assert_int_equal(load_at(dir, 1, &b, eb, sizeof eb), SL_OK);
    add.path = "a1-again.parquet";
    calls = 0;
    assert_int_equal(
        sl_delta_commit_append(st, b, &c, 3, refuse_if_app_a_done, &calls, eb, sizeof eb),
        SL_ERR_EXISTS);
    assert_non_null(strstr(eb, "app-a is already at 10"));
    assert_int_equal(sl_delta_snapshot_version(b), 2);
    sl_delta_snapshot_free(b);

    /* Bounded: one attempt, and the version is taken. */
    assert_int_equal(load_at(dir, 0, &b, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_delta_commit_append(st, b, &c, 1, NULL, NULL, eb, sizeof eb),
                     SL_ERR_EXISTS);
    assert_non_null(strstr(eb, "giving up"));
    assert_int_equal(sl_delta_snapshot_version(b), 0);
    /* The update applies only what is new, and ends where a fresh load does. */
    assert_int_equal(sl_delta_snapshot_update(st, b, NULL, NULL, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_delta_snapshot_version(b), 2);
    assert_int_equal(sl_delta_snapshot_file_count(b), 2);
    assert_int_equal(sl_delta_snapshot_update(st, b, NULL, NULL, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_delta_snapshot_version(b), 2);
    sl_delta_snapshot_free(b);

    /* A metadata change by another writer stops a blind append. */
    sl_delta_commit meta = {.create = &event_def, .operation = "REPLACE TABLE", .read_version = 2};
    assert_int_equal(sl_delta_commit_write(st, 3, &meta, eb, sizeof eb), SL_OK);
    add.path = "a2.parquet";
    txn.version = 11;
    assert_int_equal(sl_delta_commit_append(st, a, &c, 5, NULL, NULL, eb, sizeof eb),
                     SL_ERR_EXISTS);
    assert_non_null(strstr(eb, "protocol or metadata"));
    assert_false(log_holds(dir, 4, "a2.parquet"));
    assert_int_equal(sl_delta_commit_append(st, a, &meta, 5, NULL, NULL, eb, sizeof eb),
                     SL_ERR_INVALID);
    sl_delta_snapshot_free(a);
    sl_storage_close(st);
}

static void test_stats(void **state)
{
    (void)state;
    sl_buf b;
    sl_buf_init(&b, 1 << 20);
    /* 2024-01-15T10:30:00.123456Z and .000001Z later. */
    int64_t t0 = INT64_C(1705314600123456);
    const char *long_s = "0123456789012345678901234567890123456789"; /* 40 chars */
    sl_delta_column_stats cols[] = {
        {"ts", SL_DELTA_STAT_TIMESTAMP, {.i = t0}, {.i = t0 + 1}, 0},
        {"s", SL_DELTA_STAT_STRING, {.s = "ab", .len = 2}, {.s = long_s, .len = 40}, 3},
        {"u", SL_DELTA_STAT_STRING, {.s = "\xc3\xa9t\xc3\xa9", .len = 5}, {.s = "z", .len = 1}, 0},
        {"d", SL_DELTA_STAT_DOUBLE, {.d = -0.5}, {.d = 2.25}, 1},
        {"n", SL_DELTA_STAT_NONE, {0}, {0}, 7},
        {"day", SL_DELTA_STAT_DATE, {.i = 19737}, {.i = 19738}, 0},
        {"l", SL_DELTA_STAT_LONG, {.i = -3}, {.i = 9000000000}, 0},
    };
    assert_int_equal(sl_delta_stats_format(&b, 7, cols, 7), SL_OK);
    assert_string_equal(
        b.data, "{\"numRecords\":7,"
                "\"minValues\":{\"ts\":\"2024-01-15T10:30:00.123Z\",\"s\":\"ab\",\"u\":"
                "\"\xc3\xa9t\xc3\xa9\","
                "\"d\":-0.5,\"day\":\"2024-01-15\",\"l\":-3},"
                "\"maxValues\":{\"ts\":\"2024-01-15T10:30:00.124Z\",\"u\":\"z\",\"d\":2.25,"
                "\"day\":\"2024-01-16\",\"l\":9000000000},"
                "\"nullCount\":{\"ts\":0,\"s\":3,\"u\":0,\"d\":1,\"n\":7,\"day\":0,\"l\":0}}");
    /* Valid JSON as a whole. */
    json_error_t jerr;
    json_t *obj = json_loads(b.data, 0, &jerr);
    assert_non_null(obj);
    json_decref(obj);
    sl_buf_cleanup(&b);
}

static void test_refuses_bad_commits(void **state)
{
    (void)state;
    char dir[512], eb[512] = "";
    make_tmp(dir, sizeof dir, "bad");
    create_table(dir);
    static const struct {
        const char *line;
        sl_err err;
        const char *words;
    } cases[] = {
        {"{\"add\":{\"path\":\"x\"}}\n", SL_ERR_CORRUPT, "needs partitionValues"},
        {"not json\n", SL_ERR_CORRUPT, "malformed JSON"},
        {"{\"add\":{},\"remove\":{}}\n", SL_ERR_CORRUPT, "one action"},
        {"{\"remove\":{\"path\":\"a%zzb\"}}\n", SL_ERR_CORRUPT, "%-escape"},
        {"{\"add\":{\"path\":\"p\",\"partitionValues\":{},\"size\":1,\"modificationTime\":1,"
         "\"dataChange\":true,\"deletionVector\":{\"storageType\":\"u\"}}}\n",
         SL_ERR_UNSUPPORTED, "deletion vectors"},
        {"{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,\"readerFeatures\":"
         "[\"variantType\"]}}\n",
         SL_ERR_UNSUPPORTED, "reader feature \"variantType\""},
        {"{\"add\":{\"path\":\"p\",\"partitionValues\":{},\"size\":1,\"modificationTime\":1,"
         "\"dataChange\":true,\"stats\":\"{\\\"numRecords\\\":-4}\"}}\n",
         SL_ERR_CORRUPT, "numRecords"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char sub[600];
        snprintf(sub, sizeof sub, "%s-%zu", dir, i);
        char *cp[] = {"cp", "-r", dir, sub, NULL};
        run_or_fail(cp);
        assert_int_equal(put_at(sub, 1, cases[i].line, strlen(cases[i].line), eb, sizeof eb),
                         SL_OK);
        sl_delta_snapshot_t *snap = NULL;
        sl_err err = load_at(sub, -1, &snap, eb, sizeof eb);
        if (err != cases[i].err || !strstr(eb, cases[i].words))
            fail_msg("case %zu: got %s \"%s\"", i, sl_strerror(err), eb);
        assert_non_null(strstr(eb, "commit 1 line 1"));
        assert_null(snap);
    }
}

/* ---- tables written by other engines ---- */

static void load_ok(const char *table, sl_delta_snapshot_t **snap)
{
    char eb[512] = "";
    sl_err err = load_at(table, -1, snap, eb, sizeof eb);
    if (err)
        fail_msg("%s: %s (%s)", table, sl_strerror(err), eb);
}

static void test_app_txn_tables(void **state)
{
    (void)state;
    char t[512];
    sl_delta_snapshot_t *snap;
    int64_t v;
    snprintf(t, sizeof t, "%s/delta-kernel-tests/app-txn-no-checkpoint", SL_TEST_DATA);
    load_ok(t, &snap);
    assert_int_equal(sl_delta_snapshot_version(snap), 1);
    assert_int_equal(sl_delta_snapshot_txn(snap, "my-app", &v), SL_OK);
    assert_int_equal(v, 3);
    assert_int_equal(sl_delta_snapshot_txn(snap, "my-app2", &v), SL_OK);
    assert_int_equal(v, 2);
    assert_int_equal(sl_delta_snapshot_file_count(snap), 4);
    const sl_delta_file *f = find_file(
        snap,
        "modified=2021-02-01/part-00001-80996595-a345-43b7-b213-e247d6f091f7-c000.snappy.parquet");
    assert_non_null(f);
    assert_int_equal(f->num_records, 8);
    assert_int_equal(f->size, 810);
    sl_delta_snapshot_free(snap);

    /* The checkpointed table still has its whole JSON history, which is replayed. */
    snprintf(t, sizeof t, "%s/delta-kernel-tests/app-txn-checkpoint", SL_TEST_DATA);
    load_ok(t, &snap);
    assert_int_equal(sl_delta_snapshot_txn(snap, "my-app", &v), SL_OK);
    assert_int_equal(v, 3);
    assert_int_equal(sl_delta_snapshot_txn(snap, "my-app2", &v), SL_OK);
    assert_int_equal(v, 2);
    sl_delta_snapshot_free(snap);

    snprintf(t, sizeof t, "%s/delta-kernel-tests/app-txn-with-last-updated", SL_TEST_DATA);
    load_ok(t, &snap);
    static const char *const apps[] = {"new_app_0", "new_app_1", "new_app_2", "old_app"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sl_delta_snapshot_txn(snap, apps[i], &v), SL_OK);
        assert_int_equal(v, 1);
    }
    assert_int_equal(sl_delta_snapshot_file_count(snap), 4);
    sl_delta_snapshot_free(snap);
}

static void expect_files(const char *name, const char *const *paths, size_t n)
{
    char t[512];
    sl_delta_snapshot_t *snap;
    load_ok(golden(name, t, sizeof t), &snap);
    if (sl_delta_snapshot_file_count(snap) != n)
        fail_msg("%s: %zu active files, expected %zu", name, sl_delta_snapshot_file_count(snap), n);
    for (size_t i = 0; i < n; i++) {
        if (!find_file(snap, paths[i]))
            fail_msg("%s: \"%s\" is not active", name, paths[i]);
    }
    sl_delta_snapshot_free(snap);
}

static void test_golden_active_files(void **state)
{
    (void)state;
    /* Overwrite then delete: three files survive of nine added. */
    static const char *const deleted[] = {
        "part-00000-cb078bc1-0aeb-46ed-9cf8-74a843b32c8c-c000.snappy.parquet",
        "part-00001-9bf4b8f8-1b95-411b-bf10-28dc03aa9d2f-c000.snappy.parquet",
        "part-00000-d83dafd8-c344-49f0-ab1c-acd944e32493-c000.snappy.parquet",
    };
    expect_files("snapshot-data2-deleted", deleted, 3);
    /* A remove names its file as "file:/..." or %-encoded: the same file. */
    expect_files("canonicalized-paths-normal-a", NULL, 0);
    expect_files("canonicalized-paths-normal-b", NULL, 0);
    expect_files("canonicalized-paths-special-a", NULL, 0);
    expect_files("canonicalized-paths-special-b", NULL, 0);
    /* Removed, then added again in a later commit: active. */
    static const char *const readd[] = {"foo", "bar"};
    expect_files("delete-re-add-same-file-different-transactions", readd, 2);
    /* A reader feature that does not change the file set. */
    char t[512];
    sl_delta_snapshot_t *snap;
    load_ok(golden("basic-with-vacuum-protocol-check-feature", t, sizeof t), &snap);
    assert_int_equal(sl_delta_snapshot_file_count(snap), 2);
    sl_delta_snapshot_free(snap);
}

/* Tables with checkpoints, overwrites and vacuums, read through their JSON history: every
 * active file exists on disk with the size the log gives (a vacuumed table keeps only its
 * active files, so a wrong reconciliation names a missing file). */
static void test_golden_checkpointed_tables_replay(void **state)
{
    (void)state;
    static const char *const names[] = {"basic-with-inserts-deletes-checkpoint",
                                        "corrupted-last-checkpoint-kernel",
                                        "125-iterator-bug",
                                        "snapshot-repartitioned",
                                        "snapshot-vacuumed",
                                        "time-travel-start-start20-start40"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char t[512], p[1024];
        sl_delta_snapshot_t *snap;
        load_ok(golden(names[i], t, sizeof t), &snap);
        assert_true(sl_delta_snapshot_file_count(snap) > 0);
        for (size_t k = 0; k < sl_delta_snapshot_file_count(snap); k++) {
            const sl_delta_file *f = sl_delta_snapshot_file(snap, k);
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", t, f->path);
            if (stat(p, &st) != 0)
                fail_msg("%s: active file \"%s\" does not exist", names[i], f->path);
            if ((uint64_t)st.st_size != f->size)
                fail_msg("%s: \"%s\" is %lld bytes, the log says %llu", names[i], f->path,
                         (long long)st.st_size, (unsigned long long)f->size);
        }
        sl_delta_snapshot_free(snap);
    }
}

static void expect_refusal(const char *name, sl_err want, const char *words)
{
    char t[512], eb[512] = "";
    sl_delta_snapshot_t *snap = NULL;
    sl_err err = load_at(golden(name, t, sizeof t), -1, &snap, eb, sizeof eb);
    if (err != want || !strstr(eb, words))
        fail_msg("%s: got %s \"%s\", expected %s with \"%s\"", name, sl_strerror(err), eb,
                 sl_strerror(want), words);
    assert_null(snap);
}

static void test_golden_refusals(void **state)
{
    (void)state;
    expect_refusal("deltalog-invalid-protocol-version", SL_ERR_UNSUPPORTED, "reader version 99");
    expect_refusal("dv-partitioned-with-checkpoint", SL_ERR_UNSUPPORTED,
                   "reader feature \"deletionVectors\"");
    expect_refusal("dv-with-columnmapping", SL_ERR_UNSUPPORTED, "column mapping");
    expect_refusal("table-with-columnmapping-mode-name", SL_ERR_UNSUPPORTED,
                   "column mapping (mode \"name\")");
    expect_refusal("table-with-columnmapping-mode-id", SL_ERR_UNSUPPORTED,
                   "column mapping (mode \"id\")");
    expect_refusal("data-reader-timestamp_ntz-id-mode", SL_ERR_UNSUPPORTED, "column mapping");
    expect_refusal("versions-not-contiguous", SL_ERR_CORRUPT, "version 1 is missing");
    expect_refusal("deltalog-state-reconstruction-without-metadata", SL_ERR_CORRUPT, "no metaData");
    expect_refusal("deltalog-state-reconstruction-without-protocol", SL_ERR_CORRUPT, "no protocol");
    char t[512], eb[512] = "";
    sl_delta_snapshot_t *snap = NULL;
    golden("no-delta-log-folder", t, sizeof t);
    assert_int_equal(load_at(t, -1, &snap, eb, sizeof eb), SL_ERR_NOT_FOUND);

    /* A history that starts at a checkpoint: read from the checkpoint (test_checkpoint.c
     * checks the files against the full replay). */
    char copy[600];
    snprintf(copy, sizeof copy, "%s/ckpt-only", tmp_root);
    char *cp[] = {"cp", "-r", (char *)golden("checkpoint", t, sizeof t), copy, NULL};
    run_or_fail(cp);
    for (int v = 0; v < 10; v++) {
        char p[700];
        snprintf(p, sizeof p, "%s/_delta_log/%020d.json", copy, v);
        assert_int_equal(unlink(p), 0);
    }
    assert_int_equal(load_at(copy, -1, &snap, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_delta_snapshot_version(snap), 14);
    sl_delta_snapshot_free(snap);
}

/* Every golden table either loads or is refused with an error: never a crash. */
static void test_golden_all_load_or_refuse(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/delta-golden", SL_TEST_DATA);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int loaded = 0, refused = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 9 || strcmp(de->d_name + len - 8, ".tar.zst") != 0)
            continue;
        char name[256], t[512], eb[512] = "";
        snprintf(name, sizeof name, "%.*s", (int)(len - 8), de->d_name);
        sl_delta_snapshot_t *snap = NULL;
        sl_err err = load_at(golden(name, t, sizeof t), -1, &snap, eb, sizeof eb);
        if (err == SL_OK) {
            loaded++;
            sl_delta_snapshot_free(snap);
        } else {
            assert_true(err == SL_ERR_UNSUPPORTED || err == SL_ERR_CORRUPT ||
                        err == SL_ERR_NOT_FOUND);
            assert_true(eb[0] != '\0');
            refused++;
        }
    }
    closedir(d);
    assert_true(loaded >= 60);
    assert_true(refused >= 10);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/sluice-unit-delta-XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char *rm[] = {"rm", "-rf", tmp_root, NULL};
    run_or_fail(rm);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_and_read_back),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_remove_and_add),
        cmocka_unit_test(test_version_taken),
        cmocka_unit_test(test_racing_writers),
        cmocka_unit_test(test_append_conflicts),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_refuses_bad_commits),
        cmocka_unit_test(test_app_txn_tables),
        cmocka_unit_test(test_golden_active_files),
        cmocka_unit_test(test_golden_checkpointed_tables_replay),
        cmocka_unit_test(test_golden_refusals),
        cmocka_unit_test(test_golden_all_load_or_refuse),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return failed + sl_test_checkpoint_run();
}
