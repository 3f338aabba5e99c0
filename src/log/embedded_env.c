/* Plumbing of the embedded log shared by its other files: LMDB error mapping, lock files,
 * directory creation, and the per-process registry of LMDB environments (one MDB_env per
 * log directory per process, refcounted, because LMDB must not open an environment twice
 * in one process). Also creates a new log's meta and partition DBs. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/diag.h"
#include "core/fs.h"
#include "log/log_int.h"

#define META_PARTITIONS "partitions"
#define META_FORMAT     "format"
#define META_ID         "id"
#define MAX_READERS     1022u

/* ---- small helpers ---- */

sl_err sl__log_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return SL_OK;
    case MDB_MAP_FULL:
    case MDB_BAD_VALSIZE:
        return SL_ERR_TOO_LARGE;
    case MDB_NOTFOUND:
        return SL_ERR_NOT_FOUND;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return SL_ERR_CORRUPT;
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case EBUSY:
    case EAGAIN:
        return SL_ERR_BUSY;
    case ENOMEM:
        return SL_ERR_NOMEM;
    case EACCES:
    case EPERM:
        return SL_ERR_CONFIG;
    default:
        return SL_ERR_IO;
    }
}

size_t sl__log_group_key(char out[SL__LOG_GROUP_KEY_MAX], const char *group, unsigned partition)
{
    int n = snprintf(out, SL__LOG_GROUP_KEY_MAX, "group/%s/%u", group, partition);
    return n < 0 ? 0 : (size_t)n;
}

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

/* Opens dir/name, created with mode 0600, for the locks below. */
static sl_err open_lock_file(const char *dir, const char *name, int *fd)
{
    char *path = path_join(dir, name);
    if (!path)
        return SL_ERR_NOMEM;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    sl_err err = *fd < 0 ? sl__log_mdb_err(errno) : SL_OK;
    free(path);
    return err;
}

sl_err sl__log_lock_file(const char *dir, const char *name, int *fd_out)
{
    *fd_out = -1;
    int fd = -1;
    sl_err err = open_lock_file(dir, name, &fd);
    if (err)
        return err;
    /* flock locks belong to the open file description, so a second open in this very
     * process conflicts too: that is what makes the BUSY checks hold within a process. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err = errno == EWOULDBLOCK ? SL_ERR_BUSY : SL_ERR_IO;
        close(fd);
        return err;
    }
    *fd_out = fd;
    return SL_OK;
}

sl_err sl__log_lock_partitions(const char *dir, const char *name, const unsigned *partitions,
                               size_t n, int *fd_out)
{
    *fd_out = -1;
    int fd = -1;
    sl_err err = open_lock_file(dir, name, &fd);
    /* F_OFD_SETLK: like flock, owned by the open file description, but per byte */
    for (size_t i = 0; i < n && !err; i++) {
        struct flock fl = {
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)partitions[i], .l_len = 1};
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
            err = errno == EAGAIN || errno == EACCES ? SL_ERR_BUSY : SL_ERR_IO;
    }
    if (err) {
        if (fd >= 0)
            close(fd); /* drops the bytes taken so far */
        return err;
    }
    *fd_out = fd;
    return SL_OK;
}

sl_err sl__log_cond_init_mono(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return SL_ERR_NOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? SL_OK : SL_ERR_NOMEM;
}

/* mkdir -p with mode 0700 for what it creates. */
sl_err sl__log_make_dirs(const char *dir, char *errbuf, size_t errlen)
{
    char detail[512];
    sl_err err = sl_fs_make_dirs(dir, 0700, detail, sizeof detail);
    if (err)
        return sl_errbuf_set(errbuf, errlen, err, "could not open log \"%s\": %s", dir, detail);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "could not open log \"%s\": not a directory", dir);
    return SL_OK;
}

/* ---- the environment registry (invariant 6) ---- */

static pthread_mutex_t envs_mu = PTHREAD_MUTEX_INITIALIZER;
static sl__log_env *envs; /* @locks envs_mu */

static void env_destroy(sl__log_env *le)
{
    if (!le)
        return;
    if (le->env)
        mdb_env_close(le->env);
    pthread_mutex_destroy(&le->mu);
    pthread_cond_destroy(&le->cond);
    pthread_cond_destroy(&le->apply_cond);
    free(le->part);
    free(le->dir);
    free(le);
}

/* Reads the uint32 stored under key, storing init there first if the key is absent. A
 * stored value of the wrong size reads as 0, which every caller treats as corrupt. */
static int meta_u32_get_or_init(MDB_txn *txn, MDB_dbi meta, const char *key, uint32_t init,
                                uint32_t *out)
{
    MDB_val k = {strlen(key), (void *)(uintptr_t)key}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *out = init;
        v = (MDB_val){sizeof init, &init};
        return mdb_put(txn, meta, &k, &v, 0);
    }
    *out = 0;
    if (rc == 0 && v.mv_size == sizeof *out)
        memcpy(out, v.mv_data, sizeof *out);
    return rc;
}

int sl__log_env_store_format(sl__log_env *le, MDB_txn *txn, uint32_t format)
{
    MDB_val k = {strlen(META_FORMAT), (void *)(uintptr_t)META_FORMAT}, v = {sizeof format, &format};
    return mdb_put(txn, le->meta, &k, &v, 0);
}

/* Reads the log's identity, storing a new UUIDv7 first if the log has none (a new log, or
 * one created before identities existed). A stored value that is not a UUID is corrupt. */
static int meta_id_get_or_init(MDB_txn *txn, MDB_dbi meta, char out[SL_UUID_STR_LEN + 1])
{
    MDB_val k = {strlen(META_ID), (void *)(uintptr_t)META_ID}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        sl_uuid_v7(out);
        v = (MDB_val){SL_UUID_STR_LEN, out};
        return mdb_put(txn, meta, &k, &v, 0);
    }
    out[0] = '\0';
    if (rc == 0 && v.mv_size == SL_UUID_STR_LEN && sl_uuid_is_canonical(v.mv_data, v.mv_size)) {
        memcpy(out, v.mv_data, SL_UUID_STR_LEN);
        out[SL_UUID_STR_LEN] = '\0';
    }
    return rc;
}

/* Reads or creates the meta DB and the partition DBs in one write transaction, so two
 * processes creating the same log at once agree on its partition count. */
static sl_err env_init_dbs(sl__log_env *le, unsigned want_parts, char *errbuf, size_t errlen)
{
    MDB_txn *txn = NULL;
    sl_err err = SL_OK;
    int rc = mdb_txn_begin(le->env, NULL, 0, &txn);
    if (rc)
        goto mdb_fail;
    rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &le->meta);
    if (rc)
        goto mdb_fail;

    if ((rc = meta_u32_get_or_init(txn, le->meta, META_FORMAT, SL__LOG_FORMAT_BATCH, &le->format)))
        goto mdb_fail;
    if (le->format != SL__LOG_FORMAT_SINGLE && le->format != SL__LOG_FORMAT_BATCH) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                            "could not open log \"%s\": unknown format version %" PRIu32
                            " (this sluice reads versions %u and %u)",
                            le->dir, le->format, SL__LOG_FORMAT_SINGLE, SL__LOG_FORMAT_BATCH);
        goto out;
    }

    uint32_t parts = 0;
    if ((rc = meta_u32_get_or_init(txn, le->meta, META_PARTITIONS, want_parts, &parts)))
        goto mdb_fail;
    if (parts < 1 || parts > SL__LOG_MAX_PARTITIONS) {
        err =
            sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                          "could not open log \"%s\": stored partition count is corrupt", le->dir);
        goto out;
    }
    if ((rc = meta_id_get_or_init(txn, le->meta, le->id)))
        goto mdb_fail;
    if (!le->id[0]) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                            "could not open log \"%s\": its stored id is corrupt", le->dir);
        goto out;
    }
    if (parts != want_parts)
        sl_diag(SL_DIAG_INFO, "log keeps its stored partition count",
                "dir=\"%s\" partitions=%" PRIu32 " requested=%u", le->dir, parts, want_parts);

    le->part = calloc(parts, sizeof *le->part);
    if (!le->part) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s", le->dir,
                            "out of memory");
        goto out;
    }
    for (uint32_t p = 0; p < parts; p++) {
        char name[16];
        snprintf(name, sizeof name, "p%" PRIu32, p);
        rc = mdb_dbi_open(txn, name, MDB_CREATE | MDB_INTEGERKEY, &le->part[p]);
        if (rc)
            goto mdb_fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto mdb_fail;
    le->partitions = parts;
    goto out;

mdb_fail:
    err = sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(rc), "could not open log \"%s\": %s",
                        le->dir, mdb_strerror(rc));
out:
    if (txn)
        mdb_txn_abort(txn);
    return err;
}

sl_err sl__log_env_acquire(const char *dir, const sl_log_options *opts, sl__log_env **out,
                           char *errbuf, size_t errlen)
{
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0)
        return sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(errno),
                             "could not open log \"%s\": %s", dir, strerror(errno));
    sl_err err = SL_OK;
    sl__log_env *le = NULL;
    pthread_mutex_lock(&envs_mu);
    for (sl__log_env *it = envs; it; it = it->next) {
        if (it->dev == st.st_dev && it->ino == st.st_ino) {
            it->refs++;
            *out = it;
            goto out;
        }
    }
    le = calloc(1, sizeof *le);
    if (!le || !(le->dir = strdup(dir))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s", dir,
                            "out of memory");
        goto out;
    }
    le->dev = st.st_dev;
    le->ino = st.st_ino;
    pthread_mutex_init(&le->mu, NULL);
    if (sl__log_cond_init_mono(&le->cond) != SL_OK ||
        sl__log_cond_init_mono(&le->apply_cond) != SL_OK) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s", dir,
                            "out of memory");
        goto out;
    }
    int rc = mdb_env_create(&le->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(le->env, SL__LOG_MAX_PARTITIONS + 1);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(le->env, MAX_READERS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(le->env, (size_t)opts->max_size_bytes);
    /* MDB_NOTLS: a consumer's read transaction is reset and renewed across polls, possibly
     * from different threads, and one thread may read through several handles. Never
     * MDB_NOSYNC or MDB_NOMETASYNC: acknowledged means fsynced (invariant 1). MDB_NORDAHEAD:
     * the log is read mostly at its tail, and read-ahead only maps pages nobody asked for
     * into the process (measured: peak RSS 169 MB -> 140 MB after 300 MB of appends). */
    if (rc == 0)
        rc = mdb_env_open(le->env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0600);
    if (rc) {
        err = sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(rc), "could not open log \"%s\": %s",
                            dir, mdb_strerror(rc));
        goto out;
    }
    int dead = 0;
    mdb_reader_check(le->env, &dead);
    err = env_init_dbs(le, opts->partitions, errbuf, errlen);
    if (err)
        goto out;
    le->refs = 1;
    le->next = envs;
    envs = le;
    *out = le;
    le = NULL;
out:
    pthread_mutex_unlock(&envs_mu);
    env_destroy(le);
    return err;
}

void sl__log_env_release(sl__log_env *le)
{
    if (!le)
        return;
    pthread_mutex_lock(&envs_mu);
    bool last = --le->refs == 0;
    if (last) {
        for (sl__log_env **pp = &envs; *pp; pp = &(*pp)->next) {
            if (*pp == le) {
                *pp = le->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&envs_mu);
    if (last)
        env_destroy(le);
}
