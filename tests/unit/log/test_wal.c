/* Unit tests of the embedded log's write-ahead log: frame encoding and every way a frame
 * ends the log (torn, CRC mismatch, stale sequence number), replay of frames that a crash
 * left unapplied to LMDB (by a reader and by the next producer), the cut of the tail at
 * recovery, segment rotation and reuse, large groups that bypass the WAL, LMDB refusing
 * what the WAL acknowledged, a reader in another process seeing every acknowledged
 * record at once, the applier keeping its pace unasked, and a producer killed with SIGKILL
 * mid-stream.
 * Frames are planted with the module's own encoder, as a crashed writer would leave them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/time.h"
#include "log/log.h"
#include "log/log_int.h"
#include "log_fixture.h"

#define SEG0 "wal-0000000000000000"

typedef sl_test_log_dir wfx;
#define setup    sl_test_log_dir_setup
#define teardown sl_test_log_dir_teardown

static sl_log_t *open_wal_log(const wfx *fx, bool producer, uint64_t max_size)
{
    return sl_test_open_log(fx->uri, producer, 2, max_size, 0);
}

/* Appends one record and waits until it is durable; returns the callback's result. */
static sl_err append_wait(sl_log_t *log, const char *key, const char *value)
{
    sl_log_record rec = {key, key ? strlen(key) : 0, value, strlen(value)};
    return sl_test_append_wait(log, &rec, 1);
}

/* Every record from the beginning: "P:OFFSET:VALUE" lines joined, in partition order. */
static size_t read_all(sl_log_t *log, char out[4096])
{
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    char lines[2][2048] = {"", ""};
    size_t total = 0;
    sl_log_message msgs[64];
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 64, &n, 0), SL_OK);
        for (size_t i = 0; i < n; i++) {
            char *l = lines[msgs[i].partition];
            size_t len = strlen(l);
            snprintf(l + len, sizeof lines[0] - len, "%u:%llu:%.*s\n", msgs[i].partition,
                     (unsigned long long)msgs[i].offset, (int)msgs[i].value_len, msgs[i].value);
        }
        total += n;
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    sl_log_consumer_close(c);
    snprintf(out, 4096, "%s%s", lines[0], lines[1]);
    return total;
}

/* The end of the valid frames of a segment file: position and next sequence number. */
static void seg_end(const char *path, uint64_t lsn0, uint64_t *pos, uint64_t *lsn)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *pos = 0;
    *lsn = lsn0;
    sl__log_wal_frame f;
    size_t n;
    while ((n = sl__log_wal_decode(buf + *pos, (size_t)st.st_size - *pos, *lsn, &f)) > 0) {
        *pos += n;
        (*lsn)++;
    }
    free(buf);
}

/* Writes a frame for partition p at pos; returns its length. corrupt: flip a value byte
 * after encoding; torn: write only the first half. */
static size_t plant(const char *path, uint64_t pos, uint64_t lsn, unsigned p, uint64_t off,
                    const char *value, bool corrupt, bool torn)
{
    unsigned char buf[512];
    sl__log_wal_frame f = {.lsn = lsn,
                           .offset = off,
                           .ts = (int64_t)time(NULL) * 1000, /* within retention */
                           .partition = p,
                           .key_len = 0,
                           .value_len = (uint32_t)strlen(value),
                           .value = value};
    size_t n = sl__log_wal_encode(buf, &f);
    if (corrupt)
        buf[n - 1] ^= 0x20;
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    size_t len = torn ? n / 2 : n;
    assert_int_equal(pwrite(fd, buf, len, (off_t)pos), (ssize_t)len);
    close(fd);
    return n;
}

static bool zero_from(const char *path, uint64_t pos, size_t len)
{
    unsigned char buf[4096];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(len <= sizeof buf);
    ssize_t got = pread(fd, buf, len, (off_t)pos);
    close(fd);
    if (got != (ssize_t)len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (buf[i])
            return false;
    return true;
}

/* ---- frames ---- */

static void test_frame_roundtrip(void **state)
{
    (void)state;
    unsigned char buf[256];
    sl__log_wal_frame f = {.lsn = 77,
                           .offset = 5,
                           .ts = -3,
                           .partition = 9,
                           .key_len = 3,
                           .value_len = 5,
                           .key = "abc",
                           .value = "hello"};
    size_t n = sl__log_wal_encode(buf, &f);
    assert_int_equal(n, SL__LOG_WAL_HDR + 8);
    sl__log_wal_frame g;
    assert_int_equal(sl__log_wal_decode(buf, n, 77, &g), n);
    assert_int_equal(g.lsn, 77);
    assert_int_equal(g.offset, 5);
    assert_int_equal(g.ts, -3);
    assert_int_equal(g.partition, 9);
    assert_memory_equal(g.key, "abc", 3);
    assert_memory_equal(g.value, "hello", 5);
    assert_int_equal(sl__log_wal_decode(buf, n, 78, &g), 0);     /* stale or future */
    assert_int_equal(sl__log_wal_decode(buf, n - 1, 77, &g), 0); /* torn */
    assert_int_equal(sl__log_wal_decode(buf, 10, 77, &g), 0);    /* torn header */
    buf[SL__LOG_WAL_HDR + 4] ^= 1;
    assert_int_equal(sl__log_wal_decode(buf, n, 77, &g), 0); /* CRC mismatch */
    buf[SL__LOG_WAL_HDR + 4] ^= 1;
    buf[4] = 0xff; /* a value length past the buffer */
    assert_int_equal(sl__log_wal_decode(buf, n, 77, &g), 0);
    memset(buf, 0, sizeof buf);
    assert_int_equal(sl__log_wal_decode(buf, sizeof buf, 0, &g), 0); /* zeroes never decode */
}

/* ---- crash between the WAL write and the LMDB apply ---- */

static void test_replay_unapplied(void **state)
{
    wfx *fx = *state;
    sl_log_t *log = open_wal_log(fx, true, 16ull << 20);
    for (int i = 0; i < 3; i++)
        assert_int_equal(append_wait(log, NULL, i == 0 ? "a0" : i == 1 ? "b0" : "a1"), SL_OK);
    sl_log_close(log);
    /* Keyless records go round-robin: p0 has a0,a1 and p1 has b0. Plant two durable
     * frames the applier never got to: p0 offset 2, p1 offset 1. */
    char path[160];
    snprintf(path, sizeof path, "%s/" SEG0, fx->logdir);
    uint64_t pos, lsn;
    seg_end(path, 1, &pos, &lsn);
    assert_int_equal(lsn, 4);
    pos += plant(path, pos, lsn, 0, 2, "a2", false, false);
    pos += plant(path, pos, lsn + 1, 1, 1, "b1", false, false);

    /* A reader opening while no producer runs replays them. */
    log = open_wal_log(fx, false, 16ull << 20);
    char got[4096];
    assert_int_equal(read_all(log, got), 5);
    assert_string_equal(got, "0:0:a0\n0:1:a1\n0:2:a2\n1:0:b0\n1:1:b1\n");
    sl_log_close(log);

    /* Replayed once only, and the next producer continues the offsets. */
    log = open_wal_log(fx, true, 16ull << 20);
    assert_int_equal(append_wait(log, NULL, "x"), SL_OK);
    assert_int_equal(read_all(log, got), 6);
    assert_non_null(strstr(got, "0:3:x\n"));
    sl_log_close(log);
}

/* ---- torn tail, CRC mismatch, and the cut ---- */

static void test_torn_and_corrupt_tail(void **state)
{
    wfx *fx = *state;
    sl_log_t *log = open_wal_log(fx, true, 16ull << 20);
    assert_int_equal(append_wait(log, NULL, "a0"), SL_OK);
    sl_log_close(log);
    char path[160];
    snprintf(path, sizeof path, "%s/" SEG0, fx->logdir);
    uint64_t pos, lsn;
    seg_end(path, 1, &pos, &lsn);

    /* good, CRC-broken, good: the log ends at the broken one, and what follows it is
     * neither applied nor kept (a later frame with the same lsn must not resurrect it). */
    uint64_t bad_at = pos + plant(path, pos, lsn, 1, 0, "b0", false, false);
    size_t bad_len = plant(path, bad_at, lsn + 1, 0, 1, "a1", true, false);
    plant(path, bad_at + bad_len, lsn + 2, 1, 1, "b1", false, false);
    log = open_wal_log(fx, true, 16ull << 20);
    char got[4096];
    assert_int_equal(read_all(log, got), 2);
    assert_string_equal(got, "0:0:a0\n1:0:b0\n");
    sl_log_close(log);
    /* The producer's open cut the file after b0; its close then appended nothing. */
    assert_true(zero_from(path, bad_at, 2 * bad_len));

    /* A torn last frame (half written at a power loss) is not applied either. */
    seg_end(path, 1, &pos, &lsn);
    plant(path, pos, lsn, 0, 1, "a1-torn", false, true);
    log = open_wal_log(fx, true, 16ull << 20);
    assert_int_equal(read_all(log, got), 2);
    assert_true(zero_from(path, pos, 20));
    /* New frames go where the torn one was, with its sequence number. */
    assert_int_equal(append_wait(log, NULL, "c"), SL_OK);
    sl_log_close(log);
    uint64_t pos2, lsn2;
    seg_end(path, 1, &pos2, &lsn2);
    assert_true(pos2 > pos);
    assert_int_equal(lsn2, lsn + 1);
    log = open_wal_log(fx, false, 16ull << 20);
    assert_int_equal(read_all(log, got), 3);
    assert_string_equal(got, "0:0:a0\n0:1:c\n1:0:b0\n");
    sl_log_close(log);
}

/* ---- segments ---- */

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, "wal-", 4) == 0;
    closedir(d);
    return n;
}

static void test_segments_rotate_and_reuse(void **state)
{
    wfx *fx = *state;
    /* A 16 MiB map makes 1 MiB segments: 3000 records of 1 KiB fill about three. */
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.partitions = 2;
    o.max_size_bytes = 16ull << 20;
    o.retention_bytes = 1ull << 20;
    sl_log_t *log = NULL;
    char eb[256];
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    static char val[1024];
    memset(val, 'v', sizeof val - 1);
    size_t max_segments = 0;
    for (int i = 0; i < 3000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(append_wait(log, key, val), SL_OK);
        if (i % 500 == 499) {
            size_t n = count_segments(fx->logdir);
            if (n > max_segments)
                max_segments = n;
        }
    }
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.appended_total, 3000);
    sl_log_close(log);
    /* Applied segments are reused or removed: a few spares at most, never one per MiB. */
    assert_true(max_segments >= 1 && max_segments <= 4);
    assert_true(count_segments(fx->logdir) <= 4);

    o.producer = false;
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    sl_log_get_stats(log, &st);
    assert_true(st.records > 500 && st.records < 1100); /* retention kept about 1 MiB */
    sl_log_close(log);

    /* A producer reopened after all that goes on where the last one stopped. */
    o.producer = true;
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    assert_int_equal(append_wait(log, "k", "after"), SL_OK);
    sl_log_get_stats(log, &st);
    assert_true(st.records > 500);
    sl_log_close(log);
}

/* ---- large groups go straight to LMDB, in offset order with the WAL's ---- */

static void test_large_group_direct(void **state)
{
    wfx *fx = *state;
    sl_log_t *log = open_wal_log(fx, true, 64ull << 20);
    static char big[(1 << 20) + 100];
    memset(big, 'B', sizeof big - 1);
    big[0] = 'x';
    assert_int_equal(append_wait(log, NULL, "s0"), SL_OK); /* p0 */
    assert_int_equal(append_wait(log, NULL, "s1"), SL_OK); /* p1 */
    assert_int_equal(append_wait(log, NULL, big), SL_OK);  /* p0, direct */
    assert_int_equal(append_wait(log, NULL, "s2"), SL_OK); /* p1 */
    assert_int_equal(append_wait(log, NULL, "s3"), SL_OK); /* p0 */
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.records, 5);
    assert_int_equal(st.commits_total, 5);
    sl_log_close(log);

    log = open_wal_log(fx, false, 64ull << 20);
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[8];
    uint64_t next[2] = {0, 0};
    size_t total = 0, bigs = 0;
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 8, &n, 0), SL_OK);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(msgs[i].offset, next[msgs[i].partition]++);
            if (msgs[i].value_len == sizeof big - 1) {
                assert_int_equal(msgs[i].partition, 0);
                assert_int_equal(msgs[i].offset, 1);
                assert_memory_equal(msgs[i].value, big, sizeof big - 1);
                bigs++;
            }
        }
        total += n;
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    sl_log_consumer_close(c);
    sl_log_close(log);
    assert_int_equal(total, 5);
    assert_int_equal(bigs, 1);
    assert_int_equal(next[0], 3);
    assert_int_equal(next[1], 2);
}

/* ---- LMDB refuses what the WAL acknowledged ---- */

static void test_apply_failure_keeps_acknowledged(void **state)
{
    wfx *fx = *state;
    /* Values just over LMDB's overflow threshold take a page each, so a 256 KiB map fills
     * long before retention (half the map) deletes anything: applies fail with
     * MDB_MAP_FULL after the WAL acknowledged. One partition keeps retention in offset
     * order. */
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = true;
    o.partitions = 1;
    o.max_size_bytes = 256 * 1024;
    o.retention_bytes = 128 * 1024;
    sl_log_t *log = NULL;
    char eb[256];
    assert_int_equal(sl_log_open(fx->uri, &o, &log, eb, sizeof eb), SL_OK);
    static char val[2100];
    bool acked[400] = {false};
    size_t n_ok = 0, n_failed = 0;
    for (unsigned i = 0; i < 400 && n_failed < 3; i++) {
        memset(val, 'v', sizeof val - 1);
        int len = snprintf(val, 16, "%u", i);
        val[len] = '-';
        sl_err err = append_wait(log, "k", val);
        if (err == SL_OK) {
            acked[i] = true;
            n_ok++;
        } else {
            assert_int_equal(err, SL_ERR_IO);
            n_failed++;
        }
    }
    assert_true(n_ok > 0);
    assert_true(n_failed > 0); /* refused once the applier held its limit, not stuck */
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_false(st.healthy);
    sl_log_close(log); /* warns: acknowledged records stay in the WAL */

    /* With room, the next open replays them: every acknowledged record that retention did
     * not delete is there once, and retention only ever deleted the oldest. */
    log = open_wal_log(fx, false, 16ull << 20);
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    unsigned char seen[400] = {0};
    unsigned lowest = 400;
    sl_log_message msgs[16];
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 16, &n, 0), SL_OK);
        for (size_t i = 0; i < n; i++) {
            char num[16];
            snprintf(num, sizeof num, "%.*s", (int)msgs[i].value_len, msgs[i].value);
            unsigned v = (unsigned)strtoul(num, NULL, 10);
            if (v >= 400 || !acked[v])
                fail_msg("record %u was never acknowledged", v);
            seen[v]++;
            if (v < lowest)
                lowest = v;
        }
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    sl_log_consumer_close(c);
    sl_log_close(log);
    assert_true(lowest < 400);
    for (unsigned v = lowest; v < 400; v++) {
        if (acked[v] && seen[v] != 1)
            fail_msg("acknowledged record %u is there %u times", v, seen[v]);
    }
}

/* ---- a reader in another process sees what was acknowledged ---- */

static void test_other_process_sees_acknowledged(void **state)
{
    wfx *fx = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The producer appends without a pause and reports every acknowledgement, so its
         * applier is always some milliseconds behind. */
        close(fds[0]);
        sl_log_t *log = open_wal_log(fx, true, 16ull << 20);
        for (unsigned i = 0;; i++) {
            if (append_wait(log, NULL, "r") != SL_OK)
                _exit(2);
            if (write(fds[1], &i, sizeof i) != (ssize_t)sizeof i)
                _exit(3);
        }
    }
    close(fds[1]);
    unsigned last = 0;
    for (int k = 0; k < 300; k++)
        assert_int_equal(read(fds[0], &last, sizeof last), (ssize_t)sizeof last);
    /* Right away: the first poll finds at least every record acknowledged so far (the
     * producer holds the writer lock, so this reader replays nothing itself). */
    sl_log_t *log = open_wal_log(fx, false, 16ull << 20);
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    /* The latest acknowledgement, read just before the poll. */
    assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    unsigned got;
    while (read(fds[0], &got, sizeof got) == (ssize_t)sizeof got)
        last = got;
    static sl_log_message msgs[4096];
    size_t n = 0;
    assert_int_equal(sl_log_consumer_poll(c, msgs, 4096, &n, 0), SL_OK);
    sl_log_consumer_close(c);
    sl_log_close(log);
    kill(pid, SIGKILL);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (n < (size_t)last + 1)
        fail_msg("a reader in another process found %zu records, %u were acknowledged", n,
                 last + 1);
}

/* The applier keeps its own pace: every acknowledged group reaches LMDB within its 10 ms
 * apply gap, also the groups that arrive while it already holds some (the writer wakes it
 * only when its list was empty) and with nobody polling (a poll would ask for an apply).
 * A lost wake-up would leave them until the once-a-second housekeeping: ten rounds under
 * 400 ms each are all but impossible then. */
static void test_applier_keeps_pace(void **state)
{
    wfx *fx = *state;
    sl_log_t *log = open_wal_log(fx, true, 16ull << 20);
    sl__log_env *le = ((emb_log *)log)->le;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 20; i++)
            assert_int_equal(append_wait(log, NULL, "r"), SL_OK);
        uint64_t acked = 0, applied = 0;
        assert_true(sl__log_wal_read_acked(fx->logdir, &acked));
        int64_t t0 = sl_time_mono_ns();
        for (;;) {
            assert_int_equal(sl__log_wal_applied_lsn(le, &applied), SL_OK);
            if (applied >= acked || sl_time_mono_ns() - t0 > 400000000ll)
                break;
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        }
        if (applied < acked)
            fail_msg("round %d: LMDB holds up to lsn %llu after 400 ms, %llu acknowledged", round,
                     (unsigned long long)applied, (unsigned long long)acked);
    }
    sl_log_close(log);
}

/* ---- SIGKILL mid-stream ---- */

static void test_sigkill_keeps_acknowledged(void **state)
{
    wfx *fx = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child acknowledges as fast as it can and is killed at some point. */
        close(fds[0]);
        sl_log_t *log = open_wal_log(fx, true, 64ull << 20);
        static char big[(1 << 20) + 4096];
        for (unsigned i = 0;; i++) {
            /* Every 50th record is a group large enough to go straight into LMDB. */
            char v[32];
            snprintf(v, sizeof v, "%u", i);
            if (i % 50 == 25) {
                memset(big, 'b', sizeof big - 1);
                memcpy(big, v, strlen(v));
                big[strlen(v)] = '-';
            }
            if (append_wait(log, v, i % 50 == 25 ? big : v) != SL_OK)
                _exit(2);
            if (write(fds[1], &i, sizeof i) != (ssize_t)sizeof i)
                _exit(3);
        }
    }
    close(fds[1]);
    unsigned last;
    size_t acked = sl_test_kill_after_acks(fds[0], pid, 400, &last);

    sl_log_t *log = open_wal_log(fx, false, 64ull << 20);
    sl_log_consumer_t *c = NULL;
    sl_log_consumer_options co = {.from_beginning = true};
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    size_t cap = acked + 16;
    unsigned char *seen = calloc(cap, 1);
    sl_log_message msgs[64];
    for (;;) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 64, &n, 0), SL_OK);
        for (size_t i = 0; i < n; i++) {
            char num[16];
            snprintf(num, sizeof num, "%.*s", (int)msgs[i].value_len, msgs[i].value);
            unsigned v = (unsigned)strtoul(num, NULL, 10);
            /* At most one unacknowledged record (in flight at the kill) may be there. */
            assert_true(v <= last + 1);
            seen[v]++;
        }
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
    }
    sl_log_consumer_close(c);
    sl_log_close(log);
    for (unsigned v = 0; v <= last; v++) {
        if (seen[v] != 1)
            fail_msg("acknowledged record %u is there %u times", v, seen[v]);
    }
    free(seen);
}

int sl_test_wal_group(void); /* called by test_log.c's main */

int sl_test_wal_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_roundtrip),
        cmocka_unit_test_setup_teardown(test_replay_unapplied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_and_corrupt_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_rotate_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_group_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_failure_keeps_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_process_sees_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applier_keeps_pace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_keeps_acknowledged, setup, teardown),
    };
    return cmocka_run_group_tests_name("wal", tests, NULL, NULL);
}
