/* Internals shared inside the parquet module (and its tests and fuzz target): the Thrift
 * compact protocol codec, the Parquet metadata structures it encodes and decodes, the
 * RLE/bit-packed hybrid, a bump arena, a byte hash and UTF-8 validation. Decoders take
 * untrusted bytes: every read is bounds-checked, nesting and allocations are limited. */
#ifndef SL_PARQUET_PARQUET_INT_H
#define SL_PARQUET_PARQUET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "parquet/parquet.h"

/* ---- bump arena: many small allocations, one free; hard cap on the total ---- */
typedef struct sl__pq_arena_block sl__pq_arena_block;
typedef struct sl__pq_arena {
    sl__pq_arena_block *head;
    size_t used; /* bytes handed out plus block overhead */
    size_t cap;
} sl__pq_arena;

void sl__pq_arena_init(sl__pq_arena *a, size_t cap);
void sl__pq_arena_cleanup(sl__pq_arena *a);
/* size bytes aligned for any type, zeroed; NULL past the cap or when malloc fails. */
void *sl__pq_arena_alloc(sl__pq_arena *a, size_t size);

/* ---- Thrift compact protocol ---- */
enum {
    SL__TC_STOP = 0,
    SL__TC_TRUE = 1,
    SL__TC_FALSE = 2,
    SL__TC_BYTE = 3,
    SL__TC_I16 = 4,
    SL__TC_I32 = 5,
    SL__TC_I64 = 6,
    SL__TC_DOUBLE = 7,
    SL__TC_BINARY = 8,
    SL__TC_LIST = 9,
    SL__TC_SET = 10,
    SL__TC_MAP = 11,
    SL__TC_STRUCT = 12,
};
#define SL__TC_MAX_DEPTH 32

/* Encoder into a capped sl_buf. Errors are sticky (err), so a structure is written as a
 * run of void calls and checked once at the end. */
typedef struct sl__tc_enc {
    sl_buf *out;
    int depth;
    int16_t last[SL__TC_MAX_DEPTH]; /* last field id per open struct */
    sl_err err;
} sl__tc_enc;

void sl__tc_enc_init(sl__tc_enc *enc, sl_buf *out);
void sl__tc_struct_begin(sl__tc_enc *enc); /* the root struct, or a struct list element */
void sl__tc_struct_end(sl__tc_enc *enc);   /* writes the stop byte */
void sl__tc_field_struct(sl__tc_enc *enc, int16_t id); /* then fields, then struct_end */
void sl__tc_field_bool(sl__tc_enc *enc, int16_t id, bool v);
void sl__tc_field_i32(sl__tc_enc *enc, int16_t id, int32_t v);
void sl__tc_field_i64(sl__tc_enc *enc, int16_t id, int64_t v);
void sl__tc_field_binary(sl__tc_enc *enc, int16_t id, const void *p, size_t n);
void sl__tc_field_list(sl__tc_enc *enc, int16_t id, int elem_type, size_t n);
void sl__tc_i32(sl__tc_enc *enc, int32_t v); /* a list element */
void sl__tc_binary(sl__tc_enc *enc, const void *p, size_t n);

/* Decoder over untrusted bytes. Every function returns false and sets err (with where,
 * a static description of the failed read) on bad input; the byte offset is p - start.
 * Why bool and not sl_err: the error is sticky in dec, and a bool lets a structure's
 * reads chain with && and stop at the first failure, which reads like the structure. */
typedef struct sl__tc_dec {
    const uint8_t *start, *p, *end;
    int depth;
    int16_t last[SL__TC_MAX_DEPTH];
    sl_err err;
    const char *where;
} sl__tc_dec;

void sl__tc_dec_init(sl__tc_dec *dec, const void *p, size_t n);
bool sl__tc_struct_enter(sl__tc_dec *dec);
void sl__tc_struct_leave(sl__tc_dec *dec);
/* The next field of the open struct: false at its stop byte (then err == SL_OK) or on
 * error. A boolean field's value is its type (SL__TC_TRUE / SL__TC_FALSE). */
bool sl__tc_next_field(sl__tc_dec *dec, int *type, int16_t *id);
bool sl__tc_read_i32(sl__tc_dec *dec, int type, int32_t *v); /* accepts BYTE/I16/I32 */
bool sl__tc_read_i64(sl__tc_dec *dec, int type, int64_t *v); /* accepts BYTE..I64 */
bool sl__tc_read_bool(sl__tc_dec *dec, int type, bool *v);   /* a field (not a list element) */
bool sl__tc_read_binary(sl__tc_dec *dec, int type, const uint8_t **p, size_t *n);
/* n is bounded by the bytes left (every element takes at least one byte). */
bool sl__tc_read_list(sl__tc_dec *dec, int type, int *elem_type, size_t *n);
bool sl__tc_skip(sl__tc_dec *dec, int type);
/* Marks the decoder failed (a structural rule of Parquet broke); always false. */
bool sl__tc_fail(sl__tc_dec *dec, const char *where);

/* ---- Parquet metadata (parquet.thrift), the fields sluice writes and reads ---- */
enum { /* Type */
       SL__PQT_BOOLEAN = 0,
       SL__PQT_INT32 = 1,
       SL__PQT_INT64 = 2,
       SL__PQT_INT96 = 3,
       SL__PQT_FLOAT = 4,
       SL__PQT_DOUBLE = 5,
       SL__PQT_BYTE_ARRAY = 6,
       SL__PQT_FIXED = 7
};
enum { /* Encoding */
       SL__PQE_PLAIN = 0,
       SL__PQE_PLAIN_DICTIONARY = 2,
       SL__PQE_RLE = 3,
       SL__PQE_RLE_DICTIONARY = 8
};
enum { /* PageType */
       SL__PQP_DATA = 0,
       SL__PQP_DICTIONARY = 2,
       SL__PQP_DATA_V2 = 3
};
enum { /* ConvertedType */
       SL__PQC_UTF8 = 0,
       SL__PQC_DATE = 6,
       SL__PQC_TIMESTAMP_MICROS = 10,
       SL__PQC_JSON = 19
};
enum { /* LogicalType union members (field ids) */
       SL__PQL_STRING = 1,
       SL__PQL_DATE = 6,
       SL__PQL_TIMESTAMP = 8,
       SL__PQL_JSON = 12
};
enum { /* TimeUnit union members */
       SL__PQU_MILLIS = 1,
       SL__PQU_MICROS = 2,
       SL__PQU_NANOS = 3
};

typedef struct sl__pq_str {
    const char *ptr;
    size_t len;
} sl__pq_str;

typedef struct sl__pq_stats {
    bool has_min, has_max, has_null_count;
    sl__pq_str min_value, max_value; /* PLAIN encoding of the bound (no length prefix) */
    int64_t null_count;
} sl__pq_stats;

typedef struct sl__pq_logical_type {
    int kind;    /* 0 absent, else the union member id (SL__PQL_*, or another seen) */
    bool ts_utc; /* TIMESTAMP: isAdjustedToUTC */
    int ts_unit; /* TIMESTAMP: SL__PQU_* */
} sl__pq_logical_type;

typedef struct sl__pq_schema_elem {
    sl__pq_str name;
    int32_t type;           /* -1 when absent (a group) */
    int32_t repetition;     /* -1 when absent (the root) */
    int32_t num_children;   /* -1 when absent */
    int32_t converted_type; /* -1 when absent */
    sl__pq_logical_type logical;
} sl__pq_schema_elem;

typedef struct sl__pq_col_meta {
    int32_t type;
    int32_t *encodings;
    size_t n_encodings;
    sl__pq_str *path;
    size_t n_path;
    int32_t codec;
    int64_t num_values, total_uncompressed_size, total_compressed_size;
    int64_t data_page_offset;
    int64_t dictionary_page_offset; /* -1 when absent */
    bool has_stats;
    sl__pq_stats stats;
} sl__pq_col_meta;

typedef struct sl__pq_col_chunk {
    int64_t file_offset;
    bool has_meta;
    sl__pq_col_meta meta;
} sl__pq_col_chunk;

typedef struct sl__pq_row_group {
    sl__pq_col_chunk *columns;
    size_t n_columns;
    int64_t total_byte_size, num_rows;
    int64_t file_offset, total_compressed_size; /* -1 when absent */
} sl__pq_row_group;

typedef struct sl__pq_kv {
    sl__pq_str key, value;
    bool has_value;
} sl__pq_kv;

typedef struct sl__pq_file_meta {
    int32_t version;
    sl__pq_schema_elem *schema;
    size_t n_schema;
    int64_t num_rows;
    sl__pq_row_group *row_groups;
    size_t n_row_groups;
    sl__pq_kv *kv;
    size_t n_kv;
    bool has_created_by;
    sl__pq_str created_by;
    size_t n_column_orders; /* TYPE_ORDER for every column when written by sluice */
} sl__pq_file_meta;

typedef struct sl__pq_page_header {
    int32_t type, uncompressed_page_size, compressed_page_size;
    bool has_data, has_dict;
    int32_t num_values; /* of the data or dictionary page header */
    int32_t encoding;
    int32_t def_encoding, rep_encoding; /* data page v1 */
    /* Decoded only (the writer writes v1): data page v2, whose levels are stored first,
     * uncompressed, def_len + rep_len bytes, and whose values may be uncompressed. */
    bool has_data_v2, v2_compressed;
    int32_t num_nulls, num_rows, def_len, rep_len;
} sl__pq_page_header;

/* Encoders append to out; SL_ERR_TOO_LARGE past its cap. */
SL_MUST_CHECK sl_err sl__pq_file_meta_encode(const sl__pq_file_meta *fm, sl_buf *out);
SL_MUST_CHECK sl_err sl__pq_page_header_encode(const sl__pq_page_header *ph, sl_buf *out);

/* Decodes a FileMetaData from p[0..n) (untrusted). Strings point into p (which must
 * outlive fm); arrays come from a (its cap bounds the memory). SL_ERR_CORRUPT with the
 * offset and what was being read, SL_ERR_TOO_LARGE when a's cap is reached. */
SL_MUST_CHECK sl_err sl__pq_file_meta_decode(const void *p, size_t n, sl__pq_arena *a,
                                             sl__pq_file_meta *fm, char *errbuf, size_t errlen);
/* Decodes a PageHeader at the start of p[0..n); *used is its length in bytes. */
SL_MUST_CHECK sl_err sl__pq_page_header_decode(const void *p, size_t n, sl__pq_page_header *ph,
                                               size_t *used, char *errbuf, size_t errlen);
/* Checks the magic at both ends of a whole file and decodes its footer. */
SL_MUST_CHECK sl_err sl__pq_footer_decode(const void *file, size_t n, sl__pq_arena *a,
                                          sl__pq_file_meta *fm, char *errbuf, size_t errlen);

/* ---- RLE / bit-packed hybrid (levels, dictionary indices) ---- */
/* Appends the encoding of vals[0..n) (each < 2^bit_width, bit_width 0..32) to out.
 * Runs of 8 or more equal values at group boundaries become RLE runs, the rest bit-packed
 * groups of 8 (the last padded with zeros). No length prefix. */
SL_MUST_CHECK sl_err sl__pq_rle_encode_u8(const uint8_t *vals, size_t n, int bit_width,
                                          sl_buf *out);
SL_MUST_CHECK sl_err sl__pq_rle_encode_u32(const uint32_t *vals, size_t n, int bit_width,
                                           sl_buf *out);
/* Bytes the encoding of n values can take at most (reserve this much before encoding). */
size_t sl__pq_rle_bound(size_t n, int bit_width);
/* Decodes exactly n values from p[0..len) (untrusted): SL_ERR_CORRUPT when the bytes end
 * early or a value does not fit bit_width. */
SL_MUST_CHECK sl_err sl__pq_rle_decode(const void *p, size_t len, int bit_width, uint32_t *vals,
                                       size_t n);
/* Bits needed for values up to max (0 for 0). */
int sl__pq_bit_width(uint32_t max);

/* ---- helpers ---- */
bool sl__pq_utf8_is_valid(const char *s, size_t n);

#endif
