/* Reading a table: starts from the checkpoint _delta_log/_last_checkpoint names (or, listing
 * _delta_log/ through the store, from version 0 or the newest checkpoint), checks that the
 * JSON commits after the start are complete, and replays them, one GET each, into a
 * snapshot or, version by version, into the history. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "delta/delta_int.h"

#define LOG_PREFIX "_delta_log/"

struct sl_delta_snapshot {
    sl__delta_state st;
};

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

typedef struct log_listing {
    int64_t *versions; /* JSON commit versions, ascending (the store lists keys sorted) */
    size_t n, cap;
    bool has_checkpoint;
    int64_t first_checkpoint;
    int64_t *checkpoints; /* versions of single-part checkpoints, ascending */
    size_t n_checkpoints, cap_checkpoints;
    sl_err fail; /* what stopped the listing from inside the callback */
} log_listing;

/* Appends v to *arr (growing it by doubling, at most SL__DELTA_MAX_VERSIONS). */
static sl_err push_version(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
    if (*n == *cap) {
        if (*cap >= SL__DELTA_MAX_VERSIONS)
            return SL_ERR_TOO_LARGE;
        int64_t *grown = sl_grow(*arr, *n, cap, 64, sizeof *grown);
        if (!grown)
            return SL_ERR_NOMEM;
        *arr = grown;
    }
    (*arr)[(*n)++] = v;
    return SL_OK;
}

static sl_err list_entry(void *opaque, const sl_storage_entry *e)
{
    log_listing *ll = opaque;
    const char *name = e->key + strlen(LOG_PREFIX);
    int64_t v = -1;
    if (strchr(name, '/'))
        return SL_OK; /* a sub-folder's object (not part of this protocol version) */
    if (versioned_name(name, NULL, &v) || !strcmp(name, "_last_checkpoint")) {
        ll->has_checkpoint = true;
        if (strcmp(name, "_last_checkpoint") != 0 && v < ll->first_checkpoint)
            ll->first_checkpoint = v;
        if (versioned_name(name, ".checkpoint.parquet", &v) &&
            (ll->fail =
                 push_version(&ll->checkpoints, &ll->n_checkpoints, &ll->cap_checkpoints, v)))
            return ll->fail;
        return SL_OK;
    }
    if (!versioned_name(name, ".json", &v))
        return SL_OK;
    return ll->fail = push_version(&ll->versions, &ll->n, &ll->cap, v);
}

static void log_listing_cleanup(log_listing *ll)
{
    free(ll->versions);
    free(ll->checkpoints);
    ll->versions = ll->checkpoints = NULL;
}

/* Lists the commits after version `after` (-1: all); log_listing_cleanup frees it. */
static sl_err list_log(sl_storage_t *st, int64_t after, log_listing *ll, char *errbuf,
                       size_t errlen)
{
    memset(ll, 0, sizeof *ll);
    ll->first_checkpoint = INT64_MAX;
    char start[SL__DELTA_KEY_MAX] = "";
    if (after >= 0)
        sl__delta_commit_key(after, start);
    sl_err err = sl_storage_list(st, LOG_PREFIX, start, list_entry, ll, errbuf, errlen);
    if (err && err == ll->fail)
        err = sl_errbuf_set(errbuf, errlen, err,
                            err == SL_ERR_TOO_LARGE ? "table \"%s\" has more than %u commits"
                                                    : "table \"%s\": out of memory (%u)",
                            sl_storage_uri(st), SL__DELTA_MAX_VERSIONS);
    if (err)
        log_listing_cleanup(ll);
    return err;
}

/* Checks that versions 0..upto are all there (upto -1: the latest). */
static sl_err check_history(const char *table, const log_listing *ll, int64_t *upto, char *errbuf,
                            size_t errlen)
{
    if (ll->n == 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOT_FOUND,
                             "no Delta table at \"%s\": _delta_log holds no commit", table);
    if (ll->versions[0] != 0) {
        if (ll->has_checkpoint)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                                 "table \"%s\": its JSON history starts at version %" PRId64
                                 " and none of its checkpoints can be read (sluice reads "
                                 "classic single-part ones)",
                                 table, ll->versions[0]);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "table \"%s\": version 0 is missing and there is no checkpoint",
                             table);
    }
    for (size_t i = 1; i < ll->n; i++) {
        if (ll->versions[i] != (int64_t)i)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                 "table \"%s\": version %zu is missing (the log jumps from %zu to "
                                 "%" PRId64 ")",
                                 table, i, i - 1, ll->versions[i]);
    }
    int64_t latest = (int64_t)ll->n - 1;
    if (*upto > latest)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOT_FOUND,
                             "table \"%s\" has no version %" PRId64 " (latest is %" PRId64 ")",
                             table, *upto, latest);
    if (*upto < 0)
        *upto = latest;
    return SL_OK;
}

static sl_err read_commit(sl_storage_t *st, int64_t version, sl_buf *data, char *errbuf,
                          size_t errlen)
{
    char key[SL__DELTA_KEY_MAX];
    sl__delta_commit_key(version, key);
    sl_buf_reset(data);
    sl_err err = sl_storage_get(st, key, data, errbuf, errlen);
    if (err == SL_ERR_TOO_LARGE)
        return sl_errbuf_set(errbuf, errlen, err, "commit \"%s\" of table \"%s\" is over %u bytes",
                             key, sl_storage_uri(st), SL__DELTA_MAX_COMMIT_BYTES);
    if (err == SL_ERR_NOT_FOUND) /* listed, then gone: a vacuum or a broken store */
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "table \"%s\": commit \"%s\" was listed but cannot be read",
                             sl_storage_uri(st), key);
    return err;
}

/* Applies the commits versions[0..n) (ascending, each st->version + 1) to st, calling cb
 * (if any) after each. */
static sl_err apply_versions(sl_storage_t *store, const int64_t *versions, size_t n,
                             sl__delta_state *st, sl_delta_history_cb cb, void *opaque,
                             char *errbuf, size_t errlen)
{
    sl_buf data;
    sl_buf_init(&data, SL__DELTA_MAX_COMMIT_BYTES);
    sl_err err = SL_OK;
    for (size_t i = 0; i < n; i++) {
        int64_t v = versions[i];
        if ((err = read_commit(store, v, &data, errbuf, errlen)))
            goto out;
        char detail[400];
        if ((err = sl__delta_state_apply(st, v, data.data ? data.data : "", data.len, detail,
                                         sizeof detail))) {
            err = sl_errbuf_set(errbuf, errlen, err, "table \"%s\": %s", sl_storage_uri(store),
                                detail);
            goto out;
        }
        if (cb && (err = cb(opaque, &st->last)))
            goto out;
    }
out:
    sl_buf_cleanup(&data);
    return err;
}

/* Loads checkpoint `ck` into st, then the JSON commits after it up to upto (-1: the latest),
 * calling cb (if any) for the checkpoint's version and each commit after it. The commits
 * after ck are listed from ck on, which is what makes opening a long table fast. */
static sl_err from_checkpoint(sl_storage_t *store, int64_t ck, int64_t upto, sl__delta_state *st,
                              sl_delta_history_cb cb, void *opaque, char *errbuf, size_t errlen)
{
    log_listing ll;
    sl_err err;
    if ((err = sl__delta_checkpoint_load(store, ck, st, errbuf, errlen)))
        return err;
    if ((err = list_log(store, ck, &ll, errbuf, errlen)))
        return err;
    size_t n = 0;
    while (n < ll.n && ll.versions[n] == ck + 1 + (int64_t)n &&
           (upto < 0 || ll.versions[n] <= upto))
        n++;
    if (upto > ck + (int64_t)n)
        err = sl_errbuf_set(errbuf, errlen, n < ll.n ? SL_ERR_CORRUPT : SL_ERR_NOT_FOUND,
                            "table \"%s\" has no version %" PRId64 " after checkpoint %" PRId64,
                            sl_storage_uri(store), upto, ck);
    else if (n < ll.n && upto < 0)
        err =
            sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                          "table \"%s\": version %" PRId64 " is missing (the log jumps to %" PRId64
                          " after checkpoint %" PRId64 ")",
                          sl_storage_uri(store), ck + 1 + (int64_t)n, ll.versions[n], ck);
    else if (cb)
        err = cb(opaque, &st->last);
    if (!err)
        err = apply_versions(store, ll.versions, n, st, cb, opaque, errbuf, errlen);
    log_listing_cleanup(&ll);
    return err;
}

/* Replays the table up to upto (-1: the latest), calling cb (if any) after each version.
 * A snapshot starts from the checkpoint _last_checkpoint names when that works; otherwise
 * the log is listed: a history from version 0 is replayed whole, else the newest
 * checkpoint with every commit after it is the start. The history (cb) prefers the JSON
 * commits from 0 while they are all there. */
static sl_err replay(sl_storage_t *store, int64_t upto, sl__delta_state *st, sl_delta_history_cb cb,
                     void *opaque, char *errbuf, size_t errlen)
{
    log_listing ll;
    int64_t hint;
    sl_err err;
    if (!cb && sl__delta_last_checkpoint(store, &hint, NULL, 0) == SL_OK &&
        (upto < 0 || hint <= upto)) {
        if (from_checkpoint(store, hint, upto, st, NULL, NULL, NULL, 0) == SL_OK)
            return SL_OK;
        sl__delta_state_cleanup(st); /* missing, stale or broken: list instead */
    }
    if ((err = list_log(store, -1, &ll, errbuf, errlen)))
        return err;
    bool whole = ll.n > 0 && ll.versions[0] == 0 && ll.versions[ll.n - 1] == (int64_t)ll.n - 1;
    int64_t latest = ll.n ? ll.versions[ll.n - 1] : -1, target = upto < 0 ? latest : upto;
    int64_t ck = -1;
    for (size_t i = ll.n_checkpoints; i-- > 0;)
        if (ll.checkpoints[i] <= target) {
            ck = ll.checkpoints[i];
            break;
        }
    if (ck >= 0 && !(whole && cb)) {
        err = from_checkpoint(store, ck, upto, st, cb, opaque, errbuf, errlen);
    } else if (!(err = check_history(sl_storage_uri(store), &ll, &upto, errbuf, errlen))) {
        err = apply_versions(store, ll.versions, (size_t)upto + 1, st, cb, opaque, errbuf, errlen);
    }
    log_listing_cleanup(&ll);
    return err;
}

static sl_err load(sl_storage_t *store, int64_t version, bool keep_tombstones,
                   sl_delta_snapshot_t **snap, char *errbuf, size_t errlen)
{
    *snap = NULL;
    sl_delta_snapshot_t *s = malloc(sizeof *s);
    if (!s)
        return SL_ERR_NOMEM;
    sl__delta_state_init(&s->st);
    s->st.keep_tombstones = keep_tombstones;
    sl_err err = replay(store, version, &s->st, NULL, NULL, errbuf, errlen);
    if (err) {
        sl_delta_snapshot_free(s);
        return err;
    }
    *snap = s;
    return SL_OK;
}

sl_err sl_delta_snapshot_load(sl_storage_t *store, int64_t version, sl_delta_snapshot_t **snap,
                              char *errbuf, size_t errlen)
{
    return load(store, version, false, snap, errbuf, errlen);
}

sl_err sl__delta_snapshot_load_tombstones(sl_storage_t *store, int64_t version,
                                          sl_delta_snapshot_t **snap, char *errbuf, size_t errlen)
{
    return load(store, version, true, snap, errbuf, errlen);
}

sl_err sl_delta_snapshot_update(sl_storage_t *store, sl_delta_snapshot_t *snap,
                                sl_delta_history_cb cb, void *opaque, char *errbuf, size_t errlen)
{
    log_listing ll;
    int64_t from = snap->st.version;
    sl_err err = list_log(store, from, &ll, errbuf, errlen);
    if (err)
        return err;
    for (size_t i = 0; i < ll.n && !err; i++) {
        if (ll.versions[i] != from + 1 + (int64_t)i)
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                "table \"%s\": version %" PRId64 " is missing (the log jumps "
                                "to %" PRId64 ")",
                                sl_storage_uri(store), from + 1 + (int64_t)i, ll.versions[i]);
    }
    if (!err)
        err = apply_versions(store, ll.versions, ll.n, &snap->st, cb, opaque, errbuf, errlen);
    log_listing_cleanup(&ll); /* the checkpoints too: a listing past one has them */
    return err;
}

sl__delta_state *sl__delta_snapshot_state(sl_delta_snapshot_t *snap)
{
    return &snap->st;
}

void sl_delta_snapshot_free(sl_delta_snapshot_t *snap)
{
    if (!snap)
        return;
    sl__delta_state_cleanup(&snap->st);
    free(snap);
}

sl_err sl_delta_history(sl_storage_t *store, sl_delta_history_cb cb, void *opaque, char *errbuf,
                        size_t errlen)
{
    sl__delta_state st;
    sl__delta_state_init(&st);
    sl_err err = replay(store, -1, &st, cb, opaque, errbuf, errlen);
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

bool sl_delta_snapshot_has_file(const sl_delta_snapshot_t *snap, const char *path)
{
    return sl__delta_state_is_active(&snap->st, path);
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
