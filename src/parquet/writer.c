/* The Parquet writer of parquet.h. Rows are split into columnar buffers as they arrive
 * (levels, plain values or dictionary indices); a full row group is cut into data pages,
 * compressed and written to the output stream; the footer goes out at finish.
 *
 * Invariants:
 *  1. Every column of a flat schema holds one level slot per row of the open row group; a
 *     leaf under a list or map holds one or more per row, the first at repetition level 0.
 *  2. A column chunk is either dictionary-encoded so far (dict_on: idx holds one entry
 *     index per non-null value, vals/data hold nothing) or plain (vals/data hold the
 *     values); a dictionary that outgrows dictionary_bytes is converted to plain once.
 *  3. A row is validated and every buffer it needs is reserved before any is changed, so
 *     a refused row leaves no trace (prepare_value, then commit_value which cannot fail).
 *  4. pw->mem counts every byte allocated for buffers and stays <= the cap.
 * States: open -> (write_row)* -> finish -> done; any output failure -> broken. */
#include "parquet/parquet_int.h"

#include <math.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/grow.h"
#include "core/hash.h"

#define SL_PQ_CREATED_BY_DEFAULT "sluice version 0.1.0"
/* Level slots per data page at most, whatever page_bytes says (num_values is an int32,
 * and readers allocate per page). */
#define PAGE_MAX_SLOTS ((size_t)1 << 20)
/* The largest dictionary_bytes honoured. */
#define DICT_MAX_BYTES ((size_t)1 << 30)
/* A column gives up its dictionary after DICT_PROBE_FIRST values if more than 99 % of them
 * were distinct (keys, timestamps), or after DICT_PROBE_VALUES if more than 90 % were. */
#define DICT_PROBE_FIRST  1024
#define DICT_PROBE_VALUES 16384
/* A BYTE_ARRAY value must fit a page, whose sizes are int32. */
#define MAX_VALUE_BYTES ((size_t)INT32_MAX - 1024)

typedef struct pq_stats {
    uint64_t nulls;
    bool has;             /* min/max hold something */
    sl_pq_value min, max; /* fixed-width bounds (bytes: see minb/maxb) */
    sl_buf minb, maxb;    /* BYTE_ARRAY bounds */
} pq_stats;

typedef struct pq_col {
    const char *name; /* the leaf's own name (meta arena) */
    sl_pq_type type;
    sl_pq_logical logical;
    sl_pq_repetition repetition;
    int max_def;  /* flat: 0 REQUIRED, 1 OPTIONAL; nested: one per optional/repeated node */
    int max_rep;  /* 0 unless the leaf has a repeated ancestor (a list or a map) */
    size_t width; /* bytes of one plain fixed-width value in vals; 0 for BYTE_ARRAY */

    sl_buf defs;        /* uint8 definition level per slot (when max_def > 0) */
    size_t n_slots;     /* level slots in the open chunk (flat: rows) */
    size_t n_vals;      /* non-null values in the open chunk */
    size_t plain_bytes; /* PLAIN size of the values so far */

    sl_buf vals; /* plain fixed-width values (BOOLEAN: one byte each) */
    sl_buf data; /* plain BYTE_ARRAY bytes, values back to back */
    sl_buf offs; /* size_t end offset of each BYTE_ARRAY value in data */

    bool dict_on;
    sl_buf idx;            /* uint32 entry per non-null value */
    sl_buf dvals;          /* fixed-width entries */
    sl_buf ddata;          /* BYTE_ARRAY entries back to back */
    sl_buf doffs;          /* size_t end offset per BYTE_ARRAY entry */
    struct dict_slot *tab; /* open addressing, power-of-two size, at most half full */
    size_t tab_slots;
    size_t n_entries;
    size_t dict_bytes; /* PLAIN size of the entries */

    /* The value being written, from hash_ahead through prepare to commit. */
    uint64_t p_bits; /* fixed-width value, zero-extended */
    uint32_t p_hash;
    uint32_t p_entry; /* the entry, or the free table slot when p_new */
    bool p_new;
    bool p_min, p_max; /* BYTE_ARRAY: the value is a new chunk min / max */

    pq_stats chunk, file;

    /* Nested schemas only (kept last: the fields above are the per-row hot path). */
    sl_buf reps;      /* uint8 repetition level per slot (when max_rep > 0) */
    sl__pq_str *path; /* names from the root's child to the leaf (in the meta arena) */
    size_t n_path;
} pq_col;

struct sl_pq_writer {
    sl_ostream *out;
    sl_pq_writer_options opts;
    char *created_by;
    pq_col *cols;
    size_t n_cols;
    uint64_t rows;   /* all rows written */
    size_t rg_rows;  /* rows in the open row group */
    size_t buffered; /* uncompressed bytes of the open row group */
    uint64_t base;   /* out->written when the file started: offsets count from here */
    size_t mem, mem_cap;
    /* What reserve() may fill up to: row_limit while rows are buffered, mem_cap while a
     * row group is encoded; the difference is headroom for pages, so a writer whose rows
     * were refused at the cap can still finish its file. */
    size_t limit, row_limit;
    bool broken, finished;
    sl_buf page, comp, hdr; /* scratch for one page */
    ZSTD_CCtx *zctx;
    sl__pq_arena meta; /* footer metadata: row groups, statistics copies */
    sl__pq_row_group *rgs;
    size_t n_rgs, rgs_alloc;
    sl_pq_column_stats *info;   /* for sl_pq_file_info */
    bool nested;                /* made by sl_pq_writer_new_nested: rows come with levels */
    sl__pq_schema_elem *schema; /* the whole tree, depth first, root first (meta arena) */
    size_t n_schema;
};

/* ---- memory budget ---- */

/* Grows b to hold extra more bytes within the writer's budget (invariant 4). */
static sl_err reserve(sl_pq_writer_t *pw, sl_buf *b, size_t extra)
{
    if (extra < b->alloc - b->len) /* alloc > len always once allocated: the NUL */
        return SL_OK;
    size_t old = b->alloc;
    size_t room = pw->limit > pw->mem ? pw->limit - pw->mem : 0;
    b->cap = room + old > 0 ? room + old - 1 : 0;
    sl_err err = sl_buf_reserve(b, extra);
    pw->mem += b->alloc - old;
    return err;
}

static inline void put(sl_buf *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* ---- options, schema ---- */

void sl_pq_writer_options_default(sl_pq_writer_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->codec = SL_PQ_SNAPPY;
    opts->zstd_level = 3;
    opts->row_group_bytes = 128u << 20;
    opts->page_bytes = 1u << 20;
    opts->created_by = SL_PQ_CREATED_BY_DEFAULT;
    opts->dictionary_bytes = 1u << 20;
    opts->max_buffered_bytes = 0; /* computed from row_group_bytes */
}

static const char *type_name(sl_pq_type t)
{
    static const char *const names[] = {"BOOLEAN", "INT32", "INT64", "DOUBLE", "BYTE_ARRAY"};
    return (unsigned)t < 5 ? names[t] : "?";
}

static bool logical_fits(sl_pq_type t, sl_pq_logical l)
{
    switch (l) {
    case SL_PQ_LOGICAL_NONE:
        return true;
    case SL_PQ_LOGICAL_STRING:
    case SL_PQ_LOGICAL_JSON:
        return t == SL_PQ_BYTE_ARRAY;
    case SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC:
        return t == SL_PQ_INT64;
    case SL_PQ_LOGICAL_DATE:
        return t == SL_PQ_INT32;
    }
    return false;
}

static size_t type_width(sl_pq_type t)
{
    switch (t) {
    case SL_PQ_BOOLEAN:
        return 1;
    case SL_PQ_INT32:
        return 4;
    case SL_PQ_INT64:
    case SL_PQ_DOUBLE:
        return 8;
    case SL_PQ_BYTE_ARRAY:
        return 0;
    }
    return 0;
}

/* Checks one leaf's name, type and logical type (where names the node for messages). */
static sl_err check_leaf(const sl_pq_node *nd, char *errbuf, size_t errlen)
{
    if ((unsigned)nd->type > SL_PQ_BYTE_ARRAY || (unsigned)nd->logical > SL_PQ_LOGICAL_JSON)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "column \"%s\": unknown type or logical type", nd->name);
    if (!logical_fits(nd->type, nd->logical))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "column \"%s\": logical type %d does not fit %s", nd->name,
                             (int)nd->logical, type_name(nd->type));
    return SL_OK;
}

#define MAX_NODES 10000
#define MAX_DEPTH 16

/* Checks the tree under fields[0..n) (names, kinds, arity, repetitions, duplicate
 * sibling names) and counts its leaves and schema elements. */
static sl_err check_nodes(const sl_pq_node *fields, size_t n, int depth, size_t *leaves,
                          size_t *elems, char *errbuf, size_t errlen)
{
    sl_err err;
    if (n == 0 || depth > MAX_DEPTH)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             n ? "a parquet schema nests deeper than %d levels"
                               : "a parquet group needs at least one field (depth %d)",
                             depth);
    for (size_t i = 0; i < n; i++) {
        const sl_pq_node *nd = &fields[i];
        if (!nd->name || !nd->name[0])
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "field %zu has no name", i);
        if (!sl__pq_utf8_is_valid(nd->name, strlen(nd->name)))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "field %zu: name is not UTF-8", i);
        if ((unsigned)nd->repetition > SL_PQ_OPTIONAL || (unsigned)nd->kind > SL_PQ_NODE_MAP)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                 "field \"%s\": unknown kind or repetition", nd->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(fields[j].name, nd->name) == 0)
                return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                     "field name \"%s\" appears twice", nd->name);
        *elems += nd->kind == SL_PQ_NODE_LIST || nd->kind == SL_PQ_NODE_MAP ? 2 : 1;
        if (*elems > MAX_NODES)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                 "a parquet schema of more than %d nodes", MAX_NODES);
        switch (nd->kind) {
        case SL_PQ_NODE_LEAF:
            if ((err = check_leaf(nd, errbuf, errlen)))
                return err;
            ++*leaves;
            continue;
        case SL_PQ_NODE_STRUCT:
            break;
        case SL_PQ_NODE_LIST:
            if (nd->n_children != 1)
                return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                     "list \"%s\" needs exactly one child (its element)", nd->name);
            break;
        case SL_PQ_NODE_MAP:
            if (nd->n_children != 2 || nd->children[0].kind != SL_PQ_NODE_LEAF ||
                nd->children[0].repetition != SL_PQ_REQUIRED)
                return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                     "map \"%s\" needs two children: a required leaf key, "
                                     "then the value",
                                     nd->name);
            break;
        }
        if (!nd->children)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "group \"%s\" has no children",
                                 nd->name);
        if ((err = check_nodes(nd->children, nd->n_children, depth + 1, leaves, elems, errbuf,
                               errlen)))
            return err;
    }
    return SL_OK;
}

static void schema_group(sl__pq_schema_elem *se, const char *name, int32_t repetition,
                         int32_t children)
{
    memset(se, 0, sizeof *se);
    se->name.ptr = name;
    se->name.len = strlen(name);
    se->type = se->converted_type = -1;
    se->repetition = repetition;
    se->num_children = children;
}

/* Fills the schema element of a leaf (name points into the meta arena or the node). */
static void schema_leaf(const sl_pq_node *nd, const char *name, sl__pq_schema_elem *se)
{
    static const int32_t phys[] = {SL__PQT_BOOLEAN, SL__PQT_INT32, SL__PQT_INT64, SL__PQT_DOUBLE,
                                   SL__PQT_BYTE_ARRAY};
    schema_group(se, name, nd->repetition == SL_PQ_OPTIONAL ? 1 : 0, -1);
    se->type = phys[nd->type];
    switch (nd->logical) {
    case SL_PQ_LOGICAL_NONE:
        break;
    case SL_PQ_LOGICAL_STRING:
        se->converted_type = SL__PQC_UTF8;
        se->logical.kind = SL__PQL_STRING;
        break;
    case SL_PQ_LOGICAL_JSON:
        se->converted_type = SL__PQC_JSON;
        se->logical.kind = SL__PQL_JSON;
        break;
    case SL_PQ_LOGICAL_DATE:
        se->converted_type = SL__PQC_DATE;
        se->logical.kind = SL__PQL_DATE;
        break;
    case SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC:
        se->converted_type = SL__PQC_TIMESTAMP_MICROS;
        se->logical.kind = SL__PQL_TIMESTAMP;
        se->logical.ts_utc = true;
        se->logical.ts_unit = SL__PQU_MICROS;
        break;
    }
}

/* Where build_nodes is in the tree: the path so far and the levels it adds up. */
typedef struct build_ctx {
    sl_pq_writer_t *pw;
    size_t elem, leaf;
    sl__pq_str path[2 * MAX_DEPTH + 2];
    size_t depth;
} build_ctx;

static char *arena_strdup(sl__pq_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *d = sl__pq_arena_alloc(a, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static sl_err push_path(build_ctx *bc, const char *name)
{
    char *copy = arena_strdup(&bc->pw->meta, name);
    if (!copy)
        return SL_ERR_NOMEM;
    bc->path[bc->depth].ptr = copy;
    bc->path[bc->depth].len = strlen(copy);
    bc->depth++;
    return SL_OK;
}

/* Lays the checked tree out depth first into pw->schema and pw->cols: a list is
 * `<rep> group (LIST) { repeated group list { element } }`, a map
 * `<rep> group (MAP) { repeated group key_value { required key; value } }`. */
static sl_err build_nodes(build_ctx *bc, const sl_pq_node *fields, size_t n, int rep, int def)
{
    sl_err err;
    sl_pq_writer_t *pw = bc->pw;
    for (size_t i = 0; i < n; i++) {
        const sl_pq_node *nd = &fields[i];
        int d = def + (nd->repetition == SL_PQ_OPTIONAL);
        size_t depth = bc->depth;
        sl__pq_schema_elem *se = &pw->schema[bc->elem++];
        if ((err = push_path(bc, nd->name)))
            return err;
        const char *name = bc->path[bc->depth - 1].ptr;
        int32_t r = nd->repetition == SL_PQ_OPTIONAL ? 1 : 0;
        if (nd->kind == SL_PQ_NODE_LEAF) {
            pq_col *c = &pw->cols[bc->leaf++];
            schema_leaf(nd, name, se);
            c->name = name;
            c->type = nd->type;
            c->logical = nd->logical;
            c->repetition = d > def ? SL_PQ_OPTIONAL : SL_PQ_REQUIRED;
            c->max_def = d;
            c->max_rep = rep;
            c->width = type_width(c->type);
            c->dict_on = c->type != SL_PQ_BOOLEAN;
            c->n_path = bc->depth;
            if (!(c->path = sl__pq_arena_alloc(&pw->meta, bc->depth * sizeof *c->path)))
                return SL_ERR_NOMEM;
            memcpy(c->path, bc->path, bc->depth * sizeof *c->path);
        } else if (nd->kind == SL_PQ_NODE_STRUCT) {
            schema_group(se, name, r, (int32_t)nd->n_children);
            if ((err = build_nodes(bc, nd->children, nd->n_children, rep, d)))
                return err;
        } else {
            bool list = nd->kind == SL_PQ_NODE_LIST;
            schema_group(se, name, r, 1);
            se->converted_type = list ? 3 : 1; /* ConvertedType LIST / MAP */
            se->logical.kind = list ? 3 : 2;   /* LogicalType LIST / MAP */
            sl__pq_schema_elem *mid = &pw->schema[bc->elem++];
            if ((err = push_path(bc, list ? "list" : "key_value")))
                return err;
            schema_group(mid, bc->path[bc->depth - 1].ptr, 2 /* REPEATED */,
                         (int32_t)nd->n_children);
            if ((err = build_nodes(bc, nd->children, nd->n_children, rep + 1, d + 1)))
                return err;
        }
        bc->depth = depth;
    }
    return SL_OK;
}

static sl_err writer_create(const sl_pq_node *fields, size_t n_fields, bool nested,
                            const sl_pq_writer_options *opts, sl_ostream *out, sl_pq_writer_t **pwp,
                            char *errbuf, size_t errlen)
{
    sl_pq_writer_options def;
    sl_pq_writer_t *pw = NULL;
    sl_err err;
    size_t n_leaves = 0, n_elems = 1;
    *pwp = NULL;
    sl_pq_writer_options_default(&def);
    if (!opts)
        opts = &def;
    if ((err = check_nodes(fields, n_fields, 0, &n_leaves, &n_elems, errbuf, errlen)))
        return err;
    if ((unsigned)opts->codec > SL_PQ_ZSTD)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "unknown parquet codec %d",
                             (int)opts->codec);
    pw = calloc(1, sizeof *pw);
    if (!pw)
        return SL_ERR_NOMEM;
    pw->out = out;
    pw->opts = *opts;
    pw->nested = nested;
    if (!pw->opts.row_group_bytes)
        pw->opts.row_group_bytes = def.row_group_bytes;
    if (!pw->opts.page_bytes)
        pw->opts.page_bytes = def.page_bytes;
    if (!pw->opts.dictionary_bytes)
        pw->opts.dictionary_bytes = def.dictionary_bytes;
    if (pw->opts.dictionary_bytes > DICT_MAX_BYTES) /* offsets in dict_slot are 32-bit */
        pw->opts.dictionary_bytes = DICT_MAX_BYTES;
    if (!pw->opts.zstd_level)
        pw->opts.zstd_level = def.zstd_level;
    pw->mem_cap = pw->opts.max_buffered_bytes;
    if (!pw->mem_cap)
        pw->mem_cap = pw->opts.row_group_bytes > (SIZE_MAX - (64u << 20)) / 2
                          ? SIZE_MAX
                          : pw->opts.row_group_bytes * 2 + (64u << 20);
    size_t headroom = pw->opts.page_bytes < pw->mem_cap / 8 ? 3 * pw->opts.page_bytes + (256u << 10)
                                                            : pw->mem_cap / 2;
    if (headroom > pw->mem_cap / 2)
        headroom = pw->mem_cap / 2;
    pw->limit = pw->row_limit = pw->mem_cap - headroom;
    /* The schema's names and paths live in the meta arena too; it gets their size on top
     * of the cap, so a small cap still holds a wide schema. */
    sl__pq_arena_init(&pw->meta, pw->mem_cap + n_elems * (sizeof(sl__pq_schema_elem) + 1024));
    pw->created_by = strdup(opts->created_by ? opts->created_by : SL_PQ_CREATED_BY_DEFAULT);
    pw->cols = calloc(n_leaves, sizeof *pw->cols);
    pw->info = calloc(n_leaves, sizeof *pw->info);
    pw->schema = sl__pq_arena_alloc(&pw->meta, n_elems * sizeof *pw->schema);
    if (!pw->created_by || !pw->cols || !pw->info || !pw->schema) {
        err = SL_ERR_NOMEM;
        goto out;
    }
    pw->n_cols = n_leaves;
    pw->n_schema = n_elems;
    schema_group(&pw->schema[0], "schema", -1, (int32_t)n_fields);
    build_ctx bc = {.pw = pw, .elem = 1};
    if ((err = build_nodes(&bc, fields, n_fields, 0, 0)))
        goto out;
    if (pw->opts.codec == SL_PQ_ZSTD && !(pw->zctx = ZSTD_createCCtx())) {
        err = SL_ERR_NOMEM;
        goto out;
    }
    pw->base = out->written;
    if ((err = out->write(out, "PAR1", 4))) {
        sl_errbuf_set(errbuf, errlen, err, "could not start the parquet file: %s", out->errbuf);
        goto out;
    }
    *pwp = pw;
    return SL_OK;
out:
    sl_pq_writer_free(pw);
    if (err == SL_ERR_NOMEM)
        sl_errbuf_set(errbuf, errlen, err, "out of memory starting a parquet writer");
    return err;
}

sl_err sl_pq_writer_new(const sl_pq_column *columns, size_t n_columns,
                        const sl_pq_writer_options *opts, sl_ostream *out, sl_pq_writer_t **pwp,
                        char *errbuf, size_t errlen)
{
    sl_err err;
    *pwp = NULL;
    if (n_columns == 0 || n_columns > 10000)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "a parquet schema needs 1 to 10000 columns, not %zu", n_columns);
    sl_pq_node *nodes = calloc(n_columns, sizeof *nodes);
    if (!nodes)
        return SL_ERR_NOMEM;
    for (size_t i = 0; i < n_columns; i++) {
        nodes[i].name = columns[i].name;
        nodes[i].kind = SL_PQ_NODE_LEAF;
        nodes[i].repetition = columns[i].repetition;
        nodes[i].type = columns[i].type;
        nodes[i].logical = columns[i].logical;
    }
    err = writer_create(nodes, n_columns, false, opts, out, pwp, errbuf, errlen);
    free(nodes);
    return err;
}

sl_err sl_pq_writer_new_nested(const sl_pq_node *fields, size_t n_fields,
                               const sl_pq_writer_options *opts, sl_ostream *out,
                               sl_pq_writer_t **pwp, char *errbuf, size_t errlen)
{
    return writer_create(fields, n_fields, true, opts, out, pwp, errbuf, errlen);
}

size_t sl_pq_writer_leaves(const sl_pq_writer_t *pw)
{
    return pw->n_cols;
}

void sl_pq_writer_leaf_levels(const sl_pq_writer_t *pw, size_t leaf, int *max_rep, int *max_def)
{
    *max_rep = pw->cols[leaf].max_rep;
    *max_def = pw->cols[leaf].max_def;
}

/* ---- statistics ---- */

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* Whether v would become the new min (-1) / max (+1) of st; fixed-width types only. */
static bool fixed_less(sl_pq_type t, const sl_pq_value *a, const sl_pq_value *b)
{
    switch (t) {
    case SL_PQ_BOOLEAN:
        return a->v.b < b->v.b;
    case SL_PQ_INT32:
        return a->v.i32 < b->v.i32;
    case SL_PQ_INT64:
        return a->v.i64 < b->v.i64;
    case SL_PQ_DOUBLE:
        return a->v.f64 < b->v.f64;
    default:
        return false;
    }
}

/* Folds a fixed-width value into st. NaN never becomes a bound. */
static void stats_fixed(sl_pq_type t, pq_stats *st, const sl_pq_value *v)
{
    if (t == SL_PQ_DOUBLE && isnan(v->v.f64))
        return;
    if (!st->has) {
        st->min = st->max = *v;
        st->has = true;
        return;
    }
    if (fixed_less(t, v, &st->min))
        st->min = *v;
    if (fixed_less(t, &st->max, v))
        st->max = *v;
}

/* BYTE_ARRAY bounds in two steps (invariant 3): prepare compares (p, n) with st's bounds,
 * remembers the outcome in *newmin / *newmax and reserves room; commit copies. */
static sl_err bytes_bound_prepare(sl_pq_writer_t *pw, pq_stats *st, const char *p, size_t n,
                                  bool *newmin, bool *newmax)
{
    sl_err err;
    *newmin = !st->has || cmp_bytes(p, n, st->minb.data, st->minb.len) < 0;
    *newmax = !st->has || cmp_bytes(p, n, st->maxb.data, st->maxb.len) > 0;
    if (*newmin && (err = reserve(pw, &st->minb, n > st->minb.len ? n - st->minb.len : 0)))
        return err;
    if (*newmax && (err = reserve(pw, &st->maxb, n > st->maxb.len ? n - st->maxb.len : 0)))
        return err;
    return SL_OK;
}

static void set_bytes(sl_buf *b, const char *p, size_t n)
{
    b->len = 0;
    put(b, p, n);
}

static void bytes_bound_commit(pq_stats *st, const char *p, size_t n, bool newmin, bool newmax)
{
    if (newmin)
        set_bytes(&st->minb, p, n);
    if (newmax)
        set_bytes(&st->maxb, p, n);
    st->has = true;
}

static sl_err stats_bytes_prepare(sl_pq_writer_t *pw, pq_col *c, const char *p, size_t n)
{
    return bytes_bound_prepare(pw, &c->chunk, p, n, &c->p_min, &c->p_max);
}

static void stats_bytes_commit(pq_col *c, const char *p, size_t n)
{
    bytes_bound_commit(&c->chunk, p, n, c->p_min, c->p_max);
}

/* Parquet's rule for zero bounds of floating point columns: a zero min is written -0.0
 * and a zero max +0.0, so a reader's pruning is right whichever zero the data holds. */
static void stats_fix_zeros(pq_col *c, pq_stats *st)
{
    if (c->type != SL_PQ_DOUBLE || !st->has)
        return;
    if (st->min.v.f64 == 0.0)
        st->min.v.f64 = -0.0;
    if (st->max.v.f64 == 0.0)
        st->max.v.f64 = 0.0;
}

static void stats_reset(pq_stats *st)
{
    st->nulls = 0;
    st->has = false;
    sl_buf_reset(&st->minb);
    sl_buf_reset(&st->maxb);
}

/* ---- dictionary ---- */

/* Slots of the open-addressing table: entry + 1 (0 = empty), 32 bits of the value's hash
 * and the value itself (fixed-width) or where its bytes are in ddata, so a probe touches
 * one slot and, for BYTE_ARRAY, the bytes: each a cache miss once dictionaries are big. */
typedef struct dict_slot {
    uint32_t entry1;
    uint32_t hash;
    union {
        uint64_t fixed; /* the value, zero-extended */
        struct {
            uint32_t off, len;
        } bytes;
    } u;
} dict_slot;

static uint64_t fixed_bits(const void *p, size_t width)
{
    uint64_t w = 0;
    memcpy(&w, p, width);
    return w;
}

static uint32_t hash_fixed(uint64_t w)
{
    w ^= w >> 32;
    w *= 0xd6e8feb86659fd93u;
    w ^= w >> 32;
    w *= 0xd6e8feb86659fd93u;
    return (uint32_t)(w ^ (w >> 32));
}

static uint32_t hash_bytes(const void *p, size_t n)
{
    uint64_t h = sl_hash_bytes(p, n);
    return (uint32_t)(h ^ (h >> 32));
}

static const char *entry_bytes(const pq_col *c, size_t e, size_t *len)
{
    const size_t *offs = (const size_t *)c->doffs.data;
    size_t start = e ? offs[e - 1] : 0;
    *len = offs[e] - start;
    return c->ddata.data + start;
}

/* Finds the value (p, n; bits for fixed-width) in the table: true with *found its entry,
 * or false with *found the free slot for it. */
static inline __attribute__((always_inline)) bool
dict_find(const pq_col *c, const void *p, size_t n, uint64_t bits, uint32_t h, size_t *found)
{
    const dict_slot *tab = c->tab;
    size_t mask = c->tab_slots - 1;
    for (size_t s = h & mask;; s = (s + 1) & mask) {
        const dict_slot *sl = &tab[s];
        if (!sl->entry1) {
            *found = s;
            return false;
        }
        if (sl->hash != h)
            continue;
        if (c->width ? sl->u.fixed == bits
                     : sl->u.bytes.len == n && memcmp(c->ddata.data + sl->u.bytes.off, p, n) == 0) {
            *found = sl->entry1 - 1;
            return true;
        }
    }
}

/* Doubles the table (or creates it) and moves the slots over. calloc, not malloc and
 * memset: big tables come zeroed from the kernel, page by page as they are touched. */
static sl_err dict_grow_table(sl_pq_writer_t *pw, pq_col *c)
{
    size_t old = c->tab_slots;
    size_t slots = old ? old * 2 : 1024;
    if (slots * sizeof(dict_slot) > (pw->limit > pw->mem ? pw->limit - pw->mem : 0))
        return SL_ERR_TOO_LARGE;
    dict_slot *tab = calloc(slots, sizeof *tab);
    if (!tab)
        return SL_ERR_NOMEM;
    pw->mem += slots * sizeof *tab;
    for (size_t k = 0; k < old; k++) {
        if (!c->tab[k].entry1)
            continue;
        size_t s = c->tab[k].hash & (slots - 1);
        while (tab[s].entry1)
            s = (s + 1) & (slots - 1);
        tab[s] = c->tab[k];
    }
    free(c->tab);
    pw->mem -= old * sizeof *tab;
    c->tab = tab;
    c->tab_slots = slots;
    return SL_OK;
}

/* Turns the dictionary chunk into a plain one (invariant 2): the values are written out
 * in order from their entries. Either completes or leaves the column as it was. */
static sl_err dict_fallback(sl_pq_writer_t *pw, pq_col *c)
{
    const uint32_t *idx = (const uint32_t *)c->idx.data;
    sl_err err;
    if (c->width) {
        if ((err = reserve(pw, &c->vals, c->n_vals * c->width)))
            return err;
        for (size_t k = 0; k < c->n_vals; k++)
            put(&c->vals, c->dvals.data + idx[k] * c->width, c->width);
    } else {
        if ((err = reserve(pw, &c->offs, c->n_vals * sizeof(size_t))) ||
            (err = reserve(pw, &c->data, c->plain_bytes - 4 * c->n_vals)))
            return err;
        for (size_t k = 0; k < c->n_vals; k++) {
            size_t len;
            const char *p = entry_bytes(c, idx[k], &len);
            put(&c->data, p, len);
            put(&c->offs, &c->data.len, sizeof(size_t));
        }
    }
    c->dict_on = false;
    return SL_OK;
}

static void dict_reset(pq_col *c)
{
    sl_buf_reset(&c->idx);
    sl_buf_reset(&c->dvals);
    sl_buf_reset(&c->ddata);
    sl_buf_reset(&c->doffs);
    if (c->tab_slots)
        memset(c->tab, 0, c->tab_slots * sizeof *c->tab);
    c->n_entries = 0;
    c->dict_bytes = 0;
    c->dict_on = c->type != SL_PQ_BOOLEAN;
}

/* ---- rows ---- */

/* The plain bytes of a non-null value: p/n (fixed-width values point into v). */
static const void *value_bytes(const pq_col *c, const sl_pq_value *v, size_t *n)
{
    switch (c->type) {
    case SL_PQ_BOOLEAN:
        *n = 1;
        return &v->v.b;
    case SL_PQ_INT32:
        *n = 4;
        return &v->v.i32;
    case SL_PQ_INT64:
        *n = 8;
        return &v->v.i64;
    case SL_PQ_DOUBLE:
        *n = 8;
        return &v->v.f64;
    case SL_PQ_BYTE_ARRAY:
        *n = v->v.bytes.len;
        return *n ? v->v.bytes.ptr : ""; /* {NULL, 0} is the empty string */
    }
    *n = 0;
    return NULL;
}

/* always_inline: write_row's per-row loop is the hot path; a second caller
 * (write_levels) must not turn it into calls. */
static inline __attribute__((always_inline)) sl_err
check_value(const pq_col *c, const sl_pq_value *v, char *errbuf, size_t errlen)
{
    if (v->is_null) {
        if (c->repetition == SL_PQ_REQUIRED)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                 "null in the required column \"%s\"", c->name);
        return SL_OK;
    }
    if (c->type != SL_PQ_BYTE_ARRAY)
        return SL_OK;
    if (!v->v.bytes.ptr && v->v.bytes.len)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "column \"%s\": NULL pointer with length %zu", c->name,
                             v->v.bytes.len);
    if (v->v.bytes.len > MAX_VALUE_BYTES)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                             "column \"%s\": a value of %zu bytes is over the limit of %zu",
                             c->name, v->v.bytes.len, MAX_VALUE_BYTES);
    if ((c->logical == SL_PQ_LOGICAL_STRING || c->logical == SL_PQ_LOGICAL_JSON) &&
        !sl__pq_utf8_is_valid(v->v.bytes.ptr, v->v.bytes.len))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "column \"%s\": value is not valid UTF-8", c->name);
    return SL_OK;
}

/* Invariant 3: everything that can fail for this value happens here (lookups, growth,
 * a dictionary fallback, which does not change the data). */
/* always_inline: write_row's per-row loop is the hot path; a second caller
 * (write_levels) must not turn it into calls. */
static inline __attribute__((always_inline)) sl_err prepare_value(sl_pq_writer_t *pw, pq_col *c,
                                                                  const sl_pq_value *v)
{
    sl_err err;
    size_t n;
    const void *p;
    if (c->max_def && (err = reserve(pw, &c->defs, 1)))
        return err;
    if (v->is_null)
        return SL_OK;
    p = value_bytes(c, v, &n);
    /* A column whose values are mostly distinct gains nothing from a dictionary: give it
     * up early instead of hashing until dictionary_bytes is reached. */
    if (c->dict_on &&
        ((c->n_vals == DICT_PROBE_FIRST && c->n_entries * 100 > c->n_vals * 99) ||
         (c->n_vals == DICT_PROBE_VALUES && c->n_entries * 10 > c->n_vals * 9)) &&
        (err = dict_fallback(pw, c)))
        return err;
    if (c->dict_on) {
        uint64_t bits = c->p_bits; /* from hash_ahead */
        uint32_t h = c->p_hash;
        size_t found;
        if ((c->n_entries + 1) * 2 > c->tab_slots && (err = dict_grow_table(pw, c)))
            return err;
        c->p_new = !dict_find(c, p, n, bits, h, &found);
        c->p_entry = (uint32_t)found;
        if (!c->p_new)
            return reserve(pw, &c->idx, 4);
        size_t esize = c->width ? c->width : 4 + n;
        if (c->dict_bytes + esize <= pw->opts.dictionary_bytes && c->n_entries < UINT32_MAX - 1) {
            if ((err = reserve(pw, &c->idx, 4)) ||
                (!c->width && (err = stats_bytes_prepare(pw, c, p, n))))
                return err;
            if (c->width)
                return reserve(pw, &c->dvals, c->width);
            if ((err = reserve(pw, &c->doffs, sizeof(size_t))))
                return err;
            return reserve(pw, &c->ddata, n);
        }
        if ((err = dict_fallback(pw, c)))
            return err;
    }
    if (c->width)
        return reserve(pw, &c->vals, c->width);
    if ((err = stats_bytes_prepare(pw, c, p, n)) || (err = reserve(pw, &c->offs, sizeof(size_t))))
        return err;
    return reserve(pw, &c->data, n);
}

/* d is the slot's definition level (flat: 0 null, 1 not), written when max_def > 0. */
/* always_inline: write_row's per-row loop is the hot path; a second caller
 * (write_levels) must not turn it into calls. */
static inline __attribute__((always_inline)) void commit_value(sl_pq_writer_t *pw, pq_col *c,
                                                               const sl_pq_value *v, uint8_t d)
{
    size_t n;
    const void *p;
    if (c->max_def)
        put(&c->defs, &d, 1);
    c->n_slots++;
    pw->buffered++;
    if (v->is_null) {
        c->chunk.nulls++;
        return;
    }
    p = value_bytes(c, v, &n);
    size_t psize = c->width ? c->width : 4 + n;
    c->plain_bytes += psize;
    pw->buffered += psize;
    c->n_vals++;
    if (c->dict_on) {
        uint32_t e = c->p_entry;
        if (c->p_new) {
            dict_slot *sl = &c->tab[c->p_entry];
            e = (uint32_t)c->n_entries++;
            sl->entry1 = e + 1;
            sl->hash = c->p_hash;
            if (c->width) {
                sl->u.fixed = fixed_bits(p, c->width);
                put(&c->dvals, p, c->width);
            } else {
                sl->u.bytes.off = (uint32_t)c->ddata.len;
                sl->u.bytes.len = (uint32_t)n;
                put(&c->ddata, p, n);
                put(&c->doffs, &c->ddata.len, sizeof(size_t));
            }
            c->dict_bytes += psize;
            /* every value equals an entry: bounds over the entries are the chunk's */
            if (c->width)
                stats_fixed(c->type, &c->chunk, v);
            else
                stats_bytes_commit(c, p, n);
        }
        put(&c->idx, &e, 4);
        return;
    }
    if (c->width) {
        put(&c->vals, p, c->width);
        stats_fixed(c->type, &c->chunk, v);
    } else {
        put(&c->data, p, n);
        put(&c->offs, &c->data.len, sizeof(size_t));
        stats_bytes_commit(c, p, n);
    }
}

/* Lookups in big dictionaries are cache misses; a row touches about one per column. So
 * the hashes are computed and the first slots prefetched for all columns first, then the
 * bytes those slots point at, and only then are the lookups done: the misses overlap
 * instead of coming one after another. */
/* always_inline: write_row's per-row loop is the hot path; a second caller
 * (write_levels) must not turn it into calls. */
static inline __attribute__((always_inline)) void hash_ahead(pq_col *c, const sl_pq_value *v)
{
    size_t n;
    if (!c->dict_on || v->is_null)
        return;
    const void *p = value_bytes(c, v, &n);
    c->p_bits = c->width ? fixed_bits(p, c->width) : 0;
    c->p_hash = c->width ? hash_fixed(c->p_bits) : hash_bytes(p, n);
    if (c->tab_slots)
        __builtin_prefetch(&c->tab[c->p_hash & (c->tab_slots - 1)]);
}

static void prefetch_entry(const pq_col *c, const sl_pq_value *v)
{
    if (!c->dict_on || v->is_null || c->width || !c->tab_slots)
        return;
    const dict_slot *sl = &c->tab[c->p_hash & (c->tab_slots - 1)];
    if (sl->entry1 && sl->hash == c->p_hash)
        __builtin_prefetch(c->ddata.data + sl->u.bytes.off);
}

static sl_err flush_row_group(sl_pq_writer_t *pw, char *errbuf, size_t errlen);

sl_err sl_pq_writer_write_row(sl_pq_writer_t *pw, const sl_pq_value *values, char *errbuf,
                              size_t errlen)
{
    sl_err err;
    if (pw->broken || pw->finished)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CLOSED, "the parquet writer is %s",
                             pw->finished ? "finished" : "broken");
    if (pw->nested)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "a nested parquet writer takes rows with levels");
    for (size_t i = 0; i < pw->n_cols; i++) {
        if ((err = check_value(&pw->cols[i], &values[i], errbuf, errlen)))
            return err;
        hash_ahead(&pw->cols[i], &values[i]);
    }
    for (size_t i = 0; i < pw->n_cols; i++)
        prefetch_entry(&pw->cols[i], &values[i]);
    for (size_t i = 0; i < pw->n_cols; i++) {
        if ((err = prepare_value(pw, &pw->cols[i], &values[i])))
            return sl_errbuf_set(errbuf, errlen, err,
                                 "column \"%s\": the row does not fit the writer's memory "
                                 "limit of %zu bytes (%s)",
                                 pw->cols[i].name, pw->mem_cap, sl_strerror(err));
    }
    for (size_t i = 0; i < pw->n_cols; i++)
        commit_value(pw, &pw->cols[i], &values[i], values[i].is_null ? 0 : 1);
    pw->rows++;
    pw->rg_rows++;
    if (pw->buffered >= pw->opts.row_group_bytes)
        return flush_row_group(pw, errbuf, errlen);
    return SL_OK;
}

/* Checks one leaf's levels for a row: the row starts at repetition level 0 and no other
 * slot does, levels stay within the leaf's maxima, a value is there exactly where the
 * definition level is the maximum and passes check_value. */
static sl_err check_run(const pq_col *c, const sl_pq_leaf_run *run, char *errbuf, size_t errlen)
{
    sl_err err;
    if (run->n == 0 || run->n > PAGE_MAX_SLOTS || (!run->defs && c->max_def) ||
        (!run->reps && c->max_rep) || (c->max_rep == 0 && run->n != 1))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "column \"%s\": %zu level slots for one row (or levels missing)",
                             c->name, run->n);
    for (size_t k = 0; k < run->n; k++) {
        int r = run->reps ? run->reps[k] : 0, d = run->defs ? run->defs[k] : 0;
        if ((k == 0) != (r == 0) || r > c->max_rep || d > c->max_def)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                                 "column \"%s\": levels (%d, %d) out of place at slot %zu", c->name,
                                 r, d, k);
        sl_pq_value v = run->values[k];
        v.is_null = d < c->max_def;
        if (!v.is_null && (err = check_value(c, &v, errbuf, errlen)))
            return err;
    }
    return SL_OK;
}

sl_err sl_pq_writer_write_levels(sl_pq_writer_t *pw, const sl_pq_leaf_run *runs, char *errbuf,
                                 size_t errlen)
{
    sl_err err;
    if (pw->broken || pw->finished)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CLOSED, "the parquet writer is %s",
                             pw->finished ? "finished" : "broken");
    for (size_t i = 0; i < pw->n_cols; i++)
        if ((err = check_run(&pw->cols[i], &runs[i], errbuf, errlen)))
            return err;
    /* Levels and values go in slot by slot; a refusal past this point (memory) would leave
     * half a row, so it breaks the writer (see parquet.h). */
    for (size_t i = 0; i < pw->n_cols; i++) {
        pq_col *c = &pw->cols[i];
        const sl_pq_leaf_run *run = &runs[i];
        for (size_t k = 0; k < run->n; k++) {
            sl_pq_value v = run->values[k];
            uint8_t d = run->defs ? run->defs[k] : 0;
            v.is_null = d < c->max_def;
            hash_ahead(c, &v);
            if ((c->max_rep && (err = reserve(pw, &c->reps, 1))) ||
                (err = prepare_value(pw, c, &v))) {
                pw->broken = true;
                return sl_errbuf_set(errbuf, errlen, err,
                                     "column \"%s\": a nested row does not fit the writer's "
                                     "memory limit of %zu bytes (%s); the writer is broken",
                                     c->name, pw->mem_cap, sl_strerror(err));
            }
            if (c->max_rep)
                put(&c->reps, &run->reps[k], 1);
            commit_value(pw, c, &v, d);
        }
    }
    pw->rows++;
    pw->rg_rows++;
    if (pw->buffered >= pw->opts.row_group_bytes)
        return flush_row_group(pw, errbuf, errlen);
    return SL_OK;
}

uint64_t sl_pq_writer_rows(const sl_pq_writer_t *pw)
{
    return pw->rows;
}

bool sl_pq_writer_is_broken(const sl_pq_writer_t *pw)
{
    return pw->broken;
}

/* ---- pages ---- */

typedef struct chunk_out {
    int64_t uncompressed, compressed; /* page headers included */
} chunk_out;

/* The offset in the file of the next byte written. */
static int64_t pos(const sl_pq_writer_t *pw)
{
    return (int64_t)(pw->out->written - pw->base);
}

static sl_err out_write(sl_pq_writer_t *pw, const void *p, size_t n, char *errbuf, size_t errlen)
{
    sl_err err = pw->out->write(pw->out, p, n);
    if (err)
        return sl_errbuf_set(errbuf, errlen, err, "could not write the parquet file: %s",
                             pw->out->errbuf);
    return SL_OK;
}

/* Compresses pw->page and writes header + body. ph has everything but the sizes. */
static sl_err write_page(sl_pq_writer_t *pw, sl__pq_page_header *ph, chunk_out *co, char *errbuf,
                         size_t errlen)
{
    sl_err err;
    const char *body = pw->page.data;
    size_t blen = pw->page.len;
    sl_buf_reset(&pw->comp);
    if (pw->opts.codec == SL_PQ_SNAPPY) {
        size_t clen = snappy_max_compressed_length(blen);
        if ((err = reserve(pw, &pw->comp, clen)))
            goto nomem;
        if (snappy_compress(pw->page.data, blen, pw->comp.data, &clen) != SNAPPY_OK)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL, "snappy failed on a page");
        body = pw->comp.data;
        blen = clen;
    } else if (pw->opts.codec == SL_PQ_ZSTD) {
        size_t bound = ZSTD_compressBound(blen);
        if ((err = reserve(pw, &pw->comp, bound)))
            goto nomem;
        size_t clen = ZSTD_compressCCtx(pw->zctx, pw->comp.data, bound, pw->page.data, blen,
                                        pw->opts.zstd_level);
        if (ZSTD_isError(clen))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_INTERNAL, "zstd failed on a page: %s",
                                 ZSTD_getErrorName(clen));
        body = pw->comp.data;
        blen = clen;
    }
    if (pw->page.len > INT32_MAX || blen > INT32_MAX)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                             "a parquet page of %zu bytes is over 2 GiB", pw->page.len);
    ph->uncompressed_page_size = (int32_t)pw->page.len;
    ph->compressed_page_size = (int32_t)blen;
    sl_buf_reset(&pw->hdr);
    if ((err = reserve(pw, &pw->hdr, 128)) || (err = sl__pq_page_header_encode(ph, &pw->hdr)))
        goto nomem;
    if ((err = out_write(pw, pw->hdr.data, pw->hdr.len, errbuf, errlen)) ||
        (err = out_write(pw, body, blen, errbuf, errlen)))
        return err;
    co->uncompressed += (int64_t)(pw->hdr.len + pw->page.len);
    co->compressed += (int64_t)(pw->hdr.len + blen);
    return SL_OK;
nomem:
    return sl_errbuf_set(errbuf, errlen, err,
                         "no room for a page within the writer's memory limit of %zu bytes",
                         pw->mem_cap);
}

/* Appends the PLAIN encoding of plain values [v0, v1) to pw->page. */
static sl_err plain_values(sl_pq_writer_t *pw, const pq_col *c, size_t v0, size_t v1)
{
    sl_err err;
    size_t n = v1 - v0;
    if (c->type == SL_PQ_BOOLEAN) { /* bit-packed, LSB first */
        if ((err = reserve(pw, &pw->page, (n + 7) / 8)))
            return err;
        uint8_t *q = (uint8_t *)pw->page.data + pw->page.len;
        memset(q, 0, (n + 7) / 8);
        for (size_t k = 0; k < n; k++)
            q[k / 8] |= (uint8_t)((uint8_t)c->vals.data[v0 + k] << (k % 8));
        pw->page.len += (n + 7) / 8;
        return SL_OK;
    }
    if (c->width) {
        if ((err = reserve(pw, &pw->page, n * c->width)))
            return err;
        put(&pw->page, c->vals.data + v0 * c->width, n * c->width);
        return SL_OK;
    }
    const size_t *offs = (const size_t *)c->offs.data;
    size_t start = v0 ? offs[v0 - 1] : 0;
    if ((err = reserve(pw, &pw->page, 4 * n + offs[v1 - 1] - start)))
        return err;
    for (size_t k = v0; k < v1; k++) {
        uint32_t len = (uint32_t)(offs[k] - start);
        put(&pw->page, &len, 4);
        put(&pw->page, c->data.data + start, len);
        start = offs[k];
    }
    return SL_OK;
}

/* Appends the PLAIN encoding of the dictionary entries [e0, e1) (or of the entries the
 * indices idx[e0..e1) name, when idx is not NULL) to pw->page. */
static sl_err plain_entries(sl_pq_writer_t *pw, const pq_col *c, const uint32_t *idx, size_t e0,
                            size_t e1)
{
    sl_err err;
    for (size_t k = e0; k < e1; k++) {
        size_t e = idx ? idx[k] : k, len = c->width;
        const char *p = c->width ? c->dvals.data + e * c->width : entry_bytes(c, e, &len);
        if ((err = reserve(pw, &pw->page, 4 + len)))
            return err;
        if (!c->width) {
            uint32_t l32 = (uint32_t)len;
            put(&pw->page, &l32, 4);
        }
        put(&pw->page, p, len);
    }
    return SL_OK;
}

/* The PLAIN size of non-null value k of the chunk (plain or dictionary). */
static size_t value_size(const pq_col *c, size_t k)
{
    if (c->width)
        return c->width;
    if (c->dict_on) {
        size_t len;
        entry_bytes(c, ((const uint32_t *)c->idx.data)[k], &len);
        return 4 + len;
    }
    const size_t *offs = (const size_t *)c->offs.data;
    return 4 + offs[k] - (k ? offs[k - 1] : 0);
}

/* Appends levels as data page v1 has them: a 4-byte length, then the RLE hybrid. */
static sl_err put_levels(sl_pq_writer_t *pw, const uint8_t *levels, size_t n, int max)
{
    sl_err err;
    int bw = sl__pq_bit_width((uint32_t)max);
    size_t at = pw->page.len;
    if ((err = reserve(pw, &pw->page, 4 + sl__pq_rle_bound(n, bw))))
        return err;
    put(&pw->page, "\0\0\0\0", 4);
    if ((err = sl__pq_rle_encode_u8(levels, n, bw, &pw->page)))
        return err;
    uint32_t len = (uint32_t)(pw->page.len - at - 4);
    memcpy(pw->page.data + at, &len, 4);
    return SL_OK;
}

/* Writes the chunk of column c: dictionary page if used, then data pages. */
static sl_err write_chunk(sl_pq_writer_t *pw, pq_col *c, bool use_dict, int64_t *dict_off,
                          int64_t *data_off, chunk_out *co, char *errbuf, size_t errlen)
{
    sl_err err = SL_OK;
    sl__pq_page_header ph;
    int bw = use_dict ? sl__pq_bit_width(c->n_entries ? (uint32_t)c->n_entries - 1 : 0) : 0;
    if (use_dict && bw == 0)
        bw = 1; /* some readers mishandle width 0 */
    *dict_off = -1;
    if (use_dict) {
        *dict_off = pos(pw);
        sl_buf_reset(&pw->page);
        if ((err = plain_entries(pw, c, NULL, 0, c->n_entries)))
            goto nomem;
        memset(&ph, 0, sizeof ph);
        ph.type = SL__PQP_DICTIONARY;
        ph.has_dict = true;
        ph.num_values = (int32_t)c->n_entries;
        ph.encoding = SL__PQE_PLAIN;
        if ((err = write_page(pw, &ph, co, errbuf, errlen)))
            return err;
    }
    *data_off = pos(pw);
    const uint8_t *defs = (const uint8_t *)c->defs.data;
    const uint8_t *reps = (const uint8_t *)c->reps.data;
    const uint32_t *idx = (const uint32_t *)c->idx.data;
    const uint8_t max_def = (uint8_t)c->max_def; /* locals: page writes may alias c */
    const bool repeated = c->max_rep > 0;
    size_t s0 = 0, v0 = 0;
    do { /* one page: slots [s0, s1), values [v0, v1); a page holds at least one slot */
        size_t s1 = s0, v1 = v0, est = 0;
        if (!c->max_def && c->width && !use_dict) {
            size_t per = pw->opts.page_bytes / c->width + 1;
            if (per > PAGE_MAX_SLOTS)
                per = PAGE_MAX_SLOTS;
            s1 = c->n_slots - s0 < per ? c->n_slots : s0 + per;
            v1 = s1;
        } else {
            size_t unit = use_dict ? 0 : 1; /* dictionary pages: count bits below */
            /* A page ends only where a row starts (repetition level 0). */
            while (s1 < c->n_slots &&
                   ((s1 - s0 < PAGE_MAX_SLOTS && (est < pw->opts.page_bytes || s1 == s0)) ||
                    (repeated && reps[s1]))) {
                if (!max_def || defs[s1] == max_def) {
                    est += unit ? value_size(c, v1) : 0;
                    v1++;
                }
                s1++;
                if (!unit && ((v1 - v0) * (size_t)bw) / 8 >= pw->opts.page_bytes)
                    est = pw->opts.page_bytes;
            }
        }
        sl_buf_reset(&pw->page);
        if ((c->max_rep && (err = put_levels(pw, reps + s0, s1 - s0, c->max_rep))) ||
            (c->max_def && (err = put_levels(pw, defs + s0, s1 - s0, c->max_def))))
            goto nomem;
        if (use_dict) {
            uint8_t b = (uint8_t)bw;
            if ((err = reserve(pw, &pw->page, 1 + sl__pq_rle_bound(v1 - v0, bw))))
                goto nomem;
            put(&pw->page, &b, 1);
            if ((err = sl__pq_rle_encode_u32(idx + v0, v1 - v0, bw, &pw->page)))
                goto nomem;
        } else if (c->dict_on) { /* a dictionary that does not pay: PLAIN from entries */
            if ((err = plain_entries(pw, c, idx, v0, v1)))
                goto nomem;
        } else if (v1 > v0 && (err = plain_values(pw, c, v0, v1))) {
            goto nomem;
        }
        memset(&ph, 0, sizeof ph);
        ph.type = SL__PQP_DATA;
        ph.has_data = true;
        ph.num_values = (int32_t)(s1 - s0);
        ph.encoding = use_dict ? SL__PQE_RLE_DICTIONARY : SL__PQE_PLAIN;
        ph.def_encoding = SL__PQE_RLE;
        ph.rep_encoding = SL__PQE_RLE;
        if ((err = write_page(pw, &ph, co, errbuf, errlen)))
            return err;
        s0 = s1;
        v0 = v1;
    } while (s0 < c->n_slots);
    return SL_OK;
nomem:
    return sl_errbuf_set(errbuf, errlen, err,
                         "column \"%s\": no room for a page within the writer's memory limit "
                         "of %zu bytes",
                         c->name, pw->mem_cap);
}

/* The PLAIN bytes of a bound for the footer, copied into the metadata arena. */
static sl_err copy_bound(sl_pq_writer_t *pw, const pq_col *c, const sl_pq_value *v, const sl_buf *b,
                         sl__pq_str *out)
{
    const void *p = b->data;
    size_t n = b->len;
    if (c->width)
        p = value_bytes(c, v, &n);
    char *copy = sl__pq_arena_alloc(&pw->meta, n ? n : 1);
    if (!copy)
        return SL_ERR_TOO_LARGE;
    memcpy(copy, p, n);
    out->ptr = copy;
    out->len = n;
    return SL_OK;
}

/* Merges the chunk's statistics into the file's (for sl_pq_file_info). */
static sl_err stats_merge(sl_pq_writer_t *pw, pq_col *c)
{
    sl_err err;
    pq_stats *ch = &c->chunk, *fs = &c->file;
    fs->nulls += ch->nulls;
    if (!ch->has)
        return SL_OK;
    if (c->width) {
        stats_fixed(c->type, fs, &ch->min);
        stats_fixed(c->type, fs, &ch->max);
        stats_fix_zeros(c, fs);
        return SL_OK;
    }
    for (int k = 0; k < 2; k++) {
        const sl_buf *b = k ? &ch->maxb : &ch->minb;
        bool newmin, newmax;
        if ((err = bytes_bound_prepare(pw, fs, b->data, b->len, &newmin, &newmax)))
            return err;
        bytes_bound_commit(fs, b->data, b->len, newmin, newmax);
    }
    return SL_OK;
}

static sl_err flush_row_group(sl_pq_writer_t *pw, char *errbuf, size_t errlen)
{
    sl_err err = SL_OK;
    sl__pq_row_group *rg;
    pw->limit = pw->mem_cap; /* the headroom is for this */
    sl__pq_row_group *nr = sl_grow(pw->rgs, pw->n_rgs, &pw->rgs_alloc, 8, sizeof *nr);
    if (!nr) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory for a row group");
        goto out;
    }
    pw->rgs = nr;
    rg = &pw->rgs[pw->n_rgs];
    memset(rg, 0, sizeof *rg);
    rg->columns = sl__pq_arena_alloc(&pw->meta, pw->n_cols * sizeof *rg->columns);
    if (!rg->columns)
        goto too_large;
    rg->n_columns = pw->n_cols;
    rg->num_rows = (int64_t)pw->rg_rows;
    rg->file_offset = pos(pw);
    for (size_t i = 0; i < pw->n_cols; i++) {
        pq_col *c = &pw->cols[i];
        sl__pq_col_chunk *cc = &rg->columns[i];
        sl__pq_col_meta *cm = &cc->meta;
        chunk_out co = {0, 0};
        /* Dictionary pays when its page plus the bit-packed indices beat PLAIN. */
        int bw = sl__pq_bit_width(c->n_entries ? (uint32_t)c->n_entries - 1 : 0);
        bool use_dict = c->dict_on && c->n_vals > 0 &&
                        c->dict_bytes + c->n_vals * (size_t)(bw ? bw : 1) / 8 < c->plain_bytes;
        stats_fix_zeros(c, &c->chunk);
        if ((err = write_chunk(pw, c, use_dict, &cm->dictionary_page_offset, &cm->data_page_offset,
                               &co, errbuf, errlen)))
            goto out;
        cc->file_offset =
            cm->dictionary_page_offset >= 0 ? cm->dictionary_page_offset : cm->data_page_offset;
        cc->has_meta = true;
        cm->type = c->type == SL_PQ_BOOLEAN  ? SL__PQT_BOOLEAN
                   : c->type == SL_PQ_INT32  ? SL__PQT_INT32
                   : c->type == SL_PQ_INT64  ? SL__PQT_INT64
                   : c->type == SL_PQ_DOUBLE ? SL__PQT_DOUBLE
                                             : SL__PQT_BYTE_ARRAY;
        cm->encodings = sl__pq_arena_alloc(&pw->meta, 3 * sizeof *cm->encodings);
        if (!cm->encodings)
            goto too_large;
        cm->encodings[cm->n_encodings++] = SL__PQE_PLAIN;
        if (c->max_def || c->max_rep)
            cm->encodings[cm->n_encodings++] = SL__PQE_RLE;
        if (use_dict)
            cm->encodings[cm->n_encodings++] = SL__PQE_RLE_DICTIONARY;
        cm->path = c->path;
        cm->n_path = c->n_path;
        cm->codec = pw->opts.codec == SL_PQ_SNAPPY ? 1 : pw->opts.codec == SL_PQ_ZSTD ? 6 : 0;
        cm->num_values = (int64_t)c->n_slots;
        cm->total_uncompressed_size = co.uncompressed;
        cm->total_compressed_size = co.compressed;
        cm->has_stats = true;
        cm->stats.has_null_count = true;
        cm->stats.null_count = (int64_t)c->chunk.nulls;
        if (c->chunk.has) {
            if (copy_bound(pw, c, &c->chunk.min, &c->chunk.minb, &cm->stats.min_value) ||
                copy_bound(pw, c, &c->chunk.max, &c->chunk.maxb, &cm->stats.max_value))
                goto too_large;
            cm->stats.has_min = cm->stats.has_max = true;
        }
        rg->total_byte_size += co.uncompressed;
        rg->total_compressed_size += co.compressed;
        if ((err = stats_merge(pw, c))) {
            sl_errbuf_set(errbuf, errlen, err, "no room for statistics of column \"%s\"", c->name);
            goto out;
        }
        /* The chunk is out: empty the column for the next row group. */
        stats_reset(&c->chunk);
        dict_reset(c);
        sl_buf_reset(&c->defs);
        sl_buf_reset(&c->reps);
        sl_buf_reset(&c->vals);
        sl_buf_reset(&c->data);
        sl_buf_reset(&c->offs);
        c->n_slots = c->n_vals = c->plain_bytes = 0;
    }
    pw->n_rgs++;
    pw->rg_rows = 0;
    pw->buffered = 0;
    pw->limit = pw->row_limit;
    return SL_OK;
too_large:
    err =
        sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                      "parquet metadata over the writer's memory limit of %zu bytes", pw->mem_cap);
out:
    pw->broken = true;
    return err;
}

/* ---- footer ---- */

sl_err sl_pq_writer_finish(sl_pq_writer_t *pw, sl_pq_file_info *info, char *errbuf, size_t errlen)
{
    sl_err err;
    sl__pq_file_meta fm;
    uint8_t tail[8];
    if (pw->broken || pw->finished)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CLOSED, "the parquet writer is %s",
                             pw->finished ? "finished" : "broken");
    pw->finished = true;
    if (pw->rg_rows && (err = flush_row_group(pw, errbuf, errlen)))
        return err;
    memset(&fm, 0, sizeof fm);
    fm.version = 1;
    fm.n_schema = pw->n_schema;
    fm.schema = pw->schema;
    fm.num_rows = (int64_t)pw->rows;
    fm.row_groups = pw->rgs;
    fm.n_row_groups = pw->n_rgs;
    fm.has_created_by = true;
    fm.created_by.ptr = pw->created_by;
    fm.created_by.len = strlen(pw->created_by);
    fm.n_column_orders = pw->n_cols;
    sl_buf_reset(&pw->page);
    pw->page.cap = pw->mem_cap; /* the footer is not part of the row buffers' budget */
    if ((err = sl__pq_file_meta_encode(&fm, &pw->page))) {
        sl_errbuf_set(errbuf, errlen, err, "could not encode the parquet footer: %s",
                      sl_strerror(err));
        goto out;
    }
    uint32_t flen = (uint32_t)pw->page.len;
    for (int k = 0; k < 4; k++)
        tail[k] = (uint8_t)(flen >> (8 * k));
    memcpy(tail + 4, "PAR1", 4);
    if ((err = out_write(pw, pw->page.data, pw->page.len, errbuf, errlen)) ||
        (err = out_write(pw, tail, 8, errbuf, errlen)))
        goto out;
    if ((err = pw->out->flush(pw->out))) {
        sl_errbuf_set(errbuf, errlen, err, "could not flush the parquet file: %s", pw->out->errbuf);
        goto out;
    }
    if (info) {
        for (size_t i = 0; i < pw->n_cols; i++) {
            const pq_col *c = &pw->cols[i];
            sl_pq_column_stats *cs = &pw->info[i];
            cs->null_count = c->file.nulls;
            cs->has_min_max = c->file.has;
            cs->min = c->file.min;
            cs->max = c->file.max;
            if (!c->width && c->file.has) {
                cs->min.v.bytes.ptr = c->file.minb.data;
                cs->min.v.bytes.len = c->file.minb.len;
                cs->max.v.bytes.ptr = c->file.maxb.data;
                cs->max.v.bytes.len = c->file.maxb.len;
            }
            cs->min.is_null = cs->max.is_null = !c->file.has;
        }
        info->rows = pw->rows;
        info->file_bytes = (uint64_t)pos(pw);
        info->n_columns = pw->n_cols;
        info->columns = pw->info;
    }
    return SL_OK;
out:
    pw->broken = true;
    return err;
}

void sl_pq_writer_free(sl_pq_writer_t *pw)
{
    if (!pw)
        return;
    for (size_t i = 0; pw->cols && i < pw->n_cols; i++) {
        pq_col *c = &pw->cols[i];
        sl_buf *bufs[] = {&c->defs,       &c->reps,      &c->vals,     &c->data,  &c->offs,
                          &c->idx,        &c->dvals,     &c->ddata,    &c->doffs, &c->chunk.minb,
                          &c->chunk.maxb, &c->file.minb, &c->file.maxb};
        for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
            sl_buf_cleanup(bufs[k]);
        free(c->tab);
    }
    free(pw->cols);
    free(pw->info);
    free(pw->created_by);
    free(pw->rgs);
    sl_buf_cleanup(&pw->page);
    sl_buf_cleanup(&pw->comp);
    sl_buf_cleanup(&pw->hdr);
    ZSTD_freeCCtx(pw->zctx);
    sl__pq_arena_cleanup(&pw->meta);
    free(pw);
}
