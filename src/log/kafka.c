/* The Kafka log backend (kafka://BROKERS/TOPIC): appends go to an idempotent librdkafka
 * producer (acks=all, lz4 batches, key = session_id, Kafka's murmur2 partitioner) and each
 * unit is answered when the broker acknowledged all of its records, from librdkafka's
 * on_acknowledgement interceptor on the thread that learnt the outcome; no thread ever waits
 * per request. A poll thread serves librdkafka's error events and probes a lost cluster.
 * Consumers are in kafka_consumer.c; docs/internals/kafka.md has the whole picture.
 *
 * Invariants:
 *  1. A unit's callback reports SL_OK only when an acknowledgement without error arrived
 *     for every one of its records (with acks=all and idempotence: written to every
 *     in-sync replica, once). Any other outcome reports the unit's first error.
 *  2. Every accepted unit (sl_log_append returned SL_OK) gets exactly one callback. Its
 *     refcount starts at n + 1: one per record (dropped by its acknowledgement) and one
 *     held by sl_log_append until it has produced what it could. Whoever drops the last
 *     reference completes the unit; a unit nobody could enqueue is refused (no callback).
 *  3. Callbacks run on librdkafka's threads, the poll thread or the closing thread, never on
 *     the appending thread: a unit completed inside sl_log_append goes to the done list,
 *     which the poll thread drains.
 *  4. The producer queue is bounded (queue.buffering.max.kbytes from max_pending_bytes,
 *     queue.buffering.max.messages) and every message has a deadline (message.timeout.ms,
 *     default 5 s): a full queue answers SL_ERR_BUSY at once, a dead broker answers an
 *     error within the deadline.
 *  5. Nothing acknowledged is lost: acknowledgement waits for the broker, and close flushes
 *     (then purges, reporting errors) before destroying the producer.
 *
 * States of a unit: PRODUCING (sl_log_append holds a reference) -> IN FLIGHT (records in
 * librdkafka's queue, references held by their acknowledgements) -> DONE (callback called,
 * freed). States of the handle: OPEN -> CLOSING (appends get SL_ERR_CLOSED; the poll thread
 * stops; flush, purge, poll until every unit is done) -> CLOSED. healthy goes false on
 * "all brokers down" or a failed delivery, and true on a successful delivery or, while
 * unhealthy, on a metadata probe (every 2 s) that reaches a broker. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/diag.h"
#include "core/time.h"
#include "log/kafka_producer_settings.h"
#include "log/log_int.h"

#define METADATA_TIMEOUT_MS 10000
#define PROBE_INTERVAL_NS   2000000000ll
#define PROBE_TIMEOUT_MS    200
#define POLL_MS             50
#define TOPIC_MAX           249

static const sl__log_backend kafka_backend;

typedef struct kunit {
    struct kunit *next; /* done list, @locks dmu */
    atomic_size_t refs;
    atomic_int err; /* first sl_err; its writer fills detail before dropping its ref */
    char detail[200];
    sl_log_append_cb cb;
    void *opaque;
} kunit;

typedef struct kafka_log {
    sl_log_t base;
    sl__log_kafka_info ki;
    char *brokers;
    char *topic;
    char **opts;
    size_t n_opts;
    bool producer;
    char identity[300]; /* "kafka:CLUSTER_ID/TOPIC"; "" when the cluster gave no id */
    size_t max_pending_bytes;
    int message_timeout_ms;

    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;

    pthread_rwlock_t close_lock; /* appends hold it shared; close takes it exclusively */
    bool closing;                /* @locks close_lock */
    pthread_t poller;
    bool poller_started;
    atomic_bool stop;
    atomic_bool abandoned; /* close gave up on units in flight: their callers are gone */

    pthread_mutex_t dmu;
    kunit *done; /* @locks dmu: units completed off the poll thread */

    atomic_uint_fast64_t st_delivered;
    atomic_uint_fast64_t st_units_ok;
    atomic_uint_fast64_t st_pending;
    atomic_uint_fast64_t st_open_units;
    atomic_bool st_healthy;
    int64_t next_probe_ns; /* @thread poll thread */
} kafka_log;

const sl__log_kafka_info *sl__log_kafka_info_of(sl_log_t *log)
{
    return &((kafka_log *)log)->ki;
}

/* ---- configuration ---- */

void sl__log_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    sl_diag_level dl = level <= 3   ? SL_DIAG_ERROR
                       : level <= 4 ? SL_DIAG_WARN
                       : level <= 6 ? SL_DIAG_INFO
                                    : SL_DIAG_DEBUG;
    /* --kafka-opt goes to producers and consumers alike: "consumer property ignored by
     * this producer" is expected, not worth a warning. */
    if (strcmp(fac, "CONFWARN") == 0)
        dl = SL_DIAG_DEBUG;
    sl_diag(dl, "kafka", "client=%s fac=%s detail=\"%s\"", rd_kafka_name(rk), fac, buf);
}

static sl_err set_prop(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                       size_t errlen)
{
    char es[256];
    if (rd_kafka_conf_set(conf, key, value, es, sizeof es) != RD_KAFKA_CONF_OK)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "kafka setting \"%s=%s\": %s", key,
                             value, es);
    return SL_OK;
}

rd_kafka_conf_t *sl__log_kafka_conf_new(const sl__log_kafka_info *ki, const char *const *defaults,
                                        char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char *key = NULL;
    if (!conf) {
        sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not create kafka configuration");
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, sl__log_kafka_log_cb);
    if (set_prop(conf, "bootstrap.servers", ki->brokers, errbuf, errlen))
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2) {
        if (set_prop(conf, defaults[i], defaults[i + 1], errbuf, errlen))
            goto fail;
    }
    for (size_t i = 0; i < ki->n_opts; i++) {
        const char *eq = strchr(ki->opts[i], '=');
        key = eq ? strndup(ki->opts[i], (size_t)(eq - ki->opts[i])) : NULL;
        if (!key) {
            sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "kafka setting \"%s\" is not key=value",
                          ki->opts[i]);
            goto fail;
        }
        if (set_prop(conf, key, eq + 1, errbuf, errlen))
            goto fail;
        free(key);
        key = NULL;
    }
    return conf;
fail:
    free(key);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Splits "BROKERS[/TOPIC]" and checks both halves. */
static sl_err parse_spec(kafka_log *lg, const char *spec, char *errbuf, size_t errlen)
{
    const char *slash = strchr(spec, '/');
    size_t blen = slash ? (size_t)(slash - spec) : strlen(spec);
    const char *topic = slash && slash[1] ? slash + 1 : SL__LOG_KAFKA_DEFAULT_TOPIC;
    if (blen == 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "log URI \"kafka://%s\" names no broker: expected "
                             "kafka://HOST:PORT[,HOST:PORT...]/TOPIC",
                             spec);
    size_t tlen = strlen(topic);
    bool ok = tlen <= TOPIC_MAX && strcmp(topic, ".") != 0 && strcmp(topic, "..") != 0;
    for (size_t i = 0; ok && i < tlen; i++) {
        char ch = topic[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == '-';
    }
    if (!ok)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "invalid kafka topic \"%.260s\": use 1 to %d characters of A-Z, "
                             "a-z, 0-9, '.', '_' and '-'",
                             topic, TOPIC_MAX);
    lg->brokers = strndup(spec, blen);
    lg->topic = strdup(topic);
    if (!lg->brokers || !lg->topic)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                             "could not open kafka log: out of memory");
    return SL_OK;
}

/* ---- units ---- */

/* Records err as the unit's outcome unless an earlier error is already there. */
static void unit_fail(kunit *u, sl_err err, const char *prefix, const char *what)
{
    int expected = SL_OK;
    if (atomic_compare_exchange_strong(&u->err, &expected, (int)err))
        snprintf(u->detail, sizeof u->detail, "%s: %s", prefix, what);
}

static void unit_complete(kafka_log *lg, kunit *u)
{
    sl_err err = (sl_err)atomic_load(&u->err);
    if (err == SL_OK)
        atomic_fetch_add(&lg->st_units_ok, 1);
    u->cb(u->opaque, err, err ? u->detail : NULL);
    free(u);
    atomic_fetch_sub(&lg->st_open_units, 1);
}

/* Drops k references; true when they were the last ones. */
static bool unit_release(kunit *u, size_t k)
{
    return atomic_fetch_sub_explicit(&u->refs, k, memory_order_acq_rel) == k;
}

static void drain_done(kafka_log *lg)
{
    pthread_mutex_lock(&lg->dmu);
    kunit *u = lg->done;
    lg->done = NULL;
    pthread_mutex_unlock(&lg->dmu);
    while (u) {
        kunit *next = u->next;
        unit_complete(lg, u);
        u = next;
    }
}

/* True while this thread is inside rd_kafka_produce(): librdkafka acknowledges a message it
 * refuses there (a failed partitioner) from within the call, and kafka_append, which sees
 * the call fail, answers for that record itself. */
static _Thread_local bool tl_producing;

/* librdkafka's on_acknowledgement interceptor: once per message, at its final outcome
 * (delivered with acks=all, or failed for good), on the thread that learnt it: the
 * broker's thread for an answer, librdkafka's main thread for a timeout, the closing
 * thread for a purge. Answering from here rather than from a delivery report served by
 * rd_kafka_poll() spares each answer a hand-over to the poll thread; with no delivery
 * report callback set, librdkafka frees delivered messages at once. It must not call
 * librdkafka on rk, nor block: it counts, and may run the unit's callback. */
static rd_kafka_resp_err_t on_acknowledgement(rd_kafka_t *rk, rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    kafka_log *lg = opaque;
    if (tl_producing || atomic_load(&lg->abandoned))
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    kunit *u = rkm->_private;
    atomic_fetch_sub(&lg->st_pending, (uint_fast64_t)(rkm->len + rkm->key_len));
    if (rkm->err) {
        if (atomic_exchange(&lg->st_healthy, false))
            sl_diag(SL_DIAG_WARN, "kafka delivery failed", "topic=%s detail=\"%s\"", lg->topic,
                    rd_kafka_err2str(rkm->err));
        unit_fail(u, SL_ERR_IO, "kafka delivery failed", rd_kafka_err2str(rkm->err));
    } else {
        atomic_fetch_add(&lg->st_delivered, 1);
        if (!atomic_exchange(&lg->st_healthy, true))
            sl_diag(SL_DIAG_INFO, "kafka deliveries succeed again", "topic=%s", lg->topic);
    }
    if (unit_release(u, 1))
        unit_complete(lg, u);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Interceptors are added as the client is created, from this on_new interceptor. */
static rd_kafka_resp_err_t add_interceptors(rd_kafka_t *rk, const rd_kafka_conf_t *conf,
                                            void *opaque, char *errstr, size_t errstr_size)
{
    (void)conf;
    (void)errstr;
    (void)errstr_size;
    return rd_kafka_interceptor_add_on_acknowledgement(rk, "sluice", on_acknowledgement, opaque);
}

/* @thread librdkafka's threads (error events are served by rd_kafka_poll: the poll thread) */
static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    kafka_log *lg = opaque;
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || (code == RD_KAFKA_RESP_ERR__FATAL)) {
        atomic_store(&lg->st_healthy, false);
        sl_diag(SL_DIAG_ERROR, "kafka unavailable", "code=%s detail=\"%s\"",
                rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
        return;
    }
    /* Transport failures are already in librdkafka's own log line (fac=FAIL). */
    sl_diag(code == RD_KAFKA_RESP_ERR__TRANSPORT ? SL_DIAG_DEBUG : SL_DIAG_WARN, "kafka error",
            "code=%s detail=\"%s\"", rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

/* While unhealthy, asks a broker for the topic's metadata now and then, so /ready recovers
 * even when no traffic arrives (a load balancer sends none to an unready server).
 * @thread the poll thread */
static void maybe_probe(kafka_log *lg)
{
    if (atomic_load(&lg->st_healthy))
        return;
    int64_t now = sl_time_mono_ns();
    if (now < lg->next_probe_ns)
        return;
    lg->next_probe_ns = now + PROBE_INTERVAL_NS;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(lg->rk, 0, lg->rkt, &md, PROBE_TIMEOUT_MS) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->broker_cnt > 0 && !atomic_exchange(&lg->st_healthy, true))
        sl_diag(SL_DIAG_INFO, "kafka reachable again", "topic=%s", lg->topic);
    if (md)
        rd_kafka_metadata_destroy(md);
}

static void *poll_main(void *arg)
{
    kafka_log *lg = arg;
    while (!atomic_load(&lg->stop)) {
        rd_kafka_poll(lg->rk, POLL_MS);
        drain_done(lg);
        maybe_probe(lg);
    }
    return NULL;
}

/* ---- open, close ---- */

static void kafka_free(kafka_log *lg)
{
    if (!lg)
        return;
    if (lg->rkt)
        rd_kafka_topic_destroy(lg->rkt);
    if (lg->rk)
        rd_kafka_destroy(lg->rk);
    for (size_t i = 0; i < lg->n_opts; i++)
        free(lg->opts[i]);
    free(lg->opts);
    free(lg->brokers);
    free(lg->topic);
    pthread_rwlock_destroy(&lg->close_lock);
    pthread_mutex_destroy(&lg->dmu);
    free(lg);
}

/* Reads the topic's partition count, retrying while the cluster is still electing leaders
 * or creating the topic. */
static sl_err read_partitions(kafka_log *lg, char *errbuf, size_t errlen)
{
    int64_t deadline = sl_time_mono_ns() + (int64_t)METADATA_TIMEOUT_MS * 1000000;
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        int64_t left_ms = (deadline - sl_time_mono_ns()) / 1000000;
        if (left_ms <= 0)
            break;
        last = rd_kafka_metadata(lg->rk, 0, lg->rkt, &md, (int)left_ms);
        if (!last && md->topic_cnt == 1) {
            last = md->topics[0].err;
            if (!last && md->topics[0].partition_cnt > 0)
                lg->ki.partitions = (unsigned)md->topics[0].partition_cnt;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (lg->ki.partitions)
            return SL_OK;
        if (last == RD_KAFKA_RESP_ERR__TRANSPORT || last == RD_KAFKA_RESP_ERR__TIMED_OUT)
            break;
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
    return sl_errbuf_set(errbuf, errlen, SL_ERR_IO,
                         "could not read metadata of kafka topic \"%s\" from \"%s\": %s", lg->topic,
                         lg->brokers, last ? rd_kafka_err2str(last) : "no partitions");
}

/* The cluster's id (from the metadata read_partitions just fetched) and the topic: a new
 * cluster is a new log. A topic deleted and created again in the same cluster keeps its
 * identity (librdkafka 2.0 does not give topic ids). */
static void read_identity(kafka_log *lg)
{
    char *cluster = rd_kafka_clusterid(lg->rk, METADATA_TIMEOUT_MS);
    if (cluster)
        snprintf(lg->identity, sizeof lg->identity, "kafka:%s/%s", cluster, lg->topic);
    else
        sl_diag(SL_DIAG_WARN,
                "kafka cluster gave no cluster id: sinks cannot tell a new cluster "
                "from the one their offsets were stored for",
                "topic=%s", lg->topic);
    rd_kafka_mem_free(lg->rk, cluster);
}

sl_err sl__log_kafka_open(const char *spec, const sl_log_options *opts, sl_log_t **out,
                          char *errbuf, size_t errlen)
{
    *out = NULL;
    sl_err err;
    rd_kafka_conf_t *conf = NULL;
    kafka_log *lg = calloc(1, sizeof *lg);
    if (!lg)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                             "could not open kafka log: out of memory");
    lg->base.be = &kafka_backend;
    pthread_rwlock_init(&lg->close_lock, NULL);
    pthread_mutex_init(&lg->dmu, NULL);
    atomic_init(&lg->st_healthy, true);
    lg->producer = opts->producer;
    lg->max_pending_bytes = opts->max_pending_bytes;
    if ((err = parse_spec(lg, spec, errbuf, errlen)))
        goto out;
    if (opts->n_kafka_opts) {
        lg->opts = calloc(opts->n_kafka_opts, sizeof *lg->opts);
        if (!lg->opts) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                                "could not open kafka log: out of memory");
            goto out;
        }
        for (size_t i = 0; i < opts->n_kafka_opts; i++) {
            if (!(lg->opts[i] = strdup(opts->kafka_opts[i]))) {
                err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                                    "could not open kafka log: out of memory");
                goto out;
            }
            lg->n_opts++;
        }
    }
    lg->ki = (sl__log_kafka_info){.brokers = lg->brokers,
                                  .topic = lg->topic,
                                  .opts = (const char *const *)lg->opts,
                                  .n_opts = lg->n_opts};

    char kbytes[32];
    size_t kb = opts->max_pending_bytes / 1024;
    snprintf(kbytes, sizeof kbytes, "%zu", kb ? (kb > 2097151 ? 2097151 : kb) : 1);
    const char *producer_defaults[] = {
        "client.id",
        "sluice",
        SL__LOG_KAFKA_PRODUCER_SETTINGS,
        "message.timeout.ms",
        "5000",
        /* A broker gone down is retried at most every second, not librdkafka's 10 s: with
         * 10 s the 503 for events waiting on it came up to 10 s after message.timeout.ms
         * (test_kafka.py's broker-down case: 3 s timeout, answers at 10-12 s; with 1 s,
         * at 3.5-4 s). */
        "reconnect.backoff.max.ms",
        "1000",
        "queue.buffering.max.kbytes",
        kbytes,
        "queue.buffering.max.messages",
        "200000",
        NULL,
    };
    const char *reader_defaults[] = {"client.id", "sluice-reader", "partitioner", "murmur2_random",
                                     NULL};
    conf = sl__log_kafka_conf_new(&lg->ki, lg->producer ? producer_defaults : reader_defaults,
                                  errbuf, errlen);
    if (!conf) {
        err = SL_ERR_CONFIG;
        goto out;
    }
    char mt[32];
    size_t mtlen = sizeof mt;
    lg->message_timeout_ms = 5000;
    if (rd_kafka_conf_get(conf, "message.timeout.ms", mt, &mtlen) == RD_KAFKA_CONF_OK) {
        long v = strtol(mt, NULL, 10);
        if (v > 0 && v < 86400000)
            lg->message_timeout_ms = (int)v;
    }
    rd_kafka_conf_set_opaque(conf, lg);
    if (rd_kafka_conf_interceptor_add_on_new(conf, "sluice", add_interceptors, lg) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                            "could not set up the kafka producer's acknowledgements");
        goto out;
    }
    rd_kafka_conf_set_error_cb(conf, on_error);
    char es[512];
    lg->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    if (!lg->rk) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "could not create kafka client: %s", es);
        goto out; /* conf is still ours */
    }
    conf = NULL;
    lg->rkt = rd_kafka_topic_new(lg->rk, lg->topic, NULL);
    if (!lg->rkt) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "could not use kafka topic \"%s\": %s",
                            lg->topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto out;
    }
    if ((err = read_partitions(lg, errbuf, errlen)))
        goto out;
    read_identity(lg);
    if (pthread_create(&lg->poller, NULL, poll_main, lg) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not start the kafka poll thread");
        goto out;
    }
    lg->poller_started = true;
    *out = &lg->base;
    return SL_OK;
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    kafka_free(lg);
    return err;
}

/* @thread any; callbacks of units still in flight run on this thread. */
static void kafka_close(sl_log_t *log)
{
    kafka_log *lg = (kafka_log *)log;
    pthread_rwlock_wrlock(&lg->close_lock);
    lg->closing = true;
    pthread_rwlock_unlock(&lg->close_lock);
    atomic_store(&lg->stop, true);
    if (lg->poller_started)
        pthread_join(lg->poller, NULL);
    /* Units in flight finish here: delivered, failed by their deadline, or purged. */
    if (rd_kafka_flush(lg->rk, lg->message_timeout_ms + 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        sl_diag(SL_DIAG_WARN, "kafka flush timed out; failing what is left", "messages=%d",
                rd_kafka_outq_len(lg->rk));
        rd_kafka_purge(lg->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    for (int i = 0; i < 100 && atomic_load(&lg->st_open_units); i++) {
        rd_kafka_poll(lg->rk, 50);
        drain_done(lg);
    }
    if (atomic_load(&lg->st_open_units)) {
        sl_diag(SL_DIAG_ERROR, "kafka units left unanswered at close", "units=%" PRIuFAST64,
                atomic_load(&lg->st_open_units));
        /* rd_kafka_destroy may still acknowledge them: that must not reach their callers. */
        atomic_store(&lg->abandoned, true);
    }
    kafka_free(lg);
}

/* ---- append ---- */

static sl_err produce_err(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return SL_ERR_BUSY;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return SL_ERR_TOO_LARGE;
    default:
        return SL_ERR_IO;
    }
}

/* @thread any @locks close_lock (shared, never across a wait) */
static sl_err kafka_append(sl_log_t *log, const sl_log_record *recs, size_t n, sl_log_append_cb cb,
                           void *opaque)
{
    kafka_log *lg = (kafka_log *)log;
    if (!lg->producer)
        return SL_ERR_UNSUPPORTED;
    if (n == 0 || !cb)
        return SL_ERR_INVALID;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += recs[i].key_len + recs[i].value_len;
    if (total > lg->max_pending_bytes)
        return SL_ERR_TOO_LARGE;
    kunit *u = calloc(1, sizeof *u);
    if (!u)
        return SL_ERR_NOMEM;
    atomic_init(&u->refs, n + 1);
    atomic_init(&u->err, SL_OK);
    u->cb = cb;
    u->opaque = opaque;

    pthread_rwlock_rdlock(&lg->close_lock);
    if (lg->closing) {
        pthread_rwlock_unlock(&lg->close_lock);
        free(u);
        return SL_ERR_CLOSED;
    }
    atomic_fetch_add(&lg->st_open_units, 1);
    size_t i;
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (i = 0; i < n; i++) {
        /* Count first: the acknowledgement may come before produce returns. */
        atomic_fetch_add(&lg->st_pending, (uint_fast64_t)(recs[i].key_len + recs[i].value_len));
        tl_producing = true;
        int rc = rd_kafka_produce(lg->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                  (void *)recs[i].value, recs[i].value_len, recs[i].key,
                                  recs[i].key ? recs[i].key_len : 0, u);
        tl_producing = false;
        if (rc == -1) {
            atomic_fetch_sub(&lg->st_pending, (uint_fast64_t)(recs[i].key_len + recs[i].value_len));
            perr = rd_kafka_last_error();
            break;
        }
    }
    sl_err err = SL_OK;
    if (i == 0) {
        /* Nothing enqueued: no acknowledgement holds u, refuse the whole unit. */
        atomic_fetch_sub(&lg->st_open_units, 1);
        free(u);
        err = produce_err(perr);
        goto out;
    }
    if (i < n)
        unit_fail(u, produce_err(perr), "kafka produce refused part of the events",
                  rd_kafka_err2str(perr));
    if (unit_release(u, n - i + 1)) {
        pthread_mutex_lock(&lg->dmu);
        u->next = lg->done;
        lg->done = u;
        pthread_mutex_unlock(&lg->dmu);
        rd_kafka_yield(lg->rk);
    }
out:
    pthread_rwlock_unlock(&lg->close_lock);
    return err;
}

static unsigned kafka_partition_count(const sl_log_t *log)
{
    return ((const kafka_log *)log)->ki.partitions;
}

static const char *kafka_identity(const sl_log_t *log)
{
    return ((const kafka_log *)log)->identity;
}

/* records and bytes (the log's depth) are unknown to a producer: Kafka keeps them. */
static void kafka_get_stats(sl_log_t *log, sl_log_stats *stats)
{
    kafka_log *lg = (kafka_log *)log;
    stats->records = 0;
    stats->bytes = 0;
    stats->appended_total = atomic_load(&lg->st_delivered);
    stats->commits_total = atomic_load(&lg->st_units_ok);
    stats->pending_bytes = atomic_load(&lg->st_pending);
    stats->healthy = atomic_load(&lg->st_healthy);
}

static const sl__log_backend kafka_backend = {
    .name = "kafka",
    .close = kafka_close,
    .append = kafka_append,
    .partition_count = kafka_partition_count,
    .identity = kafka_identity,
    .get_stats = kafka_get_stats,
    .consumer_open = sl__log_kafka_consumer_open,
    .consumer_poll = sl__log_kafka_consumer_poll,
    .consumer_commit = sl__log_kafka_consumer_commit,
    .consumer_seek = sl__log_kafka_consumer_seek,
    .consumer_committed = sl__log_kafka_consumer_committed,
    .consumer_is_caught_up = sl__log_kafka_consumer_is_caught_up,
    .consumer_errmsg = sl__log_kafka_consumer_errmsg,
    .consumer_close = sl__log_kafka_consumer_close,
};
