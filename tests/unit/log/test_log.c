/* Unit tests of the log module: the Kafka partitioner, URI dispatch, and the embedded
 * LMDB backend (durability across reopen, offsets, consumers and groups, locks,
 * back-pressure, retention, a full map, close draining, corrupt records, sl_log_print).
 * Each test works in its own mkdtemp directory under /tmp and removes it. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "log/log.h"
#include "log/log_int.h"
#include "log_fixture.h"

/* tests/unit/log/test_kafka.c */
int sl_test_kafka_group(void);
/* tests/unit/log/test_wal.c */
int sl_test_wal_group(void);
/* tests/unit/log/test_batch.c */
int sl_test_batch_group(void);

/* ---- helpers ---- */

typedef sl_test_log_dir fixture;
#define setup_dir    sl_test_log_dir_setup
#define teardown_dir sl_test_log_dir_teardown

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Records every append callback: order and outcome. */
#define MAX_CB 20000
typedef struct cbrec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    size_t n;
    size_t ok;
    uintptr_t ids[MAX_CB];
    sl_err errs[MAX_CB];
    char last_detail[256];
} cbrec;

typedef struct cbarg {
    cbrec *rec;
    uintptr_t id;
} cbarg;

static cbrec *cbrec_new(void)
{
    cbrec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    return r;
}

static void cbrec_free(cbrec *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
}

static void on_append(void *opaque, sl_err err, const char *detail)
{
    cbarg *a = opaque;
    cbrec *r = a->rec;
    pthread_mutex_lock(&r->mu);
    if (r->n < MAX_CB) {
        r->ids[r->n] = a->id;
        r->errs[r->n] = err;
    }
    r->n++;
    if (err == SL_OK)
        r->ok++;
    else if (detail)
        snprintf(r->last_detail, sizeof r->last_detail, "%s", detail);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    free(a);
}

static sl_err append_one(sl_log_t *log, cbrec *r, uintptr_t id, const char *key, const char *value)
{
    sl_log_record rec = {key, key ? strlen(key) : 0, value, strlen(value)};
    cbarg *a = malloc(sizeof *a);
    assert_non_null(a);
    *a = (cbarg){r, id};
    sl_err err = sl_log_append(log, &rec, 1, on_append, a);
    if (err)
        free(a);
    return err;
}

static void wait_callbacks(cbrec *r, size_t n)
{
    pthread_mutex_lock(&r->mu);
    while (r->n < n)
        pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* Small files: 64 MiB map, 16 MiB retention. */
static sl_log_t *open_log(const char *uri, bool producer, unsigned partitions)
{
    return sl_test_open_log(uri, producer, partitions, 64ull << 20, 16ull << 20);
}

/* Reads every message from the beginning without a group. */
typedef struct readback {
    size_t n;
    unsigned partition[4096];
    uint64_t offset[4096];
    char value[4096][64];
    char key[4096][32];
} readback;

static void read_all(sl_log_t *log, readback *rb)
{
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    rb->n = 0;
    sl_log_message msgs[64];
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 64, &n, 0), SL_OK);
        for (size_t i = 0; i < n && rb->n < 4096; i++) {
            rb->partition[rb->n] = msgs[i].partition;
            rb->offset[rb->n] = msgs[i].offset;
            snprintf(rb->value[rb->n], 64, "%.*s", (int)msgs[i].value_len, msgs[i].value);
            snprintf(rb->key[rb->n], 32, "%.*s", (int)msgs[i].key_len, msgs[i].key);
            rb->n++;
        }
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    sl_log_consumer_close(c);
}

/* ---- partitioner ---- */

static void test_murmur2_matches_kafka(void **state)
{
    (void)state;
    /* Values from Kafka's Java Utils.murmur2 (run on this machine with javac). */
    struct {
        const char *s;
        int32_t h;
    } cases[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
        {"", 275646681},
        {"session-\xc3\xa9t\xc3\xa9", -1237613068},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(sl__log_murmur2(cases[i].s, strlen(cases[i].s)), cases[i].h);
    /* Bytes >= 0x80: Java masks with 0xff, so no sign extension may leak in. */
    const unsigned char hi[] = {0xff, 0x80, 0xfe, 1, 2, 0x99, 0xaa};
    assert_int_equal(sl__log_murmur2(hi, sizeof hi), 649700276);

    /* toPositive(h) % n, as Kafka's DefaultPartitioner. */
    assert_int_equal(sl_log_partition_for_key("21", 2, 8), 4);
    assert_int_equal(sl_log_partition_for_key("foobar", 6, 8), 6);
    assert_int_equal(sl_log_partition_for_key("a-little-bit-long-string", 24, 8), 0);
    assert_int_equal(sl_log_partition_for_key("a-little-bit-longer-string", 26, 3), 2);
    assert_int_equal(sl_log_partition_for_key("abc", 3, 8), 3);
    assert_int_equal(sl_log_partition_for_key("", 0, 8), 1);
    assert_int_equal(sl_log_partition_for_key((const char *)hi, sizeof hi, 8), 4);
}

/* ---- URIs and options ---- */

static void test_bad_uri_and_options(void **state)
{
    fixture *fx = *state;
    sl_log_t *log = (sl_log_t *)0x1;
    char eb[256] = "";
    assert_int_equal(sl_log_open("http://example.com/x", NULL, &log, eb, sizeof eb), SL_ERR_CONFIG);
    assert_null(log);
    assert_non_null(strstr(eb, "\"http://example.com/x\""));

    /* Bad kafka URIs fail before any broker is contacted. */
    assert_int_equal(sl_log_open("kafka:///analytics-events", NULL, &log, eb, sizeof eb),
                     SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "names no broker"));
    assert_int_equal(sl_log_open("kafka://localhost:9092/bad topic", NULL, &log, eb, sizeof eb),
                     SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "invalid kafka topic \"bad topic\""));

    assert_int_equal(sl_log_open("file://", NULL, &log, eb, sizeof eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "file://"));

    sl_log_options o;
    sl_log_options_default(&o);
    o.partitions = 0;
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "partitions"));
    sl_log_options_default(&o);
    o.max_size_bytes = 1000;
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_ERR_CONFIG);
    assert_non_null(strstr(eb, "max_size_bytes"));

    /* A path under a regular file cannot be created. */
    char uri[160];
    snprintf(uri, sizeof uri, "file://%s/afile/log", fx->dir);
    char path[128];
    snprintf(path, sizeof path, "%s/afile", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_not_equal(sl_log_open(uri, NULL, &log, eb, sizeof eb), SL_OK);
    assert_non_null(strstr(eb, "could not open log"));
}

static void test_defaults(void **state)
{
    (void)state;
    sl_log_options o;
    sl_log_options_default(&o);
    assert_false(o.producer);
    assert_int_equal(o.partitions, 8);
    assert_int_equal(o.retention_bytes, 1ull << 30);
    assert_int_equal(o.retention_ms, 7ull * 24 * 3600 * 1000);
    assert_int_equal(o.max_pending_bytes, 64u << 20);
    assert_int_equal(o.max_size_bytes, 4ull << 30);
}

/* ---- append, durability, offsets ---- */

static void test_append_order_and_durability(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 4);
    assert_int_equal(sl_log_partition_count(log), 4);

    enum { UNITS = 300 };
    size_t records = 0;
    for (uintptr_t u = 0; u < UNITS; u++) {
        sl_log_record recs[3];
        char keys[3][32], vals[3][64];
        size_t n = 1 + u % 3;
        for (size_t i = 0; i < n; i++) {
            snprintf(keys[i], sizeof keys[i], "session-%u", (unsigned)((u * 7 + i) % 23));
            snprintf(vals[i], sizeof vals[i], "{\"unit\":%u,\"i\":%u}", (unsigned)u, (unsigned)i);
            /* Every 10th unit has a keyless record: spread round-robin. */
            bool keyless = u % 10 == 0 && i == 0;
            recs[i] = (sl_log_record){keyless ? NULL : keys[i], keyless ? 0 : strlen(keys[i]),
                                      vals[i], strlen(vals[i])};
        }
        cbarg *a = malloc(sizeof *a);
        *a = (cbarg){r, u};
        assert_int_equal(sl_log_append(log, recs, n, on_append, a), SL_OK);
        records += n;
    }
    wait_callbacks(r, UNITS);
    for (size_t i = 0; i < UNITS; i++) {
        assert_int_equal(r->ids[i], i); /* callbacks in append order */
        assert_int_equal(r->errs[i], SL_OK);
    }
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, records);
    assert_int_equal(st.appended_total, records);
    assert_true(st.commits_total >= 1 && st.commits_total <= UNITS);
    assert_int_equal(st.pending_bytes, 0);
    assert_true(st.healthy);
    assert_true(st.bytes > 0);
    sl_log_close(log);

    /* Reopen read-only, in a fresh handle: everything is there, exactly once. */
    log = open_log(fx->uri, false, 4);
    readback *rb = calloc(1, sizeof *rb);
    read_all(log, rb);
    assert_int_equal(rb->n, records);
    uint64_t next[4] = {0};
    bool seen[UNITS][3] = {{false}};
    for (size_t i = 0; i < rb->n; i++) {
        unsigned p = rb->partition[i];
        assert_true(p < 4);
        /* Per partition, offsets come in order, from 0, without a gap. */
        assert_int_equal(rb->offset[i], next[p]);
        next[p]++;
        unsigned u, k;
        assert_int_equal(sscanf(rb->value[i], "{\"unit\":%u,\"i\":%u}", &u, &k), 2);
        assert_false(seen[u][k]);
        seen[u][k] = true;
        if (rb->key[i][0])
            assert_int_equal(p, sl_log_partition_for_key(rb->key[i], strlen(rb->key[i]), 4));
    }
    sl_log_stats st2;
    sl_log_get_stats(log, &st2);
    assert_int_equal(st2.records, records);
    assert_int_equal(st2.bytes, st.bytes);
    sl_log_close(log);

    /* Offsets continue after reopen. */
    log = open_log(fx->uri, true, 4);
    assert_int_equal(append_one(log, r, 999, "21", "after"), SL_OK);
    wait_callbacks(r, UNITS + 1);
    sl_log_close(log);
    log = open_log(fx->uri, false, 4);
    read_all(log, rb);
    assert_int_equal(rb->n, records + 1);
    unsigned p21 = sl_log_partition_for_key("21", 2, 4);
    bool found = false;
    for (size_t i = 0; i < rb->n; i++) {
        if (strcmp(rb->value[i], "after") == 0) {
            assert_int_equal(rb->partition[i], p21);
            assert_int_equal(rb->offset[i], next[p21]);
            found = true;
        }
    }
    assert_true(found);
    sl_log_close(log);
    free(rb);
    cbrec_free(r);
}

static void test_partition_count_is_kept(void **state)
{
    fixture *fx = *state;
    sl_log_t *log = open_log(fx->uri, true, 3);
    assert_int_equal(sl_log_partition_count(log), 3);
    sl_log_close(log);
    log = open_log(fx->uri, true, 16);
    assert_int_equal(sl_log_partition_count(log), 3);
    sl_log_close(log);
}

/* A log's identity is a UUID fixed at creation: the same for a reader and after reopening,
 * another for a log created anew in the same place, and created for a log that has none. */
static void test_identity(void **state)
{
    fixture *fx = *state;
    char first[64];
    sl_log_t *log = open_log(fx->uri, true, 2);
    snprintf(first, sizeof first, "%s", sl_log_identity(log));
    assert_int_equal(strlen(first), 36);
    sl_log_close(log);
    log = open_log(fx->uri, false, 2);
    assert_string_equal(sl_log_identity(log), first);
    sl_log_close(log);

    /* A log from before identities: the id is added at the next open, then kept. */
    sl_test_raw raw;
    sl_test_raw_begin(&raw, fx->logdir, "meta", 0, false);
    MDB_val k = {2, "id"};
    assert_int_equal(mdb_del(raw.txn, raw.dbi, &k, NULL), 0);
    sl_test_raw_end(&raw);
    log = open_log(fx->uri, true, 2);
    char added[64];
    snprintf(added, sizeof added, "%s", sl_log_identity(log));
    assert_int_equal(strlen(added), 36);
    assert_string_not_equal(added, first);
    sl_log_close(log);
    log = open_log(fx->uri, false, 2);
    assert_string_equal(sl_log_identity(log), added);
    sl_log_close(log);

    /* The same directory wiped and used again: a new log, a new identity. */
    sl_test_rm_tree(fx->dir);
    assert_int_equal(mkdir(fx->dir, 0700), 0);
    log = open_log(fx->uri, true, 2);
    assert_string_not_equal(sl_log_identity(log), added);
    sl_log_close(log);
}

static void test_append_errors(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, false, 2);
    assert_int_equal(append_one(log, r, 0, "k", "v"), SL_ERR_UNSUPPORTED);
    sl_log_close(log);
    log = open_log(fx->uri, true, 2);
    assert_int_equal(sl_log_append(log, NULL, 0, on_append, NULL), SL_ERR_INVALID);
    sl_log_close(log);
    assert_int_equal(r->n, 0);
    cbrec_free(r);
}

/* ---- locks ---- */

static void test_producer_lock_busy(void **state)
{
    fixture *fx = *state;
    sl_log_t *log = open_log(fx->uri, true, 2);
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    sl_log_t *log2 = NULL;
    char eb[256] = "";
    assert_int_equal(sl_log_open(fx->uri, &o, &log2, eb, sizeof eb), SL_ERR_BUSY);
    assert_null(log2);
    char want[200];
    snprintf(want, sizeof want, "log \"%s/log\" is already open for writing by another process",
             fx->dir);
    assert_string_equal(eb, want);

    /* A reader handle in the same process shares the environment and sees the data. */
    cbrec *r = cbrec_new();
    sl_log_t *reader = open_log(fx->uri, false, 2);
    assert_int_equal(append_one(log, r, 1, "k", "shared"), SL_OK);
    wait_callbacks(r, 1);
    readback *rb = calloc(1, sizeof *rb);
    read_all(reader, rb);
    assert_int_equal(rb->n, 1);
    assert_string_equal(rb->value[0], "shared");
    free(rb);
    sl_log_close(reader);
    sl_log_close(log);

    /* Released on close. */
    assert_int_equal(sl_log_open(fx->uri, &o, &log2, eb, sizeof eb), SL_OK);
    sl_log_close(log2);
    cbrec_free(r);
}

static void test_group_lock_and_names(void **state)
{
    fixture *fx = *state;
    sl_log_t *log = open_log(fx->uri, true, 2);
    sl_log_consumer_t *c1 = NULL, *c2 = NULL, *c3 = NULL;
    char eb[256] = "";
    sl_log_consumer_options co = {.group = "sluice-pg"};
    assert_int_equal(sl_log_consumer_open(log, &co, &c1, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_log_consumer_open(log, &co, &c2, eb, sizeof eb), SL_ERR_BUSY);
    assert_null(c2);
    assert_non_null(strstr(eb, "\"sluice-pg\""));
    sl_log_consumer_options other = {.group = "sluice-lake"};
    assert_int_equal(sl_log_consumer_open(log, &other, &c3, eb, sizeof eb), SL_OK);
    sl_log_consumer_close(c1);
    assert_int_equal(sl_log_consumer_open(log, &co, &c2, eb, sizeof eb), SL_OK);
    sl_log_consumer_close(c2);
    sl_log_consumer_close(c3);

    char longname[102];
    memset(longname, 'a', 101);
    longname[101] = '\0';
    const char *bad[] = {"", "a/b", "../x", "has space", "caf\xc3\xa9", longname};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_log_consumer_options b = {.group = bad[i]};
        sl_log_consumer_t *c = (sl_log_consumer_t *)0x1;
        assert_int_equal(sl_log_consumer_open(log, &b, &c, eb, sizeof eb), SL_ERR_INVALID);
        assert_null(c);
        assert_non_null(strstr(eb, "group name"));
    }
    longname[100] = '\0'; /* exactly 100 is fine */
    sl_log_consumer_options ok = {.group = longname};
    assert_int_equal(sl_log_consumer_open(log, &ok, &c1, eb, sizeof eb), SL_OK);
    sl_log_consumer_close(c1);
    sl_log_close(log);
}

/* ---- consumers ---- */

typedef struct assign_rec {
    int assigned;
    int revoked;
    size_t n;
} assign_rec;

static void on_assign(void *opaque, const unsigned *parts, size_t n)
{
    assign_rec *a = opaque;
    a->assigned++;
    a->n = n;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(parts[i], i);
}

static void on_revoke(void *opaque, const unsigned *parts, size_t n)
{
    (void)parts;
    assign_rec *a = opaque;
    a->revoked++;
    a->n = n;
}

static void fill(sl_log_t *log, cbrec *r, size_t n, const char *prefix)
{
    size_t before;
    pthread_mutex_lock(&r->mu);
    before = r->n;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        char key[32], val[64];
        snprintf(key, sizeof key, "s%zu", i % 17);
        snprintf(val, sizeof val, "%s-%zu", prefix, i);
        assert_int_equal(append_one(log, r, i, key, val), SL_OK);
    }
    wait_callbacks(r, before + n);
}

static void test_consumer_commit_resume(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 3);
    fill(log, r, 60, "a");

    assign_rec ar = {0};
    sl_log_consumer_options co = {
        .group = "g1", .on_assign = on_assign, .on_revoke = on_revoke, .opaque = &ar};
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    assert_int_equal(ar.assigned, 1);
    assert_int_equal(ar.n, 3);
    uint64_t off;
    assert_int_equal(sl_log_consumer_committed(c, 0, &off), SL_ERR_NOT_FOUND);
    assert_int_equal(sl_log_consumer_committed(c, 7, &off), SL_ERR_INVALID);

    sl_log_message msgs[25];
    size_t n = 0;
    assert_int_equal(sl_log_consumer_poll(c, msgs, 25, &n, 0), SL_OK);
    assert_int_equal(n, 25);
    assert_false(sl_log_consumer_is_caught_up(c));
    /* Fair: every partition contributes to a batch when all have data. */
    bool from[3] = {false};
    uint64_t nextp[3] = {0};
    for (size_t i = 0; i < n; i++) {
        from[msgs[i].partition] = true;
        assert_int_equal(msgs[i].offset, nextp[msgs[i].partition]);
        nextp[msgs[i].partition]++;
        assert_true(msgs[i].timestamp_ms > 1600000000000ll);
    }
    assert_true(from[0] && from[1] && from[2]);
    sl_log_position pos[3];
    for (unsigned p = 0; p < 3; p++)
        pos[p] = (sl_log_position){p, nextp[p]};
    assert_int_equal(sl_log_consumer_commit(c, pos, 3), SL_OK);
    for (unsigned p = 0; p < 3; p++) {
        assert_int_equal(sl_log_consumer_committed(c, p, &off), SL_OK);
        assert_int_equal(off, nextp[p]);
    }
    sl_log_position badpos = {9, 1};
    assert_int_equal(sl_log_consumer_commit(c, &badpos, 1), SL_ERR_INVALID);
    assert_non_null(strstr(sl_log_consumer_errmsg(c), "partition 9"));
    sl_log_consumer_close(c);
    assert_int_equal(ar.revoked, 1);
    sl_log_close(log);

    /* Reopen everything: the group resumes exactly where it committed. */
    log = open_log(fx->uri, true, 3);
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    size_t total = 0;
    for (;;) {
        assert_int_equal(sl_log_consumer_poll(c, msgs, 25, &n, 0), SL_OK);
        for (size_t i = 0; i < n; i++) {
            unsigned p = msgs[i].partition;
            assert_int_equal(msgs[i].offset, nextp[p]);
            nextp[p]++;
        }
        total += n;
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    assert_int_equal(total, 35);
    assert_true(sl_log_consumer_is_caught_up(c));
    sl_log_consumer_close(c);

    /* from_beginning ignores the committed offsets. */
    co.from_beginning = true;
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_log_consumer_poll(c, msgs, 25, &n, 0), SL_OK);
    assert_int_equal(n, 25);
    for (size_t i = 0; i < n; i++)
        assert_true(msgs[i].offset < 25);
    /* A consumer without a group cannot commit. */
    sl_log_consumer_close(c);
    sl_log_consumer_options nog = {0};
    assert_int_equal(sl_log_consumer_open(log, &nog, &c, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_log_consumer_commit(c, pos, 1), SL_ERR_INVALID);
    assert_int_equal(sl_log_consumer_committed(c, 0, &off), SL_ERR_NOT_FOUND);
    sl_log_consumer_close(c);
    sl_log_close(log);
    cbrec_free(r);
}

/* Shares of one group split the partitions: each reads only its own (p % shares ==
 * share), together they read every record once, and a consumer that would overlap a
 * share's partitions is refused, in this process as in another. */
static void test_consumer_shares(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 5);
    fill(log, r, 100, "s");
    char eb[256] = "";
    sl_log_consumer_t *c[2] = {NULL, NULL}, *other = NULL;
    for (unsigned i = 0; i < 2; i++) {
        sl_log_consumer_options co = {.group = "g", .share = i, .shares = 2};
        assert_int_equal(sl_log_consumer_open(log, &co, &c[i], eb, sizeof eb), SL_OK);
    }
    /* the whole group, or a share again, overlaps */
    sl_log_consumer_options whole = {.group = "g"};
    assert_int_equal(sl_log_consumer_open(log, &whole, &other, eb, sizeof eb), SL_ERR_BUSY);
    assert_non_null(strstr(eb, "already has a consumer"));
    sl_log_consumer_options again = {.group = "g", .share = 1, .shares = 2};
    assert_int_equal(sl_log_consumer_open(log, &again, &other, eb, sizeof eb), SL_ERR_BUSY);
    assert_non_null(strstr(eb, "of these partitions"));
    sl_log_consumer_options out_of_range = {.group = "h", .share = 2, .shares = 2};
    assert_int_equal(sl_log_consumer_open(log, &out_of_range, &other, eb, sizeof eb),
                     SL_ERR_INVALID);
    assert_non_null(strstr(eb, "share 2 is out of range"));
    sl_log_consumer_options empty = {.group = "h", .share = 5, .shares = 6};
    assert_int_equal(sl_log_consumer_open(log, &empty, &other, eb, sizeof eb), SL_ERR_INVALID);
    assert_non_null(strstr(eb, "holds none"));

    size_t total = 0;
    for (unsigned i = 0; i < 2; i++) {
        sl_log_message msgs[16];
        size_t n;
        uint64_t next[5] = {0};
        do {
            assert_int_equal(sl_log_consumer_poll(c[i], msgs, 16, &n, 0), SL_OK);
            for (size_t k = 0; k < n; k++) {
                assert_int_equal(msgs[k].partition % 2, i);
                assert_int_equal(msgs[k].offset, next[msgs[k].partition]++);
            }
            total += n;
        } while (n > 0 || !sl_log_consumer_is_caught_up(c[i]));
    }
    assert_int_equal(total, 100);
    sl_log_consumer_close(c[0]);
    /* share 0's partitions are free again: the whole group still overlaps share 1 */
    assert_int_equal(sl_log_consumer_open(log, &whole, &other, eb, sizeof eb), SL_ERR_BUSY);
    sl_log_consumer_close(c[1]);
    assert_int_equal(sl_log_consumer_open(log, &whole, &other, eb, sizeof eb), SL_OK);
    sl_log_consumer_close(other);
    sl_log_close(log);
    cbrec_free(r);
}

static void test_seek(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 1);
    fill(log, r, 20, "v");
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, NULL, &c, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_log_consumer_seek(c, 0, 15), SL_OK);
    assert_int_equal(sl_log_consumer_seek(c, 1, 0), SL_ERR_INVALID);
    sl_log_message msgs[10];
    size_t n = 0;
    assert_int_equal(sl_log_consumer_poll(c, msgs, 10, &n, 0), SL_OK);
    assert_int_equal(n, 5);
    assert_int_equal(msgs[0].offset, 15);
    assert_memory_equal(msgs[0].value, "v-15", 4);
    assert_int_equal(msgs[0].value_len, 4);
    assert_int_equal(msgs[0].key_len, 3);
    assert_true(sl_log_consumer_is_caught_up(c));
    assert_int_equal(sl_log_consumer_seek(c, 0, 3), SL_OK);
    assert_false(sl_log_consumer_is_caught_up(c));
    assert_int_equal(sl_log_consumer_poll(c, msgs, 1, &n, 0), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].offset, 3);
    sl_log_consumer_close(c);
    sl_log_close(log);
    cbrec_free(r);
}

typedef struct delayed_append {
    sl_log_t *log;
    cbrec *r;
    int delay_ms;
} delayed_append;

static void *append_later(void *arg)
{
    delayed_append *d = arg;
    sleep_ms(d->delay_ms);
    assert_int_equal(append_one(d->log, d->r, 1, "k", "late"), SL_OK);
    return NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_poll_waits_and_wakes(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 2);
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, NULL, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[4];
    size_t n = 1;
    int64_t t0 = mono_ms();
    assert_int_equal(sl_log_consumer_poll(c, msgs, 4, &n, 60), SL_OK);
    assert_int_equal(n, 0);
    assert_true(mono_ms() - t0 >= 55);
    assert_true(sl_log_consumer_is_caught_up(c));

    /* An append from another thread wakes a waiting poll long before its timeout. */
    delayed_append d = {log, r, 50};
    pthread_t th;
    pthread_create(&th, NULL, append_later, &d);
    t0 = mono_ms();
    assert_int_equal(sl_log_consumer_poll(c, msgs, 4, &n, 5000), SL_OK);
    int64_t waited = mono_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(n, 1);
    assert_memory_equal(msgs[0].value, "late", 4);
    assert_true(waited < 2000);
    sl_log_consumer_close(c);

    /* A reader handle without a writer in the process falls back to polling in steps. */
    wait_callbacks(r, 1);
    sl_log_close(log);
    log = open_log(fx->uri, false, 2);
    assert_int_equal(sl_log_consumer_open(log, NULL, &c, eb, sizeof eb), SL_OK);
    assert_int_equal(sl_log_consumer_poll(c, msgs, 4, &n, 0), SL_OK);
    assert_int_equal(n, 1);
    t0 = mono_ms();
    assert_int_equal(sl_log_consumer_poll(c, msgs, 4, &n, 80), SL_OK);
    assert_int_equal(n, 0);
    assert_true(mono_ms() - t0 >= 75);
    sl_log_consumer_close(c);
    sl_log_close(log);
    cbrec_free(r);
}

static void test_poll_byte_cap(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 1);
    size_t big = (size_t)5 << 20; /* two do not fit in one poll's 8 MiB */
    char *val = malloc(big + 1);
    assert_non_null(val);
    memset(val, 'b', big);
    val[big] = '\0';
    for (uintptr_t i = 0; i < 3; i++)
        assert_int_equal(append_one(log, r, i, "k", val), SL_OK);
    wait_callbacks(r, 3);
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, NULL, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[10];
    size_t n = 0, total = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_log_consumer_poll(c, msgs, 10, &n, 0), SL_OK);
        assert_int_equal(n, 1);
        assert_int_equal(msgs[0].offset, (uint64_t)i);
        assert_int_equal(msgs[0].value_len, big);
        assert_int_equal(msgs[0].value[big - 1], 'b');
        total += n;
    }
    assert_int_equal(total, 3);
    assert_int_equal(sl_log_consumer_poll(c, msgs, 10, &n, 0), SL_OK);
    assert_int_equal(n, 0);
    assert_true(sl_log_consumer_is_caught_up(c));
    sl_log_consumer_close(c);
    sl_log_close(log);
    free(val);
    cbrec_free(r);
}

/* ---- back-pressure and close ---- */

static void test_backpressure_busy(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.max_pending_bytes = 8192;
    o.max_size_bytes = 16ull << 20;
    sl_log_t *log = NULL;
    char eb[256];
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);

    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    size_t accepted = 0, busy = 0;
    for (int i = 0; i < 2000 && busy == 0; i++) {
        sl_err err = append_one(log, r, (uintptr_t)i, "k", big);
        if (err == SL_OK)
            accepted++;
        else if (err == SL_ERR_BUSY)
            busy++;
        else
            fail_msg("unexpected %s", sl_strerror(err));
    }
    assert_true(busy > 0); /* refused at once, never blocked */
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_true(st.pending_bytes <= 8192);

    /* A unit that could never fit is refused as too large, not as busy. */
    static char huge[9000];
    memset(huge, 'y', sizeof huge - 1);
    assert_int_equal(append_one(log, r, 0, "k", huge), SL_ERR_TOO_LARGE);

    wait_callbacks(r, accepted);
    sl_log_get_stats(log, &st);
    assert_int_equal(st.pending_bytes, 0);
    assert_int_equal(append_one(log, r, 0, "k", big), SL_OK); /* room again */
    sl_log_close(log);
    assert_int_equal(r->n, accepted + 1);
    assert_int_equal(r->ok, accepted + 1);
    cbrec_free(r);
}

static void test_close_drains_pending(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 8);
    size_t accepted = 0;
    for (int i = 0; i < 2000; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        if (append_one(log, r, (uintptr_t)i, key, "pending") == SL_OK)
            accepted++;
    }
    sl_log_close(log); /* must not return before every callback ran */
    assert_int_equal(r->n, accepted);
    assert_int_equal(r->ok, accepted);
    log = open_log(fx->uri, false, 8);
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, accepted);
    sl_log_close(log);
    cbrec_free(r);
}

/* ---- retention ---- */

static void test_retention_by_bytes(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.partitions = 2;
    o.retention_bytes = 10000;
    o.max_size_bytes = 16ull << 20;
    sl_log_t *log = NULL;
    char eb[256];
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    static char val[1000];
    memset(val, 'r', sizeof val - 4);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(append_one(log, r, (uintptr_t)i, key, val), SL_OK);
        if (i % 10 == 9)
            wait_callbacks(r, (size_t)i + 1);
    }
    wait_callbacks(r, 100);
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_true(st.bytes <= 10000);
    assert_true(st.bytes >= 10000 - 1000);
    assert_true(st.records >= 9 && st.records <= 10);
    assert_int_equal(st.appended_total, 100);

    /* What remains is the newest, and offsets were not reused. */
    readback *rb = calloc(1, sizeof *rb);
    read_all(log, rb);
    assert_int_equal(rb->n, st.records);
    uint64_t max_off = 0;
    for (size_t i = 0; i < rb->n; i++)
        max_off = rb->offset[i] > max_off ? rb->offset[i] : max_off;
    assert_true(max_off >= 40); /* 100 records over 2 partitions */
    sl_log_close(log);

    /* A group whose committed offset fell behind retention starts at the oldest kept. */
    o.partitions = 2;
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    sl_log_consumer_options co = {.group = "slow"};
    sl_log_consumer_t *c = NULL;
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    sl_log_position pos[2] = {{0, 1}, {1, 1}};
    assert_int_equal(sl_log_consumer_commit(c, pos, 2), SL_OK);
    sl_log_consumer_close(c);
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[64];
    size_t n = 0;
    assert_int_equal(sl_log_consumer_poll(c, msgs, 64, &n, 0), SL_OK);
    assert_int_equal(n, st.records);
    for (size_t i = 0; i < n; i++)
        assert_true(msgs[i].offset > 1);
    sl_log_consumer_close(c);
    sl_log_close(log);
    free(rb);
    cbrec_free(r);
}

/* A one-partition producer whose records go after `retention_ms`. */
static sl_log_t *open_aging_producer(const char *uri, uint64_t retention_ms)
{
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.partitions = 1;
    o.retention_ms = retention_ms;
    o.max_size_bytes = 16ull << 20;
    sl_log_t *log = NULL;
    char eb[256];
    assert_int_equal(sl_log_open(uri, &o, &log, eb, sizeof eb), SL_OK);
    return log;
}

static void test_retention_by_age(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_aging_producer(fx->uri, 150);
    fill(log, r, 10, "old");
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, 10);
    /* Idle: the writer's housekeeping (at least once a second) removes them. */
    for (int i = 0; i < 40; i++) {
        sleep_ms(100);
        sl_log_get_stats(log, &st);
        if (st.records == 0)
            break;
    }
    assert_int_equal(st.records, 0);
    assert_int_equal(st.bytes, 0);
    fill(log, r, 1, "new");
    sl_log_close(log);

    log = open_log(fx->uri, false, 1);
    readback *rb = calloc(1, sizeof *rb);
    read_all(log, rb);
    assert_int_equal(rb->n, 1);
    assert_int_equal(rb->offset[0], 10); /* never reused */
    assert_string_equal(rb->value[0], "new-0");
    free(rb);
    sl_log_close(log);
    cbrec_free(r);
}

/* Age retention that reaches into a partition stops at its first young record: the walk
 * deletes the old run and leaves the rest, and the partition's oldest time moves on. */
static void test_retention_by_age_keeps_younger(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_aging_producer(fx->uri, 2000);
    fill(log, r, 10, "old");
    sleep_ms(1200);
    fill(log, r, 5, "mid");
    sleep_ms(1200);
    fill(log, r, 1, "new"); /* its apply runs retention: "old" is 2.4 s old, "mid" 1.2 s */
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, 6);
    sl_log_close(log);

    log = open_log(fx->uri, false, 1);
    readback *rb = calloc(1, sizeof *rb);
    read_all(log, rb);
    assert_int_equal(rb->n, 6);
    assert_int_equal(rb->offset[0], 10);
    assert_string_equal(rb->value[0], "mid-0");
    assert_string_equal(rb->value[5], "new-0");
    free(rb);
    sl_log_close(log);
    cbrec_free(r);
}

/* ---- a full store ---- */

static void test_map_full_is_clean(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.partitions = 2;
    o.retention_bytes = 0; /* unlimited: the map must fill */
    o.max_size_bytes = 256 * 1024;
    sl_log_t *log = NULL;
    char eb[256];
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    static char val[8000];
    memset(val, 'm', sizeof val - 1);
    size_t failed_at = 0;
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(append_one(log, r, i, "k", val), SL_OK);
        wait_callbacks(r, i + 1);
        if (r->errs[i] != SL_OK) {
            failed_at = i;
            break;
        }
    }
    assert_true(failed_at > 0);
    assert_int_equal(r->errs[failed_at], SL_ERR_IO); /* server-side: retry later, not 413 */
    assert_non_null(strstr(r->last_detail, "is full"));
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_false(st.healthy);
    assert_int_equal(st.records, failed_at);
    /* Later appends are still tried (and small ones may fit again). */
    assert_int_equal(append_one(log, r, 1000, "k", "x"), SL_OK);
    wait_callbacks(r, failed_at + 2);
    sl_log_close(log);

    /* The store reopens with every acknowledged record. */
    log = open_log(fx->uri, false, 2);
    sl_log_get_stats(log, &st);
    pthread_mutex_lock(&r->mu);
    size_t ok = r->ok;
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(st.records, ok);
    sl_log_close(log);

    /* retention above half the map is clamped (and warned about), so the log keeps working. */
    char uri2[160];
    snprintf(uri2, sizeof uri2, "file://%s/log2", fx->dir);
    o.retention_bytes = 1ull << 30;
    assert_int_equal(sl_log_open(uri2, &o, &log, eb, sizeof eb), SL_OK);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(append_one(log, r, i, "k", val), SL_OK);
    sl_log_close(log);
    size_t bad = 0;
    for (size_t i = failed_at + 2; i < r->n; i++)
        bad += r->errs[i] != SL_OK;
    assert_int_equal(bad, 0);
    cbrec_free(r);
}

/* ---- corrupt data ---- */

static void test_corrupt_record(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 1);
    fill(log, r, 3, "ok");
    sl_log_close(log);

    /* Plant a record shorter than its header at offset 3, behind the log's back, and leave
     * meta's next offset at 3 (behind the records). */
    sl_test_raw raw;
    sl_test_raw_begin(&raw, fx->logdir, "p0", MDB_INTEGERKEY, false);
    uint64_t off = 3;
    MDB_val k = {sizeof off, &off}, v = {5, "short"};
    assert_int_equal(mdb_put(raw.txn, raw.dbi, &k, &v, 0), 0);
    sl_test_raw_end(&raw);

    log = open_log(fx->uri, true, 1);
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, NULL, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[8];
    size_t n = 9;
    assert_int_equal(sl_log_consumer_poll(c, msgs, 8, &n, 0), SL_ERR_CORRUPT);
    assert_int_equal(n, 0);
    assert_non_null(strstr(sl_log_consumer_errmsg(c), "partition 0 at offset 3"));
    /* Nothing was skipped: seeking past the bad record reads on. */
    assert_int_equal(sl_log_consumer_seek(c, 0, 4), SL_OK);
    /* Appends continue after the planted record: the offset is not reused. */
    fill(log, r, 1, "after");
    assert_int_equal(sl_log_consumer_poll(c, msgs, 8, &n, 0), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].offset, 4);
    sl_log_consumer_close(c);
    sl_log_close(log);
    cbrec_free(r);
}

/* ---- sl_log_print ---- */

static char *print_to_string(sl_log_t *log, const sl_log_print_options *po, sl_err *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    char eb[256] = "";
    *err = sl_log_print(log, po, f, eb, sizeof eb);
    fclose(f);
    return text;
}

static void test_print(void **state)
{
    fixture *fx = *state;
    cbrec *r = cbrec_new();
    sl_log_t *log = open_log(fx->uri, true, 1);
    fill(log, r, 5, "{\"n\":1}");
    sl_err err;
    char *s = print_to_string(log, NULL, &err);
    assert_int_equal(err, SL_OK);
    assert_string_equal(s, "{\"n\":1}-0\n{\"n\":1}-1\n{\"n\":1}-2\n{\"n\":1}-3\n{\"n\":1}-4\n");
    free(s);

    sl_log_print_options po = {.group = "reader", .max = 2};
    s = print_to_string(log, &po, &err);
    assert_int_equal(err, SL_OK);
    assert_string_equal(s, "{\"n\":1}-0\n{\"n\":1}-1\n");
    free(s);
    po.max = 0; /* the group resumes after what it printed */
    s = print_to_string(log, &po, &err);
    assert_int_equal(err, SL_OK);
    assert_string_equal(s, "{\"n\":1}-2\n{\"n\":1}-3\n{\"n\":1}-4\n");
    free(s);
    s = print_to_string(log, &po, &err);
    assert_int_equal(err, SL_OK);
    assert_string_equal(s, "");
    free(s);
    po.from_beginning = true;
    po.max = 1;
    s = print_to_string(log, &po, &err);
    assert_string_equal(s, "{\"n\":1}-0\n");
    free(s);

    /* A bad group name is refused before anything is printed. */
    sl_log_print_options bad = {.group = "no/slash"};
    s = print_to_string(log, &bad, &err);
    assert_int_equal(err, SL_ERR_INVALID);
    assert_string_equal(s, "");
    free(s);

    /* `sluice log read` uses a handle without the producer role, alongside the producer. */
    sl_log_t *reader = open_log(fx->uri, false, 1);
    s = print_to_string(reader, NULL, &err);
    assert_int_equal(err, SL_OK);
    assert_string_equal(s, "{\"n\":1}-0\n{\"n\":1}-1\n{\"n\":1}-2\n{\"n\":1}-3\n{\"n\":1}-4\n");
    free(s);
    sl_log_close(reader);
    sl_log_close(log);
    cbrec_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_murmur2_matches_kafka),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_bad_uri_and_options, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_append_order_and_durability, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_partition_count_is_kept, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_identity, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_append_errors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_producer_lock_busy, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_group_lock_and_names, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_consumer_commit_resume, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_consumer_shares, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_seek, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_poll_waits_and_wakes, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_poll_byte_cap, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_backpressure_busy, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_close_drains_pending, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_retention_by_bytes, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_retention_by_age, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_retention_by_age_keeps_younger, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_map_full_is_clean, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_corrupt_record, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_print, setup_dir, teardown_dir),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    failed |= sl_test_wal_group();
    failed |= sl_test_batch_group();
    return failed | sl_test_kafka_group();
}
