/* Helpers shared by the log module's test files: a scratch directory for one test (cmocka
 * setup/teardown that make it under /tmp and remove it with everything in it), opening an
 * embedded log there, and appending while waiting for durability. */
#ifndef SL_TEST_LOG_FIXTURE_H
#define SL_TEST_LOG_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <lmdb.h>

#include "log/log.h"

typedef struct sl_test_log_dir {
    char dir[64];     /* the scratch directory */
    char logdir[128]; /* dir/log: where the test's log lives */
    char uri[160];    /* file://dir/log */
} sl_test_log_dir;

/* *state becomes a new sl_test_log_dir. */
int sl_test_log_dir_setup(void **state);
int sl_test_log_dir_teardown(void **state);
/* Removes dir and everything under it. */
void sl_test_rm_tree(const char *dir);

/* Opens the log at uri with these options (the others default); fails the test on error. */
sl_log_t *sl_test_open_log(const char *uri, bool producer, unsigned partitions,
                           uint64_t max_size_bytes, uint64_t retention_bytes);

/* Appends recs as one unit and waits for its callback; returns the append's or the
 * callback's error. */
sl_err sl_test_append_wait(sl_log_t *log, const sl_log_record *recs, size_t n);

/* A closed log's LMDB environment opened directly, with a transaction on one of its DBs,
 * to read or damage the log behind its back. */
typedef struct sl_test_raw {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    bool rdonly;
} sl_test_raw;

/* Begins on DB `db` of the log in logdir (dbi_flags: MDB_INTEGERKEY for a partition DB). */
void sl_test_raw_begin(sl_test_raw *r, const char *logdir, const char *db, unsigned dbi_flags,
                       bool rdonly);
/* Commits (aborts a read-only transaction) and closes the environment. */
void sl_test_raw_end(sl_test_raw *r);

/* For a forked producer that writes an unsigned sequence number to a pipe after each
 * acknowledged append: reads fd until min_acks came, kills pid with SIGKILL, reads what it
 * acknowledged before it died, and reaps it (it must have died of the signal). Returns how
 * many were acknowledged; *last is the last number. Closes fd. */
size_t sl_test_kill_after_acks(int fd, pid_t pid, size_t min_acks, unsigned *last);

#endif
