/* Unit tests of Delta checkpoints (src/delta/checkpoint.c), bytes in and bytes out: a state
 * replayed from sluice's JSON commits is encoded and decoded back to the same table, and
 * the classic single-part checkpoints Spark and delta-rs wrote (../shared/data) decode to
 * the snapshot their JSON history replays to at the same version. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "delta/delta_int.h"
#include "test_checkpoint.h"

static char ck_root[256];

static char *read_whole(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *data = malloc(n > 0 ? (size_t)n : 1);
    if (data && n > 0 && fread(data, 1, (size_t)n, fp) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(fp);
    *len = (size_t)(n > 0 ? n : 0);
    return data;
}

/* A fresh state that keeps tombstones, as one loaded to write a checkpoint does. */
static void state_init(sl__delta_state *st)
{
    sl__delta_state_init(st);
    st->keep_tombstones = true;
}

/* Replays the JSON commits 0..upto of table_dir into st (the history must be whole). */
static void replay_json(const char *table_dir, int64_t upto, sl__delta_state *st)
{
    char eb[512] = "";
    state_init(st);
    for (int64_t v = 0; v <= upto; v++) {
        char path[1024], name[SL__DELTA_KEY_MAX];
        size_t len;
        sl__delta_commit_key(v, name); /* "_delta_log/NNN.json" */
        snprintf(path, sizeof path, "%s/%s", table_dir, name);
        char *data = read_whole(path, &len);
        if (!data)
            fail_msg("could not read \"%s\"", path);
        if (sl__delta_state_apply(st, v, data, len, eb, sizeof eb) != SL_OK)
            fail_msg("replay of \"%s\": %s", path, eb);
        free(data);
    }
}

static const sl_delta_file *state_file(const sl__delta_state *st, const char *path)
{
    for (size_t i = 0; i < st->n_files; i++)
        if (!strcmp(st->files[i].path, path))
            return &st->files[i];
    return NULL;
}

static const char *kv_get(const sl_delta_file *f, const char *key, bool *found)
{
    *found = false;
    for (size_t i = 0; i < f->n_partition_values; i++)
        if (!strcmp(f->partition_values[i].key, key)) {
            *found = true;
            return f->partition_values[i].value;
        }
    return NULL;
}

/* The two states hold the same table: protocol, metadata, files (path, partition values,
 * size, modification time, records) and txns. */
static void expect_same(const char *what, const sl__delta_state *a, const sl__delta_state *b)
{
    if (a->min_reader != b->min_reader || a->min_writer != b->min_writer)
        fail_msg("%s: protocol %d/%d against %d/%d", what, a->min_reader, a->min_writer,
                 b->min_reader, b->min_writer);
    assert_string_equal(a->table_id, b->table_id);
    assert_string_equal(a->schema_string, b->schema_string);
    assert_int_equal(a->n_partition_columns, b->n_partition_columns);
    for (size_t i = 0; i < a->n_partition_columns; i++)
        assert_string_equal(a->partition_columns[i], b->partition_columns[i]);
    if (a->n_files != b->n_files)
        fail_msg("%s: %zu active files against %zu", what, a->n_files, b->n_files);
    for (size_t i = 0; i < a->n_files; i++) {
        const sl_delta_file *fa = &a->files[i], *fb = state_file(b, fa->path);
        if (!fb)
            fail_msg("%s: \"%s\" is missing", what, fa->path);
        assert_int_equal(fa->size, fb->size);
        assert_int_equal(fa->modification_time_ms, fb->modification_time_ms);
        assert_int_equal(fa->num_records, fb->num_records);
        if (!fa->stats != !fb->stats || (fa->stats && strcmp(fa->stats, fb->stats) != 0))
            fail_msg("%s: \"%s\": stats differ", what, fa->path);
        assert_int_equal(fa->n_partition_values, fb->n_partition_values);
        for (size_t k = 0; k < fa->n_partition_values; k++) {
            bool found;
            const char *v = kv_get(fb, fa->partition_values[k].key, &found);
            if (!found)
                fail_msg("%s: \"%s\" lacks partition value \"%s\"", what, fa->path,
                         fa->partition_values[k].key);
            if ((v == NULL) != (fa->partition_values[k].value == NULL) ||
                (v && strcmp(v, fa->partition_values[k].value)))
                fail_msg("%s: \"%s\": partition value \"%s\" differs", what, fa->path,
                         fa->partition_values[k].key);
        }
    }
    assert_int_equal(a->n_txns, b->n_txns);
    for (size_t i = 0; i < a->n_txns; i++) {
        size_t k = 0;
        while (k < b->n_txns && strcmp(b->txns[k].app_id, a->txns[i].app_id))
            k++;
        if (k == b->n_txns)
            fail_msg("%s: txn \"%s\" is missing", what, a->txns[i].app_id);
        assert_int_equal(a->txns[i].version, b->txns[k].version);
    }
}

/* The last tombstone of path in st, or NULL. */
static const sl__delta_tombstone *last_tombstone(const sl__delta_state *st, const char *path)
{
    for (size_t i = st->n_tombstones; i-- > 0;)
        if (!strcmp(st->tombstones[i].path, path))
            return &st->tombstones[i];
    return NULL;
}

/* Each path a's tombstones name and a does not hold active is a tombstone of b too, with
 * the same deletion time and size; returns how many there were. */
static size_t expect_tombstones_in(const char *what, const sl__delta_state *a,
                                   const sl__delta_state *b)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_tombstones; i++) {
        const sl__delta_tombstone *ta = &a->tombstones[i];
        if (sl__delta_state_is_active(a, ta->path) || last_tombstone(a, ta->path) != ta)
            continue;
        const sl__delta_tombstone *tb = last_tombstone(b, ta->path);
        if (!tb || tb->deletion_ms != ta->deletion_ms || tb->size != ta->size)
            fail_msg("%s: the tombstone of \"%s\" is missing or differs", what, ta->path);
        n++;
    }
    return n;
}

static void commit_or_fail(const char *dir, int64_t version, const sl_delta_commit *c)
{
    char eb[512] = "", uri[600];
    sl_storage_t *store;
    snprintf(uri, sizeof uri, "file://%s", dir);
    if (sl_storage_open(uri, NULL, &store, eb, sizeof eb))
        fail_msg("open %s: %s", uri, eb);
    if (sl_delta_commit_write(store, version, c, eb, sizeof eb) != SL_OK)
        fail_msg("commit %lld: %s", (long long)version, eb);
    sl_storage_close(store);
}

static void test_checkpoint_round_trip(void **state)
{
    (void)state;
    static const sl_delta_field fields[] = {{"event_id", "string", false},
                                            {"n", "long", true},
                                            {"day", "date", true},
                                            {"region", "string", true}};
    static const char *const parts[] = {"day", "region"};
    static const sl_delta_table_def def = {fields, 4, parts, 2, "events"};
    char dir[512], eb[512] = "";
    snprintf(dir, sizeof dir, "%s/round-trip", ck_root);
    sl_delta_commit create = {.create = &def, .operation = "CREATE TABLE", .read_version = -1};
    commit_or_fail(dir, 0, &create);
    for (int64_t v = 1; v <= 40; v++) {
        char path[128], day[16], stats[160];
        snprintf(path, sizeof path, "day=2024-01-%02d/region=%s/part-%03d é b.parquet",
                 (int)(v % 28) + 1, v % 3 ? "eu" : "__HIVE_DEFAULT_PARTITION__", (int)v);
        snprintf(day, sizeof day, "2024-01-%02d", (int)(v % 28) + 1);
        snprintf(stats, sizeof stats,
                 "{\"numRecords\":%d,\"minValues\":{\"x\":%d},\"maxValues\":{\"x\":\"é\"},"
                 "\"nullCount\":{\"x\":0}}",
                 (int)v * 10, (int)v);
        sl_delta_kv pv[2] = {{"day", day}, {"region", v % 3 ? "eu" : NULL}};
        sl_delta_add add = {
            path, pv, 2, 1000 + (uint64_t)v, 1700000000000 + v, true, v % 7 ? stats : NULL};
        sl_delta_txn txn = {v % 2 ? "sluice-lake-0" : "sluice-lake-1", v * 3};
        /* Every fifth commit also removes the file of the one before (a tombstone). */
        char gone[128], gone_day[16];
        snprintf(gone, sizeof gone, "day=2024-01-%02d/region=%s/part-%03d é b.parquet",
                 (int)((v - 1) % 28) + 1, (v - 1) % 3 ? "eu" : "__HIVE_DEFAULT_PARTITION__",
                 (int)v - 1);
        snprintf(gone_day, sizeof gone_day, "2024-01-%02d", (int)((v - 1) % 28) + 1);
        sl_delta_kv gone_pv[2] = {{"day", gone_day}, {"region", (v - 1) % 3 ? "eu" : NULL}};
        sl_delta_remove rm = {gone, gone_pv, 2, 999, 1700000000000 + v, false};
        sl_delta_commit c = {.removes = &rm,
                             .n_removes = v % 5 == 0 ? 1 : 0,
                             .adds = &add,
                             .n_adds = 1,
                             .txns = &txn,
                             .n_txns = 1,
                             .operation = "WRITE",
                             .read_version = v - 1};
        commit_or_fail(dir, v, &c);
    }
    sl__delta_state replayed, decoded;
    replay_json(dir, 40, &replayed);
    assert_int_equal(replayed.n_files, 32);
    sl_buf out;
    sl_buf_init(&out, 64 << 20);
    assert_int_equal(sl__delta_checkpoint_encode(&replayed, INT64_MIN, &out, NULL, eb, sizeof eb),
                     SL_OK);
    assert_memory_equal(out.data, "PAR1", 4);
    state_init(&decoded);
    if (sl__delta_checkpoint_decode(out.data, out.len, 40, &decoded, eb, sizeof eb) != SL_OK)
        fail_msg("decode: %s", eb);
    assert_int_equal(decoded.version, 40);
    expect_same("round trip", &replayed, &decoded);
    assert_int_equal(expect_tombstones_in("round trip", &replayed, &decoded), 8);
    assert_int_equal(expect_tombstones_in("round trip back", &decoded, &replayed), 8);
    /* Tombstones deleted before the cut-off are left out. */
    sl_buf recent;
    sl_buf_init(&recent, 64 << 20);
    sl__delta_state recent_st;
    state_init(&recent_st);
    assert_int_equal(
        sl__delta_checkpoint_encode(&replayed, 1700000000000 + 21, &recent, NULL, eb, sizeof eb),
        SL_OK);
    assert_int_equal(
        sl__delta_checkpoint_decode(recent.data, recent.len, 40, &recent_st, eb, sizeof eb), SL_OK);
    assert_int_equal(expect_tombstones_in("recent", &recent_st, &replayed), 4); /* 25, 30, 35, 40 */
    sl__delta_state_cleanup(&recent_st);
    sl_buf_cleanup(&recent);
    /* A file without stats stays without; a null partition value stays null. */
    const sl_delta_file *f = state_file(&decoded, "day=2024-01-08/region=eu/part-007 é b.parquet");
    assert_non_null(f);
    assert_int_equal(f->num_records, -1);
    bool found;
    f = state_file(&decoded,
                   "day=2024-01-04/region=__HIVE_DEFAULT_PARTITION__/part-003 é b.parquet");
    assert_non_null(f);
    assert_null(kv_get(f, "region", &found));
    assert_true(found);

    /* Later JSON commits apply on top of the decoded checkpoint as on the replay. */
    sl_delta_add add = {"day=2024-02-01/region=us/late.parquet", NULL, 0, 5, 1, true, NULL};
    sl_delta_commit late = {.adds = &add, .n_adds = 1, .operation = "WRITE", .read_version = 40};
    sl_buf line;
    sl_buf_init(&line, 1 << 20);
    assert_int_equal(sl_delta_commit_format(&late, &line, eb, sizeof eb), SL_OK);
    assert_int_equal(sl__delta_state_apply(&decoded, 41, line.data, line.len, eb, sizeof eb),
                     SL_OK);
    assert_int_equal(sl__delta_state_apply(&replayed, 41, line.data, line.len, eb, sizeof eb),
                     SL_OK);
    expect_same("after a later commit", &replayed, &decoded);
    sl_buf_cleanup(&line);

    /* Every truncation and corruption of the checkpoint: an error, never a crash. */
    for (size_t cut = 0; cut < out.len; cut += 1 + cut / 32) {
        sl__delta_state st;
        state_init(&st);
        if (sl__delta_checkpoint_decode(out.data, cut, 40, &st, eb, sizeof eb) != SL_OK)
            assert_non_null(strstr(eb, "checkpoint 40"));
        sl__delta_state_cleanup(&st);
    }
    uint64_t seed = 99;
    char *copy = malloc(out.len);
    for (int round = 0; round < 200; round++) {
        memcpy(copy, out.data, out.len);
        for (int k = 0; k < 3; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            copy[(seed >> 33) % out.len] ^= (char)(1u << ((seed >> 20) % 8));
        }
        sl__delta_state st;
        state_init(&st);
        if (sl__delta_checkpoint_decode(copy, out.len, 40, &st, eb, sizeof eb) != SL_OK)
            assert_true(eb[0] != '\0');
        sl__delta_state_cleanup(&st);
    }
    free(copy);
    sl_buf_cleanup(&out);
    sl__delta_state_cleanup(&replayed);
    sl__delta_state_cleanup(&decoded);
}

/* Unpacks a golden archive of ../shared/data/delta-golden into ck_root. */
static void golden_dir(const char *name, char *out, size_t len)
{
    char cmd[1024];
    snprintf(out, len, "%s/%s/delta", ck_root, name);
    struct stat sb;
    if (stat(out, &sb) == 0)
        return;
    snprintf(cmd, sizeof cmd,
             "tar --warning=no-unknown-keyword --zstd -xf '%s/delta-golden/%s.tar.zst' -C '%s'",
             SL_TEST_DATA, name, ck_root);
    if (system(cmd) != 0)
        fail_msg("could not unpack %s", name);
}

static void expect_checkpoint_matches_replay(const char *table_dir, int64_t version)
{
    char path[1024], eb[512] = "";
    size_t len;
    snprintf(path, sizeof path, "%s/_delta_log/%020lld.checkpoint.parquet", table_dir,
             (long long)version);
    char *data = read_whole(path, &len);
    if (!data)
        fail_msg("could not read \"%s\"", path);
    sl__delta_state replayed, decoded;
    replay_json(table_dir, version, &replayed);
    state_init(&decoded);
    if (sl__delta_checkpoint_decode(data, len, version, &decoded, eb, sizeof eb) != SL_OK)
        fail_msg("\"%s\": %s", path, eb);
    expect_same(path, &replayed, &decoded);
    (void)expect_tombstones_in(path, &decoded, &replayed); /* other engines drop old ones */
    /* and sluice's own encoding of that state decodes to it again */
    sl_buf out;
    sl_buf_init(&out, 64 << 20);
    sl__delta_state again;
    state_init(&again);
    assert_int_equal(sl__delta_checkpoint_encode(&decoded, INT64_MIN, &out, NULL, eb, sizeof eb),
                     SL_OK);
    assert_int_equal(sl__delta_checkpoint_decode(out.data, out.len, version, &again, eb, sizeof eb),
                     SL_OK);
    expect_same(path, &decoded, &again);
    assert_int_equal(expect_tombstones_in(path, &again, &decoded),
                     expect_tombstones_in(path, &decoded, &again));
    sl_buf_cleanup(&out);
    sl__delta_state_cleanup(&again);
    sl__delta_state_cleanup(&replayed);
    sl__delta_state_cleanup(&decoded);
    free(data);
}

static void test_checkpoints_of_other_engines(void **state)
{
    (void)state;
    char dir[512];
    static const char *const golden[] = {"checkpoint", "basic-with-inserts-deletes-checkpoint",
                                         "corrupted-last-checkpoint-kernel"};
    for (size_t i = 0; i < sizeof golden / sizeof *golden; i++) {
        golden_dir(golden[i], dir, sizeof dir);
        expect_checkpoint_matches_replay(dir, 10);
    }
    static const struct {
        const char *name;
        int64_t version;
    } kernel[] = {{"app-txn-checkpoint", 1}, {"with_checkpoint_no_last_checkpoint", 2}};
    for (size_t i = 0; i < sizeof kernel / sizeof *kernel; i++) {
        snprintf(dir, sizeof dir, "%s/delta-kernel-tests/%s", SL_TEST_DATA, kernel[i].name);
        expect_checkpoint_matches_replay(dir, kernel[i].version);
    }
    /* Tables whose protocol needs deletion vectors: refused from the checkpoint as from
     * the JSON log, naming the feature. */
    static const char *const dv[] = {"v1-single-part-struct-stats-only",
                                     "v2-classic-parquet-struct-stats-only"};
    for (size_t i = 0; i < sizeof dv / sizeof *dv; i++) {
        char path[1024], eb[512] = "";
        size_t len;
        snprintf(path, sizeof path,
                 "%s/delta-kernel-tests/%s/_delta_log/00000000000000000005.checkpoint.parquet",
                 SL_TEST_DATA, dv[i]);
        char *data = read_whole(path, &len);
        assert_non_null(data);
        sl__delta_state st;
        state_init(&st);
        assert_int_equal(sl__delta_checkpoint_decode(data, len, 5, &st, eb, sizeof eb),
                         SL_ERR_UNSUPPORTED);
        assert_non_null(strstr(eb, "deletionVectors"));
        sl__delta_state_cleanup(&st);
        free(data);
    }
}

static int ck_setup(void **state)
{
    (void)state;
    snprintf(ck_root, sizeof ck_root, "/tmp/sluice-unit-checkpoint-XXXXXX");
    return mkdtemp(ck_root) ? 0 : -1;
}

static int ck_teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ck_root);
    return system(cmd) == 0 ? 0 : -1;
}

int sl_test_checkpoint_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_checkpoints_of_other_engines),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, ck_setup, ck_teardown);
}
