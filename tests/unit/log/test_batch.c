/* Unit tests of the embedded log's batch values (one LMDB value holding a run of records,
 * written by the writer's direct path for batch requests): the value decoder on good and
 * damaged bytes, a log written with single values, then batches, then single values read
 * back in order (also after reopening), a group committing in the middle of a batch and
 * resuming at exactly the next record, seeks into a batch, retention deleting whole batch
 * values with counts and bytes right (and recounted at open), a damaged batch value, a
 * producer of batch units killed with SIGKILL, and the format upgrade of an older log. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "log/log.h"
#include "log/log_int.h"
#include "log_fixture.h"

/* Records per unit and value size: a unit is 100 x ~400 bytes, over the 32 KiB that send
 * a unit straight into LMDB as batch values. */
#define UNIT_RECS 100
#define VALUE_LEN 400

typedef sl_test_log_dir bfx;
#define setup    sl_test_log_dir_setup
#define teardown sl_test_log_dir_teardown

static sl_log_t *open_batch_log(const bfx *fx, bool producer, unsigned partitions,
                                uint64_t retention_bytes)
{
    return sl_test_open_log(fx->uri, producer, partitions, 64ull << 20, retention_bytes);
}

/* Record `seq` of a test: key "k<seq>", value "v<seq>-" padded with 'x' to len bytes. */
typedef struct recbuf {
    char key[16];
    char value[VALUE_LEN + 1];
} recbuf;

static void make_rec(recbuf *b, unsigned seq, size_t len)
{
    snprintf(b->key, sizeof b->key, "k%u", seq);
    int n = snprintf(b->value, sizeof b->value, "v%u-", seq);
    memset(b->value + n, 'x', len - (size_t)n);
    b->value[len] = '\0';
}

/* Appends records first..first+n-1 as one unit and waits until it is durable. */
static sl_err append_unit(sl_log_t *log, unsigned first, size_t n, size_t len)
{
    recbuf *bufs = calloc(n, sizeof *bufs);
    sl_log_record *recs = calloc(n, sizeof *recs);
    assert_non_null(bufs);
    assert_non_null(recs);
    for (size_t i = 0; i < n; i++) {
        make_rec(&bufs[i], first + (unsigned)i, len);
        recs[i] = (sl_log_record){bufs[i].key, strlen(bufs[i].key), bufs[i].value, len};
    }
    sl_err err = sl_test_append_wait(log, recs, n);
    free(recs);
    free(bufs);
    return err;
}

/* The sequence number in a record's value ("v<seq>-..."). */
static unsigned seq_of(const sl_log_message *m)
{
    char num[16];
    size_t n = m->value_len < 15 ? m->value_len : 15;
    memcpy(num, m->value, n);
    num[n] = '\0';
    return (unsigned)strtoul(num + 1, NULL, 10);
}

/* Polls c until it has nothing more, checking that the records come in offset order from
 * `next` on and that each one's sequence number is its offset (one partition); adds their
 * key and value bytes to *bytes and returns the offset after the last. */
static uint64_t read_in_order(sl_log_consumer_t *c, uint64_t next, uint64_t *bytes)
{
    sl_log_message msgs[64];
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 64, &n, 0), SL_OK);
        if (n == 0)
            return next;
        for (size_t i = 0; i < n; i++, next++) {
            assert_int_equal(msgs[i].offset, next);
            assert_int_equal(seq_of(&msgs[i]), next);
            *bytes += msgs[i].key_len + msgs[i].value_len;
        }
    }
}

/* Values and records of partition p, read with LMDB directly (the log must be closed). */
static void raw_counts(const bfx *fx, unsigned p, size_t *values, size_t *batches)
{
    MDB_cursor *cur;
    char name[16];
    snprintf(name, sizeof name, "p%u", p);
    sl_test_raw raw;
    sl_test_raw_begin(&raw, fx->logdir, name, MDB_INTEGERKEY, true);
    assert_int_equal(mdb_cursor_open(raw.txn, raw.dbi, &cur), 0);
    MDB_val k, v;
    *values = *batches = 0;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sl__log_value_iter it;
        assert_true(sl__log_value_open(v.mv_data, v.mv_size, &it));
        (*values)++;
        *batches += it.batch;
    }
    mdb_cursor_close(cur);
    sl_test_raw_end(&raw);
}

/* Overwrites meta "partition/0"'s record count (the log must be closed). */
static void damage_count(const bfx *fx, uint64_t records)
{
    sl_test_raw raw;
    sl_test_raw_begin(&raw, fx->logdir, "meta", 0, false);
    MDB_val k = {strlen("partition/0"), "partition/0"}, v;
    assert_int_equal(mdb_get(raw.txn, raw.dbi, &k, &v), 0);
    pmeta pm;
    assert_int_equal(v.mv_size, sizeof pm);
    memcpy(&pm, v.mv_data, sizeof pm);
    pm.records = records;
    v = (MDB_val){sizeof pm, &pm};
    assert_int_equal(mdb_put(raw.txn, raw.dbi, &k, &v, 0), 0);
    sl_test_raw_end(&raw);
}

/* ---- the decoder ---- */

static size_t put_u32(unsigned char *d, uint32_t x)
{
    memcpy(d, &x, sizeof x);
    return sizeof x;
}

/* A batch value of records "a"="1", "bc"="22" into d; returns its size. */
static size_t two_record_batch(unsigned char *d)
{
    int64_t ts = 1234;
    size_t n = 0;
    memcpy(d, &ts, sizeof ts);
    n += sizeof ts;
    n += put_u32(d + n, SL__LOG_BATCH_TAG);
    n += put_u32(d + n, 2);
    n += put_u32(d + n, 1);
    n += put_u32(d + n, 1);
    memcpy(d + n, "a1", 2);
    n += 2;
    n += put_u32(d + n, 2);
    n += put_u32(d + n, 2);
    memcpy(d + n, "bc22", 4);
    n += 4;
    return n;
}

static void test_value_decoder(void **state)
{
    (void)state;
    unsigned char d[64];
    size_t size = two_record_batch(d);
    sl__log_value_iter it;
    sl__log_value_rec rec;
    assert_true(sl__log_value_open(d, size, &it));
    assert_true(it.batch);
    assert_int_equal(it.count, 2);
    assert_int_equal(it.ts, 1234);
    assert_int_equal(it.bytes, 6);
    assert_true(sl__log_value_next(&it, &rec));
    assert_int_equal(rec.key_len, 1);
    assert_memory_equal(rec.key, "a", 1);
    assert_int_equal(rec.value_len, 1);
    assert_memory_equal(rec.value, "1", 1);
    assert_true(sl__log_value_next(&it, &rec));
    assert_memory_equal(rec.key, "bc", 2);
    assert_memory_equal(rec.value, "22", 2);
    assert_false(sl__log_value_next(&it, &rec));
    assert_int_equal(it.left, 0);

    /* A trailing byte, a missing byte: the last record must end the value exactly. */
    d[size] = 'z';
    assert_true(sl__log_value_open(d, size + 1, &it));
    assert_true(sl__log_value_next(&it, &rec));
    assert_false(sl__log_value_next(&it, &rec));
    assert_int_equal(it.left, 1);
    assert_true(sl__log_value_open(d, size - 1, &it));
    assert_true(sl__log_value_next(&it, &rec));
    assert_false(sl__log_value_next(&it, &rec));
    /* Counts of 1 (never written as a batch) and more than the size can hold. */
    put_u32(d + 12, 1);
    assert_false(sl__log_value_open(d, size, &it));
    put_u32(d + 12, 3);
    assert_false(sl__log_value_open(d, size, &it)); /* 3 x 8 header bytes > 22 */
    put_u32(d + 12, 2);
    /* A key length past the end. */
    put_u32(d + 16, 100);
    assert_true(sl__log_value_open(d, size, &it));
    assert_false(sl__log_value_next(&it, &rec));
    assert_int_equal(it.left, 2);
    assert_false(sl__log_value_open(d, 15, &it));

    /* A single record: header, key, value. */
    unsigned char s[32];
    int64_t ts = 7;
    memcpy(s, &ts, sizeof ts);
    put_u32(s + 8, 2);
    memcpy(s + 12, "keyvalue", 8);
    assert_true(sl__log_value_open(s, 20, &it));
    assert_false(it.batch);
    assert_int_equal(it.count, 1);
    assert_int_equal(it.bytes, 8);
    assert_true(sl__log_value_next(&it, &rec));
    assert_memory_equal(rec.key, "ke", 2);
    assert_int_equal(rec.value_len, 6);
    assert_memory_equal(rec.value, "yvalue", 6);
    assert_false(sl__log_value_next(&it, &rec));
    assert_false(sl__log_value_open(s, 13, &it)); /* key of 2 in 1 byte */
    assert_false(sl__log_value_open(s, 11, &it)); /* shorter than the header */
}

/* ---- reading ---- */

/* What a test appended, per partition in append order. */
#define MAX_EXPECT 4096
typedef struct expect {
    unsigned partitions;
    size_t n[2];
    unsigned seq[2][MAX_EXPECT];
    uint64_t bytes;
} expect;

/* Appends records first..first+n-1 as one unit (value length len) and notes them. */
static void append_noted(sl_log_t *log, expect *ex, unsigned first, size_t n, size_t len)
{
    assert_int_equal(append_unit(log, first, n, len), SL_OK);
    for (size_t i = 0; i < n; i++) {
        recbuf b;
        make_rec(&b, first + (unsigned)i, len);
        unsigned p = sl_log_partition_for_key(b.key, strlen(b.key), ex->partitions);
        assert_true(ex->n[p] < MAX_EXPECT);
        ex->seq[p][ex->n[p]++] = first + (unsigned)i;
        ex->bytes += strlen(b.key) + len;
    }
}

/* Reads every partition from the beginning: each holds exactly what ex says, in order,
 * at offsets 0, 1, 2, ...; polls of `max` messages stop anywhere, inside batches too. */
static void check_all(sl_log_t *log, const expect *ex, size_t max)
{
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    size_t got[2] = {0, 0};
    sl_log_message msgs[64];
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, max, &n, 0), SL_OK);
        for (size_t i = 0; i < n; i++) {
            unsigned p = msgs[i].partition;
            assert_true(got[p] < ex->n[p]);
            assert_int_equal(msgs[i].offset, got[p]);
            assert_int_equal(seq_of(&msgs[i]), ex->seq[p][got[p]]);
            char key[16];
            snprintf(key, sizeof key, "k%u", ex->seq[p][got[p]]);
            assert_int_equal(msgs[i].key_len, strlen(key));
            assert_memory_equal(msgs[i].key, key, msgs[i].key_len);
            got[p]++;
        }
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    for (unsigned p = 0; p < ex->partitions; p++)
        assert_int_equal(got[p], ex->n[p]);
    sl_log_consumer_close(c);
}

/* Singles (the WAL path), then batch units (straight into LMDB as batch values), then
 * singles again, over 2 partitions: each partition reads back in append order with
 * consecutive offsets, before and after a reopen, whatever the poll size, and appends
 * after the reopen continue the offsets. */
static void test_single_then_batch_in_order(void **state)
{
    bfx *fx = *state;
    expect *ex = calloc(1, sizeof *ex);
    assert_non_null(ex);
    ex->partitions = 2;
    sl_log_t *log = open_batch_log(fx, true, 2, 0);
    unsigned seq = 0;
    for (int i = 0; i < 10; i++, seq++)
        append_noted(log, ex, seq, 1, 40);
    for (int u = 0; u < 4; u++, seq += UNIT_RECS)
        append_noted(log, ex, seq, UNIT_RECS, VALUE_LEN);
    for (int i = 0; i < 10; i++, seq++)
        append_noted(log, ex, seq, 1, 40);
    check_all(log, ex, 64);
    sl_log_close(log);

    size_t records = ex->n[0] + ex->n[1];
    for (unsigned p = 0; p < 2; p++) {
        size_t values, batches;
        raw_counts(fx, p, &values, &batches);
        assert_true(batches >= 4);          /* every unit made a batch value in each partition */
        assert_true(values < ex->n[p] / 4); /* far fewer values than records */
    }

    log = open_batch_log(fx, true, 2, 0);
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, records);
    assert_int_equal(st.bytes, ex->bytes);
    append_noted(log, ex, seq++, 1, 40);
    append_noted(log, ex, seq, UNIT_RECS, VALUE_LEN);
    check_all(log, ex, 7);
    check_all(log, ex, 64);
    sl_log_close(log);
    free(ex);
}

/* meta "format" of a closed log; `set` overwrites it first. */
static uint32_t raw_format(const bfx *fx, const uint32_t *set)
{
    sl_test_raw raw;
    sl_test_raw_begin(&raw, fx->logdir, "meta", 0, set == NULL);
    MDB_val k = {strlen("format"), "format"}, v;
    if (set) {
        v = (MDB_val){sizeof *set, (void *)(uintptr_t)set};
        assert_int_equal(mdb_put(raw.txn, raw.dbi, &k, &v, 0), 0);
    }
    uint32_t format = 0;
    assert_int_equal(mdb_get(raw.txn, raw.dbi, &k, &v), 0);
    assert_int_equal(v.mv_size, sizeof format);
    memcpy(&format, v.mv_data, sizeof format);
    sl_test_raw_end(&raw);
    return format;
}

/* A new log is format 2. A log of format 1 (from before batch values) stays 1 while only
 * single records are appended, becomes 2 in the commit of its first batch value, and
 * reads back whole; a format this binary does not know is refused at open, by name. */
static void test_format_upgrade(void **state)
{
    bfx *fx = *state;
    sl_log_t *log = open_batch_log(fx, true, 1, 0);
    assert_int_equal(append_unit(log, 0, 1, 40), SL_OK);
    sl_log_close(log);
    assert_int_equal(raw_format(fx, NULL), SL__LOG_FORMAT_BATCH);

    const uint32_t single = SL__LOG_FORMAT_SINGLE;
    assert_int_equal(raw_format(fx, &single), SL__LOG_FORMAT_SINGLE);
    log = open_batch_log(fx, true, 1, 0);
    assert_int_equal(append_unit(log, 1, 1, 40), SL_OK);
    sl_log_close(log);
    assert_int_equal(raw_format(fx, NULL), SL__LOG_FORMAT_SINGLE);

    log = open_batch_log(fx, true, 1, 0);
    assert_int_equal(append_unit(log, 2, UNIT_RECS, VALUE_LEN), SL_OK);
    sl_log_close(log);
    assert_int_equal(raw_format(fx, NULL), SL__LOG_FORMAT_BATCH);
    size_t values, batches;
    raw_counts(fx, 0, &values, &batches);
    assert_true(batches >= 1);

    log = open_batch_log(fx, false, 1, 0);
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, 2 + UNIT_RECS);
    sl_log_close(log);

    const uint32_t unknown = 3;
    raw_format(fx, &unknown);
    sl_log_options o;
    sl_log_options_default(&o);
    sl_log_t *refused = NULL;
    char eb[256] = "";
    assert_int_equal(sl_log_open(fx->uri, &o, &refused, eb, sizeof eb), SL_ERR_UNSUPPORTED);
    assert_null(refused);
    assert_non_null(strstr(eb, "unknown format version 3"));
}

/* A group commits in the middle of a batch value and resumes at exactly the next record;
 * seeks land inside batch values too. One partition, so every unit is one value. */
static void test_commit_and_seek_inside_batch(void **state)
{
    bfx *fx = *state;
    sl_log_t *log = open_batch_log(fx, true, 1, 0);
    assert_int_equal(append_unit(log, 0, 3, 40), SL_OK); /* offsets 0-2: single values */
    assert_int_equal(append_unit(log, 3, UNIT_RECS, VALUE_LEN), SL_OK);   /* 3-102 */
    assert_int_equal(append_unit(log, 103, UNIT_RECS, VALUE_LEN), SL_OK); /* 103-202 */

    sl_log_consumer_options co = {.group = "g", .from_beginning = true};
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[64];
    size_t n = 0;
    uint64_t next = 0;
    while (next < 3 + 20) { /* polls of 7 cross from single values into the first batch */
        assert_int_equal(sl_log_consumer_poll(c, msgs, 7, &n, 0), SL_OK);
        assert_int_equal(n, 7);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(msgs[i].offset, next);
            assert_int_equal(seq_of(&msgs[i]), next);
            next++;
        }
    }
    assert_int_equal(next, 28);
    sl_log_position pos = {0, next};
    assert_int_equal(sl_log_consumer_commit(c, &pos, 1), SL_OK);
    /* Read on past the commit; a new consumer of the group must start over from it. */
    assert_int_equal(sl_log_consumer_poll(c, msgs, 64, &n, 0), SL_OK);
    assert_int_equal(n, 64);
    sl_log_consumer_close(c);

    co.from_beginning = false; /* from the group's committed offset */
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    uint64_t committed = 0;
    assert_int_equal(sl_log_consumer_committed(c, 0, &committed), SL_OK);
    assert_int_equal(committed, 28);
    assert_int_equal(sl_log_consumer_poll(c, msgs, 1, &n, 0), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].offset, 28);
    assert_int_equal(seq_of(&msgs[0]), 28);
    /* The rest follows in order, across the boundary between the two batch values. */
    uint64_t bytes = 0;
    assert_int_equal(read_in_order(c, 29, &bytes), 203);
    /* Seeks: into the second batch, its first record, its last, past the end. */
    uint64_t to[] = {150, 103, 202, 102};
    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++) {
        assert_int_equal(sl_log_consumer_seek(c, 0, to[i]), SL_OK);
        assert_int_equal(sl_log_consumer_poll(c, msgs, 2, &n, 0), SL_OK);
        assert_true(n >= 1);
        assert_int_equal(msgs[0].offset, to[i]);
        assert_int_equal(seq_of(&msgs[0]), to[i]);
        if (n == 2)
            assert_int_equal(msgs[1].offset, to[i] + 1);
    }
    assert_int_equal(sl_log_consumer_seek(c, 0, 203), SL_OK);
    assert_int_equal(sl_log_consumer_poll(c, msgs, 2, &n, 0), SL_OK);
    assert_int_equal(n, 0);
    sl_log_consumer_close(c);
    sl_log_close(log);
}

/* ---- retention ---- */

/* Retention by bytes deletes whole batch values, oldest first, no more than it must; the
 * counts and bytes stay those of the records left, also after a reopen and after a
 * recount of damaged meta. One partition, so each unit is one value. */
static void test_retention_deletes_whole_batches(void **state)
{
    bfx *fx = *state;
    const uint64_t keep = 200000;
    sl_log_t *log = open_batch_log(fx, true, 1, keep);
    uint64_t unit_bytes = 0; /* keys and values of one unit */
    for (unsigned i = 0; i < UNIT_RECS; i++) {
        char key[16];
        unit_bytes += (uint64_t)snprintf(key, sizeof key, "k%u", i) + VALUE_LEN;
    }
    enum { UNITS = 20 };
    for (unsigned u = 0; u < UNITS; u++) {
        assert_int_equal(append_unit(log, u * UNIT_RECS, UNIT_RECS, VALUE_LEN), SL_OK);
        sl_log_stats st;
        sl_log_get_stats(log, &st);
        assert_true(st.bytes <= keep);
    }
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    /* Whole values went: the records left are the newest units, complete. */
    assert_int_equal(st.records % UNIT_RECS, 0);
    assert_true(st.records >= UNIT_RECS);
    /* No more than needed: one more unit would not have fit (units differ in key bytes
     * by a few, so allow one unit's worth). */
    assert_true(st.bytes + unit_bytes > keep);

    /* Read back: offsets from the first retained unit to the end, bytes as counted. */
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    uint64_t bytes = 0;
    assert_int_equal(read_in_order(c, UNITS * UNIT_RECS - st.records, &bytes), UNITS * UNIT_RECS);
    assert_int_equal(bytes, st.bytes);
    sl_log_consumer_close(c);
    sl_log_close(log);

    /* Reopened: the same counts. With meta's count damaged: recounted from the values. */
    log = open_batch_log(fx, true, 1, keep);
    sl_log_stats again;
    sl_log_get_stats(log, &again);
    assert_int_equal(again.records, st.records);
    assert_int_equal(again.bytes, st.bytes);
    sl_log_close(log);
    uint64_t wrong[] = {0, st.records + UNIT_RECS * 50};
    for (size_t i = 0; i < 2; i++) {
        damage_count(fx, wrong[i]);
        log = open_batch_log(fx, true, 1, keep);
        sl_log_get_stats(log, &again);
        assert_int_equal(again.records, st.records);
        assert_int_equal(again.bytes, st.bytes);
        sl_log_close(log);
    }
}

/* Retention by age deletes a batch value once its (shared) append time is old. */
static void test_retention_by_age_batches(void **state)
{
    bfx *fx = *state;
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.partitions = 1;
    o.max_size_bytes = 64ull << 20;
    o.retention_ms = 300;
    sl_log_t *log = NULL;
    char eb[256];
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    assert_int_equal(append_unit(log, 0, UNIT_RECS, VALUE_LEN), SL_OK);
    usleep(400 * 1000);
    assert_int_equal(append_unit(log, UNIT_RECS, UNIT_RECS, VALUE_LEN), SL_OK);
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, UNIT_RECS);
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[4];
    size_t n = 0;
    assert_int_equal(sl_log_consumer_poll(c, msgs, 4, &n, 0), SL_OK);
    assert_int_equal(n, 4);
    assert_int_equal(msgs[0].offset, UNIT_RECS);
    sl_log_consumer_close(c);
    sl_log_close(log);
}

/* ---- damage and crashes ---- */

/* A batch value whose third record runs past its end: the poll fails naming that
 * offset, after returning nothing, and a seek past the value reads on. */
static void test_corrupt_batch(void **state)
{
    bfx *fx = *state;
    sl_log_t *log = open_batch_log(fx, true, 1, 0);
    assert_int_equal(append_unit(log, 0, 2, 40), SL_OK); /* offsets 0, 1 */
    sl_log_close(log);

    unsigned char d[64];
    size_t size = two_record_batch(d);
    /* Make it claim three records, the third (offset 4) with a key beyond the end. */
    put_u32(d + 12, 3);
    size += put_u32(d + size, 50);
    size += put_u32(d + size, 1);
    sl_test_raw raw;
    sl_test_raw_begin(&raw, fx->logdir, "p0", MDB_INTEGERKEY, false);
    uint64_t off = 2;
    MDB_val k = {sizeof off, &off}, v = {size, d};
    assert_int_equal(mdb_put(raw.txn, raw.dbi, &k, &v, 0), 0);
    sl_test_raw_end(&raw);

    log = open_batch_log(fx, true, 1, 0);
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, NULL, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[8];
    size_t n = 9;
    assert_int_equal(sl_log_consumer_poll(c, msgs, 8, &n, 0), SL_ERR_CORRUPT);
    assert_int_equal(n, 0);
    assert_non_null(strstr(sl_log_consumer_errmsg(c), "partition 0 at offset 4"));
    /* Offsets 2 and 3 are readable from a seek; the next append goes after the value. */
    assert_int_equal(sl_log_consumer_seek(c, 0, 5), SL_OK);
    assert_int_equal(append_unit(log, 9, 1, 40), SL_OK);
    assert_int_equal(sl_log_consumer_poll(c, msgs, 8, &n, 0), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].offset, 5);
    assert_int_equal(seq_of(&msgs[0]), 9);
    sl_log_consumer_close(c);
    sl_log_close(log);
}

/* A producer appending batch units (each one batch value) is killed with SIGKILL: every
 * record of every acknowledged unit is there exactly once, at its offset. */
static void test_sigkill_batches(void **state)
{
    bfx *fx = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        sl_log_t *log = open_batch_log(fx, true, 1, 0);
        for (unsigned u = 0;; u++) {
            if (append_unit(log, u * UNIT_RECS, UNIT_RECS, VALUE_LEN) != SL_OK)
                _exit(2);
            if (write(fds[1], &u, sizeof u) != (ssize_t)sizeof u)
                _exit(3);
        }
    }
    close(fds[1]);
    unsigned last;
    sl_test_kill_after_acks(fds[0], pid, 30, &last);

    sl_log_t *log = open_batch_log(fx, false, 1, 0);
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[64];
    uint64_t next = 0;
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 64, &n, 0), SL_OK);
        for (size_t i = 0; i < n; i++, next++) {
            assert_int_equal(msgs[i].offset, next);
            assert_int_equal(seq_of(&msgs[i]), next);
        }
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    /* Every acknowledged unit, and at most the one in flight at the kill, whole. */
    assert_true(next >= (uint64_t)(last + 1) * UNIT_RECS);
    assert_true(next <= (uint64_t)(last + 2) * UNIT_RECS);
    assert_int_equal(next % UNIT_RECS, 0);
    sl_log_consumer_close(c);
    sl_log_close(log);
}

int sl_test_batch_group(void); /* called by test_log.c's main */

int sl_test_batch_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_decoder),
        cmocka_unit_test_setup_teardown(test_single_then_batch_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_and_seek_inside_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_deletes_whole_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_batches, setup, teardown),
    };
    return cmocka_run_group_tests_name("batch values", tests, NULL, NULL);
}
