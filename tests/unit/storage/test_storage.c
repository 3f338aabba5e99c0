/* Unit tests of the storage module: URI and key rules, option checks, and the file://
 * backend end to end (put, put-if-absent races, ranged get, list order and pagination by
 * start-after, upload streams that are invisible until commit). This file holds the
 * folder's one main(); test_s3_parse.c adds the SigV4 and XML cases. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_int.h"

int sl_test_s3_parse_run(void);

static void uri_parsing(void **state)
{
    sl__storage_uri u;
    char eb[256];
    assert_int_equal(sl__storage_parse_uri("s3://my-bucket.1", &u, eb, sizeof eb), SL_OK);
    assert_int_equal(u.scheme, SL__STORAGE_S3);
    assert_string_equal(u.bucket, "my-bucket.1");
    assert_string_equal(u.path, "");
    assert_int_equal(sl__storage_parse_uri("s3://bkt/", &u, eb, sizeof eb), SL_OK);
    assert_string_equal(u.path, "");
    assert_int_equal(sl__storage_parse_uri("s3://bkt/tables/events/", &u, eb, sizeof eb), SL_OK);
    assert_string_equal(u.path, "tables/events/");
    assert_int_equal(sl__storage_parse_uri("s3://bkt//a/b", &u, eb, sizeof eb), SL_OK);
    assert_string_equal(u.path, "a/b/");
    assert_int_equal(sl__storage_parse_uri("file:///var/lake", &u, eb, sizeof eb), SL_OK);
    assert_int_equal(u.scheme, SL__STORAGE_FILE);
    assert_string_equal(u.path, "/var/lake");

    const char *bad[] = {
        "s3://",         "s3://ab",
        "s3://Bucket",   "s3://-bkt",
        "s3://bkt-",     "s3://a..b",
        "s3://bk_t/x",   "s3://bkt/a//b",
        "s3://bkt/../x", "s3://bkt/a/./b",
        "file://",       "http://bkt/x",
        "bkt/x",         "s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        eb[0] = '\0';
        if (sl__storage_parse_uri(bad[i], &u, eb, sizeof eb) != SL_ERR_CONFIG)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_non_null(strstr(eb, "\""));
    }
}

static void key_rules(void **state)
{
    assert_true(sl_storage_is_valid_key("_delta_log/00000000000000000000.json"));
    assert_true(sl_storage_is_valid_key("event_date=2024-01-15/part-1.snappy.parquet"));
    assert_true(sl_storage_is_valid_key("a b/.hidden/..x"));
    const char *bad[] = {"", "/a", "a//b", "a/", "./a", "a/../b", "..", "a\nb", "a\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (sl_storage_is_valid_key(bad[i]))
            fail_msg("\"%s\" was accepted", bad[i]);
    char k[SL_STORAGE_MAX_KEY + 2];
    memset(k, 'a', sizeof k);
    k[SL_STORAGE_MAX_KEY] = '\0';
    assert_true(sl_storage_is_valid_key(k));
    k[SL_STORAGE_MAX_KEY] = 'a';
    k[SL_STORAGE_MAX_KEY + 1] = '\0';
    assert_false(sl_storage_is_valid_key(k));
}

static void open_errors(void **state)
{
    sl_storage_t *st = (sl_storage_t *)1;
    char eb[256];
    sl_storage_options o;
    sl_storage_options_default(&o);
    o.part_size = 1024;
    assert_int_equal(sl_storage_open("file:///tmp", &o, &st, eb, sizeof eb), SL_ERR_CONFIG);
    assert_null(st);
    assert_non_null(strstr(eb, "part size 1024"));
    sl_storage_options_default(&o);
    o.access_key_id = "AK";
    o.secret_access_key = "";
    assert_int_equal(sl_storage_open("s3://bkt/x", &o, &st, eb, sizeof eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "AWS_ACCESS_KEY_ID"));
    o.secret_access_key = "SK";
    o.endpoint = "ftp://host";
    assert_int_equal(sl_storage_open("s3://bkt/x", &o, &st, eb, sizeof eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "http://"));
    o.endpoint = "http://host:9000/path";
    assert_int_equal(sl_storage_open("s3://bkt/x", &o, &st, eb, sizeof eb), SL_ERR_CONFIG);
    o.endpoint = "http://127.0.0.1:9000";
    o.region = "us east";
    assert_int_equal(sl_storage_open("s3://bkt/x", &o, &st, eb, sizeof eb), SL_ERR_CONFIG);
    o.region = "eu-west-1";
    assert_int_equal(sl_storage_open("s3://bkt/x", &o, &st, eb, sizeof eb), SL_OK);
    assert_string_equal(sl_storage_uri(st), "s3://bkt/x");
    sl_storage_close(st);
    sl_storage_close(NULL);
}

/* ---- the file backend ---- */

typedef struct fixture {
    char dir[64];
    char uri[80];
    sl_storage_t *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sl-storage-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->uri, sizeof f->uri, "file://%s/root/", f->dir);
    char eb[256];
    if (sl_storage_open(f->uri, NULL, &f->st, eb, sizeof eb) != SL_OK) {
        fprintf(stderr, "%s\n", eb);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sl_storage_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void get_str(sl_storage_t *st, const char *key, const char *want)
{
    sl_buf b;
    sl_buf_init(&b, 1 << 20);
    char eb[256];
    if (sl_storage_get(st, key, &b, eb, sizeof eb) != SL_OK)
        fail_msg("get \"%s\": %s", key, eb);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    sl_buf_cleanup(&b);
}

static void file_put_get_head_delete(void **state)
{
    fixture *f = *state;
    char eb[256];
    sl_storage_t *st = f->st;
    assert_int_equal(sl_storage_put(st, "a/b/c.txt", "hello world", 11, eb, sizeof eb), SL_OK);
    get_str(st, "a/b/c.txt", "hello world");
    assert_int_equal(sl_storage_put(st, "a/b/c.txt", "bye", 3, eb, sizeof eb), SL_OK);
    get_str(st, "a/b/c.txt", "bye");
    assert_int_equal(sl_storage_put(st, "empty", "", 0, eb, sizeof eb), SL_OK);
    get_str(st, "empty", "");

    sl_storage_info info = {0};
    assert_int_equal(sl_storage_head(st, "a/b/c.txt", &info, eb, sizeof eb), SL_OK);
    assert_int_equal(info.size, 3);
    assert_true(info.mtime_ms > INT64_C(1600000000000));
    assert_int_equal(sl_storage_head(st, "a/b", &info, eb, sizeof eb), SL_ERR_NOT_FOUND);
    assert_int_equal(sl_storage_head(st, "nope", &info, eb, sizeof eb), SL_ERR_NOT_FOUND);
    assert_non_null(strstr(eb, "nope"));

    sl_buf b;
    sl_buf_init(&b, 2);
    assert_int_equal(sl_storage_get(st, "a/b/c.txt", &b, eb, sizeof eb), SL_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    assert_int_equal(sl_storage_get(st, "missing", &b, eb, sizeof eb), SL_ERR_NOT_FOUND);
    sl_buf_cleanup(&b);

    assert_int_equal(sl_storage_delete(st, "a/b/c.txt", eb, sizeof eb), SL_OK);
    assert_int_equal(sl_storage_head(st, "a/b/c.txt", &info, eb, sizeof eb), SL_ERR_NOT_FOUND);
    assert_int_equal(sl_storage_delete(st, "a/b/c.txt", eb, sizeof eb), SL_OK); /* idempotent */

    assert_int_equal(sl_storage_put(st, "../escape", "x", 1, eb, sizeof eb), SL_ERR_INVALID);
    assert_int_equal(sl_storage_put(st, "/abs", "x", 1, eb, sizeof eb), SL_ERR_INVALID);
    assert_int_equal(sl_storage_get(st, "a//b", &b, eb, sizeof eb), SL_ERR_INVALID);
}

static void file_ranged_get(void **state)
{
    fixture *f = *state;
    char eb[256];
    assert_int_equal(sl_storage_put(f->st, "r", "0123456789", 10, eb, sizeof eb), SL_OK);
    sl_buf b;
    sl_buf_init(&b, 1024);
    assert_int_equal(sl_buf_append_str(&b, ">"), SL_OK); /* appends after what is there */
    assert_int_equal(sl_storage_get_range(f->st, "r", 2, 3, &b, eb, sizeof eb), SL_OK);
    assert_string_equal(b.data, ">234");
    sl_buf_reset(&b);
    assert_int_equal(sl_storage_get_range(f->st, "r", 8, 100, &b, eb, sizeof eb), SL_OK);
    assert_string_equal(b.data, "89");
    sl_buf_reset(&b);
    assert_int_equal(sl_storage_get_range(f->st, "r", 10, 1, &b, eb, sizeof eb), SL_ERR_INVALID);
    assert_int_equal(sl_storage_get_range(f->st, "r", UINT64_MAX, 2, &b, eb, sizeof eb),
                     SL_ERR_INVALID);
    assert_int_equal(sl_storage_get_range(f->st, "r", 0, 0, &b, eb, sizeof eb), SL_OK);
    assert_int_equal(b.len, 0);
    sl_buf_cleanup(&b);
}

static void file_put_if_absent(void **state)
{
    fixture *f = *state;
    char eb[256];
    assert_int_equal(sl_storage_put_if_absent(f->st, "_delta_log/0.json", "one", 3, eb, sizeof eb),
                     SL_OK);
    eb[0] = '\0';
    assert_int_equal(sl_storage_put_if_absent(f->st, "_delta_log/0.json", "two", 3, eb, sizeof eb),
                     SL_ERR_EXISTS);
    assert_non_null(strstr(eb, "0.json"));
    get_str(f->st, "_delta_log/0.json", "one");
}

typedef struct racer {
    sl_storage_t *st;
    int id;
    int wins;
    int errors;
} racer;

/* Each racer claims versions 0..49 in order, as Delta committers do. */
static void *race(void *p)
{
    racer *r = p;
    for (int v = 0; v < 50; v++) {
        char key[64], body[32], eb[256];
        snprintf(key, sizeof key, "_delta_log/%020d.json", v);
        int n = snprintf(body, sizeof body, "racer %d", r->id);
        sl_err err = sl_storage_put_if_absent(r->st, key, body, (size_t)n, eb, sizeof eb);
        if (err == SL_OK)
            r->wins++;
        else if (err != SL_ERR_EXISTS)
            r->errors++;
    }
    return NULL;
}

static sl_err count_entry(void *opaque, const sl_storage_entry *e)
{
    (*(size_t *)opaque)++;
    return SL_OK;
}

static void file_put_if_absent_race(void **state)
{
    fixture *f = *state;
    racer rs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        rs[i] = (racer){.st = f->st, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    int wins = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        wins += rs[i].wins;
        assert_int_equal(rs[i].errors, 0);
    }
    assert_int_equal(wins, 50); /* each version claimed exactly once */
    size_t n = 0;
    char eb[256];
    assert_int_equal(sl_storage_list(f->st, "_delta_log/", NULL, count_entry, &n, eb, sizeof eb),
                     SL_OK);
    assert_int_equal(n, 50); /* and no temporary file is listed */
}

typedef struct collected {
    char keys[32][64];
    uint64_t sizes[32];
    size_t n;
    size_t stop_after;
} collected;

static sl_err collect(void *opaque, const sl_storage_entry *e)
{
    collected *c = opaque;
    if (c->n == c->stop_after)
        return SL_ERR_CLOSED;
    snprintf(c->keys[c->n], sizeof c->keys[c->n], "%s", e->key);
    c->sizes[c->n++] = e->size;
    return SL_OK;
}

static void file_list(void **state)
{
    fixture *f = *state;
    char eb[256];
    const char *keys[] = {"t/_delta_log/00000000000000000001.json",
                          "t/_delta_log/00000000000000000000.json",
                          "t/event_date=2024-01-15/part-b.parquet",
                          "t/event_date=2024-01-15/part-a.parquet",
                          "t/_delta_log/_last_checkpoint",
                          "t2/x",
                          "t-dash"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        assert_int_equal(sl_storage_put(f->st, keys[i], keys[i], i, eb, sizeof eb), SL_OK);
    /* A stray temporary file of a crashed writer is never listed. */
    char stray[256];
    snprintf(stray, sizeof stray, "%s/root/t/_delta_log/.sl-tmp-crashed", f->dir);
    FILE *fp = fopen(stray, "w");
    assert_non_null(fp);
    fclose(fp);

    collected c = {.stop_after = 99};
    assert_int_equal(sl_storage_list(f->st, "t/", NULL, collect, &c, eb, sizeof eb), SL_OK);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.keys[0], "t/_delta_log/00000000000000000000.json");
    assert_int_equal(c.sizes[0], 1);
    assert_string_equal(c.keys[1], "t/_delta_log/00000000000000000001.json");
    assert_string_equal(c.keys[2], "t/_delta_log/_last_checkpoint");
    assert_string_equal(c.keys[3], "t/event_date=2024-01-15/part-a.parquet");
    assert_string_equal(c.keys[4], "t/event_date=2024-01-15/part-b.parquet");

    /* A prefix that ends inside a name, and start-after (how Delta lists from a version). */
    memset(&c, 0, sizeof c);
    c.stop_after = 99;
    assert_int_equal(sl_storage_list(f->st, "t/_delta_log/0000",
                                     "t/_delta_log/00000000000000000000.json", collect, &c, eb,
                                     sizeof eb),
                     SL_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.keys[0], "t/_delta_log/00000000000000000001.json");

    /* Everything, in byte order ('-' < '/' < '2'). */
    memset(&c, 0, sizeof c);
    c.stop_after = 99;
    assert_int_equal(sl_storage_list(f->st, NULL, NULL, collect, &c, eb, sizeof eb), SL_OK);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.keys[0], "t-dash");
    assert_string_equal(c.keys[6], "t2/x");

    /* The callback stops the listing with its own code. */
    memset(&c, 0, sizeof c);
    c.stop_after = 2;
    assert_int_equal(sl_storage_list(f->st, "", NULL, collect, &c, eb, sizeof eb), SL_ERR_CLOSED);
    assert_int_equal(c.n, 2);

    memset(&c, 0, sizeof c);
    c.stop_after = 99;
    assert_int_equal(sl_storage_list(f->st, "nothing/here", NULL, collect, &c, eb, sizeof eb),
                     SL_OK);
    assert_int_equal(c.n, 0);
}

static size_t count_dir(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.' || strncmp(de->d_name, ".sl-tmp-", 8) == 0)
            n++;
    if (d)
        closedir(d);
    return n;
}

static void file_upload_stream(void **state)
{
    fixture *f = *state;
    char eb[256];
    sl_storage_upload_t *up;
    assert_int_equal(sl_storage_upload_new(f->st, "data/part-1.parquet", &up, eb, sizeof eb),
                     SL_OK);
    sl_ostream *os = sl_storage_upload_stream(up);
    char chunk[1000];
    for (int i = 0; i < 1000; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        assert_int_equal(os->write(os, chunk, sizeof chunk), SL_OK);
    }
    assert_int_equal(os->written, 1000000);
    assert_int_equal(os->flush(os), SL_OK);
    sl_storage_info info;
    assert_int_equal(sl_storage_head(f->st, "data/part-1.parquet", &info, eb, sizeof eb),
                     SL_ERR_NOT_FOUND); /* invisible until commit */
    assert_int_equal(sl_storage_upload_commit(up, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_storage_upload_commit(up, eb, sizeof eb), SL_ERR_INVALID);
    sl_storage_upload_free(up);
    assert_int_equal(sl_storage_head(f->st, "data/part-1.parquet", &info, eb, sizeof eb), SL_OK);
    assert_int_equal(info.size, 1000000);
    sl_buf b;
    sl_buf_init(&b, 4096);
    assert_int_equal(
        sl_storage_get_range(f->st, "data/part-1.parquet", 999999, 10, &b, eb, sizeof eb), SL_OK);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 'a' + 999 % 26);
    sl_buf_cleanup(&b);

    /* Abandoned: freed without commit leaves no object and no temporary file. */
    assert_int_equal(sl_storage_upload_new(f->st, "data/part-2.parquet", &up, eb, sizeof eb),
                     SL_OK);
    os = sl_storage_upload_stream(up);
    assert_int_equal(os->write(os, "partial", 7), SL_OK);
    sl_storage_upload_free(up);
    sl_storage_upload_free(NULL);
    assert_int_equal(sl_storage_head(f->st, "data/part-2.parquet", &info, eb, sizeof eb),
                     SL_ERR_NOT_FOUND);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/root/data", f->dir);
    assert_int_equal(count_dir(dir), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uri_parsing),
        cmocka_unit_test(key_rules),
        cmocka_unit_test(open_errors),
        cmocka_unit_test_setup_teardown(file_put_get_head_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(file_ranged_get, setup, teardown),
        cmocka_unit_test_setup_teardown(file_put_if_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(file_put_if_absent_race, setup, teardown),
        cmocka_unit_test_setup_teardown(file_list, setup, teardown),
        cmocka_unit_test_setup_teardown(file_upload_stream, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("storage", tests, NULL, NULL);
    return failed | sl_test_s3_parse_run();
}
