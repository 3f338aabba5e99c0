/* The scratch directory of log_fixture.h. */
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log_fixture.h"

int sl_test_log_dir_setup(void **state)
{
    sl_test_log_dir *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sluice-log-test-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->logdir, sizeof fx->logdir, "%s/log", fx->dir);
    snprintf(fx->uri, sizeof fx->uri, "file://%s", fx->logdir);
    *state = fx;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void sl_test_rm_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int sl_test_log_dir_teardown(void **state)
{
    sl_test_log_dir *fx = *state;
    sl_test_rm_tree(fx->dir);
    free(fx);
    return 0;
}

sl_log_t *sl_test_open_log(const char *uri, bool producer, unsigned partitions,
                           uint64_t max_size_bytes, uint64_t retention_bytes)
{
    sl_log_options o;
    sl_log_options_default(&o);
    o.producer = producer;
    o.partitions = partitions;
    o.max_size_bytes = max_size_bytes;
    o.retention_bytes = retention_bytes;
    sl_log_t *log = NULL;
    char eb[256] = "";
    sl_err err = sl_log_open(uri, &o, &log, eb, sizeof eb);
    if (err)
        fail_msg("open %s: %s: %s", uri, sl_strerror(err), eb);
    return log;
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    sl_err err;
} waiter;

static void on_done(void *opaque, sl_err err, const char *detail)
{
    (void)detail;
    waiter *w = opaque;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

sl_err sl_test_append_wait(sl_log_t *log, const sl_log_record *recs, size_t n)
{
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    sl_err err = sl_log_append(log, recs, n, on_done, &w);
    if (err)
        return err;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return w.err;
}

size_t sl_test_kill_after_acks(int fd, pid_t pid, size_t min_acks, unsigned *last)
{
    unsigned got;
    size_t acked = 0;
    *last = 0;
    while (acked < min_acks && read(fd, &got, sizeof got) == (ssize_t)sizeof got) {
        *last = got;
        acked++;
    }
    kill(pid, SIGKILL);
    while (read(fd, &got, sizeof got) == (ssize_t)sizeof got) {
        *last = got;
        acked++;
    }
    close(fd);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_true(acked >= min_acks);
    return acked;
}

void sl_test_raw_begin(sl_test_raw *r, const char *logdir, const char *db, unsigned dbi_flags,
                       bool rdonly)
{
    r->rdonly = rdonly;
    assert_int_equal(mdb_env_create(&r->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(r->env, 1025), 0);
    assert_int_equal(mdb_env_open(r->env, logdir, rdonly ? MDB_RDONLY : 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(r->env, NULL, rdonly ? MDB_RDONLY : 0, &r->txn), 0);
    assert_int_equal(mdb_dbi_open(r->txn, db, dbi_flags, &r->dbi), 0);
}

void sl_test_raw_end(sl_test_raw *r)
{
    if (r->rdonly)
        mdb_txn_abort(r->txn);
    else
        assert_int_equal(mdb_txn_commit(r->txn), 0);
    mdb_env_close(r->env);
}
