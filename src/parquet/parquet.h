/* sluice's own Apache Parquet writer: a flat schema (or a tree of structs, lists and maps)
 * of BOOLEAN/INT32/INT64/DOUBLE/BYTE_ARRAY leaf columns (REQUIRED or OPTIONAL, with the STRING,
 * TIMESTAMP(UTC, micros), DATE and JSON logical types), dictionary or PLAIN encoding chosen per
 * column chunk, data page v1, snappy/zstd/uncompressed, column statistics, written row by row to an
 * sl_ostream. Memory per open writer is bounded (max_buffered_bytes).
 *
 * Pointers passed in are borrowed for the call unless a comment says otherwise. A writer
 * is used by one thread at a time. */
#ifndef SL_PARQUET_PARQUET_H
#define SL_PARQUET_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/ostream.h"

typedef enum sl_pq_type {
    SL_PQ_BOOLEAN,
    SL_PQ_INT32,
    SL_PQ_INT64,
    SL_PQ_DOUBLE,
    SL_PQ_BYTE_ARRAY
} sl_pq_type;

/* Which physical type each logical type needs: STRING and JSON on BYTE_ARRAY (values
 * must be UTF-8), TIMESTAMP_MICROS_UTC on INT64 (microseconds since the epoch, UTC), DATE
 * on INT32 (days since 1970-01-01). */
typedef enum sl_pq_logical {
    SL_PQ_LOGICAL_NONE,
    SL_PQ_LOGICAL_STRING,
    SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC,
    SL_PQ_LOGICAL_DATE,
    SL_PQ_LOGICAL_JSON
} sl_pq_logical;

typedef enum sl_pq_repetition { SL_PQ_REQUIRED, SL_PQ_OPTIONAL } sl_pq_repetition;

typedef enum sl_pq_codec { SL_PQ_UNCOMPRESSED, SL_PQ_SNAPPY, SL_PQ_ZSTD } sl_pq_codec;

typedef struct sl_pq_column { /* one leaf column of a flat schema */
    const char *name;
    sl_pq_type type;
    sl_pq_logical logical;
    sl_pq_repetition repetition;
} sl_pq_column;

typedef struct sl_pq_writer_options {
    sl_pq_codec codec;      /* default SL_PQ_SNAPPY */
    int zstd_level;         /* default 3 */
    size_t row_group_bytes; /* uncompressed target per row group; default 128 MiB */
    size_t page_bytes;      /* uncompressed target per data page; default 1 MiB */
    const char *created_by; /* footer created_by; default "sluice version X" (borrowed for
                               sl_pq_writer_new, copied) */
    /* Additions to the agreed API (0 keeps the default): */
    size_t dictionary_bytes;   /* a column's dictionary may grow to this many bytes before
                                  the chunk falls back to PLAIN; default 1 MiB,
                                  at most 1 GiB */
    size_t max_buffered_bytes; /* hard cap on the memory one writer holds (values, levels,
                                  dictionaries, pages being built); a row that would pass it
                                  less a headroom for pages (3 x page_bytes + 256 KiB, at
                                  most half) fails with SL_ERR_TOO_LARGE, and the file can
                                  still be finished; default row_group_bytes * 2 + 64 MiB */
} sl_pq_writer_options;

void sl_pq_writer_options_default(sl_pq_writer_options *opts);

typedef struct sl_pq_value {
    bool is_null;
    union {
        bool b;
        int32_t i32;
        int64_t i64; /* TIMESTAMP_MICROS_UTC: microseconds since the epoch */
        double f64;
        struct {
            const char *ptr;
            size_t len;
        } bytes;
    } v;
} sl_pq_value;

typedef struct sl_pq_writer sl_pq_writer_t; /* variable name: pw */

/* Starts a file on out (borrowed, must outlive pw): writes the magic. columns (borrowed
 * for the call; names copied) is the flat schema, in file order. SL_ERR_INVALID for an
 * empty schema, an empty or duplicate name, or a logical type on the wrong physical type;
 * the error of out when the magic cannot be written. */
SL_MUST_CHECK sl_err sl_pq_writer_new(const sl_pq_column *columns, size_t n_columns,
                                      const sl_pq_writer_options *opts, sl_ostream *out,
                                      sl_pq_writer_t **pw, char *errbuf, size_t errlen);

/* One row: values[i] for columns[i]; bytes are copied ({NULL, 0} is the empty string).
 * A null in a REQUIRED column, a string that is not UTF-8 in a STRING/JSON column:
 * SL_ERR_INVALID naming the column, and the row is not written (nothing half-written).
 * SL_ERR_TOO_LARGE past max_buffered_bytes (SL_ERR_NOMEM if malloc fails): the row is not
 * written either, and pw stays usable. When the row group reaches row_group_bytes it is
 * encoded, compressed and written to out inside this call (after the row was accepted),
 * so a call can take a while; if that fails (out's error, or no memory for a page), the
 * row is in but pw is broken: sl_pq_writer_is_broken() tells, and only
 * sl_pq_writer_free remains (other calls answer SL_ERR_CLOSED). */
SL_MUST_CHECK sl_err sl_pq_writer_write_row(sl_pq_writer_t *pw, const sl_pq_value *values,
                                            char *errbuf, size_t errlen);

/* Rows so far. */
uint64_t sl_pq_writer_rows(const sl_pq_writer_t *pw);
/* Addition to the agreed API: whether writing a row group or the footer failed, after
 * which the file is unusable (nothing but sl_pq_writer_free is left to do). */
bool sl_pq_writer_is_broken(const sl_pq_writer_t *pw);

typedef struct sl_pq_column_stats {
    uint64_t null_count;
    bool has_min_max;     /* false when every value is null (or, for DOUBLE, NaN) */
    sl_pq_value min, max; /* bytes point into pw, valid until sl_pq_writer_free;
                             strings compare as unsigned bytes (UTF-8 order); doubles
                             ignore NaN, min -0.0 / max +0.0 when a zero is the bound */
} sl_pq_column_stats;

typedef struct sl_pq_file_info {
    uint64_t rows;
    uint64_t file_bytes; /* whole file, footer included */
    size_t n_columns;
    const sl_pq_column_stats *columns; /* n_columns, schema order; valid until free */
} sl_pq_file_info;

/* Writes the last row group and the footer, flushes out. info may be NULL. After it
 * (success or not) pw only accepts sl_pq_writer_free. */
SL_MUST_CHECK sl_err sl_pq_writer_finish(sl_pq_writer_t *pw, sl_pq_file_info *info, char *errbuf,
                                         size_t errlen);

void sl_pq_writer_free(sl_pq_writer_t *pw); /* NULL is a no-op */

/* ---- nested schemas (Delta checkpoints) ----
 * A schema tree of structs, lists and maps over the same leaf types. A LIST is written in
 * the standard three-level layout `<rep> group NAME (LIST) { repeated group list {
 * ELEMENT } }` (name its one child "element"), a MAP as `<rep> group NAME (MAP) {
 * repeated group key_value { required KEY; VALUE } }` (children: a REQUIRED leaf "key",
 * then "value"). Leaves are numbered depth first; each has a maximum repetition level
 * (the lists and maps above it) and definition level (the OPTIONAL nodes and repeated
 * layers above it, itself included). */
typedef enum sl_pq_node_kind {
    SL_PQ_NODE_LEAF,
    SL_PQ_NODE_STRUCT,
    SL_PQ_NODE_LIST,
    SL_PQ_NODE_MAP
} sl_pq_node_kind;

typedef struct sl_pq_node {
    const char *name;
    sl_pq_node_kind kind;
    sl_pq_repetition repetition;
    sl_pq_type type;       /* leaves */
    sl_pq_logical logical; /* leaves */
    const struct sl_pq_node *children;
    size_t n_children;
} sl_pq_node;

/* One leaf's part of a row, already shredded: n level slots (n == 1 when the leaf has no
 * repeated ancestor), reps[k] (NULL when max_rep is 0), defs[k] (NULL when max_def is 0)
 * and values[k], read only where defs[k] is the leaf's max_def. */
typedef struct sl_pq_leaf_run {
    size_t n;
    const uint8_t *reps, *defs;
    const sl_pq_value *values;
} sl_pq_leaf_run;

/* As sl_pq_writer_new for a tree of n_fields top-level fields (borrowed for the call).
 * SL_ERR_INVALID for an empty group, a list without exactly one child, a map whose first
 * child is not a required leaf, duplicate sibling names, a tree deeper than 16 levels or
 * wider than 10,000 nodes. Rows go in with sl_pq_writer_write_levels only. */
SL_MUST_CHECK sl_err sl_pq_writer_new_nested(const sl_pq_node *fields, size_t n_fields,
                                             const sl_pq_writer_options *opts, sl_ostream *out,
                                             sl_pq_writer_t **pw, char *errbuf, size_t errlen);
size_t sl_pq_writer_leaves(const sl_pq_writer_t *pw);
void sl_pq_writer_leaf_levels(const sl_pq_writer_t *pw, size_t leaf, int *max_rep, int *max_def);

/* One row of a nested writer: runs[i] for leaf i. Levels out of range or out of place (the
 * first slot at repetition 0, no other), a missing value, a null where the schema forbids
 * it: SL_ERR_INVALID and nothing written. Whether sibling leaves agree on the structure is
 * the caller's duty. Unlike write_row, running out of the memory budget midway breaks pw
 * (sl_pq_writer_is_broken), as half the row is in. */
SL_MUST_CHECK sl_err sl_pq_writer_write_levels(sl_pq_writer_t *pw, const sl_pq_leaf_run *runs,
                                               char *errbuf, size_t errlen);

/* ---- reading ----
 * A Parquet file held whole in memory (borrowed, must outlive pr), read one column chunk at
 * a time: for row group rg and leaf i, every level slot with its repetition and definition
 * level and value (a flat column has one slot per row). What this reader does not do is
 * refused by name (SL_ERR_UNSUPPORTED): encrypted footers, INT96 and FIXED_LEN_BYTE_ARRAY
 * columns, DECIMAL/TIME/TIMESTAMP(MILLIS|NANOS)/unsigned types, DELTA_* and
 * BYTE_STREAM_SPLIT encodings, LZ4/LZO/BROTLI pages. Broken files get SL_ERR_CORRUPT naming
 * the column and what was wrong. A pr is used by one thread at a time. */
typedef struct sl_pq_reader sl_pq_reader_t; /* variable name: pr */

typedef struct sl_pq_reader_options {
    size_t max_memory; /* cap on the footer's structures and, separately, on what decoded
                          columns hold until sl_pq_reader_reset; default 256 MiB */
} sl_pq_reader_options;

void sl_pq_reader_options_default(sl_pq_reader_options *opts);

typedef struct sl_pq_leaf_info {
    const char *path; /* dotted, from the root's child: "add.partitionValues.key_value.key" */
    const char *name; /* the leaf's own name (the end of path) */
    sl_pq_type type;  /* FLOAT columns read as DOUBLE (from_float) */
    sl_pq_logical logical;
    sl_pq_repetition repetition; /* the leaf's own (a REPEATED leaf says REQUIRED) */
    int max_rep, max_def;
    bool from_float;
    const char *unsupported; /* NULL, or why reading this leaf is refused */
} sl_pq_leaf_info;

/* One column chunk: n_slots level slots; reps/defs (NULL when that maximum is 0) and
 * values[k] (is_null where defs[k] < max_def). Bytes point into the file or the reader's
 * memory: valid until sl_pq_reader_reset or sl_pq_reader_free. */
typedef struct sl_pq_column_data {
    size_t n_slots;
    const uint8_t *reps, *defs;
    const sl_pq_value *values;
} sl_pq_column_data;

/* Decodes the footer and the schema. SL_ERR_CORRUPT for a file that is not Parquet or
 * whose footer or schema breaks a rule; SL_ERR_TOO_LARGE past max_memory. */
SL_MUST_CHECK sl_err sl_pq_reader_open(const void *file, size_t size,
                                       const sl_pq_reader_options *opts, sl_pq_reader_t **pr,
                                       char *errbuf, size_t errlen);
void sl_pq_reader_free(sl_pq_reader_t *pr); /* NULL is a no-op */
uint64_t sl_pq_reader_rows(const sl_pq_reader_t *pr);
size_t sl_pq_reader_row_groups(const sl_pq_reader_t *pr);
uint64_t sl_pq_reader_row_group_rows(const sl_pq_reader_t *pr, size_t rg);
size_t sl_pq_reader_leaves(const sl_pq_reader_t *pr);
const sl_pq_leaf_info *sl_pq_reader_leaf(const sl_pq_reader_t *pr, size_t leaf);
/* The leaf whose dotted path is path: true and *leaf, or false. */
bool sl_pq_reader_find(const sl_pq_reader_t *pr, const char *path, size_t *leaf);
/* Decodes column chunk (rg, leaf) into out. Data stays until sl_pq_reader_reset, so all
 * columns of a row group can be held at once (streaming a flat file: read every leaf of
 * row group rg, use the rows, reset, next row group). SL_ERR_TOO_LARGE when what is held
 * would pass max_memory. */
SL_MUST_CHECK sl_err sl_pq_reader_read_column(sl_pq_reader_t *pr, size_t rg, size_t leaf,
                                              sl_pq_column_data *out, char *errbuf, size_t errlen);
/* Frees every decoded column (their pointers become invalid). */
void sl_pq_reader_reset(sl_pq_reader_t *pr);

#endif
