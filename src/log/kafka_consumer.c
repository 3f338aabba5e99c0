/* Consumers of the Kafka log: one librdkafka consumer per sl_log_consumer_t. With a group,
 * it subscribes (group.id = the group name, manual synchronous commits, eager assignment
 * unless the user picks a cooperative strategy) and tells the sink of assignments and
 * revocations; without one, it assigns itself every partition from the beginning under a
 * throwaway group.id that never joins or commits.
 *
 * Invariants:
 *  1. on_revoke runs before partitions are given up (the rebalance callback calls it, then
 *     unassigns), so a sink can flush and commit what it holds.
 *  2. Offsets are only ever committed by sl_log_consumer_commit (enable.auto.commit and
 *     enable.auto.offset.store are off): what a sink did not commit is read again.
 *  3. Messages returned by a poll are the rd_kafka_message_t's themselves, kept in `held`
 *     and destroyed at the next poll or at close.
 *
 * States of a partition here: UNASSIGNED -> ASSIGNED (fetching; eof false) -> AT END (the
 * last poll saw its end: eof true, until a message of it arrives) -> UNASSIGNED on revoke. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/time.h"
#include "log/log_int.h"

#define OP_TIMEOUT_MS 10000

typedef struct kafka_consumer {
    sl_log_consumer_t base;
    const sl__log_kafka_info *ki;
    rd_kafka_t *rk;
    bool grouped;
    bool from_beginning;
    sl_log_partitions_cb on_assign;
    sl_log_partitions_cb on_revoke;
    void *opaque;

    rd_kafka_message_t **held;
    size_t n_held;
    size_t cap_held;

    unsigned parts;
    bool *assigned;
    bool *seen; /* assigned at least once by this consumer (from_beginning) */
    bool *eof;
    int64_t *pending_seek; /* -1: none; applied when the partition is (re)assigned */
    bool in_assign;
    bool assigned_once;
    unsigned *scratch; /* partition numbers for the callbacks */
    char errmsg[256];
} kafka_consumer;

static sl_err fail(kafka_consumer *kc, sl_err err, const char *what, const char *detail)
{
    snprintf(kc->errmsg, sizeof kc->errmsg, "%s: %.200s", what, detail);
    return err;
}

static void release_held(kafka_consumer *kc)
{
    for (size_t i = 0; i < kc->n_held; i++)
        rd_kafka_message_destroy(kc->held[i]);
    kc->n_held = 0;
}

/* Tells the sink which partitions move; list holds only partitions of our topic. */
static size_t partition_numbers(kafka_consumer *kc, const rd_kafka_topic_partition_list_t *list)
{
    size_t n = 0;
    for (int i = 0; i < list->cnt; i++) {
        int32_t p = list->elems[i].partition;
        if (p >= 0 && (unsigned)p < kc->parts)
            kc->scratch[n++] = (unsigned)p;
        else
            sl_diag(SL_DIAG_WARN, "kafka partition beyond the count read at open; ignored",
                    "topic=%s partition=%" PRId32, kc->ki->topic, p);
    }
    return n;
}

/* @thread the consumer's thread (inside rd_kafka_consumer_poll or _close) */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    kafka_consumer *kc = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    size_t n = partition_numbers(kc, list);
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        kc->in_assign = true;
        if (kc->on_assign && n)
            kc->on_assign(kc->opaque, kc->scratch, n);
        kc->in_assign = false;
        for (int i = 0; i < list->cnt; i++) {
            int32_t p = list->elems[i].partition;
            if (p < 0 || (unsigned)p >= kc->parts)
                continue;
            if (kc->pending_seek[p] >= 0)
                list->elems[i].offset = kc->pending_seek[p];
            else if (kc->from_beginning && !kc->seen[p])
                list->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
            kc->pending_seek[p] = -1;
            kc->assigned[p] = kc->seen[p] = true;
            kc->eof[p] = false;
        }
        if (coop)
            error = rd_kafka_incremental_assign(rk, list);
        else
            aerr = rd_kafka_assign(rk, list);
        kc->assigned_once = true;
    } else {
        if (kc->on_revoke && n)
            kc->on_revoke(kc->opaque, kc->scratch, n);
        for (size_t i = 0; i < n; i++)
            kc->assigned[kc->scratch[i]] = kc->eof[kc->scratch[i]] = false;
        if (coop) {
            error = rd_kafka_incremental_unassign(rk, list);
        } else {
            aerr = rd_kafka_assign(rk, NULL);
            memset(kc->assigned, 0, kc->parts * sizeof *kc->assigned);
        }
    }
    if (error) {
        sl_diag(SL_DIAG_ERROR, "kafka assignment change failed", "detail=\"%s\"",
                rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    if (aerr)
        sl_diag(SL_DIAG_ERROR, "kafka assignment change failed", "detail=\"%s\"",
                rd_kafka_err2str(aerr));
}

static void consumer_free(kafka_consumer *kc)
{
    if (!kc)
        return;
    release_held(kc);
    if (kc->rk)
        rd_kafka_destroy(kc->rk);
    free(kc->held);
    free(kc->assigned);
    free(kc->seen);
    free(kc->eof);
    free(kc->pending_seek);
    free(kc->scratch);
    free(kc);
}

/* Without a group: every partition, from the beginning, no coordinator involved. */
static sl_err assign_all(kafka_consumer *kc, char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)kc->parts);
    for (unsigned p = 0; p < kc->parts; p++) {
        rd_kafka_topic_partition_list_add(list, kc->ki->topic, (int32_t)p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        kc->scratch[p] = p;
        kc->assigned[p] = kc->seen[p] = true;
    }
    if (kc->on_assign)
        kc->on_assign(kc->opaque, kc->scratch, kc->parts);
    for (unsigned p = 0; p < kc->parts; p++) {
        if (kc->pending_seek[p] >= 0)
            list->elems[p].offset = kc->pending_seek[p];
        kc->pending_seek[p] = -1;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(kc->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    kc->assigned_once = true;
    if (err)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not assign kafka partitions: %s",
                             rd_kafka_err2str(err));
    return SL_OK;
}

sl_err sl__log_kafka_consumer_open(sl_log_t *log, const sl_log_consumer_options *opts,
                                   sl_log_consumer_t **out, char *errbuf, size_t errlen)
{
    sl_err err = SL_OK;
    rd_kafka_conf_t *conf = NULL;
    kafka_consumer *kc = calloc(1, sizeof *kc);
    if (!kc)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM,
                             "could not open consumer: out of memory");
    kc->base.be = log->be;
    kc->ki = sl__log_kafka_info_of(log);
    kc->parts = kc->ki->partitions;
    kc->grouped = opts->group != NULL;
    kc->from_beginning = opts->from_beginning;
    kc->on_assign = opts->on_assign;
    kc->on_revoke = opts->on_revoke;
    kc->opaque = opts->opaque;
    kc->assigned = calloc(kc->parts, sizeof *kc->assigned);
    kc->seen = calloc(kc->parts, sizeof *kc->seen);
    kc->eof = calloc(kc->parts, sizeof *kc->eof);
    kc->pending_seek = malloc(kc->parts * sizeof *kc->pending_seek);
    kc->scratch = calloc(kc->parts, sizeof *kc->scratch);
    if (!kc->assigned || !kc->seen || !kc->eof || !kc->pending_seek || !kc->scratch) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open consumer: out of memory");
        goto out;
    }
    for (unsigned p = 0; p < kc->parts; p++)
        kc->pending_seek[p] = -1;

    char group[SL__LOG_GROUP_MAX + 64];
    if (opts->group)
        snprintf(group, sizeof group, "%s", opts->group);
    else
        snprintf(group, sizeof group, "sluice-tmp-%ld-%" PRId64, (long)getpid(), sl_time_mono_ns());
    const char *defaults[] = {
        "client.id",
        "sluice-consumer",
        "group.id",
        group,
        "enable.auto.commit",
        "false",
        "enable.auto.offset.store",
        "false",
        "auto.offset.reset",
        "earliest",
        "enable.partition.eof",
        "true",
        "partition.assignment.strategy",
        "range,roundrobin",
        NULL,
    };
    conf = sl__log_kafka_conf_new(kc->ki, defaults, errbuf, errlen);
    if (!conf) {
        err = SL_ERR_CONFIG;
        goto out;
    }
    rd_kafka_conf_set_opaque(conf, kc);
    if (kc->grouped)
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    char es[512];
    kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    if (!kc->rk) {
        err =
            sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "could not create kafka consumer: %s", es);
        goto out;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(kc->rk);
    if (kc->grouped) {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, kc->ki->topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(kc->rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (e) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not subscribe to \"%s\": %s",
                                kc->ki->topic, rd_kafka_err2str(e));
            goto out;
        }
    } else if ((err = assign_all(kc, errbuf, errlen))) {
        goto out;
    }
    *out = &kc->base;
    return SL_OK;
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    consumer_free(kc);
    return err;
}

/* @thread the consumer's thread */
sl_err sl__log_kafka_consumer_poll(sl_log_consumer_t *c, sl_log_message *msgs, size_t max,
                                   size_t *n_out, int timeout_ms)
{
    kafka_consumer *kc = (kafka_consumer *)c;
    *n_out = 0;
    kc->errmsg[0] = '\0';
    release_held(kc);
    if (max > kc->cap_held) {
        rd_kafka_message_t **h = realloc(kc->held, max * sizeof *h);
        if (!h)
            return fail(kc, SL_ERR_NOMEM, "could not poll", "out of memory");
        kc->held = h;
        kc->cap_held = max;
    }
    int64_t deadline = sl_time_mono_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    size_t n = 0;
    while (n < max) {
        int wait = 0;
        if (n == 0) {
            int64_t left = (deadline - sl_time_mono_ns()) / 1000000;
            wait = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kc->rk, wait);
        if (!m)
            break;
        int32_t p = m->partition;
        bool ours = p >= 0 && (unsigned)p < kc->parts;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (ours)
                kc->eof[p] = true;
            rd_kafka_message_destroy(m);
            if (n == 0 && wait == 0)
                break;
            continue;
        }
        if (m->err) {
            sl_err err = SL_OK;
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                char detail[256];
                rd_kafka_fatal_error(kc->rk, detail, sizeof detail);
                err = fail(kc, SL_ERR_IO, "kafka consumer failed", detail);
            } else {
                sl_diag(SL_DIAG_WARN, "kafka consumer error", "detail=\"%s\"",
                        rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            if (err)
                return err;
            continue;
        }
        if (!ours) {
            rd_kafka_message_destroy(m);
            continue;
        }
        kc->eof[p] = false;
        kc->held[kc->n_held++] = m;
        msgs[n++] = (sl_log_message){
            .partition = (unsigned)p,
            .offset = (uint64_t)m->offset,
            .timestamp_ms = rd_kafka_message_timestamp(m, NULL),
            .key = m->key,
            .key_len = m->key_len,
            .value = m->payload,
            .value_len = m->len,
        };
    }
    *n_out = n;
    return SL_OK;
}

/* The coordinator refuses commits from a member whose generation is over: routine while
 * the group rebalances (SL_ERR_BUSY), not a broken consumer. */
static bool is_rebalance_refusal(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
           e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
           e == RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST || e == RD_KAFKA_RESP_ERR__STATE;
}

static sl_err list_result(kafka_consumer *kc, const char *what, rd_kafka_resp_err_t e,
                          const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; !e && list && i < list->cnt; i++)
        e = list->elems[i].err;
    if (!e)
        return SL_OK;
    sl_err err = e == RD_KAFKA_RESP_ERR__TIMED_OUT ? SL_ERR_TIMEOUT
                 : is_rebalance_refusal(e)         ? SL_ERR_BUSY
                                                   : SL_ERR_IO;
    return fail(kc, err, what, rd_kafka_err2str(e));
}

/* Synchronous: returns once the group coordinator stored the offsets. */
sl_err sl__log_kafka_consumer_commit(sl_log_consumer_t *c, const sl_log_position *pos, size_t n)
{
    kafka_consumer *kc = (kafka_consumer *)c;
    kc->errmsg[0] = '\0';
    if (!kc->grouped)
        return fail(kc, SL_ERR_UNSUPPORTED, "could not commit", "the consumer has no group");
    if (n == 0)
        return SL_OK;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, kc->ki->topic, (int32_t)pos[i].partition)->offset =
            (int64_t)pos[i].offset;
    rd_kafka_resp_err_t e = rd_kafka_commit(kc->rk, list, 0);
    sl_err err = list_result(kc, "could not commit kafka offsets", e, list);
    rd_kafka_topic_partition_list_destroy(list);
    return err;
}

sl_err sl__log_kafka_consumer_seek(sl_log_consumer_t *c, unsigned partition, uint64_t offset)
{
    kafka_consumer *kc = (kafka_consumer *)c;
    kc->errmsg[0] = '\0';
    if (partition >= kc->parts)
        return fail(kc, SL_ERR_INVALID, "could not seek", "no such partition");
    if (offset > INT64_MAX)
        return fail(kc, SL_ERR_INVALID, "could not seek", "offset out of range");
    kc->eof[partition] = false;
    if (!kc->assigned[partition] || kc->in_assign) {
        kc->pending_seek[partition] = (int64_t)offset; /* applied when it is assigned */
        return SL_OK;
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, kc->ki->topic, (int32_t)partition)->offset =
        (int64_t)offset;
    rd_kafka_error_t *error = rd_kafka_seek_partitions(kc->rk, list, OP_TIMEOUT_MS);
    sl_err err = SL_OK;
    if (error) {
        err = fail(kc, SL_ERR_IO, "could not seek", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else {
        err = list_result(kc, "could not seek", RD_KAFKA_RESP_ERR_NO_ERROR, list);
    }
    rd_kafka_topic_partition_list_destroy(list);
    return err;
}

sl_err sl__log_kafka_consumer_committed(sl_log_consumer_t *c, unsigned partition, uint64_t *offset)
{
    kafka_consumer *kc = (kafka_consumer *)c;
    kc->errmsg[0] = '\0';
    if (!kc->grouped || partition >= kc->parts)
        return SL_ERR_NOT_FOUND;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, kc->ki->topic, (int32_t)partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(kc->rk, list, OP_TIMEOUT_MS);
    sl_err err = list_result(kc, "could not read committed kafka offsets", e, list);
    if (!err) {
        int64_t off = list->elems[0].offset;
        if (off < 0)
            err = SL_ERR_NOT_FOUND;
        else
            *offset = (uint64_t)off;
    }
    rd_kafka_topic_partition_list_destroy(list);
    return err;
}

/* A partition is read to its end when the last poll reported its end (partition EOF) or
 * the position reached the high watermark librdkafka cached from its last fetch. */
bool sl__log_kafka_consumer_is_caught_up(sl_log_consumer_t *c)
{
    kafka_consumer *kc = (kafka_consumer *)c;
    if (!kc->assigned_once)
        return false;
    for (unsigned p = 0; p < kc->parts; p++) {
        if (!kc->assigned[p] || kc->eof[p])
            continue;
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(kc->rk, kc->ki->topic, (int32_t)p, &lo, &hi) || hi < 0)
            return false;
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, kc->ki->topic, (int32_t)p);
        bool at_end = rd_kafka_position(kc->rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                      list->elems[0].offset >= 0 && list->elems[0].offset >= hi;
        rd_kafka_topic_partition_list_destroy(list);
        if (!at_end)
            return false;
    }
    return true;
}

const char *sl__log_kafka_consumer_errmsg(sl_log_consumer_t *c)
{
    return ((kafka_consumer *)c)->errmsg;
}

/* Leaves the group (on_revoke runs first, through the rebalance callback) and frees. */
void sl__log_kafka_consumer_close(sl_log_consumer_t *c)
{
    kafka_consumer *kc = (kafka_consumer *)c;
    release_held(kc);
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(kc->rk);
    if (e)
        sl_diag(SL_DIAG_WARN, "kafka consumer close failed", "detail=\"%s\"", rd_kafka_err2str(e));
    consumer_free(kc);
}
