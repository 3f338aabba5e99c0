/* Unit tests of the Kafka log backend against an in-process librdkafka mock cluster (a real
 * Kafka protocol peer): append acknowledgement and placement, reading back through the
 * consumer interface, group commits, a full queue (whole and partial units), a broker down
 * (errors within message.timeout.ms, healthy flips) and back up, and a record refused inside
 * rd_kafka_produce. Run from test_log.c. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "log/log.h"
#include "log/log_int.h"

int sl_test_kafka_group(void);

#define PARTS 4

typedef struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    char uri[256];
} mock;

/* One unit's outcome, waited for by the test thread. */
typedef struct outcome {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int calls;
    sl_err err;
    char detail[256];
} outcome;

static void outcome_init(outcome *o)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cond, NULL);
}

static void outcome_cleanup(outcome *o)
{
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cond);
}

static void on_done(void *opaque, sl_err err, const char *detail)
{
    outcome *o = opaque;
    pthread_mutex_lock(&o->mu);
    o->calls++;
    o->err = err;
    snprintf(o->detail, sizeof o->detail, "%s", detail ? detail : "");
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->mu);
}

/* Waits up to ms for the callback; returns how long it took (ms), -1 on timeout. */
static long outcome_wait(outcome *o, long ms)
{
    struct timespec t0, dl;
    clock_gettime(CLOCK_REALTIME, &t0);
    dl = t0;
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&o->mu);
    while (o->calls == 0 && pthread_cond_timedwait(&o->cond, &o->mu, &dl) == 0)
        ;
    int calls = o->calls;
    pthread_mutex_unlock(&o->mu);
    struct timespec t1;
    clock_gettime(CLOCK_REALTIME, &t1);
    return calls ? (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 : -1;
}

static int mock_setup(void **state)
{
    mock *m = calloc(1, sizeof *m);
    char es[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", es, sizeof es);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    if (!m->rk)
        return -1;
    m->mc = rd_kafka_mock_cluster_new(m->rk, 1);
    if (!m->mc || rd_kafka_mock_topic_create(m->mc, "t", PARTS, 1))
        return -1;
    snprintf(m->uri, sizeof m->uri, "kafka://%s/t", rd_kafka_mock_cluster_bootstraps(m->mc));
    *state = m;
    return 0;
}

static int mock_teardown(void **state)
{
    mock *m = *state;
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
    free(m);
    return 0;
}

static sl_log_t *open_log(const mock *m, bool producer, const char *const *kopts, size_t n)
{
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = producer;
    o.kafka_opts = kopts;
    o.n_kafka_opts = n;
    sl_log_t *log = NULL;
    char eb[512] = "";
    sl_err err = sl_log_open(m->uri, &o, &log, eb, sizeof eb);
    if (err)
        print_error("open: %s\n", eb);
    assert_int_equal(err, SL_OK);
    return log;
}

static const char *const quiet[] = {"log_level=3", "message.timeout.ms=1500"};
static const char *const group_opts[] = {"log_level=3", "session.timeout.ms=6000",
                                         "heartbeat.interval.ms=500"};

static void test_append_and_read_back(void **state)
{
    mock *m = *state;
    sl_log_t *log = open_log(m, true, quiet, 2);
    assert_int_equal(sl_log_partition_count(log), PARTS);
    sl_log_record recs[3] = {{"sess-a", 6, "{\"n\":1}", 7},
                             {"sess-b", 6, "{\"n\":2}", 7},
                             {"sess-c", 6, "{\"n\":3}", 7}};
    outcome o;
    outcome_init(&o);
    assert_int_equal(sl_log_append(log, recs, 3, on_done, &o), SL_OK);
    assert_true(outcome_wait(&o, 10000) >= 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, SL_OK);
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.appended_total, 3);
    assert_int_equal(st.pending_bytes, 0);
    assert_true(st.healthy);
    outcome_cleanup(&o);

    /* No group: every partition from the beginning, placed by Kafka's murmur2. */
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, NULL, &c, eb, sizeof eb), SL_OK);
    sl_log_message msgs[8];
    size_t got = 0;
    for (int i = 0; i < 100 && got < 3; i++) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 8, &n, 100), SL_OK);
        /* Messages are valid until the next poll: check them now. */
        for (size_t j = 0; j < n; j++)
            assert_int_equal(msgs[j].partition,
                             sl_log_partition_for_key(msgs[j].key, msgs[j].key_len, PARTS));
        got += n;
    }
    assert_int_equal(got, 3);
    bool caught_up = false;
    for (int i = 0; i < 50 && !caught_up; i++) {
        size_t n = 0;
        assert_int_equal(sl_log_consumer_poll(c, msgs, 8, &n, 100), SL_OK);
        assert_int_equal(n, 0);
        caught_up = sl_log_consumer_is_caught_up(c);
    }
    assert_true(caught_up);
    assert_int_equal(sl_log_consumer_commit(c, NULL, 0), SL_ERR_UNSUPPORTED);
    sl_log_consumer_close(c);
    sl_log_close(log);
}

static void on_assign(void *opaque, const unsigned *parts, size_t n)
{
    *(size_t *)opaque += n;
}

/* A Kafka log's identity names the cluster and the topic: another cluster, another log. */
static void test_identity(void **state)
{
    mock *m = *state;
    sl_log_t *log = open_log(m, false, quiet, 2);
    char first[300];
    snprintf(first, sizeof first, "%s", sl_log_identity(log));
    sl_log_close(log);
    assert_true(strncmp(first, "kafka:", 6) == 0);
    assert_true(strlen(first) > strlen("kafka:/t") && !strcmp(first + strlen(first) - 2, "/t"));
    log = open_log(m, true, quiet, 2);
    assert_string_equal(sl_log_identity(log), first);
    sl_log_close(log);

    mock *other = NULL;
    assert_int_equal(mock_setup((void **)&other), 0);
    log = open_log(other, false, quiet, 2);
    assert_string_not_equal(sl_log_identity(log), first);
    sl_log_close(log);
    mock_teardown((void **)&other);
}

static void test_group_commit(void **state)
{
    mock *m = *state;
    sl_log_t *log = open_log(m, true, quiet, 2);
    sl_log_record rec = {"k", 1, "{}", 2};
    outcome o;
    outcome_init(&o);
    assert_int_equal(sl_log_append(log, &rec, 1, on_done, &o), SL_OK);
    assert_true(outcome_wait(&o, 10000) >= 0);
    assert_int_equal(o.err, SL_OK);
    outcome_cleanup(&o);
    sl_log_close(log);

    log = open_log(m, false, group_opts, 3);
    size_t assigned = 0;
    sl_log_consumer_options co = {.group = "unit-g", .on_assign = on_assign, .opaque = &assigned};
    sl_log_consumer_t *c = NULL;
    char eb[256];
    assert_int_equal(sl_log_consumer_open(log, &co, &c, eb, sizeof eb), SL_OK);
    sl_log_message msg;
    size_t n = 0;
    for (int i = 0; i < 150 && n == 0; i++)
        assert_int_equal(sl_log_consumer_poll(c, &msg, 1, &n, 100), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(assigned, PARTS);
    uint64_t off = 0;
    assert_int_equal(sl_log_consumer_committed(c, msg.partition, &off), SL_ERR_NOT_FOUND);
    sl_log_position pos = {msg.partition, msg.offset + 1};
    assert_int_equal(sl_log_consumer_commit(c, &pos, 1), SL_OK);
    assert_int_equal(sl_log_consumer_committed(c, msg.partition, &off), SL_OK);
    assert_int_equal(off, msg.offset + 1);
    /* Seeking back re-reads the message. */
    assert_int_equal(sl_log_consumer_seek(c, msg.partition, msg.offset), SL_OK);
    sl_log_message again;
    n = 0;
    for (int i = 0; i < 50 && n == 0; i++)
        assert_int_equal(sl_log_consumer_poll(c, &again, 1, &n, 100), SL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(again.offset, msg.offset);
    sl_log_consumer_close(c);
    sl_log_close(log);
}

/* A bounded queue: a unit that fits nowhere is refused at once without a callback; one
 * that is partly enqueued gets one error callback once its enqueued records are reported. */
static void test_queue_full(void **state)
{
    mock *m = *state;
    static const char *const small[] = {"log_level=0", "message.timeout.ms=1000",
                                        "queue.buffering.max.messages=2"};
    sl_log_t *log = open_log(m, true, small, 3);
    assert_int_equal(rd_kafka_mock_broker_set_down(m->mc, 1), 0);
    sl_log_record recs[5];
    for (int i = 0; i < 5; i++)
        recs[i] = (sl_log_record){"k", 1, "{}", 2};
    outcome o, o2;
    outcome_init(&o);
    outcome_init(&o2);
    assert_int_equal(sl_log_append(log, recs, 5, on_done, &o), SL_OK);
    assert_int_equal(sl_log_append(log, recs, 1, on_done, &o2), SL_ERR_BUSY);
    long took = outcome_wait(&o, 8000);
    assert_true(took >= 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.err, SL_ERR_BUSY);
    assert_non_null(strstr(o.detail, "Queue full"));
    assert_int_equal(outcome_wait(&o2, 100), -1);
    sl_log_close(log);
    assert_int_equal(o.calls, 1);
    assert_int_equal(rd_kafka_mock_broker_set_up(m->mc, 1), 0);
    outcome_cleanup(&o);
    outcome_cleanup(&o2);
}

static void test_broker_down_and_back(void **state)
{
    mock *m = *state;
    sl_log_t *log = open_log(m, true, quiet, 2);
    assert_int_equal(rd_kafka_mock_broker_set_down(m->mc, 1), 0);
    sl_log_record rec = {"k", 1, "{}", 2};
    outcome o;
    outcome_init(&o);
    assert_int_equal(sl_log_append(log, &rec, 1, on_done, &o), SL_OK);
    long took = outcome_wait(&o, 15000);
    assert_true(took >= 0);
    assert_int_equal(o.err, SL_ERR_IO);
    assert_non_null(strstr(o.detail, "kafka delivery failed: "));
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_false(st.healthy);
    outcome_cleanup(&o);

    assert_int_equal(rd_kafka_mock_broker_set_up(m->mc, 1), 0);
    bool ok = false;
    for (int i = 0; i < 20 && !ok; i++) {
        outcome_init(&o);
        assert_int_equal(sl_log_append(log, &rec, 1, on_done, &o), SL_OK);
        assert_true(outcome_wait(&o, 15000) >= 0);
        ok = o.err == SL_OK;
        outcome_cleanup(&o);
    }
    assert_true(ok);
    sl_log_get_stats(log, &st);
    assert_true(st.healthy);
    sl_log_close(log);
}

/* A record that librdkafka refuses inside rd_kafka_produce (its partitioner fails once the
 * cluster says the topic is gone) is answered by sl_log_append alone: an error, no callback,
 * nothing left pending. librdkafka acknowledges such a record from inside the call too; that
 * acknowledgement must not count a second time. When the topic is back, appends succeed. */
static void test_refused_inside_produce(void **state)
{
    mock *m = *state;
    static const char *const opts[] = {"log_level=0", "message.timeout.ms=1000",
                                       "topic.metadata.refresh.interval.ms=100",
                                       "topic.metadata.propagation.max.ms=0"};
    sl_log_t *log = open_log(m, true, opts, 4);
    rd_kafka_mock_topic_set_error(m->mc, "t", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    sl_log_record rec = {"k", 1, "{}", 2};
    sl_err err = SL_OK;
    outcome o;
    /* Until the producer's next metadata refresh, appends are taken and answered later. */
    for (int i = 0; i < 100 && err == SL_OK; i++) {
        outcome_init(&o);
        err = sl_log_append(log, &rec, 1, on_done, &o);
        if (err == SL_OK)
            assert_true(outcome_wait(&o, 5000) >= 0);
        else
            assert_int_equal(outcome_wait(&o, 300), -1);
        outcome_cleanup(&o);
        if (err == SL_OK)
            usleep(100 * 1000);
    }
    assert_int_equal(err, SL_ERR_IO);
    sl_log_stats st;
    sl_log_get_stats(log, &st);
    assert_int_equal(st.pending_bytes, 0);

    rd_kafka_mock_topic_set_error(m->mc, "t", RD_KAFKA_RESP_ERR_NO_ERROR);
    bool ok = false;
    for (int i = 0; i < 100 && !ok; i++) {
        outcome_init(&o);
        if (sl_log_append(log, &rec, 1, on_done, &o) == SL_OK) {
            assert_true(outcome_wait(&o, 5000) >= 0);
            ok = o.err == SL_OK;
        } else {
            usleep(100 * 1000);
        }
        outcome_cleanup(&o);
    }
    assert_true(ok);
    sl_log_get_stats(log, &st);
    assert_int_equal(st.pending_bytes, 0);
    sl_log_close(log);
}

int sl_test_kafka_group(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_and_read_back, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_identity, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_broker_down_and_back, mock_setup, mock_teardown),
        cmocka_unit_test_setup_teardown(test_refused_inside_produce, mock_setup, mock_teardown),
    };
    return cmocka_run_group_tests_name("kafka", tests, NULL, NULL);
}
