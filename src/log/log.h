/* The durable event log: one interface, two backends (file:// embedded on LMDB, and
 * kafka:// Apache Kafka through librdkafka). Producers append records (key = session_id,
 * value = normalized event JSON) and learn through a callback when they are durable;
 * consumers belong to a named group, poll batches and commit offsets, as in Kafka.
 *
 * Pointers passed in are borrowed for the call unless a comment says otherwise. */
#ifndef SL_LOG_LOG_H
#define SL_LOG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

typedef struct sl_log sl_log_t;
typedef struct sl_log_consumer sl_log_consumer_t;

typedef struct sl_log_options {
    bool producer;            /* this handle appends (takes the log's writer lock) */
    unsigned partitions;      /* partitions of a new log; default 8 */
    uint64_t retention_bytes; /* per log, 0 = unlimited; default 1 GiB */
    uint64_t retention_ms;    /* 0 = unlimited; default 7 days */
    size_t max_pending_bytes; /* bound on appended-but-not-yet-durable bytes; 64 MiB */
    uint64_t max_size_bytes;  /* hard size of the store (LMDB map size); default 4 GiB */
    /* kafka://: librdkafka properties "key=value", applied after sluice's own defaults so
     * they win (borrowed for sl_log_open only). Ignored by file://. */
    const char *const *kafka_opts;
    size_t n_kafka_opts;
} sl_log_options;

void sl_log_options_default(sl_log_options *opts);

/* Opens the log named by uri: "file://DIR" (creating DIR if needed) or
 * "kafka://HOST:PORT[,HOST:PORT...][/TOPIC]" (topic "analytics-events" by default; the
 * topic must exist, its partition count is read from the brokers at open). */
SL_MUST_CHECK sl_err sl_log_open(const char *uri, const sl_log_options *opts, sl_log_t **out,
                                 char *errbuf, size_t errlen);

/* Waits for pending appends to become durable (their callbacks run), then frees.
 * sl_log_close(NULL) is a no-op. Consumers must be closed first. */
void sl_log_close(sl_log_t *log);

typedef struct sl_log_record {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} sl_log_record;

/* Called exactly once per accepted sl_log_append: err == SL_OK when every record of the
 * call is durable, else none of them is (detail says why). @thread the backend's writer
 * thread: the callback must be quick and must not call back into the log. */
typedef void (*sl_log_append_cb)(void *opaque, sl_err err, const char *detail);

/* Queues n records as one unit; copies them, so the caller may free them on return.
 * SL_ERR_BUSY when the pending-bytes bound would be exceeded (back-pressure: answer 503),
 * SL_ERR_CLOSED while closing, SL_ERR_UNSUPPORTED on a handle opened without `producer`,
 * SL_ERR_TOO_LARGE when the unit alone is larger than max_pending_bytes (it could never be
 * accepted), SL_ERR_INVALID when n == 0. A record whose key is NULL is spread round-robin;
 * any other key (even empty) goes to sl_log_partition_for_key.
 * On any error cb is not called. @thread any. */
SL_MUST_CHECK sl_err sl_log_append(sl_log_t *log, const sl_log_record *recs, size_t n,
                                   sl_log_append_cb cb, void *opaque);

/* The partition a key belongs to: Kafka's default partitioner (murmur2 of the key, sign
 * bit cleared, modulo the partition count), so both backends place keys alike. */
unsigned sl_log_partition_for_key(const char *key, size_t key_len, unsigned partitions);

unsigned sl_log_partition_count(const sl_log_t *log);

/* The identity of the log's contents, fixed when the log was created: a sink that stored
 * offsets of a log with another identity must not apply them to this one (they would skip
 * this log's first events). Embedded: a UUID made at creation; Kafka: the cluster's id and
 * the topic (a topic re-created in the same cluster is not told apart). "" when unknown. */
const char *sl_log_identity(const sl_log_t *log);

typedef struct sl_log_stats {
    uint64_t records;        /* records currently retained, all partitions */
    uint64_t bytes;          /* bytes of retained record values and keys */
    uint64_t appended_total; /* records made durable since open */
    uint64_t commits_total;  /* durable commits (fsync groups) since open */
    uint64_t pending_bytes;  /* queued, not yet durable */
    bool healthy;            /* false after a failed commit until one succeeds */
} sl_log_stats;

void sl_log_get_stats(sl_log_t *log, sl_log_stats *stats);

/* ---- consumers ---- */

/* Partition ownership changes, so a sink can flush before a partition moves. The embedded
 * backend assigns every partition to the group's one consumer at open. */
typedef void (*sl_log_partitions_cb)(void *opaque, const unsigned *partitions, size_t n);

typedef struct sl_log_consumer_options {
    const char *group;   /* consumer group name; NULL = no group, nothing committed */
    bool from_beginning; /* ignore committed offsets, start at the oldest retained */
    sl_log_partitions_cb on_assign;
    sl_log_partitions_cb on_revoke;
    void *opaque;
    /* Several consumers of one group in one process, each with a share of the partitions
     * (the pg sink's writers): with shares > 1, this consumer takes the partitions p with
     * p % shares == share. The embedded backend assigns them at open, and refuses a
     * consumer whose partitions another consumer of the group holds; Kafka ignores both
     * fields, since the group's members split the partitions among themselves. */
    unsigned share, shares;
} sl_log_consumer_options;

typedef struct sl_log_message {
    unsigned partition;
    uint64_t offset;
    int64_t timestamp_ms; /* append time */
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} sl_log_message;

typedef struct sl_log_position {
    unsigned partition;
    uint64_t offset; /* offset of the next message to read */
} sl_log_position;

/* A group without committed offsets starts at the oldest retained message. A committed
 * offset older than retention moves forward to the oldest retained. SL_ERR_BUSY when the
 * group already has a consumer (embedded backend: one consumer per group). */
SL_MUST_CHECK sl_err sl_log_consumer_open(sl_log_t *log, const sl_log_consumer_options *opts,
                                          sl_log_consumer_t **out, char *errbuf, size_t errlen);

/* Fills up to max messages, waiting up to timeout_ms for the first one (0: do not wait).
 * Messages, their keys and values stay valid until the next poll or close. *n_out == 0
 * on timeout. @thread the consumer's one thread. */
SL_MUST_CHECK sl_err sl_log_consumer_poll(sl_log_consumer_t *c, sl_log_message *msgs, size_t max,
                                          size_t *n_out, int timeout_ms);

/* Durably stores, for each position, the offset of the next message to read.
 * SL_ERR_BUSY (kafka://) when the group is rebalancing: the commit was refused, which is
 * routine, not a failure of the consumer. Go on polling; the partitions it held go to
 * their next owner from the last offsets that were committed. */
SL_MUST_CHECK sl_err sl_log_consumer_commit(sl_log_consumer_t *c, const sl_log_position *pos,
                                            size_t n);

/* Makes the next poll of that partition start at offset (sinks that keep their own
 * offsets, in PostgreSQL or the Delta log, seek there at start). */
SL_MUST_CHECK sl_err sl_log_consumer_seek(sl_log_consumer_t *c, unsigned partition,
                                          uint64_t offset);

/* The group's committed offset for a partition; SL_ERR_NOT_FOUND if none. */
SL_MUST_CHECK sl_err sl_log_consumer_committed(sl_log_consumer_t *c, unsigned partition,
                                               uint64_t *offset);

/* Whether every assigned partition has been read to its end as of the last poll. */
bool sl_log_consumer_is_caught_up(sl_log_consumer_t *c);

/* The detail of the last failed poll, commit, seek or committed call on c ("" if none);
 * valid until the next call on c. (Added: those calls have no errbuf.) */
const char *sl_log_consumer_errmsg(sl_log_consumer_t *c);

void sl_log_consumer_close(sl_log_consumer_t *c);

/* ---- `sluice log read` ---- */

typedef struct sl_log_print_options {
    const char *group;   /* commit the printed offsets for this group; NULL = no group */
    bool from_beginning; /* with a group: ignore its committed offsets */
    uint64_t max;        /* stop after this many messages; 0 = no limit */
} sl_log_print_options;

/* Prints message values, one JSON line each, partition by partition in offset order, until
 * every partition is read to its end (or max). With a group, commits what was printed. */
SL_MUST_CHECK sl_err sl_log_print(sl_log_t *log, const sl_log_print_options *opts, FILE *out,
                                  char *errbuf, size_t errlen);

#endif
