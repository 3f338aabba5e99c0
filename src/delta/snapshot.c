/* Reading a table: lists _delta_log, checks that the JSON commits form a complete history
 * from version 0 (a history that starts at a checkpoint is refused until checkpoints are
 * read), and replays them into a snapshot or, version by version, into the history. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta/delta_int.h"

struct sl_delta_snapshot {
    sl__delta_state st;
};

void sl__delta_commit_name(int64_t version, char out[SL__DELTA_NAME_MAX])
{
    snprintf(out, SL__DELTA_NAME_MAX, "%020" PRId64 ".json", version);
}

/* Whether name is 20 digits then `suffix` (or any suffix starting ".checkpoint."). */
static bool versioned_name(const char *name, const char *suffix, int64_t *version)
{
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    if (suffix ? strcmp(name + 20, suffix) != 0 : strncmp(name + 20, ".checkpoint.", 12) != 0)
        return false;
    *version = v;
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct log_listing {
    int64_t *versions; /* sorted JSON commit versions */
    size_t n;
    bool has_checkpoint;
    int64_t first_checkpoint;
} log_listing;

static sl_err list_log(const char *table_dir, log_listing *ll, char *errbuf, size_t errlen)
{
    memset(ll, 0, sizeof *ll);
    ll->first_checkpoint = INT64_MAX;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/_delta_log", table_dir) >= (int)sizeof path)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "table path \"%s\" is too long",
                             table_dir);
    DIR *d = opendir(path);
    if (!d)
        return sl_errbuf_set(errbuf, errlen, errno == ENOENT ? SL_ERR_NOT_FOUND : SL_ERR_IO,
                             "no Delta table at \"%s\": could not open \"%s\": %s", table_dir, path,
                             strerror(errno));
    sl_err err = SL_OK;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t v;
        if (versioned_name(de->d_name, NULL, &v) || !strcmp(de->d_name, "_last_checkpoint")) {
            ll->has_checkpoint = true;
            if (strcmp(de->d_name, "_last_checkpoint") != 0 && v < ll->first_checkpoint)
                ll->first_checkpoint = v;
            continue;
        }
        if (!versioned_name(de->d_name, ".json", &v))
            continue;
        if (ll->n == cap) {
            if (cap >= SL__DELTA_MAX_VERSIONS) {
                err = sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                                    "table \"%s\" has more than %u commits", table_dir,
                                    SL__DELTA_MAX_VERSIONS);
                goto out;
            }
            cap = cap ? cap * 2 : 64;
            int64_t *grown = realloc(ll->versions, cap * sizeof *grown);
            if (!grown) {
                err = SL_ERR_NOMEM;
                goto out;
            }
            ll->versions = grown;
        }
        ll->versions[ll->n++] = v;
    }
    if (ll->n)
        qsort(ll->versions, ll->n, sizeof *ll->versions, cmp_i64);
out:
    closedir(d);
    if (err) {
        free(ll->versions);
        ll->versions = NULL;
    }
    return err;
}

/* Checks that versions 0..upto are all there (upto -1: the latest). */
static sl_err check_history(const char *table_dir, const log_listing *ll, int64_t *upto,
                            char *errbuf, size_t errlen)
{
    if (ll->n == 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOT_FOUND,
                             "no Delta table at \"%s\": _delta_log holds no commit", table_dir);
    if (ll->versions[0] != 0) {
        if (ll->has_checkpoint)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                                 "table \"%s\": its JSON history starts at version %" PRId64
                                 " after a checkpoint; reading checkpoints is not supported yet",
                                 table_dir, ll->versions[0]);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "table \"%s\": version 0 is missing and there is no checkpoint",
                             table_dir);
    }
    for (size_t i = 1; i < ll->n; i++) {
        if (ll->versions[i] != (int64_t)i)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                 "table \"%s\": version %zu is missing (the log jumps from %zu to "
                                 "%" PRId64 ")",
                                 table_dir, i, i - 1, ll->versions[i]);
    }
    int64_t latest = (int64_t)ll->n - 1;
    if (*upto > latest)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOT_FOUND,
                             "table \"%s\" has no version %" PRId64 " (latest is %" PRId64 ")",
                             table_dir, *upto, latest);
    if (*upto < 0)
        *upto = latest;
    return SL_OK;
}

static sl_err read_commit(const char *table_dir, int64_t version, sl_buf *data, char *errbuf,
                          size_t errlen)
{
    char name[SL__DELTA_NAME_MAX], path[4200];
    sl__delta_commit_name(version, name);
    snprintf(path, sizeof path, "%s/_delta_log/%s", table_dir, name);
    sl_buf_reset(data);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not open \"%s\": %s", path,
                             strerror(errno));
    sl_err err = SL_OK;
    for (;;) {
        size_t room = data->cap - data->len < 65536 ? data->cap - data->len : 65536;
        char probe;
        if ((err = sl_buf_reserve(data, room)))
            break;
        /* At the cap, one byte more tells a file that fits exactly from one that does not. */
        ssize_t n = room ? read(fd, data->data + data->len, room) : read(fd, &probe, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not read \"%s\": %s", path,
                                strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (!room) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE, "commit \"%s\" is over %u bytes",
                                path, SL__DELTA_MAX_COMMIT_BYTES);
            break;
        }
        data->len += (size_t)n;
        data->data[data->len] = '\0';
    }
    close(fd);
    return err;
}

/* Replays versions 0..upto, calling cb (if any) after each. */
static sl_err replay(const char *table_dir, int64_t upto, sl__delta_state *st,
                     sl_delta_history_cb cb, void *opaque, char *errbuf, size_t errlen)
{
    log_listing ll;
    sl_err err = list_log(table_dir, &ll, errbuf, errlen);
    if (err)
        return err;
    sl_buf data;
    sl_buf_init(&data, SL__DELTA_MAX_COMMIT_BYTES);
    if ((err = check_history(table_dir, &ll, &upto, errbuf, errlen)))
        goto out;
    for (int64_t v = 0; v <= upto; v++) {
        if ((err = read_commit(table_dir, v, &data, errbuf, errlen)))
            goto out;
        char detail[400];
        if ((err = sl__delta_state_apply(st, v, data.data ? data.data : "", data.len, detail,
                                         sizeof detail))) {
            err = sl_errbuf_set(errbuf, errlen, err, "table \"%s\": %s", table_dir, detail);
            goto out;
        }
        if (cb && (err = cb(opaque, &st->last)))
            goto out;
    }
out:
    sl_buf_cleanup(&data);
    free(ll.versions);
    return err;
}

sl_err sl_delta_snapshot_load(const char *table_dir, int64_t version, sl_delta_snapshot_t **snap,
                              char *errbuf, size_t errlen)
{
    *snap = NULL;
    sl_delta_snapshot_t *s = malloc(sizeof *s);
    if (!s)
        return SL_ERR_NOMEM;
    sl__delta_state_init(&s->st);
    sl_err err = replay(table_dir, version, &s->st, NULL, NULL, errbuf, errlen);
    if (err) {
        sl_delta_snapshot_free(s);
        return err;
    }
    *snap = s;
    return SL_OK;
}

void sl_delta_snapshot_free(sl_delta_snapshot_t *snap)
{
    if (!snap)
        return;
    sl__delta_state_cleanup(&snap->st);
    free(snap);
}

sl_err sl_delta_history(const char *table_dir, sl_delta_history_cb cb, void *opaque, char *errbuf,
                        size_t errlen)
{
    sl__delta_state st;
    sl__delta_state_init(&st);
    sl_err err = replay(table_dir, -1, &st, cb, opaque, errbuf, errlen);
    sl__delta_state_cleanup(&st);
    return err;
}

int64_t sl_delta_snapshot_version(const sl_delta_snapshot_t *snap)
{
    return snap->st.version;
}

void sl_delta_snapshot_protocol(const sl_delta_snapshot_t *snap, int *min_reader, int *min_writer)
{
    *min_reader = snap->st.min_reader;
    *min_writer = snap->st.min_writer;
}

const char *sl_delta_snapshot_table_id(const sl_delta_snapshot_t *snap)
{
    return snap->st.table_id;
}

const char *sl_delta_snapshot_schema_string(const sl_delta_snapshot_t *snap)
{
    return snap->st.schema_string;
}

size_t sl_delta_snapshot_partition_count(const sl_delta_snapshot_t *snap)
{
    return snap->st.n_partition_columns;
}

const char *sl_delta_snapshot_partition_column(const sl_delta_snapshot_t *snap, size_t i)
{
    return i < snap->st.n_partition_columns ? snap->st.partition_columns[i] : NULL;
}

size_t sl_delta_snapshot_file_count(const sl_delta_snapshot_t *snap)
{
    return snap->st.n_files;
}

const sl_delta_file *sl_delta_snapshot_file(const sl_delta_snapshot_t *snap, size_t i)
{
    return i < snap->st.n_files ? &snap->st.files[i] : NULL;
}

sl_err sl_delta_snapshot_txn(const sl_delta_snapshot_t *snap, const char *app_id, int64_t *version)
{
    for (size_t i = 0; i < snap->st.n_txns; i++) {
        if (!strcmp(snap->st.txns[i].app_id, app_id)) {
            *version = snap->st.txns[i].version;
            return SL_OK;
        }
    }
    return SL_ERR_NOT_FOUND;
}
