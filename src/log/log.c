/* The backend-neutral half of the log: option defaults and checks, URI dispatch
 * (file://DIR to the embedded LMDB backend, kafka:// to librdkafka in kafka.c), Kafka's
 * default partitioner, and `sluice log read` (sl_log_print), written against the public
 * consumer calls so it works the same on every backend. */
#include "log/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log/log_int.h"

#define PRINT_BATCH 256

void sl_log_options_default(sl_log_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->producer = false;
    opts->partitions = 8;
    opts->retention_bytes = 1ull << 30;
    opts->retention_ms = 7ull * 24 * 3600 * 1000;
    opts->max_pending_bytes = (size_t)64 << 20;
    opts->max_size_bytes = 4ull << 30;
}

static sl_err check_options(const char *uri, const sl_log_options *opts, char *errbuf,
                            size_t errlen)
{
    if (opts->partitions < 1 || opts->partitions > SL__LOG_MAX_PARTITIONS)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "could not open log \"%s\": partitions must be 1 to %u, not %u", uri,
                             SL__LOG_MAX_PARTITIONS, opts->partitions);
    if (opts->max_pending_bytes == 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "could not open log \"%s\": max_pending_bytes must be above 0", uri);
    if (opts->max_size_bytes < SL__LOG_MIN_SIZE_BYTES)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "could not open log \"%s\": max_size_bytes must be at least %u, "
                             "not %" PRIu64,
                             uri, SL__LOG_MIN_SIZE_BYTES, opts->max_size_bytes);
    if (opts->max_size_bytes > (uint64_t)SIZE_MAX)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "could not open log \"%s\": max_size_bytes %" PRIu64
                             " does not fit in memory addresses",
                             uri, opts->max_size_bytes);
    return SL_OK;
}

sl_err sl_log_open(const char *uri, const sl_log_options *opts, sl_log_t **out, char *errbuf,
                   size_t errlen)
{
    *out = NULL;
    if (!uri)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "no log URI given");
    sl_log_options defaults;
    if (!opts) {
        sl_log_options_default(&defaults);
        opts = &defaults;
    }
    if (strncmp(uri, "kafka://", 8) == 0) {
        sl_err err = check_options(uri, opts, errbuf, errlen);
        if (err)
            return err;
        return sl__log_kafka_open(uri + 8, opts, out, errbuf, errlen);
    }
    if (strncmp(uri, "file://", 7) != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "unsupported log URI \"%s\": expected file://DIR or "
                             "kafka://HOST:PORT/TOPIC",
                             uri);
    const char *dir = uri + 7;
    if (*dir == '\0')
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "log URI \"%s\" names no directory: expected file://DIR", uri);
    sl_err err = check_options(uri, opts, errbuf, errlen);
    if (err)
        return err;
    return sl__log_embedded_open(dir, opts, out, errbuf, errlen);
}

void sl_log_close(sl_log_t *log)
{
    if (log)
        log->be->close(log);
}

sl_err sl_log_append(sl_log_t *log, const sl_log_record *recs, size_t n, sl_log_append_cb cb,
                     void *opaque)
{
    return log->be->append(log, recs, n, cb, opaque);
}

/* Java's ints wrap; uint32_t arithmetic gives the same bits without signed overflow. */
int32_t sl__log_murmur2(const void *data, size_t len)
{
    const unsigned char *p = data;
    const uint32_t m = 0x5bd1e995u;
    const int r = 24;
    /* Java's `seed ^ length` uses an int length; keys are far below 2 GiB. */
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t len4 = len / 4;
    for (size_t i = 0; i < len4; i++) {
        const unsigned char *q = p + i * 4;
        uint32_t k =
            (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const unsigned char *tail = p + (len & ~(size_t)3);
    switch (len % 4) {
    case 3:
        h ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)tail[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

unsigned sl_log_partition_for_key(const char *key, size_t key_len, unsigned partitions)
{
    if (partitions == 0)
        return 0;
    /* Kafka's toPositive(): clear the sign bit (not abs(), which differs for INT_MIN). */
    uint32_t h = (uint32_t)sl__log_murmur2(key, key_len) & 0x7fffffffu;
    return h % partitions;
}

unsigned sl_log_partition_count(const sl_log_t *log)
{
    return log->be->partition_count(log);
}

const char *sl_log_identity(const sl_log_t *log)
{
    return log->be->identity(log);
}

void sl_log_get_stats(sl_log_t *log, sl_log_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    log->be->get_stats(log, stats);
}

bool sl__log_group_name_ok(const char *name)
{
    if (!name)
        return false;
    size_t len = strlen(name);
    if (len < 1 || len > SL__LOG_GROUP_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* ---- consumers: thin dispatch ---- */

sl_err sl_log_consumer_open(sl_log_t *log, const sl_log_consumer_options *opts,
                            sl_log_consumer_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    sl_log_consumer_options none = {0};
    if (!opts)
        opts = &none;
    if (opts->group && !sl__log_group_name_ok(opts->group))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "invalid consumer group name \"%.120s\": use 1 to %u characters "
                             "of A-Z, a-z, 0-9, '.', '_' and '-'",
                             opts->group, SL__LOG_GROUP_MAX);
    if (opts->shares > 1 && opts->share >= opts->shares)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "consumer share %u is out of range: there are %u shares", opts->share,
                             opts->shares);
    return log->be->consumer_open(log, opts, out, errbuf, errlen);
}

sl_err sl_log_consumer_poll(sl_log_consumer_t *c, sl_log_message *msgs, size_t max, size_t *n_out,
                            int timeout_ms)
{
    return c->be->consumer_poll(c, msgs, max, n_out, timeout_ms);
}

sl_err sl_log_consumer_commit(sl_log_consumer_t *c, const sl_log_position *pos, size_t n)
{
    return c->be->consumer_commit(c, pos, n);
}

sl_err sl_log_consumer_seek(sl_log_consumer_t *c, unsigned partition, uint64_t offset)
{
    return c->be->consumer_seek(c, partition, offset);
}

sl_err sl_log_consumer_committed(sl_log_consumer_t *c, unsigned partition, uint64_t *offset)
{
    return c->be->consumer_committed(c, partition, offset);
}

bool sl_log_consumer_is_caught_up(sl_log_consumer_t *c)
{
    return c->be->consumer_is_caught_up(c);
}

const char *sl_log_consumer_errmsg(sl_log_consumer_t *c)
{
    return c->be->consumer_errmsg(c);
}

void sl_log_consumer_close(sl_log_consumer_t *c)
{
    if (c)
        c->be->consumer_close(c);
}

/* ---- sluice log read ---- */

/* Commits, for every partition printed from, the offset after the last printed message.
 * next[p] == UINT64_MAX marks a partition with nothing printed. */
static sl_err commit_printed(sl_log_consumer_t *c, const uint64_t *next, unsigned parts,
                             sl_log_position *pos, char *errbuf, size_t errlen)
{
    size_t n = 0;
    for (unsigned p = 0; p < parts; p++) {
        if (next[p] != UINT64_MAX)
            pos[n++] = (sl_log_position){.partition = p, .offset = next[p]};
    }
    if (n == 0)
        return SL_OK;
    sl_err err = sl_log_consumer_commit(c, pos, n);
    if (err)
        return sl_errbuf_set(errbuf, errlen, err, "could not commit printed offsets: %s",
                             sl_log_consumer_errmsg(c));
    return SL_OK;
}

sl_err sl_log_print(sl_log_t *log, const sl_log_print_options *opts, FILE *out, char *errbuf,
                    size_t errlen)
{
    sl_log_print_options none = {0};
    if (!opts)
        opts = &none;
    unsigned parts = sl_log_partition_count(log);
    sl_log_consumer_t *c = NULL;
    sl_log_message *msgs = NULL;
    uint64_t *next = NULL;
    sl_log_position *pos = NULL;
    uint64_t printed = 0;
    bool idle = false;
    sl_err err;

    msgs = calloc(PRINT_BATCH, sizeof *msgs);
    next = malloc(parts * sizeof *next);
    pos = malloc(parts * sizeof *pos);
    if (!msgs || !next || !pos) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not read log: out of memory");
        goto out;
    }
    for (unsigned p = 0; p < parts; p++)
        next[p] = UINT64_MAX;

    sl_log_consumer_options copts = {.group = opts->group, .from_beginning = opts->from_beginning};
    err = sl_log_consumer_open(log, &copts, &c, errbuf, errlen);
    if (err)
        goto out;

    for (;;) {
        size_t want = PRINT_BATCH;
        if (opts->max && opts->max - printed < want)
            want = (size_t)(opts->max - printed);
        if (want == 0)
            break;
        size_t n = 0;
        /* Wait a little only when the last poll found nothing yet the end is not reached
         * (a Kafka consumer still joining its group or fetching), instead of spinning. */
        err = sl_log_consumer_poll(c, msgs, want, &n, idle ? 100 : 0);
        if (err) {
            sl_errbuf_set(errbuf, errlen, err, "could not read log: %s", sl_log_consumer_errmsg(c));
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (fwrite(msgs[i].value, 1, msgs[i].value_len, out) != msgs[i].value_len ||
                fputc('\n', out) == EOF) {
                err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO,
                                    "could not write log message: output refused it");
                goto out;
            }
            if (msgs[i].partition < parts)
                next[msgs[i].partition] = msgs[i].offset + 1;
            printed++;
        }
        if (n == 0 && sl_log_consumer_is_caught_up(c))
            break;
        idle = n == 0;
    }
    if (fflush(out) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not flush log output");
        goto out;
    }
    /* Only what reached `out` is committed, so an interrupted read never skips messages. */
    if (opts->group)
        err = commit_printed(c, next, parts, pos, errbuf, errlen);

out:
    sl_log_consumer_close(c);
    free(msgs);
    free(next);
    free(pos);
    return err;
}
