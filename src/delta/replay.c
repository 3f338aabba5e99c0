/* Log replay: applies JSON commits, oldest first, to a state of protocol, metaData, active
 * files (add/remove reconciled by canonical path) and txn versions. Snapshots and the
 * history (snapshot.c) are built on it; the fuzz target drives sl__delta_state_apply.
 *
 * Invariants:
 *  1. files[0..n_files) are the active files; slots[] indexes each exactly once by its
 *     canonical path (%-decoded, "file:" dropped), so "a%20b" and "file:a b" are one file.
 *  2. rows_with_stats is the sum of num_records over active files that have it;
 *     files_without_stats counts the others.
 *  3. Anything this reader cannot read correctly is refused when its action is applied,
 *     naming the feature (SL_ERR_UNSUPPORTED); broken actions are SL_ERR_CORRUPT with the
 *     version and line. */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/hash.h"
#include "delta/delta_int.h"

/* Reader features whose tables this reader lists correctly: vacuumProtocolCheck only
 * constrains writers that vacuum, timestampNtz changes a column type (not the file set),
 * v2Checkpoint only changes checkpoints, which are not read (the JSON history must be
 * complete). */
static const char *const allowed_reader_features[] = {"vacuumProtocolCheck", "timestampNtz",
                                                      "v2Checkpoint"};

typedef struct apply_ctx {
    sl__delta_state *st;
    int64_t version;
    size_t line;
    char *errbuf;
    size_t errlen;
} apply_ctx;

static sl_err fail(apply_ctx *ax, sl_err err, const char *fmt, ...) SL_PRINTF(3, 4);

static sl_err fail(apply_ctx *ax, sl_err err, const char *fmt, ...)
{
    char detail[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return sl_errbuf_set(ax->errbuf, ax->errlen, err, "commit %" PRId64 " line %zu: %s",
                         ax->version, ax->line, detail);
}

void sl__delta_state_init(sl__delta_state *st)
{
    memset(st, 0, sizeof *st);
    st->version = -1;
    st->log_retention_ms = -1;
}

static void kvs_free(sl_delta_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)kv[i].key);
        free((char *)kv[i].value);
    }
    free(kv);
}

static void file_free(sl_delta_file *f)
{
    free((char *)f->path);
    free((char *)f->stats);
    kvs_free((sl_delta_kv *)f->partition_values, f->n_partition_values);
}

static void tombstone_free(sl__delta_tombstone *t)
{
    free(t->path);
    kvs_free(t->partition_values, t->n_partition_values);
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void sl__delta_state_cleanup(sl__delta_state *st)
{
    free(st->table_id);
    free(st->schema_string);
    free_strings(st->partition_columns, st->n_partition_columns);
    for (size_t i = 0; i < st->n_files; i++)
        file_free(&st->files[i]);
    free(st->files);
    free(st->hashes);
    free(st->slots);
    for (size_t i = 0; i < st->n_txns; i++)
        free(st->txns[i].app_id);
    free(st->txns);
    for (size_t i = 0; i < st->n_tombstones; i++)
        tombstone_free(&st->tombstones[i]);
    free(st->tombstones);
    free(st->log_retention);
    bool keep = st->keep_tombstones;
    sl__delta_state_init(st);
    st->keep_tombstones = keep;
}

/* ---- paths ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The canonical form of a log path (invariant 1); NULL with *bad set on a broken escape. */
static char *canonical_path(const char *p, size_t len, bool *bad)
{
    *bad = false;
    if (len >= 8 && !strncmp(p, "file:///", 8)) {
        p += 7;
        len -= 7;
    } else if (len >= 6 && !strncmp(p, "file:/", 6) && p[6] != '/') {
        p += 5;
        len -= 5;
    }
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '%') {
            out[o++] = p[i];
            continue;
        }
        int hi = i + 2 < len ? hex_value(p[i + 1]) : -1;
        int lo = i + 2 < len ? hex_value(p[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            *bad = true;
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* ---- the active-file index (invariant 1) ---- */

static size_t slot_find(const sl__delta_state *st, const char *path, uint64_t h)
{
    size_t mask = st->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t s = st->slots[i];
        if (s == 0 || (st->hashes[s - 1] == h && !strcmp(st->files[s - 1].path, path)))
            return i;
    }
}

bool sl__delta_state_is_active(const sl__delta_state *st, const char *path)
{
    return st->n_slots && st->slots[slot_find(st, path, sl_hash_bytes(path, strlen(path)))] != 0;
}

static sl_err index_grow(sl__delta_state *st)
{
    size_t n = st->n_slots ? st->n_slots * 2 : 64;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return SL_ERR_NOMEM;
    free(st->slots);
    st->slots = slots;
    st->n_slots = n;
    for (size_t i = 0; i < st->n_files; i++)
        st->slots[slot_find(st, st->files[i].path, st->hashes[i])] = (uint32_t)(i + 1);
    return SL_OK;
}

static void account(sl__delta_state *st, const sl_delta_file *f, int sign)
{
    if (f->num_records < 0 && sign > 0)
        st->files_without_stats++;
    else if (f->num_records < 0)
        st->files_without_stats--;
    else
        st->rows_with_stats += sign * f->num_records;
}

/* Removes the active file at slots[i]: swap the last file into its place, then shift the
 * probe chain back over the hole. */
static void index_remove(sl__delta_state *st, size_t i)
{
    size_t mask = st->n_slots - 1;
    size_t fi = st->slots[i] - 1;
    account(st, &st->files[fi], -1);
    file_free(&st->files[fi]);
    size_t last = st->n_files - 1;
    if (fi != last) {
        size_t ls = slot_find(st, st->files[last].path, st->hashes[last]);
        st->files[fi] = st->files[last];
        st->hashes[fi] = st->hashes[last];
        st->slots[ls] = (uint32_t)(fi + 1);
    }
    st->n_files--;
    st->slots[i] = 0;
    for (size_t k = (i + 1) & mask; st->slots[k]; k = (k + 1) & mask) {
        size_t ideal = st->hashes[st->slots[k] - 1] & mask;
        /* Move k into the hole unless its ideal slot lies cyclically in (i, k]. */
        bool stays = i <= k ? (ideal > i && ideal <= k) : (ideal > i || ideal <= k);
        if (stays)
            continue;
        st->slots[i] = st->slots[k];
        st->slots[k] = 0;
        i = k;
    }
}

/* Takes f (its strings) on success. */
static sl_err index_put(apply_ctx *ax, sl_delta_file *f)
{
    sl__delta_state *st = ax->st;
    uint64_t h = sl_hash_bytes(f->path, strlen(f->path));
    if (st->n_slots == 0 && index_grow(st))
        return SL_ERR_NOMEM;
    size_t i = slot_find(st, f->path, h);
    if (st->slots[i]) {
        size_t fi = st->slots[i] - 1;
        account(st, &st->files[fi], -1);
        file_free(&st->files[fi]);
        st->files[fi] = *f;
        account(st, f, +1);
        return SL_OK;
    }
    if (st->n_files >= SL__DELTA_MAX_FILES)
        return fail(ax, SL_ERR_TOO_LARGE, "more than %u active files", SL__DELTA_MAX_FILES);
    if (st->n_files == st->cap_files) {
        size_t cap = st->cap_files ? st->cap_files * 2 : 64;
        sl_delta_file *files = realloc(st->files, cap * sizeof *files);
        if (!files)
            return SL_ERR_NOMEM;
        st->files = files;
        uint64_t *hashes = realloc(st->hashes, cap * sizeof *hashes);
        if (!hashes)
            return SL_ERR_NOMEM;
        st->hashes = hashes;
        st->cap_files = cap;
    }
    st->files[st->n_files] = *f;
    st->hashes[st->n_files] = h;
    st->n_files++;
    st->slots[i] = (uint32_t)st->n_files;
    account(st, f, +1);
    if (st->n_files * 2 > st->n_slots)
        return index_grow(st);
    return SL_OK;
}

/* ---- actions ---- */

static const char *get_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool get_int(json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static bool is_absent(json_t *v)
{
    return v == NULL || json_is_null(v);
}

static sl_err apply_protocol(apply_ctx *ax, json_t *a)
{
    int64_t r, w;
    if (!get_int(a, "minReaderVersion", &r) || !get_int(a, "minWriterVersion", &w) || r < 1 ||
        w < 1 || r > INT32_MAX || w > INT32_MAX)
        return fail(ax, SL_ERR_CORRUPT,
                    "\"protocol\" needs positive minReaderVersion and minWriterVersion");
    if (r > 3)
        return fail(
            ax, SL_ERR_UNSUPPORTED,
            "the table needs reader version %" PRId64 " (this reader knows versions 1 to 3)", r);
    json_t *feats = json_object_get(a, "readerFeatures");
    if (r == 3) {
        if (!json_is_array(feats))
            return fail(ax, SL_ERR_CORRUPT, "reader version 3 without \"readerFeatures\"");
        size_t i;
        json_t *f;
        json_array_foreach(feats, i, f)
        {
            if (!json_is_string(f))
                return fail(ax, SL_ERR_CORRUPT, "a reader feature that is not a string");
            const char *name = json_string_value(f);
            size_t k;
            for (k = 0; k < sizeof allowed_reader_features / sizeof *allowed_reader_features; k++) {
                if (!strcmp(name, allowed_reader_features[k]))
                    break;
            }
            if (k == sizeof allowed_reader_features / sizeof *allowed_reader_features)
                return fail(ax, SL_ERR_UNSUPPORTED, "the table needs reader feature \"%s\"", name);
        }
    }
    ax->st->has_protocol = true;
    ax->st->min_reader = (int)r;
    ax->st->min_writer = (int)w;
    return SL_OK;
}

static sl_err apply_metadata(apply_ctx *ax, json_t *a)
{
    sl__delta_state *st = ax->st;
    const char *id = get_string(a, "id");
    const char *schema = get_string(a, "schemaString");
    json_t *pcs = json_object_get(a, "partitionColumns");
    json_t *format = json_object_get(a, "format");
    if (!id || !schema || !json_is_array(pcs))
        return fail(ax, SL_ERR_CORRUPT, "\"metaData\" needs id, schemaString and partitionColumns");
    const char *provider = json_is_object(format) ? get_string(format, "provider") : NULL;
    if (!provider)
        return fail(ax, SL_ERR_CORRUPT, "\"metaData\" needs format.provider");
    if (strcmp(provider, "parquet") != 0)
        return fail(ax, SL_ERR_UNSUPPORTED, "data files in format \"%s\" (only parquet)", provider);
    json_t *conf = json_object_get(a, "configuration");
    if (!is_absent(conf) && !json_is_object(conf))
        return fail(ax, SL_ERR_CORRUPT, "\"metaData\" configuration is not an object");
    const char *mode = json_is_object(conf) ? get_string(conf, "delta.columnMapping.mode") : NULL;
    if (mode && strcmp(mode, "none") != 0)
        return fail(ax, SL_ERR_UNSUPPORTED, "the table uses column mapping (mode \"%s\")", mode);
    const char *retention =
        json_is_object(conf) ? get_string(conf, "delta.logRetentionDuration") : NULL;
    char *retention_copy = NULL;
    if (retention && !(retention_copy = strdup(retention)))
        return SL_ERR_NOMEM;
    size_t n = json_array_size(pcs);
    char **cols = calloc(n + 1, sizeof *cols);
    char *id_copy = strdup(id);
    char *schema_copy = strdup(schema);
    sl_err err = SL_OK;
    if (!cols || !id_copy || !schema_copy) {
        err = SL_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(pcs, i);
        if (!json_is_string(c)) {
            err = fail(ax, SL_ERR_CORRUPT, "a partition column that is not a string");
            goto out;
        }
        if (!(cols[i] = strdup(json_string_value(c)))) {
            err = SL_ERR_NOMEM;
            goto out;
        }
    }
    free(st->table_id);
    free(st->schema_string);
    free_strings(st->partition_columns, st->n_partition_columns);
    st->table_id = id_copy;
    st->schema_string = schema_copy;
    st->partition_columns = cols;
    st->n_partition_columns = n;
    st->has_metadata = true;
    free(st->log_retention);
    st->log_retention = retention_copy;
    st->log_retention_ms = retention ? sl__delta_interval_ms(retention) : -1;
    return SL_OK;
out:
    free(retention_copy);
    free_strings(cols, n);
    free(id_copy);
    free(schema_copy);
    return err;
}

static sl_err check_no_dv(apply_ctx *ax, json_t *a, const char *path)
{
    if (!is_absent(json_object_get(a, "deletionVector")))
        return fail(ax, SL_ERR_UNSUPPORTED, "the table uses deletion vectors (file \"%s\")", path);
    return SL_OK;
}

static sl_err path_of(apply_ctx *ax, json_t *a, const char *action, char **out)
{
    const char *raw = get_string(a, "path");
    if (!raw || !*raw)
        return fail(ax, SL_ERR_CORRUPT, "\"%s\" needs a path", action);
    bool bad;
    *out = canonical_path(raw, strlen(raw), &bad);
    if (bad)
        return fail(ax, SL_ERR_CORRUPT, "\"%s\" path \"%s\" has a broken %%-escape", action, raw);
    return *out ? SL_OK : SL_ERR_NOMEM;
}

/* numRecords from an add's stats string (-1 when absent), and a copy of the string (kept
 * whole, so checkpoints carry min/max/nullCount as the commit wrote them). */
static sl_err stats_records(apply_ctx *ax, json_t *a, const char *path, int64_t *out,
                            const char **text)
{
    *out = -1;
    json_t *s = json_object_get(a, "stats");
    if (is_absent(s))
        return SL_OK;
    if (!json_is_string(s))
        return fail(ax, SL_ERR_CORRUPT, "stats of \"%s\" is not a string", path);
    json_error_t jerr;
    json_t *stats = json_loadb(json_string_value(s), json_string_length(s), 0, &jerr);
    if (!json_is_object(stats)) {
        json_decref(stats);
        return fail(ax, SL_ERR_CORRUPT, "stats of \"%s\" is not a JSON object", path);
    }
    json_t *n = json_object_get(stats, "numRecords");
    sl_err err = SL_OK;
    if (json_is_integer(n) && json_integer_value(n) >= 0)
        *out = (int64_t)json_integer_value(n);
    else if (n)
        err = fail(ax, SL_ERR_CORRUPT, "stats of \"%s\" has a bad numRecords", path);
    json_decref(stats);
    /* The text parsed as JSON, so it holds no NUL byte: a C string keeps it whole. */
    if (!err && !(*text = strndup(json_string_value(s), json_string_length(s))))
        err = SL_ERR_NOMEM;
    return err;
}

/* The partitionValues object pvs (of the action of path) as owned key/value pairs; *pv is
 * set even on failure, holding the *n pairs to free. */
static sl_err partition_values_of(apply_ctx *ax, json_t *pvs, const char *path, sl_delta_kv **pv,
                                  size_t *n)
{
    *pv = NULL;
    *n = 0;
    size_t cap = json_object_size(pvs);
    if (cap && !(*pv = calloc(cap, sizeof **pv)))
        return SL_ERR_NOMEM;
    const char *key;
    json_t *v;
    json_object_foreach(pvs, key, v)
    {
        if (!json_is_string(v) && !json_is_null(v))
            return fail(ax, SL_ERR_CORRUPT, "partition value \"%s\" of \"%s\" is not a string", key,
                        path);
        sl_delta_kv *kv = &(*pv)[(*n)++];
        kv->key = strdup(key);
        kv->value = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
        if (!kv->key || (json_is_string(v) && !kv->value))
            return SL_ERR_NOMEM;
    }
    return SL_OK;
}

static sl_err apply_add(apply_ctx *ax, json_t *a)
{
    sl_delta_file f = {.version = ax->version};
    sl_delta_kv *pv = NULL;
    size_t n_pv = 0;
    sl_err err = path_of(ax, a, "add", (char **)&f.path);
    if (err)
        return err;
    json_t *pvs = json_object_get(a, "partitionValues");
    int64_t size, mtime;
    json_t *dc = json_object_get(a, "dataChange");
    if (!json_is_object(pvs) || !get_int(a, "size", &size) || size < 0 ||
        !get_int(a, "modificationTime", &mtime) || !json_is_boolean(dc)) {
        err = fail(ax, SL_ERR_CORRUPT,
                   "\"add\" of \"%s\" needs partitionValues, size, modificationTime and "
                   "dataChange",
                   f.path);
        goto out;
    }
    if ((err = check_no_dv(ax, a, f.path)) ||
        (err = stats_records(ax, a, f.path, &f.num_records, &f.stats)))
        goto out;
    f.size = (uint64_t)size;
    f.modification_time_ms = mtime;
    if ((err = partition_values_of(ax, pvs, f.path, &pv, &n_pv)))
        goto out;
    f.partition_values = pv;
    f.n_partition_values = n_pv;
    err = index_put(ax, &f);
    if (!err) {
        ax->st->last.files_added++;
        if (f.num_records < 0 || ax->st->last.rows_added < 0)
            ax->st->last.rows_added = -1;
        else
            ax->st->last.rows_added += f.num_records;
        return SL_OK;
    }
out:
    f.partition_values = pv;
    f.n_partition_values = n_pv;
    file_free(&f);
    return err;
}

/* Keeps the remove a as a tombstone (taking *path). */
static sl_err add_tombstone(apply_ctx *ax, json_t *a, char **path)
{
    sl__delta_state *st = ax->st;
    if (!st->keep_tombstones)
        return SL_OK;
    if (st->n_tombstones == st->cap_tombstones) {
        if (st->n_tombstones >= SL__DELTA_MAX_TOMBSTONES)
            return fail(ax, SL_ERR_TOO_LARGE, "more than %u removed files to remember",
                        SL__DELTA_MAX_TOMBSTONES);
        sl__delta_tombstone *grown =
            sl_grow(st->tombstones, st->n_tombstones, &st->cap_tombstones, 64, sizeof *grown);
        if (!grown)
            return SL_ERR_NOMEM;
        st->tombstones = grown;
    }
    sl__delta_tombstone t = {.deletion_ms = -1, .size = -1, .data_change = true};
    int64_t n;
    if (get_int(a, "deletionTimestamp", &n))
        t.deletion_ms = n;
    if (get_int(a, "size", &n) && n >= 0)
        t.size = n;
    json_t *dc = json_object_get(a, "dataChange");
    if (json_is_boolean(dc))
        t.data_change = json_is_true(dc);
    json_t *pvs = json_object_get(a, "partitionValues");
    if (json_is_object(pvs)) {
        sl_err err =
            partition_values_of(ax, pvs, *path, &t.partition_values, &t.n_partition_values);
        if (err) {
            tombstone_free(&t);
            return err;
        }
    }
    t.path = *path;
    *path = NULL;
    st->tombstones[st->n_tombstones++] = t;
    return SL_OK;
}

static sl_err apply_remove(apply_ctx *ax, json_t *a)
{
    char *path;
    sl_err err = path_of(ax, a, "remove", &path);
    if (err)
        return err;
    if ((err = check_no_dv(ax, a, path)))
        goto out;
    sl__delta_state *st = ax->st;
    if (st->n_slots) {
        size_t i = slot_find(st, path, sl_hash_bytes(path, strlen(path)));
        if (st->slots[i])
            index_remove(st, i);
    }
    st->last.files_removed++;
    err = add_tombstone(ax, a, &path);
out:
    free(path);
    return err;
}

static sl_err apply_txn(apply_ctx *ax, json_t *a)
{
    sl__delta_state *st = ax->st;
    const char *app = get_string(a, "appId");
    int64_t version;
    if (!app || !get_int(a, "version", &version))
        return fail(ax, SL_ERR_CORRUPT, "\"txn\" needs appId and version");
    for (size_t i = 0; i < st->n_txns; i++) {
        if (!strcmp(st->txns[i].app_id, app)) {
            st->txns[i].version = version;
            return SL_OK;
        }
    }
    if (st->n_txns >= SL__DELTA_MAX_TXNS)
        return fail(ax, SL_ERR_TOO_LARGE, "more than %u txn application ids", SL__DELTA_MAX_TXNS);
    sl__delta_txn *txns = realloc(st->txns, (st->n_txns + 1) * sizeof *txns);
    if (!txns)
        return SL_ERR_NOMEM;
    st->txns = txns;
    if (!(txns[st->n_txns].app_id = strdup(app)))
        return SL_ERR_NOMEM;
    txns[st->n_txns++].version = version;
    return SL_OK;
}

static sl_err apply_commit_info(apply_ctx *ax, json_t *a)
{
    sl__delta_state *st = ax->st;
    int64_t ts;
    if (get_int(a, "timestamp", &ts))
        st->last.timestamp_ms = ts;
    const char *op = get_string(a, "operation");
    if (op)
        snprintf(st->operation, sizeof st->operation, "%s", op);
    return SL_OK;
}

static sl_err apply_line(apply_ctx *ax, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return fail(ax, SL_ERR_CORRUPT, "malformed JSON: %s (column %d)", jerr.text, jerr.column);
    sl_err err = SL_OK;
    if (!json_is_object(obj) || json_object_size(obj) != 1) {
        err = fail(ax, SL_ERR_CORRUPT, "an action line must be an object with one action");
        goto out;
    }
    const char *name = json_object_iter_key(json_object_iter(obj));
    json_t *a = json_object_iter_value(json_object_iter(obj));
    if (!json_is_object(a)) {
        /* Writers put null for absent optional values; an action itself must be present. */
        err = fail(ax, SL_ERR_CORRUPT, "action \"%s\" is not an object", name);
        goto out;
    }
    if (!strcmp(name, "protocol"))
        err = apply_protocol(ax, a);
    else if (!strcmp(name, "metaData"))
        err = apply_metadata(ax, a);
    else if (!strcmp(name, "add"))
        err = apply_add(ax, a);
    else if (!strcmp(name, "remove"))
        err = apply_remove(ax, a);
    else if (!strcmp(name, "txn"))
        err = apply_txn(ax, a);
    else if (!strcmp(name, "commitInfo"))
        err = apply_commit_info(ax, a);
    /* Other actions (cdc, domainMetadata, ...) do not change the file set: skipped. */
out:
    json_decref(obj);
    return err;
}

sl_err sl__delta_state_apply(sl__delta_state *st, int64_t version, const char *data, size_t len,
                             char *errbuf, size_t errlen)
{
    apply_ctx ax = {.st = st, .version = version, .errbuf = errbuf, .errlen = errlen};
    if (version != st->version + 1)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL,
                             "commit %" PRId64 " applied after version %" PRId64, version,
                             st->version);
    memset(&st->last, 0, sizeof st->last);
    st->last.version = version;
    st->last.timestamp_ms = -1;
    st->operation[0] = '\0';
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        ax.line++;
        size_t a = pos, b = end;
        while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r'))
            a++;
        while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\r'))
            b--;
        if (b > a) {
            sl_err err = apply_line(&ax, data + a, b - a);
            if (err)
                return err;
        }
        pos = end + 1;
    }
    if (!st->has_protocol || !st->has_metadata)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "commit %" PRId64 ": the table has no %s action", version,
                             st->has_protocol ? "metaData" : "protocol");
    st->version = version;
    st->last.operation = st->operation;
    st->last.files_total = st->n_files;
    st->last.rows_total = st->files_without_stats ? -1 : st->rows_with_stats;
    return SL_OK;
}
