/* Internals shared inside the log module only: the backend vtable that log.c dispatches
 * through, the handle headers every backend embeds as its first member, and helpers that
 * tests reach directly (the Kafka murmur2 hash). Nothing outside src/log includes this. */
#ifndef SL_LOG_LOG_INT_H
#define SL_LOG_LOG_INT_H

#include "log/log.h"

/* Operations a backend provides. log.c validates public arguments that do not depend on
 * the backend (NULL handles, counts) before calling through. */
typedef struct sl__log_backend {
    const char *name;
    void (*close)(sl_log_t *log);
    sl_err (*append)(sl_log_t *log, const sl_log_record *recs, size_t n, sl_log_append_cb cb,
                     void *opaque);
    unsigned (*partition_count)(const sl_log_t *log);
    const char *(*identity)(const sl_log_t *log);
    void (*get_stats)(sl_log_t *log, sl_log_stats *stats);

    sl_err (*consumer_open)(sl_log_t *log, const sl_log_consumer_options *opts,
                            sl_log_consumer_t **out, char *errbuf, size_t errlen);
    sl_err (*consumer_poll)(sl_log_consumer_t *c, sl_log_message *msgs, size_t max, size_t *n_out,
                            int timeout_ms);
    sl_err (*consumer_commit)(sl_log_consumer_t *c, const sl_log_position *pos, size_t n);
    sl_err (*consumer_seek)(sl_log_consumer_t *c, unsigned partition, uint64_t offset);
    sl_err (*consumer_committed)(sl_log_consumer_t *c, unsigned partition, uint64_t *offset);
    bool (*consumer_is_caught_up)(sl_log_consumer_t *c);
    const char *(*consumer_errmsg)(sl_log_consumer_t *c);
    void (*consumer_close)(sl_log_consumer_t *c);
} sl__log_backend;

/* First member of every backend's log handle, so log.c can dispatch on any sl_log_t. */
struct sl_log {
    const sl__log_backend *be;
};

/* First member of every backend's consumer handle. */
struct sl_log_consumer {
    const sl__log_backend *be;
};

/* Limits shared by the URI layer and the backends. */
#define SL__LOG_MAX_PARTITIONS 1024u
#define SL__LOG_MIN_SIZE_BYTES (64u * 1024u)
#define SL__LOG_GROUP_MAX      100u

/* Kafka's Utils.murmur2 (Java), bit for bit: signed 32-bit result. */
int32_t sl__log_murmur2(const void *data, size_t len);

/* Whether name is a valid consumer group name: 1..100 chars of [A-Za-z0-9._-] (so it can
 * be part of a lock file name and a meta key). */
bool sl__log_group_name_ok(const char *name);

/* Opens the embedded LMDB backend in dir. opts is already validated and complete. */
SL_MUST_CHECK sl_err sl__log_embedded_open(const char *dir, const sl_log_options *opts,
                                           sl_log_t **out, char *errbuf, size_t errlen);

/* Opens the Kafka backend; spec is the URI after "kafka://" (brokers[/topic]). opts is
 * already validated. See kafka.c. */
SL_MUST_CHECK sl_err sl__log_kafka_open(const char *spec, const sl_log_options *opts,
                                        sl_log_t **out, char *errbuf, size_t errlen);

/* ---- embedded backend internals (embedded.c, embedded_consumer.c) ---- */

#include <lmdb.h>

#include "core/uuid.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

/* Stored record value: int64 append time (ms since the epoch), uint32 key length, both in
 * native byte order (LMDB files are not portable across byte orders anyway), then the key,
 * then the value. */
#define SL__LOG_REC_HDR 12u
/* A value may instead hold a batch: records with consecutive offsets from the value's key
 * on, all appended at the same time (one per append unit and partition). Its header is
 * int64 append time, uint32 SL__LOG_BATCH_TAG where a single record has its key length
 * (no single record can have that key length: sl_log_append refuses a key and value over
 * UINT32_MAX - SL__LOG_REC_HDR bytes), uint32 count (>= 2); then per record uint32 key
 * length, uint32 value length, key, value. */
#define SL__LOG_BATCH_TAG UINT32_MAX
#define SL__LOG_BATCH_HDR 16u
#define SL__LOG_BATCH_REC 8u

/* Reads a stored value of either kind, checking every length against its size. */
typedef struct sl__log_value_iter {
    int64_t ts;     /* append time of every record in it */
    uint32_t count; /* records in the value */
    uint32_t left;  /* records not yet returned by sl__log_value_next */
    uint64_t bytes; /* keys and values of its records, from the header alone */
    bool batch;
    uint32_t key_len; /* a single record's */
    const char *next;
    const char *end;
} sl__log_value_iter;

typedef struct sl__log_value_rec {
    const char *key;
    uint32_t key_len;
    const char *value;
    size_t value_len;
} sl__log_value_rec;

/* Starts reading the value data[0..size) (borrowed; must outlive the iterator); false
 * when its header is corrupt (too short, a count its size cannot hold). */
bool sl__log_value_open(const void *data, size_t size, sl__log_value_iter *it);
/* The next record (pointers into the value); false after the last one, or when the next
 * record does not fit the value (corrupt: it->left is then not 0). */
bool sl__log_value_next(sl__log_value_iter *it, sl__log_value_rec *rec);

/* Bytes of a batch value holding *recs[0..n) (n >= 2). */
typedef struct wrec wrec;
size_t sl__log_value_batch_size(const wrec *const *recs, size_t n);
/* Writes that batch value at dst (which has room for its size), append time ts. */
void sl__log_value_encode_batch(char *dst, int64_t ts, const wrec *const *recs, size_t n);

/* Bytes of messages one poll copies at most (a single larger message is still returned). */
#define SL__LOG_POLL_BYTES ((size_t)8 << 20)

/* One LMDB environment per log directory per process, shared by every handle on it:
 * LMDB forbids opening an environment twice in one process (closing the second copy would
 * drop the first one's file locks). Found by the directory's device and inode. */
typedef struct sl__log_env {
    struct sl__log_env *next; /* @locks the registry mutex in embedded.c */
    unsigned refs;            /* @locks the registry mutex */
    dev_t dev;
    ino_t ino;
    char *dir;
    MDB_env *env;
    unsigned partitions;          /* as stored in the log, whatever the options said */
    char id[SL_UUID_STR_LEN + 1]; /* meta "id": the log's identity (sl_log_identity) */
    uint32_t format; /* meta "format" (SL__LOG_FORMAT_*); @locks the emb_log's apply_mu */
    MDB_dbi meta;
    MDB_dbi *part; /* partitions entries */

    /* Same-process commit notifications, so consumers wake when data lands. */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    uint64_t commit_seq; /* @locks mu; bumped after every commit that appended */
    unsigned writers;    /* @locks mu; producer handles of this process (0 or 1) */
    /* Units made durable in the write-ahead log, and units applied to LMDB (visible to
     * consumers), counted since the producer opened. A same-process poll that finds
     * applied < acked sets apply_now and waits on cond, so what was acknowledged is
     * visible to the next poll (see embedded_writer.c). */
    uint64_t acked_units;      /* @locks mu */
    uint64_t applied_units;    /* @locks mu */
    bool apply_now;            /* @locks mu */
    bool apply_failing;        /* @locks mu; the last apply failed: pollers do not wait */
    pthread_cond_t apply_cond; /* CLOCK_MONOTONIC; wakes the applier */
} sl__log_env;

/* meta "format": the values a log may hold. 1: single records only (logs written before
 * batch values existed); 2: batch values too. New logs are 2; a log of format 1 becomes 2
 * in the transaction that writes its first batch value, so that a binary from before batch
 * values refuses to open it ("unknown format version 2") instead of reading its batch
 * values as corrupt, and can still open a log that never held one. */
#define SL__LOG_FORMAT_SINGLE 1u
#define SL__LOG_FORMAT_BATCH  2u

/* The writer checks retention (and the registry-free stats cache refreshes) this often. */
#define SL__LOG_HOUSEKEEPING_NS 1000000000ll

/* One partition's committed state, as in meta "partition/N" plus the cached timestamp of
 * its oldest record (INT64_MAX when empty), which makes the age check free. */
typedef struct pstate {
    uint64_t next;
    uint64_t records;
    uint64_t bytes;
    int64_t first_ts;
} pstate;

/* The stored form of meta "partition/N". */
typedef struct pmeta {
    uint64_t next;
    uint64_t records;
    uint64_t bytes;
} pmeta;

struct wrec {
    const char *key; /* NULL: no key, spread round-robin */
    const char *value;
    uint32_t key_len;
    size_t value_len;
    unsigned part; /* the key's hash, at append; without a key, the writer's round-robin */
    uint64_t off;
    int64_t ts; /* append time (ms), stamped by the writer */
};

/* A position in the write-ahead log: segment number, byte position in it, and the
 * sequence number of the frame that starts there. */
typedef struct walpos {
    uint64_t seq;
    uint64_t pos;
    uint64_t lsn;
} walpos;

/* One sl_log_append call, copied into a single allocation: wrec array, then the bytes.
 * Replay builds units with cb == NULL. */
typedef struct wunit {
    struct wunit *next;
    sl_log_append_cb cb;
    void *opaque;
    size_t n;
    size_t size;  /* counted against max_pending_bytes */
    walpos after; /* the WAL position just past this unit's frames */
    wrec recs[];
} wunit;

/* ---- the write-ahead log (embedded_wal.c) ----
 * Segment files DIR/wal-<16 hex digits>, pre-filled with zeroes (or recycled), so that
 * an fdatasync after writing a group flushes data only. A frame: uint32 CRC-32 (zlib) of
 * everything after it, uint32 value length, uint32 key length, uint32 partition, uint64
 * sequence number (lsn, +1 per frame across segments), uint64 partition offset, int64
 * append time (ms), then key and value; little-endian. */
#define SL__LOG_WAL_HDR 40u

typedef struct sl__log_wal_frame {
    uint64_t lsn;
    uint64_t offset;
    int64_t ts;
    uint32_t partition;
    uint32_t key_len;
    uint32_t value_len;
    const char *key;
    const char *value;
} sl__log_wal_frame;

/* Decodes the frame at the start of buf (len bytes available) if it is whole, its CRC
 * matches and its sequence number is lsn; returns its length, else 0 (the end of the
 * log: zeroes, a torn or stale frame). Key and value point into buf. */
size_t sl__log_wal_decode(const unsigned char *buf, size_t len, uint64_t lsn,
                          sl__log_wal_frame *out);
/* Encodes f (its key and value too) at dst, which has room for SL__LOG_WAL_HDR +
 * key_len + value_len bytes; returns that length. */
size_t sl__log_wal_encode(unsigned char *dst, const sl__log_wal_frame *f);

/* The writer's side of the WAL. @thread writer (and open) */
typedef struct sl__log_wal {
    int dir_fd;
    int acked_fd;       /* DIR/acked.lsn, see sl__log_wal_read_acked */
    int fd;             /* current segment, -1 before the first write */
    uint64_t oldest;    /* lowest segment number on disk */
    walpos at;          /* where the next frame goes */
    uint64_t size;      /* size of the current segment */
    uint64_t seg_bytes; /* size of a new segment */
    unsigned char *buf; /* a group's frames */
    size_t cap;
} sl__log_wal;

typedef struct emb_log {
    sl_log_t base;
    sl__log_env *le;
    bool producer;
    int lock_fd;
    uint64_t retention_bytes; /* effective (clamped) */
    uint64_t retention_ms;
    size_t max_pending_bytes;
    uint64_t max_size_bytes;
    size_t txn_budget; /* bytes of units per write transaction (see take_batch) */

    /* The append queue (units waiting for the WAL). */
    pthread_mutex_t qmu;
    pthread_cond_t qcond;    /* CLOCK_MONOTONIC */
    wunit *qhead;            /* @locks qmu */
    wunit *qtail;            /* @locks qmu */
    size_t qbytes;           /* @locks qmu; queued or being logged, callbacks not yet run */
    bool closing;            /* @locks qmu */
    atomic_bool closing_now; /* closing, readable without qmu */
    pthread_t writer;
    bool writer_started;

    /* @thread writer only (and open): the WAL and the offsets it assigns. */
    sl__log_wal wal;
    uint64_t *wnext;      /* per partition: next offset to assign */
    uint64_t wal_records; /* logged, not yet applied (also st_unapplied) */

    /* Units durable in the WAL, waiting to be applied to LMDB. @locks le->mu */
    wunit *ahead;
    wunit *atail;
    size_t abytes;  /* in the list */
    size_t uabytes; /* in the list or being applied: bounded by the writer (log_group) */
    bool applier_stop;
    char apply_detail[512]; /* why the last apply failed, while le->apply_failing */
    pthread_t applier;
    bool applier_started;
    _Atomic uint64_t applied_seq; /* segments below this are applied durably: reusable */

    /* Held around every LMDB apply: the applier's, and the writer's for a large group. */
    pthread_mutex_t apply_mu;
    /* @locks apply_mu (and open, before the threads start). */
    bool *touched;
    pstate *ps;
    pstate *scratch;
    MDB_cursor **curs;
    const struct wrec **order; /* an apply's records sorted by partition (write_units) */
    size_t order_cap;          /* entries of order */
    size_t *part_end;          /* per partition, its end in order */
    uint64_t total_bytes;
    unsigned rr;
    int64_t next_housekeeping_ns;
    void *map_addr; /* data.mdb's mapping, found once; see release_mapped_pages */
    size_t map_len;
    bool map_lookup_failed;
    int64_t next_reader_check_ns;

    /* Stats, readable from any thread without a lock or a transaction. */
    _Atomic uint64_t st_records;
    _Atomic uint64_t st_bytes;
    _Atomic uint64_t st_appended;
    _Atomic uint64_t st_commits;
    _Atomic uint64_t st_pending;
    _Atomic uint64_t st_unapplied; /* records durable in the WAL, not yet in LMDB */
    _Atomic uint64_t st_unapplied_bytes;
    atomic_bool st_healthy;       /* the last WAL write succeeded */
    atomic_bool st_apply_healthy; /* the last LMDB apply succeeded */
    /* Non-producer handles refresh records/bytes from meta at most once a second. */
    pthread_mutex_t smu;
    int64_t stats_read_ns; /* @locks smu */
} emb_log;

/* Maps an LMDB (or errno) code to an sl_err. */
sl_err sl__log_mdb_err(int rc);

/* The meta key of a group's committed offset for a partition, NUL-terminated. */
#define SL__LOG_GROUP_KEY_MAX (SL__LOG_GROUP_MAX + 24)
size_t sl__log_group_key(char out[SL__LOG_GROUP_KEY_MAX], const char *group, unsigned partition);

/* Opens (and creates) dir/name with mode 0600 and takes an exclusive non-blocking flock;
 * *fd_out = -1 and SL_ERR_BUSY when another open file holds it. */
SL_MUST_CHECK sl_err sl__log_lock_file(const char *dir, const char *name, int *fd_out);

/* Opens (and creates) dir/name with mode 0600 and takes an exclusive, non-blocking
 * open-file-description lock on byte p of it for each of the n partitions: consumers of
 * one group that own different partitions can run side by side, two that share one
 * cannot, in this process or another. *fd_out = -1 and SL_ERR_BUSY when a byte is held. */
SL_MUST_CHECK sl_err sl__log_lock_partitions(const char *dir, const char *name,
                                             const unsigned *partitions, size_t n, int *fd_out);

/* mkdir -p dir, mode 0700 for what it creates. */
SL_MUST_CHECK sl_err sl__log_make_dirs(const char *dir, char *errbuf, size_t errlen);

/* A condition variable timed on CLOCK_MONOTONIC. */
SL_MUST_CHECK sl_err sl__log_cond_init_mono(pthread_cond_t *cond);

/* Finds or opens the environment of dir (refcounted), creating the log's DBs with
 * opts->partitions if it is new. @locks the registry mutex */
SL_MUST_CHECK sl_err sl__log_env_acquire(const char *dir, const sl_log_options *opts,
                                         sl__log_env **out, char *errbuf, size_t errlen);
/* Drops a reference; the last one closes the environment. NULL is a no-op. */
void sl__log_env_release(sl__log_env *le);

/* Puts meta "format" in txn; the caller sets le->format once txn committed. */
SL_MUST_CHECK int sl__log_env_store_format(sl__log_env *le, MDB_txn *txn, uint32_t format);

/* The meta key "partition/N". out must have 32 bytes; k points into it. */
void sl__log_meta_part_key(char out[32], unsigned p, MDB_val *k);

/* Writer side (embedded_writer.c). load_state runs at open, before the writer starts. */
SL_MUST_CHECK sl_err sl__log_emb_load_state(emb_log *lg, char *errbuf, size_t errlen);
void sl__log_emb_publish_stats(emb_log *lg);
void *sl__log_emb_writer_main(void *arg);
void *sl__log_emb_applier_main(void *arg);
/* Applies units (records with partition and offset assigned) and retention in one LMDB
 * transaction, with meta "wal" moved past the last unit; true on success. `batches`: store
 * each partition's records of the units as batch values (the writer's direct path), else
 * one value per record. @thread applier (or open) */
bool sl__log_emb_apply(emb_log *lg, wunit *units, bool batches, char *detail, size_t dlen);

/* WAL (embedded_wal.c). recover runs at open with the writer lock held and the partition
 * state loaded: it applies every frame past meta "wal", cuts off what follows the last
 * valid frame, and leaves lg->wal at the end, ready for the writer. */
SL_MUST_CHECK sl_err sl__log_wal_recover(emb_log *lg, char *errbuf, size_t errlen);
void sl__log_wal_close(sl__log_wal *w);
/* Writes the units' records (partitions, offsets and times assigned) as frames and
 * fdatasyncs them; sets each unit's `after`. On failure detail says why. @thread writer */
SL_MUST_CHECK sl_err sl__log_wal_write(emb_log *lg, wunit *units, char *detail, size_t dlen);
/* DIR/acked.lsn holds the producer's next lsn to acknowledge, so that a consumer in another
 * process can wait until LMDB holds everything acknowledged before it polls. read_acked:
 * false if there is no such file; applied_lsn: meta "wal"'s lsn (1 if absent). */
#define SL__LOG_ACKED_FILE "acked.lsn"
bool sl__log_wal_read_acked(const char *dir, uint64_t *lsn);
SL_MUST_CHECK sl_err sl__log_wal_applied_lsn(sl__log_env *le, uint64_t *lsn);
/* meta "wal": the position of the first frame not yet applied to LMDB. */
#define SL__LOG_META_WAL "wal"

/* Consumer backend entry points (embedded_consumer.c), wired into the vtable. */
sl_err sl__log_emb_consumer_open(sl_log_t *log, const sl_log_consumer_options *opts,
                                 sl_log_consumer_t **out, char *errbuf, size_t errlen);
sl_err sl__log_emb_consumer_poll(sl_log_consumer_t *c, sl_log_message *msgs, size_t max,
                                 size_t *n_out, int timeout_ms);
sl_err sl__log_emb_consumer_commit(sl_log_consumer_t *c, const sl_log_position *pos, size_t n);
sl_err sl__log_emb_consumer_seek(sl_log_consumer_t *c, unsigned partition, uint64_t offset);
sl_err sl__log_emb_consumer_committed(sl_log_consumer_t *c, unsigned partition, uint64_t *offset);
bool sl__log_emb_consumer_is_caught_up(sl_log_consumer_t *c);
const char *sl__log_emb_consumer_errmsg(sl_log_consumer_t *c);
void sl__log_emb_consumer_close(sl_log_consumer_t *c);

/* If the producer is in this process and has acknowledged units that its applier has not
 * put into LMDB yet, asks for them now and waits (up to 2 s; not while applying fails),
 * so whatever was acknowledged before a poll or a stats call is visible to it, as when
 * appends committed to LMDB directly. Other processes see them after the applier's next
 * commit. @locks le->mu */
void sl__log_emb_wait_applied(sl__log_env *le);

/* The shared environment of an embedded log handle (for its consumers). */
sl__log_env *sl__log_emb_env(sl_log_t *log);

/* ---- kafka backend internals (kafka.c, kafka_consumer.c) ---- */

#include <librdkafka/rdkafka.h>

#define SL__LOG_KAFKA_DEFAULT_TOPIC "analytics-events"

/* What consumers need from their log handle. */
typedef struct sl__log_kafka_info {
    const char *brokers; /* bootstrap list, as in the URI */
    const char *topic;
    unsigned partitions;     /* as read from the brokers at open */
    const char *const *opts; /* user "key=value" properties, owned by the log */
    size_t n_opts;
} sl__log_kafka_info;

const sl__log_kafka_info *sl__log_kafka_info_of(sl_log_t *log);

/* A new librdkafka configuration with bootstrap.servers, sluice's log and error routing,
 * then `defaults` (NULL-terminated key, value pairs), then the user's properties (so they
 * win). NULL with errbuf filled on a bad property. */
rd_kafka_conf_t *sl__log_kafka_conf_new(const sl__log_kafka_info *ki, const char *const *defaults,
                                        char *errbuf, size_t errlen);

/* librdkafka log lines into sl_diag. @thread librdkafka's threads */
void sl__log_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

sl_err sl__log_kafka_consumer_open(sl_log_t *log, const sl_log_consumer_options *opts,
                                   sl_log_consumer_t **out, char *errbuf, size_t errlen);
sl_err sl__log_kafka_consumer_poll(sl_log_consumer_t *c, sl_log_message *msgs, size_t max,
                                   size_t *n_out, int timeout_ms);
sl_err sl__log_kafka_consumer_commit(sl_log_consumer_t *c, const sl_log_position *pos, size_t n);
sl_err sl__log_kafka_consumer_seek(sl_log_consumer_t *c, unsigned partition, uint64_t offset);
sl_err sl__log_kafka_consumer_committed(sl_log_consumer_t *c, unsigned partition, uint64_t *offset);
bool sl__log_kafka_consumer_is_caught_up(sl_log_consumer_t *c);
const char *sl__log_kafka_consumer_errmsg(sl_log_consumer_t *c);
void sl__log_kafka_consumer_close(sl_log_consumer_t *c);

#endif
