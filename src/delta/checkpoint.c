/* Delta checkpoints, bytes in and bytes out: a replayed state is encoded as a Parquet
 * checkpoint with the protocol's nested schema (txn, add, remove, metaData, protocol:
 * structs, maps of strings and a list, one action per row) by sluice's nested Parquet
 * writer, and a checkpoint (sluice's or another engine's) is decoded back into a state by
 * turning its rows into the JSON actions they stand for and applying those as one commit,
 * so a checkpoint is checked by the same rules as the JSON log. No I/O here. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "core/ostream.h"
#include "delta/delta_int.h"
#include "parquet/parquet.h"

/* ---- the schema ---- */

#define LEAF(n, t, l)                                                                              \
    {                                                                                              \
        n, SL_PQ_NODE_LEAF, SL_PQ_OPTIONAL, t, l, NULL, 0                                          \
    }
#define STR(n)  LEAF(n, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING)
#define LONG(n) LEAF(n, SL_PQ_INT64, SL_PQ_LOGICAL_NONE)
#define BOOL(n) LEAF(n, SL_PQ_BOOLEAN, SL_PQ_LOGICAL_NONE)
#define GROUP(n, k, c)                                                                             \
    {                                                                                              \
        n, k, SL_PQ_OPTIONAL, 0, 0, c, sizeof c / sizeof *c                                        \
    }

static const sl_pq_node STR_KV[2] = {
    {"key", SL_PQ_NODE_LEAF, SL_PQ_REQUIRED, SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, NULL, 0},
    STR("value")};
static const sl_pq_node STR_ELEM[1] = {STR("element")};
static const sl_pq_node TXN[3] = {STR("appId"), LONG("version"), LONG("lastUpdated")};
static const sl_pq_node ADD[7] = {STR("path"),
                                  GROUP("partitionValues", SL_PQ_NODE_MAP, STR_KV),
                                  LONG("size"),
                                  LONG("modificationTime"),
                                  BOOL("dataChange"),
                                  STR("stats"),
                                  GROUP("tags", SL_PQ_NODE_MAP, STR_KV)};
static const sl_pq_node REMOVE[6] = {STR("path"),
                                     LONG("deletionTimestamp"),
                                     BOOL("dataChange"),
                                     BOOL("extendedFileMetadata"),
                                     GROUP("partitionValues", SL_PQ_NODE_MAP, STR_KV),
                                     LONG("size")};
static const sl_pq_node FORMAT[2] = {STR("provider"), GROUP("options", SL_PQ_NODE_MAP, STR_KV)};
static const sl_pq_node METADATA[8] = {STR("id"),
                                       STR("name"),
                                       STR("description"),
                                       GROUP("format", SL_PQ_NODE_STRUCT, FORMAT),
                                       STR("schemaString"),
                                       GROUP("partitionColumns", SL_PQ_NODE_LIST, STR_ELEM),
                                       GROUP("configuration", SL_PQ_NODE_MAP, STR_KV),
                                       LONG("createdTime")};
static const sl_pq_node PROTOCOL[2] = {LEAF("minReaderVersion", SL_PQ_INT32, SL_PQ_LOGICAL_NONE),
                                       LEAF("minWriterVersion", SL_PQ_INT32, SL_PQ_LOGICAL_NONE)};
static const sl_pq_node ACTIONS[5] = {
    GROUP("txn", SL_PQ_NODE_STRUCT, TXN), GROUP("add", SL_PQ_NODE_STRUCT, ADD),
    GROUP("remove", SL_PQ_NODE_STRUCT, REMOVE), GROUP("metaData", SL_PQ_NODE_STRUCT, METADATA),
    GROUP("protocol", SL_PQ_NODE_STRUCT, PROTOCOL)};

/* Leaves of ACTIONS, depth first. */
enum {
    L_TXN_APP,
    L_TXN_VERSION,
    L_TXN_UPDATED,
    L_ADD_PATH,
    L_ADD_PV_KEY,
    L_ADD_PV_VALUE,
    L_ADD_SIZE,
    L_ADD_MTIME,
    L_ADD_CHANGE,
    L_ADD_STATS,
    L_ADD_TAG_KEY,
    L_ADD_TAG_VALUE,
    L_RM_PATH,
    L_RM_TIME,
    L_RM_CHANGE,
    L_RM_EXT,
    L_RM_PV_KEY,
    L_RM_PV_VALUE,
    L_RM_SIZE,
    L_MD_ID,
    L_MD_NAME,
    L_MD_DESC,
    L_MD_PROVIDER,
    L_MD_OPT_KEY,
    L_MD_OPT_VALUE,
    L_MD_SCHEMA,
    L_MD_PART,
    L_MD_CONF_KEY,
    L_MD_CONF_VALUE,
    L_MD_CREATED,
    L_PROTO_READER,
    L_PROTO_WRITER,
    N_LEAVES,
    /* read only (sluice writes protocol 1/2 without features, and no deletion vectors) */
    L_PROTO_RFEAT = N_LEAVES,
    L_PROTO_WFEAT,
    L_ADD_DV,
    L_SIDECAR,
    N_READ
};

/* ---- encoding ---- */

/* One row being shredded: up to `cap` slots per leaf. */
typedef struct row_buf {
    uint8_t *reps[N_LEAVES], *defs[N_LEAVES];
    sl_pq_value *vals[N_LEAVES];
    size_t n[N_LEAVES];
    size_t cap;
} row_buf;

static void slot(row_buf *rb, int leaf, int rep, int def, sl_pq_value v)
{
    size_t k = rb->n[leaf]++;
    rb->reps[leaf][k] = (uint8_t)rep;
    rb->defs[leaf][k] = (uint8_t)def;
    rb->vals[leaf][k] = v;
}

static sl_pq_value str_v(const char *s)
{
    return s ? (sl_pq_value){.v.bytes = {s, strlen(s)}} : (sl_pq_value){.is_null = true};
}

static const sl_pq_value NULL_V = {.is_null = true};
static const sl_delta_kv EMPTY_KV[1]; /* an empty (not null) map */

/* A map of strings whose map node has definition level base when present (0..n entries;
 * kvs NULL: the map is null). */
static void map_slots(row_buf *rb, int key, int value, int base, const sl_delta_kv *kvs, size_t n)
{
    if (!kvs || n == 0) {
        slot(rb, key, 0, kvs ? base : base - 1, NULL_V);
        slot(rb, value, 0, kvs ? base : base - 1, NULL_V);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        slot(rb, key, k ? 1 : 0, base + 1, str_v(kvs[k].key));
        slot(rb, value, k ? 1 : 0, kvs[k].value ? base + 2 : base + 1, str_v(kvs[k].value));
    }
}

static void row_start(row_buf *rb)
{
    for (int i = 0; i < N_LEAVES; i++)
        rb->n[i] = 0;
}

/* Leaves no slot was given get the action's absence: (0, 0, null). */
static void row_finish(row_buf *rb, sl_pq_leaf_run *runs)
{
    for (int i = 0; i < N_LEAVES; i++) {
        if (!rb->n[i])
            slot(rb, i, 0, 0, NULL_V);
        runs[i] = (sl_pq_leaf_run){rb->n[i], rb->reps[i], rb->defs[i], rb->vals[i]};
    }
}

static sl_err row_buf_init(row_buf *rb, size_t cap)
{
    memset(rb, 0, sizeof *rb);
    rb->cap = cap ? cap : 1;
    for (int i = 0; i < N_LEAVES; i++) {
        rb->reps[i] = malloc(rb->cap);
        rb->defs[i] = malloc(rb->cap);
        rb->vals[i] = malloc(rb->cap * sizeof(sl_pq_value));
        if (!rb->reps[i] || !rb->defs[i] || !rb->vals[i])
            return SL_ERR_NOMEM;
    }
    return SL_OK;
}

static void row_buf_cleanup(row_buf *rb)
{
    for (int i = 0; i < N_LEAVES; i++) {
        free(rb->reps[i]);
        free(rb->defs[i]);
        free(rb->vals[i]);
    }
}

typedef struct tombstone_ref {
    const char *path;
    size_t i; /* index in st->tombstones: the log's order */
} tombstone_ref;

static int tombstone_order(const void *a, const void *b)
{
    const tombstone_ref *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* The tombstones a checkpoint carries: of each path that is not active, its last remove,
 * if deleted at or after from_ms (or at an unknown time). *keep lists their indexes. */
static sl_err tombstones_kept(const sl__delta_state *st, int64_t from_ms, size_t **keep,
                              size_t *n_keep)
{
    size_t n = st->n_tombstones;
    *n_keep = 0;
    *keep = malloc((n ? n : 1) * sizeof **keep);
    tombstone_ref *order = malloc((n ? n : 1) * sizeof *order);
    if (!*keep || !order) {
        free(order);
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (tombstone_ref){st->tombstones[i].path, i};
    qsort(order, n, sizeof *order, tombstone_order);
    for (size_t k = 0; k < n; k++) {
        const sl__delta_tombstone *t = &st->tombstones[order[k].i];
        bool last = k + 1 == n || strcmp(order[k].path, order[k + 1].path) != 0;
        if (last && (t->deletion_ms < 0 || t->deletion_ms >= from_ms) &&
            !sl__delta_state_is_active(st, t->path))
            (*keep)[(*n_keep)++] = order[k].i;
    }
    free(order);
    return SL_OK;
}

sl_err sl__delta_checkpoint_encode(const sl__delta_state *st, int64_t tombstones_from_ms,
                                   sl_buf *out, size_t *actions, char *errbuf, size_t errlen)
{
    size_t *keep = NULL, n_keep = 0;
    sl_err err;
    sl_ostream_buf obs;
    sl_pq_writer_t *pw = NULL;
    sl_pq_writer_options opts;
    sl_pq_leaf_run runs[N_LEAVES];
    row_buf rb;
    size_t cap = st->n_partition_columns + 2;
    memset(&rb, 0, sizeof rb);
    if (st->min_reader > 2 || st->min_writer > 6) /* the state does not keep the features */
        return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                             "checkpoints of a table with table features (protocol %d/%d) are "
                             "not supported",
                             st->min_reader, st->min_writer);
    for (size_t i = 0; i < st->n_files; i++)
        if (st->files[i].n_partition_values + 1 > cap)
            cap = st->files[i].n_partition_values + 1;
    for (size_t i = 0; i < st->n_tombstones; i++)
        if (st->tombstones[i].n_partition_values + 1 > cap)
            cap = st->tombstones[i].n_partition_values + 1;
    if ((err = tombstones_kept(st, tombstones_from_ms, &keep, &n_keep))) {
        sl_errbuf_set(errbuf, errlen, err, "out of memory encoding a checkpoint");
        goto out;
    }
    if ((err = row_buf_init(&rb, cap))) {
        sl_errbuf_set(errbuf, errlen, err, "out of memory encoding a checkpoint");
        goto out;
    }
    sl_ostream_buf_init(&obs, out);
    sl_pq_writer_options_default(&opts);
    opts.codec = SL_PQ_SNAPPY;
    opts.created_by = "sluice delta checkpoint";
    if ((err = sl_pq_writer_new_nested(ACTIONS, 5, &opts, &obs.os, &pw, errbuf, errlen)))
        goto out;
    /* protocol */
    row_start(&rb);
    slot(&rb, L_PROTO_READER, 0, 2, (sl_pq_value){.v.i32 = st->min_reader});
    slot(&rb, L_PROTO_WRITER, 0, 2, (sl_pq_value){.v.i32 = st->min_writer});
    row_finish(&rb, runs);
    if ((err = sl_pq_writer_write_levels(pw, runs, errbuf, errlen)))
        goto out;
    /* metaData */
    row_start(&rb);
    slot(&rb, L_MD_ID, 0, 2, str_v(st->table_id));
    slot(&rb, L_MD_NAME, 0, 1, NULL_V);
    slot(&rb, L_MD_DESC, 0, 1, NULL_V);
    slot(&rb, L_MD_PROVIDER, 0, 3, str_v("parquet"));
    map_slots(&rb, L_MD_OPT_KEY, L_MD_OPT_VALUE, 3, EMPTY_KV, 0);
    slot(&rb, L_MD_SCHEMA, 0, 2, str_v(st->schema_string));
    if (st->n_partition_columns == 0)
        slot(&rb, L_MD_PART, 0, 2, NULL_V);
    for (size_t k = 0; k < st->n_partition_columns; k++)
        slot(&rb, L_MD_PART, k ? 1 : 0, 4, str_v(st->partition_columns[k]));
    /* configuration: the one entry the state keeps */
    sl_delta_kv retention = {"delta.logRetentionDuration", st->log_retention};
    map_slots(&rb, L_MD_CONF_KEY, L_MD_CONF_VALUE, 2, st->log_retention ? &retention : EMPTY_KV,
              st->log_retention ? 1 : 0);
    slot(&rb, L_MD_CREATED, 0, 1, NULL_V);
    row_finish(&rb, runs);
    if ((err = sl_pq_writer_write_levels(pw, runs, errbuf, errlen)))
        goto out;
    /* txn */
    for (size_t i = 0; i < st->n_txns; i++) {
        row_start(&rb);
        slot(&rb, L_TXN_APP, 0, 2, str_v(st->txns[i].app_id));
        slot(&rb, L_TXN_VERSION, 0, 2, (sl_pq_value){.v.i64 = st->txns[i].version});
        slot(&rb, L_TXN_UPDATED, 0, 1, NULL_V);
        row_finish(&rb, runs);
        if ((err = sl_pq_writer_write_levels(pw, runs, errbuf, errlen)))
            goto out;
    }
    /* add: the active files, with their stats as the log held them */
    for (size_t i = 0; i < st->n_files; i++) {
        const sl_delta_file *f = &st->files[i];
        row_start(&rb);
        slot(&rb, L_ADD_PATH, 0, 2, str_v(f->path));
        map_slots(&rb, L_ADD_PV_KEY, L_ADD_PV_VALUE, 2,
                  f->partition_values ? f->partition_values : EMPTY_KV, f->n_partition_values);
        slot(&rb, L_ADD_SIZE, 0, 2, (sl_pq_value){.v.i64 = (int64_t)f->size});
        slot(&rb, L_ADD_MTIME, 0, 2, (sl_pq_value){.v.i64 = f->modification_time_ms});
        slot(&rb, L_ADD_CHANGE, 0, 2, (sl_pq_value){.v.b = false});
        if (f->stats)
            slot(&rb, L_ADD_STATS, 0, 2, str_v(f->stats));
        else
            slot(&rb, L_ADD_STATS, 0, 1, NULL_V);
        map_slots(&rb, L_ADD_TAG_KEY, L_ADD_TAG_VALUE, 2, NULL, 0);
        row_finish(&rb, runs);
        if ((err = sl_pq_writer_write_levels(pw, runs, errbuf, errlen)))
            goto out;
    }
    /* remove: the tombstones other engines' VACUUM needs */
    for (size_t i = 0; i < n_keep; i++) {
        const sl__delta_tombstone *t = &st->tombstones[keep[i]];
        bool extended = t->partition_values && t->size >= 0;
        row_start(&rb);
        slot(&rb, L_RM_PATH, 0, 2, str_v(t->path));
        slot(&rb, L_RM_TIME, 0, t->deletion_ms >= 0 ? 2 : 1,
             t->deletion_ms >= 0 ? (sl_pq_value){.v.i64 = t->deletion_ms} : NULL_V);
        slot(&rb, L_RM_CHANGE, 0, 2, (sl_pq_value){.v.b = t->data_change});
        slot(&rb, L_RM_EXT, 0, 2, (sl_pq_value){.v.b = extended});
        map_slots(&rb, L_RM_PV_KEY, L_RM_PV_VALUE, 2,
                  t->partition_values ? (t->n_partition_values ? t->partition_values : EMPTY_KV)
                                      : NULL,
                  t->n_partition_values);
        slot(&rb, L_RM_SIZE, 0, t->size >= 0 ? 2 : 1,
             t->size >= 0 ? (sl_pq_value){.v.i64 = t->size} : NULL_V);
        row_finish(&rb, runs);
        if ((err = sl_pq_writer_write_levels(pw, runs, errbuf, errlen)))
            goto out;
    }
    err = sl_pq_writer_finish(pw, NULL, errbuf, errlen);
    if (!err && actions)
        *actions = 2 + st->n_txns + st->n_files + n_keep;
out:
    free(keep);
    sl_pq_writer_free(pw);
    row_buf_cleanup(&rb);
    return err;
}

/* ---- decoding ---- */

/* A leaf of the checkpoint as read: its column data over all row groups, and a cursor
 * (the next slot) while rows are walked. Absent leaves have data.n_slots == 0. */
typedef struct ck_leaf {
    const char *path;
    bool present;
    const sl_pq_leaf_info *li;
    sl_pq_column_data cd;
    size_t at;
} ck_leaf;

/* The leaves read, as dotted paths where "*" is any one name: the middle layers of maps
 * and lists are named differently by different writers ("key_value", "entries"; "list",
 * "bag"; "element", "array"). */
static const char *const LEAF_PATHS[N_READ] = {
    "txn.appId",
    "txn.version",
    "txn.lastUpdated",
    "add.path",
    "add.partitionValues.*.key",
    "add.partitionValues.*.value",
    "add.size",
    "add.modificationTime",
    "add.dataChange",
    "add.stats",
    "add.tags.*.key",
    "add.tags.*.value",
    "remove.path",
    "remove.deletionTimestamp",
    "remove.dataChange",
    "remove.extendedFileMetadata",
    "remove.partitionValues.*.key",
    "remove.partitionValues.*.value",
    "remove.size",
    "metaData.id",
    "metaData.name",
    "metaData.description",
    "metaData.format.provider",
    "metaData.format.options.*.key",
    "metaData.format.options.*.value",
    "metaData.schemaString",
    "metaData.partitionColumns.*.*",
    "metaData.configuration.*.key",
    "metaData.configuration.*.value",
    "metaData.createdTime",
    "protocol.minReaderVersion",
    "protocol.minWriterVersion",
    "protocol.readerFeatures.*.*",
    "protocol.writerFeatures.*.*",
    "add.deletionVector.storageType",
    "sidecar.path",
};

/* Whether the dotted path matches pattern ("*" matches one whole name). */
static bool path_matches(const char *pattern, const char *path)
{
    for (;;) {
        const char *pe = strchr(pattern, '.'), *qe = strchr(path, '.');
        size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
        size_t ql = qe ? (size_t)(qe - path) : strlen(path);
        if (!(pl == 1 && pattern[0] == '*') && (pl != ql || memcmp(pattern, path, pl) != 0))
            return false;
        if (!pe || !qe)
            return !pe && !qe;
        pattern = pe + 1;
        path = qe + 1;
    }
}

static bool find_leaf(const sl_pq_reader_t *pr, const char *pattern, size_t *leaf)
{
    for (size_t i = 0; i < sl_pq_reader_leaves(pr); i++)
        if (path_matches(pattern, sl_pq_reader_leaf(pr, i)->path)) {
            *leaf = i;
            return true;
        }
    return false;
}

/* The slots of the current row in leaf l: [*a, *b). */
static void row_slots(ck_leaf *l, size_t *a, size_t *b)
{
    *a = *b = l->at;
    if (!l->present || l->at >= l->cd.n_slots)
        return;
    size_t k = l->at + 1;
    while (l->cd.reps && k < l->cd.n_slots && l->cd.reps[k] != 0)
        k++;
    *b = k;
}

static const sl_pq_value *one(ck_leaf *lv, int leaf)
{
    size_t a, b;
    row_slots(&lv[leaf], &a, &b);
    return b > a && !lv[leaf].cd.values[a].is_null ? &lv[leaf].cd.values[a] : NULL;
}

static json_t *str_json(const sl_pq_value *v)
{
    return v ? json_stringn(v->v.bytes.ptr, v->v.bytes.len) : json_null();
}

/* A map's entries of the current row as a JSON object (NULL when the map is null); a key
 * that is not UTF-8 sets *bad. */
static json_t *map_json(ck_leaf *lv, int key, int value, bool *bad)
{
    size_t a, b, c, d;
    row_slots(&lv[key], &a, &b);
    row_slots(&lv[value], &c, &d);
    if (b == a || !lv[key].present)
        return NULL;
    json_t *o = json_object();
    for (size_t k = a; o && k < b; k++) {
        const sl_pq_value *kv = &lv[key].cd.values[k];
        if (kv->is_null)
            continue; /* null or empty map */
        size_t vk = c + (k - a);
        const sl_pq_value *vv = lv[value].present && vk < d && !lv[value].cd.values[vk].is_null
                                    ? &lv[value].cd.values[vk]
                                    : NULL;
        if (json_object_setn_new(o, kv->v.bytes.ptr, kv->v.bytes.len, str_json(vv)))
            *bad = true;
    }
    return o;
}

/* A list of strings of the current row as a JSON array (NULL when the list is null). */
static json_t *list_json(ck_leaf *lv, int leaf)
{
    size_t a, b;
    row_slots(&lv[leaf], &a, &b);
    if (b == a || !lv[leaf].present ||
        (lv[leaf].cd.defs && lv[leaf].cd.defs[a] < 2 && lv[leaf].li->max_def >= 3))
        return NULL;
    json_t *arr = json_array();
    for (size_t k = a; arr && k < b; k++)
        if (!lv[leaf].cd.values[k].is_null)
            json_array_append_new(arr, str_json(&lv[leaf].cd.values[k]));
    return arr;
}

static void set_opt(json_t *o, const char *k, json_t *v)
{
    if (v)
        json_object_set_new(o, k, v);
}

/* The JSON action line of the current row, appended to out[0] (metaData), out[1]
 * (protocol), out[2] (remove) or out[3] (the rest): applied in that order, the table's
 * rules are checked before its files, as in the JSON commits of Spark, and a checkpoint
 * that (against the protocol) both adds and removes a path keeps it active. Nothing for a
 * row that holds none of the actions read here. */
static sl_err row_action(ck_leaf *lv, sl_buf out[4])
{
    json_t *line = NULL, *a = json_object();
    const char *kind = NULL;
    const sl_pq_value *v;
    bool bad = false;
    if (!a)
        return SL_ERR_NOMEM;
    if ((v = one(lv, L_ADD_PATH))) {
        kind = "add";
        json_object_set_new(a, "path", str_json(v));
        set_opt(a, "partitionValues", map_json(lv, L_ADD_PV_KEY, L_ADD_PV_VALUE, &bad));
        if (!json_object_get(a, "partitionValues"))
            json_object_set_new(a, "partitionValues", json_object());
        if ((v = one(lv, L_ADD_SIZE)))
            json_object_set_new(a, "size", json_integer(v->v.i64));
        if ((v = one(lv, L_ADD_MTIME)))
            json_object_set_new(a, "modificationTime", json_integer(v->v.i64));
        if ((v = one(lv, L_ADD_CHANGE)))
            json_object_set_new(a, "dataChange", json_boolean(v->v.b));
        if ((v = one(lv, L_ADD_STATS)))
            json_object_set_new(a, "stats", str_json(v));
        if ((v = one(lv, L_ADD_DV))) /* refused by the log's rules, naming the feature */
            json_object_set_new(a, "deletionVector",
                                json_pack("{s:o}", "storageType", str_json(v)));
    } else if ((v = one(lv, L_RM_PATH))) {
        kind = "remove";
        json_object_set_new(a, "path", str_json(v));
        if ((v = one(lv, L_RM_TIME)))
            json_object_set_new(a, "deletionTimestamp", json_integer(v->v.i64));
        if ((v = one(lv, L_RM_CHANGE)))
            json_object_set_new(a, "dataChange", json_boolean(v->v.b));
        set_opt(a, "partitionValues", map_json(lv, L_RM_PV_KEY, L_RM_PV_VALUE, &bad));
        if ((v = one(lv, L_RM_SIZE)))
            json_object_set_new(a, "size", json_integer(v->v.i64));
    } else if ((v = one(lv, L_TXN_APP))) {
        kind = "txn";
        json_object_set_new(a, "appId", str_json(v));
        if ((v = one(lv, L_TXN_VERSION)))
            json_object_set_new(a, "version", json_integer(v->v.i64));
    } else if ((v = one(lv, L_MD_ID))) {
        kind = "metaData";
        json_object_set_new(a, "id", str_json(v));
        set_opt(a, "schemaString", (v = one(lv, L_MD_SCHEMA)) ? str_json(v) : NULL);
        json_t *fmt = json_object();
        set_opt(fmt, "provider", (v = one(lv, L_MD_PROVIDER)) ? str_json(v) : NULL);
        json_object_set_new(a, "format", fmt);
        set_opt(a, "partitionColumns", list_json(lv, L_MD_PART));
        if (!json_object_get(a, "partitionColumns"))
            json_object_set_new(a, "partitionColumns", json_array());
        set_opt(a, "configuration", map_json(lv, L_MD_CONF_KEY, L_MD_CONF_VALUE, &bad));
    } else if ((v = one(lv, L_PROTO_READER))) {
        kind = "protocol";
        json_object_set_new(a, "minReaderVersion", json_integer(v->v.i32));
        if ((v = one(lv, L_PROTO_WRITER)))
            json_object_set_new(a, "minWriterVersion", json_integer(v->v.i32));
        set_opt(a, "readerFeatures", list_json(lv, L_PROTO_RFEAT));
        set_opt(a, "writerFeatures", list_json(lv, L_PROTO_WFEAT));
    }
    if (one(lv, L_SIDECAR)) { /* the files are listed elsewhere: refuse, never miss them */
        json_decref(a);
        return SL_ERR_UNSUPPORTED;
    }
    if (bad) {
        json_decref(a);
        return SL_ERR_CORRUPT;
    }
    sl_err err = SL_OK;
    if (kind) {
        line = json_object();
        if (!line) {
            err = SL_ERR_NOMEM;
            goto out;
        }
        json_object_set(line, kind, a);
        sl_buf *o = &out[!strcmp(kind, "metaData")   ? 0
                         : !strcmp(kind, "protocol") ? 1
                         : !strcmp(kind, "remove")   ? 2
                                                     : 3];
        char *s = json_dumps(line, JSON_COMPACT);
        if (!s || (err = sl_buf_append(o, s, strlen(s))) || (err = sl_buf_append(o, "\n", 1)))
            err = err ? err : SL_ERR_NOMEM;
        free(s);
    }
out:
    json_decref(line);
    json_decref(a);
    for (int i = 0; i < N_READ; i++) {
        size_t x, y;
        row_slots(&lv[i], &x, &y);
        lv[i].at = y > x ? y : x;
    }
    return err;
}

sl_err sl__delta_checkpoint_decode(const void *data, size_t len, int64_t version,
                                   sl__delta_state *st, char *errbuf, size_t errlen)
{
    sl_err err;
    sl_pq_reader_t *pr = NULL;
    sl_buf lines[4];
    ck_leaf lv[N_READ];
    char perr[384];
    for (int k = 0; k < 4; k++)
        sl_buf_init(&lines[k], SL__DELTA_MAX_COMMIT_BYTES);
    if ((err = sl_pq_reader_open(data, len, NULL, &pr, perr, sizeof perr))) {
        sl_errbuf_set(errbuf, errlen, err, "checkpoint %" PRId64 ": %s", version, perr);
        goto out;
    }
    memset(lv, 0, sizeof lv);
    for (size_t g = 0; g < sl_pq_reader_row_groups(pr); g++) {
        uint64_t rows = sl_pq_reader_row_group_rows(pr, g);
        for (int i = 0; i < N_READ; i++) {
            size_t leaf;
            lv[i].path = LEAF_PATHS[i];
            lv[i].at = 0;
            lv[i].present = find_leaf(pr, LEAF_PATHS[i], &leaf);
            if (!lv[i].present)
                continue;
            lv[i].li = sl_pq_reader_leaf(pr, leaf);
            if ((err = sl_pq_reader_read_column(pr, g, leaf, &lv[i].cd, perr, sizeof perr))) {
                sl_errbuf_set(errbuf, errlen, err, "checkpoint %" PRId64 ": %s", version, perr);
                goto out;
            }
        }
        for (uint64_t r = 0; r < rows; r++)
            if ((err = row_action(lv, lines))) {
                sl_errbuf_set(errbuf, errlen, err,
                              err == SL_ERR_UNSUPPORTED ? "checkpoint %" PRId64
                                                          ": sidecar files (v2 checkpoints) are "
                                                          "not supported"
                              : err == SL_ERR_CORRUPT
                                  ? "checkpoint %" PRId64 ": a map key that is not UTF-8"
                                  : "checkpoint %" PRId64 ": its actions do not fit in %u bytes",
                              version, SL__DELTA_MAX_COMMIT_BYTES);
                goto out;
            }
        sl_pq_reader_reset(pr);
    }
    st->version = version - 1;
    for (int k = 1; k < 4 && !err; k++)
        err = sl_buf_append(&lines[0], lines[k].data ? lines[k].data : "", lines[k].len);
    if (err) {
        sl_errbuf_set(errbuf, errlen, err,
                      "checkpoint %" PRId64 ": its actions do not fit in %u bytes", version,
                      SL__DELTA_MAX_COMMIT_BYTES);
        goto out;
    }
    err = sl__delta_state_apply(st, version, lines[0].data ? lines[0].data : "", lines[0].len,
                                errbuf, errlen);
out:
    sl_pq_reader_free(pr);
    for (int k = 0; k < 4; k++)
        sl_buf_cleanup(&lines[k]);
    return err;
}

/* ---- on the store: writing, finding and expiring checkpoints ---- */

#define LAST_CHECKPOINT_KEY "_delta_log/_last_checkpoint"
/* A checkpoint (or _last_checkpoint) larger than this is refused rather than loaded. */
#define CHECKPOINT_MAX_BYTES ((size_t)1 << 30)
#define TOMBSTONE_MS         (INT64_C(7) * 86400000)

int64_t sl__delta_interval_ms(const char *s)
{
    /* "interval N UNIT", as Delta writes durations (CalendarInterval syntax). */
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"millisecond", 1}, {"second", 1000},  {"minute", 60000},
                 {"hour", 3600000},  {"day", 86400000}, {"week", 604800000}};
    char unit[32];
    long long n;
    int used = 0;
    if (sscanf(s, " interval %lld %31s %n", &n, unit, &used) != 2 || s[used] != '\0' || n < 0)
        return -1;
    size_t ul = strlen(unit);
    if (ul > 1 && unit[ul - 1] == 's')
        unit[--ul] = '\0';
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(unit, units[i].unit))
            return n > INT64_MAX / units[i].ms ? INT64_MAX : (int64_t)n * units[i].ms;
    return -1;
}

void sl__delta_checkpoint_key(int64_t version, char out[SL__DELTA_CK_KEY_MAX])
{
    snprintf(out, SL__DELTA_CK_KEY_MAX, "_delta_log/%020" PRId64 ".checkpoint.parquet", version);
}

sl_err sl__delta_checkpoint_put(sl_storage_t *store, const sl__delta_state *st,
                                int64_t tombstones_from_ms, char *errbuf, size_t errlen)
{
    char key[SL__DELTA_CK_KEY_MAX], detail[400];
    sl_buf data;
    sl_err err;
    size_t actions = 0;
    sl_buf_init(&data, CHECKPOINT_MAX_BYTES);
    if ((err = sl__delta_checkpoint_encode(st, tombstones_from_ms, &data, &actions, detail,
                                           sizeof detail))) {
        sl_errbuf_set(errbuf, errlen, err, "checkpoint %" PRId64 " of \"%s\": %s", st->version,
                      sl_storage_uri(store), detail);
        goto out;
    }
    /* The checkpoint first, then the hint that points at it: a reader never follows the
     * hint to a missing file (if it did, it would fall back to listing). Rewriting a
     * checkpoint of the same version writes the same table, so a plain PUT will do. */
    sl__delta_checkpoint_key(st->version, key);
    if ((err = sl_storage_put(store, key, data.data, data.len, errbuf, errlen)))
        goto out;
    size_t bytes = data.len;
    sl_buf_reset(&data);
    if ((err = sl_buf_appendf(&data, "{\"version\":%" PRId64 ",\"size\":%zu,\"sizeInBytes\":%zu}",
                              st->version, actions, bytes)) ||
        (err = sl_storage_put(store, LAST_CHECKPOINT_KEY, data.data, data.len, errbuf, errlen)))
        goto out;
out:
    sl_buf_cleanup(&data);
    return err;
}

sl_err sl__delta_checkpoint_load(sl_storage_t *store, int64_t version, sl__delta_state *st,
                                 char *errbuf, size_t errlen)
{
    char key[SL__DELTA_CK_KEY_MAX], detail[400];
    sl_buf data;
    sl_buf_init(&data, CHECKPOINT_MAX_BYTES);
    sl__delta_checkpoint_key(version, key);
    sl_err err = sl_storage_get(store, key, &data, errbuf, errlen);
    if (!err && (err = sl__delta_checkpoint_decode(data.data, data.len, version, st, detail,
                                                   sizeof detail)))
        sl_errbuf_set(errbuf, errlen, err, "table \"%s\": %s", sl_storage_uri(store), detail);
    sl_buf_cleanup(&data);
    return err;
}

sl_err sl__delta_last_checkpoint(sl_storage_t *store, int64_t *version, char *errbuf, size_t errlen)
{
    sl_buf data;
    json_error_t jerr;
    sl_buf_init(&data, 1 << 20);
    sl_err err = sl_storage_get(store, LAST_CHECKPOINT_KEY, &data, errbuf, errlen);
    if (!err) {
        json_t *o = json_loadb(data.data ? data.data : "", data.len, 0, &jerr);
        json_t *v = json_object_get(o, "version"), *parts = json_object_get(o, "parts");
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT, "\"%s\" of \"%s\" holds no version",
                                LAST_CHECKPOINT_KEY, sl_storage_uri(store));
        else if (parts && !(json_is_integer(parts) && json_integer_value(parts) == 1))
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                                "table \"%s\": multi-part checkpoints are not supported",
                                sl_storage_uri(store));
        else if (json_object_get(o, "v2Checkpoint"))
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                                "table \"%s\": v2 checkpoints are not supported",
                                sl_storage_uri(store));
        else
            *version = json_integer_value(v);
        json_decref(o);
    }
    sl_buf_cleanup(&data);
    return err;
}

/* What the expiry listing found: versioned log entries older than the cut. */
typedef struct expiry {
    int64_t before; /* versions below this may go (the newest checkpoint) */
    int64_t cut_ms; /* ... if last modified before this */
    char (*keys)[SL__DELTA_CK_KEY_MAX];
    size_t n, cap;
    sl_err fail;
} expiry;

static sl_err expiry_entry(void *opaque, const sl_storage_entry *e)
{
    expiry *ex = opaque;
    const char *name = e->key + strlen("_delta_log/");
    int64_t v = 0;
    size_t len = strlen(name);
    if (len < 21 || strchr(name, '/'))
        return SL_OK;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return SL_OK;
        v = v * 10 + (name[i] - '0');
    }
    bool commit = !strcmp(name + 20, ".json");
    bool checkpoint =
        !strncmp(name + 20, ".checkpoint.", 12) && len >= 8 && !strcmp(name + len - 8, ".parquet");
    if ((!commit && !checkpoint) || v >= ex->before || e->mtime_ms >= ex->cut_ms ||
        strlen(e->key) >= sizeof ex->keys[0])
        return SL_OK;
    if (ex->n >= SL__DELTA_MAX_VERSIONS)
        return ex->fail = SL_ERR_TOO_LARGE;
    void *grown = sl_grow(ex->keys, ex->n, &ex->cap, 64, sizeof *ex->keys);
    if (!grown)
        return ex->fail = SL_ERR_NOMEM;
    ex->keys = grown;
    snprintf(ex->keys[ex->n++], sizeof ex->keys[0], "%s", e->key);
    return SL_OK;
}

sl_err sl__delta_log_expire(sl_storage_t *store, int64_t checkpoint_version, int64_t retention_ms,
                            int64_t now_ms, size_t *removed, char *errbuf, size_t errlen)
{
    expiry ex = {.before = checkpoint_version, .cut_ms = now_ms - retention_ms};
    *removed = 0;
    sl_err err = sl_storage_list(store, "_delta_log/", NULL, expiry_entry, &ex, errbuf, errlen);
    if (err && err == ex.fail)
        err = sl_errbuf_set(errbuf, errlen, err, "table \"%s\": too many log entries to expire",
                            sl_storage_uri(store));
    /* Oldest first (the store lists keys in order, and versions are zero-padded), so the
     * log that remains is always a suffix that starts at or before the checkpoint. */
    for (size_t i = 0; !err && i < ex.n; i++) {
        err = sl_storage_delete(store, ex.keys[i], errbuf, errlen);
        if (err == SL_ERR_NOT_FOUND) /* another writer expired it first */
            err = SL_OK;
        else if (!err)
            ++*removed;
    }
    free(ex.keys);
    return err;
}

sl_err sl_delta_checkpoint(sl_storage_t *store, int64_t version, int64_t default_retention_ms,
                           int64_t now_ms, size_t *expired, char *errbuf, size_t errlen)
{
    sl_delta_snapshot_t *snap = NULL;
    *expired = 0;
    sl_err err = sl__delta_snapshot_load_tombstones(store, version, &snap, errbuf, errlen);
    if (err)
        return err;
    const sl__delta_state *st = sl__delta_snapshot_state(snap);
    int64_t retention = st->log_retention_ms >= 0 ? st->log_retention_ms : default_retention_ms;
    /* Tombstones stay for the Delta default of deletedFileRetentionDuration (a week, also
     * VACUUM's default retention), whatever the log's own retention. */
    int64_t tombstones_from = now_ms - TOMBSTONE_MS;
    if ((err = sl__delta_checkpoint_put(store, st, tombstones_from, errbuf, errlen)))
        goto out;
    if (retention >= 0)
        err = sl__delta_log_expire(store, version, retention, now_ms, expired, errbuf, errlen);
out:
    sl_delta_snapshot_free(snap);
    return err;
}
